"""The sample geography: deterministic, equal to the committed files, and plausible."""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from pathlib import Path

import pytest
import shapely
import typer
from typer.testing import CliRunner

from geo.generate import DISTRICT_BOX, SAMPLE_FILES, SPAN_END, SPAN_START, write_sample
from geo.load import load_checkpoints, load_communities, load_regions

CONFIG = Path(__file__).resolve().parents[2] / "config" / "geo"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("geo")
    write_sample(out, seed=7)
    return out


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_committed_sample_equals_seed_7_output(regenerated: Path, name: str) -> None:
    assert (regenerated / name).read_bytes() == (CONFIG / name).read_bytes()


def test_cli_generate_is_byte_identical_across_runs(tmp_path: Path) -> None:
    from streams.commands import cmd_geo

    app = typer.Typer()
    cmd_geo.register(app)
    runner = CliRunner()
    for run in ("a", "b"):
        result = runner.invoke(app, ["geo", "generate", "--seed", "7", "--out", str(tmp_path / run)])
        assert result.exit_code == 0, result.output
    for name in SAMPLE_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == (CONFIG / name).read_bytes()


def test_another_seed_gives_another_geography(tmp_path: Path) -> None:
    write_sample(tmp_path, seed=8, n_regions=50, n_communities=20)
    assert (tmp_path / "district.geojson").read_bytes() != (CONFIG / "district.geojson").read_bytes()


def test_district_is_a_partition_into_communities_and_streets() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        communities = load_communities(CONFIG / "district.geojson")
    assert len(communities) >= 150
    assert len({c.street for c in communities}) >= 8
    assert len({c.name for c in communities}) == len(communities)
    assert all(len(c.code) == 9 and c.code.startswith("330106") for c in communities)
    geoms = [c.geometry for c in communities]
    outline = shapely.union_all(geoms)
    assert outline.geom_type == "Polygon"
    minx, miny, maxx, maxy = outline.bounds
    assert (
        DISTRICT_BOX[0] <= minx
        and maxx <= DISTRICT_BOX[2]
        and DISTRICT_BOX[1] <= miny
        and maxy <= DISTRICT_BOX[3]
    )
    assert abs(sum(g.area for g in geoms) - outline.area) < 1e-9  # no overlaps


def test_risk_regions_span_china_and_the_sixty_days() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regions = load_regions(CONFIG / "risk_regions.geojson")
    assert len(regions) >= 2000
    assert {r.level for r in regions} == {"high", "medium", "low"}
    assert all(SPAN_START <= r.effective_from < SPAN_END for r in regions)
    lifted = [r for r in regions if r.effective_until is not None]
    assert 0 < len(lifted) < len(regions)
    assert all(r.effective_from < r.effective_until < SPAN_END for r in lifted)
    assert any(r.geometry.geom_type == "MultiPolygon" for r in regions)
    lons = [r.geometry.centroid.x for r in regions]
    assert min(lons) < 100 and max(lons) > 125
    district = shapely.union_all([c.geometry for c in load_communities(CONFIG / "district.geojson")])
    assert sum(district.intersects(r.geometry) for r in regions) >= 3
    raw = json.loads((CONFIG / "risk_regions.geojson").read_text(encoding="utf-8"))
    assert raw["features"][0]["properties"]["effective_from"].endswith("+08:00")
    assert isinstance(datetime.fromisoformat(raw["features"][0]["properties"]["effective_from"]), datetime)


def test_checkpoints_sit_inside_the_district() -> None:
    checkpoints = load_checkpoints(CONFIG / "checkpoints.geojson")
    district = shapely.union_all([c.geometry for c in load_communities(CONFIG / "district.geojson")])
    assert 4 <= len(checkpoints) <= 12
    assert all(district.contains(shapely.Point(c.lon, c.lat)) for c in checkpoints)


def test_sample_stays_small() -> None:
    assert sum((CONFIG / name).stat().st_size for name in SAMPLE_FILES) < 5_000_000
