"""The lwm2m-gw demo: test LwM2M server <- CoAP/UDP -> lwm2m-gw <- SMS -> virtual modem <- test
device (the default), or the same over the NIDD SGi binding (--binding nidd), or an LwM2M device
over HTTP (--binding http: the device POSTs to the gateway, the server's requests reach the
device's own HTTP server), or a LoRaWAN end device (--binding lorawan: a class A device of the
virtual network server scripts/vlns, ChirpStack v4 format, on a real mosquitto; the gateway is
its application server, the device registers with the parameters left out).

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
from lwm2m_peers import (Device, Gateway, HttpDevice, Mosquitto, TestServer,  # noqa: E402
                         VModem, Vlns, free_port, lorawan_device)

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


LORA_EUI = "0102030405060708"
LORA_OBJECTS = "</1/0>,</3/0>"  # the gateway's devices.objects: what the device leaves out
COAP_TYPES = ("CON", "NON", "ACK", "RST")
COAP_METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE", 5: "FETCH", 6: "PATCH", 7: "iPATCH"}
OPT_OBSERVE, OPT_LOCATION_PATH, OPT_URI_PATH, OPT_URI_QUERY = 6, 8, 11, 15


def coap_fields(data):
    """(type, code byte, message ID, {option number: [values]}, payload) of a CoAP message (RFC
    7252 3), read here and not with the gateway's codec, so what the demo prints checks it."""
    tkl = data[0] & 0x0F
    options, number, i = {}, 0, 4 + tkl

    def extended(n):
        nonlocal i
        if n == 13:
            i += 1
            return data[i - 1] + 13
        if n == 14:
            i += 2
            return int.from_bytes(data[i - 2:i], "big") + 269
        return n
    while i < len(data) and data[i] != 0xFF:
        head = data[i]
        i += 1
        number += extended(head >> 4)
        length = extended(head & 0x0F)
        options.setdefault(number, []).append(data[i:i + length])
        i += length
    payload = data[i + 1:] if i < len(data) else b""
    return COAP_TYPES[data[0] >> 4 & 3], data[1], int.from_bytes(data[2:4], "big"), options, payload


def coap_text(hex_text):
    """One CoAP message as a line: 'CON POST /rd?lt=..', 'ACK 2.01 Location /rd/1', ..."""
    kind, code, _, options, payload = coap_fields(bytes.fromhex(hex_text))
    if code == 0:
        return f"{kind} Empty"
    if code < 32:
        path = "/" + "/".join(v.decode(errors="replace") for v in options.get(OPT_URI_PATH, []))
        query = "&".join(v.decode(errors="replace") for v in options.get(OPT_URI_QUERY, []))
        text = f"{kind} {COAP_METHODS.get(code, code)} {path}" + (f"?{query}" if query else "")
    else:
        text = f"{kind} {code >> 5}.{code & 0x1F:02d}"
        if OPT_LOCATION_PATH in options:
            text += " Location /" + "/".join(v.decode() for v in options[OPT_LOCATION_PATH])
    if OPT_OBSERVE in options:
        text += f" Observe={int.from_bytes(options[OPT_OBSERVE][0], 'big')}"
    if payload:
        printable = payload.isascii() and payload.decode().isprintable()
        text += f' "{payload.decode()}"' if printable and len(payload) <= 24 \
            else f" ({len(payload)} bytes of payload)"
    return text


def lorawan_frames(events):
    """Prints the frames vlns saw, each downlink with the uplink whose RX window it went in
    (class A: the last uplink before it), and returns (uplinks, downlinks)."""
    ups, downs, last_up = [], [], None
    print("\nLoRaWAN frames as vlns saw them (FRMPayload = one CoAP message, Transport 6.8.4):")
    for e in events:
        if e.get("event") == "uplink":
            last_up = e
            ups.append(e)
            wake = " (wake-up: opens an RX window, Appendix C)" if e["len"] == 4 and \
                e["hex"].startswith("4000") else ""
            print(f"  up    FCnt {e['fcnt']:>2}  {e['len']:>3} B  {coap_text(e['hex'])}{wake}")
        elif e.get("event") == "downlink_delivered":
            downs.append(e)
            window = f"  in the RX window of uplink FCnt {last_up['fcnt']}" if last_up else ""
            print(f"  down  FCnt {e['fcnt_down']:>2}  {e['len']:>3} B  {coap_text(e['hex'])}"
                  f"{window}")
        elif e.get("event") in ("downlink_lost", "uplink_lost", "payload_too_large",
                                "command_rejected"):
            print(f"  {e['event']}: {e}")
    return ups, downs


def lorawan_demo(logs):
    """A class A LoRaWAN end device (Transport 6.8.4, Appendix C) of vlns on a real mosquitto;
    its LwM2M client registers with every parameter left out."""
    started = []
    try:
        broker = Mosquitto(logs)
        started.append(broker)
        server = TestServer(logs)
        started.append(server)
        ns = Vlns(logs, broker, devices=[f"{LORA_EUI}=0,class=A,dr=5"], extra=["--wake", "2"])
        started.append(ns)
        gateway = Gateway(logs, f"coap://127.0.0.1:{server.port}",
                          devices=lorawan_device(LORA_EUI, objects=LORA_OBJECTS),
                          lorawan={"broker": broker.uri, "network_server": "chirpstack",
                                   "application_id": ns.application,
                                   "ports": [{"fport": 1, "upstream": "default"}]})
        started.append(gateway)
        print(f"LwM2M server on coap://127.0.0.1:{server.port}; mosquitto on {broker.uri}; vlns "
              f"plays a ChirpStack v4 network server on it (application {ns.application});\n"
              f"the end device {LORA_EUI} is class A (DR 5, FPort 1): it hears the network only "
              f"in the RX window after each of its uplinks,\nand opens one with an Empty CON "
              f"every 2 s (vlns --wake 2); its LwM2M client is lwm2m-test-device --omit-params "
              f"--no-objects on {ns.device_uri(LORA_EUI)};\nthe gateway is the LoRaWAN "
              f"application server, lorawan://1 relays to the LwM2M server, devices.objects = "
              f"\"{LORA_OBJECTS}\"\n")
        device = Device(logs, ns.device_uri(LORA_EUI), "demo-lora",
                        extra=["--omit-params", "--no-objects", "--notify-ms", "2000"])
        started.append(device)
        eui = LORA_EUI.lower()
        up = ns.wait_for("uplink", deveui=eui, timeout=30)
        reg = server.wait_for("register", ep=LORA_EUI, timeout=30)
        device.wait_for("registered", timeout=30)
        show("device -> server", f"the device sent {coap_text(up['hex'])}: no ep, lt, lwm2m, b, "
             f"no object list ({up['len']} bytes of CoAP in uplink FCnt {up['fcnt']})")
        show("device -> server", f"the server saw Register ep={reg['ep']} (the DevEUI) "
             f"lt={reg['lt']} lwm2m={reg['lwm2m']} b={reg['b']}, objects {reg['payload']} "
             f"(supplied by the gateway), from {reg['peer']} = the gateway's session for this "
             f"end device")
        answer = ns.wait_for("downlink_delivered", deveui=eui, timeout=10)
        before = [e for e in ns.seen_events("uplink", deveui=eui) if e["_t"] <= answer["_t"]]
        why = "its Register's: the answer reached the network server within ChirpStack's " \
              "100 ms get_downlink_data_delay" if before[-1]["fcnt"] == up["fcnt"] else \
              "a later one: the answer missed the Register's window"
        show("server -> device", f"the device got {coap_text(answer['hex'])}, in the RX window "
             f"of uplink FCnt {before[-1]['fcnt']} ({why})")
        for i, (cmd, label) in enumerate([
                ("read {} {} /3/0/0", "Read /3/0/0 (Manufacturer)"),
                ("write {} {} /3/0/14 +01:00", "Write /3/0/14 = +01:00"),
                ("read {} {} /3/0/14", "Read /3/0/14"),
                ("execute {} {} /3/0/4", "Execute /3/0/4 (Reboot)")], start=1):
            r = server.request(cmd.format(i, LORA_EUI), timeout=30)
            value = f" {r['payload']}" if r.get("payload") else ""
            show("server -> device", f"{label}: {r['code']}{value} (empty ACK at once, the "
                 f"answer as a separate {r['type']} {r['elapsed_ms']} ms later)")
        r = server.request(f"observe 9 {LORA_EUI} /3/0/13", timeout=30)
        show("server -> device", f"Observe /3/0/13: {r['code']} value {r.get('payload')} "
             f"({r['elapsed_ms']} ms)")
        for _ in range(3):
            n = server.wait_for("notify", id=9, timeout=30)
            show("device -> server", f"Notify /3/0/13 = {n.get('payload')} (observe "
                 f"{n['observe']}, {n['type']}: an uplink of its own, which also opens a window)")
        r = server.request("cancel 9", timeout=30)
        show("server -> device", f"Cancel observation: {r['code']} ({r['elapsed_ms']} ms)")
        device.send("deregister")
        dereg = server.wait_for("deregister", ep=LORA_EUI, timeout=30)
        done = device.wait_for("deregistered", timeout=30)
        show("device -> server", f"De-register: the server saw De-register of "
             f"{dereg['location']}; the device got {done['code']}")

        ups, downs = lorawan_frames([e for e in ns.drain(0.3) if e.get("deveui") == eui
                                     or e.get("event") == "command_rejected"])
        wakes = sum(1 for e in ups if e["len"] == 4 and e["hex"].startswith("4000"))
        print(f"  uplinks: {len(ups)} frames, {sum(e['len'] for e in ups)} bytes ({wakes} of them "
              f"wake-ups); downlinks: {len(downs)} frames, {sum(e['len'] for e in downs)} bytes")
        m = gateway.metrics()
        print(f"\ngateway counters: LoRaWAN {m['lorawan_uplinks_total']} uplinks, "
              f"{m['lorawan_downlinks_total']} downlinks, {m['lorawan_rx_window_opens_total']} "
              f"RX-window openings (not relayed), {m['lorawan_registrations_completed_total']} "
              f"Register completed, {m['lorawan_object_lists_supplied_total']} object list "
              f"supplied, {m['lorawan_sent_reports_total']} sent reports (txack); core "
              f"{m['uplink_requests_total']} requests up, {m['downlink_requests_total']} down, "
              f"{m['piggybacked_total']} piggybacked, {m['separate_total']} separate, "
              f"{m['notifications_total']} notifications, {m['gateway_timeouts_total']} "
              f"timeouts, {m['malformed_total']} malformed")
        print("demo finished: every round trip crossed the gateway")
    finally:
        rc = 0
        for peer in reversed(started):
            code = peer.stop()
            if isinstance(peer, Gateway):
                rc = code
        print(f"logs: {logs}")
    return 0 if rc == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binding", choices=["sms", "nidd", "http", "lorawan"], default="sms")
    binding = parser.parse_args().binding
    logs = tempfile.mkdtemp(prefix="lwm2m-gw-demo-")
    if binding == "http":
        return http_demo(logs)
    if binding == "lorawan":
        return lorawan_demo(logs)
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
