/* lwm2m-gw: the cellular modem driver (AT commands, 3GPP TS 27.007 / 27.005 in PDU mode).
 *
 * One modem on one serial port, driven from the gateway's event loop: never blocks. It opens the
 * port (libserialport for real ports, termios for pseudo-terminals), initialises the modem, reads
 * incoming SMS (notified by +CMTI, plus a periodic AT+CMGL sweep), hands each SMS-DELIVER PDU to
 * its owner and deletes it from the modem's storage only after the owner has handled it, sends
 * SMS-SUBMIT PDUs from a paced queue, watches signal and registration, and reopens the port with
 * backoff when the device disappears (USB re-enumeration).
 */
#ifndef SMS_MODEM_H
#define SMS_MODEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct sms_modem sms_modem_t;

typedef struct {
  const char *port;            /* e.g. /dev/serial/by-id/usb-Quectel_EC25-if02-port0, or a PTY */
  unsigned baud;               /* default 115200 */
  const char *pin;             /* SIM PIN, NULL when none */
  const char *smsc;            /* SMSC number to set with AT+CSCA, NULL keeps the SIM's */
  const char *storage;         /* preferred message storage ("ME", "SM", "MT"); falls back to SM */
  uint32_t sweep_interval_ms;  /* periodic AT+CMGL=4, default 30000 */
  uint32_t send_interval_ms;   /* pacing between two AT+CMGS, default 200 */
  uint32_t health_interval_ms; /* AT+CSQ / AT+CREG? / AT+CEREG?, default 60000 */
  uint32_t command_timeout_ms; /* per AT command, default 5000 (AT+CMGS: 60000) */
} sms_modem_conf_t;

typedef enum {
  SMS_MODEM_CLOSED,       /* port not open; reopening with backoff */
  SMS_MODEM_INITIALISING, /* running the initialisation sequence */
  SMS_MODEM_READY,        /* receiving and sending */
  SMS_MODEM_FAILED        /* a permanent problem (wrong PIN, PUK needed): needs the operator */
} sms_modem_state_t;

typedef struct {
  sms_modem_state_t state;
  char manufacturer[64], model[64], revision[64], imei[32], iccid[32], imsi[32];
  char smsc[32];
  char storage[8];
  int storage_used, storage_total;
  int rssi;          /* AT+CSQ first value: 0..31, 99 unknown */
  int creg, cereg;   /* registration stat: 1 home, 5 roaming, other: not registered; -1 unknown */
  uint64_t received, sent, send_failures, reopens, deleted;
  char last_error[128];
  /* Added with the driver (sms/modem.c): */
  bool storage_full;   /* the modem said its message storage is full; the sweep drains it */
  char cnmi[16];       /* the AT+CNMI setting the modem took; "" when none: sweep only */
  char backend[16];    /* "libserialport" or "termios" */
  char device[128];    /* the device the port resolved to, e.g. /dev/ttyUSB2 */
  uint64_t rejected;   /* stored messages that were not a hex PDU: logged, deleted unread */
  uint64_t at_timeouts; /* AT commands without a final result in time */
} sms_modem_status_t;

typedef struct {
  void *arg;
  /* An SMS-DELIVER (or other) PDU as the modem gave it: binary, SMSC octets first. Borrowed.
   * When this returns, the message counts as handled and is deleted from the modem. */
  void (*on_pdu)(void *arg, const uint8_t *pdu, size_t len);
  /* Outcome of sms_modem_send(): ok with the message reference, or failed. */
  void (*on_sent)(void *arg, uint32_t send_id, bool ok, int message_reference);
  void (*on_state)(void *arg, sms_modem_state_t state);
} sms_modem_callbacks_t;
/* The callbacks run from inside the event loop; they may call sms_modem_send() and
 * sms_modem_sweep(), never sms_modem_free(). */

int sms_modem_new(gw_loop_t *loop, const sms_modem_conf_t *conf,
                  const sms_modem_callbacks_t *callbacks, sms_modem_t **out_modem);
/* Opens the port and initialises the modem. A port that is missing or busy is not an error:
 * the driver logs why and keeps trying with backoff (0.5 s doubling to 30 s). */
int sms_modem_start(sms_modem_t *modem);
/* Queues one SMS-SUBMIT for AT+CMGS. pdu is binary with the SMSC part first (00 for the default
 * SMSC); tpdu_len is the length AT+CMGS announces (without the SMSC part). Copies pdu. */
int sms_modem_send(sms_modem_t *modem, const uint8_t *pdu, size_t len, size_t tpdu_len,
                   uint32_t *out_send_id);
/* GW_ERR_INVAL when the SMSC length octet and tpdu_len disagree with len, GW_ERR_TOOBIG above
 * SMS_MODEM_PDU_MAX, GW_ERR_FULL when SMS_MODEM_SEND_QUEUE_MAX are waiting, GW_ERR_IO in the
 * FAILED state. Queued sends survive a reconnect; on_sent reports each one exactly once, except
 * those still queued when the modem is freed. */
#define SMS_MODEM_PDU_MAX 180
#define SMS_MODEM_SEND_QUEUE_MAX 256
size_t sms_modem_send_queue_length(const sms_modem_t *modem);
/* Reads the whole storage now (AT+CMGL=4) instead of at the next sweep. */
int sms_modem_sweep(sms_modem_t *modem);
const sms_modem_status_t *sms_modem_status(const sms_modem_t *modem);
const char *sms_modem_state_name(sms_modem_state_t state);
/* Closes the port; on_sent is not called for sends still queued. */
void sms_modem_free(sms_modem_t **modem);

#endif
