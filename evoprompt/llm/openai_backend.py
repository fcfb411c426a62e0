"""Backend for any OpenAI-compatible server (vLLM's `api_server`, hosted APIs).

Requests run concurrently in threads, at most `max_concurrency` in flight per endpoint of `base_urls` (vLLM
servers, data-parallel deployments, Ray Serve replicas, gateways). Each request goes to the healthy endpoint with
the fewest requests outstanding (then the fewest sent), so a slow or busy endpoint gets less. An endpoint that
fails `DOWN_AFTER` times in a row is left out for `COOL_DOWN` seconds (tried again only if every endpoint is
down), and a retry always goes to another endpoint where there is one. Per endpoint, requests, failures and
seconds are counted (`endpoint_usage`, in every usage table). Constructing the backend makes no network call: the
clients are built on first use, and whether the server returns log-probs (unless given by `supports_logprobs`)
is probed then.

Faults are retried a bounded number of times (`max_retries`), after an exponential backoff (`backoff` * 2**attempt, jittered, at most `max_backoff` seconds): HTTP 5xx, 408,
429 (waiting what its Retry-After asks, capped at `max_backoff`), dropped connections, read timeouts
(`timeout`), and answers that cannot be read (not JSON, no choices, log-probs missing though asked for; these at
most `max_malformed` times, so a server that never sends them fails fast). Other HTTP errors (400, 401, 404, ...)
are not retried. Every failure that reaches the user is one line naming the model and the endpoint.

The API key is read from the environment variable named by `api_key_env` and handed only to the client; it is
kept out of every message and log line (a server that echoes it back is redacted). `score` needs vLLM's
`prompt_logprobs` extension of /v1/completions and the model's tokenizer on this machine (to chat-template x the
way the server does)."""
from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from evoprompt.llm.base import BackendError, Capabilities, Chat, Decoding, Sample
from evoprompt.llm.embedded import EMBEDDED_LLM, GUARDED_LLM, resolve_model_path
from evoprompt.secrets import safe_url

log = logging.getLogger("evoprompt.openai")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
DOWN_AFTER = 3     # consecutive failures that take an endpoint out of the rotation
COOL_DOWN = 30.0   # seconds it stays out


class Malformed(Exception):
    """A 200 answer that cannot be used (retried at most max_malformed times)."""


def retry_after(e) -> float | None:
    """Seconds asked for by a Retry-After (or retry-after-ms) header of an HTTP error, else None."""
    headers = getattr(getattr(e, "response", None), "headers", None)
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIBackend:
    """any OpenAI-compatible server (vllm serve, hosted APIs), one or several base URLs; log-probs where served."""

    CAPABILITIES = Capabilities(local_weights=False, server=True, raw_completion=False)
    precision = None  # the server's business

    def __init__(self, model: str, base_url: str | None = None, base_urls: list[str] | None = None,
                 api_key_env: str = "OPENAI_API_KEY", max_concurrency: int = 8, timeout: float = 60.0,
                 max_retries: int = 6, supports_logprobs: bool | None = None, backoff: float = 0.5,
                 max_backoff: float = 30.0, max_malformed: int = 2):
        self.model_id = model
        self.urls = list(base_urls or [base_url])  # None: the client's default (OPENAI_BASE_URL or api.openai.com)
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.max_malformed = max_malformed
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._supports_logprobs = supports_logprobs
        self._clients = None
        self._clients_lock = threading.Lock()
        self._sched = threading.Condition()
        self._outstanding = [0] * len(self.urls)
        self._failed_in_row = [0] * len(self.urls)
        self._down_until = [0.0] * len(self.urls)
        self._stats = [{"requests": 0, "failures": 0, "seconds": 0.0, "taken_down": 0} for _ in self.urls]
        self._tok = None
        self._tok_lock = threading.Lock()

    # ---- clients, made on first use
    def _key(self) -> str:
        return os.environ.get(self.api_key_env) or "EMPTY"  # local servers accept any key

    @property
    def clients(self) -> list:
        with self._clients_lock:
            if self._clients is None:
                import openai

                self._clients = [openai.OpenAI(base_url=u, api_key=self._key(), timeout=self.timeout, max_retries=0)
                                 for u in self.urls]
            return self._clients

    def _redact(self, text: str) -> str:
        """One line, without the API key (nor anything after 'Bearer ')."""
        key = self._key()
        if key and key != "EMPTY":
            text = text.replace(key, "***")
        text = re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
        return " ".join(text.split())[:500]

    def _where(self, k: int) -> str:
        url = self.urls[k] or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return f"{self.model_id} at {safe_url(url)}"

    # ---- endpoints: least outstanding requests, health, counts
    def _acquire(self, avoid: int | None) -> int:
        """A slot on the healthy endpoint with the fewest requests in flight: endpoints other than `avoid` (the one
        that just failed) first, healthy ones first; it waits for a slot of those rather than fall back."""
        every = range(len(self.urls))
        with self._sched:
            while True:
                now = time.monotonic()
                up = [k for k in every if self._down_until[k] <= now]
                chosen = [k for k in up if k != avoid] or up or [k for k in every if k != avoid] or list(every)
                pool = [k for k in chosen if self._outstanding[k] < self.max_concurrency]
                if pool:
                    k = min(pool, key=lambda k: (self._outstanding[k], self._stats[k]["requests"], k))
                    self._outstanding[k] += 1
                    self._stats[k]["requests"] += 1
                    return k
                self._sched.wait(0.05)

    def _release(self, k: int, ok: bool, seconds: float) -> None:
        with self._sched:
            self._outstanding[k] -= 1
            s = self._stats[k]
            s["seconds"] += seconds
            if ok:
                self._failed_in_row[k] = 0
            else:
                s["failures"] += 1
                self._failed_in_row[k] += 1
                if self._failed_in_row[k] >= DOWN_AFTER and self._down_until[k] <= time.monotonic():
                    self._down_until[k] = time.monotonic() + COOL_DOWN
                    s["taken_down"] += 1
                    log.warning("%s", self._redact(f"{self._where(k)}: {self._failed_in_row[k]} failures in a row; "
                                                   f"left out for {COOL_DOWN:g} s"))
            self._sched.notify_all()

    def endpoint_usage(self) -> dict:
        """Per endpoint (credentials stripped): requests sent, failures, seconds spent, times taken out."""
        with self._sched:
            return {safe_url(self.urls[k] or "default"): {**s, "seconds": round(s["seconds"], 3)}
                    for k, s in enumerate(self._stats)}

    # ---- requests with retries
    def _call(self, request: Callable, check: Callable | None = None):
        """request(client) with bounded retries, each on another endpoint where there is one; check(response)
        raises Malformed for an unusable answer."""
        import openai

        malformed, last = 0, None
        for attempt in range(self.max_retries + 1):
            k = last = self._acquire(last)
            client = self.clients[k]
            wait, t0, ok = None, time.monotonic(), False
            try:
                resp = request(client)
                if check is not None:
                    check(resp)
                ok = True
                return resp
            except openai.APITimeoutError:
                why = f"no answer within the {self.timeout:g} s timeout"
            except openai.APIConnectionError as e:
                cause = e.__cause__ or e.__context__
                why = f"connection failed ({type(cause).__name__ if cause else type(e).__name__})"
            except openai.APIStatusError as e:
                why = f"HTTP {e.status_code} ({type(e).__name__}): {e.message}"
                if e.status_code not in RETRY_STATUS:
                    raise BackendError(self._redact(f"{self._where(k)}: {why}")) from None
                if e.status_code == 429:
                    wait = retry_after(e)
            except (json.JSONDecodeError, openai.APIResponseValidationError, Malformed) as e:
                malformed += 1
                why = (f"unusable answer: {e}" if isinstance(e, Malformed) else
                       f"unusable answer: not valid JSON ({type(e).__name__})")
                if malformed > self.max_malformed:
                    raise BackendError(self._redact(f"{self._where(k)}: {why} ({malformed} times)")) from None
            except openai.APIError as e:
                raise BackendError(self._redact(f"{self._where(k)}: {type(e).__name__}: {e}")) from None
            finally:
                self._release(k, ok, time.monotonic() - t0)
            if attempt == self.max_retries:
                raise BackendError(self._redact(f"{self._where(k)}: gave up after {attempt + 1} tries; last: {why}"))
            if wait is None:
                wait = self.backoff * 2 ** attempt * random.uniform(0.5, 1.0)
            wait = min(self.max_backoff, wait)
            log.info("%s", self._redact(f"{self._where(k)}: {why}; retry {attempt + 1}/{self.max_retries} "
                                        f"in {wait:.2f} s"))
            time.sleep(wait)

    def _map(self, fn: Callable, items: list) -> list:
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency * len(self.urls), len(items)))) as pool:
            return list(pool.map(fn, items))  # input order

    @staticmethod
    def _choices(resp, n: int) -> list:
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list) or len(choices) < n:
            raise Malformed(f"expected {n} choice(s), got {len(choices) if isinstance(choices, list) else 'none'}")
        return choices

    @property
    def supports_logprobs(self) -> bool:
        if self._supports_logprobs is None:
            probe = self._call(lambda c: c.chat.completions.create(
                model=self.model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=1, logprobs=True),
                lambda r: self._choices(r, 1))
            self._supports_logprobs = bool(probe.choices[0].logprobs and probe.choices[0].logprobs.content)
            if not self._supports_logprobs:
                log.info("%s: the server returns no logprobs", self._where(0))
        return self._supports_logprobs

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int, first: int = 0) -> list[list[Sample]]:
        """A server draws a chat's n samples from one seed, so samples first.. of a later call come from a seed
        of their own: racing stays valid, but they are not those a single call of first+n would return."""
        logprobs = self.supports_logprobs
        if first:
            from evoprompt.operators.rewrite import sub_seed  # not at the top: operators import this package

            seed = sub_seed(seed, "first", first)
        greedy = decoding.temperature <= 0

        def check(resp):
            for choice in self._choices(resp, n):
                filtered = getattr(choice, "finish_reason", None) == "content_filter"  # stopped: no tokens to score
                if logprobs and not filtered and not (choice.logprobs and choice.logprobs.content):
                    raise Malformed("the server returned no logprobs (set supports_logprobs: false for this role "
                                    "or use a server that returns them)")

        def one(chat: Chat) -> list[Sample]:
            resp = self._call(lambda c: c.chat.completions.create(
                model=self.model_id, messages=chat, n=n, seed=seed, logprobs=logprobs,
                temperature=0.0 if greedy else decoding.temperature, top_p=1.0 if greedy else decoding.top_p,
                max_tokens=decoding.max_new_tokens), check)
            samples = []
            for choice in sorted(resp.choices, key=lambda ch: ch.index)[:n]:
                lps = [t.logprob for t in choice.logprobs.content] if logprobs and choice.logprobs and \
                    choice.logprobs.content else []
                samples.append(Sample((choice.message.content or "").strip(), lps,
                                      filtered=getattr(choice, "finish_reason", None) == "content_filter"))
            return samples

        return self._map(one, list(chats))

    def _tokenizer(self):
        with self._tok_lock:
            if self._tok is None:
                if self.model_id not in (EMBEDDED_LLM, GUARDED_LLM) and not os.path.isdir(self.model_id):
                    raise BackendError(f"scoring with the openai backend needs the tokenizer of '{self.model_id}' "
                                       "on this machine: name the model by a local folder (or `embedded`)")
                from transformers import AutoTokenizer

                # the guarded model is the packaged one with a LoRA: the same tokenizer, no merge needed for it
                name = EMBEDDED_LLM if self.model_id == GUARDED_LLM else self.model_id
                self._tok = AutoTokenizer.from_pretrained(resolve_model_path(name))
            return self._tok

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        tok = self._tokenizer()
        if not self.supports_logprobs:
            raise BackendError(f"{self._where(0)}: scoring needs a server that returns logprobs")

        def one(pair: tuple[Chat, str]) -> Sample:
            chat, response = pair
            x = tok(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False),
                    add_special_tokens=False)["input_ids"]
            y = tok(response, add_special_tokens=False)["input_ids"]
            if not y:
                return Sample(response, [])

            def check(resp):
                per_pos = getattr(self._choices(resp, 1)[0], "prompt_logprobs", None)
                if not per_pos:
                    raise Malformed("the server ignored prompt_logprobs on /v1/completions (a vLLM extension; "
                                    "scoring needs it)")
                if len(per_pos) < len(x) + len(y) or any(
                        not isinstance(per_pos[len(x) + k], dict) or str(t) not in per_pos[len(x) + k]
                        for k, t in enumerate(y)):
                    raise Malformed("prompt_logprobs do not cover the response tokens")

            resp = self._call(lambda c: c.completions.create(
                model=self.model_id, prompt=x + y, max_tokens=1, extra_body={"prompt_logprobs": 0}), check)
            per_pos = resp.choices[0].prompt_logprobs
            return Sample(response, [per_pos[len(x) + k][str(t)]["logprob"] for k, t in enumerate(y)])

        return self._map(one, list(zip(chats, responses)))
