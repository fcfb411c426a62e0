"""OpenAIBackend against a real fault-injecting OpenAI-compatible server on 127.0.0.1: every fault is served,
then the server answers, and the backend must recover; past its retry budget it stops with one line naming the
model and endpoint. An API-key sentinel must reach the server and nothing else (files, logs, messages).

FaultServer (http.server in a thread) serves /v1/chat/completions (n choices, per-token logprobs, the answer echoes the last user message so an
answer can be matched to its request) and /v1/completions with vLLM's prompt_logprobs (one entry per prompt token
id). `faults` is a FIFO of faults served to the next requests, one per request, before it answers normally:
any status code ("503"), 429 with Retry-After, drop (connection closed without an answer), slow (answers
after `slow_s`), badjson (200 with a body that is not JSON), nochoices (200, JSON without choices), nologprobs
(a normal answer without logprobs), filter (a content-filter stop: finish_reason content_filter, no content), echo (500 whose body repeats the request's Authorization header, as a hostile
or debugging proxy might). Every request is recorded (path, headers, body, fault served).
"""

import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT, SMALL_RUN

from evoprompt.llm.base import BackendError, Decoding
from evoprompt.llm.cache import CachedBackend, CallCache
from evoprompt.llm.openai_backend import OpenAIBackend

SENTINEL = "sk-SENTINEL-12345"
DEC = Decoding(temperature=0.7, max_new_tokens=16)


class FaultServer:
    def __init__(self, answer: str = "I'm sorry, but I can't help with that.", retry_after: str = "1",
                 slow_s: float = 2.0, always: str | None = None, cycle: tuple = (), every: int = 0):
        self.faults: list[str] = []
        self.always = always  # a fault served to every request (e.g. "nologprobs": a server without them)
        self.cycle, self.every = list(cycle), every  # then: every `every`-th request gets the next fault of `cycle`
        self._n = 0
        self.answer, self.retry_after, self.slow_s = answer, retry_after, slow_s
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # a "slow" answer the client timed out on
                    pass

            def do_GET(self):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "embedded", "object": "model"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server._n += 1
                    fault = server.faults.pop(0) if server.faults else server.always
                    if fault is None and server.cycle and server.every and server._n % server.every == 0:
                        fault = server.cycle[(server._n // server.every - 1) % len(server.cycle)]
                    server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                                            "fault": fault})
                if fault == "429":
                    return self._send(429, json.dumps({"error": {"message": "rate limited"}}).encode(),
                                      {"Retry-After": server.retry_after})
                if fault and fault.isdigit():
                    return self._send(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode())
                if fault == "echo":
                    return self._send(500, json.dumps({"error": {"message": "bad key? you sent "
                                                                 + self.headers.get("Authorization", "")}}).encode())
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "slow":
                    time.sleep(server.slow_s)
                if fault == "badjson":
                    return self._send(200, b'{"id": "x", "choices": [{"index": 0, "message": {"content": "tru')
                if fault == "nochoices":
                    return self._send(200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
                if fault == "filter":  # the provider's content filter stopped the answer: no content, no logprobs
                    choice = {"index": 0, "finish_reason": "content_filter", "logprobs": None,
                              "message": {"role": "assistant", "content": None}}
                    return self._send(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                                       "model": body["model"], "choices": [choice]}).encode())
                answer = server.chat(body, logprobs=fault != "nologprobs") if "chat" in self.path \
                    else server.completion(body, logprobs=fault != "nologprobs")
                self._send(200, json.dumps(answer).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # shutdown() waits for the loop's next poll: at 0.5 s (the default) that is most of a test's time
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def served(self, fault: str | None = None) -> int:
        return sum(r["fault"] == fault for r in self.requests)

    def chat(self, body: dict, logprobs: bool) -> dict:
        question = body["messages"][-1]["content"]
        choices = []
        for i in range(body.get("n") or 1):
            text = f"{self.answer} [{question}] #{i}"
            words = text.split(" ")
            lp = {"content": [{"token": w, "logprob": -0.25, "bytes": None, "top_logprobs": []} for w in words]}
            choices.append({"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text},
                            "logprobs": lp if logprobs and body.get("logprobs") else None})
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
                "model": body["model"], "choices": choices}

    def completion(self, body: dict, logprobs: bool) -> dict:
        prompt = body["prompt"]
        choice = {"index": 0, "text": "", "finish_reason": "length", "logprobs": None}
        if logprobs and body.get("prompt_logprobs") is not None:
            choice["prompt_logprobs"] = [None] + [{str(t): {"logprob": -0.5, "rank": 1}} for t in prompt[1:]]
        return {"id": f"cmpl-{len(self.requests)}", "object": "text_completion", "created": 0,
                "model": body["model"], "choices": [choice]}


# ---------------------------------------------------------------- tests
@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


def chats(k: int) -> list:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(k)]


def backend(srv, **kw) -> OpenAIBackend:
    kw = {"max_retries": 3, "backoff": 0.01, "max_backoff": 0.05, "timeout": 2.0, "max_concurrency": 1, **kw}
    return OpenAIBackend("embedded", base_url=srv.url, **kw)


def answered(out, k: int, n: int = 1) -> bool:
    return [[s.text for s in x] for x in out] == [[f"I'm sorry, but I can't help with that. [question {i}] #{j}"
                                                    for j in range(n)] for i in range(k)]


def test_construction_makes_no_network_call(server, tmp_path):
    b = OpenAIBackend("embedded", base_url=server.url)  # supports_logprobs unknown: probed on first use
    cached = CachedBackend(b, CallCache(tmp_path / "calls.sqlite"))
    assert cached.model_id == "embedded" and server.requests == []
    assert cached.supports_logprobs and len(server.requests) == 1  # the probe, now
    assert answered(cached.generate(chats(2), 2, DEC, seed=0), 2, n=2) and len(server.requests) == 3


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "429", "drop", "slow", "badjson", "nochoices",
                                   "nologprobs"])
def test_generate_recovers_from_each_fault(server, fault):
    server.slow_s = 1.5
    b = backend(server, supports_logprobs=True, timeout=0.5 if fault == "slow" else 2.0)
    server.faults = [fault, fault]
    out = b.generate(chats(2), 2, DEC, seed=0)
    assert answered(out, 2, n=2) and all(s.token_logprobs for x in out for s in x)
    assert server.served(fault) == 2 and len(server.requests) == 4


def test_a_content_filter_stop_is_a_flagged_refusal_not_an_error(server, tmp_path):
    """The stop comes back as a flagged empty sample (through the call cache too), and eval's measure counts it
    as a refusal in every rate and as a content-filter stop."""
    from rich.console import Console

    from evoprompt.fitness.refusal import make_judge
    from evoprompt.measure import measure_target

    b = CachedBackend(backend(server, supports_logprobs=True), CallCache(tmp_path / "calls.sqlite"))
    server.faults = ["filter"]
    out = b.generate(chats(2), 1, DEC, seed=0)
    assert (out[0][0].text, out[0][0].filtered) == ("", True) and not out[1][0].filtered
    assert b.generate(chats(1), 1, DEC, seed=0)[0][0].filtered and len(server.requests) == 2  # from the cache
    rows = {}
    measure_target(b, "t", {"s": ["question 0", "question 1"]}, None, DEC, make_judge("phrases"), 0, 20,
                   lambda s, t, m, v, lo=None, hi=None: rows.__setitem__(m, v), Console(quiet=True))
    assert rows["content-filter stops"] == 1 and rows["PRR"] == 1.0 and rows["CRR"] == 1.0 and rows["refused"] == 2


def test_429_honours_retry_after_and_caps_it(server):
    server.retry_after = "1"
    b = backend(server, supports_logprobs=True, backoff=0.001, max_backoff=5.0)
    server.faults = ["429"]
    t0 = time.monotonic()
    assert answered(b.generate(chats(1), 1, DEC, seed=0), 1)
    assert time.monotonic() - t0 >= 0.9  # waited what the server asked, not the 1 ms backoff
    server.retry_after = "1000"
    b = backend(server, supports_logprobs=True, backoff=0.001, max_backoff=0.3)
    server.faults = ["429"]
    t0 = time.monotonic()
    assert answered(b.generate(chats(1), 1, DEC, seed=0), 1)
    assert time.monotonic() - t0 < 5  # capped at max_backoff


@pytest.mark.parametrize("fault,expect", [
    ("503", "gave up after 4 tries; last: HTTP 503"),
    ("429", "gave up after 4 tries; last: HTTP 429"),
    ("drop", "gave up after 4 tries; last: connection failed"),
    ("slow", "gave up after 4 tries; last: no answer within the 0.3 s timeout"),
    ("badjson", "unusable answer: not valid JSON (JSONDecodeError) (3 times)"),
    ("nologprobs", "the server returned no logprobs"),
    ("400", "HTTP 400 (BadRequestError)"),
    ("401", "HTTP 401 (AuthenticationError)"),
])
def test_past_the_retry_budget_one_line_naming_model_and_endpoint(server, fault, expect):
    server.always, server.retry_after, server.slow_s = fault, "0", 1.0
    b = backend(server, supports_logprobs=True, timeout=0.3)
    with pytest.raises(BackendError) as e:
        b.generate(chats(1), 1, DEC, seed=0)
    msg = str(e.value)
    assert expect in msg and msg.startswith(f"embedded at {server.url}") and "\n" not in msg, msg
    tries = {"400": 1, "401": 1, "badjson": 3, "nologprobs": 3}.get(fault, 4)
    assert len(server.requests) == tries  # bounded; 4xx other than 408/409/429 are not retried


def test_score_recovers_and_needs_prompt_logprobs(server):
    b = backend(server, supports_logprobs=True)
    server.faults = ["drop", "500", "nologprobs"]
    out = b.score(chats(2), ["Sure, here it is.", "No."])
    assert [s.text for s in out] == ["Sure, here it is.", "No."]
    assert all(s.token_logprobs and all(lp == -0.5 for lp in s.token_logprobs) for s in out)
    server.always = "nologprobs"
    with pytest.raises(BackendError, match="ignored prompt_logprobs"):
        b.score(chats(1), ["Hi."])


def test_server_without_logprobs_is_detected_on_first_use(server):
    server.always = "nologprobs"
    b = backend(server)
    assert server.requests == [] and b.supports_logprobs is False and len(server.requests) == 1
    assert [x[0].token_logprobs for x in b.generate(chats(2), 1, DEC, seed=0)] == [[], []]
    with pytest.raises(BackendError, match="scoring needs a server that returns logprobs"):
        b.score(chats(1), ["Hi."])


def test_concurrent_faults_lose_and_duplicate_nothing(server, tmp_path):
    server.faults = ["500", "drop", "429", "badjson", "503", "nochoices", "slow", "nologprobs"]
    server.retry_after, server.slow_s = "0", 1.0
    b = CachedBackend(backend(server, supports_logprobs=True, max_concurrency=4, timeout=0.5, max_retries=6),
                      CallCache(tmp_path / "calls.sqlite"))
    out = b.generate(chats(12), 2, DEC, seed=0)
    assert answered(out, 12, n=2)
    ok = [r for r in server.requests if r["fault"] is None]
    assert sorted(r["body"]["messages"][-1]["content"] for r in ok) == sorted(f"question {i}" for i in range(12))
    before = len(server.requests)
    assert answered(b.generate(chats(12), 2, DEC, seed=0), 12, n=2) and len(server.requests) == before  # cached


def _leaks(root, text_sources) -> list[str]:
    found = [str(p) for p in root.rglob("*") if p.is_file() and SENTINEL.encode() in p.read_bytes()]
    return found + [name for name, text in text_sources if SENTINEL in text]


def test_api_key_sentinel_reaches_the_server_and_nothing_else(server, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("EVOPROMPT_TEST_KEY", SENTINEL)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    root = logging.getLogger()
    handler = logging.FileHandler(run_dir / "debug.log")
    handler.setLevel(logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # openai's and httpx's debug logs too
    errors = []
    try:
        with caplog.at_level(logging.DEBUG):
            server.retry_after = "0"
            server.faults = ["echo", "500", "429", "drop", "badjson", "nologprobs", "echo"]
            b = CachedBackend(backend(server, api_key_env="EVOPROMPT_TEST_KEY", max_retries=8, timeout=1.0,
                                      supports_logprobs=True),
                              CallCache(run_dir / "calls.sqlite"))
            out = b.generate(chats(3), 2, DEC, seed=0)
            assert answered(out, 3, n=2)
            b.score(chats(1), ["Sure."])
            for fault in ("echo", "401", "badjson"):  # failure paths: the messages must not carry the key
                server.always = fault
                with pytest.raises(BackendError) as e:
                    backend(server, api_key_env="EVOPROMPT_TEST_KEY", supports_logprobs=True, max_retries=2).generate(
                        chats(1), 1, DEC, seed=1)
                errors += [str(e.value), repr(e.value), str(e.value.__cause__), str(e.value.__context__)]
            server.always = None
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_level)
    assert any(r["headers"].get("authorization") == f"Bearer {SENTINEL}" for r in server.requests)  # it was used
    assert server.served("echo") >= 3
    assert any("Bearer ***" in m for m in errors)  # the echoing server's body, redacted
    out_err = capsys.readouterr()
    assert (run_dir / "debug.log").stat().st_size > 0 and (run_dir / "calls.sqlite").exists()
    assert _leaks(run_dir, [("log records", caplog.text), ("stdout", out_err.out), ("stderr", out_err.err),
                            *(("error message", m) for m in errors)]) == []


# ---------------------------------------------------------------- whole runs (slow: real embedded models)
def _run(tmp_path, srv, name: str, *extra, timeout=900):
    import subprocess
    import sys

    out = tmp_path / name
    # the fault server poses as a server of the plain embedded model
    cmd = [sys.executable, "-m", "evoprompt", "run", "generations=1", *SMALL_RUN, "target.backend=openai",
           "target.model=embedded",
           f"+target.base_url={srv.url}", "+target.timeout=1.0", "+target.backoff=0.01", "+target.max_backoff=0.1",
           "+target.supports_logprobs=true", f"cache.path={out / 'calls.sqlite'}", f"hydra.run.dir={out}", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENAI_API_KEY": SENTINEL}
    return out, subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_run_with_a_faulty_openai_target_completes_and_never_leaks_the_key(tmp_path):
    """Every third request to the target fails (500, 429, dropped, malformed, no logprobs, 503, key echoed, too
    slow): the run completes, no request is answered twice, and the key is in no file and no output."""
    cycle = ("500", "429", "drop", "badjson", "nologprobs", "503", "echo", "slow", "nochoices")
    with FaultServer(cycle=cycle, every=3, retry_after="0", slow_s=2.5) as srv:
        # three of the nine faults are malformed answers, and retries run concurrently: a request can land on
        # faulted slots three times in a row, past the default budget of two malformed answers per request
        out, r = _run(tmp_path, srv, "run", "+target.max_retries=8", "+target.max_malformed=8")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {f for f in cycle} <= {q["fault"] for q in srv.requests}, "every fault kind was served"
    assert any(q["headers"].get("authorization") == f"Bearer {SENTINEL}" for q in srv.requests)
    answered_ok = [json.dumps(q["body"], sort_keys=True) for q in srv.requests if q["fault"] is None]
    assert len(answered_ok) == len(set(answered_ok)), "a request was answered twice"
    for p in out.glob("*.jsonl"):
        [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    info = json.loads((out / "run.json").read_text())["info"]
    assert info["model_calls"]["target"] > 0
    assert _leaks(out, [("stdout", r.stdout), ("stderr", r.stderr)]) == []


@pytest.mark.slow
def test_a_password_in_the_base_url_reaches_no_file_and_no_output(tmp_path):
    """https://user:pass@host: the password went to run.json, report.md, .hydra/ and (httpx INFO) the log."""
    import subprocess
    import sys

    password = "pw-" + SENTINEL
    with FaultServer() as srv:
        url = srv.url.replace("http://", f"http://evo:{password}@")
        out = tmp_path / "creds"
        cmd = [sys.executable, "-m", "evoprompt", "run", "generations=0", *SMALL_RUN, "target.backend=openai",
               "target.model=embedded", f"+target.base_url={url}", "+target.supports_logprobs=true",
               f"cache.path={out / 'calls.sqlite'}", f"hydra.run.dir={out}"]
        r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OPENAI_API_KEY": "k"}, capture_output=True, text=True,
                           timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {"run.json", "report.md"} <= {p.name for p in out.iterdir()} and (out / ".hydra").is_dir()
    leaks = [str(p) for p in out.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == [] and password not in r.stdout + r.stderr


@pytest.mark.slow
def test_run_with_a_dead_openai_target_stops_with_one_line(tmp_path):
    with FaultServer(always="503") as srv:
        out, r = _run(tmp_path, srv, "dead", "+target.max_retries=2", timeout=600)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: embedded at http://127.0.0.1:") and "gave up after 3 tries" in last, last
    assert "HTTP 503" in last and SENTINEL not in r.stderr + r.stdout
    assert _leaks(out, []) == []


# ---------------------------------------------------------------- several endpoints
def test_requests_go_to_the_endpoint_with_the_fewest_outstanding(tmp_path):
    """A slow endpoint and a fast one, two requests in flight each: the fast one answers most; every answer
    matches its question; the per-endpoint counts reach the usage table."""
    from evoprompt.rundir.report import usage, usage_table

    with FaultServer(always="slow", slow_s=0.3) as slow, FaultServer() as fast:
        b = OpenAIBackend("embedded", base_urls=[slow.url, fast.url], supports_logprobs=True, max_concurrency=2,
                          timeout=5.0, max_retries=2)
        out = b.generate(chats(24), 1, DEC, seed=0)
        assert answered(out, 24)
        assert len(fast.requests) > 2 * len(slow.requests) > 0
        counts = b.endpoint_usage()
        assert counts[slow.url]["requests"] == len(slow.requests) and counts[fast.url]["failures"] == 0
        table = "\n".join(usage_table(usage({"target": CachedBackend(b, None)})))
        assert f"| target | {fast.url} | {len(fast.requests)} | 0 |" in table


def test_a_dead_endpoint_is_taken_out_and_nothing_is_lost(tmp_path):
    """One endpoint never answers (its server is gone): requests move to the live one, the dead one is left out
    after DOWN_AFTER failures in a row, and each of the 16 questions gets exactly its own answer."""
    from evoprompt.llm.openai_backend import DOWN_AFTER

    dead = FaultServer()
    dead_url = dead.url
    dead.httpd.server_close()  # the port is closed: connections are refused
    with FaultServer() as live:
        b = OpenAIBackend("embedded", base_urls=[dead_url, live.url], supports_logprobs=True, max_concurrency=2,
                          timeout=2.0, max_retries=3, backoff=0.01, max_backoff=0.05)
        out = b.generate(chats(16), 1, DEC, seed=0)
        assert answered(out, 16)
        questions = [r["body"]["messages"][-1]["content"] for r in live.requests if "messages" in r["body"]]
        assert sorted(questions) == sorted(f"question {i}" for i in range(16))  # none twice, none lost
        counts = b.endpoint_usage()
        assert counts[dead_url]["failures"] == counts[dead_url]["requests"] >= DOWN_AFTER
        assert counts[dead_url]["taken_down"] == 1 and counts[dead_url]["requests"] <= DOWN_AFTER + 2


def test_an_endpoint_killed_mid_stage_loses_nothing():
    """Two endpoints; one is shut down after its first answers: the stage completes on the other."""
    a, c = FaultServer(always="slow", slow_s=0.2), FaultServer()
    with a, c:
        b = OpenAIBackend("embedded", base_urls=[a.url, c.url], supports_logprobs=True, max_concurrency=1,
                          timeout=2.0, max_retries=4, backoff=0.01, max_backoff=0.05)
        killer = threading.Timer(0.3, lambda: (a.httpd.shutdown(), a.httpd.server_close()))
        killer.start()
        out = b.generate(chats(12), 1, DEC, seed=0)
        killer.join()
        assert answered(out, 12)
        assert len(a.requests) >= 1 and b.endpoint_usage()[c.url]["requests"] >= 12 - len(a.requests)
