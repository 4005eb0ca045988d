/* lwm2m-gw: the JSON bodies of the T8 NIDD API (3GPP TS 29.122, clause 5.6 "NIDD API"), for
 * NIDD via SCEF (Transport Appendix D.3): the gateway is the SCS/AS.
 *
 * Pure translation: C structs in, JSON out; JSON in, C structs out. No HTTP, no event loop, no
 * state; json-c stays inside t8.c. Schemas: the Rel-17 OpenAPI file TS29122_NIDD.yaml
 * (3gpp-nidd 1.2.1, TS 29.122 V17.7.0) with TS29122_CommonData.yaml and TS29571_CommonData.yaml
 * (shared/reference/3gpp-t8/; notes in shared/reference/lorawan-and-t8.md PART 2). Clauses:
 * 5.6.2.1.x the resource types, 5.6.2.2.x the referenced structured types, 5.6.2.3.x the
 * enumerations, 5.6.3 the resources, 5.6.3A the notifications.
 *
 * Reading: unknown members are ignored (3GPP extensibility; enumerations are "anyOf enum or
 * string" for the same reason), a JSON null reads as an absent member (generic serializers
 * write it). Wrong types, out-of-range values, bad base64 and missing required members are
 * refused with *why a short static reason, for counted, rate-limited log lines. In the SCEF's
 * answers only what the gateway uses is checked: an answer is about a request the gateway made,
 * and a real SCEF has been seen to leave out `data` and write `status` for `deliveryStatus`.
 * Writing: only members an SCS/AS may send (no readOnly ones: self, status, deliveryStatus,
 * maximumPacketSize). */
#ifndef GW_CIOT_T8_H
#define GW_CIOT_T8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest externalId, msisdn or externalGroupId taken, characters. An External Identifier is
 * "local@domain" (TS 23.682 4.6.2, an NAI); 128 keeps a device address
 * "EXTERNALID/UEPORT-SCEFPORT" within the binding's address size. */
#define GW_T8_UE_ID_MAX 128
/* An MSISDN: 1 to 15 digits (TS 23.003 3.3, E.164). */
#define GW_T8_MSISDN_MAX 15
/* Longest Link (self, niddConfiguration, niddDownlinkDataTransfer, Location) and URL taken. */
#define GW_T8_LINK_MAX 512
/* Longest configurationId or downlinkDataDeliveryId taken from a link. */
#define GW_T8_RESOURCE_ID_MAX 128
/* Largest non-IP datagram carried, bytes. Appendix D.4: the Non-IP link MTU is 1358 octets
 * unless the SCEF states a maximumPacketSize; this leaves room for an SCEF that states more. */
#define GW_T8_DATA_MAX 4096
/* Largest JSON body read. */
#define GW_T8_BODY_MAX 65536
/* RDS ports are 4 bits on both sides (TS 24.250; the T8 portId pattern ue0-15/ef0-15; LwM2M
 * /0/x/28 and /0/x/29 range 0..15), though RdsPort's Port type would take 0..65535. */
#define GW_T8_RDS_PORT_MAX 15
/* Most rdsPorts in one configuration request: every pair of 4-bit ports would be 256. */
#define GW_T8_RDS_PORTS_MAX 16
/* "YYYY-MM-DDTHH:MM:SSZ" and its NUL. */
#define GW_T8_DATETIME_SIZE 21
/* ProblemDetails texts kept for the log (cut to fit, control characters replaced). */
#define GW_T8_PROBLEM_TEXT_MAX 96

/* RdsPort (5.6.2.2.2): {portUE, portSCEF}, both required. */
typedef struct {
  uint8_t ue;   /* portUE */
  uint8_t scef; /* portSCEF */
} gw_t8_rds_port_t;

/* The UE, or group, a configuration or a downlink is for: the schemas' oneOf. */
typedef enum {
  GW_T8_EXTERNAL_ID,      /* externalId: "local@domain", one "@", neither part empty */
  GW_T8_MSISDN,           /* msisdn: 1..15 digits */
  GW_T8_EXTERNAL_GROUP_ID /* externalGroupId: as an externalId (TS 23.682 4.6.3) */
} gw_t8_ue_kind_t;

typedef struct {
  gw_t8_ue_kind_t kind;
  const char *id; /* printable ASCII, no space, at most GW_T8_UE_ID_MAX characters */
} gw_t8_ue_t;

/* PdnEstablishmentOptions (5.6.2.3.3): what the SCEF does with a downlink when the UE has no
 * PDN connection. */
typedef enum {
  GW_T8_PDN_UNSET = 0,      /* member left out: the SCEF's own policy */
  GW_T8_PDN_WAIT_FOR_UE,    /* WAIT_FOR_UE: wait for the UE to establish it */
  GW_T8_PDN_INDICATE_ERROR, /* INDICATE_ERROR: answer with an error cause */
  GW_T8_PDN_SEND_TRIGGER    /* SEND_TRIGGER: send a device trigger */
} gw_t8_pdn_option_t;

/* DeliveryStatus (5.6.2.3.4), every value of Rel-15 to Rel-18, and what each means for the
 * server's request the downlink carries (gw_t8_delivery_outcome):
 *   SUCCESS                          delivered: success, details not provided
 *   SUCCESS_NEXT_HOP_ACKNOWLEDGED    delivered: to the next hop, which acknowledged it
 *   SUCCESS_NEXT_HOP_UNACKNOWLEDGED  delivered: to the next hop, without acknowledgement
 *   SUCCESS_ACKNOWLEDGED             acked: reliable delivery acknowledged by the UE (RDS)
 *   SUCCESS_UNACKNOWLEDGED           delivered: reliable delivery not acknowledged by the UE:
 *                                    sent without an RDS acknowledgement (none was requested,
 *                                    or none came); the device's CoAP answer, or the core's
 *                                    timeout, settles it
 *   TRIGGERED                        buffered: the SCEF triggered the device and buffers it
 *   BUFFERING                        buffered: no PDN connection yet, the SCEF buffers it
 *   BUFFERING_TEMPORARILY_NOT_REACHABLE  buffered: UE not reachable (power saving), buffered
 *   SENDING                          delivered: forwarded by the SCEF, maybe stored further on
 *                                    (MME extended buffering); nothing later is promised
 *   FAILURE                          failed: 5.03, no details
 *   FAILURE_RDS_DISABLED             failed: 5.03, RDS disabled for the UE
 *   FAILURE_NEXT_HOP                 failed: 5.03, the next hop did not take it
 *   FAILURE_TIMEOUT                  failed: 5.03, not delivered in time
 *   FAILURE_TEMPORARILY_NOT_REACHABLE failed: 5.03, UE not reachable and nothing buffered (a
 *                                    requestedRetransmissionTime, when given, says when to
 *                                    try again)
 * Whatever the status, a 201 answer to a downlink means its outcome comes later in a
 * NiddDownlinkDataDeliveryStatusNotification. */
typedef enum {
  GW_T8_DS_UNSET = 0, /* member absent */
  GW_T8_DS_SUCCESS,
  GW_T8_DS_SUCCESS_NEXT_HOP_ACKNOWLEDGED,
  GW_T8_DS_SUCCESS_NEXT_HOP_UNACKNOWLEDGED,
  GW_T8_DS_SUCCESS_ACKNOWLEDGED,
  GW_T8_DS_SUCCESS_UNACKNOWLEDGED,
  GW_T8_DS_TRIGGERED,
  GW_T8_DS_BUFFERING,
  GW_T8_DS_BUFFERING_TEMPORARILY_NOT_REACHABLE,
  GW_T8_DS_SENDING,
  GW_T8_DS_FAILURE,
  GW_T8_DS_FAILURE_RDS_DISABLED,
  GW_T8_DS_FAILURE_NEXT_HOP,
  GW_T8_DS_FAILURE_TIMEOUT,
  GW_T8_DS_FAILURE_TEMPORARILY_NOT_REACHABLE,
  GW_T8_DS_OTHER /* a string of a later release (anyOf's free string) */
} gw_t8_delivery_status_t;

/* What a DeliveryStatus means for the server's request; the binding reports it to the core as
 * the gw_delivery_status_t named. */
typedef enum {
  GW_T8_DELIVERED, /* handed on toward the UE; its answer is due (GW_DELIVERY_SENT) */
  GW_T8_ACKED,     /* the UE acknowledged it (RDS); its answer is due (GW_DELIVERY_ACKED) */
  GW_T8_BUFFERED,  /* the UE sleeps, the SCEF holds it: wait for the delivery status
                      notification (GW_DELIVERY_QUEUED) */
  GW_T8_FAILED     /* not delivered: the server gets 5.03 with the reason (GW_DELIVERY_FAILED) */
} gw_t8_outcome_t;

/* The outcome of status, and in *out_reason (may be NULL) a static text saying what happened,
 * for the log and, when FAILED, the 5.03's diagnostic payload. UNSET and OTHER are FAILED
 * ("no delivery status", "delivery status unknown to this release"): the gateway does not
 * guess whether an unknown state still delivers. */
gw_t8_outcome_t gw_t8_delivery_outcome(gw_t8_delivery_status_t status, const char **out_reason);
/* "SUCCESS", "BUFFERING", ...: the schema's name; "(unset)", "(other)". */
const char *gw_t8_delivery_status_name(gw_t8_delivery_status_t status);

/* NiddStatus (5.6.2.3.5): the state of a NIDD configuration. */
typedef enum {
  GW_T8_NIDD_UNSET = 0,                   /* member absent */
  GW_T8_NIDD_ACTIVE,                      /* ACTIVE */
  GW_T8_NIDD_TERMINATED_UE_NOT_AUTHORIZED, /* TERMINATED_UE_NOT_AUTHORIZED: authorisation of
                                             the UE revoked */
  GW_T8_NIDD_TERMINATED,                  /* TERMINATED */
  GW_T8_NIDD_RDS_PORT_UNKNOWN,            /* RDS_PORT_UNKNOWN */
  GW_T8_NIDD_OTHER                        /* a string of a later release */
} gw_t8_nidd_status_t;

const char *gw_t8_nidd_status_name(gw_t8_nidd_status_t status);

/* ---- NIDD configuration (5.6.2.1.2 NiddConfiguration; 5.6.3.2 POST .../configurations) ---- */

typedef struct {
  gw_t8_ue_t ue;                        /* externalId | msisdn | externalGroupId */
  const char *notification_destination; /* absolute http(s) URI of the gateway's endpoint */
  uint32_t duration_s; /* duration = now + duration_s as a DateTime; 0 leaves it out: the
                          SCEF decides, and the duration of its answer says when it ends */
  bool reliable_data_service;           /* reliableDataService */
  const gw_t8_rds_port_t *rds_ports;    /* rdsPorts; rds_port_count 0 leaves it out */
  size_t rds_port_count;                /* 0..GW_T8_RDS_PORTS_MAX */
  gw_t8_pdn_option_t pdn_option;        /* pdnEstablishmentOption, UNSET leaves it out */
} gw_t8_config_req_t;

/* Writes the body of a NIDD configuration request into json, with duration counted from now
 * (Unix time, seconds). Borrows req. Not sent: requestTestNotification (false and left out
 * mean the same), supportedFeatures (the gateway uses no optional feature of table 5.6.4-1),
 * mtcProviderId, websockNotifConfig, niddDownlinkDataTransfers.
 * GW_OK; GW_ERR_INVAL for a request out of range (an id or link not as above, a port above
 * GW_T8_RDS_PORT_MAX, too many ports, an end past 9999); GW_ERR_TOOBIG when it does not fit
 * size (json then ""); GW_ERR_NOMEM. */
int gw_t8_configuration_request(const gw_t8_config_req_t *req, int64_t now, char *json,
                                size_t size);

typedef struct {
  char self[GW_T8_LINK_MAX + 1]; /* self: the configuration's link; "" when absent (the 201's
                                    Location header names it then) */
  gw_t8_nidd_status_t status;    /* status */
  bool has_expiry;
  int64_t expiry;                /* duration: when the SCEF ends it, Unix time */
  uint32_t max_packet_bits;      /* maximumPacketSize (unit: bit; / 8 for bytes); 0: absent */
  bool has_reliable_data_service;
  bool reliable_data_service;    /* reliableDataService as the SCEF took it */
} gw_t8_config_t;

/* Parses the NiddConfiguration of a 201 (created) or 200 (read, modified) answer. Borrows json.
 * GW_OK with *out filled; GW_ERR_INVAL with *why ("not JSON", "status not a string",
 * "maximumPacketSize not a positive 32-bit integer", ...) and *out zeroed;
 * GW_ERR_NOMEM. rdsCapIndication is not a member of NiddConfiguration: it comes in a
 * NiddConfigurationStatusNotification. */
int gw_t8_configuration_parse(const uint8_t *json, size_t len, gw_t8_config_t *out,
                              const char **why);

/* ---- downlink (5.6.2.1.3 NiddDownlinkDataTransfer; 5.6.3.4 POST .../downlink-data-deliveries) */

typedef struct {
  gw_t8_ue_t ue;              /* externalId | msisdn | externalGroupId */
  const uint8_t *data;        /* data, sent as base64; may be NULL when len is 0 */
  size_t len;                 /* at most GW_T8_DATA_MAX */
  bool reliable_data_service; /* reliableDataService (written as given, also false) */
  bool has_rds_port;
  gw_t8_rds_port_t rds_port;  /* rdsPort */
  bool has_maximum_latency;
  uint32_t maximum_latency_s; /* maximumLatency (DurationSec); 0 asks for no buffering
                                 (Appendix D.6: a queue-mode device's requests, held by the
                                 gateway, go out with 0 when the device is heard from) */
  bool has_priority;
  int32_t priority;           /* priority */
  gw_t8_pdn_option_t pdn_option;
} gw_t8_downlink_req_t;

/* Writes a NiddDownlinkDataTransfer body. Borrows req. GW_OK; GW_ERR_INVAL for a request out of
 * range; GW_ERR_TOOBIG (json then ""); GW_ERR_NOMEM. */
int gw_t8_downlink_request(const gw_t8_downlink_req_t *req, char *json, size_t size);

typedef struct {
  char self[GW_T8_LINK_MAX + 1];  /* self: the delivery's link (for a 201 also in Location);
                                     "" when absent */
  gw_t8_delivery_status_t status; /* deliveryStatus, or `status` when deliveryStatus is absent
                                     and it holds a DeliveryStatus name (an operator's SCEF was
                                     seen answering so) */
  bool has_retransmission;
  int64_t retransmission_time;    /* requestedRetransmissionTime, Unix time */
} gw_t8_downlink_t;

/* Parses the NiddDownlinkDataTransfer of a 200 (delivered) or 201 (pending) answer. Nothing is
 * required: a 200 without deliveryStatus is delivered, a 201 pending. Borrows json. GW_OK;
 * GW_ERR_INVAL with *why and *out zeroed; GW_ERR_NOMEM. */
int gw_t8_downlink_parse(const uint8_t *json, size_t len, gw_t8_downlink_t *out,
                         const char **why);

/* ProblemDetails (TS29122_CommonData), the body of an error answer (application/problem+json):
 * a 403 with cause DATA_TOO_LARGE (larger than maximumPacketSize) or RDS_PORT_UNKNOWN (TS 29.122
 * 4.4.5), for instance. Texts cut to GW_T8_PROBLEM_TEXT_MAX, control characters as '?'. */
typedef struct {
  int status;                                /* status, 0 when absent (else 100..599) */
  char title[GW_T8_PROBLEM_TEXT_MAX + 1];    /* title, "" when absent */
  char detail[GW_T8_PROBLEM_TEXT_MAX + 1];   /* detail */
  char cause[GW_T8_PROBLEM_TEXT_MAX + 1];    /* cause: machine-readable */
} gw_t8_problem_t;

/* Parses a ProblemDetails body. Nothing in it is required. Borrows json. GW_OK; GW_ERR_INVAL
 * with *why and *out zeroed; GW_ERR_NOMEM. */
int gw_t8_problem_parse(const uint8_t *json, size_t len, gw_t8_problem_t *out, const char **why);

typedef struct {
  gw_t8_problem_t problem; /* problemDetail (required) */
  bool has_retransmission;
  int64_t retransmission_time; /* requestedRetransmissionTime: try again then, Unix time */
} gw_t8_delivery_failure_t;

/* Parses the NiddDownlinkDataDeliveryFailure (5.6.2.2.4) of a 500 answer to a downlink.
 * Borrows json. GW_OK; GW_ERR_INVAL ("missing problemDetail", ...) with *out zeroed;
 * GW_ERR_NOMEM. */
int gw_t8_delivery_failure_parse(const uint8_t *json, size_t len, gw_t8_delivery_failure_t *out,
                                 const char **why);

/* ---- notifications (5.6.3A: the SCEF POSTs them to notificationDestination) ------------- */

typedef enum {
  GW_T8_NOTE_UPLINK,          /* NiddUplinkDataNotification (5.6.2.1.4) */
  GW_T8_NOTE_DELIVERY_STATUS, /* NiddDownlinkDataDeliveryStatusNotification (5.6.2.1.5) */
  GW_T8_NOTE_CONFIG_STATUS    /* NiddConfigurationStatusNotification (5.6.2.1.6) */
} gw_t8_note_kind_t;

typedef struct {
  gw_t8_note_kind_t kind;
  /* UPLINK, CONFIG_STATUS: niddConfiguration, the configuration's link. DELIVERY_STATUS:
   * niddDownlinkDataTransfer, the delivery's link (the Location of its 201). */
  char link[GW_T8_LINK_MAX + 1];
  /* UPLINK, CONFIG_STATUS: the UE, at least one of the two ("" when absent). The schemas say
   * one of them; an SCEF that knows both may send both, and the gateway matches either. */
  char external_id[GW_T8_UE_ID_MAX + 1];
  char msisdn[GW_T8_MSISDN_MAX + 1]; /* digits only: a leading "+" is dropped */
  bool has_rds_port;
  gw_t8_rds_port_t rds_port;  /* UPLINK, CONFIG_STATUS: rdsPort */
  uint8_t data[GW_T8_DATA_MAX];
  size_t data_len;            /* UPLINK: data, decoded; may be 0 */
  bool reliable_data_service; /* UPLINK: reliableDataService (false when absent) */
  gw_t8_delivery_status_t delivery_status; /* DELIVERY_STATUS: deliveryStatus */
  bool has_retransmission;
  int64_t retransmission_time;             /* DELIVERY_STATUS: requestedRetransmissionTime */
  gw_t8_nidd_status_t nidd_status;         /* CONFIG_STATUS: status */
  bool has_rds_cap;
  bool rds_cap;                            /* CONFIG_STATUS: rdsCapIndication */
} gw_t8_notification_t;

/* Parses the body of a notification. There is no discriminator (the callback's schema is a
 * oneOf of five types without additionalProperties, so read literally nearly every body
 * matches two of them): the kind is told by its required members.
 *   niddConfiguration and data                        UPLINK (and externalId | msisdn)
 *   niddDownlinkDataTransfer and deliveryStatus       DELIVERY_STATUS (`status` taken for
 *                                                     deliveryStatus as in a downlink answer)
 *   niddConfiguration and status                      CONFIG_STATUS (and externalId | msisdn)
 *   niddDownlinkDataTransfer and gmdResults           group delivery: GW_ERR_UNSUPPORTED
 *   niddConfiguration and managedPorts                RDS port management: GW_ERR_UNSUPPORTED
 * A body with both links, or with both data and status, is refused as ambiguous.
 * Borrows json. GW_OK with *out filled; GW_ERR_UNSUPPORTED for a valid notification the gateway
 * does not ask for (it sends no group downlinks and uses static RDS ports: answer 204 and count
 * it); GW_ERR_INVAL with *why ("missing deliveryStatus", "bad base64 in data", ...), a 400;
 * GW_ERR_NOMEM. *out is zeroed unless GW_OK. */
int gw_t8_notification_parse(const uint8_t *json, size_t len, gw_t8_notification_t *out,
                             const char **why);

/* Writes a ProblemDetails body (application/problem+json) {"title", "status", "detail"} for an
 * error answer of the notification endpoint; title or detail NULL leaves it out ("type" is left
 * out: RFC 7807's about:blank). Returns the JSON's length, 0 when status is not 100..599 or it
 * does not fit size (json then ""). */
size_t gw_t8_problem_details(int status, const char *title, const char *detail, char *json,
                             size_t size);

/* ---- DateTime (TS29122_CommonData: OpenAPI date-time, RFC 3339 5.6) ---------------------- */

/* Writes t (Unix time, 1970 to 9999) as "YYYY-MM-DDTHH:MM:SSZ". GW_OK or GW_ERR_INVAL. */
int gw_t8_datetime_format(int64_t t, char out[GW_T8_DATETIME_SIZE]);
/* Parses an RFC 3339 date-time of len characters: date, "T", time, fraction (dropped), "Z" or
 * an offset; "t" and "z" too (RFC 3339 5.6 note); second 60 (a leap second) counts as the next
 * second's start. Years 0001 to 9999. GW_OK with *out Unix time; GW_ERR_INVAL. */
int gw_t8_datetime_parse(const char *text, size_t len, int64_t *out);

/* ---- URLs (5.2.4: {apiRoot}/3gpp-nidd/v1/...; 5.6.3 resources) --------------------------- */

/* {api_root}/3gpp-nidd/v1/{scs_as_id}/configurations. api_root: an http or https URI, a
 * trailing "/" dropped; scs_as_id: one path segment of RFC 3986 pchar, %XX escapes written as
 * they are (not "." or ".."). GW_OK; GW_ERR_INVAL; GW_ERR_TOOBIG (out then ""). */
int gw_t8_configurations_url(const char *api_root, const char *scs_as_id, char *out,
                             size_t size);
/* .../configurations/{configuration_id}, and with downlink_deliveries
 * .../configurations/{configuration_id}/downlink-data-deliveries. configuration_id as a
 * segment above. GW_OK; GW_ERR_INVAL; GW_ERR_TOOBIG (out then ""). */
int gw_t8_configuration_url(const char *api_root, const char *scs_as_id,
                            const char *configuration_id, bool downlink_deliveries, char *out,
                            size_t size);
/* The ids in a link (a self member, a Location header, a notification's link), absolute URI
 * or absolute path: ".../configurations/{cid}" gives cid; ".../configurations/{cid}/
 * downlink-data-deliveries/{did}" gives both. A trailing "/" is allowed; a query or fragment
 * is not. delivery_id may be NULL when only the configuration's is wanted. Each out is
 * GW_T8_RESOURCE_ID_MAX + 1 bytes. GW_OK (*delivery_id "" for a configuration's link);
 * GW_ERR_INVAL (both ""). */
int gw_t8_link_ids(const char *link, size_t len, char *configuration_id, char *delivery_id);

#endif
