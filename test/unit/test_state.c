/* Unit tests of the state database (state.h) with a real SQLite file in a temporary directory:
 * what is saved comes back at the next open, forgetting a device takes its observations and
 * waiting requests with it, a directory held by another gateway is refused, and an unusable one
 * leaves the state in memory. Bindings are fake structs with a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "gw_error.h"
#include "state.h"

static char dir[64];
static const gw_binding_ops_t sms_ops = {.name = "sms"};
static gw_binding_t sms_binding = {.ops = &sms_ops};
static gw_device_table_t table;

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/test_state.XXXXXX");
  if (!mkdtemp(dir) || gw_device_table_init(&table, 64) != GW_OK)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  gw_device_table_clear(&table, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static gw_device_t *new_device(const char *address) {
  gw_baddr_t a;
  snprintf(a.text, sizeof(a.text), "%s", address);
  gw_device_t *dev = gw_device_add(&table, &sms_binding, &a, 4);
  assert_non_null(dev);
  snprintf(dev->endpoint, sizeof(dev->endpoint), "meter-%s", address + strlen(address) - 2);
  return dev;
}

/* What the restore callbacks saw. */
typedef struct {
  size_t devices, observations, downlinks;
  gw_state_device_t last;
  char address[64], location[64], endpoint[64], binding[16];
  uint8_t token[8];
  size_t token_len;
  char obs_path[64];
  gw_state_downlink_t downlink;
  uint8_t request[64];
  bool keep;
} seen_t;

static gw_device_t *on_device(void *arg, const gw_state_device_t *saved) {
  seen_t *seen = arg;
  seen->devices++;
  seen->last = *saved;
  snprintf(seen->address, sizeof(seen->address), "%s", saved->address);
  snprintf(seen->binding, sizeof(seen->binding), "%s", saved->binding);
  snprintf(seen->location, sizeof(seen->location), "%s", saved->location);
  snprintf(seen->endpoint, sizeof(seen->endpoint), "%s", saved->endpoint);
  return seen->keep ? new_device(saved->address) : NULL;
}

static void on_observation(void *arg, gw_device_t *dev, const uint8_t *token, size_t len,
                           const char *path) {
  (void)dev;
  seen_t *seen = arg;
  seen->observations++;
  memcpy(seen->token, token, len);
  seen->token_len = len;
  snprintf(seen->obs_path, sizeof(seen->obs_path), "%s", path);
}

static void on_downlink(void *arg, gw_device_t *dev, const gw_state_downlink_t *saved) {
  (void)dev;
  seen_t *seen = arg;
  seen->downlinks++;
  seen->downlink = *saved;
  memcpy(seen->request, saved->request, saved->request_len);
}

static size_t restore(seen_t *seen) {
  gw_state_t *st = NULL;
  assert_int_equal(gw_state_open(dir, 16, &st), GW_OK);
  gw_state_restore_t cb = {.arg = seen, .device = on_device, .observation = on_observation,
                           .downlink = on_downlink};
  size_t n = gw_state_restore(st, &cb);
  gw_state_close(&st);
  return n;
}

static void test_device_round_trip(void **state) {
  (void)state;
  gw_state_t *st = NULL;
  assert_int_equal(gw_state_open(dir, 16, &st), GW_OK);
  assert_true(gw_state_persistent(st));
  gw_device_t *dev = new_device("14155550125");
  dev->local_port = 40123;
  dev->upstream_key = 0xdeadbeef;
  dev->registered = true;
  snprintf(dev->location, sizeof(dev->location), "/rd/5a3f");
  snprintf(dev->device_params.endpoint, sizeof(dev->device_params.endpoint), "urn:imei:1");
  snprintf(dev->device_params.binding, sizeof(dev->device_params.binding), "UQ");
  snprintf(dev->device_params.lwm2m_version, sizeof(dev->device_params.lwm2m_version), "1.1");
  snprintf(dev->device_params.sms_number, sizeof(dev->device_params.sms_number), "+1415");
  dev->device_params.has_lifetime = true;
  dev->device_params.lifetime = 600;
  dev->device_params.queue_mode = true;
  dev->server_instance = 3;
  dev->queue_mode = true;
  dev->registered_at = 1700000000;
  gw_state_save_device(st, dev);
  assert_true(dev->state_id > 0);
  assert_int_equal(gw_state_commit(st), GW_OK);
  assert_int_equal(gw_state_commits(st), 1);
  gw_state_close(&st);

  seen_t seen = {0};
  assert_int_equal(restore(&seen), 0); /* on_device refused it: its row is dropped */
  assert_int_equal(seen.devices, 1);
  assert_string_equal(seen.address, "14155550125");
  assert_string_equal(seen.binding, "sms");
  assert_string_equal(seen.endpoint, "meter-25");
  assert_string_equal(seen.location, "/rd/5a3f");
  assert_int_equal(seen.last.local_port, 40123);
  assert_int_equal(seen.last.upstream_key, 0xdeadbeef);
  assert_true(seen.last.registered);
  assert_string_equal(seen.last.params.endpoint, "urn:imei:1");
  assert_string_equal(seen.last.params.binding, "UQ");
  assert_string_equal(seen.last.params.lwm2m_version, "1.1");
  assert_string_equal(seen.last.params.sms_number, "+1415");
  assert_true(seen.last.params.has_lifetime);
  assert_int_equal(seen.last.params.lifetime, 600);
  assert_true(seen.last.params.queue_mode);
  assert_int_equal(seen.last.server_instance, 3);
  assert_true(seen.last.queue_mode);
  assert_int_equal(seen.last.registered_at, 1700000000);
  seen_t again = {0};
  assert_int_equal(restore(&again), 0);
  assert_int_equal(again.devices, 0); /* dropped above */
}

static void test_observations_and_waiting_requests(void **state) {
  (void)state;
  gw_state_t *st = NULL;
  assert_int_equal(gw_state_open(dir, 16, &st), GW_OK);
  gw_device_t *dev = new_device("10.0.0.7:5683");
  gw_state_save_device(st, dev);
  gw_observation_t *o = gw_observation_add(dev, (const uint8_t *)"\x01\x02\x03", 3, "/3/0/13");
  gw_state_save_observation(st, dev, o);
  gw_downlink_xchg_t *x = gw_downlink_alloc(dev, true);
  static uint8_t request[] = {0x40, 0x01, 0x12, 0x34};
  x->request = malloc(sizeof(request));
  memcpy(x->request, request, sizeof(request));
  x->request_len = sizeof(request);
  x->server_mid = 0x7001;
  x->device_mid = 0x0042;
  x->server_type = GW_COAP_CON;
  x->token_len = 2;
  memcpy(x->token, "\xaa\xbb", 2);
  x->acked_upstream = true;
  x->observe_register = true;
  x->late = (gw_late_t){.resends_left = 3, .sent = true}; /* Appendix C, one copy sent */
  x->queue_seq = 77;
  snprintf(x->path, sizeof(x->path), "/3/0/0");
  gw_state_save_downlink(st, dev, x, 1800000000);
  gw_state_close(&st); /* close commits what is pending */

  seen_t seen = {.keep = true};
  assert_int_equal(restore(&seen), 1);
  assert_int_equal(seen.observations, 1);
  assert_int_equal(seen.token_len, 3);
  assert_memory_equal(seen.token, "\x01\x02\x03", 3);
  assert_string_equal(seen.obs_path, "/3/0/13");
  assert_int_equal(seen.downlinks, 1);
  assert_int_equal(seen.downlink.state, GW_DOWN_QUEUED);
  assert_int_equal(seen.downlink.server_mid, 0x7001);
  assert_int_equal(seen.downlink.device_mid, 0x0042);
  assert_int_equal(seen.downlink.server_type, GW_COAP_CON);
  assert_int_equal(seen.downlink.token_len, 2);
  assert_true(seen.downlink.acked_upstream);
  assert_true(seen.downlink.observe_register);
  assert_int_equal(seen.downlink.late.resends_left, 3);
  assert_true(seen.downlink.late.sent);
  assert_false(seen.downlink.late.acked);
  assert_false(seen.downlink.observe_cancel);
  assert_int_equal(seen.downlink.queue_seq, 77);
  assert_int_equal(seen.downlink.deadline_at, 1800000000);
  assert_int_equal(seen.downlink.request_len, sizeof(request));
  assert_memory_equal(seen.request, request, sizeof(request));

  /* answered, then the device forgotten: nothing of it is left */
  assert_int_equal(gw_state_open(dir, 16, &st), GW_OK);
  gw_device_t *restored = gw_device_find(&table, &sms_binding,
                                         &(gw_baddr_t){.text = "10.0.0.7:5683"});
  assert_non_null(restored);
  restored->state_id = seen.last.id;
  gw_state_forget_downlink(st, restored, 0x7001);
  gw_state_forget_observation(st, restored, (const uint8_t *)"\x01\x02\x03", 3);
  gw_state_commit(st);
  gw_state_close(&st);
  seen_t later = {.keep = false};
  restore(&later);
  assert_int_equal(later.devices, 1);
  assert_int_equal(later.observations + later.downlinks, 0);
}

static void test_forgetting_a_device_takes_its_rows(void **state) {
  (void)state;
  gw_state_t *st = NULL;
  assert_int_equal(gw_state_open(dir, 16, &st), GW_OK);
  gw_device_t *dev = new_device("10.0.0.8:5683");
  gw_state_save_device(st, dev);
  gw_observation_t *o = gw_observation_add(dev, (const uint8_t *)"\x09", 1, "/3/0/9");
  gw_state_save_observation(st, dev, o);
  gw_state_forget_device(st, dev);
  assert_int_equal(dev->state_id, 0);
  gw_state_close(&st);
  seen_t seen = {0};
  restore(&seen);
  assert_int_equal(seen.devices + seen.observations, 0);
}

static void test_directory_held_by_another_gateway(void **state) {
  (void)state;
  gw_state_t *first = NULL, *second = NULL;
  assert_int_equal(gw_state_open(dir, 16, &first), GW_OK);
  assert_int_equal(gw_state_open(dir, 16, &second), GW_ERR_IO);
  assert_null(second);
  gw_state_close(&first);
  assert_int_equal(gw_state_open(dir, 16, &second), GW_OK); /* free again */
  gw_state_close(&second);
}

static void test_unusable_directory_keeps_state_in_memory(void **state) {
  (void)state;
  char file[96];
  snprintf(file, sizeof(file), "%s/not-a-dir", dir);
  FILE *f = fopen(file, "w");
  fclose(f);
  gw_state_t *st = NULL;
  assert_int_equal(gw_state_open(file, 16, &st), GW_OK);
  assert_false(gw_state_persistent(st));
  gw_device_t *dev = new_device("10.0.0.9:5683");
  gw_state_save_device(st, dev); /* a no-op, not a crash */
  assert_int_equal(gw_state_commit(st), GW_OK);
  uint32_t slot = gw_journal_claim(gw_state_journal(st), 1);
  assert_int_not_equal(slot, GW_JOURNAL_NO_SLOT); /* message IDs still work, in memory */
  gw_state_close(&st);
  assert_int_equal(gw_state_open(NULL, 16, &st), GW_OK);
  assert_false(gw_state_persistent(st));
  gw_state_close(&st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_device_round_trip),
      T(test_observations_and_waiting_requests),
      T(test_forgetting_a_device_takes_its_rows),
      T(test_directory_held_by_another_gateway),
      T(test_unusable_directory_keeps_state_in_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
