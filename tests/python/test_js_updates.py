"""Stream and consumer updates, side by side with nats-server 2.15.1 (the ``impl``
parameter): cases a differential probe found natrium answering differently, each
asserting what nats-server was measured to do."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from natsutil import async_test, connect


async def api(nc, subject: str, body=None) -> dict:
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    r = await nc.request(f"$JS.API.{subject}", data, timeout=5)
    return json.loads(r.data)


async def durable(nc, stream: str, name: str, **cfg) -> dict:
    got = await api(nc, f"CONSUMER.CREATE.{stream}.{name}",
                    {"stream_name": stream, "config": {"durable_name": name, "ack_policy": "explicit", **cfg}})
    assert "error" not in got, got
    return got


@async_test()
async def test_turning_to_interest_retention_drops_what_nobody_wants(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.A", {"name": "A", "subjects": ["a.>"]})
        for _ in range(3):
            await js.publish("a.1", b"x")
        upd = await api(nc, "STREAM.UPDATE.A", {"name": "A", "subjects": ["a.>"], "retention": "interest"})
        st = upd["state"]
        assert (st["messages"], st["first_seq"], st["last_seq"]) == (0, 4, 3), st
        assert (await api(nc, "STREAM.MSG.GET.A", {"seq": 1}))["error"]["err_code"] == 10037
    finally:
        await nc.close()


@async_test()
async def test_a_filter_change_on_an_interest_stream_drops_what_nobody_wants(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.F", {"name": "F", "subjects": ["f.>"], "retention": "interest"})
        await durable(nc, "F", "c1")
        await durable(nc, "F", "c2")
        for _ in range(3):
            await js.publish("f.a", b"x")
        sub = await js.pull_subscribe_bind("c1", "F")
        for m in await sub.fetch(3, timeout=5):
            await m.ack_sync()
        # c2 wanted them too; now it wants something else: nobody is left.
        await durable(nc, "F", "c2", filter_subject="f.zzz")
        await asyncio.sleep(0.2)
        info = await api(nc, "STREAM.INFO.F")
        assert (info["state"]["messages"], info["state"]["first_seq"]) == (0, 4), info["state"]
        c3 = await durable(nc, "F", "c3")
        assert c3["num_pending"] == 0, c3
    finally:
        await nc.close()


@async_test()
async def test_consumer_requests_with_bodies(js_server):
    nc = await connect(js_server.url)
    try:
        await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
        await durable(nc, "S", "c1")
        # A body on DELETE is refused, and the consumer stays (also when it is missing).
        for name in ("c1", "nope"):
            got = await api(nc, f"CONSUMER.DELETE.S.{name}", b'{"stream_name":"S"}')
            assert got["error"] == {"code": 400, "err_code": 10038,
                                    "description": "expected an empty request payload"}, got
        # NAMES and LIST ignore bodies that are not a JSON object or array.
        for body in (b"x", b"123", b'"str"', b"true"):
            names = await api(nc, "CONSUMER.NAMES.S", body)
            assert names["consumers"] == ["c1"], (body, names)
            lst = await api(nc, "CONSUMER.LIST.S", body)
            assert lst["total"] == 1, (body, lst)
    finally:
        await nc.close()


@async_test()
async def test_consumer_start_time_compares_instants_and_long_names(js_server):
    nc = await connect(js_server.url)
    try:
        await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
        await durable(nc, "S", "ot", deliver_policy="by_start_time",
                      opt_start_time="2020-01-01T01:00:00+01:00")
        upd = await api(nc, "CONSUMER.CREATE.S.ot", {"stream_name": "S", "config": {
            "durable_name": "ot", "ack_policy": "explicit", "deliver_policy": "by_start_time",
            "opt_start_time": "2020-01-01T00:00:00Z", "max_deliver": 3}})
        assert "error" not in upd, upd
        assert upd["config"]["max_deliver"] == 3
        long = "n" * 256
        got = await api(nc, "CONSUMER.CREATE.S", {"stream_name": "S", "config": {"name": long}})
        assert got["error"] == {"code": 500, "err_code": 10012,
                                "description": "error creating store for consumer"}, got
    finally:
        await nc.close()


@async_test()
async def test_an_ack_wait_update_applies_to_delivered_messages(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.W", {"name": "W", "subjects": ["w"]})
        await durable(nc, "W", "c", ack_wait=30_000_000_000)
        await js.publish("w", b"m1")
        sub = await js.pull_subscribe_bind("c", "W")
        [m] = await sub.fetch(1, timeout=5)
        assert m.metadata.num_delivered == 1
        await durable(nc, "W", "c", ack_wait=1_000_000_000)
        await asyncio.sleep(1.5)
        [m] = await sub.fetch(1, timeout=5)
        assert (m.data, m.metadata.num_delivered) == (b"m1", 2)
    finally:
        await nc.close()


@async_test()
async def test_small_api_answers(js_server):
    nc = await connect(js_server.url)
    try:
        await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
        # An empty Nats-Required-Api-Level asks for nothing.
        r = await nc.request("$JS.API.STREAM.INFO.S", b"", headers={"Nats-Required-Api-Level": ""}, timeout=5)
        assert "error" not in json.loads(r.data), r.data
        # A dotted durable name on DURABLE.CREATE: no responder at all.
        try:
            await nc.request("$JS.API.CONSUMER.DURABLE.CREATE.S.a.b",
                             json.dumps({"stream_name": "S", "config": {"durable_name": "a.b"}}).encode(),
                             timeout=1)
            raise AssertionError("answered")
        except Exception as e:  # no responders or timeout, depending on the client
            assert "answered" not in str(e), e
        # PAUSE keeps and reports pause_until in UTC.
        await durable(nc, "S", "p0")
        got = await api(nc, "CONSUMER.PAUSE.S.p0", {"pause_until": "2099-02-01T01:00:00+01:00"})
        assert got["pause_until"] == "2099-02-01T00:00:00Z", got
        info = await api(nc, "CONSUMER.INFO.S.p0")
        assert info["config"]["pause_until"] == "2099-02-01T00:00:00Z", info["config"]
        # A direct consumer is not listed (nor counted).
        d = await api(nc, "CONSUMER.CREATE.S", {"stream_name": "S", "config": {
            "ack_policy": "none", "direct": True, "deliver_subject": "dd", "mem_storage": True}})
        assert "error" not in d, d
        names = await api(nc, "CONSUMER.NAMES.S")
        assert names["consumers"] == ["p0"] and names["total"] == 1, names
        lst = await api(nc, "CONSUMER.LIST.S")
        assert lst["total"] == 1, lst
    finally:
        await nc.close()


@async_test()
async def test_turning_to_interest_keeps_what_no_consumer_has_taken(js_server):
    """With consumers, only what they acknowledged goes when a stream turns to interest
    retention; messages none of them takes stay (nats-server)."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.A", {"name": "A", "subjects": ["a.>", "b.>"]})
        for subj in ("a.1", "a.2", "b.1", "b.2"):
            await js.publish(subj, b"x")
        await durable(nc, "A", "c", filter_subject="b.1")
        sub = await js.pull_subscribe_bind("c", "A")
        [m] = await sub.fetch(1, timeout=5)
        await m.ack_sync()
        upd = await api(nc, "STREAM.UPDATE.A", {"name": "A", "subjects": ["a.>", "b.>"], "retention": "interest"})
        assert "error" not in upd, upd
        await asyncio.sleep(0.2)
        info = await api(nc, "STREAM.INFO.A")
        assert info["state"]["messages"] == 3, info["state"]
        assert (await api(nc, "STREAM.MSG.GET.A", {"seq": 3}))["error"]["err_code"] == 10037
    finally:
        await nc.close()


@async_test()
async def test_an_interest_stream_dates_publishes_nobody_wanted(start_js_server):
    """A publish skipped for lack of interest still sets last_ts, also after a restart."""
    srv = start_js_server()
    nc = await connect(srv.url)
    js = nc.jetstream()
    await api(nc, "STREAM.CREATE.I", {"name": "I", "subjects": ["i"], "retention": "interest"})
    for _ in range(3):
        await js.publish("i", b"x")
    st = (await api(nc, "STREAM.INFO.I"))["state"]
    assert (st["messages"], st["last_seq"]) == (0, 3), st
    assert not st["last_ts"].startswith("0001"), st
    await nc.close()
    srv.stop()
    srv = start_js_server(srv.store_dir)
    nc = await connect(srv.url)
    try:
        st2 = (await api(nc, "STREAM.INFO.I"))["state"]
        assert st2["last_seq"] == 3 and not st2["last_ts"].startswith("0001"), st2
    finally:
        await nc.close()


@async_test()
async def test_a_progress_ack_survives_a_restart(start_js_server):
    """+WPI restarts the ack wait, and the stored state keeps that: after a restart the
    message is not redelivered on its original deadline."""
    srv = start_js_server()
    if srv.impl != "natrium":
        # nats-server keeps the progress ack across a restart only sometimes (it writes
        # consumer state asynchronously; 2 of 4 runs here redelivered on the original
        # deadline), so only natrium's guarantee is asserted.
        srv.stop()
        pytest.skip("nats-server does not reliably keep a progress ack across a restart")
    nc = await connect(srv.url)
    js = nc.jetstream()
    await api(nc, "STREAM.CREATE.W", {"name": "W", "subjects": ["w"]})
    await durable(nc, "W", "c", ack_wait=3_000_000_000)
    await js.publish("w", b"m1")
    sub = await js.pull_subscribe_bind("c", "W")
    [m] = await sub.fetch(1, timeout=5)
    t0 = time.monotonic()
    await asyncio.sleep(2.0)
    await m.in_progress()
    await nc.flush()
    await asyncio.sleep(0.2)
    await nc.close()
    srv.stop()
    srv = start_js_server(srv.store_dir)
    nc = await connect(srv.url)
    js = nc.jetstream()
    try:
        sub = await js.pull_subscribe_bind("c", "W")
        wait = 3.6 - (time.monotonic() - t0)
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            early = await sub.fetch(1, timeout=0.5)
        except Exception:
            early = []
        assert early == [], "redelivered on the deadline before the progress ack"
        [again] = await sub.fetch(1, timeout=5)
        assert again.metadata.num_delivered == 2
    finally:
        await nc.close()
