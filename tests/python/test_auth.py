"""Authentication: single user and token from the command line (--user/--pass, --auth),
then every method of the config file's ``authorization`` block (users lists with plain
and bcrypt passwords, nkeys, tokens), ``no_auth_user`` and the auth timeout. The config
tests give both servers the same config text."""

from __future__ import annotations

import base64
import time

import nats
import pytest

import nkeys_shim
from natsutil import RawConn, assert_no_msg, async_test, connect, connect_op, sync

# nats-py signs nonces with the `nkeys` package, which it does not depend on and the
# pinned requirements do not install: fall back to a pure-Python implementation.
nkeys_shim.install()


async def roundtrip(nc) -> None:
    sub = await nc.subscribe("auth.rt")
    await sync(nc)
    await nc.publish("auth.rt", b"ok")
    assert (await sub.next_msg(timeout=5)).data == b"ok"


async def assert_auth_rejected(url: str, **kw) -> None:
    with pytest.raises(nats.errors.Error) as ei:
        nc = await connect(url, **kw)
        await nc.close()
    assert "Authorization Violation" in str(ei.value), repr(ei.value)


@async_test()
async def test_user_password(start_server):
    server = start_server(args=["--user", "alice", "--pass", "s3cret"])
    nc = await connect(server.url, user="alice", password="s3cret")
    try:
        assert nc._server_info.get("auth_required") is True
        await roundtrip(nc)
    finally:
        await nc.close()
    # Credentials in the URL.
    nc = await connect(f"nats://alice:s3cret@127.0.0.1:{server.port}")
    try:
        await roundtrip(nc)
    finally:
        await nc.close()
    await assert_auth_rejected(server.url, user="alice", password="wrong")
    await assert_auth_rejected(server.url, user="mallory", password="s3cret")
    await assert_auth_rejected(server.url)
    await assert_auth_rejected(server.url, token="s3cret")


@async_test()
async def test_user_password_raw(start_server):
    """Exact bytes of a rejected CONNECT: the error, then EOF."""
    server = start_server(args=["--user", "alice", "--pass", "s3cret"])
    c = await RawConn.open(server.port)
    try:
        assert c.info["auth_required"] is True
        await c.send(b'CONNECT {"verbose":false,"user":"alice","pass":"nope"}\r\nPING\r\n')
        assert await c.read_to_eof(timeout=5) == b"-ERR 'Authorization Violation'\r\n"
    finally:
        c.close()


@async_test()
async def test_token(start_server):
    server = start_server(args=["--auth", "t0ken-xyz"])
    nc = await connect(server.url, token="t0ken-xyz")
    try:
        assert nc._server_info.get("auth_required") is True
        await roundtrip(nc)
    finally:
        await nc.close()
    nc = await connect(f"nats://t0ken-xyz@127.0.0.1:{server.port}")
    try:
        await roundtrip(nc)
    finally:
        await nc.close()
    await assert_auth_rejected(server.url, token="wrong")
    await assert_auth_rejected(server.url)
    await assert_auth_rejected(server.url, user="t0ken-xyz", password="x")


@async_test()
async def test_no_auth_server_accepts_anything(server):
    """Without auth configured, credentials are ignored and INFO has no auth_required."""
    nc = await connect(server.url, user="who", password="ever")
    try:
        assert not nc._server_info.get("auth_required", False)
        await roundtrip(nc)
    finally:
        await nc.close()


# --- config file authorization ---------------------------------------------------------

# bcrypt hashes of "pass", made with Python's crypt(3) and checked against nats-server.
# One with the usual cost 11 (slow in a debug build: used for one login only), the others
# with cost 6 to keep the suite fast.
BCRYPT_2A_COST11 = "$2a$11$xH3ZkWvCBuC7LH0yK5OeK.uNmaobOxiUteh/h.BSFnQ.sVWiE5RmK"
BCRYPT_2A = "$2a$06$Kq3vL0cEo9uQwXyZaBcDeOj8kmIXEFJUrcNDijP9de72wf6tLNJBm"
BCRYPT_2B = "$2b$06$Kq3vL0cEo9uQwXyZaBcDeOj8kmIXEFJUrcNDijP9de72wf6tLNJBm"
# Fixed user nkeys (seed, public key), made with nkeys_shim.new_user().
NKEY_SEED = "SUABKIJTDVWIMSFMOYGZ3WFS6KSVYTM2WWJQUUFAFLEOYDVG7LWEHYJWCU"
NKEY_PUB = "UC2BZRPE7UFCB3G3CDPDHVF76YO6LNUDJRFPWGCAIAMKNDF6ZWHXPIHS"
OTHER_SEED = "SUAOKI4RZZR7UPL4BBAVEEIC44PRZND22DJSGGFC7FEFFTUWGLQ54PWE6E"
OTHER_PUB = "UDIF7KZ6HLQQK5B3OMKCUZCUWZPKQPAWJ7STOEB3RO2YPZGU67L35K7W"

USERS_CONF = f"""
authorization {{
  users: [
    {{user: alice, password: s3cret}}
    {{user: bob, password: "{BCRYPT_2A_COST11}"}}
    {{user: carol, password: "{BCRYPT_2B}"}}
    {{user: dave, password: "{BCRYPT_2A}"}}
    {{nkey: {NKEY_PUB}}}
  ]
}}
"""

AUTH_VIOLATION = "nats: 'Authorization Violation'"


async def assert_connect_error(url: str, expected: str = AUTH_VIOLATION, **kw) -> None:
    """The exact error nats-py raises for a refused CONNECT."""
    with pytest.raises(nats.errors.Error) as ei:
        nc = await connect(url, **kw)
        await nc.close()
    assert str(ei.value) == expected, repr(ei.value)


def nkey_sig(seed: str, nonce: str) -> str:
    return base64.urlsafe_b64encode(nkeys_shim.from_seed(seed.encode()).sign(nonce.encode())).rstrip(b"=").decode()


@async_test()
async def test_config_users_list(start_server):
    """Plain password, bcrypt ($2a$ and $2b$) and nkey users of one users list."""
    server = start_server(USERS_CONF)
    for kw in (
        dict(user="alice", password="s3cret"),
        dict(user="bob", password="pass"),
        dict(user="carol", password="pass"),
        dict(user="dave", password="pass"),
        dict(nkeys_seed_str=NKEY_SEED),
    ):
        nc = await connect(server.url, **kw)
        try:
            info = nc._server_info
            assert info.get("auth_required") is True
            # nkey users configured: every INFO carries a nonce to sign.
            assert isinstance(info.get("nonce"), str) and len(info["nonce"]) == 15, info
            await roundtrip(nc)
        finally:
            await nc.close()
    for kw in (
        dict(user="alice", password="wrong"),
        dict(user="alice", password="S3CRET"),
        dict(user="carol", password="wrong"),
        dict(user="dave", password=BCRYPT_2A),  # the hash itself is not the password
        dict(user="mallory", password="pass"),
        dict(token="s3cret"),
        dict(nkeys_seed_str=OTHER_SEED),
        dict(),
    ):
        await assert_connect_error(server.url, **kw)


@pytest.mark.parametrize("case", [
    "wrong-password", "bcrypt-hash-as-password", "unknown-user", "no-credentials",
    "token", "nkey-no-sig", "nkey-bad-sig", "nkey-sig-by-other-key", "nkey-unknown",
])
@async_test()
async def test_config_users_rejected_raw(start_server, case):
    """Exact bytes of each refused CONNECT: the error, then EOF."""
    server = start_server(USERS_CONF)
    c = await RawConn.open(server.port)
    try:
        nonce = c.info["nonce"]
        fields = {
            "wrong-password": dict(user="alice", **{"pass": "nope"}),
            "bcrypt-hash-as-password": dict(user="dave", **{"pass": BCRYPT_2A}),
            "unknown-user": dict(user="mallory", **{"pass": "pass"}),
            "no-credentials": dict(),
            "token": dict(auth_token="s3cret"),
            "nkey-no-sig": dict(nkey=NKEY_PUB),
            "nkey-bad-sig": dict(nkey=NKEY_PUB, sig="AAAA"),
            "nkey-sig-by-other-key": dict(nkey=NKEY_PUB, sig=nkey_sig(OTHER_SEED, nonce)),
            "nkey-unknown": dict(nkey=OTHER_PUB, sig=nkey_sig(OTHER_SEED, nonce)),
        }[case]
        await c.send(connect_op(**fields) + b"PING\r\n")
        assert await c.read_to_eof(timeout=5) == b"-ERR 'Authorization Violation'\r\n"
    finally:
        c.close()


@async_test()
async def test_config_single_user_bcrypt(start_server):
    server = start_server(f'authorization {{ user: alice, password: "{BCRYPT_2A}" }}')
    nc = await connect(server.url, user="alice", password="pass")
    try:
        assert "nonce" not in nc._server_info
        await roundtrip(nc)
    finally:
        await nc.close()
    await assert_connect_error(server.url, user="alice", password=BCRYPT_2A)
    await assert_connect_error(server.url, user="bob", password="pass")


@pytest.mark.parametrize("case", ["plain", "bcrypt"])
@async_test()
async def test_config_token(start_server, case):
    secret, token = {"plain": ("t0ken", "t0ken"), "bcrypt": (BCRYPT_2A, "pass")}[case]
    server = start_server(f'authorization {{ token: "{secret}" }}')
    nc = await connect(server.url, token=token)
    try:
        assert nc._server_info.get("auth_required") is True
        await roundtrip(nc)
    finally:
        await nc.close()
    await assert_connect_error(server.url, token=token + "x")
    await assert_connect_error(server.url, user=token, password=token)
    await assert_connect_error(server.url)
    if case == "bcrypt":
        await assert_connect_error(server.url, token=BCRYPT_2A)


ACCOUNT_AUTH_CONF = f"""
accounts {{
  A {{ users: [{{user: a, password: a}}, {{nkey: {NKEY_PUB}}}] }}
  B {{ users: [{{user: b, password: "{BCRYPT_2A}"}}] }}
}}
no_auth_user: a
"""


@async_test()
async def test_account_users_and_no_auth_user(start_server):
    """Users of accounts (password, bcrypt, nkey) land in their account, as seen in the
    INFO after CONNECT; a client without credentials is the no_auth_user."""
    server = start_server(ACCOUNT_AUTH_CONF)
    cases = [
        ("password", lambda nonce: dict(user="a", **{"pass": "a"}), "A"),
        ("bcrypt", lambda nonce: dict(user="b", **{"pass": "pass"}), "B"),
        ("nkey", lambda nonce: dict(nkey=NKEY_PUB, sig=nkey_sig(NKEY_SEED, nonce)), "A"),
        ("no credentials", lambda nonce: dict(), "A"),
    ]
    for what, fields, account in cases:
        c = await RawConn.open(server.port)
        try:
            # A no_auth_user makes auth optional: INFO does not ask for it.
            assert "auth_required" not in c.info, c.info
            await c.handshake(**fields(c.info.get("nonce", "")))
            assert c.connect_info["remote_account"] == account, (what, c.connect_info)
        finally:
            c.close()
    # Wrong credentials are not turned into the no_auth_user.
    c = await RawConn.open(server.port)
    try:
        await c.send(connect_op(user="a", **{"pass": "wrong"}) + b"PING\r\n")
        assert await c.read_to_eof(timeout=5) == b"-ERR 'Authorization Violation'\r\n"
    finally:
        c.close()


@async_test()
async def test_no_auth_user_with_nats_py(start_server):
    server = start_server(ACCOUNT_AUTH_CONF)
    anon = await connect(server.url)
    a = await connect(server.url, user="a", password="a")
    nk = await connect(server.url, nkeys_seed_str=NKEY_SEED)
    b = await connect(server.url, user="b", password="pass")
    try:
        subs = [await nc.subscribe("acct.x") for nc in (anon, a, nk, b)]
        for nc in (anon, a, nk, b):
            await sync(nc)
        await anon.publish("acct.x", b"anon")
        await sync(anon)
        for sub in subs[:3]:
            assert (await sub.next_msg(timeout=5)).data == b"anon"
        await assert_no_msg(subs[3])
        await assert_connect_error(server.url, user="a", password="wrong")
        await assert_connect_error(server.url, user="b", password=BCRYPT_2A)
    finally:
        for nc in (anon, a, nk, b):
            await nc.close()


@async_test()
async def test_auth_timeout(start_server):
    """No CONNECT within authorization.timeout: the error, then EOF; a client that
    authenticated in time is not affected."""
    server = start_server("authorization { timeout: 0.5, users: [{user: a, password: a}] }")
    ok = await RawConn.open(server.port)
    try:
        await ok.handshake(user="a", **{"pass": "a"})
        c = await RawConn.open(server.port)
        try:
            t0 = time.monotonic()
            assert await c.read_to_eof(timeout=5) == b"-ERR 'Authentication Timeout'\r\n"
            elapsed = time.monotonic() - t0
            assert 0.3 <= elapsed <= 2.0, elapsed
        finally:
            c.close()
        await ok.send(b"PING\r\n")
        assert await ok.read_line() == b"PONG\r\n"
    finally:
        ok.close()
