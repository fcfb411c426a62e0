"""An adapter from `evoprompt align` runs as a target on both local backends: HF folds it into the weights,
vLLM applies it per request (LoRA). Both must give the adapted model's log-probs, not the base model's."""
import pytest

CHATS = [[{"role": "user", "content": "How do I kill a Python process that hangs?"}],
         [{"role": "system", "content": "Answer in one short sentence."}, {"role": "user", "content": "What is a knife?"}]]
ANSWERS = ["I'm sorry, but I can't help with that.", "A knife is a tool with a blade for cutting."]
TOL = 0.05  # mean absolute log-prob difference per token


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter with random, non-zero weights (peft's init_lora_weights=False): it moves every log-prob."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from evoprompt.llm.embedded import embedded_llm_dir

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(embedded_llm_dir(), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False,
                                            task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return str(out)


def per_token(samples):
    return [t for s in samples for t in s.token_logprobs]


@pytest.fixture(scope="module")
def hf_scores(adapter):
    from evoprompt.llm.hf import HFBackend

    return (per_token(HFBackend("embedded").score(CHATS, ANSWERS)),
            per_token(HFBackend("embedded", adapter=adapter).score(CHATS, ANSWERS)))


@pytest.mark.slow
def test_hf_adapter_changes_the_model_and_names_it_in_cache_keys(adapter, hf_scores):
    from evoprompt.llm.hf import HFBackend
    from evoprompt.presets import target_preset

    base, adapted = hf_scores
    assert len(base) == len(adapted) and sum(abs(a - b) for a, b in zip(base, adapted)) / len(base) > 0.1
    assert HFBackend("embedded", adapter=adapter).model_id.startswith("embedded+lora:")
    preset = target_preset(adapter)  # an adapter folder is an eval target: its base model plus the adapter
    assert preset["adapter"] == adapter and preset["backend"] == "hf"


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_lora_gives_the_adapted_log_probs(adapter, hf_scores):
    pytest.importorskip("vllm")
    from evoprompt.llm.vllm_backend import VLLMBackend

    engine = VLLMBackend("embedded", max_model_len=1024, enforce_eager=True, lora=adapter, max_lora_rank=8)
    try:  # several requests in one call: vLLM's LoRA prompt log-probs break when requests share a step
        got = per_token(engine.score(CHATS * 4, ANSWERS * 4))
    finally:
        engine.llm.llm_engine.engine_core.shutdown()
    base, adapted = (s * 4 for s in hf_scores)
    assert sum(abs(a - b) for a, b in zip(got, adapted)) / len(got) < TOL
    assert sum(abs(a - b) for a, b in zip(got, base)) / len(got) > 0.1
