/* lwm2m-gw: concatenated SMS (3GPP TS 23.040 9.2.3.24.1 and 9.2.3.24.8).
 *
 * Transport 6.8.3 allows concatenation for CoAP messages above 140 octets. Splitting cuts a
 * payload into parts that each carry a concatenation IE; reassembly joins the parts a device
 * sends back into one payload. Both are I/O-free: reassembly takes the clock as now_ms and never
 * logs; the caller reads the counters.
 */
#ifndef CSMS_H
#define CSMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sms_pdu.h"

/* 140 octets of 8-bit user data (23.040 9.2.3.16) less the UDH: 6 octets (05 00 03 ref total
 * seq) with an 8-bit reference, 7 (06 08 04 refhi reflo total seq) with a 16-bit one. */
#define CSMS_SINGLE_MAX 140u
#define CSMS_PART_MAX_REF8 134u
#define CSMS_PART_MAX_REF16 133u
#define CSMS_PARTS_MAX 255u
#define CSMS_PAYLOAD_MAX (CSMS_PARTS_MAX * CSMS_PART_MAX_REF8) /* 34170 */

/* ---- splitting ---- */

typedef struct {
  const uint8_t *data; /* borrowed from the payload given to csms_split_part() */
  size_t len;
  bool has_concat;     /* false for a payload that fits one SMS: send it without a UDH */
  sms_concat_t concat; /* put into sms_submit_t.udh.concat when has_concat */
} csms_part_t;

/* Number of SMS needed for len octets: 1 up to 140, otherwise one per 134 octets (133 with
 * ref16). 0 when more than 255 parts would be needed (above 34170 octets, 33915 with ref16). */
size_t csms_split_count(size_t len, bool ref16);

/* Describes part index (0-based) of payload: its slice (borrowed from payload) and its
 * concatenation IE with reference ref (8-bit ref: only the low 8 bits are used). Errors:
 * SMS_ERR_ARG (index out of range, NULL), SMS_ERR_TOO_MANY_PARTS. */
sms_err_t csms_split_part(const uint8_t *payload, size_t len, bool ref16, uint16_t ref,
                          size_t index, csms_part_t *out);

/* ---- reassembly ---- */

#define CSMS_DEFAULT_TIMEOUT_MS 60000u
#define CSMS_DEFAULT_MAX_MESSAGES 64u
#define CSMS_DEFAULT_MAX_BYTES (256u * 1024u)
#define CSMS_SENDER_MAX 48u /* = SMS_ADDR_STR_MAX: an originator address string */

typedef struct {
  uint64_t timeout_ms; /* an incomplete message expires this long after its latest part */
  size_t max_messages; /* incomplete messages held at once */
  size_t max_bytes;    /* part payload octets held at once, over all messages */
} csms_limits_t;

typedef struct {
  uint64_t completed;     /* messages joined and returned */
  uint64_t duplicates;    /* parts dropped: same key and seq already held */
  uint64_t conflicts;     /* parts whose total differs from a held message of same sender/ref */
  uint64_t expired;       /* incomplete messages dropped by the timeout */
  uint64_t parts_missing; /* parts the expired messages still lacked */
  uint64_t evicted;       /* incomplete messages dropped to stay within the limits */
  uint64_t malformed;     /* parts dropped: total 0, seq 0, seq > total, bad sender */
} csms_counters_t;

typedef enum {
  CSMS_STORED = 0, /* kept; the message is still incomplete */
  CSMS_COMPLETE,   /* the message is complete: *out_payload and *out_len are set */
  CSMS_DUPLICATE,  /* dropped: this part is already held */
  CSMS_MALFORMED,  /* dropped: see csms_counters_t.malformed */
  CSMS_TOO_BIG,    /* dropped with its message: the message alone would exceed max_bytes
                    * (counted as evicted) */
  CSMS_NOMEM       /* dropped: allocation failed */
} csms_result_t;

typedef struct csms_message csms_message_t; /* defined in csms.c */

/* Told of an incomplete message dropped (expired, evicted, too big), so that a caller that keeps
 * its parts elsewhere too (the SMS binding keeps them in the gateway's state until the whole
 * message was handed on) can forget them. */
typedef void (*csms_dropped_fn)(void *arg, const char *sender, uint16_t ref, uint8_t total,
                                bool ref16);

typedef struct {
  csms_limits_t limits;
  csms_counters_t counters;
  csms_message_t *messages; /* array of limits.max_messages slots */
  size_t count;             /* slots in use, [0, count) */
  size_t buffered_bytes;    /* part payload octets held */
  uint64_t next_order;      /* creation order: the smallest held is the oldest */
  uint8_t *joined;          /* the last completed payload, lent to the caller */
  size_t joined_cap;
  csms_dropped_fn on_dropped; /* optional, set after csms_reassembly_init */
  void *dropped_arg;
} csms_reassembly_t;

/* The defaults: 60 s, 64 messages, 256 KiB. */
void csms_limits_default(csms_limits_t *limits);

/* Prepares r; limits may be NULL for the defaults (a zero field also takes its default). Returns
 * SMS_OK, SMS_ERR_ARG or SMS_ERR_NOMEM. */
sms_err_t csms_reassembly_init(csms_reassembly_t *r, const csms_limits_t *limits);

/* Frees every held part and the joined buffer; r may be initialised again afterwards. */
void csms_reassembly_clear(csms_reassembly_t *r);

/* Adds one part received from sender (the originator address string, e.g. sms_deliver_t
 * .originator.number) with its concatenation IE. Messages are keyed by (sender, ref, total,
 * ref16); parts may come in any order. Borrows sender, concat and data (data is copied).
 *
 * On CSMS_COMPLETE, *out_payload points to the joined payload (parts in seq order) and *out_len
 * is its length: the buffer is lent, owned by r, valid until the next call of any csms_reassembly_
 * function on r. A one-part "concatenation" (total 1) completes at once.
 *
 * Before adding, incomplete messages idle past the timeout expire (as csms_reassembly_check).
 * A new message that would exceed max_messages, or a part that would exceed max_bytes, first
 * evicts the oldest incomplete messages. A part whose total disagrees with a held message of the
 * same sender, ref and width counts as a conflict and is still kept under its own key (the
 * sender has reused the reference; the stale message expires). */
csms_result_t csms_reassembly_add(csms_reassembly_t *r, const char *sender,
                                  const sms_concat_t *concat, const uint8_t *data, size_t len,
                                  uint64_t now_ms, const uint8_t **out_payload, size_t *out_len);

/* Expires incomplete messages idle for the timeout at now_ms; returns how many expired. The
 * periodic step of the binding's timer. */
size_t csms_reassembly_check(csms_reassembly_t *r, uint64_t now_ms);

/* When the next incomplete message expires (for arming a timer), or UINT64_MAX when none. */
uint64_t csms_reassembly_next_expiry(const csms_reassembly_t *r);

#endif
