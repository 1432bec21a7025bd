"""The SVG community map: well-formed, self-contained, one linked and titled path per community."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
import shapely

from geo.communities import Community
from geo.draw import COLOUR_HEX, colour_of, community_map_svg
from geo.errors import GeoValueError
from tests.geo.conftest import T0, region

NS = {"svg": "http://www.w3.org/2000/svg"}
COMMUNITIES = [
    Community("330106001", "翠苑一区社区", "翠苑街道", shapely.box(120.30, 30.40, 120.31, 30.41)),
    Community("330106002", "A&B <社区>", "文新街道", shapely.box(120.31, 30.40, 120.32, 30.41)),
    Community(
        "330106003",
        "有洞社区",
        "文新街道",
        shapely.Polygon(
            [(120.30, 30.41), (120.32, 30.41), (120.32, 30.42), (120.30, 30.42)],
            [[(120.305, 30.412), (120.31, 30.412), (120.31, 30.418), (120.305, 30.418)]],
        ),
    ),
]


def _paths(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(".//svg:path[@class='community']", NS)


def test_each_community_is_a_linked_titled_path_with_its_colour() -> None:
    svg = community_map_svg(COMMUNITIES, {"330106001": "red", "330106002": 2})
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paths = _paths(svg)
    assert [p.get("data-code") for p in paths] == ["330106001", "330106002", "330106003"]
    assert [p.get("fill") for p in paths] == [COLOUR_HEX["red"], COLOUR_HEX["yellow"], COLOUR_HEX["green"]]
    titles = [p.find("svg:title", NS).text for p in paths]
    assert titles[0].startswith("翠苑一区社区 (330106001), 翠苑街道: red")
    assert titles[1].startswith("A&B <社区> (330106002)")  # escaped in the markup, intact once parsed
    links = root.findall(".//svg:a", NS)
    assert [a.get("href") for a in links] == [f"/communities/{c.code}" for c in COMMUNITIES]
    assert paths[2].get("d").count("M") == 2  # the hole is drawn as its own ring


def test_self_contained_no_external_references() -> None:
    svg = community_map_svg(COMMUNITIES, {}, link="/c/{code}?from=map")
    for attr in ("src=", "<script", "<image", "@import", "url("):
        assert attr not in svg
    assert svg.count("http") == 1  # only the xmlns
    assert 'href="/c/330106001?from=map"' in svg


def test_regions_overlay_only_those_in_view() -> None:
    near = region("near", shapely.box(120.305, 30.405, 120.315, 30.415), level="medium")
    far = region("far", shapely.box(116.0, 39.0, 116.1, 39.1), until=T0 + timedelta(days=1))
    svg = community_map_svg(COMMUNITIES, {}, regions=[near, far])
    shown = ET.fromstring(svg).findall(".//svg:path[@class='risk-region']", NS)
    assert [p.get("data-region-id") for p in shown] == ["near"]
    assert shown[0].get("data-level") == "medium"


@pytest.mark.parametrize(
    ("value", "colour"),
    [(0, "green"), (1, "blue"), (2, "yellow"), (3, "orange"), (4, "red"), (9, "red"), ("Orange", "orange")],
)
def test_values_map_onto_the_five_colours(value, colour: str) -> None:
    assert colour_of(value) == colour


@pytest.mark.parametrize(
    ("value", "message"), [(-1, "severity is -1"), ("purple", "'purple'"), (True, "True")]
)
def test_bad_values_are_refused(value, message: str) -> None:
    with pytest.raises(GeoValueError, match=message):
        community_map_svg(COMMUNITIES, {"330106001": value})


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(GeoValueError, match="'/communities'"):
        community_map_svg(COMMUNITIES, {}, link="/communities")
    with pytest.raises(GeoValueError, match="width is 10"):
        community_map_svg(COMMUNITIES, {}, width=10)
    with pytest.raises(GeoValueError, match="communities is empty"):
        community_map_svg([], {})
