"""Helpers shared by the Python tests: running async tests without pytest-asyncio, and a
small raw-protocol client for the cases nats-py hides (exact bytes, EOF)."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import socket
import time

import nats

DEFAULT_TEST_TIMEOUT = 60.0


def async_test(timeout: float = DEFAULT_TEST_TIMEOUT):
    """Run an ``async def`` test with ``asyncio.run``, bounded by ``timeout`` seconds."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout))

        return wrapper

    return deco


async def _quiet_error_cb(e):  # the default callback logs every expected error
    pass


async def connect(url: str, **kw) -> nats.NATS:
    """nats-py connect that fails fast instead of retrying forever."""
    kw.setdefault("allow_reconnect", False)
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("error_cb", _quiet_error_cb)
    return await nats.connect(url, **kw)


async def sync(nc, timeout: float = 5.0) -> None:
    """Round trip to the server after everything sent so far has been processed.

    nats-py's ``flush()`` alone is not enough: it queues its PING with priority, at the
    *front* of the pending buffer, so the PING can overtake a SUB/PUB still waiting there
    and the PONG can come back before the server has seen them. A second flush is queued
    after the first write went out, so its PONG really follows everything before it."""
    await nc.flush(timeout=timeout)
    await nc.flush(timeout=timeout)


async def next_msgs(sub, n: int, timeout: float = 5.0) -> list:
    out = []
    for _ in range(n):
        out.append(await sub.next_msg(timeout=timeout))
    return out


async def assert_no_msg(sub, wait: float = 0.3) -> None:
    try:
        m = await sub.next_msg(timeout=wait)
    except nats.errors.TimeoutError:
        return
    raise AssertionError(f"unexpected message on {m.subject!r}: {m.data!r}")


class RawConn:
    """A raw NATS protocol connection over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.info: dict = {}
        self.buf = b""

    @classmethod
    async def open(cls, port: int, *, rcvbuf: int | None = None, read_info: bool = True) -> "RawConn":
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
            r, w = await asyncio.open_connection(sock=sock, limit=1 << 20)
        else:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=1 << 20), 5)
        c = cls(r, w)
        if read_info:
            line = await c.read_line()
            assert line.startswith(b"INFO ") and line.endswith(b" \r\n"), line
            c.info = json.loads(line[5:-3])
        return c

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def handshake(self, **connect) -> None:
        """CONNECT (headers + no_responders on) and a PING/PONG round trip. Both servers
        follow the first PONG with an INFO carrying ``connect_info: true``; it is consumed
        here and kept in ``self.connect_info``."""
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1}
        opts.update(connect)
        await self.send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        assert await self.read_line() == b"PONG\r\n"
        line = await self.read_line()
        assert line.startswith(b"INFO ") and line.endswith(b" \r\n"), line
        self.connect_info = json.loads(line[5:-3])
        assert self.connect_info.get("connect_info") is True, self.connect_info

    async def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise asyncio.TimeoutError
        chunk = await asyncio.wait_for(self.reader.read(1 << 16), remaining)
        if not chunk:
            return False
        self.buf += chunk
        return True

    async def read_line(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            if not await self._fill(deadline):
                raise EOFError(f"EOF before a full line; have {self.buf!r}")
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    async def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        """Everything up to and including ``marker``."""
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if not await self._fill(deadline):
                raise EOFError(f"EOF before {marker!r}; have {self.buf!r}")
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    async def read_exact(self, n: int, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            if not await self._fill(deadline):
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes: {self.buf!r}")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def read_to_eof(self, timeout: float = 5.0, limit: int = 1 << 28) -> bytes:
        """Read until the server closes; raises TimeoutError if it does not."""
        deadline = time.monotonic() + timeout
        while len(self.buf) <= limit:
            if not await self._fill(deadline):
                out, self.buf = self.buf, b""
                return out
        raise AssertionError(f"more than {limit} bytes without EOF")

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


def connect_op(**fields) -> bytes:
    """A CONNECT line (no verbose/pedantic, headers on) with extra fields, e.g. user/pass."""
    opts = {"verbose": False, "pedantic": False, "headers": True}
    opts.update(fields)
    return b"CONNECT " + json.dumps(opts).encode() + b"\r\n"


_INFO_LINE = re.compile(rb"(?m)^INFO [^\r\n]*\r\n")


async def transcript(port: int, steps, timeout: float = 5.0) -> dict[str, bytes]:
    """Replay ``steps`` — ``(conn_name, bytes)`` pairs, or ``("sleep", seconds)`` — over
    raw connections to ``port``.

    A connection is opened on its name's first use. Each step's bytes are followed by a
    PING and read up to the PONG, so the server has processed the step before the next
    one (and a message it routed to another connection is queued there ahead of that
    connection's next PONG). At the end every open connection is PINGed once more.
    Returns what each connection received, INFO lines removed, PONGs kept, and ``<EOF>``
    where the server closed the connection."""
    conns: dict[str, RawConn] = {}
    out: dict[str, bytes] = {}
    closed: set[str] = set()

    async def roundtrip(name: str, data: bytes) -> None:
        c = conns[name]
        try:
            await c.send(data + b"PING\r\n")
            got = await c.read_until(b"PONG\r\n", timeout=timeout)
        except (EOFError, ConnectionError):
            got, c.buf = c.buf + b"<EOF>", b""
            closed.add(name)
        out[name] = out.get(name, b"") + got

    try:
        for name, data in steps:
            if name == "sleep":
                await asyncio.sleep(data)
                continue
            if name not in conns:
                conns[name] = await RawConn.open(port)
            if name in closed:
                raise AssertionError(f"step on {name!r} after the server closed it")
            await roundtrip(name, data)
        for name in conns:
            if name not in closed:
                await roundtrip(name, b"")
    finally:
        for c in conns.values():
            c.close()
    return {k: _INFO_LINE.sub(b"", v) for k, v in out.items()}


# --- monitoring ---------------------------------------------------------------------------

MONITOR_RE = re.compile(rb"Starting http monitor on \S+:(\d+)")


def port_from_log(server, regex: "re.Pattern") -> int:
    """The port a server logged a listener on (``regex`` captures it), bounded wait."""
    deadline = time.monotonic() + 5
    while True:
        m = regex.search(server.log_path.read_bytes())
        if m:
            return int(m.group(1))
        if time.monotonic() > deadline:
            raise AssertionError(f"no {regex.pattern!r} line in the log:\n{server.log()}")
        time.sleep(0.02)


def monitor_port(server) -> int:
    """The HTTP monitoring port of a server started with ``http_port: -1`` / ``-m -1``."""
    return port_from_log(server, MONITOR_RE)


async def monz(server, path: str) -> dict:
    """GET a monitoring endpoint as JSON."""
    import urllib.request

    url = f"http://127.0.0.1:{monitor_port(server)}{path}"

    def get():
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    return await asyncio.to_thread(get)
