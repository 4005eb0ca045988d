/* lwm2m-gw: DTLS over SMS, the gateway as DTLS server for SMS devices (LwM2M Transport 5.3.2.1:
 * device end-point channel security is DTLS [RFC 6347] bound to SMS as in RFC 7925 Appendix A).
 *
 * A peer is an MSISDN. A datagram is one reassembled SMS payload: the binding hands each to
 * sms_dtls_input(); handshake messages are answered through send_datagram, decrypted CoAP comes
 * out through on_plaintext. sms_dtls_write() protects a CoAP message for an established
 * session. mbedtls 2.28: DTLS 1.2 only, PSK only, TLS_PSK_WITH_AES_128_CCM_8 first (RFC 7925
 * 4.3), then AES_128_GCM_SHA256 and AES_128_CBC_SHA256 for OpenSSL/GnuTLS-based devices.
 *
 * Transport 5.3.2: anything not correctly protected is discarded with no reply and counted; no
 * alert is ever sent. Never blocks: retransmission timers run in the gateway's event loop.
 * Keys are never logged; the log (debug level only) carries mbedtls' error text.
 */
#ifndef SMS_DTLS_H
#define SMS_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

/* Longest MSISDN taken as a peer (the concatenated-SMS reassembly's sender limit). */
#define SMS_DTLS_MSISDN_MAX 47u
/* mbedtls' own limit on PSK length (MBEDTLS_PSK_MAX_LEN in its default configuration). */
#define SMS_DTLS_PSK_MAX 32u
/* Record overhead of the worst suite offered (AES_128_CBC_SHA256: 13 header + 16 IV + up to 16
 * padding + 32 MAC); AES_128_CCM_8 takes 29 (Transport 5.3.2.1.1), AES_128_GCM 37. */
#define SMS_DTLS_OVERHEAD_MAX 77u

typedef struct sms_dtls sms_dtls_t;

/* Called from inside sms_dtls_input(), sms_dtls_write() and the loop's timers. send_datagram and
 * psk_lookup must not call any sms_dtls_* function; on_plaintext may call sms_dtls_write(),
 * sms_dtls_established() and sms_dtls_forget() (a forget of the peer being handled takes effect
 * when its datagram is done). No callback may call sms_dtls_free(). */
typedef struct {
  void *arg;
  /* A DTLS datagram (one or more records, at most conf.mtu octets) for msisdn: send it as SMS.
   * Borrowed. GW_OK or an error; an error counts as a lost datagram (DTLS retransmits handshake
   * flights; sms_dtls_write() returns the error). */
  int (*send_datagram)(void *arg, const char *msisdn, const uint8_t *data, size_t len);
  /* Decrypted application data (one CoAP message) from msisdn. Borrowed. */
  void (*on_plaintext)(void *arg, const char *msisdn, const uint8_t *data, size_t len);
  /* The PSK for identity as offered by msisdn: fill out_key (capacity *out_key_len on entry,
   * SMS_DTLS_PSK_MAX) and set *out_key_len. false when the identity is unknown or not that
   * number's: the handshake then fails with no reply. The key is wiped after use. */
  bool (*psk_lookup)(void *arg, const char *msisdn, const uint8_t *identity, size_t identity_len,
                     uint8_t *out_key, size_t *out_key_len);
} sms_dtls_callbacks_t;

typedef struct {
  size_t mtu;                  /* largest datagram: 140 for one SMS, the binding's limit when
                                * concatenated SMS is on (default 140, 64..65535) */
  bool cookies;                /* HelloVerifyRequest cookie exchange (default true); it also
                                * guards established sessions against spoofed ClientHellos */
  uint32_t handshake_min_ms;   /* DTLS retransmission timer start (default 10000: SMS latency) */
  uint32_t handshake_max_ms;   /* its cap, after which the handshake fails (default 300000); also
                                * the cookie lifetime (at least 60 s) */
  uint32_t idle_timeout_ms;    /* forget a session idle this long (default 24 h); the device can
                                * still resume it while its resumption entry lives */
  size_t max_sessions;         /* peers held at once, and resumption entries (default 1024) */
  uint32_t hibernate_after_ms; /* an established AEAD session idle this long is serialised
                                * (about 220 bytes instead of about 35 KiB of mbedtls buffers)
                                * and restored by the next datagram or write (default 30000,
                                * 0 = never) */
  uint32_t resume_lifetime_s;  /* a full handshake's session can be resumed, from the same
                                * MSISDN only, this long (default 604800 = 7 days, 0 = no
                                * resumption) */
} sms_dtls_conf_t;

typedef struct {
  uint64_t handshakes;        /* completed handshakes, full and abbreviated */
  uint64_t resumed;           /* of which abbreviated (session resumption) */
  uint64_t failed_handshakes; /* unknown identity, wrong key, timeout, protocol error */
  uint64_t bad_records;       /* records on a session that failed authentication, replays,
                               * malformed records: dropped */
  uint64_t plaintext_in;      /* CoAP messages handed to on_plaintext */
  uint64_t plaintext_out;     /* CoAP messages protected by sms_dtls_write */
  uint64_t no_session;        /* datagrams from a number with no session that did not start a
                               * handshake: dropped */
  uint64_t write_no_session;  /* sms_dtls_write refused: no established session */
  uint64_t hello_verify;      /* HelloVerifyRequests sent (cookie exchange) */
  uint64_t reconnects;        /* new ClientHello from an established peer (RFC 6347 4.2.8) */
  uint64_t expired;           /* sessions forgotten after idle_timeout_ms */
  uint64_t evicted;           /* peers pushed out by max_sessions */
  uint64_t hibernated;        /* sessions serialised while idle */
  uint64_t datagrams_in;      /* datagrams given to sms_dtls_input */
  uint64_t datagrams_out;     /* datagrams given to send_datagram (SMS payloads) */
} sms_dtls_counters_t;

/* The defaults above. */
void sms_dtls_conf_default(sms_dtls_conf_t *out_conf);

/* conf NULL takes the defaults; conf and cb are copied. Seeds a CTR-DRBG from the system's
 * entropy. GW_OK, GW_ERR_INVAL (bad conf, missing callback), GW_ERR_NOMEM, GW_ERR_IO (no
 * entropy or mbedtls refused the configuration). */
int sms_dtls_new(gw_loop_t *loop, const sms_dtls_conf_t *conf, const sms_dtls_callbacks_t *cb,
                 sms_dtls_t **out);
/* Frees everything, wiping keys; sets *dtls NULL. Sends nothing. */
void sms_dtls_free(sms_dtls_t **dtls);

/* A datagram from msisdn (a reassembled SMS payload). Handshake messages are answered through
 * send_datagram, application records come out through on_plaintext. Anything not correctly
 * protected is discarded with no reply and counted (Transport 5.3.2). Borrows data. */
void sms_dtls_input(sms_dtls_t *dtls, const char *msisdn, const uint8_t *data, size_t len);

/* Protects one CoAP message for msisdn's established session and sends it as one datagram.
 * Borrows data. GW_OK; GW_ERR_NOTFOUND when there is no established session (the caller then
 * refuses the message: the server gets 5.03); GW_ERR_TOOBIG above sms_dtls_max_plaintext();
 * the error send_datagram returned; GW_ERR_NOMEM; GW_ERR_IO when mbedtls failed (the session is
 * then dropped). */
int sms_dtls_write(sms_dtls_t *dtls, const char *msisdn, const uint8_t *data, size_t len);

bool sms_dtls_established(const sms_dtls_t *dtls, const char *msisdn);

/* Largest CoAP message sms_dtls_write() takes for msisdn's session (mtu less the record
 * overhead of its cipher suite: 111 for AES_128_CCM_8 at mtu 140); 0 without a session. */
size_t sms_dtls_max_plaintext(const sms_dtls_t *dtls, const char *msisdn);

/* Drops msisdn's session and its resumption entry, sending nothing (a device removed from the
 * configuration or given a new key must handshake again). */
void sms_dtls_forget(sms_dtls_t *dtls, const char *msisdn);

/* Peers held (live or hibernated), and of those, with a live mbedtls context. */
size_t sms_dtls_peer_count(const sms_dtls_t *dtls);
size_t sms_dtls_live_count(const sms_dtls_t *dtls);

const sms_dtls_counters_t *sms_dtls_counters(const sms_dtls_t *dtls);

#endif
