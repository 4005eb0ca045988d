"""The virtual LoRaWAN network server (scripts/vlns) on its own, without the gateway.

Each test starts a mosquitto and vlns (lwm2m_peers: PeerSet.broker, PeerSet.vlns), plays the
application server with a paho client (AppServer below) and the end devices with plain UDP
sockets (EndDevice), and asserts on what those two actually received: the MQTT events' topics
and JSON as ChirpStack v4 / The Things Stack v3 publish them, and the datagrams that came out
of the device ports. The expected shapes are written from the reference notes
(/work/shared/reference/lorawan-and-t8.md PART 1), not from vlns.
"""
import base64
import datetime
import json
import queue
import re
import threading
import time

import paho.mqtt.client as mqtt
import pytest

CS_APP = "0b6a3f0e-3c51-4a5e-9b7d-2f3b8d1c4e6a"
TTS_APP = "lwm2m-app@acme"
EUI_A = "70b3d57ed0000a01"
EUI_C = "70b3d57ed0000c01"
CS_ITEM = "9d7a0c1b-2e3f-4a5b-8c6d-7e8f9a0b1c2d"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def b64(data):
    return base64.b64encode(data).decode()


class AppServer:
    """A paho client in the application server's place: subscribes to `topics`, keeps every
    message, publishes commands (QoS 0, MQTT 3.1.1)."""

    def __init__(self, broker, topics):
        self.inbox = queue.Queue()
        self.seen = []
        self.subscribed = threading.Event()
        kw = dict(client_id=f"app-{id(self):x}", protocol=mqtt.MQTTv311)
        self.client = (mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kw)
                       if hasattr(mqtt, "CallbackAPIVersion") else mqtt.Client(**kw))
        self.client.on_connect = lambda c, u, f, rc: c.subscribe([(t, 0) for t in topics])
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "application client: no SUBACK"

    def publish(self, topic, body):
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        self.client.publish(topic, payload, qos=0).wait_for_publish()

    def _pump(self, timeout):
        try:
            topic, payload = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return False
        try:
            body = json.loads(payload)
        except ValueError:
            body = payload
        self.seen.append({"topic": topic, "body": body, "taken": False})
        return True

    def wait(self, suffix, timeout=5.0, where=lambda body: True):
        """The body of the first message not yet returned whose topic ends with `suffix`."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.seen:
                if not m["taken"] and m["topic"].endswith(suffix) and where(m["body"]):
                    m["taken"] = True
                    return m["topic"], m["body"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no MQTT message on *{suffix} within {timeout}s; got "
                                     f"{[m['topic'] for m in self.seen]}")
            self._pump(left)

    def all(self, suffix, settle=0.5):
        """Every message so far (after `settle` s of quiet) whose topic ends with `suffix`."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            self._pump(max(0.01, deadline - time.monotonic()))
        return [m for m in self.seen if m["topic"].endswith(suffix)]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class EndDevice:
    """A UDP client behind one vlns device port."""

    def __init__(self, vlns, deveui):
        import socket
        self.addr = vlns.device_addr(deveui)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, data):
        self.sock.sendto(data, self.addr)

    def recv(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            data, src = self.sock.recvfrom(2048)
        except OSError:
            return None
        assert src == self.addr, "downlinks come from the device's own port"
        return data

    def close(self):
        self.sock.close()


@pytest.fixture
def broker(peers):
    return peers.broker()


@pytest.fixture
def app_cs(broker):
    app = AppServer(broker, ["application/#"])
    yield app
    app.close()


@pytest.fixture
def app_tts(broker):
    app = AppServer(broker, ["v3/#"])
    yield app
    app.close()


def cs_down(deveui, data, **kw):
    return dict({"devEui": deveui, "fPort": 1, "data": b64(data)}, **kw)


def cs_command_topic(deveui, app=CS_APP):
    return f"application/{app}/device/{deveui}/command/down"


# ---------------------------------------------------------------------------------------------
# ChirpStack v4
# ---------------------------------------------------------------------------------------------
def test_chirpstack_class_c_uplink_and_downlink_shapes(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[EUI_C.upper()])
    dev = EndDevice(vlns, EUI_C)
    dev.send(b"\x40\x02\x00\x01hello")
    topic, up = app_cs.wait("/event/up")
    assert topic == f"application/{CS_APP}/device/{EUI_C}/event/up"   # lower-case DevEUI
    assert UUID_RE.match(up["deduplicationId"]) and RFC3339.match(up["time"])
    info = up["deviceInfo"]
    assert info["applicationId"] == CS_APP and info["devEui"] == EUI_C
    assert info["deviceClassEnabled"] == "CLASS_C" and info["tags"] == {}
    for k in ("tenantId", "tenantName", "applicationName", "deviceProfileId",
              "deviceProfileName", "deviceName"):
        assert isinstance(info[k], str) and info[k]
    # ChirpStack >= 4.1 emits scalar fields with their default values
    assert up["fCnt"] == 0 and up["confirmed"] is False and up["adr"] is True
    assert up["fPort"] == 1 and up["dr"] == 5
    assert base64.b64decode(up["data"]) == b"\x40\x02\x00\x01hello"
    assert re.fullmatch(r"[0-9a-f]{8}", up["devAddr"])
    assert up["rxInfo"] and up["rxInfo"][0]["gatewayId"]
    lora = up["txInfo"]["modulation"]["lora"]
    assert (lora["bandwidth"], lora["spreadingFactor"]) == (125000, 7)
    assert up["txInfo"]["frequency"] in (868100000, 868300000, 868500000)

    # Class C: delivered at once; the queue item id comes back in canonical (lower-case) form.
    qid = "3F2504E0-4F89-41D3-9A0C-0305E82C3301"
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, b"\x60\x45\x00\x01", id=qid))
    assert dev.recv() == b"\x60\x45\x00\x01"
    _, txack = app_cs.wait("/event/txack")
    assert txack["queueItemId"] == qid.lower() and txack["fCntDown"] == 0
    assert txack["deviceInfo"]["devEui"] == EUI_C and isinstance(txack["downlinkId"], int)
    assert txack["gatewayId"] and "txInfo" in txack
    # an id left empty: ChirpStack makes one
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, b"two"))
    assert dev.recv() == b"two"
    _, txack = app_cs.wait("/event/txack")
    assert UUID_RE.match(txack["queueItemId"]) and txack["fCntDown"] == 1
    # unconfirmed: deleted at txack, no ack event
    assert app_cs.all("/event/ack") == []
    assert vlns.stop() == 0


def test_chirpstack_class_a_rx_windows(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[f"{EUI_A}=0,class=A"],
                      extra_args=["--downlink-data-delay", "250"])
    dev = EndDevice(vlns, EUI_A)
    # Two queued before an uplink: one per RX window, FIFO.
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"first"))
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"second"))
    vlns.wait_for("downlink_enqueued", len=6)
    assert dev.recv(0.5) is None  # class A: nothing without an uplink
    dev.send(b"up0")
    assert dev.recv() == b"first"
    assert dev.recv(0.6) is None
    dev.send(b"up1")
    assert dev.recv() == b"second"
    # A reaction within get_downlink_data_delay of the uplink rides in its window ...
    react = threading.Event()

    def reply(c, u, m):  # in paho's thread, as soon as the uplink event arrives
        app_cs.inbox.put((m.topic, m.payload))
        if not react.is_set():
            react.set()
            c.publish(cs_command_topic(EUI_A), json.dumps(cs_down(EUI_A, b"reply")))
    app_cs.client.message_callback_add(f"application/{CS_APP}/device/+/event/up", reply)
    dev.send(b"up2")
    assert dev.recv() == b"reply"
    app_cs.client.message_callback_remove(f"application/{CS_APP}/device/+/event/up")
    # ... a later one waits for the next uplink.
    app_cs.wait("/event/up", where=lambda b: b["fCnt"] == 2)
    time.sleep(0.4)
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"late"))
    vlns.wait_for("downlink_enqueued", len=4)
    assert dev.recv(0.7) is None
    dev.send(b"up3")
    assert dev.recv() == b"late"
    fcnts = [m["body"]["fCntDown"] for m in app_cs.all("/event/txack")]
    assert fcnts == [0, 1, 2, 3]


def test_chirpstack_confirmed_ack_and_nack(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP,
                      devices=[f"{EUI_A}=0,class=A", f"{EUI_C}=0,class=C"],
                      extra_args=["--downlink-data-delay", "250", "--class-c-timeout", "1"])
    dev_a, dev_c = EndDevice(vlns, EUI_A), EndDevice(vlns, EUI_C)
    # Class A, received: the next uplink carries the ACK.
    qid = "6f0e0b5e-7a3c-4d55-8f1e-9a2b3c4d5e6f"
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"con", confirmed=True, id=qid))
    vlns.wait_for("downlink_enqueued", id=qid)
    dev_a.send(b"u")
    assert dev_a.recv() == b"con"
    app_cs.wait("/event/txack", where=lambda b: b["queueItemId"] == qid)
    assert app_cs.all("/event/ack") == []
    dev_a.send(b"u")
    _, ack = app_cs.wait("/event/ack")
    assert ack["queueItemId"] == qid and ack["acknowledged"] is True and ack["fCntDown"] == 0
    assert UUID_RE.match(ack["deduplicationId"]) and ack["deviceInfo"]["devEui"] == EUI_A
    # Class A, lost on the air: the next uplink has no ACK -> acknowledged false.
    qid2 = "6f0e0b5e-7a3c-4d55-8f1e-9a2b3c4d5e70"
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"gone", confirmed=True, id=qid2))
    vlns.wait_for("downlink_enqueued", id=qid2)
    vlns.send(f"lose-down {EUI_A}")
    vlns.wait_for("armed")
    dev_a.send(b"u")
    app_cs.wait("/event/txack", where=lambda b: b["queueItemId"] == qid2)
    assert dev_a.recv(0.6) is None
    dev_a.send(b"u")
    _, ack = app_cs.wait("/event/ack", where=lambda b: b["queueItemId"] == qid2)
    assert ack["acknowledged"] is False
    # Class C: no uplink within the class C timeout -> acknowledged false; with one -> true.
    dev_c.send(b"hello")  # vlns learns the client's address from its first datagram
    app_cs.wait("/event/up", where=lambda b: b["deviceInfo"]["devEui"] == EUI_C)
    t0 = time.monotonic()
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, b"c1", confirmed=True))
    assert dev_c.recv() == b"c1"
    _, ack = app_cs.wait("/event/ack", where=lambda b: b["deviceInfo"]["devEui"] == EUI_C)
    assert ack["acknowledged"] is False and 0.8 < time.monotonic() - t0 < 3
    assert ack["deduplicationId"] == ""
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, b"c2", confirmed=True))
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, b"c3"))
    assert dev_c.recv() == b"c2"
    assert dev_c.recv(0.4) is None  # the pending confirmed item holds the queue
    dev_c.send(b"ack")
    _, ack = app_cs.wait("/event/ack", where=lambda b: b["deviceInfo"]["devEui"] == EUI_C)
    assert ack["acknowledged"] is True
    assert dev_c.recv() == b"c3"


def test_chirpstack_payload_size_data_rate_and_expiry(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP,
                      devices=[f"{EUI_C}=0,class=C,dr=0", f"{EUI_A}=0,class=A,dr=2"])
    dev = EndDevice(vlns, EUI_C)
    dev.send(b"x")  # the client's address
    app_cs.wait("/event/up")
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, bytes(52), id=CS_ITEM))
    _, log = app_cs.wait("/event/log")
    assert log["level"] == "ERROR" and log["code"] == "DOWNLINK_PAYLOAD_SIZE"
    assert log["description"] == \
        "Device queue-item discarded because it exceeds the max. payload size"
    assert log["context"] == {"max_payload_size": "51", "item_size": "52",
                              "queue_item_id": CS_ITEM}
    assert dev.recv(0.5) is None and app_cs.all("/event/txack") == []
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, bytes(51)))
    assert dev.recv() == bytes(51)
    # Uplinks beyond the DR's maximum are refused at the device; `dr` changes it.
    dev.send(bytes(52))
    vlns.wait_for("uplink_too_large", len=52, max=51, dr=0)
    vlns.send(f"dr {EUI_C.upper()} 3")
    vlns.wait_for("dr", dr=3)
    dev.send(bytes(52))
    _, up = app_cs.wait("/event/up", where=lambda b: b["fCnt"] == 1)
    assert up["dr"] == 3 and len(base64.b64decode(up["data"])) == 52
    assert up["txInfo"]["modulation"]["lora"]["spreadingFactor"] == 9
    # expiresAt: an item past it is dropped with a log EXPIRED when its turn comes.
    dev_a = EndDevice(vlns, EUI_A)
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=0.3))
    soon = soon.isoformat().replace("+00:00", "Z")
    exp_id = "0e4c8a1e-5b7d-4f2a-8c3e-1d2f3a4b5c6d"
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"old", id=exp_id, expiresAt=soon))
    vlns.wait_for("downlink_enqueued", id=exp_id)
    time.sleep(1.4)
    dev_a.send(b"u")
    _, log = app_cs.wait("/event/log", where=lambda b: b["code"] == "EXPIRED")
    assert log["context"]["queue_item_id"] == exp_id
    assert dev_a.recv(0.5) is None


def test_chirpstack_rejected_commands(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[EUI_C])
    dev = EndDevice(vlns, EUI_C)
    dev.send(b"x")
    app_cs.wait("/event/up")
    bad = [
        (cs_command_topic(EUI_C), cs_down(EUI_C.upper(), b"a")),         # devEui != topic's
        (cs_command_topic(EUI_C), cs_down(EUI_C, b"a", id="not-a-uuid")),
        (cs_command_topic(EUI_C), cs_down(EUI_C, b"a", fPort=0)),
        (cs_command_topic(EUI_C), cs_down(EUI_C, b"a", fPort=256)),
        (cs_command_topic(EUI_C), cs_down(EUI_C, b"a", confirmed="yes")),
        (cs_command_topic(EUI_C), b"{not json"),
        (cs_command_topic("0000000000000001"), cs_down("0000000000000001", b"a")),
        (cs_command_topic(EUI_C, app="5a5a5a5a-0000-4000-8000-000000000000"),
         cs_down(EUI_C, b"a")),                                            # other application
    ]
    for topic, body in bad:
        app_cs.publish(topic, body)
    reasons = [vlns.wait_for("command_rejected")["reason"] for _ in bad]
    assert "does not match topic dev_eui" in reasons[0]
    assert "UUID" in reasons[1]
    assert "FPort" in reasons[2] and "FPort" in reasons[3]
    assert "Application ID" in reasons[7]
    # nothing published, nothing delivered (ChirpStack only logs)
    events = [m for m in app_cs.all("/event/", settle=0.6) if not m["topic"].endswith("/up")]
    assert events == [] and dev.recv(0.2) is None
    # an upper-case DevEUI in both topic and payload is accepted (parsed as an EUI64)
    app_cs.publish(cs_command_topic(EUI_C.upper()), cs_down(EUI_C.upper(), b"ok"))
    assert dev.recv() == b"ok"


def test_chirpstack_tx_fail_keeps_the_item(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[f"{EUI_A}=0,class=A"],
                      extra_args=["--downlink-data-delay", "250"])
    dev = EndDevice(vlns, EUI_A)
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"retry", id=CS_ITEM))
    vlns.wait_for("downlink_enqueued")
    vlns.send(f"tx-fail {EUI_A}")
    vlns.wait_for("armed")
    dev.send(b"u")
    _, log = app_cs.wait("/event/log")
    assert log["code"] == "DOWNLINK_GATEWAY" and log["level"] == "ERROR"
    assert log["description"] in ("TOO_LATE", "TOO_EARLY", "COLLISION_PACKET",
                                  "DUTY_CYCLE_OVERFLOW") and log["context"] == {}
    assert dev.recv(0.6) is None
    dev.send(b"u")
    assert dev.recv() == b"retry"
    _, txack = app_cs.wait("/event/txack")
    assert txack["queueItemId"] == CS_ITEM and txack["fCntDown"] == 0


# ---------------------------------------------------------------------------------------------
# The Things Stack v3
# ---------------------------------------------------------------------------------------------
def tts_topic(dev_id, suffix, app=TTS_APP):
    return f"v3/{app}/devices/{dev_id}/{suffix}"


def test_tts_uplink_and_class_c_downlink_shapes(peers, broker, app_tts):
    vlns = peers.vlns(broker, fmt="tts", application=TTS_APP, devices=[f"{EUI_C}=0,id=meter-1"])
    dev = EndDevice(vlns, EUI_C)
    dev.send(b"first")
    topic, up = app_tts.wait("/up")
    assert topic == "v3/lwm2m-app@acme/devices/meter-1/up"
    ids = up["end_device_ids"]
    assert ids["device_id"] == "meter-1" and ids["application_ids"] == {
        "application_id": "lwm2m-app"}
    assert ids["dev_eui"] == EUI_C.upper() and re.fullmatch(r"[0-9A-F]{8}", ids["dev_addr"])
    assert up["correlation_ids"] and RFC3339.match(up["received_at"])
    msg = up["uplink_message"]
    # empty fields are omitted: f_cnt 0, confirmed false
    assert "f_cnt" not in msg and "confirmed" not in msg
    assert msg["f_port"] == 1 and base64.b64decode(msg["frm_payload"]) == b"first"
    assert msg["settings"]["data_rate"]["lora"] == {"bandwidth": 125000, "spreading_factor": 7}
    assert msg["settings"]["frequency"] in ("868100000", "868300000", "868500000")
    assert msg["rx_metadata"] and msg["consumed_airtime"].endswith("s")
    dev.send(b"second")
    _, up = app_tts.wait("/up")
    assert up["uplink_message"]["f_cnt"] == 1

    app_tts.publish(tts_topic("meter-1", "down/push"), {"downlinks": [
        {"f_port": 1, "frm_payload": b64(b"\x60\x45\x00\x07"), "priority": "NORMAL",
         "correlation_ids": ["gw:req:42"]}]})
    assert dev.recv() == b"\x60\x45\x00\x07"
    _, queued = app_tts.wait("/down/queued")
    _, sent = app_tts.wait("/down/sent")
    for body, root in ((queued, "downlink_queued"), (sent, "downlink_sent")):
        d = body[root]
        assert "gw:req:42" in d["correlation_ids"]
        assert any(c.startswith("as:downlink:") for c in d["correlation_ids"])
        assert d["f_port"] == 1 and base64.b64decode(d["frm_payload"]) == b"\x60\x45\x00\x07"
        assert "confirmed" not in d and d["priority"] == "NORMAL"
        assert body["end_device_ids"]["device_id"] == "meter-1"
    assert queued["downlink_queued"]["correlation_ids"] == sent["downlink_sent"]["correlation_ids"]
    # a push for an unknown device id: rejected, nothing published
    app_tts.publish(tts_topic("nobody", "down/push"), {"downlinks": [{"f_port": 1}]})
    vlns.wait_for("command_rejected")


def test_tts_confirmed_class_a_ack_nack_and_resend(peers, broker, app_tts):
    vlns = peers.vlns(broker, fmt="tts", application=TTS_APP, devices=[f"{EUI_A}=0,class=A"],
                      extra_args=["--downlink-data-delay", "250"])
    dev_id = f"eui-{EUI_A}"
    dev = EndDevice(vlns, EUI_A)
    app_tts.publish(tts_topic(dev_id, "down/push"), {"downlinks": [
        {"f_port": 5, "frm_payload": b64(b"con"), "confirmed": True,
         "correlation_ids": ["gw:con"]}]})
    vlns.wait_for("downlink_enqueued")
    vlns.send(f"lose-down {EUI_A}")
    vlns.wait_for("armed")
    dev.send(b"u0")
    _, sent1 = app_tts.wait("/down/sent")
    assert dev.recv(0.6) is None                       # lost on the air
    dev.send(b"u1")                                   # no ACK in it
    _, nack = app_tts.wait("/down/nack")
    assert "gw:con" in nack["downlink_nack"]["correlation_ids"]
    assert dev.recv() == b"con"                       # class A: TTS resends it
    _, sent2 = app_tts.wait("/down/sent")
    assert sent2["downlink_sent"]["f_cnt"] > sent1["downlink_sent"].get("f_cnt", 0)
    assert sent2["downlink_sent"]["confirmed"] is True
    dev.send(b"u2")
    _, ack = app_tts.wait("/down/ack")
    assert "gw:con" in ack["downlink_ack"]["correlation_ids"]
    assert app_tts.all("/down/nack", settle=0.2) and len(app_tts.all("/down/ack")) == 1


def test_tts_too_long_bad_fport_and_replace(peers, broker, app_tts):
    vlns = peers.vlns(broker, fmt="tts", application=TTS_APP,
                      devices=[f"{EUI_C}=0,dr=0,id=small", f"{EUI_A}=0,class=A,id=sleepy"])
    dev = EndDevice(vlns, EUI_C)
    dev.send(b"x")
    app_tts.wait("/up")
    app_tts.publish(tts_topic("small", "down/push"), {"downlinks": [
        {"f_port": 1, "frm_payload": b64(bytes(52)), "correlation_ids": ["big"]}]})
    _, failed = app_tts.wait("/down/failed")
    f = failed["downlink_failed"]
    assert f["error"]["name"] == "application_downlink_too_long" and f["error"]["code"] == 3
    assert f["error"]["message_format"] == "application downlink payload is too long"
    assert "big" in f["downlink"]["correlation_ids"]
    assert dev.recv(0.4) is None
    app_tts.publish(tts_topic("small", "down/push"), {"downlinks": [
        {"f_port": 224, "frm_payload": b64(b"a"), "correlation_ids": ["port"]}]})
    _, failed = app_tts.wait("/down/failed")
    assert "port" in failed["downlink_failed"]["downlink"]["correlation_ids"]
    # replace: the queue becomes the new list; an empty list clears it
    dev_a = EndDevice(vlns, EUI_A)
    app_tts.publish(tts_topic("sleepy", "down/push"), {"downlinks": [
        {"f_port": 1, "frm_payload": b64(b"one")}, {"f_port": 1, "frm_payload": b64(b"two")}]})
    app_tts.publish(tts_topic("sleepy", "down/replace"), {"downlinks": [
        {"f_port": 1, "frm_payload": b64(b"three")}]})
    vlns.wait_for("queue_replaced", removed=2, added=1)
    dev_a.send(b"u")
    assert dev_a.recv() == b"three"
    app_tts.publish(tts_topic("sleepy", "down/push"), {"downlinks": [
        {"f_port": 1, "frm_payload": b64(b"four")}]})
    app_tts.publish(tts_topic("sleepy", "down/replace"), {"downlinks": []})
    vlns.wait_for("queue_replaced", removed=1, added=0)
    dev_a.send(b"u")
    assert dev_a.recv(0.6) is None


# ---------------------------------------------------------------------------------------------
# Faults and wake-ups (both formats behave alike; ChirpStack topics here)
# ---------------------------------------------------------------------------------------------
def test_wake_opens_rx_windows_and_its_reply_is_consumed(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[f"{EUI_A}=0,class=A"],
                      extra_args=["--wake", "0.5", "--downlink-data-delay", "250"])
    dev = EndDevice(vlns, EUI_A)
    dev.send(b"register")
    app_cs.wait("/event/up")
    time.sleep(0.4)
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"late"))
    # no datagram from the client, yet the wake-up uplink's window carries it
    assert dev.recv(3) == b"late"
    _, up = app_cs.wait("/event/up", where=lambda b: len(base64.b64decode(b["data"])) == 4)
    empty = base64.b64decode(up["data"])
    assert empty[:2] == b"\x40\x00"  # CoAP Empty CON, TKL 0
    # the application's RST to it goes to vlns' own CoAP layer, not to the client
    app_cs.publish(cs_command_topic(EUI_A), cs_down(EUI_A, b"\x70\x00" + empty[2:]))
    vlns.wait_for("wake_reply", mid=int.from_bytes(empty[2:], "big"), type="RST", timeout=3)
    assert dev.recv(0.3) is None


def run_lossy(peers, broker, app, seed, application):
    vlns = peers.vlns(broker, application=application, devices=[EUI_C], name=application,
                      extra_args=["--loss", "0.5", "--seed", str(seed)])
    dev = EndDevice(vlns, EUI_C)
    for i in range(16):
        dev.send(b"n%d" % i)
        time.sleep(0.02)
    time.sleep(0.3)
    lost = sorted(e["fcnt"] for e in vlns.seen_events("uplink_lost"))
    published = sorted(m["body"]["fCnt"] for m in app.all("/event/up")
                       if m["topic"].startswith(f"application/{application}/"))
    vlns.stop()
    dev.close()
    return lost, published


def test_loss_is_seeded(peers, broker, app_cs):
    lost, published = run_lossy(peers, broker, app_cs, 7, "11111111-1111-4111-8111-111111111111")
    assert lost and published, "with P = 0.5 some are lost and some arrive"
    assert sorted(lost + published) == list(range(16))  # lost uplinks still use their fCnt
    again = run_lossy(peers, broker, app_cs, 7, "22222222-2222-4222-8222-222222222222")
    assert again == (lost, published)


def test_duplicate_uplinks(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[EUI_C],
                      extra_args=["--duplicate", "1"])
    dev = EndDevice(vlns, EUI_C)
    dev.send(b"\x40\x01\x12\x34")
    _, first = app_cs.wait("/event/up")
    _, second = app_cs.wait("/event/up")
    assert (first["fCnt"], second["fCnt"]) == (0, 1)
    assert first["data"] == second["data"] and first["deduplicationId"] != second[
        "deduplicationId"]
    vlns.wait_for("uplink_duplicated", fcnt=1, of=0)


def test_reconnects_after_a_broker_restart(peers, broker, app_cs):
    vlns = peers.vlns(broker, application=CS_APP, devices=[EUI_C])
    dev = EndDevice(vlns, EUI_C)
    vlns.wait_for("mqtt_subscribed")  # the first time, before ready
    broker.stop()
    vlns.wait_for("mqtt_disconnected")
    broker.start()
    vlns.wait_for("mqtt_subscribed", timeout=10)   # the same subscriptions again
    assert app_cs.subscribed.wait(10)
    dev.send(b"again")
    _, up = app_cs.wait("/event/up")
    assert up["fCnt"] == 0
    app_cs.publish(cs_command_topic(EUI_C), cs_down(EUI_C, b"back"))
    assert dev.recv() == b"back"
