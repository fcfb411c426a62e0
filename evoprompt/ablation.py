"""Refusal-direction ablation, the weights way: a direction r in the residual stream, removed at strength s from
every write into it (the embeddings, each attention output o_proj, each MLP output down_proj):
write <- write - s (write . r) r. At s = 1 the model can no longer represent r (Arditi et al., "Refusal in
Language Models Is Mediated by a Single Direction", NeurIPS 2024); a *false-refusal* direction, taken from
pseudo-harmful prompts and made orthogonal to the true-refusal one, targets over-refusal only (Wang et al.,
"Surgical, Cheap, and Flexible: Mitigating False Refusal in Language Models via Single Vector Ablation",
ICLR 2025). Written with plain torch hooks; the same edit baked into the weights gives the same outputs
(`bake`), so the mitigated model is an ordinary folder any backend loads.

Directions are differences of mean activations at the last prompt token, one per layer (index 0: the
embeddings, l: the output of decoder layer l)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Edit:
    """Which direction, from which layer's activations, at which strength (applied to every write)."""
    kind: str        # "orthogonal": items - everyday without its true-refusal part; "raw": items - everyday;
                     # "framing": items - their seeds without its true-refusal part
    layer: int
    strength: float

    def name(self) -> str:
        return f"{self.kind} @ layer {self.layer} x {self.strength:g}"


def chat_texts(tok, prompts: list[str], system: str | None) -> list[str]:
    return [tok.apply_chat_template(([{"role": "system", "content": system}] if system else [])
                                    + [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


@torch.no_grad()
def last_states(model, tok, texts: list[str], batch: int = 32) -> torch.Tensor:
    """[n, layers + 1, d]: the residual stream at each prompt's last token (left padding keeps it at -1)."""
    out = []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], return_tensors="pt", padding=True)
        hs = model(**enc, output_hidden_states=True).hidden_states
        out.append(torch.stack([h[:, -1, :] for h in hs], dim=1).float())
    return torch.cat(out)


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-8)


def directions(items: torch.Tensor, harmful: torch.Tensor, everyday: torch.Tensor,
               seeds: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per kind, [layers + 1, d] unit directions: the true-refusal one (harmful - everyday), the items against
    everyday requests ("raw") and the same with its true-refusal part removed ("orthogonal", Wang et al.). Items
    against harmful requests, made orthogonal, is the orthogonal one again (items - harmful = (items - everyday) -
    (harmful - everyday)), so it is no kind of its own."""
    true = torch.stack([unit(v) for v in harmful.mean(0) - everyday.mean(0)])
    raw = items.mean(0) - everyday.mean(0)
    ortho = raw - (raw * true).sum(-1, keepdim=True) * true
    out = {"true": true, "raw": torch.stack([unit(v) for v in raw]), "orthogonal": torch.stack([unit(v) for v in ortho])}
    if seeds is not None:  # the items against the seeds they were made from: the framing is the only difference
        framing = items.mean(0) - seeds.mean(0)
        out["framing"] = torch.stack([unit(v) for v in framing - (framing * true).sum(-1, keepdim=True) * true])
    return out


def _writers(model) -> list[torch.nn.Module]:
    layers = model.model.layers
    return [model.model.embed_tokens] + [m for layer in layers for m in (layer.self_attn.o_proj, layer.mlp.down_proj)]


@contextmanager
def ablated(model, r: torch.Tensor, strength: float):
    """The model with r removed at `strength` from every write into the residual stream, while inside."""
    r = unit(r).to(model.dtype)

    def hook(_module, _inputs, out):
        return out - strength * (out @ r).unsqueeze(-1) * r

    handles = [m.register_forward_hook(hook) for m in _writers(model)]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def bake(model, r: torch.Tensor, strength: float) -> None:
    """The same edit in the weights: W <- W - s r r^T W for o_proj and down_proj, E <- E - s (E r) r^T for the
    embeddings (untied from the output layer first, which the hooks never touch)."""
    r = unit(r).to(model.dtype)
    if model.config.tie_word_embeddings:
        model.lm_head.weight = torch.nn.Parameter(model.model.embed_tokens.weight.detach().clone())
        model.config.tie_word_embeddings = False
    emb = model.model.embed_tokens.weight
    emb -= strength * (emb @ r).unsqueeze(-1) * r
    for layer in model.model.layers:
        for lin in (layer.self_attn.o_proj, layer.mlp.down_proj):
            lin.weight -= strength * torch.outer(r, r @ lin.weight)


@torch.no_grad()
def greedy(model, tok, texts: list[str], max_new_tokens: int, batch: int = 32) -> list[str]:
    out = []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], return_tensors="pt", padding=True)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


@torch.no_grad()
def next_token_logprobs(model, tok, texts: list[str], batch: int = 32) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], return_tensors="pt", padding=True)
        out.append(torch.log_softmax(model(**enc).logits[:, -1, :].float(), -1))
    return torch.cat(out)


def kl(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean KL(before || after) of the first answer token: how much the edit moves ordinary answers."""
    return float((before.exp() * (before - after)).sum(-1).mean())
