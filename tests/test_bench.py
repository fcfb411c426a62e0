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
                        "--K-min", "1", "--max-new-tokens", "6", "--reference-candidates", "2", "--skip-vllm", "--skip-fanout", "--skip-ray",
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


@pytest.mark.slow
@pytest.mark.vllm
def test_bench_fanout_over_one_and_two_vllm_servers(tmp_path):
    """(d) and (e): two real vLLM servers on 127.0.0.1; the same candidates get the same fitness either way,
    both servers take requests, and the driver's overhead is reported. (f): a Ray pool of two engines."""
    pytest.importorskip("vllm")
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "evoprompt", "bench", "--lineages", "2", "--per-lineage", "2", "--K", "2",
                        "--K-min", "1", "--max-new-tokens", "6", "--reference-candidates", "1", "--skip-vllm",
                        "--concurrency", "2", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(out.read_text())
    assert "fanout_error" not in report, report.get("fanout_error")
    one, two = report["results"]["server-1"], report["results"]["server-2"]
    assert one["mean_fitness"] == two["mean_fitness"]  # sample j of a prompt does not depend on the server
    assert all(e["requests"] > 0 and e["failures"] == 0 for e in two["endpoints"].values()) and len(two["endpoints"]) == 2
    f = report["fanout"]
    assert f["ratio"] > 0 and 0 < f["driver_share"]["server-2"] < 1 and f["driver_ms_per_request"]["server-1"] > 0
    assert "fan-out: two servers / one = " in r.stdout
    pool = report["results"]["ray-2"]  # (f): two engines as actors of a local Ray cluster
    assert "ray_error" not in report, report.get("ray_error")
    assert pool["pool"]["actors"] == 2 and pool["pool"]["resent"] == 0 and pool["pool"]["shards"] >= 2
    assert f["ray_ratio"] > 0 and 0 < f["driver_share"]["ray-2"] < 1
    assert "fan-out: Ray pool of two / one engine = " in r.stdout
