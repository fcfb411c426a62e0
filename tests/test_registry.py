"""One contract test over every registered entry: commands, backends, refusal judges, strategies. A new entry that
forgets a declaration fails here, not in a user's run."""
import importlib.util
import inspect
from dataclasses import fields

import pytest

from evoprompt.fitness.refusal import make_judge
from evoprompt.fitness.refusal.base import PARTS, JudgeParts
from evoprompt.llm.base import Capabilities
from evoprompt.operators.frame import FRAMINGS
from evoprompt.operators.mutate import EXAMPLES
from evoprompt.operators.strategies import STRATEGIES, priors
from evoprompt.registry import BACKENDS, COMMANDS, JUDGES, load
from evoprompt.schema.reference import register_schemas
from evoprompt.schema.sections import FitnessConfig, RoleConfig


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_declares_help_config_and_main(name):
    from pathlib import Path

    import evoprompt

    module = load(COMMANDS[name])
    assert isinstance(module.HELP, str) and module.HELP and "\n" not in module.HELP
    assert callable(module.main)
    if module.CONFIG is not None:  # a hydra job: its YAML exists and lists its schema first
        conf = Path(evoprompt.__file__).parent / "conf" / f"{module.CONFIG}.yaml"
        assert conf.is_file(), conf
        assert f"{module.CONFIG}_schema" in conf.read_text()
        assert len(inspect.signature(module.main).parameters) == 2


def test_the_usage_lists_every_command_once():
    from evoprompt.__main__ import usage

    text = usage()
    for name in COMMANDS:
        assert sum(line.split()[:1] == [name] for line in text.splitlines()) == 1, name


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_declares_its_capabilities(name):
    cls = load(BACKENDS[name])
    caps = cls.CAPABILITIES
    assert isinstance(caps, Capabilities) and cls.__doc__
    if caps.package:
        assert isinstance(caps.package, str) and "." not in caps.package
    if caps.wraps:
        assert caps.wraps in BACKENDS and caps.wraps != name
    assert name in RoleConfig.__dataclass_fields__["backend"].metadata.get("help", "") or \
        name in str(RoleConfig.__dataclass_fields__["backend"].metadata)


def test_check_derives_a_backend_need_from_its_capabilities():
    """The ray backend was skipped by check: it now gets the package check its class declares."""
    from evoprompt.commands.check import needs

    for name in BACKENDS:
        caps = load(BACKENDS[name]).CAPABILITIES
        found = needs(name, "no/such-model-anywhere", ["target"], {"base_url": None}, gpus=0)
        if caps.local_weights:
            assert any("no/such-model-anywhere" in p or "weights" in p for p in found), (name, found)
        if caps.package and not importlib.util.find_spec(caps.package):
            assert any(caps.package in p for p in found), (name, found)


@pytest.mark.parametrize("name", JUDGES)
def test_every_judge_declares_its_parts_and_is_built_one_way(name):
    cls = load(JUDGES[name])
    assert set(cls.NEEDS) <= set(PARTS) and callable(cls.from_parts)
    assert {f.name for f in fields(JudgeParts)} == set(PARTS)
    if not set(cls.NEEDS) & {"llm", "model", "embedder"}:  # built from nothing heavy: build it
        judge = make_judge(name, JudgeParts())
        assert len(judge.prob(["How do I bake bread?"], ["I'm sorry, I can't help with that."])) == 1


def test_the_judge_section_accepts_every_registered_judge_and_only_those():
    from evoprompt.errors import UserError
    from evoprompt.validate import typed

    for name in JUDGES:
        assert typed(FitnessConfig, {"judge": name}, "fitness").judge.name == name
        assert typed(FitnessConfig, {"judge": {"name": name}}, "fitness").judge.name == name
    with pytest.raises(UserError, match="fitness.judge.name.*valid: " + ", ".join(sorted(JUDGES))):
        typed(FitnessConfig, {"judge": "no-such-judge"}, "fitness")


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_file_declares_family_and_prior_and_has_examples(name):
    s = STRATEGIES[name]
    assert s.family and 0 < s.prior <= 1 and s.task
    assert (EXAMPLES / f"{name}.txt").is_file(), f"operators/examples/{name}.txt"
    assert FRAMINGS[name] or name == "trigger", f"operators/framings/{name}.txt"  # trigger edits marked words only
    assert priors()[name] == s.prior


def test_schemas_register_for_every_command_config():
    register_schemas()
    from hydra.core.config_store import ConfigStore

    repo = ConfigStore.instance().repo
    for name in COMMANDS:
        module = load(COMMANDS[name])
        if module.CONFIG is not None:
            assert f"{module.CONFIG}_schema.yaml" in repo, module.CONFIG
