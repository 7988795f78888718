"""Separate the new text of a reply from the quoted history and the signature.

Only the new text is what the customer says now. The history repeats earlier messages (often our
own answers) and the signature is boilerplate; both would mislead the model if read as the request.

The work is line by line with cheap tests and short, bounded regexes: every line is looked at a
fixed number of times and no pattern can backtrack over a long line, so a hostile or huge body
costs linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import Tag

from mailagent.mail.html import Rendering, parse_html, render


@dataclass(frozen=True)
class Reply:
    text: str
    quoted: str
    signature: str


_LONGEST_HEADER_LINE = 400  # "On <date>, <name> <address> wrote:" and header fields fit in this

# "On <date>, <name> wrote:" in many languages, possibly wrapped over up to three lines. The verb
# ends the line in most languages, but not all ("Am <date> schrieb <name>:").
_VERBS = (
    r"wrote|writes|schrieb|a\s+écrit|escribió|escribio|ha\s+escrito|scrisse|ha\s+scritto|"
    r"schreef|geschreven|skrev|napisał|napisała|napisał\(a\)|pisze|napsal|napsala|napsal\(a\)|"
    r"написал|написала|написал\(а\)|kirjoitti|írta|yazdı|escreveu|έγραψε|写道"
)
_VERB_AT_END = re.compile(rf"(?:{_VERBS})\s*[:：]?\s*$", re.IGNORECASE)
_VERB = re.compile(rf"(?<!\w)(?:{_VERBS})(?!\w)", re.IGNORECASE)
_ATTRIBUTION_START = re.compile(
    r"^(?:(?:on|am|le|el|il|op|den|på|w\s+dniu|dnia|em|dne|dňa|в|στις|"
    r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*)\b|\d)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]@[\w-]")
_DIGIT = re.compile(r"\d")

_SEPARATOR = re.compile(r"^[-_=*~\s]{3,}$")  # a rule drawn above a quoted header block
_HISTORY_MARK = re.compile(
    r"^[-_=\s]{2,}(?:original\s+message|original|ursprüngliche\s+nachricht|originalnachricht|"
    r"original-nachricht|message\s+d'origine|message\s+original|mensaje\s+original|"
    r"messaggio\s+originale|oorspronkelijk\s+bericht|origineel\s+bericht|"
    r"ursprungligt\s+meddelande|oprindelig\s+meddelelse|opprinnelig\s+melding|originalmeddelande|"
    r"oryginalna\s+wiadomość|wiadomość\s+oryginalna|исходное\s+сообщение|"
    r"alkuperäinen\s+viesti|eredeti\s+üzenet|mensagem\s+original|původní\s+zpráva|"
    r"forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré|mensaje\s+reenviado|"
    r"messaggio\s+inoltrato|doorgestuurd\s+bericht|vidarebefordrat\s+meddelande|"
    r"przekazana\s+wiadomość|пересланное\s+сообщение|reply\s+message)[-_=\s]{2,}$"
    r"|^(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht|"
    r"début\s+du\s+message\s+réexpédié|inicio\s+del\s+mensaje\s+reenviado|"
    r"begin\s+doorgestuurd\s+bericht)\s*:$",
    re.IGNORECASE,
)

# The fields of a quoted header block ("From: ... Sent: ..."), by meaning, in common languages.
_FIELD = re.compile(r"^[>*_\s]*([^\W\d_][^\W\d]{0,15}(?:[ -][^\W\d]{1,10})?)\s*:", re.UNICODE)
_FIELDS = {
    **dict.fromkeys(
        "from von de van från od da от fra lähettäjä feladó kimden expéditeur mittente "
        "remitente".split(),
        "from",
    ),
    **dict.fromkeys(
        "sent date gesendet datum envoyé fecha enviado inviato data verzonden skickat wysłano "
        "отправлено дата sendt lähetetty elküldve tarih odesláno".split(),
        "date",
    ),
    **dict.fromkeys(
        "to an à a para aan till do кому til vastaanottaja címzett kime komu destinataire".split(),
        "to",
    ),
    **dict.fromkeys("cc kopie копия kopia".split(), "cc"),
    **dict.fromkeys(
        "subject betreff objet asunto oggetto onderwerp ämne temat тема emne aihe tárgy konu "
        "assunto předmět".split(),
        "subject",
    ),
    "envoyé le": "date",
    "enviado el": "date",
    "enviada em": "date",
    "sent by": "from",
    "reply-to": "to",
}

# Signatures.
_DELIMITER = re.compile(r"^\s*--\s*$")  # RFC 3676 "-- ", often with the space lost
_RULE = re.compile(r"^\s*(?:_{2,}|-{4,})\s*$")
_DASH_NAME = re.compile(r"^\s*(?:[-~][^\W\d_]|[–—]\s*[^\W\d_])[\w.' -]{0,40}$")
_MOBILE = re.compile(
    r"^\s*(?:sent\s+from\s+my\s+\w+(?:[ \t]+\w+){0,3}|sent\s+from\s+(?:yahoo|outlook|mail|"
    r"samsung|protonmail|aol)\b[\w \t]{0,40}|sent\s+(?:with|via)\s+\w[\w \t]{0,30}(?:\(.{0,80}\))?"
    r"|get\s+outlook\s+for\s+\w+|envoyé\s+de\s+mon\s+\w+|von\s+meinem\s+\w+(?:\s+\w+)?\s+gesendet"
    r"|enviado\s+(?:desde|do)\s+(?:mi|meu)\s+\w+|verzonden\s+met\s+mijn\s+\w+|verstuurd\s+vanaf\s+"
    r"mijn\s+\w+|skickat\s+från\s+min\s+\w+|inviato\s+da\s+(?:iphone|ipad|android|\w+\s+mobile)"
    r"|wysłane\s+z\s+\w+)[ \t]*[.!]?\s*$",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^\s*(?:thanks?(?:\s+you)?(?:\s+(?:again|so\s+much|very\s+much|in\s+advance))?|thank\s+you|"
    r"many\s+thanks|cheers|regards|best(?:\s+(?:regards|wishes))?|kind\s+regards|warm\s+regards|"
    r"sincerely(?:\s+yours)?|yours(?:\s+(?:truly|sincerely))?|all\s+the\s+best|cordialement|"
    r"merci|bien\s+à\s+vous|mit\s+freundlichen\s+grüßen|viele\s+grüße|beste\s+grüße|grüße|"
    r"gruß|saludos|un\s+saludo|atentamente|gracias|groeten|met\s+vriendelijke\s+groet|"
    r"hälsningar|med\s+vänlig\s+hälsning|pozdrawiam|cordiali\s+saluti|saluti|grazie)[\s,.!]*$",
    re.IGNORECASE,
)
_SIGNATURE_LINES = 15  # a signature found by a weaker sign has at most this many lines
_NAME_WORDS = 6
_PARTICLES = frozenset({"van", "von", "der", "den", "del", "della", "dos", "das", "bin", "ibn"})


def split_reply(text: str, *, sender_name: str = "") -> Reply:
    """Split a plain-text reply; `sender_name` (a name or an address) helps find a signature
    that starts with the sender's name rather than with a delimiter."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    new: list[list[str]] = []
    quoted: list[list[str]] = []
    signatures: list[list[str]] = []
    names = _name_tokens(sender_name)
    for is_quote, segment in _segments(lines):
        if is_quote:
            quoted.append(segment)
            continue
        start = _signature_start(segment, names, first=not new and not quoted)
        new.append(segment[:start])
        signatures.append(segment[start:])
    return Reply(text=_join(new), quoted=_join(quoted), signature=_join(signatures))


def split_html_reply(html: str, *, sender_name: str = "") -> Reply:
    soup = parse_html(html)
    return split_rendering(render(soup, cut=history_start(soup)), sender_name=sender_name)


def split_rendering(rendering: Rendering, *, sender_name: str = "") -> Reply:
    """Split an HTML reply rendered with its cut at `history_start`. The text before the cut is
    split like a plain reply: it may still hold an "On ... wrote:" line, or a `<blockquote>`
    (which the rendering writes as "> " lines)."""
    reply = split_reply(rendering.before_cut, sender_name=sender_name)
    quoted = "\n\n".join(part for part in (reply.quoted, rendering.from_cut) if part)
    return Reply(text=reply.text, quoted=quoted, signature=reply.signature)


def history_start(soup: Tag) -> Tag | None:
    """The element where a mail client starts the quoted history: all that follows is history."""
    return soup.find(_starts_history)


_HISTORY_IDS = frozenset(
    {"divrplyfwdmsg", "x_divrplyfwdmsg", "olk_src_body_section", "appendonsend"}
)
_HISTORY_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "moz-cite-prefix", "yahoo_quoted", "zmail_extra",
     "protonmail_quote", "outlookmessageheader"}
)  # fmt: skip


def _starts_history(tag: Tag) -> bool:
    element_id = tag.get("id")
    if isinstance(element_id, str) and element_id.lower() in _HISTORY_IDS:
        return True
    return any(name.lower() in _HISTORY_CLASSES for name in tag.get("class") or ())


def _segments(lines: list[str]) -> list[tuple[bool, list[str]]]:
    """Alternating runs of new and quoted lines, in order: (is quoted, lines)."""
    segments: list[tuple[bool, list[str]]] = []
    start = 0  # first line not yet in a segment

    def add(is_quote: bool, run: list[str]) -> None:
        if segments and segments[-1][0] == is_quote:
            segments[-1][1].extend(run)
        elif run:
            segments.append((is_quote, run))

    def take(quote_start: int, quote_end: int) -> None:
        nonlocal start
        add(False, lines[start:quote_start])
        add(True, lines[quote_start:quote_end])
        start = quote_end

    i, count = 0, len(lines)
    while i < count:
        if _is_quoted(lines[i]):
            end = _quote_end(lines, i)
            take(i, end)
            i = end
            continue
        header_end, strong = _attribution(lines, i)
        if header_end:
            following = _next_filled(lines, header_end)
            if following < count and _is_quoted(lines[following]):
                take(i, following)
                i = following
                continue
            if strong:
                take(i, count)
                break
        if _HISTORY_MARK.match(_head(lines[i])) or _header_block(lines, i):
            take(_rule_above(lines, i), count)
            break
        i += 1
    take(count, count)
    return segments


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _quote_end(lines: list[str], i: int) -> int:
    """The end of a ">" block: quoted lines, and blank lines between them."""
    end = i
    while i < len(lines) and (_is_quoted(lines[i]) or not lines[i].strip()):
        if _is_quoted(lines[i]):
            end = i + 1
        i += 1
    return end


def _next_filled(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _head(line: str) -> str:
    """A line short enough to hold a header, stripped; long lines never match a pattern."""
    return line.strip() if len(line) <= _LONGEST_HEADER_LINE else ""


def _attribution(lines: list[str], i: int) -> tuple[int, bool]:
    """(end, strong) of an "On <date>, <name> wrote:" line group starting at line i, or (0, _).

    Strong ones hold a date or an address, and mark history even when it is not ">"-quoted;
    weak ones ("Bob wrote:") count only right before a ">" block.
    """
    parts: list[str] = []
    for end in range(i, min(i + 3, len(lines))):
        part = _head(lines[end])
        if not part:
            break
        parts.append(part)
        joined = " ".join(parts)
        if len(joined) > _LONGEST_HEADER_LINE:
            break
        if end > i and not _ATTRIBUTION_START.match(parts[0]):
            break
        dated = bool(_DIGIT.search(joined) or _EMAIL.search(joined))
        if _VERB_AT_END.search(joined[-40:]):
            return end + 1, dated
        if (
            joined.endswith((":", "："))
            and _ATTRIBUTION_START.match(joined)
            and (_EMAIL.search(joined) or _VERB.search(joined))
        ):
            return end + 1, dated
    return 0, False


def _header_block(lines: list[str], i: int) -> bool:
    """Whether a quoted header block ("From: ... Sent: ...") starts at line i."""
    kinds: set[str] = set()
    loose = 0  # lines that are not a field: wrapped values
    for line in lines[i : i + 10]:
        head = _head(line)
        if not head:
            break
        match = _FIELD.match(head)
        kind = _FIELDS.get(match[1].lower()) if match else None
        if kind is None:
            if not kinds or loose == 2:
                break
            loose += 1
            continue
        loose = 0
        kinds.add(kind)
        if "from" in kinds and len(kinds) >= 2:
            return True
    return False


def _rule_above(lines: list[str], i: int) -> int:
    """Move a cut up over blank lines to the rule or "Original Message" line drawn above it."""
    above = i - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0:
        return i
    rule = _head(lines[above])
    return above if _SEPARATOR.match(rule) or _HISTORY_MARK.match(rule) else i


def _signature_start(segment: list[str], names: tuple[str, ...], *, first: bool) -> int:
    """Index of the first signature line of a run of new text (its length when there is none).

    Weaker signs than the "-- " delimiter count only near the end, and never on the first line of
    the message, which would leave no text at all.
    """
    filled = [index for index, line in enumerate(segment) if line.strip()]
    rules = [index for index in filled if _RULE.match(segment[index])]
    for rank, index in enumerate(filled):
        line = segment[index]
        if _DELIMITER.match(line):
            return index
        remaining = len(filled) - rank - 1
        if remaining >= _SIGNATURE_LINES or len(line) > 120:
            continue
        if remaining <= 3 and _MOBILE.match(line):
            return index
        if rank == 0 and first:
            continue
        paragraph_start = index == 0 or not segment[index - 1].strip()
        # A rule drawn above a signature, not one of a pair around pasted text (a log, a quote).
        if paragraph_start and rules and index == rules[-1] and remaining >= 2:
            return index
        if paragraph_start and remaining <= 6 and _DASH_NAME.match(line):
            return index
        if names and remaining <= 8 and _is_name_line(line, names):
            if paragraph_start:
                return index
            previous = index - 1
            if _CLOSING.match(segment[previous]) and (previous != filled[0] or not first):
                return previous
    return len(segment)


def _name_tokens(sender: str) -> tuple[str, ...]:
    """The full name and its words, or an address and its local part's words, lowercased;
    short words and name particles ("van", "del") left out, they match too much."""
    sender = sender.strip().lower()
    if not sender:
        return ()
    local = sender.split("@", 1)[0] if "@" in sender else sender
    words = re.split(r"[\s,._+-]+", local)
    return (sender, *(w for w in words if len(w) > 2 and w.isalpha() and w not in _PARTICLES))


def _is_name_line(line: str, names: tuple[str, ...]) -> bool:
    """A short line that holds the sender's name or address."""
    words = line.lower().split()
    if not words or len(words) > _NAME_WORDS or len(line) > 60:
        return False
    text = " ".join(words)
    return any(re.search(rf"(?<![\w@.]){re.escape(name)}(?![\w@])", text) for name in names)


def _join(parts: list[list[str]]) -> str:
    """Runs of lines as one text. Trailing spaces are dropped, but for the "-- " delimiter's: that
    one is meaningful (RFC 3676)."""
    blocks = (
        "\n".join(line if _DELIMITER.match(line) else line.rstrip() for line in part).strip("\n")
        for part in parts
    )
    return "\n\n".join(block for block in blocks if block.strip())
