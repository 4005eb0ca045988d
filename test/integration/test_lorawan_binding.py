"""The LoRaWAN binding (issue 12; Transport 6.8.4 and Appendix C) between real peers.

mosquitto is the broker, scripts/vlns the network server (ChirpStack v4 or The Things Stack v3
over MQTT) and the radio: each end device is a UDP port of vlns, and the project's
lwm2m-test-device sending to it is that end device's LwM2M client. The gateway is the LoRaWAN
Application Server of one application and relays each (DevEUI, FPort) to lwm2m-test-server.
The tests assert on what the peers saw: the server's and the device's events, vlns' events
(frames up and down, their fate), and the gateway's metrics.

Timers are short (ACK_TIMEOUT 2 s, MAX_RETRANSMIT 2); devices are class C unless class A is
the point, so the whole file runs in about two minutes.
"""
import base64
import json
import os
import time

import paho.mqtt.client as mqtt
import pytest

from coap_raw import coap
from lwm2m_peers import Vlns, lorawan_device

CS_APP = Vlns.DEFAULT_APPLICATION["chirpstack"]
TTS_APP = Vlns.DEFAULT_APPLICATION["tts"]
EUI = "0102030405060708"
EUI2 = "0A0B0C0D0E0F1011"
DEVICE_OBJECTS = "</1/0>,</3/0>"  # what lwm2m-test-device registers with
ACK_TIMEOUT_S = 2
MAX_RETRANSMIT = 2


class Lora:
    """One test's LoRaWAN network: broker, LwM2M server, vlns, gateway."""

    def __init__(self, peers, tmp_path, fmt="chirpstack", vlns_devices=(f"{EUI}=0",),
                 vlns_args=(), entries=None, **settings):
        """vlns_devices: vlns --device values; entries: the gateway's devices entries
        (default: every vlns device, with the object list of lwm2m-test-device); settings:
        bindings.lorawan settings over the defaults below."""
        self.peers = peers
        self.fmt = fmt
        self.app = CS_APP if fmt == "chirpstack" else TTS_APP
        self.broker = peers.broker()
        self.server = peers.server()
        self.vlns = peers.vlns(self.broker, fmt=fmt, devices=list(vlns_devices),
                               extra_args=list(vlns_args))
        lorawan = {"broker": self.broker.uri, "network_server": fmt,
                   "application_id": self.app,
                   "ports": [{"fport": 1, "upstream": "default"}],
                   "ack_timeout_s": ACK_TIMEOUT_S, "max_retransmit": MAX_RETRANSMIT}
        if fmt == "tts":
            key_file = os.path.join(str(tmp_path), "tts-api-key")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("NNSXS.VLNSTESTKEY.NOTCHECKEDBYMOSQUITTO\n")
            lorawan.update(username=self.app, api_key_file=key_file, qos=0)
        lorawan.update(settings)
        if entries is None:
            entries = [lorawan_device(spec.split("=")[0].upper(), objects=DEVICE_OBJECTS)
                       for spec in vlns_devices]
        self.gw = peers.gateway(f"coap://127.0.0.1:{self.server.port}", lorawan=lorawan,
                                devices=", ".join(entries))

    def device(self, eui=EUI, args=(), ep=None, wait=True):
        """lwm2m-test-device as the LwM2M client of end device `eui` (--omit-params: the
        gateway fills in ep, lt, lwm2m from Table 6.8.4-1)."""
        dev = self.peers.device(self.gw, ep or f"client-{eui.lower()}",
                                server_uri=self.vlns.device_uri(eui),
                                extra=["--omit-params"] + list(args))
        if wait:
            dev.wait_for("registered", timeout=15)
        return dev

    def lora(self, name):
        """The binding's counter lwm2m_gw_lorawan_<name>_total."""
        return self.gw.metrics()[f"lorawan_{name}_total"]

    def core(self, name):
        return self.gw.metrics()[f"{name}_total"]

    def downlinks(self, eui=EUI, event="downlink_enqueued"):
        return self.vlns.seen_events(event, deveui=eui.lower())


def next_event(peer, event, seen_before, timeout=10.0, **match):
    """The first `event` after the `seen_before` ones already seen."""
    deadline = time.monotonic() + timeout
    while True:
        events = peer.seen_events(event, **match)
        if len(events) > seen_before:
            return events[seen_before]
        if time.monotonic() > deadline:
            raise AssertionError(f"{peer.name}: no new '{event}' {match} within {timeout}s")
        time.sleep(0.05)


def coap_mid(hex_text):
    return int(hex_text[4:8], 16)


def coap_code(hex_text):
    b = int(hex_text[2:4], 16)
    return f"{b >> 5}.{b & 0x1F:02d}"


# --------------------------------------------------------------------------- registration

def test_register_with_parameters_left_out_is_completed(peers, tmp_path):
    net = Lora(peers, tmp_path, vlns_devices=(f"{EUI}=0", f"{EUI2}=0"),
               entries=[lorawan_device(EUI, objects="</1/0>,</3/0>,</5/0>"),
                        lorawan_device(EUI2, objects="</1/0>,</3/0>", endpoint="meter-lora")])
    dev = net.device(EUI, ["--no-objects"])
    dev2 = net.device(EUI2, ["--no-objects"])

    reg = net.server.wait_for("register", ep=EUI)  # Table 6.8.4-1: ep defaults to the DevEUI
    assert reg["lt"] == 2592000
    assert reg["lwm2m"] == "1.1"
    assert reg["b"] == "UQ"  # queue mode by nature; the lwm2m11 profile says it with b=UQ
    assert reg["payload"] == "</1/0>,</3/0>,</5/0>"  # devices.objects
    reg2 = net.server.wait_for("register", ep="meter-lora")  # the configured endpoint
    assert (reg2["lt"], reg2["lwm2m"], reg2["b"]) == (2592000, "1.1", "UQ")
    assert reg2["payload"] == "</1/0>,</3/0>"
    assert reg2["peer"] != reg["peer"]  # one upstream session per end device
    assert dev.count("register-retry") == 0 and dev2.count("register-retry") == 0
    assert net.server.count("register") == 2
    # What the devices sent on the air: POST /rd and nothing else.
    ups = [u for u in net.vlns.seen_events("uplink") if coap_code(u["hex"]) == "0.02"]
    assert len({(u["deveui"], coap_mid(u["hex"])) for u in ups}) == 2
    assert not any(b"ep=" in bytes.fromhex(u["hex"]) or b"lt=" in bytes.fromhex(u["hex"])
                   for u in ups)
    assert net.lora("registrations_completed") == 2
    assert net.lora("object_lists_supplied") == 2
    assert net.lora("object_lists_missing") == 0

    r = net.server.request(f"read 1 {EUI} /3/0/2")
    assert (r["code"], r["payload"]) == ("2.05", "client-0102030405060708")
    r = net.server.request("read 2 meter-lora /3/0/2")
    assert (r["code"], r["payload"]) == ("2.05", "client-0a0b0c0d0e0f1011")


def test_register_without_objects_and_none_known_is_answered_4_09(peers, tmp_path):
    net = Lora(peers, tmp_path, entries=[lorawan_device(EUI)])  # no objects configured
    dev = net.device(EUI, ["--no-objects"])
    retry = dev.wait_for("register-retry")
    assert retry["code"] == "4.09"
    # The 4.09 came over the air from the gateway, as the answer to the first Register.
    codes = [coap_code(d["hex"]) for d in net.downlinks(event="downlink_delivered")]
    assert codes[:2] == ["4.09", "2.01"], codes
    reg = net.server.wait_for("register", ep=EUI)
    assert reg["payload"] == DEVICE_OBJECTS
    time.sleep(0.5)
    regs = net.server.seen_events("register")
    assert len(regs) == 1  # the server never saw the Register without objects
    assert all(r["payload_len"] > 0 for r in regs)
    assert net.lora("object_lists_missing") == 1
    assert net.lora("object_lists_supplied") == 0


def test_object_list_kept_from_the_last_register_completes_a_later_one(peers, tmp_path):
    net = Lora(peers, tmp_path, entries=[lorawan_device(EUI)])  # no objects configured
    first = net.device(EUI, ["--reg-payload-size", "40"])
    listed = net.server.wait_for("register", ep=EUI)["payload"]
    assert listed.startswith(DEVICE_OBJECTS + ",</3303/0>")
    first.stop()

    second = net.device(EUI, ["--no-objects"])  # the same end device, a new client process
    reg = net.server.wait_for("register", ep=EUI)
    assert reg["payload"] == listed
    assert second.count("register-retry") == 0
    assert net.server.count("register") == 2
    assert net.lora("object_lists_supplied") == 1
    assert net.lora("object_lists_missing") == 0
    second.stop()

    # The kept list is part of the gateway's state: it survives a SIGKILL.
    net.gw.kill()
    net.gw = net.peers.restart(net.gw)
    third = net.device(EUI, ["--no-objects"])
    assert net.server.wait_for("register", ep=EUI)["payload"] == listed
    assert third.count("register-retry") == 0
    assert net.lora("object_lists_supplied") == 1  # the restarted gateway's counter


# --------------------------------------------------------------- server operations

@pytest.mark.parametrize("device_class", ["C", "A"])
def test_read_write_execute_observe(peers, tmp_path, device_class):
    """Class A: the device's client opens RX windows with an Empty CON every second (vlns
    --wake), and with its notifications."""
    wake = ["--wake", "1"] if device_class == "A" else []
    net = Lora(peers, tmp_path, vlns_devices=(f"{EUI}=0,class={device_class}",),
               vlns_args=wake)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)

    r = net.server.request(f"read 1 {EUI} /3/0/0", timeout=20)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    # Appendix C links: an empty ACK at once, the answer later as a separate response.
    assert r["type"] == "CON"

    r = net.server.request(f"write 2 {EUI} /3/0/14 +02:00", timeout=20)
    assert r["code"] == "2.04"
    assert dev.wait_for("write", path="/3/0/14")["value"] == "+02:00"
    r = net.server.request(f"read 3 {EUI} /3/0/14", timeout=20)
    assert (r["code"], r["payload"]) == ("2.05", "+02:00")

    r = net.server.request(f"execute 4 {EUI} /3/0/4", timeout=20)
    assert r["code"] == "2.04"
    assert dev.wait_for("execute", path="/3/0/4")["args"] == ""

    r = net.server.request(f"observe 5 {EUI} /3/0/13", timeout=20)
    assert r["code"] == "2.05" and r["observe"] is not None
    first = int(r["payload"])
    n1 = net.server.wait_for("notify", id=5, timeout=10)
    n2 = net.server.wait_for("notify", id=5, timeout=10)
    assert n2["observe"] > n1["observe"] > r["observe"]
    assert first < int(n1["payload"]) < int(n2["payload"])  # the clock ticks once a period
    sent = dev.seen_events("notified", path="/3/0/13")
    assert str(n2["payload"]) in [e["value"] for e in sent]

    assert dev.count("request", path="/3/0/0") == 1  # no copy went out twice
    if device_class == "A":
        assert net.lora("rx_window_opens") >= 1  # the Empty CONs were taken, not relayed
        assert net.vlns.count("wake") >= 1
        # ... and not answered: an RST would take the RX window the device opened for the
        # answer it waits for (lorawan/README.md)
        assert net.vlns.count("wake_reply") == 0
    assert net.core("uplink_requests") == 1  # the Register; nothing else went upstream
    assert net.core("separate") >= 5
    assert net.core("gateway_timeouts") == 0
    assert net.server.count("register") == 1
    assert net.server.count("nack") == 0


def test_one_request_at_a_time_at_the_network_server(peers, tmp_path):
    """Appendix C, NSTART 1: a second server request waits in the gateway until the first
    one's answer came, never in the network server's queue behind it."""
    net = Lora(peers, tmp_path, vlns_devices=(f"{EUI}=0,class=A",), vlns_args=["--wake", "1"])
    net.device()
    net.server.wait_for("register", ep=EUI)
    before = len(net.downlinks())
    net.server.send(f"read 1 {EUI} /3/0/0")
    net.server.send(f"read 2 {EUI} /3/0/1")
    r1 = net.server.wait_for("response", id=1, timeout=15)
    r2 = net.server.wait_for("response", id=2, timeout=15)
    assert (r1["payload"], r2["payload"]) == ("lwm2m-gw test", "test-device")
    # The two Reads, not the RSTs that answer the device's wake-up pings.
    first, second = [d for d in net.downlinks()[before:] if d["len"] > 4]
    answers = [u for u in net.vlns.seen_events("uplink", deveui=EUI.lower())
               if int(u["hex"][:2], 16) >> 4 & 3 == 2 and coap_code(u["hex"]) == "2.05"]
    # The first request's answer came up before the second request went down.
    assert answers and first["_t"] < answers[0]["_t"] < second["_t"]
    assert net.core("queued") >= 1


# ------------------------------------------------------------------------- Appendix C

def arm_downlink_loss(net, eui=EUI):
    net.vlns.send(f"lose-down {eui.lower()}")
    net.vlns.wait_for("armed", deveui=eui.lower(), fault="lose-down")


def test_lost_downlink_is_sent_again_after_ack_timeout_from_the_txack(peers, tmp_path):
    net = Lora(peers, tmp_path)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    before = len(net.downlinks())

    arm_downlink_loss(net)
    net.server.send(f"read 1 {EUI} /3/0/1")
    lost = net.vlns.wait_for("downlink_lost", deveui=EUI.lower())
    r = net.server.wait_for("response", id=1, timeout=ACK_TIMEOUT_S * 4 + 5)
    assert (r["code"], r["payload"], r["type"]) == ("2.05", "test-device", "CON")

    copies = net.downlinks()[before:]
    assert len(copies) == 2
    txacks = net.vlns.seen_events("txack", deveui=EUI.lower())[-2:]
    assert txacks[0]["id"] == lost["id"]
    # Appendix C.3.2: ACK_TIMEOUT counted from the network server's report that it was sent.
    assert ACK_TIMEOUT_S - 0.1 <= txacks[1]["_t"] - txacks[0]["_t"] < 2 * ACK_TIMEOUT_S + 1
    delivered = net.downlinks(event="downlink_delivered")[-1]
    assert delivered["id"] == txacks[1]["id"]
    assert coap_code(delivered["hex"]) == "0.01"  # the GET itself, sent again
    assert dev.count("request", path="/3/0/1") == 1
    assert net.core("late_retransmits") == 1
    assert net.core("gateway_timeouts") == 0
    assert net.lora("sent_reports") >= 2


def test_gateway_tx_failure_is_counted_and_the_request_still_answered(peers, tmp_path):
    """ChirpStack reports a LoRa gateway's refused transmission (log DOWNLINK_GATEWAY, no
    queue item id) and keeps the item for the next opportunity: the gateway counts it, starts
    no Appendix C timer on it, and the request is answered once the frame went out."""
    net = Lora(peers, tmp_path)
    net.device()
    net.server.wait_for("register", ep=EUI)
    net.vlns.send(f"tx-fail {EUI.lower()}")
    net.vlns.wait_for("armed", deveui=EUI.lower(), fault="tx-fail")
    r = net.server.request(f"read 1 {EUI} /3/0/0", timeout=15)
    assert r["code"] == "2.05" and r["payload"] == "lwm2m-gw test"
    assert net.vlns.count("tx_failed") == 1
    assert net.lora("tx_errors") == 1
    assert net.core("late_retransmits") == 0  # the refused attempt was no copy of its own
    assert net.core("gateway_timeouts") == 0 and net.core("unavailable") == 0


def test_every_copy_lost_yields_5_04_after_max_retransmit(peers, tmp_path):
    net = Lora(peers, tmp_path)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    before = len(net.downlinks())

    arm_downlink_loss(net)
    net.server.send(f"read 1 {EUI} /3/0/1")
    for n in range(1 + MAX_RETRANSMIT):
        net.vlns.wait_for("downlink_lost", deveui=EUI.lower(), timeout=ACK_TIMEOUT_S * 4 + 5)
        if n < MAX_RETRANSMIT:
            arm_downlink_loss(net)
    r = net.server.wait_for("response", id=1, timeout=ACK_TIMEOUT_S * 4 + 5)
    assert r["code"] == "5.04"
    # The last copy had its ACK_TIMEOUT too before the request was given up.
    assert r["elapsed_ms"] >= (1 + MAX_RETRANSMIT) * ACK_TIMEOUT_S * 1000 - 300
    txacks = net.vlns.seen_events("txack", deveui=EUI.lower())[-(1 + MAX_RETRANSMIT):]
    gaps = [b["_t"] - a["_t"] for a, b in zip(txacks, txacks[1:])]
    assert all(g >= ACK_TIMEOUT_S - 0.1 for g in gaps), gaps
    time.sleep(ACK_TIMEOUT_S + 0.5)  # nothing more goes out for it
    copies = net.downlinks()[before:]
    assert len(copies) == 1 + MAX_RETRANSMIT
    assert len({c["id"] for c in copies}) == len(copies)  # each copy its own queue item
    lost = net.vlns.seen_events("downlink_lost", deveui=EUI.lower())
    assert len(lost) == 1 + MAX_RETRANSMIT
    assert dev.count("request", path="/3/0/1") == 0
    assert net.core("late_retransmits") == MAX_RETRANSMIT
    assert net.core("gateway_timeouts") == 1
    assert net.server.count("response", id=1) == 1


def test_confirmed_downlink_acknowledged_is_answered(peers, tmp_path):
    net = Lora(peers, tmp_path, vlns_args=["--class-c-timeout", "2"], confirmed_downlinks=True)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    r = net.server.request(f"read 1 {EUI} /3/0/3", timeout=15)
    assert (r["code"], r["payload"]) == ("2.05", "1.0")
    queued = net.downlinks()[-1]
    assert queued["confirmed"] is True  # Appendix C.3.1: a request rides a confirmed frame
    ack = net.vlns.wait_for("ack", deveui=EUI.lower())
    assert ack["id"] == queued["id"]
    assert net.lora("acked_reports") == 1
    assert net.lora("nacked_reports") == 0
    assert dev.count("request", path="/3/0/3") == 1
    # The answers to the device's own requests (Register) never need a confirmed frame.
    answers = [d for d in net.downlinks(event="downlink_delivered")
               if coap_code(d["hex"]) == "2.01"]
    assert answers and not any(d["confirmed"] for d in answers)


def test_confirmed_downlink_not_acknowledged_yields_5_04(peers, tmp_path):
    net = Lora(peers, tmp_path, vlns_args=["--class-c-timeout", "2"], confirmed_downlinks=True)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    before = len(net.downlinks())
    arm_downlink_loss(net)
    net.server.send(f"read 1 {EUI} /3/0/3")
    net.vlns.wait_for("downlink_lost", deveui=EUI.lower())
    nack = net.vlns.wait_for("nack", deveui=EUI.lower(), timeout=10)
    r = net.server.wait_for("response", id=1, timeout=10)
    assert r["code"] == "5.04"
    time.sleep(ACK_TIMEOUT_S + 0.5)
    copies = net.downlinks()[before:]
    assert [c["id"] for c in copies] == [nack["id"]]  # the network server repeats, not we
    assert net.lora("nacked_reports") == 1
    assert net.core("late_retransmits") == 0
    assert net.core("gateway_timeouts") == 1
    assert dev.count("request", path="/3/0/3") == 0


def test_duplicated_uplink_is_relayed_once_and_answered_from_the_cache(peers, tmp_path):
    net = Lora(peers, tmp_path, vlns_args=["--duplicate", "1"])
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    dev.send("send a1626e6364746573740166763131")
    assert dev.wait_for("sent", timeout=10)["code"] == "2.04"
    time.sleep(1.0)  # vlns sends the copy 0.3 s after the original
    assert net.server.count("send") == 1
    assert net.server.count("register") == 1
    assert net.server.count("duplicate") == 0  # the gateway kept it from the server

    ups = net.vlns.seen_events("uplink", deveui=EUI.lower())
    sends = [u for u in ups if coap_code(u["hex"]) == "0.02" and "6470" in u["hex"]]
    assert len(sends) == 2 and sends[0]["hex"] == sends[1]["hex"]  # the frame and its copy
    assert net.vlns.count("uplink_duplicated") >= 2
    mid = coap_mid(sends[0]["hex"])
    answers = [d for d in net.downlinks(event="downlink_delivered")
               if coap_mid(d["hex"]) == mid]
    assert len(answers) == 2
    assert answers[0]["hex"] == answers[1]["hex"]  # the same answer, from the cache
    assert coap_code(answers[0]["hex"]) == "2.04"
    assert net.core("duplicates") >= 2  # the Register's copy and the Send's
    assert net.core("uplink_requests") == 2


# ------------------------------------------------------------------ sizes: 4.13, Block1

def test_request_too_large_for_the_data_rate_goes_block_wise(peers, tmp_path):
    net = Lora(peers, tmp_path, vlns_devices=(f"{EUI}=0,dr=0",))  # DR 0: 51 bytes
    dev = net.device(args=["--no-objects"])
    net.server.wait_for("register", ep=EUI)
    value = "".join(f"{i:02d}-" for i in range(40))  # 120 bytes
    r = net.server.request(f"write 1 {EUI} /3/0/15 {value}", timeout=30)
    retry = net.server.wait_for("block1-retry", id=1)
    assert r["code"] == "2.04", r
    # RFC 7959 2.9.3: Size1 is what fits at DR 0 with a Block1 option.
    assert 16 <= retry["size1"] < 51
    assert retry["block_size"] <= retry["size1"] < 2 * retry["block_size"]
    assert dev.wait_for("write", path="/3/0/15")["value"] == value
    blocks = dev.seen_events("block", path="/3/0/15")
    assert len(blocks) == -(-len(value) // retry["block_size"])
    assert blocks[-1]["received"] == len(value)
    assert net.core("too_large") == 1
    assert net.vlns.count("payload_too_large") == 0
    assert all(d["len"] <= 51 for d in net.downlinks())


@pytest.mark.parametrize("fmt", ["chirpstack", "tts"])
def test_network_server_refusing_a_downlink_as_too_large_yields_4_13(peers, tmp_path, fmt):
    """The device's data rate drops at the network server (DR 5 to DR 0) where the gateway
    does not see it: the network server drops the frame (ChirpStack log DOWNLINK_PAYLOAD_SIZE,
    TTS down/failed application_downlink_too_long) and the server gets 4.13."""
    net = Lora(peers, tmp_path, fmt=fmt)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    net.vlns.send(f"dr {EUI.lower()} 0")
    net.vlns.wait_for("dr", dr=0)
    value = "x" * 60 + "END"
    r = net.server.request(f"write 1 {EUI} /3/0/15 {value}", timeout=20)
    assert net.vlns.count("payload_too_large") == 1
    assert net.lora("too_large_reports") == 1
    assert net.core("gateway_timeouts") == 0 and net.core("unavailable") == 0
    # The network server's limit (ChirpStack context max_payload_size, TTS error attribute
    # max, else the smallest of the region table) becomes Size1: the server went block-wise.
    assert 16 <= net.server.wait_for("block1-retry", id=1)["size1"] < 51
    assert r["code"] == "2.04"
    assert dev.wait_for("write", path="/3/0/15")["value"] == value


# --------------------------------------------------------------------------- formats

@pytest.mark.parametrize("fmt", ["chirpstack", "tts"])
def test_both_network_server_formats_register_and_read(peers, tmp_path, fmt):
    net = Lora(peers, tmp_path, fmt=fmt)
    net.device(args=["--no-objects"])
    reg = net.server.wait_for("register", ep=EUI)
    assert (reg["lt"], reg["b"], reg["payload"]) == (2592000, "UQ", DEVICE_OBJECTS)
    r = net.server.request(f"read 1 {EUI} /3/0/0", timeout=15)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    # Every downlink command was one the network server took (ChirpStack: a UUID id and the
    # same devEui in topic and body; TTS: the device ID in the topic, correlation ids).
    assert net.vlns.count("command_rejected") == 0, net.vlns.seen_events("command_rejected")
    codes = [coap_code(d["hex"]) for d in net.downlinks(event="downlink_delivered")]
    assert codes == ["2.01", "0.01"], codes  # the Register's answer, the Read
    assert net.lora("sent_reports") == 1  # the Read's txack / down/sent
    assert net.lora("bad_messages") == 0
    assert net.lora("uplinks") == 2  # the Register, the Read's answer


# --------------------------------------------------------------------------- bad input

def publish(broker, messages):
    """Publishes (topic, payload) pairs to the broker, as anything with access to it could."""
    kw = dict(client_id=f"bad-input-{os.getpid()}", clean_session=True)
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2.x; Debian 12 has 1.6
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kw)
    else:
        client = mqtt.Client(**kw)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish()
    finally:
        client.disconnect()
        client.loop_stop()


def cs_uplink(eui, frame, fport=1, **override):
    """A ChirpStack v4 UplinkEvent (JSON marshaler) carrying frame; override: fields to
    replace, None to leave one out."""
    body = {"deduplicationId": "3f1c7a52-8a45-4e93-a2a6-6a3a7c0e1f00",
            "time": "2026-01-01T00:00:00Z",
            "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
                           "applicationId": CS_APP, "devEui": eui.lower(),
                           "deviceClassEnabled": "CLASS_C"},
            "devAddr": "01030405", "adr": True, "dr": 5, "fCnt": 7, "fPort": fport,
            "confirmed": False, "data": base64.b64encode(frame).decode()}
    body.update(override)
    return {k: v for k, v in body.items() if v is not None}


def test_bad_input_is_counted_and_nothing_is_relayed(peers, tmp_path):
    net = Lora(peers, tmp_path)
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    send = coap("CON", "POST", 0x5151, token=b"\x51", path=["dp"], payload=b"intruder")
    up = f"application/{CS_APP}/device/{EUI.lower()}/event/up"
    stranger = "a1a2a3a4a5a6a7a8"
    cases = [
        # (name, the counter that must go up by one, topic, payload)
        ("unknown DevEUI", "unknown_devices",
         f"application/{CS_APP}/device/{stranger}/event/up", cs_uplink(stranger, send)),
        ("unlisted FPort", "unlisted_ports", up, cs_uplink(EUI, send, fport=7)),
        ("malformed JSON", "bad_messages", up, '{"deviceInfo": {"devEui": '),
        ("missing field", "bad_messages", up, cs_uplink(EUI, send, data=None)),
        ("bad base64", "bad_messages", up, cs_uplink(EUI, send, data="!!not*base64!!")),
        ("oversized frame", "bad_messages", up, cs_uplink(EUI, send + b"x" * 300)),
    ]
    for name, counter, topic, payload in cases:
        before = net.lora(counter)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        publish(net.broker, [(topic, text)])
        deadline = time.monotonic() + 5
        while net.lora(counter) != before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert net.lora(counter) == before + 1, f"{name}: {counter} did not count it"
        assert net.gw.peer.proc.poll() is None, f"{name}: the gateway exited"

    # A flood of one kind is logged, but not once per message.
    publish(net.broker, [(up, "not json at all")] * 40)
    net.gw.wait_metric("lorawan_bad_messages_total", 44)
    time.sleep(0.3)
    assert net.core("uplink_requests") == 1  # only the legitimate Register
    assert net.server.count("send") == 0
    assert net.server.count("register") == 1
    log = net.gw.peer.log_text()
    for reason in ("not listed in devices", "FPort 7", "missing field data", "bad base64",
                   "longer than 255 bytes"):
        assert reason in log  # each rejection says why
    assert 1 <= log.count("not JSON") < 20  # rate-limited

    # The legitimate device keeps working, both ways.
    r = net.server.request(f"read 1 {EUI} /3/0/0", timeout=15)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    dev.send("send a1626e6364746573740166763131")
    assert dev.wait_for("sent", timeout=10)["code"] == "2.04"
    assert net.server.wait_for("send")["ep"] == EUI
    assert net.gw.peer.proc.poll() is None


# ---------------------------------------------------------------------------- restart

def test_request_pending_at_the_network_server_survives_sigkill(peers, tmp_path):
    """Class A, no RX window opened by itself: the server's request waits at the network
    server while the gateway is killed and started again; the device's answer, after it
    opens a window, still reaches the server, and the last data rate (DR 3: 115 bytes, where
    an unknown one would mean 51) is still known."""
    net = Lora(peers, tmp_path, vlns_devices=(f"{EUI}=0,class=A,dr=3",))
    dev = net.device()
    net.server.wait_for("register", ep=EUI)
    net.vlns.wait_for("downlink_delivered", deveui=EUI.lower())  # the Register's answer
    time.sleep(0.3)  # the Register's RX windows are over
    before = len(net.downlinks())
    net.server.send(f"read 1 {EUI} /3/0/0")
    queued = next_event(net.vlns, "downlink_enqueued", before, deveui=EUI.lower())
    assert net.vlns.count("downlink_delivered", id=queued["id"]) == 0

    net.gw.kill()  # the server had its empty ACK: the request must not be lost
    gw2 = net.peers.restart(net.gw)
    net.gw = gw2
    value = "v" * 80  # a write of about 100 bytes: fits DR 3, not the 51 of an unknown DR
    net.server.send(f"write 2 {EUI} /3/0/15 {value}")
    # Appendix C.3.2 counts ACK_TIMEOUT from the network server's report that the frame was
    # sent: a frame still queued for a class A device is not sent again meanwhile, and the
    # write waits behind it in the gateway (NSTART 1).
    time.sleep(ACK_TIMEOUT_S + 1)
    assert len(net.downlinks()) == before + 1
    assert gw2.metrics()["late_retransmits_total"] == 0
    net.vlns.send(f"wake {EUI.lower()}")  # the device opens an RX window
    r = net.server.wait_for("response", id=1, timeout=15)
    assert (r["code"], r["payload"], r["type"]) == ("2.05", "lwm2m-gw test", "CON")
    assert net.vlns.wait_for("downlink_delivered", id=queued["id"])
    deadline = time.monotonic() + 20
    while not net.server.seen_events("response", id=2) and time.monotonic() < deadline:
        net.vlns.send(f"wake {EUI.lower()}")
        time.sleep(1.0)
    r2 = net.server.wait_for("response", id=2, timeout=1)
    assert r2["code"] == "2.04"
    assert net.server.count("block1-retry") == 0  # DR 3 was still known: no 4.13
    assert dev.wait_for("write", path="/3/0/15")["value"] == value
    assert dev.count("request", path="/3/0/0") == 1
    assert net.server.count("register") == 1  # no new Register
    assert gw2.metrics()["devices_registered"] == 1
    assert gw2.metrics()["too_large_total"] == 0
