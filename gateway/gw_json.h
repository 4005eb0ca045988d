/* lwm2m-gw: strict JSON in and out, on json-c (0.15 or newer), for the codecs of JSON that comes
 * from outside: the LoRaWAN network servers' messages (lorawan/ns_event.c) and the SCEF's T8
 * bodies (ciot/t8.c). Only such codecs include this header, and with it json-c; their own
 * headers give the rest of the gateway plain structs.
 *
 * Reading: one whole JSON object, strict RFC 8259 syntax (JSON_TOKENER_STRICT), UTF-8 checked
 * (JSON_TOKENER_VALIDATE_UTF8), nesting bounded, nothing but white space after it. Members are
 * looked up by the getters below, for which a JSON null is an absent member: proto3 JSON writes
 * defaults either way, and servers built on generic serializers write null for what they do not
 * have. Each getter returns 0 (an absent member leaves its outputs at "absent") or -1 for a
 * value of the wrong type. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* json-c's own default nesting limit. The codecs read a few levels; the rest is room for
 * members they ignore (a network server's decoded payload, a 3GPP extension) that must parse. */
#define GW_JSON_DEPTH 32

/* Parses payload[0..len) as one JSON object. Borrows payload. GW_OK with *out a new reference
 * (json_object_put it); GW_ERR_INVAL with *why "message too large" (len > max_len), "not JSON",
 * "JSON nested too deep" or "not a JSON object"; GW_ERR_NOMEM ("out of memory"). *out is NULL
 * on failure. */
int gw_json_parse_object(const uint8_t *payload, size_t len, size_t max_len, json_object **out,
                         const char **why);

/* The value of member key of object o; NULL when o is NULL, the member is absent or null. */
json_object *gw_json_field(json_object *o, const char *key);
/* An object member: *out the object, or NULL when absent. */
int gw_json_get_object(json_object *o, const char *key, json_object **out);
/* A string member without NUL inside: *out and *out_len borrowed from o, NULL and 0 when
 * absent. */
int gw_json_get_string(json_object *o, const char *key, const char **out, size_t *out_len);
/* An integer member 0..max. json-c clamps integers beyond 64 bits, so they fall outside 0..max
 * too; 1.0 or 1e3 are numbers of another type and refused. *out_present says whether it was
 * there; *out is left alone when it was not. */
int gw_json_get_uint(json_object *o, const char *key, uint64_t max, uint64_t *out,
                     bool *out_present);
/* A boolean member; *out is left alone when absent. */
int gw_json_get_bool(json_object *o, const char *key, bool *out);

/* Adds key: value to the object obj, or value to the array obj when key is NULL, taking value
 * either way; false when value is NULL (json-c out of memory) or the add failed. Building a
 * document by handing each container to its parent as it is made lets one json_object_put of
 * the root free whatever was built when a step fails. */
bool gw_json_add(json_object *obj, const char *key, json_object *value);

/* Writes root as compact JSON (no spaces, "/" not escaped) and a NUL into out. Borrows root.
 * GW_OK; GW_ERR_TOOBIG when it does not fit out_size; GW_ERR_NOMEM. out holds "" on failure
 * (when out_size > 0). */
int gw_json_write(json_object *root, char *out, size_t out_size, size_t *out_len);

#endif
