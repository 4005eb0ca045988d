"""Issue 11, "nothing lost, nobody locked out": the gateway SIGKILLed under MQTT QoS 1 traffic.

Mosquitto keeps sessions (persistence on); the devices (test/peers/lwm2m_mqtt_device.py) have
persistent sessions of their own and publish a series of Sends while the server reads them and
observes one of them; one device answers the server's requests late. The gateway is killed with
SIGKILL at random moments, several times, and started again on the same state_dir. Each kill
follows a short stall (SIGSTOP, as a router under load), so that it lands while the gateway
catches up with what queued meanwhile: messages received and not handed on yet, requests relayed
and not answered yet. The assertions are on what the peers saw.

The test server deduplicates by (peer, message ID), as real ones do (RFC 7252 4.5): a Send the
gateway relays again after a restart with the same message ID from the same port is answered from
its cache (a `duplicate` event), so a Send it reports twice was relayed as a new message.
"""
import collections
import os
import random
import signal
import time

from lwm2m_peers import GATEWAY_BIN  # noqa: F401  (the conftest checks the build)

DEVICES = 3
SENDS = 80            # per device
SEND_EVERY_MS = 100   # the series lasts about as long as the kills
KILLS = 5
UP_S = (0.3, 1.2)     # the gateway runs this long (uniformly random) before each stall
STALL_S = (0.1, 0.4)  # and stalls this long, then is killed within KILL_AFTER_S
KILL_AFTER_S = (0.0, 0.03)
NOTIFY_MS = 300
SLOW_MS = 1500        # a device that answers after the core acknowledged the request empty


def events(peer, name, **match):
    peer.drain(0.05)
    return [e for e in peer.seen
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


def wait_until(condition, timeout):
    """Waits for condition(); the assertions afterwards say what was missing."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def observe_newer(v1, v2):
    """RFC 7641 4.4: V2 is a newer notification than V1 (24-bit serial arithmetic; the 128 s
    rule does not come into play within this test)."""
    return 0 < (v2 - v1) % (1 << 24) < (1 << 23)


def test_gateway_killed_under_traffic_loses_and_duplicates_nothing(peers):
    """Every Send the broker acknowledged to a device reaches the server once and is answered to
    the device, every server request is answered by its
    device, nobody registers again, and the observation's notifications go on, newer each time."""
    seed = int(os.environ.get("GW_TEST_SEED", time.time_ns() % 1000000))
    rng = random.Random(seed)
    broker = peers.broker(persistent=True)
    server = peers.server()
    # Requests in flight over a kill must complete with the device's own answer: the gateway
    # must not give up on them (5.04) while it is being restarted.
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", device_timeout_ms=20000,
                       mqtt=f'broker = "{broker.uri}"; prefix = "t";')
    gw.wait_metric("mqtt_connected", 1)
    eps = [f"meter-{i}" for i in range(DEVICES)]
    slow = eps[-1]
    devices = {ep: peers.mqtt_device(broker, ep, prefix="t",
                                     extra=["--persistent-session", "--notify-ms", str(NOTIFY_MS)]
                                     + (["--delay-ms", str(SLOW_MS)] if ep == slow else []))
               for ep in eps}
    for ep, dev in devices.items():
        server.wait_for("register", ep=ep)
        assert dev.wait_for("registered")["result"] == 201
    observed = eps[0]
    first = server.request(f"observe 1 {observed} /3/0/13")
    assert first["code"] == "2.05"
    server.wait_for("notify", id=1)
    for dev in devices.values():
        dev.send(f"sends {SENDS} {SEND_EVERY_MS}")

    reads = {}  # request id -> endpoint

    def read_every_device():
        for ep in eps:
            rid = len(reads) + 2
            reads[rid] = ep
            server.send(f"read {rid} {ep} /3/0/2")

    notified_at_kill = []
    for k in range(KILLS):
        read_every_device()
        time.sleep(rng.uniform(*UP_S))
        gw.peer.proc.send_signal(signal.SIGSTOP)
        time.sleep(rng.uniform(*STALL_S))
        gw.peer.proc.send_signal(signal.SIGCONT)
        time.sleep(rng.uniform(*KILL_AFTER_S))
        gw.kill()
        notified_at_kill.append(len(events(server, "notify", id=1)))
        read_every_device()  # retransmitted by the server until the gateway is back
        gw = peers.restart(gw, name=f"gateway-{k + 1}")
        gw.wait_metric("mqtt_connected", 1, timeout=15)
    read_every_device()

    def all_sends_acked():
        return all(len(events(d, "acked", kind="send")) == SENDS for d in devices.values())
    wait_until(all_sends_acked, 30)
    wait_until(lambda: all(len(events(d, "sent")) >= SENDS for d in devices.values()), 20)
    time.sleep(1.0)  # late copies, if any, would arrive now

    lost, twice, refused, unanswered = [], [], [], []
    for ep, dev in devices.items():
        acked = [e["payload_hex"] for e in events(dev, "acked", kind="send")]
        assert len(set(acked)) == SENDS, f"{ep}: the broker acknowledged {len(acked)} Sends"
        sends = [e for e in events(server, "send", ep=ep)]
        assert {e["payload_hex"] for e in sends} <= set(acked), \
            f"{ep}: the server got Sends never published"
        at_server = collections.Counter(e["payload_hex"] for e in sends)
        lost += [(ep, p) for p in acked if p not in at_server]
        twice += [(ep, p) for p, n in at_server.items() if n > 1]
        answers = events(dev, "sent")
        answered = {e["token"] for e in answers}
        unanswered += [(ep, e["token"]) for e in events(dev, "acked", kind="send")
                       if e["token"] not in answered]
        refused += [(ep, e["result"]) for e in answers if e["result"] != 204]
    # Requests the server sent while the gateway was away are answered once it is back.
    deadline = time.monotonic() + 30
    bad_reads = []
    for rid, ep in reads.items():
        try:
            r = server.wait_for("response", id=rid, timeout=max(0.1, deadline - time.monotonic()))
        except AssertionError:
            r = {"code": None, "payload": None}
        if (r["code"], r["payload"]) != ("2.05", ep):
            bad_reads.append((rid, ep, r["code"]))

    # The observation outlived every kill: its Notify was relayed after each restart, not
    # answered with Cancel-Observe, and each notification is newer than the one before.
    notes = events(server, "notify", id=1)
    values = [first["observe"]] + [n["observe"] for n in notes]
    stale = [(a, b) for a, b in zip(values, values[1:]) if not observe_newer(a, b)]
    cancelled = devices[observed].count("observe-cancelled")
    registers = server.count("register")
    resent = server.count("duplicate")

    summary = (f"seed {seed}, {KILLS} kills: {len(lost)} Sends lost, {len(twice)} relayed twice "
               f"with a new message ID, {len(unanswered)} unanswered {unanswered}, "
               f"{len(refused)} refused {collections.Counter(r for _, r in refused)}, "
               f"{resent} requests relayed again with their message ID (answered from the "
               f"server's cache); {len(bad_reads)} of {len(reads)} reads not answered 2.05 by "
               f"their device {bad_reads}; {registers - DEVICES} Registers again; "
               f"{len(notes) - notified_at_kill[-1]} notifications after the last kill, "
               f"{cancelled} Cancel-Observe, {len(stale)} not newer than the one before")
    print(summary)
    assert (lost, twice, refused, unanswered) == ([], [], [], []), summary
    assert bad_reads == [], summary
    assert registers == DEVICES, summary
    assert server.count("deregister") == 0
    assert len(notes) > notified_at_kill[-1] + 2, summary
    assert (cancelled, stale) == (0, []), summary
    assert gw.metrics()["mqtt_unknown_notifications_total"] == 0
