"""`make bench`: ELBO scoring throughput of one generation's candidates on this machine, three ways:
(a) the reference code's loop, one unbatched `generate` call per candidate and sample; (b) Scorer on the
HF backend (batched); (c) Scorer on the vLLM backend. Model load and engine start are not timed: each
way first scores a warm-up prompt. Candidates are the first packaged seeds, the target the embedded
SmolLM2, fitness settings those of the default config (opener prior on; no embedder, so mu = 0).

    python -m evoprompt.bench [--candidates 16 --K 10 --max-new-tokens 48 --out bench-results/bench.json --skip-vllm]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from evoprompt.fitness.elbo import elbo
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.config import FitnessConfig
from evoprompt.fitness.scorer import Scorer
from evoprompt.seeds import load_seeds

from .llm.base import Decoding, Sample
from .llm.hf import HFBackend
from .llm.vllm_backend import VLLMBackend

CONF = Path(__file__).parent / "conf"
WARMUP = "Give me a simple recipe for pancakes."
METHODS = {"reference": "(a) reference loop", "hf": "(b) HF batched", "vllm": "(c) vLLM"}


def fitness_config(K: int) -> FitnessConfig:
    f = OmegaConf.load(CONF / "config.yaml").fitness
    return FitnessConfig(K=K, lam=f["lambda"], mu=0.0, eps=f.eps, floor=f.floor, estimator=f.estimator,
                         judge="phrases", openers=list(f.openers))


def reference_loop(hf, cfg: FitnessConfig, decoding: Decoding, seed: int):
    """What the reference code did: one candidate, one sample per `generate` call; log p(y|x) from the
    returned logits, then the phrase judge and the ELBO."""
    from transformers import GenerationConfig

    torch = hf.torch
    gen = GenerationConfig(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0,
                           max_new_tokens=decoding.max_new_tokens, eos_token_id=sorted(hf.eos_ids),
                           pad_token_id=hf.tok.pad_token_id, return_dict_in_generate=True, output_logits=True)
    judge = AnchoredPhraseJudge()

    def score(texts: list[str]) -> list[tuple[float, int]]:
        torch.manual_seed(seed)
        out = []
        for text in texts:
            ids = torch.tensor([hf.prompt_ids([{"role": "user", "content": text}])], device=hf.device)
            samples = []
            for _ in range(cfg.K):
                with torch.no_grad():
                    res = hf.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen)
                lps = hf.model.compute_transition_scores(res.sequences, res.logits, normalize_logits=True)[0]
                text_y = hf.tok.decode(res.sequences[0, ids.shape[1]:], skip_special_tokens=True).strip()
                samples.append(Sample(text_y, lps.tolist()))
            p = judge.prob([text] * cfg.K, [s.text for s in samples])
            e = elbo(p, [s.logprob for s in samples], [s.n_tokens for s in samples], cfg.lam, cfg.eps, cfg.floor)
            out.append((e.fitness, sum(s.n_tokens for s in samples)))
        return out

    return score


def scorer_loop(backend, cfg: FitnessConfig, decoding: Decoding, seed: int):
    scorer = Scorer(backend, decoding, None, AnchoredPhraseJudge(), cfg, None)

    def score(texts: list[str]) -> list[tuple[float, int]]:
        return [(r["fitness"], sum(s["tokens"] for s in r["samples"]))
                for r in scorer.score(texts, np.zeros((0, 0)), seed)]

    return score


def measure(score, texts: list[str]) -> dict:
    score([WARMUP])
    t0 = time.perf_counter()
    records = score(texts)
    seconds = time.perf_counter() - t0
    tokens = sum(t for _, t in records)
    return {"seconds": round(seconds, 2), "candidates_per_s": round(len(texts) / seconds, 4),
            "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds, 2),
            "mean_fitness": round(float(np.mean([f for f, _ in records])), 4)}


def machine_info(device: str) -> dict:
    import torch
    import transformers

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else device}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m evoprompt.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", type=int, default=16, help="first N packaged seeds")
    ap.add_argument("--K", type=int, default=10, help="samples per candidate")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=64,
                    help="HF backend rows per batch (default: the embedded target's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench-results/bench.json"))
    ap.add_argument("--skip-vllm", action="store_true")
    args = ap.parse_args(argv)
    texts = [s.text for s in load_seeds(None, limit=args.candidates)]
    cfg, decoding = fitness_config(args.K), Decoding(1.0, 1.0, args.max_new_tokens)
    console = Console()
    hf = HFBackend("embedded", batch_size=args.batch_size)
    report = {"config": {"candidates": len(texts), "K": args.K, "max_new_tokens": args.max_new_tokens,
                         "hf_batch_size": args.batch_size, "seed": args.seed, "estimator": cfg.estimator},
              "machine": machine_info(hf.device), "results": {}}
    results = report["results"]

    def run(method: str, score) -> None:
        console.print(f"{METHODS[method]}: timing {len(texts)} candidates x K={args.K} x {args.max_new_tokens} new tokens")
        results[method] = measure(score, texts)
        console.print(f"  {results[method]['seconds']} s")

    run("reference", reference_loop(hf, cfg, decoding, args.seed))
    run("hf", scorer_loop(hf, cfg, decoding, args.seed))
    del hf  # free its memory before the vLLM engine starts
    if not args.skip_vllm:
        try:
            run("vllm", scorer_loop(VLLMBackend("embedded"), cfg, decoding, args.seed))
        except Exception as e:  # vLLM fails with many exception types; (a) and (b) are still worth writing
            report["vllm_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
            console.print(f"[red]vLLM failed: {report['vllm_error']}[/red]")
    base = results["reference"]["candidates_per_s"]
    report["speedup_vs_reference"] = {f"{m}/reference": round(r["candidates_per_s"] / base, 2)
                                      for m, r in results.items() if m != "reference"}

    table = Table(title=f"ELBO scoring: {len(texts)} candidates x K={args.K} x {args.max_new_tokens} new tokens "
                        f"({report['machine']['device']}, {report['machine']['cpu_count']} CPUs)",
                  caption="x (a): candidates/s relative to (a); mean F: mean fitness (sampled, so it varies)")
    for col in ("method", "seconds", "cand/s", "gen tok/s", "x (a)", "mean F"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for m, r in results.items():
        table.add_row(METHODS[m], f"{r['seconds']:.1f}", f"{r['candidates_per_s']:.3f}", f"{r['tokens_per_s']:.1f}",
                      f"{r['candidates_per_s'] / base:.2f}", f"{r['mean_fitness']:.3f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    console.print(f"written to {args.out}")
    return report


if __name__ == "__main__":
    main()
