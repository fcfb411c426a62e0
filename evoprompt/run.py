"""`evoprompt run`: wires config -> seeds -> operators -> gate -> fitness -> selection -> export."""
from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from evoprompt.fitness.diversity import Embedder
from evoprompt.fitness.elbo import FLOORS
from evoprompt.fitness.gate import HarmlessnessGate
from evoprompt.fitness.refusal import JUDGES, make_judge
from evoprompt.fitness.scorer import FitnessConfig, Scorer
from evoprompt.operators.choose import StrategyChooser
from evoprompt.operators.rewrite import sub_seed
from evoprompt.operators.topic import SeedTopic
from evoprompt.seeds import load_seeds

from . import state as checkpoint
from .alignment import build_pairs
from .errors import UserError, unknown
from .export import benchmark_records, write_outputs
from .llm import BACKENDS, Decoding, get_backend
from .llm.cache import CachedBackend, CallCache
from .llm.embedded import cache_root
from .progress import RunProgress
from .report import plot_fitness, write_report
from .search import Evolution, SearchConfig

ROLES = ("target", "rewriter", "gate", "helper")


def decoding(role: dict) -> Decoding:
    d = role.get("decoding") or {}
    return Decoding(float(d.get("temperature", 1.0)), float(d.get("top_p", 1.0)), int(d.get("max_new_tokens", 64)))


def open_cache(c: dict) -> CallCache | None:
    if not c["cache"]["enabled"]:
        return None
    return CallCache(c["cache"]["path"] or cache_root() / "calls.sqlite")


def role_backend(c: dict, role: str, cache: CallCache | None):
    backend = get_backend(c[role])
    return CachedBackend(backend, cache) if cache else _Uncached(backend)


class _Uncached:
    """Counts calls like CachedBackend does, for runs with the cache off."""

    def __init__(self, inner):
        self.inner, self.model_id, self.supports_logprobs, self.model_calls = inner, inner.model_id, inner.supports_logprobs, 0

    def generate(self, *a, **kw):
        self.model_calls += 1
        return self.inner.generate(*a, **kw)

    def score(self, *a, **kw):
        self.model_calls += 1
        return self.inner.score(*a, **kw)


def validate(c: dict) -> None:
    """Config errors surface before any model loads."""
    if c["fitness"]["floor"] not in FLOORS:
        raise unknown("fitness.floor", c["fitness"]["floor"], FLOORS)
    StrategyChooser(c["search"]["strategy"], c["search"]["strategy_weights"])
    if not isinstance(c["fitness"]["K"], int) or c["fitness"]["K"] < 1:
        raise UserError(f"fitness.K must be a whole number >= 1, got {c['fitness']['K']!r}")
    if not isinstance(c["generations"], int) or c["generations"] < 0:
        raise UserError(f"generations must be a whole number >= 0, got {c['generations']!r}")
    if not isinstance(c["search"]["min_seed_similarity"], (int, float)) or not -1 <= c["search"]["min_seed_similarity"] <= 1:
        raise UserError(f"search.min_seed_similarity must be a cosine similarity in [-1, 1], got {c['search']['min_seed_similarity']!r}")
    if c["fitness"]["judge"] not in JUDGES:
        raise unknown("refusal judge", c["fitness"]["judge"], JUDGES)
    for role in ROLES:
        if c[role]["backend"] not in BACKENDS:
            raise unknown(f"{role}.backend", c[role]["backend"], BACKENDS)


def run(cfg, run_dir: Path) -> dict:
    t0 = time.time()
    c = OmegaConf.to_container(cfg, resolve=True)
    validate(c)
    seeds = load_seeds(c["seeds"]["path"], c["seeds"]["format"], c["seeds"]["text_column"], c["seeds"]["limit"],
                       c["seeds"]["split"])
    run_dir.mkdir(parents=True, exist_ok=True)
    st = checkpoint.load(run_dir, checkpoint.config_hash(c)) or checkpoint.RunState(checkpoint.config_hash(c))

    cache = open_cache(c)
    backends = {role: role_backend(c, role, cache) for role in ROLES}
    embedder = Embedder(c["embedder"]["model"], c["embedder"]["device"])
    f = c["fitness"]
    scorer = Scorer(backends["target"], decoding(c["target"]), c["target"].get("system_prompt"),
                    make_judge(f["judge"], f["phrases"], embedder, backend=backends["gate"], model=f.get("judge_model")),
                    FitnessConfig(f["K"], f["lambda"], f["mu"], f["eps"], f["floor"], f["opener_prior"], f["openers"]),
                    embedder)
    g = c["gate"]
    gate = HarmlessnessGate(backends["gate"], g["mode"], g["threshold"], g["prompt"], g["blocklist"], decoding(g))
    s = c["search"]
    search_cfg = SearchConfig(c["seed"], c["generations"], s["L"], s["N"], s["tau_0"], s["beta"], s["tau_f"],
                              s["max_attempts"], s["max_chars"])
    chooser = StrategyChooser(s["strategy"], s["strategy_weights"])
    resumed_from = st.generation
    with RunProgress(c["generations"], backends, cache) as progress:
        topic = SeedTopic(embedder, s["min_seed_similarity"]) if s["min_seed_similarity"] > 0 else None
        st = Evolution(search_cfg, backends["rewriter"], decoding(c["rewriter"]), gate, scorer, chooser, run_dir,
                       progress, topic).run(st, seeds)
        progress.stage("export: helper answers and refusals")
        benchmark = benchmark_records(st)
        pairs = build_pairs(benchmark, backends["helper"], decoding(c["helper"]), backends["target"], scorer.chat,
                            sub_seed(c["seed"], "export"), c["export"]["helper_attempts"]) if c["export"]["sft_dpo"] else []
        counts = write_outputs(run_dir, st, benchmark, pairs)
    plot_fitness(st.logbook, run_dir / "fitness.png")
    first, last = st.logbook[0], st.logbook[-1]
    info = {
        "generations": f"{last['gen']} (resumed after generation {resumed_from})" if resumed_from >= 0 else last["gen"],
        "lineages": len(st.current), "wall time of this invocation (s)": round(time.time() - t0, 1),
        "mean refusal probability, generation 0 -> last": f"{first['refusal_prob']:.4f} -> {last['refusal_prob']:.4f}",
        "mean fitness, generation 0 -> last": f"{first['population']['mean']:.4f} -> {last['population']['mean']:.4f}",
        "model calls of this invocation": {role: b.model_calls for role, b in backends.items()},
        "cache hits / misses (prompts) of this invocation": f"{cache.hits} / {cache.misses}" if cache else "cache off",
        "rewrites given up after max_attempts": st.counters.get("rewrite_failures", 0),
    }
    (run_dir / "run.json").write_text(json.dumps({"info": info, "outputs": counts}, indent=1), encoding="utf-8")
    write_report(run_dir / "report.md", st.logbook, st.chooser, counts, info, OmegaConf.to_yaml(cfg))
    progress.summary(st.logbook, cache.hits if cache else 0, cache.misses if cache else 0)
    progress.console.print(f"outputs in {run_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return {"counts": counts, "info": info}
