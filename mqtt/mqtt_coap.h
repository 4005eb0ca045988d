/* lwm2m-gw: LwM2M over MQTT (Transport 1.2.1 section 8) <-> CoAP (RFC 7252, LwM2M Core 1.2).
 *
 * Pure translation between one decoded LwM2M-over-MQTT message (mqtt_cbor_msg_t) and one CoAP
 * message (gw_coap_msg_t), plus the topic scheme of 8.2. No Paho, no state, no allocation: the
 * `mqtt` binding (mqtt_binding.c) keeps the tables (tokens, observations, Location) and calls
 * these functions. Strings that have to be built (Uri-Query "lt=300", Uri-Path segments, float
 * attributes) go into the caller's scratch buffer; the resulting message borrows from the input
 * message, the scratch buffer and the caller's strings, which must outlive its use.
 */
#ifndef MQTT_COAP_H
#define MQTT_COAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap_msg.h"
#include "lwm2m_cbor.h"

/* Longest endpoint name taken from a topic (bytes). */
#define MQTT_EP_MAX 128

/* Room for built strings; 2 KiB holds every query and path a CoAP message can carry here.
 * The functions below append at `used` (so several built messages can live side by side); the
 * caller sets used = 0 before reusing the buffer once those messages are gone. */
typedef struct {
  uint8_t buf[2048];
  size_t used;
} mqtt_coap_scratch_t;

/* ---- topics (8.2): topic = [ PREFIX "/" ] "lwm2m/" ( "bs" / "rd" ) "/" ENDPOINT ---- */

/* Splits topic against the configured prefixes (prefixes[i] may be "" for "no prefix"; the
 * longest matching prefix wins). On success sets *out_prefix_index, *out_iface and the endpoint
 * (pointer into topic, length) and returns 0. Returns -1 when the topic matches no prefix or has
 * the wrong shape, -2 when the endpoint is invalid: empty, longer than MQTT_EP_MAX, not UTF-8
 * (RFC 3629), or containing '/', '+', '#' or a control character (U+0000..U+001F, U+007F). */
int mqtt_topic_parse(const char *topic, const char *const *prefixes, size_t prefix_count,
                     size_t *out_prefix_index, mqtt_cbor_iface_t *out_iface,
                     const char **out_ep, size_t *out_ep_len);

/* Writes "[PREFIX/]lwm2m/{bs|rd}/ENDPOINT" into out; returns its length, or 0 if it does not
 * fit. An empty prefix writes no leading "/". */
size_t mqtt_topic_build(const char *prefix, mqtt_cbor_iface_t iface, const char *ep,
                        char *out, size_t out_size);

/* The subscription filter "[PREFIX/]lwm2m/{bs|rd}/#"; returns its length, or 0. */
size_t mqtt_topic_filter(const char *prefix, mqtt_cbor_iface_t iface, char *out,
                         size_t out_size);

/* Tokens: an MQTT token (uint64) is the 8-byte big-endian CoAP token of gw_coap_token_from_u64
 * (coap_msg.h). Uplink requests keep the device's MQTT token as their CoAP token, so the
 * server's answer carries it back with no table. */

/* ---- uplink: operations a device publishes (client -> server) ---- */

/* What an uplink translation needs besides the message. */
typedef struct {
  const char *endpoint;  /* from the topic; becomes ep= of Register / Bootstrap-Request */
  const char *location;  /* "/rd/5a3f" from the Register's 2.01, NULL before */
} mqtt_coap_uplink_ctx_t;

/* Translates a validated device request into a CON CoAP request with message ID mid and the
 * token from gw_coap_token_from_u64(msg->token):
 *  rd: Register (6)      -> POST /rd?ep=EP&lt=&lwm2m=&b=&sms=, Content-Format 40, payload
 *                           (links); ep key, if present, must equal ctx->endpoint
 *      Update (7)        -> POST {location}?lt=&b=&sms=, payload links if present (CF 40)
 *      De-register (8)   -> DELETE {location}
 *      Send (24)         -> POST /dp, Content-Format ct, payload
 *  bs: Bootstrap-Request (0)      -> POST /bs?ep=EP[&pct=N]
 *      Bootstrap-Pack-Request (6) -> GET /bspack?ep=EP, Accept pct when given
 * Notify (23) is not handled here (mqtt_coap_notification). Returns 0, or the 8.5 result to
 * answer the device with instead: 400 (ep mismatch, bad value), 404 (Update / De-register
 * before a Register: no location), 501 (any other operation code).
 * Clarifications: the ep check applies to every operation that sends ep= (also both bootstrap
 * requests). "Bad value" includes pct / ct above 65535 (no Content-Format) and strings that do
 * not fit the scratch buffer; a message without operation (a response) is 400. The
 * Bootstrap-Pack-Request payload is not sent: 8.3.1 gives it no encoding for the CoAP "acc"
 * query. NULL arguments, or no ctx->endpoint where ep= is needed, give 500. */
int mqtt_coap_uplink_request(const mqtt_cbor_msg_t *msg, mqtt_cbor_iface_t iface,
                             const mqtt_coap_uplink_ctx_t *ctx, uint16_t mid,
                             gw_coap_msg_t *out, mqtt_coap_scratch_t *scratch);

/* A Notify (23) as a CON CoAP notification: code 2.05, the observation's CoAP token, Observe
 * = observe_seq (24 bits used), Content-Format ct when present, payload. Returns 0 or 400 (not
 * a Notify, ct above 65535, token longer than 8 bytes, scratch full). */
int mqtt_coap_notification(const mqtt_cbor_msg_t *msg, const uint8_t *coap_token,
                           size_t token_len, uint32_t observe_seq, uint16_t mid,
                           gw_coap_msg_t *out, mqtt_coap_scratch_t *scratch);

/* The CoAP answer to an uplink request as an 8.4 generic response: result from the CoAP code
 * (mqtt_cbor_result_from_coap; a code outside tables 8.5 gives 500), token, ct from
 * Content-Format, payload. out borrows resp's payload. Returns 0, or MQTT_CBOR_ERR_RESULT when
 * the code was replaced by 500 (the caller logs it). */
int mqtt_coap_response_to_mqtt(const gw_coap_msg_t *resp, uint64_t token, mqtt_cbor_msg_t *out);

/* ---- downlink: requests of the server (server -> client) ---- */

/* Which operation a server CoAP request is (LwM2M Core 1.2 table 6.4-x, 6.3):
 *  rd: GET + Observe 0 -> Observe (20); GET + Observe 1 -> Cancel-Observe (22);
 *      GET + Accept 40 -> Discover (11); GET -> Read (9);
 *      FETCH + Observe 0 -> Observe-Composite (21); FETCH + Observe 1 -> Cancel-Observe (22);
 *      FETCH -> Read-Composite (10); iPATCH -> Write-Composite (15);
 *      PUT with payload -> Write Replace (12); PUT without payload -> Write-Attributes (14);
 *      POST /O -> Create (17); POST /O/I -> Write Partial Update (13);
 *      POST /O/I/R with a Content-Format other than text/plain (0) -> Write Partial Update (13),
 *      else -> Execute (16); DELETE -> Delete (18).
 *  bs: PUT -> Bootstrap-Write (1); GET + Accept 40 -> Bootstrap-Discover (4);
 *      GET -> Bootstrap-Read (2); DELETE -> Bootstrap-Delete (3);
 *      POST /bs -> Bootstrap-Finish (5).
 * Returns 0 with *out_op set, or the CoAP code to answer the server with: 4.05 Method Not
 * Allowed (e.g. PATCH, or POST to a path with more than 3 segments), 4.15 for composite
 * operations whose paths are not SenML-ETCH CBOR (Content-Format 322).
 * Clarifications: "PUT with payload" means a payload or a Content-Format option (an empty
 * value written as text/plain is still a Write). Transport 6.4.4 answers paths that break the
 * LwM2M rules with 4.05: so do a non-numeric Uri-Path segment or one above 65535, more than 4
 * segments, PUT / POST / DELETE on "/" in rd, and FETCH / iPATCH with a Uri-Path (composites
 * address the root). An Observe value other than 0 or 1 is 4.00. */
int mqtt_coap_downlink_op(const gw_coap_msg_t *req, mqtt_cbor_iface_t iface,
                          uint64_t *out_op);

/* Builds the MQTT operation op (from mqtt_coap_downlink_op) with token:
 *  uri from Uri-Path ("/3/0/1"; "/" when none), ct from Content-Format, payload from the body
 *  (composites: paths = body for 10 and 21; 15 takes ct and payload), Discover depth from the
 *  Uri-Query "depth=N", Write-Attributes keys from the Uri-Query (pmin, pmax, gt, st, epmin,
 *  epmax, edge, hqmax). Cancel-Observe carries only operation and token (the caller passes the
 *  observation's token). out borrows from req and scratch.
 * Returns 0, or the CoAP code to answer the server with: 4.00 for a malformed query value or an
 * unknown attribute, 5.01 Not Implemented for an attribute that table 8.7-1 cannot carry ("lt",
 * or an attribute without value, which would remove it: LwM2M Core 5.1.2).
 * Clarifications: "con" (Core 1.2) has no key either: 5.01. An attribute given twice, and a
 * mandatory key of the 8.3 row left missing (e.g. a Write without Content-Format), are 4.00.
 * The query is read only for Discover and Write-Attributes; other operations ignore it (the
 * 8.3.4 Observe has no key for attributes). 4.05 for a non-LwM2M path as above, 5.00 for an op
 * that mqtt_coap_downlink_op never returns or a full scratch. */
int mqtt_coap_downlink_request(const gw_coap_msg_t *req, uint64_t op, uint64_t token,
                               mqtt_cbor_msg_t *out, mqtt_coap_scratch_t *scratch);

/* The device's 8.4 generic response as the CoAP answer to the server's request: type ACK, the
 * request's mid and CoAP token, code from result (mqtt_cbor_result_to_coap; an unlisted result
 * gives 5.00), Content-Format from ct, the payload; an Observe option with observe_seq when
 * observe_seq is non-NULL and the result is 2.xx. Returns 0, or MQTT_CBOR_ERR_RESULT when the
 * result was replaced by 5.00 (the caller logs it); a message without result counts as
 * unlisted. MQTT_CBOR_ERR_VALUE when the answer cannot be built (ct above 65535, token over 8
 * bytes, scratch full): out is then a bare 5.00 as well. */
int mqtt_coap_response_from_mqtt(const mqtt_cbor_msg_t *msg, uint16_t mid,
                                 const uint8_t *coap_token, size_t token_len,
                                 const uint32_t *observe_seq, gw_coap_msg_t *out,
                                 mqtt_coap_scratch_t *scratch);

#endif
