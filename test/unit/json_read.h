/* Reading back, with json-c, the JSON a codec writes (test_lorawan_ns, test_t8): the document
 * must be an object, and each member asked for must be there with its type. Include after
 * <cmocka.h> and <json-c/json.h>. */
#ifndef GW_TEST_JSON_READ_H
#define GW_TEST_JSON_READ_H

static inline json_object *read_json(const char *text) {
  json_object *o = json_tokener_parse(text);
  assert_non_null(o);
  assert_true(json_object_is_type(o, json_type_object));
  return o;
}

static inline json_object *member(json_object *o, const char *key, json_type type) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v))
    fail_msg("no member %s", key);
  if (!json_object_is_type(v, type))
    fail_msg("member %s not of type %s", key, json_type_to_name(type));
  return v;
}

#endif
