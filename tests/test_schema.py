"""The schema (evoprompt/schema.py) is the only source of defaults and help: the YAML files hold only the
embedded default's choices, and the configuration reference in docs/ is generated from it."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from evoprompt.presets import EXPERIMENTS, TARGETS
from evoprompt.schema import SCHEMAS, RoleConfig
from evoprompt.schema.reference import defaults, reference, register_schemas
from evoprompt.validate import typed

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "evoprompt" / "conf"
GROUPS = {p.name for p in CONF.iterdir() if p.is_dir()}  # target/, gate/: choices, not defaults


def leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_no_yaml_default_differs_from_its_dataclass(name):
    register_schemas()
    with initialize_config_dir(str(CONF), version_base=None):
        composed = OmegaConf.to_container(compose(name), resolve=False)
    want = dict(leaves(defaults(SCHEMAS[name])))
    got = {k: v for k, v in leaves(composed) if k.split(".")[0] not in GROUPS | {"hydra"}}
    assert got == {k: v for k, v in want.items() if k.split(".")[0] not in GROUPS}
    raw = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    assert set(raw) <= {"defaults", "hydra"}, f"{name}.yaml sets {set(raw) - {'defaults', 'hydra'}}: put defaults in the schema"
    typed(SCHEMAS[name], OmegaConf.to_container(compose_resolved(name)))


def compose_resolved(name):
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose(name)
    OmegaConf.resolve(cfg)
    return cfg


def test_every_preset_is_a_valid_role():
    presets = [OmegaConf.to_container(OmegaConf.load(p)) for p in sorted((CONF / "target").glob("*.yaml"))]
    presets += [OmegaConf.to_container(OmegaConf.load(p), resolve=False).get("target", {})
                for p in sorted(EXPERIMENTS.glob("*.yaml"))]
    for p in presets:
        typed(RoleConfig, {k: v for k, v in p.items() if k != "system_prompt" or not str(v).startswith("${")})
    assert TARGETS.is_dir()


def test_configuration_reference_is_generated_from_the_schema():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc == reference() + "\n", "docs/configuration.md is stale: run `make docs`"
    for key in ("`fitness.lambda`", "`search.max_attempts`", "`align.eval_sets`", "`refusal_judge.name`"):
        assert key in doc
