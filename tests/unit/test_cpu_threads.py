"""The CPU share of a gptbench process, and what its log line says when it changes."""

from workbench.engine.cpu_threads import available_cores, why_threads_changed


def test_a_change_of_threads_says_who_came_or_went():
    cores = available_cores()
    fewer = why_threads_changed(2, 1)
    assert fewer.startswith("another gptbench process got busy: ") and fewer.endswith(f"share {cores} cores")
    assert why_threads_changed(1, 2).startswith("a gptbench process ended or went idle: ")
