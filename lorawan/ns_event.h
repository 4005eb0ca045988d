/* lwm2m-gw: the messages a LoRaWAN network server exchanges with its application over MQTT.
 *
 * The gateway is the LoRaWAN Application Server of its devices toward ChirpStack v4 (MQTT
 * integration, JSON marshaler) or The Things Stack v3 (its MQTT server). This is pure
 * translation: one MQTT topic and JSON payload in, one plain gw_ns_event_t out; one downlink
 * frame in, its topic and JSON out. No MQTT, no event loop, no state; JSON is read and written
 * with json-c, which no header here exposes.
 *
 * Sources (see shared/reference/lorawan-and-t8.md, PART 1, which cites each):
 * - ChirpStack v4: api/proto/integration/integration.proto (UplinkEvent, TxAckEvent, AckEvent,
 *   LogEvent, DownlinkCommand), chirpstack/src/integration/mqtt.rs (topics), the pbjson proto3
 *   JSON mapping of api/rust/build.rs (lowerCamelCase names, bytes as base64, enums as names),
 *   chirpstack/src/downlink/{data.rs,tx_ack.rs} (which event reports which fate of a queue item),
 *   chirpstack-docs src/chirpstack/integrations/events.md (examples).
 * - The Things Stack v3: pkg/applicationserver/io/mqtt/topics/v3.go (topics),
 *   lorawan-stack-docs integrations/data-formats (JSON, "empty fields are omitted": a 0, "" or
 *   false field is absent), api ApplicationDownlink (f_port, frm_payload max_len 255,
 *   correlation_ids max_len 100), pkg/networkserver errors (application_downlink_too_long with
 *   attributes length and max).
 */
#ifndef GW_LORAWAN_NS_EVENT_H
#define GW_LORAWAN_NS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { GW_NS_CHIRPSTACK = 0, GW_NS_TTS = 1 } gw_ns_format_t;

typedef enum {
  GW_NS_EV_UPLINK,    /* CS event/up, TTS up: a frame from the device */
  GW_NS_EV_QUEUED,    /* TTS down/queued: the item is in the network server's queue */
  GW_NS_EV_SENT,      /* CS txack, TTS down/sent: the frame went to a gateway for TX. CS: "this
                       * event does not confirm that the message has already been transmitted";
                       * an unconfirmed item is done, a confirmed one waits for its ack */
  GW_NS_EV_ACKED,     /* CS ack acknowledged=true, TTS down/ack: the device acked a confirmed
                       * downlink */
  GW_NS_EV_NACKED,    /* CS ack acknowledged=false (next uplink without ACK, or the class B/C
                       * timeout; the item is deleted), TTS down/nack (TTS re-sends class A
                       * downlinks by itself) */
  GW_NS_EV_FAILED,    /* CS log naming a queue_item_id (EXPIRED, F_CNT_DOWN, ...), TTS
                       * down/failed for any other error: the item is gone */
  GW_NS_EV_TOO_LARGE, /* CS log DOWNLINK_PAYLOAD_SIZE, TTS down/failed
                       * application_downlink_too_long: the item was dropped as too long for the
                       * device's data rate; max_payload says the limit when known */
  GW_NS_EV_TX_ERROR,  /* CS log DOWNLINK_GATEWAY (TOO_LATE, COLLISION_PACKET, ...): the gateway
                       * refused a TX; no item id, and the item stays queued for the next chance */
  GW_NS_EV_OTHER      /* valid, but nothing for the gateway: join, status, location, other log
                       * codes, TTS down events of downlinks the gateway did not push, uplinks
                       * without FPort (MAC commands only, or empty) */
} gw_ns_event_kind_t;

/* TTS identifiers are 3 to 36 characters of a-z, 0-9 and single inner dashes (TTS docs, "ID and
 * EUI Constraints"); a ChirpStack topic names the device by 16 hex digits. */
#define GW_NS_DEVICE_ID_MAX 36
/* TTS correlation ids are at most 100 characters (ApplicationDownlink.correlation_ids). */
#define GW_NS_ITEM_ID_MAX 100
/* The gateway's TTS correlation ids start with this; ChirpStack's item ids are bare UUIDs. */
#define GW_NS_ITEM_PREFIX "lwm2m-gw:"
/* The largest FRMPayload (LoRaWAN: N <= 250 in every region; TTS frm_payload max_len 255). */
#define GW_NS_DATA_MAX 255
/* The largest MQTT payload parsed; a TTS uplink heard by many gateways is a few KiB. */
#define GW_NS_PAYLOAD_MAX 65536
/* Longest topic filter or topic the functions below write, NUL included. */
#define GW_NS_TOPIC_MAX 160

typedef struct {
  gw_ns_event_kind_t kind;
  uint8_t dev_eui[8];   /* CS: from the topic; TTS: end_device_ids.dev_eui when present */
  bool has_dev_eui;
  char device_id[GW_NS_DEVICE_ID_MAX + 1]; /* TTS: the device ID of the topic; CS: the topic's
                                            * dev_eui text as it came (lower case) */
  uint8_t fport;        /* UPLINK: 1..255 */
  uint32_t fcnt;        /* UPLINK: the frame counter (0 when the NS left it out) */
  int dr;               /* UPLINK: data rate index, -1 when not known. CS gives it (dr); TTS gives
                         * the modulation, mapped to EU868 (gw_region_eu868_lora_dr) */
  bool confirmed;       /* UPLINK: the device sent a confirmed frame */
  uint8_t data[GW_NS_DATA_MAX + 1];
  size_t data_len;      /* UPLINK: the decrypted FRMPayload, 0..GW_NS_DATA_MAX bytes */
  char item_id[GW_NS_ITEM_ID_MAX + 1]; /* QUEUED..TOO_LARGE: CS queueItemId or context
                                        * queue_item_id; TTS the correlation id that starts with
                                        * GW_NS_ITEM_PREFIX. "" otherwise */
  char reason[96];      /* FAILED, TOO_LARGE, TX_ERROR (and CS log events of kind OTHER): CS
                         * "<code>: <description>", TTS "<error name>: <message_format>", cut to
                         * fit; for an uplink without FPort (OTHER) what it was */
  uint32_t max_payload; /* TOO_LARGE: the limit in bytes (CS context max_payload_size, TTS error
                         * attribute max), 0 when the network server did not say */
} gw_ns_event_t;

/* Parses one MQTT message received on a topic of gw_ns_subscriptions. app: the application as
 * configured (CS: its UUID; TTS: "app@tenant", or "app" on The Things Stack Open Source). Borrows
 * every argument. Fills *out (all of it) and returns GW_OK; or returns GW_ERR_INVAL, or
 * GW_ERR_NOMEM when json-c could not allocate, with *why set to a short static reason for a
 * counted, rate-limited log line: "topic not of this application", "not JSON", "devEui does not
 * match the topic", "bad base64", "fPort out of range", "missing field data", ... (*out is then
 * zeroed, kind OTHER, with the topic's device when it had one).
 * Strict where the gateway acts on a field (types, ranges, ids), tolerant of fields it does not
 * read and of fields left out that proto3 JSON lets a producer omit (a false, 0 or "" value). */
int gw_ns_parse(gw_ns_format_t fmt, const char *app, const char *topic, const uint8_t *payload,
                size_t len, gw_ns_event_t *out, const char **why);

/* Writes the topic filters to subscribe to for fmt and app into out[0..max) and returns how many
 * there are (CS 1: application/{app}/device/+/event/+ ; TTS 6: v3/{app}/devices/+/up and
 * .../down/{queued,sent,ack,nack,failed}, not down/+, which would take in the gateway's own
 * down/push). Writes min(count, max) of them. 0 when app cannot be a topic level (empty, with
 * '/', '+', '#' or a control character, or too long). */
size_t gw_ns_subscriptions(gw_ns_format_t fmt, const char *app, char out[][GW_NS_TOPIC_MAX],
                           size_t max);

/* One downlink frame: its topic and JSON. Borrows every argument.
 * CS: topic application/{app}/device/{dev_eui lower case}/command/down, JSON {"id": item_id,
 *   "devEui": the same lower-case text (ChirpStack compares the two as strings), "confirmed",
 *   "fPort", "data": base64}; item_id must be a UUID (ChirpStack refuses any other id); device_id
 *   is not used.
 * TTS: topic v3/{app}/devices/{device_id}/down/push, JSON {"downlinks": [{"f_port",
 *   "frm_payload", "confirmed", "priority": "NORMAL", "correlation_ids": [item_id]}]}; dev_eui is
 *   not used (may be NULL).
 * fport 1..255 (TTS: not 224, its test port); len at most GW_NS_DATA_MAX (data may be NULL when
 * len is 0); item_id 1..GW_NS_ITEM_ID_MAX printable ASCII characters.
 * GW_OK; GW_ERR_INVAL for an argument out of range; GW_ERR_TOOBIG when topic or json does not fit
 * (both then hold ""); GW_ERR_NOMEM when json-c could not allocate. */
int gw_ns_downlink(gw_ns_format_t fmt, const char *app, const uint8_t dev_eui[8],
                   const char *device_id, uint8_t fport, bool confirmed, const char *item_id,
                   const uint8_t *data, size_t len, char *topic, size_t topic_size, char *json,
                   size_t json_size);

/* A fresh item id for gw_ns_downlink: CS a random UUID version 4 in lower case (RFC 4122 4.4,
 * from gw_random_bytes, the kernel's getrandom), TTS GW_NS_ITEM_PREFIX and such a UUID. */
void gw_ns_new_item_id(gw_ns_format_t fmt, char out[GW_NS_ITEM_ID_MAX + 1]);

/* Parses an EUI-64 written as exactly 16 hex digits of either case (ChirpStack writes lower
 * case, TTS upper case). GW_OK or GW_ERR_INVAL. */
int gw_eui64_parse(const char *hex, uint8_t out[8]);
/* Writes eui as 16 hex digits and a NUL. */
void gw_eui64_format(const uint8_t eui[8], bool upper, char out[17]);

/* "uplink", "queued", ...: for log lines. */
const char *gw_ns_event_kind_name(gw_ns_event_kind_t kind);

#endif
