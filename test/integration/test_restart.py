"""State that survives the process (issue 11): the gateway is killed with SIGKILL (or stopped)
and started again on the same state_dir. The server must reach every registered device as
before, from the same port, with no new Register; a message relayed again after the restart
must keep its message ID, so the peer's deduplication sees it for what it is; message IDs must
not start over.

Some tests play the LwM2M server or the device from a raw socket of the test (coap_raw), to see
exactly which message IDs and ports the gateway uses."""
import os
import socket
import time

from coap_raw import coap, parse


def registered_device(peers, ep, device_args=("--lifetime", "600"), gateway_extra=""):
    """A test server, a gateway, and an SGi device registered through it: (server, gateway,
    device, the server's register event)."""
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", gateway_extra=gateway_extra)
    dev = peers.device(gw, ep, extra=list(device_args))
    reg = server.wait_for("register", ep=ep)
    dev.wait_for("registered")
    return server, gw, dev, reg


def udp_socket(timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


def test_registered_device_is_reached_after_sigkill_without_registering_again(peers):
    server, gw, dev, reg = registered_device(peers, "meter-1")
    assert server.request("read 1 meter-1 /3/0/0")["payload"] == "lwm2m-gw test"

    gw.kill()
    gw2 = peers.restart(gw)
    # The same session (port) as before, and the right answer to a different request: the
    # gateway's message IDs toward the device did not start over where its duplicate cache
    # would still answer /3/0/0 (measured on main: Anjay returned /3/0/0's value).
    r = server.request("read 2 meter-1 /3/0/1")
    assert (r["code"], r["payload"]) == ("2.05", "test-device")
    assert server.count("register") == 1
    assert gw2.metrics()["devices_registered"] == 1
    assert gw2.metrics()["state_persistent"] == 1
    assert "1 devices restored" in gw2.peer.log_text()
    # The device's own Update still goes out on its session, from the same port.
    dev.send("update")
    assert server.wait_for("update", ep="meter-1")["peer"] == reg["peer"]


def test_request_relayed_again_after_sigkill_keeps_its_message_id(peers):
    lwm2m_server = udp_socket()
    device = udp_socket()
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{lwm2m_server.getsockname()[1]}")
        send = coap("CON", "POST", 0x4242, token=b"\x42", path=["dp"], payload=b"reading 17")
        device.sendto(send, ("127.0.0.1", gw.sgi_port))
        first, peer1 = lwm2m_server.recvfrom(2048)
        # Killed after relaying it and before the server's answer: the device sends it again.
        gw.kill()
        gw2 = peers.restart(gw)
        device.sendto(send, ("127.0.0.1", gw2.sgi_port))
        again, peer2 = lwm2m_server.recvfrom(2048)
        assert peer2 == peer1                                # the same session
        assert parse(again)["mid"] == parse(first)["mid"]    # a duplicate to the server
        assert parse(again)["payload"] == b"reading 17"
        answer = coap("ACK", 0x44, parse(again)["mid"], token=b"\x42")  # 2.04
        lwm2m_server.sendto(answer, peer2)
        got = parse(device.recvfrom(256)[0])
        assert (got["type"], got["code"], got["mid"]) == ("ACK", "2.04", 0x4242)
        # A new message after the restart gets a new ID, not one the server saw recently.
        device.sendto(coap("CON", "POST", 0x4243, token=b"\x43", path=["dp"], payload=b"x"),
                      ("127.0.0.1", gw2.sgi_port))
        assert parse(lwm2m_server.recvfrom(2048)[0])["mid"] != parse(first)["mid"]
    finally:
        lwm2m_server.close()
        device.close()


def register_through(gw, lwm2m_server, device, ep="raw-1", lt=600):
    """The device (raw socket) registers through the gateway with the server (raw socket)."""
    device.sendto(coap("CON", "POST", 0x100, token=b"\x01", path=["rd"],
                       query=[f"ep={ep}", f"lt={lt}", "b=U"], payload=b"</3/0>"),
                  ("127.0.0.1", gw.sgi_port))
    reg, session = lwm2m_server.recvfrom(2048)
    lwm2m_server.sendto(coap("ACK", 0x41, parse(reg)["mid"], token=b"\x01",
                             location=["rd", "7"]), session)
    assert parse(device.recvfrom(256)[0])["code"] == "2.01"
    return session


def test_server_retransmission_after_sigkill_reaches_the_device_as_a_duplicate(peers):
    lwm2m_server = udp_socket()
    device = udp_socket()
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{lwm2m_server.getsockname()[1]}")
        session = register_through(gw, lwm2m_server, device)
        execute = coap("CON", "POST", 0x7001, token=b"\x70", path=["3", "0", "4"])
        lwm2m_server.sendto(execute, session)
        first = parse(device.recvfrom(256)[0])
        # Killed before the device answered; the server retransmits its Execute.
        gw.kill()
        gw2 = peers.restart(gw)
        lwm2m_server.sendto(execute, session)
        again = parse(device.recvfrom(256)[0])
        assert again["mid"] == first["mid"]  # the device answers from its cache: Reboot once
        device.sendto(coap("ACK", 0x44, again["mid"], token=b"\x70"), ("127.0.0.1", gw2.sgi_port))
        answer = parse(lwm2m_server.recvfrom(256)[0])
        assert (answer["type"], answer["code"], answer["mid"]) == ("ACK", "2.04", 0x7001)
    finally:
        lwm2m_server.close()
        device.close()


def test_request_waiting_for_a_sleepy_device_is_answered_after_sigkill(peers):
    server, gw, dev, _ = registered_device(peers, "sleepy", ("--queue", "--lifetime", "600"),
                                           gateway_extra="queue_awake_ms = 1000;")
    time.sleep(1.5)  # asleep for the gateway now
    server.send("read 1 sleepy /3/0/2")
    gw.wait_metric("queued_requests", 1)
    gw.kill()
    gw2 = peers.restart(gw, name="gateway-after-kill")
    assert gw2.metrics()["queued_requests"] == 1
    dev.send("update")  # heard from again: the queued Read goes out
    r = server.wait_for("response", id=1, timeout=15)
    assert (r["code"], r["payload"]) == ("2.05", "sleepy")
    gw2.wait_metric("queued_requests", 0)


def test_observation_survives_sigkill(peers):
    server, gw, dev, _ = registered_device(peers, "meter-o",
                                           ("--notify-ms", "300", "--lifetime", "600"))
    assert server.request("observe 1 meter-o /3/0/13")["code"] == "2.05"
    server.wait_for("notify", id=1)
    gw.kill()
    gw2 = peers.restart(gw)
    server.drain(0.5)
    before = server.count("notify", id=1)
    time.sleep(1.5)
    assert server.count("notify", id=1) >= before + 2  # still relayed, not reset
    assert gw2.metrics()["observations"] == 1
    assert dev.count("observe-cancelled") == 0


def test_lapsed_registration_is_not_restored(peers):
    server, gw, dev, _ = registered_device(peers, "short", ("--lifetime", "1"))
    gw.kill()
    time.sleep(2.2)
    gw2 = peers.restart(gw)
    assert "not restored: its registration's lifetime passed" in gw2.peer.log_text()
    assert gw2.metrics()["devices"] == 0


def test_clean_stop_keeps_the_state(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    peers.device(gw, "meter-2").wait_for("registered")
    assert gw.stop() == 0
    gw2 = peers.restart(gw)
    assert server.request("read 1 meter-2 /3/0/2")["payload"] == "meter-2"
    assert server.count("register") == 1


def test_state_dir_held_by_another_gateway_is_refused(peers, tmp_path):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    try:
        peers.gateway(f"coap://127.0.0.1:{server.port}", name="second", state_dir=gw.state_dir)
        raise AssertionError("a second gateway started on the same state_dir")
    except AssertionError as e:
        assert "is in use by another lwm2m-gw" in str(e)
    with open(os.path.join(gw.state_dir, "lock")) as f:
        assert int(f.read()) == gw.peer.proc.pid


def test_send_retransmitted_after_sigkill_is_stored_once_by_the_server(peers):
    """The device's answer was lost and the gateway killed; the device sends its Send again to
    the restarted gateway. The server, deduplicating by message ID as real servers do
    (RFC 7252 4.5), answers it from its cache: stored once."""
    server = peers.server()
    device = udp_socket()
    try:
        gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
        send = coap("CON", "POST", 0x5151, token=b"\x51", path=["dp"], payload=b"\x01\x02")
        device.sendto(send, ("127.0.0.1", gw.sgi_port))
        assert parse(device.recvfrom(256)[0])["code"] == "2.04"  # (pretend it was lost)
        server.wait_for("send")
        gw.kill()
        gw2 = peers.restart(gw)
        device.sendto(send, ("127.0.0.1", gw2.sgi_port))
        again = parse(device.recvfrom(256)[0])
        assert (again["code"], again["mid"]) == ("2.04", 0x5151)
        server.wait_for("duplicate")
        assert server.count("send") == 1
    finally:
        device.close()


def test_dtls_upstream_handshakes_again_from_the_same_port(peers):
    from lwm2m_peers import free_port
    identity, key = "meter-17", "000102030405060708090a0b0c0d0e0f"
    server = peers.server(psk=(identity, key))
    port = free_port()
    devices = (f'{{ endpoint = "meter-17"; ue_address = "127.0.0.1:{port}"; '
               f'psk_identity = "{identity}"; psk_key_hex = "{key}"; }}')
    gw = peers.gateway(f"coaps://127.0.0.1:{server.dtls_port}", devices=devices)
    dev = peers.device(gw, "meter-17", local_port=port, extra=["--lifetime", "600"])
    reg = server.wait_for("register", ep="meter-17", timeout=15)
    dev.wait_for("registered")
    gw.kill()
    gw2 = peers.restart(gw)
    # The restarted gateway handshakes again from the port the server knows (RFC 6347 4.2.8:
    # a server should take a new handshake on an address it has an association with, as
    # Californium under Leshan does). libcoap's own server with OpenSSL does not: the handshake
    # times out, and the gateway renews the session from a fresh port and moves the
    # registration there with an Update of its own. The device registers nothing again.
    moved = server.wait_for("update", ep="meter-17", timeout=60)
    assert moved["peer"] != reg["peer"] and moved["secure"] is True
    assert moved["query"] == []  # an Update without parameters: only the address changes
    r = server.request("read 1 meter-17 /3/0/1", timeout=30)
    assert (r["code"], r["payload"]) == ("2.05", "test-device")
    dev.send("update")
    assert server.wait_for("update", ep="meter-17", timeout=30)["peer"] == moved["peer"]
    assert server.count("register") == 1
    assert dev.count("registered") == 1


def test_port_taken_meanwhile_moves_the_registration_with_an_update(peers):
    server, gw, dev, reg = registered_device(peers, "meter-p")
    gw.kill()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # another program took it
    squatter.bind(("127.0.0.1", int(reg["peer"].rsplit(":", 1)[1])))
    try:
        gw2 = peers.restart(gw)
        moved = server.wait_for("update", ep="meter-p", timeout=15)
        assert moved["peer"] != reg["peer"] and moved["query"] == []
        assert server.request("read 1 meter-p /3/0/2")["payload"] == "meter-p"
        assert server.count("register") == 1
        assert "cannot speak from port" in gw2.peer.log_text()
    finally:
        squatter.close()
