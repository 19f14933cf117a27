"""How a long run shows it is alive: a progress bar on a terminal, a line now and then off one.

Owns: :class:`Progress` (virtual day, devices, sessions, pushes; a tqdm bar, or a line on the
stream every few wall seconds, or nothing) and how its figures read in a line.
Must not: drive the run (``runner.ScenarioRun`` ticks it on the run's clock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

from emulator.clock import DAY, HOUR, wall_seconds

if TYPE_CHECKING:
    from emulator.runner import World


def shown_figures(figures: dict[str, int]) -> str:
    """``{"devices": 3, "sessions": 9}`` as a progress line shows it: "3 devices, 9 sessions"."""
    return ", ".join(f"{v} {k}" for k, v in figures.items())


class Progress:
    """How a long run shows it is alive: on a terminal a bar (virtual day, devices, sessions,
    pushes); off one a line on the stream every ``every_s`` wall seconds; or nothing."""

    def __init__(self, world: World, mode: str | None, stream: TextIO, every_s: float) -> None:
        self.world = world
        self.mode = mode  # "bar" | "lines" | None
        self.stream = stream
        self.every_s = every_s
        self.days = max(1, world.scenario.duration_ms // DAY)
        self.bar = tqdm(
            total=self.days,
            unit="day",
            file=stream,
            disable=mode != "bar",
            dynamic_ncols=True,
        )
        self.start = world.clock.now()
        self.shown = 0
        self.last_line = wall_seconds()
        self.closed = False

    def figures(self) -> dict[str, int]:
        """The summary's own figures: devices, sessions started, pushes sent."""
        w = self.world
        return {
            "devices": len(w.fleet.devices),
            "sessions": w.fleet.events.counts.get("session.start", 0),
            "pushes": w.wns.service.notifications_served,
        }

    def tick(self) -> None:
        w = self.world
        day = self.day()
        if self.mode == "bar":
            if day > self.shown:
                self.bar.update(day - self.shown)
                self.shown = day
            self.bar.set_postfix(ordered_dict=dict(self.figures()), refresh=False)
        elif wall_seconds() - self.last_line >= self.every_s:
            self.line(f"day {day}/{self.days}")
        if w.clock.now() < self.start + w.scenario.duration_ms:
            w.clock.call_later(HOUR, self.tick)

    def day(self) -> int:
        return (self.world.clock.now() - self.start) // DAY

    def line(self, where: str) -> None:
        self.last_line = wall_seconds()
        print(f"dmemu: {where}: {shown_figures(self.figures())}", file=self.stream, flush=True)

    def close(self, complete: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.bar.close()
        if self.mode == "lines":
            day = (self.world.clock.now() - self.start) / DAY
            self.line(f"{'done' if complete else 'stopped'} at day {day:.1f}/{self.days}")
