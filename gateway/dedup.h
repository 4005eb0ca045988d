/* lwm2m-gw: message deduplication (RFC 7252 4.5).
 *
 * A CoAP endpoint must answer a duplicate CON with the same response and process it only once;
 * over lossy or slow links (NIDD D.6, SMS, LoRaWAN) duplicates are common. The gateway keeps, per
 * device and direction, the recently seen message IDs with the answer it gave, for
 * EXCHANGE_LIFETIME (247 s) after a CON and NON_LIFETIME (145 s) after a NON, bounded in count:
 * when full, the oldest entry is forgotten (a late duplicate then gets relayed again, which LwM2M
 * operations tolerate better than a lost message).
 */
#ifndef GW_DEDUP_H
#define GW_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_EXCHANGE_LIFETIME_MS 247000u /* RFC 7252 4.8.2 */
#define GW_NON_LIFETIME_MS 145000u

typedef enum {
  GW_DEDUP_NEW,         /* first time seen: now recorded as in progress */
  GW_DEDUP_IN_PROGRESS, /* seen, no answer yet: drop the duplicate */
  GW_DEDUP_ANSWERED     /* seen and answered: resend the cached answer */
} gw_dedup_verdict_t;

typedef struct {
  uint16_t mid;
  bool used;
  uint32_t seq; /* insertion order: the smallest is the oldest */
  bool answered;
  uint64_t expires_ms;
  uint8_t *answer; /* owned copy of the serialised answer; NULL when no answer is to be resent */
  size_t answer_len;
} gw_dedup_entry_t;

typedef struct {
  gw_dedup_entry_t *entries;
  size_t capacity;
  uint32_t next_seq;
} gw_dedup_t;

int gw_dedup_init(gw_dedup_t *dedup, size_t capacity);
void gw_dedup_clear(gw_dedup_t *dedup);

/* Looks mid up; records it as in progress when new. For GW_DEDUP_ANSWERED, *out_answer borrows
 * the cached bytes (valid until the next call on this table). */
gw_dedup_verdict_t gw_dedup_check(gw_dedup_t *dedup, uint16_t mid, bool confirmable,
                                  uint64_t now_ms, const uint8_t **out_answer,
                                  size_t *out_answer_len);

/* Stores the answer sent for mid (copies it). answer may be NULL: the exchange is closed with
 * nothing to resend (e.g. a NON with no response). Returns 0, or GW_ERR_NOTFOUND if mid was
 * forgotten meanwhile, GW_ERR_NOMEM. */
int gw_dedup_answer(gw_dedup_t *dedup, uint16_t mid, const uint8_t *answer, size_t len);

/* Forgets mid (e.g. relaying failed before any answer and a retransmission should retry). */
void gw_dedup_forget(gw_dedup_t *dedup, uint16_t mid);

/* Number of live entries, for tests and metrics. */
size_t gw_dedup_count(const gw_dedup_t *dedup, uint64_t now_ms);

#endif
