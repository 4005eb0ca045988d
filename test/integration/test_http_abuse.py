"""The HTTP binding under abuse (issue 11, "nobody locked out"): slow clients (slowloris) from one
and from several loopback addresses, clients that leave half-way, and a flood of malformed
requests, while a legitimate HTTP device (test/peers/lwm2m_http_device.py, from 127.0.0.1)
registers, updates and is read by the test LwM2M server. Assertions are on what the device, the
server and the abusive clients (http_abuse.py) saw, and on the gateway's counters.
"""
import socket
import threading
import time

from http_abuse import LOOPBACK_SOURCES, MALFORMED, Slowloris, flood, leave_early
from lwm2m_peers import free_port


def device_and_gateway(peers, http_extra=""):
    port = free_port(socket.SOCK_STREAM)
    dev = peers.http_device(f"http://127.0.0.1:{port}", "h1")
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       devices=f'{{ endpoint = "h1"; http_url = "{dev.url}"; }}',
                       http=f'listen = "127.0.0.1:{port}"; {http_extra}', log_level="info")
    return port, dev, server, gw


def serve_device(dev, server, rid):
    """The device registers (or updates), and the server reads it: each must get through."""
    dev.send("register" if rid == 1 else "update")
    if rid == 1:
        server.wait_for("register", ep="h1", timeout=20)
        assert dev.wait_for("registered", timeout=20)["status"] == 201
    else:
        server.wait_for("update", ep="h1", timeout=20)
        assert dev.wait_for("response", op="update", timeout=20)["status"] == 204
    r = server.request(f"read {rid} h1 /3/0/0", timeout=20)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_slow_clients_of_one_and_many_addresses_keep_no_device_out(peers):
    # 64 connections: the slow clients of 7 addresses (16 each) can take them all, so the
    # device then depends on taking a slow client's place, not only on the per-client limit.
    port, dev, server, gw = device_and_gateway(
        peers, "max_connections = 64; header_timeout_s = 2;")
    with Slowloris(port, 300, LOOPBACK_SOURCES[:1]) as one:
        wait_until(lambda: one.opened >= 300, 20, "slow clients of one address")
        serve_device(dev, server, 1)
        # Its 16 connections trickle, and are closed at header_timeout_s all the same.
        wait_until(lambda: gw.metrics()["http_header_timeouts_total"] >= 16, 10,
                   "no header time-out")
        with Slowloris(port, 300, LOOPBACK_SOURCES[1:]) as many:
            wait_until(lambda: many.opened >= 300 and many.ended > 0, 20,
                       "slow clients of many addresses")
            serve_device(dev, server, 2)
    # No slow client got an answer (none sent a whole request); the gateway ended them.
    assert one.answered == 0 and many.answered == 0
    assert one.ended > 0 and many.ended > 0
    m = gw.metrics()
    assert m["http_connections_refused_per_client_total"] > 0
    assert m["http_connections_evicted_total"] > 0
    assert m["http_requests_total"] == 2  # the device's Register and Update only
    assert m["http_answered_total"] == 2


def test_every_malformed_request_of_a_flood_is_answered_and_counted(peers):
    port, dev, server, gw = device_and_gateway(peers)
    serve_device(dev, server, 1)
    results = []
    floods = [threading.Thread(target=lambda hc=hc: results.append(
        flood(port, 2000, 32, LOOPBACK_SOURCES, half_close=hc))) for hc in (False, True)]
    for t in floods:
        t.start()
    for rid in range(2, 5):  # meanwhile the device is served
        serve_device(dev, server, rid)
    for t in floods:
        t.join()
    # Each client got the status its request deserves, none was left without an answer.
    expected = {}
    for request, status in MALFORMED:
        expected[status] = expected.get(status, 0) + 4000 // len(MALFORMED)
    got = {}
    for outcomes, wrong in results:
        assert wrong == 0
        for k, v in outcomes.items():
            got[k] = got.get(k, 0) + v
    assert got == expected
    m = gw.metrics()
    refused = m["http_rejected_total"] + m["http_bad_requests_total"] + m["http_unsupported_total"]
    assert refused == 4000
    assert m["http_answered_total"] == 4  # the device's Register and Updates
    # Logged, at a limited rate: a few lines per kind, not one per request.
    assert gw.peer.log_text().count("refused with") < 50


def test_clients_that_leave_half_way_free_their_connections_at_once(peers):
    port, dev, server, gw = device_and_gateway(peers)  # idle_timeout_s 60
    leave_early(port, 200, LOOPBACK_SOURCES)
    gw.wait_metric("http_connections", 0, timeout=10)
    serve_device(dev, server, 1)
