"""The mutation strategies, one data file each (`# family: ...` then the task): the nine of docs/METHOD.md section 2
and `trigger`, whose task names the parent's top trigger words (`{marked}`, from word occlusion; docs/run.md)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evoprompt.errors import unknown

_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Strategy:
    name: str
    family: str
    task: str


def _load(path: Path) -> Strategy:
    head, _, body = path.read_text(encoding="utf-8").partition("\n")
    return Strategy(path.stem, head.removeprefix("# family:").strip(), body.strip())


STRATEGIES: dict[str, Strategy] = {p.stem: _load(p) for p in sorted(_DIR.glob("*.txt"))}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise unknown("strategy", name, STRATEGIES)
    return STRATEGIES[name]
