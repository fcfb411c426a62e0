"""Content-addressed on-disk cache of model calls.

The key hashes (call kind, model, decoding, sampling seed, chat, n or response), so an identical rerun,
or a resumed run redoing an unfinished generation, makes no model call for work already done."""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoprompt.llm.base import Backend, Chat, Decoding, Sample

log = logging.getLogger("evoprompt.cache")

# bump when what a backend returns for the same call changes, so old entries are never served
CACHE_VERSION = 1


def call_key(**parts) -> str:
    parts["version"] = CACHE_VERSION
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


_HEADER = b"SQLite format 3\x00"


def _damage(path: Path) -> str | None:
    """Why the file at path is not a usable SQLite database, judged from its header alone (cheap), else None."""
    try:
        if not path.is_file():
            return None  # absent (a new cache), or something sqlite will refuse to open
        size = path.stat().st_size
        if size == 0:
            return None  # sqlite makes an empty file a new database
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError:
        return None
    if len(head) < 100 or not head.startswith(_HEADER):
        return "not an SQLite database"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    header_size_valid = pages and head[24:28] == head[92:96]
    wal = path.with_name(path.name + "-wal")
    if header_size_valid and not (wal.exists() and wal.stat().st_size) and size < pages * page_size:
        return f"truncated ({size} of {pages * page_size} bytes)"
    return None


def _locked(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and any(w in str(e).lower() for w in ("locked", "busy"))


def _not_damage(e: sqlite3.Error) -> str | None:
    """Why a failure is the machine's, not the file's (a full disk, a read-only folder, an I/O error): the cache
    is then turned off and kept as it is, never set aside as damaged."""
    text = str(e).lower()
    if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in text:
        return "the disk is full"
    if "readonly" in text or "read-only" in text or "disk i/o error" in text:
        return str(e)
    return None


class CallCache:
    """sqlite file of (key, JSON value). Never stops a run: a file that is not a database, or a damaged one, is
    moved aside (PATH.corrupt-TIMESTAMP, named in a warning) and rebuilt; a database another process keeps
    locked past `timeout` seconds, or one that cannot be opened at all, turns the cache off for this process
    with one warning (every call then reaches the model)."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.disabled: str | None = None  # why the cache is off, once it is
        self.hits = 0
        self.misses = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._disable(f"cannot create its folder ({e.strerror or e})")
            return
        why = _damage(self.path)
        if why:
            self._set_aside(why)
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            if _locked(e):
                self._disable(f"locked by another process for more than {timeout:g} s")
                return
            if (isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e)) or _not_damage(e):
                self._disable(_not_damage(e) or str(e))
                return
            self._close()
            self._set_aside(str(e))
            try:
                self._open()
            except sqlite3.Error as e2:
                self._disable(str(e2))

    # ---- opening, setting aside, turning off
    def _open(self) -> None:
        self._db = sqlite3.connect(str(self.path), timeout=self.timeout, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("SELECT key FROM calls LIMIT 1").fetchall()

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None

    def _set_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        k = 1
        while aside.exists():
            aside, k = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{k}"), k + 1
        self.path.replace(aside)
        for suffix in ("-wal", "-shm"):  # a log belongs to the file it was written for
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.replace(aside.with_name(aside.name + suffix))
        log.warning("call cache %s is damaged (%s): moved to %s; starting an empty cache", self.path, why, aside.name)

    def _disable(self, why: str) -> None:
        self._close()
        if not self.disabled:
            log.warning("call cache %s: %s; running without the cache (every call reaches the model)", self.path, why)
        self.disabled = why

    def _failed(self, e: sqlite3.Error) -> None:
        """A query failed mid-run (caller holds the lock): a lock turns the cache off, damage rebuilds it."""
        if _locked(e):
            self._disable(f"locked by another process for more than {self.timeout:g} s")
            return
        if _not_damage(e):
            self._disable(_not_damage(e))
            return
        self._close()
        try:
            self._set_aside(f"{type(e).__name__}: {e}")
            self._open()
        except (OSError, sqlite3.Error) as e2:
            self._disable(f"cannot rebuild it ({e2})")

    # ---- the cache
    def _get(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, value FROM calls WHERE key IN ({','.join('?' * len(chunk))})"
            found.update((k, json.loads(v)) for k, v in self._db.execute(q, chunk))
        return found

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        with self._lock:
            if self._db is not None:
                try:
                    found = self._get(keys)
                except sqlite3.Error as e:
                    self._failed(e)
                    found = {}
        self.hits += sum(k in found for k in keys)
        self.misses += sum(k not in found for k in keys)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        rows = [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()]
        with self._lock:
            for _ in range(2):  # a damaged file is rebuilt once, then written again
                if self._db is None:
                    return
                try:
                    with self._db:
                        self._db.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?)", rows)
                    return
                except sqlite3.Error as e:
                    self._failed(e)


@dataclass
class Usage:
    """What one role asked of its model. A prompt is one chat of a generate call (with all its samples) or one
    (chat, response) pair of a score call; cache hits (answered from the call cache or by an identical prompt in
    the same call) are counted apart from the work that reached the model."""

    model_calls: int = 0  # batched calls that reached the model
    prompts: int = 0  # prompts that reached the model
    cache_hits: int = 0
    samples: int = 0  # responses generated
    generated_tokens: int = 0
    scored_tokens: int = 0  # response tokens whose log-probs a score call computed


class CachedBackend:
    """Wraps any Backend and counts its Usage; only the prompts missing from the cache (all of them with
    cache=None) reach the model, each distinct prompt once, in one batched call."""

    def __init__(self, inner: Backend, cache: CallCache | None):
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.precision = getattr(inner, "precision", None)
        # bf16 and float32 weights sample differently; float32 keys stay those of earlier caches
        self._keyed = self.model_id if self.precision in (None, "float32") else f"{self.model_id}@{self.precision}"
        self.usage = Usage()

    @property
    def model_calls(self) -> int:
        return self.usage.model_calls

    @property
    def supports_logprobs(self) -> bool:
        """Asked of the backend on first use (an OpenAI-compatible server is probed then, not at construction)."""
        return self.inner.supports_logprobs

    def _through(self, keys: list[str], call) -> list:
        """Values for keys, computing the missing ones (each distinct key once) with call(indices)."""
        found = self.cache.get_many(keys) if self.cache else {}
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        missing = [first[k] for k in dict.fromkeys(k for k in keys if k not in found)]
        u = self.usage
        u.cache_hits += len(keys) - len(missing)
        if missing:
            new = {keys[i]: v for i, v in zip(missing, call(missing))}
            u.model_calls += 1
            u.prompts += len(missing)
            if self.cache:
                self.cache.put_many(new)
            found.update(new)
        return [found[k] for k in keys]

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int, first: int = 0) -> list[list[Sample]]:
        offset = {"first": first} if first else {}  # keys of whole calls (first = 0) as before
        noise = getattr(self.inner, "noise", "generator")  # the HF sampler's noise decides the samples too
        offset |= {"noise": noise} if noise != "generator" else {}
        keys = [call_key(kind="generate", model=self._keyed, decoding=decoding.key(), seed=seed, n=n, chat=c, **offset)
                for c in chats]

        def call(idx):
            fresh = self.inner.generate([chats[i] for i in idx], n, decoding, seed, first=first)
            self.usage.samples += sum(len(samples) for samples in fresh)
            self.usage.generated_tokens += sum(s.n_tokens for samples in fresh for s in samples)
            return [[s.to_json() for s in samples] for samples in fresh]

        return [[Sample.from_json(s) for s in v] for v in self._through(keys, call)]

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        keys = [call_key(kind="score", model=self._keyed, chat=c, response=r) for c, r in zip(chats, responses)]

        def call(idx):
            scored = self.inner.score([chats[i] for i in idx], [responses[i] for i in idx])
            self.usage.scored_tokens += sum(s.n_tokens for s in scored)
            return [s.to_json() for s in scored]

        return [Sample.from_json(v) for v in self._through(keys, call)]
