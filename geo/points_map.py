"""Points on a small self-contained SVG map (no tiles, no scripts), over the communities they fall among.

For maps of a few dozen places, such as one index case's places and the contacts found at them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import shapely

from geo.communities import Community
from geo.draw import _Projection
from geo.errors import GeoValueError

__all__ = ["MapPoint", "points_map_svg"]

#: Fill of each point kind; unknown kinds are grey.
_FILL = {"index": "#d7191c", "close": "#f58231", "secondary": "#f5d33c"}
_MIN_SPAN = 0.01  # degrees: a map of points in one spot still shows about a kilometre around them


@dataclass(frozen=True, slots=True)
class MapPoint:
    """One point to draw: where, what kind (its colour), a short label written beside it, a tooltip."""

    lon: float
    lat: float
    kind: str
    label: str
    title: str


def points_map_svg(
    points: Sequence[MapPoint], communities: Iterable[Community] = (), width: int = 720, label: str = "map"
) -> str:
    """An SVG of `points` (each with `data-kind` and a `<title>`), over the outlines of the communities in view."""
    pts = list(points)
    if not pts:
        raise GeoValueError("points is empty, expected at least one point to draw")
    if not isinstance(width, int) or isinstance(width, bool) or width < 50:
        raise GeoValueError(f"width is {width!r}, expected an int >= 50 (pixels)")
    xs = np.array([p.lon for p in pts], dtype=np.float64)
    ys = np.array([p.lat for p in pts], dtype=np.float64)
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise GeoValueError("point coordinates hold NaN or infinity, expected finite lon/lat")
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    half = max(xs.max() - xs.min(), ys.max() - ys.min(), _MIN_SPAN) * 0.6
    bounds = (cx - half, cy - half, cx + half, cy + half)
    proj = _Projection(bounds, float(width))
    view = shapely.box(*bounds)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {proj.height:.0f}" width="{width}" '
        f'height="{proj.height:.0f}" role="img" aria-label="{escape(label)}">',
        "<style>.community{fill:#f3f3f3;stroke:#bbb;stroke-width:0.8}.point{stroke:#333;stroke-width:1}"
        ".tag{font:12px \"Noto Sans CJK SC\",\"PingFang SC\",\"Microsoft YaHei\",sans-serif;fill:#111;"
        "paint-order:stroke;stroke:#fff;stroke-width:3px}</style>",
        f'<rect x="0" y="0" width="{width}" height="{proj.height:.0f}" fill="#fbfbfb"/>',
        '<g class="communities">',
    ]
    for c in communities:
        if c.geometry.intersects(view):
            out.append(f'<path class="community" data-code="{escape(c.code)}" d="{proj.path(c.geometry.intersection(view))}">'
                       f"<title>{escape(c.name)}</title></path>")
    out.append('</g><g class="points">')
    # later points (contacts) are drawn over earlier ones (the index case's places); each offset a little if stacked
    seen: dict[tuple[int, int], int] = {}
    for p in pts:
        x, y = proj.xy(p.lon, p.lat)
        spot = (round(x), round(y))
        n = seen.get(spot, 0)
        seen[spot] = n + 1
        x, label_y = x + 9 * n, y - 8 - 14 * n
        fill = _FILL.get(p.kind, "#999")
        shape = (f'<rect class="point" x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12" fill="{fill}"'
                 if p.kind == "index" else f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{fill}"')
        out.append(f'<g data-kind="{escape(p.kind)}">{shape}><title>{escape(p.title)}</title></{"rect" if p.kind == "index" else "circle"}>'
                   f'<text class="tag" x="{x + 8:.1f}" y="{label_y:.1f}">{escape(p.label)}</text></g>')
    out.append("</g></svg>")
    return "\n".join(out)



