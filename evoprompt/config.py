"""Typed configuration, validated once at the edge, before any model loads.

Hydra composes the YAML (evoprompt/conf, experiments/) and the command line; `typed(RunConfig, dict)` then
turns the result into the dataclasses below. An unknown key, a wrong type or an out-of-range value stops
with one line naming the key and what is valid. A model role's engine keys (dtype, batch_size, base_url,
...) are checked against the constructor of the backend the role names, so no backend swallows a typo."""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import UserError


def opt(default=dataclasses.MISSING, *, check=None, why: str = "", key: str | None = None, factory=None):
    """A field with a range check (`check(value) -> bool`, `why` says what is valid) and an optional YAML name."""
    meta = {"check": check, "why": why, "key": key}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def positive(v) -> bool:
    return v > 0


def at_least(lo):
    return lambda v: v >= lo


def unit(v) -> bool:
    return 0.0 <= v <= 1.0


def open_unit(v) -> bool:
    return 0.0 < v < 1.0


def cosine(v) -> bool:
    return -1.0 <= v <= 1.0


# ---- sections -------------------------------------------------------------------------------------------
@dataclass
class DecodingConfig:
    temperature: float = opt(1.0, check=at_least(0.0), why=">= 0 (0 = greedy)")
    top_p: float = opt(1.0, check=lambda v: 0.0 < v <= 1.0, why="in (0, 1]")
    max_new_tokens: int = opt(64, check=positive, why=">= 1")


@dataclass
class RoleConfig:
    """A model role; `engine` holds the backend's own keys (checked against its constructor)."""
    backend: str = "hf"
    model: str = "embedded"
    decoding: DecodingConfig = opt(factory=DecodingConfig)
    system_prompt: str | None = None
    engine: dict = opt(factory=dict)

    def backend_config(self) -> dict:
        """What get_backend takes: backend, model and engine keys."""
        return {"backend": self.backend, "model": self.model, **self.engine}


@dataclass
class GateConfig(RoleConfig):
    mode: Literal["logprob", "text"] = "logprob"
    threshold: float = opt(0.5, check=unit, why="a probability in [0, 1]")
    prompt: str = "gate.txt"
    blocklist: list[str] = opt(factory=list)
    # seed-copy guard: rejected whatever the judge says (README, "Seed-copy guard")
    max_seed_similarity: float = opt(0.75, check=cosine, why="a cosine similarity in [-1, 1]")
    max_seed_overlap: float = opt(0.6, check=unit, why="a text overlap in [0, 1]")


@dataclass
class SeedsConfig:
    path: str | None = None
    set: Literal["harmless", "harmful"] = "harmless"
    format: Literal["auto", "jsonl", "csv", "xstest", "orbench", "phtest", "oktest"] = "auto"
    text_column: str | None = None
    split: Literal["safe", "unsafe", "controversial", "all"] = "safe"
    limit: int | None = opt(6, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)")


@dataclass
class FitnessConfig:
    K: int = opt(6, check=positive, why=">= 1")
    K_min: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1, or null (every candidate gets K)")
    race_z: float = opt(1.0, check=at_least(0.0), why=">= 0")
    lam: float = opt(0.05, check=at_least(0.0), why=">= 0", key="lambda")
    mu: float = opt(0.0, check=at_least(0.0), why=">= 0")
    eps: float = opt(0.05, check=open_unit, why="in (0, 1)")
    floor: Literal["hard", "soft"] = "soft"
    estimator: Literal["surrogate", "elbo"] = "surrogate"
    judge: str = "classifier"
    judge_model: str | None = None
    phrases: list[str] | None = None
    openers: list[str] = opt(factory=list)
    # several targets at once: preset names or mappings over `target`'s keys; [] = `target` alone
    targets: list[dict | str] = opt(factory=list)
    aggregate: Literal["mean", "min", "softmin"] = "mean"
    softmin_temperature: float = opt(0.5, check=positive, why="> 0")


@dataclass
class SearchConfig:
    L: int = opt(4, check=at_least(0), why=">= 0")
    N: int = opt(2, check=at_least(0), why=">= 0")
    tau_0: float = opt(0.1, check=at_least(0.0), why=">= 0")
    beta: float = opt(0.005, check=at_least(0.0), why=">= 0")
    tau_f: float = opt(0.05, check=at_least(0.0), why=">= 0")
    strategy: Literal["uniform", "weighted", "adaptive"] = "adaptive"
    strategy_weights: dict[str, float] = opt(factory=dict)
    max_attempts: int = opt(3, check=positive, why=">= 1")
    llm_share: float = opt(0.5, check=unit, why="a fraction in [0, 1]")
    max_chars: int = opt(300, check=positive, why=">= 1")
    min_words: int = opt(4, check=at_least(1), why=">= 1")
    min_seed_similarity: float = opt(0.35, check=cosine, why="a cosine similarity in [-1, 1]")
    min_fluency: float | None = opt(-6.0, check=lambda v: v is None or v <= 0, why="a mean log-prob <= 0, or null (off)")


@dataclass
class RewriterConfig(RoleConfig):
    style: Literal["chat", "completion"] = "completion"


@dataclass
class EmbedderConfig:
    model: str = "embedded-embedder"
    device: str = "auto"


@dataclass
class ExportConfig:
    sft_dpo: bool = True
    helper_attempts: int = opt(2, check=positive, why=">= 1")
    per_lineage: int = opt(5, check=positive, why=">= 1")
    min_refusal: float = opt(0.3, check=unit, why="a probability in [0, 1]")
    max_similarity: float = opt(0.9, check=cosine, why="a cosine similarity in [-1, 1]")
    pair_judge: str = "classifier"
    min_answer_similarity: float = opt(0.2, check=cosine, why="a cosine similarity in [-1, 1]")
    min_targets_refusing: int = opt(1, check=positive, why=">= 1")


@dataclass
class CacheConfig:
    enabled: bool = True
    path: str | None = None


@dataclass
class RunConfig:
    seed: int = 0
    generations: int = opt(5, check=at_least(0), why=">= 0")
    seeds: SeedsConfig = opt(factory=SeedsConfig)
    target: RoleConfig = opt(factory=RoleConfig)
    rewriter: RewriterConfig = opt(factory=RewriterConfig)
    gate: GateConfig = opt(factory=GateConfig)
    helper: RoleConfig = opt(factory=RoleConfig)
    fitness: FitnessConfig = opt(factory=FitnessConfig)
    search: SearchConfig = opt(factory=SearchConfig)
    embedder: EmbedderConfig = opt(factory=EmbedderConfig)
    export: ExportConfig = opt(factory=ExportConfig)
    cache: CacheConfig = opt(factory=CacheConfig)
    safety_prior: str = ""
    hydra: dict = opt(factory=dict)


# ---- evoprompt align -------------------------------------------------------------------------------------
@dataclass
class LoraSettings:
    r: int = opt(16, check=positive, why=">= 1")
    alpha: int = opt(32, check=positive, why=">= 1")
    dropout: float = opt(0.05, check=lambda v: 0.0 <= v < 1.0, why="in [0, 1)")
    target_modules: str | list[str] = "all-linear"


@dataclass
class StageSettings:
    """One training stage (TRL SFTTrainer or DPOTrainer); beta and loss_type are DPO's."""
    learning_rate: float = opt(2e-5, check=positive, why="> 0")
    max_steps: int = opt(30, check=positive, why=">= 1")
    batch_size: int = opt(4, check=positive, why=">= 1")
    grad_accum: int = opt(1, check=positive, why=">= 1")
    beta: float = opt(0.1, check=positive, why="> 0")
    loss_type: Literal["sigmoid", "hinge", "ipo", "robust"] = "sigmoid"


@dataclass
class EvalSet:
    """A prompt set measured before and after training. path: a file, `packaged:NAME` (the seeds shipped with
    evoprompt) or `shared:RELATIVE` (../shared/data; skipped with a note when absent)."""
    path: str
    kind: Literal["over-refusal", "harmful"] = "over-refusal"
    split: Literal["safe", "unsafe", "controversial", "all"] = "safe"
    name: str | None = None
    limit: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)")


@dataclass
class AlignSettings:
    retain: str | None = None
    retain_split: Literal["safe", "unsafe", "controversial", "all"] = "unsafe"
    retain_ratio: float = opt(0.5, check=at_least(0.0), why=">= 0")
    retain_attempts: int = opt(4, check=positive, why=">= 1")
    train_system_prompt: Literal["target", "none"] = "target"
    dedup_similarity: float = opt(0.9, check=cosine, why="a cosine similarity in [-1, 1]")
    max_overlap: float = opt(0.2, check=unit, why="a fraction in [0, 1]")
    max_length: int = opt(512, check=positive, why=">= 1")
    save_steps: int = opt(10, check=positive, why=">= 1")
    gradient_checkpointing: bool = False
    lora: LoraSettings = opt(factory=LoraSettings)
    sft: StageSettings = opt(factory=lambda: StageSettings(learning_rate=2e-5))
    dpo: StageSettings = opt(factory=lambda: StageSettings(learning_rate=1e-5))
    eval_sets: list[EvalSet] = opt(factory=list)
    eval_decoding: DecodingConfig = opt(factory=lambda: DecodingConfig(0.01, 1.0, 48))
    bootstrap: int = opt(1000, check=positive, why=">= 1")


@dataclass
class AlignConfig:
    seed: int = 0
    data: list[str] = opt(factory=list)
    method: Literal["sft", "dpo", "sft+dpo"] = "dpo"
    merge: bool = False
    target: RoleConfig = opt(factory=RoleConfig)
    align: AlignSettings = opt(factory=AlignSettings)
    refusal_judge: str = "classifier"
    embedder: EmbedderConfig = opt(factory=EmbedderConfig)
    cache: CacheConfig = opt(factory=CacheConfig)
    safety_prior: str = ""
    hydra: dict = opt(factory=dict)


# ---- conversion -----------------------------------------------------------------------------------------
def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp, v, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], v, key)
        for tp_ in inner:
            try:
                return _coerce(tp_, v, key)
            except UserError:
                pass
        raise UserError(f"{key} must be {' or '.join(_describe(a) for a in inner)}, got {v!r}")
    if origin is Literal:
        if v not in args:
            raise UserError(f"{key}: unknown value {v!r}; valid: {', '.join(sorted(map(str, args)))}")
        return v
    if dataclasses.is_dataclass(tp):
        return typed(tp, v, key)
    if tp is bool:
        if not isinstance(v, bool):
            raise UserError(f"{key} must be true or false, got {v!r}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise UserError(f"{key} must be a whole number, got {v!r}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"{key} must be a number, got {v!r}")
        return float(v)
    if tp is str:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise UserError(f"{key} must be a string, got {v!r}")
        return str(v)
    if origin is list:
        if not isinstance(v, (list, tuple)):
            raise UserError(f"{key} must be a list, got {v!r}")
        return [_coerce(args[0], x, f"{key}[{i}]") for i, x in enumerate(v)] if args else list(v)
    if origin is dict or tp is dict:
        if not isinstance(v, dict):
            raise UserError(f"{key} must be a mapping, got {v!r}")
        return {k: _coerce(args[1], x, f"{key}.{k}") for k, x in v.items()} if args else dict(v)
    return v


_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool}


def _role_engine(cls, data: dict, where: str) -> dict:
    """Split a role's mapping into its typed keys and the engine keys its backend's constructor takes."""
    from .llm import BACKENDS, backend_class

    own = {f.metadata.get("key") or f.name for f in dataclasses.fields(cls)} - {"engine"}
    name = data.get("backend", "hf")
    if name not in BACKENDS:
        raise UserError(f"{where}.backend: unknown backend {name!r}; valid: {', '.join(sorted(BACKENDS))}")
    params = inspect.signature(backend_class(name).__init__).parameters
    allowed = [p for p in params if p not in ("self", "model")]
    engine = {}
    for k, v in data.items():
        if k in own:
            continue
        if k not in allowed:
            raise UserError(f"unknown key '{where}.{k}' for the {name} backend; valid: "
                            f"{', '.join(sorted(own - {'engine'}) + allowed)}")
        hint = _SIMPLE.get(str(params[k].annotation).replace(" | None", ""))
        engine[k] = v if hint is None or (v is None and "None" in str(params[k].annotation)) else _coerce(hint, v, f"{where}.{k}")
    return engine


def typed(cls, data, where: str = ""):
    """Build dataclass `cls` from a plain mapping; every problem is one UserError naming its key."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.metadata.get("key") or f.name: f for f in fields}
    extra: dict = {}
    if issubclass(cls, RoleConfig):
        extra = _role_engine(cls, data, where)
    kw: dict[str, Any] = {}
    for k, v in data.items():
        if k in extra:
            continue
        f = names.get(k)
        if f is None or f.name == "engine":
            raise UserError(f"unknown key '{where + '.' if where else ''}{k}'; valid: "
                            f"{', '.join(n for n in names if n != 'engine')}")
        full = f"{where}.{k}" if where else k
        value = _coerce(hints[f.name], v, full)
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise UserError(f"{full} must be {f.metadata['why']}, got {v!r}")
        kw[f.name] = value
    if extra:
        kw["engine"] = extra
    return cls(**kw)


def role_mapping(role: RoleConfig) -> dict:
    """A typed role back as the mapping it was typed from."""
    return {"backend": role.backend, "model": role.model, "decoding": dataclasses.asdict(role.decoding),
            "system_prompt": role.system_prompt, **role.engine}


def target_label(role: dict) -> str:
    model = str(role.get("model", "embedded")).rstrip("/").rsplit("/", 1)[-1]
    return f"{role.get('backend', 'hf')}:{model}" + (" +system" if role.get("system_prompt") else "")


def target_pool(entries: list, base: dict, where: str) -> list[tuple[str, RoleConfig]]:
    """(name, role) per entry of a target list: a preset name (evoprompt/conf/target, an experiment's target, a
    model or adapter folder) or a mapping whose keys override `base` (`name:` sets the label). An entry that
    changes the backend does not inherit `base`'s engine keys, which belong to the other backend."""
    from .presets import target_preset

    out: list[tuple[str, RoleConfig]] = []
    for i, e in enumerate(entries):
        if isinstance(e, str):
            try:
                name, mapping = e, target_preset(e)
            except UserError as err:
                raise UserError(f"{where}[{i}]: {err}") from None
        elif isinstance(e, dict):
            e = dict(e)
            name = e.pop("name", None)
            inherit = base if e.get("backend", base.get("backend", "hf")) == base.get("backend", "hf") else \
                {k: v for k, v in base.items() if k in ("model", "decoding", "system_prompt")}
            mapping = {**inherit, **e, "decoding": {**inherit.get("decoding", {}), **(e.get("decoding") or {})}}
        else:
            raise UserError(f"{where}[{i}] must be a preset name or a mapping, got {e!r}")
        role = typed(RoleConfig, mapping, f"{where}[{i}]")
        name = str(name or target_label(mapping))
        if name in (n for n, _ in out):
            name = f"{name}#{i}"
        out.append((name, role))
    return out


def run_targets(cfg: RunConfig) -> list[tuple[str, RoleConfig]]:
    """The run's targets: fitness.targets, or `target` alone (named as a one-entry list equal to it would be)."""
    return target_pool(cfg.fitness.targets or [{}], role_mapping(cfg.target), "fitness.targets")


def target_roles(names: list[str]) -> list[str]:
    """How a run's targets appear among its roles (call counts, `check`): `target` alone, `target NAME` each."""
    return ["target"] if len(names) == 1 else [f"target {n}" for n in names]


def load_run_config(container: dict) -> RunConfig:
    cfg = typed(RunConfig, container)
    pool = run_targets(cfg)
    if cfg.export.min_targets_refusing > len(pool):
        raise UserError(f"export.min_targets_refusing ({cfg.export.min_targets_refusing}) exceeds the number of "
                        f"targets ({len(pool)}: {', '.join(n for n, _ in pool)})")
    if cfg.rewriter.style == "completion" and cfg.rewriter.backend == "openai":
        raise UserError("rewriter.style=completion needs the hf or vllm backend (raw-text continuation); "
                        "use rewriter.style=chat with an OpenAI-compatible rewriter")
    s = cfg.search
    if s.tau_f > s.tau_0:
        raise UserError(f"search.tau_f ({s.tau_f}) must not exceed search.tau_0 ({s.tau_0})")
    return cfg


def load_align_config(container: dict) -> AlignConfig:
    """An experiment preset (`+experiment=`) also sets the run's keys (seeds, rewriter, ...): align takes its
    target and leaves those."""
    own = {f.name for f in dataclasses.fields(AlignConfig)}
    run_only = {f.metadata.get("key") or f.name for f in dataclasses.fields(RunConfig)} - own
    return typed(AlignConfig, {k: v for k, v in container.items() if k not in run_only})
