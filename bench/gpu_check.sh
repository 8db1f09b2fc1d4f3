#!/usr/bin/env bash
# The GPU check in one command (see bench/gpu_check.py): seamlessness and device-vs-CPU pixels
# on CUDA, render throughput at 1/4/16 metatiles per call in fp32 and bf16, the real tile server
# under cold and cached load; one markdown table. At most 8 minutes; exits 0 with one "skipped"
# line where there is no CUDA device.
#
#   bench/gpu_check.sh                        # on the CUDA machine
#   bench/gpu_check.sh --device cpu --quick   # a dry run of every part on the CPU
#
# PYTHON=/path/to/python picks the interpreter; otherwise the first of .venv/bin/python and
# python3 whose torch sees CUDA (./manage setup installs the CPU build of torch, so on a GPU
# machine that is usually the system python3), else the first that imports torch at all.
# GPU_CHECK_LIMIT_S (default 470) bounds the whole run; the helper stops starting parts at 400 s.
set -euo pipefail
cd "$(dirname "$0")/.."

probe='import sys
try:
    import torch
except ImportError:
    sys.exit(3)
sys.exit(0 if torch.cuda.is_available() else 4)'

if [[ -n ${PYTHON:-} ]]; then
  candidates=("$PYTHON")
else
  candidates=(.venv/bin/python python3)
fi
python=""
with_torch=""
for candidate in "${candidates[@]}"; do
  command -v "$candidate" >/dev/null 2>&1 || continue
  status=0
  "$candidate" -c "$probe" 2>/dev/null || status=$?
  if ((status == 0)); then
    python=$candidate
    break
  elif ((status == 4)) && [[ -z $with_torch ]]; then
    with_torch=$candidate
  fi
done
python=${python:-$with_torch}
if [[ -z $python ]]; then
  echo "missing: none of ${candidates[*]} can import torch;" \
    "install a CUDA build of torch there or set PYTHON=/path/to/python" >&2
  exit 2
fi

# The helper runs under `timeout`, which puts it (and the server it starts) in a process group
# of its own: killing that group on any exit leaves no server behind, whatever stopped us.
group=""
stop() {
  if [[ -n $group ]]; then
    kill -TERM -- "-$group" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

limit=${GPU_CHECK_LIMIT_S:-470}
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
  timeout --kill-after=15 "$limit" "$python" bench/gpu_check.py "$@" &
group=$!
status=0
wait "$group" || status=$?
if ((status == 124)); then
  echo "gpu_check: stopped at the ${limit}s limit" >&2
fi
exit "$status"
