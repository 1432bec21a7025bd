"""The five-colour community map as a self-contained SVG string (no tiles, no scripts, no CDN)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from html import escape
from typing import Literal

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.communities import Community
from geo.errors import GeoValueError
from geo.regions import Region

__all__ = ["Colour", "COLOURS", "COLOUR_HEX", "LEVEL_STROKE", "colour_of", "community_map_svg"]

Colour = Literal["red", "orange", "yellow", "blue", "green"]
COLOURS: tuple[str, ...] = ("green", "blue", "yellow", "orange", "red")  # severity 0 .. 4
COLOUR_HEX: dict[str, str] = {
    "red": "#d7191c",
    "orange": "#f58231",
    "yellow": "#f5d33c",
    "blue": "#3b7dd8",
    "green": "#2e9e4f",
}
COLOUR_LABEL: dict[str, str] = {
    "red": "red (most severe)",
    "orange": "orange",
    "yellow": "yellow",
    "blue": "blue",
    "green": "green (normal)",
}
LEVEL_STROKE: dict[str, str] = {"high": "#7f0000", "medium": "#b35806", "low": "#5e3c99"}
_PAD = 8.0
_LEGEND_H = 26.0


def colour_of(value: str | int) -> str:
    """A colour name for a value: a colour name as is, or severity 0..4 (higher clipped) onto the scale."""
    if isinstance(value, bool):
        raise GeoValueError(f"map value is {value!r}, expected a colour name or a severity int")
    if isinstance(value, int | np.integer):
        if value < 0:
            raise GeoValueError(f"severity is {value!r}, expected an int >= 0")
        return COLOURS[min(int(value), len(COLOURS) - 1)]
    if isinstance(value, str) and value.strip().lower() in COLOUR_HEX:
        return value.strip().lower()
    raise GeoValueError(f"map value is {value!r}, expected one of {sorted(COLOUR_HEX)} or a severity int")


class _Projection:
    """Equirectangular lon/lat -> SVG pixels, scaled by cos(latitude) so shapes are not stretched."""

    def __init__(self, bounds: tuple[float, float, float, float], width: float) -> None:
        minx, miny, maxx, maxy = bounds
        self.minx, self.maxy = minx, maxy
        self.kx = math.cos(math.radians((miny + maxy) / 2))
        span_x = max((maxx - minx) * self.kx, 1e-9)
        self.scale = (width - 2 * _PAD) / span_x
        self.height = (maxy - miny) * self.scale + 2 * _PAD

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.minx) * self.kx * self.scale + _PAD, (self.maxy - lat) * self.scale + _PAD

    def path(self, geom: BaseGeometry) -> str:
        parts = []
        for ring in shapely.get_rings(shapely.get_parts(geom)).tolist():
            xy = shapely.get_coordinates(ring)
            px = (xy[:, 0] - self.minx) * self.kx * self.scale + _PAD
            py = (self.maxy - xy[:, 1]) * self.scale + _PAD
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px.tolist(), py.tolist(), strict=True))
            parts.append(f"M{pts}Z")
        return "".join(parts)


def community_map_svg(
    communities: Iterable[Community],
    values: Mapping[str, str | int],
    regions: Iterable[Region] | None = None,
    link: str = "/communities/{code}",
    width: int = 800,
    labels: Mapping[str, str] | None = None,
    label: str = "community risk map",
    show_names: bool = False,
) -> str:
    """Communities filled on the red/orange/yellow/blue/green scale, optionally with risk-region outlines.

    `values` maps community code -> colour name or severity int (0 green .. 4+ red); communities
    without a value are green. Each polygon carries a `<title>` tooltip and `data-code`, and is
    wrapped in a link built from `link` (with `{code}`). `labels` names each colour in the legend and
    the tooltips (e.g. `{"red": "高风险"}`); `label` is the image's accessible name; `show_names`
    writes each area's name on it (for a map of a few large areas, such as streets).
    """
    items = list(communities)
    if not isinstance(width, int) or isinstance(width, bool) or width < 50:
        raise GeoValueError(f"width is {width!r}, expected an int >= 50 (pixels)")
    if "{code}" not in link:
        raise GeoValueError(f"link is {link!r}, expected a pattern containing '{{code}}'")
    if not items:
        raise GeoValueError("communities is empty, expected at least one community to draw")
    colours = {code: colour_of(v) for code, v in values.items()}
    names = {**COLOUR_LABEL, **(labels or {})}
    bounds = shapely.total_bounds(np.array([c.geometry for c in items], dtype=object))
    proj = _Projection(tuple(bounds.tolist()), float(width))
    height = proj.height + _LEGEND_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
        f'width="{width}" height="{height:.0f}" role="img" aria-label="{escape(label)}">',
        "<style>.community{stroke:#ffffff;stroke-width:0.8}.community:hover{stroke:#222;stroke-width:1.6}"
        ".risk-region{fill:none;stroke-width:1.2;stroke-dasharray:3 2}"
        ".names{font:bold 16px \"Noto Sans CJK SC\",\"PingFang SC\",\"Microsoft YaHei\",sans-serif;fill:#111;"
        "paint-order:stroke;stroke:#fff;stroke-width:3px;pointer-events:none}"
        ".legend{font:11px \"Noto Sans CJK SC\",\"PingFang SC\",\"Microsoft YaHei\",sans-serif;fill:#333}</style>",
        '<g class="communities">',
    ]
    for c in items:
        colour = colours.get(c.code, "green")
        title = f"{c.name} ({c.code}), {c.street}: {names[colour]}" if c.code != c.street else f"{c.name}: {names[colour]}"
        href = link.replace("{code}", c.code)
        out.append(
            f'<a href="{escape(href)}"><path class="community" data-code="{escape(c.code)}" '
            f'data-colour="{colour}" fill="{COLOUR_HEX[colour]}" fill-rule="evenodd" '
            f'd="{proj.path(c.geometry)}"><title>{escape(title)}</title></path></a>'
        )
    out.append("</g>")
    if show_names:
        out.append('<g class="names">')
        for c in items:
            point = c.geometry.representative_point()
            x, y = proj.xy(point.x, point.y)
            out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{escape(c.name)}</text>')
        out.append("</g>")
    if regions is not None:
        view = shapely.box(*bounds)
        out.append('<g class="risk-regions">')
        for r in regions:
            if not r.geometry.intersects(view):
                continue
            shown = r.geometry.intersection(view)
            if shown.is_empty or shown.geom_type not in ("Polygon", "MultiPolygon", "GeometryCollection"):
                continue
            until = "" if r.effective_until is None else f" until {r.effective_until.isoformat()}"
            title = f"{r.name} ({r.id}): {r.level} risk from {r.effective_from.isoformat()}{until}"
            polys = [g for g in shapely.get_parts(shown) if g.geom_type in ("Polygon", "MultiPolygon")]
            if not polys:
                continue
            d = "".join(proj.path(g) for g in polys)
            out.append(
                f'<path class="risk-region" data-region-id="{escape(r.id)}" data-level="{r.level}" '
                f'stroke="{LEVEL_STROKE[r.level]}" d="{d}"><title>{escape(title)}</title></path>'
            )
        out.append("</g>")
    y = proj.height + 6
    out.append(f'<g class="legend" transform="translate({_PAD:.0f},{y:.0f})">')
    for i, colour in enumerate(reversed(COLOURS)):
        x = i * 90
        out.append(
            f'<rect x="{x}" y="0" width="12" height="12" fill="{COLOUR_HEX[colour]}"/>'
            f'<text x="{x + 16}" y="10">{escape(names[colour] if labels else colour)}</text>'
        )
    out.append("</g></svg>")
    return "\n".join(out)
