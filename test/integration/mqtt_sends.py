"""What became of the Sends MQTT test devices published in a series (lwm2m_mqtt_device.py
`sends N MS`) while the gateway went through faults, as the peers saw it. Shared by the tests
that restart the broker or kill the gateway under such traffic.

The test server answers a duplicate (peer, message ID) from its cache, as real servers do
(RFC 7252 4.5): a Send it reports twice was relayed as a new message.
"""
import collections
import time
from dataclasses import dataclass, field


def wait_until(condition, timeout):
    """Waits for condition(); the assertions afterwards say what was missing."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_for_series(server, devices, sends):
    """Waits until the broker acknowledged every device's `sends` Sends, the server saw them and
    the devices had their answers, then a second for late copies."""
    wait_until(lambda: all(len(d.seen_events("acked", kind="send")) == sends
                           for d in devices.values()), 30)
    wait_until(lambda: len(server.seen_events("send")) >= len(devices) * sends, 10)
    wait_until(lambda: all(len(d.seen_events("sent")) >= sends for d in devices.values()), 20)
    time.sleep(1.0)


@dataclass
class SendFates:
    """Sends the broker acknowledged to their device that the server never saw (lost), saw more
    than once (twice), or whose device got no answer (unanswered, by token) or another than
    204 (refused)."""
    lost: list = field(default_factory=list)
    twice: list = field(default_factory=list)
    unanswered: list = field(default_factory=list)
    refused: list = field(default_factory=list)

    def clean(self):
        return not (self.lost or self.twice or self.unanswered or self.refused)

    def __str__(self):
        return (f"{len(self.lost)} Sends lost, {len(self.twice)} relayed twice, "
                f"{len(self.unanswered)} unanswered {self.unanswered}, {len(self.refused)} "
                f"refused {collections.Counter(r for _, r in self.refused)}")


def account_sends(server, devices, sends):
    """SendFates of each device's series of `sends` Sends (devices: endpoint -> MqttDevice)."""
    fates = SendFates()
    for ep, dev in devices.items():
        acked = dev.seen_events("acked", kind="send")
        published = {e["payload_hex"] for e in acked}
        assert len(published) == sends, f"{ep}: the broker acknowledged {len(acked)} Sends"
        at_server = collections.Counter(e["payload_hex"] for e in server.seen_events("send", ep=ep))
        assert set(at_server) <= published, f"{ep}: the server got Sends never published"
        fates.lost += [(ep, p) for p in sorted(published - set(at_server))]
        fates.twice += [(ep, p) for p, n in at_server.items() if n > 1]
        answers = dev.seen_events("sent")
        answered = {e["token"] for e in answers}
        fates.unanswered += [(ep, e["token"]) for e in acked if e["token"] not in answered]
        fates.refused += [(ep, e["result"]) for e in answers if e["result"] != 204]
    return fates


def gateway_on_broker(peers):
    """Mosquitto keeping sessions, the test server and the gateway serving prefix "t" on it."""
    broker = peers.broker(persistent=True)
    server = peers.server()
    # Exchanges in flight over a fault must complete with the device's own answer: the gateway
    # must not give up on them (5.04) before the broker or the gateway itself is back.
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", device_timeout_ms=20000,
                       mqtt=f'broker = "{broker.uri}"; prefix = "t";')
    gw.wait_metric("mqtt_connected", 1)
    return broker, server, gw


def registered_devices(peers, broker, server, eps, extra=lambda ep: []):
    """An MQTT test device with a persistent session per endpoint (prefix "t"), each registered;
    extra(ep): more of its command line."""
    devices = {ep: peers.mqtt_device(broker, ep, prefix="t",
                                     extra=["--persistent-session"] + extra(ep))
               for ep in eps}
    for ep, dev in devices.items():
        server.wait_for("register", ep=ep)
        assert dev.wait_for("registered")["result"] == 201
    return devices


class Reads:
    """The server reads /3/0/2 of every device (a test device answers its endpoint name), with
    request ids from first_id on."""

    def __init__(self, server, eps, first_id=1):
        self.server, self.eps, self.next_id = server, eps, first_id
        self.made = {}  # request id -> endpoint

    def every_device(self):
        for ep in self.eps:
            self.made[self.next_id] = ep
            self.server.send(f"read {self.next_id} {ep} /3/0/2")
            self.next_id += 1

    def not_answered_by_their_device(self, timeout):
        """(id, endpoint, code) of the reads not answered 2.05 with their device's value
        within timeout, all together."""
        deadline = time.monotonic() + timeout
        bad = []
        for rid, ep in self.made.items():
            try:
                r = self.server.wait_for("response", id=rid,
                                         timeout=max(0.1, deadline - time.monotonic()))
            except AssertionError:
                r = {"code": None, "payload": None}
            if (r["code"], r["payload"]) != ("2.05", ep):
                bad.append((rid, ep, r["code"]))
        return bad
