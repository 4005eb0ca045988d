/* Unit tests of concatenated SMS (3GPP TS 23.040 9.2.3.24.1, 9.2.3.24.8): splitting into
 * 140 / 134 / 133-octet parts up to 255 parts (34170 octets), and reassembly: any order,
 * duplicates, conflicting totals, malformed IEs, timeout with missing parts, eviction by count
 * and by bytes. The clock is passed in, so no test sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csms.h"

#define T0 5000000u /* an arbitrary "now" well away from 0 */
#define ALICE "14155550125"
#define BOB "12125550178"

static uint8_t *pattern(size_t len) {
  uint8_t *p = test_malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t)(i * 131 + i / 251);
  return p;
}

/* ---- splitting ---- */

static void test_split_count(void **state) {
  (void)state;
  assert_int_equal(csms_split_count(0, false), 1);
  assert_int_equal(csms_split_count(140, false), 1);
  assert_int_equal(csms_split_count(140, true), 1);
  assert_int_equal(csms_split_count(141, false), 2);
  assert_int_equal(csms_split_count(268, false), 2);
  assert_int_equal(csms_split_count(269, false), 3);
  assert_int_equal(csms_split_count(266, true), 2);
  assert_int_equal(csms_split_count(267, true), 3);
  assert_int_equal(csms_split_count(600, false), 5); /* 4 * 134 = 536 < 600 <= 670 */
  assert_int_equal(csms_split_count(34170, false), 255);
  assert_int_equal(csms_split_count(34171, false), 0);
  assert_int_equal(csms_split_count(33915, true), 255); /* 255 * 133 */
  assert_int_equal(csms_split_count(33916, true), 0);
  assert_int_equal(csms_split_count(SIZE_MAX, false), 0);
  assert_int_equal(CSMS_PAYLOAD_MAX, 34170);
}

static void test_split_600(void **state) {
  (void)state;
  uint8_t *payload = pattern(600);
  static const size_t lens[5] = {134, 134, 134, 134, 64};
  for (size_t i = 0; i < 5; i++) {
    csms_part_t part;
    assert_int_equal(csms_split_part(payload, 600, false, 0x1A7, i, &part), SMS_OK);
    assert_ptr_equal(part.data, payload + 134 * i);
    assert_int_equal(part.len, lens[i]);
    assert_true(part.has_concat);
    assert_int_equal(part.concat.ref, 0xA7); /* 8-bit reference: the low octet */
    assert_int_equal(part.concat.total, 5);
    assert_int_equal(part.concat.seq, i + 1);
    assert_false(part.concat.ref16);

    /* Each part becomes one SMS-SUBMIT of at most 140 octets of user data. */
    sms_submit_t s;
    sms_submit_init(&s, ALICE);
    s.udh.has_concat = true;
    s.udh.concat = part.concat;
    uint8_t out[SMS_PDU_MAX];
    size_t len, tpdu;
    assert_int_equal(sms_pdu_encode_submit(&s, part.data, part.len, out, sizeof(out), &len, &tpdu),
                     SMS_OK);
    size_t udl_at = len - part.len - 7;
    assert_int_equal(out[udl_at], part.len + 6);
    assert_memory_equal(out + udl_at + 1, "\x05\x00\x03\xA7\x05", 5);
    assert_int_equal(out[udl_at + 6], i + 1);
  }
  csms_part_t part;
  assert_int_equal(csms_split_part(payload, 600, false, 1, 5, &part), SMS_ERR_ARG);
  test_free(payload);
}

static void test_split_limits(void **state) {
  (void)state;
  uint8_t *payload = pattern(34171);
  csms_part_t part;
  assert_int_equal(csms_split_part(payload, 34170, false, 7, 254, &part), SMS_OK);
  assert_int_equal(part.len, 134);
  assert_int_equal(part.concat.total, 255);
  assert_int_equal(part.concat.seq, 255);
  assert_ptr_equal(part.data + part.len, payload + 34170);
  assert_int_equal(csms_split_part(payload, 34171, false, 7, 0, &part),
                   SMS_ERR_TOO_MANY_PARTS);
  /* 16-bit reference: 133-octet parts, the full reference kept. */
  assert_int_equal(csms_split_part(payload, 33915, true, 0xBEEF, 254, &part), SMS_OK);
  assert_int_equal(part.len, 133);
  assert_int_equal(part.concat.ref, 0xBEEF);
  assert_true(part.concat.ref16);
  assert_int_equal(csms_split_part(payload, 33916, true, 7, 0, &part), SMS_ERR_TOO_MANY_PARTS);
  /* One SMS: no UDH at all. */
  assert_int_equal(csms_split_part(payload, 140, false, 7, 0, &part), SMS_OK);
  assert_false(part.has_concat);
  assert_int_equal(part.len, 140);
  assert_int_equal(csms_split_part(NULL, 0, false, 7, 0, &part), SMS_OK);
  assert_int_equal(part.len, 0);
  assert_int_equal(csms_split_part(NULL, 5, false, 7, 0, &part), SMS_ERR_ARG);
  test_free(payload);
}

/* ---- reassembly ---- */

static int setup(void **state) {
  csms_reassembly_t *r = test_malloc(sizeof(*r));
  if (csms_reassembly_init(r, NULL) != SMS_OK)
    return -1;
  *state = r;
  return 0;
}

static int teardown(void **state) {
  csms_reassembly_clear(*state);
  test_free(*state);
  return 0;
}

static csms_result_t add(csms_reassembly_t *r, const char *sender, uint16_t ref, uint8_t total,
                         uint8_t seq, const char *data, uint64_t now, const uint8_t **out,
                         size_t *out_len) {
  sms_concat_t c = {.ref = ref, .total = total, .seq = seq, .ref16 = ref > 0xFF};
  return csms_reassembly_add(r, sender, &c, (const uint8_t *)data, strlen(data), now, out,
                             out_len);
}

static csms_result_t add_simple(csms_reassembly_t *r, const char *sender, uint16_t ref,
                                uint8_t total, uint8_t seq, const char *data, uint64_t now) {
  const uint8_t *out;
  size_t len;
  csms_result_t res = add(r, sender, ref, total, seq, data, now, &out, &len);
  if (res != CSMS_COMPLETE)
    assert_null(out);
  return res;
}

static void test_defaults(void **state) {
  csms_reassembly_t *r = *state;
  assert_int_equal(r->limits.timeout_ms, 60000);
  assert_int_equal(r->limits.max_messages, 64);
  assert_int_equal(r->limits.max_bytes, 256 * 1024);
  assert_int_equal(csms_reassembly_next_expiry(r), UINT64_MAX);
}

static void test_in_order_and_out_of_order(void **state) {
  csms_reassembly_t *r = *state;
  const uint8_t *out;
  size_t len;
  assert_int_equal(add_simple(r, ALICE, 1, 3, 1, "Hello, ", T0), CSMS_STORED);
  assert_int_equal(add_simple(r, ALICE, 1, 3, 2, "concatenated ", T0 + 1), CSMS_STORED);
  assert_int_equal(add(r, ALICE, 1, 3, 3, "world", T0 + 2, &out, &len), CSMS_COMPLETE);
  assert_int_equal(len, strlen("Hello, concatenated world"));
  assert_memory_equal(out, "Hello, concatenated world", len);
  assert_int_equal(r->count, 0);
  assert_int_equal(r->buffered_bytes, 0);

  /* Reverse order, interleaved with another sender using the same reference. */
  assert_int_equal(add_simple(r, ALICE, 2, 3, 3, "C", T0 + 3), CSMS_STORED);
  assert_int_equal(add_simple(r, BOB, 2, 3, 1, "x", T0 + 3), CSMS_STORED);
  assert_int_equal(add_simple(r, ALICE, 2, 3, 2, "B", T0 + 4), CSMS_STORED);
  assert_int_equal(r->buffered_bytes, 3);
  assert_int_equal(add(r, ALICE, 2, 3, 1, "A", T0 + 5, &out, &len), CSMS_COMPLETE);
  assert_int_equal(len, 3);
  assert_memory_equal(out, "ABC", 3);
  assert_int_equal(r->count, 1); /* Bob's is still waiting */
  assert_int_equal(r->counters.completed, 2);
  assert_int_equal(r->counters.conflicts, 0);
}

static void test_ref_width_is_part_of_the_key(void **state) {
  csms_reassembly_t *r = *state;
  sms_concat_t c8 = {.ref = 0x12, .total = 2, .seq = 1, .ref16 = false};
  sms_concat_t c16 = {.ref = 0x12, .total = 2, .seq = 2, .ref16 = true};
  const uint8_t *out;
  size_t len;
  assert_int_equal(csms_reassembly_add(r, ALICE, &c8, (const uint8_t *)"a", 1, T0, &out, &len),
                   CSMS_STORED);
  assert_int_equal(csms_reassembly_add(r, ALICE, &c16, (const uint8_t *)"b", 1, T0, &out, &len),
                   CSMS_STORED);
  assert_int_equal(r->count, 2);
}

static void test_single_part(void **state) {
  csms_reassembly_t *r = *state;
  const uint8_t *out;
  size_t len;
  assert_int_equal(add(r, ALICE, 9, 1, 1, "only", T0, &out, &len), CSMS_COMPLETE);
  assert_int_equal(len, 4);
  assert_memory_equal(out, "only", 4);
  assert_int_equal(r->count, 0);
  assert_int_equal(r->counters.completed, 1);
}

static void test_duplicates(void **state) {
  csms_reassembly_t *r = *state;
  const uint8_t *out;
  size_t len;
  assert_int_equal(add_simple(r, ALICE, 5, 2, 2, "second", T0), CSMS_STORED);
  /* Same key and seq: dropped even with other content; the first copy is kept. */
  assert_int_equal(add_simple(r, ALICE, 5, 2, 2, "SECOND", T0 + 1), CSMS_DUPLICATE);
  assert_int_equal(add_simple(r, ALICE, 5, 2, 2, "second", T0 + 2), CSMS_DUPLICATE);
  assert_int_equal(r->counters.duplicates, 2);
  assert_int_equal(r->buffered_bytes, 6);
  assert_int_equal(add(r, ALICE, 5, 2, 1, "first ", T0 + 3, &out, &len), CSMS_COMPLETE);
  assert_memory_equal(out, "first second", len);
}

static void test_conflicting_total(void **state) {
  csms_reassembly_t *r = *state;
  const uint8_t *out;
  size_t len;
  assert_int_equal(add_simple(r, ALICE, 7, 3, 1, "old", T0), CSMS_STORED);
  /* Same sender and reference, another total: counted, kept as its own message. */
  assert_int_equal(add_simple(r, ALICE, 7, 2, 1, "new1", T0 + 1), CSMS_STORED);
  assert_int_equal(r->counters.conflicts, 1);
  assert_int_equal(r->count, 2);
  assert_int_equal(add(r, ALICE, 7, 2, 2, "new2", T0 + 2, &out, &len), CSMS_COMPLETE);
  assert_memory_equal(out, "new1new2", len);
  assert_int_equal(r->counters.conflicts, 1); /* the second part matched its own message */
  /* The stale one expires with its two missing parts. */
  assert_int_equal(csms_reassembly_check(r, T0 + 60000), 1);
  assert_int_equal(r->counters.expired, 1);
  assert_int_equal(r->counters.parts_missing, 2);
}

static void test_malformed(void **state) {
  csms_reassembly_t *r = *state;
  const uint8_t *out;
  size_t len;
  static const sms_concat_t bad[] = {
      {.ref = 1, .total = 0, .seq = 0},  {.ref = 1, .total = 0, .seq = 1},
      {.ref = 1, .total = 2, .seq = 0},  {.ref = 1, .total = 2, .seq = 3},
      {.ref = 300, .total = 2, .seq = 1}, /* 8-bit IE cannot carry 300 */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(
        csms_reassembly_add(r, ALICE, &bad[i], (const uint8_t *)"x", 1, T0, &out, &len),
        CSMS_MALFORMED);
  sms_concat_t ok = {.ref = 1, .total = 2, .seq = 1};
  char long_sender[CSMS_SENDER_MAX + 1];
  memset(long_sender, '1', CSMS_SENDER_MAX);
  long_sender[CSMS_SENDER_MAX] = '\0';
  assert_int_equal(csms_reassembly_add(r, long_sender, &ok, (const uint8_t *)"x", 1, T0, &out,
                                       &len),
                   CSMS_MALFORMED);
  assert_int_equal(csms_reassembly_add(r, NULL, &ok, (const uint8_t *)"x", 1, T0, &out, &len),
                   CSMS_MALFORMED);
  assert_int_equal(csms_reassembly_add(r, ALICE, NULL, (const uint8_t *)"x", 1, T0, &out, &len),
                   CSMS_MALFORMED);
  assert_int_equal(r->counters.malformed, 8);
  assert_int_equal(r->count, 0);
}

static void test_timeout(void **state) {
  csms_reassembly_t *r = *state;
  assert_int_equal(add_simple(r, ALICE, 3, 5, 1, "a", T0), CSMS_STORED);
  assert_int_equal(add_simple(r, ALICE, 3, 5, 4, "d", T0 + 10000), CSMS_STORED);
  assert_int_equal(add_simple(r, BOB, 3, 4, 2, "b", T0 + 20000), CSMS_STORED);
  /* The timeout counts from a message's latest part. */
  assert_int_equal(csms_reassembly_next_expiry(r), T0 + 10000 + 60000);
  assert_int_equal(csms_reassembly_check(r, T0 + 69999), 0);
  assert_int_equal(csms_reassembly_check(r, T0 + 70000), 1);
  assert_int_equal(r->counters.expired, 1);
  assert_int_equal(r->counters.parts_missing, 3);
  assert_int_equal(r->count, 1);
  assert_int_equal(r->buffered_bytes, 1);
  /* A clock stepping back expires nothing. */
  assert_int_equal(csms_reassembly_check(r, 1), 0);
  /* Adding also expires first: Bob's is gone, so this part starts afresh. */
  assert_int_equal(add_simple(r, BOB, 3, 4, 1, "a", T0 + 80000), CSMS_STORED);
  assert_int_equal(r->counters.expired, 2);
  assert_int_equal(r->counters.parts_missing, 6);
  assert_int_equal(r->count, 1);
  /* A late part of the expired message of Alice starts a new, incomplete one. */
  assert_int_equal(add_simple(r, ALICE, 3, 5, 2, "b", T0 + 80000), CSMS_STORED);
  assert_int_equal(r->count, 2);
}

static void test_eviction_by_count(void **state) {
  (void)state;
  csms_reassembly_t r;
  csms_limits_t limits = {.max_messages = 3};
  assert_int_equal(csms_reassembly_init(&r, &limits), SMS_OK);
  assert_int_equal(r.limits.timeout_ms, 60000); /* zero fields take the defaults */
  for (uint16_t ref = 1; ref <= 3; ref++)
    assert_int_equal(add_simple(&r, ALICE, ref, 2, 1, "x", T0 + ref), CSMS_STORED);
  /* The oldest gets a part later: age is creation order, not activity. */
  assert_int_equal(add_simple(&r, ALICE, 1, 3, 1, "conflict", T0 + 5), CSMS_STORED);
  assert_int_equal(r.counters.evicted, 1); /* ref 1 (total 2) was the oldest */
  assert_int_equal(r.counters.conflicts, 1);
  assert_int_equal(add_simple(&r, ALICE, 4, 2, 1, "y", T0 + 6), CSMS_STORED);
  assert_int_equal(r.counters.evicted, 2); /* ref 2 */
  assert_int_equal(r.count, 3);
  /* Ref 2 was evicted: its second part starts a new message (there is room again). */
  const uint8_t *out;
  size_t len;
  assert_int_equal(add(&r, ALICE, 4, 2, 2, "z", T0 + 7, &out, &len), CSMS_COMPLETE);
  assert_memory_equal(out, "yz", 2);
  assert_int_equal(add_simple(&r, ALICE, 2, 2, 2, "x", T0 + 8), CSMS_STORED);
  assert_int_equal(r.count, 3);
  assert_int_equal(r.counters.evicted, 2);
  assert_int_equal(add_simple(&r, BOB, 9, 2, 2, "x", T0 + 9), CSMS_STORED);
  assert_int_equal(r.counters.evicted, 3);
  csms_reassembly_clear(&r);
}

/* The owner is told of every incomplete message dropped, never of a completed one. */
typedef struct {
  int calls;
  char sender[CSMS_SENDER_MAX];
  uint16_t ref;
  uint8_t total;
} dropped_t;

static void on_dropped(void *arg, const char *sender, uint16_t ref, uint8_t total, bool ref16) {
  dropped_t *d = arg;
  (void)ref16;
  d->calls++;
  snprintf(d->sender, sizeof(d->sender), "%s", sender);
  d->ref = ref;
  d->total = total;
}

static void test_dropped_messages_are_reported(void **state) {
  (void)state;
  csms_reassembly_t r;
  csms_limits_t limits = {.max_messages = 1};
  assert_int_equal(csms_reassembly_init(&r, &limits), SMS_OK);
  dropped_t d = {0};
  r.on_dropped = on_dropped;
  r.dropped_arg = &d;
  const uint8_t *out;
  size_t len;
  assert_int_equal(add_simple(&r, ALICE, 7, 2, 1, "a", T0), CSMS_STORED);
  assert_int_equal(add(&r, ALICE, 7, 2, 2, "b", T0 + 1, &out, &len), CSMS_COMPLETE);
  assert_int_equal(d.calls, 0); /* completed: not dropped */
  assert_int_equal(add_simple(&r, ALICE, 8, 3, 1, "a", T0 + 2), CSMS_STORED);
  assert_int_equal(add_simple(&r, BOB, 9, 2, 1, "a", T0 + 3), CSMS_STORED); /* evicts ref 8 */
  assert_int_equal(d.calls, 1);
  assert_string_equal(d.sender, ALICE);
  assert_int_equal(d.ref, 8);
  assert_int_equal(d.total, 3);
  assert_int_equal(csms_reassembly_check(&r, T0 + 3 + r.limits.timeout_ms), 1); /* expires */
  assert_int_equal(d.calls, 2);
  assert_string_equal(d.sender, BOB);
  csms_reassembly_clear(&r);
}

static void test_eviction_by_bytes(void **state) {
  (void)state;
  csms_reassembly_t r;
  csms_limits_t limits = {.max_bytes = 300};
  assert_int_equal(csms_reassembly_init(&r, &limits), SMS_OK);
  uint8_t *data = pattern(134);
  sms_concat_t c = {.ref = 1, .total = 3, .seq = 1};
  const uint8_t *out;
  size_t len;
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 134, T0, &out, &len), CSMS_STORED);
  c.ref = 2;
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 134, T0 + 1, &out, &len),
                   CSMS_STORED);
  assert_int_equal(r.buffered_bytes, 268);
  /* 268 + 134 > 300: the oldest (ref 1) goes. */
  c.seq = 2;
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 134, T0 + 2, &out, &len),
                   CSMS_STORED);
  assert_int_equal(r.counters.evicted, 1);
  assert_int_equal(r.count, 1);
  assert_int_equal(r.buffered_bytes, 268);
  /* The last part of ref 2 would need 402 octets alone: it can never complete. */
  c.seq = 3;
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 134, T0 + 3, &out, &len),
                   CSMS_TOO_BIG);
  assert_int_equal(r.counters.evicted, 2);
  assert_int_equal(r.count, 0);
  assert_int_equal(r.buffered_bytes, 0);
  /* A message that fits completes even with a full neighbour evicted for it. */
  c = (sms_concat_t){.ref = 3, .total = 2, .seq = 1};
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 134, T0 + 4, &out, &len),
                   CSMS_STORED);
  c = (sms_concat_t){.ref = 4, .total = 2, .seq = 1};
  assert_int_equal(csms_reassembly_add(&r, BOB, &c, data, 134, T0 + 5, &out, &len), CSMS_STORED);
  c.seq = 2;
  assert_int_equal(csms_reassembly_add(&r, BOB, &c, data, 100, T0 + 6, &out, &len),
                   CSMS_COMPLETE);
  assert_int_equal(len, 234);
  assert_int_equal(r.counters.evicted, 3); /* ref 3 made room */
  test_free(data);
  csms_reassembly_clear(&r);
}

static void test_part_larger_than_limit(void **state) {
  (void)state;
  csms_reassembly_t r;
  csms_limits_t limits = {.max_bytes = 100};
  assert_int_equal(csms_reassembly_init(&r, &limits), SMS_OK);
  uint8_t *data = pattern(134);
  sms_concat_t c = {.ref = 1, .total = 2, .seq = 1};
  const uint8_t *out;
  size_t len;
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 50, T0, &out, &len), CSMS_STORED);
  c.seq = 2;
  assert_int_equal(csms_reassembly_add(&r, ALICE, &c, data, 134, T0, &out, &len), CSMS_TOO_BIG);
  assert_int_equal(r.count, 0);
  assert_int_equal(r.counters.evicted, 1);
  test_free(data);
  csms_reassembly_clear(&r);
}

/* Split 34170 octets into 255 parts, deliver them shuffled with duplicates, get the payload. */
static void test_split_then_reassemble_max(void **state) {
  csms_reassembly_t *r = *state;
  uint8_t *payload = pattern(CSMS_PAYLOAD_MAX);
  size_t n = csms_split_count(CSMS_PAYLOAD_MAX, false);
  assert_int_equal(n, 255);
  size_t order[255];
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  uint32_t seed = 12345;
  for (size_t i = n - 1; i > 0; i--) {
    seed = seed * 1103515245u + 12345u;
    size_t j = (seed >> 16) % (i + 1);
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const uint8_t *out = NULL;
  size_t len = 0;
  for (size_t k = 0; k < n; k++) {
    csms_part_t part;
    assert_int_equal(csms_split_part(payload, CSMS_PAYLOAD_MAX, false, 0x5A, order[k], &part),
                     SMS_OK);
    csms_result_t res = csms_reassembly_add(r, ALICE, &part.concat, part.data, part.len,
                                            T0 + k * 1000, &out, &len);
    assert_int_equal(res, k + 1 == n ? CSMS_COMPLETE : CSMS_STORED);
    if (k % 50 == 7 && k + 1 < n)
      assert_int_equal(csms_reassembly_add(r, ALICE, &part.concat, part.data, part.len,
                                           T0 + k * 1000, &out, &len),
                       CSMS_DUPLICATE);
  }
  assert_int_equal(len, CSMS_PAYLOAD_MAX);
  assert_memory_equal(out, payload, CSMS_PAYLOAD_MAX);
  assert_int_equal(r->counters.duplicates, 5);
  assert_int_equal(r->counters.expired, 0); /* parts kept coming: 1 s apart */
  test_free(payload);
}

static void test_lent_payload_survives_until_next_call(void **state) {
  csms_reassembly_t *r = *state;
  const uint8_t *out;
  size_t len;
  assert_int_equal(add(r, ALICE, 1, 1, 1, "first", T0, &out, &len), CSMS_COMPLETE);
  csms_reassembly_check(r, T0 + 1); /* check leaves the lent buffer alone */
  assert_memory_equal(out, "first", 5);
  uint8_t *big = pattern(3000);
  sms_concat_t c = {.ref = 2, .total = 1, .seq = 1};
  assert_int_equal(csms_reassembly_add(r, ALICE, &c, big, 3000, T0 + 2, &out, &len),
                   CSMS_COMPLETE);
  assert_memory_equal(out, big, 3000);
  test_free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_count),
      cmocka_unit_test(test_split_600),
      cmocka_unit_test(test_split_limits),
      cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_order_and_out_of_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ref_width_is_part_of_the_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_part, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conflicting_total, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test(test_eviction_by_count),
      cmocka_unit_test(test_dropped_messages_are_reported),
      cmocka_unit_test(test_eviction_by_bytes),
      cmocka_unit_test(test_part_larger_than_limit),
      cmocka_unit_test_setup_teardown(test_split_then_reassemble_max, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lent_payload_survives_until_next_call, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
