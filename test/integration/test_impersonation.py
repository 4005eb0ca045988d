"""No one can act for a device they are not (issue 11): a registration's Update and De-register
are relayed only from the device that holds it, and a configured endpoint name cannot be taken
by another address. The impostors are raw sockets of the test (SGi) and a second allowed
number on the virtual modem (SMS); what counts is what the test LwM2M server saw.
"""
import socket
import time

from coap_raw import coap, parse
from test_sms_binding import DEVICE_NUMBER, STRANGER, sms_device, sms_setup


def impostor_request(gw, method, mid, path, query=()):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    try:
        s.sendto(coap("CON", method, mid, token=bytes([mid & 0xff]), path=path, query=query,
                      payload=b"</3/0>" if method == "POST" and path == ["rd"] else b""),
                 ("127.0.0.1", gw.sgi_port))
        return parse(s.recvfrom(256)[0])
    finally:
        s.close()


def test_update_and_deregister_from_another_address_are_refused(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    peers.device(gw, "meter-1").wait_for("registered")
    reg = server.wait_for("register", ep="meter-1")
    location = reg["location"].strip("/").split("/")  # ["rd", "<n>"]

    update = impostor_request(gw, "POST", 101, location, query=["lt=60"])
    assert (update["code"], update["payload"]) == ("4.03", b"not this device's registration")
    deregister = impostor_request(gw, "DELETE", 102, location)
    assert deregister["code"] == "4.03"
    # A location nobody holds: 4.04, so an honest client registers again.
    assert impostor_request(gw, "POST", 103, ["rd", "nobody"])["code"] == "4.04"

    time.sleep(0.3)
    assert server.count("update") == 0 and server.count("deregister") == 0
    assert gw.metrics()["impersonations_total"] == 2
    # The server still reaches the real device, on its own session.
    assert server.request("read 1 meter-1 /3/0/2")["payload"] == "meter-1"


def test_configured_endpoint_cannot_be_registered_from_elsewhere(peers):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       devices='{ endpoint = "meter-17"; ue_address = "127.0.0.2"; }')
    answer = impostor_request(gw, "POST", 7, ["rd"], query=["ep=meter-17", "lt=60"])
    assert answer["code"] == "4.03"
    assert server.count("register", ep="meter-17") == 0
    assert gw.metrics()["impersonations_total"] == 1
    # An unlisted name is fine: that device has no identity but its address.
    assert impostor_request(gw, "POST", 8, ["rd"], query=["ep=meter-99", "lt=60"])["code"] \
        == "2.01"


def test_another_allowed_number_cannot_update_a_device_over_sms(peers):
    modem, server, gw = sms_setup(peers, allow=[STRANGER], phones=(DEVICE_NUMBER, STRANGER))
    sms_device(peers, gw, modem)
    reg = server.wait_for("register", ep="meter-17", timeout=30)
    # The stranger's SMS carries an Update of meter-17's registration.
    path = [p.encode() for p in reg["location"].strip("/").split("/")]
    forged = bytes([0x50, 0x02, 0x12, 0x34])  # NON POST, mid 0x1234, no token
    last = 0
    for p in path:
        forged += bytes([(11 - last) << 4 | len(p)]) + p
        last = 11
    modem.send(f"inject {STRANGER} {forged.hex()}")
    deadline = time.monotonic() + 30
    while gw.metrics()["impersonations_total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gw.metrics()["impersonations_total"] == 1
    assert server.count("update") == 0
    assert server.request("read 1 meter-17 /3/0/2", timeout=30)["payload"] == "meter-17"
