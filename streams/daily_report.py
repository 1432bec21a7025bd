"""The daily report from the topics, on both transports: `GET /reports/daily` on a worker, and `epiflow report`.

Both read the same records (triage messages of every community topic, case events, dead letters, input
timestamps) and hand them to `pipeline.reports.daily_reports`, so the page and the command give the same
figures. On `memory://` the records come from the in-process broker; on `kafka://` from the broker with
kafka-python, outside any consumer group (in a thread when a worker serves the page).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import orjson
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from geo.communities import CommunityIndex
from pipeline.inputs import CHECKPOINT_SCANS, DECLARATIONS, NAT_RESULTS
from pipeline.key_group_report import KeyGroupRecords, key_group_figures, key_group_html
from pipeline.report_page import reports_html
from pipeline.reports import DailyReports, daily_reports, zone_label
from pipeline.settings import Settings
from streams.api import gate_of, problem
from streams.errors import Denied
from streams.pages import page_lang
from streams.topics import INPUT_KINDS

__all__ = ["ReportInputs", "build_report", "quiet_kafka_logs", "read_report_inputs", "register_report_views"]


#: How long reading the topics of a Kafka broker may take before the report gives up.
READ_TIMEOUT_S = 120.0


@dataclass
class ReportInputs:
    """What the daily report is computed from, as read from the topics."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    case_events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    #: `test_overdue` and `released` messages of every community topic
    loop_messages: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, list[datetime]] = field(default_factory=dict)
    rules_version: str = ""
    key_groups: KeyGroupRecords = field(default_factory=KeyGroupRecords)


def quiet_kafka_logs() -> None:
    """kafka-python logs WARNING lines for routine reconnects; a report's output shows none of them."""
    for name in ("kafka", "kafka.conn", "kafka.client", "kafka.coordinator", "kafka.consumer"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _json(value: bytes | None) -> dict[str, Any] | None:
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _kafka_records(settings: Settings, wanted: Callable[[str], bool]) -> dict[str, list[Any]]:
    """Every record of the topics `wanted` accepts, from the start to the end offsets seen when reading began:
    one consumer for all of them, outside any consumer group."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka_options import kafka_client_options

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **kafka_client_options(settings, "kafka-python"))
    out: dict[str, list[Any]] = {}
    try:
        topics = sorted(t for t in consumer.topics() if wanted(t))
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            return out
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        left = {tp for tp in partitions if ends[tp] > 0}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(left)} partitions not read to their end within {READ_TIMEOUT_S:.0f} s")
            for tp, batch in consumer.poll(timeout_ms=1000, max_records=20000).items():
                out.setdefault(tp.topic, []).extend(r for r in batch if r.offset < ends[tp])
            left = {tp for tp in left if consumer.position(tp) < ends[tp]}
    finally:
        consumer.close()
    for records in out.values():
        records.sort(key=lambda r: (r.partition, r.offset))
    return out


def _reported(settings: Settings, topic: str) -> bool:
    fixed = {settings.topic(n) for n in ("case-events", "dead-letters", "rules", *INPUT_KINDS, *_KEY_GROUP_TOPICS)}
    return topic in fixed or topic.startswith(f"{settings.topic_prefix}.triage.")


def read_report_inputs(settings: Settings) -> ReportInputs:
    """The report's records from the broker `settings` names (blocking; call it in a thread on a worker)."""
    if settings.broker.startswith("memory://"):
        from streams.memory import get_broker

        broker = get_broker(settings.broker)
        names = broker.topics()

        def records(topic: str) -> list[Any]:
            return broker.all_records(topic) if topic in names else []
    else:
        quiet_kafka_logs()
        prefix = f"{settings.topic_prefix}."
        read = _kafka_records(settings, lambda t: t.startswith(prefix) and _reported(settings, t))
        names = sorted(read)

        def records(topic: str) -> list[Any]:
            return read.get(topic, [])

    out = ReportInputs()
    prefix = f"{settings.topic_prefix}.triage."
    for topic in (t for t in names if t.startswith(prefix)):
        decoded = [m for r in records(topic) if (m := _json(r.value))]
        out.messages += [m for m in decoded if m.get("kind", "triage") == "triage" and "case_id" in m]
        if ".triage.street." not in topic:
            out.loop_messages += [m for m in decoded if m.get("kind") in ("test_overdue", "released")]
    out.case_events = [e for r in records(settings.topic("case-events")) if (e := _json(r.value))]
    out.dead_letters = [d for r in records(settings.topic("dead-letters")) if (d := _json(r.value))]
    for kind in INPUT_KINDS:
        topic = settings.topic(kind)
        out.inputs[topic] = [datetime.fromtimestamp(r.timestamp / 1000, UTC) for r in records(topic)]
    rules = records(settings.topic("rules"))
    if rules and rules[-1].value:
        out.rules_version = _rules_version(rules[-1].value)
    out.key_groups = _key_group_records(settings, names, records, prefix)
    return out


#: NAT history the key-group section folds per person: the longest cadence (two weeks) and then some.
REPORT_HORIZON = timedelta(days=16)
#: Topics the key-group section of the report reads besides the triage topics and the inputs.
_KEY_GROUP_TOPICS = ("key-groups", "roster-members", "key-enterprises")


def _key_group_records(settings: Settings, names: list[str], records: Callable[[str], list[Any]], triage: str) -> KeyGroupRecords:
    """Rosters, key groups, registrations, NAT-bearing inputs, scans and reminders, from the records read."""
    kg = KeyGroupRecords()
    groups = records(settings.topic("key-groups"))
    kg.key_groups = groups[-1].value if groups else None
    kg.members = [r.value for r in records(settings.topic("roster-members")) if r.value]
    kg.registrations = {r.key: r.value for r in records(settings.topic("key-enterprises")) if r.key and r.value}
    kg.tests = [r.value for kind in (NAT_RESULTS.topic, DECLARATIONS.topic) for r in records(settings.topic(kind)) if r.value]
    kg.scans = [r.value for r in records(settings.topic(CHECKPOINT_SCANS.topic)) if r.value]
    for topic in (t for t in names if t.startswith(triage)):
        kg.reminders += [m for r in records(topic) if (m := _json(r.value)) and m.get("kind") == "test_reminder"]
    return kg


def _rules_version(raw: bytes) -> str:
    from pipeline.errors import PipelineError
    from pipeline.rules import parse_rules

    try:
        return parse_rules(raw.decode("utf-8"), source="rules topic").version
    except (PipelineError, UnicodeDecodeError, ValueError):
        return ""


def build_report(
    settings: Settings,
    inputs: ReportInputs,
    day: date,
    communities: CommunityIndex,
    *,
    now: datetime,
    lang: Literal["zh", "en"] = "zh",
    action_names: dict[str, str] | None = None,
    switch_href: str = "",
    back_href: str = "",
) -> tuple[DailyReports, str]:
    """The day's report and its HTML page (times in the display zone)."""
    zone = settings.zone
    reports = daily_reports(
        day, zone, messages=inputs.messages, case_events=inputs.case_events, dead_letters=inputs.dead_letters,
        inputs=inputs.inputs, streets={c.code: c.street for c in communities},
        names={c.code: c.name for c in communities}, as_of=now, loop_messages=inputs.loop_messages,
    )
    page = reports_html(reports, generated_at=now.astimezone(zone), rules_version=inputs.rules_version,
                        zone_label=zone_label(zone, now, lang), lang=lang, action_names=action_names,
                        switch_href=switch_href, back_href=back_href)
    page = page.replace("</body>", key_group_html(key_group_report(settings, inputs, day, communities, now), lang)
                        + "</body>")
    return reports, page


def key_group_report(settings: Settings, inputs: ReportInputs, day: date, communities: CommunityIndex,
                     now: datetime) -> dict[str, Any]:
    """The day's key-group figures: compliance per group and street, reminders sent, checkpoint coverage."""
    return key_group_figures(inputs.key_groups, day, settings.zone, secret=settings.secret_bytes, now=now,
                             horizon=REPORT_HORIZON, street_of=communities.street_of)


def register_report_views(app: Any, agents: Any) -> None:
    """`GET /reports/daily?date=YYYY-MM-DD[&format=json][&lang=en]` for the command centre (admin token)."""
    gate = gate_of(agents)
    rt = agents.runtime

    @app.page("/reports/daily")
    class DailyReportView(View):
        async def get(self, request: Request) -> Response:
            try:
                gate.require(request, "admin")
            except Denied as exc:
                if exc.status == 401 and request.query.get("format") != "json":
                    raise aioweb.HTTPSeeOther(f"/login?next={quote(request.path_qs)}") from None
                return problem(exc.status, exc.problem)
            now = rt.clock()
            raw = request.query.get("date") or now.astimezone(rt.settings.zone).date().isoformat()
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                return problem(400, f"date was {raw!r} but is expected to be YYYY-MM-DD",
                               [{"field": "date", "problem": "not a YYYY-MM-DD date"}])
            lang: Literal["zh", "en"] = "en" if page_lang(request) == "en" else "zh"
            inputs = await asyncio.get_running_loop().run_in_executor(None, read_report_inputs, rt.settings)
            inputs.rules_version = rt.rules_version or inputs.rules_version
            names = {} if rt.rules is None else {
                n: (a.text_zh if lang == "zh" else a.text_en) for n, a in rt.rules.actions.items()}
            other = "zh" if lang == "en" else "en"
            reports, page = build_report(rt.settings, inputs, day, rt.communities, now=now, lang=lang,
                                         action_names=names, switch_href=f"/reports/daily?date={day.isoformat()}&lang={other}",
                                         back_href="/dashboard")
            if request.query.get("format") == "json":
                body = {**reports.figures(), "rules_version": inputs.rules_version,
                        "key_groups": key_group_report(rt.settings, inputs, day, rt.communities, now),
                        "generated_at": now.astimezone(rt.settings.zone).isoformat()}
                return aioweb.Response(body=orjson.dumps(body), content_type="application/json")
            return aioweb.Response(text=page, content_type="text/html")
