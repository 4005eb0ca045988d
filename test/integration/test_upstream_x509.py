"""Upstream DTLS with X.509 certificates: the gateway's client certificates (the upstream's
default and a device's own) and its check of the server's certificate, against the test server
in certificate mode. The PKI is made afresh for every test (pki.py)."""
import time


from lwm2m_peers import free_port
from pki import make_pki


def x509_setup(peers, tmp_path, server_prefix=""):
    """A server with a certificate of CA `server_prefix` (it trusts the main CA for clients), a
    gateway trusting the main CA, meter-a on the upstream's default certificate and meter-b on
    its own."""
    certs = make_pki(str(tmp_path / "pki"))
    server_certs = make_pki(str(tmp_path / "pki"), server_prefix) if server_prefix else certs
    server = peers.server(pki=(*server_certs["server"], certs["ca"]))
    ports = {"meter-a": free_port(), "meter-b": free_port()}
    b_cert, b_key = certs["meter-b"]
    devices = (f'{{ endpoint = "meter-a"; ue_address = "127.0.0.1:{ports["meter-a"]}"; }}, '
               f'{{ endpoint = "meter-b"; ue_address = "127.0.0.1:{ports["meter-b"]}"; '
               f'cert_file = "{b_cert}"; key_file = "{b_key}"; }}')
    a_cert, a_key = certs["meter-a"]
    upstream_extra = f'ca_file = "{certs["ca"]}"; cert_file = "{a_cert}"; key_file = "{a_key}";'
    gw = peers.gateway(f"coaps://127.0.0.1:{server.dtls_port}", devices=devices,
                       upstream_extra=upstream_extra)
    return server, gw, ports


def test_upstream_x509_default_and_own_certificate(peers, tmp_path):
    server, gw, ports = x509_setup(peers, tmp_path)
    devs = {ep: peers.device(gw, ep, local_port=port) for ep, port in ports.items()}
    for ep, dev in devs.items():
        reg = server.wait_for("register", ep=ep, timeout=15)
        assert reg["secure"] is True
        # The server saw the certificate the gateway chose: the upstream's default for
        # meter-a, meter-b's own for meter-b.
        assert reg["client_cn"] == ep
        assert dev.wait_for("registered")["code"] == "2.01"
    for rid, ep in enumerate(devs, 1):
        r = server.request(f"read {rid} {ep} /3/0/2")
        assert (r["code"], r["payload"]) == ("2.05", ep)
    m = gw.metrics()
    assert m["upstream_failures_total"] == 0


def test_upstream_x509_untrusted_server_certificate(peers, tmp_path):
    server, gw, ports = x509_setup(peers, tmp_path, server_prefix="other-")
    dev = peers.device(gw, "meter-a", local_port=ports["meter-a"],
                       extra=["--register-timeout-ms", "20000"])
    failed = dev.wait_for("register-failed", timeout=25)
    # The gateway refuses the request itself: no DTLS session, so nothing reached the server.
    assert failed["code"] == "5.03", failed
    server.drain(0.5)
    assert server.count("register") == 0
    log = gw.peer.log_text()
    assert "meter-a: upstream session failed" in log, log[-4000:]
    # libcoap's reason, e.g. "DTLS: unable to get local issuer certificate: '127.0.0.1' depth=0".
    assert any("[libcoap]" in line and "DTLS" in line and ("certificate" in line or " CA" in line)
               for line in log.splitlines()), log[-4000:]
    # The gateway is still serving, and counted the failure.
    assert gw.peer.proc.poll() is None
    assert gw.metrics()["upstream_failures_total"] >= 1


# libcoap 4.3.1 (OpenSSL) adds every ca_file to the trust store of its context; the gateway
# keeps one context per upstream so that one upstream never trusts another's CA.
def test_upstream_x509_trust_anchors_stay_per_upstream(peers, tmp_path):
    certs = make_pki(str(tmp_path / "pki"))
    other = make_pki(str(tmp_path / "pki"), "other-")
    server = peers.server(pki=(*certs["server"], certs["ca"]))
    ports = {"meter-a": free_port(), "meter-b": free_port()}
    devices = (f'{{ endpoint = "meter-a"; ue_address = "127.0.0.1:{ports["meter-a"]}"; }}, '
               f'{{ endpoint = "meter-b"; ue_address = "127.0.0.1:{ports["meter-b"]}"; '
               f'upstream = "other-ca"; }}')
    # Gateway writes one upstream entry; the extra text closes it and opens a second one: the
    # same server, trusted through the other CA only, which did not sign its certificate.
    upstream_extra = (f'ca_file = "{certs["ca"]}"; cert_file = "{certs["meter-a"][0]}"; '
                      f'key_file = "{certs["meter-a"][1]}"; }}, '
                      f'{{ name = "other-ca"; uri = "coaps://127.0.0.1:{server.dtls_port}"; '
                      f'ca_file = "{other["ca"]}"; cert_file = "{certs["meter-b"][0]}"; '
                      f'key_file = "{certs["meter-b"][1]}";')
    gw = peers.gateway(f"coaps://127.0.0.1:{server.dtls_port}", devices=devices,
                       upstream_extra=upstream_extra)
    a = peers.device(gw, "meter-a", local_port=ports["meter-a"])
    server.wait_for("register", ep="meter-a", timeout=15)
    a.wait_for("registered")
    b = peers.device(gw, "meter-b", local_port=ports["meter-b"],
                     extra=["--register-timeout-ms", "10000"])
    outcome = None
    deadline = time.monotonic() + 15
    while outcome is None and time.monotonic() < deadline:
        outcome = next((e for e in b.drain(0.1)
                        if e.get("event") in ("registered", "register-failed")), None)
    assert outcome is not None and outcome["event"] == "register-failed", outcome
    assert outcome["code"] == "5.03"
    assert server.count("register", ep="meter-b") == 0
