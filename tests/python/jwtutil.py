"""NATS JWTs for the operator-mode tests: operator, account, user and activation claims,
signed with fresh Ed25519 keys (``cryptography``, which the pinned moto pulls in) and
encoded as nsc encodes them (base64url without padding, ``ed25519-nkey`` headers, nkey
public keys). The same tokens go to nats-server 2.15.1 and to natrium-server, so a
difference in how they are read shows up as a test failure.

Why not nsc: it is a Go binary that is not on PyPI; the claims format is small and
documented (github.com/nats-io/jwt), and writing it here keeps the tests self-contained."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import nkeys_shim

PREFIX_OPERATOR = 14 << 3  # 'O'
PREFIX_ACCOUNT = 0  # 'A'
PREFIX_USER = 20 << 3  # 'U'


class Key:
    """An nkey pair: ``public`` (the nkey string), ``seed`` and ``sign``."""

    def __init__(self, prefix: int):
        self._priv = Ed25519PrivateKey.generate()
        pub = self._priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        raw = self._priv.private_bytes_raw()
        self.public = nkeys_shim.encode_public(prefix, pub).decode()
        self.seed = nkeys_shim.encode_seed(prefix, raw).decode()

    def sign(self, data: bytes) -> bytes:
        return self._priv.sign(data)


def operator_key() -> Key:
    return Key(PREFIX_OPERATOR)


def account_key() -> Key:
    return Key(PREFIX_ACCOUNT)


def user_key() -> Key:
    return Key(PREFIX_USER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(claims: dict, signer: Key) -> str:
    """Sign ``claims`` (``sub``, ``nats`` and any others) with ``signer`` as issuer."""
    claims = dict(claims)
    claims.setdefault("iss", signer.public)
    claims.setdefault("iat", int(time.time()))
    claims.pop("jti", None)
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signed = f"{header}.{payload}"
    return f"{signed}.{_b64(signer.sign(signed.encode()))}"


def encode_v1(claims: dict, signer: Key) -> str:
    """A version 1 token, as nsc before 2.0 wrote them: header ``jwt``/``ed25519``, the
    kind in a top-level ``type``, and the signature over the payload part alone."""
    claims = dict(claims)
    claims.setdefault("iss", signer.public)
    claims.setdefault("iat", int(time.time()))
    claims.setdefault("jti", base64.b32encode(hashlib.sha256(
        json.dumps(claims, sort_keys=True).encode()).digest()).decode().rstrip("="))
    header = _b64(json.dumps({"typ": "jwt", "alg": "ed25519"}).encode())
    payload = _b64(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64(signer.sign(payload.encode()))}"


def operator_jwt(op: Key, system_account: str | None = None, **nats) -> str:
    n = {"type": "operator", "version": 2, **nats}
    if system_account:
        n["system_account"] = system_account
    return encode({"sub": op.public, "name": "op", "nats": n}, op)


UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}
JS_UNLIMITED = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


def account_jwt(op: Key, acc: Key, name: str = "acc", **nats) -> str:
    n = {"type": "account", "version": 2, "limits": dict(UNLIMITED), **nats}
    return encode({"sub": acc.public, "name": name, "nats": n}, op)


def user_jwt(signer: Key, user: Key, name: str = "alice", issuer_account: str | None = None,
             scoped: bool = False, claims: dict | None = None, **nats) -> str:
    n = {"type": "user", "version": 2}
    if not scoped:
        n.update({"subs": -1, "data": -1, "payload": -1})
    n.update(nats)
    if issuer_account:
        n["issuer_account"] = issuer_account
    return encode({"sub": user.public, "name": name, "nats": n, **(claims or {})}, signer)


def activation_jwt(exporter: Key, importer: str, subject: str, kind: str = "stream") -> str:
    return encode({"sub": importer, "nats": {"subject": subject, "kind": kind,
                                              "type": "activation", "version": 2}}, exporter)


def creds_file(path: Path, jwt: str, user: Key) -> str:
    """Write a ``.creds`` file as nsc does and return its path."""
    path.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed}\n"
        "------END USER NKEY SEED------\n"
    )
    return str(path)


def operator_config(op_jwt: str, preload: dict[str, str], extra: str = "",
                    resolver: str = "MEMORY") -> str:
    lines = "\n".join(f"  {k}: {v}" for k, v in preload.items())
    return f"operator: {op_jwt}\nresolver: {resolver}\nresolver_preload {{\n{lines}\n}}\n{extra}\n"
