"""Device -> gateway (NIDD SGi binding) -> LwM2M server, and back, with real peers."""
import socket
import struct
import subprocess
import time

from lwm2m_peers import GATEWAY_BIN, free_port


def register(peers, ep="dev-a", gateway_kw=None, device_extra=(), devices="", server=None,
             local_port=0):
    server = server or peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices, **(gateway_kw or {}))
    dev = peers.device(gw, ep, extra=device_extra, local_port=local_port)
    reg = server.wait_for("register", ep=ep)
    dev.wait_for("registered")
    return server, gw, dev, reg


def test_register_update_send_deregister(peers):
    server, gw, dev, reg = register(peers, device_extra=["--lwm2m", "1.2", "--binding", "N"])
    # Leshan-strict profile: lwm2m=1.2 is rewritten to 1.1, N is a letter servers know.
    assert reg["lwm2m"] == "1.1"
    assert reg["b"] == "N"
    # The server sees the gateway's per-device session, not the device's own port.
    assert int(reg["peer"].rsplit(":", 1)[1]) != dev.local_port
    assert reg["payload"].startswith("</1/0>,</3/0>")

    dev.send("update")
    upd = server.wait_for("update", ep="dev-a")
    assert upd["peer"] == reg["peer"]
    assert dev.wait_for("updated")["code"] == "2.04"

    dev.send("send a1626e6161626176")
    sent = server.wait_for("send", ep="dev-a")
    assert sent["payload_hex"] == "a1626e6161626176"
    assert dev.wait_for("sent")["code"] == "2.04"

    dev.send("deregister")
    server.wait_for("deregister", ep="dev-a")
    assert dev.wait_for("deregistered")["code"] == "2.02"
    m = gw.metrics()
    assert m["uplink_requests_total"] == 4
    assert m["devices_registered"] == 0


def test_read_write_execute(peers):
    server, gw, dev, _ = register(peers)
    r = server.request("read 1 dev-a /3/0/0")
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    assert r["type"] == "ACK"  # the device answered within the window: piggybacked

    r = server.request("write 2 dev-a /3/0/14 +02:00")
    assert r["code"] == "2.04"
    assert dev.wait_for("write", path="/3/0/14")["value"] == "+02:00"
    assert server.request("read 3 dev-a /3/0/14")["payload"] == "+02:00"

    r = server.request("execute 4 dev-a /3/0/4")
    assert r["code"] == "2.04"
    dev.wait_for("execute", path="/3/0/4")

    r = server.request("discover 5 dev-a /3/0")
    assert r["code"] == "2.05" and "</3/0/13>" in r["payload"]

    r = server.request("write-attr 6 dev-a /3/0/13 pmin=1&pmax=5")
    assert r["code"] == "2.04"
    assert dev.wait_for("write-attr", path="/3/0/13")["query"]

    assert server.request("read 7 dev-a /3/0/99")["code"] == "4.04"
    assert server.request("delete 8 dev-a /3/0")["code"] == "4.05"
    m = gw.metrics()
    assert m["downlink_requests_total"] == 8
    assert m["piggybacked_total"] == 8


def test_composite_fetch_and_ipatch(peers):
    server, gw, dev, _ = register(peers)
    senml_paths = "816162662f332f302f30"  # not interpreted by the gateway: bytes pass through
    r = server.request(f"fetch 1 dev-a 112 {senml_paths}")
    assert r["code"] == "2.05"
    r = server.request("ipatch 2 dev-a 112 81a2006b2f332f302f31340363" + "2b30313a3030")
    assert r["code"] in ("2.04", "2.05")
    reqs = [e for e in dev.drain() if e.get("event") == "request"]
    assert [e["method"] for e in reqs][-2:] == ["FETCH", "iPATCH"]


def test_observe_three_notifications_then_cancel_both_ways(peers):
    server, gw, dev, _ = register(peers, device_extra=["--notify-ms", "300", "--con-notify"])
    r = server.request("observe 10 dev-a /3/0/13")
    assert r["code"] == "2.05" and r["observe"] is not None
    seqs = [server.wait_for("notify", id=10)["observe"] for _ in range(3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    note = server.wait_for("notify", id=10)
    assert note["type"] == "CON"  # confirmable notifications stay confirmable

    # Cancel by Observe=1 (RFC 7641 3.6) is relayed as a request.
    r = server.request("cancel 10")
    assert r["code"] == "2.05"
    assert dev.wait_for("observe-cancelled", path="/3/0/13")["by"] == "observe=1"

    # Cancel by RST: the server rejects the next notification, the device learns it by RST.
    r = server.request("observe 11 dev-a /3/0/13")
    assert r["code"] == "2.05"
    server.wait_for("notify", id=11)
    server.send("cancel-rst 11")
    assert dev.wait_for("observe-cancelled", timeout=10)["by"] == "rst"
    assert gw.metrics()["notifications_total"] >= 5


def test_silent_device_gets_504_within_configured_time(peers):
    server, gw, dev, _ = register(peers, device_extra=["--silent"])
    t0 = time.monotonic()
    r = server.request("read 1 dev-a /3/0/0", timeout=20)
    elapsed = time.monotonic() - t0
    assert r["code"] == "5.04"
    # device_timeout_ms = 3000 in the test configuration; the window (1000 ms) passed first,
    # so the 5.04 comes as a separate response after an empty ACK.
    assert r["type"] == "CON"
    assert 2.9 <= elapsed < 8, elapsed
    assert gw.metrics()["gateway_timeouts_total"] == 1


def test_malformed_datagrams_are_counted_and_dropped(peers):
    server, gw, dev, _ = register(peers)
    bad = [b"", b"\x40", b"\x80\x01\x00\x01", b"\x4f\x01\x00\x01", b"\x40\x01\x00\x01\xff",
           b"\x40\x01\x00\x01\xf0", bytes(range(256))]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in bad:
            s.sendto(d, ("127.0.0.1", gw.sgi_port))
    deadline = time.monotonic() + 5
    while gw.metrics()["malformed_total"] < len(bad) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gw.metrics()["malformed_total"] == len(bad)
    # The gateway is still there and the device still served.
    assert server.request("read 1 dev-a /3/0/1")["payload"] == "test-device"


def test_two_devices_stay_apart(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    a = peers.device(gw, "dev-a")
    b = peers.device(gw, "dev-b")
    reg_a = server.wait_for("register", ep="dev-a")
    reg_b = server.wait_for("register", ep="dev-b")
    assert reg_a["peer"] != reg_b["peer"]  # one upstream port per device
    assert server.request("read 1 dev-a /3/0/2")["payload"] == "dev-a"
    assert server.request("read 2 dev-b /3/0/2")["payload"] == "dev-b"
    server.request("write 3 dev-b /3/0/15 Europe/Berlin")
    assert b.wait_for("write", path="/3/0/15")["value"] == "Europe/Berlin"
    assert a.count("write") == 0


def test_configured_endpoint_name_and_sleepy_binding_letter(peers):
    port = free_port()
    devices = f'{{ endpoint = "meter-17"; ue_address = "127.0.0.1:{port}"; queue_mode = true; }}'
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices)
    dev = peers.device(gw, "whatever", local_port=port, extra=["--binding", "UMH"])
    reg = server.wait_for("register")
    assert reg["ep"] == "meter-17"  # the operator's name for that UE address
    assert reg["b"] == "UQ"  # M and H dropped, Q added for a queue-mode device


def test_large_registration_payload(peers):
    server, gw, dev, reg = register(peers, device_extra=["--reg-payload-size", "1200"])
    assert reg["payload_len"] >= 1200


def test_duplicate_request_answered_from_cache(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    # A hand-made CON Register (RFC 7252 3): the same datagram twice, as a retransmission.
    options = [(11, b"rd"), (12, b"\x28"), (15, b"ep=raw-1"), (15, b"lt=60"), (15, b"b=N")]
    msg = bytes([0x42, 0x02, 0x12, 0x34, 0xAB, 0xCD]) + encode_options(options) + b"\xff</3/0>"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.bind(("127.0.0.1", 0))
        s.sendto(msg, ("127.0.0.1", gw.sgi_port))
        first = s.recv(2048)
        s.sendto(msg, ("127.0.0.1", gw.sgi_port))
        second = s.recv(2048)
    assert first == second
    assert first[0] >> 4 & 3 == 2 and first[1] == 0x41  # ACK 2.01
    assert first[2:4] == b"\x12\x34"
    server.drain(0.5)
    assert server.count("register", ep="raw-1") == 1
    assert gw.metrics()["duplicates_total"] == 1


def encode_options(options):
    out, last = b"", 0
    for number, value in options:
        delta, last = number - last, number
        out += bytes([(nibble(delta) << 4) | nibble(len(value))]) + ext(delta) + ext(len(value))
        out += value
    return out


def nibble(v):
    return v if v < 13 else 13 if v < 269 else 14


def ext(v):
    return b"" if v < 13 else bytes([v - 13]) if v < 269 else struct.pack(">H", v - 269)


def test_bootstrap_request_is_relayed(peers):
    server, gw, dev, _ = register(peers)
    dev.send("bootstrap")
    server.wait_for("bootstrap-request", ep="dev-a")
    assert dev.wait_for("bootstrap")["code"] == "2.04"


def test_queue_mode_holds_requests_until_the_device_speaks(peers):
    port = free_port()
    devices = f'{{ endpoint = "sleepy"; ue_address = "127.0.0.1:{port}"; queue_mode = true; }}'
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       gateway_extra="queue_awake_ms = 1000;")
    dev = peers.device(gw, "sleepy", local_port=port)
    server.wait_for("register", ep="sleepy")
    time.sleep(1.5)  # past the awake window: the device is asleep now
    server.send("read 1 sleepy /3/0/0")
    time.sleep(1.0)
    assert dev.count("request") == 0  # held in the gateway, not sent
    assert gw.metrics()["queued_requests"] == 1
    dev.send("update")  # the device wakes up
    r = server.wait_for("response", id=1, timeout=10)
    assert r["code"] == "2.05" and r["payload"] == "lwm2m-gw test"
    assert r["type"] == "CON"  # acknowledged at once, answered separately
    assert dev.count("request", path="/3/0/0") == 1


def test_upstream_dtls_psk(peers):
    identity, key = "meter-17", "000102030405060708090a0b0c0d0e0f"
    server = peers.server(psk=(identity, key))
    port = free_port()
    devices = (f'{{ endpoint = "meter-17"; ue_address = "127.0.0.1:{port}"; '
               f'psk_identity = "{identity}"; psk_key_hex = "{key}"; }}')
    gw = peers.gateway(f"coaps://127.0.0.1:{server.dtls_port}", devices=devices)
    dev = peers.device(gw, "meter-17", local_port=port)
    reg = server.wait_for("register", ep="meter-17", timeout=15)
    assert reg["secure"] is True
    dev.wait_for("registered")
    assert server.request("read 1 meter-17 /3/0/0")["payload"] == "lwm2m-gw test"


def test_sighup_keeps_unchanged_sessions(peers):
    ports = [free_port(), free_port()]
    entry = '{{ endpoint = "{}"; ue_address = "127.0.0.1:{}"; }}'
    devices = ", ".join([entry.format("keep", ports[0]), entry.format("change", ports[1])])
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices)
    keep = peers.device(gw, "keep", local_port=ports[0])
    change = peers.device(gw, "change", local_port=ports[1])
    reg_keep = server.wait_for("register", ep="keep")
    reg_change = server.wait_for("register", ep="change")
    keep.wait_for("registered")  # the 2.01s are through: no exchange in flight at the reload
    change.wait_for("registered")

    gw.write_config(", ".join([entry.format("keep", ports[0]), entry.format("changed", ports[1])]))
    gw.reload()
    deadline = time.monotonic() + 10  # wait until the reload was applied, then act
    while "configuration reloaded" not in gw.peer.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    keep.send("update")
    change.send("update")
    assert server.wait_for("update", ep="keep")["peer"] == reg_keep["peer"]
    # The changed device's session and registration are gone: its Update is answered 4.04 by
    # the gateway (an Update never moves a registration to another session: issue 11), and it
    # registers again under its new name, on a new session from the port it had (so a server
    # that keys devices by address keeps reaching it).
    assert change.wait_for("updated")["code"] == "4.04"
    reg = server.wait_for("register", ep="changed")
    assert reg["location"] != reg_change["location"]
    assert reg["peer"] == reg_change["peer"]
    assert change.wait_for("registered")["code"] == "2.01"
    assert server.count("update", ep="change") == 0
    assert "reloaded" in gw.peer.log_text()


def test_check_config_names_file_line_and_setting(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('upstream = ( { name = "default"; uri = "http://x"; } );\n'
                   'bindings = { nidd = { enabled = true; sgi = { listen = "127.0.0.1:5685"; }; }; };\n')
    p = subprocess.run([GATEWAY_BIN, "--check-config", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert f"{bad}:1:" in p.stderr and "upstream.[0].uri" in p.stderr


def test_non_confirmable_request_gets_non_response(peers):
    server, gw, dev, _ = register(peers)
    server.send("non 0")
    server.wait_for("mode")
    r = server.request("read 1 dev-a /3/0/3")
    assert (r["code"], r["payload"], r["type"]) == ("2.05", "1.0", "NON")
    assert dev.wait_for("request", path="/3/0/3")["type"] == "NON"  # NON end to end


def test_full_downlink_queue_answers_503(peers):
    port = free_port()
    devices = f'{{ endpoint = "sleepy"; ue_address = "127.0.0.1:{port}"; queue_mode = true; }}'
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       gateway_extra="queue_awake_ms = 1000; downlink_queue_length = 1;")
    dev = peers.device(gw, "sleepy", local_port=port)
    server.wait_for("register", ep="sleepy")
    time.sleep(1.5)
    server.send("read 1 sleepy /3/0/0")
    server.send("read 2 sleepy /3/0/1")
    r2 = server.wait_for("response", id=2, timeout=5)
    assert r2["code"] == "5.03"  # no room: refused at once, not left unanswered
    dev.send("update")
    assert server.wait_for("response", id=1, timeout=10)["code"] == "2.05"
    assert gw.metrics()["unavailable_total"] == 1


def test_unlisted_device_refused_when_accept_unknown_is_off(peers):
    port = free_port()
    devices = f'{{ endpoint = "known"; ue_address = "127.0.0.1:{port}"; }}'
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       nidd_extra="accept_unknown = false;")
    peers.device(gw, "stranger", extra=["--register-timeout-ms", "1000"])
    peers.device(gw, "known", local_port=port)
    server.wait_for("register", ep="known")
    server.drain(1.0)
    assert server.count("register", ep="stranger") == 0
    assert gw.metrics()["rejected_total"] >= 1
