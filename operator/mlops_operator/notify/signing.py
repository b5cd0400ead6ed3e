"""HMAC-SHA256 signatures over a notification's body, with a timestamp against replay.

Headers: `X-Mlops-Timestamp: <unix seconds>` and `X-Mlops-Signature: sha256=<hex>`, where hex is
HMAC-SHA256(key, "<timestamp>." + body) — the body exactly as sent (bytes). A receiver recomputes it over the raw
body, compares in constant time, and refuses a timestamp more than a few minutes from its own clock (each retry is
signed afresh, so a genuine retry is never stale).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Mlops-Signature"
TIMESTAMP_HEADER = "X-Mlops-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """The X-Mlops-Signature value for `body` sent at `timestamp`."""
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(key: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """Both headers of a signed request."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(key, timestamp, body)}


def verify(
    key: bytes, body: bytes, headers: dict[str, str], now: float, tolerance: float = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """True when the headers sign `body` with `key` and the timestamp is within `tolerance` of `now` (what a
    receiver does; header names are matched case-insensitively)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp, given = lowered.get(TIMESTAMP_HEADER.lower(), ""), lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(key, int(stamp), body), given)
