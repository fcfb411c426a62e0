"""ELBO scoring throughput, the pieces `make bench` and scripts/gpu_elbo_roofline.py share: a generation's worth of
candidates made without a model call, the reference code's one-at-a-time loop, the batched Scorer, and the timing of
one way of scoring (seconds, candidates and generated tokens per second, the process's own CPU time)."""
from __future__ import annotations

import os
import platform
import random
import time
from dataclasses import replace

import numpy as np

from evoprompt.fitness.elbo import elbo
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.fitness.scorer import Scorer, Target
from evoprompt.llm.base import Decoding, Sample
from evoprompt.operators.frame import edit
from evoprompt.operators.strategies import STRATEGIES
from evoprompt.schema import FitnessConfig, RefusalJudgeConfig
from evoprompt.seeds import load_seeds

WARMUP = "Give me a simple recipe for pancakes."
METHODS = {"reference": "(a) reference loop", "hf": "(b) HF batched", "hf-race": "(b) HF batched, racing",
           "vllm": "(c) vLLM", "vllm-race": "(c) vLLM, racing", "server-1": "(d) one vLLM server",
           "server-2": "(e) two vLLM servers", "ray-2": "(f) Ray pool of two engines"}


def fitness_config(K: int, K_min: int | None = None, race_z: float | None = None) -> FitnessConfig:
    """The default run's fitness settings (its schema's defaults) with this bench's K, racing and judge."""
    f = FitnessConfig()
    return replace(f, K=K, K_min=K_min, race_z=f.race_z if race_z is None else race_z, mu=0.0, judge=RefusalJudgeConfig("phrases"))


def candidate_pool(lineages: int, per_lineage: int, seed: int) -> list[tuple[str, str]]:
    """(lineage, text): each of the first packaged seeds and up to per_lineage - 1 template variants of it."""
    rng = random.Random(seed)
    pool = []
    for s in load_seeds(None, limit=lineages):
        texts = [s.text]
        for strategy in rng.sample(sorted(STRATEGIES), len(STRATEGIES)):
            text, _ = edit(s.text, strategy, rng)
            if text and text not in texts and len(texts) < per_lineage:
                texts.append(text)
        pool += [(s.id, t) for t in texts]
    return pool


def reference_loop(hf, cfg: FitnessConfig, decoding: Decoding, seed: int):
    """What the reference code did: one candidate, one sample per `generate` call; log p(y|x) from the
    returned logits, then the phrase judge and the ELBO."""
    from transformers import GenerationConfig

    torch = hf.torch
    gen = GenerationConfig(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0,
                           max_new_tokens=decoding.max_new_tokens, eos_token_id=sorted(hf.eos_ids),
                           pad_token_id=hf.tok.pad_token_id, return_dict_in_generate=True, output_logits=True)
    judge = AnchoredPhraseJudge()

    def score(texts: list[str], groups=None) -> list[tuple[float, int]]:
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
    scorer = Scorer([Target("bench", backend, decoding)], AnchoredPhraseJudge(), cfg, None)

    def score(texts: list[str], groups: list | None = None) -> list[tuple[float, int]]:
        return [(r.fitness, sum(s.tokens for s in r.samples))
                for r in scorer.score(texts, np.zeros((0, 0)), seed, groups)]

    return score


def measure(score, texts: list[str], groups: list | None = None) -> dict:
    score([WARMUP], None if groups is None else ["warm-up"])
    t0, cpu0 = time.perf_counter(), time.process_time()
    records = score(texts, groups)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    tokens = sum(t for _, t in records)
    return {"seconds": round(seconds, 2), "candidates_per_s": round(len(texts) / seconds, 4),
            "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds, 2),
            "mean_fitness": round(float(np.mean([f for f, _ in records])), 4), "fitness": [f for f, _ in records],
            "process_cpu_s": round(cpu, 3)}


def selected(groups: list, fitness: list[float]) -> dict:
    """Index of the highest-F candidate per lineage (ties: the first, as `max` in search.select)."""
    best: dict = {}
    for i, (g, f) in enumerate(zip(groups, fitness)):
        if g not in best or f > fitness[best[g]]:
            best[g] = i
    return best


def agreement(groups: list, fitness: list[float], full: list[float]) -> float:
    a, b = selected(groups, fitness), selected(groups, full)
    return sum(a[g] == b[g] for g in b) / len(b)


def machine_info(device: str) -> dict:
    import torch
    import transformers

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else device}
