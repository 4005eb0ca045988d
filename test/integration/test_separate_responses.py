"""A device that answers separately (RFC 7252 5.2.2): empty ACK at once, CON response later.

The test device's --delay-ms N acknowledges every server request with an empty ACK and sends
the answer N ms later as a CON with the request's token and a new message ID. The gateway's
test configuration has piggyback_window_ms = 1000 and device_timeout_ms = 3000.
"""
import re
import time

# libcoap's first retransmission of a CON comes ACK_TIMEOUT * [1, 1.5] = 2-3 s after sending.
PAST_FIRST_RETRANSMISSION = 3.3


def register(peers, delay_ms, ep="dev-a"):
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}")
    # Log level 7: libcoap logs every retransmission ("retransmission #n") on stderr.
    dev = peers.device(gw, ep, extra=["--delay-ms", str(delay_ms), "--log-level", "7"])
    server.wait_for("register", ep=ep)
    dev.wait_for("registered")
    return server, gw, dev


def device_retransmissions(dev):
    return len(re.findall(r"retransmission #\d+", dev.log_text()))


def test_separate_answer_within_the_window_is_piggybacked(peers):
    server, gw, dev = register(peers, 300)
    r = server.request("read 1 dev-a /3/0/0")
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    assert r["type"] == "ACK"  # the gateway absorbed the device's empty ACK and CON response
    assert r["elapsed_ms"] >= 250
    sep = dev.wait_for("separate-response", path="/3/0/0")
    assert (sep["type"], sep["code"]) == ("CON", "2.05")
    req = dev.wait_for("request", path="/3/0/0")
    assert sep["mid"] != req["mid"]  # a new message ID for the separate response

    time.sleep(PAST_FIRST_RETRANSMISSION)  # the gateway's ACK must have stopped libcoap
    assert len(dev.seen_events("request", path="/3/0/0")) == 1
    assert dev.seen_events("response-failed") == []
    assert device_retransmissions(dev) == 0
    assert server.seen_events("response", id=1) == [r]
    m = gw.metrics()
    assert m["piggybacked_total"] == 1
    assert m["separate_total"] == 0
    assert m["duplicates_total"] == 0
    assert m["downlink_responses_total"] == 1


def test_separate_answer_after_the_window_is_relayed_separately(peers):
    server, gw, dev = register(peers, 1800)
    r = server.request("read 1 dev-a /3/0/0")
    assert (r["code"], r["payload"], r["type"]) == ("2.05", "lwm2m-gw test", "CON")
    assert 1700 <= r["elapsed_ms"] < 3000, r["elapsed_ms"]
    assert dev.wait_for("separate-response", path="/3/0/0")["type"] == "CON"

    time.sleep(PAST_FIRST_RETRANSMISSION)
    assert len(dev.seen_events("request", path="/3/0/0")) == 1
    assert dev.seen_events("response-failed") == []
    assert device_retransmissions(dev) == 0
    assert len(server.seen_events("response", id=1)) == 1
    m = gw.metrics()
    assert m["separate_total"] == 1
    assert m["piggybacked_total"] == 0
    assert m["gateway_timeouts_total"] == 0


def test_slow_write_reaches_the_device_once(peers):
    server, gw, dev = register(peers, 1800)
    r = server.request("write 2 dev-a /3/0/14 +05:30")
    assert (r["code"], r["type"]) == ("2.04", "CON")
    assert dev.wait_for("write", path="/3/0/14")["value"] == "+05:30"
    time.sleep(PAST_FIRST_RETRANSMISSION)
    assert len(dev.seen_events("write")) == 1
    assert len(dev.seen_events("request", method="PUT", path="/3/0/14")) == 1
    assert len(server.seen_events("response", id=2)) == 1
    # The gateway acknowledged the server's CON after the 1 s window, before its first
    # retransmission (2-3 s): nothing was retransmitted in either direction.
    m = gw.metrics()
    assert m["duplicates_total"] == 0
    assert m["downlink_requests_total"] == 1
    assert device_retransmissions(dev) == 0
    assert server.request("read 3 dev-a /3/0/14")["payload"] == "+05:30"


def test_answer_after_the_timeout_is_504_and_the_late_one_is_dropped(peers):
    server, gw, dev = register(peers, 5000)
    r = server.request("read 1 dev-a /3/0/0", timeout=10)
    assert (r["code"], r["type"]) == ("5.04", "CON")
    assert 2900 <= r["elapsed_ms"] < 4500, r["elapsed_ms"]
    late = dev.wait_for("separate-response", path="/3/0/0", timeout=5)
    assert late["type"] == "CON"
    # Nobody waits for that token any more: the gateway rejects it with RST (RFC 7252 4.2),
    # so the device stops retransmitting it, and the server hears nothing more.
    assert dev.wait_for("response-failed", mid=late["mid"], timeout=5)["reason"] == "rst"
    server.drain(2.0)
    assert len(server.seen_events("response", id=1)) == 1
    assert len(dev.seen_events("request", path="/3/0/0")) == 1
    m = gw.metrics()
    assert m["gateway_timeouts_total"] == 1
    assert m["separate_total"] == 1  # the 5.04, after the empty ACK
    assert m["downlink_responses_total"] == 0
    assert gw.peer.proc.poll() is None
