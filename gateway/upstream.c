/* lwm2m-gw: upstream CoAP over UDP or DTLS with libcoap 3, one client session per device.
 *
 * libcoap's resource layer answers requests itself; a relay must not. Every server request is
 * caught by the "unknown resource" handler, converted and handed to the relay, and the response
 * libcoap prepared is turned into an empty NON so libcoap drops it (no_response() in libcoap's
 * net.c drops a 0.00 NON). The relay then answers in its own time with gw_upstream_send():
 * piggybacked on an ACK with the server's message ID, or separately.
 *
 * Block options are not interpreted: libcoap's block mode stays off, so Block1/Block2 pass
 * through between server and device untouched.
 */
#include "upstream.h"

#include <netdb.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coap3/coap.h>

#include "gw_error.h"
#include "gw_log.h"
#include "relay.h"

#define MOD "upstream"

/* One libcoap context per upstream server configuration. libcoap keeps trust anchors (ca_file)
 * per context (OpenSSL's store), so upstreams sharing one context would trust each other's CAs.
 * A context lives while it has sessions. */
typedef struct upstream_context {
  gw_upstream_t *owner;
  char *key; /* upstream name + trust settings: a changed upstream gets a fresh context */
  coap_context_t *ctx;
  int coap_fd;
  size_t sessions;
  struct upstream_context *next;
} upstream_context_t;

struct gw_upstream {
  gw_gateway_t *gw;
  upstream_context_t *contexts;
};

typedef struct gw_upstream_session {
  coap_session_t *session;
  upstream_context_t *context;
  gw_device_t *dev;
  bool failed; /* DTLS or session failure: replaced on the device's next message */
  char sni[256];
} gw_upstream_session_t;

/* ---- libcoap logging into ours ---- */

static void coap_log_to_gw(coap_log_t level, const char *message) {
  size_t len = strlen(message);
  while (len && message[len - 1] == '\n')
    len--;
  gw_log_level_t l = level <= LOG_ERR ? GW_LOG_ERR : (gw_log_level_t)level;
  if (l > GW_LOG_DEBUG)
    l = GW_LOG_DEBUG;
  gw_log(l, "libcoap", "%.*s", (int)len, message);
}

/* ---- conversions between libcoap PDUs and gw_coap_msg_t ---- */

/* Borrows pdu: the message points into it and is valid while pdu is. */
static int msg_from_pdu(const coap_pdu_t *pdu, gw_coap_msg_t *out) {
  gw_coap_msg_init(out, (gw_coap_type_t)coap_pdu_get_type(pdu), (uint8_t)coap_pdu_get_code(pdu),
                   (uint16_t)coap_pdu_get_mid(pdu));
  coap_bin_const_t token = coap_pdu_get_token(pdu);
  if (gw_coap_set_token(out, token.s, token.length) != 0)
    return GW_ERR_INVAL;
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
  while ((opt = coap_option_next(&it)) != NULL) {
    if (out->option_count == GW_COAP_MAX_OPTIONS)
      return GW_ERR_FULL;
    out->options[out->option_count++] = (gw_coap_option_t){
        .number = it.number, .length = (uint16_t)coap_opt_length(opt),
        .value = coap_opt_value(opt)};
  }
  size_t len = 0;
  const uint8_t *data = NULL;
  if (coap_get_data(pdu, &len, &data) && len) {
    out->payload = data;
    out->payload_len = len;
  }
  return GW_OK;
}

static coap_pdu_t *pdu_from_msg(const gw_coap_msg_t *m) {
  size_t size = 4 + m->token_len + 1 + m->payload_len;
  for (size_t i = 0; i < m->option_count; i++)
    size += 5 + m->options[i].length;
  coap_pdu_t *pdu = coap_pdu_init((coap_pdu_type_t)m->type, (coap_pdu_code_t)m->code, m->mid,
                                  size);
  if (!pdu)
    return NULL;
  if (m->token_len && !coap_add_token(pdu, m->token_len, m->token))
    goto fail;
  for (size_t i = 0; i < m->option_count; i++)
    if (!coap_add_option(pdu, m->options[i].number, m->options[i].length, m->options[i].value))
      goto fail;
  if (m->payload_len && !coap_add_data(pdu, m->payload_len, m->payload))
    goto fail;
  return pdu;
fail:
  coap_delete_pdu(pdu);
  return NULL;
}

static gw_device_t *device_of(coap_session_t *session) {
  gw_upstream_session_t *us = coap_session_get_app_data(session);
  return us ? us->dev : NULL;
}

static gw_gateway_t *gateway_of(coap_session_t *session) {
  upstream_context_t *uc = coap_get_app_data(coap_session_get_context(session));
  return uc->owner->gw;
}

/* ---- libcoap handlers ---- */

static void on_server_request(coap_resource_t *resource, coap_session_t *session,
                              const coap_pdu_t *request, const coap_string_t *query,
                              coap_pdu_t *response) {
  (void)resource;
  (void)query;
  /* Turn libcoap's own answer into an empty NON: it drops it (see the top of this file). */
  coap_pdu_set_type(response, COAP_MESSAGE_NON);
  coap_pdu_set_code(response, COAP_EMPTY_CODE);
  gw_device_t *dev = device_of(session);
  gw_coap_msg_t msg;
  if (!dev || msg_from_pdu(request, &msg) != GW_OK) {
    GW_WARN(MOD, "server request on an unknown session or with too many options; 5.00");
    coap_pdu_set_type(response, coap_pdu_get_type(request) == COAP_MESSAGE_CON
                                    ? COAP_MESSAGE_ACK : COAP_MESSAGE_NON);
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
    return;
  }
  gw_relay_server_request(gateway_of(session), dev, &msg);
}

static coap_response_t on_server_response(coap_session_t *session, const coap_pdu_t *sent,
                                          const coap_pdu_t *received, const coap_mid_t mid) {
  (void)sent;
  (void)mid;
  gw_device_t *dev = device_of(session);
  gw_coap_msg_t msg;
  if (!dev || msg_from_pdu(received, &msg) != GW_OK)
    return COAP_RESPONSE_OK;
  gw_relay_server_response(gateway_of(session), dev, &msg);
  return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent, const coap_nack_reason_t reason,
                    const coap_mid_t mid) {
  (void)mid;
  gw_device_t *dev = device_of(session);
  gw_coap_msg_t msg;
  if (!dev || !sent || msg_from_pdu(sent, &msg) != GW_OK)
    return;
  gw_nack_t why = reason == COAP_NACK_TOO_MANY_RETRIES ? GW_NACK_TIMEOUT
                  : reason == COAP_NACK_RST            ? GW_NACK_RESET
                  : reason == COAP_NACK_ICMP_ISSUE     ? GW_NACK_UNREACHABLE
                                                       : GW_NACK_FAILED;
  gw_relay_upstream_nack(gateway_of(session), dev, &msg, why);
}

static int on_event(coap_session_t *session, const coap_event_t event) {
  gw_device_t *dev = device_of(session);
  const char *ep = dev ? dev->endpoint : "?";
  switch (event) {
  case COAP_EVENT_DTLS_CONNECTED:
    GW_INFO(MOD, "%s: DTLS session established", ep);
    break;
  case COAP_EVENT_DTLS_CLOSED:
  case COAP_EVENT_DTLS_ERROR:
  case COAP_EVENT_SESSION_FAILED:
    if (!dev)
      break;
    GW_WARN(MOD, "%s: upstream session %s", ep,
            event == COAP_EVENT_DTLS_CLOSED  ? "closed"
            : event == COAP_EVENT_DTLS_ERROR ? "failed (DTLS error)" : "failed");
    gateway_of(session)->metrics.upstream_failures++;
    /* Not closed here: libcoap is still inside this session. */
    dev->upstream->failed = true;
    gw_relay_upstream_lost(gateway_of(session), dev);
    break;
  default:
    break;
  }
  return 0;
}

/* ---- the event loop joins libcoap through its epoll fd ---- */

static void on_coap_fd(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)fd;
  (void)events;
  upstream_context_t *uc = arg;
  coap_io_process(uc->ctx, COAP_IO_NO_WAIT);
}

static int coap_prepare(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_upstream_t *up = arg;
  coap_tick_t now;
  coap_ticks(&now);
  int wait = -1;
  for (upstream_context_t *uc = up->contexts; uc; uc = uc->next) {
    /* Runs libcoap's due retransmissions and tells how long it may sleep; 0 means forever. */
    unsigned ms = coap_io_prepare_epoll(uc->ctx, now);
    if (ms && (wait < 0 || ms < (unsigned)wait))
      wait = (int)ms;
  }
  return wait;
}

static void register_catch_all(coap_context_t *ctx) {
  coap_resource_t *r = coap_resource_unknown_init2(on_server_request, 0);
  static const coap_request_t methods[] = {COAP_REQUEST_GET,   COAP_REQUEST_POST,
                                           COAP_REQUEST_DELETE, COAP_REQUEST_FETCH,
                                           COAP_REQUEST_PATCH, COAP_REQUEST_IPATCH};
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    coap_register_request_handler(r, methods[i], on_server_request);
  coap_add_resource(ctx, r);
}

static void context_free(upstream_context_t *uc) {
  gw_loop_del_fd(uc->owner->gw->loop, uc->coap_fd);
  coap_free_context(uc->ctx);
  free(uc->key);
  free(uc);
}

static char *context_key(const gw_upstream_conf_t *uconf) {
  char *key = NULL;
  if (asprintf(&key, "%s|%s|%s|%s|%s", uconf->name, uconf->uri,
               uconf->ca_file ? uconf->ca_file : "", uconf->cert_file ? uconf->cert_file : "",
               uconf->key_file ? uconf->key_file : "") < 0)
    return NULL;
  return key;
}

static upstream_context_t *context_new(gw_upstream_t *up, char *key) {
  upstream_context_t *uc = calloc(1, sizeof(*uc));
  if (!uc)
    return NULL;
  uc->owner = up;
  uc->key = key;
  uc->ctx = coap_new_context(NULL);
  uc->coap_fd = uc->ctx ? coap_context_get_coap_fd(uc->ctx) : -1;
  if (uc->coap_fd < 0) {
    GW_ERR(MOD, "libcoap: no context, or built without epoll support (the gateway needs it)");
    if (uc->ctx)
      coap_free_context(uc->ctx);
    free(uc);
    return NULL;
  }
  coap_set_app_data(uc->ctx, uc);
  coap_context_set_block_mode(uc->ctx, 0);
  coap_register_response_handler(uc->ctx, on_server_response);
  coap_register_nack_handler(uc->ctx, on_nack);
  coap_register_event_handler(uc->ctx, on_event);
  register_catch_all(uc->ctx);
  gw_loop_add_fd(up->gw->loop, uc->coap_fd, EPOLLIN, on_coap_fd, uc);
  uc->next = up->contexts;
  up->contexts = uc;
  return uc;
}

/* The context for uconf, created on first use. */
static upstream_context_t *context_for(gw_upstream_t *up, const gw_upstream_conf_t *uconf) {
  char *key = context_key(uconf);
  if (!key)
    return NULL;
  for (upstream_context_t *uc = up->contexts; uc; uc = uc->next) {
    if (strcmp(uc->key, key) == 0) {
      free(key);
      return uc;
    }
  }
  upstream_context_t *uc = context_new(up, key);
  if (!uc)
    free(key);
  return uc;
}

static void context_release(gw_upstream_t *up, upstream_context_t *uc) {
  if (--uc->sessions > 0)
    return;
  for (upstream_context_t **p = &up->contexts; *p; p = &(*p)->next) {
    if (*p == uc) {
      *p = uc->next;
      break;
    }
  }
  context_free(uc);
}

int gw_upstream_new(gw_gateway_t *gw, gw_upstream_t **out_upstream) {
  coap_startup();
  coap_set_log_handler(coap_log_to_gw);
  coap_set_log_level(gw_log_get_level() >= GW_LOG_DEBUG ? LOG_DEBUG : LOG_WARNING);
  gw_upstream_t *up = calloc(1, sizeof(*up));
  if (!up)
    return GW_ERR_NOMEM;
  up->gw = gw;
  gw_loop_add_prepare(gw->loop, coap_prepare, up);
  *out_upstream = up;
  return GW_OK;
}

void gw_upstream_free(gw_upstream_t **upstream) {
  gw_upstream_t *up = *upstream;
  if (!up)
    return;
  while (up->contexts) {
    upstream_context_t *uc = up->contexts;
    up->contexts = uc->next;
    context_free(uc);
  }
  coap_cleanup();
  free(up);
  *upstream = NULL;
}

/* ---- sessions ---- */

static int resolve(const gw_upstream_conf_t *uconf, coap_address_t *out_addr) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *res = NULL;
  char port[8];
  snprintf(port, sizeof(port), "%u", uconf->port);
  int rc = getaddrinfo(uconf->host, port, &hints, &res);
  if (rc != 0 || !res) {
    GW_ERR(MOD, "upstream %s: cannot resolve %s: %s", uconf->name, uconf->host, gai_strerror(rc));
    return GW_ERR_UPSTREAM;
  }
  coap_address_init(out_addr);
  out_addr->size = res->ai_addrlen;
  memcpy(&out_addr->addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return GW_OK;
}

static coap_session_t *open_psk(coap_context_t *ctx, const coap_address_t *local,
                                const coap_address_t *server, const gw_device_conf_t *dconf,
                                gw_upstream_session_t *us) {
  coap_dtls_cpsk_t setup = {.version = COAP_DTLS_CPSK_SETUP_VERSION, .client_sni = us->sni};
  setup.psk_info.identity.s = (const uint8_t *)dconf->psk_identity;
  setup.psk_info.identity.length = strlen(dconf->psk_identity);
  setup.psk_info.key.s = dconf->psk_key;
  setup.psk_info.key.length = dconf->psk_key_len;
  return coap_new_client_session_psk2(ctx, local, server, COAP_PROTO_DTLS, &setup);
}

static coap_session_t *open_pki(coap_context_t *ctx, const coap_address_t *local,
                                const coap_address_t *server, const gw_upstream_conf_t *uconf,
                                const gw_device_conf_t *dconf, gw_upstream_session_t *us) {
  coap_dtls_pki_t setup = {.version = COAP_DTLS_PKI_SETUP_VERSION, .client_sni = us->sni};
  bool own = dconf && dconf->cert_file;
  setup.verify_peer_cert = uconf->ca_file != NULL;
  setup.check_common_ca = uconf->ca_file != NULL;
  setup.cert_chain_validation = 1;
  setup.cert_chain_verify_depth = 3;
  setup.pki_key.key_type = COAP_PKI_KEY_PEM;
  setup.pki_key.key.pem.ca_file = uconf->ca_file;
  setup.pki_key.key.pem.public_cert = own ? dconf->cert_file : uconf->cert_file;
  setup.pki_key.key.pem.private_key = own ? dconf->key_file : uconf->key_file;
  return coap_new_client_session_pki(ctx, local, server, COAP_PROTO_DTLS, &setup);
}

/* The wildcard address of the server's family with port: a session that speaks from the port
 * the device had (a restart, a renewed session), so the server keeps reaching the device. */
static void local_address(const coap_address_t *server, uint16_t port, coap_address_t *out) {
  coap_address_init(out);
  out->addr.sa.sa_family = server->addr.sa.sa_family;
  if (server->addr.sa.sa_family == AF_INET6) {
    out->size = sizeof(struct sockaddr_in6);
    out->addr.sin6.sin6_port = htons(port);
  } else {
    out->size = sizeof(struct sockaddr_in);
    out->addr.sin.sin_port = htons(port);
  }
}

static coap_session_t *open_session(coap_context_t *ctx, const gw_upstream_conf_t *uconf,
                                    const gw_device_conf_t *dconf, uint16_t port,
                                    gw_upstream_session_t *us) {
  coap_address_t server, local_storage;
  if (resolve(uconf, &server) != GW_OK)
    return NULL;
  const coap_address_t *local = NULL;
  if (port) {
    local_address(&server, port, &local_storage);
    local = &local_storage;
  }
  if (!uconf->secure)
    return coap_new_client_session(ctx, local, &server, COAP_PROTO_UDP);
  snprintf(us->sni, sizeof(us->sni), "%s", uconf->host);
  if (dconf && dconf->psk_identity)
    return open_psk(ctx, local, &server, dconf, us);
  if ((dconf && dconf->cert_file) || uconf->cert_file)
    return open_pki(ctx, local, &server, uconf, dconf, us);
  GW_ERR(MOD, "%s: upstream %s is coaps but the device has neither a PSK nor a certificate",
         dconf ? dconf->endpoint : "unlisted device", uconf->name);
  return NULL;
}

int gw_upstream_open(gw_upstream_t *up, gw_device_t *dev) {
  if (dev->upstream && dev->upstream->failed) {
    GW_INFO(MOD, "%s: replacing the failed upstream session", dev->endpoint);
    gw_upstream_close(up, dev);
  }
  if (dev->upstream)
    return GW_OK;
  const gw_upstream_conf_t *uconf =
      gw_binding_upstream(dev->binding, &up->gw->config, &dev->addr, dev->conf);
  if (!uconf)
    return GW_ERR_CONFIG;
  gw_upstream_session_t *us = calloc(1, sizeof(*us));
  if (!us)
    return GW_ERR_NOMEM;
  us->dev = dev;
  us->context = context_for(up, uconf);
  if (us->context)
    us->context->sessions++;
  us->session = us->context ? open_session(us->context->ctx, uconf, dev->conf, dev->local_port,
                                           us)
                            : NULL;
  if (!us->session && us->context && dev->local_port) {
    GW_WARN(MOD, "%s: cannot speak from port %u again (taken?): a new port, so the server "
                 "reaches the device only after its next Update", dev->endpoint, dev->local_port);
    us->session = open_session(us->context->ctx, uconf, dev->conf, 0, us);
  }
  if (!us->session) {
    GW_ERR(MOD, "%s: cannot open a session to %s", dev->endpoint, uconf->uri);
    if (us->context)
      context_release(up, us->context);
    free(us);
    return GW_ERR_UPSTREAM;
  }
  coap_session_set_app_data(us->session, us);
  dev->upstream = us;
  dev->local_port = (uint16_t)gw_upstream_local_port(dev);
  GW_INFO(MOD, "%s: session to %s from local port %u", dev->endpoint, uconf->uri,
          gw_upstream_local_port(dev));
  return GW_OK;
}

void gw_upstream_close(gw_upstream_t *up, gw_device_t *dev) {
  gw_upstream_session_t *us = dev->upstream;
  if (!us)
    return;
  coap_session_set_app_data(us->session, NULL);
  coap_session_release(us->session);
  context_release(up, us->context);
  free(us);
  dev->upstream = NULL;
}

int gw_upstream_send(gw_device_t *dev, const gw_coap_msg_t *msg) {
  const char *why = NULL;
  coap_pdu_t *pdu = NULL;
  if (!dev->upstream)
    why = "no upstream session";
  else if (!(pdu = pdu_from_msg(msg)))
    why = "no PDU could be built (size or memory)";
  /* coap_send() takes the PDU over; libcoap logs its own reason (a closed socket, a message ID
   * still waiting in the session's queue, a send error). */
  else if (coap_send(dev->upstream->session, pdu) == COAP_INVALID_MID)
    why = "libcoap refused to send it";
  if (!why)
    return GW_OK;
  GW_WARN_LIMITED(MOD, "%s: %s %s (mid %u) not sent upstream: %s", dev->endpoint,
                  gw_coap_type_str(msg->type), gw_coap_is_request(msg) ? "request" : "message",
                  msg->mid, why);
  return GW_ERR_UPSTREAM;
}

unsigned gw_upstream_local_port(const gw_device_t *dev) {
  if (!dev->upstream)
    return 0;
  const coap_address_t *local = coap_session_get_addr_local(dev->upstream->session);
  return local ? coap_address_get_port(local) : 0;
}
