"""Content-addressed on-disk cache of model calls.

The key hashes (call kind, model, decoding, sampling seed, chat, n or response), so an identical rerun,
or a resumed run redoing an unfinished generation, makes no model call for work already done."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

from .base import Backend, Chat, Decoding, Sample


# bump when what a backend returns for the same call changes, so old entries are never served
CACHE_VERSION = 1


def call_key(**parts) -> str:
    parts["version"] = CACHE_VERSION
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CallCache:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, value FROM calls WHERE key IN ({','.join('?' * len(chunk))})"
                found.update((k, json.loads(v)) for k, v in self._db.execute(q, chunk))
        self.hits += sum(k in found for k in keys)
        self.misses += sum(k not in found for k in keys)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?)",
                                 [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()])


class CachedBackend:
    """Wraps any Backend; only the prompts missing from the cache reach the model, in one batched call."""

    def __init__(self, inner: Backend, cache: CallCache):
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.supports_logprobs = inner.supports_logprobs
        self.model_calls = 0  # batched calls that reached the model

    def _through(self, keys: list[str], call) -> list:
        """Values for keys, computing the missing ones (each distinct key once) with call(indices)."""
        found = self.cache.get_many(keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        missing = [first[k] for k in dict.fromkeys(k for k in keys if k not in found)]
        if missing:
            new = {keys[i]: v for i, v in zip(missing, call(missing))}
            self.model_calls += 1
            self.cache.put_many(new)
            found.update(new)
        return [found[k] for k in keys]

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int) -> list[list[Sample]]:
        keys = [call_key(kind="generate", model=self.model_id, decoding=decoding.key(), seed=seed, n=n, chat=c)
                for c in chats]

        def call(idx):
            fresh = self.inner.generate([chats[i] for i in idx], n, decoding, seed)
            return [[s.to_json() for s in samples] for samples in fresh]

        return [[Sample.from_json(s) for s in v] for v in self._through(keys, call)]

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        keys = [call_key(kind="score", model=self.model_id, chat=c, response=r) for c, r in zip(chats, responses)]

        def call(idx):
            return [s.to_json() for s in self.inner.score([chats[i] for i in idx], [responses[i] for i in idx])]

        return [Sample.from_json(v) for v in self._through(keys, call)]
