/*
 * lwm2m-test-device: a minimal LwM2M client for the gateway's integration tests.
 *
 * It registers with one server over CoAP/UDP (or DTLS PSK) and serves the Device object
 * /3/0. All its requests and all its answers use the one client session it opened to the
 * server, as a real device behind one socket does, so the gateway sees one source port.
 * Everything it sees is reported as one JSON object per stdout line; see README.md.
 */
#include "peer_common.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEVICE_OBJECT_ID 3

/* Requests the device itself sends to the server (Registration and Send interfaces). */
typedef enum {
  OP_REGISTER,
  OP_UPDATE,
  OP_DEREGISTER,
  OP_SEND,
  OP_BOOTSTRAP,
} client_op_t;

/* A request of ours waiting for its answer, matched by token. */
typedef struct outgoing_t {
  struct outgoing_t *next;
  client_op_t op;
  uint8_t token[8];
  size_t token_len;
} outgoing_t;

#define RECENT_MIDS 4

/* One server-side observation of a single resource (RFC 7641). */
typedef struct observation_t {
  struct observation_t *next;
  char *path;
  uint16_t resource_id;
  uint8_t token[8];
  size_t token_len;
  uint32_t seq;
  /* MIDs of the last notifications, to recognise an RST aimed at one of them. */
  coap_mid_t recent_mids[RECENT_MIDS];
  unsigned next_mid_slot;
} observation_t;

typedef struct device_options_t {
  const char *server_uri;
  const char *ep;
  long lifetime;
  const char *binding;
  const char *lwm2m_version;
  bool queue;
  long reg_payload_size;
  long local_port; /* -1: let the kernel choose the address too */
  bool silent;
  bool con_notify;
  long notify_ms;
  long register_timeout_ms; /* 0: rely on libcoap's retransmission limit */
  long delay_ms;            /* >0: answer server requests separately, this much later */
  int log_level;
  const char *psk_identity;
  const char *psk_key_hex;
  const char *sms_number; /* sms= in the Register: the device takes SMS triggers (6.6) */
  long trigger_port;      /* >0: UDP port standing for the device's SMS interface */
  bool omit_params;       /* Register without ep, lt, lwm2m, b (Transport 6.8.4 defaults) */
  bool no_objects;        /* Register without object list until a 4.09 asks for it */
  bool stay;
} device_options_t;

/* A Block1 request body being received (RFC 7959 2.5): one at a time. */
typedef struct block1_body_t {
  coap_pdu_code_t method;
  char *path; /* NULL: nothing being received */
  uint8_t *data;
  size_t len;
} block1_body_t;

/* The largest body the device takes block-wise: a guard, not a protocol limit. */
#define BLOCK1_BODY_MAX 65536

typedef struct device_t {
  device_options_t opts;
  int trigger_fd; /* --trigger-port socket, -1 without */
  coap_context_t *ctx;
  coap_session_t *session;
  char *location; /* "/rd/1" once registered */
  bool send_objects; /* the Register carries the object list (false with --no-objects) */
  block1_body_t block1;
  outgoing_t *outgoing;
  observation_t *observations;
  uint64_t next_notify_ms;
  uint64_t register_deadline_ms;
  uint8_t *psk_key;
  size_t psk_key_len;
  /* Writable resource values of /3/0. */
  long long current_time;
  char *utc_offset;
  char *timezone;
} device_t;

static device_t *device_of(const coap_session_t *session) {
  return coap_get_app_data(coap_session_get_context(session));
}

static void emit_error(const char *message) {
  json_buf_t ev;

  json_begin(&ev, "error");
  json_add_str(&ev, "message", message);
  json_emit(&ev);
}

/* ------------------------------------------------------ the Device object */

enum { OP_READ = 1, OP_WRITE = 2, OP_EXEC = 4 };

/* Core Appendix E.4 (Device), the resources this test device implements. */
typedef struct resource_def_t {
  uint16_t id;
  unsigned ops;
  bool is_integer;
} resource_def_t;

static const resource_def_t device_resources[] = {
    {0, OP_READ, false},             /* Manufacturer */
    {1, OP_READ, false},             /* Model Number */
    {2, OP_READ, false},             /* Serial Number */
    {3, OP_READ, false},             /* Firmware Version */
    {4, OP_EXEC, false},             /* Reboot */
    {13, OP_READ | OP_WRITE, true},  /* Current Time */
    {14, OP_READ | OP_WRITE, false}, /* UTC Offset */
    {15, OP_READ | OP_WRITE, false}, /* Timezone */
    {16, OP_READ, false},            /* Supported Binding and Modes */
};

#define DEVICE_RESOURCE_COUNT (sizeof(device_resources) / sizeof(device_resources[0]))

static const resource_def_t *resource_def(long id) {
  for (size_t i = 0; i < DEVICE_RESOURCE_COUNT; i++)
    if (device_resources[i].id == id)
      return &device_resources[i];
  return NULL;
}

/* Text form of a readable resource (plain text, Core 7.3.1) into out_text. */
static void resource_text(const device_t *dev, uint16_t id, char *out_text, size_t size) {
  switch (id) {
  case 0: snprintf(out_text, size, "lwm2m-gw test"); break;
  case 1: snprintf(out_text, size, "test-device"); break;
  case 2: snprintf(out_text, size, "%s", dev->opts.ep); break;
  case 3: snprintf(out_text, size, "1.0"); break;
  case 13: snprintf(out_text, size, "%lld", dev->current_time); break;
  case 14: snprintf(out_text, size, "%s", dev->utc_offset); break;
  case 15: snprintf(out_text, size, "%s", dev->timezone); break;
  case 16: snprintf(out_text, size, "U"); break;
  default: out_text[0] = '\0'; break;
  }
}

/* Stores a plain-text Write; returns the response code. */
static coap_pdu_code_t resource_write(device_t *dev, uint16_t id, const char *text) {
  long long value;
  char *end;

  switch (id) {
  case 13:
    value = strtoll(text, &end, 10);
    if (!*text || *end)
      return COAP_RESPONSE_CODE_BAD_REQUEST;
    dev->current_time = value;
    return COAP_RESPONSE_CODE_CHANGED;
  case 14:
    free(dev->utc_offset);
    dev->utc_offset = strdup(text);
    return COAP_RESPONSE_CODE_CHANGED;
  case 15:
    free(dev->timezone);
    dev->timezone = strdup(text);
    return COAP_RESPONSE_CODE_CHANGED;
  default:
    return COAP_RESPONSE_CODE_NOT_ALLOWED;
  }
}

/* A parsed LwM2M path: depth 0 is the root, 3 a resource. */
typedef struct lwm2m_path_t {
  int depth;
  long ids[4];
} lwm2m_path_t;

static bool lwm2m_path_parse(const char *text, lwm2m_path_t *out_path) {
  char copy[128];
  char *cursor = copy;
  char *segment;

  memset(out_path, 0, sizeof(*out_path));
  if (strlen(text) >= sizeof(copy))
    return false;
  strcpy(copy, text);
  while ((segment = strsep(&cursor, "/"))) {
    if (!*segment)
      continue;
    if (out_path->depth == 4 || !peer_parse_long(segment, 0, 65535, &out_path->ids[out_path->depth]))
      return false;
    out_path->depth++;
  }
  return true;
}

/* True when PATH names something this device has: /3, /3/0 or a resource of /3/0. */
static bool lwm2m_path_exists(const lwm2m_path_t *path) {
  if (path->depth == 0)
    return true;
  if (path->ids[0] != DEVICE_OBJECT_ID)
    return false;
  if (path->depth >= 2 && path->ids[1] != 0)
    return false;
  if (path->depth >= 3 && !resource_def(path->ids[2]))
    return false;
  return path->depth <= 3;
}

/* SenML-JSON (Core 7.4.4) of one resource or of all readable ones when id < 0. */
static void senml_append_resources(const device_t *dev, json_buf_t *buf, long id) {
  char text[256];
  char name[32];

  for (size_t i = 0; i < DEVICE_RESOURCE_COUNT; i++) {
    const resource_def_t *def = &device_resources[i];

    if (!(def->ops & OP_READ) || (id >= 0 && def->id != id))
      continue;
    resource_text(dev, def->id, text, sizeof(text));
    snprintf(name, sizeof(name), "/3/0/%u", def->id);
    json_append_raw(buf, buf->len > 1 ? ",{\"n\":" : "{\"n\":");
    json_append_string(buf, name, strlen(name));
    json_append_raw(buf, def->is_integer ? ",\"v\":" : ",\"vs\":");
    if (def->is_integer)
      json_append_raw(buf, text);
    else
      json_append_string(buf, text, strlen(text));
    json_append_raw(buf, "}");
  }
}

/* Link-format of PATH and what is below it (Core 5.4.2 Discover). */
static void link_format_append(json_buf_t *buf, const lwm2m_path_t *path) {
  char link[32];

  if (path->depth <= 1)
    json_append_raw(buf, "</3>,</3/0>");
  else if (path->depth == 2)
    json_append_raw(buf, "</3/0>");
  for (size_t i = 0; i < DEVICE_RESOURCE_COUNT; i++) {
    if (path->depth == 3 && device_resources[i].id != path->ids[2])
      continue;
    snprintf(link, sizeof(link), "%s</3/0/%u>", buf->len ? "," : "", device_resources[i].id);
    json_append_raw(buf, link);
  }
}

/* ------------------------------------------------------------- answering */

static void respond(coap_pdu_t *response, coap_pdu_code_t code, long content_format,
                    const void *payload, size_t len) {
  coap_pdu_set_code(response, code);
  if (content_format >= 0)
    peer_add_uint_option(response, COAP_OPTION_CONTENT_FORMAT, (unsigned)content_format);
  if (len)
    coap_add_data(response, len, payload);
}

static void respond_code(coap_pdu_t *response, coap_pdu_code_t code) {
  respond(response, code, -1, NULL, 0);
}

static char *payload_text(const coap_pdu_t *pdu) {
  const uint8_t *data = NULL;
  size_t len = 0;
  char *text;

  if (!coap_get_data(pdu, &len, &data))
    len = 0;
  text = malloc(len + 1);
  if (!text)
    abort();
  if (len)
    memcpy(text, data, len);
  text[len] = '\0';
  return text;
}

static void emit_path_event(const char *name, const char *path, const char *key,
                            const char *value) {
  json_buf_t ev;

  json_begin(&ev, name);
  json_add_str(&ev, "path", path);
  json_add_str(&ev, key, value);
  json_emit(&ev);
}

/* --------------------------------------------------------- observations */

static void observation_free(observation_t *obs) {
  free(obs->path);
  free(obs);
}

static observation_t *observation_by_token(device_t *dev, coap_bin_const_t token) {
  for (observation_t *obs = dev->observations; obs; obs = obs->next)
    if (obs->token_len == token.length && memcmp(obs->token, token.s, token.length) == 0)
      return obs;
  return NULL;
}

static observation_t *observation_by_mid(device_t *dev, coap_mid_t mid) {
  for (observation_t *obs = dev->observations; obs; obs = obs->next)
    for (unsigned i = 0; i < RECENT_MIDS; i++)
      if (obs->recent_mids[i] == mid)
        return obs;
  return NULL;
}

/* Ends an observation; BY says how: "observe=1", "rst" or "timeout". */
static void observation_cancel(device_t *dev, observation_t *obs, const char *by) {
  for (observation_t **p = &dev->observations; *p; p = &(*p)->next) {
    if (*p == obs) {
      *p = obs->next;
      emit_path_event("observe-cancelled", obs->path, "by", by);
      observation_free(obs);
      return;
    }
  }
}

/* RFC 7641 4.1: a GET with Observe=0 and a known token refreshes that observation. */
static observation_t *observation_start(device_t *dev, coap_bin_const_t token, const char *path,
                                        uint16_t resource_id) {
  observation_t *obs = observation_by_token(dev, token);
  json_buf_t ev;

  if (!obs) {
    obs = calloc(1, sizeof(*obs));
    if (!obs || token.length > sizeof(obs->token))
      abort();
    memcpy(obs->token, token.s, token.length);
    obs->token_len = token.length;
    for (unsigned i = 0; i < RECENT_MIDS; i++)
      obs->recent_mids[i] = COAP_INVALID_MID;
    obs->next = dev->observations;
    dev->observations = obs;
  }
  free(obs->path);
  obs->path = strdup(path);
  obs->resource_id = resource_id;
  obs->seq++;
  if (!dev->next_notify_ms)
    dev->next_notify_ms = peer_now_ms() + (uint64_t)dev->opts.notify_ms;
  json_begin(&ev, "observe-started");
  json_add_str(&ev, "path", path);
  json_add_hex(&ev, "token", token.s, token.length);
  json_add_int(&ev, "observe", obs->seq);
  json_emit(&ev);
  return obs;
}

static void send_notification(device_t *dev, observation_t *obs) {
  coap_pdu_type_t type = dev->opts.con_notify ? COAP_MESSAGE_CON : COAP_MESSAGE_NON;
  coap_pdu_t *pdu = coap_pdu_init(type, COAP_RESPONSE_CODE_CONTENT,
                                  coap_new_message_id(dev->session),
                                  coap_session_max_pdu_size(dev->session));
  char text[256];
  coap_mid_t mid;
  json_buf_t ev;

  obs->seq = (obs->seq + 1) & 0xffffff; /* RFC 7641 4.4: 24-bit sequence number */
  resource_text(dev, obs->resource_id, text, sizeof(text));
  if (!pdu || !coap_add_token(pdu, obs->token_len, obs->token) ||
      !peer_add_uint_option(pdu, COAP_OPTION_OBSERVE, obs->seq) ||
      !peer_add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_TEXT_PLAIN) ||
      !coap_add_data(pdu, strlen(text), (const uint8_t *)text)) {
    coap_delete_pdu(pdu);
    peer_log(LOG_ERR, "cannot build notification");
    return;
  }
  mid = coap_send(dev->session, pdu); /* consumes pdu */
  obs->recent_mids[obs->next_mid_slot++ % RECENT_MIDS] = mid;
  json_begin(&ev, "notified");
  json_add_str(&ev, "path", obs->path);
  json_add_int(&ev, "observe", obs->seq);
  json_add_str(&ev, "type", peer_type_str(type));
  json_add_int(&ev, "mid", mid);
  json_add_str(&ev, "value", text);
  json_emit(&ev);
}

/* One observation period: the clock ticks, every observer hears about it. */
static void notify_all(device_t *dev) {
  observation_t *obs = dev->observations;

  dev->current_time++;
  while (obs) {
    observation_t *next = obs->next; /* send may end it (RST via the log hook) */

    send_notification(dev, obs);
    obs = next;
  }
  dev->next_notify_ms = dev->observations ? peer_now_ms() + (uint64_t)dev->opts.notify_ms : 0;
}

/* libcoap reports an RST only to the nack handler, and only for a CON it still
 * retransmits; an RST answering a NON notification (RFC 7641 3.6 cancellation) is
 * visible only as its "got RST for mid=..." log line, so the log handler watches for it.
 * The log handler has no user argument, hence this one global. */
static device_t *rst_watcher;

static void on_coap_log(coap_log_t level, const char *message) {
  unsigned mid;
  observation_t *obs;

  if (!rst_watcher || sscanf(message, "got RST for mid=0x%x", &mid) != 1) {
    peer_coap_log(level, message);
    return;
  }
  /* An expected event here, not the alert libcoap calls it. */
  peer_log(LOG_INFO, "got RST for mid 0x%04x", mid);
  obs = observation_by_mid(rst_watcher, (coap_mid_t)mid);
  if (obs)
    observation_cancel(rst_watcher, obs, "rst");
}

/* -------------------------------------------------------- request handling */

static void handle_discover(device_t *dev, const lwm2m_path_t *path, coap_pdu_t *response) {
  json_buf_t links = {0};

  if (path->depth == 0) {
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  link_format_append(&links, path);
  respond(response, COAP_RESPONSE_CODE_CONTENT, COAP_MEDIATYPE_APPLICATION_LINK_FORMAT,
          links.buf, links.len);
  json_buf_free(&links);
}

static void respond_senml(const device_t *dev, coap_pdu_t *response, long id) {
  json_buf_t senml = {0};

  json_append_raw(&senml, "[");
  senml_append_resources(dev, &senml, id);
  json_append_raw(&senml, "]");
  respond(response, COAP_RESPONSE_CODE_CONTENT, COAP_MEDIATYPE_APPLICATION_SENML_JSON,
          senml.buf, senml.len);
  json_buf_free(&senml);
}

/* Read of one resource, maybe starting or ending an observation of it. */
static void handle_read_resource(device_t *dev, const char *path_text, uint16_t id,
                                 const coap_pdu_t *request, coap_pdu_t *response) {
  long accept = peer_uint_option(request, COAP_OPTION_ACCEPT);
  long observe = peer_uint_option(request, COAP_OPTION_OBSERVE);
  coap_bin_const_t token = coap_pdu_get_token(request);
  observation_t *obs;
  char text[256];

  if (!(resource_def(id)->ops & OP_READ)) {
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  if (accept >= 0 && accept != COAP_MEDIATYPE_TEXT_PLAIN) {
    respond_code(response, COAP_RESPONSE_CODE_NOT_ACCEPTABLE);
    return;
  }
  if (observe == COAP_OBSERVE_ESTABLISH) {
    obs = observation_start(dev, token, path_text, id);
    /* Observe (6) goes before Content-Format (12) added by respond(). */
    peer_add_uint_option(response, COAP_OPTION_OBSERVE, obs->seq);
  } else if (observe == COAP_OBSERVE_CANCEL && (obs = observation_by_token(dev, token))) {
    observation_cancel(dev, obs, "observe=1");
  }
  resource_text(dev, id, text, sizeof(text));
  respond(response, COAP_RESPONSE_CODE_CONTENT, COAP_MEDIATYPE_TEXT_PLAIN, text, strlen(text));
}

static void handle_get(device_t *dev, const char *path_text, const lwm2m_path_t *path,
                       const coap_pdu_t *request, coap_pdu_t *response) {
  long accept = peer_uint_option(request, COAP_OPTION_ACCEPT);

  if (accept == COAP_MEDIATYPE_APPLICATION_LINK_FORMAT)
    handle_discover(dev, path, response);
  else if (path->depth == 0)
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
  else if (path->depth == 3)
    handle_read_resource(dev, path_text, (uint16_t)path->ids[2], request, response);
  else if (accept >= 0 && accept != COAP_MEDIATYPE_APPLICATION_SENML_JSON)
    respond_code(response, COAP_RESPONSE_CODE_NOT_ACCEPTABLE);
  else
    respond_senml(dev, response, -1);
}

/* Write-Attributes (Core 5.4.4): PUT with Uri-Query and no payload. */
static bool is_write_attributes(const coap_pdu_t *request) {
  const uint8_t *data;
  size_t len = 0;
  coap_opt_iterator_t it;

  return coap_check_option(request, COAP_OPTION_URI_QUERY, &it) &&
         (!coap_get_data(request, &len, &data) || len == 0);
}

static void handle_write_attributes(const char *path_text, const coap_pdu_t *request,
                                    coap_pdu_t *response) {
  char **queries = peer_uri_queries(request, NULL);
  json_buf_t query = {0};

  for (char **q = queries; *q; q++) {
    if (q != queries)
      json_append_raw(&query, "&");
    json_append_raw(&query, *q);
  }
  emit_path_event("write-attr", path_text, "query", query.buf ? query.buf : "");
  respond_code(response, COAP_RESPONSE_CODE_CHANGED);
  json_buf_free(&query);
  peer_free_strings(queries);
}

static void handle_put(device_t *dev, const char *path_text, const lwm2m_path_t *path,
                       const coap_pdu_t *request, coap_pdu_t *response) {
  long content_format = peer_uint_option(request, COAP_OPTION_CONTENT_FORMAT);
  const resource_def_t *def;
  coap_pdu_code_t code;
  char *value;

  if (path->depth > 0 && is_write_attributes(request)) {
    handle_write_attributes(path_text, request, response);
    return;
  }
  def = path->depth == 3 ? resource_def(path->ids[2]) : NULL;
  if (!def || !(def->ops & OP_WRITE)) {
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  if (content_format >= 0 && content_format != COAP_MEDIATYPE_TEXT_PLAIN) {
    respond_code(response, COAP_RESPONSE_CODE_UNSUPPORTED_CONTENT_FORMAT);
    return;
  }
  value = payload_text(request);
  code = resource_write(dev, def->id, value);
  if (code == COAP_RESPONSE_CODE_CHANGED)
    emit_path_event("write", path_text, "value", value);
  respond_code(response, code);
  free(value);
}

static void handle_post(device_t *dev, const char *path_text, const lwm2m_path_t *path,
                        const coap_pdu_t *request, coap_pdu_t *response) {
  const resource_def_t *def = path->depth == 3 ? resource_def(path->ids[2]) : NULL;
  char *args;

  /* Create on /3 and Write (partial update) on /3/0 are not supported by this device. */
  if (!def || !(def->ops & OP_EXEC)) {
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  args = payload_text(request);
  emit_path_event("execute", path_text, "args", args);
  respond_code(response, COAP_RESPONSE_CODE_CHANGED);
  free(args);
}

/* Paths named by "n" (with "bn" prefixes) in a SenML-JSON request; a scan, not a parser:
 * enough for the Read-Composite requests tests write. */
static char **senml_names(const char *senml, size_t *out_count) {
  char **names = calloc(1, sizeof(char *));
  char base[128] = "";
  const char *p = senml;
  size_t count = 0;

  while (names && (p = strstr(p, "n\""))) {
    bool is_base = p > senml && p[-1] == 'b' && p - 1 > senml && p[-2] == '"';
    bool is_name = p > senml && p[-1] == '"';
    const char *value = p + 2;
    const char *end;

    p += 2;
    if (!is_base && !is_name)
      continue;
    value += strspn(value, " \t\r\n:");
    if (*value != '"' || !(end = strchr(value + 1, '"')))
      continue;
    value++;
    if (is_base) {
      snprintf(base, sizeof(base), "%.*s", (int)(end - value), value);
      continue;
    }
    names = realloc(names, (count + 2) * sizeof(char *));
    if (!names || asprintf(&names[count], "%s%.*s", base, (int)(end - value), value) < 0)
      abort();
    names[++count] = NULL;
  }
  if (!names)
    abort();
  *out_count = count;
  return names;
}

/* Read-Composite (Core 6.3.8): FETCH on the root; answers the named resources. */
static void handle_fetch(device_t *dev, const lwm2m_path_t *path, const coap_pdu_t *request,
                         coap_pdu_t *response) {
  long content_format = peer_uint_option(request, COAP_OPTION_CONTENT_FORMAT);
  char *body = payload_text(request);
  size_t count = 0;
  char **names = content_format == COAP_MEDIATYPE_APPLICATION_SENML_JSON
                     ? senml_names(body, &count)
                     : calloc(1, sizeof(char *));
  json_buf_t senml = {0};
  json_buf_t ev;

  if (path->depth != 0) {
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
  } else {
    json_append_raw(&senml, "[");
    for (size_t i = 0; i < count; i++) {
      lwm2m_path_t named;

      if (lwm2m_path_parse(names[i], &named) && lwm2m_path_exists(&named) && named.depth > 0)
        senml_append_resources(dev, &senml, named.depth == 3 ? named.ids[2] : -1);
    }
    /* Request not in SenML-JSON: answer the whole instance rather than guess. */
    if (count == 0)
      senml_append_resources(dev, &senml, -1);
    json_append_raw(&senml, "]");
    respond(response, COAP_RESPONSE_CODE_CONTENT, COAP_MEDIATYPE_APPLICATION_SENML_JSON,
            senml.buf, senml.len);
  }
  json_begin(&ev, "fetch");
  json_add_int(&ev, "content_format", content_format);
  json_begin_array(&ev, "paths");
  for (size_t i = 0; i < count; i++)
    json_array_str(&ev, names[i]);
  json_end_array(&ev);
  json_add_pdu_payload(&ev, request);
  json_emit(&ev);
  json_buf_free(&senml);
  peer_free_strings(names);
  free(body);
}

/* Write-Composite (Core 6.3.7): iPATCH on the root; reported, not applied. */
static void handle_ipatch(const lwm2m_path_t *path, const coap_pdu_t *request,
                          coap_pdu_t *response) {
  json_buf_t ev;

  respond_code(response, path->depth == 0 ? COAP_RESPONSE_CODE_CHANGED
                                          : COAP_RESPONSE_CODE_NOT_ALLOWED);
  json_begin(&ev, "ipatch");
  json_add_int(&ev, "content_format", peer_uint_option(request, COAP_OPTION_CONTENT_FORMAT));
  json_add_pdu_payload(&ev, request);
  json_emit(&ev);
}

/* --delay-ms (RFC 7252 5.2.2): no response code is set, so libcoap sends the empty ACK (for a
 * CON) and, once the delay is over, calls on_request again with a copy of the request. That
 * copy has a new MID, which the separate response (CON for a CON) takes; libcoap retransmits
 * it until it is acknowledged. A retransmitted request meanwhile only gets the empty ACK again. */
static void defer_request(const device_t *dev, coap_session_t *session,
                          const coap_pdu_t *request, coap_pdu_t *response) {
  coap_tick_t delay = (coap_tick_t)dev->opts.delay_ms * COAP_TICKS_PER_SECOND / 1000;

  if (!coap_register_async(session, request, delay ? delay : 1)) {
    peer_log(LOG_ERR, "cannot defer the answer to mid 0x%04x", coap_pdu_get_mid(request));
    respond_code(response, COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE);
  }
}

static void emit_separate_response(const char *path, const coap_pdu_t *response) {
  char code_text[8];
  json_buf_t ev;

  json_begin(&ev, "separate-response");
  json_add_str(&ev, "path", path);
  json_add_str(&ev, "code", peer_code_str(coap_pdu_get_code(response), code_text));
  json_add_str(&ev, "type", peer_type_str(coap_pdu_get_type(response)));
  json_add_int(&ev, "mid", coap_pdu_get_mid(response));
  json_emit(&ev);
}

static void emit_request(const coap_pdu_t *request, const char *path) {
  json_buf_t ev;

  json_begin(&ev, "request");
  json_add_str(&ev, "method", peer_method_str(coap_pdu_get_code(request)));
  json_add_str(&ev, "path", path);
  json_add_str(&ev, "type", peer_type_str(coap_pdu_get_type(request)));
  json_add_int(&ev, "mid", coap_pdu_get_mid(request));
  json_emit(&ev);
}

/* ------------------------------------------------------ Block1 (RFC 7959) */

static void block1_reset(device_t *dev) {
  free(dev->block1.path);
  free(dev->block1.data);
  memset(&dev->block1, 0, sizeof(dev->block1));
}

static void emit_block(const char *path, unsigned num, bool more, size_t size, size_t len) {
  json_buf_t ev;

  json_begin(&ev, "block");
  json_add_str(&ev, "path", path);
  json_add_int(&ev, "num", num);
  json_add_bool(&ev, "more", more);
  json_add_int(&ev, "block_size", (long long)size);
  json_add_int(&ev, "received", (long long)len);
  json_emit(&ev);
}

/* REQUEST with the body received so far in place of its own and without Block1 and Size1:
 * what the handlers would have got had the request come whole. */
static coap_pdu_t *block1_whole_request(const device_t *dev, const coap_pdu_t *request) {
  coap_bin_const_t token = coap_pdu_get_token(request);
  coap_pdu_t *whole = coap_pdu_init(coap_pdu_get_type(request), coap_pdu_get_code(request),
                                    coap_pdu_get_mid(request), dev->block1.len + 1024);
  coap_opt_iterator_t it;
  coap_opt_t *opt;

  if (!whole || !coap_add_token(whole, token.length, token.s))
    abort();
  coap_option_iterator_init(request, &it, COAP_OPT_ALL);
  while ((opt = coap_option_next(&it)))
    if (it.number != COAP_OPTION_BLOCK1 && it.number != COAP_OPTION_SIZE1 &&
        !coap_add_option(whole, it.number, coap_opt_length(opt), coap_opt_value(opt)))
      abort();
  if (dev->block1.len && !coap_add_data(whole, dev->block1.len, dev->block1.data))
    abort();
  return whole;
}

/* RFC 7959 2.5: a request with Block1 is one block of a body. A block with M set is kept and
 * answered 2.31 Continue with its Block1 (NULL is returned, RESPONSE is set); the last one
 * returns the whole request, which the caller handles and frees, and *out_block1 is the Block1
 * value its answer carries (2.3). A block that does not follow what was received is 4.08
 * (2.9.2), a body over BLOCK1_BODY_MAX 4.13. A block received again (a retransmission of the
 * link) overwrites what it covers; the body stays until the next block 0. */
static coap_pdu_t *block1_receive(device_t *dev, const char *path, const coap_pdu_t *request,
                                  coap_pdu_t *response, unsigned *out_block1) {
  unsigned value = (unsigned)peer_uint_option(request, COAP_OPTION_BLOCK1);
  unsigned num = value >> 4;
  bool more = (value & 0x08) != 0;
  unsigned szx = value & 0x07;
  size_t size = (size_t)16 << szx;
  size_t offset = (size_t)num * size;
  coap_pdu_code_t method = coap_pdu_get_code(request);
  const uint8_t *data = NULL;
  size_t len = 0;
  coap_pdu_t *whole;

  coap_get_data(request, &len, &data);
  if (num == 0)
    block1_reset(dev);
  if (szx == 7 || (more && len != size)) {
    respond_code(response, COAP_RESPONSE_CODE_BAD_REQUEST); /* no BERT over UDP (2.2) */
    return NULL;
  }
  if (num > 0 && (!dev->block1.path || dev->block1.method != method ||
                  strcmp(dev->block1.path, path) != 0 || offset > dev->block1.len)) {
    respond_code(response, COAP_RESPONSE_CODE_INCOMPLETE);
    return NULL;
  }
  if (offset + len > BLOCK1_BODY_MAX) {
    block1_reset(dev);
    peer_add_uint_option(response, COAP_OPTION_SIZE1, BLOCK1_BODY_MAX);
    respond_code(response, COAP_RESPONSE_CODE_REQUEST_TOO_LARGE);
    return NULL;
  }
  if (!dev->block1.path) {
    dev->block1.path = strdup(path);
    dev->block1.method = method;
  }
  dev->block1.data = realloc(dev->block1.data, offset + len + 1);
  if (!dev->block1.data)
    abort();
  if (len)
    memcpy(dev->block1.data + offset, data, len);
  dev->block1.len = offset + len;
  emit_block(path, num, more, size, dev->block1.len);
  if (more) {
    peer_add_uint_option(response, COAP_OPTION_BLOCK1, value);
    respond_code(response, COAP_RESPONSE_CODE_CONTINUE);
    return NULL;
  }
  /* Kept: the last block sent again (its answer lost on the link) is handled again, as a
   * request without Block1 sent again is. */
  whole = block1_whole_request(dev, request);
  *out_block1 = value;
  return whole;
}

/* Handler for every method on every path (libcoap's "unknown resource"): the LwM2M
 * object tree is dispatched here rather than registered resource by resource, so that
 * observations, RST and duplicates stay under this program's control. */
static void on_request(coap_resource_t *resource, coap_session_t *session,
                       const coap_pdu_t *request, const coap_string_t *query,
                       coap_pdu_t *response) {
  device_t *dev = device_of(session);
  coap_pdu_code_t method = coap_pdu_get_code(request);
  char *path_text = peer_uri_path(request);
  /* The second call for a deferred request: its async entry exists until this returns. */
  bool delayed = dev->opts.delay_ms > 0 && coap_find_async(session, coap_pdu_get_token(request));
  coap_pdu_t *whole = NULL;
  unsigned block1 = 0;
  coap_opt_iterator_t it;
  lwm2m_path_t path;

  if (!delayed)
    emit_request(request, path_text);
  if (dev->opts.silent) {
    /* A dead device: libcoap drops an empty NON "response", so not even an ACK leaves. */
    coap_pdu_set_type(response, COAP_MESSAGE_NON);
    free(path_text);
    return;
  }
  if (coap_check_option(request, COAP_OPTION_BLOCK1, &it)) {
    /* The handlers below see the whole body, as if it had come in one request; the answer to
     * the last block carries its Block1 (RFC 7959 2.3), added first: the handlers' options
     * have lower numbers and libcoap inserts them in order. */
    whole = block1_receive(dev, path_text, request, response, &block1);
    if (!whole) {
      free(path_text);
      return;
    }
    request = whole;
    peer_add_uint_option(response, COAP_OPTION_BLOCK1, block1);
  }
  /* Observe registrations and cancellations are still answered at once. */
  if (dev->opts.delay_ms > 0 && !delayed && peer_uint_option(request, COAP_OPTION_OBSERVE) < 0) {
    defer_request(dev, session, request, response);
    if (whole)
      coap_delete_pdu(whole);
    free(path_text);
    return;
  }
  if (!lwm2m_path_parse(path_text, &path) || !lwm2m_path_exists(&path))
    respond_code(response, COAP_RESPONSE_CODE_NOT_FOUND);
  else if (method == COAP_REQUEST_CODE_GET)
    handle_get(dev, path_text, &path, request, response);
  else if (method == COAP_REQUEST_CODE_PUT)
    handle_put(dev, path_text, &path, request, response);
  else if (method == COAP_REQUEST_CODE_POST)
    handle_post(dev, path_text, &path, request, response);
  else if (method == COAP_REQUEST_CODE_FETCH)
    handle_fetch(dev, &path, request, response);
  else if (method == COAP_REQUEST_CODE_IPATCH)
    handle_ipatch(&path, request, response);
  else
    respond_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED); /* DELETE of /3 or /3/0 */
  if (delayed)
    emit_separate_response(path_text, response);
  if (whole)
    coap_delete_pdu(whole);
  free(path_text);
}

/* ------------------------------------------------------- client requests */

static const char *const op_event_names[] = {
    [OP_REGISTER] = "registered", [OP_UPDATE] = "updated", [OP_DEREGISTER] = "deregistered",
    [OP_SEND] = "sent",           [OP_BOOTSTRAP] = "bootstrap",
};

static outgoing_t *outgoing_by_token(device_t *dev, coap_bin_const_t token) {
  for (outgoing_t *out = dev->outgoing; out; out = out->next)
    if (out->token_len == token.length && memcmp(out->token, token.s, token.length) == 0)
      return out;
  return NULL;
}

static void outgoing_remove(device_t *dev, outgoing_t *gone) {
  for (outgoing_t **p = &dev->outgoing; *p; p = &(*p)->next) {
    if (*p == gone) {
      *p = gone->next;
      free(gone);
      return;
    }
  }
}

/* The failure event of OP when no response code came: code null and a reason. */
static void emit_op_failed(client_op_t op, const char *reason) {
  json_buf_t ev;

  json_begin(&ev, op == OP_REGISTER ? "register-failed" : op_event_names[op]);
  json_add_null(&ev, "code");
  json_add_str(&ev, "reason", reason);
  json_emit(&ev);
}

/* Register (Core 6.2.1) query: ep, lt, lwm2m, b and Q for queue mode. With --omit-params
 * only Q and sms= are left (Transport table 6.8.4-1: over LoRaWAN ep, lt and lwm2m have
 * defaults the Application Server fills in); nothing left means no Uri-Query at all. */
static bool add_register_query(const device_t *dev, coap_pdu_t *pdu) {
  char query[512];
  int n = 0;

  if (!dev->opts.omit_params)
    n = snprintf(query, sizeof(query), "ep=%s&lt=%ld&lwm2m=%s&b=%s", dev->opts.ep,
                 dev->opts.lifetime, dev->opts.lwm2m_version, dev->opts.binding);
  if (dev->opts.queue)
    n += snprintf(query + n, sizeof(query) - (size_t)n, "%sQ", n ? "&" : "");
  if (dev->opts.sms_number)
    n += snprintf(query + n, sizeof(query) - (size_t)n, "%ssms=%s", n ? "&" : "",
                  dev->opts.sms_number);
  return n == 0 || peer_add_uri_query(pdu, query);
}

/* "</1/0>,</3/0>", padded with </3303/N> links up to --reg-payload-size bytes so that
 * tests can push a registration past one MTU without block-wise transfer. */
static void registration_links(const device_t *dev, json_buf_t *out_links) {
  char link[32];

  json_append_raw(out_links, "</1/0>,</3/0>");
  for (unsigned i = 0; out_links->len < (size_t)dev->opts.reg_payload_size; i++) {
    snprintf(link, sizeof(link), ",</3303/%u>", i);
    json_append_raw(out_links, link);
  }
}

static bool add_op_options(device_t *dev, client_op_t op, coap_pdu_t *pdu,
                           const uint8_t *payload, size_t payload_len) {
  char bs_query[300];

  switch (op) {
  case OP_REGISTER:
    /* --no-objects: no payload, hence no Content-Format either. */
    return peer_add_uri_path(pdu, "/rd") &&
           (!dev->send_objects ||
            peer_add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                                 COAP_MEDIATYPE_APPLICATION_LINK_FORMAT)) &&
           add_register_query(dev, pdu) && coap_add_data(pdu, payload_len, payload);
  case OP_UPDATE:
  case OP_DEREGISTER:
    return peer_add_uri_path(pdu, dev->location);
  case OP_SEND:
    return peer_add_uri_path(pdu, "/dp") &&
           peer_add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                                COAP_MEDIATYPE_APPLICATION_SENML_CBOR) &&
           (payload_len == 0 || coap_add_data(pdu, payload_len, payload));
  case OP_BOOTSTRAP:
    snprintf(bs_query, sizeof(bs_query), "ep=%s", dev->opts.ep);
    return peer_add_uri_path(pdu, "/bs") && peer_add_uri_query(pdu, bs_query);
  }
  return false;
}

/* Sends OP as a request of the given type and remembers its token; the payload is borrowed. */
static void send_operation_typed(device_t *dev, client_op_t op, coap_pdu_type_t type,
                                 const uint8_t *payload, size_t payload_len) {
  coap_pdu_code_t method = op == OP_DEREGISTER ? COAP_REQUEST_CODE_DELETE
                                               : COAP_REQUEST_CODE_POST;
  size_t size = coap_session_max_pdu_size(dev->session) + payload_len;
  coap_pdu_t *pdu;
  outgoing_t *out;

  if ((op == OP_UPDATE || op == OP_DEREGISTER) && !dev->location) {
    emit_op_failed(op, "not registered");
    return;
  }
  out = calloc(1, sizeof(*out));
  pdu = coap_pdu_init(type, method, coap_new_message_id(dev->session), size);
  if (!out || !pdu)
    abort();
  out->op = op;
  coap_session_new_token(dev->session, &out->token_len, out->token);
  if (!coap_add_token(pdu, out->token_len, out->token) ||
      !add_op_options(dev, op, pdu, payload, payload_len)) {
    coap_delete_pdu(pdu);
    free(out);
    emit_op_failed(op, "cannot build request");
    return;
  }
  if (coap_send(dev->session, pdu) == COAP_INVALID_MID) { /* consumes pdu */
    free(out);
    emit_op_failed(op, "coap_send failed");
    return;
  }
  out->next = dev->outgoing;
  dev->outgoing = out;
}

/* The LwM2M operations go as CON requests, but for `send-non`. */
static void send_operation(device_t *dev, client_op_t op, const uint8_t *payload,
                           size_t payload_len) {
  send_operation_typed(dev, op, COAP_MESSAGE_CON, payload, payload_len);
}

static void start_registration(device_t *dev) {
  json_buf_t links = {0};

  if (dev->send_objects)
    registration_links(dev, &links);
  send_operation(dev, OP_REGISTER, (const uint8_t *)links.buf, links.len);
  json_buf_free(&links);
  if (dev->opts.register_timeout_ms > 0)
    dev->register_deadline_ms = peer_now_ms() + (uint64_t)dev->opts.register_timeout_ms;
}

/* "/rd/1" from the Location-Path options of a 2.01 Created. */
static char *location_from(const coap_pdu_t *created) {
  coap_opt_filter_t filter;
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  json_buf_t location = {0};

  coap_option_filter_clear(&filter);
  coap_option_filter_set(&filter, COAP_OPTION_LOCATION_PATH);
  coap_option_iterator_init(created, &it, &filter);
  while ((opt = coap_option_next(&it))) {
    json_append_raw(&location, "/");
    if (coap_opt_length(opt) > 0) {
      char segment[256];

      snprintf(segment, sizeof(segment), "%.*s", (int)coap_opt_length(opt),
               (const char *)coap_opt_value(opt));
      json_append_raw(&location, segment);
    }
  }
  if (!location.buf)
    json_append_raw(&location, "/");
  return location.buf; /* ownership moves to the caller */
}

static void handle_register_response(device_t *dev, const coap_pdu_t *received) {
  coap_pdu_code_t code = coap_pdu_get_code(received);
  const coap_address_t *local = coap_session_get_addr_local(dev->session);
  char code_text[8];
  json_buf_t ev;

  dev->register_deadline_ms = 0;
  if (code == COAP_RESPONSE_CODE_CONFLICT && !dev->send_objects) {
    /* Transport table 6.8.4-1: a 4.09 to a Register without object list means the server
     * cannot get it otherwise; the client SHOULD register again with it. */
    dev->send_objects = true;
    json_begin(&ev, "register-retry");
    json_add_str(&ev, "code", peer_code_str(code, code_text));
    json_add_str(&ev, "reason", "object list asked for");
    json_emit(&ev);
    start_registration(dev);
    return;
  }
  if (code != COAP_RESPONSE_CODE_CREATED) {
    json_begin(&ev, "register-failed");
    json_add_str(&ev, "code", peer_code_str(code, code_text));
    json_add_int(&ev, "local_port", local ? coap_address_get_port(local) : 0);
    json_emit(&ev);
    return;
  }
  free(dev->location);
  dev->location = location_from(received);
  json_begin(&ev, "registered");
  json_add_str(&ev, "location", dev->location);
  json_add_str(&ev, "code", peer_code_str(code, code_text));
  json_add_int(&ev, "local_port", local ? coap_address_get_port(local) : 0);
  json_emit(&ev);
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid) {
  device_t *dev = device_of(session);
  outgoing_t *out = outgoing_by_token(dev, coap_pdu_get_token(received));
  coap_pdu_code_t code = coap_pdu_get_code(received);
  char code_text[8];
  json_buf_t ev;

  if (!out) {
    peer_log(LOG_INFO, "response with unknown token (mid 0x%04x) ignored", mid);
    return COAP_RESPONSE_OK;
  }
  if (out->op == OP_REGISTER) {
    handle_register_response(dev, received);
  } else {
    if (out->op == OP_DEREGISTER && code == COAP_RESPONSE_CODE_DELETED) {
      free(dev->location);
      dev->location = NULL;
    }
    json_begin(&ev, op_event_names[out->op]);
    json_add_str(&ev, "code", peer_code_str(code, code_text));
    json_emit(&ev);
  }
  client_op_t op = out->op;
  outgoing_remove(dev, out);
  /* LwM2M Core 6.2.2: a registration the server (or gateway) does not know any more is made
   * again, as Wakaama and Anjay do. */
  if (op == OP_UPDATE && code == COAP_RESPONSE_CODE_NOT_FOUND) {
    free(dev->location);
    dev->location = NULL;
    send_operation(dev, OP_REGISTER, NULL, 0);
  }
  return COAP_RESPONSE_OK;
}

static void emit_response_failed(coap_mid_t mid, coap_nack_reason_t reason) {
  json_buf_t ev;

  json_begin(&ev, "response-failed");
  json_add_int(&ev, "mid", mid);
  json_add_str(&ev, "reason", peer_nack_str(reason));
  json_emit(&ev);
}

/* No answer to one of our requests, a CON notification that was refused or lost, or a
 * separate CON response the server side never acknowledged or reset. */
static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t mid) {
  device_t *dev = device_of(session);
  coap_bin_const_t token;
  outgoing_t *out;
  observation_t *obs;

  if (!sent)
    return;
  token = coap_pdu_get_token(sent);
  if (COAP_RESPONSE_CLASS(coap_pdu_get_code(sent)) >= 2) {
    /* RFC 7641 4.5: a rejected or unacknowledged notification ends the observation. */
    obs = observation_by_token(dev, token);
    if (obs)
      observation_cancel(dev, obs, reason == COAP_NACK_RST ? "rst" : "timeout");
    else if (dev->opts.delay_ms > 0 && peer_uint_option(sent, COAP_OPTION_OBSERVE) < 0)
      emit_response_failed(mid, reason); /* a separate response (--delay-ms) */
    return;
  }
  out = outgoing_by_token(dev, token);
  if (!out)
    return;
  if (out->op == OP_REGISTER)
    dev->register_deadline_ms = 0;
  emit_op_failed(out->op, peer_nack_str(reason));
  outgoing_remove(dev, out);
}

/* ------------------------------------------------------------- the loop */

static void cmd_send(device_t *dev, const char *hex, coap_pdu_type_t type) {
  uint8_t *payload;
  size_t len;

  if (!hex || !peer_hex_decode(hex, &payload, &len)) {
    emit_error(type == COAP_MESSAGE_NON ? "usage: send-non HEXPAYLOAD" : "usage: send HEXPAYLOAD");
    return;
  }
  send_operation_typed(dev, OP_SEND, type, payload, len);
  free(payload);
}

static void on_line(void *arg, char *line) {
  device_t *dev = arg;
  char *cursor = line;
  char *verb = peer_next_word(&cursor);

  if (!verb)
    return;
  if (strcmp(verb, "quit") == 0)
    peer_loop_quit();
  else if (strcmp(verb, "update") == 0)
    send_operation(dev, OP_UPDATE, NULL, 0);
  else if (strcmp(verb, "deregister") == 0)
    send_operation(dev, OP_DEREGISTER, NULL, 0);
  else if (strcmp(verb, "send") == 0)
    cmd_send(dev, peer_next_word(&cursor), COAP_MESSAGE_CON);
  else if (strcmp(verb, "send-non") == 0)
    cmd_send(dev, peer_next_word(&cursor), COAP_MESSAGE_NON);
  else if (strcmp(verb, "bootstrap") == 0)
    send_operation(dev, OP_BOOTSTRAP, NULL, 0);
  else if (strcmp(verb, "notify") == 0)
    notify_all(dev);
  else
    emit_error("unknown command");
}

static uint64_t earliest(uint64_t a, uint64_t b) {
  if (!a)
    return b;
  if (!b)
    return a;
  return a < b ? a : b;
}

static int next_timer_ms(void *arg) {
  device_t *dev = arg;
  uint64_t due = earliest(dev->next_notify_ms, dev->register_deadline_ms);
  uint64_t now = peer_now_ms();

  int wait = !due ? -1 : due <= now ? 0 : (int)(due - now);
  /* The SMS trigger socket is polled on every turn: keep turns short while it exists. */
  if (dev->trigger_fd >= 0 && (wait < 0 || wait > 100))
    wait = 100;
  return wait;
}

/* Transport 6.6: an Execute received over SMS on /1/x/8 (Registration Update Trigger) or
 * /1/x/9 (Bootstrap-Request Trigger) is acted on and never answered. */
static void poll_sms_trigger(device_t *dev) {
  uint8_t buf[1500];
  ssize_t n;

  while (dev->trigger_fd >= 0 && (n = recv(dev->trigger_fd, buf, sizeof(buf), 0)) > 0) {
    coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, COAP_EMPTY_CODE, 0, (size_t)n);
    char *path = NULL;
    unsigned instance, resource;
    char tail;

    if (pdu && coap_pdu_parse(COAP_PROTO_UDP, buf, (size_t)n, pdu) &&
        coap_pdu_get_code(pdu) == COAP_REQUEST_CODE_POST && (path = peer_uri_path(pdu)) &&
        sscanf(path, "/1/%u/%u%c", &instance, &resource, &tail) == 2 &&
        (resource == 8 || resource == 9)) {
      json_buf_t ev;
      json_begin(&ev, "trigger");
      json_add_str(&ev, "path", path);
      json_emit(&ev);
      send_operation(dev, resource == 8 ? OP_UPDATE : OP_BOOTSTRAP, NULL, 0);
    } else {
      emit_error("SMS that is not a trigger Execute: ignored (Transport 6.6)");
    }
    free(path);
    if (pdu)
      coap_delete_pdu(pdu);
  }
}

static void on_turn(void *arg) {
  device_t *dev = arg;
  uint64_t now = peer_now_ms();

  if (dev->register_deadline_ms && now >= dev->register_deadline_ms) {
    dev->register_deadline_ms = 0;
    for (outgoing_t *out = dev->outgoing; out; out = out->next) {
      if (out->op == OP_REGISTER) {
        emit_op_failed(OP_REGISTER, "timeout");
        outgoing_remove(dev, out);
        break;
      }
    }
  }
  if (dev->next_notify_ms && now >= dev->next_notify_ms)
    notify_all(dev);
  poll_sms_trigger(dev);
}

/* ------------------------------------------------------------------- setup */

static void usage(void) {
  fprintf(stderr,
          "usage: lwm2m-test-device --server coap[s]://HOST:PORT --ep NAME [--lifetime S]\n"
          "         [--binding LETTERS] [--lwm2m VER] [--queue] [--reg-payload-size N]\n"
          "         [--local-port P] [--silent] [--con-notify] [--notify-ms N]\n"
          "         [--register-timeout-ms N] [--delay-ms N] [--psk-identity ID --psk-key HEX]\n"
          "         [--sms NUMBER] [--trigger-port P] [--omit-params] [--no-objects]\n"
          "         [--log-level N] [--stay]\n");
}

static bool parse_number(const char *text, long min, long max, long *out_value) {
  if (peer_parse_long(text, min, max, out_value))
    return true;
  fprintf(stderr, "bad number '%s'\n", text);
  return false;
}

static bool parse_options(int argc, char **argv, device_options_t *out) {
  static const struct option longopts[] = {
      {"server", required_argument, NULL, 'S'},
      {"ep", required_argument, NULL, 'e'},
      {"lifetime", required_argument, NULL, 't'},
      {"binding", required_argument, NULL, 'b'},
      {"lwm2m", required_argument, NULL, 'V'},
      {"queue", no_argument, NULL, 'q'},
      {"reg-payload-size", required_argument, NULL, 'r'},
      {"local-port", required_argument, NULL, 'p'},
      {"silent", no_argument, NULL, 's'},
      {"con-notify", no_argument, NULL, 'c'},
      {"notify-ms", required_argument, NULL, 'n'},
      {"register-timeout-ms", required_argument, NULL, 'T'},
      {"delay-ms", required_argument, NULL, 'd'},
      {"psk-identity", required_argument, NULL, 'i'},
      {"psk-key", required_argument, NULL, 'k'},
      {"log-level", required_argument, NULL, 'v'},
      {"stay", no_argument, NULL, 'y'},
      {"sms", required_argument, NULL, 'm'},
      {"trigger-port", required_argument, NULL, 'g'},
      {"omit-params", no_argument, NULL, 'O'},
      {"no-objects", no_argument, NULL, 'N'},
      {NULL, 0, NULL, 0},
  };
  long level = LOG_WARNING;
  bool ok = true;
  int c;

  memset(out, 0, sizeof(*out));
  out->lifetime = 300;
  out->binding = "U";
  out->lwm2m_version = "1.1";
  out->local_port = -1;
  out->notify_ms = 1000;
  while (ok && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'S': out->server_uri = optarg; break;
    case 'e': out->ep = optarg; break;
    case 't': ok = parse_number(optarg, 1, UINT32_MAX, &out->lifetime); break;
    case 'b': out->binding = optarg; break;
    case 'V': out->lwm2m_version = optarg; break;
    case 'q': out->queue = true; break;
    case 'r': ok = parse_number(optarg, 0, 60000, &out->reg_payload_size); break;
    case 'p': ok = parse_number(optarg, 0, 65535, &out->local_port); break;
    case 's': out->silent = true; break;
    case 'c': out->con_notify = true; break;
    case 'n': ok = parse_number(optarg, 1, 3600000, &out->notify_ms); break;
    case 'T': ok = parse_number(optarg, 0, 3600000, &out->register_timeout_ms); break;
    case 'd': ok = parse_number(optarg, 0, 3600000, &out->delay_ms); break;
    case 'i': out->psk_identity = optarg; break;
    case 'k': out->psk_key_hex = optarg; break;
    case 'v': ok = parse_number(optarg, 0, COAP_LOG_CIPHERS, &level); break;
    case 'y': out->stay = true; break;
    case 'm': out->sms_number = optarg; break;
    case 'g': ok = parse_number(optarg, 1, 65535, &out->trigger_port); break;
    case 'O': out->omit_params = true; break;
    case 'N': out->no_objects = true; break;
    default: ok = false; break;
    }
  }
  out->log_level = (int)level;
  return ok && optind == argc && out->server_uri && out->ep;
}

/* Loopback address of DST's family with PORT: --local-port pins the device's source. */
static void loopback_address(const coap_address_t *dst, uint16_t port, coap_address_t *out) {
  const char *host = dst->addr.sa.sa_family == AF_INET6 ? "::1" : "127.0.0.1";

  peer_resolve(host, strlen(host), port, out);
}

static coap_session_t *open_dtls_session(device_t *dev, const coap_address_t *local,
                                         const coap_address_t *dst) {
  coap_dtls_cpsk_t psk;

  if (!dev->opts.psk_identity || !dev->opts.psk_key_hex ||
      !peer_hex_decode(dev->opts.psk_key_hex, &dev->psk_key, &dev->psk_key_len)) {
    peer_log(LOG_ERR, "coaps:// needs --psk-identity and a hex --psk-key");
    return NULL;
  }
  memset(&psk, 0, sizeof(psk));
  psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
  psk.psk_info.identity.s = (const uint8_t *)dev->opts.psk_identity;
  psk.psk_info.identity.length = strlen(dev->opts.psk_identity);
  psk.psk_info.key.s = dev->psk_key;
  psk.psk_info.key.length = dev->psk_key_len;
  return coap_new_client_session_psk2(dev->ctx, local, dst, COAP_PROTO_DTLS, &psk);
}

static bool open_session(device_t *dev) {
  coap_uri_t uri;
  coap_address_t dst;
  coap_address_t local;
  bool secure;

  if (coap_split_uri((const uint8_t *)dev->opts.server_uri, strlen(dev->opts.server_uri),
                     &uri) != 0 ||
      (uri.scheme != COAP_URI_SCHEME_COAP && uri.scheme != COAP_URI_SCHEME_COAPS)) {
    peer_log(LOG_ERR, "--server must be coap://HOST:PORT or coaps://HOST:PORT");
    return false;
  }
  if (!peer_resolve((const char *)uri.host.s, uri.host.length, uri.port, &dst))
    return false;
  if (dev->opts.local_port >= 0)
    loopback_address(&dst, (uint16_t)dev->opts.local_port, &local);
  secure = uri.scheme == COAP_URI_SCHEME_COAPS;
  if (secure && !coap_dtls_is_supported()) {
    peer_log(LOG_ERR, "libcoap has no DTLS support");
    return false;
  }
  dev->session = secure ? open_dtls_session(dev, dev->opts.local_port >= 0 ? &local : NULL, &dst)
                        : coap_new_client_session(dev->ctx,
                                                  dev->opts.local_port >= 0 ? &local : NULL,
                                                  &dst, COAP_PROTO_UDP);
  if (!dev->session) {
    peer_log(LOG_ERR, "cannot open a session to %s", dev->opts.server_uri);
    return false;
  }
  /* As the server: take in any datagram a read can hold, not only 1152 bytes. */
  coap_session_set_mtu(dev->session, COAP_RXBUFFER_SIZE);
  return true;
}

/* The device's SMS interface in tests: the virtual modem delivers SMS for the device's number
 * to this port (vmodem --phone NUMBER=PORT,127.0.0.1:THIS_PORT). */
static bool open_trigger_socket(device_t *dev) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)dev->opts.trigger_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

  dev->trigger_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (dev->trigger_fd < 0 || bind(dev->trigger_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
    peer_log(LOG_ERR, "cannot bind the trigger port %ld", dev->opts.trigger_port);
    return false;
  }
  return true;
}

static bool device_start(device_t *dev) {
  coap_resource_t *object_tree;
  static const coap_request_t methods[] = {
      COAP_REQUEST_GET,   COAP_REQUEST_POST,  COAP_REQUEST_PUT,    COAP_REQUEST_DELETE,
      COAP_REQUEST_FETCH, COAP_REQUEST_PATCH, COAP_REQUEST_IPATCH,
  };

  dev->current_time = (long long)time(NULL);
  dev->send_objects = !dev->opts.no_objects;
  if (dev->opts.trigger_port > 0 && !open_trigger_socket(dev))
    return false;
  dev->utc_offset = strdup("+00:00");
  dev->timezone = strdup("UTC");
  dev->ctx = coap_new_context(NULL);
  if (!dev->ctx)
    return false;
  coap_set_app_data(dev->ctx, dev);
  coap_register_response_handler(dev->ctx, on_response);
  coap_register_nack_handler(dev->ctx, on_nack);
  object_tree = coap_resource_unknown_init2(on_request, 0);
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    coap_register_request_handler(object_tree, methods[i], on_request);
  coap_add_resource(dev->ctx, object_tree);
  if (!open_session(dev))
    return false;
  start_registration(dev);
  return true;
}

static void device_stop(device_t *dev) {
  rst_watcher = NULL;
  while (dev->observations) {
    observation_t *obs = dev->observations;

    dev->observations = obs->next;
    observation_free(obs);
  }
  while (dev->outgoing)
    outgoing_remove(dev, dev->outgoing);
  if (dev->session)
    coap_session_release(dev->session);
  if (dev->ctx)
    coap_free_context(dev->ctx);
  block1_reset(dev);
  free(dev->location);
  free(dev->utc_offset);
  free(dev->timezone);
  free(dev->psk_key);
  if (dev->trigger_fd >= 0)
    close(dev->trigger_fd);
}

int main(int argc, char **argv) {
  device_t dev;
  int status = 1;

  memset(&dev, 0, sizeof(dev));
  dev.trigger_fd = -1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!parse_options(argc, argv, &dev.opts)) {
    usage();
    return 2;
  }
  coap_startup();
  peer_log_init("lwm2m-test-device", dev.opts.log_level);
  coap_set_log_handler(on_coap_log);
  rst_watcher = &dev;
  if (device_start(&dev)) {
    peer_loop_t loop = {.ctx = dev.ctx, .on_line = on_line, .next_timer_ms = next_timer_ms,
                        .on_turn = on_turn, .arg = &dev, .stay_on_eof = dev.opts.stay};

    peer_loop_run(&loop);
    status = 0;
  }
  device_stop(&dev);
  coap_cleanup();
  return status;
}
