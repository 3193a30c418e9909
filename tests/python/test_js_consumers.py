"""JetStream consumers, differential: every test runs against
natrium-server and nats-server 2.15.1 (the ``impl`` parameter), each with JetStream on a
fresh temporary store, sends the same requests over a raw connection and compares the
answers with nats-server's, recorded here as expectations.

Comparison (consumer_util): API answers are normalised JSON text compared byte for byte
(timestamps, ``_nats.ver``, ``last_active`` and ``pause_remaining`` masked; ephemeral
names replaced by ``EPHEMERAL``). Delivered messages and status messages are compared as
lines ``<sid> <subject> <ack reply> <header block> <payload>`` where only the timestamp
token of the ``$JS.ACK`` reply, the random suffix of a ``$JS.FC`` subject and the
request's own inbox (``<INBOX>``) are masked.

Sections: 1 create (subject forms, actions, bad configs, account limits); 2 info, names,
list, delete, pause, leader stepdown; 3 pull requests (raw MSG.NEXT); 4 acks; 5 push
consumers; 6 nats-py client flows (fetch, push, ordered consumers, restarts).

Confirmed natrium differences are ``natrium_xfail`` (strict xfail of the natrium half
only, of one parametrized ``case`` where given); the nats-server half keeps checking the
expectation, and a fix shows up as XPASS."""

from __future__ import annotations

import asyncio
import json
import re
import time

import nats
import pytest

from conftest import IMPLS, ServerProc, natrium_bin, nats_server_bin
from consumer_util import (
    cclient,
    ccfg,
    cerr,
    cinfo_json,
    create_body,
    lines,
    make_consumer,
    msg_line,
    status_line,
)
from jsutil import API, OMIT, assert_json, compact, create, go_json, store
from natsutil import async_test, connect

J = compact  # request bodies as compact JSON bytes
SEC = 1_000_000_000
MS = 1_000_000


# The table-driven tests (create forms/configs/errors, pull requests, info/pause/stepdown
# errors) share one server per implementation, and each case runs in an account of its
# own (the server's config defines SHARED_ACCOUNTS JetStream accounts): a server per case
# would cost more than all the cases together, and deleting and re-creating the same
# stream between cases is racy on nats-server (a re-created stream's consumer briefly saw
# the deleted stream's state). Everything else gets a fresh server (js_server).

SHARED_ACCOUNTS = 170  # 156 used; raise when adding shared cases
SHARED_CONF = "accounts {\n" + "".join(
    f"  A{i} {{ jetstream: enabled, users [ {{ user: u{i}, password: p }} ] }}\n"
    for i in range(SHARED_ACCOUNTS)) + "}\n"


@pytest.fixture(scope="module", params=IMPLS)
def impl(request) -> str:
    """Module-scoped override of conftest's ``impl``, so ``shared_js`` can be shared;
    natrium_xfail still sees the ``impl`` parameter."""
    return request.param


@pytest.fixture(scope="module")
def shared_js(impl, tmp_path_factory):
    binary = natrium_bin() if impl == "natrium" else nats_server_bin()
    if binary is None:
        if impl == "natrium":
            pytest.fail("natrium-server binary not found (set NATRIUM_SERVER_BIN)")
        pytest.skip("reference nats-server not found (set NATS_SERVER_BIN); differential half skipped")
    wd = tmp_path_factory.mktemp(f"shared-{impl}")
    store_dir = wd / "store"
    store_dir.mkdir()
    (wd / "server.conf").write_text(SHARED_CONF)
    s = ServerProc(impl, binary, wd, ["-c", str(wd / "server.conf"), "-js", "-sd", str(store_dir)])
    s.start()
    s.accounts_used = 0
    yield s
    s.stop()


class fresh_client(cclient):
    """``async with fresh_client(shared_js) as c:`` — a client on the shared server, in an
    account nothing else has used."""

    def __init__(self, server):
        assert server.accounts_used < SHARED_ACCOUNTS, "raise SHARED_ACCOUNTS"
        super().__init__(server, user=f"u{server.accounts_used}", **{"pass": "p"})
        server.accounts_used += 1


async def orders(c, n: int = 3, *, headers_msg: bool = False) -> None:
    """Stream ORDERS on ``orders.>`` with ``orders.<i>``/``m<i>`` for i < n, and with
    ``headers_msg`` one more, ``orders.h``/``withhdr`` carrying headers A and B."""
    await create(c, "ORDERS", subjects=["orders.>"])
    for i in range(n):
        await store(c, f"orders.{i}", f"m{i}")
    if headers_msg:
        await store(c, "orders.h", "withhdr", headers=[("A", "1"), ("B", "two")])


_EPH_NAME = re.compile(r'"stream_name":"[^"]*","name":"([0-9A-Za-z]{8})"')


def mask_ephemeral(text: str) -> str:
    """Replace a server-generated 8-character consumer name by ``EPHEMERAL``."""
    m = _EPH_NAME.search(text)
    assert m, f"no generated name in {text}"
    return text.replace(f'"{m[1]}"', '"EPHEMERAL"')


_STATE = re.compile(r'"delivered":\{.*"num_pending":\d+')


def mask_state(text: str) -> str:
    """The delivery state (delivered … num_pending) as ``"<STATE>"``: the create answer of a
    push consumer that already has interest races with its first deliveries (nats-server
    shows the state before them; natrium sometimes after)."""
    out, n = _STATE.subn('"<STATE>"', text)
    assert n == 1, text
    return out


def summary(info_text: str) -> tuple:
    """(delivered cseq, sseq, ack floor cseq, sseq, ack pending, redelivered, waiting,
    pending) of a consumer info."""
    d = json.loads(info_text.replace("<N>", "0"))
    assert "error" not in d, info_text
    return (d["delivered"]["consumer_seq"], d["delivered"]["stream_seq"],
            d["ack_floor"]["consumer_seq"], d["ack_floor"]["stream_seq"],
            d["num_ack_pending"], d["num_redelivered"], d["num_waiting"], d["num_pending"])


def cresp(name: str, cfg: dict, stream: str = "ORDERS", **kw) -> str:
    return cinfo_json(stream, name, cfg, kind="consumer_create_response", **kw)


def create_err(code: int, err_code: int, description: str) -> str:
    return cerr("consumer_create_response", code, err_code, description)


def names_resp(names: list[str], total: int | None = None, offset: int = 0) -> str:
    return go_json({"type": API + "consumer_names_response",
                    "total": len(names) if total is None else total, "offset": offset,
                    "limit": 1024, "consumers": names})


# =========================================================================================
# 1. Consumer create
# =========================================================================================

# (subject suffix, request body, expected config, num_pending); ORDERS holds 3 messages.
CREATE_FORMS = {
    "named_durable": (
        "CONSUMER.CREATE.ORDERS.PULL1",
        create_body("ORDERS", durable_name="PULL1", ack_policy="explicit"),
        "PULL1", ccfg(durable="PULL1"), 3),
    "named_ephemeral": (
        "CONSUMER.CREATE.ORDERS.EPH1", create_body("ORDERS", name="EPH1", ack_policy="explicit"),
        "EPH1", ccfg(name="EPH1"), 3),
    "name_only_in_subject": (
        "CONSUMER.CREATE.ORDERS.C1", create_body("ORDERS", ack_policy="explicit"),
        "C1", ccfg(name="C1"), 3),
    "body_name_differs_from_subject": (
        "CONSUMER.CREATE.ORDERS.C1", create_body("ORDERS", name="C2", ack_policy="explicit"),
        "C1", ccfg(name="C1"), 3),
    "filtered": (
        "CONSUMER.CREATE.ORDERS.FILT.orders.1",
        create_body("ORDERS", name="FILT", filter_subject="orders.1", ack_policy="explicit"),
        "FILT", ccfg(name="FILT", filter_subject="orders.1"), 1),
    "filtered_wildcard": (
        "CONSUMER.CREATE.ORDERS.FW.orders.*",
        create_body("ORDERS", durable_name="FW", filter_subject="orders.*", ack_policy="explicit"),
        "FW", ccfg(durable="FW", filter_subject="orders.*"), 3),
    "legacy_ephemeral": (
        "CONSUMER.CREATE.ORDERS", create_body("ORDERS", ack_policy="explicit"),
        "EPHEMERAL", ccfg(), 3),
    "legacy_ephemeral_push": (
        "CONSUMER.CREATE.ORDERS", create_body("ORDERS", deliver_subject="push.x"),
        "EPHEMERAL", ccfg(push=True, ack="none", deliver_subject="push.x"), 3),
    "legacy_named": (
        "CONSUMER.CREATE.ORDERS", create_body("ORDERS", name="NM", ack_policy="explicit"),
        "NM", ccfg(name="NM"), 3),
    "legacy_durable_subject": (
        "CONSUMER.DURABLE.CREATE.ORDERS.DUR2",
        create_body("ORDERS", durable_name="DUR2", ack_policy="explicit"),
        "DUR2", ccfg(durable="DUR2"), 3),
    "push": (
        "CONSUMER.CREATE.ORDERS.PUSH1",
        create_body("ORDERS", name="PUSH1", deliver_subject="push.out", ack_policy="explicit",
                    idle_heartbeat=SEC, flow_control=True),
        "PUSH1", ccfg(name="PUSH1", push=True, deliver_subject="push.out", idle_heartbeat=SEC,
                      flow_control=True), 3),
}


@pytest.mark.parametrize("case", list(CREATE_FORMS))
@async_test()
async def test_create_forms(shared_js, case):
    """Every create subject form; the answer, then INFO of the same consumer."""
    subject, req, name, cfg, pending = CREATE_FORMS[case]
    async with fresh_client(shared_js) as c:
        await orders(c)
        got = await c.capi(subject, req)
        if name == "EPHEMERAL":
            got = mask_ephemeral(got)
        assert_json(got, cresp(name, cfg, num_pending=pending))
        real = json.loads(got.replace("<N>", "0"))["name"]
        if name == "EPHEMERAL":
            real = json.loads((await c.capi("CONSUMER.NAMES.ORDERS")))["consumers"][0]
        info = await c.info("ORDERS", real)
        if name == "EPHEMERAL":
            info = mask_ephemeral(info)
        assert_json(info, cinfo_json("ORDERS", name, cfg, num_pending=pending))


FULL_PULL = dict(
    description="d", deliver_policy="by_start_sequence", opt_start_seq=2, ack_policy="explicit",
    ack_wait=5 * SEC, max_deliver=5, backoff=[SEC, 2 * SEC], filter_subjects=["orders.1", "orders.2"],
    replay_policy="original", sample_freq="50%", max_waiting=10, max_ack_pending=20, max_batch=5,
    max_expires=10 * SEC, max_bytes=1000, inactive_threshold=60 * SEC, mem_storage=True,
    metadata={"x": "y"},
)
FULL_PUSH = dict(
    deliver_subject="push.f2", deliver_group="g", headers_only=True, flow_control=True,
    idle_heartbeat=SEC, rate_limit_bps=100000, filter_subject="orders.1",
)

# (config in the request, expected config, expected extra info fields); the consumer is
# created as CONSUMER.CREATE.ORDERS.C with durable_name C; ORDERS holds 3 messages.
CREATE_OK = {
    "ack_none": ({}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    "ack_all": ({"ack_policy": "all"}, ccfg(durable="C", ack="all"), dict(num_pending=3)),
    "full_pull": (
        FULL_PULL,
        ccfg(durable="C", description="d", deliver_policy="by_start_sequence", opt_start_seq=2,
             ack_wait=SEC, max_deliver=5, backoff=[SEC, 2 * SEC],
             filter_subjects=["orders.1", "orders.2"], replay_policy="original", sample_freq="50%",
             max_waiting=10, max_ack_pending=20, max_batch=5, max_expires=10 * SEC, max_bytes=1000,
             inactive_threshold=60 * SEC, mem_storage=True, metadata={"x": "y"}),
        dict(delivered=(0, 1), ack_floor=(0, 1), num_pending=2)),
    "full_push": (
        FULL_PUSH,
        ccfg(durable="C", push=True, ack="none", filter_subject="orders.1", rate_limit_bps=100000,
             flow_control=True, headers_only=True, deliver_subject="push.f2", deliver_group="g",
             idle_heartbeat=SEC),
        dict(num_pending=1)),
    "deliver_last": ({"deliver_policy": "last", "ack_policy": "explicit"},
                     ccfg(durable="C", deliver_policy="last"),
                     dict(delivered=(0, 2), ack_floor=(0, 2), num_pending=1)),
    "deliver_new": ({"deliver_policy": "new", "ack_policy": "explicit"},
                    ccfg(durable="C", deliver_policy="new"),
                    dict(delivered=(0, 3), ack_floor=(0, 3), num_pending=0)),
    "deliver_last_per_subject": (
        {"deliver_policy": "last_per_subject", "filter_subject": "orders.*", "ack_policy": "explicit"},
        ccfg(durable="C", deliver_policy="last_per_subject", filter_subject="orders.*"),
        dict(num_pending=3)),
    "deliver_by_start_seq_past_end": (
        {"deliver_policy": "by_start_sequence", "opt_start_seq": 10, "ack_policy": "explicit"},
        ccfg(durable="C", deliver_policy="by_start_sequence", opt_start_seq=10),
        dict(delivered=(0, 9), ack_floor=(0, 9), num_pending=0)),
    "deliver_by_start_time_old": (
        {"deliver_policy": "by_start_time", "opt_start_time": "2001-01-01T00:00:00Z", "ack_policy": "explicit"},
        ccfg(durable="C", deliver_policy="by_start_time", opt_start_time="<TS>"),
        dict(num_pending=3)),
    "replay_original": ({"replay_policy": "original"}, ccfg(durable="C", ack="none", replay_policy="original"),
                        dict(num_pending=3)),
    "pedantic_ok": ({"ack_policy": "explicit"}, ccfg(durable="C"), dict(num_pending=3)),
    "deliver_group_without_subject": ({"deliver_group": "g"}, ccfg(durable="C", ack="none", deliver_group="g"),
                                      dict(num_pending=3)),
    "pull_headers_only": ({"headers_only": True}, ccfg(durable="C", ack="none", headers_only=True),
                          dict(num_pending=3)),
    "backoff_with_ack_none": ({"backoff": [SEC]}, ccfg(durable="C", ack="none", ack_wait=SEC, backoff=[SEC]),
                              dict(num_pending=3)),
    "max_ack_pending_with_ack_none": ({"max_ack_pending": 5}, ccfg(durable="C", ack="none", max_ack_pending=5),
                                      dict(num_pending=3)),
    "max_deliver_zero": ({"max_deliver": 0}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    "max_deliver_minus_two": ({"max_deliver": -2}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    # Negative limits are dropped (max_waiting back to its default).
    "max_waiting_negative": ({"max_waiting": -1}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    "max_batch_negative": ({"max_batch": -1}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    "max_bytes_negative": ({"max_bytes": -1}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    "inactive_threshold_negative": ({"inactive_threshold": -1}, ccfg(durable="C", ack="none"), dict(num_pending=3)),
    # Pull-only request limits are accepted (and reported) on a push consumer.
    "push_with_max_batch": ({"deliver_subject": "p.x", "max_batch": 5},
                            ccfg(durable="C", push=True, ack="none", max_batch=5, deliver_subject="p.x"),
                            dict(num_pending=3)),
    "push_with_max_expires": ({"deliver_subject": "p.x", "max_expires": 5 * SEC},
                              ccfg(durable="C", push=True, ack="none", max_expires=5 * SEC, deliver_subject="p.x"),
                              dict(num_pending=3)),
    "filter_outside_stream": ({"filter_subject": "other.x"}, ccfg(durable="C", ack="none", filter_subject="other.x"),
                              dict(num_pending=0)),
    "metadata_user_nats_key": ({"metadata": {"_nats.x": "y"}}, ccfg(durable="C", ack="none", metadata={"_nats.x": "y"}),
                               dict(num_pending=3)),
    "pause_until_on_create": (
        {"pause_until": "2099-01-01T00:00:00Z"},
        ccfg(durable="C", ack="none", req_level="1", pause_until="<TS>"),
        dict(num_pending=3, paused=True)),
    "mem_storage": ({"mem_storage": True}, ccfg(durable="C", ack="none", mem_storage=True), dict(num_pending=3)),
    "priority_overflow": (
        {"ack_policy": "explicit", "priority_groups": ["g1"], "priority_policy": "overflow"},
        ccfg(durable="C", req_level="1", priority_groups=["g1"], priority_policy="overflow"),
        dict(num_pending=3, extra={"priority_groups": [{"group": "g1", "pinned_ts": "0001-01-01T00:00:00Z"}]})),
}


@pytest.mark.parametrize("case", list(CREATE_OK))
@async_test()
async def test_create_ok(shared_js, case):
    cfg_in, cfg_out, extra = CREATE_OK[case]
    body = create_body("ORDERS", durable_name="C", **cfg_in)
    if case == "pedantic_ok":
        body["pedantic"] = True
    async with fresh_client(shared_js) as c:
        await orders(c)
        got = await c.capi("CONSUMER.CREATE.ORDERS.C", body)
        assert_json(got, cresp("C", cfg_out, **extra))


NAME_RULE = "consumer name can not contain '.', '*', '>', '\\', '/'"

# (subject suffix, body, expected); ORDERS (3 messages) with durable PULL1 (explicit),
# WQ (workqueue, wq.>) with W1 (unfiltered), LIM (max_consumers 1) with L1 exist.
CREATE_ERRORS = {
    "action_create_exists_different": (
        "CONSUMER.CREATE.ORDERS.PULL1", create_body("ORDERS", "create", durable_name="PULL1", ack_policy="none"),
        create_err(400, 10148, "consumer already exists")),
    "action_update_missing": (
        "CONSUMER.CREATE.ORDERS.NEWONE", create_body("ORDERS", "update", durable_name="NEWONE"),
        create_err(400, 10149, "consumer does not exist")),
    "action_bogus": (
        "CONSUMER.CREATE.ORDERS.X", create_body("ORDERS", "bogus", durable_name="X"),
        create_err(400, 10025, 'invalid JSON: unknown consumer action: "bogus"')),
    "update_deliver_policy": (
        "CONSUMER.CREATE.ORDERS.PULL1",
        create_body("ORDERS", "update", durable_name="PULL1", ack_policy="explicit", deliver_policy="new"),
        create_err(500, 10012, "deliver policy can not be updated")),
    "update_ack_policy": (
        "CONSUMER.CREATE.ORDERS.PULL1", create_body("ORDERS", durable_name="PULL1", ack_policy="all"),
        create_err(500, 10012, "ack policy can not be updated")),
    "update_pull_to_push": (
        "CONSUMER.CREATE.ORDERS.PULL1",
        create_body("ORDERS", durable_name="PULL1", ack_policy="explicit", deliver_subject="x.y"),
        create_err(500, 10012, "can not update pull consumer to push based")),
    "update_max_waiting": (
        "CONSUMER.CREATE.ORDERS.PULL1",
        create_body("ORDERS", durable_name="PULL1", ack_policy="explicit", max_waiting=5),
        create_err(500, 10012, "max waiting can not be updated")),
    "update_replay_policy": (
        "CONSUMER.CREATE.ORDERS.PULL1",
        create_body("ORDERS", durable_name="PULL1", ack_policy="explicit", replay_policy="original"),
        create_err(500, 10012, "replay policy can not be updated")),
    "update_start_seq": (
        "CONSUMER.CREATE.ORDERS.PULL1",
        create_body("ORDERS", durable_name="PULL1", ack_policy="explicit", deliver_policy="by_start_sequence",
                    opt_start_seq=1),
        create_err(500, 10012, "deliver policy can not be updated")),
    "stream_missing": ("CONSUMER.CREATE.NOPE.C1", create_body("NOPE", durable_name="C1"),
                       create_err(404, 10059, "stream not found")),
    "stream_name_mismatch": ("CONSUMER.CREATE.ORDERS.C1", create_body("OTHER", durable_name="C1"),
                             create_err(400, 10056, "stream name in subject does not match request")),
    "durable_name_mismatch": (
        "CONSUMER.CREATE.ORDERS.C1", create_body("ORDERS", durable_name="C2"),
        create_err(400, 10017, "consumer name in subject does not match durable name in request")),
    "name_and_durable_differ": (
        "CONSUMER.CREATE.ORDERS.C1", create_body("ORDERS", name="C1", durable_name="C2"),
        create_err(400, 10017, "consumer name in subject does not match durable name in request")),
    "filter_mismatch": (
        "CONSUMER.CREATE.ORDERS.F.orders.1", create_body("ORDERS", name="F", filter_subject="orders.2"),
        create_err(400, 10131, "Consumer create request did not match filtered subject from create subject")),
    "filter_missing_in_body": (
        "CONSUMER.CREATE.ORDERS.F.orders.1", create_body("ORDERS", name="F"),
        create_err(400, 10131, "Consumer create request did not match filtered subject from create subject")),
    "filter_subjects_with_filter_form": (
        "CONSUMER.CREATE.ORDERS.F.orders.1", create_body("ORDERS", name="F", filter_subjects=["orders.1"]),
        create_err(400, 10137, "consumer with multiple subject filters cannot use subject based API")),
    "legacy_with_durable": (
        "CONSUMER.CREATE.ORDERS", create_body("ORDERS", durable_name="D"),
        create_err(400, 10020, "consumer expected to be ephemeral but a durable name was set in request")),
    "durable_form_without_durable": (
        "CONSUMER.DURABLE.CREATE.ORDERS.D1", create_body("ORDERS", ack_policy="explicit"),
        create_err(400, 10018, "consumer expected to be durable but a durable name was not set")),
    "durable_form_name_only": (
        "CONSUMER.DURABLE.CREATE.ORDERS.D1", create_body("ORDERS", name="D1"),
        create_err(400, 10018, "consumer expected to be durable but a durable name was not set")),
    "durable_form_mismatch": (
        "CONSUMER.DURABLE.CREATE.ORDERS.D1", create_body("ORDERS", durable_name="D2"),
        create_err(400, 10017, "consumer name in subject does not match durable name in request")),
    "by_start_seq_without_seq": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_policy="by_start_sequence"),
        create_err(400, 10094, "consumer delivery policy is deliver by start sequence, but optional start "
                   "sequence is not set")),
    "start_seq_with_deliver_all": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", opt_start_seq=2),
        create_err(400, 10094, "consumer delivery policy is deliver all, but optional start sequence is also set")),
    "by_start_time_without_time": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_policy="by_start_time"),
        create_err(400, 10094, "consumer delivery policy is deliver by start time, but optional start time "
                   "is not set")),
    "start_time_with_deliver_all": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", opt_start_time="2020-01-01T00:00:00Z"),
        create_err(400, 10094, "consumer delivery policy is deliver all, but optional start time is also set")),
    "start_seq_and_time": (
        "CONSUMER.CREATE.ORDERS.C3",
        create_body("ORDERS", durable_name="C3", deliver_policy="by_start_sequence", opt_start_seq=1,
                    opt_start_time="2020-01-01T00:00:00Z"),
        create_err(400, 10094, "consumer delivery policy is deliver by start sequence, but optional start "
                   "time is also set")),
    "last_per_subject_without_filter": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_policy="last_per_subject"),
        create_err(400, 10094, "consumer delivery policy is deliver last per subject, but optional filter "
                   "subject is not set")),
    "bad_deliver_policy": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_policy="bogus"),
        create_err(400, 10025, 'invalid JSON: can not unmarshal "\\"bogus\\""')),
    "bad_ack_policy": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", ack_policy="bogus"),
        create_err(400, 10025, 'invalid JSON: can not unmarshal "\\"bogus\\""')),
    "pull_with_heartbeat": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", idle_heartbeat=SEC),
        create_err(400, 10088, "consumer idle heartbeat requires a push based consumer")),
    "pull_with_flow_control": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", flow_control=True),
        create_err(400, 10089, "consumer flow control requires a push based consumer")),
    "push_flow_control_without_heartbeat": (
        "CONSUMER.CREATE.ORDERS.C3",
        create_body("ORDERS", durable_name="C3", deliver_subject="p.x", flow_control=True),
        create_err(400, 10108, "consumer with flow control also needs heartbeats")),
    "push_with_max_waiting": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_subject="p.x", max_waiting=5),
        create_err(400, 10080, "consumer in push mode can not set max waiting")),
    "pull_with_rate_limit": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", rate_limit_bps=1000),
        create_err(400, 10086, "consumer in pull mode can not have rate limit set")),
    "backoff_longer_than_max_deliver": (
        "CONSUMER.CREATE.ORDERS.C3",
        create_body("ORDERS", durable_name="C3", ack_policy="explicit", max_deliver=2, backoff=[SEC, 2 * SEC, 3 * SEC]),
        create_err(400, 10116, "max deliver is required to be > length of backoff values")),
    "ack_wait_negative": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", ack_policy="explicit", ack_wait=-1),
        create_err(400, 10183, "consumer ack wait needs to be positive")),
    "max_expires_under_1ms": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", max_expires=1000),
        create_err(400, 10115, "consumer max request expires needs to be >= 1ms")),
    "filter_invalid": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", filter_subject="orders..x"),
        create_err(500, 10052, "invalid subject")),
    "filters_overlap": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", filter_subjects=["orders.*", "orders.1"]),
        create_err(400, 10138, "consumer subject filters cannot overlap")),
    "filter_and_filters": (
        "CONSUMER.CREATE.ORDERS.C3",
        create_body("ORDERS", durable_name="C3", filter_subject="orders.1", filter_subjects=["orders.2"]),
        create_err(400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified")),
    "filters_empty_item": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", filter_subjects=[""]),
        create_err(400, 10139, "consumer filter in FilterSubjects cannot be empty")),
    "deliver_subject_cycle": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_subject="orders.x"),
        create_err(400, 10081, "consumer deliver subject forms a cycle")),
    "deliver_subject_wildcard": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", deliver_subject="p.*"),
        create_err(400, 10079, "consumer deliver subject has wildcards")),
    "replicas_3": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", num_replicas=3),
        create_err(500, 10074, "replicas > 1 not supported in non-clustered mode")),
    "replicas_negative": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", num_replicas=-1),
        create_err(400, 10133, "replicas count cannot be negative")),
    "description_too_long": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", description="x" * 5000),
        create_err(400, 10107, "consumer description is too long, maximum allowed is 4096")),
    "invalid_json": ("CONSUMER.CREATE.ORDERS.C3", b'{"stream_name":"ORDERS",',
                     create_err(400, 10025, "invalid JSON: unexpected EOF")),
    "empty_body": ("CONSUMER.CREATE.ORDERS.C3", b"",
                   create_err(400, 10056, "stream name in subject does not match request")),
    "wrong_field_type": (
        "CONSUMER.CREATE.ORDERS.C3", b'{"stream_name":"ORDERS","config":{"durable_name":"C3","max_deliver":"x"}}',
        create_err(400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field "
                   "CreateConsumerRequest.config.max_deliver of type int")),
    "unknown_config_field": (
        "CONSUMER.CREATE.ORDERS.C3", {"stream_name": "ORDERS", "config": {"durable_name": "C3", "bogus": 1}},
        create_err(400, 10025, 'invalid JSON: json: unknown field "bogus"')),
    "unknown_top_field": (
        "CONSUMER.CREATE.ORDERS.C3", {"stream_name": "ORDERS", "bogus": 1, "config": {"durable_name": "C3"}},
        create_err(400, 10025, 'invalid JSON: json: unknown field "bogus"')),
    "pedantic_backoff_vs_ack_wait": (
        "CONSUMER.CREATE.ORDERS.C4",
        {"stream_name": "ORDERS", "pedantic": True,
         "config": {"durable_name": "C4", "ack_policy": "explicit", "backoff": [2 * SEC], "ack_wait": 5 * SEC}},
        create_err(400, 10157, "pedantic mode: first backoff value has to equal batch AckWait")),
    "name_with_dot_legacy": ("CONSUMER.CREATE.ORDERS", create_body("ORDERS", name="a.b"),
                             create_err(500, 10052, NAME_RULE)),
    "name_with_star": ("CONSUMER.CREATE.ORDERS.a*", create_body("ORDERS", durable_name="a*"),
                       create_err(500, 10052, NAME_RULE)),
    "name_with_slash": ("CONSUMER.CREATE.ORDERS.a/b", create_body("ORDERS", durable_name="a/b"),
                        create_err(400, 10127, "Consumer name can not contain path separators")),
    "name_too_long": ("CONSUMER.CREATE.ORDERS." + "N" * 256, create_body("ORDERS", durable_name="N" * 256),
                      create_err(400, 10102, "consumer name is too long, maximum allowed is 255")),
    "pinned_without_groups": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", priority_policy="pinned_client"),
        create_err(400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set")),
    "groups_without_policy": (
        "CONSUMER.CREATE.ORDERS.C3", create_body("ORDERS", durable_name="C3", priority_groups=["g"]),
        create_err(400, 10196, "consumer can not have priority groups when policy is none")),
    "bad_group_name": (
        "CONSUMER.CREATE.ORDERS.C3",
        create_body("ORDERS", durable_name="C3", priority_policy="overflow", priority_groups=["bad group"]),
        create_err(400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not "
                   "exceed 16 characters")),
    "ack_flow_control_on_pull": (
        "CONSUMER.CREATE.ORDERS.C6", create_body("ORDERS", durable_name="C6", ack_policy="flow_control"),
        create_err(400, 10218, "flow control ack policy requires a push based consumer")),
    "workqueue_second_unfiltered": (
        "CONSUMER.CREATE.WQ.W2", create_body("WQ", durable_name="W2", ack_policy="explicit"),
        create_err(400, 10099, "multiple non-filtered consumers not allowed on workqueue stream")),
    "workqueue_pull_ack_none": (
        "CONSUMER.CREATE.WQ.W3", create_body("WQ", durable_name="W3", filter_subject="wq.x"),
        create_err(400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream")),
    "workqueue_deliver_new": (
        "CONSUMER.CREATE.WQ.W4",
        create_body("WQ", durable_name="W4", ack_policy="explicit", deliver_subject="p.w", filter_subject="wq.y",
                    deliver_policy="new"),
        create_err(400, 10101, "consumer must be deliver all on workqueue stream")),
    "workqueue_filtered_overlaps_unfiltered": (
        "CONSUMER.CREATE.WQ.W5", create_body("WQ", durable_name="W5", ack_policy="explicit", filter_subject="wq.z"),
        create_err(400, 10100, "filtered consumer not unique on workqueue stream")),
    "stream_max_consumers_reached": (
        "CONSUMER.CREATE.LIM.L2", create_body("LIM", durable_name="L2"),
        create_err(400, 10026, "maximum consumers limit reached")),
}


@pytest.mark.parametrize("case", list(CREATE_ERRORS))
@async_test()
async def test_create_error(shared_js, case):
    subject, req, expected = CREATE_ERRORS[case]
    async with fresh_client(shared_js) as c:
        await orders(c)
        await create(c, "WQ", subjects=["wq.>"], retention="workqueue")
        await create(c, "LIM", subjects=["lim.>"], max_consumers=1)
        await make_consumer(c, "ORDERS", "PULL1", ack_policy="explicit")
        await make_consumer(c, "WQ", "W1", ack_policy="explicit")
        await make_consumer(c, "LIM", "L1")
        before = await c.info("ORDERS", "PULL1")
        assert_json(await c.capi(subject, req), expected)
        # Nothing was created or changed.
        assert_json(await c.capi("CONSUMER.NAMES.ORDERS"), names_resp(["PULL1"]))
        assert_json(await c.capi("CONSUMER.NAMES.WQ"), names_resp(["W1"]))
        assert (await c.info("ORDERS", "PULL1")) == before


@async_test()
async def test_create_name_255(shared_js):
    """The longest durable name nats-server takes (255 bytes; 256 is refused above)."""
    name = "N" * 255
    async with fresh_client(shared_js) as c:
        await orders(c)
        got = await c.capi(f"CONSUMER.CREATE.ORDERS.{name}",
                           create_body("ORDERS", durable_name=name, ack_policy="explicit"))
        assert_json(got, cresp(name, ccfg(durable=name), num_pending=3))
        assert_json(await c.capi("CONSUMER.NAMES.ORDERS"), names_resp([name]))


@async_test()
async def test_create_actions(js_server):
    """create twice identical (ok, same `created`), update with a change, create-or-update."""
    async with cclient(js_server) as c:
        await orders(c)
        first = await c.req("$JS.API.CONSUMER.CREATE.ORDERS.PULL1",
                            create_body("ORDERS", "create", durable_name="PULL1", ack_policy="explicit"))
        assert_json(first.json(), cresp("PULL1", ccfg(durable="PULL1"), num_pending=3))
        again = await c.req("$JS.API.CONSUMER.CREATE.ORDERS.PULL1",
                            create_body("ORDERS", "create", durable_name="PULL1", ack_policy="explicit"))
        assert_json(again.json(), cresp("PULL1", ccfg(durable="PULL1"), num_pending=3))
        created = re.compile(rb'"created":"([^"]+)"')
        assert created.search(first.data)[1] == created.search(again.data)[1]

        got = await c.capi("CONSUMER.CREATE.ORDERS.PULL1", create_body(
            "ORDERS", "update", durable_name="PULL1", ack_policy="explicit", description="new",
            max_ack_pending=50, metadata={"k": "v"}))
        cfg = ccfg(durable="PULL1", description="new", max_ack_pending=50, metadata={"k": "v"})
        assert_json(got, cresp("PULL1", cfg, num_pending=3))
        assert_json(await c.info("ORDERS", "PULL1"), cinfo_json("ORDERS", "PULL1", cfg, num_pending=3))

        # No action: create-or-update.
        got = await c.capi("CONSUMER.CREATE.ORDERS.PULL1", create_body(
            "ORDERS", durable_name="PULL1", ack_policy="explicit", ack_wait=10 * SEC))
        cfg = ccfg(durable="PULL1", ack_wait=10 * SEC)
        assert_json(got, cresp("PULL1", cfg, num_pending=3))
        # An update of a consumer with deliveries keeps its state.
        _, got = await c.pull("ORDERS", "PULL1", b"2", n=2)
        got = await c.capi("CONSUMER.CREATE.ORDERS.PULL1", create_body(
            "ORDERS", durable_name="PULL1", ack_policy="explicit", ack_wait=10 * SEC, max_deliver=3))
        cfg = ccfg(durable="PULL1", ack_wait=10 * SEC, max_deliver=3)
        assert_json(got, cresp("PULL1", cfg, delivered=(2, 2), num_ack_pending=2, num_pending=1))


LIMITS_CONF = """
accounts {
  A {
    jetstream { max_consumers: 2, max_ack_pending: 100 }
    users [ { user: a, password: a } ]
  }
}
"""


@async_test()
async def test_account_consumer_limits(start_js_server):
    """Account max_ack_pending (default clamped, excess refused) and max_consumers."""
    s = start_js_server(config=LIMITS_CONF)
    async with cclient(s, user="a", **{"pass": "a"}) as c:
        await create(c, "S1", subjects=["s1"])
        got = await c.capi("CONSUMER.CREATE.S1.C1", create_body("S1", durable_name="C1", ack_policy="explicit",
                                                                 max_ack_pending=50))
        assert_json(got, cresp("C1", ccfg(durable="C1", max_ack_pending=50), stream="S1"))
        got = await c.capi("CONSUMER.CREATE.S1.CX", create_body("S1", durable_name="CX", ack_policy="explicit",
                                                                 max_ack_pending=1000))
        assert_json(got, create_err(400, 10121, "consumer max ack pending exceeds system limit of 100"))
        got = await c.capi("CONSUMER.CREATE.S1.C2", create_body("S1", durable_name="C2", ack_policy="explicit"))
        assert_json(got, cresp("C2", ccfg(durable="C2", max_ack_pending=100), stream="S1"))
        got = await c.capi("CONSUMER.CREATE.S1.C3", create_body("S1", durable_name="C3", ack_policy="explicit"))
        assert_json(got, create_err(400, 10026, "maximum consumers limit reached"))
        # An update of an existing consumer is not a new one.
        got = await c.capi("CONSUMER.CREATE.S1.C2", create_body("S1", durable_name="C2", ack_policy="explicit",
                                                                 description="x"))
        assert_json(got, cresp("C2", ccfg(durable="C2", max_ack_pending=100, description="x"), stream="S1"))
        # The limit is per stream.
        await create(c, "S2", subjects=["s2"])
        got = await c.capi("CONSUMER.CREATE.S2.C3", create_body("S2", durable_name="C3"))
        assert_json(got, cresp("C3", ccfg(durable="C3", ack="none"), stream="S2"))


# =========================================================================================
# 2. Info, names, list, delete, pause, leader stepdown
# =========================================================================================


def info_err(code, err_code, description):
    return cerr("consumer_info_response", code, err_code, description)


@pytest.mark.parametrize("case", ["ok", "missing_consumer", "missing_stream", "with_body", "empty_object",
                                  "object_with_member"])
@async_test()
async def test_info(shared_js, case):
    async with fresh_client(shared_js) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        subject, body, expected = {
            "ok": ("CONSUMER.INFO.ORDERS.A", None, cinfo_json("ORDERS", "A", ccfg(durable="A"), num_pending=3)),
            "missing_consumer": ("CONSUMER.INFO.ORDERS.NOPE", None, info_err(404, 10014, "consumer not found")),
            "missing_stream": ("CONSUMER.INFO.NOPE.A", None, info_err(404, 10059, "stream not found")),
            "with_body": ("CONSUMER.INFO.ORDERS.A", b"{bad",
                          info_err(400, 10038, "expected an empty request payload")),
            "empty_object": ("CONSUMER.INFO.ORDERS.A", b" { } ",
                             cinfo_json("ORDERS", "A", ccfg(durable="A"), num_pending=3)),
            "object_with_member": ("CONSUMER.INFO.ORDERS.A", b'{"x":1}',
                                   info_err(400, 10038, "expected an empty request payload")),
        }[case]
        assert_json(await c.capi(subject, body), expected)


def list_entry(name: str, cfg: dict, **kw) -> dict:
    from consumer_util import cinfo
    return cinfo("ORDERS", name, cfg, kind=None, **kw)


def paged_err(kind: str, code: int, err_code: int, description: str) -> str:
    return go_json({"type": API + kind, "error": {"code": code, "err_code": err_code, "description": description},
                    "total": 0, "offset": 0, "limit": 0, "consumers": []})


BAD_JSON_AT_2 = "invalid JSON: invalid character 'b' looking for beginning of object key string at offset 2"


@async_test()
async def test_names_and_list(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        for n in ["B", "A", "C"]:
            await make_consumer(c, "ORDERS", n, ack_policy="explicit")
        await make_consumer(c, "ORDERS", "EPH", durable=False)
        api = c.capi
        assert_json(await api("CONSUMER.NAMES.ORDERS"), names_resp(["A", "B", "C", "EPH"]))
        assert_json(await api("CONSUMER.NAMES.ORDERS", {"offset": 1}), names_resp(["B", "C", "EPH"], 4, 1))
        assert_json(await api("CONSUMER.NAMES.ORDERS", {"offset": 9}), names_resp([], 4, 4))
        assert_json(await api("CONSUMER.NAMES.ORDERS", b"{bad"),
                    paged_err("consumer_names_response", 400, 10025, BAD_JSON_AT_2))
        assert_json(await api("CONSUMER.NAMES.ORDERS", {"subject": "x"}),
                    paged_err("consumer_names_response", 400, 10025, 'invalid JSON: json: unknown field "subject"'))
        assert_json(await api("CONSUMER.NAMES.NOPE"),
                    paged_err("consumer_names_response", 404, 10059, "stream not found"))

        def lst(entries, total=4, offset=0):
            return go_json({"type": API + "consumer_list_response", "total": total, "offset": offset,
                            "limit": 256, "consumers": entries})

        entries = [list_entry(n, ccfg(durable=n, listing=True), num_pending=3) for n in ["A", "B", "C"]]
        entries.append(list_entry("EPH", ccfg(name="EPH", ack="none", listing=True), num_pending=3))
        assert_json(await api("CONSUMER.LIST.ORDERS"), lst(entries))
        assert_json(await api("CONSUMER.LIST.ORDERS", {"offset": 3}), lst(entries[3:], offset=3))
        assert_json(await api("CONSUMER.LIST.ORDERS", {"offset": 9}), lst([], offset=4))
        assert_json(await api("CONSUMER.LIST.ORDERS", b"{bad"),
                    paged_err("consumer_list_response", 400, 10025, BAD_JSON_AT_2))
        assert_json(await api("CONSUMER.LIST.NOPE"), paged_err("consumer_list_response", 404, 10059, "stream not found"))
        # The stream's consumer count.
        d = json.loads((await c.req("$JS.API.STREAM.INFO.ORDERS")).data)
        assert d["state"]["consumer_count"] == 4


@async_test()
async def test_delete(js_server):
    def del_resp(**kw):
        return go_json({"type": API + "consumer_delete_response", **kw})

    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        await make_consumer(c, "ORDERS", "C", ack_policy="explicit")
        assert_json(await c.capi("CONSUMER.DELETE.ORDERS.C"), del_resp(success=True))
        not_found = cerr("consumer_delete_response", 404, 10014, "consumer not found")
        assert_json(await c.capi("CONSUMER.DELETE.ORDERS.C"), not_found)
        assert_json(await c.capi("CONSUMER.INFO.ORDERS.C"), info_err(404, 10014, "consumer not found"))
        assert_json(await c.capi("CONSUMER.DELETE.NOPE.C"),
                    cerr("consumer_delete_response", 404, 10059, "stream not found"))
        assert_json(await c.capi("CONSUMER.NAMES.ORDERS"), names_resp(["A"]))
        # A pull on the deleted consumer: nobody listens any more.
        got = await c.pull_lines("ORDERS", "C", J({"batch": 1, "expires": 300 * MS}))
        assert got == [status_line("503", ("Nats-Subject", "$JS.API.CONSUMER.MSG.NEXT.ORDERS.C"))]
        # Same name again starts from scratch.
        got = await c.capi("CONSUMER.CREATE.ORDERS.C", create_body("ORDERS", durable_name="C", ack_policy="explicit"))
        assert_json(got, cresp("C", ccfg(durable="C"), num_pending=3))


def pause_resp(paused: bool, until: str, remaining: bool = False, error=None) -> str:
    d = {"type": API + "consumer_pause_response"}
    if error:
        d["error"] = {"code": error[0], "err_code": error[1], "description": error[2]}
    d.update({"paused": paused, "pause_until": until})
    if remaining:
        d["pause_remaining"] = "<N>"
    return go_json(d)


ZERO = "0001-01-01T00:00:00Z"


@async_test()
async def test_pause_resume(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        got = await c.capi("CONSUMER.PAUSE.ORDERS.A", {"pause_until": "2099-01-01T00:00:00Z"})
        assert_json(got, pause_resp(True, "<TS>", remaining=True))
        info = json.loads((await c.info("ORDERS", "A")).replace("<N>", "0"))
        assert info["paused"] is True and info["config"]["pause_until"] == "<TS>"
        # A paused consumer delivers nothing: an expiring request times out.
        got = await c.pull_lines("ORDERS", "A", J({"batch": 1, "expires": 300 * MS}))
        assert got == [status_line("408 Request Timeout", ("Nats-Pending-Messages", 1), ("Nats-Pending-Bytes", 0))]
        # Resume: empty body.
        assert_json(await c.capi("CONSUMER.PAUSE.ORDERS.A"), pause_resp(False, ZERO))
        assert_json(await c.info("ORDERS", "A"), cinfo_json("ORDERS", "A", ccfg(durable="A"), num_pending=3))
        got = await c.pull_lines("ORDERS", "A", J({"batch": 1, "expires": 300 * MS}), n=1, quiet=0.1)
        assert got == [msg_line("orders.0", "m0", "ORDERS", "A", 1, 1, 1, 2)]


@async_test()
async def test_pause_advisories(js_server):
    """A pause that runs out by itself says so ("paused": false); a pause request that
    changes nothing (resuming what is not paused) sends no advisory."""
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        await c.sub("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.ORDERS.A")
        await c.sync()

        async def pauses(wait: float) -> list[bool]:
            out = []
            deadline = time.monotonic() + wait
            while True:
                try:
                    m = await c.msg(deadline)
                except asyncio.TimeoutError:
                    return out
                if m is not None and m.subject.startswith("$JS.EVENT."):
                    out.append(json.loads(m.data)["paused"])

        until = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 2)) + "Z"
        await c.capi("CONSUMER.PAUSE.ORDERS.A", {"pause_until": until})
        assert await pauses(0.3) == [True]
        assert await pauses(3.5) == [False], "no advisory when the pause ran out"
        await c.capi("CONSUMER.PAUSE.ORDERS.A")  # ends the (past) pause: a change
        assert await pauses(0.3) == [False]
        await c.capi("CONSUMER.PAUSE.ORDERS.A", {})  # not paused: no change
        assert await pauses(0.5) == []


@async_test()
async def test_pause_info(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        await c.capi("CONSUMER.PAUSE.ORDERS.A", {"pause_until": "2099-01-01T00:00:00Z"})
        assert_json(await c.info("ORDERS", "A"), cinfo_json(
            "ORDERS", "A", ccfg(durable="A", req_level="1", pause_until="<TS>"), num_pending=3, paused=True))


@async_test()
async def test_pause_no_wait(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        await c.capi("CONSUMER.PAUSE.ORDERS.A", {"pause_until": "2099-01-01T00:00:00Z"})
        got = await c.pull_lines("ORDERS", "A", J({"batch": 1, "no_wait": True}), timeout=1)
        assert got == [status_line("404 No Messages")]
        await c.capi("CONSUMER.PAUSE.ORDERS.A")
        got = await c.pull_lines("ORDERS", "A", J({"batch": 1, "expires": 300 * MS}), n=1, quiet=0.2)
        assert got == [msg_line("orders.0", "m0", "ORDERS", "A", 1, 1, 1, 2)]


@async_test()
async def test_pause_in_the_past(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        got = await c.capi("CONSUMER.PAUSE.ORDERS.A", {"pause_until": "2001-01-01T00:00:00Z"})
        assert_json(got, pause_resp(False, "<TS>"))
        assert_json(await c.info("ORDERS", "A"), cinfo_json(
            "ORDERS", "A", ccfg(durable="A", req_level="1", pause_until="<TS>"), num_pending=3))


@pytest.mark.parametrize("case", ["bad_json", "bad_time", "missing_consumer", "missing_stream"])
@async_test()
async def test_pause_error(shared_js, case):
    subject, body, err = {
        "bad_json": ("CONSUMER.PAUSE.ORDERS.A", b"{bad", (400, 10025, BAD_JSON_AT_2)),
        "bad_time": ("CONSUMER.PAUSE.ORDERS.A", {"pause_until": "bogus"},
                     (400, 10025, 'invalid JSON: parsing time "bogus" as "2006-01-02T15:04:05Z07:00": '
                      'cannot parse "bogus" as "2006"')),
        "missing_consumer": ("CONSUMER.PAUSE.ORDERS.NOPE", {"pause_until": "2099-01-01T00:00:00Z"},
                             (404, 10014, "consumer not found")),
        "missing_stream": ("CONSUMER.PAUSE.NOPE.A", None, (404, 10059, "stream not found")),
    }[case]
    async with fresh_client(shared_js) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        assert_json(await c.capi(subject, body), pause_resp(False, ZERO, error=err))


@pytest.mark.parametrize("case", ["existing", "missing_consumer", "missing_stream"])
@async_test()
async def test_leader_stepdown_standalone(shared_js, case):
    subject = {"existing": "ORDERS.A", "missing_consumer": "ORDERS.NOPE", "missing_stream": "NOPE.A"}[case]
    async with fresh_client(shared_js) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        assert_json(await c.capi(f"CONSUMER.LEADER.STEPDOWN.{subject}"),
                    cerr("consumer_leader_stepdown_response", 503, 10010, "JetStream clustering support required"))


# =========================================================================================
# 3. Pull requests (raw $JS.API.CONSUMER.MSG.NEXT)
# =========================================================================================


def timeout408(pending: int, nbytes: int = 0) -> str:
    return status_line("408 Request Timeout", ("Nats-Pending-Messages", pending), ("Nats-Pending-Bytes", nbytes))


def m(i: int, consumer: str, dc: int, sseq: int, cseq: int, pending: int) -> str:
    return msg_line(f"orders.{i}", f"m{i}", "ORDERS", consumer, dc, sseq, cseq, pending)


HDR_MSG = "NATS/1.0\r\nA: 1\r\nB: two\r\n\r\n"

# Consumers of ORDERS (orders.0..2 = m0..m2, then orders.h with headers), created per case:
PULL_CONSUMERS = {
    "P": dict(ack_policy="explicit"),
    "E": dict(ack_policy="explicit", filter_subject="orders.none"),
    "F1": dict(ack_policy="explicit", filter_subject="orders.1"),
    "H": dict(ack_policy="explicit", filter_subject="orders.h"),
    "N": dict(ack_policy="none"),
    "MB": dict(ack_policy="explicit", max_batch=2, max_expires=SEC, max_bytes=100),
    "HO": dict(ack_policy="explicit", headers_only=True),
    "PU": dict(deliver_subject="push.x"),
}

# (consumer, body, collect options, expected lines)
PULL_CASES = {
    "empty_body": ("P", b"", dict(n=1, quiet=0.2), [m(0, "P", 1, 1, 1, 3)]),
    "plain_integer": ("P", b"2", dict(n=2, quiet=0.2), [m(0, "P", 1, 1, 1, 3), m(1, "P", 1, 2, 2, 2)]),
    "json_batch": ("P", {"batch": 3}, dict(n=3, quiet=0.2),
                   [m(0, "P", 1, 1, 1, 3), m(1, "P", 1, 2, 2, 2), m(2, "P", 1, 3, 3, 1)]),
    "headers_kept": ("H", {"batch": 1}, dict(n=1, quiet=0.2),
                     [msg_line("orders.h", "withhdr", "ORDERS", "H", 1, 4, 1, 0, hdr=HDR_MSG)]),
    "ack_none_still_has_ack_reply": ("N", {"batch": 2}, dict(n=2, quiet=0.2),
                                     [m(0, "N", 1, 1, 1, 3), m(1, "N", 1, 2, 2, 2)]),
    "no_wait_with_messages": (
        "P", {"batch": 10, "no_wait": True}, {},
        [m(0, "P", 1, 1, 1, 3), m(1, "P", 1, 2, 2, 2), m(2, "P", 1, 3, 3, 1),
         msg_line("orders.h", "withhdr", "ORDERS", "P", 1, 4, 4, 0, hdr=HDR_MSG), status_line("404 No Messages")]),
    "no_wait_empty": ("E", {"batch": 1, "no_wait": True}, {}, [status_line("404 No Messages")]),
    "no_wait_with_expires_empty": ("E", {"batch": 1, "no_wait": True, "expires": 300 * MS}, {}, [timeout408(1)]),
    "expires_empty": ("E", {"batch": 3, "expires": 300 * MS}, {}, [timeout408(3)]),
    "expires_partial": ("F1", {"batch": 3, "expires": 300 * MS}, {}, [m(1, "F1", 1, 2, 1, 0), timeout408(2)]),
    "max_bytes_too_small": (
        "P", {"batch": 1, "max_bytes": 5, "expires": SEC}, {},
        [status_line("409 Message Size Exceeds MaxBytes", ("Nats-Pending-Messages", 1), ("Nats-Pending-Bytes", 5))]),
    # nats-server counts subject + ack reply + headers + payload: 8 + 44 + 0 + 2 = 54 here.
    "max_bytes_partial": (
        "P", {"batch": 4, "max_bytes": 80, "expires": 300 * MS}, {},
        [m(0, "P", 1, 1, 1, 3),
         status_line("409 Message Size Exceeds MaxBytes", ("Nats-Pending-Messages", 3), ("Nats-Pending-Bytes", 26))]),
    # Headers only: the converted header block counts (10 + 18 + 2), not the payload:
    # 8 + 45 + 30 = 83 of 120.
    "max_bytes_headers_only": (
        "HO", {"batch": 3, "max_bytes": 120, "expires": 300 * MS}, {},
        [msg_line("orders.0", "", "ORDERS", "HO", 1, 1, 1, 3, hdr="NATS/1.0\r\nNats-Msg-Size: 2\r\n\r\n"),
         status_line("409 Message Size Exceeds MaxBytes", ("Nats-Pending-Messages", 2), ("Nats-Pending-Bytes", 37))]),
    "max_bytes_partial_no_wait": (
        "P", {"batch": 4, "max_bytes": 60, "no_wait": True}, {},
        [m(0, "P", 1, 1, 1, 3),
         status_line("409 Message Size Exceeds MaxBytes", ("Nats-Pending-Messages", 3), ("Nats-Pending-Bytes", 6))]),
    "heartbeat_not_below_half_expires": (
        "E", {"batch": 1, "expires": SEC, "idle_heartbeat": SEC}, {},
        [status_line("400 Bad Request - heartbeat value too large")]),
    "heartbeat_without_expires": (
        "E", {"batch": 1, "idle_heartbeat": SEC}, dict(timeout=1),
        [status_line("400 Bad Request - heartbeat value too large")]),
    "bad_json": ("E", b"{bad", {}, [status_line(
        "400 Bad Request - invalid character 'b' looking for beginning of object key string")]),
    "bad_json_field_type": ("E", b'{"batch":"x"}', {}, [status_line(
        "400 Bad Request - json: cannot unmarshal string into Go struct field .batch of type int")]),
    "negative_expires_no_wait": ("E", {"batch": 1, "no_wait": True, "expires": -1}, {}, [timeout408(1)]),
    "negative_expires": ("E", {"batch": 1, "expires": -1}, dict(timeout=1), [timeout408(1)]),
    "batch_zero_no_wait": ("E", {"batch": 0, "no_wait": True}, dict(timeout=1), [status_line("404 No Messages")]),
    "batch_over_max_batch": ("MB", {"batch": 5, "expires": 100 * MS}, {},
                             [status_line("409 Exceeded MaxRequestBatch of 2")]),
    "expires_over_max_expires": ("MB", {"batch": 1, "expires": 5 * SEC}, {},
                                 [status_line("409 Exceeded MaxRequestExpires of 1s")]),
    "max_bytes_over_limit": ("MB", {"batch": 1, "max_bytes": 500, "expires": 100 * MS}, {},
                             [status_line("409 Exceeded MaxRequestMaxBytes of 100")]),
    "push_consumer": ("PU", {"batch": 1}, {}, [status_line("409 Consumer is push based")]),
    "missing_consumer": ("NOPE", {"batch": 1}, {},
                         [status_line("503", ("Nats-Subject", "$JS.API.CONSUMER.MSG.NEXT.ORDERS.NOPE"))]),
}


@pytest.mark.parametrize("case", list(PULL_CASES))
@async_test()
async def test_pull(shared_js, case):
    consumer, req, opts, expected = PULL_CASES[case]
    async with fresh_client(shared_js) as c:
        await orders(c, headers_msg=True)
        if consumer in PULL_CONSUMERS:
            await make_consumer(c, "ORDERS", consumer, **PULL_CONSUMERS[consumer])
        if isinstance(req, dict):
            req = J(req)
        opts = dict(opts)
        opts.setdefault("timeout", 3)
        got = await c.pull_lines("ORDERS", consumer, req, **opts)
        assert got == expected


@pytest.mark.parametrize("case", ["missing_stream"])
@async_test()
async def test_pull_no_responders(shared_js, case):
    async with fresh_client(shared_js) as c:
        got = await c.pull_lines("NOST", "C", J({"batch": 1}))
        assert got == [status_line("503", ("Nats-Subject", "$JS.API.CONSUMER.MSG.NEXT.NOST.C"))]


@async_test()
async def test_pull_required_api_level(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        inbox = c._inbox()
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.P", b"", headers=[("Nats-Required-Api-Level", "99")],
                     reply=inbox)
        got = lines(await c.collect(n=1, timeout=1), inbox)
        assert got == [status_line("412 Required Api Level")]


@async_test()
async def test_pull_idle_heartbeat(js_server):
    """expires 1.2s, heartbeat 0.5s: heartbeats while waiting, then the 408."""
    async with cclient(js_server) as c:
        await orders(c, headers_msg=True)
        await make_consumer(c, "ORDERS", "E", ack_policy="explicit", filter_subject="orders.none")
        got = await c.pull_lines("ORDERS", "E", J({"batch": 1, "expires": 1200 * MS, "idle_heartbeat": 500 * MS}))
        hb = status_line("100 Idle Heartbeat", ("Nats-Last-Consumer", 0), ("Nats-Last-Stream", 4))
        assert got[-1] == timeout408(1)
        assert 1 <= len(got) - 1 <= 3 and set(got[:-1]) == {hb}, got


@async_test()
async def test_pull_idle_heartbeat_after_delivery(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        got = await c.pull_lines("ORDERS", "P", J({"batch": 5, "expires": 800 * MS, "idle_heartbeat": 300 * MS}))
        hb = status_line("100 Idle Heartbeat", ("Nats-Last-Consumer", 3), ("Nats-Last-Stream", 3))
        assert got[:3] == [m(0, "P", 1, 1, 1, 2), m(1, "P", 1, 2, 2, 1), m(2, "P", 1, 3, 3, 0)]
        assert got[-1] == timeout408(2)
        assert 1 <= len(got) - 4 <= 3 and set(got[3:-1]) == {hb}, got


@async_test()
async def test_pull_waiting_request(js_server):
    """A waiting request counts in num_waiting and is served by a later publish."""
    async with cclient(js_server) as c:
        await orders(c, 0)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        inbox = c._inbox()
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.P", J({"batch": 2, "expires": 3 * SEC}), reply=inbox)
        await c.sync()
        assert summary(await c.info("ORDERS", "P")) == (0, 0, 0, 0, 0, 0, 1, 0)
        await c.send("orders.7", "late")
        got = lines(await c.collect(n=1, timeout=2), inbox)
        assert got == [msg_line("orders.7", "late", "ORDERS", "P", 1, 1, 1, 0)]
        assert summary(await c.info("ORDERS", "P")) == (1, 1, 0, 0, 1, 0, 1, 0)
        await c.send("orders.8", "later")
        got = lines(await c.collect(n=1, timeout=2, quiet=0.2), inbox)
        assert got == [msg_line("orders.8", "later", "ORDERS", "P", 1, 2, 2, 0)]
        assert summary(await c.info("ORDERS", "P")) == (2, 2, 0, 0, 2, 0, 0, 0)


@async_test()
async def test_pull_max_waiting(js_server):
    async with cclient(js_server) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "MW", ack_policy="explicit", max_waiting=1, filter_subject="orders.none")
        i1, i2 = c._inbox(), c._inbox()
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.MW", J({"batch": 1, "expires": 800 * MS}), reply=i1)
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.MW", J({"batch": 1, "expires": 800 * MS}), reply=i2)
        got = await c.collect(frames=2, timeout=2, stop_on_status=False)
        assert [(x.subject, x.line()) for x in got] == [
            (i2, status_line("409 Exceeded MaxWaiting", subject=i2)),
            (i1, timeout408(1).replace("<INBOX>", i1)),
        ]


# Stream ORDERS for the deliver policy cases: (subject, payload) at seqs 1..5.
POLICY_MSGS = [("orders.a", "m0"), ("orders.b", "m1"), ("orders.a", "m2"), ("orders.c", "m3"), ("orders.b", "m4")]

# (consumer config, stream seqs delivered in order); every filter but "filter_subject"
# (orders.b) takes the later message on orders.a.
DELIVER_CASES = {
    "all": ({}, [1, 2, 3, 4, 5]),
    "last": ({"deliver_policy": "last"}, [5]),
    "new": ({"deliver_policy": "new"}, []),
    "by_start_sequence": ({"deliver_policy": "by_start_sequence", "opt_start_seq": 3}, [3, 4, 5]),
    "by_start_time": ({"deliver_policy": "by_start_time", "opt_start_time": "2001-01-01T00:00:00Z"},
                      [1, 2, 3, 4, 5]),
    "last_per_subject": ({"deliver_policy": "last_per_subject", "filter_subject": "orders.*"}, [3, 4, 5]),
    "last_filtered": ({"deliver_policy": "last", "filter_subject": "orders.a"}, [3]),
    "filter_subject": ({"filter_subject": "orders.b"}, [2, 5]),
    "filter_subjects": ({"filter_subjects": ["orders.a", "orders.c"]}, [1, 3, 4]),
    "last_per_subject_filters": (
        {"deliver_policy": "last_per_subject", "filter_subjects": ["orders.a", "orders.b"]}, [3, 5]),
}


@pytest.mark.parametrize("case", list(DELIVER_CASES))
@async_test()
async def test_deliver_policy(shared_js, case):
    """What a pull (no_wait) delivers for each deliver policy and filter, and that a later
    message on orders.a follows with the next consumer sequence."""
    cfg, seqs = DELIVER_CASES[case]
    async with fresh_client(shared_js) as c:
        await create(c, "ORDERS", subjects=["orders.>"])
        for subj, data in POLICY_MSGS:
            await store(c, subj, data)
        await make_consumer(c, "ORDERS", "D", ack_policy="explicit", **cfg)
        got = await c.pull_lines("ORDERS", "D", J({"batch": 10, "no_wait": True}))
        expected = [msg_line(POLICY_MSGS[s - 1][0], POLICY_MSGS[s - 1][1], "ORDERS", "D", 1, s, i + 1,
                             len(seqs) - i - 1) for i, s in enumerate(seqs)]
        assert got == expected + [status_line("404 No Messages")]
        await store(c, "orders.a", "late")
        # (A waiting request: a no_wait one right after the publish races with the
        # consumer noticing the message on nats-server.)
        if case == "filter_subject":
            late = []
            got = await c.pull_lines("ORDERS", "D", J({"batch": 10, "no_wait": True}))
            assert got == [status_line("404 No Messages")]
        else:
            late = [msg_line("orders.a", "late", "ORDERS", "D", 1, 6, len(seqs) + 1, 0)]
            got = await c.pull_lines("ORDERS", "D", J({"batch": 1, "expires": SEC}), n=1, quiet=0.05)
            assert got == late
        n = len(seqs) + len(late)
        st = summary(await c.info("ORDERS", "D"))
        assert (st[0], st[1], st[4], st[7]) == (n, 6 if late else seqs[-1], n, 0), st


@async_test()
async def test_pull_max_ack_pending(js_server):
    """max_ack_pending 2: a batch of 4 gets 2 messages and then waits; an ack lets the
    next one through to the same request."""
    async with cclient(js_server) as c:
        await orders(c, 4)
        await make_consumer(c, "ORDERS", "MA", ack_policy="explicit", max_ack_pending=2)
        inbox, got = await c.pull("ORDERS", "MA", J({"batch": 4, "expires": 900 * MS}), n=2, timeout=1)
        assert lines(got, inbox) == [m(0, "MA", 1, 1, 1, 3), m(1, "MA", 1, 2, 2, 2)]
        await c.expect_nothing(0.2)
        assert summary(await c.info("ORDERS", "MA")) == (2, 2, 0, 0, 2, 0, 1, 2)
        # An ack frees a slot: the waiting request gets the next message.
        await c.ack(got[0].reply, "+ACK", confirm=False)
        more = await c.collect(n=1, timeout=1)
        assert lines(more, inbox) == [m(2, "MA", 1, 3, 3, 1)]
        assert summary(await c.info("ORDERS", "MA")) == (3, 3, 1, 1, 2, 0, 1, 1)
        # The request ends at its expiry with one message still owed.
        got = lines(await c.collect(n=1, timeout=2), inbox)
        assert got == [timeout408(1)]


@async_test()
async def test_pull_consumer_deleted(js_server):
    """A waiting pull request is told when its consumer is deleted."""
    async with cclient(js_server) as c:
        await orders(c, 0)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        inbox = c._inbox()
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.P", J({"batch": 2, "expires": 3 * SEC}), reply=inbox)
        await c.sync()
        assert_json(await c.capi("CONSUMER.DELETE.ORDERS.P"),
                    go_json({"type": API + "consumer_delete_response", "success": True}))
        got = lines(await c.collect(n=1, timeout=5, quiet=0.2), inbox)
        assert got == [status_line("409 Consumer Deleted")]


@async_test()
async def test_pull_requests_are_told_of_a_server_shutdown(js_server):
    """A graceful stop tells every waiting pull request, before the connection closes,
    with what it still wanted (nats-server's `signalPullConsumers`): a client then asks
    again after reconnecting instead of waiting out the request's expiry."""
    async with cclient(js_server) as c:
        await orders(c, 0)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        await make_consumer(c, "ORDERS", "Q", ack_policy="explicit")
        inbox = c._inbox()
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.P", J({"batch": 3, "expires": 30 * SEC}), reply=inbox)
        await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.Q",
                     J({"batch": 2, "max_bytes": 5000, "expires": 30 * SEC}), reply=inbox)
        await c.sync()
        await c.expect_nothing(0.2)
        js_server.stop()
        got = sorted(lines(await c.collect(frames=2, timeout=5, stop_on_status=False), inbox))
        assert got == sorted([
            status_line("409 Server Shutdown", ("Nats-Pending-Messages", 3), ("Nats-Pending-Bytes", 0)),
            status_line("409 Server Shutdown", ("Nats-Pending-Messages", 2), ("Nats-Pending-Bytes", 5000)),
        ])


def reset_resp(name: str, cfg: dict, reset_seq: int, **kw) -> str:
    return cinfo_json("ORDERS", name, cfg, kind="consumer_reset_response", extra={"reset_seq": reset_seq}, **kw)


@async_test()
async def test_reset(js_server):
    """CONSUMER.RESET: back to a sequence (or to just past the ack floor) with the
    delivery state cleared; the next pull starts there."""
    async with cclient(js_server) as c:
        await orders(c, 5)
        await make_consumer(c, "ORDERS", "R", ack_policy="explicit")
        ms = await pulled(c, "R", 4)
        confirmed(await c.ack(ms[0].reply, "+ACK"))
        confirmed(await c.ack(ms[1].reply, "+ACK"))
        cfg = ccfg(durable="R")
        got = await c.capi("CONSUMER.RESET.ORDERS.R")
        assert_json(got, reset_resp("R", cfg, 3, delivered=(0, 2), ack_floor=(0, 2), num_pending=3))
        got = await c.pull_lines("ORDERS", "R", J({"batch": 1, "no_wait": True}), n=1, quiet=0.1)
        assert got == [m(2, "R", 1, 3, 1, 2)], got
        got = await c.capi("CONSUMER.RESET.ORDERS.R", {"seq": 2})
        assert_json(got, reset_resp("R", cfg, 2, delivered=(0, 1), ack_floor=(0, 1), num_pending=4))
        got = await c.pull_lines("ORDERS", "R", J({"batch": 1, "no_wait": True}), n=1, quiet=0.1)
        assert got == [m(1, "R", 1, 2, 1, 3)], got


RESET_ERRORS = {
    "bad_json": (b"{bad", go_json({"type": API + "consumer_reset_response", "error": {
        "code": 400, "err_code": 10025,
        "description": "invalid JSON: invalid character 'b' looking for beginning of object key string"},
        "reset_seq": 0})),
    # Past the end of the stream is allowed: the consumer waits there.
    "seq_past_end": ({"seq": 99}, reset_resp("A", ccfg(durable="A"), 99, delivered=(0, 98), ack_floor=(0, 98))),
}


@pytest.mark.parametrize("case", list(RESET_ERRORS))
@async_test()
async def test_reset_odd(shared_js, case):
    body, expected = RESET_ERRORS[case]
    async with fresh_client(shared_js) as c:
        await orders(c)
        await make_consumer(c, "ORDERS", "A", ack_policy="explicit")
        assert_json(await c.capi("CONSUMER.RESET.ORDERS.A", body), expected)


def reset_summary(text: str):
    """A reset answer as (reset_seq, ack floor's stream seq, num_pending), or its error."""
    d = json.loads(text)
    if "error" in d:
        return d["error"]["err_code"], d["error"]["description"]
    return d["reset_seq"], d["ack_floor"]["stream_seq"], d["num_pending"]


@async_test()
async def test_reset_keeps_to_the_deliver_policy(shared_js):
    """A chosen reset sequence may not go below a by_start_sequence or by_start_time
    start, and last/new/last_per_subject consumers take none (10204); a reset to the
    ack floor is always allowed. A sequence below the stream's first is kept as given."""
    async with fresh_client(shared_js) as c:
        await orders(c, 10)
        got = json.loads((await c.req("$JS.API.STREAM.MSG.GET.ORDERS", {"seq": 6})).data)
        at_six = got["message"]["time"]  # raw: capi's answers have times masked
        await make_consumer(c, "ORDERS", "SS", deliver_policy="by_start_sequence", opt_start_seq=5)
        await make_consumer(c, "ORDERS", "ST", deliver_policy="by_start_time", opt_start_time=at_six)
        await make_consumer(c, "ORDERS", "LAST", deliver_policy="last")
        await make_consumer(c, "ORDERS", "NEW", deliver_policy="new")
        await make_consumer(c, "ORDERS", "LPS", deliver_policy="last_per_subject", filter_subject="orders.>")
        await make_consumer(c, "ORDERS", "ALL")
        cases = [
            ("SS", 4, (10204, "invalid reset: below start seq")),
            ("SS", 5, (5, 4, 6)),
            ("ST", 5, (10204, "invalid reset: below start time")),
            ("ST", 6, (6, 5, 5)),
            ("ST", None, (6, 5, 5)),
            ("LAST", 3, (10204, "invalid reset: not allowed")),
            ("LAST", None, (10, 9, 1)),
            ("NEW", 2, (10204, "invalid reset: not allowed")),
            ("LPS", 1, (10204, "invalid reset: not allowed")),
            ("ALL", 3, (3, 2, 8)),
        ]
        for name, seq, want in cases:
            body = {"seq": seq} if seq else None
            got = reset_summary(await c.capi(f"CONSUMER.RESET.ORDERS.{name}", body))
            assert got == want, (name, seq, got)
        # The refused resets changed nothing.
        d = json.loads(await c.capi("CONSUMER.INFO.ORDERS.LAST"))
        assert d["ack_floor"]["stream_seq"] == 9, d
        # Below the first sequence (after a purge): kept as given, delivery skips ahead;
        # the start time is looked up again in what the stream holds now.
        confirmed_purge = json.loads(await c.capi("STREAM.PURGE.ORDERS", {"keep": 3}))
        assert confirmed_purge["purged"] == 7, confirmed_purge
        got = reset_summary(await c.capi("CONSUMER.RESET.ORDERS.ALL", {"seq": 2}))
        assert got == (2, 1, 3), got
        got = reset_summary(await c.capi("CONSUMER.RESET.ORDERS.ALL"))
        assert got == (2, 1, 3), got
        got = reset_summary(await c.capi("CONSUMER.RESET.ORDERS.ST", {"seq": 6}))
        assert got == (10204, "invalid reset: below start time"), got
        got = await c.pull_lines("ORDERS", "ALL", J({"batch": 1, "no_wait": True}), n=1, quiet=0.1)
        assert got == [m(7, "ALL", 1, 8, 1, 2)], got


@async_test()
async def test_reset_on_an_interest_stream_drops_what_it_skips(js_server):
    """Interest retention: a reset past messages counts them as acknowledged by that
    consumer, so messages no other consumer wants go, as in nats-server."""
    async with cclient(js_server) as c:
        await create(c, "I", subjects=["i.>"], retention="interest")
        await make_consumer(c, "I", "A", ack_policy="explicit")
        for i in range(5):
            await store(c, f"i.{i}", f"m{i}")
        got = json.loads(await c.capi("CONSUMER.RESET.I.A", {"seq": 4}))
        assert (got["reset_seq"], got["num_pending"]) == (4, 2), got
        st = json.loads(await c.capi("STREAM.INFO.I"))["state"]
        assert (st["messages"], st["first_seq"]) == (2, 4), st


@async_test()
async def test_reset_missing(shared_js):
    """nats-server does not answer a reset of a missing consumer or stream."""
    async with fresh_client(shared_js) as c:
        await orders(c)
        await c.no_response("$JS.API.CONSUMER.RESET.ORDERS.NOPE", wait=0.3)
        await c.no_response("$JS.API.CONSUMER.RESET.NOPE.A", wait=0.3)


@async_test()
async def test_pull_requests_served_in_turn(js_server):
    """Two waiting requests (batch 2 each): new messages alternate between them."""
    async with cclient(js_server) as c:
        await orders(c, 0)
        await make_consumer(c, "ORDERS", "P", ack_policy="none")
        sids = {}
        for name in ("first", "second"):
            sids[await c.sub(f"turn.{name}")] = name
            await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.P", J({"batch": 2, "expires": 3 * SEC}),
                         reply=f"turn.{name}")
        await c.sync()
        await asyncio.sleep(0.3)
        for i in range(4):
            await c.send(f"orders.{i}", f"m{i}".encode())
        got = await c.collect(n=4, timeout=3)
        assert [(sids.get(x.sid), x.data.decode()) for x in got] == [
            ("first", "m0"), ("second", "m1"), ("first", "m2"), ("second", "m3")]


# =========================================================================================
# 3b. Priority groups (ADR-42): pinned_client, overflow, prioritized
# =========================================================================================

_PIN_HDR = re.compile(r"Nats-Pin-Id: ([0-9A-Za-z]*)")


def pin_of(msg) -> str:
    """The Nats-Pin-Id a delivery carries."""
    m = _PIN_HDR.search((msg.hdr or b"").decode())
    assert m, msg
    return m[1]


def mask_pin(text: str) -> str:
    """Pin ids (in delivery headers and in info) → ``@PIN@``."""
    text = _PIN_HDR.sub("Nats-Pin-Id: @PIN@", text)
    return re.sub(r'"pinned_client_id":"[0-9A-Za-z]+"', '"pinned_client_id":"@PIN@"', text)


def pm(i: int, consumer: str, sseq: int, cseq: int, pending: int) -> str:
    """A pinned delivery of orders.<i> as its masked line."""
    return msg_line(f"orders.{i}", f"m{i}", "ORDERS", consumer, 1, sseq, cseq, pending,
                    hdr="NATS/1.0\r\nNats-Pin-Id: @PIN@\r\n\r\n")


async def pull_masked(c, consumer: str, req: dict, **kw) -> list[str]:
    kw.setdefault("timeout", 3)
    return [mask_pin(x) for x in await c.pull_lines("ORDERS", consumer, J(req), **kw)]


def pinned_cfg(ttl: int) -> dict:
    return ccfg(durable="PIN", req_level="1", priority_groups=["g1"], priority_policy="pinned_client",
                priority_timeout=ttl)


def pin_state(info: str) -> tuple[str, str]:
    """(pinned_client_id, pinned_ts) of the info's only priority group."""
    (g,) = json.loads(info.replace("<N>", "0"))["priority_groups"]
    assert g["group"] == "g1", info
    return g.get("pinned_client_id", ""), g["pinned_ts"]


async def pin_advisory_subs(c) -> None:
    for kind in ("PINNED", "UNPINNED"):
        await c.sub(f"$JS.EVENT.ADVISORY.CONSUMER.{kind}.ORDERS.PIN")


async def advisories(c, n: int) -> list[tuple[str, str, str]]:
    """The next ``n`` pin advisories, as (subject, type, reason or ``pinned_id``); the
    client's other frames (its inbox sees the other client's API answers) are skipped."""
    got = []
    deadline = time.monotonic() + 3
    while len(got) < n:
        m = await c.msg(deadline)
        if m is not None and m.subject.startswith("$JS.EVENT."):
            got.append(m)
    out = []
    for m in got:
        d = json.loads(m.data)
        assert (d["account"], d["stream"], d["consumer"], d["group"]) == ("$G", "ORDERS", "PIN", "g1"), d
        out.append((m.subject, d["type"], d.get("reason") or ("pinned_id" if d.get("pinned_id") else "")))
    return out


@async_test()
async def test_priority_pinned_client(js_server):
    """The first request in the group gets a pin; only requests carrying it are served
    (a wrong id gets 423 at once, none waits); UNPIN ends it and the old id gets 423
    Nats-Wrong-Pin-Id when the next message would go to it; the next request gets a new
    pin. Info and the pin advisories follow each step."""
    async with cclient(js_server) as c, cclient(js_server) as adv:
        await orders(c, 4)
        await pin_advisory_subs(adv)
        await make_consumer(c, "ORDERS", "PIN", ack_policy="explicit", priority_groups=["g1"],
                            priority_policy="pinned_client", priority_timeout=30 * SEC)
        info = await c.info("ORDERS", "PIN")
        assert pin_state(info) == ("", "0001-01-01T00:00:00Z")
        # Group checks on the request.
        assert await pull_masked(c, "PIN", {"batch": 1, "expires": SEC}) == [
            status_line("400 Bad Request - Priority Group missing")]
        assert await pull_masked(c, "PIN", {"batch": 1, "expires": SEC, "group": "zz"}) == [
            status_line("400 Bad Request - Invalid Priority Group")]
        assert await pull_masked(c, "PIN", {"batch": 1, "expires": SEC, "group": "g1", "min_pending": 2}) == [
            status_line("400 Bad Request - Not a Overflow Priority consumer")]
        # Pin assignment.
        inbox, got = await c.pull("ORDERS", "PIN", J({"batch": 1, "expires": SEC, "group": "g1"}), n=1)
        assert [mask_pin(x) for x in lines(got, inbox)] == [pm(0, "PIN", 1, 1, 3)]
        pin = pin_of(got[0])
        assert len(pin) == 22
        info = await c.info("ORDERS", "PIN")
        assert pin_state(info) == (pin, "<TS>")
        assert_json(mask_pin(info), cinfo_json(
            "ORDERS", "PIN", pinned_cfg(30 * SEC), delivered=(1, 1), num_ack_pending=1, num_pending=3,
            extra={"priority_groups": [{"group": "g1", "pinned_client_id": "@PIN@", "pinned_ts": "<TS>"}]}))
        # A wrong id is refused at once; no id waits (and times out) while the pin holds.
        assert await pull_masked(c, "PIN", {"batch": 1, "expires": SEC, "group": "g1", "id": "bogus"}) == [
            status_line("423 Nats-Pin-Id mismatch")]
        assert await pull_masked(c, "PIN", {"batch": 1, "expires": 300 * MS, "group": "g1"}) == [timeout408(1)]
        inbox, got = await c.pull("ORDERS", "PIN", J({"batch": 1, "expires": SEC, "group": "g1", "id": pin}), n=1)
        assert [mask_pin(x) for x in lines(got, inbox)] == [pm(1, "PIN", 2, 2, 2)] and pin_of(got[0]) == pin
        # UNPIN, with its errors.
        unpin = API + "consumer_unpin_response"
        assert_json(await c.capi("CONSUMER.UNPIN.ORDERS.PIN", {"group": "nope"}),
                    cerr("consumer_unpin_response", 400, 10160,
                         "Provided priority group does not exist for this consumer"))
        assert_json(await c.capi("CONSUMER.UNPIN.ORDERS.PIN", {}),
                    cerr("consumer_unpin_response", 400, 10025, "invalid JSON: consumer group not specified"))
        assert_json(await c.capi("CONSUMER.UNPIN.ORDERS.NOPE", {"group": "g1"}),
                    cerr("consumer_unpin_response", 404, 10014, "consumer not found"))
        assert_json(await c.capi("CONSUMER.UNPIN.ORDERS.PIN", {"group": "g1"}), go_json({"type": unpin}))
        assert pin_state(await c.info("ORDERS", "PIN")) == ("", "0001-01-01T00:00:00Z")
        # The old id: 423 Nats-Wrong-Pin-Id once a message would go to it.
        assert await pull_masked(c, "PIN", {"batch": 1, "expires": SEC, "group": "g1", "id": pin}) == [
            status_line("423 Nats-Wrong-Pin-Id", ("Nats-Pending-Messages", 1), ("Nats-Pending-Bytes", 0))]
        inbox, got = await c.pull("ORDERS", "PIN", J({"batch": 1, "expires": SEC, "group": "g1"}), n=1)
        assert [mask_pin(x) for x in lines(got, inbox)] == [pm(2, "PIN", 3, 3, 1)]
        new_pin = pin_of(got[0])
        assert new_pin != pin and pin_state(await c.info("ORDERS", "PIN")) == (new_pin, "<TS>")
        pre = "$JS.EVENT.ADVISORY.CONSUMER."
        assert await advisories(adv, 3) == [
            (pre + "PINNED.ORDERS.PIN", "io.nats.jetstream.advisory.v1.consumer_group_pinned", "pinned_id"),
            (pre + "UNPINNED.ORDERS.PIN", "io.nats.jetstream.advisory.v1.consumer_group_unpinned", "admin"),
            (pre + "PINNED.ORDERS.PIN", "io.nats.jetstream.advisory.v1.consumer_group_pinned", "pinned_id"),
        ]


@async_test()
async def test_priority_pinned_ttl_expiry(js_server):
    """priority_timeout 500ms: without a request carrying the pin, it lapses (info shows
    no pin, an unpinned advisory says timeout) and the next request gets a new pin."""
    async with cclient(js_server) as c, cclient(js_server) as adv:
        await orders(c, 3)
        await pin_advisory_subs(adv)
        await make_consumer(c, "ORDERS", "PIN", ack_policy="explicit", priority_groups=["g1"],
                            priority_policy="pinned_client", priority_timeout=500 * MS)
        inbox, got = await c.pull("ORDERS", "PIN", J({"batch": 1, "expires": SEC, "group": "g1"}), n=1)
        pin = pin_of(got[0])
        assert pin_state(await c.info("ORDERS", "PIN"))[0] == pin
        await asyncio.sleep(0.9)
        assert pin_state(await c.info("ORDERS", "PIN")) == ("", "0001-01-01T00:00:00Z")
        inbox, got = await c.pull("ORDERS", "PIN", J({"batch": 1, "expires": SEC, "group": "g1"}), n=1)
        assert [mask_pin(x) for x in lines(got, inbox)] == [pm(1, "PIN", 2, 2, 1)]
        assert pin_of(got[0]) != pin
        pre = "$JS.EVENT.ADVISORY.CONSUMER."
        assert await advisories(adv, 3) == [
            (pre + "PINNED.ORDERS.PIN", "io.nats.jetstream.advisory.v1.consumer_group_pinned", "pinned_id"),
            (pre + "UNPINNED.ORDERS.PIN", "io.nats.jetstream.advisory.v1.consumer_group_unpinned", "timeout"),
            (pre + "PINNED.ORDERS.PIN", "io.nats.jetstream.advisory.v1.consumer_group_pinned", "pinned_id"),
        ]


@async_test()
async def test_priority_overflow(js_server):
    """overflow: a request with min_pending / min_ack_pending is served only while the
    backlog (messages pending, acks pending) reaches either; without them it is served."""
    async with cclient(js_server) as c:
        await orders(c, 4)
        await make_consumer(c, "ORDERS", "OV", ack_policy="explicit", priority_groups=["g1"],
                            priority_policy="overflow")
        req = lambda **kw: {"batch": 1, "expires": 300 * MS, "group": "g1", **kw}  # noqa: E731
        assert await c.pull_lines("ORDERS", "OV", J(req(min_pending=5))) == [timeout408(1)]
        assert await c.pull_lines("ORDERS", "OV", J(req(min_pending=4))) == [m(0, "OV", 1, 1, 1, 3)]
        # 3 pending now: min_pending 4 waits, min_ack_pending 1 (1 unacked) is served.
        assert await c.pull_lines("ORDERS", "OV", J(req(min_pending=4))) == [timeout408(1)]
        assert await c.pull_lines("ORDERS", "OV", J(req(min_pending=4, min_ack_pending=1))) == [
            m(1, "OV", 1, 2, 2, 2)]
        assert await c.pull_lines("ORDERS", "OV", J(req(min_ack_pending=3))) == [timeout408(1)]
        assert await c.pull_lines("ORDERS", "OV", J(req())) == [m(2, "OV", 1, 3, 3, 1)]
        assert await c.pull_lines("ORDERS", "OV", J(req(id="x"))) == [
            status_line("400 Bad Request - Not a Pinned Client Priority consumer")]
        summary_ = summary(await c.info("ORDERS", "OV"))
        assert summary_ == (3, 3, 0, 0, 3, 0, 0, 1)


@async_test()
async def test_priority_prioritized(js_server):
    """prioritized: waiting requests are served lowest priority number first, whatever
    their arrival order; within one priority in turn."""
    async with cclient(js_server) as c:
        await orders(c, 0)
        await make_consumer(c, "ORDERS", "PR", ack_policy="none", priority_groups=["g1"],
                            priority_policy="prioritized")
        assert await c.pull_lines("ORDERS", "PR", J({"batch": 1, "group": "g1", "priority": 10})) == [
            status_line("400 Bad Request - Priority must be between 0 and 9")]
        sids = {}
        for name, prio in [("low5", 5), ("high1", 1), ("mid3", 3), ("high1b", 1)]:
            inbox = f"prio.{name}"
            sids[await c.sub(inbox)] = name
            await c.send("$JS.API.CONSUMER.MSG.NEXT.ORDERS.PR",
                         J({"batch": 2, "expires": 3 * SEC, "group": "g1", "priority": prio}), reply=inbox)
        await c.sync()
        await asyncio.sleep(0.3)
        for i in range(6):
            await c.send(f"orders.{i}", f"m{i}".encode())
        got = await c.collect(n=6, timeout=3)
        assert [(sids.get(x.sid), x.data.decode()) for x in got] == [
            ("high1", "m0"), ("high1b", "m1"), ("high1", "m2"), ("high1b", "m3"), ("mid3", "m4"), ("mid3", "m5")]


# =========================================================================================
# 4. Acks
# =========================================================================================


async def pulled(c, consumer: str, n: int, stream: str = "ORDERS"):
    _, got = await c.pull(stream, consumer, J({"batch": n}), n=n)
    assert len(got) == n and all(x.reply for x in got), got
    return got


async def check(c, consumer: str, expected: tuple) -> None:
    assert summary(await c.info("ORDERS", consumer)) == expected


def confirmed(msg) -> None:
    """The empty confirmation of an ack sent with a reply subject."""
    assert msg is not None and msg.hdr is None and msg.data == b"" and msg.reply is None, msg


@async_test()
async def test_ack_basic(js_server):
    async with cclient(js_server) as c:
        await orders(c, 8)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        ms = await pulled(c, "P", 5)
        assert [x.line() for x in ms] == [m(i, "P", 1, i + 1, i + 1, 7 - i) for i in range(5)]
        await check(c, "P", (5, 5, 0, 0, 5, 0, 0, 3))
        confirmed(await c.ack(ms[1].reply, "+ACK"))  # out of order: the floor stays
        await check(c, "P", (5, 5, 0, 0, 4, 0, 0, 3))
        confirmed(await c.ack(ms[1].reply, "+ACK"))  # again: still confirmed, no change
        await check(c, "P", (5, 5, 0, 0, 4, 0, 0, 3))
        await c.ack(ms[0].reply, "", confirm=False)  # empty body = ack; the floor moves past 2
        await check(c, "P", (5, 5, 2, 2, 3, 0, 0, 3))
        confirmed(await c.ack(ms[2].reply, "+OK"))
        await check(c, "P", (5, 5, 3, 3, 2, 0, 0, 3))
        await c.ack(ms[3].reply, "+BOGUS", confirm=False)  # unknown body: ignored
        await check(c, "P", (5, 5, 3, 3, 2, 0, 0, 3))
        await c.ack("$JS.ACK.ORDERS.P.1.5", "+ACK", confirm=False)  # too few tokens: ignored
        await check(c, "P", (5, 5, 3, 3, 2, 0, 0, 3))
        assert_json(await c.info("ORDERS", "P"), cinfo_json(
            "ORDERS", "P", ccfg(durable="P"), delivered=(5, 5), ack_floor=(3, 3), num_ack_pending=2,
            num_pending=3))


@async_test()
async def test_ack_nak(js_server):
    async with cclient(js_server) as c:
        await orders(c, 4)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        ms = await pulled(c, "P", 3)
        confirmed(await c.ack(ms[0].reply, "+ACK"))
        confirmed(await c.ack(ms[1].reply, "-NAK"))
        await check(c, "P", (3, 3, 1, 1, 2, 0, 0, 1))
        got = await c.pull_lines("ORDERS", "P", b"", n=1, quiet=0.1)
        assert got == [m(1, "P", 2, 2, 4, 1)]
        await check(c, "P", (4, 3, 1, 1, 2, 1, 0, 1))
        # A NAK with a delay: the message comes back only after it.
        _, got = await c.pull("ORDERS", "P", b"1", n=1)
        assert lines(got) == [m(3, "P", 1, 4, 5, 0)]
        later = got[0]
        got = await c.pull_lines("ORDERS", "P", J({"batch": 1, "expires": 200 * MS}))
        assert got == [timeout408(1)]
        # No reply: a confirmation may wait for a disk sync, which would eat into the delay.
        await c.ack(later.reply, '-NAK {"delay": 600000000}', confirm=False)
        got = await c.pull_lines("ORDERS", "P", J({"batch": 1, "expires": 250 * MS}))
        assert got == [timeout408(1)]
        got = await c.pull_lines("ORDERS", "P", J({"batch": 1, "expires": SEC}), n=1)
        assert got == [m(3, "P", 2, 4, 6, 0)]
        await check(c, "P", (6, 4, 1, 1, 3, 2, 0, 0))


@async_test()
async def test_ack_wpi_term(js_server):
    async with cclient(js_server) as c:
        await orders(c, 4)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        ms = await pulled(c, "P", 3)
        confirmed(await c.ack(ms[0].reply, "+WPI"))
        await check(c, "P", (3, 3, 0, 0, 3, 0, 0, 1))
        confirmed(await c.ack(ms[0].reply, "+TERM reason text"))
        await check(c, "P", (3, 3, 1, 1, 2, 0, 0, 1))
        confirmed(await c.ack(ms[2].reply, "+TERM"))
        await check(c, "P", (3, 3, 1, 1, 1, 0, 0, 1))
        confirmed(await c.ack(ms[1].reply, "+ACK"))
        await check(c, "P", (3, 3, 3, 3, 0, 0, 0, 1))
        # A terminated message is not redelivered.
        got = await c.pull_lines("ORDERS", "P", J({"batch": 5, "no_wait": True}))
        assert got == [m(3, "P", 1, 4, 4, 0), status_line("404 No Messages")]


@async_test()
async def test_ack_term_after_redelivery(js_server):
    """The sequence of the probe that found it: 5 delivered, ack 1 and 2, NAK 3 and
    re-pull it (consumer seq 6), NAK it with a delay, pull 6 and the redelivered 3
    (consumer seq 8), then +WPI and +TERM of 4."""
    async with cclient(js_server) as c:
        await orders(c, 8)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        ms = await pulled(c, "P", 5)
        confirmed(await c.ack(ms[1].reply, "+ACK"))
        await c.ack(ms[0].reply, "", confirm=False)
        confirmed(await c.ack(ms[2].reply, "-NAK"))
        m3 = (await pulled(c, "P", 1))[0]
        assert m3.line() == m(2, "P", 2, 3, 6, 3)
        await c.ack(m3.reply, '-NAK {"delay": 400000000}', confirm=False)
        _, got = await c.pull("ORDERS", "P", J({"batch": 1, "expires": 200 * MS}), n=1)
        assert lines(got) == [m(5, "P", 1, 6, 7, 2)]
        await asyncio.sleep(0.5)  # past the NAK delay: the redelivery goes first
        _, got = await c.pull("ORDERS", "P", J({"batch": 1, "expires": SEC}), n=1)
        assert lines(got) == [m(2, "P", 3, 3, 8, 2)]
        await check(c, "P", (8, 6, 2, 2, 4, 1, 0, 2))
        confirmed(await c.ack(ms[3].reply, "+WPI"))
        confirmed(await c.ack(ms[3].reply, "+TERM reason text"))
        await check(c, "P", (8, 6, 2, 2, 3, 1, 0, 2))
        confirmed(await c.ack(got[0].reply, "+TERM"))
        await check(c, "P", (8, 6, 4, 4, 2, 0, 0, 2))


@async_test()
async def test_ack_next(js_server):
    async with cclient(js_server) as c:
        await orders(c, 5)
        await make_consumer(c, "ORDERS", "P", ack_policy="explicit")
        first = (await pulled(c, "P", 1))[0]
        inbox = c._inbox()
        await c.send(first.reply, "+NXT", reply=inbox)
        got = await c.collect(n=1, timeout=2, quiet=0.1)
        assert lines(got) == [m(1, "P", 1, 2, 2, 3)]
        await check(c, "P", (2, 2, 1, 1, 1, 0, 0, 3))
        inbox = c._inbox()
        await c.send(got[0].reply, '+NXT {"batch":2}', reply=inbox)
        got = await c.collect(n=2, timeout=2, quiet=0.1)
        assert lines(got) == [m(2, "P", 1, 3, 3, 2), m(3, "P", 1, 4, 4, 1)]
        await check(c, "P", (4, 4, 2, 2, 2, 0, 0, 1))
        inbox = c._inbox()
        await c.send(got[1].reply, "+NXT 5", reply=inbox)
        got2 = await c.collect(n=1, timeout=2, quiet=0.1)
        assert lines(got2) == [m(4, "P", 1, 5, 5, 0)]
        # The rest of the batch of 5 is still waiting.
        await check(c, "P", (5, 5, 2, 2, 2, 0, 1, 0))


@async_test()
async def test_ack_all_policy(js_server):
    async with cclient(js_server) as c:
        await orders(c, 5)
        await make_consumer(c, "ORDERS", "A", ack_policy="all")
        ms = await pulled(c, "A", 4)
        confirmed(await c.ack(ms[2].reply, "+ACK"))
        assert summary(await c.info("ORDERS", "A")) == (4, 4, 3, 3, 1, 0, 0, 1)
        confirmed(await c.ack(ms[0].reply, "+ACK"))  # below the floor: no change
        assert summary(await c.info("ORDERS", "A")) == (4, 4, 3, 3, 1, 0, 0, 1)


@pytest.mark.parametrize("case", ["deliveries", "state"])
@async_test()
async def test_ack_wait_redelivery_and_max_deliver(js_server, case):
    """ack_wait 300ms, max_deliver 2: redelivered once after the wait, then no more
    ("deliveries"); the consumer state afterwards ("state")."""
    async with cclient(js_server) as c:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "W", ack_policy="explicit", ack_wait=300 * MS, max_deliver=2)
        got = await c.pull_lines("ORDERS", "W", J({"batch": 1, "expires": SEC}), n=1)
        t0 = time.monotonic()
        assert got == [m(0, "W", 1, 1, 1, 0)]
        got = await c.pull_lines("ORDERS", "W", J({"batch": 1, "expires": 2 * SEC}), n=1)
        assert got == [m(0, "W", 2, 1, 2, 0)]
        assert time.monotonic() - t0 >= 0.25, "redelivered before the ack wait"
        got = await c.pull_lines("ORDERS", "W", J({"batch": 1, "expires": 700 * MS}))
        assert got == [timeout408(1)]
        if case == "state":
            # Out of deliveries: no longer pending an ack, but the floor does not move.
            assert summary(await c.info("ORDERS", "W")) == (2, 1, 0, 0, 0, 1, 0, 0)


@async_test()
async def test_plain_nak_redelivers_at_once_despite_backoff(js_server):
    """A plain -NAK queues the message for redelivery now; the backoff times only
    redeliveries after an ack wait ran out (nats-server's processNak)."""
    async with cclient(js_server) as c:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "B", ack_policy="explicit", backoff=[2 * SEC, 4 * SEC],
                            max_deliver=4)
        first = (await pulled(c, "B", 1))[0]
        await c.ack(first.reply, "-NAK", confirm=False)
        t0 = time.monotonic()
        got = await c.pull_lines("ORDERS", "B", J({"batch": 1, "expires": 1500 * MS}), n=1)
        assert got == [m(0, "B", 2, 1, 2, 0)]
        assert time.monotonic() - t0 < 1.0, "redelivery waited for the backoff"


@async_test()
async def test_progress_after_the_ack_wait_ran_out_keeps_the_redelivery(js_server):
    """+WPI after the wait ran out does not take the message back from redelivery."""
    async with cclient(js_server) as c:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "W", ack_policy="explicit", ack_wait=300 * MS)
        first = (await pulled(c, "W", 1))[0]
        await asyncio.sleep(0.6)
        confirmed(await c.ack(first.reply, "+WPI"))
        got = await c.pull_lines("ORDERS", "W", J({"batch": 1, "expires": 200 * MS}), n=1)
        assert got == [m(0, "W", 2, 1, 2, 0)]


@async_test()
async def test_inactive_pull_consumer_waits_for_its_pending_acks(js_server):
    """A pull consumer whose worker holds an unacked message is not deleted as inactive
    before that message's ack wait has run out (nats-server's deleteNotActive: the
    threshold counts from the last ack still expected)."""
    async with cclient(js_server) as c:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "I", ack_policy="explicit", ack_wait=1500 * MS,
                            inactive_threshold=200 * MS)
        t0 = time.monotonic()
        await pulled(c, "I", 1)
        await asyncio.sleep(1.2)
        assert '"error"' not in await c.info("ORDERS", "I"), "deleted with an ack pending"
        gone = None
        while time.monotonic() - t0 < 8:
            if '"error"' in await c.info("ORDERS", "I"):
                gone = time.monotonic() - t0
                break
            await asyncio.sleep(0.1)
        # Past the ack wait (1.5 s), its redelivery's wait (1.5 s more) and the threshold.
        assert gone is not None and gone >= 3.0, gone


@async_test()
async def test_acks_of_an_ack_none_consumer_find_no_responders(js_server):
    """nats-server does not listen for acks of an `ack_policy: none` consumer: every ack
    form, +NXT included, is answered by no responders and changes nothing."""
    async with cclient(js_server) as c:
        await orders(c, 2)
        await make_consumer(c, "ORDERS", "N", ack_policy="none")
        first = (await pulled(c, "N", 1))[0]
        for body in ("+ACK", "-NAK", "+TERM", "+NXT"):
            f = await c.req(first.reply, body)
            assert f.hdr is not None and f.hdr.startswith(b"NATS/1.0 503"), (body, f.hdr)
        info = json.loads(await c.info("ORDERS", "N"))
        assert info["num_waiting"] == 0 and info["num_redelivered"] == 0, info


@async_test()
async def test_ack_metric_names_the_delivery_acknowledged(js_server):
    """A sampled ack of a redelivered message reports the redelivery's consumer
    sequence."""
    async with cclient(js_server) as c, cclient(js_server) as w:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "M", ack_policy="explicit", sample_freq="100%")
        await w.sub("$JS.EVENT.METRIC.CONSUMER.ACK.ORDERS.M")
        await w.sync()
        first = (await pulled(c, "M", 1))[0]
        await c.ack(first.reply, "-NAK", confirm=False)
        again = (await pulled(c, "M", 1))[0]
        confirmed(await c.ack(again.reply, "+ACK"))
        deadline = time.monotonic() + 3
        while True:
            mm = await w.msg(deadline)
            if mm is not None and mm.subject.startswith("$JS.EVENT.METRIC."):
                break
        d = json.loads(mm.data)
        assert (d["consumer_seq"], d["stream_seq"], d["deliveries"]) == (2, 1, 2), d


@async_test()
async def test_update_of_a_durable_by_name_only_keeps_it_durable(js_server):
    """An update naming a durable by `name` alone does not make it an ephemeral with
    the 5 s threshold."""
    async with cclient(js_server) as c:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "U", ack_policy="explicit")
        text = await c.capi("CONSUMER.CREATE.ORDERS.U", create_body(
            "ORDERS", "update", name="U", ack_policy="explicit"))
        cfg = json.loads(text)["config"]
        assert "inactive_threshold" not in cfg, cfg
        assert cfg["name"] == "U"


# =========================================================================================
# 5. Push consumers
# =========================================================================================


@async_test()
async def test_push_deliveries_and_heartbeats(js_server):
    async with cclient(js_server) as c:
        await create(c, "ORDERS", subjects=["orders.>"])
        for i in range(3):
            await store(c, f"orders.{i}", f"m{i}", headers=[("K", "v")] if i == 1 else None)
        sid = await c.sub("push.a")
        got = await c.capi("CONSUMER.CREATE.ORDERS.PA", create_body(
            "ORDERS", name="PA", deliver_subject="push.a", ack_policy="explicit", idle_heartbeat=500 * MS,
            flow_control=True))
        cfg = ccfg(name="PA", push=True, deliver_subject="push.a", idle_heartbeat=500 * MS, flow_control=True)
        assert_json(mask_state(got), mask_state(cresp("PA", cfg, num_pending=3, push_bound=True)))
        got = await c.collect(n=3, timeout=2)
        assert lines(got) == [
            msg_line("orders.0", "m0", "ORDERS", "PA", 1, 1, 1, 2, sid=sid),
            msg_line("orders.1", "m1", "ORDERS", "PA", 1, 2, 2, 1, sid=sid, hdr="NATS/1.0\r\nK: v\r\n\r\n"),
            msg_line("orders.2", "m2", "ORDERS", "PA", 1, 3, 3, 0, sid=sid),
        ]
        hb = await c.collect(frames=1, timeout=1.2, stop_on_status=False)
        assert lines(hb) == [status_line("100 Idle Heartbeat", ("Nats-Last-Consumer", 3), ("Nats-Last-Stream", 3),
                                         sid=sid, subject="push.a")]
        assert_json(await c.info("ORDERS", "PA"), cinfo_json(
            "ORDERS", "PA", cfg, delivered=(3, 3), num_ack_pending=3, push_bound=True))
        # Live delivery, and an ack.
        await c.send("orders.9", "live")
        got = [x for x in await c.collect(n=1, timeout=2) if not x.status]
        assert lines(got) == [msg_line("orders.9", "live", "ORDERS", "PA", 1, 4, 4, 0, sid=sid)]
        await c.ack(got[0].reply, "+ACK", confirm=False)
        c.stash.clear()
        d = summary(await c.info("ORDERS", "PA"))
        assert d == (4, 4, 0, 0, 3, 0, 0, 0)


@async_test()
async def test_push_without_interest_waits(js_server):
    async with cclient(js_server) as c:
        await orders(c, 2)
        got = await c.capi("CONSUMER.CREATE.ORDERS.PD", create_body("ORDERS", durable_name="PD",
                                                                      deliver_subject="push.d"))
        cfg = ccfg(durable="PD", push=True, ack="none", deliver_subject="push.d")
        assert_json(got, cresp("PD", cfg, num_pending=2))
        sid = await c.sub("push.d")
        got = await c.collect(n=2, timeout=2, quiet=0.2)
        assert lines(got) == [msg_line("orders.0", "m0", "ORDERS", "PD", 1, 1, 1, 1, sid=sid),
                              msg_line("orders.1", "m1", "ORDERS", "PD", 1, 2, 2, 0, sid=sid)]
        assert_json(await c.info("ORDERS", "PD"), cinfo_json(
            "ORDERS", "PD", cfg, delivered=(2, 2), ack_floor=(2, 2), push_bound=True))


@async_test()
async def test_push_headers_only(js_server):
    async with cclient(js_server) as c:
        await create(c, "ORDERS", subjects=["orders.>"])
        await store(c, "orders.0", "m0")
        await store(c, "orders.1", "payload-1", headers=[("K", "v")])
        sid = await c.sub("push.h")
        await make_consumer(c, "ORDERS", "PH", deliver_subject="push.h", headers_only=True)
        got = await c.collect(n=2, timeout=2, quiet=0.2)
        assert lines(got) == [
            msg_line("orders.0", "", "ORDERS", "PH", 1, 1, 1, 1, sid=sid, hdr="NATS/1.0\r\nNats-Msg-Size: 2\r\n\r\n"),
            msg_line("orders.1", "", "ORDERS", "PH", 1, 2, 2, 0, sid=sid,
                     hdr="NATS/1.0\r\nK: v\r\nNats-Msg-Size: 9\r\n\r\n"),
        ]


@async_test()
async def test_push_deliver_group(js_server):
    async with cclient(js_server) as c:
        await orders(c, 6)
        s1 = await c.sub("push.g", "grp")
        s2 = await c.sub("push.g", "grp")
        got = await c.capi("CONSUMER.CREATE.ORDERS.PG", create_body(
            "ORDERS", durable_name="PG", deliver_subject="push.g", deliver_group="grp", ack_policy="explicit"))
        cfg = ccfg(durable="PG", push=True, deliver_subject="push.g", deliver_group="grp")
        assert_json(mask_state(got), mask_state(cresp("PG", cfg, num_pending=6, push_bound=True)))
        got = await c.collect(n=6, timeout=2, quiet=0.2)
        assert sorted(x.data.decode() for x in got) == [f"m{i}" for i in range(6)]
        assert {x.sid for x in got} <= {s1, s2}
        for x in got:
            tok = x.ack_tokens()
            assert tok[:5] == ["$JS", "ACK", "ORDERS", "PG", "1"] and tok[5] == tok[6], tok
        assert_json(await c.info("ORDERS", "PG"), cinfo_json(
            "ORDERS", "PG", cfg, delivered=(6, 6), num_ack_pending=6, push_bound=True))
        # A plain (non-queue) subscriber on the deliver subject does not bind a grouped consumer.


@async_test(timeout=30)
async def test_push_flow_control(js_server):
    """40 × 60 kB: a FlowControl request after 18 messages, delivery stalls at 35 until the
    client answers it, then the rest follow."""
    async with cclient(js_server) as c:
        await create(c, "BIG", subjects=["big"])
        sid = await c.sub("push.fc")
        await make_consumer(c, "BIG", "FC", durable=False, deliver_subject="push.fc", flow_control=True,
                            idle_heartbeat=2 * SEC)
        data = "x" * 60000
        for _ in range(40):
            await c.send("big", data)
        got = await c.collect(frames=36, timeout=5, stop_on_status=False, quiet=0.3)
        plain = [x for x in got if x.hdr is None]
        fcs = [(i, x) for i, x in enumerate(got) if x.status == "100 FlowControl Request"]
        assert len(fcs) == 1, [x.status for x in got if x.status]
        i, fc = fcs[0]
        assert i == 18 and fc.line() == f"{sid} push.fc $JS.FC.BIG.FC.<ID> 'NATS/1.0 100 FlowControl Request\\r\\n\\r\\n' ''"
        assert len(plain) == 35, len(plain)
        await c.send(fc.reply, b"")
        rest = await c.collect(frames=5, timeout=5, stop_on_status=False, quiet=0.2)
        assert [x.hdr for x in rest] == [None] * 5
        seqs = [int(x.ack_tokens()[5]) for x in plain + rest]
        assert seqs == list(range(1, 41))


# =========================================================================================
# 6. nats-py client flows
# =========================================================================================


@async_test()
async def test_client_pull_fetch(js_server):
    s = js_server
    nc = await connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        for i in range(5):
            ack = await js.publish(f"orders.{i}", f"m{i}".encode())
            assert ack.stream == "ORDERS" and ack.seq == i + 1
        psub = await js.pull_subscribe("orders.>", durable="WORKER")
        msgs = await psub.fetch(3, timeout=2)
        assert [x.data for x in msgs] == [b"m0", b"m1", b"m2"]
        md = msgs[0].metadata
        assert (md.sequence.stream, md.sequence.consumer, md.num_delivered, md.num_pending) == (1, 1, 1, 4)
        assert md.stream == "ORDERS" and md.consumer == "WORKER"
        for x in msgs:
            await x.ack_sync()
        info = await js.consumer_info("ORDERS", "WORKER")
        assert info.ack_floor.stream_seq == 3 and info.num_pending == 2 and info.num_ack_pending == 0
        msgs = await psub.fetch(10, timeout=1)
        assert [x.data for x in msgs] == [b"m3", b"m4"]
        await msgs[0].nak()
        again = await psub.fetch(1, timeout=2)
        assert again[0].data == b"m3" and again[0].metadata.num_delivered == 2
        with pytest.raises(nats.errors.TimeoutError):
            await psub.fetch(1, timeout=0.5)
    finally:
        await nc.close()


@async_test()
async def test_client_push_subscribe(js_server):
    s = js_server
    nc = await connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        for i in range(3):
            await js.publish(f"orders.{i}", f"m{i}".encode())
        sub = await js.subscribe("orders.>", durable="PUSHER", manual_ack=True)
        got = []
        for _ in range(3):
            x = await sub.next_msg(timeout=2)
            got.append(x.data)
            await x.ack()
        assert got == [b"m0", b"m1", b"m2"]
        await js.publish("orders.9", b"live")
        x = await sub.next_msg(timeout=2)
        assert x.data == b"live" and x.metadata.sequence.stream == 4
        await x.ack_sync()
        info = await sub.consumer_info()
        assert info.delivered.stream_seq == 4 and info.ack_floor.stream_seq == 4 and info.push_bound
        # Queue subscription: a deliver group.
        q1 = await js.subscribe("orders.>", queue="workers", manual_ack=True)
        q2 = await js.subscribe("orders.>", queue="workers", manual_ack=True)
        seen = []
        deadline = time.monotonic() + 3
        while len(seen) < 4 and time.monotonic() < deadline:
            for q in (q1, q2):
                try:
                    y = await q.next_msg(timeout=0.1)
                    seen.append(y.data)
                    await y.ack()
                except nats.errors.TimeoutError:
                    pass
        assert sorted(seen) == [b"live", b"m0", b"m1", b"m2"]
    finally:
        await nc.close()


@async_test()
async def test_client_ordered_consumer(js_server):
    s = js_server
    nc = await connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        for i in range(20):
            await js.publish(f"orders.{i % 3}", f"m{i}".encode())
        sub = await js.subscribe("orders.>", ordered_consumer=True)
        got = [(await sub.next_msg(timeout=2)).data for _ in range(20)]
        assert got == [f"m{i}".encode() for i in range(20)]
        info = await sub.consumer_info()
        cfg = info.config
        assert str(getattr(cfg.ack_policy, "value", cfg.ack_policy)) == "none"
        assert str(getattr(cfg.deliver_policy, "value", cfg.deliver_policy)) == "all"
        assert cfg.flow_control and cfg.mem_storage and cfg.durable_name is None
    finally:
        await nc.close()


@async_test()
async def test_client_durable_resumes_after_restart(start_js_server):
    s = start_js_server()
    nc = await connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        for i in range(6):
            await js.publish(f"orders.{i}", f"m{i}".encode())
        psub = await js.pull_subscribe("orders.>", durable="DUR")
        msgs = await psub.fetch(4, timeout=2)
        for x in msgs[:3]:
            await x.ack_sync()
        # The 4th stays unacked.
    finally:
        await nc.close()
    s.stop()
    s2 = start_js_server(store_dir=s.store_dir)
    nc = await connect(s2.url)
    try:
        js = nc.jetstream()
        info = await js.consumer_info("ORDERS", "DUR")
        assert info.config.durable_name == "DUR"
        assert (info.delivered.stream_seq, info.ack_floor.stream_seq) == (4, 3)
        assert (info.num_ack_pending, info.num_pending) == (1, 2)
        psub = await js.pull_subscribe("orders.>", durable="DUR")
        msgs = await psub.fetch(2, timeout=2)
        assert [x.data for x in msgs] == [b"m4", b"m5"]
        for x in msgs:
            await x.ack_sync()
        info = await js.consumer_info("ORDERS", "DUR")
        assert info.num_ack_pending == 1 and info.ack_floor.stream_seq == 3
    finally:
        await nc.close()


@async_test()
async def test_redelivery_count_and_max_deliver_across_restart(start_js_server):
    """ack_wait 300ms, max_deliver 3: two deliveries, a restart, the third delivery counts
    3, then none; out of deliveries it stays out of the pending set across another restart
    (the ack floor stays, it counts as redelivered)."""
    s = start_js_server()
    async with cclient(s) as c:
        await orders(c, 1)
        await make_consumer(c, "ORDERS", "D", ack_policy="explicit", ack_wait=300 * MS, max_deliver=3)
        assert await c.pull_lines("ORDERS", "D", J({"batch": 1, "expires": SEC}), n=1) == [m(0, "D", 1, 1, 1, 0)]
        assert await c.pull_lines("ORDERS", "D", J({"batch": 1, "expires": 2 * SEC}), n=1) == [
            m(0, "D", 2, 1, 2, 0)]
    s.stop()
    s = start_js_server(store_dir=s.store_dir)
    async with cclient(s) as c:
        assert summary(await c.info("ORDERS", "D")) == (2, 1, 0, 0, 1, 1, 0, 0)
        assert await c.pull_lines("ORDERS", "D", J({"batch": 1, "expires": 2 * SEC}), n=1) == [
            m(0, "D", 3, 1, 3, 0)]
        assert await c.pull_lines("ORDERS", "D", J({"batch": 1, "expires": 700 * MS})) == [timeout408(1)]
        assert summary(await c.info("ORDERS", "D")) == (3, 1, 0, 0, 0, 1, 0, 0)
    s.stop()
    s = start_js_server(store_dir=s.store_dir)
    async with cclient(s) as c:
        assert summary(await c.info("ORDERS", "D")) == (3, 1, 0, 0, 0, 1, 0, 0)
        assert await c.pull_lines("ORDERS", "D", J({"batch": 1, "expires": 700 * MS})) == [timeout408(1)]


@async_test()
async def test_client_work_queue(js_server):
    s = js_server
    nc = await connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="WQ", subjects=["jobs.>"], retention="workqueue")
        for i in range(4):
            await js.publish(f"jobs.{i}", f"j{i}".encode())
        psub = await js.pull_subscribe("jobs.>", durable="W")
        msgs = await psub.fetch(4, timeout=2)
        assert [x.data for x in msgs] == [b"j0", b"j1", b"j2", b"j3"]
        for x in msgs[:3]:
            await x.ack_sync()
        si = await js.stream_info("WQ")
        assert si.state.messages == 1 and si.state.first_seq == 4
        with pytest.raises(nats.js.errors.BadRequestError) as ei:
            await js.pull_subscribe("jobs.>", durable="W2")
        assert ei.value.err_code == 10100  # both filter on jobs.>: not unique
        await msgs[3].ack_sync()
        si = await js.stream_info("WQ")
        assert si.state.messages == 0
    finally:
        await nc.close()
