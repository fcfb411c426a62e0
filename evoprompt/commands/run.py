"""`evoprompt run`: config -> seeds -> operators -> filters and gate -> fitness -> selection -> export."""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from evoprompt import __version__
from evoprompt.files import atomic_write_json
from evoprompt.fitness.filters import SeedCopyGuard
from evoprompt.fitness.refusal import judge_name
from evoprompt.fitness.scorer import Scorer
from evoprompt.llm.embedded import EMBEDDED_LLM, named_identity
from evoprompt.operators.choose import StrategyChooser
from evoprompt.operators.rewrite import sub_seed
from evoprompt.pairs import build_pairs
from evoprompt.progress import RunProgress
from evoprompt.records import Provenance, RunInfo, RunState
from evoprompt.roles import Roles, decoding, load_seeds
from evoprompt.rundir import checkpoint, transfer
from evoprompt.rundir.outputs import benchmark_items, select_items, write_outputs
from evoprompt.rundir.report import plot_fitness, usage, write_report
from evoprompt.rundir.report_html import write_html_report
from evoprompt.schema import RUN_ROLES, RunConfig
from evoprompt.search import evolve, make_toolbox
from evoprompt.secrets import redact
from evoprompt.validate import run_targets, target_roles, validate_run

HELP = "evolve seeds into an over-refusal benchmark + SFT/DPO data"
CONFIG = "config"  # its config in evoprompt/conf

log = logging.getLogger("evoprompt.commands.run")


def provenance(cfg: RunConfig, config_hash: str) -> Provenance:
    pool = run_targets(cfg)
    first = pool[0][1]
    return Provenance(target_model=named_identity(first.model), target_backend=first.backend,
                      target_system_prompt=first.system_prompt,
                      targets=[{"name": n, "model": named_identity(r.model), "backend": r.backend,
                                "system_prompt": r.system_prompt} for n, r in pool] if len(pool) > 1 else None,
                      rewriter_model=cfg.rewriter.model, gate_model=cfg.gate.model, refusal_judge=judge_name(cfg.fitness.judge.name, cfg.fitness.judge.calibration),
                      config_hash=config_hash, evoprompt_version=__version__)


def _warn_weak_gate(cfg: RunConfig) -> None:
    if cfg.gate.model == EMBEDDED_LLM:
        print("warning: the harmlessness gate is the embedded 135M model, a weak judge backed by the seed-copy "
              "guard and blocklist (docs/gate.md); use a strong judge model for anything you publish", file=sys.stderr)


def _search(cfg: RunConfig, roles: Roles, seeds, st, run_dir: Path, progress):
    """The GA over the seeds; returns (state, logbook, scorer, targets)."""
    pool = run_targets(cfg)
    targets = roles.targets(pool, target_roles([n for n, _ in pool]))
    for role in RUN_ROLES[1:]:
        roles.backend(role, getattr(cfg, role))
    embedder = roles.embedder()
    f, g, s = cfg.fitness, cfg.gate, cfg.search
    judge = roles.judge(f.judge, llm=roles.backends["gate"])
    scorer = Scorer(targets, judge, f, embedder)
    chooser = StrategyChooser(s.strategy, s.strategy_weights)
    texts = [x.text for x in seeds]
    guard = SeedCopyGuard([x.id for x in seeds], texts, embedder(texts), [bool(x.harmful) for x in seeds],
                          g.max_seed_similarity, g.max_seed_overlap)
    first_line = ("\n",) if cfg.rewriter.style == "completion" else ()  # a completion rewrite is one line
    tb = make_toolbox(cfg, rewriter=roles.backends["rewriter"], rewrite_decoding=decoding(cfg.rewriter, first_line),
                      target=targets[0].backend, gate=roles.gate(g), scorer=scorer, embedder=embedder,
                      chooser=chooser, guard=guard, progress=progress)
    st, logbook = evolve(st, seeds, tb, cfg, chooser, progress, run_dir)
    return st, logbook, scorer


def _export(cfg: RunConfig, roles: Roles, st, scorer: Scorer, prov: dict, run_dir: Path):
    """Items, their SFT/DPO pairs and every output file; returns (benchmark, counts)."""
    embedder, target = roles.embedder(), scorer.targets[0].backend
    benchmark = benchmark_items(st, select_items(st, cfg.export, embedder), prov)
    pair_judge = roles.judge(cfg.export.pair_judge, llm=roles.backends["gate"]) \
        if cfg.export.pair_judge != cfg.fitness.judge else scorer.judge
    pairs = (build_pairs(benchmark, roles.backends["helper"], decoding(cfg.helper), target, scorer.chat, pair_judge,
                         embedder, sub_seed(cfg.seed, "export"), cfg.export.helper_attempts,
                         cfg.export.min_answer_similarity) if cfg.export.sft_dpo else [])
    return benchmark, write_outputs(run_dir, st, benchmark, pairs, prov)


def main(hydra_cfg, run_dir: Path) -> dict:
    t0 = time.time()
    c = OmegaConf.to_container(hydra_cfg, resolve=True)
    cfg = validate_run(c)
    seeds = load_seeds(cfg.seeds)
    _warn_weak_gate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    h = checkpoint.config_hash(c)
    st = checkpoint.load(run_dir, h) or RunState(h)
    resumed_from = st.generation
    roles = Roles(cfg.cache, cfg.embedder)
    with RunProgress(cfg.generations, roles.backends, roles.cache) as progress:
        st, logbook, scorer = _search(cfg, roles, seeds, st, run_dir, progress)
        progress.stage("export: items, helper answers and refusals")
        prov = provenance(cfg, h)
        benchmark, counts = _export(cfg, roles, st, scorer, prov, run_dir)
    plot_fitness(logbook, run_dir / "fitness.png")
    pool_summary = transfer.summarise(benchmark, seed=cfg.seed)
    heat = transfer.plot(benchmark, run_dir / "transfer.png")
    first, last = logbook[0], logbook[-1]
    samples = st.counters.target_samples
    hits, misses = roles.calls
    info = RunInfo(
        generations=last.gen, resumed_after_generation=resumed_from, lineages=len(st.current),
        wall_time_s=round(time.time() - t0, 1),
        refusal_prob_first_last=[round(first.refusal_prob, 4), round(last.refusal_prob, 4)],
        mean_fitness_first_last=[round(first.population.mean, 4), round(last.population.mean, 4)],
        items_per_1000_target_samples=round(1000 * counts["benchmark"] / samples, 3) if samples else 0.0,
        target_samples=samples, model_calls={role: b.model_calls for role, b in roles.backends.items()},
        usage=usage(roles.backends), cache_hits=hits if roles.cache else None,
        cache_misses=misses if roles.cache else None, rewrites_given_up=st.counters.rewrite_failures,
        operators=st.counters.operators, provenance=prov, transfer=pool_summary)
    atomic_write_json(run_dir / "run.json", {"info": info.to_json(), "outputs": counts, "config": redact(asdict(cfg))},
                      indent=1, default=str)
    write_report(run_dir / "report.md", logbook, st.chooser, counts, info, redact(OmegaConf.to_yaml(hydra_cfg)),
                 transfer.markdown(pool_summary, benchmark, "transfer.png" if heat else None))
    write_html_report(run_dir)
    progress.summary(hits if roles.cache else None, misses, counts)
    progress.console.print(f"outputs in {run_dir} (report.html to read and review the items)")
    if not counts["benchmark"]:
        progress.console.print(f"[yellow]no item reached export.min_refusal={cfg.export.min_refusal} with a refusing "
                               "sample: run more generations or seeds[/yellow]")
    return {"counts": counts, "info": info.to_json()}
