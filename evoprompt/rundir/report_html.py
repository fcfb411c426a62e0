"""report.html: a run to browse and review, in one self-contained file (plots and script inline, nothing fetched at
view time).

report.md gives the statistics; this file adds what a reader needs to judge the items themselves: each exported
item with its lineage (every rewrite from the seed, with its strategy, fitness and refusal probability), the
target's K sampled responses with the judge's verdicts, and the harmlessness gate's verdict; and a review mode
(review_mode.py) in which a person marks items and responses and saves a review file. It is built from the run
directory's files alone (rundir.py), so it can be written for any finished run."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evoprompt.explanations import HEAT_CSS, heat
from evoprompt.files import atomic_write_text
from evoprompt.fitness.refusal import CLASS_NAMES, three_classes
from evoprompt.records import BenchmarkItem, Candidate, ExplainRow
from evoprompt.rundir import review_mode
from evoprompt.rundir.reader import Run, load_run
from evoprompt.rundir.report import USAGE_HEADER, USAGE_NOTE, plot_fitness, usage_rows
from evoprompt.rundir.transfer import ci_text

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em;vertical-align:top}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.item{border:1px solid #bbb;border-radius:6px;padding:.6em 1em;margin:1em 0}
.prompt{font-size:1.1em;font-weight:600;margin:.3em 0}.meta{color:#555;font-size:.9em}
.refusal{background:#fde2e1}.partial{background:#fff3cd}.compliance{background:#e6f4ea}
.safe{color:#17692e;font-weight:600}.unsafe{color:#a61b1b;font-weight:600}
.plots img{max-width:49%;height:auto}details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
""" + HEAT_CSS + review_mode.CSS
VERDICT_CLASS = dict(zip(CLASS_NAMES, ("compliance", "refusal", "partial")))


class _Html(str):
    """A string already in HTML: the one kind of table cell not escaped again."""


def _e(v) -> _Html:
    return _Html(html.escape("" if v is None else str(v)))


def _num(v, spec: str = ".3f") -> _Html:
    """A number as text; anything else a run-directory file may hold in its place shows as '-'."""
    return _Html(format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-")


def _cell(c) -> str:
    return c if isinstance(c, _Html) else _e(c)


def _table(header: list[str] | None, rows: list[list], numeric: set[int] = frozenset(), row_class=None,
           row_attrs=None) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for i, r in enumerate(rows):
        cls = (f' class="{row_class[i]}"' if row_class else "") + (row_attrs[i] if row_attrs else "")
        body.append(f"<tr{cls}>" + "".join(f'<td class="n">{_cell(c)}</td>' if k in numeric else f"<td>{_cell(c)}</td>"
                                           for k, c in enumerate(r)) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _png(draw) -> str:
    buf = io.BytesIO()
    draw(buf)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def plot_refusal(logbook: list[dict], out) -> None:
    gens = [r.gen for r in logbook]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, style, label in (("refusal_prob", "o-", "p(refusal)"), ("judge_refusal_rate", "s--", "sampled refusal rate"),
                              ("opener_prob", "^:", "refusal-opener probability")):
        ax.plot(gens, [getattr(r, key) for r in logbook], style, label=label)
    ax.set_xlabel("generation")
    ax.set_ylabel("population mean")
    ax.set_xticks(gens)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)


def _generations(run: Run) -> str:
    log = run.state.logbook
    if not log:
        return "<p>No per-generation log in this run directory.</p>"
    plots = _png(lambda out: plot_fitness(log, out)) + _png(lambda out: plot_refusal(log, out))
    rows = [[r.gen, r.candidates, r.filtered, r.rejected,
             f"{r.accepted}/{r.lineages}" if r.gen else "-",
             _num(r.population.mean, ".4f"), _num(r.population.max, ".4f"),
             _num(r.refusal_prob, ".4f"), _num(r.judge_refusal_rate), _num(r.opener_prob, ".4f")]
            for r in log]
    return (f'<div class="plots">{plots}</div>'
            + _table(["gen", "candidates", "filtered", "rejected", "accepted", "mean F", "max F", "p(refusal)",
                      "sampled refusal rate", "opener prob"], rows, numeric=set(range(10))))


def _strategies(run: Run) -> str:
    ch = run.state.chooser
    trials, wins = ch.get("trials", {}), ch.get("successes", {})
    out = ""
    if trials:
        rows = [[s, trials[s], wins.get(s, 0), _num(wins.get(s, 0) / trials[s], ".2f") if trials[s] else "-"]
                for s in sorted(trials, key=lambda s: -trials[s])]
        out += ("<p>Success = a mutant that passed filters and gate and scored above its parent.</p>"
                + _table(["strategy", "trials", "successes", "rate"], rows, numeric={1, 2, 3}))
    ops = run.info.operators
    if ops:
        rows = [[op, r["tried"], r["filtered"], r["rejected"], r["scored"], r["improved"]]
                for op, r in sorted(ops.items())]
        out += ("<p>Per strategy and method (llm: the rewriter; frame / lexicon: framings and word edits).</p>"
                + _table(["operator", "tried", "filtered", "rejected", "scored", "improved"], rows, numeric={1, 2, 3, 4, 5}))
    return out or "<p>No strategy statistics in this run directory.</p>"


def lineage(item: BenchmarkItem, candidates: dict[str, Candidate]) -> list:
    """The item's ancestors back to its seed (both parents of a recombination), oldest first, then the item."""
    seen, stack = {}, list(item.lineage.parents)
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen[cid] = candidates.get(cid, Candidate(id=cid, text="(not recorded)"))
        stack += seen[cid].parents
    return sorted(seen.values(), key=lambda c: (c.generation, c.id)) + [item]


def _step_row(c: Candidate | BenchmarkItem, item_id: str) -> list:
    op, method, gen = ((c.lineage.operator, c.lineage.method, c.lineage.generation) if isinstance(c, BenchmarkItem)
                       else (c.operator, c.method, c.generation))
    role = "item" if c.id == item_id else "seed" if op == "seed" or gen == 0 else "step"
    return [gen, role, f"{op}/{method}" if op != "seed" else op, c.text,
            _num(c.score.fitness if c.score else None), _num(c.score.refusal_prob if c.score else None)]


def _per_target(item: BenchmarkItem) -> str:
    t = item.score.targets
    if len(t) < 2:
        return ""
    return " · ".join(f"{_e(n)}: {'refused' if x.refused else 'answered'} (sampled refusal rate "
                      f"{_num(x.judge_refusal_rate, '.2f')})" for n, x in t.items())


def _heat_maps(item: BenchmarkItem, seed_text: str | None, explained: dict[str, ExplainRow]) -> str:
    """The item's and its seed's per-word attributions (`evoprompt explain run=DIR`), if explained."""
    rows = [(label, explained[t]) for label, t in (("item", item.text), ("seed", seed_text)) if t in explained]
    if not rows:
        return ""
    scale = max(abs(a) for _, r in rows for a in r.attributions) or 1e-9
    cells = [[label, _num(r.score), _Html(heat(r.words, r.attributions, scale))] for label, r in rows]
    return ("<details open><summary>Which words make the target refuse (red raises its refusal-opener probability, "
            "blue lowers it)</summary>" + _table(["", "q(x)", "words"], cells, numeric={1}) + "</details>")


def _item(n: int, item: BenchmarkItem, run: Run, candidates: dict[str, Candidate],
          explained: dict[str, ExplainRow]) -> str:
    safety, score, verdict = item.safety, item.score, item.safety.verdict
    steps = [_step_row(c, item.id) for c in lineage(item, candidates)]
    samples = score.samples
    texts, p = [s.text for s in samples], [s.refusal for s in samples]
    classes = [CLASS_NAMES[k] for k in three_classes(None, [item.text] * len(texts), texts, p)]
    chain = " → ".join(item.lineage.chain or ["(seed)"])
    many, labels = len(score.targets) > 1, _per_target(item)
    return f"""<div class="item" id="item-{_e(item.id)}" data-id="{_e(item.id)}">
<div class="meta">#{n} · {_e(item.id)} · category {_e(item.category)} · seed {_e(item.seed.id)}</div>
<div class="prompt">{_e(item.text)}</div>
<div class="meta">fitness {_num(score.fitness)} · p(refusal) {_num(score.refusal_prob)} · sampled refusal rate
{_num(score.judge_refusal_rate)} · seed similarity {_num(item.seed_similarity)} · gate:
<span class="{'safe' if verdict == 'safe' else 'unsafe'}">{_e(verdict)}</span> (p(safe) {_num(safety.p_safe)})
{_e(safety.reason)}</div>
{f'<div class="meta">{labels}</div>' if labels else ''}
{review_mode.item_controls()}
{_heat_maps(item, run.seed_text(item.seed.id), explained)}
<details open><summary>Lineage: {_e(chain)}</summary>
{_table(["gen", "", "strategy", "instruction", "fitness", "p(refusal)"], steps, numeric={0, 4, 5})}</details>
<details open><summary>{len(samples)} sampled responses of the target{'s' if many else ''}, with the refusal judge's verdicts</summary>
{_table((["target"] if many else []) + ["response", "p(refusal)", "verdict", "your label"],
        [([s.target] if many else []) + [t, _num(q), c, _Html(review_mode.response_controls())]
         for s, t, q, c in zip(samples, texts, p, classes)],
        numeric={2 if many else 1}, row_class=[VERDICT_CLASS[c] for c in classes],
        row_attrs=[f' data-sample="{j}"' for j in range(len(samples))])}</details>
</div>"""


def _rejected(run: Run) -> str:
    if not run.rejected:
        return "<p>The gate rejected no candidate.</p>"
    rows = [[r.generation, r.id, r.text, r.gate.verdict if r.gate else None,
             _num(r.gate.p_safe if r.gate else None)] for r in run.rejected]
    return (f"<details><summary>{len(rows)} candidates the harmlessness gate rejected (never scored, never exported)"
            f"</summary>{_table(['gen', 'id', 'instruction', 'verdict', 'p(safe)'], rows, numeric={0, 4})}</details>")


def _transfer(run: Run) -> str:
    summary = run.info.transfer
    if not summary:
        return "<p>No exported items, so no transfer table.</p>"
    rows = [[n, ci_text(r["refused"]), ci_text(r["sampled_refusal_rate"]), _num(r["refusal_prob"])]
            for n, r in summary["targets"].items()]
    out = ("<p>Per target: the share of exported items it refused (one of its K samples a confirmed refusal) and "
           "its mean sampled refusal rate, with bootstrap 95% intervals.</p>"
           + _table(["target", "items refused", "sampled refusal rate", "mean p(refusal)"], rows, numeric={1, 2, 3}))
    if summary["agreement"]:
        out += (f"<p>Refused by every target: {_num(summary['refused_by_all'], '.2f')} of the items.</p>"
                + _table(["targets", "label agreement", "Cohen's kappa"],
                         [[f"{a['a']} / {a['b']}", _num(a["agreement"], ".2f"), _num(a["kappa"], ".2f")]
                          for a in summary["agreement"]], numeric={1, 2}))
    heat = run.path / "transfer.png"
    if heat.is_file():
        out += f'<img alt="sampled refusal rate per item and target" src="data:image/png;base64,{base64.b64encode(heat.read_bytes()).decode()}">'
    return out


def _usage(run: Run) -> str:
    rows = usage_rows(run.info.usage)
    if not rows:
        return "<p>This run directory records no model usage.</p>"
    return f"<p>{_e(USAGE_NOTE)}</p>" + _table(USAGE_HEADER, rows, numeric=set(range(3, len(USAGE_HEADER))))


def render(run: Run) -> str:
    prov, info = run.provenance, run.info
    facts = [("target", run.config.target.model if run.config else None),
             ("rewriter", prov.rewriter_model), ("gate", prov.gate_model),
             ("refusal judge", prov.refusal_judge), ("generations", info.generations),
             ("lineages", info.lineages), ("wall time (s)", info.wall_time_s),
             ("config hash", prov.config_hash), ("evoprompt", prov.evoprompt_version),
             ("exported items", len(run.benchmark)), ("SFT / DPO pairs", f"{len(run.sft)} / {len(run.dpo)}")]
    candidates = {c.id: c for c in run.candidates}
    explained = {r.text: r for r in run.explain if r.method == "occlusion"}
    items = "".join(_item(n, r, run, candidates, explained) for n, r in enumerate(run.benchmark, 1)) or (
        "<p>No item was exported (none reached export.min_refusal with a refusing sample).</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>evoprompt run report: {_e(run.path.name)}</title>
<style>{CSS}</style></head><body>
<h1>evoprompt run report</h1>
{_table(None, [[k, v] for k, v in facts if v is not None])}
<h2>Per generation</h2>
{_generations(run)}
<h2>Strategies</h2>
{_strategies(run)}
<h2>Transfer across targets</h2>
{_transfer(run)}
<h2>Model usage</h2>
{_usage(run)}
<h2 id="items">Exported items ({len(run.benchmark)})</h2>
{review_mode.bar(len(run.benchmark)) if run.benchmark else ''}
{items}
<h2>Gate rejections</h2>
{_rejected(run)}
{review_mode.script(f"{prov.config_hash}:{run.path.name}", review_mode.entries(run.benchmark))}
</body></html>
"""


def write_html_report(run_dir: Path) -> Path:
    """Write report.html beside report.md from the run directory's files; returns its path."""
    run = load_run(Path(run_dir))
    path = run.path / "report.html"
    atomic_write_text(path, render(run))
    return path
