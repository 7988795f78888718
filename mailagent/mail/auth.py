"""Who sent a message: the receiving MTA's verdict, or our own DKIM check, on the From domain.

A From header is free to write (DESIGN invariant 8). What proves it is DMARC: a DKIM signature
(or an SPF-checked envelope sender) whose domain is aligned with the From domain. Two sources:

- `Authentication-Results` (RFC 8601) written by our own receiving MTA. Any host can write that
  header, so only those whose authserv-id is in `trusted_ids` count, and only the topmost
  contiguous block of them: our MTA prepends its results above whatever the sender wrote, and a
  header further down (however it names itself) is the sender's claim. A results block that
  contradicts itself (a pass and a fail for the same method and domain) does not pass.
- Our own DKIM verification (dkimpy), for setups whose MTA does not authenticate. Without the
  connecting IP there is no SPF, so DMARC comes down to an aligned DKIM signature that verifies.

Pure except for the DNS lookups of the DKIM check, which are injectable (`dns`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from email.message import Message

import dkim

from mailagent.mail.headers import addresses, read_headers

DnsLookup = Callable[..., bytes | None]
"""dkimpy's `dnsfunc(name, timeout=...)`: the TXT record of `name` as bytes, or None."""

PASS = "pass"


@dataclass(frozen=True)
class SenderAuth:
    """The verdict on a message's From domain.

    `method`: what proved it (`dmarc`, `dkim`, `spf`), or what was checked when nothing did
    (`mta`, `dkim`, `none`); `domain`: the From domain the verdict is about.
    """

    authenticated: bool
    method: str
    domain: str
    reason: str


@dataclass(frozen=True)
class Result:
    """One `method=result` of an Authentication-Results header, with its properties
    (`header.from`, `header.d`, `smtp.mailfrom` ...), names lowercased."""

    authserv_id: str
    method: str
    result: str
    properties: tuple[tuple[str, str], ...]

    def prop(self, *names: str) -> str:
        return next((value for name, value in self.properties if name in names), "")


# --- RFC 8601 ---------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;=()"]+)|(=)|(;))')


def _strip_comments(value: str) -> str:
    """CFWS comments `( ... )` removed (they nest; quoted strings keep their parentheses)."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
        elif char == '"' and depth == 0:
            quoted = True
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _tokens(value: str) -> Iterator[str]:
    """Words, quoted strings (unquoted), `=` and `;` of a header value without its comments."""
    value = _strip_comments(value)
    pos = 0
    while pos < len(value):
        match = _TOKEN.match(value, pos)
        if match is None:
            if value[pos:].strip():
                raise ValueError(f"unexpected {value[pos:pos + 20]!r}")
            return
        pos = match.end()
        quoted, word, equals, semicolon = match.groups()
        if quoted is not None:
            yield re.sub(r"\\(.)", r"\1", quoted)
        else:
            yield word or equals or semicolon


def parse_results(value: str) -> tuple[str, tuple[Result, ...]]:
    """(authserv-id, results) of one Authentication-Results value; `ValueError` if malformed."""
    statements: list[list[str]] = [[]]
    for token in _tokens(value):
        if token == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    head, *rest = statements
    if not head:
        raise ValueError("no authserv-id")
    authserv_id = head[0].lower()
    results = []
    for words in rest:
        if not words or words == ["none"]:
            continue
        if len(words) < 3 or words[1] != "=":
            raise ValueError(f"malformed result {' '.join(words)!r}")
        method = words[0].split("/")[0].lower()
        result = words[2].lower()
        props: list[tuple[str, str]] = []
        i = 3
        while i + 2 < len(words) and words[i + 1] == "=":
            props.append((words[i].lower(), words[i + 2]))
            i += 3
        results.append(Result(authserv_id, method, result, tuple(props)))
    return authserv_id, tuple(results)


def trusted_results(headers: Message, trusted_ids: Collection[str]) -> tuple[Result, ...] | None:
    """The results of the topmost contiguous block of Authentication-Results fields, if the
    topmost one comes from a trusted authserv-id; None when there is no such block.

    The block ends at the first field that is not an Authentication-Results of a trusted id:
    everything below it may have been written by the sender.
    """
    trusted = {t.lower() for t in trusted_ids}
    found: list[Result] = []
    started = False
    for name, value in headers.items():
        is_results = name.strip().lower() == "authentication-results"
        if not started and not is_results:
            continue
        if not is_results:
            break
        try:
            authserv_id, results = parse_results(str(value))
        except ValueError:
            if started:
                break
            return None
        if authserv_id not in trusted:
            break
        started = True
        found.extend(results)
    return tuple(found) if started else None


# --- the verdict ------------------------------------------------------------------------------


def aligned(domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment, approximated without the public suffix list: the same domain,
    or one a subdomain of the other (so `mail.example.com` signs for `example.com`; siblings
    under one organisational domain do not align here, which errs on the safe side)."""
    domain, from_domain = domain.lower().strip("."), from_domain.lower().strip(".")
    if not domain or not from_domain:
        return False
    return domain == from_domain or domain.endswith("." + from_domain) or from_domain.endswith("." + domain)


def _domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip().strip(">").lower()


def from_domain(headers: Message) -> tuple[str, str]:
    """(the From domain, a reason it cannot be authenticated or ""). Exactly one From field with
    exactly one address: DKIM signs the last instance of a field, a reader shows the first."""
    fields = headers.get_all("From") or []
    if len(fields) != 1:
        return "", f"{len(fields)} From header fields"
    mailboxes = [addr for _, addr in addresses([str(fields[0])]) if addr]
    if len(mailboxes) != 1:
        return "", f"{len(mailboxes)} addresses in From"
    domain = _domain_of(mailboxes[0])
    return (domain, "") if domain else ("", "no domain in From")


def verdict_from_results(results: Collection[Result], domain: str) -> SenderAuth:
    """DMARC if the MTA evaluated it, else an aligned DKIM or SPF pass; conflicts do not pass."""
    ids = ", ".join(sorted({r.authserv_id for r in results})) or "the MTA"

    def outcomes(method: str, applies: Callable[[Result], bool]) -> set[str]:
        return {r.result for r in results if r.method == method and applies(r)}

    dmarc = outcomes("dmarc", lambda r: r.prop("header.from").lower().strip(".") in ("", domain))
    if dmarc:
        if dmarc == {PASS}:
            return SenderAuth(True, "dmarc", domain, f"dmarc=pass for {domain} ({ids})")
        return SenderAuth(False, "mta", domain, f"dmarc={'/'.join(sorted(dmarc))} for {domain} ({ids})")
    dkim_ok = outcomes("dkim", lambda r: aligned(_domain_of(r.prop("header.d", "header.i")), domain))
    if dkim_ok == {PASS}:
        return SenderAuth(True, "dkim", domain, f"dkim=pass aligned with {domain} ({ids})")
    spf_ok = outcomes("spf", lambda r: aligned(_domain_of(r.prop("smtp.mailfrom")), domain))
    if spf_ok == {PASS}:
        return SenderAuth(True, "spf", domain, f"spf=pass aligned with {domain} ({ids})")
    seen = ", ".join(f"{r.method}={r.result}" for r in results) or "no results"
    return SenderAuth(False, "mta", domain, f"nothing aligned with {domain} passed ({seen}; {ids})")


def verify_dkim(raw: bytes, domain: str, *, dns: DnsLookup | None = None, timeout: float = 5) -> SenderAuth:
    """Our own check: some DKIM signature aligned with `domain` verifies over the whole body.

    Signatures with a body length (`l=`) are not counted: text appended after the signed part
    would ride on them.
    """
    checker = dkim.DKIM(raw, timeout=int(timeout), minkey=1024)
    signatures = [(i, _tags(value)) for i, (name, value) in enumerate(
        (n, v) for n, v in checker.headers if n.lower() == b"dkim-signature")]
    if not signatures:
        return SenderAuth(False, "dkim", domain, "no DKIM signature")
    problems = []
    for index, tags in signatures:
        signer = tags.get("d", "")
        if not aligned(signer, domain):
            problems.append(f"signature of {signer or '?'} not aligned with {domain}")
            continue
        if "l" in tags:
            problems.append(f"signature of {signer} covers only part of the body (l=)")
            continue
        try:
            ok = checker.verify(idx=index, dnsfunc=dns) if dns else checker.verify(idx=index)
        except dkim.DKIMException as exc:  # malformed signature or key, DNS failure
            problems.append(f"signature of {signer}: {exc}")
            continue
        if ok:
            return SenderAuth(True, "dkim", domain, f"DKIM signature of {signer} verified")
        problems.append(f"signature of {signer} does not verify")
    return SenderAuth(False, "dkim", domain, "; ".join(problems))


def _tags(value: bytes) -> dict[str, str]:
    text = re.sub(r"\s+", "", value.decode("ascii", "replace"))
    return {k.strip().lower(): v for k, _, v in (part.partition("=") for part in text.split(";")) if k}


def authenticate(raw: bytes, *, trusted_ids: Collection[str] = (), verify: bool = False,
                 dns: DnsLookup | None = None) -> SenderAuth:
    """The verdict on a raw message: the trusted MTA's results when it wrote any, else our own
    DKIM check when `verify`, else unauthenticated."""
    headers = read_headers(raw)
    domain, problem = from_domain(headers)
    if problem:
        return SenderAuth(False, "none", domain, problem)
    results = trusted_results(headers, trusted_ids) if trusted_ids else None
    if results is not None:
        return verdict_from_results(results, domain)
    if verify:
        return verify_dkim(raw, domain, dns=dns)
    why = "no Authentication-Results from a trusted authserv-id" if trusted_ids else \
        "no trusted authserv-id configured and own DKIM verification is off"
    return SenderAuth(False, "none", domain, why)


@dataclass(frozen=True)
class SenderMatch:
    """Whether a message speaks for the conversation's customer of record, and why not."""

    matches: bool
    reason: str


def sender_matches_customer(*, from_addr: str, reply_to: str, customer_addr: str, auth: SenderAuth) -> SenderMatch:
    """A message speaks for the customer of record only when its From is that customer's address,
    its From domain is authenticated, and a Reply-To (if any) stays in the customer's domain:
    otherwise account data and actions wait for a rep (a forged From, a thread hijacked by
    another sender, replies diverted to an attacker)."""
    sender, customer = from_addr.strip().lower(), customer_addr.strip().lower()
    customer_domain = _domain_of(customer)
    if not sender or sender != customer:
        return SenderMatch(False, f"the sender {sender or '(none)'} is not the customer of record {customer}")
    if not auth.authenticated:
        return SenderMatch(False, f"the sender is not authenticated: {auth.reason}")
    if auth.domain != customer_domain:
        return SenderMatch(False, f"the authenticated domain {auth.domain} is not {customer_domain}")
    diverted = reply_to.strip().lower()
    if diverted and diverted != customer and _domain_of(diverted) != customer_domain:
        return SenderMatch(False, f"Reply-To {diverted} is outside the customer's domain {customer_domain}")
    return SenderMatch(True, f"{sender}, authenticated by {auth.method}")
