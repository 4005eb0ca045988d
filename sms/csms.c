/* lwm2m-gw: concatenated SMS splitting and reassembly (3GPP TS 23.040 9.2.3.24.1, 9.2.3.24.8). */
#include "csms.h"

#include <stdlib.h>
#include <string.h>

/* ---- splitting ---- */

static size_t part_capacity(bool ref16) {
  return ref16 ? CSMS_PART_MAX_REF16 : CSMS_PART_MAX_REF8;
}

size_t csms_split_count(size_t len, bool ref16) {
  if (len <= CSMS_SINGLE_MAX)
    return 1;
  size_t per = part_capacity(ref16);
  size_t n = len / per + (len % per != 0);
  return n > CSMS_PARTS_MAX ? 0 : n;
}

sms_err_t csms_split_part(const uint8_t *payload, size_t len, bool ref16, uint16_t ref,
                          size_t index, csms_part_t *out) {
  if (!out || (!payload && len))
    return SMS_ERR_ARG;
  memset(out, 0, sizeof(*out));
  size_t n = csms_split_count(len, ref16);
  if (n == 0)
    return SMS_ERR_TOO_MANY_PARTS;
  if (index >= n)
    return SMS_ERR_ARG;
  if (n == 1) {
    out->data = payload;
    out->len = len;
    return SMS_OK;
  }
  size_t per = part_capacity(ref16), off = index * per;
  out->data = payload + off;
  out->len = len - off < per ? len - off : per;
  out->has_concat = true;
  /* 9.2.3.24.1: the reference is constant for every part of one message; seq counts from 1. */
  out->concat = (sms_concat_t){.ref = ref16 ? ref : (uint16_t)(ref & 0xFF),
                               .total = (uint8_t)n,
                               .seq = (uint8_t)(index + 1),
                               .ref16 = ref16};
  return SMS_OK;
}

/* ---- reassembly ---- */

typedef struct {
  uint8_t *data; /* NULL for an empty part */
  size_t len;
} csms_fragment_t;

struct csms_message {
  char sender[CSMS_SENDER_MAX];
  uint16_t ref;
  uint8_t total;
  bool ref16;
  uint8_t received;
  uint32_t present[8]; /* bit seq - 1 */
  uint64_t order;
  uint64_t last_ms;
  size_t bytes;
  csms_fragment_t *fragments; /* total slots */
};

static bool has_part(const csms_message_t *m, uint8_t seq) {
  unsigned i = seq - 1u;
  return (m->present[i / 32] >> (i % 32)) & 1u;
}

static void free_message(csms_message_t *m) {
  if (m->fragments) {
    for (size_t i = 0; i < m->total; i++)
      free(m->fragments[i].data);
    free(m->fragments);
  }
  memset(m, 0, sizeof(*m));
}

/* Frees slot i and moves the last slot into it. */
static void remove_at(csms_reassembly_t *r, size_t i) {
  r->buffered_bytes -= r->messages[i].bytes;
  free_message(&r->messages[i]);
  r->count--;
  if (i != r->count) {
    r->messages[i] = r->messages[r->count];
    memset(&r->messages[r->count], 0, sizeof(r->messages[r->count]));
  }
}

/* Drops slot i, incomplete: its owner is told (csms_dropped_fn). */
static void drop_at(csms_reassembly_t *r, size_t i) {
  const csms_message_t *m = &r->messages[i];
  if (r->on_dropped)
    r->on_dropped(r->dropped_arg, m->sender, m->ref, m->total, m->ref16);
  remove_at(r, i);
}

/* Evicts the oldest held message other than slot keep (SIZE_MAX: none kept). Returns false when
 * there is nothing to evict; *keep follows its message if that moves. */
static bool evict_oldest(csms_reassembly_t *r, size_t *keep) {
  size_t oldest = SIZE_MAX;
  for (size_t i = 0; i < r->count; i++) {
    if (keep && i == *keep)
      continue;
    if (oldest == SIZE_MAX || r->messages[i].order < r->messages[oldest].order)
      oldest = i;
  }
  if (oldest == SIZE_MAX)
    return false;
  r->counters.evicted++;
  if (keep && *keep == r->count - 1)
    *keep = oldest; /* remove_at() moves the last slot into the evicted one */
  drop_at(r, oldest);
  return true;
}

void csms_limits_default(csms_limits_t *limits) {
  limits->timeout_ms = CSMS_DEFAULT_TIMEOUT_MS;
  limits->max_messages = CSMS_DEFAULT_MAX_MESSAGES;
  limits->max_bytes = CSMS_DEFAULT_MAX_BYTES;
}

sms_err_t csms_reassembly_init(csms_reassembly_t *r, const csms_limits_t *limits) {
  if (!r)
    return SMS_ERR_ARG;
  memset(r, 0, sizeof(*r));
  csms_limits_default(&r->limits);
  if (limits) {
    if (limits->timeout_ms)
      r->limits.timeout_ms = limits->timeout_ms;
    if (limits->max_messages)
      r->limits.max_messages = limits->max_messages;
    if (limits->max_bytes)
      r->limits.max_bytes = limits->max_bytes;
  }
  if (r->limits.max_messages > SIZE_MAX / sizeof(csms_message_t))
    return SMS_ERR_ARG;
  r->messages = calloc(r->limits.max_messages, sizeof(csms_message_t));
  return r->messages ? SMS_OK : SMS_ERR_NOMEM;
}

void csms_reassembly_clear(csms_reassembly_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->count; i++)
    free_message(&r->messages[i]);
  free(r->messages);
  free(r->joined);
  r->messages = NULL;
  r->joined = NULL;
  r->joined_cap = 0;
  r->count = 0;
  r->buffered_bytes = 0;
}

static bool expired(const csms_reassembly_t *r, const csms_message_t *m, uint64_t now_ms) {
  /* A clock that steps back never expires anything early. */
  return now_ms >= m->last_ms && now_ms - m->last_ms >= r->limits.timeout_ms;
}

size_t csms_reassembly_check(csms_reassembly_t *r, uint64_t now_ms) {
  size_t n = 0;
  if (!r)
    return 0;
  for (size_t i = 0; i < r->count;) {
    csms_message_t *m = &r->messages[i];
    if (expired(r, m, now_ms)) {
      r->counters.expired++;
      r->counters.parts_missing += (uint64_t)(m->total - m->received);
      drop_at(r, i); /* slot i now holds another message: look at it again */
      n++;
    } else {
      i++;
    }
  }
  return n;
}

uint64_t csms_reassembly_next_expiry(const csms_reassembly_t *r) {
  uint64_t next = UINT64_MAX;
  if (!r)
    return next;
  for (size_t i = 0; i < r->count; i++) {
    const csms_message_t *m = &r->messages[i];
    uint64_t at = m->last_ms > UINT64_MAX - r->limits.timeout_ms
                      ? UINT64_MAX
                      : m->last_ms + r->limits.timeout_ms;
    if (at < next)
      next = at;
  }
  return next;
}

/* Copies the parts of m, in seq order, into r->joined. */
static bool join(csms_reassembly_t *r, const csms_message_t *m) {
  if (m->bytes > r->joined_cap || !r->joined) {
    size_t cap = m->bytes ? m->bytes : 1;
    uint8_t *p = realloc(r->joined, cap);
    if (!p)
      return false;
    r->joined = p;
    r->joined_cap = cap;
  }
  size_t off = 0;
  for (size_t i = 0; i < m->total; i++) {
    if (m->fragments[i].len)
      memcpy(r->joined + off, m->fragments[i].data, m->fragments[i].len);
    off += m->fragments[i].len;
  }
  return true;
}

static bool same_stream(const csms_message_t *m, const char *sender, const sms_concat_t *c) {
  return m->ref == c->ref && m->ref16 == c->ref16 && strcmp(m->sender, sender) == 0;
}

csms_result_t csms_reassembly_add(csms_reassembly_t *r, const char *sender,
                                  const sms_concat_t *concat, const uint8_t *data, size_t len,
                                  uint64_t now_ms, const uint8_t **out_payload, size_t *out_len) {
  if (out_payload)
    *out_payload = NULL;
  if (out_len)
    *out_len = 0;
  if (!r || !r->messages || !out_payload || !out_len)
    return CSMS_MALFORMED;
  csms_reassembly_check(r, now_ms);
  /* 9.2.3.24.1: a total or seq of 0, or seq above total, makes the IE unusable. */
  if (!sender || !concat || (!data && len) || concat->total == 0 || concat->seq == 0 ||
      concat->seq > concat->total || (!concat->ref16 && concat->ref > 0xFF) ||
      strnlen(sender, CSMS_SENDER_MAX) >= CSMS_SENDER_MAX) {
    r->counters.malformed++;
    return CSMS_MALFORMED;
  }

  size_t at = SIZE_MAX;
  bool conflict = false;
  for (size_t i = 0; i < r->count; i++) {
    csms_message_t *m = &r->messages[i];
    if (!same_stream(m, sender, concat))
      continue;
    if (m->total == concat->total)
      at = i;
    else
      conflict = true;
  }
  if (at == SIZE_MAX && conflict)
    r->counters.conflicts++;
  if (at != SIZE_MAX && has_part(&r->messages[at], concat->seq)) {
    r->counters.duplicates++;
    return CSMS_DUPLICATE;
  }
  if (len > r->limits.max_bytes) {
    r->counters.evicted++;
    if (at != SIZE_MAX)
      drop_at(r, at);
    return CSMS_TOO_BIG;
  }
  if (at == SIZE_MAX && concat->total == 1) {
    /* A one-part message needs no slot. */
    csms_message_t single = {.total = 1, .bytes = len,
                             .fragments = &(csms_fragment_t){(uint8_t *)data, len}};
    if (!join(r, &single))
      return CSMS_NOMEM;
    r->counters.completed++;
    *out_payload = r->joined;
    *out_len = len;
    return CSMS_COMPLETE;
  }

  /* Room: a new message needs a slot; every part needs bytes. The oldest others go first. */
  if (at == SIZE_MAX) {
    while (r->count >= r->limits.max_messages)
      evict_oldest(r, NULL);
  }
  while (r->buffered_bytes + len > r->limits.max_bytes) {
    if (!evict_oldest(r, at == SIZE_MAX ? NULL : &at))
      break;
  }
  if (r->buffered_bytes + len > r->limits.max_bytes) {
    /* Only this message is left and it cannot grow: it will never complete. */
    r->counters.evicted++;
    if (at != SIZE_MAX)
      drop_at(r, at);
    return CSMS_TOO_BIG;
  }

  uint8_t *copy = NULL;
  if (len) {
    copy = malloc(len);
    if (!copy)
      return CSMS_NOMEM;
    memcpy(copy, data, len);
  }
  if (at == SIZE_MAX) {
    csms_message_t *m = &r->messages[r->count];
    m->fragments = calloc(concat->total, sizeof(csms_fragment_t));
    if (!m->fragments) {
      free(copy);
      return CSMS_NOMEM;
    }
    strcpy(m->sender, sender); /* length checked above */
    m->ref = concat->ref;
    m->total = concat->total;
    m->ref16 = concat->ref16;
    m->order = r->next_order++;
    at = r->count++;
  }
  csms_message_t *m = &r->messages[at];
  unsigned i = concat->seq - 1u;
  m->fragments[i] = (csms_fragment_t){copy, len};
  m->present[i / 32] |= 1u << (i % 32);
  m->received++;
  m->bytes += len;
  m->last_ms = now_ms;
  r->buffered_bytes += len;
  if (m->received < m->total)
    return CSMS_STORED;

  if (!join(r, m)) {
    /* Keep the parts: a later duplicate cannot complete it, but the timeout will free it. */
    return CSMS_NOMEM;
  }
  *out_payload = r->joined;
  *out_len = m->bytes;
  r->counters.completed++;
  remove_at(r, at);
  return CSMS_COMPLETE;
}
