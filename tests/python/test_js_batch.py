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

from jsutil import (API, TS, api_error, assert_json, assert_stream, b64, client, create, create_resp,
                    fsize, go_json, hdr_block, info_resp, JsClient, norm_json, pub_error, state,
                    state_of, stream_cfg, without_state)
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
    batch { timeout: "1s", max_msgs: 3, max_inflight_per_stream: 2 }
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
        # timeout: 1s of inactivity (gaps of 0.35 s leave room for a loaded machine);
        # i2 above expires too.
        await run_steps(c, [("s.t", B(1, bid="t"), "1", STAGED)])
        await asyncio.sleep(0.35)
        await run_steps(c, [("s.t", B(2, bid="t"), "2", STAGED)])
        await asyncio.sleep(0.35)
        await run_steps(c, [("s.t", B(3, "1", bid="t"), "3", ack(9, "t", 3))])
        await run_steps(c, [("s.u", B(1, bid="u"), "1", STAGED)])
        await asyncio.sleep(1.6)
        await run_steps(c, [
            ("s.u", B(2, "1", bid="u"), "2", INCOMPLETE),
            ("s.i", B(2, "1", bid="i2"), "2", INCOMPLETE),
        ])
        got = sorted([adv_text((await adv.sub.next_msg(timeout=3)).data) for _ in range(2)])
        assert got == sorted([adv_expected("S", "i2", "timeout"), adv_expected("S", "u", "timeout")])
        await adv.expect([])
        info = json.loads(await c.api("STREAM.INFO.S"))
        assert (info["state"]["messages"], info["state"]["last_seq"]) == (9, 9), info["state"]


# =========================================================================================
# 6. Batches and the other publish features: one table
# =========================================================================================
#
# As the table of section 3 (a fresh server, stream S with allow_atomic plus ``cfg`` —
# whose ``subjects`` replaces ``s.>`` —, the exact reply to every step, the exact stored
# messages and the BATCH_ABANDONED advisories), for what a commit checks or applies per
# message: counters, per-message TTLs (and their delete-marker minimum), subject
# transforms, the required API level, the expected stream and per-subject limits.

RAL = "Nats-Required-Api-Level"
INCR = "Nats-Incr"
TTL = "Nats-TTL"
E_STREAM = "Nats-Expected-Stream"
E_SUBJ_SEQ_SUBJ = "Nats-Expected-Last-Subject-Sequence-Subject"

INCR_DISABLED = err(400, 10168, "message counters is disabled")
INCR_MISSING = err(400, 10169, "message counter increment is missing")
INCR_PAYLOAD = err(400, 10170, "message counter has payload")
INCR_INVALID = err(400, 10171, "message counter increment is invalid")
TTL_INVALID = err(400, 10165, "invalid per-message TTL")
TTL_DISABLED = err(400, 10166, "per-message TTL is disabled")
STREAM_MISMATCH = err(400, 10060, "expected stream does not match")
API_LEVEL = err(412, 10185, "JetStream minimum api level required")
SEALED = err(400, 10109, "invalid operation on sealed stream")
PER_SUBJECT = store_failed("maximum messages per subject exceeded")

COUNTER = {"allow_msg_counter": True}
# A per-message TTL under the delete-marker TTL (600s) is raised to it.
MARKER_TTL = {"allow_msg_ttl": True, "subject_delete_marker_ttl": 600_000_000_000}
TRANSFORM = {"subjects": ["in.>"], "subject_transform": {"src": "in.>", "dest": "out.>"}}
BIG = "99999999999999999999999999"


def val(n) -> str:
    """The stored body of a counter message."""
    return f'{{"val":"{n}"}}'


def counter_ack(seq: int, n) -> str:
    """The PubAck of a plain (not batched) counter publish."""
    return f'{{"stream":"S","seq":{seq},"val":"{n}"}}'


FEATURE_CASES = {
    # Counters: each increment is applied at the commit, on top of the subject's last
    # stored value or of the batch's own earlier message on that subject (a running
    # total); the body stored is the total, Nats-Incr is kept, and the commit's PubAck is
    # the batch one (no "val").
    "counter_running_total": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", [(INCR, "5")], "", counter_ack(1, 5)),
            ("s.a", B(1, None, (INCR, "2")), "", STAGED),
            ("s.b", B(2, None, (INCR, "10")), "", STAGED),
            ("s.a", B(3, None, (INCR, "-1")), "", STAGED),
            ("s.b", B(4, "1", (INCR, "+3")), "", ack(5, "b", 4)),
            ("s.a", [(INCR, "1")], "", counter_ack(6, 7)),
        ],
        stored=[
            (1, "s.a", [(INCR, "5")], val(5)),
            (2, "s.a", B(1, None, (INCR, "2")), val(7)),
            (3, "s.b", B(2, None, (INCR, "10")), val(10)),
            (4, "s.a", B(3, None, (INCR, "-1")), val(6)),
            (5, "s.b", B(4, "1", (INCR, "+3")), val(13)),
            (6, "s.a", [(INCR, "1")], val(7)),
        ]),
    "counter_big_values": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1, None, (INCR, BIG)), "", STAGED),
            ("s.a", B(2, None, (INCR, BIG)), "", STAGED),
            ("s.b", B(3, None, (INCR, "0")), "", STAGED),
            ("s.b", B(4, "1", (INCR, "-0")), "", ack(4, "b", 4)),
        ],
        stored=[
            (1, "s.a", B(1, None, (INCR, BIG)), val(BIG)),
            (2, "s.a", B(2, None, (INCR, BIG)), val("199999999999999999999999998")),
            (3, "s.b", B(3, None, (INCR, "0")), val(0)),
            (4, "s.b", B(4, "1", (INCR, "-0")), val(0)),
        ]),
    "counter_eob": dict(
        cfg=COUNTER,
        steps=[
            ("s.c", B(1, None, (INCR, "7")), "", STAGED),
            # The marker is not checked: no valid increment, a payload.
            ("s.c", B(2, "eob", (INCR, "zz")), "body", ack(1, "b", 1)),
        ],
        stored=[(1, "s.c", B(1, None, (INCR, "7"), (BCOMMIT, "1")), val(7))]),
    # Counter errors, whichever message has them, are the commit's reply; the batch is
    # dropped without an advisory.
    "counter_invalid_increment_staged": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1, None, (INCR, "abc")), "", STAGED),
            ("s.a", B(2, "1", (INCR, "1")), "", INCR_INVALID),
            ("s.a", B(3, "1", (INCR, "1")), "", INCOMPLETE),
        ],
        stored=[]),
    "counter_invalid_increment_values": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1, "1", (INCR, "1.5")), "", INCR_INVALID),
            ("s.a", B(1, None, (INCR, "1"), bid="c"), "", STAGED),
            ("s.a", B(2, "1", (INCR, ""), bid="c"), "", INCR_MISSING),
        ],
        stored=[]),
    "counter_payload": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1, None, (INCR, "1")), "x", STAGED),
            ("s.a", B(2, "1", (INCR, "1")), "", INCR_PAYLOAD),
        ],
        stored=[]),
    "counter_increment_missing": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1), "", STAGED),
            ("s.a", B(2, "1", (INCR, "1")), "", INCR_MISSING),
        ],
        stored=[]),
    "counter_incompatible_headers": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1, "1", (INCR, "1"), (E_SEQ, "0"), bid="c"), "", INCR_INVALID),
            ("s.a", B(1, "1", (INCR, "1"), (E_SUBJ_SEQ, "0"), bid="d"), "", INCR_INVALID),
            ("s.a", B(1, "1", (INCR, "1"), (E_STREAM, "S"), bid="e"), "", INCR_INVALID),
            ("s.a", B(1, "1", (INCR, "1"), (ROLLUP, "sub"), bid="f"), "", INCR_INVALID),
            # The batch's own unsupported-header check comes first.
            ("s.a", B(1, "1", (INCR, "1"), (E_MSGID, "x"), bid="g"), "", unsupported(E_MSGID)),
        ],
        stored=[]),
    # 90 header bytes fit max_msg_size (the check when the message arrives); with the
    # total's 11 body bytes the message does not (the check of the counter update).
    "counter_total_over_max_msg_size": dict(
        cfg={**COUNTER, "max_msg_size": 95},
        steps=[
            ("s.a", [(INCR, "1")], "", counter_ack(1, 1)),
            ("s.a", B(1, "1", (INCR, "1")), "", MSG_TOO_BIG),
            ("s.a", B(2, "1", (INCR, "1")), "", INCOMPLETE),
        ],
        stored=[(1, "s.a", [(INCR, "1")], val(1))]),
    "counter_increment_on_plain_stream": dict(
        steps=[
            ("s.a", B(1, None, (INCR, "1")), "", STAGED),
            ("s.a", B(2, "1", (E_STREAM, "nope")), "", INCR_DISABLED),
        ],
        stored=[]),
    # The order of the checks: a missing increment only after the expectations, TTL and
    # message id; an unparsable one is "invalid" before "disabled".
    "counter_missing_increment_expected_stream": dict(
        cfg=COUNTER,
        steps=[("s.a", B(1, "1", (E_STREAM, "nope")), "", STREAM_MISMATCH)],
        stored=[]),
    "counter_missing_increment_duplicate_msg_id": dict(
        cfg=COUNTER,
        steps=[
            ("s.a", B(1, None, (INCR, "1"), (MSGID, "m")), "", STAGED),
            ("s.a", B(2, "1", (MSGID, "m")), "", DUP_MSG_ID),
        ],
        stored=[]),
    "counter_missing_increment_ttl_disabled": dict(
        cfg=COUNTER,
        steps=[("s.a", B(1, "1", (TTL, "5s")), "", TTL_DISABLED)],
        stored=[]),
    "counter_invalid_increment_on_plain_stream": dict(
        steps=[("s.a", B(1, "1", (INCR, "x")), "", INCR_INVALID)],
        stored=[]),
    # Per-message TTLs: stored verbatim; checked at the commit.
    "ttl_stored": dict(
        cfg={"allow_msg_ttl": True},
        steps=[
            ("s.a", B(1, None, (TTL, "1h")), "1", STAGED),
            ("s.b", B(2, None, (TTL, "never")), "2", STAGED),
            ("s.c", B(3, "1", (TTL, "3600")), "3", ack(3, "b", 3)),
        ],
        stored=[
            (1, "s.a", B(1, None, (TTL, "1h")), "1"),
            (2, "s.b", B(2, None, (TTL, "never")), "2"),
            (3, "s.c", B(3, "1", (TTL, "3600")), "3"),
        ]),
    "ttl_invalid": dict(
        cfg={"allow_msg_ttl": True},
        steps=[
            ("s.a", B(1, None, (TTL, "bogus")), "1", STAGED),
            ("s.a", B(2, "1"), "2", TTL_INVALID),
            ("s.a", B(3, "1"), "3", INCOMPLETE),
            ("s.a", B(1, "1", (TTL, "0s"), bid="c"), "1", TTL_INVALID),
            ("s.a", B(1, "1", (TTL, "500ms"), bid="d"), "1", TTL_INVALID),
            ("s.a", B(1, "1", (TTL, "-1"), bid="e"), "1", TTL_INVALID),
        ],
        stored=[]),
    # Under subject_delete_marker_ttl the TTL is raised to it: the header is removed and
    # appended (whole seconds) after the others — after the Nats-Batch-Commit an ``eob``
    # commit added. Longer TTLs and "never" stay as they are.
    "ttl_raised_to_delete_marker_ttl": dict(
        cfg=MARKER_TTL,
        steps=[
            ("s.a", B(1, None, (TTL, "30s"), ("Foo", "x")), "1", STAGED),
            ("s.b", B(2, None, (TTL, "1200s")), "2", STAGED),
            ("s.c", B(3, None, (TTL, "never")), "3", STAGED),
            ("s.d", B(4, None, (TTL, "45")), "4", STAGED),
            ("s.x", B(5, "eob"), "", ack(4, "b", 4)),
            ("s.e", [(TTL, "30s")], "plain", ack(5)),
        ],
        stored=[
            (1, "s.a", B(1, None, ("Foo", "x"), (TTL, "600")), "1"),
            (2, "s.b", B(2, None, (TTL, "1200s")), "2"),
            (3, "s.c", B(3, None, (TTL, "never")), "3"),
            (4, "s.d", B(4, None, (BCOMMIT, "1"), (TTL, "600")), "4"),
            (5, "s.e", [(TTL, "600")], "plain"),
        ]),
    "ttl_not_raised_one_msg_per_subject": dict(
        cfg={**MARKER_TTL, "max_msgs_per_subject": 1},
        steps=[("s.a", B(1, "1", (TTL, "300s")), "1", ack(1, "b", 1))],
        stored=[(1, "s.a", B(1, "1", (TTL, "300s")), "1")]),
    # Subject transforms: stored under the mapped subject, and an expected last subject
    # sequence is that of the mapped subject (or of the subject named as is by
    # Nats-Expected-Last-Subject-Sequence-Subject).
    "transform": dict(
        cfg=TRANSFORM,
        steps=[
            ("in.a", None, "plain", ack(1)),
            ("in.a", B(1, None, (E_SUBJ_SEQ, "1")), "1", STAGED),
            ("in.b", B(2, None, (E_SUBJ_SEQ, "0")), "2", STAGED),
            ("in.c", B(3, "1"), "3", ack(4, "b", 3)),
            ("in.a", B(1, "1", (E_SUBJ_SEQ, "1"), bid="c"), "x", wrong_last(2)),
            ("in.a", B(1, "1", (E_SUBJ_SEQ, "2"), bid="d"), "x", ack(5, "d", 1)),
            ("in.z", B(1, "1", (E_SUBJ_SEQ, "2"), (E_SUBJ_SEQ_SUBJ, "out.a"), bid="e"), "y", wrong_last(5)),
            ("in.z", B(1, "1", (E_SUBJ_SEQ, "2"), (E_SUBJ_SEQ_SUBJ, "in.a"), bid="f"), "y", wrong_last(0)),
            ("in.z", B(1, "1", (E_SUBJ_SEQ, "5"), (E_SUBJ_SEQ_SUBJ, "out.a"), bid="g"), "y", ack(6, "g", 1)),
            # The mapped subject was written earlier in the batch.
            ("in.a", B(1, bid="h"), "w1", STAGED),
            ("in.a", B(2, "1", (E_SUBJ_SEQ, "5"), bid="h"), "w2", WRONG_LAST_CONST),
        ],
        stored=[
            (1, "out.a", None, "plain"),
            (2, "out.a", B(1, None, (E_SUBJ_SEQ, "1")), "1"),
            (3, "out.b", B(2, None, (E_SUBJ_SEQ, "0")), "2"),
            (4, "out.c", B(3, "1"), "3"),
            (5, "out.a", B(1, "1", (E_SUBJ_SEQ, "2"), bid="d"), "x"),
            (6, "out.z", B(1, "1", (E_SUBJ_SEQ, "5"), (E_SUBJ_SEQ_SUBJ, "out.a"), bid="g"), "y"),
        ]),
    # Nats-Required-Api-Level: checked as each message arrives (after the batch lookup and
    # the commit value); a level over the server's (5) refuses the message and abandons
    # the batch (advisory "unsupported"); a level it meets is removed — every occurrence,
    # only the first one read — from the stored message (a plain publish keeps it).
    "required_api_level_met_removed": dict(
        steps=[
            ("s.a", B(1, None, (RAL, "1"), ("Foo", "x")), "1", STAGED),
            ("s.b", B(2, None, ("Foo", "y"), (RAL, "0")), "2", STAGED),
            ("s.c", B(3, None, (RAL, "5")), "3", STAGED),
            ("s.c", B(4, None, (RAL, "05")), "4", STAGED),
            ("s.c", B(5, None, (RAL, "-1")), "5", STAGED),
            ("s.c", B(6, None, (RAL, "+1")), "6", STAGED),
            ("s.d", B(7, "1", (RAL, "1"), ("Foo", "z"), (RAL, "99")), "7", ack(7, "b", 7)),
            ("s.e", [(RAL, "1"), ("Foo", "p")], "plain", ack(8)),
        ],
        stored=[
            (1, "s.a", B(1, None, ("Foo", "x")), "1"),
            (2, "s.b", B(2, None, ("Foo", "y")), "2"),
            (3, "s.c", B(3), "3"),
            (4, "s.c", B(4), "4"),
            (5, "s.c", B(5), "5"),
            (6, "s.c", B(6), "6"),
            (7, "s.d", B(7, "1", ("Foo", "z")), "7"),
            (8, "s.e", [(RAL, "1"), ("Foo", "p")], "plain"),
        ]),
    "required_api_level_unmet_staged": dict(
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2, None, (RAL, "99")), "2", API_LEVEL),
            ("s.a", B(3, "1"), "3", INCOMPLETE),
            ("s.a", B(1, None, (RAL, "6"), bid="c"), "1", API_LEVEL),
            ("s.a", B(2, "1", bid="c"), "2", INCOMPLETE),
            ("s.a", B(1, "1", bid="c"), "1", ack(1, "c", 1)),
        ],
        stored=[(1, "s.a", B(1, "1", bid="c"), "1")],
        advisories=[("b", "unsupported"), ("c", "unsupported")]),
    "required_api_level_unmet_commit": dict(
        steps=[
            ("s.a", B(1, "1", (RAL, "99")), "1", API_LEVEL),
            ("s.a", B(1, bid="c"), "1", STAGED),
            ("s.a", B(2, "eob", (RAL, "99"), bid="c"), "", API_LEVEL),
            ("s.a", B(1, "1", (RAL, "abc"), bid="d"), "1", API_LEVEL),
            ("s.a", B(1, "1", (RAL, " 5 "), bid="e"), "1", API_LEVEL),
            ("s.a", B(1, None, (RAL, "99"), (RAL, "1"), bid="f"), "1", API_LEVEL),
        ],
        stored=[],
        advisories=[("b", "unsupported"), ("c", "unsupported"), ("d", "unsupported"),
                    ("e", "unsupported"), ("f", "unsupported")]),
    "required_api_level_after_batch_lookup": dict(
        steps=[
            ("s.a", B(2, "1", (RAL, "99")), "1", INCOMPLETE),
            ("s.a", B(1, "x", (RAL, "99")), "1", INVALID_COMMIT),
        ],
        stored=[]),
    # An empty value is no requirement and is not removed.
    "required_api_level_empty_kept": dict(
        steps=[("s.a", B(1, "1", (RAL, "")), "1", ack(1, "b", 1))],
        stored=[(1, "s.a", B(1, "1", (RAL, "")), "1")]),
    # Expected stream and per-subject limits.
    "expected_stream_matching": dict(
        steps=[
            ("s.a", B(1, None, (E_STREAM, "S")), "1", STAGED),
            ("s.a", B(2, "1", (E_STREAM, "S")), "2", ack(2, "b", 2)),
        ],
        stored=[(1, "s.a", B(1, None, (E_STREAM, "S")), "1"), (2, "s.a", B(2, "1", (E_STREAM, "S")), "2")]),
    # discard_new_per_subject: the batch's own messages on a subject count with the stored
    # ones; the error is the commit's reply wherever the excess message is.
    "discard_new_per_subject": dict(
        cfg={"discard": "new", "discard_new_per_subject": True, "max_msgs_per_subject": 2},
        steps=[
            ("s.a", None, "0", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
            ("s.a", B(3, "1"), "3", PER_SUBJECT),
            ("s.a", B(4, "1"), "4", INCOMPLETE),
            ("s.a", B(1, bid="c"), "1", STAGED),
            ("s.b", B(2, "1", bid="c"), "2", ack(3, "c", 2)),
            ("s.b", B(1, bid="d"), "1", STAGED),
            ("s.b", B(2, bid="d"), "2", STAGED),
            ("s.z", B(3, "1", bid="d"), "3", PER_SUBJECT),
        ],
        stored=[(1, "s.a", None, "0"), (2, "s.a", B(1, bid="c"), "1"), (3, "s.b", B(2, "1", bid="c"), "2")]),
    # A rollup message is not counted against the per-subject limit; a later message of
    # the batch on its subject is.
    "discard_new_per_subject_rollup": dict(
        cfg={"discard": "new", "discard_new_per_subject": True, "max_msgs_per_subject": 1,
             "allow_rollup_hdrs": True},
        steps=[
            ("s.a", None, "0", ack(1)),
            ("s.a", B(1, None, (ROLLUP, "sub")), "1", STAGED),
            ("s.b", B(2, "1"), "2", ack(3, "b", 2)),
            ("s.a", B(1, None, (ROLLUP, "sub"), bid="c"), "1", STAGED),
            ("s.a", B(2, "1", bid="c"), "2", PER_SUBJECT),
        ],
        stored=[(2, "s.a", B(1, None, (ROLLUP, "sub")), "1"), (3, "s.b", B(2, "1"), "2")]),
    "max_msgs_per_subject_discard_old": dict(
        cfg={"max_msgs_per_subject": 1},
        steps=[
            ("s.a", B(1), "1", STAGED),
            ("s.a", B(2), "2", STAGED),
            ("s.a", B(3, "1"), "3", ack(3, "b", 3)),
        ],
        stored=[(3, "s.a", B(3, "1"), "3")]),
}


@pytest.mark.parametrize("case", list(FEATURE_CASES))
@async_test()
async def test_feature_case(js_server, case):
    spec = FEATURE_CASES[case]
    cfg = {"subjects": ["s.>"], "allow_atomic": True, **spec.get("cfg", {})}
    async with client(js_server) as c, advisories(js_server, "S") as adv:
        await create(c, "S", **cfg)
        await run_steps(c, spec["steps"])
        await assert_stream(c, "S", spec["stored"])
        await adv.expect(spec.get("advisories", []))


# =========================================================================================
# 7. Batches and retention, republish, direct get, consumers, sealing
# =========================================================================================


async def assert_stream_state(c, stream: str, st: dict, msgs, gone=(), timeout: float = 3.0) -> None:
    """The stream's state is exactly ``st`` and it holds ``msgs`` (as in assert_stream,
    but not necessarily contiguous); the sequences in ``gone`` are not found."""
    want = go_json(st)
    deadline = time.monotonic() + timeout
    while True:
        got = state_of(await c.api(f"STREAM.INFO.{stream}"))
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert got == want, f"stream {stream} state\n  got      {got}\n  expected {want}"
    for seq, subject, headers, body in msgs:
        assert_json(await c.api(f"STREAM.MSG.GET.{stream}", {"seq": seq}), msg_get(subject, seq, headers, body))
    for seq in gone:
        assert_json(await c.api(f"STREAM.MSG.GET.{stream}", {"seq": seq}),
                    api_error("stream_msg_get_response", 404, 10037, "no message found"))


def msg_get(subject: str, seq: int, headers, body: str) -> str:
    """A STREAM.MSG.GET answer."""
    m = {"subject": subject, "seq": seq}
    if headers is not None:
        m["hdrs"] = b64(hdr_block(headers))
    if body:
        m["data"] = b64(body)
    m["time"] = TS
    return go_json({"type": API + "stream_msg_get_response", "message": m})


def with_consumers(st: dict, n: int) -> dict:
    st["consumer_count"] = n
    return st


@async_test()
async def test_interest_retention(js_server):
    """Interest retention: a batch message no consumer is interested in (none at all, or
    none whose filter matches) is acknowledged and uses up its sequence but is not kept,
    also when it is the one carrying the commit; its message ID is still recorded.
    Consumers get the kept ones; acked, they go."""
    async with cclient(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_atomic=True, retention="interest")
        await run_steps(c, [
            ("s.a", B(1, None, (MSGID, "m1")), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
            ("s.a", B(3, "1"), "3", ack(3, "b", 3)),
            ("s.a", [(MSGID, "m1")], "dup", '{"stream":"S","seq":1,"duplicate": true}'),
        ])
        await assert_stream_state(c, "S", state(0, 0, 4, 3), [], gone=[1, 2, 3])

        await make_consumer(c, "S", "C", filter_subject="s.b", ack_policy="explicit")
        await run_steps(c, [
            ("s.a", B(1, bid="c"), "4", STAGED),
            ("s.b", B(2, bid="c"), "5", STAGED),
            ("s.b", B(3, bid="c"), "6", STAGED),
            ("s.c", B(4, bid="c"), "7", STAGED),
            # The last stored message (s.c, with the commit header) is not kept.
            ("s.x", B(5, "eob", bid="c"), "", ack(7, "c", 4)),
        ])
        kept = [(5, "s.b", B(2, bid="c"), "5"), (6, "s.b", B(3, bid="c"), "6")]
        size = sum(fsize(s, b, h) for _, s, h, b in kept)
        await assert_stream_state(c, "S", with_consumers(state(2, size, 5, 7, num_subjects=1, num_deleted=1), 1),
                                  kept, gone=[4, 7])
        inbox, got = await c.pull("S", "C", {"batch": 5, "no_wait": True})
        assert lines(got, inbox) == [
            msg_line("s.b", "5", "S", "C", 1, 5, 1, 1, hdr=hdr_block(B(2, bid="c"))),
            msg_line("s.b", "6", "S", "C", 1, 6, 2, 0, hdr=hdr_block(B(3, bid="c"))),
            status_line("404 No Messages"),
        ]
        for m in got[:2]:
            await c.ack(m.reply)
        await assert_stream_state(c, "S", with_consumers(state(0, 0, 8, 7), 1), [], gone=[5, 6])
        assert_json(await c.info("S", "C"),
                    cinfo_json("S", "C", ccfg(durable="C", filter_subject="s.b"), delivered=(2, 6), ack_floor=(2, 6)))

        # A consumer on everything: the whole batch is kept.
        await make_consumer(c, "S", "D", filter_subject="s.>", ack_policy="explicit")
        await run_steps(c, [
            ("s.a", B(1, bid="d"), "8", STAGED),
            ("s.b", B(2, "1", bid="d"), "9", ack(9, "d", 2)),
        ])
        kept = [(8, "s.a", B(1, bid="d"), "8"), (9, "s.b", B(2, "1", bid="d"), "9")]
        size = sum(fsize(s, b, h) for _, s, h, b in kept)
        await assert_stream_state(c, "S", with_consumers(state(2, size, 8, 9, num_subjects=2), 2), kept)


def rp(subject: str, headers, orig: str, seq: int, last: int, body: str, *, stream: str = "S",
       size: int | None = None) -> str:
    """A republished message as ``rp_line`` renders it: the stored headers, then
    Nats-Stream, -Subject, -Sequence, -Time-Stamp, -Last-Sequence (the subject's previous
    sequence), and for headers_only Nats-Msg-Size with no payload."""
    h = list(headers or []) + [("Nats-Stream", stream), ("Nats-Subject", orig), ("Nats-Sequence", str(seq)),
                               ("Nats-Time-Stamp", "<TS>"), ("Nats-Last-Sequence", str(last))]
    if size is not None:
        h.append(("Nats-Msg-Size", str(size)))
        body = ""
    return f"{subject} {hdr_block(h)!r} {body!r}"


def rp_line(m) -> str:
    return f"{m.subject} {norm_hdr(m.hdr)!r} {m.data.decode()!r}"


@async_test()
async def test_republish(js_server):
    """``republish``: nothing before the commit; then one copy per batch message, in
    order, each with its stored headers and Nats-Last-Sequence the subject's previous
    sequence — for a later batch message on the same subject, the earlier one's; an
    ``eob`` batch's last copy carries its Nats-Batch-Commit; a failed commit republishes
    nothing; headers_only copies, counter totals and mapped subjects as for plain
    publishes."""
    async with cclient(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_atomic=True, republish={"src": "s.>", "dest": "rp.>"})
        await create(c, "H", subjects=["h.>"], allow_atomic=True,
                     republish={"src": "h.>", "dest": "rh.>", "headers_only": True}, **MARKER_TTL)
        await create(c, "K", subjects=["k.>"], allow_atomic=True, allow_msg_counter=True,
                     subject_transform={"src": "k.*", "dest": "kk.{{wildcard(1)}}"},
                     republish={"src": "kk.>", "dest": "rk.>"})
        await c.sub("rp.>")
        await c.sub("rh.>")
        await c.sub("rk.>")

        async def copies(n: int) -> list[str]:
            return [rp_line(m) for m in await c.collect(n=n, timeout=3, quiet=0.3)]

        await run_steps(c, [("s.a", None, "plain", ack(1))])
        assert await copies(1) == [rp("rp.a", None, "s.a", 1, 0, "plain")]
        await run_steps(c, [
            ("s.a", B(1, None, ("Foo", "x")), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
            ("s.a", B(3), "3", STAGED),
        ])
        await c.expect_nothing(0.3)
        await run_steps(c, [("s.a", B(4, "1"), "4", ack(5, "b", 4))])
        assert await copies(4) == [
            rp("rp.a", B(1, None, ("Foo", "x")), "s.a", 2, 1, "1"),
            rp("rp.b", B(2), "s.b", 3, 0, "2"),
            rp("rp.a", B(3), "s.a", 4, 2, "3"),
            rp("rp.a", B(4, "1"), "s.a", 5, 4, "4"),
        ]
        await run_steps(c, [
            ("s.c", B(1, bid="e"), "e1", STAGED),
            ("s.c", B(2, "eob", bid="e"), "e2", ack(6, "e", 1)),
        ])
        assert await copies(1) == [rp("rp.c", B(1, None, (BCOMMIT, "1"), bid="e"), "s.c", 6, 0, "e1")]
        await run_steps(c, [
            ("s.c", B(1, bid="f"), "f1", STAGED),
            ("s.c", B(2, "1", (E_SEQ, "1"), bid="f"), "f2", wrong_last(7)),
        ])
        await c.expect_nothing(0.3)

        await run_steps(c, [
            ("h.a", B(1, None, (TTL, "30s")), "hh1", STAGED),
            ("h.a", B(2, "1"), "hh22", ack(2, "b", 2, stream="H")),
        ])
        assert await copies(2) == [
            rp("rh.a", B(1, None, (TTL, "600")), "h.a", 1, 0, "", stream="H", size=3),
            rp("rh.a", B(2, "1"), "h.a", 2, 1, "", stream="H", size=4),
        ]

        await run_steps(c, [
            ("k.a", [(INCR, "3")], "", '{"stream":"K","seq":1,"val":"3"}'),
            ("k.a", B(1, None, (INCR, "2")), "", STAGED),
            ("k.a", B(2, "1", (INCR, "4")), "", ack(3, "b", 2, stream="K")),
        ])
        assert await copies(3) == [
            rp("rk.a", [(INCR, "3")], "kk.a", 1, 0, val(3), stream="K"),
            rp("rk.a", B(1, None, (INCR, "2")), "kk.a", 2, 1, val(5), stream="K"),
            rp("rk.a", B(2, "1", (INCR, "4")), "kk.a", 3, 2, val(9), stream="K"),
        ]


@async_test()
async def test_direct_get_during_staging(js_server):
    """Staged messages are not visible to DIRECT.GET (by subject, last_by_subj, seq,
    multi_last) nor STREAM.MSG.GET; after the commit they are, with their headers."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_atomic=True, allow_direct=True)
        not_found = ("NATS/1.0 404 Message Not Found\r\n\r\n", "")

        def direct(subject: str, seq: int, body: str, headers=(), extra=()) -> tuple[str, str]:
            h = list(headers) + [("Nats-Stream", "S"), ("Nats-Subject", subject), ("Nats-Sequence", str(seq)),
                                 ("Nats-Time-Stamp", "<TS>")] + list(extra)
            return hdr_block(h), body

        def eob(last: int) -> tuple[str, str]:
            return hdr_block([("Nats-Num-Pending", "0"), ("Nats-Last-Sequence", str(last)),
                              ("Nats-UpTo-Sequence", str(last))]).replace("NATS/1.0", "NATS/1.0 204 EOB", 1), ""

        async def get(suffix: str, body=None, n: int | None = 1) -> list[tuple[str, str]]:
            frames = await c.request(f"$JS.API.DIRECT.GET.{suffix}", body, n=n)
            return [(f.hdr_text(), f.data.decode()) for f in frames]

        await run_steps(c, [
            ("s.a", None, "old", ack(1)),
            ("s.a", B(1), "1", STAGED),
            ("s.b", B(2), "2", STAGED),
        ])
        assert await get("S.s.a") == [direct("s.a", 1, "old")]
        assert await get("S.s.b") == [not_found]
        assert await get("S", {"last_by_subj": "s.b"}) == [not_found]
        assert await get("S", {"seq": 2}) == [not_found]
        assert await get("S", {"multi_last": ["s.>"]}, n=None) == [
            direct("s.a", 1, "old", extra=[("Nats-Num-Pending", "0"), ("Nats-Last-Sequence", "0")]),
            eob(1),
        ]
        assert_json(await c.api("STREAM.MSG.GET.S", {"last_by_subj": "s.a"}), msg_get("s.a", 1, None, "old"))
        assert_json(await c.api("STREAM.MSG.GET.S", {"last_by_subj": "s.b"}),
                    api_error("stream_msg_get_response", 404, 10037, "no message found"))

        await run_steps(c, [("s.a", B(3, "1"), "3", ack(4, "b", 3))])
        assert await get("S.s.a") == [direct("s.a", 4, "3", B(3, "1"))]
        assert await get("S.s.b") == [direct("s.b", 3, "2", B(2))]
        assert await get("S", {"seq": 2}) == [direct("s.a", 2, "1", B(1))]
        assert await get("S", {"multi_last": ["s.>"]}, n=None) == [
            direct("s.b", 3, "2", B(2), extra=[("Nats-Num-Pending", "1"), ("Nats-Last-Sequence", "0")]),
            direct("s.a", 4, "3", B(3, "1"), extra=[("Nats-Num-Pending", "0"), ("Nats-Last-Sequence", "3")]),
            eob(4),
        ]
        assert_json(await c.api("STREAM.MSG.GET.S", {"last_by_subj": "s.a"}), msg_get("s.a", 4, B(3, "1"), "3"))
        assert_json(await c.api("STREAM.MSG.GET.S", {"last_by_subj": "s.b"}), msg_get("s.b", 3, B(2), "2"))


class _OtherInbox(CClient):
    """A second raw client whose request inbox does not overlap the first one's."""
    INBOX = "_P"


@async_test()
async def test_consumers_see_batch_without_replies(js_server):
    """A batch published without any reply subject (commit included), while a pull
    request waits and a push consumer is bound: nothing is delivered while staged, then
    every message of the batch, in order."""
    async with cclient(js_server) as c:
        p = await _OtherInbox.open(js_server.port)
        try:
            await create(c, "S", subjects=["s.>"], allow_atomic=True)
            await make_consumer(c, "S", "C", ack_policy="explicit")
            inbox = p._inbox()
            await p.send("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":3,"expires":5000000000}', reply=inbox)
            await p.sync()
            await run_steps(c, [("s.a", B(1), "1", None), ("s.b", B(2), "2", None)])
            await p.expect_nothing(0.3)
            assert_json(await c.info("S", "C"), cinfo_json("S", "C", ccfg(durable="C"), num_waiting=1))
            await run_steps(c, [("s.c", B(3, "1"), "3", None)])
            got = await p.collect(n=3, timeout=3, quiet=0.3)
            assert lines(got, inbox) == [
                msg_line("s.a", "1", "S", "C", 1, 1, 1, 2, hdr=hdr_block(B(1))),
                msg_line("s.b", "2", "S", "C", 1, 2, 2, 1, hdr=hdr_block(B(2))),
                msg_line("s.c", "3", "S", "C", 1, 3, 3, 0, hdr=hdr_block(B(3, "1"))),
            ]
            assert_json(await c.info("S", "C"), cinfo_json("S", "C", ccfg(durable="C"), delivered=(3, 3),
                                                           num_ack_pending=3))

            sid = await p.sub("dlv")
            await make_consumer(c, "S", "P", ack_policy="none", deliver_subject="dlv", deliver_policy="new")
            await run_steps(c, [("s.a", B(1, bid="e"), "4", None), ("s.b", B(2, bid="e"), "5", None)])
            await p.expect_nothing(0.3)
            await run_steps(c, [("s.x", B(3, "eob", bid="e"), "x", None)])
            got = await p.collect(n=2, timeout=3, quiet=0.3)
            assert lines(got) == [
                msg_line("s.a", "4", "S", "P", 1, 4, 1, 1, sid=sid, hdr=hdr_block(B(1, bid="e"))),
                msg_line("s.b", "5", "S", "P", 1, 5, 2, 0, sid=sid, hdr=hdr_block(B(2, None, (BCOMMIT, "1"), bid="e"))),
            ]
            stored = [
                (1, "s.a", B(1), "1"), (2, "s.b", B(2), "2"), (3, "s.c", B(3, "1"), "3"),
                (4, "s.a", B(1, bid="e"), "4"), (5, "s.b", B(2, None, (BCOMMIT, "1"), bid="e"), "5"),
            ]
            size = sum(fsize(s, b, h) for _, s, h, b in stored)
            await assert_stream_state(c, "S", with_consumers(state(5, size, 1, 5, num_subjects=3), 2), stored)
        finally:
            p.close()


SEALED_CONF = 'jetstream { limits { batch { timeout: "2s" } } }'


@async_test()
async def test_sealed_stream(start_js_server):
    """A sealed stream refuses every batch message with "invalid operation on sealed
    stream" before any batch check (invalid ID, missing sequence, bad commit, unknown
    batch); sealing does not drop an open batch, and the refusals do not touch it: it
    times out (advisory "timeout") counted from its last staged message."""
    s = start_js_server(config=SEALED_CONF)
    async with client(s) as c, advisories(s, "S") as adv:
        await create(c, "S", subjects=["s.>"], allow_atomic=True)
        await run_steps(c, [
            ("s.a", B(1, "1"), "1", ack(1, "b", 1)),
            ("s.a", B(1, bid="x"), "1", STAGED),
        ])
        t0 = time.monotonic()
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_atomic": True, "sealed": True})
        assert_json(without_state(got), create_resp(
            atomic_cfg("S", ["s.>"], discard="new", sealed=True, deny_delete=True, deny_purge=True), update=True))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
        await run_steps(c, [
            ("s.a", B(2, "1", bid="x"), "2", SEALED),
            ("s.a", B(2, bid="x"), "2", SEALED),
            ("s.a", B(1, bid="y"), "1", SEALED),
            ("s.a", B(1, "1", bid="y"), "1", SEALED),
            ("s.a", B(5, "1", bid="y"), "1", SEALED),
            ("s.a", [(BID, "y")], "1", SEALED),
            ("s.a", B(1, "bad", bid="y"), "1", SEALED),
            ("s.a", B(1, "1", bid=X65), "1", SEALED),
            ("s.a", None, "plain", SEALED),
        ])
        m = await adv.sub.next_msg(timeout=5)
        elapsed = time.monotonic() - t0
        assert adv_text(m.data) == adv_expected("S", "x", "timeout")
        # About 2s; had the refusals (at 1s) restarted its timer, 3s or more.
        assert elapsed < 2.7, elapsed
        await adv.expect([])
        await assert_stream(c, "S", [(1, "s.a", B(1, "1"), "1")])


# =========================================================================================
# 8. Fast batch publish (reply subjects ending ".$FI") on streams without it
# =========================================================================================


async def fast_batch_pub(c, subject: str, reply: str, body: str = "x") -> str:
    """Publish with a fast-batch reply subject (under the client's inbox) and return the
    one answer's payload."""
    await c.c.send(c._pub(subject, body, None, reply))
    deadline = time.monotonic() + 5
    while True:
        f = await c._frame(deadline)
        if f is not None:
            assert f.subject == reply, f
            return f.data.decode()


@async_test()
async def test_fast_batch_reply_without_allow_batched(js_server):
    """A publish whose reply subject ends ``.$FI`` is a fast-batch message, even when the
    rest of the reply does not parse: a stream without ``allow_batched`` answers "batch
    publish is disabled" (after its sealed and size checks) and stores nothing."""
    inbox = JsClient.INBOX
    disabled = err(400, 10205, "batch publish is disabled")
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], max_msg_size=64)
        for reply in (f"{inbox}.uuid1.10.fail.1.0.$FI", f"{inbox}.$FI", f"{inbox}.a.b.$FI"):
            assert await fast_batch_pub(c, "s.a", reply) == disabled, reply
        assert await fast_batch_pub(c, "s.a", f"{inbox}.u.10.fail.1.0.$FI", "y" * 65) == MSG_TOO_BIG
        # A reply that only contains "$FI" is an ordinary publish.
        assert await fast_batch_pub(c, "s.a", f"{inbox}.$FI.x") == ack(1)
        await assert_stream(c, "S", [(1, "s.a", None, "x")])
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "max_msg_size": 64,
                                              "sealed": True})
        assert "error" not in json.loads(got), got
        assert await fast_batch_pub(c, "s.a", f"{inbox}.u.10.fail.1.0.$FI") == err(
            400, 10109, "invalid operation on sealed stream")
