"""Training examples for `evoprompt align`: read from the formats users have, mixed with safety-retention pairs,
and kept apart from every evaluation set.

Formats: a run directory (its sft.jsonl / dpo.jsonl), TRL conversational JSONL (`messages`, or
`prompt`/`chosen`/`rejected` as message lists or plain strings), and the EvoRefuse-Align ShareGPT-style JSON
(a list of records with `conversations`, and `chosen`/`rejected` for preference pairs). Every problem names the
file and the line or record."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evoprompt.errors import UserError
from evoprompt.public_sets import is_public, resolve
from evoprompt.seeds import load_seeds
from evoprompt.seeds.loaders import PACKAGED, jsonl_objects, parse_json

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass
class Example:
    """One training item: the prompt turns (no system turn), the answer to teach and, for DPO, the one to avoid."""
    prompt: list[dict]
    chosen: str
    rejected: str | None
    origin: str  # "FILE:LINE" or "retain:FILE"

    @property
    def text(self) -> str:
        """The last user turn: what the leakage guard compares."""
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")


def resolve_path(path: str) -> Path | str:
    """`data:NAME` -> the public set's local copy (public_sets); `packaged:NAME` stays a name; else a path."""
    if is_public(path):
        return resolve(path)
    if path.startswith("packaged:"):
        name = path.split(":", 1)[1]
        if name not in PACKAGED:
            raise UserError(f"unknown packaged set '{name}'; valid: {', '.join(PACKAGED)}")
        return path
    return Path(path).expanduser()


def load_prompts(path: str, split: str, limit: int | None = None) -> list[str]:
    where = resolve_path(path)
    if isinstance(where, str):
        return [s.text for s in load_seeds(None, limit=limit, packaged=where.split(":", 1)[1])]
    return [s.text for s in load_seeds(str(where), "auto", None, limit, split)]


def _turns(messages, where: str) -> list[dict]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise UserError(f"{where}: expected a list of messages ({{role, content}} or {{from, value}})")
    out = []
    for m in messages:
        role, content = m.get("role", m.get("from")), m.get("content", m.get("value"))
        if role not in SHAREGPT_ROLES or not isinstance(content, str):
            raise UserError(f"{where}: a message needs a role (user/assistant/system or human/gpt) and text, got {m!r}")
        out.append({"role": SHAREGPT_ROLES[role], "content": content})
    return out


def _answer(value, where: str, key: str) -> str:
    if isinstance(value, str):
        value = [{"role": "assistant", "content": value}]
    turns = _turns([value] if isinstance(value, dict) else value, f"{where} '{key}'")
    answers = [m["content"] for m in turns if m["role"] == "assistant"]
    if not answers or not answers[-1].strip():
        raise UserError(f"{where}: '{key}' holds no assistant answer")
    return answers[-1]


def parse_record(rec, where: str) -> Example:
    if not isinstance(rec, dict):
        raise UserError(f"{where}: not a JSON object")
    if "messages" in rec or ("conversations" in rec and "chosen" not in rec):
        turns = [m for m in _turns(rec.get("messages", rec.get("conversations")), where) if m["role"] != "system"]
        if len(turns) < 2 or turns[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in turns):
            raise UserError(f"{where}: an SFT record needs a user turn followed by the assistant's answer")
        return Example(turns[:-1], turns[-1]["content"], None, where)
    if "chosen" in rec and ("prompt" in rec or "conversations" in rec):
        prompt = [m for m in _turns(rec.get("prompt", rec.get("conversations")), where) if m["role"] != "system"]
        if not any(m["role"] == "user" for m in prompt):
            raise UserError(f"{where}: the prompt has no user turn")
        rejected = _answer(rec["rejected"], where, "rejected") if "rejected" in rec else None
        return Example(prompt, _answer(rec["chosen"], where, "chosen"), rejected, where)
    keys = ", ".join(rec) or "none"
    raise UserError(f"{where}: unknown record format (keys: {keys}); expected messages (SFT), prompt/chosen/rejected "
                    "(DPO) or conversations/chosen/rejected (EvoRefuse-Align)")


def read_file(path: Path) -> list[Example]:
    if not path.is_file():
        raise UserError(f"training data not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if path.suffix == ".json" or text.lstrip().startswith("["):
        records = parse_json(text, str(path), list, "expected a JSON list of records (EvoRefuse-Align format)")
        return [parse_record(r, f"{path}: record {i}") for i, r in enumerate(records)]
    return [parse_record(rec, f"{path}:{n}") for n, rec in jsonl_objects(path)]


def load_examples(sources: list[str], method: str) -> list[Example]:
    """Every example of every source; a run directory gives dpo.jsonl for dpo (and sft+dpo), sft.jsonl for sft."""
    if not sources:
        raise UserError("no training data given: align data=[RUN_DIR or sft.jsonl/dpo.jsonl or EvoRefuse-Align .json]")
    examples = []
    for s in sources:
        p = Path(s).expanduser()
        if p.is_dir():
            name = "sft.jsonl" if method == "sft" else "dpo.jsonl"
            if not (p / name).is_file():
                raise UserError(f"{p}: no {name} in this directory (a run directory has it when export.sft_dpo is on)")
            p = p / name
        examples += read_file(p)
    if not examples:
        raise UserError(f"no training examples in {', '.join(sources)} (the files are empty)")
    if method != "sft" and not any(e.rejected for e in examples):
        raise UserError(f"method={method} needs preference pairs (chosen and rejected); "
                        f"{', '.join(sources)} holds SFT records only: use method=sft")
    return examples


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@dataclass
class Overlap:
    eval_set: str
    dropped: list[Example]


def leakage_guard(examples: list[Example], eval_sets: dict[str, list[str]], embed, threshold: float,
                  max_fraction: float) -> tuple[list[Example], list[Overlap]]:
    """Drops every example whose prompt equals (normalised) or is embedded within `threshold` of a prompt of any
    evaluation set; more than `max_fraction` of the examples overlapping one set is a UserError naming it."""
    if not examples:
        return examples, []
    mine = embed([e.text for e in examples])
    keep = np.ones(len(examples), dtype=bool)
    report = []
    for name, prompts in eval_sets.items():
        if not prompts:
            continue
        theirs = embed(prompts)
        norm = {normalise(p) for p in prompts}
        close = (np.asarray(mine) @ np.asarray(theirs).T).max(axis=1) >= threshold
        hit = np.array([normalise(e.text) in norm for e in examples]) | close
        if hit.mean() > max_fraction:
            raise UserError(f"training data overlaps the evaluation set '{name}': {int(hit.sum())} of {len(examples)} "
                            f"prompts ({hit.mean():.0%}) equal or are within cosine {threshold} of its prompts, more "
                            f"than align.max_overlap={max_fraction}; evaluate on a set the data was not built from")
        report.append(Overlap(name, [e for e, h in zip(examples, hit) if h]))
        keep &= ~hit
    return [e for e, k in zip(examples, keep) if k], report


def with_system(prompt: list[dict], system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + prompt


def sft_rows(examples: list[Example], system: str | None) -> list[dict]:
    """Prompt-completion rows: TRL then trains on the answer's tokens only."""
    return [{"prompt": with_system(e.prompt, system), "completion": [{"role": "assistant", "content": e.chosen}]}
            for e in examples]


def dpo_rows(examples: list[Example], system: str | None) -> list[dict]:
    return [{"prompt": with_system(e.prompt, system), "chosen": [{"role": "assistant", "content": e.chosen}],
             "rejected": [{"role": "assistant", "content": e.rejected}]} for e in examples if e.rejected]
