"""The offline model: a deterministic Agents SDK `Model` built on the knowledge base.

It is not a language model. It runs through the real agent loop and the real tools. It splits the
customer's turn into its questions (`questions.split`), each with the statements just before it.
On its first turn it searches the knowledge base for each question (the question alone, and with
its context), looks up what the message names (orders, invoices), and asks for the incident
status only when a question itself asks whether something is down: a story around the question
("my old provider is shutting down") does not choose the tool. For a refund request with an
identifiable order it then proposes `issue_refund`, which pauses the run for approval. Finally it
answers each question from its article's best section (or from what a lookup returned) and signs
off in the customer's language. Its confidence is that of its weakest answer (how well the
article covers that question); a question it cannot answer, a risky intent or no article in the
customer's language make it hold the draft for a person, saying which question is missing.
It needs no network and gives the same answer every time: for the demo, tests and benchmarks.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
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
from mailagent.agent.phrases import HUMAN, PHRASES, sign_off
from mailagent.agent.questions import (
    MAX_QUESTIONS,
    Question,
    asks_about_outage,
    fold,
    risky_intent,
    split,
)
from mailagent.agent.sections import best_sections, excerpt, terms

NAME = "offline-kb-v1"
GOOD_MATCH = 0.45
AGREE_BONUS = 0.05          # every search of a question found the same article first
DISAGREE = 0.8              # the searches of one question found different articles
UNCOVERED = 0.8             # the article fits, but no section of it has the question's words
SIBLING_COVERAGE = 0.5      # a question answered by a sibling's article: how much of it a section must have
LOOKUP_CONFIDENCE = 0.9
RISKY = {"refund_request": "a refund needs a person to check and approve it",
         "complaint": "an unhappy customer deserves a person",
         "dispute": "a payment dispute needs the billing team",
         "gdpr_request": "a formal data-protection request is handled by the privacy team",
         "two_factor": "turning off or recovering two-factor authentication needs an identity check"}
# The draft's intent is that of its most sensitive question: the policy must see the refund in a
# mail that also asks for an invoice.
SENSITIVITY = ("dispute", "refund_request", "complaint", "gdpr_request", "account_deletion", "two_factor",
               "cancellation", "plan_change", "billing_question", "login_problem", "invoice_request", "outage",
               "data_export", "api_question", "password_reset", "how_to", "other")

STOPWORDS = {
    "en": {"the", "and", "is", "my", "i", "to", "of", "it", "you", "please", "thanks", "with", "for", "have",
           "how", "what", "where", "can", "do", "our", "we", "your", "in", "on"},
    "de": {"der", "die", "das", "und", "ist", "ich", "nicht", "mit", "mein", "meine", "bitte", "danke", "wie",
           "ein", "eine", "sie", "für", "auf", "auch", "aus", "unser", "unsere", "wir", "zu", "den", "dem",
           "kann", "wo", "gibt", "oder", "habe"},
    "es": {"el", "la", "los", "las", "y", "es", "mi", "no", "con", "por", "para", "gracias", "hola", "que",
           "una", "un", "cómo", "puedo", "de", "del", "se", "me", "he", "qué", "dónde", "mis", "tu", "lo"},
    "fr": {"le", "la", "les", "et", "est", "je", "mon", "ma", "pas", "avec", "pour", "merci", "bonjour", "vous"},
}
_ORDER_ID = re.compile(r"\b[A-Z]{2}-\d{4,}\b")
_INVOICE_ID = re.compile(r"\bINV-\d{4}-\d{3,}\b")
_AMOUNT = re.compile(r"(?:€|EUR|USD|\$)\s?(\d{1,3}(?:[.,\s]\d{3})*(?:[.,]\d{2})?)|(\d{1,3}(?:[.,\s]\d{3})*(?:[.,]\d{2})?)\s?(?:€|EUR|euros?)",
                     re.IGNORECASE)
_INVOICE_WORDS = ("invoice", "rechnung", "factura", "facture", "receipt")
_CUSTOMER = re.compile(r"<customer_message subject=(?P<subject>'[^\n]*'|\"[^\n]*\")>\n(?P<body>.*?)\n</customer_message>",
                       re.DOTALL)
_CUSTOMER_NAME = re.compile(r"^Customer: (?P<name>[^<\n]*)<", re.MULTILINE)
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """The language whose common words occur most; English when in doubt (one stray "no" or
    "la" does not make a message Spanish)."""
    words = [w.casefold() for w in _WORDS.findall(text[:4000])]
    counts = {lang: sum(map(stop.__contains__, words)) for lang, stop in STOPWORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] > counts["en"] and counts[best] >= 2 else "en"


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


def questions_of(subject: str, text: str) -> list[Question]:
    """The questions to answer; the subject stands for the question of a mail without a body. A
    question with hardly a word of its own ("Did we lose anything?", "What are we doing wrong?")
    is about what surrounds it: it joins the next question as context, or the one before."""
    found = split(text) or ([Question(subject)] if subject.strip() else [])
    merged: list[Question] = []
    pending = ""
    for n, question in enumerate(found):
        context = f"{pending} {question.context}".strip()
        pending = ""
        if len(found) > 1 and len(terms(question.text)) < 2:
            if n + 1 < len(found):
                pending = f"{context} {question.text}".strip()
                continue
            if merged:
                last = merged[-1]
                merged[-1] = Question(f"{last.text} {context} {question.text}".strip(), last.context)
                continue
        merged.append(Question(question.text, context))
    return merged[:MAX_QUESTIONS + 1]


def queries(subject: str, question: Question, alone: bool) -> list[str]:
    """The searches for one question: itself, with its context, and (the mail's only question)
    with the subject."""
    found = [question.text, question.full]
    if alone and subject.strip():
        found.append(f"{subject}\n{question.full}")
    return list(dict.fromkeys(q[:2000] for q in found if q.strip()))


@dataclass
class Seen:
    """What the tools returned so far in this run (read back from the input items)."""

    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)     # (tool, arguments)
    searches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)    # query -> hits
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
            tool, arguments = calls[item["call_id"]]
            output = item.get("output")
            try:
                value = json.loads(output) if isinstance(output, str) else output
            except json.JSONDecodeError:
                value = output
            if tool == "search_knowledge":
                seen.searches[str(arguments.get("query", ""))] = _hits(value)
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

    def best(self, asked: list[str]) -> tuple[dict[str, Any] | None, float]:
        """The article that answers a question, and how sure that is (see `match_confidence`):
        the most certain of its searches; a little more when all of them found it first; discounted
        when another of its searches found another article that fits (a search that found nothing
        fitting is no disagreement)."""
        found = [(hits[0], match_confidence(hits)) for q in asked if (hits := self.searches.get(q[:2000]))]
        if not found:
            return None, 0.0
        best, confidence = max(found, key=lambda f: f[1])
        if any(hit["id"] != best["id"] and float(hit["score"]) >= GOOD_MATCH for hit, _ in found):
            confidence *= DISAGREE                       # another search found another article that fits
        elif confidence >= GOOD_MATCH and len(found) > 1 and all(hit["id"] == best["id"] for hit, _ in found):
            confidence = min(1.0, confidence + AGREE_BONUS)   # every search found it first
        return best, confidence


def match_confidence(hits: list[dict[str, Any]]) -> float:
    """How sure a search is of its best article: its score (how much of the question it covers),
    raised by its lead over the runner-up (a clear winner, not one of several half-fits). Below
    `GOOD_MATCH` coverage it is nothing: no lead makes up for an article that does not cover it."""
    first = float(hits[0]["score"])
    if first < GOOD_MATCH:
        return first
    second = float(hits[1]["score"]) if len(hits) > 1 else 0.0
    lead = (first - second) / first
    return min(1.0, first + (1.0 - first) * lead)


@dataclass(frozen=True)
class Answer:
    """One question's answer, or why there is none."""

    question: Question
    intent: str
    confidence: float
    article: dict[str, Any] | None = None        # answered from this article
    text: str = ""                               # answered from a lookup
    reason: str = ""                             # why a person must answer it
    unmatched: bool = False                      # no article fits it on its own


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


def _quote(question: Question) -> str:
    text = " ".join(question.text.split())
    return f"“{text[:80]}{'…' if len(text) > 80 else ''}”"


class OfflineModel(Model):
    """See the module docstring. Stateless: one instance serves concurrent runs."""

    def __init__(self, *, sign_off: str, docs_url: str | None = None, status_page: str | None = None,
                 company: str = "Example", sign_offs: Mapping[str, str] | None = None) -> None:
        self.sign_off = sign_off
        self.docs_url = docs_url.rstrip("/") if docs_url else None
        self.status_page = status_page
        self.company = company
        self.sign_offs = dict(sign_offs or {})

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
        folded = fold(f"{subject}\n{text}")
        if not seen.asked:
            asked = questions_of(subject, text)
            searched = dict.fromkeys(q for question in asked for q in queries(subject, question, len(asked) == 1))
            calls = [_call("search_knowledge", n + i, query=q, locale=language) for i, q in enumerate(searched)]
            calls += [_call("lookup_order", n + 50 + i, order_id=o) for i, o in enumerate(_ORDER_ID.findall(text)[:2])]
            if _INVOICE_ID.search(text) or any(w in folded for w in _INVOICE_WORDS) or risky_intent(folded) == "refund_request":
                calls.append(_call("list_invoices", n + 60))
            if any(asks_about_outage(question) for question in asked):
                calls.append(_call("incident_status", n + 61))
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
        """The structured draft: every question answered, or held saying which one is not; the
        confidence of the weakest answer; the intent of the most sensitive question."""
        phrases = PHRASES.get(language, PHRASES["en"])
        greeting = phrases["hello"].format(name=_first_name(name))
        closing = sign_off(language, company=self.company, english=self.sign_off, configured=self.sign_offs)
        settled = self.refund_outcome(phrases, seen)
        if settled is not None:
            body, confidence, reasons = settled
            return self._draft(f"{greeting}\n\n{body}\n\n{closing}", confidence, "refund_request", language, [],
                               reasons)
        asked = questions_of(subject, text)
        answers = [self.answer(subject, question, n, len(asked), language, seen) for n, question in enumerate(asked, 1)]
        answers = [self.from_sibling(a, answers) if a.unmatched else a for a in answers]
        reasons = [a.reason for a in answers if a.reason]
        if len(asked) > MAX_QUESTIONS:
            reasons.append(f"the message asks more than {MAX_QUESTIONS} questions")
        if (risky := risky_intent(subject)) and risky in RISKY and all(a.intent != risky for a in answers):
            reasons.append(RISKY[risky])
            answers.append(Answer(Question(subject), risky, 0.0, reason=RISKY[risky]))
        intent = min((a.intent for a in answers), key=SENSITIVITY.index, default="other")
        confidence = min((a.confidence for a in answers), default=0.0)
        if language not in PHRASES:
            reasons.append(f"the offline model cannot write in {language}")
            human = HUMAN.get(language, f"{greeting}\n\n{phrases['human']}").format(name=_first_name(name))
            return self._draft(f"{human}\n\n{closing}", confidence, intent, language, [], reasons)
        answered = [a for a in answers if not a.reason]
        if not answered or any(a.intent in RISKY and a.reason for a in answers):
            return self._draft(f"{greeting}\n\n{phrases['human']}\n\n{closing}", confidence, intent, language, [],
                               reasons)
        parts = [phrases["thanks"], *self.from_answers(answered, phrases)]
        parts.append(phrases["rest"] if reasons else phrases["outro"])
        cited = list(dict.fromkeys(a.article["id"] for a in answered if a.article))
        body = "\n\n".join(parts)
        return self._draft(f"{greeting}\n\n{body}\n\n{closing}", confidence, intent, language, cited, reasons)

    @staticmethod
    def _draft(reply: str, confidence: float, intent: str, language: str, cited: list[str],
               reasons: list[str]) -> dict[str, Any]:
        needs_human = bool(reasons)
        if needs_human:
            confidence = min(confidence, GOOD_MATCH) * 0.5
        return {"reply": reply, "confidence": round(confidence, 3), "intent": intent, "language": language,
                "cited_articles": cited, "needs_human": needs_human, "needs_human_reason": "; ".join(reasons)}

    def answer(self, subject: str, question: Question, n: int, of: int, language: str, seen: Seen) -> Answer:
        """One question's answer: a risky intent needs a person; a question about an outage is
        answered by the incident lookup; any other from its best article, if it fits well."""
        which = f"question {n} {_quote(question)}" if of > 1 else "the question"
        risky = risky_intent(question.full)
        if risky in RISKY:
            return Answer(question, risky, 0.0, reason=RISKY[risky])
        if asks_about_outage(question) and seen.incidents is not None:
            return Answer(question, "outage", LOOKUP_CONFIDENCE, text=self.incident_text(PHRASES.get(language, PHRASES["en"]), seen.incidents))
        best, score = seen.best(queries(subject, question, of == 1))
        if best is None or score < GOOD_MATCH:
            return Answer(question, "other", score, reason=f"no knowledge-base article answers {which}",
                          unmatched=True)
        intent = best.get("intent") or "other"
        if intent in RISKY:
            return Answer(question, intent, 0.0, reason=RISKY[intent])
        if best["locale"] != language:
            return Answer(question, intent, score, reason=f"no article in the customer's language ({language}) "
                                                          f"answers {which}")
        invoice = self.invoice_text(question, PHRASES.get(language, PHRASES["en"]), seen) \
            if intent == "invoice_request" else None
        if invoice:
            return Answer(question, intent, max(score, LOOKUP_CONFIDENCE), best, text=invoice)
        if best_sections(best["content"], question.text, question.context).coverage == 0.0:
            score *= UNCOVERED
        return Answer(question, intent, score, best)

    @staticmethod
    def from_sibling(answer: Answer, answers: list[Answer]) -> Answer:
        """A question no article fits on its own, in a mail whose other questions an article
        answers ("3. Is there a way to schedule this every month?" after two questions about
        exports): answered from that article when a section of it has most of the question's
        words; as sure as that coverage allows."""
        for other in answers:
            article = other.article
            if article is None or other.reason:
                continue
            coverage = best_sections(article["content"], answer.question.text, answer.question.context).coverage
            if coverage >= SIBLING_COVERAGE:
                return Answer(answer.question, other.intent, other.confidence * coverage, article)
        return answer

    def from_answers(self, answers: list[Answer], phrases: dict[str, str]) -> list[str]:
        """The answers in the order asked; questions answered by the same article share its
        introduction, each with its own section; the links to the full articles come last."""
        parts: list[str] = []
        links: list[str] = []
        shown: dict[str, list[str]] = {}                 # article id -> sections already quoted
        for a in answers:
            if a.text:
                parts.append(a.text)
            if a.article is None:
                continue
            article = a.article
            sections = best_sections(article["content"], a.question.text, a.question.context).texts
            if article["id"] in shown:
                new = [section for section in sections if section not in shown[article["id"]]]
                shown[article["id"]] += new
                parts += new
                continue
            shown[article["id"]] = list(sections)
            if a.text:                                   # a lookup answered it; the article adds context
                parts.append(excerpt(article["content"], a.question.text, limit=700, context=a.question.context))
                continue
            parts += [phrases["intro"].format(title=article["title"]),
                      excerpt(article["content"], a.question.text, context=a.question.context)]
            if self.docs_url:
                links.append(phrases["more"].format(url=f"{self.docs_url}/{article['id'].rsplit('.', 1)[0]}"))
        return [*parts, *links]

    def refund_outcome(self, phrases: dict[str, str], seen: Seen) -> tuple[str, float, list[str]] | None:
        """(reply body, confidence, reasons) once a proposed refund was decided: what ran, or that
        a person follows up. A rejection's text is for the agent, never for the customer."""
        refund = seen.refund
        if isinstance(refund, dict) and refund.get("executed"):
            done = phrases["refund_done"].format(amount=refund.get("amount"), currency=refund.get("currency"),
                                                 order=refund.get("order_id"))
            return f"{done}\n\n{phrases['outro']}", LOOKUP_CONFIDENCE, []
        if isinstance(refund, str):
            refused = phrases["refund_refused"].format(order=next(iter(seen.orders), ""))
            return refused, LOOKUP_CONFIDENCE, []
        if refund is not None:                           # it failed: a person must look
            return phrases["human"], 0.0, ["the refund did not run"]
        return None

    def incident_text(self, phrases: dict[str, str], incidents: list[dict[str, Any]]) -> str:
        active = [i for i in incidents if i.get("status") != "resolved"]
        if not active:
            return phrases["no_incident"]
        first = active[0]
        known = phrases["incident"].format(title=first["title"], status=first["status"],
                                           since=first["started_at"][:16].replace("T", " "),
                                           update=first.get("public_update", ""))
        follow = phrases["status_page"].format(url=self.status_page) if self.status_page else ""
        return f"{known} {follow}".rstrip()

    @staticmethod
    def invoice_text(question: Question, phrases: dict[str, str], seen: Seen) -> str | None:
        """The invoice of an order the question names, with its link."""
        invoices = {i["id"]: i for i in seen.invoices}
        for order_id in _ORDER_ID.findall(question.full):
            order = seen.orders.get(order_id)
            if order and order.get("invoice_id") in invoices:
                invoice = invoices[order["invoice_id"]]
                return phrases["invoice"].format(order=order["id"], invoice=invoice["id"], url=invoice["url"])
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


def _hits(found: Any) -> list[dict[str, Any]]:
    if not isinstance(found, list):
        return []
    return [h for h in found if isinstance(h, dict) and {"id", "title", "locale", "intent", "score", "content"} <= set(h)]
