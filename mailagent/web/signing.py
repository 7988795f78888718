"""HMAC-SHA256 signatures for cookie values and CSRF tokens, with the session secret from the
environment. Each use has its own purpose string, so a value signed for one use is worthless
for another."""

from __future__ import annotations

import base64
import hashlib
import hmac

MIN_SECRET = 32


class Signer:
    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"the session secret must be at least {MIN_SECRET} characters long")
        self._key = secret.encode()

    def tag(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, purpose: str, value: str) -> str:
        """`value.tag`; the value must not contain a dot."""
        if "." in value:
            raise ValueError("a signed value must not contain '.'")
        return f"{value}.{self.tag(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        """The value, if the signature is right; None otherwise."""
        value, dot, tag = (signed or "").rpartition(".")
        if not dot or not value or not self.matches(purpose, value, tag):
            return None
        return value

    def matches(self, purpose: str, value: str, tag: str | None) -> bool:
        return bool(tag) and hmac.compare_digest(self.tag(purpose, value), tag or "")
