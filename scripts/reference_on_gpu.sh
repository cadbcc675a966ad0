#!/usr/bin/env bash
# The reference profile on one GPU in one command (issues 15, 26, 27): preflight, a 60-second throughput calibration
# that sizes the grid to the time left (benchmarks/size_reference.py), then the compute-only path (`python -m transferlimits compute`: no Snakemake, papermill, Jupyter or SimpleITK),
# which stops itself cleanly before the device's per-command limit; what came out is packed into $OUT. The pages
# are rendered afterwards on the CPU: `python -m transferlimits run --profile reference --render-only`.
#
#   OUT=/some/dir scripts/reference_on_gpu.sh [extra `compute` arguments, e.g. --only task=classification]
#
# Environment (all optional):
#   OUT            folder whose contents come back from the device machine (default: ./gpu_out)
#   PYTHON         the interpreter (default: .venv/bin/python if present, else python3)
#   STOP_AFTER     seconds of this command after which nothing new is started (`compute --stop-after`: it stops
#                  at a point or a pre-training checkpoint; a second call resumes) (default 480 = 8 minutes)
#   CAL_SECONDS    calibration budget in seconds (default 60)
#   PARALLEL       child processes sharing the GPU (`compute --parallel`; default 10: one per pair)
#   WORKERS        phantom synthesis processes (default: the CPU count)
#   LADDER         the sizing ladder of benchmarks/size_reference.py (default reference; REHEARSE=1: none)
#   WHEELS         folder of the carried wheels (default .whl, filled by scripts/gpu_wheels.py)
#   SITE           where they are installed (default /tmp/site)
#   REHEARSE=1     the CPU rehearsal: the same command with the reference profile shrunk to tiny sizes by
#                  `--set` overrides, on the CPU, so that no GPU minute is spent on a typo (issue 15, item 2);
#                  scripts/rehearsal_venv.py runs it in a venv holding only the image's packages (issue 26)
#
# Out: $OUT/gate.log (the gate's output), $OUT/calibration.json (every level's loops, projection, the chosen level), $OUT/sets.txt (its --set
# overrides: pass them to the render), $OUT/run.log (the command's output), $OUT/reference_results.tar.gz (results/reference
# without weights or cohort cases: profile, cohort manifest, pre-trainings, points, pair indexes, grid.json).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=${TRANSFERLIMITS_ROOT:-$PWD}                    # where the runner writes book/generated/ (tests: a sandbox)
RESULTS=${TRANSFERLIMITS_RESULTS:-$ROOT/results}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON="$PWD/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
STOP_AFTER=${STOP_AFTER:-480}
CAL_SECONDS=${CAL_SECONDS:-60}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
PARALLEL=${PARALLEL:-10}
WORKERS=${WORKERS:-$(nproc)}
LADDER=${LADDER:-reference}
SETS=()
DEVICE=auto
# the gate's sizes (and the rehearsal's): the whole compute path at test sizes, seed 0
TINY=()
for kv in "grid.shape=[16,32,32]" "grid.spacing=[3,2,2]" "slice_size=28" "encoder_sizes.profound=test" \
          "encoder_sizes.provicnet=test" "seeds=[0]" "splits={pretrain: 16, train: 8, val: 4, test: 8}" \
          "pretrain.steps=4" "pretrain.batch_size=2" "pretrain.warmup_steps=1" "pretrain.checkpoint_every=2" \
          "finetune.epochs=1" "finetune.batch_size=2" "finetune.decoder_width=8" "measure.n_permutations=19" \
          "measure.n_bootstrap=5" "measure.token_samples=24" "provicnet_slice_step=1"; do
  TINY+=(--set "$kv")
done
if [ "${REHEARSE:-0}" = "1" ]; then
  DEVICE=cpu
  LADDER=none
  TINY+=(--set "device=cpu")
  SETS=("${TINY[@]}")
fi
GATE=${GATE:-$([ "${REHEARSE:-0}" = "1" ] && echo 0 || echo 1)}
GATE_SECONDS=${GATE_SECONDS:-60}
t0=$(date +%s)
say() { echo "[reference_on_gpu $(( $(date +%s) - t0 ))s] $*"; }

# 1. preflight: wheels carried in $WHEELS (scripts/gpu_wheels.py fetches them) are installed to $SITE, then
#    every package the compute path imports is checked, before any GPU minute is spent
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl && export PYTHONPATH="$PYTHONPATH:$SITE" && export PATH="$SITE/bin:$PATH"
fi
missing=$("$PYTHON" - <<'EOF'
import importlib.util
names = ["torch", "numpy", "scipy", "pandas", "sklearn", "matplotlib", "yaml", "tqdm", "monai", "nibabel"]
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  say "missing Python packages: $missing (fetch their wheels with scripts/gpu_wheels.py and carry .whl)"
  exit 3
fi
"$PYTHON" - <<'EOF'
import os, platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"[reference_on_gpu] torch {torch.__version__}, GPU {gpu}, {os.cpu_count()} CPU cores, {platform.processor()}")
EOF

# 2. the gate: every (task, model) pair's whole compute path at test sizes on the device, in a results tree of its
#    own, before the grid; a failure there stops the command within a minute, with its log in $OUT/gate.log
if [ "$GATE" = "1" ]; then
  say "gate: every pair at test sizes on the device (${GATE_SECONDS} s at most)"
  gate_dir=$(mktemp -d)
  TRANSFERLIMITS_RESULTS=$gate_dir timeout --signal=INT --kill-after=10 "$(( GATE_SECONDS + 20 ))" \
    "$PYTHON" -m transferlimits compute --profile reference --device "$DEVICE" --parallel "$PARALLEL" \
    --stop-after "$GATE_SECONDS" --margin 5 "${TINY[@]}" "$@" > "$OUT/gate.log" 2>&1
  grc=$?
  if [ $grc -ne 0 ] || ! grep -q "\[compute\] done in" "$OUT/gate.log"; then
    say "gate failed (exit $grc): nothing else runs; the end of $OUT/gate.log:"
    tail -n 40 "$OUT/gate.log"
    for f in "$gate_dir"/reference/logs/compute__*.log; do
      [ -f "$f" ] && grep -q -i "error\|traceback" "$f" && { echo "== $f"; tail -n 25 "$f"; }
    done
    exit 5
  fi
  say "gate passed: $(grep -c 'finished (' "$OUT/gate.log") pair(s) at test sizes"
fi
t0=$(date +%s)  # the grid's own clock: STOP_AFTER counts from here

# 3. calibration and sizing: achieved TFLOP/s and MFU of each training loop at each level of the ladder, largest
#    first; the first level whose projected wall fits the time left is chosen (benchmarks/size_reference.py)
say "calibration and sizing (${CAL_SECONDS} s)"
budget=$(( STOP_AFTER - CAL_SECONDS - ($(date +%s) - t0) - 40 ))
(cd benchmarks && "$PYTHON" size_reference.py --profile reference --ladder "$LADDER" --device "$DEVICE" \
   --seconds "$CAL_SECONDS" --budget "$budget" --workers "$WORKERS" \
   --peak-tflops 989 --out "$OUT/calibration.json" --sets-out "$OUT/sets.txt" "${SETS[@]}") \
  || { say "calibration failed: nothing was computed"; exit 4; }
while IFS= read -r kv; do [ -n "$kv" ] && SETS+=(--set "$kv"); done < "$OUT/sets.txt"
say "sizing chose: $(tr '\n' ' ' < "$OUT/sets.txt")"

# 4. the compute path, which stops itself before STOP_AFTER seconds of this command (rc 0; the same command resumes)
left=$(( STOP_AFTER - ($(date +%s) - t0) ))
[ "$left" -lt 1 ] && left=1
say "compute: ${left} s left"
timeout --signal=INT --kill-after=20 "$(( left + 60 ))" "$PYTHON" -m transferlimits compute --profile reference \
  --device "$DEVICE" --stop-after "$left" --parallel "$PARALLEL" --workers "$WORKERS" --started-at "$t0" \
  "${SETS[@]}" "$@" > "$OUT/run.log" 2>&1
rc=$?
say "compute exit status $rc"
tail -n 20 "$OUT/run.log"

# 5. the slices' logs (results/reference/logs/compute__*.log) are in the pack; their tails are in run.log
# pack the results tree (what `run --render-only` renders on the CPU), without training checkpoints
# without weights (*.pt: encoders of ~100 MB each at the published sizes) or the cohort's cases (the render reads
# data/manifest.json, which lists every case and its sha256, and synthesises nothing; it resamples the two real exams
# the data page draws): a file must stay under the device's 16 MiB return limit
[ -d "$RESULTS/reference" ] && tar -czf "$OUT/reference_results.tar.gz" --exclude '*.pt' \
  --exclude 'reference/data/cases' --exclude 'reference/data/real' -C "$RESULTS" reference
say "packed: $(ls "$OUT" | tr '\n' ' ')"
exit $rc
