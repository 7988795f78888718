"""The correctness set: labelled customer questions over the sample knowledge base, run through
the real pipeline (ingest, classify, the agent with the offline model and the demo backend, the
shipped policies), and judged by checks that do not trust what the model says of its own draft.

A case (tests/data/correctness.toml) is one customer mail and the parts a right answer needs:
for each question in it, the article that answers it (or `incident` for the live incident
lookup) and phrases that must be in the reply. A reply that was auto-sent is right only when

- every part's phrases are there (each phrase may list alternatives separated by " | ");
- the articles it cites, and every sentence of it that comes from the knowledge base, belong to
  the parts' articles (no answer to a question that was not asked);
- an incident notice is only in a reply to a question about an incident;
- every paragraph is in the customer's language (greeting and sign-off included), and a Spanish
  reply does not mix tú and usted.

A case is answerable when a right auto-send is possible under the shipped policy: it has parts,
each one's article exists in the customer's language, and its intent is one the policy auto-sends.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from sqlmodel import select

from mailagent import config
from mailagent.actions.backends.demo import seed
from mailagent.config import DATA, Settings
from mailagent.knowledge.articles import read_articles
from mailagent.knowledge.search import sync
from mailagent.pipeline import classify, drafting
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.policy import load_policy
from mailagent.store import db, schema
from mailagent.store.models import Draft

from .mails import MX, passed

SET = Path(__file__).resolve().parents[1] / "data" / "correctness.toml"
INCIDENT = "incident"
INCIDENT_ARTICLE = "service-status-incidents"
LANGUAGES = ("en", "de", "es", "fr")

# Words that mark a paragraph's language (independent of the offline model's own detector).
MARKERS = {
    "en": {"the", "and", "you", "your", "is", "are", "to", "of", "with", "thanks", "regards", "hi", "please",
           "this", "can", "team", "if", "what", "here", "says", "our", "full", "article", "reply", "email"},
    "de": {"der", "die", "das", "und", "sie", "ihr", "ihre", "ist", "mit", "für", "grüße", "hallo", "bitte",
           "unser", "unsere", "nicht", "wenn", "noch", "dazu", "steht", "vielen", "dank", "ihnen", "auf", "den"},
    "es": {"el", "la", "los", "las", "y", "tu", "tus", "es", "con", "para", "gracias", "saludos", "hola", "que",
           "nuestro", "nuestra", "si", "algo", "esto", "este", "correo", "equipo", "de", "del", "por", "un"},
    "fr": {"le", "la", "les", "et", "vous", "votre", "est", "avec", "pour", "merci", "bonjour", "cordialement"},
}
USTED = re.compile(r"\b(usted|ustedes|responda|escríbanos|le responderá|su mensaje|puede descargarla)\b", re.IGNORECASE)
TU = re.compile(r"\b(tu|tus|puedes|responde|escríbenos|te responderemos|tienes|has)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    article: str                      # article id without locale, or "incident"
    facts: tuple[str, ...]            # phrases that must be in the reply ("a | b": either)


@dataclass(frozen=True)
class Case:
    id: str
    language: str
    subject: str
    body: str
    kind: str                         # single | multi | decoy | human | unanswerable
    parts: tuple[Part, ...]
    sender: str = ""


@dataclass(frozen=True)
class Judged:
    case: Case
    outcome: str                      # "sent" | "held" | "none"
    answerable: bool
    problems: tuple[str, ...] = ()    # why an auto-sent reply is wrong
    state: str = ""
    text: str = ""
    cited: tuple[str, ...] = ()
    why: str = ""                     # the decision's rule and the agent's reason, for reading

    @property
    def right(self) -> bool:
        return self.outcome == "sent" and not self.problems

    @property
    def wrong(self) -> bool:
        return self.outcome == "sent" and bool(self.problems)


def load_set(path: Path = SET) -> list[Case]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    cases = []
    for raw in data["case"]:
        parts = tuple(Part(p["article"], tuple(p.get("facts", ()))) for p in raw.get("parts", ()))
        cases.append(Case(raw["id"], raw["lang"], raw["subject"], raw["body"].strip(), raw["kind"], parts,
                          raw.get("sender", "")))
    return cases


# --- the knowledge base, as the judge reads it ---------------------------------------------------

def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", re.sub(r"\*\*|__|`", "", text)).casefold()
    return " ".join(text.replace("’", "'").split())


@dataclass(frozen=True)
class Knowledge:
    bodies: dict[str, str]            # article id -> normalized body
    intents: dict[str, str]
    safe_intents: frozenset[str]      # the intents the shipped policy may auto-send
    incident_titles: tuple[str, ...]

    @classmethod
    def read(cls, knowledge: Path = DATA / "knowledge", policies: Path = DATA / "policies") -> Knowledge:
        articles = read_articles(knowledge)
        policy = load_policy(policies)
        safe = frozenset(i for rule in policy.rules if rule.then == "send" for i in (rule.when.intent_in or ()))
        backend = tomllib.loads((DATA / "examples" / "backend.toml").read_text(encoding="utf-8"))
        titles = tuple(_norm(i["title"]) for i in backend.get("incidents", ()) if i.get("status") != "resolved")
        return cls({a.id: _norm(a.body) for a in articles}, {a.id: a.intent for a in articles}, safe, titles)

    def answerable(self, case: Case) -> bool:
        if not case.parts:
            return False
        for part in case.parts:
            if part.article == INCIDENT:
                if "outage" not in self.safe_intents:
                    return False
                continue
            article = f"{part.article}.{case.language}"
            if article not in self.bodies or self.intents.get(article) not in self.safe_intents:
                return False
        return True


# --- the judge (pure) ------------------------------------------------------------------------

def _paragraph_language(paragraph: str) -> str | None:
    words = re.findall(r"[^\W\d_]+", paragraph.casefold())
    counts = Counter({lang: sum(w in markers for w in words) for lang, markers in MARKERS.items()})
    (best, n), (_, runner_up) = [*counts.most_common(2), ("", 0)][:2]
    return best if n >= 2 and n > runner_up else None


def language_problems(text: str, language: str) -> list[str]:
    problems = []
    for paragraph in re.split(r"\n\s*\n", text):
        found = _paragraph_language(re.sub(r"https?://\S+|\S+@\S+", " ", paragraph))
        if found and found != language:
            problems.append(f"a paragraph is in {found}, not {language}: {paragraph.strip()[:60]!r}")
    if language == "es" and USTED.search(text) and TU.search(text):
        problems.append("the Spanish reply mixes tú and usted")
    return problems


def judge(case: Case, knowledge: Knowledge, state: str, text: str, cited: tuple[str, ...]) -> Judged:
    outcome = "sent" if state == "sent" else "none" if state in ("", "ignored") else "held"
    answerable = knowledge.answerable(case)
    if outcome != "sent":
        return Judged(case, outcome, answerable, (), state, text, cited)
    problems: list[str] = []
    reply = _norm(text)
    if not case.parts:
        problems.append("auto-sent, but the knowledge base does not answer this")
    allowed = {f"{p.article}.{case.language}" for p in case.parts if p.article != INCIDENT}
    if any(p.article == INCIDENT for p in case.parts):
        allowed |= {a for a in knowledge.bodies if a.startswith(INCIDENT_ARTICLE)}
    for n, part in enumerate(case.parts, 1):
        missing = [f for f in part.facts if not any(_norm(alt) in reply for alt in f.split(" | "))]
        if missing:
            problems.append(f"question {n} ({part.article}) not answered: missing {missing[0]!r}")
    for article in cited:
        if article not in allowed:
            problems.append(f"cites {article}, which answers a question that was not asked")
    for line in text.splitlines():
        sentence = _norm(line.strip(" -*:#0123456789."))
        if len(sentence) < 30:
            continue
        sources = {a for a, body in knowledge.bodies.items() if sentence in body}
        if sources and not sources & allowed:
            problems.append(f"quotes {min(sources)}, which answers a question that was not asked")
            break
    if not any(p.article == INCIDENT for p in case.parts) and any(t in reply for t in knowledge.incident_titles):
        problems.append("an incident notice for a question that is not about an incident")
    problems += language_problems(text, case.language)
    return Judged(case, outcome, answerable, tuple(problems), state, text, cited)


# --- running the set through the pipeline ------------------------------------------------------

AGENT = {"company": "Nimbus Notes", "sign_off": "Best regards,\nThe Nimbus Notes support team",
         "docs_url": "https://docs.nimbusnotes.example", "status_page": "https://status.nimbusnotes.example",
         "allowed_link_domains": ["nimbusnotes.example"]}


def settings_for(directory: Path) -> Settings:
    """SQLite in `directory`, the offline model, the shipped policies and knowledge base, the demo
    backend seeded from the sample data: what `mailagent demo` runs."""
    url = f"sqlite:///{directory / 'correctness.db'}"
    settings = config.use(Settings.model_validate({
        "database": {"url": url}, "model": {"provider": "offline"}, "agent": AGENT,
        # the MTAs whose verdict counts: the tests' own and the sample inbox's (as the demo trusts it)
        "ingest": {"trusted_authserv_ids": [MX, "mx1.nimbusnotes.example"]},
        "policy": {"directory": str(DATA / "policies"), "reload_seconds": 0},
        "mailboxes": {"support": {"address": "support@nimbusnotes.example", "display_name": "Nimbus Notes Support"}},
    }))
    schema.upgrade(url)
    sync(url, DATA / "knowledge")
    seed(url, settings.actions.demo_data)
    return settings


def mail_of(case: Case, n: int) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = case.sender or f"Sam Rivera <customer{n}@customers.example>"
    msg["Authentication-Results"] = passed(msg["From"])
    msg["To"] = "support@nimbusnotes.example"
    msg["Subject"] = case.subject
    msg["Date"] = "Fri, 20 Nov 2026 09:40:00 +0000"
    msg["Message-ID"] = f"<case{n}.{case.id}@customers.example>"
    msg.set_content(case.body + "\n")
    return msg.as_bytes()


def run_case(settings: Settings, case: Case, n: int) -> tuple[str, str, tuple[str, ...], str]:
    """(draft state, text, cited articles, why) of the draft for this case's mail."""
    url = settings.database.url
    [message_id] = store_many(url, [Inbound(mail_of(case, n), "file", "support")])
    if message_id is None:
        return "", "", (), ""
    processed = classify.process(settings, message_id)
    if processed is None or processed.conversation.id is None:
        return "", "", (), ""
    outcome = drafting.draft_reply_sync(settings, processed.conversation.id)
    while outcome.step is drafting.Step.REDRAFT:
        outcome = drafting.draft_reply_sync(settings, processed.conversation.id)
    with db.reading(url) as s:
        row = s.exec(select(Draft).where(Draft.message_id == message_id)).first()
    if row is None:
        return "", "", (), ""
    why = f"{row.rule}: {row.needs_human_reason or (row.reasons or [''])[0]}"
    return str(row.state), row.text or "", tuple(row.cited or ()), why


def run(directory: Path, cases: list[Case] | None = None) -> list[Judged]:
    settings = settings_for(directory)
    knowledge = Knowledge.read()
    judged = []
    for n, case in enumerate(cases if cases is not None else load_set(), 1):
        state, text, cited, why = run_case(settings, case, n)
        judged.append(replace(judge(case, knowledge, state, text, cited), why=why))
    db.dispose()
    return judged


@dataclass(frozen=True)
class Table:
    total: int
    answerable: int
    wrong: int
    right: int
    held: int
    none: int
    by_kind: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)   # kind -> (n, right, wrong, held)

    @property
    def right_share(self) -> float:
        return self.right / self.answerable if self.answerable else 0.0

    @property
    def held_share(self) -> float:
        return self.held / self.total if self.total else 0.0


def table(judged: list[Judged]) -> Table:
    kinds: dict[str, list[int]] = {}
    for j in judged:
        row = kinds.setdefault(j.case.kind, [0, 0, 0, 0])
        row[0] += 1
        row[1] += j.right
        row[2] += j.wrong
        row[3] += j.outcome == "held"
    return Table(total=len(judged), answerable=sum(j.answerable for j in judged), wrong=sum(j.wrong for j in judged),
                 right=sum(j.right and j.answerable for j in judged), held=sum(j.outcome == "held" for j in judged),
                 none=sum(j.outcome == "none" for j in judged),
                 by_kind={k: (n, r, w, h) for k, (n, r, w, h) in sorted(kinds.items())})
