"""Accounts, permissions, imports/exports and the system account, configured from a
config file: every test starts natrium-server and nats-server (the ``impl`` parameter)
from the SAME config text and expects the same observable behaviour of both.

Expectations were taken from nats-server 2.15.1, whose half of each test keeps checking
them. Confirmed natrium differences are ``natrium_xfail`` (strict xfail of the natrium
half only, see conftest.py), so a fix shows up as XPASS."""

from __future__ import annotations

import asyncio
import json
import re
import time

import nats
import pytest
from nats.aio.client import __version__ as NATS_PY_VERSION

from natsutil import assert_no_msg, async_test, connect, next_msgs, sync, transcript
from raw_cases import ACCOUNTS_CONF, CASES, EXPECTED, PERMS_CONF


async def wait_for(pred, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# --- 3. raw protocol exchanges -----------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@async_test()
async def test_raw_exchange(start_server, case):
    """Byte-exact -ERR lines and MSG deliveries (INFO stripped) for one exchange."""
    conf, steps = CASES[case]
    server = start_server(conf)
    got = await transcript(server.port, steps)
    assert got == EXPECTED[case]


# --- 2. permission violations seen by nats-py --------------------------------------------


@async_test()
async def test_permission_violation_callbacks(start_server):
    """The error callback gets the server's text; the connection stays usable."""
    server = start_server(PERMS_CONF)
    errors: list[str] = []

    async def error_cb(e):
        errors.append(str(e))

    admin = await connect(server.url, user="admin", password="admin")
    nc = await connect(server.url, user="p", password="p", error_cb=error_cb)
    try:
        async def echo(msg):
            await msg.respond(b"echo:" + msg.data)

        await admin.subscribe("req.echo", cb=echo)
        await sync(admin)

        await nc.publish("pub.secret", b"x")
        await sync(nc)
        await nc.subscribe("other")
        await sync(nc)
        await nc.subscribe("work.x", queue="other")
        await sync(nc)
        await nc.subscribe("work.x")
        await sync(nc)
        await nc.publish("elsewhere", b"x", headers={"A": "b"})
        await sync(nc)
        await wait_for(lambda: len(errors) >= 5, what="5 error callbacks")
        # nats-py lowercases the -ERR text (the exact bytes are checked by test_raw_exchange).
        assert errors == [
            'nats: permissions violation for publish to "pub.secret"',
            'nats: permissions violation for subscription to "other"',
            'nats: permissions violation for subscription to "work.x" using queue "other"',
            'nats: permissions violation for subscription to "work.x"',
            'nats: permissions violation for publish to "elsewhere"',
        ]
        assert nc.is_connected and not nc.is_closed

        # Still usable: a request (reply on an allowed _INBOX) and an allowed subscription.
        r = await nc.request("req.echo", b"hi", timeout=5)
        assert r.data == b"echo:hi"
        sub = await nc.subscribe("sub.ok")
        qsub = await nc.subscribe("work.x", queue="workers")
        await sync(nc)
        await admin.publish("sub.ok", b"1")
        await admin.publish("work.x", b"2")
        await admin.publish("sub.secret.no", b"3")
        await sync(admin)
        assert (await sub.next_msg(timeout=5)).data == b"1"
        assert (await qsub.next_msg(timeout=5)).data == b"2"
        await assert_no_msg(sub)
        assert len(errors) == 5, errors
    finally:
        await nc.close()
        await admin.close()


@async_test()
async def test_allow_responses_with_nats_py(start_server):
    """A service user with allow_responses answers a request once; a second answer and
    any other publish are violations that do not close the connection."""
    server = start_server(PERMS_CONF)
    errors: list[str] = []

    async def error_cb(e):
        errors.append(str(e))

    svc = await connect(server.url, user="resp", password="resp", error_cb=error_cb)
    admin = await connect(server.url, user="admin", password="admin")
    try:
        async def handler(msg):
            await msg.respond(b"first")
            await msg.respond(b"second")

        await svc.subscribe("svc.time", cb=handler)
        await sync(svc)
        inbox = admin.new_inbox()
        replies = await admin.subscribe(inbox)
        await sync(admin)
        await admin.publish("svc.time", b"?", reply=inbox)
        assert (await replies.next_msg(timeout=5)).data == b"first"
        await wait_for(lambda: len(errors) >= 1, what="the error callback")
        await svc.publish("svc.other", b"x")
        await sync(svc)
        await wait_for(lambda: len(errors) >= 2, what="the second error callback")
        assert errors == [
            f'nats: permissions violation for publish to "{inbox.lower()}"',
            'nats: permissions violation for publish to "svc.other"',
        ]
        await assert_no_msg(replies)
        assert svc.is_connected
    finally:
        await svc.close()
        await admin.close()


# --- 4. cross-account ----------------------------------------------------------------------

SERVICE_CONF = """
accounts {
  A {
    users: [{user: a, password: a}]
    exports: [
      {stream: "ev.>"}
      {service: "svc.echo"}
      {service: "svc.multi", response_type: stream}
    ]
  }
  B {
    users: [{user: b, password: b}]
    imports: [
      {stream: {account: A, subject: "ev.>"}, prefix: "fromA"}
      {service: {account: A, subject: "svc.echo"}, to: "echo"}
      {service: {account: A, subject: "svc.multi"}, to: "multi"}
      {service: {account: A, subject: "svc.echo"}}
    ]
  }
  C { users: [{user: c, password: c}] }
}
"""


@async_test()
async def test_stream_import_prefix_and_to(start_server):
    server = start_server(ACCOUNTS_CONF)
    a = await connect(server.url, user="a", password="a")
    b = await connect(server.url, user="b", password="b")
    c = await connect(server.url, user="c", password="c")
    try:
        pre = await b.subscribe("fromA.ev.>")
        to = await b.subscribe("imported.>")
        raw_b = await b.subscribe("ev.>")
        plain_c = await c.subscribe("ev.>")
        await sync(b)
        await sync(c)
        await a.publish("ev.one", b"1", headers={"X-Id": "7"})
        await a.publish("priv.two", b"2")
        await sync(a)
        m = await pre.next_msg(timeout=5)
        assert (m.subject, m.data, m.headers) == ("fromA.ev.one", b"1", {"X-Id": "7"})
        m = await to.next_msg(timeout=5)
        assert (m.subject, m.data) == ("imported.two", b"2")
        m = await plain_c.next_msg(timeout=5)
        assert (m.subject, m.data) == ("ev.one", b"1")
        await assert_no_msg(raw_b)
        await assert_no_msg(plain_c, 0.1)
        # Imports flow one way only.
        back = await a.subscribe(">")
        await sync(a)
        await b.publish("fromA.ev.one", b"no")
        await b.publish("ev.one", b"no")
        await c.publish("ev.one", b"no")
        await sync(b)
        await sync(c)
        await assert_no_msg(back)
    finally:
        for nc in (a, b, c):
            await nc.close()


@async_test()
async def test_service_import_request_reply(start_server):
    """A request from the importing account on the "to" subject reaches the exporter on
    the exported subject with a "_R_." reply; the answer comes back to the requester."""
    server = start_server(SERVICE_CONF)
    a = await connect(server.url, user="a", password="a")
    b = await connect(server.url, user="b", password="b")
    try:
        seen = []

        async def echo(msg):
            seen.append((msg.subject, msg.reply))
            await msg.respond(b"echo:" + msg.data)

        await a.subscribe("svc.echo", cb=echo)
        await sync(a)
        r = await b.request("echo", b"hi", timeout=5)
        assert r.data == b"echo:hi"
        r = await b.request("svc.echo", b"direct", timeout=5)
        assert r.data == b"echo:direct"
        assert [s for s, _ in seen] == ["svc.echo", "svc.echo"]
        for _, reply in seen:
            assert reply.startswith("_R_."), reply
        # Nothing is imported for C, and the exported subject in A is not B's.
        c = await connect(server.url, user="c", password="c")
        try:
            with pytest.raises(nats.errors.NoRespondersError):
                await c.request("echo", b"x", timeout=2)
        finally:
            await c.close()
    finally:
        await a.close()
        await b.close()


@async_test()
async def test_service_import_request_info_header(start_server):
    server = start_server(SERVICE_CONF)
    a = await connect(server.url, user="a", password="a")
    b = await connect(server.url, user="b", password="b")
    try:
        sub = await a.subscribe("svc.echo")
        await sync(a)
        await b.publish("echo", b"q", reply="_INBOX.x")
        await b.publish("echo", b"q2", reply="_INBOX.y", headers={"X-A": "1"})
        await sync(b)
        m1, m2 = await next_msgs(sub, 2)
        for m in (m1, m2):
            assert m.headers is not None and "Nats-Request-Info" in m.headers, m.headers
            info = json.loads(m.headers["Nats-Request-Info"])
            assert set(info) == {"acc", "rtt"} and info["acc"] == "B", info
            assert isinstance(info["rtt"], int)
        assert m2.headers["X-A"] == "1"
    finally:
        await a.close()
        await b.close()


@async_test()
async def test_service_import_response_types(start_server):
    """A singleton service passes one response back; a "stream" one passes all of them."""
    server = start_server(SERVICE_CONF)
    a = await connect(server.url, user="a", password="a")
    b = await connect(server.url, user="b", password="b")
    try:
        async def three(msg):
            for i in range(3):
                await msg.respond(str(i).encode())

        await a.subscribe("svc.echo", cb=three)
        await a.subscribe("svc.multi", cb=three)
        await sync(a)
        single = await b.subscribe("_INBOX.single")
        multi = await b.subscribe("_INBOX.multi")
        await sync(b)
        await b.publish("echo", b"", reply="_INBOX.single")
        await b.publish("multi", b"", reply="_INBOX.multi")
        await sync(b)
        assert [m.data for m in await next_msgs(multi, 3)] == [b"0", b"1", b"2"]
        assert (await single.next_msg(timeout=5)).data == b"0"
        await assert_no_msg(single)
    finally:
        await a.close()
        await b.close()


@async_test()
async def test_accounts_isolation(start_server):
    """Same subject, different accounts: no traffic crosses; same account: it does."""
    server = start_server(ACCOUNTS_CONF)
    conns = {}
    try:
        for u in ("a", "a2", "b", "c"):
            conns[u] = await connect(server.url, user=u, password=u)
        subs = {u: await nc.subscribe("shared.subject") for u, nc in conns.items()}
        for nc in conns.values():
            await sync(nc)
        await conns["a"].publish("shared.subject", b"from-a")
        await conns["b"].publish("shared.subject", b"from-b")
        for nc in conns.values():
            await sync(nc)
        assert (await subs["a"].next_msg(timeout=5)).data == b"from-a"
        assert (await subs["a2"].next_msg(timeout=5)).data == b"from-a"
        assert (await subs["b"].next_msg(timeout=5)).data == b"from-b"
        for u in ("a", "a2", "b"):
            await assert_no_msg(subs[u], 0.1)
        await assert_no_msg(subs["c"])
    finally:
        for nc in conns.values():
            await nc.close()


BAD_IMPORTS = {
    "stream-not-authorized": (
        """
accounts {
  A { users: [{user: a, password: a}], exports: [{stream: "priv.>", accounts: [B]}] }
  B { users: [{user: b, password: b}] }
  C { users: [{user: c, password: c}], imports: [{stream: {account: A, subject: "priv.>"}}] }
}
""",
        ['"priv.>"', "not authorized"],
    ),
    "service-not-authorized": (
        """
accounts {
  A { users: [{user: a, password: a}], exports: [{service: "svc.x", accounts: [B]}] }
  B { users: [{user: b, password: b}] }
  C { users: [{user: c, password: c}], imports: [{service: {account: A, subject: "svc.x"}, to: "x"}] }
}
""",
        ['"svc.x"', "not authorized"],
    ),
    "stream-not-exported": (
        """
accounts {
  A { users: [{user: a, password: a}], exports: [{stream: "ev.>"}] }
  C { users: [{user: c, password: c}], imports: [{stream: {account: A, subject: "nope.>"}}] }
}
""",
        ['"nope.>"', "not authorized"],
    ),
    "unknown-account": (
        """
accounts {
  C { users: [{user: c, password: c}], imports: [{service: {account: Z, subject: "ev"}}] }
}
""",
        ['"Z"', "not defined"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
def test_unauthorized_import_refuses_to_start(run_server_to_exit, impl, case):
    """Both refuse the config and name the import; the texts are compared loosely
    (printed for the record: run with -s to see them)."""
    conf, needles = BAD_IMPORTS[case]
    rc, out, err = run_server_to_exit(conf)
    text = out + err
    print(f"[{impl}] {case}: exit={rc}\nstdout: {out!r}\nstderr: {err!r}")
    assert rc is not None, f"{impl} kept running with an unauthorized import"
    assert rc != 0
    for n in needles:
        assert n in text, (n, text)
    assert "Listening for client connections" not in text


# --- 5. system account ---------------------------------------------------------------------

SYS_CONF = """
accounts {
  A { users: [{user: a, password: a}] }
  SYS { users: [{user: sys, password: sys}] }
}
system_account: SYS
"""


def key_paths(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= key_paths(v, prefix + k + ".")
    return out


async def connect_disconnect_events(server) -> tuple[dict, dict, str]:
    """(CONNECT event, DISCONNECT event, server id) for one client of account A that
    publishes 2 messages (7 bytes) and receives 1 (3 bytes)."""
    sys_nc = await connect(server.url, user="sys", password="sys")
    try:
        server_id = sys_nc._server_info["server_id"]
        con = await sys_nc.subscribe("$SYS.ACCOUNT.A.CONNECT")
        dis = await sys_nc.subscribe("$SYS.ACCOUNT.A.DISCONNECT")
        await sync(sys_nc)
        a = await connect(server.url, user="a", password="a", name="client-a")
        sub = await a.subscribe("loop")
        await sync(a)
        await a.publish("loop", b"abc")
        await a.publish("other", b"defg")
        await sub.next_msg(timeout=5)
        await sync(a)
        await a.close()
        ce = json.loads((await con.next_msg(timeout=5)).data)
        de = json.loads((await dis.next_msg(timeout=5)).data)
        await assert_no_msg(con, 0.1)
        await assert_no_msg(dis, 0.1)
        return ce, de, server_id
    finally:
        await sys_nc.close()


@async_test()
async def test_sys_connect_disconnect_events(start_server):
    server = start_server(SYS_CONF)
    ce, de, server_id = await connect_disconnect_events(server)
    ts = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    for ev, typ in ((ce, "client_connect"), (de, "client_disconnect")):
        assert ev["type"] == f"io.nats.server.advisory.v1.{typ}"
        assert isinstance(ev["id"], str) and len(ev["id"]) == 22
        assert ts.match(ev["timestamp"]), ev["timestamp"]
        s = ev["server"]
        assert (s["id"], s["name"], s["host"], s["ver"]) == (server_id, server_id, "127.0.0.1", "2.15.1")
        assert s["jetstream"] is False and s["flags"] == 0 and isinstance(s["seq"], int)
        cl = ev["client"]
        assert (cl["acc"], cl["user"], cl["name"], cl["lang"], cl["host"]) == (
            "A", "a", "client-a", "python3", "127.0.0.1")
        assert (cl["kind"], cl["client_type"]) == ("Client", "nats")
        assert cl["ver"] == NATS_PY_VERSION
        assert ts.match(cl["start"])
    assert ce["client"]["id"] == de["client"]["id"] and ce["client"]["start"] == de["client"]["start"]
    assert de["reason"] == "Client Closed"
    assert ts.match(de["client"]["stop"])
    assert isinstance(de["client"]["rtt"], int)
    assert set(de["sent"]) == set(de["received"]) == {"msgs", "bytes"}
    assert de["server"]["seq"] > ce["server"]["seq"]


@async_test()
async def test_sys_disconnect_event_counters(start_server):
    server = start_server(SYS_CONF)
    _, de, _ = await connect_disconnect_events(server)
    assert de["sent"] == {"msgs": 2, "bytes": 7}
    assert de["received"] == {"msgs": 1, "bytes": 3}


SERVER_KEYS = {"name", "host", "id", "ver", "jetstream", "flags", "seq", "time", "feature_flags",
               "feature_flags.js_ack_fc_v2", "feature_flags.js_api_reply_v2",
               "feature_flags.js_raft_delete_range", "feature_flags.js_snapshot_sources"}
CLIENT_KEYS = {"start", "host", "id", "acc", "user", "name", "lang", "ver", "name_tag", "kind",
               "client_type"}


@async_test()
async def test_sys_event_key_sets(start_server):
    """The exact set of (nested) keys of CONNECT/DISCONNECT events."""
    server = start_server(SYS_CONF)
    ce, de, _ = await connect_disconnect_events(server)
    assert key_paths(ce) == {"type", "id", "timestamp", "server", "client"} | {
        "server." + k for k in SERVER_KEYS} | {"client." + k for k in CLIENT_KEYS}
    assert key_paths(de) == {
        "type", "id", "timestamp", "server", "client", "sent", "sent.msgs", "sent.bytes",
        "received", "received.msgs", "received.bytes", "reason"} | {
        "server." + k for k in SERVER_KEYS} | {
        "client." + k for k in CLIENT_KEYS | {"rtt", "stop"}}
    assert ce["client"]["name_tag"] == "A"


@async_test()
async def test_sys_server_ping_answered(start_server):
    """$SYS.REQ.SERVER.PING: one answer, about this server; only the system account sees
    the service."""
    server = start_server(SYS_CONF)
    sys_nc = await connect(server.url, user="sys", password="sys")
    a = await connect(server.url, user="a", password="a")
    try:
        inbox = sys_nc.new_inbox()
        sub = await sys_nc.subscribe(inbox)
        await sync(sys_nc)
        await sys_nc.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
        reply = json.loads((await sub.next_msg(timeout=5)).data)
        await assert_no_msg(sub)
        s = reply["server"]
        assert s["id"] == sys_nc._server_info["server_id"] and s["ver"] == "2.15.1"
        assert s["host"] == "127.0.0.1" and isinstance(s["seq"], int)
        with pytest.raises(nats.errors.NoRespondersError):
            await a.request("$SYS.REQ.SERVER.PING", b"", timeout=2)
    finally:
        await sys_nc.close()
        await a.close()


STATSZ_KEYS = {"start", "mem", "cores", "cpu", "connections", "total_connections",
               "active_accounts", "subscriptions", "sent", "received", "slow_consumers",
               "active_servers", "gomaxprocs", "sent_to_clients", "received_from_clients"}

# endpoint -> (top-level keys, keys of the payload object or None to not look inside)
SYS_ENDPOINTS = {
    "PING": ({"server", "statsz"}, STATSZ_KEYS),
    "PING.STATSZ": ({"server", "statsz"}, STATSZ_KEYS),
    "STATSZ": ({"server", "statsz"}, STATSZ_KEYS),
    "IDZ": ({"name", "host", "id"}, None),
    "PING.IDZ": ({"name", "host", "id"}, None),
    "HEALTHZ": ({"server", "data"}, {"status", "status_code"}),
    "VARZ": ({"server", "data"}, None),
    "CONNZ": ({"server", "data"}, {"server_id", "now", "num_connections", "total", "offset",
                                   "limit", "connections"}),
    "SUBSZ": ({"server", "data"}, {"server_id", "now", "num_subscriptions", "num_cache",
                                   "num_inserts", "num_removes", "num_matches",
                                   "cache_hit_rate", "max_fanout", "avg_fanout", "total",
                                   "offset", "limit"}),
    "ACCOUNTZ": ({"server", "data"}, {"server_id", "now", "system_account", "accounts"}),
    "JSZ": ({"server", "data"}, {"server_id", "now", "disabled", "config", "memory", "storage",
                                 "reserved_memory", "reserved_storage", "accounts",
                                 "ha_assets", "api", "streams", "consumers", "messages",
                                 "bytes", "total"}),
}


@pytest.mark.parametrize("case", list(SYS_ENDPOINTS))
@async_test()
async def test_sys_server_request_shape(start_server, case):
    """Top-level keys of $SYS.REQ.SERVER.PING[.X] / $SYS.REQ.SERVER.<id>.X answers, and
    the keys of their payload object."""
    server = start_server(SYS_CONF)
    sys_nc = await connect(server.url, user="sys", password="sys")
    try:
        sid = sys_nc._server_info["server_id"]
        subject = f"$SYS.REQ.SERVER.{case}" if case.startswith("PING") else f"$SYS.REQ.SERVER.{sid}.{case}"
        reply = json.loads((await sys_nc.request(subject, b"", timeout=5)).data)
        top, inner = SYS_ENDPOINTS[case]
        assert set(reply) == top, reply
        if inner is not None:
            payload = reply["statsz"] if "statsz" in top else reply["data"]
            assert set(payload) == inner
        if "server" in top:
            assert reply["server"]["id"] == sid
        else:
            assert reply["id"] == sid
    finally:
        await sys_nc.close()


@async_test()
async def test_sys_account_conns_events(start_server):
    server = start_server(SYS_CONF)
    sys_nc = await connect(server.url, user="sys", password="sys")
    try:
        new = await sys_nc.subscribe("$SYS.ACCOUNT.A.SERVER.CONNS")
        old = await sys_nc.subscribe("$SYS.SERVER.ACCOUNT.A.CONNS")
        await sync(sys_nc)
        a = await connect(server.url, user="a", password="a")
        await a.publish("x", b"1")
        await sync(a)
        await a.close()
        for sub in (new, old):
            up, down = [json.loads(m.data) for m in await next_msgs(sub, 2, timeout=2)]
            for ev in (up, down):
                assert ev["type"] == "io.nats.server.advisory.v1.account_connections"
                assert (ev["acc"], ev["name"]) == ("A", "A")
                assert ev["server"]["id"] == sys_nc._server_info["server_id"]
            assert (up["conns"], up["total_conns"]) == (1, 1)
            assert (down["conns"], down["total_conns"]) == (0, 0)
            assert down["received"]["msgs"] == 1 and down["received"]["bytes"] == 1
    finally:
        await sys_nc.close()


@pytest.mark.parametrize("case", ["$SYS.REQ.USER.INFO", "$SYS.REQ.ACCOUNT.PING.CONNZ",
                                  "$SYS.REQ.SERVER.PING.CONNZ"])
@async_test()
async def test_account_system_imports(start_server, case):
    """Any account's users can ask who they are and list their account's connections."""
    server = start_server(SYS_CONF)
    a = await connect(server.url, user="a", password="a")
    try:
        reply = json.loads((await a.request(case, b"", timeout=5)).data)
        assert set(reply) == {"server", "data"}
        if case == "$SYS.REQ.USER.INFO":
            assert reply["data"] == {"user": "a", "account": "A", "account_name": "A"}
        else:
            assert reply["data"]["num_connections"] == 1
            assert [c["lang"] for c in reply["data"]["connections"]] == ["python3"]
    finally:
        await a.close()


SYS_JS_CONF = """
server_tags: ["region:eu", "az:1"]
accounts {
  A { jetstream: enabled, users: [{user: a, password: a}] }
  SYS { users: [{user: sys, password: sys}] }
}
system_account: SYS
"""


@async_test()
async def test_sys_requests_as_go_tools_send_them(start_js_server):
    """Found by a monitoring probe: natscli marshals nats-server's option structs, so
    CONNZ carries `state` as a number, HEALTHZ names the account `account`, JSZ asks for
    consumers with `consumer`; `$SYS.REQ.ACCOUNT.<acc>.JSZ` answers the account's detail;
    routez/gatewayz/leafz answer their standalone shapes; tags are reported."""
    server = start_js_server(config=SYS_JS_CONF)
    a = await connect(server.url, user="a", password="a")
    sys_nc = await connect(server.url, user="sys", password="sys")
    try:
        await a.request("$JS.API.STREAM.CREATE.S1", json.dumps({"name": "S1", "subjects": ["s1"]}).encode(), timeout=5)
        await a.request("$JS.API.CONSUMER.CREATE.S1.C1",
                        json.dumps({"stream_name": "S1", "config": {"durable_name": "C1", "ack_policy": "explicit"}}).encode(),
                        timeout=5)
        await a.request("s1", b"x", timeout=5)

        async def req(subject, body):
            r = await sys_nc.request(subject, json.dumps(body).encode(), timeout=5)
            return json.loads(r.data)

        go_connz = {"sort": "", "auth": False, "subscriptions": False, "subscriptions_detail": False,
                    "offset": 0, "limit": 0, "cid": 0, "mqtt_client": "", "user": "", "acc": "",
                    "filter_subject": ""}
        for state in (0, 1, 2):
            got = await req("$SYS.REQ.SERVER.PING.CONNZ", {**go_connz, "state": state})
            assert "error" not in got and got["data"]["num_connections"] >= 0, got
        got = await req("$SYS.REQ.ACCOUNT.A.CONNZ", {**go_connz, "state": 0})
        assert got["data"]["num_connections"] == 1, got
        bad = await req("$SYS.REQ.SERVER.PING.CONNZ", {"state": "closed"})
        assert bad["error"]["code"] == 400 and "cannot unmarshal string" in bad["error"]["description"], bad
        assert "data" not in bad
        sort = await req("$SYS.REQ.SERVER.PING.CONNZ", {"sort": "bogus"})
        assert sort["data"] is None and sort["error"] == {"code": 500, "description": "invalid sorting option: bogus"}

        ok = await req("$SYS.REQ.SERVER.PING.HEALTHZ", {"account": "A", "stream": "S1"})
        assert ok["data"] == {"status": "ok", "status_code": 200}, ok
        ok = await req("$SYS.REQ.SERVER.PING.HEALTHZ", {"account": "A", "stream": "S1", "consumer": "C1"})
        assert ok["data"]["status_code"] == 200, ok

        jsz = await req("$SYS.REQ.SERVER.PING.JSZ", {"accounts": True, "streams": True, "consumer": True})
        [acc] = [d for d in jsz["data"]["account_details"] if d["name"] == "A"]
        [st] = acc["stream_detail"]
        assert st["cluster"] == {"leader": jsz["server"]["name"]}
        [c] = st["consumer_detail"]
        assert (c["stream_name"], c["name"], c["num_pending"], "config" in c) == ("S1", "C1", 1, False), c
        # `streams` alone implies the account list.
        jsz = await req("$SYS.REQ.SERVER.PING.JSZ", {"streams": True})
        assert any(d["name"] == "A" for d in jsz["data"]["account_details"]), jsz
        one = await req("$SYS.REQ.ACCOUNT.A.JSZ", {"streams": True})
        assert one["data"]["name"] == "A" and one["data"]["stream_detail"][0]["name"] == "S1", one
        # `consumer` alone does not bring stream details into the account's answer.
        alone = await req("$SYS.REQ.ACCOUNT.A.JSZ", {"consumer": True})
        assert "stream_detail" not in alone["data"], alone
        nojs = await req("$SYS.REQ.ACCOUNT.SYS.JSZ", {})
        assert nojs["error"]["description"] == 'account "SYS" not jetstream enabled', nojs

        for name, keys in (("ROUTEZ", ["server_id", "server_name", "now", "num_routes", "routes"]),
                           ("GATEWAYZ", ["server_id", "now", "outbound_gateways", "inbound_gateways"]),
                           ("LEAFZ", ["server_id", "now", "leafnodes", "leafs"])):
            got = await req(f"$SYS.REQ.SERVER.PING.{name}", {})
            assert list(got["data"]) == keys, got
        varz = await req("$SYS.REQ.SERVER.PING.VARZ", {})
        assert varz["data"]["tags"] == ["region:eu", "az:1"]
        assert varz["server"]["tags"] == ["region:eu", "az:1"]
    finally:
        await a.close()
        await sys_nc.close()


@async_test()
async def test_sys_requests_honour_event_filters(start_server):
    """A $SYS.REQ.SERVER.PING.* request filtered to other servers gets no answer from
    this one; matching filters (substring name, exact name, tags) still get one."""
    server = start_server("server_name: mon1\nserver_tags: [\"t:1\"]\n" + SYS_CONF)
    sys_nc = await connect(server.url, user="sys", password="sys")
    try:
        async def answered(subject, body) -> bool:
            try:
                await sys_nc.request(subject, json.dumps(body).encode(), timeout=0.5)
                return True
            except Exception:
                return False
        assert await answered("$SYS.REQ.SERVER.PING.VARZ", {"server_name": "mon"})
        assert not await answered("$SYS.REQ.SERVER.PING.VARZ", {"server_name": "mon", "exact_match": True})
        assert await answered("$SYS.REQ.SERVER.PING.VARZ", {"server_name": "mon1", "exact_match": True})
        assert not await answered("$SYS.REQ.SERVER.PING.STATSZ", {"server_name": "other"})
        assert await answered("$SYS.REQ.SERVER.PING.CONNZ", {"tags": ["t:1"]})
        assert not await answered("$SYS.REQ.SERVER.PING.CONNZ", {"tags": ["t:1", "nope"]})
        assert not await answered("$SYS.REQ.SERVER.PING.HEALTHZ", {"cluster": "c"})
        assert not await answered("$SYS.REQ.SERVER.PING.JSZ", {"domain": "nomatch"})
        # The same endpoints answer a filter this server matches (so the silence above
        # is the filter's doing).
        assert await answered("$SYS.REQ.SERVER.PING.STATSZ", {"server_name": "mon1"})
        assert await answered("$SYS.REQ.SERVER.PING.HEALTHZ", {"tags": ["t:1"]})
        assert await answered("$SYS.REQ.SERVER.PING.JSZ", {"server_name": "mon"})
        # IDZ answers whatever the filter.
        assert await answered("$SYS.REQ.SERVER.PING.IDZ", {"server_name": "nomatch"})
    finally:
        await sys_nc.close()


@async_test()
async def test_account_scoped_connz_ignores_another_account_in_the_body(start_server):
    """Security: a user of A asking for CONNZ through its system imports sees A's
    connections only, whatever `acc` the body names (or smuggles into another option)."""
    server = start_server("""
accounts {
  A { users: [{user: a, password: a}] }
  B { users: [{user: b, password: b}] }
  SYS { users: [{user: sys, password: sys}] }
}
system_account: SYS
""")
    a = await connect(server.url, user="a", password="a")
    b = await connect(server.url, user="b", password="b", name="secret-b")
    try:
        await b.subscribe("b.private")
        await b.flush()
        for subject in ("$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.PING.CONNZ"):
            for body in ({"acc": "B", "subscriptions": True}, {"sort": "cid&acc=B"}, {"user": "b&acc=B"}):
                r = json.loads((await a.request(subject, json.dumps(body).encode(), timeout=5)).data)
                conns = (r.get("data") or {}).get("connections") or []
                assert all(c.get("name") != "secret-b" for c in conns), (subject, body, r)
                assert "b.private" not in json.dumps(r), (subject, body)
    finally:
        await a.close()
        await b.close()


RELOAD_BEFORE = """
accounts {
  A { users [ {user: a, password: a} ], exports [ {service: "svc.>"} ] }
  B { users [ {user: b, password: b} ], imports [ {service: {account: A, subject: "svc.>"}} ] }
}
"""
RELOAD_AFTER = """
accounts {
  A { users [ {user: a, password: a} ], exports [ {service: "svc.>"}, {stream: "news.>"} ] }
  B { users [ {user: b, password: b} ], imports [ {stream: {account: A, subject: "news.>"}} ],
      mappings { "old.>": "new.>" } }
}
"""


@async_test()
async def test_reload_rewires_imports_and_exports(start_server):
    """A config reload (SIGHUP) that adds an export, swaps an import and adds a mapping:
    the new import delivers, the dropped one has no responders, the mapping maps, all
    without reconnecting."""
    import signal as _signal

    server = start_server(config=RELOAD_BEFORE)
    na = await connect(server.url, user="a", password="a")
    nb = await connect(server.url, user="b", password="b")
    try:
        async def responder(msg):
            await msg.respond(b"pong")
        await na.subscribe("svc.>", cb=responder)
        await sync(na)
        assert (await nb.request("svc.x", b"", timeout=2)).data == b"pong"
        (server.workdir / "server.conf").write_text(RELOAD_AFTER)
        server.proc.send_signal(_signal.SIGHUP)
        for _ in range(50):
            if "Reloaded server configuration" in server.log():
                break
            await asyncio.sleep(0.1)
        assert "Reloaded server configuration" in server.log(), server.log()[-2000:]
        news = await nb.subscribe("news.>")
        await sync(nb)
        await na.publish("news.1", b"hello")
        [m] = await next_msgs(news, 1)
        assert m.data == b"hello"
        with pytest.raises(nats.errors.NoRespondersError):
            await nb.request("svc.x", b"", timeout=2)
        # The new mapping applies to B's open connection too.
        mapped = await nb.subscribe("new.>")
        await sync(nb)
        await nb.publish("old.1", b"moved")
        [m] = await next_msgs(mapped, 1)
        assert (m.subject, m.data) == ("new.1", b"moved")
        assert na.is_connected and nb.is_connected
    finally:
        await na.close()
        await nb.close()
