"""Broken rules documents and risk-region features: a clear error, and the last good version stays active.

Pure: `parse_rules` raises only `RulesError` naming the file, the line and the problem, and
`region_from_feature` only a `GeoError` subclass. On a running memory:// worker, a broken document
published to a control topic is refused (recorded, counted) and the previous version stays in force,
and the control readers keep following: a valid publish afterwards still takes effect.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings

from geo.errors import GeoError
from geo.load import region_from_feature
from geo.regions import Region
from pipeline.errors import RulesError
from pipeline.rules import Rules, parse_rules
from tests.fuzz.running import ThreadedWorker, threaded_worker
from tests.fuzz.strategies import mutated_features, mutated_rules_texts, valid_feature

RULES_TEXT = open("config/rules.yaml", encoding="utf-8").read()
_PURE = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_LIVE = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture])


def _rules_outcome(text: str, source: str) -> Rules | RulesError:
    try:
        return parse_rules(text, source=source)
    except RulesError as exc:
        return exc


def _region_outcome(value: Any) -> Region | GeoError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return region_from_feature(value)
        except GeoError as exc:
            return exc


@_PURE
@given(mutated_rules_texts(RULES_TEXT))
def test_broken_rules_raise_a_rules_error_naming_file_line_and_problem(mutation: tuple[str, str]) -> None:
    name, text = mutation
    outcome = _rules_outcome(text, "fuzz/rules.yaml")
    if isinstance(outcome, Rules):
        return
    message = str(outcome)
    assert re.search(r"fuzz/rules\.yaml:\d+: \S", message), f"{name}: no file:line: problem in {message!r}"


@_PURE
@given(mutated_features())
def test_broken_region_features_raise_a_geo_error(feature: Any) -> None:
    outcome = _region_outcome(orjson.loads(orjson.dumps(feature)))
    if isinstance(outcome, GeoError):
        assert str(outcome).strip()


@pytest.mark.parametrize("value", [
    {**valid_feature(), "geometry": {"type": "Polygon", "coordinates": [[[120.0, 30.0], [float("inf"), 30.0], [120.1, 30.1], [120.0, 30.0]]]}},
    {**valid_feature(), "geometry": {"type": "Polygon", "coordinates": [[[120.0, 30.0], [1e308, 30.0], [120.1, 30.1], [120.0, 30.0]]]}},
    {**valid_feature(), "geometry": {"type": "Point", "coordinates": [120.0, 30.0]}},
    {**valid_feature(), "properties": {**valid_feature()["properties"], "level": "critical"}},
    {**valid_feature(), "type": "FeatureCollection"},
    [valid_feature()], None, "Feature",
])
def test_known_bad_features_are_refused(value: Any) -> None:
    assert isinstance(_region_outcome(value), GeoError)


# --- on a running worker --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def control() -> Iterator[ThreadedWorker]:
    with threaded_worker() as running:
        running.append(running.settings.topic("risk-regions"), [(b"fz-keep", orjson.dumps(valid_feature("fz-keep", "medium")))])
        assert running.wait(lambda: running.worker.runtime.regions.get("fz-keep") is not None, 30)
        yield running


def _refused(fw: ThreadedWorker, kind: str) -> float:
    total = 0.0
    for metric in fw.worker.runtime.metrics.control_refused.collect():
        total += sum(s.value for s in metric.samples if s.name.endswith("_total") and s.labels.get("kind") == kind)
    return total


def _publish_refused(fw: ThreadedWorker, kind: str, topic: str, key: bytes, value: bytes | None) -> dict[str, str]:
    before = _refused(fw, kind)
    fw.append(fw.settings.topic(topic), [(key, value)])
    assert fw.wait(lambda: _refused(fw, kind) >= before + 1, 30), f"{kind} record was neither refused nor applied"
    assert _refused(fw, kind) == before + 1
    refusal = fw.worker.runtime.refusals[-1]
    assert refusal["kind"] == kind and refusal["detail"].strip()
    return refusal


@_LIVE
@given(mutated_rules_texts(RULES_TEXT))
def test_a_broken_rules_publish_leaves_the_previous_rules_active(control: ThreadedWorker, mutation: tuple[str, str]) -> None:
    name, text = mutation
    assume(isinstance(_rules_outcome(text, "fuzz"), RulesError))
    rt = control.worker.runtime
    active, version = rt.rules, rt.rules_version
    refusal = _publish_refused(control, "rules", "rules", b"active", text.encode("utf-8"))
    assert re.search(r":\d+: \S", refusal["detail"]), f"{name}: {refusal['detail']!r}"
    assert rt.rules is active and rt.rules_version == version


@_LIVE
@given(mutated_features())
def test_a_broken_region_publish_keeps_the_region_as_it_was(control: ThreadedWorker, feature: Any) -> None:
    raw = orjson.dumps(feature)
    assume(isinstance(_region_outcome(orjson.loads(raw)), GeoError))
    rt = control.worker.runtime
    kept, count = rt.regions.get("fz-keep"), len(rt.regions)
    _publish_refused(control, "region", "risk-regions", b"fz-keep", raw)
    assert rt.regions.get("fz-keep") is kept and len(rt.regions) == count


@pytest.mark.parametrize(("topic", "kind", "key", "value"), [
    ("rules", "rules", b"active", b"\xff\xfe not utf-8"),
    ("rules", "rules", b"active", None),
    ("rules", "rules", b"active", b"version: [" * 50_000),
    ("risk-regions", "region", b"fz-keep", b"\xff"),
    ("risk-regions", "region", b"fz-keep", b'{"type": "Feature", "geometry": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
    ("risk-regions", "region", b"fz-keep", b"NaN"),
    ("risk-regions", "region", b"fz-keep", b"z" * 2_000_000),
])
def test_undecodable_control_records_are_refused(control: ThreadedWorker, topic: str, kind: str, key: bytes, value: bytes | None) -> None:
    rt = control.worker.runtime
    active, kept = rt.rules, rt.regions.get("fz-keep")
    _publish_refused(control, kind, topic, key, value)
    assert rt.rules is active and rt.regions.get("fz-keep") is kept


def test_control_readers_still_follow_after_the_fuzz(control: ThreadedWorker) -> None:
    rt = control.worker.runtime
    newer = RULES_TEXT.replace('version: "2022.06-national-9"', 'version: "after-fuzz"', 1)
    control.append(control.settings.topic("rules"), [(b"active", newer.encode())])
    assert control.wait(lambda: rt.rules_version == "after-fuzz", 30), rt.refusals[-3:]
    control.append(control.settings.topic("risk-regions"), [(b"fz-new", orjson.dumps(valid_feature("fz-new", "high")))])
    assert control.wait(lambda: rt.regions.get("fz-new") is not None, 30), rt.refusals[-3:]
    control.append(control.settings.topic("risk-regions"), [(b"fz-new", None)])
    assert control.wait(lambda: rt.regions.get("fz-new") is None, 30)
