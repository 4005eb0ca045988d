"""Issue 11, "no loss under faults": the MQTT broker restarted under QoS 1 traffic.

Mosquitto (persistence on, in the test's directory) is stopped and started again on the same
port; the devices (test/peers/lwm2m_mqtt_device.py) have persistent sessions of their own. The
assertions are on what the peers saw.
"""
import signal
import time

from lwm2m_peers import GATEWAY_BIN  # noqa: F401  (the conftest checks the build)


def events(peer, name, **match):
    peer.drain(0.05)
    return [e for e in peer.seen
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


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

    assert [n["payload"] for n in events(server, "notify", id=1)] == [notified["value"]]
    assert len(events(server, "send", ep="frozen")) == 1
    m = gw.metrics()
    # The gateway read the Notify from its old connection once it ran again, and its DUP copy
    # was told apart by its payload. (Whether it read the Send there too depends on where Paho
    # stops on the dead connection; a second copy would be answered from the core's cache.)
    assert m["mqtt_redelivered_total"] >= 1
    assert m["mqtt_redelivered_notifications_total"] == 1
    assert server.count("register") == 1
