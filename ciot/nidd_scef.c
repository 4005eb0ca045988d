/* lwm2m-gw: the `scef` binding, NIDD via a SCEF's T8 API (Transport Appendix D.3, 3GPP TS 29.122
 * 5.6 NIDD). NOT ENABLED YET: conf/config.c refuses bindings.nidd.scef until this binding has
 * its tests against scripts/vscef (issue 13); the code is here so that work goes on from it.
 *
 * lwm2m-gw is the SCS/AS. At start it makes a NIDD configuration per listed device (externalId
 * or msisdn), or one for external_group_id, each naming the gateway's notification endpoint;
 * they are renewed (a new one, then the old one deleted) before their duration ends, and made
 * again when the SCEF forgets (404) or ends one (a configuration status notification).
 *
 * Uplink: a NiddUplinkDataNotification POSTed to the notification endpoint (an HTTP server on
 * the loop, http/http_server.h) carries one CoAP message of a UE; with RDS its port pair picks
 * the server (bindings.nidd.scef.rds), and the device's address is "ID/UE-SCEF", else "ID".
 *
 * Downlink: POST .../configurations/{id}/downlink-data-deliveries (http/http_client.h, libcurl
 * multi on the loop). Its fate comes back to the core as delivery reports (binding.h): 200 is
 * delivered (the device's answer is due), 201 pending (the SCEF buffers it; its delivery status
 * notification follows, keyed by the Location), 500 with a requestedRetransmissionTime is sent
 * again then, 403 DATA_TOO_LARGE is too large, anything else a failure with the SCEF's reason.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binding.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"
#include "http_client.h"
#include "http_server.h"
#include "t8.h"

#define MOD "scef"

#define SCEF_NON_IP_MTU 1358        /* Appendix D.4: the Non-IP link MTU */
#define SCEF_RENEW_MARGIN_S 60      /* a configuration is renewed this long before it ends */
#define SCEF_RETRY_MS 30000u        /* a configuration that could not be made is tried again */
#define SCEF_BODY_MAX 8192          /* a request body: base64 of an MTU and the fields around */
#define SCEF_URL_MAX 640
#define SCEF_AUTH_MAX 4200          /* "Bearer " and a token of up to 4094 bytes */

#define SCEF_METRICS(X)                                                                        \
  X(uplinks, "uplink data notifications handed to the core")                                   \
  X(downlinks, "downlink data deliveries requested")                                           \
  X(notifications, "notifications received")                                                   \
  X(bad_notifications, "notifications refused with 400 (not T8, bad JSON, bad base64)")       \
  X(unknown_ues, "uplinks of UEs no device entry lists, dropped")                              \
  X(unknown_rds_ports, "uplinks on an RDS port pair no rds entry names, dropped")             \
  X(refused_peers, "notifications from addresses not in notification_allow (403)")           \
  X(configurations_made, "NIDD configurations created at the SCEF")                            \
  X(configurations_lost, "NIDD configurations the SCEF forgot or ended, made again")           \
  X(delivery_failures, "downlinks the SCEF did not deliver (5.03 upstream)")                   \
  X(retransmissions, "downlinks sent again at the SCEF's requestedRetransmissionTime")

typedef struct {
#define SCEF_METRIC_FIELD(name, help) uint64_t name;
  SCEF_METRICS(SCEF_METRIC_FIELD)
#undef SCEF_METRIC_FIELD
} scef_metrics_t;

typedef struct scef_binding scef_binding_t;

/* One NIDD configuration at the SCEF: a device's, or the group's. */
typedef struct scef_config {
  struct scef_config *next;
  scef_binding_t *b;
  gw_t8_ue_kind_t kind;
  char ue[GW_T8_UE_ID_MAX + 1];             /* externalId, msisdn or externalGroupId */
  char id[GW_T8_RESOURCE_ID_MAX + 1];       /* the SCEF's configurationId; "" while none */
  char replaced[GW_T8_RESOURCE_ID_MAX + 1]; /* renewed: the old one, deleted once the new is */
  int64_t expiry;                           /* 0: none said */
  size_t mtu;                               /* maximumPacketSize / 8, else SCEF_NON_IP_MTU */
  bool requesting;
  gw_timer_t timer;                         /* renewal, or the next attempt */
} scef_config_t;

/* A downlink whose fate the core waits for: by its HTTP request, then by the SCEF's delivery id. */
typedef struct scef_pending {
  struct scef_pending *next;
  scef_binding_t *b;
  uint64_t request;                         /* 0 once answered */
  char delivery[GW_T8_RESOURCE_ID_MAX + 1]; /* downlinkDataDeliveryId of a 201; "" else */
  gw_baddr_t to;
  uint16_t mid;
  bool tracked;                             /* a CON: the core wants its reports */
  uint8_t *body;                            /* for a retransmission at the SCEF's time */
  size_t body_len;
  char url[SCEF_URL_MAX];
  gw_timer_t retry;
} scef_pending_t;

struct scef_binding {
  gw_binding_t base; /* first: the core casts */
  gw_binding_env_t env;
  const gw_config_t *config;
  const gw_scef_conf_t *conf;
  gw_link_policy_t policy;
  http_client_t *client;
  http_server_t *server;
  char authorization[SCEF_AUTH_MAX];
  char notification_path[256];
  scef_config_t *configs;
  scef_pending_t *pending;
  bool stopping; /* requests cancelled at the stop complete: nothing starts again */
  scef_metrics_t metrics;
};

static const gw_binding_ops_t *ops_self(void);

/* ---- addresses: "ID" or "ID/UE-SCEF" ---------------------------------------------------- */

static void format_addr(const char *ue, const gw_t8_rds_port_t *rds, gw_baddr_t *out) {
  if (rds)
    snprintf(out->text, sizeof(out->text), "%s/%u-%u", ue, rds->ue, rds->scef);
  else
    snprintf(out->text, sizeof(out->text), "%s", ue);
}

/* The UE id of an address, and its port pair when it has one. */
static bool parse_addr(const gw_baddr_t *addr, char ue[GW_T8_UE_ID_MAX + 1],
                       gw_t8_rds_port_t *rds, bool *has_rds) {
  const char *slash = strchr(addr->text, '/');
  size_t len = slash ? (size_t)(slash - addr->text) : strlen(addr->text);
  if (len == 0 || len > GW_T8_UE_ID_MAX)
    return false;
  memcpy(ue, addr->text, len);
  ue[len] = 0;
  *has_rds = slash != NULL;
  unsigned u, s;
  char tail;
  if (slash && (sscanf(slash + 1, "%u-%u%c", &u, &s, &tail) != 2 || u > GW_T8_RDS_PORT_MAX ||
                s > GW_T8_RDS_PORT_MAX))
    return false;
  if (slash)
    *rds = (gw_t8_rds_port_t){.ue = (uint8_t)u, .scef = (uint8_t)s};
  return true;
}

static const gw_device_conf_t *device_by_ue(const gw_config_t *config, const char *ue) {
  for (size_t i = 0; i < config->device_count; i++) {
    const gw_device_conf_t *d = &config->devices[i];
    if ((d->external_id && strcmp(d->external_id, ue) == 0) ||
        (d->msisdn && strcmp(d->msisdn, ue) == 0))
      return d;
  }
  return NULL;
}

static const gw_scef_rds_conf_t *rds_conf(const scef_binding_t *b, const gw_t8_rds_port_t *p) {
  for (size_t i = 0; i < b->conf->rds_count; i++)
    if (b->conf->rds[i].ue_port == p->ue && b->conf->rds[i].scef_port == p->scef)
      return &b->conf->rds[i];
  return NULL;
}

/* The configuration a UE's data goes through: the group's, else its own. */
static scef_config_t *config_of_ue(scef_binding_t *b, const char *ue) {
  for (scef_config_t *c = b->configs; c; c = c->next)
    if (c->kind == GW_T8_EXTERNAL_GROUP_ID || strcmp(c->ue, ue) == 0)
      return c;
  return NULL;
}

/* The configuration of the UE at a device address; NULL when the address is not one. */
static scef_config_t *config_of_addr(scef_binding_t *b, const gw_baddr_t *addr) {
  char ue[GW_T8_UE_ID_MAX + 1];
  gw_t8_rds_port_t rds;
  bool has_rds;
  return parse_addr(addr, ue, &rds, &has_rds) ? config_of_ue(b, ue) : NULL;
}

static scef_config_t *config_by_id(scef_binding_t *b, const char *id) {
  for (scef_config_t *c = b->configs; c; c = c->next)
    if (c->id[0] && strcmp(c->id, id) == 0)
      return c;
  return NULL;
}

/* ---- what survives a restart ("cfg/UE": the configuration's id and end) ---------------- */

static void config_keep(scef_binding_t *b, const scef_config_t *c) {
  char key[8 + GW_T8_UE_ID_MAX], value[GW_T8_RESOURCE_ID_MAX + 48];
  snprintf(key, sizeof(key), "cfg/%s", c->ue);
  int n = snprintf(value, sizeof(value), "%s %" PRId64 " %zu", c->id, c->expiry, c->mtu);
  if (c->id[0])
    b->env.state_put(b->env.core, &b->base, key, value, (size_t)n, true);
  else
    b->env.state_del(b->env.core, &b->base, key);
}

/* ---- HTTP toward the SCEF ---------------------------------------------------------------- */

static int scef_request(scef_binding_t *b, const char *method, const char *url,
                        const char *content_type, const uint8_t *body, size_t len,
                        http_client_done_cb_t done, void *arg, uint64_t *out_id) {
  http_client_request_t req = {.method = method, .url = url, .content_type = content_type,
                               .accept = "application/json",
                               .authorization = b->authorization[0] ? b->authorization : NULL,
                               .body = body, .body_len = len};
  return http_client_send(b->client, &req, done, arg, out_id);
}

static void config_create(scef_config_t *c);

static void config_retry_later(scef_config_t *c, const char *why) {
  GW_WARN_LIMITED(MOD, "NIDD configuration for %s: %s; trying again in %u s", c->ue, why,
                  SCEF_RETRY_MS / 1000u);
  gw_timer_start(c->b->env.loop, &c->timer, SCEF_RETRY_MS);
}

static void config_deleted(void *arg, uint64_t id, const http_client_response_t *resp) {
  (void)arg;
  (void)id;
  if (resp->status != 204 && resp->status != 404)
    GW_NOTICE_LIMITED(MOD, "an old NIDD configuration could not be deleted (%u %s)",
                      resp->status, resp->error ? resp->error : "");
}

static void config_delete(scef_binding_t *b, const char *id) {
  char url[SCEF_URL_MAX];
  if (gw_t8_configuration_url(b->conf->url, b->conf->scs_as_id, id, false, url, sizeof(url)) ==
      GW_OK)
    scef_request(b, "DELETE", url, NULL, NULL, 0, config_deleted, b, NULL);
}

/* The SCEF's answer to a configuration: its id (self or Location), end and packet size. */
static void config_created(void *arg, uint64_t id, const http_client_response_t *resp) {
  (void)id;
  scef_config_t *c = arg;
  scef_binding_t *b = c->b;
  c->requesting = false;
  if (b->stopping)
    return;
  gw_t8_config_t got;
  const char *why = "no answer";
  char cid[GW_T8_RESOURCE_ID_MAX + 1] = "";
  if (resp->status != 201 && resp->status != 200) {
    char text[64];
    snprintf(text, sizeof(text), "the SCEF answered %u %s", resp->status,
             resp->error ? resp->error : "");
    config_retry_later(c, text);
    return;
  }
  if (gw_t8_configuration_parse(resp->body, resp->body_len, &got, &why) != GW_OK) {
    config_retry_later(c, why);
    return;
  }
  const char *link = got.self[0] ? got.self : resp->location;
  if (!link || gw_t8_link_ids(link, strlen(link), cid, NULL) != GW_OK) {
    config_retry_later(c, "the answer names no configuration");
    return;
  }
  if (c->id[0] && strcmp(c->id, cid) != 0)
    snprintf(c->replaced, sizeof(c->replaced), "%s", c->id);
  snprintf(c->id, sizeof(c->id), "%s", cid);
  c->expiry = got.has_expiry ? got.expiry : 0;
  c->mtu = got.max_packet_bits >= 8 ? got.max_packet_bits / 8u : SCEF_NON_IP_MTU;
  b->metrics.configurations_made++;
  config_keep(b, c);
  GW_INFO(MOD, "NIDD configuration %s for %s (packets up to %zu bytes)", c->id, c->ue, c->mtu);
  if (c->replaced[0]) {
    config_delete(b, c->replaced);
    c->replaced[0] = 0;
  }
  if (c->expiry) {
    int64_t left = c->expiry - (int64_t)time(NULL) - SCEF_RENEW_MARGIN_S;
    gw_timer_start(b->env.loop, &c->timer, left > 0 ? (uint64_t)left * 1000u : 0);
  }
}

static void config_create(scef_config_t *c) {
  scef_binding_t *b = c->b;
  if (c->requesting)
    return;
  gw_t8_rds_port_t ports[GW_T8_RDS_PORTS_MAX];
  size_t port_count = 0;
  for (size_t i = 0; i < b->conf->rds_count && port_count < GW_T8_RDS_PORTS_MAX; i++)
    ports[port_count++] = (gw_t8_rds_port_t){.ue = b->conf->rds[i].ue_port,
                                             .scef = b->conf->rds[i].scef_port};
  gw_t8_config_req_t req = {.ue = {.kind = c->kind, .id = c->ue},
                            .notification_destination = b->conf->notification_url,
                            .duration_s = b->conf->configuration_duration_s,
                            .reliable_data_service = b->conf->reliable_data_service,
                            .rds_ports = ports,
                            .rds_port_count = port_count};
  char url[SCEF_URL_MAX];
  char *json = malloc(SCEF_BODY_MAX);
  if (!json || gw_t8_configurations_url(b->conf->url, b->conf->scs_as_id, url, sizeof(url)) !=
                   GW_OK ||
      gw_t8_configuration_request(&req, (int64_t)time(NULL), json, SCEF_BODY_MAX) != GW_OK ||
      scef_request(b, "POST", url, "application/json", (const uint8_t *)json, strlen(json),
                   config_created, c, NULL) != GW_OK) {
    free(json);
    config_retry_later(c, "the request could not be made");
    return;
  }
  free(json);
  c->requesting = true;
}

/* Renewal, or the next attempt: a new configuration; the old one goes once it is made. */
static void config_timer_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  config_create(arg);
}

static scef_config_t *config_add(scef_binding_t *b, gw_t8_ue_kind_t kind, const char *ue) {
  scef_config_t *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->b = b;
  c->kind = kind;
  snprintf(c->ue, sizeof(c->ue), "%s", ue);
  c->mtu = SCEF_NON_IP_MTU;
  gw_timer_init(&c->timer, config_timer_fired, c);
  c->next = b->configs;
  b->configs = c;
  return c;
}

/* The SCEF forgot or ended it: made again. */
static void config_lost(scef_config_t *c, const char *why) {
  c->b->metrics.configurations_lost++;
  GW_WARN_LIMITED(MOD, "NIDD configuration %s for %s %s; making a new one", c->id, c->ue, why);
  c->id[0] = 0;
  config_keep(c->b, c);
  config_create(c);
}

/* ---- downlinks --------------------------------------------------------------------------- */

static void report(scef_binding_t *b, const scef_pending_t *p, gw_delivery_status_t status,
                   const char *reason, size_t max_size) {
  if (!p->tracked || !b->env.on_delivery)
    return;
  gw_delivery_report_t r = {.status = status, .mid = p->mid, .reason = reason,
                            .max_size = max_size};
  b->env.on_delivery(b->env.core, &b->base, &p->to, &r);
}

static void pending_free(scef_binding_t *b, scef_pending_t *p) {
  for (scef_pending_t **pp = &b->pending; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  gw_timer_stop(b->env.loop, &p->retry);
  free(p->body);
  free(p);
}

/* A DeliveryStatus as a delivery report; the exchange ends unless the SCEF still buffers it. */
static void delivery_outcome(scef_binding_t *b, scef_pending_t *p, gw_t8_delivery_status_t st) {
  const char *reason = NULL;
  switch (gw_t8_delivery_outcome(st, &reason)) {
  case GW_T8_BUFFERED:
    report(b, p, GW_DELIVERY_QUEUED, reason, 0);
    return; /* its delivery status notification follows */
  case GW_T8_DELIVERED:
    report(b, p, GW_DELIVERY_SENT, reason, 0);
    break;
  case GW_T8_ACKED:
    report(b, p, GW_DELIVERY_SENT, reason, 0);
    report(b, p, GW_DELIVERY_ACKED, reason, 0);
    break;
  case GW_T8_FAILED:
    b->metrics.delivery_failures++;
    report(b, p, GW_DELIVERY_FAILED, reason, 0);
    break;
  }
  pending_free(b, p);
}

static void downlink_post(scef_pending_t *p);

static void retry_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  scef_pending_t *p = arg;
  p->b->metrics.retransmissions++;
  downlink_post(p);
}

/* 500 NiddDownlinkDataDeliveryFailure: sent again at requestedRetransmissionTime, if it gave one. */
static void downlink_failed(scef_binding_t *b, scef_pending_t *p, const http_client_response_t *r) {
  gw_t8_delivery_failure_t f;
  const char *why = NULL;
  if (gw_t8_delivery_failure_parse(r->body, r->body_len, &f, &why) == GW_OK &&
      f.has_retransmission) {
    int64_t wait_s = f.retransmission_time - (int64_t)time(NULL);
    gw_timer_start(b->env.loop, &p->retry, wait_s > 0 ? (uint64_t)wait_s * 1000u : 0);
    report(b, p, GW_DELIVERY_QUEUED, "the SCEF asks for it again later", 0);
    return;
  }
  b->metrics.delivery_failures++;
  report(b, p, GW_DELIVERY_FAILED, f.problem.detail[0] ? f.problem.detail : "SCEF failure", 0);
  pending_free(b, p);
}

static void downlink_answered(void *arg, uint64_t id, const http_client_response_t *resp) {
  (void)id;
  scef_pending_t *p = arg;
  scef_binding_t *b = p->b;
  p->request = 0;
  if (b->stopping)
    return; /* freed with the binding; the core keeps the request in its state */
  gw_t8_downlink_t got;
  const char *why = NULL;
  char reason[96];
  if (resp->status == 200 || resp->status == 201) {
    if (gw_t8_downlink_parse(resp->body, resp->body_len, &got, &why) != GW_OK)
      got = (gw_t8_downlink_t){.status = GW_T8_DS_UNSET};
    if (resp->status == 201) {
      const char *link = got.self[0] ? got.self : resp->location;
      char cid[GW_T8_RESOURCE_ID_MAX + 1];
      if (link)
        gw_t8_link_ids(link, strlen(link), cid, p->delivery);
      report(b, p, GW_DELIVERY_QUEUED, NULL, 0);
      if (!p->delivery[0]) {
        report(b, p, GW_DELIVERY_FAILED, "the SCEF's pending delivery has no link", 0);
        pending_free(b, p);
      }
      return;
    }
    delivery_outcome(b, p, got.status == GW_T8_DS_UNSET ? GW_T8_DS_SUCCESS : got.status);
    return;
  }
  if (resp->status == 500) {
    downlink_failed(b, p, resp);
    return;
  }
  gw_t8_problem_t problem = {0};
  if (resp->body_len)
    gw_t8_problem_parse(resp->body, resp->body_len, &problem, &why);
  if (resp->status == 403 && strcmp(problem.cause, "DATA_TOO_LARGE") == 0) {
    scef_config_t *c = config_of_addr(b, &p->to);
    report(b, p, GW_DELIVERY_TOO_LARGE, "larger than the SCEF's maximum packet size",
           c ? c->mtu : 0);
    pending_free(b, p);
    return;
  }
  if (resp->status == 404) {
    scef_config_t *c = config_of_addr(b, &p->to);
    if (c && !c->requesting)
      config_lost(c, "is unknown to the SCEF (404)");
  }
  snprintf(reason, sizeof(reason), "the SCEF answered %u%s%s", resp->status,
           problem.cause[0] ? " " : resp->error ? ": " : "",
           problem.cause[0] ? problem.cause : resp->error ? resp->error : "");
  b->metrics.delivery_failures++;
  report(b, p, GW_DELIVERY_FAILED, reason, 0);
  pending_free(b, p);
}

static void downlink_post(scef_pending_t *p) {
  scef_binding_t *b = p->b;
  if (scef_request(b, "POST", p->url, "application/json", p->body, p->body_len,
                   downlink_answered, p, &p->request) != GW_OK) {
    report(b, p, GW_DELIVERY_FAILED, "the request to the SCEF could not be made", 0);
    pending_free(b, p);
  }
}

static int scef_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                     size_t len) {
  scef_binding_t *b = (scef_binding_t *)binding;
  char ue[GW_T8_UE_ID_MAX + 1];
  gw_t8_rds_port_t rds;
  bool has_rds;
  scef_config_t *c = parse_addr(to, ue, &rds, &has_rds) ? config_of_ue(b, ue) : NULL;
  if (!c || !c->id[0] || len < 4)
    return GW_ERR_UNSUPPORTED; /* no configuration at the SCEF (yet): the core answers 5.03 */
  const gw_device_conf_t *d = device_by_ue(b->config, ue);
  gw_t8_downlink_req_t req = {
      .ue = {.kind = d && d->external_id && strcmp(d->external_id, ue) == 0 ? GW_T8_EXTERNAL_ID
                                                                            : GW_T8_MSISDN,
             .id = ue},
      .data = data, .len = len,
      .reliable_data_service = b->conf->reliable_data_service,
      .has_rds_port = has_rds, .rds_port = rds,
      /* Appendix D.6: a queue-mode device's requests wait in the gateway, not at the SCEF */
      .has_maximum_latency = true,
      .maximum_latency_s = d && d->queue_mode ? 0 : b->conf->maximum_latency_s};
  scef_pending_t *p = calloc(1, sizeof(*p));
  char *json = p ? malloc(SCEF_BODY_MAX) : NULL;
  if (!json || gw_t8_configuration_url(b->conf->url, b->conf->scs_as_id, c->id, true, p->url,
                                       sizeof(p->url)) != GW_OK ||
      gw_t8_downlink_request(&req, json, SCEF_BODY_MAX) != GW_OK) {
    free(json);
    free(p);
    return GW_ERR_INVAL;
  }
  p->b = b;
  p->to = *to;
  p->mid = (uint16_t)(data[2] << 8 | data[3]);
  p->tracked = (data[0] >> 4 & 3) == GW_COAP_CON;
  p->body = (uint8_t *)json;
  p->body_len = strlen(json);
  gw_timer_init(&p->retry, retry_fired, p);
  p->next = b->pending;
  b->pending = p;
  b->metrics.downlinks++;
  downlink_post(p);
  return GW_OK;
}

/* ---- notifications ----------------------------------------------------------------------- */

static void answer(http_exchange_t *x, unsigned status, const char *title, const char *detail) {
  char json[512];
  size_t n = status == 204 ? 0 : gw_t8_problem_details((int)status, title, detail, json,
                                                         sizeof(json));
  http_server_headers_t h = {.content_type = n ? "application/problem+json" : NULL};
  http_server_respond(x, status, &h, n ? (const uint8_t *)json : NULL, n);
}

static void uplink_notification(scef_binding_t *b, const gw_t8_notification_t *n) {
  const char *ue = n->external_id[0] ? n->external_id : n->msisdn;
  if (!device_by_ue(b->config, ue) && !(n->msisdn[0] && device_by_ue(b->config, n->msisdn))) {
    b->metrics.unknown_ues++;
    GW_WARN_LIMITED(MOD, "uplink of %s, which no device entry lists; dropped", ue);
    return;
  }
  if (!device_by_ue(b->config, ue))
    ue = n->msisdn;
  bool rds = n->has_rds_port && b->conf->rds_count > 0;
  if (rds && !rds_conf(b, &n->rds_port)) {
    b->metrics.unknown_rds_ports++;
    GW_WARN_LIMITED(MOD, "uplink of %s on RDS ports %u-%u, which no rds entry names; dropped",
                    ue, n->rds_port.ue, n->rds_port.scef);
    return;
  }
  gw_baddr_t from;
  format_addr(ue, rds ? &n->rds_port : NULL, &from);
  b->metrics.uplinks++;
  b->env.on_message(b->env.core, &b->base, &from, n->data, n->data_len);
}

static void delivery_notification(scef_binding_t *b, const gw_t8_notification_t *n) {
  char cid[GW_T8_RESOURCE_ID_MAX + 1], did[GW_T8_RESOURCE_ID_MAX + 1];
  if (gw_t8_link_ids(n->link, strlen(n->link), cid, did) != GW_OK || !did[0])
    return;
  for (scef_pending_t *p = b->pending; p; p = p->next) {
    if (strcmp(p->delivery, did) == 0) {
      delivery_outcome(b, p, n->delivery_status);
      return;
    }
  }
  GW_DEBUG(MOD, "delivery status of %s: no downlink waits for it", did);
}

static void config_notification(scef_binding_t *b, const gw_t8_notification_t *n) {
  char cid[GW_T8_RESOURCE_ID_MAX + 1];
  scef_config_t *c = gw_t8_link_ids(n->link, strlen(n->link), cid, NULL) == GW_OK
                         ? config_by_id(b, cid) : NULL;
  if (!c || n->nidd_status == GW_T8_NIDD_ACTIVE)
    return;
  config_lost(c, gw_t8_nidd_status_name(n->nidd_status));
}

static bool peer_allowed(const scef_binding_t *b, const char *ip) {
  if (b->conf->notification_allow_count == 0)
    return true;
  for (size_t i = 0; i < b->conf->notification_allow_count; i++)
    if (strcmp(b->conf->notification_allow[i], ip) == 0)
      return true;
  return false;
}

static void on_notification(void *arg, http_exchange_t *x, const http_server_request_t *req) {
  scef_binding_t *b = arg;
  if (!peer_allowed(b, req->peer_ip)) {
    b->metrics.refused_peers++;
    GW_WARN_LIMITED(MOD, "notification from %s, not in notification_allow; refused", req->peer_ip);
    answer(x, 403, "Forbidden", "not an address of the SCEF");
    return;
  }
  size_t path_len = strcspn(req->target, "?");
  if (strlen(b->notification_path) != path_len ||
      strncmp(req->target, b->notification_path, path_len) != 0) {
    answer(x, 404, "Not Found", "no such resource");
    return;
  }
  if (strcmp(req->method, "POST") != 0) {
    answer(x, 405, "Method Not Allowed", "notifications are POSTed");
    return;
  }
  b->metrics.notifications++;
  gw_t8_notification_t *n = malloc(sizeof(*n));
  const char *why = "out of memory";
  int rc = n ? gw_t8_notification_parse(req->body, req->body_len, n, &why) : GW_ERR_NOMEM;
  if (rc == GW_ERR_UNSUPPORTED) {
    answer(x, 204, NULL, NULL); /* valid, and nothing the gateway asked for */
  } else if (rc != GW_OK) {
    b->metrics.bad_notifications++;
    GW_WARN_LIMITED(MOD, "notification from %s refused: %s", req->peer_ip, why);
    answer(x, 400, "Bad Request", why);
  } else {
    answer(x, 204, NULL, NULL); /* at once: the SCEF does not wait for what follows */
    if (n->kind == GW_T8_NOTE_UPLINK)
      uplink_notification(b, n);
    else if (n->kind == GW_T8_NOTE_DELIVERY_STATUS)
      delivery_notification(b, n);
    else
      config_notification(b, n);
  }
  free(n);
}

/* ---- life cycle -------------------------------------------------------------------------- */

static bool scef_enabled(const gw_config_t *config) {
  return config->bindings.nidd.enabled && config->bindings.nidd.scef.enabled;
}

/* The path part of notification_url: what the notification server answers on. */
static void notification_path(const char *url, char *out, size_t size) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : NULL;
  snprintf(out, size, "%s", p ? p : "/");
}

static int read_token(scef_binding_t *b) {
  if (b->conf->has_oauth) {
    GW_ERR(MOD, "bindings.nidd.scef.oauth: OAuth2 client credentials are not implemented yet; "
                "use token_file");
    return GW_ERR_CONFIG;
  }
  if (b->conf->token)
    snprintf(b->authorization, sizeof(b->authorization), "Bearer %s", b->conf->token);
  return GW_OK;
}

static void scef_free(gw_binding_t **binding);

static int scef_create(const gw_config_t *config, const gw_binding_env_t *env,
                       gw_binding_t **out_binding) {
  scef_binding_t *b = calloc(1, sizeof(*b));
  if (!b)
    return GW_ERR_NOMEM;
  b->base.ops = ops_self();
  b->env = *env;
  b->config = config;
  b->conf = &config->bindings.nidd.scef;
  notification_path(b->conf->notification_url, b->notification_path,
                    sizeof(b->notification_path));
  b->policy = (gw_link_policy_t){
      .max_retransmit = 0,      /* D.6: the network buffers; RDS acknowledges */
      .ack_timeout_ms = 60000u, /* the device's answer after the SCEF delivered */
      .mtu = SCEF_NON_IP_MTU,
      .accept_unknown = false,  /* every UE needs a configuration at the SCEF */
      .binding_letter = 'N',
      .reports_delivery = true,
      .nstart = 1,
      .held_max_s = 86400};
  http_client_conf_t cc = {.ca_file = b->conf->ca_file, .cert_file = b->conf->cert_file,
                           .key_file = b->conf->key_file};
  http_server_conf_t sc = {.listen = b->conf->notification_listen};
  http_server_callbacks_t cb = {.arg = b, .on_request = on_notification};
  int rc = read_token(b);
  if (rc == GW_OK)
    rc = http_client_new(env->loop, &cc, &b->client);
  if (rc == GW_OK)
    rc = http_server_new(env->loop, &sc, &cb, &b->server);
  if (rc != GW_OK) {
    gw_binding_t *base = &b->base;
    scef_free(&base);
    return rc;
  }
  *out_binding = &b->base;
  return GW_OK;
}

static int scef_start(gw_binding_t *binding) {
  scef_binding_t *b = (scef_binding_t *)binding;
  if (b->conf->external_group_id && !config_of_ue(b, b->conf->external_group_id))
    config_add(b, GW_T8_EXTERNAL_GROUP_ID, b->conf->external_group_id);
  for (size_t i = 0; !b->conf->external_group_id && i < b->config->device_count; i++) {
    const gw_device_conf_t *d = &b->config->devices[i];
    const char *ue = d->external_id ? d->external_id : d->msisdn;
    if (ue && !config_of_ue(b, ue))
      config_add(b, d->external_id ? GW_T8_EXTERNAL_ID : GW_T8_MSISDN, ue);
  }
  for (scef_config_t *c = b->configs; c; c = c->next) {
    if (!c->id[0] || (c->expiry && c->expiry - (int64_t)time(NULL) < SCEF_RENEW_MARGIN_S)) {
      config_create(c);
    } else { /* kept from the last run: renewed in time */
      int64_t left = c->expiry ? c->expiry - (int64_t)time(NULL) - SCEF_RENEW_MARGIN_S : 0;
      if (left > 0)
        gw_timer_start(b->env.loop, &c->timer, (uint64_t)left * 1000u);
    }
  }
  GW_INFO(MOD, "T8 API at %s, notifications on %s%s", b->conf->url,
          b->conf->notification_listen, b->notification_path);
  return GW_OK;
}

static void scef_stop(gw_binding_t *binding) {
  scef_binding_t *b = (scef_binding_t *)binding;
  b->stopping = true;
  for (scef_config_t *c = b->configs; c; c = c->next)
    gw_timer_stop(b->env.loop, &c->timer);
  http_server_free(&b->server);
  http_client_free(&b->client);
}

static void scef_free(gw_binding_t **binding) {
  scef_binding_t *b = (scef_binding_t *)*binding;
  if (!b)
    return;
  scef_stop(*binding);
  while (b->pending)
    pending_free(b, b->pending);
  for (scef_config_t *c = b->configs, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(b);
  *binding = NULL;
}

static const gw_link_policy_t *scef_policy(const gw_binding_t *binding) {
  return &((const scef_binding_t *)binding)->policy;
}

/* The configuration's maximumPacketSize, when the SCEF stated it (issue 13 item 4). */
static size_t scef_max_datagram(const gw_binding_t *binding, const gw_baddr_t *to) {
  const scef_config_t *c = config_of_addr((scef_binding_t *)binding, to);
  return c ? c->mtu : SCEF_NON_IP_MTU;
}

static const gw_device_conf_t *scef_lookup(const gw_binding_t *binding, const gw_config_t *config,
                                           const gw_baddr_t *addr) {
  (void)binding;
  char ue[GW_T8_UE_ID_MAX + 1];
  gw_t8_rds_port_t rds;
  bool has_rds;
  return parse_addr(addr, ue, &rds, &has_rds) ? device_by_ue(config, ue) : NULL;
}

/* RDS ports choose the server (issue 13 item 3); without them the device's own upstream. */
static const char *scef_upstream_name(const gw_binding_t *binding, const gw_baddr_t *addr,
                                      const gw_device_conf_t *conf) {
  const scef_binding_t *b = (const scef_binding_t *)binding;
  char ue[GW_T8_UE_ID_MAX + 1];
  gw_t8_rds_port_t rds;
  bool has_rds;
  const gw_scef_rds_conf_t *r =
      parse_addr(addr, ue, &rds, &has_rds) && has_rds ? rds_conf(b, &rds) : NULL;
  if (!r)
    return conf ? conf->upstream : NULL;
  return r->bootstrap ? r->bootstrap : r->upstream;
}

static void scef_restore(gw_binding_t *binding, const char *key, const void *value, size_t len) {
  scef_binding_t *b = (scef_binding_t *)binding;
  char text[GW_T8_RESOURCE_ID_MAX + 48], id[GW_T8_RESOURCE_ID_MAX + 1];
  long long expiry;
  size_t mtu;
  const char *ue = strncmp(key, "cfg/", 4) == 0 ? key + 4 : NULL;
  if (ue && len < sizeof(text)) {
    memcpy(text, value, len);
    text[len] = 0;
    bool listed = device_by_ue(b->config, ue) ||
                  (b->conf->external_group_id && strcmp(b->conf->external_group_id, ue) == 0);
    scef_config_t *c = listed && sscanf(text, "%128s %lld %zu", id, &expiry, &mtu) == 3
                           ? config_add(b, b->conf->external_group_id ? GW_T8_EXTERNAL_GROUP_ID
                                                                       : GW_T8_EXTERNAL_ID, ue)
                           : NULL;
    if (c) {
      snprintf(c->id, sizeof(c->id), "%s", id);
      c->expiry = expiry;
      c->mtu = mtu ? mtu : SCEF_NON_IP_MTU;
      const gw_device_conf_t *d = device_by_ue(b->config, ue);
      if (d && !(d->external_id && strcmp(d->external_id, ue) == 0))
        c->kind = GW_T8_MSISDN;
      return;
    }
  }
  GW_NOTICE(MOD, "state %s of the last run dropped: not understood or no longer configured", key);
  b->env.state_del(b->env.core, &b->base, key);
}

static size_t scef_format_metrics(const gw_binding_t *binding, char *out, size_t out_size) {
  const scef_binding_t *b = (const scef_binding_t *)binding;
  size_t used = 0;
#define SCEF_METRIC_TEXT(name, help) \
  gw_append_counter(out, out_size, &used, "scef", #name, help, b->metrics.name);
  SCEF_METRICS(SCEF_METRIC_TEXT)
#undef SCEF_METRIC_TEXT
  size_t active = 0;
  for (const scef_config_t *c = b->configs; c; c = c->next)
    active += c->id[0] != 0;
  gw_appendf(out, out_size, &used, "lwm2m_gw_scef_configurations %zu\n", active);
  return used;
}

const gw_binding_ops_t gw_nidd_scef_binding = {
    .name = "scef",
    .enabled = scef_enabled,
    .create = scef_create,
    .start = scef_start,
    .send = scef_send,
    .stop = scef_stop,
    .free = scef_free,
    .policy = scef_policy,
    .lookup_device = scef_lookup,
    .upstream_name = scef_upstream_name,
    .restore = scef_restore,
    .max_datagram = scef_max_datagram,
    .format_metrics = scef_format_metrics,
};

static const gw_binding_ops_t *ops_self(void) { return &gw_nidd_scef_binding; }
