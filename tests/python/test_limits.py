"""Limits: max_payload and slow consumers, against natrium-server and nats-server."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from natsutil import RawConn, async_test, connect, sync

SMALL_PAYLOAD_CONF = "max_payload: 1KB\n"


@async_test()
async def test_max_payload_client_side(start_server):
    server = start_server(config=SMALL_PAYLOAD_CONF)
    nc = await connect(server.url)
    try:
        assert nc.max_payload == 1024
        sub = await nc.subscribe("mp")
        await sync(nc)
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.publish("mp", b"x" * 1025)
        # Exactly max_payload is fine and is delivered.
        await nc.publish("mp", b"y" * 1024)
        m = await sub.next_msg(timeout=5)
        assert m.data == b"y" * 1024
        assert nc.is_connected
    finally:
        await nc.close()


@async_test()
async def test_max_payload_server_side(start_server):
    """A client that ignores max_payload gets -ERR 'Maximum Payload Violation' and EOF."""
    server = start_server(config=SMALL_PAYLOAD_CONF)
    c = await RawConn.open(server.port)
    try:
        assert c.info["max_payload"] == 1024
        await c.handshake()
        await c.send(b"PUB foo 2000\r\n")
        rest = await c.read_to_eof(timeout=5)
        assert rest == b"-ERR 'Maximum Payload Violation'\r\n"
    finally:
        c.close()


SLOW_CONF = """
max_payload: 8KB
max_pending: 64KB
write_deadline: "2s"
"""


@async_test(timeout=90)
async def test_slow_consumer_disconnected(start_server):
    server = start_server(config=SLOW_CONF)
    # Subscriber with a tiny receive window that never reads after the handshake.
    slow = await RawConn.open(server.port, rcvbuf=4096)
    pub = await connect(server.url, pending_size=1 << 20)
    third = await connect(server.url)
    try:
        await slow.handshake()
        await slow.send(b"SUB big 1\r\nPING\r\n")
        await slow.read_until(b"PONG\r\n")

        tsub = await third.subscribe("side")
        await sync(third)

        payload = b"x" * 1000
        msg_len = len(b"MSG big 1 1000\r\n") + len(payload) + 2
        sent = 0
        max_batches = 200  # at most 200 * 500 KB = 100 MB
        t_end = time.monotonic() + 30
        for _ in range(max_batches):
            for _ in range(500):
                await pub.publish("big", payload)
            sent += 500
            await sync(pub, timeout=10)
            if time.monotonic() > t_end:
                break
            # Stop once the server has certainly had to buffer far beyond max_pending.
            if sent * msg_len > 32 * 1024 * 1024:
                break

        # The publisher and an unrelated client keep working.
        assert pub.is_connected
        await pub.publish("side", b"still here")
        await sync(pub, timeout=5)
        assert (await tsub.next_msg(timeout=5)).data == b"still here"
        resp_sub = await third.subscribe("svc")

        async def respond():
            m = await resp_sub.next_msg(timeout=5)
            await third.publish(m.reply, b"pong")

        await sync(third)
        t = asyncio.create_task(respond())
        r = await pub.request("svc", b"ping", timeout=5)
        await t
        assert r.data == b"pong"

        # The slow subscriber was cut off: draining its socket ends in EOF, well short of
        # everything that was published, and nats-server sends it no -ERR.
        data = await slow.read_to_eof(timeout=20)
        assert len(data) < sent * msg_len, (len(data), sent * msg_len)
        assert b"-ERR" not in data
        # Both servers log the reason the same way.
        want = "Slow Consumer Detected: MaxPending of 65536 Exceeded"
        deadline = time.monotonic() + 5
        while want not in server.log() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert want in server.log()
    finally:
        slow.close()
        await pub.close()
        await third.close()
