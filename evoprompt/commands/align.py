"""`evoprompt align`: data -> leakage guard -> safety-retention mix -> LoRA stages (TRL) -> the same measurement
of the base and the adapted target -> report.

Before and after are measured by `eval`'s own code (evaluate.measure_target) with one system prompt, one decoding
and one seed, so the only difference between the two columns is the adapter."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from evoprompt import __version__
from evoprompt.align.data import (
    Example,
    dpo_rows,
    leakage_guard,
    load_examples,
    load_prompts,
    resolve_path,
    sft_rows,
    with_system,
)
from evoprompt.align.report import write_report
from evoprompt.errors import UserError
from evoprompt.files import atomic_write_json
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.llm.embedded import resolve_model_path
from evoprompt.measure import measure_target
from evoprompt.operators.rewrite import sub_seed
from evoprompt.pairs import REFUSAL_TEMPLATES
from evoprompt.progress import make_console
from evoprompt.public_sets import DATA_ENV, available, is_public
from evoprompt.records import Metrics
from evoprompt.roles import Roles, decoding
from evoprompt.rundir import checkpoint
from evoprompt.schema import AlignConfig, RoleConfig
from evoprompt.validate import load_align_config, validate_align

HELP = "LoRA-tune the target on SFT/DPO data (TRL), measure over-refusal and safety before/after"
CONFIG = "align"  # its config in evoprompt/conf

STAGES = {"sft": ["sft"], "dpo": ["dpo"], "sft+dpo": ["sft", "dpo"]}


def eval_sets(c: AlignConfig, console) -> dict[str, tuple[str, list[str]]]:
    """name -> (kind, prompts); public sets (`data:`) absent from this machine are skipped with a note."""
    out = {}
    for s in c.align.eval_sets:
        if is_public(s.path) and not available(s.path):
            console.print(f"[yellow]note: eval set {s.name or s.path} skipped: {s.path} is not in ${DATA_ENV}[/yellow]")
            continue
        p = resolve_path(s.path)
        name = s.name or (p if isinstance(p, str) else p.stem)
        if isinstance(p, Path) and not p.is_file():
            console.print(f"[yellow]note: eval set {name} skipped: {p} is absent[/yellow]")
            continue
        out[name] = (s.kind, load_prompts(s.path, s.split, s.limit))
    if not out:
        raise UserError("no evaluation set is available: give align.eval_sets=[{path: FILE, kind: over-refusal}, ...]")
    return out


def retention(c: AlignConfig, n: int, target, sp: str | None, judge, guard, console) -> list[Example]:
    """Up to n pairs that keep harmful requests refused: chosen = a refusal, rejected = a compliant sample of the
    target itself (harmful prompts where none of `retain_attempts` samples complies are skipped)."""
    a = c.align
    if not a.retain or n <= 0:
        return []
    if is_public(a.retain) and not available(a.retain):
        console.print(f"[yellow]note: no safety-retention pairs: {a.retain} is not in ${DATA_ENV} "
                      "(set align.retain or the variable)[/yellow]")
        return []
    p = resolve_path(a.retain)
    if isinstance(p, Path) and not p.is_file():
        raise UserError(f"align.retain: file not found: {p}")
    prompts = load_prompts(a.retain, a.retain_split)
    order = np.random.default_rng(sub_seed(c.seed, "retain")).permutation(len(prompts))
    pool = [Example([{"role": "user", "content": prompts[i]}], "", None, f"retain:{a.retain}") for i in order]
    pool = guard(pool)[: 2 * n]  # twice what is wanted: some prompts never get a compliant sample
    chats = [with_system(e.prompt, sp) for e in pool]
    samples = target.generate(chats, a.retain_attempts, decoding(c.target), sub_seed(c.seed, "retain-samples"))
    phrases, out = AnchoredPhraseJudge(), []
    for e, ss in zip(pool, samples):
        ys = [s.text for s in ss]
        ps = judge.prob([e.text] * len(ys), ys)
        comply = [y for y, q in zip(ys, ps) if y and q < 0.5 and not phrases.refuses(y)]
        if comply and len(out) < n:
            out.append(replace(e, chosen=REFUSAL_TEMPLATES[len(out) % len(REFUSAL_TEMPLATES)], rejected=comply[0]))
    return out


def margins(backend, examples: list[Example], sp: str | None) -> list[float]:
    """log p(chosen | x) - log p(rejected | x) per preference pair."""
    pairs = [e for e in examples if e.rejected]
    chats = [with_system(e.prompt, sp) for e in pairs]
    if not pairs:
        return []
    lp = backend.score(chats + chats, [e.chosen for e in pairs] + [e.rejected for e in pairs])
    return [a.logprob - b.logprob for a, b in zip(lp[:len(pairs)], lp[len(pairs):])]


def adapted_role(target: RoleConfig, adapter: Path) -> RoleConfig:
    key = "adapter" if target.backend == "hf" else "lora"
    return replace(target, engine={**target.engine, key: str(adapter)})


def _training_data(c: AlignConfig, examples: list[Example], sets: dict, embedder, base, judge,
                   console) -> tuple[list, list, list]:
    """(kept, retained, overlaps): the examples the leakage guard keeps and the safety-retention pairs."""
    a = c.align
    prompts = {n: p for n, (_, p) in sets.items()}

    def guard(items: list[Example]) -> list[Example]:
        return leakage_guard(items, prompts, embedder, a.dedup_similarity, a.max_overlap)[0]

    kept, overlaps = leakage_guard(examples, prompts, embedder, a.dedup_similarity, a.max_overlap)
    for o in overlaps:
        if o.dropped:
            console.print(f"leakage guard: {len(o.dropped)} training prompts dropped as near-copies of {o.eval_set}")
    if not kept:
        raise UserError("no training example is left after the leakage guard")
    retained = retention(c, round(a.retain_ratio * len(kept)), base, c.target.system_prompt, judge, guard, console)
    return kept, retained, overlaps


def _train(c: AlignConfig, train: list[Example], train_sp: str | None, run_dir: Path, console) -> tuple[Path, dict]:
    """Each stage of c.method, resumed from its checkpoint or skipped when finished; (final adapter, histories)."""
    a = c.align
    model_path = resolve_model_path(c.target.model)
    adapter, histories = None, {}
    for stage in STAGES[c.method]:
        s = a.sft if stage == "sft" else a.dpo
        done = run_dir / "stages" / stage
        if (done / "adapter_config.json").exists() and (done / "log_history.json").exists():
            console.print(f"{stage}: finished earlier, adapter {done}")
            adapter, histories[stage] = done, json.loads((done / "log_history.json").read_text())
            continue
        from evoprompt.align.train import last_checkpoint, progress_callback, train_stage

        rows = sft_rows(train, train_sp) if stage == "sft" else dpo_rows(train, train_sp)
        resume = last_checkpoint(run_dir / "checkpoints" / stage)
        console.print(f"{stage}: {len(rows)} rows, {s.max_steps} steps, lr {s.learning_rate}"
                      + (f", resuming from {resume}" if resume else ""))
        adapter, histories[stage] = train_stage(stage, model_path, str(adapter) if adapter else None, rows, s, a,
                                                run_dir, c.seed, progress_callback(console, stage, s.max_steps), resume)
        atomic_write_json(adapter / "log_history.json", histories[stage])
    final = run_dir / "adapter"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(adapter, final)
    if c.merge:
        from evoprompt.llm.lora import merge

        merge(model_path, final, run_dir / "merged")
    return final, histories


def main(hydra_cfg, run_dir: Path) -> dict:
    t0 = time.time()
    container = OmegaConf.to_container(hydra_cfg, resolve=True)
    c = load_align_config(container)
    validate_align(c)
    console = make_console(stderr=True, soft_wrap=True)
    examples = load_examples(c.data, c.method)
    run_dir.mkdir(parents=True, exist_ok=True)
    h = checkpoint.config_hash({k: v for k, v in container.items() if k != "hydra"})
    state_file = run_dir / "align_state.json"
    if state_file.exists() and json.loads(state_file.read_text())["config_hash"] != h:
        raise UserError(f"{run_dir} holds training for another configuration; use a new hydra.run.dir "
                        "(or the same command to resume)")
    atomic_write_json(state_file, {"config_hash": h})
    sets = eval_sets(c, console)
    roles = Roles(c.cache, c.embedder)
    base = roles.backend("before", c.target)
    judge = roles.judge(c.refusal_judge, llm=base)
    kept, retained, overlaps = _training_data(c, examples, sets, roles.embedder(), base, judge, console)
    a, sp = c.align, c.target.system_prompt
    train, train_sp = kept + retained, sp if a.train_system_prompt == "target" else None
    console.print(f"training data: {len(kept)} examples from {', '.join(c.data)} + {len(retained)} safety-retention "
                  f"pairs; method {c.method}; system prompt in training: {'yes' if train_sp else 'no'}")
    final, histories = _train(c, train, train_sp, run_dir, console)
    after = roles.backend("after", adapted_role(c.target, final))
    dec = decoding(replace(c.target, decoding=a.eval_decoding))
    rows = Metrics()
    add = rows.add
    responses: dict[str, list[dict]] = {}

    texts = {n: p for n, (_, p) in sets.items()}
    for label, backend in (("before", base), ("after", after)):
        responses[label] = measure_target(backend, label, texts, sp, dec, judge, c.seed, a.bootstrap, add, console)
    pair_margins = {"before": margins(base, train, train_sp), "after": margins(after, train, train_sp)}
    info = {"evoprompt_version": __version__, "target_model": c.target.model, "target_backend": c.target.backend,
            "system_prompt": sp, "method": c.method, "data": c.data, "training_examples": len(kept),
            "retention_pairs": len(retained), "leakage_dropped": {o.eval_set: len(o.dropped) for o in overlaps},
            "adapter": str(final), "merged": str(run_dir / "merged") if c.merge else None, "config_hash": h,
            "wall_time_s": round(time.time() - t0, 1)}
    result = write_report(run_dir, rows, responses, {n: k for n, (k, _) in sets.items()}, histories, pair_margins,
                          info, asdict(c), a.bootstrap, c.seed)
    console.print(result["summary"])
    console.print(f"report: {run_dir / 'report.md'}; adapter: {final}")
    return result
