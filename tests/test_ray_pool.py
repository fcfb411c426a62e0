"""The Ray pool's re-send logic, with a stand-in for Ray's wait/get (the real pool runs in test_rehearsal)."""
import itertools

import pytest

from evoprompt.llm.base import BackendError, Decoding
from evoprompt.llm.ray_pool import RayPoolBackend

exceptions = pytest.importorskip("ray.exceptions")


class Actor:
    def __init__(self, name, dead):
        self.name, self.dead = name, dead
        self.generate = self  # actor.generate.remote(...)

    def remote(self, shard, *args):
        return Ref(self, next(Ref.count), shard)


class Ref:
    count = itertools.count()

    def __init__(self, actor, n, shard):
        self.actor, self.n, self.shard = actor, n, shard


class FakeRay:
    """wait returns the oldest pending ref; get raises for a dead actor's ref, else echoes its shard."""

    def wait(self, refs, num_returns):
        return sorted(refs, key=lambda r: r.n)[:1], []

    def get(self, ref):
        if ref.actor.dead:
            raise exceptions.RayActorError()
        return [[f"{ref.actor.name}:{x}"] for x in ref.shard]


def pool(dead, max_resends):
    p = object.__new__(RayPoolBackend)
    p.ray, p.max_resends = FakeRay(), max_resends
    p.actors = [Actor(f"a{i}", d) for i, d in enumerate(dead)]
    p.usage = {"actors": len(dead), "shards": 0, "resent": 0, "lost_actors": 0}
    return p


def test_a_dead_actors_shard_goes_to_a_live_one_in_order():
    p = pool([True, False], max_resends=3)
    out = p.generate(["x", "y", "z", "w"], 1, Decoding(0.0, 1.0, 4), 0)
    assert out == [["a1:x"], ["a1:y"], ["a1:z"], ["a1:w"]]
    assert p.pool_usage() == {"actors": 2, "shards": 2, "resent": 1, "lost_actors": 1, "live_actors": 1}


def test_errors_say_whether_no_actor_is_left_or_the_resend_limit_was_hit():
    with pytest.raises(BackendError, match="2 engine\\(s\\) lost and no live one left"):
        pool([True, True], max_resends=3).generate(["x", "y"], 1, Decoding(0.0, 1.0, 4), 0)
    with pytest.raises(BackendError, match="re-sent 0 times in one call \\(max_resends\\), 1 engine\\(s\\) lost, "
                                           "1 still live"):
        pool([True, False], max_resends=0).generate(["x", "y"], 1, Decoding(0.0, 1.0, 4), 0)
