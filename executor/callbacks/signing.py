"""The signature of a delivery (API.md 1.1): HMAC-SHA256 over "<t>.<raw body>" with the shared secret.

A receiver checks it as `verify` does: recompute, compare in constant time, and refuse a `t` too
far from its own clock (a replayed delivery).
"""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Executor-Signature"


def signature(secret: str, body: bytes, at: int) -> str:
    """The header's value for `body` sent at unix second `at`."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """Whether `header` signs `body` with `secret`, sent within `tolerance_s` of now."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        at = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, body, at).split("v1=", 1)[1]
    return abs(time.time() - at) <= tolerance_s and hmac.compare_digest(expected, fields.get("v1", ""))
