"""SMS trigger and wake-up (Transport 6.6): a device registered over NIDD that gave an sms=
number is woken by an Execute sent over SMS; the device answers nothing over SMS and comes back
on its own binding."""
import time

from lwm2m_peers import free_port

NUMBER = "14155550125"


def start_sleepy_device(peers, wake_queued=False):
    trigger_port = free_port()
    modem = peers.vmodem([NUMBER], targets={NUMBER: f"127.0.0.1:{trigger_port}"})
    server = peers.server()
    port = free_port()
    devices = f'{{ endpoint = "sleepy"; ue_address = "127.0.0.1:{port}"; queue_mode = true; }}'
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices,
                       gateway_extra="queue_awake_ms = 1000;",
                       sms=f'modem = "{modem.link}"; '
                           f'wake_queued = {"true" if wake_queued else "false"};')
    dev = peers.device(gw, "sleepy", local_port=port,
                       extra=["--binding", "U", "--queue", "--sms", NUMBER,
                              "--trigger-port", str(trigger_port)])
    reg = server.wait_for("register", ep="sleepy")
    dev.wait_for("registered")
    return modem, server, gw, dev, reg


def test_registration_update_trigger_goes_by_sms_and_gets_no_response(peers):
    modem, server, gw, dev, reg = start_sleepy_device(peers)
    r = server.request("execute 1 sleepy /1/0/8", timeout=30)
    assert r["code"] == "2.04"  # the gateway confirms; the device answers nothing (6.6)
    assert dev.wait_for("trigger", timeout=30)["path"] == "/1/0/8"
    out = modem.wait_for("sms-out", msisdn=NUMBER)
    assert out["parts"] == 1
    server.wait_for("update", ep="sleepy", timeout=30)  # back on its own binding (NIDD)
    assert dev.count("request", path="/1/0/8") == 0  # never relayed over NIDD
    assert gw.metrics()["sms_triggers_total"] == 1


def test_queued_request_wakes_the_device_by_sms(peers):
    modem, server, gw, dev, _ = start_sleepy_device(peers, wake_queued=True)
    time.sleep(1.5)  # the device sleeps now
    server.send("read 1 sleepy /3/0/0")
    assert dev.wait_for("trigger", timeout=30)["path"] == "/1/0/8"
    server.wait_for("update", ep="sleepy", timeout=30)
    r = server.wait_for("response", id=1, timeout=30)
    assert (r["code"], r["payload"]) == ("2.05", "lwm2m-gw test")
    assert gw.metrics()["sms_triggers_total"] == 1


def test_without_wake_queued_no_sms_is_spent(peers):
    modem, server, gw, dev, _ = start_sleepy_device(peers, wake_queued=False)
    time.sleep(1.5)
    server.send("read 1 sleepy /3/0/0")
    time.sleep(3)
    assert dev.count("trigger") == 0
    assert gw.metrics()["sms_triggers_total"] == 0
    assert gw.metrics()["queued_requests"] == 1
