"""The mutation strategies, one data file each: header lines `# family: ...` (the paper's strategy family) and
`# prior: ...` (the weight search.strategy_weights starts from: the paper's observed success rate; `trigger`, not in
the paper, 0.10), then the task. The nine of docs/METHOD.md section 2 and `trigger`, whose task names the parent's
top trigger words (`{marked}`, from word occlusion; docs/run.md). A new file is a new strategy: the contract test
(tests/test_registry.py) checks its header and that it has framings and few-shot examples."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evoprompt.errors import UserError, unknown

_DIR = Path(__file__).parent
HEADER = ("family", "prior")


@dataclass(frozen=True)
class Strategy:
    name: str
    family: str
    prior: float
    task: str


def _load(path: Path) -> Strategy:
    meta, lines = {}, path.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        key, _, value = lines.pop(0).removeprefix("#").partition(":")
        meta[key.strip()] = value.strip()
    missing = [k for k in HEADER if not meta.get(k)]
    if missing:
        raise UserError(f"{path}: no '# {missing[0]}: ...' line; a strategy file starts with "
                        + " and ".join(f"'# {k}: ...'" for k in HEADER))
    try:
        prior = float(meta["prior"])
    except ValueError:
        raise UserError(f"{path}: prior {meta['prior']!r} is not a number") from None
    return Strategy(path.stem, meta["family"], prior, "\n".join(lines).strip())


STRATEGIES: dict[str, Strategy] = {p.stem: _load(p) for p in sorted(_DIR.glob("*.txt"))}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise unknown("strategy", name, STRATEGIES)
    return STRATEGIES[name]


def priors() -> dict[str, float]:
    return {name: s.prior for name, s in STRATEGIES.items()}
