"""SMS Secured Packets (LwM2M Transport 5.3.2.1.3) through the sms binding: a Python "device"
(scripts/secured_packet.py, independent of the C codec) talks to the gateway through the
virtual modem (`inject-ud` in, `submit` events out), the test LwM2M server on the other side.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))
import secured_packet as sp  # noqa: E402

DEVICE_NUMBER = "14155550125"
EP = "sp-meter"
# KIc AES key 1, KID AES-CMAC key 1, SPI: CC + ciphering + counter "higher", no PoR; LwM2M TAR.
PARAMS = bytes.fromhex("1212" "1600" "B20203")
SECRET = bytes(range(16)) + bytes(range(0x40, 0x50))
KEYS = sp.parse_keys(PARAMS, SECRET)


# ---- a few CoAP octets (RFC 7252) ----

def coap_options(options):
    out, last = b"", 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta, n = number - last, len(value)
        last = number

        def nib(x):
            return (x, b"") if x < 13 else (13, bytes([x - 13])) if x < 269 else \
                (14, (x - 269).to_bytes(2, "big"))
        d, dx = nib(delta)
        ln, lx = nib(n)
        out += bytes([d << 4 | ln]) + dx + lx + value
    return out


def coap(mtype, code, mid, token=b"", options=(), payload=b""):
    head = bytes([0x40 | mtype << 4 | len(token), code]) + mid.to_bytes(2, "big") + token
    return head + coap_options(options) + (b"\xff" + payload if payload else b"")


def coap_parse(msg):
    tkl = msg[0] & 0x0F
    out = {"type": (msg[0] >> 4) & 3, "code": msg[1], "mid": int.from_bytes(msg[2:4], "big"),
           "token": msg[4:4 + tkl], "path": []}
    pos, number = 4 + tkl, 0
    while pos < len(msg) and msg[pos] != 0xFF:
        d, ln = msg[pos] >> 4, msg[pos] & 0x0F
        pos += 1
        ext = []
        for x in (d, ln):
            if x == 13:
                ext.append(msg[pos] + 13)
                pos += 1
            elif x == 14:
                ext.append(int.from_bytes(msg[pos:pos + 2], "big") + 269)
                pos += 2
            else:
                ext.append(x)
        number += ext[0]
        if number == 11:
            out["path"].append(msg[pos:pos + ext[1]].decode())
        pos += ext[1]
    out["payload"] = msg[pos + 1:] if pos < len(msg) else b""
    return out


def register_message(mid):
    opts = [(11, b"rd"), (12, b"\x28"), (15, f"ep={EP}".encode()), (15, b"b=S"),
            (15, b"lt=300"), (15, b"lwm2m=1.1")]
    return coap(0, 0x02, mid, b"\x01\x02", opts, b"</1/0>,</3/0>")


# ---- the device's side of the secured channel ----

class SecuredDevice:
    def __init__(self, modem, counter=0):
        self.modem = modem
        self.counter = counter      # last counter sent
        self.last_in = 0            # last counter accepted from the gateway

    def packet(self, message, counter=None):
        if counter is None:
            self.counter += 1
            counter = self.counter
        return sp.encode_command(KEYS, counter, sp.tlv_wrap(message))

    def inject_packet(self, packet):
        for ud in sp.sms_user_data(packet):
            udh, data = ud[1:1 + ud[0]], ud[1 + ud[0]:]
            self.modem.send(f"inject-ud {DEVICE_NUMBER} 7F F6 {udh.hex()} {data.hex()}")

    def send(self, message):
        packet = self.packet(message)
        self.inject_packet(packet)
        return packet

    def receive(self, timeout=30):
        """The next Command Packet the gateway sent: (CoAP message, counter, submit events)."""
        submits = [self.modem.wait_for("submit", timeout=timeout, msisdn=DEVICE_NUMBER)]
        total = submits[0].get("total", 1)
        while len(submits) < total:
            submits.append(self.modem.wait_for("submit", timeout=timeout, msisdn=DEVICE_NUMBER))
        for s in submits:
            assert (s["pid"], s["dcs"]) == (0x7F, 0xF6), s
        assert submits[0]["udh"].startswith("7000"), submits[0]  # the CPI, first
        uds = [bytes([len(bytes.fromhex(s["udh"]))]) + bytes.fromhex(s["udh"]) +
               bytes.fromhex(s["ud"]) for s in submits]
        packet = sp.packet_from_user_data(uds)
        assert packet[7:10] == bytes.fromhex("B20203")  # TAR in the clear
        data, counter = sp.decode_command(KEYS, packet)
        assert sp.counter_acceptable(KEYS.spi, self.last_in, counter), (self.last_in, counter)
        self.last_in = counter
        return sp.tlv_unwrap(data), counter, submits


def start_gateway(peers, state_dir, modem=None, server=None, name="gateway"):
    modem = modem or peers.vmodem([DEVICE_NUMBER])
    server = server or peers.server()
    devices = (f'{{ endpoint = "{EP}"; msisdn = "{DEVICE_NUMBER}"; '
               f'sms_security = "secured_packet"; sms_key_params_hex = "{PARAMS.hex()}"; '
               f'sms_secret_key_hex = "{SECRET.hex()}"; }}')
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=devices, name=name,
                       device_timeout_ms=20000, gateway_extra=f'state_dir = "{state_dir}";',
                       sms=f'modem = "{modem.link}"; msisdn = "12125550178"; '
                           f'sweep_interval_ms = 2000;')
    return modem, server, gw


def wait_metric(gw, name, value, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.metrics().get(name, 0) >= value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} stayed {gw.metrics().get(name)} (wanted {value})")


def register(dev, server, mid):
    dev.send(register_message(mid))
    reg = server.wait_for("register", ep=EP, timeout=30)
    assert reg["b"] == "S"
    msg, counter, _ = dev.receive()
    ack = coap_parse(msg)
    assert (ack["type"], ack["code"], ack["mid"]) == (2, 0x41, mid)  # ACK 2.01 Created
    return counter


def test_secured_packet_register_read_replay_tamper_plain_restart(peers, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    modem, server, gw = start_gateway(peers, state_dir)
    dev = SecuredDevice(modem)

    # Register, wrapped as a secured packet, reaches the server; the 2.01 comes back secured.
    register(dev, server, 0x1000)

    # The server reads /3/0/0: a secured CoAP GET to the device, answered with a secured 2.05.
    server.send(f"read 1 {EP} /3/0/0")
    msg, out_counter, _ = dev.receive()
    get = coap_parse(msg)
    assert (get["code"], get["path"]) == (0x01, ["3", "0", "0"])
    answer = dev.packet(coap(2, 0x45, get["mid"], get["token"], [(12, b"")], b"sp device"))
    dev.inject_packet(answer)
    r = server.wait_for("response", id=1, timeout=30)
    assert (r["code"], r["payload"]) == ("2.05", "sp device")
    m = gw.metrics()
    assert m["sms_secured_packets_in_total"] == 2
    assert m["sms_secured_packets_out_total"] == 2
    assert m["sms_secured_packets_rejected_total"] == 0
    assert (state_dir / "sms_secured_packet_counters").exists()
    submits = modem.count("submit", msisdn=DEVICE_NUMBER)

    # A replayed packet (same counter) is dropped and counted, with no reply.
    dev.inject_packet(answer)
    wait_metric(gw, "sms_replayed_total", 1)
    # A tampered one (fresh counter, one ciphered octet flipped): dropped, no reply.
    good = dev.packet(register_message(0x1001))
    bad = bytearray(good)
    bad[-1] ^= 0x01
    dev.inject_packet(bytes(bad))
    wait_metric(gw, "sms_secured_packets_rejected_total", 1)
    # Plain unprotected CoAP from that number: dropped, no reply.
    modem.send(f"inject {DEVICE_NUMBER} {register_message(0x1002).hex()}")
    wait_metric(gw, "sms_unprotected_total", 1)
    time.sleep(2)
    assert modem.count("submit", msisdn=DEVICE_NUMBER) == submits  # no reply to any of them
    assert server.count("register", ep=EP) == 1
    m = gw.metrics()
    assert m["sms_secured_packets_in_total"] == 2
    assert m["sms_replayed_total"] == 1

    # Restart with the same state_dir: the outgoing counter continues above the last one, and
    # the old packets stay replays.
    assert gw.stop() == 0
    _, _, gw2 = start_gateway(peers, state_dir, modem=modem, server=server, name="gateway2")
    dev.inject_packet(answer)
    wait_metric(gw2, "sms_replayed_total", 1, timeout=30)
    time.sleep(0.5)
    second = register(dev, server, 0x1003)
    assert second > out_counter
    assert gw2.metrics()["sms_secured_packets_in_total"] == 1


def test_state_dir_not_writable_keeps_working_in_memory(peers, tmp_path):
    # Its parent is missing: the gateway cannot create it (it creates the directory itself).
    modem, server, gw = start_gateway(peers, tmp_path / "missing" / "state")
    dev = SecuredDevice(modem)
    first = register(dev, server, 0x2000)
    # A Register of 400 octets travels as concatenated SMS, the CPI in the first part only.
    big = coap(0, 0x02, 0x2001, b"\x03", [(11, b"rd"), (12, b"\x28"), (15, f"ep={EP}".encode()),
                                          (15, b"b=S")], b",".join([b"</3303/0>"] * 40))
    packet = dev.send(big)
    assert len(sp.sms_user_data(packet)) > 1
    server.wait_for("register", ep=EP, timeout=30)
    second, _, _ = dev.receive()
    assert coap_parse(second)["code"] == 0x41
    assert dev.last_in > first
    # A Write of 300 octets goes out as a concatenated secured packet.
    server.send(f"write 2 {EP} /3/0/14 {'x' * 300}")
    msg, _, submits = dev.receive()
    assert len(submits) > 1 and all(not s["udh"].startswith("70") for s in submits[1:])
    put = coap_parse(msg)
    assert put["path"] == ["3", "0", "14"] and put["payload"] == b"x" * 300
    dev.send(coap(2, 0x44, put["mid"], put["token"]))
    assert server.wait_for("response", id=2, timeout=30)["code"] == "2.04"
    assert gw.metrics()["state_persistent"] == 0
    gw.stop()
    assert "counters are kept in memory only" in gw.peer.log_text()
    assert "state kept in memory only" in gw.peer.log_text()
