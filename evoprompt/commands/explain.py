"""`evoprompt explain`: which words of each prompt make the target refuse, how faithful that is, and which words
carry refusal across a set (its trigger lexicon).

Per target, every method's attributions come from one batched scoring call over all variants of all prompts
(fitness/attribution.py); the deletion test is a second call: each prompt without its top-k words against the
same prompt without k random words, on the same refusal score. Outputs: explain.jsonl (one row per prompt,
target and method), lexicon.json, report.md, explain.html (heat-mapped, sortable), triggers.png; with run=DIR
also DIR/explain.jsonl and DIR/report.html with each item's and its seed's heat map."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from evoprompt import explanations as ex
from evoprompt import fmt
from evoprompt.errors import UserError, unknown
from evoprompt.files import atomic_savefig, atomic_write_json, atomic_write_jsonl, atomic_write_text
from evoprompt.fitness.attribution import METHODS, captum, occlusion, random_drops, refusal_score, saliency, without
from evoprompt.llm import Decoding
from evoprompt.presets import target_preset
from evoprompt.progress import in_chunks, make_console
from evoprompt.records import ExplainRow
from evoprompt.roles import Roles
from evoprompt.rundir.report import usage, usage_table
from evoprompt.schema import ExplainConfig, RoleConfig
from evoprompt.seeds import load_seeds, set_name
from evoprompt.validate import target_pool, typed

HELP = "which words make the target refuse: per-word attributions, trigger lexicons, HTML"
CONFIG = "explain"  # its config in evoprompt/conf


def prompt_sets(c: ExplainConfig) -> tuple[dict[str, list[tuple[str, str, str, str]]], list[tuple[str, RoleConfig]]]:
    """{set: [(id, text, category, gold focus)]} and the targets; run=DIR gives its items, its seeds and its target.
    The ids are the items' (benchmark.jsonl) and the prompts' own, so a review saved from explain.html names them."""
    if c.run:
        from evoprompt.rundir.reader import load_run

        run_dir = Path(c.run).expanduser()
        if not (run_dir / "benchmark.jsonl").is_file():
            raise UserError(f"run={c.run}: no benchmark.jsonl there (a run directory of `evoprompt run`)")
        run = load_run(run_dir)
        if not run.benchmark:
            raise UserError(f"run={c.run}: the run exported no items")
        seeds = {b.seed.id: (b.seed.id, run.seed_text(b.seed.id), b.category or "", "") for b in run.benchmark
                 if run.seed_text(b.seed.id)}
        sets = {"items": [(b.id, b.text, b.category or "", "") for b in run.benchmark][:c.limit],
                "seeds": list(seeds.values())[:c.limit]}
        targets = [("run target", run.config.target)] if run.config else \
            target_pool(c.targets, target_preset("embedded"), "targets")
        return sets, targets
    if not c.sets:
        raise UserError("no prompt sets given: explain sets=[path,...] (as eval's), or run=RUN_DIR")
    targets = target_pool(c.targets, target_preset("embedded"), "targets")
    if not targets:
        raise UserError("no targets given: explain targets=[embedded-guarded, ...]")
    taken, sets = set(), {}
    for p in c.sets:
        focus = ex.gold_focus(p)
        seeds = load_seeds(p, "auto", c.text_column, c.limit, c.split)
        if not seeds:
            raise UserError(f"{p}: no prompts (split={c.split}, limit={c.limit})")
        sets[set_name(p, taken)] = [(s.id, s.text, s.category or "", focus.get(s.text.strip(), "")) for s in seeds]
    return sets, targets


def attribute(method: str, texts: list[str], backend, chat, score, c: ExplainConfig):
    if method == "occlusion":
        return occlusion(texts, score, c.baseline)
    if method == "saliency":
        return saliency(texts, backend, chat, c.openers[0])
    return captum(texts, backend, chat, c.openers[0], method)


def deletion_test(attrs, score, c: ExplainConfig) -> tuple[list[float], list[float]]:
    """Per prompt: the score without its top-k words, and the mean score without k random words."""
    rand = random_drops(attrs, c.top_k, c.random_trials, c.seed)
    variants = []
    for a, rs in zip(attrs, rand):
        variants.append(without(a.words, set(a.top(c.top_k)), c.baseline))
        variants += [without(a.words, r, c.baseline) for r in rs]
    s = score(variants)
    step = 1 + c.random_trials
    return [s[i * step] for i in range(len(attrs))], [float(np.mean(s[i * step + 1:(i + 1) * step]))
                                                      for i in range(len(attrs))]


def main(cfg, run_dir: Path) -> None:
    c = typed(ExplainConfig, OmegaConf.to_container(cfg, resolve=True))
    for m in c.methods:
        if m not in METHODS:
            raise unknown("explain method", m, METHODS)
    if not c.methods:
        raise UserError(f"methods is empty; valid: {', '.join(METHODS)}")
    sets, targets = prompt_sets(c)
    run_dir.mkdir(parents=True, exist_ok=True)
    console = make_console(stderr=True)
    roles = Roles(c.cache)
    judge = roles.judge(c.refusal_judge) if c.score == "sampled" else None
    d = c.decoding
    rows: list[ExplainRow] = []
    for tname, tcfg in targets:
        backend = roles.backend(f"target {tname}", tcfg)
        sp = tcfg.system_prompt if tcfg.system_prompt is not None else c.system_prompt

        def chat(text, sp=sp):
            return ([{"role": "system", "content": sp}] if sp else []) + [{"role": "user", "content": text}]

        whole = refusal_score(backend, chat, c.score, c.openers, judge=judge, K=c.K,
                              decoding=Decoding(d.temperature, d.top_p, d.max_new_tokens), seed=c.seed)

        def score(texts, whole=whole, tname=tname):
            return in_chunks(console, f"{tname}: scoring", list(texts), whole)
        flat = [(s, pid, t, cat, f) for s, items in sets.items() for pid, t, cat, f in items]
        texts = [t for _, _, t, _, _ in flat]
        for method in c.methods:
            console.print(f"[bold]{tname}[/] {method}: {len(texts)} prompts, "
                          f"{sum(len(t.split()) for t in texts)} words")
            attrs = attribute(method, texts, backend, chat, score, c)
            after_top, after_random = deletion_test(attrs, score, c)
            full = score(texts) if method != "occlusion" else [a.score for a in attrs]
            for (s, pid, t, cat, f), a, q, top_q, rand_q in zip(flat, attrs, full, after_top, after_random):
                rows.append(ExplainRow(set=s, id=pid, target=tname, method=method, score_kind=c.score, text=t,
                                       category=cat, focus=f, words=a.words,
                                       attributions=[round(x, 6) for x in a.attributions],
                                       top=[a.words[j] for j in a.top(c.top_k)], score=q, score_without_top=top_q,
                                       score_without_random=rand_q))
    atomic_write_jsonl(run_dir / "explain.jsonl", [r.to_json() for r in rows])
    summary = summarise(rows, sets, c)
    atomic_write_json(run_dir / "lexicon.json", summary, indent=1)
    model_usage = usage(roles.backends)
    write_report(run_dir, rows, summary, c, model_usage, console)
    if c.run:
        dest = Path(c.run).expanduser()
        shutil.copyfile(run_dir / "explain.jsonl", dest / "explain.jsonl")
        from evoprompt.rundir.report_html import write_html_report

        console.print(f"heat maps added to {write_html_report(dest)}")


def groups(rows: list[ExplainRow]) -> dict[tuple[str, str, str], list[ExplainRow]]:
    out: dict = {}
    for r in rows:
        out.setdefault((r.set, r.target, r.method), []).append(r)
    return out


def summarise(rows: list[ExplainRow], sets: dict, c: ExplainConfig) -> dict:
    """Per set x target x method: the deletion test, the trigger-hit rate, the lexicon (overall, per category)."""
    out = []
    for (s, t, m), rs in groups(rows).items():
        drop_top = [r.score - r.score_without_top for r in rs]
        drop_rand = [r.score - r.score_without_random for r in rs]
        cats = sorted({r.category for r in rs if r.category})
        entry = {"set": s, "target": t, "method": m, "n": len(rs),
                 "deletion": {"top": ex.interval(drop_top, c.bootstrap, c.seed),
                              "random": ex.interval(drop_rand, c.bootstrap, c.seed),
                              "difference": ex.interval(np.subtract(drop_top, drop_rand), c.bootstrap, c.seed)},
                 "lexicon": ex.lexicon(rs, c.bootstrap, c.seed, c.lexicon_top),
                 "by_category": {k: ex.lexicon([r for r in rs if r.category == k], c.bootstrap, c.seed, 10)
                                 for k in cats}}
        if any(r.focus for r in rs):
            entry["trigger_hit"] = ex.trigger_hits(rs, c.refused_at, c.bootstrap, c.seed)
        out.append(entry)
    diffs = []
    if "items" in sets and "seeds" in sets:
        for (s, t, m), rs in groups(rows).items():
            if s == "items":
                seeds = [r for r in rows if r.set == "seeds" and r.target == t and r.method == m]
                diffs.append({"target": t, "method": m, "added": ex.difference(rs, seeds, c.lexicon_top)})
    return {"groups": out, "evolution": diffs}


def _ci(d: dict, spec: str = ".3f") -> str:
    return fmt.ci(d["value"], d["lo"], d["hi"], spec, spec) if d.get("n") else "n/a"


def write_report(run_dir: Path, rows: list[dict], summary: dict, c: ExplainConfig, model_usage: dict, console) -> None:
    lines = ["# evoprompt explain", "",
             f"- methods: {', '.join(c.methods)}; refusal score: {c.score} (opener = q(x), the fitness's refusal-opener "
             f"probability); occlusion baseline: {c.baseline or 'delete the word'}; top-k {c.top_k}",
             "- attribution > 0: the word raises the refusal score; brackets: bootstrap 95% intervals", "",
             "## Faithfulness: deleting the top-k words against k random words", "",
             "| set | target | method | n | drop, top-k deleted | drop, k random deleted | difference (paired) |",
             "|---|---|---|---:|---|---|---|"]
    for g in summary["groups"]:
        dl = g["deletion"]
        lines.append(f"| {g['set']} | {g['target']} | {g['method']} | {g['n']} | {_ci(dl['top'])} | {_ci(dl['random'])} "
                     f"| {_ci(dl['difference'])} |")
    hits = [g for g in summary["groups"] if "trigger_hit" in g]
    if hits:
        lines += ["", f"## Trigger-hit rate (refused prompts, q(x) >= {c.refused_at}, with a gold focus)", "",
                  "| set | target | method | refused prompts | top-1 word in focus | random word in focus | gain |",
                  "|---|---|---|---:|---|---|---|"]
        for g in hits:
            h = g["trigger_hit"]
            lines.append(f"| {g['set']} | {g['target']} | {g['method']} | {h['hit']['n']} | {_ci(h['hit'], '.2f')} | "
                         f"{_ci(h['random'], '.2f')} | {_ci(h['gain'], '.2f')} |")
    for g in summary["groups"]:
        lines += ["", f"## Trigger lexicon: {g['set']} on {g['target']} ({g['method']})", "",
                  "| word | refusal carried (mean over prompts) | prompts with it |", "|---|---|---:|"]
        lines += [f"| {e['word']} | {e['score']:+.4f} [{e['lo']:+.4f}, {e['hi']:+.4f}] | {e['prompts']} |"
                  for e in g["lexicon"]]
    for d in summary["evolution"]:
        lines += ["", f"## What evolution added ({d['target']}, {d['method']}): items against their seeds", "",
                  "| word | items | seeds | added |", "|---|---|---|---|"]
        lines += [f"| {e['word']} | {e['items']:+.4f} | {e['seeds']:+.4f} | {e['added']:+.4f} |" for e in d["added"]]
    lines += ["", *usage_table(model_usage)]
    atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
    atomic_write_json(run_dir / "usage.json", model_usage, indent=1)
    plot_triggers(summary, run_dir / "triggers.png")
    atomic_write_text(run_dir / "explain.html", page(rows, summary, f"explain:{run_dir.name}"))
    for g in summary["groups"]:
        top = ", ".join(e["word"] for e in g["lexicon"][:8])
        console.print(f"{g['set']} / {g['target']} / {g['method']}: deletion gain {_ci(g['deletion']['difference'])}"
                      + (f"; trigger-hit {_ci(g['trigger_hit']['hit'], '.2f')} vs random "
                         f"{_ci(g['trigger_hit']['random'], '.2f')}" if "trigger_hit" in g else "") + f"; top: {top}")
    console.print(f"report: {run_dir / 'report.md'}, {run_dir / 'explain.html'}")


def plot_triggers(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = summary["groups"]
    fig, axes = plt.subplots(1, len(gs), figsize=(4.5 * len(gs), 0.28 * max(len(g["lexicon"]) for g in gs) + 1.2),
                             squeeze=False)
    for ax, g in zip(axes[0], gs):
        lex = g["lexicon"][::-1]
        y = range(len(lex))
        ax.barh(list(y), [e["score"] for e in lex], color="#c0392b",
                xerr=[[e["score"] - e["lo"] for e in lex], [e["hi"] - e["score"] for e in lex]], ecolor="#555")
        ax.set_yticks(list(y), [e["word"] for e in lex], fontsize=8)
        ax.set_title(f"{g['set']} / {g['target']}\n{g['method']}", fontsize=9)
        ax.set_xlabel("refusal carried per prompt", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


PAGE_JS = """
function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';const rows=[...t.tBodies[0].rows];
rows.sort((a,b)=>{const x=a.cells[i].dataset.v??a.cells[i].innerText,y=b.cells[i].dataset.v??b.cells[i].innerText;
const nx=parseFloat(x),ny=parseFloat(y);const c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c});
rows.forEach(r=>t.tBodies[0].appendChild(r))}
"""


def page(rows: list[ExplainRow], summary: dict, review_key: str) -> str:
    """explain.html: every prompt as a heat-mapped sentence in a table sortable by any column, with the review mode
    of report.html (keep / drop / unsure per prompt id); no external file."""
    import html

    from evoprompt.rundir import review_mode

    body, prompts = [], {}
    for r in rows:
        drop = r.score - r.score_without_top
        key = r.id if prompts.get(r.id, {"text": r.text})["text"] == r.text else f"{r.set}:{r.id}"  # two sets, one id
        prompts.setdefault(key, {"id": key, "text": r.text, "samples": []})
        body.append(f"<tr class='item' data-id='{html.escape(key)}'><td>{html.escape(r.set)}</td>"
                    f"<td>{html.escape(r.target)}</td>"
                    f"<td>{html.escape(r.method)}</td><td data-v='{r.score:.6f}'>{r.score:.3f}</td>"
                    f"<td data-v='{drop:.6f}'>{drop:+.3f}</td><td>{html.escape(', '.join(r.top))}</td>"
                    f"<td>{html.escape(r.focus or '')}</td>"
                    f"<td>{ex.heat(r.words, r.attributions)}</td><td>{review_mode.item_controls()}</td></tr>")
    heads = ["set", "target", "method", "refusal score", "drop without top", "top words", "gold focus", "prompt",
             "review"]
    lex = []
    for g in summary["groups"]:
        lex.append(f"<h3>{html.escape(g['set'])} / {html.escape(g['target'])} ({html.escape(g['method'])})</h3><ol>"
                   + "".join(f"<li>{html.escape(e['word'])} {e['score']:+.4f}</li>" for e in g["lexicon"]) + "</ol>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>evoprompt explain</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em}}
table{{border-collapse:collapse;font-size:.9em}}td,th{{border:1px solid #ddd;padding:.25em .5em;vertical-align:top}}
th{{background:#f3f3f3;cursor:pointer}}{ex.HEAT_CSS}.lex{{display:flex;flex-wrap:wrap;gap:2em}}{review_mode.CSS}</style>
<script>{PAGE_JS}</script></head><body>
<h1>evoprompt explain</h1>
<p>Red words raise the target's refusal score, blue words lower it (hover for the value). Click a column to sort.</p>
{review_mode.bar(len(prompts), responses=False)}
<table id="prompts"><thead><tr>{''.join(f'<th onclick="sortBy(this)">{h}</th>' for h in heads)}</tr></thead>
<tbody>{''.join(body)}</tbody></table>
<h2>Trigger lexicons</h2><div class="lex">{''.join(lex)}</div>
{review_mode.script(review_key, list(prompts.values()))}
</body></html>
"""
