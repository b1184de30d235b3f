#!/usr/bin/env bash
# The GPU leg (issue 15): every figure the first GPU must give, in one call of at most 9 minutes.
#
#   bash bench/gpu_leg.sh              # on a CUDA machine: bench/results/<date>-<device>.json + .log
#   bash bench/gpu_leg.sh --rehearse   # the same parts on the CPU, tiny: <date>-cpu-rehearse.json
#   bash bench/gpu_leg.sh --only decode,checks --budget 200   # a second call adds to the same file
#
# Needs torch, numpy, tiktoken and psutil; no network. Tiny Shakespeare comes from the
# gptbench cache ($XDG_CACHE_HOME/gptbench), seeded here from shared/data/tinyshakespeare
# inside the checkout or ../shared beside it. See bench/NOTES.md ("GPU") and bench/gpu_leg.py.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
cached="$XDG_CACHE_HOME/gptbench/tinyshakespeare/input.txt"
if [ ! -f "$cached" ]; then
    for source in shared/data/tinyshakespeare/input.txt ../shared/data/tinyshakespeare/input.txt; do
        if [ -f "$source" ]; then
            mkdir -p "$(dirname "$cached")" && cp "$source" "$cached" && break
        fi
    done
fi
[ -f "$cached" ] || echo "gpu_leg: no tiny Shakespeare at $cached or in shared/: the shakespeare part will fail" >&2
python="${PYTHON:-python3}"  # the interpreter that has torch
missing=$("$python" -c 'import importlib.util as u; print(" ".join(m for m in ("torch", "numpy", "tiktoken", "psutil") if not u.find_spec(m)))')
if [ -n "$missing" ]; then
    echo "gpu_leg: the engine needs $missing (pip install them, or carry them as wheels)" >&2
    exit 2
fi
exec "$python" bench/gpu_leg.py "$@"
