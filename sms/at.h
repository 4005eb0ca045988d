/* lwm2m-gw: the AT engine (3GPP TS 27.007 clause 4 and 9, TS 27.005 clause 3): a line assembler,
 * a pure line classifier, and a queue that runs one command at a time. Internal to sms/.
 *
 * The engine knows nothing about file descriptors: its owner feeds it the bytes read from the
 * port (sms_at_engine_feed) and gives it a write function, so the unit tests drive it without a
 * port. Timers run on the gateway's event loop.
 *
 * What the port may say, and where it goes:
 *   - the command echoed back (before ATE0)           dropped
 *   - blank lines, NUL and other control bytes         dropped (control bytes counted)
 *   - a line longer than SMS_AT_LINE_MAX                discarded up to its end, counted
 *   - unsolicited result codes (+CMTI, RING, ^RSSI...)  on_urc, even in the middle of a reply;
 *     +CMT/+CDS/+CBM header lines carry the PDU on the next line, delivered together
 *   - the AT+CMGS prompt "> " (or ">", with or without line end) writes the command's payload
 *     and Ctrl-Z
 *   - OK, ERROR, +CME ERROR: n, +CMS ERROR: n (numeric or verbose text) end the command
 *   - any other line while a command runs               an intermediate line of its result
 */
#ifndef SMS_AT_H
#define SMS_AT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"

#define SMS_AT_LINE_MAX 1024     /* longest line kept; an SMS PDU line is at most 352 hex digits */
#define SMS_AT_TEXT_MAX 512      /* longest command text */
#define SMS_AT_PAYLOAD_MAX 1024  /* longest prompt payload (hex PDU) */
#define SMS_AT_QUEUE_MAX 64      /* commands waiting in the engine */
#define SMS_AT_RESULT_LINES_MAX 1024 /* intermediate lines kept per command; more are dropped */

/* ---- the line classifier: a pure function over one line without its line end ---- */

typedef enum {
  SMS_AT_LINE_EMPTY,     /* nothing but blanks */
  SMS_AT_LINE_ECHO,      /* starts with "AT": our own command echoed */
  SMS_AT_LINE_OK,        /* final: OK */
  SMS_AT_LINE_ERROR,     /* final: ERROR (and the V.250 call results NO CARRIER, BUSY, ...) */
  SMS_AT_LINE_CME_ERROR, /* final: +CME ERROR: <err> (27.007 9.2) */
  SMS_AT_LINE_CMS_ERROR, /* final: +CMS ERROR: <err> (27.005 3.2.5) */
  SMS_AT_LINE_PROMPT,    /* ">" or "> ": AT+CMGS waits for the PDU */
  SMS_AT_LINE_URC,       /* a known unsolicited result code (also the reply to some queries) */
  SMS_AT_LINE_INFO       /* anything else: information text, a PDU line */
} sms_at_line_kind_t;

typedef enum {
  SMS_AT_URC_NONE,
  SMS_AT_URC_CMTI,    /* +CMTI: <mem>,<index>: a new SMS stored */
  SMS_AT_URC_CMT,     /* +CMT: [<alpha>],<length> + PDU line: SMS delivered directly */
  SMS_AT_URC_CDS,     /* +CDS: <length> + PDU line: status report */
  SMS_AT_URC_CDSI,    /* +CDSI: <mem>,<index>: status report stored */
  SMS_AT_URC_CBM,     /* +CBM: <length> + PDU line: cell broadcast */
  SMS_AT_URC_RING,    /* RING, +CRING: */
  SMS_AT_URC_CREG,    /* +CREG: (circuit-switched registration) */
  SMS_AT_URC_CGREG,   /* +CGREG:, +C5GREG: */
  SMS_AT_URC_CEREG,   /* +CEREG: (EPS registration) */
  SMS_AT_URC_CPIN,    /* +CPIN: <code> */
  SMS_AT_URC_BOOT,    /* RDY, ^SYSSTART: the modem (re)started */
  SMS_AT_URC_READY,   /* Call Ready, SMS Ready, SMS DONE, PB DONE, +PBREADY */
  SMS_AT_URC_SMSFULL, /* ^SMMEMFULL, +QIND: "smsfull" and the like: message storage full */
  SMS_AT_URC_VENDOR,  /* ^RSSI, ^BOOT, ^MODE, ^SRVST, +QIND, +CIEV ...: noise we tolerate */
  SMS_AT_URC_UNKNOWN  /* an unrecognised line while no command ran */
} sms_at_urc_kind_t;

typedef struct {
  sms_at_line_kind_t kind;
  sms_at_urc_kind_t urc;  /* SMS_AT_LINE_URC only */
  bool urc_has_pdu_line;  /* +CMT, +CDS, +CBM: the next line belongs to this URC */
  int code;               /* +CME/+CMS ERROR number; -1 for verbose text not in the tables */
} sms_at_line_t;

/* Classifies line[0..len) (any bytes, not NUL-terminated). Leading and trailing blanks are
 * ignored. Never reads outside the range. */
sms_at_line_kind_t sms_at_classify_line(const char *line, size_t len, sms_at_line_t *out);

const char *sms_at_urc_name(sms_at_urc_kind_t urc);

/* ---- reply parsing helpers (pure) ---- */

/* When line starts with prefix (e.g. "+CMGL:"), returns what follows, blanks skipped; else NULL. */
const char *sms_at_after_prefix(const char *line, const char *prefix);

/* Splits a comma-separated parameter list (27.007 4.1), honouring "quoted strings" with commas
 * inside. Copies the fields into buf (NUL-terminated, quotes removed, blanks around unquoted
 * fields trimmed) and points out_fields into it. Returns the field count, or -1 when buf or
 * max_fields is too small. out_quoted may be NULL. */
int sms_at_split_fields(const char *params, char *buf, size_t buf_size, const char **out_fields,
                        bool *out_quoted, int max_fields);

/* Strict decimal integer 0..INT_MAX. Returns false on anything else. */
bool sms_at_parse_int(const char *field, int *out_value);

/* "+CREG: <n>,<stat>[,...]" (reply) and "+CREG: <stat>[,<lac>,<ci>...]" (unsolicited) alike:
 * the registration status from the parameters after the prefix, or -1. */
int sms_at_parse_reg_stat(const char *params);

/* ---- the engine ---- */

typedef enum {
  SMS_AT_RESULT_OK,
  SMS_AT_RESULT_ERROR,
  SMS_AT_RESULT_CME_ERROR,
  SMS_AT_RESULT_CMS_ERROR,
  SMS_AT_RESULT_TIMEOUT,
  SMS_AT_RESULT_CLOSED /* the port closed (or the engine was freed) before the final result */
} sms_at_status_t;

typedef struct {
  sms_at_status_t status;
  int code;                 /* +CME/+CMS error number, -1 for unknown verbose text, else 0 */
  bool prompt_missing;      /* TIMEOUT: the "> " prompt never came; ESC was sent to cancel */
  bool payload_sent;        /* the prompt came and the payload went out */
  const char *final_line;   /* the final result line; "" for TIMEOUT and CLOSED */
  const char *const *lines; /* intermediate lines in order, without echo and URCs */
  size_t line_count;
} sms_at_result_t; /* everything borrowed for the duration of the callback */

typedef void (*sms_at_done_cb_t)(void *arg, const sms_at_result_t *result);

typedef struct {
  const char *text;   /* e.g. "AT+CMGR=3", without line end; copied */
  const char *expect; /* reply prefix, e.g. "+CMGR:"; decides +CREG:/+CPIN: reply vs URC.
                         NULL when the reply is bare text (AT+CGMI). Copied. */
  uint32_t timeout_ms;        /* 0: the engine's default */
  const uint8_t *payload;     /* written after the prompt, followed by Ctrl-Z; NULL: no prompt.
                                 Copied. */
  size_t payload_len;
  uint32_t prompt_timeout_ms; /* 0: 10000 */
  bool secret;                /* never log the text nor its echo (AT+CPIN="...") */
  sms_at_done_cb_t done;      /* called exactly once, also on close and free */
  void *arg;
} sms_at_command_t;

typedef struct {
  sms_at_urc_kind_t kind;
  const char *line;     /* the URC line, trimmed */
  const char *pdu_line; /* +CMT/+CDS/+CBM: the line after the header; NULL otherwise or when the
                           next line was not hex */
} sms_at_urc_t;

typedef struct {
  void *arg;
  /* Writes up to len bytes; returns how many went out (0 when the port would block), or -1 when
   * the port failed: the engine then drops its output, the owner closes the port. */
  ssize_t (*write)(void *arg, const uint8_t *data, size_t len);
  /* Output is waiting: the owner watches the port for writability and calls
   * sms_at_engine_writable() (want) or stops watching (!want). NULL when writes never block. */
  void (*want_write)(void *arg, bool want);
  void (*on_urc)(void *arg, const sms_at_urc_t *urc);
} sms_at_io_t;

typedef struct {
  uint64_t commands, lines, urcs, timeouts, overlong_lines, garbage_bytes, stray_finals;
} sms_at_stats_t;

typedef struct sms_at_engine sms_at_engine_t;

/* default_timeout_ms: for commands that give none (0: 5000). The engine starts closed. */
int sms_at_engine_new(gw_loop_t *loop, const sms_at_io_t *io, uint32_t default_timeout_ms,
                      sms_at_engine_t **out_engine);
/* Fails all commands with SMS_AT_RESULT_CLOSED, then frees. */
void sms_at_engine_free(sms_at_engine_t **engine);

/* The port is open: clears the line buffer and accepts commands. */
void sms_at_engine_open(sms_at_engine_t *engine);
/* The port is gone: the command in flight and every queued one complete with
 * SMS_AT_RESULT_CLOSED (their callbacks run from inside this call); input and output buffers
 * are cleared; submits fail until the next open. Safe to call from a callback. */
void sms_at_engine_close(sms_at_engine_t *engine);
bool sms_at_engine_is_open(const sms_at_engine_t *engine);

/* Queues a command (copied). GW_ERR_IO when closed, GW_ERR_FULL when the queue is full,
 * GW_ERR_TOOBIG for an over-long text or payload. May start it at once (writes). */
int sms_at_engine_submit(sms_at_engine_t *engine, const sms_at_command_t *command);
/* Writes raw bytes ahead of the next command (ESC to leave a stale prompt at open). */
int sms_at_engine_send_raw(sms_at_engine_t *engine, const uint8_t *data, size_t len);

/* Bytes read from the port (borrowed). Callbacks run from inside. */
void sms_at_engine_feed(sms_at_engine_t *engine, const uint8_t *data, size_t len);
/* The port became writable. */
void sms_at_engine_writable(sms_at_engine_t *engine);

/* Commands queued or in flight. */
size_t sms_at_engine_pending(const sms_at_engine_t *engine);
const sms_at_stats_t *sms_at_engine_stats(const sms_at_engine_t *engine);

const char *sms_at_status_name(sms_at_status_t status);
/* Text of a 27.007 9.2 (CME) or 27.005 3.2.5 (CMS) error number, or NULL when not known. */
const char *sms_at_cme_text(int code);
const char *sms_at_cms_text(int code);

#endif
