"""Helpers for the consumer differential tests (test_js_consumers.py).

``CClient`` extends jsutil's raw JetStream client with what consumers need: extra
subscriptions (push deliver subjects, queue groups), frames that keep their subscription
id, pull requests whose answers arrive under the *stored message's* subject (so they
cannot be told apart by subject), and acks with or without a reply.

Comparison: a delivered message or status is rendered as one line of text,
``<sid> <subject> <reply> <headers> <payload>``, with only what legitimately varies
replaced — the ack reply's timestamp token (``$JS.ACK.S.C.1.5.1.<TS>.7``), the random
suffix of a flow-control subject, the request's own inbox (``<INBOX>``). Consumer
infos are compared as normalised JSON text (jsutil.norm_json plus ``last_active`` removed
and ``pause_remaining`` as ``<N>``), so key order and JSON types count.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass

from jsutil import API, OMIT, TS, Frame, JsClient, compact, go_json, norm_json
from natsutil import RawConn

# -- normalisation --------------------------------------------------------------------------

_LAST_ACTIVE = re.compile(r',"last_active":"[^"]*"')
_PAUSE_REMAINING = re.compile(r'"pause_remaining":\d+')
_ACK_TS = re.compile(r"^(\$JS\.ACK\.(?:[^.]+\.){5})\d+(\.\d+)$")
_FC = re.compile(r"^(\$JS\.FC\.[^.]+\.[^.]+\.)[^.]+$")


def cnorm(text: str | bytes) -> str:
    """norm_json plus: ``last_active`` dropped, ``pause_remaining`` → ``<N>``."""
    t = norm_json(text)
    t = _LAST_ACTIVE.sub("", t)
    t = _PAUSE_REMAINING.sub('"pause_remaining":<N>', t)
    return t


def norm_reply(reply: str | None) -> str:
    if reply is None:
        return "-"
    m = _ACK_TS.match(reply)
    if m:
        return f"{m[1]}<TS>{m[2]}"
    m = _FC.match(reply)
    if m:
        return f"{m[1]}<ID>"
    return reply


@dataclass
class Msg:
    sid: int
    subject: str
    reply: str | None
    hdr: bytes | None
    data: bytes

    @property
    def status(self) -> str | None:
        if self.hdr is None:
            return None
        first = self.hdr.split(b"\r\n", 1)[0].decode()
        return first[len("NATS/1.0 "):] if first.startswith("NATS/1.0 ") else None

    def line(self, inbox: str | None = None) -> str:
        subj = "<INBOX>" if inbox is not None and self.subject == inbox else self.subject
        hdr = "-" if self.hdr is None else self.hdr.decode(errors="replace")
        return f"{self.sid} {subj} {norm_reply(self.reply)} {hdr!r} {self.data.decode(errors='replace')!r}"

    def ack_tokens(self) -> list[str]:
        assert self.reply and self.reply.startswith("$JS.ACK."), self
        return self.reply.split(".")


def lines(msgs, inbox: str | None = None) -> list[str]:
    return [m.line(inbox) for m in msgs]


def status_line(status: str, *headers: tuple[str, object], sid: int = 1, subject: str = "<INBOX>") -> str:
    """The ``Msg.line`` of a header-only status message."""
    h = f"NATS/1.0 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return f"{sid} {subject} - {h!r} ''"


def msg_line(subject: str, data: str, stream: str, consumer: str, dc: int, sseq: int, cseq: int,
             pending: int, *, sid: int = 1, hdr: str | None = None) -> str:
    reply = f"$JS.ACK.{stream}.{consumer}.{dc}.{sseq}.{cseq}.<TS>.{pending}"
    return f"{sid} {subject} {reply} {'-' if hdr is None else hdr!r} {data!r}"


# -- the client -----------------------------------------------------------------------------

TERMINAL_PREFIXES = ("400", "404", "408", "409", "412", "423", "503")


class CClient(JsClient):
    """JsClient (sid 1 = ``_R.>``) plus more subscriptions and sid-aware frame reading."""

    def __init__(self, conn):
        super().__init__(conn)
        self.next_sid = 2
        self.stash: list[Msg] = []  # frames read while waiting for an API answer

    @classmethod
    async def open(cls, port: int, **connect) -> "CClient":
        """``connect``: extra CONNECT fields (e.g. ``user``/``pass``)."""
        c = await RawConn.open(port)
        await c.handshake(**connect)
        cl = cls(c)
        await c.send(f"SUB {cls.INBOX}.> 1\r\n".encode())
        await cl.sync()
        return cl

    async def sync(self, timeout: float = 5.0) -> None:
        """PING/PONG round trip; messages arriving meanwhile are kept for ``collect``."""
        await self.c.send(b"PING\r\n")
        deadline = time.monotonic() + timeout
        while True:
            m = await self.msg(deadline, use_stash=False)
            if m is None:
                return
            self.stash.append(m)

    async def request(self, subject: str, body=b"", headers=None, *, n: int | None = 1,
                      timeout: float = 5.0) -> list[Frame]:
        """As JsClient.request, but frames for other subscriptions (push deliveries,
        heartbeats) are kept for ``collect`` instead of failing the request."""
        reply = self._inbox()
        await self.c.send(self._pub(subject, body, headers, reply))
        out: list[Frame] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = await self.msg(deadline, use_stash=False)
            except asyncio.TimeoutError:
                raise AssertionError(f"{subject}: got {len(out)} response(s) before timeout: {out}")
            if m is None:
                continue
            if m.subject != reply:
                self.stash.append(m)
                continue
            f = Frame(m.subject, m.reply, m.hdr, m.data)
            out.append(f)
            if n is not None and len(out) == n:
                return out
            if n is None and f.status is not None:
                return out

    async def sub(self, subject: str, queue: str | None = None) -> int:
        sid = self.next_sid
        self.next_sid += 1
        q = f" {queue}" if queue else ""
        await self.c.send(f"SUB {subject}{q} {sid}\r\n".encode())
        await self.sync()
        return sid

    async def unsub(self, sid: int) -> None:
        await self.c.send(f"UNSUB {sid}\r\n".encode())
        await self.sync()

    async def msg(self, deadline: float, use_stash: bool = True) -> Msg | None:
        """The next MSG/HMSG (any sid); PINGs answered; None after a PONG."""
        if use_stash and self.stash:
            return self.stash.pop(0)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError
            line = await self.c.read_line(timeout=left)
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                parts = line[:-2].decode().split(" ")
                hmsg = parts[0] == "HMSG"
                nfix = 6 if hmsg else 5
                subj, sid = parts[1], int(parts[2])
                reply = parts[3] if len(parts) == nfix else None
                hlen = int(parts[-2]) if hmsg else 0
                tlen = int(parts[-1])
                body = await self.c.read_exact(tlen + 2, timeout=max(left, 0.1))
                assert body.endswith(b"\r\n"), body
                body = body[:-2]
                return Msg(sid, subj, reply, body[:hlen] if hmsg else None, body[hlen:])
            if line == b"PING\r\n":
                await self.c.send(b"PONG\r\n")
            elif line == b"PONG\r\n":
                return None
            elif line.startswith(b"-ERR"):
                raise AssertionError(f"server error: {line!r}")

    async def collect(self, *, n: int | None = None, frames: int | None = None, timeout: float = 5.0,
                      stop_on_status: bool = True, quiet: float | None = None) -> list[Msg]:
        """Frames until ``n`` frames that are not ``100`` statuses, ``frames`` frames of
        any kind, a terminal status (when ``stop_on_status``), or ``timeout`` (then what
        arrived is returned). With ``quiet``, after stopping, wait that long and fail on
        any further frame."""
        out: list[Msg] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = await self.msg(deadline)
            except asyncio.TimeoutError:
                break
            if m is None:
                continue
            out.append(m)
            st = m.status
            if stop_on_status and st is not None and st.startswith(TERMINAL_PREFIXES):
                break
            if n is not None and len([x for x in out if not (x.status or "").startswith("100")]) >= n:
                break
            if frames is not None and len(out) >= frames:
                break
        if quiet:
            await self.expect_nothing(quiet)
        return out

    async def expect_nothing(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                m = await self.msg(deadline)
            except asyncio.TimeoutError:
                return
            if m is not None:
                raise AssertionError(f"unexpected frame {m}")

    def _inbox(self) -> str:
        self.n += 1
        return f"{self.INBOX}.{self.n}"

    async def send(self, subject: str, body=b"", headers=None, reply: str | None = None) -> None:
        await self.c.send(self._pub(subject, body, headers, reply))

    async def pull(self, stream: str, consumer: str, body=b"", *, n: int | None = None,
                   frames: int | None = None, timeout: float = 3.0, quiet: float | None = None,
                   stop_on_status: bool = True) -> tuple[str, list[Msg]]:
        """A raw MSG.NEXT request; returns (inbox, frames), collected as ``collect``."""
        inbox = self._inbox()
        await self.send(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", body, reply=inbox)
        got = await self.collect(n=n, frames=frames, timeout=timeout, quiet=quiet,
                                 stop_on_status=stop_on_status)
        for m in got:
            assert m.sid == 1, m
        return inbox, got

    async def pull_lines(self, stream: str, consumer: str, body=b"", **kw) -> list[str]:
        inbox, got = await self.pull(stream, consumer, body, **kw)
        return lines(got, inbox)

    async def ack(self, reply: str, body: bytes | str = b"+ACK", *, confirm: bool = True,
                  timeout: float = 3.0) -> Msg | None:
        """Publish an ack body to a $JS.ACK subject. With ``confirm`` the ack carries a
        reply subject and the (empty) confirmation is returned."""
        if isinstance(body, str):
            body = body.encode()
        if not confirm:
            await self.send(reply, body)
            await self.sync()
            return None
        inbox = self._inbox()
        await self.send(reply, body, reply=inbox)
        got = await self.collect(n=1, timeout=timeout)
        assert got, f"no confirmation for {body!r} on {reply}"
        assert got[0].subject == inbox, got
        return got[0]

    async def info(self, stream: str, consumer: str) -> str:
        return cnorm((await self.req(f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")).data)

    async def capi(self, suffix: str, body=None) -> str:
        f = await self.req(f"$JS.API.{suffix}", body)
        assert f.hdr is None, f"expected a plain JSON answer, got headers {f.hdr!r}"
        return cnorm(f.data)


class cclient:
    """``async with cclient(server) as c:`` — a connected CClient, closed afterwards."""

    def __init__(self, server, **connect):
        self.server = server
        self.connect = connect

    async def __aenter__(self) -> CClient:
        self.c = await CClient.open(self.server.port, **self.connect)
        return self.c

    async def __aexit__(self, *exc) -> None:
        self.c.close()


# -- expected documents ---------------------------------------------------------------------

# ConsumerConfig fields in nats-server's marshal order (OMIT = omitempty, absent unless given).
_CCFG_FIELDS = [
    "durable_name", "name", "description", "deliver_policy", "opt_start_seq", "opt_start_time",
    "ack_policy", "ack_wait", "max_deliver", "backoff", "filter_subject", "filter_subjects",
    "replay_policy", "rate_limit_bps", "sample_freq", "max_waiting", "max_ack_pending",
    "flow_control", "headers_only", "max_batch", "max_expires", "max_bytes", "deliver_subject",
    "deliver_group", "idle_heartbeat", "inactive_threshold", "num_replicas", "mem_storage",
    "direct", "sourcing", "metadata", "pause_until", "priority_groups", "priority_policy",
    "priority_timeout",
]


def ccfg(*, durable: str | None = None, name: str | None = None, push: bool = False,
         ack: str = "explicit", req_level: str = "0", listing: bool = False,
         metadata: dict | None = None, **over) -> dict:
    """The config nats-server reports for a consumer. ``durable``: durable name (also
    the name); ``name``: a named ephemeral (gets inactive_threshold 5s); neither: an
    unnamed ephemeral. ``push``: no max_waiting. ``listing``: metadata as in LIST."""
    d: dict = {}
    if durable:
        d["durable_name"] = durable
        d["name"] = durable
    elif name:
        d["name"] = name
    d["deliver_policy"] = "all"
    d["ack_policy"] = ack
    if ack != "none":
        d["ack_wait"] = 30_000_000_000
    d["max_deliver"] = -1
    d["replay_policy"] = "instant"
    if not push:
        d["max_waiting"] = 512
    if ack != "none":
        d["max_ack_pending"] = 1000
    if not durable:
        d["inactive_threshold"] = 5_000_000_000
    d["num_replicas"] = 0
    md = {"_nats.req.level": req_level, **(metadata or {})}
    if not listing:
        md.update({"_nats.level": "5", "_nats.ver": "<VER>"})
    d["metadata"] = dict(sorted(md.items()))
    for k, v in over.items():
        assert k in _CCFG_FIELDS, f"unknown consumer config field {k}"
        if v is OMIT:
            d.pop(k, None)
        else:
            d[k] = v
    return {k: d[k] for k in _CCFG_FIELDS if k in d}


def cinfo(stream: str, name: str, cfg: dict, *, kind: str | None = "consumer_info_response",
          delivered=(0, 0), ack_floor=(0, 0), num_ack_pending: int = 0, num_redelivered: int = 0,
          num_waiting: int = 0, num_pending: int = 0, push_bound: bool = False,
          paused: bool = False, extra: dict | None = None) -> dict:
    doc: dict = {}
    if kind:
        doc["type"] = API + kind
    doc.update({
        "stream_name": stream, "name": name, "created": TS, "config": cfg,
        "delivered": {"consumer_seq": delivered[0], "stream_seq": delivered[1]},
        "ack_floor": {"consumer_seq": ack_floor[0], "stream_seq": ack_floor[1]},
        "num_ack_pending": num_ack_pending, "num_redelivered": num_redelivered,
        "num_waiting": num_waiting, "num_pending": num_pending,
    })
    if push_bound:
        doc["push_bound"] = True
    if paused:
        doc["paused"] = True
        doc["pause_remaining"] = "<N>"
    doc["ts"] = TS
    if extra:
        doc.update(extra)
    return doc


def cinfo_json(*a, **kw) -> str:
    return go_json(cinfo(*a, **kw))


def create_body(stream: str, action: str | None = None, **cfg) -> dict:
    b = {"stream_name": stream, "config": cfg}
    if action is not None:
        b["action"] = action
    return b


def cerr(kind: str, code: int, err_code: int, description: str) -> str:
    return go_json({"type": API + kind,
                    "error": {"code": code, "err_code": err_code, "description": description}})


async def make_consumer(c: CClient, stream: str, name: str | None = None, *,
                        durable: bool = True, **cfg) -> str:
    """Create a consumer (setup step: must succeed). Returns its name."""
    if name is None:
        subj = f"CONSUMER.CREATE.{stream}"
    else:
        cfg = {("durable_name" if durable else "name"): name, **cfg}
        subj = f"CONSUMER.CREATE.{stream}.{name}"
    text = await c.capi(subj, {"stream_name": stream, "config": cfg})
    d = json.loads(text.replace("<N>", "0"))
    assert "error" not in d, text
    return d["name"]


def body(obj) -> bytes:
    return compact(obj)
