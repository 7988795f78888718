"""Help Scout (Mailbox API 2.0): signed webhooks, conversation threads, notes, draft replies the
rep sends from the UI, tags.

API facts used (developer.helpscout.com/mailbox-api):
- auth: OAuth2 client credentials, `POST /v2/oauth2/token`; access tokens expire (we refresh
  before expiry and once more on a 401);
- threads: `GET /v2/conversations/{id}/threads?page=N`, HAL (`_embedded.threads`,
  `page.totalPages`); a thread's `createdBy.type` is `customer` or `user`, `type` is `customer`,
  `reply`, `message`, `note`, `lineitem` ..., `state` is `published`, `draft` ...;
- writes: `POST /v2/conversations/{id}/reply` (`draft: true` makes a draft), `POST .../notes`,
  `PUT .../tags` (replaces the list); created threads are named by the `Resource-ID` header;
- rate limit per account and minute; writes count as 2 requests; a 429 carries
  `X-RateLimit-Retry-After`.
Threads have no metadata field, so our marker is an HTML comment at the end of the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from mailagent import config
from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.helpdesks.api import Api, Auth, Cost, numeric_id, timestamp
from mailagent.helpdesks.base import (
    EventKind,
    HelpdeskError,
    Person,
    Posted,
    Role,
    Ticket,
    Turn,
    WebhookEvent,
    WebhookRejected,
)
from mailagent.helpdesks.budget import Budget

NAME = "Help Scout"
SIGNATURE = "x-helpscout-signature"
EVENT = "x-helpscout-event"
EVENTS = {
    "convo.created": EventKind.TICKET_CREATED,
    "convo.customer.reply.created": EventKind.CUSTOMER_REPLIED,
    "convo.agent.reply.created": EventKind.AGENT_REPLIED,
    "convo.note.created": EventKind.NOTE_ADDED,
    "convo.tags": EventKind.TAGS_CHANGED,
}
SUBSCRIBE = tuple(EVENTS)
TURN_TYPES = frozenset({"customer", "reply", "message", "note", "chat", "phone"})
_MARKER = re.compile(r"<!--\s*mailagent:([A-Za-z0-9._:-]{1,100})\s*-->")
TOKEN_MARGIN_SECONDS = 60


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA1(secret, raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def verify(settings: HelpdeskSettings, secret: str, headers: Mapping[str, str], body: bytes, now: float) -> WebhookEvent:
    """A Help Scout webhook delivery, checked. Help Scout signs the body only (no timestamp):
    replays are caught by the dedup key, which comes from the signed body alone (the event header
    is not signed, so a replay with another event name is still the same delivery)."""
    given = headers.get(SIGNATURE)
    if not given:
        raise WebhookRejected(401, "unsigned: X-HelpScout-Signature is required")
    if not hmac.compare_digest(signature(secret, body).encode(), given.strip().encode()):
        raise WebhookRejected(401, "the signature does not match (wrong secret, or the body was changed)")
    name = headers.get(EVENT, "").strip()
    if not name:
        raise WebhookRejected(400, "malformed: X-HelpScout-Event is missing")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "malformed: the body is not JSON") from None
    if not isinstance(payload, dict) or not str(payload.get("id", "")).isdigit():
        raise WebhookRejected(400, "malformed: the body is not a conversation (no numeric \"id\")")
    kind = EVENTS.get(name, EventKind.OTHER)
    # Who wrote the newest thread is who caused a reply or note event; a tag event does not say
    # who changed the tags (the newest thread's author need not be them), so it names nobody.
    actor = None if kind is EventKind.TAGS_CHANGED else _latest_author(payload)
    tags = payload.get("tags") or []
    mailbox = payload.get("mailboxId")
    return WebhookEvent(
        kind=kind, name=name, ticket_id=str(payload["id"]),
        dedup_key="helpscout:" + hashlib.sha256(body).hexdigest(), actor_id=actor,
        tags=tuple(str(t.get("tag") if isinstance(t, dict) else t) for t in tags if isinstance(t, dict | str)),
        scope=str(mailbox) if mailbox is not None else None,
    )


def _latest_author(payload: dict[str, Any]) -> str | None:
    """The user who wrote the newest thread the payload embeds (None for a customer)."""
    threads = [t for t in ((payload.get("_embedded") or {}).get("threads") or []) if isinstance(t, dict)]
    if not threads:
        return None
    newest = max(threads, key=lambda t: (str(t.get("createdAt", "")), int(t["id"]) if str(t.get("id", "")).isdigit() else 0))
    author = newest.get("createdBy") or {}
    if isinstance(author, dict) and author.get("type") == "user" and author.get("id") is not None:
        return str(author["id"])
    return None


class OAuth(Auth):
    """Client credentials; one token per app and process, shared by threads, renewed before it
    expires and after a 401."""

    _tokens: dict[str, tuple[str, float]] = {}
    _lock = threading.Lock()

    def __init__(self, settings: HelpdeskSettings, name: str, client: httpx.Client) -> None:
        self.settings, self.name, self.client = settings, name, client

    def headers(self) -> dict[str, str]:
        with self._lock:
            token, expires = self._tokens.get(self._key, ("", 0.0))
            if not token or time.time() >= expires:
                token = self._fetch()
        return {"Authorization": f"Bearer {token}"}

    def refresh(self) -> bool:
        with self._lock:
            self._fetch()
        return True

    @property
    def _key(self) -> str:
        return f"{self.settings.api_url}|{self.settings.client_id}"

    def _fetch(self) -> str:
        secret = config.secret(f"helpdesks.{self.name}.client_secret_env", self.settings.client_secret_env)
        try:
            response = self.client.post("/v2/oauth2/token", data={
                "grant_type": "client_credentials", "client_id": self.settings.client_id or "", "client_secret": secret})
        except httpx.TransportError as exc:
            raise HelpdeskError(f"{self.name}: the token endpoint did not answer ({type(exc).__name__})",
                                retryable=True) from None
        if response.status_code in (400, 401):
            raise HelpdeskError(f"{self.name}: Help Scout refused the client credentials (HTTP {response.status_code}): "
                                f"check client_id and {self.settings.client_secret_env}", retryable=False)
        if not response.is_success:
            raise HelpdeskError(f"{self.name}: token endpoint: HTTP {response.status_code}", retryable=True)
        try:
            body = response.json()
            token, lifetime = str(body["access_token"]), float(body.get("expires_in", 7200))
        except (ValueError, KeyError, TypeError):
            raise HelpdeskError(f"{self.name}: the token endpoint answered without an access_token",
                                retryable=False) from None
        self._tokens[self._key] = (token, time.time() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2))
        return token


class HelpScout:
    """One Help Scout account (`[helpdesks.NAME] kind = "helpscout"`)."""

    drafts = True           # a held draft is a draft reply the rep sends (or edits) from the UI

    def __init__(self, settings: HelpdeskSettings, name: str, budget: Budget, **api: Any) -> None:
        self.settings, self.name = settings, name
        self.api = Api(settings, name, budget, _Deferred(), retry_after_header="X-RateLimit-Retry-After", **api)
        self.api.auth = OAuth(settings, name, self.api.client)
        self._read = Cost((("requests", settings.requests_per_minute, 1),))
        self._write = Cost((("requests", settings.requests_per_minute, 2),))

    def close(self) -> None:
        self.api.close()

    # reads

    def whoami(self) -> str:
        user = self._get("/v2/users/me", "the API user")
        return f"user {user.get('id')} ({user.get('email')})"

    def conversation(self, ticket_id: str) -> dict[str, Any]:
        return dict(self._get(f"/v2/conversations/{numeric_id(ticket_id, NAME)}", f"conversation {ticket_id}"))

    def ticket(self, ticket_id: str) -> Ticket:
        convo = self.conversation(ticket_id)
        customer = convo.get("primaryCustomer") or {}
        bot = str(self.settings.bot_user_id)
        turns = []
        for t in self._threads(ticket_id):
            if t.get("type") not in TURN_TYPES or t.get("state") in ("hidden", "underreview"):
                continue
            author = t.get("createdBy") or {}
            if not isinstance(author, dict):
                author = {}
            author_id = str(author.get("id", ""))
            role = (Role.CUSTOMER if author.get("type") == "customer" else Role.US if author_id == bot else Role.AGENT)
            html = str(t.get("body") or "")
            draft = t.get("state") == "draft"
            # Markers only count on threads by the team (ours, or a rep sending our draft): a
            # customer who pastes one into their mail does not make it ours.
            turns.append(Turn.from_html(id=str(t["id"]), author_id=author_id, role=role, html=html, draft=draft,
                                        public=t.get("type") != "note" and not draft,
                                        created_at=timestamp(t.get("createdAt")),
                                        markers=tuple(_MARKER.findall(html)) if role is not Role.CUSTOMER else (),
                                        author_name=_name(author), author_email=str(author.get("email") or ""),
                                        raw=json.dumps(t, ensure_ascii=False).encode()))
        mailbox = convo.get("mailboxId")
        return Ticket(id=str(convo.get("id", ticket_id)), subject=str(convo.get("subject") or ""),
                      requester_id=str(customer.get("id", "")), requester_email=str(customer.get("email") or ""),
                      requester_name=_name(customer), tags=tuple(_tag_names(convo.get("tags"))),
                      turns=tuple(sorted(turns, key=lambda t: (t.created_at, int(t.id) if t.id.isdigit() else 0))),
                      scope=str(mailbox) if mailbox is not None else None)

    def user(self, user_id: str) -> Person:
        user = self._get(f"/v2/users/{numeric_id(user_id, NAME)}", f"user {user_id}")
        name = " ".join(filter(None, (str(user.get("firstName") or ""), str(user.get("lastName") or ""))))
        return Person(id=str(user.get("id")), name=name, email=str(user.get("email") or ""),
                      agent=str(user.get("type", "user")) == "user")

    def find_marker(self, ticket_id: str, marker: str) -> str | None:
        for turn in self.ticket(ticket_id).turns:
            if marker in turn.markers:
                return turn.id
        return None

    # writes

    # Tags change before the thread is created: a tag change is idempotent, so a retry after a
    # failure in between repeats it harmlessly, where a thread created first would be posted twice.

    def post_note(self, ticket_id: str, html: str, *, marker: str, tags: tuple[str, ...] = (),
                  remove_tags: tuple[str, ...] = ()) -> Posted:
        self.change_tags(ticket_id, add=tags, remove=remove_tags)
        return self._create(ticket_id, "notes", {"text": mark(html, marker), "user": self.settings.bot_user_id})

    def post_reply(self, ticket_id: str, html: str, *, marker: str, author_id: str | None = None,
                   draft: bool = False, tags: tuple[str, ...] = (), remove_tags: tuple[str, ...] = ()) -> Posted:
        customer = (self.conversation(ticket_id).get("primaryCustomer") or {}).get("id")
        if customer is None:
            raise HelpdeskError(f"{self.name}: conversation {ticket_id} has no customer to reply to", retryable=False)
        self.change_tags(ticket_id, add=tags, remove=remove_tags)
        return self._create(ticket_id, "reply", {
            "customer": {"id": customer}, "text": mark(html, marker), "draft": draft,
            "user": int(author_id) if author_id else self.settings.bot_user_id})

    def change_tags(self, ticket_id: str, *, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
        if not add and not remove:
            return
        current = _tag_names(self.conversation(ticket_id).get("tags"))
        wanted = [t for t in current if t not in remove] + [t for t in add if t not in current]
        if wanted != current:
            response = self.api.request("PUT", f"/v2/conversations/{numeric_id(ticket_id, NAME)}/tags", self._write, write=True,
                                        json={"tags": wanted})
            self.api.json(response, f"tags of conversation {ticket_id}")

    def _create(self, ticket_id: str, what: str, payload: dict[str, Any]) -> Posted:
        response = self.api.request("POST", f"/v2/conversations/{numeric_id(ticket_id, NAME)}/{what}", self._write, write=True,
                                    json=payload)
        self.api.json(response, f"{what} on conversation {ticket_id}")
        thread = response.headers.get("Resource-ID")
        if not thread:
            raise HelpdeskError(f"{self.name}: {what} created on {ticket_id}, but the answer has no Resource-ID",
                                retryable=False)
        return Posted(thread)

    # HTTP

    def _get(self, url: str, what: str, params: dict[str, Any] | None = None) -> Any:
        body = self.api.json(self.api.request("GET", url, self._read, params=params), what)
        if not isinstance(body, dict):
            raise HelpdeskError(f"{self.name}: {what}: expected a JSON object", retryable=False)
        return body

    def _threads(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every thread, all pages (`page.totalPages`), as Help Scout returns them."""
        threads: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._get(f"/v2/conversations/{numeric_id(ticket_id, NAME)}/threads", f"threads of {ticket_id}", {"page": page})
            threads += [t for t in (body.get("_embedded") or {}).get("threads") or [] if isinstance(t, dict) and "id" in t]
            total = int((body.get("page") or {}).get("totalPages") or 1)
            if page >= total:
                return threads
            page += 1


CLIENT = HelpScout


class _Deferred(Auth):
    """Placeholder until the OAuth helper, which shares the API's connection pool, is made."""

    def headers(self) -> dict[str, str]:
        return {}


def mark(html: str, marker: str) -> str:
    """The body with our marker: an HTML comment a reader never sees."""
    if not _MARKER.fullmatch(f"<!-- mailagent:{marker} -->"):
        raise ValueError(f"not a marker: {marker!r}")
    return f"{html}\n<!-- mailagent:{marker} -->"


def _name(person: dict[str, Any]) -> str:
    return " ".join(filter(None, (str(person.get("first") or ""), str(person.get("last") or ""))))


def _tag_names(tags: Any) -> list[str]:
    return [str(t.get("tag") if isinstance(t, dict) else t) for t in tags or [] if isinstance(t, dict | str)]


def setup(settings: HelpdeskSettings, name: str, hook_url: str) -> str:
    """What a Help Scout admin creates (printed by `mailagent helpdesk check`)."""
    events = "\n".join(f"       [x] {e}" for e in SUBSCRIBE)
    return f"""\
Help Scout setup for [helpdesks.{name}] ({settings.api_url})

1. OAuth app (Your Profile > My Apps > Create My App): its App ID is client_id = "{settings.client_id}",
   its App Secret goes in the environment variable {settings.client_secret_env}. The app acts as the user
   who created it: that user's id is bot_user_id = {settings.bot_user_id} (our notes and drafts are theirs).

2. Webhook (Manage > Apps > Webhooks > Install):
     Callback URL: {hook_url}
     Secret Key:   a random string of 40 characters or more; put it in {settings.webhook_secret_env}
     Payload version: V2
     Events:
{events}
{"   Only conversations of mailbox " + str(settings.mailbox_id) + " are handled." if settings.mailbox_id else ""}
3. Reps: a held draft appears as a draft reply with a note explaining it. Send it as is, edit and
   send it, or discard it and reply yourself: every sent reply is captured. Tag {settings.tags.reject} to
   reject a draft, {settings.tags.approve} / {settings.tags.reject} (or their _ID forms the note names) to
   decide proposed actions, {settings.tags.release} to hand a conversation you took back to the agent.

Notes: events caused by the API user {settings.bot_user_id} and notes are ignored (the loop guard); a
delivery's signature (HMAC-SHA1 of the body) is checked, and a replay is answered 200 and processed once.
"""
