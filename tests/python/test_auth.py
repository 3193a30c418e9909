"""Single-user and token authentication from the command line (--user/--pass, --auth)."""

from __future__ import annotations

import nats
import pytest

from natsutil import RawConn, async_test, connect, sync


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
