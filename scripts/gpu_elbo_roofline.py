"""ELBO scoring throughput of the HF backend on a GPU, against the memory-bandwidth roofline of decoding.

Builds a randomly initialised model with the Llama-3.1-8B configuration in bf16 straight on the device
(nothing is downloaded), wraps it in HFBackend.from_model with the embedded SmolLM2 tokenizer (its ids
are < 128256) and times Scorer (default fitness settings, no embedder) on the first packaged seeds at
several batch sizes, plus the backend's `generate` alone (the decoding part of Scorer). On a GPU the backend
samples with its device-side noise (hf.hash_uniform: no per-row CPU generators, no host copy per step) and
reads the sampled tokens' log-probs back once per call; `--noise generator` times the CPU-generator path.

Roofline: one decoding step reads every weight once (the input embedding only at the rows' tokens) and
each row's KV cache, so a batch of B rows makes at best B tokens per (weight bytes + B * KV bytes per
row) / HBM bandwidth seconds. Reported: measured generated tokens/s divided by that bound.

    python scripts/gpu_elbo_roofline.py --out gpu-roofline.json
    python scripts/gpu_elbo_roofline.py --layers 2 --candidates 2 --K 2 --max-new-tokens 8 --batch-sizes 4  # CPU smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's packages, installed or not
from evoprompt.commands.bench import fitness_config, measure, scorer_loop
from evoprompt.llm.base import Decoding
from evoprompt.llm.embedded import resolve_model_path
from evoprompt.llm.hf import HFBackend
from evoprompt.seeds import load_seeds

# bytes/s of HBM by device name, checked in this order (the first match wins)
HBM = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100 80GB", 2.0e12), ("A100-SXM4-80GB", 2.0e12))


def llama31_8b(layers: int) -> LlamaConfig:
    return LlamaConfig(hidden_size=4096, num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=8,
                       intermediate_size=14336, vocab_size=128256, max_position_embeddings=131072,
                       rms_norm_eps=1e-5, tie_word_embeddings=False,
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192})


def roofline_tokens_per_s(model, rows: int, batch_size: int, context: float, steps: int, bandwidth: float) -> float:
    c = model.config
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    weight_bytes -= model.get_input_embeddings().weight.nbytes  # a lookup, not a full read
    kv_bytes_per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * model.dtype.itemsize
    batches = [batch_size] * (rows // batch_size) + ([rows % batch_size] if rows % batch_size else [])
    seconds = sum(steps * (weight_bytes + b * kv_bytes_per_token * context) / bandwidth for b in batches)
    return rows * steps / seconds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=32, help="Llama-3.1-8B has 32; fewer for a quick run")
    ap.add_argument("--candidates", type=int, default=64, help="first N packaged seeds")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 640], help="rows per generate batch")
    ap.add_argument("--hbm-bandwidth", type=float, help="bytes/s; default: looked up by GPU name")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", default="auto", choices=["auto", "hash", "generator"], help="HF sampling noise")
    ap.add_argument("--out", type=Path, default=Path("bench-results/gpu-roofline.json"))
    args = ap.parse_args(argv)

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    bandwidth = args.hbm_bandwidth or next((bw for key, bw in HBM if key in name), None)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(llama31_8b(args.layers), dtype=torch.bfloat16, attn_implementation="sdpa")
    build_s = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(resolve_model_path("embedded"))
    texts = [s.text for s in load_seeds(None, limit=args.candidates)]
    cfg, decoding = fitness_config(args.K), Decoding(1.0, 1.0, args.max_new_tokens)
    report = {"device": name, "hbm_bandwidth": bandwidth, "torch": torch.__version__, "layers": args.layers,
              "parameters": sum(p.numel() for p in model.parameters()), "build_s": round(build_s, 1),
              "candidates": len(texts), "K": args.K, "max_new_tokens": args.max_new_tokens, "noise": args.noise,
              "attention": model.config._attn_implementation, "runs": []}
    print(json.dumps(report))
    cuda = args.device.startswith("cuda")
    for bs in args.batch_sizes:
        backend = HFBackend.from_model(model, tok, batch_size=bs, noise=args.noise)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        scored = measure(scorer_loop(backend, cfg, decoding, args.seed), texts)  # warms up first
        chats = [[{"role": "user", "content": t}] for t in texts]
        t0 = time.perf_counter()
        backend.generate(chats, args.K, decoding, args.seed)  # the same samples as Scorer's, so the same tokens
        decode_s = time.perf_counter() - t0
        tokens = scored["generated_tokens"]
        context = np.mean([len(backend.prompt_ids(c)) for c in chats]) + args.max_new_tokens / 2
        roof = bandwidth and roofline_tokens_per_s(model, len(chats) * args.K, bs, context, args.max_new_tokens,
                                                   bandwidth)
        run = {"batch_size": bs, "generated_tokens": tokens, "scorer_s": scored["seconds"],
               "scorer_tokens_per_s": scored["tokens_per_s"], "scorer_candidates_per_s": scored["candidates_per_s"],
               "decode_s": round(decode_s, 2), "decode_tokens_per_s": round(tokens / decode_s, 1),
               "roofline_tokens_per_s": roof and round(roof, 1),
               "scorer_roofline_fraction": roof and round(scored["tokens_per_s"] / roof, 4),
               "decode_roofline_fraction": roof and round(tokens / decode_s / roof, 4),
               "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
        report["runs"].append(run)
        print(json.dumps(run))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written to {args.out}")
    return report


if __name__ == "__main__":
    main()
