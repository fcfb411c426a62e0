"""Named target presets: evoprompt/conf/target/NAME.yaml, the target of experiments/NAME.yaml, or a
local model folder (run with the hf backend)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from .errors import unknown

TARGETS = Path(__file__).parent / "conf" / "target"
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def preset_names() -> list[str]:
    return sorted({p.stem for p in TARGETS.glob("*.yaml")} | {p.stem for p in EXPERIMENTS.glob("*.yaml")})


def target_preset(name: str) -> dict:
    if (TARGETS / f"{name}.yaml").exists():
        return OmegaConf.to_container(OmegaConf.load(TARGETS / f"{name}.yaml"))
    if (EXPERIMENTS / f"{name}.yaml").exists():
        base = OmegaConf.load(TARGETS / "embedded.yaml")
        return OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.load(EXPERIMENTS / f"{name}.yaml").get("target", {})))
    if Path(name).is_dir():
        return {"backend": "hf", "model": name}
    raise unknown("target preset", name, preset_names())
