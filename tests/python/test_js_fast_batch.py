"""JetStream fast batch publish (``allow_batched``, API level 4), side by side: each test
runs against nats-server 2.15.1 and natrium-server (the ``impl`` parameter) and asserts
what nats-server was measured to do.

A fast-batch message is a plain PUB/HPUB into the stream whose reply subject is
``<prefix>.<batch id>.<initial flow>.<gap mode ok|fail>.<batch seq>.<op>.$FI`` (op 0 start,
1 append, 2 commit, 3 commit end-of-batch, 4 ping). Messages are stored as they arrive;
the server answers on the reply subject of the message that triggered the answer with
flow messages (``{"type":"ack",...}``, ``{"type":"gap",...}``, ``{"type":"err",...}``),
plain PubAck errors for refused messages, and a final PubAck carrying ``"batch"`` and
``"count"``.

Conventions: every reply is compared as raw bytes together with the reply subject it
arrived on. Unless a test says otherwise, each message is published and its expected
replies are read before the next one is published (a message expecting none is followed
at once by the next; anything unexpected would then arrive ahead of the next expected
reply), and every test ends with a short quiet period in which nothing may arrive. On
nats-server (standalone) every batch message is processed on the stream's ingest loop
and answered through one ordered queue, so the replies were also deterministic when
pipelined (``test_flow_large_and_pipelined``, ``test_pipelined_gap_and_error``,
``test_default_inflight_limit``); only ``test_server_batch_limits`` depends on time (a
1 s inactivity timeout, with sleeps of 0.6 s and 1.6 s).

Measured with the nats-server 2.15.1 release binary, which differs from nats-server's
later main branch in two places: a ping (op 4) never starts a batch (seq 1 of an unknown
ID is "ID unknown"), and a backward/repeated sequence is reported as a gap
(``"seq"`` < ``"last_seq"``) before the batch is ended.

Not testable here: reply subjects with an empty token (``a..b``) — the message is
processed (a batch ID may even be empty) but nats-server's answer to such a subject never
reaches a ``_R.>`` subscriber."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from jsutil import (API, TS, api_error, assert_json, assert_stream, b64, client, create, create_resp,
                    fsize, go_json, hdr_block, info_resp, pub_error, state, state_of, stream_cfg,
                    without_state)
from natsutil import async_test

P = "_R.fb"  # reply prefix, under JsClient's inbox subscription (_R.>)
START, APPEND, COMMIT, EOB, PING = 0, 1, 2, 3, 4

MSGID = "Nats-Msg-Id"
E_SEQ = "Nats-Expected-Last-Sequence"
RAL = "Nats-Required-Api-Level"
TTL = "Nats-TTL"
BID = "Nats-Batch-Id"
BSEQ = "Nats-Batch-Sequence"
BCOMMIT = "Nats-Batch-Commit"


def rp(bid: str, seq, op, flow=10, gap: str = "fail") -> str:
    """A fast-batch reply subject."""
    return f"{P}.{bid}.{flow}.{gap}.{seq}.{op}.$FI"


def op_for(seq: int, last: int | None = None) -> int:
    if last is not None and seq == last:
        return COMMIT
    return START if seq == 1 else APPEND


# -- expected replies --------------------------------------------------------------------


def ACK(seq: int, msgs: int) -> str:
    return f'{{"type":"ack","seq":{seq},"msgs":{msgs}}}'


def GAP(last_seq: int, seq: int) -> str:
    return f'{{"type":"gap","last_seq":{last_seq},"seq":{seq}}}'


def ERR(seq: int, code: int, err_code: int, description: str) -> str:
    e = go_json({"code": code, "err_code": err_code, "description": description})
    return f'{{"type":"err","seq":{seq},"error":{e}}}'


def PUBACK(seq: int, batch: str | None = None, count: int | None = None, stream: str = "S") -> str:
    if batch is None:
        return f'{{"stream":"{stream}","seq":{seq}}}'
    return f'{{"stream":"{stream}","seq":{seq},"batch":{json.dumps(batch)},"count":{count}}}'


def DUP_PUBACK(seq: int, batch: str, count: int, stream: str = "S") -> str:
    """The duplicate PubAck of a batch whose first message is a committing duplicate (note
    the space after ``"duplicate":``, as in nats-server's plain duplicate PubAck)."""
    return f'{{"stream":"{stream}","seq":{seq},"duplicate": true,"batch":{json.dumps(batch)},"count":{count}}}'


def perr(code: int, err_code: int, description: str, stream: str = "S") -> str:
    return pub_error(stream, code, err_code, description)


DISABLED = perr(400, 10205, "batch publish is disabled")
INVALID_PATTERN = perr(400, 10206, "batch publish pattern is invalid")
INVALID_ID = perr(400, 10207, "batch publish ID is invalid")
UNKNOWN_ID = perr(400, 10208, "batch publish ID unknown")
TOO_MANY_INFLIGHT = perr(429, 10211, "batch publish too many inflight")
MSG_TOO_BIG = perr(400, 10054, "message size exceeds maximum allowed")
API_LEVEL = perr(412, 10185, "JetStream minimum api level required")
SEALED = perr(400, 10109, "invalid operation on sealed stream")


def wrong_last(n: int) -> tuple[int, int, str]:
    return (400, 10071, f"wrong last sequence: {n}")


TTL_DISABLED = (400, 10166, "per-message TTL is disabled")


# -- publishing and reading --------------------------------------------------------------


async def send(c, subject: str, reply: str | None, body="x", headers=None) -> None:
    await c.c.send(c._pub(subject, body, headers, reply))


async def read_frames(c, n: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    """The next ``n`` inbox messages as ``(subject, payload)``; header frames fail."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        try:
            f = await c._frame(deadline)
        except asyncio.TimeoutError:
            raise AssertionError(f"got {len(out)} of {n} replies before timeout: {out}")
        if f is None:
            continue
        assert f.hdr is None, f"reply with headers: {f}"
        out.append((f.subject, f.data.decode()))
    return out


async def quiet(c, wait: float = 0.3) -> None:
    """Nothing more arrives within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            f = await c._frame(deadline)
        except asyncio.TimeoutError:
            return
        if f is not None:
            raise AssertionError(f"unexpected reply {f}")


async def step(c, subject: str, reply: str | None, expected: list[str], body="x", headers=None,
               what: str = "") -> None:
    """Publish one message and read exactly the ``expected`` replies, all on ``reply``."""
    await send(c, subject, reply, body, headers)
    if not expected:
        return
    got = await read_frames(c, len(expected))
    want = [(reply, e) for e in expected]
    assert got == want, f"{what or reply}:\n  got      {got}\n  expected {want}"


async def run(c, steps, end_quiet: bool = True) -> None:
    """``steps``: ``(subject, reply, expected_list[, body[, headers]])``."""
    for i, s in enumerate(steps):
        subject, reply, expected, *rest = s
        body = rest[0] if len(rest) > 0 else "x"
        headers = rest[1] if len(rest) > 1 else None
        await step(c, subject, reply, expected, body, headers, what=f"step {i}: {subject} {reply}")
    if end_quiet:
        await quiet(c)


# -- stream checks -----------------------------------------------------------------------










async def last_seq(c, stream: str = "S") -> tuple[int, int]:
    st = json.loads(await c.api(f"STREAM.INFO.{stream}"))["state"]
    return st["messages"], st["last_seq"]


async def fb_stream(c, name: str = "S", **cfg) -> None:
    cfg.setdefault("subjects", ["s.>"])
    await create(c, name, allow_batched=True, **cfg)


# =========================================================================================
# 1. Stream config
# =========================================================================================


def batched_cfg(name: str, subjects, *, atomic: bool = False, **over) -> dict:
    """nats-server's config for a stream created with ``allow_batched: true``: the field
    is marshalled last before ``metadata`` (after ``allow_atomic``, ``allow_msg_schedules``
    and ``persist_mode``) and raises the required API level to 4."""
    persist = over.pop("persist_mode", None)
    cfg = stream_cfg(name, subjects, req_level="4", **over)
    out = {}
    for k, v in cfg.items():
        if k == "metadata":
            if atomic:
                out["allow_atomic"] = True
            if persist is not None:
                out["persist_mode"] = persist
            out["allow_batched"] = True
        out[k] = v
    return out


@async_test()
async def test_stream_config(js_server):
    """allow_batched in create/info/update responses (position, API level "4"), together
    with allow_atomic and persist_mode async (accepted, unlike allow_atomic), the mirror
    refusal; ``false`` is omitted."""
    async with client(js_server) as c:
        got = await c.api("STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "allow_batched": True})
        assert_json(got, create_resp(batched_cfg("S", ["s.>"]), state()))
        assert_json(await c.api("STREAM.INFO.S"), info_resp(batched_cfg("S", ["s.>"]), state()))

        got = await c.api("STREAM.CREATE.A", {"name": "A", "subjects": ["a.>"], "allow_batched": True,
                                              "allow_atomic": True})
        assert_json(got, create_resp(batched_cfg("A", ["a.>"], atomic=True), state()))

        got = await c.api("STREAM.CREATE.P", {"name": "P", "subjects": ["p.>"], "allow_batched": True,
                                              "persist_mode": "async"})
        assert_json(got, create_resp(batched_cfg("P", ["p.>"], persist_mode="async"), state()))

        got = await c.api("STREAM.CREATE.F", {"name": "F", "subjects": ["f.>"], "allow_batched": False})
        assert_json(got, create_resp(stream_cfg("F", ["f.>"]), state()))

        got = await c.api("STREAM.CREATE.M", {"name": "M", "mirror": {"name": "S"}, "allow_batched": True})
        assert_json(got, api_error("stream_create_response", 400, 10209,
                                   "stream mirrors can not also use batch publishing"))


@async_test()
async def test_stream_update_toggle(js_server):
    """Turning allow_batched off drops in-flight fast batches (their messages stay stored;
    while off every fast-batch message is "disabled"; once back on the old batch is
    unknown); an update that keeps it on keeps them."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START), [ACK(0, 10)], "1"),
            ("s.a", rp("c", 1, START), [ACK(0, 1), ACK(1, 2)], "1"),
        ], end_quiet=False)
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"]})
        assert_json(without_state(got), create_resp(stream_cfg("S", ["s.>"]), update=True))
        await run(c, [
            ("s.a", rp("b", 2, COMMIT), [DISABLED], "2"),
            ("s.a", rp("x", 1, COMMIT), [DISABLED], "1"),
            ("s.a", rp("x", 0, 9), [DISABLED], "1"),  # disabled comes before the pattern check
        ], end_quiet=False)
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_batched": True})
        assert_json(without_state(got), create_resp(batched_cfg("S", ["s.>"]), update=True))
        await run(c, [
            ("s.a", rp("b", 2, COMMIT), [UNKNOWN_ID], "2"),
            ("s.a", rp("c", 2, APPEND), [UNKNOWN_ID], "2"),
            ("s.a", rp("d", 1, START), [ACK(0, 10)], "d1"),
        ], end_quiet=False)
        # An update that keeps allow_batched keeps the in-flight batch.
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_batched": True,
                                              "description": "d"})
        assert_json(without_state(got), create_resp(batched_cfg("S", ["s.>"], description="d"), update=True))
        await run(c, [("s.b", rp("d", 2, COMMIT), [PUBACK(4, "d", 2)], "d2")])
        await assert_stream(c, "S", [
            (1, "s.a", None, "1"),
            (2, "s.a", None, "1"),
            (3, "s.a", None, "d1"),
            (4, "s.b", None, "d2"),
        ])


# =========================================================================================
# 2. Commits and flow control
# =========================================================================================


@async_test()
async def test_single_message_commit(js_server):
    """A batch of one (op 2, seq 1) gets only the PubAck — no flow ack; the message is
    stored verbatim (no batch headers added); the ID is free again afterwards."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, COMMIT), [PUBACK(1, "b", 1)], "one", [("Foo", "bar")]),
            ("s.b", rp("b", 2, APPEND), [UNKNOWN_ID], "two"),
            ("s.b", rp("b", 2, COMMIT), [UNKNOWN_ID], "two"),
            ("s.c", rp("b", 1, COMMIT), [PUBACK(2, "b", 1)], "three"),
            # A plain publish in between is an ordinary PubAck.
            ("s.d", "_R.plain", [PUBACK(3)], "four"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", [("Foo", "bar")], "one"),
            (2, "s.c", None, "three"),
            (3, "s.d", None, "four"),
        ])


# (flow token in the reply, the ``msgs`` of every ack, messages, ack points) — a lone
# batch acks every min(flow, 500) stored messages; a flow token <= 0 or not a number
# means 10; above 65535 it is capped (to 500 by the lone-batch maximum anyway).
FLOW_CASES = {
    "flow10": ("10", 10, 23, [10, 20]),
    "flow1": ("1", 1, 5, [1, 2, 3, 4]),
    "flow0": ("0", 10, 12, [10]),
    "flow3": ("3", 3, 10, [3, 6, 9]),
    "flow-abc": ("abc", 10, 11, [10]),
    "flow-neg": ("-4", 10, 11, [10]),
    "flow-commit-on-boundary": ("5", 5, 10, [5]),
}


@pytest.mark.parametrize("case", list(FLOW_CASES))
@async_test()
async def test_flow_ack_cadence(js_server, case):
    """The first message (op 0) is answered with ``{"type":"ack","seq":0,"msgs":M}``
    before it is stored; after that an ack ``{"seq":k,"msgs":M}`` follows the storing of
    every M-th message (so with M = 1 the first message gets two acks); the commit
    message gets only the PubAck (even on an ack boundary)."""
    flow, m, n, points = FLOW_CASES[case]
    async with client(js_server) as c:
        await fb_stream(c)
        steps = []
        for seq in range(1, n + 1):
            expected = []
            if seq == 1:
                expected.append(ACK(0, m))
            if seq in points:
                expected.append(ACK(seq, m))
            if seq == n:
                expected.append(PUBACK(n, "b", n))
            steps.append((f"s.{seq}", rp("b", seq, op_for(seq, n), flow), expected, str(seq)))
        await run(c, steps)
        await assert_stream(c, "S", [(i, f"s.{i}", None, str(i)) for i in range(1, n + 1)])


@async_test()
async def test_flow_large_and_pipelined(js_server):
    """Messages published without waiting: the replies (initial ack, acks, PubAck — each
    on the reply subject of the message that triggered it) are the same as when waiting.
    A flow of 600 or 70000 acks every 500 messages (the lone-batch maximum)."""
    async with client(js_server) as c:
        await fb_stream(c)
        n = 25
        buf = b"".join(c._pub("s.a", str(i), None, rp("p", i, op_for(i, n))) for i in range(1, n + 1))
        await c.c.send(buf)
        got = await read_frames(c, 4)
        assert got == [
            (rp("p", 1, START), ACK(0, 10)),
            (rp("p", 10, APPEND), ACK(10, 10)),
            (rp("p", 20, APPEND), ACK(20, 10)),
            (rp("p", 25, COMMIT), PUBACK(25, "p", 25)),
        ], got
        await quiet(c)
        assert await last_seq(c) == (25, 25)

        for flow, bid in (("600", "q"), ("70000", "r")):
            n = 1001
            buf = b"".join(c._pub("s.b", "y", None, rp(bid, i, op_for(i, n), flow)) for i in range(1, n + 1))
            await c.c.send(buf)
            got = await read_frames(c, 4)
            base = 25 if bid == "q" else 1026
            assert got == [
                (rp(bid, 1, START, flow), ACK(0, 500)),
                (rp(bid, 500, APPEND, flow), ACK(500, 500)),
                (rp(bid, 1000, APPEND, flow), ACK(1000, 500)),
                (rp(bid, 1001, COMMIT, flow), PUBACK(base + 1001, bid, 1001)),
            ], got
            await quiet(c)
        assert await last_seq(c) == (2027, 2027)


@async_test()
async def test_pipelined_gap_and_error(js_server):
    """Pipelined in ``ok`` mode with an error and a gap: the same replies, in order, as
    when waiting for each."""
    async with client(js_server) as c:
        await fb_stream(c)
        msgs = [(1, START, None), (2, APPEND, None), (3, APPEND, [(E_SEQ, "1")]), (5, APPEND, None),
                (6, COMMIT, None)]
        await c.c.send(b"".join(c._pub("s.a", str(seq), h, rp("b", seq, op, 2, "ok")) for seq, op, h in msgs))
        got = await read_frames(c, 6)
        assert got == [
            (rp("b", 1, START, 2, "ok"), ACK(0, 2)),
            (rp("b", 2, APPEND, 2, "ok"), ACK(2, 2)),
            (rp("b", 3, APPEND, 2, "ok"), ERR(3, *wrong_last(2))),
            (rp("b", 5, APPEND, 2, "ok"), GAP(4, 5)),
            (rp("b", 5, APPEND, 2, "ok"), ACK(4, 2)),
            (rp("b", 6, COMMIT, 2, "ok"), PUBACK(4, "b", 6)),
        ], got
        await quiet(c)
        await assert_stream(c, "S", [(1, "s.a", None, "1"), (2, "s.a", None, "2"), (3, "s.a", None, "5"),
                                     (4, "s.a", None, "6")])


@async_test()
async def test_concurrent_batches_ramp_up(js_server):
    """A batch started while another is in flight starts at ``msgs`` 1 and doubles at
    every ack (up to min(flow, 500 / in-flight batches)); acks come when ``msgs`` stored
    messages have passed since the last acked sequence. The first batch keeps its flow."""
    async with client(js_server) as c:
        await fb_stream(c)
        steps = [("s.a", rp("A", 1, START), [ACK(0, 10)])]
        # B: initial ack says 1, the stored first message is then acked with msgs 2.
        b_acks = {1: [ACK(0, 1), ACK(1, 2)], 3: [ACK(3, 4)], 7: [ACK(7, 8)], 15: [ACK(15, 10)],
                  25: [ACK(25, 10)]}
        for seq in range(1, 27):
            steps.append(("s.b", rp("B", seq, op_for(seq)), b_acks.get(seq, []), f"b{seq}"))
        for seq in range(2, 11):
            steps.append(("s.a", rp("A", seq, op_for(seq)), [ACK(10, 10)] if seq == 10 else [], f"a{seq}"))
        steps.append(("s.b", rp("B", 27, COMMIT), [PUBACK(37, "B", 27)], "b27"))
        steps.append(("s.a", rp("A", 11, COMMIT), [PUBACK(38, "A", 11)], "a11"))
        await run(c, steps)
        # A third batch alone again: the full flow from the start.
        await run(c, [("s.c", rp("C", 1, START, 4), [ACK(0, 4)]),
                      ("s.c", rp("C", 2, COMMIT, 4), [PUBACK(40, "C", 2)])])


@async_test()
async def test_slow_down_when_shared(js_server):
    """A lone batch with flow 500 acks every 500; once a second batch is in flight its
    next ack halves ``msgs`` to 250 (500 / 2 batches), and after the other batch ended the
    following ack doubles back to 500."""
    async with client(js_server) as c:
        await fb_stream(c)
        await c.c.send(b"".join(c._pub("s.a", "y", None, rp("A", i, op_for(i), 500)) for i in range(1, 400)))
        assert await read_frames(c, 1) == [(rp("A", 1, START, 500), ACK(0, 500))]
        await quiet(c, 0.2)
        await run(c, [("s.b", rp("B", 1, START, 500), [ACK(0, 1), ACK(1, 2)])], end_quiet=False)
        await c.c.send(b"".join(c._pub("s.a", "y", None, rp("A", i, op_for(i), 500)) for i in range(400, 751)))
        assert await read_frames(c, 2) == [
            (rp("A", 500, APPEND, 500), ACK(500, 250)),
            (rp("A", 750, APPEND, 500), ACK(750, 250)),
        ]
        await quiet(c, 0.2)
        await run(c, [("s.b", rp("B", 2, COMMIT, 500), [PUBACK(752, "B", 2)])], end_quiet=False)
        await c.c.send(b"".join(c._pub("s.a", "y", None, rp("A", i, op_for(i), 500)) for i in range(751, 1001)))
        assert await read_frames(c, 1) == [(rp("A", 1000, APPEND, 500), ACK(1000, 500))]
        await run(c, [("s.a", rp("A", 1001, COMMIT, 500), [PUBACK(1003, "A", 1001)])])


@async_test()
async def test_commit_eob(js_server):
    """op 3 (commit end-of-batch) at seq N: the marker itself (subject, body, headers, its
    message ID) is neither checked nor stored and nothing is appended to the last stored
    message; the PubAck names the last stored sequence and counts N-1."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START), [ACK(0, 10)], "one", [("Foo", "1")]),
            ("s.b", rp("b", 2, APPEND), [], "two"),
            ("s.c", rp("b", 3, EOB), [PUBACK(2, "b", 2)], "marker", [(MSGID, "q"), (E_SEQ, "99")]),
            # The marker's message ID was not recorded.
            ("s.z", "_R.plain", [PUBACK(3)], "z", [(MSGID, "q")]),
            # eob right after the first message.
            ("s.e", rp("e", 1, START), [ACK(0, 10)], "e1"),
            ("s.e", rp("e", 2, EOB), [PUBACK(4, "e", 1)], "ignored"),
            ("s.e", rp("e", 3, APPEND), [UNKNOWN_ID], "e3"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", [("Foo", "1")], "one"),
            (2, "s.b", None, "two"),
            (3, "s.z", [(MSGID, "q")], "z"),
            (4, "s.e", None, "e1"),
        ])


# =========================================================================================
# 3. Ping, gaps
# =========================================================================================


@async_test()
async def test_ping(js_server):
    """op 4 at seq N stores nothing. N <= the last received sequence: the last ack is
    resent (``seq`` = last acked sequence, ``msgs`` = the current cadence). N beyond it:
    a gap ``{"last_seq": last+1, "seq": N+1}`` (both one higher than for a message); in
    ``ok`` mode the batch continues at N (and the ack that follows is the one the
    advanced sequence earns, else the last one resent); in ``fail`` mode the gap is
    followed by the PubAck of what was stored."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START, 2, "ok"), [ACK(0, 2)], "1"),
            ("s.a", rp("b", 2, APPEND, 2, "ok"), [ACK(2, 2)], "2"),
            ("s.a", rp("b", 2, PING, 2, "ok"), [ACK(2, 2)], "p"),
            ("s.a", rp("b", 1, PING, 2, "ok"), [ACK(2, 2)], "p"),
            ("s.a", rp("b", 3, PING, 2, "ok"), [GAP(3, 4), ACK(2, 2)], "p"),
            ("s.a", rp("b", 4, APPEND, 2, "ok"), [ACK(4, 2)], "4"),
            ("s.a", rp("b", 100, PING, 2, "ok"), [GAP(5, 101), ACK(100, 2)], "p"),
            ("s.a", rp("b", 101, EOB, 2, "ok"), [PUBACK(3, "b", 100)], "eob"),
            # fail mode: a ping past the end ends the batch.
            ("s.f", rp("f", 1, START), [ACK(0, 10)], "f1"),
            ("s.f", rp("f", 2, APPEND), [], "f2"),
            ("s.f", rp("f", 2, PING), [ACK(0, 10)], "p"),
            ("s.f", rp("f", 5, PING), [GAP(3, 6), PUBACK(5, "f", 2)], "p"),
            ("s.f", rp("f", 3, APPEND), [UNKNOWN_ID], "f3"),
            # Ping of an unknown batch, even at seq 1 (a ping never starts a batch).
            ("s.u", rp("u", 2, PING), [UNKNOWN_ID], "p"),
            ("s.u", rp("u", 1, PING), [UNKNOWN_ID], "p"),
            ("s.u", rp("u", 1, PING, 10, "ok"), [UNKNOWN_ID], "p"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", None, "1"), (2, "s.a", None, "2"), (3, "s.a", None, "4"),
            (4, "s.f", None, "f1"), (5, "s.f", None, "f2"),
        ])


@async_test()
async def test_gap_fail(js_server):
    """``fail`` mode: a forward gap answers ``{"type":"gap","last_seq":<expected>,
    "seq":<got>}`` then the PubAck of what was stored (the gapped message is not stored;
    the batch is over). A repeated/backward sequence ends the batch the same way (the gap
    message then has ``seq`` < ``last_seq``). A gapped commit or eob does the same."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START), [ACK(0, 10)], "1"),
            ("s.a", rp("b", 2, APPEND), [], "2"),
            ("s.a", rp("b", 4, APPEND), [GAP(3, 4), PUBACK(2, "b", 2)], "4"),
            ("s.a", rp("b", 5, APPEND), [UNKNOWN_ID], "5"),
            # backward
            ("s.a", rp("c", 1, START), [ACK(0, 10)], "c1"),
            ("s.a", rp("c", 2, APPEND), [], "c2"),
            ("s.a", rp("c", 2, APPEND), [GAP(3, 2), PUBACK(4, "c", 2)], "c2again"),
            # the start message again
            ("s.a", rp("d", 1, START), [ACK(0, 10)], "d1"),
            ("s.a", rp("d", 1, START), [GAP(2, 1), PUBACK(5, "d", 1)], "d1again"),
            # gapped commit, gapped eob
            ("s.a", rp("e", 1, START), [ACK(0, 10)], "e1"),
            ("s.a", rp("e", 3, COMMIT), [GAP(2, 3), PUBACK(6, "e", 1)], "e3"),
            ("s.a", rp("f", 1, START), [ACK(0, 10)], "f1"),
            ("s.a", rp("f", 5, EOB), [GAP(2, 5), PUBACK(7, "f", 1)], "f5"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", None, "1"), (2, "s.a", None, "2"), (3, "s.a", None, "c1"),
            (4, "s.a", None, "c2"), (5, "s.a", None, "d1"), (6, "s.a", None, "e1"),
            (7, "s.a", None, "f1"),
        ])


@async_test()
async def test_gap_ok(js_server):
    """``ok`` mode: a forward gap is reported and the batch continues from the new
    sequence (the gapped message is stored); the lost sequences count in the PubAck's
    ``count`` and in the ack cadence. A backward sequence still ends the batch (gap message
    with ``seq`` < ``last_seq``, then the PubAck). A gapped eob: gap, then the PubAck counting up to N-1."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START, 5, "ok"), [ACK(0, 5)], "1"),
            ("s.a", rp("b", 4, APPEND, 5, "ok"), [GAP(2, 4)], "4"),
            ("s.a", rp("b", 5, APPEND, 5, "ok"), [ACK(5, 5)], "5"),
            ("s.a", rp("b", 12, APPEND, 5, "ok"), [GAP(6, 12), ACK(10, 5)], "12"),
            ("s.a", rp("b", 13, COMMIT, 5, "ok"), [PUBACK(5, "b", 13)], "13"),
            # backward
            ("s.a", rp("c", 1, START, 10, "ok"), [ACK(0, 10)], "c1"),
            ("s.a", rp("c", 3, APPEND, 10, "ok"), [GAP(2, 3)], "c3"),
            ("s.a", rp("c", 2, APPEND, 10, "ok"), [GAP(4, 2), PUBACK(7, "c", 3)], "c2"),
            # gapped eob
            ("s.a", rp("d", 1, START, 10, "ok"), [ACK(0, 10)], "d1"),
            ("s.a", rp("d", 5, EOB, 10, "ok"), [GAP(2, 5), PUBACK(8, "d", 4)], "d5"),
            # gapped commit
            ("s.a", rp("e", 1, START, 10, "ok"), [ACK(0, 10)], "e1"),
            ("s.a", rp("e", 3, COMMIT, 10, "ok"), [GAP(2, 3), PUBACK(10, "e", 3)], "e3"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", None, "1"), (2, "s.a", None, "4"), (3, "s.a", None, "5"),
            (4, "s.a", None, "12"), (5, "s.a", None, "13"), (6, "s.a", None, "c1"),
            (7, "s.a", None, "c3"), (8, "s.a", None, "d1"), (9, "s.a", None, "e1"),
            (10, "s.a", None, "e3"),
        ])


# =========================================================================================
# 4. Errors on messages
# =========================================================================================


@pytest.mark.parametrize("gap", ["fail", "ok"])
@async_test()
async def test_error_mid_batch(js_server, gap):
    """A message failing a publish check (here the expected last sequence, and a TTL on a
    stream without TTLs) answers ``{"type":"err","seq":N,"error":{...}}`` and is not
    stored. ``fail``: the PubAck of what was stored follows (count N-1), the batch is
    over. ``ok``: the batch continues and the failed sequence still counts. Every message
    is checked against the stream as it is then (the expected last sequence may be used on
    any message)."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START, 10, gap), [ACK(0, 10)], "1", [(E_SEQ, "0")]),
            ("s.a", rp("b", 2, APPEND, 10, gap), [], "2", [(E_SEQ, "1")]),
        ], end_quiet=False)
        bad = ("s.a", rp("b", 3, APPEND, 10, gap), [ERR(3, *wrong_last(2))], "3", [(E_SEQ, "1")])
        if gap == "fail":
            bad[2].append(PUBACK(2, "b", 2))
            await run(c, [bad, ("s.a", rp("b", 4, APPEND, 10, gap), [UNKNOWN_ID], "4")])
            await assert_stream(c, "S", [(1, "s.a", [(E_SEQ, "0")], "1"), (2, "s.a", [(E_SEQ, "1")], "2")])
            return
        await run(c, [
            bad,
            ("s.a", rp("b", 4, APPEND, 10, gap), [ERR(4, *TTL_DISABLED)], "4", [(TTL, "1s")]),
            ("s.a", rp("b", 5, APPEND, 10, gap), [], "5", [(E_SEQ, "2")]),
            ("s.a", rp("b", 6, COMMIT, 10, gap), [PUBACK(4, "b", 6)], "6"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", [(E_SEQ, "0")], "1"), (2, "s.a", [(E_SEQ, "1")], "2"),
            (3, "s.a", [(E_SEQ, "2")], "5"), (4, "s.a", None, "6"),
        ])


@pytest.mark.parametrize("gap", ["fail", "ok"])
@async_test()
async def test_error_on_commit(js_server, gap):
    """The commit message itself failing a check: err message, then the PubAck of what
    was stored (count N-1) in both modes."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START, 10, gap), [ACK(0, 10)], "1"),
            ("s.a", rp("b", 2, COMMIT, 10, gap), [ERR(2, *wrong_last(1)), PUBACK(1, "b", 1)], "2",
             [(E_SEQ, "7")]),
            ("s.a", rp("b", 3, APPEND, 10, gap), [UNKNOWN_ID], "3"),
        ])
        await assert_stream(c, "S", [(1, "s.a", None, "1")])


@async_test()
async def test_error_on_first_message(js_server):
    """The first message failing a check. ``fail``: the initial ack (sent before the
    check), then a plain PubAck error (not an err message); the batch is gone. ``ok``:
    initial ack, err message, the batch continues. A committing first message: ``fail``
    gets only the plain error, ``ok`` the err message and an empty PubAck (seq 0, count
    0)."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("f", 1, START), [ACK(0, 10), perr(*wrong_last(0))], "1", [(E_SEQ, "5")]),
            ("s.a", rp("f", 2, APPEND), [UNKNOWN_ID], "2"),
            ("s.a", rp("o", 1, START, 10, "ok"), [ACK(0, 10), ERR(1, *wrong_last(0))], "1", [(E_SEQ, "5")]),
            ("s.a", rp("o", 2, COMMIT, 10, "ok"), [PUBACK(1, "o", 2)], "o2"),
            ("s.a", rp("g", 1, COMMIT), [perr(*wrong_last(1))], "1", [(E_SEQ, "5")]),
            ("s.a", rp("g", 2, COMMIT), [UNKNOWN_ID], "2"),
            ("s.a", rp("h", 1, COMMIT, 10, "ok"), [ERR(1, *wrong_last(1)), PUBACK(0, "h", 0)], "1",
             [(E_SEQ, "5")]),
            ("s.a", rp("h", 2, COMMIT, 10, "ok"), [UNKNOWN_ID], "2"),
        ])
        await assert_stream(c, "S", [(1, "s.a", None, "o2")])


@pytest.mark.parametrize("gap", ["fail", "ok"])
@async_test()
async def test_max_msg_size(js_server, gap):
    """A message over the stream's max_msg_size is refused with the plain PubAck error
    before any batch processing: the batch does not advance, so the next message is a
    gap. A refused first message creates no batch."""
    async with client(js_server) as c:
        await fb_stream(c, max_msg_size=16)
        big = "y" * 17
        steps = [
            ("s.a", rp("b", 1, START, 10, gap), [ACK(0, 10)], "1"),
            ("s.a", rp("b", 2, APPEND, 10, gap), [MSG_TOO_BIG], big),
        ]
        if gap == "fail":
            steps += [("s.a", rp("b", 3, APPEND, 10, gap), [GAP(2, 3), PUBACK(1, "b", 1)], "3")]
            stored = [(1, "s.a", None, "1")]
        else:
            steps += [("s.a", rp("b", 3, APPEND, 10, gap), [GAP(2, 3)], "3"),
                      # The eob marker is not stored, but still size-checked.
                      ("s.a", rp("b", 4, EOB, 10, gap), [MSG_TOO_BIG], big),
                      ("s.a", rp("b", 4, EOB, 10, gap), [PUBACK(2, "b", 3)], "e")]
            stored = [(1, "s.a", None, "1"), (2, "s.a", None, "3")]
        steps += [
            ("s.a", rp("n", 1, START, 10, gap), [MSG_TOO_BIG], big),
            ("s.a", rp("n", 2, APPEND, 10, gap), [UNKNOWN_ID], "2"),
        ]
        await run(c, steps)
        await assert_stream(c, "S", stored)


@async_test()
async def test_duplicate_msg_id(js_server):
    """A message whose Nats-Msg-Id is already known (from before or earlier in the same
    batch) is skipped silently — no err message — but its sequence counts (and may earn
    an ack). A committing duplicate gets the PubAck of the last stored message. A batch
    of one duplicate (op 2 seq 1, ``fail``) gets the duplicate PubAck; in ``ok`` mode a
    PubAck with seq 0. A batch whose stored messages are all duplicates acks seq 0."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.p", "_R.plain", [PUBACK(1)], "p", [(MSGID, "p")]),
            ("s.a", rp("b", 1, START, 2), [ACK(0, 2)], "1", [(MSGID, "a")]),
            ("s.a", rp("b", 2, APPEND, 2), [ACK(2, 2)], "2", [(MSGID, "a")]),
            ("s.a", rp("b", 3, APPEND, 2), [], "3", [(MSGID, "p")]),
            ("s.a", rp("b", 4, APPEND, 2), [ACK(4, 2)], "4", [(MSGID, "c")]),
            ("s.a", rp("b", 5, COMMIT, 2), [PUBACK(3, "b", 5)], "5", [(MSGID, "c")]),
            # batch of one duplicate
            ("s.a", rp("d", 1, COMMIT), [DUP_PUBACK(1, "d", 1)], "d", [(MSGID, "p")]),
            ("s.a", rp("o", 1, COMMIT, 10, "ok"), [PUBACK(0, "o", 1)], "o", [(MSGID, "p")]),
            # only duplicates, then an error ends the batch
            ("s.a", rp("e", 1, START, 2), [ACK(0, 2)], "e1", [(MSGID, "p")]),
            ("s.a", rp("e", 2, APPEND, 2), [ERR(2, *wrong_last(3)), PUBACK(0, "e", 1)], "e2",
             [(E_SEQ, "100")]),
            # only duplicates, eob
            ("s.a", rp("f", 1, START), [ACK(0, 10)], "f1", [(MSGID, "a")]),
            ("s.a", rp("f", 2, APPEND), [], "f2", [(MSGID, "c")]),
            ("s.a", rp("f", 3, EOB), [PUBACK(0, "f", 2)], "f3"),
        ])
        await assert_stream(c, "S", [
            (1, "s.p", [(MSGID, "p")], "p"),
            (2, "s.a", [(MSGID, "a")], "1"),
            (3, "s.a", [(MSGID, "c")], "4"),
        ])


# (extra stream config, headers of message 2, its error, checked before storing?) — most
# publish checks run before the message is handed to the store and answer with an err
# flow message; the expected last message ID is checked when storing and answers with a
# plain PubAck error instead, without ending the batch in either gap mode.
ERROR_CASES = {
    "last-seq": ({}, [(E_SEQ, "9")], (400, 10071, "wrong last sequence: 1"), True),
    "ttl-disabled": ({}, [(TTL, "1s")], TTL_DISABLED, True),
    "rollup-not-permitted": ({}, [("Nats-Rollup", "sub")], (500, 10111, "rollup not permitted"), True),
    "expected-stream": ({}, [("Nats-Expected-Stream", "T")], (400, 10060, "expected stream does not match"), True),
    "counter-disabled": ({}, [("Nats-Incr", "1")], (400, 10168, "message counters is disabled"), True),
    "subject-seq": ({}, [("Nats-Expected-Last-Subject-Sequence", "9")], (400, 10071, "wrong last sequence: 1"),
                    True),
    "discard-new-max-msgs": ({"max_msgs": 1, "discard": "new"}, None, (503, 10077, "maximum messages exceeded"),
                             True),
    "last-msg-id": ({}, [("Nats-Expected-Last-Msg-Id", "zz")], (400, 10070, "wrong last msg ID: m1"), False),
}


@pytest.mark.parametrize("gap", ["fail", "ok"])
@pytest.mark.parametrize("case", list(ERROR_CASES))
@async_test()
async def test_error_table(js_server, case, gap):
    """Message 2 of a batch fails a publish check. Checked before storing: err message,
    then (``fail``) the PubAck of message 1 and the batch is over, or (``ok``) the batch
    goes on. Checked when storing (expected last msg ID): a plain PubAck error and the
    batch goes on in both modes."""
    cfg, headers, error, pre = ERROR_CASES[case]
    async with client(js_server) as c:
        await fb_stream(c, **cfg)
        await run(c, [("s.a", rp("b", 1, START, 10, gap), [ACK(0, 10)], "1", [(MSGID, "m1")])],
                  end_quiet=False)
        if not pre:
            expected = [perr(*error)]
        elif gap == "fail":
            expected = [ERR(2, *error), PUBACK(1, "b", 1)]
        else:
            expected = [ERR(2, *error)]
        await run(c, [("s.a", rp("b", 2, APPEND, 10, gap), expected, "2", headers)], end_quiet=False)
        if pre and gap == "fail":
            await run(c, [("s.b", rp("b", 3, COMMIT, 10, gap), [UNKNOWN_ID], "3")])
            await assert_stream(c, "S", [(1, "s.a", [(MSGID, "m1")], "1")])
        elif case == "discard-new-max-msgs":
            await run(c, [("s.b", rp("b", 3, COMMIT, 10, gap), [ERR(3, *error), PUBACK(1, "b", 2)], "3")])
            await assert_stream(c, "S", [(1, "s.a", [(MSGID, "m1")], "1")])
        else:
            await run(c, [("s.b", rp("b", 3, COMMIT, 10, gap), [PUBACK(2, "b", 3)], "3")])
            await assert_stream(c, "S", [(1, "s.a", [(MSGID, "m1")], "1"), (2, "s.b", None, "3")])


@pytest.mark.parametrize("gap", ["fail", "ok"])
@async_test()
async def test_store_time_error_keeps_batch(js_server, gap):
    """After a store-time error (expected last msg ID) the batch continues in both modes:
    acks, pings, and an op 2 or eob commit work as usual, and the failed sequence counts."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", rp("b", 1, START, 2, gap), [ACK(0, 2)], "1", [(MSGID, "m1")]),
            ("s.a", rp("b", 2, APPEND, 2, gap), [perr(400, 10070, "wrong last msg ID: m1")], "2",
             [("Nats-Expected-Last-Msg-Id", "zz")]),
            ("s.a", rp("b", 3, APPEND, 2, gap), [ACK(2, 2)], "3", [("Nats-Expected-Last-Msg-Id", "m1")]),
            ("s.a", rp("b", 4, APPEND, 2, gap), [ACK(4, 2)], "4"),
            ("s.a", rp("b", 4, PING, 2, gap), [ACK(4, 2)], "p"),
            ("s.a", rp("b", 5, APPEND, 2, gap), [], "5"),
            ("s.a", rp("b", 6, COMMIT, 2, gap), [PUBACK(5, "b", 6)], "6"),
            ("s.a", rp("b", 7, APPEND, 2, gap), [UNKNOWN_ID], "7"),
            ("s.a", rp("e", 1, START, 10, gap), [ACK(0, 10)], "e1"),
            ("s.a", rp("e", 2, APPEND, 10, gap), [perr(400, 10070, "wrong last msg ID: ")], "e2",
             [("Nats-Expected-Last-Msg-Id", "zz")]),
            ("s.a", rp("e", 3, APPEND, 10, gap), [], "e3"),
            ("s.a", rp("e", 4, EOB, 10, gap), [PUBACK(7, "e", 3)], "eob"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", [(MSGID, "m1")], "1"), (2, "s.a", [("Nats-Expected-Last-Msg-Id", "m1")], "3"),
            (3, "s.a", None, "4"), (4, "s.a", None, "5"), (5, "s.a", None, "6"),
            (6, "s.a", None, "e1"), (7, "s.a", None, "e3"),
        ])


@async_test()
async def test_no_ack_stream(js_server):
    """On a ``no_ack`` stream the initial ack and plain PubAck errors (unknown batch,
    pings of it) are suppressed, but later acks, gap and err messages and the final PubAck
    are still sent."""
    async with client(js_server) as c:
        await fb_stream(c, no_ack=True)
        await run(c, [
            ("s.a", rp("b", 1, START, 1), [ACK(1, 1)], "1"),
            ("s.a", rp("b", 2, APPEND, 1), [ACK(2, 1)], "2"),
            ("s.a", rp("b", 4, APPEND, 1), [GAP(3, 4), PUBACK(2, "b", 2)], "4"),
            ("s.a", rp("b", 2, PING, 1), [], "p"),
            ("s.a", rp("c", 1, START, 1, "ok"), [ERR(1, *wrong_last(2))], "1", [(E_SEQ, "9")]),
            ("s.a", rp("c", 2, APPEND, 1, "ok"), [ERR(2, *wrong_last(2))], "2", [(E_SEQ, "9")]),
            ("s.a", rp("c", 3, COMMIT, 1, "ok"), [PUBACK(3, "c", 3)], "3"),
            ("s.a", rp("z", 3, COMMIT, 1, "ok"), [], "3"),
        ])
        await assert_stream(c, "S", [(1, "s.a", None, "1"), (2, "s.a", None, "2"), (3, "s.a", None, "3")])


# =========================================================================================
# 5. Unknown batches, IDs, malformed reply subjects
# =========================================================================================


@async_test()
async def test_unknown_batch_and_ids(js_server):
    """seq > 1 of an unknown batch (any op) is "batch publish ID unknown"; a batch ID of
    64 characters is accepted, 65 refused; the ID is the token before the flow, whatever
    the prefix (even none beyond the ID)."""
    async with client(js_server) as c:
        await fb_stream(c)
        id64, id65 = "A" * 64, "B" * 65
        await run(c, [
            ("s.a", rp("u", 2, APPEND), [UNKNOWN_ID]),
            ("s.a", rp("u", 5, COMMIT), [UNKNOWN_ID]),
            ("s.a", rp("u", 5, EOB), [UNKNOWN_ID]),
            ("s.a", rp("u", 2, PING), [UNKNOWN_ID]),
            ("s.a", rp(id64, 1, COMMIT), [PUBACK(1, id64, 1)], "64"),
            ("s.a", rp(id65, 1, COMMIT), [INVALID_ID], "65"),
            ("s.a", rp(id65, 1, START), [INVALID_ID], "65"),
            ("s.a", rp(id65, 2, APPEND), [INVALID_ID], "65"),
            # The ID is the fifth token from the end; a longer prefix is fine.
            ("s.a", "_R.x.y.z.w.10.fail.1.2.$FI", [PUBACK(2, "w", 1)], "w"),
            # The same ID under another prefix is the same batch.
            ("s.a", "_R.p1.k.10.fail.1.0.$FI", [ACK(0, 10)], "k1"),
            ("s.a", "_R.p2.k.10.fail.2.2.$FI", [PUBACK(4, "k", 2)], "k2"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", None, "64"), (2, "s.a", None, "w"), (3, "s.a", None, "k1"),
            (4, "s.a", None, "k2"),
        ])


# Reply subjects (under the inbox) that end in ".$FI" but do not parse.
MALFORMED = {
    "op-5": f"{P}.b.10.fail.1.5.$FI",
    "op-neg": f"{P}.b.10.fail.1.-1.$FI",
    "op-word": f"{P}.b.10.fail.1.x.$FI",
    "start-seq-2": f"{P}.b.10.fail.2.0.$FI",
    "append-seq-1": f"{P}.b.10.fail.1.1.$FI",
    "eob-seq-1": f"{P}.b.10.fail.1.3.$FI",
    "seq-0-start": f"{P}.b.10.fail.0.0.$FI",
    "seq-0-commit": f"{P}.b.10.fail.0.2.$FI",
    "seq-0-ping": f"{P}.b.10.fail.0.4.$FI",
    "seq-word": f"{P}.b.10.fail.x.2.$FI",
    "seq-max-u64": f"{P}.b.10.fail.18446744073709551615.2.$FI",
    "seq-over-u64": f"{P}.b.10.fail.18446744073709551616.2.$FI",
    "gap-OK": f"{P}.b.10.OK.1.0.$FI",
    "gap-word": f"{P}.b.10.maybe.1.0.$FI",
    "no-prefix-before-id": "_R.10.fail.1.0.$FI",
    "too-few-tokens": "_R.fail.1.0.$FI",
    "only-op": "_R.0.$FI",
}


@pytest.mark.parametrize("case", list(MALFORMED))
@async_test()
async def test_malformed_reply(js_server, case):
    """Any reply ending in ``.$FI`` that does not parse is answered with "batch publish
    pattern is invalid" and nothing is stored or started."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [
            ("s.a", MALFORMED[case], [INVALID_PATTERN]),
            ("s.a", rp("b", 2, APPEND), [UNKNOWN_ID]),
        ])
        await assert_stream(c, "S", [])


@async_test()
async def test_max_sequence(js_server):
    """The largest accepted batch sequence is 2^64-2 (reachable with a gap in ``ok``
    mode)."""
    async with client(js_server) as c:
        await fb_stream(c)
        big = 2**64 - 2
        await run(c, [
            ("s.a", rp("b", 1, START, 1, "ok"), [ACK(0, 1), ACK(1, 1)], "1"),
            ("s.a", rp("b", big, APPEND, 1, "ok"), [GAP(2, big), ACK(big, 1)], "2"),
            ("s.a", rp("b", big + 1, COMMIT, 1, "ok"), [INVALID_PATTERN], "3"),
            ("s.a", rp("b", big, PING, 1, "ok"), [ACK(big, 1)], "p"),
        ])
        await assert_stream(c, "S", [(1, "s.a", None, "1"), (2, "s.a", None, "2")])


# =========================================================================================
# 6. Stored messages, headers, other stream features
# =========================================================================================


@async_test()
async def test_stored_as_they_arrive(js_server):
    """Batch messages are in the stream (STREAM.INFO, STREAM.MSG.GET) before the commit,
    with their headers verbatim (nothing added); a plain publish in the middle of a batch
    takes the next stream sequence; atomic-batch headers on a fast-batch message are
    just headers (the reply subject decides); an allowed Nats-Required-Api-Level header is
    removed from the stored message, a too-high one refuses the message (plain error)
    and drops the batch."""
    async with client(js_server) as c:
        await fb_stream(c)
        h1 = [("Foo", "bar"), (BID, "zz"), (BSEQ, "7")]
        await run(c, [
            ("s.a", rp("b", 1, START), [ACK(0, 10)], "one", h1),
            ("s.b", rp("b", 2, APPEND), [], "two", [(RAL, "1"), ("Baz", "q")]),
        ], end_quiet=False)
        await assert_stream(c, "S", [(1, "s.a", h1, "one"), (2, "s.b", [("Baz", "q")], "two")])
        await run(c, [
            ("s.p", "_R.plain", [PUBACK(3)], "plain"),
            ("s.c", rp("b", 3, APPEND), [], "three", [(BCOMMIT, "1")]),
            ("s.d", rp("b", 4, APPEND), [API_LEVEL], "four", [(RAL, "99")]),
            ("s.d", rp("b", 4, COMMIT), [UNKNOWN_ID], "four"),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", h1, "one"), (2, "s.b", [("Baz", "q")], "two"), (3, "s.p", None, "plain"),
            (4, "s.c", [(BCOMMIT, "1")], "three"),
        ])


@async_test()
async def test_with_allow_atomic(js_server):
    """A stream with both: atomic batches (headers) and fast batches (reply subjects)
    work side by side; a message carrying both is a fast-batch message. A stream with only
    allow_atomic refuses fast batches ("batch publish is disabled"), one with only
    allow_batched refuses atomic batches ("atomic publish is disabled")."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_batched=True, allow_atomic=True)
        await create(c, "T", subjects=["t.>"], allow_atomic=True)
        await fb_stream(c, "U", subjects=["u.>"])
        await run(c, [
            ("s.a", rp("f", 1, START), [ACK(0, 10)], "f1"),
            ("s.a", "_R.at1", [""], "a1", [(BID, "a"), (BSEQ, "1")]),
            ("s.a", rp("f", 2, APPEND), [], "f2", [(BID, "a"), (BSEQ, "2"), (BCOMMIT, "1")]),
            ("s.a", "_R.at2", [PUBACK(4, "a", 2)], "a2", [(BID, "a"), (BSEQ, "2"), (BCOMMIT, "1")]),
            ("s.a", rp("f", 3, COMMIT), [PUBACK(5, "f", 3)], "f3"),
            ("t.a", rp("f", 1, COMMIT), [perr(400, 10205, "batch publish is disabled", "T")], "x"),
            ("u.a", "_R.at3", [perr(400, 10174, "atomic publish is disabled", "U")], "x",
             [(BID, "a"), (BSEQ, "1"), (BCOMMIT, "1")]),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", None, "f1"),
            (2, "s.a", [(BID, "a"), (BSEQ, "2"), (BCOMMIT, "1")], "f2"),
            (3, "s.a", [(BID, "a"), (BSEQ, "1")], "a1"),
            (4, "s.a", [(BID, "a"), (BSEQ, "2"), (BCOMMIT, "1")], "a2"),
            (5, "s.a", None, "f3"),
        ])


@async_test()
async def test_sealed(js_server):
    """A sealed stream refuses fast-batch messages (even malformed ones) with "invalid
    operation on sealed stream"."""
    async with client(js_server) as c:
        await fb_stream(c)
        await run(c, [("s.a", rp("b", 1, START), [ACK(0, 10)], "1")], end_quiet=False)
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_batched": True,
                                              "sealed": True})
        assert "error" not in json.loads(got), got
        await run(c, [
            ("s.a", rp("b", 2, APPEND), [SEALED], "2"),
            ("s.a", rp("b", 2, PING), [SEALED], "p"),
            ("s.a", rp("x", 1, COMMIT), [SEALED], "1"),
            ("s.a", MALFORMED["op-5"], [SEALED], "1"),
        ])
        await assert_stream(c, "S", [(1, "s.a", None, "1")])


# =========================================================================================
# 7. Server limits: timeout, in-flight batches
# =========================================================================================

LIMITS_CONF = """
jetstream {
  limits {
    batch { timeout: "1s", max_inflight_per_stream: 2, max_msgs: 2 }
  }
}
"""


@async_test()
async def test_server_batch_limits(start_js_server):
    """``jetstream.limits.batch``: ``max_inflight_per_stream`` refuses a third fast batch
    (429, plain error, no ack) until one ends, and counts fast batches separately from
    atomic ones; ``max_msgs`` does not limit fast batches; ``timeout`` is an inactivity
    timer (reset by every message, pings included) after which the batch silently
    disappears (its stored messages stay; a later message is "ID unknown")."""
    s = start_js_server(config=LIMITS_CONF)
    async with client(s) as c:
        await create(c, "S", subjects=["s.>"], allow_batched=True, allow_atomic=True)
        # max_msgs: 2 does not apply.
        await run(c, [("s.m", rp("m", i, op_for(i, 4)), [ACK(0, 10)] if i == 1 else
                       ([PUBACK(4, "m", 4)] if i == 4 else []), str(i)) for i in range(1, 5)],
                  end_quiet=False)
        # max_inflight_per_stream: 2
        await run(c, [
            ("s.i", rp("i1", 1, START), [ACK(0, 10)], "1"),
            ("s.i", rp("i2", 1, START), [ACK(0, 1), ACK(1, 2)], "1"),
            ("s.i", rp("i3", 1, START), [TOO_MANY_INFLIGHT], "1"),
            ("s.i", rp("i3", 1, COMMIT), [TOO_MANY_INFLIGHT], "1"),
            # An atomic batch is not counted against fast batches.
            ("s.i", "_R.at1", [""], "a", [(BID, "at"), (BSEQ, "1")]),
            ("s.i", rp("i1", 2, COMMIT), [PUBACK(7, "i1", 2)], "2"),
            ("s.i", rp("i3", 1, COMMIT), [PUBACK(8, "i3", 1)], "3"),
        ], end_quiet=False)
        # timeout: 1s of inactivity (i2 above expires too).
        await run(c, [("s.t", rp("t", 1, START), [ACK(0, 1), ACK(1, 2)], "1")], end_quiet=False)
        await asyncio.sleep(0.6)
        await run(c, [("s.t", rp("t", 2, APPEND), [], "2")], end_quiet=False)
        await asyncio.sleep(0.6)
        await run(c, [("s.t", rp("t", 2, PING), [ACK(1, 2)], "p")], end_quiet=False)
        await asyncio.sleep(0.6)
        await run(c, [("s.t", rp("t", 3, APPEND), [ACK(3, 4)], "3")], end_quiet=False)
        await asyncio.sleep(1.6)
        await run(c, [
            ("s.t", rp("t", 4, COMMIT), [UNKNOWN_ID], "4"),
            ("s.t", rp("t", 4, EOB), [UNKNOWN_ID], "4"),
            ("s.i", rp("i2", 2, COMMIT), [UNKNOWN_ID], "2"),
            # Both slots are free again.
            ("s.n", rp("n1", 1, START), [ACK(0, 10)], "1"),
            ("s.n", rp("n2", 1, START), [ACK(0, 1), ACK(1, 2)], "1"),
        ])
        assert await last_seq(c) == (13, 13)


TOTAL_CONF = """
jetstream {
  limits {
    batch { max_inflight_total: 1 }
  }
}
"""


@async_test()
async def test_server_inflight_total(start_js_server):
    """``max_inflight_total`` counts fast batches across streams."""
    s = start_js_server(config=TOTAL_CONF)
    async with client(s) as c:
        await fb_stream(c, "S", subjects=["s.>"])
        await fb_stream(c, "T", subjects=["t.>"])
        await run(c, [
            ("s.a", rp("a", 1, START), [ACK(0, 10)], "1"),
            ("t.a", rp("b", 1, COMMIT), [perr(429, 10211, "batch publish too many inflight", "T")], "1"),
            ("s.a", rp("c", 1, COMMIT), [TOO_MANY_INFLIGHT], "1"),
            ("s.a", rp("a", 2, COMMIT), [PUBACK(2, "a", 2)], "2"),
            ("t.a", rp("b", 1, COMMIT), [PUBACK(1, "b", 1, stream="T")], "1"),
        ])


@async_test()
async def test_default_inflight_limit(js_server):
    """By default 1000 fast batches may be in flight per stream; the 1001st is refused.
    With k batches in flight a new one starts at ``msgs`` 1 and its first ack ramps to
    min(2, 500 / k) (so 1 from the 251st batch on)."""
    async with client(js_server) as c:
        await fb_stream(c)
        n = 1001
        await c.c.send(b"".join(c._pub("s.a", "y", None, rp(f"i{i}", 1, START)) for i in range(1, n + 1)))
        want = [(rp("i1", 1, START), ACK(0, 10))]
        for i in range(2, 1001):
            want += [(rp(f"i{i}", 1, START), ACK(0, 1)), (rp(f"i{i}", 1, START), ACK(1, 2 if i <= 250 else 1))]
        want.append((rp("i1001", 1, START), TOO_MANY_INFLIGHT))
        got = await read_frames(c, len(want), timeout=10)
        assert got == want, next((i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w)
        await quiet(c)
        assert await last_seq(c) == (1000, 1000)
