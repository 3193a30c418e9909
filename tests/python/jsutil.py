"""A raw-protocol JetStream client for the stream API differential tests.

nats-py hides what these tests compare (the exact JSON bytes, header order, status lines,
the absence of a response), so requests go over a plain socket: one connection with
``headers`` and ``no_responders`` on, one wildcard inbox subscription, and each request a
PUB/HPUB with its own reply subject. Responses are kept as raw bytes.

Comparison helpers normalise only what legitimately differs between two servers or two
runs — timestamps, ``_nats.ver``, the standalone ``cluster.leader`` (the server name) and
the account's API request counters — by rewriting the raw text, so key order, escaping
(``\\u003e``), spacing (the PubAck ``"duplicate": true`` quirk) and JSON types are still
compared byte for byte."""

from __future__ import annotations

import asyncio
import base64
import difflib
import json
import re
import time
from dataclasses import dataclass

from natsutil import RawConn

ZERO_TS = "0001-01-01T00:00:00Z"
_TS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z"
_JSON_TS = re.compile(r'"([A-Za-z_]+)":"(' + _TS + r')"')
_NATS_VER = re.compile(r'"_nats\.ver":"[^"]*"')
_LEADER = re.compile(r'"cluster":\{"leader":"[^"]*"\}')
_API_STATS = re.compile(r'("api":\{"level":\d+,"total":)\d+(,"errors":)\d+')
_HDR_TS = re.compile(r"(?m)^(Nats-Time-Stamp: )" + _TS + r"(?=\r$)")


def norm_json(text: str | bytes) -> str:
    """Raw JSON text with volatile values replaced (non-zero timestamps → ``<TS>``)."""
    if isinstance(text, bytes):
        text = text.decode()
    text = _JSON_TS.sub(lambda m: m[0] if m[2] == ZERO_TS else f'"{m[1]}":"<TS>"', text)
    text = _NATS_VER.sub('"_nats.ver":"<VER>"', text)
    text = _LEADER.sub('"cluster":{"leader":"<SERVER>"}', text)
    text = _API_STATS.sub(r"\1<N>\2<N>", text)
    return text


def norm_hdr(hdr: bytes | None) -> str | None:
    if hdr is None:
        return None
    return _HDR_TS.sub(r"\1<TS>", hdr.decode())


def _pretty(text: str) -> list[str]:
    try:
        obj = json.loads(text.replace("<N>", "-999"), object_pairs_hook=lambda kv: dict(kv))
        return json.dumps(obj, indent=1).splitlines()
    except ValueError:
        return [text]


def assert_json(got: str | bytes, expected: str) -> None:
    """``got`` normalised must equal ``expected`` exactly; on failure the message shows a
    diff of the pretty-printed documents (key order kept) and both raw texts."""
    g = norm_json(got)
    if g == expected:
        return
    diff = "\n".join(difflib.unified_diff(_pretty(expected), _pretty(g), "expected", "got", lineterm="", n=2))
    raise AssertionError(f"JSON differs\n{diff}\n--- expected raw:\n{expected}\n--- got raw:\n{g}")


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Frame:
    subject: str
    reply: str | None
    hdr: bytes | None
    data: bytes

    @property
    def status(self) -> str | None:
        """``"503"``, ``"404 Message Not Found"``… from a header-only status line."""
        if self.hdr is None:
            return None
        first = self.hdr.split(b"\r\n", 1)[0].decode()
        return first[len("NATS/1.0 "):] if first.startswith("NATS/1.0 ") else None

    def hdr_text(self) -> str | None:
        return norm_hdr(self.hdr)

    def json(self) -> str:
        return norm_json(self.data)


class JsClient:
    INBOX = "_R"

    def __init__(self, conn: RawConn):
        self.c = conn
        self.n = 0
        self.pongs = 0

    @classmethod
    async def open(cls, port: int) -> "JsClient":
        c = await RawConn.open(port)
        await c.handshake()
        cl = cls(c)
        await c.send(f"SUB {cls.INBOX}.> 1\r\n".encode())
        await cl.sync()
        return cl

    def close(self) -> None:
        self.c.close()

    # -- frames -----------------------------------------------------------------------

    async def _frame(self, deadline: float) -> Frame | None:
        """The next MSG/HMSG; PINGs answered, PONGs counted; None after a PONG."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError
            line = await self.c.read_line(timeout=left)
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                parts = line[:-2].decode().split(" ")
                if parts[0] == "MSG":
                    subj, reply = parts[1], (parts[3] if len(parts) == 5 else None)
                    hlen, tlen = 0, int(parts[-1])
                else:
                    subj, reply = parts[1], (parts[3] if len(parts) == 6 else None)
                    hlen, tlen = int(parts[-2]), int(parts[-1])
                body = await self.c.read_exact(tlen + 2, timeout=max(left, 0.1))
                assert body.endswith(b"\r\n"), body
                body = body[:-2]
                hdr = body[:hlen] if parts[0] == "HMSG" else None
                return Frame(subj, reply, hdr, body[hlen:])
            if line == b"PING\r\n":
                await self.c.send(b"PONG\r\n")
            elif line == b"PONG\r\n":
                self.pongs += 1
                return None
            elif line.startswith(b"-ERR"):
                raise AssertionError(f"server error: {line!r}")
            # INFO, +OK: ignored

    async def sync(self, timeout: float = 5.0) -> None:
        """PING/PONG round trip; fails on any inbox message still arriving."""
        await self.c.send(b"PING\r\n")
        deadline = time.monotonic() + timeout
        while True:
            f = await self._frame(deadline)
            if f is None:
                return
            raise AssertionError(f"unexpected message {f}")

    def _pub(self, subject: str, body, headers, reply: str | None) -> bytes:
        if isinstance(body, (dict, list)):
            body = compact(body)
        elif isinstance(body, str):
            body = body.encode()
        elif body is None:
            body = b""
        r = f" {reply}" if reply else ""
        if headers is None:
            return f"PUB {subject}{r} {len(body)}\r\n".encode() + body + b"\r\n"
        if isinstance(headers, (bytes, str)):
            h = headers.encode() if isinstance(headers, str) else headers
        else:
            h = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"
        return f"HPUB {subject}{r} {len(h)} {len(h) + len(body)}\r\n".encode() + h + body + b"\r\n"

    async def publish(self, subject: str, body=b"", headers=None) -> None:
        """Publish without a reply subject (stored silently), then round trip."""
        await self.c.send(self._pub(subject, body, headers, None))
        await self.sync()

    async def request(self, subject: str, body=b"", headers=None, *, n: int | None = 1,
                      timeout: float = 5.0) -> list[Frame]:
        """Send with a fresh reply subject and collect ``n`` responses; ``n=None`` reads
        until a header-only status frame (the batch end or an error)."""
        self.n += 1
        reply = f"{self.INBOX}.{self.n}"
        await self.c.send(self._pub(subject, body, headers, reply))
        out: list[Frame] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = await self._frame(deadline)
            except asyncio.TimeoutError:
                raise AssertionError(f"{subject}: got {len(out)} response(s) before timeout: {out}")
            if f is None:
                continue
            if f.subject != reply:
                raise AssertionError(f"response for an earlier request: {f}")
            out.append(f)
            if n is not None and len(out) == n:
                return out
            if n is None and f.status is not None:
                return out

    async def req(self, subject: str, body=b"", headers=None, timeout: float = 5.0) -> Frame:
        return (await self.request(subject, body, headers, n=1, timeout=timeout))[0]

    async def api(self, suffix: str, body=None, headers=None) -> str:
        """A ``$JS.API.<suffix>`` request; the normalised JSON text of its one answer."""
        f = await self.req(f"$JS.API.{suffix}", body, headers)
        assert f.hdr is None, f"expected a plain JSON answer, got headers {f.hdr!r}"
        return f.json()

    async def pub_ack(self, subject: str, body=b"", headers=None) -> str:
        f = await self.req(subject, body, headers)
        assert f.hdr is None, f"expected a PubAck, got headers {f.hdr!r}"
        return f.data.decode()

    async def no_response(self, subject: str, body=b"", headers=None, wait: float = 0.5) -> None:
        """Nothing at all (no error, no 503) comes back within ``wait`` seconds."""
        self.n += 1
        reply = f"{self.INBOX}.{self.n}"
        await self.c.send(self._pub(subject, body, headers, reply))
        deadline = time.monotonic() + wait
        while True:
            try:
                f = await self._frame(deadline)
            except asyncio.TimeoutError:
                return
            if f is not None:
                raise AssertionError(f"expected no response to {subject}, got {f}")


# -- expected documents -------------------------------------------------------------------
#
# Builders for nats-server's responses, in its marshal order, already normalised (volatile
# values as placeholders). ``go_json`` escapes like Go's encoder (``<``, ``>``, ``&``).

OMIT = object()
TS = "<TS>"
API = "io.nats.jetstream.api.v1."

# StreamConfig fields in nats-server's marshal order, with the defaults it fills in
# (OMIT = omitempty and absent unless set).
_CFG_FIELDS = [
    ("name", OMIT), ("description", OMIT), ("subjects", OMIT), ("retention", "limits"),
    ("max_consumers", -1), ("max_msgs", -1), ("max_bytes", -1), ("max_age", 0),
    ("max_msgs_per_subject", -1), ("max_msg_size", -1), ("discard", "old"),
    ("storage", "file"), ("num_replicas", 1), ("no_ack", OMIT),
    ("duplicate_window", 120_000_000_000), ("compression", "none"), ("allow_direct", False),
    ("mirror_direct", False), ("discard_new_per_subject", OMIT), ("sealed", False),
    ("deny_delete", False), ("deny_purge", False), ("allow_rollup_hdrs", False),
    ("consumer_limits", {}), ("allow_msg_ttl", False), ("subject_delete_marker_ttl", OMIT),
]
_PLACEHOLDERS = ("<TS>", "<VER>", "<SERVER>", "<N>", "<STATE>")


def go_json(obj) -> str:
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    for p in _PLACEHOLDERS:
        s = s.replace(go_escape(p), p)
    s = s.replace('"<STATE>"', "<STATE>").replace('"<N>"', "<N>")
    return s


def go_escape(s: str) -> str:
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def stream_cfg(name: str, subjects=OMIT, *, req_level: str = "0", metadata: dict | None = None,
               listing: bool = False, **over) -> dict:
    """The config nats-server reports for a stream created with these fields.
    ``listing``: as in STREAM.LIST (metadata without the dynamic ``_nats.ver/level``)."""
    given = dict(name=name, **over)
    given["subjects"] = [name] if subjects is OMIT else subjects
    unknown = set(given) - {k for k, _ in _CFG_FIELDS}
    assert not unknown, f"unknown config fields {unknown}"
    out = {}
    for k, default in _CFG_FIELDS:
        v = given.get(k, default)
        if v is not OMIT:
            out[k] = v
    md = {"_nats.req.level": req_level, **(metadata or {})}
    if not listing:
        md.update({"_nats.level": "5", "_nats.ver": "<VER>"})
    out["metadata"] = dict(sorted(md.items()))
    return out


def state(messages: int = 0, bytes: int = 0, first_seq: int = 0, last_seq: int = 0, *,
          first_ts: str | None = None, last_ts: str | None = None, num_subjects=OMIT,
          subjects=OMIT, num_deleted=OMIT, deleted=OMIT) -> dict:
    """A stream state; timestamps default to ``<TS>`` when there is a message for them."""
    st = {
        "messages": messages, "bytes": bytes, "first_seq": first_seq,
        "first_ts": first_ts or (TS if messages else ZERO_TS),
        "last_seq": last_seq, "last_ts": last_ts or (TS if last_seq else ZERO_TS),
    }
    for k, v in (("num_subjects", num_subjects), ("subjects", subjects),
                 ("num_deleted", num_deleted), ("deleted", deleted)):
        if v is not OMIT:
            st[k] = v
    st["consumer_count"] = 0
    return st


STATE_ANY = "<STATE>"


def create_resp(cfg: dict, st=STATE_ANY, *, update: bool = False) -> str:
    doc = {"type": API + ("stream_update_response" if update else "stream_create_response"),
           "config": cfg, "created": TS, "state": st, "ts": TS}
    if not update:
        doc["did_create"] = True
    return go_json(doc)


def info_resp(cfg: dict, st, *, total: int = 0, offset: int = 0, limit: int = 0) -> str:
    return go_json({"type": API + "stream_info_response", "total": total, "offset": offset,
                    "limit": limit, "config": cfg, "created": TS, "state": st,
                    "cluster": {"leader": "<SERVER>"}, "ts": TS})


def api_error(kind: str, code: int, err_code: int, description: str, **extra) -> str:
    """``{"type":…,"error":{…}}`` plus the zeroed fields some responses keep after it."""
    return go_json({"type": API + kind,
                    "error": {"code": code, "err_code": err_code, "description": description},
                    **extra})


def pub_error(stream: str, code: int, err_code: int, description: str) -> str:
    return go_json({"error": {"code": code, "err_code": err_code, "description": description},
                    "stream": stream, "seq": 0})


_STATE_RE = re.compile(r'"state":\{[^{}]*(?:\{[^{}]*\}[^{}]*)?\}')


def without_state(text: str) -> str:
    """Normalised text with the ``state`` object replaced by ``<STATE>``."""
    return _STATE_RE.sub('"state":<STATE>', norm_json(text), count=1)


def state_of(text: str | bytes) -> str:
    m = _STATE_RE.search(norm_json(text))
    assert m, f"no state in {text!r}"
    return m[0][len('"state":'):]


class client:
    """``async with client(server) as c:`` — a connected JsClient, closed afterwards."""

    def __init__(self, server):
        self.server = server

    async def __aenter__(self) -> JsClient:
        self.c = await JsClient.open(self.server.port)
        return self.c

    async def __aexit__(self, *exc) -> None:
        self.c.close()


async def create(c: JsClient, name: str, **cfg) -> str:
    """Create a stream (setup step): the answer must be a success."""
    text = await c.api(f"STREAM.CREATE.{name}", {"name": name, **cfg})
    assert '"error"' not in text and '"did_create":true' in text, text
    return text


async def store(c: JsClient, subject: str, body=b"", headers=None, *, stream: str | None = None) -> int:
    """Publish with a reply subject (setup step): the PubAck must be a success. Returns the
    sequence. (Acked publishes are used for setup so every message is stored before the
    next request.)"""
    ack = await c.pub_ack(subject, body, headers)
    d = json.loads(ack)
    assert "error" not in d and not d.get("duplicate"), ack
    if stream is not None:
        assert d["stream"] == stream, ack
    return d["seq"]


# -- stored messages ---------------------------------------------------------------------


def hdr_block(headers) -> str:
    """A header block from ``(key, value)`` pairs, as a client sends it."""
    return "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"


def fsize(subject: str, body: str, headers=None) -> int:
    """File store accounting of one message (nats-server's fileStoreMsgSizeRaw)."""
    h = len(hdr_block(headers)) if headers is not None else 0
    return 30 + len(subject) + len(body) + (h + 4 if h else 0)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


async def assert_stream(c: JsClient, stream: str, msgs, timeout: float = 3.0) -> None:
    """The file stream holds exactly ``msgs`` -- ``(seq, subject, headers or None, body)``,
    in sequence order, contiguous -- with these exact headers (checked with
    STREAM.MSG.GET), and its state (file store byte accounting) matches. The state is
    polled up to ``timeout``: a message published without a reply subject has no answer
    to wait for."""
    if msgs:
        st = state(len(msgs), sum(fsize(s, b, h) for _, s, h, b in msgs), msgs[0][0], msgs[-1][0],
                   num_subjects=len({s for _, s, _, _ in msgs}))
    else:
        st = state()
    want = go_json(st)
    deadline = time.monotonic() + timeout
    while True:
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
