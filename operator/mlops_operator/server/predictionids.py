"""Signed prediction ids: any replica of a Deployment verifies a label's id without a shared store.

An id is the prediction itself, signed: the model version, the track, the issue time and the
predicted class (or value), with a keyed MAC over it. What is not spelled into the id is bound into
the MAC key: the key is derived from the Secret's key, the namespace, the Deployment and the served
model name, so an id minted for another Deployment (or model, or namespace) fails verification.

Format 1, base64url without padding, every part a multiple of 3 bytes so that base64 needs no padding
and one response's prefix is encoded once for all of its rows:

  prefix, one per response (18 bytes for a version of up to 2 digits on stable or canary)
    format        1 byte    1
    flags         1 byte    track (low nibble: 0 stable, 1 canary, 2 named) | prediction kind << 4
    issued        4 bytes   seconds since the epoch, big-endian unsigned
    version       1 byte length + ASCII
    [track]       1 byte length + UTF-8, for a named track only
    nonce         8-10 bytes, to a multiple of 3; per response, so that with the row every id is unique
  per row (24 bytes for a regression, 24-27 for a short class label)
    row           4 bytes   index of the row in its response, big-endian unsigned
    prediction    kind 0: float64 big-endian | kind 1: 1 byte length + UTF-8 label (a length of 255
                  means a 16-byte BLAKE2s digest of a longer label follows) + zero bytes to a multiple of 3
    tag           12 bytes  keyed BLAKE2s, truncated to 96 bits, over everything before it

The MAC key is HMAC-SHA256(secret, "mlops-prediction-id/1" 0 namespace 0 deployment 0 model). One
response costs one prefix and, per row, one copy of a BLAKE2s state that has absorbed the prefix, one
update and one digest; the rows are base64-encoded in one call (bench/prediction_ids.py measures it).
BLAKE2s rather than BLAKE2b: a message this short is one compression either way, and BLAKE2s's is
about 30% cheaper here (0.56 against 0.78 us for copy, update and digest).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import itertools
import os
import re
import struct
from typing import Any, NamedTuple

import numpy as np

from .config import MIN_FEEDBACK_KEY_BYTES

FORMAT = 1
TAG_BYTES = 12  # 96-bit tags: a forger's chance per attempt is 2^-96
NONCE_BYTES = 8  # at least; 8 to 10, so that the prefix is a multiple of 3 bytes
DIGEST_BYTES = 16
MAX_INLINE_LABEL = 254  # longer labels are carried as their digest (length byte 255)
LONG_LABEL = 255
MAX_ROWS = 2**32 - 1
MIN_KEY_BYTES = MIN_FEEDBACK_KEY_BYTES
MAX_CACHED_LABELS = 1024
MAX_ID_CHARS = 512  # the longest id minted (a 254-byte label) is 392 characters
KIND_VALUE = 0  # a regression: the predicted number
KIND_LABEL = 1  # a classification: the predicted class, as label_text gives it
TRACK_CODES = {"stable": 0, "canary": 1}
NAMED_TRACK = 2
CONTEXT = b"mlops-prediction-id/1"

# Why an id is refused (also the `reason` label of the rejected-feedback counter).
MALFORMED = "malformed"
SIGNATURE = "signature"

_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_HEAD = struct.Struct(">BBI")
_VALUE_ROW = struct.Struct(">Id")
_ROW = struct.Struct(">I")
_FLOAT = struct.Struct(">d")
_TRACK_NAMES = {code: name for name, code in TRACK_CODES.items()}
_ZEROS = (b"", b"\0", b"\0\0")


class IdError(Exception):
    """An id that cannot be trusted: `reason` is MALFORMED or SIGNATURE, `message` says what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PredictionId(NamedTuple):
    """A verified id: what was predicted, by which version and track, when (a tuple: verifying is per label)."""

    version: str
    track: str
    issued: int
    kind: int  # KIND_VALUE or KIND_LABEL
    value: float | None  # the prediction of a regression
    label: str | None  # the predicted class, or None when only its digest is carried
    label_digest: bytes | None  # for a class label longer than MAX_INLINE_LABEL bytes
    tag: bytes  # unique per id: what the replay guard remembers


def label_text(value: Any) -> str | None:
    """A class label as the ids carry it: 1, 1.0 and "1"... compare equal as "1"; None for what is no label."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            return None
        return str(int(number)) if number.is_integer() and abs(number) < 2**63 else repr(number)
    return None


def label_digest(text: str) -> bytes:
    """The digest a long label is carried as."""
    return hashlib.blake2s(text.encode(), digest_size=DIGEST_BYTES).digest()


def derive_key(secret: bytes, namespace: str, deployment: str, model: str) -> bytes:
    """The MAC key of one Deployment's model: ids of another Deployment, model or namespace do not verify."""
    context = b"\0".join([CONTEXT, namespace.encode(), deployment.encode(), model.encode()])
    return hmac.new(secret, context, "sha256").digest()


def key_bytes(text: str) -> bytes:
    """A key as the Secret holds it (surrounding whitespace, e.g. a file's newline, is not part of it)."""
    return text.strip().encode()


def _short(data: bytes, what: str) -> bytes:
    if len(data) > 255:
        raise ValueError(f"{what} is longer than 255 bytes")
    return bytes([len(data)]) + data


def _label_part(text: str) -> bytes:
    """A row's prediction field for a class label, padded so that row + part + tag is a multiple of 3 bytes."""
    raw = text.encode()
    part = bytes([len(raw)]) + raw if len(raw) <= MAX_INLINE_LABEL else bytes([LONG_LABEL]) + label_digest(text)
    return part + _ZEROS[-(4 + len(part) + TAG_BYTES) % 3]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).decode("ascii")


class IdSigner:
    """Mints ids with the current key; verifies with the current key or the previous one (rotation)."""

    def __init__(
        self, key: bytes, previous: bytes | None = None, *, namespace: str = "", deployment: str = "", model: str = ""
    ) -> None:
        if len(key) < MIN_KEY_BYTES or (previous is not None and len(previous) < MIN_KEY_BYTES):
            raise ValueError(f"a feedback key needs at least {MIN_KEY_BYTES} bytes")
        keys = [key] if previous is None else [key, previous]
        # Nonces need only be unique, not secret: a random start per process, then a count (no syscall per
        # response). Two workers' ranges of 2^80 overlap with a chance of (responses / 2^80).
        self._nonces = itertools.count(int.from_bytes(os.urandom(10), "big"))
        self._fields: dict[tuple[str, str], tuple[int, bytes, int]] = {}
        self._labels: dict[tuple[type, Any], tuple[bytes, int]] = {}
        # A keyed BLAKE2s state per key, copied per id: keying costs a compression we then pay once.
        self._macs = [
            hashlib.blake2s(key=derive_key(k, namespace, deployment, model), digest_size=TAG_BYTES) for k in keys
        ]

    def _prefix(self, version: str, track: str, kind: int, issued: int) -> bytes:
        fields = self._fields.get((version, track))
        if fields is None:  # a server serves one version on one track: built once
            code = TRACK_CODES.get(track, NAMED_TRACK)
            tail = _short(version.encode(), "the model version")
            if code == NAMED_TRACK:
                tail += _short(track.encode(), "the track")
            fields = self._fields[(version, track)] = (code, tail, NONCE_BYTES + (-(6 + len(tail) + NONCE_BYTES)) % 3)
        code, tail, size = fields
        return _HEAD.pack(FORMAT, code | kind << 4, issued) + tail + (next(self._nonces) % 256**size).to_bytes(size)

    def mint(self, version: str, track: str, predictions: np.ndarray, issued: float, *, labels: bool) -> list[str]:
        """One id per prediction (a 1-D array): class labels when `labels`, else numbers (a regression)."""
        rows = len(predictions)
        if rows > MAX_ROWS:
            raise ValueError(f"{rows} rows: ids carry at most {MAX_ROWS}")
        if not rows:
            return []
        prefix = self._prefix(version, track, KIND_LABEL if labels else KIND_VALUE, int(issued))
        state = self._macs[0].copy()
        state.update(prefix)
        copy = state.copy
        parts = [prefix]  # then each row's fields and tag: base64-encoded at once, then cut into ids
        append = parts.append
        if not labels:
            pack = _VALUE_ROW.pack
            for index, value in enumerate(predictions.tolist()):
                body = pack(index, value)
                mac = copy()
                mac.update(body)
                append(body)
                append(mac.digest())
            text = _b64(b"".join(parts))
            at = len(prefix) // 3 * 4
            head = text[:at]
            return [head + text[i : i + 32] for i in range(at, at + 32 * rows, 32)]  # 24 bytes a row
        widths: list[int] = []
        row = _ROW.pack
        known = self._labels
        for index, value in enumerate(predictions.tolist()):
            # Keyed by type and value: True == 1 == 1.0 hash alike, but True is the class "True", 1 the class "1".
            key = (type(value), value)
            label = known.get(key)
            if label is None:
                label = self._label(key)
            body = row(index) + label[0]
            mac = copy()
            mac.update(body)
            append(body)
            append(mac.digest())
            widths.append(label[1])
        text = _b64(b"".join(parts))
        at = len(prefix) // 3 * 4
        head, ids = text[:at], []
        for width in widths:
            ids.append(head + text[at : at + width])
            at += width
        return ids

    def _label(self, key: tuple[type, Any]) -> tuple[bytes, int]:
        """A predicted class's row field and the width of its row in characters (kept for the next response)."""
        value = key[1]
        text = label_text(value)
        part = _label_part(text if text is not None else str(value))
        label = (part, (4 + len(part) + TAG_BYTES) // 3 * 4)
        if len(self._labels) < MAX_CACHED_LABELS:  # a model's classes; bounded for models that predict text
            self._labels[key] = label
        return label

    def verify(self, text: Any) -> PredictionId:
        """The id's contents once its tag verifies; IdError says why not. Times are not judged here."""
        if not isinstance(text, str):
            raise IdError(MALFORMED, f"an id is a string, got {type(text).__name__}")
        if not 32 <= len(text) <= MAX_ID_CHARS or len(text) % 4 or not _ID_CHARS.fullmatch(text):
            raise IdError(MALFORMED, "not a prediction id (base64url, 32 to 512 characters, a multiple of 4)")
        try:  # the characters and length are checked above; a decoding error is a malformed id all the same
            raw = binascii.a2b_base64(text.encode("ascii").translate(_FROM_URLSAFE))
        except binascii.Error as error:
            raise IdError(MALFORMED, f"not base64url: {error}") from error
        if raw[0] != FORMAT:
            raise IdError(MALFORMED, f"unknown id format {raw[0]}; this server reads format {FORMAT}")
        signed, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        for state in self._macs:
            mac = state.copy()
            mac.update(signed)
            if hmac.compare_digest(mac.digest(), tag):
                break
        else:
            raise IdError(SIGNATURE, "the id's signature does not verify: altered, forged, or from another deployment")
        # Signed by this Deployment's key, so only a bug or a leaked key gets a malformed body here: _parse checks
        # every length and code itself; the net below is for whatever it missed, never an exception to the caller.
        try:
            return _parse(signed, tag)
        except IdError:
            raise
        except (IndexError, KeyError, ValueError, struct.error) as error:  # UnicodeDecodeError is a ValueError
            raise IdError(MALFORMED, f"the id does not parse: {type(error).__name__}: {error}") from error


def _malformed(message: str) -> IdError:
    return IdError(MALFORMED, f"the id does not parse: {message}")


def _text_field(signed: bytes, at: int, what: str) -> tuple[str, int]:
    """A 1-byte length and that many bytes of UTF-8 at `at`, and the position after them."""
    if at >= len(signed) or at + 1 + signed[at] > len(signed):
        raise _malformed(f"the {what} runs past the end")
    end = at + 1 + signed[at]
    return signed[at + 1 : end].decode(), end


def _parse(signed: bytes, tag: bytes) -> PredictionId:
    """The fields of a verified id's signed part; IdError (MALFORMED) unless every field has its exact length."""
    if len(signed) < _HEAD.size:
        raise _malformed("too short")
    _, flags, issued = _HEAD.unpack_from(signed)
    version, at = _text_field(signed, _HEAD.size, "model version")
    code, kind = flags & 0x0F, flags >> 4
    if code == NAMED_TRACK:
        track, at = _text_field(signed, at, "track")
    elif code in _TRACK_NAMES:
        track = _TRACK_NAMES[code]
    else:
        raise _malformed(f"unknown track code {code}")
    at += NONCE_BYTES + (-at - NONCE_BYTES) % 3 + 4  # nonce, row
    if kind == KIND_VALUE:
        if len(signed) != at + _FLOAT.size:
            raise _malformed(f"a value id has {_FLOAT.size} bytes of prediction, this one {len(signed) - at}")
        (value,) = _FLOAT.unpack_from(signed, at)
        return PredictionId(version, track, issued, kind, value, None, None, tag)
    if kind != KIND_LABEL:
        raise _malformed(f"unknown prediction kind {kind}")
    if at >= len(signed):
        raise _malformed("no predicted label")
    length = signed[at]
    size = DIGEST_BYTES if length == LONG_LABEL else length
    end = at + 1 + size
    padding = signed[end:]
    if end > len(signed) or padding != _ZEROS[-(5 + size + TAG_BYTES) % 3]:
        raise _malformed("the predicted label does not have its length and padding")
    if length == LONG_LABEL:
        return PredictionId(version, track, issued, kind, None, None, signed[at + 1 : end], tag)
    return PredictionId(version, track, issued, kind, None, signed[at + 1 : end].decode(), None, tag)
