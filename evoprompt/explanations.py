"""What explain reports over many attributions: trigger lexicons, the deletion test, the trigger-hit rate, and
the heat-mapped sentences of explain.html and a run's report.html."""
from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from evoprompt import metrics
from evoprompt.files import read_csv
from evoprompt.records import ExplainRow


def norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower()).strip("'")


def lexicon(rows: list[ExplainRow], n_boot: int, seed: int, top: int | None = None) -> list[dict]:
    """Words ranked by the refusal they carry in aggregate: per prompt, the sum of a word's attributions (mean
    attribution x frequency), averaged over the prompts, with a bootstrap interval over prompts."""
    per_prompt = []
    for r in rows:
        d = defaultdict(float)
        for w, a in zip(r.words, r.attributions):
            if norm(w):
                d[norm(w)] += a
        per_prompt.append(d)
    if not per_prompt:
        return []
    count = defaultdict(int)
    for d in per_prompt:
        for w in d:
            count[w] += 1
    out = []
    for w, n in count.items():
        v = np.array([d.get(w, 0.0) for d in per_prompt])
        out.append({"word": w, "score": float(v.mean()), "prompts": n})
    out.sort(key=lambda e: (-e["score"], e["word"]))
    out = out[:top] if top else out
    for e in out:
        v = np.array([d.get(e["word"], 0.0) for d in per_prompt])
        e["lo"], e["hi"] = metrics.bootstrap_ci(v, n=n_boot, seed=seed)
    return out


def difference(items: list[ExplainRow], seeds: list[ExplainRow], top: int) -> list[dict]:
    """What evolution added: words that carry refusal in the evolved items, ranked by how much more than in the
    seeds (a word absent from the seeds counts 0 there)."""
    a = {e["word"]: e["score"] for e in lexicon(items, 1, 0)}
    b = {e["word"]: e["score"] for e in lexicon(seeds, 1, 0)}
    rows = [{"word": w, "items": a.get(w, 0.0), "seeds": b.get(w, 0.0), "added": a.get(w, 0.0) - b.get(w, 0.0)}
            for w in a if a[w] > 0]
    return sorted(rows, key=lambda e: (-e["added"], e["word"]))[:top]


def interval(values, n_boot: int, seed: int) -> dict:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return {"value": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    lo, hi = metrics.bootstrap_ci(v, n=n_boot, seed=seed)
    return {"value": float(v.mean()), "lo": lo, "hi": hi, "n": len(v)}


def gold_focus(path: str) -> dict[str, str]:
    """prompt -> gold focus word(s), for files with a `focus` column (XSTest); empty otherwise."""
    p = Path(path)
    if p.suffix.lower() != ".csv" or not p.is_file():
        return {}
    header, rows = read_csv(p)
    if "focus" not in header:
        return {}
    col = next((c for c in ("prompt", "text", "instruction") if c in header), None)
    return {r[col].strip(): r["focus"] for r in rows if r.get("focus")} if col else {}


def hits_focus(word: str, focus: str) -> bool:
    """The word is a focus word or shares its stem (executing ~ execute), as XSB's trigger-hit rate counts."""
    w, gold = norm(word).replace("'", ""), [norm(g).replace("'", "") for g in focus.split()]
    return bool(w) and any(w == g or (w[:5] == g[:5] and min(len(w), len(g)) >= 4) for g in gold if g)


def trigger_hits(rows: list[ExplainRow], refused_at: float, n_boot: int, seed: int) -> dict:
    """Over refused prompts with a gold focus: top-1 word inside the focus, against a random word's chance."""
    sel = [r for r in rows if r.focus and r.score >= refused_at and r.words]
    hit = [hits_focus(r.words[int(np.argmax(r.attributions))], r.focus) for r in sel]
    chance = [sum(hits_focus(w, r.focus) for w in r.words) / len(r.words) for r in sel]
    return {"hit": interval(hit, n_boot, seed), "random": interval(chance, n_boot, seed),
            "gain": interval(np.array(hit, float) - np.array(chance), n_boot, seed)}


def colour(a: float, scale: float) -> str:
    x = max(-1.0, min(1.0, a / scale)) if scale > 0 else 0.0
    return f"rgba(220,40,40,{x:.2f})" if x >= 0 else f"rgba(40,90,220,{-x:.2f})"


def heat(words: list[str], attributions: list[float], scale: float | None = None) -> str:
    """A sentence with each word's background red (raises refusal) or blue (lowers it), value on hover."""
    scale = scale or max([abs(a) for a in attributions] + [1e-9])
    return " ".join(f'<span class="w" style="background:{colour(a, scale)}" title="{a:+.3f}">{html.escape(w)}</span>'
                    for w, a in zip(words, attributions))


HEAT_CSS = ".w{padding:1px 2px;border-radius:3px}"
