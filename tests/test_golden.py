"""The refactor contract: the same seed gives the same items, pairs and per-generation table as the run
captured in tests/data/golden_run.json before the typed-records / roles / schema change (float32, own cache)."""
import json

import golden
import pytest

pytestmark = pytest.mark.slow


def test_same_seed_same_items_pairs_and_table(tmp_path):
    r = golden.run(tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = golden.summary(tmp_path / "run"), json.loads(golden.GOLDEN.read_text(encoding="utf-8"))
    assert want["items"] and want["dpo"], "the golden run exports items and pairs"
    for key in ("table", "items", "sft", "dpo"):
        assert got[key] == want[key], key
