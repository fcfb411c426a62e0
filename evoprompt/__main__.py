"""`python -m evoprompt <command> [hydra overrides]` (also the `evoprompt` console script)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from evoprompt.presets import EXPERIMENTS, experiment_files

USAGE = """usage: python -m evoprompt <command> [key=value ...] [+experiment=NAME]

commands:
  run              evolve seeds into an over-refusal benchmark + SFT/DPO data
  eval             measure prompt sets on targets with the paper's metrics
  check            validate a configuration and this machine for it
  judge-train      train the embedding refusal classifier from labelled responses
  judge-calibrate  accuracy / precision / recall / F1 of a refusal judge on labelled responses
  gate-calibrate   accuracy / unsafe recall / AUROC / threshold of the harmlessness gate on labelled prompts
  align            LoRA-tune the target on SFT/DPO data (TRL), measure over-refusal and safety before/after
  export           publish a run: HF dataset with card, inspect_ai task, lm-eval task (run=DIR format=... out=DIR)
  explain          which words make the target refuse: per-word attributions, trigger lexicons, HTML
  build-guarded    rebuild the embedded-guarded target's safety LoRA from seeds/organism/ and print its profile
  bench            ELBO scoring throughput: reference loop vs HF batched vs vLLM (argparse flags: bench --help)

Overrides are hydra's: e.g. generations=2 seeds.limit=4 hydra.run.dir=out/r1; `--cfg job` prints the config."""

# command -> its primary config in evoprompt/conf; the module evoprompt.commands.<name> has main(cfg, run_dir)
COMMANDS = {"run": "config", "eval": "eval", "check": "config", "judge-train": "judge", "judge-calibrate": "judge",
            "gate-calibrate": "gate_calibrate", "export": "export", "align": "align",
            "build-guarded": "build_guarded", "explain": "explain"}


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _one_line(e: BaseException) -> str:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    cause = e.__cause__ or e.__context__
    extra = [l.strip() for l in str(cause).splitlines() if l.strip()][:1] if cause else []
    return "; ".join((lines[:1] + extra) or [type(e).__name__])


def precheck(command: str, config_name: str, args: list[str]) -> None:
    """Compose and validate the configuration before hydra starts the job, so a bad key, type or value is one
    line naming it (hydra's own messages span several lines) and nothing is created or loaded."""
    import re

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from evoprompt.errors import UserError

    for a in args:
        if a.startswith("hydra.run.dir="):
            d = Path(a.split("=", 1)[1]).expanduser()
            if d.exists() and not d.is_dir():
                fail(f"hydra.run.dir: {d} exists and is not a directory")
    overrides = [a for a in args if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")]
    with initialize_config_dir(str(Path(__file__).parent / "conf"), version_base=None):
        try:
            cfg = compose(config_name, overrides=overrides)
        except Exception as e:  # hydra reports composition problems with several exception types
            m = re.search(r"Could not override '([^']+)'", str(e))
            if not m:
                fail(_one_line(e))
            key = m.group(1)
            parent, _, leaf = key.rpartition(".")
            base = compose(config_name)
            node = OmegaConf.select(base, parent) if parent else base
            valid = ", ".join(map(str, node.keys())) if hasattr(node, "keys") else "none"
            fail(f"unknown key '{key}' ({leaf!r} is not a key of {parent or 'the config'}); valid: {valid}")
    from evoprompt.schema import validate

    try:
        validate(command, OmegaConf.to_container(cfg, resolve=True))
    except UserError as e:
        fail(str(e))


def register_configs(args: list[str]) -> None:
    """The commands' schemas (evoprompt/schema.py) as base configs, and the presets in experiments/ at the top
    level as the config group `experiment`."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from evoprompt.schema import register_schemas

    register_schemas()
    known = experiment_files()
    for a in args:
        name = a.lstrip("+~").split("=", 1)
        if name[0] == "experiment" and len(name) == 2 and name[1] not in known:
            fail(f"unknown experiment '{name[1]}'; valid: {', '.join(known) or 'none'} (files in {EXPERIMENTS})")
    cs = ConfigStore.instance()
    for name, path in known.items():
        cs.store(group="experiment", name=name, node=OmegaConf.load(path), package="_global_")


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command == "bench":  # a measurement with its own flags, not a hydra job
        from evoprompt.commands.bench import main as bench

        bench(rest)
        return
    if command not in COMMANDS:
        fail(f"unknown command '{command}'; valid: {', '.join([*COMMANDS, 'bench'])}")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    register_configs(rest)
    config_name = COMMANDS[command]
    if "--help" not in rest and "-h" not in rest:
        precheck(command, config_name, rest)

    import hydra
    from hydra.core.hydra_config import HydraConfig

    def task(cfg) -> None:
        import importlib

        from evoprompt.errors import UserError
        from evoprompt.llm import close_engines
        from evoprompt.llm.base import BackendError

        module = importlib.import_module(f"evoprompt.commands.{command.replace('-', '_')}")
        try:
            module.main(cfg, Path(HydraConfig.get().runtime.output_dir))
        except (UserError, BackendError) as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (run: from the last finished generation; "
                 "align: from the last checkpoint)")
        finally:
            close_engines()

    sys.argv = [f"evoprompt {command}"] + rest
    hydra.main(config_path="conf", config_name=config_name, version_base=None)(task)()


if __name__ == "__main__":
    main()
