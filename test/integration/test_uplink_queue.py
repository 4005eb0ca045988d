"""No loss under faults (issue 11): device requests beyond the 8 in flight wait for their turn
instead of being answered 5.03, a server whose port is closed for a while still gets what the
devices sent meanwhile, and an SMS the gateway already deleted from the modem survives a
SIGKILL while the server is unreachable. The server is a raw socket of the test where the test
decides when it answers; the SGi device a raw socket too."""
import socket
import time

from coap_raw import coap, parse
from test_sms_binding import DEVICE_NUMBER, sms_setup


def udp_socket(port=0, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(timeout)
    return s


def send_burst(device, gw, count, mid0=0x2000, type_="NON"):
    for i in range(count):
        device.sendto(coap(type_, "POST", mid0 + i, token=bytes([1, i]), path=["dp"],
                           payload=f"value {i}".encode()), ("127.0.0.1", gw.sgi_port))


def test_burst_beyond_the_requests_in_flight_waits_its_turn(peers):
    server, device = udp_socket(), udp_socket()
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{server.getsockname()[1]}")
        send_burst(device, gw, 30)  # as the SMS stored while a modem was unplugged come in
        seen = []
        while len(seen) < 30:
            data, session = server.recvfrom(2048)
            req = parse(data)
            assert req["type"] == "CON"  # relayed confirmable, so it cannot vanish upstream
            seen.append(req["payload"])
            server.sendto(coap("ACK", 0x44, req["mid"], token=req["token"]), session)
        assert seen == [f"value {i}".encode() for i in range(30)]  # all, once, in order
        answers = [parse(device.recvfrom(256)[0]) for _ in range(30)]
        assert {a["code"] for a in answers} == {"2.04"}
        assert {a["type"] for a in answers} == {"NON"}  # a NON request gets a NON answer
        m = gw.metrics()
        assert m["uplink_queued_total"] >= 22 and m["uplink_refused_total"] == 0
        assert m["unavailable_total"] == 0
    finally:
        server.close()
        device.close()


def test_full_queue_answers_503(peers):
    server, device = udp_socket(), udp_socket()
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{server.getsockname()[1]}",
                           gateway_extra="uplink_queue_length = 5;")
        send_burst(device, gw, 20, type_="CON")
        refused = [parse(device.recvfrom(256)[0]) for _ in range(7)]  # 20 - 8 in flight - 5
        assert {(r["code"], r["payload"]) for r in refused} == \
            {("5.03", b"too many requests waiting; try again later")}
        assert gw.metrics()["uplink_refused_total"] == 7
    finally:
        server.close()
        device.close()


def test_server_port_closed_for_a_while_loses_nothing(peers):
    server = udp_socket()
    port = server.getsockname()[1]
    device = udp_socket(timeout=30)
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{port}")
        server.close()  # the server process is gone: ICMP port unreachable
        device.sendto(coap("CON", "POST", 0x3001, token=b"\x31", path=["dp"], payload=b"kept"),
                      ("127.0.0.1", gw.sgi_port))
        time.sleep(3)
        server = udp_socket(port, timeout=30)  # back: libcoap's retransmission reaches it
        data, session = server.recvfrom(2048)
        req = parse(data)
        assert req["payload"] == b"kept"
        server.sendto(coap("ACK", 0x44, req["mid"], token=req["token"]), session)
        answer = parse(device.recvfrom(256)[0])
        assert (answer["code"], answer["mid"]) == ("2.04", 0x3001)  # not 5.03 at once
    finally:
        server.close()
        device.close()


def test_sms_accepted_while_the_server_is_down_survives_sigkill(peers):
    modem, server, gw = sms_setup(peers)
    dev = peers.device(gw, "meter-17", server_uri=modem.phone_uri(DEVICE_NUMBER),
                       extra=["--binding", "S", "--lifetime", "600"])
    server.wait_for("register", ep="meter-17", timeout=30)
    dev.wait_for("registered", timeout=30)
    port = server.port
    server.stop()  # the LwM2M server is down
    dev.send("send-non a1")
    dev.send("send-non a2")
    deadline = time.monotonic() + 30  # read from the modem (and deleted there)
    while gw.metrics()["uplink_requests_total"] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gw.metrics()["uplink_requests_total"] == 3  # Register + both Sends
    gw.kill()
    server2 = peers.server(port=port)
    gw2 = peers.restart(gw)
    sends = [server2.wait_for("send", timeout=30) for _ in range(2)]
    assert sorted(s["payload_hex"] for s in sends) == ["a1", "a2"]
    time.sleep(1)
    assert server2.count("send") == 2  # each once
    assert gw2.metrics()["uplink_expired_total"] == 0


def test_concatenated_sms_half_read_survives_sigkill(peers):
    """Issue 11: the parts of a concatenated SMS read (and deleted from the modem) before a kill
    were lost with the gateway's memory. They are now kept in its state until the whole message
    is handed on."""
    modem, server, gw = sms_setup(peers, vmodem_extra=["--delay", "1500"])
    payload = bytes(range(256)) * 2  # 512 octets of a NON Send: 4 SMS
    send = coap("NON", "POST", 0x7701, token=b"\x5a\x01", path=["dp"], payload=payload)
    modem.send(f"inject {DEVICE_NUMBER} {send.hex()}")
    deleted = [modem.wait_for("deleted", timeout=20) for _ in range(2)]  # 2 of 4 parts read
    assert len(deleted) == 2
    gw.kill()
    gw2 = peers.restart(gw)
    s = server.wait_for("send", timeout=30)
    assert s["payload_hex"] == payload.hex()
    time.sleep(1)
    assert server.count("send") == 1
    assert gw2.metrics()["sms_concat_completed_total"] == 1
