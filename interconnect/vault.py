"""Secrets at rest: the partners' data and signature secrets must be usable (we encrypt,
decrypt and sign with them), so they are sealed with a key derived from
``INTERCONNECT_SECRET_KEY`` (empty: from ``SECRET_KEY``) — Fernet, authenticated AES. What
only needs checking (the partner's OperatorSecret, our tokens) is hashed instead."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _fernet() -> Fernet:
    source = settings.INTERCONNECT_SECRET_KEY or settings.SECRET_KEY
    digest = hashlib.sha256(f"interconnect-vault:{source}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(values: dict) -> str:
    return _fernet().encrypt(json.dumps(values).encode("utf-8")).decode("ascii")


def unseal(text: str) -> dict:
    try:
        return json.loads(_fernet().decrypt(text.encode("ascii")))
    except InvalidToken as exc:
        raise RuntimeError(
            "partner secrets sealed with another key (INTERCONNECT_SECRET_KEY)"
        ) from exc


def digest(value: str) -> str:
    """SHA-256 hex of a value we only ever compare (a token, an OperatorSecret)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def random_secret(length: int = 16) -> str:
    """A fresh secret of ``length`` letters and digits (T/CEC keys are 16 ASCII bytes)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))
