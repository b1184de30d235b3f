#!/usr/bin/env bash
# The GPU leg (issue 15, 23): every figure the first GPU must give, in one call of about 7 minutes.
#
#   bash bench/gpu_leg.sh --text PATH            # on a CUDA machine: <out>/<date>-<device>.json + .log
#   bash bench/gpu_leg.sh --rehearse --text PATH # the same parts on the CPU, tiny: <date>-cpu-rehearse.json
#   bash bench/gpu_leg.sh --only decode,addition --budget 300   # a second call adds to the same file
#
# Runs from a bare copy of the tree: no install, no git, no HOME, no ../shared, no network.
# Needs torch, numpy, tiktoken and psutil. --text is tiny Shakespeare (input.txt); without it
# the leg looks in shared/data/tinyshakespeare/ inside the tree, then beside it. See
# bench/NOTES.md ("GPU"), README ("The GPU leg") and bench/gpu_leg.py.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"  # the interpreter that has torch
missing=$("$python" -c 'import importlib.util as u; print(" ".join(m for m in ("torch", "numpy", "tiktoken", "psutil") if not u.find_spec(m)))')
if [ -n "$missing" ]; then
    echo "gpu_leg: the engine needs $missing (pip install them, or carry them as wheels)" >&2
    exit 2
fi
exec "$python" bench/gpu_leg.py "$@"
