"""Signed prediction ids (pure): round trips, the format's sizes, and every way an id is refused."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlops_operator.server.predictionids import (
    MALFORMED,
    MAX_ID_CHARS,
    SIGNATURE,
    IdError,
    IdSigner,
    PredictionId,
    derive_key,
    label_digest,
    label_text,
)

KEY = b"k" * 32
OLD_KEY = b"o" * 32
NOW = 1_800_000_000.0


def signer(key: bytes = KEY, previous: bytes | None = None, deployment: str = "iris") -> IdSigner:
    return IdSigner(key, previous, namespace="team-a", deployment=deployment, model="iris-classifier")


def refused(verifier: IdSigner, text: object) -> str:
    with pytest.raises(IdError) as caught:
        verifier.verify(text)
    return caught.value.reason


def test_label_ids_round_trip_with_version_track_time_and_class() -> None:
    labels = np.asarray(["setosa", "versicolor", "virginica", "setosa", "é" * 200, "x" * 300], dtype=object)
    ids = signer().mint("3", "canary", labels, NOW, labels=True)
    assert len(ids) == len(labels) and len(set(ids)) == len(ids)  # the same class twice: two ids
    for text, label in zip(ids, labels, strict=True):
        pid = signer().verify(text)
        assert (pid.version, pid.track, pid.issued) == ("3", "canary", int(NOW))
        if len(label.encode()) <= 254:
            assert pid.label == label and pid.label_digest is None
        else:  # carried as a digest: the id stays short
            assert pid.label is None and pid.label_digest == label_digest(label)
    assert [len(i) for i in ids[:3]] == [56, 60, 60]  # 42-45 bytes: 18 of prefix, 24-27 for the row
    assert max(len(i) for i in ids) <= MAX_ID_CHARS


def test_value_ids_round_trip_on_a_named_track() -> None:
    values = np.asarray([151.25, -0.5, 0.0, 1e300])
    ids = signer().mint("12", "blue", values, NOW, labels=False)
    got = [signer().verify(i) for i in ids]
    assert [p.value for p in got] == values.tolist()
    assert {(p.version, p.track, p.label) for p in got} == {("12", "blue", None)}
    assert len(signer().mint("1", "stable", values[:1], NOW, labels=False)[0]) == 56
    assert signer().mint("1", "stable", values[:0], NOW, labels=False) == []


def test_integer_and_numeric_labels_compare_as_text() -> None:
    ids = signer().mint("1", "stable", np.asarray([0, 1, 2]), NOW, labels=True)
    assert [signer().verify(i).label for i in ids] == ["0", "1", "2"]
    assert label_text(1) == label_text(1.0) == label_text(np.int64(1)) == "1"
    assert label_text(True) == "True" and label_text(0.5) == "0.5"
    assert label_text(float("nan")) is None and label_text(None) is None and label_text([1]) is None


def test_labels_equal_in_python_but_of_other_types_are_not_confused_by_the_cache() -> None:
    minting = signer()
    for batch in ([1, True, 1.0, 0, False, 0.5], [True, 1], [False, 0.0, 0]):  # each class once cached
        ids = minting.mint("1", "stable", np.asarray(batch, dtype=object), NOW, labels=True)
        assert [signer().verify(i).label for i in ids] == [label_text(v) for v in batch], batch


def test_an_altered_byte_anywhere_is_refused() -> None:
    (text,) = signer().mint("1", "canary", np.asarray(["setosa"], dtype=object), NOW, labels=True)
    raw = base64.urlsafe_b64decode(text)
    for position in range(len(raw)):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        reason = refused(signer(), base64.urlsafe_b64encode(bytes(altered)).decode())
        assert reason == (MALFORMED if position == 0 else SIGNATURE), position  # byte 0: the format


def test_forged_other_deployment_and_malformed_ids_are_refused() -> None:
    (text,) = signer().mint("1", "canary", np.asarray(["setosa"], dtype=object), NOW, labels=True)
    assert refused(signer(b"z" * 32), text) == SIGNATURE  # forged: another key
    assert refused(signer(deployment="iris-2"), text) == SIGNATURE  # minted for another Deployment
    other_model = IdSigner(KEY, namespace="team-a", deployment="iris", model="pets")
    assert refused(other_model, text) == SIGNATURE
    for bad in ("", "abc", text[:-4], text + "AAAA" * 200, text[:-1] + "!", text.replace(text[5], "+"), 42, None):
        assert refused(signer(), bad) in (MALFORMED, SIGNATURE), bad
    assert refused(signer(), "A" * 48) == MALFORMED  # format 0
    assert refused(signer(), 42) == MALFORMED and refused(signer(), text[:-1] + "!") == MALFORMED


def test_rotation_the_previous_key_verifies_an_unknown_one_does_not() -> None:
    values = np.asarray(["setosa"], dtype=object)
    (old,) = signer(OLD_KEY).mint("1", "stable", values, NOW, labels=True)
    rotated = signer(KEY, previous=OLD_KEY)
    assert rotated.verify(old).label == "setosa"
    (new,) = rotated.mint("1", "stable", values, NOW, labels=True)
    assert signer(KEY).verify(new).label == "setosa"  # minted with the current key
    assert refused(signer(OLD_KEY), new) == SIGNATURE
    assert refused(signer(KEY, previous=b"p" * 32), old) == SIGNATURE
    with pytest.raises(ValueError, match="at least 16 bytes"):
        IdSigner(b"short")


# -- property: whatever the text, verify answers a PredictionId or an IdError, never another exception -------
NAMES = {"namespace": "team-a", "deployment": "iris", "model": "iris-classifier"}
VALID = [
    *signer().mint("3", "canary", np.asarray(["setosa", "é" * 200, "x" * 300], dtype=object), NOW, labels=True),
    *signer().mint("12", "blue", np.asarray([151.25]), NOW, labels=False),
]


def signed_id(body: bytes) -> str:
    """`body` as an id with a valid tag: what only a holder of the key (or a bug) could send."""
    tag = hashlib.blake2s(body, key=derive_key(KEY, **NAMES), digest_size=12).digest()
    return base64.urlsafe_b64encode(body + tag).decode()


def judged(text: object) -> PredictionId | str:
    try:
        return signer().verify(text)
    except IdError as error:
        assert error.reason in (MALFORMED, SIGNATURE) and error.message
        return error.reason


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=600) | st.binary(max_size=450).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_random_text_is_refused_never_raised(text: str) -> None:
    assert isinstance(judged(text), str)


@settings(max_examples=300, deadline=None)
@given(
    valid=st.sampled_from(VALID),
    at=st.integers(min_value=0, max_value=600),
    cut=st.integers(min_value=0, max_value=8),
    insert=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/!", max_size=8),
)
def test_altered_valid_ids_are_refused_never_raised(valid: str, at: int, cut: int, insert: str) -> None:
    at = min(at, len(valid))
    altered = valid[:at] + insert + valid[at + cut :]
    result = judged(altered)
    assert isinstance(result, str) or altered == valid, altered


@settings(max_examples=500, deadline=None)
@given(flags=st.integers(min_value=0, max_value=255), rest=st.binary(min_size=10, max_size=370))
def test_signed_ids_of_any_body_parse_or_are_refused_as_malformed(flags: int, rest: bytes) -> None:
    body = bytes([1, flags]) + rest  # format 1 and a valid tag: only the parser stands between body and answer
    body = body[: len(body) - len(body) % 3]  # with the 12-byte tag a multiple of 3: base64 without padding
    result = judged(signed_id(body))
    assert result == MALFORMED or isinstance(result, PredictionId), result


def test_signed_bodies_that_tripped_the_parser_are_refused_as_malformed() -> None:
    issued_version = int(NOW).to_bytes(4, "big") + b"\x013"  # version "3": 8 bytes of prefix, then a 10-byte nonce
    nonce_row = b"\0" * 10 + b"\0\0\0\0"
    for flags, fields in (
        (0x03, b"\0" * 8),  # track code 3: was a KeyError
        (0x00, b"\0" * 5),  # a value of 5 bytes: was a struct.error
        (0x10, b"\x09ab\0\0"),  # a label longer than what follows: was read as "ab\0\0"
        (0x10, b"\x02ab" + b"\0" * 5),  # padding of 5 bytes
        (0x10, b"\x02ab\0x"),  # padding that is not zeros
        (0x10, b"\x02\xff\xfe\0\0"),  # a label that is not UTF-8
        (0x20, b"\0" * 8),  # kind 2
    ):
        body = bytes([1, flags]) + issued_version + nonce_row + fields
        assert judged(signed_id(body)) == MALFORMED, (flags, fields)
    past_the_end = bytes([1, 0]) + int(NOW).to_bytes(4, "big") + b"\x30" + b"\0" * 20  # a 48-byte version
    assert judged(signed_id(past_the_end)) == MALFORMED  # was a struct.error
    (valid,) = signer().mint("3", "stable", np.asarray([1.5]), NOW, labels=False)
    assert judged(valid) == signer().verify(valid)  # the strict parser still reads what is minted
