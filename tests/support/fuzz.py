"""Fuzzing the whole pipeline: real mails mutated (truncation, byte flips, duplicated headers, deep
nesting, huge headers, bad charsets, bad base64), ingested without a mailbox, then classified,
drafted, decided and delivered to a real SMTP server by `mailagent run --until-idle`'s engine.

`mutated` is pure (seeded); `run` drives the pipeline and `check` says what stalled. Shared by
`bench/fuzz.py` (1,000+ messages, figures) and `tests/test_fuzz.py` (a smaller seeded set in CI).
"""

from __future__ import annotations

import base64
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from mailagent.config import DATA, Settings
from mailagent.mail.headers import identity
from mailagent.pipeline import sweeper
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.store import db
from mailagent.store.models import (
    Draft,
    DraftState,
    Message,
    MessageState,
    Outbound,
    OutboundState,
)

from ..conftest import make_settings
from ..corpora import corpora
from .flow import SEND_EVERYTHING, policy_dir, synced

MUTATIONS = ("truncate", "byte_flips", "header_dup", "deep_nesting", "huge_header", "bad_charset", "bad_base64",
             "combo")
DECIDED = {DraftState.HELD, DraftState.ESCALATED, DraftState.SENT, DraftState.REJECTED, DraftState.IGNORED,
           DraftState.SUPERSEDED}


def seeds() -> list[bytes]:
    """Real mail: the bundled sample inbox and the shared corpora (MIME torture tests, bounces)."""
    found = sorted((DATA / "examples" / "inbox").glob("*.eml"))
    root = corpora()
    found += sorted((root / "stalwart_mail_parser" / "eml").rglob("*.eml"))
    found += sorted(p for p in (root / "sisimai_set_of_emails" / "maildir").rglob("*") if p.is_file())[:150]
    return [p.read_bytes() for p in found if p.stat().st_size < 2_000_000]


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b"\n\n", b""
    return raw[:match.start()], match.group(), raw[match.end():]


def _truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[:rng.randint(1, max(1, len(raw) - 1))]


def _byte_flips(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 40)):
        data[rng.randrange(len(data))] = rng.choice([0, 10, 13, 0x3A, 0x3C, 0x80, 0xC3, 0xFF, rng.randrange(256)])
    return bytes(data)


def _header_dup(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    lines = head.splitlines(keepends=True) or [b"X: y\n"]
    extra = []
    for _ in range(rng.randint(1, 60)):
        line = rng.choice(lines)
        if rng.random() < 0.5:
            line = rng.choice([b"From: mallory@evil.example\n", b"To: someone@else.example\n",
                               b"Content-Type: multipart/mixed; boundary=zz\n", b"Content-Transfer-Encoding: base64\n",
                               b"Subject: =?utf-8?q?second_subject?=\n", b"MIME-Version: 2.0\n",
                               b"Message-ID: <another@fuzz.example>\n", b"Date: not a date\n"])
        extra.append(line)
    for line in extra:
        lines.insert(rng.randrange(len(lines) + 1), line)
    return b"".join(lines).rstrip(b"\r\n") + sep + body


def _deep_nesting(raw: bytes, rng: random.Random) -> bytes:
    head, _, body = _split(raw)
    depth = rng.choice([50, 500, 2000, 5000])
    head = re.sub(rb"(?im)^content-type:.*(\r?\n[ \t].*)*\r?\n?", b"", head + b"\n").rstrip(b"\r\n")
    parts = [head, b"\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"n0\"\n\n"]
    parts += [b'--n%d\nContent-Type: multipart/mixed; boundary="n%d"\n\n' % (i - 1, i) for i in range(1, depth)]
    parts.append(b"--n%d\nContent-Type: text/plain\n\n" % (depth - 1) + body[:2000] + b"\n")
    if rng.random() < 0.7:                                  # closed, or left open
        parts += [b"--n%d--\n" % i for i in reversed(range(depth))]
    return b"".join(parts)


def _huge_header(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    size = rng.choice([10_000, 100_000, 1_000_000])
    kind = rng.randrange(4)
    if kind == 0:
        extra = b"Subject: " + b"A" * size
    elif kind == 1:
        extra = b"To: " + b", ".join(b"u%d@many.example" % i for i in range(size // 18))
    elif kind == 2:
        extra = b"".join(b"Received: from hop%d by relay.example; Sun, 22 Nov 2026 09:00:00 +0000\n" % i
                         for i in range(size // 60)).rstrip(b"\n")
    else:
        extra = b"X-Folded: " + b"\n ".join([b"word" * 10] * (size // 42))
    return head + b"\n" + extra + sep + body


def _bad_charset(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    charset = rng.choice([b"x-no-such-charset", b"utf-7", b"utf-16", b"utf-32", b"iso-2022-jp", b"\"utf-8\"\"",
                          b"", b"unicode-1-1-utf-7", b"cp65001", b"gb18030"])
    head = re.sub(rb"(?im)^content-type:.*(\r?\n[ \t].*)*", b"", head).rstrip(b"\r\n")
    head += b"\nMIME-Version: 1.0\nContent-Type: text/plain; charset=" + charset
    head += b"\nX-Subject: =?" + charset + b"?B?" + base64.b64encode(b"\xff\xfe\xc3(") + b"?="
    head = re.sub(rb"(?im)^subject:", b"Subject: =?x-bogus?Q?=FF=FE?= ", head, count=1)
    return head + sep + body + rng.choice([b"\xff\xfe\x00d\x00", b"\xc3\x28\xa0\xa1", b"+AGEAYgBj-", b"\x1b$B"])


def _bad_base64(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    head = re.sub(rb"(?im)^content-(type|transfer-encoding):.*(\r?\n[ \t].*)*", b"", head).rstrip(b"\r\n")
    head += b"\nMIME-Version: 1.0\nContent-Type: " + rng.choice([b"text/plain; charset=utf-8", b"text/html",
                                                                   b"application/pdf; name=x.pdf"])
    head += b"\nContent-Transfer-Encoding: base64"
    good = base64.b64encode(body[:3000] or b"hello")
    bad = rng.choice([good[:-1], good + b"=====", good.replace(b"A", b"*"), b"!!!not base64 at all!!!",
                      good[: len(good) // 2] + b"\x00\xff" + good[len(good) // 2:]])
    return head + sep + bad + b"\n"


_MUTATE: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": _truncate, "byte_flips": _byte_flips, "header_dup": _header_dup, "deep_nesting": _deep_nesting,
    "huge_header": _huge_header, "bad_charset": _bad_charset, "bad_base64": _bad_base64,
}


def mutate(raw: bytes, kind: str, rng: random.Random) -> bytes:
    if kind == "combo":
        for step in rng.sample(sorted(_MUTATE), 2):
            raw = _MUTATE[step](raw, rng)
        return raw
    return _MUTATE[kind](raw, rng)


def mutated(n: int, seed: int) -> list[tuple[str, bytes]]:
    """`n` mutated messages (kind, raw), each with its own identity so none is a duplicate of
    another (the dedup key is the Message-ID, else the content hash)."""
    rng = random.Random(seed)
    pool = seeds()
    out: list[tuple[str, bytes]] = []
    keys: set[str] = set()
    while len(out) < n:
        kind = MUTATIONS[len(out) % len(MUTATIONS)]
        raw = rng.choice(pool)
        if kind not in ("truncate", "byte_flips"):           # a unique id first; these two may destroy it
            raw = re.sub(rb"(?im)^message-id:", b"X-Old-Message-ID:", raw)
            raw = b"Message-ID: <fuzz.%d.%d@fuzz.example>\n" % (seed, len(out)) + raw
        raw = mutate(raw, kind, rng)
        key = identity(raw).dedup_key
        if key in keys or not raw.strip():
            continue
        keys.add(key)
        out.append((kind, raw))
    return out


def settings_for(url: str, tmp: Path, smtp_port: int) -> Settings:
    """A pipeline that tries to auto-send everything (so every stage runs), one mailbox."""
    return synced(make_settings(url, smtp={"port": smtp_port}, agent={"allowed_link_domains": ["nimbusnotes.example"]},
                                policy={"directory": policy_dir(tmp, SEND_EVERYTHING), "reload_seconds": 0},
                                outbox={"send_timeout_seconds": 20}))


def store(settings: Settings, items: list[tuple[str, bytes]]) -> list[int | None]:
    """Store as `mailagent ingest` without `--mailbox` does."""
    ids: list[int | None] = []
    for start in range(0, len(items), 100):
        ids += store_many(settings.database.url, [Inbound(raw, "file", None) for _, raw in items[start:start + 100]])
    return ids


@dataclass
class Report:
    messages: Counter[str] = field(default_factory=Counter)
    drafts: Counter[str] = field(default_factory=Counter)
    outbound: Counter[str] = field(default_factory=Counter)
    parse_errors: int = 0
    raw_mismatches: int = 0
    not_stored: int = 0
    due_after: int = 0                     # what the sweeper would still find: stalled work
    failed_reasons: Counter[str] = field(default_factory=Counter)
    reply_errors: Counter[str] = field(default_factory=Counter)   # failed or unknown replies: why

    @property
    def stalls(self) -> int:
        return (self.messages[MessageState.STORED] + self.drafts[DraftState.DRAFTING] + self.outbound[OutboundState.SENDING]
                + self.due_after)


def check(settings: Settings, items: list[tuple[str, bytes]], ids: list[int | None]) -> Report:
    """Where everything ended: every message processed or failed with a reason, every draft
    decided, every reply out (or failed/unknown/held back for a later retry), raw bytes intact."""
    report = Report(not_stored=sum(1 for i in ids if i is None))
    sent = {i: raw for i, (_, raw) in zip(ids, items, strict=True) if i is not None}
    with db.reading(settings.database.url) as s:
        for m in s.exec(select(Message)):
            report.messages[m.state] += 1
            report.parse_errors += bool(m.parse_error)
            report.raw_mismatches += sent.get(m.id) != m.raw
            if m.state == MessageState.FAILED:
                report.failed_reasons[(m.error or "").split(":")[0]] += 1
        report.drafts.update(d.state for d in s.exec(select(Draft)))
        for o in s.exec(select(Outbound)):
            report.outbound[o.state] += 1
            if o.state in (OutboundState.FAILED, OutboundState.UNKNOWN):
                report.reply_errors[f"{o.state} in {o.smtp_phase}: {(o.last_error or '')[:100]}"] += 1
    report.due_after = sweeper.find_due(settings, timedelta(0)).count
    return report
