#!/usr/bin/python3
"""lwm2m_mqtt_device.py: a minimal LwM2M client over MQTT (LwM2M Transport 1.2.1 section 8).

Test peer for the gateway's MQTT binding, in the style of the C peers (README.md here): one JSON
object per line on stdout, logs on stderr, one command per line on stdin. It publishes and
subscribes on its own topics "[PREFIX/]lwm2m/rd/EP" and "[PREFIX/]lwm2m/bs/EP"; every message is
one CBOR map with the integer keys of table 8.7-1.

One thread: select() over stdin and the MQTT socket, with paho driven by loop_read/loop_write/
loop_misc (paho's "external loop" use), and a small timer heap for notifications and
--delay-ms answers.

Needs Debian's python3-paho-mqtt (1.6) and python3-cbor2, hence /usr/bin/python3.
"""
import argparse
import heapq
import io
import itertools
import json
import logging
import math
import os
import random
import select
import sys
import time

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from peer_cli import Stop, ignore_signals, setup_logging, stop_on_signals

log = logging.getLogger("lwm2m-mqtt-device")

# ---------------------------------------------------------------- protocol tables (8.3, 8.7)

KEY_NAMES = {
    1: "op", 2: "token", 3: "ep", 4: "pct", 5: "uri", 6: "paths", 7: "payload",
    8: "lifetime", 9: "version", 10: "b", 11: "sms", 12: "pmin", 13: "pmax", 14: "gt",
    15: "st", 16: "epmin", 17: "epmax", 18: "result", 19: "ct", 20: "edge", 21: "hqmax",
    22: "depth",
}
K_OP, K_TOKEN, K_EP, K_PCT, K_URI, K_PATHS, K_PAYLOAD = 1, 2, 3, 4, 5, 6, 7
K_LIFETIME, K_VERSION, K_B, K_SMS = 8, 9, 10, 11
K_RESULT, K_CT, K_DEPTH = 18, 19, 22
ATTR_KEYS = (12, 13, 14, 15, 16, 17, 20, 21)  # Write-Attributes keys (lt has no key)

RD_OPS = {
    6: "Register", 7: "Update", 8: "De-register", 9: "Read", 10: "Read-Composite",
    11: "Discover", 12: "Write-Replace", 13: "Write-Partial-Update", 14: "Write-Attributes",
    15: "Write-Composite", 16: "Execute", 17: "Create", 18: "Delete", 20: "Observe",
    21: "Observe-Composite", 22: "Cancel-Observe", 23: "Notify", 24: "Send",
}
BS_OPS = {
    0: "Bootstrap-Request", 1: "Bootstrap-Write", 2: "Bootstrap-Read", 3: "Bootstrap-Delete",
    4: "Bootstrap-Discover", 5: "Bootstrap-Finish", 6: "Bootstrap-Pack-Request",
}
# Operations a client sends: an incoming message with one of these is our own echo.
CLIENT_OPS = {"rd": {6, 7, 8, 23, 24}, "bs": {0, 6}}
# Mandatory keys besides operation and token (the non-'?' entries of the 8.3 CDDL tables).
MANDATORY = {
    "rd": {9: (K_URI,), 10: (K_PATHS,), 11: (K_URI,), 12: (K_URI, K_CT, K_PAYLOAD),
           13: (K_URI, K_CT, K_PAYLOAD), 14: (K_URI,), 15: (K_CT, K_PAYLOAD), 16: (K_URI,),
           17: (K_URI, K_CT, K_PAYLOAD), 18: (K_URI,), 20: (K_URI,), 21: (K_PATHS,), 22: ()},
    "bs": {1: (K_CT, K_PAYLOAD), 2: (K_URI,), 3: (K_URI,), 4: (K_URI,), 5: ()},
}
KEY_TYPES = {K_URI: str, K_PATHS: bytes, K_PAYLOAD: bytes, K_CT: int, K_DEPTH: int}

CT_TEXT, CT_LINK, CT_SENML_JSON, CT_SENML_CBOR = 0, 40, 110, 112

# Which request gets which event when its answer comes.
RESPONSE_EVENTS = {
    "register": "registered", "update": "updated", "deregister": "deregistered",
    "send": "sent", "bootstrap": "bootstrap", "bootstrap-pack": "bootstrap-pack",
    "raw": "response",
}

# ---------------------------------------------------------------- output


def jsonable(value):
    """CBOR-decoded value -> something json.dumps takes (bytes as hex)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)


def emit(event, **fields):
    obj = {"event": event}
    obj.update(fields)
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def payload_fields(ct, payload, key="value"):
    """`value` (text) for a text content format, else `payload_hex`."""
    if ct in (None, CT_TEXT, CT_LINK, CT_SENML_JSON):
        try:
            return {key: payload.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"payload_hex": payload.hex()}


# ---------------------------------------------------------------- object model

R, W, E = 1, 2, 4


class Model:
    """/3/0 (Device) and /3303/N (Temperature)."""

    DEVICE_DEFS = {  # id: (ops, is_integer)
        0: (R, False), 1: (R, False), 2: (R, False), 3: (R, False), 4: (E, False),
        13: (R | W, True), 14: (R | W, False), 15: (R | W, False), 16: (R, False),
    }
    TEMP_DEFS = {5700: (R, False)}

    def __init__(self, ep):
        self.defs = {3: self.DEVICE_DEFS, 3303: self.TEMP_DEFS}
        self.objects = {
            3: {0: {0: "lwm2m-gw test", 1: "test-device", 2: ep, 3: "1.0", 13: int(time.time()),
                    14: "+00:00", 15: "UTC", 16: "M"}},
            3303: {0: {5700: "21.5"}},
        }

    @staticmethod
    def parse(uri):
        """"/3/0/1" -> [3, 0, 1]; "/" -> []; None when malformed."""
        if not isinstance(uri, str):
            return None
        parts = [p for p in uri.strip("/").split("/")] if uri.strip("/") else []
        ids = []
        for part in parts:
            if not part.isdigit() or int(part) > 65535:
                return None
            ids.append(int(part))
        return ids if len(ids) <= 4 else None

    def exists(self, ids):
        if not ids:
            return True
        if ids[0] not in self.objects:
            return False
        if len(ids) >= 2 and ids[1] not in self.objects[ids[0]]:
            return False
        if len(ids) >= 3 and ids[2] not in self.defs[ids[0]]:
            return False
        return len(ids) <= 3

    def resource_def(self, ids):
        return self.defs[ids[0]][ids[2]] if len(ids) == 3 and self.exists(ids) else None

    def text(self, ids):
        return str(self.objects[ids[0]][ids[1]][ids[2]])

    def senml_json(self, ids):
        """SenML JSON of every readable resource at or below an object or instance."""
        obj = ids[0]
        records = []
        for inst in sorted(self.objects[obj]):
            if len(ids) >= 2 and inst != ids[1]:
                continue
            for rid, (ops, is_int) in sorted(self.defs[obj].items()):
                if not ops & R:
                    continue
                value = self.objects[obj][inst][rid]
                record = {"n": f"/{obj}/{inst}/{rid}"}
                if is_int:
                    record["v"] = int(value)
                elif obj == 3303:
                    record["v"] = float(value)
                else:
                    record["vs"] = str(value)
                records.append(record)
        return json.dumps(records, separators=(",", ":")).encode()

    def read(self, ids):
        """(result, ct, payload) of a Read of ids."""
        if ids is None:
            return 400, None, None
        if not ids:
            return 405, None, None
        if not self.exists(ids):
            return 404, None, None
        if len(ids) <= 2:
            return 205, CT_SENML_JSON, self.senml_json(ids)
        if not self.resource_def(ids)[0] & R:
            return 405, None, None
        return 205, CT_TEXT, self.text(ids).encode()

    def composite(self):
        """SenML CBOR (n=0, vs=3) of /3/0/0 and /3/0/1: the Read-Composite answer."""
        return cbor2.dumps([{0: "/3/0/0", 3: self.text([3, 0, 0])},
                            {0: "/3/0/1", 3: self.text([3, 0, 1])}])

    def links(self, ids, depth):
        """Link format for a Discover of ids (object, instance or resource)."""
        entries = []
        for obj in sorted(self.objects):
            entries.append([obj])
            for inst in sorted(self.objects[obj]):
                entries.append([obj, inst])
                entries.extend([obj, inst, rid] for rid in sorted(self.defs[obj]))
        out = []
        for entry in entries:
            if entry[:len(ids)] != ids:
                continue
            if depth is not None and len(entry) - len(ids) > depth:
                continue
            out.append("<" + "".join(f"/{i}" for i in entry) + ">")
        return ",".join(out).encode()

    def write(self, ids, text):
        """Result of writing text to a writable resource."""
        _, is_int = self.resource_def(ids)
        if is_int:
            try:
                value = int(text.strip())
            except ValueError:
                return 400
        else:
            value = text
        self.objects[ids[0]][ids[1]][ids[2]] = value
        return 204

    def create(self, obj):
        inst = 0
        while inst in self.objects[obj]:
            inst += 1
        self.objects[obj][inst] = {5700: "21.5"}
        return inst

    def register_links(self):
        links = ["</1/0>"] + [f"</{obj}/{inst}>" for obj in sorted(self.objects)
                              for inst in sorted(self.objects[obj])]
        return ",".join(links).encode()


# ---------------------------------------------------------------- the device


class Device:
    def __init__(self, args):
        self.args = args
        prefix = args.prefix.strip("/")
        base = f"{prefix}/lwm2m" if prefix else "lwm2m"
        self.topics = {"rd": f"{base}/rd/{args.ep}", "bs": f"{base}/bs/{args.ep}"}
        self.iface_of = {t: i for i, t in self.topics.items()}
        self.model = Model(args.ep)
        self.token = random.getrandbits(32)
        self.pending = {}          # token -> request kind ("register", ..., "raw")
        self.observations = {}     # token -> dict(uri, ids, composite, paths, ct, seq, active)
        self.raw_echoes = []       # (topic, bytes) of `raw` publishes whose echo must be dropped
        self.unacked = {}          # MQTT message id -> fields of the `acked` event (requests)
        self.sends_left = 0        # `sends` command: Sends still to publish
        self.timers = []           # heap of (due, seq, callable)
        self.timer_seq = itertools.count()
        self.registered_once = False
        self.connected = False
        self.next_connect = 0.0
        self.sub_mid = None
        self.stdin_open = True
        self.stdin_buf = b""
        self.running = True

        client_id = args.client_id or f"lwm2m-dev-{os.getpid()}"
        clean = not args.persistent_session
        if args.mqtt_version == 5:
            self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=clean,
                                      protocol=mqtt.MQTTv311)
        self.client.enable_logger(logging.getLogger("paho"))
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message
        self.client.on_publish = self.on_publish
        host, _, port = args.broker.rpartition(":")
        if args.mqtt_version == 5:
            props = None
            if not clean:  # MQTT 5 3.1.2.11.2: the session outlives the connection by this
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 3600
            self.client.connect_async(host, int(port), keepalive=30, clean_start=clean,
                                      properties=props)
        else:
            self.client.connect_async(host, int(port), keepalive=30)
        self.schedule(args.notify_ms / 1000.0, self.notify_tick)

    # ------------------------------------------------------------ helpers

    def schedule(self, delay_s, func):
        heapq.heappush(self.timers, (time.monotonic() + delay_s, next(self.timer_seq), func))

    def next_token(self):
        self.token = (self.token + 1) & 0xFFFFFFFF
        return self.token

    def publish(self, iface, msg):
        data = cbor2.dumps(dict(sorted(msg.items())))  # ascending keys
        return self.publish_bytes(iface, data)

    def publish_bytes(self, iface, data):
        """Returns paho's message id. A QoS 1/2 publish made while disconnected is kept by
        paho and sent after the next connect (rc "not connected" is only a warning then)."""
        info = self.client.publish(self.topics[iface], data, qos=self.args.qos)
        log.debug("publish %s %s rc=%s", self.topics[iface], data.hex(), info.rc)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("publish on %s: %s", self.topics[iface], mqtt.error_string(info.rc))
        return info.mid

    def request(self, kind, iface, msg):
        token = self.next_token()
        msg[K_TOKEN] = token
        self.pending[token] = kind
        mid = self.publish(iface, msg)
        acked = {"kind": kind, "token": token}
        if kind == "send":
            acked["payload_hex"] = msg[K_PAYLOAD].hex()
        self.unacked[mid] = acked
        return token

    # ------------------------------------------------------------ MQTT callbacks

    def on_connect(self, client, userdata, flags, rc, properties=None):
        rc = getattr(rc, "value", rc)
        if rc != 0:
            log.warning("connection refused: rc=%s", rc)
            return
        log.info("connected to %s", self.args.broker)
        if self.args.mqtt_version == 5:
            opts = SubscribeOptions(qos=self.args.qos, noLocal=True)
            subs = [(self.topics["rd"], opts), (self.topics["bs"], opts)]
        else:
            subs = [(self.topics["rd"], self.args.qos), (self.topics["bs"], self.args.qos)]
        _, self.sub_mid = client.subscribe(subs)

    def on_subscribe(self, client, userdata, mid, granted, properties=None):
        if mid != self.sub_mid:
            return
        codes = [getattr(g, "value", g) for g in granted]
        if any(c >= 0x80 for c in codes):
            log.error("subscription refused: %s", codes)
        self.connected = True
        emit("connected")
        if not self.registered_once:
            self.registered_once = True
            if not self.args.no_register:
                self.cmd_register()

    def on_publish(self, client, userdata, mid):
        """The broker acknowledged a publish (PUBACK for QoS 1; written for QoS 0)."""
        acked = self.unacked.pop(mid, None)
        if acked is not None:
            emit("acked", **acked)

    def on_disconnect(self, client, userdata, rc, properties=None):
        rc = getattr(rc, "value", rc)
        was = self.connected
        self.connected = False
        self.next_connect = time.monotonic() + 1.0
        if self.running and (was or rc != 0):
            log.warning("disconnected: rc=%s", rc)
            emit("disconnected", rc=rc)

    def on_message(self, client, userdata, message):
        try:
            self.handle_message(message.topic, bytes(message.payload))
        except Stop:
            raise
        except Exception as exc:  # a bug here must not take the peer down
            log.exception("handling a message on %s", message.topic)
            emit("error", message=f"internal error: {exc}")

    # ------------------------------------------------------------ incoming messages

    def handle_message(self, topic, data):
        iface = self.iface_of.get(topic)
        if iface is None:
            return
        if (topic, data) in self.raw_echoes:
            self.raw_echoes.remove((topic, data))
            log.debug("ignoring the echo of a raw publish on %s", topic)
            return
        try:
            stream = io.BytesIO(data)
            msg = cbor2.CBORDecoder(stream).decode()
            if stream.tell() != len(data):
                raise ValueError(f"{len(data) - stream.tell()} trailing bytes")
            if not isinstance(msg, dict):
                raise ValueError("not a CBOR map")
        except Exception as exc:
            emit("error", message=f"undecodable message on {topic}: {exc}",
                 payload_hex=data.hex())
            return
        token = msg.get(K_TOKEN)
        if not isinstance(token, int) or isinstance(token, bool) or token < 0:
            token = None
        op = msg.get(K_OP)
        if K_RESULT in msg:
            self.handle_response(msg, token)
        elif isinstance(op, int) and not isinstance(op, bool):
            if op in CLIENT_OPS[iface]:
                log.debug("ignoring our own %s", data.hex())
                return
            self.handle_request(iface, op, token, msg)
        else:
            emit("error", message=f"message on {topic} without operation or result",
                 payload_hex=data.hex())
            if token is not None:
                self.answer(iface, None, token, 400)

    def handle_response(self, msg, token):
        kind = self.pending.pop(token, None) if token is not None else None
        if kind is None:
            log.debug("ignoring a result for token %s (our echo or a Notify answer)", token)
            return
        result = msg.get(K_RESULT)
        name = RESPONSE_EVENTS[kind]
        if kind == "register" and result != 201:
            name = "register-failed"
        fields = {"result": jsonable(result), "token": token}
        payload = msg.get(K_PAYLOAD)
        if kind == "bootstrap-pack" or payload is not None:
            fields["ct"] = jsonable(msg.get(K_CT))
            fields["payload_hex"] = jsonable(payload)
        emit(name, **fields)

    def request_fields(self, iface, op, token, msg):
        names = RD_OPS if iface == "rd" else BS_OPS
        fields = {"op": op, "op_name": names.get(op, "unknown"), "token": token,
                  "uri": jsonable(msg.get(K_URI)), "iface": iface}
        for key, value in msg.items():
            if key in (K_OP, K_TOKEN, K_URI):
                continue
            name = KEY_NAMES.get(key, f"key_{key}")
            if isinstance(value, (bytes, bytearray)):
                name += "_hex"
            fields[name] = jsonable(value)
        return fields

    def handle_request(self, iface, op, token, msg):
        emit("request", **self.request_fields(iface, op, token, msg))
        if self.args.silent:
            return
        if token is None:
            emit("error", message=f"request (operation {op}) without a token")
            return
        table = MANDATORY[iface]
        if op not in table:
            self.answer(iface, op, token, 501)
            return
        for key in table[op]:
            if not isinstance(msg.get(key), KEY_TYPES[key]) or isinstance(msg.get(key), bool):
                log.warning("operation %s: key %s missing or of the wrong type", op, key)
                self.answer(iface, op, token, 400)
                return
        for key in (K_URI, K_CT, K_PAYLOAD, K_DEPTH):
            if key in msg and not isinstance(msg[key], KEY_TYPES[key]):
                self.answer(iface, op, token, 400)
                return
        handler = getattr(self, f"op_{iface}_{op}")
        handler(iface, op, token, msg)

    def answer(self, iface, op, token, result, ct=None, payload=None, on_sent=None):
        response = {K_TOKEN: token, K_RESULT: result}
        if ct is not None:
            response[K_CT] = ct
        if payload is not None:
            response[K_PAYLOAD] = payload
        if self.args.delay_ms > 0:
            def later():
                self.publish(iface, response)
                emit("delayed-response", op=op, token=token, result=result)
                if on_sent:
                    on_sent()
            self.schedule(self.args.delay_ms / 1000.0, later)
        else:
            self.publish(iface, response)
            if on_sent:
                on_sent()

    # ------------------------------------------------------------ rd operations

    def op_rd_9(self, iface, op, token, msg):  # Read
        result, ct, payload = self.model.read(Model.parse(msg[K_URI]))
        self.answer(iface, op, token, result, ct, payload)

    def op_rd_10(self, iface, op, token, msg):  # Read-Composite
        emit("read-composite", token=token, paths_hex=msg[K_PATHS].hex())
        self.answer(iface, op, token, 205, CT_SENML_CBOR, self.model.composite())

    def op_rd_11(self, iface, op, token, msg):  # Discover
        ids = Model.parse(msg[K_URI])
        depth = msg.get(K_DEPTH)
        if ids is None or (depth is not None and not 0 <= depth <= 3):
            self.answer(iface, op, token, 400)
        elif not ids:
            self.answer(iface, op, token, 405)
        elif not self.model.exists(ids):
            self.answer(iface, op, token, 404)
        else:
            self.answer(iface, op, token, 205, CT_LINK, self.model.links(ids, depth))

    def resource_with(self, access, iface, op, token, msg):
        """The ids of the request's resource if it allows `access` (W or E); otherwise
        answers 400 / 404 / 405 (in the C test device's order) and returns None."""
        ids = Model.parse(msg[K_URI])
        if ids is None:
            self.answer(iface, op, token, 400)
            return None
        if not ids or not self.model.exists(ids):
            self.answer(iface, op, token, 404 if ids else 405)
            return None
        rdef = self.model.resource_def(ids)
        if not rdef or not rdef[0] & access:
            self.answer(iface, op, token, 405)
            return None
        return ids

    def op_rd_12(self, iface, op, token, msg):  # Write Replace
        ids = self.resource_with(W, iface, op, token, msg)
        if ids is None:
            return
        if msg[K_CT] != CT_TEXT:
            self.answer(iface, op, token, 415)
            return
        try:
            text = msg[K_PAYLOAD].decode("utf-8")
        except UnicodeDecodeError:
            self.answer(iface, op, token, 400)
            return
        result = self.model.write(ids, text)
        if result == 204:
            emit("write", uri=msg[K_URI], ct=msg[K_CT], value=text, token=token)
        self.answer(iface, op, token, result)

    op_rd_13 = op_rd_12  # Write Partial Update: the same for single resources

    def op_rd_14(self, iface, op, token, msg):  # Write-Attributes
        ids = Model.parse(msg[K_URI])
        if ids is None:
            self.answer(iface, op, token, 400)
        elif not self.model.exists(ids):
            self.answer(iface, op, token, 404)
        else:
            attrs = {KEY_NAMES[k]: jsonable(msg[k]) for k in ATTR_KEYS if k in msg}
            emit("write-attr", uri=msg[K_URI], attributes=attrs, token=token)
            self.answer(iface, op, token, 204)

    def op_rd_15(self, iface, op, token, msg):  # Write-Composite
        emit("write-composite", ct=msg[K_CT], payload_hex=msg[K_PAYLOAD].hex(), token=token)
        self.answer(iface, op, token, 204)

    def op_rd_16(self, iface, op, token, msg):  # Execute
        if self.resource_with(E, iface, op, token, msg) is None:
            return
        args = msg.get(K_PAYLOAD, b"")
        if not isinstance(args, bytes):
            self.answer(iface, op, token, 400)
            return
        emit("execute", uri=msg[K_URI], args=args.decode("utf-8", "replace"), token=token)
        self.answer(iface, op, token, 204)

    def op_rd_17(self, iface, op, token, msg):  # Create
        ids = Model.parse(msg[K_URI])
        if ids is None:
            self.answer(iface, op, token, 400)
        elif not ids or not self.model.exists(ids):
            self.answer(iface, op, token, 404 if ids else 405)
        elif len(ids) != 1 or ids[0] != 3303:
            self.answer(iface, op, token, 405)
        else:
            inst = self.model.create(ids[0])
            emit("create", uri=msg[K_URI], ct=msg[K_CT], payload_hex=msg[K_PAYLOAD].hex(),
                 instance=inst, token=token)
            self.answer(iface, op, token, 201)

    def op_rd_18(self, iface, op, token, msg):  # Delete
        ids = Model.parse(msg[K_URI])
        if ids is None:
            self.answer(iface, op, token, 400)
        elif not ids or not self.model.exists(ids):
            self.answer(iface, op, token, 404 if ids else 405)
        elif len(ids) != 2 or ids[0] != 3303:
            self.answer(iface, op, token, 405)
        else:
            del self.model.objects[ids[0]][ids[1]]
            for obs_token, obs in list(self.observations.items()):
                if obs["ids"] and obs["ids"][:2] == ids:
                    del self.observations[obs_token]
                    emit("observe-cancelled", uri=obs["uri"], token=obs_token, by="delete")
            emit("delete", uri=msg[K_URI], token=token)
            self.answer(iface, op, token, 202)

    def start_observation(self, iface, op, token, obs, result, ct, payload):
        self.observations[token] = obs
        emit("observe-started", uri=obs["uri"], token=token, composite=obs["composite"],
             **({"paths_hex": obs["paths"].hex()} if obs["composite"] else {}))

        def activate():
            if self.observations.get(token) is obs:
                obs["active"] = True
        self.answer(iface, op, token, result, ct, payload, on_sent=activate)

    def op_rd_20(self, iface, op, token, msg):  # Observe
        ids = Model.parse(msg[K_URI])
        result, ct, payload = self.model.read(ids)
        if result != 205:
            self.answer(iface, op, token, result)
            return
        obs = {"uri": msg[K_URI], "ids": ids, "composite": False, "paths": None, "ct": ct,
               "seq": 0, "active": False}
        self.start_observation(iface, op, token, obs, result, ct, payload)

    def op_rd_21(self, iface, op, token, msg):  # Observe-Composite
        obs = {"uri": None, "ids": None, "composite": True, "paths": msg[K_PATHS],
               "ct": CT_SENML_CBOR, "seq": 0, "active": False}
        self.start_observation(iface, op, token, obs, 205, CT_SENML_CBOR,
                               self.model.composite())

    def op_rd_22(self, iface, op, token, msg):  # Cancel-Observe
        obs = self.observations.pop(token, None)
        if obs is None:
            self.answer(iface, op, token, 404)
            return
        ct, payload = self.observed_value(obs)
        emit("observe-cancelled", uri=obs["uri"], token=token, by="cancel-observe")
        if ct is None:
            self.answer(iface, op, token, 404)
        else:
            self.answer(iface, op, token, 205, ct, payload)

    # ------------------------------------------------------------ bs operations

    def op_bs_1(self, iface, op, token, msg):  # Bootstrap-Write
        emit("bootstrap-write", uri=msg.get(K_URI), ct=msg[K_CT],
             payload_hex=msg[K_PAYLOAD].hex(), token=token)
        self.answer(iface, op, token, 204)

    def op_bs_2(self, iface, op, token, msg):  # Bootstrap-Read
        self.answer(iface, op, token, 205, CT_TEXT, b"bs")

    def op_bs_3(self, iface, op, token, msg):  # Bootstrap-Delete
        emit("bootstrap-delete", uri=msg[K_URI], token=token)
        self.answer(iface, op, token, 202)

    def op_bs_4(self, iface, op, token, msg):  # Bootstrap-Discover
        self.answer(iface, op, token, 205, CT_LINK, b"</0/0>,</1/0>")

    def op_bs_5(self, iface, op, token, msg):  # Bootstrap-Finish
        emit("bootstrap-finish", token=token)
        self.answer(iface, op, token, 204)

    # ------------------------------------------------------------ notifications

    def observed_value(self, obs):
        """(ct, payload) of an observation now; (None, None) if its target is gone."""
        if obs["composite"]:
            return CT_SENML_CBOR, self.model.composite()
        result, ct, payload = self.model.read(obs["ids"])
        return (ct, payload) if result == 205 else (None, None)

    def notify_all(self):
        for token, obs in list(self.observations.items()):
            if not obs["active"]:
                continue
            ct, payload = self.observed_value(obs)
            if ct is None:
                continue
            obs["seq"] += 1
            self.publish("rd", {K_OP: 23, K_TOKEN: token, K_PAYLOAD: payload, K_CT: ct})
            emit("notified", uri=obs["uri"], token=token, seq=obs["seq"], ct=ct,
                 **payload_fields(ct, payload))

    def notify_tick(self):
        device = self.model.objects[3][0]
        device[13] = int(device[13]) + 1
        self.notify_all()
        self.schedule(self.args.notify_ms / 1000.0, self.notify_tick)

    # ------------------------------------------------------------ commands

    def cmd_register(self):
        msg = {K_OP: 6, K_LIFETIME: self.args.lifetime, K_VERSION: self.args.lwm2m,
               K_B: self.args.binding, K_PAYLOAD: self.model.register_links()}
        if self.args.sms:
            msg[K_SMS] = self.args.sms
        self.request("register", "rd", msg)

    def command(self, line):
        words = line.split()
        if not words:
            return
        cmd, rest = words[0], words[1:]
        try:
            if cmd == "register" and not rest:
                self.cmd_register()
            elif cmd == "update" and len(rest) <= 1:
                msg = {K_OP: 7}
                if rest:
                    msg[K_LIFETIME] = int(rest[0])
                self.request("update", "rd", msg)
            elif cmd == "deregister" and not rest:
                self.request("deregister", "rd", {K_OP: 8})
            elif cmd == "send" and 1 <= len(rest) <= 2:
                ct = int(rest[1]) if len(rest) > 1 else CT_SENML_CBOR
                self.request("send", "rd", {K_OP: 24, K_CT: ct,
                                            K_PAYLOAD: bytes.fromhex(rest[0])})
            elif cmd == "bootstrap" and not rest:
                self.request("bootstrap", "bs", {K_OP: 0})
            elif cmd == "bootstrap-pack" and not rest:
                self.request("bootstrap-pack", "bs", {K_OP: 6})
            elif cmd == "sends" and len(rest) == 2:
                self.sends_left, interval_ms = int(rest[0]), int(rest[1])
                self.send_next(interval_ms / 1000.0)
            elif cmd == "notify" and not rest:
                self.notify_all()
            elif cmd == "raw" and len(rest) == 2 and rest[0] in ("rd", "bs"):
                self.cmd_raw(rest[0], bytes.fromhex(rest[1]))
            elif cmd == "quit" and not rest:
                self.running = False
            else:
                emit("error", message=f"bad command: {line}")
        except ValueError as exc:
            emit("error", message=f"bad command: {line}: {exc}")

    def send_next(self, interval_s):
        """One Send of a `sends` series: SenML CBOR [{0: "/3303/0/5700", 2: n}], n = how many
        are left, so every payload of a series is different."""
        if self.sends_left <= 0:
            return
        payload = cbor2.dumps([{0: "/3303/0/5700", 2: self.sends_left}])
        self.sends_left -= 1
        self.request("send", "rd", {K_OP: 24, K_CT: CT_SENML_CBOR, K_PAYLOAD: payload})
        self.schedule(interval_s, lambda: self.send_next(interval_s))

    def cmd_raw(self, iface, data):
        try:
            msg = cbor2.loads(data)
            if isinstance(msg, dict) and isinstance(msg.get(K_TOKEN), int):
                self.pending[msg[K_TOKEN]] = "raw"
        except Exception:
            pass
        if self.args.mqtt_version != 5:  # MQTT 3.1.1 echoes it back to us: drop that once
            self.raw_echoes.append((self.topics[iface], data))
        self.publish_bytes(iface, data)

    def read_stdin(self):
        chunk = os.read(0, 65536)
        if not chunk:
            self.stdin_open = False
            if self.stdin_buf.strip():
                self.command(self.stdin_buf.decode("utf-8", "replace").strip())
            self.stdin_buf = b""
            if not self.args.stay:
                self.running = False
            return
        self.stdin_buf += chunk
        while b"\n" in self.stdin_buf and self.running:
            line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
            self.command(line.decode("utf-8", "replace").strip())

    # ------------------------------------------------------------ main loop

    def try_connect(self):
        self.next_connect = time.monotonic() + 1.0
        try:
            self.client.reconnect()
        except OSError as exc:
            log.warning("cannot connect to %s: %s", self.args.broker, exc)

    def run(self):
        while self.running:
            sock = self.client.socket()
            if sock is None and time.monotonic() >= self.next_connect:
                self.try_connect()
                sock = self.client.socket()
            rlist = [0] if self.stdin_open else []
            wlist = []
            if sock is not None:
                rlist.append(sock)
                if self.client.want_write():
                    wlist.append(sock)
            now = time.monotonic()
            timeout = 1.0
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - now))
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
            if sock is not None and sock in readable:
                self.client.loop_read()
            if sock is not None and sock in writable and self.client.socket() is not None:
                self.client.loop_write()
            if self.client.socket() is not None:
                self.client.loop_misc()
            if 0 in readable:
                self.read_stdin()
            now = time.monotonic()
            while self.running and self.timers and self.timers[0][0] <= now:
                _, _, func = heapq.heappop(self.timers)
                func()

    def close(self):
        self.running = False
        try:
            if self.client.socket() is not None:
                self.client.disconnect()
                for _ in range(10):
                    if self.client.socket() is None or not self.client.want_write():
                        break
                    self.client.loop_write()
        except Exception:
            pass


def main():
    parser = argparse.ArgumentParser(description="LwM2M client over MQTT (test peer)")
    parser.add_argument("--broker", required=True, help="HOST:PORT")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--ep", required=True)
    parser.add_argument("--lifetime", type=int, default=300)
    parser.add_argument("--binding", default="M")
    parser.add_argument("--lwm2m", default="1.2")
    parser.add_argument("--sms")
    parser.add_argument("--mqtt-version", type=int, choices=(4, 5), default=4)
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--notify-ms", type=int, default=1000)
    parser.add_argument("--no-register", action="store_true")
    parser.add_argument("--silent", action="store_true")
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--client-id")
    parser.add_argument("--persistent-session", action="store_true")
    parser.add_argument("--log-level", type=int, default=4)
    parser.add_argument("--stay", action="store_true")
    args = parser.parse_args()
    if ":" not in args.broker or not args.broker.rpartition(":")[2].isdigit():
        parser.error("--broker must be HOST:PORT")
    if args.notify_ms <= 0:
        parser.error("--notify-ms must be > 0")

    setup_logging(args.log_level)

    stop_on_signals()

    device = Device(args)
    try:
        device.run()
    except Stop:
        pass
    finally:
        ignore_signals()
        device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
