"""The one protocol every model role (target, rewriter, helper, judges) is served through."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Chat = list[dict]  # [{"role": "user", "content": "..."}, ...]
# A chat of one message with this role is a raw document, continued without the chat template
# (few-shot completion prompting, which small models follow far better than chat instructions).
COMPLETION = "completion"


def completion(text: str) -> Chat:
    return [{"role": COMPLETION, "content": text}]


def raw_document(chat: Chat) -> str | None:
    """The document of a completion chat, else None."""
    return chat[0]["content"] if len(chat) == 1 and chat[0].get("role") == COMPLETION else None


@dataclass(frozen=True)
class Decoding:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # a sample ends where one of these strings appears (cut off, not included)

    def key(self) -> dict:
        k = {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}
        return k | {"stop": list(self.stop)} if self.stop else k

    def cut(self, text: str) -> str:
        """text up to the first stop string."""
        for s in self.stop:
            text = text.split(s, 1)[0]
        return text


@dataclass
class Sample:
    """One sampled response; token_logprobs are log p(token | x, previous tokens) under the model
    at temperature 1 (the model's own likelihood, not the sampling distribution)."""

    text: str
    token_logprobs: list[float] = field(default_factory=list)
    filtered: bool = False  # the provider stopped the answer with its content filter (finish_reason content_filter)

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)

    def to_json(self) -> dict:
        return {"text": self.text, "token_logprobs": self.token_logprobs} | ({"filtered": True} if self.filtered else {})

    @classmethod
    def from_json(cls, d: dict) -> Sample:
        return cls(d["text"], list(d["token_logprobs"]), bool(d.get("filtered", False)))


@dataclass(frozen=True)
class Capabilities:
    """What a backend needs on a machine, declared on its class; `check` reads it (one generic check per need) and
    align reads `local_weights` (it trains the weights, so they must be on disk)."""
    local_weights: bool = True           # loads weights from this machine (check looks for them)
    package: str | None = None           # an optional package it needs installed (check: `import` would fail)
    gpu_for_large_models: bool = False   # models other than the packaged ones need an NVIDIA GPU
    plans_gpu_memory: bool = False       # check plans its GPU memory (gpu_memory_utilization, max_model_len, ...)
    server: bool = False                 # talks to servers at base_url(s): check asks each for /models
    wraps: str | None = None             # takes the engine keys of this backend too (a pool of its engines)
    raw_completion: bool = True          # continues a raw document (rewriter.style=completion)


class Backend(Protocol):
    """Both calls are batched: one call carries a whole generation's work for a role."""

    CAPABILITIES: Capabilities
    model_id: str  # what the cache key names
    supports_logprobs: bool
    precision: str | None  # the weights' dtype as loaded (float32, bfloat16, ...); None where a server decides

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int, first: int = 0) -> list[list[Sample]]:
        """Samples first .. first+n-1 of each chat. Sample j of a chat depends only on (chat, seed, j), never on
        what else is in the batch, so cached and fresh work mix without changing results, and a later call
        with first=n continues where one with n stopped (racing)."""
        ...

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        """log p(response | chat-templated prompt), token by token, for each pair."""
        ...


class BackendError(RuntimeError):
    """A model could not be loaded or reached; the message is meant for the user."""
