"""A run's config as the app shows it: flat `section.key` values, and what differs.

Plain Python, no Textual: the picker, the run screen's Config tab and the
compare screen's config diff all read configs through these.
"""

from __future__ import annotations

import types
import typing

from .. import presets
from ..config import SECTIONS, all_keys, choices, range_of

KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def shown(value) -> str:
    """A config value as typed after --set: auto for None, true/false, numbers as Python prints them."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def flat_values(config: dict) -> dict[str, str]:
    """{"train.lr": "0.003", ...} from a config dict (config.json, run_started), in the order `gptbench` documents
    the keys."""
    values = {}
    for key in all_keys():
        section, _, name = key.partition(".")
        if not name:
            if section in config:  # a run from before the key existed has none
                values[key] = shown(config[section])
        elif name in (config.get(section) or {}):
            values[key] = shown(config[section][name])
    return values


def preset_values(config: dict) -> dict[str, str]:
    """What the run's preset, profile and recipe give without the run's own edits.

    Raises ConfigError when the preset is gone or broken (a user preset deleted since)."""
    preset = presets.load(config.get("preset", ""))
    profile = config.get("profile") or "default"
    recipe = config.get("recipe") or "classic"
    return flat_values(presets.resolve(preset, [f"profile={profile}", f"recipe={recipe}"]).to_dict())


def differing_keys(configs: list[dict[str, str]]) -> list[str]:
    """The keys whose values are not all the same, in the documented order."""
    keys = dict.fromkeys(k for values in configs for k in values)
    return [k for k in keys if len({values.get(k) for values in configs}) > 1]


def changed_keys(values: dict[str, str], preset: dict[str, str]) -> list[str]:
    """The keys the run set differently from its preset. A preset's "auto" (and a vocab_size
    of 0: the tokenizer's) is decided when the run starts, which changes nothing."""
    return [
        k
        for k, v in values.items()
        if k in preset and preset[k] != v and preset[k] != "auto" and not (k == "model.vocab_size" and preset[k] == "0")
    ]


def allowed_values(key: str) -> str:
    """What `key` takes, in words, for the picker's hints: its choices or its type, and its field's range."""
    section, _, name = key.partition(".")
    typ = typing.get_type_hints(SECTIONS[section]).get(name, str) if section in SECTIONS else str
    auto = typing.get_origin(typ) in (typing.Union, types.UnionType) and type(None) in typing.get_args(typ)
    if auto:
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
    listed = typing.get_origin(typ) is list
    allowed = choices(key) if section in SECTIONS else None
    if allowed:
        words = "one or more of " if listed else "one of "
        words += ", ".join(allowed) + (" (comma-separated, empty for none)" if listed else "")
    else:
        words = "a comma-separated list (empty for none)" if listed else KINDS.get(typ, "text")
    within = range_of(key) if key in all_keys() else None
    return words + (f", {within}" if within else "") + (", or auto" if auto else "")
