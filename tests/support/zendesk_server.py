"""The slice of Zendesk's Support API mailagent uses, on 127.0.0.1, written from the API reference
(not from our client): users, tickets, comments and audits with cursor pagination, Update Ticket
(comments with `public` and `author_id`, `additional_tags` / `remove_tags`, `metadata` into the
audit's `metadata.custom`), API-token basic auth, the 5,000-comment cap (422), and 429s with
`Retry-After` from `ApiServer`. `webhook()` signs a delivery the way Zendesk does.

    with ZendeskServer(email="bot@acme.test", token="t0ken") as zd:
        ticket = zd.add_ticket("Refund please", requester=zd.customer, comments=["<p>Hi</p>"])
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .api_server import ApiServer, json_body, route

MAX_COMMENTS = 5000
MAX_PAGE = 100


@dataclass
class ZdTicket:
    id: int
    subject: str
    requester_id: int
    tags: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    updates: int = 0


class ZendeskServer(ApiServer):
    name = "zendesk"

    def __init__(self, *, email: str = "bot@acme.test", token: str = "zd-token") -> None:
        super().__init__()
        self.email, self.token = email, token
        self._ids = itertools.count(1001)
        self.users: dict[int, dict[str, Any]] = {}
        self.bot = self.add_user("mailagent bot", email, "agent")
        self.rep = self.add_user("Ana Rep", "ana@acme.test", "agent")
        self.customer = self.add_user("Carla Customer", "carla@customer.test", "end-user")
        self.tickets: dict[int, ZdTicket] = {}
        self._clock = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    # data

    def add_user(self, name: str, email: str, role: str) -> int:
        user_id = next(self._ids)
        self.users[user_id] = {"id": user_id, "name": name, "email": email, "role": role}
        return user_id

    def add_ticket(self, subject: str, *, requester: int, comments: tuple[str, ...] = (), author: int | None = None) -> int:
        ticket = ZdTicket(next(self._ids), subject, requester)
        with self.lock:
            self.tickets[ticket.id] = ticket
            for html in comments:
                self._add_comment(ticket, html, author or requester, public=True, metadata={})
        return ticket.id

    def add_comment(self, ticket_id: int, html: str, *, author: int, public: bool = True) -> int:
        with self.lock:
            return self._add_comment(self.tickets[ticket_id], html, author, public=public, metadata={})

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.tickets[ticket_id].comments]

    def _add_comment(self, ticket: ZdTicket, html: str, author: int, *, public: bool, metadata: dict[str, Any]) -> int:
        self._clock += timedelta(minutes=1)
        comment_id = next(self._ids)
        plain = " ".join(html.replace("<", " <").split())
        comment = {"id": comment_id, "type": "Comment", "author_id": author, "body": plain, "html_body": html,
                   "plain_body": plain, "public": public, "attachments": [], "audit_id": comment_id + 500000,
                   "via": {"channel": "api"}, "created_at": self._clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "metadata": {"system": {"client": "mailagent"}, "custom": {}}}
        ticket.comments.append(comment)
        ticket.audits.append({"id": comment["audit_id"], "ticket_id": ticket.id, "author_id": author,
                              "created_at": comment["created_at"], "metadata": {"system": {}, "custom": metadata},
                              "events": [{"id": comment_id, "type": "Comment", "public": public, "body": plain,
                                          "html_body": html, "author_id": author}]})
        return comment_id

    # webhooks, the way Zendesk sends them

    @staticmethod
    def webhook_headers(secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        stamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        return {"Content-Type": "application/json", "User-Agent": "Zendesk Webhook",
                "X-Zendesk-Webhook-Id": "01HWEBHOOK", "X-Zendesk-Webhook-Invocation-Id": uuid.uuid4().hex,
                "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode()}

    @staticmethod
    def webhook_body(ticket_id: int, *, event: str = "ticket_updated", current_user: int, tags: str = "") -> bytes:
        """The JSON body of the trigger `mailagent helpdesk check` prints, placeholders filled in."""
        return json.dumps({"event": event, "ticket_id": str(ticket_id), "current_user_id": str(current_user),
                           "tags": tags, "via": "Web form"}).encode()

    # HTTP

    def routes(self) -> list[Route]:
        return [
            route(self, "/api/v2/users/me.json", self._me),
            route(self, "/api/v2/tickets/{id:int}.json", self._ticket),
            route(self, "/api/v2/tickets/{id:int}.json", self._update, "PUT"),
            route(self, "/api/v2/tickets/{id:int}/comments.json", self._comments),
            route(self, "/api/v2/tickets/{id:int}/audits.json", self._audits),
        ]

    def _auth(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user != f"{self.email}/token" or secret != self.token:
            return None
        return self.users[self.bot]

    async def _me(self, request: Request, _body: bytes) -> Response:
        user = self._auth(request)
        return JSONResponse({"user": user}) if user else _unauthorized()

    async def _ticket(self, request: Request, _body: bytes) -> Response:
        if not self._auth(request):
            return _unauthorized()
        with self.lock:
            ticket = self.tickets.get(request.path_params["id"])
            if ticket is None:
                return _not_found()
            return JSONResponse({"ticket": self._ticket_json(ticket)})

    def _ticket_json(self, ticket: ZdTicket) -> dict[str, Any]:
        return {"id": ticket.id, "subject": ticket.subject, "requester_id": ticket.requester_id,
                "tags": list(ticket.tags), "status": "open"}

    async def _comments(self, request: Request, _body: bytes) -> Response:
        return self._list(request, "comments", lambda t: t.comments, users=True)

    async def _audits(self, request: Request, _body: bytes) -> Response:
        return self._list(request, "audits", lambda t: t.audits, users=False)

    def _list(self, request: Request, key: str, items: Any, *, users: bool) -> Response:
        """Cursor pagination: `page[size]` (at most 100), `page[after]` an opaque cursor."""
        if not self._auth(request):
            return _unauthorized()
        try:
            size = min(int(request.query_params.get("page[size]", MAX_PAGE)), MAX_PAGE)
            after = int(base64.urlsafe_b64decode(request.query_params["page[after]"]).decode()) \
                if "page[after]" in request.query_params else 0
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "InvalidPaginationParameter"}, 400)
        with self.lock:
            ticket = self.tickets.get(request.path_params["id"])
            if ticket is None:
                return _not_found()
            every = items(ticket)
            page = [dict(i) for i in every[after:after + size]]
        has_more = after + size < len(every)
        cursor = base64.urlsafe_b64encode(str(after + size).encode()).decode()
        base = f"{self.base_url}{request.url.path}"
        body: dict[str, Any] = {
            key: page,
            "meta": {"has_more": has_more, "after_cursor": cursor if has_more else None, "before_cursor": None},
            "links": {"next": f"{base}?page%5Bsize%5D={size}&page%5Bafter%5D={cursor}"
                              + ("&include=users" if users and "include" in request.query_params else "")
                      if has_more else None, "prev": None},
        }
        if users and request.query_params.get("include") == "users":
            authors = {c["author_id"] for c in page}
            body["users"] = [dict(self.users[a]) for a in sorted(authors) if a in self.users]
        return JSONResponse(body)

    async def _update(self, request: Request, body: bytes) -> Response:
        if not self._auth(request):
            return _unauthorized()
        try:
            update = json_body(body)["ticket"]
            assert isinstance(update, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            return JSONResponse({"error": "RecordInvalid", "description": "ticket is required"}, 400)
        with self.lock:
            ticket = self.tickets.get(request.path_params["id"])
            if ticket is None:
                return _not_found()
            ticket.updates += 1
            for tag in update.get("additional_tags") or []:
                if tag not in ticket.tags:
                    ticket.tags.append(tag)
            ticket.tags = [t for t in ticket.tags if t not in (update.get("remove_tags") or [])]
            audit: dict[str, Any] = {"id": None, "events": []}
            comment = update.get("comment")
            if comment:
                if len(ticket.comments) >= MAX_COMMENTS:
                    return JSONResponse({"error": "RecordInvalid", "description": "too many comments"}, 422)
                author = int(comment.get("author_id") or self.bot)
                if author not in self.users:
                    return JSONResponse({"error": "RecordInvalid", "description": "author not found"}, 422)
                self._add_comment(ticket, str(comment.get("html_body") or comment.get("body") or ""), author,
                                  public=bool(comment.get("public", True)), metadata=dict(update.get("metadata") or {}))
                audit = ticket.audits[-1]
            return JSONResponse({"ticket": self._ticket_json(ticket), "audit": audit})


def _unauthorized() -> Response:
    return JSONResponse({"error": "Couldn't authenticate you"}, 401)


def _not_found() -> Response:
    return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, 404)
