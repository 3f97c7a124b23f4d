"""Charts drawn on the server as SVG (no script needed to see them): the coordinates are
computed here, `macros/charts.html` draws them, and every page shows the same numbers in a
table beside the chart. Pure functions of the numbers given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from souq.money import display

WIDTH = 560
HEIGHT = 300
# Room for the amount labels on the left and the day labels below.
LEFT, RIGHT, TOP, BOTTOM = 84, 8, 12, 36
# Colours of Okabe and Ito's palette (told apart with the common colour-vision deficiencies),
# darkened to a 3:1 contrast on white; the bars of a day are always in the legend's order.
PALETTE = ("#0072b2", "#007a5a", "#b34700", "#a2457e", "#5a6b00")
WIDEST_BAR = 28


@dataclass(frozen=True)
class Series:
    """One kind of amount: its name (the legend's and the table's column), one value per day."""

    name: str
    values: Sequence[int]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    text: str  # the day, the series and the amount, for the bar's <title>


@dataclass(frozen=True)
class Group:
    name: str
    colour: str
    bars: list[Bar]


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    labels: list[tuple[float, str]]  # x and the day shown under it
    ticks: list[Tick]
    zero: float  # the y of the amount 0 (net can be below it)
    series: list[Group]
    plot_left: int
    plot_right: int


def _round_step(span: int) -> int:
    """A step of 1, 2 or 5 times a power of ten giving about four gridlines over `span`."""
    raw = max(span / 4, 1)
    power = 1
    while power * 10 <= raw:
        power *= 10
    for factor in (1, 2, 5):
        if power * factor >= raw:
            return power * factor
    return power * 10


def bar_chart(title: str, currency: str, days: Sequence[str], series: Sequence[Series]) -> Chart:
    """Bars per day, one per series, from the zero line (amounts in minor units of
    `currency`; a negative one hangs below the line)."""
    values = [v for s in series for v in s.values]
    step = _round_step(max([0, *values]) - min([0, *values]))
    low = (min([0, *values]) // step) * step
    high = -(-max([0, *values]) // step) * step or step
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = min(slot * 0.8 / max(len(series), 1), WIDEST_BAR)

    def y(amount: int) -> float:
        return TOP + plot_h * (high - amount) / (high - low)

    def centre(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    zero = y(0)
    groups = []
    for index, s in enumerate(series):
        bars = []
        for i, value in enumerate(s.values):
            left = centre(i) - bar_w * len(series) / 2 + bar_w * index
            top = min(y(value), zero)
            bars.append(
                Bar(
                    round(left, 1),
                    round(top, 1),
                    round(bar_w - 1, 1),
                    # A zero amount still shows as a hairline on the axis.
                    max(round(abs(y(value) - zero), 1), 1),
                    f"{days[i]}: {s.name} {display(value, currency)}",
                )
            )
        groups.append(Group(s.name, PALETTE[index % len(PALETTE)], bars))
    # About eight day labels fit under the plot; the first and last always show.
    every = max(1, -(-len(days) // 8))
    labels = [
        (round(centre(i), 1), day[5:])  # MM-DD: the table beside the chart has the full day
        for i, day in enumerate(days)
        if i % every == 0 or i == len(days) - 1
    ]
    ticks = [Tick(round(y(a), 1), display(a, currency)) for a in range(low, high + 1, step)]
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        labels=labels,
        ticks=ticks,
        zero=round(zero, 1),
        series=groups,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
    )
