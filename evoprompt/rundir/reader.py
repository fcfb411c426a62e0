"""A finished run directory, read from its output files alone, as typed records.

Publishing and the HTML report work from what a run wrote (benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl,
candidates.jsonl, run.json, checkpoint.json) rather than from the search's objects, so they work on any run
directory, old or new: the records' tolerant `from_json` fills what an older format lacks, and a missing file
reads as empty."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from evoprompt.errors import UserError
from evoprompt.records import BenchmarkItem, Candidate, Provenance, Rejection, RunInfo, RunState


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


@dataclass
class Run:
    path: Path
    benchmark: list[BenchmarkItem] = field(default_factory=list)
    sft: list[dict] = field(default_factory=list)       # TRL conversational records, as written
    dpo: list[dict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    info: RunInfo = field(default_factory=RunInfo)       # run.json's info
    config: dict = field(default_factory=dict)           # run.json's resolved configuration
    state: RunState = field(default_factory=RunState)    # checkpoint.json: logbook, chooser
    gate_calibration: dict = field(default_factory=dict)
    explain: list[dict] = field(default_factory=list)    # explain.jsonl, after `evoprompt explain run=DIR`
    review: dict | None = None                           # export review=[...]: what people decided (review.summary)

    @property
    def provenance(self) -> Provenance:
        if self.info.provenance.config_hash or not self.benchmark:
            return self.info.provenance
        return self.benchmark[0].provenance

    def setting(self, *keys, default=None):
        """A configuration value: run.json's resolved config, else the provenance's flat `<role>_<key>` form."""
        v = self.config
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if v is None:
            v = getattr(self.provenance, "_".join(keys), None)
        return default if v is None else v


def load_run(path: Path, gate_calibration: Path | None = None) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist")
    if not (path / "benchmark.jsonl").is_file() and not (path / "run.json").is_file():
        raise UserError(f"{path} is not a run directory (no benchmark.jsonl or run.json)")
    calibration = gate_calibration or path / "gate_calibration.json"
    if gate_calibration and not calibration.is_file():
        raise UserError(f"gate calibration file {calibration} does not exist")
    summary = read_json(path / "run.json")
    return Run(path, [BenchmarkItem.from_json(r) for r in read_jsonl(path / "benchmark.jsonl")],
               read_jsonl(path / "sft.jsonl"), read_jsonl(path / "dpo.jsonl"),
               [Rejection.from_json(r) for r in read_jsonl(path / "rejected.jsonl")],
               [Candidate.from_json(r) for r in read_jsonl(path / "candidates.jsonl")],
               RunInfo.from_json(summary.get("info", {})), summary.get("config", {}),
               RunState.from_json(read_json(path / "checkpoint.json")), read_json(calibration),
               read_jsonl(path / "explain.jsonl"))
