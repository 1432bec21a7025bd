"""HTML pages on the worker's web server: /login, a community's queue, the command-centre dashboard.

Server-rendered with jinja2; a little plain JavaScript (served from /static, no CDN) polls the JSON API
every second so new cases and colour changes show without a reload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import faust
import jinja2
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from geo.draw import community_map_svg
from streams.access import SESSION_COOKIE, SESSION_SECONDS, Denied
from streams.agents import Agents
from streams.api import community_cases, dashboard_data, gate_of

__all__ = ["register_pages"]

_HERE = Path(__file__).resolve().parent
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True)


def _html(name: str, status: int = 200, **context: Any) -> aioweb.Response:
    return aioweb.Response(text=_ENV.get_template(name).render(**context), status=status, content_type="text/html")


def _safe_next(value: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return ""


def _refused(request: Any, exc: Denied) -> aioweb.Response:
    if exc.status == 401:
        raise aioweb.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
    return _html("refused.html", status=exc.status, problem=exc.problem)


def register_pages(app: faust.App, agents: Agents) -> None:
    """Declare the HTML views and the static files on `app`."""
    gate = gate_of(agents)
    rt = agents.runtime
    app.web.add_static("/static/", _HERE / "static")

    @app.page("/login")
    class LoginView(View):
        async def get(self, request: Request) -> Response:
            return _html("login.html", next=_safe_next(request.query.get("next")), error="", open=gate.mode == "open")

        async def post(self, request: Request) -> Response:
            form = await request.post()
            target = _safe_next(str(form.get("next", "")))
            signed = gate.login(str(form.get("token", "")))
            if signed is None:
                return _html("login.html", status=401, next=target, error="That token is not valid.", open=False)
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
            if code not in rt.communities and code != "unassigned":
                return _html("refused.html", status=404, problem=f"no community with code {code!r}")
            data = community_cases(agents, code, full_phone=grant.role == "community")
            return _html("community.html", data=data, grant=grant, code=code)

    @app.page("/dashboard")
    class DashboardPage(View):
        async def get(self, request: Request) -> Response:
            try:
                grant = gate.require(request, "admin")
            except Denied as exc:
                return _refused(request, exc)
            data = dashboard_data(agents)
            svg = community_map_svg(list(rt.communities), data["colours"], regions=list(rt.regions))
            return _html("dashboard.html", data=data, svg=svg, grant=grant,
                         communities=sorted(rt.communities, key=lambda c: c.code), open=gate.mode == "open")

    @app.page("/")
    class Home(View):
        async def get(self, request: Request) -> Response:
            raise aioweb.HTTPSeeOther("/dashboard")

