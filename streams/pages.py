"""HTML pages on the worker's web server: /login, a community's queue, the command-centre dashboard.

Server-rendered with jinja2, Chinese first (`?lang=en` switches to English and is remembered in a
cookie); a little plain JavaScript (served from /static, no CDN) polls the JSON API every second so new
cases and colour changes show without a reload. Times are shown in the settings' display zone, labelled.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faust
import jinja2
import shapely
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from geo.communities import Community
from geo.draw import community_map_svg
from pipeline.reports import UNASSIGNED, zone_label
from pipeline.tally import Tally
from streams.access import SESSION_COOKIE, SESSION_SECONDS
from streams.agents import Agents
from streams.api import community_cases, dashboard_data, dashboard_figures, gate_of, map_levels_of
from streams.contact_views import index_cases
from streams.errors import Denied
from streams.queries import Incomplete
from streams.runtime import utc_now

__all__ = ["LANG_COOKIE", "page_lang", "register_pages"]

_HERE = Path(__file__).resolve().parent
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True)


LANG_COOKIE = "epiflow_lang"


def page_lang(request: Any) -> str:
    """`?lang=zh|en` if given, else the remembered choice, else Chinese."""
    asked = request.query.get("lang")
    if asked in ("zh", "en"):
        return asked
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "zh"


def _local(value: str | None, zone: Any, with_date: bool = True) -> str:
    """An ISO time as the page shows it, in the display zone: `06-20 10:30`."""
    if not value:
        return "—"
    t = datetime.fromisoformat(value).astimezone(zone)
    return t.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def _html(name: str, status: int = 200, request: Any = None, zone: Any = None, **context: Any) -> aioweb.Response:
    lang = page_lang(request) if request is not None else "zh"
    now = utc_now()

    def t(zh: str, en: str) -> str:
        return zh if lang == "zh" else en

    if zone is not None:
        context.update(zone_label=zone_label(zone, now, lang), zone_key=zone.key,
                       local=lambda v, with_date=True: _local(v, zone, with_date))
    other = "en" if lang == "zh" else "zh"
    switch = str(request.rel_url.update_query(lang=other)) if request is not None else f"/?lang={other}"
    response = aioweb.Response(
        text=_ENV.get_template(name).render(lang=lang, t=t, switch_href=switch, **context),
        status=status, content_type="text/html")
    if request is not None and request.query.get("lang") in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", path="/")
    return response


def _figures_page(name: str, data: dict[str, Any], *, request: Any, zone: Any, **context: Any) -> aioweb.Response:
    """A page of figures `data`: 503 with Retry-After while some partition is recovering, so no partial page
    passes for a whole one."""
    response = _html(name, status=503 if data["recovering"] else 200, request=request, zone=zone, data=data,
                     **context)
    if data["recovering"]:
        response.headers["Retry-After"] = "2"
    return response


def _street_shapes(communities: list[Community]) -> list[Community]:
    """One outline per street (its communities dissolved), named by the street, for the street view."""
    by: dict[str, list[Community]] = {}
    for c in communities:
        by.setdefault(c.street, []).append(c)
    shapes = []
    for street, members in by.items():
        people = [m.population for m in members if m.population is not None]
        outline = shapely.union_all([m.geometry for m in members], grid_size=1e-6)
        shapes.append(Community(street, street, street, outline,
                                sum(people) if people else None))
    return shapes


def _safe_next(value: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return ""


def _refused(request: Any, exc: Denied) -> aioweb.Response:
    if exc.status == 401:
        raise aioweb.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
    return _html("refused.html", status=exc.status, request=request, problem=exc.problem)


def _waiting(code: str, rt: Any) -> dict[str, Any]:
    """A queue page's data while not every worker answers: no cases shown, the page polls until they do."""
    community = rt.communities.get(code)
    now = utc_now()
    return {"community": code, "name": community.name if community else UNASSIGNED.get(code, code),
            "street": community.street if community else None, "now": now.astimezone(rt.settings.zone).isoformat(),
            "zone": rt.settings.zone.key, "recovering": True, "cases": []}


def register_pages(app: faust.App, agents: Agents) -> None:
    """Declare the HTML views and the static files on `app`."""
    gate = gate_of(agents)
    rt = agents.runtime
    app.web.add_static("/static/", _HERE / "static")

    @app.page("/login")
    class LoginView(View):
        async def get(self, request: Request) -> Response:
            return _html("login.html", request=request, next=_safe_next(request.query.get("next")), error="",
                         open=gate.mode == "open")

        async def post(self, request: Request) -> Response:
            form = await request.post()
            target = _safe_next(str(form.get("next", "")))
            signed = gate.login(str(form.get("token", "")))
            if signed is None:
                return _html("login.html", status=401, request=request, next=target, error="bad-token", open=False)
            grant, cookie = signed
            if not target:
                target = f"/communities/{quote(grant.subject)}" if grant.role == "community" else "/dashboard"
            response = aioweb.HTTPSeeOther(target)
            response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="Strict", path="/")
            raise response

    @app.page("/logout")
    class LogoutView(View):
        async def get(self, request: Request) -> Response:
            response = aioweb.HTTPSeeOther("/login")
            response.del_cookie(SESSION_COOKIE, path="/")
            raise response

    @app.page("/communities/{code}")
    class CommunityPage(View):
        async def get(self, request: Request, code: str) -> Response:
            try:
                grant = gate.require(request, "community", code)
            except Denied as exc:
                return _refused(request, exc)
            if code not in rt.communities and code not in UNASSIGNED:
                return _html("refused.html", status=404, request=request, problem=f"no community with code {code!r}")
            full_phone = grant.role == "community"
            try:
                data = await community_cases(agents, request, code, full_phone=full_phone)
            except Incomplete:
                data = _waiting(code, rt)
            return _figures_page("community.html", data, request=request, zone=rt.settings.zone,
                                 grant=grant, code=code, full_phone=full_phone)

    @app.page("/dashboard")
    class DashboardPage(View):
        async def get(self, request: Request) -> Response:
            try:
                grant = gate.require(request, "admin")
            except Denied as exc:
                return _refused(request, exc)
            try:
                data = await dashboard_data(agents, request)
            except Incomplete:
                data = dashboard_figures(agents, Tally(), workers=0, recovering=True)
            lang = page_lang(request)
            levels = map_levels_of(agents)
            names = {level.colour: level.name.zh if lang == "zh" else level.name.en for level in levels.levels}
            communities = list(rt.communities)
            regions = list(rt.regions)
            svg = community_map_svg(communities, data["colours"], regions=regions, labels=names,
                                    label="社区风险地图" if lang == "zh" else "community risk map")
            street_colours = {s: levels.by_number(n).colour for s, n in data["street_levels"].items()}
            street_svg = community_map_svg(_street_shapes(communities), street_colours, regions=regions,
                                           link="/dashboard#street-{code}", labels=names,
                                           label="街道风险地图" if lang == "zh" else "street risk map", show_names=True)
            today = utc_now().astimezone(rt.settings.zone).date().isoformat()
            return _figures_page("dashboard.html", data, request=request,
                                 zone=rt.settings.zone, svg=svg, street_svg=street_svg, grant=grant,
                                 levels=levels, today=today, open=gate.mode == "open",
                                 count_regions=len(regions), recovering=data["recovering"],
                                 index_cases=index_cases(agents))

    @app.page("/")
    class Home(View):
        async def get(self, request: Request) -> Response:
            raise aioweb.HTTPSeeOther("/dashboard")

