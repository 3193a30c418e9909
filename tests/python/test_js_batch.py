"""JetStream atomic batch publish, side by side: each test runs against nats-server 2.15.1
and natrium-server (the ``impl`` parameter) and asserts what nats-server was measured to do.

Covered: the stream config (``allow_atomic``, its API level, the mirror and async-persist
refusals, toggling it off discarding in-flight batches); the publish headers
``Nats-Batch-Id`` / ``Nats-Batch-Sequence`` / ``Nats-Batch-Commit`` (``1`` or ``eob``):
the exact reply to every message (an empty message for a staged one, a PubAck with
``"batch"`` and ``"count"`` for the commit, the exact error otherwise), which headers the
stored messages keep, that nothing is stored before the commit, and whether an error
abandons the batch (a later message of the same batch then gets "incomplete"). Covered
errors: atomic publish disabled, missing/unparsable sequence, batch ID over 64 bytes,
invalid commit value, first sequence not 1, gaps, ``eob`` as the first message, duplicate
message IDs, ``Nats-Expected-Last-Msg-Id`` (unsupported), expected last sequence /
subject sequence inside a batch, rollups inside a batch, discard-new limits, the 1000
message limit, message size; the ``BATCH_ABANDONED`` advisory; interleaved batches; and the
server's ``jetstream { limits { batch { timeout, max_msgs, max_inflight_per_stream } } }``.

Replies are compared as raw bytes. Only timestamps and advisory IDs are normalised."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import pytest

from jsutil import (API, TS, api_error, assert_json, client, create, create_resp, go_json, info_resp,
                    norm_json, pub_error, state, state_of, stream_cfg, without_state)
from natsutil import assert_no_msg, async_test, connect, sync
from consumer_util import CClient, ccfg, cclient, cinfo_json, lines, make_consumer, msg_line, status_line
from jsutil import norm_hdr

BID = "Nats-Batch-Id"
BSEQ = "Nats-Batch-Sequence"
BCOMMIT = "Nats-Batch-Commit"
MSGID = "Nats-Msg-Id"
E_SEQ = "Nats-Expected-Last-Sequence"
E_SUBJ_SEQ = "Nats-Expected-Last-Subject-Sequence"
E_MSGID = "Nats-Expected-Last-Msg-Id"
ROLLUP = "Nats-Rollup"

ADVISORY = "$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED"

STAGED = "<staged>"  # expected reply: an empty message (no headers, no payload)


def B(seq, commit: str | None = None, *extra, bid: str = "b") -> list[tuple[str, str]]:
    """The headers of one batch message (in this order, which is also the stored order)."""
    h = [(BID, bid), (BSEQ, str(seq))]
    if commit is not None:
        h.append((BCOMMIT, commit))
    return h + list(extra)


def hdr_block(headers) -> str:
    return "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"


def fsize(subject: str, body: str, headers=None) -> int:
    """File store accounting of one message (nats-server's fileStoreMsgSizeRaw)."""
    h = len(hdr_block(headers)) if headers is not None else 0
    return 30 + len(subject) + len(body) + (h + 4 if h else 0)


def ack(seq: int, batch: str | None = None, count: int | None = None, stream: str = "S") -> str:
    if batch is None:
        return f'{{"stream":"{stream}","seq":{seq}}}'
    return f'{{"stream":"{stream}","seq":{seq},"batch":{json.dumps(batch)},"count":{count}}}'


def err(code: int, err_code: int, description: str, stream: str = "S") -> str:
    return pub_error(stream, code, err_code, description)


DISABLED = err(400, 10174, "atomic publish is disabled")
MISSING_SEQ = err(400, 10175, "atomic publish sequence is missing")
INCOMPLETE = err(400, 10176, "atomic publish batch is incomplete")
INVALID_ID = err(400, 10179, "atomic publish batch ID is invalid")
INVALID_COMMIT = err(400, 10200, "atomic publish batch commit is invalid")
DUP_MSG_ID = err(400, 10201, "atomic publish batch contains duplicate message id")
WRONG_LAST_CONST = err(400, 10164, "wrong last sequence")
TOO_MANY_INFLIGHT = err(429, 10210, "atomic publish too many inflight")
MSG_TOO_BIG = err(400, 10054, "message size exceeds maximum allowed")


def unsupported(header: str) -> str:
    return err(400, 10177, f"atomic publish unsupported header used: {header}")


def too_large(limit: int) -> str:
    return err(400, 10199, f"atomic publish batch is too large: {limit}")


def wrong_last(n: int) -> str:
    return err(400, 10071, f"wrong last sequence: {n}")


def rollup_failed(why: str) -> str:
    return err(500, 10111, why)


def store_failed(why: str) -> str:
    return err(503, 10077, why)


# -- running steps and checking the stream ------------------------------------------------


async def run_steps(c, steps) -> None:
    """``steps``: ``(subject, headers, body, expected)``; ``expected`` is the exact reply
    (``STAGED`` for the empty staged ack) or None to publish without a reply subject."""
    for i, (subject, headers, body, expected) in enumerate(steps):
        what = f"step {i}: {subject} {headers} {body!r}"
        if expected is None:
            await c.publish(subject, body, headers)
            continue
        f = await c.req(subject, body, headers)
        assert f.hdr is None, f"{what}: reply has headers {f.hdr!r}"
        got = f.data.decode()
        if expected == STAGED:
            assert got == "", f"{what}: expected the empty staged reply, got {got!r}"
        else:
            assert got == expected, f"{what}:\n  got      {got}\n  expected {expected}"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


async def assert_stream(c, stream: str, msgs, timeout: float = 3.0) -> None:
    """The stream holds exactly ``msgs`` — ``(seq, subject, headers or None, body)``, in
    sequence order, contiguous — with these exact headers (checked with STREAM.MSG.GET),
    and its state (file store byte accounting) matches."""
    if msgs:
        st = state(len(msgs), sum(fsize(s, b, h) for _, s, h, b in msgs), msgs[0][0], msgs[-1][0],
                   num_subjects=len({s for _, s, _, _ in msgs}))
    else:
        st = state()
    want = go_json(st)
    deadline = time.monotonic() + timeout
    while True:  # a commit published without a reply subject has no ack to wait for
        got = state_of(await c.api(f"STREAM.INFO.{stream}"))
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert got == want, f"stream {stream} state\n  got      {got}\n  expected {want}"
    for seq, subject, headers, body in msgs:
        m = {"subject": subject, "seq": seq}
        if headers is not None:
            m["hdrs"] = b64(hdr_block(headers))
        m["data"] = b64(body)
        m["time"] = TS
        assert_json(await c.api(f"STREAM.MSG.GET.{stream}", {"seq": seq}),
                    go_json({"type": API + "stream_msg_get_response", "message": m}))


_ADV_ID = re.compile(r'"id":"[0-9A-Za-z]{22}"')


def adv_text(data: bytes) -> str:
    return _ADV_ID.sub('"id":"<ID>"', norm_json(data))


def adv_expected(stream: str, batch: str, reason: str) -> str:
    return ('{"type":"io.nats.jetstream.advisory.v1.stream_batch_abandoned","id":"<ID>",'
            f'"timestamp":"<TS>","stream":{json.dumps(stream)},"batch":{json.dumps(batch)},'
            f'"reason":{json.dumps(reason)}}}')


class advisories:
    """``async with advisories(server, stream) as a:`` — a nats-py subscription to the
    stream's ``BATCH_ABANDONED`` advisories; ``await a.expect([(batch, reason), …])``."""

    def __init__(self, server, stream: str):
        self.server, self.stream = server, stream

    async def __aenter__(self):
        self.nc = await connect(self.server.url)
        self.sub = await self.nc.subscribe(f"{ADVISORY}.{self.stream}")
        await sync(self.nc)
        return self

    async def __aexit__(self, *exc):
        await self.nc.close()

    async def expect(self, items, quiet: float = 0.25) -> None:
        for batch, reason in items:
            m = await self.sub.next_msg(timeout=3)
            assert m.subject == f"{ADVISORY}.{self.stream}", m.subject
            assert adv_text(m.data) == adv_expected(self.stream, batch, reason), m.data
        await assert_no_msg(self.sub, quiet)


# =========================================================================================
# 1. Stream config
# =========================================================================================


def atomic_cfg(name: str, subjects, **over) -> dict:
    """nats-server's config for a stream created with ``allow_atomic: true`` (marshalled
    after ``allow_msg_ttl``, and raising the required API level to 2)."""
    cfg = stream_cfg(name, subjects, req_level="2", **over)
    out = {}
    for k, v in cfg.items():
        if k == "metadata":
            out["allow_atomic"] = True
        out[k] = v
    return out


@async_test()
async def test_stream_config(js_server):
    """allow_atomic in create/info/update responses; the mirror refusal; turning it off
    discards in-flight batches (their commit gets "disabled", then "incomplete" once it is
    back on); an update that keeps it on keeps them."""
    async with client(js_server) as c:
        got = await c.api("STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "allow_atomic": True})
        assert_json(got, create_resp(atomic_cfg("S", ["s.>"]), state()))
        assert_json(await c.api("STREAM.INFO.S"), info_resp(atomic_cfg("S", ["s.>"]), state()))

        got = await c.api("STREAM.CREATE.M", {"name": "M", "mirror": {"name": "S"}, "allow_atomic": True})
        assert_json(got, api_error("stream_create_response", 400, 10198,
                                   "stream mirrors can not also use atomic publishing"))

        await run_steps(c, [("s.a", B(1), "1", STAGED), ("s.a", B(1, bid="c"), "1", STAGED)])
        # Off: the config loses the field and the API level drops back to 0.
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"]})
        assert_json(without_state(got), create_resp(stream_cfg("S", ["s.>"]), update=True))
        await run_steps(c, [
            ("s.a", B(2, "1"), "2", DISABLED),
            ("s.a", B(1, "1", bid="x"), "1", DISABLED),
        ])
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_atomic": True})
        assert_json(without_state(got), create_resp(atomic_cfg("S", ["s.>"]), update=True))
        await run_steps(c, [
            ("s.a", B(2, "1", bid="c"), "2", INCOMPLETE),  # discarded by the update
            ("s.a", B(1, "1", bid="c"), "1", ack(1, "c", 1)),
            ("s.a", B(1, bid="d"), "1", STAGED),
        ])
        # An update that keeps allow_atomic keeps in-flight batches.
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_atomic": True,
                                              "description": "d"})
        assert_json(without_state(got),
                    create_resp(atomic_cfg("S", ["s.>"], description="d"), update=True))
        await run_steps(c, [("s.b", B(2, "1", bid="d"), "2", ack(3, "d", 2))])
        await assert_stream(c, "S", [
            (1, "s.a", B(1, "1", bid="c"), "1"),
            (2, "s.a", B(1, bid="d"), "1"),
            (3, "s.b", B(2, "1", bid="d"), "2"),
        ])


@async_test()
async def test_async_persist_refused(js_server):
    async with client(js_server) as c:
        got = await c.api("STREAM.CREATE.P", {"name": "P", "persist_mode": "async", "allow_atomic": True})
        assert_json(got, api_error("stream_create_response", 500, 10052,
                                   "async persist mode is not supported with atomic batch publish"))


# =========================================================================================
# 2. Commit
# =========================================================================================


@async_test()
async def test_happy_path(js_server):
    """Staged messages get an empty reply and are not in the stream; the commit stores
    all of them (headers kept verbatim, batch headers included) and answers with a PubAck
    carrying the batch ID and count."""
    async with client(js_server) as c, advisories(js_server, "S") as adv:
        await create(c, "S", subjects=["s.>"], allow_atomic=True)
        await run_steps(c, [
            ("s.a", B(1, None, ("Foo", "bar")), "one", STAGED),
            ("s.b", B(2), "two", STAGED),
        ])
        assert state_of(await c.api("STREAM.INFO.S")) == go_json(state())
        assert_json(await c.api("STREAM.MSG.GET.S", {"seq": 1}),
                    api_error("stream_msg_get_response", 404, 10037, "no message found"))
        await run_steps(c, [("s.c", B(3, "1"), "three", ack(3, "b", 3))])
        await assert_stream(c, "S", [
            (1, "s.a", B(1, None, ("Foo", "bar")), "one"),
            (2, "s.b", B(2), "two"),
            (3, "s.c", B(3, "1"), "three"),
        ])
        # The same ID starts a new batch once committed; a plain publish follows the batch.
        await run_steps(c, [
            ("s.d", B(1, "1"), "four", ack(4, "b", 1)),
            ("s.e", None, "five", ack(5)),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", B(1, None, ("Foo", "bar")), "one"),
            (2, "s.b", B(2), "two"),
            (3, "s.c", B(3, "1"), "three"),
            (4, "s.d", B(1, "1"), "four"),
            (5, "s.e", None, "five"),
        ])
        await adv.expect([])


@async_test()
async def test_commit_eob(js_server):
    """``Nats-Batch-Commit: eob``: the marker message itself (subject, payload, headers —
    even an unsupported one or a message ID) is not stored nor checked; the last stored
    message gets ``Nats-Batch-Commit: 1`` appended after its own headers; the PubAck
    names the last stored sequence and counts the stored messages only."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_atomic=True)
        await run_steps(c, [
            ("s.a", B(1, None, ("Foo", "1")), "x", STAGED),
            ("s.b", B(2, None, ("Foo", "2")), "two", STAGED),
            ("s.c", B(3, "eob", (E_MSGID, "zz"), (MSGID, "q")), "marker", ack(2, "b", 2)),
            # The marker's message ID was not recorded.
            ("s.z", [(MSGID, "q")], "z", ack(3)),
        ])
        await assert_stream(c, "S", [
            (1, "s.a", B(1, None, ("Foo", "1")), "x"),
            (2, "s.b", B(2, None, ("Foo", "2"), (BCOMMIT, "1")), "two"),
            (3, "s.z", [(MSGID, "q")], "z"),
        ])


@async_test()
async def test_interleaved_batches(js_server):
    """Two batches in flight on one stream, with a plain publish in between: each batch is
    stored contiguously at its commit, in commit order."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_atomic=True)
        await run_steps(c, [
            ("s.a", B(1, bid="A"), "a1", STAGED),
            ("s.b", B(1, bid="B"), "b1", STAGED),
            ("s.a", B(2, bid="A"), "a2", STAGED),
            ("s.n", None, "n", ack(1)),
            ("s.b", B(2, bid="B"), "b2", STAGED),
            ("s.b", B(3, "1", bid="B"), "b3", ack(4, "B", 3)),
            ("s.a", B(3, "1", bid="A"), "a3", ack(7, "A", 3)),
        ])
        await assert_stream(c, "S", [
            (1, "s.n", None, "n"),
            (2, "s.b", B(1, bid="B"), "b1"),
            (3, "s.b", B(2, bid="B"), "b2"),
            (4, "s.b", B(3, "1", bid="B"), "b3"),
            (5, "s.a", B(1, bid="A"), "a1"),
            (6, "s.a", B(2, bid="A"), "a2"),
            (7, "s.a", B(3, "1", bid="A"), "a3"),
        ])


# =========================================================================================
# 3. Errors, abandonment and what is stored: one table
# =========================================================================================
#
# Each case: a fresh server, stream S (subjects s.>, allow_atomic unless ``cfg`` says
# otherwise), the ``steps`` with their exact replies, then the exact stream contents and
# the BATCH_ABANDONED advisories (batch, reason) that were sent — none unless listed.

X64 = "x" * 64
X65 = "x" * 65

CASES = {
    "disabled": dict(
        cfg={"allow_atomic": False},
        steps=[
            ("s.a", B(1), "1", DISABLED),
            ("s.a", B(1, "1"), "1", DISABLED),
            ("s.a", B(2, "eob"), "1", DISABLED),
        ],
        stored=[]),
    "batch_headers_without_id_are_plain": dict(
        steps=[
            ("s.a", [(BID, ""), (BSEQ, "1"), (BCOMMIT, "1")], "1", ack(1)),
            ("s.a", [(BCOMMIT, "1")], "2", ack(2)),
            ("s.a", [(BSEQ, "5")], "3", ack(3)),
        ],
        stored=[
            (1, "s.a", [(BID, ""), (BSEQ, "1"), (BCOMMIT, "1")], "1"),
            (2, "s.a", [(BCOMMIT, "1")], "2"),
            (3, "s.a", [(BSEQ, "5")], "3"),
        ]),
    # Errors before the batch is looked up: the batch is not abandoned.
    "missing_or_bad_sequence": dict(
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", [(BID, "b")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "abc")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "-1")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "+2")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "2 ")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "2.0")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "0x2")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "18446744073709551617")], "x", MISSING_SEQ),
            ("s.a", [(BID, "b"), (BSEQ, "2"), (BCOMMIT, "1")], "x", ack(2, "b", 2)),
        ],
        stored=[
            (1, "s.a", B(1), "1"),
            (2, "s.a", [(BID, "b"), (BSEQ, "2"), (BCOMMIT, "1")], "x"),
        ]),
    "sequence_leading_zero": dict(
        steps=[("s.a", [(BID, "b"), (BSEQ, "01"), (BCOMMIT, "1")], "1", ack(1, "b", 1))],
        stored=[(1, "s.a", [(BID, "b"), (BSEQ, "01"), (BCOMMIT, "1")], "1")]),
    "batch_id_too_long": dict(
        steps=[
            ("s.a", B(1, bid=X65), "1", INVALID_ID),
            ("s.a", B(1, bid=X64), "1", STAGED),
            ("s.a", B(2, "1", bid=X64), "2", ack(2, X64, 2)),
        ],
        stored=[(1, "s.a", B(1, bid=X64), "1"), (2, "s.a", B(2, "1", bid=X64), "2")]),
    "max_msg_size_not_abandoned": dict(
        cfg={"max_msg_size": 100},
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2), "y" * 200, MSG_TOO_BIG),
            ("s.a", B(2, "1"), "2", ack(2, "b", 2)),
        ],
        stored=[(1, "s.a", B(1), "1"), (2, "s.a", B(2, "1"), "2")]),
    # Invalid commit values: the batch is dropped, without an advisory.
    "commit_invalid": dict(
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2, "yes"), "2", INVALID_COMMIT),
            ("s.a", B(3, "1"), "3", INCOMPLETE),
            ("s.a", B(2, "1"), "2", INCOMPLETE),
        ],
        stored=[]),
    "commit_invalid_values": dict(
        steps=[
            ("s.a", B(1, "", bid="e"), "1", INVALID_COMMIT),
            ("s.a", B(1, "EOB", bid="f"), "1", INVALID_COMMIT),
            ("s.a", B(1, "true", bid="g"), "1", INVALID_COMMIT),
            ("s.a", B(1, "0", bid="h"), "1", INVALID_COMMIT),
            ("s.a", B(2, "1", bid="h"), "1", INCOMPLETE),
            # Leading blanks of a header value are skipped; the value is stored verbatim.
            ("s.a", B(1, " 1", bid="i"), "1", ack(1, "i", 1)),
        ],
        stored=[(1, "s.a", B(1, " 1", bid="i"), "1")]),
    "commit_invalid_on_first_message": dict(
        steps=[
            ("s.a", B(1, "yes"), "1", INVALID_COMMIT),
            ("s.a", B(2, "1"), "2", INCOMPLETE),
            ("s.a", B(1, "1"), "1", ack(1, "b", 1)),
        ],
        stored=[(1, "s.a", B(1, "1"), "1")]),
    # Sequence errors.
    "first_sequence_not_1": dict(
        steps=[
            ("s.a", B(2), "2", INCOMPLETE),
            ("s.a", B(0), "0", INCOMPLETE),
            ("s.a", B(3, "1"), "3", INCOMPLETE),
            ("s.a", B(1, "1"), "1", ack(1, "b", 1)),
        ],
        stored=[(1, "s.a", B(1, "1"), "1")]),
    "gap": dict(
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(3), "3", INCOMPLETE),
            ("s.a", B(2, "1"), "2", INCOMPLETE),
            ("s.a", B(4, "1"), "4", INCOMPLETE),
        ],
        stored=[],
        advisories=[("b", "incomplete")]),
    "sequence_1_again": dict(
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2), "2", STAGED),
            ("s.a", B(1), "1", INCOMPLETE),
            ("s.a", B(2, "1"), "2", INCOMPLETE),
            ("s.a", B(1, "1"), "1", ack(1, "b", 1)),
        ],
        stored=[(1, "s.a", B(1, "1"), "1")],
        advisories=[("b", "incomplete")]),
    "eob_first": dict(
        steps=[
            ("s.a", B(1, "eob"), "1", INCOMPLETE),
            ("s.a", B(2, "1"), "2", INCOMPLETE),
        ],
        stored=[],
        advisories=[("b", "incomplete")]),
    # Consistency checks run at the commit, over the whole batch: every message before it
    # was staged; the error is the commit's reply; the batch is dropped (no advisory).
    "duplicate_msg_id_in_batch": dict(
        steps=[
            ("s.a", B(1, None, (MSGID, "m1")), "1", STAGED),
            ("s.b", B(2, None, (MSGID, "m1")), "2", STAGED),
            ("s.c", B(3, "1"), "3", DUP_MSG_ID),
            ("s.c", B(4, "1"), "4", INCOMPLETE),
        ],
        stored=[]),
    "duplicate_msg_id_on_commit": dict(
        steps=[
            ("s.a", B(1, None, (MSGID, "m1")), "1", STAGED),
            ("s.b", B(2, "1", (MSGID, "m1")), "2", DUP_MSG_ID),
        ],
        stored=[]),
    "msg_id_already_in_stream": dict(
        steps=[
            ("s.z", [(MSGID, "m1")], "z", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2, "1", (MSGID, "m1")), "2", DUP_MSG_ID),
            ("s.c", B(3, "1"), "3", INCOMPLETE),
        ],
        stored=[(1, "s.z", [(MSGID, "m1")], "z")]),
    "msg_ids_recorded_at_commit": dict(
        steps=[
            ("s.a", B(1, None, (MSGID, "m1")), "1", STAGED),
            ("s.a", B(2, "1", (MSGID, "m2")), "2", ack(2, "b", 2)),
            ("s.a", [(MSGID, "m2")], "3", '{"stream":"S","seq":2,"duplicate": true}'),
        ],
        stored=[(1, "s.a", B(1, None, (MSGID, "m1")), "1"), (2, "s.a", B(2, "1", (MSGID, "m2")), "2")]),
    "expected_last_msg_id_unsupported": dict(
        steps=[
            ("s.z", [(MSGID, "m1")], "z", ack(1)),
            ("s.a", B(1, None, (E_MSGID, "m1")), "1", STAGED),
            ("s.b", B(2, "1"), "2", unsupported(E_MSGID)),
            ("s.c", B(3, "1"), "3", INCOMPLETE),
        ],
        stored=[(1, "s.z", [(MSGID, "m1")], "z")]),
    "expected_last_seq_first_ok": dict(
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.a", B(1, None, (E_SEQ, "1")), "1", STAGED),
            ("s.b", B(2, "1"), "2", ack(3, "b", 2)),
        ],
        stored=[(1, "s.z", None, "z"), (2, "s.a", B(1, None, (E_SEQ, "1")), "1"), (3, "s.b", B(2, "1"), "2")]),
    "expected_last_seq_first_wrong": dict(
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.a", B(1, None, (E_SEQ, "5")), "1", STAGED),
            ("s.b", B(2, "1"), "2", wrong_last(1)),
            ("s.b", B(3, "1"), "3", INCOMPLETE),
        ],
        stored=[(1, "s.z", None, "z")]),
    # A later message is compared with the stream's last sequence plus the batch messages
    # before it: a stale value is "wrong last sequence: <that>", the matching one the
    # constant "wrong last sequence".
    "expected_last_seq_later_stale": dict(
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2, None, (E_SEQ, "1")), "2", STAGED),
            ("s.c", B(3, "1"), "3", wrong_last(2)),
            ("s.c", B(4, "1"), "4", INCOMPLETE),
        ],
        stored=[(1, "s.z", None, "z")]),
    "expected_last_seq_later_matching": dict(
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2, "1", (E_SEQ, "2")), "2", WRONG_LAST_CONST),
        ],
        stored=[(1, "s.z", None, "z")]),
    "expected_last_subject_seq_subject_in_batch": dict(
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2, None, (E_SUBJ_SEQ, "0")), "2", STAGED),
            ("s.c", B(3, "1"), "3", WRONG_LAST_CONST),
            ("s.c", B(4, "1"), "4", INCOMPLETE),
        ],
        stored=[]),
    "expected_last_subject_seq_ok": dict(
        steps=[
            ("s.a", None, "z", ack(1)),
            ("s.b", B(1), "1", STAGED),
            ("s.a", B(2, "1", (E_SUBJ_SEQ, "1")), "2", ack(3, "b", 2)),
        ],
        stored=[(1, "s.a", None, "z"), (2, "s.b", B(1), "1"), (3, "s.a", B(2, "1", (E_SUBJ_SEQ, "1")), "2")]),
    "expected_last_subject_seq_wrong": dict(
        steps=[
            ("s.a", None, "z", ack(1)),
            ("s.b", B(1), "1", STAGED),
            ("s.a", B(2, "1", (E_SUBJ_SEQ, "7")), "2", wrong_last(1)),
        ],
        stored=[(1, "s.a", None, "z")]),
    "expected_stream_mismatch": dict(
        steps=[
            ("s.a", B(1, None, ("Nats-Expected-Stream", "nope")), "1", STAGED),
            ("s.a", B(2, "1"), "2", err(400, 10060, "expected stream does not match")),
            ("s.a", B(3, "1"), "3", INCOMPLETE),
        ],
        stored=[]),
    "ttl_disabled": dict(
        steps=[("s.a", B(1, "1", ("Nats-TTL", "5s")), "1", err(400, 10166, "per-message TTL is disabled"))],
        stored=[]),
    # Rollups.
    "rollup_all_not_first": dict(
        cfg={"allow_rollup_hdrs": True},
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2, None, (ROLLUP, "all")), "2", STAGED),
            ("s.c", B(3, "1"), "3", rollup_failed("batch rollup all invalid")),
            ("s.c", B(4, "1"), "4", INCOMPLETE),
        ],
        stored=[(1, "s.z", None, "z")]),
    "rollup_all_first": dict(
        cfg={"allow_rollup_hdrs": True},
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.y", None, "y", ack(2)),
            ("s.a", B(1, None, (ROLLUP, "all")), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
            ("s.c", B(3, "1"), "3", ack(5, "b", 3)),
        ],
        stored=[(3, "s.a", B(1, None, (ROLLUP, "all")), "1"), (4, "s.b", B(2), "2"), (5, "s.c", B(3, "1"), "3")]),
    "rollup_sub_after_subject_in_batch": dict(
        cfg={"allow_rollup_hdrs": True},
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2, None, (ROLLUP, "sub")), "2", STAGED),
            ("s.c", B(3, "1"), "3", rollup_failed("batch rollup sub invalid")),
            ("s.c", B(4, "1"), "4", INCOMPLETE),
        ],
        stored=[]),
    "rollup_sub_first_of_subject": dict(
        cfg={"allow_rollup_hdrs": True},
        steps=[
            ("s.a", None, "z", ack(1)),
            ("s.a", None, "y", ack(2)),
            ("s.b", B(1), "1", STAGED),
            ("s.a", B(2, None, (ROLLUP, "sub")), "2", STAGED),
            ("s.a", B(3, "1"), "3", ack(5, "b", 3)),
        ],
        stored=[(3, "s.b", B(1), "1"), (4, "s.a", B(2, None, (ROLLUP, "sub")), "2"), (5, "s.a", B(3, "1"), "3")]),
    "rollup_not_permitted": dict(
        steps=[
            ("s.a", B(1, None, (ROLLUP, "sub")), "1", STAGED),
            ("s.c", B(2, "1"), "2", rollup_failed("rollup not permitted")),
        ],
        stored=[]),
    "rollup_invalid_value": dict(
        cfg={"allow_rollup_hdrs": True},
        steps=[
            ("s.a", B(1, None, (ROLLUP, "bad")), "1", STAGED),
            ("s.c", B(2, "1"), "2", rollup_failed('rollup value invalid: "bad"')),
        ],
        stored=[]),
    # Discard-new limits count the whole batch; discard-old just applies the limit.
    "discard_new_max_msgs": dict(
        cfg={"discard": "new", "max_msgs": 3},
        steps=[
            ("s.z", None, "z", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
            ("s.c", B(3, "1"), "3", store_failed("maximum messages exceeded")),
            ("s.c", B(4, "1"), "4", INCOMPLETE),
            ("s.a", B(1, bid="c"), "1", STAGED),
            ("s.b", B(2, "1", bid="c"), "2", ack(3, "c", 2)),
        ],
        stored=[(1, "s.z", None, "z"), (2, "s.a", B(1, bid="c"), "1"), (3, "s.b", B(2, "1", bid="c"), "2")]),
    "discard_new_max_bytes": dict(
        cfg={"discard": "new", "max_bytes": 1000},
        steps=[
            ("s.a", B(1), "y" * 300, STAGED),
            ("s.b", B(2), "y" * 300, STAGED),
            ("s.c", B(3, "1"), "y" * 300, store_failed("maximum bytes exceeded")),
            ("s.c", B(4, "1"), "y" * 300, INCOMPLETE),
            ("s.a", B(1, bid="c"), "y" * 300, STAGED),
            ("s.b", B(2, "1", bid="c"), "y" * 300, ack(2, "c", 2)),
        ],
        stored=[(1, "s.a", B(1, bid="c"), "y" * 300), (2, "s.b", B(2, "1", bid="c"), "y" * 300)]),
    "discard_old_max_msgs": dict(
        cfg={"max_msgs": 2},
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
            ("s.c", B(3, "1"), "3", ack(3, "b", 3)),
        ],
        stored=[(2, "s.b", B(2), "2"), (3, "s.c", B(3, "1"), "3")]),
    # Publishes without a reply subject are staged (and committed) silently.
    "no_reply_subject": dict(
        steps=[
            ("s.a", B(1), "1", None),
            ("s.a", B(2), "2", None),
            ("s.a", B(3, "1"), "3", ack(3, "b", 3)),
            ("s.b", B(1, bid="c"), "4", STAGED),
            ("s.b", B(2, "1", bid="c"), "5", None),
        ],
        stored=[
            (1, "s.a", B(1), "1"), (2, "s.a", B(2), "2"), (3, "s.a", B(3, "1"), "3"),
            (4, "s.b", B(1, bid="c"), "4"), (5, "s.b", B(2, "1", bid="c"), "5"),
        ]),
}


@pytest.mark.parametrize("case", list(CASES))
@async_test()
async def test_batch_case(js_server, case):
    spec = CASES[case]
    cfg = {"allow_atomic": True, **spec.get("cfg", {})}
    async with client(js_server) as c, advisories(js_server, "S") as adv:
        await create(c, "S", subjects=["s.>"], **cfg)
        await run_steps(c, spec["steps"])
        await assert_stream(c, "S", spec["stored"])
        await adv.expect(spec.get("advisories", []))


# =========================================================================================
# 4. The batch size limit and the advisory
# =========================================================================================


async def stage(c, subject: str, first: int, last: int, bid: str = "b") -> None:
    """Stage batch messages ``first..last`` (each must get the empty reply)."""
    for i in range(first, last + 1):
        f = await c.req(subject, "", B(i, bid=bid))
        assert f.hdr is None and f.data == b"", (i, f)


@async_test()
async def test_batch_too_large(js_server):
    """At most 1000 messages: message 1001 is refused and abandons the batch (advisory
    "large"); a message of an unknown batch with a sequence over the limit gets "too
    large" rather than "incomplete". The ``eob`` marker does not count: ``eob`` as
    message 1001 commits 1000 messages."""
    async with client(js_server) as c, advisories(js_server, "S") as adv:
        await create(c, "S", subjects=["s.>"], allow_atomic=True, storage="memory")
        await stage(c, "s.a", 1, 1000)
        await run_steps(c, [
            ("s.a", B(1001), "", too_large(1000)),
            ("s.a", B(1002, "1"), "", too_large(1000)),
            ("s.a", B(1001, "eob"), "", INCOMPLETE),
            ("s.a", B(1000, "1"), "", INCOMPLETE),
            ("s.a", B(5000, bid="z"), "", too_large(1000)),
            ("s.a", B(1001, "eob", bid="z"), "", INCOMPLETE),
            ("s.a", B(1002, "eob", bid="z"), "", too_large(1000)),
            ("s.a", B(18446744073709551615, bid="z"), "", too_large(1000)),
        ])
        await adv.expect([("b", "large")])
        assert state_of(await c.api("STREAM.INFO.S")) == go_json(state())

        await stage(c, "s.a", 1, 1000, bid="e")
        await run_steps(c, [("s.end", B(1001, "eob", bid="e"), "end", ack(1000, "e", 1000))])
        await stage(c, "s.a", 1, 999, bid="f")
        await run_steps(c, [("s.a", B(1000, "1", bid="f"), "", ack(2000, "f", 1000))])
        info = json.loads(await c.api("STREAM.INFO.S"))
        st = info["state"]
        assert (st["messages"], st["first_seq"], st["last_seq"]) == (2000, 1, 2000), st
        last = json.loads(await c.api("STREAM.MSG.GET.S", {"seq": 1000}))["message"]
        assert (last["subject"], base64.b64decode(last["hdrs"]).decode(), "data" in last) == (
            "s.a", hdr_block(B(1000, None, (BCOMMIT, "1"), bid="e")), False), last
        await adv.expect([])


@async_test()
async def test_abandoned_advisory(js_server):
    """The ``$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.<stream>`` body (type, a 22
    character ID, timestamp, stream, batch, reason), sent once when a gap abandons a batch
    and not again for the batch's later messages."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_atomic=True)
        nc = await connect(js_server.url)
        try:
            sub = await nc.subscribe(f"{ADVISORY}.>")
            await sync(nc)
            await run_steps(c, [
                ("s.a", B(1, bid="gap-1"), "1", STAGED),
                ("s.a", B(2, bid="gap-1"), "2", STAGED),
                ("s.a", B(4, bid="gap-1"), "4", INCOMPLETE),
                ("s.a", B(5, "1", bid="gap-1"), "5", INCOMPLETE),
            ])
            m = await sub.next_msg(timeout=3)
            assert m.subject == f"{ADVISORY}.S"
            assert m.headers is None
            doc = json.loads(m.data)
            assert list(doc) == ["type", "id", "timestamp", "stream", "batch", "reason"], doc
            assert re.fullmatch(r"[0-9A-Za-z]{22}", doc["id"]), doc
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z", doc["timestamp"]), doc
            assert adv_text(m.data) == adv_expected("S", "gap-1", "incomplete")
            await assert_no_msg(sub, 0.3)
        finally:
            await nc.close()


# =========================================================================================
# 5. Server batch limits
# =========================================================================================

LIMITS_CONF = """
jetstream {
  limits {
    batch { timeout: "600ms", max_msgs: 3, max_inflight_per_stream: 2 }
  }
}
"""


@async_test()
async def test_server_batch_limits(start_js_server):
    """``jetstream.limits.batch``: ``max_msgs`` replaces 1000, ``max_inflight_per_stream``
    refuses a further batch (429) until one ends, and ``timeout`` is an inactivity timer
    (reset by every message) that abandons the batch with advisory "timeout"."""
    s = start_js_server(config=LIMITS_CONF)
    async with client(s) as c, advisories(s, "S") as adv:
        await create(c, "S", subjects=["s.>"], allow_atomic=True)
        # max_msgs: 3
        await run_steps(c, [
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2), "2", STAGED),
            ("s.a", B(3), "3", STAGED),
            ("s.a", B(4, "1"), "4", too_large(3)),
            ("s.a", B(4, "eob"), "4", INCOMPLETE),
        ])
        await adv.expect([("b", "large")])
        await run_steps(c, [
            ("s.a", B(1, bid="c"), "1", STAGED),
            ("s.a", B(2, bid="c"), "2", STAGED),
            ("s.a", B(3, bid="c"), "3", STAGED),
            ("s.a", B(4, "eob", bid="c"), "4", ack(3, "c", 3)),
            ("s.a", B(4, bid="d"), "4", too_large(3)),
        ])
        # max_inflight_per_stream: 2
        await run_steps(c, [
            ("s.i", B(1, bid="i1"), "1", STAGED),
            ("s.i", B(1, bid="i2"), "1", STAGED),
            ("s.i", B(1, bid="i3"), "1", TOO_MANY_INFLIGHT),
            ("s.i", B(1, "1", bid="i3"), "1", TOO_MANY_INFLIGHT),
            ("s.i", B(2, "1", bid="i1"), "2", ack(5, "i1", 2)),
            ("s.i", B(1, "1", bid="i3"), "3", ack(6, "i3", 1)),
        ])
        # timeout: 600ms of inactivity; i2 above expires too.
        await run_steps(c, [("s.t", B(1, bid="t"), "1", STAGED)])
        await asyncio.sleep(0.35)
        await run_steps(c, [("s.t", B(2, bid="t"), "2", STAGED)])
        await asyncio.sleep(0.35)
        await run_steps(c, [("s.t", B(3, "1", bid="t"), "3", ack(9, "t", 3))])
        await run_steps(c, [("s.u", B(1, bid="u"), "1", STAGED)])
        await asyncio.sleep(1.0)
        await run_steps(c, [
            ("s.u", B(2, "1", bid="u"), "2", INCOMPLETE),
            ("s.i", B(2, "1", bid="i2"), "2", INCOMPLETE),
        ])
        got = sorted([adv_text((await adv.sub.next_msg(timeout=3)).data) for _ in range(2)])
        assert got == sorted([adv_expected("S", "i2", "timeout"), adv_expected("S", "u", "timeout")])
        await adv.expect([])
        info = json.loads(await c.api("STREAM.INFO.S"))
        assert (info["state"]["messages"], info["state"]["last_seq"]) == (9, 9), info["state"]
