"""Faults: nothing lost, nothing half-written. Atomic writes, a corrupted checkpoint, a corrupted or locked call
cache (real files, real sqlite), the SIGKILL hook, and (slow) a real run killed at many points and resumed."""
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SMALL_RUN
from fakes import FakeBackend, per_word, said

from evoprompt.files import atomic_write_bytes, atomic_write_jsonl, atomic_write_text
from evoprompt.llm.base import Decoding
from evoprompt.llm.cache import CachedBackend, CallCache, call_key
from evoprompt.records import Candidate, RunState
from evoprompt.rundir import checkpoint


# ---------------------------------------------------------------- atomic writes
def test_atomic_writes_replace_whole_files(tmp_path):
    p = tmp_path / "sub" / "report.md"
    atomic_write_text(p, "first\n")
    atomic_write_text(p, "second\n")
    assert p.read_text() == "second\n"
    n = atomic_write_jsonl(tmp_path / "b.jsonl", ({"i": i, "t": "é"} for i in range(3)))
    assert n == 3 and [json.loads(l)["i"] for l in open(tmp_path / "b.jsonl", encoding="utf-8")] == [0, 1, 2]
    assert "é" in (tmp_path / "b.jsonl").read_text(encoding="utf-8")
    atomic_write_bytes(tmp_path / "x.bin", b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["b.jsonl", "sub", "x.bin"]  # no temporary left


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "bench.jsonl"
    atomic_write_jsonl(p, [{"a": 1}])

    def bad():
        yield {"a": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(p, bad())
    with pytest.raises(TypeError):
        atomic_write_jsonl(p, [{"a": object()}])
    assert p.read_text() == '{"a": 1}\n' and [f.name for f in tmp_path.iterdir()] == ["bench.jsonl"]


def _child(code: str, env_kill: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVOPROMPT_KILL_AT": env_kill}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_sigkill_between_temp_and_rename_leaves_old_file_and_next_write_cleans_up(tmp_path):
    p = tmp_path / "benchmark.jsonl"
    atomic_write_jsonl(p, [{"old": True}])
    code = (f"from evoprompt.files import atomic_write_jsonl\n"
            f"atomic_write_jsonl({str(p)!r}, [{{'new': i}} for i in range(1000)])\n")
    r = _child(code, "write benchmark.jsonl:1", ROOT)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert p.read_text() == '{"old": true}\n'
    assert len(list(tmp_path.glob(".benchmark.jsonl.tmp-*"))) == 1  # the killed writer's temporary
    atomic_write_jsonl(p, [{"new": 1}])
    assert p.read_text() == '{"new": 1}\n' and not list(tmp_path.glob(".benchmark.jsonl.tmp-*"))


def test_kill_point_counts_matching_calls(tmp_path):
    code = ("from evoprompt.faults import kill_point\n"
            "for i in range(5):\n"
            "    kill_point('score: 3 candidates'); kill_point('mutate: 2 rewrites')\n"
            "    print(i, flush=True)\n")
    r = _child(code, "score:3", ROOT)
    assert r.returncode == -signal.SIGKILL and r.stdout.split() == ["0", "1"]
    r = _child(code, "nomatch:1", ROOT)
    assert r.returncode == 0 and r.stdout.split() == ["0", "1", "2", "3", "4"]


# ---------------------------------------------------------------- checkpoint
def _state(h="abc"):
    st = RunState(h)
    st.generation, st.current = 1, {"s1": Candidate(id="s1", text="hi")}
    return st


# an unknown field is no damage: records read tolerantly (test_search_fast: an older checkpoint still loads)
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not-a-state", "no-config-hash"])
def test_corrupted_checkpoint_is_set_aside_and_run_starts_fresh(tmp_path, caplog, damage):
    checkpoint.save(_state(), tmp_path)
    path = tmp_path / checkpoint.CHECKPOINT
    good = path.read_bytes()
    path.write_bytes({"truncated": good[:len(good) // 2], "garbage": b"\xff\xfe\x00garbage", "empty": b"",
                      "not-a-state": b"[1, 2, 3]", "no-config-hash": b'{"generation": 1, "current": {}}'}[damage])
    with caplog.at_level(logging.WARNING, logger="evoprompt.rundir.checkpoint"):
        assert checkpoint.load(tmp_path, "abc") is None
    aside = list(tmp_path.glob("checkpoint.json.corrupt-*"))
    assert len(aside) == 1 and not path.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and aside[0].name in warnings[0]
    assert "\n" not in warnings[0]
    checkpoint.save(_state(), tmp_path)  # the fresh run checkpoints normally
    assert checkpoint.load(tmp_path, "abc").generation == 1


def test_good_checkpoint_round_trips_and_other_config_is_one_line(tmp_path):
    from evoprompt.errors import UserError

    checkpoint.save(_state(), tmp_path)
    assert checkpoint.load(tmp_path, "abc").current == {"s1": Candidate(id="s1", text="hi")}
    with pytest.raises(UserError, match="different configuration"):
        checkpoint.load(tmp_path, "other")
    assert checkpoint.load(tmp_path / "none", "abc") is None


# ---------------------------------------------------------------- call cache
def counting() -> FakeBackend:
    """Answers are a function of the prompt (sample j of "q" is "q#j"); `prompts` counts the prompts that reach it."""
    return FakeBackend(lambda chat, j, seed: said(f"{chat[-1]['content']}#{j}", -0.5, tokens=1), score=per_word(-1.0))


CHATS = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
DEC = Decoding(0.7, 1.0, 8)


def test_usage_counts_model_work_and_cache_hits_apart(tmp_path):
    inner = counting()
    backend = CachedBackend(inner, CallCache(tmp_path / "calls.sqlite"))
    backend.generate(CHATS + CHATS[:1], 2, DEC, 0)  # the repeated prompt is answered by its twin in the call
    backend.generate(CHATS, 2, DEC, 0)
    backend.score(CHATS[:2], ["a b", "c"])
    u = backend.usage
    assert (u.model_calls, u.prompts, u.cache_hits, u.samples, u.generated_tokens, u.scored_tokens) == (2, 6, 5, 8, 8, 3)
    assert inner.prompts == u.prompts
    uncached = CachedBackend(counting(), None)
    uncached.generate(CHATS, 2, DEC, 0)
    uncached.generate(CHATS, 2, DEC, 0)
    assert (uncached.usage.model_calls, uncached.usage.prompts, uncached.usage.cache_hits) == (2, 8, 0)
    assert uncached.inner.prompts == 8


def _fill(path) -> None:
    cache = CallCache(path)
    CachedBackend(counting(), cache).generate(CHATS, 2, DEC, 0)
    cache.put_many({call_key(kind="pad", i=i): "x" * 2000 for i in range(300)})  # a multi-page file
    cache._close()


def _works(path, caplog, expect_warning: str | None):
    inner = counting()
    with caplog.at_level(logging.WARNING, logger="evoprompt.cache"):
        cache = CallCache(path, timeout=0.3)
        backend = CachedBackend(inner, cache)
        out = backend.generate(CHATS, 2, DEC, 0)
        again = backend.generate(CHATS, 2, DEC, 0)
    assert [[s.text for s in x] for x in out] == [[f"q{i}#0", f"q{i}#1"] for i in range(4)]
    assert [[s.text for s in x] for x in again] == [[s.text for s in x] for x in out]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if expect_warning is None:
        assert not warnings
    else:
        assert len(warnings) == 1 and expect_warning in warnings[0] and str(path) in warnings[0], warnings
    return cache, inner, warnings


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad-header-page"])
def test_damaged_cache_is_moved_aside_and_rebuilt(tmp_path, caplog, damage):
    path = tmp_path / "calls.sqlite"
    _fill(path)
    data = path.read_bytes()
    assert len(data) > 100_000
    path.write_bytes({"garbage": os.urandom(5000), "truncated": data[:len(data) // 3],
                      "bad-header-page": data[:100] + os.urandom(len(data) - 100)}[damage])
    cache, inner, warnings = _works(path, caplog, "moved to calls.sqlite.corrupt-")
    aside = list(tmp_path.glob("calls.sqlite.corrupt-*"))
    assert aside and aside[0].name in warnings[0]
    assert cache.disabled is None and inner.prompts == 4  # rebuilt: the second call was served from it
    cache._close()
    assert CallCache(path).get_many([call_key(kind="generate", model="scripted", decoding=DEC.key(), seed=0, n=2,
                                              chat=CHATS[0])])  # written to the new file


def test_locked_cache_falls_back_to_no_cache(tmp_path, caplog):
    path = tmp_path / "calls.sqlite"
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # rollback-journal database, exclusively locked by another connection
    try:
        t0 = time.time()
        cache, inner, _ = _works(path, caplog, "running without the cache")
        assert time.time() - t0 < 10 and cache.disabled and "locked" in cache.disabled
        assert inner.prompts == 8  # nothing cached: both calls reached the model
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_cache_locked_mid_run_turns_off_with_one_warning(tmp_path, caplog):
    path = tmp_path / "calls.sqlite"
    inner = counting()
    with caplog.at_level(logging.WARNING, logger="evoprompt.cache"):
        cache = CallCache(path, timeout=0.2)
        backend = CachedBackend(inner, cache)
        backend.generate(CHATS[:1], 1, DEC, 0)
        holder = sqlite3.connect(str(path), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # WAL: readers go on, writers wait and time out
        try:
            for seed in (1, 2, 3):
                assert len(backend.generate(CHATS, 1, DEC, seed)) == 4
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "running without the cache" in warnings[0]
    assert cache.disabled and inner.prompts == 1 + 12


def test_unopenable_cache_path_runs_without_cache(tmp_path, caplog):
    (tmp_path / "calls.sqlite").mkdir()  # a folder where the file should be
    cache, inner, _ = _works(tmp_path / "calls.sqlite", caplog, "running without the cache")
    assert cache.disabled and inner.prompts == 8


# ---------------------------------------------------------------- a real run killed at many points
# (EVOPROMPT_KILL_AT spec, where it lands). Counts restart in every process and a resumed process skips the
# generations its checkpoint holds, so each spec names the point the next process reaches.
KILLS = [
    ("score:1", "gen 0: scoring the seeds, no checkpoint yet"),
    ("write checkpoint.json:1", "gen 0: checkpoint fsynced, not yet renamed"),
    ("mutate:1", "gen 1: LLM mutations"),
    ("filter + gate:1", "gen 1: filters, seed-copy guard and gate on the mutants"),
    ("recombine:1", "gen 1: LLM recombination"),
    ("filter + gate:2", "gen 1: filters and gate on the recombinants"),
    ("score:1", "gen 1: scoring the candidates"),
    ("checkpoint:1", "gen 1: selection done, before the checkpoint"),
    ("write checkpoint.json:1", "gen 1: checkpoint fsynced, not yet renamed"),
    ("mutate:2", "gen 2: LLM mutations (gen 1 redone from the cache)"),
    ("score:1", "gen 2: scoring"),
    ("export:1", "export: items, helper answers and refusals"),
    ("write benchmark.jsonl:1", "export: benchmark.jsonl written, not yet renamed"),
    ("write fitness.png:1", "fitness.png written, not yet renamed"),
    ("write run.json:1", "run.json written, not yet renamed"),
    ("write report.md:1", "report.md written, not yet renamed"),
]


def _outputs_whole(run_dir) -> None:
    """Whatever exists is whole: every JSON and JSONL file parses, the plot is a complete PNG."""
    for p in run_dir.glob("*.jsonl"):
        for line in p.read_text(encoding="utf-8").splitlines():
            json.loads(line)
    for name in ("checkpoint.json", "run.json"):
        if (run_dir / name).exists():
            json.loads((run_dir / name).read_text(encoding="utf-8"))
    if (run_dir / "fitness.png").exists():
        data = (run_dir / "fitness.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data.endswith(b"IEND\xaeB`\x82")
    assert not list(run_dir.glob("checkpoint.json.corrupt-*"))


@pytest.mark.slow
def test_sigkill_at_many_points_then_the_same_command_completes_with_identical_outputs(tmp_path):
    args = ["run", "generations=2", *SMALL_RUN, "seed=5", f"cache.path={tmp_path / 'calls.sqlite'}"]
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "evoprompt", *args, f"hydra.run.dir={run_dir}"]
    log = []
    for spec, where in KILLS:
        t0 = time.time()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHONUNBUFFERED": "1", "EVOPROMPT_KILL_AT": spec})
        ckpt = run_dir / "checkpoint.json"
        gen = json.loads(ckpt.read_text())["generation"] if ckpt.exists() else None
        log.append((spec, where, r.returncode, round(time.time() - t0, 1), gen))
        assert r.returncode in (-signal.SIGKILL, 0), (spec, r.stderr[-3000:])
        assert "Traceback" not in r.stderr, (spec, r.stderr[-3000:])
        _outputs_whole(run_dir)
    print("\n".join(f"{spec:28s} rc {rc:3d}  {s:6.1f} s  checkpoint gen {gen}  ({where})"
                    for spec, where, rc, s, gen in log))
    killed = [spec for spec, _, rc, _, _ in log if rc == -signal.SIGKILL]
    assert len(set(killed)) >= 10 and len(killed) >= 14, log

    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    _outputs_whole(run_dir)
    assert not list(run_dir.glob(".*.tmp-*")), "a temporary file outlived the run"
    info = json.loads((run_dir / "run.json").read_text())["info"]
    assert info["generations"] == 2

    # the same command uninterrupted (its model calls served by the shared cache) writes the same outputs
    ref = tmp_path / "reference"
    r = subprocess.run([sys.executable, "-m", "evoprompt", *args, f"hydra.run.dir={ref}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("benchmark.jsonl", "sft.jsonl", "dpo.jsonl", "rejected.jsonl", "filtered.jsonl"):
        if (ref / name).exists() or (run_dir / name).exists():
            assert (run_dir / name).read_bytes() == (ref / name).read_bytes(), name
