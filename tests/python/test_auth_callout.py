"""Auth callout, against natrium-server and nats-server 2.15.1 with the same config and
the same service: a nats-py client logged in as the configured ``auth`` user answers
``$SYS.REQ.USER.AUTH`` requests, checks the CONNECT's user name and password itself, and
grants user JWTs signed by the configured issuer account key, placing users into an
account named by the JWT's audience.

Why it matters: the callout is how NATS deployments plug in an identity provider (LDAP,
OAuth, a database) without copying users into the server's config. The service is the
user's own code, written against nats-server; it must work unchanged here."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import nats
import pytest

import jwtutil as J
import nkeys_shim

nkeys_shim.install()  # nats-py signs nonces with ``nkeys`` (the shim when not installed)
from natsutil import RawConn, assert_no_msg, async_test, monz, next_msgs, sync

PASSWORDS = {"bob": "secret", "carol": "pw2", "dave": "pw3", "erin": "pw4", "local": "lpw"}


def decode_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Service:
    """The callout service: ``grants`` maps a user name to the user JWT claims to grant
    (``aud`` is the account); a wrong password or an unknown user gets an error answer.
    ``signer`` signs (the issuer, unless a test swaps it). Every request is kept."""

    def __init__(self):
        self.issuer = J.account_key()
        self.signer = self.issuer
        self.requests: list[dict] = []
        self.grants = {
            "bob": {"aud": "APP", "name": "bob-from-idp",
                    "nats": {"pub": {"allow": ["app.>", "_INBOX.>"]},
                             "sub": {"allow": ["app.>", "_INBOX.>"]}}},
            "carol": {"aud": "APP", "nats": {}},
            "dave": {"aud": "NOWHERE", "nats": {}},
            "erin": {"aud": "APP", "nats": {}},
            "local": {"aud": "APP", "nats": {}},
        }
        self.nc = None
        self.delay = 0.0

    def config(self, extra: str = "", top: str = "") -> str:
        return (
            f"{top}\n"
            "accounts {\n"
            "  AUTH { users: [ { user: auth, password: pwd } ] }\n"
            "  APP { users: [ { user: local, password: lpw } ] }\n"
            "}\n"
            "authorization {\n"
            "  timeout: 1\n"
            f"  auth_callout {{ issuer: {self.issuer.public}, auth_users: [ auth ],"
            f" account: AUTH\n    {extra}\n  }}\n"
            "}\n"
        )

    async def start(self, server):
        self.nc = await nats.connect(server.url, user="auth", password="pwd",
                                     allow_reconnect=False)
        await self.nc.subscribe("$SYS.REQ.USER.AUTH", cb=self.handle)
        await sync(self.nc)

    async def handle(self, msg):
        req = decode_claims(msg.data.decode())
        self.requests.append(req)
        if self.delay:
            await asyncio.sleep(self.delay)
        n = req["nats"]
        user_nkey = n["user_nkey"]
        server_id = n["server_id"]["id"]
        opts = n["connect_opts"]
        user = opts.get("user", "")
        answer = {"type": "authorization_response", "version": 2}
        if PASSWORDS.get(user) == opts.get("pass") and user in self.grants:
            g = self.grants[user]
            claims = {"sub": user_nkey, "aud": g["aud"],
                      "nats": {"type": "user", "version": 2, **g["nats"]}}
            if "name" in g:
                claims["name"] = g["name"]
            if "exp" in g:
                claims["exp"] = g["exp"]
            answer["jwt"] = J.encode(claims, self.signer)
        else:
            answer["error"] = f"bad credentials for {user!r}"
        await msg.respond(J.encode({"sub": user_nkey, "aud": server_id, "nats": answer},
                                   self.signer).encode())

    async def close(self):
        if self.nc is not None:
            await self.nc.close()


async def connect(server, user: str, password: str, **kw):
    errors: list = []

    async def on_error(e):
        errors.append(e)

    nc = await nats.connect(server.url, user=user, password=password, allow_reconnect=False,
                            connect_timeout=3, error_cb=on_error, **kw)
    nc.test_errors = errors  # type: ignore[attr-defined]
    return nc


async def refused(server, user: str, password: str) -> str:
    try:
        nc = await connect(server, user, password)
    except Exception as e:  # noqa: BLE001 - nats-py raises several kinds here
        return str(e).lower()
    await nc.close()
    raise AssertionError(f"{user} was admitted")


@async_test()
async def test_service_admits_and_places_users(start_server):
    svc = Service()
    server = start_server(config=svc.config() + "\nhttp_port: -1\n")
    await svc.start(server)
    try:
        bob = await connect(server, "bob", "secret")
        carol = await connect(server, "carol", "pw2")
        local = await connect(server, "local", "lpw")
        try:
            # bob and carol are in APP (the JWT's audience), with the configured local
            # user of APP, and not in AUTH.
            s_carol = await carol.subscribe("app.news")
            s_local = await local.subscribe("app.news")
            s_auth = await svc.nc.subscribe("app.news")
            for nc in (carol, local, svc.nc):
                await sync(nc)
            await bob.publish("app.news", b"hello")
            await sync(bob)
            assert (await next_msgs(s_carol, 1))[0].data == b"hello"
            assert (await next_msgs(s_local, 1))[0].data == b"hello"
            await assert_no_msg(s_auth)
            # bob's permissions come from his JWT.
            await bob.publish("elsewhere", b"x")
            await sync(bob)
            await asyncio.sleep(0.2)
            assert any('permissions violation for publish to "elsewhere"' in str(e).lower()
                       for e in bob.test_errors), bob.test_errors
            # Monitoring names bob by his JWT's name; carol's JWT has none.
            conns = (await monz(server, "/connz?auth=1"))["connections"]
            users = sorted((c.get("authorized_user"), c.get("account")) for c in conns)
            assert ("bob-from-idp", "APP") in users, users
            assert ("auth", "AUTH") in users, users
            assert ("local", "APP") in users, users
            # The configured local user went to the service too (all accounts are
            # delegated without allowed_accounts), as did bob and carol.
            asked = [r["nats"]["connect_opts"].get("user") for r in svc.requests]
            assert asked == ["bob", "carol", "local"], asked
        finally:
            for nc in (bob, carol, local):
                await nc.close()
    finally:
        await svc.close()


@async_test()
async def test_request_claims(start_server):
    svc = Service()
    server = start_server(config=svc.config())
    await svc.start(server)
    try:
        nc = await connect(server, "carol", "pw2", name="probe")
        info = nc._server_info
        await nc.close()
        [req] = svc.requests
        assert req["aud"] == "nats-authorization-request"
        assert req["sub"] == svc.issuer.public
        assert req["iss"] == info["server_id"]
        assert req["exp"] > time.time() - 5
        n = req["nats"]
        assert (n["type"], n["version"]) == ("authorization_request", 2)
        assert n["user_nkey"].startswith("U")
        assert n["server_id"]["id"] == info["server_id"]
        assert n["server_id"]["name"] == info["server_name"]
        assert n["server_id"]["version"] == "2.15.1"
        assert "xkey" not in n["server_id"]
        ci = n["client_info"]
        assert ci["host"] == "127.0.0.1"
        assert (ci["user"], ci["name"], ci["kind"], ci["type"]) == (
            "carol", "probe", "Client", "nats")
        assert ci["id"] == info["client_id"]
        co = n["connect_opts"]
        assert (co["user"], co["pass"], co["name"], co["lang"]) == (
            "carol", "pw2", "probe", "python3")
        assert co["protocol"] == 1
        # INFO always carries the server's curve key.
        assert info.get("xkey", "").startswith("X"), info
    finally:
        await svc.close()


@async_test()
async def test_refusals(start_server):
    svc = Service()
    server = start_server(config=svc.config())
    await svc.start(server)
    try:
        # The service's error answer, an unknown placement account, a wrong password
        # of the service's own user (not delegated: it just fails).
        assert "authorization violation" in await refused(server, "bob", "wrong")
        assert "authorization violation" in await refused(server, "dave", "pw3")
        assert "authorization violation" in await refused(server, "auth", "nope")
        # A user JWT signed by another account key than the configured issuer.
        svc.signer = J.account_key()
        assert "authorization violation" in await refused(server, "carol", "pw2")
        svc.signer = svc.issuer
        # After all that, a good login still works.
        nc = await connect(server, "carol", "pw2")
        await nc.close()
        # With the service gone, logins are refused (after the auth timeout).
        await svc.close()
        svc.nc = None
        assert "authorization violation" in await refused(server, "carol", "pw2")
    finally:
        await svc.close()


@async_test()
async def test_service_users_may_not_publish_requests(start_server):
    svc = Service()
    server = start_server(config=svc.config())
    await svc.start(server)
    other = await connect(server, "auth", "pwd")
    try:
        await other.publish("$SYS.REQ.USER.AUTH", b"forged")
        await sync(other)
        await asyncio.sleep(0.2)
        assert any('permissions violation for publish to "$sys.req.user.auth"'
                   in str(e).lower() for e in other.test_errors), other.test_errors
        assert svc.requests == []
    finally:
        await other.close()
        await svc.close()


@async_test()
async def test_allowed_accounts(start_server):
    svc = Service()
    # Only logins into AUTH go to the service: APP's configured user keeps its login,
    # and a name no account knows still goes (it is bound to $G).
    server = start_server(config=svc.config("allowed_accounts: [ AUTH ]"))
    await svc.start(server)
    try:
        local = await connect(server, "local", "lpw")
        await local.close()
        carol = await connect(server, "carol", "pw2")
        await carol.close()
        asked = [r["nats"]["connect_opts"].get("user") for r in svc.requests]
        assert asked == ["carol"], asked
    finally:
        await svc.close()


@async_test()
async def test_an_expiring_grant_disconnects(start_server):
    svc = Service()
    svc.grants["erin"]["exp"] = int(time.time()) + 2
    server = start_server(config=svc.config())
    await svc.start(server)
    try:
        nc = await connect(server, "erin", "pw4")
        for _ in range(80):
            if nc.is_closed:
                break
            await asyncio.sleep(0.1)
        seen = [str(e).lower() for e in [*nc.test_errors, nc.last_error] if e]
        assert any("authentication expired" in e for e in seen), seen
    finally:
        await svc.close()


def test_config_errors(run_server_to_exit):
    issuer = J.account_key().public
    cases = [
        ("authorization { auth_callout { issuer: NOTAKEY, auth_users: [a] } }",
         "valid public account nkey"),
        ("authorization { auth_callout { auth_users: [a] } }", "require an issuer"),
        (f"authorization {{ auth_callout {{ issuer: {issuer} }} }}",
         "require authorized users"),
        (f"authorization {{ auth_callout {{ issuer: {issuer}, auth_users: [a], xkey: BAD }} }}",
         "valid public xkey"),
        (f"authorization {{ auth_callout {{ issuer: {issuer}, auth_users: [a], bogus: 1 }} }}",
         "unknown field"),
        ("accounts { A { users: [ {user: a, password: p} ] } }\n"
         f"authorization {{ auth_callout {{ issuer: {issuer}, auth_users: [a], account: A,"
         " allowed_accounts: [ NOPE ] } }",
         'allowed account "nope" not found'),
    ]
    for config, want in cases:
        rc, out, err = run_server_to_exit(config)
        assert rc not in (0, None), (config, rc, out, err)
        assert want in (out + err).lower(), (config, out + err)


@pytest.mark.parametrize("impl", ["natrium"])
@async_test()
async def test_requests_are_sealed_with_xkey(impl, start_server):
    """A sealed request decrypts with the service's curve key: shown with natrium only,
    since Python has no NaCl box here; the Rust test `auth_callout.rs` seals answers and
    checks both directions."""
    svc = Service()
    service_x = nkeys_shim.encode_public(23 << 3, os.urandom(32)).decode()  # an X key
    server = start_server(config=svc.config(f"xkey: {service_x}"))
    raw = await nats.connect(server.url, user="auth", password="pwd", allow_reconnect=False)
    try:
        sub = await raw.subscribe("$SYS.REQ.USER.AUTH")
        await sync(raw)
        attempt = asyncio.ensure_future(connect(server, "carol", "pw2"))
        msg = await sub.next_msg(timeout=5)
        assert msg.headers and msg.headers.get("Nats-Server-Xkey", "").startswith("X")
        assert msg.data.startswith(b"xkv1"), msg.data[:10]
        with pytest.raises(Exception):  # noqa: B017 - refused once the timeout passes
            await attempt
    finally:
        await raw.close()


class OperatorCallout:
    """Operator mode: account AUTH's JWT delegates its logins (``authorization`` with the
    service's user key in ``auth_users`` and APP as an allowed account). Clients log in
    with AUTH's sentinel user (a bearer JWT allowed nothing); the service decides by the
    client's ``name`` and issues a user JWT from AUTH or from APP, which places the user
    there. OTHER is an account the callout may not use."""

    def __init__(self):
        self.op = J.operator_key()
        self.sys = J.account_key()
        self.auth = J.account_key()
        self.app = J.account_key()
        self.other = J.account_key()
        self.service_user = J.user_key()
        self.sentinel = J.user_key()
        self.requests: list[dict] = []
        self.nc = None

    def config(self, **authorization) -> str:
        auth = J.account_jwt(self.op, self.auth, name="AUTH", authorization={
            "auth_users": [self.service_user.public],
            "allowed_accounts": [self.app.public], **authorization})
        preload = {
            self.sys.public: J.account_jwt(self.op, self.sys, name="SYS"),
            self.auth.public: auth,
            self.app.public: J.account_jwt(self.op, self.app, name="APP"),
            self.other.public: J.account_jwt(self.op, self.other, name="OTHER"),
        }
        return J.operator_config(J.operator_jwt(self.op, system_account=self.sys.public),
                                 preload)

    def sentinel_jwt(self) -> str:
        return J.user_jwt(self.auth, self.sentinel, name="sentinel", bearer_token=True,
                          **{"pub": {"deny": [">"]}, "sub": {"deny": [">"]}})

    async def start(self, server, tmp_path):
        creds = J.creds_file(tmp_path / "service.creds",
                             J.user_jwt(self.auth, self.service_user, name="service"),
                             self.service_user)
        self.nc = await nats.connect(server.url, user_credentials=creds, allow_reconnect=False)
        await self.nc.subscribe("$SYS.REQ.USER.AUTH", cb=self.handle)
        await sync(self.nc)

    async def handle(self, msg):
        req = decode_claims(msg.data.decode())
        self.requests.append(req)
        n = req["nats"]
        user_nkey, server_id = n["user_nkey"], n["server_id"]["id"]
        who = n["connect_opts"].get("name", "")
        issuers = {"bob": self.app, "carol": self.auth, "stranger": self.other}
        answer = {"type": "authorization_response", "version": 2}
        if who in issuers:
            answer["jwt"] = J.encode({"sub": user_nkey, "name": who,
                                      "nats": {"type": "user", "version": 2}}, issuers[who])
        else:
            answer["error"] = f"no such user {who!r}"
        await msg.respond(J.encode({"sub": user_nkey, "aud": server_id, "nats": answer},
                                   self.auth).encode())

    async def login(self, server, tmp_path, name: str):
        creds = J.creds_file(tmp_path / "sentinel.creds", self.sentinel_jwt(), self.sentinel)
        return await nats.connect(server.url, user_credentials=creds, name=name,
                                  allow_reconnect=False, connect_timeout=3)


@async_test()
async def test_operator_mode_callout(start_server, tmp_path):
    t = OperatorCallout()
    server = start_server(config=t.config())
    await t.start(server, tmp_path)
    app_user = J.user_key()
    native = await nats.connect(
        server.url, allow_reconnect=False,
        user_credentials=J.creds_file(tmp_path / "app.creds", J.user_jwt(t.app, app_user),
                                      app_user))
    try:
        # bob's JWT comes from APP: he lands in APP, next to APP's own users.
        bob = await t.login(server, tmp_path, "bob")
        carol = await t.login(server, tmp_path, "carol")
        try:
            s_native = await native.subscribe("news")
            s_carol = await carol.subscribe("news")
            await sync(native)
            await sync(carol)
            await bob.publish("news", b"from bob")
            await sync(bob)
            assert (await next_msgs(s_native, 1))[0].data == b"from bob"
            # carol's JWT comes from AUTH: she is in AUTH, apart from APP.
            await assert_no_msg(s_carol)
            await carol.publish("news", b"from carol")
            await sync(carol)
            assert (await next_msgs(s_carol, 1))[0].data == b"from carol"
            await assert_no_msg(s_native)
        finally:
            await bob.close()
            await carol.close()
        # Refused by the service, and a JWT from an account the callout may not use.
        for name in ("mallory", "stranger"):
            with pytest.raises(Exception) as e:  # noqa: B017 - nats-py raises several kinds
                await t.login(server, tmp_path, name)
            assert "authorization violation" in str(e.value).lower(), e.value
        # What the service was asked: about AUTH, with the sentinel's JWT.
        req = t.requests[0]
        assert req["sub"] == t.auth.public
        assert req["nats"]["connect_opts"]["jwt"] == t.sentinel_jwt() or \
            decode_claims(req["nats"]["connect_opts"]["jwt"])["sub"] == t.sentinel.public
        assert [r["nats"]["connect_opts"]["name"] for r in t.requests] == [
            "bob", "carol", "mallory", "stranger"]
    finally:
        await native.close()
        await t.nc.close()


@async_test()
async def test_the_no_auth_user_goes_to_the_service(start_server):
    """A client without credentials is the no_auth_user, and that login is the
    service's to decide too: before an op sent ahead of CONNECT is handled, and with
    the no_auth_user's name and password in the request (nats-server fills them in)."""
    svc = Service()
    svc.grants.pop("local")  # the service refuses the no_auth_user
    server = start_server(config=svc.config(top="no_auth_user: local"))
    await svc.start(server)
    try:
        # PING before any CONNECT: refused, after asking the service.
        raw = await RawConn.open(server.port)
        await raw.send(b"PING\r\n")
        assert (await raw.read_line()).startswith(b"-ERR 'Authorization Violation'")
        raw.close()
        [req] = svc.requests
        co = req["nats"]["connect_opts"]
        assert (co.get("user"), co.get("pass")) == ("local", "lpw"), co
        assert req["nats"]["client_info"]["user"] == "local"
        # CONNECT {} once the service admits the no_auth_user: in, as it grants.
        svc.grants["local"] = {"aud": "APP", "nats": {}}
        raw = await RawConn.open(server.port)
        await raw.handshake()
        raw.close()
        assert len(svc.requests) == 2
    finally:
        await svc.close()


@async_test()
async def test_a_forged_request_before_connect_is_denied(start_server):
    """With the service's own user as the no_auth_user, a publish to the callout subject
    sent ahead of CONNECT meets the callout account's deny, as after CONNECT."""
    svc = Service()
    server = start_server(config=svc.config(top="no_auth_user: auth"))
    await svc.start(server)
    try:
        raw = await RawConn.open(server.port)
        await raw.send(b"PUB $SYS.REQ.USER.AUTH 6\r\nforged\r\nPING\r\n")
        lines = [await raw.read_line()]
        while lines[-1] != b"PONG\r\n":
            lines.append(await raw.read_line())
        assert any(b"Permissions Violation" in line for line in lines), lines
        raw.close()
        await asyncio.sleep(0.2)
        assert svc.requests == []
    finally:
        await svc.close()


@async_test()
async def test_request_names_tokens_and_server_tags(start_server):
    svc = Service()
    server = start_server(config=svc.config(top="server_tags: [\"region:eu\", \"tier:1\"]"))
    await svc.start(server)
    try:
        raw = await RawConn.open(server.port)
        await raw.send(b'CONNECT {"auth_token":"s3cret","verbose":false}\r\nPING\r\n')
        assert (await raw.read_line()).startswith(b"-ERR 'Authorization Violation'")
        raw.close()
        [req] = svc.requests
        n = req["nats"]
        assert n["client_info"]["user"] == "[REDACTED]", n["client_info"]
        assert n["connect_opts"]["auth_token"] == "s3cret"
        assert n["server_id"]["tags"] == ["region:eu", "tier:1"], n["server_id"]
    finally:
        await svc.close()


@async_test()
async def test_the_service_has_the_auth_timeout_from_connect(start_server):
    """The auth timer stops at CONNECT: a client that took most of the timeout to send
    CONNECT still gets the service's answer, which takes most of it again."""
    svc = Service()
    svc.delay = 0.6
    server = start_server(config=svc.config())
    await svc.start(server)
    try:
        raw = await RawConn.open(server.port)
        await asyncio.sleep(0.6)
        await raw.handshake(user="carol", **{"pass": "pw2"})
        raw.close()
    finally:
        await svc.close()


@async_test()
async def test_operator_mode_service_may_not_publish_requests(start_server, tmp_path):
    t = OperatorCallout()
    server = start_server(config=t.config())
    await t.start(server, tmp_path)
    errors: list = []

    async def on_error(e):
        errors.append(e)

    creds = J.creds_file(tmp_path / "svc2.creds",
                         J.user_jwt(t.auth, t.service_user, name="service"), t.service_user)
    nc = await nats.connect(server.url, user_credentials=creds, allow_reconnect=False,
                            error_cb=on_error)
    try:
        await nc.publish("$SYS.REQ.USER.AUTH", b"forged")
        await sync(nc)
        await asyncio.sleep(0.2)
        assert any('permissions violation for publish to "$sys.req.user.auth"'
                   in str(e).lower() for e in errors), errors
        assert t.requests == []
    finally:
        await nc.close()
        await t.nc.close()


@async_test()
async def test_operator_mode_bad_xkey_refuses_instead_of_sending_in_the_clear(start_server,
                                                                                tmp_path):
    """An account JWT whose callout xkey is not a curve key: both servers start (with a
    warning), and a sentinel login is refused without any request reaching the service
    unsealed. (nats-server also refuses the service's own login then; natrium admits it,
    docs/compat.md.)"""
    t = OperatorCallout()
    server = start_server(config=t.config(xkey="XBAD"))
    try:
        await t.start(server, tmp_path)
    except Exception:  # noqa: BLE001 - nats-server refuses the service's own login too
        assert server.impl == "nats-server"
    try:
        with pytest.raises(Exception) as e:  # noqa: B017 - nats-py raises several kinds
            await t.login(server, tmp_path, "carol")
        assert "authorization violation" in str(e.value).lower(), e.value
        await asyncio.sleep(0.2)
        assert t.requests == []
        assert "validation issues" in server.log().lower()
    finally:
        if t.nc is not None:
            await t.nc.close()


@async_test()
async def test_request_carries_the_client_certificate(start_server):
    """Over TLS with client certificates verified, the request's `client_tls` says the
    version and cipher and carries the client's certificate, leaf first, in the
    verified chain (nats-server appends the CA it verified against; natrium sends the
    chain the client presented, docs/compat.md)."""
    import ssl
    from pathlib import Path

    tls_dir = Path(__file__).resolve().parents[1] / "data" / "tls"
    tls = (f'tls {{ cert_file: "{tls_dir / "server-cert.pem"}", '
           f'key_file: "{tls_dir / "server-key.pem"}", verify: true, '
           f'ca_file: "{tls_dir / "ca.pem"}" }}')
    ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    ctx.load_cert_chain(str(tls_dir / "client-cert.pem"), str(tls_dir / "client-key.pem"))
    svc = Service()
    server = start_server(config=svc.config(top=tls))
    svc.nc = await nats.connect(server.url, user="auth", password="pwd", tls=ctx,
                                allow_reconnect=False)
    await svc.nc.subscribe("$SYS.REQ.USER.AUTH", cb=svc.handle)
    await sync(svc.nc)
    try:
        nc = await nats.connect(server.url, user="carol", password="pw2", tls=ctx,
                                allow_reconnect=False)
        await nc.close()
        [req] = svc.requests
        t = req["nats"]["client_tls"]
        assert t["version"] == "1.3" and t["cipher"].startswith("TLS_"), t
        leaf = (tls_dir / "client-cert.pem").read_text()
        assert t["verified_chains"][0][0].strip() == leaf.strip(), t
        assert "certs" not in t, t
    finally:
        await svc.close()


@async_test()
async def test_a_reload_closes_a_single_user_service(start_server):
    """The service logged in as the single `authorization { user }` of the callout
    account (`$G` by default) is denied the callout subject, and a reload closes its
    connection, as nats-server closes it (the client reconnects)."""
    import signal

    svc = Service()
    config = (
        "authorization {\n"
        "  user: auth\n  password: pwd\n  timeout: 1\n"
        f"  auth_callout {{ issuer: {svc.issuer.public}, auth_users: [ auth ] }}\n"
        "}\n"
    )
    server = start_server(config=config)
    errors: list = []

    async def on_error(e):
        errors.append(e)

    nc = await nats.connect(server.url, user="auth", password="pwd", allow_reconnect=False,
                            error_cb=on_error)
    try:
        await nc.publish("$SYS.REQ.USER.AUTH", b"forged")
        await sync(nc)
        await asyncio.sleep(0.2)
        assert any('permissions violation for publish to "$sys.req.user.auth"'
                   in str(e).lower() for e in errors), errors
        server.proc.send_signal(signal.SIGHUP)
        for _ in range(50):
            if nc.is_closed:
                break
            await asyncio.sleep(0.1)
        assert nc.is_closed
        assert "Reloaded server configuration" in server.log(), server.log()[-2000:]
    finally:
        await nc.close()


def test_auth_callout_in_an_operator_config_is_refused(run_server_to_exit):
    t = OperatorCallout()
    issuer = J.account_key().public
    config = t.config() + (f"authorization {{ auth_callout {{ issuer: {issuer},"
                           " auth_users: [ a ] } }\n")
    rc, out, err = run_server_to_exit(config)
    assert rc not in (0, None), (rc, out, err)
    assert "operators do not allow authorization callouts to be configured directly" in (
        out + err).lower(), out + err
