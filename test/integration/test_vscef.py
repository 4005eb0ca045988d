"""The virtual SCEF (scripts/vscef) on its own, without the gateway.

Each test starts vscef (lwm2m_peers: PeerSet.vscef), plays the application server (SCS/AS)
with urllib as its T8 client and a small HTTP server as its notificationDestination
(NotificationSink below), plays the UEs with plain UDP sockets, and asserts on what those
actually received: HTTP status codes, headers and JSON bodies as 3GPP TS 29.122 (Rel-17
OpenAPI, /work/shared/reference/3gpp-t8/) defines them, and the datagrams that came out of the
UE ports. The expected shapes are written from the reference notes
(/work/shared/reference/lorawan-and-t8.md PART 2) and the OpenAPI files, not from vscef.
"""
import base64
import datetime
import http.server
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

EXT = "sensor-1@iot.example.com"
MSISDN = "491701234567"
SCS = "lwm2m-gw"


def b64(data):
    return base64.b64encode(data).decode()


def utc_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class NotificationSink:
    """The application server's notificationDestination: keeps every POSTed JSON body and
    answers 204 (or `self.answer`)."""

    def __init__(self):
        self.inbox = queue.Queue()
        self.seen = []
        self.answer = 204
        sink = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(n)
                sink.inbox.put((self.path, self.headers.get("Content-Type"), raw))
                self.send_response(sink.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/t8/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, timeout=5.0, where=lambda body: True):
        """The first notification body not yet returned for which `where` holds."""
        deadline = time.monotonic() + timeout
        while True:
            for n in self.seen:
                if not n["taken"] and where(n["body"]):
                    n["taken"] = True
                    return n["body"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such notification within {timeout}s; got "
                                     f"{[n['body'] for n in self.seen]}")
            try:
                path, ctype, raw = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            assert path == "/t8/notify" and ctype.startswith("application/json")
            self.seen.append({"body": json.loads(raw), "taken": False})

    def quiet(self, settle=0.3):
        """No notification arrives within `settle` seconds."""
        try:
            raw = self.inbox.get(timeout=settle)[2]
        except queue.Empty:
            return
        raise AssertionError(f"unexpected notification {raw!r}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class T8:
    """urllib in the SCS/AS's place: JSON in, (status, headers, JSON or None) out."""

    def __init__(self, api_root, token=None):
        self.base = f"{api_root}/3gpp-nidd/v1/{SCS}"
        self.token = token
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method, url, body=None, ctype="application/json", raw=None, headers=None):
        if not url.startswith("http"):
            url = self.base + url
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        h = dict(headers or {})
        if data is not None:
            h["Content-Type"] = ctype
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=5) as r:
                status, hdrs, text = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, e.headers, e.read()
        return status, hdrs, (json.loads(text) if text else None)

    def configure(self, ident, sink, **more):
        key = "externalId" if "@" in ident else "msisdn"
        status, hdrs, body = self.call("POST", "/configurations", dict(
            {key: ident, "notificationDestination": sink.url}, **more))
        assert status == 201, body
        assert hdrs["Location"] == body["self"]
        return body

    def downlink(self, config, ident, data, **more):
        key = "externalId" if "@" in ident else "msisdn"
        return self.call("POST", config["self"] + "/downlink-data-deliveries",
                         dict({key: ident, "data": b64(data)}, **more))


class Ue:
    """A UDP LwM2M client of one UE port."""

    def __init__(self, vscef, address):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3)
        self.to = vscef.ue_addr(address)

    def send(self, data):
        self.sock.sendto(data, self.to)

    def recv(self, timeout=3):
        self.sock.settimeout(timeout)
        data, addr = self.sock.recvfrom(2048)
        assert addr == self.to
        return data

    def nothing(self, timeout=0.3):
        self.sock.settimeout(timeout)
        with pytest.raises(socket.timeout):
            self.sock.recvfrom(2048)


@pytest.fixture
def sink():
    s = NotificationSink()
    yield s
    s.close()


def healthy(vscef):
    """vscef's own answers and notifications matched the schemas, and it did not trip."""
    assert vscef.count("self_check_failed") == 0, vscef.seen_events("self_check_failed")
    assert vscef.count("internal_error") == 0, vscef.seen_events("internal_error")
    assert "Traceback" not in vscef.log_text(), vscef.log_text()


def problem_of(status, hdrs, body, code):
    assert status == code, body
    assert hdrs["Content-Type"] == "application/problem+json"
    assert body["status"] == code and body["title"] and body["detail"]
    return body


def test_configuration_lifecycle(peers, sink):
    v = peers.vscef([EXT])
    t8 = T8(v.api_root)
    cfg = t8.configure(EXT, sink, duration=utc_in(600), reliableDataService=False)
    assert cfg["self"].startswith(f"{v.api_root}/3gpp-nidd/v1/{SCS}/configurations/")
    assert cfg["status"] == "ACTIVE" and cfg["externalId"] == EXT
    assert "maximumPacketSize" not in cfg  # only with --max-packet-size
    v.wait_for("configuration_created", id=cfg["self"].rsplit("/", 1)[1], ue=EXT)

    status, _, got = t8.call("GET", cfg["self"])
    assert status == 200 and got["self"] == cfg["self"]
    status, _, listed = t8.call("GET", "/configurations")
    assert status == 200 and [c["self"] for c in listed] == [cfg["self"]]
    # another SCS/AS does not see it
    status, _, listed = t8.call("GET", f"{v.api_root}/3gpp-nidd/v1/other-as/configurations")
    assert status == 200 and listed == []

    # renewal: ModifyNIDDConfiguration takes application/merge-patch+json
    new_end = utc_in(1200)
    status, _, got = t8.call("PATCH", cfg["self"], {"duration": new_end},
                             ctype="application/merge-patch+json")
    assert status == 200 and got["duration"] == new_end
    problem_of(*t8.call("PATCH", cfg["self"], {"duration": new_end}), 415)
    # nullable members may be null in a patch (NiddConfigurationPatch.reliableDataService)
    status, _, got = t8.call("PATCH", cfg["self"], {"reliableDataService": None},
                             ctype="application/merge-patch+json")
    assert status == 200 and "reliableDataService" not in got

    status, _, body = t8.call("DELETE", cfg["self"])
    assert status == 204 and body is None
    v.wait_for("configuration_deleted", target=EXT)
    problem_of(*t8.call("GET", cfg["self"]), 404)
    problem_of(*t8.call("DELETE", cfg["self"]), 404)
    # unknown UEs are refused
    problem_of(*t8.call("POST", "/configurations", {"externalId": "nobody@iot.example.com",
                                                    "notificationDestination": sink.url}), 403)
    healthy(v)


def test_configuration_expires_and_max_duration(peers, sink):
    v = peers.vscef([EXT, MSISDN], extra_args=["--max-duration", "2.5"])
    t8 = T8(v.api_root)
    short = t8.configure(EXT, sink, duration=utc_in(1))
    far = t8.configure(MSISDN, sink, duration=utc_in(3600))
    # the SCEF shortened the one beyond its limit: the answer says until when
    assert parse_time(far["duration"]) <= parse_time(utc_in(3))
    e = v.wait_for("configuration_expired", timeout=4, target=EXT)
    assert e["id"] == short["self"].rsplit("/", 1)[1]
    note = sink.wait(where=lambda b: b.get("niddConfiguration") == short["self"])
    assert note == {"niddConfiguration": short["self"], "externalId": EXT, "status": "TERMINATED"}
    problem_of(*t8.call("GET", short["self"]), 404)
    v.wait_for("configuration_expired", timeout=4, target=MSISDN)
    problem_of(*t8.call("GET", far["self"]), 404)
    # a duration in the past is refused
    problem_of(*t8.call("POST", "/configurations", {
        "externalId": EXT, "notificationDestination": sink.url,
        "duration": "2001-01-01T00:00:00Z"}), 400)
    healthy(v)


def test_uplink_and_downlink_with_and_without_rds(peers, sink):
    v = peers.vscef([EXT, f"{MSISDN}:0-1", f"{MSISDN}:0-2"])
    t8 = T8(v.api_root)
    plain = t8.configure(EXT, sink)
    rds = t8.configure(MSISDN, sink, reliableDataService=True,
                       rdsPorts=[{"portUE": 0, "portSCEF": 1}, {"portUE": 0, "portSCEF": 2}])
    dev = Ue(v, EXT)
    server1, server2 = Ue(v, f"{MSISDN}/0-1"), Ue(v, f"{MSISDN}/0-2")

    dev.send(b"\x40\x02\x12\x34register")
    note = sink.wait(where=lambda b: b.get("externalId") == EXT)
    assert note == {"niddConfiguration": plain["self"], "externalId": EXT,
                    "data": b64(b"\x40\x02\x12\x34register")}
    v.wait_for("uplink", ue=EXT, rds=None, len=12)

    server2.send(b"to-bootstrap")
    note = sink.wait(where=lambda b: b.get("msisdn") == MSISDN)
    assert note["niddConfiguration"] == rds["self"]
    assert note["rdsPort"] == {"portUE": 0, "portSCEF": 2}
    assert note["data"] == b64(b"to-bootstrap") and note["reliableDataService"] is True
    server1.send(b"to-server")
    note = sink.wait(where=lambda b: b.get("msisdn") == MSISDN)
    assert note["rdsPort"] == {"portUE": 0, "portSCEF": 1}

    # the UE is awake: 200, delivered at once, out of the port of that RDS pair
    status, _, body = t8.downlink(rds, MSISDN, b"answer-2", rdsPort={"portUE": 0, "portSCEF": 2})
    assert status == 200 and body["deliveryStatus"] == "SUCCESS", body
    assert server2.recv() == b"answer-2"
    status, _, body = t8.downlink(rds, MSISDN, b"answer-1", reliableDataService=True,
                                  rdsPort={"portUE": 0, "portSCEF": 1})
    assert status == 200 and body["deliveryStatus"] == "SUCCESS_ACKNOWLEDGED"
    assert server1.recv() == b"answer-1"
    server2.nothing()
    status, _, body = t8.downlink(plain, EXT, b"\x60\x44\x12\x34")
    assert status == 200 and dev.recv() == b"\x60\x44\x12\x34"
    v.wait_for("downlink", ue=EXT, code=200, status="SUCCESS", hex="60441234")

    # RDS ports the configuration does not list: 403 RDS_PORT_UNKNOWN (TS 29.122 4.4.5.3)
    status, hdrs, body = t8.downlink(rds, MSISDN, b"x", rdsPort={"portUE": 3, "portSCEF": 3})
    assert problem_of(status, hdrs, body, 403)["cause"] == "RDS_PORT_UNKNOWN"
    # data for another UE than the configuration's
    problem_of(*t8.downlink(plain, MSISDN, b"x"), 400)

    # a UE without a configuration: its uplink goes nowhere
    t8.call("DELETE", plain["self"])
    dev.send(b"orphan")
    v.wait_for("uplink_dropped", ue=EXT)
    sink.quiet()
    healthy(v)


def test_sleeping_ue_buffers_and_notifies(peers, sink):
    v = peers.vscef([EXT], extra_args=["--psm", "30", "--active-time", "0.2"])
    t8 = T8(v.api_root)
    cfg = t8.configure(EXT, sink)
    dev = Ue(v, EXT)

    # never heard from: no PDN connection yet: BUFFERING, delivered at its first uplink
    status, hdrs, first = t8.downlink(cfg, EXT, b"early")
    assert status == 201 and first["deliveryStatus"] == "BUFFERING", first
    assert hdrs["Location"] == first["self"]
    dev.send(b"hello")
    assert dev.recv() == b"early"
    note = sink.wait(where=lambda b: "deliveryStatus" in b)
    assert note == {"niddDownlinkDataTransfer": first["self"], "deliveryStatus": "SUCCESS"}
    sink.wait(where=lambda b: b.get("data") == b64(b"hello"))

    v.wait_for("ue_asleep", ue=EXT, timeout=3)
    status, hdrs, pending = t8.downlink(cfg, EXT, b"while-asleep")
    assert status == 201, pending
    assert pending["deliveryStatus"] == "BUFFERING_TEMPORARILY_NOT_REACHABLE"
    status, _, got = t8.call("GET", hdrs["Location"])
    assert status == 200 and got["data"] == b64(b"while-asleep")
    status, _, listed = t8.call("GET", cfg["self"] + "/downlink-data-deliveries")
    assert [d["self"] for d in listed] == [pending["self"]]
    # one more, then withdrawn (DELETE): it never reaches the UE
    status, _, gone = t8.downlink(cfg, EXT, b"withdrawn")
    assert status == 201
    assert t8.call("DELETE", gone["self"])[0] == 204
    # maximumLatency 0: not to be buffered: 500 with when to try again
    status, _, failure = t8.downlink(cfg, EXT, b"now-or-never", maximumLatency=0)
    assert status == 500 and failure["problemDetail"]["status"] == 500
    assert parse_time(failure["requestedRetransmissionTime"]) > parse_time(utc_in(20))
    dev.nothing()

    v.send(f"wake {EXT}")  # the UE's sleep ends: the SCEF sends what it buffered
    assert dev.recv() == b"while-asleep"
    dev.nothing()
    note = sink.wait(where=lambda b: "deliveryStatus" in b)
    assert note == {"niddDownlinkDataTransfer": pending["self"], "deliveryStatus": "SUCCESS"}
    # delivered: still readable for a while, no longer changeable
    status, _, got = t8.call("GET", pending["self"])
    assert status == 200 and got["deliveryStatus"] == "SUCCESS"
    problem_of(*t8.call("DELETE", pending["self"]), 409)
    healthy(v)


def test_buffered_data_times_out(peers, sink):
    v = peers.vscef([EXT], extra_args=["--psm", "30", "--active-time", "0"])
    t8 = T8(v.api_root)
    cfg = t8.configure(EXT, sink)
    dev = Ue(v, EXT)
    dev.send(b"hi")
    v.wait_for("ue_asleep", ue=EXT)
    status, _, pending = t8.downlink(cfg, EXT, b"late", maximumLatency=1)
    assert status == 201
    note = sink.wait(timeout=4, where=lambda b: "deliveryStatus" in b)
    assert note == {"niddDownlinkDataTransfer": pending["self"],
                    "deliveryStatus": "FAILURE_TIMEOUT"}
    healthy(v)


def test_failures_give_a_retransmission_time(peers, sink):
    v = peers.vscef([EXT], extra_args=["--retransmission-time", "4"])
    t8 = T8(v.api_root)
    cfg = t8.configure(EXT, sink)
    dev = Ue(v, EXT)
    dev.send(b"hi")
    v.send("fail-next")
    v.wait_for("armed", fault="fail-next")
    status, hdrs, body = t8.downlink(cfg, EXT, b"one")
    assert status == 500 and hdrs["Content-Type"] == "application/json"
    assert body["problemDetail"]["status"] == 500 and body["problemDetail"]["cause"]
    ahead = (parse_time(body["requestedRetransmissionTime"])
             - parse_time(utc_in(0))).total_seconds()
    assert 1 < ahead <= 4.5
    dev.nothing()
    status, _, body = t8.downlink(cfg, EXT, b"two")  # one-shot
    assert status == 200 and dev.recv() == b"two"

    # --fail 1: every downlink fails
    v2 = peers.vscef([EXT], extra_args=["--fail", "1", "--seed", "7"], name="vscef-fail")
    t8b = T8(v2.api_root)
    cfg = t8b.configure(EXT, sink)
    Ue(v2, EXT).send(b"hi")
    for _ in range(2):
        status, _, body = t8b.downlink(cfg, EXT, b"x")
        assert status == 500 and "requestedRetransmissionTime" in body
    healthy(v)
    healthy(v2)


def test_every_request_body_is_validated(peers, sink):
    v = peers.vscef([EXT])
    t8 = T8(v.api_root)

    def bad(method, url, body, param=None, **kw):
        status, hdrs, problem = t8.call(method, url, body, **kw)
        problem_of(status, hdrs, problem, 400)
        if param is not None:
            assert param in [p["param"] for p in problem["invalidParams"]], problem
        return problem

    bad("POST", "/configurations", {"externalId": EXT}, "/")  # notificationDestination
    bad("POST", "/configurations", {"externalId": EXT, "msisdn": MSISDN,
                                    "notificationDestination": sink.url}, "/")  # oneOf
    bad("POST", "/configurations", {"externalId": EXT, "notificationDestination": sink.url,
                                    "maximumPacketSize": 800}, "/maximumPacketSize")  # readOnly
    bad("POST", "/configurations", {"externalId": EXT, "notificationDestination": sink.url,
                                    "duration": "tomorrow"}, "/duration")  # date-time
    bad("POST", "/configurations", {"externalId": EXT, "notificationDestination": sink.url,
                                    "rdsPorts": [{"portUE": "1", "portSCEF": 2}]},
        "/rdsPorts/0/portUE")
    bad("POST", "/configurations", None, raw=b"{not json")
    bad("POST", "/configurations", None, raw=json.dumps(  # a member twice (RFC 8259 4)
        {"externalId": EXT, "notificationDestination": sink.url}).encode()[:-1]
        + f', "externalId": "{EXT}"}}'.encode())
    status, hdrs, body = t8.call("POST", "/configurations", {
        "externalId": EXT, "notificationDestination": sink.url}, ctype="text/plain")
    problem_of(status, hdrs, body, 415)
    v.wait_for("invalid_request", operation="CreateNIDDConfiguration", code=400)

    cfg = t8.configure(EXT, sink)
    url = cfg["self"] + "/downlink-data-deliveries"
    bad("POST", url, {"externalId": EXT}, "/")  # data is required
    bad("POST", url, {"externalId": EXT, "data": "AAEC", "deliveryStatus": "SUCCESS"},
        "/deliveryStatus")  # readOnly
    bad("POST", url, {"externalId": EXT, "data": "not base64!"}, "/data")
    bad("POST", url, {"externalId": EXT, "data": "AAEC", "maximumLatency": -1},
        "/maximumLatency")
    bad("PATCH", cfg["self"], {"rdsPorts": []}, "/rdsPorts",
        ctype="application/merge-patch+json")  # minItems 1
    e = v.wait_for("invalid_request", operation="CreateDownlinkDataDelivery")
    assert e["code"] == 400 and e["error"]
    # nothing invalid was acted upon
    assert v.count("configuration_created") == 1 and v.count("downlink") == 0
    healthy(v)


def test_bearer_token_and_oauth(peers, sink, tmp_path):
    token_file = tmp_path / "t8.token"
    token_file.write_text("s3cret-token\n")
    v = peers.vscef([EXT], extra_args=["--token-file", str(token_file)])
    body = {"externalId": EXT, "notificationDestination": sink.url}
    status, hdrs, problem = T8(v.api_root).call("POST", "/configurations", body)
    problem_of(status, hdrs, problem, 401)
    assert hdrs["WWW-Authenticate"].startswith("Bearer")
    problem_of(*T8(v.api_root, token="wrong").call("GET", "/configurations"), 401)
    assert T8(v.api_root, token="s3cret-token").call("POST", "/configurations", body)[0] == 201
    assert [e["why"] for e in v.seen_events("unauthorized")] == ["missing", "wrong"]
    assert "s3cret" not in json.dumps(v.drain(0.05))

    # OAuth2 client credentials (RFC 6749 4.4) at the token endpoint vscef reports
    v2 = peers.vscef([EXT], extra_args=["--oauth-client", "gw:pw"], name="vscef-oauth")
    form = b"grant_type=client_credentials"
    basic = base64.b64encode(b"gw:pw").decode()
    req = urllib.request.Request(v2.token_url, data=form, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req) as r:
        grant = json.loads(r.read())
    assert grant["token_type"] == "Bearer" and grant["expires_in"] > 0
    problem_of(*T8(v2.api_root).call("GET", "/configurations"), 401)
    assert T8(v2.api_root, token=grant["access_token"]).call("GET", "/configurations")[0] == 200
    healthy(v)
    healthy(v2)


def test_forget_terminate_and_failed_notifications(peers, sink):
    v = peers.vscef([EXT, MSISDN])
    t8 = T8(v.api_root)
    lost = t8.configure(EXT, sink)
    ended = t8.configure(MSISDN, sink)

    v.send(f"forget {lost['self'].rsplit('/', 1)[1]}")
    v.wait_for("configuration_forgotten")
    problem_of(*t8.call("GET", lost["self"]), 404)
    problem_of(*t8.downlink(lost, EXT, b"x"), 404)
    sink.quiet()  # forgotten without a word

    v.send(f"terminate {ended['self'].rsplit('/', 1)[1]}")
    note = sink.wait()
    assert note == {"niddConfiguration": ended["self"], "msisdn": MSISDN, "status": "TERMINATED"}
    v.wait_for("notification", kind="configuration_status", code=204)
    problem_of(*t8.call("GET", ended["self"]), 404)

    # the application server refuses a notification: reported
    again = t8.configure(EXT, sink)
    sink.answer = 500
    Ue(v, EXT).send(b"up")
    sink.wait()
    e = v.wait_for("notification_failed", kind="uplink")
    assert e["code"] == 500 and e["config"] == again["self"].rsplit("/", 1)[1]
    healthy(v)


def test_max_packet_size_and_no_rds(peers, sink):
    v = peers.vscef([f"{MSISDN}:1-2"], extra_args=["--max-packet-size", "800", "--no-rds"])
    t8 = T8(v.api_root)
    cfg = t8.configure(MSISDN, sink, reliableDataService=True)
    assert cfg["maximumPacketSize"] == 800
    # RDS cannot be had: said in a configuration status notification (rdsCapIndication)
    note = sink.wait()
    assert note == {"niddConfiguration": cfg["self"], "msisdn": MSISDN, "status": "ACTIVE",
                    "rdsCapIndication": False}
    ue = Ue(v, f"{MSISDN}/1-2")
    ue.send(b"up")
    note = sink.wait()
    assert "rdsPort" not in note and note["data"] == b64(b"up")

    status, hdrs, body = t8.downlink(cfg, MSISDN, bytes(101))
    assert problem_of(status, hdrs, body, 403)["cause"] == "DATA_TOO_LARGE"
    status, _, body = t8.downlink(cfg, MSISDN, b"x", reliableDataService=True)
    assert status == 500 and body["problemDetail"]["cause"] == "FAILURE_RDS_DISABLED"
    status, _, body = t8.downlink(cfg, MSISDN, bytes(100))
    assert status == 200 and ue.recv() == bytes(100)
    healthy(v)
