"""The Starlette app behind `mailagent web`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mailagent.config import Settings
from mailagent.store import db, views
from mailagent.store import health as stored_health
from mailagent.web import hooks, site
from mailagent.worker import watch


def create_app(settings: Settings) -> Starlette:
    url = settings.database.url

    async def health(_request: Request) -> Response:
        """Ready when the database answers and every IDLE watcher the configuration asks for is
        running (a dead watcher leaves new mail waiting for the next poll)."""
        try:
            stored_health.ping(url)
            watchers = watch.status(settings)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return JSONResponse({"ok": False, "database": type(exc).__name__}, status_code=503)
        if not watchers:
            return JSONResponse({"ok": True})
        ok = all(w["ok"] for w in watchers.values())
        return JSONResponse({"ok": ok, "watchers": watchers}, status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        """Counts by state in the Prometheus text format."""
        lines = []
        with db.session(url) as s:
            for (state, kind, count) in views.message_counts(s):
                lines.append(f'mailagent_messages{{state="{state}",kind="{kind or ""}"}} {count}')
            for (state, count) in views.outbound_counts(s):
                lines.append(f'mailagent_outbound{{state="{state}"}} {count}')
        return PlainTextResponse("\n".join(lines) + "\n")

    return Starlette(routes=[Route("/healthz", health), Route("/metrics", metrics), *hooks.routes(settings),
                             *site.routes(settings)])
