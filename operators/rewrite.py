"""One batched rewriter call per round for every pending request, with a bounded number of rounds."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evoprompt.llm import Backend, Chat, Decoding
from evoprompt.operators.parse import ParseError, first_line, parse_rewrite

TEMPLATES = Path(__file__).parent / "templates"
_FORMAT = (TEMPLATES / "rewrite_format.txt").read_text(encoding="utf-8")


@dataclass
class RewriteRequest:
    chat: Chat                # what the rewriter is sent
    operator: str             # strategy name, or "recombine"
    parents: list[str]        # texts the rewrite starts from
    tag: object = None        # caller's bookkeeping (lineage, parent ids)
    style: str = "chat"       # chat: parse "Instruction: ... Reason: ..."; completion: the first line


def chat_request(body: str, operator: str, parents: list[str], tag=None) -> RewriteRequest:
    return RewriteRequest([{"role": "user", "content": _FORMAT.format(body=body)}], operator, parents, tag)


@dataclass
class Rewrite:
    request: RewriteRequest
    text: str
    reason: str
    attempts: int


@dataclass
class RewriteFailure:
    request: RewriteRequest
    errors: list[str] = field(default_factory=list)


def dedupe_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def sub_seed(seed: int, *parts) -> int:
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:4], "little")


def rewrite_all(backend: Backend, requests: list[RewriteRequest], decoding: Decoding, seed: int,
                max_attempts: int, max_chars: int, seen: set[str],
                check: Callable[[list[tuple[RewriteRequest, str]]], list[str | None]] | None = None,
                ) -> tuple[list[Rewrite], list[RewriteFailure]]:
    """Rewrites for all requests; a request whose output is empty, unparsable, over-long, a copy of a
    parent or of anything in `seen`, or refused by `check` (one batched call per round: a reason, or None
    to keep it) is asked again, at most max_attempts times in all."""
    done: list[Rewrite] = []
    failures = {i: RewriteFailure(r) for i, r in enumerate(requests)}
    for attempt in range(max_attempts):
        pending = sorted(failures)
        if not pending:
            break
        chats = [requests[i].chat for i in pending]
        outputs = backend.generate(chats, 1, decoding, sub_seed(seed, attempt))
        parsed = []
        for i, samples in zip(pending, outputs):
            try:
                parsed.append((i, *_parse(samples[0].text, requests[i], max_chars)))
            except ParseError as e:
                failures[i].errors.append(str(e))
        verdicts = check([(requests[i], text) for i, text, _, _ in parsed]) if check and parsed else [None] * len(parsed)
        for (i, text, reason, key), why in zip(parsed, verdicts):
            why = why or ("duplicate" if key in seen else None)
            if why:
                failures[i].errors.append(why)
                continue
            seen.add(key)
            done.append(Rewrite(requests[i], text, reason, attempt + 1))
            del failures[i]
    return done, list(failures.values())


def _parse(output: str, req: RewriteRequest, max_chars: int) -> tuple[str, str, str]:
    text, reason = parse_rewrite(output) if req.style == "chat" else (first_line(output), "")
    key = dedupe_key(text)
    if len(text) > max_chars:
        raise ParseError(f"longer than {max_chars} characters")
    if len(key) < 8:
        raise ParseError("too short")
    if key in {dedupe_key(p) for p in req.parents}:
        raise ParseError("duplicate")
    return text, reason, key
