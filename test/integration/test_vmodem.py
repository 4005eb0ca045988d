"""The virtual modem (scripts/vmodem) on its own, without the gateway.

Each test starts vmodem on a temporary --link path with free UDP phone ports, opens the PTY with
plain Python (os.open + raw termios) and plays the modem's user the way the gateway's AT driver
does. The SMS-DELIVER PDUs it stores are decoded by the small decoder in this file
(decode_deliver), not by scripts/vmodem_pdu.py, so codec mistakes cannot cancel out; the SUBMIT
PDUs sent to it are hex vectors computed by hand after 3GPP TS 23.040 9.2.2.2 / 9.2.3.24.
vmodem_pdu.py itself is checked against the same vectors in test_pdu_codec_vectors.
"""
import os
import re
import select
import signal
import socket
import sys
import time
import tty

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMODEM = os.path.join(ROOT, "scripts", "vmodem")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import vmodem_pdu  # noqa: E402
from lwm2m_peers import Peer  # noqa: E402

PHONE_A = "14155550125"   # TP-DA/OA digits: 0B 91 41 51 55 05 21 F5
PHONE_B = "46708251358"   # the number of the classic 'hellohello' SUBMIT example
OWN = "12125550178"

FINAL = re.compile(r"^(OK|ERROR|\+CME ERROR: .*|\+CMS ERROR: .*)$")
URC_PREFIXES = ("+CMTI:", "+CMT:", "^RSSI:", "^BOOT:", "^MODE:", "+QIND:", "SMS Ready", "RDY")


# ---------------------------------------------------------------------------------------------
# A small independent SMS-DELIVER decoder (TS 27.005 PDU mode, TS 23.040 9.2.2.1, 8-bit only)
# ---------------------------------------------------------------------------------------------
def decode_deliver(hexpdu):
    b = bytes.fromhex(hexpdu)
    i = 1 + b[0]                       # skip the SMSC address
    tpdu_len = len(b) - i
    first = b[i]
    assert first & 0x03 == 0, "TP-MTI is not SMS-DELIVER"
    ndigits, toa = b[i + 1], b[i + 2]
    nbytes = (ndigits + 1) // 2
    digits = "".join(f"{x & 0x0F}{x >> 4}" for x in b[i + 3:i + 3 + nbytes])[:ndigits]
    i += 3 + nbytes
    pid, dcs = b[i], b[i + 1]
    i += 2 + 7                         # TP-SCTS
    udl = b[i]
    ud = b[i + 1:]
    assert len(ud) == udl, "UDL does not match the user data (8-bit)"
    udh = b""
    if first & 0x40:                   # TP-UDHI
        udh, ud = ud[1:1 + ud[0]], ud[1 + ud[0]:]
    concat = None
    if udh[:2] == b"\x00\x03":
        concat = (udh[2], udh[3], udh[4])
    return {"oa": digits, "toa": toa, "pid": pid, "dcs": dcs, "udh": udh, "concat": concat,
            "payload": ud, "tpdu_len": tpdu_len}


# ---------------------------------------------------------------------------------------------
# Driving vmodem: the process, its events, and its PTY
# ---------------------------------------------------------------------------------------------
class VModem(Peer):
    """vmodem with raw arguments; Peer (lwm2m_peers.py) reads its events and waits for them."""

    def __init__(self, tmp_path, args, name="vmodem"):
        self.link = os.path.join(str(tmp_path), f"{name}.tty")
        self.log_path = os.path.join(str(tmp_path), f"{name}.trace")
        argv = [VMODEM, "--link", self.link, "--log", self.log_path, "--stdin-commands"] + args
        super().__init__(name, argv, str(tmp_path))
        try:
            self.pty = self.wait_for("unparsed")["line"]  # the first line is the PTY path
        except AssertionError:
            raise AssertionError("vmodem printed no PTY path") from None
        self.phones = {}
        for _ in range(args.count("--phone")):
            e = self.wait_for("phone")
            self.phones[e["msisdn"]] = e["port"]

    def all(self, name, **match):
        self.drain(0)
        return [e for e in self.seen
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]

    def status(self):
        self.send("status")
        return self.wait_for("status")

    def barrier(self):
        """Events are written in order: once the status answer is read, every event vmodem
        wrote before it has been read too."""
        self.status()



class AtPort:
    """The host side of the modem's serial port."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = b""
        self.urcs = []      # (line, pdu-or-None)
        self.echoed = []    # command lines the modem echoed back
        self.prompt = None  # the bytes of the last CMGS prompt

    def close(self):
        os.close(self.fd)

    def write(self, data):
        os.write(self.fd, data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"modem timeout; buffered {self.buf!r}")
        r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
        if r:
            self.buf += os.read(self.fd, 65536)

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1").strip("\r")

    def _route(self, line, deadline):
        """True if `line` was an unsolicited result code (kept in self.urcs)."""
        if not line.startswith(URC_PREFIXES):
            return False
        pdu = self._line(deadline) if line.startswith("+CMT:") else None
        self.urcs.append((line, pdu))
        return True

    def result(self, sent, timeout=15.0):
        deadline = time.monotonic() + timeout
        info = []
        while True:
            line = self._line(deadline)
            if not line:
                continue
            if line == sent:
                self.echoed.append(line)
                continue
            if self._route(line, deadline):
                continue
            if FINAL.match(line):
                return line, info
            info.append(line)

    def cmd(self, line, timeout=15.0):
        self.write(line.encode() + b"\r")
        return self.result(line, timeout)

    def ok(self, line, timeout=15.0):
        final, info = self.cmd(line, timeout)
        assert final == "OK", f"{line} -> {final} {info}"
        return info

    def cmgs(self, hexpdu, length=None, timeout=15.0):
        """AT+CMGS=<length>, wait for the prompt, send the PDU and Ctrl-Z."""
        if length is None:
            raw = bytes.fromhex(hexpdu)
            length = len(raw) - 1 - raw[0]
        sent = f"AT+CMGS={length}"
        self.write(sent.encode() + b"\r")
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                line = line.decode("latin-1").strip("\r")
                if not line:
                    continue
                if line == sent:
                    self.echoed.append(line)
                    continue
                if self._route(line, deadline):
                    continue
                if FINAL.match(line):
                    return line, []
                raise AssertionError(f"unexpected line before the prompt: {line!r}")
            if self.buf in (b"> ", b">"):
                self.prompt, self.buf = self.buf, b""
                break
            self._fill(deadline)
        self.write(hexpdu.encode() + b"\x1a")
        return self.result(hexpdu, timeout)

    def wait_urc(self, prefix, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, (line, pdu) in enumerate(self.urcs):
                if line.startswith(prefix):
                    del self.urcs[i]
                    return line, pdu
            line = self._line(deadline)
            if line and not self._route(line, deadline):
                raise AssertionError(f"unexpected line {line!r} while waiting for {prefix}")

    def settle(self, seconds):
        """Reads for `seconds`, keeping URCs; returns other non-empty lines."""
        deadline = time.monotonic() + seconds
        other = []
        while time.monotonic() < deadline:
            try:
                self._fill(deadline)
            except AssertionError:
                break
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                line = line.decode("latin-1").strip("\r")
                if line and not self._route(line, deadline + 5):
                    other.append(line)
        return other

    def cmgl(self, stat=4):
        """AT+CMGL=<stat> -> {index: (stat, length, pdu)}."""
        final, info = self.cmd(f"AT+CMGL={stat}")
        assert final == "OK", final
        out = {}
        for head, pdu in zip(info[0::2], info[1::2]):
            m = re.match(r"\+CMGL: (\d+),(\d),,(\d+)$", head)
            assert m, head
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), pdu)
        return out


@pytest.fixture
def vm(tmp_path):
    """vm(args...) starts vmodem; every instance must exit 0 on SIGTERM at the end."""
    started, ports = [], []

    def start(*args, name="vmodem"):
        v = VModem(tmp_path, list(args), name=name)
        started.append(v)
        return v

    def port(v):
        p = AtPort(v.link)
        ports.append(p)
        return p

    start.port = port
    yield start
    for p in ports:
        try:
            p.close()
        except OSError:
            pass
    codes = [(v.link, v.stop()) for v in started]
    assert all(c == 0 for _, c in codes), codes


def udp_client():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def init(port, cnmi="2,1,0,0,0"):
    """The gateway-like init sequence without a PIN."""
    port.ok("AT")
    port.ok("ATE0")
    port.ok("AT+CMEE=1")
    assert port.ok("AT+CPIN?") == ["+CPIN: READY"]
    port.ok("AT+CMGF=0")
    port.ok('AT+CPMS="SM","SM","SM"')
    if cnmi:
        port.ok(f"AT+CNMI={cnmi}")


# ---------------------------------------------------------------------------------------------
# The codec (scripts/vmodem_pdu.py) against spec vectors
# ---------------------------------------------------------------------------------------------
def test_pdu_codec_vectors():
    # TS 23.038 6.1.2.1.1 packing: "hellohello"
    assert vmodem_pdu.gsm7_pack(vmodem_pdu.gsm7_encode("hellohello")).hex().upper() == \
        "E8329BFD4697D9EC37"
    # SMS-DELIVER with SCA +27381000015, OA 27838890001, 7-bit "hellohello"
    sca, tpdu = vmodem_pdu.split_pdu_mode(
        "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
    d = vmodem_pdu.decode_tpdu(tpdu, "deliver")
    assert (sca, d["number"], d["payload"]) == ("+27381000015", "27838890001", b"hellohello")
    assert (d["scts"]["month"], d["scts"]["day"], d["scts"]["tz_quarters"]) == (3, 29, 8)
    # SMS-SUBMIT with relative VP, DA +46708251358, 7-bit "hellohello"
    sca, tpdu = vmodem_pdu.split_pdu_mode("0011000B916407281553F80000AA0AE8329BFD4697D9EC37")
    s = vmodem_pdu.decode_tpdu(tpdu, "submit")
    assert (sca, s["number"], s["vpf"], s["payload"]) == ("", PHONE_B, 2, b"hellohello")
    # hand-computed 8-bit SUBMIT, and concatenated parts with 8- and 16-bit references
    assert vmodem_pdu.encode_submit(PHONE_A, b"hello").hex().upper() == \
        "01000B914151550521F500040568656C6C6F"
    part = vmodem_pdu.encode_submit(PHONE_A, b"Hello, ", udh=vmodem_pdu.concat_udh(0x2A, 2, 1))
    assert part.hex().upper() == "41000B914151550521F500040D0500032A020148656C6C6F2C20"
    part = vmodem_pdu.encode_submit(PHONE_A, b"abc", udh=vmodem_pdu.concat_udh(0x1234, 3, 1, 16))
    assert part.hex().upper() == "41000B914151550521F500040A06080412340301616263"
    assert vmodem_pdu.concat_info(bytes.fromhex("0804123403 01")) == (0x1234, 3, 1, 16)
    # 7-bit user data after a UDH starts at a septet boundary (TS 23.040 9.2.3.24)
    sub = vmodem_pdu.encode_submit(PHONE_A, "hello", udh=vmodem_pdu.concat_udh(1, 2, 1), dcs=0)
    assert sub.hex().upper().endswith("0C050003010201D06536FB0D")
    assert vmodem_pdu.decode_tpdu(sub, "submit")["payload"] == b"hello"
    # 600 octets: 4 x 134 + 64, every DELIVER decodable by the independent decoder above
    data = bytes(range(256)) * 2 + bytes(88)
    chunks = vmodem_pdu.split_concatenated(data, 7)
    assert [len(c) for _, c in chunks] == [134, 134, 134, 134, 64]
    got = b""
    for udh, chunk in chunks:
        t = vmodem_pdu.encode_deliver(PHONE_A, chunk, udh=udh)
        d = decode_deliver("00" + t.hex())
        assert (d["oa"], d["toa"], d["dcs"]) == (PHONE_A, 0x91, 0x04)
        got += d["payload"]
    assert got == data
    assert len(vmodem_pdu.split_concatenated(bytes(140), 1)) == 1
    # alphanumeric originator (TS 23.040 9.1.2.5) and SCTS round trip
    t = vmodem_pdu.encode_deliver("Vmodem", b"x")
    assert vmodem_pdu.decode_tpdu(t, "deliver")["number"] == "Vmodem"
    with pytest.raises(vmodem_pdu.PduError):
        vmodem_pdu.decode_tpdu(bytes.fromhex("01000B914151550521F500040968656C"), "submit")


# ---------------------------------------------------------------------------------------------
# AT behaviour
# ---------------------------------------------------------------------------------------------
def test_init_sequence_with_pin_and_sim_busy(vm):
    v = vm("--pin", "1234", "--msisdn", OWN, "--sim-busy-ms", "1500")
    p = vm.port(v)
    p.ok("AT")
    assert p.echoed == ["AT"]              # generic: echo on until ATE0
    p.ok("ATE0")
    p.ok("AT")
    assert p.echoed == ["AT", "ATE0"]
    p.ok("AT+CMEE=1")
    assert p.ok("AT+CPIN?") == ["+CPIN: SIM PIN"]
    assert p.cmd("AT+CPMS?")[0] == "+CME ERROR: 11"
    assert p.cmd('AT+CPIN="0000"')[0] == "+CME ERROR: 16"
    assert v.wait_for("pin", ok=False)["attempts_left"] == 2
    p.ok('AT+CPIN="1234"')
    assert p.cmd("AT+CPIN?")[0] == "+CME ERROR: 14"   # SIM busy right after the PIN
    assert p.cmd("AT+CMGL=4")[0] == "+CME ERROR: 14"
    deadline = time.monotonic() + 5
    while True:
        final, info = p.cmd("AT+CPIN?")
        if final == "OK":
            break
        assert final == "+CME ERROR: 14" and time.monotonic() < deadline
        time.sleep(0.1)
    assert info == ["+CPIN: READY"]
    p.ok("AT+CMGF=0")
    assert p.cmd("AT+CMGF=1")[0] == "+CMS ERROR: 303"  # PDU mode only
    assert p.ok("AT+CMGF?") == ["+CMGF: 0"]
    assert p.ok('AT+CPMS="SM","SM","SM"') == ["+CPMS: 0,20,0,20,0,20"]
    assert p.ok("AT+CPMS=?") == ['+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")']
    p.ok("AT+CNMI=2,1,0,0,0")
    assert p.ok("AT+CNMI?") == ["+CNMI: 2,1,0,0,0"]
    assert p.ok("AT+CSCA?") == ['+CSCA: "+15550000000",145']
    p.ok('AT+CSCA="+15550000001",145')
    assert p.ok("AT+CNUM") == [f'+CNUM: "","+{OWN}",145']
    assert p.ok("AT+CSQ") == ["+CSQ: 20,99"]
    assert p.ok("AT+CREG?") == ["+CREG: 0,1"]
    assert p.ok("AT+CEREG?") == ["+CEREG: 0,1"]
    assert p.ok("AT+COPS?")[0].startswith("+COPS: 0,0,")
    assert p.ok("AT+CGMI") == ["VMODEM"]
    imei = p.ok("AT+CGSN")[0]
    assert len(imei) == 15 and imei.isdigit()
    assert p.ok("AT+CIMI")[0].isdigit()
    assert p.ok("AT+CCID")[0].startswith("+CCID: 89")
    assert p.ok("ATI")[0] == "VMODEM"
    assert p.ok("AT+CMEE=1;+CSQ") == ["+CSQ: 20,99"]   # V.250 concatenated commands
    assert p.cmd("AT+BOGUS")[0] == "ERROR"
    assert p.cmd('AT+CPIN="1234"')[0] == "+CME ERROR: 3"
    p.ok("AT+CMEE=2")
    assert p.cmd('AT+CPIN="1234"')[0] == "+CME ERROR: operation not allowed"
    assert p.cmd("AT+CMGR=99")[0] == "+CMS ERROR: invalid memory index"
    p.ok("AT+CMEE=0")
    assert p.cmd('AT+CPIN="1234"')[0] == "ERROR"
    assert p.cmd("AT+CMGR=99")[0] == "+CMS ERROR: 321"  # +CMS ERROR regardless of +CMEE


def test_600_byte_datagram_arrives_as_five_stored_parts(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--seed", "3")
    p = vm.port(v)
    init(p)
    data = bytes((i * 7 + 3) % 256 for i in range(600))
    c = udp_client()
    c.sendto(data, ("127.0.0.1", v.phones[PHONE_A]))
    urcs = [p.wait_urc("+CMTI:")[0] for _ in range(5)]
    assert urcs == [f'+CMTI: "SM",{i}' for i in range(1, 6)]
    sms_in = v.wait_for("sms-in", msisdn=PHONE_A)
    assert (sms_in["bytes"], sms_in["parts"]) == (600, 5)
    stored = [v.wait_for("stored") for _ in range(5)]
    assert [e["index"] for e in stored] == [1, 2, 3, 4, 5]
    assert p.ok("AT+CPMS?") == ['+CPMS: "SM",5,20,"SM",5,20,"SM",5,20']
    msgs = p.cmgl(4)
    assert sorted(msgs) == [1, 2, 3, 4, 5]
    parts = {}
    for idx, (stat, length, pdu) in msgs.items():
        assert stat == 0                      # REC UNREAD when first listed
        d = decode_deliver(pdu)
        assert d["tpdu_len"] == length
        assert (d["oa"], d["toa"], d["pid"], d["dcs"]) == (PHONE_A, 0x91, 0, 0x04)
        ref, total, seq = d["concat"]
        assert (ref, total) == (sms_in["ref"], 5)
        parts[seq] = d["payload"]
    assert [len(parts[i]) for i in range(1, 6)] == [134, 134, 134, 134, 64]
    assert b"".join(parts[i] for i in range(1, 6)) == data
    assert p.cmgl(0) == {}                    # listing marked them REC READ
    assert set(p.cmgl(1)) == {1, 2, 3, 4, 5}
    assert p.ok("AT+CMGR=2")[0] == f"+CMGR: 1,,{msgs[2][1]}"
    p.ok("AT+CMGD=1")
    p.ok("AT+CMGD=2,0")
    assert v.wait_for("deleted", index=1)["mem"] == "SM"
    assert p.ok("AT+CMGD=?") == ["+CMGD: (3,4,5),(0-4)"]
    p.ok("AT+CMGD=1,4")                       # delete all
    assert p.cmgl(4) == {}
    assert p.ok("AT+CPMS?") == ['+CPMS: "SM",0,20,"SM",0,20,"SM",0,20']
    assert p.ok("AT+CMGR=1") == []            # empty slot: OK without a message
    assert p.cmd("AT+CMGD=21")[0] == "+CMS ERROR: 321"
    assert p.cmd('AT+CMGL="ALL"')[0] == "+CMS ERROR: 304"  # text-mode argument


def test_single_submits_reach_the_udp_client(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--phone", f"{PHONE_B}=0", "--msisdn", OWN)
    p = vm.port(v)
    init(p)
    a, b = udp_client(), udp_client()
    a.sendto(b"hi", ("127.0.0.1", v.phones[PHONE_A]))   # the client's address becomes known
    b.sendto(b"yo", ("127.0.0.1", v.phones[PHONE_B]))
    p.wait_urc("+CMTI:")
    p.wait_urc("+CMTI:")
    # TS 23.040 9.2.2.2: SCA 00, SUBMIT, MR 0, DA 14155550125 (international), PID 0,
    # DCS 04 (8-bit), UDL 5, "hello"
    final, info = p.cmgs("00" + "01000B914151550521F500040568656C6C6F")
    assert (final, info) == ("OK", ["+CMGS: 0"])
    assert p.prompt == b"> "
    assert a.recvfrom(1000) == (b"hello", ("127.0.0.1", v.phones[PHONE_A]))
    out = v.wait_for("sms-out", msisdn=PHONE_A)
    assert (out["parts"], out["bytes"], out["to"]) == (1, 5, f"127.0.0.1:{a.getsockname()[1]}")
    # 7-bit "hellohello" with a relative validity period
    final, info = p.cmgs("0011000B916407281553F80000AA0AE8329BFD4697D9EC37")
    assert (final, info) == ("OK", ["+CMGS: 1"])
    assert b.recvfrom(1000)[0] == b"hellohello"
    # to a number no phone has: accepted by the network, reported and dropped
    final, info = p.cmgs("00" + "01000B915155555555F500040568656C6C6F")
    assert (final, info) == ("OK", ["+CMGS: 2"])
    assert v.wait_for("dropped", why="unknown-number")["msisdn"] == "15555555555"
    # <length> that does not match the TPDU, and a PDU that is not hex
    assert p.cmgs("00" + "01000B914151550521F500040568656C6C6F", length=17)[0] == \
        "+CMS ERROR: 304"
    assert p.cmgs("00ZZ", length=1)[0] == "+CMS ERROR: 304"
    # ESC cancels: nothing is sent
    p.write(b"AT+CMGS=18\r")
    time.sleep(0.2)
    p.write(b"0001000B91\x1b")
    assert p.result("AT+CMGS=18")[0] == "OK"
    v.barrier()
    assert len(v.all("submit")) == 3
    a.settimeout(0.3)
    with pytest.raises(socket.timeout):
        a.recvfrom(1000)


def test_concatenated_submit_comes_out_as_one_datagram(vm):
    v = vm("--phone", f"{PHONE_A}=0")
    p = vm.port(v)
    init(p)
    a = udp_client()
    a.sendto(b"register", ("127.0.0.1", v.phones[PHONE_A]))
    p.wait_urc("+CMTI:")
    # UDHI set, UDH 05 00 03 2A 02 0n (8-bit reference 0x2A, 2 parts)
    assert p.cmgs("00" + "41000B914151550521F500040D0500032A020148656C6C6F2C20")[0] == "OK"
    assert p.cmgs("00" + "41000B914151550521F500040B0500032A0202776F726C64")[0] == "OK"
    assert a.recvfrom(1000)[0] == b"Hello, world"
    # UDH 06 08 04 12 34 03 0n (16-bit reference 0x1234, 3 parts), sent last part first
    for seq, text in ((3, "676869"), (1, "616263"), (2, "646566")):
        hexpdu = f"0041000B914151550521F500040A060804123403{seq:02X}{text}"
        assert p.cmgs(hexpdu)[0] == "OK"
    assert a.recvfrom(1000)[0] == b"abcdefghi"
    v.barrier()
    outs = v.all("sms-out")
    assert [(e["parts"], e["bytes"]) for e in outs] == [(2, 12), (3, 9)]
    assert [e["ref_bits"] for e in v.all("submit")] == [8, 8, 16, 16, 16]
    a.settimeout(0.3)
    with pytest.raises(socket.timeout):
        a.recvfrom(1000)


def test_full_storage_queues_in_the_network_and_loses_nothing(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--storage-slots", "10")
    p = vm.port(v)
    init(p)
    c = udp_client()
    sent = [f"burst-{i:02d}".encode() for i in range(50)]
    for d in sent:
        c.sendto(d, ("127.0.0.1", v.phones[PHONE_A]))
    full = v.wait_for("storage-full")
    assert (full["mem"], full["slots"]) == ("SM", 10)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 50:
        assert time.monotonic() < deadline, f"only {len(got)} of 50 arrived"
        used = int(p.ok("AT+CPMS?")[0].split(",")[1])
        assert used <= 10
        for idx, (_, _, pdu) in sorted(p.cmgl(4).items()):
            got.append(decode_deliver(pdu)["payload"])
            p.ok(f"AT+CMGD={idx}")   # delete only after "handling", as the gateway does
        time.sleep(0.05)
    assert sorted(got) == sorted(sent)
    v.barrier()
    level, peak = 0, 0
    for e in v.seen:
        if e["event"] == "stored":
            level += 1
        elif e["event"] == "deleted":
            level -= 1
        peak = max(peak, level)
    assert peak == 10 and len(v.all("stored")) == 50
    assert not v.all("dropped")


# ---------------------------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------------------------
def test_loss_drops_parts_visibly(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--loss", "0.5", "--seed", "7")
    p = vm.port(v)
    init(p, cnmi="2,0,0,0,0")
    c = udp_client()
    for _ in range(4):
        c.sendto(bytes(600), ("127.0.0.1", v.phones[PHONE_A]))
    for _ in range(4):
        v.wait_for("sms-in")
    stored = p.cmgl(4)
    v.barrier()
    dropped = v.all("dropped", why="loss")
    assert 0 < len(dropped) < 20
    assert all({"ref", "seq", "total"} <= set(e) for e in dropped)
    assert len(stored) == 20 - len(dropped) == len(v.all("stored"))


def test_duplicate_delivers_parts_twice(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--duplicate", "1.0")
    p = vm.port(v)
    init(p, cnmi="2,0,0,0,0")
    udp_client().sendto(bytes(300), ("127.0.0.1", v.phones[PHONE_A]))
    for _ in range(6):
        v.wait_for("stored")
    assert len(v.all("duplicated")) == 3
    seqs = sorted(decode_deliver(pdu)["concat"][2] for _, _, pdu in p.cmgl(4).values())
    assert seqs == [1, 1, 2, 2, 3, 3]


def test_reorder_shuffles_parts(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--reorder", "--seed", "5")
    p = vm.port(v)
    init(p, cnmi="2,0,0,0,0")
    data = os.urandom(600)
    udp_client().sendto(data, ("127.0.0.1", v.phones[PHONE_A]))
    order = v.wait_for("reordered")["order"]
    assert sorted(order) == [1, 2, 3, 4, 5] and order != [1, 2, 3, 4, 5]
    stored = [v.wait_for("stored") for _ in range(5)]
    assert [e["seq"] for e in stored] == order
    msgs = p.cmgl(4)
    parts = {decode_deliver(pdu)["concat"][2]: decode_deliver(pdu)["payload"]
             for _, _, pdu in msgs.values()}
    assert [decode_deliver(msgs[i][2])["concat"][2] for i in sorted(msgs)] == order
    assert b"".join(parts[i] for i in range(1, 6)) == data


def test_delay_holds_sms_in_the_network(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--delay", "1000")
    p = vm.port(v)
    init(p)
    udp_client().sendto(bytes(300), ("127.0.0.1", v.phones[PHONE_A]))
    v.wait_for("sms-in")
    st = v.status()
    assert st["queued"] == 3 and st["stored"]["SM"] == 0
    for _ in range(3):
        p.wait_urc("+CMTI:")
    assert v.status()["stored"]["SM"] == 3


# ---------------------------------------------------------------------------------------------
# Unplug / replug, +CMT, indication buffering, stdin commands
# ---------------------------------------------------------------------------------------------
def test_unplug_replug_recreates_the_link_and_keeps_the_sim(vm):
    v = vm("--phone", f"{PHONE_A}=0")
    p = vm.port(v)
    init(p)
    c = udp_client()
    c.sendto(b"before", ("127.0.0.1", v.phones[PHONE_A]))
    p.wait_urc("+CMTI:")
    old_target = os.readlink(v.link)
    v.proc.send_signal(signal.SIGUSR1)
    v.wait_for("unplugged")
    assert not os.path.lexists(v.link)
    with pytest.raises(OSError):              # the host sees EIO (hang-up) on its old fd
        for _ in range(10):
            select.select([p.fd], [], [], 1)
            if os.read(p.fd, 100) == b"":
                raise OSError("EOF")
    c.sendto(b"while unplugged", ("127.0.0.1", v.phones[PHONE_A]))
    v.wait_for("sms-in")
    assert v.status()["queued"] == 1
    v.proc.send_signal(signal.SIGUSR2)
    e = v.wait_for("replugged")
    assert os.readlink(v.link) == e["pty"]
    p2 = vm.port(v)
    p2.ok("AT")
    assert p2.echoed == ["AT"]                # a power cycle: echo back to its default
    p2.ok("ATE0")
    payloads = [decode_deliver(pdu)["payload"] for _, _, pdu in p2.cmgl(4).values()]
    assert payloads == [b"before", b"while unplugged"]   # stored SMS survived on the SIM
    # the same through stdin commands
    v.send("unplug")
    v.wait_for("unplugged")
    assert not os.path.lexists(v.link)
    v.send("replug")
    v.wait_for("replugged")
    assert os.path.islink(v.link)
    p3 = vm.port(v)
    p3.ok("AT")
    assert old_target.startswith("/dev/pts/")


def test_cmt_direct_delivery_waits_for_cnma(vm):
    v = vm("--phone", f"{PHONE_A}=0", "--cnma-timeout", "2.5")
    p = vm.port(v)
    init(p, cnmi="2,2,0,0,0")
    assert p.cmd("AT+CNMA")[0] == "+CMS ERROR: 340"   # nothing to acknowledge
    data = os.urandom(300)
    c = udp_client()
    c.sendto(data, ("127.0.0.1", v.phones[PHONE_A]))
    got = {}
    for i in range(3):
        line, pdu = p.wait_urc("+CMT:")
        d = decode_deliver(pdu)
        assert line == f"+CMT: ,{d['tpdu_len']}"
        got[d["concat"][2]] = d["payload"]
        assert p.settle(0.2) == [] and not p.urcs   # the next waits for the acknowledgement
        p.ok("AT+CNMA")
    assert b"".join(got[i] for i in (1, 2, 3)) == data
    v.barrier()
    assert len(v.all("acked")) == 3 and not v.all("stored")
    # no acknowledgement: +CNMI <mt> falls back to 0 and the SMSC stores it on its next try
    c.sendto(b"unacked", ("127.0.0.1", v.phones[PHONE_A]))
    p.wait_urc("+CMT:")
    v.wait_for("cnma-timeout")
    v.wait_for("stored")
    assert p.ok("AT+CNMI?") == ["+CNMI: 2,0,0,0,0"]
    assert [decode_deliver(m[2])["payload"] for m in p.cmgl(4).values()] == [b"unacked"]


def test_cnmi_mode_0_buffers_indications(vm):
    v = vm("--phone", f"{PHONE_A}=0")
    p = vm.port(v)
    init(p, cnmi="0,1,0,0,0")
    udp_client().sendto(b"x", ("127.0.0.1", v.phones[PHONE_A]))
    v.wait_for("stored")
    assert p.settle(0.3) == [] and p.urcs == []
    p.ok("AT+CNMI=1,1,0,0,0")                 # <bfr> 0 flushes the buffer
    assert p.wait_urc("+CMTI:")[0] == '+CMTI: "SM",1'


def test_stdin_inject_status_trace_and_preset_client(vm):
    c = udp_client()
    v = vm("--phone", f"{PHONE_A}=0,127.0.0.1:{c.getsockname()[1]}", "--trace")
    p = vm.port(v)
    init(p)
    v.send("inject 33612345678 48656C6C6F")
    assert p.wait_urc("+CMTI:")[0] == '+CMTI: "SM",1'
    d = decode_deliver(p.cmgl(4)[1][2])
    assert (d["oa"], d["payload"]) == ("33612345678", b"Hello")
    st = v.status()
    assert (st["stored"], st["queued"], st["plugged"]) == ({"SM": 1, "ME": 0}, 0, True)
    assert [e["line"] for e in v.all("at")][:3] == ["AT", "ATE0", "AT+CMEE=1"]
    # the client address given with --phone receives SMS before it ever sent a datagram
    assert p.cmgs("00" + "01000B914151550521F500040568656C6C6F")[0] == "OK"
    assert c.recvfrom(100)[0] == b"hello"
    # the host may close and reopen the port: the modem keeps its state
    p.close()
    p2 = vm.port(v)
    assert p2.ok("AT+CMGR=1")[0] == "+CMGR: 1,,24"


# ---------------------------------------------------------------------------------------------
# Personalities
# ---------------------------------------------------------------------------------------------
def test_huawei_bare_prompt_noise_and_cnmi_fallback(vm):
    v = vm("--personality", "huawei", "--phone", f"{PHONE_A}=0", "--noise-interval", "60",
           "--seed", "2")
    p = vm.port(v)
    p.ok("AT")
    assert p.echoed == []                      # huawei: echo off by default
    p.ok("AT+CMEE=1")
    p.ok("AT+CMGF=0")
    assert p.cmd('AT+CPMS="ME","ME","ME"')[0] == "+CMS ERROR: 302"
    assert p.ok("AT+CPMS=?") == ['+CPMS: ("SM"),("SM"),("SM")']
    assert p.ok('AT+CPMS="SM","SM","SM"') == ["+CPMS: 0,10,0,10,0,10"]
    chain = ["2,2,0,0,0", "2,1,0,0,0", "1,1,0,0,0"]
    results = [p.cmd(f"AT+CNMI={m}")[0] for m in chain]
    assert results == ["+CMS ERROR: 303", "+CMS ERROR: 303", "OK"]
    p.wait_urc("^RSSI:", timeout=5)
    p.settle(0.3)
    noise = {line.split(":")[0] for line, _ in p.urcs}
    assert noise <= {"^RSSI", "^BOOT", "^MODE"}
    p.urcs.clear()
    c = udp_client()
    c.sendto(b"ping", ("127.0.0.1", v.phones[PHONE_A]))
    assert p.wait_urc("+CMTI:")[0] == '+CMTI: "SM",0'   # huawei indexes from 0
    assert decode_deliver(p.cmgl(4)[0][2])["payload"] == b"ping"
    final, info = p.cmgs("00" + "01000B914151550521F500040568656C6C6F")
    assert (final, info, p.prompt) == ("OK", ["+CMGS: 0"], b">")
    assert c.recvfrom(100)[0] == b"hello"
    assert p.ok("AT^ICCID?") == ["^ICCID: 98000121103214325476"]
    assert p.cmd("AT+CCID")[0] == "ERROR"
    for _ in range(20):                        # replies stay whole between noise lines
        assert p.ok("AT+CSQ") == ["+CSQ: 20,99"]


def test_quectel_me_storage_and_sms_done(vm):
    v = vm("--personality", "quectel", "--phone", f"{PHONE_A}=0", "--pin", "1234",
           "--noise-interval", "0", "--sim-busy-ms", "200")
    p = vm.port(v)
    p.ok("ATE0")
    p.ok("AT+CMEE=1")
    p.ok('AT+CPIN="1234"')
    assert p.wait_urc("+QIND:")[0] == "+QIND: SMS DONE"
    assert p.ok("AT+CNMI?") == ["+CNMI: 2,1,0,0,0"]
    assert p.cmd("AT+CNMI=3,1,0,0,0")[0] == "+CMS ERROR: 303"
    assert p.ok("AT+CPMS?") == ['+CPMS: "ME",0,50,"ME",0,50,"ME",0,50']
    assert p.ok("AT+QCCID") == ["+QCCID: 89001012012341234567"]
    udp_client().sendto(b"q", ("127.0.0.1", v.phones[PHONE_A]))
    assert p.wait_urc("+CMTI:")[0] == '+CMTI: "ME",0'


def test_simcom_defaults(vm):
    v = vm("--personality", "simcom", "--phone", f"{PHONE_A}=0")
    p = vm.port(v)
    hexpdu = "00" + "01000B914151550521F500040568656C6C6F"
    assert p.cmgs(hexpdu) == ("OK", ["+CMGS: 0"])
    assert p.echoed == ["AT+CMGS=18", hexpdu]   # with echo on, the PDU is echoed too
    p.ok("ATE0")
    assert p.ok("AT+CCID") == ["89001012012341234567"]
    assert p.cmd("AT+CNMI=2,3,0,0,0")[0] == "+CMS ERROR: 303"
    assert p.ok("AT+CPMS?") == ['+CPMS: "SM",0,30,"SM",0,30,"SM",0,30']
    udp_client().sendto(b"s", ("127.0.0.1", v.phones[PHONE_A]))
    assert p.wait_urc("+CMTI:")[0] == '+CMTI: "SM",1'   # default +CNMI 1,1,...
