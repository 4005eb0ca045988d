"""Nobody locked out (issue 11): which addresses become devices, for how long, and what a device
hears when the gateway is full. SGi devices (NIDD, Appendix D.2) on loopback; the flood comes
from raw sockets of the test, the legitimate device is the project's test device.
"""
import socket
import time

from coap_raw import coap, parse


def flood_sockets(n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def test_pings_from_many_addresses_create_no_devices(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    socks = flood_sockets(2000)
    try:
        for i, s in enumerate(socks):
            s.sendto(coap("CON", 0, i), ("127.0.0.1", gw.sgi_port))
        # RFC 7252 4.3: a ping is answered with RST, without a device behind it.
        for i in (0, 999, 1999):
            answer = parse(socks[i].recvfrom(64)[0])
            assert (answer["type"], answer["code"], answer["mid"]) == ("RST", "0.00", i)
    finally:
        close_all(socks)
    m = gw.metrics()
    assert m["devices"] == 0
    assert m["devices_created_total"] == 0
    dev = peers.device(gw, "meter-1")
    assert dev.wait_for("registered")["code"] == "2.01"


def test_request_flood_cannot_keep_a_device_from_registering(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       gateway_extra="max_devices = 200; max_unregistered = 50;")
    socks = flood_sockets(600)
    try:
        # NON requests: devices with only those in flight make room for newcomers as well.
        for i, s in enumerate(socks):
            s.sendto(coap("NON", "GET", i, token=b"\x01", path=["flood"]),
                     ("127.0.0.1", gw.sgi_port))
        gw.wait_metric("uplink_requests_total", 600, timeout=20)
        m = gw.metrics()
        assert m["devices"] <= 50
        assert m["devices_dropped_total"] >= 550
        # The flood is over but its 50 addresses still hold their slots (30 s): a real device
        # takes the place of the least recently active one and registers.
        dev = peers.device(gw, "meter-2")
        assert dev.wait_for("registered")["code"] == "2.01"
        server.wait_for("register", ep="meter-2")
        assert server.request("read 1 meter-2 /3/0/2")["payload"] == "meter-2"
        # Registered, it is no longer an unregistered device: a second flood cannot evict it.
        for i, s in enumerate(socks[:200]):
            s.sendto(coap("NON", "GET", 1000 + i, token=b"\x02", path=["flood"]),
                     ("127.0.0.1", gw.sgi_port))
        gw.wait_metric("uplink_requests_total", 801, timeout=20)
        assert server.request("read 2 meter-2 /3/0/2")["payload"] == "meter-2"
    finally:
        close_all(socks)


def test_idle_unregistered_device_is_dropped(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       gateway_extra="unregistered_timeout_s = 1;")
    s = flood_sockets(1)[0]
    try:
        s.sendto(coap("CON", "GET", 7, token=b"\x07", path=["nothing"]),
                 ("127.0.0.1", gw.sgi_port))
        assert parse(s.recvfrom(256)[0])["code"] == "4.04"  # the server's answer, relayed
        assert gw.metrics()["devices"] == 1
        gw.wait_metric("devices", 0, timeout=5)
        assert gw.metrics()["devices_dropped_total"] == 1
    finally:
        s.close()
    # A registered device is not dropped however long it is silent (its lifetime is 300 s).
    dev = peers.device(gw, "meter-3", extra=["--lifetime", "300"])
    dev.wait_for("registered")
    time.sleep(2.5)
    assert gw.metrics()["devices_registered"] == 1
    assert server.request("read 1 meter-3 /3/0/2")["payload"] == "meter-3"


def test_full_gateway_answers_503_with_the_reason(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       gateway_extra="max_devices = 2; max_unregistered = 2;")
    for ep in ("meter-a", "meter-b"):
        peers.device(gw, ep).wait_for("registered")
    s = flood_sockets(1)[0]
    try:
        s.sendto(coap("CON", "POST", 42, token=b"\x2a", path=["rd"],
                      query=["ep=meter-c", "lt=300"], payload=b"</3/0>"),
                 ("127.0.0.1", gw.sgi_port))
        answer = parse(s.recvfrom(256)[0])
    finally:
        s.close()
    assert (answer["type"], answer["code"], answer["mid"], answer["token"]) == \
        ("ACK", "5.03", 42, b"\x2a")
    assert answer["payload"] == b"device limit of the gateway reached"
    assert server.count("register", ep="meter-c") == 0
    assert gw.metrics()["devices_refused_total"] == 1


def test_busy_unregistered_devices_keep_their_slots(peers):
    # An upstream that never answers: CON requests stay in flight (libcoap retransmits them).
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{silent.getsockname()[1]}",
                           gateway_extra="max_unregistered = 3;")
        socks = flood_sockets(4)
        try:
            for i, s in enumerate(socks[:3]):
                s.sendto(coap("CON", "POST", i, token=b"\x03", path=["dp"], payload=b"x"),
                         ("127.0.0.1", gw.sgi_port))
            gw.wait_metric("uplink_requests_total", 3)
            socks[3].sendto(coap("CON", "POST", 9, token=b"\x09", path=["dp"], payload=b"y"),
                            ("127.0.0.1", gw.sgi_port))
            answer = parse(socks[3].recvfrom(256)[0])
            assert (answer["type"], answer["code"], answer["mid"]) == ("ACK", "5.03", 9)
            assert answer["payload"].startswith(b"too many unregistered devices are active")
            m = gw.metrics()
            assert m["devices"] == 3 and m["devices_dropped_total"] == 0
        finally:
            close_all(socks)
    finally:
        silent.close()
