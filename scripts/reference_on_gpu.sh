#!/usr/bin/env bash
# The reference profile on one GPU in one command (issues 15, 26): preflight, a 60-second throughput calibration,
# then the compute-only path (`python -m transferlimits compute`: no Snakemake, papermill, Jupyter or SimpleITK),
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
#   WHEELS         folder of the carried wheels (default .whl, filled by scripts/gpu_wheels.py)
#   SITE           where they are installed (default /tmp/site)
#   REHEARSE=1     the CPU rehearsal: the same command with the reference profile shrunk to tiny sizes by
#                  `--set` overrides, on the CPU, so that no GPU minute is spent on a typo (issue 15, item 2);
#                  scripts/rehearsal_venv.py runs it in a venv holding only the image's packages (issue 26)
#
# Out: $OUT/calibration.json, $OUT/run.log (the command's output), $OUT/reference_results.tar.gz (results/reference
# without training checkpoints: profile, cohort manifest, pre-trainings, points, pair indexes, grid.json).
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
SETS=()
DEVICE=auto
if [ "${REHEARSE:-0}" = "1" ]; then
  DEVICE=cpu
  for kv in "grid.shape=[16,32,32]" "grid.spacing=[3,2,2]" "slice_size=28" "encoder_sizes.profound=test" \
            "encoder_sizes.provicnet=test" "seeds=[0]" "splits={pretrain: 16, train: 8, val: 4, test: 8}" \
            "pretrain.steps=4" "pretrain.batch_size=2" "pretrain.warmup_steps=1" "pretrain.checkpoint_every=2" \
            "finetune.epochs=1" "finetune.batch_size=2" "finetune.decoder_width=8" "measure.n_permutations=19" \
            "measure.n_bootstrap=5" "measure.token_samples=24" "provicnet_slice_step=1" "device=cpu"; do
    SETS+=(--set "$kv")
  done
fi
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

# 2. calibration: achieved TFLOP/s and MFU of each training loop at the profile's sizes
say "calibration (${CAL_SECONDS} s)"
(cd benchmarks && "$PYTHON" calibrate_gpu.py --profile reference --device "$DEVICE" --seconds "$CAL_SECONDS" \
   --peak-tflops 989 --out "$OUT/calibration.json" "${SETS[@]}") || say "calibration failed (the grid still runs)"

# 3. the compute path, which stops itself before STOP_AFTER seconds of this command (rc 0; the same command resumes)
left=$(( STOP_AFTER - ($(date +%s) - t0) ))
[ "$left" -lt 1 ] && left=1
say "compute: ${left} s left"
timeout --signal=INT --kill-after=20 "$(( left + 60 ))" "$PYTHON" -m transferlimits compute --profile reference \
  --device "$DEVICE" --stop-after "$left" "${SETS[@]}" "$@" > "$OUT/run.log" 2>&1
rc=$?
say "compute exit status $rc"
tail -n 20 "$OUT/run.log"

# 4. pack the results tree (what `run --render-only` renders on the CPU), without training checkpoints
[ -d "$RESULTS/reference" ] && tar -czf "$OUT/reference_results.tar.gz" --exclude checkpoint_last.pt \
  -C "$RESULTS" reference
say "packed: $(ls "$OUT" | tr '\n' ' ')"
exit $rc
