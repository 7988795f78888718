"""The slice of Help Scout's Mailbox API 2.0 mailagent uses, on 127.0.0.1, written from the API
reference (not from our client): the OAuth2 client-credentials token endpoint with tokens that
expire, users/me, conversations, threads (HAL, paged, newest first), replies (`draft: true` makes
a draft), notes, tags (PUT replaces the list), `Resource-ID` on created threads, and 429s with
`X-RateLimit-Retry-After` from `ApiServer`. `webhook_headers()` signs a delivery like Help Scout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .api_server import ApiServer, json_body, route

PAGE_SIZE = 25


@dataclass
class HsConversation:
    id: int
    subject: str
    mailbox_id: int
    customer: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    threads: list[dict[str, Any]] = field(default_factory=list)


class HelpScoutServer(ApiServer):
    name = "helpscout"

    def __init__(self, *, client_id: str = "app-id", client_secret: str = "app-secret",
                 token_lifetime: int = 7200) -> None:
        super().__init__()
        self.client_id, self.client_secret, self.token_lifetime = client_id, client_secret, token_lifetime
        self._ids = itertools.count(5001)
        self.bot = {"id": 11, "type": "user", "email": "bot@acme.test", "first": "mailagent", "last": "bot"}
        self.rep = {"id": 12, "type": "user", "email": "ana@acme.test", "first": "Ana", "last": "Rep"}
        self.customer = {"id": 901, "type": "customer", "email": "carla@customer.test", "first": "Carla", "last": "C"}
        self.users = {11: self.bot, 12: self.rep}
        self.conversations: dict[int, HsConversation] = {}
        self.tokens: dict[str, float] = {}          # access token -> expiry (time.time())
        self.token_requests = 0
        self._clock = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    # data

    def add_conversation(self, subject: str, *, mailbox_id: int = 77, threads: tuple[str, ...] = ()) -> int:
        convo = HsConversation(next(self._ids), subject, mailbox_id, dict(self.customer))
        with self.lock:
            self.conversations[convo.id] = convo
            for html in threads:
                self._add_thread(convo, "customer", html, self.customer)
        return convo.id

    def add_thread(self, convo_id: int, html: str, *, kind: str = "customer", by: dict[str, Any] | None = None,
                   state: str = "published") -> int:
        with self.lock:
            return self._add_thread(self.conversations[convo_id], kind, html, by or self.customer, state=state)

    def threads(self, convo_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self.conversations[convo_id].threads]

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = {t: 0.0 for t in self.tokens}

    def _add_thread(self, convo: HsConversation, kind: str, html: str, by: dict[str, Any], *, state: str = "published") -> int:
        self._clock += timedelta(minutes=1)
        thread_id = next(self._ids)
        convo.threads.append({"id": thread_id, "type": kind, "status": "active", "state": state, "body": html,
                              "source": {"type": "email" if kind == "customer" else "api",
                                         "via": "customer" if by.get("type") == "customer" else "user"},
                              "createdBy": dict(by), "customer": dict(convo.customer),
                              "createdAt": self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")})
        return thread_id

    def payload(self, convo_id: int) -> bytes:
        """A webhook body: the conversation, its threads embedded (newest first), as Help Scout sends it."""
        with self.lock:
            convo = self.conversations[convo_id]
            body = {**self._convo_json(convo), "_embedded": {"threads": list(reversed(convo.threads))}}
        return json.dumps(body).encode()

    @staticmethod
    def webhook_headers(secret: str, body: bytes, event: str) -> dict[str, str]:
        digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
        return {"Content-Type": "application/json", "X-HelpScout-Event": event,
                "X-HelpScout-Signature": base64.b64encode(digest).decode()}

    # HTTP

    def routes(self) -> list[Route]:
        return [
            route(self, "/v2/oauth2/token", self._token, "POST"),
            route(self, "/v2/users/me", self._me),
            route(self, "/v2/conversations/{id:int}", self._conversation),
            route(self, "/v2/conversations/{id:int}/threads", self._threads),
            route(self, "/v2/conversations/{id:int}/reply", self._reply, "POST"),
            route(self, "/v2/conversations/{id:int}/notes", self._note, "POST"),
            route(self, "/v2/conversations/{id:int}/tags", self._tags, "PUT"),
        ]

    async def _token(self, request: Request, _body: bytes) -> Response:
        form = await request.form()
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return JSONResponse({"error": "invalid_client"}, 401)
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = time.time() + self.token_lifetime
        return JSONResponse({"token_type": "bearer", "access_token": token, "expires_in": self.token_lifetime})

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        with self.lock:
            return header.startswith("Bearer ") and self.tokens.get(header[7:], 0.0) > time.time()

    async def _me(self, request: Request, _body: bytes) -> Response:
        return JSONResponse(dict(self.bot)) if self._authorized(request) else _unauthorized()

    def _convo_json(self, convo: HsConversation) -> dict[str, Any]:
        return {"id": convo.id, "number": convo.id - 4000, "subject": convo.subject, "mailboxId": convo.mailbox_id,
                "status": "active", "state": "published", "type": "email",
                "primaryCustomer": {"id": convo.customer["id"], "email": convo.customer["email"]},
                "tags": [{"id": i + 1, "tag": t, "color": "#929499"} for i, t in enumerate(convo.tags)]}

    async def _conversation(self, request: Request, _body: bytes) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        with self.lock:
            convo = self.conversations.get(request.path_params["id"])
            return JSONResponse(self._convo_json(convo)) if convo else _not_found()

    async def _threads(self, request: Request, _body: bytes) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return JSONResponse({"message": "bad page"}, 400)
        with self.lock:
            convo = self.conversations.get(request.path_params["id"])
            if convo is None:
                return _not_found()
            newest_first = list(reversed(convo.threads))
        total_pages = max(1, -(-len(newest_first) // PAGE_SIZE))
        items = newest_first[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
        base = f"{self.base_url}{request.url.path}"
        links = {"self": {"href": f"{base}?page={page}"}, "first": {"href": f"{base}?page=1"},
                 "last": {"href": f"{base}?page={total_pages}"}}
        if page < total_pages:
            links["next"] = {"href": f"{base}?page={page + 1}"}
        return JSONResponse({"_embedded": {"threads": items}, "_links": links,
                             "page": {"size": PAGE_SIZE, "totalElements": len(newest_first),
                                      "totalPages": total_pages, "number": page}})

    async def _reply(self, request: Request, body: bytes) -> Response:
        return self._create(request, body, "reply")

    async def _note(self, request: Request, body: bytes) -> Response:
        return self._create(request, body, "note")

    def _create(self, request: Request, body: bytes, kind: str) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        payload = json_body(body) or {}
        if not isinstance(payload.get("text"), str) or not payload["text"]:
            return JSONResponse({"message": "text is required"}, 400)
        with self.lock:
            convo = self.conversations.get(request.path_params["id"])
            if convo is None:
                return _not_found()
            if kind == "reply" and (payload.get("customer") or {}).get("id") != convo.customer["id"]:
                return JSONResponse({"message": "customer must be the conversation's customer"}, 400)
            user = self.users.get(int(payload.get("user") or self.bot["id"]))
            if user is None:
                return JSONResponse({"message": "unknown user"}, 400)
            thread = self._add_thread(convo, kind, payload["text"], user,
                                  state="draft" if payload.get("draft") else "published")
        return Response(status_code=201, headers={"Resource-ID": str(thread),
                                                  "Location": f"{self.base_url}/v2/conversations/{convo.id}/threads/{thread}"})

    async def _tags(self, request: Request, body: bytes) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        payload = json_body(body) or {}
        with self.lock:
            convo = self.conversations.get(request.path_params["id"])
            if convo is None:
                return _not_found()
            convo.tags = [str(t) for t in payload.get("tags") or []]
        return Response(status_code=204)


def _unauthorized() -> Response:
    return JSONResponse({"error": "invalid_token"}, 401)


def _not_found() -> Response:
    return JSONResponse({"message": "not found"}, 404)
