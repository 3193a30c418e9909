"""JetStream message schedules, side by side: each test runs against nats-server 2.15.1 and
natrium-server (the ``impl`` parameter) and asserts what nats-server was measured to do.

A message published with ``Nats-Schedule: <pattern>`` and ``Nats-Schedule-Target: <subject>``
into a stream created with ``allow_msg_schedules: true`` is stored as the *schedule* (with
``Nats-Rollup: sub`` appended, so a newer schedule on the same subject replaces it). When it
is due, the server stores a new message on the target subject (in the same stream; it is
not published on core NATS): the schedule's headers and payload — or those of the last
message on ``Nats-Schedule-Source`` — minus every ``Nats-Schedule*`` / ``Nats-Expected-*``
header, ``Nats-Msg-Id``, ``Nats-TTL`` and ``Nats-Rollup``, plus ``Nats-Scheduler: <schedule
subject>`` and ``Nats-Schedule-Next: purge`` (one-shot: the schedule subject is then purged)
or ``Nats-Schedule-Next: <next fire time, RFC 3339>`` (repeating: the schedule stays), then
``Nats-TTL`` / ``Nats-Rollup`` from ``Nats-Schedule-TTL`` / ``Nats-Schedule-Rollup``.

Covered: the config (API level 2, field position, rollups forced on, deny_purge forced off,
the mirror/source/counter/discard-new/pedantic refusals, enabling on update, no disabling);
``@at`` (future, past, zero time), ``@every`` (anchor rounding, ``Nats-Schedule-Next``
format, fractional intervals), 6-field cron and ``@hourly``-style names, time zones; the
source; TTL and rollup; replacing, deactivating (plain publish, delete, purge) and stopping
(``Nats-Schedule-Next: purge`` + ``Nats-Scheduler`` from a client) a schedule; a delivery
onto another schedule's subject; every publish error; a restart.

Timing rules measured: the schedule timer is never armed for less than 250 ms (a past or
nearly-due schedule fires 250 ms after it is stored, and after each run the next run is
at least 250 ms later); ``@every D`` first fires at round(store time to the second) + D and
then at round(previous due time) + D (Go rounding, half up), skipping ahead to
round(now) + D when that is already past (e.g. after a restart: one catch-up firing, no
burst); a cron pattern fires at the next matching second after the store time."""

from __future__ import annotations

import asyncio
import base64
import calendar
import datetime
import json
import re
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from jsutil import (API, api_error, assert_json, client, compact, create, create_resp, go_json,
                    info_resp, pub_error, state, state_of, stream_cfg, without_state)
from natsutil import assert_no_msg, async_test, connect, sync

SCHED = "Nats-Schedule"
TARGET = "Nats-Schedule-Target"
SOURCE = "Nats-Schedule-Source"
STTL = "Nats-Schedule-TTL"
SROLLUP = "Nats-Schedule-Rollup"
TZ = "Nats-Schedule-Time-Zone"
SCHEDULER = "Nats-Scheduler"
NEXT = "Nats-Schedule-Next"
ROLLUP = "Nats-Rollup"
MSGID = "Nats-Msg-Id"
TTL = "Nats-TTL"

FAR = "@at 2099-01-01T00:00:00Z"  # a valid schedule that never fires during a test

SEC = 1_000_000_000
SLACK = 5_000_000  # 5 ms: a fired message is never stored before its due time
LATE = 2_000_000_000  # generous upper bound for "fired on time" on a loaded 2-core CI machine


def ack(seq: int, stream: str = "S") -> str:
    return f'{{"stream":"{stream}","seq":{seq}}}'


def err(code: int, err_code: int, description: str, stream: str = "S") -> str:
    return pub_error(stream, code, err_code, description)


DISABLED_N = err(400, 10188, "message schedules is disabled", "N")
PATTERN = err(400, 10189, "message schedules pattern is invalid")
BAD_TARGET = err(400, 10190, "message schedules target is invalid")
BAD_TTL = err(400, 10191, "message schedules invalid per-message TTL")
BAD_ROLLUP = err(400, 10192, "message schedules invalid rollup")
BAD_SOURCE = err(400, 10203, "message schedules source is invalid")
BAD_SCHEDULER = err(400, 10212, "message schedules invalid scheduler")
BAD_SCHEDULER_N = err(400, 10212, "message schedules invalid scheduler", "N")
BAD_TZ = err(400, 10223, "message schedules time zone is invalid")
TTL_DISABLED = err(400, 10166, "per-message TTL is disabled")


# -- headers, sizes, times -----------------------------------------------------------------


def hdr(*pairs) -> str:
    return "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"


def fsize(subject: str, body: bytes, h: str | None) -> int:
    """File store accounting of one message."""
    return 30 + len(subject) + len(body) + (len(h) + 4 if h else 0)


def msize(subject: str, body: bytes, h: str | None) -> int:
    """Memory store accounting of one message."""
    return 16 + len(subject) + len(body) + (len(h) if h else 0)


_TS_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$")


def parse_ns(ts: str) -> int:
    m = _TS_RE.fullmatch(ts)
    assert m, f"not an RFC 3339 UTC timestamp: {ts!r}"
    secs = calendar.timegm(tuple(int(m[i]) for i in range(1, 7)))
    return secs * SEC + int((m[7] or "0").ljust(9, "0"))


def rfc3339(ns: int) -> str:
    """Go's time.RFC3339Nano of a UTC time: the fraction without trailing zeros."""
    s, frac = divmod(ns, SEC)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    return base + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def in_zone(ns: int, zone: str) -> str:
    """Go's RFC3339Nano of a whole-second time in a (non-UTC) zone: ``…T14:38:53+01:00``."""
    assert ns % SEC == 0
    return datetime.datetime.fromtimestamp(ns // SEC, ZoneInfo(zone)).isoformat()


def round_s(ns: int) -> int:
    """Go's Time.Round(time.Second): halfway values round up."""
    return (ns + SEC // 2) // SEC * SEC


def trunc_s(ns: int) -> int:
    return ns // SEC * SEC


def at_in(seconds: float) -> tuple[str, int]:
    """``@at`` a moment ``seconds`` from now (microsecond precision) and that moment in ns."""
    ns = (time.time_ns() + int(seconds * SEC)) // 1000 * 1000
    return "@at " + rfc3339(ns), ns


# -- reading the stream ---------------------------------------------------------------------


@dataclass
class Stored:
    seq: int
    subject: str
    hdr: str | None
    data: bytes
    time: str

    @property
    def ns(self) -> int:
        return parse_ns(self.time)

    @property
    def row(self) -> tuple:
        return (self.seq, self.subject, self.hdr, self.data)

    def header(self, key: str) -> str | None:
        for line in (self.hdr or "").split("\r\n")[1:]:
            if line.startswith(key + ": "):
                return line[len(key) + 2:]
        return None


async def get_msg(c, seq: int, stream: str = "S") -> Stored | None:
    f = await c.req(f"$JS.API.STREAM.MSG.GET.{stream}", compact({"seq": seq}))
    d = json.loads(f.data)
    if "error" in d:
        assert d["error"]["err_code"] == 10037, f.data
        return None
    m = d["message"]
    h = base64.b64decode(m["hdrs"]).decode() if "hdrs" in m else None
    return Stored(m["seq"], m["subject"], h, base64.b64decode(m.get("data", "")), m["time"])


async def raw_state(c, stream: str = "S") -> dict:
    return json.loads((await c.req(f"$JS.API.STREAM.INFO.{stream}")).data)["state"]


async def contents(c, stream: str = "S") -> list[Stored]:
    st = await raw_state(c, stream)
    out = []
    if st["last_seq"]:
        for seq in range(st["first_seq"], st["last_seq"] + 1):
            m = await get_msg(c, seq, stream)
            if m is not None:
                out.append(m)
    return out


async def wait_state(c, pred, timeout: float, what: str, stream: str = "S") -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = await raw_state(c, stream)
        if pred(st):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; state {st}")
        await asyncio.sleep(0.03)


async def assert_state(c, st: dict, stream: str = "S") -> None:
    got = state_of(await c.api(f"STREAM.INFO.{stream}"))
    want = go_json(st)
    assert got == want, f"stream {stream} state\n  got      {got}\n  expected {want}"


def exact_state(msgs, size=fsize, num_deleted: int | None = None) -> dict:
    """The state of a stream holding exactly ``msgs`` (Stored or (seq, subj, hdr, data))."""
    rows = [m.row if isinstance(m, Stored) else m for m in msgs]
    extra = {} if num_deleted is None else {"num_deleted": num_deleted}
    return state(len(rows), sum(size(s, d, h) for _, s, h, d in rows), rows[0][0], rows[-1][0],
                 num_subjects=len({s for _, s, _, _ in rows}), **extra)


def fired(scheduler: str, nxt: str, *before, after=()) -> str:
    """The header block of a fired message: kept headers, then Nats-Scheduler and
    Nats-Schedule-Next, then the Nats-TTL / Nats-Rollup taken from the schedule."""
    return hdr(*before, (SCHEDULER, scheduler), (NEXT, nxt), *after)


def assert_on_time(m: Stored, due_ns: int, what: str) -> None:
    assert due_ns - SLACK <= m.ns <= due_ns + LATE, (
        f"{what}: stored at {m.time}, due {rfc3339(due_ns)}")


# =========================================================================================
# 1. Stream config
# =========================================================================================


def sched_cfg(name: str, subjects, **over) -> dict:
    """nats-server's config for a stream created with ``allow_msg_schedules: true``:
    ``allow_rollup_hdrs`` forced on, API level 2, the field after ``allow_atomic``."""
    over.setdefault("allow_rollup_hdrs", True)
    cfg = stream_cfg(name, subjects, req_level="2", **over)
    out = {}
    for k, v in cfg.items():
        if k == "metadata":
            out["allow_msg_schedules"] = True
        out[k] = v
    return out


def with_atomic(cfg: dict) -> dict:
    out = {}
    for k, v in cfg.items():
        if k == "allow_msg_schedules":
            out["allow_atomic"] = True
        out[k] = v
    return out


@async_test()
async def test_config_create_info(js_server):
    """Create/info responses; allow_rollup_hdrs is forced on and deny_purge forced off
    (without pedantic); the field sits after allow_msg_ttl / allow_atomic."""
    async with client(js_server) as c:
        got = await c.api("STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "allow_msg_schedules": True})
        assert_json(got, create_resp(sched_cfg("S", ["s.>"]), state()))
        assert_json(await c.api("STREAM.INFO.S"), info_resp(sched_cfg("S", ["s.>"]), state()))

        got = await c.api("STREAM.CREATE.M", {"name": "M", "storage": "memory", "allow_msg_ttl": True,
                                              "allow_atomic": True, "allow_msg_schedules": True})
        want = with_atomic(sched_cfg("M", ["M"], storage="memory", allow_msg_ttl=True))
        assert_json(got, create_resp(want, state()))

        # deny_purge is forced off along with allow_rollup_hdrs forced on.
        got = await c.api("STREAM.CREATE.D", {"name": "D", "deny_purge": True, "allow_msg_schedules": True})
        assert_json(got, create_resp(sched_cfg("D", ["D"]), state()))

        # Pedantic is fine when roll-ups are on.
        got = await c.api("STREAM.CREATE.P", {"name": "P", "allow_rollup_hdrs": True,
                                              "allow_msg_schedules": True, "pedantic": True})
        assert_json(got, create_resp(sched_cfg("P", ["P"]), state()))


REFUSED = {
    "mirror": ({"mirror": {"name": "O"}}, 400, 10186, "stream mirrors can not also schedule messages"),
    "sources": ({"sources": [{"name": "O"}]}, 400, 10187, "stream source can not also schedule messages"),
    "counter": ({"allow_msg_counter": True}, 500, 10052, "counter stream cannot use message schedules"),
    "discard_new": ({"discard": "new"}, 500, 10052, "message scheduling cannot use discard new"),
    "pedantic_no_rollup": ({"pedantic": True}, 500, 10052,
                           "message scheduling cannot be set if roll-ups are disabled"),
    "rollup_with_deny_purge": ({"allow_rollup_hdrs": True, "deny_purge": True}, 500, 10052,
                               "roll-ups require the purge permission"),
}


@pytest.mark.parametrize("case", list(REFUSED))
@async_test()
async def test_config_refused(js_server, case):
    extra, code, err_code, description = REFUSED[case]
    async with client(js_server) as c:
        got = await c.api("STREAM.CREATE.X", {"name": "X", **extra, "allow_msg_schedules": True})
        assert_json(got, api_error("stream_create_response", code, err_code, description))


@async_test()
async def test_config_update(js_server):
    """Schedules can be turned on by an update (roll-ups forced on with them), never off;
    an update asking for allow_rollup_hdrs false keeps it on."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"])
        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_msg_schedules": True})
        assert_json(without_state(got), create_resp(sched_cfg("S", ["s.>"]), update=True))

        got = await c.api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_msg_schedules": True,
                                              "allow_rollup_hdrs": False})
        assert_json(without_state(got), create_resp(sched_cfg("S", ["s.>"]), update=True))

        for body in ({"name": "S", "subjects": ["s.>"], "allow_msg_schedules": False},
                     {"name": "S", "subjects": ["s.>"], "allow_rollup_hdrs": True}):
            assert_json(await c.api("STREAM.UPDATE.S", body),
                        api_error("stream_update_response", 500, 10052, "message schedules can not be disabled"))
        assert_json(await c.api("STREAM.INFO.S"), info_resp(sched_cfg("S", ["s.>"]), state()))


# =========================================================================================
# 2. @at
# =========================================================================================


@pytest.mark.parametrize("storage", ["file", "memory"])
@async_test()
async def test_at_fires_once(js_server, storage):
    """The schedule is stored with ``Nats-Rollup: sub`` appended; at its time the target
    message is stored (schedule headers stripped, Nats-Scheduler / Nats-Schedule-Next: purge
    added, payload kept) and the schedule subject is purged. The delivery is not published
    on core NATS."""
    size = fsize if storage == "file" else msize
    nc = await connect(js_server.url)
    try:
        core = await nc.subscribe("s.tgt")
        await sync(nc)
        async with client(js_server) as c:
            await create(c, "S", subjects=["s.>"], storage=storage, allow_msg_schedules=True)
            pattern, due = at_in(1.0)
            got = await c.pub_ack("s.sched", "hello", [(SCHED, pattern), (TARGET, "s.tgt"), ("Foo", "bar")])
            assert got == ack(1)
            sched_hdr = hdr((SCHED, pattern), (TARGET, "s.tgt"), ("Foo", "bar"), (ROLLUP, "sub"))
            [m1] = await contents(c)
            assert m1.row == (1, "s.sched", sched_hdr, b"hello")
            await assert_state(c, exact_state([m1], size))

            await wait_state(c, lambda st: st["last_seq"] >= 2, 3.0, "the delivery")
            await asyncio.sleep(0.1)
            [m2] = await contents(c)
            assert m2.row == (2, "s.tgt", fired("s.sched", "purge", ("Foo", "bar")), b"hello")
            assert_on_time(m2, due, "@at delivery")
            await assert_state(c, exact_state([m2], size))
        await assert_no_msg(core, 0.2)
    finally:
        await nc.close()


@async_test()
async def test_at_past_fires_after_minimum_delay(js_server):
    """A past ``@at`` fires once, 250 ms after it was stored (the timer's minimum)."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        assert await c.pub_ack("s.p", "past", [(SCHED, "@at 2020-01-01T00:00:00Z"), (TARGET, "s.pt")]) == ack(1)
        sched = await get_msg(c, 1)
        assert sched.row == (1, "s.p", hdr((SCHED, "@at 2020-01-01T00:00:00Z"), (TARGET, "s.pt"),
                                           (ROLLUP, "sub")), b"past")
        await wait_state(c, lambda st: st["last_seq"] >= 2, 2.0, "the delivery")
        await asyncio.sleep(0.1)
        [m] = await contents(c)
        assert m.row == (2, "s.pt", fired("s.p", "purge"), b"past")
        delay = m.ns - sched.ns
        assert 240_000_000 <= delay <= LATE, f"fired {delay / 1e6:.1f} ms after the store"


@async_test()
async def test_timer_minimum_between_runs(js_server):
    """One timer per stream: a run delivers only what is due at that moment, and the timer
    is re-armed for at least 250 ms. Schedules due 100 ms and 400 ms after another one are
    delivered 250 ms and 500 ms after it."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        _, due = at_in(0.6)
        dues = [due, due + 100_000_000, due + 400_000_000]
        for i, (subject, d) in enumerate(zip(("s.a", "s.b", "s.c"), dues), start=1):
            assert await c.pub_ack(subject, "x", [(SCHED, "@at " + rfc3339(d)), (TARGET, subject + "t")]) == ack(i)
        await wait_state(c, lambda st: st["last_seq"] >= 6, 3.0, "three deliveries")
        a, b, d = await contents(c)
        assert [m.row for m in (a, b, d)] == [
            (4, "s.at", fired("s.a", "purge"), b"x"),
            (5, "s.bt", fired("s.b", "purge"), b"x"),
            (6, "s.ct", fired("s.c", "purge"), b"x"),
        ]
        assert_on_time(a, dues[0], "first")
        assert_on_time(b, a.ns + 250_000_000, "second (250 ms after the first run)")
        assert_on_time(d, b.ns + 250_000_000, "third (250 ms after the second run)")


@async_test()
async def test_at_zero_time_is_not_a_schedule(js_server):
    """``@at 0001-01-01T00:00:00Z`` parses to Go's zero time, which means "no schedule": the
    message is stored as is (no rollup header, no target needed, other schedule headers
    not checked), even on a stream without schedules."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        await create(c, "N", subjects=["n.>"])
        zero = "@at 0001-01-01T00:00:00Z"
        h1 = [(SCHED, zero), (STTL, "bogus"), (SROLLUP, "all")]
        assert await c.pub_ack("s.z", "z", h1) == ack(1)
        assert await c.pub_ack("n.z", "z", [(SCHED, zero)]) == ack(1, "N")
        await asyncio.sleep(0.5)
        assert [m.row for m in await contents(c)] == [(1, "s.z", hdr(*h1), b"z")]
        assert [m.row for m in await contents(c, "N")] == [(1, "n.z", hdr((SCHED, zero)), b"z")]


# =========================================================================================
# 3. @every
# =========================================================================================


@async_test()
async def test_every_and_client_purge(js_server):
    """``@every 1s``: first firing at round(store time) + 1s, then every second; each
    delivery carries ``Nats-Schedule-Next`` = its due time + 1s (RFC 3339, UTC, no
    fraction); the schedule message stays untouched. A client message with
    ``Nats-Schedule-Next: purge`` + ``Nats-Scheduler: <schedule subject>`` is stored as sent
    and purges the schedule, which stops it."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        assert await c.pub_ack("s.sched", "tick", [(SCHED, "@every 1s"), (TARGET, "s.tgt")]) == ack(1)
        sched = await get_msg(c, 1)
        assert sched.row == (1, "s.sched", hdr((SCHED, "@every 1s"), (TARGET, "s.tgt"), (ROLLUP, "sub")), b"tick")
        anchor = round_s(sched.ns)

        await wait_state(c, lambda st: st["last_seq"] >= 3, 4.0, "two deliveries")
        stop_hdr = [(NEXT, "purge"), (SCHEDULER, "s.sched")]
        got = await c.pub_ack("s.stop", "", stop_hdr)
        stop_seq = json.loads(got)["seq"]
        assert got == ack(stop_seq) and stop_seq >= 4, got

        msgs = await contents(c)
        deliveries = msgs[:-1]
        assert [m.seq for m in msgs] == list(range(2, stop_seq + 1))
        for k, m in enumerate(deliveries, start=1):
            assert m.row == (k + 1, "s.tgt", fired("s.sched", rfc3339(anchor + (k + 1) * SEC)), b"tick")
            assert_on_time(m, anchor + k * SEC, f"delivery {k}")
        assert msgs[-1].row == (stop_seq, "s.stop", hdr(*stop_hdr), b"")
        await assert_state(c, exact_state(msgs))

        # Stopped: nothing more within the next two periods.
        await asyncio.sleep(1.3)
        assert (await raw_state(c))["last_seq"] == stop_seq


@async_test()
async def test_every_fractional_interval(js_server):
    """``@every 1500ms``: the next time is round(previous due time) + 1.5s, so the due
    times end in .5 and, after the first, are 2 s apart; Nats-Schedule-Next shows the
    fraction (``…:24.5Z``). Deleting the schedule message stops it."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        assert await c.pub_ack("s.e", "e", [(SCHED, "@every 1500ms"), (TARGET, "s.et")]) == ack(1)
        anchor = round_s((await get_msg(c, 1)).ns)
        due1 = anchor + 1_500_000_000
        due2 = round_s(due1) + 1_500_000_000  # = anchor + 3.5 s
        await wait_state(c, lambda st: st["last_seq"] >= 3, 5.0, "two deliveries")
        assert_json(await c.api("STREAM.MSG.DELETE.S", {"seq": 1}),
                    go_json({"type": API + "stream_msg_delete_response", "success": True}))
        m2, m3 = await get_msg(c, 2), await get_msg(c, 3)
        assert m2.row == (2, "s.et", fired("s.e", rfc3339(due2)), b"e")
        assert m3.row == (3, "s.et", fired("s.e", rfc3339(round_s(due2) + 1_500_000_000)), b"e")
        assert rfc3339(due2).endswith(".5Z")
        assert_on_time(m2, due1, "first delivery")
        assert_on_time(m3, due2, "second delivery")


# =========================================================================================
# 4. Cron patterns and time zones
# =========================================================================================


@async_test()
async def test_cron_every_second(js_server):
    """``* * * * * *``: first due at the next whole second after the store time — but the
    timer waits at least 250 ms — then every second; Nats-Schedule-Next is the due time +
    1s in UTC. Purging the schedule subject stops it."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        assert await c.pub_ack("s.cron", "c", [(SCHED, "* * * * * *"), (TARGET, "s.ct")]) == ack(1)
        stored = (await get_msg(c, 1)).ns
        f1 = trunc_s(stored) + SEC
        await wait_state(c, lambda st: st["last_seq"] >= 3, 3.5, "two deliveries")
        assert_json(await c.api("STREAM.PURGE.S", {"filter": "s.cron"}),
                    go_json({"type": API + "stream_purge_response", "success": True, "purged": 1}))
        m2, m3 = await get_msg(c, 2), await get_msg(c, 3)
        assert m2.row == (2, "s.ct", fired("s.cron", rfc3339(f1 + SEC)), b"c")
        assert m3.row == (3, "s.ct", fired("s.cron", rfc3339(f1 + 2 * SEC)), b"c")
        assert_on_time(m2, max(f1, stored + 250_000_000), "first delivery")
        assert_on_time(m3, f1 + SEC, "second delivery")
        last = (await raw_state(c))["last_seq"]
        await asyncio.sleep(1.3)
        assert (await raw_state(c))["last_seq"] == last


@async_test()
async def test_cron_time_zones(js_server):
    """With ``Nats-Schedule-Time-Zone`` the cron is evaluated in that zone and
    Nats-Schedule-Next is written with the zone's offset (``+01:00``); ``UTC`` writes ``Z``.
    The time-zone header itself is stripped from the delivery."""
    zones = {"s.ams": "Europe/Amsterdam", "s.ny": "America/New_York", "s.utc": "UTC"}
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        seq = 0
        for target, zone in zones.items():
            seq += 1
            h = [(SCHED, "* * * * * *"), (TZ, zone), (TARGET, target)]
            assert await c.pub_ack(f"s.cron.{target[2:]}", "", h) == ack(seq)
        first = [(await get_msg(c, s)).ns for s in (1, 2, 3)]
        await wait_state(c, lambda st: st["num_subjects"] >= 6, 3.0, "a delivery per zone")
        assert_json(await c.api("STREAM.PURGE.S", {"filter": "s.cron.>"}),
                    go_json({"type": API + "stream_purge_response", "success": True, "purged": 3}))
        msgs = await contents(c)
        for (target, zone), stored in zip(zones.items(), first):
            m = next(m for m in msgs if m.subject == target)
            due = trunc_s(stored) + SEC
            nxt = rfc3339(due + SEC) if zone == "UTC" else in_zone(due + SEC, zone)
            assert m.hdr == fired(f"s.cron.{target[2:]}", nxt), (zone, m.hdr)
            assert m.data == b""


# =========================================================================================
# 5. Source, TTL, rollup, header stripping
# =========================================================================================


@async_test()
async def test_source_and_header_stripping(js_server):
    """``Nats-Schedule-Source``: the delivery takes the headers and payload of the last
    message on that subject (the schedule's own content when it has none). Removed from
    the copied headers: everything starting with ``Nats-Schedule`` (so also
    ``Nats-Scheduler-X`` and ``Nats-Schedule-Foo``) or ``Nats-Expected-``, ``Nats-Msg-Id``,
    ``Nats-TTL``, ``Nats-Rollup``; matching is case-sensitive (``nats-msg-id`` stays)."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True, allow_msg_ttl=True)
        assert await c.pub_ack("s.src", "first", [("Src", "0")]) == ack(1)
        src_hdr = [("Src-H", "1"), (MSGID, "m1"), ("Nats-Schedule-Foo", "z"), (TTL, "1h"),
                   ("Nats-Expected-Stream", "S"), ("nats-msg-id", "q"), ("Z", "2")]
        assert await c.pub_ack("s.src", "srcbody", src_hdr) == ack(2)
        pattern, due = at_in(1.0)
        h3 = [(SCHED, pattern), (TARGET, "s.t1"), (SOURCE, "s.src"), ("Own", "1")]
        assert await c.pub_ack("s.sch1", "own1", h3) == ack(3)
        h4 = [("A", "1"), (SCHED, pattern), (MSGID, "id2"), ("Nats-Expected-Last-Subject-Sequence", "0"),
              (TTL, "1h"), (TARGET, "s.t2"), (SOURCE, "s.nosrc"), ("Nats-Scheduler-X", "q"), (ROLLUP, "sub"),
              ("B", "2")]
        assert await c.pub_ack("s.sch2", "own2", h4) == ack(4)
        sched = [await get_msg(c, s) for s in (3, 4)]
        assert sched[0].hdr == hdr(*h3, (ROLLUP, "sub"))
        assert sched[1].hdr == hdr(*h4)  # its own Nats-Rollup: sub is not added again

        await wait_state(c, lambda st: st["last_seq"] >= 6, 3.0, "two deliveries")
        await asyncio.sleep(0.1)
        msgs = await contents(c)
        # Deliveries are made in schedule sequence order.
        assert [m.row for m in msgs] == [
            (1, "s.src", hdr(("Src", "0")), b"first"),
            (2, "s.src", hdr(*src_hdr), b"srcbody"),
            (5, "s.t1", fired("s.sch1", "purge", ("Src-H", "1"), ("nats-msg-id", "q"), ("Z", "2")), b"srcbody"),
            (6, "s.t2", fired("s.sch2", "purge", ("A", "1"), ("B", "2")), b"own2"),
        ]
        for m in msgs[2:]:
            assert_on_time(m, due, m.subject)
        await assert_state(c, exact_state(msgs, num_deleted=2))


@async_test()
async def test_ttl_and_rollup(js_server):
    """``Nats-Schedule-TTL`` / ``Nats-Schedule-Rollup: sub`` become ``Nats-TTL`` /
    ``Nats-Rollup`` on the delivery (after Nats-Scheduler / Nats-Schedule-Next): the rollup
    purges the target subject's older messages, the TTL expires the delivery."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True, allow_msg_ttl=True)
        assert await c.pub_ack("s.t", "old1") == ack(1)
        assert await c.pub_ack("s.t", "old2") == ack(2)
        pattern, due = at_in(1.0)
        h = [(SCHED, pattern), (TARGET, "s.t"), (STTL, "1s"), (SROLLUP, "sub")]
        assert await c.pub_ack("s.sch", "body", h) == ack(3)
        await wait_state(c, lambda st: st["last_seq"] >= 4, 3.0, "the delivery")
        [m] = await contents(c)
        assert m.row == (4, "s.t", fired("s.sch", "purge", after=[(TTL, "1s"), (ROLLUP, "sub")]), b"body")
        assert_on_time(m, due, "delivery")
        await assert_state(c, exact_state([m]))
        # The 1 s TTL removes it.
        await wait_state(c, lambda st: st["messages"] == 0, 3.0, "the TTL expiry")
        await assert_state(c, state(0, 0, 5, 4))


# =========================================================================================
# 6. Replacing, deactivating, chaining
# =========================================================================================


@async_test()
async def test_replace_and_deactivate(js_server):
    """A newer schedule on the same subject replaces the older one (its rollup purges it);
    a plain message on the schedule subject deactivates the schedule (both stay stored,
    nothing fires); a deleted or purged schedule does not fire."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        p1, _ = at_in(1.0)
        p2, due2 = at_in(1.2)
        assert await c.pub_ack("s.r", "r1", [(SCHED, p1), (TARGET, "s.ra")]) == ack(1)
        assert await c.pub_ack("s.r", "r2", [(SCHED, p2), (TARGET, "s.rb")]) == ack(2)
        assert await c.pub_ack("s.d", "d1", [(SCHED, p1), (TARGET, "s.dt")]) == ack(3)
        assert await c.pub_ack("s.d", "plain") == ack(4)
        assert await c.pub_ack("s.x", "x1", [(SCHED, p1), (TARGET, "s.xt")]) == ack(5)
        assert_json(await c.api("STREAM.MSG.DELETE.S", {"seq": 5}),
                    go_json({"type": API + "stream_msg_delete_response", "success": True}))
        assert await c.pub_ack("s.n", "n1", [(SCHED, p1), (TARGET, "s.nt")]) == ack(6)
        assert_json(await c.api("STREAM.PURGE.S", {"filter": "s.n"}),
                    go_json({"type": API + "stream_purge_response", "success": True, "purged": 1}))
        await wait_state(c, lambda st: st["last_seq"] >= 7, 3.0, "the delivery")
        await asyncio.sleep(0.5)
        msgs = await contents(c)
        assert [m.row for m in msgs] == [
            (3, "s.d", hdr((SCHED, p1), (TARGET, "s.dt"), (ROLLUP, "sub")), b"d1"),
            (4, "s.d", None, b"plain"),
            (7, "s.rb", fired("s.r", "purge"), b"r2"),
        ]
        assert_on_time(msgs[-1], due2, "replacement delivery")
        await assert_state(c, exact_state(msgs, num_deleted=2))


@async_test()
async def test_delivery_onto_another_schedule_subject(js_server):
    """A delivery stored on a subject that holds another schedule does not cancel that
    schedule; when that one fires, its ``Nats-Schedule-Next: purge`` purges its whole
    subject, the earlier delivery included."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        pa, _ = at_in(0.5)
        pb, due_b = at_in(1.5)
        assert await c.pub_ack("s.A", "a", [(SCHED, pa), (TARGET, "s.B")]) == ack(1)
        assert await c.pub_ack("s.B", "b", [(SCHED, pb), (TARGET, "s.C")]) == ack(2)
        await wait_state(c, lambda st: st["last_seq"] >= 3, 2.5, "the first delivery")
        m3 = await get_msg(c, 3)
        assert m3.row == (3, "s.B", fired("s.A", "purge"), b"a")
        await wait_state(c, lambda st: st["last_seq"] >= 4, 3.0, "the second delivery")
        await asyncio.sleep(0.1)
        msgs = await contents(c)
        assert [m.row for m in msgs] == [(4, "s.C", fired("s.B", "purge"), b"b")]
        assert_on_time(msgs[0], due_b, "second delivery")
        await assert_state(c, exact_state(msgs))


# =========================================================================================
# 7. Patterns accepted and refused
# =========================================================================================

ACCEPTED_PATTERNS = [
    "@at 2099-01-01T00:00:00Z", "@at 2099-01-01T00:00:00+02:00", "@at 2099-01-01T00:00:00.123456789Z",
    "@at 2099-01-01T00:00:00.5Z",
    "@every 1s", "@every 1000ms", "@every 1.5s", "@every 1m", "@every 1h30m", "@every 24h",
    "*/5 * * * * *", "? * * * * *", "0-59/1 * * * * *", "1,2,3 * * * * *", "0 0 0 1 jan *",
    "0 0 0 * * MON", "0 0 0 * * sun-sat", "0 0 0 29 2 *",
    "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
]

REFUSED_PATTERNS = [
    "@at nope", "@at", "@at 2099-01-01 10:00:00", "@at 2099-01-01t00:00:00z", "@at 2099-01-01T00:00:00z",
    "@at 2099-01-01T00:00:00", "@AT 2099-01-01T00:00:00Z", "@at 2099-13-01T00:00:00Z",
    "@every 999ms", "@every 0s", "@every -1s", "@every 1", "@every", "@every 1S", "@EVERY 1s",
    "* * * * *", "* * * * * * *", "60 * * * * *", "0 0 24 * * *", "0 0 0 0 * *", "0 0 0 * 13 *",
    "0 0 0 * * 7", "5-1 * * * * *", "*/0 * * * * *", "a * * * * *",
    "0 0 0 30 2 *", "0 0 0 31 2 *",  # never matches within 5 years
    "@foo", "@reboot", "@HOURLY",
]


@async_test()
async def test_patterns(js_server):
    """Which patterns are accepted (stored with Nats-Rollup: sub appended) or refused.
    Header values lose their leading blanks only: ``" @hourly"`` is accepted, while
    ``"@hourly "``, ``"@every  1s"`` and ``"@at  …"`` are refused."""
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        expect = []
        for i, p in enumerate(ACCEPTED_PATTERNS + [" @hourly"]):
            raw = f"NATS/1.0\r\n{SCHED}: {p}\r\n{TARGET}: s.t\r\n\r\n"
            got = await c.pub_ack(f"s.p{i}", "x", raw)
            assert re.fullmatch(r'\{"stream":"S","seq":\d+\}', got), (p, got)
            expect.append((json.loads(got)["seq"], f"s.p{i}", hdr((SCHED, p), (TARGET, "s.t"), (ROLLUP, "sub"))))
        for p in REFUSED_PATTERNS + ["@hourly ", "@every  1s", "@every 1s ", "@at  2099-01-01T00:00:00Z",
                                     "@at 2099-01-01T00:00:00Z "]:
            raw = f"NATS/1.0\r\n{SCHED}: {p}\r\n{TARGET}: s.t\r\n\r\n"
            assert await c.pub_ack("s.bad", "x", raw) == PATTERN, p
        # An accepted schedule could fire while the test runs (@hourly at the top of the hour
        # and so on): its delivery on s.t is left out.
        got = [(m.seq, m.subject, m.hdr) for m in await contents(c) if m.subject != "s.t"]
        assert got == expect


# =========================================================================================
# 8. Publish errors (and what is still stored as a plain message): one table
# =========================================================================================
#
# Each case: a fresh server with stream S (subjects s.>, allow_msg_schedules, plus ``cfg``)
# and stream N (subjects n.>, schedules off); the ``steps`` (subject, headers, expected
# reply) — none fires (FAR is in 2099); then the exact contents of S and N.

T = (TARGET, "s.t")
RU = (ROLLUP, "sub")

CASES = {
    "disabled": dict(
        steps=[
            ("n.a", [(SCHED, FAR), (TARGET, "n.t")], DISABLED_N),
            ("n.a", [(SCHED, "@garbage"), (TARGET, "n.t")], DISABLED_N),
            ("n.a", [(SCHED, "@every 1s")], DISABLED_N),
            ("n.a", [(TZ, "Mars/Base")], DISABLED_N),
            ("n.a", [(TZ, "")], DISABLED_N),
            ("n.a", [(NEXT, "purge"), (SCHEDULER, "n.b")], DISABLED_N),
            ("n.a", [(NEXT, "purge")], BAD_SCHEDULER_N),
            ("n.a", [(NEXT, "x"), (SCHEDULER, "n.b")], BAD_SCHEDULER_N),
            ("n.a", [(SCHEDULER, "n.b")], BAD_SCHEDULER_N),
            # Not schedules: stored as sent.
            ("n.a", [(TZ, "UTC")], ack(1, "N")),
            ("n.a", [(SCHED, "")], ack(2, "N")),
            ("n.a", [(TARGET, "n.t"), (STTL, "bogus")], ack(3, "N")),
        ],
        stored_n=[
            (1, "n.a", hdr((TZ, "UTC")), b"x"),
            (2, "n.a", hdr((SCHED, "")), b"x"),
            (3, "n.a", hdr((TARGET, "n.t"), (STTL, "bogus")), b"x"),
        ]),
    "time_zone": dict(
        steps=[
            ("s.a", [(SCHED, "0 0 0 * * *"), T, (TZ, "Mars/Base")], BAD_TZ),
            ("s.a", [(SCHED, "0 0 0 * * *"), T, (TZ, "")], BAD_TZ),
            ("s.a", [(SCHED, "0 0 0 * * *"), T, (TZ, "europe/amsterdam")], BAD_TZ),
            ("s.a", [(SCHED, "0 0 0 * * *"), T, (TZ, "+02:00")], BAD_TZ),
            ("s.a", [(TZ, "Mars/Base")], BAD_TZ),
            ("s.a", [(SCHED, "@garbage"), (TZ, "Mars/Base")], BAD_TZ),  # zone checked first
            # @at and @every refuse any time zone.
            ("s.a", [(SCHED, FAR), T, (TZ, "Europe/Amsterdam")], PATTERN),
            ("s.a", [(SCHED, "@every 5s"), T, (TZ, "UTC")], PATTERN),
            ("s.a", [(SCHED, "0 0 0 * * *"), T, (TZ, "Europe/Amsterdam")], ack(1)),
            ("s.b", [(SCHED, "0 0 0 * * *"), T, (TZ, "America/New_York")], ack(2)),
            ("s.c", [(SCHED, "0 0 0 * * *"), T, (TZ, "UTC")], ack(3)),
            ("s.d", [(SCHED, "0 0 0 * * *"), T, (TZ, "Etc/GMT+2")], ack(4)),
            ("s.e", [(SCHED, "0 0 0 * * *"), T, (TZ, "EST")], ack(5)),
            ("s.f", [(SCHED, "0 0 0 * * *"), T, (TZ, "Local")], ack(6)),
            ("s.g", [(TZ, "UTC")], ack(7)),  # a valid zone alone: not a schedule
        ],
        stored=[
            (1, "s.a", hdr((SCHED, "0 0 0 * * *"), T, (TZ, "Europe/Amsterdam"), RU), b"x"),
            (2, "s.b", hdr((SCHED, "0 0 0 * * *"), T, (TZ, "America/New_York"), RU), b"x"),
            (3, "s.c", hdr((SCHED, "0 0 0 * * *"), T, (TZ, "UTC"), RU), b"x"),
            (4, "s.d", hdr((SCHED, "0 0 0 * * *"), T, (TZ, "Etc/GMT+2"), RU), b"x"),
            (5, "s.e", hdr((SCHED, "0 0 0 * * *"), T, (TZ, "EST"), RU), b"x"),
            (6, "s.f", hdr((SCHED, "0 0 0 * * *"), T, (TZ, "Local"), RU), b"x"),
            (7, "s.g", hdr((TZ, "UTC")), b"x"),
        ]),
    "target": dict(
        steps=[
            ("s.a", [(SCHED, FAR)], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "s.a")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "s.*")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "s.>")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "other")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "s")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "n.t")], BAD_TARGET),  # another stream's subject
            ("s.a", [(SCHED, FAR), (TARGET, "s.a.b")], ack(1)),
        ],
        stored=[(1, "s.a", hdr((SCHED, FAR), (TARGET, "s.a.b"), RU), b"x")]),
    "source": dict(
        steps=[
            ("s.a", [(SCHED, FAR), T, (SOURCE, "s.t")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), T, (SOURCE, "s.a")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), T, (SOURCE, "s.*")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), T, (SOURCE, "other")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), T, (SOURCE, "")], ack(1)),  # empty: no source
            ("s.b", [(SCHED, FAR), T, (SOURCE, "s.none")], ack(2)),  # no message needed yet
        ],
        stored=[
            (1, "s.a", hdr((SCHED, FAR), T, (SOURCE, ""), RU), b"x"),
            (2, "s.b", hdr((SCHED, FAR), T, (SOURCE, "s.none"), RU), b"x"),
        ]),
    "ttl_without_msg_ttl": dict(
        steps=[
            ("s.a", [(SCHED, FAR), T, (STTL, "abc")], BAD_TTL),
            ("s.a", [(SCHED, FAR), T, (STTL, "0")], BAD_TTL),
            ("s.a", [(SCHED, FAR), T, (STTL, "500ms")], BAD_TTL),
            ("s.a", [(SCHED, FAR), T, (STTL, "5s")], TTL_DISABLED),
            ("s.a", [(SCHED, FAR), T, (STTL, "never")], TTL_DISABLED),
            ("s.a", [(SCHED, FAR), T, (STTL, "")], ack(1)),
        ],
        stored=[(1, "s.a", hdr((SCHED, FAR), T, (STTL, ""), RU), b"x")]),
    "ttl_with_msg_ttl": dict(
        cfg={"allow_msg_ttl": True},
        steps=[
            ("s.a", [(SCHED, FAR), T, (STTL, "abc")], BAD_TTL),
            ("s.a", [(SCHED, FAR), T, (STTL, "5s")], ack(1)),
            ("s.b", [(SCHED, FAR), T, (STTL, "never")], ack(2)),
            ("s.c", [(SCHED, FAR), T, (STTL, "60")], ack(3)),
        ],
        stored=[
            (1, "s.a", hdr((SCHED, FAR), T, (STTL, "5s"), RU), b"x"),
            (2, "s.b", hdr((SCHED, FAR), T, (STTL, "never"), RU), b"x"),
            (3, "s.c", hdr((SCHED, FAR), T, (STTL, "60"), RU), b"x"),
        ]),
    "rollup": dict(
        steps=[
            ("s.a", [(SCHED, FAR), T, (SROLLUP, "all")], BAD_ROLLUP),
            ("s.a", [(SCHED, FAR), T, (SROLLUP, "SUB")], BAD_ROLLUP),
            ("s.a", [(SCHED, FAR), T, (ROLLUP, "all")], BAD_ROLLUP),
            ("s.a", [(SCHED, FAR), T, (ROLLUP, "bad")], BAD_ROLLUP),
            ("s.a", [(SCHED, FAR), T, (SROLLUP, "")], ack(1)),
            ("s.b", [(SCHED, FAR), T, (SROLLUP, "sub")], ack(2)),
            # A client's own Nats-Rollup: sub (any case) is kept and not added again.
            ("s.c", [(SCHED, FAR), T, (ROLLUP, "SUB")], ack(3)),
            ("s.d", [(ROLLUP, "sub"), (SCHED, FAR), T], ack(4)),
        ],
        stored=[
            (1, "s.a", hdr((SCHED, FAR), T, (SROLLUP, ""), RU), b"x"),
            (2, "s.b", hdr((SCHED, FAR), T, (SROLLUP, "sub"), RU), b"x"),
            (3, "s.c", hdr((SCHED, FAR), T, (ROLLUP, "SUB")), b"x"),
            (4, "s.d", hdr((ROLLUP, "sub"), (SCHED, FAR), T), b"x"),
        ]),
    "check_order": dict(
        steps=[
            # zone, pattern, TTL syntax, rollup value, TTL allowed, target, source, then
            # the target / source stream-subject checks, then the client scheduler headers.
            ("s.a", [(SCHED, "@every 1ms"), (TZ, "Nope/Nope")], BAD_TZ),
            ("s.a", [(SCHED, "@every 1ms"), (STTL, "abc")], PATTERN),
            ("s.a", [(SCHED, FAR), (STTL, "abc"), (SROLLUP, "all")], BAD_TTL),
            ("s.a", [(SCHED, FAR), (SROLLUP, "all"), (STTL, "5s")], BAD_ROLLUP),
            ("s.a", [(SCHED, FAR), (STTL, "5s"), (SOURCE, "s.a")], TTL_DISABLED),
            ("s.a", [(SCHED, FAR), (SOURCE, "s.a")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "other"), (SOURCE, "s.a")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), (TARGET, "other"), (SOURCE, "other2")], BAD_TARGET),
            ("s.a", [(SCHED, FAR), (TARGET, "s.b"), (SOURCE, "other2")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), (TARGET, "s.b"), (ROLLUP, "all"), (SOURCE, "other2")], BAD_SOURCE),
            ("s.a", [(SCHED, FAR), T, (SCHEDULER, "s.b")], BAD_SCHEDULER),
            ("s.a", [(SCHED, FAR), T, (NEXT, "purge")], BAD_SCHEDULER),
        ],
        stored=[]),
    "client_scheduler_headers": dict(
        steps=[
            ("s.plain", None, ack(1)),
            ("s.a", [(NEXT, "x")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "x"), (SCHEDULER, "s.b")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "2099-01-01T00:00:00Z"), (SCHEDULER, "s.b")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "PURGE"), (SCHEDULER, "s.b")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "purge")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "purge"), (SCHEDULER, "")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "purge"), (SCHEDULER, "s.a")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "purge"), (SCHEDULER, "s.*")], BAD_SCHEDULER),
            ("s.a", [(SCHEDULER, "s.b")], BAD_SCHEDULER),
            # The scheduler subject's last message must be a schedule, if it has one.
            ("s.a", [(NEXT, "purge"), (SCHEDULER, "s.plain")], BAD_SCHEDULER),
            ("s.a", [(NEXT, "purge"), (SCHEDULER, "s.none")], ack(2)),
            ("s.a", [(NEXT, "purge"), (SCHEDULER, "other")], ack(3)),
            # Empty values are no headers at all.
            ("s.a", [(SCHEDULER, "")], ack(4)),
            ("s.a", [(NEXT, "")], ack(5)),
            # Header names are case-sensitive: these are plain headers.
            ("s.a", [("nats-schedule", "@garbage"), ("nats-scheduler", "s.b")], ack(6)),
        ],
        stored=[
            (1, "s.plain", None, b"x"),
            (2, "s.a", hdr((NEXT, "purge"), (SCHEDULER, "s.none")), b"x"),
            (3, "s.a", hdr((NEXT, "purge"), (SCHEDULER, "other")), b"x"),
            (4, "s.a", hdr((SCHEDULER, "")), b"x"),
            (5, "s.a", hdr((NEXT, "")), b"x"),
            (6, "s.a", hdr(("nats-schedule", "@garbage"), ("nats-scheduler", "s.b")), b"x"),
        ]),
}


@pytest.mark.parametrize("case", list(CASES))
@async_test()
async def test_publish_case(js_server, case):
    spec = CASES[case]
    async with client(js_server) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True, **spec.get("cfg", {}))
        await create(c, "N", subjects=["n.>"])
        for i, (subject, headers, expected) in enumerate(spec["steps"]):
            got = await c.pub_ack(subject, "x", headers)
            assert got == expected, f"step {i}: {subject} {headers}\n  got      {got}\n  expected {expected}"
        for stream, key in (("S", "stored"), ("N", "stored_n")):
            want = spec.get(key, [])
            assert [m.row for m in await contents(c, stream)] == want, stream
            await assert_state(c, exact_state(want) if want else state(), stream)


# =========================================================================================
# 9. Restart
# =========================================================================================


@async_test()
async def test_restart(start_js_server):
    """Schedules survive a restart. One due while the server was down fires 250 ms after
    the restart; a repeating one fires once to catch up (Nats-Schedule-Next = round(now) +
    interval, no burst of missed firings), then keeps its period."""
    s = start_js_server()
    async with client(s) as c:
        await create(c, "S", subjects=["s.>"], allow_msg_schedules=True)
        pattern, due = at_in(0.6)
        assert await c.pub_ack("s.a", "a", [(SCHED, pattern), (TARGET, "s.at")]) == ack(1)
        assert await c.pub_ack("s.e", "e", [(SCHED, "@every 1s"), (TARGET, "s.et")]) == ack(2)
    s.stop()
    await asyncio.sleep(max(0.0, (due - time.time_ns()) / SEC) + 1.2)
    s = start_js_server(store_dir=s.store_dir)
    restarted = time.time_ns()
    async with client(s) as c:
        await wait_state(c, lambda st: st["num_subjects"] >= 2 and st["last_seq"] >= 4, 3.0,
                         "deliveries after the restart")
        await asyncio.sleep(1.2)
        msgs = await contents(c)
        assert msgs[0].row == (2, "s.e", hdr((SCHED, "@every 1s"), (TARGET, "s.et"), RU), b"e")
        at_msgs = [m for m in msgs if m.subject == "s.at"]
        assert [(m.hdr, m.data) for m in at_msgs] == [(fired("s.a", "purge"), b"a")]
        assert max(due, restarted - 100_000_000) <= at_msgs[0].ns <= restarted + LATE
        every = [m for m in msgs if m.subject == "s.et"]
        assert len(every) >= 2, [m.row for m in msgs]
        for m in every:
            nxt = parse_ns(m.header(NEXT))
            # The next time is a whole second after the firing (however late the firing
            # was on a loaded machine), and at most the period plus rounding after it.
            assert nxt % SEC == 0 and 0 < nxt - m.ns <= 1_500_000_000, m.row
        for a, b in zip(every, every[1:]):
            assert b.ns - a.ns >= 240_000_000, "catch-up burst"
            assert parse_ns(a.header(NEXT)) - SLACK <= b.ns, "fired before its Nats-Schedule-Next"
