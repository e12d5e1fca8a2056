"""Credentials: password hashes, bearer tokens and their hashes.

Passwords are hashed with scrypt (``hashlib.scrypt``, memory-hard and slow on
purpose: about 50 ms a hash), so :func:`verify_password` must run off the event
loop (``IOLoop.run_in_executor``).  Tokens are 256 random bits; they are long
enough that a fast hash (SHA-256) is safe to store, which lets the relay find a
token by its hash with one indexed lookup instead of trying every user's hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

TOKEN_PREFIX: Final = "vr_"
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SCRYPT_LEN: Final = 32


def new_token() -> str:
    """A fresh bearer token: 256 random bits in URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


PREFIX_CHARS: Final = 8


def token_prefix(token: str) -> str:
    """The characters that tell a token apart where it must not be shown whole: 8 after ``vr_``.

    They are kept beside the hash and printed by ``relay tokens list``; the 200
    and more random bits after them are what keeps the token secret.
    """
    return token.removeprefix(TOKEN_PREFIX)[:PREFIX_CHARS]


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for storing; verify with :func:`verify_password`."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(("scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; constant-time, False for no stored hash."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = _scrypt(password, base64.urlsafe_b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=_SCRYPT_LEN, maxmem=64 * 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")
