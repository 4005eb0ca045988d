"""HTTP abuse benchmark: how many legitimate LwM2M Registers the HTTP binding answers while it is
abused (issue 11, "nobody locked out").

Each scenario starts a fresh test LwM2M server and gateway (default bindings.http settings, or
--http-extra), starts the abuse from loopback addresses 127.0.0.2-9 (test/integration/
http_abuse.py), lets it settle, then sends N Registers of N configured devices from 127.0.0.1
at once, each waiting up to --wait seconds for its answer. Scenarios:

  slowloris-1   --slow connections from one address, trickling header lines, reopened when ended
  slowloris-8   the same spread over 8 addresses
  flood         --flood malformed requests (64 clients at once over 8 addresses, each reading
                its answer), the Registers sent while it runs
  flood-hc      the same, each client half-closing after its request

Prints per scenario: Registers answered (201) of N and the slowest answer, what the abusive
clients saw, and the gateway's HTTP counters; then `BENCH-HTTP-ABUSE key=value ...`. A
benchmark, not a test: it judges nothing. Run against any build with GW_BUILD_DIR (an older
build knows fewer settings: leave --http-extra empty).
"""
import argparse
import http.client
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
from http_abuse import LOOPBACK_SOURCES, Slowloris, flood  # noqa: E402
from lwm2m_peers import Gateway, TestServer, free_port  # noqa: E402


def registers(port, n, wait):
    """N Registers at once from 127.0.0.1; -> list of (status or None, seconds)."""
    results = [(None, 0.0)] * n

    def one(i):
        start = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=wait)
            c.request("POST", f"/rd?ep=legit-{i}&lt=60&b=H", body=b"</1/0>,</3/0>",
                      headers={"Content-Type": "application/link-format"})
            r = c.getresponse()
            r.read()
            c.close()
            results[i] = (r.status, time.monotonic() - start)
        except (OSError, http.client.HTTPException):
            results[i] = (None, time.monotonic() - start)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def scenario(name, args, logs):
    server = TestServer(logs, quiet=True)
    port = free_port(socket.SOCK_STREAM)
    devices = ", ".join(f'{{ endpoint = "legit-{i}"; }}' for i in range(args.registers))
    gw = Gateway(logs, f"coap://127.0.0.1:{server.port}", devices=devices, name=f"gw-{name}",
                 http=f'listen = "127.0.0.1:{port}"; {args.http_extra}', log_level="warning")
    seen = {}
    try:
        if name.startswith("slowloris"):
            sources = LOOPBACK_SOURCES[:1] if name == "slowloris-1" else LOOPBACK_SOURCES
            with Slowloris(port, args.slow, sources) as slow:
                time.sleep(args.settle)
                results = registers(port, args.registers, args.wait)
            seen = {"opened": slow.opened, "ended_by_gateway": slow.ended,
                    "answered": slow.answered}
        else:
            done = {}
            t = threading.Thread(target=lambda: done.update(r=flood(
                port, args.flood, 64, LOOPBACK_SOURCES, half_close=name == "flood-hc")))
            t.start()
            time.sleep(args.settle)
            results = registers(port, args.registers, args.wait)
            t.join()
            outcomes, wrong = done["r"]
            answered = sum(v for k, v in outcomes.items() if isinstance(k, int))
            seen = {"answered": answered, "wrong_status": wrong,
                    **{k.replace(" ", "_"): v for k, v in outcomes.items()
                       if not isinstance(k, int)}}
        counters = {k[5:]: v for k, v in gw.metrics().items()
                    if k.startswith("http_") and v and k != "http_client_in_flight"}
    finally:
        gw.stop()
        server.stop()
    ok = [s for st, s in results if st == 201]
    slowest = f"{max(ok):.1f} s" if ok else "-"
    print(f"{name:<12} Registers answered {len(ok)}/{len(results)} (slowest {slowest})   "
          f"abusive clients: {' '.join(f'{k}={v}' for k, v in seen.items())}")
    print(f"{'':<12} gateway: {' '.join(f'{k}={v}' for k, v in sorted(counters.items()))}")
    return len(ok)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=300, help="slowloris connections (300)")
    parser.add_argument("--flood", type=int, default=10000, help="malformed requests (10000)")
    parser.add_argument("--registers", type=int, default=5, help="legitimate Registers (5)")
    parser.add_argument("--wait", type=float, default=30, help="per Register, seconds (30)")
    parser.add_argument("--settle", type=float, default=3, help="abuse before Registers (3)")
    parser.add_argument("--http-extra", default="", help="more bindings.http settings")
    parser.add_argument("--only", help="one scenario")
    args = parser.parse_args()
    logs = tempfile.mkdtemp(prefix="lwm2m-gw-http-abuse-")
    print(f"HTTP abuse benchmark: {args.registers} Registers from 127.0.0.1, abuse from "
          f"{LOOPBACK_SOURCES[0]}-{LOOPBACK_SOURCES[-1]}, {os.cpu_count()} CPUs shared by all")
    figures = {}
    try:
        for name in ("slowloris-1", "slowloris-8", "flood", "flood-hc"):
            if not args.only or args.only == name:
                figures[name.replace("-", "_")] = scenario(name, args, logs)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print("BENCH-HTTP-ABUSE registers=%d %s" % (
        args.registers, " ".join(f"{k}_answered={v}" for k, v in figures.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
