/* lwm2m-gw: the relay engine.
 *
 * Device side: raw CoAP datagrams through a binding, parsed by coap_msg.c.
 * Server side: one libcoap session per device (upstream.c).
 *
 * Uplink (device -> server): Register, Update, De-register, Send, Bootstrap-Request and the
 * device's responses. Requests keep their token; the server's answer goes back with the
 * device's message ID (piggybacked for a CON, a new NON for a NON).
 * Downlink (server -> device): Read, Write, Execute, Create, Delete, Discover, Write-Attributes,
 * Observe, Read/Write-Composite (FETCH/iPATCH). Transport 6.4 maps each onto one CoAP request;
 * the gateway relays it with the server's token and its own downstream message ID, and answers
 * the server piggybacked when the device is fast enough, else with an empty ACK and a separate
 * response (RFC 7252 5.2.2). A silent device yields 5.04 and an undeliverable request 5.03, so no
 * server request is left without an answer.
 */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_random.h"
#include "gw_text.h"
#include "state.h"
#include "upstream.h"

#define MOD "relay"

/* ------------------------------------------------------------------------------------------ */
/* message IDs (journal.h: they continue after a restart, and a message relayed again after a
 * restart keeps the ID it had, so the peer's deduplication sees it for what it is)             */

static uint32_t wall_now_s(void) { return (uint32_t)gw_wall_s(); }

/* A fresh upstream ID for a message of the gateway's own (a separate response it makes). */
static uint16_t next_upstream_mid(gw_gateway_t *gw, gw_device_t *dev) {
  return gw_journal_next_upstream_mid(gw_state_journal(gw->state), dev->journal_slot);
}

/* The upstream ID of the device's own message device_mid (a request, a notification, a
 * separate response). A link without message IDs has no retransmission to recognise, and the
 * ID its binding made up may be one the last run used for another message: a fresh one. */
static uint16_t upstream_mid_for(gw_gateway_t *gw, gw_device_t *dev, uint16_t device_mid) {
  if (gw_binding_policy(dev->binding)->no_message_ids)
    return next_upstream_mid(gw, dev);
  return gw_journal_upstream_mid(gw_state_journal(gw->state), dev->journal_slot, device_mid,
                                 wall_now_s());
}

/* The ID toward the device for the server's message server_mid. */
static uint16_t downstream_mid_for(gw_gateway_t *gw, gw_device_t *dev, uint16_t server_mid) {
  return gw_journal_downstream_mid(gw_state_journal(gw->state), dev->journal_slot, server_mid,
                                   wall_now_s());
}

static uint16_t next_downstream_mid(gw_gateway_t *gw, gw_device_t *dev) {
  return gw_journal_next_downstream_mid(gw_state_journal(gw->state), dev->journal_slot);
}

/* ------------------------------------------------------------------------------------------ */
/* device side output                                                                          */

static int device_send_msg(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *msg,
                           size_t *out_len) {
  size_t len = gw_coap_serialize(msg, gw->tx_buf, sizeof(gw->tx_buf));
  if (len == 0)
    return GW_ERR_TOOBIG;
  const gw_link_policy_t *policy = gw_binding_policy(dev->binding);
  if (len > policy->mtu) {
    GW_WARN(MOD, "%s: %zu-byte message exceeds the link MTU %zu", dev->addr.text, len,
            policy->mtu);
    return GW_ERR_TOOBIG;
  }
  if (out_len)
    *out_len = len;
  int rc = gw_binding_send(dev->binding, &dev->addr, gw->tx_buf, len);
  if (rc == GW_OK)
    gw->metrics.datagrams_out++;
  return rc;
}

/* Empty ACK or RST for a device's message (RFC 7252 4.2, 4.3). */
static void device_send_empty(gw_gateway_t *gw, gw_device_t *dev, gw_coap_type_t type,
                              uint16_t mid, bool record_in_dedup) {
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, type, GW_COAP_EMPTY, mid);
  size_t len = 0;
  if (device_send_msg(gw, dev, &m, &len) == GW_OK && record_in_dedup)
    gw_dedup_answer(&dev->uplink_dedup, mid, gw->tx_buf, len);
}

/* Copies the code, options and payload of a response onto a message addressed to the other
 * side. Borrows from src. */
static void copy_response_body(gw_coap_msg_t *dst, const gw_coap_msg_t *src) {
  dst->code = src->code;
  dst->option_count = src->option_count;
  memcpy(dst->options, src->options, src->option_count * sizeof(src->options[0]));
  dst->payload = src->payload;
  dst->payload_len = src->payload_len;
}

/* Answers a device request (uplink exchange x) with body (a server response) or a bare code. */
static void device_answer(gw_gateway_t *gw, gw_device_t *dev, const gw_uplink_xchg_t *x,
                          const gw_coap_msg_t *body, uint8_t code) {
  gw_coap_msg_t m;
  bool con = x->device_type == GW_COAP_CON;
  gw_coap_msg_init(&m, con ? GW_COAP_ACK : GW_COAP_NON, code,
                   con ? x->device_mid : next_downstream_mid(gw, dev));
  gw_coap_set_token(&m, x->token, x->token_len);
  if (body)
    copy_response_body(&m, body);
  size_t len = 0;
  if (device_send_msg(gw, dev, &m, &len) != GW_OK) {
    GW_WARN(MOD, "%s: could not deliver the answer to %s", dev->endpoint, dev->addr.text);
    gw_dedup_forget(&dev->uplink_dedup, x->device_mid);
    return;
  }
  gw_dedup_answer(&dev->uplink_dedup, x->device_mid, gw->tx_buf, len);
  gw->metrics.uplink_responses++;
}

/* Answers a device request that never got an uplink exchange (no capacity, no session, not
 * its registration) with code and the reason as diagnostic payload (RFC 7252 5.5.2). */
static void device_reject_request(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req,
                                  uint8_t code, const char *reason) {
  gw_uplink_xchg_t x = {.token_len = req->token_len, .device_mid = req->mid,
                        .device_type = req->type};
  memcpy(x.token, req->token, req->token_len);
  if (code == GW_COAP_SERVICE_UNAVAILABLE)
    gw->metrics.unavailable++;
  gw_coap_msg_t diagnostic;
  gw_coap_answer_init(&diagnostic, req, code, 0, reason);
  device_answer(gw, dev, &x, reason ? &diagnostic : NULL, code);
}

/* To an address that is no device (not admitted, or not a request): an RST (RFC 7252 4.2, 4.3)
 * unless each message costs the sender of the answer money. */
static void reject_stateless(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *to,
                             uint16_t mid) {
  if (gw_binding_policy(b)->costly)
    return;
  uint8_t rst[4] = {0x70, 0x00, (uint8_t)(mid >> 8), (uint8_t)mid};
  if (gw_binding_send(b, to, rst, sizeof(rst)) == GW_OK)
    gw->metrics.datagrams_out++;
}

/* A request the gateway refuses before it has a device for it: 5.03 with the reason. */
static void refuse_stateless(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *to,
                             const gw_coap_msg_t *req, const char *reason) {
  gw_coap_msg_t m;
  gw_coap_answer_init(&m, req, GW_COAP_SERVICE_UNAVAILABLE, gw_random_u16(), reason);
  size_t len = gw_coap_serialize(&m, gw->tx_buf, sizeof(gw->tx_buf));
  gw->metrics.unavailable++;
  if (len && gw_binding_send(b, to, gw->tx_buf, len) == GW_OK)
    gw->metrics.datagrams_out++;
}

/* ------------------------------------------------------------------------------------------ */
/* what must survive the process (state.h): written before what acknowledges it leaves          */

/* The device's row, made durable now: before the first message leaves a new upstream session
 * (after a restart the gateway speaks for the device from the same port, which is how the
 * server knows it), and before the answer to a Register or Update reaches the device. */
static void save_device(gw_gateway_t *gw, gw_device_t *dev) {
  dev->saved_port = dev->local_port;
  dev->saved_registered_at = dev->registered_at;
  dev->registration_changed = false;
  gw_state_save_device(gw->state, dev);
}

static void save_device_now(gw_gateway_t *gw, gw_device_t *dev) {
  save_device(gw, dev);
  gw_state_commit(gw->state);
}

static void own_update(gw_gateway_t *gw, gw_device_t *dev);
static void uplink_drain(gw_gateway_t *gw, gw_device_t *dev);

/* After the device's session (re)opened: its row durable, and when the server knows the
 * registration by another port (the old one could not be bound again after a restart, a failed
 * DTLS session was renewed from a fresh one), an Update of the gateway's own moves it here. */
static void downlink_flush_queue(gw_gateway_t *gw, gw_device_t *dev);

static void save_session(gw_gateway_t *gw, gw_device_t *dev) {
  if (!dev->state_id || dev->saved_port != dev->local_port)
    save_device_now(gw, dev);
  if (dev->registered && dev->upstream && dev->local_port != dev->registered_port)
    own_update(gw, dev);
}

/* A server request the device will answer later, made durable before the empty ACK (or the
 * queueing) tells the server to wait: after a restart it is still answered. */
static void save_downlink_now(gw_gateway_t *gw, gw_downlink_xchg_t *x) {
  uint64_t now = gw_now_ms();
  uint64_t due = gw_timer_active(&x->deadline_timer) ? x->deadline_timer.due_ms : now;
  gw_state_save_downlink(gw->state, x->device, x,
                         gw_wall_s() + (int64_t)((due > now ? due - now : 0) / 1000u));
  x->persisted = true;
  gw_state_commit(gw->state);
}

/* ------------------------------------------------------------------------------------------ */
/* server side output                                                                          */

static void server_send_empty_ack(gw_gateway_t *gw, gw_device_t *dev, uint16_t server_mid) {
  gw_coap_msg_t ack;
  gw_coap_msg_init(&ack, GW_COAP_ACK, GW_COAP_EMPTY, server_mid);
  if (gw_upstream_send(dev, &ack) != GW_OK)
    GW_WARN(MOD, "%s: empty ACK upstream failed", dev->endpoint);
}

/* Answers the server request of downlink exchange x with body or a bare code, piggybacked when
 * the server's CON was not acknowledged yet, else separately, then releases x. */
static void server_answer(gw_gateway_t *gw, gw_downlink_xchg_t *x, const gw_coap_msg_t *body,
                          uint8_t code) {
  gw_device_t *dev = x->device;
  gw_coap_msg_t m;
  bool piggyback = x->server_type == GW_COAP_CON && !x->acked_upstream;
  gw_coap_type_t type = piggyback ? GW_COAP_ACK
                        : x->server_type == GW_COAP_CON ? GW_COAP_CON : GW_COAP_NON;
  /* A separate response the device sent itself keeps the ID of its message (a retransmission
   * after a restart is then a duplicate to the server); one the gateway makes gets a new one. */
  uint16_t mid = piggyback                                  ? x->server_mid
                 : body && body->type != GW_COAP_ACK ? upstream_mid_for(gw, dev, body->mid)
                                                            : next_upstream_mid(gw, dev);
  gw_coap_msg_init(&m, type, code, mid);
  gw_coap_set_token(&m, x->token, x->token_len);
  if (body)
    copy_response_body(&m, body);

  if (gw_upstream_send(dev, &m) != GW_OK)
    GW_WARN(MOD, "%s: response to the server could not be sent", dev->endpoint);
  if (piggyback) {
    gw->metrics.piggybacked++;
    /* Cache the piggybacked answer for the server's retransmissions of the request. */
    size_t len = gw_coap_serialize(&m, gw->tx_buf, sizeof(gw->tx_buf));
    gw_dedup_answer(&dev->downlink_dedup, x->server_mid, len ? gw->tx_buf : NULL, len);
  } else {
    if (x->server_type == GW_COAP_CON)
      gw->metrics.separate++;
    /* A retransmitted request now only needs the empty ACK again. */
    gw_coap_msg_t ack;
    gw_coap_msg_init(&ack, GW_COAP_ACK, GW_COAP_EMPTY, x->server_mid);
    size_t len = x->server_type == GW_COAP_CON
                     ? gw_coap_serialize(&ack, gw->tx_buf, sizeof(gw->tx_buf)) : 0;
    gw_dedup_answer(&dev->downlink_dedup, x->server_mid, len ? gw->tx_buf : NULL, len);
  }
  bool started = x->state != GW_DOWN_QUEUED;
  if (x->persisted)
    gw_state_forget_downlink(gw->state, dev, x->server_mid);
  gw_downlink_release(gw->loop, x);
  /* Its turn is over: on a link with its own NSTART the next one goes now. */
  if (started && gw_binding_policy(dev->binding)->nstart && !dev->aborting)
    downlink_flush_queue(gw, dev);
}

/* The gateway's own answer to the server request of x: code, the reason as diagnostic payload
 * (RFC 7252 5.5.2; NULL: none) and, for 4.13, Size1: the largest request body that would go
 * (RFC 7959 2.9.3), so the server sends it again in Block1 pieces. */
static void server_answer_own(gw_gateway_t *gw, gw_downlink_xchg_t *x, uint8_t code,
                              const char *diagnostic, size_t size1) {
  char c[8];
  GW_INFO(MOD, "%s: %s %s answered %s by the gateway%s%s", x->device->endpoint,
          x->observe_register ? "Observe" : "request", x->path, gw_coap_code_str(code, c),
          diagnostic ? ": " : "", diagnostic ? diagnostic : "");
  if (code == GW_COAP_GATEWAY_TIMEOUT)
    gw->metrics.gateway_timeouts++;
  else if (code == GW_COAP_REQUEST_TOO_LARGE)
    gw->metrics.too_large++;
  else
    gw->metrics.unavailable++;
  if (!diagnostic && code != GW_COAP_REQUEST_TOO_LARGE) {
    server_answer(gw, x, NULL, code);
    return;
  }
  gw_coap_msg_t body;
  gw_coap_msg_init(&body, GW_COAP_ACK, code, 0);
  uint8_t size1_value[4];
  if (code == GW_COAP_REQUEST_TOO_LARGE)
    gw_coap_add_option(&body, GW_COAP_OPT_SIZE1, size1_value,
                       gw_coap_encode_uint(size1_value, (uint32_t)size1));
  if (diagnostic) {
    size_t n = strlen(diagnostic);
    body.payload = (const uint8_t *)diagnostic;
    body.payload_len = n < GW_COAP_DIAGNOSTIC_MAX ? n : GW_COAP_DIAGNOSTIC_MAX;
  }
  server_answer(gw, x, &body, code);
}

static void server_answer_code(gw_gateway_t *gw, gw_downlink_xchg_t *x, uint8_t code) {
  server_answer_own(gw, x, code, NULL, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* devices                                                                                     */

/* LwM2M Core 6.2.1: lt defaults to 86400 s. */
static uint32_t registration_lifetime(const gw_device_t *dev) {
  return dev->device_params.has_lifetime ? dev->device_params.lifetime : 86400u;
}

/* Which server a registration lives on: a location ("/rd/5") is only unique per server. */
static uint32_t upstream_key(gw_gateway_t *gw, const gw_device_t *dev) {
  const gw_upstream_conf_t *u = gw_binding_upstream(dev->binding, &gw->config, &dev->addr,
                                                    dev->conf);
  return u ? (uint32_t)gw_hash_str(u->uri) : 0;
}

static bool device_awake(const gw_gateway_t *gw, const gw_device_t *dev, uint64_t now) {
  /* A network that buffers keeps the message until the device can take it. */
  if (!dev->queue_mode || gw_binding_policy(dev->binding)->network_buffers)
    return true;
  /* LwM2M Core 6.5 (queue mode): the client listens for MAX_TRANSMIT_WAIT after it spoke. */
  return dev->last_heard_ms && now - dev->last_heard_ms < gw->config.gateway.queue_awake_ms;
}

/* ------------------------------------------------------------------------------------------ */
/* downlink: server requests toward the device                                                 */

static void downlink_transmit(gw_gateway_t *gw, gw_downlink_xchg_t *x);
static void late_step(gw_gateway_t *gw, gw_downlink_xchg_t *x, gw_late_step_t step,
                      size_t size1);
static size_t body_room(const gw_downlink_xchg_t *x, size_t max);

/* RFC 7252 5.2.2: the device is slow, acknowledge now and answer separately later. */
static void piggyback_window_expired(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_downlink_xchg_t *x = arg;
  if (x->server_type != GW_COAP_CON || x->acked_upstream)
    return;
  x->acked_upstream = true;
  save_downlink_now(x->device->gateway, x);
  server_send_empty_ack(x->device->gateway, x->device, x->server_mid);
}

static void deadline_expired(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_downlink_xchg_t *x = arg;
  if (x->state == GW_DOWN_QUEUED) {
    GW_NOTICE(MOD, "%s: queued request %s expired before the device was heard from",
              x->device->endpoint, x->path);
    server_answer_code(x->device->gateway, x, GW_COAP_SERVICE_UNAVAILABLE);
    return;
  }
  if (gw_binding_policy(x->device->binding)->reports_delivery) {
    late_step(x->device->gateway, x, gw_late_deadline(&x->late), 0);
    return;
  }
  GW_NOTICE(MOD, "%s: no answer to %s within %u ms", x->device->endpoint, x->path,
            x->device->gateway->config.gateway.device_timeout_ms);
  server_answer_code(x->device->gateway, x, GW_COAP_GATEWAY_TIMEOUT);
}

static void observation_end(gw_gateway_t *gw, gw_device_t *dev, gw_observation_t *o) {
  if (!o)
    return;
  gw_state_forget_observation(gw->state, dev, o->token, o->token_len);
  gw_observation_remove(o);
}

static gw_late_params_t late_params(const gw_device_t *dev) {
  const gw_link_policy_t *policy = gw_binding_policy(dev->binding);
  return (gw_late_params_t){.max_retransmit = policy->max_retransmit,
                            .ack_timeout_ms = policy->ack_timeout_ms,
                            .held_max_ms = policy->held_max_s * 1000u};
}

/* Does what the Appendix C state machine (late_delivery.h) says next for x. */
static void late_step(gw_gateway_t *gw, gw_downlink_xchg_t *x, gw_late_step_t step,
                      size_t size1) {
  gw_device_t *dev = x->device;
  switch (step.action) {
  case GW_LATE_IGNORE:
    return;
  case GW_LATE_ANSWER:
    server_answer_own(gw, x, step.code, step.reason, size1);
    return;
  case GW_LATE_RESEND:
    gw->metrics.late_retransmits++;
    GW_INFO(MOD, "%s: no answer to %s within ACK_TIMEOUT; sent again (%u more at most)",
            dev->endpoint, x->path, x->late.resends_left);
    if (gw_binding_send(dev->binding, &dev->addr, x->request, x->request_len) == GW_OK)
      gw->metrics.datagrams_out++;
    break;
  case GW_LATE_WAIT:
    break;
  }
  gw_timer_start(gw->loop, &x->deadline_timer, step.deadline_ms);
  if (step.resend_ms)
    gw_timer_start(gw->loop, &x->retransmit_timer, step.resend_ms);
  else
    gw_timer_stop(gw->loop, &x->retransmit_timer);
}

/* Device-side CoAP retransmission, only on links whose policy allows it (RFC 7252 4.2); on a
 * link that reports delivery, Appendix C decides. */
static void retransmit_due(gw_loop_t *loop, void *arg) {
  gw_downlink_xchg_t *x = arg;
  gw_device_t *dev = x->device;
  if (x->state != GW_DOWN_INFLIGHT)
    return;
  if (gw_binding_policy(dev->binding)->reports_delivery) {
    gw_late_params_t p = late_params(dev);
    late_step(dev->gateway, x, gw_late_resend_due(&x->late, &p), 0);
    return;
  }
  if (x->retransmits_left == 0)
    return;
  x->retransmits_left--;
  x->retransmit_ms *= 2;
  if (gw_binding_send(dev->binding, &dev->addr, x->request, x->request_len) == GW_OK)
    dev->gateway->metrics.datagrams_out++;
  if (x->retransmits_left)
    gw_timer_start(loop, &x->retransmit_timer, x->retransmit_ms);
}

/* The largest body a request like x's could carry in a datagram of max bytes, with the Block1
 * option the server adds to send it in pieces (RFC 7959 2.9.3: Size1 of a 4.13). */
static size_t body_room(const gw_downlink_xchg_t *x, size_t max) {
  gw_coap_msg_t m;
  if (gw_coap_parse(x->request, x->request_len, &m) != GW_COAP_PARSE_OK)
    return 0;
  size_t header = x->request_len - m.payload_len + (m.payload_len ? 0 : 1) /* marker */
                  + 4 /* a Block1 option */;
  return max > header ? max - header : 0;
}

static void downlink_transmit(gw_gateway_t *gw, gw_downlink_xchg_t *x) {
  gw_device_t *dev = x->device;
  const gw_link_policy_t *policy = gw_binding_policy(dev->binding);
  x->state = GW_DOWN_INFLIGHT;
  size_t max = gw_binding_max_datagram(dev->binding, &dev->addr);
  if (x->request_len > max) {
    char why[96];
    snprintf(why, sizeof(why), "%zu bytes; the link carries %zu to this device now",
             x->request_len, max);
    server_answer_own(gw, x, GW_COAP_REQUEST_TOO_LARGE, why, body_room(x, max));
    return;
  }
  if (gw_binding_send(dev->binding, &dev->addr, x->request, x->request_len) != GW_OK) {
    server_answer_code(gw, x, GW_COAP_SERVICE_UNAVAILABLE);
    return;
  }
  gw->metrics.datagrams_out++;
  gw->metrics.downlink_requests++;
  bool con = (x->request[0] >> 4 & 3) == GW_COAP_CON;
  if (policy->reports_delivery) {
    /* The answer comes late: the server hears so at once (DESIGN.md), and the clock starts
     * when the network reports the message sent (gw_relay_delivery). */
    gw_late_params_t p = late_params(dev);
    late_step(gw, x, gw_late_start(&x->late, &p, con), 0);
    if (x->server_type == GW_COAP_CON && !x->acked_upstream) {
      x->acked_upstream = true;
      save_downlink_now(gw, x);
      server_send_empty_ack(gw, dev, x->server_mid);
    }
    return;
  }
  if (x->server_type == GW_COAP_CON && !x->acked_upstream)
    gw_timer_start(gw->loop, &x->piggyback_timer, gw->config.gateway.piggyback_window_ms);
  gw_timer_start(gw->loop, &x->deadline_timer, gw->config.gateway.device_timeout_ms);
  if (con && policy->max_retransmit > 0) {
    x->retransmits_left = policy->max_retransmit;
    x->retransmit_ms = policy->ack_timeout_ms;
    gw_timer_start(gw->loop, &x->retransmit_timer, x->retransmit_ms);
  }
}

static size_t downlink_inflight(gw_device_t *dev) {
  return gw_downlink_count(dev, GW_DOWN_INFLIGHT) + gw_downlink_count(dev, GW_DOWN_SEPARATE);
}

/* Server requests in flight toward the device at once (RFC 7252 4.7 NSTART on the link). */
static size_t device_nstart(const gw_device_t *dev) {
  uint8_t n = gw_binding_policy(dev->binding)->nstart;
  return n && n < GW_MAX_INFLIGHT_DOWN ? n : GW_MAX_INFLIGHT_DOWN;
}

/* The queue is served in arrival order when the device is heard from (queue mode, 6.5), and
 * as requests in flight end on a link with its own NSTART. */
static void downlink_flush_queue(gw_gateway_t *gw, gw_device_t *dev) {
  for (;;) {
    gw_downlink_xchg_t *first = NULL;
    for (size_t i = 0; i < dev->downlink_capacity; i++) {
      gw_downlink_xchg_t *x = &dev->downlink[i];
      if (x->used && x->state == GW_DOWN_QUEUED &&
          (!first || (int32_t)(x->queue_seq - first->queue_seq) < 0))
        first = x;
    }
    if (!first)
      return;
    if (downlink_inflight(dev) >= device_nstart(dev))
      return;
    gw_timer_stop(gw->loop, &first->deadline_timer);
    downlink_transmit(gw, first);
  }
}

static uint32_t observe_value(const gw_coap_msg_t *m, bool *out_present) {
  const gw_coap_option_t *o = gw_coap_find_option(m, GW_COAP_OPT_OBSERVE);
  *out_present = o != NULL;
  return o ? gw_coap_option_uint(o) : 0;
}

/* Builds the downstream copy of a server request: same everything, the gateway's own mid. */
static int downlink_prepare(gw_gateway_t *gw, gw_downlink_xchg_t *x, const gw_coap_msg_t *req) {
  gw_device_t *dev = x->device;
  gw_coap_msg_t down = *req;
  down.mid = x->device_mid = downstream_mid_for(gw, dev, req->mid);
  size_t len = gw_coap_serialize(&down, gw->tx_buf, sizeof(gw->tx_buf));
  if (len == 0)
    return GW_ERR_TOOBIG;
  x->request = malloc(len);
  if (!x->request)
    return GW_ERR_NOMEM;
  memcpy(x->request, gw->tx_buf, len);
  x->request_len = len;
  return GW_OK;
}

/* Answers a server request at once, without relaying it, through a throwaway exchange. */
static void answer_immediately(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req,
                               uint8_t code) {
  gw_downlink_xchg_t x = {.device = dev, .server_mid = req->mid, .server_type = req->type,
                          .token_len = req->token_len};
  memcpy(x.token, req->token, req->token_len);
  gw_timer_init(&x.piggyback_timer, NULL, NULL);
  gw_timer_init(&x.deadline_timer, NULL, NULL);
  gw_timer_init(&x.retransmit_timer, NULL, NULL);
  gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, x.path, sizeof(x.path));
  if (GW_COAP_CODE_CLASS(code) == 2)
    server_answer(gw, &x, NULL, code);
  else
    server_answer_code(gw, &x, code);
}

/* ---- links that report delivery (binding.h, Transport Appendix C) ---- */

void gw_relay_delivery(gw_gateway_t *gw, gw_device_t *dev, const gw_delivery_report_t *r) {
  gw_downlink_xchg_t *x = gw_downlink_find_by_mid(dev, r->mid);
  if (!x || x->state == GW_DOWN_QUEUED)
    return; /* an answer of the gateway's own, or an exchange already over */
  gw_late_params_t p = late_params(dev);
  gw_late_step_t step = gw_late_report(&x->late, &p, r);
  size_t size1 = r->status == GW_DELIVERY_TOO_LARGE && r->max_size ? body_room(x, r->max_size) : 0;
  late_step(gw, x, step, size1);
  if (step.action == GW_LATE_WAIT)
    save_downlink_now(gw, x); /* a restart keeps waiting for what is left of it */
}

/* ---- SMS trigger (Transport 6.6) ---- */

static gw_binding_t *sms_binding(gw_gateway_t *gw) {
  for (size_t i = 0; i < gw->binding_count; i++)
    if (gw_binding_policy(gw->bindings[i])->binding_letter == 'S')
      return gw->bindings[i];
  return NULL;
}


/* Execute on /1/x/8 (Registration Update Trigger, 6.6.1) or /1/x/9 (Bootstrap-Request
 * Trigger, 6.6.2). */
static bool is_trigger_execute(const gw_coap_msg_t *req) {
  if (req->code != GW_COAP_POST)
    return false;
  char path[64];
  gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, path, sizeof(path));
  unsigned instance, resource;
  char tail;
  return sscanf(path, "/1/%u/%u%c", &instance, &resource, &tail) == 2 &&
         (resource == 8 || resource == 9);
}

/* A device registered on another binding with an sms= number can be woken by SMS. */
static bool sms_trigger_applies(gw_gateway_t *gw, const gw_device_t *dev,
                                const gw_coap_msg_t *req) {
  return dev->device_params.sms_number[0] && is_trigger_execute(req) &&
         gw_binding_policy(dev->binding)->binding_letter != 'S' && sms_binding(gw) != NULL;
}

/* Sends an Execute to the device's sms= number as a NON (6.6: the client sends no response). */
static int send_sms_execute(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *execute) {
  gw_binding_t *sms = sms_binding(gw);
  gw_coap_msg_t m = *execute;
  m.type = GW_COAP_NON;
  m.mid = next_downstream_mid(gw, dev);
  size_t len = gw_coap_serialize(&m, gw->tx_buf, sizeof(gw->tx_buf));
  gw_baddr_t to;
  snprintf(to.text, sizeof(to.text), "%s",
           dev->device_params.sms_number + (dev->device_params.sms_number[0] == '+'));
  if (!sms || len == 0 || gw_binding_send(sms, &to, gw->tx_buf, len) != GW_OK)
    return GW_ERR_IO;
  gw->metrics.sms_triggers++;
  return GW_OK;
}

static void relay_sms_trigger(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req) {
  int rc = send_sms_execute(gw, dev, req);
  char path[64];
  GW_INFO(MOD, "%s: %s sent by SMS to %s%s", dev->endpoint,
          gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, path, sizeof(path)),
          dev->device_params.sms_number, rc == GW_OK ? "" : " failed");
  /* The device answers nothing (6.6): the gateway confirms the Execute went out. */
  answer_immediately(gw, dev, req, rc == GW_OK ? GW_COAP_CHANGED : GW_COAP_SERVICE_UNAVAILABLE);
}

/* Queue mode: a request waits for a sleeping device; wake it with the Registration Update
 * Trigger by SMS, once until it is heard from (bindings.sms.wake_queued). */
static void wake_by_sms(gw_gateway_t *gw, gw_device_t *dev) {
  if (!gw->config.bindings.sms.wake_queued || dev->wake_sent || !dev->device_params.sms_number[0] ||
      gw_binding_policy(dev->binding)->binding_letter == 'S' || !sms_binding(gw))
    return;
  char instance[12];
  snprintf(instance, sizeof(instance), "%u", dev->server_instance);
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, GW_COAP_NON, GW_COAP_POST, 0);
  uint8_t token[4];
  gw_random_bytes(token, sizeof(token));
  gw_coap_set_token(&m, token, sizeof(token));
  gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"1", 1);
  gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)instance, strlen(instance));
  gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)"8", 1);
  if (send_sms_execute(gw, dev, &m) == GW_OK) {
    dev->wake_sent = true;
    GW_INFO(MOD, "%s: woken by SMS (/1/%s/8 to %s) for its queued requests", dev->endpoint,
            instance, dev->device_params.sms_number);
  }
}

/* A retransmitted server request: never relayed twice (RFC 7252 4.5). */
static void server_request_duplicate(gw_gateway_t *gw, gw_device_t *dev,
                                     const gw_coap_msg_t *req, gw_dedup_verdict_t verdict,
                                     const uint8_t *answer, size_t answer_len) {
  gw->metrics.duplicates++;
  if (verdict == GW_DEDUP_IN_PROGRESS) {
    gw_downlink_xchg_t *x = gw_downlink_find_by_server_mid(dev, req->mid);
    if (x && x->acked_upstream)
      server_send_empty_ack(gw, dev, req->mid);
    return;
  }
  gw_coap_msg_t cached;
  if (answer && gw_coap_parse(answer, answer_len, &cached) == GW_COAP_PARSE_OK)
    gw_upstream_send(dev, &cached);
}

/* RFC 7252 5.1: GET, FETCH, PUT, iPATCH and DELETE may be repeated with the same effect. */
static bool idempotent_method(uint8_t code) {
  return code == GW_COAP_GET || code == GW_COAP_FETCH || code == GW_COAP_PUT ||
         code == GW_COAP_IPATCH || code == GW_COAP_DELETE;
}

/* A retransmission the duplicate cache does not know (the gateway was restarted since it
 * relayed the request, or the cache was full) on a link whose answers die with the process:
 * the device may have acted on it, and its answer is lost. Relaying it again would act twice,
 * unless that is safe. */
static bool relayed_before_restart(gw_gateway_t *gw, gw_device_t *dev,
                                   const gw_coap_msg_t *req) {
  return gw_binding_policy(dev->binding)->answers_die_with_process &&
         !idempotent_method(req->code) &&
         gw_journal_downstream_known(gw_state_journal(gw->state), dev->journal_slot, req->mid,
                                     wall_now_s());
}

void gw_relay_server_request(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req) {
  uint64_t now = gw_now_ms();
  gw_admission_touch(gw, dev);
  const uint8_t *answer = NULL;
  size_t answer_len = 0;
  gw_dedup_verdict_t verdict = gw_dedup_check(&dev->downlink_dedup, req->mid,
                                              req->type == GW_COAP_CON, now, &answer, &answer_len);
  if (verdict != GW_DEDUP_NEW) {
    server_request_duplicate(gw, dev, req, verdict, answer, answer_len);
    return;
  }
  if (relayed_before_restart(gw, dev, req)) {
    char path[64];
    GW_NOTICE(MOD, "%s: retransmitted request %s was relayed before a restart and its answer "
                   "lost; answered 5.04, not relayed twice", dev->endpoint,
              gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, path, sizeof(path)));
    answer_immediately(gw, dev, req, GW_COAP_GATEWAY_TIMEOUT);
    return;
  }
  if (sms_trigger_applies(gw, dev, req)) {
    relay_sms_trigger(gw, dev, req);
    return;
  }
  bool awake = device_awake(gw, dev, now);
  /* On a link with its own NSTART the rest wait their turn in the queue (Appendix C). */
  bool wait_turn = awake && gw_binding_policy(dev->binding)->nstart &&
                   downlink_inflight(dev) >= device_nstart(dev);
  gw_downlink_xchg_t *x = gw_downlink_alloc(dev, !awake || wait_turn);
  if (!x) {
    GW_WARN_LIMITED(MOD, "%s: %s; request refused with 5.03", dev->endpoint,
            awake ? "too many requests in flight" : "downlink queue full");
    answer_immediately(gw, dev, req, GW_COAP_SERVICE_UNAVAILABLE);
    return;
  }
  x->server_mid = req->mid;
  x->server_type = req->type;
  x->token_len = req->token_len;
  memcpy(x->token, req->token, req->token_len);
  gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, x->path, sizeof(x->path));
  bool has_observe;
  uint32_t obs = observe_value(req, &has_observe);
  bool observable_method = req->code == GW_COAP_GET || req->code == GW_COAP_FETCH;
  x->observe_register = observable_method && has_observe && obs == 0;
  x->observe_cancel = observable_method && has_observe && obs == 1;
  gw_timer_init(&x->piggyback_timer, piggyback_window_expired, x);
  gw_timer_init(&x->deadline_timer, deadline_expired, x);
  gw_timer_init(&x->retransmit_timer, retransmit_due, x);

  if (downlink_prepare(gw, x, req) != GW_OK) {
    server_answer_code(gw, x, GW_COAP_SERVICE_UNAVAILABLE);
    return;
  }
  if (awake && !wait_turn) {
    downlink_transmit(gw, x);
    return;
  }
  /* Sleepy device, or one whose link takes one request at a time: acknowledge now, answer when
   * the device was heard from (or its turn came) and answered. */
  gw->metrics.queued++;
  x->queue_seq = ++gw->queue_seq;
  x->acked_upstream = x->server_type == GW_COAP_CON;
  gw_timer_start(gw->loop, &x->deadline_timer, (uint64_t)registration_lifetime(dev) * 1000u);
  save_downlink_now(gw, x);
  if (x->acked_upstream)
    server_send_empty_ack(gw, dev, x->server_mid);
  GW_INFO(MOD, "%s: %s queued until %s", dev->endpoint, x->path,
          wait_turn ? "the request before it is answered" : "the device is heard from");
  if (!wait_turn)
    wake_by_sms(gw, dev);
}

void gw_relay_restore_downlink(gw_gateway_t *gw, gw_device_t *dev,
                               const gw_state_downlink_t *saved) {
  bool queued = saved->state == GW_DOWN_QUEUED;
  gw_downlink_xchg_t *x = gw_downlink_alloc(dev, queued);
  uint8_t *request = x ? malloc(saved->request_len) : NULL;
  if (!request) {
    GW_WARN(MOD, "%s: saved request %s dropped: no room", dev->endpoint, saved->path);
    if (x)
      gw_downlink_release(gw->loop, x);
    gw_state_forget_downlink(gw->state, dev, saved->server_mid);
    return;
  }
  memcpy(request, saved->request, saved->request_len);
  x->request = request;
  x->request_len = saved->request_len;
  x->state = saved->state;
  x->server_mid = saved->server_mid;
  x->server_type = saved->server_type;
  x->device_mid = saved->device_mid;
  x->token_len = saved->token_len;
  memcpy(x->token, saved->token, saved->token_len);
  x->acked_upstream = saved->acked_upstream;
  x->observe_register = saved->observe_register;
  x->observe_cancel = saved->observe_cancel;
  x->queue_seq = saved->queue_seq;
  x->persisted = true;
  snprintf(x->path, sizeof(x->path), "%s", saved->path);
  if (queued && (int32_t)(saved->queue_seq - gw->queue_seq) > 0)
    gw->queue_seq = saved->queue_seq;
  gw_timer_init(&x->piggyback_timer, piggyback_window_expired, x);
  gw_timer_init(&x->deadline_timer, deadline_expired, x);
  gw_timer_init(&x->retransmit_timer, retransmit_due, x);
  int64_t left_s = saved->deadline_at - gw_wall_s();
  uint64_t left_ms = left_s > 0 ? (uint64_t)left_s * 1000u : 0;
  gw_timer_start(gw->loop, &x->deadline_timer, left_ms);
  x->late = saved->late;
  if (gw_binding_policy(dev->binding)->reports_delivery && x->late.sent &&
      x->late.resends_left && !x->late.acked) {
    /* When the copy went out is not kept: the device gets a whole ACK_TIMEOUT from now. */
    uint64_t ack_timeout = gw_binding_policy(dev->binding)->ack_timeout_ms;
    gw_timer_start(gw->loop, &x->retransmit_timer, ack_timeout < left_ms ? ack_timeout : left_ms);
  }
  /* The server's retransmissions of it are duplicates in progress (RFC 7252 4.5). */
  const uint8_t *answer;
  size_t answer_len;
  gw_dedup_check(&dev->downlink_dedup, x->server_mid, x->server_type == GW_COAP_CON,
                 gw_now_ms(), &answer, &answer_len);
}

/* The device answered downlink exchange x (piggybacked or separately). */
static void downlink_complete(gw_gateway_t *gw, gw_downlink_xchg_t *x,
                              const gw_coap_msg_t *resp) {
  gw_device_t *dev = x->device;
  bool has_observe;
  observe_value(resp, &has_observe);
  bool success = GW_COAP_CODE_CLASS(resp->code) == 2;
  if (x->observe_register && success && has_observe) {
    gw_observation_t *o = gw_observation_add(dev, x->token, x->token_len, x->path);
    if (!o) {
      GW_WARN(MOD, "%s: observation table full; notifications for %s will be rejected",
              dev->endpoint, x->path);
    } else { /* durable before the server hears that it observes */
      gw_state_save_observation(gw->state, dev, o);
      gw_state_commit(gw->state);
    }
  } else if (x->observe_cancel || (x->observe_register && !has_observe)) {
    observation_end(gw, dev, gw_observation_find(dev, x->token, x->token_len));
  }
  gw->metrics.downlink_responses++;
  server_answer(gw, x, resp, resp->code);
}

/* ------------------------------------------------------------------------------------------ */
/* uplink: device requests toward the server                                                   */

static bool path_is(const gw_coap_msg_t *m, const char *first, size_t segments) {
  size_t n = 0;
  bool first_ok = false;
  for (size_t i = 0; i < m->option_count; i++) {
    const gw_coap_option_t *o = &m->options[i];
    if (o->number != GW_COAP_OPT_URI_PATH)
      continue;
    if (n == 0)
      first_ok = o->length == strlen(first) && memcmp(o->value, first, o->length) == 0;
    n++;
  }
  return first_ok && n == segments;
}

/* Replaces the Uri-Query options of m by list (borrowed: list must outlive m's use). */
static int replace_queries(gw_coap_msg_t *m, const gw_query_list_t *list) {
  gw_coap_remove_options(m, GW_COAP_OPT_URI_QUERY);
  for (size_t i = 0; i < list->count; i++)
    if (gw_coap_add_option(m, GW_COAP_OPT_URI_QUERY, (const uint8_t *)list->values[i],
                           list->lengths[i]) != 0)
      return GW_ERR_FULL;
  return GW_OK;
}

/* The first Server object instance in the registration's object list ("</1/3>"), which the
 * Registration Update Trigger is executed on; 0 when the list names none. */
static unsigned server_instance_of(const gw_coap_msg_t *reg) {
  const char *p = (const char *)reg->payload;
  size_t len = reg->payload_len;
  for (size_t i = 0; p && i + 4 < len; i++) {
    if (memcmp(p + i, "</1/", 4) != 0)
      continue;
    unsigned v = 0;
    size_t j = i + 4;
    while (j < len && p[j] >= '0' && p[j] <= '9' && v < 65536)
      v = v * 10 + (unsigned)(p[j++] - '0');
    if (j > i + 4 && j < len && p[j] == '>')
      return v;
  }
  return 0;
}

/* LwM2M Core 6.2: Register (POST /rd) and Update (POST /rd/{location}) carry parameters that
 * strict servers reject; rewrite them for the upstream profile, keep the device's own values. */
static int rewrite_registration(gw_gateway_t *gw, gw_device_t *dev, gw_coap_msg_t *up,
                                bool is_register, gw_query_list_t *storage) {
  gw_reg_params_t params;
  if (gw_reg_params_parse(up, &params) != 0)
    return GW_ERR_INVAL;
  if (is_register) {
    dev->device_params = params;
    dev->server_instance = server_instance_of(up);
    if (!dev->conf && params.endpoint[0])
      snprintf(dev->endpoint, sizeof(dev->endpoint), "%s", params.endpoint);
  } else if (params.has_lifetime) {
    dev->registration_changed |= !dev->device_params.has_lifetime ||
                                 dev->device_params.lifetime != params.lifetime;
    dev->device_params.lifetime = params.lifetime;
    dev->device_params.has_lifetime = true;
  }
  if (params.queue_mode)
    dev->queue_mode = true;
  const gw_upstream_conf_t *uconf =
      gw_binding_upstream(dev->binding, &gw->config, &dev->addr, dev->conf);
  const gw_link_policy_t *link = gw_binding_policy(dev->binding);
  char implied = link->letter_implied ? link->binding_letter : 0;
  if (is_register && implied && !strchr(params.binding[0] ? params.binding : "U", implied) &&
      !dev->letter_mismatch_logged) {
    dev->letter_mismatch_logged = true;
    GW_NOTICE(MOD, "%s: registered with b=%s over the %s link; it is reached over that link and "
                   "the server sees b= with %c", dev->endpoint,
              params.binding[0] ? params.binding : "U (default)", dev->binding->ops->name,
              implied);
  }
  gw_rewrite_rules_t rules = {
      .profile = uconf ? uconf->profile : GW_PROFILE_LWM2M11,
      .sleepy = dev->queue_mode,
      .endpoint = dev->conf ? dev->conf->endpoint : NULL,
      .link_letter = implied};
  if (gw_profile_rewrite_query(up, is_register, &rules, storage) != 0)
    return GW_ERR_TOOBIG;
  return replace_queries(up, storage);
}

/* Issue 11, "no one can act for a device they are not": a registration is updated or ended only
 * by the device that holds it, known by its identity on its binding (its address: an MSISDN, a
 * UE address, an MQTT topic, an HTTP endpoint the binding authenticated). A location another
 * device holds is refused 4.03; a location nobody holds 4.04, which makes an honest client
 * register again (LwM2M Core 6.2.2). Returns 0 when dev may go on. */
static uint8_t registration_refusal(gw_gateway_t *gw, gw_device_t *dev,
                                    const gw_coap_msg_t *req) {
  char location[sizeof(dev->location)];
  gw_coap_path_str(req, GW_COAP_OPT_URI_PATH, location, sizeof(location));
  if (dev->registered && strcmp(dev->location, location) == 0)
    return 0;
  gw_device_t *holder = gw_device_find_registration(&gw->devices, upstream_key(gw, dev),
                                                    location);
  if (!holder && !dev->registered)
    return GW_COAP_NOT_FOUND;
  gw->metrics.impersonations++;
  GW_WARN_LIMITED(MOD, "%s at %s: %s of %s refused: the registration is %s's", dev->endpoint,
                  dev->addr.text, req->code == GW_COAP_DELETE ? "De-register" : "Update",
                  location, holder ? holder->endpoint : "another one");
  return GW_COAP_FORBIDDEN;
}

/* A Register from a device not in the configuration may not take the endpoint name of one that
 * is: the server would move that device's registration to it. (A listed device's ep= is
 * replaced by its configured name; an unlisted one has no identity but its address.) */
static uint8_t endpoint_refusal(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req) {
  gw_reg_params_t params;
  if (dev->conf || gw_reg_params_parse(req, &params) != 0 || !params.endpoint[0])
    return 0;
  for (size_t i = 0; i < gw->config.device_count; i++) {
    if (strcmp(gw->config.devices[i].endpoint, params.endpoint) == 0) {
      gw->metrics.impersonations++;
      GW_WARN_LIMITED(MOD, "%s: Register as \"%s\", a configured device elsewhere, refused",
                      dev->addr.text, params.endpoint);
      return GW_COAP_FORBIDDEN;
    }
  }
  return 0;
}

/* LwM2M Core 6.2.2: an Update without parameters tells the server where the client is now (the
 * server keeps the registration's address from the Update's source). Sent by the gateway for
 * the device on its session; the answer is the gateway's. */
static void own_update(gw_gateway_t *gw, gw_device_t *dev) {
  for (size_t i = 0; i < GW_MAX_UPLINK; i++)
    if (dev->uplink[i].used && dev->uplink[i].own)
      return; /* one on its way already */
  gw_coap_msg_t m;
  gw_coap_msg_init(&m, GW_COAP_CON, GW_COAP_POST, next_upstream_mid(gw, dev));
  uint8_t token[4];
  gw_random_bytes(token, sizeof(token));
  gw_coap_set_token(&m, token, sizeof(token));
  char path[sizeof(dev->location)];
  snprintf(path, sizeof(path), "%s", dev->location);
  for (char *seg = strtok(path, "/"); seg; seg = strtok(NULL, "/"))
    if (gw_coap_add_option(&m, GW_COAP_OPT_URI_PATH, (const uint8_t *)seg, strlen(seg)) != 0)
      return;
  gw_uplink_xchg_t *x = gw_uplink_add(dev, &m, gw_now_ms());
  if (!x)
    return;
  x->own = true;
  x->is_update = true;
  GW_NOTICE(MOD, "%s: the server knows it at port %u; an Update moves it to port %u",
            dev->endpoint, dev->registered_port, dev->local_port);
  if (gw_upstream_send(dev, &m) != GW_OK)
    gw_uplink_remove(x);
}

static void own_update_answered(gw_gateway_t *gw, gw_device_t *dev, gw_uplink_xchg_t *x,
                                const gw_coap_msg_t *resp) {
  char code[8];
  if (resp->code == GW_COAP_CHANGED) {
    dev->registered_port = dev->local_port;
    save_device_now(gw, dev);
    GW_NOTICE(MOD, "%s: the server reaches it at port %u again", dev->endpoint,
              dev->local_port);
  } else {
    GW_WARN(MOD, "%s: the server answered %s to the gateway's Update; the device's own next "
                 "Update or Register settles it", dev->endpoint, gw_coap_code_str(resp->code, code));
  }
  gw_uplink_remove(x);
  uplink_drain(gw, dev);
}

static void session_renew_due(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_device_t *dev = arg;
  gw_gateway_t *gw = dev->gateway;
  if (!dev->registered)
    return; /* renewed on the device's next message, as any session */
  gw_upstream_close(gw->upstream, dev);
  dev->local_port = 0; /* the server may hold a dead association for the old one */
  if (gw_upstream_open(gw->upstream, dev) == GW_OK)
    save_session(gw, dev);
}

void gw_relay_upstream_lost(gw_gateway_t *gw, gw_device_t *dev) {
  if (gw_timer_active(&dev->session_renew_timer))
    return; /* a DTLS error is followed by its close: one renewal */
  gw_timer_init(&dev->session_renew_timer, session_renew_due, dev);
  gw_timer_start(gw->loop, &dev->session_renew_timer, 0); /* libcoap is inside the session */
}

/* The rest of a device request's way upstream, once it is its turn: refusals, the session, the
 * rewritten registration, then the server. Borrows req. row: its row in the state database
 * (accepted on receipt), now owned by the exchange; 0 for none. */
static void uplink_retry_later(gw_gateway_t *gw, gw_device_t *dev, gw_uplink_xchg_t *x);

static void uplink_relay(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req,
                         int64_t row, uint64_t received_ms, const uint8_t *data, size_t len) {
  uint64_t now = gw_now_ms();
  const char *refused = NULL;
  uint8_t refusal = 0;
  bool is_register = req->code == GW_COAP_POST && path_is(req, "rd", 1);
  bool is_update = req->code == GW_COAP_POST && path_is(req, "rd", 2);
  bool is_deregister = req->code == GW_COAP_DELETE && path_is(req, "rd", 2);
  if (gw_uplink_find(dev, req->token, req->token_len)) {
    GW_WARN_LIMITED(MOD, "%s: token reused while a request is in flight; refused", dev->endpoint);
    refusal = GW_COAP_SERVICE_UNAVAILABLE;
    refused = "token already in use by a request in flight";
  } else if ((refusal = is_register                  ? endpoint_refusal(gw, dev, req)
                        : is_update || is_deregister ? registration_refusal(gw, dev, req)
                                                     : 0)) {
    refused = refusal == GW_COAP_NOT_FOUND ? "no registration at this location"
                                           : "not this device's registration";
  } else if (gw_upstream_open(gw->upstream, dev) != GW_OK) {
    gw->metrics.upstream_failures++;
    refusal = GW_COAP_SERVICE_UNAVAILABLE;
    refused = "no session to the LwM2M server";
  }
  gw_coap_msg_t up = *req;
  gw_query_list_t queries;
  if (!refusal && (is_register || is_update) &&
      rewrite_registration(gw, dev, &up, is_register, &queries) != GW_OK) {
    GW_WARN_LIMITED(MOD, "%s: registration parameters could not be rewritten", dev->endpoint);
    refusal = GW_COAP_BAD_REQUEST;
    refused = "registration parameters not understood";
  }
  gw_uplink_xchg_t *x = refusal ? NULL : gw_uplink_add(dev, req, now);
  uint8_t *copy = x && row ? malloc(len) : NULL;
  if (refusal || !x || (row && !copy)) {
    free(copy);
    gw_state_forget_uplink(gw->state, row);
    device_reject_request(gw, dev, req, refusal ? refusal : GW_COAP_SERVICE_UNAVAILABLE,
                          refused ? refused : "out of memory");
    return;
  }
  save_session(gw, dev);
  if (copy)
    memcpy(copy, data, len);
  x->is_register = is_register;
  x->is_update = is_update;
  x->is_deregister = is_deregister;
  x->state_id = row;
  x->received_ms = received_ms;
  x->datagram = copy;
  x->datagram_len = copy ? len : 0;
  up.mid = upstream_mid_for(gw, dev, req->mid);
  /* RFC 7252 5.7: a proxy forwards a request as an exchange of its own. Each goes upstream
   * confirmable, so what the gateway accepted is retransmitted and its failure reported,
   * instead of vanishing like an unanswered NON; the device still gets a NON answer. */
  up.type = GW_COAP_CON;
  if (gw_upstream_send(dev, &up) != GW_OK) {
    if (row) { /* accepted on receipt: it waits and is tried again, not dropped */
      uplink_retry_later(gw, dev, x);
      gw_uplink_remove(x);
      return;
    }
    x->state_id = 0;
    gw_uplink_remove(x);
    device_reject_request(gw, dev, req, GW_COAP_SERVICE_UNAVAILABLE,
                          "the LwM2M server could not be reached");
    return;
  }
  gw->metrics.uplink_requests++;
}

/* ---- requests waiting for their turn (device.h gw_uplink_waiting_t) ---- */

static void uplink_retry_due(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_device_t *dev = arg;
  uplink_drain(dev->gateway, dev);
}

static gw_uplink_waiting_t *waiting_new(int64_t row, uint64_t received_ms, const uint8_t *data,
                                        size_t len) {
  gw_uplink_waiting_t *w = malloc(sizeof(*w) + len);
  if (!w)
    return NULL;
  *w = (gw_uplink_waiting_t){.state_id = row, .received_ms = received_ms, .len = len};
  memcpy(w->data, data, len);
  return w;
}

static void waiting_append(gw_device_t *dev, gw_uplink_waiting_t *w) {
  w->next = NULL;
  if (dev->waiting_last)
    dev->waiting_last->next = w;
  else
    dev->waiting = w;
  dev->waiting_last = w;
  dev->waiting_count++;
}

static void waiting_push_front(gw_device_t *dev, gw_uplink_waiting_t *w) {
  w->next = dev->waiting;
  dev->waiting = w;
  if (!dev->waiting_last)
    dev->waiting_last = w;
  dev->waiting_count++;
}

static gw_uplink_waiting_t *waiting_pop(gw_device_t *dev) {
  gw_uplink_waiting_t *w = dev->waiting;
  if (!w)
    return NULL;
  dev->waiting = w->next;
  if (!dev->waiting)
    dev->waiting_last = NULL;
  dev->waiting_count--;
  return w;
}

/* Requests go upstream in the order they came, as slots free up, unless a retry is pending. */
static void uplink_drain(gw_gateway_t *gw, gw_device_t *dev) {
  uint64_t now = gw_now_ms();
  while (dev->waiting && !gw_timer_active(&dev->uplink_retry_timer) &&
         gw_uplink_has_room(dev, now)) {
    gw_uplink_waiting_t *w = waiting_pop(dev);
    gw_coap_msg_t req;
    if (gw_coap_parse(w->data, w->len, &req) == GW_COAP_PARSE_OK)
      uplink_relay(gw, dev, &req, w->state_id, w->received_ms, w->data, w->len);
    else
      gw_state_forget_uplink(gw->state, w->state_id);
    free(w);
  }
}

/* Waits for its turn behind requests in flight; 5.03 when the device's queue is full. */
static void uplink_wait(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req,
                        int64_t row, const uint8_t *data, size_t len) {
  gw_uplink_waiting_t *w = dev->waiting_count < gw->config.gateway.uplink_queue_length
                               ? waiting_new(row, gw_now_ms(), data, len)
                               : NULL;
  if (!w) {
    gw->metrics.uplink_refused++;
    gw_state_forget_uplink(gw->state, row);
    GW_WARN_LIMITED(MOD, "%s: %u requests already wait for their turn; refused with 5.03",
                    dev->endpoint, dev->waiting_count);
    device_reject_request(gw, dev, req, GW_COAP_SERVICE_UNAVAILABLE,
                          "too many requests waiting; try again later");
    return;
  }
  gw->metrics.uplink_queued++;
  waiting_append(dev, w);
}

/* A request accepted on receipt whose server could not be reached: it waits, retried with
 * back-off from 5 s to 5 min, until gateway.uplink_hold_s after it came. */
static void uplink_retry_later(gw_gateway_t *gw, gw_device_t *dev, gw_uplink_xchg_t *x) {
  uint64_t now = gw_now_ms();
  gw_uplink_waiting_t *w =
      now - x->received_ms < (uint64_t)gw->config.gateway.uplink_hold_s * 1000u
          ? waiting_new(x->state_id, x->received_ms, x->datagram, x->datagram_len)
          : NULL;
  if (!w) {
    gw->metrics.uplink_expired++;
    GW_WARN_LIMITED(MOD, "%s: a request accepted %llu s ago never reached the server; dropped",
                    dev->endpoint, (unsigned long long)((now - x->received_ms) / 1000u));
    gw_state_forget_uplink(gw->state, x->state_id);
    return;
  }
  gw->metrics.uplink_retries++;
  waiting_push_front(dev, w);
  if (gw_timer_active(&dev->uplink_retry_timer))
    return; /* another request of the device already failed: one retry for all */
  dev->uplink_retry_ms = dev->uplink_retry_ms ? dev->uplink_retry_ms * 2 : 5000u;
  if (dev->uplink_retry_ms > 300000u)
    dev->uplink_retry_ms = 300000u;
  gw_timer_init(&dev->uplink_retry_timer, uplink_retry_due, dev);
  gw_timer_start(gw->loop, &dev->uplink_retry_timer, dev->uplink_retry_ms);
  GW_NOTICE_LIMITED(MOD, "%s: server unreachable; the request waits (retry in %u s)",
                    dev->endpoint, dev->uplink_retry_ms / 1000u);
}

/* A request from the device: answered from the duplicate cache (RFC 7252 4.5), else saved
 * first when its link acknowledged it on receipt (nothing else would send it again after a
 * restart), then relayed, or queued behind what is in flight. Borrows req and data. */
static void uplink_request(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *req,
                           const uint8_t *data, size_t len) {
  uint64_t now = gw_now_ms();
  const uint8_t *answer = NULL;
  size_t answer_len = 0;
  switch (gw_dedup_check(&dev->uplink_dedup, req->mid, req->type == GW_COAP_CON, now, &answer,
                         &answer_len)) {
  case GW_DEDUP_IN_PROGRESS:
    gw->metrics.duplicates++;
    return;
  case GW_DEDUP_ANSWERED:
    gw->metrics.duplicates++;
    if (answer && gw_binding_send(dev->binding, &dev->addr, answer, answer_len) == GW_OK)
      gw->metrics.datagrams_out++;
    return;
  case GW_DEDUP_NEW:
    break;
  }
  int64_t row = 0;
  if (gw_binding_policy(dev->binding)->accepts_on_receipt) {
    if (!dev->state_id)
      gw_state_save_device(gw->state, dev);
    row = gw_state_save_uplink(gw->state, dev, data, len, gw_wall_s());
    gw_state_commit(gw->state); /* before the link's acknowledgement (the SMS deleted ...) */
  }
  if (dev->waiting || !gw_uplink_has_room(dev, now) ||
      gw_timer_active(&dev->uplink_retry_timer))
    uplink_wait(gw, dev, req, row, data, len);
  else
    uplink_relay(gw, dev, req, row, now, data, len);
}

void gw_relay_server_response(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *resp) {
  gw_uplink_xchg_t *x = gw_uplink_find(dev, resp->token, resp->token_len);
  if (!x) {
    GW_DEBUG(MOD, "%s: server response matches no request in flight; ignored", dev->endpoint);
    return;
  }
  if (x->own) {
    own_update_answered(gw, dev, x, resp);
    return;
  }
  if (x->is_register && resp->code == GW_COAP_CREATED) {
    gw_coap_path_str(resp, GW_COAP_OPT_LOCATION_PATH, dev->location, sizeof(dev->location));
    dev->registered = true;
    dev->registered_at = gw_wall_s();
    dev->registered_port = dev->local_port;
    gw_admission_registered(gw, dev, registration_lifetime(dev), upstream_key(gw, dev));
    save_device_now(gw, dev); /* before the device hears 2.01 */
    GW_NOTICE(MOD, "%s: registered at %s (upstream port %u)", dev->endpoint, dev->location,
              gw_upstream_local_port(dev));
  } else if (x->is_update && dev->registered && resp->code == GW_COAP_CHANGED) {
    dev->registered_at = gw_wall_s();
    dev->registration_changed |= dev->registered_port != dev->local_port;
    dev->registered_port = dev->local_port;
    gw_admission_registered(gw, dev, registration_lifetime(dev), upstream_key(gw, dev));
    /* Only a renewal: saved with the loop's next commit, at most once a minute (state.h); a
     * lost one makes the restore keep the registration a little longer, never drop it. */
    if (dev->registration_changed || dev->registered_at - dev->saved_registered_at >=
                                         gw_state_renewal_slack_s(registration_lifetime(dev)))
      save_device(gw, dev);
  } else if (x->is_deregister && GW_COAP_CODE_CLASS(resp->code) == 2) {
    dev->registered = false;
    gw_admission_deregistered(gw, dev);
    gw_state_save_device(gw->state, dev);
    GW_NOTICE(MOD, "%s: de-registered", dev->endpoint);
  }
  device_answer(gw, dev, x, resp, resp->code);
  gw_state_forget_uplink(gw->state, x->state_id);
  gw_uplink_remove(x);
  dev->uplink_retry_ms = 0; /* the server is reachable */
  uplink_drain(gw, dev);
}

void gw_relay_upstream_nack(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *sent,
                            gw_nack_t reason) {
  /* An ICMP error (the server's port closed, no route) is not final: libcoap keeps the
   * confirmable message and retransmits it (RFC 7252 4.2), so a server back within the
   * retransmission window still gets it. */
  if (reason == GW_NACK_UNREACHABLE)
    return;
  if (gw_coap_is_request(sent)) {
    gw_uplink_xchg_t *x = gw_uplink_find(dev, sent->token, sent->token_len);
    if (!x)
      return;
    if (x->own) { /* the device's own next Update or Register settles it */
      gw_uplink_remove(x);
      return;
    }
    GW_NOTICE_LIMITED(MOD, "%s: server did not take the request (%s)", dev->endpoint,
                      reason == GW_NACK_TIMEOUT ? "timeout"
                      : reason == GW_NACK_RESET ? "reset" : "failed");
    if (x->state_id && reason != GW_NACK_RESET) {
      uplink_retry_later(gw, dev, x); /* accepted: it waits for the server */
    } else {
      uint8_t code = reason == GW_NACK_TIMEOUT ? GW_COAP_GATEWAY_TIMEOUT
                                               : GW_COAP_SERVICE_UNAVAILABLE;
      if (code == GW_COAP_GATEWAY_TIMEOUT)
        gw->metrics.gateway_timeouts++;
      else
        gw->metrics.unavailable++;
      device_answer(gw, dev, x, NULL, code);
      gw_state_forget_uplink(gw->state, x->state_id);
    }
    gw_uplink_remove(x);
    uplink_drain(gw, dev);
    return;
  }
  /* RFC 7641 3.6: an RST to a notification cancels the observation. */
  gw_observation_t *o = gw_observation_find(dev, sent->token, sent->token_len);
  if (o && reason == GW_NACK_RESET) {
    GW_INFO(MOD, "%s: server reset a notification of %s; observation cancelled", dev->endpoint,
            o->path);
    o->cancelled_upstream = true;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* device responses and notifications                                                          */

/* RFC 7641 4.2: a notification relayed on the server's Observe relationship. */
static void relay_notification(gw_gateway_t *gw, gw_device_t *dev, gw_observation_t *o,
                               const gw_coap_msg_t *note) {
  if (o->cancelled_upstream) {
    /* The server cancelled by RST: tell the device the same way (RFC 7641 3.6). */
    device_send_empty(gw, dev, GW_COAP_RST, note->mid, false);
    observation_end(gw, dev, o);
    return;
  }
  gw_coap_msg_t up = *note;
  up.mid = upstream_mid_for(gw, dev, note->mid);
  if (gw_upstream_send(dev, &up) != GW_OK) {
    GW_WARN(MOD, "%s: notification of %s could not be relayed", dev->endpoint, o->path);
    return;
  }
  o->notifications++;
  gw->metrics.notifications++;
  if (note->type == GW_COAP_CON)
    device_send_empty(gw, dev, GW_COAP_ACK, note->mid, true);
}

static void device_separate_response(gw_gateway_t *gw, gw_device_t *dev,
                                     const gw_coap_msg_t *resp) {
  const uint8_t *answer = NULL;
  size_t answer_len = 0;
  gw_dedup_verdict_t v = gw_dedup_check(&dev->uplink_dedup, resp->mid,
                                        resp->type == GW_COAP_CON, gw_now_ms(), &answer,
                                        &answer_len);
  if (v != GW_DEDUP_NEW) {
    gw->metrics.duplicates++;
    if (v == GW_DEDUP_ANSWERED && answer &&
        gw_binding_send(dev->binding, &dev->addr, answer, answer_len) == GW_OK)
      gw->metrics.datagrams_out++;
    return;
  }
  gw_downlink_xchg_t *x = gw_downlink_find_by_token(dev, resp->token, resp->token_len);
  if (x) {
    if (resp->type == GW_COAP_CON)
      device_send_empty(gw, dev, GW_COAP_ACK, resp->mid, true);
    else
      gw_dedup_answer(&dev->uplink_dedup, resp->mid, NULL, 0);
    downlink_complete(gw, x, resp);
    return;
  }
  gw_observation_t *o = gw_observation_find(dev, resp->token, resp->token_len);
  if (o) {
    relay_notification(gw, dev, o, resp);
    if (resp->type != GW_COAP_CON)
      gw_dedup_answer(&dev->uplink_dedup, resp->mid, NULL, 0);
    return;
  }
  /* RFC 7252 4.2/4.3 and RFC 7641 4.2: a response nobody waits for is rejected with RST. */
  GW_DEBUG(MOD, "%s: response with unknown token rejected", dev->endpoint);
  device_send_empty(gw, dev, GW_COAP_RST, resp->mid, true);
}

static void device_response(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *resp) {
  if (resp->type != GW_COAP_ACK) {
    device_separate_response(gw, dev, resp);
    return;
  }
  gw_downlink_xchg_t *x = gw_downlink_find_by_mid(dev, resp->mid);
  if (!x) {
    gw->metrics.duplicates++; /* a late or repeated piggybacked answer */
    return;
  }
  downlink_complete(gw, x, resp);
}

static void device_empty_message(gw_gateway_t *gw, gw_device_t *dev, const gw_coap_msg_t *m) {
  if (m->type == GW_COAP_CON) {
    /* RFC 7252 4.3: CoAP ping, answered with RST. */
    device_send_empty(gw, dev, GW_COAP_RST, m->mid, false);
    return;
  }
  gw_downlink_xchg_t *x = gw_downlink_find_by_mid(dev, m->mid);
  if (!x)
    return;
  if (m->type == GW_COAP_ACK) {
    /* The device will answer separately (RFC 7252 5.2.2); keep waiting under the deadline. */
    x->state = GW_DOWN_SEPARATE;
    gw_timer_stop(gw->loop, &x->retransmit_timer);
  } else if (m->type == GW_COAP_RST) {
    GW_NOTICE(MOD, "%s: device reset %s", dev->endpoint, x->path);
    server_answer_code(gw, x, GW_COAP_SERVICE_UNAVAILABLE);
  }
}

/* RFC 7252 4.2: a CON whose header is readable but whose body is not may be answered with RST
 * so the device stops retransmitting it; not where each answer costs money (issue 11: a flood
 * of malformed SMS made the gateway send hundreds of SMS). */
static void reject_malformed(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *from,
                             const uint8_t *data, size_t len, gw_coap_parse_result_t why) {
  gw->metrics.malformed++;
  GW_WARN_LIMITED(MOD, "%s: malformed CoAP from %s (%zu bytes): %s; dropped (%llu so far)",
          b->ops->name, from->text, len, gw_coap_parse_result_str(why),
          (unsigned long long)gw->metrics.malformed);
  if (len >= 4 && (data[0] >> 6) == 1 && ((data[0] >> 4) & 3) == GW_COAP_CON)
    reject_stateless(gw, b, from, (uint16_t)(data[2] << 8 | data[3]));
}

/* The device a message from `from` belongs to. Only a request makes an address a device
 * (admission.h); a CoAP ping from elsewhere is answered with RST without one (RFC 7252 4.3),
 * anything else from elsewhere is dropped. */
static gw_device_t *device_for_message(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *from,
                                       const gw_coap_msg_t *msg) {
  gw_device_t *dev = gw_device_find(&gw->devices, b, from);
  if (dev)
    return dev;
  if (!gw_coap_is_request(msg)) {
    gw->metrics.rejected++;
    if (gw_coap_is_empty(msg) && msg->type == GW_COAP_CON)
      reject_stateless(gw, b, from, msg->mid);
    return NULL;
  }
  const char *refusal = NULL;
  dev = gw_admit_device(gw, b, from, &refusal);
  if (!dev) {
    gw->metrics.rejected++;
    if (refusal)
      refuse_stateless(gw, b, from, msg, refusal);
  }
  return dev;
}

void gw_relay_device_datagram(gw_gateway_t *gw, gw_binding_t *b, const gw_baddr_t *from,
                              const uint8_t *data, size_t len) {
  gw->metrics.datagrams_in++;
  gw_coap_msg_t msg;
  gw_coap_parse_result_t pr = gw_coap_parse(data, len, &msg);
  if (pr != GW_COAP_PARSE_OK) {
    reject_malformed(gw, b, from, data, len, pr);
    return;
  }
  gw_device_t *dev = device_for_message(gw, b, from, &msg);
  if (!dev)
    return;
  dev->last_heard_ms = gw_now_ms();
  gw_admission_touch(gw, dev);
  dev->wake_sent = false;
  if (gw_coap_is_empty(&msg))
    device_empty_message(gw, dev, &msg);
  else if (gw_coap_is_request(&msg))
    uplink_request(gw, dev, &msg, data, len);
  else if (gw_coap_is_response(&msg))
    device_response(gw, dev, &msg);
  else {
    /* 1.xx and other reserved classes (RFC 7252 4.2 "rejected"), silently where an answer
     * costs money. */
    gw->metrics.malformed++;
    if (msg.type == GW_COAP_CON && !gw_binding_policy(b)->costly)
      device_send_empty(gw, dev, GW_COAP_RST, msg.mid, false);
  }
  downlink_flush_queue(gw, dev);
}

void gw_relay_restore_uplink(gw_gateway_t *gw, gw_device_t *dev, int64_t id, const uint8_t *data,
                             size_t len, int64_t received_at) {
  gw_coap_msg_t req;
  int64_t age_s = gw_wall_s() - received_at;
  uint64_t now = gw_now_ms();
  uint64_t age_ms = age_s > 0 ? (uint64_t)age_s * 1000u : 0;
  gw_uplink_waiting_t *w = gw_coap_parse(data, len, &req) == GW_COAP_PARSE_OK
                               ? waiting_new(id, now > age_ms ? now - age_ms : 0, data, len)
                               : NULL;
  if (!w) {
    gw_state_forget_uplink(gw->state, id);
    return;
  }
  waiting_append(dev, w);
  /* The device's retransmissions of it are duplicates in progress (RFC 7252 4.5). */
  const uint8_t *answer;
  size_t answer_len;
  gw_dedup_check(&dev->uplink_dedup, req.mid, req.type == GW_COAP_CON, now, &answer,
                 &answer_len);
}

/* After a restart, on a link whose answers die with the process: the server's requests that
 * were on their way to the device will get no answer from it. Sent again where that is safe;
 * otherwise the device may have acted on it, and 5.04 says the gateway does not know. */
static void downlink_resume(gw_gateway_t *gw, gw_device_t *dev) {
  if (!gw_binding_policy(dev->binding)->answers_die_with_process)
    return;
  for (size_t i = 0; i < dev->downlink_capacity; i++) {
    gw_downlink_xchg_t *x = &dev->downlink[i];
    if (!x->used || (x->state != GW_DOWN_INFLIGHT && x->state != GW_DOWN_SEPARATE))
      continue;
    if (idempotent_method(x->request_len > 1 ? x->request[1] : 0)) {
      GW_INFO(MOD, "%s: %s was on its way to the device at the stop; sent again",
              dev->endpoint, x->path);
      downlink_transmit(gw, x);
    } else {
      GW_NOTICE(MOD, "%s: %s was on its way to the device at the stop and is not idempotent; "
                     "not sent twice", dev->endpoint, x->path);
      server_answer_code(gw, x, GW_COAP_GATEWAY_TIMEOUT);
    }
  }
}

void gw_relay_resume(gw_gateway_t *gw, gw_device_t *dev) {
  if (dev->upstream)
    save_session(gw, dev);
  downlink_resume(gw, dev);
  uplink_drain(gw, dev);
}

void gw_relay_device_abort(gw_gateway_t *gw, gw_device_t *dev) {
  dev->aborting = true;
  for (size_t i = 0; i < dev->downlink_capacity; i++)
    if (dev->downlink[i].used)
      server_answer_code(gw, &dev->downlink[i], GW_COAP_SERVICE_UNAVAILABLE);
  for (size_t i = 0; i < GW_MAX_UPLINK; i++) {
    if (!dev->uplink[i].used)
      continue;
    gw->metrics.unavailable++;
    device_answer(gw, dev, &dev->uplink[i], NULL, GW_COAP_SERVICE_UNAVAILABLE);
    gw_uplink_remove(&dev->uplink[i]);
  }
  dev->aborting = false;
}
