"""TLS for client connections, against natrium-server and nats-server with the same config
text: the ``tls {}`` block (verify, timeout, handshake_first, min_version),
``allow_non_tls``, the ``--tls*`` flags and the config errors.

What is checked, and why it matters to clients:

* INFO is sent in the clear and says ``tls_required`` (``tls_verify`` with client
  certificates, ``tls_available`` instead with ``allow_non_tls``); with
  ``handshake_first`` nothing comes in the clear. Clients decide from these fields
  whether to start TLS, so their presence and absence are compared exactly.
* nats-py with an ``ssl.SSLContext`` trusting the test CA connects, publishes and receives
  (also a payload bigger than a TLS record), and ``/connz`` and ``/varz`` describe the
  session (``tls_version``, ``tls_cipher_suite``, ``tls_first``; ``tls_required``,
  ``tls_verify``, ``tls_timeout``, ``auth_timeout``). The two servers may pick different
  cipher suites, so only the ``TLS_`` prefix of the suite is compared.
* A failed or timed-out handshake closes the connection without a reply, and
  ``/connz?state=closed`` records it.
* Client certificates (``verify``; ``verify_and_map`` logging a client in as the user
  its certificate names, and ``tls_peer_certs`` in ``/connz?auth=1``), the server
  certificate's expiry in ``/varz``, TLS versions, and config/flag errors (exit status and
  a keyword only: the messages are worded differently).

nats-py only starts TLS when INFO says ``tls_required`` (or with
``tls_handshake_first``), so the TLS client of an ``allow_non_tls`` server is a raw
socket upgraded with ``StreamWriter.start_tls`` after INFO.

The certificates are in ``tests/data/tls`` (see its ``generate.py``): ``ca.pem`` signs the
server's (``localhost``, ``127.0.0.1``) and alice's client certificate; the stranger's is
signed by a CA the server does not trust."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import ssl
import time
import urllib.request
from pathlib import Path

import nats
import pytest

from natsutil import RawConn, async_test, connect, monz, sync

TLS_DIR = Path(__file__).resolve().parents[1] / "data" / "tls"

# nats-server's name for the close reason of a failed or timed-out TLS handshake
# (its ClosedState TLSHandshakeError prints as "TLS Handshake Failure").
HANDSHAKE_FAILURE = "TLS Handshake Failure"

ABSENT = "<absent>"


def pem(name: str) -> str:
    return str(TLS_DIR / name)


def tls_conf(*lines: str, top: str = "") -> str:
    """A config with the monitor on a random port and a ``tls {}`` block holding the
    server certificate plus ``lines``; ``top`` goes before the block."""
    body = [f'cert_file: "{pem("server-cert.pem")}"', f'key_file: "{pem("server-key.pem")}"', *lines]
    return "http_port: -1\n" + top + "tls {\n" + "".join(f"  {line}\n" for line in body) + "}\n"


VERIFY = ("verify: true", f'ca_file: "{pem("ca.pem")}"')


def client_ctx(identity: str | None = None, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context trusting the test CA; ``identity`` ("client", "stranger") loads
    that certificate and key."""
    ctx = ssl.create_default_context(cafile=pem("ca.pem"))
    if identity is not None:
        ctx.load_cert_chain(pem(f"{identity}-cert.pem"), pem(f"{identity}-key.pem"))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


# --- monitoring -------------------------------------------------------------------------

def tls_fields(conn: dict) -> dict:
    return {k: v for k, v in conn.items() if k.startswith("tls")}


async def open_conns(server, n: int) -> list[dict]:
    """The open connections once there are ``n`` of them (bounded wait)."""
    deadline = time.monotonic() + 5
    while True:
        conns = (await monz(server, "/connz"))["connections"]
        if len(conns) == n or time.monotonic() > deadline:
            assert len(conns) == n, conns
            return conns
        await asyncio.sleep(0.05)


async def closed_conns(server, n: int) -> list[dict]:
    """The closed connections once there are ``n`` of them (bounded wait)."""
    deadline = time.monotonic() + 5
    while True:
        conns = (await monz(server, "/connz?state=closed"))["connections"]
        if len(conns) >= n or time.monotonic() > deadline:
            assert len(conns) == n, conns
            return conns
        await asyncio.sleep(0.05)


async def varz_tls(server) -> dict:
    v = await monz(server, "/varz")
    return {k: v.get(k, ABSENT) for k in ("tls_required", "tls_verify", "tls_timeout", "auth_timeout")}


def assert_tls_session(conn: dict, version: str = "1.3", first: bool = False) -> None:
    assert conn.get("tls_version") == version, conn
    suite = conn.get("tls_cipher_suite")
    assert isinstance(suite, str) and suite.startswith("TLS_") and len(suite) > 4, conn
    if first:
        assert conn.get("tls_first") is True, conn
    else:
        assert "tls_first" not in conn, conn


# --- clients ------------------------------------------------------------------------------

async def tls_connect(server, **kw) -> nats.NATS:
    kw.setdefault("tls", client_ctx())
    return await connect(server.url, **kw)


async def assert_refused(server, expected_alert: str | None = None, **kw) -> None:
    """nats-py cannot connect. In TLS 1.3 the server's alert about a client certificate
    arrives after the client finished its side and sent CONNECT, so the close can race
    the alert: a reset is accepted, but an SSL error must name ``expected_alert``."""
    with pytest.raises((ssl.SSLError, ConnectionError)) as ei:
        nc = await tls_connect(server, **kw)
        await nc.close()
    if isinstance(ei.value, ssl.SSLError) and expected_alert is not None:
        assert expected_alert in str(ei.value), repr(ei.value)


async def roundtrip(sender, receiver, subject: str, payload: bytes) -> None:
    sub = await receiver.subscribe(subject)
    await sync(receiver)
    await sender.publish(subject, payload)
    await sync(sender)
    m = await sub.next_msg(timeout=5)
    assert m.data == payload
    await sub.unsubscribe()


async def first_bytes(port: int, wait: float) -> bytes | None:
    """What a raw client that sends nothing receives in ``wait`` seconds (None: nothing,
    connection still open)."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        return await asyncio.wait_for(r.read(1 << 16), wait)
    except asyncio.TimeoutError:
        return None
    finally:
        w.close()


async def raw_tls_after_info(port: int, ctx: ssl.SSLContext | None = None) -> RawConn:
    """A raw client that reads INFO in the clear, then starts TLS on the same socket."""
    c = await RawConn.open(port)
    assert c.buf == b"", c.buf
    await asyncio.wait_for(c.writer.start_tls(ctx or client_ctx(), server_hostname="localhost"), 5)
    return c


# --- 1. INFO and /varz ---------------------------------------------------------------------

INFO_CASES = {
    # case: (config, tls_* fields of INFO, /varz tls_required, tls_verify, tls_timeout, auth_timeout)
    "tls": (tls_conf(), {"tls_required": True}, (True, ABSENT, 2, 3)),
    "verify": (tls_conf(*VERIFY), {"tls_required": True, "tls_verify": True}, (True, True, 2, 3)),
    "allow_non_tls": (tls_conf(top="allow_non_tls: true\n"), {"tls_available": True}, (ABSENT, ABSENT, 2, 3)),
    "timeout": (tls_conf("timeout: 0.5"), {"tls_required": True}, (True, ABSENT, 0.5, 1.5)),
    # Control: without TLS the auth timeout stays at its 2 s default.
    "no_tls": ("http_port: -1\n", {}, (ABSENT, ABSENT, 2, 2)),
}


@pytest.mark.parametrize("case", list(INFO_CASES))
@async_test()
async def test_info_and_varz(start_server, case):
    conf, info_tls, varz = INFO_CASES[case]
    server = start_server(config=conf)
    c = await RawConn.open(server.port)
    try:
        assert tls_fields(c.info) == info_tls, c.info
    finally:
        c.close()
    assert await varz_tls(server) == dict(zip(("tls_required", "tls_verify", "tls_timeout", "auth_timeout"), varz))


@async_test()
async def test_handshake_first_sends_nothing_in_the_clear(start_server):
    """With handshake_first the server waits for a ClientHello: no INFO in the clear, and a
    client that never starts TLS is closed at the TLS timeout without a byte."""
    server = start_server(config=tls_conf("handshake_first: true", "timeout: 0.5"))
    assert await first_bytes(server.port, 0.3) is None
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 5)
    try:
        t0 = time.monotonic()
        assert await asyncio.wait_for(r.read(), 5) == b""
        assert 0.3 < time.monotonic() - t0 < 3
    finally:
        w.close()
    # Both raw connections (the first one closed by the client) ended without a session.
    assert [tls_fields(c) for c in await closed_conns(server, 2)] == [{}, {}]


# --- 2. nats-py over TLS -----------------------------------------------------------------

@async_test()
async def test_pubsub_over_tls_and_connz(start_server):
    server = start_server(config=tls_conf())
    a = await tls_connect(server, name="a")
    b = await tls_connect(server, name="b")
    try:
        assert a._server_info.get("tls_required") is True
        await roundtrip(a, b, "tls.small", b"hello")
        # Bigger than a TLS record (16 KiB) and than a 64 KiB read buffer.
        big = bytes(range(256)) * 1200  # 300 KiB
        await roundtrip(b, a, "tls.big", big)
        # Request/reply, and many small messages in one go.
        async def reverse(m):
            await m.respond(m.data[::-1])

        sub = await b.subscribe("tls.svc", cb=reverse)
        await sync(b)
        assert (await a.request("tls.svc", b"abc", timeout=5)).data == b"cba"
        await sub.unsubscribe()
        sub = await b.subscribe("tls.many")
        await sync(b)
        for i in range(500):
            await a.publish("tls.many", str(i).encode())
        for i in range(500):
            assert (await sub.next_msg(timeout=5)).data == str(i).encode()
        conns = await open_conns(server, 2)
        assert sorted(c.get("name") for c in conns) == ["a", "b"]
        for conn in conns:
            assert_tls_session(conn, "1.3")
    finally:
        await a.close()
        await b.close()
    for conn in await closed_conns(server, 2):
        assert conn["reason"] == "Client Closed", conn
        assert_tls_session(conn, "1.3")


# --- 3. a plain client on a TLS port ---------------------------------------------------------

@async_test()
async def test_plain_client_gets_no_pong(start_server):
    server = start_server(config=tls_conf())
    c = await RawConn.open(server.port)
    try:
        assert c.info["tls_required"] is True
        await c.send(b"CONNECT {}\r\nPING\r\n")
        rest = await c.read_to_eof(timeout=5)
        assert b"PONG" not in rest and b"-ERR" not in rest, rest
    finally:
        c.close()
    [closed] = await closed_conns(server, 1)
    assert tls_fields(closed) == {}, closed
    assert (await monz(server, "/connz"))["connections"] == []


@async_test()
async def test_plain_client_gets_nothing_after_info(start_server):
    server = start_server(config=tls_conf())
    c = await RawConn.open(server.port)
    try:
        await c.send(b"CONNECT {}\r\nPING\r\n")
        assert await c.read_to_eof(timeout=5) == b""
    finally:
        c.close()


@async_test()
async def test_closed_reason_of_failed_handshakes(start_server):
    """Every kind of failed handshake: a plaintext client, a silent one (timeout), a client
    without a certificate, and one below min_version."""
    server = start_server(config=tls_conf(*VERIFY, "timeout: 0.5", 'min_version: "1.3"'))
    c = await RawConn.open(server.port)
    try:
        await c.send(b"CONNECT {}\r\nPING\r\n")
        await c.read_to_eof(timeout=5)
    finally:
        c.close()
    c = await RawConn.open(server.port)
    try:
        await c.read_to_eof(timeout=5)
    finally:
        c.close()
    await assert_refused(server)
    await assert_refused(server, tls=client_ctx("client", ssl.TLSVersion.TLSv1_2))
    closed = await closed_conns(server, 4)
    assert [c.get("reason") for c in closed] == [HANDSHAKE_FAILURE] * 4, closed
    assert [tls_fields(c) for c in closed] == [{}] * 4


# --- 4. client certificates ---------------------------------------------------------------

@async_test()
async def test_verify_client_certificates(start_server):
    server = start_server(config=tls_conf(*VERIFY))
    await assert_refused(server, "CERTIFICATE_REQUIRED")
    await assert_refused(server, "UNKNOWN_CA", tls=client_ctx("stranger"))
    nc = await tls_connect(server, tls=client_ctx("client"))
    try:
        assert nc._server_info.get("tls_verify") is True
        await roundtrip(nc, nc, "verify.rt", b"alice")
        [conn] = await open_conns(server, 1)
        assert_tls_session(conn, "1.3")
    finally:
        await nc.close()
    closed = await closed_conns(server, 3)
    assert [bool(tls_fields(c)) for c in closed] == [False, False, True], closed


@async_test()
async def test_verify_without_ca_file(start_server, run_server_to_exit, impl):
    """A documented difference (docs/compat.md): nats-server checks client certificates
    against the system roots; natrium loads none, so it refuses the config instead."""
    conf = tls_conf("verify: true")
    if impl == "natrium":
        code, _, err = run_server_to_exit(conf)
        assert code == 1 and "ca_file" in err, err
        return
    server = start_server(config=conf)
    # The test CA is not a system root, so even alice's certificate is refused.
    await assert_refused(server, "UNKNOWN_CA", tls=client_ctx("client"))


def cert_digests(name: str) -> tuple[str, str]:
    """(spki_sha256, cert_sha256) of a test certificate, as /connz reports them."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Path(pem(name)).read_bytes()
    cert = x509.load_pem_x509_certificate(raw)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest(), hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def map_conf(*users: str) -> str:
    listed = ", ".join(f"{{user: {json.dumps(u)}}}" for u in users)
    return tls_conf("verify_and_map: true", f'ca_file: "{pem("ca.pem")}"',
                    top=f"accounts {{ A {{ users: [ {listed} ] }} }}\n")


MAP_CASES = {
    # The certificate's e-mail address wins over its subject.
    "email": (["CN=alice,OU=Clients,O=Natrium Test", "alice@example.com"], "alice@example.com"),
    # The subject in Go's form.
    "subject": (["bob", "CN=alice,OU=Clients,O=Natrium Test"], "CN=alice,OU=Clients,O=Natrium Test"),
    # The subject as a DN with its RDNs in another order.
    "dn_reordered": (["O=Natrium Test,OU=Clients,CN=alice"], "O=Natrium Test,OU=Clients,CN=alice"),
    # Nothing names alice: refused.
    "none": (["CN=bob,OU=Clients,O=Natrium Test", "alice"], None),
}


@pytest.mark.parametrize("case", list(MAP_CASES))
@async_test()
async def test_verify_and_map(start_server, case):
    users, expected = MAP_CASES[case]
    server = start_server(config=map_conf(*users))
    if expected is None:
        with pytest.raises(nats.errors.Error) as ei:
            nc = await tls_connect(server, tls=client_ctx("client"))
            await nc.close()
        assert "Authorization Violation" in str(ei.value), repr(ei.value)
        [closed] = await closed_conns(server, 1)
        assert closed["reason"] == "Authentication Failure", closed
        return
    nc = await tls_connect(server, tls=client_ctx("client"))
    try:
        await roundtrip(nc, nc, "map.rt", b"mapped")
        [conn] = (await monz(server, "/connz?auth=1"))["connections"]
        assert conn["authorized_user"] == expected, conn
        assert conn["account"] == "A", conn
        # What the client sent: its certificate, then the CA (OpenSSL adds the chain
        # from its trust store).
        spki, whole = cert_digests("client-cert.pem")
        ca_spki, ca_whole = cert_digests("ca.pem")
        assert conn["tls_peer_certs"] == [
            {"subject": "CN=alice,OU=Clients,O=Natrium Test", "spki_sha256": spki, "cert_sha256": whole},
            {"subject": "CN=Natrium Test CA,O=Natrium Test", "spki_sha256": ca_spki, "cert_sha256": ca_whole},
        ], conn
        # Without auth=1 the certificates are not shown.
        [plain] = (await monz(server, "/connz"))["connections"]
        assert "tls_peer_certs" not in plain, plain
    finally:
        await nc.close()
    # A client without a certificate never gets as far as CONNECT.
    await assert_refused(server, "CERTIFICATE_REQUIRED")


@async_test()
async def test_varz_tls_cert_not_after(start_server):
    """The server certificate's expiry, exactly as nats-server prints it."""
    from cryptography import x509

    server = start_server(config=tls_conf())
    cert = x509.load_pem_x509_certificate(Path(pem("server-cert.pem")).read_bytes())
    expected = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await monz(server, "/varz"))["tls_cert_not_after"] == expected
    plain = start_server(config="http_port: -1\n")
    assert "tls_cert_not_after" not in await monz(plain, "/varz")


# --- 5. handshake_first ---------------------------------------------------------------------

@async_test()
async def test_handshake_first(start_server):
    server = start_server(config=tls_conf("handshake_first: true"))
    a = await tls_connect(server, tls_handshake_first=True)
    b = await tls_connect(server, tls_handshake_first=True)
    try:
        assert a._server_info.get("tls_required") is True
        await roundtrip(a, b, "first.rt", b"x" * 100_000)
        for conn in await open_conns(server, 2):
            assert_tls_session(conn, "1.3", first=True)
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("case", ["auto", "300ms"])
@async_test()
async def test_handshake_first_with_fallback(start_server, case):
    """``auto`` (50 ms) or a duration: a client that starts TLS at once gets TLS first; one
    that waits gets INFO in the clear after the delay and starts TLS after it."""
    server = start_server(config=tls_conf(f'handshake_first: "{case}"'))
    t0 = time.monotonic()
    c = await RawConn.open(server.port)
    waited = time.monotonic() - t0
    c.close()
    assert c.info["tls_required"] is True
    if case == "300ms":
        assert 0.25 < waited < 2, waited
    else:
        assert waited < 1, waited
    first = await tls_connect(server, tls_handshake_first=True, name="first")
    later = await tls_connect(server, name="later")
    try:
        await roundtrip(first, later, "fallback.rt", b"one")
        await roundtrip(later, first, "fallback.rt", b"two")
        conns = {c["name"]: c for c in await open_conns(server, 2)}
        assert_tls_session(conns["first"], "1.3", first=True)
        assert_tls_session(conns["later"], "1.3", first=False)
    finally:
        await first.close()
        await later.close()


# --- 6. allow_non_tls --------------------------------------------------------------------

@async_test()
async def test_allow_non_tls(start_server):
    server = start_server(config=tls_conf(top="allow_non_tls: true\n"))
    plain = await connect(server.url, name="plain")
    t = await raw_tls_after_info(server.port)
    try:
        assert "tls_required" not in plain._server_info
        assert plain._server_info.get("tls_available") is True
        await t.handshake(name="tls")
        sub = await plain.subscribe("mixed.to_plain")
        await sync(plain)
        await t.send(b"SUB mixed.to_tls 1\r\nPUB mixed.to_plain 6\r\nsecret\r\nPING\r\n")
        assert await t.read_line() == b"PONG\r\n"
        assert (await sub.next_msg(timeout=5)).data == b"secret"
        await plain.publish("mixed.to_tls", b"public")
        await sync(plain)
        assert await t.read_line() == b"MSG mixed.to_tls 1 6\r\n"
        assert await t.read_line() == b"public\r\n"
        conns = {c["name"]: c for c in await open_conns(server, 2)}
        assert tls_fields(conns["plain"]) == {}, conns["plain"]
        assert_tls_session(conns["tls"], "1.3")
    finally:
        t.close()
        await plain.close()


@async_test()
async def test_tls_client_on_plain_server_is_refused(start_server):
    """Control for allow_non_tls: without a tls block a client's ClientHello is not
    protocol, and nats-py with a TLS context still connects in the clear."""
    server = start_server(config="http_port: -1\n")
    nc = await connect(server.url, tls=client_ctx())
    try:
        await roundtrip(nc, nc, "plain.rt", b"ok")
        [conn] = await open_conns(server, 1)
        assert tls_fields(conn) == {}, conn
    finally:
        await nc.close()
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.TimeoutError)):
        c = await raw_tls_after_info(server.port)
        c.close()


# --- 7. the handshake timeout ---------------------------------------------------------------

@async_test()
async def test_handshake_timeout(start_server):
    server = start_server(config=tls_conf("timeout: 0.5"))
    c = await RawConn.open(server.port)
    try:
        t0 = time.monotonic()
        assert await c.read_to_eof(timeout=5) == b""
        assert 0.3 < time.monotonic() - t0 < 3
    finally:
        c.close()
    [closed] = await closed_conns(server, 1)
    assert tls_fields(closed) == {}, closed
    # A client that completes the handshake in time is not affected by the short timeout.
    nc = await tls_connect(server)
    try:
        await asyncio.sleep(0.7)
        await roundtrip(nc, nc, "timeout.rt", b"still here")
    finally:
        await nc.close()


# --- 8. TLS versions --------------------------------------------------------------------------

@async_test()
async def test_min_version_1_3(start_server):
    server = start_server(config=tls_conf('min_version: "1.3"'))
    with pytest.raises(ssl.SSLError) as ei:
        nc = await tls_connect(server, tls=client_ctx(max_version=ssl.TLSVersion.TLSv1_2))
        await nc.close()
    assert "PROTOCOL_VERSION" in str(ei.value), repr(ei.value)
    nc = await tls_connect(server)
    try:
        [conn] = await open_conns(server, 1)
        assert_tls_session(conn, "1.3")
    finally:
        await nc.close()


@async_test()
async def test_tls_1_2_client_by_default(start_server):
    server = start_server(config=tls_conf())
    nc = await tls_connect(server, tls=client_ctx(max_version=ssl.TLSVersion.TLSv1_2))
    try:
        await roundtrip(nc, nc, "v12.rt", b"z" * 70_000)
        [conn] = await open_conns(server, 1)
        assert_tls_session(conn, "1.2")
    finally:
        await nc.close()


# --- 9. config errors ---------------------------------------------------------------------

CONFIG_ERRORS = {
    # case: (config, keyword both servers print, lower-cased)
    "missing_cert_file": (
        f'tls {{\n  cert_file: "/nonexistent/natrium-test/cert.pem"\n  key_file: "{pem("server-key.pem")}"\n}}\n',
        "no such file"),
    "key_without_cert": (f'tls {{\n  key_file: "{pem("server-key.pem")}"\n}}\n', "missing 'cert_file'"),
    "unknown_field": (tls_conf("bogus_field: 1"), 'unknown field "bogus_field"'),
    "cert_key_mismatch": (
        f'tls {{\n  cert_file: "{pem("client-cert.pem")}"\n  key_file: "{pem("server-key.pem")}"\n}}\n',
        "certificate/key pair"),
    "bad_min_version": (tls_conf('min_version: "1.1"'), "unsupported tls version"),
    "https_without_tls": ("https_port: -1\n", "tls cert and key required for https"),
    "http_and_https": (tls_conf(top="https_port: 8443\n"), "can't specify both http"),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_config_errors(run_server_to_exit, case):
    conf, keyword = CONFIG_ERRORS[case]
    rc, out, err = run_server_to_exit(conf)
    assert rc not in (0, None), (rc, out, err)
    assert keyword in (out + err).lower(), (rc, out, err)


# --- 10. flags ------------------------------------------------------------------------------

@async_test()
async def test_tls_flags(start_server):
    server = start_server(args=["--tls", "--tlscert", pem("server-cert.pem"), "--tlskey", pem("server-key.pem")])
    c = await RawConn.open(server.port)
    c.close()
    assert tls_fields(c.info) == {"tls_required": True}, c.info
    nc = await tls_connect(server)
    try:
        await roundtrip(nc, nc, "flags.rt", b"ok")
    finally:
        await nc.close()
    # --tlsverify implies --tls.
    server = start_server(args=["--tlsverify", "--tlscert", pem("server-cert.pem"),
                                "--tlskey", pem("server-key.pem"), "--tlscacert", pem("ca.pem")])
    c = await RawConn.open(server.port)
    c.close()
    assert tls_fields(c.info) == {"tls_required": True, "tls_verify": True}, c.info
    await assert_refused(server, "CERTIFICATE_REQUIRED")
    nc = await tls_connect(server, tls=client_ctx("client"))
    await nc.close()


@pytest.mark.parametrize("case", ["no_cert", "no_key"])
def test_tls_flag_errors(run_server_to_exit, case):
    args = ["--tls"] if case == "no_cert" else ["--tls", "--tlscert", pem("server-cert.pem")]
    rc, out, err = run_server_to_exit("", args)
    assert rc not in (0, None), (rc, out, err)
    word = "certificate" if case == "no_cert" else "private key"
    assert f"tls server {word} must be present and valid" in (out + err).lower(), (rc, out, err)


# --- 11. HTTPS monitoring -----------------------------------------------------------------

HTTPS_RE = re.compile(rb"Starting https monitor on \S+:(\d+)")


@async_test()
async def test_https_monitoring(start_server):
    """``https_port`` serves the monitoring endpoints over TLS with the server's
    certificate, without asking for a client certificate even when NATS clients need one;
    plain HTTP on that port gets no answer."""
    conf = tls_conf(*VERIFY).replace("http_port: -1\n", "https_port: -1\n", 1)
    server = start_server(config=conf)
    deadline = time.monotonic() + 5
    while not (m := HTTPS_RE.search(server.log_path.read_bytes())):
        assert time.monotonic() < deadline, server.log()
        await asyncio.sleep(0.02)
    port = int(m.group(1))

    def get(url: str, ctx: ssl.SSLContext | None) -> dict:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return json.loads(r.read())

    varz = await asyncio.to_thread(get, f"https://127.0.0.1:{port}/varz", client_ctx())
    assert varz["tls_required"] is True and varz["tls_verify"] is True, varz
    assert varz["https_port"] == -1, varz  # as configured, not as bound
    assert "http_port" not in varz or varz["http_port"] == 0, varz
    with pytest.raises(Exception):
        await asyncio.to_thread(get, f"http://127.0.0.1:{port}/varz", None)
