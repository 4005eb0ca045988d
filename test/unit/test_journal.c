/* Unit tests of the exchange journal (journal.h): message IDs per device that continue after a
 * restart, and a message relayed again keeps its ID. A real file in a temporary directory; a
 * "restart" is closing and opening it again, or a forked process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_error.h"
#include "journal.h"

#define SLOTS 64
#define NOW 1700000000u
#define LIFETIME_S 247u /* EXCHANGE_LIFETIME, RFC 7252 4.8.2 */

static char dir[64], path[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/test_journal.XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(path, sizeof(path), "%s/exchanges.journal", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(path);
  rmdir(dir);
  return 0;
}

static gw_journal_t *open_journal(uint32_t slots) {
  gw_journal_t *j = NULL;
  assert_int_equal(gw_journal_open(path, slots, &j), GW_OK);
  return j;
}

static void test_same_message_same_id(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(SLOTS);
  uint32_t slot = gw_journal_claim(j, gw_journal_key("nidd", "10.0.0.1:5683"));
  assert_int_not_equal(slot, GW_JOURNAL_NO_SLOT);
  uint16_t u1 = gw_journal_upstream_mid(j, slot, 0x1000, NOW);
  uint16_t u2 = gw_journal_upstream_mid(j, slot, 0x1001, NOW);
  assert_int_equal(u2, (uint16_t)(u1 + 1));
  /* a retransmission of 0x1000 within EXCHANGE_LIFETIME: the same upstream ID */
  assert_int_equal(gw_journal_upstream_mid(j, slot, 0x1000, NOW + LIFETIME_S - 1), u1);
  /* after it, the device may use 0x1000 for a new message: a new ID */
  assert_int_equal(gw_journal_upstream_mid(j, slot, 0x1000, NOW + LIFETIME_S), (uint16_t)(u1 + 2));
  /* the two directions are separate */
  uint16_t m = gw_journal_downstream_mid(j, slot, 0x1000, NOW);
  assert_int_equal(gw_journal_downstream_mid(j, slot, 0x1000, NOW + 5), m);
  assert_int_equal(gw_journal_next_downstream_mid(j, slot), (uint16_t)(m + 1));
  gw_journal_close(&j);
}

/* A server message relayed before is known for EXCHANGE_LIFETIME; asking records nothing. */
static void test_downstream_known(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(SLOTS);
  uint32_t slot = gw_journal_claim(j, gw_journal_key("http", "rd:h1"));
  assert_false(gw_journal_downstream_known(j, slot, 0x2000, NOW));
  assert_false(gw_journal_downstream_known(j, slot, 0x2000, NOW));
  gw_journal_downstream_mid(j, slot, 0x2000, NOW);
  assert_true(gw_journal_downstream_known(j, slot, 0x2000, NOW + LIFETIME_S - 1));
  assert_false(gw_journal_downstream_known(j, slot, 0x2000, NOW + LIFETIME_S));
  gw_journal_upstream_mid(j, slot, 0x2001, NOW); /* the device's direction is another ring */
  assert_false(gw_journal_downstream_known(j, slot, 0x2001, NOW));
  assert_false(gw_journal_downstream_known(j, GW_JOURNAL_NO_SLOT, 0x2000, NOW));
  gw_journal_close(&j);
}

static void test_survives_reopening(void **state) {
  (void)state;
  uint64_t key = gw_journal_key("sms", "14155550125");
  gw_journal_t *j = open_journal(SLOTS);
  uint32_t slot = gw_journal_claim(j, key);
  uint16_t u = gw_journal_upstream_mid(j, slot, 0xbeef, NOW);
  uint16_t m = gw_journal_downstream_mid(j, slot, 0x0042, NOW);
  uint16_t next_up = gw_journal_next_upstream_mid(j, slot);
  gw_journal_close(&j); /* nothing is written at close: the mapping is the file */

  j = open_journal(SLOTS);
  uint32_t again = gw_journal_claim(j, key);
  assert_int_equal(again, slot);
  assert_int_equal(gw_journal_upstream_mid(j, again, 0xbeef, NOW + 10), u);
  assert_int_equal(gw_journal_downstream_mid(j, again, 0x0042, NOW + 10), m);
  /* IDs continue where they were */
  assert_int_equal(gw_journal_next_upstream_mid(j, again), (uint16_t)(next_up + 1));
  gw_journal_close(&j);
}

/* Fresh slots start at random IDs: a restarted gateway is not taken for its former self by a
 * peer's duplicate cache (RFC 7252 4.4; issue 11: 17767 at every start). */
static uint32_t first_ids_in_child(void) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    gw_journal_t *j = NULL;
    uint32_t ids = 0;
    if (gw_journal_open(NULL, 4, &j) == GW_OK) {
      uint32_t slot = gw_journal_claim(j, 7);
      ids = (uint32_t)gw_journal_next_upstream_mid(j, slot) << 16 |
            gw_journal_next_downstream_mid(j, slot);
    }
    _exit(write(fds[1], &ids, sizeof(ids)) == sizeof(ids) ? 0 : 1);
  }
  uint32_t ids = 0;
  assert_int_equal(read(fds[0], &ids, sizeof(ids)), sizeof(ids));
  int status;
  waitpid(pid, &status, 0);
  close(fds[0]);
  close(fds[1]);
  return ids;
}

static void test_fresh_ids_differ_per_process(void **state) {
  (void)state;
  uint32_t first = first_ids_in_child();
  bool differs = false;
  for (int i = 0; i < 7 && !differs; i++)
    differs = first_ids_in_child() != first; /* by chance equal: p = 2^-224 */
  assert_true(differs);
}

/* 65536 consecutive IDs are all distinct (an ID is not reused within EXCHANGE_LIFETIME). */
static void test_full_cycle(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(SLOTS);
  uint32_t slot = gw_journal_claim(j, 99);
  static uint8_t seen[65536];
  memset(seen, 0, sizeof(seen));
  for (unsigned i = 0; i < 65536; i++) {
    uint16_t mid = gw_journal_next_downstream_mid(j, slot);
    assert_int_equal(seen[mid], 0);
    seen[mid] = 1;
  }
  gw_journal_close(&j);
}

/* A burst longer than the ring: the newest GW_JOURNAL_UP_ENTRIES are kept. */
static void test_ring_keeps_the_newest(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(SLOTS);
  uint32_t slot = gw_journal_claim(j, 5);
  uint16_t ids[GW_JOURNAL_UP_ENTRIES + 8];
  for (uint16_t d = 0; d < GW_JOURNAL_UP_ENTRIES + 8; d++)
    ids[d] = gw_journal_upstream_mid(j, slot, (uint16_t)(500 + d), NOW);
  for (uint16_t d = 8; d < GW_JOURNAL_UP_ENTRIES + 8; d++)
    assert_int_equal(gw_journal_upstream_mid(j, slot, (uint16_t)(500 + d), NOW), ids[d]);
  /* the oldest are forgotten: asked again, they get new IDs */
  uint16_t fresh = gw_journal_upstream_mid(j, slot, 500, NOW);
  assert_int_not_equal(fresh, ids[0]);
  gw_journal_close(&j);
}

static void test_slots_claimed_released_and_full(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(SLOTS);
  uint32_t slots[SLOTS];
  for (uint64_t k = 0; k < SLOTS; k++) {
    slots[k] = gw_journal_claim(j, 1000 + k);
    assert_int_not_equal(slots[k], GW_JOURNAL_NO_SLOT);
    for (uint64_t i = 0; i < k; i++)
      assert_int_not_equal(slots[i], slots[k]);
  }
  assert_int_equal(gw_journal_claim(j, 5000), GW_JOURNAL_NO_SLOT);
  /* a device without a slot still gets IDs: random ones, nothing remembered */
  uint16_t a = gw_journal_upstream_mid(j, GW_JOURNAL_NO_SLOT, 7, NOW);
  uint16_t b = gw_journal_upstream_mid(j, GW_JOURNAL_NO_SLOT, 7, NOW);
  uint16_t c = gw_journal_next_downstream_mid(j, GW_JOURNAL_NO_SLOT);
  assert_false(a == b && b == c && c == gw_journal_downstream_mid(j, GW_JOURNAL_NO_SLOT, 7, NOW));
  assert_int_equal(gw_journal_claim(j, 1010), slots[10]); /* its own slot again */
  for (uint64_t k = 0; k < SLOTS; k += 2)
    gw_journal_release(j, slots[k]);
  for (uint64_t k = 1; k < SLOTS; k += 2) /* lookups survive the removals */
    assert_int_equal(gw_journal_claim(j, 1000 + k), slots[k]);
  assert_int_not_equal(gw_journal_claim(j, 5000), GW_JOURNAL_NO_SLOT);
  gw_journal_close(&j);
}

/* After a restart, slots of devices that were not restored are freed. */
static void test_unclaimed_slots_released(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(4);
  for (uint64_t k = 1; k <= 4; k++)
    gw_journal_claim(j, k);
  gw_journal_close(&j);
  j = open_journal(4);
  assert_int_equal(gw_journal_claim(j, 99), GW_JOURNAL_NO_SLOT); /* all four still held */
  uint32_t kept = gw_journal_claim(j, 2);
  gw_journal_release_unclaimed(j);
  assert_int_equal(gw_journal_claim(j, 2), kept);
  for (uint64_t k = 10; k < 13; k++)
    assert_int_not_equal(gw_journal_claim(j, k), GW_JOURNAL_NO_SLOT);
  gw_journal_close(&j);
}

/* A journal made for another max_devices (or another layout) is started afresh. */
static void test_other_size_starts_afresh(void **state) {
  (void)state;
  gw_journal_t *j = open_journal(8);
  uint32_t slot = gw_journal_claim(j, 42);
  gw_journal_upstream_mid(j, slot, 1, NOW);
  gw_journal_close(&j);
  j = open_journal(16);
  for (uint64_t k = 100; k < 116; k++) /* every slot is free */
    assert_int_not_equal(gw_journal_claim(j, k), GW_JOURNAL_NO_SLOT);
  gw_journal_close(&j);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_same_message_same_id),       T(test_downstream_known),
      T(test_survives_reopening),
      T(test_fresh_ids_differ_per_process), T(test_full_cycle),
      T(test_ring_keeps_the_newest),      T(test_slots_claimed_released_and_full),
      T(test_unclaimed_slots_released),   T(test_other_size_starts_afresh),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
