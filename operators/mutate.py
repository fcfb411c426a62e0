"""Mutation: one rewrite request per (lineage, chosen strategy), in the rewriter's prompting style.

chat: the strategy's task inside the instruction template (strong chat models follow it);
completion: a few-shot document of the strategy's examples (`examples/<strategy>.txt`) that the model
continues with one line, the only prompting a ~100M-parameter model follows on topic."""
from __future__ import annotations

from pathlib import Path

from evoprompt.llm import completion
from evoprompt.operators.rewrite import TEMPLATES, RewriteRequest, chat_request
from evoprompt.operators.strategies import get_strategy

_MUTATE = (TEMPLATES / "mutate.txt").read_text(encoding="utf-8")
EXAMPLES = Path(__file__).parent / "examples"


def few_shot(name: str, query: str, answer_label: str) -> str:
    """examples/<name>.txt (a `# task` line, then labelled example lines) + the query, open at the answer label."""
    head, _, body = (EXAMPLES / f"{name}.txt").read_text(encoding="utf-8").partition("\n")
    doc, block = [head.removeprefix("#").strip(), ""], []
    for line in body.strip().split("\n"):
        block.append(line)
        if line.startswith(f"{answer_label}:"):
            doc += block + [""]
            block = []
    return "\n".join(doc + [query, f"{answer_label}:"])


def mutation_request(instruction: str, strategy: str, style: str = "chat", tag=None,
                     marked: list[str] | None = None) -> RewriteRequest:
    """`marked`: the instruction's top trigger words, shown to the rewriter by the `trigger` strategy."""
    shown = ", ".join(marked or [])
    if style == "completion":
        query = f"Question: {instruction}" + (f"\nMarked: {shown}" if marked is not None else "")
        return RewriteRequest(completion(few_shot(strategy, query, "Alarming")), strategy, [instruction], tag, style)
    task = get_strategy(strategy).task.replace("{marked}", shown)
    return chat_request(_MUTATE.format(strategy=task, instruction=instruction), strategy, [instruction], tag)
