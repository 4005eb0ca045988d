"""HTTP benchmark: LwM2M Send operations per second through the gateway's HTTP binding.

wrk (HTTP/1.1 keep-alive) -> lwm2m-gw (http binding) -> CoAP/UDP -> lwm2m-test-server, and back

N devices (each a devices entry with its own Bearer token, registered over HTTP first) send
LwM2M Send (POST /dp, 38-byte SenML JSON) in a closed loop: wrk keeps N connections with one
request in flight each, the token of each request going round the devices, for S seconds. In
the same run, with the same wrk script and connection count, the direct HTTP round trip is
measured against lwm2m-gw-http-echo: the gateway's own HTTP server (libmicrohttpd in the same
event loop) answering 204 at once, so the difference is what relaying to CoAP and back adds.
Prints for both: requests per second, latency p50 / p99, errors (non-2xx answers, timeouts,
socket errors), the CPU time per request of the gateway (or echo server) and of the test
server; then a last line `BENCH-HTTP key=value ...` for scripts.

A benchmark, not a test: it never judges the figures. It exits non-zero only when the setup is
broken (a peer does not start, a device cannot register, or nothing gets through).
Run it with scripts/bench-http; see bench/README.md, "HTTP benchmark".
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
from lwm2m_peers import GATEWAY_BIN, SERVER_BIN, Gateway, TestServer, free_port  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
BUILD_DIR = os.environ.get("GW_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
ECHO_BIN = os.path.join(BUILD_DIR, "bench", "lwm2m-gw-http-echo")
SEND_BODY = '[{"bn":"/3303/0/","n":"5700","v":21.5}]'

# wrk's Lua: one request in flight per connection (wrk's closed loop), the device tokens taken
# in turn, and a machine-readable summary line.
WRK_SCRIPT = r"""
local tokens = {}
local i = 0
local body = '%s'
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
request = function()
  i = i %% #tokens + 1
  return wrk.format("POST", "/dp", {["Content-Type"] = "application/senml+json",
                                    ["Authorization"] = "Bearer " .. tokens[i]}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%%d duration_us=%%d status_errors=%%d timeouts=%%d socket_errors=%%d " ..
    "p50_us=%%d p99_us=%%d\n", summary.requests, summary.duration, e.status, e.timeout,
    e.connect + e.read + e.write, latency:percentile(50), latency:percentile(99)))
end
""" % SEND_BODY


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks (/proc/PID/stat 14, 15)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def run_wrk(url, script, tokens_file, connections, seconds):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script,
            url, "--", tokens_file]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("WRK ")), None)
    if p.returncode != 0 or not line:
        raise RuntimeError(f"wrk failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}


def measure(name, url, pids, args, script, tokens_file):
    before = [cpu_ticks(p) for p in pids]
    r = run_wrk(url, script, tokens_file, args.devices, args.seconds)
    used = [(cpu_ticks(p) - b) / HZ for p, b in zip(pids, before)]
    rate = r["requests"] / (r["duration_us"] / 1e6)
    per_op = [u / r["requests"] * 1e6 if r["requests"] else 0.0 for u in used]
    errors = r["status_errors"] + r["timeouts"] + r["socket_errors"]
    print(f"{name:<28} {rate:>9,.0f} req/s   p50 {r['p50_us'] / 1000:6.2f} ms   "
          f"p99 {r['p99_us'] / 1000:6.2f} ms   errors {errors}   "
          f"CPU/op {per_op[0]:6.1f} us" + (f" (+ server {per_op[1]:.1f} us)"
                                            if len(per_op) > 1 else ""))
    return {"rate": rate, "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "errors": errors, "cpu_us": per_op[0], "requests": r["requests"]}


def register_devices(base_port, tokens):
    conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=10)
    for i, token in enumerate(tokens):
        conn.request("POST", f"/rd?ep=bench-{i}&lt=3600&b=H", body=b"</3303/0>",
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/link-format"})
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError(f"bench-{i} could not register: HTTP {r.status}")
    conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20, help="devices = connections (20)")
    parser.add_argument("--seconds", type=int, default=10, help="per measurement (10)")
    parser.add_argument("--quick", action="store_true", help="4 devices, 2 s")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.seconds = 4, 2
    for path in (GATEWAY_BIN, SERVER_BIN, ECHO_BIN):
        if not os.access(path, os.X_OK):
            sys.exit(f"http_bench: {path} is not built (scripts/bench-http builds it)")
    if not shutil.which("wrk"):
        sys.exit("http_bench: wrk is missing (scripts/install-deps.sh)")

    logs = tempfile.mkdtemp(prefix="lwm2m-gw-http-bench-")
    started = []
    echo = None
    try:
        tokens = [f"bench-token-{i:04d}" for i in range(args.devices)]
        tokens_file = os.path.join(logs, "tokens")
        with open(tokens_file, "w") as f:
            f.write("\n".join(tokens) + "\n")
        script = os.path.join(logs, "send.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)

        server = TestServer(logs, quiet=True)
        started.append(server)
        port = free_port(socket.SOCK_STREAM)
        devices = ", ".join(f'{{ endpoint = "bench-{i}"; http_token = "{t}"; }}'
                            for i, t in enumerate(tokens))
        gw = Gateway(logs, f"coap://127.0.0.1:{server.port}", devices=devices,
                     http=f'listen = "127.0.0.1:{port}";', device_timeout_ms=60000,
                     log_level="warning")
        started.append(gw)
        register_devices(port, tokens)

        echo = subprocess.Popen([ECHO_BIN, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        echo_port = json.loads(echo.stdout.readline())["port"]

        print(f"HTTP benchmark: {args.devices} devices = connections, closed loop, "
              f"{args.seconds} s each, wrk 1 thread, {os.cpu_count()} CPUs shared by all")
        # warm-up: connections, the devices' upstream sessions
        run_wrk(f"http://127.0.0.1:{port}", script, tokens_file, args.devices, 1)
        relay = measure("HTTP -> gateway -> CoAP", f"http://127.0.0.1:{port}",
                        [gw.peer.proc.pid, server.proc.pid], args, script, tokens_file)
        direct = measure("direct HTTP (echo, 204)", f"http://127.0.0.1:{echo_port}",
                         [echo.pid], args, script, tokens_file)
        if relay["requests"] == 0:
            raise RuntimeError("no Send got through the gateway")
        m = gw.metrics()
        added_ms = relay["p50_ms"] - direct["p50_ms"]
        print(f"relaying adds {added_ms:.2f} ms at p50 and "
              f"{relay['cpu_us'] - direct['cpu_us']:.1f} us of CPU per request; gateway "
              f"answered {m.get('http_answered_total', 0)} requests, refused "
              f"{m.get('http_bad_requests_total', 0) + m.get('http_forbidden_total', 0)}")
        print(f"BENCH-HTTP devices={args.devices} seconds={args.seconds} "
              f"relay_rps={relay['rate']:.0f} relay_p50_ms={relay['p50_ms']:.2f} "
              f"relay_p99_ms={relay['p99_ms']:.2f} relay_errors={relay['errors']} "
              f"relay_cpu_us={relay['cpu_us']:.1f} direct_rps={direct['rate']:.0f} "
              f"direct_p50_ms={direct['p50_ms']:.2f} direct_p99_ms={direct['p99_ms']:.2f} "
              f"direct_errors={direct['errors']} direct_cpu_us={direct['cpu_us']:.1f}")
        return 0
    except (RuntimeError, AssertionError, OSError) as e:
        print(f"http_bench: {e}", file=sys.stderr)
        return 1
    finally:
        if echo:
            echo.terminate()
            echo.wait(timeout=10)
        for p in reversed(started):
            p.stop()
        if args.keep_logs:
            print(f"logs: {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
