"""The HTTP binding (Transport 7) across SIGKILLs of the gateway (issue 11).

Three HTTP devices (test/peers/lwm2m_http_device.py) keep sending (POST /dp) while the test
LwM2M server keeps reading them; the gateway is killed with SIGKILL and started again on its
state_dir, seven times: three times while a request of the server is on its way to the slow
device's HTTP server (a Read and an Execute the gateway had acknowledged empty, an Execute it had
not acknowledged yet), four times at random moments. A device sends a request that got no
answer (connection reset or refused) again, as http/README.md asks of a device. Assertions are
on what the devices and the server saw:
- no device registered again: each Register was the only one, and Updates after the restarts
  reach the server's registration from the same session;
- every Send a device got a 2xx for reached the server; a Send reaches it twice at most once
  per kill and device (HTTP has no message ID: a retried POST is a new request);
- every request of the server was answered: every Read with the device's value, the Read in
  flight at a kill too (sent to the device again); each Execute in flight at a kill reached the
  device once and was answered 5.04 (whether it ran is not known to the gateway);
- an unauthenticated device's location still protects its registration: another device's
  credentials get 403 there, a made-up location 404.
The seed of the random kill moments is in the figures printed and in a failure's message
(HTTP_RESTART_SEED repeats it).
"""
import collections
import os
import random
import signal
import socket
import time

from lwm2m_peers import free_port

RANDOM_KILLS = 4
RETRY_MS = "20000"
SLOW_MS = 3000  # the slow device's HTTP server answers after this: a separate response
ACKED_S = SLOW_MS / 2000.0 + 0.5  # past the empty ACK (piggyback_window_ms 1 s), before it
UNACKED_S = 0.3  # before the empty ACK


def send_body(seq):
    return f'[{{"n":"/3303/0/5700","v":{seq}}}]'


class Traffic:
    """Sends of every device and reads of the server, each device with one read and at most two
    Sends outstanding (a device sends one request at a time; the second waits in its queue)."""

    def __init__(self, server, devices):
        self.server = server
        self.devices = devices
        self.sent = {d.ep: 0 for d in devices}
        self.read_ids = {}  # id -> ep
        self.open_read = {d.ep: None for d in devices}
        self.next_id = 1000

    @staticmethod
    def send_answers(d):
        d.drain(0)
        return sum(1 for e in d.seen if e.get("event") == "response" and e.get("op") == "send")

    def answered(self, rid):
        self.server.drain(0)
        return any(e.get("event") == "response" and e.get("id") == rid for e in self.server.seen)

    def request(self, command, ep, path):
        rid = self.next_id
        self.next_id += 1
        self.server.send(f"{command} {rid} {ep} {path}")
        return rid

    def read(self, ep):
        rid = self.request("read", ep, "/3/0/2")
        self.read_ids[rid] = ep
        self.open_read[ep] = rid
        return rid

    def step(self):
        for d in self.devices:
            if self.sent[d.ep] - self.send_answers(d) < 2:
                self.sent[d.ep] += 1
                d.send("send " + send_body(self.sent[d.ep]))
            rid = self.open_read[d.ep]
            if rid is None or self.answered(rid):
                self.read(d.ep)

    def run(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step()
            time.sleep(0.05)

    def wait_read_answered(self, ep, timeout=10):
        deadline = time.monotonic() + timeout
        while self.open_read[ep] is not None and not self.answered(self.open_read[ep]):
            assert time.monotonic() < deadline, f"{ep}: a read got no answer"
            time.sleep(0.05)

    def settle(self, ids, timeout):
        """Waits until every Send has its answer and each of ids its response."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.send_answers(d) == self.sent[d.ep] for d in self.devices) and \
                    all(self.answered(rid) for rid in ids):
                return
            time.sleep(0.1)


def kill_in_flight(gw, device, send, method, target, after_s):
    """send() makes the server send a request; the gateway is killed after_s after the device's
    HTTP server got it (or 5 s after it was sent, if it never got it: the figures then say so).
    Returns what send() returned."""
    for e in device.drain(0):
        e["_taken"] = True  # earlier requests to the same target
    rid = send()
    try:
        device.wait_for("request", method=method, target=target, timeout=5)
    except AssertionError:
        pass
    time.sleep(after_s)
    gw.kill()
    return rid


def test_http_devices_go_on_across_sigkills(peers):
    seed = int(os.environ.get("HTTP_RESTART_SEED", random.SystemRandom().randrange(1 << 30)))
    rng = random.Random(seed)
    port = free_port(socket.SOCK_STREAM)
    gw_url = f"http://127.0.0.1:{port}"
    common = ["--lifetime", "600", "--retry-ms", RETRY_MS]
    anon = peers.http_device(gw_url, "h-anon", extra=common)
    basic = peers.http_device(gw_url, "h-basic", extra=common + ["--basic", "h-basic:pw-b"])
    slow = peers.http_device(gw_url, "h-slow", extra=common + ["--bearer", "tok-slow",
                                                               "--delay-ms", str(SLOW_MS)])
    devices = [anon, basic, slow]
    server = peers.server()
    entries = (f'{{ endpoint = "h-anon"; http_url = "{anon.url}"; }}, '
               f'{{ endpoint = "h-basic"; http_url = "{basic.url}"; http_password = "pw-b"; }}, '
               f'{{ endpoint = "h-slow"; http_url = "{slow.url}"; http_token = "tok-slow"; }}')
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}", devices=entries,
                       http=f'listen = "127.0.0.1:{port}";', device_timeout_ms=SLOW_MS + 2000,
                       log_level="info")
    registrations, locations = {}, {}
    for d in devices:
        d.send("register")
        registrations[d.ep] = server.wait_for("register", ep=d.ep)
        locations[d.ep] = d.wait_for("registered")["location"]

    traffic = Traffic(server, devices)
    kills = 0

    def restart():
        nonlocal gw, kills
        kills += 1
        gw = peers.restart(gw, name=f"gateway-{kills}")

    traffic.run(0.5)
    traffic.wait_read_answered(slow.ep)
    slow_read = kill_in_flight(gw, slow, lambda: traffic.read(slow.ep), "GET", "/3/0/2",
                               ACKED_S)
    restart()
    traffic.run(0.5)

    def execute():  # Reboot: a request the device must not get twice
        return traffic.request("execute", slow.ep, "/3/0/4")

    acked_execute = kill_in_flight(gw, slow, execute, "POST", "/3/0/4", ACKED_S)
    restart()
    traffic.run(0.5)
    unacked_execute = kill_in_flight(gw, slow, execute, "POST", "/3/0/4", UNACKED_S)
    restart()
    for _ in range(RANDOM_KILLS):
        traffic.run(rng.uniform(0.3, 1.5))
        gw.kill()
        traffic.step()  # Sends and reads while the gateway is away
        restart()
    traffic.run(0.5)
    executes = [acked_execute, unacked_execute]
    traffic.settle(list(traffic.read_ids) + executes, timeout=20)

    # What the peers saw, collected before any assertion so a failure shows all of it.
    server.drain(0.2)
    answers = {e["id"]: e for e in server.seen if e.get("event") == "response"}
    stored = collections.Counter((e["ep"], e["payload"]) for e in server.seen
                                 if e.get("event") == "send")
    sends = [(d.ep, e) for d in devices for e in d.seen
             if e.get("event") == "response" and e.get("op") == "send"]
    accepted = [(ep, e["sent"]) for ep, e in sends
                if e["status"] is not None and 200 <= e["status"] < 300]
    slow.drain(0)
    figures = {
        "seed": seed,
        "kills": kills,
        "sends": sum(traffic.sent.values()),
        "sends_2xx": len(accepted),
        "sends_refused": dict(collections.Counter(e["status"] for _, e in sends
                                                  if not e["status"] or e["status"] >= 300)),
        "sends_sent_again": sum(1 for _, e in sends if e.get("attempts", 1) > 1),
        "sends_lost": sum(1 for a in accepted if a not in stored),
        "sends_duplicated": sum(n - 1 for n in stored.values()),
        "reads": len(traffic.read_ids),
        "reads_unanswered": sum(1 for rid in traffic.read_ids if rid not in answers),
        "read_codes": dict(collections.Counter(answers[rid]["code"] for rid in traffic.read_ids
                                               if rid in answers)),
        "read_in_flight": answers.get(slow_read, {}).get("code"),
        "executes_in_flight": [answers.get(rid, {}).get("code") for rid in executes],
        "executes_run": slow.count("execute", path="/3/0/4"),
        "registers": server.count("register"),
    }
    print(figures)

    assert figures["registers"] == len(devices), figures
    assert figures["sends_2xx"] == figures["sends"], figures
    assert figures["sends_lost"] == 0, figures
    assert figures["sends_duplicated"] <= kills * len(devices), figures
    assert figures["reads_unanswered"] == 0, figures
    assert figures["read_in_flight"] == "2.05", figures
    assert figures["read_codes"] == {"2.05": figures["reads"]}, figures
    assert all(answers[rid]["payload"] == "0001" for rid in traffic.read_ids), figures
    assert figures["executes_in_flight"] == ["5.04", "5.04"], figures
    assert figures["executes_run"] == 2, figures  # each once

    # Updates after the restarts reach the same registration on the same session.
    for d in devices:
        d.send("update lt=600")
        assert d.wait_for("response", op="update", timeout=10)["status"] == 204, figures
        upd = server.wait_for("update", ep=d.ep)
        assert upd["location"] == registrations[d.ep]["location"], figures
        assert upd["peer"] == registrations[d.ep]["peer"], figures

    # h-anon registered without credentials: its location is what proves its Updates are its
    # own, and still does after the restarts.
    basic.send(f"raw POST {locations['h-anon']}?lt=60")
    refused = basic.wait_for("response", op="raw")
    assert refused["status"] == 403 and "not this registration's" in refused["payload"]
    anon.send("raw POST /rd/0123456789abcdef?lt=60")
    assert anon.wait_for("response", op="raw")["status"] == 404
    server.drain(0.3)
    assert server.count("update", ep="h-anon") == 1
    assert server.count("register") == len(devices)


def test_send_the_server_took_before_the_kill_reaches_it_twice(peers):
    """The limit of a device's retry (http/README.md): HTTP has no message ID, so a Send the
    server had taken when the gateway was killed, and the device got no answer for, is a new
    request when the device sends it again; the server gets it twice."""
    port = free_port(socket.SOCK_STREAM)
    dev = peers.http_device(f"http://127.0.0.1:{port}", "h-dup",
                            extra=["--lifetime", "600", "--retry-ms", RETRY_MS])
    server = peers.server()
    gw = peers.gateway(f"coap://127.0.0.1:{server.port}",
                       devices=f'{{ endpoint = "h-dup"; http_url = "{dev.url}"; }}',
                       http=f'listen = "127.0.0.1:{port}";')
    dev.send("register")
    server.wait_for("register", ep="h-dup")
    dev.wait_for("registered")
    server.proc.send_signal(signal.SIGSTOP)  # it takes the Send, and answers too late
    try:
        dev.send("send " + send_body(1))
        gw.wait_metric("uplink_requests_total", 2)
        gw.kill()
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert server.wait_for("send", ep="h-dup")["payload"] == send_body(1)
    peers.restart(gw)
    answer = dev.wait_for("response", op="send", timeout=15)
    assert answer["status"] == 204 and answer["attempts"] > 1
    assert server.wait_for("send", ep="h-dup")["payload"] == send_body(1)
    assert server.count("register") == 1
