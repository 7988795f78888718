"""What a policy looks at: plain, frozen inputs built by the pipeline from the database.

They are stored with each draft as JSON (`to_dict`) so that `mailagent policy explain` and the
fixtures in `policies/tests/` can replay a decision exactly; `from_dict` validates that JSON (or a
fixture's table) with pydantic, so a typo in a fixture is an error rather than a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict, TypeAdapter

_STRICT_KEYS = ConfigDict(extra="forbid")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    """Naive datetimes (SQLite hands them back) are taken as UTC, so business hours stay right."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """`value` as JSON values, a dataclass as the dict of its fields (what `asdict` then this
    gave, without `asdict`'s deep copy: a decision's facts 65-85 -> ~13 µs)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)               # money stays exact: "8.00"
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    return value


@dataclass(frozen=True)
class ProposedAction:
    """A tool call the agent wants to make, as far as the draft decision cares."""

    __pydantic_config__ = _STRICT_KEYS

    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    amount: Decimal | None = None   # money moved, in `currency` (exact)
    currency: str | None = None
    approved_by_rep: bool = False   # a person (not a policy rule) approved it
    executed: bool = False          # it ran


@dataclass(frozen=True)
class Facts:
    """Everything a policy may look at for one draft. Built from the database, never from the
    model's say-so alone."""

    __pydantic_config__ = _STRICT_KEYS

    channel: str = "email"          # email | zendesk | helpscout
    mailbox: str | None = None
    kind: str = "normal"            # mail.loops kind: normal | auto_reply | bounce | list | feedback | no_reply | own
    intent: str = "other"
    language: str = "en"
    confidence: float = 0.0
    needs_human: bool = False
    needs_human_reason: str = ""                # the agent's words, shown with the decision
    actions: tuple[ProposedAction, ...] = ()
    customer_tier: str | None = None            # free | plus | business | enterprise | None (unknown)
    customer_domain: str = ""
    has_attachments: bool = False
    first_contact: bool = False
    # Who wrote the turn (`pipeline.sender`, from the receiving MTA's verdict): the pipeline always
    # sets both; a helpdesk's requester is the helpdesk's word. Defaults keep older fixtures as they were.
    sender_authenticated: bool = True           # the From domain is authenticated (DMARC / DKIM)
    sender_matches_customer: bool = True        # the sender may speak for the customer of record's account
    flags: tuple[str, ...] = ()                 # "injection", "parse_error", "output:action_claim", ...
    taken_over: bool = False                    # a rep took the conversation over
    at: datetime = field(default_factory=_now)  # when the decision is made (aware; naive means UTC)
    auto_sends_customer_today: int = 0          # replies auto-sent to this customer in the last 24 h
    auto_sends_conversation: int = 0            # replies auto-sent in this conversation so far
    grades: Mapping[str, float] = field(default_factory=dict)   # the pre-send gate's scores (evals.gate)
    labels: Mapping[str, str] = field(default_factory=dict)     # classifiers' labels (evals.classifiers)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _aware(self.at))

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        """Validated: unknown keys and wrong types raise `pydantic.ValidationError` (a ValueError)."""
        return _FACTS.validate_python(dict(data))


@dataclass(frozen=True)
class ActionFacts:
    """One proposed tool call with side effects, for the approval decision."""

    __pydantic_config__ = _STRICT_KEYS

    tool: str
    amount: Decimal | None = None
    currency: str | None = None
    customer_tier: str | None = None
    order_age_days: float | None = None
    billing: str | None = None                  # annual | monthly | None (unknown): how the order's plan is billed
    refunded_customer_today: Decimal = Decimal(0)       # amount already auto-approved for this customer in the last 24 h
    refunded_total_today: Decimal = Decimal(0)          # amount auto-approved for everyone in the last 24 h
    flags: tuple[str, ...] = ()
    taken_over: bool = False
    at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _aware(self.at))

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionFacts:
        """Validated like `Facts.from_dict`."""
        return _ACTION_FACTS.validate_python(dict(data))


_FACTS = TypeAdapter(Facts)
_ACTION_FACTS = TypeAdapter(ActionFacts)
