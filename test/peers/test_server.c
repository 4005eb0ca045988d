/*
 * lwm2m-test-server: a minimal LwM2M server for the gateway's integration tests.
 *
 * It implements the server side of the Registration interface (LwM2M Core 6.2: register,
 * update, de-register), accepts LwM2M Send (/dp) and Bootstrap-Request (/bs), and sends
 * Device Management requests that the test script types on stdin. Everything it sees is
 * reported as one JSON object per stdout line; see README.md for the protocol.
 */
#include "peer_common.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One registered LwM2M client, addressed by the tests through its endpoint name. */
typedef struct registration_t {
  struct registration_t *next;
  unsigned id; /* location is /rd/<id> */
  char *ep;
  coap_session_t *session; /* referenced: requests to the device go out on it */
} registration_t;

/* A request the server sent and whose answer it waits for, matched by token. An
 * observation stays until it is cancelled; its later responses are notifications. */
typedef struct exchange_t {
  struct exchange_t *next;
  long id; /* chosen by the test, echoed in every event of this exchange */
  coap_session_t *session; /* referenced so the pointer cannot be reused while we wait */
  uint8_t token[8];
  size_t token_len;
  char *path;
  uint64_t sent_ms;
  bool observing;  /* GET with Observe=0 */
  bool answered;   /* the first response of an observation arrived */
  bool cancelling; /* a GET with Observe=1 and this token is outstanding */
  bool rst_next;   /* cancel-rst: answer the next notification with RST */
  /* A request with a payload is kept whole, so that a 4.13 with Size1 can be answered by
   * sending it again block-wise (RFC 7959 2.9.3): method, options and body. */
  coap_pdu_code_t method;
  char *query;
  long content_format;
  long accept;
  uint8_t *body;
  size_t body_len;
  size_t block_size; /* 0 until the Block1 transfer starts, then 16..1024 */
  unsigned block_num; /* the block last sent */
} exchange_t;

/* The CN of the certificate a DTLS client presented. libcoap reports it during the handshake,
 * before any request arrives, so it is kept per server session until libcoap frees that. */
typedef struct client_cert_t {
  struct client_cert_t *next;
  const coap_session_t *session; /* not referenced: forgotten at COAP_EVENT_SERVER_SESSION_DEL */
  char *cn;
} client_cert_t;

/* A request already answered, by (peer, message ID), with a copy of the answer: a real LwM2M
 * server (Californium, under Leshan) answers a duplicate from this cache and does not act on
 * it again (RFC 7252 4.5), which is what a gateway relaying a request again after a restart
 * relies on. Kept for EXCHANGE_LIFETIME (247 s), in a ring. */
#define ANSWERED_MAX 4096
#define EXCHANGE_LIFETIME_MS 247000u

typedef struct {
  char peer[64];
  coap_mid_t mid;
  uint64_t at_ms;
  coap_pdu_t *answer; /* a copy: code, options, payload */
} answered_t;

typedef struct server_t {
  coap_context_t *ctx;
  answered_t answered[ANSWERED_MAX];
  size_t answered_next;
  registration_t *registrations;
  exchange_t *exchanges;
  client_cert_t *client_certs;
  unsigned next_registration_id;
  coap_pdu_type_t request_type; /* CON unless the test said "non" */
  bool quiet;                   /* --quiet: no send and update events (benchmarks) */
  char *psk_identity;
  coap_bin_const_t psk_key;
} server_t;

/* Everything a Device Management request can carry; -1 means "option absent". */
typedef struct request_spec_t {
  coap_pdu_code_t method;
  const char *path;
  const char *query; /* '&'-separated Uri-Query values, or NULL */
  long observe;
  long content_format;
  long accept;
  const uint8_t *payload;
  size_t payload_len;
} request_spec_t;

#define REQUEST_SPEC_INIT {.observe = -1, .content_format = -1, .accept = -1}

static server_t *server_of(const coap_session_t *session) {
  return coap_get_app_data(coap_session_get_context(session));
}

static void emit_error(long id, bool has_id, const char *message) {
  json_buf_t ev;

  json_begin(&ev, "error");
  if (has_id)
    json_add_int(&ev, "id", id);
  else
    json_add_null(&ev, "id");
  json_add_str(&ev, "message", message);
  json_emit(&ev);
}

/* ----------------------------------------------------------- registrations */

static registration_t *registration_by_ep(server_t *srv, const char *ep) {
  for (registration_t *reg = srv->registrations; reg; reg = reg->next)
    if (strcmp(reg->ep, ep) == 0)
      return reg;
  return NULL;
}

static registration_t *registration_by_id(server_t *srv, unsigned id) {
  for (registration_t *reg = srv->registrations; reg; reg = reg->next)
    if (reg->id == id)
      return reg;
  return NULL;
}

/* A Send carries no endpoint name: the registration is found by where it came from. */
static registration_t *registration_by_session(server_t *srv, const coap_session_t *session) {
  for (registration_t *reg = srv->registrations; reg; reg = reg->next)
    if (reg->session == session)
      return reg;
  return NULL;
}

static void registration_remove(server_t *srv, registration_t *gone) {
  for (registration_t **p = &srv->registrations; *p; p = &(*p)->next) {
    if (*p == gone) {
      *p = gone->next;
      coap_session_release(gone->session);
      free(gone->ep);
      free(gone);
      return;
    }
  }
}

/* Core 6.2.1: a Register for a known endpoint replaces the old registration. */
static registration_t *registration_replace(server_t *srv, const char *ep,
                                            coap_session_t *session) {
  registration_t *old = registration_by_ep(srv, ep);
  registration_t *reg;

  if (old)
    registration_remove(srv, old);
  reg = calloc(1, sizeof(*reg));
  if (!reg)
    abort();
  reg->id = ++srv->next_registration_id;
  reg->ep = strdup(ep);
  reg->session = coap_session_reference(session);
  reg->next = srv->registrations;
  srv->registrations = reg;
  return reg;
}

static void registration_set_session(registration_t *reg, coap_session_t *session) {
  if (reg->session == session)
    return;
  coap_session_release(reg->session);
  reg->session = coap_session_reference(session);
}

/* Value of "KEY=value" among the Uri-Query strings, or NULL. */
static const char *query_value(char **queries, const char *key) {
  size_t key_len = strlen(key);

  for (char **q = queries; *q; q++)
    if (strncmp(*q, key, key_len) == 0 && (*q)[key_len] == '=')
      return *q + key_len + 1;
  return NULL;
}

static bool query_has_flag(char **queries, const char *flag) {
  for (char **q = queries; *q; q++)
    if (strcmp(*q, flag) == 0)
      return true;
  return false;
}

static void json_add_queries(json_buf_t *ev, char **queries) {
  json_begin_array(ev, "query");
  for (char **q = queries; *q; q++)
    json_array_str(ev, *q);
  json_end_array(ev);
}

static void json_add_int_text(json_buf_t *ev, const char *key, const char *text) {
  long value;

  if (text && peer_parse_long(text, 0, LONG_MAX, &value))
    json_add_int(ev, key, value);
  else
    json_add_null(ev, key);
}

/* ----------------------------------------------------- client certificates */

static client_cert_t *client_cert_by_session(server_t *srv, const coap_session_t *session) {
  for (client_cert_t *cert = srv->client_certs; cert; cert = cert->next)
    if (cert->session == session)
      return cert;
  return NULL;
}

static void client_cert_forget(server_t *srv, const coap_session_t *session) {
  for (client_cert_t **p = &srv->client_certs; *p; p = &(*p)->next) {
    if ((*p)->session == session) {
      client_cert_t *gone = *p;

      *p = gone->next;
      free(gone->cn);
      free(gone);
      return;
    }
  }
}

/* libcoap calls this for every certificate of the client's chain that verified against --ca;
 * depth 0 is the client's own. */
static int on_client_cn(const char *cn, const uint8_t *asn1_public_cert, size_t asn1_length,
                        coap_session_t *session, unsigned depth, int validated, void *arg) {
  server_t *srv = arg;
  client_cert_t *cert;

  if (depth != 0)
    return 1;
  peer_log(LOG_INFO, "client certificate CN '%s'", cn ? cn : "");
  cert = client_cert_by_session(srv, session);
  if (!cert) {
    cert = calloc(1, sizeof(*cert));
    if (!cert)
      abort();
    cert->session = session;
    cert->next = srv->client_certs;
    srv->client_certs = cert;
  }
  free(cert->cn);
  cert->cn = cn ? strdup(cn) : NULL;
  return 1;
}

/* A session pointer may be reused once libcoap freed the session: forget it both ways. */
static int on_event(coap_session_t *session, const coap_event_t event) {
  if (session &&
      (event == COAP_EVENT_SERVER_SESSION_NEW || event == COAP_EVENT_SERVER_SESSION_DEL))
    client_cert_forget(server_of(session), session);
  return 0;
}

static void json_add_peer(json_buf_t *ev, const coap_session_t *session) {
  client_cert_t *cert = client_cert_by_session(server_of(session), session);
  char peer[64];

  json_add_str(ev, "peer", peer_session_remote_str(session, peer));
  json_add_bool(ev, "secure", coap_session_get_proto(session) == COAP_PROTO_DTLS);
  json_add_str(ev, "client_cn", cert ? cert->cn : NULL);
}

static void json_add_location(json_buf_t *ev, const registration_t *reg) {
  char location[32];

  snprintf(location, sizeof(location), "/rd/%u", reg->id);
  json_add_int(ev, "id", reg->id);
  json_add_str(ev, "location", location);
}

static void handle_register(server_t *srv, coap_session_t *session, const coap_pdu_t *request,
                            coap_pdu_t *response) {
  char **queries = peer_uri_queries(request, NULL);
  const char *ep = query_value(queries, "ep");
  registration_t *reg;
  json_buf_t ev;
  char id_text[16];

  if (!ep || !*ep) {
    peer_log(LOG_WARNING, "Register without endpoint name");
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_BAD_REQUEST);
    peer_free_strings(queries);
    return;
  }
  reg = registration_replace(srv, ep, session);
  /* Core 6.2.1: the Location-Path is the handle for Update and De-register. */
  snprintf(id_text, sizeof(id_text), "%u", reg->id);
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CREATED);
  coap_add_option(response, COAP_OPTION_LOCATION_PATH, 2, (const uint8_t *)"rd");
  coap_add_option(response, COAP_OPTION_LOCATION_PATH, strlen(id_text), (const uint8_t *)id_text);

  json_begin(&ev, "register");
  json_add_str(&ev, "ep", ep);
  json_add_int_text(&ev, "lt", query_value(queries, "lt"));
  json_add_str(&ev, "lwm2m", query_value(queries, "lwm2m"));
  json_add_str(&ev, "b", query_value(queries, "b"));
  json_add_bool(&ev, "queue", query_has_flag(queries, "Q"));
  json_add_queries(&ev, queries);
  json_add_pdu_payload(&ev, request);
  json_add_peer(&ev, session);
  json_add_location(&ev, reg);
  json_emit(&ev);
  peer_free_strings(queries);
}

static void handle_update(server_t *srv, registration_t *reg, coap_session_t *session,
                          const coap_pdu_t *request, coap_pdu_t *response) {
  char **queries = peer_uri_queries(request, NULL);
  json_buf_t ev;

  /* An Update may come from a new address (Core 6.2.2); requests follow the device. */
  registration_set_session(reg, session);
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CHANGED);
  if (srv->quiet) {
    peer_free_strings(queries);
    return;
  }
  json_begin(&ev, "update");
  json_add_str(&ev, "ep", reg->ep);
  json_add_int_text(&ev, "lt", query_value(queries, "lt"));
  json_add_str(&ev, "b", query_value(queries, "b"));
  json_add_queries(&ev, queries);
  json_add_pdu_payload(&ev, request);
  json_add_peer(&ev, session);
  json_add_location(&ev, reg);
  json_emit(&ev);
  peer_free_strings(queries);
}

static void handle_deregister(server_t *srv, registration_t *reg, coap_session_t *session,
                              coap_pdu_t *response) {
  json_buf_t ev;

  coap_pdu_set_code(response, COAP_RESPONSE_CODE_DELETED);
  json_begin(&ev, "deregister");
  json_add_str(&ev, "ep", reg->ep);
  json_add_peer(&ev, session);
  json_add_location(&ev, reg);
  json_emit(&ev);
  registration_remove(srv, reg);
}

/* LwM2M Send (Core 6.4.2): POST /dp with SenML-CBOR or SenML-JSON. */
static void handle_send(server_t *srv, coap_session_t *session, const coap_pdu_t *request,
                        coap_pdu_t *response) {
  registration_t *reg = registration_by_session(srv, session);
  long content_format = peer_uint_option(request, COAP_OPTION_CONTENT_FORMAT);
  json_buf_t ev;

  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CHANGED);
  if (srv->quiet)
    return;
  json_begin(&ev, "send");
  json_add_str(&ev, "ep", reg ? reg->ep : NULL);
  if (content_format >= 0)
    json_add_int(&ev, "content_format", content_format);
  else
    json_add_null(&ev, "content_format");
  json_add_pdu_payload(&ev, request);
  json_add_peer(&ev, session);
  json_emit(&ev);
}

/* Bootstrap-Request (Core 6.1.5.1): only acknowledged, this is not a Bootstrap-Server. */
/* Bootstrap-Request (Core 6.1.3): the endpoint's later commands (Bootstrap-Write, -Discover,
 * -Finish as "execute ID EP /bs") go out on the session it came from. */
static void handle_bootstrap_request(server_t *srv, coap_session_t *session,
                                     const coap_pdu_t *request, coap_pdu_t *response) {
  char **queries = peer_uri_queries(request, NULL);
  const char *ep = query_value(queries, "ep");
  json_buf_t ev;

  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CHANGED);
  if (ep)
    registration_replace(srv, ep, session);
  json_begin(&ev, "bootstrap-request");
  json_add_str(&ev, "ep", ep);
  json_add_queries(&ev, queries);
  json_add_peer(&ev, session);
  json_emit(&ev);
  peer_free_strings(queries);
}

/* Bootstrap-Pack-Request (Core 6.1.7.9): GET /bspack?ep= answered with a fixed pack. */
static void handle_bootstrap_pack(coap_session_t *session, const coap_pdu_t *request,
                                  coap_pdu_t *response) {
  static const uint8_t pack[] = "bootstrap-pack";
  char **queries = peer_uri_queries(request, NULL);
  json_buf_t ev;
  uint8_t cf[4];

  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CONTENT);
  coap_add_option(response, COAP_OPTION_CONTENT_FORMAT,
                  coap_encode_var_safe(cf, sizeof(cf), COAP_MEDIATYPE_TEXT_PLAIN), cf);
  coap_add_data(response, sizeof(pack) - 1, pack);
  json_begin(&ev, "bootstrap-pack-request");
  json_add_str(&ev, "ep", query_value(queries, "ep"));
  json_add_queries(&ev, queries);
  json_add_peer(&ev, session);
  json_emit(&ev);
  peer_free_strings(queries);
}

/* "/rd/<id>" -> id. */
static bool parse_registration_path(const char *path, unsigned *out_id) {
  long id;

  if (strncmp(path, "/rd/", 4) != 0 || !peer_parse_long(path + 4, 1, UINT_MAX, &id))
    return false;
  *out_id = (unsigned)id;
  return true;
}

static answered_t *answered_find(server_t *srv, const char *peer, coap_mid_t mid) {
  uint64_t now = peer_now_ms();
  for (size_t i = 0; i < ANSWERED_MAX; i++) {
    answered_t *a = &srv->answered[i];
    if (a->answer && a->mid == mid && now - a->at_ms < EXCHANGE_LIFETIME_MS &&
        strcmp(a->peer, peer) == 0)
      return a;
  }
  return NULL;
}

/* Copies code, options and payload of from onto to (token, type and ID are libcoap's). */
static void copy_answer(coap_pdu_t *to, const coap_pdu_t *from) {
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  size_t len;
  const uint8_t *data;

  coap_pdu_set_code(to, coap_pdu_get_code(from));
  coap_option_iterator_init(from, &it, COAP_OPT_ALL);
  while ((opt = coap_option_next(&it)))
    coap_add_option(to, it.number, coap_opt_length(opt), coap_opt_value(opt));
  if (coap_get_data(from, &len, &data) && len)
    coap_add_data(to, len, data);
}

static void answered_keep(server_t *srv, const char *peer, coap_mid_t mid,
                          const coap_pdu_t *response) {
  answered_t *a = &srv->answered[srv->answered_next];
  srv->answered_next = (srv->answered_next + 1) % ANSWERED_MAX;
  if (a->answer)
    coap_delete_pdu(a->answer);
  size_t len = 0;
  const uint8_t *data;
  coap_get_data(response, &len, &data);
  /* its options (Location-Path, Content-Format) fit in 512 octets beside the payload */
  a->answer = coap_pdu_init(COAP_MESSAGE_ACK, COAP_RESPONSE_CODE_CONTENT, 0, len + 512);
  if (!a->answer)
    return;
  copy_answer(a->answer, response);
  snprintf(a->peer, sizeof(a->peer), "%s", peer);
  a->mid = mid;
  a->at_ms = peer_now_ms();
}

static void dispatch_request(server_t *srv, coap_session_t *session, const coap_pdu_t *request,
                             coap_pdu_t *response);

/* Handler for every method on every path: duplicates are answered from the cache and reported
 * (event "duplicate"); everything else goes to dispatch_request. */
static void on_request(coap_resource_t *resource, coap_session_t *session,
                       const coap_pdu_t *request, const coap_string_t *query,
                       coap_pdu_t *response) {
  (void)resource;
  (void)query;
  server_t *srv = server_of(session);
  char peer[64];
  peer_session_remote_str(session, peer);
  coap_mid_t mid = coap_pdu_get_mid(request);
  answered_t *a = answered_find(srv, peer, mid);
  if (a) {
    json_buf_t ev;
    json_begin(&ev, "duplicate");
    json_add_int(&ev, "mid", mid);
    json_add_peer(&ev, session);
    json_emit(&ev);
    copy_answer(response, a->answer);
    return;
  }
  dispatch_request(srv, session, request, response);
  answered_keep(srv, peer, mid, response);
}

/* The Registration interface has dynamic paths (/rd/<id>), so one dispatcher is simpler than a
 * resource per registration. */
static void dispatch_request(server_t *srv, coap_session_t *session, const coap_pdu_t *request,
                             coap_pdu_t *response) {
  coap_pdu_code_t method = coap_pdu_get_code(request);
  char *path = peer_uri_path(request);
  registration_t *reg = NULL;
  unsigned reg_id;

  if (parse_registration_path(path, &reg_id))
    reg = registration_by_id(srv, reg_id);

  if (strcmp(path, "/rd") == 0 && method == COAP_REQUEST_CODE_POST)
    handle_register(srv, session, request, response);
  else if (reg && method == COAP_REQUEST_CODE_POST)
    handle_update(srv, reg, session, request, response);
  else if (reg && method == COAP_REQUEST_CODE_DELETE)
    handle_deregister(srv, reg, session, response);
  else if (strcmp(path, "/dp") == 0 && method == COAP_REQUEST_CODE_POST)
    handle_send(srv, session, request, response);
  else if (strcmp(path, "/bs") == 0 && method == COAP_REQUEST_CODE_POST)
    handle_bootstrap_request(srv, session, request, response);
  else if (strcmp(path, "/bspack") == 0 && method == COAP_REQUEST_CODE_GET)
    handle_bootstrap_pack(session, request, response);
  else
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_NOT_FOUND);
  peer_log(LOG_INFO, "%s %s -> %d.%02d", peer_method_str(method), path,
           coap_pdu_get_code(response) >> 5, coap_pdu_get_code(response) & 0x1f);
  free(path);
}

/* --------------------------------------------------------------- exchanges */

static exchange_t *exchange_new(server_t *srv, long id, coap_session_t *session,
                                const char *path) {
  exchange_t *ex = calloc(1, sizeof(*ex));

  if (!ex)
    abort();
  ex->id = id;
  ex->session = coap_session_reference(session);
  ex->path = strdup(path ? path : "/");
  /* Tokens are what matches answers to requests (RFC 7252 5.3.2); a fresh one each time. */
  coap_session_new_token(session, &ex->token_len, ex->token);
  ex->next = srv->exchanges;
  srv->exchanges = ex;
  return ex;
}

static void exchange_remove(server_t *srv, exchange_t *gone) {
  for (exchange_t **p = &srv->exchanges; *p; p = &(*p)->next) {
    if (*p == gone) {
      *p = gone->next;
      coap_session_release(gone->session);
      free(gone->path);
      free(gone->query);
      free(gone->body);
      free(gone);
      return;
    }
  }
}

static exchange_t *exchange_by_token(server_t *srv, const coap_session_t *session,
                                     coap_bin_const_t token) {
  for (exchange_t *ex = srv->exchanges; ex; ex = ex->next)
    if (ex->session == session && ex->token_len == token.length &&
        memcmp(ex->token, token.s, token.length) == 0)
      return ex;
  return NULL;
}

static exchange_t *observation_by_id(server_t *srv, long id) {
  for (exchange_t *ex = srv->exchanges; ex; ex = ex->next)
    if (ex->observing && ex->id == id)
      return ex;
  return NULL;
}

/* Adds SPEC's options and payload; with block_size > 0, only block BLOCK_NUM of the payload,
 * with a Block1 option (RFC 7959 2.2: NUM, M, SZX) and no Size1, so that a block fits in the
 * size the Size1 of a 4.13 promised. */
static bool pdu_add_request_options(coap_pdu_t *pdu, const request_spec_t *spec,
                                    size_t block_size, unsigned block_num) {
  const uint8_t *data = spec->payload;
  size_t len = spec->payload_len;

  /* Options in ascending number order: Observe 6, Uri-Path 11, Content-Format 12,
   * Uri-Query 15, Accept 17, Block1 27. */
  if (spec->observe >= 0 && !peer_add_uint_option(pdu, COAP_OPTION_OBSERVE, spec->observe))
    return false;
  if (spec->path && !peer_add_uri_path(pdu, spec->path))
    return false;
  if (spec->content_format >= 0 &&
      !peer_add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT, spec->content_format))
    return false;
  if (spec->query && !peer_add_uri_query(pdu, spec->query))
    return false;
  if (spec->accept >= 0 && !peer_add_uint_option(pdu, COAP_OPTION_ACCEPT, spec->accept))
    return false;
  if (block_size > 0) {
    size_t offset = (size_t)block_num * block_size;
    bool more = offset + block_size < len;
    unsigned szx = 0;

    while ((16u << szx) < block_size)
      szx++;
    if (!peer_add_uint_option(pdu, COAP_OPTION_BLOCK1,
                              (block_num << 4) | (more ? 0x08u : 0u) | szx))
      return false;
    data += offset;
    len = more ? block_size : len - offset;
  }
  return len == 0 || coap_add_data(pdu, len, data);
}

/* Sends SPEC with the exchange's token (block BLOCK_NUM of its payload when BLOCK_SIZE > 0,
 * always CON then). On failure reports an error and drops EX. */
static bool exchange_send_block(server_t *srv, exchange_t *ex, const request_spec_t *spec,
                                size_t block_size, unsigned block_num) {
  size_t size = coap_session_max_pdu_size(ex->session) + spec->payload_len;
  coap_pdu_type_t type = block_size > 0 ? COAP_MESSAGE_CON : srv->request_type;
  coap_pdu_t *pdu = coap_pdu_init(type, spec->method, coap_new_message_id(ex->session), size);

  if (!pdu || !coap_add_token(pdu, ex->token_len, ex->token) ||
      !pdu_add_request_options(pdu, spec, block_size, block_num)) {
    coap_delete_pdu(pdu);
    emit_error(ex->id, true, "cannot build request");
    exchange_remove(srv, ex);
    return false;
  }
  if (block_size == 0)
    ex->sent_ms = peer_now_ms();
  /* coap_send() consumes the PDU whatever happens. */
  if (coap_send(ex->session, pdu) == COAP_INVALID_MID) {
    emit_error(ex->id, true, "coap_send failed");
    exchange_remove(srv, ex);
    return false;
  }
  return true;
}

static bool exchange_send(server_t *srv, exchange_t *ex, const request_spec_t *spec) {
  /* Kept for a block-wise retry; observations and cancels carry no payload. */
  if (spec->payload_len > 0 && !ex->body) {
    ex->method = spec->method;
    ex->query = spec->query ? strdup(spec->query) : NULL;
    ex->content_format = spec->content_format;
    ex->accept = spec->accept;
    ex->body = malloc(spec->payload_len);
    if (!ex->body)
      abort();
    memcpy(ex->body, spec->payload, spec->payload_len);
    ex->body_len = spec->payload_len;
  }
  return exchange_send_block(srv, ex, spec, 0, 0);
}

/* The kept request of EX, as a spec to send again. */
static request_spec_t exchange_spec(const exchange_t *ex) {
  request_spec_t spec = REQUEST_SPEC_INIT;

  spec.method = ex->method;
  spec.path = ex->path;
  spec.query = ex->query;
  spec.content_format = ex->content_format;
  spec.accept = ex->accept;
  spec.payload = ex->body;
  spec.payload_len = ex->body_len;
  return spec;
}

/* Block BLOCK_NUM of EX's body, with a fresh token: a late copy of the answer to the previous
 * block then matches nothing instead of moving the transfer on twice. */
static bool exchange_send_next_block(server_t *srv, exchange_t *ex, unsigned block_num) {
  request_spec_t spec = exchange_spec(ex);

  coap_session_new_token(ex->session, &ex->token_len, ex->token);
  ex->block_num = block_num;
  return exchange_send_block(srv, ex, &spec, ex->block_size, block_num);
}

static coap_session_t *session_for_ep(server_t *srv, long id, const char *ep) {
  registration_t *reg = ep ? registration_by_ep(srv, ep) : NULL;
  char message[300];

  if (!reg) {
    snprintf(message, sizeof(message), "unknown endpoint '%s'", ep ? ep : "");
    emit_error(id, true, message);
    return NULL;
  }
  return reg->session;
}

/* A fresh request (not an observation) to endpoint EP. */
static void send_request(server_t *srv, long id, const char *ep, const request_spec_t *spec) {
  coap_session_t *session = session_for_ep(srv, id, ep);

  if (session)
    exchange_send(srv, exchange_new(srv, id, session, spec->path), spec);
}

/* --------------------------------------------------------------- responses */

static void json_add_cf_and_payload(json_buf_t *ev, const coap_pdu_t *pdu) {
  long content_format = peer_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT);

  if (content_format >= 0)
    json_add_int(ev, "content_format", content_format);
  else
    json_add_null(ev, "content_format");
  json_add_pdu_payload(ev, pdu);
}

static void emit_response(const exchange_t *ex, const coap_pdu_t *received) {
  long observe = peer_uint_option(received, COAP_OPTION_OBSERVE);
  json_buf_t ev;
  char code[8];

  json_begin(&ev, "response");
  json_add_int(&ev, "id", ex->id);
  json_add_str(&ev, "code", peer_code_str(coap_pdu_get_code(received), code));
  json_add_cf_and_payload(&ev, received);
  if (observe >= 0)
    json_add_int(&ev, "observe", observe);
  else
    json_add_null(&ev, "observe");
  json_add_str(&ev, "type", peer_type_str(coap_pdu_get_type(received)));
  json_add_int(&ev, "elapsed_ms", (long long)(peer_now_ms() - ex->sent_ms));
  json_emit(&ev);
}

static void emit_notify(const exchange_t *ex, const coap_pdu_t *received) {
  json_buf_t ev;
  char code[8];

  json_begin(&ev, "notify");
  json_add_int(&ev, "id", ex->id);
  json_add_int(&ev, "observe", peer_uint_option(received, COAP_OPTION_OBSERVE));
  json_add_cf_and_payload(&ev, received);
  json_add_str(&ev, "type", peer_type_str(coap_pdu_get_type(received)));
  json_add_str(&ev, "code", peer_code_str(coap_pdu_get_code(received), code));
  json_emit(&ev);
}

/* True when RECEIVED is a notification rather than the answer to our last request. */
static bool is_notification(const exchange_t *ex, const coap_pdu_t *received) {
  if (!ex->observing || !ex->answered)
    return false;
  if (!ex->cancelling)
    return true;
  /* While a cancel is outstanding, its answer is the piggybacked ACK without Observe;
   * anything else with Observe is a notification that crossed it. */
  return coap_pdu_get_type(received) != COAP_MESSAGE_ACK &&
         peer_uint_option(received, COAP_OPTION_OBSERVE) >= 0;
}

static void emit_block1_retry(const exchange_t *ex, long size1) {
  json_buf_t ev;

  json_begin(&ev, "block1-retry");
  json_add_int(&ev, "id", ex->id);
  json_add_int(&ev, "size1", size1);
  json_add_int(&ev, "block_size", (long long)ex->block_size);
  json_emit(&ev);
}

/* RFC 7959 2.9.3: a 4.13 with Size1 answering a request with a payload starts sending it again
 * block-wise, in blocks of the largest size from 16 to 1024 not above Size1; 2.5: each 2.31
 * Continue asks for the next block, in the smaller size its Block1 SZX may ask for. Returns
 * true when RECEIVED was such a step, which is then not reported as the answer. */
static bool block1_step(server_t *srv, exchange_t *ex, const coap_pdu_t *received) {
  coap_pdu_code_t code = coap_pdu_get_code(received);
  long block1;
  size_t next_offset;

  if (!ex->body || ex->observing)
    return false;
  if (ex->block_size == 0) {
    long size1 = peer_uint_option(received, COAP_OPTION_SIZE1);

    if (code != COAP_RESPONSE_CODE_REQUEST_TOO_LARGE || size1 < 16)
      return false;
    ex->block_size = 1024;
    while (ex->block_size > (size_t)size1)
      ex->block_size /= 2;
    emit_block1_retry(ex, size1);
    exchange_send_next_block(srv, ex, 0);
    return true;
  }
  if (code != COAP_RESPONSE_CODE_CONTINUE)
    return false;
  next_offset = (ex->block_num + 1) * ex->block_size;
  block1 = peer_uint_option(received, COAP_OPTION_BLOCK1);
  if (block1 >= 0 && (block1 & 0x07) != 7 && (16u << (block1 & 0x07)) < ex->block_size)
    ex->block_size = 16u << (block1 & 0x07);
  if (next_offset >= ex->body_len)
    return false; /* a Continue for the last block: reported as it is */
  exchange_send_next_block(srv, ex, (unsigned)(next_offset / ex->block_size));
  return true;
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid) {
  server_t *srv = server_of(session);
  exchange_t *ex = exchange_by_token(srv, session, coap_pdu_get_token(received));
  json_buf_t ev;

  if (!ex) {
    /* RFC 7641 3.6: reject notifications nobody is interested in. */
    peer_log(LOG_INFO, "response with unknown token (mid 0x%04x), answering RST", mid);
    return COAP_RESPONSE_FAIL;
  }
  if (ex->rst_next) {
    /* RFC 7641 3.6: cancellation by RST; libcoap sends it when we return FAIL. */
    json_begin(&ev, "rst");
    json_add_int(&ev, "id", ex->id);
    json_add_int(&ev, "observe", peer_uint_option(received, COAP_OPTION_OBSERVE));
    json_emit(&ev);
    exchange_remove(srv, ex);
    return COAP_RESPONSE_FAIL;
  }
  if (block1_step(srv, ex, received))
    return COAP_RESPONSE_OK;
  if (is_notification(ex, received)) {
    emit_notify(ex, received);
    return COAP_RESPONSE_OK;
  }
  emit_response(ex, received);
  if (ex->observing && !ex->cancelling && COAP_RESPONSE_CLASS(coap_pdu_get_code(received)) == 2 &&
      peer_uint_option(received, COAP_OPTION_OBSERVE) >= 0)
    ex->answered = true;
  else
    exchange_remove(srv, ex);
  return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t mid) {
  server_t *srv = server_of(session);
  exchange_t *ex = sent ? exchange_by_token(srv, session, coap_pdu_get_token(sent)) : NULL;
  json_buf_t ev;

  if (!ex) {
    peer_log(LOG_INFO, "nack (%s) for untracked mid 0x%04x", peer_nack_str(reason), mid);
    return;
  }
  json_begin(&ev, "nack");
  json_add_int(&ev, "id", ex->id);
  json_add_str(&ev, "reason", peer_nack_str(reason));
  json_add_int(&ev, "elapsed_ms", (long long)(peer_now_ms() - ex->sent_ms));
  json_emit(&ev);
  exchange_remove(srv, ex);
}

/* ---------------------------------------------------------------- commands */

/* Each command gets the words after its ID in ARGS and reports its own usage errors. */
typedef void (*command_fn_t)(server_t *srv, long id, char *args);

static void usage_error(long id, const char *usage) {
  char message[200];

  snprintf(message, sizeof(message), "usage: %s", usage);
  emit_error(id, true, message);
}

/* Rest of the line after one separating space, verbatim (a written value may hold spaces). */
static char *rest_of_line(char *args) {
  while (*args == ' ' || *args == '\t')
    args++;
  return args;
}

static void cmd_read(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);
  char *accept;

  spec.method = COAP_REQUEST_CODE_GET;
  spec.path = peer_next_word(&args);
  accept = peer_next_word(&args);
  if (!spec.path || (accept && !peer_parse_long(accept, 0, 65535, &spec.accept))) {
    usage_error(id, "read ID EP PATH [ACCEPT_CF]");
    return;
  }
  send_request(srv, id, ep, &spec);
}

static void cmd_discover(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);

  spec.method = COAP_REQUEST_CODE_GET;
  spec.path = peer_next_word(&args);
  spec.accept = COAP_MEDIATYPE_APPLICATION_LINK_FORMAT;
  if (!spec.path) {
    usage_error(id, "discover ID EP PATH");
    return;
  }
  send_request(srv, id, ep, &spec);
}

static void cmd_write(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);
  char *value;

  spec.method = COAP_REQUEST_CODE_PUT;
  spec.path = peer_next_word(&args);
  value = rest_of_line(args);
  if (!spec.path) {
    usage_error(id, "write ID EP PATH VALUE");
    return;
  }
  spec.content_format = COAP_MEDIATYPE_TEXT_PLAIN;
  spec.payload = (const uint8_t *)value;
  spec.payload_len = strlen(value);
  send_request(srv, id, ep, &spec);
}

/* Shared by write-cf, create, fetch and ipatch: "[PATH] CF HEXPAYLOAD". */
static void cmd_with_hex_payload(server_t *srv, long id, char *args, coap_pdu_code_t method,
                                 bool has_path, const char *usage) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);
  const char *path = has_path ? peer_next_word(&args) : "/";
  char *cf = peer_next_word(&args);
  char *hex = peer_next_word(&args);
  uint8_t *payload = NULL;

  if (!path || !peer_parse_long(cf, 0, 65535, &spec.content_format) ||
      !peer_hex_decode(hex ? hex : "", &payload, &spec.payload_len)) {
    usage_error(id, usage);
    return;
  }
  spec.method = method;
  spec.path = path;
  spec.payload = payload;
  send_request(srv, id, ep, &spec);
  free(payload);
}

static void cmd_write_cf(server_t *srv, long id, char *args) {
  cmd_with_hex_payload(srv, id, args, COAP_REQUEST_CODE_PUT, true,
                       "write-cf ID EP PATH CF HEXPAYLOAD");
}

static void cmd_create(server_t *srv, long id, char *args) {
  cmd_with_hex_payload(srv, id, args, COAP_REQUEST_CODE_POST, true,
                       "create ID EP PATH CF HEXPAYLOAD");
}

/* Read-Composite (Core 6.3.8) and Write-Composite (Core 6.3.7) address the root. */
static void cmd_fetch(server_t *srv, long id, char *args) {
  cmd_with_hex_payload(srv, id, args, COAP_REQUEST_CODE_FETCH, false,
                       "fetch ID EP CF HEXPAYLOAD");
}

static void cmd_ipatch(server_t *srv, long id, char *args) {
  cmd_with_hex_payload(srv, id, args, COAP_REQUEST_CODE_IPATCH, false,
                       "ipatch ID EP CF HEXPAYLOAD");
}

static void cmd_delete(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);

  spec.method = COAP_REQUEST_CODE_DELETE;
  spec.path = peer_next_word(&args);
  if (!spec.path) {
    usage_error(id, "delete ID EP PATH");
    return;
  }
  send_request(srv, id, ep, &spec);
}

static void cmd_execute(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);
  char *arguments;

  spec.method = COAP_REQUEST_CODE_POST;
  spec.path = peer_next_word(&args);
  arguments = rest_of_line(args);
  if (!spec.path) {
    usage_error(id, "execute ID EP PATH [ARGS]");
    return;
  }
  /* Core 5.4.5: Execute arguments are plain text; without them the request has no body. */
  if (*arguments) {
    spec.content_format = COAP_MEDIATYPE_TEXT_PLAIN;
    spec.payload = (const uint8_t *)arguments;
    spec.payload_len = strlen(arguments);
  }
  send_request(srv, id, ep, &spec);
}

static void cmd_write_attr(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);

  spec.method = COAP_REQUEST_CODE_PUT;
  spec.path = peer_next_word(&args);
  spec.query = peer_next_word(&args);
  if (!spec.query) {
    usage_error(id, "write-attr ID EP PATH QUERY");
    return;
  }
  send_request(srv, id, ep, &spec);
}

static void cmd_observe(server_t *srv, long id, char *args) {
  request_spec_t spec = REQUEST_SPEC_INIT;
  char *ep = peer_next_word(&args);
  coap_session_t *session;
  exchange_t *ex;

  spec.method = COAP_REQUEST_CODE_GET;
  spec.path = peer_next_word(&args);
  spec.observe = COAP_OBSERVE_ESTABLISH;
  if (!spec.path) {
    usage_error(id, "observe ID EP PATH");
    return;
  }
  if (observation_by_id(srv, id)) {
    emit_error(id, true, "observation id already in use");
    return;
  }
  session = session_for_ep(srv, id, ep);
  if (!session)
    return;
  ex = exchange_new(srv, id, session, spec.path);
  ex->observing = true;
  exchange_send(srv, ex, &spec);
}

static exchange_t *observation_for_cancel(server_t *srv, long id) {
  exchange_t *ex = observation_by_id(srv, id);

  if (!ex)
    emit_error(id, true, "no such observation");
  return ex;
}

/* RFC 7641 3.6: cancel with a GET carrying Observe=1 and the observation's token. */
static void cmd_cancel(server_t *srv, long id, char *args) {
  exchange_t *ex = observation_for_cancel(srv, id);
  request_spec_t spec = REQUEST_SPEC_INIT;

  if (!ex)
    return;
  spec.method = COAP_REQUEST_CODE_GET;
  spec.path = ex->path;
  spec.observe = COAP_OBSERVE_CANCEL;
  ex->cancelling = true;
  exchange_send(srv, ex, &spec);
}

static void cmd_cancel_rst(server_t *srv, long id, char *args) {
  exchange_t *ex = observation_for_cancel(srv, id);

  if (ex)
    ex->rst_next = true;
}

static void set_request_type(server_t *srv, long id, coap_pdu_type_t type) {
  json_buf_t ev;

  srv->request_type = type;
  json_begin(&ev, "mode");
  json_add_int(&ev, "id", id);
  json_add_str(&ev, "type", peer_type_str(type));
  json_emit(&ev);
}

static void cmd_con(server_t *srv, long id, char *args) {
  set_request_type(srv, id, COAP_MESSAGE_CON);
}

static void cmd_non(server_t *srv, long id, char *args) {
  set_request_type(srv, id, COAP_MESSAGE_NON);
}

static const struct {
  const char *name;
  command_fn_t run;
} commands[] = {
    {"read", cmd_read},           {"discover", cmd_discover},
    {"write", cmd_write},         {"write-cf", cmd_write_cf},
    {"create", cmd_create},       {"delete", cmd_delete},
    {"execute", cmd_execute},     {"write-attr", cmd_write_attr},
    {"fetch", cmd_fetch},         {"ipatch", cmd_ipatch},
    {"observe", cmd_observe},     {"cancel", cmd_cancel},
    {"cancel-rst", cmd_cancel_rst}, {"con", cmd_con},
    {"non", cmd_non},
};

static void on_line(void *arg, char *line) {
  server_t *srv = arg;
  char *cursor = line;
  char *verb = peer_next_word(&cursor);
  char *id_text;
  long id;

  if (!verb)
    return;
  if (strcmp(verb, "quit") == 0) {
    peer_loop_quit();
    return;
  }
  id_text = peer_next_word(&cursor);
  if (!id_text || !peer_parse_long(id_text, LONG_MIN, LONG_MAX, &id)) {
    emit_error(0, false, "expected: COMMAND ID ...");
    return;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (strcmp(commands[i].name, verb) == 0) {
      commands[i].run(srv, id, cursor);
      return;
    }
  }
  emit_error(id, true, "unknown command");
}

/* ------------------------------------------------------------------- setup */

typedef struct server_options_t {
  const char *listen;
  const char *dtls_listen;
  const char *psk_identity;
  const char *psk_key_hex;
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  int log_level;
  bool stay;
  bool quiet;
} server_options_t;

static void usage(void) {
  fprintf(stderr,
          "usage: lwm2m-test-server --listen HOST:PORT [--dtls-listen HOST:PORT\n"
          "         [--psk-identity ID --psk-key HEX] [--cert FILE --key FILE --ca FILE]]\n"
          "         [--log-level N] [--stay] [--quiet]\n");
}

static bool parse_options(int argc, char **argv, server_options_t *out) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"dtls-listen", required_argument, NULL, 'd'},
      {"psk-identity", required_argument, NULL, 'i'},
      {"psk-key", required_argument, NULL, 'k'},
      {"cert", required_argument, NULL, 'c'},
      {"key", required_argument, NULL, 'j'},
      {"ca", required_argument, NULL, 'a'},
      {"log-level", required_argument, NULL, 'v'},
      {"stay", no_argument, NULL, 's'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  long level;
  bool has_psk;
  bool has_pki;
  int c;

  memset(out, 0, sizeof(*out));
  out->log_level = LOG_WARNING;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'l': out->listen = optarg; break;
    case 'd': out->dtls_listen = optarg; break;
    case 'i': out->psk_identity = optarg; break;
    case 'k': out->psk_key_hex = optarg; break;
    case 'c': out->cert_file = optarg; break;
    case 'j': out->key_file = optarg; break;
    case 'a': out->ca_file = optarg; break;
    case 's': out->stay = true; break;
    case 'q': out->quiet = true; break;
    case 'v':
      if (!peer_parse_long(optarg, 0, COAP_LOG_CIPHERS, &level))
        return false;
      out->log_level = (int)level;
      break;
    default: return false;
    }
  }
  if (!out->listen || optind != argc)
    return false;
  /* Each credential comes whole; DTLS needs at least one of them. */
  has_psk = out->psk_identity || out->psk_key_hex;
  has_pki = out->cert_file || out->key_file || out->ca_file;
  if (has_psk && !(out->psk_identity && out->psk_key_hex))
    return false;
  if (has_pki && !(out->cert_file && out->key_file && out->ca_file))
    return false;
  return !out->dtls_listen || has_psk || has_pki;
}

/* Accepts only the configured PSK identity (Core/Transport: one credential per client). */
static const coap_bin_const_t *on_psk_identity(coap_bin_const_t *identity,
                                               coap_session_t *session, void *arg) {
  server_t *srv = arg;
  json_buf_t ev;

  if (identity && identity->length == strlen(srv->psk_identity) &&
      memcmp(identity->s, srv->psk_identity, identity->length) == 0)
    return &srv->psk_key;
  json_begin(&ev, "psk-rejected");
  json_add_strn(&ev, "identity", identity ? identity->s : (const uint8_t *)"",
                identity ? identity->length : 0);
  json_emit(&ev);
  return NULL;
}

static bool setup_psk(server_t *srv, const server_options_t *opts) {
  /* libcoap copies the struct but keeps pointing at the key bytes: srv owns them until
   * after the context is freed. */
  coap_dtls_spsk_t psk;
  uint8_t *key;
  size_t key_len;

  if (!peer_hex_decode(opts->psk_key_hex, &key, &key_len) || key_len == 0) {
    peer_log(LOG_ERR, "--psk-key must be non-empty hex");
    return false;
  }
  srv->psk_identity = strdup(opts->psk_identity);
  srv->psk_key.s = key;
  srv->psk_key.length = key_len;
  memset(&psk, 0, sizeof(psk));
  psk.version = COAP_DTLS_SPSK_SETUP_VERSION;
  psk.validate_id_call_back = on_psk_identity;
  psk.id_call_back_arg = srv;
  psk.psk_info.key = srv->psk_key;
  return coap_context_set_psk2(srv->ctx, &psk) != 0;
}

/* Requires a client certificate that chains to --ca (check_common_ca) and notes its CN. libcoap
 * keeps pointing at the file names, which are argv strings. */
static bool setup_pki(server_t *srv, const server_options_t *opts) {
  const char *files[] = {opts->cert_file, opts->key_file, opts->ca_file};
  coap_dtls_pki_t pki;

  /* libcoap on OpenSSL 1.1.1+ reads the files only at a handshake: fail at start instead. */
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    FILE *f = fopen(files[i], "r");

    if (!f) {
      peer_log(LOG_ERR, "cannot read %s: %s", files[i], strerror(errno));
      return false;
    }
    fclose(f);
  }
  memset(&pki, 0, sizeof(pki));
  pki.version = COAP_DTLS_PKI_SETUP_VERSION;
  pki.verify_peer_cert = 1;
  pki.check_common_ca = 1;
  pki.cert_chain_validation = 1;
  pki.cert_chain_verify_depth = 2;
  pki.validate_cn_call_back = on_client_cn;
  pki.cn_call_back_arg = srv;
  pki.pki_key.key_type = COAP_PKI_KEY_PEM;
  pki.pki_key.key.pem.public_cert = opts->cert_file;
  pki.pki_key.key.pem.private_key = opts->key_file;
  pki.pki_key.key.pem.ca_file = opts->ca_file;
  if (!coap_context_set_pki(srv->ctx, &pki)) {
    peer_log(LOG_ERR, "cannot use --cert %s --key %s --ca %s", opts->cert_file, opts->key_file,
             opts->ca_file);
    return false;
  }
  return true;
}

static bool setup_dtls(server_t *srv, const server_options_t *opts) {
  if (!coap_dtls_is_supported()) {
    peer_log(LOG_ERR, "libcoap has no DTLS support");
    return false;
  }
  if (opts->psk_identity && !setup_psk(srv, opts))
    return false;
  return !opts->cert_file || setup_pki(srv, opts);
}

/* libcoap does not expose an endpoint's bound address except through its description
 * "ADDR:PORT PROTO", which is how a port 0 listener learns the port it got. */
static long endpoint_port(const coap_endpoint_t *endpoint) {
  char text[128];
  char *space;
  char *colon;
  long port;

  snprintf(text, sizeof(text), "%s", coap_endpoint_str(endpoint));
  space = strchr(text, ' ');
  if (space)
    *space = '\0';
  colon = strrchr(text, ':');
  if (!colon || !peer_parse_long(colon + 1, 1, 65535, &port))
    return -1;
  return port;
}

static long listen_on(server_t *srv, const char *host_port, coap_proto_t proto) {
  coap_address_t addr;
  coap_endpoint_t *endpoint;

  if (!peer_parse_host_port(host_port, &addr))
    return -1;
  endpoint = coap_new_endpoint(srv->ctx, &addr, proto);
  if (!endpoint) {
    peer_log(LOG_ERR, "cannot listen on %s", host_port);
    return -1;
  }
  /* libcoap discards datagrams larger than the session MTU (default 1152); accept all a
   * read can hold so large registrations relayed as one datagram still get through. */
  coap_endpoint_set_default_mtu(endpoint, COAP_RXBUFFER_SIZE);
  return endpoint_port(endpoint);
}

static void emit_listening(long port, long dtls_port) {
  json_buf_t ev;

  json_begin(&ev, "listening");
  json_add_int(&ev, "port", port);
  if (dtls_port > 0)
    json_add_int(&ev, "dtls_port", dtls_port);
  else
    json_add_null(&ev, "dtls_port");
  json_emit(&ev);
}

static bool server_start(server_t *srv, const server_options_t *opts) {
  coap_resource_t *everything;
  long port;
  long dtls_port = 0;

  srv->ctx = coap_new_context(NULL);
  if (!srv->ctx)
    return false;
  coap_set_app_data(srv->ctx, srv);
  coap_register_response_handler(srv->ctx, on_response);
  coap_register_nack_handler(srv->ctx, on_nack);
  coap_register_event_handler(srv->ctx, on_event);
  everything = coap_resource_unknown_init2(on_request, 0);
  coap_register_request_handler(everything, COAP_REQUEST_POST, on_request);
  coap_register_request_handler(everything, COAP_REQUEST_DELETE, on_request);
  coap_register_request_handler(everything, COAP_REQUEST_GET, on_request);
  coap_add_resource(srv->ctx, everything);

  port = listen_on(srv, opts->listen, COAP_PROTO_UDP);
  if (port < 0)
    return false;
  if (opts->dtls_listen) {
    if (!setup_dtls(srv, opts))
      return false;
    dtls_port = listen_on(srv, opts->dtls_listen, COAP_PROTO_DTLS);
    if (dtls_port < 0)
      return false;
  }
  emit_listening(port, dtls_port);
  return true;
}

static void server_stop(server_t *srv) {
  while (srv->exchanges)
    exchange_remove(srv, srv->exchanges);
  while (srv->registrations)
    registration_remove(srv, srv->registrations);
  if (srv->ctx)
    coap_free_context(srv->ctx);
  while (srv->client_certs)
    client_cert_forget(srv, srv->client_certs->session);
  for (size_t i = 0; i < ANSWERED_MAX; i++)
    if (srv->answered[i].answer)
      coap_delete_pdu(srv->answered[i].answer);
  free(srv->psk_identity);
  free((void *)srv->psk_key.s);
}

int main(int argc, char **argv) {
  server_options_t opts;
  server_t srv = {.request_type = COAP_MESSAGE_CON};
  int status = 1;

  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!parse_options(argc, argv, &opts)) {
    usage();
    return 2;
  }
  srv.quiet = opts.quiet;
  coap_startup();
  peer_log_init("lwm2m-test-server", opts.log_level);
  if (server_start(&srv, &opts)) {
    peer_loop_t loop = {.ctx = srv.ctx, .on_line = on_line, .arg = &srv,
                        .stay_on_eof = opts.stay};

    peer_loop_run(&loop);
    status = 0;
  }
  server_stop(&srv);
  coap_cleanup();
  return status;
}
