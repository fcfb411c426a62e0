"""`evoprompt judge-train`: the embedding refusal classifier, trained on labelled responses."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from evoprompt.fitness.refusal.classifier import load_labelled_files, train_classifier
from evoprompt.progress import make_console
from evoprompt.roles import Roles
from evoprompt.schema import JudgeConfig
from evoprompt.validate import typed

HELP = "train the embedding refusal classifier from labelled responses"
CONFIG = "judge"  # its config in evoprompt/conf


def main(cfg, run_dir: Path) -> None:
    c = typed(JudgeConfig, OmegaConf.to_container(cfg, resolve=True))
    data = load_labelled_files(c.data)
    rows = [r for rs in data.values() for r in rs]
    clf = train_classifier([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                           Roles(c.cache, c.embedder).embedder(),
                           attribution="trained by evoprompt judge-train on: " + ", ".join(map(str, data)))
    out = Path(c.out or run_dir / "refusal_classifier.npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    make_console(stderr=True).print(f"trained on {len(rows)} labelled responses ({sum(r[2] for r in rows)} refusals); "
                                    f"saved {out}; use it with fitness.judge.name=classifier fitness.judge.model={out}")
