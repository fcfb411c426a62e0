"""One registry shape for everything chosen by name: `{name: "module:attribute"}`, imported only when used.

What an entry needs and can do is declared where it is defined, not here: a backend class's `CAPABILITIES`
(llm/base.py), a refusal judge class's `NEEDS` and one constructor `from_parts` (fitness/refusal/base.py), a
command module's `HELP` and `CONFIG`; a mutation strategy is a data file with its family and prior
(operators/strategies/). Help strings, `check`, validation and the contract test (tests/test_registry.py) read
those declarations, so a new entry is one line here plus its own file."""
from __future__ import annotations

import importlib

from evoprompt.errors import unknown

BACKENDS: dict[str, str] = {
    "hf": "evoprompt.llm.hf:HFBackend",
    "vllm": "evoprompt.llm.vllm_backend:VLLMBackend",
    "openai": "evoprompt.llm.openai_backend:OpenAIBackend",
    "ray": "evoprompt.llm.ray_pool:RayPoolBackend",
}

JUDGES: dict[str, str] = {
    "classifier-anchored": "evoprompt.fitness.refusal.classifier:AnchoredClassifier",
    "classifier": "evoprompt.fitness.refusal.classifier:EmbeddingRefusalClassifier",
    "phrases": "evoprompt.fitness.refusal.phrases:AnchoredPhraseJudge",
    "phrases-substring": "evoprompt.fitness.refusal.phrases:SubstringPhraseJudge",
    "llm": "evoprompt.fitness.refusal.llm_judge:LLMRefusalJudge",
    "hf-classifier": "evoprompt.fitness.refusal.hf_classifier:HFClassifierJudge",
}

# a command module has main(cfg, run_dir), HELP (one line for the usage) and CONFIG (its config in evoprompt/conf,
# or None for a command with flags of its own)
COMMANDS: dict[str, str] = {
    "run": "evoprompt.commands.run",
    "eval": "evoprompt.commands.eval",
    "check": "evoprompt.commands.check",
    "judge-train": "evoprompt.commands.judge_train",
    "judge-calibrate": "evoprompt.commands.judge_calibrate",
    "gate-calibrate": "evoprompt.commands.gate_calibrate",
    "align": "evoprompt.commands.align",
    "export": "evoprompt.commands.export",
    "explain": "evoprompt.commands.explain",
    "build-guarded": "evoprompt.commands.build_guarded",
    "mitigate": "evoprompt.commands.mitigate",
    "bench": "evoprompt.commands.bench",
}


def load(ref: str):
    """The module, or the attribute of it, that `module[:attribute]` names."""
    module, _, attr = ref.partition(":")
    m = importlib.import_module(module)
    return getattr(m, attr) if attr else m


def get(kind: str, table: dict[str, str], name: str):
    """The entry `name` of a registry, or one UserError naming the valid ones."""
    if name not in table:
        raise unknown(kind, name, table)
    return load(table[name])
