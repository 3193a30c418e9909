"""Key-value and object store through nats-py's own APIs, differential: every test runs
against natrium-server and nats-server 2.15.1 (the ``impl`` parameter), each with
JetStream on a fresh temporary store (``js_server``). Expectations (revisions, error
classes and codes, history lengths, key lists, watcher sequences, object info fields,
and the raw STREAM.INFO of the stream a bucket creates) are nats-server's, recorded here.

Confirmed natrium differences are ``natrium_xfail`` (strict xfail of the natrium half)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time

import nats
import nats.js.errors as jse
import pytest

from jsutil import assert_json, client
from natsutil import async_test, connect

KV_CFG_INFO = (
    '{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,'
    '"config":{"name":"KV_CFG","description":"d","subjects":["$KV.CFG.\\u003e"],'
    '"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,'
    '"max_age":60000000000,"max_msgs_per_subject":5,"max_msg_size":1024,"discard":"new",'
    '"storage":"file","num_replicas":1,"duplicate_window":60000000000,"compression":"none",'
    '"allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":true,'
    '"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":true,'
    '"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"<VER>"}},'
    '"created":"<TS>","state":{"messages":0,"bytes":0,"first_seq":0,'
    '"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z",'
    '"consumer_count":0},"cluster":{"leader":"<SERVER>"},"ts":"<TS>"}'
)

OBJ_INFO = (
    '{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,'
    '"config":{"name":"OBJ_OBJ","subjects":["$O.OBJ.C.\\u003e","$O.OBJ.M.\\u003e"],'
    '"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,'
    '"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"new","storage":"file",'
    '"num_replicas":1,"duplicate_window":120000000000,"compression":"none",'
    '"allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":false,'
    '"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":false,'
    '"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"<VER>"}},'
    '"created":"<TS>","state":{"messages":0,"bytes":0,"first_seq":0,'
    '"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z",'
    '"consumer_count":0},"cluster":{"leader":"<SERVER>"},"ts":"<TS>"}'
)


@async_test()
async def test_bucket_stream_config(js_server):
    """The streams behind a KV bucket (history/ttl/max_value_size/description) and an
    object store, as raw STREAM.INFO JSON."""
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="CFG", history=5, ttl=60, max_value_size=1024,
                                       description="d")
        st = await kv.status()
        assert (st.bucket, st.values, st.history, st.ttl) == ("CFG", 0, 5, 60.0)
        await js.create_object_store("OBJ")
    finally:
        await nc.close()
    async with client(js_server) as c:
        assert_json(await c.api("STREAM.INFO.KV_CFG"), KV_CFG_INFO)
        assert_json(await c.api("STREAM.INFO.OBJ_OBJ"), OBJ_INFO)


@async_test()
async def test_kv_put_get_update_create(js_server):
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="B", history=5, max_value_size=64)
        assert await kv.put("a", b"1") == 1
        assert await kv.put("b", b"x") == 2
        assert await kv.put("a", b"2") == 3
        e = await kv.get("a")
        assert (e.key, e.value, e.revision, e.bucket, e.operation) == ("a", b"2", 3, "B", None)
        e1 = await kv.get("a", revision=1)
        assert (e1.value, e1.revision) == (b"1", 1)
        # update with the right / a wrong expected revision
        assert await kv.update("a", b"3", last=3) == 4
        with pytest.raises(jse.KeyWrongLastSequenceError) as ei:
            await kv.update("a", b"4", last=3)
        # (nats-py maps only err_code 10071/10164 to this class and keeps the description)
        assert ei.value.description == "wrong last sequence: 4"
        # create: a fresh key works once, then fails
        assert await kv.create("c", b"new") == 5
        with pytest.raises(jse.KeyWrongLastSequenceError) as ei:
            await kv.create("c", b"again")
        assert ei.value.description == "wrong last sequence: 5"
        # a missing key
        with pytest.raises(jse.KeyNotFoundError) as ei:
            await kv.get("nope")
        assert ei.value.entry is None and ei.value.op is None
        # max_value_size
        with pytest.raises(jse.APIError) as ei:
            await kv.put("big", b"z" * 65)
        assert (ei.value.code, ei.value.err_code) == (400, 10054)
        assert ei.value.description == "message size exceeds maximum allowed"
        assert await kv.put("fits", b"z" * 64) == 6
        st = await kv.status()
        assert st.values == 6
    finally:
        await nc.close()


async def settled_keys(kv, want: list[str], timeout: float = 5.0) -> list[str]:
    """`kv.keys()` until it lists `want` or `timeout` passes: nats-py's watcher can end
    before the last entries arrive (seen once against nats-server 2.15.1 in CI)."""
    deadline = time.monotonic() + timeout
    while True:
        got = sorted(await kv.keys())
        if got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


@async_test()
async def test_kv_delete_purge_history_keys(js_server):
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="H", history=3)
        for i in range(5):
            await kv.put("k", f"v{i}".encode())
        await kv.put("other", b"o")
        await kv.put("gone", b"g")
        hist = await kv.history("k")
        assert [(h.value, h.revision) for h in hist] == [(b"v2", 3), (b"v3", 4), (b"v4", 5)]
        assert await settled_keys(kv, ["gone", "k", "other"]) == ["gone", "k", "other"]

        await kv.delete("k")
        # kv.get re-raises the KeyDeletedError as KeyNotFoundError(entry, op)
        with pytest.raises(jse.KeyNotFoundError) as ei:
            await kv.get("k")
        assert ei.value.entry.revision == 8 and ei.value.op == "DEL"
        hist = await kv.history("k")
        assert [(h.value, h.revision, h.operation) for h in hist] == [
            (b"v3", 4, None), (b"v4", 5, None), (b"", 8, "DEL")]
        assert await settled_keys(kv, ["gone", "other"]) == ["gone", "other"]

        # create over a deleted key re-uses its revision
        assert await kv.create("k", b"back") == 9
        assert (await kv.get("k")).value == b"back"

        await kv.purge("gone")
        with pytest.raises(jse.KeyNotFoundError) as ei:
            await kv.get("gone")
        assert ei.value.entry.revision == 10 and ei.value.op == "PURGE"
        hist = await kv.history("gone")
        assert [(h.revision, h.operation) for h in hist] == [(10, "PURGE")]
        assert await settled_keys(kv, ["k", "other"]) == ["k", "other"]

        # delete with an expected revision (nats-py leaves this error a BadRequestError)
        with pytest.raises(jse.BadRequestError) as ei:
            await kv.delete("other", last=1)
        assert (ei.value.code, ei.value.err_code) == (400, 10071)
        assert ei.value.description == "wrong last sequence: 6"
        assert await kv.delete("other", last=6)
        await kv.purge("k")
        with pytest.raises(jse.NoKeysError):
            await kv.keys()
        st = await kv.status()
        # purge leaves only its marker; "other" keeps its value + delete marker
        assert st.values == 4
    finally:
        await nc.close()


@async_test()
async def test_kv_wildcard_keys_purge_and_bypass(js_server):
    """A purge of `a.*` (nats-py does not check purge keys) stores its marker on the
    subject `$KV.W.a.*` and rolls up every key it matches, as nats.py's own test_kv_simple
    expects of nats-server; keys with wildcard tokens, put with validation off, are
    stored and read back as they are."""
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="W", history=5)
        await kv.put("hello", b"world")
        for i in range(3):
            await kv.put(f"hello.{i}", b"x")
        await kv.put("hello.1.deep", b"not one token")
        assert (await kv.status()).values == 5
        await kv.purge("hello.*")
        # "hello" and "hello.1.deep" stay, beside the marker itself.
        assert (await kv.status()).values == 3
        with pytest.raises(jse.NotFoundError):
            await kv.get("hello.2")
        assert (await kv.get("hello")).value == b"world"
        assert (await kv.get("hello.1.deep")).value == b"not one token"
        assert await settled_keys(kv, ["hello", "hello.1.deep"]) == ["hello", "hello.1.deep"]

        seq = await kv.put("x.*", b"v", validate_keys=False)
        assert seq == 7, seq
        entry = await kv.get("x.*", validate_keys=False)
        assert (entry.key, entry.value, entry.revision) == ("x.*", b"v", 7)
        assert await kv.update("x.*", b"v2", last=7, validate_keys=False) == 8
        # The raw message is on the subject as published.
        info = await js.stream_info("KV_W", subjects_filter="$KV.W.x.>")
        assert info.state.subjects == {"$KV.W.x.*": 2}, info.state.subjects
    finally:
        await nc.close()


@async_test()
async def test_kv_watch(js_server):
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="W", history=2)
        await kv.put("a", b"1")
        await kv.put("b", b"2")
        await kv.put("a", b"3")
        w = await kv.watchall()
        init = []
        while True:
            e = await w.updates(timeout=3)
            if e is None:
                break
            init.append((e.key, e.value, e.revision, e.operation))
        assert init == [("b", b"2", 2, None), ("a", b"3", 3, None)]
        await kv.put("c", b"4")
        await kv.delete("a")
        await kv.purge("b")
        live = []
        for _ in range(3):
            e = await w.updates(timeout=3)
            live.append((e.key, e.value, e.revision, e.operation))
        assert live == [("c", b"4", 4, None), ("a", b"", 5, "DEL"), ("b", b"", 6, "PURGE")]
        with pytest.raises(nats.errors.TimeoutError):
            await w.updates(timeout=0.3)
        await w.stop()

        # a filtered watcher with history, on one key
        w2 = await kv.watch("a", include_history=True)
        seen = []
        while True:
            e = await w2.updates(timeout=3)
            if e is None:
                break
            seen.append((e.value, e.revision, e.operation))
        assert seen == [(b"3", 3, None), (b"", 5, "DEL")]
        await kv.put("c", b"not a")
        await kv.put("a", b"live")
        e = await w2.updates(timeout=3)
        assert (e.key, e.value, e.revision) == ("a", b"live", 8)
        await w2.stop()

        # an empty bucket's watcher gets the None marker at once
        kv2 = await js.create_key_value(bucket="EMPTY")
        w3 = await kv2.watchall()
        assert await w3.updates(timeout=3) is None
        await kv2.put("x", b"y")
        e = await w3.updates(timeout=3)
        assert (e.key, e.value, e.revision, e.delta) == ("x", b"y", 1, 0)
        await w3.stop()
    finally:
        await nc.close()


def _digest(data: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


@async_test()
async def test_object_put_get_info_list_delete(js_server):
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        obs = await js.create_object_store("OBJ", description="objs")
        big = os.urandom(3 * 1024 * 1024 + 5)
        info = await obs.put("big", big)
        assert (info.name, info.bucket, info.size, info.chunks) == ("big", "OBJ", len(big), 25)
        assert info.digest == _digest(big) and not info.deleted
        small = b"hello object"
        info_s = await obs.put("small", small, meta=nats.js.api.ObjectMeta(name="small", description="s"))
        assert (info_s.size, info_s.chunks, info_s.digest) == (12, 1, _digest(small))

        res = await obs.get("big")
        assert hashlib.sha256(res.data).digest() == hashlib.sha256(big).digest()
        assert res.data == big and res.info.size == len(big) and res.info.chunks == 25
        gi = await obs.get_info("small")
        assert (gi.size, gi.chunks, gi.digest, gi.description) == (12, 1, _digest(small), "s")
        assert gi.nuid == info_s.nuid

        lst = await obs.list()
        assert sorted((o.name, o.size, o.chunks) for o in lst) == [
            ("big", len(big), 25), ("small", 12, 1)]

        # replace: the old chunks go away
        info_r = await obs.put("small", b"v2")
        assert (info_r.size, info_r.chunks) == (2, 1) and info_r.nuid != info_s.nuid
        assert (await obs.get("small")).data == b"v2"

        st = await obs.status()
        # 25 + 1 chunks, 2 meta messages
        assert st.stream_info.state.messages == 28
        assert st.stream_info.state.bytes > len(big)

        assert await obs.delete("big") is None  # (nats-py returns nothing)
        dinfo = await obs.get_info("big", show_deleted=True)
        assert (dinfo.deleted, dinfo.size, dinfo.chunks, dinfo.digest) == (True, 0, 0, "")
        with pytest.raises(jse.ObjectNotFoundError):  # nats-py: deleted objects are "not found"
            await obs.get("big")
        with pytest.raises(jse.ObjectNotFoundError):
            await obs.get("never")
        lst = await obs.list(ignore_deletes=True)
        assert [o.name for o in lst] == ["small"]
        lst = await obs.list()  # nats-py's default keeps deleted objects
        assert [(o.name, bool(o.deleted)) for o in lst] == [("small", False), ("big", True)]
        await obs.delete("small")
        with pytest.raises(nats.js.errors.NotFoundError):
            await obs.list(ignore_deletes=True)
        st = await obs.status()
        assert st.stream_info.state.messages == 2  # the two meta (delete) records
    finally:
        await nc.close()


@async_test()
async def test_object_watch(js_server):
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        obs = await js.create_object_store("OW")
        await obs.put("one", b"1")
        w = await obs.watch()
        e = await w.updates(timeout=3)
        assert (e.name, e.size) == ("one", 1)
        assert await w.updates(timeout=3) is None
        await obs.put("two", b"22")
        e = await w.updates(timeout=3)
        assert (e.name, e.size, e.chunks) == ("two", 2, 1)
        await obs.delete("one")
        e = await w.updates(timeout=3)
        assert (e.name, e.deleted) == ("one", True)
        with pytest.raises(nats.errors.TimeoutError):
            await w.updates(timeout=0.3)
        await w.stop()
    finally:
        await nc.close()


KV_S_INFO = (
    '{"type":"io.nats.jetstream.api.v1.stream_info_response","total":3,"offset":0,'
    '"limit":100000,"config":{"name":"KV_S","subjects":["$KV.S.\\u003e"],"retention":"limits",'
    '"max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":3,'
    '"max_msg_size":-1,"discard":"new","storage":"file","num_replicas":1,'
    '"duplicate_window":120000000000,"compression":"none","allow_direct":true,'
    '"mirror_direct":false,"sealed":false,"deny_delete":true,"deny_purge":false,'
    '"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":true,'
    '"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"<VER>"}},'
    '"created":"<TS>","state":{"messages":6,"bytes":324,"first_seq":2,"first_ts":"<TS>",'
    '"last_seq":8,"last_ts":"<TS>","num_subjects":3,'
    '"subjects":{"$KV.S.a":3,"$KV.S.b.c":2,"$KV.S.d":1},"num_deleted":1,"consumer_count":0},'
    '"cluster":{"leader":"<SERVER>"},"ts":"<TS>"}'
)


@async_test()
async def test_kv_direct_bucket_state(js_server):
    """A bucket with direct gets: nats-py reads through $JS.API.DIRECT.GET; the stream
    state (bytes, per-subject counts, the interior delete left by history=3) after puts,
    a delete and a purge, as raw STREAM.INFO; the markers as raw direct-get headers;
    re-creating the bucket with another history fails."""
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="S", history=3, direct=True)
        for i in range(4):
            assert await kv.put("a", b"x" * i) == i + 1
        await kv.put("b.c", b"bc")
        await kv.delete("b.c")
        await kv.put("d", b"dd")
        await kv.purge("d")
        e = await kv.get("a")
        assert (e.value, e.revision) == (b"xxx", 4)
        e = await kv.get("a", revision=2)
        assert (e.value, e.revision) == (b"x", 2)
        with pytest.raises(jse.KeyNotFoundError) as ei:
            await kv.get("a", revision=1)  # dropped by history=3
        assert ei.value.entry is None
        with pytest.raises(jse.KeyNotFoundError) as ei:
            await kv.get("d")
        assert (ei.value.op, ei.value.entry.revision) == ("PURGE", 8)
        # before any watcher (kv.keys) leaves an ephemeral consumer behind
        async with client(js_server) as c:
            assert_json(await c.api("STREAM.INFO.KV_S", {"subjects_filter": ">"}), KV_S_INFO)
        assert sorted(await kv.keys()) == ["a"]
        with pytest.raises(jse.BadRequestError) as ei:
            await js.create_key_value(bucket="S", history=4)
        assert (ei.value.code, ei.value.err_code) == (400, 10058)
        assert ei.value.description == "stream name already in use with a different configuration"
    finally:
        await nc.close()
    async with client(js_server) as c:
        f = await c.req("$JS.API.DIRECT.GET.KV_S", {"last_by_subj": "$KV.S.d"})
        assert f.hdr_text() == ("NATS/1.0\r\nKV-Operation: PURGE\r\nNats-Rollup: sub\r\n"
                                "Nats-Stream: KV_S\r\nNats-Subject: $KV.S.d\r\nNats-Sequence: 8\r\n"
                                "Nats-Time-Stamp: <TS>\r\n\r\n") and f.data == b""
        f = await c.req("$JS.API.DIRECT.GET.KV_S", {"last_by_subj": "$KV.S.b.c"})
        assert f.hdr_text() == ("NATS/1.0\r\nKV-Operation: DEL\r\nNats-Stream: KV_S\r\n"
                                "Nats-Subject: $KV.S.b.c\r\nNats-Sequence: 6\r\n"
                                "Nats-Time-Stamp: <TS>\r\n\r\n") and f.data == b""


@async_test()
async def test_kv_ttl_purge_deletes_and_bucket_delete(js_server):
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="T", ttl=1)
        assert await kv.put("k", b"v") == 1
        assert (await kv.get("k")).value == b"v"
        await asyncio.sleep(1.0)
        deadline = time.monotonic() + 3  # max_age 1 s: expired soon after
        while True:
            try:
                await kv.get("k")
            except jse.KeyNotFoundError as e:
                assert e.entry is None
                break
            assert time.monotonic() < deadline, "the key did not expire"
            await asyncio.sleep(0.1)
        assert (await kv.status()).values == 0

        kv2 = await js.create_key_value(bucket="P", history=10)
        for i in range(3):
            await kv2.put("x", b"%d" % i)
        await kv2.put("y", b"keep")
        await kv2.delete("x")
        assert len(await kv2.history("x")) == 4
        # olderthan <= 0: every delete marker goes, along with the data before it.
        # nats-py's purge_deletes finds the markers with watchall(), whose initial pass
        # can end before the marker arrives (a client race, seen once in CI against
        # nats-server 2.15.1, where nothing was purged): up to 3 tries, then the end
        # state is required (the bucket's value count below checks it too).
        for _ in range(3):
            assert await kv2.purge_deletes(olderthan=-1)
            try:
                await kv2.history("x")
            except jse.NoKeysError:
                break
        else:
            pytest.fail("x's history was never purged")
        assert (await kv2.status()).values == 1
        assert await kv2.keys() == ["y"]
        assert sorted(await kv2.keys(filters=["y", "z"])) == ["y"]

        # watch: ignore_deletes and meta_only
        await kv2.put("z", b"zz")
        await kv2.delete("y")
        w = await kv2.watchall(ignore_deletes=True, meta_only=True)
        e = await w.updates(timeout=3)
        assert (e.key, e.value, e.revision) == ("z", b"", 6)
        assert await w.updates(timeout=3) is None
        await kv2.delete("z")
        await kv2.put("n", b"new")
        e = await w.updates(timeout=3)
        assert (e.key, e.value, e.revision) == ("n", b"", 9)
        await w.stop()

        assert await js.delete_key_value("P")
        with pytest.raises(jse.BucketNotFoundError):
            await js.key_value("P")
        kv3 = await js.key_value("T")
        assert (await kv3.status()).ttl == 1.0
    finally:
        await nc.close()


@async_test()
async def test_object_meta_options_and_bucket_state(js_server):
    """Object headers and a custom chunk size; the object stream's raw state."""
    nc = await connect(js_server.url)
    try:
        js = nc.jetstream()
        obs = await js.create_object_store(
            "O", config=nats.js.api.ObjectStoreConfig(max_bytes=10_000_000, description="x"))
        data = b"y" * 300_000
        meta = nats.js.api.ObjectMeta(name="f", headers={"X-A": "1"},
                                      options=nats.js.api.ObjectMetaOptions(max_chunk_size=100_000))
        info = await obs.put("f", data, meta=meta)
        assert (info.size, info.chunks, info.digest) == (300_000, 3, _digest(data))
        async with client(js_server) as c:
            assert_json(await c.api("STREAM.INFO.OBJ_O"), OBJ_O_INFO)
        gi = await obs.get_info("f")
        assert gi.headers == {"X-A": "1"} and gi.options.max_chunk_size == 100_000
        assert (await obs.get("f")).data == data
        # over max_bytes: the chunk publish is refused
        with pytest.raises(jse.APIError) as ei:
            await obs.put("huge", b"z" * 10_000_000)
        assert (ei.value.code, ei.value.err_code, ei.value.description) == (
            503, 10077, "maximum bytes exceeded")
        with pytest.raises(jse.ObjectNotFoundError):
            await obs.get_info("huge")
        st = await obs.status()
        ss = st.stream_info.state
        # the accepted chunks of the refused object are purged again by nats-py
        assert (ss.messages, ss.bytes, ss.last_seq, ss.num_deleted) == (4, 300536, 77, 73)
    finally:
        await nc.close()


OBJ_O_INFO = (
    '{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,'
    '"config":{"name":"OBJ_O","description":"x","subjects":["$O.O.C.\\u003e","$O.O.M.\\u003e"],'
    '"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":10000000,"max_age":0,'
    '"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"new","storage":"file",'
    '"num_replicas":1,"duplicate_window":120000000000,"compression":"none",'
    '"allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":false,'
    '"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":false,'
    '"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"<VER>"}},'
    '"created":"<TS>","state":{"messages":4,"bytes":300536,"first_seq":1,"first_ts":"<TS>",'
    '"last_seq":4,"last_ts":"<TS>","num_subjects":2,"consumer_count":0},'
    '"cluster":{"leader":"<SERVER>"},"ts":"<TS>"}'
)


async def _history_after_restart(server, kv, key):
    """`kv.history(key)`; against nats-server retried a few times on "no keys": right
    after a restart under load, nats-server 2.15.1 was seen (once in CI) to create the
    history watcher's consumer with nothing pending, so nats-py returned no entries.
    natrium gets one try. Bounded: 5 tries."""
    tries = 5 if server.impl == "nats-server" else 1
    for attempt in range(tries):
        try:
            return await kv.history(key)
        except jse.NoKeysError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.2)


@async_test()
async def test_kv_and_object_survive_restart(start_js_server):
    s = start_js_server()
    data = os.urandom(700_000)
    nc = await connect(s.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="R", history=4)
        await kv.put("a", b"1")
        await kv.put("a", b"2")
        await kv.put("b", b"3")
        await kv.delete("b")
        obs = await js.create_object_store("RO")
        await obs.put("blob", data)
    finally:
        await nc.close()
    s.stop()
    s2 = start_js_server(store_dir=s.store_dir)
    nc = await connect(s2.url)
    try:
        js = nc.jetstream()
        kv = await js.key_value("R")
        st = await kv.status()
        assert (st.values, st.history) == (4, 4)
        assert [(h.value, h.revision) for h in await _history_after_restart(s2, kv, "a")] == [
            (b"1", 1),
            (b"2", 2),
        ]
        with pytest.raises(jse.KeyNotFoundError) as ei:
            await kv.get("b")
        assert (ei.value.op, ei.value.entry.revision) == ("DEL", 4)
        assert await kv.put("a", b"after") == 5
        with pytest.raises(jse.KeyWrongLastSequenceError):
            await kv.update("a", b"x", last=2)
        obs = await js.object_store("RO")
        res = await obs.get("blob")
        assert res.data == data and res.info.chunks == 6 and res.info.digest == _digest(data)
    finally:
        await nc.close()
