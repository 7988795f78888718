"""Sender authentication: the trusted MTA's Authentication-Results, and our own DKIM check.

DKIM tests sign mail with a key generated here and answer the key lookups from a dict, so the
real dkimpy verification runs with no network.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import select

from mailagent.mail.auth import aligned, authenticate, parse_results
from mailagent.pipeline import sender
from mailagent.store import db
from mailagent.store.models import Message

from .conftest import make_settings
from .support.mails import mail

MX = "mx.support.example"


def with_headers(raw: bytes, *lines: str) -> bytes:
    """`lines` prepended, as a receiving MTA adds its fields above the message's."""
    return "".join(f"{line}\r\n" for line in lines).encode() + raw


def results(value: str) -> str:
    return f"Authentication-Results: {value}"


def verdict(raw: bytes, **kw: object):  # type: ignore[no-untyped-def]
    return authenticate(raw, trusted_ids=[MX], **kw)  # type: ignore[arg-type]


CUSTOMER = mail(sender="Alice <alice@customer.example>", authenticated=False)


# --- RFC 8601 parsing -------------------------------------------------------------------------

def test_parse_results_with_comments_versions_and_quoted_values() -> None:
    authserv_id, found = parse_results(
        'MX.Support.Example 1; dkim=pass (2048-bit key; unprotected) header.d=customer.example header.s=sel '
        'header.b="AbC+/1"; spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=bounce@customer.example; '
        'dmarc/1=fail reason="p=reject (quarantine)" header.from=customer.example')
    assert authserv_id == "mx.support.example"
    assert [(r.method, r.result) for r in found] == [("dkim", "pass"), ("spf", "pass"), ("dmarc", "fail")]
    assert found[0].prop("header.d") == "customer.example"
    assert found[2].prop("reason") == "p=reject (quarantine)"
    assert parse_results("mx.support.example; none") == ("mx.support.example", ())
    with pytest.raises(ValueError):
        parse_results("; dkim=pass")


# --- the MTA's verdict ------------------------------------------------------------------------

def test_dmarc_pass_from_the_trusted_mta_authenticates() -> None:
    raw = with_headers(CUSTOMER, results(f"{MX}; dkim=pass header.d=customer.example; "
                                         "dmarc=pass header.from=customer.example"))
    v = verdict(raw)
    assert (v.authenticated, v.method, v.domain) == (True, "dmarc", "customer.example")


def test_forged_sender_with_failing_results_is_not_authenticated() -> None:
    raw = with_headers(CUSTOMER, results(f"{MX}; dkim=fail header.d=customer.example; spf=fail "
                                         "smtp.mailfrom=alice@customer.example; dmarc=fail header.from=customer.example"))
    v = verdict(raw)
    assert not v.authenticated and "dmarc=fail" in v.reason


def test_results_from_an_untrusted_authserv_id_do_not_count() -> None:
    raw = with_headers(CUSTOMER, results("mx.attacker.example; dmarc=pass header.from=customer.example"))
    v = verdict(raw)
    assert not v.authenticated and v.method == "none"


def test_results_the_sender_wrote_below_our_block_are_ignored() -> None:
    forged = with_headers(CUSTOMER, results(f"{MX}; dmarc=pass header.from=customer.example"))
    relayed = with_headers(forged, "Received: from attacker.example by mx.support.example; Sun, 22 Nov 2026")
    ours_fail = with_headers(relayed, results(f"{MX}; dmarc=fail header.from=customer.example"))
    assert not verdict(ours_fail).authenticated
    # our block says only that SPF failed: the forged DMARC pass under the Received line is not read
    ours_spf = with_headers(relayed, results(f"{MX}; spf=fail smtp.mailfrom=alice@customer.example"))
    v = verdict(ours_spf)
    assert not v.authenticated and "spf=fail" in v.reason and "dmarc" not in v.reason


def test_topmost_block_starts_at_the_first_results_field_and_stops_at_anything_else() -> None:
    # Dovecot's own trace fields above are allowed; the block is the first run of results fields.
    ours = results(f"{MX}; dkim=pass header.d=customer.example")
    raw = with_headers(CUSTOMER, ours, "Received: from relay by mx", results(f"{MX}; dmarc=fail"))
    raw = with_headers(raw, "Delivered-To: support@example.com")
    assert verdict(raw).authenticated and verdict(raw).method == "dkim"
    # an untrusted field on top means the MTA of record is not ours: nothing below is read
    top_untrusted = with_headers(with_headers(CUSTOMER, ours), results("other.example; dmarc=pass"))
    assert not verdict(top_untrusted).authenticated


def test_a_forged_pass_right_under_our_fail_is_a_conflict_and_does_not_pass() -> None:
    raw = with_headers(CUSTOMER, results(f"{MX}; dmarc=fail header.from=customer.example"),
                       results(f"{MX}; dmarc=pass header.from=customer.example"))
    v = verdict(raw)
    assert not v.authenticated and "fail/pass" in v.reason


def test_dkim_must_align_with_the_from_domain() -> None:
    signed_elsewhere = with_headers(CUSTOMER, results(f"{MX}; dkim=pass header.d=attacker.example"))
    assert not verdict(signed_elsewhere).authenticated
    subdomain = with_headers(CUSTOMER, results(f"{MX}; dkim=pass header.i=@mail.customer.example"))
    assert verdict(subdomain).authenticated
    spf = with_headers(CUSTOMER, results(f"{MX}; spf=pass smtp.mailfrom=bounces@customer.example"))
    assert verdict(spf).method == "spf" and verdict(spf).authenticated
    spf_other = with_headers(CUSTOMER, results(f"{MX}; spf=pass smtp.mailfrom=x@attacker.example"))
    assert not verdict(spf_other).authenticated


def test_dmarc_about_another_domain_does_not_count() -> None:
    raw = with_headers(CUSTOMER, results(f"{MX}; dmarc=pass header.from=attacker.example"))
    assert not verdict(raw).authenticated


def test_two_from_fields_or_addresses_are_never_authenticated() -> None:
    raw = with_headers(CUSTOMER, results(f"{MX}; dmarc=pass header.from=customer.example"),
                       "From: ceo@customer.example")
    assert verdict(with_headers(raw)).reason.startswith("2 From")
    multi = mail(sender="a@customer.example, b@other.example", authenticated=False)
    assert not verdict(with_headers(multi, results(f"{MX}; dmarc=pass header.from=customer.example"))).authenticated


def test_nothing_configured_means_unauthenticated_with_the_reason() -> None:
    v = authenticate(CUSTOMER)
    assert not v.authenticated and "no trusted authserv-id" in v.reason


def test_alignment() -> None:
    assert aligned("customer.example", "customer.example")
    assert aligned("mail.customer.example", "customer.example")
    assert not aligned("customer.example.evil", "customer.example")
    assert not aligned("evilcustomer.example", "customer.example")
    assert not aligned("", "customer.example")


# --- our own DKIM verification ----------------------------------------------------------------

@pytest.fixture(scope="module")
def key() -> tuple[bytes, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der)


def dns_for(records: dict[str, bytes]) -> Callable[..., bytes | None]:
    def lookup(name: bytes | str, timeout: int = 5) -> bytes | None:
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name.rstrip("."))
    return lookup


def signed(raw: bytes, pem: bytes, domain: str = "customer.example", **kw: object) -> bytes:
    signature = dkim.sign(raw, b"sel", domain.encode(), pem, include_headers=[b"from", b"subject", b"to"], **kw)
    return signature + raw


def test_own_dkim_verification_authenticates_an_aligned_signature(key: tuple[bytes, bytes]) -> None:
    pem, public = key
    dns = dns_for({"sel._domainkey.customer.example": b"v=DKIM1; k=rsa; p=" + public})
    v = authenticate(signed(CUSTOMER, pem), verify=True, dns=dns)
    assert (v.authenticated, v.method, v.domain) == (True, "dkim", "customer.example")


def test_own_dkim_verification_refuses_tampering_wrong_keys_and_foreign_signers(key: tuple[bytes, bytes]) -> None:
    pem, public = key
    dns = dns_for({"sel._domainkey.customer.example": b"v=DKIM1; k=rsa; p=" + public,
                   "sel._domainkey.attacker.example": b"v=DKIM1; k=rsa; p=" + public})
    tampered = signed(CUSTOMER, pem).replace(b"this is message 1", b"this is message 9")
    assert not authenticate(tampered, verify=True, dns=dns).authenticated
    foreign = authenticate(signed(CUSTOMER, pem, domain="attacker.example"), verify=True, dns=dns)
    assert not foreign.authenticated and "not aligned" in foreign.reason
    no_key = authenticate(signed(CUSTOMER, pem), verify=True, dns=dns_for({}))
    assert not no_key.authenticated
    unsigned = authenticate(CUSTOMER, verify=True, dns=dns)
    assert not unsigned.authenticated and unsigned.reason == "no DKIM signature"
    # a From field added above the signed one: what a reader sees is not what was signed
    forged_from = b"From: ceo@customer.example\r\n" + signed(CUSTOMER, pem)
    assert not authenticate(forged_from, verify=True, dns=dns).authenticated


def test_a_body_length_signature_does_not_authenticate(key: tuple[bytes, bytes]) -> None:
    pem, public = key
    dns = dns_for({"sel._domainkey.customer.example": b"v=DKIM1; k=rsa; p=" + public})
    raw = signed(CUSTOMER, pem, length=True) + b"\r\nPS: refund order 1234 to my new card.\r\n"
    v = authenticate(raw, verify=True, dns=dns)
    assert not v.authenticated and "l=" in v.reason


def test_trusted_results_take_precedence_over_own_verification(key: tuple[bytes, bytes]) -> None:
    pem, public = key
    dns = dns_for({"sel._domainkey.customer.example": b"v=DKIM1; k=rsa; p=" + public})
    raw = with_headers(signed(CUSTOMER, pem), results(f"{MX}; dmarc=fail header.from=customer.example"))
    assert not authenticate(raw, trusted_ids=[MX], verify=True, dns=dns).authenticated


# --- stored on the message --------------------------------------------------------------------

def test_verdict_is_stored_on_the_message(any_db_url: str) -> None:
    settings = make_settings(any_db_url, ingest={"trusted_authserv_ids": [MX]})
    raw = with_headers(CUSTOMER, results(f"{MX}; dmarc=pass header.from=customer.example"))
    v = sender.check(settings, raw)
    with db.session(any_db_url) as s:
        s.add(Message(dedup_key="k", sha256="x", raw=raw, source="file", **sender.fields(v)))
    with db.reading(any_db_url) as s:
        stored = s.exec(select(Message)).one()
        assert (stored.sender_authenticated, stored.sender_auth_method, stored.sender_auth_domain) == \
            (True, "dmarc", "customer.example")
        assert "dmarc=pass" in stored.sender_auth_reason


# --- the pure check the policy facts will use ------------------------------------------------------

from mailagent.mail.auth import SenderAuth, sender_matches_customer  # noqa: E402

OK = SenderAuth(True, "dmarc", "customer.example", "dmarc=pass")


@pytest.mark.parametrize(("from_addr", "reply_to", "auth", "matches", "why"), [
    ("alice@customer.example", "", OK, True, "authenticated by dmarc"),
    ("Alice@Customer.example", "alice@customer.example", OK, True, ""),
    ("alice@customer.example", "billing@customer.example", OK, True, ""),
    ("mallory@attacker.example", "", SenderAuth(True, "dmarc", "attacker.example", ""), False, "not the customer"),
    ("alice@customer.example", "", SenderAuth(False, "mta", "customer.example", "dmarc=fail"), False, "dmarc=fail"),
    ("alice@customer.example", "mallory@attacker.example", OK, False, "Reply-To mallory@attacker.example"),
    ("alice@customer.example", "", SenderAuth(True, "dkim", "other.example", ""), False, "authenticated domain"),
    ("", "", OK, False, "(none)"),
])
def test_sender_matches_customer(from_addr: str, reply_to: str, auth: SenderAuth, matches: bool, why: str) -> None:
    verdict = sender_matches_customer(from_addr=from_addr, reply_to=reply_to, customer_addr="alice@customer.example",
                                      auth=auth)
    assert verdict.matches is matches and why in verdict.reason
