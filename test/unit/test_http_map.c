/* Unit tests of the LwM2M-over-HTTP <-> CoAP mapping (Transport 1.2.1 section 7).
 *
 * Vectors: status codes from tables 6.7 / 7.3 read side by side and RFC 8075 section 7; media
 * types from the IANA CoAP Content-Formats registry; request targets from tables 7.1.2 - 7.1.5.
 * Built CoAP requests are serialized (gw_coap_serialize) and compared byte for byte with
 * messages hand-encoded per RFC 7252 3. Every refusal path has a case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_map.h"

#define C(c, d) GW_COAP_CODE(c, d)

/* ---- status codes ----------------------------------------------------------------------- */

static void test_status_from_coap_success(void **state) {
  (void)state;
  static const struct {
    uint8_t code;
    http_map_op_t op;
    bool payload;
    unsigned status;
  } v[] = {
      {C(2, 1), HTTP_MAP_OP_REGISTER, false, 201},         /* 6.7-2 2.01 / 7.3-2 201 */
      {C(2, 4), HTTP_MAP_OP_UPDATE, false, 204},           /* 2.04 / "200 or 204" */
      {C(2, 4), HTTP_MAP_OP_UPDATE, true, 200},            /* RFC 8075 7: payload -> 200 */
      {C(2, 2), HTTP_MAP_OP_DEREGISTER, false, 204},       /* 2.02 / "200 or 204" */
      {C(2, 2), HTTP_MAP_OP_DEREGISTER, true, 200},
      {C(2, 4), HTTP_MAP_OP_SEND, false, 204},             /* 6.7-4 2.04 / 7.3-4 */
      {C(2, 4), HTTP_MAP_OP_BOOTSTRAP_REQUEST, false, 200}, /* 7.3-1 lists only 200 */
      {C(2, 5), HTTP_MAP_OP_NONE, false, 200},
      {C(2, 3), HTTP_MAP_OP_NONE, false, 200}, /* never a conditional request */
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    unsigned status = 0;
    assert_int_equal(http_map_status_from_coap(v[i].code, v[i].op, v[i].payload, &status),
                     HTTP_MAP_OK);
    assert_int_equal(status, v[i].status);
  }
}

static void test_status_from_coap_errors(void **state) {
  (void)state;
  static const struct {
    uint8_t code;
    unsigned status;
  } v[] = {{C(4, 0), 400}, {C(4, 1), 403}, {C(4, 2), 400}, {C(4, 3), 403}, {C(4, 4), 404},
           {C(4, 5), 405}, {C(4, 6), 406}, {C(4, 9), 409}, {C(4, 12), 412}, {C(4, 13), 413},
           {C(4, 15), 415}, {C(4, 22), 422}, {C(4, 29), 429}, {C(5, 0), 500}, {C(5, 1), 501},
           {C(5, 2), 502}, {C(5, 3), 503}, {C(5, 4), 504}, {C(5, 5), 502}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    unsigned status = 0;
    assert_int_equal(http_map_status_from_coap(v[i].code, HTTP_MAP_OP_REGISTER, true, &status),
                     HTTP_MAP_OK);
    assert_int_equal(status, v[i].status);
  }
  /* Unlisted: empty, requests, 2.31 and 4.08 (block-wise, hop by hop), unassigned codes. */
  static const uint8_t unlisted[] = {0, GW_COAP_POST, C(2, 31), C(4, 8), C(4, 7), C(3, 0),
                                     C(5, 6), C(7, 31)};
  for (size_t i = 0; i < sizeof unlisted; i++) {
    unsigned status = 0;
    assert_int_equal(http_map_status_from_coap(unlisted[i], HTTP_MAP_OP_UPDATE, false, &status),
                     HTTP_MAP_ERR_UNLISTED);
    assert_int_equal(status, 500);
  }
  assert_int_equal(http_map_status_from_coap(C(2, 1), HTTP_MAP_OP_REGISTER, false, NULL),
                   HTTP_MAP_OK);
}

static void test_status_to_coap(void **state) {
  (void)state;
  static const struct {
    unsigned status;
    http_map_op_t op;
    uint8_t code;
  } v[] = {
      {200, HTTP_MAP_OP_READ, C(2, 5)},          {204, HTTP_MAP_OP_READ, C(2, 5)},
      {200, HTTP_MAP_OP_DISCOVER, C(2, 5)},      {204, HTTP_MAP_OP_WRITE_REPLACE, C(2, 4)},
      {200, HTTP_MAP_OP_WRITE_PARTIAL, C(2, 4)}, {204, HTTP_MAP_OP_WRITE_ATTRIBUTES, C(2, 4)},
      {200, HTTP_MAP_OP_EXECUTE, C(2, 4)},       {204, HTTP_MAP_OP_BOOTSTRAP_FINISH, C(2, 4)},
      {200, HTTP_MAP_OP_CREATE, C(2, 1)},        {201, HTTP_MAP_OP_CREATE, C(2, 1)},
      {204, HTTP_MAP_OP_CREATE, C(2, 1)},        {204, HTTP_MAP_OP_DELETE, C(2, 2)},
      {400, HTTP_MAP_OP_READ, C(4, 0)},          {401, HTTP_MAP_OP_READ, C(4, 1)},
      {403, HTTP_MAP_OP_READ, C(4, 1)},          {404, HTTP_MAP_OP_READ, C(4, 4)},
      {405, HTTP_MAP_OP_READ, C(4, 5)},          {406, HTTP_MAP_OP_READ, C(4, 6)},
      {409, HTTP_MAP_OP_WRITE_REPLACE, C(4, 9)}, {412, HTTP_MAP_OP_READ, C(4, 12)},
      {413, HTTP_MAP_OP_WRITE_REPLACE, C(4, 13)}, {415, HTTP_MAP_OP_CREATE, C(4, 15)},
      {418, HTTP_MAP_OP_READ, C(4, 0)},          {500, HTTP_MAP_OP_READ, C(5, 0)},
      {501, HTTP_MAP_OP_READ, C(5, 1)},          {502, HTTP_MAP_OP_READ, C(5, 2)},
      {503, HTTP_MAP_OP_READ, C(5, 3)},          {504, HTTP_MAP_OP_READ, C(5, 4)},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t code = 0;
    assert_int_equal(http_map_status_to_coap(v[i].status, v[i].op, &code), HTTP_MAP_OK);
    assert_int_equal(code, v[i].code);
  }
  static const struct {
    unsigned status;
    http_map_op_t op;
  } unlisted[] = {{100, HTTP_MAP_OP_READ}, {202, HTTP_MAP_OP_READ}, {206, HTTP_MAP_OP_READ},
                  {302, HTTP_MAP_OP_READ}, {505, HTTP_MAP_OP_READ}, {999, HTTP_MAP_OP_READ},
                  {200, HTTP_MAP_OP_NONE}, {200, HTTP_MAP_OP_REGISTER}};
  for (size_t i = 0; i < sizeof unlisted / sizeof unlisted[0]; i++) {
    uint8_t code = 0;
    assert_int_equal(http_map_status_to_coap(unlisted[i].status, unlisted[i].op, &code),
                     HTTP_MAP_ERR_UNLISTED);
    assert_int_equal(code, C(5, 0));
  }
}

/* ---- media types ------------------------------------------------------------------------ */

static int cf_of(const char *value, uint16_t *cf) {
  return http_map_content_format(value, strlen(value), cf);
}

static void test_media_types_round_trip(void **state) {
  (void)state;
  static const struct {
    uint16_t cf;
    const char *type;
  } v[] = {{0, "text/plain;charset=utf-8"},
           {40, "application/link-format"},
           {42, "application/octet-stream"},
           {60, "application/cbor"},
           {110, "application/senml+json"},
           {112, "application/senml+cbor"},
           {320, "application/senml-etch+json"},
           {322, "application/senml-etch+cbor"},
           {11542, "application/vnd.oma.lwm2m+tlv"},
           {11543, "application/vnd.oma.lwm2m+json"},
           {11544, "application/vnd.oma.lwm2m+cbor"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    assert_string_equal(http_map_media_type(v[i].cf), v[i].type);
    uint16_t cf = 0xffff;
    assert_int_equal(cf_of(v[i].type, &cf), HTTP_MAP_OK);
    assert_int_equal(cf, v[i].cf);
  }
  assert_null(http_map_media_type(50)); /* application/json: not an LwM2M format */
  assert_null(http_map_media_type(1541));
}

static void test_media_type_syntax(void **state) {
  (void)state;
  static const struct {
    const char *value;
    uint16_t cf;
  } good[] = {
      {"text/plain", 0},
      {"TEXT/Plain", 0},
      {"text/plain; charset=UTF-8", 0},
      {"text/plain;charset=\"utf-8\"", 0},
      {" \ttext/plain ;\tCharset=utf-8 ", 0},
      {"text/plain;", 0},                     /* parameters = *( OWS ";" OWS [ parameter ] ) */
      {"text/plain;;charset=utf-8", 0},
      {"application/Vnd.OMA.LwM2M+TLV", 11542},
      {"application/senml+json; foo=bar", 110}, /* unknown parameters are ignored */
      {"application/cbor; x=\"a\\\"b;c\"", 60},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint16_t cf = 0xffff;
    assert_int_equal(cf_of(good[i].value, &cf), HTTP_MAP_OK);
    assert_int_equal(cf, good[i].cf);
  }
  static const char *const bad[] = {
      "", " ", "text", "text/", "/plain", "text /plain", "text/ plain", "text/plain x",
      "text/plain; charset", "text/plain; charset=", "text/plain; =utf-8",
      "text/plain; charset=iso-8859-1", "text/plain; charset=\"utf-8", "text/plain; a=\"\x01\"",
      "text/plain; charset=\"utf-8\\", "text/plain; charset=utf-8-and-much-longer",
      "application/json", "text/plainx", "application/link-format,text/plain",
      "text/plain; charset=utf-8 ; x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint16_t cf = 0;
    assert_int_equal(cf_of(bad[i], &cf), HTTP_MAP_ERR_MEDIA_TYPE);
  }
  assert_int_equal(http_map_content_format(NULL, 0, NULL), HTTP_MAP_ERR_MEDIA_TYPE);
  /* The length bounds the value: "text/plainXYZ" cut at 10 is text/plain. */
  uint16_t cf = 0xffff;
  assert_int_equal(http_map_content_format("text/plainXYZ", 10, &cf), HTTP_MAP_OK);
  assert_int_equal(cf, 0);
}

/* ---- device requests -------------------------------------------------------------------- */

static http_map_scratch_t scratch;
static http_map_verdict_t verdict;
static gw_coap_msg_t msg;

static unsigned device(const char *method, const char *target, const char *content_type,
                       const char *body) {
  http_map_request_t req = {.method = method, .target = target, .target_len = strlen(target),
                            .content_type = content_type, .body = (const uint8_t *)body,
                            .body_len = body ? strlen(body) : 0};
  scratch.used = 0;
  return http_map_device_request(&req, 0x1234, &msg, &scratch, &verdict);
}

static void assert_coap_bytes(const gw_coap_msg_t *m, const uint8_t *want, size_t want_len) {
  uint8_t buf[1024];
  size_t n = gw_coap_serialize(m, buf, sizeof buf);
  assert_int_equal(n, want_len);
  assert_memory_equal(buf, want, want_len);
}

static void test_register(void **state) {
  (void)state;
  assert_int_equal(device("POST", "/rd?ep=node%201&lt=300&lwm2m=1.2&b=U", NULL, "</3/0>"), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_REGISTER);
  assert_string_equal(verdict.reason, "");
  /* CON POST mid 0x1234, Uri-Path (11) "rd", Content-Format (12) 40, Uri-Query (15) "ep=node 1"
   * "lt=300" "lwm2m=1.2" "b=U", payload. */
  static const uint8_t want[] = {
      0x40, 0x02, 0x12, 0x34, 0xb2, 'r', 'd', 0x11, 40, 0x39, 'e', 'p', '=', 'n', 'o', 'd', 'e',
      ' ', '1', 0x06, 'l', 't', '=', '3', '0', '0', 0x09, 'l', 'w', 'm', '2', 'm', '=', '1', '.',
      '2', 0x03, 'b', '=', 'U', 0xff, '<', '/', '3', '/', '0', '>'};
  assert_coap_bytes(&msg, want, sizeof want);
  /* Content-Type application/link-format is accepted; a Q flag has no value. */
  assert_int_equal(device("POST", "/rd?ep=a&Q", "Application/Link-Format", "</1>"), 0);
  const gw_coap_option_t *q = &msg.options[3]; /* rd, Content-Format, ep=a, Q */
  assert_int_equal(q->number, GW_COAP_OPT_URI_QUERY);
  assert_int_equal(q->length, 1);
  assert_memory_equal(q->value, "Q", 1);
  /* No body: no Content-Format, whatever the Content-Type says. */
  assert_int_equal(device("POST", "/rd?ep=a", "text/plain", NULL), 0);
  assert_null(gw_coap_find_option(&msg, GW_COAP_OPT_CONTENT_FORMAT));
  assert_null(msg.payload);
  /* "+" is a literal in a query (RFC 3986), not a space; "=" may appear in a value. */
  assert_int_equal(device("POST", "/rd?ep=a+b%3D&sms=49=1", NULL, NULL), 0);
  assert_memory_equal(msg.options[1].value, "ep=a+b=", 7);
  assert_memory_equal(msg.options[2].value, "sms=49=1", 8);
  /* UTF-8 is fine once decoded. */
  assert_int_equal(device("POST", "/rd?ep=caf%C3%A9", NULL, NULL), 0);
}

static void test_update_deregister_send_bootstrap(void **state) {
  (void)state;
  assert_int_equal(device("POST", "/rd/5a3f?lt=600", NULL, NULL), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_UPDATE);
  static const uint8_t update[] = {0x40, 0x02, 0x12, 0x34, 0xb2, 'r', 'd', 0x04, '5', 'a', '3',
                                   'f', 0x46, 'l', 't', '=', '6', '0', '0'};
  assert_coap_bytes(&msg, update, sizeof update);

  assert_int_equal(device("POST", "/rd/5a3f", "application/link-format", "</3/0>"), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_UPDATE);
  assert_int_equal(gw_coap_option_uint(gw_coap_find_option(&msg, GW_COAP_OPT_CONTENT_FORMAT)),
                   40);

  assert_int_equal(device("DELETE", "/rd/5a3f", NULL, NULL), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_DEREGISTER);
  static const uint8_t dereg[] = {0x40, 0x04, 0x12, 0x34, 0xb2, 'r', 'd', 0x04, '5', 'a', '3',
                                  'f'};
  assert_coap_bytes(&msg, dereg, sizeof dereg);

  assert_int_equal(device("POST", "/dp", "application/senml+cbor", "\x81\xa1"), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_SEND);
  static const uint8_t send[] = {0x40, 0x02, 0x12, 0x34, 0xb2, 'd', 'p', 0x11, 112, 0xff,
                                 0x81, 0xa1};
  assert_coap_bytes(&msg, send, sizeof send);
  assert_int_equal(device("POST", "/dp", "application/vnd.oma.lwm2m+cbor", "x"), 0);
  assert_int_equal(device("POST", "/dp", "application/senml+json", "[]"), 0);

  assert_int_equal(device("POST", "/bs?ep=node-1&pct=112", NULL, NULL), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_BOOTSTRAP_REQUEST);
  static const uint8_t bs[] = {0x40, 0x02, 0x12, 0x34, 0xb2, 'b', 's', 0x49, 'e', 'p', '=', 'n',
                               'o', 'd', 'e', '-', '1', 0x07, 'p', 'c', 't', '=', '1', '1', '2'};
  assert_coap_bytes(&msg, bs, sizeof bs);

  /* 7.1.2: Bootstrap-Pack-Request is GET /bspack?ep= (Core 1.2 6.1.7.9). */
  assert_int_equal(device("GET", "/bspack?ep=node-1", NULL, NULL), 0);
  assert_int_equal(verdict.op, HTTP_MAP_OP_BOOTSTRAP_PACK);
  static const uint8_t pack[] = {0x40, 0x01, 0x12, 0x34, 0xb6, 'b', 's', 'p', 'a', 'c', 'k',
                                 0x49, 'e', 'p', '=', 'n', 'o', 'd', 'e', '-', '1'};
  assert_coap_bytes(&msg, pack, sizeof pack);
  unsigned status;
  assert_int_equal(http_map_status_from_coap(C(2, 5), HTTP_MAP_OP_BOOTSTRAP_PACK, true, &status),
                   HTTP_MAP_OK);
  assert_int_equal(status, 200);
}

/* A refusal with status and a reason that starts with prefix. */
static void refused(unsigned status, const char *prefix, const char *method, const char *target,
                    const char *content_type, const char *body) {
  unsigned rc = device(method, target, content_type, body);
  if (rc != status || strncmp(verdict.reason, prefix, strlen(prefix)) != 0)
    fail_msg("%s %s: got %u \"%s\", want %u \"%s...\"", method, target, rc, verdict.reason,
             status, prefix);
}

static void test_device_refusals_target(void **state) {
  (void)state;
  refused(400, "query: bad percent-encoding at offset 7", "POST", "/rd?ep=%zz", NULL, NULL);
  refused(400, "query: bad percent-encoding at offset 7", "POST", "/rd?ep=%4", NULL, NULL);
  refused(400, "query: bad percent-encoding at offset 7", "POST", "/rd?ep=%", NULL, NULL);
  refused(400, "path: bad percent-encoding at offset 3", "POST", "/rd%g0", NULL, NULL);
  refused(400, "target: not origin-form", "POST", "rd", NULL, NULL);
  refused(400, "target: not origin-form", "POST", "http://gw/rd", NULL, NULL);
  refused(400, "target: not origin-form", "POST", "*", NULL, NULL);
  refused(400, "target: not origin-form", "POST", "", NULL, NULL);
  refused(400, "path: empty segment at offset 1", "POST", "//rd", NULL, NULL);
  refused(400, "path: empty segment at offset 4", "POST", "/rd/", NULL, NULL);
  refused(400, "path: empty segment at offset 4", "POST", "/rd/?ep=a", NULL, NULL);
  refused(400, "path: dot-segment at offset 4", "DELETE", "/rd/../bs", NULL, NULL);
  refused(400, "path: dot-segment at offset 4", "DELETE", "/rd/%2e%2E", NULL, NULL);
  refused(400, "path: dot-segment at offset 1", "POST", "/./rd", NULL, NULL);
  refused(400, "path: encoded '/' at offset 3", "POST", "/rd%2Fx", NULL, NULL);
  refused(400, "path: invalid character 0x20 at offset 3", "POST", "/rd x", NULL, NULL);
  refused(400, "query: invalid character 0x23 at offset 8", "POST", "/rd?ep=a#f", NULL, NULL);
  refused(400, "path: invalid character 0x01", "POST", "/r\x01", NULL, NULL);
  refused(400, "path: invalid character 0xc3", "POST", "/r\xc3\xa9", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=a%00", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=%1F", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=%7f", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=%C3%28", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=%C0%AF", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=%ED%A0%80", NULL, NULL);
  refused(400, "query: control character or bad UTF-8", "POST", "/rd?ep=%E2%82", NULL, NULL);
  refused(400, "path: control character or bad UTF-8", "POST", "/rd%0A", NULL, NULL);
  refused(400, "query: empty at offset 4", "POST", "/rd?", NULL, NULL);
  refused(400, "query: empty parameter at offset 9", "POST", "/rd?ep=a&&lt=1", NULL, NULL);
  refused(400, "query: empty parameter at offset 9", "POST", "/rd?ep=a&", NULL, NULL);
  refused(400, "query: empty key at offset 9", "POST", "/rd?ep=a&=1", NULL, NULL);
  refused(400, "query: encoded '=' in key at offset 9", "POST", "/rd?ep=a&l%3D=1", NULL, NULL);
  refused(400, "query: duplicate key at offset 9", "POST", "/rd?ep=a&ep=b", NULL, NULL);
  refused(400, "query: duplicate key at offset 9", "POST", "/rd?ep=a&%65p=b", NULL, NULL);
  refused(400, "path: more than 8 segments", "POST", "/rd/1/2/3/4/5/6/7/8", NULL, NULL);
  refused(400, "query: more than 16 parameters", "POST",
          "/rd?ep=a&b=1&c&d&e&f&g&h&i&j&k&l&m&n&o&p&q", NULL, NULL);

  char long_target[HTTP_MAP_TARGET_MAX + 2];
  memset(long_target, 'a', sizeof long_target - 1);
  long_target[0] = '/';
  long_target[sizeof long_target - 1] = '\0';
  refused(414, "target: longer than 1024 bytes", "POST", long_target, NULL, NULL);
  long_target[300] = '\0'; /* one 299-byte segment */
  refused(400, "path: segment over 255 bytes at offset 1", "POST", long_target, NULL, NULL);
  memcpy(long_target, "/rd?ep=", 7);
  refused(400, "query: parameter over 255 bytes at offset 4", "POST", long_target, NULL, NULL);
}

static void test_device_refusals_operation(void **state) {
  (void)state;
  refused(501, "unknown method", "FOO", "/rd?ep=a", NULL, NULL);
  refused(501, "unknown method", "post", "/rd?ep=a", NULL, NULL); /* methods are case-sensitive */
  refused(400, "unknown operation: PUT /rd", "PUT", "/rd?ep=a", NULL, NULL);
  refused(400, "unknown operation: GET /rd/5a3f", "GET", "/rd/5a3f", NULL, NULL);
  refused(400, "unknown operation: DELETE /rd", "DELETE", "/rd", NULL, NULL);
  refused(400, "unknown operation: POST /", "POST", "/", NULL, NULL);
  refused(400, "unknown operation: POST /3/0", "POST", "/3/0", NULL, NULL);
  refused(400, "unknown operation: POST /dp/1", "POST", "/dp/1", NULL, NULL);
  refused(400, "Bootstrap-Pack-Request: ep missing", "GET", "/bspack", NULL, NULL);
  refused(400, "Bootstrap-Pack-Request: unexpected body", "GET", "/bspack?ep=a", NULL, "x");
  refused(400, "unknown operation: POST /bspack", "POST", "/bspack?ep=a", NULL, NULL);
  refused(400, "Register: ep missing", "POST", "/rd?lt=300", NULL, NULL);
  refused(400, "Register: ep missing", "POST", "/rd", NULL, "</1>");
  refused(400, "Bootstrap-Request: ep missing", "POST", "/bs", NULL, NULL);
  refused(400, "Bootstrap-Request: unexpected body", "POST", "/bs?ep=a", NULL, "x");
  refused(400, "De-register: unexpected query", "DELETE", "/rd/5a3f?lt=1", NULL, NULL);
  refused(400, "De-register: unexpected body", "DELETE", "/rd/5a3f", NULL, "x");
  refused(400, "Send: unexpected query", "POST", "/dp?a=1", "application/senml+cbor", "x");
  refused(400, "Send: empty body", "POST", "/dp", "application/senml+cbor", NULL);
  refused(400, "Send: Content-Type missing", "POST", "/dp", NULL, "x");
  refused(415, "Send: body must be", "POST", "/dp", "text/plain", "x");
  refused(415, "Send: body must be", "POST", "/dp", "application/vnd.oma.lwm2m+tlv", "x");
  refused(415, "Send: body must be", "POST", "/dp", "application/json", "x");
  refused(415, "Register: body must be application/link-format", "POST", "/rd?ep=a",
          "text/plain", "</1>");
  refused(415, "Update: body must be application/link-format", "POST", "/rd/1",
          "application/link-format; charset=latin1", "</1>");
}

static void test_device_refusals_internal(void **state) {
  (void)state;
  http_map_request_t req = {.method = "POST", .target = "/rd?ep=a", .target_len = 8};
  assert_int_equal(http_map_device_request(&req, 1, &msg, &scratch, NULL), 500);
  assert_int_equal(http_map_device_request(NULL, 1, &msg, &scratch, &verdict), 500);
  assert_int_equal(http_map_device_request(&req, 1, NULL, &scratch, &verdict), 500);
  assert_int_equal(http_map_device_request(&req, 1, &msg, NULL, &verdict), 500);
  http_map_request_t no_body = req;
  no_body.body_len = 3;
  scratch.used = 0;
  assert_int_equal(http_map_device_request(&no_body, 1, &msg, &scratch, &verdict), 500);
  /* A scratch buffer already used up by earlier messages. */
  scratch.used = sizeof scratch.buf - 1;
  assert_int_equal(http_map_device_request(&req, 1, &msg, &scratch, &verdict), 500);
  assert_string_equal(verdict.reason, "path: scratch full");
  scratch.used = sizeof scratch.buf - 4; /* "rd" fits, "ep" too, no room for "=" */
  assert_int_equal(http_map_device_request(&req, 1, &msg, &scratch, &verdict), 500);
  assert_string_equal(verdict.reason, "query: scratch full");
  scratch.used = sizeof scratch.buf - 5; /* "ep=" fits, "a" does not */
  assert_int_equal(http_map_device_request(&req, 1, &msg, &scratch, &verdict), 500);
  assert_string_equal(verdict.reason, "query: scratch full");
  http_map_request_t links = req; /* everything fits but the Content-Format value */
  links.body = (const uint8_t *)"</1>";
  links.body_len = 4;
  scratch.used = sizeof scratch.buf - 7;
  assert_int_equal(http_map_device_request(&links, 1, &msg, &scratch, &verdict), 500);
  assert_string_equal(verdict.reason, "scratch full");
  scratch.used = sizeof scratch.buf + 1;
  assert_int_equal(http_map_device_request(&req, 1, &msg, &scratch, &verdict), 500);
}

/* ---- Location --------------------------------------------------------------------------- */

static void test_location(void **state) {
  (void)state;
  gw_coap_msg_t resp;
  gw_coap_msg_init(&resp, GW_COAP_ACK, GW_COAP_CREATED, 1);
  char out[64];
  assert_int_equal(http_map_location(&resp, out, sizeof out), 0); /* no Location-Path */
  assert_int_equal(gw_coap_add_option(&resp, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)"rd", 2),
                   0);
  assert_int_equal(gw_coap_add_option(&resp, GW_COAP_OPT_LOCATION_PATH,
                                      (const uint8_t *)"a b/c..", 7), 0);
  assert_int_equal(http_map_location(&resp, out, sizeof out), 15);
  assert_string_equal(out, "/rd/a%20b%2Fc..");
  assert_int_equal(http_map_location(&resp, out, 15), 0); /* NUL does not fit */
  assert_int_equal(http_map_location(&resp, out, 16), 15);
  assert_int_equal(gw_coap_add_option(&resp, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)"..", 2),
                   0);
  assert_int_equal(http_map_location(&resp, out, sizeof out), 22);
  assert_string_equal(out, "/rd/a%20b%2Fc../%2E%2E"); /* no dot-segment leaves the gateway */
  assert_int_equal(gw_coap_add_option(&resp, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)"", 0),
                   0);
  assert_int_equal(http_map_location(&resp, out, sizeof out), 0);
  assert_int_equal(http_map_location(NULL, out, sizeof out), 0);
  assert_int_equal(http_map_location(&resp, NULL, 0), 0);
}

/* ---- server requests -------------------------------------------------------------------- */

typedef struct {
  gw_coap_msg_t msg;
  uint8_t uints[8][4];
  size_t uint_count;
} test_req_t;

static void req_init(test_req_t *r, uint8_t code, const char *path) {
  memset(r, 0, sizeof *r);
  gw_coap_msg_init(&r->msg, GW_COAP_CON, code, 0x0101);
  while (*path) {
    size_t n = strcspn(path, "/");
    assert_int_equal(gw_coap_add_option(&r->msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)path, n),
                     0);
    path += n + (path[n] == '/');
  }
}

static void req_uint(test_req_t *r, uint16_t number, uint32_t v) {
  uint8_t *buf = r->uints[r->uint_count++];
  assert_int_equal(gw_coap_add_option(&r->msg, number, buf, gw_coap_encode_uint(buf, v)), 0);
}

static void req_str(test_req_t *r, uint16_t number, const char *s) {
  assert_int_equal(gw_coap_add_option(&r->msg, number, (const uint8_t *)s, strlen(s)), 0);
}

static http_map_server_request_t http_out;

static void server_ok(const test_req_t *r, http_map_op_t op, const char *method,
                      const char *target, const char *content_type, const char *accept) {
  uint8_t rc = http_map_server_request(&r->msg, &http_out);
  if (rc != 0)
    fail_msg("%s %s: refused with %u \"%s\"", method, target, rc, http_out.reason);
  assert_int_equal(http_out.op, op);
  assert_string_equal(http_out.method, method);
  assert_string_equal(http_out.target, target);
  if (content_type)
    assert_string_equal(http_out.content_type, content_type);
  else
    assert_null(http_out.content_type);
  if (accept)
    assert_string_equal(http_out.accept, accept);
  else
    assert_null(http_out.accept);
  assert_int_equal(http_out.body_len, r->msg.payload_len);
}

static void test_server_requests(void **state) {
  (void)state;
  test_req_t r;
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 11542);
  server_ok(&r, HTTP_MAP_OP_READ, "GET", "/3/0/1", NULL, "application/vnd.oma.lwm2m+tlv");

  req_init(&r, GW_COAP_GET, "3");
  req_str(&r, GW_COAP_OPT_URI_QUERY, "depth=1");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  server_ok(&r, HTTP_MAP_OP_DISCOVER, "GET", "/3?depth=1", NULL, "application/link-format");

  req_init(&r, GW_COAP_GET, ""); /* Bootstrap-Discover of everything: "/" */
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  server_ok(&r, HTTP_MAP_OP_DISCOVER, "GET", "/", NULL, "application/link-format");

  req_init(&r, GW_COAP_GET, "lwm2m/3/0"); /* alternate path (7.1.1) */
  req_uint(&r, GW_COAP_OPT_OBSERVE, 1);   /* cancel without observation: a Read */
  server_ok(&r, HTTP_MAP_OP_READ, "GET", "/lwm2m/3/0", NULL, NULL);

  req_init(&r, GW_COAP_PUT, "1/0/1");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0);
  r.msg.payload = (const uint8_t *)"86400";
  r.msg.payload_len = 5;
  server_ok(&r, HTTP_MAP_OP_WRITE_REPLACE, "PUT", "/1/0/1", "text/plain;charset=utf-8", NULL);
  assert_memory_equal(http_out.body, "86400", 5);

  req_init(&r, GW_COAP_PUT, "3/0/9");
  req_str(&r, GW_COAP_OPT_URI_QUERY, "pmin=10");
  req_str(&r, GW_COAP_OPT_URI_QUERY, "gt=2.5");
  req_str(&r, GW_COAP_OPT_URI_QUERY, "st");
  server_ok(&r, HTTP_MAP_OP_WRITE_ATTRIBUTES, "PUT", "/3/0/9?pmin=10&gt=2.5&st", NULL, NULL);
  assert_null(http_out.body);

  req_init(&r, GW_COAP_PUT, "3/0/9");
  req_str(&r, GW_COAP_OPT_URI_QUERY, "a&b+c=d=e f");
  req_str(&r, GW_COAP_OPT_URI_QUERY, "=");
  server_ok(&r, HTTP_MAP_OP_WRITE_ATTRIBUTES, "PUT", "/3/0/9?a%26b%2Bc=d%3De%20f&=", NULL,
            NULL);

  req_init(&r, GW_COAP_POST, "3/0/4");
  server_ok(&r, HTTP_MAP_OP_EXECUTE, "POST", "/3/0/4", NULL, NULL);
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0);
  r.msg.payload = (const uint8_t *)"0='x'";
  r.msg.payload_len = 5;
  server_ok(&r, HTTP_MAP_OP_EXECUTE, "POST", "/3/0/4", "text/plain;charset=utf-8", NULL);

  req_init(&r, GW_COAP_POST, "3/0/7");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 11542);
  server_ok(&r, HTTP_MAP_OP_WRITE_PARTIAL, "POST", "/3/0/7", "application/vnd.oma.lwm2m+tlv",
            NULL);
  req_init(&r, GW_COAP_POST, "3/0");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 112);
  server_ok(&r, HTTP_MAP_OP_WRITE_PARTIAL, "POST", "/3/0", "application/senml+cbor", NULL);
  req_init(&r, GW_COAP_POST, "lwm2m/3303");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 11544);
  server_ok(&r, HTTP_MAP_OP_CREATE, "POST", "/lwm2m/3303", "application/vnd.oma.lwm2m+cbor",
            NULL);
  req_init(&r, GW_COAP_POST, "bs");
  server_ok(&r, HTTP_MAP_OP_BOOTSTRAP_FINISH, "POST", "/bs", NULL, NULL);
  req_init(&r, GW_COAP_DELETE, "3303/1");
  server_ok(&r, HTTP_MAP_OP_DELETE, "DELETE", "/3303/1", NULL, NULL);

  /* Elective options that mean nothing over HTTP are dropped; Block2 NUM 0 is a size hint. */
  req_init(&r, GW_COAP_GET, "3/0");
  req_str(&r, GW_COAP_OPT_URI_HOST, "dev");
  req_uint(&r, GW_COAP_OPT_BLOCK2, 0x02);
  req_uint(&r, GW_COAP_OPT_SIZE2, 0);
  req_uint(&r, GW_COAP_OPT_NO_RESPONSE, 0);
  server_ok(&r, HTTP_MAP_OP_READ, "GET", "/3/0", NULL, NULL);

  /* Segments that need encoding; a dot-only segment is encoded whole. */
  req_init(&r, GW_COAP_GET, "a b/../.x");
  server_ok(&r, HTTP_MAP_OP_READ, "GET", "/a%20b/%2E%2E/.x", NULL, NULL);
}

static void server_refused(const test_req_t *r, uint8_t code, const char *prefix) {
  uint8_t rc = http_map_server_request(&r->msg, &http_out);
  if (rc != code || strncmp(http_out.reason, prefix, strlen(prefix)) != 0)
    fail_msg("got %u \"%s\", want %u \"%s...\"", rc, http_out.reason, code, prefix);
  assert_int_equal(http_out.op, HTTP_MAP_OP_NONE);
}

static void test_server_refusals(void **state) {
  (void)state;
  test_req_t r;
  req_init(&r, GW_COAP_FETCH, "");
  server_refused(&r, C(4, 5), "composite operations are not supported");
  req_init(&r, GW_COAP_IPATCH, "");
  server_refused(&r, C(4, 5), "composite operations are not supported");
  req_init(&r, GW_COAP_PATCH, "3/0");
  server_refused(&r, C(4, 5), "method 6 has no LwM2M HTTP mapping");
  req_init(&r, GW_COAP_CODE(0, 9), "3/0");
  server_refused(&r, C(4, 5), "method 9");
  req_init(&r, GW_COAP_CONTENT, "3/0");
  server_refused(&r, C(5, 0), "internal: not a request");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 0);
  server_refused(&r, C(4, 5), "Observe is not supported");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_OBSERVE, 2);
  server_refused(&r, C(4, 0), "Observe value");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_str(&r, GW_COAP_OPT_IF_MATCH, "x");
  server_refused(&r, C(4, 2), "critical option 1");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_str(&r, GW_COAP_OPT_PROXY_URI, "coap://x");
  server_refused(&r, C(4, 2), "critical option 35");
  req_init(&r, GW_COAP_PUT, "3/0/1");
  req_uint(&r, GW_COAP_OPT_BLOCK1, 0x0e);
  server_refused(&r, C(4, 2), "Block1");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_BLOCK2, 0x12);
  server_refused(&r, C(4, 2), "Block2 past block 0");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 40);
  req_uint(&r, GW_COAP_OPT_ACCEPT, 112);
  server_refused(&r, C(4, 2), "Accept repeated");
  req_init(&r, GW_COAP_PUT, "3/0/1");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 50);
  server_refused(&r, C(4, 15), "Content-Format without media type");
  req_init(&r, GW_COAP_PUT, "3/0/1");
  req_uint(&r, GW_COAP_OPT_CONTENT_FORMAT, 0x10000);
  server_refused(&r, C(4, 15), "Content-Format without media type");
  req_init(&r, GW_COAP_GET, "3/0/1");
  req_uint(&r, GW_COAP_OPT_ACCEPT, 1541);
  server_refused(&r, C(4, 6), "Accept without media type");
  req_init(&r, GW_COAP_GET, "3/0/1");
  assert_int_equal(gw_coap_add_option(&r.msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"", 0), 0);
  server_refused(&r, C(4, 0), "empty Uri-Path segment");
  /* A target that cannot fit: 13 segments of 255 bytes that all need encoding. */
  static uint8_t wide[255];
  memset(wide, ' ', sizeof wide);
  req_init(&r, GW_COAP_GET, "");
  for (int i = 0; i < 13; i++)
    assert_int_equal(gw_coap_add_option(&r.msg, GW_COAP_OPT_URI_PATH, wide, sizeof wide), 0);
  server_refused(&r, C(5, 0), "target does not fit");
  server_refused(&(test_req_t){.msg = r.msg}, C(5, 0), "target does not fit");
  assert_int_equal(http_map_server_request(NULL, &http_out), C(5, 0));
  assert_int_equal(http_map_server_request(&r.msg, NULL), C(5, 0));
}

/* RFC 7617 2 and RFC 6750 2.1 examples, RFC 4648 10 padding cases. */
static void test_credentials(void **state) {
  (void)state;
  http_map_credentials_t c;
  assert_int_equal(http_map_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &c), 0);
  assert_int_equal(c.scheme, HTTP_MAP_AUTH_BASIC);
  assert_string_equal(c.user, "Aladdin");
  assert_string_equal(c.secret, "open sesame");
  assert_int_equal(http_map_credentials("basic   Zm86YmFy", &c), 0); /* "fo:bar", no padding */
  assert_string_equal(c.user, "fo");
  assert_string_equal(c.secret, "bar");
  assert_int_equal(http_map_credentials("Basic Zm9vOmI=", &c), 0); /* "foo:b" */
  assert_string_equal(c.secret, "b");
  assert_int_equal(http_map_credentials("Basic Zm9vOg==", &c), 0); /* "foo:" */
  assert_string_equal(c.user, "foo");
  assert_string_equal(c.secret, "");
  assert_int_equal(http_map_credentials("Bearer mF_9.B5f-4.1JqM", &c), 0);
  assert_int_equal(c.scheme, HTTP_MAP_AUTH_BEARER);
  assert_string_equal(c.secret, "mF_9.B5f-4.1JqM");
  assert_string_equal(c.user, "");
  assert_int_equal(http_map_credentials("BEARER abc==", &c), 0);
  assert_string_equal(c.secret, "abc==");

  static const char *const bad[] = {
      "",                     "Basic",           "Basic ",        "Basic QWxhZGRpbg==", /* no ':' */
      "Basic Zm9vOmI",        "Basic Zm9v=mI=",  "Basic Zg===",   "Basic Zm9v OmI=",
      "Basic AQID",           /* control characters */
      "Digest abc",           "Bearer ",         "Bearer a b",    "Bearer a=b",
      "Bearer abc,def",       "Negotiate",       "Basic Zm9vOmI=\r",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memset(&c, 0x55, sizeof(c));
    if (http_map_credentials(bad[i], &c) != -1)
      fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(c.user[0], 0);
    assert_int_equal(c.secret[0], 0);
  }
  assert_int_equal(http_map_credentials(NULL, &c), -1);
  assert_int_equal(http_map_credentials("Basic Zm86YmFy", NULL), -1);
  char long_token[400];
  memset(long_token, 'a', sizeof(long_token));
  memcpy(long_token, "Bearer ", 7);
  long_token[sizeof(long_token) - 1] = 0;
  assert_int_equal(http_map_credentials(long_token, &c), -1);
}

static void test_op_names(void **state) {
  (void)state;
  assert_string_equal(http_map_op_name(HTTP_MAP_OP_REGISTER), "Register");
  assert_string_equal(http_map_op_name(HTTP_MAP_OP_BOOTSTRAP_FINISH), "Bootstrap-Finish");
  assert_string_equal(http_map_op_name((http_map_op_t)99), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_from_coap_success),
      cmocka_unit_test(test_status_from_coap_errors),
      cmocka_unit_test(test_status_to_coap),
      cmocka_unit_test(test_media_types_round_trip),
      cmocka_unit_test(test_media_type_syntax),
      cmocka_unit_test(test_register),
      cmocka_unit_test(test_update_deregister_send_bootstrap),
      cmocka_unit_test(test_device_refusals_target),
      cmocka_unit_test(test_device_refusals_operation),
      cmocka_unit_test(test_device_refusals_internal),
      cmocka_unit_test(test_location),
      cmocka_unit_test(test_server_requests),
      cmocka_unit_test(test_server_refusals),
      cmocka_unit_test(test_credentials),
      cmocka_unit_test(test_op_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
