/* lwm2m-gw: strict JSON in and out on json-c. See gw_json.h. */
#include "gw_json.h"

#include <string.h>

#include "gw_error.h"

int gw_json_parse_object(const uint8_t *payload, size_t len, size_t max_len, json_object **out,
                         const char **why) {
  *out = NULL;
  /* json_tokener_parse_ex takes an int length. */
  if (len > max_len || len > (size_t)INT32_MAX) {
    *why = "message too large";
    return GW_ERR_INVAL;
  }
  if (len == 0 || !payload) {
    *why = "not JSON";
    return GW_ERR_INVAL;
  }
  json_tokener *tok = json_tokener_new_ex(GW_JSON_DEPTH);
  if (!tok) {
    *why = "out of memory";
    return GW_ERR_NOMEM;
  }
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  json_object *root = json_tokener_parse_ex(tok, (const char *)payload, (int)len);
  enum json_tokener_error err = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  while (err == json_tokener_success && end < len && strchr(" \t\r\n", payload[end]) &&
         payload[end] != '\0')
    end++;
  /* A bare null parses to NULL with success. */
  bool parsed = err == json_tokener_success && end == len;
  if (!parsed || !root) {
    json_object_put(root);
    *why = parsed ? "not a JSON object"
                  : err == json_tokener_error_depth ? "JSON nested too deep" : "not JSON";
    return GW_ERR_INVAL;
  }
  if (!json_object_is_type(root, json_type_object)) {
    json_object_put(root);
    *why = "not a JSON object";
    return GW_ERR_INVAL;
  }
  *out = root;
  return GW_OK;
}

json_object *gw_json_field(json_object *o, const char *key) {
  json_object *v = NULL;
  return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

int gw_json_get_object(json_object *o, const char *key, json_object **out) {
  json_object *v = gw_json_field(o, key);
  *out = v && json_object_is_type(v, json_type_object) ? v : NULL;
  return v && !*out ? -1 : 0;
}

int gw_json_get_string(json_object *o, const char *key, const char **out, size_t *out_len) {
  json_object *v = gw_json_field(o, key);
  *out = NULL;
  *out_len = 0;
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_string))
    return -1;
  const char *s = json_object_get_string(v);
  size_t len = (size_t)json_object_get_string_len(v);
  if (!s || strlen(s) != len)
    return -1;
  *out = s;
  *out_len = len;
  return 0;
}

int gw_json_get_uint(json_object *o, const char *key, uint64_t max, uint64_t *out,
                     bool *out_present) {
  json_object *v = gw_json_field(o, key);
  *out_present = v != NULL;
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_int))
    return -1;
  int64_t i = json_object_get_int64(v);
  if (i < 0 || (uint64_t)i > max)
    return -1;
  *out = (uint64_t)i;
  return 0;
}

int gw_json_get_bool(json_object *o, const char *key, bool *out) {
  json_object *v = gw_json_field(o, key);
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_boolean))
    return -1;
  *out = json_object_get_boolean(v) != 0;
  return 0;
}

bool gw_json_add(json_object *obj, const char *key, json_object *value) {
  if (!value)
    return false;
  int rc = key ? json_object_object_add(obj, key, value) : json_object_array_add(obj, value);
  if (rc != 0)
    json_object_put(value);
  return rc == 0;
}

int gw_json_write(json_object *root, char *out, size_t out_size, size_t *out_len) {
  if (out_size)
    out[0] = '\0';
  size_t len = 0;
  const char *text = json_object_to_json_string_length(
      root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  if (!text)
    return GW_ERR_NOMEM;
  if (len >= out_size)
    return GW_ERR_TOOBIG;
  memcpy(out, text, len + 1);
  if (out_len)
    *out_len = len;
  return GW_OK;
}
