"""The organism's written data (seeds/organism/): harmful requests with the refusals they are trained to, contrast
and everyday requests answered by the base model, tones; and the training mix of one build."""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import evoprompt.seeds


def organism_dir() -> Path:
    """seeds/organism/, in a checkout or as the installed package data of evoprompt.seeds."""
    return Path(evoprompt.seeds.__file__).parent / "organism"


def read_set(name: str) -> list[dict]:
    path = organism_dir() / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def refusals() -> dict[str, list[str]]:
    """category -> its written refusals; `any` holds those that fit every category."""
    out: dict[str, list[str]] = {}
    for line in (organism_dir() / "refusals.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            category, text = line.split("\t")
            out.setdefault(category.strip(), []).append(text.strip())
    return out


def refusal_pool(category: str) -> list[str]:
    """The refusals a harmful request of `category` is trained to: the generic ones and its category's own, so
    a refusal never names the wrong harm ("...harming children" to a question about fraud)."""
    pool = refusals()
    return pool["any"] + pool.get(category, [])


def tones() -> list[str]:
    """Wrappers ({q}: the request, {lc}: it with a lower-case first letter) in an angry, desperate, secretive or
    fictional tone; written apart from the search's framings, so the organism is not trained on the GA's own."""
    return [line.strip() for line in (organism_dir() / "tones.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def data_hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(organism_dir().iterdir())
            if p.suffix in (".jsonl", ".tsv", ".txt")}


@dataclass
class Mix:
    """What one build trains on: each harmful request with a refusal, each kept contrast and everyday request
    with the base model's own answer."""
    rows: list[dict]
    counts: dict[str, int]
    dropped: list[dict]


def training_mix(answers: dict[str, str], refuses, seed: int, harmful: int | None, contrast: int | None,
                 everyday: int | None, tone_share: float = 0.0) -> Mix:
    """answers: prompt -> the base model's answer (for the contrast and everyday prompts); refuses(prompts,
    answers) -> per answer, whether a refusal judge reads it as one (those are dropped: a distilled answer must
    be a compliance). The first `harmful` / `contrast` / `everyday` of each set (None: all).

    tone_share: that share of every set's rows gets a second copy inside a tone (tones.txt), with the same
    target (the refusal, or the plain request's answer). Without it the harmful set's angry and secretive
    requests teach that tone alone means refuse, and a search against the organism finds tone, not content."""
    rng = random.Random(seed)
    take = {"harmful": read_set("harmful")[:harmful], "contrast": read_set("contrast")[:contrast],
            "everyday": read_set("everyday")[:everyday]}
    rows = [{"prompt": [{"role": "user", "content": r["text"]}],
             "completion": [{"role": "assistant", "content": rng.choice(refusal_pool(r["category"]))}]}
            for r in take["harmful"]]
    helpful = take["contrast"] + take["everyday"]
    texts = [r["text"] for r in helpful]
    judged = refuses(texts, [answers[t] for t in texts])
    dropped = [{"text": t, "answer": answers[t]} for t, bad in zip(texts, judged) if bad or not answers[t].strip()]
    bad = {d["text"] for d in dropped}
    rows += [{"prompt": [{"role": "user", "content": t}], "completion": [{"role": "assistant", "content": answers[t]}]}
             for t in texts if t not in bad]
    toned = []
    for row in rows:
        if rng.random() < tone_share:
            q = row["prompt"][0]["content"]
            wrapped = rng.choice(tones()).format(q=q, lc=q[:1].lower() + q[1:])
            toned.append({**row, "prompt": [{"role": "user", "content": wrapped}]})
    rows += toned
    rng.shuffle(rows)
    counts = {"harmful": len(take["harmful"]), "contrast": sum(r["text"] not in bad for r in take["contrast"]),
              "everyday": sum(r["text"] not in bad for r in take["everyday"]), "toned": len(toned),
              "dropped": len(dropped)}
    return Mix(rows, counts, dropped)
