"""Which words of an instruction make the target refuse: per-word attributions on the fitness's own refusal score.

occlusion (default): each word is removed (or replaced by a neutral baseline word) and the drop in the refusal
score is the word's attribution, positive = the word raises refusal. The score is what selection optimises:
q(x), the target's exact probability of opening its answer with a refusal (refusal/openers.py); `contrast`,
log q(x) - log c(x) against compliance openers; or `sampled`, the refusal judge's mean over K samples. All
variants of all instructions go to the target in one batched call, so explaining 60 prompts is one call.

saliency: the paper's analysis, gradient x input of log p(first refusal opener | x) at each prompt token,
summed over a word's tokens; HF targets only (it needs the weights), labelled as gradient saliency.

captum-ablation, captum-shapley, captum-ig (`pip install 'evoprompt[captum]'`, HF targets): captum's LLMAttribution
with FeatureAblation (each word removed) or ShapleyValueSampling over the words, and LLMGradientAttribution with
LayerIntegratedGradients on the input embeddings (per token, summed per word), all on log p(first refusal opener
| x) under the target's chat template. captum runs its own forward passes (not the backend's batched calls, so
not in the usage table): words + 1 per prompt for ablation, `SHAPLEY_SAMPLES` x (words + 1) for Shapley,
`IG_STEPS` for integrated gradients.

Words are whitespace tokens with their punctuation, so the attributions line up with the text as written."""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evoprompt.errors import UserError, unknown
from evoprompt.llm import Backend, Chat, Decoding

COMPLIANCE_OPENERS = ["Sure", "Here", "Certainly", "Yes", "Of course"]


@dataclass
class Attribution:
    words: list[str]
    attributions: list[float]
    score: float  # the refusal score of the whole instruction

    def top(self, k: int) -> list[int]:
        """Indices of the k words that raise refusal most (positive attributions only), largest first."""
        order = sorted(range(len(self.words)), key=lambda i: (-self.attributions[i], i))
        return [i for i in order[:k] if self.attributions[i] > 0]


def marked(a: Attribution, k: int) -> list[str]:
    """The k words that raise refusal most, without their punctuation; the single largest when none raises it."""
    idx = a.top(k) or sorted(range(len(a.words)), key=lambda i: (-a.attributions[i], i))[:1]
    return [w for w in (a.words[i].strip(".,;:!?\"'()[]") for i in idx) if w]


def words(text: str) -> list[str]:
    return text.split()


def without(ws: Sequence[str], drop: set[int], baseline: str | None) -> str:
    """The instruction with the words at `drop` removed (baseline None) or each replaced by `baseline`."""
    return " ".join(baseline if i in drop else w for i, w in enumerate(ws) if i not in drop or baseline)


def refusal_score(backend: Backend, chat: Callable[[str], Chat], how: str, openers: list[str], *,
                  judge=None, K: int = 4, decoding: Decoding | None = None, seed: int = 0) -> Callable[[list[str]], list[float]]:
    """texts -> refusal scores, one batched target call per use."""
    from evoprompt.fitness.refusal.openers import opener_probability

    if how in ("opener", "contrast") and not backend.supports_logprobs:
        raise UserError(f"score={how} needs the target's log-probs and {backend.model_id} gives none; "
                        "use score=sampled")

    def opener(texts):
        return opener_probability(backend, [chat(t) for t in texts], openers)

    def contrast(texts):
        q = opener(texts)
        c = opener_probability(backend, [chat(t) for t in texts], COMPLIANCE_OPENERS)
        return [math.log(a + 1e-9) - math.log(b + 1e-9) for a, b in zip(q, c)]

    def sampled(texts):
        outs = backend.generate([chat(t) for t in texts], K, decoding, seed)
        p = judge.prob([t for t, ss in zip(texts, outs) for _ in ss], [s.text for ss in outs for s in ss])
        return [sum(p[i * K:(i + 1) * K]) / K for i in range(len(texts))]

    fns = {"opener": opener, "contrast": contrast, "sampled": sampled}
    if how not in fns:
        raise unknown("refusal score", how, fns)
    return fns[how]


def occlusion(texts: list[str], score: Callable[[list[str]], list[float]], baseline: str | None = None) -> list[Attribution]:
    """score(x) - score(x without word i) for every word of every text, in one call to score."""
    split = [words(t) for t in texts]
    variants = []
    for ws in split:
        variants.append(" ".join(ws))
        variants += [without(ws, {i}, baseline) for i in range(len(ws))]
    s = score(variants)
    out, pos = [], 0
    for ws in split:
        base = s[pos]
        out.append(Attribution(ws, [base - v for v in s[pos + 1:pos + 1 + len(ws)]], base))
        pos += 1 + len(ws)
    return out


def saliency(texts: list[str], backend, chat: Callable[[str], Chat], opener: str) -> list[Attribution]:
    """Gradient x input of log p(opener | x) on the prompt's token embeddings, summed per word (HF targets)."""
    inner = _weights(backend, "saliency")
    tok = inner.tok
    out = []
    for text in texts:
        templated = tok.apply_chat_template(chat(text), add_generation_prompt=True, tokenize=False)
        offsets = tok(templated, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        total, emb = opener_logp(inner, templated, opener, grad=True)
        total.backward()
        per_token = (emb.grad[0] * emb[0]).sum(-1).detach().cpu().tolist()[:len(offsets)]
        ws = words(text)
        out.append(Attribution(ws, per_word(per_token, offsets, templated, text), math.exp(total.item())))
    return out


def opener_logp(inner, templated: str, opener: str, grad: bool = False):
    """(log p(opener | templated prompt) in one teacher-forced pass, the input embeddings): with grad, the
    embeddings are a leaf whose .grad the caller reads after backward; without, None and no graph."""
    import torch

    prompt = inner.tok(templated, add_special_tokens=False)["input_ids"]
    target = inner.tok(opener, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + target], device=inner.device)
    emb = None
    with torch.set_grad_enabled(grad):
        if grad:
            emb = inner.model.get_input_embeddings()(ids).detach().float().requires_grad_(True)
            logits = inner.model(inputs_embeds=emb.to(inner.model.dtype)).logits[0].float()
        else:
            logits = inner.model(ids).logits[0].float()
        logp = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
        return logp.gather(1, torch.tensor(target, device=inner.device)[:, None]).sum(), emb


def _weights(backend, method: str):
    inner = getattr(backend, "inner", backend)
    if not hasattr(inner, "model") or not hasattr(inner, "prompt_ids"):
        raise UserError(f"method={method} needs the target's weights (an hf backend); {backend.model_id} has none "
                        "here; use method=occlusion")
    return inner


def per_word(per_token: list[float], offsets, templated: str, text: str) -> list[float]:
    """Token scores of the templated prompt summed over each word of `text` (by character offsets)."""
    start = templated.rfind(text)
    spans, at = [], 0
    for w in words(text):
        at = text.index(w, at)
        spans.append((start + at, start + at + len(w)))
        at += len(w)
    return [sum(g for g, (a, b) in zip(per_token, offsets) if a < e and b > s) for s, e in spans]


SHAPLEY_SAMPLES = 4
IG_STEPS = 8


def captum(texts: list[str], backend, chat: Callable[[str], Chat], opener: str, method: str) -> list[Attribution]:
    """captum's attributions of log p(opener | x), per word (see the module's docstring)."""
    inner = _weights(backend, method)
    try:
        from captum.attr import (
            FeatureAblation,
            LayerIntegratedGradients,
            LLMAttribution,
            LLMGradientAttribution,
            ShapleyValueSampling,
            TextTemplateInput,
            TextTokenInput,
        )
    except ImportError:
        raise UserError(f"method={method} needs captum: pip install 'evoprompt[captum]'") from None
    model, tok = inner.model, inner.tok
    out = []
    for text in texts:
        templated = tok.apply_chat_template(chat(text), add_generation_prompt=True, tokenize=False)
        ws = words(text)
        if method == "captum-ig":
            lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
            res = lig.attribute(TextTokenInput(templated, tok), target=opener, n_steps=IG_STEPS)
            enc = tok(templated, return_offsets_mapping=True)
            scores = per_word(res.seq_attr.float().tolist(), enc["offset_mapping"], templated, text)
        else:
            start = templated.rfind(text)
            escape = lambda x: x.replace("{", "{{").replace("}", "}}")
            template = escape(templated[:start]) + " ".join("{}" for _ in ws) + escape(templated[start + len(text):])
            algo = FeatureAblation(model) if method == "captum-ablation" else ShapleyValueSampling(model)
            extra = {"n_samples": SHAPLEY_SAMPLES} if method == "captum-shapley" else {}
            extra["forward_in_tokens"] = False  # one teacher-forced pass per perturbation, not one per target token
            res = LLMAttribution(algo, tok).attribute(TextTemplateInput(template, values=ws, baselines=[""] * len(ws)),
                                                      target=opener, **extra)
            scores = res.seq_attr.float().tolist()
        out.append(Attribution(ws, scores, math.exp(opener_logp(inner, templated, opener)[0].item())))
    return out


METHODS = ("occlusion", "saliency", "captum-ablation", "captum-shapley", "captum-ig")


def random_drops(attrs: list[Attribution], k: int, trials: int, seed: int) -> list[list[set[int]]]:
    """Per instruction, `trials` random sets of k word indices (the deletion test's baseline)."""
    rng = random.Random(seed)
    return [[set(rng.sample(range(len(a.words)), min(k, len(a.words)))) for _ in range(trials)] for a in attrs]
