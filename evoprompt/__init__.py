"""evoprompt: evolve harmless instructions that make safety-aligned chat models refuse (EvoRefuse).

One namespace: `evoprompt.operators`, `evoprompt.fitness`, `evoprompt.seeds` and `evoprompt.experiments`
live in the top-level folders the design card fixes (operators/, fitness/, seeds/, experiments/); a wheel
installs them inside this package (pyproject's package-dir), and in a source checkout this package's
search path reaches the folders beside it, so the same imports work in both."""
from pathlib import Path as _Path

__version__ = "0.2.0"

_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "fitness" / "__init__.py").is_file():
    __path__.append(str(_checkout))
