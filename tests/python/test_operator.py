"""Operator (JWT) mode, against natrium-server and nats-server 2.15.1 with the same config
and the same tokens: an operator JWT inline in the config, account JWTs preloaded into a
MEMORY resolver, users logging in with ``.creds`` files through nats-py (which signs the
server's nonce with the user's seed).

Why it matters: operator mode is how most managed and multi-tenant NATS deployments run
(nsc, Synadia Cloud): the server is given no users, only the operator it trusts. A server
that cannot read these configs cannot replace nats-server there."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime

import nats
import pytest

import jwtutil as J
import nkeys_shim
from natsutil import RawConn, assert_no_msg, async_test, monz, next_msgs, sync

nkeys_shim.install()  # nats-py signs nonces with ``nkeys`` (the shim when not installed)


class Tenants:
    """An operator, its system account, and accounts A (JetStream on, exports a service
    and a private stream, has a scoped signing key) and B (no JetStream, imports both)."""

    def __init__(self):
        self.op = J.operator_key()
        self.sys = J.account_key()
        self.a = J.account_key()
        self.b = J.account_key()
        self.a_scoped = J.account_key()
        self.revoked = J.user_key()
        self.revoked_at = int(time.time()) + 30

    def config(self, extra: str = "", a_limits: dict | None = None) -> str:
        a = J.account_jwt(
            self.op, self.a, name="A",
            limits={**J.UNLIMITED, **J.JS_UNLIMITED, **(a_limits or {})},
            exports=[{"subject": "svc.>", "type": "service"},
                     {"subject": "priv.>", "type": "stream", "token_req": True}],
            signing_keys=[{"kind": "user_scope", "key": self.a_scoped.public, "role": "r",
                           "template": {"pub": {"allow": ["own.{{name()}}.>"]},
                                        "sub": {"allow": ["own.{{name()}}.>", "_INBOX.>"]},
                                        "subs": -1, "data": -1, "payload": -1}}],
            revocations={self.revoked.public: self.revoked_at},
        )
        b = J.account_jwt(
            self.op, self.b, name="B",
            limits={**J.UNLIMITED, "payload": 1024},
            imports=[{"subject": "svc.>", "account": self.a.public, "type": "service"},
                     {"subject": "priv.>", "account": self.a.public, "type": "stream",
                      "token": J.activation_jwt(self.a, self.b.public, "priv.>")}],
        )
        sys = J.account_jwt(self.op, self.sys, name="SYS")
        return J.operator_config(
            J.operator_jwt(self.op, system_account=self.sys.public),
            {self.a.public: a, self.b.public: b, self.sys.public: sys},
            extra,
        )


def full_resolver(t: Tenants, tmp_path, options: str = ""):
    """``t``'s config with a ``full`` resolver in a fresh directory (``options`` added to
    its block); the directory and the config."""
    jwt_dir = tmp_path / "jwt"
    jwt_dir.mkdir()
    extra = f", {options}" if options else ""
    return jwt_dir, t.config().replace(
        "resolver: MEMORY", f'resolver {{ type: full, dir: "{jwt_dir}"{extra} }}')


async def login(server, tmp_path, jwt: str, user: J.Key, **kw) -> nats.NATS:
    errors: list = []

    async def on_error(e):
        errors.append(e)

    creds = J.creds_file(tmp_path / f"{user.public[:8]}.creds", jwt, user)
    nc = await nats.connect(server.url, user_credentials=creds, allow_reconnect=False,
                            connect_timeout=3, error_cb=on_error, **kw)
    nc.test_errors = errors  # type: ignore[attr-defined]
    return nc


async def publish_denied(nc, subject: str) -> None:
    """Publish on ``subject`` and expect the server's permissions violation for it."""
    await nc.publish(subject, b"x")
    await sync(nc)
    await asyncio.sleep(0.2)
    want = f'permissions violation for publish to "{subject}"'
    assert any(want in str(e).lower() for e in nc.test_errors), nc.test_errors


async def closed_with(nc, text: str, wait: float = 8.0) -> None:
    """Wait (bounded) for the server to close ``nc`` and expect ``text`` in its error."""
    for _ in range(int(wait * 10)):
        if nc.is_closed:
            break
        await asyncio.sleep(0.1)
    seen = [str(e).lower() for e in [*nc.test_errors, nc.last_error] if e]
    assert any(text in e for e in seen), seen


async def refused(server, tmp_path, jwt: str, user: J.Key) -> str:
    """The error a refused login gets."""
    try:
        nc = await login(server, tmp_path, jwt, user)
    except Exception as e:  # noqa: BLE001 - nats-py raises several kinds here
        return str(e)
    await nc.close()
    raise AssertionError("login was accepted")


@async_test()
async def test_users_log_in_into_their_accounts(start_js_server, tmp_path):
    t = Tenants()
    server = start_js_server(config=t.config())
    alice, bob = J.user_key(), J.user_key()
    na = await login(server, tmp_path, J.user_jwt(t.a, alice), alice)
    nb = await login(server, tmp_path, J.user_jwt(t.b, bob), bob)
    try:
        # INFO asks for a signed nonce and says auth is required.
        assert na._server_info.get("auth_required") is True
        assert na._server_info.get("nonce")
        # Accounts are isolated.
        sa = await na.subscribe("x")
        sb = await nb.subscribe("x")
        await sync(na)
        await sync(nb)
        await na.publish("x", b"from a")
        [m] = await next_msgs(sa, 1)
        assert m.data == b"from a"
        await assert_no_msg(sb)
        # B's service import of A's svc.>.
        async def responder(msg):
            await msg.respond(b"pong:" + msg.subject.encode())
        await na.subscribe("svc.>", cb=responder)
        await sync(na)
        r = await nb.request("svc.ping", b"", timeout=3)
        assert r.data == b"pong:svc.ping"
        # B's stream import of A's private priv.> through the activation token.
        sp = await nb.subscribe("priv.>")
        await sync(nb)
        await na.publish("priv.one", b"secret")
        [m] = await next_msgs(sp, 1)
        assert (m.subject, m.data) == ("priv.one", b"secret")
    finally:
        await na.close()
        await nb.close()


@async_test()
async def test_version_1_tokens(start_server, tmp_path):
    """Tokens from nsc before 2.0 (version 1: kind at the top, payload-only signature)
    are read as nats-server reads them: an operator, accounts with an export, an import
    through a version 1 activation, and users with version 1 defaults (no limits) and
    permissions; a version 1 token whose signature covers the header too is refused."""
    op, sys_acc, a, b = J.operator_key(), J.account_key(), J.account_key(), J.account_key()
    limits = {"subs": -1, "conn": -1, "imports": -1, "exports": -1, "data": -1,
              "payload": -1, "wildcards": True}
    op_jwt = J.encode_v1({"sub": op.public, "name": "op1", "type": "operator",
                          "nats": {"system_account": sys_acc.public}}, op)
    activation = J.encode_v1({"sub": b.public, "type": "activation",
                              "nats": {"subject": "priv.>", "type": "stream"}}, a)
    preload = {
        sys_acc.public: J.encode_v1({"sub": sys_acc.public, "name": "SYS", "type": "account",
                                     "nats": {"limits": limits}}, op),
        a.public: J.encode_v1({"sub": a.public, "name": "A", "type": "account", "nats": {
            "limits": limits, "exports": [{"subject": "priv.>", "type": "stream",
                                            "token_req": True}]}}, op),
        b.public: J.encode_v1({"sub": b.public, "name": "B", "type": "account", "nats": {
            "limits": limits, "imports": [{"account": a.public, "subject": "priv.>",
                                            "type": "stream", "token": activation}]}}, op),
    }
    server = start_server(config=J.operator_config(op_jwt, preload))
    alice, bob, carol = J.user_key(), J.user_key(), J.user_key()
    na = await login(server, tmp_path, J.encode_v1({"sub": alice.public, "name": "alice",
                                                    "type": "user", "nats": {"pub": {}, "sub": {}}},
                                                   a), alice)
    nb = await login(server, tmp_path, J.encode_v1({"sub": bob.public, "name": "bob",
                                                    "type": "user", "nats": {
                                                        "pub": {"deny": ["no.>"]}, "sub": {}}},
                                                   b), bob)
    try:
        sp = await nb.subscribe("priv.>")
        await sync(nb)
        await na.publish("priv.one", b"secret")
        [m] = await next_msgs(sp, 1)
        assert (m.subject, m.data) == ("priv.one", b"secret")
        # bob's permissions came through.
        await publish_denied(nb, "no.way")
    finally:
        await na.close()
        await nb.close()
    # The version 2 signing rule (header included) does not verify a version 1 token.
    v1_claims = {"sub": carol.public, "name": "carol", "type": "user", "iss": a.public,
                 "iat": int(time.time()), "jti": "X", "nats": {}}
    header = J._b64(json.dumps({"typ": "jwt", "alg": "ed25519"}).encode())
    payload = J._b64(json.dumps(v1_claims).encode())
    wrongly_signed = f"{header}.{payload}.{J._b64(a.sign(f'{header}.{payload}'.encode()))}"
    err = await refused(server, tmp_path, wrongly_signed, carol)
    assert "authorization violation" in err.lower(), err


@async_test()
async def test_jetstream_follows_the_account_jwt(start_js_server, tmp_path):
    t = Tenants()
    server = start_js_server(config=t.config(a_limits={"streams": 1}))
    alice, bob = J.user_key(), J.user_key()
    na = await login(server, tmp_path, J.user_jwt(t.a, alice), alice)
    nb = await login(server, tmp_path, J.user_jwt(t.b, bob), bob)
    try:
        js = na.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        ack = await js.publish("orders.1", b"x")
        assert ack.seq == 1
        # The JWT allows one stream.
        with pytest.raises(nats.js.errors.BadRequestError) as e:
            await js.add_stream(name="MORE", subjects=["more.>"])
        assert e.value.err_code == 10027, e.value
        info = await js.account_info()
        assert info.limits.max_streams == 1
        # B has no JetStream in its JWT.
        r = await nb.request("$JS.API.INFO", b"", timeout=3)
        body = json.loads(r.data)
        assert body["error"]["err_code"] == 10039, body
    finally:
        await na.close()
        await nb.close()


@async_test()
async def test_refused_logins(start_server, tmp_path):
    t = Tenants()
    server = start_server(config=t.config())
    u = J.user_key()
    # Signed by an account the operator never signed.
    err = await refused(server, tmp_path, J.user_jwt(J.account_key(), u), u)
    assert "authorization violation" in err.lower(), err
    # Expired.
    err = await refused(server, tmp_path,
                        J.user_jwt(t.a, u, claims={"exp": int(time.time()) - 5}), u)
    assert "authorization violation" in err.lower(), err
    # Revoked (issued before the revocation time).
    err = await refused(server, tmp_path, J.user_jwt(t.a, t.revoked), t.revoked)
    assert "authorization violation" in err.lower(), err
    # A scoped signing key's user that sets permissions itself.
    err = await refused(server, tmp_path,
                        J.user_jwt(t.a_scoped, u, issuer_account=t.a.public,
                                   **{"pub": {"allow": [">"]}}), u)
    assert "authorization violation" in err.lower(), err
    # Not from an allowed network.
    err = await refused(server, tmp_path, J.user_jwt(t.a, u, src=["10.0.0.0/8"]), u)
    assert "authorization violation" in err.lower(), err
    # Only WebSocket connections allowed.
    err = await refused(server, tmp_path,
                        J.user_jwt(t.a, u, allowed_connection_types=["WEBSOCKET"]), u)
    assert "authorization violation" in err.lower(), err
    # Outside the user's connect times (UTC, an hour from now for an hour).
    def hhmmss(offset_s: int) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(time.time() + offset_s))
    later = [{"start": hhmmss(3600), "end": hhmmss(7200)}]
    err = await refused(server, tmp_path,
                        J.user_jwt(t.a, u, times=later, times_location="UTC"), u)
    assert "authorization violation" in err.lower(), err
    # Inside them: admitted.
    now = [{"start": hhmmss(-3600), "end": hhmmss(3600)}]
    nc = await login(server, tmp_path, J.user_jwt(t.a, u, times=now, times_location="UTC"), u)
    await nc.close()
    # A user name and password mean nothing in operator mode.
    with pytest.raises(Exception) as e:
        await nats.connect(server.url, user="a", password="b", allow_reconnect=False,
                           connect_timeout=3)
    assert "authorization violation" in str(e.value).lower()


@async_test()
async def test_permissions_from_the_jwt_and_the_scope(start_server, tmp_path):
    t = Tenants()
    server = start_server(config=t.config())
    u, s = J.user_key(), J.user_key()
    nc = await login(server, tmp_path, J.user_jwt(t.a, u, **{"pub": {"deny": ["secret.>"]}}), u)
    sc = await login(server, tmp_path,
                     J.user_jwt(t.a_scoped, s, name="bob", issuer_account=t.a.public,
                                scoped=True), s)
    try:
        await publish_denied(nc, "secret.x")
        # The scope's template, with {{name()}} = bob.
        sub = await sc.subscribe("own.bob.x")
        await sync(sc)
        await sc.publish("own.bob.x", b"mine")
        [m] = await next_msgs(sub, 1)
        assert m.data == b"mine"
        await publish_denied(sc, "own.alice.x")
    finally:
        await nc.close()
        await sc.close()


@async_test()
async def test_payload_limit_of_the_account(start_server, tmp_path):
    t = Tenants()
    server = start_server(config=t.config())
    u = J.user_key()
    nc = await login(server, tmp_path, J.user_jwt(t.b, u), u)
    try:
        # B's JWT allows 1024-byte messages; nats-py checks INFO's max_payload only, so
        # the server must refuse the bigger one itself.
        await nc.publish("y", b"x" * 2000)
        for _ in range(30):
            if nc.is_closed:
                break
            await asyncio.sleep(0.1)
        # The server closes the connection (nats-py may see the -ERR or only the reset).
        assert nc.is_closed, nc.test_errors
    finally:
        await nc.close()


@async_test()
async def test_an_expiring_user_is_disconnected(start_server, tmp_path):
    t = Tenants()
    server = start_server(config=t.config())
    u = J.user_key()
    nc = await login(server, tmp_path,
                     J.user_jwt(t.a, u, claims={"exp": int(time.time()) + 2}), u)
    try:
        await closed_with(nc, "user authentication expired")
    finally:
        await nc.close()


def test_config_errors(run_server_to_exit):
    t = Tenants()
    good = t.config()
    cases = {
        "no resolver": (f"operator: {J.operator_jwt(t.op, system_account=t.sys.public)}\n",
                        # nats-server falls back to a URL resolver built from the
                        # operator's (empty) account server URL, and fails on it.
                        ("operators require an account resolver", "could not fetch")),
        "accounts block": (good + "accounts { X { users [ {user: a, password: b} ] } }\n",
                           "operators do not allow accounts to be configured directly"),
        "system account differs": (good + f"system_account: {t.a.public}\n",
                                   "system_account in config and operator jwt must be identical"),
        "bad trusted key": ("trusted_keys: [\"OBAD\"]\nresolver: MEMORY\n",
                            "valid public operator nkey"),
        "operator wants a newer server": (
            J.operator_config(J.operator_jwt(t.op, system_account=t.sys.public,
                                             assert_server_version="2.99.0"), {}),
            "expected minor version 99 > server minor version 15"),
        "no system account JWT": (
            J.operator_config(J.operator_jwt(t.op, system_account=t.sys.public),
                              {t.a.public: J.account_jwt(t.op, t.a)}),
            "error resolving system account"),
        "bad preload": (good.replace(f"{t.a.public}: eyJ", f"{t.a.public}: eyJx"),
                        "invalid account jwt"),
        "bad pinned account": (good + "resolver_pinned_accounts: [ NOTAKEY ]\n",
                               "pinned account key"),
        "hard_delete without allow_delete": (
            good.replace("resolver: MEMORY",
                         'resolver { type: full, dir: "./jwt", hard_delete: false }'),
            "hard_delete has no effect without delete"),
    }
    for name, (config, keyword) in cases.items():
        rc, out, err = run_server_to_exit(config)
        assert rc not in (0, None), (name, rc, out, err)
        keywords = keyword if isinstance(keyword, tuple) else (keyword,)
        assert any(k in (out + err).lower() for k in keywords), (name, out + err)


@async_test()
async def test_push_into_a_full_resolver(start_server, tmp_path):
    """``nsc push`` into a ``full`` resolver: the answer, the JWT stored in the directory,
    and the new account's users logging in at once."""
    t = Tenants()
    jwt_dir, config = full_resolver(t, tmp_path)
    server = start_server(config=config)
    admin, carol = J.user_key(), J.user_key()
    sysc = await login(server, tmp_path, J.user_jwt(t.sys, admin), admin)
    try:
        c = J.account_key()
        c_jwt = J.account_jwt(t.op, c, name="C")
        err = await refused(server, tmp_path, J.user_jwt(c, carol), carol)
        assert "authorization violation" in err.lower(), err
        r = await sysc.request("$SYS.REQ.CLAIMS.UPDATE", c_jwt.encode(), timeout=3)
        body = json.loads(r.data)
        assert body["data"] == {"account": c.public, "code": 200, "message": "jwt updated"}, body
        assert {"name", "host", "id", "ver"} <= set(body["server"]), body
        assert (jwt_dir / f"{c.public}.jwt").read_text() == c_jwt
        nc = await login(server, tmp_path, J.user_jwt(c, carol), carol)
        await sync(nc)
        await nc.close()
        # The account in the subject must be the JWT's.
        r = await sysc.request(f"$SYS.REQ.ACCOUNT.{t.b.public}.CLAIMS.UPDATE", c_jwt.encode(),
                               timeout=3)
        body = json.loads(r.data)
        assert body["error"]["code"] == 500, body
        assert "subject does not match jwt content" in body["error"]["description"], body
        # A lookup answers with the stored JWT.
        r = await sysc.request(f"$SYS.REQ.ACCOUNT.{c.public}.CLAIMS.LOOKUP", b"", timeout=3)
        assert r.data.decode() == c_jwt
    finally:
        await sysc.close()


async def claims_delete(sysc, signer: J.Key, accounts: list, sub: str | None = None) -> dict:
    """``nsc``'s account deletion: a generic claim about ``signer`` (or ``sub``) listing
    ``accounts``, on ``$SYS.REQ.CLAIMS.DELETE``; the parsed answer."""
    token = J.encode({"sub": sub or signer.public, "nats": {"accounts": accounts}}, signer)
    r = await sysc.request("$SYS.REQ.CLAIMS.DELETE", token.encode(), timeout=3)
    return json.loads(r.data)


@async_test()
async def test_delete_from_a_full_resolver(start_server, tmp_path):
    """``nsc push --prune`` / ``nsc delete account``: with ``allow_delete`` the account's
    JWT file is renamed to ``.jwt.deleted``, its users are closed with ``Account
    Authentication Expired`` and can no longer log in; the refusals are nats-server's."""
    t = Tenants()
    jwt_dir, config = full_resolver(t, tmp_path, "allow_delete: true")
    server = start_server(config=config)
    admin, carol, alice = J.user_key(), J.user_key(), J.user_key()
    sysc = await login(server, tmp_path, J.user_jwt(t.sys, admin), admin)
    try:
        c = J.account_key()
        c_jwt = J.account_jwt(t.op, c, name="C")
        r = await sysc.request("$SYS.REQ.CLAIMS.UPDATE", c_jwt.encode(), timeout=3)
        assert "data" in json.loads(r.data)
        nc = await login(server, tmp_path, J.user_jwt(c, carol), carol)
        na = await login(server, tmp_path, J.user_jwt(t.a, alice), alice)
        # Refused: not signed by the operator, not about its signer, the system account,
        # not an account key.
        stranger = J.operator_key()
        for signer, accounts, sub, reason in (
                (stranger, [c.public], None, "not trusted"),
                (t.op, [c.public], t.a.public, "not self signed"),
                (t.op, [t.sys.public], None, "not allowed to delete system account"),
                (t.op, ["bogus"], None, "malformed request")):
            body = await claims_delete(sysc, signer, accounts, sub)
            by = sub or signer.public
            assert body["error"] == {
                "code": 500,
                "description": f"delete accounts request by {by} failed - {reason}"}, body
        assert (jwt_dir / f"{c.public}.jwt").exists()
        body = await claims_delete(sysc, t.op, [c.public])
        assert body["data"] == {"code": 200, "message": "deleted 1 accounts"}, body
        assert not (jwt_dir / f"{c.public}.jwt").exists()
        assert (jwt_dir / f"{c.public}.jwt.deleted").read_text() == c_jwt
        await closed_with(nc, "account authentication expired")
        err = await refused(server, tmp_path, J.user_jwt(c, carol), carol)
        assert "authorization violation" in err.lower(), err
        # Other accounts' users stay.
        await sync(na)
        assert not na.is_closed
        await na.close()
    finally:
        await sysc.close()


@async_test()
async def test_hard_delete_of_a_preloaded_account(start_server, tmp_path):
    """``hard_delete``: no ``.jwt.deleted`` is kept; an account that came from
    ``resolver_preload`` is gone too (nats-server stores preloads in the directory)."""
    t = Tenants()
    jwt_dir, config = full_resolver(t, tmp_path, "allow_delete: true, hard_delete: true")
    server = start_server(config=config)
    admin, alice = J.user_key(), J.user_key()
    sysc = await login(server, tmp_path, J.user_jwt(t.sys, admin), admin)
    try:
        body = await claims_delete(sysc, t.op, [t.a.public])
        assert body["data"] == {"code": 200, "message": "deleted 1 accounts"}, body
        assert not (jwt_dir / f"{t.a.public}.jwt").exists()
        assert not (jwt_dir / f"{t.a.public}.jwt.deleted").exists()
        err = await refused(server, tmp_path, J.user_jwt(t.a, alice), alice)
        assert "authorization violation" in err.lower(), err
    finally:
        await sysc.close()


@async_test()
async def test_pinned_accounts(start_server, tmp_path):
    """``resolver_pinned_accounts``: only the listed accounts' users (and the system
    account's) log in; ``/varz`` counts the refusals."""
    t = Tenants()
    server = start_server(
        config=t.config(f"resolver_pinned_accounts: [ {t.a.public} ]\nhttp_port: -1\n"))
    alice, bob, admin = J.user_key(), J.user_key(), J.user_key()
    na = await login(server, tmp_path, J.user_jwt(t.a, alice), alice)
    ns = await login(server, tmp_path, J.user_jwt(t.sys, admin), admin)
    try:
        err = await refused(server, tmp_path, J.user_jwt(t.b, bob), bob)
        assert "authorization violation" in err.lower(), err
        varz = await monz(server, "/varz")
        assert varz.get("pinned_account_fails") == 1, varz.get("pinned_account_fails")
    finally:
        await na.close()
        await ns.close()


@async_test()
async def test_delete_needs_allow_delete(start_server, tmp_path):
    t = Tenants()
    jwt_dir, config = full_resolver(t, tmp_path)
    server = start_server(config=config)
    admin = J.user_key()
    sysc = await login(server, tmp_path, J.user_jwt(t.sys, admin), admin)
    try:
        body = await claims_delete(sysc, t.op, [t.a.public])
        assert body["error"] == {
            "code": 500,
            "description": f"delete accounts request by {t.op.public} failed - "
                           "delete must be enabled in server config"}, body
    finally:
        await sysc.close()


@async_test()
async def test_connz_shows_jwt_users(start_server, tmp_path):
    """``/connz?auth=1`` for JWT users: the user key, the account, the JWT (not for a
    bearer token), the key that signed it, the account JWT's name and the user's tags."""
    t = Tenants()
    server = start_server(config=t.config("http_port: -1\n"))
    u, s = J.user_key(), J.user_key()
    user_jwt = J.user_jwt(t.a, u, tags=["team:blue"])
    nc = await login(server, tmp_path, user_jwt, u)
    sc = await login(server, tmp_path,
                     J.user_jwt(t.a_scoped, s, name="bob", issuer_account=t.a.public,
                                scoped=True), s)
    try:
        conns = {c["authorized_user"]: c for c in (await monz(server, "/connz?auth=1"))["connections"]}
        c = conns[u.public]
        assert c["account"] == t.a.public, c
        assert c["jwt"] == user_jwt, c
        assert c["issuer_key"] == t.a.public, c
        assert c["name_tag"] == "A", c
        assert c["tags"] == ["team:blue"], c
        c = conns[s.public]
        assert c["issuer_key"] == t.a_scoped.public, c
        assert "tags" not in c, c
    finally:
        await nc.close()
        await sc.close()


@async_test()
async def test_an_expiring_account_disconnects_its_users(start_server, tmp_path):
    t = Tenants()
    e = J.account_key()
    e_jwt = J.encode({"sub": e.public, "name": "E", "exp": int(time.time()) + 3,
                      "nats": {"type": "account", "version": 2, "limits": dict(J.UNLIMITED)}},
                     t.op)
    config = t.config().replace("resolver_preload {\n", f"resolver_preload {{\n  {e.public}: {e_jwt}\n")
    server = start_server(config=config)
    u = J.user_key()
    nc = await login(server, tmp_path, J.user_jwt(e, u), u)
    try:
        await closed_with(nc, "account authentication expired")
    finally:
        await nc.close()


@async_test()
async def test_account_token_position(start_server, tmp_path):
    """An export with ``account_token_position``: each importer may import only the
    subjects carrying its own account key at that token."""
    op, sys, a, b = J.operator_key(), J.account_key(), J.account_key(), J.account_key()
    a_jwt = J.account_jwt(op, a, name="A", exports=[
        {"subject": "pos.*.>", "type": "stream", "account_token_position": 2}])
    b_jwt = J.account_jwt(op, b, name="B", imports=[
        {"subject": f"pos.{b.public}.>", "account": a.public, "type": "stream"},
        {"subject": f"pos.{a.public}.>", "account": a.public, "type": "stream",
         "local_subject": "stolen.>"}])
    server = start_server(config=J.operator_config(
        J.operator_jwt(op, system_account=sys.public),
        {a.public: a_jwt, b.public: b_jwt, sys.public: J.account_jwt(op, sys, name="SYS")}))
    ua, ub = J.user_key(), J.user_key()
    na = await login(server, tmp_path, J.user_jwt(a, ua), ua)
    nb = await login(server, tmp_path, J.user_jwt(b, ub), ub)
    try:
        mine = await nb.subscribe(f"pos.{b.public}.>")
        stolen = await nb.subscribe("stolen.>")
        await sync(nb)
        await na.publish(f"pos.{b.public}.x", b"for b")
        await na.publish(f"pos.{a.public}.x", b"for a")
        await sync(na)
        [m] = await next_msgs(mine, 1)
        assert m.data == b"for b"
        await assert_no_msg(stolen)
    finally:
        await na.close()
        await nb.close()


@async_test()
async def test_review_findings_behave_as_nats_server(start_server, tmp_path):
    """Cases a review found: a user with only a response permission publishes replies
    only; a user that requires a proxy is refused (no trusted proxies); an activation
    the exporter revoked no longer admits the import; under an operator with strict
    signing-key usage only the account's signing keys sign users."""
    op, op_sk, sys = J.operator_key(), J.operator_key(), J.account_key()
    a, a_sk, b, b_sk = J.account_key(), J.account_key(), J.account_key(), J.account_key()
    act = J.activation_jwt(a, b.public, "rev.>")
    # Activations issued up to now are revoked for B.
    a_jwt = J.encode({"sub": a.public, "name": "A", "nats": {
        "type": "account", "version": 2, "limits": dict(J.UNLIMITED),
        "signing_keys": [a_sk.public],
        "exports": [{"subject": "rev.>", "type": "stream", "token_req": True,
                     "revocations": {b.public: int(time.time()) + 5}}]}}, op_sk)
    b_jwt = J.encode({"sub": b.public, "name": "B", "nats": {
        "type": "account", "version": 2, "limits": dict(J.UNLIMITED),
        "signing_keys": [b_sk.public],
        "imports": [{"subject": "rev.>", "account": a.public, "type": "stream",
                     "token": act}]}}, op_sk)
    sys_jwt = J.encode({"sub": sys.public, "name": "SYS", "nats": {
        "type": "account", "version": 2, "limits": dict(J.UNLIMITED)}}, op_sk)
    op_jwt = J.operator_jwt(op, system_account=sys.public, signing_keys=[op_sk.public],
                            strict_signing_key_usage=True)
    server = start_server(config=J.operator_config(
        op_jwt, {a.public: a_jwt, b.public: b_jwt, sys.public: sys_jwt}))
    u = J.user_key()
    # Strict signing keys: the account key itself may not sign users.
    err = await refused(server, tmp_path, J.user_jwt(a, u), u)
    assert "authorization violation" in err.lower(), err
    # A proxy is required: refused.
    with pytest.raises(Exception):
        nc = await login(server, tmp_path,
                         J.user_jwt(a_sk, u, issuer_account=a.public, proxy_required=True), u)
        await nc.close()
    # Only a response permission: replies yes, anything else no.
    nc = await login(server, tmp_path,
                     J.user_jwt(a_sk, u, issuer_account=a.public, resp={"max": 1, "ttl": 0}), u)
    ub = J.user_key()
    nb = await login(server, tmp_path, J.user_jwt(b_sk, ub, issuer_account=b.public), ub)
    try:
        await publish_denied(nc, "anything")
        # The revoked activation: B gets nothing of A's rev.>.
        sub = await nb.subscribe("rev.>")
        await sync(nb)
        ua = J.user_key()
        na = await login(server, tmp_path, J.user_jwt(a_sk, ua, issuer_account=a.public), ua)
        await na.publish("rev.1", b"x")
        await sync(na)
        await na.close()
        await assert_no_msg(sub)
    finally:
        await nc.close()
        await nb.close()


@async_test()
async def test_connect_event_of_a_jwt_user(start_server, tmp_path):
    t = Tenants()
    server = start_server(config=t.config())
    admin, u = J.user_key(), J.user_key()
    sysc = await login(server, tmp_path, J.user_jwt(t.sys, admin), admin)
    try:
        events = await sysc.subscribe(f"$SYS.ACCOUNT.{t.a.public}.CONNECT")
        await sync(sysc)
        user_jwt = J.user_jwt(t.a, u, tags=["team:blue"])
        nc = await login(server, tmp_path, user_jwt, u)
        [m] = await next_msgs(events, 1)
        await nc.close()
        client = json.loads(m.data)["client"]
        assert client["acc"] == t.a.public, client
        assert client["jwt"] == user_jwt, client
        assert client["issuer_key"] == t.a.public, client
        assert client["name_tag"] == "A", client
        assert client["tags"] == ["team:blue"], client
    finally:
        await sysc.close()


@async_test()
async def test_accountz_of_a_jwt_account(start_server, tmp_path):
    t = Tenants()
    server = start_server(config=t.config("http_port: -1\n"))
    u = J.user_key()
    nc = await login(server, tmp_path, J.user_jwt(t.b, u), u)  # B is registered on login
    try:
        detail = (await monz(server, f"/accountz?acc={t.b.public}"))["account_detail"]
        assert detail["account_name"] == t.b.public, detail
        assert detail["issuer_key"] == t.op.public, detail
        assert detail["name_tag"] == "B", detail
        assert detail["jwt"].startswith("eyJ"), detail
        claims = detail["decoded_jwt"]
        assert claims["sub"] == t.b.public and claims["iss"] == t.op.public, claims
        assert claims["nats"]["limits"]["payload"] == 1024, claims
        assert "revoked_user" not in detail, detail
        # A's revocation, as the time before which the user's JWTs are void.
        a = (await monz(server, f"/accountz?acc={t.a.public}"))["account_detail"]
        [(key, when)] = a["revoked_user"].items()
        assert key == t.revoked.public, a["revoked_user"]
        # (nats-server writes it in its local zone, natrium in UTC: compare instants.)
        assert datetime.fromisoformat(when).timestamp() == t.revoked_at, when
    finally:
        await nc.close()


@async_test()
async def test_info_user_info_varz_and_accstatz(start_server, tmp_path):
    """What a probe found different: the INFO after CONNECT carries the payload limit the
    user publishes under (nats-py sizes messages by it); ``$SYS.REQ.USER.INFO`` names
    the account and user by their JWT names and says when the login expires; ``/varz``
    shows the trusted operators; ``/accstatz`` names the account by its JWT name."""
    t = Tenants()
    server = start_server(config=t.config("http_port: -1\n"))
    u, ub = J.user_key(), J.user_key()
    nc = await login(server, tmp_path,
                     J.user_jwt(t.a, u, name="alice", payload=10,
                                claims={"exp": int(time.time()) + 3600}), u)
    nb = await login(server, tmp_path, J.user_jwt(t.b, ub), ub)
    try:
        await sync(nc)
        await sync(nb)
        # The INFO after CONNECT, read on a raw connection (nats-py keeps the first).
        for signer, limit in ((t.a, 10), (t.b, 1024)):
            key = J.user_key()
            raw = await RawConn.open(server.port)
            sig = base64.urlsafe_b64encode(key.sign(raw.info["nonce"].encode())).rstrip(b"=")
            jwt = J.user_jwt(signer, key, payload=limit if signer is t.a else -1)
            await raw.handshake(jwt=jwt, sig=sig.decode())
            assert raw.connect_info["max_payload"] == limit, raw.connect_info
            raw.writer.close()
        r = await nc.request("$SYS.REQ.USER.INFO", b"", timeout=3)
        data = json.loads(r.data)["data"]
        assert data["user"] == u.public and data["account"] == t.a.public, data
        assert data["account_name"] == "A" and data["user_name"] == "alice", data
        assert 3500 * 10**9 <= data["expires"] <= 3600 * 10**9, data
        varz = await monz(server, "/varz")
        assert len(varz["trusted_operators_jwt"]) == 1, varz.get("trusted_operators_jwt")
        claim = varz["trusted_operators_claim"][0]
        assert claim["sub"] == t.op.public and claim["nats"]["type"] == "operator", claim
        stats = {a["acc"]: a for a in (await monz(server, "/accstatz"))["account_statz"]}
        assert stats[t.a.public]["name"] == "A", stats
    finally:
        await nc.close()
        await nb.close()
