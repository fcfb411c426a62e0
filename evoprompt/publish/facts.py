"""Facts about a run that every published format states the same way: its targets by model name, the set's name."""
from __future__ import annotations

from evoprompt.fmt import one_line
from evoprompt.rundir.reader import Run
from evoprompt.validate import role_mapping, run_targets

EMBEDDED = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the model name `embedded` runs (evoprompt.llm.embedded)


def model_name(name: str | None) -> str:
    """A model as a reader knows it (the packaged SmolLM2 by its hub id), on one line: run-directory strings are
    edited by people and go into code, YAML and Markdown."""
    return EMBEDDED if name == "embedded" else one_line(name) if name else "unknown"


def pool(run: Run) -> list[dict]:
    """The run's targets: name, model, backend, system_prompt each (provenance, else the stored config)."""
    if run.provenance.targets:
        return run.provenance.targets
    if run.config:
        return [{"name": n, **role_mapping(r)} for n, r in run_targets(run.config)]
    p = run.provenance
    return [{"name": "target", "model": p.target_model, "backend": p.target_backend or "",
             "system_prompt": p.target_system_prompt}]


def targets(run: Run) -> list[str]:
    many = len(pool(run)) > 1
    return [model_name(t.get("model")) + (" with a system prompt" if t.get("system_prompt") and many else "")
            for t in pool(run)]


def pretty_name(run: Run) -> str:
    return f"evoprompt over-refusal set for {', '.join(targets(run))}"
