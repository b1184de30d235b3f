"""A run's config as the app shows it: flat `section.key` values, and what differs.

Plain Python, no Textual: the picker, the run screen's Config tab and the
compare screen's config diff all read configs through these.
"""

from __future__ import annotations

from .. import presets
from ..config import all_keys


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
