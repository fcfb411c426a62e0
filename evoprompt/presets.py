"""Named target presets: evoprompt/conf/target/NAME.yaml, the target of an experiment preset, or a
local model folder (run with the hf backend). Experiment presets are the package data of
evoprompt.experiments (the top-level experiments/ folder of a checkout)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from evoprompt import experiments as _experiments
from evoprompt.errors import unknown

TARGETS = Path(__file__).parent / "conf" / "target"
EXPERIMENTS = Path(_experiments.__file__).parent


def experiment_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXPERIMENTS.glob("*.yaml"))}


def preset_names() -> list[str]:
    return sorted({p.stem for p in TARGETS.glob("*.yaml")} | set(experiment_files()))


def target_preset(name: str) -> dict:
    if (TARGETS / f"{name}.yaml").exists():
        return OmegaConf.to_container(OmegaConf.load(TARGETS / f"{name}.yaml"))
    if (EXPERIMENTS / f"{name}.yaml").exists():
        base = OmegaConf.load(TARGETS / "embedded.yaml")
        return OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.load(EXPERIMENTS / f"{name}.yaml").get("target", {})))
    if (Path(name) / "adapter_config.json").is_file():  # a LoRA adapter (evoprompt align): its base model + it
        import json

        base = json.loads((Path(name) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        return {"backend": "hf", "model": base, "adapter": name}
    if Path(name).is_dir():
        return {"backend": "hf", "model": name}
    raise unknown("target preset", name, preset_names())
