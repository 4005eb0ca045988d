"""LoRaWAN benchmark: what LwM2M over LoRaWAN costs through the gateway.

lwm2m-test-server <- CoAP/UDP -> tap <- CoAP/UDP -> lwm2m-gw <- MQTT -> mosquitto <- MQTT ->
scripts/vlns <- UDP -> lwm2m-test-device (one per end device)

The tap is a UDP relay in this process between the gateway's upstream sessions and the server:
it records every datagram with its time, and can add an upstream round-trip time. Prints:

1. per LwM2M operation (Register, Update, Send, Read, Write, Execute, Observe, Notify, Cancel,
   De-register), for a class C and a class A end device: the LoRaWAN frames up and down and
   their bytes as vlns saw them (`uplink`, `downlink_delivered`), next to the minimum: one frame
   each way carrying the request as its sender sent it and the answer as its sender sent it
   (the device's datagrams from vlns, the server's from the tap), i.e. a direct exchange;
2. for device-originated requests (Send, Update) on a class A end device: how often the
   gateway's answer went out in the RX window of the request's own uplink (vlns models
   ChirpStack's 100 ms get_downlink_data_delay), for each upstream RTT the tap adds, with the
   time from the uplink to the answer's enqueueing at the network server and the gateway's
   shares of it;
3. the gateway's CPU (utime + stime from /proc/PID/stat, and schedstat) per frame and per
   operation over N operations on a class C end device;
4. a last line `BENCH-LORAWAN key=value ...` for scripts.

A benchmark, not a test: it never judges the figures. It exits non-zero only when the setup is
broken (a peer does not start, a device does not register, nothing gets through).
Run it with scripts/bench-lorawan; see bench/README.md, "LoRaWAN benchmark".
"""
import argparse
import heapq
import json
import math
import os
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
from lwm2m_peers import (Device, Gateway, Mosquitto, TestServer, Vlns,  # noqa: E402
                         lorawan_device)

EUI_C = "70B3D57ED0000C01"
EUI_A = "70B3D57ED0000A01"
OBJECTS = "</1/0>,</3/0>"  # devices.objects: what the devices leave out of their Register
# SenML-CBOR [{0 (n): "/3/0/9", 2 (v): 100000}], 16 bytes, the MQTT benchmark's Send
SEND_HEX = "81a200662f332f302f39021a000186a0"
QUIET_S = 0.25          # an operation is over when vlns and the tap were silent this long
WAKE_AFTER_S = 0.3      # class A: a missed answer gets a wake-up uplink after this long
DATA_DELAY_MS = 100     # vlns' default --downlink-data-delay: ChirpStack get_downlink_data_delay
DEFAULT_RTTS = "0,90,95,100"
QUICK = dict(operations=20, rtt="0,150")


def cpu_ticks(pid):
    """(utime, stime) of the process, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()  # rest[0] is field 3 (state)
    return int(rest[11]), int(rest[12])


def thread_ns(pid):
    """{thread name: ns on CPU} from /proc/PID/task/*/{comm,schedstat}, or None."""
    threads = {}
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                threads[name] = threads.get(name, 0) + int(f.read().split()[0])
    except OSError:
        return None
    return threads


def cpu_ns(pid):
    """Time on CPU in ns from /proc/PID/task/*/schedstat (finer than ticks), or None."""
    threads = thread_ns(pid)
    return None if threads is None else sum(threads.values())


def percentile(values, p):
    """Nearest-rank percentile, or None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(p / 100.0 * len(s)))) - 1]


def ms(value):
    return "-" if value is None else f"{value:.1f}"


def figure(value):
    """A figure of the BENCH line: -1 when it was not measured."""
    return "-1" if value is None else f"{value:.1f}"


# ----------------------------------------------------------------------------------- CoAP

class Coap:
    """The header of one CoAP message (RFC 7252 3), read here, not with the gateway's codec."""

    def __init__(self, data):
        self.len = len(data)
        self.type = data[0] >> 4 & 3            # 0 CON, 1 NON, 2 ACK, 3 RST
        self.tkl = data[0] & 0x0F
        self.code = data[1]
        self.mid = data[2] << 8 | data[3]
        self.token = data[4:4 + self.tkl]

    @property
    def is_request(self):
        return 1 <= self.code < 32

    @property
    def is_response(self):
        return self.code >= 64

    @property
    def is_empty_con(self):
        return self.code == 0 and self.type == 0


# ------------------------------------------------------------------------------------ tap

class UpstreamTap(threading.Thread):
    """A UDP relay between the gateway and the LwM2M server, one socket toward the server per
    gateway session (so the server still sees one peer per device). It keeps every datagram
    in `log` as (time, direction, bytes): "up" (gateway -> server) stamped when the gateway
    sent it, "down" (server -> gateway) when it is passed on to the gateway. `half_rtt` (s)
    delays each datagram, both ways: an upstream server that far away."""

    def __init__(self, server_port):
        super().__init__(daemon=True)
        self.server = ("127.0.0.1", server_port)
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind(("127.0.0.1", 0))
        self.port = self.listen.getsockname()[1]
        self.sessions = {}    # gateway address -> socket toward the server
        self.gateway_of = {}  # that socket -> gateway address
        self.half_rtt = 0.0
        self.log = []
        self.due = []         # (time, seq, socket, data, address, direction)
        self.seq = 0
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listen, selectors.EVENT_READ)
        self.wake_r, self.wake_w = socket.socketpair()
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def stop(self):
        self.stopping = True
        self.wake_w.send(b"x")
        self.join(timeout=2)

    def _later(self, when, sock, data, addr, direction):
        self.seq += 1
        heapq.heappush(self.due, (when, self.seq, sock, data, addr, direction))

    def run(self):
        while not self.stopping:
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                _, _, sock, data, addr, direction = heapq.heappop(self.due)
                if direction == "down":
                    self.log.append((time.monotonic(), "down", data))
                sock.sendto(data, addr)
            timeout = max(0.0, self.due[0][0] - now) if self.due else None
            for key, _ in self.selector.select(timeout):
                sock = key.fileobj
                if sock is self.wake_r:
                    sock.recv(16)
                    continue
                try:
                    data, addr = sock.recvfrom(2048)
                except OSError:
                    continue
                now = time.monotonic()
                if sock is self.listen:
                    up = self.sessions.get(addr)
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        self.sessions[addr] = up
                        self.gateway_of[up] = addr
                        self.selector.register(up, selectors.EVENT_READ)
                    self.log.append((now, "up", data))
                    self._later(now + self.half_rtt, up, data, self.server, "up")
                else:
                    self._later(now + self.half_rtt, self.listen, data, self.gateway_of[sock],
                                "down")


# ------------------------------------------------------------------------------- observer

class UplinkObserver:
    """A second application on the broker (paho, TCP_NODELAY) subscribed to the network
    server's uplink events only: when each uplink left the network server and crossed the
    broker, as the gateway would get it, to tell the broker's share of the time from the
    gateway's."""

    def __init__(self, broker_port, fmt, application):
        kw = dict(client_id=f"lorawan-bench-observer-{os.getpid()}", clean_session=True)
        if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2.x; Debian 12 has 1.6
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kw)
        else:
            self.client = mqtt.Client(**kw)
        self.fmt = fmt
        self.topic = (f"application/{application}/device/+/event/up" if fmt == "chirpstack"
                      else f"v3/{application}/devices/+/up")
        self.seen = {}  # (deveui lower-case, fcnt) -> time.monotonic()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(self.topic, 0)
        self.client.on_subscribe = lambda c, u, mid, granted: self.subscribed.set()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", broker_port, keepalive=60)
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the uplink observer could not subscribe")

    def on_message(self, client, userdata, message):
        t = time.monotonic()
        try:
            body = json.loads(message.payload)
            if self.fmt == "chirpstack":
                key = (body["deviceInfo"]["devEui"].lower(), int(body.get("fCnt", 0)))
            else:  # TTS leaves out fields of value 0 (f_cnt of the first uplink)
                key = (body["end_device_ids"]["dev_eui"].lower(),
                       int(body["uplink_message"].get("f_cnt", 0)))
        except (ValueError, KeyError, TypeError):
            return
        self.seen[key] = t

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


# ------------------------------------------------------------------------------ the bench

class Op:
    """One LwM2M operation played alone, and what it put on the air."""

    def __init__(self, name, origin):
        self.name, self.origin = name, origin  # origin: "device" or "server"
        self.ok, self.result, self.note = False, "", ""
        self.wall_ms = 0.0
        self.ups, self.downs, self.wakes = [], [], 0   # vlns events
        self.lost = []                                 # vlns events of frames lost, refused
        self.min_up = self.min_down = None             # bytes of the minimum's frames
        self.upstream_len = None                       # the request as the server got it


class Bench:
    def __init__(self, args):
        self.args = args
        self.logs = tempfile.mkdtemp(prefix="lwm2m-gw-lorawan-bench-")
        self.started = []
        self.tap = None
        self.next_id = 1
        self.observe_tkl = None

    # ---- peers ----
    def keep(self, peer):
        self.started.append(peer)
        return peer

    def start(self):
        fmt = self.args.format
        self.broker = self.keep(Mosquitto(self.logs))
        self.server = self.keep(TestServer(self.logs, quiet=True))
        self.tap = UpstreamTap(self.server.port)
        self.tap.start()
        self.vlns = self.keep(Vlns(self.logs, self.broker, fmt=fmt,
                                   devices=[f"{EUI_C}=0,class=C,dr=5",
                                            f"{EUI_A}=0,class=A,dr=5"]))
        self.observer = UplinkObserver(self.broker.port, fmt, self.vlns.application)
        lorawan = {"broker": self.broker.uri, "network_server": fmt,
                   "application_id": self.vlns.application,
                   "ports": [{"fport": 1, "upstream": "default"}]}
        if fmt == "tts":  # as test_lorawan_binding.py: TTS wants a user name and API key
            key_file = os.path.join(self.logs, "tts-api-key")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("NNSXS.VLNSBENCHKEY.NOTCHECKEDBYMOSQUITTO\n")
            lorawan.update(username=self.vlns.application, api_key_file=key_file, qos=0)
        self.gw = self.keep(Gateway(
            self.logs, f"coap://127.0.0.1:{self.tap.port}", lorawan=lorawan,
            devices=", ".join(lorawan_device(e, objects=OBJECTS) for e in (EUI_C, EUI_A)),
            log_level=self.args.log_level))

    def device(self, eui, name):
        """lwm2m-test-device as end device `eui`'s LwM2M client, registering with every
        parameter and the object list left out (Table 6.8.4-1), notifying only when told."""
        return self.keep(Device(self.logs, self.vlns.device_uri(eui), name,
                                extra=["--omit-params", "--no-objects", "--notify-ms",
                                       "3600000"]))

    def stop(self):
        rc = None
        for p in reversed(self.started):
            code = p.stop()
            if p is getattr(self, "gw", None):
                rc = code
        if self.tap:
            self.tap.stop()
        if getattr(self, "observer", None):
            self.observer.stop()
        return rc

    # ---- event bookkeeping ----
    def marks(self):
        return len(self.vlns.drain(0)), len(self.tap.log)

    def quiet(self, limit=10.0):
        """Waits until vlns and the tap have both been silent for QUIET_S."""
        deadline = time.monotonic() + limit
        last = self.marks()
        while time.monotonic() < deadline:
            self.vlns.drain(QUIET_S)
            now = self.marks()
            if now == last:
                return
            last = now

    def vlns_events(self, start, eui, names):
        eui = eui.lower()
        return [e for e in self.vlns.drain(0)[start:]
                if e.get("event") in names and e.get("deveui") == eui]

    def request(self, command, timeout=30):
        rid = self.next_id
        self.next_id += 1
        self.server.send(command.format(id=rid))
        return rid

    # ---- one operation, alone on the air ----
    def play(self, op, action, eui):
        self.quiet()
        v0, t0 = self.marks()
        started = time.monotonic()
        try:
            action(op)
        except AssertionError as e:  # Peer.wait_for: nothing within its timeout
            op.ok, op.note = False, str(e).splitlines()[0][:120]
        op.wall_ms = (time.monotonic() - started) * 1000
        self.quiet()
        v1, t1 = self.marks()
        events = self.vlns_events(v0, eui, ("uplink", "downlink_delivered", "wake_reply",
                                            "downlink_lost", "uplink_lost", "payload_too_large",
                                            "expired"))
        op.ups = [e for e in events if e["event"] == "uplink"]
        # A wake-up's RST is a frame on the air too, though vlns keeps it from the client.
        op.downs = [e for e in events if e["event"] in ("downlink_delivered", "wake_reply")]
        op.lost = [e for e in events
                   if e["event"] not in ("uplink", "downlink_delivered", "wake_reply")]
        op.wakes = sum(1 for e in op.ups if Coap(bytes.fromhex(e["hex"])).is_empty_con)
        self.minimum(op, self.tap.log[t0:t1])
        return op

    def minimum(self, op, tapped):
        """The minimum's bytes: the request as its sender sent it, the answer as its sender
        sent it, with the token of the request (a direct exchange has one token)."""
        dev = [(Coap(bytes.fromhex(e["hex"])), e) for e in op.ups]
        srv = [Coap(d) for _, direction, d in tapped if direction == "down"]
        if op.name == "Notify":
            notes = [c for c, _ in dev if c.is_response]
            if notes and self.observe_tkl is not None:
                op.min_up, op.min_down = notes[0].len - notes[0].tkl + self.observe_tkl, 0
            return
        if op.origin == "device":
            reqs = [c for c, _ in dev if c.is_request]
            answers = [c for c in srv if c.is_response]
            relayed = [Coap(d) for _, direction, d in tapped if direction == "up"]
            relayed = [c for c in relayed if c.is_request]
            if op.name == "Register" and relayed:  # completed by the gateway, off the air
                op.upstream_len = relayed[0].len
            if reqs and answers:
                op.min_up = reqs[0].len
                op.min_down = answers[0].len - answers[0].tkl + reqs[0].tkl
        else:
            reqs = [c for c in srv if c.is_request]
            answers = [c for c, _ in dev if c.is_response]
            if reqs and answers:
                op.min_down = reqs[0].len
                op.min_up = answers[0].len - answers[0].tkl + reqs[0].tkl
                if op.name == "Observe":
                    self.observe_tkl = reqs[0].tkl

    def server_op(self, eui, cls, name, command, code, response_id=None):
        """A server request (its response event has the command's id, or response_id: a
        cancel's is the observation's); class A: the device opens an RX window once the
        request waits at the network server (an Empty CON uplink, Appendix C)."""
        def action(op):
            v0 = len(self.vlns.drain(0))
            rid = self.request(command)
            rid = response_id or rid
            if cls == "A":
                deadline = time.monotonic() + 10
                while not self.vlns_events(v0, eui, ("downlink_enqueued",)):
                    if time.monotonic() > deadline:
                        raise AssertionError("the request never reached the network server")
                    self.vlns.drain(0.01)
                self.vlns.send(f"wake {eui.lower()}")
            r = self.server.wait_for("response", id=rid, timeout=30)
            op.result, op.ok = r["code"], r["code"] == code
        return Op(name, "server"), action

    def device_op(self, dev, name, command, event, code):
        def action(op):
            dev.send(command)
            r = dev.wait_for(event, timeout=30)
            op.result, op.ok = str(r.get("code")), r.get("code") == code
        return Op(name, "device"), action

    def operations(self, eui, cls):
        """The table's operations on one end device, each alone; returns the Ops."""
        ops = []
        name = f"bench-{cls.lower()}"

        def register(op):
            self.dev = self.device(eui, name)
            r = self.dev.wait_for("registered", timeout=30)
            op.result, op.ok = r["code"], r["code"] == "2.01"

        ops.append(self.play(Op("Register", "device"), register, eui))
        dev = self.dev
        for name_, cmd, ev, code in (("Update", "update", "updated", "2.04"),
                                     ("Send", f"send {SEND_HEX}", "sent", "2.04")):
            ops.append(self.play(*self.device_op(dev, name_, cmd, ev, code), eui))
        for name_, cmd, code in (("Read", "read {id} %s /3/0/0", "2.05"),
                                 ("Write", "write {id} %s /3/0/14 +01:00", "2.04"),
                                 ("Execute", "execute {id} %s /3/0/4", "2.04"),
                                 ("Observe", "observe {id} %s /3/0/13", "2.05")):
            op, action = self.server_op(eui, cls, name_, cmd % eui, code)
            if name_ == "Observe":
                self.observe_id = self.next_id
            ops.append(self.play(op, action, eui))

        def notify(op):
            dev.send("notify")
            n = self.server.wait_for("notify", id=self.observe_id, timeout=30)
            op.result, op.ok = n["code"], n["code"] == "2.05"

        ops.append(self.play(Op("Notify", "device"), notify, eui))
        op, action = self.server_op(eui, cls, "Cancel", f"cancel {self.observe_id}", "2.05",
                                    response_id=self.observe_id)
        ops.append(self.play(op, action, eui))
        ops.append(self.play(*self.device_op(dev, "De-register", "deregister", "deregistered",
                                             "2.02"), eui))
        dev.stop()
        return ops

    def print_ops(self, ops, cls):
        how = "downlinks at once" if cls == "C" else "an RX window after each uplink; the " \
            "device opens one with an Empty CON once a server request waits"
        print(f"\nLoRaWAN frames per LwM2M operation, class {cls} end device at DR 5 ({how}):")
        print(f"  {'operation':<12} {'result':<6} {'ms':>6} | {'up':>3} {'B':>4} {'down':>5} "
              f"{'B':>4} | {'min up':>6} {'B':>4} {'down':>5} {'B':>4} | extra frames, bytes")
        tot = dict(up=0, ub=0, down=0, db=0, mup=0, mub=0, mdown=0, mdb=0)
        for op in ops:
            ub, db = sum(e["len"] for e in op.ups), sum(e["len"] for e in op.downs)
            mup = 1 if op.min_up is not None else 0
            mdown = 1 if op.min_down else 0  # a NON notification has no answer
            mub, mdb = op.min_up or 0, op.min_down or 0
            known = op.min_up is not None and op.min_down is not None
            extra = (f"{len(op.ups) + len(op.downs) - mup - mdown:+d}, {ub + db - mub - mdb:+d}"
                     if known else "minimum not measured")
            notes = []
            if op.upstream_len:
                notes.append(f"the server got {op.upstream_len} B")
            if op.wakes:
                notes.append(f"{op.wakes} wake-up{'s' if op.wakes > 1 else ''}")
            if op.lost:
                notes.append(", ".join(e["event"] for e in op.lost))
            if not op.ok:
                notes.append(f"FAILED {op.note}")
            print(f"  {op.name:<12} {op.result:<6} {op.wall_ms:6.0f} | {len(op.ups):>3} {ub:>4} "
                  f"{len(op.downs):>5} {db:>4} | {mup:>6} {mub:>4} {mdown:>5} {mdb:>4} | "
                  f"{extra}{'  (' + '; '.join(notes) + ')' if notes else ''}")
            for k, v in (("up", len(op.ups)), ("ub", ub), ("down", len(op.downs)), ("db", db),
                         ("mup", mup), ("mub", mub), ("mdown", mdown), ("mdb", mdb)):
                tot[k] += v
        frames, minimum = tot["up"] + tot["down"], tot["mup"] + tot["mdown"]
        nbytes, min_bytes = tot["ub"] + tot["db"], tot["mub"] + tot["mdb"]
        print(f"  {'all':<12} {'':<6} {'':>6} | {tot['up']:>3} {tot['ub']:>4} {tot['down']:>5} "
              f"{tot['db']:>4} | {tot['mup']:>6} {tot['mub']:>4} {tot['mdown']:>5} "
              f"{tot['mdb']:>4} | {frames - minimum:+d}, {nbytes - min_bytes:+d}")
        return frames, minimum, nbytes, min_bytes

    # ---- class A: the answer in the request's RX window ----
    def window_run(self, rtt_ms, n):
        """n device-originated requests (Send and Update in turn) on the class A device, one
        at a time, with the tap adding rtt_ms upstream. A request whose answer did not come
        in its own window gets a wake-up uplink WAKE_AFTER_S later, and more every
        WAKE_AFTER_S, until the device has it."""
        self.tap.half_rtt = rtt_ms / 2000.0
        eui = EUI_A.lower()
        rows = []
        self.quiet()
        for i in range(n):
            cmd, event = (f"send {SEND_HEX}", "sent") if i % 2 == 0 else ("update", "updated")
            time.sleep(self.args.pause / 1000.0)
            v0, t0 = self.marks()
            self.dev.send(cmd)
            wakes, got = 0, None
            deadline = time.monotonic() + 20
            while got is None and time.monotonic() < deadline:
                try:
                    got = self.dev.wait_for(event, timeout=WAKE_AFTER_S)
                except AssertionError:
                    self.vlns.send(f"wake {eui}")
                    wakes += 1
            # Nothing follows the answer's delivery in a good exchange: no silence to wait for.
            settle = time.monotonic() + 2
            while not self.vlns_events(v0, eui, ("downlink_delivered",)) and \
                    time.monotonic() < settle:
                self.vlns.drain(0.005)
            if got is None:
                self.quiet()
            rows.append(self.classify(v0, t0, got, wakes))
        self.tap.half_rtt = 0.0
        return rows

    def classify(self, v0, t0, got, wakes):
        """From vlns' events (in the order it printed them) and the tap's log: did the answer
        go out in the RX window of the request's uplink, and when did it get where."""
        row = {"ok": got is not None and got.get("code") in ("2.04",), "made": False,
               "wakes": wakes, "up_to_enq": None, "broker": None, "gw_in": None,
               "gw_out": None,
               "frames_up": 0, "frames_down": 0}
        eui = EUI_A.lower()
        events = [e for e in self.vlns.drain(0)[v0:] if e.get("deveui") == eui]
        row["frames_up"] = sum(1 for e in events if e["event"] == "uplink")
        row["frames_down"] = sum(1 for e in events if e["event"] == "downlink_delivered")
        request = next((e for e in events if e["event"] == "uplink"
                        and Coap(bytes.fromhex(e["hex"])).is_request), None)
        if request is None:
            return row
        mid = Coap(bytes.fromhex(request["hex"])).mid
        answer = next((e for e in events if e["event"] == "downlink_delivered"
                       and Coap(bytes.fromhex(e["hex"])).mid == mid), None)
        if answer is None:
            return row
        sent_event = "txack" if self.args.format == "chirpstack" else "sent"
        i_up = next(i for i, e in enumerate(events) if e is request)
        i_sent = next((i for i, e in enumerate(events)
                       if e["event"] == sent_event and e["id"] == answer["id"]), None)
        if i_sent is not None:
            row["made"] = not any(e["event"] == "uplink" for e in events[i_up + 1:i_sent])
        enq = next((e for e in events if e["event"] == "downlink_enqueued"
                    and e["id"] == answer["id"]), None)
        tapped = self.tap.log[t0:]
        req_out = next((t for t, d, data in tapped if d == "up" and Coap(data).is_request),
                       None)
        ans_in = next((t for t, d, data in tapped if d == "down" and Coap(data).is_response),
                      None)
        if enq:
            row["up_to_enq"] = (enq["_t"] - request["_t"]) * 1000
            if ans_in is not None:
                row["gw_out"] = (enq["_t"] - ans_in) * 1000
        observed = self.observer.seen.get((eui, request["fcnt"]))
        if observed is not None:
            row["broker"] = (observed - request["_t"]) * 1000
        if req_out is not None and observed is not None:
            row["gw_in"] = (req_out - observed) * 1000
        return row

    def print_window(self, rtt_ms, rows):
        n = len(rows)
        made = sum(1 for r in rows if r["made"])
        failed = sum(1 for r in rows if not r["ok"])
        pct = 100.0 * made / n if n else -1

        def stat(key):
            vals = [r[key] for r in rows if r[key] is not None]
            return percentile(vals, 50), percentile(vals, 99)
        up50, up99 = stat("up_to_enq")
        br50, br99 = stat("broker")
        in50, in99 = stat("gw_in")
        out50, out99 = stat("gw_out")
        fu = sum(r["frames_up"] for r in rows) / n if n else -1
        fd = sum(r["frames_down"] for r in rows) / n if n else -1
        print(f"  {rtt_ms:>6} {n:>5} {made:>5} {pct:>6.1f}% | {ms(up50):>6} {ms(up99):>6} | "
              f"{ms(br50):>5} {ms(br99):>5} | "
              f"{ms(in50):>5} {ms(in99):>5} | {ms(out50):>5} {ms(out99):>5} | {fu:>5.2f} "
              f"{fd:>5.2f}{'  ' + str(failed) + ' FAILED' if failed else ''}", flush=True)
        return dict(pct=pct, up50=up50, br50=br50, out50=out50, out99=out99, in50=in50,
                    failed=failed)

    # ---- CPU ----
    def cpu_run(self, n):
        """n operations on the class C device, Send and Read in turn, one at a time."""
        pid = self.gw.peer.proc.pid
        eui = EUI_C.lower()
        self.quiet()
        v0, _ = self.marks()
        m0 = self.gw.metrics()
        ticks0, ns0, th0, w0 = cpu_ticks(pid), cpu_ns(pid), thread_ns(pid), time.monotonic()
        failed = 0
        for i in range(n):
            try:
                if i % 2 == 0:
                    self.dev.send(f"send {SEND_HEX}")
                    failed += self.dev.wait_for("sent", timeout=10).get("code") != "2.04"
                else:
                    rid = self.request(f"read {{id}} {EUI_C} /3/0/0")
                    r = self.server.wait_for("response", id=rid, timeout=10)
                    failed += r["code"] != "2.05"
            except AssertionError:
                failed += 1
        self.quiet()
        ticks1, ns1, th1, w1 = cpu_ticks(pid), cpu_ns(pid), thread_ns(pid), time.monotonic()
        threads = {name: ns - (th0 or {}).get(name, 0) for name, ns in (th1 or {}).items()}
        m1 = self.gw.metrics()
        events = self.vlns_events(v0, eui, ("uplink", "downlink_delivered", "downlink_enqueued",
                                            "txack", "sent"))
        count = {name: sum(1 for e in events if e["event"] == name)
                 for name in ("uplink", "downlink_delivered", "downlink_enqueued")}
        # What vlns published to the gateway: each uplink, each txack / down/sent, and with
        # TTS a down/queued per downlink; what the gateway published: each downlink command.
        mqtt_in = count["uplink"] + sum(1 for e in events if e["event"] in ("txack", "sent"))
        if self.args.format == "tts":
            mqtt_in += count["downlink_enqueued"]
        d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
        return dict(n=n, failed=failed, frames=count["uplink"] + count["downlink_delivered"],
                    mqtt_in=mqtt_in, mqtt_out=count["downlink_enqueued"],
                    utime=ticks1[0] - ticks0[0], stime=ticks1[1] - ticks0[1],
                    ticks=sum(ticks1) - sum(ticks0),
                    ns=None if ns0 is None or ns1 is None else ns1 - ns0, seconds=w1 - w0,
                    threads=threads, d=d)

    # ---- the run ----
    def main(self):
        args = self.args
        rtts = [int(x) for x in args.rtt.split(",") if x.strip() != ""]
        print(f"LoRaWAN benchmark: vlns as {args.format} (get_downlink_data_delay "
              f"{DATA_DELAY_MS} ms), {args.operations} operations, upstream RTTs "
              f"{', '.join(str(r) for r in rtts)} ms, gateway log level {args.log_level}, "
              f"{os.cpu_count()} CPUs; logs in {self.logs}", flush=True)
        self.start()
        tables = {}
        for eui, cls in ((EUI_C, "C"), (EUI_A, "A")):
            ops = self.operations(eui, cls)
            tables[cls] = (ops, self.print_ops(ops, cls))
        if not any(op.ok for op in tables["C"][0] + tables["A"][0]):
            raise RuntimeError("no operation got through")

        print(f"\nclass A: the answer to a device's request (Send, Update in turn) in the RX "
              f"window of the request's own uplink, {args.operations} requests per upstream "
              f"RTT;\nthe window is read {DATA_DELAY_MS} ms after the uplink; times in ms from "
              f"the bench's clock (p50 p99):")
        print(f"  {'RTT ms':>6} {'reqs':>5} {'made':>5} {'made %':>7} | {'uplink->enq':>13} | "
              f"{'NS->broker':>11} | {'gw in':>11} | {'gw out':>11} | {'up/req':>5} "
              f"{'dn/req':>5}")
        self.dev = self.device(EUI_A, "bench-a-window")
        self.dev.wait_for("registered", timeout=30)
        windows = {}
        for rtt in rtts:
            windows[rtt] = self.print_window(rtt, self.window_run(rtt, args.operations))
        self.dev.stop()

        self.dev = self.device(EUI_C, "bench-c-cpu")
        self.dev.wait_for("registered", timeout=30)
        cpu = self.cpu_run(args.operations)
        self.dev.stop()
        return self.report(tables, windows, rtts, cpu)

    def report(self, tables, windows, rtts, cpu):
        hz = os.sysconf("SC_CLK_TCK")
        d = cpu["d"]
        cpu_s = cpu["ticks"] / hz
        frames, n = cpu["frames"], cpu["n"]
        mqtt_in, mqtt_out = cpu["mqtt_in"], cpu["mqtt_out"]
        us_frame = cpu_s * 1e6 / frames if frames else -1
        us_op = cpu_s * 1e6 / n if n else -1
        print(f"\ngateway CPU over {n} operations on the class C device (Send and Read in turn, "
              f"one at a time, {cpu['seconds']:.1f} s, {cpu['failed']} failed): "
              f"{cpu['ticks']} ticks = {cpu_s * 1000:.0f} ms (utime {cpu['utime']} + stime "
              f"{cpu['stime']}, {hz} ticks/s)")
        print(f"  LoRaWAN frames: {frames} (vlns; the gateway counted "
              f"{d.get('lorawan_uplinks_total', 0)} uplinks + {d.get('lorawan_downlinks_total', 0)}"
              f" downlinks); MQTT messages: {mqtt_in} to the gateway, {mqtt_out} from it; "
              f"{d.get('state_commits_total', 0)} state commits")
        print(f"  CPU per frame: {us_frame:.0f} us; per operation: {us_op:.0f} us")
        ns_frame = ns_op = -1
        if cpu["ns"] is not None and frames and n:
            ns_frame, ns_op = cpu["ns"] / 1e3 / frames, cpu["ns"] / 1e3 / n
            print(f"  (schedstat, ns resolution: {cpu['ns'] / 1e6:.1f} ms on CPU, "
                  f"{ns_frame:.0f} us per frame, {ns_op:.0f} us per operation; per "
                  f"operation by thread: " + ", ".join(
                      f"{name} {ns / 1e3 / n:.0f} us" for name, ns in sorted(
                          cpu["threads"].items(), key=lambda kv: -kv[1])) + ")")

        m = self.gw.metrics()
        problems = [f"class {cls} {op.name}: {op.result or 'no answer'} {op.note}"
                    for cls, (ops, _) in tables.items() for op in ops if not op.ok]
        for key in ("lorawan_bad_messages_total", "lorawan_publish_failures_total",
                    "lorawan_failed_reports_total", "lorawan_too_large_reports_total",
                    "lorawan_tx_errors_total", "malformed_total", "gateway_timeouts_total",
                    "upstream_failures_total", "late_retransmits_total", "unavailable_total"):
            if m.get(key):
                problems.append(f"gateway metric {key} = {m[key]}")
        rejected = self.vlns.seen_events("command_rejected")
        if rejected:
            problems.append(f"vlns refused {len(rejected)} commands: {rejected[0]['reason']}")
        if problems:
            print("\nwhat did not go as expected:")
            for p in problems:
                print("  - " + p)

        fc, mc, bc, mbc = tables["C"][1]
        fa, ma, ba, mba = tables["A"][1]
        w0 = windows.get(rtts[0], {}) if rtts else {}
        parts = [f"frames_per_op_c={fc / len(tables['C'][0]):.2f}",
                 f"min_frames_per_op_c={mc / len(tables['C'][0]):.2f}",
                 f"bytes_c={bc}", f"min_bytes_c={mbc}",
                 f"frames_per_op_a={fa / len(tables['A'][0]):.2f}",
                 f"min_frames_per_op_a={ma / len(tables['A'][0]):.2f}",
                 f"bytes_a={ba}", f"min_bytes_a={mba}"]
        for rtt in rtts:
            parts.append(f"window_pct_rtt{rtt}={windows[rtt]['pct']:.1f}")
        parts += [f"gw_out_p50_ms={figure(w0.get('out50'))}",
                  f"gw_in_p50_ms={figure(w0.get('in50'))}",
                  f"cpu_us_per_frame={us_frame:.0f}", f"cpu_us_per_op={us_op:.0f}",
                  f"cpu_ns_us_per_frame={ns_frame:.0f}", f"operations={n}",
                  f"format={self.args.format}"]
        print("BENCH-LORAWAN " + " ".join(parts))
        return any(op.ok for op in tables["C"][0]) and frames > 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--operations", type=int,
                    help="requests per RTT in the RX-window runs, operations in the CPU run "
                         "(default 100; --quick 20)")
    ap.add_argument("--format", choices=("chirpstack", "tts"), default="chirpstack",
                    help="the network server vlns plays (default chirpstack)")
    ap.add_argument("--rtt", help=f"upstream round-trip times (ms) the tap adds, comma-separated "
                                   f"(default {DEFAULT_RTTS}; --quick {QUICK['rtt']})")
    ap.add_argument("--pause", type=int, default=100, metavar="MS",
                    help="class A: idle time before each request of the RX-window runs "
                         "(default 100)")
    ap.add_argument("--quick", action="store_true", help="a smoke run (explicit options win)")
    ap.add_argument("--log-level", default="warning",
                    choices=["error", "warning", "notice", "info", "debug"],
                    help="the gateway's log level (default warning: logging costs CPU)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.operations is None:
        args.operations = QUICK["operations"] if args.quick else 100
    if args.rtt is None:
        args.rtt = QUICK["rtt"] if args.quick else DEFAULT_RTTS
    bench = Bench(args)
    ok = False
    try:
        ok = bench.main()
    except (RuntimeError, AssertionError, OSError) as e:
        print(f"\nsetup broken: {e}", file=sys.stderr)
    finally:
        rc = bench.stop()
        if rc not in (0, None):
            print(f"gateway exited with {rc}", file=sys.stderr)
            ok = False
        log = os.path.join(bench.logs, "gateway.log")
        if args.log_level != "debug" and os.path.exists(log) and os.path.getsize(log):
            with open(log, errors="replace") as f:
                text = f.read()
            print("\ngateway log (last 3000 characters):\n" + text[-3000:])
        if ok and not args.keep_logs:
            shutil.rmtree(bench.logs, ignore_errors=True)
        else:
            print(f"logs kept in {bench.logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
