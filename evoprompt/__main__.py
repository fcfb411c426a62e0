"""`python -m evoprompt <command> [hydra overrides]` (also the `evoprompt` console script)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from evoprompt.presets import EXPERIMENTS, experiment_files
from evoprompt.registry import COMMANDS, get

USAGE_HEAD = "usage: python -m evoprompt <command> [key=value ...] [+experiment=NAME]"
USAGE_TAIL = ("Overrides are hydra's: e.g. generations=2 seeds.limit=4 hydra.run.dir=out/r1; `--cfg job` prints the "
              "config.")


def command(name: str):
    """The command module registered under `name` (registry.COMMANDS): main, HELP, CONFIG."""
    return get("command", COMMANDS, name)


def usage() -> str:
    rows = [f"  {name:16} {command(name).HELP}" for name in COMMANDS]
    return "\n".join([USAGE_HEAD, "", "commands:", *rows, "", USAGE_TAIL])


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _one_line(e: BaseException) -> str:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    cause = e.__cause__ or e.__context__
    extra = [l.strip() for l in str(cause).splitlines() if l.strip()][:1] if cause else []
    extra = [x for x in extra if not lines or x.strip('"') not in lines[0]]
    return "; ".join((lines[:1] + extra) or [type(e).__name__])


def os_error(e: OSError) -> str:
    """An OSError as one line naming the path, and a full disk as such."""
    import errno

    where = f"{e.filename}: " if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"{where}no space left on the disk; free some and run the same command again (finished work is kept)"
    return f"{where}{e.strerror or e}"


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
    from omegaconf.errors import OmegaConfBaseException

    from evoprompt.validate import validate

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that does not resolve, e.g. ${oc.env:UNSET}
        key = getattr(e, "full_key", None)
        fail(f"{key + ': ' if key else ''}{_one_line(e)}")
    try:
        validate(command, plain)
    except UserError as e:
        fail(str(e))


def register_configs(args: list[str]) -> None:
    """The commands' schemas (evoprompt/schema/) as base configs, and the presets in experiments/ at the top
    level as the config group `experiment`."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from evoprompt.schema.reference import register_schemas

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
        print(usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        fail(f"unknown command '{name}'; valid: {', '.join(COMMANDS)}")
    module = command(name)
    if module.CONFIG is None:  # a measurement with its own flags, not a hydra job
        module.main(rest)
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    register_configs(rest)
    if "--help" not in rest and "-h" not in rest:
        precheck(name, module.CONFIG, rest)

    import hydra
    from hydra.core.hydra_config import HydraConfig

    def task(cfg) -> None:
        from evoprompt.errors import UserError
        from evoprompt.llm import close_engines
        from evoprompt.llm.base import BackendError
        from evoprompt.secrets import redact_files

        out = Path(HydraConfig.get().runtime.output_dir)
        redact_files(out / ".hydra")
        try:
            module.main(cfg, out)
        except (UserError, BackendError) as e:
            fail(str(e))
        except OSError as e:  # a read-only folder, a full disk, a path that is a file: the OS's one line
            fail(os_error(e))
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (run: from the last finished generation; "
                 "align: from the last checkpoint)")
        finally:
            close_engines()

    sys.argv = [f"evoprompt {name}"] + rest
    hydra.main(config_path="conf", config_name=module.CONFIG, version_base=None)(task)()


if __name__ == "__main__":
    main()
