"""Subject mappings (``mappings {}`` at the top level and in accounts), against
natrium-server and nats-server with the same config text: literal and wildcard sources,
``$n`` / ``{{wildcard(n)}}`` references, ``>``, weighted destinations (and the weight left
over keeping the subject), the order against publish permissions, JetStream capturing
the mapped subject, and config errors.

Why it matters: applications move subjects without touching publishers (versioned
subjects, A/B traffic splits, canary routing); a mapping that silently does nothing, or
maps differently, sends data to the wrong place."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from natsutil import assert_no_msg, async_test, connect, monz, next_msgs, sync


async def received(nc, subjects: list[str], publish: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Subscribes to ``subjects``, publishes ``publish`` and returns what each got."""
    subs = {s: await nc.subscribe(s) for s in subjects}
    await sync(nc)
    for subj, data in publish:
        await nc.publish(subj, data)
    await sync(nc)
    out: dict[str, list[bytes]] = {}
    for s, sub in subs.items():
        got = []
        while True:
            try:
                got.append((await sub.next_msg(timeout=0.2)).data)
            except nats.errors.TimeoutError:
                break
        out[s] = got
    return out


@async_test()
async def test_literal_wildcard_and_full_wildcard_mappings(start_server):
    server = start_server(config="""
mappings {
  "orders.new": "orders.v2.new"
  "req.*.*": "svc.$2.{{wildcard(1)}}"
  "events.>": "archive.>"
}
""")
    nc = await connect(server.url)
    try:
        got = await received(
            nc,
            ["orders.new", "orders.v2.new", "svc.b.a", "archive.x.y", "req.a.b", "events.x.y", "other"],
            [("orders.new", b"1"), ("req.a.b", b"2"), ("events.x.y", b"3"), ("other", b"4")],
        )
        assert got == {
            "orders.new": [],
            "orders.v2.new": [b"1"],
            "svc.b.a": [b"2"],
            "archive.x.y": [b"3"],
            "req.a.b": [],
            "events.x.y": [],
            "other": [b"4"],
        }, got
        # The delivered message carries the mapped subject.
        sub = await nc.subscribe("orders.v2.new")
        await sync(nc)
        await nc.publish("orders.new", b"x")
        [m] = await next_msgs(sub, 1)
        assert m.subject == "orders.v2.new"
    finally:
        await nc.close()


@async_test()
async def test_weighted_destinations(start_server):
    server = start_server(config="""
mappings {
  "split": [ {destination: "left", weight: 50%}, {destination: "right", weight: 50} ]
  "canary": [ {destination: "canary.new", weight: "20%"} ]
}
""")
    nc = await connect(server.url)
    try:
        n = 400
        got = await received(
            nc, ["left", "right", "split", "canary.new", "canary"],
            [("split", b"s")] * n + [("canary", b"c")] * n)
        assert len(got["split"]) == 0, "all weights add up to 100: nothing keeps the subject"
        assert len(got["left"]) + len(got["right"]) == n
        assert 100 < len(got["left"]) < 300 and 100 < len(got["right"]) < 300, got
        # 20% mapped, the other 80% keep their subject.
        assert len(got["canary.new"]) + len(got["canary"]) == n
        assert 30 < len(got["canary.new"]) < 140, len(got["canary.new"])
    finally:
        await nc.close()


@async_test()
async def test_account_mappings_apply_to_that_account_only(start_server):
    server = start_server(config="""
accounts {
  A { users: [ {user: a, password: a} ], mappings: { "in": "out" } }
  B { users: [ {user: b, password: b} ] }
}
""")
    a = await connect(server.url, user="a", password="a")
    b = await connect(server.url, user="b", password="b")
    try:
        got_a = await received(a, ["in", "out"], [("in", b"a")])
        got_b = await received(b, ["in", "out"], [("in", b"b")])
        assert got_a == {"in": [], "out": [b"a"]}, got_a
        assert got_b == {"in": [b"b"], "out": []}, got_b
    finally:
        await a.close()
        await b.close()


@async_test()
async def test_publish_permissions_see_the_mapped_subject(start_server):
    """nats-server maps the subject before it checks publish permissions: a user allowed
    only ``orders.v2.new`` may publish to ``orders.new`` (mapped there), and a user
    allowed only ``orders.new`` may not."""
    server = start_server(config="""
mappings { "orders.new": "orders.v2.new" }
authorization {
  users: [
    {user: pub, password: p, permissions: { publish: { allow: ["orders.v2.new"] } } }
    {user: old, password: o, permissions: { publish: { allow: ["orders.new"] } } }
    {user: sub, password: s}
  ]
}
""")
    errors: list[Exception] = []

    async def err_cb(e):
        errors.append(e)

    pub = await connect(server.url, user="pub", password="p")
    old = await connect(server.url, user="old", password="o", error_cb=err_cb)
    sub = await connect(server.url, user="sub", password="s")
    try:
        s = await sub.subscribe("orders.v2.new")
        await sync(sub)
        await pub.publish("orders.new", b"mapped")
        await sync(pub)
        [m] = await next_msgs(s, 1)
        assert m.data == b"mapped"
        await old.publish("orders.new", b"denied")
        await sync(old)
        await assert_no_msg(s)
        assert any('permissions violation for publish to "orders.v2.new"' in str(e).lower()
                   for e in errors), errors
    finally:
        await pub.close()
        await old.close()
        await sub.close()


@async_test()
async def test_jetstream_captures_the_mapped_subject(start_js_server):
    server = start_js_server(config='mappings { "raw.*": "ingest.$1" }\n')
    nc = await connect(server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="INGEST", subjects=["ingest.>"])
        ack = await js.publish("raw.one", b"payload")
        assert ack.stream == "INGEST" and ack.seq == 1
        msg = await js.get_msg("INGEST", 1)
        assert msg.subject == "ingest.one"
    finally:
        await nc.close()


CONFIG_ERRORS = {
    # case: (mappings block, a keyword both servers print, lower-cased)
    "total_over_100": ('"x": [ {destination: a, weight: 60}, {destination: b, weight: 50} ]',
                       "total weight needs to be <= 100"),
    "weight_over_100": ('"x": [ {destination: a, weight: 101} ]', "invalid weight"),
    "missing_weight": ('"x": [ {destination: a} ]', "missing weight"),
    "duplicate_destination": ('"x": [ {destination: a, weight: 10}, {destination: a, weight: 10} ]',
                              "duplicate entry"),
    "unknown_field": ('"x": [ {destination: a, weight: 10, bogus: 1} ]', "unknown field"),
    "wildcard_out_of_range": ('"x.*": "y.$2"', "error adding mapping"),
    "star_in_destination": ('"x.*": "y.*"', 'error adding mapping for "x.*" to "y.*" : invalid subject'),
    "gt_dropped": ('"x.>": "y.z"', 'error adding mapping for "x.>" to "y.z" : invalid subject'),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_config_errors(run_server_to_exit, case):
    block, keyword = CONFIG_ERRORS[case]
    rc, out, err = run_server_to_exit(f"mappings {{ {block} }}\n")
    assert rc not in (0, None), (rc, out, err)
    assert keyword in (out + err).lower(), (rc, out, err)


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


@async_test()
async def test_mapping_functions(start_server):
    """The mapping functions nats-server offers: partition (FNV-1a of the named
    wildcards, or of the whole subject), splitFromLeft/Right, sliceFromLeft/Right, split,
    left, right; names are case-insensitive."""
    server = start_server(config="""
mappings {
  "part.*": "out.{{partition(4,1)}}.{{wildcard(1)}}"
  "whole.*.*": "all.{{Partition(3)}}.$2"
  "sfl.*": "fx.{{splitFromLeft(1,2)}}"
  "sfr.*": "fy.{{SplitFromRight(1,2)}}"
  "slf.*": "fz.{{sliceFromLeft(1,2)}}"
  "slr.*": "fw.{{sliceFromRight(1,2)}}"
  "spl.*": "fs.{{split(1,-)}}"
  "lft.*": "fl.{{left(1,2)}}"
  "rgt.*": "fr.{{right(1,2)}}"
}
""")
    nc = await connect(server.url)
    try:
        prefixes = ["out", "all", "fx", "fy", "fz", "fw", "fs", "fl", "fr"]
        subs = [await nc.subscribe(f"{p}.>") for p in prefixes]
        await sync(nc)
        keys = [f"k{i}" for i in range(12)]
        for k in keys:
            await nc.publish(f"part.{k}", b"")
            await nc.publish(f"whole.{k}.z", b"")
        for src in ["sfl", "sfr", "slf", "slr", "lft", "rgt"]:
            await nc.publish(f"{src}.abcde", b"")
        await nc.publish("spl.-a-b--c-", b"")
        await sync(nc)
        got = {p: [] for p in prefixes}
        for p, sub in zip(prefixes, subs):
            while True:
                try:
                    got[p].append((await sub.next_msg(timeout=0.2)).subject)
                except nats.errors.TimeoutError:
                    break
        assert got["out"] == [f"out.{fnv1a32(k.encode()) % 4}.{k}" for k in keys], got["out"]
        assert got["all"] == [f"all.{fnv1a32(f'whole.{k}.z'.encode()) % 3}.z" for k in keys], got["all"]
        assert got["fx"] == ["fx.ab.cde"]
        assert got["fy"] == ["fy.abc.de"]
        assert got["fz"] == ["fz.ab.cd.e"]
        assert got["fw"] == ["fw.a.bc.de"]
        assert got["fs"] == ["fs.a.b.c"]
        assert got["fl"] == ["fl.ab"]
        assert got["fr"] == ["fr.de"]
    finally:
        await nc.close()


@async_test()
async def test_mapping_functions_in_stream_transform_and_republish(start_js_server):
    server = start_js_server()
    nc = await connect(server.url)
    try:
        js = nc.jetstream()
        rp = await nc.subscribe("rp.>")
        await sync(nc)
        resp = await nc.request("$JS.API.STREAM.CREATE.PT", json.dumps({
            "name": "PT", "subjects": ["in.>"],
            "subject_transform": {"src": "in.*", "dest": "out.{{partition(3,1)}}.{{wildcard(1)}}"},
            "republish": {"src": "out.*.*", "dest": "rp.{{left(2,2)}}.{{wildcard(1)}}"},
        }).encode(), timeout=5)
        body = json.loads(resp.data)
        assert "error" not in body, body
        for k in ["alpha", "beta", "gamma"]:
            await js.publish(f"in.{k}", k.encode())
        for seq, k in enumerate(["alpha", "beta", "gamma"], start=1):
            part = fnv1a32(k.encode()) % 3
            stored = await js.get_msg("PT", seq)
            assert stored.subject == f"out.{part}.{k}", stored.subject
            m = await rp.next_msg(timeout=5)
            assert m.subject == f"rp.{k[:2]}.{part}", m.subject
    finally:
        await nc.close()


@async_test()
async def test_accountz_lists_the_mappings(start_server):
    """``/accountz?acc=`` shows an account's mappings by source, as nats-server's
    ``mappings``; top-level mappings belong to ``$G``."""
    server = start_server(config="""
http_port: -1
mappings { "g.>": "global.>" }
accounts {
  A {
    users: [ { user: a, password: a } ]
    mappings {
      "foo": "bar"
      "w.*": [ { destination: "x.$1", weight: 60% }, { destination: "y.$1", weight: 40% } ]
      "c.*.*": [ { destination: "canary.$2", weight: 20% } ]
    }
  }
  B { users: [ { user: b, password: b } ] }
}
""")
    a = (await monz(server, "/accountz?acc=A"))["account_detail"]
    # nats-server's routing table: the source added for what the destinations leave,
    # rising weights, each the running total.
    assert a["mappings"] == {
        "foo": [{"subject": "bar", "weight": 100}],
        "w.*": [{"subject": "y.$1", "weight": 40}, {"subject": "x.$1", "weight": 100}],
        "c.*.*": [{"subject": "canary.$2", "weight": 20}, {"subject": "c.$1.$2", "weight": 100}],
    }, a.get("mappings")
    b = (await monz(server, "/accountz?acc=B"))["account_detail"]
    assert "mappings" not in b, b
    g = (await monz(server, "/accountz?acc=$G"))["account_detail"]
    assert g["mappings"] == {"g.>": [{"subject": "global.>", "weight": 100}]}, g
