/* lwm2m-gw: the `http` binding (LwM2M Transport 1.2.1 section 7).
 *
 * The gateway plays the LwM2M Server (and Bootstrap-Server) over HTTP toward devices:
 *  - uplink: devices send Register, Update, De-register, Send and Bootstrap-Request to the
 *    gateway's HTTP server (http_server.c, libmicrohttpd). Each request becomes one CON CoAP
 *    request with a fresh token for the core (http_map.c); the HTTP exchange waits (suspended)
 *    until the core hands back the server's answer with that token.
 *  - downlink: the server's requests on the device's upstream session come to send() as CoAP;
 *    each becomes one HTTP request to the device's own HTTP server (devices.http_url) through
 *    the libcurl client (http_client.c), and its answer a piggybacked CoAP answer for the core.
 *
 * A device is "rd:<endpoint>" on the registration interface and "bs:<endpoint>" on the
 * bootstrap interface, each with its own upstream session (the bootstrap one goes to
 * bindings.http.bootstrap).
 *
 * Location (7.1.3): the device gets a location of the gateway's own, "/rd/<16 hex digits>"
 * (random), not the upstream server's: devices of several upstreams share one HTTP name space,
 * and an unguessable location is what proves an unauthenticated device's Update is its own.
 * The server's Location-Path is kept here and put into the relayed Update / De-register.
 *
 * Who is asking (http/README.md "Device authentication"): a verified TLS client certificate
 * (CN = endpoint name), else an Authorization field checked against the device's
 * http_password (Basic, user = endpoint name) or http_token (Bearer), else nobody. Send
 * (POST /dp) carries no endpoint: it is the authenticated device's, or that of the only device
 * registered from the request's source address.
 *
 * Queue mode (7.2) is the core's: a device that registered with Q gets the server's requests
 * only after it was heard from (an Update), through the core's per-device queue.
 *
 * Across a restart (issue 11, http/README.md "Across a restart"): each registration's location,
 * the server's Location-Path, how the device authenticated and its source address are kept in
 * the gateway's state (state_put, restore). HTTP has no message ID, and a device answers on the
 * gateway's own connection: the link policy tells the core both (no_message_ids,
 * answers_die_with_process).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_random.h"
#include "gw_text.h"
#include "http_client.h"
#include "http_map.h"
#include "http_server.h"
#include "profile.h"

#define MOD "http"

#define HTTP_MTU 65000            /* a CoAP message for the core; bounds bodies both ways */
#define HTTP_UPLINK_SLOTS 8       /* device requests of one device waiting for the server */
#define HTTP_LOCATION_LEN 20      /* "/rd/" + 16 hex digits */
/* A device request the core never answered (it refused to create the device, say) must not
 * hold its connection forever: after CoAP's MAX_TRANSMIT_WAIT (93 s, RFC 7252 4.8.2) and a
 * margin it is answered 504 by a sweep. */
#define HTTP_UPLINK_MAX_WAIT_MS 100000
#define HTTP_SWEEP_MS 5000
#define HTTP_REALM "Basic realm=\"lwm2m-gw\", charset=\"UTF-8\"" /* RFC 7617 2.1 */

#define HTTP_METRICS(X)                                                                        \
  X(requests, "HTTP requests received from devices")                                          \
  X(bad_requests, "device requests refused as malformed (400, 413, 414, 415), with a reason") \
  X(unsupported, "device requests the gateway does not serve (501; 404 bootstrap: none set)")  \
  X(unauthenticated, "device requests answered 401: missing or wrong credentials")            \
  X(forbidden, "device requests answered 403: unknown endpoint or another device's identity") \
  X(unknown_locations, "Update / De-register of a location the gateway does not know (404)")  \
  X(answered, "device requests answered with the server's answer")                            \
  X(abandoned, "device requests whose client left before the server's answer")                \
  X(server_requests, "server requests sent to devices over HTTP")                             \
  X(server_refused, "server requests answered by the gateway (not translatable, 7.1.4)")      \
  X(device_errors, "server requests that got no HTTP answer from the device (5.02 / 5.04)")

/* What the HTTP server (http_server.c) refused or closed before the binding saw a request:
 * metric name, http_server_status_t field, help. */
#define HTTP_SERVER_METRICS(X)                                                                 \
  X(rejected, refused,                                                                         \
    "requests answered by the HTTP server itself: malformed HTTP (400, 431, 505 from "         \
    "libmicrohttpd) or a body over max_body (413)")                                            \
  X(tls_failures, tls_failures, "TLS handshakes that failed")                                 \
  X(connections_refused_per_client, refused_per_client,                                      \
    "connections closed at once: their address had max_connections_per_client open")          \
  X(connections_evicted, evicted,                                                             \
    "connections waiting for a request header closed to make room for a new client")          \
  X(connections_refused_busy, refused_busy,                                                   \
    "connections closed at once: all max_connections busy with requests")                     \
  X(header_timeouts, header_timeouts,                                                         \
    "connections closed: request header not complete within header_timeout_s")               \
  X(body_timeouts, body_timeouts,                                                             \
    "connections closed: request body not complete within body_timeout_s")

typedef struct {
#define HTTP_METRIC_FIELD(name, help) uint64_t name;
  HTTP_METRICS(HTTP_METRIC_FIELD)
#undef HTTP_METRIC_FIELD
} http_metrics_t;

typedef enum { HTTP_IFACE_RD, HTTP_IFACE_BS } http_iface_t;

/* How the device proved who it is when it registered; later requests must do the same. */
typedef enum {
  HTTP_AUTH_NONE = 0,
  HTTP_AUTH_CERTIFICATE,
  HTTP_AUTH_PASSWORD,
  HTTP_AUTH_TOKEN
} http_auth_t;

/* A device request relayed to the core, until the server's answer (matched by token). */
typedef struct {
  http_exchange_t *x; /* NULL: free */
  uint64_t token;
  uint64_t started_ms;
  http_map_op_t op;
} http_uplink_t;

typedef struct http_device {
  struct http_device *next;          /* chain of the address table */
  struct http_device *next_location; /* chain of the location table */
  gw_baddr_t addr;                   /* "rd:ep" / "bs:ep" */
  http_iface_t iface;
  char ep[128];
  http_auth_t auth;
  char peer_ip[64];                   /* where its last request came from */
  char location[HTTP_LOCATION_LEN + 1]; /* the gateway's location; "" when not registered */
  char upstream_location[128];         /* the server's Location-Path, "rd/5a3f" */
  uint16_t next_mid;
  http_uplink_t uplink[HTTP_UPLINK_SLOTS];
} http_device_t;

/* A server request on its way to a device's HTTP server. */
typedef struct http_downlink {
  struct http_downlink *next;
  struct http_binding *b;
  uint64_t id; /* http_client id */
  gw_baddr_t addr;
  http_map_op_t op;
  gw_coap_type_t type;
  uint16_t mid;
  uint8_t token[GW_COAP_MAX_TOKEN];
  uint8_t token_len;
} http_downlink_t;

typedef struct http_binding {
  gw_binding_t base;
  gw_binding_env_t env;
  const gw_config_t *config;
  http_server_t *server;
  http_client_t *client;
  http_device_t **by_addr, **by_location;
  size_t bucket_count, device_count, max_devices;
  http_downlink_t *downlinks;
  uint64_t next_token;
  gw_link_policy_t policy;
  gw_local_answers_t local;
  gw_timer_t sweep_timer;
  http_metrics_t metrics;
  gw_log_limit_t refusal_log[5]; /* per kind of refusal (refuse_request()) */
  uint8_t coap_buf[GW_COAP_MAX_TOKEN + HTTP_MTU + 256];
} http_binding_t;

static const gw_binding_ops_t *ops_self(void);

/* ------------------------------------------------------------------------------------------ */
/* devices                                                                                     */

static size_t bucket_of(const http_binding_t *b, const char *key) {
  return gw_hash_str(key) & (b->bucket_count - 1);
}

static http_device_t *device_by_addr(const http_binding_t *b, const char *addr) {
  for (http_device_t *d = b->by_addr[bucket_of(b, addr)]; d; d = d->next)
    if (strcmp(d->addr.text, addr) == 0)
      return d;
  return NULL;
}

static http_device_t *device_by_location(const http_binding_t *b, const char *location) {
  for (http_device_t *d = b->by_location[bucket_of(b, location)]; d; d = d->next_location)
    if (strcmp(d->location, location) == 0)
      return d;
  return NULL;
}

static void make_addr(http_iface_t iface, const char *ep, gw_baddr_t *out) {
  snprintf(out->text, sizeof(out->text), "%s:%s", iface == HTTP_IFACE_BS ? "bs" : "rd", ep);
}

/* The endpoint of a device address, and its interface; NULL when it is none of ours. */
static const char *addr_endpoint(const gw_baddr_t *addr, http_iface_t *iface) {
  if (strncmp(addr->text, "rd:", 3) == 0)
    *iface = HTTP_IFACE_RD;
  else if (strncmp(addr->text, "bs:", 3) == 0)
    *iface = HTTP_IFACE_BS;
  else
    return NULL;
  return addr->text + 3;
}

static http_device_t *device_get(http_binding_t *b, http_iface_t iface, const char *ep) {
  gw_baddr_t addr;
  make_addr(iface, ep, &addr);
  http_device_t *d = device_by_addr(b, addr.text);
  if (d || b->device_count >= b->max_devices || strlen(ep) >= sizeof(d->ep))
    return d;
  d = calloc(1, sizeof(*d));
  if (!d)
    return NULL;
  d->addr = addr;
  d->iface = iface;
  snprintf(d->ep, sizeof(d->ep), "%s", ep);
  d->next_mid = gw_random_u16();
  size_t i = bucket_of(b, addr.text);
  d->next = b->by_addr[i];
  b->by_addr[i] = d;
  b->device_count++;
  return d;
}

static void location_unlink(http_binding_t *b, http_device_t *d) {
  if (!d->location[0])
    return;
  for (http_device_t **p = &b->by_location[bucket_of(b, d->location)]; *p;
       p = &(*p)->next_location)
    if (*p == d) {
      *p = d->next_location;
      break;
    }
  d->location[0] = 0;
  d->upstream_location[0] = 0;
}

static void location_link(http_binding_t *b, http_device_t *d, const char *location,
                          const char *upstream) {
  location_unlink(b, d);
  snprintf(d->location, sizeof(d->location), "%s", location);
  snprintf(d->upstream_location, sizeof(d->upstream_location), "%s", upstream);
  size_t i = bucket_of(b, d->location);
  d->next_location = b->by_location[i];
  b->by_location[i] = d;
}

/* A fresh, unguessable location for a registration (see the top of this file). */
static void location_assign(http_binding_t *b, http_device_t *d, const char *upstream) {
  char location[HTTP_LOCATION_LEN + 1];
  do {
    snprintf(location, sizeof(location), "/rd/%016" PRIx64, gw_random_u64());
  } while (device_by_location(b, location));
  location_link(b, d, location, upstream);
}

/* One of ours: "/rd/" and 16 lower-case hex digits. */
static bool location_valid(const char *location) {
  return strlen(location) == HTTP_LOCATION_LEN && strncmp(location, "/rd/", 4) == 0 &&
         strspn(location + 4, "0123456789abcdef") == HTTP_LOCATION_LEN - 4;
}

/* ------------------------------------------------------------------------------------------ */
/* what survives a restart (issue 11; binding.h state_put / restore)                          */

/* A registered device's record in the gateway's state, under its address ("rd:<endpoint>"):
 * what the binding needs to serve it after a restart as before, without a new Register. The
 * value is NUL-terminated fields: the record's version, how the device authenticated (the
 * kind only: secrets stay in the configuration), the gateway's location, the server's
 * Location-Path, the address its last request came from (a device without credentials
 * Sends from there). The core keeps the rest (the device's upstream session, registration,
 * and the server's requests waiting for it). */
#define HTTP_RECORD_VERSION "1"
#define HTTP_RECORD_FIELDS 5
#define HTTP_RECORD_MAX                                                                        \
  (sizeof(HTTP_RECORD_VERSION) + 2 + HTTP_LOCATION_LEN + 1 +                                  \
   sizeof(((http_device_t *)0)->upstream_location) + sizeof(((http_device_t *)0)->peer_ip))

static size_t record_append(char *out, size_t used, const char *field) {
  size_t n = strlen(field) + 1;
  memcpy(out + used, field, n);
  return used + n;
}

/* Saves d's record; durable_now before the binding acknowledges what depends on it (the 201
 * with the location). Only a registration has one. */
static void device_keep(http_binding_t *b, const http_device_t *d, bool durable_now) {
  if (!b->env.state_put || !d->location[0])
    return;
  char value[HTTP_RECORD_MAX];
  char auth[2] = {(char)('0' + d->auth), 0};
  size_t len = record_append(value, 0, HTTP_RECORD_VERSION);
  len = record_append(value, len, auth);
  len = record_append(value, len, d->location);
  len = record_append(value, len, d->upstream_location);
  len = record_append(value, len, d->peer_ip);
  b->env.state_put(b->env.core, &b->base, d->addr.text, value, len, durable_now);
}

/* d's registration ended (De-register, or the core forgot the device): its record goes. */
static void device_unkeep(http_binding_t *b, const http_device_t *d) {
  if (b->env.state_del)
    b->env.state_del(b->env.core, &b->base, d->addr.text);
}

/* The fields of a record (borrowed from value); -1 when it is not one of this version. */
static int record_fields(const char *value, size_t len, const char *out[HTTP_RECORD_FIELDS]) {
  size_t at = 0, k = 0;
  for (; k < HTTP_RECORD_FIELDS && at < len; k++) {
    const char *end = memchr(value + at, 0, len - at);
    if (!end)
      return -1;
    out[k] = value + at;
    at = (size_t)(end - value) + 1;
  }
  return k == HTTP_RECORD_FIELDS && strcmp(out[0], HTTP_RECORD_VERSION) == 0 ? 0 : -1;
}

static http_uplink_t *uplink_by_token(http_device_t *d, uint64_t token) {
  for (size_t i = 0; i < HTTP_UPLINK_SLOTS; i++)
    if (d->uplink[i].x && d->uplink[i].token == token)
      return &d->uplink[i];
  return NULL;
}

static http_uplink_t *uplink_free_slot(http_device_t *d) {
  for (size_t i = 0; i < HTTP_UPLINK_SLOTS; i++)
    if (!d->uplink[i].x)
      return &d->uplink[i];
  return NULL;
}

/* The devices entry of an endpoint, if it is one the HTTP binding may serve: an entry with
 * http_* settings, or one with no other binding's address. */
static const gw_device_conf_t *device_conf(const gw_config_t *config, const char *ep) {
  for (size_t i = 0; i < config->device_count; i++) {
    const gw_device_conf_t *c = &config->devices[i];
    if (strcmp(c->endpoint, ep) != 0)
      continue;
    bool http = c->http_url || c->http_password || c->http_token;
    bool other = c->msisdn || c->ue_address || c->external_id || c->mqtt_prefix;
    return http || !other ? c : NULL;
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* answering devices                                                                           */

static void respond_text(http_exchange_t *x, unsigned status, const char *www_authenticate,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A refusal by the gateway itself: the status and a one-line reason as text/plain. */
static void respond_text(http_exchange_t *x, unsigned status, const char *www_authenticate,
                         const char *fmt, ...) {
  char body[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof(body) - 1 ? (size_t)n : sizeof(body) - 2;
  body[len++] = '\n';
  http_server_headers_t h = {.content_type = "text/plain;charset=utf-8",
                             .www_authenticate = www_authenticate};
  http_server_respond(x, status, &h, (const uint8_t *)body, len);
}

/* ------------------------------------------------------------------------------------------ */
/* who is asking                                                                               */

typedef struct {
  http_auth_t kind;
  char ep[128];   /* the endpoint the credentials belong to; "" when kind is NONE */
  unsigned status; /* 0, or 401 / 403 to refuse with */
  char reason[128];
} http_identity_t;

static bool secrets_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = (unsigned char)(la != lb);
  for (size_t i = 0; i < la; i++) /* constant time in the secret's length */
    diff |= (unsigned char)(a[i] ^ (i < lb ? b[i] : 0));
  return diff == 0;
}

static void identity_from_authorization(const gw_config_t *config, const char *value,
                                        http_identity_t *id) {
  http_map_credentials_t cred;
  if (http_map_credentials(value, &cred) != 0) {
    id->status = 401;
    snprintf(id->reason, sizeof(id->reason), "Authorization is not valid Basic or Bearer");
    return;
  }
  for (size_t i = 0; i < config->device_count && id->kind == HTTP_AUTH_NONE; i++) {
    const gw_device_conf_t *c = &config->devices[i];
    if (cred.scheme == HTTP_MAP_AUTH_BASIC && c->http_password &&
        strcmp(c->endpoint, cred.user) == 0 && secrets_equal(c->http_password, cred.secret))
      id->kind = HTTP_AUTH_PASSWORD;
    else if (cred.scheme == HTTP_MAP_AUTH_BEARER && c->http_token &&
             secrets_equal(c->http_token, cred.secret))
      id->kind = HTTP_AUTH_TOKEN;
    if (id->kind != HTTP_AUTH_NONE)
      snprintf(id->ep, sizeof(id->ep), "%s", c->endpoint);
  }
  if (id->kind == HTTP_AUTH_NONE) {
    id->status = 401;
    snprintf(id->reason, sizeof(id->reason), "credentials not accepted");
  }
  explicit_bzero(&cred, sizeof(cred));
}

static void identify(const http_binding_t *b, const http_server_request_t *req,
                     http_identity_t *id) {
  memset(id, 0, sizeof(*id));
  if (req->client_cert_error) {
    id->status = 403;
    snprintf(id->reason, sizeof(id->reason), "client certificate not accepted: %s",
             req->client_cert_error);
  } else if (req->client_cert_cn) {
    id->kind = HTTP_AUTH_CERTIFICATE;
    snprintf(id->ep, sizeof(id->ep), "%s", req->client_cert_cn);
  } else if (req->authorization) {
    identity_from_authorization(b->config, req->authorization, id);
  }
}

/* May a request that names endpoint ep (Register, Bootstrap-Request) act for it? */
static void check_endpoint(const http_binding_t *b, const char *ep, http_identity_t *id) {
  if (id->status)
    return;
  const gw_device_conf_t *conf = device_conf(b->config, ep);
  if (id->kind != HTTP_AUTH_NONE && strcmp(id->ep, ep) != 0) {
    id->status = 403;
    snprintf(id->reason, sizeof(id->reason), "the credentials are not endpoint \"%.60s\"'s", ep);
  } else if (!conf && !b->config->bindings.http.accept_unknown) {
    id->status = 403;
    snprintf(id->reason, sizeof(id->reason), "endpoint \"%.60s\" is not a configured device", ep);
  } else if (id->kind == HTTP_AUTH_NONE && conf && (conf->http_password || conf->http_token)) {
    id->status = 401;
    snprintf(id->reason, sizeof(id->reason), "endpoint \"%.60s\" must authenticate", ep);
  } else if (id->kind == HTTP_AUTH_NONE && b->config->bindings.http.client_ca_file &&
             !(conf && (conf->http_password || conf->http_token))) {
    id->status = 403;
    snprintf(id->reason, sizeof(id->reason), "a client certificate is required");
  }
}

/* May a request with identity id update or de-register d's registration? Credentials of one
 * endpoint never act on another's, even one registered without credentials (its location is
 * secret, but a location can leak); a registration made with credentials needs the same kind
 * again. */
static bool may_act_on_registration(const http_device_t *d, http_identity_t *id) {
  if (id->kind != HTTP_AUTH_NONE && strcmp(id->ep, d->ep) != 0) {
    id->status = 403;
    snprintf(id->reason, sizeof(id->reason),
             "the credentials are endpoint \"%.40s\"'s, not this registration's", id->ep);
  } else if (d->auth != HTTP_AUTH_NONE && id->kind != d->auth) {
    id->status = id->kind == HTTP_AUTH_NONE ? 401 : 403;
    snprintf(id->reason, sizeof(id->reason), "this registration needs its device's credentials");
  }
  return id->status == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* uplink: device requests                                                                     */


/* The device a request is about, or NULL with *status / reason set. */
static http_device_t *device_for_request(http_binding_t *b, const http_server_request_t *req,
                                         http_map_op_t op, const gw_coap_msg_t *coap,
                                         http_identity_t *id) {
  gw_reg_params_t params;
  const char *ep = params.endpoint;
  http_device_t *d = NULL;
  identify(b, req, id);
  if (id->status)
    return NULL;
  switch (op) {
  case HTTP_MAP_OP_REGISTER:
  case HTTP_MAP_OP_BOOTSTRAP_REQUEST:
  case HTTP_MAP_OP_BOOTSTRAP_PACK:
    if (gw_reg_params_parse(coap, &params) != 0 || !ep[0]) {
      id->status = 400;
      snprintf(id->reason, sizeof(id->reason), "ep must be 1 to 127 bytes");
      break;
    }
    check_endpoint(b, ep, id);
    if (!id->status && op != HTTP_MAP_OP_REGISTER && !b->config->bindings.http.bootstrap) {
      b->metrics.unsupported++;
      id->status = 404;
      snprintf(id->reason, sizeof(id->reason), "no bootstrap server is configured");
    }
    if (!id->status && !(d = device_get(b, op == HTTP_MAP_OP_REGISTER ? HTTP_IFACE_RD
                                                                       : HTTP_IFACE_BS, ep))) {
      id->status = 503;
      snprintf(id->reason, sizeof(id->reason), "too many devices");
    }
    if (d)
      d->auth = id->kind;
    break;
  case HTTP_MAP_OP_UPDATE:
  case HTTP_MAP_OP_DEREGISTER: {
    char location[HTTP_LOCATION_LEN + 1];
    size_t n = strcspn(req->target, "?");
    if (n <= HTTP_LOCATION_LEN) {
      memcpy(location, req->target, n);
      location[n] = 0;
      d = device_by_location(b, location);
    }
    if (!d) {
      b->metrics.unknown_locations++;
      id->status = 404;
      snprintf(id->reason, sizeof(id->reason), "no registration at this location; register again");
    } else if (!may_act_on_registration(d, id)) {
      d = NULL;
    }
    break;
  }
  case HTTP_MAP_OP_SEND:
    if (id->kind != HTTP_AUTH_NONE) {
      gw_baddr_t addr;
      make_addr(HTTP_IFACE_RD, id->ep, &addr);
      d = device_by_addr(b, addr.text);
    } else {
      size_t found = 0;
      for (size_t i = 0; i < b->bucket_count; i++)
        for (http_device_t *e = b->by_addr[i]; e; e = e->next)
          if (e->iface == HTTP_IFACE_RD && e->location[0] && e->auth == HTTP_AUTH_NONE &&
              strcmp(e->peer_ip, req->peer_ip) == 0 && found++ == 0)
            d = e;
      if (found > 1)
        d = NULL;
    }
    if (!d) {
      id->status = 403;
      snprintf(id->reason, sizeof(id->reason),
               "Send needs a registered device: authenticate, or register from this address");
    }
    break;
  default:
    break;
  }
  return d;
}

/* Update and De-register go to the server's own location, not the gateway's. */
static int use_upstream_location(const http_device_t *d, gw_coap_msg_t *m) {
  gw_coap_remove_options(m, GW_COAP_OPT_URI_PATH);
  const char *p = d->upstream_location;
  while (*p) {
    size_t n = strcspn(p, "/");
    if (n && gw_coap_add_option(m, GW_COAP_OPT_URI_PATH, (const uint8_t *)p, n) != 0)
      return GW_ERR_TOOBIG;
    p += n + (p[n] == '/');
  }
  return GW_OK;
}

static void refuse_request(http_binding_t *b, http_exchange_t *x, const http_server_request_t *req,
                           unsigned status, const char *reason) {
  size_t kind = 0; /* its log limit: a flood of one kind must not hide the others */
  if (status == 501) {
    b->metrics.unsupported++;
    kind = 1;
  } else if (status == 401) {
    b->metrics.unauthenticated++;
    kind = 2;
  } else if (status == 403) {
    b->metrics.forbidden++;
    kind = 3;
  } else if (status == 400 || status == 413 || status == 414 || status == 415) {
    b->metrics.bad_requests++; /* 404 has its own counters; 500 / 503 are the gateway's */
    kind = 4;
  }
  gw_log_limited(&b->refusal_log[kind], GW_LOG_NOTICE, MOD, "%s %.80s from %s refused with %u: %s",
                 req->method, req->target, req->peer_ip, status, reason);
  gw_baddr_t from;
  snprintf(from.text, sizeof(from.text), "%s", req->peer_ip);
  if (status == 400 || status == 414 || status == 415)
    b->env.on_rejected(b->env.core, &b->base, &from, reason);
  respond_text(x, status, status == 401 ? HTTP_REALM : NULL, "%s", reason);
}

static void on_device_request(void *arg, http_exchange_t *x, const http_server_request_t *req) {
  http_binding_t *b = arg;
  b->metrics.requests++;
  http_map_request_t hreq = {.method = req->method,
                             .target = req->target,
                             .target_len = strlen(req->target),
                             .content_type = req->content_type,
                             .body = req->body,
                             .body_len = req->body_len};
  http_map_scratch_t scratch = {.used = 0};
  http_map_verdict_t verdict;
  gw_coap_msg_t coap;
  unsigned status = http_map_device_request(&hreq, 0, &coap, &scratch, &verdict);
  if (status != 0) {
    refuse_request(b, x, req, status, verdict.reason);
    return;
  }
  http_identity_t id;
  http_device_t *d = device_for_request(b, req, verdict.op, &coap, &id);
  if (!d) {
    refuse_request(b, x, req, id.status ? id.status : 500, id.reason);
    return;
  }
  http_uplink_t *u = uplink_free_slot(d);
  if (!u) {
    refuse_request(b, x, req, 503, "too many requests of this device in flight");
    return;
  }
  if ((verdict.op == HTTP_MAP_OP_UPDATE || verdict.op == HTTP_MAP_OP_DEREGISTER) &&
      use_upstream_location(d, &coap) != GW_OK) {
    refuse_request(b, x, req, 500, "location does not fit");
    return;
  }
  if (strcmp(d->peer_ip, req->peer_ip) != 0) {
    snprintf(d->peer_ip, sizeof(d->peer_ip), "%s", req->peer_ip);
    /* Committed with this turn of the loop, before any answer that depends on it. */
    device_keep(b, d, false);
  }
  uint64_t token = b->next_token++;
  uint8_t token_bytes[8];
  gw_coap_set_token(&coap, token_bytes, gw_coap_token_from_u64(token, token_bytes));
  coap.mid = d->next_mid++;
  *u = (http_uplink_t){.x = x, .token = token, .started_ms = gw_now_ms(), .op = verdict.op};
  size_t len = gw_coap_serialize(&coap, b->coap_buf, sizeof(b->coap_buf));
  if (len == 0) {
    u->x = NULL;
    refuse_request(b, x, req, 413, "the request does not fit in one CoAP message");
    return;
  }
  GW_DEBUG(MOD, "%s: %s relayed", d->addr.text, http_map_op_name(verdict.op));
  b->env.on_message(b->env.core, &b->base, &d->addr, b->coap_buf, len);
}

static void sweep_due(gw_loop_t *loop, void *arg) {
  http_binding_t *b = arg;
  uint64_t now = gw_now_ms();
  for (size_t i = 0; i < b->bucket_count; i++)
    for (http_device_t *d = b->by_addr[i]; d; d = d->next)
      for (size_t k = 0; k < HTTP_UPLINK_SLOTS; k++) {
        http_uplink_t *u = &d->uplink[k];
        if (!u->x || now - u->started_ms < HTTP_UPLINK_MAX_WAIT_MS)
          continue;
        GW_WARN(MOD, "%s: %s got no answer from the core; answered 504", d->addr.text,
                http_map_op_name(u->op));
        http_exchange_t *x = u->x;
        u->x = NULL;
        respond_text(x, 504, NULL, "no answer from the LwM2M server");
      }
  gw_timer_start(loop, &b->sweep_timer, HTTP_SWEEP_MS);
}

static void on_device_abandoned(void *arg, http_exchange_t *x) {
  http_binding_t *b = arg;
  for (size_t i = 0; i < b->bucket_count; i++)
    for (http_device_t *d = b->by_addr[i]; d; d = d->next)
      for (size_t k = 0; k < HTTP_UPLINK_SLOTS; k++)
        if (d->uplink[k].x == x) {
          d->uplink[k].x = NULL;
          b->metrics.abandoned++;
          GW_INFO(MOD, "%s: client left before the server answered its %s", d->addr.text,
                  http_map_op_name(d->uplink[k].op));
          return;
        }
}

/* The core's answer to a device request: the HTTP answer, with the gateway's Location for a
 * successful Register. */
static int send_device_answer(http_binding_t *b, http_device_t *d, const gw_coap_msg_t *resp) {
  http_uplink_t *u = resp->token_len == 8
                          ? uplink_by_token(d, gw_coap_token_to_u64(resp->token, resp->token_len))
                          : NULL;
  if (!u)
    return GW_OK; /* the client left; counted as abandoned */
  unsigned status;
  bool has_payload = resp->payload_len > 0;
  if (http_map_status_from_coap(resp->code, u->op, has_payload, &status) != HTTP_MAP_OK) {
    char c[8];
    GW_WARN(MOD, "%s: server answered %s, which has no HTTP status; sent as 500", d->addr.text,
            gw_coap_code_str(resp->code, c));
  }
  http_server_headers_t h = {0};
  if (u->op == HTTP_MAP_OP_REGISTER && resp->code == GW_COAP_CREATED) {
    char upstream[sizeof(d->upstream_location)];
    gw_coap_path_str(resp, GW_COAP_OPT_LOCATION_PATH, upstream, sizeof(upstream));
    location_assign(b, d, upstream[0] == '/' ? upstream + 1 : upstream);
    device_keep(b, d, true); /* before the device has its location */
    h.location = d->location;
  } else if (u->op == HTTP_MAP_OP_DEREGISTER && GW_COAP_CODE_CLASS(resp->code) == 2) {
    location_unlink(b, d);
    device_unkeep(b, d);
  }
  const gw_coap_option_t *cf = gw_coap_find_option(resp, GW_COAP_OPT_CONTENT_FORMAT);
  if (has_payload)
    h.content_type = cf ? http_map_media_type((uint16_t)gw_coap_option_uint(cf))
                        : "text/plain;charset=utf-8"; /* diagnostic payload, RFC 7252 5.5.2 */
  http_exchange_t *x = u->x;
  u->x = NULL;
  b->metrics.answered++;
  return http_server_respond(x, status, &h, resp->payload, resp->payload_len);
}

/* ------------------------------------------------------------------------------------------ */
/* downlink: server requests to the device's HTTP server                                       */

static http_downlink_t **downlink_link(http_binding_t *b, const http_downlink_t *dl) {
  for (http_downlink_t **p = &b->downlinks; *p; p = &(*p)->next)
    if (*p == dl)
      return p;
  return NULL;
}

static void downlink_free(http_binding_t *b, http_downlink_t *dl) {
  http_downlink_t **p = downlink_link(b, dl);
  if (p)
    *p = dl->next;
  free(dl);
}

/* Location of a Create's answer ("/3303/1", 7.1.4) as Location-Path options. */
static void add_location_path(gw_coap_msg_t *m, const char *location, char *scratch,
                              size_t size) {
  snprintf(scratch, size, "%s", location);
  char *p = scratch + strspn(scratch, "/");
  while (*p) {
    size_t n = strcspn(p, "/?");
    if (n)
      gw_coap_add_option(m, GW_COAP_OPT_LOCATION_PATH, (const uint8_t *)p, n);
    if (p[n] != '/')
      break;
    p += n + 1;
  }
}

static void on_device_answer(void *arg, uint64_t id, const http_client_response_t *resp) {
  http_downlink_t *dl = arg;
  http_binding_t *b = dl->b;
  (void)id;
  uint8_t code;
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, dl->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON, 0, dl->mid);
  gw_coap_set_token(&m, dl->token, dl->token_len);
  char location[256];
  uint8_t cf_value[4]; /* the option borrows it until serialized */
  if (resp->status == 0) {
    b->metrics.device_errors++;
    bool timeout = resp->error && strstr(resp->error, "imeout");
    code = timeout ? GW_COAP_GATEWAY_TIMEOUT : GW_COAP_CODE(5, 2);
    GW_NOTICE(MOD, "%s: %s got no answer: %s", dl->addr.text, http_map_op_name(dl->op),
              resp->error ? resp->error : "?");
  } else {
    if (http_map_status_to_coap(resp->status, dl->op, &code) != HTTP_MAP_OK)
      GW_WARN(MOD, "%s: device answered %u to %s, which has no CoAP code; sent as 5.00",
              dl->addr.text, resp->status, http_map_op_name(dl->op));
    uint16_t cf;
    bool keep_body = true;
    if (resp->body_len && resp->content_type &&
        http_map_content_format(resp->content_type, strlen(resp->content_type), &cf) ==
            HTTP_MAP_OK) {
      gw_coap_add_option(&m, GW_COAP_OPT_CONTENT_FORMAT, cf_value,
                         gw_coap_encode_uint(cf_value, cf));
    } else if (resp->body_len && GW_COAP_CODE_CLASS(code) == 2) {
      GW_WARN(MOD, "%s: answer to %s has Content-Type \"%.60s\", no LwM2M format; sent as 5.02",
              dl->addr.text, http_map_op_name(dl->op),
              resp->content_type ? resp->content_type : "(none)");
      code = GW_COAP_CODE(5, 2);
      keep_body = false;
    }
    if (dl->op == HTTP_MAP_OP_CREATE && resp->location && GW_COAP_CODE_CLASS(code) == 2)
      add_location_path(&m, resp->location, location, sizeof(location));
    if (keep_body) {
      m.payload = resp->body;
      m.payload_len = resp->body_len;
    }
  }
  m.code = code;
  size_t len = gw_coap_serialize(&m, b->coap_buf, sizeof(b->coap_buf));
  gw_baddr_t addr = dl->addr;
  downlink_free(b, dl);
  if (len)
    b->env.on_message(b->env.core, &b->base, &addr, b->coap_buf, len);
}

static int answer_server(http_binding_t *b, const http_device_t *d, const gw_coap_msg_t *req,
                         uint8_t code, const char *reason) {
  char c[8];
  b->metrics.server_refused++;
  GW_INFO(MOD, "%s: server request answered %s by the gateway: %s", d->addr.text,
          gw_coap_code_str(code, c), reason);
  return gw_local_answer(&b->local, &d->addr, req, code, reason);
}

static int send_server_request(http_binding_t *b, http_device_t *d, const gw_coap_msg_t *req) {
  const gw_device_conf_t *conf = device_conf(b->config, d->ep);
  if (!conf || !conf->http_url)
    return answer_server(b, d, req, GW_COAP_SERVICE_UNAVAILABLE,
                         "the device has no http_url in devices");
  http_map_server_request_t hreq;
  uint8_t code = http_map_server_request(req, &hreq);
  if (code != 0)
    return answer_server(b, d, req, code, hreq.reason);
  size_t url_len = strlen(conf->http_url) + strlen(hreq.target) + 1;
  char *url = malloc(url_len);
  http_downlink_t *dl = calloc(1, sizeof(*dl));
  if (!url || !dl) {
    free(url);
    free(dl);
    return GW_ERR_NOMEM;
  }
  snprintf(url, url_len, "%s%s", conf->http_url, hreq.target);
  *dl = (http_downlink_t){.b = b, .addr = d->addr, .op = hreq.op, .type = req->type,
                          .mid = req->mid, .token_len = req->token_len};
  memcpy(dl->token, req->token, req->token_len);
  http_client_request_t creq = {.method = hreq.method,
                                .url = url,
                                .content_type = hreq.content_type,
                                .accept = hreq.accept,
                                .body = hreq.body,
                                .body_len = hreq.body_len,
                                .timeout_ms = b->config->gateway.device_timeout_ms};
  int rc = http_client_send(b->client, &creq, on_device_answer, dl, &dl->id);
  if (rc == GW_OK) {
    dl->next = b->downlinks;
    b->downlinks = dl;
    b->metrics.server_requests++;
    GW_DEBUG(MOD, "%s: %s %s", d->addr.text, hreq.method, url);
  } else {
    free(dl);
  }
  free(url);
  return rc;
}

static int http_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                     size_t len) {
  http_binding_t *b = (http_binding_t *)binding;
  http_iface_t iface;
  const char *ep = addr_endpoint(to, &iface);
  /* A device the core restored and this binding kept nothing for (a bootstrap device, one
   * killed between the two commits of its Register) is still reached at its http_url. */
  http_device_t *d = ep ? device_get(b, iface, ep) : NULL;
  gw_coap_msg_t m;
  if (!d || gw_coap_parse(data, len, &m) != GW_COAP_PARSE_OK)
    return GW_ERR_INVAL;
  if (gw_coap_is_request(&m))
    return send_server_request(b, d, &m);
  if (gw_coap_is_response(&m))
    return send_device_answer(b, d, &m);
  return GW_OK; /* an empty ACK of a device request: HTTP waits for the answer itself */
}

/* ------------------------------------------------------------------------------------------ */
/* lifecycle                                                                                   */

static bool http_enabled(const gw_config_t *config) { return config->bindings.http.enabled; }

static void http_free(gw_binding_t **binding);

static int http_create(const gw_config_t *config, const gw_binding_env_t *env,
                       gw_binding_t **out_binding) {
  http_binding_t *b = calloc(1, sizeof(*b));
  if (!b)
    return GW_ERR_NOMEM;
  b->base.ops = ops_self();
  b->env = *env;
  b->config = config;
  gw_local_answers_init(&b->local, &b->base, env);
  gw_timer_init(&b->sweep_timer, sweep_due, b);
  b->max_devices = 2 * (size_t)config->gateway.max_devices; /* rd and bs of each */
  b->bucket_count = 64;
  while (b->bucket_count < b->max_devices && b->bucket_count < (1u << 20))
    b->bucket_count <<= 1;
  b->by_addr = calloc(b->bucket_count, sizeof(*b->by_addr));
  b->by_location = calloc(b->bucket_count, sizeof(*b->by_location));
  b->next_token = gw_random_u64();
  b->policy = (gw_link_policy_t){.max_retransmit = 0, /* TCP delivers */
                                 .ack_timeout_ms = 2000,
                                 .mtu = HTTP_MTU,
                                 .sleepy = false,
                                 .accept_unknown = true, /* the binding decides (check_endpoint) */
                                 /* HTTP has no message ID: each request gets one of ours */
                                 .no_message_ids = true,
                                 /* the device answers on the gateway's own connection */
                                 .answers_die_with_process = true,
                                 .binding_letter = 'H'};
  const gw_http_conf_t *conf = &config->bindings.http;
  http_client_conf_t cc = {.ca_file = conf->device_ca_file,
                           .cert_file = conf->device_cert_file,
                           .key_file = conf->device_key_file,
                           .max_response_body = HTTP_MTU - 1024};
  int rc = b->by_addr && b->by_location ? http_client_new(env->loop, &cc, &b->client)
                                        : GW_ERR_NOMEM;
  if (rc != GW_OK) {
    gw_binding_t *base = &b->base;
    http_free(&base);
    return rc;
  }
  *out_binding = &b->base;
  return GW_OK;
}

static int http_start(gw_binding_t *binding) {
  http_binding_t *b = (http_binding_t *)binding;
  const gw_http_conf_t *conf = &b->config->bindings.http;
  size_t max_body = conf->max_body < HTTP_MTU - 1024 ? conf->max_body : HTTP_MTU - 1024;
  http_server_conf_t sc = {.listen = conf->listen,
                           .cert_file = conf->cert_file,
                           .key_file = conf->key_file,
                           .client_ca_file = conf->client_ca_file,
                           .max_body = max_body,
                           .max_connections = conf->max_connections,
                           .max_connections_per_client = conf->max_connections_per_client,
                           .idle_timeout_s = conf->idle_timeout_s,
                           .header_timeout_s = conf->header_timeout_s,
                           .body_timeout_s = conf->body_timeout_s};
  http_server_callbacks_t cb = {.arg = b, .on_request = on_device_request,
                                .on_abandoned = on_device_abandoned};
  int rc = http_server_new(b->env.loop, &sc, &cb, &b->server);
  if (rc != GW_OK)
    return rc;
  gw_timer_start(b->env.loop, &b->sweep_timer, HTTP_SWEEP_MS);
  GW_NOTICE(MOD, "serving devices on %s%s (port %u)%s", conf->cert_file ? "https://" : "http://",
            conf->listen, http_server_port(b->server),
            conf->client_ca_file ? ", client certificates verified" : "");
  return GW_OK;
}

static void http_stop(gw_binding_t *binding) {
  http_binding_t *b = (http_binding_t *)binding;
  gw_local_answers_stop(&b->local);
  gw_timer_stop(b->env.loop, &b->sweep_timer);
  http_server_free(&b->server); /* pending exchanges come back through on_abandoned */
  /* Cancelled without callbacks: the core is going away and must not be called. */
  while (b->downlinks) {
    if (b->client)
      http_client_cancel(b->client, b->downlinks->id);
    downlink_free(b, b->downlinks);
  }
  http_client_free(&b->client);
}

static void http_free(gw_binding_t **binding) {
  http_binding_t *b = (http_binding_t *)*binding;
  if (!b)
    return;
  http_stop(*binding);
  for (size_t i = 0; b->by_addr && i < b->bucket_count; i++)
    for (http_device_t *d = b->by_addr[i], *next; d; d = next) {
      next = d->next;
      free(d);
    }
  free(b->by_addr);
  free(b->by_location);
  free(b);
  *binding = NULL;
}

static const gw_link_policy_t *http_policy(const gw_binding_t *binding) {
  return &((const http_binding_t *)binding)->policy;
}

static const gw_device_conf_t *http_lookup(const gw_binding_t *binding, const gw_config_t *config,
                                           const gw_baddr_t *addr) {
  (void)binding;
  http_iface_t iface;
  const char *ep = addr_endpoint(addr, &iface);
  return ep ? device_conf(config, ep) : NULL;
}

static const char *http_upstream_name(const gw_binding_t *binding, const gw_baddr_t *addr,
                                      const gw_device_conf_t *conf) {
  const gw_http_conf_t *http = &((const http_binding_t *)binding)->config->bindings.http;
  http_iface_t iface;
  if (!addr_endpoint(addr, &iface))
    return NULL;
  if (iface == HTTP_IFACE_BS)
    return http->bootstrap;
  return conf && conf->upstream ? NULL : http->upstream;
}

static void http_forget(gw_binding_t *binding, const gw_baddr_t *addr) {
  http_binding_t *b = (http_binding_t *)binding;
  http_device_t *d = device_by_addr(b, addr->text);
  if (!d)
    return;
  location_unlink(b, d); /* its credentials may have changed: register again */
  device_unkeep(b, d);
}

/* A registered device's record from the last run (device_keep). Dropped when it is not
 * readable, or when the way the device authenticated would not register this endpoint any
 * more (the entry is gone, or now has a password, say): the device then registers again. */
static void http_restore(gw_binding_t *binding, const char *key, const void *value,
                         size_t len) {
  http_binding_t *b = (http_binding_t *)binding;
  gw_baddr_t addr;
  snprintf(addr.text, sizeof(addr.text), "%s", key);
  http_iface_t iface;
  const char *ep = addr_endpoint(&addr, &iface);
  const char *f[HTTP_RECORD_FIELDS];
  http_identity_t id = {0};
  http_device_t *d = NULL;
  if (!ep || iface != HTTP_IFACE_RD || record_fields(value, len, f) != 0 || f[1][1] ||
      f[1][0] < '0' + HTTP_AUTH_NONE || f[1][0] > '0' + HTTP_AUTH_TOKEN ||
      !location_valid(f[2]) || device_by_location(b, f[2])) {
    snprintf(id.reason, sizeof(id.reason), "not readable");
  } else {
    id.kind = (http_auth_t)(f[1][0] - '0');
    snprintf(id.ep, sizeof(id.ep), "%s", id.kind == HTTP_AUTH_NONE ? "" : ep);
    check_endpoint(b, ep, &id);
    if (!id.status && !(d = device_get(b, iface, ep)))
      snprintf(id.reason, sizeof(id.reason), "too many devices");
  }
  if (!d) {
    GW_NOTICE(MOD, "%s: registration of the last run not restored: %s", key, id.reason);
    b->env.state_del(b->env.core, binding, key);
    return;
  }
  d->auth = id.kind;
  snprintf(d->peer_ip, sizeof(d->peer_ip), "%s", f[4]);
  location_link(b, d, f[2], f[3]);
}

static size_t http_format_metrics(const gw_binding_t *binding, char *out, size_t out_size) {
  const http_binding_t *b = (const http_binding_t *)binding;
  size_t used = 0;
#define APPEND(...) gw_appendf(out, out_size, &used, __VA_ARGS__)
#define HTTP_METRIC_TEXT(name, help) \
  gw_append_counter(out, out_size, &used, "http", #name, help, b->metrics.name);
  HTTP_METRICS(HTTP_METRIC_TEXT)
  if (b->server) {
    const http_server_status_t *s = http_server_status(b->server);
#define HTTP_SERVER_METRIC_TEXT(name, field, help) \
  gw_append_counter(out, out_size, &used, "http", #name, help, s->field);
    HTTP_SERVER_METRICS(HTTP_SERVER_METRIC_TEXT)
#undef HTTP_SERVER_METRIC_TEXT
    APPEND("lwm2m_gw_http_connections %u\n", s->connections);
  }
  if (b->client) {
    const http_client_status_t *c = http_client_status(b->client);
    APPEND("lwm2m_gw_http_client_in_flight %u\n", c->in_flight);
  }
  APPEND("lwm2m_gw_http_devices %zu\n", b->device_count);
#undef HTTP_METRIC_TEXT
#undef APPEND
  return used;
}

const gw_binding_ops_t gw_http_binding = {
    .name = "http",
    .enabled = http_enabled,
    .create = http_create,
    .start = http_start,
    .send = http_send,
    .stop = http_stop,
    .free = http_free,
    .policy = http_policy,
    .lookup_device = http_lookup,
    .forget_device = http_forget,
    .upstream_name = http_upstream_name,
    .restore = http_restore,
    .format_metrics = http_format_metrics,
};

static const gw_binding_ops_t *ops_self(void) { return &gw_http_binding; }
