"""LwM2M over MQTT (Transport 8): an MQTT device -> mosquitto -> gateway -> CoAP test server.

The device is test/peers/lwm2m_mqtt_device.py (Debian's paho-mqtt and cbor2), the broker a real
mosquitto on a free loopback port, the server the project's libcoap test server. Assertions are
on what the device and the server saw.
"""
import binascii
import time

import cbor2
import pytest

from lwm2m_peers import GATEWAY_BIN  # noqa: F401  (the conftest checks the build)


def mqtt_gateway(peers, server, broker, mqtt_extra="", **kw):
    """A gateway subscribed to the broker (devices publishing earlier would not be heard)."""
    settings = f'broker = "{broker.uri}"; {mqtt_extra}'
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", mqtt=settings, **kw)
    gw.wait_metric("mqtt_connected", 1)
    return gw


def start(peers, ep="mqtt-a", prefix="tenant-a", mqtt_extra=None, device_extra=(), **kw):
    broker = peers.broker()
    server = peers.server()
    extra = mqtt_extra if mqtt_extra is not None else f'prefix = "{prefix}";'
    gw = mqtt_gateway(peers, server, broker, extra, **kw)
    dev = peers.mqtt_device(broker, ep, prefix=prefix, extra=list(device_extra))
    reg = server.wait_for("register", ep=ep)
    assert dev.wait_for("registered")["result"] == 201
    return broker, server, gw, dev, reg


def test_register_read_write_execute_observe_send_deregister(peers):
    broker, server, gw, dev, reg = start(peers)
    # Transport 8.3.2 -> Core 6.2.1: keys 8..10 became the Register query; M is not a letter a
    # 1.1 server knows, so the lwm2m11 profile shows it U (the device keeps M downstream).
    assert reg["lt"] == 300
    assert reg["lwm2m"] == "1.1"
    assert reg["b"] == "U"
    assert reg["payload"] == "</1/0>,</3/0>,</3303/0>"

    r = server.request("read 1 mqtt-a /3/0/0")
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    assert r["content_format"] == 0
    assert dev.wait_for("request", op=9)["uri"] == "/3/0/0"

    r = server.request("write 2 mqtt-a /3/0/14 +02:00")
    assert r["code"] == "2.04"
    assert dev.wait_for("write", uri="/3/0/14")["value"] == "+02:00"
    assert server.request("read 3 mqtt-a /3/0/14")["payload"] == "+02:00"

    assert server.request("execute 4 mqtt-a /3/0/4 now")["code"] == "2.04"
    assert dev.wait_for("execute", uri="/3/0/4")["args"] == "now"

    # Observe (20), three Notify (23) as CoAP notifications, Cancel-Observe (22).
    r = server.request("observe 5 mqtt-a /3/0/13")
    assert r["code"] == "2.05" and r["observe"] is not None
    obs = dev.wait_for("observe-started", uri="/3/0/13")
    seen = [server.wait_for("notify", id=5, timeout=10) for _ in range(3)]
    values = [int(n["payload"]) for n in seen]
    assert values == sorted(values) and len(set(values)) == 3
    observes = [n["observe"] for n in seen]
    assert observes == sorted(observes) and observes[0] > r["observe"]
    assert server.request("cancel 5")["code"] == "2.05"
    assert dev.wait_for("observe-cancelled")["token"] == obs["token"]

    dev.send("send a1626e6161626176 112")
    sent = server.wait_for("send", ep="mqtt-a")
    assert (sent["payload_hex"], sent["content_format"]) == ("a1626e6161626176", 112)
    assert dev.wait_for("sent")["result"] == 204

    dev.send("update 600")
    upd = server.wait_for("update", ep="mqtt-a")
    assert upd["lt"] == 600 and upd["location"] == reg["location"]
    assert dev.wait_for("updated")["result"] == 204

    dev.send("deregister")
    assert server.wait_for("deregister", ep="mqtt-a")["location"] == reg["location"]
    assert dev.wait_for("deregistered")["result"] == 202
    m = gw.metrics()
    assert m["notifications_total"] >= 3
    assert m["mqtt_malformed_total"] == 0


def test_discover_create_delete_attributes_composites(peers):
    broker, server, gw, dev, _ = start(peers)
    r = server.request("discover 1 mqtt-a /3/0")
    assert r["code"] == "2.05" and r["content_format"] == 40
    assert "</3/0/0>" in r["payload"]
    assert dev.wait_for("request", op=11)["uri"] == "/3/0"

    r = server.request("create 2 mqtt-a /3303 0 3230")
    assert r["code"] == "2.01"
    created = dev.wait_for("create", uri="/3303")
    assert created["payload_hex"] == "3230"

    assert server.request("delete 3 mqtt-a /3303/0")["code"] == "2.02"
    assert dev.wait_for("delete")["uri"] == "/3303/0"
    assert server.request("delete 4 mqtt-a /3/0")["code"] == "4.05"

    r = server.request("write-attr 5 mqtt-a /3/0/13 pmin=1&pmax=60&gt=20.5&st=0.25")
    assert r["code"] == "2.04"
    attrs = dev.wait_for("write-attr", uri="/3/0/13")["attributes"]
    assert attrs["pmin"] == 1 and attrs["pmax"] == 60
    assert attrs["gt"] == 20.5 and attrs["st"] == 0.25
    # "lt" has no key in table 8.7-1: the gateway cannot carry it and says so.
    assert server.request("write-attr 6 mqtt-a /3/0/13 lt=5")["code"] == "5.01"

    # Read-Composite: FETCH with SenML-ETCH CBOR (322) becomes operation 10 with paths.
    etch = cbor2.dumps([{0: "/3/0/0"}, {0: "/3/0/1"}]).hex()
    r = server.request(f"fetch 7 mqtt-a 322 {etch}")
    assert r["code"] == "2.05" and r["content_format"] == 112
    values = cbor2.loads(binascii.unhexlify(r["payload_hex"]))
    assert {v[0]: v[3] for v in values} == {"/3/0/0": "lwm2m-gw test", "/3/0/1": "test-device"}
    assert dev.wait_for("read-composite")["paths_hex"] == etch
    # SenML-ETCH JSON cannot be carried: 8.3.3 says paths are CBOR.
    assert server.request("fetch 8 mqtt-a 320 5b5d")["code"] == "4.15"

    senml = cbor2.dumps([{0: "/3/0/14", 3: "+01:00"}]).hex()
    assert server.request(f"ipatch 9 mqtt-a 112 {senml}")["code"] == "2.04"
    assert dev.wait_for("write-composite")["payload_hex"] == senml


def test_bad_input_is_answered_and_counted(peers):
    broker, server, gw, dev, _ = start(peers)
    # Not CBOR at all, no token to answer: dropped and counted.
    dev.send("raw rd ff00ff")
    # An unknown operation (19 is unassigned): 501 (Transport 8.5 generic errors).
    dev.send("raw rd " + cbor2.dumps({1: 19, 2: 77}).hex())
    assert dev.wait_for("response", token=77)["result"] == 501
    # Register without its mandatory lifetime and version: 400.
    dev.send("raw rd " + cbor2.dumps({1: 6, 2: 78}).hex())
    assert dev.wait_for("response", token=78)["result"] == 400
    # A text string where an integer belongs: 400 to the token read before the error.
    dev.send("raw rd " + cbor2.dumps({2: 79, 1: "six"}).hex())
    assert dev.wait_for("response", token=79)["result"] == 400
    # The gateway is still serving the device.
    assert server.request("read 1 mqtt-a /3/0/1")["payload"] == "test-device"
    m = gw.metrics()
    assert m["mqtt_malformed_total"] == 3
    assert m["mqtt_unknown_operations_total"] == 1
    assert m["rejected_total"] >= 1


def test_broker_restart_keeps_the_registration(peers):
    broker, server, gw, dev, reg = start(peers)
    assert server.request("read 1 mqtt-a /3/0/0")["code"] == "2.05"
    port = broker.port
    broker.stop()
    time.sleep(1.0)
    broker.start()
    assert broker.port == port
    dev.wait_for("connected", timeout=30)
    gw.wait_metric("mqtt_connected", 1, timeout=30)
    # The registration survived: no new Register, the same Location for the Update.
    r = server.request("read 2 mqtt-a /3/0/2", timeout=20)
    assert (r["code"], r["payload"]) == ("2.05", "mqtt-a")
    dev.send("update")
    assert server.wait_for("update", ep="mqtt-a", timeout=20)["location"] == reg["location"]
    assert dev.wait_for("updated", timeout=20)["result"] == 204
    assert server.count("register") == 1
    assert gw.metrics()["mqtt_reconnects_total"] >= 1


def test_two_tenants_stay_isolated(peers):
    broker = peers.broker()
    server_a, server_b = peers.server(), peers.server()
    gw = peers.gateway(
        f"coap://127.0.0.1:{server_a.port}",
        more_upstreams=f'{{ name = "b"; uri = "coap://127.0.0.1:{server_b.port}"; }}',
        mqtt=f'broker = "{broker.uri}"; prefixes = ( {{ prefix = "tenant-a"; }}, '
             f'{{ prefix = "tenant-b"; upstream = "b"; }} );')
    gw.wait_metric("mqtt_connected", 1)
    # The same endpoint name in both tenants: two devices, two upstream servers.
    dev_a = peers.mqtt_device(broker, "meter", prefix="tenant-a")
    dev_b = peers.mqtt_device(broker, "meter", prefix="tenant-b",
                              extra=["--lifetime", "1234"])
    reg_a = server_a.wait_for("register", ep="meter")
    reg_b = server_b.wait_for("register", ep="meter")
    assert (reg_a["lt"], reg_b["lt"]) == (300, 1234)
    dev_a.wait_for("registered")
    dev_b.wait_for("registered")
    server_a.request("write 1 meter /3/0/15 Europe/Berlin")
    server_b.request("write 1 meter /3/0/15 Asia/Tokyo")
    assert dev_a.wait_for("write")["value"] == "Europe/Berlin"
    assert dev_b.wait_for("write")["value"] == "Asia/Tokyo"
    dev_a.drain(0.5)
    dev_b.drain(0.5)
    assert dev_a.count("write") == 1 and dev_b.count("write") == 1
    assert server_a.count("register") == 1 and server_b.count("register") == 1
    assert gw.metrics()["devices_created_total"] == 2


def test_bootstrap_interface_reaches_the_bootstrap_server(peers):
    broker = peers.broker()
    server, bs = peers.server(), peers.server()
    gw = peers.gateway(
        f"coap://127.0.0.1:{server.port}",
        more_upstreams=f'{{ name = "bs"; uri = "coap://127.0.0.1:{bs.port}"; }}',
        mqtt=f'broker = "{broker.uri}"; prefix = "t"; bootstrap = "bs";')
    gw.wait_metric("mqtt_connected", 1)
    dev = peers.mqtt_device(broker, "fresh", prefix="t", extra=["--no-register"])
    dev.wait_for("connected")
    dev.send("bootstrap")
    req = bs.wait_for("bootstrap-request", ep="fresh")
    assert dev.wait_for("bootstrap")["result"] == 204
    assert int(req["peer"].rsplit(":", 1)[1]) > 0
    r = bs.request("write 1 fresh /0/1/0 coap://lwm2m.example:5683")
    assert r["code"] == "2.04"
    w = dev.wait_for("bootstrap-write", uri="/0/1/0")
    assert binascii.unhexlify(w["payload_hex"]) == b"coap://lwm2m.example:5683"
    assert bs.request("discover 2 fresh /")["payload"] == "</0/0>,</1/0>"
    assert bs.request("delete 3 fresh /1")["code"] == "2.02"
    assert dev.wait_for("bootstrap-delete")["uri"] == "/1"
    assert bs.request("execute 4 fresh /bs")["code"] == "2.04"
    dev.wait_for("bootstrap-finish")
    dev.send("bootstrap-pack")
    bs.wait_for("bootstrap-pack-request", ep="fresh")
    pack = dev.wait_for("bootstrap-pack")
    assert pack["result"] == 205
    assert binascii.unhexlify(pack["payload_hex"]) == b"bootstrap-pack"
    # The DM server saw nothing of it.
    assert server.count("register") == 0 and server.count("bootstrap-request") == 0


@pytest.mark.parametrize("version", [4, 5])
def test_own_publishes_are_not_processed_again(peers, version):
    broker, server, gw, dev, _ = start(
        peers, mqtt_extra=f'prefix = "tenant-a"; mqtt_version = {version};',
        device_extra=["--mqtt-version", str(version)])
    for i in range(5):
        assert server.request(f"read {i} mqtt-a /3/0/3")["payload"] == "1.0"
    m = gw.metrics()
    assert m["uplink_requests_total"] == 1 and m["downlink_requests_total"] == 5
    # MQTT 3.1.1 hands our own publishes back (told apart, ignored); MQTT 5 no-local does not.
    if version == 4:
        assert m["mqtt_echoes_total"] == 5 and m["mqtt_unmatched_results_total"] == 1
    else:
        assert m["mqtt_echoes_total"] == 0 and m["mqtt_unmatched_results_total"] == 0


def test_silent_device_gets_gateway_timeout(peers):
    broker, server, gw, dev, _ = start(peers, device_extra=["--silent"])
    r = server.request("read 1 mqtt-a /3/0/0", timeout=20)
    assert r["code"] == "5.04"
    assert gw.metrics()["gateway_timeouts_total"] == 1


def test_tls_client_certificate_and_password(peers, tmp_path):
    """The gateway reaches the broker over TLS (server and client certificates, user name and
    password); the device uses the broker's plain listener."""
    from lwm2m_peers import free_port
    from pki import make_pki
    import socket
    import subprocess
    pki = make_pki(str(tmp_path / "pki"))
    passwords = str(tmp_path / "mosquitto.passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", passwords, "gw", "s3cret pass"], check=True)
    tls_port = free_port(socket.SOCK_STREAM)
    broker = peers.broker(listeners=(
        f"listener {tls_port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
        f"cafile {pki['ca']}\ncertfile {pki['server'][0]}\nkeyfile {pki['server'][1]}\n"
        "require_certificate true\n"))
    server = peers.server()
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("s3cret pass\n")
    password_file.chmod(0o600)
    tls = (f'broker = "ssl://127.0.0.1:{tls_port}"; ca_file = "{pki["ca"]}"; '
           f'cert_file = "{pki["meter-a"][0]}"; key_file = "{pki["meter-a"][1]}"; '
           f'username = "gw"; prefix = "sec"; client_id = "lwm2m-gw-tls";')
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       mqtt=tls + f' password_file = "{password_file}";')
    gw.wait_metric("mqtt_connected", 1)
    dev = peers.mqtt_device(broker, "tls-dev", prefix="sec")
    server.wait_for("register", ep="tls-dev")
    assert dev.wait_for("registered")["result"] == 201
    assert server.request("read 1 tls-dev /3/0/2")["payload"] == "tls-dev"
    assert gw.metrics()["mqtt_connected"] == 1

    # A wrong password: the broker refuses the connection, the gateway says so and retries.
    password_file.write_text("wrong\n")
    bad = peers.gateway(f"coap://127.0.0.1:{server.port}", name="gateway-bad",
                        mqtt=tls.replace("lwm2m-gw-tls", "lwm2m-gw-bad") +
                        f' password_file = "{password_file}";')
    time.sleep(2)
    assert bad.metrics()["mqtt_connected"] == 0
    assert "wrong" not in bad.peer.log_text()  # secrets are never logged
    assert "refused" in bad.peer.log_text() or "not authori" in bad.peer.log_text()


def test_websocket_broker(peers):
    from lwm2m_peers import free_port
    import socket
    for attempt in range(3):  # a port free_port() gave may be taken before mosquitto binds it
        ws_port = free_port(socket.SOCK_STREAM)
        try:
            broker = peers.broker(listeners=(
                f"listener {ws_port} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n"))
            break
        except AssertionError:
            if attempt == 2:
                raise
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       mqtt=f'broker = "ws://127.0.0.1:{ws_port}/mqtt"; prefix = "w";')
    gw.wait_metric("mqtt_connected", 1)
    dev = peers.mqtt_device(broker, "ws-dev", prefix="w")
    server.wait_for("register", ep="ws-dev")
    assert dev.wait_for("registered")["result"] == 201
    assert server.request("execute 1 ws-dev /3/0/4")["code"] == "2.04"
