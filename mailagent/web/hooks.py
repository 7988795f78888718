"""Helpdesk webhooks: `POST /hooks/<kind>/<name>` for each `[helpdesks.NAME]`.

A delivery is verified (signature, freshness, size, shape), stored with its raw body and handed
to the workers, and answered in a few milliseconds: helpdesks retry and then circuit-break slow
endpoints, so nothing here calls the helpdesk's API. A request that fails a check gets 401, 400
or 413 with the reason in our log, and nothing is stored or enqueued. A repeated delivery (a
retry or a replay) is answered 200 and processed once."""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailagent import config
from mailagent.config import Settings
from mailagent.helpdesks import verifier
from mailagent.helpdesks.base import WebhookRejected
from mailagent.pipeline import helpdesk
from mailagent.worker import dispatch

log = logging.getLogger(__name__)


def routes(settings: Settings) -> list[Route]:
    async def receive(request: Request) -> Response:
        kind, name = request.path_params["kind"], request.path_params["name"]
        desk = settings.helpdesks.get(name)
        if desk is None or desk.kind != kind:
            log.warning("webhook for unknown helpdesk %s/%s refused", kind, name)
            return _refuse(404, f"no [helpdesks.{name}] of kind {kind}")
        where = f"webhook {kind}/{name} from {request.client.host if request.client else '?'}"
        try:
            body = await _body(request, desk.max_body_bytes)
            secret = config.secret(f"helpdesks.{name}.webhook_secret_env", desk.webhook_secret_env)
            headers = {k.lower(): v for k, v in request.headers.items()}
            event = verifier(kind)(desk, secret, headers, body, time.time())
        except WebhookRejected as exc:
            log.warning("%s refused (%d): %s", where, exc.status, exc.reason)
            return _refuse(exc.status, exc.reason)
        except config.ConfigError as exc:
            log.error("%s cannot be verified: %s", where, exc)
            return _refuse(503, "this endpoint is not configured (no webhook secret)")
        event_id, new = await run_in_threadpool(helpdesk.store_event, settings.database.url, name, event, body, headers)
        if new:
            try:
                dispatch.helpdesk_event(settings, event_id)
            except Exception:  # noqa: BLE001 - stored: the sweeper hands it on later
                log.exception("%s: event %d stored, not enqueued (the sweeper will)", where, event_id)
        else:
            log.info("%s: repeated delivery of event %d, not processed again", where, event_id)
        return JSONResponse({"ok": True, "event": event_id, "duplicate": not new})

    return [Route("/hooks/{kind}/{name}", receive, methods=["POST"])]


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) past `limit` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise WebhookRejected(400, "malformed Content-Length")
        if int(declared) > limit:
            raise WebhookRejected(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, reason: str) -> Response:
    return JSONResponse({"ok": False, "error": reason}, status_code=status)
