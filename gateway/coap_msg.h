/* lwm2m-gw: CoAP message codec (RFC 7252 section 3) for the device side.
 *
 * Bindings that carry native CoAP (NIDD, SMS, LoRaWAN) hand the core raw datagrams; the core
 * parses them here, relays them through libcoap upstream, and serialises the answers it sends
 * back down. libcoap 3 has no public call that serialises a PDU to bytes, hence this codec.
 *
 * A parsed message BORROWS the datagram it was parsed from: option values and the payload point
 * into it, so the datagram must outlive the message. Options are kept in wire order, which is
 * ascending option number (RFC 7252 3.1); gw_coap_add_option() keeps that order.
 */
#ifndef GW_COAP_MSG_H
#define GW_COAP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_COAP_MAX_OPTIONS 48
#define GW_COAP_MAX_TOKEN 8

typedef enum { GW_COAP_CON = 0, GW_COAP_NON = 1, GW_COAP_ACK = 2, GW_COAP_RST = 3 } gw_coap_type_t;

/* Code is class << 5 | detail, as on the wire. */
#define GW_COAP_CODE(c, d) ((uint8_t)(((c) << 5) | (d)))
#define GW_COAP_CODE_CLASS(code) ((code) >> 5)
#define GW_COAP_CODE_DETAIL(code) ((code)&0x1f)
enum {
  GW_COAP_EMPTY = 0,
  GW_COAP_GET = 1, GW_COAP_POST = 2, GW_COAP_PUT = 3, GW_COAP_DELETE = 4,
  GW_COAP_FETCH = 5, GW_COAP_PATCH = 6, GW_COAP_IPATCH = 7,
  GW_COAP_CREATED = GW_COAP_CODE(2, 1), GW_COAP_DELETED = GW_COAP_CODE(2, 2),
  GW_COAP_VALID = GW_COAP_CODE(2, 3), GW_COAP_CHANGED = GW_COAP_CODE(2, 4),
  GW_COAP_CONTENT = GW_COAP_CODE(2, 5), GW_COAP_CONTINUE = GW_COAP_CODE(2, 31),
  GW_COAP_BAD_REQUEST = GW_COAP_CODE(4, 0), GW_COAP_FORBIDDEN = GW_COAP_CODE(4, 3),
  GW_COAP_NOT_FOUND = GW_COAP_CODE(4, 4), GW_COAP_CONFLICT = GW_COAP_CODE(4, 9),
  GW_COAP_REQUEST_TOO_LARGE = GW_COAP_CODE(4, 13),
  GW_COAP_INTERNAL_ERROR = GW_COAP_CODE(5, 0),
  GW_COAP_SERVICE_UNAVAILABLE = GW_COAP_CODE(5, 3),
  GW_COAP_GATEWAY_TIMEOUT = GW_COAP_CODE(5, 4)
};

/* Option numbers used by LwM2M (RFC 7252 5.10, RFC 7641, RFC 7959, RFC 7967). */
enum {
  GW_COAP_OPT_IF_MATCH = 1, GW_COAP_OPT_URI_HOST = 3, GW_COAP_OPT_ETAG = 4,
  GW_COAP_OPT_OBSERVE = 6, GW_COAP_OPT_URI_PORT = 7, GW_COAP_OPT_LOCATION_PATH = 8,
  GW_COAP_OPT_URI_PATH = 11, GW_COAP_OPT_CONTENT_FORMAT = 12, GW_COAP_OPT_MAX_AGE = 14,
  GW_COAP_OPT_URI_QUERY = 15, GW_COAP_OPT_ACCEPT = 17, GW_COAP_OPT_LOCATION_QUERY = 20,
  GW_COAP_OPT_BLOCK2 = 23, GW_COAP_OPT_BLOCK1 = 27, GW_COAP_OPT_SIZE2 = 28,
  GW_COAP_OPT_PROXY_URI = 35, GW_COAP_OPT_SIZE1 = 60, GW_COAP_OPT_NO_RESPONSE = 258
};

typedef struct {
  uint16_t number;
  uint16_t length;
  const uint8_t *value; /* borrowed */
} gw_coap_option_t;

typedef struct {
  gw_coap_type_t type;
  uint8_t code;
  uint16_t mid;
  uint8_t token_len;
  uint8_t token[GW_COAP_MAX_TOKEN];
  uint16_t option_count;
  gw_coap_option_t options[GW_COAP_MAX_OPTIONS]; /* ascending by number */
  const uint8_t *payload;                        /* borrowed; NULL when none */
  size_t payload_len;
} gw_coap_msg_t;

typedef enum {
  GW_COAP_PARSE_OK = 0,
  GW_COAP_PARSE_SHORT,        /* fewer than 4 bytes, or truncated token/option */
  GW_COAP_PARSE_VERSION,      /* version is not 1 */
  GW_COAP_PARSE_TOKEN_LEN,    /* TKL 9..15 (RFC 7252 3: reserved, message format error) */
  GW_COAP_PARSE_OPTION,       /* reserved nibble 15 in delta or length, or overflow */
  GW_COAP_PARSE_TOO_MANY_OPTIONS,
  GW_COAP_PARSE_PAYLOAD_MARKER, /* 0xFF followed by zero-length payload (RFC 7252 3) */
  GW_COAP_PARSE_EMPTY_NOT_EMPTY /* code 0.00 with token, options or payload (RFC 7252 4.1) */
} gw_coap_parse_result_t;

/* Parses one CoAP-over-UDP message. Borrows data (see above). Writes *out_msg only fully on
 * success. Never reads past len. */
gw_coap_parse_result_t gw_coap_parse(const uint8_t *data, size_t len, gw_coap_msg_t *out_msg);
const char *gw_coap_parse_result_str(gw_coap_parse_result_t r);

/* Serialises msg into buf. Returns the number of bytes written, or 0 when buf is too small or
 * the message is invalid (options out of order, token too long). */
size_t gw_coap_serialize(const gw_coap_msg_t *msg, uint8_t *buf, size_t buf_size);

/* Initialises an empty message of the given type, code and mid; no token, options or payload. */
void gw_coap_msg_init(gw_coap_msg_t *msg, gw_coap_type_t type, uint8_t code, uint16_t mid);
int gw_coap_set_token(gw_coap_msg_t *msg, const uint8_t *token, size_t len);
/* A diagnostic payload (RFC 7252 5.5.2) is cut here: it says why, it does not explain. */
#define GW_COAP_DIAGNOSTIC_MAX 96
/* The answer `code` to req without an exchange behind it: an ACK with req's message ID for a
 * CON, else a NON with non_mid; req's token; diagnostic (NULL: none; cut at
 * GW_COAP_DIAGNOSTIC_MAX bytes) as payload so the peer's operator reads why. Borrows req's token
 * and diagnostic. */
void gw_coap_answer_init(gw_coap_msg_t *msg, const gw_coap_msg_t *req, uint8_t code,
                         uint16_t non_mid, const char *diagnostic);
/* A 64-bit number as an 8-byte big-endian token and back: bindings that make their own tokens
 * (MQTT's, the HTTP binding's) keep them as numbers. gw_coap_token_from_u64 returns 8;
 * gw_coap_token_to_u64 reads 0..8 bytes, a longer "token" (none of ours) gives 0. */
size_t gw_coap_token_from_u64(uint64_t token, uint8_t out[8]);
uint64_t gw_coap_token_to_u64(const uint8_t *token, size_t len);

/* Inserts an option keeping ascending order (after existing options of the same number, so
 * repeated options such as Uri-Path keep their order). Borrows value. 0, or -1 when full. */
int gw_coap_add_option(gw_coap_msg_t *msg, uint16_t number, const uint8_t *value, size_t len);
/* Removes every option with this number; returns how many were removed. */
int gw_coap_remove_options(gw_coap_msg_t *msg, uint16_t number);
/* First option with this number, or NULL. */
const gw_coap_option_t *gw_coap_find_option(const gw_coap_msg_t *msg, uint16_t number);
/* Decodes a uint option value (RFC 7252 3.2: big endian, 0-4 bytes). */
uint32_t gw_coap_option_uint(const gw_coap_option_t *opt);
/* Encodes v as a minimal uint option value into buf (4 bytes); returns the length (0..4). */
size_t gw_coap_encode_uint(uint8_t buf[4], uint32_t v);

/* Joins Uri-Path (or Location-Path) options as "/a/b/c" into out; "/" when there are none.
 * Truncates safely. Returns out. */
char *gw_coap_path_str(const gw_coap_msg_t *msg, uint16_t option_number, char *out, size_t out_size);

/* "2.05", "GET", "POST" ... for logs. buf of 8 bytes is enough. */
const char *gw_coap_code_str(uint8_t code, char buf[8]);
const char *gw_coap_type_str(gw_coap_type_t type);

static inline bool gw_coap_is_request(const gw_coap_msg_t *m) {
  return m->code >= 1 && m->code <= 31;
}
static inline bool gw_coap_is_response(const gw_coap_msg_t *m) { return m->code >= 64; }
static inline bool gw_coap_is_empty(const gw_coap_msg_t *m) { return m->code == 0; }

#endif
