"""Drives the gateway and the project's test peers (test/peers/) as child processes.

Each peer writes one JSON object per line on stdout and takes commands on stdin; the gateway is
configured with a file written here and watched through its metrics endpoint. Used by the
integration tests (conftest.py) and by the demo (scripts/demo).
"""
import json
import os
import pwd
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("GW_BUILD_DIR", os.path.join(ROOT, "build"))
GATEWAY_BIN = os.path.join(BUILD, "gateway", "lwm2m-gw")
SERVER_BIN = os.path.join(BUILD, "test", "peers", "lwm2m-test-server")
DEVICE_BIN = os.path.join(BUILD, "test", "peers", "lwm2m-test-device")
VMODEM_BIN = os.path.join(ROOT, "scripts", "vmodem")
VLNS_BIN = os.path.join(ROOT, "scripts", "vlns")
VSCEF_BIN = os.path.join(ROOT, "scripts", "vscef")
MQTT_DEVICE = os.path.join(ROOT, "test", "peers", "lwm2m_mqtt_device.py")
HTTP_DEVICE = os.path.join(ROOT, "test", "peers", "lwm2m_http_device.py")


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """A child process speaking JSON lines on stdout and taking commands on stdin."""

    def __init__(self, name, argv, log_dir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env)
        self.events = queue.Queue()
        self.seen = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "unparsed", "line": line}
            event["_t"] = time.monotonic()  # when it was seen (fault scenarios' recovery times)
            self.events.put(event)

    def send(self, command):
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, event, timeout=10.0, **match):
        """Returns the first event named `event` whose fields equal `match` (events already
        returned once are not returned again)."""
        deadline = time.monotonic() + timeout
        for e in self.seen:
            if not e.get("_taken") and e.get("event") == event and _matches(e, match):
                e["_taken"] = True
                return e
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: no '{event}' {match} within {timeout}s; saw {self._summary()}")
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(e)
            if e.get("event") == event and _matches(e, match):
                e["_taken"] = True
                return e

    def drain(self, settle=0.3):
        """Collects events arriving within `settle` seconds, and those already there (settle
        0: only those); returns all seen so far."""
        deadline = time.monotonic() + settle
        while True:
            left = deadline - time.monotonic()
            try:
                self.seen.append(self.events.get(timeout=left) if left > 0
                                 else self.events.get_nowait())
            except queue.Empty:
                if left <= 0:
                    return self.seen

    def seen_events(self, event, **match):
        """All events named `event` whose fields equal `match`, seen so far."""
        self.drain(0.05)
        return [e for e in self.seen if e.get("event") == event and _matches(e, match)]

    def count(self, event, **match):
        return len(self.seen_events(event, **match))

    def _summary(self):
        self.drain(0)
        return [{k: v for k, v in e.items() if k not in ("_taken", "_t")} for e in self.seen[-12:]]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def _matches(event, match):
    return all(event.get(k) == v for k, v in match.items())


class TestServer(Peer):
    def __init__(self, log_dir, psk=None, pki=None, quiet=False, port=0, name="server"):
        """psk=(identity, key_hex) and/or pki=(cert_file, key_file, ca_file) open a DTLS port;
        with pki the server requires a client certificate that chains to ca_file. quiet: no
        event per Send and Update (benchmarks: this process would parse thousands a second).
        port: where to listen (a server started again where it was), 0 for a free one."""
        argv = [SERVER_BIN, "--listen", f"127.0.0.1:{port}"] + (["--quiet"] if quiet else [])
        if psk or pki:
            argv += ["--dtls-listen", "127.0.0.1:0"]
        if psk:
            argv += ["--psk-identity", psk[0], "--psk-key", psk[1]]
        if pki:
            argv += ["--cert", pki[0], "--key", pki[1], "--ca", pki[2]]
        if port and os.path.exists(os.path.join(log_dir, f"{name}.log")):
            name = f"{name}-{port}-{int(time.monotonic() * 1000)}"
        super().__init__(name, argv, log_dir)
        ready = self.wait_for("listening")
        self.port = ready["port"]
        self.dtls_port = ready.get("dtls_port")

    def request(self, command, timeout=15.0):
        """Sends `command` (e.g. 'read 1 ep /3/0/0') and returns its response event."""
        rid = int(command.split()[1])
        self.send(command)
        return self.wait_for("response", timeout=timeout, id=rid)


def libconfig_value(value):
    """A Python value as libconfig text: str quoted, bool, int, a list of scalars as an array
    [..], a list of dicts as a list ( {..}, .. ), a dict as a group { key = value; .. }."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # libconfig strings take JSON's escapes
    if isinstance(value, dict):
        return "{ " + libconfig_settings(value) + " }"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            return "( " + ", ".join(libconfig_value(v) for v in value) + " )"
        return "[" + ", ".join(libconfig_value(v) for v in value) + "]"
    raise TypeError(f"no libconfig form for {value!r}")


def libconfig_settings(settings):
    """'key = value; ...' of a dict (None values left out), or a str as it is."""
    if isinstance(settings, str):
        return settings
    return " ".join(f"{k} = {libconfig_value(v)};" for k, v in settings.items()
                    if v is not None)


def lorawan_device(dev_eui, objects=None, endpoint=None, device_id=None, **more):
    """One devices entry of a LoRaWAN end device (conf/README.md): dev_eui, and optionally its
    object list (Transport table 6.8.4-1), endpoint (default: the DevEUI), TTS device_id, and
    any other device setting (upstream = "...")."""
    return libconfig_value(dict(dev_eui=dev_eui, objects=objects, endpoint=endpoint,
                                device_id=device_id, **more))


class Gateway:
    """lwm2m-gw with a configuration written for the test, on free loopback ports."""

    def __init__(self, tmp_path, upstream_uri, devices="", gateway_extra="", nidd_extra="",
                 name="gateway", upstream_extra="", sms=None, device_timeout_ms=3000,
                 mqtt=None, more_upstreams="", http=None, log_level="debug", state_dir=None,
                 sgi_port=None, lorawan=None):
        """log_level: the daemon's -l (benchmarks lower it: debug logging costs CPU per op).
        state_dir: gateway.state_dir, by default a directory of its own in tmp_path (a restarted
        gateway is given its predecessor's, and its sgi_port).
        lorawan: bindings.lorawan settings (without enabled), as libconfig text or a dict
        (libconfig_settings), e.g. {"broker": broker.uri, "application_id": "...", "ports":
        [{"fport": 1}], "ack_timeout_s": 2}; devices then lists lorawan_device(...) entries.
        The gateway counts as up once it is connected to that broker (metric
        lorawan_connected, set after its subscriptions were made)."""
        self.tmp_path = tmp_path
        self.state_dir = state_dir or os.path.join(tmp_path, f"state-{name}")
        if "state_dir" in gateway_extra:
            self.state_dir = None
        self.sgi_port = sgi_port or free_port()
        self.metrics_port = free_port(socket.SOCK_STREAM)
        self.config_path = os.path.join(tmp_path, f"{name}.conf")
        self.upstream_uri = upstream_uri
        self.gateway_extra = gateway_extra
        self.device_timeout_ms = device_timeout_ms
        self.nidd_extra = nidd_extra
        # bindings.sms settings (without enabled), e.g. 'modem = "/tmp/x/modem";'
        self.sms = sms
        # bindings.mqtt settings (without enabled), e.g. 'broker = "tcp://127.0.0.1:1883";'
        self.mqtt = mqtt
        # bindings.http settings (without enabled), e.g. 'listen = "127.0.0.1:8080";'
        self.http = http
        # further upstream list entries, e.g. '{ name = "bs"; uri = "coap://..."; }'
        self.more_upstreams = more_upstreams
        self.lorawan = lorawan
        self.write_config(devices, upstream_extra)
        self.peer = Peer(name, [GATEWAY_BIN, "-c", self.config_path, "-l", log_level], tmp_path)
        self._wait_ready()

    def write_config(self, devices, upstream_extra=""):
        self.devices = devices
        self.upstream_extra = upstream_extra
        sms_group = f"sms = {{ enabled = true; {self.sms} }};" if self.sms is not None else ""
        if self.mqtt is not None:
            sms_group += f"mqtt = {{ enabled = true; {self.mqtt} }};"
        if self.http is not None:
            sms_group += f"http = {{ enabled = true; {self.http} }};"
        if self.lorawan is not None:
            sms_group += f"lorawan = {{ enabled = true; {libconfig_settings(self.lorawan)} }};"
        more = f", {self.more_upstreams}" if self.more_upstreams else ""
        state = f'state_dir = "{self.state_dir}";' if self.state_dir else ""
        text = f"""
gateway = {{ log_level = "debug"; metrics = "127.0.0.1:{self.metrics_port}"; {state}
            piggyback_window_ms = 1000; device_timeout_ms = {self.device_timeout_ms};
            {self.gateway_extra} }};
upstream = ( {{ name = "default"; uri = "{self.upstream_uri}"; {upstream_extra} }}{more} );
devices = ( {devices} );
bindings = {{ nidd = {{ enabled = true; sgi = {{ listen = "127.0.0.1:{self.sgi_port}"; }};
             {self.nidd_extra} }};
             {sms_group} }};
"""
        # It may hold keys: private, as the gateway insists for files with secrets.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.peer.proc.poll() is not None:
                raise AssertionError("gateway exited at start:\n" + self.peer.log_text())
            try:
                m = self.metrics()
                # A LoRaWAN uplink published before the subscription is made is lost (QoS 0).
                if self.lorawan is None or m.get("lorawan_connected") == 1:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("gateway did not come up:\n" + self.peer.log_text())

    @property
    def sgi_uri(self):
        return f"coap://127.0.0.1:{self.sgi_port}"

    def metrics(self):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name.replace("lwm2m_gw_", "")] = int(value)
        return values

    def wait_metric(self, name, value, timeout=10.0):
        """Waits until metric `name` (without the lwm2m_gw_ prefix) equals value."""
        deadline = time.monotonic() + timeout
        while self.metrics().get(name) != value:
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway: {name} != {value} after {timeout}s:\n"
                                     + self.peer.log_text()[-3000:])
            time.sleep(0.05)

    def reload(self):
        self.peer.proc.send_signal(signal.SIGHUP)

    def kill(self):
        """SIGKILL, as the OOM killer or a power cut does: no chance to save anything."""
        self.peer.proc.kill()
        self.peer.proc.wait()
        self.killed = True

    def restart(self, name=None, **kw):
        """A new gateway process on this one's state_dir, SGi port and configuration."""
        return Gateway(self.tmp_path, self.upstream_uri, name=name or self.peer.name + "-next",
                       state_dir=self.state_dir, sgi_port=self.sgi_port,
                       gateway_extra=self.gateway_extra, nidd_extra=self.nidd_extra, sms=self.sms,
                       device_timeout_ms=self.device_timeout_ms, mqtt=self.mqtt, http=self.http,
                       lorawan=self.lorawan, more_upstreams=self.more_upstreams,
                       devices=self.devices,
                       upstream_extra=self.upstream_extra, **kw)

    def stop(self):
        rc = self.peer.stop()
        return 0 if getattr(self, "killed", False) else rc


class VModem(Peer):
    """scripts/vmodem: a virtual modem on a PTY behind `link`, phones on UDP ports."""

    def __init__(self, log_dir, phones, msisdn="12125550178", extra=(), targets=None):
        """targets: {msisdn: "127.0.0.1:PORT"}, where SMS to that phone go before any client
        has sent from it (a device's SMS interface)."""
        self.link = os.path.join(log_dir, "modem")
        argv = [VMODEM_BIN, "--link", self.link, "--msisdn", msisdn, "--stdin-commands",
                "--log", os.path.join(log_dir, "vmodem.trace")]
        for number in phones:
            target = (targets or {}).get(number)
            argv += ["--phone", f"{number}=0" + (f",{target}" if target else "")]
        super().__init__("vmodem", argv + list(extra), log_dir)
        self.pty = self.wait_for("unparsed")["line"]  # the first line is the PTY path
        self.phone_ports = {}
        for _ in phones:
            e = self.wait_for("phone")
            self.phone_ports[e["msisdn"]] = e["port"]
        self.wait_for("ready")

    def phone_uri(self, msisdn):
        return f"coap://127.0.0.1:{self.phone_ports[msisdn]}"


class Vlns(Peer):
    """scripts/vlns: a virtual LoRaWAN network server (ChirpStack v4 or The Things Stack v3
    MQTT integration) on a broker; each end device a UDP port on 127.0.0.1."""

    DEFAULT_APPLICATION = {"chirpstack": "8e1e9a3c-2f4b-4d7a-9c55-0a1b2c3d4e5f",
                           "tts": "lwm2m-gw-test"}

    def __init__(self, log_dir, broker, fmt="chirpstack", application=None, devices=(),
                 extra=(), name="vlns"):
        """broker: a Mosquitto or its port. devices: --device values, 'DEVEUI=UDPPORT[,class=A|C]
        [,dr=N][,fport=N][,id=ID]'; a bare DEVEUI gets a free port (see self.ports)."""
        port = getattr(broker, "port", broker)
        self.fmt = fmt
        self.application = application or self.DEFAULT_APPLICATION[fmt]
        argv = [VLNS_BIN, "--broker", f"127.0.0.1:{port}", "--format", fmt,
                "--application", self.application,
                "--log", os.path.join(log_dir, f"{name}.trace")]
        for spec in devices:
            argv += ["--device", spec if "=" in spec else f"{spec}=0"]
        super().__init__(name, argv + list(extra), log_dir)
        try:
            ready = self.wait_for("ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"vlns did not get ready:\n{self.log_text()}") from None
        self.devices = {d["deveui"]: d for d in ready["devices"]}
        self.ports = ready["ports"]  # lower-case DevEUI -> UDP port

    def device_addr(self, deveui):
        return ("127.0.0.1", self.ports[deveui.lower()])

    def device_uri(self, deveui):
        """Where a UDP LwM2M client of that end device sends (its 'server')."""
        return f"coap://127.0.0.1:{self.ports[deveui.lower()]}"


class Vscef(Peer):
    """scripts/vscef: a virtual SCEF (3GPP TS 29.122 T8 NIDD API) on a free loopback port;
    each UE a UDP port on 127.0.0.1 (one per RDS port pair)."""

    def __init__(self, log_dir, ues, extra=(), name="vscef"):
        """ues: --ue values 'ID=UDPPORT[:UEPORT-SCEFPORT]'; 'ID' or 'ID:UEPORT-SCEFPORT' get a
        free port (see self.ports, keyed by the device address 'ID' or 'ID/UEPORT-SCEFPORT').
        extra: more arguments (--psm S, --fail P, --token-file F, ...)."""
        argv = [VSCEF_BIN, "--listen", "127.0.0.1:0",
                "--log", os.path.join(log_dir, f"{name}.trace")]
        for spec in ues:
            if "=" not in spec:
                ident, _, rds = spec.partition(":")
                spec = f"{ident}=0" + (f":{rds}" if rds else "")
            argv += ["--ue", spec]
        super().__init__(name, argv + list(extra), log_dir)
        try:
            ready = self.wait_for("ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"vscef did not get ready:\n{self.log_text()}") from None
        self.ready = ready
        self.api_root = ready["api_root"]  # T8 resources under {api_root}/3gpp-nidd/v1/...
        self.token_url = ready.get("token_url")
        self.ports = ready["ports"]  # device address -> UDP port

    def ue_addr(self, address):
        """Where a UDP LwM2M client of that UE (and RDS port pair) sends."""
        return ("127.0.0.1", self.ports[address])

    def ue_uri(self, address):
        return f"coap://127.0.0.1:{self.ports[address]}"


class Device(Peer):
    def __init__(self, log_dir, server_uri, ep, local_port=0, extra=()):
        self.local_port = local_port or free_port()
        argv = [DEVICE_BIN, "--server", server_uri, "--ep", ep,
                "--local-port", str(self.local_port)] + list(extra)
        super().__init__(f"device-{ep}", argv, log_dir)
        self.ep = ep


class Mosquitto:
    """A mosquitto broker on a free loopback port (or a given one, to restart it)."""

    def __init__(self, log_dir, port=None, listeners="", persistent=False):
        """listeners: more mosquitto.conf listener blocks (TLS, WebSockets), after the plain
        anonymous listener on `port`; each block sets its own allow_anonymous.
        persistent: sessions (subscriptions, queued and in-flight QoS 1/2 messages) are saved in
        a directory of log_dir when mosquitto stops and loaded when it starts again, as a broker
        must be configured for nothing to be lost across its restart (mqtt/README.md)."""
        self.port = port or free_port(socket.SOCK_STREAM)
        self.conf = os.path.join(log_dir, f"mosquitto-{self.port}.conf")
        persistence = "persistence false\n"
        if persistent:
            self.persistence_dir = os.path.join(log_dir, f"mosquitto-{self.port}.db") + "/"
            os.makedirs(self.persistence_dir, exist_ok=True)
            persistence = f"persistence true\npersistence_location {self.persistence_dir}\n"
        with open(self.conf, "w") as f:
            # Run as the invoking user, so it can read the test's private key files.
            f.write(f"per_listener_settings true\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
                    + persistence +
                    "log_dest stderr\nlog_type error\nlog_type warning\n"
                    f"log_type notice\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    + listeners)
        self.log_path = os.path.join(log_dir, f"mosquitto-{self.port}.log")
        # Every listener must be up, not only the first: a port free_port() returned may be
        # taken meanwhile (mosquitto then logs "Unable to create ... listener" and exits).
        self.ports = [self.port] + [int(line.split()[1]) for line in listeners.splitlines()
                                    if line.startswith("listener ")]
        self.proc = None
        self.start()

    def _listening(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self._log,
                                     stderr=self._log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if all(self._listening(p) for p in self.ports):
                return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"mosquitto did not start on ports {self.ports}")

    @property
    def uri(self):
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        return 0


class HttpDevice(Peer):
    """test/peers/lwm2m_http_device.py: an LwM2M client over HTTP (Transport 7), with its own
    HTTP server for the server's requests at self.url."""

    def __init__(self, log_dir, gateway_url, ep, extra=()):
        argv = ["/usr/bin/python3", HTTP_DEVICE, "--gateway", gateway_url, "--ep", ep,
                "--listen", "127.0.0.1:0"] + list(extra)
        super().__init__(f"http-device-{ep}", argv, log_dir)
        self.ep = ep
        self.url = self.wait_for("ready")["url"]


class MqttDevice(Peer):
    """test/peers/lwm2m_mqtt_device.py: an LwM2M client over MQTT with CBOR payloads."""

    def __init__(self, log_dir, broker, ep, prefix="", extra=()):
        argv = ["/usr/bin/python3", MQTT_DEVICE, "--broker", f"127.0.0.1:{broker.port}",
                "--prefix", prefix, "--ep", ep] + list(extra)
        super().__init__(f"mqtt-device-{ep}", argv, log_dir)
        self.ep = ep
        self.prefix = prefix


class PeerSet:
    """Starts peers on demand into log_dir and stops them all at the end (the integration
    tests' `peers` fixture, the fault scenarios and scripts/faults)."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.started = []

    def _keep(self, peer):
        self.started.append(peer)
        return peer

    def server(self, **kw):
        return self._keep(TestServer(self.log_dir, **kw))

    def gateway(self, upstream_uri, **kw):
        return self._keep(Gateway(self.log_dir, upstream_uri, **kw))

    def restart(self, gateway, **kw):
        """gateway (killed or stopped) started again on its state_dir and ports."""
        return self._keep(gateway.restart(**kw))

    def device(self, gateway, ep, server_uri=None, **kw):
        """A test device; on the gateway's SGi port unless server_uri says otherwise (e.g. a
        vmodem phone port, making it an SMS device)."""
        return self._keep(Device(self.log_dir, server_uri or gateway.sgi_uri, ep, **kw))

    def vmodem(self, phones, **kw):
        return self._keep(VModem(self.log_dir, phones, **kw))

    def broker(self, **kw):
        return self._keep(Mosquitto(self.log_dir, **kw))

    def vlns(self, broker, fmt="chirpstack", extra_args=(), **kw):
        """scripts/vlns on `broker` (a Mosquitto or its port); see Vlns."""
        kw["extra"] = list(kw.get("extra", ())) + list(extra_args)
        return self._keep(Vlns(self.log_dir, broker, fmt=fmt, **kw))

    def vscef(self, ues, extra_args=(), **kw):
        """scripts/vscef with `ues` (--ue values); see Vscef."""
        kw["extra"] = list(kw.get("extra", ())) + list(extra_args)
        return self._keep(Vscef(self.log_dir, ues, **kw))

    def mqtt_device(self, broker, ep, **kw):
        return self._keep(MqttDevice(self.log_dir, broker, ep, **kw))

    def http_device(self, gateway_url, ep, **kw):
        return self._keep(HttpDevice(self.log_dir, gateway_url, ep, **kw))

    def stop_all(self):
        """Stops everything, newest first; returns what went wrong (a gateway that did not
        exit 0)."""
        failures = []
        for p in reversed(self.started):
            rc = p.stop()
            if isinstance(p, Gateway) and rc != 0:
                failures.append(f"gateway exited with {rc}:\n" + p.peer.log_text()[-4000:])
        self.started = []
        return failures


def peers_fixture(tmp_path):
    """The `peers` pytest fixture (integration tests, fault suite): a PeerSet in the test's
    tmp_path, stopped at the end; every gateway must have exited cleanly (or been killed)."""
    peer_set = PeerSet(str(tmp_path))
    yield peer_set
    failures = peer_set.stop_all()
    assert not failures, "\n".join(failures)
