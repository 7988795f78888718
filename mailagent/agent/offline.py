"""The offline model: a deterministic Agents SDK `Model` built on the knowledge base.

It is not a language model. It runs through the real agent loop and the real tools: on its first
turn it searches the knowledge base (by subject and by the whole message) and looks up what the
message names (orders, invoices, incidents); for a refund request with an identifiable order it
then proposes `issue_refund`, which pauses the run for approval; finally it writes a templated
reply from an article's own text or from what the tools returned. Its confidence is the retrieval
score (how well the article covers the question), or high when a lookup answered the question;
risky intents, no good match, or no article in the customer's language make it ask for a human.
It needs no network and gives the same answer every time: for the demo, tests and benchmarks.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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

from mailagent.agent.input import LATEST_MARKER

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
    "en": {"refund_done": "I have refunded {amount} {currency} for order {order}. It usually shows on your "
                          "statement within 5 to 10 business days.",
           "refund_refused": "Our billing team looked at your refund request for order {order} and could not "
                             "approve it: {reason}",
           "incident": "Yes, we are aware of a problem: {title} (status: {status}, since {since} UTC). {update}",
           "status_page": "You can follow the updates at {url}.",
           "no_incident": "There is no ongoing incident on our side right now.",
           "invoice": "The invoice for order {order} is {invoice}; you can download it here: {url}",
           "hello": "Hi {name},", "thanks": "Thanks for getting in touch.",
           "intro": "Here is what our guide “{title}” says:",
           "more": "The full article: {url}", "outro": "If anything is still unclear, just reply to this email.",
           "human": "Thanks for your message. A colleague from our team will look into this personally and "
                    "get back to you as soon as possible."},
    "de": {"refund_done": "ich habe {amount} {currency} für die Bestellung {order} erstattet. Die Gutschrift "
                          "erscheint meist innerhalb von 5 bis 10 Werktagen.",
           "refund_refused": "unser Billing-Team hat Ihre Erstattungsanfrage für die Bestellung {order} geprüft "
                             "und konnte sie leider nicht genehmigen: {reason}",
           "incident": "ja, uns ist ein Problem bekannt: {title} (Status: {status}, seit {since} UTC). {update}",
           "status_page": "Aktuelle Informationen: {url}.",
           "no_incident": "derzeit gibt es bei uns keine bekannte Störung.",
           "invoice": "die Rechnung zur Bestellung {order} ist {invoice}; Sie können sie hier herunterladen: {url}",
           "hello": "Hallo {name},", "thanks": "vielen Dank für Ihre Nachricht.",
           "intro": "Dazu steht in unserer Anleitung „{title}“:",
           "more": "Den vollständigen Artikel finden Sie hier: {url}",
           "outro": "Wenn noch etwas unklar ist, antworten Sie einfach auf diese E-Mail.",
           "human": "vielen Dank für Ihre Nachricht. Eine Kollegin oder ein Kollege aus unserem Team kümmert "
                    "sich persönlich darum und meldet sich so bald wie möglich bei Ihnen."},
    "es": {"refund_done": "he reembolsado {amount} {currency} del pedido {order}. Suele aparecer en su "
                          "extracto en un plazo de 5 a 10 días hábiles.",
           "refund_refused": "nuestro equipo de facturación revisó su solicitud de reembolso del pedido {order} "
                             "y no pudo aprobarla: {reason}",
           "incident": "sí, conocemos un problema: {title} (estado: {status}, desde {since} UTC). {update}",
           "status_page": "Puede seguir las novedades en {url}.",
           "no_incident": "ahora mismo no hay ninguna incidencia abierta por nuestra parte.",
           "invoice": "la factura del pedido {order} es {invoice}; puede descargarla aquí: {url}",
           "hello": "Hola {name}:", "thanks": "gracias por escribirnos.",
           "intro": "Esto es lo que explica nuestra guía «{title}»:",
           "more": "El artículo completo: {url}", "outro": "Si algo no queda claro, responda a este correo.",
           "human": "gracias por su mensaje. Un compañero de nuestro equipo lo revisará personalmente y le "
                    "responderá lo antes posible."},
}

_ORDER_ID = re.compile(r"\b[A-Z]{2}-\d{4,}\b")
_INVOICE_ID = re.compile(r"\bINV-\d{4}-\d{3,}\b")
_AMOUNT = re.compile(r"(?:€|EUR|USD|\$)\s?(\d{1,3}(?:[.,\s]\d{3})*(?:[.,]\d{2})?)|(\d{1,3}(?:[.,\s]\d{3})*(?:[.,]\d{2})?)\s?(?:€|EUR|euros?)",
                     re.IGNORECASE)
_OUTAGE = ("down", "outage", "not loading", "status page", "503", "störung", "caído", "is it just me")
_INVOICE_WORDS = ("invoice", "rechnung", "factura", "facture", "receipt")
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


@dataclass
class Seen:
    """What the tools returned so far in this run (read back from the input items)."""

    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)     # (tool, arguments)
    searches: list[list[dict[str, Any]]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)            # found ones
    invoices: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] | None = None
    refund: dict[str, Any] | str | None = None         # the result, or a rejection's text

    @classmethod
    def read(cls, items: list[dict[str, Any]]) -> Seen:
        seen = cls()
        calls = {i["call_id"]: (i["name"], json.loads(i.get("arguments") or "{}"))
                 for i in items if i.get("type") == "function_call"}
        seen.asked = list(calls.values())
        for item in items:
            if item.get("type") != "function_call_output" or item.get("call_id") not in calls:
                continue
            tool, _ = calls[item["call_id"]]
            output = item.get("output")
            try:
                value = json.loads(output) if isinstance(output, str) else output
            except json.JSONDecodeError:
                value = output
            if tool == "search_knowledge":
                seen.searches.append(_hits(value))
            elif tool == "lookup_order" and isinstance(value, dict) and value.get("id"):
                seen.orders[value["id"]] = value
            elif tool == "list_invoices" and isinstance(value, list):
                seen.invoices = value
            elif tool == "incident_status" and isinstance(value, list):
                seen.incidents = value
            elif tool == "issue_refund":
                seen.refund = value
        return seen

    def called(self, tool: str, **arguments: Any) -> bool:
        return any(t == tool and all(a.get(k) == v for k, v in arguments.items()) for t, a in self.asked)


def _call(tool: str, n: int, **arguments: Any) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(type="function_call", name=tool, call_id=f"call_{n}_{tool}",
                                    arguments=json.dumps(arguments))


def _money(text: str) -> str:
    """"1.500,00" / "1,500.00" / "1 500" -> "1500.00"."""
    digits = re.sub(r"[^\d.,]", "", text)
    if re.search(r"[.,]\d{2}$", digits):
        whole, cents = digits[:-3], digits[-2:]
    else:
        whole, cents = digits, "00"
    return f"{int(re.sub(r'[^0-9]', '', whole) or 0)}.{cents}"


class OfflineModel(Model):
    """See the module docstring. Stateless: one instance serves concurrent runs."""

    def __init__(self, *, sign_off: str, docs_url: str | None = None, status_page: str | None = None) -> None:
        self.sign_off = sign_off
        self.docs_url = docs_url.rstrip("/") if docs_url else None
        self.status_page = status_page

    async def get_response(self, system_instructions: str | None, input: str | list[Any],
                           model_settings: ModelSettings, tools: list[Tool],
                           output_schema: AgentOutputSchemaBase | None, handoffs: list[Handoff],
                           tracing: ModelTracing, *, previous_response_id: str | None = None,
                           conversation_id: str | None = None, prompt: Any = None) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        subject, text, name = _customer_message(items)
        language = detect_language(f"{subject}\n{text}")
        seen = Seen.read(items)
        calls = self.plan(subject, text, language, seen, {t.name for t in tools})
        if calls:
            return ModelResponse(output=list(calls), usage=Usage(requests=1), response_id=None)
        draft = self.compose(subject, text, name, language, seen)
        message = ResponseOutputMessage(
            id="msg_offline", type="message", role="assistant", status="completed",
            content=[ResponseOutputText(type="output_text", text=json.dumps(draft), annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(requests=1), response_id=None)

    def plan(self, subject: str, text: str, language: str, seen: Seen, tools: set[str]) -> list[ResponseFunctionToolCall]:
        """The next tool calls, or none when it is time to answer."""
        n = len(seen.asked)
        folded = f"{subject}\n{text}".casefold()
        if not seen.asked:
            queries = dict.fromkeys(q for q in (subject, f"{subject}\n{text}"[:2000]) if q.strip())
            calls = [_call("search_knowledge", n + i, query=q, locale=language) for i, q in enumerate(queries)]
            calls += [_call("lookup_order", n + 10 + i, order_id=o) for i, o in enumerate(_ORDER_ID.findall(text)[:2])]
            if _INVOICE_ID.search(text) or any(w in folded for w in _INVOICE_WORDS) or risky_intent(folded) == "refund_request":
                calls.append(_call("list_invoices", n + 20))
            if any(_contains(folded, w) for w in _OUTAGE):
                calls.append(_call("incident_status", n + 21))
            return [c for c in calls if c.name in tools]
        if risky_intent(folded) != "refund_request" or seen.called("issue_refund") or "issue_refund" not in tools:
            return []
        order = self.refund_target(text, seen)
        if isinstance(order, str):                       # known by its invoice: look the order up first
            return [] if seen.called("lookup_order", order_id=order) else [_call("lookup_order", n, order_id=order)]
        if order is None:
            return []
        refundable = float(order["amount"]) - float(order.get("refunded") or 0)
        if order.get("status") not in ("paid", "partially_refunded") or refundable <= 0:
            return []
        reason = f"Customer asked for a refund: {subject[:120]}"
        return [_call("issue_refund", n, order_id=order["id"], amount=f"{refundable:.2f}",
                      currency=order["currency"], reason=reason)]

    @staticmethod
    def refund_target(text: str, seen: Seen) -> dict[str, Any] | str | None:
        """The order a refund request is about: named, or found by its invoice or its amount
        (then its id, to look up)."""
        for order_id in _ORDER_ID.findall(text):
            if order_id in seen.orders:
                return seen.orders[order_id]
        invoices = {i["id"]: i for i in seen.invoices}
        named = [invoices[i]["order_id"] for i in _INVOICE_ID.findall(text) if i in invoices]
        amounts = {_money(m.group(1) or m.group(2)) for m in _AMOUNT.finditer(text)}
        by_amount = [i["order_id"] for i in seen.invoices if f"{float(i['amount']):.2f}" in amounts]
        for order_id in named + by_amount:
            return seen.orders.get(order_id, order_id)
        return None

    def compose(self, subject: str, text: str, name: str, language: str, seen: Seen) -> dict[str, Any]:
        """The structured draft: reply text, honest confidence, and whether a person is needed.

        Two searches ran, by subject and by the whole message. When their best articles agree,
        the confidence is the better score; when they disagree, the topic is unclear and it is
        the lower one, discounted. A lookup that answers the question (an incident, an invoice, a
        refund's outcome) is what the reply says, with a high confidence."""
        best, score = _best(seen.searches)
        intent = risky_intent(f"{subject}\n{text}") or (best["intent"] if best and best.get("intent") else "other")
        phrases = PHRASES.get(language, PHRASES["en"])
        answer = self.from_lookups(text, intent, phrases, seen, best)
        reasons = []
        if answer is not None:
            body, intent_from_lookup = answer
            intent = intent_from_lookup or intent
            score, cited = max(score, 0.9), []
        else:
            if intent in RISKY:
                reasons.append(RISKY[intent])
            if best is None or score < GOOD_MATCH:
                reasons.append("no knowledge-base article answers this well enough")
            elif language not in PHRASES:
                reasons.append(f"the offline model cannot write in {language}")
            elif best["locale"] != language:
                reasons.append(f"no article in the customer's language ({language})")
            cited = [best["id"]] if best and not reasons else []
            body = phrases["human"] if reasons else self.from_article(best, text, phrases)
        needs_human = bool(reasons)
        confidence = round(score if not needs_human else min(score, GOOD_MATCH) * 0.5, 3)
        greeting = phrases["hello"].format(name=_first_name(name))
        return {
            "reply": f"{greeting}\n\n{body}\n\n{self.sign_off}", "confidence": confidence, "intent": intent,
            "language": language, "cited_articles": cited,
            "needs_human": needs_human, "needs_human_reason": "; ".join(reasons),
        }

    def from_article(self, best: dict[str, Any] | None, text: str, phrases: dict[str, str]) -> str:
        assert best is not None
        url = f"{self.docs_url}/{best['id'].rsplit('.', 1)[0]}" if self.docs_url else ""
        parts = [phrases["thanks"], phrases["intro"].format(title=best["title"]), excerpt(best["content"], text)]
        if url:
            parts.append(phrases["more"].format(url=url))
        parts.append(phrases["outro"])
        return "\n\n".join(parts)

    def from_lookups(self, text: str, intent: str, phrases: dict[str, str], seen: Seen,
                     best: dict[str, Any] | None) -> tuple[str, str | None] | None:
        """(reply body, intent) when what the tools returned answers the message."""
        refund = seen.refund
        if isinstance(refund, dict) and refund.get("executed"):
            done = phrases["refund_done"].format(amount=refund.get("amount"), currency=refund.get("currency"),
                                                 order=refund.get("order_id"))
            return f"{done}\n\n{phrases['outro']}", "refund_request"
        if isinstance(refund, str):                      # a rejection: the rep's words are the reason
            reason = refund.split(":", 1)[-1].strip() or refund
            order_id = next(iter(seen.orders), "")
            refused = phrases["refund_refused"].format(order=order_id, reason=reason)
            return f"{refused}\n\n{phrases['outro']}", "refund_request"
        if refund is not None:
            return None                                  # it failed: a person must look
        if seen.incidents is not None and intent not in RISKY:
            active = [i for i in seen.incidents if i.get("status") != "resolved"]
            if not active:
                return phrases["no_incident"] + "\n\n" + phrases["outro"], "outage"
            first = active[0]
            known = phrases["incident"].format(title=first["title"], status=first["status"],
                                               since=first["started_at"][:16].replace("T", " "),
                                               update=first.get("public_update", ""))
            follow = phrases["status_page"].format(url=self.status_page) if self.status_page else ""
            return f"{known} {follow}".rstrip(), "outage"
        orders = [o for o in seen.orders.values() if o.get("invoice_id")]
        invoices = {i["id"]: i for i in seen.invoices}
        if orders and intent not in RISKY and orders[0]["invoice_id"] in invoices:
            order = orders[0]
            invoice = invoices[order["invoice_id"]]
            line = phrases["invoice"].format(order=order["id"], invoice=invoice["id"], url=invoice["url"])
            extra = f"\n\n{excerpt(best['content'], text, limit=700)}" if best else ""
            return f"{line}{extra}\n\n{phrases['outro']}", "invoice_request"
        return None

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


def _hits(found: Any) -> list[dict[str, Any]]:
    if not isinstance(found, list):
        return []
    return [h for h in found if isinstance(h, dict) and {"id", "title", "locale", "intent", "score", "content"} <= set(h)]
