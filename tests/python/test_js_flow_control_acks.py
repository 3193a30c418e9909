"""The `flow_control` ack policy (nats-server 2.15): a push consumer whose deliveries are
acknowledged by the answers to its flow-control requests, as a sourcing stream answers
them (`Nats-Last-Stream` / `Nats-Last-Consumer` headers), never by `$JS.ACK` replies.
Each test runs against natrium-server and nats-server 2.15.1 (the ``impl`` parameter)
and asserts what nats-server was measured to do."""

from __future__ import annotations

import asyncio
import json
import time

from natsutil import async_test, connect


async def api(nc, subject: str, body=None) -> dict:
    data = b"" if body is None else json.dumps(body).encode()
    r = await nc.request(f"$JS.API.{subject}", data, timeout=5)
    return json.loads(r.data)


async def until(pred, what: str, timeout: float = 10.0, extra=lambda: ""):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"never: {what} ({extra()})"
        await asyncio.sleep(0.02)


@async_test()
async def test_flow_control_responses_ack_and_plain_acks_do_not(js_server):
    nc = await connect(js_server.url)
    try:
        r = await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"]})
        assert "error" not in r, r
        js = nc.jetstream()
        for i in range(25):
            await js.publish("s.x", f"m{i + 1}".encode())

        msgs, fcs = [], []

        async def cb(m):
            status = (m.headers or {}).get("Status")
            if status == "100" and "FlowControl" in (m.headers or {}).get("Description", ""):
                fcs.append(m.reply)
            elif status is None:
                msgs.append(m)

        await nc.subscribe("fc.deliver", cb=cb)
        r = await api(nc, "CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
            "durable_name": "C", "deliver_subject": "fc.deliver", "ack_policy": "flow_control",
            "max_ack_pending": 10}})
        assert "error" not in r, r
        cfg = r["config"]
        assert (cfg["flow_control"], cfg["idle_heartbeat"], cfg["ack_policy"]) == (True, 1_000_000_000, "flow_control")

        def seqs(m):
            # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
            t = m.reply.split(".")
            return int(t[5]), int(t[6])

        async def info():
            return await api(nc, "CONSUMER.INFO.S.C")

        # max_ack_pending stops delivery at 10 and asks for a flow-control answer.
        await until(lambda: len(msgs) == 10 and len(fcs) == 1, "10 deliveries and a request",
                    extra=lambda: (len(msgs), len(fcs)))
        i = await info()
        assert (i["num_ack_pending"], i["ack_floor"]["stream_seq"]) == (10, 0), i

        # A plain ack does nothing under this policy.
        await nc.publish(msgs[0].reply, b"+ACK")
        await nc.flush()
        await asyncio.sleep(0.3)
        i = await info()
        assert (i["num_ack_pending"], i["ack_floor"]["stream_seq"]) == (10, 0), i

        # The answer to the request acks everything up to what it names.
        sseq, dseq = seqs(msgs[6])
        await nc.publish(fcs[0], b"", headers={"Nats-Last-Stream": str(sseq), "Nats-Last-Consumer": str(dseq)})
        await until(lambda: len(msgs) == 17, "7 more deliveries", extra=lambda: (len(msgs), len(fcs)))
        i = await info()
        assert i["ack_floor"]["stream_seq"] == 7, i
        assert i["num_ack_pending"] == 10, i

        # An answer on an old request subject is ignored.
        sseq, dseq = seqs(msgs[16])
        await nc.publish(fcs[0], b"", headers={"Nats-Last-Stream": str(sseq), "Nats-Last-Consumer": str(dseq)})
        await nc.flush()
        await asyncio.sleep(0.3)
        assert (await info())["ack_floor"]["stream_seq"] == 7

        # At max_ack_pending again: a new request; answering it with the last taken acks all.
        await until(lambda: len(fcs) == 2, "a second request")
        await nc.publish(fcs[1], b"", headers={"Nats-Last-Stream": str(sseq), "Nats-Last-Consumer": str(dseq)})
        await until(lambda: len(msgs) == 25, "all 25 delivered")
        i = await info()
        assert (i["ack_floor"]["stream_seq"], i["num_ack_pending"]) == (17, 8), i

        # Idle with acks pending: the heartbeat brings a request; its answer acks the rest.
        await until(lambda: len(fcs) == 3, "a request with the idle heartbeat", timeout=5)
        sseq, dseq = seqs(msgs[24])
        await nc.publish(fcs[2], b"", headers={"Nats-Last-Stream": str(sseq), "Nats-Last-Consumer": str(dseq)})
        deadline = time.monotonic() + 5
        while (i := await info())["num_ack_pending"] != 0:
            assert time.monotonic() < deadline, i
            await asyncio.sleep(0.05)
        assert (i["ack_floor"]["stream_seq"], i["delivered"]["stream_seq"]) == (25, 25), i
    finally:
        await nc.close()
