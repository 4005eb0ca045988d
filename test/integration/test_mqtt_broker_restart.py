"""Issue 11, "no loss under faults": the MQTT broker restarted under QoS 1 traffic.

Mosquitto (persistence on, in the test's directory) is stopped and started again on the same
port; the devices (test/peers/lwm2m_mqtt_device.py) have persistent sessions of their own. The
assertions are on what the peers saw.
"""
import signal
import time

from lwm2m_peers import GATEWAY_BIN  # noqa: F401  (the conftest checks the build)
from mqtt_sends import (Reads, account_sends, gateway_on_broker, registered_devices,
                        wait_for_series)

DEVICES = 3
SENDS = 60             # per device
SEND_EVERY_MS = 100    # the series lasts about as long as the restarts
RESTARTS = 3
DOWN_S = 0.3           # the broker is away this long (plus its own stop and start)
UP_S = 1.0             # and then serving everybody this long before the next restart


def test_broker_restarts_lose_and_duplicate_nothing(peers):
    """A few devices publish a series of Sends while the server reads them, and the broker is
    restarted several times meanwhile: every Send the broker acknowledged to a device reaches the
    server exactly once and is answered to the device, every server request gets the device's
    own answer, and no device has to register again."""
    broker, server, gw = gateway_on_broker(peers)
    eps = [f"meter-{i}" for i in range(DEVICES)]
    devices = registered_devices(peers, broker, server, eps)
    for dev in devices.values():
        dev.send(f"sends {SENDS} {SEND_EVERY_MS}")

    reads = Reads(server, eps)
    for _ in range(RESTARTS):
        reads.every_device()
        time.sleep(UP_S)
        broker.stop()
        reads.every_device()  # published by the gateway while the broker is away
        time.sleep(DOWN_S)
        broker.start()
        # Everybody back before the next restart: it is the restarts under traffic that are
        # tested here, not a broker that never stays up long enough for a reconnect.
        gw.wait_metric("mqtt_connected", 1, timeout=15)
        for dev in devices.values():
            dev.wait_for("connected", timeout=15)
    reads.every_device()

    wait_for_series(server, devices, SENDS)
    fates = account_sends(server, devices, SENDS)
    assert fates.clean(), f"{fates}; {RESTARTS} broker restarts"

    assert reads.not_answered_by_their_device(20) == []
    assert server.count("register") == DEVICES
    assert server.count("deregister") == 0
    m = gw.metrics()
    assert m["mqtt_reconnects_total"] == RESTARTS
    assert m["gateway_timeouts_total"] == 0


def test_redelivered_messages_are_relayed_once(peers):
    """The broker delivers a Notify and a Send to the gateway, which is frozen (SIGSTOP) and so
    does not acknowledge them, and restarts: it delivers both again with DUP set after the
    gateway's reconnect (MQTT 3.1.1 4.4). The server sees each once."""
    broker = peers.broker(persistent=True)
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       mqtt=f'broker = "{broker.uri}"; prefix = "t";')
    gw.wait_metric("mqtt_connected", 1)
    dev = peers.mqtt_device(broker, "frozen", prefix="t",
                            extra=["--persistent-session", "--notify-ms", "600000"])
    server.wait_for("register", ep="frozen")
    dev.wait_for("registered")
    assert server.request("observe 1 frozen /3/0/13")["code"] == "2.05"
    dev.wait_for("observe-started")

    gw.peer.proc.send_signal(signal.SIGSTOP)
    try:
        dev.send("notify")
        notified = dev.wait_for("notified")
        dev.send("send a1626e6161626176")
        dev.wait_for("acked", kind="send")  # after the Notify: the broker has both
        time.sleep(0.3)  # and has handed them to the frozen gateway's socket
        broker.stop()
        broker.start()
    finally:
        gw.peer.proc.send_signal(signal.SIGCONT)
    gw.wait_metric("mqtt_connected", 1, timeout=15)
    assert dev.wait_for("sent", timeout=15)["result"] == 204
    time.sleep(1.0)  # a second relay of either, if any, would arrive now

    assert [n["payload"] for n in server.seen_events("notify", id=1)] == [notified["value"]]
    assert len(server.seen_events("send", ep="frozen")) == 1
    m = gw.metrics()
    # The gateway read the Notify from its old connection once it ran again, and its DUP copy
    # was told apart by its payload. (Whether it read the Send there too depends on where Paho
    # stops on the dead connection; a second copy would be answered from the core's cache.)
    assert m["mqtt_redelivered_total"] >= 1
    assert m["mqtt_redelivered_notifications_total"] == 1
    assert server.count("register") == 1
