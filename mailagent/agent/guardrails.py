"""Deterministic guardrails: prompt-injection checks on customer mail, safety checks on drafts.

Pure functions, no I/O and no model, so the same mail always gets the same verdict and a policy
or an eval can rely on it. `check_injection` runs before any model call: customer text (hidden
HTML, subject and attachment names included) must not be able to raise confidence, change policy
or approve anything (DESIGN invariant 4), so text that tries is held for a rep instead of being
fed to the model. `check_output` runs on each draft before the policy sees it.

These are tripwires, not proofs. Patterns are written to keep false positives on real customer
mail near zero ("please ignore my last message" is not an attack), so a novel phrasing can get
through; an unflagged message is still untrusted input. Every pattern is flat (no nested
quantifiers) and instruction patterns only read the first `SCAN_LIMIT` characters, so the check
stays linear on huge mail; hidden-character checks read everything.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Literal

import ada_url

from mailagent.agent import injection_words as words
from mailagent.agent.numberwords import words_to_digits
from mailagent.needles import Needles, fold, may_match, needles
from mailagent.redact import password_values, secret_kinds

Where = Literal["body", "hidden_html", "subject", "attachment", "quoted", "display_name"]

SCAN_LIMIT = 100_000
EXCERPT = 120


@dataclass(frozen=True)
class Finding:
    technique: str
    where: Where
    excerpt: str


@dataclass(frozen=True)
class InjectionVerdict:
    flagged: bool
    findings: tuple[Finding, ...]

    @property
    def reason(self) -> str:
        if not self.flagged:
            return "no injection pattern found"
        return "; ".join(f"{f.technique} in {f.where}" for f in self.findings)


@dataclass(frozen=True)
class ExecutedAction:
    tool: str  # "issue_refund" | "cancel_subscription" | "resend_invoice" ...
    amount: Decimal | float | None = None       # an executed action's amount (store: Decimal)
    currency: str | None = None


@dataclass(frozen=True)
class OutputIssue:
    check: str  # "action_claim" | "secret_echo" | "link_not_allowed" | "amount_mismatch"
    detail: str


# --- normalisation --------------------------------------------------------------------------
# Text is matched after folding the tricks that keep a phrase readable to a model but not to a
# regex: compatibility forms (fullwidth, math letters), accents, zero-width characters inside
# words, Cyrillic and Greek look-alikes, and quote markers or line breaks splitting a phrase.

_INVISIBLE = ("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
              "\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f")
_ZERO_WIDTH_RUN = re.compile(f"[{_INVISIBLE}]{{8,}}")
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_FLAG_TAGS = re.compile(r"[a-z0-9]{2,6}\x7f")  # the tag sequence of a subdivision flag emoji
_BLACK_FLAG = "\U0001f3f4"
_QUOTES = {**dict.fromkeys(map(ord, "‘’ʼ‛`"), "'"), **dict.fromkeys(map(ord, "“”„«»"), '"')}
_TAGS = dict.fromkeys([*range(0xE0000, 0xE0080), *range(0xE0100, 0xE01F0)])  # tags, variation selectors 17-256
_SELECTOR_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")
_PLAIN = str.maketrans({**_QUOTES, **_TAGS})
_FOLD = str.maketrans({**_QUOTES, **_TAGS, **dict.fromkeys(map(ord, _INVISIBLE))})
_HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁԛԝһӏвкмнтАВЕКМНОРСТХУІЈЅԌαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧɡ",
    "aeopcyxijsdqwhlbkmhtABEKMHOPCTXYIJSGaeikvoptuxABEZHIKMNOPTYXg",
)
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_QUOTE_PREFIX = re.compile(r"^[> \t]+", re.MULTILINE)
_SPACES = re.compile(r"\s+")


def _normalise(text: str, *, fold: bool = True) -> str:
    """Text as the patterns expect it: no accents, one space or newline between words.

    `fold=False` keeps zero-width characters and look-alike letters, to tell whether a match
    needed them.
    """
    if not text.isascii():
        text = text.translate(_FOLD if fold else _PLAIN)
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
        if fold:
            text = text.translate(_HOMOGLYPHS)
    text = _QUOTE_PREFIX.sub("", text)
    return _SPACES.sub(lambda m: "\n" if "\n" in m.group() else " ", text)


# --- input rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    technique: str
    pattern: re.Pattern[str]
    needles: Needles | None          # one of them is in every match: a text without any is not searched

    def search(self, text: str, folded: str) -> re.Match[str] | None:
        """`pattern.search(text)`; `folded` is `fold(text)`."""
        return self.pattern.search(text) if may_match(self.needles, folded) else None


def _rules(technique: str, *patterns: str) -> tuple[_Rule, ...]:
    """Compile `patterns`, where a space stands for the one whitespace character left by `_normalise`."""
    compiled = [re.compile(p.replace(" ", r"\s"), re.IGNORECASE | re.MULTILINE) for p in patterns]
    return tuple(_Rule(technique, pattern, needles(pattern)) for pattern in compiled)


_EARLIER = (r"(?:previous|prior|above|earlier|preceding|former|original|initial|old|existing|system|safety"
            r"|given|developer|internal|hidden)")
_HUMAN_REVIEW = (r"(?:human|manual|rep|representative|staff|agent|manager|supervisor|moderator|operator)(?:'s)?"
                 r" (?:review|approval|check|oversight|sign-off|signoff|involvement|escalation|verification)\b")
_OVERRIDE = r"(?:ignore|disregard|forget|override|bypass|discard|set aside|do not follow|don't follow|stop following)"
# What follows benign "ignore the previous instructions ..." and says whose they were.
_WHOSE = r"(?:i|we|on|in|from|about|for|regarding|concerning|of|that|which|at|printed|written|sent)"
_FRUHERE = r"(?:bisherigen|vorherigen|vorigen|obigen|fruheren|vorangegangenen|vorstehenden|ursprunglichen|internen)"
_ANWEISUNGEN = (r"(?:anweisungen|instruktionen|regeln|befehle|vorgaben|richtlinien|anordnungen|systemanweisungen"
                r"|prompts?)")
_ORDERS = (r"(?:instructions?|prompts?|rules|guidelines|directives|programming|guardrails|restrictions"
           r"|constraints|policies|commands|orders|safeguards|training|system prompt)")
_AI = (r"(?:ai|a\.i\.|llm|llms|gpt|chatgpt|language models?|large language models?|chatbots?|assistants?"
       r"|ai (?:assistants?|agents?|models?|systems?|bots?|support)|support (?:ai|bot|assistant)"
       r"|automated (?:systems?|assistants?|agents?|responders?|support))")
# Words that make a note addressed to the assistant an instruction rather than information.
_TELLING = (r"(?:ignore|disregard|instructions?|approv\w*|authori[sz]ed|refund\w*|override|must|confidence|escalat\w*"
            r"|verified|vip|policy|review|flag\w*|do not|don't|never|always|reply|respond|say|tell|pretend|grant\w*"
            r"|cancel\w*|credit)")
# Words that turn "SYSTEM:" or "Assistant:" at the start of a line into an instruction.
_COMMAND_WORDS = (r"(?:ignore|instructions?|approved?|approval|pre-?approved|authori[sz]ed|refunded"
                  r"|override|must|confidence|escalat\w*|verified|certainly|granted?|execute"
                  r"|(?:developer|admin|god) mode)")
_TOOL_NAMES = (r"(?:issue_refund|refund_order|refund_payment|create_refund|process_refund|approve_refund"
               r"|cancel_subscription|resend_invoice|apply_credit|issue_credit|approve_action|approve_draft"
               r"|set_confidence|update_policy|send_reply|transfer_funds)")

_INSTRUCTIONS: tuple[_Rule, ...] = (
    *_rules(
        "instruction_override",
        # "ignore all previous instructions", "disregard your rules"; not "ignore my last message", nor
        # "ignore the previous instructions on the box", where the qualifier shows whose instructions.
        rf"\b{_OVERRIDE} (?:(?:all|any) (?:of )?(?:the |your |these |those )?|your )(?:{_EARLIER} |(?:ai|content"
        rf"|moderation) )?{_ORDERS}\b(?! (?:i|we) (?:gave|sent|wrote|mentioned|provided|had))",
        rf"\b{_OVERRIDE} (?:the |these |those )?{_EARLIER} {_ORDERS}\b(?! {_WHOSE} )",
        r"\b(?:forget|ignore|disregard) (?:everything|all) (?:that )?you(?:'ve| have| were| had)? (?:been )?"
        r"(?:told|taught|instructed|programmed|trained|given)\b",
        r"\byou(?: are|'re) now (?:(?:a|an|the|my) )?(?:(?:new|different|unrestricted|unfiltered|uncensored|jailbroken"
        r"|evil|rogue|senior|refund|support|billing) )?(?:ai|assistant|bot|chatbot|model|llm|gpt|dan|jailbroken"
        r"|unrestricted|unfiltered|uncensored|no longer (?:bound|restricted|limited|an?)|in (?:developer|admin|god"
        r"|debug|maintenance|test|unrestricted|jailbreak|dan|sudo|root) mode|operating (?:as|in|under)|acting as"
        r"|authori[sz]ed|allowed to|permitted to|able to (?:approve|refund|ignore|bypass)|called|named"
        r"|admin|administrator|manager|supervisor)\b",
        rf"\b(?:new|updated|revised|real|actual|true|override|hidden|secret|system|admin|developer) (?:system )?"
        rf"(?:instructions?|directives?|prompt|orders|task|rules)(?: for (?:the ai|the assistant|the model|the bot|you"
        rf"|ai|assistant))? ?:[^\n]{{0,160}}?\b{_TELLING}\b",
        r"\bfrom now on,? you (?:are|will be|shall be) (?:a |an |my |the )?(?:dan|ai|assistant|bot|unrestricted"
        r"|unfiltered|jailbroken|free from|no longer)\b|\bfrom now on,? you (?:act|behave|obey|ignore|(?:must|will)"
        r" (?:ignore|obey|act|approve|pretend))\b",
        r"\byour new (?:task|goal|job|instructions?|purpose|role|objective|directive|persona|identity)"
        r" (?:(?:is|are|will be) (?:to|as)\b|(?:is|are) ?:)",
        r"\btranslate (?:the following|this|the text below|the message below)\b[^\n.]{0,80}?\b(?:and|then)"
        r" (?:then )?(?:follow|execute|obey|carry out|act on|do what it says|perform) (?:it|them|this|that"
        r"|the (?:instructions?|commands?)|what it says)\b",
        # German, Spanish, French, Italian, Portuguese: "all/your ..." always, "the previous ..." unless
        # followed by whose or which instructions they are.
        r"\b(?:ignoriere|ignorier|ignorieren sie|ignoriert|vergiss|vergessen sie|missachte|missachten sie|umgehe)"
        r" (?:bitte )?(?:(?:alle|samtliche|jegliche) (?:deine |ihre |die |eure )?|deine |ihre |eure )"
        rf"(?:{_FRUHERE} )?{_ANWEISUNGEN}\b",
        r"\b(?:ignoriere|ignorier|ignorieren sie|ignoriert|vergiss|vergessen sie|missachte|missachten sie|umgehe)"
        rf" (?:bitte )?(?:die )?{_FRUHERE} {_ANWEISUNGEN}\b(?! (?:zur|zum|zu|fur|uber|bezuglich|von|vom|in|im"
        r"|auf|an|aus|die|ich|wir|meine[rn]?|unsere[rn]?)\b)",
        r"\b(?:ignora|ignore|ignoren|ignorar|olvida|olvide|olviden|descarta|descarte|omite|omita|no sigas|no siga)"
        r" (?:(?:todas|todos) (?:las |los )?(?:tus |sus )?(?:instrucciones|indicaciones|reglas|ordenes|directrices"
        r"|normas)\b|(?:tus|sus) (?:instrucciones|indicaciones|reglas|ordenes|directrices)\b|(?:las |los )?"
        r"(?:instrucciones|indicaciones|reglas|ordenes|directrices|normas) (?:anteriores|previas|de arriba|originales"
        r"|iniciales|del sistema)\b(?! (?:que|sobre|de|del|para|acerca)\b))",
        r"\b(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|ne tiens pas compte|ne tenez pas compte)"
        r" (?:de |des )?(?:(?:toutes|tous) (?:les |tes |vos )?(?:instructions|consignes|regles|directives|ordres"
        r"|indications)\b|(?:tes|vos) (?:instructions|consignes|regles|directives)\b|(?:les |ces )?(?:precedentes"
        r" (?:instructions|consignes|regles|directives|ordres|indications)|(?:instructions|consignes|regles"
        r"|directives|ordres|indications) (?:precedentes|anterieures|ci-dessus|d'origine|initiales|du systeme))\b"
        r"(?! (?:que|qui|sur|de|du|des|pour|concernant)\b))",
        r"\b(?:ignora|ignori|ignorate|dimentica|dimentichi|dimenticate|trascura|non seguire)"
        r" (?:tutte (?:le )?(?:tue |sue |vostre )?(?:istruzioni|regole|indicazioni|direttive)\b|(?:le )?(?:tue|sue"
        r"|vostre) (?:istruzioni|regole|indicazioni|direttive)\b|(?:le )?(?:istruzioni|regole|indicazioni|direttive)"
        r" (?:precedenti|di prima|sopra|originali|iniziali|del sistema)\b(?! (?:che|di|del|della|sul|sulla"
        r"|per)\b))",
        r"\b(?:ignore|ignora|ignorar|ignorem|esqueca|esquece|esquecam|desconsidere|desconsidera)"
        r" (?:todas (?:as )?(?:suas |tuas )?(?:instrucoes|regras|orientacoes|diretrizes|ordens)\b|(?:as )?(?:suas"
        r"|tuas) (?:instrucoes|regras|orientacoes|diretrizes)\b|(?:as )?(?:instrucoes|regras|orientacoes|diretrizes"
        r"|ordens) (?:anteriores|previas|acima|originais|iniciais|do sistema)\b(?! (?:que|sobre|de|do|da"
        r"|para)\b))",
    ),
    *_rules(
        "jailbreak",
        r"\b(?:you are|you're|act as|become|pretend to be|called|named|enable|activate|enter) (?:now )?(?-i:DAN)\b",
        r"(?-i:\bDAN\b) (?:mode|prompt|jailbreak)\b|\bdo anything now\W{0,3}(?-i:DAN)\b",
        r"\byou(?: are|'re)? (?:now )?(?:in|entering|switching to|operating in|running in) (?:the )?"
        r"(?:developer|dev|god|dan|jailbreak|unrestricted|unfiltered|sudo) mode\b",
        r"(?:^|\[|\() ?(?:developer|god|dan|jailbreak) mode (?:enabled|activated|on|output)\b",
        r"\b(?:enable|activate|enter) (?:dan|god|jailbreak|unrestricted|unfiltered) mode\b",
        r"\bjailbr(?:eak|oken) (?:mode|prompt|enabled|activated)\b|\b(?:this is a|the following is a) jailbreak\b",
        r"\bstay in character\b",
        r"\b(?:act|behave|respond|answer|operate|function|roleplay|role-play|role play) as (?:if you (?:are|were) "
        r"|though you (?:are|were) )?(?:a |an |the |my )?(?:(?:unrestricted|unfiltered|uncensored|jailbroken|evil"
        r"|rogue|different|new|senior|refund|billing|support|admin|system) )?(?:ai|assistant|chatbot|chatgpt|gpt|llm"
        r"|language model|bot|model|dan|system|administrator with|admin with|superuser|root user|linux terminal"
        r"|python interpreter|refund manager|refund supervisor|refund agent|billing manager|manager who|supervisor who"
        r"|agent with)\b",
        r"\bpretend (?:that )?(?:you(?: are|'re)|to be) (?:a |an |the |my )?(?:(?:unrestricted|unfiltered|different"
        r"|senior) )?(?:ai|assistant|chatbot|gpt|llm|bot|dan|human|manager|supervisor|admin|administrator|developer"
        r"|refund)\b",
    ),
    *_rules(
        "role_marker",
        r"<\|[a-z_]{2,30}\|>",
        r"\[/?inst\]|<</?sys>>|</s>|<s>\[|<(?:start|end)_of_turn>",
        r"</?(?:system|assistant|developer|sys|system_prompt|system-prompt|instructions?|admin|tool_call"
        r"|tool_response)>",
        r"\[(?:system|sys|admin|assistant|developer|instructions?|system (?:message|note|notice|override|prompt"
        r"|instruction))\]",
        r"^#{1,4} ?(?:system|instructions?|response|assistant|system prompt|new instructions?|developer)(?: ?:|$)",
        r"[\"']role[\"'] ?: ?[\"'](?:system|developer|assistant|tool|function)[\"']",
        rf"^(?:[-*] )?[*_\[(]{{0,3}}(?:system|system (?:message|prompt|note|notice|override|instruction|update|alert)"
        rf"|developer|assistant|ai|ai assistant|bot|gpt|chatgpt|openai)[*_\])]{{0,3}} ?:[^\n]{{0,200}}?"
        rf"\b{_COMMAND_WORDS}\b",
        r"(?:^|[\[*=#(]) ?(?:automated |official |internal |urgent |important )?(?:system|admin|administrator"
        r"|security|compliance|policy|moderation) (?:notice|override|directive|instruction|message|alert|command)\b"
        r"[^\n]{0,200}?\b(?:must|approve|ignore|override|auto-?send|confidence|escalat\w*|assistant|llm"
        r"|instructions?)\b",
    ),
    *_rules(
        "system_prompt_probe",
        r"\b(?:reveal|show|print|display|output|repeat|share|tell me|give me|send me|dump|leak|write out|paste"
        r"|recite|quote|translate|summari[sz]e|what is|what's|what are) (?:me )?(?:all )?(?:of )?(?:your|the) "
        r"(?:full |exact |entire |original |complete |hidden |current |verbatim )?(?:(?:system|initial|hidden|secret"
        r"|internal|developer|pre)[ -]?prompt|(?:system|hidden|secret) instructions|(?:hidden|secret) rules)\b",
        r"\b(?:repeat|print|output|show|reveal|recite) (?:the |all )?(?:text|words|everything|instructions|content)"
        r" (?:above|before this|preceding)\b",
        r"\b(?:what|which) (?:instructions|rules|guidelines|directives) (?:were|have) you (?:been )?"
        r"(?:given|told|programmed|provided)\b",
        r"\b(?:systemprompt|prompt del sistema|prompt (?:du )?systeme|prompt di sistema|prompt do sistema)\b",
    ),
    *_rules(
        "approval_claim",
        r"\b(?:refund|request|return|credit|exception|payment|this|it|ticket|action|chargeback|cancellation"
        r"|transaction|reply|response|order) (?:is|was|has been|have been|had been|already|is already|was already"
        r"|has already been) (?:already )?pre-?approved\b",
        r"\b(?:already )?pre-?approved (?:refund|request|exception|credit|by)\b",
        r"\b(?:approved|authori[sz]ed|signed off|okayed|ok'd|cleared|confirmed|greenlit|green-lit) by (?:your (?:"
        r"(?:support|billing|refund|refunds|finance|customer service|customer success|account|senior|regional|store"
        r"|shift) )?"
        r"(?:manager|supervisor|team lead|team|lead|director|head|ceo|cfo|cto|boss|department|colleague|admin"
        r"|administrator|management|owner)|(?:the|a) (?:support|billing|refunds?|customer service|customer success)"
        r" (?:manager|supervisor|team lead|team|department|lead))\b",
        r"\byour (?:manager|supervisor|team lead|boss) (?:has )?(?:already )?(?:approved|authori[sz]ed|okayed"
        r"|signed off)\b",
        r"\bmark (?:this |it |the )?(?:(?:refund|request|ticket|action|draft|reply|case|response) )?as (?:approved"
        r"|pre-?approved|authori[sz]ed|trusted|safe to send)\b",
        r"\byou (?:are|have been|were|'re|'ve been) (?:hereby |now |already |officially )?(?:authori[sz]ed|cleared"
        r"|approved|instructed) to (?:issue|refund|approve|bypass|ignore|skip|grant|waive|override|process"
        r"|transfer|credit|auto-?send)\b",
        r"\b(?:refund|request|exception|credit) (?:has been|is|was) (?:already )?(?:approved|authori[sz]ed) "
        r"(?:in advance|beforehand|internally)\b",
    ),
    *_rules(
        "policy_tampering",
        rf"\b(?:bypass|circumvent|skip|avoid|disable|turn off|switch off|override|ignore|no need for|no need to"
        rf" wait for|don't need|do not need|there is no need for) (?:a |the |any |all )?{_HUMAN_REVIEW}",
        rf"\b(?:send|approve|process|refund|issue|cancel|grant|execute)\b[^\n.]{{0,60}}?\bwithout (?:a |any )?"
        rf"{_HUMAN_REVIEW}",
        r"\b(?:bypass|circumvent|override) (?:the |your |any |all )?(?:review|approval|escalation|safety|security"
        r"|refund|moderation) (?:policy|policies|rules|limits?|checks?|guardrails?|filters?)\b",
        r"\b(?:ignore|disregard|suspend|override|bypass) (?:the |your )?(?:refund|return|cancellation|approval"
        r"|escalation|review|security|company|internal|ai|bot|assistant|auto-?send|sending) (?:policy|policies|rules"
        r"|limits|thresholds?|guidelines|procedures?)\b",
        r"\bauto-?(?:send|approve) (?:this|it|the (?:reply|response|refund|answer|email|draft|request))\b",
        r"\b(?:send|approve|process) (?:this|it|the (?:reply|response|answer|refund|email|draft)) (?:automatically"
        r"|directly|immediately|right away|now) without (?:any )?(?:review|approval|checking|a human|human)",
        r"\b(?:set|change|switch|force) (?:the )?(?:decision|policy decision|action|routing|outcome|status) to "
        r"[\"']?(?:send|auto-?send|approve|approved|auto-?approve)\b",
        r"\b(?:do not|don't|never) (?:tell|inform|notify|alert|involve|loop in|escalate to|forward (?:this|it) to"
        r"|show (?:this|it) to) (?:a |the |any )?(?:human|humans|reviewer|reviewers|moderator|operator)s?\b",
        r"\b(?:do not|don't|never) (?:escalate|hold|flag|queue|route|forward) (?:this|it|the (?:reply|response|draft"
        r"|refund|request|ticket|message)) (?:for (?:human |manual )?(?:review|approval)|to (?:a |the )?(?:human|rep"
        r"|person|reviewer))\b",
    ),
    *_rules(
        "confidence_manipulation",
        r"\b(?:set|change|raise|increase|make|put|bump|force|assign|mark|rate|report|output|return|give) (?:the "
        r"|your |this |my |a |its )?(?:(?:reply|response|answer|draft|model|classification|intent) )?(?:confidence"
        r"|certainty)(?: (?:score|level|value|rating))? (?:to|at|of|as|=|:) ?[\"']?(?:1(?:\.0)?\b|100 ?%|100\b"
        r"|0?\.9\d*|max(?:imum)?\b|full\b|high(?:est)?\b|very high\b)",
        r"[\"']?confidence(?:_score)?[\"']? ?[:=] ?[\"']?(?:1(?:\.0)?|100 ?%?)(?![\d.])",
        r"\b(?:treat|classify|consider|mark) (?:this|it|the (?:reply|answer|message|request|ticket)) as "
        r"(?:high[- ]confidence|certain|100 ?% (?:sure|certain|confident)|safe to (?:send|auto-send|autosend)"
        r"|low[- ]risk)\b",
        r"\b(?:setze|setzen sie|stelle|stellen sie) (?:die |deine |ihre )?(?:konfidenz|zuversicht)(?:wert)? auf"
        r" (?:1|100|maximum)\b",
        r"\b(?:establece|pon|fija|sube|mets|mettez|fixe|fixez) (?:la |tu |votre |ta )?(?:confianza|confiance) "
        r"(?:en|a) (?:1|100|maxima?|maximum)\b",
    ),
    *_rules(
        "tool_call_request",
        rf"\b(?:call|invoke|execute|run|trigger|use|fire|perform) (?:the |your |a )?(?:tool |function |action )?"
        rf"[\"']?{_TOOL_NAMES}\b",
        rf"\b{_TOOL_NAMES} ?\(|[\"']{_TOOL_NAMES}[\"']",
        # "execute the function", but not "when I execute the function from your docs"
        r"(?<!\bi\s)(?<!\bwe\s)(?<!\bthey\s)\b(?:execute|invoke|trigger) (?:the |your )(?:following |internal "
        r"|refund |billing |admin )?(?:tool|function|api function|function call|tool call)s?\b",
        r"\bcall your (?:refund |billing |admin |internal )?(?:tool|function)s?\b",
        r"\buse (?:your|the) (?:refund|billing|admin|internal|payment|cancellation) (?:tool|function)\b",
        r"[\"'](?:tool_calls?|function_call|tool_use|tool_name|function_name)[\"'] ?:|<(?:tool_call|function_call"
        r"|tool_use|function_calls|invoke)\b",
    ),
    *_rules(
        "impersonation",
        r"\b(?:i am|i'm|this is|speaking as|writing as) your (?:developer|creator|programmer|operator|administrator"
        r"|admin|supervisor|manager|boss|owner|maker|trainer)s?\b",
        r"\b(?:i am|i'm|this is|we are) (?:a |an )?(?:member of|colleague from|engineer (?:at|from)|employee (?:of|at)"
        r"|part of) your (?:support|billing|refunds?|finance|trust (?:and|&) safety|engineering|security) (?:team"
        r"|department)\b",
        r"\b(?:message|notice|instructions?|update|directive) from (?:the )?(?:openai|anthropic|your developers?"
        r"|the developers|your (?:admin|administrator|operator|creators?)|the (?:ai|model|system) (?:team"
        r"|administrator|operator|developers?))\b",
        r"\b(?:i am|i'm|this is) (?:a |an )?(?:openai|anthropic) (?:employee|engineer"
        r"|researcher|developer|staff|admin|representative)\b",
        r"\bthis (?:message|email|request) (?:is|comes) from your (?:support|billing|refunds?|finance|admin|security)"
        r" (?:team|department|manager|supervisor|lead)\b",
    ),
    *_rules(
        "ai_addressed",
        rf"\b(?:note|notice|message|instructions?|directive|reminder|attention|attn|p\.?s\.?|important) (?:to |for )?"
        rf"(?:the |any |all |our )?{_AI}\b(?! manager) ?[:,!-][^\n]{{0,160}}?\b{_TELLING}\b",
        r"\b(?:ai|llm|language model|assistant|chatbot|gpt|model|bot)s? (?:reading|processing|parsing|summari[sz]ing"
        r"|handling|analy[sz]ing) (?:this|these)\b",
        rf"\bif you(?: are|'re) (?:a |an )?{_AI}\b[^\n.]{{0,80}}?\b(?:ignore|must|approve|refund|issue|respond with"
        rf"|reply with|include|say|write|output|grant|disregard|forget|execute|call)\b",
    ),
    *_rules(
        "encoded_payload",
        r"\b(?:decode|decrypt|deobfuscate|unscramble|reverse|rot13|base64)\b[^\n.]{0,80}?\b(?:and|then) (?:then )?"
        r"(?:follow|execute|obey|carry out|act on|perform|apply|run) (?:it|them|this|that|the (?:instructions?"
        r"|commands?|result|decoded (?:text|message|string|instructions?))|what it says)\b",
    ),
)

# Hidden text has no business addressing anyone: what would be a fair request in visible text
# ("refund this order") is an attack when the customer hid it from the rep.
_HIDDEN_ONLY = _rules(
    "hidden_html",
    r"\byou (?:must|shall|are to|are required to|are instructed to|need to|have to) (?:now )?(?:approve|refund"
    r"|issue|grant|ignore|disregard|send|reply|respond|include|say|tell|escalate|mark|set|classify|treat|cancel"
    r"|transfer|reveal|forward|follow)\b",
    r"(?:^|[.!?:] )(?:please )?(?:approve|refund|grant|escalate|classify|reveal|disregard|override|issue (?:a|the"
    r"|this|an) (?:full )?(?:refund|credit)|mark (?:this|it|the)|set (?:the )?(?:confidence|priority|decision)"
    r"|treat (?:this|the)|reply (?:only )?with|respond (?:only )?with|tell the (?:customer|user)|do not (?:escalate"
    r"|flag|mention|tell|hold))\b",
    r"\b(?:ai|a\.i\.|llm|chatbot|gpt|language model|assistant|agent|bot|model|system)\b[^\n.]{0,60}?\b(?:must"
    r"|shall|is instructed|is required|needs to|has to|approve|ignore|disregard|refund|grant|escalate)\b",
    r"\b(?:the )?(?:customer|user|sender|requester|account holder)(?: is| has been)? (?:verified|pre-?approved"
    r"|entitled to|eligible for (?:a )?(?:full )?refund|a vip|authori[sz]ed)\b",
)

# In these places any instruction is the attack, whatever its kind.
_CHANNEL = {"hidden_html": "hidden_html", "subject": "subject_instruction", "attachment": "attachment_name",
            "display_name": "display_name"}
# Places with no business addressing anyone: the stricter hidden-text rules apply there too.
_STRICT: frozenset[Where] = frozenset({"hidden_html", "display_name"})
_FILENAME_SEPARATORS = re.compile(r"[_.+-]")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
_BASE32 = re.compile(r"\b[A-Z2-7]{16,}={0,6}")
_HEXES = re.compile(r"(?<![\w\\])[0-9a-fA-F\\x: ]{24,}(?![\w\\])")
_URL_SAFE = str.maketrans("-_", "+/")
_ROT13 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                       "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
_MAX_BLOBS = 50
# "the", "and", "you", "your", "all", "ignore", "please", "instructions" in rot13: text worth decoding.
_ROT13_WORDS = re.compile(r"\b(?:gur|naq|lbh|lbhe|nyy|vtaber|cyrnfr|vafgehpgvbaf|ehyrf|nffvfgnag)\b", re.IGNORECASE)
TAIL_LIMIT = 20_000
_MIDDLE_LIMIT = 50_000

# --- fences: what the run input uses to tell customer text from ours --------------------------

FENCE_TAG = "customer_message"
LATEST_MARKER = "Latest customer message (answer this one):"
_FENCE = re.compile(r"<\s*/?\s*(?:customer_message|earlier_turn|our_reply)\b|latest customer message \(answer this one\)",
                    re.IGNORECASE)


def defuse_fences(text: str) -> str:
    """Customer text with our fence tags and markers made inert (`<` becomes `‹`), so it cannot
    close the fence it is put in and speak as us."""
    return _FENCE.sub(lambda m: m.group().replace("<", "‹").replace("(", "[").replace(")", "]"), text)


# --- multilingual co-occurrence -----------------------------------------------------------------


def _lexicon(terms: Sequence[str]) -> re.Pattern[str]:
    """Terms as whole words (anywhere, for scripts written without spaces), after the folding the
    text gets. One lookaround around the whole alternation keeps the search fast."""
    spaced, unspaced = set(), set()
    for term in terms:
        folded = _normalise(term).strip().lower()
        escaped = re.escape(folded).replace(r"\ ", r"\s")  # the text has one space between words
        (unspaced if _UNSPACED.search(folded) else spaced).add(escaped)
    by_length = sorted(spaced, key=len, reverse=True)
    pattern = rf"(?<![\w'-])(?:{'|'.join(by_length)})(?![\w-])"
    if unspaced:
        pattern += "|" + "|".join(sorted(unspaced, key=len, reverse=True))
    return re.compile(pattern, re.IGNORECASE)


_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u9fff\u1100-\u11ff\uac00-\ud7af\u3130-\u318f]")
_OVERRIDE_WORDS = _lexicon(words.OVERRIDE)
_RULE_WORDS = _lexicon(words.RULES)
_EARLIER_WORDS = _lexicon(words.EARLIER)
_MACHINE_WORDS = _lexicon(words.MACHINE)
_PRIVILEGE_WORDS = _lexicon(words.PRIVILEGE)
_OWN_WORDS = _lexicon(words.OWN)
_STAFF_WORDS = _lexicon(words.STAFF)
_APPROVAL_WORDS = _lexicon(words.APPROVAL)
_VOCATIVE = re.compile(rf"^\W*(?:(?:{_lexicon(words.VOCATIVE).pattern})\s)?(?:(?:the|an|a)\s)?(?:{_lexicon((*words.MACHINE, *words.SYSTEM)).pattern})"
                       r"[^:,!\n]{0,30}?(?:[:,!]|\s(?:reading|processing|handling)\b)", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?;。！？])\s+|\n+")
_NOTE_HEAD = re.compile(
    r"(?:^|[\[(]|-{2,}\s*)(?:internal|staff|rep|agent|support(?:\steam)?|admin|supervisor|billing|team|moderator)"
    r"(?:'s)?\s(?:note|comment|memo|remark)\b|\bnote\s(?:from|by)\s(?:the\s)?(?:agent|rep|support|billing"
    r"|supervisor|manager|team)\b|\bnota\sinterna\b|\binterne\snotiz\b|\bnote\sinterne\b|\binterne\snotitie\b",
    re.IGNORECASE | re.MULTILINE)
_FORWARD_HEAD = re.compile(
    r"-{3,}\s*(?:forwarded message|original message|weitergeleitete nachricht|ursprungliche nachricht"
    r"|mensaje reenviado|mensaje original|message transfere|message d'origine|messaggio inoltrato"
    r"|mensagem encaminhada|doorgestuurd bericht)\s*-*|^begin forwarded message", re.IGNORECASE | re.MULTILINE)
_FROM_LINE = re.compile(r"^(?:from|von|de|da|van|od|от)\s*:[^\n]*", re.IGNORECASE | re.MULTILINE)
_ACT = re.compile(r"\b(?:please|bitte|por favor|merci de|per favore)\s[^.\n]{0,40}?\b(?:issue|process|pay|refund"
                  r"|confirm|auszahlen|erstatten|reembolsar|rembourser)|\bshould\s+(?:confirm|process|issue|approve)\b"
                  r"|\bprocess\s+the\s+payout\b|\bwithout\s+further\s+review\b|\bohne\s+weitere\s+prufung\b",
                  re.IGNORECASE)


def _paraphrases(text: str) -> Iterator[str]:
    """Sentences that set instructions aside (whoever's they are not the customer's own), or that
    address the machine and ask it for something only a rep may grant."""
    sentences = [s for s in _SENTENCES.split(text) if s.strip()]
    for i, sentence in enumerate(sentences):
        window = sentence + " " + (sentences[i + 1] if i + 1 < len(sentences) else "")
        override = _OVERRIDE_WORDS.search(sentence)
        if override and (rule := _RULE_WORDS.search(sentence)):
            own = _OWN_WORDS.search(" ".join(sentence[:rule.start()].split()[-3:]))
            if not own and (_EARLIER_WORDS.search(sentence) or _MACHINE_WORDS.search(window)
                            or _PRIVILEGE_WORDS.search(window)):
                yield sentence
                continue
        if _VOCATIVE.search(sentence) and (_OVERRIDE_WORDS.search(window) or _PRIVILEGE_WORDS.search(window)):
            yield sentence


def _staff_claims(text: str) -> Iterator[Finding]:
    """Notes and forwards in the customer's mail that pretend to come from our side."""
    for head in _NOTE_HEAD.finditer(text):
        after = text[head.start():head.end() + 300]
        if _APPROVAL_WORDS.search(after) or _PRIVILEGE_WORDS.search(after):
            yield Finding("fake_rep_note", "body", _excerpt(after))
            break
    for head in _FORWARD_HEAD.finditer(text):
        forwarded = text[head.end():head.end() + 2000]
        sender = _FROM_LINE.search(forwarded)
        staff = sender is not None and _STAFF_WORDS.search(sender.group())
        approval = _APPROVAL_WORDS.search(forwarded)
        if approval and (staff or _ACT.search(forwarded)) or _VOCATIVE.search(forwarded) or (
                _MACHINE_WORDS.search(forwarded) and _ACT.search(forwarded)):
            yield Finding("fake_forward", "body", _excerpt(forwarded))
            break


def check_injection(*, body: str, subject: str = "", hidden_html: str = "",
                    attachment_names: Sequence[str] = (), quoted: str = "",
                    display_name: str = "") -> InjectionVerdict:
    """Find instruction-like text aimed at the assistant anywhere the customer controls."""
    fields: list[tuple[Where, str]] = [("body", body), ("quoted", quoted), ("subject", subject),
                                       ("hidden_html", hidden_html), ("display_name", display_name)]
    fields += [("attachment", name) for name in attachment_names]
    findings: dict[tuple[str, str], Finding] = {}
    for where, text in fields:
        for finding in _scan(text, where):
            findings.setdefault((finding.technique, finding.where), finding)
    return InjectionVerdict(flagged=bool(findings), findings=tuple(findings.values()))


def _scanned_part(text: str) -> str:
    """What the patterns read: all of a normal message; of a huge one (a pasted log) the head, the
    tail, and every line between them that has a word of instruction in it, so the cost stays
    bounded and an instruction buried in the middle is still read."""
    if len(text) <= SCAN_LIMIT + TAIL_LIMIT:
        return text
    middle = text[SCAN_LIMIT:-TAIL_LIMIT]
    picked, size, pos = [], 0, 0
    while size < _MIDDLE_LIMIT and (match := _TRIGGER.search(middle, pos)) is not None:
        start = max(middle.rfind("\n", 0, match.start()) + 1, match.start() - 1000)
        end = middle.find("\n", match.end())
        end = min(len(middle) if end == -1 else end, match.end() + 1000)
        picked.append(middle[start:end])
        size += end - start
        pos = end + 1
    return "\n".join([text[:SCAN_LIMIT], *picked, text[-TAIL_LIMIT:]])


# Cheap stems of instruction words: lines of a huge message's middle that have one are read.
_TRIGGER = re.compile(
    r"ignor|disregard|forget|instruc|rules|assistant|system|approv|prompt|overrid|bypass|guidance|anweisung|vergiss"
    r"|vorgabe|olvid|oubli|consigne|dimentic|esquec|negeer|vergeet|zapomnij|игнор|забудь|инструкц|правил|talimat"
    r"|yok say|glom|無視|忽略|무시|指示|指令|지시|customer_message|\[/?inst\]|<\|", re.IGNORECASE)


def _scan(text: str, where: Where) -> Iterator[Finding]:
    """Findings in one field; a match that only appears once look-alikes are folded is also reported as such."""
    if not text or text.isspace():
        return
    yield from _hidden_characters(text, where)
    head = _scanned_part(text)
    scanned = _normalise(head)
    if where == "attachment":
        scanned += "\n" + _FILENAME_SEPARATORS.sub(" ", scanned)
    if fence := _FENCE.search(head):
        yield Finding("fence_escape", where, _excerpt(head[fence.start():fence.start() + EXCERPT]))
    rules = _INSTRUCTIONS + _HIDDEN_ONLY if where in _STRICT else _INSTRUCTIONS
    plain: str | None = None
    folded = fold(scanned)
    for rule in rules:
        match = rule.search(scanned, folded)
        if match is None:
            continue
        yield Finding(_CHANNEL.get(where, rule.technique), where, _excerpt(match.group()))
        if not head.isascii():
            plain = _normalise(head, fold=False) if plain is None else plain
            if not rule.pattern.search(plain):
                trick = "zero_width" if any(c in _INVISIBLE for c in head) else "homoglyph"
                yield Finding(trick, where, _excerpt(match.group()))
    for sentence in islice(_paraphrases(scanned), 1):
        yield Finding(_CHANNEL.get(where, "paraphrase"), where, _excerpt(sentence))
    if where in ("body", "quoted"):
        yield from (Finding(f.technique, where, f.excerpt) for f in _staff_claims(scanned))
    yield from _encoded(scanned, where)


def _hidden_characters(text: str, where: Where) -> Iterator[Finding]:
    """Text written in invisible characters, searched through the whole input."""
    if text.isascii():
        return
    for match in _TAG_RUN.finditer(text):
        decoded = "".join(chr(ord(c) - 0xE0000) for c in match.group())
        is_flag = text[match.start() - 1:match.start()] == _BLACK_FLAG and _FLAG_TAGS.fullmatch(decoded)
        if not is_flag and any(c.isalpha() for c in decoded):
            yield Finding("unicode_tags", where, _excerpt(decoded))
            break
    for match in _SELECTOR_RUN.finditer(text):
        data = bytes(ord(c) - 0xFE00 if ord(c) < 0xFE10 else ord(c) - 0xE0100 + 16 for c in match.group())
        decoded = data.decode("utf-8", "replace")
        if sum(c.isalpha() for c in decoded) >= 3:
            yield Finding("variation_selectors", where, _excerpt(decoded))
            break
    # Marketing preheaders pad hidden HTML with runs of zero-width joiners: only visible text counts.
    if where != "hidden_html" and (run := _ZERO_WIDTH_RUN.search(text)):
        yield Finding("zero_width", where, f"{len(run.group())} zero-width characters in a row")


def _encoded(scanned: str, where: Where) -> Iterator[Finding]:
    """Base64, base32, hex and rot13 text that decodes to instructions."""
    candidates = [_decode_base64(m.group()) for m in islice(_BASE64.finditer(scanned), _MAX_BLOBS)]
    candidates += [_decode_base32(m.group()) for m in islice(_BASE32.finditer(scanned), _MAX_BLOBS)]
    candidates += [_decode_hex(m.group()) for m in islice(_HEXES.finditer(scanned), _MAX_BLOBS)]
    if len(_ROT13_WORDS.findall(scanned, 0, SCAN_LIMIT)) >= 2:
        candidates.append(scanned.translate(_ROT13))
    for decoded in candidates:
        if decoded is None:
            continue
        text = _normalise(decoded)
        folded = fold(text)
        if any(rule.search(text, folded) for rule in _INSTRUCTIONS + _HIDDEN_ONLY) or next(_paraphrases(text), None):
            yield Finding("encoded_payload", where, _excerpt(decoded))
            return


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c.isspace() for c in text)
    return text if text and printable >= 0.95 * len(text) else None


def _decode_base64(blob: str) -> str | None:
    blob = blob.rstrip("=").translate(_URL_SAFE)
    blob = blob[: len(blob) - len(blob) % 4] if len(blob) % 4 == 1 else blob + "=" * (-len(blob) % 4)
    try:
        return _printable(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError):
        return None


def _decode_base32(blob: str) -> str | None:
    blob = blob.rstrip("=")
    try:
        return _printable(base64.b32decode(blob + "=" * (-len(blob) % 8)))
    except (binascii.Error, ValueError):
        return None


def _decode_hex(blob: str) -> str | None:
    digits = re.sub(r"\\x|[ :]", "", blob)
    try:
        return _printable(bytes.fromhex(digits[: len(digits) - len(digits) % 2]))
    except ValueError:
        return None


def _excerpt(text: str) -> str:
    return text.strip()[:EXCERPT]


# --- output checks --------------------------------------------------------------------------


def _claims(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns).replace(" ", r"\s"), re.IGNORECASE)


_DONE = r"(?: (?:just|now|already|successfully|gone ahead and))?"
_I = rf"\b(?:i|we)(?:'ve| have)?{_DONE}"
_AMOUNT_OF = r"(?: (?:of|von|de) AMOUNT)?"  # "refund of 20,00 EUR has been ...", amounts replaced first
_BEEN = r" (?:has|have) (?:now |already |just )?been"
_AND = r"(?:\band|,)(?: (?:have|'ve))?(?: also)?"   # "I have refunded you and cancelled ..."

# What a draft may only say once the matching tool ran: kind -> (claim, words in the tool's name).
_ACTIONS: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    "refund": (_claims(
        rf"\b(?:i|we)(?:'ve| have|'d| had)?{_DONE} (?:refunded|reimbursed)\b",
        rf"{_AND} (?:refunded|reimbursed) (?:you|your|the)\b",
        rf"{_I} (?:issued|processed|initiated|sent|approved|completed|made|put through|triggered|arranged|submitted)"
        r" (?:you )?(?:a|an|the|your)(?: full| partial)? refund\b(?! request)",
        rf"\brefund{_AMOUNT_OF}{_BEEN} (?:issued|processed|sent|completed|approved|initiated|made|paid|credited"
        r"|transferred|executed|granted|refunded)\b",
        r"\b(?:you|the (?:money|amount|payment|charge|funds|sum|full amount))(?: have| has|'ve) (?:now |already )?"
        r"been (?:refunded|reimbursed|returned|credited back)\b",
        r"\b(?:refund|money) is (?:now |already )?on (?:its|the) way\b",
        r"\b(?:ich|wir) ha(?:be|ben) [^\n.]{0,60}?\b(?:erstattet|zuruckerstattet|ruckerstattet|zuruckgebucht"
        r"|zuruckuberwiesen|ruckuberwiesen)\b",
        rf"\b(?:ruckerstattung|erstattung|ruckzahlung){_AMOUNT_OF} (?:wurde|ist) (?:bereits |soeben |jetzt )?"
        r"(?:veranlasst|bearbeitet|durchgefuhrt|ausgefuhrt|angewiesen|ausgezahlt|uberwiesen|erfolgt|gebucht)\b",
        r"\b(?:ya )?(?:he|hemos) (?:reembolsado|devuelto|(?:emitido|procesado|tramitado|realizado) (?:un|el|su|tu)"
        r" reembolso)\b",
        rf"\breembolso{_AMOUNT_OF} (?:ha sido|fue|ya ha sido|se ha) (?:procesado|emitido|realizado|aprobado|enviado"
        r"|tramitado|completado)\b",
        r"\b(?:j'ai|nous avons) (?:deja )?(?:rembourse|(?:emis|effectue) (?:un|le|votre) remboursement)\b",
        rf"\bremboursement{_AMOUNT_OF} a (?:deja )?ete (?:effectue|traite|emis|envoye|approuve|valide)\b",
    ), ("refund",)),
    "cancellation": (_claims(
        rf"{_I} (?:cancell?ed|terminated|ended|stopped|closed|deactivated) (?:your|the) (?:subscription|plan"
        r"|membership|account|renewal|contract|auto-?renewal|trial)\b",
        rf"{_AND} (?:cancell?ed|terminated|ended|stopped|deactivated) (?:your|the) (?:subscription|plan"
        r"|membership|renewal|contract|auto-?renewal|trial)\b",
        rf"\b(?:subscription|plan|membership|renewal|contract|auto-?renewal){_BEEN} (?:cancell?ed|terminated|ended"
        r"|stopped|deactivated)\b",
        r"\b(?:subscription|plan|membership|renewal|contract) is now (?:cancell?ed|terminated|ended|inactive)\b",
        r"\b(?:ich|wir) ha(?:be|ben) (?:ihr|dein|das|ihren|deinen|den) (?:abo|abonnement|vertrag|konto|plan|tarif)"
        r"[^\n.]{0,30}?\b(?:gekundigt|storniert|beendet|deaktiviert)\b",
        r"\b(?:abo|abonnement|vertrag|mitgliedschaft|tarif) (?:wurde|ist) (?:bereits |soeben |jetzt )?(?:gekundigt"
        r"|storniert|beendet|deaktiviert)\b",
        r"\b(?:ya )?(?:he|hemos) cancelado (?:su|tu|la|el) (?:suscripcion|plan|cuenta|contrato)\b",
        r"\bsuscripcion (?:ha sido|fue|ya ha sido|se ha) cancelada\b",
        r"\b(?:j'ai|nous avons) (?:deja )?(?:annule|resilie) (?:votre |ton |l')(?:abonnement|forfait|compte)\b",
    ), ("cancel",)),
    "invoice resend": (_claims(
        rf"{_AND} (?:re-?sent|sent|forwarded|emailed) (?:you )?(?:a |an |the |your )?(?:new |corrected "
        r"|updated |copy of )?(?:the |your )?invoices?\b",
        r"\b(?:i|we)(?:'ve| have)(?: (?:just|now|already))? (?:sent|forwarded|emailed|attached) (?:you )?(?:a |an "
        r"|the |your )?(?:new |corrected |updated |fresh |copy of )?(?:the |your )?invoices?\b",
        rf"\b(?:i|we)(?:'ve| have)?{_DONE} (?:re-?sent|re-?issued) (?:you )?(?:a |an |the |your )?(?:new |corrected "
        r"|updated )?invoices?\b",
        r"\binvoices?(?: (?:has|have) (?:now |just )?been| (?:was|were) just) (?:re-?sent|sent|forwarded|emailed"
        r"|re-?issued)\b",
        r"\b(?:ich|wir) ha(?:be|ben) (?:ihnen |dir )?(?:die|eine|ihre|deine) (?:neue |korrigierte )?rechnung"
        r"[^\n.]{0,30}?\b(?:gesendet|geschickt|zugeschickt|zugesandt|weitergeleitet|ubermittelt)\b",
        r"\brechnung wurde (?:erneut |soeben )?(?:gesendet|verschickt|zugeschickt|zugesandt)\b",
        r"\b(?:le |te )?(?:he|hemos) (?:reenviado|enviado|remitido) (?:la|su|tu|una) (?:nueva )?factura\b",
    ), ("invoice",)),
    "credit": (_claims(
        rf"{_I} (?:applied|added|issued|granted|given you)\b[^\n.]{{0,40}}?\bcredit\b(?! card)",
        rf"{_I} credited (?:your|the) (?:account|card|balance|wallet)\b",
        rf"\bcredit{_AMOUNT_OF}{_BEEN} (?:applied|added|issued|granted)\b",
    ), ("credit", "refund")),
    "chargeback reversal": (_claims(
        rf"{_I} reversed (?:the|your|this) (?:chargeback|charge|payment|transaction|debit)\b",
        rf"\b(?:chargeback|charge|payment|transaction|debit){_BEEN} reversed\b",
    ), ("chargeback", "reverse", "refund")),
    # Promises as well as claims: only a tool can grant these, and none did.
    "pause": (_claims(
        rf"{_I} (?:paused|suspended|frozen|froze|put on hold|put) (?:your|the) (?:subscription|plan|account"
        r"|membership|billing|renewal)\b",
        r"\b(?:i|we)(?:'ll| will) (?:pause|suspend|freeze|hold) (?:your|the) (?:subscription|plan|account"
        r"|membership|billing|renewal)\b",
        rf"\b(?:subscription|plan|membership|account|billing){_BEEN} (?:paused|suspended|frozen|put on hold)\b",
        r"\b(?:abo|abonnement|vertrag|konto) (?:wurde|ist) (?:jetzt )?(?:pausiert|ausgesetzt|eingefroren)\b",
        r"\b(?:ich|wir) ha(?:be|ben) (?:ihr|dein|das) (?:abo|abonnement|konto)[^\n.]{0,20}?\bpausiert\b",
        r"\b(?:he|hemos) pausado (?:su|tu|la|el) (?:suscripcion|plan|cuenta)\b",
        r"\b(?:j'ai|nous avons) (?:mis en pause|suspendu) (?:votre|ton) (?:abonnement|compte)\b",
    ), ("pause", "suspend")),
    "compensation": (_claims(
        r"\b(?:a|an|one|two|three|four|five|six|\d+) (?:months?|weeks?|years?) (?:for )?(?:free|of free|at no"
        r" (?:cost|charge))\b",
        r"\b(?:monate?|wochen?) (?:gratis|kostenlos|umsonst)\b",
        r"\b(?:meses?|semanas?) (?:gratis|gratuitos?)\b",
        r"\bmois (?:gratuits?|offerts?)\b",
        rf"{_I} (?:waived|removed|cancell?ed|written off|wrote off) (?:the|your|this) (?:fee|charge|late fee"
        r"|penalty|cancellation fee)\b",
        rf"\b(?:fee|charge|penalty){_BEEN} (?:waived|removed|written off)\b",
        rf"{_I} (?:applied|added|given you|granted) (?:a |an )?[^\n.]{{0,12}}?(?:discount|coupon|voucher)\b",
        r"\b(?:you(?:'ll| will) (?:get|receive|have)|we(?:'ll| will) (?:give|add|apply|send) you) (?:a |an )?"
        r"(?:AMOUNT )?(?:credit|discount|voucher|coupon|gift card|refund|compensation)\b",
        r"\b(?:a|an|your) (?:credit|gutschrift|credito|avoir) (?:of|von|de) AMOUNT\b",
        r"\b(?:i|we)(?:'ll| will) (?:refund|reimburse|credit|compensate) you\b",
        r"\byou(?:'ll| will) be (?:refunded|reimbursed|credited|compensated)\b",
    ), ("credit", "discount", "coupon", "waive", "compensat", "refund")),
    "plan change": (_claims(
        rf"{_I} (?:upgraded|downgraded|switched|moved|changed|extended) (?:you|your (?:plan|subscription|account"
        r"|trial|tier))\b",
        rf"\b(?:plan|subscription|trial|tier){_BEEN} (?:upgraded|downgraded|extended|switched)\b",
    ), ("plan", "upgrade", "downgrade", "extend", "trial")),
}
_ACTION_NEEDLES = {kind: needles(claim) for kind, (claim, _) in _ACTIONS.items()}
_CONDITIONAL = re.compile(
    r"\b(?:once|when|whenever|after|if|as soon as|until|before|unless|whether|sobald|wenn|nachdem|falls|bevor"
    r"|cuando|una vez que|si|lorsque|des que|quand)\b".replace(" ", r"\s"),
    re.IGNORECASE,
)
_SENTENCE_END = ".!?\n"
_CLAUSE_START = ".!?\n,;:"
_FUTURE = re.compile(r"\bwill\b|'ll\b", re.IGNORECASE)

_MONEY = re.compile(
    r"(?:(?P<cur_a>[€$£]|\b(?:EUR|USD|GBP|CHF|CAD|AUD|SEK|NOK|DKK|PLN)\b) ?(?P<num_a>\d[\d.,']{0,14})"
    r"|(?P<num_b>\d[\d.,']{0,14}) ?(?P<cur_b>[€$£]|(?:EUR|USD|GBP|CHF|CAD|AUD|SEK|NOK|DKK|PLN|euros?|dollars?"
    r"|pounds?)\b))",
    re.IGNORECASE,
)
_CURRENCY = {"€": "EUR", "$": "USD", "£": "GBP", "EURO": "EUR", "EUROS": "EUR", "DOLLAR": "USD",
             "DOLLARS": "USD", "POUND": "GBP", "POUNDS": "GBP"}
_CLAUSE_BREAK = re.compile(r"[!?;:\n]|[.,](?!\d)|\b(?:and|but|while|whereas|und|aber|pero|mais)\b", re.IGNORECASE)
_REFUND_WORD = re.compile(r"refund|reimburs|erstatt|ruckzahlung|gutschrift|reembols|devolu|rembours|credit(?! card)",
                          re.IGNORECASE)

_URL = re.compile(r"\bhttps?://[^\s<>\"'`)\]]+", re.IGNORECASE)
_BARE_DOMAIN = re.compile(
    r"(?<![@\w.-])\w[\w.-]{0,250}\.(?:com|net|org|io|co|ai|dev|info|biz|me|us|uk|de|fr|es|it|nl|eu|ch|at|be|se"
    r"|dk|fi|pl|cz|ru|cn|jp|in|br|au|ca|ly|gl|xyz|online|site|shop|store|tech|cloud|link|example)(?!\.?[\w-]|@)",
    re.IGNORECASE,
)


def check_output(reply: str, *, executed_actions: Sequence[ExecutedAction] = (),
                 allowed_domains: Collection[str] = (), customer_text: str = "", subject: str = "",
                 headers: Mapping[str, str] | None = None) -> tuple[OutputIssue, ...]:
    """What is wrong with a draft reply, before the policy decides whether it may go out.

    `subject` and `headers` are the outgoing Subject and any other header values we write: they
    carry customer text too ("Re: ..."), so links and secrets are checked there as well as in
    the body; what the reply claims is read in the subject and the body.
    """
    fields = {"subject": subject, **{name.lower(): value for name, value in (headers or {}).items()}}
    known = password_values(customer_text)
    issues = [*claim_issues(reply, executed_actions=executed_actions, subject=subject),
              *_secret_echoes(reply, known), *_links(reply, allowed_domains)]
    for name, value in fields.items():
        if value:
            issues += [OutputIssue(i.check, i.detail.replace("the reply", f"the {name}", 1))
                       for i in (*_secret_echoes(value, known), *_links(value, allowed_domains))]
    return tuple(dict.fromkeys(issues))


def claim_issues(reply: str, *, executed_actions: Sequence[ExecutedAction] = (),
                 subject: str = "") -> tuple[OutputIssue, ...]:
    """The part of `check_output` about what the reply says was done: actions that did not run
    ("action_claim") and refund amounts other than the one paid ("amount_mismatch")."""
    text = words_to_digits(_normalise(f"{subject}\n{reply}"[:SCAN_LIMIT]))
    return tuple(dict.fromkeys([*_action_claims(_MONEY.sub("AMOUNT", text), executed_actions),
                                *_amount_mismatches(text, executed_actions)]))


def _action_claims(text: str, executed: Sequence[ExecutedAction]) -> Iterator[OutputIssue]:
    """Past-tense claims of an action no tool performed ("I have refunded you" with no refund run)."""
    folded = fold(text)
    for kind, (claim, tool_words) in _ACTIONS.items():
        if any(word in action.tool.lower() for action in executed for word in tool_words):
            continue
        if not may_match(_ACTION_NEEDLES[kind], folded):
            continue
        for match in claim.finditer(text):
            # A past claim is conditional only within its clause ("After reviewing, I have refunded"
            # is not); a promise is conditional anywhere in its sentence ("Once approved, we will ...").
            starts = _SENTENCE_END if _FUTURE.search(match.group()) else _CLAUSE_START
            clause = max(text.rfind(c, 0, match.start()) for c in starts) + 1
            ends = [i for i in (text.find(c, match.end()) for c in _SENTENCE_END) if i != -1]
            is_question = bool(ends) and text[min(ends)] == "?"
            if not is_question and not _CONDITIONAL.search(text, max(clause, match.start() - 200), match.start()):
                yield OutputIssue("action_claim", f"the reply says a {kind} was done, but no such action ran")
                break


def _amount_mismatches(text: str, executed: Sequence[ExecutedAction]) -> Iterator[OutputIssue]:
    """Refund amounts in the reply that differ from what the refund tool actually paid."""
    paid = [(a.amount, (a.currency or "").upper()) for a in executed
            if a.amount is not None and any(word in a.tool.lower() for word in ("refund", "credit"))]
    if not paid:
        return
    done = ", ".join(f"{amount:.2f} {currency}".strip() for amount, currency in paid)
    for clause in _CLAUSE_BREAK.split(text):
        if not clause or not _REFUND_WORD.search(clause):
            continue
        for match in _MONEY.finditer(clause):
            amount = _parse_amount(match.group("num_a") or match.group("num_b"))
            symbol = (match.group("cur_a") or match.group("cur_b")).upper()
            currency = _CURRENCY.get(symbol, symbol)
            if not any(abs(amount - float(value)) < 0.005 and unit in ("", currency) for value, unit in paid):
                yield OutputIssue("amount_mismatch", f"the reply mentions a refund of {amount:.2f} {currency}, "
                                                     f"the refund executed was {done}")


def _parse_amount(raw: str) -> float:
    """'1.234,56', '1,234.56', '20,00' and '20' as numbers: one or two digits after the last separator are cents."""
    digits = raw.rstrip(".,'").replace("'", "")
    last = max(digits.rfind("."), digits.rfind(","))
    if last != -1 and len(digits) - last - 1 in (1, 2):
        return float(re.sub(r"[.,]", "", digits[:last]) + "." + digits[last + 1:])
    return float(re.sub(r"[.,]", "", digits))


def _secret_echoes(reply: str, passwords: Sequence[str]) -> Iterator[OutputIssue]:
    """Secrets in the reply, and `passwords` the customer wrote; the detail names the kind, never
    the value, since details are logged."""
    kinds = secret_kinds(reply)
    for kind in kinds:
        yield OutputIssue("secret_echo", f"the reply contains a {kind}")
    if "password" not in kinds:
        for password in passwords:
            if re.search(rf"(?<!\w){re.escape(password)}(?!\w)", reply):
                yield OutputIssue("secret_echo", "the reply repeats the password the customer wrote")
                break


def _links(reply: str, allowed_domains: Collection[str]) -> Iterator[OutputIssue]:
    """Links to hosts outside `allowed_domains` (subdomains included); mail addresses are not links."""
    allowed = {d.lower().strip(".").removeprefix("*.") for d in allowed_domains}
    hosts = [_host(url) for url in _URL.findall(reply)]
    hosts += [m.group().lower() for m in _BARE_DOMAIN.finditer(_URL.sub(" ", reply))]
    for host in dict.fromkeys(hosts):
        if not any(host == d or host.endswith("." + d) for d in allowed):
            yield OutputIssue("link_not_allowed", f"the reply links to {host or 'a malformed URL'}, "
                                                  "which is not an allowed domain")


def _host(url: str) -> str:
    """The host a browser would open (WHATWG URL parsing, as browsers do: a backslash ends the host,
    userinfo is dropped, IDNs are punycoded, numeric hosts are normalised); "" if it does not parse."""
    try:
        return (ada_url.URL(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


# --- display names ------------------------------------------------------------------------------

_NAME_MAX = 40
_NAME_WORDS_MAX = 4
_NAME_CHARS = re.compile(r"[^\w ,.'-]")
_NAME_NOISE = re.compile(
    r"\d{3}|@|https?:|www\.|\.(?:com|net|org|io|example)\b|\b(?:urgent|account|locked|suspended|verify|password"
    r"|call|click|refund|support|assistant|ai|bot|system|admin|security|billing|team|service|noreply|no-reply"
    r"|winner|prize|invoice|payment)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def safe_display_name(name: str) -> str:
    """The sender's display name as a greeting may use it, or "" when it is not plainly a name.

    A display name is written by the sender: "URGENT your account is locked call +1-900-..." must
    never become "Hi URGENT ...". A name is kept only when it looks like a person's name: a few
    words of letters (any script), no digits, links, shouting or words of a pitch or an instruction.
    Pure, and remembered: a ticket asks twice (the agent's input, the reply's To), ~50 µs each.
    """
    shown = " ".join(unicodedata.normalize("NFKC", name).translate(_FOLD).replace('"', " ").split())
    cleaned = _normalise(shown, fold=False)
    if not cleaned or len(cleaned) > _NAME_MAX or len(cleaned.split()) > _NAME_WORDS_MAX:
        return ""
    if _NAME_CHARS.search(cleaned) or _NAME_NOISE.search(cleaned) or "_" in cleaned or _mixed_scripts(shown):
        return ""
    if sum(w.isupper() and len(w) > 2 for w in cleaned.split()) >= 1 or check_injection(body="", display_name=cleaned).flagged:
        return ""
    return shown


def _mixed_scripts(text: str) -> bool:
    """A word that mixes alphabets (Latin with Cyrillic look-alikes): spoofing, not a name."""
    for word in text.split():
        scripts = {unicodedata.name(c, "?").split()[0] for c in word if c.isalpha()}
        if len(scripts) > 1:
            return True
    return False
