"""README's generated tables: each is made from the code that owns its facts.

A table lives between two marker lines in README.md, and
`python -m workbench.readme_tables README.md` makes every one afresh; the unit
tests fail while README differs from what the code says (tests/unit/test_config.py
for the config keys, tests/unit/test_metrics.py for the metric fields).

Plain Python: no torch, no Textual.
"""

from __future__ import annotations

from collections.abc import Callable

from . import config, metrics

# the table's name in its markers -> what makes it
TABLES: dict[str, Callable[[], str]] = {
    "config keys": config.keys_markdown,
    "metric fields": metrics.fields_markdown,
}

COMMAND = "python -m workbench.readme_tables README.md"


def start_marker(name: str) -> str:
    return f"<!-- {name}: made by `{COMMAND}` -->\n"


def end_marker(name: str) -> str:
    return f"\n<!-- end of {name} -->"


def table_in(readme: str, name: str) -> str:
    """The table README holds between the markers of `name` ("" without the markers)."""
    _, found, rest = readme.partition(start_marker(name))
    return rest.partition(end_marker(name))[0] if found else ""


def regenerated(readme: str) -> str:
    """README's text with every table made afresh."""
    for name, make in TABLES.items():
        before, found, rest = readme.partition(start_marker(name))
        _, ended, after = rest.partition(end_marker(name))
        if not (found and ended):
            raise ValueError(f"README needs the lines {start_marker(name).strip()} and {end_marker(name).strip()}")
        readme = before + start_marker(name) + make() + end_marker(name) + after
    return readme


if __name__ == "__main__":
    import sys
    from pathlib import Path

    readme = Path(sys.argv[1])
    readme.write_text(regenerated(readme.read_text(encoding="utf-8")), encoding="utf-8")
