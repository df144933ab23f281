"""Inline SVG bars (no script, no external reference)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from .escape import text

__all__ = ["stacked_bar", "level_bar", "COLORS", "kb"]

#: One color per kind of memory, the same in every bar and legend.
COLORS = {
    "anon": "#d9534f", "shmem": "#f0ad4e", "file": "#5bc0de", "unevictable": "#8e44ad",
    "slab": "#9b7653", "page tables": "#7f8c8d", "kernel stack": "#34495e",
    "kernel": "#34495e", "sock": "#16a085", "other": "#bdc3c7", "free": "#5cb85c",
    "free_pcp": "#a3d9a5", "reserved": "#6c757d", "used": "#d9534f",
    "percpu": "#95a5a6", "swap used": "#d9534f", "swap free": "#5cb85c",
}
_W, _H = 600, 22


def kb(value: Optional[int]) -> str:
    """A size in kB as a person reads it (the exact kB in the title)."""
    if value is None:
        return "?"
    v = float(value)
    for unit in ("kB", "MB", "GB", "TB"):
        if abs(v) < 1024 or unit == "TB":
            return f"{v:.0f} {unit}" if unit == "kB" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{value} kB"


def stacked_bar(parts: Sequence[Tuple[str, int]], total: Optional[int] = None,
                label: str = "") -> str:
    """One horizontal bar of (name, kB) parts, each part's title its size."""
    total = total if total else sum(max(v, 0) for _, v in parts) or 1
    x = 0.0
    rects = []
    for name, value in parts:
        if value <= 0:
            continue
        w = _W * value / total
        color = COLORS.get(name, "#999")
        rects.append(f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{_H}" '
                     f'fill="{color}"><title>{text(name)}: {value} kB '
                     f'({kb(value)}, {100 * value / total:.1f}%)</title></rect>')
        x += w
    return (f'<svg class="bar" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
            f'role="img" aria-label="{text(label)}">'
            f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#eee"/>'
            + "".join(rects) + "</svg>")


def level_bar(value: int, marks: Sequence[Tuple[str, int]], scale: int,
              color: str = "#5cb85c", label: str = "") -> str:
    """A bar of *value* kB against marks (watermarks, a limit) drawn as lines."""
    scale = max(scale, value, *(m for _, m in marks), 1)
    w = _W * max(value, 0) / scale
    out = [f'<svg class="bar" viewBox="0 0 {_W} {_H + 12}" width="{_W}" height="{_H + 12}" '
           f'role="img" aria-label="{text(label)}">',
           f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#eee"/>',
           f'<rect x="0" y="0" width="{w:.2f}" height="{_H}" fill="{color}">'
           f'<title>{text(label)}: {value} kB ({kb(value)})</title></rect>']
    for name, m in marks:
        mx = _W * m / scale
        out.append(f'<line x1="{mx:.2f}" y1="0" x2="{mx:.2f}" y2="{_H + 2}" stroke="#000" '
                   f'stroke-width="1.5"><title>{text(name)}: {m} kB</title></line>'
                   f'<text x="{mx:.2f}" y="{_H + 11}" font-size="9" text-anchor="middle">'
                   f'{text(name)}</text>')
    out.append("</svg>")
    return "".join(out)
