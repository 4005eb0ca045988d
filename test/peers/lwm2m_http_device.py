#!/usr/bin/python3
"""lwm2m_http_device.py: a minimal LwM2M client over HTTP (LwM2M Transport 1.2.1 section 7).

Test peer for the gateway's HTTP binding, in the style of the other peers (README.md here): one
JSON object per line on stdout, logs on stderr, one command per line on stdin.

The device is two things at once (7, http/README.md "Spec gaps" 1):
- an HTTP client for its own operations (Register, Update, De-register, Send, Bootstrap-Request)
  toward the gateway (--gateway), on one persistent HTTP/1.1 connection, from the command thread;
- an HTTP server (--listen) for the server's operations (Read, Discover, Write, Write-Attributes,
  Execute, Create, Delete, Bootstrap-Finish) that the gateway relays to it, in its own threads
  (ThreadingHTTPServer, HTTP/1.1 keep-alive).

Standard library only, hence runs with /usr/bin/python3 as it is.
"""
import argparse
import base64
import http.client
import itertools
import json
import logging
import math
import os
import queue
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from peer_cli import Stop, ignore_signals, setup_logging, stop_on_signals

log = logging.getLogger("lwm2m-http-device")

TEXT = "text/plain"
LINK = "application/link-format"
SENML_JSON = "application/senml+json"
TEXT_OUT = "text/plain;charset=utf-8"

# ---------------------------------------------------------------- output

_out_lock = threading.Lock()
QUIET_EVENTS = set()  # filled from --quiet


def emit(event, **fields):
    if event in QUIET_EVENTS:
        return
    obj = {"event": event}
    obj.update(fields)
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with _out_lock:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass  # the parent is gone; nothing to tell it


def payload_fields(data):
    """payload (text when printable UTF-8, else null), payload_hex, payload_len."""
    data = data or b""
    text = None
    try:
        decoded = data.decode("utf-8")
        if all(c.isprintable() or c in "\t\r\n" for c in decoded):
            text = decoded
    except UnicodeDecodeError:
        pass
    return {"payload": text, "payload_hex": data.hex(), "payload_len": len(data)}


# ---------------------------------------------------------------- media types


def parse_media_type(value):
    """'Text/Plain; charset=UTF-8' -> ('text/plain', {'charset': 'utf-8'}); None for None."""
    if value is None:
        return None, {}
    parts = value.split(";")
    mtype = parts[0].strip().lower()
    if not mtype:
        return None, {}
    params = {}
    for part in parts[1:]:
        key, _, val = part.strip().partition("=")
        if key:
            params[key.strip().lower()] = val.strip().strip('"').lower()
    return mtype, params


def accept_ranges(value):
    """Media ranges of an Accept field in order, without those with q=0."""
    out = []
    for item in (value or "").split(","):
        mtype, params = parse_media_type(item)
        if not mtype:
            continue
        try:
            if float(params.get("q", "1")) <= 0:
                continue
        except ValueError:
            pass
        out.append(mtype)
    return out


def negotiate(accept, offered):
    """First type of `offered` (list, first = default) that the Accept field allows; None when
    nothing fits (406). No Accept: the default."""
    ranges = accept_ranges(accept)
    if not ranges:
        return offered[0]
    for rng in ranges:
        for mtype in offered:
            if rng == mtype or rng == "*/*" or (rng.endswith("/*") and
                                                mtype.startswith(rng[:-1])):
                return mtype
    return None


# ---------------------------------------------------------------- object model

R, W, E = 1, 2, 4
ATTR_TYPES = {"pmin": "uint", "pmax": "uint", "gt": "float", "lt": "float", "st": "float",
              "epmin": "uint", "epmax": "uint", "edge": "bit", "con": "bit", "hqmax": "uint"}


class Result:
    """The answer to one downlink request."""

    def __init__(self, status, body=b"", content_type=None, headers=None, after=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
        self.after = after  # called once the answer is sent


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Model:
    """/1/0 Server, /3/0 Device, /3303/N Temperature (creatable)."""

    # object id: {resource id: (access, type)}; type: str, int, float, time, None (executable)
    DEFS = {
        1: {0: (R, "int"), 1: (R | W, "int"), 8: (E, None)},
        3: {0: (R, "str"), 1: (R, "str"), 2: (R, "str"), 4: (E, None), 13: (R | W, "time"),
            14: (R | W, "str")},
        3303: {5700: (R, "float")},
    }
    CREATABLE = {3303}

    def __init__(self, lifetime):
        self.lock = threading.Lock()
        self.objects = {
            1: {0: {0: 1, 1: lifetime}},
            3: {0: {0: "lwm2m-gw test", 1: "http-device", 2: "0001", 13: 0, 14: "+01:00"}},
            3303: {},
        }
        self.attributes = {}  # (ids tuple) -> {name: value text}

    # ------------------------------------------------------------ paths

    def exists(self, ids):
        if not ids or ids[0] not in self.objects:
            return bool(not ids)
        if len(ids) >= 2 and ids[1] not in self.objects[ids[0]]:
            return False
        if len(ids) >= 3 and ids[2] not in self.DEFS[ids[0]]:
            return False
        return len(ids) <= 3

    def rdef(self, ids):
        return self.DEFS[ids[0]][ids[2]] if len(ids) == 3 and self.exists(ids) else None

    def value(self, ids):
        obj, inst, rid = ids
        raw = self.objects[obj][inst][rid]
        if self.DEFS[obj][rid][1] == "time":
            return int(time.time()) + raw  # stored as an offset to the clock
        return raw

    @staticmethod
    def text(value):
        return str(value)

    def senml_record(self, ids):
        value = self.value(ids)
        record = {"n": "/" + "/".join(map(str, ids))}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            record["v"] = value
        else:
            record["vs"] = str(value)
        return record

    def readable_below(self, ids):
        obj = ids[0]
        out = []
        for inst in sorted(self.objects[obj]):
            if len(ids) >= 2 and inst != ids[1]:
                continue
            for rid, (access, _) in sorted(self.DEFS[obj].items()):
                if len(ids) >= 3 and rid != ids[2]:
                    continue
                if access & R:
                    out.append((obj, inst, rid))
        return out

    def links(self, ids, depth):
        entries = []
        for obj in sorted(self.objects):
            entries.append((obj,))
            for inst in sorted(self.objects[obj]):
                entries.append((obj, inst))
                entries.extend((obj, inst, rid) for rid in sorted(self.DEFS[obj]))
        out = []
        for entry in entries:
            if entry[:len(ids)] != tuple(ids):
                continue
            if depth is not None and len(entry) - len(ids) > depth:
                continue
            link = "<" + "".join(f"/{i}" for i in entry) + ">"
            for name, val in self.attributes.get(entry, {}).items():
                link += f";{name}={val}"
            out.append(link)
        return ",".join(out)

    # ------------------------------------------------------------ values

    def convert(self, ids, rtype, text=None, record=None):
        """A written value (text/plain or a SenML record) -> stored value; BadRequest(400)."""
        if record is not None:
            if rtype == "str":
                if not isinstance(record.get("vs"), str):
                    raise BadRequest(400, f"{ids}: string value (vs) expected")
                return record["vs"]
            val = record.get("v")
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise BadRequest(400, f"{ids}: numeric value (v) expected")
            if rtype in ("int", "time"):
                if val != int(val):
                    raise BadRequest(400, f"{ids}: integer expected")
                val = int(val)
        else:
            if rtype == "str":
                return text
            try:
                val = int(text.strip()) if rtype in ("int", "time") else float(text.strip())
            except ValueError:
                raise BadRequest(400, f"{ids}: not a number: {text!r}")
            if isinstance(val, float) and not math.isfinite(val):
                raise BadRequest(400, f"{ids}: not a finite number")
        if rtype == "time":
            return val - int(time.time())
        return val

    def senml_values(self, body, target):
        """SenML JSON body -> [(ids, record)] of resources at or below `target` (ids)."""
        try:
            records = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(400, f"not SenML JSON: {exc}")
        if not isinstance(records, list):
            raise BadRequest(400, "SenML JSON must be an array")
        out = []
        base = ""
        prefix = "/" + "/".join(map(str, target))
        for record in records:
            if not isinstance(record, dict):
                raise BadRequest(400, "SenML record is not an object")
            if "bn" in record:
                if not isinstance(record["bn"], str):
                    raise BadRequest(400, "bn is not a string")
                base = record["bn"]
            name = record.get("n", "")
            if not isinstance(name, str):
                raise BadRequest(400, "n is not a string")
            full = base + name
            if full.rstrip("/") != prefix and not full.startswith(prefix.rstrip("/") + "/"):
                raise BadRequest(400, f"record {full!r} outside {prefix}")
            ids = parse_ids(full)
            if ids is None or len(ids) != 3:
                raise BadRequest(400, f"record {full!r} is not a resource path")
            out.append((ids, record))
        return out


def parse_ids(path):
    """'/3/0/1' -> [3, 0, 1]; '/' -> []; None when a segment is not an LwM2M id."""
    stripped = path.strip("/")
    if not stripped:
        return []
    ids = []
    for seg in stripped.split("/"):
        seg = urllib.parse.unquote(seg)
        if not seg.isdigit() or not seg.isascii() or int(seg) > 65535:
            return None
        ids.append(int(seg))
    return ids


def parse_query(query):
    """'pmin=10&pmax' -> [('pmin', '10'), ('pmax', None)]."""
    out = []
    for item in query.split("&") if query else []:
        key, eq, val = item.partition("=")
        out.append((urllib.parse.unquote(key), urllib.parse.unquote(val) if eq else None))
    return out


# ---------------------------------------------------------------- downlink operations


class Operations:
    """Answers the server's requests (what the gateway relays) against the model."""

    def __init__(self, device):
        self.device = device
        self.model = device.model

    def handle(self, method, target, ctype_field, accept, body):
        split = urllib.parse.urlsplit(target)
        path, query = split.path or "/", split.query
        ctype, cparams = parse_media_type(ctype_field)
        if ctype is not None and cparams.get("charset", "utf-8") not in ("utf-8", "utf8"):
            return Result(415)
        try:
            with self.model.lock:
                if method == "POST" and path.strip("/") == "bs":
                    emit("bootstrap-finish", query=query)
                    return Result(204)
                ids = parse_ids(path)
                if ids is None or len(ids) > 4:
                    return Result(404)
                if method == "GET":
                    return self.get(ids, query, accept)
                if method == "PUT":
                    if not body and ctype is None:
                        return self.write_attributes(ids, query)
                    return self.write(ids, ctype, body, replace=True)
                if method == "POST":
                    return self.post(ids, ctype, body)
                if method == "DELETE":
                    return self.delete(ids)
                return Result(405, headers={"Allow": "GET, PUT, POST, DELETE"})
        except BadRequest as exc:
            log.info("%s %s: %s %s", method, target, exc.status, exc)
            return Result(exc.status)

    # ------------------------------------------------------------ GET: Read, Discover

    def get(self, ids, query, accept):
        model = self.model
        if LINK in accept_ranges(accept):
            depth = None
            for key, val in parse_query(query):
                if key == "depth":
                    if val is None or not val.isdigit() or int(val) > 3:
                        return Result(400)
                    depth = int(val)
            if not ids:
                return Result(405)
            if not model.exists(ids):
                return Result(404)
            return Result(200, model.links(ids, depth).encode(), LINK)
        if not ids:
            return Result(405)
        if not model.exists(ids):
            return Result(404)
        if len(ids) == 3:
            access, _ = model.rdef(ids)
            if not access & R:
                return Result(405)
            mtype = negotiate(accept, [TEXT, SENML_JSON])
            if mtype == TEXT:
                return Result(200, model.text(model.value(ids)).encode(), TEXT_OUT)
        else:
            mtype = negotiate(accept, [SENML_JSON])
        if mtype is None:
            return Result(406)
        records = [model.senml_record(r) for r in model.readable_below(ids)]
        return Result(200, json.dumps(records, separators=(",", ":")).encode(), SENML_JSON)

    # ------------------------------------------------------------ PUT: Write-Attributes

    def write_attributes(self, ids, query):
        model = self.model
        if not ids:
            return Result(405)
        if not model.exists(ids):
            return Result(404)
        attrs = dict(model.attributes.get(tuple(ids), {}))
        for key, val in parse_query(query):
            kind = ATTR_TYPES.get(key)
            if kind is None:
                raise BadRequest(400, f"unknown attribute {key!r}")
            if val is None or val == "":
                attrs.pop(key, None)  # no value: unset
                continue
            try:
                if kind == "uint":
                    ok = val.isdigit() and val.isascii()
                elif kind == "bit":
                    ok = val in ("0", "1")
                else:
                    ok = math.isfinite(float(val))
            except ValueError:
                ok = False
            if not ok:
                raise BadRequest(400, f"bad value for {key}: {val!r}")
            attrs[key] = val
        for low, high in (("pmin", "pmax"), ("epmin", "epmax")):
            if low in attrs and high in attrs and int(attrs[low]) > int(attrs[high]):
                raise BadRequest(400, f"{low} > {high}")
        if "lt" in attrs and "gt" in attrs and float(attrs["lt"]) >= float(attrs["gt"]):
            raise BadRequest(400, "lt >= gt")
        if attrs:
            model.attributes[tuple(ids)] = attrs
        else:
            model.attributes.pop(tuple(ids), None)
        emit("write-attr", path=path_text(ids), query=query, attributes=attrs)
        return Result(204)

    # ------------------------------------------------------------ PUT / POST: Write

    def write(self, ids, ctype, body, replace):
        model = self.model
        if len(ids) <= 1:
            return Result(405 if model.exists(ids) else 404)
        if not model.exists(ids):
            return Result(404)
        if ctype is None:
            return Result(400)  # 7.1.4: the Content-Format MUST be specified
        if len(ids) == 3:
            access, rtype = model.rdef(ids)
            if not replace:
                return Result(405)  # partial update only on multiple-instance resources
            if not access & W:
                return Result(405)
            if ctype == TEXT:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    return Result(400)
                updates = [(ids, model.convert(ids, rtype, text=text))]
            elif ctype == SENML_JSON:
                updates = [(r_ids, model.convert(r_ids, rtype, record=rec))
                           for r_ids, rec in model.senml_values(body, ids)]
            else:
                return Result(415)
        else:
            if ctype != SENML_JSON:
                return Result(415)
            updates = []
            for r_ids, rec in model.senml_values(body, ids):
                rdef = model.rdef(r_ids)
                if rdef is None:
                    raise BadRequest(404, f"{r_ids}: no such resource")
                if not rdef[0] & W:
                    raise BadRequest(405, f"{r_ids}: not writable")
                updates.append((r_ids, model.convert(r_ids, rdef[1], record=rec)))
        values = {}
        for (obj, inst, rid), val in updates:
            model.objects[obj][inst][rid] = val
            values[f"/{obj}/{inst}/{rid}"] = model.value([obj, inst, rid])
        emit("write", path=path_text(ids), mode="replace" if replace else "partial",
             values=values)
        return Result(204)

    # ------------------------------------------------------------ POST: Create, Write, Execute

    def post(self, ids, ctype, body):
        model = self.model
        if not ids:
            return Result(405)
        if not model.exists(ids):
            return Result(404)
        if len(ids) == 1:
            return self.create(ids[0], ctype, body)
        if len(ids) == 2:
            return self.write(ids, ctype, body, replace=False)
        if ctype not in (None, TEXT):
            return self.write(ids, ctype, body, replace=False)
        access, _ = model.rdef(ids)
        if not access & E:
            return Result(405)
        try:
            args = body.decode("utf-8")
        except UnicodeDecodeError:
            return Result(400)
        emit("execute", path=path_text(ids), args=args)
        after = None
        if ids == [1, 0, 8]:  # Registration Update Trigger
            after = lambda: self.device.commands.put(("trigger-update", None))
        return Result(204, after=after)

    def create(self, obj, ctype, body):
        model = self.model
        if obj not in Model.CREATABLE:
            return Result(405)
        if ctype is None:
            return Result(400)
        if ctype != SENML_JSON:
            return Result(415)
        records = model.senml_values(body, [obj])
        insts = {r_ids[1] for r_ids, _ in records}
        if len(insts) > 1:
            raise BadRequest(400, "records for more than one instance")
        if insts:
            inst = insts.pop()
            if inst in model.objects[obj]:
                raise BadRequest(400, f"/{obj}/{inst} already exists")
        else:
            inst = 0
            while inst in model.objects[obj]:
                inst += 1
        values = {5700: 21.5}
        for r_ids, rec in records:
            rdef = Model.DEFS[obj].get(r_ids[2])
            if rdef is None or rdef[1] is None:
                raise BadRequest(400, f"{r_ids}: not a resource of /{obj}")
            values[r_ids[2]] = model.convert(r_ids, rdef[1], record=rec)
        model.objects[obj][inst] = values
        location = f"/{obj}/{inst}"
        emit("create", path=f"/{obj}", instance=inst, location=location,
             values={f"{location}/{rid}": val for rid, val in values.items()})
        return Result(201, headers={"Location": location})

    # ------------------------------------------------------------ DELETE

    def delete(self, ids):
        model = self.model
        if not ids:
            return Result(405)
        if not model.exists(ids):
            return Result(404)
        if len(ids) != 2 or ids[0] not in Model.CREATABLE:
            return Result(405)
        del model.objects[ids[0]][ids[1]]
        for key in [k for k in model.attributes if k[:2] == tuple(ids)]:
            del model.attributes[key]
        emit("delete", path=path_text(ids))
        return Result(204)


def path_text(ids):
    return "/" + "/".join(map(str, ids))


# ---------------------------------------------------------------- downlink HTTP server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lwm2m-http-device/1"
    sys_version = ""
    timeout = 600  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True  # headers and body go in two writes

    def setup(self):
        super().setup()
        self.conn_id = next(self.server.conn_ids)

    def log_message(self, fmt, *args):
        log.debug("%s: " + fmt, self.address_string(), *args)

    def __getattr__(self, name):
        # Every method (FETCH, PATCH, HEAD, lower-case ones...) gets to handle_any, which
        # answers 405 for those LwM2M does not use.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def read_body(self):
        """The request body, or None after answering a framing error."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    return data
                data += self.rfile.read(size)
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            return None
        return self.rfile.read(int(length))

    def handle_any(self):
        device = self.server.device
        body = self.read_body()
        host = self.client_address[0]
        peer = f"[{host}]:{self.client_address[1]}" if ":" in host else \
            f"{host}:{self.client_address[1]}"
        ctype = self.headers.get("Content-Type")
        fields = {"method": self.command, "target": self.path, "content_type": ctype,
                  "accept": self.headers.get("Accept"),
                  "authorization": self.headers.get("Authorization"),
                  "peer": peer, "conn": self.conn_id, "tls": device.server_tls}
        if device.server_tls:
            fields["client_cn"] = getattr(self.connection, "client_cn", None)
        if body is None:
            self.close_connection = True
            emit("request", **fields, **payload_fields(b""))
            result = Result(400)
        else:
            emit("request", **fields, **payload_fields(body))
            result = device.ops.handle(self.command, self.path, ctype,
                                       self.headers.get("Accept"), body)
        if device.args.delay_ms > 0:
            time.sleep(device.args.delay_ms / 1000.0)
        try:
            self.send_response(result.status)
            if result.content_type:
                self.send_header("Content-Type", result.content_type)
            for name, value in result.headers.items():
                self.send_header(name, value)
            if result.status >= 200 and result.status not in (204, 304):
                self.send_header("Content-Length", str(len(result.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if result.body and self.command != "HEAD":
                self.wfile.write(result.body)
            self.wfile.flush()
        except OSError as exc:
            self.close_connection = True
            emit("answer-failed", method=self.command, target=self.path,
                 status=result.status, reason=str(exc) or type(exc).__name__)
            return
        emit("answered", method=self.command, target=self.path, status=result.status,
             content_type=result.content_type, location=result.headers.get("Location"),
             conn=self.conn_id, **payload_fields(result.body))
        if result.after:
            result.after()


class DownlinkServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, device, ssl_ctx, family):
        self.address_family = family
        self.device = device
        self.ssl_ctx = ssl_ctx
        self.conn_ids = itertools.count(1)
        super().__init__(addr, Handler)

    def server_bind(self):
        # HTTPServer.server_bind would look the name up (getfqdn): not needed, maybe slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        if self.ssl_ctx is None:
            return super().finish_request(request, client_address)
        # The TLS handshake runs here, in the connection's own thread, not in accept().
        request.settimeout(30)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            emit("tls-error", peer=f"{client_address[0]}:{client_address[1]}",
                 message=str(exc))
            return None
        tls.settimeout(None)
        cert = tls.getpeercert()
        if cert:
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        tls.client_cn = value
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            tls.close()
        return None


# ---------------------------------------------------------------- uplink HTTP client


class Uplink:
    """One persistent HTTP/1.1 connection to the gateway, reopened when closed."""

    def __init__(self, args):
        url = urllib.parse.urlsplit(args.gateway)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("--gateway must be http://HOST[:PORT][/PATH] or https://...")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.base = url.path.rstrip("/")
        self.timeout = args.timeout_ms / 1000.0
        self.ctx = None
        if self.https:
            self.ctx = ssl.create_default_context(cafile=args.ca)
            if args.insecure:
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE
            if args.client_cert:
                self.ctx.load_cert_chain(args.client_cert, args.client_key)
        self.auth = None
        if args.basic:
            self.auth = "Basic " + base64.b64encode(args.basic.encode()).decode()
        elif args.bearer:
            self.auth = "Bearer " + args.bearer
        self.conn = None

    def _connection(self):
        if self.conn is None:
            if self.https:
                self.conn = http.client.HTTPSConnection(self.host, self.port,
                                                        timeout=self.timeout, context=self.ctx)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()

    def request(self, method, target, body=None, content_type=None):
        """-> (response, body bytes, new_connection, elapsed_ms); raises OSError /
        http.client.HTTPException."""
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if self.auth:
            headers["Authorization"] = self.auth
        if target.startswith("/"):
            target = self.base + target
        for attempt in (0, 1):
            conn = self._connection()
            new = conn.sock is None
            start = time.monotonic()
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError) as exc:
                conn.close()
                if new or attempt:
                    raise
                # The gateway closed the kept-alive connection meanwhile: once more, anew.
                log.info("connection closed by the gateway (%s); reconnecting", exc)
                continue
            except BaseException:
                conn.close()
                raise
            return resp, data, new, round((time.monotonic() - start) * 1000.0, 3)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- the device


class Device:
    def __init__(self, args):
        self.args = args
        self.model = Model(args.lifetime)
        self.ops = Operations(self)
        self.uplink = Uplink(args)
        self.location = None  # path (and query) of the registration, from Location
        self.commands = queue.Queue()  # ("line", text) / ("trigger-update", None) / None (EOF)
        self.server_tls = bool(args.tls_cert)
        ssl_ctx = None
        if args.tls_cert:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.server_ca:
                ssl_ctx.load_verify_locations(args.server_ca)
                ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        host, _, port = args.listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = DownlinkServer((host, int(port)), self, ssl_ctx, family)
        port = self.server.server_address[1]
        shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"{'https' if ssl_ctx else 'http'}://{shown}:{port}"

    # ------------------------------------------------------------ uplink operations

    def uplink_request(self, op, method, target, body=None, content_type=None, **extra):
        """Sends one request; emits `response` and returns (status or None, response).
        With --retry-ms, a request that got no answer (refused, reset, closed, timed out) is
        sent again, as a device must when the gateway restarted under it (http/README.md)."""
        give_up = time.monotonic() + self.args.retry_ms / 1000.0
        pause = 0.1
        attempts = 0
        while True:
            attempts += 1
            try:
                resp, data, new, elapsed = self.uplink.request(method, target, body,
                                                               content_type)
                break
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                reason = str(exc) or type(exc).__name__
                if time.monotonic() + pause < give_up:
                    log.info("%s %s: %s; sent again in %.1f s", method, target, reason, pause)
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                log.warning("%s %s: %s", method, target, reason)
                emit("response", op=op, status=None, reason=reason, method=method,
                     target=target, attempts=attempts, **extra)
                return None, None, reason
        headers = {}
        for name, value in resp.getheaders():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        emit("response", op=op, status=resp.status, location=resp.getheader("Location"),
             content_type=resp.getheader("Content-Type"), method=method, target=target,
             headers=headers, new_connection=new, elapsed_ms=elapsed, attempts=attempts,
             **payload_fields(data), **extra)
        return resp.status, (resp, data), None

    def register_links(self):
        with self.model.lock:
            links = ["</1/0>", "</3/0>", "</3303>"]
            links += [f"</3303/{i}>" for i in sorted(self.model.objects[3303])]
        return ",".join(links).encode()

    def cmd_register(self, extra):
        args = self.args
        query = (f"ep={urllib.parse.quote(args.ep, safe='')}&lt={args.lifetime}"
                 f"&lwm2m={urllib.parse.quote(args.lwm2m, safe='.')}"
                 f"&b={urllib.parse.quote(args.binding, safe='')}")
        if args.queue:
            query += "&Q"
        if extra:
            query += "&" + extra.lstrip("&?")
        status, answer, reason = self.uplink_request("register", "POST", "/rd?" + query,
                                                     self.register_links(), LINK)
        if status == 201:
            location = answer[0].getheader("Location")
            if location:
                split = urllib.parse.urlsplit(location)
                self.location = split.path + (f"?{split.query}" if split.query else "")
            else:
                log.warning("201 to Register without a Location")
            emit("registered", status=status, location=location)
        else:
            if answer:
                fields = payload_fields(answer[1])
                emit("register-failed", status=status, reason=reason, body=fields["payload"],
                     **fields)
            else:
                emit("register-failed", status=None, reason=reason, body=None)

    def not_registered(self, op, **extra):
        emit("response", op=op, status=None, reason="not registered", **extra)

    def cmd_update(self, query, triggered=False):
        extra = {"triggered": True} if triggered else {}
        if self.location is None:
            self.not_registered("update", **extra)
            return
        target = self.location
        if query:
            target += ("&" if "?" in target else "?") + query.lstrip("?&")
        self.uplink_request("update", "POST", target, **extra)

    def cmd_deregister(self):
        if self.location is None:
            self.not_registered("deregister")
            return
        status, _, _ = self.uplink_request("deregister", "DELETE", self.location)
        if status is not None and 200 <= status < 300:
            self.location = None

    def command(self, line):
        """Runs one stdin command; False for quit."""
        line = line.strip()
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        if not cmd:
            return True
        if cmd == "register":
            self.cmd_register(rest)
        elif cmd == "update":
            self.cmd_update(rest)
        elif cmd == "deregister" and not rest:
            self.cmd_deregister()
        elif cmd == "send" and rest:
            self.uplink_request("send", "POST", "/dp", rest.encode(), SENML_JSON, sent=rest)
        elif cmd == "bootstrap":
            query = f"ep={urllib.parse.quote(self.args.ep, safe='')}"
            if rest:
                query += "&" + rest.lstrip("&?")
            self.uplink_request("bootstrap", "POST", "/bs?" + query)
        elif cmd == "raw" and rest:
            words = rest.split(" ", 3)
            if len(words) < 2:
                emit("error", message=f"bad command: {line}")
                return True
            method, target = words[0], words[1]
            if "{location}" in target:
                target = target.replace("{location}", self.location or "")
            ctype = words[2] if len(words) > 2 and words[2] != "-" else None
            body = words[3].encode() if len(words) > 3 else None
            self.uplink_request("raw", method, target, body, ctype)
        elif cmd == "quit" and not rest:
            return False
        else:
            emit("error", message=f"bad command: {line}")
        return True

    # ------------------------------------------------------------ main loop

    def read_stdin(self):
        for raw in sys.stdin.buffer:
            self.commands.put(("line", raw.decode("utf-8", "replace")))
        self.commands.put(None)

    def run(self):
        threading.Thread(target=self.server.serve_forever, name="downlink",
                         kwargs={"poll_interval": 0.2}, daemon=True).start()
        emit("ready", url=self.url, port=self.server.server_address[1])
        threading.Thread(target=self.read_stdin, name="stdin", daemon=True).start()
        while True:
            try:
                item = self.commands.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                if self.args.stay:
                    continue
                return
            kind, value = item
            try:
                if kind == "trigger-update":
                    self.cmd_update("", triggered=True)
                elif not self.command(value):
                    return
            except Stop:
                raise
            except Exception as exc:  # a bug here must not take the peer down
                log.exception("command %r", value)
                emit("error", message=f"internal error: {exc}")


def main():
    parser = argparse.ArgumentParser(description="LwM2M client over HTTP (test peer)")
    parser.add_argument("--gateway", required=True, help="http[s]://HOST:PORT[/PATH]")
    parser.add_argument("--ep", required=True)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (0: a free port)")
    parser.add_argument("--lifetime", type=int, default=300)
    parser.add_argument("--binding", default="H")
    parser.add_argument("--lwm2m", default="1.2")
    parser.add_argument("--queue", action="store_true")
    parser.add_argument("--tls-cert", help="certificate of the device's own server (PEM)")
    parser.add_argument("--tls-key")
    parser.add_argument("--server-ca", help="require a client certificate chaining to this CA "
                        "on the device's own server")
    parser.add_argument("--client-cert", help="client certificate toward the gateway (PEM)")
    parser.add_argument("--client-key")
    parser.add_argument("--ca", help="trust anchor for an https gateway")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the gateway's certificate")
    parser.add_argument("--basic", metavar="USER:PASS")
    parser.add_argument("--bearer", metavar="TOKEN")
    parser.add_argument("--timeout-ms", type=int, default=30000)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--retry-ms", type=int, default=0,
                        help="send a request that got no answer again until this long after "
                        "the first attempt")
    parser.add_argument("--quiet", action="store_true",
                        help="no request/answered events")
    parser.add_argument("--log-level", type=int, default=4)
    parser.add_argument("--stay", action="store_true")
    args = parser.parse_args()
    port = args.listen.rpartition(":")[2]
    if ":" not in args.listen or not port.isdigit():
        parser.error("--listen must be HOST:PORT")
    if args.basic and args.bearer:
        parser.error("--basic and --bearer exclude each other")
    if args.basic and ":" not in args.basic:
        parser.error("--basic must be USER:PASS")
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    if args.server_ca and not args.tls_cert:
        parser.error("--server-ca needs --tls-cert")
    if args.client_key and not args.client_cert:
        parser.error("--client-key needs --client-cert")
    if args.quiet:
        QUIET_EVENTS.update(("request", "answered"))

    setup_logging(args.log_level)

    stop_on_signals()

    try:
        device = Device(args)
    except (OSError, ValueError, ssl.SSLError) as exc:
        log.error("%s", exc)
        return 1
    try:
        device.run()
    except Stop:
        pass
    ignore_signals()
    device.uplink.close()
    device.server.shutdown()
    device.server.server_close()
    with _out_lock:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        # Handler threads may still be running (--delay-ms): leave without joining them.
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
