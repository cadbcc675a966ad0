#!/usr/bin/env bash
# The reference profile on one GPU in one command (issue 15): preflight, a 60-second throughput calibration,
# then the grid, stopped cleanly before the device's per-command limit; what came out is packed into $OUT.
#
#   OUT=/some/dir scripts/reference_on_gpu.sh [extra `run` arguments, e.g. --only task=classification]
#
# Environment (all optional):
#   OUT            folder whose contents come back from the device machine (default: ./gpu_out)
#   PYTHON         the interpreter (default: .venv/bin/python if present, else python3)
#   STOP_AFTER     seconds after which the grid is interrupted (SIGINT: Snakemake stops its jobs and keeps
#                  every finished result; a second call resumes) (default 480 = the issue's 8 minutes)
#   CAL_SECONDS    calibration budget in seconds (default 60)
#   GPU_JOBS       grid jobs sharing the GPU at once (Snakemake resources gpu=N) (default 4)
#   CORES          Snakemake cores (default: nproc)
#   REHEARSE=1     the CPU rehearsal: the same command with the reference profile shrunk to tiny sizes by
#                  `--set` overrides, on the CPU, so that no GPU minute is spent on a typo (issue 15, item 2)
#
# Out: $OUT/calibration.json, $OUT/run.log (the runner's output), $OUT/reference_results.tar.gz (executed
# notebooks + published results of book/generated/reference, and the run's logs) - at most 8 files come back.
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
GPU_JOBS=${GPU_JOBS:-4}
CORES=${CORES:-$(nproc)}
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

# 1. preflight: wheels carried in .whl/ (scripts/gpu_wheels.py fetches them) are installed to /tmp/site, then
#    every package the grid imports is checked, before any GPU minute is spent
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" && export PATH="/tmp/site/bin:$PATH"
fi
missing=$("$PYTHON" - <<'EOF'
import importlib.util
names = ["torch", "numpy", "scipy", "pandas", "sklearn", "matplotlib", "yaml", "tqdm", "monai", "snakemake",
         "papermill", "jupytext", "ipykernel", "nbformat", "nbclient", "myst_nb", "nibabel", "SimpleITK"]
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

# 3. the grid, interrupted cleanly (SIGINT, then 20 s grace) before STOP_AFTER seconds of this command
left=$(( STOP_AFTER - ($(date +%s) - t0) ))
[ "$left" -lt 1 ] && left=1   # `timeout 0` would mean no limit at all
say "grid: ${left} s left, ${CORES} cores, ${GPU_JOBS} job(s) per GPU"
timeout --signal=INT --kill-after=20 "$left" "$PYTHON" -m transferlimits run --profile reference --cores "$CORES" \
  --snakemake-args "--resources gpu=$GPU_JOBS" "${SETS[@]}" "$@" > "$OUT/run.log" 2>&1
rc=$?
[ $rc -eq 124 ] && say "stopped at the time limit: finished results are kept; the same command resumes"
say "grid exit status $rc"
tail -n 20 "$OUT/run.log"

# 4. pack what a reader needs (notebooks + small results + logs) into one file that comes back
"$PYTHON" -m transferlimits status --profile reference "${SETS[@]}" "$@" > "$OUT/status.txt" 2>&1 || true
"$PYTHON" - <<'EOF' || true
from transferlimits.runner.publish import publish_results
try:  # also after an interrupted grid: the finished points are published
    print(f"[reference_on_gpu] {len(publish_results('reference'))} result file(s) published")
except ValueError as err:
    print(f"[reference_on_gpu] nothing published: {err}")
EOF
items=()
[ -d "$ROOT/book/generated/reference" ] && items+=(-C "$ROOT/book/generated" reference)
[ -d "$RESULTS/reference/logs" ] && items+=(-C "$RESULTS/reference" logs)
[ ${#items[@]} -gt 0 ] && tar -czf "$OUT/reference_results.tar.gz" "${items[@]}"
say "packed: $(ls "$OUT" | tr '\n' ' ')"
exit $rc
