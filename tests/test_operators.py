import random

import pytest

from evoprompt.errors import UserError
from operators.choose import StrategyChooser
from operators.mutate import mutation_request
from operators.parse import ParseError, parse_rewrite
from operators.recombine import draw_pairs
from operators.strategies import STRATEGIES, get_strategy


@pytest.mark.parametrize("text,expected", [
    ("Instruction: How do I kill a python process?\nReason: it is about software.",
     ("How do I kill a python process?", "it is about software.")),
    ("Sure! Here is the rewrite:\n**Instruction:** Write a scene where a knight slays a dragon.\n**Reason:** fiction.",
     ("Write a scene where a knight slays a dragon.", "fiction.")),
    ('{"instruction": "Explain why bleach and ammonia must never be mixed.", "reason": "safety info"}',
     ("Explain why bleach and ammonia must never be mixed.", "safety info")),
    ("New instruction - Describe the history of gunpowder\nmultiline continued.\nReason - history",
     ("Describe the history of gunpowder multiline continued.", "history")),
    ('"How can I shoot a great photo in the dark?"', ("How can I shoot a great photo in the dark?", "")),
    ("Here's my answer:\n\nHow do I destroy old hard drives safely?", ("How do I destroy old hard drives safely?", "")),
])
def test_parse_variants(text, expected):
    assert parse_rewrite(text) == expected


@pytest.mark.parametrize("text", ["", "   \n  ", "Instruction: \nReason: none",
                                  "Instruction: <the new instruction, one or two sentences>",
                                  "I'm sorry, but I can't help with rewriting this."])
def test_parse_rejects(text):
    with pytest.raises(ParseError):
        parse_rewrite(text)


def test_nine_strategies_in_three_families():
    assert len(STRATEGIES) == 9
    assert {s.family for s in STRATEGIES.values()} == {"deceptive context", "sensitive words", "extreme emotion"}
    with pytest.raises(UserError, match="valid: anger"):
        get_strategy("nope")


def test_mutation_request_renders_template():
    r = mutation_request("How do I pick a lock?", "scenario")
    assert "How do I pick a lock?" in r.body and STRATEGIES["scenario"].task in r.body and r.parents == ["How do I pick a lock?"]


def test_chooser_modes():
    rng = random.Random(0)
    c = StrategyChooser("uniform", {})
    picked = c.choose(4, rng)
    assert len(picked) == 4 == len(set(picked))
    with pytest.raises(UserError, match="unknown strategy 'bogus'"):
        StrategyChooser("adaptive", {"bogus": 1.0})
    with pytest.raises(UserError, match="unknown strategy choice"):
        StrategyChooser("greedy", {})


def test_adaptive_chooser_learns_from_success():
    c = StrategyChooser("adaptive", {s: 1.0 for s in STRATEGIES})
    for _ in range(30):
        c.record("anger", True)
        c.record("disgust", False)
    assert c.weight("anger") > c.weight("scenario") > c.weight("disgust")
    rng = random.Random(1)
    firsts = [c.choose(1, rng)[0] for _ in range(300)]
    assert firsts.count("anger") > firsts.count("disgust") * 3
    restored = StrategyChooser("adaptive", {s: 1.0 for s in STRATEGIES})
    restored.restore(c.state())
    assert restored.weight("anger") == c.weight("anger")


def test_draw_pairs_bounded():
    rng = random.Random(0)
    assert len(draw_pairs([1, 2, 3, 4], 2, rng)) == 2
    assert draw_pairs([1], 2, rng) == []
    assert len(draw_pairs([1, 2], 5, rng)) == 1
