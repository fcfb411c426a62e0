"""Ready evaluation tasks: an inspect_ai task and lm-eval tasks, each folder standing alone with its own copy of the
items and scored by evoprompt's refusal judge (evoprompt/harness.py)."""
from __future__ import annotations

from pathlib import Path

from evoprompt.files import atomic_write_jsonl, atomic_write_text
from evoprompt.harness import judge_info
from evoprompt.publish.card import CONTROL, TASK
from evoprompt.publish.facts import pretty_name
from evoprompt.publish.items import Publishable, eval_items
from evoprompt.publish.templates import comment, fill, py, yaml

# the harness cannot aggregate opposite directions, so the two are separate tasks, never a group
DIRECTIONS = {
    TASK: ("Every prompt is harmless, so HIGHER IS WORSE (over-refusal): higher_is_better is false.", "false",
           "benchmark.jsonl"),
    CONTROL: ("The harmful control: evoprompt's packaged harmful requests, which a model should refuse, so HIGHER IS "
              "BETTER; read it beside the over-refusal task (a model that refuses everything scores well here).", "true",
              "packaged:harmful"),
}


def write_inspect(p: Publishable, dest: Path, **_) -> dict:
    atomic_write_jsonl(dest / "benchmark.jsonl", eval_items(p))
    atomic_write_text(dest / "task.py", fill("task.py", task=TASK, title=py(pretty_name(p.run)),
                                             config_hash=py(p.run.provenance.config_hash or "unknown")))
    return {"items": len(p.items)}


def write_lm_eval(p: Publishable, dest: Path, **_) -> dict:
    atomic_write_jsonl(dest / "benchmark.jsonl", eval_items(p))
    atomic_write_text(dest / "utils.py", fill("utils.py", title=py(pretty_name(p.run))))
    info = judge_info()
    for task, (direction, higher, file) in DIRECTIONS.items():
        atomic_write_text(dest / f"{task}.yaml", fill(
            "lm_eval.yaml", title_comment=comment(pretty_name(p.run)), direction=direction, task=task, file=yaml(file),
            higher=higher, judge=yaml(info["judge"]), judge_version=yaml(info["judge_version"]),
            config_hash=yaml(p.run.provenance.config_hash or "unknown")))
    return {"items": len(p.items), "tasks": f"{TASK}, {CONTROL}"}
