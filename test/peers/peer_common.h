/*
 * Shared plumbing of the two test peers (lwm2m-test-server, lwm2m-test-device):
 * one JSON event per stdout line, logging to stderr, the single-threaded loop over
 * libcoap and stdin, and the small parsers both command lines need.
 *
 * Test code: it aborts on allocation failure instead of propagating it.
 */
#ifndef PEER_COMMON_H
#define PEER_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <coap3/coap.h>

/* ---- logging (stderr) ---- */

/* Sets the program name used as log prefix and the level for both our and libcoap's logs. */
void peer_log_init(const char *program, int level);
void peer_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* libcoap log handler: forwards libcoap's messages to peer_log(). */
void peer_coap_log(coap_log_t level, const char *message);

/* ---- JSON events (stdout, one object per line) ---- */

/* A growing JSON text: an event line, or a SenML-JSON payload built with the append calls. */
typedef struct json_buf_t {
  char *buf;
  size_t len;
  size_t cap;
  bool need_comma;
} json_buf_t;

/* Starts {"event":NAME ...; the event owns a heap buffer until json_emit(). */
void json_begin(json_buf_t *ev, const char *name);
void json_add_str(json_buf_t *ev, const char *key, const char *value); /* NULL -> null */
void json_add_strn(json_buf_t *ev, const char *key, const void *value, size_t len);
void json_add_int(json_buf_t *ev, const char *key, long long value);
void json_add_bool(json_buf_t *ev, const char *key, bool value);
void json_add_null(json_buf_t *ev, const char *key);
void json_add_hex(json_buf_t *ev, const char *key, const uint8_t *data, size_t len);
/* "payload" (text when printable UTF-8, else null), "payload_hex" and "payload_len". */
void json_add_payload(json_buf_t *ev, const uint8_t *data, size_t len);
/* json_add_payload() of the PDU's body. */
void json_add_pdu_payload(json_buf_t *ev, const coap_pdu_t *pdu);
void json_begin_array(json_buf_t *ev, const char *key);
void json_array_str(json_buf_t *ev, const char *value);
void json_end_array(json_buf_t *ev);
/* Raw pieces for payloads that are not event objects; start from a zeroed json_buf_t. */
void json_append_raw(json_buf_t *buf, const char *text);
void json_append_string(json_buf_t *buf, const void *value, size_t len);
void json_buf_free(json_buf_t *buf);
/* Closes the object, writes it as one line to stdout and frees the buffer. */
void json_emit(json_buf_t *ev);

bool peer_is_printable_utf8(const uint8_t *data, size_t len);

/* ---- parsing ---- */

/* "HOST:PORT", "[V6]:PORT"; resolves HOST. Returns false with a log on error. */
bool peer_parse_host_port(const char *text, coap_address_t *out_addr);
/* Resolves HOST (not NUL-terminated) and PORT into out_addr. */
bool peer_resolve(const char *host, size_t host_len, uint16_t port, coap_address_t *out_addr);
/* Decodes hex text (whitespace not allowed). *out_data is malloc'ed, caller frees it. */
bool peer_hex_decode(const char *hex, uint8_t **out_data, size_t *out_len);
bool peer_parse_long(const char *text, long min, long max, long *out_value);

/* ---- CoAP helpers ---- */

/* "2.05" into a buffer of at least 8 bytes. */
const char *peer_code_str(coap_pdu_code_t code, char out_buf[8]);
const char *peer_type_str(coap_pdu_type_t type);
const char *peer_method_str(coap_pdu_code_t code);
const char *peer_nack_str(coap_nack_reason_t reason);
/* "127.0.0.1:5683" of the session's remote address into a buffer of >= 64 bytes. */
const char *peer_session_remote_str(const coap_session_t *session, char out_buf[64]);
/* Value of a uint option, or -1 when absent. */
long peer_uint_option(const coap_pdu_t *pdu, coap_option_num_t number);
/* Adds one Uri-Path option per '/'-separated segment of PATH ("/" adds none). */
bool peer_add_uri_path(coap_pdu_t *pdu, const char *path);
/* Adds one Uri-Query option per '&'-separated part of QUERY. */
bool peer_add_uri_query(coap_pdu_t *pdu, const char *query);
bool peer_add_uint_option(coap_pdu_t *pdu, coap_option_num_t number, unsigned value);
/* "/3/0/1" from the Uri-Path options; malloc'ed, caller frees it. */
char *peer_uri_path(const coap_pdu_t *pdu);
/* Uri-Query options, in order, each malloc'ed into a NULL-terminated malloc'ed array. */
char **peer_uri_queries(const coap_pdu_t *pdu, size_t *out_count);
void peer_free_strings(char **strings);
/* Milliseconds of a monotonic clock. */
uint64_t peer_now_ms(void);

/* ---- the event loop ---- */

typedef struct peer_loop_t {
  coap_context_t *ctx;
  /* Called with one stdin line, without its newline. */
  void (*on_line)(void *arg, char *line);
  /* Milliseconds until the peer's own next timer, or -1 for none. */
  int (*next_timer_ms)(void *arg);
  /* Called after every loop turn so the peer can run its due timers. */
  void (*on_turn)(void *arg);
  void *arg;
  bool stay_on_eof;
} peer_loop_t;

/* Runs until SIGTERM/SIGINT, peer_loop_quit(), or stdin EOF (unless stay_on_eof). */
void peer_loop_run(const peer_loop_t *loop);
void peer_loop_quit(void);

/* Splits the next space-separated word off *cursor; NULL when there is none. */
char *peer_next_word(char **cursor);

#endif /* PEER_COMMON_H */
