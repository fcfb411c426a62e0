"""`evoprompt export`: a finished run as a Hugging Face dataset (+ card), an inspect_ai task, an lm-eval task
(evoprompt/publish/). Nothing in the run directory is changed."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from evoprompt.errors import UserError
from evoprompt.publish import publish, withheld_path
from evoprompt.schema import ExportCommandConfig
from evoprompt.validate import typed

HELP = "publish a run: HF dataset with card, inspect_ai task, lm-eval task (run=DIR format=... out=DIR)"
CONFIG = "export"  # its config in evoprompt/conf


def main(cfg, _hydra_dir: Path) -> dict:
    c = typed(ExportCommandConfig, OmegaConf.to_container(cfg, resolve=True))
    if not c.run:
        raise UserError("no run directory given: export run=RUN_DIR format=hf|inspect|lm-eval|all out=DIR")
    out = Path(c.out or Path(c.run) / "publish")
    written = publish(Path(c.run), c.format, out, rejected=c.rejected, license=c.license,
                      gate_calibration=Path(c.gate_calibration) if c.gate_calibration else None,
                      review=c.review, review_rule=c.review_rule)
    held = written.pop("withheld")
    for fmt, w in written.items():
        print(f"{fmt}: {w['path']}  ({', '.join(f'{k} {v}' for k, v in w.items() if k != 'path')})")
    if held:
        print(f"withheld: {held} items not published (gate verdict, screens or review), listed with the reason in "
              f"{withheld_path(out)}")
    return written
