"""LwM2M over HTTP (Transport 7): HTTP devices -> gateway -> CoAP test server, and back.

Uplink devices are the curl command line and test/peers/lwm2m_http_device.py (http.client);
downlink goes to that peer's own HTTP server (Python's http.server), the server is the
project's libcoap test server. Assertions are on what the device and the server saw.
"""
import os
import socket
import subprocess
import time

import pytest

from lwm2m_peers import free_port
from pki import make_pki


def http_setup(peers, devices="", http_extra="", more_upstreams="", **kw):
    """A test server and a gateway with the HTTP binding on a free loopback port."""
    server = peers.server()
    port = free_port(socket.SOCK_STREAM)
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       http=f'listen = "127.0.0.1:{port}"; {http_extra}',
                       more_upstreams=more_upstreams, **kw)
    return server, gw, f"http://127.0.0.1:{port}"


def with_device(peers, ep="h1", device_args=(), entry="", http_extra="", **kw):
    """A Python HTTP device whose own server is configured as its http_url."""
    port = free_port(socket.SOCK_STREAM)
    gw_url = f"http://127.0.0.1:{port}"
    dev = peers.http_device(gw_url, ep, extra=list(device_args))
    server = peers.server()
    devices = f'{{ endpoint = "{ep}"; http_url = "{dev.url}"; {entry} }}'
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       http=f'listen = "127.0.0.1:{port}"; {http_extra}', **kw)
    return server, gw, dev


def register(dev, server, ep="h1", query=""):
    dev.send(f"register {query}".strip())
    reg = server.wait_for("register", ep=ep)
    got = dev.wait_for("registered")
    assert got["status"] == 201
    return reg, got["location"]


def curl(*args, body=None):
    """The curl command line as the device: returns (status, headers dict, body text)."""
    argv = ["curl", "-sS", "-D", "-", "-o", "-", "--max-time", "10", *args]
    p = subprocess.run(argv, input=body, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    head, _, text = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, text


# ---------------------------------------------------------------------------------------------
# uplink


def test_curl_register_update_send_deregister(peers):
    server, gw, base = http_setup(peers, devices='{ endpoint = "curl-1"; }')
    link = "</1/0>,</3/0>,</3303/0>"
    status, h, _ = curl("-X", "POST", "-H", "Content-Type: application/link-format",
                        "--data-binary", link, f"{base}/rd?ep=curl-1&lt=120&lwm2m=1.2&b=H")
    assert status == 201
    reg = server.wait_for("register", ep="curl-1")
    # The lwm2m11 profile shows a 1.1 server version 1.1 and binding U (H is the device's).
    assert (reg["lt"], reg["lwm2m"], reg["b"], reg["payload"]) == (120, "1.1", "U", link)
    location = h["location"]
    # The gateway's own location (16 hex digits), not the server's "/rd/<n>".
    assert location.startswith("/rd/") and len(location) == 20
    assert location != reg["location"]

    status, _, _ = curl("-X", "POST", f"{base}{location}?lt=600")
    assert status == 204
    upd = server.wait_for("update", ep="curl-1")
    assert upd["lt"] == 600 and upd["location"] == reg["location"]

    senml = '[{"bn":"/3303/0/","n":"5700","v":21.5}]'
    status, _, _ = curl("-X", "POST", "-H", "Content-Type: application/senml+json",
                        "--data-binary", senml, f"{base}/dp")
    assert status == 204
    sent = server.wait_for("send", ep="curl-1")
    assert (sent["payload"], sent["content_format"]) == (senml, 110)

    status, _, _ = curl("-X", "DELETE", f"{base}{location}")
    assert status == 204
    assert server.wait_for("deregister", ep="curl-1")["location"] == reg["location"]
    # The location is gone with the registration.
    status, _, text = curl("-X", "POST", f"{base}{location}")
    assert status == 404 and "register again" in text
    m = gw.metrics()
    assert m["http_answered_total"] == 4 and m["http_unknown_locations_total"] == 1


def test_unknown_endpoints_are_refused_unless_accepted(peers):
    server, gw, base = http_setup(peers)
    status, _, text = curl("-X", "POST", f"{base}/rd?ep=stranger&lt=60&b=H")
    assert status == 403 and "not a configured device" in text
    assert gw.metrics()["http_forbidden_total"] == 1

    server2, gw2, base2 = http_setup(peers, http_extra="accept_unknown = true;", name="gw2")
    status, h, _ = curl("-X", "POST", f"{base2}/rd?ep=stranger&lt=60&b=H")
    assert status == 201
    assert server2.wait_for("register", ep="stranger")["b"] == "U"  # lwm2m11 profile


# ---------------------------------------------------------------------------------------------
# downlink


def test_server_operations_reach_the_device_http_server(peers):
    server, gw, dev = with_device(peers)
    register(dev, server)

    r = server.request("read 1 h1 /3/0/0")
    assert (r["code"], r["payload"], r["content_format"]) == ("2.05", "lwm2m-gw test", 0)
    req = dev.wait_for("request", target="/3/0/0")
    assert req["method"] == "GET" and req["accept"] is None

    r = server.request("read 2 h1 /3/0 110")
    assert r["code"] == "2.05" and r["content_format"] == 110
    assert '"vs":"lwm2m-gw test"' in r["payload"]
    assert dev.wait_for("request", target="/3/0")["accept"] == "application/senml+json"

    r = server.request("discover 3 h1 /3/0")
    assert r["code"] == "2.05" and r["content_format"] == 40
    assert "</3/0/0>" in r["payload"]
    assert dev.wait_for("request", accept="application/link-format")["target"] == "/3/0"

    assert server.request("write 4 h1 /3/0/14 +02:00")["code"] == "2.04"
    w = dev.wait_for("write", path="/3/0/14")
    assert w["values"] == {"/3/0/14": "+02:00"} and w["mode"] == "replace"
    assert server.request("read 5 h1 /3/0/14")["payload"] == "+02:00"

    assert server.request("execute 6 h1 /3/0/4")["code"] == "2.04"
    assert dev.wait_for("execute", path="/3/0/4")["args"] == ""

    senml = b'[{"n":"/3303/0/5700","v":19.25}]'.hex()
    r = server.request(f"create 7 h1 /3303 110 {senml}")
    assert r["code"] == "2.01"
    assert dev.wait_for("create", path="/3303")["location"] == "/3303/0"

    r = server.request("write-attr 8 h1 /3303/0/5700 pmin=10&pmax=60")
    assert r["code"] == "2.04"
    wa = dev.wait_for("write-attr", path="/3303/0/5700")
    assert wa["attributes"] == {"pmin": "10", "pmax": "60"}
    req = dev.wait_for("request", method="PUT", target="/3303/0/5700?pmin=10&pmax=60")
    assert req["content_type"] is None and req["payload_len"] == 0

    assert server.request("delete 9 h1 /3303/0")["code"] == "2.02"
    assert dev.wait_for("delete")["path"] == "/3303/0"
    # Errors of the device come back as their CoAP codes (7.3).
    assert server.request("delete 10 h1 /3303/0")["code"] == "4.04"
    assert server.request("execute 11 h1 /3/0/0")["code"] == "4.05"
    m = gw.metrics()
    assert m["http_server_requests_total"] == 11
    assert m["http_device_errors_total"] == 0


def test_composites_and_observe_get_a_clear_coap_error(peers):
    server, gw, dev = with_device(peers)
    register(dev, server)
    # 7.1.4: no Read-/Write-Composite over HTTP; 7.1.5: only Send of Information Reporting.
    r = server.request("fetch 1 h1 112 80")
    assert r["code"] == "4.05" and "composite" in r["payload"], r
    r = server.request("ipatch 2 h1 112 80")
    assert r["code"] == "4.05" and "composite" in r["payload"], r
    r = server.request("observe 3 h1 /3/0/13")
    assert r["code"] == "4.05" and "Observe" in r["payload"], r
    assert gw.metrics()["http_server_refused_total"] == 3
    dev.drain()
    assert dev.count("request") == 0


def test_device_without_answer_or_url(peers):
    server, gw, dev = with_device(peers, device_args=["--delay-ms", "4000"],
                                  device_timeout_ms=1500)
    register(dev, server)
    r = server.request("read 1 h1 /3/0/0")
    assert r["code"] == "5.04"
    # A device entry without http_url cannot be reached: 5.03 at once.
    server2, gw2, base = http_setup(peers, devices='{ endpoint = "no-url"; }', name="gw2")
    status, _, _ = curl("-X", "POST", f"{base}/rd?ep=no-url&lt=60&b=H")
    assert status == 201
    server2.wait_for("register", ep="no-url")
    r = server2.request("read 2 no-url /3/0/0")
    assert r["code"] == "5.03" and "http_url" in r["payload"]
    # A device URL where nobody listens: 5.02 Bad Gateway.
    dead = free_port(socket.SOCK_STREAM)
    server3, gw3, base3 = http_setup(
        peers, devices=f'{{ endpoint = "dead"; http_url = "http://127.0.0.1:{dead}"; }}',
        name="gw3")
    assert curl("-X", "POST", f"{base3}/rd?ep=dead&lt=60&b=H")[0] == 201
    server3.wait_for("register", ep="dead")
    assert server3.request("read 3 dead /3/0/0")["code"] == "5.02"
    assert gw3.metrics()["http_device_errors_total"] == 1


def test_queue_mode_waits_for_the_next_update(peers):
    server, gw, dev = with_device(peers, device_args=["--queue"],
                                  gateway_extra="queue_awake_ms = 1000;")
    reg, _ = register(dev, server)
    assert reg["queue"] is True
    # Awake right after it spoke (Core 6.5): let the awake window pass first.
    time.sleep(1.3)
    server.send("read 1 h1 /3/0/1")
    # Nothing reaches the device while it sleeps ...
    with pytest.raises(AssertionError):
        dev.wait_for("request", target="/3/0/1", timeout=1.5)
    assert gw.metrics()["queued_requests"] == 1
    # ... until its next Update (7.2): then the queued Read is sent and answered.
    dev.send("update")
    server.wait_for("update", ep="h1")
    assert dev.wait_for("request", target="/3/0/1")["method"] == "GET"
    r = server.wait_for("response", id=1)
    assert (r["code"], r["payload"]) == ("2.05", "http-device")


# ---------------------------------------------------------------------------------------------
# authentication


def test_basic_and_bearer_credentials(peers, tmp_path):
    token_file = tmp_path / "t.token"
    token_file.write_text("s3cr3t-token\n")
    os.chmod(token_file, 0o600)
    devices = ('{ endpoint = "basic-1"; http_password = "pw-1"; },'
               f' {{ endpoint = "bearer-1"; http_token_file = "{token_file}"; }}')
    server, gw, base = http_setup(peers, devices=devices)
    reg = f"{base}/rd?ep=basic-1&lt=60&b=H"
    status, h, text = curl("-X", "POST", reg)
    assert status == 401 and "must authenticate" in text
    assert h["www-authenticate"].startswith("Basic realm=")
    assert curl("-X", "POST", "-u", "basic-1:wrong", reg)[0] == 401
    status, h, _ = curl("-X", "POST", "-u", "basic-1:pw-1", reg)
    assert status == 201
    server.wait_for("register", ep="basic-1")
    location = h["location"]
    # The registration needs the same credentials for its Update.
    assert curl("-X", "POST", f"{base}{location}")[0] == 401
    assert curl("-X", "POST", "-u", "basic-1:pw-1", f"{base}{location}")[0] == 204
    # Send names no endpoint: the credentials say whose it is.
    status, _, _ = curl("-X", "POST", "-u", "basic-1:pw-1", "-H",
                        "Content-Type: application/senml+json", "--data-binary", "[]",
                        f"{base}/dp")
    assert status == 204
    assert server.wait_for("send")["ep"] == "basic-1"

    bearer = ["-H", "Authorization: Bearer s3cr3t-token"]
    assert curl("-X", "POST", *bearer, f"{base}/rd?ep=bearer-1&lt=60&b=H")[0] == 201
    server.wait_for("register", ep="bearer-1")
    # One device's credentials do not register another.
    status, _, text = curl("-X", "POST", *bearer, reg)
    assert status == 403 and "not endpoint" in text
    m = gw.metrics()
    assert m["http_unauthenticated_total"] == 3 and m["http_forbidden_total"] == 1


def test_credentials_never_act_on_another_devices_registration(peers):
    """Issue 11: a device authenticated as b must not update nor de-register the registration of
    a, even one a made without credentials (its location is secret, but a location can leak)."""
    devices = '{ endpoint = "a"; }, { endpoint = "b"; http_password = "pw-b"; }'
    server, gw, base = http_setup(peers, devices=devices)
    status, h, _ = curl("-X", "POST", f"{base}/rd?ep=a&lt=60&b=H")
    assert status == 201
    server.wait_for("register", ep="a")
    location = h["location"]
    as_b = ["-u", "b:pw-b"]
    status, _, text = curl("-X", "POST", *as_b, f"{base}{location}?lt=600")
    assert status == 403 and "not this registration's" in text
    status, _, text = curl("-X", "DELETE", *as_b, f"{base}{location}")
    assert status == 403 and "not this registration's" in text
    # The server saw neither; the registration is still a's.
    assert curl("-X", "POST", f"{base}{location}?lt=90")[0] == 204
    assert server.wait_for("update", ep="a")["lt"] == 90
    assert server.count("update") == 1 and server.count("deregister") == 0
    assert gw.metrics()["http_forbidden_total"] == 2
    assert f"DELETE {location} from 127.0.0.1 refused with 403" in gw.peer.log_text()


def test_tls_with_client_certificates(peers, tmp_path):
    pki = make_pki(str(tmp_path / "pki"))
    other = make_pki(str(tmp_path / "other"), prefix="other-")
    cert, key = pki["server"]
    port = free_port(socket.SOCK_STREAM)
    base = f"https://127.0.0.1:{port}"
    dev = peers.http_device(base, "meter-a",
                            extra=["--ca", pki["ca"], "--client-cert", pki["meter-a"][0],
                                   "--client-key", pki["meter-a"][1]])
    server = peers.server()
    peers.gateway(f"coap://127.0.0.1:{server.port}",
                  devices=f'{{ endpoint = "meter-a"; http_url = "{dev.url}"; }}',
                  http=f'listen = "127.0.0.1:{port}"; cert_file = "{cert}"; key_file = "{key}"; '
                       f'client_ca_file = "{pki["ca"]}"; accept_unknown = true;')
    reg, location = register(dev, server, ep="meter-a")
    dev.send("update")
    assert server.wait_for("update", ep="meter-a")["location"] == reg["location"]
    # The server's requests go to the device's own (plain) HTTP server.
    assert server.request("read 1 meter-a /3/0/2")["payload"] == "0001"

    ca = ["--cacert", pki["ca"]]
    # No certificate: refused (client_ca_file makes one mandatory for devices without a
    # password or token).
    status, _, text = curl("-X", "POST", *ca, f"{base}/rd?ep=meter-b&lt=60&b=H")
    assert status == 403 and "certificate is required" in text
    # meter-b's certificate does not make it meter-a, nor lets it update meter-a.
    mb = ["--cert", pki["meter-b"][0], "--key", pki["meter-b"][1]]
    status, _, text = curl("-X", "POST", *ca, *mb, f"{base}/rd?ep=meter-a&lt=60&b=H")
    assert status == 403 and "not endpoint" in text
    assert curl("-X", "POST", *ca, *mb, f"{base}{location}")[0] == 403
    assert curl("-X", "POST", *ca, *mb, f"{base}/rd?ep=meter-b&lt=60&b=H")[0] == 201
    server.wait_for("register", ep="meter-b")
    # A certificate of another CA is not accepted: refused, or the handshake fails.
    ob = ["--cert", other["meter-b"][0], "--key", other["meter-b"][1]]
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        *ca, *ob, f"{base}/rd?ep=meter-b&lt=60&b=H"],
                       capture_output=True, text=True)
    assert p.stdout in ("403", "000"), p.stdout
    # Plain HTTP on the TLS port gets no answer.
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                        "5", "-X", "POST", f"http://127.0.0.1:{port}/rd?ep=meter-a"],
                       capture_output=True, text=True)
    assert p.stdout == "000"
    assert server.count("register", ep="meter-a") == 1


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("args, status, reason", [
    (["-X", "POST", "/rd?lt=60"], 400, "ep"),
    (["-X", "POST", "/rd?ep=a&ep=b"], 400, "duplicate"),
    (["-X", "POST", "/rd?ep=a%zz"], 400, "offset"),
    (["-X", "PUT", "/rd?ep=a"], 400, "unknown operation"),
    (["-X", "POST", "-H", "Content-Type: image/png", "--data-binary", "x", "/rd?ep=a"], 415, ""),
    (["-X", "POST", "/dp"], 400, "body"),
    (["-X", "post", "/rd?ep=a"], 501, ""),
    (["-X", "GET", "/bspack?ep=a"], 404, "no bootstrap server"),
    (["-X", "POST", "/rd?ep=" + "a" * 1100], 414, ""),
    (["-X", "POST", "-H", "Authorization: Digest x", "/rd?ep=a"], 401, "Authorization"),
])
def test_bad_requests_get_a_reason_and_are_counted(peers, args, status, reason):
    server, gw, base = http_setup(peers, devices='{ endpoint = "a"; }')
    target = args[-1]
    got, h, text = curl(*args[:-1], base + target)
    assert got == status
    assert reason in text
    assert h["content-type"].startswith("text/plain")
    m = gw.metrics()
    assert m["http_requests_total"] == 1
    assert sum(m[k] for k in ("http_bad_requests_total", "http_unsupported_total",
                              "http_unauthenticated_total")) == 1
    # The daemon is still there and serves the next device.
    assert curl("-X", "POST", f"{base}/rd?ep=a&lt=60&b=H")[0] == 201
    server.wait_for("register", ep="a")


def test_oversized_body_and_anonymous_send(peers):
    server, gw, base = http_setup(peers, devices='{ endpoint = "a"; }',
                                  http_extra="max_body = 2048;")
    big = "x" * 5000
    status, _, _ = curl("-X", "POST", "-H", "Content-Type: application/link-format",
                        "--data-binary", big, f"{base}/rd?ep=a")
    assert status == 413
    # Send from an address no device registered from: whose would it be?
    status, _, text = curl("-X", "POST", "-H", "Content-Type: application/senml+json",
                           "--data-binary", "[]", f"{base}/dp")
    assert status == 403 and "Send needs a registered device" in text
    assert curl("-X", "POST", f"{base}/rd?ep=a&lt=60&b=H")[0] == 201
    server.wait_for("register", ep="a")
    status, _, _ = curl("-X", "POST", "-H", "Content-Type: application/senml+json",
                        "--data-binary", "[]", f"{base}/dp")
    assert status == 204
    assert server.wait_for("send")["ep"] == "a"


# ---------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_request_and_finish(peers):
    bs = peers.server()
    port = free_port(socket.SOCK_STREAM)
    dev = peers.http_device(f"http://127.0.0.1:{port}", "h1")
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       devices=f'{{ endpoint = "h1"; http_url = "{dev.url}"; }}',
                       more_upstreams=f'{{ name = "bs"; uri = "coap://127.0.0.1:{bs.port}"; }}',
                       http=f'listen = "127.0.0.1:{port}"; bootstrap = "bs";')
    assert gw.metrics()["http_devices"] == 0
    dev.send("bootstrap")
    assert bs.wait_for("bootstrap-request")["ep"] == "h1"
    assert dev.wait_for("response", op="bootstrap")["status"] == 200
    # Bootstrap-Pack-Request (7.1.2): GET /bspack -> CoAP GET /bspack -> its content as 200.
    status, h, text = curl(f"http://127.0.0.1:{port}/bspack?ep=h1")
    assert (status, text) == (200, "bootstrap-pack")
    assert h["content-type"].startswith("text/plain")
    assert bs.wait_for("bootstrap-pack-request")["ep"] == "h1"
    # Bootstrap-Finish (POST /bs) from the bootstrap server reaches the device.
    assert bs.request("execute 1 h1 /bs")["code"] == "2.04"
    dev.wait_for("bootstrap-finish")
    assert server.count("register") == 0


def test_https_device_server_with_gateway_certificate(peers, tmp_path):
    """The server's requests to an https:// device: the device's certificate is checked against
    device_ca_file, and the gateway shows device_cert_file when the device asks for one."""
    pki = make_pki(str(tmp_path / "pki"))
    cert, key = pki["server"]
    gw_cert, gw_key = pki["meter-b"]
    port = free_port(socket.SOCK_STREAM)
    dev = peers.http_device(f"http://127.0.0.1:{port}", "h1",
                            extra=["--tls-cert", cert, "--tls-key", key,
                                   "--server-ca", pki["ca"]])
    assert dev.url.startswith("https://127.0.0.1:")
    server = peers.server()
    peers.gateway(f"coap://127.0.0.1:{server.port}",
                  devices=f'{{ endpoint = "h1"; http_url = "{dev.url}"; }}',
                  http=f'listen = "127.0.0.1:{port}"; device_ca_file = "{pki["ca"]}"; '
                       f'device_cert_file = "{gw_cert}"; device_key_file = "{gw_key}";')
    register(dev, server)
    r = server.request("read 1 h1 /3/0/1")
    assert (r["code"], r["payload"]) == ("2.05", "http-device")
    req = dev.wait_for("request", target="/3/0/1")
    assert req["tls"] is True and req["client_cn"] == "meter-b"

    # A device whose certificate the gateway cannot verify is not talked to: 5.02.
    other = make_pki(str(tmp_path / "other"), prefix="other-")
    port2 = free_port(socket.SOCK_STREAM)
    dev2 = peers.http_device(f"http://127.0.0.1:{port2}", "h2",
                             extra=["--tls-cert", other["server"][0],
                                    "--tls-key", other["server"][1]])
    server2 = peers.server()
    peers.gateway(f"coap://127.0.0.1:{server2.port}", name="gw2",
                  devices=f'{{ endpoint = "h2"; http_url = "{dev2.url}"; }}',
                  http=f'listen = "127.0.0.1:{port2}"; device_ca_file = "{pki["ca"]}";')
    register(dev2, server2, ep="h2")
    assert server2.request("read 2 h2 /3/0/1")["code"] == "5.02"
    dev2.drain()
    assert dev2.count("request") == 0
