import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# float32 on every CPU, bf16 hardware or not (hf.auto_dtype), so outcomes the tests check do not move with the machine
os.environ["EVOPROMPT_CPU_BF16"] = "0"
# public prompt sets (data:xstest, ...) come from $EVOPROMPT_DATA: unless set, the development copy beside the checkout
if SHARED_DATA.is_dir():
    os.environ.setdefault("EVOPROMPT_DATA", str(SHARED_DATA))
# a small but complete run: every stage (the rewriter's too, which the embedded default leaves off), every output,
# seconds per generation on 2 cores
SMALL_RUN = ["seeds.limit=2", "fitness.K=4", "search.L=2", "search.N=1", "search.llm_share=0.5",
             "target.decoding.max_new_tokens=24", "rewriter.decoding.max_new_tokens=64",
             "helper.decoding.max_new_tokens=40", "export.per_lineage=4"]


@contextlib.contextmanager
def review_page(path: Path, reviewer: str):
    """A page in review mode (report.html, explain.html) in the system Chromium driven by Playwright, the reviewer
    named and the focus back on the page: yields (page, page errors). Skips without Playwright or Chromium."""
    playwright = pytest.importorskip("playwright.sync_api")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if chrome is None:
        pytest.skip("no chromium (make setup installs it where apt-get works)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chrome, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.fill("#reviewer", reviewer)
        page.keyboard.press("Enter")
        yield page, errors
        browser.close()


def evoprompt(*args, timeout=900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evoprompt", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


@pytest.fixture(scope="session")
def smol():
    from evoprompt.llm.hf import HFBackend

    return HFBackend("embedded", batch_size=16)
