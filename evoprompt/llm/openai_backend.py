"""Backend for any OpenAI-compatible server (vLLM's `api_server`, hosted APIs).

Requests run concurrently in threads, spread round-robin over `base_urls`, and are retried with
exponential backoff on rate limits, server errors, connection errors and timeouts; a retry takes the
next endpoint in the rotation. The API key is read from the environment variable named by `api_key_env`
and only handed to the client. `score` needs vLLM's `prompt_logprobs` extension of /v1/completions and the model's
tokenizer on this machine (to chat-template x the way the server does)."""
from __future__ import annotations

import itertools
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from .base import BackendError, Chat, Decoding, Sample
from .embedded import EMBEDDED_LLM, resolve_model_path


class OpenAIBackend:
    def __init__(self, model: str, base_url: str | None = None, base_urls: list[str] | None = None,
                 api_key_env: str = "OPENAI_API_KEY", max_concurrency: int = 8, timeout: float = 60.0,
                 max_retries: int = 6, supports_logprobs: bool | None = None, backoff: float = 0.5,
                 max_backoff: float = 30.0):
        import openai

        self.model_id = model
        key = os.environ.get(api_key_env) or "EMPTY"  # local servers accept any key
        self.clients = [openai.OpenAI(base_url=u, api_key=key, timeout=timeout, max_retries=0)
                        for u in (base_urls or [base_url])]
        self._turn = itertools.count()
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._supports_logprobs = supports_logprobs
        self._tok = None
        self._tok_lock = threading.Lock()

    def _call(self, request: Callable):
        """request(client) with retries; transient failures wait backoff * 2**attempt (jittered)."""
        import openai

        for attempt in range(self.max_retries + 1):
            client = self.clients[next(self._turn) % len(self.clients)]
            try:
                return request(client)
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as e:
                if attempt == self.max_retries:
                    raise BackendError(f"{self.model_id} at {client.base_url}: gave up after "
                                       f"{attempt + 1} tries: {type(e).__name__}: {e}") from None
                time.sleep(min(self.max_backoff, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0))
            except openai.APIError as e:
                raise BackendError(f"{self.model_id} at {client.base_url}: {type(e).__name__}: {e}") from None

    def _map(self, fn: Callable, items: list) -> list:
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(items)))) as pool:
            return list(pool.map(fn, items))  # input order

    @property
    def supports_logprobs(self) -> bool:
        if self._supports_logprobs is None:
            probe = self._call(lambda c: c.chat.completions.create(
                model=self.model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=1, logprobs=True))
            self._supports_logprobs = bool(probe.choices[0].logprobs and probe.choices[0].logprobs.content)
        return self._supports_logprobs

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int) -> list[list[Sample]]:
        logprobs = self.supports_logprobs
        greedy = decoding.temperature <= 0

        def one(chat: Chat) -> list[Sample]:
            resp = self._call(lambda c: c.chat.completions.create(
                model=self.model_id, messages=chat, n=n, seed=seed, logprobs=logprobs,
                temperature=0.0 if greedy else decoding.temperature, top_p=1.0 if greedy else decoding.top_p,
                max_tokens=decoding.max_new_tokens))
            samples = []
            for choice in sorted(resp.choices, key=lambda ch: ch.index):
                if logprobs and not (choice.logprobs and choice.logprobs.content):
                    raise BackendError(f"{self.model_id}: the server returned no logprobs; "
                                       "set supports_logprobs: false for this role or use a server that has them")
                lps = [t.logprob for t in choice.logprobs.content] if logprobs else []
                samples.append(Sample((choice.message.content or "").strip(), lps))
            return samples

        return self._map(one, list(chats))

    def _tokenizer(self):
        with self._tok_lock:
            if self._tok is None:
                if self.model_id != EMBEDDED_LLM and not os.path.isdir(self.model_id):
                    raise BackendError(f"scoring with the openai backend needs the tokenizer of '{self.model_id}' "
                                       "on this machine: name the model by a local folder (or `embedded`)")
                from transformers import AutoTokenizer

                self._tok = AutoTokenizer.from_pretrained(resolve_model_path(self.model_id))
            return self._tok

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        if not self.supports_logprobs:
            raise BackendError(f"{self.model_id}: scoring needs a server that returns logprobs")
        tok = self._tokenizer()

        def one(pair: tuple[Chat, str]) -> Sample:
            chat, response = pair
            x = tok(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False),
                    add_special_tokens=False)["input_ids"]
            y = tok(response, add_special_tokens=False)["input_ids"]
            if not y:
                return Sample(response, [])
            resp = self._call(lambda c: c.completions.create(
                model=self.model_id, prompt=x + y, max_tokens=1, extra_body={"prompt_logprobs": 0}))
            per_pos = getattr(resp.choices[0], "prompt_logprobs", None)
            if not per_pos:
                raise BackendError(f"{self.model_id}: the server ignored prompt_logprobs on /v1/completions "
                                   "(a vLLM extension); scoring needs it")
            return Sample(response, [per_pos[len(x) + k][str(t)]["logprob"] for k, t in enumerate(y)])

        return self._map(one, list(zip(chats, responses)))
