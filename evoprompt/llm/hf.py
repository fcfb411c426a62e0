"""HF transformers backend: padding-aware batches on CPU or GPU.

Sampling runs through `generate` in greedy mode with a logits processor that draws each row's token by
the Gumbel-max trick from a generator seeded by (call seed, prompt, sample index). A row's sample thus
does not depend on its batch neighbours, and the processor records log p(token | x, prefix) under the
untempered model, so log p(y|x) comes from the same call that produced y."""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from evoprompt.llm.base import BackendError, Capabilities, Chat, Decoding, Sample, raw_document
from evoprompt.llm.embedded import model_identity, resolve_model_path


def row_seed(seed: int, text: str, j: int) -> int:
    h = hashlib.sha256(f"{seed}\x00{j}\x00{text}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


M32 = 0xFFFFFFFF


def _mix32(h):
    """A 32-bit integer hash (lowbias32) over an int64 tensor of values in [0, 2^32): products wrap mod 2^64,
    whose low 32 bits are the 32-bit product."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & M32
    h = h ^ (h >> 15)
    h = (h * 0x846CA68B) & M32
    return h ^ (h >> 16)


def hash_uniform(torch, keys, step: int, vocab: int):
    """Uniforms in (0, 1), shape (rows, vocab), a pure function of (row key, step, token id): counter-based
    noise made by tensor ops on the keys' device, so no generator state, no host work and no copy per step."""
    tokens = torch.arange(vocab, device=keys.device, dtype=torch.int64)[None, :]
    row = _mix32((_mix32(keys[:, :1] ^ _mix32(torch.tensor(step & M32, device=keys.device))) + keys[:, 1:]) & M32)
    h = _mix32(_mix32(row ^ tokens) ^ row)
    return ((h >> 8).float() + 0.5) / float(1 << 24)


class _GumbelSampler:
    """noise: generator (one seeded torch.Generator per row, drawn on the CPU: the CPU default, whose
    samples every cached result was made with) or hash (hash_uniform on the model's device: the GPU default)."""

    def __init__(self, seeds: list[int], decoding: Decoding, device, noise: str = "generator"):
        import torch

        self.torch = torch
        self.decoding = decoding
        self.noise = noise
        if noise == "hash":
            self.keys = torch.tensor([[s & M32, (s >> 32) & M32] for s in seeds], dtype=torch.int64, device=device)
        else:
            self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.device = device
        self.step = 0
        self.picked: list = []  # per step, (rows,) log-probs on the device; read once at the end

    def uniform(self, shape):
        torch = self.torch
        if self.noise == "hash":
            return hash_uniform(torch, self.keys, self.step, shape[-1])
        return torch.stack([torch.rand(shape[-1], generator=g) for g in self.generators]).to(self.device)

    def __call__(self, input_ids, scores):
        torch = self.torch
        scores = scores.float()
        logp = torch.log_softmax(scores, dim=-1)
        t = self.decoding.temperature
        if t <= 0:
            choice = scores.argmax(dim=-1)
        else:
            z = scores / t
            if self.decoding.top_p < 1.0:
                z = _top_p_filter(torch, z, self.decoding.top_p)
            exp_noise = -torch.log(self.uniform(z.shape).clamp_min(1e-20))
            gumbel = -torch.log(exp_noise.clamp_min(1e-20))
            choice = (z + gumbel).argmax(dim=-1)
        self.picked.append(logp.gather(1, choice[:, None])[:, 0])
        self.step += 1
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, choice[:, None], 0.0)
        return forced

    def logprobs(self) -> list[list[float]]:
        """Per row, the log-prob of each token it was given (rows that ended early continue with padding)."""
        if not self.picked:
            return [[] for _ in range(len(self.keys) if self.noise == "hash" else len(self.generators))]
        return self.torch.stack(self.picked, 1).tolist()


def _top_p_filter(torch, z, top_p: float):
    sorted_z, idx = z.sort(dim=-1, descending=True)
    cum = torch.softmax(sorted_z, dim=-1).cumsum(dim=-1)
    drop = cum - torch.softmax(sorted_z, dim=-1) > top_p  # keep the smallest prefix reaching top_p
    sorted_z = sorted_z.masked_fill(drop, float("-inf"))
    return torch.full_like(z, float("-inf")).scatter(1, idx, sorted_z)


def _cpu_has(pattern: str) -> bool:
    """A flag of /proc/cpuinfo matches; EVOPROMPT_CPU_BF16=0|1 overrides (the tests pin 0, so their outcomes do
    not depend on the machine)."""
    forced = os.environ.get("EVOPROMPT_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(re.search(pattern, flags))


def cpu_has_bf16() -> bool:
    """The CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16)."""
    return _cpu_has(r"\b(avx512_bf16|amx_bf16)\b")


def cpu_has_amx() -> bool:
    """AMX-BF16 tiles, where bf16 training beats float32 on a CPU; with AVX512-BF16 alone a LoRA step on SmolLM2
    took 7.8 s in bf16 autocast against 6.8 s in float32 (batch 8, ~120 tokens, 2 cores)."""
    return _cpu_has(r"\bamx_bf16\b")


def auto_dtype(torch, device: str) -> str:
    """bfloat16 on GPUs and on CPUs with bf16 hardware; float32 on other CPUs, where torch emulates bf16.
    SmolLM2-135M, 160 rows x 48 tokens on 2 cores: with AMX-BF16, HF `generate` 525 tokens/s in bf16 vs 306 in
    float32 (vLLM 760 vs 334); without (avx512_vnni only), 51 vs 104: emulated bf16 halves the speed."""
    return "bfloat16" if device.startswith("cuda") or cpu_has_bf16() else "float32"


def _common_prefix(seqs: list[list[int]], max_len: int, min_len: int = 16) -> int:
    """Length of the prefix every sequence shares (at most max_len); 0 when shorter than min_len."""
    n = 0
    first = seqs[0]
    while n < max_len and all(x[n] == first[n] for x in seqs):
        n += 1
    return n if n >= min_len else 0


def adapter_digest(adapter: str) -> str:
    """Names the adapter's weights in cache keys: retraining in the same folder never serves old answers."""
    f = Path(adapter) / "adapter_model.safetensors"
    if not f.is_file():
        raise BackendError(f"adapter {adapter}: no adapter_model.safetensors (a peft LoRA folder is expected)")
    return hashlib.sha256(f.read_bytes()).hexdigest()[:16]


def load_adapter(model, adapter: str):
    try:
        from peft import PeftModel
    except ImportError:
        raise BackendError("a LoRA adapter needs peft (`make setup` installs it)") from None
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


class HFBackend:
    """transformers in this process, CPU or GPU: batched generation, exact per-token log-probs (the default)."""

    CAPABILITIES = Capabilities()
    supports_logprobs = True

    def __init__(self, model: str, dtype: str = "auto", device: str = "auto", batch_size: int = 0, noise: str = "auto",
                 adapter: str | None = None):
        """batch_size: rows per forward pass; 0 = 128 on CPU (decoding there is bound by reading the weights once
        per step, so wide batches pay), 64 on GPU. noise: generator | hash | auto (hash on GPUs; _GumbelSampler).
        adapter: a peft LoRA folder (e.g. from `evoprompt align`), folded into the weights once at load."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = resolve_model_path(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = auto_dtype(torch, device)
        batch_size = batch_size or (128 if device == "cpu" else 64)
        try:
            tok = AutoTokenizer.from_pretrained(path)
            loaded = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation="sdpa").to(device)
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load model '{model}' ({path}): {str(e).splitlines()[0]}") from None
        model_id = model_identity(model, path)
        if adapter:
            loaded, model_id = load_adapter(loaded, adapter), f"{model}+lora:{adapter_digest(adapter)}"
        self._setup(model_id, loaded, tok, device, batch_size, noise)

    @classmethod
    def from_model(cls, model, tokenizer, batch_size: int = 32, model_id: str = "in-memory", noise: str = "auto") -> HFBackend:
        """Wraps a model already in memory (e.g. randomly initialised for a benchmark); loads nothing."""
        backend = cls.__new__(cls)
        backend._setup(model_id, model, tokenizer, str(model.device), batch_size, noise)
        return backend

    def _setup(self, model_id: str, model, tok, device: str, batch_size: int, noise: str = "auto") -> None:
        import torch

        if noise not in ("auto", "generator", "hash"):
            raise BackendError(f"hf backend: noise must be auto, generator or hash, not '{noise}'")
        self.noise = noise if noise != "auto" else "hash" if device.startswith("cuda") else "generator"
        self.torch = torch
        self.model_id, self.model, self.tok = model_id, model.eval(), tok
        self.precision = str(model.dtype).removeprefix("torch.")
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.device = device
        self.batch_size = batch_size
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        ids.add(self.tok.eos_token_id)
        return ids

    def prompt_ids(self, chat: Chat) -> list[int]:
        text = raw_document(chat)
        if text is None:
            text = self.tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _prefill(self, prompts: list[list[int]]):
        """One forward pass over distinct prompts: (input_ids, mask, positions, cache, last-position logits).
        The prefix all prompts share (a judge's instructions, a system prompt) runs once and its cache is copied
        per row; the rest is left-padded after it. Positions follow the attention mask as `generate` computes
        them, so the cache can be continued."""
        torch = self.torch
        shared = _common_prefix(prompts, max_len=min(map(len, prompts)) - 1)
        rest = [x[shared:] for x in prompts]
        width = max(map(len, rest))
        ids = torch.tensor([[self.tok.pad_token_id] * (width - len(x)) + x for x in rest], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in rest], device=self.device)
        cache = None
        if shared:
            head = torch.tensor([prompts[0][:shared]], device=self.device)
            with torch.no_grad():
                one = self.model(input_ids=head, use_cache=True, logits_to_keep=1).past_key_values
            cache = self._rows(one, torch.zeros(len(prompts), dtype=torch.long, device=self.device))
            ids, mask = torch.cat([head.expand(len(prompts), -1), ids], 1), torch.cat([torch.ones_like(head).expand(
                len(prompts), -1), mask], 1)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        with torch.no_grad():
            o = self.model(input_ids=ids[:, shared:], attention_mask=mask, position_ids=pos[:, shared:],
                           past_key_values=cache, use_cache=True, logits_to_keep=1)
        return ids, mask, pos, o.past_key_values, o.logits

    def _rows(self, cache, idx):
        """A new cache holding the given rows of `cache` (a prompt's prefix, once per sample or response)."""
        from transformers import DynamicCache

        rows = DynamicCache()
        for layer, kv in enumerate(cache.layers):
            rows.update(kv.keys[idx], kv.values[idx], layer)
        return rows

    def _groups(self, keys: list[tuple], per_key: int):
        """Distinct keys in chunks whose rows (per_key each) fill about one batch; similar lengths together."""
        distinct = sorted(set(keys), key=lambda k: (len(k), k))
        step = max(1, self.batch_size // max(1, per_key))
        for i in range(0, len(distinct), step):
            yield distinct[i:i + step]

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int, first: int = 0) -> list[list[Sample]]:
        """Each distinct prompt is prefilled once; its n samples continue from copies of that cache."""
        from transformers import GenerationConfig, LogitsProcessorList

        torch = self.torch
        prompts = [tuple(self.prompt_ids(c)) for c in chats]
        where: dict[tuple, list[int]] = {}
        for i, p in enumerate(prompts):
            where.setdefault(p, []).append(i)
        out: list[list[Sample | None]] = [[None] * n for _ in chats]
        gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=decoding.max_new_tokens,
                                   eos_token_id=sorted(self.eos_ids), pad_token_id=self.tok.pad_token_id,
                                   stop_strings=list(decoding.stop) or None)
        for group in self._groups(prompts, n):
            ids, mask, _, cache, _ = self._prefill([list(p[:-1]) for p in group])
            last = torch.tensor([[p[-1]] for p in group], device=self.device)
            full_ids, full_mask = torch.cat([ids, last], 1), torch.cat([mask, torch.ones_like(last)], 1)
            rows = [(g, j) for g in range(len(group)) for j in range(n)]
            idx = torch.tensor([g for g, _ in rows], device=self.device)
            texts = [self.tok.decode(list(p)) for p in group]
            sampler = _GumbelSampler([row_seed(seed, texts[g], first + j) for g, j in rows], decoding, self.device, self.noise)
            with torch.no_grad():
                seqs = self.model.generate(input_ids=full_ids[idx], attention_mask=full_mask[idx],
                                           past_key_values=self._rows(cache, idx), generation_config=gen_cfg,
                                           logits_processor=LogitsProcessorList([sampler]),
                                           tokenizer=self.tok if decoding.stop else None)
            width, logprobs = full_ids.shape[1], sampler.logprobs()
            for k, (g, j) in enumerate(rows):
                new = seqs[k, width:].tolist()
                end = next((p + 1 for p, t in enumerate(new) if t in self.eos_ids), len(new))
                text = decoding.cut(self.tok.decode(new[:end], skip_special_tokens=True))
                sample = Sample(text.strip(), logprobs[k][:end])
                for i in where[group[g]]:
                    out[i][j] = sample
        return out  # type: ignore[return-value]

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        """Each distinct prompt is run once; its responses continue from copies of its cache (the gate's two
        labels and the refusal openers share long prompts)."""
        torch = self.torch
        prompts = [tuple(self.prompt_ids(c)) for c in chats]
        ys = [self.tok(r, add_special_tokens=False)["input_ids"] for r in responses]
        by_prompt: dict[tuple, list[int]] = {}
        for i, p in enumerate(prompts):
            by_prompt.setdefault(p, []).append(i)
        out: list[Sample | None] = [Sample(r, []) if not y else None for r, y in zip(responses, ys)]
        per = max(len(v) for v in by_prompt.values()) if by_prompt else 1
        for group in self._groups(prompts, per):
            ids, mask, pos, cache, logits = self._prefill([list(p) for p in group])
            first = logits[:, -1].float().log_softmax(-1)
            rows = [(g, i) for g, p in enumerate(group) for i in by_prompt[p] if ys[i]]
            if not rows:
                continue
            idx = torch.tensor([g for g, _ in rows], device=self.device)
            width = max(len(ys[i]) for _, i in rows)
            y_ids = torch.tensor([ys[i] + [self.tok.pad_token_id] * (width - len(ys[i])) for _, i in rows],
                                 device=self.device)
            y_mask = torch.tensor([[1] * len(ys[i]) + [0] * (width - len(ys[i])) for _, i in rows], device=self.device)
            y_pos = pos[idx, -1:] + 1 + torch.arange(width, device=self.device)[None, :]
            with torch.no_grad():
                more = self.model(input_ids=y_ids, attention_mask=torch.cat([mask[idx], y_mask], 1), position_ids=y_pos,
                                  past_key_values=self._rows(cache, idx)).logits.float().log_softmax(-1)
            for k, (g, i) in enumerate(rows):
                y = ys[i]
                lps = [first[g, y[0]].item()] + [more[k, t - 1, y[t]].item() for t in range(1, len(y))]
                out[i] = Sample(responses[i], lps)
        return out  # type: ignore[return-value]
