/* lwm2m-gw: CoAP message codec (RFC 7252 section 3). See coap_msg.h. */
#include "coap_msg.h"

#include <stdio.h>
#include <string.h>

#define COAP_VERSION 1
#define COAP_HEADER_LEN 4
#define COAP_PAYLOAD_MARKER 0xFF

/* RFC 7252 3.1: option delta and length nibbles 13 and 14 announce 1 and 2 extended bytes
 * holding the value minus 13 or 269; 15 is reserved. */
#define COAP_NIBBLE_EXT8 13
#define COAP_NIBBLE_EXT16 14
#define COAP_NIBBLE_RESERVED 15
#define COAP_EXT8_BASE 13u
#define COAP_EXT16_BASE 269u

/* ---- parsing ---------------------------------------------------------------------------- */

/* Reads the cursor of one datagram; every read checks against the end, so nothing past len is
 * ever touched. */
typedef struct {
  const uint8_t *data;
  size_t len;
  size_t pos;
} coap_reader_t;

static size_t reader_left(const coap_reader_t *r) { return r->len - r->pos; }

/* Decodes one option delta or length nibble with its extended bytes (RFC 7252 3.1). */
static gw_coap_parse_result_t read_option_field(coap_reader_t *r, uint8_t nibble,
                                                uint32_t *out_value) {
  if (nibble < COAP_NIBBLE_EXT8) {
    *out_value = nibble;
    return GW_COAP_PARSE_OK;
  }
  if (nibble == COAP_NIBBLE_RESERVED)
    return GW_COAP_PARSE_OPTION;
  if (nibble == COAP_NIBBLE_EXT8) {
    if (reader_left(r) < 1)
      return GW_COAP_PARSE_SHORT;
    *out_value = COAP_EXT8_BASE + r->data[r->pos];
    r->pos += 1;
    return GW_COAP_PARSE_OK;
  }
  if (reader_left(r) < 2)
    return GW_COAP_PARSE_SHORT;
  *out_value = COAP_EXT16_BASE + (((uint32_t)r->data[r->pos] << 8) | r->data[r->pos + 1]);
  r->pos += 2;
  return GW_COAP_PARSE_OK;
}

/* Reads one option whose first byte is not the payload marker; *io_number is the previous
 * option number and becomes this one's. */
static gw_coap_parse_result_t read_option(coap_reader_t *r, uint32_t *io_number,
                                          gw_coap_option_t *out_opt) {
  uint8_t first = r->data[r->pos++];
  uint32_t delta, length;
  gw_coap_parse_result_t res = read_option_field(r, first >> 4, &delta);
  if (res != GW_COAP_PARSE_OK)
    return res;
  res = read_option_field(r, first & 0x0f, &length);
  if (res != GW_COAP_PARSE_OK)
    return res;
  /* Option numbers are 16 bits (RFC 7252 12.2); a 16-bit extended length can exceed them. */
  if (*io_number + delta > UINT16_MAX || length > UINT16_MAX)
    return GW_COAP_PARSE_OPTION;
  if (reader_left(r) < length)
    return GW_COAP_PARSE_SHORT;
  *io_number += delta;
  out_opt->number = (uint16_t)*io_number;
  out_opt->length = (uint16_t)length;
  out_opt->value = r->data + r->pos;
  r->pos += length;
  return GW_COAP_PARSE_OK;
}

static gw_coap_parse_result_t read_options_and_payload(coap_reader_t *r, gw_coap_msg_t *msg) {
  uint32_t number = 0;
  while (reader_left(r) > 0 && r->data[r->pos] != COAP_PAYLOAD_MARKER) {
    if (msg->option_count == GW_COAP_MAX_OPTIONS)
      return GW_COAP_PARSE_TOO_MANY_OPTIONS;
    gw_coap_parse_result_t res = read_option(r, &number, &msg->options[msg->option_count]);
    if (res != GW_COAP_PARSE_OK)
      return res;
    msg->option_count++;
  }
  if (reader_left(r) == 0)
    return GW_COAP_PARSE_OK;
  r->pos++; /* the marker */
  /* RFC 7252 3: a marker followed by a zero-length payload is a message format error. */
  if (reader_left(r) == 0)
    return GW_COAP_PARSE_PAYLOAD_MARKER;
  msg->payload = r->data + r->pos;
  msg->payload_len = reader_left(r);
  return GW_COAP_PARSE_OK;
}

gw_coap_parse_result_t gw_coap_parse(const uint8_t *data, size_t len, gw_coap_msg_t *out_msg) {
  if (len < COAP_HEADER_LEN)
    return GW_COAP_PARSE_SHORT;
  if (data[0] >> 6 != COAP_VERSION)
    return GW_COAP_PARSE_VERSION;
  uint8_t tkl = data[0] & 0x0f;
  if (tkl > GW_COAP_MAX_TOKEN)
    return GW_COAP_PARSE_TOKEN_LEN;
  /* RFC 7252 4.1: an Empty message is exactly the 4-byte header. */
  if (data[1] == GW_COAP_EMPTY && (tkl != 0 || len != COAP_HEADER_LEN))
    return GW_COAP_PARSE_EMPTY_NOT_EMPTY;
  if (len - COAP_HEADER_LEN < tkl)
    return GW_COAP_PARSE_SHORT;

  gw_coap_msg_t msg;
  gw_coap_msg_init(&msg, (gw_coap_type_t)((data[0] >> 4) & 0x03), data[1],
                   (uint16_t)((data[2] << 8) | data[3]));
  gw_coap_set_token(&msg, data + COAP_HEADER_LEN, tkl);
  coap_reader_t reader = {data, len, COAP_HEADER_LEN + tkl};
  gw_coap_parse_result_t res = read_options_and_payload(&reader, &msg);
  if (res == GW_COAP_PARSE_OK)
    *out_msg = msg;
  return res;
}

const char *gw_coap_parse_result_str(gw_coap_parse_result_t r) {
  switch (r) {
  case GW_COAP_PARSE_OK: return "ok";
  case GW_COAP_PARSE_SHORT: return "truncated message";
  case GW_COAP_PARSE_VERSION: return "unsupported CoAP version";
  case GW_COAP_PARSE_TOKEN_LEN: return "reserved token length";
  case GW_COAP_PARSE_OPTION: return "malformed option";
  case GW_COAP_PARSE_TOO_MANY_OPTIONS: return "too many options";
  case GW_COAP_PARSE_PAYLOAD_MARKER: return "payload marker without payload";
  case GW_COAP_PARSE_EMPTY_NOT_EMPTY: return "empty message with content";
  }
  return "unknown parse result";
}

/* ---- serialising ------------------------------------------------------------------------ */

/* Writes into a caller buffer; once something does not fit, the writer stays failed and the
 * remaining writes are no-ops, so the callers check once at the end. */
typedef struct {
  uint8_t *buf;
  size_t size;
  size_t pos;
  bool overflow;
} coap_writer_t;

static void write_bytes(coap_writer_t *w, const uint8_t *bytes, size_t n) {
  if (w->overflow || w->size - w->pos < n) {
    w->overflow = true;
    return;
  }
  if (n > 0)
    memcpy(w->buf + w->pos, bytes, n);
  w->pos += n;
}

static void write_byte(coap_writer_t *w, uint8_t b) { write_bytes(w, &b, 1); }

/* The nibble announcing v (RFC 7252 3.1); the only encoding of v, hence minimal. */
static uint8_t option_nibble(uint32_t v) {
  if (v < COAP_EXT8_BASE)
    return (uint8_t)v;
  return v < COAP_EXT16_BASE ? COAP_NIBBLE_EXT8 : COAP_NIBBLE_EXT16;
}

static void write_option_ext(coap_writer_t *w, uint32_t v) {
  uint8_t nibble = option_nibble(v);
  if (nibble == COAP_NIBBLE_EXT8) {
    write_byte(w, (uint8_t)(v - COAP_EXT8_BASE));
  } else if (nibble == COAP_NIBBLE_EXT16) {
    uint32_t ext = v - COAP_EXT16_BASE;
    write_byte(w, (uint8_t)(ext >> 8));
    write_byte(w, (uint8_t)ext);
  }
}

static void write_option(coap_writer_t *w, uint16_t prev_number, const gw_coap_option_t *opt) {
  uint32_t delta = (uint32_t)opt->number - prev_number;
  write_byte(w, (uint8_t)(option_nibble(delta) << 4 | option_nibble(opt->length)));
  write_option_ext(w, delta);
  write_option_ext(w, opt->length);
  write_bytes(w, opt->value, opt->length);
}

/* What gw_coap_parse() would refuse, or what cannot be put on the wire at all. */
static bool msg_is_serializable(const gw_coap_msg_t *msg) {
  if ((unsigned)msg->type > GW_COAP_RST || msg->token_len > GW_COAP_MAX_TOKEN ||
      msg->option_count > GW_COAP_MAX_OPTIONS || (msg->payload_len > 0 && !msg->payload))
    return false;
  if (msg->code == GW_COAP_EMPTY &&
      (msg->token_len > 0 || msg->option_count > 0 || msg->payload_len > 0))
    return false; /* RFC 7252 4.1 */
  for (uint16_t i = 0; i < msg->option_count; i++) {
    const gw_coap_option_t *opt = &msg->options[i];
    if ((opt->length > 0 && !opt->value) || (i > 0 && opt->number < msg->options[i - 1].number))
      return false;
  }
  return true;
}

size_t gw_coap_serialize(const gw_coap_msg_t *msg, uint8_t *buf, size_t buf_size) {
  if (!msg_is_serializable(msg))
    return 0;
  coap_writer_t w = {buf, buf_size, 0, false};
  write_byte(&w, (uint8_t)(COAP_VERSION << 6 | msg->type << 4 | msg->token_len));
  write_byte(&w, msg->code);
  write_byte(&w, (uint8_t)(msg->mid >> 8));
  write_byte(&w, (uint8_t)msg->mid);
  write_bytes(&w, msg->token, msg->token_len);
  uint16_t prev_number = 0;
  for (uint16_t i = 0; i < msg->option_count; i++) {
    write_option(&w, prev_number, &msg->options[i]);
    prev_number = msg->options[i].number;
  }
  if (msg->payload_len > 0) {
    write_byte(&w, COAP_PAYLOAD_MARKER);
    write_bytes(&w, msg->payload, msg->payload_len);
  }
  return w.overflow ? 0 : w.pos;
}

/* ---- building and reading messages ------------------------------------------------------ */

void gw_coap_msg_init(gw_coap_msg_t *msg, gw_coap_type_t type, uint8_t code, uint16_t mid) {
  memset(msg, 0, sizeof(*msg));
  msg->type = type;
  msg->code = code;
  msg->mid = mid;
}

void gw_coap_answer_init(gw_coap_msg_t *msg, const gw_coap_msg_t *req, uint8_t code,
                         uint16_t non_mid, const char *diagnostic) {
  bool con = req->type == GW_COAP_CON;
  gw_coap_msg_init(msg, con ? GW_COAP_ACK : GW_COAP_NON, code, con ? req->mid : non_mid);
  gw_coap_set_token(msg, req->token, req->token_len);
  if (diagnostic) {
    size_t n = strlen(diagnostic);
    msg->payload = (const uint8_t *)diagnostic;
    msg->payload_len = n < GW_COAP_DIAGNOSTIC_MAX ? n : GW_COAP_DIAGNOSTIC_MAX;
  }
}

int gw_coap_set_token(gw_coap_msg_t *msg, const uint8_t *token, size_t len) {
  if (len > GW_COAP_MAX_TOKEN || (len > 0 && !token))
    return -1;
  if (len > 0)
    memcpy(msg->token, token, len);
  msg->token_len = (uint8_t)len;
  return 0;
}

int gw_coap_add_option(gw_coap_msg_t *msg, uint16_t number, const uint8_t *value, size_t len) {
  if (msg->option_count >= GW_COAP_MAX_OPTIONS || len > UINT16_MAX || (len > 0 && !value))
    return -1;
  uint16_t at = msg->option_count;
  while (at > 0 && msg->options[at - 1].number > number)
    at--;
  memmove(&msg->options[at + 1], &msg->options[at],
          (size_t)(msg->option_count - at) * sizeof(msg->options[0]));
  msg->options[at] = (gw_coap_option_t){number, (uint16_t)len, value};
  msg->option_count++;
  return 0;
}

int gw_coap_remove_options(gw_coap_msg_t *msg, uint16_t number) {
  uint16_t kept = 0;
  for (uint16_t i = 0; i < msg->option_count; i++) {
    if (msg->options[i].number != number)
      msg->options[kept++] = msg->options[i];
  }
  int removed = msg->option_count - kept;
  msg->option_count = kept;
  return removed;
}

const gw_coap_option_t *gw_coap_find_option(const gw_coap_msg_t *msg, uint16_t number) {
  for (uint16_t i = 0; i < msg->option_count; i++) {
    if (msg->options[i].number == number)
      return &msg->options[i];
  }
  return NULL;
}

uint32_t gw_coap_option_uint(const gw_coap_option_t *opt) {
  /* RFC 7252 3.2 allows at most 4 bytes; a longer value is malformed and reads as 0 rather
   * than as some arbitrary slice of it. */
  if (!opt || opt->length > 4)
    return 0;
  uint32_t v = 0;
  for (uint16_t i = 0; i < opt->length; i++)
    v = v << 8 | opt->value[i];
  return v;
}

size_t gw_coap_encode_uint(uint8_t buf[4], uint32_t v) {
  size_t len = 0;
  for (uint32_t rest = v; rest != 0; rest >>= 8)
    len++;
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
  return len;
}

/* ---- text for logs ---------------------------------------------------------------------- */

/* Appends n bytes to a NUL-terminated string in out, as much as fits. */
static void append_truncated(char *out, size_t out_size, size_t *io_used, const void *bytes,
                             size_t n) {
  size_t room = out_size - 1 - *io_used;
  size_t take = n < room ? n : room;
  if (take > 0)
    memcpy(out + *io_used, bytes, take);
  *io_used += take;
  out[*io_used] = '\0';
}

char *gw_coap_path_str(const gw_coap_msg_t *msg, uint16_t option_number, char *out,
                       size_t out_size) {
  if (out_size == 0)
    return out;
  size_t used = 0;
  out[0] = '\0';
  for (uint16_t i = 0; i < msg->option_count; i++) {
    const gw_coap_option_t *opt = &msg->options[i];
    if (opt->number != option_number)
      continue;
    append_truncated(out, out_size, &used, "/", 1);
    append_truncated(out, out_size, &used, opt->value, opt->length);
  }
  if (used == 0)
    append_truncated(out, out_size, &used, "/", 1);
  return out;
}

const char *gw_coap_code_str(uint8_t code, char buf[8]) {
  static const char *const method_names[] = {
      [GW_COAP_GET] = "GET",     [GW_COAP_POST] = "POST",   [GW_COAP_PUT] = "PUT",
      [GW_COAP_DELETE] = "DELETE", [GW_COAP_FETCH] = "FETCH", [GW_COAP_PATCH] = "PATCH",
      [GW_COAP_IPATCH] = "iPATCH"};
  if (code < sizeof(method_names) / sizeof(method_names[0]) && method_names[code])
    return method_names[code];
  snprintf(buf, 8, "%u.%02u", (unsigned)GW_COAP_CODE_CLASS(code),
           (unsigned)GW_COAP_CODE_DETAIL(code));
  return buf;
}

const char *gw_coap_type_str(gw_coap_type_t type) {
  switch (type) {
  case GW_COAP_CON: return "CON";
  case GW_COAP_NON: return "NON";
  case GW_COAP_ACK: return "ACK";
  case GW_COAP_RST: return "RST";
  }
  return "???";
}

/* ---- tokens as numbers ------------------------------------------------------------------ */

size_t gw_coap_token_from_u64(uint64_t token, uint8_t out[8]) {
  for (size_t i = 0; i < 8; i++)
    out[i] = (uint8_t)(token >> (8 * (7 - i)));
  return 8;
}

uint64_t gw_coap_token_to_u64(const uint8_t *token, size_t len) {
  if (!token || len > GW_COAP_MAX_TOKEN)
    return 0; /* RFC 7252 5.3.1: tokens are 0..8 bytes; anything else is no token of ours */
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++)
    v = v << 8 | token[i];
  return v;
}
