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
its cache (a `duplicate` event), so a Send it reports twice was relayed as a new message
(mqtt_sends.py).
"""
import os
import random
import signal
import time

from lwm2m_peers import GATEWAY_BIN  # noqa: F401  (the conftest checks the build)
from mqtt_sends import (Reads, account_sends, gateway_on_broker, registered_devices,
                        wait_for_series)

DEVICES = 3
SENDS = 80            # per device
SEND_EVERY_MS = 100   # the series lasts about as long as the kills
KILLS = 5
UP_S = (0.3, 1.2)     # the gateway runs this long (uniformly random) before each stall
STALL_S = (0.1, 0.4)  # and stalls this long, then is killed within KILL_AFTER_S
KILL_AFTER_S = (0.0, 0.03)
NOTIFY_MS = 300
SLOW_MS = 1500        # a device that answers after the core acknowledged the request empty


def observe_newer(v1, v2):
    """RFC 7641 4.4: V2 is a newer notification than V1 (24-bit serial arithmetic; the 128 s
    rule does not come into play within this test)."""
    return 0 < (v2 - v1) % (1 << 24) < (1 << 23)


def test_gateway_killed_under_traffic_loses_and_duplicates_nothing(peers):
    """Every Send the broker acknowledged to a device reaches the server once and is answered to
    the device, every server request is answered by its device, nobody registers again, and the
    observation's notifications go on, newer each time."""
    seed = int(os.environ.get("GW_TEST_SEED", time.time_ns() % 1000000))
    rng = random.Random(seed)
    broker, server, gw = gateway_on_broker(peers)
    eps = [f"meter-{i}" for i in range(DEVICES)]
    slow = eps[-1]
    devices = registered_devices(
        peers, broker, server, eps,
        extra=lambda ep: ["--notify-ms", str(NOTIFY_MS)]
        + (["--delay-ms", str(SLOW_MS)] if ep == slow else []))
    observed = eps[0]
    first = server.request(f"observe 1 {observed} /3/0/13")
    assert first["code"] == "2.05"
    server.wait_for("notify", id=1)
    for dev in devices.values():
        dev.send(f"sends {SENDS} {SEND_EVERY_MS}")

    reads = Reads(server, eps, first_id=2)
    notified_at_kill = []
    for k in range(KILLS):
        reads.every_device()
        time.sleep(rng.uniform(*UP_S))
        gw.peer.proc.send_signal(signal.SIGSTOP)
        time.sleep(rng.uniform(*STALL_S))
        gw.peer.proc.send_signal(signal.SIGCONT)
        time.sleep(rng.uniform(*KILL_AFTER_S))
        gw.kill()
        notified_at_kill.append(len(server.seen_events("notify", id=1)))
        reads.every_device()  # retransmitted by the server until the gateway is back
        gw = peers.restart(gw, name=f"gateway-{k + 1}")
        gw.wait_metric("mqtt_connected", 1, timeout=15)
    reads.every_device()

    wait_for_series(server, devices, SENDS)
    fates = account_sends(server, devices, SENDS)

    # Requests the server sent while the gateway was away are answered once it is back.
    bad_reads = reads.not_answered_by_their_device(30)

    # The observation outlived every kill: its Notify was relayed after each restart, not
    # answered with Cancel-Observe, and each notification is newer than the one before.
    notes = server.seen_events("notify", id=1)
    values = [first["observe"]] + [n["observe"] for n in notes]
    stale = [(a, b) for a, b in zip(values, values[1:]) if not observe_newer(a, b)]
    cancelled = devices[observed].count("observe-cancelled")
    registers = server.count("register")
    resent = server.count("duplicate")

    summary = (f"seed {seed}, {KILLS} kills: {fates}, {resent} requests relayed again with "
               f"their message ID (answered from the server's cache); {len(bad_reads)} of "
               f"{len(reads.made)} reads not answered 2.05 by their device {bad_reads}; "
               f"{registers - DEVICES} Registers again; "
               f"{len(notes) - notified_at_kill[-1]} notifications after the last kill, "
               f"{cancelled} Cancel-Observe, {len(stale)} not newer than the one before")
    print(summary)
    assert fates.clean(), summary
    assert bad_reads == [], summary
    assert registers == DEVICES, summary
    assert server.count("deregister") == 0
    assert len(notes) > notified_at_kill[-1] + 2, summary
    assert (cancelled, stale) == (0, []), summary
    assert gw.metrics()["mqtt_unknown_notifications_total"] == 0
