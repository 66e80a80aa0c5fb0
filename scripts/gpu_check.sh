#!/usr/bin/env bash
# The GPU check, ready for the rare GPU session (at most 8 minutes on one CUDA GPU): the CUDA paths no CPU
# test reaches, every bundle one epoch at 64^3 with the paper-size networks, torchrun with nccl, and the speed
# figures. Writes $OUT/gpu_check.json (or --out DIR) and exits non-zero on any failure.
#
#   bash scripts/gpu_check.sh                 # on the GPU machine (the device tool sets $OUT)
#   bash scripts/gpu_check.sh --dry-run       # the same steps on a CPU at toy sizes (tests run this)
#
# Needs the project installed (make install, or the venv carried to the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" scripts/gpu_check.py "$@"
