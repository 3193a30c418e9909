"""Minimal pure-Python NKeys (user keys only) for the tests, used when the ``nkeys``
package is not installed (nats-py imports it lazily for ``nkeys_seed_str``, but does not
depend on it, and the pinned requirements do not include it).

Ed25519 follows the RFC 8032 reference code (section 6); slow but fine for a handful of
signatures. The NKey encoding is the one of github.com/nats-io/nkeys: base32 (no padding)
of ``prefix || key || crc16-xmodem(little endian)``, seeds with a two-byte prefix.

``install()`` registers this module as ``nkeys`` in ``sys.modules`` if the real package
is missing, so ``nats.connect(..., nkeys_seed_str=seed)`` works unchanged."""

from __future__ import annotations

import base64
import hashlib
import os
import sys

# --- Ed25519 (RFC 8032, 6. Ed25519 Python illustration) ---------------------------------

_p = 2**255 - 19
_q = 2**252 + 27742317777372353535851937790883648493


def _inv(x: int) -> int:
    return pow(x, _p - 2, _p)


_d = -121665 * _inv(121666) % _p
_sqrt_m1 = pow(2, (_p - 1) // 4, _p)


def _add(P, Q):
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % _p
    B = (P[1] + P[0]) * (Q[1] + Q[0]) % _p
    C = 2 * P[3] * Q[3] * _d % _p
    D = 2 * P[2] * Q[2] % _p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def _mul(s: int, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _add(Q, P)
        P = _add(P, P)
        s >>= 1
    return Q


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * _inv(_d * y * y + 1)
    x = pow(x2, (_p + 3) // 8, _p)
    if (x * x - x2) % _p != 0:
        x = x * _sqrt_m1 % _p
    if (x & 1) != sign:
        x = _p - x
    return x


_gy = 4 * _inv(5) % _p
_gx = _recover_x(_gy, 0)
_G = (_gx, _gy, 1, _gx * _gy % _p)


def _compress(P) -> bytes:
    zi = _inv(P[2])
    x, y = P[0] * zi % _p, P[1] * zi % _p
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _expand(secret: bytes):
    h = hashlib.sha512(secret).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public(secret: bytes) -> bytes:
    a, _ = _expand(secret)
    return _compress(_mul(a, _G))


def ed25519_sign(secret: bytes, msg: bytes) -> bytes:
    a, prefix = _expand(secret)
    A = _compress(_mul(a, _G))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % _q
    R = _compress(_mul(r, _G))
    h = int.from_bytes(hashlib.sha512(R + A + msg).digest(), "little") % _q
    s = (r + h * a) % _q
    return R + int.to_bytes(s, 32, "little")


# --- NKey encoding -----------------------------------------------------------------------

PREFIX_SEED = 18 << 3  # 'S'
PREFIX_USER = 20 << 3  # 'U'


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _b32(raw: bytes) -> bytes:
    return base64.b32encode(raw).rstrip(b"=")


def _unb32(s: bytes) -> bytes:
    return base64.b32decode(s + b"=" * (-len(s) % 8))


def encode_seed(prefix: int, seed: bytes) -> bytes:
    raw = bytes([PREFIX_SEED | (prefix >> 5), (prefix & 31) << 3]) + seed
    return _b32(raw + _crc16(raw).to_bytes(2, "little"))


def encode_public(prefix: int, pub: bytes) -> bytes:
    raw = bytes([prefix]) + pub
    return _b32(raw + _crc16(raw).to_bytes(2, "little"))


def decode_seed(seed: bytes):
    raw = _unb32(bytes(seed))
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if _crc16(body) != crc:
        raise ValueError("nkeys: invalid checksum")
    b1, b2 = body[0], body[1]
    if b1 & 0xF8 != PREFIX_SEED:
        raise ValueError("nkeys: not a seed")
    prefix = ((b1 & 7) << 5) | ((b2 & 0xF8) >> 3)
    return prefix, bytes(body[2:])


class KeyPair:
    def __init__(self, seed: bytes):
        self.prefix, self._raw = decode_seed(seed)
        self.seed = bytes(seed)
        self.public_key = encode_public(self.prefix, ed25519_public(self._raw))

    def sign(self, data: bytes) -> bytes:
        return ed25519_sign(self._raw, data)

    def wipe(self) -> None:
        pass


def from_seed(seed) -> KeyPair:
    return KeyPair(bytes(seed))


def new_user() -> tuple[str, str]:
    """(seed, public key) of a fresh random user key."""
    seed = encode_seed(PREFIX_USER, os.urandom(32))
    return seed.decode(), from_seed(seed).public_key.decode()


def install() -> None:
    try:
        import nkeys  # noqa: F401  (the real package wins)
    except ImportError:
        sys.modules["nkeys"] = sys.modules[__name__]
