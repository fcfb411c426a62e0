"""A finished run directory, read from its output files alone.

Publishing and the HTML report work from what a run wrote (benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl,
candidates.jsonl, run.json, checkpoint.json) rather than from the search's objects, so they work on any run
directory, old or new. The record formats grow fields over time: everything here reads with defaults, and a
missing file reads as empty."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from evoprompt.errors import UserError


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not a JSON record ({e.msg})") from None
    return rows


def read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not JSON ({e.msg})") from None


def dig(d, *keys, default=None):
    """d[k1][k2]... or default where any step is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return default
        d = d[k]
    return d


@dataclass
class Run:
    path: Path
    benchmark: list[dict] = field(default_factory=list)
    sft: list[dict] = field(default_factory=list)
    dpo: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    candidates: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)      # run.json
    checkpoint: dict = field(default_factory=dict)
    gate_calibration: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.summary.get("config") or {}

    @property
    def info(self) -> dict:
        return self.summary.get("info") or {}

    @property
    def provenance(self) -> dict:
        return self.info.get("provenance") or next((r["provenance"] for r in self.benchmark
                                                    if isinstance(r.get("provenance"), dict)), {})

    @property
    def logbook(self) -> list[dict]:
        return self.summary.get("logbook") or self.checkpoint.get("logbook") or []

    @property
    def chooser(self) -> dict:
        return self.summary.get("chooser") or self.checkpoint.get("chooser") or {}

    def setting(self, *keys, default=None):
        """A configuration value: run.json's resolved config, else the provenance's flat `<role>_<key>` form."""
        v = dig(self.config, *keys)
        return v if v is not None else self.provenance.get("_".join(keys), default)


def load_run(path: Path, gate_calibration: Path | None = None) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist")
    if not (path / "benchmark.jsonl").is_file() and not (path / "run.json").is_file():
        raise UserError(f"{path} is not a run directory (no benchmark.jsonl or run.json)")
    calibration = gate_calibration or path / "gate_calibration.json"
    if gate_calibration and not calibration.is_file():
        raise UserError(f"gate calibration file {calibration} does not exist")
    return Run(path, *(read_jsonl(path / f"{n}.jsonl") for n in ("benchmark", "sft", "dpo", "rejected", "candidates")),
               read_json(path / "run.json"), read_json(path / "checkpoint.json"), read_json(calibration))
