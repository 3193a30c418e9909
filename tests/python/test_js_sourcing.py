"""Mirrors and sources, side by side: each test runs against nats-server 2.15.1 and
natrium-server (the ``impl`` parameter) and asserts what nats-server was measured to do,
so a difference fails on one side. Times, identities and the order of ``sources`` in
stream info (a Go map in nats-server) are the only things normalised."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from natsutil import async_test, connect


async def api(nc, subject: str, body=None) -> dict:
    data = b"" if body is None else json.dumps(body).encode()
    r = await nc.request(f"$JS.API.{subject}", data, timeout=5)
    return json.loads(r.data)


async def until(nc, stream: str, pred, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = await api(nc, f"STREAM.INFO.{stream}")
        if pred(info):
            return info
        assert time.monotonic() < deadline, f"{stream} never got there: {info}"
        await asyncio.sleep(0.05)


async def consumer_until(nc, stream: str, name: str, pred, timeout: float = 10.0) -> dict:
    """CONSUMER.INFO of `stream` > `name` once `pred` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        info = await api(nc, f"CONSUMER.INFO.{stream}.{name}")
        if pred(info):
            return info
        assert time.monotonic() < deadline, f"{stream} > {name} never got there: {info}"
        await asyncio.sleep(0.05)


async def flow_control_origin(nc, deliver: str, stream: str = "O", *, subjects=("o.>",),
                              retention: str = "limits", **consumer) -> None:
    """Origin stream ``stream`` and its durable push consumer C on ``deliver`` with the
    ``flow_control`` ack policy (``max_ack_pending`` 100), as a durable-consumer link
    reads it; ``consumer`` adds config fields."""
    r = await api(nc, f"STREAM.CREATE.{stream}", {"name": stream, "subjects": list(subjects),
                                                 "retention": retention})
    assert "error" not in r, r
    r = await api(nc, f"CONSUMER.CREATE.{stream}.C", {"stream_name": stream, "config": {
        "durable_name": "C", "deliver_subject": deliver, "ack_policy": "flow_control",
        "max_ack_pending": 100, **consumer}})
    assert "error" not in r, r


def floors(c: dict) -> tuple[int, int, int]:
    """A consumer's (ack floor, delivered) stream sequences and acks pending."""
    return c["ack_floor"]["stream_seq"], c["delivered"]["stream_seq"], c["num_ack_pending"]


async def msg(nc, stream: str, seq: int):
    r = await api(nc, f"STREAM.MSG.GET.{stream}", {"seq": seq})
    if "message" not in r:
        return r["error"]["err_code"]
    m = r["message"]
    hdrs = base64.b64decode(m.get("hdrs") or b"").decode()
    return m["subject"], hdrs, base64.b64decode(m.get("data") or b"").decode(), m["time"]


async def must(nc, stream: str, seq: int):
    """`msg` of a message that must be there: natrium's info counts a message once it is
    appended, reads return it once it is durable (one fsync later)."""
    deadline = time.monotonic() + 5
    while True:
        got = await msg(nc, stream, seq)
        if not isinstance(got, int):
            return got
        assert time.monotonic() < deadline, f"{stream} has no message {seq}: {got}"
        await asyncio.sleep(0.02)


def without_identity(hdrs: str) -> str:
    """The header block with the origin identity (a hash of its creation time) cut off
    the `Nats-Stream-Source` value."""
    out = []
    for line in hdrs.split("\r\n"):
        if line.startswith("Nats-Stream-Source: "):
            parts = line.split(" ")
            assert len(parts) == 7 and len(parts[6]) == 8, line
            line = " ".join(parts[:6])
        out.append(line)
    return "|".join(out)


def link(info: dict) -> dict:
    """A mirror/source status without its live `active` time (checked for its sign)."""
    out = dict(info)
    active = out.pop("active")
    assert active == -1 or active >= 0, info
    out["active_seen"] = active >= 0
    return out


@async_test()
async def test_mirror_and_sources(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        o = await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o.>"], "allow_direct": True})
        assert "error" not in o, o
        for i in range(5):
            await js.publish(f"o.{i % 2}", f"x{i}".encode(),
                             headers={"Nats-Msg-Id": f"id{i}", "Foo": "bar"})
        assert (await api(nc, "STREAM.MSG.DELETE.O", {"seq": 2}))["success"] is True

        m = await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "O"}})
        assert m["config"]["mirror"] == {"name": "O"}
        assert m["config"]["mirror_direct"] is True
        assert "subjects" not in m["config"]
        s = await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "sources": [
            {"name": "O", "filter_subject": "o.1"},
            {"name": "NOPE"},
            {"name": "O", "subject_transforms": [{"src": "o.0", "dest": "t.0"}]}]})
        assert "error" not in s, s
        mm = await api(nc, "STREAM.CREATE.MM", {"name": "MM", "mirror": {"name": "NOPE2"}})
        assert mm["config"]["mirror_direct"] is False

        mi = await until(nc, "M", lambda i: i["state"]["last_seq"] == 5 and i["mirror"]["lag"] == 0)
        assert link(mi["mirror"]) == {"name": "O", "lag": 0, "active_seen": True}
        st = mi["state"]
        assert (st["messages"], st["first_seq"], st["last_seq"], st["num_deleted"],
                st["num_subjects"], st["consumer_count"]) == (4, 1, 5, 1, 2, 0)
        for seq in (1, 3, 4, 5):
            assert await must(nc, "M", seq) == await must(nc, "O", seq), seq
        assert await msg(nc, "M", 2) == 10037

        si = await until(nc, "S", lambda i: i["state"]["messages"] == 4
                         and any("error" in x for x in i["sources"])
                         and sum(x.get("seq", 0) for x in i["sources"]) == 9)
        sources = sorted((link(x) for x in si["sources"]), key=json.dumps)
        assert sources == sorted([
            {"name": "O", "lag": 0, "seq": 4, "filter_subject": "o.1", "active_seen": True},
            {"name": "NOPE", "lag": 0, "active_seen": False,
             "error": {"code": 404, "err_code": 10059, "description": "stream not found"}},
            {"name": "O", "lag": 0, "seq": 5, "active_seen": True,
             "subject_transforms": [{"src": "o.0", "dest": "t.0"}]},
        ], key=json.dumps), si["sources"]
        copies = sorted([(await must(nc, "S", seq))[:3] for seq in range(1, 5)])
        copies = [(subj, without_identity(h), body) for subj, h, body in copies]
        assert copies == [
            ("o.1", "NATS/1.0|Nats-Msg-Id: id3|Foo: bar|Nats-Stream-Source: O 4 o.1 > o.1||", "x3"),
            ("t.0", "NATS/1.0|Nats-Msg-Id: id0|Foo: bar|Nats-Stream-Source: O 1 o.0 t.0 o.0||", "x0"),
            ("t.0", "NATS/1.0|Nats-Msg-Id: id2|Foo: bar|Nats-Stream-Source: O 3 o.0 t.0 o.0||", "x2"),
            ("t.0", "NATS/1.0|Nats-Msg-Id: id4|Foo: bar|Nats-Stream-Source: O 5 o.0 t.0 o.0||", "x4"),
        ]
        # Every copy names the same origin identity.
        idents = {(await must(nc, "S", seq))[1].split("Nats-Stream-Source: ")[1].split(" ")[5][:8]
                  for seq in range(1, 5)}
        assert len(idents) == 1, idents

        mmi = await until(nc, "MM", lambda i: "error" in i["mirror"])
        assert link(mmi["mirror"]) == {
            "name": "NOPE2", "lag": 0, "active_seen": False,
            "error": {"code": 404, "err_code": 10059, "description": "stream not found"}}

        for subject in ("s.x", "o.x"):
            r = await nc.request(subject, b"hi", headers={"Nats-Stream-Source": "O 1 > > o.1"}, timeout=5)
            assert json.loads(r.data)["error"] == {
                "code": 400, "err_code": 10227, "description": "message stream source header is not allowed"}

        assert (await api(nc, "STREAM.INFO.O"))["state"]["consumer_count"] == 0
        assert (await api(nc, "CONSUMER.LIST.O", {}))["total"] == 0

        errors = {
            "mirror_update": await api(nc, "STREAM.UPDATE.M",
                                       {"name": "M", "mirror": {"name": "O", "filter_subject": "o.1"}}),
            "mirror_with_subjects": await api(nc, "STREAM.UPDATE.S",
                                              {"name": "S", "subjects": ["s.>"], "mirror": {"name": "O"}}),
            "self_source": await api(nc, "STREAM.CREATE.C1",
                                     {"name": "C1", "subjects": ["c1"], "sources": [{"name": "C1"}]}),
            "mirror_cycle": await api(nc, "STREAM.CREATE.C2", {"name": "C2", "mirror": {"name": "C2"}}),
            "small_mirror": await api(nc, "STREAM.CREATE.C3",
                                      {"name": "C3", "mirror": {"name": "O"}, "max_msg_size": 1}),
        }
        got = {k: v.get("error") for k, v in errors.items()}
        assert got == {
            "mirror_update": {"code": 400, "err_code": 10055,
                              "description": "stream mirror configuration can not be updated"},
            "mirror_with_subjects": {"code": 400, "err_code": 10034,
                                     "description": "stream mirrors can not contain subjects"},
            "self_source": {"code": 500, "err_code": 10052, "description": "detected cycle"},
            "mirror_cycle": {"code": 500, "err_code": 10052, "description": "detected cycle"},
            "small_mirror": None,
        }, got
        # The origin allows any size (-1), so a small mirror is fine; the other way round
        # is refused.
        await api(nc, "STREAM.CREATE.BIG", {"name": "BIG", "subjects": ["big"], "max_msg_size": 100})
        small = await api(nc, "STREAM.CREATE.C4",
                          {"name": "C4", "sources": [{"name": "BIG"}], "max_msg_size": 10})
        assert small["error"] == {"code": 400, "err_code": 10046,
                                  "description": "stream source must have max message size >= target"}
    finally:
        await nc.close()


@async_test()
async def test_mirror_follows_live_and_resumes_after_restart(start_js_server):
    srv = start_js_server()
    nc = await connect(srv.url)
    js = nc.jetstream()
    await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o"]})
    await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "O", "opt_start_seq": 3}})
    await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s"], "sources": [{"name": "O"}]})
    for i in range(6):
        await js.publish("o", str(i).encode())
    mi = await until(nc, "M", lambda i: i["state"]["last_seq"] == 6)
    # Started at origin sequence 3: the mirror's first is 3, nothing before it counted.
    assert (mi["state"]["messages"], mi["state"]["first_seq"]) == (4, 3), mi["state"]
    await until(nc, "S", lambda i: i["state"]["messages"] == 6)
    await js.publish("s", b"own")
    await nc.close()
    srv.stop()

    srv = start_js_server(srv.store_dir)
    nc = await connect(srv.url)
    js = nc.jetstream()
    try:
        for i in range(6, 8):
            await js.publish("o", str(i).encode())
        mi = await until(nc, "M", lambda i: i["state"]["last_seq"] == 8)
        assert mi["state"]["messages"] == 6
        si = await until(nc, "S", lambda i: i["state"]["messages"] == 9)
        await asyncio.sleep(0.5)
        si = await api(nc, "STREAM.INFO.S")
        assert si["state"]["messages"] == 9, si["state"]
        assert si["sources"][0]["seq"] == 8
        subj, hdrs, body, _ = await must(nc, "S", 9)
        assert (subj, body) == ("o", "7")
        assert without_identity(hdrs) == "NATS/1.0|Nats-Stream-Source: O 8 > > o||"
    finally:
        await nc.close()


@async_test()
async def test_links_count_as_consumers_of_interest_and_workqueue_origins(js_server):
    """A mirror or source is a consumer of its origin: an interest origin keeps messages
    for it (and drops them once copied and nobody else wants them), a work queue gives
    them away to it."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.I", {"name": "I", "subjects": ["i"], "retention": "interest"})
        await api(nc, "STREAM.CREATE.IM", {"name": "IM", "mirror": {"name": "I"}})
        await api(nc, "STREAM.CREATE.W", {"name": "W", "subjects": ["w"], "retention": "workqueue"})
        await api(nc, "STREAM.CREATE.WS", {"name": "WS", "sources": [{"name": "W"}]})
        await asyncio.sleep(0.3)
        for i in range(5):
            await js.publish("i", str(i).encode())
            await js.publish("w", str(i).encode())
        await until(nc, "IM", lambda i: i["state"]["messages"] == 5)
        await until(nc, "WS", lambda i: i["state"]["messages"] == 5)
        await until(nc, "I", lambda i: i["state"]["messages"] == 0)
        await until(nc, "W", lambda i: i["state"]["messages"] == 0)
    finally:
        await nc.close()


@async_test()
async def test_copies_of_rollups_counters_and_ttls(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.R", {"name": "R", "subjects": ["r.>"], "allow_rollup_hdrs": True,
                                          "allow_msg_ttl": True})
        await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c"], "allow_msg_counter": True})
        await js.publish("r.a", b"1")
        await js.publish("r.a", b"2", headers={"Nats-Rollup": "sub"})
        await js.publish("r.t", b"t", headers={"Nats-TTL": "1s"})
        await nc.request("c", b"", headers={"Nats-Incr": "5"}, timeout=5)
        # A plain stream sourcing all of them: nothing stalls, nothing expires.
        await api(nc, "STREAM.CREATE.P", {"name": "P", "sources": [{"name": "R"}, {"name": "C"}]})
        info = await until(nc, "P", lambda i: i["state"]["messages"] == 3)
        await asyncio.sleep(1.5)
        info = await api(nc, "STREAM.INFO.P")
        assert info["state"]["messages"] == 3, info["state"]
        bodies = sorted([(await must(nc, "P", s))[2] for s in range(1, 4)])
        assert bodies == ["2", "t", '{"val":"5"}'], bodies
    finally:
        await nc.close()


@async_test()
async def test_a_sealed_mirror_copies_nothing_more(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o"]})
        await js.publish("o", b"1")
        await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "O"}})
        await until(nc, "M", lambda i: i["state"]["messages"] == 1)
        sealed = await api(nc, "STREAM.UPDATE.M", {"name": "M", "mirror": {"name": "O"}, "sealed": True})
        assert sealed["config"]["sealed"] is True, sealed
        for i in range(3):
            await js.publish("o", str(i).encode())
        await asyncio.sleep(0.8)
        assert (await api(nc, "STREAM.INFO.M"))["state"]["messages"] == 1
    finally:
        await nc.close()


@async_test()
async def test_a_mirror_applies_its_transform_rollups_and_republish(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        got = []

        async def on(m):
            got.append(m.subject)
        sub = await nc.subscribe("rp.>", cb=on)
        await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o.>"], "allow_rollup_hdrs": True})
        created = await api(nc, "STREAM.CREATE.M", {
            "name": "M", "mirror": {"name": "O"}, "allow_rollup_hdrs": True,
            "subject_transform": {"src": "o.>", "dest": "mt.>"},
            "republish": {"src": ">", "dest": "rp.>"}})
        assert "error" not in created, created
        # One at a time, so each is copied before the origin's rollup removes it.
        for i in (1, 2):
            await js.publish("o.a", str(i).encode())
            await until(nc, "M", lambda inf, i=i: inf["state"]["last_seq"] == i)
        await js.publish("o.a", b"3", headers={"Nats-Rollup": "sub"})
        info = await until(nc, "M", lambda i: i["state"]["last_seq"] == 3 and i["state"]["messages"] == 1)
        subj, _, body, _ = await must(nc, "M", 3)
        assert (subj, body) == ("mt.a", "3")
        await asyncio.sleep(0.3)
        assert got == ["rp.mt.a"] * 3, got
        await sub.unsubscribe()
    finally:
        await nc.close()


@async_test()
async def test_a_source_follows_a_recreated_origin_and_bad_filters_are_refused(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o"]})
        for i in range(3):
            await js.publish("o", f"old{i}".encode())
        await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s"], "sources": [{"name": "O"}]})
        await until(nc, "S", lambda i: i["state"]["messages"] == 3)
        await api(nc, "STREAM.DELETE.O")
        await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o"]})
        await js.publish("o", b"new0")
        await until(nc, "S", lambda i: i["state"]["messages"] == 4, timeout=30)
        subj, hdrs, body, _ = await must(nc, "S", 4)
        assert body == "new0" and " 1 > > o " in hdrs, hdrs

        bad = {
            "mirror_filter": await api(nc, "STREAM.CREATE.C5", {"name": "C5", "mirror": {"name": "O", "filter_subject": "o..a"}}),
            "mirror_dest": await api(nc, "STREAM.CREATE.C6", {"name": "C6", "mirror": {"name": "O", "subject_transforms": [{"src": "o.*", "dest": "x.$2"}]}}),
            "source_filter": await api(nc, "STREAM.CREATE.C7", {"name": "C7", "sources": [{"name": "O", "filter_subject": "o..a"}]}),
            "source_dest": await api(nc, "STREAM.CREATE.C8", {"name": "C8", "sources": [{"name": "O", "subject_transforms": [{"src": "o.*", "dest": "x.$2"}]}]}),
        }
        assert {k: v.get("error") for k, v in bad.items()} == {
            "mirror_filter": {"code": 500, "err_code": 10049, "description": "subject filter 'o..a' for the mirror invalid subject"},
            "mirror_dest": {"code": 400, "err_code": 10154, "description": "mirror transform: invalid mapping destination: wildcard index out of range in $2: [2]"},
            "source_filter": {"code": 500, "err_code": 10049, "description": "subject filter 'o..a' for the source: invalid subject"},
            "source_dest": {"code": 400, "err_code": 10146, "description": "source transform: invalid mapping destination: wildcard index out of range in $2: [2]"},
        }
    finally:
        await nc.close()


@async_test()
async def test_a_direct_mirror_answers_for_its_deleted_origin(js_server):
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o.>"], "allow_direct": True})
        await js.publish("o.a", b"v1")
        await js.publish("o.a", b"v2")
        m = await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "O"}})
        assert m["config"]["mirror_direct"] is True
        await until(nc, "M", lambda i: i["state"]["messages"] == 2)
        await must(nc, "M", 2)
        await api(nc, "STREAM.DELETE.O")
        deadline = time.monotonic() + 5
        while True:
            try:
                r = await nc.request("$JS.API.DIRECT.GET.O", json.dumps({"last_by_subj": "o.a"}).encode(), timeout=1)
                break
            except Exception:
                assert time.monotonic() < deadline, "no mirror answered"
                await asyncio.sleep(0.1)
        assert r.data == b"v2"
        assert r.headers["Nats-Stream"] == "M" and r.headers["Nats-Sequence"] == "2", r.headers
    finally:
        await nc.close()


CROSS_ACCOUNT = """
accounts {
  PUB {
    jetstream: enabled
    users: [ { user: pub, password: pwd } ]
    exports: [
      { service: "$JS.API.CONSUMER.CREATE.>", accounts: [ INT ] }
      { service: "$JS.FC.>" }
      { stream: "deliver.int.>", accounts: [ INT ] }
    ]
  }
  INT {
    jetstream: enabled
    users: [ { user: int, password: pwd } ]
    imports: [
      { service: { account: PUB, subject: "$JS.API.CONSUMER.CREATE.>" }, to: "JS.PUB.CONSUMER.CREATE.>" }
      { service: { account: PUB, subject: "$JS.FC.>" } }
      { stream: { account: PUB, subject: "deliver.int.>" } }
    ]
  }
  OTHER {
    jetstream: enabled
    users: [ { user: other, password: pwd } ]
  }
}
"""


@async_test()
async def test_cross_account_mirror_and_source(start_js_server):
    """Mirrors and sources of a stream in another account, through an `external` API
    prefix that the account imports (nats-server's own cross-account test setup): they
    copy as local ones do, `Nats-Stream-Source` names the link by a hash of the prefix,
    and an account without the import copies nothing."""
    server = start_js_server(config=CROSS_ACCOUNT)
    pub = await connect(server.url, user="pub", password="pwd")
    internal = await connect(server.url, user="int", password="pwd")
    other = await connect(server.url, user="other", password="pwd")
    try:
        r = await api(pub, "STREAM.CREATE.S", {"name": "S", "subjects": ["public.>"]})
        assert "error" not in r, r
        for i in range(3):
            await pub.request("public.a", f"m{i}".encode(), timeout=5)
        ext = {"api": "JS.PUB", "deliver": "deliver.int"}
        r = await api(internal, "STREAM.CREATE.M",
                      {"name": "M", "mirror": {"name": "S", "external": ext}})
        assert "error" not in r, r
        assert r["config"]["mirror"]["external"] == ext, r
        r = await api(internal, "STREAM.CREATE.C",
                      {"name": "C", "subjects": ["c.>"],
                       "sources": [{"name": "S", "external": ext}]})
        assert "error" not in r, r
        for i in range(3, 5):
            await pub.request("public.b", f"m{i}".encode(), timeout=5)
        m = await until(internal, "M", lambda i: i["state"]["messages"] == 5)
        assert m["mirror"]["name"] == "S" and m["mirror"]["external"] == ext, m["mirror"]
        c = await until(internal, "C", lambda i: i["state"]["messages"] == 5)
        [src] = c["sources"]
        assert src["external"] == ext, src
        # The mirror keeps the origin's sequences and subjects; the source's header
        # names the link by the origin and the prefix's hash.
        subject, _, data, _ = await must(internal, "M", 4)
        assert (subject, data) == ("public.b", "m3")
        subject, hdrs, data, _ = await must(internal, "C", 1)
        assert (subject, data) == ("public.a", "m0")
        assert without_identity(hdrs) == \
            "NATS/1.0|Nats-Stream-Source: S:zdbDttDq 1 > > public.a||", hdrs
        # Without the import, the same link finds nothing to copy.
        r = await api(other, "STREAM.CREATE.X",
                      {"name": "X", "mirror": {"name": "S", "external": ext}})
        assert "error" not in r, r
        await asyncio.sleep(0.5)
        x = await api(other, "STREAM.INFO.X")
        assert x["state"]["messages"] == 0, x
    finally:
        for nc in (pub, internal, other):
            await nc.close()


def exports_imports(exports: str, imports: str) -> str:
    return f"""
accounts {{
  PUB {{
    jetstream: enabled
    users: [ {{ user: pub, password: pwd }} ]
    exports: [
{exports}
    ]
  }}
  INT {{
    jetstream: enabled
    users: [ {{ user: int, password: pwd }} ]
    imports: [
{imports}
    ]
  }}
}}
"""


DELIVER_EXPORT = '{ service: "$JS.FC.>" }\n{ stream: "deliver.int.>", accounts: [ INT ] }'
DELIVER_IMPORT = ('{ service: { account: PUB, subject: "$JS.FC.>" } }\n'
                  '{ stream: { account: PUB, subject: "deliver.int.>" } }')
CREATE_EXPORT = '{ service: "$JS.API.CONSUMER.CREATE.>", accounts: [ INT ] }'
# (exports, imports, the origin mirrored, deliver prefix, messages copied)
EXTERNAL_CASES = {
    # The documented setup: it copies.
    "create_and_deliver": (CREATE_EXPORT + "\n" + DELIVER_EXPORT,
                           '{ service: { account: PUB, subject: "$JS.API.CONSUMER.CREATE.>" },'
                           ' to: "JS.PUB.CONSUMER.CREATE.>" }\n' + DELIVER_IMPORT,
                           "S", "deliver.int", 3),
    # A `$1` reference in the import's local subject maps as nats-server maps it.
    "dollar_reference": ('{ service: "$JS.API.CONSUMER.CREATE.*", accounts: [ INT ] }\n'
                         + DELIVER_EXPORT,
                         '{ service: { account: PUB, subject: "$JS.API.CONSUMER.CREATE.*" },'
                         ' to: "JS.PUB.CONSUMER.CREATE.$1" }\n' + DELIVER_IMPORT,
                         "S", "deliver.int", 3),
    # PUB exports the create request of S only; an import renaming it onto SECRET
    # must not reach SECRET.
    "renamed_onto_another_stream": (
        '{ service: "$JS.API.CONSUMER.CREATE.S", accounts: [ INT ] }\n' + DELIVER_EXPORT,
        '{ service: { account: PUB, subject: "$JS.API.CONSUMER.CREATE.S" },'
        ' to: "JS.PUB.CONSUMER.CREATE.SECRET" }\n' + DELIVER_IMPORT,
        "SECRET", "deliver.int", 0),
    # An export of another API (stream info) imported under the create subject.
    "another_api_renamed": (
        '{ service: "$JS.API.STREAM.INFO.>", accounts: [ INT ] }\n' + DELIVER_EXPORT,
        '{ service: { account: PUB, subject: "$JS.API.STREAM.INFO.>" },'
        ' to: "JS.PUB.CONSUMER.CREATE.>" }\n' + DELIVER_IMPORT,
        "SECRET", "deliver.int", 0),
    # Without the deliveries' import (or a deliver prefix), nothing comes back.
    "no_delivery_import": (CREATE_EXPORT,
                           '{ service: { account: PUB, subject: "$JS.API.CONSUMER.CREATE.>" },'
                           ' to: "JS.PUB.CONSUMER.CREATE.>" }',
                           "S", "deliver.int", 0),
    "no_deliver_prefix": (CREATE_EXPORT + "\n" + DELIVER_EXPORT,
                          '{ service: { account: PUB, subject: "$JS.API.CONSUMER.CREATE.>" },'
                          ' to: "JS.PUB.CONSUMER.CREATE.>" }\n' + DELIVER_IMPORT,
                          "S", "", 0),
}


@pytest.mark.parametrize("case", list(EXTERNAL_CASES))
@async_test()
async def test_external_links_need_the_exporters_consent(start_js_server, case):
    """What an external mirror copies depends on what the origin's account exports and
    the mirroring account imports, as in nats-server: the create request must reach the
    same origin through the export, and the deliveries must come back."""
    exports, imports, origin, deliver, want = EXTERNAL_CASES[case]
    server = start_js_server(config=exports_imports(exports, imports))
    pub = await connect(server.url, user="pub", password="pwd")
    internal = await connect(server.url, user="int", password="pwd")
    try:
        for name in ("S", "SECRET"):
            r = await api(pub, f"STREAM.CREATE.{name}",
                          {"name": name, "subjects": [name.lower() + ".>"]})
            assert "error" not in r, r
            for i in range(3):
                await pub.request(f"{name.lower()}.a", f"{name}{i}".encode(), timeout=5)
        r = await api(internal, "STREAM.CREATE.M", {"name": "M", "mirror": {
            "name": origin, "external": {"api": "JS.PUB", "deliver": deliver}}})
        assert "error" not in r, r
        if want:
            await until(internal, "M", lambda i: i["state"]["messages"] == want)
        else:
            await asyncio.sleep(1.5)
            info = await api(internal, "STREAM.INFO.M")
            assert info["state"]["messages"] == 0, info
    finally:
        await pub.close()
        await internal.close()


@async_test()
async def test_external_delivery_prefix_must_not_overlap_a_local_origin(js_server):
    nc = await connect(js_server.url)
    try:
        r = await api(nc, "STREAM.CREATE.X", {"name": "X", "subjects": ["foo.>"]})
        assert "error" not in r, r
        r = await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c"], "sources": [
            {"name": "X"}, {"name": "S", "external": {"api": "JS.PUB", "deliver": "foo"}}]})
        assert r["error"] == {"code": 400, "err_code": 10022, "description":
                              "stream external delivery prefix foo overlaps with stream "
                              "subject foo.>"}, r
    finally:
        await nc.close()


@async_test()
async def test_a_counter_stream_sums_the_counters_it_sources(js_server):
    """A counter stream sourcing counter streams adds each copy's difference from the last
    total seen from that origin and subject, rewrites the copy's `Nats-Incr` to that
    difference, and carries `Nats-Counter-Sources` on every message of the subject."""
    nc = await connect(js_server.url)
    try:
        for name in ("C1", "C2"):
            r = await api(nc, f"STREAM.CREATE.{name}", {"name": name, "subjects": [f"{name.lower()}.>"],
                                                          "allow_msg_counter": True})
            assert "error" not in r, r

        async def incr(subject: str, by: str) -> str:
            r = await nc.request(subject, b"", headers={"Nats-Incr": by}, timeout=5)
            ack = json.loads(r.data)
            assert "error" not in ack, ack
            return ack["val"]

        assert await incr("c1.hits", "5") == "5"
        assert await incr("c2.hits", "3") == "3"
        r = await api(nc, "STREAM.CREATE.AGG", {
            "name": "AGG", "subjects": ["agg.>"], "allow_msg_counter": True,
            "sources": [
                {"name": "C1", "subject_transforms": [{"src": "c1.>", "dest": "agg.>"}]},
                {"name": "C2", "subject_transforms": [{"src": "c2.>", "dest": "agg.>"}]},
            ]})
        assert "error" not in r, r
        await until(nc, "AGG", lambda i: i["state"]["messages"] == 2)

        async def last(seq: int) -> tuple[str, str, str]:
            """The last message on agg.hits once it is `seq` (natrium's info counts a
            message when appended, reads return it once durable)."""
            deadline = time.monotonic() + 5
            while True:
                r = await api(nc, "STREAM.MSG.GET.AGG", {"last_by_subj": "agg.hits"})
                m = r.get("message")
                if m and m["seq"] == seq:
                    hdrs = base64.b64decode(m.get("hdrs") or b"").decode()
                    return m["seq"], without_identity(hdrs), base64.b64decode(m["data"]).decode()
                assert time.monotonic() < deadline, r
                await asyncio.sleep(0.02)

        seq, hdrs, body = await last(2)
        assert body == '{"val":"8"}', body
        assert 'Nats-Counter-Sources: {"C1":{"c1.hits":"5"},"C2":{"c2.hits":"3"}}' in hdrs, hdrs

        # The origin goes down by 2: the copy adds -2, whatever its own increment said.
        assert await incr("c1.hits", "-2") == "3"
        await until(nc, "AGG", lambda i: i["state"]["messages"] == 3)
        seq, hdrs, body = await last(3)
        assert seq == 3 and body == '{"val":"6"}', (seq, body)
        assert hdrs == ("NATS/1.0|Nats-Incr: -2|Nats-Stream-Source: C1 2 c1.> agg.> c1.hits|"
                        'Nats-Counter-Sources: {"C1":{"c1.hits":"3"},"C2":{"c2.hits":"3"}}||'), hdrs

        # A local increment carries the sources on.
        assert await incr("agg.hits", "10") == "16"
        seq, hdrs, body = await last(4)
        assert (seq, body) == (4, '{"val":"16"}')
        assert hdrs == ('NATS/1.0|Nats-Incr: 10|Nats-Counter-Sources: '
                        '{"C1":{"c1.hits":"3"},"C2":{"c2.hits":"3"}}||'), hdrs
    finally:
        await nc.close()


@async_test()
async def test_a_source_through_a_durable_consumer(js_server):
    """`sources: [{"name": O, "consumer": {"name": C, "deliver_subject": D}}]` (2.15):
    the copies come through the origin's own push consumer C (ack policy
    `flow_control`), whose ack floor follows the copies; `Nats-Stream-Source` names the
    origin with `:C=<hash of the consumer name>`."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await flow_control_origin(nc, "dsrc", filter_subject="o.a")
        for i in range(5):
            await js.publish("o.a", f"a{i}".encode())
        await js.publish("o.b", b"not for C")
        r = await api(nc, "STREAM.CREATE.S", {"name": "S", "sources": [
            {"name": "O", "consumer": {"name": "C", "deliver_subject": "dsrc"}}]})
        assert "error" not in r, r
        info = await until(nc, "S", lambda i: i["state"]["messages"] == 5)
        subject, hdrs, body, _ = await must(nc, "S", 1)
        assert (subject, body) == ("o.a", "a0")
        assert without_identity(hdrs) == "NATS/1.0|Nats-Stream-Source: O:C=jZ6RvVRH 1 > > o.a||", hdrs

        await consumer_until(nc, "O", "C", lambda c: floors(c) == (5, 5, 0))

        # More later: copied, and acked on the origin.
        for i in range(3):
            await js.publish("o.a", f"later{i}".encode())
        await until(nc, "S", lambda i: i["state"]["messages"] == 8)
        await consumer_until(nc, "O", "C", lambda c: floors(c) == (9, 9, 0))
        bodies = [(await must(nc, "S", s))[2] for s in range(1, 9)]
        assert bodies == ["a0", "a1", "a2", "a3", "a4", "later0", "later1", "later2"], bodies
        info = await api(nc, "STREAM.INFO.S")
        src = info["sources"][0]
        assert (src["name"], src["seq"], src["lag"]) == ("O", 9, 0), src
        assert "error" not in src and src["active"] >= 0, src
        # What the consumer's filter leaves out is no lag.
        await js.publish("o.b", b"not for C either")
        src = (await api(nc, "STREAM.INFO.S"))["sources"][0]
        assert (src["seq"], src["lag"]) == (9, 0), src

        # Removing the source lets go of the consumer's deliver subject.
        assert (await api(nc, "CONSUMER.INFO.O.C")).get("push_bound") is True
        r = await api(nc, "STREAM.UPDATE.S", {"name": "S", "sources": []})
        assert "error" not in r, r
        await consumer_until(nc, "O", "C", lambda c: not c.get("push_bound"))
        await js.publish("o.a", b"not copied")
        await asyncio.sleep(0.5)
        assert (await api(nc, "STREAM.INFO.S"))["state"]["messages"] == 8

        # A consumer of another ack policy is refused, and the link says why.
        r = await api(nc, "CONSUMER.CREATE.O.EX", {"stream_name": "O", "config": {
            "durable_name": "EX", "deliver_subject": "dex", "ack_policy": "explicit"}})
        assert "error" not in r, r
        r = await api(nc, "STREAM.CREATE.S3", {"name": "S3", "sources": [
            {"name": "O", "consumer": {"name": "EX", "deliver_subject": "dex"}}]})
        assert "error" not in r, r
        info = await until(nc, "S3", lambda i: "error" in i["sources"][0])
        src = info["sources"][0]
        assert src["error"]["err_code"] == 10217, src
        assert (await api(nc, "STREAM.INFO.S3"))["state"]["messages"] == 0

        # A consumer that does not exist: nothing is copied and no error is shown.
        r = await api(nc, "STREAM.CREATE.S2", {"name": "S2", "sources": [
            {"name": "O", "consumer": {"name": "NOPE", "deliver_subject": "d2"}}]})
        assert "error" not in r, r
        await asyncio.sleep(1.5)
        info = await api(nc, "STREAM.INFO.S2")
        assert info["state"]["messages"] == 0
        assert "error" not in info["sources"][0], info["sources"]
    finally:
        await nc.close()


@async_test()
async def test_a_durable_consumer_source_empties_a_work_queue_origin(start_js_server):
    """Copies through a work-queue origin's durable consumer are acknowledged by the
    flow-control answers, so the origin gives them away; after a restart the source goes
    on where it was, copying nothing twice."""
    srv = start_js_server()
    nc = await connect(srv.url)
    js = nc.jetstream()
    try:
        await flow_control_origin(nc, "dwq", "WQ", subjects=["wq.>"], retention="workqueue")
        r = await api(nc, "STREAM.CREATE.S", {"name": "S", "sources": [
            {"name": "WQ", "consumer": {"name": "C", "deliver_subject": "dwq"}}]})
        assert "error" not in r, r
        for i in range(4):
            await js.publish("wq.x", f"w{i}".encode())
        await until(nc, "S", lambda i: i["state"]["messages"] == 4)
        await until(nc, "WQ", lambda i: i["state"]["messages"] == 0)
    finally:
        await nc.close()
    srv.stop()
    srv = start_js_server(srv.store_dir)
    nc = await connect(srv.url)
    js = nc.jetstream()
    try:
        for i in range(2):
            await js.publish("wq.x", f"after{i}".encode())
        await until(nc, "S", lambda i: i["state"]["messages"] == 6)
        await until(nc, "WQ", lambda i: i["state"]["messages"] == 0)
        await asyncio.sleep(0.5)
        info = await api(nc, "STREAM.INFO.S")
        assert info["state"]["messages"] == 6, info["state"]
        bodies = [(await must(nc, "S", s))[2] for s in range(1, 7)]
        assert bodies == ["w0", "w1", "w2", "w3", "after0", "after1"], bodies
    finally:
        await nc.close()


@async_test()
async def test_a_mirror_through_a_durable_consumer(js_server):
    """`mirror: {"name": O, "consumer": {...}}`: the mirror keeps the origin's sequences,
    times and headers, and the consumer's ack floor follows it."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await flow_control_origin(nc, "dmir")
        await js.publish("o.a", b"one", headers={"X-H": "1"})
        await js.publish("o.b", b"two")
        await api(nc, "STREAM.MSG.DELETE.O", {"seq": 2})
        await js.publish("o.c", b"three")
        r = await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {
            "name": "O", "consumer": {"name": "C", "deliver_subject": "dmir"}}})
        assert "error" not in r, r
        await until(nc, "M", lambda i: i["state"]["last_seq"] == 3 and i["state"]["messages"] == 2)
        for seq in (1, 3):
            got = await must(nc, "M", seq)
            want = await must(nc, "O", seq)
            assert got == want, (seq, got, want)
        await consumer_until(
            nc, "O", "C", lambda c: (c["ack_floor"]["stream_seq"], c["num_ack_pending"]) == (3, 0))
        info = await api(nc, "STREAM.INFO.M")
        assert info["mirror"]["name"] == "O" and "error" not in info["mirror"], info["mirror"]
    finally:
        await nc.close()


RESET_EXPORT = '{ service: "$JS.API.CONSUMER.RESET.>", accounts: [ INT ] }'
RESET_IMPORT = ('{ service: { account: PUB, subject: "$JS.API.CONSUMER.RESET.>" },'
                ' to: "JS.PUB.CONSUMER.RESET.>" }')
FC_EXPORT, FC_IMPORT = '{ service: "$JS.FC.>" }', '{ service: { account: PUB, subject: "$JS.FC.>" } }'
DLV_EXPORT = '{ stream: "dlv.>", accounts: [ INT ] }'
DLV_IMPORT = '{ stream: { account: PUB, subject: "dlv.>" } }'
# (exports, imports, copies, acknowledged on the origin)
EXTERNAL_CONSUMER_CASES = {
    "reset_deliveries_and_acks": ([RESET_EXPORT, FC_EXPORT, DLV_EXPORT],
                                  [RESET_IMPORT, FC_IMPORT, DLV_IMPORT], 3, 3),
    "no_flow_control_import": ([RESET_EXPORT, DLV_EXPORT], [RESET_IMPORT, DLV_IMPORT], 3, 0),
    "no_reset_import": ([FC_EXPORT, DLV_EXPORT], [FC_IMPORT, DLV_IMPORT], 0, 0),
    "no_deliveries_import": ([RESET_EXPORT, FC_EXPORT], [RESET_IMPORT, FC_IMPORT], 0, 0),
}


@pytest.mark.parametrize("case", list(EXTERNAL_CONSUMER_CASES))
@async_test()
async def test_external_source_through_a_durable_consumer(start_js_server, case):
    """A source in another account through the exporter's durable consumer copies when
    the reset request and the deliveries get through the imports, and acknowledges on
    the origin only when the flow-control answers get back too, as in nats-server."""
    exports, imports, copies, acked = EXTERNAL_CONSUMER_CASES[case]
    server = start_js_server(config=exports_imports("\n".join(exports), "\n".join(imports)))
    pub = await connect(server.url, user="pub", password="pwd")
    internal = await connect(server.url, user="int", password="pwd")
    try:
        await flow_control_origin(pub, "dlv.c")
        for i in range(3):
            await pub.request("o.a", f"m{i}".encode(), timeout=5)
        r = await api(internal, "STREAM.CREATE.S", {"name": "S", "sources": [{
            "name": "O", "external": {"api": "JS.PUB", "deliver": ""},
            "consumer": {"name": "C", "deliver_subject": "dlv.c"}}]})
        assert "error" not in r, r
        if copies:
            await until(internal, "S", lambda i: i["state"]["messages"] == copies)
            hdrs = (await must(internal, "S", 1))[1]
            assert without_identity(hdrs) == \
                "NATS/1.0|Nats-Stream-Source: O:zdbDttDq:C=jZ6RvVRH 1 > > o.a||", hdrs
        # Acks come with the flow-control answers, on the idle heartbeat (1 s).
        await asyncio.sleep(2.5)
        info = await api(internal, "STREAM.INFO.S")
        assert info["state"]["messages"] == copies, info["state"]
        c = await api(pub, "CONSUMER.INFO.O.C")
        assert c["ack_floor"]["stream_seq"] == acked, c
        assert c["num_ack_pending"] == copies - acked, c
    finally:
        await pub.close()
        await internal.close()


@async_test()
async def test_a_durable_consumer_source_recovers_from_a_refused_copy(js_server):
    """A copy the sourcing stream refuses (discard new at max_msgs) stops the link; once
    the limit is raised the rest comes through, each message once, and the origin's
    consumer ends acknowledged."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    try:
        await flow_control_origin(nc, "drf")
        for i in range(5):
            await js.publish("o.a", f"m{i}".encode())
        cfg = {"name": "S", "max_msgs": 2, "discard": "new",
               "sources": [{"name": "O", "consumer": {"name": "C", "deliver_subject": "drf"}}]}
        r = await api(nc, "STREAM.CREATE.S", cfg)
        assert "error" not in r, r
        await until(nc, "S", lambda i: i["state"]["messages"] == 2)
        await asyncio.sleep(1)
        assert (await api(nc, "STREAM.INFO.S"))["state"]["messages"] == 2
        r = await api(nc, "STREAM.UPDATE.S", {**cfg, "max_msgs": -1})
        assert "error" not in r, r
        await until(nc, "S", lambda i: i["state"]["messages"] == 5, timeout=20)
        bodies = [(await must(nc, "S", s))[2] for s in range(1, 6)]
        assert bodies == [f"m{i}" for i in range(5)], bodies
        await consumer_until(
            nc, "O", "C", lambda c: (c["ack_floor"]["stream_seq"], c["num_ack_pending"]) == (5, 0),
            timeout=15)
    finally:
        await nc.close()
