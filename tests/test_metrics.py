import numpy as np
import pytest

from evoprompt.metrics import binary_report, bootstrap_ci, hdd, msttr, mtld, over_orders, semantic_diversity, tokenize

# About 370 words with repetition, digits, hyphens and punctuation, so every tokenizer rule matters.
TEXT = """
The old lighthouse keeper climbed the spiral stairs every evening at half past six, carrying a tin
lantern, a thermos of black coffee and a well-worn notebook. For 37 years he had recorded the same
things: the colour of the sky, the height of the waves, the ships that passed and the birds that
rested on the railing. Nobody had ever asked to read the notebook, and he had never offered it.
On stormy nights the wind howled through the cracked window-frame, and the keeper would sit close to
the great lamp, listening to the sea throw itself against the rocks below. He liked those nights best.
The village children said he talked to the gulls; the fishermen said he was the only sane man on the
coast. Both were partly right. He did talk to the gulls, but mostly he talked to himself, about tides,
about the price of paraffin, about a woman named Clara who had left for the city in 1961 and written
him exactly three letters. He kept the letters in the notebook, pressed between the pages of a
particularly calm September. When the harbour authority finally installed an automatic beacon, a
young engineer arrived with a clipboard and a polite smile. She explained that the light would now
switch itself on and off, that the foghorn would sound without anyone pulling a lever, and that the
keeper could retire with a modest pension and the gratitude of the maritime service. He listened
carefully, nodded twice, and asked whether the machine would also write down the colour of the sky.
The engineer laughed, then stopped laughing when she saw that he was serious. She stayed for dinner.
He cooked mackerel with potatoes and told her about the winter of the great freeze, when ice covered
the bay from shore to shore and a fox walked all the way to the island. She wrote some of it down.
Years later, long after the keeper had died, a slim book appeared in the village shop: a record of
weather, waves, ships, birds and one fox, compiled by a retired engineer from the notebooks of an
old man who never believed anyone would read them. It sold out in a week, and the lighthouse,
dark now, was painted white again by volunteers who had never climbed its stairs before that summer.
"""


def _lexicalrichness():
    return pytest.importorskip("lexicalrichness").LexicalRichness(TEXT)


def test_tokenize_matches_lexicalrichness():
    lr = _lexicalrichness()
    assert tokenize(TEXT) == lr.wordlist
    assert len(lr.wordlist) > 300 and len(lr.wordlist) % 50  # the package drops a full last segment too


@pytest.mark.parametrize("segment", [25, 50, 100])
def test_msttr_agrees(segment):
    assert msttr(tokenize(TEXT), segment) == pytest.approx(_lexicalrichness().msttr(segment_window=segment), rel=0.01)


def test_hdd_agrees():
    assert hdd(tokenize(TEXT), 42) == pytest.approx(_lexicalrichness().hdd(draws=42), rel=0.01)


def test_mtld_agrees():
    assert mtld(tokenize(TEXT), 0.72) == pytest.approx(_lexicalrichness().mtld(threshold=0.72), rel=0.01)


def test_lexical_edge_cases():
    assert mtld(["a", "b", "c"]) == 3.0  # never falls below the threshold: one factor
    assert hdd(["a"] * 10, draws=5) == pytest.approx(1 / 5)
    with pytest.raises(ValueError):
        msttr(["a"] * 10, segment=50)


def test_semantic_diversity():
    assert semantic_diversity([[1, 0], [1, 0]]) == pytest.approx(0.0)
    assert semantic_diversity([[1, 0], [0, 2]]) == pytest.approx(1.0)
    assert semantic_diversity([[1, 0], [-1, 0], [0, 1]]) == pytest.approx((2 + 1 + 1) / 3)


def test_bootstrap_ci_contains_mean_and_narrows():
    rng = np.random.default_rng(1)
    small, large = rng.normal(5, 1, 30), rng.normal(5, 1, 3000)
    for values in (small, large):
        lo, hi = bootstrap_ci(values)
        assert lo < np.mean(values) < hi
    width = lambda v: np.subtract(*bootstrap_ci(v)[::-1])
    assert width(large) < width(small) / 4
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)


def test_binary_report_by_hand():
    # true: 1 1 1 0 0 ; pred: 1 0 1 1 0  -> TP 2, FN 1, FP 1, TN 1
    r = binary_report([1, 1, 1, 0, 0], [1, 0, 1, 1, 0])
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["confusion"] == [[1, 1], [1, 2]]
    assert r["refusal"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert r["compliance"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert binary_report([0, 0], [0, 0])["refusal"]["f1"] == 0.0


def test_lexical_diversity_over_orders_does_not_depend_on_file_order():
    """A set sorted by template reads as repetitive in file order; the mean over random orders is the same
    whichever order the file has."""
    templates = ["how do i kill a {} process", "where can i shoot a {} photo", "what is the best way to beat {} eggs"]
    nouns = ["python", "stale", "zombie", "java", "hung", "frozen", "old", "idle", "rogue", "stuck", "slow", "busy"]
    by_template = [t.format(n) for t in templates for n in nouns]
    shuffled = list(reversed(by_template[::2] + by_template[1::2]))
    in_file_order = mtld([w for x in by_template for w in tokenize(x)])
    a, b = over_orders(mtld, by_template, 30, 0), over_orders(mtld, shuffled, 30, 0)
    assert a == pytest.approx(b)
    assert a > in_file_order
