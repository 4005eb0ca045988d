"""SMS benchmark: what LwM2M over SMS costs through the gateway.

test LwM2M server <- CoAP/UDP -> lwm2m-gw <- AT/PTY -> scripts/vmodem <- UDP -> test devices

Plays a fixed list of LwM2M exchanges one at a time (registrations, Send operations, server
reads, a discover, server writes), with message sizes around the SMS limits (140 octets in one
SMS, 134 per part of a concatenated SMS), and prints:

1. for every CoAP message, the SMS it took against the minimum ceil(len/134) (1 up to 140),
   device -> gateway from the vmodem's `sms-in` events and gateway -> device from its `submit`
   events grouped per concatenated message (checked against `sms-out`);
2. the gateway's CPU time (utime + stime from /proc/PID/stat) per SMS and per LwM2M message over
   the measured run, and the wall time of a read round trip over SMS;
3. a last line `BENCH-SMS key=value ...` for scripts.

A benchmark, not a test: it never judges the figures. It exits non-zero only when the setup is
broken (a peer does not start, the modem never gets ready, or nothing gets through).
Run it with scripts/bench-sms; see bench/README.md, "SMS benchmark".
"""
import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
from lwm2m_peers import Device, Gateway, TestServer, VModem  # noqa: E402

GATEWAY_NUMBER = "12125550178"
FIRST_PHONE = 14155550100
SINGLE_MAX = 140  # octets of 8-bit data in one SMS
PART_MAX = 134    # per part of a concatenated SMS (6-octet UDH, 8-bit reference)
TEST_SERVER_DATAGRAM_MAX = 1472  # the test server's receive buffer (test/peers/README.md)

FULL = dict(regs=[0, 100, 134, 140, 141, 300, 600, 2000, 5000],
            sends=[10, 120, 140, 141, 268, 269, 1000], send_limits=[140, 141, 268, 269],
            reads=10, writes=[140, 141, 268, 269, 1000])
QUICK = dict(regs=[0, 141, 600], sends=[10, 141], send_limits=[140, 141],
             reads=3, writes=[140, 141, 300])


def min_sms(octets):
    return 1 if octets <= SINGLE_MAX else math.ceil(octets / PART_MAX)


def cpu_ticks(pid):
    """utime + stime of the process, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()  # rest[0] is field 3 (state)
    return int(rest[11]) + int(rest[12])


def cpu_ns(pid):
    """Time on CPU in ns from /proc/PID/task/*/schedstat (finer than ticks), or None."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
    except OSError:
        return None
    return total


class Exchange:
    def __init__(self, kind, label, size=None):
        self.kind, self.label, self.size = kind, label, size
        self.ok = False
        self.result = ""      # what the requester got, e.g. "2.05"
        self.note = ""
        self.wall_ms = None
        self.first = self.last = 0  # vmodem event indexes [first, last)
        self.messages = []    # Message


class Message:
    def __init__(self, direction, octets, sms, index, complete=True, extra=""):
        self.direction, self.octets, self.sms, self.index = direction, octets, sms, index
        self.complete, self.extra = complete, extra
        self.minimum = min_sms(octets)


def parse_messages(events):
    """CoAP messages in the vmodem's event list (indexes into it) and anomalies seen."""
    messages, anomalies = [], []
    open_groups = {}  # (msisdn, ref, total, bits) -> dict
    for i, e in enumerate(events):
        ev = e.get("event")
        if ev == "sms-in":
            messages.append(Message("dev->gw", e["bytes"], e["parts"], i))
        elif ev == "submit":
            if "total" not in e or e["total"] == 1:
                messages.append(Message("gw->dev", e["bytes"], 1, i))
                continue
            key = (e["msisdn"], e["ref"], e["total"], e.get("ref_bits"))
            g = open_groups.get(key)
            if g is None:
                g = open_groups[key] = {"index": i, "parts": {}, "submits": 0}
            g["submits"] += 1
            g["parts"].setdefault(e["seq"], e["bytes"])
            if len(g["parts"]) == e["total"]:
                del open_groups[key]
                extra = "" if g["submits"] == e["total"] else \
                    f"{g['submits'] - e['total']} part(s) sent twice"
                messages.append(Message("gw->dev", sum(g["parts"].values()), g["submits"],
                                        g["index"], extra=extra))
        elif ev in ("dropped", "bad-pdu", "duplicate-submit", "nacked", "cnma-timeout"):
            anomalies.append((i, e))
    for key, g in open_groups.items():
        m = Message("gw->dev", sum(g["parts"].values()), g["submits"], g["index"],
                    complete=False,
                    extra=f"incomplete: parts {sorted(g['parts'])} of {key[2]}, ref {key[1]}")
        messages.append(m)
    messages.sort(key=lambda m: m.index)
    return messages, anomalies


class Bench:
    def __init__(self, args):
        self.args = args
        self.plan = dict(QUICK if args.quick else FULL)
        self.logs = tempfile.mkdtemp(prefix="lwm2m-gw-sms-bench-")
        self.started = []
        self.exchanges = []
        self.next_id = 1
        self.regs = {}  # reg size -> (ep, msisdn)
        for i, size in enumerate(self.plan["regs"]):
            self.regs[size] = (f"reg-{size}", str(FIRST_PHONE + i))
        self.main_ep = self.regs[self.plan["regs"][0]][0]
        self.devices = {}
        self.gw = None

    # ---- peers ----
    def start(self):
        self.modem = VModem(self.logs, [n for _, n in self.regs.values()], msisdn=GATEWAY_NUMBER,
                            extra=["--personality", self.args.personality])
        self.started.append(self.modem)
        self.server = TestServer(self.logs)
        self.started.append(self.server)
        devices = ", ".join(f'{{ endpoint = "{ep}"; msisdn = "{n}"; }}'
                            for ep, n in self.regs.values())
        self.gw = Gateway(self.logs, f"coap://127.0.0.1:{self.server.port}", devices=devices,
                          sms=f'modem = "{self.modem.link}"; msisdn = "{GATEWAY_NUMBER}";',
                          device_timeout_ms=60000, log_level=self.args.log_level)
        self.started.append(self.gw)
        deadline = time.monotonic() + 30
        while not self.gw.metrics().get("sms_modem_ready"):
            if time.monotonic() > deadline or self.gw.peer.proc.poll() is not None:
                raise RuntimeError("the gateway's modem did not get ready within 30 s")
            time.sleep(0.05)
        self.quiet(1.0)  # the first sweep of the storage

    def stop(self):
        rc = None
        for p in reversed(self.started):
            code = p.stop()
            if p is self.gw:
                rc = code
        return rc

    def quiet(self, settle=0.6, limit=30.0):
        """Waits until the vmodem has been silent for `settle` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            n = len(self.modem.drain(0))
            if len(self.modem.drain(settle)) == n:
                return

    # ---- exchanges ----
    def run(self, kind, label, size, action):
        x = Exchange(kind, label, size)
        self.quiet()
        x.first = len(self.modem.seen)
        t0 = time.monotonic()
        try:
            action(x)
        except AssertionError as e:  # Peer.wait_for: nothing within the timeout
            x.ok = False
            x.note = str(e).splitlines()[0][:160]
        x.wall_ms = (time.monotonic() - t0) * 1000
        self.quiet()
        x.last = len(self.modem.seen)
        self.exchanges.append(x)
        status = "ok" if x.ok else "FAILED"
        print(f"  {label:<30} {x.result:<5} {x.wall_ms:8.0f} ms  {status} {x.note}", flush=True)
        return x

    def request(self, command, timeout=90):
        rid = self.next_id
        self.next_id += 1
        return self.server.request(command.format(id=rid), timeout=timeout)

    def register(self, size):
        ep, number = self.regs[size]

        def action(x):
            # b=S: since 81d61d0 the gateway refuses (5.03) requests other than the trigger
            # to an SMS device whose registration lacks S.
            dev = Device(self.logs, self.modem.phone_uri(number), ep,
                         extra=["--reg-payload-size", str(size), "--lifetime", "86400",
                                "--binding", "S", "--register-timeout-ms", "120000"])
            self.started.append(dev)
            self.devices[ep] = dev
            reg = self.server.wait_for("register", ep=ep, timeout=90)
            r = dev.wait_for("registered", timeout=90)
            x.result, x.ok = r["code"], r["code"] == "2.01"
            x.note = f"server got {reg['payload_len']} payload bytes"
        return self.run("register", f"Register payload {size}", size, action)

    def send(self, octets, label):
        dev = self.devices[self.main_ep]
        payload = bytes((i * 7 + octets) & 0xFF for i in range(octets))

        def action(x):
            dev.send("send " + payload.hex())
            r = dev.wait_for("sent", timeout=90)
            x.result, x.ok = str(r.get("code")), r.get("code") == "2.04"
            got = self.server.wait_for("send", timeout=10, payload_hex=payload.hex())
            x.ok = x.ok and got["payload_len"] == octets
        return self.run("send", label, octets, action)

    def read(self, path, discover=False):
        verb = "discover" if discover else "read"

        def action(x):
            r = self.request(f"{verb} {{id}} {self.main_ep} {path}")
            x.result, x.ok = r["code"], r["code"] == "2.05"
            x.server_ms = r.get("elapsed_ms")
            x.note = f"{r['payload_len']} payload bytes"
        return self.run(verb, f"{verb.capitalize()} {path}", None, action)

    def write(self, value_len, label):
        value = ("lwm2m-gw-sms-bench-" * (value_len // 19 + 1))[:value_len]
        dev = self.devices[self.main_ep]

        def action(x):
            r = self.request(f"write {{id}} {self.main_ep} /3/0/15 {value}")
            x.result, x.ok = r["code"], r["code"] == "2.04"
            w = dev.wait_for("write", timeout=10, path="/3/0/15")
            x.ok = x.ok and w["value"] == value
        return self.run("write", label, value_len, action)

    def overhead(self, x, direction):
        """CoAP octets around the payload in the first message of `direction` of exchange x."""
        for m in x.messages:
            if m.direction == direction:
                return m.octets - x.size
        return None

    def play(self):
        p = self.plan
        print(f"registrations ({len(p['regs'])}), each by its own device and phone number:")
        for size in p["regs"]:
            x = self.register(size)
            if size == p["regs"][0] and not x.ok:
                raise RuntimeError("the first device did not register over SMS")
        self.attribute()
        print("Send operations (POST /dp from the device):")
        for n in p["sends"]:
            self.send(n, f"Send {n} bytes")
        self.attribute()
        calib = next((x for x in self.exchanges if x.kind == "send" and x.ok), None)
        ovh = self.overhead(calib, "dev->gw") if calib else None
        if ovh is not None:
            for target in p["send_limits"]:
                self.send(target - ovh, f"Send of CoAP {target} B")
        print(f"reads of /3/0/0 ({p['reads']}) and a discover of /3/0:")
        for _ in range(p["reads"]):
            self.read("/3/0/0")
        self.read("/3/0", discover=True)
        print("writes to /3/0/15 (downlink sizes):")
        calib = self.write(10, "Write 10 bytes")
        self.attribute()
        ovh = self.overhead(calib, "gw->dev")
        if ovh is not None:
            for target in p["writes"]:
                self.write(target - ovh, f"Write of CoAP {target} B")
        self.attribute()

    def attribute(self):
        self.messages, self.anomalies = parse_messages(self.modem.drain(0))
        for x in self.exchanges:
            x.messages = [m for m in self.messages if x.first <= m.index < x.last]

    # ---- the run ----
    def main(self):
        print(f"SMS benchmark: vmodem personality {self.args.personality}, gateway log level "
              f"{self.args.log_level}, {'quick' if self.args.quick else 'full'} run; "
              f"logs in {self.logs}", flush=True)
        self.start()
        pid = self.gw.peer.proc.pid
        m0 = self.gw.metrics()
        ns0, ticks0, t0 = cpu_ns(pid), cpu_ticks(pid), time.monotonic()
        first = len(self.modem.seen)
        self.play()
        ticks1, ns1, t1 = cpu_ticks(pid), cpu_ns(pid), time.monotonic()
        m1 = self.gw.metrics()
        self.attribute()
        last = len(self.modem.seen)
        return self.report(m0, m1, ticks1 - ticks0,
                           None if ns0 is None or ns1 is None else ns1 - ns0,
                           t1 - t0, first, last)

    def report(self, m0, m1, ticks, ns, seconds, first, last):
        d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
        msgs = [m for m in self.messages if first <= m.index < last]
        print("\nper CoAP message (SMS used = SMS that crossed the network for it):")
        print(f"  {'exchange':<30} {'direction':<9} {'CoAP B':>7} {'SMS used':>9} "
              f"{'minimum':>8}  note")
        attributed = set()
        for x in self.exchanges:
            for m in x.messages:
                attributed.add(id(m))
                flag = "" if m.sms == m.minimum and m.complete else "  <-- "
                extra = m.extra
                if x.kind == "register" and m.direction == "dev->gw" and \
                        m.octets > TEST_SERVER_DATAGRAM_MAX:
                    extra += "  (the test server reads 1472 B of it)"
                print(f"  {x.label:<30} {m.direction:<9} {m.octets:>7} {m.sms:>9} "
                      f"{m.minimum:>8}{flag}{extra}")
        stray = [m for m in msgs if id(m) not in attributed]
        for m in stray:
            print(f"  {'(between exchanges)':<30} {m.direction:<9} {m.octets:>7} {m.sms:>9} "
                  f"{m.minimum:>8}  {m.extra}")
        print()
        totals = {}
        for direction in ("dev->gw", "gw->dev"):
            ms = [m for m in msgs if m.direction == direction]
            used, minimum = sum(m.sms for m in ms), sum(m.minimum for m in ms)
            totals[direction] = (len(ms), used, minimum)
            print(f"  {direction}: {len(ms)} CoAP messages, {used} SMS used, {minimum} minimum")
        n_msgs = len(msgs)
        used = sum(m.sms for m in msgs)
        minimum = sum(m.minimum for m in msgs)
        per_msg = used / n_msgs if n_msgs else -1
        min_per_msg = minimum / n_msgs if n_msgs else -1
        overhead = (used / minimum - 1) * 100 if minimum else -1
        print(f"SMS per message: {per_msg:.3f} actual vs {min_per_msg:.3f} minimum "
              f"(overhead {overhead:.1f}%)")

        # Checks that describe the gateway's behaviour; printed, never fatal.
        problems = []
        failed = [x for x in self.exchanges if not x.ok]
        for x in failed:
            problems.append(f"exchange '{x.label}' failed: result {x.result or 'none'} {x.note}")
        for x in self.exchanges:
            dirs = [m.direction for m in x.messages]
            for direction in ("dev->gw", "gw->dev"):
                if dirs.count(direction) > 1:
                    problems.append(f"'{x.label}': {dirs.count(direction)} {direction} "
                                    f"messages (one expected; a retransmission?)")
                if x.ok and dirs.count(direction) == 0:
                    problems.append(f"'{x.label}': no {direction} message seen")
        for i, e in self.anomalies:
            if first <= i < last:
                problems.append("vmodem: " + ", ".join(f"{k}={v}" for k, v in e.items()
                                                       if not k.startswith("_")))
        sms_in_parts = sum(m.sms for m in msgs if m.direction == "dev->gw")
        submits = sum(1 for e in self.modem.seen[first:last] if e.get("event") == "submit")
        sms_outs = sum(1 for e in self.modem.seen[first:last] if e.get("event") == "sms-out")
        gw_out_msgs = totals["gw->dev"][0]
        if d.get("sms_received_total", 0) != sms_in_parts:
            problems.append(f"gateway counted {d.get('sms_received_total')} SMS received, the "
                            f"vmodem delivered {sms_in_parts} parts")
        if d.get("sms_sms_out_total", 0) != submits:
            problems.append(f"gateway counted {d.get('sms_sms_out_total')} SMS sent, the vmodem "
                            f"accepted {submits} AT+CMGS")
        if sms_outs != sum(1 for m in msgs if m.direction == "gw->dev" and m.complete):
            problems.append(f"vmodem sms-out {sms_outs} vs {gw_out_msgs} complete gateway "
                            f"messages")
        for key in ("sms_send_failures_total", "sms_malformed_total", "sms_concat_expired_total",
                    "sms_concat_duplicates_total", "sms_concat_evicted_total",
                    "sms_ignored_senders_total", "malformed_total", "gateway_timeouts_total",
                    "upstream_failures_total", "sms_modem_reopens_total"):
            if d.get(key, 0):
                problems.append(f"gateway metric {key} +{d[key]}")
        if problems:
            print("\nwhat did not go as expected:")
            for p in problems:
                print("  - " + p)

        # CPU
        hz = os.sysconf("SC_CLK_TCK")
        cpu_s = ticks / hz
        sms_handled = d.get("sms_received_total", 0) + d.get("sms_sms_out_total", 0)
        lwm2m = d.get("sms_messages_in_total", 0) + d.get("sms_messages_out_total", 0)
        us_sms = cpu_s * 1e6 / sms_handled if sms_handled else -1
        us_msg = cpu_s * 1e6 / lwm2m if lwm2m else -1
        print(f"\ngateway CPU over the measured run ({seconds:.1f} s wall, start-up excluded): "
              f"{ticks} ticks = {cpu_s * 1000:.0f} ms (utime+stime, {hz} ticks/s)")
        print(f"  SMS handled: {d.get('sms_received_total', 0)} received + "
              f"{d.get('sms_sms_out_total', 0)} sent = {sms_handled}; LwM2M messages over SMS: "
              f"{d.get('sms_messages_in_total', 0)} in + {d.get('sms_messages_out_total', 0)} "
              f"out = {lwm2m}")
        print(f"  CPU per SMS: {us_sms:.0f} us; per LwM2M message: {us_msg:.0f} us")
        ns_sms = ns_msg = -1
        if ns is not None and sms_handled and lwm2m:
            ns_sms, ns_msg = ns / 1e3 / sms_handled, ns / 1e3 / lwm2m
            print(f"  (schedstat, ns resolution: {ns / 1e6:.1f} ms on CPU, {ns_sms:.0f} us per "
                  f"SMS, {ns_msg:.0f} us per LwM2M message)")
        print("  (includes the idle timers of the run: storage sweep, health checks, the two "
              "metrics scrapes)")
        reads = [x for x in self.exchanges if x.kind == "read" and x.ok]
        rt = [getattr(x, "server_ms", None) or x.wall_ms for x in reads]
        if rt:
            print(f"read /3/0/0 round trip over SMS (server to device and back, {len(rt)} "
                  f"reads): median {statistics.median(rt):.0f} ms, mean "
                  f"{statistics.mean(rt):.0f} ms, min {min(rt):.0f}, max {max(rt):.0f}")
        rt_median = statistics.median(rt) if rt else -1
        print(f"BENCH-SMS sms_per_message={per_msg:.3f} minimum_per_message={min_per_msg:.3f} "
              f"cpu_us_per_sms={us_sms:.0f} cpu_us_per_message={us_msg:.0f} "
              f"overhead_pct={overhead:.1f} messages={n_msgs} sms={used} "
              f"read_rtt_ms={rt_median:.0f} cpu_ticks={ticks} cpu_ns_us_per_sms={ns_sms:.0f} "
              f"failed_exchanges={len(failed)} personality={self.args.personality}")
        ok_any = any(x.ok for x in self.exchanges) and n_msgs > 0
        return ok_any


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and reads: a smoke run")
    ap.add_argument("--personality", default="generic",
                    choices=["generic", "quectel", "simcom", "huawei"],
                    help="vmodem personality (default generic)")
    ap.add_argument("--log-level", default="warning",
                    choices=["error", "warning", "notice", "info", "debug"],
                    help="the gateway's log level (default warning: logging costs CPU)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
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
