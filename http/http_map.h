/* lwm2m-gw: LwM2M over HTTP (Transport 1.2.1 section 7) <-> CoAP (RFC 7252, LwM2M Core 1.2).
 *
 * The pure mapping layer of the `http` binding: status codes, media types, and one HTTP request
 * <-> one CoAP request. No sockets, no state, no allocation (the HTTP server and client come
 * later). Strings that have to be built (decoded Uri-Path / Uri-Query values, Content-Format
 * bytes) go into the caller's scratch buffer; a built CoAP message borrows from the HTTP
 * request (body) and the scratch buffer, which must outlive its use. README.md holds the tables
 * and every choice made where section 7 is unclear.
 */
#ifndef HTTP_MAP_H
#define HTTP_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap_msg.h"

/* Longest request-target accepted from a device (bytes); a longer one is 414 (RFC 9110 15.5.15).
 * Query strings of Register are the longest LwM2M targets: 1 KiB leaves ample room. */
#define HTTP_MAP_TARGET_MAX 1024
/* Uri-Path and Uri-Query options are 0..255 bytes (RFC 7252 5.10). */
#define HTTP_MAP_OPTION_MAX 255
/* At most this many path segments / query parameters in a device request. */
#define HTTP_MAP_SEGMENTS_MAX 8
#define HTTP_MAP_QUERIES_MAX 16
/* Room for a reason phrase of a refusal (NUL included). */
#define HTTP_MAP_REASON_MAX 96

/* Return codes of the mappings that cannot fail outright: the value was replaced by 500 / 5.00
 * (the caller logs it). */
enum { HTTP_MAP_OK = 0, HTTP_MAP_ERR_UNLISTED = -1, HTTP_MAP_ERR_MEDIA_TYPE = -2 };

/* Scratch space for decoded strings; appended at `used` (see mqtt_coap_scratch_t). Big enough
 * for any request-target up to HTTP_MAP_TARGET_MAX: decoding never lengthens. */
typedef struct {
  uint8_t buf[2048];
  size_t used;
} http_map_scratch_t;

/* LwM2M operations carried by the HTTP binding (7.1.2 - 7.1.5). */
typedef enum {
  HTTP_MAP_OP_NONE = 0,
  /* device -> server (the device is the HTTP client) */
  HTTP_MAP_OP_BOOTSTRAP_REQUEST, /* POST /bs?ep=&pct= */
  HTTP_MAP_OP_REGISTER,          /* POST /rd?ep=&lt=&lwm2m=&b=&Q&sms=&pid= */
  HTTP_MAP_OP_UPDATE,            /* POST /rd/{location}?lt=&b=&Q&sms= */
  HTTP_MAP_OP_DEREGISTER,        /* DELETE /rd/{location} */
  HTTP_MAP_OP_SEND,              /* POST /dp */
  HTTP_MAP_OP_BOOTSTRAP_PACK,    /* GET /bspack?ep= (Bootstrap-Pack-Request, 7.1.2) */
  /* server -> device (the gateway is the HTTP client); Bootstrap-Read / -Write / -Delete /
   * -Discover look like Read / Write / Delete / Discover and are classified as those. */
  HTTP_MAP_OP_READ,             /* GET */
  HTTP_MAP_OP_DISCOVER,         /* GET, Accept application/link-format */
  HTTP_MAP_OP_WRITE_REPLACE,    /* PUT with a body */
  HTTP_MAP_OP_WRITE_ATTRIBUTES, /* PUT without body, attributes in the query */
  HTTP_MAP_OP_WRITE_PARTIAL,    /* POST /O/I or POST /O/I/R with a data format */
  HTTP_MAP_OP_EXECUTE,          /* POST /O/I/R, none or text/plain */
  HTTP_MAP_OP_CREATE,           /* POST /O */
  HTTP_MAP_OP_DELETE,           /* DELETE */
  HTTP_MAP_OP_BOOTSTRAP_FINISH  /* POST /bs */
} http_map_op_t;

/* "Register", "Read" ... for logs; "?" for an unknown value. */
const char *http_map_op_name(http_map_op_t op);

/* ---- status codes (7.3 next to 6.7, RFC 8075 7, RFC 7252 10.1) ---- */

/* The HTTP status answering a device's request op, from the server's CoAP answer code.
 * has_payload picks 200 over 204 for 2.02 / 2.04 (RFC 8075 7 note). HTTP_MAP_OK, or
 * HTTP_MAP_ERR_UNLISTED when the code has no mapping (a request code, 2.31, an unassigned
 * code): *out_status is then 500. */
int http_map_status_from_coap(uint8_t coap_code, http_map_op_t op, bool has_payload,
                              unsigned *out_status);

/* The CoAP answer code for the server's request op from the device's HTTP status: 2xx success
 * statuses (200, 201, 204) become the op's success code of table 6.7 (Read 2.05, Create 2.01,
 * Delete 2.02, others 2.04). HTTP_MAP_OK, or HTTP_MAP_ERR_UNLISTED (1xx, 3xx, other 2xx, an
 * unknown status, or op NONE / a device op): *out_code is then 5.00. */
int http_map_status_to_coap(unsigned status, http_map_op_t op, uint8_t *out_code);

/* ---- media types (RFC 9110 8.3.1) <-> Content-Formats (Core 1.2 7.4, IANA CoAP registry) ---- */

/* Content-Format of a Content-Type (or one Accept) value: type/subtype compared without case,
 * optional whitespace and parameters allowed; a "charset" parameter must be utf-8 (any case,
 * quoted or not), other parameters are checked for syntax and ignored. HTTP_MAP_OK, or
 * HTTP_MAP_ERR_MEDIA_TYPE for a malformed value, an unknown media type or another charset
 * (the caller answers 415). */
int http_map_content_format(const char *value, size_t len, uint16_t *out_cf);

/* The media type to send for a Content-Format ("text/plain;charset=utf-8" for 0); NULL when the
 * Content-Format has no LwM2M media type. */
const char *http_map_media_type(uint16_t cf);

/* ---- device -> server: one HTTP request becomes one CoAP request ---- */

typedef struct {
  const char *method;       /* request method token, NUL-terminated (case-sensitive, 9110 9.1) */
  const char *target;       /* request-target as received (not NUL-terminated) */
  size_t target_len;
  const char *content_type; /* Content-Type field value (NUL-terminated), NULL when absent */
  const uint8_t *body;      /* borrowed; NULL when body_len is 0 */
  size_t body_len;
} http_map_request_t;

typedef struct {
  http_map_op_t op;
  char reason[HTTP_MAP_REASON_MAX]; /* why the request was refused; "" on success */
} http_map_verdict_t;

/* Parses and checks a device request and builds the CON CoAP request with message ID mid and no
 * token (the caller sets one): code POST or DELETE, Uri-Path from the decoded segments,
 * Uri-Query "key[=value]" per decoded parameter, Content-Format, payload = body (borrowed).
 *  POST /bs?ep=..       Bootstrap-Request: ep mandatory, no body
 *  POST /rd?ep=..       Register: ep mandatory; body = links (Content-Type absent or
 *                       application/link-format; Content-Format 40 is set when a body is present)
 *  POST /rd/{loc}..     Update: links as for Register, optional
 *  DELETE /rd/{loc}     De-register: no query, no body
 *  POST /dp             Send: body mandatory, Content-Type mandatory: LwM2M CBOR, SenML JSON or
 *                       SenML CBOR (7.1.5)
 *  GET /bspack?ep=..    Bootstrap-Pack-Request: ep mandatory, no body; CoAP GET (the
 *                       Bootstrap-Server picks the format, Core 1.2 6.1.7.9)
 * Returns 0, or the HTTP status to answer with and verdict->reason set: 400 (malformed target,
 * unknown operation, missing / duplicate parameter, unexpected or missing body), 414 (target over
 * HTTP_MAP_TARGET_MAX), 415 (Content-Type unknown or not allowed for the operation), 501 (a
 * method RFC 9110 does not define), 500
 * (NULL arguments, scratch full). */
unsigned http_map_device_request(const http_map_request_t *req, uint16_t mid, gw_coap_msg_t *out,
                                 http_map_scratch_t *scratch, http_map_verdict_t *verdict);

/* The Location field value for a 2.01 answer to Register: "/" + Location-Path options joined by
 * "/", each segment percent-encoded as needed (RFC 3986 3.3 pchar). Returns the length, or 0
 * when there is no Location-Path, a segment is empty, or out is too small. */
size_t http_map_location(const gw_coap_msg_t *resp, char *out, size_t out_size);

/* ---- server -> device: one CoAP request becomes one HTTP request ---- */

typedef struct {
  http_map_op_t op;
  const char *method;               /* "GET", "PUT", "POST", "DELETE" */
  char target[HTTP_MAP_TARGET_MAX * 3 + 1]; /* "/3/0/1?pmin=10", relative to the base URL */
  const char *content_type;         /* NULL when the request has no Content-Format */
  const char *accept;               /* NULL when the request has no Accept */
  const uint8_t *body;              /* borrowed from the CoAP request */
  size_t body_len;
  char reason[HTTP_MAP_REASON_MAX]; /* why the request was refused; "" on success */
} http_map_server_request_t;

/* Maps a server's CoAP request (Transport 7.1.2, 7.1.4) to the HTTP request for the device:
 * GET -> Read (Discover with Accept 40), PUT -> Write-Replace (body or Content-Format) or
 * Write-Attributes, POST -> Create (/O), Execute (/O/I/R, none or text/plain), Write-Partial,
 * Bootstrap-Finish (/bs), DELETE -> Delete. The path keeps any alternate path the server put in
 * front (7.1.1). Returns 0, or the CoAP code to answer the server with and out->reason set:
 * 4.05 for FETCH / iPATCH / PATCH (Read-, Write-, Observe-Composite: 7.1.4 note) and for an
 * Observe registration (7.1.5: only Send is supported), 4.02 for a critical option that HTTP
 * cannot carry (If-Match, If-None-Match, Proxy-Uri, Proxy-Scheme, Block1, Block2 past block 0),
 * 4.15 for a Content-Format without media type, 4.06 for an Accept without one, 4.00 for an
 * empty path segment or a malformed Observe value, 5.00 for NULL arguments or a target that does
 * not fit. */
uint8_t http_map_server_request(const gw_coap_msg_t *req, http_map_server_request_t *out);

/* ---- device credentials (RFC 9110 11.6.2) ---- */

typedef enum {
  HTTP_MAP_AUTH_BASIC = 1, /* RFC 7617: user = the endpoint name, secret = the password */
  HTTP_MAP_AUTH_BEARER     /* RFC 6750 2.1: secret = the token, user empty */
} http_map_auth_scheme_t;

typedef struct {
  http_map_auth_scheme_t scheme;
  char user[128];
  char secret[256];
} http_map_credentials_t;

/* Parses an Authorization field value: scheme name without case, one or more spaces, then
 * Basic's base64 of "user:password" (RFC 4648 4, padding required; user without ':' or control
 * characters, password without control characters) or Bearer's b64token (RFC 6750 2.1).
 * Returns 0, or -1 for an unknown scheme, malformed value, or one too long for out (out is then
 * zeroed: the caller answers 401). Callers should explicit_bzero out after use. */
int http_map_credentials(const char *value, http_map_credentials_t *out);

#endif
