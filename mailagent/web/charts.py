"""Line charts as inline SVG, drawn on the server: no JavaScript, nothing to download. Every text
in the drawing is escaped here; colours come from the stylesheet (classes `series-N`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mailagent.store.metrics import Unit, show

WIDTH, HEIGHT = 520, 210
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 30


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


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: Unit, currency: str = "") -> Markup:
    known = [v for s in series for v in s.values if v is not None]
    top, step = scale_top(known, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(labels)

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">']
    ticks = int(round(top / step))
    for k in range(ticks + 1):
        v = step * k
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                     f'{escape(show(v, unit, ""))}</text>')
    every = max(1, math.ceil(n / 7))
    for i, label in enumerate(labels):
        if (i % every == 0 and n - 1 - i >= every) or i == n - 1:      # the newest always, never crowded
            parts.append(f'<text class="tick" x="{x(i):.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
                         f'{escape(_short(label))}</text>')
    for index, s in enumerate(series):
        parts.append(f'<g class="series series-{index}">')
        for segment in _segments(s.values):
            if len(segment) > 1:
                points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in segment)
                parts.append(f'<polyline points="{points}"/>')
        for i, v in enumerate(s.values):
            if v is not None:
                tip = f"{s.name}, {labels[i]}: {show(v, unit, currency)}"
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3"><title>{escape(tip)}</title></circle>')
        parts.append("</g>")
    if not known:
        parts.append(f'<text class="empty" x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" '
                     'text-anchor="middle">no data yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


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
    """2026-11-22 -> 11-22; weeks stay 2026-W47 -> W47."""
    return label[5:] if len(label) == 10 else label.split("-")[-1]
