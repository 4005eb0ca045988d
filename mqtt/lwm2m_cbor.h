/* lwm2m-gw: the LwM2M-over-MQTT message codec (LwM2M Transport 1.2.1 section 8).
 *
 * One MQTT application message is one CBOR map keyed by the integers of table 8.7-1. This codec
 * turns such a map into a plain struct and back; it knows nothing about topics or Paho. It never
 * allocates: decoded strings point into the caller's input buffer. */
#ifndef MQTT_LWM2M_CBOR_H
#define MQTT_LWM2M_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Table 8.7-1 CBOR keys. "lt" (less than) and "pid" (profile ID) appear in the 8.3 CDDL but have
 * no key in table 8.7-1, so they cannot be carried; see mqtt/README.md. */
typedef enum {
  MQTT_CBOR_KEY_OPERATION = 1,
  MQTT_CBOR_KEY_TOKEN = 2,
  MQTT_CBOR_KEY_EP = 3,
  MQTT_CBOR_KEY_PCT = 4,
  MQTT_CBOR_KEY_URI = 5,
  MQTT_CBOR_KEY_PATHS = 6,
  MQTT_CBOR_KEY_PAYLOAD = 7,
  MQTT_CBOR_KEY_LIFETIME = 8,
  MQTT_CBOR_KEY_VERSION = 9,
  MQTT_CBOR_KEY_BINDING = 10, /* "b" */
  MQTT_CBOR_KEY_SMS = 11,
  MQTT_CBOR_KEY_PMIN = 12,
  MQTT_CBOR_KEY_PMAX = 13,
  MQTT_CBOR_KEY_GT = 14,
  MQTT_CBOR_KEY_ST = 15,
  MQTT_CBOR_KEY_EPMIN = 16,
  MQTT_CBOR_KEY_EPMAX = 17,
  MQTT_CBOR_KEY_RESULT = 18,
  MQTT_CBOR_KEY_CT = 19,
  MQTT_CBOR_KEY_EDGE = 20,
  MQTT_CBOR_KEY_HQMAX = 21,
  MQTT_CBOR_KEY_DEPTH = 22,
  MQTT_CBOR_KEY_MAX = 22
} mqtt_cbor_key_t;

#define MQTT_CBOR_BIT(key) (UINT32_C(1) << (key))

/* Which topic the message came on or goes to (8.2: "bs" or "rd"). Needed because 8.3.1 and
 * 8.3.2 both give operation code 6 (Bootstrap-Pack-Request on "bs", Register on "rd"). */
typedef enum { MQTT_CBOR_IFACE_BS = 0, MQTT_CBOR_IFACE_RD = 1 } mqtt_cbor_iface_t;

/* Operation codes of 8.3.1-8.3.4, as on the wire. Code 19 is not assigned by the spec. */
enum {
  MQTT_CBOR_OP_BOOTSTRAP_REQUEST = 0,
  MQTT_CBOR_OP_BOOTSTRAP_WRITE = 1,
  MQTT_CBOR_OP_BOOTSTRAP_READ = 2,
  MQTT_CBOR_OP_BOOTSTRAP_DELETE = 3,
  MQTT_CBOR_OP_BOOTSTRAP_DISCOVER = 4,
  MQTT_CBOR_OP_BOOTSTRAP_FINISH = 5,
  MQTT_CBOR_OP_BOOTSTRAP_PACK_REQUEST = 6, /* "bs" topic */
  MQTT_CBOR_OP_REGISTER = 6,               /* "rd" topic */
  MQTT_CBOR_OP_UPDATE = 7,
  MQTT_CBOR_OP_DEREGISTER = 8,
  MQTT_CBOR_OP_READ = 9,
  MQTT_CBOR_OP_READ_COMPOSITE = 10,
  MQTT_CBOR_OP_DISCOVER = 11,
  MQTT_CBOR_OP_WRITE_REPLACE = 12,
  MQTT_CBOR_OP_WRITE_PARTIAL = 13,
  MQTT_CBOR_OP_WRITE_ATTRIBUTES = 14,
  MQTT_CBOR_OP_WRITE_COMPOSITE = 15,
  MQTT_CBOR_OP_EXECUTE = 16,
  MQTT_CBOR_OP_CREATE = 17,
  MQTT_CBOR_OP_DELETE = 18,
  MQTT_CBOR_OP_OBSERVE = 20,
  MQTT_CBOR_OP_OBSERVE_COMPOSITE = 21,
  MQTT_CBOR_OP_CANCEL_OBSERVE = 22,
  MQTT_CBOR_OP_NOTIFY = 23,
  MQTT_CBOR_OP_SEND = 24
};

typedef enum {
  MQTT_CBOR_OK = 0,
  MQTT_CBOR_ERR_TRUNCATED = -1,   /* input ends inside an item */
  MQTT_CBOR_ERR_NOT_MAP = -2,     /* top-level item is not a map */
  MQTT_CBOR_ERR_TYPE = -3,        /* known key with a value of the wrong CBOR type */
  MQTT_CBOR_ERR_VALUE = -4,       /* right type, value out of range (edge, depth, NaN...) */
  MQTT_CBOR_ERR_DUPLICATE = -5,   /* a table 8.7-1 key appears twice */
  MQTT_CBOR_ERR_MALFORMED = -6,   /* not well-formed CBOR (reserved info, bad break...) */
  MQTT_CBOR_ERR_INDEFINITE = -7,  /* indefinite-length string for a known key (not supported) */
  MQTT_CBOR_ERR_UTF8 = -8,        /* tstr value is not valid UTF-8 */
  MQTT_CBOR_ERR_TOO_DEEP = -9,    /* extension value nested deeper than MQTT_CBOR_MAX_DEPTH */
  MQTT_CBOR_ERR_TRAILING = -10,   /* bytes after the map */
  MQTT_CBOR_ERR_AMBIGUOUS = -11,  /* both operation and result, or neither */
  MQTT_CBOR_ERR_MISSING = -12,    /* mandatory key of the operation missing (validate) */
  MQTT_CBOR_ERR_UNKNOWN_OP = -13, /* operation code not defined for this interface */
  MQTT_CBOR_ERR_TOO_SMALL = -14,  /* encode: output buffer too small */
  MQTT_CBOR_ERR_INVAL = -15,      /* bad argument (NULL, string without pointer...) */
  MQTT_CBOR_ERR_RESULT = -16      /* result / CoAP code not in the 8.5 tables */
} mqtt_cbor_err_t;

/* Nesting allowed inside an unknown extension value that the decoder skips. */
#define MQTT_CBOR_MAX_DEPTH 16

/* A byte or text string. After mqtt_cbor_decode() it borrows from the input buffer. */
typedef struct {
  const uint8_t *ptr;
  size_t len;
} mqtt_cbor_bytes_t;

/* gt / st: CDDL "float". width is the encoded size in bytes (2, 4 or 8) as decoded; 0 on encode
 * picks the shortest size that holds the value exactly. */
typedef struct {
  double value;
  uint8_t width;
} mqtt_cbor_float_t;

/* One LwM2M-over-MQTT message. A field is meaningful only if its key's bit is in `present`
 * (MQTT_CBOR_BIT(MQTT_CBOR_KEY_...)). A request carries `operation`, the generic response of
 * 8.4 carries `result` instead. */
typedef struct {
  uint32_t present;
  uint64_t operation; /* raw wire code; unknown codes are kept so the binding can answer 501 */
  uint64_t token;
  mqtt_cbor_bytes_t ep;      /* tstr, endpoint client name */
  uint64_t pct;              /* preferred content format */
  mqtt_cbor_bytes_t uri;     /* tstr */
  mqtt_cbor_bytes_t paths;   /* bstr, SenML-ETCH CBOR, opaque here */
  mqtt_cbor_bytes_t payload; /* bstr: CoRE links, TLV/SenML/LwM2M CBOR value, arguments */
  uint64_t lifetime;
  mqtt_cbor_bytes_t version; /* tstr, LwM2M version "1.2" */
  mqtt_cbor_bytes_t binding; /* tstr "b", binding and queue mode ("UQ") */
  mqtt_cbor_bytes_t sms;     /* tstr, MSISDN */
  uint64_t pmin, pmax;
  mqtt_cbor_float_t gt, st;
  uint64_t epmin, epmax;
  uint64_t result; /* 8.5 result value, e.g. 205 */
  uint64_t ct;     /* content format of payload */
  uint8_t edge;    /* 0 or 1 */
  uint64_t hqmax;
  uint8_t depth; /* 0..3 */
  uint32_t unknown_keys; /* extension entries skipped by the decoder (not re-encoded) */
} mqtt_cbor_msg_t;

/* Decodes one message from data[0..len). Bounded: never reads outside the buffer, never
 * recurses, never allocates. String fields of *out_msg borrow from `data`: the caller must keep
 * `data` alive and unchanged while it uses them.
 * Known keys with the wrong type, duplicate known keys, trailing bytes and ill-formed CBOR are
 * errors; unknown keys of any type ($$extensions of 8.3) are skipped and counted.
 * Does not check which keys the operation needs: call mqtt_cbor_validate() for that.
 * On error *out_msg holds what was decoded before the error: if the token bit is set, the
 * binding can still answer 400 Bad Request to that token. */
int mqtt_cbor_decode(const uint8_t *data, size_t len, mqtt_cbor_msg_t *out_msg);

/* Encodes msg (fields whose bit is in `present`, ascending key order, shortest integer heads,
 * definite lengths) into out[0..out_size). Borrows msg and its strings only for the call.
 * Returns the length written (>= 0), or MQTT_CBOR_ERR_TOO_SMALL / _INVAL / _VALUE. With
 * out == NULL and out_size == 0 it returns the length needed. */
long mqtt_cbor_encode(const mqtt_cbor_msg_t *msg, uint8_t *out, size_t out_size);

/* Checks a decoded message against the 8.3 tables (requests) or 8.4 (responses).
 * Returns MQTT_CBOR_OK, MQTT_CBOR_ERR_AMBIGUOUS, MQTT_CBOR_ERR_UNKNOWN_OP, or
 * MQTT_CBOR_ERR_MISSING with *out_missing (may be NULL) set to the MQTT_CBOR_BIT()s of the
 * mandatory keys that are absent. */
int mqtt_cbor_validate(const mqtt_cbor_msg_t *msg, mqtt_cbor_iface_t iface,
                       uint32_t *out_missing);

/* Mandatory keys (MQTT_CBOR_BIT mask) of an operation, or 0 if the code is unknown there. */
uint32_t mqtt_cbor_mandatory_keys(mqtt_cbor_iface_t iface, uint64_t operation);

/* "Register", "Bootstrap-Pack-Request", ... or NULL for an unknown code. */
const char *mqtt_cbor_op_name(mqtt_cbor_iface_t iface, uint64_t operation);

/* The text or byte string field of msg for a key of table 8.7-1, or NULL when the key holds
 * no string. */
const mqtt_cbor_bytes_t *mqtt_cbor_string_field(const mqtt_cbor_msg_t *msg, unsigned key);

/* The 8.5 result the binding answers with when decode/validate fails: 501 for
 * MQTT_CBOR_ERR_UNKNOWN_OP, 400 for every other input error, 500 for an internal one. */
uint16_t mqtt_cbor_err_result(int err);

/* 8.5 result value <-> CoAP response code byte (class << 5 | detail), e.g. 201 <-> 0x41 (2.01
 * Created). Only the values listed in tables 8.5-1..8.5-5 are accepted; anything else returns
 * MQTT_CBOR_ERR_RESULT. from_coap then still sets *out_result to 500, the generic error that
 * 8.5 requires when no listed result describes the outcome. */
int mqtt_cbor_result_to_coap(uint64_t result, uint8_t *out_coap_code);
int mqtt_cbor_result_from_coap(uint8_t coap_code, uint16_t *out_result);

/* True if tables 8.5-1..8.5-4 list `result` for this operation, or it is a generic error of
 * table 8.5-5 (500, 501, 503). */
bool mqtt_cbor_result_allowed(mqtt_cbor_iface_t iface, uint64_t operation, uint64_t result);

const char *mqtt_cbor_strerror(int err);

#endif
