"""The epidemiologist's view of contact tracing: `GET /api/persons/{key}/contacts` (admin) and the chain page.

Both answer from what this worker holds: the index case's trace request (every worker reads all of
them) and the exposures in its own `contacts` table partitions.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from geo.points_map import MapPoint, points_map_svg
from pipeline.contacts import Person, chain, decode_exposures
from pipeline.state import state_from_bytes
from streams.access import Denied
from streams.agents import Agents
from streams.api import gate_of, ok, problem

__all__ = ["contact_chain", "index_cases", "register_contact_views"]

_KIND_ZH = {"close": "密切接触者", "secondary": "次密切接触者"}
_KIND_EN = {"close": "close contact", "secondary": "secondary contact"}


def index_cases(agents: Agents) -> list[dict[str, str]]:
    """The positive people whose contacts are being traced (their trace requests), newest first."""
    tracing = agents.tracing
    if tracing is None:
        return []
    found = [r for r in tracing.requests.values() if r.degree == "close"]
    found.sort(key=lambda r: -max((p.t_to for p in r.places), default=r.not_before))
    return [{"person_key": r.source_key, "masked_id": r.source_masked_id} for r in found]


def contact_chain(agents: Agents, person_key: str) -> dict[str, Any] | None:
    """The chain of one index case as `pipeline.contacts.chain` gives it; None when they are not one."""
    tracing = agents.tracing
    rt = agents.runtime
    if tracing is None or rt.rules is None:
        return None
    request = tracing.requests.get(f"close/{person_key}")
    if request is None:
        return None
    exposures = {}
    for key, raw in list(tracing.contacts.items()):
        held = decode_exposures(raw)
        if held:
            exposures[key.decode()] = held
    people = {}
    for key in exposures:
        raw = agents.persons.get_in(key.encode(), agents.persons.partition_for_key(key.encode()))
        if raw:
            state = state_from_bytes(raw)
            people[key] = Person(key, state.masked_id, state.name)
    return chain(person_key, request.index_masked_id, request.places, exposures, people, rt.settings.zone)


def chain_svg(found: dict[str, Any], agents: Agents, lang: str) -> str:
    """The index case's places (red squares) and each contact at the shared place (circles), numbered as in the table."""
    points = [MapPoint(p["lon"], p["lat"], "index", f"{'病例' if lang == 'zh' else 'index'} {i + 1}",
                       f"{p['place']} {p['from']} – {p['to']}") for i, p in enumerate(found["index"]["places"])]
    names = _KIND_ZH if lang == "zh" else _KIND_EN
    points += [MapPoint(c["lon"], c["lat"], c["degree"], str(i + 1),
                        f"{names[c['degree']]} {c['masked_id']} · {c['place']} · {c['from']}")
               for i, c in enumerate(found["contacts"])]
    return points_map_svg(points, list(agents.runtime.communities), label="流调链" if lang == "zh" else "contact chain")


def register_contact_views(app: faust.App, agents: Agents) -> None:
    """Declare the contacts API and page on `app`."""
    from streams.pages import _html, _refused, page_lang

    gate = gate_of(agents)

    @app.page("/api/persons/{person_key}/contacts")
    class ContactsView(View):
        async def get(self, request: Request, person_key: str) -> Response:
            try:
                gate.require(request, "admin")
            except Denied as exc:
                return problem(exc.status, exc.problem)
            found = contact_chain(agents, person_key)
            if found is None:
                return problem(404, "this person is not a traced positive case on this worker")
            return ok(found)

    @app.page("/contacts/{person_key}")
    class ContactsPage(View):
        async def get(self, request: Request, person_key: str) -> Response:
            try:
                grant = gate.require(request, "admin")
            except Denied as exc:
                return _refused(request, exc)
            found = contact_chain(agents, person_key)
            lang = page_lang(request)
            if found is None:
                return _html("refused.html", status=404, request=request,
                             problem="此人不是正在流调的阳性病例" if lang == "zh" else "not a traced positive case")
            return _html("contacts.html", request=request, zone=agents.runtime.settings.zone, grant=grant, data=found,
                         svg=chain_svg(found, agents, lang), kinds=_KIND_ZH if lang == "zh" else _KIND_EN)


