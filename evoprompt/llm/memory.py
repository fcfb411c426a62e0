"""Do a configuration's vLLM engines fit on these GPUs? An estimate made before any model loads, from each
model's configuration alone: its parameters are counted on torch's meta device, so no weight is read.

vLLM gives an engine `gpu_memory_utilization` of the memory of each GPU it runs on and will not start when that
share is not free. Inside the share it keeps the weights (split over `tensor_parallel_size` GPUs), activations
at its profiling batch and CUDA graphs (OVERHEAD, an estimate), and a KV cache that must hold at least one
`max_model_len` sequence. Engines built in one process all start from the first visible GPU, so an engine with
tensor_parallel_size t shares GPUs 0..t-1 with every other engine.

The presets' models are known here by shape (LLAMA31_8B, QWEN25_7B: their public config.json values), so the
plan works before their weights are downloaded and the GPU rehearsal builds random-initialised copies of them."""
from __future__ import annotations

import dataclasses
from pathlib import Path

GIB = 2**30
OVERHEAD = 2.0 * GIB  # per engine per GPU: activations at vLLM's profiling batch, CUDA graphs, allocator slack
USABLE = 0.95  # of a GPU's memory, for all engines' shares together: the CUDA contexts and the embedder need the rest

LLAMA31_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
              "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
              "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
              "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 8192}}
QWEN25_7B = {"model_type": "qwen2", "hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28,
             "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064,
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
             "bos_token_id": 151643, "eos_token_id": 151645,
             "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}
KNOWN = {"meta-llama/Llama-3.1-8B-Instruct": LLAMA31_8B, "Qwen/Qwen2.5-7B-Instruct": QWEN25_7B}
BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}


def hf_config(values: dict):
    from transformers import AutoConfig

    values = dict(values)
    return AutoConfig.for_model(values.pop("model_type"), **values)


@dataclasses.dataclass(frozen=True)
class Shape:
    parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    embedding: int  # parameters of the input embedding (a lookup, not read whole at each decoding step)
    dtype: str  # of the checkpoint, used for dtype "auto"

    def weight_bytes(self, dtype: str = "auto") -> int:
        return self.parameters * BYTES[self.dtype if dtype == "auto" else dtype]

    def kv_bytes_per_token(self, dtype: str = "auto") -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * BYTES[self.dtype if dtype == "auto" else dtype]


def shape_of(config) -> Shape:
    """`config`: a transformers config object. Builds the model on the meta device to count its parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "bfloat16")
    return Shape(parameters=sum(p.numel() for p in model.parameters()), layers=config.num_hidden_layers,
                 kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
                 head_dim=head_dim, embedding=model.get_input_embeddings().weight.numel(),
                 dtype=dtype.removeprefix("torch.") if dtype.removeprefix("torch.") in BYTES else "bfloat16")


def find_shape(model: str, path: str | None) -> Shape | None:
    """The shape of a model from its local config.json, else from KNOWN; None when neither has it."""
    if path and (Path(path) / "config.json").is_file():
        from transformers import AutoConfig

        return shape_of(AutoConfig.from_pretrained(path))
    return shape_of(hf_config(KNOWN[model])) if model in KNOWN else None


@dataclasses.dataclass(frozen=True)
class Engine:
    name: str
    shape: Shape
    fraction: float  # gpu_memory_utilization
    tensor_parallel: int = 1
    max_model_len: int = 2048
    dtype: str = "auto"


def plan(engines: list[Engine], gpus: list[int]) -> list[tuple[bool, str]]:
    """One (ok, line) per engine (does its share hold its weights, the overhead and one max_model_len
    sequence of KV cache on the smallest GPU it uses?) and per GPU in use (do the shares add up?)."""
    out: list[tuple[bool, str]] = []
    for e in engines:
        if e.tensor_parallel > len(gpus):
            out.append((False, f"{e.name}: tensor_parallel_size {e.tensor_parallel} needs {e.tensor_parallel} GPUs, "
                               f"{len(gpus)} planned"))
            continue
        share = e.fraction * min(gpus[:e.tensor_parallel])
        weights = e.shape.weight_bytes(e.dtype) / e.tensor_parallel
        kv_token = e.shape.kv_bytes_per_token(e.dtype) / e.tensor_parallel
        cache = share - weights - OVERHEAD
        tokens = int(cache // kv_token) if cache > 0 else 0
        detail = (f"{e.fraction:.2f} x {min(gpus[:e.tensor_parallel]) / GIB:.1f} GiB = {share / GIB:.1f} GiB per GPU: "
                  f"weights {weights / GIB:.1f} GiB ({e.shape.parameters / 1e9:.2f} B parameters, "
                  f"{e.shape.dtype if e.dtype == 'auto' else e.dtype}), overhead ~{OVERHEAD / GIB:.0f} GiB, "
                  f"KV cache {max(cache, 0) / GIB:.1f} GiB = {tokens:,} tokens")
        if tokens >= e.max_model_len:
            out.append((True, f"{e.name}: fits; {detail} (max_model_len {e.max_model_len}: "
                              f"{tokens // e.max_model_len} full sequences at once)"))
        else:
            out.append((False, f"{e.name}: does not fit; {detail}, fewer than max_model_len {e.max_model_len}; "
                               "raise gpu_memory_utilization or tensor_parallel_size, or lower max_model_len"))
    for i, memory in enumerate(gpus):
        on = [e for e in engines if e.tensor_parallel > i]
        if not on:
            continue
        total = sum(e.fraction for e in on)
        parts = " + ".join(f"{e.name} {e.fraction:.2f}" for e in on)
        ok = total <= USABLE
        out.append((ok, f"GPU {i} ({memory / GIB:.1f} GiB): {parts} = {total:.2f} of its memory"
                        + ("" if ok else f", over {USABLE}: vLLM starts an engine only when its share is free; "
                                         "lower the gpu_memory_utilization values")))
    return out
