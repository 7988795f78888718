"""The grammar of a policy file, as pydantic models: what `policies/README.md` documents.

Every model forbids unknown keys and takes values strictly (`"0.9"` is not a number, `1` is not a
boolean), because a policy typo must stop startup rather than quietly match nothing. Intents,
channels, tiers and decisions are closed sets for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from mailagent.intents import Intent

Channel = Literal["email", "zendesk", "helpscout"]
Tier = Literal["free", "plus", "business", "enterprise", "unknown"]   # "unknown": no tier on record
Then = Literal["send", "hold", "escalate", "ignore"]
ActionThen = Literal["auto_approve", "rep"]
Billing = Literal["annual", "monthly", "unknown"]                    # how the order's plan is billed
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# The pre-send gate's scores (`evals.gate`): graders that need no reference, 0 (bad) to 1 (good).
GradeName = Literal["tone", "safety", "language", "promises"]
GRADES: tuple[str, ...] = get_args(GradeName)
DAYS: tuple[str, ...] = get_args(Day)

# Ceilings the code enforces whatever a file says (loop protection, DESIGN invariant 3).
CUSTOMER_SENDS_CEILING = 20
CONVERSATION_SENDS_CEILING = 10


def _shaped(pattern: str, example: str) -> AfterValidator:
    """A string of a known shape, with an error that shows an example rather than a regex."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise PydanticCustomError("shape", f"expected {example}")
        return value

    return AfterValidator(check)


Text = Annotated[str, Strict(), Field(min_length=1)]
ToolName = Annotated[str, Strict(), _shaped(r"[a-z][a-z0-9_]*", 'a tool name such as "issue_refund"')]
Language = Annotated[str, Strict(), _shaped(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", 'a language code such as "en" or "pt-BR"')]
Domain = Annotated[str, Strict(), _shaped(r"(?i)[a-z0-9-]+(\.[a-z0-9-]+)+", 'a domain such as "example.com"'),
                   AfterValidator(str.lower)]
Currency = Annotated[str, Strict(), _shaped(r"[A-Z]{3}", 'a currency code such as "EUR"')]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
_COMPARISON = re.compile(r"\s*(<=|>=|<|>|=)\s*(\d+(?:\.\d+)?|\.\d+)\s*")


def _comparison(value: str) -> str:
    """"< 0.6", ">= 0.8", "= 1": an operator and a score 0..1, normalised to "< 0.6"."""
    match = _COMPARISON.fullmatch(value)
    if not match or not 0 <= float(match.group(2)) <= 1:
        raise PydanticCustomError("comparison", 'expected a comparison with a score 0..1 such as "< 0.6" or ">= 0.8"')
    return f"{match.group(1)} {float(match.group(2)):g}"


def compare(have: float, comparison: str) -> bool:
    """Whether a score satisfies a normalised comparison."""
    operator, _, number = comparison.partition(" ")
    want = float(number)
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want, "=": have == want}[operator]


Comparison = Annotated[str, Strict(), AfterValidator(_comparison)]
LabelName = Annotated[str, Strict(), _shaped(r"[a-z][a-z0-9_]*", 'a classifier name such as "tone"')]
Amount = Annotated[float, Strict(), Field(ge=0)]
Count = Annotated[int, Strict(), Field(ge=0)]
Flag = Annotated[bool, Strict()]


def _clock_time(value: Any) -> time:
    """A time of day: TOML's `09:00:00` or the string "09:00"; no offset (the zone is `timezone`)."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = time.fromisoformat(value)
        except ValueError:
            parsed = None
    if not isinstance(parsed, time) or parsed.tzinfo is not None:
        raise PydanticCustomError("clock_time", 'expected a time of day such as "09:00"')
    return parsed


ClockTime = Annotated[time, BeforeValidator(_clock_time)]


class Table(BaseModel):
    """Every table of a policy or fixture file: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class When(Table):
    """Conditions on a draft: every condition given must hold; none given matches every draft."""

    channel: Channel | None = None
    mailbox: Text | None = None
    intent: Intent | None = None
    intent_in: Annotated[tuple[Intent, ...], Field(min_length=1)] | None = None
    language: Language | None = None
    language_in: Annotated[tuple[Language, ...], Field(min_length=1)] | None = None
    confidence_at_least: Probability | None = None
    confidence_below: Probability | None = None
    needs_human: Flag | None = None
    action: ToolName | None = None
    any_action: Flag | None = None
    actions_executed: Flag | None = None
    approved_by_rep: Flag | None = None
    amount_over: Amount | None = None
    amount_at_most: Amount | None = None
    customer_tier: Tier | None = None
    tier_in: Annotated[tuple[Tier, ...], Field(min_length=1)] | None = None
    customer_domain: Domain | None = None
    domain_in: Annotated[tuple[Domain, ...], Field(min_length=1)] | None = None
    has_attachments: Flag | None = None
    first_contact: Flag | None = None
    sender_authenticated: Flag | None = None
    sender_matches_customer: Flag | None = None
    flag: Text | None = None
    in_business_hours: Flag | None = None
    auto_sends_customer_today_at_least: Count | None = None
    auto_sends_conversation_at_least: Count | None = None
    grade: Annotated[dict[GradeName, Comparison], Field(min_length=1)] | None = None
    label: Annotated[dict[LabelName, Text], Field(min_length=1)] | None = None


class Rule(Table):
    """`[[rules]]`: the first rule whose `when` holds decides the draft."""

    name: Text
    when: When = When()
    then: Then
    shadow: Flag = False
    reason: Text | None = None

    @field_validator("shadow")
    @classmethod
    def _shadow_needs_send(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("then", "send") != "send":
            raise PydanticCustomError("shadow_without_send", 'shadow = true only applies to then = "send"')
        return value


class ActionWhen(Table):
    """Conditions on one proposed action with side effects."""

    tool: ToolName | None = None
    tool_in: Annotated[tuple[ToolName, ...], Field(min_length=1)] | None = None
    amount_at_most: Amount | None = None
    currency: Currency | None = None
    customer_tier: Tier | None = None
    tier_in: Annotated[tuple[Tier, ...], Field(min_length=1)] | None = None
    order_age_days_at_most: Amount | None = None
    order_age_days_over: Amount | None = None
    billing: Billing | None = None


class ActionRule(Table):
    """`[[action_rules]]`: the first match decides whether an action needs a rep."""

    name: Text
    when: ActionWhen = ActionWhen()
    then: ActionThen
    reason: Text | None = None


class Defaults(Table):
    """`[defaults]`: merged key by key across files, later files win."""

    decision: Then = "hold"
    mode: Literal["live", "shadow"] = "live"
    min_confidence: Probability = 0.85
    max_auto_sends_per_customer_per_day: Annotated[int, Strict(), Field(ge=0, le=CUSTOMER_SENDS_CEILING)] = 5
    max_auto_sends_per_conversation: Annotated[int, Strict(), Field(ge=0, le=CONVERSATION_SENDS_CEILING)] = 3


class Limits(Table):
    """`[limits]` on auto-approved money (any action with an amount); merged key by key."""

    max_refund_amount: Amount | None = None
    refund_per_customer_per_day: Amount | None = None
    refund_total_per_day: Amount | None = None


class BusinessHours(Table):
    """`[business_hours]`: one weekly schedule in one IANA time zone (DST handled by zoneinfo)."""

    timezone: Text
    days: Annotated[tuple[Day, ...], Field(min_length=1)] = ("mon", "tue", "wed", "thu", "fri")
    start: ClockTime = time(9)
    end: ClockTime = time(17)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError("time_zone", 'unknown time zone: expected an IANA name such as "Europe/Berlin"') from None
        return value

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise PydanticCustomError("end_before_start", "must be later than start")
        return value

    def contains(self, at: datetime) -> bool:
        """Whether `at` (aware) falls in the schedule, read on the local clock of `timezone`."""
        local = at.astimezone(ZoneInfo(self.timezone))
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


class PolicyFile(Table):
    """One `policies/*.toml` file as written; `load` merges the files into a `Policy`."""

    defaults: Defaults | None = None
    rules: tuple[Rule, ...] = ()
    action_rules: tuple[ActionRule, ...] = ()
    limits: Limits | None = None
    business_hours: BusinessHours | None = None


@dataclass(frozen=True)
class Policy:
    """Every policy file merged: what `decide` and `decide_action` read. The empty policy holds
    every draft and sends every action to a rep."""

    defaults: Defaults = Defaults()
    rules: tuple[Rule, ...] = ()
    action_rules: tuple[ActionRule, ...] = ()
    limits: Limits = Limits()
    business_hours: BusinessHours | None = None
    files: tuple[str, ...] = ()
    version: str = ""                                   # short hash of the files, recorded with decisions
    origins: Mapping[str, str] = field(default_factory=dict)   # rule name -> "file:line", for explain

    def origin(self, rule_name: str) -> str:
        return self.origins.get(rule_name, "")
