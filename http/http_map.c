/* lwm2m-gw: LwM2M over HTTP (Transport 1.2.1 section 7) <-> CoAP. See http_map.h and README.md.
 * Stateless, no allocation: decoded strings go into the caller's scratch. */
#include "http_map.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw_error.h"
#include "gw_text.h"

/* Content-Formats (Core 1.2 7.4, IANA CoAP Content-Formats registry). */
enum {
  CF_TEXT_PLAIN = 0, CF_LINK_FORMAT = 40, CF_OCTET_STREAM = 42, CF_CBOR = 60,
  CF_SENML_JSON = 110, CF_SENML_CBOR = 112, CF_SENML_ETCH_JSON = 320,
  CF_SENML_ETCH_CBOR = 322, CF_LWM2M_TLV = 11542, CF_LWM2M_JSON = 11543, CF_LWM2M_CBOR = 11544
};

/* Options RFC 7252 5.10 defines that coap_msg.h does not name. */
enum { OPT_IF_NONE_MATCH = 5, OPT_PROXY_SCHEME = 39 };

/* CoAP answer codes this module refuses a server request with. */
enum {
  CODE_BAD_REQUEST = GW_COAP_CODE(4, 0),
  CODE_BAD_OPTION = GW_COAP_CODE(4, 2),
  CODE_METHOD_NOT_ALLOWED = GW_COAP_CODE(4, 5),
  CODE_NOT_ACCEPTABLE = GW_COAP_CODE(4, 6),
  CODE_UNSUPPORTED_FORMAT = GW_COAP_CODE(4, 15),
  CODE_INTERNAL_ERROR = GW_COAP_CODE(5, 0)
};

/* HTTP statuses this module refuses a device request with (RFC 9110 15). */
enum {
  HTTP_BAD_REQUEST = 400, HTTP_URI_TOO_LONG = 414, HTTP_UNSUPPORTED_MEDIA_TYPE = 415,
  HTTP_INTERNAL_ERROR = 500, HTTP_NOT_IMPLEMENTED = 501
};

const char *http_map_op_name(http_map_op_t op) {
  static const char *const names[] = {
      [HTTP_MAP_OP_NONE] = "none",
      [HTTP_MAP_OP_BOOTSTRAP_REQUEST] = "Bootstrap-Request",
      [HTTP_MAP_OP_REGISTER] = "Register",
      [HTTP_MAP_OP_UPDATE] = "Update",
      [HTTP_MAP_OP_DEREGISTER] = "De-register",
      [HTTP_MAP_OP_SEND] = "Send",
      [HTTP_MAP_OP_BOOTSTRAP_PACK] = "Bootstrap-Pack-Request",
      [HTTP_MAP_OP_READ] = "Read",
      [HTTP_MAP_OP_DISCOVER] = "Discover",
      [HTTP_MAP_OP_WRITE_REPLACE] = "Write-Replace",
      [HTTP_MAP_OP_WRITE_ATTRIBUTES] = "Write-Attributes",
      [HTTP_MAP_OP_WRITE_PARTIAL] = "Write-Partial-Update",
      [HTTP_MAP_OP_EXECUTE] = "Execute",
      [HTTP_MAP_OP_CREATE] = "Create",
      [HTTP_MAP_OP_DELETE] = "Delete",
      [HTTP_MAP_OP_BOOTSTRAP_FINISH] = "Bootstrap-Finish",
  };
  return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

/* ---- status codes ----------------------------------------------------------------------- */

/* Error codes that map one to one (RFC 8075 7, checked against Transport 6.7 / 7.3 row by row).
 * 4.01 gives 403, not 401: an HTTP 401 must carry a WWW-Authenticate challenge (RFC 9110
 * 15.5.2) and the binding authenticates with TLS only; 7.3 allows "401 or 403" for Register.
 * 4.02 Bad Option has no HTTP twin: 400. 5.05 Proxying Not Supported: 502. */
static const struct {
  uint8_t coap;
  uint16_t http;
} error_codes[] = {
    {GW_COAP_CODE(4, 0), 400},  {GW_COAP_CODE(4, 1), 403},  {GW_COAP_CODE(4, 2), 400},
    {GW_COAP_CODE(4, 3), 403},  {GW_COAP_CODE(4, 4), 404},  {GW_COAP_CODE(4, 5), 405},
    {GW_COAP_CODE(4, 6), 406},  {GW_COAP_CODE(4, 9), 409},  {GW_COAP_CODE(4, 12), 412},
    {GW_COAP_CODE(4, 13), 413}, {GW_COAP_CODE(4, 15), 415}, {GW_COAP_CODE(4, 22), 422},
    {GW_COAP_CODE(4, 29), 429}, {GW_COAP_CODE(5, 0), 500},  {GW_COAP_CODE(5, 1), 501},
    {GW_COAP_CODE(5, 2), 502},  {GW_COAP_CODE(5, 3), 503},  {GW_COAP_CODE(5, 4), 504},
    {GW_COAP_CODE(5, 5), 502},
};
#define ERROR_CODE_COUNT (sizeof error_codes / sizeof error_codes[0])

/* RFC 8075 7: 2.02 and 2.04 are 200 with a payload, 204 without. 7.3 lists only "200 OK" for
 * Bootstrap-Request (6.7: 2.04), so that one is always 200. 2.03 Valid is 304 only for a
 * conditional request, which the gateway never relays: 200. 2.31 Continue and 4.08 are
 * block-wise, hop by hop: no mapping. */
static unsigned success_status(uint8_t coap_code, http_map_op_t op, bool has_payload) {
  switch (coap_code) {
  case GW_COAP_CREATED: return 201;
  case GW_COAP_VALID:
  case GW_COAP_CONTENT: return 200;
  case GW_COAP_CHANGED:
    if (op == HTTP_MAP_OP_BOOTSTRAP_REQUEST)
      return 200;
    return has_payload ? 200 : 204;
  case GW_COAP_DELETED: return has_payload ? 200 : 204;
  default: return 0;
  }
}

int http_map_status_from_coap(uint8_t coap_code, http_map_op_t op, bool has_payload,
                              unsigned *out_status) {
  unsigned status = success_status(coap_code, op, has_payload);
  for (size_t i = 0; status == 0 && i < ERROR_CODE_COUNT; i++)
    if (error_codes[i].coap == coap_code)
      status = error_codes[i].http;
  if (out_status)
    *out_status = status ? status : HTTP_INTERNAL_ERROR;
  return status ? HTTP_MAP_OK : HTTP_MAP_ERR_UNLISTED;
}

/* The success code of table 6.7 for a server's request (Bootstrap-* are classified as their
 * DM twins, which share the codes); 0 for a device operation. */
static uint8_t op_success_code(http_map_op_t op) {
  switch (op) {
  case HTTP_MAP_OP_READ:
  case HTTP_MAP_OP_DISCOVER: return GW_COAP_CONTENT;
  case HTTP_MAP_OP_CREATE: return GW_COAP_CREATED;
  case HTTP_MAP_OP_DELETE: return GW_COAP_DELETED;
  case HTTP_MAP_OP_WRITE_REPLACE:
  case HTTP_MAP_OP_WRITE_ATTRIBUTES:
  case HTTP_MAP_OP_WRITE_PARTIAL:
  case HTTP_MAP_OP_EXECUTE:
  case HTTP_MAP_OP_BOOTSTRAP_FINISH: return GW_COAP_CHANGED;
  default: return 0;
  }
}

/* Error statuses from a device: the reverse of error_codes, first match wins (RFC 7252 10.2
 * leaves the choice to the proxy), so 400 is 4.00, 403 is 4.01 and 502 is 5.02. 401 and 403 both
 * become 4.01: 7.3 gives "401 or 403" for the rows 6.7 answers with 4.01 ("Access Right
 * Permission Denied"), and 4.03 answers no operation of the device in 6.7. Other 4xx are 4.00,
 * other 5xx unlisted. */
static uint8_t error_code_for_status(unsigned status) {
  if (status == 401)
    return GW_COAP_CODE(4, 1);
  for (size_t i = 0; i < ERROR_CODE_COUNT; i++)
    if (error_codes[i].http == status)
      return error_codes[i].coap;
  return status >= 400 && status <= 499 ? CODE_BAD_REQUEST : 0;
}

int http_map_status_to_coap(unsigned status, http_map_op_t op, uint8_t *out_code) {
  uint8_t code = 0;
  /* 7.3 lists 200 and 204 for success; 201 is the natural answer to a Create. */
  if (status == 200 || status == 201 || status == 204)
    code = op_success_code(op);
  else
    code = error_code_for_status(status);
  if (out_code)
    *out_code = code ? code : CODE_INTERNAL_ERROR;
  return code ? HTTP_MAP_OK : HTTP_MAP_ERR_UNLISTED;
}

/* ---- media types ------------------------------------------------------------------------ */

static const struct {
  uint16_t cf;
  const char *type;   /* type/subtype, lower case */
  const char *header; /* what the gateway sends */
} media_types[] = {
    {CF_TEXT_PLAIN, "text/plain", "text/plain;charset=utf-8"},
    {CF_LINK_FORMAT, "application/link-format", "application/link-format"},
    {CF_OCTET_STREAM, "application/octet-stream", "application/octet-stream"},
    {CF_CBOR, "application/cbor", "application/cbor"},
    {CF_SENML_JSON, "application/senml+json", "application/senml+json"},
    {CF_SENML_CBOR, "application/senml+cbor", "application/senml+cbor"},
    {CF_SENML_ETCH_JSON, "application/senml-etch+json", "application/senml-etch+json"},
    {CF_SENML_ETCH_CBOR, "application/senml-etch+cbor", "application/senml-etch+cbor"},
    {CF_LWM2M_TLV, "application/vnd.oma.lwm2m+tlv", "application/vnd.oma.lwm2m+tlv"},
    {CF_LWM2M_JSON, "application/vnd.oma.lwm2m+json", "application/vnd.oma.lwm2m+json"},
    {CF_LWM2M_CBOR, "application/vnd.oma.lwm2m+cbor", "application/vnd.oma.lwm2m+cbor"},
};
#define MEDIA_TYPE_COUNT (sizeof media_types / sizeof media_types[0])

const char *http_map_media_type(uint16_t cf) {
  for (size_t i = 0; i < MEDIA_TYPE_COUNT; i++)
    if (media_types[i].cf == cf)
      return media_types[i].header;
  return NULL;
}

/* tchar (RFC 9110 5.6.2). */
static bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* A cursor over a header value (not NUL-terminated). */
typedef struct {
  const char *s;
  size_t len, pos;
} cursor_t;

static void skip_ows(cursor_t *c) {
  while (c->pos < c->len && is_ows(c->s[c->pos]))
    c->pos++;
}

/* Length of the token at the cursor (advanced past it); 0 when there is none. */
static size_t take_token(cursor_t *c) {
  size_t start = c->pos;
  while (c->pos < c->len && is_tchar(c->s[c->pos]))
    c->pos++;
  return c->pos - start;
}

/* A quoted-string (RFC 9110 5.6.4) at the cursor, unquoted into out (NUL-terminated, cut at
 * out_size - 1 with *cut set). false when malformed. */
static bool take_quoted(cursor_t *c, char *out, size_t out_size, bool *cut) {
  size_t n = 0;
  c->pos++; /* opening DQUOTE */
  while (c->pos < c->len) {
    unsigned char ch = (unsigned char)c->s[c->pos++];
    if (ch == '"') {
      out[n] = '\0';
      return true;
    }
    if (ch == '\\') { /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
      if (c->pos == c->len)
        return false;
      ch = (unsigned char)c->s[c->pos++];
    }
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return false;
    if (n + 1 < out_size)
      out[n++] = (char)ch;
    else
      *cut = true;
  }
  return false;
}

/* One parameter "name=value" after ';' (RFC 9110 5.6.6); checks a charset. */
static bool take_parameter(cursor_t *c) {
  const char *name = c->s + c->pos;
  size_t name_len = take_token(c);
  if (name_len == 0 || c->pos >= c->len || c->s[c->pos] != '=')
    return false;
  c->pos++;
  char value[16];
  bool cut = false;
  if (c->pos < c->len && c->s[c->pos] == '"') {
    if (!take_quoted(c, value, sizeof value, &cut))
      return false;
  } else {
    const char *v = c->s + c->pos;
    size_t v_len = take_token(c);
    if (v_len == 0)
      return false;
    cut = v_len >= sizeof value;
    memcpy(value, v, cut ? sizeof value - 1 : v_len);
    value[cut ? sizeof value - 1 : v_len] = '\0';
  }
  /* LwM2M strings are UTF-8 (Core 1.2 C.1); the gateway does not transcode. */
  if (name_len == 7 && strncasecmp(name, "charset", 7) == 0)
    return !cut && strcasecmp(value, "utf-8") == 0;
  return true;
}

int http_map_content_format(const char *value, size_t len, uint16_t *out_cf) {
  if (!value)
    return HTTP_MAP_ERR_MEDIA_TYPE;
  cursor_t c = {value, len, 0};
  skip_ows(&c);
  const char *type = value + c.pos;
  /* media-type = type "/" subtype parameters (RFC 9110 8.3.1) */
  size_t type_len = take_token(&c);
  if (type_len == 0 || c.pos >= len || value[c.pos] != '/')
    return HTTP_MAP_ERR_MEDIA_TYPE;
  c.pos++;
  if (take_token(&c) == 0)
    return HTTP_MAP_ERR_MEDIA_TYPE;
  size_t full_len = (size_t)(value + c.pos - type);
  for (;;) { /* parameters = *( OWS ";" OWS [ parameter ] ) */
    skip_ows(&c);
    if (c.pos == len)
      break;
    if (value[c.pos] != ';')
      return HTTP_MAP_ERR_MEDIA_TYPE;
    c.pos++;
    skip_ows(&c);
    if (c.pos < len && value[c.pos] != ';' && !take_parameter(&c))
      return HTTP_MAP_ERR_MEDIA_TYPE;
  }
  for (size_t i = 0; i < MEDIA_TYPE_COUNT; i++) {
    if (strlen(media_types[i].type) == full_len &&
        strncasecmp(media_types[i].type, type, full_len) == 0) {
      if (out_cf)
        *out_cf = media_types[i].cf;
      return HTTP_MAP_OK;
    }
  }
  return HTTP_MAP_ERR_MEDIA_TYPE;
}

/* ---- characters of a URI (RFC 3986 2, 3.3, 3.4) ----------------------------------------- */

static bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c) { return c && strchr("!$&'()*+,;=", c); }

/* pchar without pct-encoded (handled by the decoder). */
static bool is_pchar(unsigned char c) {
  return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* Decoded Uri-Path / Uri-Query values are CoAP strings: UTF-8 (RFC 7252 3.2, 5.10) without
 * control characters (NUL included), which logs and servers handle badly. Offset of the first
 * bad byte, or n when all are fine. */
static size_t bad_text_offset(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = gw_utf8_next(s + i, n - i, &cp);
    if (k == 0 || s[i] < 0x20 || s[i] == 0x7f)
      return i;
    i += k;
  }
  return n;
}

/* ---- device requests -------------------------------------------------------------------- */

/* A device request under parse: the target, the scratch it decodes into, the verdict. */
typedef struct {
  const char *target;
  http_map_scratch_t *scratch;
  http_map_verdict_t *verdict;
  const uint8_t *segments[HTTP_MAP_SEGMENTS_MAX];
  size_t segment_len[HTTP_MAP_SEGMENTS_MAX];
  size_t segment_count;
  const uint8_t *queries[HTTP_MAP_QUERIES_MAX]; /* "key" or "key=value", decoded */
  size_t query_len[HTTP_MAP_QUERIES_MAX];
  size_t key_len[HTTP_MAP_QUERIES_MAX];
  size_t query_count;
} parse_t;

static unsigned refuse(http_map_verdict_t *v, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static unsigned refuse(http_map_verdict_t *v, unsigned status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->reason, sizeof v->reason, fmt, ap);
  va_end(ap);
  return status;
}

/* Percent-decodes target[from, to) (RFC 3986 2.1) onto the end of the scratch buffer. `what`
 * names the component in the reason. Raw characters must be pchar (plus "/" and "?" in a query,
 * 3.4); a decoded "/" in a path segment is refused (it would read as two segments in logs and
 * in LwM2M paths). 0, or 400. */
static unsigned decode_component(parse_t *p, size_t from, size_t to, bool in_query,
                                 const char *what) {
  http_map_scratch_t *s = p->scratch;
  if (to - from > sizeof s->buf - s->used)
    return refuse(p->verdict, HTTP_INTERNAL_ERROR, "%s: scratch full", what);
  uint8_t *out = s->buf + s->used;
  size_t n = 0;
  for (size_t i = from; i < to; i++) {
    unsigned char c = (unsigned char)p->target[i];
    if (c == '%') {
      int hi = i + 2 < to ? gw_hex_digit(p->target[i + 1]) : -1;
      int lo = hi >= 0 ? gw_hex_digit(p->target[i + 2]) : -1;
      if (lo < 0)
        return refuse(p->verdict, HTTP_BAD_REQUEST, "%s: bad percent-encoding at offset %zu",
                      what, i);
      c = (unsigned char)(hi << 4 | lo);
      if (c == '/' && !in_query)
        return refuse(p->verdict, HTTP_BAD_REQUEST, "%s: encoded '/' at offset %zu", what, i);
      i += 2;
    } else if (!is_pchar(c) && !(in_query && (c == '/' || c == '?'))) {
      return refuse(p->verdict, HTTP_BAD_REQUEST, "%s: invalid character 0x%02x at offset %zu",
                    what, c, i);
    }
    out[n++] = c;
  }
  size_t bad = bad_text_offset(out, n);
  if (bad < n)
    return refuse(p->verdict, HTTP_BAD_REQUEST,
                  "%s: control character or bad UTF-8 in component at offset %zu", what, from);
  s->used += n;
  return 0;
}

/* Path segments of "/a/b" (target[0, end)): decoded, none empty, no dot-segment (RFC 3986
 * 3.3, 5.2.4: a relay must not let "/rd/../bs" reach anyone), at most HTTP_MAP_SEGMENTS_MAX of
 * at most HTTP_MAP_OPTION_MAX bytes. */
static unsigned parse_path(parse_t *p, size_t end) {
  size_t pos = 1; /* past the leading "/" */
  if (end == 1)
    return 0; /* "/": no segment */
  for (;;) {
    size_t stop = pos;
    while (stop < end && p->target[stop] != '/')
      stop++;
    if (stop == pos)
      return refuse(p->verdict, HTTP_BAD_REQUEST, "path: empty segment at offset %zu", pos);
    if (p->segment_count == HTTP_MAP_SEGMENTS_MAX)
      return refuse(p->verdict, HTTP_BAD_REQUEST, "path: more than %d segments",
                    HTTP_MAP_SEGMENTS_MAX);
    const uint8_t *seg = p->scratch->buf + p->scratch->used;
    unsigned rc = decode_component(p, pos, stop, false, "path");
    if (rc)
      return rc;
    size_t len = (size_t)(p->scratch->buf + p->scratch->used - seg);
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
      return refuse(p->verdict, HTTP_BAD_REQUEST, "path: dot-segment at offset %zu", pos);
    if (len > HTTP_MAP_OPTION_MAX)
      return refuse(p->verdict, HTTP_BAD_REQUEST, "path: segment over %d bytes at offset %zu",
                    HTTP_MAP_OPTION_MAX, pos);
    p->segments[p->segment_count] = seg;
    p->segment_len[p->segment_count++] = len;
    if (stop == end)
      return 0;
    pos = stop + 1;
  }
}

/* One "key[=value]" of target[from, to), stored decoded as "key" or "key=value". */
static unsigned parse_query_pair(parse_t *p, size_t from, size_t to) {
  if (from == to)
    return refuse(p->verdict, HTTP_BAD_REQUEST, "query: empty parameter at offset %zu", from);
  if (p->query_count == HTTP_MAP_QUERIES_MAX)
    return refuse(p->verdict, HTTP_BAD_REQUEST, "query: more than %d parameters",
                  HTTP_MAP_QUERIES_MAX);
  const char *eq = memchr(p->target + from, '=', to - from);
  size_t key_end = eq ? (size_t)(eq - p->target) : to;
  if (key_end == from)
    return refuse(p->verdict, HTTP_BAD_REQUEST, "query: empty key at offset %zu", from);
  const uint8_t *start = p->scratch->buf + p->scratch->used;
  unsigned rc = decode_component(p, from, key_end, true, "query");
  if (rc)
    return rc;
  size_t key_len = (size_t)(p->scratch->buf + p->scratch->used - start);
  /* A decoded "=" in a key would move the key/value split of the CoAP option. */
  if (memchr(start, '=', key_len))
    return refuse(p->verdict, HTTP_BAD_REQUEST, "query: encoded '=' in key at offset %zu",
                  from);
  for (size_t i = 0; i < p->query_count; i++)
    if (p->key_len[i] == key_len && memcmp(p->queries[i], start, key_len) == 0)
      return refuse(p->verdict, HTTP_BAD_REQUEST, "query: duplicate key at offset %zu", from);
  if (eq) {
    if (p->scratch->used == sizeof p->scratch->buf)
      return refuse(p->verdict, HTTP_INTERNAL_ERROR, "query: scratch full");
    p->scratch->buf[p->scratch->used++] = '=';
    rc = decode_component(p, key_end + 1, to, true, "query");
    if (rc)
      return rc;
  }
  size_t len = (size_t)(p->scratch->buf + p->scratch->used - start);
  if (len > HTTP_MAP_OPTION_MAX)
    return refuse(p->verdict, HTTP_BAD_REQUEST, "query: parameter over %d bytes at offset %zu",
                  HTTP_MAP_OPTION_MAX, from);
  p->queries[p->query_count] = start;
  p->key_len[p->query_count] = key_len;
  p->query_len[p->query_count++] = len;
  return 0;
}

/* The query target[from, to): parameters separated by "&" (Transport 7.1.2 / 7.1.3). */
static unsigned parse_query(parse_t *p, size_t from, size_t to) {
  if (from == to)
    return refuse(p->verdict, HTTP_BAD_REQUEST, "query: empty at offset %zu", from);
  for (size_t pos = from;;) {
    const char *amp = memchr(p->target + pos, '&', to - pos);
    size_t stop = amp ? (size_t)(amp - p->target) : to;
    unsigned rc = parse_query_pair(p, pos, stop);
    if (rc || stop == to)
      return rc;
    pos = stop + 1;
  }
}

static bool segment_is(const parse_t *p, size_t i, const char *s) {
  return i < p->segment_count && p->segment_len[i] == strlen(s) &&
         memcmp(p->segments[i], s, p->segment_len[i]) == 0;
}

static bool has_key(const parse_t *p, const char *key) {
  for (size_t i = 0; i < p->query_count; i++)
    if (p->key_len[i] == strlen(key) && memcmp(p->queries[i], key, p->key_len[i]) == 0)
      return true;
  return false;
}

/* Methods RFC 9110 9.3 defines, plus PATCH (RFC 5789). Others are 501 (9110 9.1). */
static bool method_known(const char *m) {
  static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
                                      "OPTIONS", "TRACE", "PATCH"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(m, known[i]) == 0)
      return true;
  return false;
}

/* The operation of a parsed request (7.1.2, 7.1.3, 7.1.5): the location of a registration is
 * under /rd (7.1.3: "The LwM2M Server MUST return a location under the /rd path segment"). */
static http_map_op_t classify(const parse_t *p, const char *method) {
  bool post = strcmp(method, "POST") == 0;
  if (p->segment_count == 1 && post) {
    if (segment_is(p, 0, "bs"))
      return HTTP_MAP_OP_BOOTSTRAP_REQUEST;
    if (segment_is(p, 0, "rd"))
      return HTTP_MAP_OP_REGISTER;
    if (segment_is(p, 0, "dp"))
      return HTTP_MAP_OP_SEND;
  }
  if (p->segment_count == 1 && strcmp(method, "GET") == 0 && segment_is(p, 0, "bspack"))
    return HTTP_MAP_OP_BOOTSTRAP_PACK;
  if (p->segment_count >= 2 && segment_is(p, 0, "rd")) {
    if (post)
      return HTTP_MAP_OP_UPDATE;
    if (strcmp(method, "DELETE") == 0)
      return HTTP_MAP_OP_DEREGISTER;
  }
  return HTTP_MAP_OP_NONE;
}

/* The Content-Format of the body for op into *out_cf (-1: none). 0, or a refusal. */
static unsigned body_format(const http_map_request_t *req, http_map_op_t op,
                            http_map_verdict_t *v, long *out_cf) {
  const char *name = http_map_op_name(op);
  const char *type = req->content_type;
  uint16_t cf = 0;
  *out_cf = -1;
  if (op == HTTP_MAP_OP_REGISTER || op == HTTP_MAP_OP_UPDATE) {
    if (req->body_len == 0)
      return 0; /* a Content-Type without content describes nothing (RFC 9110 8.3) */
    /* Core 1.2 6.2.1: the payload is CoRE Link Format; a client that leaves it out means it. */
    *out_cf = CF_LINK_FORMAT;
    if (type && (http_map_content_format(type, strlen(type), &cf) || cf != CF_LINK_FORMAT))
      return refuse(v, HTTP_UNSUPPORTED_MEDIA_TYPE, "%s: body must be application/link-format",
                    name);
    return 0;
  }
  if (op == HTTP_MAP_OP_SEND) {
    if (req->body_len == 0)
      return refuse(v, HTTP_BAD_REQUEST, "Send: empty body");
    if (!type)
      return refuse(v, HTTP_BAD_REQUEST, "Send: Content-Type missing (7.1.5 MUST)");
    if (http_map_content_format(type, strlen(type), &cf) ||
        (cf != CF_LWM2M_CBOR && cf != CF_SENML_JSON && cf != CF_SENML_CBOR))
      return refuse(v, HTTP_UNSUPPORTED_MEDIA_TYPE,
                    "Send: body must be LwM2M CBOR, SenML JSON or SenML CBOR (7.1.5)");
    *out_cf = cf;
    return 0;
  }
  /* Bootstrap-Request, Bootstrap-Pack-Request and De-register carry no payload (7.1.2,
   * 7.1.3). */
  if (req->body_len != 0)
    return refuse(v, HTTP_BAD_REQUEST, "%s: unexpected body", name);
  return 0;
}

/* Operation rules beyond the path: mandatory and forbidden query parameters. */
static unsigned check_query_rules(const parse_t *p, http_map_op_t op) {
  const char *name = http_map_op_name(op);
  if ((op == HTTP_MAP_OP_REGISTER || op == HTTP_MAP_OP_BOOTSTRAP_REQUEST ||
       op == HTTP_MAP_OP_BOOTSTRAP_PACK) &&
      !has_key(p, "ep"))
    return refuse(p->verdict, HTTP_BAD_REQUEST, "%s: ep missing", name);
  if ((op == HTTP_MAP_OP_DEREGISTER || op == HTTP_MAP_OP_SEND) && p->query_count)
    return refuse(p->verdict, HTTP_BAD_REQUEST, "%s: unexpected query", name);
  return 0;
}

/* Splits and decodes the request-target (origin-form, RFC 9112 3.2.1). */
static unsigned parse_target(parse_t *p, size_t len) {
  if (len > HTTP_MAP_TARGET_MAX)
    return refuse(p->verdict, HTTP_URI_TOO_LONG, "target: longer than %d bytes",
                  HTTP_MAP_TARGET_MAX);
  if (len == 0 || p->target[0] != '/')
    return refuse(p->verdict, HTTP_BAD_REQUEST, "target: not origin-form (must start with '/')");
  const char *q = memchr(p->target, '?', len);
  size_t path_end = q ? (size_t)(q - p->target) : len;
  unsigned rc = parse_path(p, path_end);
  if (rc == 0 && q)
    rc = parse_query(p, path_end + 1, len);
  return rc;
}

static unsigned build_coap(const parse_t *p, const http_map_request_t *req, long cf,
                           uint16_t mid, gw_coap_msg_t *out) {
  http_map_scratch_t *s = p->scratch;
  http_map_op_t op = p->verdict->op;
  uint8_t code = op == HTTP_MAP_OP_DEREGISTER    ? GW_COAP_DELETE
                 : op == HTTP_MAP_OP_BOOTSTRAP_PACK ? GW_COAP_GET
                                                    : GW_COAP_POST;
  gw_coap_msg_init(out, GW_COAP_CON, code, mid);
  int err = 0;
  for (size_t i = 0; i < p->segment_count; i++)
    err |= gw_coap_add_option(out, GW_COAP_OPT_URI_PATH, p->segments[i], p->segment_len[i]);
  for (size_t i = 0; i < p->query_count; i++)
    err |= gw_coap_add_option(out, GW_COAP_OPT_URI_QUERY, p->queries[i], p->query_len[i]);
  if (cf >= 0) {
    if (sizeof s->buf - s->used < 4)
      return refuse(p->verdict, HTTP_INTERNAL_ERROR, "scratch full");
    size_t n = gw_coap_encode_uint(s->buf + s->used, (uint32_t)cf);
    err |= gw_coap_add_option(out, GW_COAP_OPT_CONTENT_FORMAT, s->buf + s->used, n);
    s->used += n;
  }
  if (err)
    return refuse(p->verdict, HTTP_INTERNAL_ERROR, "too many CoAP options");
  out->payload = req->body_len ? req->body : NULL;
  out->payload_len = req->body_len;
  return 0;
}

unsigned http_map_device_request(const http_map_request_t *req, uint16_t mid, gw_coap_msg_t *out,
                                 http_map_scratch_t *scratch, http_map_verdict_t *verdict) {
  if (!verdict)
    return HTTP_INTERNAL_ERROR;
  verdict->op = HTTP_MAP_OP_NONE;
  verdict->reason[0] = '\0';
  if (!req || !out || !scratch || !req->method || (!req->target && req->target_len) ||
      (!req->body && req->body_len) || scratch->used > sizeof scratch->buf)
    return refuse(verdict, HTTP_INTERNAL_ERROR, "internal: bad arguments");
  if (!method_known(req->method))
    return refuse(verdict, HTTP_NOT_IMPLEMENTED, "unknown method");
  parse_t p = {.target = req->target, .scratch = scratch, .verdict = verdict};
  unsigned rc = parse_target(&p, req->target_len);
  if (rc)
    return rc;
  http_map_op_t op = classify(&p, req->method);
  const char *q = memchr(req->target, '?', req->target_len);
  size_t path_len = q ? (size_t)(q - req->target) : req->target_len;
  if (op == HTTP_MAP_OP_NONE) {
    return refuse(verdict, HTTP_BAD_REQUEST, "unknown operation: %s %.*s", req->method,
                  (int)(path_len > 48 ? 48 : path_len), req->target);
  }
  verdict->op = op;
  rc = check_query_rules(&p, op);
  if (rc)
    return rc;
  long cf;
  rc = body_format(req, op, verdict, &cf);
  if (rc)
    return rc;
  return build_coap(&p, req, cf, mid, out);
}

/* Whether every byte of s[0..n) is one of chars (option values are not NUL-terminated). */
static bool all_of(const uint8_t *s, size_t n, const char *chars) {
  for (size_t i = 0; i < n; i++)
    if (!s[i] || !strchr(chars, s[i]))
      return false;
  return true;
}

/* ---- percent-encoding for the way out --------------------------------------------------- */

/* Appends s[0..n) to out at *used, percent-encoding every byte outside `keep` (upper-case hex,
 * RFC 3986 2.1). false when out (NUL included) is too small. */
static bool append_encoded(char *out, size_t out_size, size_t *used, const uint8_t *s, size_t n,
                           bool (*keep)(unsigned char)) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    size_t need = keep(s[i]) ? 1 : 3;
    if (out_size - *used <= need)
      return false;
    if (need == 1) {
      out[(*used)++] = (char)s[i];
    } else {
      out[(*used)++] = '%';
      out[(*used)++] = hex[s[i] >> 4];
      out[(*used)++] = hex[s[i] & 15];
    }
  }
  out[*used] = '\0';
  return true;
}

static bool append_char(char *out, size_t out_size, size_t *used, char c) {
  if (out_size - *used <= 1)
    return false;
  out[(*used)++] = c;
  out[*used] = '\0';
  return true;
}

/* A path segment keeps pchar; "." and ".." are encoded whole so that no dot-segment leaves. */
static bool keep_pchar_but_dot(unsigned char c) { return is_pchar(c) && c != '.'; }
/* Query keys and values keep unreserved and the sub-delims that mean nothing to form decoders:
 * "&", "=", "+" (read as space by many servers) and ";" are encoded. */
static bool keep_in_query(unsigned char c) {
  return is_unreserved(c) || (c && strchr("!$'()*,:@/?", c));
}
static bool keep_pchar(unsigned char c) { return is_pchar(c); }

/* "/" + each option of `number` encoded as a segment; dots are encoded only in a segment made
 * of dots alone. false when out is too small or a segment is empty. */
static bool append_path(const gw_coap_msg_t *msg, uint16_t number, char *out, size_t out_size,
                        size_t *used) {
  for (size_t i = 0; i < msg->option_count; i++) {
    const gw_coap_option_t *o = &msg->options[i];
    if (o->number != number)
      continue;
    if (o->length == 0 || !append_char(out, out_size, used, '/'))
      return false;
    bool dots = all_of(o->value, o->length, ".");
    if (!append_encoded(out, out_size, used, o->value, o->length,
                        dots ? keep_pchar_but_dot : keep_pchar))
      return false;
  }
  return true;
}

size_t http_map_location(const gw_coap_msg_t *resp, char *out, size_t out_size) {
  if (!resp || !out || out_size == 0)
    return 0;
  size_t used = 0;
  out[0] = '\0';
  if (!gw_coap_find_option(resp, GW_COAP_OPT_LOCATION_PATH) ||
      !append_path(resp, GW_COAP_OPT_LOCATION_PATH, out, out_size, &used)) {
    out[0] = '\0';
    return 0;
  }
  return used;
}

/* ---- server requests -------------------------------------------------------------------- */

static uint8_t refuse_server(http_map_server_request_t *out, uint8_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static uint8_t refuse_server(http_map_server_request_t *out, uint8_t code, const char *fmt,
                             ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->reason, sizeof out->reason, fmt, ap);
  va_end(ap);
  out->op = HTTP_MAP_OP_NONE;
  return code;
}

/* Options the HTTP request cannot carry. Critical options (odd numbers, RFC 7252 5.4.1) that are
 * not understood give 4.02; elective ones (ETag, Max-Age, Size1, No-Response ...) are dropped. */
static uint8_t check_options(const gw_coap_msg_t *req, http_map_server_request_t *out) {
  size_t accepts = 0;
  for (size_t i = 0; i < req->option_count; i++) {
    const gw_coap_option_t *o = &req->options[i];
    switch (o->number) {
    case GW_COAP_OPT_URI_HOST:
    case GW_COAP_OPT_URI_PORT: /* the device's base URL addresses it */
    case GW_COAP_OPT_URI_PATH:
    case GW_COAP_OPT_URI_QUERY:
      break;
    case GW_COAP_OPT_ACCEPT:
      /* A repeated critical option is an unrecognized one (RFC 7252 5.4.5). */
      if (++accepts > 1)
        return refuse_server(out, CODE_BAD_OPTION, "Accept repeated");
      break;
    case GW_COAP_OPT_BLOCK2:
      /* Block2 NUM 0 only proposes a size (RFC 7959 2.4): the whole answer comes over HTTP and
       * the core splits it. A later block would need the device's body kept between requests. */
      if (gw_coap_option_uint(o) >> 4 != 0 || o->length > 3)
        return refuse_server(out, CODE_BAD_OPTION, "Block2 past block 0 over HTTP");
      break;
    case GW_COAP_OPT_BLOCK1:
      return refuse_server(out, CODE_BAD_OPTION, "Block1: send the body whole over HTTP");
    default:
      if (o->number & 1)
        return refuse_server(out, CODE_BAD_OPTION, "critical option %u not supported over HTTP",
                             (unsigned)o->number);
      break;
    }
  }
  return 0;
}

/* A uint option's value (at most 4 bytes, RFC 7252 3.2); false when longer. */
static bool option_uint(const gw_coap_option_t *o, uint32_t *v) {
  if (o->length > 4)
    return false;
  *v = gw_coap_option_uint(o);
  return true;
}

/* Number of trailing numeric segments: the LwM2M path after any alternate path (7.1.1: "This
 * link MUST NOT contain numerical URI segment"). *only_bs: the path is "/bs". */
static size_t lwm2m_depth(const gw_coap_msg_t *req, bool *only_bs) {
  size_t depth = 0, segments = 0;
  bool first_bs = false;
  for (size_t i = 0; i < req->option_count; i++) {
    const gw_coap_option_t *o = &req->options[i];
    if (o->number != GW_COAP_OPT_URI_PATH)
      continue;
    if (segments++ == 0)
      first_bs = o->length == 2 && memcmp(o->value, "bs", 2) == 0;
    bool numeric = o->length > 0 && o->length <= 5 && all_of(o->value, o->length, "0123456789");
    depth = numeric ? depth + 1 : 0;
  }
  *only_bs = segments == 1 && first_bs;
  return depth;
}

/* The operation of a server request (7.1.2, 7.1.4) given its method, for the success code. */
static http_map_op_t classify_server(const gw_coap_msg_t *req, const gw_coap_option_t *cf_opt,
                                     const gw_coap_option_t *accept) {
  uint32_t cf = 0, acc = 0;
  if (cf_opt)
    (void)option_uint(cf_opt, &cf);
  if (accept)
    (void)option_uint(accept, &acc);
  bool only_bs;
  size_t depth = lwm2m_depth(req, &only_bs);
  switch (req->code) {
  case GW_COAP_GET:
    return accept && acc == CF_LINK_FORMAT ? HTTP_MAP_OP_DISCOVER : HTTP_MAP_OP_READ;
  case GW_COAP_PUT:
    return req->payload_len || cf_opt ? HTTP_MAP_OP_WRITE_REPLACE : HTTP_MAP_OP_WRITE_ATTRIBUTES;
  case GW_COAP_DELETE: return HTTP_MAP_OP_DELETE;
  default: break; /* POST */
  }
  if (only_bs)
    return HTTP_MAP_OP_BOOTSTRAP_FINISH;
  if (depth == 1)
    return HTTP_MAP_OP_CREATE;
  /* 7.1.4: Execute carries "none, or text/plain"; Partial Update on /O/I/R needs a data format. */
  if (depth == 3 && (!cf_opt || cf == CF_TEXT_PLAIN))
    return HTTP_MAP_OP_EXECUTE;
  return HTTP_MAP_OP_WRITE_PARTIAL;
}

/* The method of a server request, or a refusal: composites (FETCH / iPATCH) are not in the HTTP
 * binding (7.1.4 note: no Read-/Write-Composite; 7.1.5: no Observe-Composite). */
static uint8_t server_method(const gw_coap_msg_t *req, http_map_server_request_t *out) {
  static const char *const methods[] = {
      [GW_COAP_GET] = "GET", [GW_COAP_POST] = "POST", [GW_COAP_PUT] = "PUT",
      [GW_COAP_DELETE] = "DELETE"};
  if (req->code >= GW_COAP_GET && req->code <= GW_COAP_DELETE) {
    out->method = methods[req->code];
    return 0;
  }
  if (req->code == GW_COAP_FETCH || req->code == GW_COAP_IPATCH)
    return refuse_server(out, CODE_METHOD_NOT_ALLOWED,
                         "composite operations are not supported by the HTTP binding (7.1.4)");
  if (gw_coap_is_request(req))
    return refuse_server(out, CODE_METHOD_NOT_ALLOWED, "method %u has no LwM2M HTTP mapping",
                         (unsigned)req->code);
  return refuse_server(out, CODE_INTERNAL_ERROR, "internal: not a request");
}

/* Observe 0 registers an observation: the HTTP binding has no notifications (7.1.5: only Send).
 * Observe 1 deregisters, which without an observation is a plain Read (RFC 7641 3.6). */
static uint8_t check_observe(const gw_coap_msg_t *req, http_map_server_request_t *out) {
  const gw_coap_option_t *o = gw_coap_find_option(req, GW_COAP_OPT_OBSERVE);
  if (!o || req->code != GW_COAP_GET)
    return 0;
  uint32_t v;
  if (o->length > 3 || !option_uint(o, &v) || v > 1)
    return refuse_server(out, CODE_BAD_REQUEST, "Observe value not 0 or 1");
  if (v == 0)
    return refuse_server(out, CODE_METHOD_NOT_ALLOWED,
                         "Observe is not supported by the HTTP binding (7.1.5: Send only)");
  return 0;
}

/* Media type of a Content-Format / Accept option, or NULL. */
static const char *option_media_type(const gw_coap_option_t *o) {
  uint32_t v;
  return o && option_uint(o, &v) && v <= 0xffff ? http_map_media_type((uint16_t)v) : NULL;
}

/* "/seg/seg?k=v&k" from Uri-Path and Uri-Query. */
static bool build_target(const gw_coap_msg_t *req, char *out, size_t out_size) {
  size_t used = 0;
  out[0] = '\0';
  if (!append_path(req, GW_COAP_OPT_URI_PATH, out, out_size, &used))
    return false;
  if (used == 0 && !append_char(out, out_size, &used, '/'))
    return false;
  char sep = '?';
  for (size_t i = 0; i < req->option_count; i++) {
    const gw_coap_option_t *o = &req->options[i];
    if (o->number != GW_COAP_OPT_URI_QUERY)
      continue;
    const uint8_t *eq = memchr(o->value, '=', o->length);
    size_t key_len = eq ? (size_t)(eq - o->value) : o->length;
    if (!append_char(out, out_size, &used, sep) ||
        !append_encoded(out, out_size, &used, o->value, key_len, keep_in_query))
      return false;
    if (eq && (!append_char(out, out_size, &used, '=') ||
               !append_encoded(out, out_size, &used, eq + 1, o->length - key_len - 1,
                               keep_in_query)))
      return false;
    sep = '&';
  }
  return true;
}

static bool has_empty_segment(const gw_coap_msg_t *req) {
  for (size_t i = 0; i < req->option_count; i++)
    if (req->options[i].number == GW_COAP_OPT_URI_PATH && req->options[i].length == 0)
      return true;
  return false;
}

uint8_t http_map_server_request(const gw_coap_msg_t *req, http_map_server_request_t *out) {
  if (!out)
    return CODE_INTERNAL_ERROR;
  memset(out, 0, sizeof *out);
  if (!req)
    return refuse_server(out, CODE_INTERNAL_ERROR, "internal: no request");
  uint8_t rc = server_method(req, out);
  if (!rc)
    rc = check_options(req, out);
  if (!rc)
    rc = check_observe(req, out);
  if (rc)
    return rc;
  const gw_coap_option_t *cf = gw_coap_find_option(req, GW_COAP_OPT_CONTENT_FORMAT);
  const gw_coap_option_t *accept = gw_coap_find_option(req, GW_COAP_OPT_ACCEPT);
  out->content_type = option_media_type(cf);
  out->accept = option_media_type(accept);
  if (cf && !out->content_type)
    return refuse_server(out, CODE_UNSUPPORTED_FORMAT, "Content-Format without media type");
  if (accept && !out->accept)
    return refuse_server(out, CODE_NOT_ACCEPTABLE, "Accept without media type");
  if (has_empty_segment(req))
    return refuse_server(out, CODE_BAD_REQUEST, "empty Uri-Path segment");
  if (!build_target(req, out->target, sizeof out->target))
    return refuse_server(out, CODE_INTERNAL_ERROR, "target does not fit");
  out->op = classify_server(req, cf, accept);
  out->body = req->payload_len ? req->payload : NULL;
  out->body_len = req->payload_len;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* credentials                                                                                 */

static bool is_b64token_char(char c) { /* RFC 6750 2.1 */
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         strchr("-._~+/", c) != NULL;
}

static int parse_bearer(const char *p, http_map_credentials_t *out) {
  size_t n = 0;
  while (p[n] && is_b64token_char(p[n]))
    n++;
  size_t end = n;
  while (p[end] == '=')
    end++;
  if (n == 0 || p[end] != 0 || end >= sizeof(out->secret))
    return -1;
  memcpy(out->secret, p, end);
  out->scheme = HTTP_MAP_AUTH_BEARER;
  return 0;
}

static int parse_basic(const char *p, http_map_credentials_t *out) {
  uint8_t plain[sizeof(out->user) + sizeof(out->secret)];
  size_t n = 0;
  int rc = -1;
  const uint8_t *colon = gw_base64_decode(p, strlen(p), plain, sizeof(plain), &n) == GW_OK
                             ? memchr(plain, ':', n) : NULL;
  if (colon) {
    size_t user_len = (size_t)(colon - plain), pass_len = n - user_len - 1;
    bool clean = user_len < sizeof(out->user) && pass_len < sizeof(out->secret);
    for (size_t i = 0; clean && i < n; i++)
      clean = plain[i] >= 0x20 && plain[i] != 0x7f; /* RFC 7617 2: no control characters */
    if (clean) {
      memcpy(out->user, plain, user_len);
      memcpy(out->secret, colon + 1, pass_len);
      out->scheme = HTTP_MAP_AUTH_BASIC;
      rc = 0;
    }
  }
  explicit_bzero(plain, sizeof(plain));
  return rc;
}

int http_map_credentials(const char *value, http_map_credentials_t *out) {
  if (!out)
    return -1;
  memset(out, 0, sizeof(*out));
  if (!value)
    return -1;
  size_t scheme_len = strcspn(value, " ");
  const char *p = value + scheme_len;
  if (*p != ' ')
    return -1;
  while (*p == ' ')
    p++;
  int rc = -1;
  if (scheme_len == 5 && strncasecmp(value, "Basic", 5) == 0)
    rc = parse_basic(p, out);
  else if (scheme_len == 6 && strncasecmp(value, "Bearer", 6) == 0)
    rc = parse_bearer(p, out);
  if (rc != 0)
    explicit_bzero(out, sizeof(*out));
  return rc;
}
