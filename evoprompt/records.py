"""The central nouns, typed: what a run makes, checkpoints and writes, and what every reader gets back.

Each record is a dataclass with `to_json()` and a tolerant `from_json(d)` (as OpenEvolve's `Program`): unknown
fields are ignored, missing ones take their defaults, nested records are built from their own type, so files
written by an older or newer evoprompt still read. `FORMAT_VERSION` counts the output format: 3 nests an
exported item's figures under `score`, as candidates.jsonl always had them (2 had them flat)."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from functools import cache

from evoprompt.errors import UserError
from evoprompt.files import read_json

FORMAT_VERSION = 3


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _build(tp, v):
    """v (plain JSON) as type tp: records from mappings, lists and dicts of them element-wise."""
    if v is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], v) if len(inner) == 1 else v
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(v) if isinstance(v, dict) else v
    if origin is list and args and isinstance(v, list):
        return [_build(args[0], x) for x in v]
    if origin is dict and args and isinstance(v, dict):
        return {k: _build(args[1], x) for k, x in v.items()}
    return v


def _plain(v):
    if isinstance(v, Record):
        return v.to_json()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


class Record:
    """to_json / from_json for the dataclasses below; a field with metadata transient=True is never written."""

    def to_json(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if not f.metadata.get("transient")}

    @classmethod
    def from_json(cls, d: dict):
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init and not f.metadata.get("transient")}
        return cls(**{k: _build(hints[k], v) for k, v in d.items() if k in names})


@dataclass
class Sample(Record):
    """One sampled answer of a target: its log-prob, length in tokens and the refusal judge's probability."""
    text: str = ""
    logprob: float = 0.0
    tokens: int = 0
    refusal: float = 0.0
    target: str | None = None


@dataclass
class Terms(Record):
    """F(x), its two terms and the refusal figures behind them."""
    fitness: float = 0.0
    refusal_term: float = 0.0
    likelihood_term: float = 0.0
    refusal_prob: float = 0.0
    judge_refusal_rate: float = 0.0
    opener_prob: float = 0.0
    mean_logprob: float = 0.0


@dataclass
class TargetScore(Terms):
    """One target's figures for an instruction; `refused` (one of its samples refused, confirmed by the phrase
    detector) is set on exported items."""
    refused: bool | None = None


@dataclass
class Score(Terms):
    """F(x) and its terms (means over the targets, F by `fitness.aggregate`), the samples of every target and
    the per-target figures."""
    diversity: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    targets: dict[str, TargetScore] = field(default_factory=dict)
    embedding: list[float] | None = field(default=None, compare=False, metadata={"transient": True})

    def summary(self) -> Score:
        """The score without its samples (candidates.jsonl's history)."""
        return dataclasses.replace(self, samples=[])


@dataclass
class Verdict(Record):
    """The harmlessness gate's (or the seed-copy guard's) word on a candidate."""
    safe: bool = False
    p_safe: float | None = None
    verdict: str = ""       # "safe" | "unsafe" | "blocked: <phrase>" | "person harm: <phrase>" | a guard's reason

    def to_json(self) -> dict:
        return {"safe": self.safe, "p_safe": None if self.p_safe is None else round(self.p_safe, 4),
                "verdict": self.verdict}


@dataclass
class Text(Record):
    id: str | None = None
    text: str | None = None


@dataclass
class Seed(Text):
    category: str | None = None
    source: str | None = None
    harmful: bool | None = None


@dataclass
class SeedRef(Record):
    """Which seed an exported item descends from, without its text: seeds are never gated, so an export never
    carries one (the run's checkpoint.json keeps the seeds themselves)."""
    id: str | None = None
    category: str | None = None
    source: str | None = None
    harmful: bool | None = None


@dataclass
class Instruction(Text):
    """An instruction the search made: where it came from and what the screens and the gate said of it."""
    reason: str = ""
    lineage: str = ""
    generation: int = 0
    operator: str = "seed"
    method: str = "seed"
    parents: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)  # the parent's trigger words the `trigger` strategy showed
    seed_similarity: float | None = None
    fluency: float | None = None
    gate: Verdict | None = None


@dataclass
class Candidate(Instruction):
    """An instruction in the search, with its score once evaluated."""
    score: Score | None = None
    embedding: list[float] | None = field(default=None, compare=False, metadata={"transient": True})

    @property
    def fitness(self) -> float:
        return self.score.fitness

    def summary(self) -> Candidate:
        return dataclasses.replace(self, score=self.score.summary() if self.score else None)


@dataclass
class Rejection(Instruction):
    """An instruction that never reached scoring: filtered (`why`: length, topic, fluency, a rewrite given up) or
    rejected by the seed-copy guard or the gate (`gate` holds the verdict)."""
    stage: str | None = None
    why: str | None = None

    @classmethod
    def of(cls, c: Candidate, **extra) -> Rejection:
        return cls(**{f.name: getattr(c, f.name) for f in dataclasses.fields(Instruction)}, **extra)


@dataclass
class Lineage(Record):
    chain: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    generation: int = 0
    operator: str = ""
    method: str | None = None


@dataclass
class Safety(Record):
    verdict: str = ""
    p_safe: float | None = None
    reason: str = ""


@dataclass
class Provenance(Record):
    """Which models, judge, configuration and evoprompt made a record."""
    target_model: str | None = None
    target_backend: str | None = None
    target_system_prompt: str | None = None
    targets: list[dict] | None = None   # several targets: name, model, backend, system_prompt each
    rewriter_model: str | None = None
    gate_model: str | None = None
    refusal_judge: str | None = None
    config_hash: str | None = None
    evoprompt_version: str | None = None
    format_version: int = FORMAT_VERSION


@dataclass
class BenchmarkItem(Record):
    """An exported instruction (benchmark.jsonl): which seed it descends from (not the seed's text), its lineage,
    score with every sample and per-target label, the gate's verdict and the run's provenance."""
    id: str = ""
    text: str = ""
    category: str | None = None
    seed: SeedRef = field(default_factory=SeedRef)
    seed_similarity: float | None = None
    fluency: float | None = None
    lineage: Lineage = field(default_factory=Lineage)
    score: Score = field(default_factory=Score)
    targets_refusing: int = 0
    safety: Safety = field(default_factory=Safety)
    provenance: Provenance = field(default_factory=Provenance)

    @classmethod
    def from_json(cls, d: dict) -> BenchmarkItem:
        """Format 2 held the score's fields at the top level and the lineage's operator/method there too."""
        if "score" not in d and "fitness" in d:
            d = {**d, "score": {k: v for k, v in d.items() if k in _SCORE_FIELDS}}
        return super().from_json(d)


@dataclass
class RunInfo(Record):
    """run.json's `info`: what a finished run did."""
    generations: int = 0
    resumed_after_generation: int = -1
    lineages: int = 0
    wall_time_s: float = 0.0
    refusal_prob_first_last: list[float | None] = field(default_factory=lambda: [None, None])
    mean_fitness_first_last: list[float | None] = field(default_factory=lambda: [None, None])
    items_per_1000_target_samples: float = 0.0
    target_samples: int = 0
    model_calls: dict[str, int] = field(default_factory=dict)
    usage: dict[str, dict] = field(default_factory=dict)
    cache_hits: int | None = None
    cache_misses: int | None = None
    rewrites_given_up: int = 0
    operators: dict[str, dict[str, int]] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    transfer: dict | None = None


_SCORE_FIELDS = {f.name for f in dataclasses.fields(Score)}


@dataclass
class Counters(Record):
    """Running totals of a run (checkpointed): per operator/method, then of the whole search."""
    operators: dict[str, dict[str, int]] = field(default_factory=dict)
    scored: int = 0
    target_samples: int = 0
    gated: int = 0
    gate_passed: int = 0
    rewrite_failures: int = 0

    def outcome(self, c: Candidate, outcome: str) -> None:
        """Per operator/method: tried, filtered, rejected, scored, improved."""
        row = self.operators.setdefault(f"{c.operator}/{c.method}", dict.fromkeys(
            ("tried", "filtered", "rejected", "scored", "improved"), 0))
        row[outcome] += 1


@dataclass
class Stats(Record):
    """Fitness statistics of a set of candidates (DEAP's tools.Statistics)."""
    mean: float = 0.0
    max: float = 0.0
    min: float = 0.0
    std: float = 0.0


@dataclass
class GenerationRecord(Record):
    """One generation of the search (the logbook's row): what was tried, dropped, accepted, and the population."""
    gen: int = 0
    candidates: int = 0                      # scored this generation
    filtered: int = 0
    rejected: int = 0
    accepted: int = 0                        # lineages whose current instruction changed
    lineages: int = 0
    elites: int = 0
    tau: float = 0.0                         # the annealing temperature
    population: Stats = field(default_factory=Stats)
    candidates_fitness: Stats | None = None  # None when nothing was scored
    refusal_prob: float = 0.0                # population means
    judge_refusal_rate: float = 0.0
    opener_prob: float = 0.0
    best_ever: float | None = None
    target_samples: int = 0                  # running total
    calls: dict[str, int] = field(default_factory=dict)        # model calls per role this generation
    seconds: dict[str, float] = field(default_factory=dict)    # wall seconds per stage this generation
    mode: str = "depth"                      # depth: rewrite the current instructions; breadth: frame the seeds


@dataclass
class RunState(Record):
    """Everything a resume needs (checkpoint.json)."""
    config_hash: str = ""
    generation: int = -1                                         # last finished generation (0 = seeds scored)
    current: dict[str, Candidate] = field(default_factory=dict)  # lineage -> candidate x_t
    best: dict[str, Candidate] = field(default_factory=dict)     # lineage -> best-ever safe candidate
    seeds: dict[str, Seed] = field(default_factory=dict)         # lineage -> its seed
    rejected: list[Rejection] = field(default_factory=list)      # seed-copy guard and gate rejections
    filtered: list[Rejection] = field(default_factory=list)      # dropped before scoring, with the reason
    elites: dict[str, list[Candidate]] = field(default_factory=dict)  # niche -> best candidates
    history: list[Candidate] = field(default_factory=list)       # every scored candidate, without samples
    logbook: list[GenerationRecord] = field(default_factory=list)  # one record per generation
    chooser: dict = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)                # dedupe keys of every instruction produced
    archive: list[list[float]] = field(default_factory=list)     # unit embeddings of accepted instructions
    counters: Counters = field(default_factory=Counters)
    saturated_at: int | None = None  # the generation after which the target refused (nearly) everything


@dataclass
class MetricRow(Record):
    """One figure of a measurement (eval's results.csv, align's and build-guarded's profiles): a set, a target
    ("-" for a set's own figures), the metric, its value and its 95% interval where it has one."""
    set: str = ""
    target: str = "-"
    metric: str = ""
    value: float | int | None = None
    lo: float | None = None
    hi: float | None = None


class Metrics(list):
    """The MetricRows of one measurement, in the order they were added; `add` has the measuring code's signature."""

    def add(self, set_: str, target: str, metric: str, value, lo=None, hi=None) -> None:
        self.append(MetricRow(set_, target, metric, value, lo, hi))

    def get(self, set_: str, target: str, metric: str) -> MetricRow:
        return next(r for r in self if (r.set, r.target, r.metric) == (set_, target, metric))


@dataclass
class ExplainRow(Record):
    """One prompt, target and method of `explain`: the words, their attributions and the deletion test."""
    set: str = ""
    id: str = ""
    target: str = ""
    method: str = ""
    score_kind: str = ""
    text: str = ""
    category: str = ""
    focus: str = ""
    words: list[str] = field(default_factory=list)
    attributions: list[float] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    score: float = 0.0
    score_without_top: float = 0.0
    score_without_random: float = 0.0


@dataclass
class ThresholdReport(Record):
    """The gate at one threshold on p(safe): what it rejects of the unsafe prompts and passes of the safe ones."""
    threshold: float = 0.0
    accuracy: float | None = None
    unsafe_recall: float | None = None
    unsafe_precision: float | None = None
    safe_pass_rate: float | None = None
    confusion: list[list[int]] = field(default_factory=list)  # [[safe passed, safe rejected], [unsafe passed, unsafe rejected]]


@dataclass
class GateCalibration(Record):
    """gate_calibration.json (`evoprompt gate-calibrate`): the gate on labelled prompts."""
    gate: dict = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    n: int = 0
    n_unsafe: int = 0
    auroc: float | None = None
    configured: ThresholdReport = field(default_factory=ThresholdReport)
    target_recall: float | None = None
    for_target_recall: ThresholdReport | None = None
    p_safe: dict = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, path) -> GateCalibration:
        """A gate_calibration.json; a file of another shape is one UserError naming what it lacks."""
        d = read_json(path)
        conf = d.get("configured")
        if not isinstance(conf, dict) or not isinstance(conf.get("threshold"), (int, float)) \
                or not isinstance(d.get("n"), int):
            raise UserError(f"{path}: not a gate calibration (needs 'n' and 'configured' with its 'threshold'; "
                            "written by `evoprompt gate-calibrate`)")
        return cls.from_json(d)
