"""A reply's bytes written directly, exactly as `EmailMessage` and the SMTP policies would write
them, without building the message object.

The stdlib parses every header it is given into a parse tree, parses the MIME headers again for
each parameter set, and refolds all of them when the message is written: ~3 ms per reply, paid by
the pipeline for every auto-sent one. Here a header that needs nothing of that (short, plain ASCII,
no encoded-word lookalike) is written as it is, which is what the policy writes for it; every
other header goes through the policy itself. Parts are encoded with the stdlib's own choice of
transfer encoding. `tests/test_compose_bytes.py` pins the bytes and compares with the stdlib.
"""

from __future__ import annotations

import random
import re
import sys
from email.contentmanager import _encode_text
from email.headerregistry import Address
from email.policy import EmailPolicy

_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")        # printable ASCII words, single spaces between
_NEWLINES = re.compile(r"\r\n|\r|\n")


def header(policy: EmailPolicy, name: str, value: str | Address | list[Address]) -> bytes:
    """One header line, folded as `msg[name] = value` then `msg.as_bytes()` would write it (the
    policy refuses line breaks in a value the same way)."""
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    if len(name) + 2 + len(text) <= policy.max_line_length and "=?" not in text and _PLAIN.fullmatch(text):
        return f"{name}: {text}{policy.linesep}".encode("ascii")
    return policy.fold_binary(*policy.header_store_parse(name, value))


def text_part(policy: EmailPolicy, subtype: str, text: str, *, mime_version: bool = False) -> bytes:
    """A text/SUBTYPE part in UTF-8 (`set_content(text, subtype=...)`), headers and body.
    `mime_version`: the part carries MIME-Version too (as one added by `add_alternative` does)."""
    cte, payload = _encode_text(text, "utf-8", None, policy)   # the stdlib's own choice (private: pinned)
    lines = [f'Content-Type: text/{subtype}; charset="utf-8"', f"Content-Transfer-Encoding: {cte}"]
    if mime_version:
        lines.append("MIME-Version: 1.0")
    nl = policy.linesep
    head = nl.join(lines) + nl + nl
    # As the generator writes a body: line breaks become the policy's; no break added at the end.
    body = nl.join(_NEWLINES.split(payload))
    return head.encode("ascii") + body.encode("ascii", "surrogateescape")


def alternative(policy: EmailPolicy, headers: list[bytes], parts: list[bytes]) -> bytes:
    """A multipart/alternative message: `headers` (folded lines), MIME-Version, the Content-Type
    with a boundary found in none of the parts, then the parts."""
    nl = policy.linesep
    boundary = _boundary(parts)
    top = f'MIME-Version: 1.0{nl}Content-Type: multipart/alternative;{nl} boundary="{boundary}"{nl}{nl}'
    delimiter = f"--{boundary}{nl}".encode("ascii")
    body = delimiter + (nl.encode("ascii") + delimiter).join(parts) + f"{nl}--{boundary}--{nl}".encode("ascii")
    return b"".join(headers) + top.encode("ascii") + body


def _boundary(parts: list[bytes]) -> str:
    """The generator's kind of boundary ("=" * 15, 19 random digits, "=="), in no part."""
    while True:
        boundary = f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="
        if not any(f"--{boundary}".encode("ascii") in part for part in parts):
            return boundary
