"""LwM2M over SMS (Transport 6.8.3): test device -> vmodem phone (UDP) -> SMS -> vmodem PTY ->
the gateway's AT modem driver -> sms binding -> relay -> CoAP/UDP -> test LwM2M server, and back.
"""
import os
import signal
import time

import pytest

DEVICE_NUMBER = "14155550125"
STRANGER = "14155550199"


def sms_setup(peers, personality="generic", vmodem_extra=(), device_extra=(), allow=None,
              phones=(DEVICE_NUMBER,), sms_extra=""):
    modem = peers.vmodem(list(phones), extra=["--personality", personality] + list(vmodem_extra))
    server = peers.server()
    devices = f'{{ endpoint = "meter-17"; msisdn = "{DEVICE_NUMBER}"; }}'
    allow_text = f"allow = [ {', '.join(repr(a).replace(chr(39), chr(34)) for a in allow)} ];" \
        if allow else ""
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       device_timeout_ms=20000,
                       sms=f'modem = "{modem.link}"; msisdn = "12125550178"; '
                           f'sweep_interval_ms = 2000; {allow_text} {sms_extra}')
    return modem, server, gw


def sms_device(peers, gw, modem, number=DEVICE_NUMBER, ep="meter-17", extra=()):
    # Registered with b=S, as an SMS device says; test_udp_client_behind_the_modem has b=U.
    return peers.device(gw, ep, server_uri=modem.phone_uri(number),
                        extra=["--binding", "S"] + list(extra))


def test_registration_of_600_bytes_travels_as_5_sms(peers):
    modem, server, gw = sms_setup(peers)
    dev = sms_device(peers, gw, modem, extra=["--reg-payload-size", "600"])
    reg = server.wait_for("register", ep="meter-17", timeout=30)
    assert reg["payload_len"] >= 600
    assert dev.wait_for("registered", timeout=30)["code"] == "2.01"
    sms_in = modem.wait_for("sms-in", msisdn=DEVICE_NUMBER)
    assert sms_in["parts"] == 5
    m = gw.metrics()
    assert m["sms_concat_completed_total"] == 1
    assert m["uplink_requests_total"] == 1


@pytest.mark.parametrize("personality", ["generic", "quectel", "simcom", "huawei"])
def test_read_write_execute_observe_over_sms(peers, personality):
    modem, server, gw = sms_setup(peers, personality=personality,
                                  vmodem_extra=["--noise-interval", "300"])
    dev = sms_device(peers, gw, modem, extra=["--notify-ms", "1500"])
    server.wait_for("register", ep="meter-17", timeout=30)
    r = server.request("read 1 meter-17 /3/0/0", timeout=30)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    assert server.request("write 2 meter-17 /3/0/14 +05:30", timeout=30)["code"] == "2.04"
    assert dev.wait_for("write", path="/3/0/14")["value"] == "+05:30"
    assert server.request("execute 3 meter-17 /3/0/4", timeout=30)["code"] == "2.04"
    r = server.request("observe 4 meter-17 /3/0/13", timeout=30)
    assert r["code"] == "2.05"
    server.wait_for("notify", id=4, timeout=30)
    assert gw.metrics()["sms_ignored_senders_total"] == 0


def test_number_off_the_allow_list_is_ignored(peers):
    modem, server, gw = sms_setup(peers, phones=(DEVICE_NUMBER, STRANGER))
    sms_device(peers, gw, modem, number=STRANGER, ep="stranger",
               extra=["--register-timeout-ms", "3000"])
    dev = sms_device(peers, gw, modem)
    server.wait_for("register", ep="meter-17", timeout=30)
    dev.wait_for("registered", timeout=30)
    deadline = time.monotonic() + 10
    while gw.metrics()["sms_ignored_senders_total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gw.metrics()["sms_ignored_senders_total"] >= 1
    assert server.count("register", ep="stranger") == 0


def test_allow_list_admits_an_unlisted_number(peers):
    modem, server, gw = sms_setup(peers, phones=(DEVICE_NUMBER, STRANGER), allow=[STRANGER])
    sms_device(peers, gw, modem, number=STRANGER, ep="guest")
    server.wait_for("register", ep="guest", timeout=30)


def test_ten_slot_storage_never_overflows_under_a_burst_of_50(peers):
    modem, server, gw = sms_setup(peers, vmodem_extra=["--storage-slots", "10"])
    dev = sms_device(peers, gw, modem)
    server.wait_for("register", ep="meter-17", timeout=30)
    dev.wait_for("registered", timeout=30)
    # 50 LwM2M Send operations as NON CoAP POST /dp, injected as SMS from the device's number.
    for i in range(50):
        coap = bytes([0x52, 0x02, 0x10, i, 0xAA, i, 0xB2]) + b"dp" + bytes([0x11, 0x70]) + \
            b"\xff" + bytes([0xA1, 0x00, i])
        modem.send(f"inject {DEVICE_NUMBER} {coap.hex()}")
    deadline = time.monotonic() + 90
    while server.count("send") < 50 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server.count("send") == 50  # every SMS arrived once: none lost, none twice
    events = modem.drain()
    assert not [e for e in events if e.get("event") == "dropped"]
    assert any(e.get("event") == "storage-full" for e in events)  # the burst did fill it
    modem.send("status")
    stored = modem.wait_for("status")["stored"]  # per memory: {"SM": n, "ME": n}
    assert sum(stored.values()) == 0  # each SMS deleted once handled, none left behind


def test_loss_duplication_and_reordering_deliver_once_or_count_expired(peers):
    modem, server, gw = sms_setup(peers, vmodem_extra=["--loss", "0.1", "--duplicate", "0.1",
                                                       "--reorder", "--seed", "7"],
                                  sms_extra="reassembly_timeout_ms = 3000;")
    dev = sms_device(peers, gw, modem, extra=["--register-timeout-ms", "60000"])
    server.wait_for("register", ep="meter-17", timeout=60)
    dev.wait_for("registered", timeout=60)
    sends = 20
    for i in range(sends):
        dev.send("send " + ("%02x" % i) * 300)  # 300 bytes + CoAP header: 3 SMS each
        time.sleep(0.3)
    time.sleep(8)  # past the reassembly timeout
    m = gw.metrics()
    delivered = [e["payload_hex"] for e in server.drain() if e.get("event") == "send"]
    assert len(delivered) == len(set(delivered))  # never twice
    assert len(delivered) + m["sms_concat_expired_total"] >= sends
    assert m["sms_concat_duplicates_total"] + m["duplicates_total"] >= 0


def test_unplug_mid_traffic_loses_nothing_and_traffic_resumes(peers):
    modem, server, gw = sms_setup(peers)
    dev = sms_device(peers, gw, modem)
    server.wait_for("register", ep="meter-17", timeout=30)
    dev.wait_for("registered", timeout=30)
    modem.proc.send_signal(signal.SIGUSR1)  # USB unplug
    modem.wait_for("unplugged")
    for i in range(3):
        dev.send(f"send a1{i:02x}")  # these wait in the network or the SIM meanwhile
    time.sleep(2)
    modem.proc.send_signal(signal.SIGUSR2)  # re-enumerated
    modem.wait_for("replugged")
    for i in range(3):
        server.wait_for("send", timeout=60, payload_hex=f"a1{i:02x}")
    assert server.request("read 1 meter-17 /3/0/1", timeout=30)["payload"] == "test-device"
    assert gw.metrics()["sms_modem_reopens_total"] >= 1


def test_sighup_applies_a_new_allow_list(peers):
    modem, server, gw = sms_setup(peers, phones=(DEVICE_NUMBER, STRANGER))
    guest = sms_device(peers, gw, modem, number=STRANGER, ep="guest",
                       extra=["--register-timeout-ms", "60000"])
    deadline = time.monotonic() + 15
    while gw.metrics()["sms_ignored_senders_total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gw.metrics()["sms_ignored_senders_total"] >= 1  # not allowed yet
    gw.sms += f' allow = [ "{STRANGER}" ];'
    gw.write_config(f'{{ endpoint = "meter-17"; msisdn = "{DEVICE_NUMBER}"; }}')
    gw.reload()
    # The guest's own CoAP retransmission of its Register now gets through.
    server.wait_for("register", ep="guest", timeout=60)
    guest.wait_for("registered", timeout=60)


SMS_PSK_ID = "meter-17"
SMS_PSK = "000102030405060708090a0b0c0d0e0f"


def dtls_sms_setup(peers, device_key=SMS_PSK, with_device=True):
    modem = peers.vmodem([DEVICE_NUMBER])
    server = peers.server()
    devices = (f'{{ endpoint = "meter-17"; msisdn = "{DEVICE_NUMBER}"; sms_security = "dtls"; '
               f'sms_psk_identity = "{SMS_PSK_ID}"; sms_psk_key_hex = "{SMS_PSK}"; }}')
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       device_timeout_ms=20000, sms=f'modem = "{modem.link}";')
    dev = None
    if with_device:
        dev = peers.device(gw, "meter-17", server_uri="coaps" + modem.phone_uri(DEVICE_NUMBER)[4:],
                           extra=["--binding", "S", "--psk-identity", SMS_PSK_ID,
                                  "--psk-key", device_key, "--register-timeout-ms", "20000"])
    return modem, server, gw, dev


def test_dtls_over_sms_device_registers_and_is_read_observed_written(peers):
    modem, server, gw, dev = dtls_sms_setup(peers)
    server.wait_for("register", ep="meter-17", timeout=60)
    dev.wait_for("registered", timeout=60)
    assert server.request("read 1 meter-17 /3/0/0", timeout=30)["payload"] == "lwm2m-gw test"
    assert server.request("write 2 meter-17 /3/0/14 +02:00", timeout=30)["code"] == "2.04"
    assert dev.wait_for("write", path="/3/0/14")["value"] == "+02:00"
    assert server.request("observe 3 meter-17 /3/0/13", timeout=30)["code"] == "2.05"
    server.wait_for("notify", id=3, timeout=30)
    m = gw.metrics()
    assert m["sms_dtls_handshakes_total"] == 1
    assert m["sms_dtls_failed_handshakes_total"] == 0


def test_dtls_over_sms_wrong_key_is_ignored_and_counted(peers):
    modem, server, gw, dev = dtls_sms_setup(peers, device_key="ff" * 16)
    deadline = time.monotonic() + 30
    while gw.metrics()["sms_dtls_failed_handshakes_total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert gw.metrics()["sms_dtls_failed_handshakes_total"] >= 1
    assert server.count("register") == 0


def test_plain_coap_from_a_dtls_device_is_discarded_without_reply(peers):
    modem, server, gw, _ = dtls_sms_setup(peers, with_device=False)
    # An unprotected CoAP Register from the device's number, as if the device skipped DTLS.
    coap = bytes([0x42, 0x02, 0x12, 0x34, 0xAB, 0xCD, 0xB2]) + b"rd" + bytes([0x48]) + \
        b"ep=rogue" + b"\xff</3/0>"
    modem.send(f"inject {DEVICE_NUMBER} {coap.hex()}")
    time.sleep(3)
    assert server.count("register", ep="rogue") == 0
    assert not [e for e in modem.drain() if e.get("event") == "sms-out"]  # no reply at all
    assert gw.metrics()["sms_dtls_no_session_total"] >= 1


def test_udp_client_behind_the_modem_is_served_over_sms(peers):
    """An unmodified UDP client made an SMS device by the modem registers with its b=U: it
    speaks SMS all the same, so the server's requests reach it over SMS and the server is told
    b=US (issue 11; before, every request was answered 5.03)."""
    modem, server, gw = sms_setup(peers)
    dev = peers.device(gw, "meter-17", server_uri=modem.phone_uri(DEVICE_NUMBER),
                       extra=["--binding", "U"])
    reg = server.wait_for("register", ep="meter-17", timeout=30)
    assert reg["b"] == "US"
    dev.wait_for("registered", timeout=30)
    r = server.request("read 1 meter-17 /3/0/0", timeout=30)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    assert gw.metrics()["unavailable_total"] == 0
    assert gw.peer.log_text().count("registered with b=U over the sms link") == 1


def test_malformed_coap_over_sms_is_counted_and_the_device_still_served(peers):
    modem, server, gw = sms_setup(peers)
    dev = sms_device(peers, gw, modem)
    server.wait_for("register", ep="meter-17", timeout=30)
    dev.wait_for("registered", timeout=30)
    modem.drain()
    sent_before = sum(1 for e in modem.seen if e.get("event") == "sms-out")
    # "4f01000100" and "40010001ff" are CONs with a readable header: over UDP they would get an
    # RST, over SMS nothing, since each answer costs money (issue 11).
    for garbage in ("00", "ffffffff", "4f01000100", "40010001ff", "60" * 300):
        modem.send(f"inject {DEVICE_NUMBER} {garbage}")
    deadline = time.monotonic() + 30
    while gw.metrics()["malformed_total"] < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gw.metrics()["malformed_total"] == 5
    modem.drain(1.0)
    assert sum(1 for e in modem.seen if e.get("event") == "sms-out") == sent_before
    assert server.request("read 1 meter-17 /3/0/1", timeout=30)["payload"] == "test-device"
