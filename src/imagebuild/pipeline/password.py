"""Hash a root password the way /etc/shadow wants it: SHA-512 crypt ("$6$"), in pure Python.

Why not a tool: the password must never appear on a command line (ps, --debug logs), and Python's crypt
module is gone in 3.13. SHA-512 crypt is what every glibc and libxcrypt verifies. The algorithm is Ulrich
Drepper's "Unix crypt using SHA-256 and SHA-512" specification.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_ROUNDS = 5000
SALT_LENGTH = 16

# The order in which the 64 digest bytes are packed, three at a time, into the 86 output characters.
_BYTE_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
)


def _repeat_to(data: bytes, length: int) -> bytes:
    return (data * (length // len(data) + 1))[:length]


def _encode(word: int, characters: int) -> str:
    out = []
    for _ in range(characters):
        out.append(ALPHABET[word & 0x3F])
        word >>= 6
    return "".join(out)


def sha512_crypt(password: str, salt: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """The crypt(3) string of password with the given salt (at most 16 characters are used)."""
    key = password.encode()
    salt_bytes = salt.encode()[:SALT_LENGTH]

    alternate = hashlib.sha512(key + salt_bytes + key).digest()
    main = hashlib.sha512(key + salt_bytes)
    main.update(_repeat_to(alternate, len(key)))
    length = len(key)
    while length:
        main.update(alternate if length & 1 else key)
        length >>= 1
    digest = main.digest()

    p_bytes = _repeat_to(hashlib.sha512(key * len(key)).digest(), len(key)) if key else b""
    s_bytes = _repeat_to(hashlib.sha512(salt_bytes * (16 + digest[0])).digest(), len(salt_bytes)) \
        if salt_bytes else b""

    for i in range(rounds):
        step = hashlib.sha512()
        step.update(p_bytes if i & 1 else digest)
        if i % 3:
            step.update(s_bytes)
        if i % 7:
            step.update(p_bytes)
        step.update(digest if i & 1 else p_bytes)
        digest = step.digest()

    encoded = "".join(_encode((digest[a] << 16) | (digest[b] << 8) | digest[c], 4) for a, b, c in _BYTE_ORDER)
    encoded += _encode(digest[63], 2)
    prefix = "$6$" if rounds == DEFAULT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{salt_bytes.decode()}${encoded}"


def hash_password(password: str) -> str:
    """A fresh crypt(3) hash of password with a random salt."""
    salt = "".join(secrets.choice(ALPHABET) for _ in range(SALT_LENGTH))
    return sha512_crypt(password, salt)
