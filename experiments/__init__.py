"""Hydra presets selected with `+experiment=NAME` (the YAML files beside this one), shipped as package data."""
