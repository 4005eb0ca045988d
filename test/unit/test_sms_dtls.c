/* Unit tests of DTLS over SMS (sms/sms_dtls.c, LwM2M Transport 5.3.2.1, RFC 7925 Appendix A).
 *
 * Each simulated device is an in-process mbedtls DTLS 1.2 PSK client with its own BIO; the
 * "SMS network" is two queues of datagrams between the devices and the gateway's server, so a
 * test can drop, tamper with, count and measure every SMS. The gateway's event loop
 * (gw_loop_run_once) drives the server's retransmission timers with small timeouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>

#include "gw_error.h"
#include "gw_log.h"
#include "loop.h"
#include "sms_dtls.h"

#define MTU 140
#define ALICE "14155550125"
#define BOB "12125550178"
#define CAROL "4915112345678"

#define CCM8 MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8
#define GCM MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256
#define CBC MBEDTLS_TLS_PSK_WITH_AES_128_CBC_SHA256

/* ---- the SMS network: queues of datagrams ---- */

typedef struct dgram {
  struct dgram *next;
  char msisdn[SMS_DTLS_MSISDN_MAX + 1];
  size_t len;
  uint8_t data[];
} dgram_t;

typedef struct {
  dgram_t *head, *tail;
  size_t count;
} queue_t;

static void q_push(queue_t *q, const char *msisdn, const uint8_t *data, size_t len) {
  dgram_t *g = malloc(sizeof(*g) + len);
  assert_non_null(g);
  g->next = NULL;
  snprintf(g->msisdn, sizeof(g->msisdn), "%s", msisdn);
  g->len = len;
  memcpy(g->data, data, len);
  if (q->tail)
    q->tail->next = g;
  else
    q->head = g;
  q->tail = g;
  q->count++;
}

static dgram_t *q_pop(queue_t *q) {
  dgram_t *g = q->head;
  if (g) {
    q->head = g->next;
    if (!q->head)
      q->tail = NULL;
    q->count--;
  }
  return g;
}

static void q_clear(queue_t *q) {
  dgram_t *g;
  while ((g = q_pop(q)))
    free(g);
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Calls fn for each DTLS record of a datagram. */
static bool any_record(const uint8_t *d, size_t len, bool (*fn)(const uint8_t *rec, size_t len)) {
  for (size_t off = 0; off + 13 <= len; off += 13u + be16(d + off + 11))
    if (fn(d + off, len - off))
      return true;
  return false;
}

static bool rec_is_ccs(const uint8_t *r, size_t len) { return len && r[0] == 20; }
static bool rec_is_alert(const uint8_t *r, size_t len) { return len && r[0] == 21; }
static bool rec_is_appdata(const uint8_t *r, size_t len) { return len && r[0] == 23; }
/* The device's third flight: ClientKeyExchange (epoch 0) or anything encrypted. */
static bool rec_is_flight3(const uint8_t *r, size_t len) {
  return len > 13 && ((r[0] == 22 && be16(r + 3) == 0 && r[13] == 16) || be16(r + 3) != 0);
}

/* ---- devices: mbedtls DTLS clients ---- */

typedef struct world world_t;

typedef struct {
  world_t *w;
  char msisdn[SMS_DTLS_MSISDN_MAX + 1];
  int suites[4];
  mbedtls_ssl_config conf;
  mbedtls_ssl_context ssl;
  uint64_t t_start;
  uint32_t t_int, t_fin;
  queue_t inbox;
  bool established, retired;
  int error;
  uint8_t plain[2048];
  size_t plain_len;
  int plain_count;
  int tamper_next;    /* flip the last octet of the next application record sent */
  size_t sent;        /* datagrams (SMS) this device sent */
  uint8_t hello[512]; /* the last ClientHello it sent */
  size_t hello_len;
  bool flight3_seen;
  size_t server_sent_at_flight3; /* the gateway's datagram count when the device's last
                                    handshake flight left */
} client_t;

typedef struct {
  char msisdn[SMS_DTLS_MSISDN_MAX + 1];
  uint8_t data[256];
  size_t len;
} plain_t;

struct world {
  gw_loop_t *loop;
  sms_dtls_t *dtls;
  sms_dtls_conf_t conf;
  queue_t to_server;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  uint32_t client_min_ms, client_max_ms;
  /* what the gateway sent */
  size_t server_sent, server_sent_max, server_alerts;
  uint64_t server_sent_ms[256];
  uint8_t server_first_hs_type;
  int drop_server;     /* drop the next n datagrams from the gateway */
  int drop_server_ccs; /* drop the next n gateway datagrams that carry a ChangeCipherSpec */
  size_t server_ccs_sent;
  /* what the gateway decrypted */
  plain_t plain[32];
  size_t plain_count;
  bool echo, forget_on_plaintext;
  client_t *clients[8];
  size_t client_count;
};

static world_t *W; /* the world of the running test, for the fixtures */

static const struct {
  const char *msisdn, *identity;
  uint8_t key[16];
} psk_table[] = {
    {ALICE, "alice", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
    {BOB,
     "bob",
     {0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
      0x30}},
    {CAROL,
     "carol",
     {0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
      0x50}},
};

static client_t *active_client(world_t *w, const char *msisdn) {
  for (size_t i = w->client_count; i-- > 0;)
    if (!w->clients[i]->retired && strcmp(w->clients[i]->msisdn, msisdn) == 0)
      return w->clients[i];
  return NULL;
}

/* gateway callbacks */

static int on_send_datagram(void *arg, const char *msisdn, const uint8_t *data, size_t len) {
  world_t *w = arg;
  if (w->server_sent < 256)
    w->server_sent_ms[w->server_sent] = gw_now_ms();
  if (w->server_sent == 0 && len > 13)
    w->server_first_hs_type = data[13];
  w->server_sent++;
  if (len > w->server_sent_max)
    w->server_sent_max = len;
  if (any_record(data, len, rec_is_alert))
    w->server_alerts++;
  bool ccs = any_record(data, len, rec_is_ccs);
  if (ccs)
    w->server_ccs_sent++;
  if (w->drop_server > 0) {
    w->drop_server--;
    return GW_OK;
  }
  if (ccs && w->drop_server_ccs > 0) {
    w->drop_server_ccs--;
    return GW_OK;
  }
  client_t *c = active_client(w, msisdn);
  if (c)
    q_push(&c->inbox, msisdn, data, len);
  return GW_OK;
}

static void on_plaintext(void *arg, const char *msisdn, const uint8_t *data, size_t len) {
  world_t *w = arg;
  assert_true(len <= sizeof(w->plain[0].data));
  plain_t *p = &w->plain[w->plain_count++ % 32];
  snprintf(p->msisdn, sizeof(p->msisdn), "%s", msisdn);
  memcpy(p->data, data, len);
  p->len = len;
  if (w->echo)
    assert_int_equal(sms_dtls_write(w->dtls, msisdn, data, len), GW_OK);
  if (w->forget_on_plaintext)
    sms_dtls_forget(w->dtls, msisdn);
}

static bool on_psk_lookup(void *arg, const char *msisdn, const uint8_t *identity,
                          size_t identity_len, uint8_t *out_key, size_t *out_key_len) {
  (void)arg;
  assert_true(*out_key_len >= 16);
  for (size_t i = 0; i < sizeof(psk_table) / sizeof(psk_table[0]); i++)
    if (strcmp(psk_table[i].msisdn, msisdn) == 0 && strlen(psk_table[i].identity) == identity_len &&
        memcmp(psk_table[i].identity, identity, identity_len) == 0) {
      memcpy(out_key, psk_table[i].key, 16);
      *out_key_len = 16;
      return true;
    }
  return false;
}

/* device BIO and timer */

static int client_send(void *arg, const unsigned char *buf, size_t len) {
  client_t *c = arg;
  uint8_t copy[4096];
  assert_true(len <= sizeof(copy));
  memcpy(copy, buf, len);
  if (c->tamper_next && any_record(copy, len, rec_is_appdata)) {
    c->tamper_next--;
    copy[len - 1] ^= 0x40;
  }
  if (!c->flight3_seen && any_record(copy, len, rec_is_flight3)) {
    c->flight3_seen = true;
    c->server_sent_at_flight3 = c->w->server_sent;
  }
  if (len > 13 && copy[0] == 22 && be16(copy + 3) == 0 && copy[13] == 1 &&
      len <= sizeof(c->hello)) {
    memcpy(c->hello, copy, len);
    c->hello_len = len;
  }
  c->sent++;
  q_push(&c->w->to_server, c->msisdn, copy, len);
  return (int)len;
}

static int client_recv(void *arg, unsigned char *buf, size_t len) {
  client_t *c = arg;
  dgram_t *g = q_pop(&c->inbox);
  if (!g)
    return MBEDTLS_ERR_SSL_WANT_READ;
  assert_true(g->len <= len);
  memcpy(buf, g->data, g->len);
  int n = (int)g->len;
  free(g);
  return n;
}

static void client_set_timer(void *arg, uint32_t int_ms, uint32_t fin_ms) {
  client_t *c = arg;
  c->t_start = gw_now_ms();
  c->t_int = int_ms;
  c->t_fin = fin_ms;
}

static int client_get_timer(void *arg) {
  client_t *c = arg;
  if (c->t_fin == 0)
    return -1;
  uint64_t el = gw_now_ms() - c->t_start;
  return el >= c->t_fin ? 2 : el >= c->t_int ? 1 : 0;
}

static client_t *client_new_psk(world_t *w, const char *msisdn, const char *identity,
                                const uint8_t *key, const int *suites) {
  client_t *old = active_client(w, msisdn);
  if (old)
    old->retired = true; /* the phone at this number now holds the new device */
  client_t *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  c->w = w;
  snprintf(c->msisdn, sizeof(c->msisdn), "%s", msisdn);
  size_t n = 0;
  for (; suites[n] && n < 3; n++)
    c->suites[n] = suites[n];
  c->suites[n] = 0;
  mbedtls_ssl_config_init(&c->conf);
  mbedtls_ssl_init(&c->ssl);
  assert_int_equal(mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                               MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                               MBEDTLS_SSL_PRESET_DEFAULT),
                   0);
  mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &w->drbg);
  mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
  mbedtls_ssl_conf_handshake_timeout(&c->conf, w->client_min_ms, w->client_max_ms);
  assert_int_equal(
      mbedtls_ssl_conf_psk(&c->conf, key, 16, (const unsigned char *)identity, strlen(identity)),
      0);
  assert_int_equal(mbedtls_ssl_setup(&c->ssl, &c->conf), 0);
  mbedtls_ssl_set_bio(&c->ssl, c, client_send, client_recv, NULL);
  mbedtls_ssl_set_timer_cb(&c->ssl, c, client_set_timer, client_get_timer);
  mbedtls_ssl_set_mtu(&c->ssl, MTU);
  assert_true(w->client_count < 8);
  w->clients[w->client_count++] = c;
  return c;
}

static const uint8_t *key_of(const char *msisdn) {
  for (size_t i = 0; i < sizeof(psk_table) / sizeof(psk_table[0]); i++)
    if (strcmp(psk_table[i].msisdn, msisdn) == 0)
      return psk_table[i].key;
  fail();
  return NULL;
}

static const char *identity_of(const char *msisdn) {
  for (size_t i = 0; i < sizeof(psk_table) / sizeof(psk_table[0]); i++)
    if (strcmp(psk_table[i].msisdn, msisdn) == 0)
      return psk_table[i].identity;
  fail();
  return NULL;
}

static client_t *client_new(world_t *w, const char *msisdn, const int *suites) {
  return client_new_psk(w, msisdn, identity_of(msisdn), key_of(msisdn), suites);
}

static const int ALL_SUITES[] = {CCM8, GCM, CBC, 0};
static const int CCM8_ONLY[] = {CCM8, 0};

static void client_free(client_t *c) {
  mbedtls_ssl_free(&c->ssl);
  mbedtls_ssl_config_free(&c->conf);
  q_clear(&c->inbox);
  free(c);
}

/* One step of a device: handshake or read what arrived. true when something happened. */
static bool client_step(client_t *c) {
  size_t before = c->inbox.count;
  bool was = c->established;
  if (!c->established && !c->error) {
    int ret = mbedtls_ssl_handshake(&c->ssl);
    if (ret == 0)
      c->established = true;
    else if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
      c->error = ret;
  }
  while (c->established) {
    uint8_t buf[2048];
    int ret = mbedtls_ssl_read(&c->ssl, buf, sizeof(buf));
    if (ret <= 0)
      break;
    memcpy(c->plain, buf, (size_t)ret);
    c->plain_len = (size_t)ret;
    c->plain_count++;
  }
  return c->inbox.count != before || was != c->established;
}

static void client_write(client_t *c, const void *data, size_t len) {
  assert_int_equal(mbedtls_ssl_write(&c->ssl, data, len), (int)len);
}

/* ---- driving the world ---- */

static void pump(world_t *w) {
  for (int guard = 0; guard < 10000; guard++) {
    bool progress = false;
    dgram_t *g;
    while ((g = q_pop(&w->to_server))) {
      sms_dtls_input(w->dtls, g->msisdn, g->data, g->len);
      free(g);
      progress = true;
    }
    for (size_t i = 0; i < w->client_count; i++)
      if (!w->clients[i]->retired && client_step(w->clients[i]))
        progress = true;
    if (!progress && w->to_server.count == 0)
      return;
  }
  fail_msg("the world does not settle");
}

/* Runs the network and the loop for ms milliseconds. */
static void run_for(world_t *w, uint64_t ms) {
  uint64_t deadline = gw_now_ms() + ms;
  do {
    pump(w);
    gw_loop_run_once(w->loop, 1);
    pump(w);
  } while (gw_now_ms() < deadline);
}

static bool both_established(world_t *w, client_t *c) {
  return c->established && sms_dtls_established(w->dtls, c->msisdn);
}

static bool connect_client(world_t *w, client_t *c, uint64_t ms) {
  uint64_t deadline = gw_now_ms() + ms;
  do {
    pump(w);
    if (both_established(w, c))
      return true;
    gw_loop_run_once(w->loop, 1);
  } while (gw_now_ms() < deadline && !c->error);
  pump(w);
  return both_established(w, c);
}

static sms_dtls_conf_t test_conf(void) {
  sms_dtls_conf_t conf;
  sms_dtls_conf_default(&conf);
  conf.handshake_min_ms = 100;
  conf.handshake_max_ms = 800;
  return conf;
}

static world_t *world_new(const sms_dtls_conf_t *conf) {
  world_t *w = calloc(1, sizeof(*w));
  assert_non_null(w);
  w->conf = *conf;
  w->client_min_ms = 5000; /* the gateway's timer (100 ms) is the one under test */
  w->client_max_ms = 20000;
  mbedtls_entropy_init(&w->entropy);
  mbedtls_ctr_drbg_init(&w->drbg);
  assert_int_equal(mbedtls_ctr_drbg_seed(&w->drbg, mbedtls_entropy_func, &w->entropy,
                                         (const unsigned char *)"test", 4),
                   0);
  assert_int_equal(gw_loop_new(&w->loop), GW_OK);
  sms_dtls_callbacks_t cb = {.arg = w,
                             .send_datagram = on_send_datagram,
                             .on_plaintext = on_plaintext,
                             .psk_lookup = on_psk_lookup};
  assert_int_equal(sms_dtls_new(w->loop, conf, &cb, &w->dtls), GW_OK);
  W = w;
  return w;
}

static void world_free(world_t *w) {
  /* every SMS the gateway sent fitted the mtu, and none was an alert (Transport 5.3.2) */
  assert_true(w->server_sent_max <= w->conf.mtu);
  assert_int_equal(w->server_alerts, 0);
  sms_dtls_free(&w->dtls);
  assert_null(w->dtls);
  for (size_t i = 0; i < w->client_count; i++)
    client_free(w->clients[i]);
  q_clear(&w->to_server);
  gw_loop_free(&w->loop);
  mbedtls_ctr_drbg_free(&w->drbg);
  mbedtls_entropy_free(&w->entropy);
  free(w);
  W = NULL;
}

static const sms_dtls_counters_t *counters(world_t *w) { return sms_dtls_counters(w->dtls); }

static size_t device_sent(world_t *w) {
  size_t n = 0;
  for (size_t i = 0; i < w->client_count; i++)
    n += w->clients[i]->sent;
  return n;
}

/* A CoAP message of len octets (a POST /rd with a token, then payload). */
static void coap_message(uint8_t *out, size_t len, uint8_t seed) {
  static const uint8_t head[] = {0x48, 0x02, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 0xb2, 'r', 'd'};
  for (size_t i = 0; i < len; i++)
    out[i] = i < sizeof(head) ? head[i] : (uint8_t)(seed + i);
}

/* The device sends a message and the gateway hands it up; the gateway answers and the device
 * gets it. */
static void exchange(world_t *w, client_t *c, size_t up_len, size_t down_len) {
  uint8_t up[256], down[256];
  coap_message(up, up_len, 7);
  coap_message(down, down_len, 99);
  size_t before = w->plain_count;
  client_write(c, up, up_len);
  pump(w);
  assert_int_equal(w->plain_count, before + 1);
  const plain_t *p = &w->plain[before % 32];
  assert_string_equal(p->msisdn, c->msisdn);
  assert_int_equal(p->len, up_len);
  assert_memory_equal(p->data, up, up_len);
  int got = c->plain_count;
  assert_int_equal(sms_dtls_write(w->dtls, c->msisdn, down, down_len), GW_OK);
  pump(w);
  assert_int_equal(c->plain_count, got + 1);
  assert_int_equal(c->plain_len, down_len);
  assert_memory_equal(c->plain, down, down_len);
}

static int teardown(void **state) {
  (void)state;
  if (W)
    world_free(W);
  return 0;
}

/* ---- tests ---- */

static void test_handshake_ccm8_and_data(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  assert_string_equal(mbedtls_ssl_get_ciphersuite(&c->ssl), "TLS-PSK-WITH-AES-128-CCM-8");
  assert_int_equal(counters(w)->handshakes, 1);
  assert_int_equal(counters(w)->resumed, 0);
  assert_int_equal(counters(w)->hello_verify, 1);
  assert_int_equal(counters(w)->failed_handshakes, 0);
  /* Transport 5.3.2.1.1: 13 header + 8 nonce + 8 ICV leave 111 of 140 octets for CoAP */
  assert_int_equal(sms_dtls_max_plaintext(w->dtls, ALICE), 111);
  assert_true(w->server_sent_max <= MTU);
  exchange(w, c, 40, 111);
  exchange(w, c, 111, 4);
  assert_int_equal(counters(w)->plaintext_in, 2);
  assert_int_equal(counters(w)->plaintext_out, 2);
  assert_int_equal(counters(w)->bad_records, 0);
  assert_true(w->server_sent_max <= MTU);
  uint8_t big[112];
  coap_message(big, sizeof(big), 1);
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, big, sizeof(big)), GW_ERR_TOOBIG);
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, big, 0), GW_ERR_INVAL);
}

static void test_suites(void **state) {
  (void)state;
  static const struct {
    int offer[4];
    const char *chosen;
  } cases[] = {
      {{CBC, GCM, CCM8, 0}, "TLS-PSK-WITH-AES-128-CCM-8"}, /* the gateway's preference */
      {{GCM, 0}, "TLS-PSK-WITH-AES-128-GCM-SHA256"},
      {{CBC, 0}, "TLS-PSK-WITH-AES-128-CBC-SHA256"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sms_dtls_conf_t conf = test_conf();
    world_t *w = world_new(&conf);
    client_t *c = client_new(w, BOB, cases[i].offer);
    assert_true(connect_client(w, c, 3000));
    assert_string_equal(mbedtls_ssl_get_ciphersuite(&c->ssl), cases[i].chosen);
    size_t max = sms_dtls_max_plaintext(w->dtls, BOB);
    assert_true(max >= MTU - SMS_DTLS_OVERHEAD_MAX && max <= 111);
    exchange(w, c, max, max);
    world_free(w);
  }
}

/* Counts the SMS of a full PSK handshake (device's ClientHello to both sides established). */
static void count_handshake(bool cookies, size_t mtu, size_t *out_up, size_t *out_down,
                            size_t *out_largest) {
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = cookies;
  conf.mtu = mtu;
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  /* mbedtls does not take a fragmented ClientHello: the device keeps one SMS at least */
  mbedtls_ssl_set_mtu(&c->ssl, (uint16_t)(mtu < MTU ? MTU : mtu));
  assert_true(connect_client(w, c, 3000));
  *out_up = device_sent(w);
  *out_down = w->server_sent;
  *out_largest = w->server_sent_max;
  /* the gateway's first answer: HelloVerifyRequest (3) or ServerHello (2) */
  assert_int_equal(w->server_first_hs_type, cookies ? 3 : 2);
  assert_int_equal(counters(w)->hello_verify, cookies ? 1 : 0);
  assert_int_equal(counters(w)->datagrams_out, w->server_sent);
  assert_int_equal(counters(w)->datagrams_in, device_sent(w));
  exchange(w, c, 20, 20);
  world_free(w);
}

static void test_handshake_datagram_counts(void **state) {
  (void)state;
  size_t up, down, up_c, down_c, up_big, down_big, up_frag, down_frag, largest, largest_c,
      largest_big, largest_frag;
  count_handshake(false, MTU, &up, &down, &largest);
  count_handshake(true, MTU, &up_c, &down_c, &largest_c);
  count_handshake(true, 1000, &up_big, &down_big, &largest_big);
  count_handshake(true, 64, &up_frag, &down_frag, &largest_frag);
  print_message("full PSK handshake, AES_128_CCM_8, mtu 140: cookies off %zu SMS (%zu up, %zu "
                "down, largest from the gateway %zu octets), cookies on %zu SMS (%zu up, %zu "
                "down, largest %zu); mtu 1000: %zu datagrams (largest %zu); gateway mtu 64: "
                "%zu datagrams (%zu down, largest %zu)\n",
                up + down, up, down, largest, up_c + down_c, up_c, down_c, largest_c,
                up_big + down_big, largest_big, up_frag + down_frag, down_frag, largest_frag);
  /* at mtu 64 the ServerHello (about 110 octets) is fragmented */
  assert_true(largest_frag <= 64);
  assert_true(down_frag > down_c);
  assert_int_equal(up_c + down_c, up + down + 2); /* ClientHello and HelloVerifyRequest more */
  assert_true(up + down <= 8);
  assert_true(up_big + down_big <= up_c + down_c);
}

/* Transport 5.3.2: no reply to traffic that is not correctly protected. */
static void check_silent_failure(world_t *w, client_t *c) {
  run_for(w, 1200); /* several of the gateway's retransmission periods */
  assert_false(c->established);
  assert_false(sms_dtls_established(w->dtls, c->msisdn));
  assert_int_equal(counters(w)->failed_handshakes, 1);
  assert_int_equal(counters(w)->handshakes, 0);
  assert_true(c->flight3_seen);
  assert_int_equal(w->server_sent, c->server_sent_at_flight3);
  assert_int_equal(sms_dtls_peer_count(w->dtls), 0);
}

static void test_wrong_psk(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  gw_log_level_t level = gw_log_get_level();
  gw_log_set_level(GW_LOG_DEBUG); /* the debug lines with mbedtls' error text run too */
  uint8_t wrong[16];
  memcpy(wrong, key_of(ALICE), 16);
  wrong[15] ^= 1;
  client_t *c = client_new_psk(w, ALICE, "alice", wrong, ALL_SUITES);
  check_silent_failure(w, c);
  gw_log_set_level(level);
}

static void test_unknown_identity(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  world_t *w = world_new(&conf);
  /* bob's identity and key, from alice's number: psk_lookup refuses the pair */
  client_t *c = client_new_psk(w, ALICE, "bob", key_of(BOB), CCM8_ONLY);
  check_silent_failure(w, c);
}

static void test_tampered_record(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  exchange(w, c, 30, 30);
  size_t sent = w->server_sent, plain = w->plain_count;
  c->tamper_next = 1;
  uint8_t msg[50];
  coap_message(msg, sizeof(msg), 3);
  client_write(c, msg, sizeof(msg));
  run_for(w, 50);
  assert_int_equal(c->tamper_next, 0);
  assert_int_equal(w->plain_count, plain);
  assert_int_equal(counters(w)->bad_records, 1);
  assert_int_equal(w->server_sent, sent); /* no reply */
  /* a replay of a good record is dropped too; the session lives on */
  assert_true(sms_dtls_established(w->dtls, ALICE));
  exchange(w, c, 30, 30);
}

static void test_replayed_record(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, BOB, ALL_SUITES);
  assert_true(connect_client(w, c, 3000));
  uint8_t msg[30];
  coap_message(msg, sizeof(msg), 5);
  client_write(c, msg, sizeof(msg));
  assert_int_equal(w->to_server.count, 1);
  dgram_t *g = w->to_server.head;
  uint8_t copy[256];
  size_t len = g->len;
  memcpy(copy, g->data, len);
  pump(w);
  assert_int_equal(w->plain_count, 1);
  sms_dtls_input(w->dtls, BOB, copy, len);
  assert_int_equal(w->plain_count, 1);
  assert_int_equal(counters(w)->bad_records, 1);
  exchange(w, c, 10, 10);
}

static void test_cookie_exchange_is_stateless(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.max_sessions = 1;
  world_t *w = world_new(&conf);
  client_t *a = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, a, 3000));
  /* a ClientHello without a cookie from another number: answered, but it takes no slot and
   * evicts nobody */
  client_t *b = client_new(w, BOB, CCM8_ONLY);
  client_step(b);
  dgram_t *g = q_pop(&w->to_server);
  assert_non_null(g);
  size_t sent = w->server_sent;
  sms_dtls_input(w->dtls, g->msisdn, g->data, g->len);
  free(g);
  assert_int_equal(w->server_sent, sent + 1);
  assert_int_equal(counters(w)->hello_verify, 2);
  assert_int_equal(sms_dtls_peer_count(w->dtls), 1);
  assert_true(sms_dtls_established(w->dtls, ALICE));
  assert_int_equal(counters(w)->evicted, 0);
  /* the real handshake does take the one slot */
  assert_true(connect_client(w, b, 3000));
  assert_int_equal(counters(w)->evicted, 1);
  assert_false(sms_dtls_established(w->dtls, ALICE));
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, (const uint8_t *)"x", 1), GW_ERR_NOTFOUND);
}

static void test_cookies_off(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, CAROL, ALL_SUITES);
  assert_true(connect_client(w, c, 3000));
  assert_int_equal(counters(w)->hello_verify, 0);
  assert_int_equal(w->server_first_hs_type, 2);
  exchange(w, c, 60, 60);
}

static void test_lost_flight_is_retransmitted(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  world_t *w = world_new(&conf);
  w->drop_server = 1; /* the first SMS of the gateway's ServerHello flight is lost */
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  uint64_t start = gw_now_ms();
  assert_true(connect_client(w, c, 3000));
  /* the device's own timer (5 s) never ran out: the gateway's did */
  assert_true(gw_now_ms() - start < w->client_min_ms);
  assert_int_equal(c->sent, 2); /* ClientHello once, then its last flight */
  size_t i = 1;
  while (i < w->server_sent && w->server_sent_ms[i] - w->server_sent_ms[0] < 50)
    i++;
  assert_true(i < w->server_sent);
  assert_true(w->server_sent_ms[i] - w->server_sent_ms[0] >= conf.handshake_min_ms);
  exchange(w, c, 10, 10);
}

static void test_lost_last_flight(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  world_t *w = world_new(&conf);
  w->client_min_ms = 200;
  w->drop_server_ccs = 1; /* the gateway's ChangeCipherSpec and Finished are lost */
  client_t *c = client_new(w, ALICE, ALL_SUITES);
  assert_true(connect_client(w, c, 3000));
  assert_int_equal(w->server_ccs_sent, 2); /* resent when the device repeated its flight */
  assert_int_equal(counters(w)->handshakes, 1);
  exchange(w, c, 10, 10);
}

static void save_session(client_t *c, mbedtls_ssl_session *out) {
  mbedtls_ssl_session_init(out);
  assert_int_equal(mbedtls_ssl_get_session(&c->ssl, out), 0);
}

static void test_resumption(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *c1 = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c1, 3000));
  exchange(w, c1, 20, 20);
  mbedtls_ssl_session saved;
  save_session(c1, &saved);
  size_t up = device_sent(w), down = w->server_sent;
  /* the device sleeps, wakes up and resumes instead of a full handshake */
  client_t *c2 = client_new(w, ALICE, CCM8_ONLY);
  assert_int_equal(mbedtls_ssl_set_session(&c2->ssl, &saved), 0);
  assert_true(connect_client(w, c2, 3000));
  assert_int_equal(counters(w)->handshakes, 2);
  assert_int_equal(counters(w)->resumed, 1);
  assert_int_equal(counters(w)->reconnects, 1);
  print_message("resumption with cookies, mtu 140: %zu SMS (%zu up, %zu down)\n",
                device_sent(w) - up + w->server_sent - down, device_sent(w) - up,
                w->server_sent - down);
  exchange(w, c2, 20, 20);
  mbedtls_ssl_session_free(&saved);
}

static void test_resumption_after_idle_timeout(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  conf.idle_timeout_ms = 150;
  world_t *w = world_new(&conf);
  client_t *c1 = client_new(w, BOB, ALL_SUITES);
  assert_true(connect_client(w, c1, 3000));
  mbedtls_ssl_session saved;
  save_session(c1, &saved);
  run_for(w, 300);
  assert_int_equal(counters(w)->expired, 1);
  assert_false(sms_dtls_established(w->dtls, BOB));
  assert_int_equal(sms_dtls_peer_count(w->dtls), 0);
  size_t up = device_sent(w), down = w->server_sent;
  client_t *c2 = client_new(w, BOB, ALL_SUITES);
  assert_int_equal(mbedtls_ssl_set_session(&c2->ssl, &saved), 0);
  assert_true(connect_client(w, c2, 3000));
  assert_int_equal(counters(w)->resumed, 1);
  assert_int_equal(counters(w)->reconnects, 0);
  print_message("resumption without cookies, mtu 140: %zu SMS (%zu up, %zu down)\n",
                device_sent(w) - up + w->server_sent - down, device_sent(w) - up,
                w->server_sent - down);
  exchange(w, c2, 20, 20);
  mbedtls_ssl_session_free(&saved);
}

static void test_resumption_is_bound_to_the_number(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *a = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, a, 3000));
  mbedtls_ssl_session saved;
  save_session(a, &saved);
  /* alice's session offered from bob's number: a full handshake with bob's PSK instead */
  client_t *b = client_new(w, BOB, CCM8_ONLY);
  assert_int_equal(mbedtls_ssl_set_session(&b->ssl, &saved), 0);
  assert_true(connect_client(w, b, 3000));
  assert_int_equal(counters(w)->handshakes, 2);
  assert_int_equal(counters(w)->resumed, 0);
  exchange(w, b, 20, 20);
  exchange(w, a, 20, 20);
  mbedtls_ssl_session_free(&saved);
}

static void test_forget(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *c1 = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c1, 3000));
  mbedtls_ssl_session saved;
  save_session(c1, &saved);
  sms_dtls_forget(w->dtls, ALICE);
  assert_false(sms_dtls_established(w->dtls, ALICE));
  assert_int_equal(sms_dtls_max_plaintext(w->dtls, ALICE), 0);
  /* no session any more: the device's record is dropped unanswered */
  size_t sent = w->server_sent;
  client_write(c1, "hello", 5);
  pump(w);
  assert_int_equal(counters(w)->no_session, 1);
  assert_int_equal(w->server_sent, sent);
  /* nor a resumption entry: a full handshake */
  client_t *c2 = client_new(w, ALICE, CCM8_ONLY);
  assert_int_equal(mbedtls_ssl_set_session(&c2->ssl, &saved), 0);
  assert_true(connect_client(w, c2, 3000));
  assert_int_equal(counters(w)->resumed, 0);
  assert_int_equal(counters(w)->handshakes, 2);
  mbedtls_ssl_session_free(&saved);
}

static void test_two_numbers(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *a = client_new(w, ALICE, CCM8_ONLY);
  client_t *b = client_new(w, BOB, ALL_SUITES);
  /* both handshakes run interleaved */
  uint64_t deadline = gw_now_ms() + 3000;
  while (!(both_established(w, a) && both_established(w, b)) && gw_now_ms() < deadline) {
    pump(w);
    gw_loop_run_once(w->loop, 1);
  }
  assert_true(both_established(w, a) && both_established(w, b));
  assert_int_equal(sms_dtls_peer_count(w->dtls), 2);
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, (const uint8_t *)"to-alice", 8), GW_OK);
  assert_int_equal(sms_dtls_write(w->dtls, BOB, (const uint8_t *)"to-bob", 6), GW_OK);
  client_write(b, "from-bob", 8);
  client_write(a, "from-alice", 10);
  pump(w);
  assert_int_equal(a->plain_count, 1);
  assert_memory_equal(a->plain, "to-alice", 8);
  assert_int_equal(b->plain_count, 1);
  assert_memory_equal(b->plain, "to-bob", 6);
  assert_int_equal(w->plain_count, 2);
  for (size_t i = 0; i < 2; i++) {
    const plain_t *p = &w->plain[i];
    if (strcmp(p->msisdn, ALICE) == 0)
      assert_memory_equal(p->data, "from-alice", 10);
    else
      assert_memory_equal(p->data, "from-bob", 8);
  }
  /* a record of alice's session delivered as if from bob is not bob's */
  client_write(a, "spoof", 5);
  dgram_t *g = q_pop(&w->to_server);
  sms_dtls_input(w->dtls, BOB, g->data, g->len);
  free(g);
  assert_int_equal(w->plain_count, 2);
  assert_int_equal(counters(w)->bad_records, 1);
  exchange(w, a, 10, 10);
  exchange(w, b, 10, 10);
}

static void test_write_without_session(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  world_t *w = world_new(&conf);
  const uint8_t msg[] = {0x40, 0x01, 0x00, 0x01};
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, msg, sizeof(msg)), GW_ERR_NOTFOUND);
  assert_false(sms_dtls_established(w->dtls, ALICE));
  /* during the handshake */
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  client_step(c);
  dgram_t *g = q_pop(&w->to_server);
  sms_dtls_input(w->dtls, g->msisdn, g->data, g->len);
  free(g);
  assert_int_equal(sms_dtls_peer_count(w->dtls), 1);
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, msg, sizeof(msg)), GW_ERR_NOTFOUND);
  assert_int_equal(counters(w)->write_no_session, 2);
  assert_true(connect_client(w, c, 3000));
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, msg, sizeof(msg)), GW_OK);
}

static void rehandshake(bool cookies) {
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = cookies;
  world_t *w = world_new(&conf);
  client_t *old = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, old, 3000));
  exchange(w, old, 20, 20);
  /* the device reboots: a new ClientHello, no session to resume */
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  client_step(c);
  dgram_t *g = q_pop(&w->to_server);
  sms_dtls_input(w->dtls, g->msisdn, g->data, g->len);
  free(g);
  if (cookies) {
    /* RFC 6347 4.2.8: answered with a HelloVerifyRequest, the session stays until the
     * device proves it is at this number */
    assert_int_equal(counters(w)->hello_verify, 2);
    assert_true(sms_dtls_established(w->dtls, ALICE));
    size_t plain = w->plain_count;
    client_write(old, "still", 5);
    pump(w);
    assert_int_equal(w->plain_count, plain + 1);
  }
  assert_true(connect_client(w, c, 3000));
  assert_int_equal(counters(w)->reconnects, 1);
  assert_int_equal(counters(w)->handshakes, 2);
  assert_int_equal(counters(w)->resumed, 0);
  assert_int_equal(counters(w)->hello_verify, cookies ? 2 : 0); /* no extra round trip */
  assert_int_equal(sms_dtls_peer_count(w->dtls), 1);
  /* the old session is gone: its records are dropped */
  size_t plain = w->plain_count, bad = counters(w)->bad_records;
  client_write(old, "stale", 5);
  pump(w);
  assert_int_equal(w->plain_count, plain);
  assert_int_equal(counters(w)->bad_records, bad + 1);
  exchange(w, c, 30, 30);
  world_free(w);
}

static void test_rehandshake_cookies_on(void **state) {
  (void)state;
  rehandshake(true);
}

static void test_rehandshake_cookies_off(void **state) {
  (void)state;
  rehandshake(false);
}

/* SMS may come late and twice: a copy of the ClientHello a session grew from changes nothing. */
static void stale_hello(bool cookies) {
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = cookies;
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  exchange(w, c, 10, 10);
  size_t sent = w->server_sent;
  assert_true(c->hello_len > 0);
  sms_dtls_input(w->dtls, ALICE, c->hello, c->hello_len);
  pump(w);
  assert_int_equal(w->server_sent, sent);
  assert_int_equal(counters(w)->reconnects, 0);
  assert_true(sms_dtls_established(w->dtls, ALICE));
  exchange(w, c, 10, 10);
  world_free(w);
}

static void test_stale_client_hello(void **state) {
  (void)state;
  stale_hello(true);
  stale_hello(false);
}

static void test_rehandshake_after_hibernation(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.hibernate_after_ms = 20;
  world_t *w = world_new(&conf);
  client_t *old = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, old, 3000));
  exchange(w, old, 10, 10);
  run_for(w, 80);
  assert_int_equal(sms_dtls_live_count(w->dtls), 0);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  assert_int_equal(counters(w)->reconnects, 1);
  assert_int_equal(counters(w)->hello_verify, 2);
  exchange(w, c, 10, 10);
  /* records that wake a hibernated session for nothing let it sleep again */
  run_for(w, 80);
  assert_int_equal(sms_dtls_live_count(w->dtls), 0);
  uint8_t junk[40] = {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 27};
  sms_dtls_input(w->dtls, ALICE, junk, sizeof(junk));
  assert_int_equal(sms_dtls_live_count(w->dtls), 1);
  run_for(w, 20);
  assert_int_equal(sms_dtls_live_count(w->dtls), 0);
  exchange(w, c, 10, 10);
}

static void test_new_client_hello_during_handshake(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  world_t *w = world_new(&conf);
  client_t *first = client_new(w, ALICE, CCM8_ONLY);
  client_step(first);
  dgram_t *g = q_pop(&w->to_server);
  sms_dtls_input(w->dtls, g->msisdn, g->data, g->len);
  free(g);
  assert_int_equal(w->server_sent, 1); /* answered; the device gives up and starts over */
  first->retired = true;
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  assert_int_equal(counters(w)->handshakes, 1);
  assert_int_equal(counters(w)->failed_handshakes, 0);
  exchange(w, c, 10, 10);
}

static void test_handshake_timeout(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.cookies = false;
  conf.handshake_max_ms = 400;
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  client_step(c);
  c->retired = true; /* the device vanishes after its ClientHello */
  size_t first_flight = 0;
  pump(w);
  first_flight = w->server_sent;
  assert_true(first_flight >= 1);
  run_for(w, 1200);
  /* retransmitted after 100 ms and 200 ms more; given up when the doubled timer reached the
   * 400 ms cap */
  assert_int_equal(w->server_sent, first_flight * 3);
  assert_int_equal(counters(w)->failed_handshakes, 1);
  assert_int_equal(sms_dtls_peer_count(w->dtls), 0);
  assert_int_equal(sms_dtls_live_count(w->dtls), 0);
}

static void test_hibernation(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  conf.hibernate_after_ms = 50;
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  exchange(w, c, 20, 20); /* the device's first record ends the final-flight wait */
  run_for(w, 150);
  assert_int_equal(counters(w)->hibernated, 1);
  assert_int_equal(sms_dtls_live_count(w->dtls), 0);
  assert_int_equal(sms_dtls_peer_count(w->dtls), 1);
  assert_true(sms_dtls_established(w->dtls, ALICE));
  assert_int_equal(sms_dtls_max_plaintext(w->dtls, ALICE), 111);
  /* woken by a write, then by a datagram */
  assert_int_equal(sms_dtls_write(w->dtls, ALICE, (const uint8_t *)"wake", 4), GW_OK);
  pump(w);
  assert_int_equal(c->plain_count, 2);
  assert_memory_equal(c->plain, "wake", 4);
  run_for(w, 150);
  assert_int_equal(counters(w)->hibernated, 2);
  exchange(w, c, 30, 30);
  assert_int_equal(sms_dtls_live_count(w->dtls), 1);
  /* CBC sessions cannot be serialised: they stay live */
  client_t *b = client_new(w, BOB, (const int[]){CBC, 0});
  assert_true(connect_client(w, b, 3000));
  exchange(w, b, 20, 20);
  run_for(w, 150);
  assert_int_equal(sms_dtls_live_count(w->dtls), 1);
  exchange(w, b, 20, 20);
  exchange(w, c, 20, 20);
}

static void test_garbage(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  /* from a number without a session: dropped, counted, unanswered */
  const uint8_t appdata[] = {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 3, 1, 2, 3};
  sms_dtls_input(w->dtls, CAROL, appdata, sizeof(appdata));
  const uint8_t short_hello[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 1, 0, 0};
  sms_dtls_input(w->dtls, CAROL, short_hello, sizeof(short_hello));
  sms_dtls_input(w->dtls, CAROL, appdata, 5);
  sms_dtls_input(w->dtls, "", appdata, sizeof(appdata));
  char long_number[64];
  memset(long_number, '1', sizeof(long_number) - 1);
  long_number[63] = '\0';
  sms_dtls_input(w->dtls, long_number, short_hello, sizeof(short_hello));
  assert_int_equal(counters(w)->no_session, 5);
  assert_int_equal(w->server_sent, 0);
  assert_int_equal(sms_dtls_peer_count(w->dtls), 0);
  /* on a session: random records never end it nor get an answer */
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  exchange(w, c, 10, 10);
  size_t sent = w->server_sent, plain = w->plain_count;
  uint32_t x = 12345;
  for (int i = 0; i < 300; i++) {
    uint8_t junk[160];
    size_t len = 1 + (size_t)i % sizeof(junk);
    for (size_t k = 0; k < len; k++) {
      x = x * 1103515245u + 12345u;
      junk[k] = (uint8_t)(x >> 16);
    }
    if (i % 3 == 0 && len > 13) { /* well-formed headers of the session's epoch */
      junk[0] = 23, junk[1] = 0xfe, junk[2] = 0xfd, junk[3] = 0, junk[4] = 1;
      junk[11] = (uint8_t)((len - 13) >> 8), junk[12] = (uint8_t)(len - 13);
    }
    sms_dtls_input(w->dtls, ALICE, junk, len);
  }
  assert_true(counters(w)->bad_records >= 100);
  assert_int_equal(w->server_sent, sent);
  assert_int_equal(w->plain_count, plain);
  assert_true(sms_dtls_established(w->dtls, ALICE));
  exchange(w, c, 10, 10);
}

static void test_callbacks_may_write_and_forget(void **state) {
  (void)state;
  sms_dtls_conf_t conf = test_conf();
  world_t *w = world_new(&conf);
  client_t *c = client_new(w, ALICE, CCM8_ONLY);
  assert_true(connect_client(w, c, 3000));
  w->echo = true;
  client_write(c, "ping", 4);
  pump(w);
  assert_int_equal(c->plain_count, 1);
  assert_memory_equal(c->plain, "ping", 4);
  w->forget_on_plaintext = true;
  client_write(c, "bye", 3);
  client_write(c, "more", 4); /* after the forget: no session */
  pump(w);
  assert_int_equal(c->plain_count, 2);
  assert_false(sms_dtls_established(w->dtls, ALICE));
  assert_int_equal(sms_dtls_peer_count(w->dtls), 0);
  assert_int_equal(counters(w)->no_session, 1);
}

static void test_bad_arguments(void **state) {
  (void)state;
  gw_loop_t *loop;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  sms_dtls_callbacks_t cb = {
      .send_datagram = on_send_datagram, .on_plaintext = on_plaintext, .psk_lookup = on_psk_lookup};
  sms_dtls_conf_t conf;
  sms_dtls_conf_default(&conf);
  assert_int_equal(conf.mtu, 140);
  assert_true(conf.cookies);
  assert_int_equal(conf.handshake_min_ms, 10000);
  assert_int_equal(conf.handshake_max_ms, 300000);
  assert_int_equal(conf.idle_timeout_ms, 86400000u);
  assert_int_equal(conf.max_sessions, 1024);
  sms_dtls_t *d = NULL;
  conf.mtu = 20;
  assert_int_equal(sms_dtls_new(loop, &conf, &cb, &d), GW_ERR_INVAL);
  sms_dtls_conf_default(&conf);
  conf.handshake_max_ms = 10;
  assert_int_equal(sms_dtls_new(loop, &conf, &cb, &d), GW_ERR_INVAL);
  sms_dtls_callbacks_t no_psk = cb;
  no_psk.psk_lookup = NULL;
  assert_int_equal(sms_dtls_new(loop, NULL, &no_psk, &d), GW_ERR_INVAL);
  assert_null(d);
  assert_int_equal(sms_dtls_new(loop, NULL, &cb, &d), GW_OK);
  assert_false(sms_dtls_established(d, ALICE));
  assert_int_equal(sms_dtls_write(d, ALICE, NULL, 3), GW_ERR_INVAL);
  sms_dtls_forget(d, ALICE);
  sms_dtls_free(&d);
  sms_dtls_free(&d);
  gw_loop_free(&loop);
}

int main(void) {
  gw_log_setup(GW_LOG_TO_STDERR, getenv("GW_TEST_DEBUG") ? GW_LOG_DEBUG : GW_LOG_WARNING);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_handshake_ccm8_and_data, teardown),
      cmocka_unit_test_teardown(test_suites, teardown),
      cmocka_unit_test_teardown(test_handshake_datagram_counts, teardown),
      cmocka_unit_test_teardown(test_wrong_psk, teardown),
      cmocka_unit_test_teardown(test_unknown_identity, teardown),
      cmocka_unit_test_teardown(test_tampered_record, teardown),
      cmocka_unit_test_teardown(test_replayed_record, teardown),
      cmocka_unit_test_teardown(test_cookie_exchange_is_stateless, teardown),
      cmocka_unit_test_teardown(test_cookies_off, teardown),
      cmocka_unit_test_teardown(test_lost_flight_is_retransmitted, teardown),
      cmocka_unit_test_teardown(test_lost_last_flight, teardown),
      cmocka_unit_test_teardown(test_resumption, teardown),
      cmocka_unit_test_teardown(test_resumption_after_idle_timeout, teardown),
      cmocka_unit_test_teardown(test_resumption_is_bound_to_the_number, teardown),
      cmocka_unit_test_teardown(test_forget, teardown),
      cmocka_unit_test_teardown(test_two_numbers, teardown),
      cmocka_unit_test_teardown(test_write_without_session, teardown),
      cmocka_unit_test_teardown(test_rehandshake_cookies_on, teardown),
      cmocka_unit_test_teardown(test_rehandshake_cookies_off, teardown),
      cmocka_unit_test_teardown(test_stale_client_hello, teardown),
      cmocka_unit_test_teardown(test_rehandshake_after_hibernation, teardown),
      cmocka_unit_test_teardown(test_new_client_hello_during_handshake, teardown),
      cmocka_unit_test_teardown(test_handshake_timeout, teardown),
      cmocka_unit_test_teardown(test_hibernation, teardown),
      cmocka_unit_test_teardown(test_garbage, teardown),
      cmocka_unit_test_teardown(test_callbacks_may_write_and_forget, teardown),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
