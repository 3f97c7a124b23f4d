"""Charts drawn on the server as SVG (no script needed to see them): the coordinates are
computed here, `macros/charts.html` draws them, and every page shows the same numbers in a
table beside the chart. Pure functions of the numbers given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from souq.money import display

WIDTH = 640
HEIGHT = 280
# Room for the amount labels on the left and the day labels below.
LEFT, RIGHT, TOP, BOTTOM = 88, 16, 16, 40
# Colours told apart by people with the common colour-vision deficiencies (Okabe and Ito's
# palette), each line also dashed differently so none depends on colour alone.
PALETTE = (
    ("#0072b2", ""),
    ("#009e73", "8 4"),
    ("#d55e00", "2 3"),
    ("#cc79a7", "10 3 2 3"),
    ("#56b4e9", "4 2"),
)


@dataclass(frozen=True)
class Series:
    """One line: its name (the legend's and the table's column) and one value per day."""

    name: str
    values: Sequence[int]


@dataclass(frozen=True)
class Line:
    name: str
    colour: str
    dashes: str
    points: str  # the polyline's "x,y x,y …"
    dots: list[tuple[float, float, str]]  # each point with its amount, for a <title>


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    currency: str
    width: int
    height: int
    labels: list[tuple[float, str]]  # x and the day shown under it
    ticks: list[Tick]
    zero: float  # the y of the amount 0 (net can be below it)
    lines: list[Line]
    plot_left: int
    plot_right: int


def _round_step(span: int) -> int:
    """A step of 1, 2 or 5 times a power of ten giving about four gridlines over `span`."""
    raw = max(span / 4, 1)
    power = 1
    while power * 10 <= raw:
        power *= 10
    for factor in (1, 2, 5, 10):
        if power * factor >= raw:
            return power * factor
    return power * 10  # unreachable: factor 10 always covers raw


def line_chart(title: str, currency: str, days: Sequence[str], series: Sequence[Series]) -> Chart:
    """A line per series over the days (amounts in minor units of `currency`)."""
    values = [v for s in series for v in s.values]
    low = min([0, *values])
    high = max([0, *values])
    step = _round_step(high - low)
    low = (low // step) * step
    high = -(-high // step) * step or step
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(days) == 1 else plot_w * i / (len(days) - 1))

    def y(amount: int) -> float:
        return TOP + plot_h * (high - amount) / (high - low)

    # At most about eight day labels fit under the plot; the first and last always show.
    every = max(1, -(-len(days) // 8))
    labels = [
        (round(x(i), 1), day[5:])  # MM-DD: the table beside the chart has the full date
        for i, day in enumerate(days)
        if i % every == 0 or i == len(days) - 1
    ]
    ticks = [
        Tick(round(y(amount), 1), display(amount, currency))
        for amount in range(low, high + 1, step)
    ]
    lines = []
    for index, s in enumerate(series):
        colour, dashes = PALETTE[index % len(PALETTE)]
        dots = [
            (round(x(i), 1), round(y(v), 1), f"{days[i]}: {s.name} {display(v, currency)}")
            for i, v in enumerate(s.values)
        ]
        lines.append(
            Line(s.name, colour, dashes, " ".join(f"{px},{py}" for px, py, _ in dots), dots)
        )
    return Chart(
        title=title,
        currency=currency,
        width=WIDTH,
        height=HEIGHT,
        labels=labels,
        ticks=ticks,
        zero=round(y(0), 1),
        lines=lines,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
    )
