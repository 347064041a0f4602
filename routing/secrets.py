"""Provider keys an admin enters: encrypted at rest with a key derived from AIOS_ENCRYPTION_KEY
(or SECRET_KEY), decrypted only in memory when a provider client is built. Never logged."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    secret = getattr(settings, "AIOS_ENCRYPTION_KEY", None) or settings.SECRET_KEY
    key = hashlib.sha256(b"aios-provider-keys:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str) -> bytes:
    return _fernet().encrypt(plaintext.encode())


def decrypt(token: bytes) -> str | None:
    """The key, or None if it cannot be decrypted (the encryption key changed)."""
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken:
        return None
