"""MQTT benchmark: LwM2M operations per second through the gateway's MQTT binding.

MQTT devices (paho) -> mosquitto -> lwm2m-gw -> CoAP/UDP -> lwm2m-test-server, and back

N devices (one paho client each, all driven from one epoll loop in this process) register, then
each runs a closed loop with one LwM2M Send (16-byte payload) in flight for S seconds after a
1 s warm-up. In the same run, on the same broker, the same number of clients measure a raw MQTT
round trip: publish 16 bytes, wait for the echo of a Python echo responder (one paho client in a
child process). Prints for both paths: completed operations per second, latency p50/p99, lost
(no answer within 5 s) and errors (unexpected result), the CPU time per operation of the relay
(gateway or echo responder), of mosquitto and of the test server, and this process's own CPU use;
then a last line `BENCH-MQTT key=value ...` for scripts.

A benchmark, not a test: it never judges the figures. It exits non-zero only when the setup is
broken (a peer does not start, no device registers, or nothing gets through).
Run it with scripts/bench-mqtt; see bench/README.md, "MQTT benchmark".
"""
import argparse
import math
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
from lwm2m_peers import (GATEWAY_BIN, SERVER_BIN, Gateway, Mosquitto,  # noqa: E402
                         TestServer)

PREFIX = "bench"
WARMUP_S = 1.0
LOST_AFTER_S = 5.0
PAYLOAD_LEN = 16
# LwM2M over MQTT keys (Transport 1.2.1 table 8.7-1)
K_OP, K_TOKEN, K_PAYLOAD, K_LIFETIME, K_VERSION, K_B, K_RESULT, K_CT = 1, 2, 7, 8, 9, 10, 18, 19
OP_REGISTER, OP_SEND = 6, 24
CT_SENML_CBOR = 112
# SenML-CBOR [{0 (n): "/3/0/9", 2 (v): 100000}]: exactly PAYLOAD_LEN (16) bytes
SEND_PAYLOAD = cbor2.dumps([{0: "/3/0/9", 2: 100000}])
assert len(SEND_PAYLOAD) == PAYLOAD_LEN
HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid="self"):
    """utime + stime of a process (all its threads), in clock ticks (/proc/PID/stat 14, 15)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()  # rest[0] is field 3 (state)
    return int(rest[11]) + int(rest[12])


def percentile(sorted_values, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_values:
        return -1.0
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(1, rank)) - 1]


class BenchMosquitto(Mosquitto):
    """Mosquitto from lwm2m_peers, with set_tcp_nodelay unless nagle (mosquitto's default)."""

    def __init__(self, log_dir, nagle):
        self.nagle = nagle
        super().__init__(log_dir)

    def start(self):
        if not self.nagle:
            with open(self.conf) as f:
                text = f.read()
            if "set_tcp_nodelay" not in text:
                with open(self.conf, "a") as f:
                    f.write("set_tcp_nodelay true\n")
        super().start()


# ---------------------------------------------------------------- MQTT clients

class Conn:
    """One paho client driven by Loop (no paho thread): subscribes, then runs a closed loop of
    requests with one in flight. Subclasses say what a request and its answer are."""

    def __init__(self, loop, name, subs):
        self.loop, self.name, self.subs = loop, name, subs
        args = loop.args
        if args.mqtt_version == 5:
            self.client = mqtt.Client(client_id=name, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(client_id=name, clean_session=True,
                                      protocol=mqtt.MQTTv311)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message
        self.client.on_disconnect = self.on_disconnect
        self.ready = False        # subscriptions acknowledged
        self.sub_mid = None
        self.token = int.from_bytes(os.urandom(4), "big")
        self.pending = None       # token in flight
        self.sent_at = 0.0
        self.stopped = False      # no new request after the current one
        self.disconnected = False
        self.late = 0             # answers after the request was counted lost
        if args.mqtt_version == 5:
            self.client.connect("127.0.0.1", loop.broker_port, keepalive=60, clean_start=True)
        else:
            self.client.connect("127.0.0.1", loop.broker_port, keepalive=60)
        if not args.nagle:
            self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop.add(self)

    def on_connect(self, client, userdata, flags, rc, properties=None):
        if getattr(rc, "value", rc) != 0:
            self.loop.fail(f"{self.name}: connection refused ({rc})")
            return
        qos = self.loop.args.qos
        if self.loop.args.mqtt_version == 5:
            opts = SubscribeOptions(qos=qos, noLocal=True)
            _, self.sub_mid = client.subscribe([(t, opts) for t in self.subs])
        else:
            _, self.sub_mid = client.subscribe([(t, qos) for t in self.subs])

    def on_subscribe(self, client, userdata, mid, granted, properties=None):
        if mid == self.sub_mid:
            if any(getattr(g, "value", g) >= 0x80 for g in granted):
                self.loop.fail(f"{self.name}: subscription refused")
                return
            self.ready = True
            self.loop.todo.append(self)

    def on_disconnect(self, client, userdata, rc, properties=None):
        if not self.loop.closing:
            self.disconnected = True
            self.loop.fail(f"{self.name}: disconnected (rc {rc})")

    def on_message(self, client, userdata, message):
        token, result = self.parse(message)
        if token is None:
            return
        if token != self.pending:
            self.late += 1
            return
        self.pending = None
        self.loop.phase.done(self, time.monotonic() - self.sent_at, result)
        self.loop.todo.append(self)  # the next request goes out after loop_read returns

    def next_token(self):
        self.token = (self.token + 1) & 0xFFFFFFFF
        return self.token

    def fire(self):
        """Sends the next request unless stopped or one is in flight."""
        if self.stopped or self.pending is not None or not self.ready:
            return
        token = self.next_token()
        topic, data = self.request(token)
        self.pending = token
        self.sent_at = time.monotonic()
        self.loop.phase.sent += 1
        self.client.publish(topic, data, qos=self.loop.args.qos)
        if self.client.want_write():  # partly written: the rest when the socket is writable
            self.loop.watch_write(self.fd, self)


class LwM2MDevice(Conn):
    """An LwM2M client over MQTT on {PREFIX}/lwm2m/rd/{EP}: Register, then Send after Send."""

    def __init__(self, loop, ep):
        self.ep = ep
        self.topic = f"{PREFIX}/lwm2m/rd/{ep}"
        self.registered = None   # result of the Register, once answered
        super().__init__(loop, f"bench-dev-{ep}", [self.topic])

    def parse(self, message):
        try:
            msg = cbor2.loads(message.payload)
        except Exception:
            self.loop.phase.undecodable += 1
            return None, None
        if not isinstance(msg, dict) or K_OP in msg:  # our own operation back (MQTT 3.1.1)
            return None, None
        return msg.get(K_TOKEN), msg.get(K_RESULT)

    def request(self, token):
        if self.registered is None:
            msg = {K_OP: OP_REGISTER, K_TOKEN: token, K_PAYLOAD: b"</1/0>,</3/0>",
                   K_LIFETIME: 300, K_VERSION: "1.2", K_B: "M"}
        else:
            msg = {K_OP: OP_SEND, K_TOKEN: token, K_PAYLOAD: SEND_PAYLOAD, K_CT: CT_SENML_CBOR}
        return self.topic, cbor2.dumps(msg)


class RawClient(Conn):
    """Publishes 16 bytes on bench-raw/req/{i}, waits for them on bench-raw/resp/{i}."""

    def __init__(self, loop, i):
        self.req = f"bench-raw/req/{i}"
        super().__init__(loop, f"bench-raw-{i}", [f"bench-raw/resp/{i}"])

    def parse(self, message):
        data = message.payload
        if len(data) != PAYLOAD_LEN:
            self.loop.phase.undecodable += 1
            return None, None
        return struct.unpack_from(">I", data)[0], "echo"

    def request(self, token):
        return self.req, struct.pack(">I", token) + b"raw-mqtt-bench"[:PAYLOAD_LEN - 4].ljust(
            PAYLOAD_LEN - 4, b".")


# ---------------------------------------------------------------- the load generator

class Phase:
    """Counters of one measured run. Rate and latency cover [t_start, t_end); sent, lost,
    errors cover the whole run (warm-up included)."""

    def __init__(self, name, ok_result):
        self.name, self.ok_result = name, ok_result
        self.t_start = self.t_end = None
        self.sent = self.completed = self.answered = self.lost = self.errors = 0
        self.undecodable = 0
        self.error_results = {}
        self.lat = []
        self.cpu0 = self.cpu1 = None

    def done(self, conn, latency, result):
        now = time.monotonic()
        self.answered += 1
        if result != self.ok_result:
            self.errors += 1
            self.error_results[result] = self.error_results.get(result, 0) + 1
            return
        if self.t_start is not None and self.t_start <= now and \
                (self.t_end is None or now < self.t_end):
            self.completed += 1
            self.lat.append(latency)


class Loop:
    """One epoll loop over every paho socket of this process."""

    def __init__(self, args, broker_port):
        self.args, self.broker_port = args, broker_port
        self.ep = select.epoll()
        self.conns = {}       # fd -> Conn
        self.writing = set()  # fds registered for EPOLLOUT too
        self.todo = []
        self.errors = []
        self.closing = False
        self.phase = Phase("setup", None)

    def add(self, conn):
        fd = conn.fd = conn.client.socket().fileno()
        self.conns[fd] = conn
        self.ep.register(fd, select.EPOLLIN)

    def fail(self, why):
        self.errors.append(why)

    def turn(self, timeout):
        for fd, ev in self.ep.poll(timeout):
            c = self.conns.get(fd)
            if c is None:
                continue
            if ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                rc = c.client.loop_read()
                if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
                    self.drop(fd, c, f"read: {mqtt.error_string(rc)}")
                    continue
            if ev & select.EPOLLOUT and c.client.socket() is not None:
                c.client.loop_write()
            while self.todo:
                self.todo.pop().fire()
            self.watch_write(fd, c)

    def watch_write(self, fd, c):
        """paho writes at once unless inside a callback or the socket is full: then wait for
        EPOLLOUT."""
        want = c.client.want_write()
        if want and fd not in self.writing:
            self.ep.modify(fd, select.EPOLLIN | select.EPOLLOUT)
            self.writing.add(fd)
        elif not want and fd in self.writing:
            self.ep.modify(fd, select.EPOLLIN)
            self.writing.discard(fd)

    def drop(self, fd, c, why):
        if not self.closing:
            self.fail(f"{c.name}: {why}")
        self.ep.unregister(fd)
        self.conns.pop(fd, None)
        self.writing.discard(fd)
        c.disconnected = True

    def misc(self):
        for c in list(self.conns.values()):
            if c.client.socket() is not None:
                c.client.loop_misc()

    def run_until(self, cond, deadline):
        last_misc = time.monotonic()
        while time.monotonic() < deadline:
            if cond():
                return True
            self.turn(0.05)
            now = time.monotonic()
            if now - last_misc > 1.0:
                self.misc()
                last_misc = now
        return cond()

    def measure(self, conns, phase, seconds, cpu_pids):
        """Closed loop on `conns`: warm-up, `seconds` measured, then waits for the requests in
        flight (at most LOST_AFTER_S). cpu_pids: name -> pid sampled at both ends of the
        measured interval (plus this process)."""
        self.phase = phase
        t0 = time.monotonic()
        t_start, t_end = t0 + WARMUP_S, t0 + WARMUP_S + seconds
        for c in conns:
            c.stopped = False
            c.fire()
        last_misc = last_check = t0
        sampled = 0
        while True:
            now = time.monotonic()
            if sampled == 0 and now >= t_start:
                phase.t_start, phase.cpu0 = now, self.sample(cpu_pids)
                sampled = 1
            elif sampled == 1 and now >= t_end:
                phase.t_end, phase.cpu1 = now, self.sample(cpu_pids)
                sampled = 2
                for c in conns:
                    c.stopped = True
                drain_until = now + LOST_AFTER_S + 0.5
            if sampled == 2 and (now >= drain_until or
                                 all(c.pending is None for c in conns)):
                break
            if now - last_check >= 0.1:
                last_check = now
                for c in conns:
                    if c.pending is not None and now - c.sent_at > LOST_AFTER_S:
                        phase.lost += 1
                        c.pending = None
                        c.fire()
            if now - last_misc >= 1.0:
                last_misc = now
                self.misc()
            timeout = 0.05
            if sampled == 0:
                timeout = max(0.0, min(timeout, t_start - now))
            elif sampled == 1:
                timeout = max(0.0, min(timeout, t_end - now))
            self.turn(timeout)
        phase.lat.sort()
        return phase

    @staticmethod
    def sample(pids):
        out = {name: (cpu_ticks(pid) if pid else 0) for name, pid in pids.items()}
        out["bench"] = cpu_ticks()
        return out

    def close(self):
        self.closing = True
        for c in list(self.conns.values()):
            try:
                c.client.disconnect()
                c.client.loop_write()
            except Exception:
                pass
        self.ep.close()


# ---------------------------------------------------------------- the echo responder (child)

def echo_responder(args):
    """Child process: subscribed to bench-raw/req/#, publishes each message back on
    bench-raw/resp/{i}. Prints 'ready' once subscribed."""
    if args.mqtt_version == 5:
        client = mqtt.Client(client_id="bench-raw-echo", protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(client_id="bench-raw-echo", clean_session=True,
                             protocol=mqtt.MQTTv311)

    def on_connect(c, userdata, flags, rc, properties=None):
        c.subscribe("bench-raw/req/#", qos=args.qos)

    def on_subscribe(c, userdata, mid, granted, properties=None):
        print("ready", flush=True)

    def on_message(c, userdata, message):
        c.publish("bench-raw/resp/" + message.topic.rsplit("/", 1)[1], message.payload,
                  qos=args.qos)

    def on_signal(signum, frame):
        client.disconnect()

    client.on_connect, client.on_subscribe, client.on_message = \
        on_connect, on_subscribe, on_message
    signal.signal(signal.SIGTERM, on_signal)
    client.connect("127.0.0.1", args.echo_responder, keepalive=60)
    if not args.nagle:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_forever()
    return 0


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self, args):
        self.args = args
        self.logs = tempfile.mkdtemp(prefix="lwm2m-gw-mqtt-bench-")
        self.started = []
        self.broker = self.server = self.gw = self.responder = None
        self.loop = None

    def start(self):
        self.broker = BenchMosquitto(self.logs, self.args.nagle)
        self.started.append(self.broker)
        self.server = TestServer(self.logs, quiet=True)
        self.started.append(self.server)
        a = self.args
        settings = (f'broker = "{self.broker.uri}"; prefix = "{PREFIX}"; qos = {a.qos}; '
                    f'mqtt_version = {a.mqtt_version};')
        self.gw = Gateway(self.logs, f"coap://127.0.0.1:{self.server.port}", mqtt=settings,
                          device_timeout_ms=600000, log_level="warning")
        self.started.append(self.gw)
        deadline = time.monotonic() + 10
        while not self.gw.metrics().get("mqtt_connected"):
            if time.monotonic() > deadline or self.gw.peer.proc.poll() is not None:
                raise RuntimeError("the gateway did not connect to mosquitto within 10 s")
            time.sleep(0.05)
        time.sleep(0.2)  # its SUBACK: mqtt_connected is set once subscribed, but be sure

    def stop(self):
        rc = None
        if self.loop:
            self.loop.close()
        if self.responder and self.responder.poll() is None:
            self.responder.terminate()
            try:
                self.responder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.responder.kill()
                self.responder.wait()
        for p in reversed(self.started):
            code = p.stop()
            if p is self.gw:
                rc = code
        return rc

    def connect_all(self, conns, what):
        if not self.loop.run_until(lambda: all(c.ready for c in conns) or self.loop.errors,
                                   time.monotonic() + 10):
            raise RuntimeError(f"{what}: {sum(c.ready for c in conns)} of {len(conns)} "
                               f"subscribed within 10 s")
        if self.loop.errors:
            raise RuntimeError(f"{what}: " + "; ".join(self.loop.errors[:3]))

    def gateway_run(self):
        a = self.args
        devs = []
        self.loop.phase = Phase("register", 201)
        # Register is the request a device fires once subscribed (Conn.fire from on_subscribe).
        for i in range(a.devices):
            devs.append(LwM2MDevice(self.loop, f"bench-{i}"))

        orig_done = self.loop.phase.done

        def reg_done(conn, latency, result):
            conn.registered = result
            conn.stopped = True
            orig_done(conn, latency, result)
        self.loop.phase.done = reg_done
        self.connect_all(devs, "MQTT devices")
        self.loop.run_until(lambda: all(d.registered is not None for d in devs),
                            time.monotonic() + 15)
        ok = [d for d in devs if d.registered == 201]
        bad = {d.ep: d.registered for d in devs if d.registered != 201}
        print(f"  {len(ok)} of {len(devs)} devices registered (result 201)"
              + (f"; not: {bad}" if bad else ""), flush=True)
        if not ok:
            raise RuntimeError("no device registered through the gateway")
        for d in devs:
            d.pending = None
        pids = {"relay": self.gw.peer.proc.pid, "broker": self.broker.proc.pid,
                "server": self.server.proc.pid}
        m0 = self.gw.metrics()
        phase = self.loop.measure(ok, Phase("LwM2M Send via gateway", 204), a.seconds, pids)
        m1 = self.gw.metrics()
        phase.metrics = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
        phase.late = sum(d.late for d in ok)
        return phase

    def raw_run(self):
        a = self.args
        err = open(os.path.join(self.logs, "echo-responder.log"), "wb")
        self.responder = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--echo-responder",
             str(self.broker.port), "--mqtt-version", str(a.mqtt_version), "--qos", str(a.qos)]
            + (["--nagle"] if a.nagle else []),
            stdout=subprocess.PIPE, stderr=err)
        err.close()
        r, _, _ = select.select([self.responder.stdout], [], [], 10)
        if not r or self.responder.stdout.readline().strip() != b"ready":
            raise RuntimeError("the echo responder did not subscribe within 10 s")
        self.loop.phase = Phase("raw", "echo")
        clients = [RawClient(self.loop, i) for i in range(a.devices)]
        for c in clients:
            c.stopped = True  # nothing fires before measure()
        self.connect_all(clients, "raw MQTT clients")
        pids = {"relay": self.responder.pid, "broker": self.broker.proc.pid, "server": None}
        phase = self.loop.measure(clients, Phase("raw MQTT echo", "echo"), a.seconds, pids)
        phase.metrics = {}
        phase.late = sum(c.late for c in clients)
        return phase

    def main(self):
        a = self.args
        version = "5" if a.mqtt_version == 5 else "3.1.1"
        print(f"MQTT benchmark: {a.devices} devices, {a.seconds:g} s measured after "
              f"{WARMUP_S:g} s warm-up, MQTT {version}, QoS {a.qos}, "
              f"{os.cpu_count()} CPUs; logs in {self.logs}", flush=True)
        self.start()
        self.loop = Loop(a, self.broker.port)
        print("gateway path: device -> mosquitto -> lwm2m-gw -> CoAP/UDP -> test server and "
              "back", flush=True)
        gw = self.gateway_run()
        self.progress(gw, "gateway")
        print("raw path: client -> mosquitto -> echo responder (Python) -> mosquitto -> client",
              flush=True)
        raw = self.raw_run()
        self.progress(raw, "echo responder")
        self.report(gw, raw)
        return gw.completed > 0 and raw.completed > 0

    def cpu(self, phase, name):
        """(CPU us per completed op, CPU % of one core) of `name` over the measured interval."""
        if phase.cpu0 is None or phase.cpu1 is None or not phase.cpu0.get(name) and \
                not phase.cpu1.get(name):
            return -1, -1
        ticks = phase.cpu1[name] - phase.cpu0[name]
        seconds = phase.t_end - phase.t_start
        us_op = ticks / HZ * 1e6 / phase.completed if phase.completed else -1
        return us_op, ticks / HZ / seconds * 100

    def figures(self, phase):
        seconds = (phase.t_end - phase.t_start) if phase.t_end else self.args.seconds
        f = {"rate": phase.completed / seconds if seconds > 0 else 0,
             "p50": percentile(phase.lat, 50) * 1000 if phase.lat else -1,
             "p99": percentile(phase.lat, 99) * 1000 if phase.lat else -1}
        for name in ("relay", "broker", "server", "bench"):
            f[name + "_us"], f[name + "_pct"] = self.cpu(phase, name)
        return f

    def progress(self, phase, relay):
        f = self.figures(phase)
        slow = sum(1 for x in phase.lat if x >= 0.040)
        slow = f"{slow * 100.0 / len(phase.lat):.0f}%" if phase.lat else "-"
        print(f"  {phase.completed} ops in {phase.t_end - phase.t_start:.2f} s ({slow} took "
              f"40 ms or more), {phase.sent} sent in all, {phase.lost} lost, {phase.errors} "
              f"errors; CPU: "
              f"{relay} {f['relay_pct']:.0f}%, mosquitto {f['broker_pct']:.0f}%, "
              f"bench {f['bench_pct']:.0f}%", flush=True)

    def report(self, gw, raw):
        a = self.args
        g, r = self.figures(gw), self.figures(raw)
        print()
        print(f"{'':24} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'lost':>5} {'errors':>6}  "
              f"{'CPU us/op: relay':>16} {'mosquitto':>9} {'server':>6}  {'bench CPU':>9}")
        for phase, f, relay in ((gw, g, "gateway"), (raw, r, "echo")):
            server = f"{f['server_us']:6.0f}" if f["server_us"] >= 0 else f"{'-':>6}"
            print(f"{phase.name:<24} {f['rate']:8.0f} {f['p50']:7.2f} {f['p99']:7.2f} "
                  f"{phase.lost:5d} {phase.errors:6d}  {relay:>8} {f['relay_us']:7.0f} "
                  f"{f['broker_us']:9.0f} {server}  {f['bench_pct']:8.0f}%")
        print("\nwhat differs: the raw responder is a Python paho client, the relay of the "
              "gateway path is\nlwm2m-gw (C, Paho MQTT C). The gateway path adds CBOR <-> CoAP "
              "translation and a CoAP\nround trip over UDP to the C test server (its CPU: "
              "'server').", end=" ")
        if a.mqtt_version == 4:
            print("Device and gateway share one topic:\nwith MQTT 3.1.1 mosquitto also delivers "
                  "each publish back to its publisher, 4 deliveries per\nop vs 2 raw (with "
                  "MQTT 5 no-local, 2 as raw).")
        else:
            print("With MQTT 5 no-local, both paths\ncost mosquitto 2 publishes in and 2 "
                  "deliveries out per op.")
        print(f"CPU is utime+stime over the measured interval ({HZ} ticks/s); 'bench' is this "
              f"process (load\ngenerator for both paths, % of one core); on {os.cpu_count()} "
              f"CPUs all processes share the cores.")
        problems = []
        m = gw.metrics
        # With MQTT 3.1.1 the gateway gets each of its results back and counts it as an
        # unmatched result; more than that is a result it could not match. Counted since its
        # start (it is idle by now: no echo still on its way).
        total = self.gw.metrics()
        unmatched = total.get("mqtt_unmatched_results_total", 0)
        if a.mqtt_version == 4:
            unmatched -= total.get("mqtt_messages_out_total", 0)
        if unmatched > 0:
            problems.append(f"gateway metric mqtt_unmatched_results_total: {unmatched} beyond "
                            f"its own results echoed back (since its start)")
        for key in ("mqtt_malformed_total", "mqtt_refused_total",
                    "mqtt_publish_failures_total", "mqtt_publishes_dropped_total",
                    "mqtt_reconnects_total", "mqtt_bad_topics_total",
                    "mqtt_unknown_operations_total", "malformed_total",
                    "gateway_timeouts_total", "upstream_failures_total"):
            if m.get(key, 0):
                problems.append(f"gateway metric {key} +{m[key]}")
        for phase in (gw, raw):
            if phase.lost:
                problems.append(f"{phase.name}: {phase.lost} requests without an answer "
                                f"within {LOST_AFTER_S:g} s ({phase.late} answers came later)")
            if phase.errors:
                problems.append(f"{phase.name}: {phase.errors} unexpected results "
                                f"{phase.error_results}")
            if phase.undecodable:
                problems.append(f"{phase.name}: {phase.undecodable} undecodable messages")
        problems += self.loop.errors
        if m:
            print(f"gateway counters, gateway path (warm-up included): "
                  f"{m.get('mqtt_messages_in_total', 0)} MQTT "
                  f"messages in ({m.get('mqtt_echoes_total', 0)} echoed operations, "
                  f"{m.get('mqtt_unmatched_results_total', 0)} unmatched results), "
                  f"{m.get('mqtt_messages_out_total', 0)} out, "
                  f"{m.get('mqtt_publishes_acknowledged_total', 0)} publishes acknowledged")
        if problems:
            print("\nwhat did not go as expected:")
            for p in problems:
                print("  - " + p)
        print(f"BENCH-MQTT ops_per_s={g['rate']:.1f} p50_ms={g['p50']:.2f} p99_ms={g['p99']:.2f} "
              f"lost={gw.lost} errors={gw.errors} gw_cpu_us_per_op={g['relay_us']:.0f} "
              f"broker_cpu_us_per_op={g['broker_us']:.0f} "
              f"server_cpu_us_per_op={g['server_us']:.0f} bench_cpu_pct={g['bench_pct']:.0f} "
              f"raw_ops_per_s={r['rate']:.1f} raw_p50_ms={r['p50']:.2f} "
              f"raw_p99_ms={r['p99']:.2f} raw_lost={raw.lost} raw_errors={raw.errors} "
              f"raw_responder_cpu_us_per_op={r['relay_us']:.0f} "
              f"raw_broker_cpu_us_per_op={r['broker_us']:.0f} "
              f"raw_bench_cpu_pct={r['bench_pct']:.0f} devices={a.devices} "
              f"seconds={a.seconds:g} mqtt_version={a.mqtt_version} qos={a.qos}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, help="MQTT devices, and raw clients (default 20)")
    ap.add_argument("--seconds", type=float, help="measured seconds per path (default 10)")
    ap.add_argument("--mqtt-version", type=int, choices=(4, 5), default=4,
                    help="4 = MQTT 3.1.1 (default), 5 = MQTT 5 (no-local subscriptions)")
    ap.add_argument("--qos", type=int, choices=(0, 1), default=1,
                    help="QoS of every publish and subscription, the gateway's too (default 1)")
    ap.add_argument("--quick", action="store_true", help="2 s, 5 devices (explicit options win)")
    ap.add_argument("--nagle", action="store_true",
                    help="leave Nagle's algorithm on in mosquitto and the bench's clients "
                         "(mosquitto's default; adds delayed-ACK stalls of 40 ms)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temporary directory")
    ap.add_argument("--echo-responder", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo_responder:
        return echo_responder(args)
    if args.devices is None:
        args.devices = 5 if args.quick else 20
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 10.0
    if args.devices < 1 or args.seconds <= 0:
        ap.error("--devices and --seconds must be positive")
    for path in (GATEWAY_BIN, SERVER_BIN):
        if not os.access(path, os.X_OK):
            print(f"setup broken: {path} is missing (build it, or set GW_BUILD_DIR)",
                  file=sys.stderr)
            return 1
    bench = Bench(args)
    ok = False
    try:
        ok = bench.main()
        if not ok:
            print("\nsetup broken: nothing got through one of the paths", file=sys.stderr)
    except (RuntimeError, AssertionError, OSError) as e:
        print(f"\nsetup broken: {e}", file=sys.stderr)
    finally:
        rc = bench.stop()
        if rc not in (0, None):
            print(f"gateway exited with {rc}", file=sys.stderr)
            ok = False
        names = ["gateway.log", f"mosquitto-{bench.broker.port}.log" if bench.broker else None]
        if not ok:
            names += ["server.log", "echo-responder.log"]
        for name in names:
            log = os.path.join(bench.logs, name) if name else None
            if not log or not os.path.exists(log) or not os.path.getsize(log):
                continue
            with open(log, errors="replace") as f:
                text = f.read()
            if name.startswith("mosquitto"):  # start/stop notices only, unless it complained
                lines = [ln for ln in text.splitlines()
                         if ("warning" in ln.lower() or "error" in ln.lower())
                         and "should not be run as root" not in ln]
                if not lines:
                    continue
                text = "\n".join(lines) + "\n"
            print(f"\n{name} (last 3000 characters):\n" + text[-3000:])
        if ok and not args.keep_logs:
            shutil.rmtree(bench.logs, ignore_errors=True)
        else:
            print(f"logs kept in {bench.logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
