"""Bar charts drawn on the server as SVG (no script needed to see them): the geometry here,
the drawing in templates/macros/charts.html. Pages show the numbers as a table beside each
chart, so the chart itself only has to be readable, not the only way to the data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH = 640
HEIGHT = 260
LEFT = 72  # room for the amounts on the y axis
BOTTOM = 40  # room for the day labels
TOP = 12
GRIDLINES = 4


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    colour: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    legend: list[Series]


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], fmt: Callable[[int], str]
) -> BarChart:
    """Grouped bars: one group per label (a day), one bar per series; negative values go
    below the zero line. `fmt` writes an amount (minor units) for the axis and the titles."""
    values = [v for s in series for v in s.values]
    high, low = max([0, *values]), min([0, *values])
    span = (high - low) or 1
    plot = HEIGHT - TOP - BOTTOM

    def y_of(value: int) -> float:
        return TOP + (high - value) / span * plot

    group = (WIDTH - LEFT) / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    bars = [
        Bar(
            x=LEFT + i * group + group * 0.1 + k * bar,
            y=min(y_of(value), y_of(0)),
            width=bar,
            height=max(abs(y_of(value) - y_of(0)), 1.0),
            colour=s.colour,
            title=f"{labels[i]}, {s.name}: {fmt(value)}",
        )
        for k, s in enumerate(series)
        for i, value in enumerate(s.values)
    ]
    ticks = [
        Tick(y_of(round(low + span * n / GRIDLINES)), fmt(round(low + span * n / GRIDLINES)))
        for n in range(GRIDLINES + 1)
    ]
    # At most about eight day labels, whatever the number of days.
    every = max(1, -(-len(labels) // 8))
    shown = [
        Label(LEFT + i * group + group / 2, text) for i, text in enumerate(labels) if i % every == 0
    ]
    return BarChart(WIDTH, HEIGHT, LEFT, y_of(0), bars, ticks, shown, list(series))
