"""`gptbench presets NAME`: one preset's fully resolved config, as TOML.

The output is itself a config file: `gptbench presets NAME > my.toml`, edit it,
then `gptbench run --config my.toml` trains exactly that.
"""

from __future__ import annotations

import sys

from .. import presets
from ..config import ConfigError, to_toml


def show_preset(name: str, overrides: list[str], device: str) -> None:
    preset = presets.load(name)
    device_kind = device.split(":")[0]
    if device_kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"--device must be cpu, cuda or mps, got {device!r}.", "e.g. --device cuda shows the GPU profile."
        )
    cfg = presets.resolve(preset, overrides, device_kind)
    lines = [f"# preset {name}: {preset.path}"]
    if preset.shadows:
        lines.append(f"# this user preset shadows the bundled one: {preset.shadows}")
    lines.append(
        f"# profile {cfg.profile} (chosen for a {device_kind} device; --device cuda shows a GPU's), "
        f"profiles: {', '.join(['default', *preset.profiles])}"
    )
    for recipe in preset.recipes:
        keys = preset.recipe_keys(recipe)
        sets = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in keys.items())
        chosen = " (this config)" if recipe == cfg.recipe else f" (--set recipe={recipe})"
        lines.append(f"# recipe {recipe}{chosen}: " + (sets if keys else "the preset as written"))
    if cfg.model.init_from != "scratch":
        lines.append(f"# the [model] architecture comes from model.init_from={cfg.model.init_from}")
    sys.stdout.write("\n".join(lines) + "\n" + to_toml(cfg, preset.description))
