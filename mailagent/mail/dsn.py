"""What a bounce reports: which message it is about, and what happened to each recipient.

Pure: a parsed message in, a value out. RFC 3464 delivery reports (`multipart/report;
report-type=delivery-status`, what Postfix, Exim, Exchange and Gmail send) carry the original
message (`message/rfc822`) or its header (`text/rfc822-headers`), and one `message/delivery-status`
block per recipient. Older MTAs (qmail, some Sendmail setups) quote the original inline in the
text: its `Message-ID:` line is read from there. The ids found are matched against the replies we
sent, so a bounce of our reply lands in that reply's conversation and marks the delivery failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from mailagent.mail.headers import Raw8Bit, msgids

_INLINE_ID = re.compile(r"^[ \t>]*message-id[ \t]*:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_TYPE_PREFIX = re.compile(r"^\s*[\w.-]+\s*;\s*")       # "rfc822; ", "smtp; ", "x-unix; "
_HEADERS = HeaderParser(policy=Raw8Bit())


@dataclass(frozen=True)
class Recipient:
    """One per-recipient block of a delivery-status report."""

    address: str        # Final-Recipient (or Original-Recipient), lowercased
    action: str         # failed | delayed | delivered | relayed | expanded, lowercased
    status: str         # the enhanced status code, e.g. "5.1.1"
    diagnostic: str     # Diagnostic-Code without its type, whitespace collapsed


@dataclass(frozen=True)
class DeliveryReport:
    original_ids: tuple[str, ...]   # Message-IDs of the message(s) reported on, without brackets
    recipients: tuple[Recipient, ...]

    @property
    def failed(self) -> bool:
        """A delivery failed: a recipient says `failed` (or a 5.x.x status), or the bounce has
        no machine-readable report at all (then it is a plain failure notice). A report of
        delays or successful deliveries only is not a failure."""
        if not self.recipients:
            return True
        return any(r.action == "failed" or r.status.startswith("5") for r in self.recipients)

    def summary(self) -> str:
        """One line for people: "5.1.1 kijitora@example.org: user unknown"."""
        parts = []
        for r in self.recipients:
            status = r.status if r.action in ("", "failed") else f"{r.status} ({r.action})".strip()
            text = " ".join(x for x in (status, r.address) if x)
            parts.append(f"{text}: {r.diagnostic}" if r.diagnostic else text)
        return "; ".join(parts)[:500] or "a delivery failure notice without a machine-readable report"


def delivery_report(tree: Message) -> DeliveryReport:
    """The report in a bounce (its compat32 parse, as `mail.parse.parse_tree` gives it)."""
    own = set(msgids(tree.get("Message-ID")))
    ids: list[str] = []
    recipients: list[Recipient] = []
    texts: list[str] = []
    for part in _parts(tree):
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(original, Message):
                # A header block broken by a bad line puts the rest of it in the body: read it there.
                ids += msgids(original.get("Message-ID")) or _inline_ids(_text(original))
            elif isinstance(payload, str):
                ids += msgids(_HEADERS.parsestr(payload, headersonly=True).get("Message-ID"))
        elif content_type == "text/rfc822-headers":
            ids += msgids(_HEADERS.parsestr(_text(part), headersonly=True).get("Message-ID"))
        elif content_type in ("message/delivery-status", "message/global-delivery-status"):
            recipients += _recipients(part)
        elif part.get_content_maintype() == "text":
            texts.append(_text(part))
    if not ids:                            # the original quoted inline, as qmail does
        for text in texts:
            ids += _inline_ids(text)
    return DeliveryReport(tuple(i for i in dict.fromkeys(ids) if i not in own), tuple(recipients))


def _inline_ids(text: str) -> list[str]:
    return [found.strip("<>") for found in _INLINE_ID.findall(text)]


def _parts(tree: Message) -> list[Message]:
    """Leaf parts and attached messages, not what is inside an attached message."""
    found, stack = [], [tree]
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        if part.is_multipart() and part.get_content_maintype() == "multipart" and isinstance(payload, list):
            stack.extend(reversed(payload))
        else:
            found.append(part)
    return found


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def _recipients(part: Message) -> list[Recipient]:
    """The per-recipient blocks (the first block is about the message as a whole). The parser
    gives a list of header blocks; a report it could not split is read from its text."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [b for b in payload if isinstance(b, Message)]
    else:
        blocks = [_HEADERS.parsestr(chunk) for chunk in re.split(r"\r?\n\s*\r?\n", _text(part)) if chunk.strip()]
    found = []
    for block in blocks:
        address = block.get("Final-Recipient") or block.get("Original-Recipient")
        if address is None and block.get("Action") is None:
            continue                        # the per-message block (Reporting-MTA, Arrival-Date)
        found.append(Recipient(
            address=_value(address).lower(),
            action=_value(block.get("Action")).lower(),
            status=_value(block.get("Status")).split(" ")[0],
            diagnostic=_value(block.get("Diagnostic-Code")),
        ))
    return found


def _value(field: object) -> str:
    return " ".join(_TYPE_PREFIX.sub("", str(field or "")).split())
