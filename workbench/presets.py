"""Find, load and resolve presets.

Presets ship inside the package (`presets/*.toml` at the top of the repository,
installed as `workbench.bundled_presets`; a tree never installed reads `presets/`);
users add their own TOML files to `$GPTBENCH_PRESETS` or
`~/.config/gptbench/presets`, which win on name clashes.
A user file that cannot be read is left out of listings (`scan` says why) and
refused, with the reason, when asked for by name.

Resolving a preset for a run: preset tables -> the profile's tables -> the
recipe's tables -> a user's `--config FILE` -> `--set` overrides -> the
architecture of `model.init_from`'s weights, then `config.validate`. The
profile is chosen by device unless the user sets `profile=NAME`: `gpu` on CUDA,
`cpu` elsewhere, when the preset has one.

A recipe is a named bundle of keys that measure best together, declared in the
preset as `[recipes.NAME.model]` / `[recipes.NAME.train]` tables (`modern`:
rotary positions, RMSNorm, QK-norm, ReLU², an untied head, soft-capped logits,
Muon). `classic` is the preset as written. `--set recipe=modern` picks one;
single keys set on top still win.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from .config import Config, ConfigError, apply_table, estimate_params, parse_override, set_value, validate
from .weights_source import adopt_architecture

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class Preset:
    name: str
    description: str
    path: str
    table: dict  # the parsed TOML
    shadows: str | None = None  # the bundled preset's file, when a user preset of the same name wins over it

    @property
    def profiles(self) -> list[str]:
        return sorted(self.table.get("profiles", {}))

    @property
    def recipes(self) -> list[str]:
        return ["classic", *sorted(self.table.get("recipes", {}))]

    def recipe_keys(self, recipe: str) -> dict[str, object]:
        """{"model.position": "rope", ...}: what the recipe sets on top of the profile."""
        tables = self.table.get("recipes", {}).get(recipe, {})
        return {f"{section}.{k}": v for section, values in tables.items() for k, v in values.items()}


def user_preset_dir() -> Path:
    env = os.environ.get("GPTBENCH_PRESETS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gptbench" / "presets"


# A tree that was never `pip install`ed (a copy sent to a GPU machine) has no
# workbench.bundled_presets: its presets are the repository's own.
REPO_PRESETS = Path(__file__).resolve().parents[1] / "presets"


def _bundled_files() -> dict[str, Path]:
    try:
        bundled = resources.files("workbench.bundled_presets")
    except ModuleNotFoundError:
        bundled = REPO_PRESETS
    entries = sorted(bundled.iterdir(), key=lambda e: e.name)
    return {entry.name[:-5]: Path(str(entry)) for entry in entries if entry.name.endswith(".toml")}


def _preset_files() -> dict[str, Path]:
    files = _bundled_files()
    user = user_preset_dir()
    if user.is_dir():
        for path in sorted(user.glob("*.toml")):
            files[path.stem] = path
    return files


def _read(name: str, path: Path) -> Preset:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {path} does not exist.",
            "check the path; `gptbench presets NAME > FILE` writes one to start from.",
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"Preset file {path} could not be read: {exc}.", "fix the TOML syntax or remove the file."
        ) from None
    for group, example in (("profiles", "[profiles.cpu.model]"), ("recipes", "[recipes.modern.model]")):
        tables = table.get(group, {})
        if not isinstance(tables, dict) or not all(isinstance(p, dict) for p in tables.values()):
            raise ConfigError(
                f"Preset file {path}: [{group}] must hold tables, like {example}.", "fix the file or remove it."
            )
    description = str(table.pop("description", ""))
    bundled = _bundled_files().get(name)
    shadows = str(bundled) if bundled is not None and bundled != path else None
    return Preset(name=name, description=description, path=str(path), table=table, shadows=shadows)


def scan() -> tuple[dict[str, Preset], list[ConfigError]]:
    """Read every preset file: the presets that could be read, and why each other one could not."""
    found: dict[str, Preset] = {}
    broken: list[ConfigError] = []
    for name, path in _preset_files().items():
        try:
            found[name] = _read(name, path)
        except ConfigError as exc:
            broken.append(exc)
    return found, broken


def available() -> dict[str, Preset]:
    """The presets that can be read."""
    return scan()[0]


def load(name: str) -> Preset:
    files = _preset_files()
    if name not in files:
        raise ConfigError(f"Unknown preset {name!r}.", f"choose one of: {', '.join(files)}.")
    return _read(name, files[name])


def load_file(path: Path) -> Preset:
    """A user's own config file (`--config FILE`): a TOML file shaped like a preset."""
    path = Path(path).expanduser()
    preset = _read(path.stem, path)
    preset.shadows = None
    return preset


def auto_profile(preset: Preset, device_kind: str) -> str:
    profiles = preset.profiles
    if device_kind == "cuda" and "gpu" in profiles:
        return "gpu"
    if device_kind != "cuda" and "cpu" in profiles:
        return "cpu"
    return "default"


def resolve(
    preset: Preset, overrides: list[str], device_kind: str = "cpu", config_file: Preset | None = None
) -> Config:
    """Build the run's Config. `device_kind` is cpu, cuda or mps; `config_file` is a user's --config FILE."""
    parsed = [parse_override(o) for o in overrides]
    cfg = Config(preset=preset.name)
    apply_table(cfg, base_tables(preset.table), preset.path)
    # --set has the last word, but the device it names decides the profile.
    for key, value in parsed:
        if key == "train.device":
            set_value(cfg, key, value)
    device = cfg.train.device
    if device != "auto":
        device_kind = device.split(":")[0]
    profile = next((v for k, v in parsed if k == "profile"), None) or auto_profile(preset, device_kind)
    if profile != "default":
        if profile not in preset.profiles:
            choices = ", ".join(["default", *preset.profiles])
            raise ConfigError(f"Preset {preset.name!r} has no profile {profile!r}.", f"choose one of: {choices}.")
        apply_table(cfg, preset.table["profiles"][profile], f"{preset.path} [profiles.{profile}]")
    cfg.profile = profile
    explicit: dict[str, object] = {}  # model.* keys the user chose, which init_from may not override
    recipe = ([v for k, v in parsed if k == "recipe"] or ["classic"])[-1]  # the last --set wins
    if recipe not in preset.recipes:
        raise ConfigError(
            f"Preset {preset.name!r} has no recipe {recipe!r}.", f"choose one of: {', '.join(preset.recipes)}."
        )
    if recipe != "classic":
        apply_table(cfg, preset.table["recipes"][recipe], f"{preset.path} [recipes.{recipe}]")
        explicit.update({k: v for k, v in preset.recipe_keys(recipe).items() if k.startswith("model.")})
    cfg.recipe = recipe
    if config_file is not None:
        layer = base_tables(config_file.table)
        apply_table(cfg, layer, config_file.path)
        explicit.update({f"model.{k}": v for k, v in layer.get("model", {}).items()})
    for key, value in parsed:
        if key not in ("profile", "recipe"):
            set_value(cfg, key, value)
            explicit[key] = value
    adopt_architecture(cfg, explicit)
    validate(cfg)
    return cfg


def base_tables(table: dict) -> dict:
    """A preset's [model]/[data]/[train]/[log] tables, without its profiles and recipes."""
    return {k: v for k, v in table.items() if k not in ("profiles", "recipes")}


def resolve_run(name: str | None, config_path: Path | None, overrides: list[str], device_kind: str = "cpu") -> Config:
    """The config of `gptbench run [PRESET] [--config FILE] [--set ...]`: FILE alone is the preset."""
    if name is None and config_path is None:
        raise ConfigError(
            "No preset given.",
            "e.g. gptbench run addition --headless, or --config FILE; `gptbench presets` lists them.",
        )
    if name is None:
        return resolve(load_file(config_path), overrides, device_kind)
    return resolve(load(name), overrides, device_kind, load_file(config_path) if config_path else None)


# The vocabulary a tokenizer usually has, for counting parameters before any
# data is read (a char vocabulary is only known from its text; tiny Shakespeare has 65).
TYPICAL_VOCAB = {"digits": 10, "char": 65, "gpt2": 50257}


def summary(preset: Preset, device_kind: str = "cpu", overrides: list[str] = ()) -> dict:
    """What `gptbench presets` and the picker show for one preset."""
    cfg = resolve(preset, list(overrides), device_kind)
    model = replace(cfg.model, vocab_size=cfg.model.vocab_size or TYPICAL_VOCAB[cfg.data.tokenizer])
    return {
        "name": preset.name,
        "description": preset.description,
        "profile": cfg.profile,
        "params": estimate_params(model),
        "tokens_per_step": cfg.tokens_per_step(1),
        "max_steps": cfg.train.max_steps,
        "config": cfg,
    }
