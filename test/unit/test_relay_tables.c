/* Unit tests of the device registry and the relay mapping tables of a device (device.h): uplink
 * exchanges, downlink exchanges (in flight and queued for sleepy devices), observations
 * (RFC 7641). Bindings are fake structs: no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "gw_error.h"
#include "loop.h"

#define QUEUE_LEN 3

static gw_baddr_t addr_of(const char *text) {
  gw_baddr_t a;
  memset(&a, 0, sizeof(a));
  snprintf(a.text, sizeof(a.text), "%s", text);
  return a;
}

static gw_baddr_t addr_n(unsigned n) {
  char text[GW_BADDR_MAX];
  snprintf(text, sizeof(text), "10.%u.%u.%u:%u", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff,
           5683 + n % 7);
  return addr_of(text);
}

/* ---- device registry -------------------------------------------------------------------- */

typedef struct {
  gw_device_table_t table;
  gw_binding_t sgi, sms;
} registry_fixture_t;

static int registry_setup(void **state) {
  registry_fixture_t *f = calloc(1, sizeof(*f));
  if (!f || gw_device_table_init(&f->table, 64) != GW_OK)
    return -1;
  *state = f;
  return 0;
}

static int registry_teardown(void **state) {
  registry_fixture_t *f = *state;
  gw_device_table_clear(&f->table, NULL, NULL);
  free(f);
  return 0;
}

static void test_device_add_find(void **state) {
  registry_fixture_t *f = *state;
  gw_baddr_t a = addr_of("127.0.0.1:40001");
  assert_null(gw_device_find(&f->table, &f->sgi, &a));
  gw_device_t *dev = gw_device_add(&f->table, &f->sgi, &a, QUEUE_LEN);
  assert_non_null(dev);
  assert_int_equal(f->table.count, 1);
  assert_ptr_equal(dev->binding, &f->sgi);
  assert_string_equal(dev->addr.text, "127.0.0.1:40001");
  assert_int_equal(dev->downlink_capacity, GW_MAX_INFLIGHT_DOWN + QUEUE_LEN);
  assert_ptr_equal(gw_device_find(&f->table, &f->sgi, &a), dev);
  /* A copy of the address finds it: the lookup is by text, not by pointer. */
  gw_baddr_t copy = addr_of("127.0.0.1:40001");
  assert_ptr_equal(gw_device_find(&f->table, &f->sgi, &copy), dev);
  /* Same text on another binding, or a prefix of the text, is someone else. */
  assert_null(gw_device_find(&f->table, &f->sms, &a));
  gw_baddr_t prefix = addr_of("127.0.0.1:4000");
  assert_null(gw_device_find(&f->table, &f->sgi, &prefix));
}

static void test_device_same_address_two_bindings(void **state) {
  registry_fixture_t *f = *state;
  gw_baddr_t a = addr_of("+15555550100");
  gw_device_t *on_sgi = gw_device_add(&f->table, &f->sgi, &a, 0);
  gw_device_t *on_sms = gw_device_add(&f->table, &f->sms, &a, 0);
  assert_non_null(on_sgi);
  assert_non_null(on_sms);
  assert_ptr_not_equal(on_sgi, on_sms);
  assert_ptr_equal(gw_device_find(&f->table, &f->sgi, &a), on_sgi);
  assert_ptr_equal(gw_device_find(&f->table, &f->sms, &a), on_sms);
  gw_device_remove(&f->table, on_sgi);
  gw_device_free(on_sgi);
  assert_null(gw_device_find(&f->table, &f->sgi, &a));
  assert_ptr_equal(gw_device_find(&f->table, &f->sms, &a), on_sms);
  assert_int_equal(f->table.count, 1);
}

#define MANY 5000

static void count_visit(gw_device_t *dev, void *arg) {
  unsigned *visits = arg;
  /* location is unused by the registry: it carries the device's index for this test. */
  unsigned idx = (unsigned)strtoul(dev->location, NULL, 10);
  assert_true(idx < 2 * MANY);
  visits[idx]++;
}

/* 5000 devices on each of two bindings in 64 buckets: long collision chains. */
static void test_device_many(void **state) {
  registry_fixture_t *f = *state;
  static gw_device_t *devs[2 * MANY];
  for (unsigned i = 0; i < 2 * MANY; i++) {
    gw_baddr_t a = addr_n(i % MANY);
    devs[i] = gw_device_add(&f->table, i < MANY ? &f->sgi : &f->sms, &a, 1);
    assert_non_null(devs[i]);
    snprintf(devs[i]->location, sizeof(devs[i]->location), "%u", i);
  }
  assert_int_equal(f->table.count, 2 * MANY);
  for (unsigned i = 0; i < 2 * MANY; i++) {
    gw_baddr_t a = addr_n(i % MANY);
    assert_ptr_equal(gw_device_find(&f->table, i < MANY ? &f->sgi : &f->sms, &a), devs[i]);
  }

  static unsigned visits[2 * MANY];
  memset(visits, 0, sizeof(visits));
  gw_device_foreach(&f->table, count_visit, visits);
  for (unsigned i = 0; i < 2 * MANY; i++)
    assert_int_equal(visits[i], 1);

  /* Remove every third device, from the middle of chains as well as their heads. */
  size_t removed = 0;
  for (unsigned i = 0; i < 2 * MANY; i += 3) {
    gw_device_remove(&f->table, devs[i]);
    gw_device_free(devs[i]);
    devs[i] = NULL;
    removed++;
  }
  assert_int_equal(f->table.count, 2 * MANY - removed);
  for (unsigned i = 0; i < 2 * MANY; i++) {
    gw_baddr_t a = addr_n(i % MANY);
    assert_ptr_equal(gw_device_find(&f->table, i < MANY ? &f->sgi : &f->sms, &a), devs[i]);
  }
  memset(visits, 0, sizeof(visits));
  gw_device_foreach(&f->table, count_visit, visits);
  for (unsigned i = 0; i < 2 * MANY; i++)
    assert_int_equal(visits[i], devs[i] ? 1 : 0);
}

/* One bucket: every device collides. */
static void test_device_single_bucket(void **state) {
  (void)state;
  gw_device_table_t table;
  gw_binding_t b = {0};
  assert_int_equal(gw_device_table_init(&table, 1), GW_OK);
  gw_device_t *devs[50];
  for (unsigned i = 0; i < 50; i++) {
    gw_baddr_t a = addr_n(i);
    devs[i] = gw_device_add(&table, &b, &a, 0);
    assert_non_null(devs[i]);
  }
  /* Remove the head, the tail and one in the middle of the chain. */
  const unsigned gone[] = {49, 0, 25};
  for (size_t k = 0; k < 3; k++) {
    gw_device_remove(&table, devs[gone[k]]);
    gw_device_free(devs[gone[k]]);
    devs[gone[k]] = NULL;
  }
  assert_int_equal(table.count, 47);
  for (unsigned i = 0; i < 50; i++) {
    gw_baddr_t a = addr_n(i);
    assert_ptr_equal(gw_device_find(&table, &b, &a), devs[i]);
  }
  gw_device_table_clear(&table, NULL, NULL);
  assert_int_equal(table.count, 0);
  assert_null(table.buckets);
}

static void count_free(gw_device_t *dev, void *arg) {
  assert_non_null(dev);
  (*(unsigned *)arg)++;
}

static void test_device_clear_calls_free_fn(void **state) {
  registry_fixture_t *f = *state;
  for (unsigned i = 0; i < 100; i++) {
    gw_baddr_t a = addr_n(i);
    assert_non_null(gw_device_add(&f->table, &f->sgi, &a, 2));
  }
  unsigned freed = 0;
  gw_device_table_clear(&f->table, count_free, &freed);
  assert_int_equal(freed, 100);
  assert_int_equal(f->table.count, 0);
  /* The teardown clears again: an empty table must survive that. */
  assert_int_equal(gw_device_table_init(&f->table, 8), GW_OK);
}

/* ---- per-device tables ------------------------------------------------------------------ */

typedef struct {
  gw_device_table_t table;
  gw_binding_t binding;
  gw_device_t *dev;
} device_fixture_t;

static int device_setup_queue(void **state, size_t queue_len) {
  device_fixture_t *f = calloc(1, sizeof(*f));
  if (!f || gw_device_table_init(&f->table, 16) != GW_OK)
    return -1;
  gw_baddr_t a = addr_of("127.0.0.1:40001");
  f->dev = gw_device_add(&f->table, &f->binding, &a, queue_len);
  if (!f->dev)
    return -1;
  *state = f;
  return 0;
}

static int device_setup(void **state) { return device_setup_queue(state, QUEUE_LEN); }
static int device_setup_no_queue(void **state) { return device_setup_queue(state, 0); }

static int device_teardown(void **state) {
  device_fixture_t *f = *state;
  gw_device_table_clear(&f->table, NULL, NULL);
  free(f);
  return 0;
}

static void make_request(gw_coap_msg_t *msg, gw_coap_type_t type, uint8_t code, uint16_t mid,
                         const void *token, size_t token_len) {
  gw_coap_msg_init(msg, type, code, mid);
  assert_int_equal(gw_coap_set_token(msg, token, token_len), 0);
}

static void test_uplink_add_find_remove(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_coap_msg_t req;
  make_request(&req, GW_COAP_CON, GW_COAP_POST, 0x1111, "\x01\x02\x03\x04", 4);
  gw_uplink_xchg_t *x = gw_uplink_add(dev, &req, 5000);
  assert_non_null(x);
  assert_true(x->used);
  assert_int_equal(x->device_mid, 0x1111);
  assert_int_equal(x->device_type, GW_COAP_CON);
  assert_int_equal(x->method, GW_COAP_POST);
  assert_int_equal(x->started_ms, 5000);
  assert_int_equal(x->token_len, 4);
  assert_memory_equal(x->token, "\x01\x02\x03\x04", 4);

  make_request(&req, GW_COAP_NON, GW_COAP_GET, 0x2222, "\x01\x02\x03\x05", 4);
  gw_uplink_xchg_t *y = gw_uplink_add(dev, &req, 6000);
  assert_non_null(y);
  assert_ptr_not_equal(x, y);

  assert_ptr_equal(gw_uplink_find(dev, (const uint8_t *)"\x01\x02\x03\x04", 4), x);
  assert_ptr_equal(gw_uplink_find(dev, (const uint8_t *)"\x01\x02\x03\x05", 4), y);
  /* Tokens compare by length too. */
  assert_null(gw_uplink_find(dev, (const uint8_t *)"\x01\x02\x03", 3));
  assert_null(gw_uplink_find(dev, (const uint8_t *)"\x01\x02\x03\x04\x00", 5));

  gw_uplink_remove(x);
  assert_false(x->used);
  assert_null(gw_uplink_find(dev, (const uint8_t *)"\x01\x02\x03\x04", 4));
  assert_ptr_equal(gw_uplink_find(dev, (const uint8_t *)"\x01\x02\x03\x05", 4), y);
}

static void test_uplink_empty_token(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_coap_msg_t req;
  const uint8_t *none = (const uint8_t *)"";
  assert_null(gw_uplink_find(dev, none, 0)); /* free slots never match */
  make_request(&req, GW_COAP_CON, GW_COAP_POST, 1, NULL, 0);
  gw_uplink_xchg_t *x = gw_uplink_add(dev, &req, 0);
  assert_non_null(x);
  assert_ptr_equal(gw_uplink_find(dev, none, 0), x);
  assert_null(gw_uplink_find(dev, (const uint8_t *)"\x00", 1));
}

static void test_uplink_table_full(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_coap_msg_t req;
  gw_uplink_xchg_t *xs[GW_MAX_UPLINK];
  for (uint8_t i = 0; i < GW_MAX_UPLINK; i++) {
    make_request(&req, GW_COAP_CON, GW_COAP_POST, i, &i, 1);
    xs[i] = gw_uplink_add(dev, &req, i);
    assert_non_null(xs[i]);
  }
  uint8_t extra = 0xEE;
  make_request(&req, GW_COAP_CON, GW_COAP_POST, 99, &extra, 1);
  assert_null(gw_uplink_add(dev, &req, 99));
  for (uint8_t i = 0; i < GW_MAX_UPLINK; i++)
    assert_ptr_equal(gw_uplink_find(dev, &i, 1), xs[i]);
  /* Freeing one makes room for exactly one. */
  gw_uplink_remove(xs[3]);
  gw_uplink_xchg_t *x = gw_uplink_add(dev, &req, 99);
  assert_ptr_equal(x, xs[3]);
  assert_ptr_equal(gw_uplink_find(dev, &extra, 1), x);
  assert_null(gw_uplink_add(dev, &req, 100));
}

/* An unanswered exchange (a NON request nobody answers) frees its slot after
 * EXCHANGE_LIFETIME, so a device is never locked out by lost answers. */
static void test_uplink_stale_slot_reused(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_coap_msg_t req;
  for (uint8_t i = 0; i < GW_MAX_UPLINK; i++) {
    make_request(&req, GW_COAP_NON, GW_COAP_POST, i, &i, 1);
    assert_non_null(gw_uplink_add(dev, &req, 1000 + i));
  }
  uint8_t late = 0x77;
  make_request(&req, GW_COAP_NON, GW_COAP_POST, 50, &late, 1);
  assert_null(gw_uplink_add(dev, &req, 1000 + GW_EXCHANGE_LIFETIME_MS - 1));
  gw_uplink_xchg_t *x = gw_uplink_add(dev, &req, 1000 + GW_EXCHANGE_LIFETIME_MS);
  assert_non_null(x);
  assert_int_equal(x->device_mid, 50);
  uint8_t first = 0;
  assert_null(gw_uplink_find(dev, &first, 1)); /* the oldest one gave its slot */
}

static gw_downlink_xchg_t *alloc_inflight(gw_device_t *dev, uint16_t device_mid, uint8_t tok,
                                          uint16_t server_mid) {
  gw_downlink_xchg_t *x = gw_downlink_alloc(dev, false);
  assert_non_null(x);
  assert_true(x->used);
  assert_int_equal(x->state, GW_DOWN_INFLIGHT);
  assert_ptr_equal(x->device, dev);
  x->device_mid = device_mid;
  x->token[0] = tok;
  x->token_len = 1;
  x->server_mid = server_mid;
  return x;
}

static void test_downlink_inflight_limit(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_downlink_xchg_t *xs[GW_MAX_INFLIGHT_DOWN];
  for (int i = 0; i < GW_MAX_INFLIGHT_DOWN; i++)
    xs[i] = alloc_inflight(dev, (uint16_t)(100 + i), (uint8_t)i, (uint16_t)(200 + i));
  assert_int_equal(gw_downlink_count(dev, GW_DOWN_INFLIGHT), GW_MAX_INFLIGHT_DOWN);
  /* Slots are free (the queue part) but in flight is at its limit. */
  assert_null(gw_downlink_alloc(dev, false));
  /* A separate response still occupies an in-flight place. */
  xs[0]->state = GW_DOWN_SEPARATE;
  assert_null(gw_downlink_alloc(dev, false));
  /* The queue is counted separately and is still open. */
  for (int i = 0; i < QUEUE_LEN; i++) {
    gw_downlink_xchg_t *q = gw_downlink_alloc(dev, true);
    assert_non_null(q);
    assert_int_equal(q->state, GW_DOWN_QUEUED);
  }
  assert_null(gw_downlink_alloc(dev, true));
  assert_int_equal(gw_downlink_count(dev, GW_DOWN_QUEUED), QUEUE_LEN);
  assert_int_equal(gw_downlink_count(dev, GW_DOWN_SEPARATE), 1);
  assert_int_equal(gw_downlink_count(dev, GW_DOWN_INFLIGHT), GW_MAX_INFLIGHT_DOWN - 1);

  gw_downlink_release(NULL, xs[0]);
  gw_downlink_xchg_t *x = gw_downlink_alloc(dev, false);
  assert_ptr_equal(x, xs[0]);
  assert_null(gw_downlink_alloc(dev, false));
  assert_null(gw_downlink_alloc(dev, true));
}

static void test_downlink_queue_limit(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  for (int i = 0; i < QUEUE_LEN; i++)
    assert_non_null(gw_downlink_alloc(dev, true));
  assert_null(gw_downlink_alloc(dev, true));
  /* A full queue does not block requests in flight. */
  for (int i = 0; i < GW_MAX_INFLIGHT_DOWN; i++)
    alloc_inflight(dev, (uint16_t)i, (uint8_t)i, (uint16_t)i);
  assert_null(gw_downlink_alloc(dev, false));
}

static void test_downlink_no_queue(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  assert_int_equal(dev->downlink_capacity, GW_MAX_INFLIGHT_DOWN);
  assert_null(gw_downlink_alloc(dev, true));
  for (int i = 0; i < GW_MAX_INFLIGHT_DOWN; i++)
    alloc_inflight(dev, (uint16_t)i, (uint8_t)i, (uint16_t)i);
  assert_null(gw_downlink_alloc(dev, false));
  assert_null(gw_downlink_alloc(dev, true));
}

static void test_downlink_find(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_downlink_xchg_t *a = alloc_inflight(dev, 0x0100, 0xA1, 0x9000);
  gw_downlink_xchg_t *b = alloc_inflight(dev, 0x0101, 0xB2, 0x9001);
  b->state = GW_DOWN_SEPARATE;
  gw_downlink_xchg_t *q = gw_downlink_alloc(dev, true);
  assert_non_null(q);
  q->device_mid = 0x0102;
  q->token[0] = 0xC3;
  q->token_len = 1;
  q->server_mid = 0x9002;

  assert_ptr_equal(gw_downlink_find_by_mid(dev, 0x0100), a);
  assert_ptr_equal(gw_downlink_find_by_mid(dev, 0x0101), b);
  assert_null(gw_downlink_find_by_mid(dev, 0x0103));
  assert_ptr_equal(gw_downlink_find_by_token(dev, (const uint8_t *)"\xA1", 1), a);
  assert_ptr_equal(gw_downlink_find_by_token(dev, (const uint8_t *)"\xB2", 1), b);
  assert_null(gw_downlink_find_by_token(dev, (const uint8_t *)"\xA1\x00", 2));
  /* A queued request has not been sent: nothing from the device can answer it. */
  assert_null(gw_downlink_find_by_mid(dev, 0x0102));
  assert_null(gw_downlink_find_by_token(dev, (const uint8_t *)"\xC3", 1));
  /* The server's retransmission of a queued request must still be recognised. */
  assert_ptr_equal(gw_downlink_find_by_server_mid(dev, 0x9002), q);
  assert_ptr_equal(gw_downlink_find_by_server_mid(dev, 0x9000), a);
  assert_null(gw_downlink_find_by_server_mid(dev, 0x9003));

  /* Once sent, it is found. */
  q->state = GW_DOWN_INFLIGHT;
  assert_ptr_equal(gw_downlink_find_by_mid(dev, 0x0102), q);
  assert_ptr_equal(gw_downlink_find_by_token(dev, (const uint8_t *)"\xC3", 1), q);

  /* Released: found by nothing. */
  gw_downlink_release(NULL, a);
  assert_null(gw_downlink_find_by_mid(dev, 0x0100));
  assert_null(gw_downlink_find_by_token(dev, (const uint8_t *)"\xA1", 1));
  assert_null(gw_downlink_find_by_server_mid(dev, 0x9000));
}

/* Free slots are zeroed (mid 0, empty token): they must never match. */
static void test_downlink_free_slots_never_match(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  assert_null(gw_downlink_find_by_mid(dev, 0));
  assert_null(gw_downlink_find_by_token(dev, (const uint8_t *)"", 0));
  assert_null(gw_downlink_find_by_server_mid(dev, 0));
  gw_downlink_xchg_t *x = alloc_inflight(dev, 1, 1, 1);
  gw_downlink_release(NULL, x);
  assert_null(gw_downlink_find_by_mid(dev, 0));
  assert_null(gw_downlink_find_by_mid(dev, 1));
  assert_int_equal(gw_downlink_count(dev, GW_DOWN_INFLIGHT), 0);
}

static void timer_never(gw_loop_t *loop, void *arg) {
  (void)loop;
  (void)arg;
  fail_msg("the timer of a released exchange fired");
}

static void test_downlink_release(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_downlink_xchg_t *x = alloc_inflight(dev, 7, 7, 7);
  x->request = malloc(32); /* owned: release frees it (LeakSanitizer checks) */
  assert_non_null(x->request);
  memset(x->request, 0x5a, 32);
  x->request_len = 32;
  snprintf(x->path, sizeof(x->path), "/3/0/1");
  x->observe_register = true;
  gw_downlink_release(NULL, x);
  assert_false(x->used);
  assert_null(x->request);
  assert_int_equal(x->request_len, 0);
  assert_string_equal(x->path, "");
  assert_false(x->observe_register);
  assert_ptr_equal(x->device, dev);
  assert_false(gw_timer_active(&x->piggyback_timer));
  assert_false(gw_timer_active(&x->deadline_timer));
  assert_false(gw_timer_active(&x->retransmit_timer));

  /* With a loop, armed timers are disarmed: none may fire afterwards. */
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  x = alloc_inflight(dev, 8, 8, 8);
  gw_timer_init(&x->piggyback_timer, timer_never, x);
  gw_timer_init(&x->deadline_timer, timer_never, x);
  gw_timer_init(&x->retransmit_timer, timer_never, x);
  assert_int_equal(gw_timer_start(loop, &x->piggyback_timer, 0), GW_OK);
  assert_int_equal(gw_timer_start(loop, &x->deadline_timer, 1), GW_OK);
  assert_int_equal(gw_timer_start(loop, &x->retransmit_timer, 2), GW_OK);
  gw_downlink_release(loop, x);
  assert_false(gw_timer_active(&x->piggyback_timer));
  assert_false(gw_timer_active(&x->deadline_timer));
  assert_false(gw_timer_active(&x->retransmit_timer));
  uint64_t end = gw_now_ms() + 20;
  while (gw_now_ms() < end)
    assert_int_equal(gw_loop_run_once(loop, 5), GW_OK);
  gw_loop_free(&loop);
}

/* gw_device_free frees request copies of exchanges still in use (LeakSanitizer checks). */
static void test_device_free_releases_requests(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_downlink_xchg_t *x = gw_downlink_alloc(dev, true);
  assert_non_null(x);
  x->request = malloc(64);
  assert_non_null(x->request);
  x->request_len = 64;
}

static void test_observations(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  assert_int_equal(gw_observation_count(dev), 0);
  gw_observation_t *o = gw_observation_add(dev, (const uint8_t *)"\x10\x20", 2, "/3303/0/5700");
  assert_non_null(o);
  assert_true(o->used);
  assert_int_equal(o->token_len, 2);
  assert_memory_equal(o->token, "\x10\x20", 2);
  assert_string_equal(o->path, "/3303/0/5700");
  assert_ptr_equal(gw_observation_find(dev, (const uint8_t *)"\x10\x20", 2), o);
  assert_null(gw_observation_find(dev, (const uint8_t *)"\x10", 1));
  assert_null(gw_observation_find(dev, (const uint8_t *)"\x10\x21", 2));

  gw_observation_t *p = gw_observation_add(dev, (const uint8_t *)"\x30", 1, "/3/0");
  assert_non_null(p);
  assert_ptr_not_equal(o, p);
  assert_int_equal(gw_observation_count(dev), 2);

  /* The same token again (the server re-registers) takes the same slot, with the new path. */
  gw_observation_t *again = gw_observation_add(dev, (const uint8_t *)"\x10\x20", 2, "/3303/0");
  assert_ptr_equal(again, o);
  assert_string_equal(o->path, "/3303/0");
  assert_int_equal(gw_observation_count(dev), 2);

  gw_observation_remove(o);
  assert_null(gw_observation_find(dev, (const uint8_t *)"\x10\x20", 2));
  assert_ptr_equal(gw_observation_find(dev, (const uint8_t *)"\x30", 1), p);
  assert_int_equal(gw_observation_count(dev), 1);
}

static void test_observation_long_path_truncated(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  char path[200];
  memset(path, 'a', sizeof(path) - 1);
  path[sizeof(path) - 1] = '\0';
  gw_observation_t *o = gw_observation_add(dev, (const uint8_t *)"\x01", 1, path);
  assert_non_null(o);
  assert_int_equal(strlen(o->path), sizeof(o->path) - 1);
  assert_memory_equal(o->path, path, sizeof(o->path) - 1);
}

static void test_observation_table_full(void **state) {
  gw_device_t *dev = ((device_fixture_t *)*state)->dev;
  gw_observation_t *os[GW_MAX_OBSERVATIONS];
  for (uint8_t i = 0; i < GW_MAX_OBSERVATIONS; i++) {
    uint8_t tok[2] = {0xAB, i};
    os[i] = gw_observation_add(dev, tok, 2, "/3/0/13");
    assert_non_null(os[i]);
  }
  assert_int_equal(gw_observation_count(dev), GW_MAX_OBSERVATIONS);
  uint8_t extra[2] = {0xCD, 0};
  assert_null(gw_observation_add(dev, extra, 2, "/3/0/13"));
  assert_int_equal(gw_observation_count(dev), GW_MAX_OBSERVATIONS);
  /* A full table still accepts a known token: it is no new slot. */
  uint8_t known[2] = {0xAB, 5};
  assert_ptr_equal(gw_observation_add(dev, known, 2, "/3/0/14"), os[5]);
  assert_string_equal(os[5]->path, "/3/0/14");
  gw_observation_remove(os[9]);
  assert_ptr_equal(gw_observation_add(dev, extra, 2, "/3/0/13"), os[9]);
  assert_ptr_equal(gw_observation_find(dev, extra, 2), os[9]);
  assert_int_equal(gw_observation_count(dev), GW_MAX_OBSERVATIONS);
}

#define DEVICE_TEST(fn) cmocka_unit_test_setup_teardown(fn, device_setup, device_teardown)
#define REGISTRY_TEST(fn) cmocka_unit_test_setup_teardown(fn, registry_setup, registry_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      REGISTRY_TEST(test_device_add_find),
      REGISTRY_TEST(test_device_same_address_two_bindings),
      REGISTRY_TEST(test_device_many),
      cmocka_unit_test(test_device_single_bucket),
      REGISTRY_TEST(test_device_clear_calls_free_fn),
      DEVICE_TEST(test_uplink_add_find_remove),
      DEVICE_TEST(test_uplink_empty_token),
      DEVICE_TEST(test_uplink_table_full),
      DEVICE_TEST(test_uplink_stale_slot_reused),
      DEVICE_TEST(test_downlink_inflight_limit),
      DEVICE_TEST(test_downlink_queue_limit),
      cmocka_unit_test_setup_teardown(test_downlink_no_queue, device_setup_no_queue,
                                      device_teardown),
      DEVICE_TEST(test_downlink_find),
      DEVICE_TEST(test_downlink_free_slots_never_match),
      DEVICE_TEST(test_downlink_release),
      DEVICE_TEST(test_device_free_releases_requests),
      DEVICE_TEST(test_observations),
      DEVICE_TEST(test_observation_long_path_truncated),
      DEVICE_TEST(test_observation_table_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
