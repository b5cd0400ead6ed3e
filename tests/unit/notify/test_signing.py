"""HMAC-SHA256 signatures: the documented construction, and what a receiver refuses."""

from __future__ import annotations

import hashlib
import hmac

from mlops_operator.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers, verify

KEY, BODY, NOW = b"k" * 32, b'{"trigger":"Promoted"}', 1_790_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    headers = signed_headers(KEY, NOW, BODY)
    expected = hmac.new(KEY, b"1790000000." + BODY, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1790000000", SIGNATURE_HEADER: f"sha256={expected}"}
    assert verify(KEY, BODY, headers, now=NOW + 10)


def test_receiver_refuses_tampering_wrong_key_and_replays() -> None:
    headers = signed_headers(KEY, NOW, BODY)
    assert not verify(KEY, BODY + b" ", headers, now=NOW)
    assert not verify(b"x" * 32, BODY, headers, now=NOW)
    assert verify(KEY, BODY, headers, now=NOW + 300)  # the edge of the default tolerance
    assert not verify(KEY, BODY, headers, now=NOW + 301)  # a replay later than that
    assert not verify(KEY, BODY, headers, now=NOW - 301)
    assert not verify(KEY, BODY, {**headers, TIMESTAMP_HEADER: str(NOW + 1)}, now=NOW)  # the stamp is signed
    assert not verify(KEY, BODY, {SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, now=NOW)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify(KEY, BODY, lowered, now=NOW)  # HTTP header names are case-insensitive
