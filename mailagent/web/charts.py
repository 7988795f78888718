"""Line and stacked bar charts as inline SVG, drawn on the server: no JavaScript, nothing to
download. Every text in the drawing is escaped here; colours come from the stylesheet (classes
`series-N`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mailagent.store.metrics import Unit, show

WIDTH, HEIGHT = 520, 210
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 12, 30


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]          # one per label; None: no data that period


def nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts `span` into about `ticks` parts."""
    raw = span / ticks if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


DURATIONS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def scale_top(values: Sequence[float], unit: Unit) -> tuple[float, float]:
    """The top of the y axis and the tick step (durations step in minutes, hours, days)."""
    if unit == "rate":
        return 1.0, 0.25
    top = max(values, default=0.0)
    step = nice_step(top)
    if unit == "seconds":
        step = next((d for d in DURATIONS if d >= top / 4), step)
    return max(step, math.ceil(top / step) * step), step


class _Frame:
    """The axes of a chart: a y scale from 0 to a round top, one slot per label."""

    def __init__(self, title: str, labels: Sequence[str], values: Sequence[float], unit: Unit, *,
                 bars: bool = False) -> None:
        self.top, step = scale_top(values, unit)
        self.plot_w, self.plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.n, self.bars = len(labels), bars
        self.parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">']
        for k in range(round(self.top / step) + 1):
            v = step * k
            self.parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{self.y(v):.1f}" '
                              f'y2="{self.y(v):.1f}"/>')
            self.parts.append(f'<text class="tick" x="{LEFT - 6}" y="{self.y(v) + 4:.1f}" text-anchor="end">'
                              f'{escape(show(v, unit, ""))}</text>')
        every = max(1, math.ceil(self.n / 7))
        for i, label in enumerate(labels):
            if (i % every == 0 and self.n - 1 - i >= every) or i == self.n - 1:    # the newest always, never crowded
                self.parts.append(f'<text class="tick" x="{self.x(i):.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
                                  f'{escape(_short(label))}</text>')

    def slot(self) -> float:
        return self.plot_w / max(self.n, 1)

    def x(self, i: int) -> float:
        if self.bars:
            return LEFT + self.slot() * (i + 0.5)
        return LEFT + (self.plot_w * i / (self.n - 1) if self.n > 1 else self.plot_w / 2)

    def y(self, v: float) -> float:
        return TOP + self.plot_h * (1 - v / self.top)

    def done(self, empty: bool) -> Markup:
        if empty:
            self.parts.append(f'<text class="empty" x="{LEFT + self.plot_w / 2:.1f}" y="{TOP + self.plot_h / 2:.1f}" '
                              'text-anchor="middle">no data yet</text>')
        self.parts.append("</svg>")
        return Markup("".join(self.parts))


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: Unit, currency: str = "",
               marks: Sequence[str] = ()) -> Markup:
    """A line per series. `marks`: a CSS class per label for the first series' points (a run's
    gate verdict, say), so one chart tells the score and whether it passed."""
    known = [v for s in series for v in s.values if v is not None]
    frame = _Frame(title, labels, known, unit)
    for index, s in enumerate(series):
        frame.parts.append(f'<g class="series series-{index}">')
        for segment in _segments(s.values):
            if len(segment) > 1:
                points = " ".join(f"{frame.x(i):.1f},{frame.y(v):.1f}" for i, v in segment)
                frame.parts.append(f'<polyline points="{points}"/>')
        for i, v in enumerate(s.values):
            if v is not None:
                tip = f"{s.name}, {labels[i]}: {show(v, unit, currency)}"
                mark = f' class="{escape(marks[i])}"' if index == 0 and i < len(marks) else ""
                frame.parts.append(f'<circle{mark} cx="{frame.x(i):.1f}" cy="{frame.y(v):.1f}" r="3">'
                                   f'<title>{escape(tip)}</title></circle>')
        frame.parts.append("</g>")
    return frame.done(not known)


def bar_chart(title: str, labels: Sequence[str], stacks: Sequence[Series], unit: Unit) -> Markup:
    """Stacked bars, one per label: the series are the layers, bottom first."""
    totals = [sum(s.values[i] or 0.0 for s in stacks) for i in range(len(labels))]
    frame = _Frame(title, labels, totals, unit, bars=True)
    width = min(28.0, frame.slot() * 0.7)
    base = [0.0] * len(labels)
    for index, s in enumerate(stacks):
        frame.parts.append(f'<g class="series series-{index}">')
        for i, v in enumerate(s.values):
            if v:
                top = frame.y(base[i] + v)
                tip = f"{s.name}, {labels[i]}: {show(v, unit)}"
                frame.parts.append(f'<rect x="{frame.x(i) - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}" '
                                   f'height="{frame.y(base[i]) - top:.1f}"><title>{escape(tip)}</title></rect>')
                base[i] += v
        frame.parts.append("</g>")
    return frame.done(not any(totals))


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive periods with data: a gap in the data is a gap in the line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, v))
    return [r for r in runs if r]


def _short(label: str) -> str:
    """2026-11-22 -> 11-22; weeks stay 2026-W47 -> W47; other labels (runs: #12) as they are."""
    if len(label) == 10 and label[4] == "-":
        return label[5:]
    return label.split("-")[-1] if "-W" in label else label
