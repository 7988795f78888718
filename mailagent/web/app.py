"""The Starlette app behind `mailagent web`."""

from __future__ import annotations

from sqlalchemy import func, text
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mailagent.config import Settings
from mailagent.store import db
from mailagent.store.models import Message, Outbound
from mailagent.web import hooks
from mailagent.worker import watch


def create_app(settings: Settings) -> Starlette:
    url = settings.database.url

    async def health(_request: Request) -> Response:
        """Ready when the database answers and every IDLE watcher the configuration asks for is
        running (a dead watcher leaves new mail waiting for the next poll)."""
        try:
            with db.engine(url).connect() as conn:
                conn.execute(text("SELECT 1"))
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
            for (state, kind, count) in s.exec(select(Message.state, Message.kind, func.count())
                                               .group_by(Message.state, Message.kind)):
                lines.append(f'mailagent_messages{{state="{state}",kind="{kind or ""}"}} {count}')
            for (state, count) in s.exec(select(Outbound.state, func.count()).group_by(Outbound.state)):
                lines.append(f'mailagent_outbound{{state="{state}"}} {count}')
        return PlainTextResponse("\n".join(lines) + "\n")

    return Starlette(routes=[Route("/healthz", health), Route("/metrics", metrics), *hooks.routes(settings)])
