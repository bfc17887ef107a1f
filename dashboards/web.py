"""The live view's routes on the agent's API: the pages under /ui, their static files, the
login form that turns the API token into a session cookie, and /api/dashboards, which runs a
board's panels over a range (through the caller's `boards`, on the API's user-query slots)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from watchkeeper.agent.auth import Sessions, TokenCheck
from watchkeeper.dashboards import page
from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.snapshot import BoardData, BoardRequest, RangeError

Boards = Callable[[BoardRequest], Awaitable[BoardData]]
Authorised = Callable[[web.Request], bool]
Reply = Callable[..., web.Response]
# The pages' scripts and styles come from this origin only; nothing may frame them.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
FAILED_LOGIN_DELAY_S = 1.0


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Content-Security-Policy": PAGE_POLICY,
                                 "Cache-Control": "no-store"})


def _next(value: Any) -> str:
    """Where to go after logging in: a page of this view, never another site."""
    text = str(value or "/ui/")
    return text if text.startswith("/ui") and not text.startswith("/ui//") else "/ui/"


def add_routes(application: web.Application, *, database: str, tokens: TokenCheck,
               sessions: Sessions, authorised: Authorised, boards: Boards,
               reply: Reply) -> None:
    titles = {name: board["title"] for name, board in build_all(database).items()}

    def gate(page_name: page.LivePage) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            if not authorised(request):
                target = urlencode({"next": request.path_qs})  # keeps the page's own query
                raise web.HTTPFound(f"/ui/login?{target}" if tokens.required else "/ui/")
            return _html(page.live(page_name, logout=tokens.required))
        return serve

    async def login_form(request: web.Request) -> web.Response:
        if not tokens.required:
            raise web.HTTPFound("/ui/")
        return _html(page.login(_next(request.query.get("next")), failed=False))

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))
        if not tokens.required or not tokens.allows(f"Bearer {token}"):
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # guessing costs time
            return _html(page.login(_next(form.get("next")), failed=True), 401)
        response = web.HTTPSeeOther(_next(form.get("next")))
        response.set_cookie(Sessions.COOKIE, sessions.issue(), max_age=sessions.ttl_s,
                            path="/", httponly=True, samesite="Strict", secure=request.secure)
        raise response

    async def logout(_: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/ui/login" if tokens.required else "/ui/")
        response.del_cookie(Sessions.COOKIE, path="/")
        raise response

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            body = page.asset(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"no static file {name!r}") from None
        return web.Response(body=body, content_type=page.ASSETS[name],
                            headers={"Cache-Control": "max-age=3600"})

    async def board_list(request: web.Request) -> web.Response:
        if not authorised(request):
            return reply({"error": "missing or invalid bearer token or session"}, 401)
        return reply({"boards": [{"name": n, "title": t} for n, t in titles.items()]})

    async def board(request: web.Request) -> web.Response:
        if not authorised(request):
            return reply({"error": "missing or invalid bearer token or session"}, 401)
        chosen: dict[str, list[str]] = {}
        for key, value in request.query.items():
            if key.startswith("var-"):  # an empty value selects the empty string
                chosen.setdefault(key[4:], []).append(value)
        try:
            asked = BoardRequest(name=request.match_info["name"],
                                 start=request.query.get("from", "fit"),
                                 end=request.query.get("to", "now"), chosen=chosen)
        except ValidationError as exc:
            return reply({"error": str(exc)}, 400)
        try:
            data = await boards(asked)
        except RangeError as exc:
            return reply({"error": str(exc)}, 400)
        return reply(data.model_dump(mode="json"))

    async def root(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    router = application.router
    router.add_get("/ui", root)
    router.add_get("/ui/", gate("boards"))
    router.add_get("/ui/review", gate("review"))
    router.add_get("/ui/login", login_form)
    router.add_post("/ui/login", login)
    router.add_post("/ui/logout", logout)
    router.add_get("/ui/static/{name}", static)
    router.add_get("/api/dashboards", board_list)
    router.add_get("/api/dashboards/{name}", board)
