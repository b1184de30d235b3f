# The recipe sweep of 2026-12-05 (issue 21), as run: from the repository root,
# `bash bench/results/2026-12-05-recipe-sweep/run.sh`. taskset pins the sweep
# (and so its trials) to one core: the sweep gives each trial the cores it may
# use, so one trial at a time with one thread. XDG_CACHE_HOME held a copy of
# tiny Shakespeare (../shared/data/tinyshakespeare/input.txt), no download.
export OMP_NUM_THREADS=1
D=bench/results/2026-12-05-recipe-sweep
date -u
taskset -c 1 gptbench sweep shakespeare-char --grid recipe=classic --seeds 3 --objective seconds_to:1.8857 --set train.eval_every=50 --parallel 1 --sweep-dir $D/classic --headless
date -u
taskset -c 1 gptbench sweep shakespeare-char --set recipe=modern --grid model.tie_embeddings=true,false --seeds 3 --objective seconds_to:1.8857 --set train.eval_every=50 --parallel 1 --sweep-dir $D/modern --headless
date -u
# The interleaved answer (README), later the same day on an idle machine:
taskset -c 1 gptbench sweep shakespeare-char --grid recipe=classic,modern --seeds 3 --set model.tie_embeddings=true --objective seconds_to:1.8857 --set train.eval_every=50 --parallel 1 --sweep-dir $D/interleaved --headless
date -u
