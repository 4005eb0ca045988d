"""Abusive HTTP clients, for the HTTP binding's abuse tests and benchmark (bench/http_abuse.py).

- Slowloris: connections that trickle header lines and never end the header;
- leave_early(): clients that send a few bytes of a request and close;
- flood(): malformed requests, each on its own connection, many at a time.

Each client picks its source among loopback addresses (Linux routes all of 127.0.0.0/8 on lo),
so that one host plays one abusive address or several. Standard library only; what the clients
saw is counted here, for the tests to assert on.
"""
import collections
import socket
import threading
import time

# Abusive sources; 127.0.0.1 stays the legitimate devices' address.
LOOPBACK_SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]

# Requests a server must refuse, each with the status it must answer: half of them
# libmicrohttpd's parser refuses, the other half reach the binding's mapping (http_map.c).
MALFORMED = [
    (b"GET /rd HTTP/1.1\r\nHost: gw\r\nno colon here\r\n\r\n", 400),
    (b"POST /rd HTTP/1.1\r\nHost: gw\r\nContent-Length: 1x\r\n\r\n", 400),
    (b"GET /rd HTTP/9.1\r\nHost: gw\r\n\r\n", 505),
    (b"POST /rd?ep=a%zz HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    (b"PUT /rd?ep=a HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    (b"BREW /rd HTTP/1.1\r\nHost: gw\r\n\r\n", 501),
    (b"POST /rd?ep=" + b"a" * 1100 + b" HTTP/1.1\r\nHost: gw\r\n\r\n", 414),
    (b"POST /dp HTTP/1.1\r\nHost: gw\r\nContent-Type: image/png\r\nContent-Length: 1\r\n\r\nx",
     415),
]


def connect(port, source, timeout=2.0):
    """A TCP connection from `source` to the gateway on 127.0.0.1:`port`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def closed_by_peer(s):
    """True when the gateway ended s (end of stream or reset); bytes it sent are returned as the
    second value. Never waits (a socket with a timeout would wait for it first)."""
    s.settimeout(None)
    try:
        data = s.recv(4096, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False, b""
    except OSError:
        return True, b""
    return not data, data


class Slowloris:
    """Keeps `count` connections, spread over `sources` in turn, each sending one more header line
    every `interval` s and never the end of the header. A connection the gateway ends is opened
    again on the next round, as an attacker would. Runs in a thread from start() to stop()."""

    HEAD = b"POST /rd?ep=slowloris&lt=60 HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\n"

    def __init__(self, port, count, sources, interval=0.5):
        self.port = port
        self.slots = [(sources[i % len(sources)], None) for i in range(count)]
        self.interval = interval
        self.opened = 0  # TCP connections established
        self.ended = 0  # of those, ended by the gateway
        self.answered = 0  # got an answer (there is no complete request to answer: a bug)
        self.connect_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for _, s in self.slots:
            if s is not None:
                s.close()

    def _open(self, source):
        try:
            s = connect(self.port, source, timeout=1.0)
            s.sendall(self.HEAD)
        except OSError:
            self.connect_failures += 1
            return None
        self.opened += 1
        return s

    def _trickle(self, s, line):
        ended, data = closed_by_peer(s)
        if data:
            self.answered += 1
        if not ended:
            try:
                s.sendall(line)
                return s
            except OSError:
                pass
        self.ended += 1
        s.close()
        return None

    def _run(self):
        n = 0
        while not self._stop.is_set():
            start = time.monotonic()
            line = b"X-Slow-%d: 1\r\n" % n
            n += 1
            for i, (source, s) in enumerate(self.slots):
                if self._stop.is_set():
                    return
                s = self._trickle(s, line) if s is not None else self._open(source)
                self.slots[i] = (source, s)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - start)))


def leave_early(port, count, sources):
    """`count` clients that send the start of a request and close at once."""
    for i in range(count):
        try:
            s = connect(port, sources[i % len(sources)])
            s.sendall(b"POST /rd?ep=x HTTP/1.1\r\nHost: g")
            s.close()
        except OSError:
            pass


def _read_status(s, timeout):
    """The status code of the answer on s; "ended" if the gateway ended s without one,
    "no answer" after timeout s."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return "ended"
            data += chunk
    except socket.timeout:
        return "no answer"
    except OSError:
        return "ended"
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else "garbled"


def flood(port, total, concurrency, sources, half_close=False, timeout=5.0):
    """Sends `total` requests of MALFORMED in turn, each on its own connection (`concurrency` at
    once, the source going round `sources`), each client waiting up to `timeout` s for its
    answer; with half_close the client shuts down its sending side after its request, as some
    clients do. Returns (Counter of outcomes, number of answers with another status than
    MALFORMED lists); an outcome is the status, "ended" (ended by the gateway without an
    answer), "no answer" or "connect failed"."""
    outcomes = collections.Counter()
    wrong = [0]
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            request, expected = MALFORMED[i % len(MALFORMED)]
            try:
                s = connect(port, sources[i % len(sources)], timeout=timeout)
            except OSError:
                outcome = "connect failed"
            else:
                try:
                    s.sendall(request)
                    if half_close:
                        s.shutdown(socket.SHUT_WR)
                    outcome = _read_status(s, timeout)
                except OSError:
                    outcome = "ended"
                s.close()
            with lock:
                outcomes[outcome] += 1
                if isinstance(outcome, int) and outcome != expected:
                    wrong[0] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, wrong[0]
