/* lwm2m-gw: DTLS over SMS, the gateway as DTLS 1.2 server (LwM2M Transport 5.3.2.1, RFC 7925
 * Appendix A), on mbedtls 2.28.
 *
 * One mbedtls_ssl_config for all peers, one mbedtls_ssl_context per MSISDN. The BIO is ours:
 * recv hands mbedtls the record being input, send goes to send_datagram. Each record of a
 * datagram is given to mbedtls on its own (a record is a valid datagram), so every record can
 * be judged before mbedtls sees it: that is how bad records get counted and how a wrong PSK
 * fails at the device's Finished instead of after minutes of retransmissions.
 *
 * Transport 5.3.2: what is not correctly protected is discarded and never answered with an
 * error, so the BIO drops every alert record mbedtls wants to send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_cookie.h>

#include "gw_error.h"
#include "gw_log.h"
#include "sms_dtls.h"

#define MOD "sms-dtls"

/* DTLS 1.2 record header (RFC 6347 4.1): type, version(2), epoch(2), sequence(6), length(2). */
#define REC_HDR 13u
#define CT_ALERT 21u
#define CT_HANDSHAKE 22u
/* Handshake header (RFC 6347 4.2.2): type, length(3), message_seq(2), fragment_offset(3),
 * fragment_length(3). */
#define HS_HDR 12u
#define HS_CLIENT_HELLO 1u
#define HS_HELLO_VERIFY 3u
#define HELLO_RANDOM_LEN 32u
/* Largest record we copy for mbedtls_ssl_check_record(): content plus the largest expansion. */
#define SCRATCH_LEN (REC_HDR + MBEDTLS_SSL_IN_CONTENT_LEN + 2048u)

/* RFC 7925 4.3 makes TLS_PSK_WITH_AES_128_CCM_8 mandatory; the others are what OpenSSL and
 * GnuTLS based devices (libcoap's tools) offer for PSK. Server preference decides. */
static const int ciphersuites[] = {
    MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8,
    MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_PSK_WITH_AES_128_CBC_SHA256,
    0,
};

typedef enum { PEER_HANDSHAKE, PEER_ESTABLISHED } peer_state_t;

typedef struct peer {
  sms_dtls_t *dtls;
  char msisdn[SMS_DTLS_MSISDN_MAX + 1];
  size_t index; /* in dtls->peers; SIZE_MAX while not in the table */
  peer_state_t state;
  mbedtls_ssl_context *ssl; /* NULL while hibernated */
  uint8_t *saved;           /* the serialised connection while hibernated (holds keys) */
  size_t saved_len;
  const uint8_t *in; /* the record being input, taken by bio_recv */
  size_t in_len;
  gw_timer_t retransmit; /* mbedtls' handshake timer */
  uint64_t timer_start_ms;
  uint32_t timer_int_ms, timer_fin_ms;
  gw_timer_t idle; /* hibernation and idle expiry */
  uint64_t last_active_ms;
  bool psk_used; /* the PSK callback ran: a full handshake, not a resumption */
  bool have_hello_random;
  uint8_t hello_random[HELLO_RANDOM_LEN]; /* of the ClientHello this handshake answers */
  size_t max_plaintext;
  int send_err; /* the last send_datagram error, for sms_dtls_write */
  int busy;     /* entry points working on this peer: removal waits for them */
  bool doomed;
} peer_t;

/* One resumable session per MSISDN: a session is resumed only by the number that made it,
 * so resumption cannot bypass psk_lookup's check of identity against number. */
typedef struct {
  char msisdn[SMS_DTLS_MSISDN_MAX + 1];
  uint8_t id[32];
  size_t id_len;
  uint8_t *blob; /* mbedtls_ssl_session_save() output: holds the master secret */
  size_t blob_len;
  uint64_t stored_ms;
} resume_entry_t;

struct sms_dtls {
  gw_loop_t *loop;
  sms_dtls_conf_t conf;
  sms_dtls_callbacks_t cb;
  sms_dtls_counters_t counters;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_ssl_cookie_ctx cookie;
  mbedtls_ssl_config ssl_conf;
  peer_t **peers;
  size_t peer_count;
  resume_entry_t *resume;
  size_t resume_count;
  peer_t *current; /* the peer mbedtls is working for (PSK and cache callbacks) */
  uint8_t *plain;
  uint8_t *scratch;
};

static void on_retransmit_timer(gw_loop_t *loop, void *arg);
static void on_idle_timer(gw_loop_t *loop, void *arg);

/* ---- small helpers ---- */

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void log_tls(const peer_t *p, const char *what, int ret) {
  if (gw_log_get_level() < GW_LOG_DEBUG)
    return;
  char text[160];
  mbedtls_strerror(ret, text, sizeof(text));
  GW_DEBUG(MOD, "%s: %s: %s (-0x%04x)", p->msisdn, what, text, (unsigned)-ret);
}

/* An epoch-0 handshake record whose first message is a ClientHello. */
static bool is_client_hello(const uint8_t *rec, size_t len) {
  return len >= REC_HDR + HS_HDR && rec[0] == CT_HANDSHAKE && rec[3] == 0 && rec[4] == 0 &&
         rec[REC_HDR] == HS_CLIENT_HELLO;
}

static bool hello_random(const uint8_t *rec, size_t len, uint8_t out[HELLO_RANDOM_LEN]) {
  const uint8_t *hs = rec + REC_HDR;
  if (len < REC_HDR + HS_HDR + 2 + HELLO_RANDOM_LEN || hs[6] || hs[7] || hs[8])
    return false; /* a later fragment: the random is in the first */
  memcpy(out, hs + HS_HDR + 2, HELLO_RANDOM_LEN);
  return true;
}

/* ---- the peer table ---- */

static peer_t *peer_find(const sms_dtls_t *d, const char *msisdn) {
  for (size_t i = 0; i < d->peer_count; i++)
    if (strcmp(d->peers[i]->msisdn, msisdn) == 0)
      return d->peers[i];
  return NULL;
}

static void ssl_release(peer_t *p) {
  if (p->ssl) {
    mbedtls_ssl_free(p->ssl);
    free(p->ssl);
    p->ssl = NULL;
  }
  if (p->saved) {
    mbedtls_platform_zeroize(p->saved, p->saved_len);
    free(p->saved);
    p->saved = NULL;
    p->saved_len = 0;
  }
}

static void peer_remove(peer_t *p) {
  sms_dtls_t *d = p->dtls;
  gw_timer_stop(d->loop, &p->retransmit);
  gw_timer_stop(d->loop, &p->idle);
  if (p->index != SIZE_MAX) {
    d->peers[p->index] = d->peers[--d->peer_count];
    d->peers[p->index]->index = p->index;
  }
  if (d->current == p)
    d->current = NULL;
  ssl_release(p);
  free(p);
}

/* Removes p now, or when the entry points working on it are done. */
static void peer_drop(peer_t *p) {
  if (p->busy > 0)
    p->doomed = true;
  else
    peer_remove(p);
}

static peer_t *peer_enter(peer_t *p) {
  peer_t *prev = p->dtls->current;
  p->busy++;
  p->dtls->current = p;
  return prev;
}

/* p may be freed here. */
static void peer_leave(peer_t *p, peer_t *prev) {
  p->dtls->current = prev;
  if (--p->busy == 0 && p->doomed)
    peer_remove(p);
}

/* Evicts for a new peer: the oldest handshake in progress first, else the least recently
 * active session (it can still be resumed). */
static peer_t *pick_victim(const sms_dtls_t *d) {
  peer_t *victim = NULL;
  for (size_t i = 0; i < d->peer_count; i++) {
    peer_t *q = d->peers[i];
    if (q->busy)
      continue;
    if (!victim || (q->state == PEER_HANDSHAKE && victim->state != PEER_HANDSHAKE) ||
        (q->state == victim->state && q->last_active_ms < victim->last_active_ms))
      victim = q;
  }
  return victim;
}

static int peer_insert(sms_dtls_t *d, peer_t *p) {
  if (d->peer_count == d->conf.max_sessions) {
    peer_t *victim = pick_victim(d);
    if (!victim)
      return GW_ERR_FULL;
    GW_DEBUG(MOD, "%s: evicted for %s (max_sessions %zu)", victim->msisdn, p->msisdn,
             d->conf.max_sessions);
    d->counters.evicted++;
    peer_remove(victim);
  }
  p->index = d->peer_count;
  d->peers[d->peer_count++] = p;
  return GW_OK;
}

static void touch(peer_t *p) {
  const sms_dtls_conf_t *conf = &p->dtls->conf;
  p->last_active_ms = gw_now_ms();
  uint64_t after = conf->idle_timeout_ms;
  if (p->ssl && p->state == PEER_ESTABLISHED && conf->hibernate_after_ms &&
      conf->hibernate_after_ms < after)
    after = conf->hibernate_after_ms;
  gw_timer_start(p->dtls->loop, &p->idle, after);
}

/* ---- mbedtls BIO and timer ---- */

static int bio_recv(void *arg, unsigned char *buf, size_t len) {
  peer_t *p = arg;
  if (!p->in)
    return MBEDTLS_ERR_SSL_WANT_READ;
  const uint8_t *in = p->in;
  size_t n = p->in_len;
  p->in = NULL;
  if (n > len)
    return MBEDTLS_ERR_SSL_WANT_READ; /* cannot happen: records are checked against SCRATCH_LEN */
  memcpy(buf, in, n);
  return (int)n;
}

/* Transport 5.3.2: no error replies, so alert records are taken out. A failed send is a lost
 * datagram to DTLS (handshake flights are retransmitted); sms_dtls_write reports it. */
static int bio_send(void *arg, const unsigned char *buf, size_t len) {
  peer_t *p = arg;
  sms_dtls_t *d = p->dtls;
  size_t alerts = 0, records = 0;
  for (size_t off = 0; off + REC_HDR <= len; off += REC_HDR + be16(buf + off + 11), records++) {
    alerts += buf[off] == CT_ALERT;
    /* counted here: mbedtls also sends them itself for a ClientHello on an established
     * session */
    if (buf[off] == CT_HANDSHAKE && off + REC_HDR < len && buf[off + REC_HDR] == HS_HELLO_VERIFY)
      d->counters.hello_verify++;
  }
  const uint8_t *out = buf;
  size_t out_len = len;
  uint8_t *filtered = NULL;
  if (alerts) {
    GW_DEBUG(MOD, "%s: %zu alert record(s) not sent (Transport 5.3.2)", p->msisdn, alerts);
    if (alerts == records)
      return (int)len;
    filtered = malloc(len);
    if (!filtered)
      return (int)len;
    out_len = 0;
    for (size_t off = 0; off + REC_HDR <= len;) {
      size_t rlen = REC_HDR + be16(buf + off + 11);
      if (off + rlen > len)
        rlen = len - off;
      if (buf[off] != CT_ALERT) {
        memcpy(filtered + out_len, buf + off, rlen);
        out_len += rlen;
      }
      off += rlen;
    }
    out = filtered;
  }
  if (out_len > d->conf.mtu)
    GW_DEBUG(MOD, "%s: datagram of %zu octets above the mtu %zu", p->msisdn, out_len, d->conf.mtu);
  d->counters.datagrams_out++;
  int rc = d->cb.send_datagram(d->cb.arg, p->msisdn, out, out_len);
  if (rc != GW_OK) {
    p->send_err = rc;
    GW_DEBUG(MOD, "%s: datagram of %zu octets not sent: %s", p->msisdn, out_len, gw_strerror(rc));
  }
  free(filtered);
  return (int)len;
}

static void on_set_timer(void *arg, uint32_t int_ms, uint32_t fin_ms) {
  peer_t *p = arg;
  p->timer_int_ms = int_ms;
  p->timer_fin_ms = fin_ms;
  p->timer_start_ms = gw_now_ms();
  if (fin_ms == 0)
    gw_timer_stop(p->dtls->loop, &p->retransmit);
  else
    gw_timer_start(p->dtls->loop, &p->retransmit, fin_ms);
}

static int on_get_timer(void *arg) {
  const peer_t *p = arg;
  if (p->timer_fin_ms == 0)
    return -1;
  uint64_t elapsed = gw_now_ms() - p->timer_start_ms;
  if (elapsed >= p->timer_fin_ms)
    return 2;
  return elapsed >= p->timer_int_ms ? 1 : 0;
}

/* Everything a context needs that is not in the shared configuration nor saved with it. */
static void ssl_attach(peer_t *p) {
  mbedtls_ssl_set_bio(p->ssl, p, bio_send, bio_recv, NULL);
  mbedtls_ssl_set_timer_cb(p->ssl, p, on_set_timer, on_get_timer);
  mbedtls_ssl_set_mtu(p->ssl, (uint16_t)p->dtls->conf.mtu);
  /* the cookie is bound to the number (RFC 6347 4.2.1: the client's transport address) */
  mbedtls_ssl_set_client_transport_id(p->ssl, (const unsigned char *)p->msisdn, strlen(p->msisdn));
}

static int ssl_create(peer_t *p) {
  p->ssl = calloc(1, sizeof(*p->ssl));
  if (!p->ssl)
    return GW_ERR_NOMEM;
  mbedtls_ssl_init(p->ssl);
  int ret = mbedtls_ssl_setup(p->ssl, &p->dtls->ssl_conf);
  if (ret != 0) {
    log_tls(p, "mbedtls_ssl_setup", ret);
    mbedtls_ssl_free(p->ssl);
    free(p->ssl);
    p->ssl = NULL;
    return GW_ERR_NOMEM;
  }
  ssl_attach(p);
  return GW_OK;
}

/* A new context for a new handshake, whatever the peer had before. */
static int peer_fresh(peer_t *p) {
  gw_timer_stop(p->dtls->loop, &p->retransmit);
  p->timer_fin_ms = 0;
  ssl_release(p);
  p->state = PEER_HANDSHAKE;
  p->psk_used = false;
  p->have_hello_random = false;
  p->max_plaintext = 0;
  return ssl_create(p);
}

static peer_t *peer_new(sms_dtls_t *d, const char *msisdn) {
  peer_t *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  p->dtls = d;
  snprintf(p->msisdn, sizeof(p->msisdn), "%s", msisdn);
  p->index = SIZE_MAX;
  gw_timer_init(&p->retransmit, on_retransmit_timer, p);
  gw_timer_init(&p->idle, on_idle_timer, p);
  p->last_active_ms = gw_now_ms();
  if (peer_fresh(p) != GW_OK) {
    free(p);
    return NULL;
  }
  return p;
}

/* ---- hibernation: an idle session kept as mbedtls' serialised connection ---- */

static void hibernate(peer_t *p) {
#if defined(MBEDTLS_SSL_CONTEXT_SERIALIZATION)
  size_t need = 0;
  int ret = mbedtls_ssl_context_save(p->ssl, NULL, 0, &need);
  if (ret != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL) {
    /* a CBC suite, or the final flight still held for the device's first record */
    log_tls(p, "session kept live", ret);
    return;
  }
  uint8_t *buf = malloc(need);
  if (!buf)
    return;
  ret = mbedtls_ssl_context_save(p->ssl, buf, need, &need);
  if (ret != 0) {
    log_tls(p, "mbedtls_ssl_context_save", ret);
    mbedtls_platform_zeroize(buf, need);
    free(buf);
    return;
  }
  mbedtls_ssl_free(p->ssl);
  free(p->ssl);
  p->ssl = NULL;
  p->saved = buf;
  p->saved_len = need;
  p->dtls->counters.hibernated++;
  GW_DEBUG(MOD, "%s: idle session hibernated (%zu octets)", p->msisdn, need);
#else
  (void)p;
#endif
}

static int wake(peer_t *p) {
  if (p->ssl)
    return GW_OK;
#if defined(MBEDTLS_SSL_CONTEXT_SERIALIZATION)
  int rc = ssl_create(p);
  if (rc != GW_OK)
    return rc;
  int ret = mbedtls_ssl_context_load(p->ssl, p->saved, p->saved_len);
  mbedtls_platform_zeroize(p->saved, p->saved_len);
  free(p->saved);
  p->saved = NULL;
  p->saved_len = 0;
  if (ret != 0) { /* mbedtls has freed the context's insides */
    log_tls(p, "mbedtls_ssl_context_load", ret);
    free(p->ssl);
    p->ssl = NULL;
    peer_drop(p);
    return GW_ERR_IO;
  }
  ssl_attach(p); /* after the load, which restores the saved mtu */
  return GW_OK;
#else
  return GW_ERR_IO;
#endif
}

/* ---- PSK and resumption callbacks (run inside mbedtls for d->current) ---- */

static int on_psk(void *arg, mbedtls_ssl_context *ssl, const unsigned char *identity,
                  size_t identity_len) {
  sms_dtls_t *d = arg;
  peer_t *p = d->current;
  if (!p)
    return -1;
  p->psk_used = true;
  uint8_t key[SMS_DTLS_PSK_MAX];
  size_t key_len = sizeof(key);
  int rc = -1;
  if (d->cb.psk_lookup(d->cb.arg, p->msisdn, identity, identity_len, key, &key_len) &&
      key_len > 0 && key_len <= sizeof(key))
    rc = mbedtls_ssl_set_hs_psk(ssl, key, key_len) == 0 ? 0 : -1;
  mbedtls_platform_zeroize(key, sizeof(key));
  if (rc != 0 && gw_log_get_level() >= GW_LOG_DEBUG) {
    char shown[65];
    size_t n = identity_len < sizeof(shown) - 1 ? identity_len : sizeof(shown) - 1;
    for (size_t i = 0; i < n; i++)
      shown[i] = identity[i] >= 0x20 && identity[i] < 0x7f ? (char)identity[i] : '.';
    shown[n] = '\0';
    GW_DEBUG(MOD, "%s: no PSK for identity \"%s\"", p->msisdn, shown);
  }
  return rc;
}

static resume_entry_t *resume_find(sms_dtls_t *d, const char *msisdn) {
  for (size_t i = 0; i < d->resume_count; i++)
    if (strcmp(d->resume[i].msisdn, msisdn) == 0)
      return &d->resume[i];
  return NULL;
}

static void resume_remove(sms_dtls_t *d, resume_entry_t *e) {
  mbedtls_platform_zeroize(e->blob, e->blob_len);
  free(e->blob);
  *e = d->resume[--d->resume_count];
  memset(&d->resume[d->resume_count], 0, sizeof(*e));
}

static bool resume_expired(const sms_dtls_t *d, const resume_entry_t *e) {
  return gw_now_ms() - e->stored_ms >= (uint64_t)d->conf.resume_lifetime_s * 1000u;
}

static int on_cache_get(void *arg, mbedtls_ssl_session *session) {
  sms_dtls_t *d = arg;
  resume_entry_t *e = d->current ? resume_find(d, d->current->msisdn) : NULL;
  if (!e)
    return 1;
  if (resume_expired(d, e)) {
    resume_remove(d, e);
    return 1;
  }
  if (e->id_len != session->id_len || memcmp(e->id, session->id, e->id_len) != 0)
    return 1;
  mbedtls_ssl_session loaded;
  mbedtls_ssl_session_init(&loaded);
  if (mbedtls_ssl_session_load(&loaded, e->blob, e->blob_len) != 0)
    return 1;
  mbedtls_ssl_session_free(session); /* move, as mbedtls' own cache does */
  *session = loaded;
  return 0;
}

static int on_cache_set(void *arg, const mbedtls_ssl_session *session) {
  sms_dtls_t *d = arg;
  peer_t *p = d->current;
  if (!p || session->id_len == 0 || session->id_len > sizeof(((resume_entry_t *)0)->id))
    return 1;
  size_t need = 0;
  if (mbedtls_ssl_session_save(session, NULL, 0, &need) != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL)
    return 1;
  uint8_t *blob = malloc(need);
  if (!blob)
    return 1;
  if (mbedtls_ssl_session_save(session, blob, need, &need) != 0) {
    free(blob);
    return 1;
  }
  resume_entry_t *e = resume_find(d, p->msisdn);
  if (e) {
    resume_remove(d, e);
  } else if (d->resume_count == d->conf.max_sessions) {
    resume_entry_t *oldest = &d->resume[0];
    for (size_t i = 1; i < d->resume_count; i++)
      if (d->resume[i].stored_ms < oldest->stored_ms)
        oldest = &d->resume[i];
    resume_remove(d, oldest);
  }
  e = &d->resume[d->resume_count++];
  snprintf(e->msisdn, sizeof(e->msisdn), "%s", p->msisdn);
  memcpy(e->id, session->id, session->id_len);
  e->id_len = session->id_len;
  e->blob = blob;
  e->blob_len = need;
  e->stored_ms = gw_now_ms();
  return 0;
}

/* ---- driving mbedtls ---- */

static void handshake_done(peer_t *p) {
  sms_dtls_t *d = p->dtls;
  p->state = PEER_ESTABLISHED;
  d->counters.handshakes++;
  if (!p->psk_used)
    d->counters.resumed++;
  int max = mbedtls_ssl_get_max_out_record_payload(p->ssl);
  p->max_plaintext = max > 0 ? (size_t)max : 0;
  GW_DEBUG(MOD, "%s: %s handshake done, %s, up to %zu octets per message", p->msisdn,
           p->psk_used ? "full" : "abbreviated", mbedtls_ssl_get_ciphersuite(p->ssl),
           p->max_plaintext);
}

static void run_handshake(peer_t *p) {
  sms_dtls_t *d = p->dtls;
  int ret = mbedtls_ssl_handshake(p->ssl);
  if (ret == 0) {
    handshake_done(p);
  } else if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
    /* waiting for the device's next flight, or for the retransmission timer */
  } else if (ret == MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED) {
    /* RFC 6347 4.2.1: stateless until the device returns the cookie */
    GW_DEBUG(MOD, "%s: HelloVerifyRequest sent", p->msisdn);
    peer_drop(p);
  } else {
    d->counters.failed_handshakes++;
    log_tls(p, "handshake failed", ret);
    peer_drop(p);
  }
}

/* mbedtls_ssl_check_record() on a copy: 0 when the record is authentic and new. */
static int check_record(peer_t *p, const uint8_t *rec, size_t len) {
#if defined(MBEDTLS_SSL_RECORD_CHECKING)
  memcpy(p->dtls->scratch, rec, len);
  return mbedtls_ssl_check_record(p->ssl, p->dtls->scratch, len);
#else
  (void)p, (void)rec, (void)len;
  return 0;
#endif
}

static void read_session(peer_t *p, const uint8_t *rec, size_t len) {
  sms_dtls_t *d = p->dtls;
  p->in = rec;
  p->in_len = len;
  while (!p->doomed) {
    int ret = mbedtls_ssl_read(p->ssl, d->plain, MBEDTLS_SSL_IN_CONTENT_LEN);
    if (ret > 0) {
      d->counters.plaintext_in++;
      d->cb.on_plaintext(d->cb.arg, p->msisdn, d->plain, (size_t)ret);
      continue;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
      break;
    if (ret == MBEDTLS_ERR_SSL_CLIENT_RECONNECT) {
      /* RFC 6347 4.2.8: the device proved with a valid cookie that it is at this number and
       * starts over; mbedtls has reset the context and kept the ClientHello */
      d->counters.reconnects++;
      GW_DEBUG(MOD, "%s: new handshake from an established peer", p->msisdn);
      p->state = PEER_HANDSHAKE;
      p->psk_used = false;
      p->max_plaintext = 0;
      p->have_hello_random = hello_random(rec, len, p->hello_random);
      run_handshake(p);
      break;
    }
    if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
      GW_DEBUG(MOD, "%s: session closed by the device", p->msisdn);
    else
      log_tls(p, "session dropped", ret);
    peer_drop(p);
  }
  p->in = NULL;
}

static void feed_handshake(peer_t *p, const uint8_t *rec, size_t len) {
  p->in = rec;
  p->in_len = len;
  run_handshake(p);
  p->in = NULL;
}

/* true when the record went to mbedtls, false when it was dropped here. */
static bool input_record(peer_t *p, const uint8_t *rec, size_t len) {
  sms_dtls_t *d = p->dtls;
  bool hello = is_client_hello(rec, len);
  bool epoch0 = rec[3] == 0 && rec[4] == 0;
  uint8_t random[HELLO_RANDOM_LEN];
  bool has_random = hello && hello_random(rec, len, random);
  bool same_hello =
      has_random && p->have_hello_random && memcmp(random, p->hello_random, sizeof(random)) == 0;
  if (p->state == PEER_ESTABLISHED) {
    if (same_hello) {
      /* a late copy of the ClientHello this session grew from (SMS can be delayed and
       * duplicated): not a new handshake */
      GW_DEBUG(MOD, "%s: stale ClientHello ignored", p->msisdn);
      return false;
    }
    if (wake(p) != GW_OK)
      return false;
    if (hello && !d->conf.cookies) {
      /* RFC 6347 4.2.8: a rebooted device starts over. Without cookies there is no proof of
       * reachability to wait for, so the old session goes now. */
      d->counters.reconnects++;
      GW_DEBUG(MOD, "%s: ClientHello on an established session: new handshake", p->msisdn);
      if (peer_fresh(p) != GW_OK) {
        peer_drop(p);
        return false;
      }
      if (has_random) {
        memcpy(p->hello_random, random, sizeof(random));
        p->have_hello_random = true;
      }
      feed_handshake(p, rec, len);
      return true;
    }
    /* With cookies, mbedtls answers a ClientHello with a HelloVerifyRequest and keeps the
     * session until the cookie comes back valid. Stale epoch-0 records (a retransmitted last
     * flight) are mbedtls' to judge too. */
    if (!epoch0) {
      int rc = check_record(p, rec, len);
      if (rc != 0) {
        d->counters.bad_records++;
        log_tls(p, "record dropped", rc);
        return false;
      }
    }
    read_session(p, rec, len);
    return true;
  }
  if (has_random && !same_hello) {
    if (p->have_hello_random) {
      /* not a retransmission: the device gave up on this handshake and starts another */
      GW_DEBUG(MOD, "%s: new ClientHello during a handshake: start over", p->msisdn);
      if (peer_fresh(p) != GW_OK) {
        peer_drop(p);
        return false;
      }
    }
    memcpy(p->hello_random, random, sizeof(random));
    p->have_hello_random = true;
  } else if (rec[0] == CT_HANDSHAKE && !epoch0 &&
             check_record(p, rec, len) == MBEDTLS_ERR_SSL_INVALID_MAC) {
    /* The device's Finished under keys from another PSK. mbedtls would drop it silently and
     * retransmit its own flight until handshake_max_ms, each costing an SMS: end it now. */
    d->counters.failed_handshakes++;
    GW_DEBUG(MOD, "%s: handshake failed: Finished not authentic (wrong PSK?)", p->msisdn);
    peer_drop(p);
    return false;
  }
  feed_handshake(p, rec, len);
  return true;
}

/* ---- timers ---- */

static void on_retransmit_timer(gw_loop_t *loop, void *arg) {
  peer_t *p = arg;
  if (p->state != PEER_HANDSHAKE || !p->ssl || p->timer_fin_ms == 0)
    return;
  uint64_t elapsed = gw_now_ms() - p->timer_start_ms;
  if (elapsed < p->timer_fin_ms) {
    gw_timer_start(loop, &p->retransmit, p->timer_fin_ms - elapsed);
    return;
  }
  peer_t *prev = peer_enter(p);
  run_handshake(p); /* mbedtls sees the timer expired: it retransmits its flight or gives up */
  peer_leave(p, prev);
}

static void on_idle_timer(gw_loop_t *loop, void *arg) {
  peer_t *p = arg;
  const sms_dtls_conf_t *conf = &p->dtls->conf;
  uint64_t idle = gw_now_ms() - p->last_active_ms;
  if (idle >= conf->idle_timeout_ms) {
    p->dtls->counters.expired++;
    GW_DEBUG(MOD, "%s: idle session forgotten", p->msisdn);
    peer_drop(p);
    return;
  }
  bool may_hibernate = p->ssl && p->state == PEER_ESTABLISHED && conf->hibernate_after_ms;
  if (may_hibernate && idle >= conf->hibernate_after_ms)
    hibernate(p);
  uint64_t next = conf->idle_timeout_ms - idle;
  if (may_hibernate && idle < conf->hibernate_after_ms)
    next = conf->hibernate_after_ms - idle;
  gw_timer_start(loop, &p->idle, next);
}

/* ---- API ---- */

void sms_dtls_conf_default(sms_dtls_conf_t *out_conf) {
  *out_conf = (sms_dtls_conf_t){.mtu = 140,
                                .cookies = true,
                                .handshake_min_ms = 10000,
                                .handshake_max_ms = 300000,
                                .idle_timeout_ms = 24u * 3600u * 1000u,
                                .max_sessions = 1024,
                                .hibernate_after_ms = 30000,
                                .resume_lifetime_s = 7u * 24u * 3600u};
}

static int setup_tls(sms_dtls_t *d) {
  static const char pers[] = "lwm2m-gw sms-dtls";
  int ret = mbedtls_ctr_drbg_seed(&d->drbg, mbedtls_entropy_func, &d->entropy,
                                  (const unsigned char *)pers, sizeof(pers) - 1);
  if (ret != 0) {
    GW_ERR(MOD, "cannot seed the random generator (-0x%04x)", (unsigned)-ret);
    return GW_ERR_IO;
  }
  mbedtls_ssl_config *c = &d->ssl_conf;
  ret = mbedtls_ssl_config_defaults(c, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0)
    return GW_ERR_IO;
  mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, &d->drbg);
  mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(c, ciphersuites);
  mbedtls_ssl_conf_handshake_timeout(c, d->conf.handshake_min_ms, d->conf.handshake_max_ms);
  mbedtls_ssl_conf_psk_cb(c, on_psk, d);
  if (d->conf.resume_lifetime_s)
    mbedtls_ssl_conf_session_cache(c, d, on_cache_get, on_cache_set);
  if (d->conf.cookies) {
    ret = mbedtls_ssl_cookie_setup(&d->cookie, mbedtls_ctr_drbg_random, &d->drbg);
    if (ret != 0)
      return GW_ERR_IO;
    /* the cookie has to survive an SMS round trip */
    unsigned long lifetime = d->conf.handshake_max_ms / 1000u;
    mbedtls_ssl_cookie_set_timeout(&d->cookie, lifetime < 60 ? 60 : lifetime);
    mbedtls_ssl_conf_dtls_cookies(c, mbedtls_ssl_cookie_write, mbedtls_ssl_cookie_check,
                                  &d->cookie);
  } else {
    mbedtls_ssl_conf_dtls_cookies(c, NULL, NULL, NULL);
  }
  if (!mbedtls_ssl_ciphersuite_from_id(MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8))
    GW_WARN(MOD, "this mbedtls lacks TLS_PSK_WITH_AES_128_CCM_8 (RFC 7925)");
  return GW_OK;
}

int sms_dtls_new(gw_loop_t *loop, const sms_dtls_conf_t *conf, const sms_dtls_callbacks_t *cb,
                 sms_dtls_t **out) {
  sms_dtls_conf_t defaults;
  sms_dtls_conf_default(&defaults);
  if (!conf)
    conf = &defaults;
  if (!loop || !cb || !out || !cb->send_datagram || !cb->on_plaintext || !cb->psk_lookup ||
      conf->mtu < 64 || conf->mtu > UINT16_MAX || conf->handshake_min_ms == 0 ||
      conf->handshake_max_ms < conf->handshake_min_ms || conf->idle_timeout_ms == 0 ||
      conf->max_sessions == 0)
    return GW_ERR_INVAL;
  sms_dtls_t *d = calloc(1, sizeof(*d));
  if (!d)
    return GW_ERR_NOMEM;
  d->loop = loop;
  d->conf = *conf;
  d->cb = *cb;
  mbedtls_entropy_init(&d->entropy);
  mbedtls_ctr_drbg_init(&d->drbg);
  mbedtls_ssl_cookie_init(&d->cookie);
  mbedtls_ssl_config_init(&d->ssl_conf);
  d->peers = calloc(conf->max_sessions, sizeof(*d->peers));
  d->resume = calloc(conf->max_sessions, sizeof(*d->resume));
  d->plain = malloc(MBEDTLS_SSL_IN_CONTENT_LEN);
  d->scratch = malloc(SCRATCH_LEN);
  int rc = d->peers && d->resume && d->plain && d->scratch ? setup_tls(d) : GW_ERR_NOMEM;
  if (rc != GW_OK) {
    sms_dtls_free(&d);
    return rc;
  }
  *out = d;
  return GW_OK;
}

void sms_dtls_free(sms_dtls_t **dtls) {
  sms_dtls_t *d = dtls ? *dtls : NULL;
  if (!d)
    return;
  while (d->peer_count)
    peer_remove(d->peers[d->peer_count - 1]);
  while (d->resume_count)
    resume_remove(d, &d->resume[0]);
  mbedtls_ssl_config_free(&d->ssl_conf);
  mbedtls_ssl_cookie_free(&d->cookie);
  mbedtls_ctr_drbg_free(&d->drbg);
  mbedtls_entropy_free(&d->entropy);
  free(d->peers);
  free(d->resume);
  free(d->plain);
  free(d->scratch);
  free(d);
  *dtls = NULL;
}

void sms_dtls_input(sms_dtls_t *d, const char *msisdn, const uint8_t *data, size_t len) {
  if (!d || !msisdn || (!data && len))
    return;
  d->counters.datagrams_in++;
  size_t msisdn_len = strlen(msisdn);
  peer_t *p = msisdn_len && msisdn_len <= SMS_DTLS_MSISDN_MAX ? peer_find(d, msisdn) : NULL;
  if (!p) {
    if (!msisdn_len || msisdn_len > SMS_DTLS_MSISDN_MAX || !is_client_hello(data, len) ||
        REC_HDR + be16(data + 11) > len) {
      d->counters.no_session++;
      GW_DEBUG(MOD, "%s: datagram of %zu octets without a session dropped", msisdn, len);
      return;
    }
    /* not in the table until the handshake gets past the cookie exchange, so a ClientHello
     * without a cookie evicts nobody */
    p = peer_new(d, msisdn);
    if (!p)
      return;
  }
  peer_t *prev = peer_enter(p);
  bool accepted = false; /* only what reaches mbedtls keeps a session from idling out */
  for (size_t off = 0; off < len && !p->doomed;) {
    size_t rest = len - off;
    size_t rlen = rest >= REC_HDR ? REC_HDR + be16(data + off + 11) : SIZE_MAX;
    if (rlen > rest || rlen > SCRATCH_LEN) {
      d->counters.bad_records++;
      GW_DEBUG(MOD, "%s: malformed record, %zu octets dropped", p->msisdn, rest);
      break;
    }
    accepted |= input_record(p, data + off, rlen);
    off += rlen;
  }
  if (!p->doomed && p->index == SIZE_MAX && peer_insert(d, p) != GW_OK)
    p->doomed = true;
  if (!p->doomed && (accepted || !gw_timer_active(&p->idle)))
    touch(p);
  else if (!p->doomed && p->ssl && p->state == PEER_ESTABLISHED)
    gw_timer_start(d->loop, &p->idle, 0); /* woken for nothing: the idle check decides */
  peer_leave(p, prev);
}

int sms_dtls_write(sms_dtls_t *d, const char *msisdn, const uint8_t *data, size_t len) {
  if (!d || !msisdn || !data || len == 0)
    return GW_ERR_INVAL;
  peer_t *p = peer_find(d, msisdn);
  if (!p || p->state != PEER_ESTABLISHED || p->doomed) {
    d->counters.write_no_session++;
    return GW_ERR_NOTFOUND;
  }
  peer_t *prev = peer_enter(p);
  int rc = wake(p);
  if (rc == GW_OK && len > p->max_plaintext) {
    rc = GW_ERR_TOOBIG;
  } else if (rc == GW_OK) {
    p->send_err = GW_OK;
    int ret = mbedtls_ssl_write(p->ssl, data, len);
    if (ret == (int)len) {
      d->counters.plaintext_out++;
      rc = p->send_err;
      touch(p);
    } else if (ret == MBEDTLS_ERR_SSL_BAD_INPUT_DATA) {
      rc = GW_ERR_TOOBIG;
    } else {
      log_tls(p, "write failed, session dropped", ret);
      peer_drop(p);
      rc = GW_ERR_IO;
    }
  }
  peer_leave(p, prev);
  return rc;
}

bool sms_dtls_established(const sms_dtls_t *d, const char *msisdn) {
  const peer_t *p = d && msisdn ? peer_find(d, msisdn) : NULL;
  return p && p->state == PEER_ESTABLISHED && !p->doomed;
}

size_t sms_dtls_max_plaintext(const sms_dtls_t *d, const char *msisdn) {
  return sms_dtls_established(d, msisdn) ? peer_find(d, msisdn)->max_plaintext : 0;
}

void sms_dtls_forget(sms_dtls_t *d, const char *msisdn) {
  if (!d || !msisdn)
    return;
  resume_entry_t *e = resume_find(d, msisdn);
  if (e)
    resume_remove(d, e);
  peer_t *p = peer_find(d, msisdn);
  if (p)
    peer_drop(p);
}

size_t sms_dtls_peer_count(const sms_dtls_t *d) { return d ? d->peer_count : 0; }

size_t sms_dtls_live_count(const sms_dtls_t *d) {
  size_t n = 0;
  for (size_t i = 0; d && i < d->peer_count; i++)
    n += d->peers[i]->ssl != NULL;
  return n;
}

const sms_dtls_counters_t *sms_dtls_counters(const sms_dtls_t *d) { return &d->counters; }
