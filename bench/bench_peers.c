/* lwm2m-gw-bench: the simulated devices and the upstream server.
 *
 * Everything runs in one epoll loop in this process, so the direct baseline (device -> server)
 * pays the same bench-side costs as the run through the gateway and the difference between the
 * two is what the gateway adds.
 *
 * Tokens are 8 bytes: fleet id, direction ('U' device request, 'D' server request), the device
 * index (24 bits) and a sequence number (24 bits); an answer is matched to its request by token
 * and, when piggybacked, by message ID (RFC 7252 5.3.2).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coap_msg.h"

#define TOKEN_LEN 8
#define DIR_UP 'U'
#define DIR_DOWN 'D'
#define REGISTER_WINDOW 128   /* Registers in flight at once */
#define REGISTER_ATTEMPTS 3
#define TIMEOUT_SCAN_NS 20000000ull
#define MAX_EVENTS 256

typedef enum { PEER_SERVER, PEER_DEVICE } peer_kind_t;

typedef enum { MODE_IDLE, MODE_REGISTER, MODE_UPLINK, MODE_DOWNLINK } bench_mode_t;

/* One request in flight. */
typedef struct {
  bool busy;
  uint16_t mid;
  uint32_t seq;
  uint64_t sent_ns;
} pending_t;

typedef struct {
  peer_kind_t kind; /* first member: epoll's data.ptr points at it */
  int fd;
  uint32_t index;
  bench_fleet_t *fleet;
  char location[16]; /* <n> of the Location-Path rd/<n> the server gave */
  bool registered;
  int register_attempts;
  uint16_t next_mid;
  uint16_t server_next_mid;     /* the server's MIDs toward this device (RFC 7252 4.4) */
  pending_t up;                 /* the device's own request */
  pending_t down;               /* the server's request toward the device */
  bool seen;                    /* the server saw this device's Register... */
  struct sockaddr_in seen_from; /* ...from this address (the gateway's upstream port) */
} bench_device_t;

struct bench_fleet {
  uint8_t id;
  char ep_prefix[32];
  struct sockaddr_in target;
  bench_device_t *devices;
  size_t count;
};

typedef struct {
  peer_kind_t kind;
  int fd;
  struct sockaddr_in addr;
  uint32_t next_location;
  uint64_t requests;
} bench_server_t;

struct bench {
  int epfd;
  bench_server_t server;
  bench_fleet_t *fleets[BENCH_MAX_FLEETS];
  /* the phase in progress, on one fleet */
  bench_mode_t mode;
  bench_fleet_t *active;
  uint64_t measure_from_ns;
  uint64_t end_ns;
  bench_run_t *run;
  size_t in_flight;
  size_t register_next; /* next device to start registering */
  size_t register_done; /* registered or given up */
  size_t registered;
  uint8_t first_register_error; /* code of the first refused Register, for the report */
  uint8_t rx[4096];
  uint8_t tx[2048];
};

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- samples ---- */

void bench_samples_add(bench_samples_t *s, uint64_t ns) {
  if (s->count == s->capacity) {
    size_t cap = s->capacity ? s->capacity * 2 : 65536;
    uint32_t *us = realloc(s->us, cap * sizeof(*us));
    if (!us)
      return; /* a benchmark short of memory drops samples rather than stopping */
    s->us = us;
    s->capacity = cap;
  }
  uint64_t us = ns / 1000;
  s->us[s->count++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  s->sorted = false;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

double bench_samples_quantile(bench_samples_t *s, double q) {
  if (!s->count)
    return 0;
  if (!s->sorted) {
    qsort(s->us, s->count, sizeof(s->us[0]), cmp_u32);
    s->sorted = true;
  }
  /* nearest rank */
  size_t rank = (size_t)(q * (double)s->count + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > s->count)
    rank = s->count;
  return s->us[rank - 1];
}

void bench_samples_free(bench_samples_t *s) {
  free(s->us);
  memset(s, 0, sizeof(*s));
}

/* ---- small helpers ---- */

static int udp_socket(struct sockaddr_in *out_addr, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (rcvbuf)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    close(fd);
    return -1;
  }
  if (out_addr)
    *out_addr = a;
  return fd;
}

static void send_msg(bench_t *b, int fd, const gw_coap_msg_t *m, const struct sockaddr_in *to) {
  size_t len = gw_coap_serialize(m, b->tx, sizeof(b->tx));
  if (len == 0)
    return;
  /* A failed send shows up as a lost exchange: that is the figure we want for it. */
  (void)sendto(fd, b->tx, len, 0, (const struct sockaddr *)to, sizeof(*to));
}

static void make_token(const bench_device_t *d, uint8_t dir, uint32_t seq, uint8_t out[TOKEN_LEN]) {
  out[0] = d->fleet->id;
  out[1] = dir;
  out[2] = (uint8_t)(d->index >> 16);
  out[3] = (uint8_t)(d->index >> 8);
  out[4] = (uint8_t)d->index;
  out[5] = (uint8_t)(seq >> 16);
  out[6] = (uint8_t)(seq >> 8);
  out[7] = (uint8_t)seq;
}

/* The device and sequence number a token names, or NULL. */
static bench_device_t *token_device(const bench_t *b, const gw_coap_msg_t *m, uint8_t dir,
                                    uint32_t *out_seq) {
  if (m->token_len != TOKEN_LEN || m->token[1] != dir || m->token[0] >= BENCH_MAX_FLEETS)
    return NULL;
  bench_fleet_t *f = b->fleets[m->token[0]];
  uint32_t index = (uint32_t)m->token[2] << 16 | (uint32_t)m->token[3] << 8 | m->token[4];
  if (!f || index >= f->count)
    return NULL;
  *out_seq = (uint32_t)m->token[5] << 16 | (uint32_t)m->token[6] << 8 | m->token[7];
  return &f->devices[index];
}

static size_t count_options(const gw_coap_msg_t *m, uint16_t number) {
  size_t n = 0;
  for (size_t i = 0; i < m->option_count; i++)
    n += m->options[i].number == number;
  return n;
}

static bool first_path_is(const gw_coap_msg_t *m, const char *segment) {
  const gw_coap_option_t *o = gw_coap_find_option(m, GW_COAP_OPT_URI_PATH);
  return o && o->length == strlen(segment) && memcmp(o->value, segment, o->length) == 0;
}

static bool in_window(const bench_t *b, uint64_t now) {
  return now >= b->measure_from_ns && now <= b->end_ns;
}

/* ---- devices ---- */

static void device_send_request(bench_t *b, bench_device_t *d) {
  uint64_t now = bench_now_ns();
  d->up.mid = d->next_mid++;
  d->up.seq = (d->up.seq + 1) & 0xffffff;
  bool reg = b->mode == MODE_REGISTER;
  bool update = !reg && (d->up.seq & 1);
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, GW_COAP_CON, reg || update ? GW_COAP_POST : GW_COAP_GET, d->up.mid);
  uint8_t token[TOKEN_LEN];
  make_token(d, DIR_UP, d->up.seq, token);
  gw_coap_set_token(&m, token, sizeof(token));
  char ep[64];
  if (reg) {
    /* LwM2M Core 6.2.1: POST /rd?ep=..&lt=..&b=U */
    int n = snprintf(ep, sizeof(ep), "ep=%s%u", d->fleet->ep_prefix, d->index);
    gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"rd", 2);
    gw_coap_add_option(&m, GW_COAP_OPT_URI_QUERY, (const uint8_t *)ep, (size_t)n);
    gw_coap_add_option(&m, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"lt=300", 6);
    gw_coap_add_option(&m, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"b=U", 3);
  } else if (update) {
    /* LwM2M Core 6.2.2: Update, POST to the location, no parameters */
    gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"rd", 2);
    gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)d->location,
                       strlen(d->location));
  } else {
    gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"bench", 5);
  }
  d->up.busy = true;
  d->up.sent_ns = now;
  b->in_flight++;
  send_msg(b, d->fd, &m, &d->fleet->target);
}

static void register_fill_window(bench_t *b) {
  bench_fleet_t *f = b->active;
  while (b->in_flight < REGISTER_WINDOW && b->register_next < f->count) {
    bench_device_t *d = &f->devices[b->register_next++];
    d->register_attempts = 1;
    device_send_request(b, d);
  }
}

static void register_complete(bench_t *b, bench_device_t *d, const gw_coap_msg_t *resp) {
  size_t n = 0;
  for (size_t i = 0; resp && i < resp->option_count; i++) {
    const gw_coap_option_t *o = &resp->options[i];
    if (o->number != GW_COAP_OPT_LOCATION_PATH)
      continue;
    /* rd/<n>: keep the last segment */
    size_t len = o->length < sizeof(d->location) - 1 ? o->length : sizeof(d->location) - 1;
    memcpy(d->location, o->value, len);
    d->location[len] = '\0';
    n++;
  }
  if (resp && resp->code == GW_COAP_CREATED && n == 2) {
    d->registered = true;
    b->registered++;
  } else if (!b->first_register_error) {
    b->first_register_error = resp ? resp->code : 0xff; /* 0xff: RST */
  }
  b->register_done++;
  register_fill_window(b);
}

/* The device's request got its answer. */
static void device_complete(bench_t *b, bench_device_t *d, const gw_coap_msg_t *resp) {
  uint64_t now = bench_now_ns();
  uint64_t rtt = now - d->up.sent_ns;
  d->up.busy = false;
  b->in_flight--;
  if (b->mode == MODE_REGISTER) {
    register_complete(b, d, resp);
    return;
  }
  if (b->mode != MODE_UPLINK)
    return;
  uint8_t expected = (d->up.seq & 1) ? GW_COAP_CHANGED : GW_COAP_CONTENT;
  if (in_window(b, now)) {
    if (resp && resp->code == expected) {
      b->run->completed++;
      bench_samples_add(&b->run->samples, rtt);
    } else {
      b->run->errors++;
    }
  }
  if (now < b->end_ns)
    device_send_request(b, d);
}

/* A server request (through the gateway, or directly from the bench server): Read of a
 * resource, answered at once with a piggybacked 2.05 (RFC 7252 5.2.1). */
static void device_answer_request(bench_t *b, bench_device_t *d, const gw_coap_msg_t *req,
                                  const struct sockaddr_in *from) {
  gw_coap_msg_t m;
  bool con = req->type == GW_COAP_CON;
  gw_coap_msg_init(&m, con ? GW_COAP_ACK : GW_COAP_NON, GW_COAP_CONTENT,
                   con ? req->mid : d->next_mid++);
  gw_coap_set_token(&m, req->token, req->token_len);
  gw_coap_add_option(&m, GW_COAP_OPT_CONTENT_FORMAT, NULL, 0); /* text/plain */
  m.payload = (const uint8_t *)"21.5";
  m.payload_len = 4;
  send_msg(b, d->fd, &m, from);
}

static void device_readable(bench_t *b, bench_device_t *d) {
  for (int i = 0; i < 64; i++) {
    struct sockaddr_in from;
    socklen_t from_len = sizeof(from);
    ssize_t len = recvfrom(d->fd, b->rx, sizeof(b->rx), 0, (struct sockaddr *)&from, &from_len);
    if (len < 0)
      return;
    gw_coap_msg_t m;
    if (gw_coap_parse(b->rx, (size_t)len, &m) != GW_COAP_PARSE_OK)
      continue;
    if (gw_coap_is_request(&m)) {
      device_answer_request(b, d, &m, &from);
      continue;
    }
    if (gw_coap_is_response(&m) && m.type == GW_COAP_CON) {
      gw_coap_msg_t ack;
      gw_coap_msg_init(&ack, GW_COAP_ACK, GW_COAP_EMPTY, m.mid);
      send_msg(b, d->fd, &ack, &from);
    }
    if (!d->up.busy)
      continue;
    if (m.type == GW_COAP_RST && m.mid == d->up.mid) {
      device_complete(b, d, NULL);
      continue;
    }
    uint32_t seq;
    if (!gw_coap_is_response(&m) || token_device(b, &m, DIR_UP, &seq) != d || seq != d->up.seq)
      continue;
    if (m.type == GW_COAP_ACK && m.mid != d->up.mid)
      continue;
    device_complete(b, d, &m);
  }
}

/* ---- the server ---- */

/* Uri-Query ep=<prefix><index> of a Register: the device it names, or NULL. */
static bench_device_t *device_by_endpoint(bench_t *b, const gw_coap_msg_t *req) {
  for (size_t i = 0; i < req->option_count; i++) {
    const gw_coap_option_t *o = &req->options[i];
    if (o->number != GW_COAP_OPT_URI_QUERY || o->length < 4 || memcmp(o->value, "ep=", 3) != 0)
      continue;
    char ep[128];
    size_t len = (size_t)o->length - 3;
    if (len > sizeof(ep) - 1)
      len = sizeof(ep) - 1;
    memcpy(ep, o->value + 3, len);
    ep[len] = '\0';
    for (size_t f = 0; f < BENCH_MAX_FLEETS; f++) {
      bench_fleet_t *fleet = b->fleets[f];
      if (!fleet)
        continue;
      size_t plen = strlen(fleet->ep_prefix);
      const char *rest = ep + plen;
      if (strncmp(ep, fleet->ep_prefix, plen) != 0 || !*rest ||
          strspn(rest, "0123456789") != strlen(rest))
        continue;
      unsigned long index = strtoul(rest, NULL, 10);
      if (index < fleet->count)
        return &fleet->devices[index];
    }
  }
  return NULL;
}

static void server_answer_request(bench_t *b, const gw_coap_msg_t *req,
                                  const struct sockaddr_in *from) {
  b->server.requests++;
  if (req->type != GW_COAP_CON)
    return;
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, GW_COAP_ACK, GW_COAP_CONTENT, req->mid);
  gw_coap_set_token(&m, req->token, req->token_len);
  size_t segments = count_options(req, GW_COAP_OPT_URI_PATH);
  char location[16];
  if (req->code == GW_COAP_POST && segments == 1 && first_path_is(req, "rd")) {
    /* Register: 2.01 Created, Location-Path rd/<n> (LwM2M Core 6.2.1) */
    int n = snprintf(location, sizeof(location), "%u", ++b->server.next_location);
    m.code = GW_COAP_CREATED;
    gw_coap_add_option(&m, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)"rd", 2);
    gw_coap_add_option(&m, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)location, (size_t)n);
    bench_device_t *d = device_by_endpoint(b, req);
    if (d) {
      d->seen = true;
      d->seen_from = *from;
    }
  } else if (req->code == GW_COAP_POST && segments == 2 && first_path_is(req, "rd")) {
    m.code = GW_COAP_CHANGED;
  } else {
    gw_coap_add_option(&m, GW_COAP_OPT_CONTENT_FORMAT, NULL, 0);
    m.payload = (const uint8_t *)"bench";
    m.payload_len = 5;
  }
  send_msg(b, b->server.fd, &m, from);
}

static void server_send_request(bench_t *b, bench_device_t *d) {
  d->down.mid = d->server_next_mid++;
  d->down.seq = (d->down.seq + 1) & 0xffffff;
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, GW_COAP_CON, GW_COAP_GET, d->down.mid);
  uint8_t token[TOKEN_LEN];
  make_token(d, DIR_DOWN, d->down.seq, token);
  gw_coap_set_token(&m, token, sizeof(token));
  /* Read /3/0/0 (Device, Manufacturer) */
  gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"3", 1);
  gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"0", 1);
  gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"0", 1);
  d->down.busy = true;
  d->down.sent_ns = bench_now_ns();
  b->in_flight++;
  send_msg(b, b->server.fd, &m, &d->seen_from);
}

static void downlink_complete(bench_t *b, bench_device_t *d, const gw_coap_msg_t *resp) {
  uint64_t now = bench_now_ns();
  d->down.busy = false;
  b->in_flight--;
  if (b->mode != MODE_DOWNLINK)
    return;
  if (in_window(b, now)) {
    if (resp && resp->code == GW_COAP_CONTENT) {
      b->run->completed++;
      bench_samples_add(&b->run->samples, now - d->down.sent_ns);
    } else {
      b->run->errors++;
    }
  }
  if (now < b->end_ns)
    server_send_request(b, d);
}

static void server_readable(bench_t *b) {
  for (int i = 0; i < 256; i++) {
    struct sockaddr_in from;
    socklen_t from_len = sizeof(from);
    ssize_t len =
        recvfrom(b->server.fd, b->rx, sizeof(b->rx), 0, (struct sockaddr *)&from, &from_len);
    if (len < 0)
      return;
    gw_coap_msg_t m;
    if (gw_coap_parse(b->rx, (size_t)len, &m) != GW_COAP_PARSE_OK)
      continue;
    if (gw_coap_is_request(&m)) {
      server_answer_request(b, &m, &from);
      continue;
    }
    if (gw_coap_is_response(&m) && m.type == GW_COAP_CON) {
      gw_coap_msg_t ack;
      gw_coap_msg_init(&ack, GW_COAP_ACK, GW_COAP_EMPTY, m.mid);
      send_msg(b, b->server.fd, &ack, &from);
    }
    uint32_t seq;
    bench_device_t *d = token_device(b, &m, DIR_DOWN, &seq);
    if (m.type == GW_COAP_RST) {
      /* an RST carries no token: find the request by message ID among the active fleet */
      for (size_t k = 0; b->active && k < b->active->count; k++) {
        bench_device_t *x = &b->active->devices[k];
        if (x->down.busy && x->down.mid == m.mid) {
          downlink_complete(b, x, NULL);
          break;
        }
      }
      continue;
    }
    if (!d || !d->down.busy || seq != d->down.seq || !gw_coap_is_response(&m))
      continue;
    if (m.type == GW_COAP_ACK && m.mid != d->down.mid)
      continue;
    downlink_complete(b, d, &m);
  }
}

/* ---- the loop ---- */

static void check_timeouts(bench_t *b, uint64_t now) {
  bench_fleet_t *f = b->active;
  for (size_t i = 0; f && i < f->count; i++) {
    bench_device_t *d = &f->devices[i];
    if (d->up.busy && now - d->up.sent_ns >= BENCH_TIMEOUT_NS) {
      d->up.busy = false;
      b->in_flight--;
      if (b->mode == MODE_REGISTER) {
        if (d->register_attempts++ < REGISTER_ATTEMPTS) {
          device_send_request(b, d);
        } else {
          b->register_done++;
          register_fill_window(b);
        }
      } else if (b->mode == MODE_UPLINK) {
        if (d->up.sent_ns >= b->measure_from_ns && d->up.sent_ns <= b->end_ns)
          b->run->lost++;
        if (now < b->end_ns)
          device_send_request(b, d);
      }
    }
    if (d->down.busy && now - d->down.sent_ns >= BENCH_TIMEOUT_NS) {
      d->down.busy = false;
      b->in_flight--;
      if (b->mode == MODE_DOWNLINK) {
        if (d->down.sent_ns >= b->measure_from_ns && d->down.sent_ns <= b->end_ns)
          b->run->lost++;
        if (now < b->end_ns)
          server_send_request(b, d);
      }
    }
  }
}

static void poll_once(bench_t *b, int timeout_ms) {
  struct epoll_event ev[MAX_EVENTS];
  int n = epoll_wait(b->epfd, ev, MAX_EVENTS, timeout_ms);
  for (int i = 0; i < n; i++) {
    peer_kind_t *kind = ev[i].data.ptr;
    if (*kind == PEER_SERVER)
      server_readable(b);
    else
      device_readable(b, (bench_device_t *)kind);
  }
}

/* Runs the loop until done(b) or deadline. */
static void run_until(bench_t *b, bool (*done)(const bench_t *), uint64_t deadline_ns) {
  uint64_t next_scan = 0;
  for (;;) {
    uint64_t now = bench_now_ns();
    if ((done && done(b)) || now >= deadline_ns)
      return;
    if (now >= next_scan) {
      check_timeouts(b, now);
      next_scan = now + TIMEOUT_SCAN_NS;
    }
    poll_once(b, 5);
  }
}

static bool nothing_in_flight(const bench_t *b) { return b->in_flight == 0; }
static bool all_registers_done(const bench_t *b) {
  return b->register_done == b->active->count;
}

/* ---- public ---- */

int bench_new(bench_t **out_bench) {
  bench_t *b = calloc(1, sizeof(*b));
  if (!b)
    return -1;
  b->epfd = epoll_create1(EPOLL_CLOEXEC);
  b->server.kind = PEER_SERVER;
  b->server.fd = udp_socket(&b->server.addr, 4 << 20);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &b->server};
  if (b->epfd < 0 || b->server.fd < 0 ||
      epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->server.fd, &ev) != 0) {
    perror("lwm2m-gw-bench: server socket");
    bench_free(&b);
    return -1;
  }
  *out_bench = b;
  return 0;
}

void bench_free(bench_t **bench) {
  bench_t *b = *bench;
  if (!b)
    return;
  for (size_t i = 0; i < BENCH_MAX_FLEETS; i++)
    bench_fleet_free(b, &b->fleets[i]);
  if (b->server.fd >= 0)
    close(b->server.fd);
  if (b->epfd >= 0)
    close(b->epfd);
  free(b);
  *bench = NULL;
}

void bench_server_addr(const bench_t *b, struct sockaddr_in *out_addr) {
  *out_addr = b->server.addr;
}

uint64_t bench_server_requests(const bench_t *b) { return b->server.requests; }

int bench_fleet_new(bench_t *b, const char *ep_prefix, const struct sockaddr_in *target,
                    size_t count, bench_fleet_t **out_fleet) {
  size_t id = 0;
  while (id < BENCH_MAX_FLEETS && b->fleets[id])
    id++;
  if (id == BENCH_MAX_FLEETS || count > 0xffffff)
    return -1;
  bench_fleet_t *f = calloc(1, sizeof(*f));
  if (!f)
    return -1;
  f->id = (uint8_t)id;
  snprintf(f->ep_prefix, sizeof(f->ep_prefix), "%s", ep_prefix);
  f->target = *target;
  f->devices = calloc(count, sizeof(f->devices[0]));
  if (!f->devices) {
    free(f);
    return -1;
  }
  b->fleets[id] = f;
  for (size_t i = 0; i < count; i++) {
    bench_device_t *d = &f->devices[i];
    d->kind = PEER_DEVICE;
    d->index = (uint32_t)i;
    d->fleet = f;
    d->next_mid = (uint16_t)(bench_now_ns() * 2654435761u >> 7);
    d->server_next_mid = (uint16_t)(d->next_mid * 40503u);
    d->fd = udp_socket(NULL, 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = d};
    if (d->fd < 0 || epoll_ctl(b->epfd, EPOLL_CTL_ADD, d->fd, &ev) != 0) {
      fprintf(stderr, "lwm2m-gw-bench: device socket %zu of %zu: %s\n", i + 1, count,
              strerror(errno));
      if (d->fd >= 0)
        close(d->fd);
      f->count = i;
      bench_fleet_free(b, &b->fleets[id]);
      return -1;
    }
    f->count = i + 1;
  }
  *out_fleet = f;
  return 0;
}

void bench_fleet_free(bench_t *b, bench_fleet_t **fleet) {
  bench_fleet_t *f = *fleet;
  if (!f)
    return;
  if (b->active == f) {
    b->active = NULL;
    b->mode = MODE_IDLE;
    b->in_flight = 0;
  }
  for (size_t i = 0; i < f->count; i++)
    close(f->devices[i].fd); /* also leaves the epoll set */
  b->fleets[f->id] = NULL;
  free(f->devices);
  free(f);
  *fleet = NULL;
}

static void phase_begin(bench_t *b, bench_fleet_t *f, bench_mode_t mode) {
  b->active = f;
  b->mode = mode;
  b->in_flight = 0;
  for (size_t i = 0; i < f->count; i++) {
    f->devices[i].up.busy = false;
    f->devices[i].down.busy = false;
  }
}

/* Lets the last answers arrive (or time out) so they do not leak into the next phase. */
static void phase_end(bench_t *b) {
  run_until(b, nothing_in_flight, bench_now_ns() + BENCH_TIMEOUT_NS + 100000000ull);
  b->mode = MODE_IDLE;
  b->active = NULL;
  b->in_flight = 0;
}

size_t bench_fleet_register(bench_t *b, bench_fleet_t *f) {
  phase_begin(b, f, MODE_REGISTER);
  b->register_next = b->register_done = b->registered = 0;
  b->first_register_error = 0;
  register_fill_window(b);
  uint64_t deadline = bench_now_ns() + 60ull * 1000000000ull;
  run_until(b, all_registers_done, deadline);
  if (b->first_register_error) {
    char code[8];
    fprintf(stderr, "lwm2m-gw-bench: a Register was answered %s\n",
            b->first_register_error == 0xff ? "with RST"
                                            : gw_coap_code_str(b->first_register_error, code));
  }
  size_t registered = b->registered;
  phase_end(b);
  return registered;
}

static void measure(bench_t *b, bench_fleet_t *f, bench_mode_t mode, double warmup_s,
                    double seconds, bench_run_t *out_run) {
  memset(out_run, 0, sizeof(*out_run));
  out_run->window_s = seconds;
  phase_begin(b, f, mode);
  b->run = out_run;
  uint64_t now = bench_now_ns();
  b->measure_from_ns = now + (uint64_t)(warmup_s * 1e9);
  b->end_ns = b->measure_from_ns + (uint64_t)(seconds * 1e9);
  for (size_t i = 0; i < f->count; i++) {
    bench_device_t *d = &f->devices[i];
    if (mode == MODE_UPLINK && d->registered)
      device_send_request(b, d);
    else if (mode == MODE_DOWNLINK && d->seen)
      server_send_request(b, d);
  }
  run_until(b, NULL, b->end_ns);
  phase_end(b);
  b->run = NULL;
}

void bench_fleet_uplink(bench_t *b, bench_fleet_t *f, double warmup_s, double seconds,
                        bench_run_t *out_run) {
  measure(b, f, MODE_UPLINK, warmup_s, seconds, out_run);
}

void bench_fleet_downlink(bench_t *b, bench_fleet_t *f, double warmup_s, double seconds,
                          bench_run_t *out_run) {
  measure(b, f, MODE_DOWNLINK, warmup_s, seconds, out_run);
}
