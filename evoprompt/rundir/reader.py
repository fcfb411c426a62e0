"""A finished run directory, read from its output files alone, as typed records.

Publishing and the HTML report work from what a run wrote (benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl,
candidates.jsonl, run.json, checkpoint.json) rather than from the search's objects, so they work on any run
directory, old or new: the records' tolerant `from_json` fills what an older format lacks, a missing file reads as
empty, and a file of the wrong shape (not UTF-8, not JSON, a list where a record belongs) is one UserError naming
it. run.json's configuration is typed (`config`, a RunConfig; None for a run that did not store one)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evoprompt.errors import UserError
from evoprompt.files import read_json, read_jsonl
from evoprompt.records import BenchmarkItem, Candidate, ExplainRow, GateCalibration, Provenance, Rejection, RunInfo, RunState
from evoprompt.schema import RunConfig
from evoprompt.validate import loose


def _jsonl(path: Path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []


def _json(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def _records(cls, rows: list[dict], path: Path) -> list:
    out = []
    for n, r in enumerate(rows, 1):
        try:
            out.append(cls.from_json(r))
        except (TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{path}: record {n} is not a {cls.__name__} ({e})") from None
    return out


@dataclass
class Run:
    path: Path
    benchmark: list[BenchmarkItem] = field(default_factory=list)
    sft: list[dict] = field(default_factory=list)       # TRL conversational records, as written
    dpo: list[dict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    info: RunInfo = field(default_factory=RunInfo)       # run.json's info
    config: RunConfig | None = None                      # run.json's resolved configuration
    state: RunState = field(default_factory=RunState)    # checkpoint.json: logbook, chooser, seeds
    gate_calibration: GateCalibration | None = None
    explain: list[ExplainRow] = field(default_factory=list)  # explain.jsonl, after `evoprompt explain run=DIR`

    @property
    def provenance(self) -> Provenance:
        if self.info.provenance.config_hash or not self.benchmark:
            return self.info.provenance
        return self.benchmark[0].provenance

    def seed_text(self, seed_id: str | None) -> str | None:
        """A seed's text, from the run's own checkpoint (items never carry it)."""
        s = self.state.seeds.get(seed_id or "")
        return s.text if s else None


def load_run(path: Path, gate_calibration: Path | None = None) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist")
    if not (path / "benchmark.jsonl").is_file() and not (path / "run.json").is_file():
        raise UserError(f"{path} is not a run directory (no benchmark.jsonl or run.json)")
    calibration = gate_calibration or path / "gate_calibration.json"
    if gate_calibration and not calibration.is_file():
        raise UserError(f"gate calibration file {calibration} does not exist")
    summary = _json(path / "run.json")
    config = summary.get("config")

    def rows(name: str, cls) -> list:
        return _records(cls, _jsonl(path / name), path / name)

    return Run(path, rows("benchmark.jsonl", BenchmarkItem), _jsonl(path / "sft.jsonl"), _jsonl(path / "dpo.jsonl"),
               rows("rejected.jsonl", Rejection), rows("candidates.jsonl", Candidate),
               _records(RunInfo, [summary.get("info") or {}], path / "run.json")[0],
               loose(RunConfig, config, f"{path / 'run.json'}: config") if config else None,
               _records(RunState, [_json(path / "checkpoint.json")], path / "checkpoint.json")[0],
               GateCalibration.read(calibration) if calibration.is_file() else None,
               rows("explain.jsonl", ExplainRow))
