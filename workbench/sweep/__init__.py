"""Sweeps: one command tries many settings of a preset and answers with medians and spread.

    spec.py       what a sweep is: --grid / --space / --set / --seeds / --objective, checked
    objective.py  what a trial is scored by, read from its events
    resources.py  how many trials run at once, and each one's threads or GPU
    study.py      the Optuna study: sampler, pruner, storage, which trial runs next
    scheduler.py  the loop: start trainers, follow their events, prune, tell Optuna
    trials.py     the sweep directory: trial run dirs and the fold that reads them back
    report.py     the report: one row per setting, as a table, markdown, CSV, JSON or a chart

Every trial is an ordinary run directory (`gptbench run` with its --set keys),
so `attach`, `logs`, `sample`, `export`, `eval` and the compare view work on it.
Plain Python: the sweep process never imports torch; it starts trainers and
reads their events.
"""
