/* libFuzzer target for the LwM2M-over-HTTP mapping (http/http_map.h): request lines and headers
 * come from devices, CoAP requests from servers, status codes from both.
 *
 * Byte 0 picks the method (index into a list that includes unknown and lower-case ones), byte 1
 * picks the Content-Type (none, or one of a list of good and broken values); the rest up to the
 * first NUL is the request-target, and what follows the NUL is the body. Every CoAP request the
 * parser produces must serialize with gw_coap_serialize and parse back to the same message.
 * Other inputs are a CoAP request for the server direction (a produced target must be plain
 * printable ASCII without fragment), a Content-Type value (a known one must map back to itself
 * through http_map_media_type), and status values for both status mappings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_map.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

static const char *const methods[] = {"POST", "DELETE", "GET", "PUT", "post", "FOO", "PATCH", ""};
static const char *const content_types[] = {
    NULL, "application/link-format", "application/senml+json", "application/vnd.oma.lwm2m+cbor",
    "Application/SenML+CBOR ; charset=\"UTF-8\"", "text/plain;charset=latin1", "text/",
    "application/senml+cbor;x=\"a\\\"b\";;"};

static uint8_t wire[8192];

static void check_coap_round_trip(const gw_coap_msg_t *msg) {
  size_t n = gw_coap_serialize(msg, wire, sizeof wire);
  if (n == 0) {
    check(msg->payload_len > sizeof wire / 2); /* only a big body may not fit */
    return;
  }
  gw_coap_msg_t back;
  check(gw_coap_parse(wire, n, &back) == GW_COAP_PARSE_OK);
  check(back.code == msg->code && back.option_count == msg->option_count &&
        back.payload_len == msg->payload_len);
  for (size_t i = 0; i < msg->option_count; i++)
    check(back.options[i].number == msg->options[i].number &&
          back.options[i].length == msg->options[i].length &&
          memcmp(back.options[i].value, msg->options[i].value, msg->options[i].length) == 0);
}

/* A produced HTTP request for the device: its target must parse as an origin-form target. */
static void check_server_request(const gw_coap_msg_t *req) {
  http_map_server_request_t out;
  uint8_t rc = http_map_server_request(req, &out);
  if (rc != 0) {
    check(out.reason[0] != '\0' && out.op == HTTP_MAP_OP_NONE);
    return;
  }
  check(out.method && out.target[0] == '/' && out.op != HTTP_MAP_OP_NONE);
  check((out.body == NULL) == (out.body_len == 0));
  for (const char *c = out.target; *c; c++)
    check(*c > 0x20 && *c < 0x7f && *c != '#' && *c != ' ');
}

static void fuzz_device(const uint8_t *data, size_t size) {
  if (size < 2)
    return;
  http_map_request_t req = {.method = methods[data[0] % 8],
                            .content_type = content_types[data[1] % 8]};
  data += 2;
  size -= 2;
  const uint8_t *nul = memchr(data, 0, size);
  req.target = (const char *)data;
  req.target_len = nul ? (size_t)(nul - data) : size;
  if (nul && nul + 1 < data + size) {
    req.body = nul + 1;
    req.body_len = (size_t)(data + size - nul - 1);
  }
  static http_map_scratch_t scratch;
  scratch.used = 0;
  http_map_verdict_t verdict;
  gw_coap_msg_t out;
  unsigned rc = http_map_device_request(&req, 0x1234, &out, &scratch, &verdict);
  check(scratch.used <= sizeof scratch.buf);
  if (rc != 0) {
    check(rc == 400 || rc == 414 || rc == 415 || rc == 501);
    check(verdict.reason[0] != '\0');
    return;
  }
  check(verdict.op >= HTTP_MAP_OP_BOOTSTRAP_REQUEST && verdict.op <= HTTP_MAP_OP_BOOTSTRAP_PACK);
  check_coap_round_trip(&out);
  /* Answer mappings for every code the server could send. */
  for (unsigned code = 0; code < 256; code++) {
    unsigned status;
    int err = http_map_status_from_coap((uint8_t)code, verdict.op, code & 1, &status);
    check(err == HTTP_MAP_OK ? status >= 200 && status <= 599 : status == 500);
  }
}

static void fuzz_server(const uint8_t *data, size_t size) {
  gw_coap_msg_t req;
  if (gw_coap_parse(data, size, &req) != GW_COAP_PARSE_OK)
    return;
  check_server_request(&req);
  char location[512];
  size_t n = http_map_location(&req, location, sizeof location);
  check(n == 0 || (n == strlen(location) && location[0] == '/'));
}

static void fuzz_media_type(const uint8_t *data, size_t size) {
  uint16_t cf;
  if (http_map_content_format((const char *)data, size, &cf) == HTTP_MAP_OK) {
    const char *type = http_map_media_type(cf);
    check(type != NULL);
    uint16_t again;
    check(http_map_content_format(type, strlen(type), &again) == HTTP_MAP_OK && again == cf);
  }
  if (size >= 2) {
    unsigned status = (unsigned)data[0] << 8 | data[1];
    for (int op = HTTP_MAP_OP_NONE; op <= HTTP_MAP_OP_BOOTSTRAP_FINISH; op++) {
      uint8_t code;
      int err = http_map_status_to_coap(status % 1000, (http_map_op_t)op, &code);
      check(err == HTTP_MAP_OK ? code >= GW_COAP_CODE(2, 1) : code == GW_COAP_CODE(5, 0));
    }
  }
}

/* An Authorization value: parsed credentials are NUL-terminated and Basic users carry no ':'. */
static void fuzz_credentials(const uint8_t *data, size_t size) {
  char value[600];
  if (size >= sizeof(value))
    return;
  memcpy(value, data, size);
  value[size] = 0;
  http_map_credentials_t c;
  if (http_map_credentials(value, &c) != 0)
    return;
  check(memchr(c.user, 0, sizeof(c.user)) && memchr(c.secret, 0, sizeof(c.secret)));
  check(c.scheme == HTTP_MAP_AUTH_BEARER ? c.user[0] == 0 && c.secret[0] != 0
                                         : strchr(c.user, ':') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  switch (data[0] % 4) {
  case 0: fuzz_device(data + 1, size - 1); break;
  case 1: fuzz_server(data + 1, size - 1); break;
  case 2: fuzz_media_type(data + 1, size - 1); break;
  default: fuzz_credentials(data + 1, size - 1); break;
  }
  return 0;
}
