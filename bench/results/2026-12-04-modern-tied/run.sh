#!/bin/bash
# recipe=modern with the tied head against the untied one, seeds 0-2, shakespeare-char CPU profile,
# each run stopped at val 1.8857 (train.target_val_loss); evals every 50 steps.
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 XDG_CACHE_HOME=/tmp/recipe/cache
mkdir -p /tmp/recipe/cache/gptbench/tinyshakespeare && cp ../shared/data/tinyshakespeare/input.txt /tmp/recipe/cache/gptbench/tinyshakespeare/
out=bench/results/2026-12-04-modern-tied
for seed in 0 1 2; do
  for tie in true false; do
    name=seed$seed-tie_$tie
    rm -rf /tmp/recipe/run-$name
    python -m workbench.cli run shakespeare-char --headless --json --run-dir /tmp/recipe/run-$name \
      --set recipe=modern --set model.tie_embeddings=$tie --set train.seed=$seed --set train.threads=1 \
      --set train.eval_every=50 --set train.target_val_loss=1.8857 > $out/$name.events.jsonl
    echo "$name rc=$?"
    rm -rf /tmp/recipe/run-$name
  done
done
