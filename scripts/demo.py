"""The lwm2m-gw demo: test LwM2M server <- CoAP/UDP -> lwm2m-gw <- SMS -> virtual modem <- test
device (the default), or the same over the NIDD SGi binding (--binding nidd), or an LwM2M device
over HTTP (--binding http: the device POSTs to the gateway, the server's requests reach the
device's own HTTP server).

Starts everything on free loopback ports, plays the LwM2M operations a server uses, prints what
each side saw, and stops everything. Logs stay in a temporary folder, printed at the end.
"""
import argparse
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
from lwm2m_peers import Device, Gateway, HttpDevice, TestServer, VModem, free_port  # noqa: E402

DEVICE_MSISDN = "14155550125"
MODEM_MSISDN = "12125550178"


def show(arrow, text):
    print(f"  {arrow} {text}", flush=True)


def start(binding, logs):
    """Returns (modem or None, server, gateway, device) wired for the chosen binding."""
    server = TestServer(logs)
    if binding == "nidd":
        gateway = Gateway(logs, f"coap://127.0.0.1:{server.port}")
        print(f"LwM2M server on coap://127.0.0.1:{server.port}; gateway NIDD SGi endpoint on "
              f"{gateway.sgi_uri}\n")
        device = Device(logs, gateway.sgi_uri, "demo-meter",
                        extra=["--lwm2m", "1.2", "--binding", "N", "--notify-ms", "500"])
        return None, server, gateway, device
    modem = VModem(logs, [DEVICE_MSISDN], msisdn=MODEM_MSISDN, extra=["--personality", "quectel"])
    devices = f'{{ endpoint = "demo-meter"; msisdn = "{DEVICE_MSISDN}"; }}'
    gateway = Gateway(logs, f"coap://127.0.0.1:{server.port}", devices=devices,
                      device_timeout_ms=20000,
                      sms=f'modem = "{modem.link}"; msisdn = "{MODEM_MSISDN}";')
    print(f"LwM2M server on coap://127.0.0.1:{server.port}; gateway drives the virtual modem "
          f"{modem.link} -> {modem.pty} (+{MODEM_MSISDN});\nthe device is phone "
          f"+{DEVICE_MSISDN}, reaching the modem by SMS through {modem.phone_uri(DEVICE_MSISDN)}\n")
    device = Device(logs, modem.phone_uri(DEVICE_MSISDN), "demo-meter",
                    extra=["--lwm2m", "1.2", "--binding", "S", "--notify-ms", "2000",
                           "--reg-payload-size", "300"])
    return modem, server, gateway, device


def http_demo(logs):
    """An LwM2M device over HTTP (Transport 7), with a Bearer token, through the gateway."""
    server = TestServer(logs)
    port = free_port(socket.SOCK_STREAM)
    device = HttpDevice(logs, f"http://127.0.0.1:{port}", "demo-pump",
                        extra=["--bearer", "demo-token", "--lifetime", "120"])
    gateway = Gateway(logs, f"coap://127.0.0.1:{server.port}", http=f'listen = "127.0.0.1:{port}";',
                      devices=f'{{ endpoint = "demo-pump"; http_url = "{device.url}"; '
                              f'http_token = "demo-token"; }}')
    print(f"LwM2M server on coap://127.0.0.1:{server.port}; gateway serves HTTP devices on "
          f"http://127.0.0.1:{port};\nthe device's own HTTP server is {device.url}\n")
    try:
        device.send("register")
        reg = server.wait_for("register", ep="demo-pump")
        got = device.wait_for("registered")
        show("device -> server", f"POST /rd?ep=demo-pump&b=H: HTTP {got['status']}, Location "
             f"{got['location']} (the gateway's); the server saw Register b={reg['b']} from "
             f"{reg['peer']}, Location {reg['location']}")
        for i, (cmd, label) in enumerate([
                ("read {} demo-pump /3/0/0", "Read /3/0/0"),
                ("write {} demo-pump /3/0/14 +01:00", "Write /3/0/14 = +01:00"),
                ("execute {} demo-pump /3/0/4", "Execute /3/0/4"),
                ("discover {} demo-pump /3/0", "Discover /3/0")], start=1):
            r = server.request(cmd.format(i))
            req = device.wait_for("request")
            show("server -> device", f"{label}: device saw {req['method']} {req['target']}; "
                 f"server got {r['code']} {(r.get('payload') or '')[:60]}")
        r = server.request("fetch 9 demo-pump 112 80")
        show("server -> device", f"Read-Composite: answered by the gateway {r['code']} "
             f"\"{r.get('payload')}\"")
        device.send('send [{"bn":"/3303/0/","n":"5700","v":21.5}]')
        sent = server.wait_for("send", ep="demo-pump")
        show("device -> server", f"POST /dp (Send): server got {sent['payload']}")
        device.send("deregister")
        server.wait_for("deregister", ep="demo-pump")
        show("device -> server", f"DELETE {got['location']}: server saw De-register of "
             f"{reg['location']}")
        m = gateway.metrics()
        print(f"\ngateway counters: {m['http_requests_total']} HTTP requests from the device, "
              f"{m['http_server_requests_total']} server requests sent to it, "
              f"{m['http_server_refused_total']} refused (composites: Transport 7.1.4)")
        print("demo finished: every round trip crossed the gateway")
    finally:
        device.stop()
        rc = gateway.stop()
        server.stop()
        print(f"logs: {logs}")
    return 0 if rc == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binding", choices=["sms", "nidd", "http"], default="sms")
    binding = parser.parse_args().binding
    logs = tempfile.mkdtemp(prefix="lwm2m-gw-demo-")
    if binding == "http":
        return http_demo(logs)
    modem, server, gateway, device = start(binding, logs)
    try:
        reg = server.wait_for("register", ep="demo-meter", timeout=60)
        device.wait_for("registered", timeout=60)
        if modem:
            sms = modem.wait_for("sms-in", msisdn=DEVICE_MSISDN)
            show("device -> server", f"Register ({sms['bytes']} bytes of CoAP in {sms['parts']} "
                 f"concatenated SMS)")
        show("device -> server", f"Register ep={reg['ep']} lwm2m={reg['lwm2m']} b={reg['b']} "
             f"(the device said lwm2m=1.2: rewritten for a Leshan-strict server), "
             f"seen from {reg['peer']} = the gateway's session for this device")
        for i, (cmd, label) in enumerate([
                ("read {} demo-meter /3/0/0", "Read /3/0/0 (Manufacturer)"),
                ("write {} demo-meter /3/0/14 +01:00", "Write /3/0/14 = +01:00"),
                ("read {} demo-meter /3/0/14", "Read /3/0/14"),
                ("execute {} demo-meter /3/0/4", "Execute /3/0/4 (Reboot)"),
                ("discover {} demo-meter /3/0", "Discover /3/0")], start=1):
            r = server.request(cmd.format(i), timeout=60)
            show("server -> device", f"{label}: {r['code']} {r.get('payload') or ''} "
                 f"({r['type']}, {r['elapsed_ms']} ms round trip)")
        r = server.request("observe 9 demo-meter /3/0/13", timeout=60)
        show("server -> device", f"Observe /3/0/13: {r['code']} value {r.get('payload')}")
        for _ in range(3):
            n = server.wait_for("notify", id=9, timeout=60)
            show("device -> server", f"Notify /3/0/13 = {n.get('payload')} (observe {n['observe']})")
        r = server.request("cancel 9", timeout=60)
        show("server -> device", f"Cancel observation: {r['code']}")
        device.send("deregister")
        server.wait_for("deregister", ep="demo-meter", timeout=60)
        show("device -> server", "De-register")
        m = gateway.metrics()
        print(f"\ngateway counters: {m['uplink_requests_total']} requests up, "
              f"{m['downlink_requests_total']} down, {m['piggybacked_total']} piggybacked, "
              f"{m['separate_total']} separate, {m['notifications_total']} notifications, "
              f"{m['malformed_total']} malformed")
        if modem:
            print(f"SMS: {m['sms_received_total']} received, {m['sms_sms_out_total']} sent, "
                  f"{m['sms_concat_completed_total']} concatenated messages reassembled")
        print("demo finished: every round trip crossed the gateway")
    finally:
        device.stop()
        rc = gateway.stop()
        server.stop()
        if modem:
            modem.stop()
        print(f"logs: {logs}")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
