"""The dataset card (README.md of the HF dataset): how the set was made, by which models, gate and review, what it
holds, how to evaluate a model on it, and its limits. Every value from the run directory goes in on one line
(fmt.one_line through md_row / model_name), so an edited run file can change what a line says, never the card's
structure."""
from __future__ import annotations

from pathlib import Path
from statistics import mean

from evoprompt.fmt import md_row, md_table, num, one_line
from evoprompt.harness import judge_info
from evoprompt.publish.facts import model_name, pool, pretty_name, targets
from evoprompt.publish.items import Publishable
from evoprompt.records import BenchmarkItem
from evoprompt.schema import RUN_ROLES
from evoprompt.validate import target_roles

TASK = "evoprompt_overrefusal"
CONTROL = f"{TASK}_harmful_control"
SPLITS = {"benchmark": "test", "sft": "train", "dpo": "train", "rejected": "train"}
CONTENT = {
    "benchmark": "the over-refusal prompts, with lineage, the target's K sampled responses and their refusal scores, "
                 "the gate's verdict",
    "sft": "TRL conversational SFT: the prompt and a helpful answer",
    "dpo": "TRL conversational preference: the prompt, a helpful answer (chosen) and a refusal (rejected)",
    "rejected": "candidates the harmlessness gate rejected, with its verdict (not over-refusal prompts)",
}
PAPER = ("Wu et al., 'EvoRefuse: Evolutionary Prompt Optimization for Evaluation and Mitigation of LLM "
         "Over-Refusal to Pseudo-Malicious Instructions' (NeurIPS 2025)")


def _refusal_sampled(r: BenchmarkItem) -> bool:
    return any(s.refusal >= 0.5 for s in r.score.samples)


def _mean(rows: list[BenchmarkItem], key: str) -> float | None:
    return mean(getattr(r.score, key) for r in rows) if rows else None


def _gate_section(p: Publishable) -> list[str]:
    run, g = p.run, p.run.gate_calibration
    gate = run.config.gate if run.config else None
    lines = [f"The harmlessness gate (`{model_name(gate.model if gate else run.provenance.gate_model)}`, mode "
             f"`{gate.mode if gate else 'unknown'}`) judged every candidate before it could be scored; only candidates "
             "it passed reach `benchmark`, `sft` and `dpo`, and export checked each item's verdict and the screens "
             "again."]
    if not g:
        return lines + ["", "No calibration of this gate was found beside the run (`gate_calibration.json`, written "
                        "by `evoprompt gate-calibrate`): its error rates on this set are unknown."]
    c = g.configured
    return lines + ["", f"Calibration (`evoprompt gate-calibrate`) on {g.n} labelled prompts ({g.n_unsafe} unsafe) "
                        f"from {', '.join(one_line(Path(d).name) for d in g.data)}:", "",
                    *md_table(["threshold on p(safe)", "accuracy", "unsafe recall", "unsafe precision",
                               "safe prompts passed", "AUROC"],
                              [[num(c.threshold, ".4g"), num(c.accuracy), num(c.unsafe_recall), num(c.unsafe_precision),
                                num(c.safe_pass_rate), num(g.auroc)]])]


def _review_section(p: Publishable) -> list[str]:
    r = p.review
    if not r:
        return ["**No person reviewed these items.** They were checked only by the automatic harmlessness gate "
                "above; review them in the run's `report.html` (review mode) and export again with "
                "`review=[review-<you>.jsonl]`."]
    who = "every reviewer who saw it" if r.rule == "all" else "a majority of the reviewers who saw it"
    lines = [f"{len(r.reviewers)} reviewer(s) ({', '.join(f'`{one_line(x)}`' for x in r.reviewers)}) read the items in "
             f"`report.html`'s review mode; an item is published when {who} kept it (`unsure` does not count as keep), "
             "the decision made on the item's text as published. Items not kept are not in any config.", "",
             *md_table(["items before review", "seen", "kept (published)", "dropped", "unsure", "not seen"],
                       [[r.items, r.seen, r.kept, r.dropped, r.unsure, r.not_seen]])]
    a = r.agreement
    if a is None:
        lines += ["", "One reviewer: no agreement between reviewers can be given."]
    elif a.kappa is None:
        lines += ["", f"Agreement: fewer than two items were seen by every reviewer ({a.items}), so no kappa."]
    else:
        lines += ["", f"Agreement on keep / drop / unsure over the {a.items} items every reviewer saw: "
                  f"{a.method} {a.kappa:.2f} (bootstrap 95% interval {num(a.lo, '.2f')} to {num(a.hi, '.2f')})."]
    if r.responses_labelled:
        lines += ["", f"The reviewers also labelled {r.responses_labelled} of the target's responses (refusal / "
                  "compliance / partial); `evoprompt judge-calibrate data=[review files]` measures the refusal judges on them."]
    return lines


def _method(p: Publishable) -> list[str]:
    c = p.run.config
    if c is None:
        return ["A genetic algorithm mutates and recombines seed instructions with an LLM rewriter, drops candidates "
                "the harmlessness gate rejects and scores the rest by the target's refusal probability (this run "
                "stored no configuration, so its settings are not stated here). Seeds themselves are never exported.", ""]
    f, s = c.fitness, c.search
    return [f"A genetic algorithm (one lineage per seed, {c.generations} generations) mutates instructions with an LLM "
            f"rewriter and template operators (L={s.L} mutants and N={s.N} recombinants per lineage per generation, "
            f"strategies chosen `{s.strategy}`), drops candidates the harmlessness gate rejects, scores the rest by the "
            f"target's refusal probability over K={f.K} sampled responses (estimator `{f.estimator}`, refusal judge "
            f"`{one_line(f.judge.name)}`) plus a likelihood term, and selects by simulated annealing. An item is exported "
            f"when the gate passed it, its refusal probability reached {c.export.min_refusal} and at least one sampled "
            "response was judged a refusal and confirmed by a refusal-phrase detector. Seeds themselves are never "
            "exported.", ""]


def _models(p: Publishable) -> list[str]:
    run, targets_ = p.run, pool(p.run)
    roles = target_roles([t.get("name", "target") for t in targets_])

    def weights(role: str) -> str:  # bf16 and float32 sample differently: part of what reproduces the set
        u = run.info.usage.get(role)
        return "unknown" if u is None else u["precision"] or "server's"

    rows = [[role, f"`{model_name(t.get('model'))}`", one_line(t.get("backend") or ""), weights(role)]
            for t, role in zip(targets_, roles)]
    if run.config:
        rows += [[role, f"`{model_name(getattr(run.config, role).model)}`", getattr(run.config, role).backend,
                  weights(role)] for role in RUN_ROLES[1:]]
    lines = ["### Models", "", *md_table(["role", "model", "backend", "weights"], rows), ""]
    lines += [f"System prompt of the {role}: " + (f"`{one_line(t['system_prompt'])}`." if t.get("system_prompt") else "none.")
              for t, role in zip(targets_, roles)]
    if len(targets_) > 1 and run.config:
        lines += ["", f"The items were evolved against {len(targets_)} targets at once (fitness aggregate "
                  f"`{run.config.fitness.aggregate}`); each item records every target's refusal figures and label, and "
                  f"was refused by at least {run.config.export.min_targets_refusing} of them."]
    return lines


def _contents(p: Publishable) -> list[str]:
    items, first_last = p.items, p.run.info.refusal_prob_first_last
    cats: dict[str, list[BenchmarkItem]] = {}
    for r in items:
        cats.setdefault(one_line(r.category or "uncategorised"), []).append(r)
    rows = [[c, len(rs), num(_mean(rs, "refusal_prob")), sum(map(_refusal_sampled, rs))] for c, rs in sorted(cats.items())]
    rows.append(["**all**", len(items), num(_mean(items, "refusal_prob")), sum(map(_refusal_sampled, items))])
    return ["## Contents", "",
            *md_table(["category", "items", "mean p(refusal)", "items with a sampled refusal"], rows), "",
            f"Refusal rates on the target: mean refusal probability of the exported items "
            f"{num(_mean(items, 'refusal_prob'))}, mean share of sampled responses judged refusals "
            f"{num(_mean(items, 'judge_refusal_rate'))}; over the whole population it went from "
            f"{num(first_last[0])} (the seeds) to {num(first_last[1])} (last generation).", "",
            "Main `benchmark` fields: `text` (the prompt), `category`, `seed` (the id, category and source of the seed "
            "it descends from; never its text), `lineage` (chain of strategies, parents, generation), `score` "
            "(`fitness`, `refusal_prob`, `judge_refusal_rate`, `opener_prob`, `samples`: the target's responses with "
            "their refusal scores, `targets`: one row of figures per target), `safety` (the gate's verdict), "
            "`provenance`.", ""]


def _limits(p: Publishable, license: str) -> list[str]:
    info = judge_info()
    return [
        "## Evaluating a model on it", "",
        "`inspect eval hf/ORG/NAME --model ...` runs this dataset as it is (its `eval.yaml`: inspect_ai >= 0.3.154); "
        "a grader model marks each response as helping (C) or refusing (I), so 1 - accuracy is the over-refusal rate.",
        "",
        f"`evoprompt export format=inspect` and `format=lm-eval` write ready tasks (`inspect eval task.py --model "
        f"... [-T judge=phrases]`, `lm_eval --include_path DIR --tasks {TASK},{CONTROL}`) whose scorer is evoprompt's "
        f"refusal judge ({info['judge']}, {info['judge_version']}; three classes, partial refusal counts as refusal). "
        f"Every prompt is harmless, so a higher refusal rate is worse; `{CONTROL}` is the harmful control "
        "(evoprompt's packaged harmful requests, read from the installed package, not copied into the export; higher "
        "is better), reported as a task of its own.", "",
        "## Intended use and limits", "",
        "- Intended use: measuring and reducing over-refusal (refusals of harmless requests) of chat models; the "
        "`sft` / `dpo` configs are for training models to answer such requests.",
        "- Not for: training or evaluating compliance with harmful requests. The gate is an automatic judge and "
        "can pass a harmful item; review items before relying on them, and report any you find.",
        f"- The items were evolved against {', '.join(targets(p.run))}: they are adversarial for that model and may "
        "transfer to others less.",
        "- Refusal labels come from automatic judges (see above), not from people."
        + (" People reviewed the items themselves (see Human review)." if p.review else ""),
        "- A small rewriter (e.g. the embedded 135M model) writes many off-topic or disfluent rewrites; such a set "
        "shows the method at work and is not a benchmark worth publishing as is.",
        f"- License: {license}. Responses were generated by the models named above and are subject to their terms.",
        "", "## Citation", "", f"The method: {PAPER}.", ""]


def card_body(p: Publishable, counts: dict, license: str) -> str:
    run, items, prov = p.run, p.items, p.run.provenance
    c = run.config
    seeds_from = one_line(c.seeds.path) if c and c.seeds.path else \
        f"evoprompt's packaged `{c.seeds.set if c else '?'}` seed set"
    sources = sorted({one_line(r.seed.source) for r in items if r.seed.source})
    lines = [f"# {pretty_name(run)}", "",
             f"{len(items)} harmless instructions evolved to make {', '.join(f'`{t}`' for t in targets(run))} refuse "
             f"(over-refusal), made with evoprompt {one_line(prov.evoprompt_version or '')}, an implementation of "
             f"EvoRefuse ({PAPER}). Each item comes with the chain of rewrites that led to it from a seed instruction, "
             "the target's sampled responses with a refusal judge's scores, and the harmlessness gate's verdict.", "",
             "## Configs", "", md_row("config", "split", "rows", "content"), md_row("---", "---", "---", "---")]
    lines += [md_row(f"`{n}`", SPLITS[n], k, CONTENT[n]) for n, k in counts.items()]
    lines += ["", "```python", "from datasets import load_dataset", "",
              'bench = load_dataset("PATH_OR_REPO", "benchmark", split="test")   # also the default config',
              'dpo = load_dataset("PATH_OR_REPO", "dpo", split="train")', "```", "",
              "## How it was made", "", "### Method", "", *_method(p), *_models(p),
              "", "### Harmlessness gate", "", *_gate_section(p),
              "", "### Human review", "", *_review_section(p),
              "", "### Seeds", "",
              f"{len({r.seed.id for r in items})} seed instructions lead to the exported items, from {seeds_from} "
              f"(files: {', '.join(f'`{s}`' for s in sources) or 'unknown'}). evoprompt's packaged seeds were written "
              "by its authors as harmless requests that look alarming; the seeds are not part of this dataset.", "",
              "### Reproducing", "",
              f"config hash `{one_line(prov.config_hash or 'unknown')}`, evoprompt "
              f"{one_line(prov.evoprompt_version or 'unknown')}, seed {c.seed if c else '?'}. The resolved configuration "
              "is in each record's `provenance` (a JSON string) and in the run's `run.json`.", "",
              *_contents(p), *_limits(p, license)]
    return "\n".join(lines)
