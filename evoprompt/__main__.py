"""`python -m evoprompt <command> [hydra overrides]` (also the `evoprompt` console script)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .presets import EXPERIMENTS, experiment_files

USAGE = """usage: python -m evoprompt <command> [key=value ...] [+experiment=NAME]

commands:
  run              evolve seeds into an over-refusal benchmark + SFT/DPO data
  eval             measure prompt sets on targets with the paper's metrics
  check            validate a configuration and this machine for it
  judge-train      train the embedding refusal classifier from labelled responses
  judge-calibrate  accuracy / precision / recall / F1 of a refusal judge on labelled responses

Overrides are hydra's: e.g. generations=2 seeds.limit=4 hydra.run.dir=out/r1; `--cfg job` prints the config."""

# command -> (primary config in evoprompt/conf, module:function taking (cfg, run_dir))
COMMANDS = {
    "run": ("config", "evoprompt.run:run"),
    "eval": ("eval", "evoprompt.evaluate:evaluate"),
    "check": ("config", "evoprompt.check:check"),
    "judge-train": ("judge", "evoprompt.judging:train"),
    "judge-calibrate": ("judge", "evoprompt.judging:calibrate"),
}


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def register_experiments(args: list[str]) -> None:
    """Presets live in experiments/ at the top level; hydra sees them as the config group `experiment`."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

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
    if command not in COMMANDS:
        fail(f"unknown command '{command}'; valid: {', '.join(COMMANDS)}")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    register_experiments(rest)
    config_name, target = COMMANDS[command]

    import hydra
    from hydra.core.hydra_config import HydraConfig

    def task(cfg) -> None:
        import importlib

        from .errors import UserError
        from .llm.base import BackendError

        module, fn = target.split(":")
        try:
            getattr(importlib.import_module(module), fn)(cfg, Path(HydraConfig.get().runtime.output_dir))
        except (UserError, BackendError) as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume from the last finished generation")

    sys.argv = [f"evoprompt {command}"] + rest
    hydra.main(config_path="conf", config_name=config_name, version_base=None)(task)()


if __name__ == "__main__":
    main()
