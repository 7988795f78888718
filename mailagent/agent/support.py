"""The support agent: its instructions (a template ops can edit), its structured output, its input.

The agent gets the conversation with quoted history stripped, the customer's known details and
the mailbox, and returns a `ReplyDraft`. It proposes; the policy decides what happens next."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import Agent, AgentOutputSchema, AgentOutputSchemaBase, ModelSettings
from jinja2 import Environment, StrictUndefined, Template
from pydantic import BaseModel, Field

from mailagent.agent.context import AgentContext
from mailagent.agent.phrases import sign_off
from mailagent.agent.tools import KNOWLEDGE, LOOKUPS, SIDE_EFFECTS
from mailagent.config import DATA, Settings
from mailagent.config import Agent as AgentSettings
from mailagent.intents import INTENTS

LANGUAGES = ("en", "de", "es", "fr")
DEFAULT_TEMPLATE = DATA / "instructions.md.j2"


class ReplyDraft(BaseModel):
    """What the model must return (the SDK turns it into a strict JSON schema)."""

    reply: str = Field(description="The full reply email body, in the customer's language, signed off.")
    confidence: float = Field(description="0..1: how sure you are that the reply is correct and complete.")
    intent: str = Field(description="One of the listed intents.")
    language: str = Field(description="ISO 639-1 code of the customer's language.")
    cited_articles: list[str] = Field(description="Ids of the knowledge articles the reply relies on.")
    needs_human: bool = Field(description="True when a person must handle this.")
    needs_human_reason: str = Field(description="Why a person is needed; empty otherwise.")

    def normalized(self) -> ReplyDraft:
        """Repair what a model may get wrong: a confidence outside 0..1 (or NaN) means the model
        is not reporting honestly, so it counts as 0; unknown intents and languages."""
        confidence = float(self.confidence)
        return self.model_copy(update={
            "confidence": confidence if 0.0 <= confidence <= 1.0 else 0.0,
            "intent": self.intent if self.intent in INTENTS else "other",
            "language": (self.language or "en").lower()[:2],
        })


@dataclass(frozen=True)
class Instructions:
    text: str
    version: str          # a hash of the template: drafts record which prompt wrote them


@functools.lru_cache(maxsize=8)
def _template(path: Path, mtime_ns: int) -> tuple[Template, str]:
    """Compiled once per file version (an edit changes the modification time)."""
    source = path.read_text(encoding="utf-8")
    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    return env.from_string(source), hashlib.sha256(source.encode()).hexdigest()[:12]


def instructions(settings: Settings, mailbox_address: str) -> Instructions:
    path = Path(settings.agent.instructions) if settings.agent.instructions else DEFAULT_TEMPLATE
    return _instructions(settings.agent, mailbox_address, path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _instructions(agent: AgentSettings, mailbox_address: str, path: Path, mtime_ns: int) -> Instructions:
    template, version = _template(path, mtime_ns)
    sign_offs = {language: sign_off(language, company=agent.company, english=agent.sign_off,
                                    configured=dict(agent.sign_offs)) for language in LANGUAGES if language != "en"}
    text = template.render(
        company=agent.company, mailbox=mailbox_address, voice=agent.voice,
        sign_off=agent.sign_off, sign_offs=sign_offs, intents=", ".join(INTENTS), languages=", ".join(LANGUAGES),
        allowed_domains=", ".join(agent.allowed_link_domains) or "no external sites",
    )
    return Instructions(text, version)


def build(settings: Settings, mailbox_address: str) -> tuple[Agent[AgentContext], Instructions]:
    """The agent for a mailbox; one per instructions version and settings (an agent holds no
    per-run state, so concurrent runs share it)."""
    prompt = instructions(settings, mailbox_address)
    return _agent(prompt, settings.model.temperature), prompt


class OutputSchema(AgentOutputSchemaBase):
    """An agent's structured output, its JSON schema and validator built once per process. Given
    a type, the SDK builds them again on every turn; given its own `AgentOutputSchema` (a
    dataclass), it deep-copies it on every run to name the agent. This is neither."""

    def __init__(self, output_type: type[BaseModel]) -> None:
        self._schema = AgentOutputSchema(output_type)

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return self._schema.name()

    def json_schema(self) -> dict[str, Any]:
        return self._schema.json_schema()

    def is_strict_json_schema(self) -> bool:
        return self._schema.is_strict_json_schema()

    def validate_json(self, json_str: str) -> Any:
        return self._schema.validate_json(json_str)


_OUTPUT = OutputSchema(ReplyDraft)


@functools.lru_cache(maxsize=64)
def _agent(prompt: Instructions, temperature: float) -> Agent[AgentContext]:
    return Agent[AgentContext](
        name="support_agent", instructions=prompt.text, tools=[*KNOWLEDGE, *LOOKUPS, *SIDE_EFFECTS],
        output_type=_OUTPUT, model_settings=ModelSettings(temperature=temperature),
    )
