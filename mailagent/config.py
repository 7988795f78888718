"""Settings: `config.toml`, then `MAILAGENT_<SECTION>__<KEY>` environment overrides, validated once.

There is one loader. Every error names the file (or the environment variable), the line and the
key. Secrets never live in the file: keys ending in `_env` name the environment variable that
holds them, and `secret()` reads it at the moment of use.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from mailagent import tomlfile
from mailagent.tomlfile import FileError, Problem

ENV_PREFIX = "MAILAGENT_"
DATA = Path(str(files("mailagent") / "data"))
"""Package data: the instruction template, sample knowledge, the shipped policy, sample mail and
backend data (installed with the package, so a wheel works from any folder)."""
_SECRET_WORDS = ("password", "token", "secret", "api_key", "apikey")

Seconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Database(Section):
    url: str = "sqlite:///mailagent.db"
    """SQLAlchemy URL: `sqlite:///relative/or/absolute.db` or `postgresql+psycopg://user@host/db`."""


class Broker(Section):
    url: str = "memory://"
    """`memory://` runs every actor in-process (`mailagent run`); `redis://host:6379/0` for workers."""
    namespace: str = "mailagent"

    @property
    def in_process(self) -> bool:
        """Actors run inside the process that enqueues them (no shared broker)."""
        return self.url.startswith("memory:")
    heartbeat_timeout_ms: int = Field(15_000, ge=1_000)
    maintenance_chance: int = Field(20_000, ge=0, le=1_000_000)


class Worker(Section):
    processes: int = Field(1, ge=1)
    threads: int = Field(8, ge=1)
    """Threads per process for the actors; agent runs do not take one each (see `inflight`)."""
    inflight: int = Field(64, ge=1, le=1024)
    """Agent runs in flight per process, as coroutines on one event loop."""
    lease_seconds: Seconds = 60
    """A draft's holder renews its claim this often (by a third); a dead holder's draft is taken
    over when the lease runs out."""
    max_attempts: int = Field(5, ge=1, le=100)
    """Claims of one draft before it is held for a person with the error (a poison message)."""


class Clock(Section):
    sweep_interval_seconds: Seconds = 30
    stuck_after_seconds: Seconds = 120


class Ingest(Section):
    batch_size: int = Field(100, ge=1, le=1000)
    lease_seconds: Seconds = 30
    """A poll holds its mailbox for this long and renews it every third of it while it runs: a
    poll killed mid-batch pauses that mailbox's ingestion for at most this long."""
    own_addresses: tuple[str, ...] = ()
    subject_window_days: int = Field(14, ge=0)
    trusted_authserv_ids: tuple[str, ...] = ()
    """Authentication-Results from these authserv-ids (our own MTA) decide who sent a message."""
    verify_dkim: bool = False
    """Verify DKIM signatures ourselves when no trusted Authentication-Results are present."""
    default_mailbox: str | None = None
    """The mailbox that answers mail whose headers name none of ours (Bcc, an alias) when it came
    with no mailbox (`ingest` without `--mailbox`). With one mailbox configured, that one."""


class Outbox(Section):
    max_attempts: int = Field(8, ge=1)
    retry_base_seconds: Seconds = 30
    retry_max_seconds: Seconds = 3600
    send_timeout_seconds: Seconds = 60
    """The deadline of one whole SMTP transaction, whatever the server does (a stall before the
    data is retried; a stall while the server has the message is an unknown outcome)."""
    threads: int = Field(4, ge=1)
    """Delivery threads of `mailagent run` (their own pool: a stalled SMTP server never takes the
    threads that ingest and drafting use). With `mailagent worker`, run `--queues outbox` apart."""


class Model(Section):
    provider: Literal["offline", "openai"] = "offline"
    """`offline`: the deterministic model on the knowledge base; `openai`: any OpenAI-compatible API."""
    name: str = "gpt-4.1-mini"
    base_url: str | None = None
    api: Literal["chat", "responses"] = "chat"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: Seconds = 60
    max_retries: int = Field(2, ge=0, le=10)
    temperature: float = Field(0.2, ge=0, le=2)
    max_turns: int = Field(6, ge=2, le=30)
    llm_injection_check: bool = True


class Agent(Section):
    company: str = "Example"
    sign_off: str = "Best regards,\nThe Example support team"
    sign_offs: tuple[tuple[str, str], ...] = ()
    """The sign-off per language code, a table in the file (`[agent.sign_offs]`, `de = "..."`);
    `sign_off` is the English one. A language not listed gets the built-in sign-off in that
    language, with `company` (kept as pairs: settings are hashable)."""
    voice: str = "friendly, concise and precise; no marketing language"
    instructions: str | None = None
    """A Jinja2 template replacing the built-in instructions (relative to the config file)."""
    allowed_link_domains: tuple[str, ...] = ("nimbusnotes.example",)
    """Domains replies may link to; the default is the bundled sample knowledge base's."""
    docs_url: str | None = None
    """Where articles are published: the offline model links `{docs_url}/{article slug}`."""
    status_page: str | None = None
    """The public status page, named in replies about incidents."""

    @field_validator("sign_offs", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        return tuple(sorted(value.items())) if isinstance(value, dict) else value


class Knowledge(Section):
    directory: str = str(DATA / "knowledge")
    """Markdown articles (relative to the config file); the default is the bundled sample."""


class PolicySettings(Section):
    directory: str = str(DATA / "policies")
    """Policy files (relative to the config file); the default is the shipped safe policy."""
    reload_seconds: float = Field(2.0, ge=0)


class HttpBackend(Section):
    base_url: str
    """The company's actions API (see docs/actions-api.md)."""
    secret_env: str = "MAILAGENT_ACTIONS_SECRET"
    """Environment variable with the shared HMAC-SHA256 signing secret."""
    timeout_seconds: Seconds = 10
    """The longest wait for one read or connect."""
    max_retries: int = Field(2, ge=0, le=10)
    deadline_seconds: Seconds = 30
    """The whole call, retries included: a server that trickles its answer is cut off."""
    max_response_bytes: int = Field(2_000_000, ge=1024)
    """Larger answers are not read into memory."""


class Actions(Section):
    backend: Literal["demo", "http"] = "demo"
    """`demo`: sample company data in this database; `http`: the company's own API."""
    demo_data: str = str(DATA / "examples" / "backend.toml")
    """What `mailagent demo` and `mailagent backend seed` load into the demo backend."""
    demo_database: str | None = None
    """Where the demo backend keeps its tables (a SQLAlchemy URL); default: the main database."""
    http: HttpBackend | None = None


class Evals(Section):
    sets: str = str(DATA / "evals")
    """Eval set files, `NAME.toml` (relative to the config file); the default is the bundled sets."""
    classifiers: str = str(DATA / "classifiers")
    """Classifier files, kept next to the policies (relative to the config file)."""
    concurrency: int = Field(8, ge=1, le=256)
    """Cases `eval run` replays and judges at once: keep it within the model's rate limits."""
    case_interval_seconds: Seconds = 30
    """How often the clock turns new reps' finals into eval cases and suggestions."""
    quality_interval_seconds: Seconds = 300
    """How often the clock recomputes today's live quality figures."""


class Tracing(Section):
    export_to_openai: bool = False
    """Also send traces to OpenAI's dashboard (off: traces stay in this database)."""


class Web(Section):
    """The review page (`mailagent web`): sessions, proxies, login throttling."""

    session_secret_env: str = "MAILAGENT_WEB_SECRET"
    """Environment variable holding the key that signs session cookies and CSRF tokens (32+
    characters). Unset: the review page is off (its paths answer 503), health and metrics work."""
    session_hours: Seconds = 12
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    """auto: Secure cookies when the request came over HTTPS (directly, or per X-Forwarded-Proto
    from a trusted proxy)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks of reverse proxies whose X-Forwarded-For/-Proto headers are believed."""
    proxy_auth: bool = False
    """Sign reps in from `proxy_user_header`, set by a trusted proxy (an SSO gateway)."""
    proxy_user_header: str = "X-Forwarded-User"
    login_failures_per_account: int = Field(5, ge=1)
    login_failures_per_address: int = Field(20, ge=1)
    login_window_seconds: Seconds = 900

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"expected an IP address or network, got {item!r}") from None
        return value


class Price(Section):
    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)


class Report(Section):
    """`mailagent report` and the quality page: what a token costs, per model name."""

    currency: str = "USD"
    prices: dict[str, Price] = {}


class Imap(Section):
    host: str
    port: int = Field(993, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    user: str
    password_env: str | None = None
    oauth2_token_env: str | None = None
    folder: str = "INBOX"
    poll_interval_seconds: Seconds = 60
    idle: bool = True
    idle_refresh_seconds: Seconds = 300
    after_ingest: Literal["nothing", "flag", "move"] = "nothing"
    flag: str = "$MailagentIngested"
    move_to: str | None = None
    sent_folder: str | None = None
    timeout_seconds: Seconds = 30

    @field_validator("move_to")
    @classmethod
    def _move_needs_folder(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a folder")
        return value


class Smtp(Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    user: str | None = None
    password_env: str | None = None
    oauth2_token_env: str | None = None
    timeout_seconds: Seconds = 30


class Mailbox(Section):
    address: str
    display_name: str = ""
    imap: Imap | None = None
    smtp: Smtp | None = None

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"expected an email address, got {value!r}")
        return value.strip().lower()


class HelpdeskTags(Section):
    """Tags that carry a rep's intent between the helpdesk and us (macros add them)."""

    draft: str = "mailagent_draft"
    """Put on a ticket when we post a held draft as an internal note."""
    approve: str = "mailagent_approve"
    """A rep's macro adds it: post the stored draft publicly under the rep's name."""
    reject: str = "mailagent_reject"
    release: str = "mailagent_release"
    """Hand a ticket a rep took over back to the agent."""


class Helpdesk(Section):
    """`[helpdesks.NAME]`: one helpdesk account. Which keys are required depends on `kind`
    (checked by `load`, with the line of the table)."""

    kind: Literal["zendesk", "helpscout"]
    subdomain: str | None = None
    """Zendesk: `acme` for https://acme.zendesk.com."""
    base_url: str | None = None
    """The API's address; default https://SUBDOMAIN.zendesk.com or https://api.helpscout.net."""
    email: str | None = None
    """Zendesk: the agent whose API token we use (`{email}/token:{token}`)."""
    api_token_env: str | None = None
    client_id: str | None = None
    """Help Scout: the OAuth2 app's id (client credentials flow)."""
    client_secret_env: str | None = None
    bot_user_id: int = Field(ge=1)
    """The helpdesk user our API calls act as: its comments and events are ours (loop guard)."""
    mailbox_id: int | None = None
    """Help Scout: only conversations of this mailbox are ours (others are ignored)."""
    webhook_secret_env: str
    """Environment variable with the webhook signing secret."""
    freshness_seconds: Seconds = 300
    """Zendesk: a webhook whose signed timestamp is older (or newer) than this is refused."""
    max_body_bytes: int = Field(262_144, ge=1_024)
    requests_per_minute: int = Field(200, ge=1)
    """Every API request of this account, all our processes together (writes weigh 2 on Help Scout)."""
    updates_per_minute: int = Field(100, ge=1)
    """Zendesk's Update Ticket limit (comments, notes, tags), all our processes together."""
    budget_window_seconds: Seconds = 60
    timeout_seconds: Seconds = 10
    max_retries: int = Field(5, ge=0, le=20)
    post_lease_seconds: Seconds = 600
    """A post whose attempt started longer ago than this belonged to a worker that died: the next
    attempt reads the ticket back for our marker first. Longer than one attempt can take."""
    tags: HelpdeskTags = HelpdeskTags()

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value):
            raise ValueError(f"expected a Zendesk subdomain such as 'acme', got {value!r}")
        return value

    @property
    def api_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.kind == "zendesk":
            return f"https://{self.subdomain}.zendesk.com"
        return "https://api.helpscout.net"


_HELPDESK_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "zendesk": (("subdomain", "base_url"), ("email",), ("api_token_env",)),
    "helpscout": (("client_id",), ("client_secret_env",)),
}
_HELPDESK_ONLY: dict[str, tuple[str, ...]] = {
    "zendesk": ("client_id", "client_secret_env", "mailbox_id"),
    "helpscout": ("subdomain", "email", "api_token_env"),
}


def _helpdesk_problems(source: str, lines: dict[tomlfile.Loc, int], helpdesks: dict[str, Helpdesk]) -> list[Problem]:
    """Keys a kind needs, and keys that belong to another kind, named with their lines."""
    out = []
    for name, desk in helpdesks.items():
        for choices in _HELPDESK_NEEDS[desk.kind]:
            if all(getattr(desk, key) is None for key in choices):
                loc = ("helpdesks", name, choices[0])
                out.append(Problem(source, tomlfile.line_of(lines, loc), tomlfile.dotted(loc),
                                   f"required for kind = \"{desk.kind}\"" + (
                                       f" (or {' or '.join(choices[1:])})" if len(choices) > 1 else "")))
        for key in _HELPDESK_ONLY[desk.kind]:
            if getattr(desk, key) is not None:
                loc = ("helpdesks", name, key)
                out.append(Problem(source, tomlfile.line_of(lines, loc), tomlfile.dotted(loc),
                                   f"not a key of kind = \"{desk.kind}\""))
    return out


class Settings(Section):
    database: Database = Database()
    broker: Broker = Broker()
    worker: Worker = Worker()
    clock: Clock = Clock()
    ingest: Ingest = Ingest()
    outbox: Outbox = Outbox()
    model: Model = Model()
    agent: Agent = Agent()
    knowledge: Knowledge = Knowledge()
    policy: PolicySettings = PolicySettings()
    tracing: Tracing = Tracing()
    actions: Actions = Actions()
    web: Web = Web()
    report: Report = Report()
    evals: Evals = Evals()
    mailboxes: dict[str, Mailbox] = {}
    helpdesks: dict[str, Helpdesk] = {}

    _source: str = PrivateAttr("(embedded defaults)")

    @property
    def source(self) -> str:
        """Where these settings came from, for messages."""
        return self._source

    @property
    def own_addresses(self) -> frozenset[str]:
        """Addresses that are us: never answer them (loop protection)."""
        return frozenset(a.lower() for a in self.ingest.own_addresses) | {
            m.address for m in self.mailboxes.values()
        }

    def mailbox(self, name: str) -> Mailbox:
        try:
            return self.mailboxes[name]
        except KeyError:
            raise ConfigError([Problem(self.source, None, f"mailboxes.{name}", "no such mailbox")]) from None

    def reply_mailbox(self, found: str | None) -> str | None:
        """The mailbox a message belongs to: the one its headers name, else `[ingest]
        default_mailbox`, else the only mailbox; None when that is ambiguous (held for a rep)."""
        if found is not None:
            return found
        if self.ingest.default_mailbox is not None:
            return self.ingest.default_mailbox
        return next(iter(self.mailboxes)) if len(self.mailboxes) == 1 else None

    def helpdesk(self, name: str) -> Helpdesk:
        try:
            return self.helpdesks[name]
        except KeyError:
            raise ConfigError([Problem(self.source, None, f"helpdesks.{name}", "no such helpdesk")]) from None


class ConfigError(FileError):
    """The configuration cannot be used; the message names file, line and key."""


def _env_overrides(environ: dict[str, str]) -> list[tuple[str, tuple[str, ...], Any]]:
    out = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        try:
            parsed: Any = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        out.append((name, path, parsed))
    return out


def _secret_keys(data: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Keys that look like inline secrets (`password = ...`): refused, with a pointer to `*_env`."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = (*loc, key)
            if any(word in key.lower() for word in _SECRET_WORDS) and not key.lower().endswith("_env"):
                found.append(here)
            found += _secret_keys(value, here)
    return found


def load(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from `path` (or `MAILAGENT_CONFIG`, or `./config.toml`, or embedded defaults)."""
    environ = dict(os.environ if environ is None else environ)
    if path is None:
        path = environ.get("MAILAGENT_CONFIG") or ("config.toml" if Path("config.toml").exists() else None)
    data: dict[str, Any] = {}
    text = ""
    source = "(embedded defaults)"
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        source = str(file)
        base = file.resolve().parent
        try:
            text, data = tomlfile.read(file)
        except FileError as exc:
            raise ConfigError(exc.problems) from None

    lines = tomlfile.key_lines(text)
    problems = [
        Problem(source, tomlfile.line_of(lines, loc), tomlfile.dotted(loc),
                "secrets are not allowed in config files: name an environment variable with a "
                "`*_env` key instead (for example password_env = \"IMAP_PASSWORD\")")
        for loc in _secret_keys(data)
    ]
    origins: dict[tuple[str, ...], str] = {}
    for name, key_path, value in _env_overrides(environ):
        target = data
        for part in key_path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                problems.append(Problem(name, None, ".".join(key_path), "does not name a scalar key"))
                break
        else:
            target[key_path[-1]] = value
            origins[key_path] = name
    if problems:
        raise ConfigError(problems)

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        found = []
        for problem in tomlfile.problems_from(source, text, exc):
            env = next((n for p, n in origins.items() if tomlfile.dotted(p) == problem.key), None)
            found.append(Problem(env, None, problem.key, problem.message) if env else problem)
        raise ConfigError(found) from None
    if problems := _helpdesk_problems(source, lines, settings.helpdesks):
        raise ConfigError(problems)
    default = settings.ingest.default_mailbox
    if default is not None and default not in settings.mailboxes:
        loc = ("ingest", "default_mailbox")
        raise ConfigError([Problem(source, tomlfile.line_of(lines, loc), tomlfile.dotted(loc),
                                   f"no [mailboxes.{default}] section")])
    settings = _resolve_paths(settings, base)
    settings._source = source
    return settings


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative paths are relative to the config file, not to wherever the command ran."""
    url = _sqlite_relative(settings.database.url, base)
    instructions = settings.agent.instructions
    actions = settings.actions.model_copy(update={"demo_data": str(base / settings.actions.demo_data),
                                                  "demo_database": _sqlite_relative(settings.actions.demo_database, base)})
    evals = settings.evals.model_copy(update={"sets": str(base / settings.evals.sets),
                                              "classifiers": str(base / settings.evals.classifiers)})
    return settings.model_copy(update={
        "actions": actions,
        "evals": evals,
        "database": settings.database.model_copy(update={"url": url}),
        "knowledge": settings.knowledge.model_copy(update={"directory": str(base / settings.knowledge.directory)}),
        "policy": settings.policy.model_copy(update={"directory": str(base / settings.policy.directory)}),
        "agent": settings.agent.model_copy(update={"instructions": str(base / instructions) if instructions else None}),
    })


def _sqlite_relative(url: str | None, base: Path) -> str | None:
    """A relative SQLite path is relative to the config file."""
    prefix = "sqlite:///"
    if url and url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(base / url[len(prefix):])
    return url


def secret(settings_key: str, env_name: str | None, environ: dict[str, str] | None = None) -> str:
    """Read a secret from the environment at the moment of use; a clear error when unset."""
    environ = os.environ if environ is None else environ
    if not env_name:
        raise ConfigError([Problem("config", None, settings_key, "no environment variable is named for this secret")])
    value = environ.get(env_name)
    if not value:
        raise ConfigError([Problem("environment", None, settings_key,
                                   f"names {env_name}, which is not set")])
    return value


_current: Settings | None = None


def use(settings: Settings) -> Settings:
    """Make these the settings of this process (the CLI does this once, tests per test)."""
    global _current
    _current = settings
    return settings


def current() -> Settings:
    """This process's settings; loaded from `MAILAGENT_CONFIG` (or defaults) on first use, which
    is how `dramatiq mailagent.tasks` worker processes find the file `mailagent worker` chose."""
    return _current if _current is not None else use(load())
