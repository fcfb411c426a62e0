"""The one place a command gets its models and judges (as inspect_ai's `get_model(role=, memoize=True)`).

A command builds one `Roles` from its typed config and asks it for what it needs by role: a backend (counted,
behind the call cache), the embedder, a refusal judge, the harmlessness gate, the targets, the seeds. Each is
built once per `Roles` and memoised, so two stages asking for the gate share one; engines are shared further
between roles that name the same model (llm.get_backend). No command imports another command."""
from __future__ import annotations

from evoprompt.fitness.diversity import Embedder
from evoprompt.fitness.gate import HarmlessnessGate
from evoprompt.fitness.refusal import Calibrated, judge_class, load_calibration, make_judge
from evoprompt.fitness.refusal.base import JudgeParts, RefusalJudge
from evoprompt.fitness.scorer import Target
from evoprompt.llm import Decoding, get_backend
from evoprompt.llm.cache import CachedBackend, CallCache
from evoprompt.llm.embedded import cache_root
from evoprompt.presets import target_preset
from evoprompt.schema import CacheConfig, EmbedderConfig, GateConfig, RefusalJudgeConfig, RoleConfig, SeedsConfig
from evoprompt.validate import typed


def decoding(role: RoleConfig, stop: tuple[str, ...] = ()) -> Decoding:
    d = role.decoding
    return Decoding(d.temperature, d.top_p, d.max_new_tokens, stop)


def open_cache(cfg: CacheConfig) -> CallCache | None:
    if not cfg.enabled:
        return None
    return CallCache(cfg.path or cache_root() / "calls.sqlite")


def load_seeds(cfg: SeedsConfig):
    from evoprompt.seeds import load_seeds as load

    return load(cfg.path, cfg.format, cfg.text_column, cfg.limit, cfg.split, cfg.set)


class Roles:
    def __init__(self, cache: CacheConfig, embedder: EmbedderConfig | None = None):
        self.cache = open_cache(cache)
        self._embedder_cfg = embedder
        self._made: dict[tuple, object] = {}
        self.backends: dict[str, CachedBackend] = {}  # role name -> backend, in the order they were asked for

    def _once(self, key: tuple, build):
        if key not in self._made:
            self._made[key] = build()
        return self._made[key]

    def backend(self, name: str, role: RoleConfig) -> CachedBackend:
        """The role's backend, counting its usage (run.json, report), behind the call cache if it is on."""
        if name not in self.backends:
            self.backends[name] = CachedBackend(get_backend(role.backend_config()), self.cache)
        return self.backends[name]

    def embedder(self) -> Embedder:
        e = self._embedder_cfg or EmbedderConfig()
        return self._once(("embedder", e.model, e.device), lambda: Embedder(e.model, e.device))

    def judge(self, j: RefusalJudgeConfig, llm: CachedBackend | None = None) -> RefusalJudge:
        """The refusal judge a config section describes, built from the parts its class needs: the embedder, and
        for the llm judge a backend (`j.model`, a target preset, else `llm`: the command's own default). With a
        calibration (a judge_calibration.json set on a target's own labelled answers) the judge uses its threshold."""
        needs = judge_class(j.name).NEEDS
        key = ("judge", j.name, j.model, j.calibration, tuple(j.phrases or ()), id(llm) if "llm" in needs else None)

        def build():
            backend = llm
            if "llm" in needs and j.model:
                backend = self.backend("refusal judge", typed(RoleConfig, target_preset(j.model), "refusal judge model"))
            parts = JudgeParts(phrases=j.phrases, embedder=self.embedder() if "embedder" in needs else None,
                               llm=backend, model=None if "llm" in needs else j.model)
            judge = make_judge(j.name, parts)
            return Calibrated(judge, load_calibration(j.calibration, j.name)["threshold"], j.calibration) \
                if j.calibration else judge

        return self._once(key, build)

    def gate(self, g: GateConfig) -> HarmlessnessGate:
        backend = self.backend("gate", g)
        return self._once(("gate",), lambda: HarmlessnessGate(backend, g.mode, g.threshold, g.prompt, g.blocklist,
                                                             decoding(g)))

    def targets(self, pool: list[tuple[str, RoleConfig]], roles: list[str]) -> list[Target]:
        """One Target per (name, role) of a pool, its backend under the role name given in `roles`."""
        return [Target(name, self.backend(role_name, r), decoding(r), r.system_prompt)
                for (name, r), role_name in zip(pool, roles)]

    @property
    def calls(self) -> tuple[int, int]:
        """Cache hits and misses so far (0, 0 without a cache)."""
        return (self.cache.hits, self.cache.misses) if self.cache else (0, 0)
