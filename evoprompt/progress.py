"""Live progress with rich: generation, stage, candidates scored, gate pass rate, acceptance rate, best
fitness, ETA; the per-generation table printed row by row above it, one summary line at the end."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evoprompt.faults import kill_point

LOG_WIDTH = 140


def make_console(stderr: bool = False, **kw) -> Console:
    """A rich console; written to a file or pipe (a log, CI) it is LOG_WIDTH wide, as rich would cut every
    table to 80 columns there."""
    c = Console(stderr=stderr, **kw)
    if not c.is_terminal:
        c.width = LOG_WIDTH
    return c


def in_chunks(console: Console, label: str, items: list, fn, size: int = 64) -> list:
    """fn(items) computed chunk by chunk behind a progress bar (eval's answers, explain's variants): the same
    results as one call where fn is per item, as the backends' samplers and caches are (seeded per row)."""
    out: list = []
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=len(items))
        for i in range(0, len(items), size):
            out += fn(items[i:i + size])
            bar.advance(task, len(items[i:i + size]))
    return out


class RunProgress:
    def __init__(self, generations: int, backends: dict, cache, console: Console | None = None):
        self.console = console or make_console(stderr=True)
        self.backends, self.cache = backends, cache
        self._last_calls = self._calls()
        self._progress = Progress(TextColumn("[bold]gen {task.completed}/{task.total}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(), TextColumn("[dim]{task.fields[stage]}"),
                                  console=self.console, transient=False)
        self._task = self._progress.add_task("run", total=generations, stats="", stage="")
        self.started = time.time()
        self._stage, self._stage_t0, self._stage_s = None, time.time(), {}
        self._rows = 0

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc):
        self._progress.stop()

    def _calls(self) -> dict:
        return {role: b.model_calls for role, b in self.backends.items()}

    def calls_since_last(self) -> dict:
        now = self._calls()
        delta = {role: now[role] - self._last_calls.get(role, 0) for role in now}
        self._last_calls = now
        return delta

    def generation(self, t: int, label: str) -> None:
        self._progress.update(self._task, completed=max(t - 1, 0), stage=f"{label}")

    def stage(self, text: str) -> None:
        kill_point(text)
        self._close_stage()
        self._stage, self._stage_t0 = text.split(":")[0], time.time()
        self._progress.update(self._task, stage=text)

    def _close_stage(self) -> None:
        if self._stage:
            self._stage_s[self._stage] = self._stage_s.get(self._stage, 0.0) + time.time() - self._stage_t0
        self._stage = None

    def seconds_since_last(self) -> dict:
        """Wall seconds per stage since the last call (a stage is the text before ':' in stage())."""
        self._close_stage()
        out, self._stage_s = {k: round(v, 1) for k, v in self._stage_s.items()}, {}
        return out

    def generation_done(self, r) -> None:
        """The progress line's figures, and the generation's row of the table printed above it (the table grows
        as the run goes; per-candidate decisions are in the log file and filtered.jsonl / rejected.jsonl)."""
        acc = f"acc {r.accepted}/{r.lineages}" if r.gen else "acc -"
        best = r.best_ever if r.best_ever is not None else r.population.max
        self._progress.update(self._task, completed=r.gen, stage="",
                              stats=f"scored {r.candidates} | filtered {r.filtered} | rejected {r.rejected} | "
                                    f"{acc} | elites {r.elites} | best {best:.3f} | p(refusal) {r.refusal_prob:.3f}")
        if not self._rows:
            self.console.print(_line(COLUMNS), style="bold")
        self._rows += 1
        self.console.print(_line(_cells(r)))

    def summary(self, cache_hits: int, cache_misses: int, counts: dict) -> None:
        outputs = ", ".join(f"{k} {v}" for k, v in counts.items())
        cache = f"cache {cache_hits} hits / {cache_misses} misses; " if cache_hits is not None else ""
        self.console.print(f"done in {time.time() - self.started:.0f} s; {cache}{outputs}")


COLUMNS = ("gen", "scored", "filtered", "rejected", "accepted", "elites", "mean F", "max F", "p(refusal)",
           "refusal rate", "model calls")


def _cells(r) -> list[str]:
    return [str(r.gen) + ("b" if r.mode == "breadth" else ""), str(r.candidates), str(r.filtered), str(r.rejected),
            f"{r.accepted}/{r.lineages}" if r.gen else "-", str(r.elites), f"{r.population.mean:.3f}",
            f"{r.population.max:.3f}", f"{r.refusal_prob:.3f}", f"{r.judge_refusal_rate:.2f}", str(sum(r.calls.values()))]


def _line(cells) -> str:
    return "  ".join(c.rjust(max(len(h), 5)) for c, h in zip(cells, COLUMNS))
