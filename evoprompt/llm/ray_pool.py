"""Backend `ray`: a pool of long-lived vLLM engines, one per Ray actor (one per GPU, or per CPU slot), for a
split of hundreds of seeds against targets that need many GPUs. `pip install evoprompt[ray]`.

The loop already makes one batched call per role per stage; this backend cuts that call's chats into one
contiguous shard per live actor and sends each shard as one request, never one candidate per call, and the
engines live for the whole run (never rebuilt per generation). The driver keeps the GA, the archive and the
call cache. Sample j of a chat depends only on (chat, seed, j) in vLLM, so how the batch is sharded does not
change any sample. When an actor dies (its engine crashed, its node left), its shard is re-sent to a live actor,
at most `max_resends` times per call, and the run goes on with the survivors; `pool_usage` counts shards,
re-sends and lost actors.

It joins a running cluster (`address`, e.g. "auto" or "ray://head:10001") or starts a local one with the
machine's CPUs. On GPUs each actor asks for one GPU (`gpus_per_actor`); on a CPU for `cpus_per_actor` cores."""
from __future__ import annotations

from collections.abc import Sequence

from evoprompt.llm.base import BackendError, Capabilities, Chat, Decoding, Sample


class _Engine:
    """One actor's vLLM engine (the project's VLLMBackend), loaded once in the actor's process."""

    def __init__(self, model: str, engine: dict):
        from evoprompt.llm.vllm_backend import VLLMBackend

        self.backend = VLLMBackend(model, **engine)

    def info(self) -> dict:
        import os

        return {"model_id": self.backend.model_id, "precision": self.backend.precision, "pid": os.getpid()}

    def generate(self, chats, n, decoding, seed, first):
        return self.backend.generate(chats, n, decoding, seed, first)

    def score(self, chats, responses):
        return self.backend.score(chats, responses)


class RayPoolBackend:
    """a pool of vLLM engines as Ray actors (one machine or a cluster), each call sharded over them."""

    CAPABILITIES = Capabilities(package="ray", gpu_for_large_models=True, plans_gpu_memory=True, wraps="vllm")
    supports_logprobs = True

    def __init__(self, model: str, actors: int | None = None, address: str | None = None, cpus_per_actor: float = 1,
                 gpus_per_actor: float | None = None, max_resends: int = 3, **engine):
        try:
            import ray
        except ImportError:
            raise BackendError("the ray backend needs Ray: pip install 'evoprompt[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False) if address else \
                ray.init(include_dashboard=False, log_to_driver=False)
        gpus = gpus_per_actor if gpus_per_actor is not None else (1 if ray.cluster_resources().get("GPU") else 0)
        per = ray.cluster_resources().get("GPU", 0) / gpus if gpus else ray.cluster_resources().get("CPU", 1) / cpus_per_actor
        n = int(actors or max(1, per))
        remote = ray.remote(num_cpus=cpus_per_actor, num_gpus=gpus, max_restarts=0)(_Engine)
        self.actors = [remote.remote(model, engine) for _ in range(n)]
        try:
            infos = ray.get([a.info.remote() for a in self.actors])
        except Exception as e:
            raise BackendError(f"ray pool: an engine failed to load '{model}': {str(e).strip().splitlines()[-1]}") from None
        self.model_id, self.precision = infos[0]["model_id"], infos[0]["precision"]
        self.pids = [i["pid"] for i in infos]
        self.max_resends = max_resends
        self.usage = {"actors": n, "shards": 0, "resent": 0, "lost_actors": 0}

    def pool_usage(self) -> dict:
        return {**self.usage, "live_actors": len(self.actors)}

    def _fan(self, method: str, items: list, *args) -> list:
        """items cut into one contiguous shard per live actor; results in input order; dead actors' shards re-sent."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        if not items:
            return []
        def send(actor, shard):  # score's items are (chat, response) pairs
            call = getattr(actor, method).remote
            return call(*map(list, zip(*shard))) if method == "score" else call(shard, *args)

        k = max(1, min(len(self.actors), len(items)))
        bounds = [len(items) * i // k for i in range(k + 1)]
        shards = [items[bounds[i]:bounds[i + 1]] for i in range(k)]
        pending = {send(a, s): (i, a) for i, (s, a) in enumerate(zip(shards, self.actors))}
        self.usage["shards"] += len(pending)
        results, resends = {}, 0
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            ref = done[0]
            i, actor = pending.pop(ref)
            try:
                results[i] = self.ray.get(ref)
            except (RayActorError, ActorDiedError, ActorUnavailableError):
                if actor in self.actors:
                    self.actors.remove(actor)
                    self.usage["lost_actors"] += 1
                resends += 1
                if not self.actors:
                    raise BackendError(f"ray pool: {self.usage['lost_actors']} engine(s) lost and no live one left "
                                       f"for a shard of {len(shards[i])} (re-sent {resends - 1} times)") from None
                if resends > self.max_resends:
                    raise BackendError(f"ray pool: shards were re-sent {self.max_resends} times in one call "
                                       f"(max_resends), {self.usage['lost_actors']} engine(s) lost, "
                                       f"{len(self.actors)} still live") from None
                live = self.actors[i % len(self.actors)]
                pending[send(live, shards[i])] = (i, live)
                self.usage["resent"] += 1
        return [x for i in range(k) for x in results[i]]

    def generate(self, chats: Sequence[Chat], n: int, decoding: Decoding, seed: int, first: int = 0) -> list[list[Sample]]:
        return self._fan("generate", list(chats), n, decoding, seed, first)

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[Sample]:
        return self._fan("score", list(zip(chats, responses)))
