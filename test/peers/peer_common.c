/* Shared plumbing of the test peers; see peer_common.h. */
#include "peer_common.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- logging */

static const char *log_program = "peer";
static int log_level = LOG_WARNING;

void peer_log_init(const char *program, int level) {
  log_program = program;
  log_level = level;
  coap_set_log_handler(peer_coap_log);
  /* libcoap filters before calling the handler; the device needs LOG_ALERT messages
   * ("got RST for mid=...") even when the user asked for silence, so libcoap always
   * logs at least that much and peer_coap_log() applies the user's level. */
  coap_set_log_level(level < LOG_ALERT ? LOG_ALERT : level);
  coap_dtls_set_log_level(level < LOG_ALERT ? LOG_ALERT : level);
}

static void log_line(int level, const char *message) {
  static const char *const names[] = {"EMRG", "ALRT", "CRIT", "ERR ", "WARN",
                                      "NOTE", "INFO", "DEBG"};
  const char *name = level >= 0 && level < 8 ? names[level] : "DEBG";
  size_t len = strlen(message);

  while (len > 0 && message[len - 1] == '\n')
    len--;
  fprintf(stderr, "%s %s %.*s\n", log_program, name, (int)len, message);
}

void peer_log(int level, const char *fmt, ...) {
  char message[1024];
  va_list ap;

  if (level > log_level)
    return;
  va_start(ap, fmt);
  vsnprintf(message, sizeof(message), fmt, ap);
  va_end(ap);
  log_line(level, message);
}

void peer_coap_log(coap_log_t level, const char *message) {
  if (level <= log_level)
    log_line(level, message);
}

/* ------------------------------------------------------------ JSON events */

static void *xrealloc(void *p, size_t size) {
  void *q = realloc(p, size);

  if (!q) {
    perror("realloc");
    abort();
  }
  return q;
}

static void json_put(json_buf_t *ev, const char *text, size_t len) {
  if (ev->len + len + 1 > ev->cap) {
    ev->cap = (ev->len + len + 1) * 2;
    ev->buf = xrealloc(ev->buf, ev->cap);
  }
  memcpy(ev->buf + ev->len, text, len);
  ev->len += len;
  ev->buf[ev->len] = '\0';
}

static void json_puts(json_buf_t *ev, const char *text) {
  json_put(ev, text, strlen(text));
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not valid UTF-8. */
static size_t utf8_sequence_len(const uint8_t *p, size_t avail) {
  size_t need;
  uint32_t cp;

  if (p[0] < 0x80)
    return 1;
  if ((p[0] & 0xe0) == 0xc0) {
    need = 2;
    cp = p[0] & 0x1f;
  } else if ((p[0] & 0xf0) == 0xe0) {
    need = 3;
    cp = p[0] & 0x0f;
  } else if ((p[0] & 0xf8) == 0xf0) {
    need = 4;
    cp = p[0] & 0x07;
  } else {
    return 0;
  }
  if (avail < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  /* Reject overlong forms, surrogates and values beyond Unicode. */
  if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return need;
}

bool peer_is_printable_utf8(const uint8_t *data, size_t len) {
  size_t i = 0;

  while (i < len) {
    size_t n = utf8_sequence_len(data + i, len - i);

    if (n == 0)
      return false;
    if (n == 1 && (data[i] < 0x20 || data[i] == 0x7f) && data[i] != '\t' && data[i] != '\n' &&
        data[i] != '\r')
      return false;
    i += n;
  }
  return true;
}

/* Writes a JSON string literal; bytes that are not UTF-8 become U+FFFD so the line stays
 * valid JSON whatever a device sent. */
static void json_put_string(json_buf_t *ev, const void *value, size_t len) {
  const uint8_t *p = value;
  size_t i = 0;

  json_puts(ev, "\"");
  while (i < len) {
    size_t n = utf8_sequence_len(p + i, len - i);
    char esc[8];

    if (n == 0) {
      json_puts(ev, "\\ufffd");
      i++;
      continue;
    }
    if (n == 1 && (p[i] == '"' || p[i] == '\\')) {
      esc[0] = '\\';
      esc[1] = (char)p[i];
      json_put(ev, esc, 2);
    } else if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
      snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
      json_puts(ev, esc);
    } else {
      json_put(ev, (const char *)p + i, n);
    }
    i += n;
  }
  json_puts(ev, "\"");
}

static void json_key(json_buf_t *ev, const char *key) {
  if (ev->need_comma)
    json_puts(ev, ",");
  json_put_string(ev, key, strlen(key));
  json_puts(ev, ":");
  ev->need_comma = true;
}

void json_begin(json_buf_t *ev, const char *name) {
  memset(ev, 0, sizeof(*ev));
  json_puts(ev, "{");
  json_add_str(ev, "event", name);
}

void json_add_str(json_buf_t *ev, const char *key, const char *value) {
  if (!value) {
    json_add_null(ev, key);
    return;
  }
  json_add_strn(ev, key, value, strlen(value));
}

void json_add_strn(json_buf_t *ev, const char *key, const void *value, size_t len) {
  json_key(ev, key);
  json_put_string(ev, value, len);
}

void json_add_int(json_buf_t *ev, const char *key, long long value) {
  char text[32];

  json_key(ev, key);
  snprintf(text, sizeof(text), "%lld", value);
  json_puts(ev, text);
}

void json_add_bool(json_buf_t *ev, const char *key, bool value) {
  json_key(ev, key);
  json_puts(ev, value ? "true" : "false");
}

void json_add_null(json_buf_t *ev, const char *key) {
  json_key(ev, key);
  json_puts(ev, "null");
}

void json_add_hex(json_buf_t *ev, const char *key, const uint8_t *data, size_t len) {
  static const char digits[] = "0123456789abcdef";

  json_key(ev, key);
  json_puts(ev, "\"");
  for (size_t i = 0; i < len; i++) {
    char pair[2] = {digits[data[i] >> 4], digits[data[i] & 0x0f]};

    json_put(ev, pair, 2);
  }
  json_puts(ev, "\"");
}

void json_add_payload(json_buf_t *ev, const uint8_t *data, size_t len) {
  if (peer_is_printable_utf8(data, len))
    json_add_strn(ev, "payload", data, len);
  else
    json_add_null(ev, "payload");
  json_add_hex(ev, "payload_hex", data, len);
  json_add_int(ev, "payload_len", (long long)len);
}

void json_add_pdu_payload(json_buf_t *ev, const coap_pdu_t *pdu) {
  const uint8_t *data = NULL;
  size_t len = 0;

  if (!coap_get_data(pdu, &len, &data))
    len = 0;
  json_add_payload(ev, data, len);
}

void json_begin_array(json_buf_t *ev, const char *key) {
  json_key(ev, key);
  json_puts(ev, "[");
  ev->need_comma = false;
}

void json_array_str(json_buf_t *ev, const char *value) {
  if (ev->need_comma)
    json_puts(ev, ",");
  json_put_string(ev, value, strlen(value));
  ev->need_comma = true;
}

void json_end_array(json_buf_t *ev) {
  json_puts(ev, "]");
  ev->need_comma = true;
}

void json_append_raw(json_buf_t *buf, const char *text) {
  json_puts(buf, text);
}

void json_append_string(json_buf_t *buf, const void *value, size_t len) {
  json_put_string(buf, value, len);
}

void json_buf_free(json_buf_t *buf) {
  free(buf->buf);
  memset(buf, 0, sizeof(*buf));
}

void json_emit(json_buf_t *ev) {
  json_puts(ev, "}\n");
  /* One fwrite per event so a reader never sees half a line between two events. */
  fwrite(ev->buf, 1, ev->len, stdout);
  fflush(stdout);
  free(ev->buf);
  memset(ev, 0, sizeof(*ev));
}

/* ---------------------------------------------------------------- parsing */

bool peer_resolve(const char *host, size_t host_len, uint16_t port, coap_address_t *out_addr) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *res = NULL;
  char name[256];
  int rc;

  if (host_len >= sizeof(name))
    return false;
  memcpy(name, host, host_len);
  name[host_len] = '\0';
  rc = getaddrinfo(name, NULL, &hints, &res);
  if (rc != 0 || !res) {
    peer_log(LOG_ERR, "cannot resolve '%s': %s", name, gai_strerror(rc));
    return false;
  }
  coap_address_init(out_addr);
  out_addr->size = res->ai_addrlen;
  memcpy(&out_addr->addr, res->ai_addr, res->ai_addrlen);
  if (res->ai_family == AF_INET)
    out_addr->addr.sin.sin_port = htons(port);
  else
    out_addr->addr.sin6.sin6_port = htons(port);
  freeaddrinfo(res);
  return true;
}

bool peer_parse_host_port(const char *text, coap_address_t *out_addr) {
  const char *colon = strrchr(text, ':');
  const char *host = text;
  size_t host_len;
  long port;

  if (!colon || !peer_parse_long(colon + 1, 0, 65535, &port)) {
    peer_log(LOG_ERR, "expected HOST:PORT, got '%s'", text);
    return false;
  }
  host_len = (size_t)(colon - text);
  if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
    host++;
    host_len -= 2;
  }
  return peer_resolve(host, host_len, (uint16_t)port, out_addr);
}

static int hex_nibble(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool peer_hex_decode(const char *hex, uint8_t **out_data, size_t *out_len) {
  size_t len = strlen(hex);
  uint8_t *data;

  if (len % 2 != 0)
    return false;
  data = xrealloc(NULL, len / 2 + 1);
  for (size_t i = 0; i < len / 2; i++) {
    int hi = hex_nibble(hex[2 * i]);
    int lo = hex_nibble(hex[2 * i + 1]);

    if (hi < 0 || lo < 0) {
      free(data);
      return false;
    }
    data[i] = (uint8_t)(hi << 4 | lo);
  }
  *out_data = data;
  *out_len = len / 2;
  return true;
}

bool peer_parse_long(const char *text, long min, long max, long *out_value) {
  char *end;
  long value;

  if (!text || !*text)
    return false;
  errno = 0;
  value = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < min || value > max)
    return false;
  *out_value = value;
  return true;
}

char *peer_next_word(char **cursor) {
  char *p = *cursor;
  char *word;

  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '\0') {
    *cursor = p;
    return NULL;
  }
  word = p;
  while (*p && *p != ' ' && *p != '\t')
    p++;
  if (*p)
    *p++ = '\0';
  *cursor = p;
  return word;
}

/* ----------------------------------------------------------- CoAP helpers */

const char *peer_code_str(coap_pdu_code_t code, char out_buf[8]) {
  snprintf(out_buf, 8, "%u.%02u", ((unsigned)code >> 5) & 7, (unsigned)code & 0x1f);
  return out_buf;
}

const char *peer_type_str(coap_pdu_type_t type) {
  switch (type) {
  case COAP_MESSAGE_CON:
    return "CON";
  case COAP_MESSAGE_NON:
    return "NON";
  case COAP_MESSAGE_ACK:
    return "ACK";
  case COAP_MESSAGE_RST:
    return "RST";
  }
  return "?";
}

const char *peer_method_str(coap_pdu_code_t code) {
  switch (code) {
  case COAP_REQUEST_CODE_GET:
    return "GET";
  case COAP_REQUEST_CODE_POST:
    return "POST";
  case COAP_REQUEST_CODE_PUT:
    return "PUT";
  case COAP_REQUEST_CODE_DELETE:
    return "DELETE";
  case COAP_REQUEST_CODE_FETCH:
    return "FETCH";
  case COAP_REQUEST_CODE_PATCH:
    return "PATCH";
  case COAP_REQUEST_CODE_IPATCH:
    return "iPATCH";
  default:
    return "?";
  }
}

const char *peer_nack_str(coap_nack_reason_t reason) {
  switch (reason) {
  case COAP_NACK_TOO_MANY_RETRIES:
    return "too-many-retries";
  case COAP_NACK_NOT_DELIVERABLE:
    return "not-deliverable";
  case COAP_NACK_RST:
    return "rst";
  case COAP_NACK_TLS_FAILED:
    return "tls-failed";
  case COAP_NACK_ICMP_ISSUE:
    return "icmp-issue";
  }
  return "unknown";
}

const char *peer_session_remote_str(const coap_session_t *session, char out_buf[64]) {
  const coap_address_t *remote = coap_session_get_addr_remote(session);

  out_buf[0] = '\0';
  if (remote && coap_print_addr(remote, (unsigned char *)out_buf, 64) == 0)
    out_buf[0] = '\0';
  return out_buf;
}

long peer_uint_option(const coap_pdu_t *pdu, coap_option_num_t number) {
  coap_opt_iterator_t it;
  coap_opt_t *opt = coap_check_option(pdu, number, &it);

  if (!opt)
    return -1;
  return (long)coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
}

bool peer_add_uri_path(coap_pdu_t *pdu, const char *path) {
  const char *p = path;

  while (*p) {
    const char *end;

    while (*p == '/')
      p++;
    if (!*p)
      break;
    end = strchr(p, '/');
    if (!end)
      end = p + strlen(p);
    if (!coap_add_option(pdu, COAP_OPTION_URI_PATH, (size_t)(end - p), (const uint8_t *)p))
      return false;
    p = end;
  }
  return true;
}

bool peer_add_uri_query(coap_pdu_t *pdu, const char *query) {
  const char *p = query;

  while (*p) {
    const char *end = strchr(p, '&');

    if (!end)
      end = p + strlen(p);
    if (end > p &&
        !coap_add_option(pdu, COAP_OPTION_URI_QUERY, (size_t)(end - p), (const uint8_t *)p))
      return false;
    p = *end ? end + 1 : end;
  }
  return true;
}

bool peer_add_uint_option(coap_pdu_t *pdu, coap_option_num_t number, unsigned value) {
  uint8_t buf[4];

  return coap_add_option(pdu, number, coap_encode_var_safe(buf, sizeof(buf), value), buf) != 0;
}

/* Concatenates the values of every option NUMBER, each preceded by SEPARATOR. */
static char *join_options(const coap_pdu_t *pdu, coap_option_num_t number, char separator) {
  coap_opt_filter_t filter;
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  char *text = xrealloc(NULL, 1);
  size_t len = 0;

  coap_option_filter_clear(&filter);
  coap_option_filter_set(&filter, number);
  coap_option_iterator_init(pdu, &it, &filter);
  while ((opt = coap_option_next(&it))) {
    size_t n = coap_opt_length(opt);

    text = xrealloc(text, len + n + 2);
    text[len++] = separator;
    memcpy(text + len, coap_opt_value(opt), n);
    len += n;
  }
  text[len] = '\0';
  return text;
}

char *peer_uri_path(const coap_pdu_t *pdu) {
  char *path = join_options(pdu, COAP_OPTION_URI_PATH, '/');

  if (!*path) {
    free(path);
    path = xrealloc(NULL, 2);
    strcpy(path, "/");
  }
  return path;
}

char **peer_uri_queries(const coap_pdu_t *pdu, size_t *out_count) {
  coap_opt_filter_t filter;
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  char **queries = xrealloc(NULL, sizeof(char *));
  size_t count = 0;

  coap_option_filter_clear(&filter);
  coap_option_filter_set(&filter, COAP_OPTION_URI_QUERY);
  coap_option_iterator_init(pdu, &it, &filter);
  while ((opt = coap_option_next(&it))) {
    size_t n = coap_opt_length(opt);
    char *q = xrealloc(NULL, n + 1);

    memcpy(q, coap_opt_value(opt), n);
    q[n] = '\0';
    queries = xrealloc(queries, (count + 2) * sizeof(char *));
    queries[count++] = q;
  }
  queries[count] = NULL;
  if (out_count)
    *out_count = count;
  return queries;
}

void peer_free_strings(char **strings) {
  if (!strings)
    return;
  for (char **s = strings; *s; s++)
    free(*s);
  free(strings);
}

uint64_t peer_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------- event loop */

static volatile sig_atomic_t quit_requested;

static void on_quit_signal(int signo) {
  (void)signo;
  quit_requested = 1;
}

void peer_loop_quit(void) {
  quit_requested = 1;
}

typedef struct stdin_lines_t {
  char *buf;
  size_t len;
  bool open;
} stdin_lines_t;

static void dispatch_lines(const peer_loop_t *loop, stdin_lines_t *in, bool flush_partial) {
  size_t start = 0;

  if (!in->buf)
    return;

  for (size_t i = 0; i < in->len && !quit_requested; i++) {
    if (in->buf[i] != '\n')
      continue;
    in->buf[i] = '\0';
    if (i > start && in->buf[i - 1] == '\r')
      in->buf[i - 1] = '\0';
    loop->on_line(loop->arg, in->buf + start);
    start = i + 1;
  }
  if (flush_partial && start < in->len && !quit_requested) {
    in->buf[in->len] = '\0';
    loop->on_line(loop->arg, in->buf + start);
    start = in->len;
  }
  memmove(in->buf, in->buf + start, in->len - start);
  in->len -= start;
}

/* Reads what poll said is there; only one read() so it cannot block. */
static void read_stdin(const peer_loop_t *loop, stdin_lines_t *in) {
  char chunk[4096];
  ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    in->open = false;
    dispatch_lines(loop, in, true);
    if (!loop->stay_on_eof) {
      peer_log(LOG_INFO, "stdin closed, exiting");
      quit_requested = 1;
    }
    return;
  }
  in->buf = xrealloc(in->buf, in->len + (size_t)n + 1);
  memcpy(in->buf + in->len, chunk, (size_t)n);
  in->len += (size_t)n;
  dispatch_lines(loop, in, false);
}

/* libcoap built with epoll: its one fd (sockets and retransmit timer) joins our ppoll,
 * which also re-enables SIGTERM/SIGINT atomically so a signal cannot be missed. */
static bool wait_epoll(const peer_loop_t *loop, int coap_fd, bool watch_stdin, int timeout_ms,
                       const sigset_t *wait_mask) {
  struct pollfd fds[2] = {{.fd = coap_fd, .events = POLLIN},
                          {.fd = STDIN_FILENO, .events = POLLIN}};
  struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
  int rc = ppoll(fds, watch_stdin ? 2 : 1, timeout_ms >= 0 ? &ts : NULL, wait_mask);

  coap_io_process(loop->ctx, COAP_IO_NO_WAIT);
  return rc > 0 && watch_stdin && (fds[1].revents & (POLLIN | POLLHUP | POLLERR));
}

/* libcoap without epoll: let its select() watch stdin too, then ask poll() whether stdin is
 * readable (select()'s result sets are not filled in on every path). The wait is capped
 * because a signal arriving just before select() would go unnoticed until it returns. */
static bool wait_select(const peer_loop_t *loop, bool watch_stdin, int timeout_ms,
                        const sigset_t *wait_mask) {
  struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
  sigset_t blocked;
  fd_set readfds;
  unsigned wait_ms = timeout_ms < 0 || timeout_ms > 200 ? 200 : (unsigned)timeout_ms;

  FD_ZERO(&readfds);
  if (watch_stdin)
    FD_SET(STDIN_FILENO, &readfds);
  sigprocmask(SIG_SETMASK, wait_mask, &blocked);
  coap_io_process_with_fds(loop->ctx, wait_ms ? wait_ms : 1, STDIN_FILENO + 1,
                           watch_stdin ? &readfds : NULL, NULL, NULL);
  sigprocmask(SIG_SETMASK, &blocked, NULL);
  return watch_stdin && poll(&in, 1, 0) > 0;
}

void peer_loop_run(const peer_loop_t *loop) {
  struct sigaction sa;
  sigset_t quit_signals, saved_mask, wait_mask;
  stdin_lines_t in = {.open = true};
  int coap_fd = coap_context_get_coap_fd(loop->ctx);

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_quit_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&quit_signals);
  sigaddset(&quit_signals, SIGINT);
  sigaddset(&quit_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &quit_signals, &saved_mask);
  wait_mask = saved_mask;
  sigdelset(&wait_mask, SIGINT);
  sigdelset(&wait_mask, SIGTERM);

  while (!quit_requested) {
    int timeout_ms = loop->next_timer_ms ? loop->next_timer_ms(loop->arg) : -1;
    bool stdin_ready = coap_fd >= 0
                           ? wait_epoll(loop, coap_fd, in.open, timeout_ms, &wait_mask)
                           : wait_select(loop, in.open, timeout_ms, &wait_mask);

    if (quit_requested)
      break;
    if (stdin_ready)
      read_stdin(loop, &in);
    if (loop->on_turn && !quit_requested)
      loop->on_turn(loop->arg);
  }
  free(in.buf);
  sigprocmask(SIG_SETMASK, &saved_mask, NULL);
}
