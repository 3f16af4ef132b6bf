"""Small inline SVG charts for the run report (pure functions; no script, no network)."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 720, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 16, 40
COLOR, ACCENT = "#3b6ea8", "#d9822b"


def _frame(title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _number(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _axes(top: float, plot_h: float, plot_w: float) -> list[str]:
    """The y axis with three gridlines labelled 0, top/2 and top, and the x axis."""
    parts = []
    for frac in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{PAD_LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{_number(top * frac)}</text>'
        )
    return parts


def bar_chart(title: str, labels: list[str], values: list[float], highlight: set[int] | None = None) -> str:
    """Vertical bars, one per label (labels thinned out when there are many); highlighted bars in the accent."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    top = max(values, default=0) or 1
    body = _axes(top, plot_h, plot_w)
    n = max(1, len(values))
    step = plot_w / n
    every = max(1, n // 12)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top
        x = PAD_LEFT + i * step
        fill = ACCENT if highlight and i in highlight else COLOR
        body.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{max(step * 0.8, 0.5):.1f}" '
            f'height="{h:.1f}" fill="{fill}"><title>{escape(label)}: {_number(value)}</title></rect>'
        )
        if i % every == 0:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return _frame(title, body)


def line_chart(title: str, xs: list[float], ys: list[float], x_label: str) -> str:
    """A line over x (e.g. seconds since the start), with the area under it shaded."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    top = max(ys, default=0) or 1
    span = (max(xs) - min(xs)) if len(xs) > 1 else 1
    body = _axes(top, plot_h, plot_w)
    points = [
        (PAD_LEFT + plot_w * (x - xs[0]) / span, PAD_TOP + plot_h * (1 - y / top)) for x, y in zip(xs, ys, strict=True)
    ]
    if points:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        base = PAD_TOP + plot_h
        body.append(
            f'<polygon points="{points[0][0]:.1f},{base:.1f} {line} {points[-1][0]:.1f},{base:.1f}" '
            f'fill="{COLOR}" fill-opacity="0.2"/>'
        )
        body.append(f'<polyline points="{line}" fill="none" stroke="{COLOR}" stroke-width="2"/>')
    for frac in (0.0, 0.5, 1.0):
        x = PAD_LEFT + plot_w * frac
        body.append(
            f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" font-size="10" text-anchor="middle">'
            f"{_number(span * frac)}</text>"
        )
    body.append(
        f'<text x="{PAD_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    return _frame(title, body)


def horizontal_bars(title: str, labels: list[str], values: list[float]) -> str:
    """One labelled horizontal bar per entry, with its value (statuses, errors)."""
    row, label_w = 22, 260
    height = PAD_TOP * 2 + row * max(1, len(values))
    top = max(values, default=0) or 1
    plot_w = WIDTH - label_w - 80
    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = PAD_TOP + i * row
        shown = label if len(label) <= 40 else label[:39] + "…"
        body.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="11" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
        )
        w = plot_w * value / top
        body.append(f'<rect x="{label_w}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row - 8}" fill="{COLOR}"/>')
        body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="11">{_number(value)}</text>')
    return _frame(title, body, height)
