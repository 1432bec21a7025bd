"""The HTTP API on the worker's web server: checkpoint scans (decision in the reply), declarations, NAT results,
policy look-ups, community case lists and case actions. JSON in and out; bad input is a 4xx naming the problem.

A scan reply waits for the join agent to have processed each scanned person (a waiter per person, no
polling). When another worker owns a person's partition, the reply asks that worker over HTTP at
`GET /api/persons/{person_key}/verdict`, which Faust table routing forwards to the owner.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import aiohttp
import faust
import orjson
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from pipeline.errors import CaseError, PipelineError, RejectedEvent
from pipeline.events import CaseEvent, Declaration, PersonEvent
from pipeline.ingest import parse_input, person_events
from pipeline.inputs import CHECKPOINT_SCANS, DECLARATIONS, NAT_RESULTS
from pipeline.loop_report import management_summary
from pipeline.map_levels import (
    AreaFacts,
    MapLevels,
    levels_by_area,
    load_map_levels,
    region_levels,
    street_facts,
)
from pipeline.policy import policy_for
from pipeline.reports import UNASSIGNED, queue_rows
from pipeline.requests import answer_due, case_of_request, request_id_for, request_json, request_problems
from pipeline.stages import STAGED_ACTIONS, STAGES, stage_problem, stage_times
from pipeline.state import PersonState, state_from_bytes
from pipeline.tally import Tally, merge, summary, tally_cases
from pipeline.triage import PersonDecision, Verdict, checkpoint_decision, evaluate
from streams.access import AccessGate
from streams.agents import Agents
from streams.cases import read_case
from streams.errors import ApiProblem, Denied
from streams.queries import (
    FORWARDED_HEADER,
    DecodedCases,
    Incomplete,
    Share,
    encode_share,
    forwarded_headers,
    gather_shares,
    held_partitions,
    owner_url,
)
from streams.runtime import utc_now

__all__ = ["BODY_LIMIT", "CASE_STEPS", "DECISION_TIMEOUT", "RETRY_AFTER_S", "ApiProblem", "community_cases", "dashboard_data",
           "dashboard_figures",
           "gate_of", "problem", "register_api", "require_ready"]

log = logging.getLogger(__name__)

#: Largest request body accepted (1 MiB); larger is 413.
BODY_LIMIT = 1024 * 1024
#: How long a scan reply waits for the decision before answering 504.
DECISION_TIMEOUT = 5.0
#: Seconds a client is told to wait (`Retry-After`) while the worker is still starting.
RETRY_AFTER_S = 2
_BAD_JSON = ("invalid_json", "not_an_object")
#: Case steps a community posts, and the case event kind each records.
CASE_STEPS = {"accept": "accepted", "resolve": "resolved", "note": "note"}


def problem(status: int, text: str, fields: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> aioweb.Response:
    """The JSON body of every 4xx/5xx: `{"status", "problem", "fields": [{"field", "problem"}]}`."""
    return aioweb.Response(
        body=orjson.dumps({"status": status, "problem": text, "fields": fields or []}),
        status=status, content_type="application/json", headers=headers,
    )


def require_ready(agents: Agents) -> None:
    """Refuse an input (503 + Retry-After) until the worker's topics exist and its rules are active.

    The web server answers before Faust declares the topics; an input sent then would reach no rules,
    or, where the broker creates topics on first use, create its topic with the wrong partition count.
    `control_ready` is set by tasks that run only after the topics were declared and recovered."""
    if not agents.control_ready.is_set():
        raise ApiProblem(503, "this worker is still starting (topics, rules, regions); retry in a moment",
                         headers={"Retry-After": str(RETRY_AFTER_S)})


def ok(value: Any, status: int = 200) -> aioweb.Response:
    return aioweb.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def gate_of(agents: Agents) -> AccessGate:
    """The access gate shared by the API and the pages of one worker."""
    gate = agents.access_gate
    if gate is None:
        gate = agents.access_gate = AccessGate(agents.runtime.settings)
        gate.refresh(force=True)
    return gate


def require_json(request: Any) -> None:
    """Input documents come as `application/json` (any charset parameter); anything else is 415."""
    if request.content_type != "application/json":
        sent = request.headers.get("Content-Type") or "no Content-Type"
        raise ApiProblem(415, f"the body was sent as {sent!r}; send the JSON document with 'Content-Type: application/json'")


def known_checkpoints(settings: Any) -> frozenset[str] | None:
    """Ids of the checkpoints in the settings' checkpoint file; None when scans from any checkpoint are taken."""
    if settings.accept_unknown_checkpoints:
        return None
    from geo.load import load_checkpoints

    return frozenset(c.id for c in load_checkpoints(settings.path(settings.checkpoints)))


async def read_body(request: Any) -> bytes:
    """The request body, refusing more than BODY_LIMIT by the declared length and by what actually arrives."""
    declared = request.content_length
    if declared is not None and declared > BODY_LIMIT:
        raise ApiProblem(413, f"request body is {declared} bytes; the limit is {BODY_LIMIT} bytes (1 MiB)")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > BODY_LIMIT:
            raise ApiProblem(413, f"request body is over {BODY_LIMIT} bytes (1 MiB)")
        chunks.append(chunk)
    if not size:
        raise ApiProblem(400, "request body is empty; send a JSON document")
    return b"".join(chunks)


def validated(body: bytes, agents: Agents, kind: type) -> tuple[Any, list[PersonEvent]]:
    """Parse, validate and fan out like the ingest agent does; a bad document is 400 or 422 naming each field."""
    rt = agents.runtime
    now = utc_now()
    try:
        document = parse_input(body)
        if not isinstance(document, kind):
            raise ApiProblem(422, f"'type' was {document.type!r} but this endpoint takes {kind.__name__} documents",
                             [{"field": "type", "problem": f"expected the {kind.__name__} type"}])
        people = person_events(document, secret=rt.settings.secret_bytes, now=now, lookback=rt.lookback,
                               received_at=now)
    except RejectedEvent as exc:
        if exc.reason in _BAD_JSON:
            raise ApiProblem(400, f"{exc.reason}: {exc.detail}") from None
        fields = [{"field": f, "problem": p} for f, p in exc.fields] or [{"field": "(document)", "problem": exc.detail}]
        raise ApiProblem(422, f"{exc.reason}: the document does not validate", fields) from None
    return document, people


def _processed(state: PersonState, event_id: str) -> bool:
    if state.declaration is not None and state.declaration.event_id == event_id:
        return True
    return any(p.event_id == event_id for p in state.places) or any(n.event_id == event_id for n in state.nats)


def _is_local(app: faust.App, table: Any, key: bytes) -> bool:
    """Whether this worker owns `key`; when the assignor cannot tell yet (no metadata), answer here."""
    try:
        url = app.router.key_store(table.name, key)
    except (KeyError, AttributeError, TypeError):
        return True
    own = app.conf.canonical_url
    return (url.host, url.port) == (own.host, own.port)


async def await_verdict(agents: Agents, person_key: str, event_id: str, timeout: float) -> Verdict:
    """The verdict of `person_key` once the join agent has processed `event_id` (this worker owns the key)."""
    raw = agents.persons.get(person_key.encode())
    rules = agents.runtime.rules
    if raw and rules is not None and _processed(state_from_bytes(raw), event_id):
        rt = agents.runtime
        return evaluate(state_from_bytes(raw), rules, rt.regions, rt.communities, utc_now())
    return await agents.verdicts.wait(person_key, event_id, timeout)  # type: ignore[no-any-return]


async def _remote_verdict(agents: Agents, person_key: str, event_id: str, auth: str, timeout: float) -> dict[str, Any]:
    """Ask the worker owning `person_key` for its verdict (table routing forwards the request there)."""
    url = agents.app.router.key_store(agents.persons.name, person_key.encode())
    target = url.with_path(f"/api/persons/{person_key}/verdict").with_query(event_id=event_id, wait=str(timeout))
    async with agents.app.http_client.get(target, headers={"Authorization": auth}) as response:
        if response.status != 200:
            raise ApiProblem(502 if response.status != 504 else 504,
                             f"the worker owning a scanned person answered {response.status}")
        return await response.json()


def _verdict_json(v: Verdict) -> dict[str, Any]:
    return {
        "masked_id": v.masked_id, "action": v.action, "severity": v.severity,
        "reasons": [r.model_dump(mode="json", exclude_none=True) for r in v.reasons],
    }


def register_api(app: faust.App, agents: Agents) -> None:
    """Declare the JSON API views on `app`."""
    gate = gate_of(agents)
    topics = agents.topics
    rt = agents.runtime
    checkpoints = known_checkpoints(rt.settings)

    def guarded(handler: Any) -> Any:
        async def run(view: View, request: Request, **kwargs: Any) -> Response:
            try:
                return await handler(view, request, **kwargs)
            except Denied as exc:
                return problem(exc.status, exc.problem)
            except ApiProblem as exc:
                return problem(exc.status, exc.problem, exc.fields, exc.headers)
            except Incomplete as exc:
                return incomplete_problem(exc)
        run.__name__ = handler.__name__
        return run

    def on_case_owner(handler: Any) -> Any:
        """Serve a request about one case on the worker that holds it: forwarded there, whatever the step."""
        async def run(view: View, request: Request, case_id: str, **kwargs: Any) -> Response:
            if FORWARDED_HEADER not in request.headers:
                owner = owner_url(app, agents.cases, case_id.encode())
                if owner is not None:
                    return await _forwarded(app, owner, request)
            return await handler(view, request, case_id=case_id, **kwargs)
        run.__name__ = handler.__name__
        return run

    @app.page("/api/checkpoints/{checkpoint_id}/scans")
    class ScanView(View):
        @guarded
        async def post(self, request: Request, checkpoint_id: str) -> Response:
            gate.require(request, CHECKPOINT_SCANS.api_role, checkpoint_id)
            require_ready(agents)
            if checkpoints is not None and checkpoint_id not in checkpoints:
                raise ApiProblem(404, f"no checkpoint {checkpoint_id!r} is registered (settings `checkpoints`); add it to "
                                      "that file, or set accept_unknown_checkpoints = true to take scans from any checkpoint")
            require_json(request)
            body = await read_body(request)
            scan, people = validated(body, agents, CHECKPOINT_SCANS.model)
            if scan.checkpoint_id != checkpoint_id:
                raise ApiProblem(422, "the scan is for another checkpoint than the URL names",
                                 [{"field": "checkpoint_id", "problem": f"expected {checkpoint_id!r} as in the URL"}])
            if rt.rules is None:
                raise ApiProblem(503, "this worker has no active rules yet; retry in a moment")
            started = asyncio.get_running_loop().time()
            local = {p.person_key: _is_local(app, agents.persons, p.person_key.encode()) for p in people}
            waits = {
                p.person_key: asyncio.ensure_future(await_verdict(agents, p.person_key, scan.event_id, DECISION_TIMEOUT))
                for p in people if local[p.person_key]
            }
            await topics.inputs[CHECKPOINT_SCANS.topic].send(key=scan.event_id.encode(), value=body)
            auth = request.headers.get("Authorization", "")
            remote = {
                p.person_key: asyncio.ensure_future(_remote_verdict(agents, p.person_key, scan.event_id, auth, DECISION_TIMEOUT))
                for p in people if not local[p.person_key]
            }
            try:
                done = await asyncio.gather(*waits.values(), *remote.values())
            except TimeoutError:
                for task in (*waits.values(), *remote.values()):
                    task.cancel()
                raise ApiProblem(504, f"no decision within {DECISION_TIMEOUT:.0f} s: the scan was accepted and will "
                                      "still be processed; ask again or check the community queue") from None
            parts = [v if isinstance(v, Verdict) else PersonDecision.from_json(v) for v in done]
            decision = checkpoint_decision(parts, rt.rules).to_json()
            decision.update(rules_version=rt.rules_version, checkpoint_id=checkpoint_id, event_id=scan.event_id,
                            seconds=round(asyncio.get_running_loop().time() - started, 4))
            return ok(decision)

    @app.page("/api/persons/{person_key}/verdict")
    class VerdictView(View):
        @app.table_route(table=agents.persons, match_info="person_key")
        @guarded
        async def get(self, request: Request, person_key: str) -> Response:
            gate.require(request, "checkpoint")
            event_id = request.query.get("event_id", "")
            if not event_id:
                raise ApiProblem(400, "query parameter 'event_id' is required",
                                 [{"field": "event_id", "problem": "missing"}])
            try:
                wait = min(float(request.query.get("wait", DECISION_TIMEOUT)), 30.0)
            except ValueError:
                raise ApiProblem(400, "query parameter 'wait' must be a number of seconds",
                                 [{"field": "wait", "problem": "not a number"}]) from None
            try:
                verdict = await await_verdict(agents, person_key, event_id, wait)
            except TimeoutError:
                raise ApiProblem(504, f"event {event_id!r} not processed for this person within {wait:.0f} s") from None
            return ok(_verdict_json(verdict))

    @app.page("/api/declarations")
    class DeclarationView(View):
        @guarded
        async def post(self, request: Request) -> Response:
            gate.require(request, DECLARATIONS.api_role)
            require_ready(agents)
            require_json(request)
            body = await read_body(request)
            declaration, _ = validated(body, agents, DECLARATIONS.model)
            await topics.inputs[DECLARATIONS.topic].send(key=declaration.event_id.encode(), value=body)
            return ok({"accepted": True, "event_id": declaration.event_id, "policy": _itinerary_policy(declaration, agents)}, 202)

    @app.page("/api/nat-results")
    class NatView(View):
        @guarded
        async def post(self, request: Request) -> Response:
            grant = gate.require(request, NAT_RESULTS.api_role)
            require_ready(agents)
            require_json(request)
            body = await read_body(request)
            result, _ = validated(body, agents, NAT_RESULTS.model)
            if grant.role == NAT_RESULTS.api_role and result.lab_id != grant.subject:
                raise Denied(403, f"this token is for lab {grant.subject!r}, not for lab_id {result.lab_id!r}")
            await topics.inputs[NAT_RESULTS.topic].send(key=result.event_id.encode(), value=body)
            return ok({"accepted": True, "event_id": result.event_id}, 202)

    @app.page("/api/policy")
    class PolicyView(View):
        @guarded
        async def get(self, request: Request) -> Response:
            if gate.identify(request) is None or gate.mode == "closed":
                gate.require(request, "admin")
            lon, lat, at = _policy_query(request.query)
            if rt.rules is None:
                raise ApiProblem(503, "this worker has no active rules yet; retry in a moment")
            try:
                policy = policy_for(lon, lat, at, rt.rules, rt.regions)
            except PipelineError as exc:
                raise ApiProblem(422, str(exc)) from None
            return ok(policy.to_json())

    @app.page("/api/communities/{code}/cases")
    class CommunityCasesView(View):
        @guarded
        async def get(self, request: Request, code: str) -> Response:
            grant = gate.require(request, "community", code)
            if code not in rt.communities and code not in UNASSIGNED:
                raise ApiProblem(404, f"no community with code {code!r}")
            return ok(await community_cases(agents, request, code, full_phone=grant.role == "community"))

    @app.page("/api/shares/communities/{code}/cases")
    class CommunityShareView(View):
        @guarded
        async def get(self, request: Request, code: str) -> Response:
            gate.require(request, "community", code)
            share = community_share(agents, code)
            return aioweb.Response(body=encode_share(share.partitions, share.payload), content_type="application/msgpack")

    @app.page("/api/shares/dashboard")
    class DashboardShareView(View):
        @guarded
        async def get(self, request: Request) -> Response:
            gate.require(request, "admin")
            share = dashboard_share(agents)
            return aioweb.Response(body=encode_share(share.partitions, share.payload), content_type="application/msgpack")

    @app.page("/api/cases/{case_id}")
    class CaseView(View):
        @guarded
        @on_case_owner
        async def get(self, request: Request, case_id: str) -> Response:
            case, message = _held_case(agents, gate, request, case_id)
            grant = gate.require(request, "community", case.community)
            row = _rows(agents, [(case, message)], full_phone=grant.role == "community")[0]
            return ok(row)

    @app.page("/api/cases/{case_id}/{step}")
    class CaseStepView(View):
        @guarded
        @on_case_owner
        async def post(self, request: Request, case_id: str, step: str) -> Response:
            if step == "stages":
                return await _post_stage(agents, request, case_id)
            if step == "requests":
                return await _post_request(agents, request, case_id)
            if step not in CASE_STEPS:
                raise ApiProblem(404, f"unknown case step {step!r}; use one of {', '.join(CASE_STEPS)}, stages or requests")
            require_ready(agents)
            case, _ = _held_case(agents, gate, request, case_id)
            grant = gate.require(request, "community", case.community)
            note = await _note(request)
            if step == "note" and not note:
                raise ApiProblem(422, "a note step needs a note: send {\"note\": \"...\"}",
                                 [{"field": "note", "problem": "missing or empty"}])
            kind = CASE_STEPS[step]
            now = utc_now()
            events = [CaseEvent(case_id=case_id, kind=kind, by=grant.who, at=now, note=note)]
            if note and kind != "note":
                events.append(CaseEvent(case_id=case_id, kind="note", by=grant.who, at=now, note=note))
            for event in events:
                await topics.case_events.send(key=case_id.encode(), value=event.model_dump_json().encode())
            return ok({"case_id": case_id, "kind": kind, "by": grant.who, "at": now.astimezone(rt.settings.zone).isoformat()},
                      202)

    @app.page("/api/persons/{person_key}/requests")
    class PersonRequestsView(View):
        @guarded
        async def post(self, request: Request, person_key: str) -> Response:
            _require_poster(gate, request)
            require_json(request)
            key = person_key.encode()
            if FORWARDED_HEADER not in request.headers:
                owner = owner_url(app, agents.persons, key)
                if owner is not None:
                    return await _forwarded(app, owner, request)
            require_ready(agents)
            raw = agents.persons.get(key)
            managed = state_from_bytes(raw).managed if raw else None
            if managed is None or managed.ended or not managed.case_id:
                raise ApiProblem(404, f"person {person_key[:12]}… is not under management (no case holds them); "
                                      "a request is posted for a person their community manages")
            owner = owner_url(app, agents.cases, managed.case_id.encode())
            if owner is not None:
                return await _forwarded(app, owner, request, path=f"/api/cases/{managed.case_id}/requests")
            return await _post_request(agents, request, managed.case_id)

    @app.page("/api/requests/{request_id}/answer")
    class RequestAnswerView(View):
        @guarded
        async def post(self, request: Request, request_id: str) -> Response:
            try:
                case_id = case_of_request(request_id)
            except CaseError as exc:
                raise ApiProblem(404, str(exc), [{"field": "request_id", "problem": "not a request id"}]) from None
            if FORWARDED_HEADER not in request.headers:
                owner = owner_url(app, agents.cases, case_id.encode())
                if owner is not None:
                    return await _forwarded(app, owner, request)
            return await _post_answer(agents, request, case_id, request_id)

    @app.page("/api/dashboard")
    class DashboardView(View):
        @guarded
        async def get(self, request: Request) -> Response:
            gate.require(request, "admin")
            return ok(await dashboard_data(agents, request))

    @app.page("/api/key-groups/{group}/roster")
    class RosterView(View):
        @guarded
        async def post(self, request: Request, group: str) -> Response:
            grant = gate.require(request, "enterprise")
            require_ready(agents)
            return ok(await post_roster(agents, request, group, grant), 202)

    @app.page("/api/key-groups")
    class KeyGroupsView(View):
        @guarded
        async def get(self, request: Request) -> Response:
            gate.require(request, "admin")
            if recovering(agents):
                raise ApiProblem(503, "this worker is recovering its tables after a start; retry in a moment",
                                 headers={"Retry-After": str(RECOVERY_RETRY_AFTER)})
            return ok(agents.key_groups.figures())


async def post_roster(agents: Agents, request: Any, group: str, grant: Any) -> dict[str, Any]:
    """Rows of a CSV roster (`id_number,name,phone,community`) onto the roster topic, for the caller's enterprise.

    The workers validate each row as they do a loaded roster: a bad row is dead-lettered with its line and reason.
    """
    from pipeline.errors import KeyGroupsError
    from pipeline.rosters import roster_rows

    kg = agents.key_groups
    if kg.groups is None or kg.groups.get(group) is None:
        known = ", ".join(kg.groups.ids) if kg.groups else "none yet"
        raise ApiProblem(404, f"no key group {group!r} (known: {known})")
    enterprise = grant.subject or request.query.get("enterprise", "")
    if not enterprise:
        raise ApiProblem(422, "an admin posting a roster names the enterprise: ?enterprise=ID")
    body = await read_body(request)
    try:
        text = body.decode("utf-8")
        rows = roster_rows(text, f"{enterprise}/{group}.csv", enterprise=enterprise, submitted_at=utc_now(), group=group)
    except UnicodeDecodeError:
        raise ApiProblem(415, "the roster must be UTF-8 CSV text") from None
    except KeyGroupsError as exc:
        raise ApiProblem(422, str(exc)) from None
    for row in rows:
        await kg.rosters_topic.send(value=row)
    return {"accepted": len(rows), "group": group, "enterprise": enterprise}


def _itinerary_policy(declaration: Declaration, agents: Agents) -> dict[str, Any] | None:
    """The most severe policy over the declared stops (each looked up at the time the stop ended)."""
    rules = agents.runtime.rules
    if rules is None:
        return None
    stops = [(s.lon, s.lat, s.to) for s in declaration.itinerary] or [
        (declaration.destination.lon, declaration.destination.lat, declaration.arrival_at)]
    policies = [policy_for(lon, lat, at, rules, agents.runtime.regions) for lon, lat, at in stops]
    return max(policies, key=lambda p: p.severity).to_json()


def _policy_query(query: Any) -> tuple[float, float, datetime]:
    fields = []
    values: dict[str, float] = {}
    for name, low, high in (("lon", -180.0, 180.0), ("lat", -90.0, 90.0)):
        raw = query.get(name)
        if raw is None:
            fields.append({"field": name, "problem": "missing"})
            continue
        try:
            value = float(raw)
        except ValueError:
            fields.append({"field": name, "problem": "not a number"})
            continue
        if not low <= value <= high:
            fields.append({"field": name, "problem": f"out of range [{low:g}, {high:g}]"})
        values[name] = value
    at = utc_now()
    if query.get("at"):
        try:
            at = datetime.fromisoformat(query["at"])
            if at.tzinfo is None:
                fields.append({"field": "at", "problem": "needs a UTC offset, e.g. 2022-06-01T08:00:00+08:00"})
        except ValueError:
            fields.append({"field": "at", "problem": "not an ISO 8601 time"})
    if fields:
        raise ApiProblem(400, "bad query parameters", fields)
    return values["lon"], values["lat"], at


async def _note(request: Any) -> str:
    if not request.can_read_body:
        return ""
    body = await read_body(request)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiProblem(400, "body is not valid JSON; send {\"note\": \"...\"} or nothing") from None
    note = document.get("note", "") if isinstance(document, dict) else None
    if not isinstance(note, str) or len(note) > 2000:
        raise ApiProblem(422, "note must be a string of at most 2000 characters",
                         [{"field": "note", "problem": "not a string of at most 2000 characters"}])
    return note.strip()


def _action_texts(agents: Agents, lang: str = "zh") -> dict[str, str]:
    rules = agents.runtime.rules
    if rules is None:
        return {}
    return {name: a.text_zh if lang == "zh" else a.text_en for name, a in rules.actions.items()}


#: Seconds a client is asked to wait while this worker recovers its tables.
RECOVERY_RETRY_AFTER = 2


def recovering(agents: Agents) -> bool:
    """Whether this worker is still reading its tables back from their changelogs (its queues are not complete)."""
    app = agents.app
    recovery = getattr(getattr(app, "tables", None), "recovery", None)
    if recovery is None:
        return False
    return not recovery.completed.is_set() or bool(getattr(app, "in_recovery", False))


def map_levels_of(agents: Agents) -> MapLevels:
    """The map level document of this worker (read once from settings' `map_levels` file)."""
    levels = getattr(agents, "_map_levels", None)
    if levels is None:
        settings = agents.runtime.settings
        levels = load_map_levels(settings.path(settings.map_levels))
        agents._map_levels = levels  # type: ignore[attr-defined]
    return levels


def incomplete_problem(exc: Incomplete) -> aioweb.Response:
    """503 with Retry-After: some partition of the cases table is answered by no worker right now."""
    response = aioweb.Response(
        body=orjson.dumps({"status": 503, "recovering": True, "fields": [], "missing_partitions": exc.missing,
                           "problem": "not every worker has answered (one is starting, recovering or leaving, and its "
                                      "cases are being handed over); retry in a moment"}),
        status=503, content_type="application/json")
    response.headers["Retry-After"] = str(RECOVERY_RETRY_AFTER)
    return response


def _decoded(agents: Agents) -> DecodedCases:
    """This worker's cache of decoded case records (shared by every queue it serves)."""
    cache = getattr(agents, "_decoded_cases", None)
    if cache is None:
        cache = agents._decoded_cases = DecodedCases(read_case)  # type: ignore[attr-defined]
    return cache


def _held(agents: Agents) -> frozenset[int]:
    return held_partitions(agents.app, agents.cases, recovering(agents))


def community_share(agents: Agents, code: str) -> Share:
    """This worker's part of a community's queue: the raw case records of its partitions, via the index."""
    held = _held(agents)
    records = [raw for raw in (agents.cases.get_in(k, p) for k, p in agents.index.keys_of(code, held)) if raw]
    return Share(held, records)


def _rows(agents: Agents, cases: list[tuple[Any, dict[str, Any]]], *, full_phone: bool) -> list[dict[str, Any]]:
    """Queue rows as JSON, open first by due time, times in the display zone."""
    zone = agents.runtime.settings.zone
    rows = queue_rows(cases, utc_now(), full_phone=full_phone, action_texts=_action_texts(agents, "zh"),
                      action_texts_en=_action_texts(agents, "en"), zone=zone)
    by_id = {c.case_id: c for c, _ in cases}
    now = utc_now()
    return [{**r.to_json(), "closed_reason": by_id[r.case_id].closed_reason, **_stages_json(by_id[r.case_id], zone),
             "requests": [request_json(q, now, zone) for q in by_id[r.case_id].requests]}
            for r in rows]


async def community_cases(agents: Agents, request: Any, code: str, *, full_phone: bool) -> dict[str, Any]:
    """The community's complete queue as JSON, gathered from every worker; `Incomplete` while some
    partition of the cases table has no worker answering for it."""
    rt = agents.runtime
    shares = await gather_shares(agents.app, agents.cases, f"/api/shares/communities/{code}/cases", request,
                                 lambda: community_share(agents, code))
    cases: dict[str, tuple[Any, dict[str, Any]]] = {}
    decoded = _decoded(agents)
    for share in shares:
        for raw in share.payload:
            case, message = decoded(raw)
            if case.community == code:
                cases[case.case_id] = (case, message)
    now = utc_now()
    zone = rt.settings.zone
    community = rt.communities.get(code)
    return {
        "community": code, "name": community.name if community else UNASSIGNED.get(code, code),
        "street": community.street if community else None, "now": now.astimezone(zone).isoformat(),
        "zone": zone.key, "recovering": False,
        "cases": _rows(agents, list(cases.values()), full_phone=full_phone),
    }


def _stages_json(case: Any, zone: Any) -> dict[str, Any]:
    """A case's transfer stages (times in the display zone), the next one, and its transfer and reception minutes."""
    if case.action not in STAGED_ACTIONS:
        return {}
    done = [row[0] for row in case.stages]
    return {
        "stages": [{"stage": k, "at": datetime.fromisoformat(at).astimezone(zone).isoformat(), "by": by, "site": site,
                    "arrived_at": datetime.fromisoformat(arrived).astimezone(zone).isoformat() if arrived else None}
                   for k, at, by, site, arrived in case.stages],
        "next_stage": STAGES[len(done)] if len(done) < len(STAGES) else None,
        **stage_times(case.accepted_at, case.stages),
    }


def _held_case(agents: Agents, gate: AccessGate, request: Any, case_id: str) -> tuple[Any, dict[str, Any]]:
    """The case `case_id` on this worker (its owner); 404 for an admin, 403 for anyone else, when there is none."""
    key = case_id.encode()
    raw = agents.cases.get_in(key, agents.cases.partition_for_key(key))
    if raw is None:
        gate.require(request, "admin")
        raise ApiProblem(404, f"no case {case_id!r} on any worker")
    return read_case(raw)


async def _forwarded(app: faust.App, owner: Any, request: Any, path: str | None = None) -> aioweb.Response:
    """Pass a request about a case to the worker holding it (at `path`, default the request's) and answer with
    that worker's reply."""
    headers = forwarded_headers(request)
    if request.content_type:
        headers["Content-Type"] = request.headers.get("Content-Type", request.content_type)
    body = await read_body(request) if request.can_read_body else None
    target = owner.with_path(path or request.path).with_query(request.query)
    try:
        async with app.http_client.request(request.method, target, headers=headers, data=body,
                                           timeout=aiohttp.ClientTimeout(total=DECISION_TIMEOUT)) as reply:
            passed = {k: v for k, v in reply.headers.items() if k == "Retry-After"}
            return aioweb.Response(body=await reply.read(), status=reply.status, headers=passed,
                                   content_type=reply.content_type)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.info("case request not forwarded owner=%s error=%s", owner, type(exc).__name__)
        raise ApiProblem(503, "the worker holding this case does not answer (it may be leaving the cluster); "
                              "retry in a moment", headers={"Retry-After": str(RETRY_AFTER_S)}) from None


def max_severity(agents: Agents) -> int:
    rules = agents.runtime.rules
    return max((a.severity for a in rules.actions.values()), default=0) if rules is not None else 0


def area_levels(agents: Agents, tally: Tally, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Map level per community and per street (config/map_levels.yaml), from the district's open cases."""
    rt = agents.runtime
    levels = map_levels_of(agents)
    communities = list(rt.communities)
    regions = region_levels(communities, rt.regions, now)
    facts = [AreaFacts(c.code, c.population, regions.get(c.code, 0), dict(tally.open_by_severity.get(c.code, {})))
             for c in communities]
    return levels_by_area(facts, levels), levels_by_area(street_facts(communities, facts), levels)


async def _post_stage(agents: Agents, request: Request, case_id: str) -> Response:
    """`POST /api/cases/{id}/stages` `{"stage": "dispatched" | "picked_up" | "received", "site": …, "arrived_at": …}`
    from the case's community or an isolation site's staff; 202 once the stage is on `case-events`."""
    rt = agents.runtime
    gate = gate_of(agents)
    require_ready(agents)
    raw = agents.cases.get(case_id.encode())
    if raw is None:
        gate.require(request, "admin")
        raise ApiProblem(404, f"no case {case_id!r} on this worker")
    case, _ = read_case(raw)
    try:
        grant = gate.require(request, "community", case.community)
    except Denied as exc:
        if exc.status != 403:
            raise
        grant = gate.require(request, "site")
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise ApiProblem(400, "the body is not JSON; send {\"stage\": \"dispatched\"}") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, "the body must be a JSON object such as {\"stage\": \"dispatched\"}")
    stage, site = str(body.get("stage", "")), str(body.get("site", "") or "")
    problem = stage_problem(case.action, case.stages, stage, site)
    if problem is not None:
        raise ApiProblem(409 if stage in STAGES else 400, problem, [{"field": "stage", "problem": problem}])
    arrived = None
    if body.get("arrived_at"):
        try:
            arrived = datetime.fromisoformat(str(body["arrived_at"]))
        except ValueError:
            arrived = None
        if arrived is None or arrived.tzinfo is None:
            raise ApiProblem(400, f"arrived_at was {body['arrived_at']!r} but is expected to be ISO 8601 with an offset",
                             [{"field": "arrived_at", "problem": "not a time with an offset"}])
    now = utc_now()
    event = CaseEvent(case_id=case_id, kind=stage, by=grant.who, at=now, site=site, arrived_at=arrived)
    await agents.topics.case_events.send(key=case_id.encode(), value=event.model_dump_json().encode())
    return ok({"case_id": case_id, "stage": stage, "by": grant.who, "site": site,
               "at": now.astimezone(rt.settings.zone).isoformat()}, 202)


def _require_poster(gate: AccessGate, request: Any) -> None:
    """A request is posted by a community's staff or an isolation site's (which community is checked on the case)."""
    try:
        gate.require(request, "site")
    except Denied as exc:
        if exc.status != 403:
            raise
        grant = gate.identify(request)
        if grant is None or grant.role not in ("community", "admin"):
            raise


def _case_grant(agents: Agents, request: Any, case: Any) -> Any:
    """The grant of the case's community staff, or else of an isolation site's."""
    gate = gate_of(agents)
    try:
        return gate.require(request, "community", case.community)
    except Denied as exc:
        if exc.status != 403:
            raise
        return gate.require(request, "site")


async def _json_object(request: Any, example: str) -> dict[str, Any]:
    require_json(request)
    try:
        body = orjson.loads(await read_body(request))
    except orjson.JSONDecodeError:
        raise ApiProblem(400, f"the body is not JSON; send {example}") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, f"the body must be a JSON object such as {example}")
    return body


def _case_and_grant(agents: Agents, request: Request, case_id: str, missing: str) -> tuple[Any, Any]:
    """The case this worker holds and the caller's grant on it; a missing case is a 404 (`missing`) to an
    admin only, so others cannot probe which cases exist."""
    require_ready(agents)
    raw = agents.cases.get(case_id.encode())
    if raw is None:
        gate_of(agents).require(request, "admin")
        raise ApiProblem(404, missing)
    case, _ = read_case(raw)
    return case, _case_grant(agents, request, case)


async def _post_request(agents: Agents, request: Request, case_id: str) -> Response:
    """`POST /api/cases/{id}/requests` `{"kind": "supplies" | "medical" | "other", "text": …}` on the person's
    behalf, from the case's community or an isolation site; 202 once the request is on `case-events`."""
    rt = agents.runtime
    case, grant = _case_and_grant(agents, request, case_id, f"no case {case_id!r} on this worker")
    body = await _json_object(request, '{"kind": "supplies", "text": "..."}')
    kind, text = body.get("kind"), body.get("text")
    problems = request_problems(kind, text)
    if problems:
        raise ApiProblem(422, "the request cannot be posted: " + "; ".join(f"{f} {p}" for f, p in problems),
                         [{"field": f, "problem": p} for f, p in problems])
    now = utc_now()
    text = str(text).strip()
    due = answer_due(rt.rules.document.requests if rt.rules is not None else None, str(kind), now)
    request_id = request_id_for(case_id, str(kind), text, now)
    event = CaseEvent(case_id=case_id, kind="request", by=grant.who, at=now, note=text, request_id=request_id,
                      request_kind=str(kind), due_at=due)
    await agents.topics.case_events.send(key=case_id.encode(), value=event.model_dump_json().encode())
    zone = rt.settings.zone
    return ok({"request_id": request_id, "case_id": case_id, "kind": kind, "by": grant.who,
               "posted_at": now.astimezone(zone).isoformat(), "due_at": due.astimezone(zone).isoformat()}, 202)


async def _post_answer(agents: Agents, request: Request, case_id: str, request_id: str) -> Response:
    """`POST /api/requests/{id}/answer` `{"answer": …}` from the case's community or an isolation site; 202 once
    the answer is on `case-events`, 409 when the request was answered already."""
    rt = agents.runtime
    case, grant = _case_and_grant(agents, request, case_id, f"no request {request_id!r}: its case is on no worker")
    row = next((r for r in case.requests if r[0] == request_id), None)
    if row is None:
        raise ApiProblem(404, f"no request {request_id!r} on case {case_id!r}")
    if row[6]:
        raise ApiProblem(409, f"request {request_id!r} was answered at {row[6]} by {row[7]}")
    body = await _json_object(request, '{"answer": "..."}')
    answer = body.get("answer")
    problems = [(f.replace("text", "answer"), p.replace("asks for", "is told")) for f, p in request_problems(row[1], answer)]
    if problems:
        raise ApiProblem(422, "the answer cannot be recorded: " + "; ".join(f"{f} {p}" for f, p in problems),
                         [{"field": f, "problem": p} for f, p in problems])
    now = utc_now()
    event = CaseEvent(case_id=case_id, kind="answered", by=grant.who, at=now, note=str(answer).strip(), request_id=request_id)
    await agents.topics.case_events.send(key=case_id.encode(), value=event.model_dump_json().encode())
    minutes = round((now - datetime.fromisoformat(row[3])).total_seconds() / 60, 1)
    return ok({"request_id": request_id, "case_id": case_id, "by": grant.who,
               "answered_at": now.astimezone(rt.settings.zone).isoformat(), "response_minutes": minutes}, 202)


def _counters(agents: Agents) -> dict[str, dict[str, float]]:
    """This worker's figures since it started: counts, dead letters by reason, latency sums, messages by action."""
    metrics = agents.runtime.metrics
    dead: dict[str, float] = {}
    for metric in metrics.dead_letters.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                reason = sample.labels.get("reason", "")
                dead[reason] = dead.get(reason, 0) + sample.value
    latency = {"count": 0.0, "sum": 0.0}
    for metric in metrics.latency.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                latency["count"] = sample.value
            elif sample.name.endswith("_sum"):
                latency["sum"] = sample.value
    flagged: dict[str, float] = {}
    for metric in metrics.verdicts.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                flagged[sample.labels["action"]] = sample.value
    counts = {k: float(v) for k, v in agents.counts.items()}
    return {"counts": counts, "dead_letters": dead, "latency": latency, "messages_by_action": flagged}


def dashboard_share(agents: Agents) -> Share:
    """This worker's tally: the cases of its partitions (via the index) and its own counters."""
    held = _held(agents)
    raws = (agents.cases.get_in(k, p) for k, p in agents.index.all_keys(held))
    tally = tally_cases((read_case(raw) for raw in raws if raw), utc_now(), _counters(agents))
    return Share(held, tally.to_json())


async def dashboard_data(agents: Agents, request: Any) -> dict[str, Any]:
    """The command centre's figures for the district: every worker's tally merged (durable totals from the
    cases table, streets, overdue cases, map levels, and the workers' counters since they started)."""
    shares = await gather_shares(agents.app, agents.cases, "/api/shares/dashboard", request, lambda: dashboard_share(agents))
    return dashboard_figures(agents, merge(Tally.from_json(s.payload) for s in shares), workers=len(shares))


def dashboard_figures(agents: Agents, tally: Tally, *, workers: int, recovering: bool = False) -> dict[str, Any]:
    """The dashboard's JSON from the district's tally (an empty one, `recovering`, while not every worker answers)."""
    rt = agents.runtime
    now = utc_now()
    zone = rt.settings.zone
    communities = list(rt.communities)
    figures = summary(tally, now, max_severity(agents), zone=zone, names={c.code: c.name for c in communities},
                      streets={c.code: c.street for c in communities}, action_texts=_action_texts(agents, "zh"))
    by_community, by_street = area_levels(agents, tally, now)
    colours = map_levels_of(agents)
    counters = tally.counters
    latency = counters.get("latency", {})
    count = int(latency.get("count", 0))
    return {
        **figures, "now": now.astimezone(zone).isoformat(), "zone": zone.key, "recovering": recovering,
        "workers": workers,
        "management": management_summary(list(agents.managed.values()), rt.clock(), zone,
                                         {c.code: c.street for c in communities}),
        "counts": {k: int(v) for k, v in counters.get("counts", {}).items()},
        "levels": by_community, "street_levels": by_street, "action_texts": _action_texts(agents, "zh"),
        "colours": {code: colours.by_number(n).colour for code, n in by_community.items()},
        "messages_by_action": {k: int(v) for k, v in sorted(counters.get("messages_by_action", {}).items())},
        "dead_letters_by_reason": {k: int(v) for k, v in sorted(counters.get("dead_letters", {}).items())},
        "latency_mean_ms": round(1000 * latency.get("sum", 0.0) / count, 1) if count else None,
        "latency_count": count, "rules_version": rt.rules_version,
        "key_groups": agents.key_groups.figures() if agents.key_groups is not None else None,
    }
