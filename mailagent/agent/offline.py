"""The offline model: a deterministic Agents SDK `Model` built on the knowledge base.

It is not a language model. It runs through the real agent loop: on its first turn it calls the
`search_knowledge` tool with the customer's words; on its second it picks the intent with keyword
rules, takes the best article, and writes a templated reply from that article's own text. Its
confidence is the retrieval score (how well the article covers the question), lowered for risky
intents; with no good match, or no article in the customer's language, it asks for a human. It
needs no network and gives the same answer every time: for the demo, tests and benchmarks.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from .agent import LATEST_MARKER

NAME = "offline-kb-v1"
GOOD_MATCH = 0.45
RISKY = {"refund_request": "a refund needs a person to check and approve it",
         "complaint": "an unhappy customer deserves a person",
         "dispute": "a payment dispute needs the billing team",
         "gdpr_request": "a formal data-protection request is handled by the privacy team",
         "two_factor": "turning off or recovering two-factor authentication needs an identity check"}

# Intents whose words decide even when an article seems to fit: mistaking one of these for a
# how-to question would be the expensive kind of mistake. Everything else takes the intent of
# the article that answers it.
RISKY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dispute", ("chargeback", "dispute", "bank to reverse", "reclamación bancaria", "rückbuchung")),
    ("refund_request", ("refund", "money back", "erstatt", "rückerstattung", "reembolso", "devolución",
                        "remboursement")),
    ("complaint", ("unacceptable", "furious", "disappointed", "terrible", "worst", "ridiculous", "lost work",
                   "compensation", "inakzeptabel", "unzufrieden", "inaceptable")),
    ("gdpr_request", ("gdpr", "art. 15", "article 15", "dsgvo", "rgpd", "data subject")),
    ("account_deletion", ("delete my account", "delete account", "close my account", "konto löschen",
                          "eliminar mi cuenta", "borrar mi cuenta")),
)
AGREE_BONUS = 0.05

STOPWORDS = {
    "en": {"the", "and", "is", "my", "i", "to", "of", "it", "you", "please", "thanks", "with", "for", "have"},
    "de": {"der", "die", "das", "und", "ist", "ich", "nicht", "mit", "mein", "meine", "bitte", "danke", "wie",
           "ein", "eine", "sie", "für", "auf"},
    "es": {"el", "la", "los", "las", "y", "es", "mi", "no", "con", "por", "para", "gracias", "hola", "que",
           "una", "un", "cómo", "puedo"},
    "fr": {"le", "la", "les", "et", "est", "je", "mon", "ma", "pas", "avec", "pour", "merci", "bonjour", "vous"},
}

PHRASES = {
    "en": {"hello": "Hi {name},", "thanks": "Thanks for getting in touch.",
           "intro": "Here is what our guide “{title}” says:",
           "more": "The full article: {url}", "outro": "If anything is still unclear, just reply to this email.",
           "human": "Thanks for your message. A colleague from our team will look into this personally and "
                    "get back to you as soon as possible."},
    "de": {"hello": "Hallo {name},", "thanks": "vielen Dank für Ihre Nachricht.",
           "intro": "Dazu steht in unserer Anleitung „{title}“:",
           "more": "Den vollständigen Artikel finden Sie hier: {url}",
           "outro": "Wenn noch etwas unklar ist, antworten Sie einfach auf diese E-Mail.",
           "human": "vielen Dank für Ihre Nachricht. Eine Kollegin oder ein Kollege aus unserem Team kümmert "
                    "sich persönlich darum und meldet sich so bald wie möglich bei Ihnen."},
    "es": {"hello": "Hola {name}:", "thanks": "gracias por escribirnos.",
           "intro": "Esto es lo que explica nuestra guía «{title}»:",
           "more": "El artículo completo: {url}", "outro": "Si algo no queda claro, responda a este correo.",
           "human": "gracias por su mensaje. Un compañero de nuestro equipo lo revisará personalmente y le "
                    "responderá lo antes posible."},
}

_CUSTOMER = re.compile(r"<customer_message subject=(?P<subject>'[^\n]*'|\"[^\n]*\")>\n(?P<body>.*?)\n</customer_message>",
                       re.DOTALL)
_CUSTOMER_NAME = re.compile(r"^Customer: (?P<name>[^<\n]*)<", re.MULTILINE)
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """The language whose common words occur most; English when in doubt (one stray "no" or
    "la" does not make a message Spanish)."""
    words = [w.casefold() for w in _WORDS.findall(text[:4000])]
    counts = {lang: sum(w in stop for w in words) for lang, stop in STOPWORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] > counts["en"] and counts[best] >= 2 else "en"


def risky_intent(text: str) -> str | None:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return next((intent for intent, words in RISKY_WORDS if any(_contains(folded, w) for w in words)), None)


def _contains(text: str, keyword: str) -> bool:
    """Whole-word match for short keywords ("api", "down"), substring for longer stems."""
    if len(keyword) <= 4:
        return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text) is not None
    return keyword in text


def _terms(text: str) -> set[str]:
    """Content words, cut to a 5-letter stem so "arrive" and "arriving" meet."""
    return {w.casefold()[:5] for w in _WORDS.findall(text) if len(w) > 3}


def excerpt(markdown: str, question: str, limit: int = 1100) -> str:
    """The article's own words: its opening paragraph, then the section that shares the most
    words with the customer's question (its heading counts most), within `limit`."""
    text = re.sub(r"\*\*|__|`", "", markdown)
    head, *sections = re.split(r"^## +", text, flags=re.MULTILINE)
    intro = next((b.strip() for b in re.split(r"\n\s*\n", head) if b.strip() and not b.lstrip().startswith("#")), "")
    asked = _terms(question)

    def relevance(section: str) -> int:
        heading, _, body = section.partition("\n")
        return 3 * len(asked & _terms(heading)) + len(asked & _terms(body))

    best = max(sections, key=relevance, default="")
    title, _, body = best.partition("\n")
    chosen = intro
    if best:
        section = f"{title.strip()}:\n{body.strip()}"
        chosen = f"{intro}\n\n{section}" if len(intro) + len(section) <= limit else section
    return chosen[:limit].rsplit("\n", 1)[0] if len(chosen) > limit else chosen


def _first_name(name: str) -> str:
    name = name.strip().strip('"')
    return name.split()[0] if name else "there"


def _customer_message(items: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(subject, text, customer name) of the message to answer, from the input we composed."""
    for item in items:
        content = item.get("content")
        if item.get("role") == "user" and isinstance(content, str) and LATEST_MARKER in content:
            found = _CUSTOMER.search(content)
            name = _CUSTOMER_NAME.search(content)
            if found:
                return found["subject"][1:-1], found["body"], name["name"] if name else ""
    return "", "", ""


class OfflineModel(Model):
    """See the module docstring. Stateless: one instance serves concurrent runs."""

    def __init__(self, *, sign_off: str, docs_url: str | None = None) -> None:
        self.sign_off = sign_off
        self.docs_url = docs_url.rstrip("/") if docs_url else None

    async def get_response(self, system_instructions: str | None, input: str | list[Any],
                           model_settings: ModelSettings, tools: list[Tool],
                           output_schema: AgentOutputSchemaBase | None, handoffs: list[Handoff],
                           tracing: ModelTracing, *, previous_response_id: str | None = None,
                           conversation_id: str | None = None, prompt: Any = None) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        subject, text, name = _customer_message(items)
        language = detect_language(f"{subject}\n{text}")
        results = [i for i in items if i.get("type") == "function_call_output"]
        if not results and any(t.name == "search_knowledge" for t in tools):
            queries = [q for q in (subject, f"{subject}\n{text}"[:2000]) if q.strip()]
            calls = [ResponseFunctionToolCall(type="function_call", name="search_knowledge", call_id=f"call_{n}",
                                              arguments=json.dumps({"query": q, "locale": language}))
                     for n, q in enumerate(dict.fromkeys(queries))]
            return ModelResponse(output=calls, usage=Usage(requests=1), response_id=None)
        draft = self.compose(subject, text, name, language, [_hits(r["output"]) for r in results])
        message = ResponseOutputMessage(
            id="msg_offline", type="message", role="assistant", status="completed",
            content=[ResponseOutputText(type="output_text", text=json.dumps(draft), annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(requests=1), response_id=None)

    def compose(self, subject: str, text: str, name: str, language: str,
                searches: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """The structured draft: reply text, honest confidence, and whether a person is needed.

        Two searches ran, by subject and by the whole message. When their best articles agree,
        the confidence is the better score; when they disagree, the topic is unclear and it is
        the lower one, discounted."""
        best, score = _best(searches)
        intent = risky_intent(f"{subject}\n{text}") or (best["intent"] if best and best.get("intent") else "other")
        phrases = PHRASES.get(language, PHRASES["en"])
        reasons = []
        if intent in RISKY:
            reasons.append(RISKY[intent])
        if best is None or score < GOOD_MATCH:
            reasons.append("no knowledge-base article answers this well enough")
        elif language not in PHRASES:
            reasons.append(f"the offline model cannot write in {language}")
        elif best["locale"] != language:
            reasons.append(f"no article in the customer's language ({language})")
        needs_human = bool(reasons)
        confidence = round(score if not needs_human else min(score, GOOD_MATCH) * 0.5, 3)
        greeting = phrases["hello"].format(name=_first_name(name))
        if needs_human:
            body = phrases["human"]
        else:
            assert best is not None
            url = f"{self.docs_url}/{best['id'].rsplit('.', 1)[0]}" if self.docs_url else ""
            parts = [phrases["thanks"], phrases["intro"].format(title=best["title"]), excerpt(best["content"], text)]
            if url:
                parts.append(phrases["more"].format(url=url))
            parts.append(phrases["outro"])
            body = "\n\n".join(parts)
        return {
            "reply": f"{greeting}\n\n{body}\n\n{self.sign_off}", "confidence": confidence, "intent": intent,
            "language": language, "cited_articles": [best["id"]] if best and not needs_human else [],
            "needs_human": needs_human, "needs_human_reason": "; ".join(reasons),
        }

    async def stream_response(self, system_instructions: str | None, input: str | list[Any],
                              model_settings: ModelSettings, tools: list[Tool],
                              output_schema: AgentOutputSchemaBase | None, handoffs: list[Handoff],
                              tracing: ModelTracing, *, previous_response_id: str | None = None,
                              conversation_id: str | None = None, prompt: Any = None) -> AsyncIterator[Any]:
        result = await self.get_response(system_instructions, input, model_settings, tools, output_schema,
                                         handoffs, tracing, previous_response_id=previous_response_id,
                                         conversation_id=conversation_id, prompt=prompt)
        response = Response(id="resp_offline", created_at=0, model=NAME, object="response", output=result.output,
                            tool_choice="auto", tools=[], top_p=None, parallel_tool_calls=False, status="completed")
        yield ResponseCompletedEvent(type="response.completed", response=response, sequence_number=0)


def _best(searches: list[list[dict[str, Any]]]) -> tuple[dict[str, Any] | None, float]:
    """The article to answer from, and how well it fits (see `compose`)."""
    tops = [hits[0] for hits in searches if hits]
    if not tops:
        return None, 0.0
    if len({h["id"] for h in tops}) == 1:
        bonus = AGREE_BONUS if len(tops) > 1 else 0.0
        return tops[0], min(1.0, max(float(h["score"]) for h in tops) + bonus)
    return tops[-1], min(float(h["score"]) for h in tops) * 0.8


def _hits(output: Any) -> list[dict[str, Any]]:
    try:
        found = json.loads(output) if isinstance(output, str) else []
    except json.JSONDecodeError:
        return []
    return [h for h in found if isinstance(h, dict) and {"id", "title", "locale", "intent", "score", "content"} <= set(h)]
