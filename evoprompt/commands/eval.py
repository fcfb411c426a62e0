"""`evoprompt eval`: prompt sets x targets with the paper's metrics, side by side (its Tables 1 and 2).

Per set: lexical diversity (MSTTR, HD-D, MTLD), semantic diversity, safety rate (harmlessness judge).
Per set x target: PRR (anchored phrases) and PRR-substring (the reference's variant), CRR (refusal judge),
the three response classes, mean log p(y|x). Every rate has a bootstrap 95% interval."""
from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf
from rich.table import Table

from evoprompt import fmt, metrics
from evoprompt.charts import bar_chart
from evoprompt.errors import UserError
from evoprompt.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from evoprompt.fitness.refusal import CLASS_NAMES, judge_name
from evoprompt.llm import Decoding
from evoprompt.measure import measure_target, rate_row
from evoprompt.presets import target_preset
from evoprompt.progress import make_console
from evoprompt.records import MetricRow, Metrics
from evoprompt.roles import Roles
from evoprompt.rundir.report import usage, usage_table
from evoprompt.schema import EvalConfig
from evoprompt.seeds import load_seeds, set_name
from evoprompt.validate import target_pool, typed

HELP = "measure prompt sets on targets with the paper's metrics"
CONFIG = "eval"  # its config in evoprompt/conf


def _defined(fn, tokens) -> float:
    """A metric, or NaN (printed "n/a") where the set is too small for it (e.g. MSTTR below one segment,
    semantic diversity of a one-prompt set)."""
    try:
        return float(fn(tokens))
    except ValueError:
        return float("nan")


def _set_metrics(sets: dict[str, list[str]], roles: Roles, c: EvalConfig, add, console) -> None:
    """Per set: size, lexical and semantic diversity, and (safety=true) the gate's safety rate."""
    gate = roles.gate(c.gate) if c.safety else None
    embedder = roles.embedder()
    for name, texts in sets.items():
        console.print(f"[bold]{name}[/]: {len(texts)} prompts")
        add(name, "-", "n", len(texts))
        for label, fn in (("MSTTR", metrics.msttr), ("HD-D", metrics.hdd), ("MTLD", metrics.mtld)):
            add(name, "-", label, _defined(lambda ts, fn=fn: metrics.over_orders(fn, ts, c.orders, c.seed), texts))
        add(name, "-", "semantic diversity", _defined(metrics.semantic_diversity, embedder(texts)))
        if gate:
            safe = [v.safe for v in gate.judge([(x, "") for x in texts], c.seed)]
            add(name, "-", "safety rate", *rate_row(safe, c.bootstrap, c.seed))


def main(cfg, run_dir: Path) -> None:
    c = typed(EvalConfig, OmegaConf.to_container(cfg, resolve=True))
    if not c.sets:
        raise UserError("no prompt sets given: eval sets=[path,...] (benchmark.jsonl, XSTest/OR-Bench/PHTest/OKTest files)")
    # preset names or mappings over the embedded preset, as run's fitness.targets; checked before any model loads
    targets = dict(target_pool(c.targets, target_preset("embedded"), "targets"))
    if not targets:
        raise UserError("no targets given: eval targets=[embedded, {model: DIR, system_prompt: '...'}, ...]")
    taken: set = set()
    sets = {set_name(p, taken): [s.text for s in load_seeds(p, "auto", c.text_column, c.limit, c.split)]
            for p in c.sets}
    run_dir.mkdir(parents=True, exist_ok=True)
    console = make_console(stderr=True)
    roles = Roles(c.cache, c.embedder)
    rj = c.refusal_judge
    first = next(iter(targets.items()))
    judge = roles.judge(rj, llm=roles.backend(f"target {first[0]}", first[1]) if rj.name == "llm" else None)
    rows = Metrics()
    add = rows.add
    _set_metrics(sets, roles, c, add, console)
    sp, d = c.system_prompt, c.decoding
    dec = Decoding(d.temperature, d.top_p, d.max_new_tokens)
    for tname, tcfg in targets.items():
        backend = roles.backend(f"target {tname}", tcfg)
        own = tcfg.system_prompt if tcfg.system_prompt is not None else sp  # a target's own system prompt wins
        responses = measure_target(backend, tname, sets, own, dec, judge, c.seed, c.bootstrap, add, console,
                                   tuple(rj.band) if rj.band else None)
        atomic_write_jsonl(run_dir / f"responses_{tname.replace('/', '_')}.jsonl", responses)
    own_prompts = {n: t.system_prompt for n, t in targets.items() if t.system_prompt is not None}
    write_results(run_dir, rows, list(sets), list(targets), c, console, own_prompts, usage(roles.backends))


def _fmt(r: MetricRow, interval: bool = True) -> str:
    return fmt.metric(r.value, r.lo, r.hi) if interval else fmt.metric(r.value)


def write_results(run_dir: Path, rows: Metrics, sets: list[str], targets: list[str], c: EvalConfig, console,
                  own_prompts: dict[str, str], model_usage: dict) -> None:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=["set", "target", "metric", "value", "lo", "hi"])
    w.writeheader()
    w.writerows(r.to_json() for r in rows)
    atomic_write_text(run_dir / "results.csv", buf.getvalue())

    def get(key: tuple[str, str, str]) -> MetricRow:
        return rows.get(*key)

    per_pair = ["PRR", "PRR-substring", "CRR", "CRR determined", "CRR undetermined as refusal", "refused", "complied",
                "undetermined", "content-filter stops", *CLASS_NAMES, "mean log p(y|x)"]
    per_set = ["n", "MSTTR", "HD-D", "MTLD", "semantic diversity"] + (["safety rate"] if c.safety else [])
    lines = ["# evoprompt eval", "",
             f"- targets: {', '.join(targets)}; system prompt: {c.system_prompt!r}; decoding: {asdict(c.decoding)}",
             f"- refusal judge (CRR, classes): {judge_name(c.refusal_judge.name, c.refusal_judge.calibration)}; "
             "PRR: anchored phrase detector; "
             "PRR-substring: the reference's 31 phrases anywhere",
             f"- verdicts: undetermined where the judge and the phrase detector disagree or the judge's p(refusal) lies in "
             f"{c.refusal_judge.band or 'no band'}; `CRR determined` leaves them out, `CRR undetermined as refusal` counts "
             "them as refusals; a content-filter stop counts as a refusal; a rate over no response is undefined",
             *[f"- {n} runs with its own system prompt: {sp!r}" for n, sp in own_prompts.items()],
             "- brackets: bootstrap 95% intervals", ""]
    for metric in per_pair:
        lines += [f"## {metric}", "", "| set | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
        lines += ["| " + s + " | " + " | ".join(_fmt(get((s, t, metric))) for t in targets) + " |" for s in sets]
        lines.append("")
    lines += ["## Instruction sets", "", "| set | " + " | ".join(per_set) + " |", "|---" * (len(per_set) + 1) + "|"]
    lines += ["| " + s + " | " + " | ".join(_fmt(get((s, "-", m))) for m in per_set) + " |" for s in sets]
    lines += ["", *usage_table(model_usage)]
    atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
    atomic_write_json(run_dir / "usage.json", model_usage, indent=1)
    for t in targets:
        bar_chart({m: [get((s, t, m)) for s in sets] for m in ("PRR", "PRR-substring", "CRR")}, sets,
                  f"refusal rates: {t}", run_dir / f"refusal_{t.replace('/', '_')}.png")
    table = Table(title="refusal rates (PRR / CRR) per set x target")
    table.add_column("set")
    for t in targets:
        table.add_column(t, justify="right")
    for s in sets:
        table.add_row(s, *[f"PRR {_fmt(get((s, t, 'PRR')), False)} / CRR {_fmt(get((s, t, 'CRR')), False)}"
                           f" / undetermined {get((s, t, 'undetermined')).value}" for t in targets])
    console.print(table)
    console.print(f"report: {run_dir / 'report.md'}, {run_dir / 'results.csv'}")
