"""Core messaging with nats-py, run against natrium-server and nats-server alike."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import nats
import pytest

from natsutil import RawConn, assert_no_msg, async_test, connect, next_msgs, sync


@async_test()
async def test_info_and_connect_info(server):
    """The INFO fields clients rely on, and the INFO sent after the first PONG."""
    c = await RawConn.open(server.port)
    try:
        i = c.info
        assert i["proto"] == 1
        assert i["version"] == "2.15.1"
        assert i["headers"] is True
        assert i["max_payload"] == 1024 * 1024
        assert i["host"] == "127.0.0.1" and i["port"] == server.port
        assert i["client_ip"] == "127.0.0.1"
        assert isinstance(i["client_id"], int) and i["client_id"] > 0
        assert isinstance(i["server_id"], str) and len(i["server_id"]) == 56 and i["server_id"][0] == "N"
        for absent in ("auth_required", "tls_required", "connect_info", "remote_account", "ldm"):
            assert absent not in i, absent
        await c.handshake()
        ci = c.connect_info
        assert ci["connect_info"] is True and ci["remote_account"] == "$G"
        assert ci["client_id"] == i["client_id"] and ci["server_id"] == i["server_id"]
        # Only the first PONG is followed by an INFO.
        await c.send(b"PING\r\n")
        assert await c.read_line() == b"PONG\r\n"
        await c.send(b"PING\r\n")
        assert await c.read_line() == b"PONG\r\n"
    finally:
        c.close()


@async_test()
async def test_verbose_ok(server):
    c = await RawConn.open(server.port)
    try:
        await c.send(b'CONNECT {"verbose":true,"pedantic":false}\r\nSUB v 1\r\nPUB v 2\r\nhi\r\nUNSUB 1\r\nPING\r\n')
        got = await c.read_until(b"PONG\r\n")
        assert got == b"+OK\r\n+OK\r\n+OK\r\nMSG v 1 2\r\nhi\r\n+OK\r\nPONG\r\n"
    finally:
        c.close()


@async_test()
async def test_pub_sub(server):
    sub_nc = await connect(server.url)
    pub_nc = await connect(server.url)
    try:
        sub = await sub_nc.subscribe("greet.joe")
        await sync(sub_nc)
        payloads = [f"msg-{i}".encode() for i in range(20)] + [b"", b"x" * 5000]
        for p in payloads:
            await pub_nc.publish("greet.joe", p)
        await pub_nc.publish("greet.bob", b"other subject")
        await sync(pub_nc)
        got = await next_msgs(sub, len(payloads))
        assert [m.data for m in got] == payloads  # every message, in publish order
        assert {m.subject for m in got} == {"greet.joe"}
        assert all(m.reply == "" for m in got)
        await assert_no_msg(sub)
        # Publisher receives its own messages too (echo is on by default).
        own = await pub_nc.subscribe("echo.me")
        await sync(pub_nc)
        await pub_nc.publish("echo.me", b"self")
        assert (await own.next_msg(timeout=5)).data == b"self"
    finally:
        await sub_nc.close()
        await pub_nc.close()


@async_test()
async def test_wildcards(server):
    nc = await connect(server.url)
    pub = await connect(server.url)
    try:
        subs = {
            "a.*.c": await nc.subscribe("a.*.c"),
            "a.>": await nc.subscribe("a.>"),
            "a.*": await nc.subscribe("a.*"),
            ">": await nc.subscribe(">"),
            "*.b.*": await nc.subscribe("*.b.*"),
        }
        await sync(nc)
        published = ["a.b.c", "a.b", "a", "a.x.c", "a.b.c.d", "z.b.q", "q"]
        for s in published:
            await pub.publish(s, s.encode())
        await sync(pub)
        expect = {
            "a.*.c": ["a.b.c", "a.x.c"],
            "a.>": ["a.b.c", "a.b", "a.x.c", "a.b.c.d"],
            "a.*": ["a.b"],
            ">": published,
            "*.b.*": ["a.b.c", "z.b.q"],
        }
        for pattern, want in expect.items():
            got = await next_msgs(subs[pattern], len(want))
            assert [m.subject for m in got] == want, pattern
            assert [m.data for m in got] == [w.encode() for w in want], pattern
        for pattern, sub in subs.items():
            await assert_no_msg(sub, 0.2)
    finally:
        await nc.close()
        await pub.close()


@async_test()
async def test_queue_groups(server):
    n = 300
    members = [await connect(server.url) for _ in range(3)]
    plain_nc = await connect(server.url)
    other_group_nc = await connect(server.url)
    pub = await connect(server.url)
    try:
        per_member: list[list[bytes]] = [[] for _ in members]

        def collector(idx):
            async def cb(msg):
                per_member[idx].append(msg.data)

            return cb

        for idx, m in enumerate(members):
            await m.subscribe("work", queue="workers", cb=collector(idx))
        plain = await plain_nc.subscribe("work")
        other = await other_group_nc.subscribe("work", queue="auditors")
        for c in (*members, plain_nc, other_group_nc):
            await sync(c)
        for i in range(n):
            await pub.publish("work", str(i).encode())
        await sync(pub)

        # The plain subscriber and the single-member second group each get everything.
        assert [m.data for m in await next_msgs(plain, n)] == [str(i).encode() for i in range(n)]
        assert [m.data for m in await next_msgs(other, n)] == [str(i).encode() for i in range(n)]

        # The three members together get each message exactly once.
        deadline = time.monotonic() + 10
        while sum(len(x) for x in per_member) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # room for duplicates to show up
        counts = Counter(d for lst in per_member for d in lst)
        assert sum(len(x) for x in per_member) == n, [len(x) for x in per_member]
        assert set(counts) == {str(i).encode() for i in range(n)}
        assert max(counts.values()) == 1
        # Spread across members (chance any member gets 0 of 300 is ~1e-52).
        assert all(len(x) > 0 for x in per_member), [len(x) for x in per_member]
    finally:
        for c in (*members, plain_nc, other_group_nc, pub):
            await c.close()


@async_test()
async def test_request_reply(server):
    responder = await connect(server.url)
    requester = await connect(server.url)
    try:
        async def handler(msg):
            await responder.publish(msg.reply, b"re:" + msg.data)

        await responder.subscribe("svc.echo", cb=handler)
        await sync(responder)
        resp = await requester.request("svc.echo", b"hello", timeout=5)
        assert resp.data == b"re:hello"
        # Many concurrent requests over the same mux inbox, each matched to its reply.
        reqs = [requester.request("svc.echo", f"r{i}".encode(), timeout=5) for i in range(50)]
        replies = await asyncio.gather(*reqs)
        assert [r.data for r in replies] == [f"re:r{i}".encode() for i in range(50)]
        # Old-style request: explicit inbox subscription and reply subject.
        inbox = requester.new_inbox()
        isub = await requester.subscribe(inbox)
        await sync(requester)
        await requester.publish("svc.echo", b"manual", reply=inbox)
        m = await isub.next_msg(timeout=5)
        assert m.data == b"re:manual" and m.subject == inbox
    finally:
        await responder.close()
        await requester.close()


@async_test()
async def test_headers_roundtrip_nats_py(server):
    nc = await connect(server.url)
    pub = await connect(server.url)
    try:
        assert nc._server_info.get("headers") is True
        sub = await nc.subscribe("h.test")
        await sync(nc)
        hdrs = {"X-One": "1", "X-Two": "two words", "Content-Type": "text/plain"}
        await pub.publish("h.test", b"body", headers=hdrs)
        await pub.publish("h.test", b"", headers={"X-Empty-Body": "yes"})
        await sync(pub)
        m1, m2 = await next_msgs(sub, 2)
        assert m1.data == b"body" and m1.headers == hdrs
        assert m2.data == b"" and m2.headers == {"X-Empty-Body": "yes"}
        # Request with headers: the responder sees them and replies with its own.
        async def handler(msg):
            await nc.publish(msg.reply, msg.data, headers={"Echo": msg.headers["Req"]})

        await nc.subscribe("h.svc", cb=handler)
        await sync(nc)
        r = await pub.request("h.svc", b"q", headers={"Req": "abc"}, timeout=5)
        assert r.data == b"q" and r.headers == {"Echo": "abc"}
    finally:
        await nc.close()
        await pub.close()


@async_test()
async def test_headers_multi_value_raw(server):
    """nats-py's header dict cannot hold repeated keys, so check at the byte level that the
    server forwards the header block verbatim (repeated keys, order, case)."""
    sub = await RawConn.open(server.port)
    pub = await RawConn.open(server.port)
    try:
        assert sub.info["headers"] is True
        await sub.handshake()
        await pub.handshake()
        await sub.send(b"SUB mv 7\r\nPING\r\n")
        await sub.read_until(b"PONG\r\n")
        hdr = b"NATS/1.0\r\nX-Multi: a\r\nX-Multi: b\r\nx-multi: c\r\nSingle: 1\r\n\r\n"
        body = b"payload"
        total = len(hdr) + len(body)
        await pub.send(b"HPUB mv reply.to %d %d\r\n%s%s\r\nPING\r\n" % (len(hdr), total, hdr, body))
        await pub.read_until(b"PONG\r\n")
        want = b"HMSG mv 7 reply.to %d %d\r\n%s%s\r\n" % (len(hdr), total, hdr, body)
        got = await sub.read_exact(len(want))
        assert got == want
        # A header-only message.
        hdr2 = b"NATS/1.0\r\nA: 1\r\nA: 2\r\n\r\n"
        await pub.send(b"HPUB mv %d %d\r\n%s\r\n" % (len(hdr2), len(hdr2), hdr2))
        want2 = b"HMSG mv 7 %d %d\r\n%s\r\n" % (len(hdr2), len(hdr2), hdr2)
        assert await sub.read_exact(len(want2)) == want2
    finally:
        sub.close()
        pub.close()


@async_test()
async def test_no_responders(server):
    nc = await connect(server.url)
    try:
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("nobody.home", b"anyone?", timeout=5)
        # The connection is still fine afterwards.
        sub = await nc.subscribe("after")
        await sync(nc)
        await nc.publish("after", b"ok")
        assert (await sub.next_msg(timeout=5)).data == b"ok"
    finally:
        await nc.close()


@async_test()
async def test_no_responders_raw_status(server):
    """The 503 status message the server synthesises, byte for byte."""
    c = await RawConn.open(server.port)
    try:
        await c.handshake()
        await c.send(b"SUB _INBOX.x 1\r\nPUB nobody _INBOX.x 2\r\nhi\r\nPING\r\n")
        got = await c.read_until(b"PONG\r\n")
        hdr = b"NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n"
        assert got == b"HMSG _INBOX.x 1 %d %d\r\n%s\r\nPONG\r\n" % (len(hdr), len(hdr), hdr)
    finally:
        c.close()


@async_test()
async def test_auto_unsubscribe(server):
    nc = await connect(server.url)
    nc2 = await connect(server.url)
    pub = await connect(server.url)
    try:
        sub = await nc.subscribe("auto")
        await sub.unsubscribe(limit=2)  # sends UNSUB <sid> 2
        # max_msgs is enforced by nats-py itself (no UNSUB is sent); still check the result.
        sub2 = await nc2.subscribe("auto2", max_msgs=3)
        await sync(nc)
        await sync(nc2)
        for i in range(6):
            await pub.publish("auto", f"a{i}".encode())
            await pub.publish("auto2", f"b{i}".encode())
        await sync(pub)
        got = await next_msgs(sub, 2)
        got2 = await next_msgs(sub2, 3)
        assert [m.data for m in got] == [b"a0", b"a1"]
        assert [m.data for m in got2] == [b"b0", b"b1", b"b2"]
        await sync(nc)
        await asyncio.sleep(0.2)
        # nats-py also drops extras client-side; in_msgs counts what the server actually
        # delivered, so this fails if the server keeps sending past the limit.
        assert nc.stats["in_msgs"] == 2, nc.stats
        # Interest is gone server-side: a request to it finds no responders.
        with pytest.raises(nats.errors.NoRespondersError):
            await pub.request("auto", b"?", timeout=5)
    finally:
        await nc.close()
        await nc2.close()
        await pub.close()


@async_test()
async def test_auto_unsubscribe_raw(server):
    c = await RawConn.open(server.port)
    try:
        await c.handshake()
        await c.send(
            b"SUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\nPING\r\n"
        )
        got = await c.read_until(b"PONG\r\n")
        assert got == b"MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\nPONG\r\n"
        # The subscription is gone: a later message is not delivered either.
        await c.send(b"PUB foo 1\r\nd\r\nPING\r\n")
        assert await c.read_until(b"PONG\r\n") == b"PONG\r\n"
    finally:
        c.close()


@async_test()
async def test_no_echo(server):
    quiet = await connect(server.url, no_echo=True)
    other = await connect(server.url)
    try:
        sub = await quiet.subscribe("echo.test")
        await sync(quiet)
        await quiet.publish("echo.test", b"from-self")
        await sync(quiet)
        await other.publish("echo.test", b"from-other")
        await sync(other)
        m = await sub.next_msg(timeout=5)
        assert m.data == b"from-other"
        await assert_no_msg(sub, 0.3)
        # The other connection (echo on) does see the quiet one's messages.
        osub = await other.subscribe("echo.test")
        await sync(other)
        await quiet.publish("echo.test", b"seen-by-other")
        await sync(quiet)
        assert (await osub.next_msg(timeout=5)).data == b"seen-by-other"
        await assert_no_msg(sub, 0.3)
    finally:
        await quiet.close()
        await other.close()


@async_test()
async def test_drain_connection(server):
    nc = await connect(server.url)
    pub = await connect(server.url)
    try:
        received: list[bytes] = []

        async def slow_handler(msg):
            await asyncio.sleep(0.005)
            received.append(msg.data)

        await nc.subscribe("drain.me", cb=slow_handler)
        await sync(nc)
        n = 100
        for i in range(n):
            await pub.publish("drain.me", str(i).encode())
        await sync(pub)
        # Make sure the server has routed them to nc before draining.
        await sync(nc)
        await nc.drain()
        assert nc.is_closed
        assert received == [str(i).encode() for i in range(n)]
        # The server has dropped the drained connection's interest.
        check = await pub.subscribe("drain.me")
        await sync(pub)
        await pub.publish("drain.me", b"later")
        assert (await check.next_msg(timeout=5)).data == b"later"
    finally:
        await nc.close()
        await pub.close()


@async_test()
async def test_drain_subscription(server):
    nc = await connect(server.url)
    pub = await connect(server.url)
    try:
        received: list[bytes] = []

        async def handler(msg):
            received.append(msg.data)

        sub = await nc.subscribe("sd", cb=handler)
        keep = await nc.subscribe("sd")
        await sync(nc)
        for i in range(10):
            await pub.publish("sd", str(i).encode())
        await sync(pub)
        await sync(nc)
        await sub.drain()
        assert received == [str(i).encode() for i in range(10)]
        await pub.publish("sd", b"after")
        await sync(pub)
        # The other subscription on the same connection keeps working.
        got = await next_msgs(keep, 11)
        assert got[-1].data == b"after"
        await asyncio.sleep(0.2)
        assert received == [str(i).encode() for i in range(10)]
        assert nc.is_connected
    finally:
        await nc.close()
        await pub.close()
