"""`evoprompt run`: wires config -> seeds -> operators -> filters and gate -> fitness -> selection -> export."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from evoprompt.fitness.diversity import Embedder
from evoprompt.fitness.filters import Filters, SeedCopyGuard
from evoprompt.fitness.gate import HarmlessnessGate
from evoprompt.fitness.refusal import JUDGES, make_judge
from evoprompt.fitness.scorer import Scorer, Target
from evoprompt.operators.choose import StrategyChooser
from evoprompt.operators.rewrite import sub_seed
from evoprompt.seeds import load_seeds

from . import __version__, transfer
from . import state as checkpoint
from .alignment import build_pairs
from .config import RoleConfig, RunConfig, load_run_config, run_targets, target_roles
from .errors import unknown
from .export import FORMAT_VERSION, benchmark_records, select_items, write_outputs
from .io import atomic_write_json
from .llm import Decoding, get_backend
from .llm.cache import CachedBackend, CallCache
from .llm.embedded import EMBEDDED_LLM, cache_root
from .progress import RunProgress
from .report import plot_fitness, usage, write_report
from .report_html import write_html_report
from .search import Parts, evolve, make_toolbox

ROLES = ("target", "rewriter", "gate", "helper")
log = logging.getLogger("evoprompt.run")


def decoding(role: RoleConfig, stop: tuple[str, ...] = ()) -> Decoding:
    d = role.decoding
    return Decoding(d.temperature, d.top_p, d.max_new_tokens, stop)


def open_cache(cfg) -> CallCache | None:
    if not cfg.enabled:
        return None
    return CallCache(cfg.path or cache_root() / "calls.sqlite")


def role_backend(role: RoleConfig, cache: CallCache | None) -> CachedBackend:
    """The role's backend, counting its usage; cache=None: every prompt reaches the model."""
    return CachedBackend(get_backend(role.backend_config()), cache)


def validate(container: dict) -> RunConfig:
    """Config errors surface before any model loads."""
    cfg = load_run_config(container)
    StrategyChooser(cfg.search.strategy, cfg.search.strategy_weights)
    for key in ("fitness.judge", "export.pair_judge"):
        name = getattr(cfg.fitness if key.startswith("fitness") else cfg.export, key.split(".")[1])
        if name not in JUDGES:
            raise unknown(f"refusal judge ({key})", name, JUDGES)
    return cfg


def provenance(cfg: RunConfig, config_hash: str) -> dict:
    pool = run_targets(cfg)
    first = pool[0][1]
    return {"target_model": first.model, "target_backend": first.backend,
            "target_system_prompt": first.system_prompt,
            "targets": [{"name": n, "model": r.model, "backend": r.backend, "system_prompt": r.system_prompt}
                        for n, r in pool] if len(pool) > 1 else None,
            "rewriter_model": cfg.rewriter.model,
            "gate_model": cfg.gate.model, "refusal_judge": cfg.fitness.judge, "config_hash": config_hash,
            "evoprompt_version": __version__, "format_version": FORMAT_VERSION}


def run(hydra_cfg, run_dir: Path) -> dict:
    t0 = time.time()
    c = OmegaConf.to_container(hydra_cfg, resolve=True)
    cfg = validate(c)
    sd = cfg.seeds
    seeds = load_seeds(sd.path, sd.format, sd.text_column, sd.limit, sd.split, sd.set)
    if cfg.gate.model == EMBEDDED_LLM:
        log.warning("the harmlessness gate is the embedded 135M model: it tells harmful from harmless text "
                    "poorly (README, 'Harmlessness gate'); the seed-copy guard and blocklist back it up. "
                    "Use a strong judge model for anything you publish.")
        print("warning: the gate is the embedded 135M model, a weak judge (see README, 'Harmlessness gate')")
    run_dir.mkdir(parents=True, exist_ok=True)
    h = checkpoint.config_hash(c)
    st = checkpoint.load(run_dir, h) or checkpoint.RunState(h)

    cache = open_cache(cfg.cache)
    pool = run_targets(cfg)
    targets = [Target(name, role_backend(r, cache), decoding(r), r.system_prompt) for name, r in pool]
    # the first target also runs the fluency filter and scores export's refusal templates
    backends = (dict(zip(target_roles([t.name for t in targets]), (t.backend for t in targets)))
                | {role: role_backend(getattr(cfg, role), cache) for role in ROLES if role != "target"})
    embedder = Embedder(cfg.embedder.model, cfg.embedder.device)
    f = cfg.fitness
    judge = make_judge(f.judge, f.phrases, embedder, backend=backends["gate"], model=f.judge_model)
    scorer = Scorer(targets, judge, f, embedder)
    g = cfg.gate
    gate = HarmlessnessGate(backends["gate"], g.mode, g.threshold, g.prompt, g.blocklist, decoding(g))
    s = cfg.search
    chooser = StrategyChooser(s.strategy, s.strategy_weights)
    seed_ids = [x.id for x in seeds]
    guard = SeedCopyGuard(seed_ids, [x.text for x in seeds], embedder([x.text for x in seeds]),
                          [bool(x.harmful) for x in seeds], g.max_seed_similarity, g.max_seed_overlap)
    resumed_from = st.generation
    with RunProgress(cfg.generations, backends, cache) as progress:
        first_line = ("\n",) if cfg.rewriter.style == "completion" else ()  # a completion rewrite is one line
        parts = Parts(cfg, backends["rewriter"], decoding(cfg.rewriter, first_line), targets[0].backend, gate, scorer,
                      embedder, chooser, Filters(s.min_seed_similarity, s.min_fluency, s.min_words, s.max_chars), guard,
                      progress)
        st, logbook = evolve(st, seeds, make_toolbox(parts), cfg, chooser, progress, run_dir)
        progress.stage("export: items, helper answers and refusals")
        prov = provenance(cfg, h)
        items = select_items(st, cfg.export, embedder)
        benchmark = benchmark_records(st, items, prov)
        pair_judge = judge if cfg.export.pair_judge == f.judge else make_judge(cfg.export.pair_judge, None, embedder,
                                                                                 backend=backends["gate"])
        pairs = (build_pairs(benchmark, backends["helper"], decoding(cfg.helper), targets[0].backend, scorer.chat,
                             pair_judge, embedder, sub_seed(cfg.seed, "export"), cfg.export.helper_attempts,
                             cfg.export.min_answer_similarity) if cfg.export.sft_dpo else [])
        counts = write_outputs(run_dir, st, benchmark, pairs, prov)
    plot_fitness(logbook, run_dir / "fitness.png")
    pool_summary = transfer.summarise(benchmark, seed=cfg.seed)
    heat = transfer.plot(benchmark, run_dir / "transfer.png")
    first, last = logbook[0], logbook[-1]
    samples = st.counters.get("target_samples", 0)
    info = {
        "generations": last["gen"],
        "resumed_after_generation": resumed_from,  # -1: a fresh run
        "lineages": len(st.current),
        "wall_time_s": round(time.time() - t0, 1),
        "refusal_prob_first_last": [round(first["refusal_prob"], 4), round(last["refusal_prob"], 4)],
        "mean_fitness_first_last": [round(first["population"]["mean"], 4), round(last["population"]["mean"], 4)],
        "items_per_1000_target_samples": round(1000 * counts["benchmark"] / samples, 3) if samples else 0.0,
        "target_samples": samples,
        "model_calls": {role: b.model_calls for role, b in backends.items()},
        "usage": usage(backends),
        "cache_hits": cache.hits if cache else None, "cache_misses": cache.misses if cache else None,
        "rewrites_given_up": st.counters.get("rewrite_failures", 0),
        "operators": st.counters.get("operators", {}),
        "provenance": prov,
        "transfer": pool_summary,
    }
    atomic_write_json(run_dir / "run.json", {"info": info, "outputs": counts, "config": asdict(cfg)}, indent=1,
                      default=str)
    write_report(run_dir / "report.md", logbook, st.chooser, counts, info, OmegaConf.to_yaml(hydra_cfg),
                 transfer.markdown(pool_summary, benchmark, "transfer.png" if heat else None))
    write_html_report(run_dir)
    progress.summary(logbook, cache.hits if cache else 0, cache.misses if cache else 0)
    progress.console.print(f"outputs in {run_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not counts["benchmark"]:
        progress.console.print(f"[yellow]no item reached export.min_refusal={cfg.export.min_refusal} with a refusing "
                               "sample: run more generations or seeds[/yellow]")
    return {"counts": counts, "info": info}
