"""JetStream storage limits, differential (issue 6): the same configs pass and fail on
natrium-server and nats-server 2.15.1, with the same ``code``/``err_code``.

nats-server's descriptions are recorded here; natrium's must be the same text, optionally
followed by `` (<limit, usage, request>)`` (see docs/compat.md), so the comparison is
"equal, or starts with it plus `` (``"."""

from __future__ import annotations

import asyncio
import json

import pytest

from natsutil import RawConn, async_test
from jsutil import JsClient

LIMITS_CONF = """
listen: 127.0.0.1:-1
jetstream {{ store_dir: "{store}", max_mem: 10MB, max_file: 20MB }}
accounts {{
  A {{ jetstream {{ max_mem: 1MB, max_file: 2MB, max_streams: 3, max_consumers: 2 }}
      users [ {{ user: a, password: a }} ] }}
  B {{ jetstream {{ max_bytes_required: true }}, users [ {{ user: b, password: b }} ] }}
  C {{ jetstream {{ max_file: 8MB, disk_max_stream_bytes: 1MB }}, users [ {{ user: c, password: c }} ] }}
  X {{ jetstream {{ max_file: 3MB }}, users [ {{ user: x, password: x }} ] }}
}}
"""

MB = 1 << 20


async def login(port: int, user: str) -> JsClient:
    c = await RawConn.open(port)
    await c.handshake(**{"user": user, "pass": user})
    cl = JsClient(c)
    await c.send(f"SUB {JsClient.INBOX}.> 1\r\n".encode())
    await cl.sync()
    return cl


def check(answer: str, expected: tuple[int, int, str] | None, what: str) -> None:
    v = json.loads(answer)
    if expected is None:
        assert "error" not in v, (what, v)
        return
    code, err_code, desc = expected
    e = v.get("error")
    assert e is not None, (what, v)
    assert (e["code"], e["err_code"]) == (code, err_code), (what, v)
    d = e["description"]
    assert d == desc or d.startswith(desc + " ("), (what, d, desc)


STORAGE = (500, 10047, "insufficient storage resources available")
MEMORY = (500, 10028, "insufficient memory resources available")

# (user, API suffix, body, expected)
STEPS = [
    ("a", "STREAM.CREATE.F1", {"name": "F1", "max_bytes": 3 * MB}, STORAGE),
    ("a", "STREAM.CREATE.M1", {"name": "M1", "storage": "memory", "max_bytes": 2 * MB}, MEMORY),
    ("b", "STREAM.CREATE.B1", {"name": "B1"},
     (400, 10113, "account requires a stream config to have max bytes set")),
    ("b", "STREAM.CREATE.B2", {"name": "B2", "max_bytes": 30 * MB}, STORAGE),
    ("b", "STREAM.CREATE.B3", {"name": "B3", "storage": "memory", "max_bytes": 11 * MB}, MEMORY),
    ("c", "STREAM.CREATE.C1", {"name": "C1", "max_bytes": 2 * MB},
     (400, 10122, "stream max bytes exceeds account limit max stream bytes")),
    ("c", "STREAM.CREATE.C2", {"name": "C2"}, None),
    ("a", "STREAM.CREATE.S1", {"name": "S1", "subjects": ["s1"]}, None),
    ("a", "STREAM.CREATE.S2", {"name": "S2", "subjects": ["s2"]}, None),
    ("a", "STREAM.CREATE.S3", {"name": "S3", "subjects": ["s3"]}, None),
    ("a", "STREAM.CREATE.S4", {"name": "S4", "subjects": ["s4"]},
     (400, 10027, "maximum number of streams reached")),
    # The account's limits come before the config's checks (nats-server's order).
    ("a", "STREAM.CREATE.S4", {"name": "S4", "subjects": ["s1"]},
     (400, 10027, "maximum number of streams reached")),
    ("a", "STREAM.CREATE.S4", {"name": "S4", "subjects": ["s4"], "max_age": -5},
     (400, 10027, "maximum number of streams reached")),
    # With the storage named, the account's byte limit before the per-stream one.
    ("c", "STREAM.CREATE.C3", {"name": "C3", "storage": "file", "max_bytes": 9 * MB}, STORAGE),
    ("a", "STREAM.UPDATE.S3", {"name": "S3", "subjects": ["s3"], "max_consumers": 5},
     (400, 10026, "maximum consumers limit reached")),
    # Reservations: max_bytes is reserved against the account; a stream without max_bytes
    # asks for one byte; an update only asks for the growth.
    ("x", "STREAM.CREATE.X1", {"name": "X1", "max_bytes": 2 * MB}, None),
    ("x", "STREAM.CREATE.X2", {"name": "X2", "max_bytes": MB + 1}, STORAGE),
    ("x", "STREAM.CREATE.X2", {"name": "X2", "max_bytes": MB}, None),
    ("x", "STREAM.CREATE.X3", {"name": "X3"}, STORAGE),
    ("x", "STREAM.UPDATE.X2", {"name": "X2", "subjects": ["X2"], "max_bytes": MB + 1}, STORAGE),
    ("x", "STREAM.UPDATE.X1", {"name": "X1", "subjects": ["X1"], "max_bytes": MB}, None),
    ("x", "STREAM.UPDATE.X2", {"name": "X2", "subjects": ["X2"], "max_bytes": 2 * MB}, None),
    ("x", "STREAM.CREATE.X3", {"name": "X3"}, STORAGE),
    ("x", "STREAM.DELETE.X1", None, None),
    ("x", "STREAM.CREATE.X3", {"name": "X3"}, None),
]


@async_test(timeout=60)
async def test_limit_errors(start_server, tmp_path, impl):
    store = tmp_path / f"store-{impl}"
    store.mkdir()
    s = start_server(LIMITS_CONF.format(store=store))
    clients = {u: await login(s.port, u) for u in "abcx"}
    try:
        for i, (user, suffix, body, expected) in enumerate(STEPS):
            answer = await clients[user].api(suffix, body)
            check(answer, expected, f"#{i} {user} {suffix} {body}")
        # Publishing over the account's max_file (2 MB): two 900 KiB messages fit.
        a = clients["a"]
        payload = b"x" * (900 * 1024)
        acks = [await a.pub_ack("s2", payload) for _ in range(4)]
        assert json.loads(acks[0]) == {"stream": "S2", "seq": 1}
        assert json.loads(acks[1]) == {"stream": "S2", "seq": 2}
        for ack in acks[2:]:
            check(ack, (400, 10002, "resource limits exceeded for account"), "publish")
        info = json.loads((await a.req("$JS.API.INFO")).data)
        assert info["storage"] == 1843264, info
    finally:
        for c in clients.values():
            c.close()


OVERCOMMIT = {
    "storage": ("max_file: 10MB", "max_file: 8MB", "max_file: 3MB",
                "insufficient storage resources available (10047)"),
    "memory": ("max_mem: 1MB", "max_mem: 1MB", "max_mem: 1KB",
               "insufficient memory resources available (10028)"),
}


@pytest.mark.parametrize("case", sorted(OVERCOMMIT))
def test_accounts_over_the_server_refuse_to_start(run_server_to_exit, tmp_path, impl, case):
    server, a, b, err = OVERCOMMIT[case]
    store = tmp_path / f"st-{impl}-{case}"
    conf = f"""
jetstream {{ store_dir: "{store}", {server} }}
accounts {{
  A {{ jetstream {{ {a} }}, users [ {{user: a, password: a}} ] }}
  B {{ jetstream {{ {b} }}, users [ {{user: b, password: b}} ] }}
}}
"""
    rc, out, errtext = run_server_to_exit(conf)
    text = out + errtext
    assert rc == 1, (rc, text)
    msg = f"Can't start JetStream: Error enabling jetstream on configured accounts: {err}"
    assert msg in text, text


SERVER_API_LIMITS = """
http: 127.0.0.1:-1
jetstream {
  limits { max_ack_pending: 100, max_request_batch: 50, duplicate_window: "1m", default_max_consumers: 2 }
}
"""


@async_test()
async def test_server_api_limits(start_js_server):
    """`jetstream { limits { … } }` bounds what stream and consumer configs may ask for,
    fills their defaults, and shows in /varz (as nats-server 2.15.1)."""
    from natsutil import monz

    server = start_js_server(config=SERVER_API_LIMITS)
    c = await RawConn.open(server.port)
    await c.handshake()
    cl = JsClient(c)
    await c.send(f"SUB {JsClient.INBOX}.> 1\r\n".encode())
    await cl.sync()
    created = json.loads(await cl.api("STREAM.CREATE.D", {"name": "D", "subjects": ["d.>"]}))
    assert created["config"]["duplicate_window"] == 60_000_000_000, created
    assert created["config"]["max_consumers"] == -1, created
    check(await cl.api("STREAM.CREATE.W", {"name": "W", "duplicate_window": 120_000_000_000}),
          (500, 10052, "duplicates window can not be larger then server limit of 1m0s"), "window")
    check(await cl.api("CONSUMER.CREATE.D.big", {"stream_name": "D", "config": {
        "durable_name": "big", "ack_policy": "explicit", "max_ack_pending": 500}}),
        (400, 10121, "consumer max ack pending exceeds system limit of 100"), "max_ack_pending")
    c0 = json.loads(await cl.api("CONSUMER.CREATE.D.c0", {"stream_name": "D", "config": {
        "durable_name": "c0", "ack_policy": "explicit"}}))
    assert (c0["config"]["max_ack_pending"], c0["config"]["max_batch"]) == (100, 50), c0
    check(await cl.api("CONSUMER.CREATE.D.c1", {"stream_name": "D", "config": {"durable_name": "c1"}}),
          None, "second consumer")
    check(await cl.api("CONSUMER.CREATE.D.c2", {"stream_name": "D", "config": {"durable_name": "c2"}}),
          (400, 10026, "maximum consumers limit reached"), "third consumer")
    varz = await monz(server, "/varz")
    assert varz["jetstream"]["limits"] == {"max_request_batch": 50, "max_ack_pending": 100,
                                           "max_duplicate_window": 60_000_000_000,
                                           "default_max_consumers": 2}, varz["jetstream"]


@async_test(timeout=120)
async def test_a_stream_takes_1000_consumers_by_default(js_server):
    """nats-server 2.15's `default_max_consumers` is 1000 when the config sets none."""
    c = await RawConn.open(js_server.port)
    await c.handshake()
    cl = JsClient(c)
    await c.send(f"SUB {JsClient.INBOX}.> 1\r\n".encode())
    await cl.sync()
    check(await cl.api("STREAM.CREATE.D", {"name": "D", "subjects": ["d.>"], "storage": "memory"}),
          None, "stream")
    for i in range(1000):
        check(await cl.api(f"CONSUMER.CREATE.D.c{i}", {"stream_name": "D", "config": {
            "name": f"c{i}", "mem_storage": True}}), None, f"consumer {i}")
    check(await cl.api("CONSUMER.CREATE.D.last", {"stream_name": "D", "config": {
        "name": "last", "mem_storage": True}}), (400, 10026, "maximum consumers limit reached"), "1001st")


PURGE_CONF = """
listen: 127.0.0.1:-1
jetstream {{ store_dir: "{store}" }}
accounts {{
  A {{ jetstream: enabled, users [ {{ user: a, password: a }} ] }}
  SYS {{ users [ {{ user: sys, password: sys }} ] }}
}}
system_account: SYS
"""


@async_test(timeout=60)
async def test_account_purge_from_the_system_account(start_server, tmp_path, impl):
    """`$JS.API.ACCOUNT.PURGE.<acc>` from the system account deletes every stream of the
    account and answers `initiated` (also for an account with nothing in it); from the
    account itself it gets no answer."""
    store = tmp_path / f"purge-{impl}"
    store.mkdir()
    s = start_server(PURGE_CONF.format(store=store))
    a, sys = await login(s.port, "a"), await login(s.port, "sys")
    try:
        for name in ("S1", "S2"):
            check(await a.api(f"STREAM.CREATE.{name}", {"name": name, "subjects": [name.lower()]}),
                  None, name)
        assert json.loads(await a.pub_ack("s1", b"x"))["seq"] == 1
        await a.no_response("$JS.API.ACCOUNT.PURGE.A", b"")
        assert json.loads(await sys.api("ACCOUNT.PURGE.A")) == {
            "type": "io.nats.jetstream.api.v1.account_purge_response", "initiated": True}
        assert json.loads(await sys.api("ACCOUNT.PURGE.NOPE"))["initiated"] is True
        # The system account has no JetStream: one answer for any other API request.
        for suffix in ("STREAM.NAMES", "STREAM.CREATE.X", "DIRECT.GET.X", "FOO"):
            assert json.loads(await sys.api(suffix, {})) == {
                "type": "io.nats.jetstream.api.v1.system_response",
                "error": {"code": 503, "err_code": 10039,
                          "description": "JetStream not enabled for account"}}, suffix
        # nats-server purges in the background ("initiated"): allow it a moment.
        for _ in range(20):
            info = json.loads((await a.req("$JS.API.INFO")).data)
            if info["streams"] == 0:
                break
            await asyncio.sleep(0.1)
        assert (info["streams"], info["storage"]) == (0, 0), info
    finally:
        a.close()
        sys.close()
