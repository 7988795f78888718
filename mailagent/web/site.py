"""The review site, mounted at /review by the app: sign-in, the role and CSRF guard every page
and form goes through, flash messages, security headers. The pages themselves are in
`pages.py` (reading) and `decisions.py` (forms that change something)."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailagent.config import ConfigError, Settings
from mailagent.store.models import Role
from mailagent.tomlfile import Problem
from mailagent.web import curation, decisions, pages
from mailagent.web.auth import LOGIN_COOKIE, SESSION_COOKIE, Auth, Visitor
from mailagent.web.proxy import TrustedProxies
from mailagent.web.render import STATIC, templates
from mailagent.web.signing import MIN_SECRET, Signer

log = logging.getLogger(__name__)

PREFIX = "/review"
FLASH_COOKIE = "mailagent_flash"
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

Handler = Callable[["Site", Request, Visitor, FormData | None], Response]


class Site:
    def __init__(self, settings: Settings, secret: str) -> None:
        self.settings, self.url = settings, settings.database.url
        self.auth = Auth(settings, Signer(secret))
        self.templates = templates()

    # --- rendering -------------------------------------------------------------------------

    def render(self, request: Request, visitor: Visitor | None, template: str, status_code: int = 200,
               **context: Any) -> Response:
        flash = self._flash(request)
        response = self.templates.TemplateResponse(request, template, {
            "root": request.scope.get("root_path", ""), "visitor": visitor, "user": visitor.user if visitor else None,
            "csrf": self.auth.csrf_token(visitor) if visitor else "", "flash": flash, "Role": Role, **context,
        }, status_code=status_code)
        if flash:
            self.auth.clear_cookie(response, request, FLASH_COOKIE)
        return response

    def error(self, request: Request, visitor: Visitor | None, status: int, message: str) -> Response:
        return self.render(request, visitor, "error.html", status, code=status, message=message)

    def done(self, request: Request, to: str, message: str, ok: bool = True) -> Response:
        """After a form: redirect (so a reload does not post again) and say what happened."""
        response = RedirectResponse(request.scope.get("root_path", "") + to, status_code=303)
        payload = base64.urlsafe_b64encode(json.dumps({"ok": ok, "text": message}).encode()).decode().rstrip("=")
        self.auth.set_cookie(response, request, FLASH_COOKIE, self.auth.signer.sign("flash", payload), 60)
        return response

    def _flash(self, request: Request) -> dict[str, Any] | None:
        payload = self.auth.signer.unsign("flash", request.cookies.get(FLASH_COOKIE))
        if payload is None:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        return {"ok": bool(data.get("ok")), "text": str(data.get("text", ""))}

    # --- the guard -------------------------------------------------------------------------

    def guarded(self, role: Role, handler: Handler) -> Callable[[Request], Any]:
        """Signed in, allowed by role, and for a POST the CSRF token of this session; then the
        handler runs in a thread (it talks to the database)."""

        async def endpoint(request: Request) -> Response:
            visitor = await run_in_threadpool(self.auth.visitor, request)
            if visitor is None:
                if refused := self.auth.proxy_user_refused(request):
                    return self.error(request, None, 403, f"there is no enabled account named {refused!r}: "
                                      "ask ops to add it with `mailagent users add`")
                if request.method == "GET":
                    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                    return RedirectResponse(f"{request.scope.get('root_path', '')}/login?next={target}", 303)
                return self.error(request, None, 401, "sign in first")
            if not visitor.may(role):
                return self.error(request, visitor, 403, f"this page is for the {role} role and above; "
                                  f"you are signed in as {visitor.user.name} ({visitor.user.role})")
            form = None
            if request.method == "POST":
                form = await request.form()
                token = form.get("csrf")
                if not self.auth.csrf_ok(visitor, token if isinstance(token, str) else None):
                    log.warning("refused a POST to %s by %s: missing or wrong CSRF token", request.url.path,
                                visitor.user.name)
                    return self.error(request, visitor, 403, "this form's security token is missing or wrong: "
                                      "nothing was changed. Reload the page and try again.")
            return await run_in_threadpool(handler, self, request, visitor, form)

        return endpoint

    # --- signing in ------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        next_page = _local(request.query_params.get("next", ""), request)
        if request.method == "GET":
            nonce = request.cookies.get(LOGIN_COOKIE) or base64.urlsafe_b64encode(os.urandom(18)).decode()
            response = self.render(request, None, "login.html", token=self.auth.login_form_token(nonce),
                                   next=next_page, error="", name="")
            self.auth.set_cookie(response, request, LOGIN_COOKIE, nonce, 3600, samesite="strict")
            return response
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        token = form.get("csrf")
        if not self.auth.login_form_ok(request, token if isinstance(token, str) else None):
            return self.error(request, None, 403, "this form's security token is missing or wrong: reload the "
                              "sign-in page and try again.")
        address = request.client.host if request.client else ""
        outcome = await run_in_threadpool(self.auth.sign_in, name, password, address)
        if outcome.token is None:
            nonce = request.cookies.get(LOGIN_COOKIE, "")
            return self.render(request, None, "login.html", outcome.status, token=self.auth.login_form_token(nonce),
                               next=next_page, error=outcome.error, name=name)
        response = RedirectResponse(request.scope.get("root_path", "") + (next_page or "/queue"), status_code=303)
        self.auth.session_cookie(response, request, outcome.token)
        self.auth.clear_cookie(response, request, LOGIN_COOKIE)
        return response

    def app(self) -> Starlette:
        g = self.guarded
        routes = [
            Route("/", lambda request: RedirectResponse(request.scope.get("root_path", "") + "/queue", 303)),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", g(Role.REP, logout), methods=["POST"]),
            Route("/queue", g(Role.REP, pages.queue)),
            Route("/conversations/{id:int}", g(Role.REP, pages.conversation)),
            Route("/actions", g(Role.REP, pages.actions)),
            Route("/quality", g(Role.LEAD, pages.quality)),
            Route("/flags", g(Role.LEAD, pages.flags)),
            Route("/ops", g(Role.OPS, pages.ops)),
            Route("/suggestions", g(Role.LEAD, curation.suggestion_list)),
            Route("/suggestions/{id:int}", g(Role.LEAD, curation.suggestion)),
            Route("/suggestions/{id:int}/accept", g(Role.LEAD, curation.accept_suggestion), methods=["POST"]),
            Route("/suggestions/{id:int}/reject", g(Role.LEAD, curation.reject_suggestion), methods=["POST"]),
            Route("/knowledge", g(Role.LEAD, curation.knowledge)),
            Route("/knowledge/{id:str}", g(Role.LEAD, curation.article)),
            Route("/evals", g(Role.LEAD, curation.case_list)),
            Route("/evals/{id:int}", g(Role.LEAD, curation.case)),
            Route("/evals/accept", g(Role.LEAD, curation.accept_cases), methods=["POST"]),
            Route("/evals/drop", g(Role.LEAD, curation.drop_cases), methods=["POST"]),
            Route("/evals/{id:int}/tag", g(Role.LEAD, curation.tag_case), methods=["POST"]),
            Route("/drafts/{id:int}/approve", g(Role.REP, decisions.approve_draft), methods=["POST"]),
            Route("/drafts/{id:int}/reject", g(Role.REP, decisions.reject_draft), methods=["POST"]),
            Route("/actions/{id:int}/approve", g(Role.REP, decisions.approve_action), methods=["POST"]),
            Route("/actions/{id:int}/reject", g(Role.REP, decisions.reject_action), methods=["POST"]),
            Route("/conversations/{id:int}/take", g(Role.REP, decisions.take), methods=["POST"]),
            Route("/conversations/{id:int}/release", g(Role.REP, decisions.release), methods=["POST"]),
            Route("/conversations/{id:int}/flag", g(Role.REP, decisions.flag), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        proxies = Middleware(TrustedProxies, proxies=self.settings.web.trusted_proxies)
        return Starlette(routes=routes, middleware=[proxies, Middleware(SecurityHeaders)])


def logout(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    site.auth.sign_out(visitor)
    response = RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
    site.auth.clear_cookie(response, request, SESSION_COOKIE)
    return response


class SecurityHeaders:
    """Every response of the site: a strict content security policy (no inline script, no
    images from elsewhere), no framing, no caching of pages with customer mail in them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.encode(), v.encode()) for k, v in HEADERS.items())]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _local(target: str, request: Request) -> str:
    """Where to go after signing in: only a path of this site (no open redirect)."""
    root = request.scope.get("root_path", "")
    rest = target[len(root):] if target.startswith(root + "/") else ""
    return rest if rest.startswith("/") and not rest.startswith("//") and "\\" not in rest else ""


def secret(settings: Settings, environ: dict[str, str] | None = None) -> str | None:
    """The session secret, or None when its variable is not set (the site is then off)."""
    env = os.environ if environ is None else environ
    value = env.get(settings.web.session_secret_env, "")
    if not value:
        return None
    if len(value) < MIN_SECRET:
        raise ConfigError([Problem("environment", None, "web.session_secret_env",
                                   f"{settings.web.session_secret_env} must hold at least {MIN_SECRET} characters "
                                   "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')")])
    return value


def routes(settings: Settings) -> list[BaseRoute]:
    """What the app mounts: the review site at /review (or a 503 saying how to turn it on)."""
    key = secret(settings)
    if key is None:
        message = (f"the review page is off: set {settings.web.session_secret_env} to a random secret of at least "
                   f"{MIN_SECRET} characters and restart `mailagent web`\n")
        site: ASGIApp = PlainTextResponse(message, status_code=503)
    else:
        site = Site(settings, key).app()
    return [Route("/", lambda request: RedirectResponse(PREFIX + "/", 303)), Mount(PREFIX, app=site)]
