/* lwm2m-gw: LwM2M-over-MQTT CBOR codec (LwM2M Transport 1.2.1 section 8.3-8.7).
 *
 * A bounded CBOR reader/writer of our own rather than libcbor 0.8: cbor_load() builds a heap tree
 * and copies every string, while a message here is one flat map of 22 known keys whose strings we
 * want to borrow. See mqtt/README.md. */
#include "lwm2m_cbor.h"

#include <math.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct {
  const uint8_t *data;
  size_t len;
  size_t pos;
} cbor_reader_t;

typedef struct {
  uint8_t major;
  uint8_t info;    /* additional information, 0..31 */
  bool indefinite; /* info == 31 */
  uint64_t value;  /* argument: integer, length, count, tag, or raw float bits */
} cbor_head_t;

static size_t reader_left(const cbor_reader_t *r) { return r->len - r->pos; }

/* RFC 8949 3: initial byte and argument. Rejects the reserved infos 28..30 and indefinite
 * lengths where the major type has none. */
static int read_head(cbor_reader_t *r, cbor_head_t *out_head) {
  if (reader_left(r) < 1)
    return MQTT_CBOR_ERR_TRUNCATED;
  uint8_t ib = r->data[r->pos++];
  out_head->major = ib >> 5;
  out_head->info = ib & 0x1f;
  out_head->indefinite = false;
  out_head->value = 0;
  if (out_head->info < 24) {
    out_head->value = out_head->info;
    return MQTT_CBOR_OK;
  }
  if (out_head->info <= 27) {
    size_t n = (size_t)1 << (out_head->info - 24);
    if (reader_left(r) < n)
      return MQTT_CBOR_ERR_TRUNCATED;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
      v = (v << 8) | r->data[r->pos++];
    out_head->value = v;
    /* RFC 8949 3.3: simple values 0..31 in the two-byte form are not well-formed. */
    if (out_head->major == 7 && out_head->info == 24 && v < 32)
      return MQTT_CBOR_ERR_MALFORMED;
    return MQTT_CBOR_OK;
  }
  if (out_head->info < 31)
    return MQTT_CBOR_ERR_MALFORMED;
  if (out_head->major == 0 || out_head->major == 1 || out_head->major == 6)
    return MQTT_CBOR_ERR_MALFORMED;
  out_head->indefinite = true;
  return MQTT_CBOR_OK;
}

static bool is_break(const cbor_head_t *h) { return h->major == 7 && h->indefinite; }

/* Skips the rest of an item whose head was already read, iteratively with a fixed stack of
 * MQTT_CBOR_MAX_DEPTH levels (the unbounded-recursion guard). Used for extension keys and
 * values only. */
static int skip_after_head(cbor_reader_t *r, const cbor_head_t *first) {
  struct {
    uint64_t need;      /* items still expected in a definite container */
    bool indefinite;    /* ends with a break */
    uint8_t chunk_type; /* 2 or 3: indefinite string, only definite chunks of this type */
  } stack[MQTT_CBOR_MAX_DEPTH];
  int sp = 0;
  cbor_head_t h = *first;
  bool have_head = true;

  for (;;) {
    if (!have_head) {
      if (sp == 0)
        return MQTT_CBOR_OK;
      if (!stack[sp - 1].indefinite && stack[sp - 1].need == 0) {
        sp--;
        continue;
      }
      int err = read_head(r, &h);
      if (err)
        return err;
      if (is_break(&h)) {
        if (!stack[sp - 1].indefinite)
          return MQTT_CBOR_ERR_MALFORMED;
        sp--;
        continue;
      }
      if (stack[sp - 1].chunk_type &&
          (h.major != stack[sp - 1].chunk_type || h.indefinite))
        return MQTT_CBOR_ERR_MALFORMED;
      if (!stack[sp - 1].indefinite)
        stack[sp - 1].need--;
    }
    have_head = false;
    if (is_break(&h))
      return MQTT_CBOR_ERR_MALFORMED; /* a break outside any indefinite container */

    uint64_t push_need = 0;
    bool push = false, push_indef = false;
    uint8_t push_chunk = 0;
    switch (h.major) {
    case 0:
    case 1:
      break;
    case 2:
    case 3:
      if (h.indefinite) {
        push = push_indef = true;
        push_chunk = h.major;
      } else {
        if (h.value > reader_left(r))
          return MQTT_CBOR_ERR_TRUNCATED;
        r->pos += (size_t)h.value;
      }
      break;
    case 4:
    case 5:
      push = true;
      if (h.indefinite) {
        push_indef = true;
      } else {
        /* Every item takes at least one byte: a count beyond the input cannot be complete.
         * This also keeps 2 * count from overflowing. */
        if (h.value > reader_left(r))
          return MQTT_CBOR_ERR_TRUNCATED;
        push_need = h.major == 5 ? h.value * 2 : h.value;
      }
      break;
    case 6:
      /* The tagged item follows and belongs to the same slot. */
      if (sp > 0 && !stack[sp - 1].indefinite)
        stack[sp - 1].need++;
      else if (sp == 0) {
        int err = read_head(r, &h);
        if (err)
          return err;
        have_head = true;
      }
      break;
    default: /* 7: simple values and floats, argument already consumed */
      break;
    }
    if (push) {
      if (sp == MQTT_CBOR_MAX_DEPTH)
        return MQTT_CBOR_ERR_TOO_DEEP;
      stack[sp].need = push_need;
      stack[sp].indefinite = push_indef;
      stack[sp].chunk_type = push_chunk;
      sp++;
    }
  }
}

/* RFC 3629 UTF-8, rejecting overlong forms, surrogates and code points above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t extra;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      extra = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (n - i - 1 < extra)
      return false;
    for (size_t k = 1; k <= extra; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += extra + 1;
  }
  return true;
}

static double half_to_double(uint16_t h) {
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  double v;
  if (exp == 0)
    v = ldexp(mant, -24);
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = ldexp(mant + 1024, exp - 25);
  return (h & 0x8000) ? -v : v;
}

/* Exact double -> half, false if the value needs more precision or range. */
static bool double_to_half(double d, uint16_t *out_half) {
  if (!isfinite(d))
    return false;
  uint16_t sign = signbit(d) ? 0x8000 : 0;
  double a = fabs(d);
  if (a == 0) {
    *out_half = sign;
    return true;
  }
  int e = ilogb(a);
  if (e > 15)
    return false;
  if (e >= -14) {
    double m = ldexp(a, 10 - e);
    if (m != floor(m))
      return false;
    *out_half = (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)((uint32_t)m - 1024));
    return true;
  }
  double m = ldexp(a, 24);
  if (m != floor(m) || m >= 1024)
    return false;
  *out_half = (uint16_t)(sign | (uint16_t)m);
  return true;
}

/* ---- decoder ----------------------------------------------------------------------------- */

typedef enum { VAL_UINT, VAL_TSTR, VAL_BSTR, VAL_FLOAT, VAL_EDGE, VAL_DEPTH } value_kind_t;

static const value_kind_t key_kinds[MQTT_CBOR_KEY_MAX + 1] = {
    [MQTT_CBOR_KEY_OPERATION] = VAL_UINT, [MQTT_CBOR_KEY_TOKEN] = VAL_UINT,
    [MQTT_CBOR_KEY_EP] = VAL_TSTR,        [MQTT_CBOR_KEY_PCT] = VAL_UINT,
    [MQTT_CBOR_KEY_URI] = VAL_TSTR,       [MQTT_CBOR_KEY_PATHS] = VAL_BSTR,
    [MQTT_CBOR_KEY_PAYLOAD] = VAL_BSTR,   [MQTT_CBOR_KEY_LIFETIME] = VAL_UINT,
    [MQTT_CBOR_KEY_VERSION] = VAL_TSTR,   [MQTT_CBOR_KEY_BINDING] = VAL_TSTR,
    [MQTT_CBOR_KEY_SMS] = VAL_TSTR,       [MQTT_CBOR_KEY_PMIN] = VAL_UINT,
    [MQTT_CBOR_KEY_PMAX] = VAL_UINT,      [MQTT_CBOR_KEY_GT] = VAL_FLOAT,
    [MQTT_CBOR_KEY_ST] = VAL_FLOAT,       [MQTT_CBOR_KEY_EPMIN] = VAL_UINT,
    [MQTT_CBOR_KEY_EPMAX] = VAL_UINT,     [MQTT_CBOR_KEY_RESULT] = VAL_UINT,
    [MQTT_CBOR_KEY_CT] = VAL_UINT,        [MQTT_CBOR_KEY_EDGE] = VAL_EDGE,
    [MQTT_CBOR_KEY_HQMAX] = VAL_UINT,     [MQTT_CBOR_KEY_DEPTH] = VAL_DEPTH,
};

static uint64_t *uint_field(mqtt_cbor_msg_t *m, unsigned key) {
  switch (key) {
  case MQTT_CBOR_KEY_OPERATION: return &m->operation;
  case MQTT_CBOR_KEY_TOKEN: return &m->token;
  case MQTT_CBOR_KEY_PCT: return &m->pct;
  case MQTT_CBOR_KEY_LIFETIME: return &m->lifetime;
  case MQTT_CBOR_KEY_PMIN: return &m->pmin;
  case MQTT_CBOR_KEY_PMAX: return &m->pmax;
  case MQTT_CBOR_KEY_EPMIN: return &m->epmin;
  case MQTT_CBOR_KEY_EPMAX: return &m->epmax;
  case MQTT_CBOR_KEY_RESULT: return &m->result;
  case MQTT_CBOR_KEY_CT: return &m->ct;
  case MQTT_CBOR_KEY_HQMAX: return &m->hqmax;
  default: return NULL;
  }
}

static mqtt_cbor_bytes_t *bytes_field(mqtt_cbor_msg_t *m, unsigned key) {
  switch (key) {
  case MQTT_CBOR_KEY_EP: return &m->ep;
  case MQTT_CBOR_KEY_URI: return &m->uri;
  case MQTT_CBOR_KEY_PATHS: return &m->paths;
  case MQTT_CBOR_KEY_PAYLOAD: return &m->payload;
  case MQTT_CBOR_KEY_VERSION: return &m->version;
  case MQTT_CBOR_KEY_BINDING: return &m->binding;
  case MQTT_CBOR_KEY_SMS: return &m->sms;
  default: return NULL;
  }
}

const mqtt_cbor_bytes_t *mqtt_cbor_string_field(const mqtt_cbor_msg_t *msg, unsigned key) {
  return bytes_field((mqtt_cbor_msg_t *)msg, key);
}

static int decode_value(cbor_reader_t *r, mqtt_cbor_msg_t *m, unsigned key) {
  cbor_head_t h;
  int err = read_head(r, &h);
  if (err)
    return err;
  if (is_break(&h))
    return MQTT_CBOR_ERR_MALFORMED; /* map ended between key and value */
  switch (key_kinds[key]) {
  case VAL_UINT:
    if (h.major != 0)
      return MQTT_CBOR_ERR_TYPE;
    *uint_field(m, key) = h.value;
    return MQTT_CBOR_OK;
  case VAL_EDGE:
  case VAL_DEPTH:
    if (h.major != 0)
      return MQTT_CBOR_ERR_TYPE;
    if (h.value > (key_kinds[key] == VAL_EDGE ? 1u : 3u))
      return MQTT_CBOR_ERR_VALUE;
    if (key_kinds[key] == VAL_EDGE)
      m->edge = (uint8_t)h.value;
    else
      m->depth = (uint8_t)h.value;
    return MQTT_CBOR_OK;
  case VAL_TSTR:
  case VAL_BSTR: {
    uint8_t want = key_kinds[key] == VAL_TSTR ? 3 : 2;
    if (h.major != want)
      return MQTT_CBOR_ERR_TYPE;
    if (h.indefinite)
      return MQTT_CBOR_ERR_INDEFINITE;
    if (h.value > reader_left(r))
      return MQTT_CBOR_ERR_TRUNCATED;
    const uint8_t *p = r->data + r->pos;
    size_t n = (size_t)h.value;
    if (want == 3 && !utf8_valid(p, n))
      return MQTT_CBOR_ERR_UTF8;
    r->pos += n;
    mqtt_cbor_bytes_t *b = bytes_field(m, key);
    b->ptr = p;
    b->len = n;
    return MQTT_CBOR_OK;
  }
  case VAL_FLOAT: {
    if (h.major != 7 || h.info < 25 || h.info > 27)
      return MQTT_CBOR_ERR_TYPE;
    double v;
    uint8_t width;
    if (h.info == 25) {
      v = half_to_double((uint16_t)h.value);
      width = 2;
    } else if (h.info == 26) {
      uint32_t bits = (uint32_t)h.value;
      float f;
      memcpy(&f, &bits, sizeof f);
      v = f;
      width = 4;
    } else {
      memcpy(&v, &h.value, sizeof v);
      width = 8;
    }
    /* A threshold or step that is NaN or infinite is meaningless (Core 5.1.2). */
    if (!isfinite(v))
      return MQTT_CBOR_ERR_VALUE;
    mqtt_cbor_float_t *fl = key == MQTT_CBOR_KEY_GT ? &m->gt : &m->st;
    fl->value = v;
    fl->width = width;
    return MQTT_CBOR_OK;
  }
  }
  return MQTT_CBOR_ERR_TYPE;
}

int mqtt_cbor_decode(const uint8_t *data, size_t len, mqtt_cbor_msg_t *out_msg) {
  if (!out_msg || (!data && len))
    return MQTT_CBOR_ERR_INVAL;
  memset(out_msg, 0, sizeof *out_msg);
  cbor_reader_t r = {data, len, 0};
  cbor_head_t h;
  int err = read_head(&r, &h);
  if (err)
    return err;
  if (h.major != 5)
    return MQTT_CBOR_ERR_NOT_MAP;
  bool indefinite = h.indefinite;
  uint64_t pairs = h.value;
  if (!indefinite && pairs > reader_left(&r))
    return MQTT_CBOR_ERR_TRUNCATED; /* each pair takes at least two bytes */

  /* Bounded by the input: every pass consumes at least one byte or returns. */
  for (uint64_t i = 0; indefinite || i < pairs; i++) {
    cbor_head_t k;
    if ((err = read_head(&r, &k)))
      return err;
    if (is_break(&k)) {
      if (!indefinite)
        return MQTT_CBOR_ERR_MALFORMED;
      break;
    }
    if (k.major == 0 && k.value >= 1 && k.value <= MQTT_CBOR_KEY_MAX) {
      unsigned key = (unsigned)k.value;
      if (out_msg->present & MQTT_CBOR_BIT(key))
        return MQTT_CBOR_ERR_DUPLICATE;
      if ((err = decode_value(&r, out_msg, key)))
        return err;
      out_msg->present |= MQTT_CBOR_BIT(key);
      continue;
    }
    /* An extension ($$extensions of the 8.3 CDDL): skip key and value. */
    if ((err = skip_after_head(&r, &k)))
      return err;
    cbor_head_t v;
    if ((err = read_head(&r, &v)))
      return err;
    if ((err = skip_after_head(&r, &v)))
      return err;
    out_msg->unknown_keys++;
  }
  if (r.pos != r.len)
    return MQTT_CBOR_ERR_TRAILING;
  return MQTT_CBOR_OK;
}

/* ---- encoder ----------------------------------------------------------------------------- */

typedef struct {
  uint8_t *out;
  size_t size;
  size_t pos; /* may run past size: then only the needed length is counted */
} cbor_writer_t;

static void put_byte(cbor_writer_t *w, uint8_t b) {
  if (w->pos < w->size)
    w->out[w->pos] = b;
  w->pos++;
}

static void put_raw(cbor_writer_t *w, uint8_t major_info, uint64_t v, size_t n) {
  put_byte(w, major_info);
  for (size_t i = n; i > 0; i--)
    put_byte(w, (uint8_t)(v >> (8 * (i - 1))));
}

/* Preferred serialization (RFC 8949 4.1): the shortest argument. */
static void put_head(cbor_writer_t *w, uint8_t major, uint64_t v) {
  uint8_t m = (uint8_t)(major << 5);
  if (v < 24)
    put_byte(w, (uint8_t)(m | v));
  else if (v <= 0xff)
    put_raw(w, m | 24, v, 1);
  else if (v <= 0xffff)
    put_raw(w, m | 25, v, 2);
  else if (v <= 0xffffffffu)
    put_raw(w, m | 26, v, 4);
  else
    put_raw(w, m | 27, v, 8);
}

static int put_float(cbor_writer_t *w, const mqtt_cbor_float_t *f) {
  if (!isfinite(f->value))
    return MQTT_CBOR_ERR_VALUE;
  uint16_t half;
  float single = (float)f->value;
  bool half_ok = double_to_half(f->value, &half);
  bool single_ok = (double)single == f->value;
  uint8_t width = f->width;
  if (width == 0)
    width = half_ok ? 2 : single_ok ? 4 : 8;
  if (width == 2 && half_ok) {
    put_raw(w, 0xf9, half, 2);
  } else if (width == 4 && single_ok) {
    uint32_t bits;
    memcpy(&bits, &single, sizeof bits);
    put_raw(w, 0xfa, bits, 4);
  } else if (width == 8) {
    uint64_t bits;
    memcpy(&bits, &f->value, sizeof bits);
    put_raw(w, 0xfb, bits, 8);
  } else {
    return MQTT_CBOR_ERR_VALUE; /* width given and the value does not fit it exactly */
  }
  return MQTT_CBOR_OK;
}

long mqtt_cbor_encode(const mqtt_cbor_msg_t *msg, uint8_t *out, size_t out_size) {
  if (!msg || (!out && out_size))
    return MQTT_CBOR_ERR_INVAL;
  uint32_t known = msg->present & (((UINT32_C(1) << (MQTT_CBOR_KEY_MAX + 1)) - 1) & ~UINT32_C(1));
  if (known != msg->present)
    return MQTT_CBOR_ERR_INVAL;
  cbor_writer_t w = {out, out_size, 0};
  put_head(&w, 5, (uint64_t)__builtin_popcount(known));
  /* A mutable copy only for the accessor helpers; nothing is written back. */
  mqtt_cbor_msg_t m = *msg;
  for (unsigned key = 1; key <= MQTT_CBOR_KEY_MAX; key++) {
    if (!(known & MQTT_CBOR_BIT(key)))
      continue;
    put_head(&w, 0, key);
    switch (key_kinds[key]) {
    case VAL_UINT:
      put_head(&w, 0, *uint_field(&m, key));
      break;
    case VAL_EDGE:
      if (m.edge > 1)
        return MQTT_CBOR_ERR_VALUE;
      put_head(&w, 0, m.edge);
      break;
    case VAL_DEPTH:
      if (m.depth > 3)
        return MQTT_CBOR_ERR_VALUE;
      put_head(&w, 0, m.depth);
      break;
    case VAL_TSTR:
    case VAL_BSTR: {
      const mqtt_cbor_bytes_t *b = bytes_field(&m, key);
      if (b->len && !b->ptr)
        return MQTT_CBOR_ERR_INVAL;
      put_head(&w, key_kinds[key] == VAL_TSTR ? 3 : 2, b->len);
      /* out may be NULL (sizing) and ptr NULL for an empty string: memcpy wants neither. */
      if (b->len && w.pos <= w.size && b->len <= w.size - w.pos)
        memcpy(w.out + w.pos, b->ptr, b->len);
      w.pos += b->len;
      break;
    }
    case VAL_FLOAT: {
      int err = put_float(&w, key == MQTT_CBOR_KEY_GT ? &m.gt : &m.st);
      if (err)
        return err;
      break;
    }
    }
  }
  if (w.pos > (size_t)0x7fffffff)
    return MQTT_CBOR_ERR_VALUE;
  if (out == NULL && out_size == 0)
    return (long)w.pos;
  if (w.pos > w.size)
    return MQTT_CBOR_ERR_TOO_SMALL;
  return (long)w.pos;
}

/* ---- operations (8.3), validation, results (8.5) ----------------------------------------- */

#define B(k) MQTT_CBOR_BIT(MQTT_CBOR_KEY_##k)
#define RES(...) ((const uint16_t[]){__VA_ARGS__, 0})

typedef struct {
  const char *name;
  uint32_t mandatory;      /* besides operation and token */
  const uint16_t *results; /* tables 8.5-1..8.5-4, 0-terminated */
} op_info_t;

static const uint16_t res_read[] = {205, 400, 401, 404, 405, 406, 0};
static const uint16_t res_write[] = {204, 400, 401, 404, 405, 406, 408, 413, 415, 0};
static const uint16_t res_observe[] = {205, 400, 401, 404, 405, 406, 0};
static const uint16_t res_observe_comp[] = {205, 400, 401, 404, 405, 406, 415, 0};
static const uint16_t res_exec[] = {204, 400, 401, 404, 405, 0};

/* 8.3.1 and table 8.5-1. */
static const op_info_t bs_ops[] = {
    [0] = {"Bootstrap-Request", 0, RES(204, 400, 415)},
    [1] = {"Bootstrap-Write", B(CT) | B(PAYLOAD), RES(204, 400, 415)},
    [2] = {"Bootstrap-Read", B(URI), res_read},
    [3] = {"Bootstrap-Delete", B(URI), RES(202, 400)},
    [4] = {"Bootstrap-Discover", B(URI), RES(205, 400, 404)},
    [5] = {"Bootstrap-Finish", 0, RES(204, 400, 406)},
    [6] = {"Bootstrap-Pack-Request", 0, RES(205, 400, 401, 404, 405, 406, 501)},
};

/* 8.3.2-8.3.4 and tables 8.5-2..8.5-4. */
static const op_info_t rd_ops[] = {
    [6] = {"Register", B(LIFETIME) | B(VERSION), RES(201, 400, 403, 409, 412)},
    [7] = {"Update", 0, RES(204, 400, 404)},
    [8] = {"De-register", 0, RES(202, 400, 404)},
    [9] = {"Read", B(URI), res_read},
    [10] = {"Read-Composite", B(PATHS), res_observe_comp},
    [11] = {"Discover", B(URI), RES(205, 400, 401, 404, 405)},
    [12] = {"Write-Replace", B(URI) | B(CT) | B(PAYLOAD), res_write},
    [13] = {"Write-Partial-Update", B(URI) | B(CT) | B(PAYLOAD), res_write},
    [14] = {"Write-Attributes", B(URI), res_exec},
    [15] = {"Write-Composite", B(CT) | B(PAYLOAD), RES(204, 400, 401, 404, 405, 406)},
    [16] = {"Execute", B(URI), res_exec},
    [17] = {"Create", B(URI) | B(CT) | B(PAYLOAD), RES(201, 400, 401, 404, 405, 406, 415)},
    [18] = {"Delete", B(URI), RES(202, 400, 401, 404, 405)},
    [20] = {"Observe", B(URI), res_observe},
    [21] = {"Observe-Composite", B(PATHS), res_observe_comp},
    [22] = {"Cancel-Observe", 0, res_observe},
    [23] = {"Notify", B(CT) | B(PAYLOAD), RES(205)},
    [24] = {"Send", B(CT) | B(PAYLOAD), RES(204, 400, 404)},
};

static const op_info_t *op_info(mqtt_cbor_iface_t iface, uint64_t operation) {
  const op_info_t *table = iface == MQTT_CBOR_IFACE_BS ? bs_ops : rd_ops;
  size_t n = iface == MQTT_CBOR_IFACE_BS ? sizeof bs_ops / sizeof bs_ops[0]
                                         : sizeof rd_ops / sizeof rd_ops[0];
  if (operation >= n || table[operation].name == NULL)
    return NULL;
  return &table[operation];
}

uint32_t mqtt_cbor_mandatory_keys(mqtt_cbor_iface_t iface, uint64_t operation) {
  const op_info_t *op = op_info(iface, operation);
  return op ? op->mandatory | B(OPERATION) | B(TOKEN) : 0;
}

const char *mqtt_cbor_op_name(mqtt_cbor_iface_t iface, uint64_t operation) {
  const op_info_t *op = op_info(iface, operation);
  return op ? op->name : NULL;
}

int mqtt_cbor_validate(const mqtt_cbor_msg_t *msg, mqtt_cbor_iface_t iface,
                       uint32_t *out_missing) {
  if (out_missing)
    *out_missing = 0;
  if (!msg)
    return MQTT_CBOR_ERR_INVAL;
  bool is_request = msg->present & B(OPERATION);
  bool is_response = msg->present & B(RESULT);
  if (is_request == is_response)
    return MQTT_CBOR_ERR_AMBIGUOUS;
  uint32_t need;
  if (is_response) {
    need = B(RESULT) | B(TOKEN); /* 8.4 */
  } else {
    need = mqtt_cbor_mandatory_keys(iface, msg->operation);
    if (need == 0) {
      /* Still report a missing token: without one, no 501 can be sent back. */
      if (out_missing && !(msg->present & B(TOKEN)))
        *out_missing = B(TOKEN);
      return MQTT_CBOR_ERR_UNKNOWN_OP;
    }
  }
  uint32_t missing = need & ~msg->present;
  if (out_missing)
    *out_missing = missing;
  return missing ? MQTT_CBOR_ERR_MISSING : MQTT_CBOR_OK;
}

uint16_t mqtt_cbor_err_result(int err) {
  switch (err) {
  case MQTT_CBOR_OK: return 0;
  case MQTT_CBOR_ERR_UNKNOWN_OP: return 501;
  case MQTT_CBOR_ERR_TOO_SMALL:
  case MQTT_CBOR_ERR_INVAL:
  case MQTT_CBOR_ERR_RESULT: return 500;
  default: return 400;
  }
}

/* Every result value of tables 8.5-1..8.5-5. */
static const uint16_t all_results[] = {201, 202, 204, 205, 400, 401, 403, 404, 405,
                                       406, 408, 409, 412, 413, 415, 500, 501, 503};

static bool result_listed(uint64_t result) {
  for (size_t i = 0; i < sizeof all_results / sizeof all_results[0]; i++)
    if (all_results[i] == result)
      return true;
  return false;
}

int mqtt_cbor_result_to_coap(uint64_t result, uint8_t *out_coap_code) {
  if (!result_listed(result))
    return MQTT_CBOR_ERR_RESULT;
  /* "loosely based on the CoAP response codes" (8.5): 205 is 2.05 Content, and so on. */
  if (out_coap_code)
    *out_coap_code = (uint8_t)((result / 100) << 5 | (result % 100));
  return MQTT_CBOR_OK;
}

int mqtt_cbor_result_from_coap(uint8_t coap_code, uint16_t *out_result) {
  uint16_t result = (uint16_t)((coap_code >> 5) * 100 + (coap_code & 0x1f));
  bool ok = result_listed(result);
  if (out_result)
    *out_result = ok ? result : 500;
  return ok ? MQTT_CBOR_OK : MQTT_CBOR_ERR_RESULT;
}

bool mqtt_cbor_result_allowed(mqtt_cbor_iface_t iface, uint64_t operation, uint64_t result) {
  if (result == 500 || result == 501 || result == 503)
    return true; /* table 8.5-5, any operation */
  const op_info_t *op = op_info(iface, operation);
  if (!op)
    return false;
  for (const uint16_t *r = op->results; *r; r++)
    if (*r == result)
      return true;
  return false;
}

const char *mqtt_cbor_strerror(int err) {
  switch (err) {
  case MQTT_CBOR_OK: return "success";
  case MQTT_CBOR_ERR_TRUNCATED: return "CBOR input truncated";
  case MQTT_CBOR_ERR_NOT_MAP: return "message is not a CBOR map";
  case MQTT_CBOR_ERR_TYPE: return "wrong CBOR type for a table 8.7-1 key";
  case MQTT_CBOR_ERR_VALUE: return "value out of range";
  case MQTT_CBOR_ERR_DUPLICATE: return "duplicate key";
  case MQTT_CBOR_ERR_MALFORMED: return "malformed CBOR";
  case MQTT_CBOR_ERR_INDEFINITE: return "indefinite-length string not supported";
  case MQTT_CBOR_ERR_UTF8: return "text string is not valid UTF-8";
  case MQTT_CBOR_ERR_TOO_DEEP: return "extension value nested too deeply";
  case MQTT_CBOR_ERR_TRAILING: return "trailing bytes after the message map";
  case MQTT_CBOR_ERR_AMBIGUOUS: return "message has both or neither of operation and result";
  case MQTT_CBOR_ERR_MISSING: return "mandatory key missing for the operation";
  case MQTT_CBOR_ERR_UNKNOWN_OP: return "unknown operation";
  case MQTT_CBOR_ERR_TOO_SMALL: return "output buffer too small";
  case MQTT_CBOR_ERR_INVAL: return "invalid argument";
  case MQTT_CBOR_ERR_RESULT: return "result code not in the 8.5 tables";
  default: return "unknown error";
  }
}
