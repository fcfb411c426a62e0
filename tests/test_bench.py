"""`python -m evoprompt bench` end to end at a toy size (real model, real loop; the timing itself means nothing
here): the table's methods, bench.json's fields, and the last line the throughput check reads."""
import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_bench_writes_every_method_and_ends_with_the_best_line(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "evoprompt", "bench", "--lineages", "2", "--per-lineage", "3", "--K", "4",
                        "--K-min", "1", "--max-new-tokens", "6", "--reference-candidates", "2", "--skip-vllm",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    last = [l for l in r.stdout.splitlines() if l.strip()][-1]
    assert re.fullmatch(r"best speedup: [0-9.]+ \((hf|hf-race)\), selection agreement: [0-9.]+", last), last
    report = json.loads(out.read_text())
    res = report["results"]
    assert set(res) == {"reference", "hf", "hf-race"} and report["config"]["candidates"] == 6
    assert res["hf"]["selection_agreement"] == 1.0 and res["hf"]["samples_share"] == 1.0
    assert 0 < res["hf-race"]["samples_share"] <= 1.0 and 0 <= res["hf-race"]["selection_agreement"] <= 1.0
    assert report["best"]["method"] in last and report["config"]["hf_dtype"] == "float32"
