"""Small RFC 5322 messages for tests."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr

MX = "mx.test.example"        # the receiving MTA that test settings trust (conftest.make_settings)


def passed(sender: str) -> str:
    """Our MTA's verdict that `sender`'s domain passed DMARC, as an Authentication-Results value."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return f"{MX}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"


def mail(n: int = 1, *, sender: str = "alice@customer.example", subject: str | None = None,
         body: str | None = None, message_id: str | None = "auto", in_reply_to: str | None = None,
         references: list[str] | None = None, to: str = "support@example.com",
         headers: dict[str, str] | None = None, date: str = "Sun, 22 Nov 2026 09:00:00 +0000",
         authenticated: bool = True) -> bytes:
    """`authenticated`: with our MTA's DMARC pass for the sender's domain on top (a customer whose
    From is proven); False for mail that carries no verdict."""
    msg = EmailMessage(policy=SMTP)
    if authenticated:
        msg["Authentication-Results"] = passed(sender)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject if subject is not None else f"Question number {n}"
    msg["Date"] = date
    if message_id == "auto":
        message_id = f"m{n}.{sender.split('@')[0]}@customer.example"
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body if body is not None else f"Hello, this is message {n}.\n\nThanks,\nAlice\n")
    return msg.as_bytes()
