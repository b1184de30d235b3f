"""Bundled presets: the TOML files in this folder ship inside the wheel as `workbench.bundled_presets`."""
