/* lwm2m-gw: registration parameters and their rewriting per upstream profile. See profile.h. */
#include "profile.h"

#include <string.h>

/* ---- Uri-Query parameters (LwM2M Core 1.2 6.2.1, 6.2.2) --------------------------------- */

/* One Uri-Query option split at its first '=': "lt=300" or the bare flag "Q". */
typedef struct {
  const char *key;
  size_t key_len;
  const char *value; /* NULL for a bare flag */
  size_t value_len;
} reg_query_t;

static reg_query_t split_query(const gw_coap_option_t *opt) {
  const char *text = (const char *)opt->value;
  const char *eq = opt->length > 0 ? memchr(text, '=', opt->length) : NULL;
  if (!eq)
    return (reg_query_t){text, opt->length, NULL, 0};
  size_t key_len = (size_t)(eq - text);
  return (reg_query_t){text, key_len, eq + 1, opt->length - key_len - 1};
}

/* "key=..." when has_value, the bare flag "key" otherwise. */
static bool query_is(const reg_query_t *q, const char *key, bool has_value) {
  return (q->value != NULL) == has_value && q->key_len == strlen(key) &&
         memcmp(q->key, key, q->key_len) == 0;
}

bool gw_reg_has_query(const gw_coap_msg_t *msg, const char *key, bool has_value) {
  for (uint16_t i = 0; i < msg->option_count; i++) {
    if (msg->options[i].number != GW_COAP_OPT_URI_QUERY)
      continue;
    reg_query_t q = split_query(&msg->options[i]);
    if (query_is(&q, key, has_value))
      return true;
  }
  return false;
}

static bool value_equals(const reg_query_t *q, const char *text) {
  return q->value_len == strlen(text) && memcmp(q->value, text, q->value_len) == 0;
}

/* Copies a value into a fixed C string field; a NUL inside would silently cut it short, so it
 * does not fit either. */
static int copy_value(const reg_query_t *q, char *out, size_t out_size) {
  if (q->value_len >= out_size || memchr(q->value, '\0', q->value_len))
    return -1;
  memcpy(out, q->value, q->value_len);
  out[q->value_len] = '\0';
  return 0;
}

/* lt= is a decimal number of seconds (LwM2M Core 1.2 6.2.1: Lifetime); anything else, or a
 * value beyond 32 bits, is refused rather than guessed at. */
static int parse_lifetime(const reg_query_t *q, uint32_t *out_lifetime) {
  if (q->value_len == 0)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < q->value_len; i++) {
    if (q->value[i] < '0' || q->value[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(q->value[i] - '0');
    if (v > UINT32_MAX)
      return -1;
  }
  *out_lifetime = (uint32_t)v;
  return 0;
}

static int read_reg_query(const reg_query_t *q, gw_reg_params_t *params) {
  if (query_is(q, "ep", true))
    return copy_value(q, params->endpoint, sizeof(params->endpoint));
  if (query_is(q, "lwm2m", true))
    return copy_value(q, params->lwm2m_version, sizeof(params->lwm2m_version));
  if (query_is(q, "b", true))
    return copy_value(q, params->binding, sizeof(params->binding));
  if (query_is(q, "sms", true))
    return copy_value(q, params->sms_number, sizeof(params->sms_number));
  if (query_is(q, "lt", true)) {
    params->has_lifetime = true;
    return parse_lifetime(q, &params->lifetime);
  }
  if (query_is(q, "Q", false))
    params->queue_mode = true;
  return 0;
}

int gw_reg_params_parse(const gw_coap_msg_t *msg, gw_reg_params_t *out_params) {
  gw_reg_params_t params;
  memset(&params, 0, sizeof(params));
  for (uint16_t i = 0; i < msg->option_count; i++) {
    if (msg->options[i].number != GW_COAP_OPT_URI_QUERY)
      continue;
    reg_query_t q = split_query(&msg->options[i]);
    if (read_reg_query(&q, &params) != 0)
      return -1;
  }
  /* LwM2M 1.0 signals queue mode as the Q letter of the binding ("UQ", "SQ", "UQS"). */
  if (strchr(params.binding, 'Q'))
    params.queue_mode = true;
  *out_params = params;
  return 0;
}

/* ---- rewriting for the upstream server -------------------------------------------------- */

/* Appends prefix followed by value as one NUL-terminated entry of list. */
static int list_append(gw_query_list_t *list, const char *prefix, const char *value,
                       size_t value_len) {
  size_t prefix_len = strlen(prefix);
  size_t entry_len = prefix_len + value_len;
  if (list->count == GW_REG_MAX_QUERY || sizeof(list->buf) - list->used < entry_len + 1)
    return -1;
  char *entry = list->buf + list->used;
  memcpy(entry, prefix, prefix_len);
  if (value_len > 0)
    memcpy(entry + prefix_len, value, value_len);
  entry[entry_len] = '\0';
  list->values[list->count] = entry;
  list->lengths[list->count] = entry_len;
  list->count++;
  list->used += entry_len + 1;
  return 0;
}

/* Strict servers know only the enabler versions 1.0 and 1.1; the gateway speaks 1.1 for the
 * device otherwise, as it relays whatever the device does on top. */
static int append_strict_version(const reg_query_t *q, gw_query_list_t *list) {
  if (value_equals(q, "1.0") || value_equals(q, "1.1"))
    return list_append(list, "lwm2m=", q->value, q->value_len);
  return list_append(list, "lwm2m=", "1.1", 3);
}

static bool is_transport_letter(char c) { return c != '\0' && strchr("UTSN", c) != NULL; }

/* Keeps the binding letters a strict server accepts (LwM2M Core 1.1 5.2.1.1: U, T, S, N, and Q
 * from 1.0), each once and in the device's order. Without a transport letter left the server
 * still reaches the device through the gateway, over UDP. Returns the length written to out. */
static size_t strict_binding(const reg_query_t *q, char link_letter, bool add_queue,
                             char out[8]) {
  size_t n = 0;
  bool has_transport = false;
  for (size_t i = 0; i < q->value_len; i++) {
    char c = q->value[i];
    if ((is_transport_letter(c) || c == 'Q') && !memchr(out, c, n)) {
      out[n++] = c;
      has_transport = has_transport || is_transport_letter(c);
    }
  }
  if (is_transport_letter(link_letter) && !memchr(out, link_letter, n)) {
    out[n++] = link_letter;
    has_transport = true;
  }
  if (!has_transport) {
    memmove(out + 1, out, n);
    out[0] = 'U';
    n++;
  }
  if (add_queue && !memchr(out, 'Q', n))
    out[n++] = 'Q';
  return n;
}

static int append_rewritten(const reg_query_t *q, const gw_coap_option_t *opt, bool is_register,
                            const gw_rewrite_rules_t *rules, bool add_queue,
                            gw_query_list_t *list) {
  bool strict = rules->profile == GW_PROFILE_LWM2M11;
  if (is_register && rules->endpoint && query_is(q, "ep", true))
    return list_append(list, "ep=", rules->endpoint, strlen(rules->endpoint));
  if (strict && query_is(q, "lwm2m", true))
    return append_strict_version(q, list);
  if (strict && query_is(q, "b", true)) {
    char binding[8];
    return list_append(list, "b=", binding,
                       strict_binding(q, rules->link_letter, add_queue, binding));
  }
  return list_append(list, "", (const char *)opt->value, opt->length);
}

int gw_profile_rewrite_query(const gw_coap_msg_t *msg, bool is_register,
                             const gw_rewrite_rules_t *rules, gw_query_list_t *out_list) {
  memset(out_list, 0, sizeof(*out_list));
  /* Queue mode the device already announced with the 1.1 Q parameter travels as is; adding
   * the 1.0 Q letter as well would announce it twice. */
  bool add_queue = rules->sleepy && !gw_reg_has_query(msg, "Q", false);
  /* The server knows the device by the configured name, even when the device sent none
   * (LwM2M 1.1+ lets ep= be omitted when the credentials name the client). */
  if (is_register && rules->endpoint && !gw_reg_has_query(msg, "ep", true) &&
      list_append(out_list, "ep=", rules->endpoint, strlen(rules->endpoint)) != 0)
    return -1;
  for (uint16_t i = 0; i < msg->option_count; i++) {
    const gw_coap_option_t *opt = &msg->options[i];
    if (opt->number != GW_COAP_OPT_URI_QUERY)
      continue;
    reg_query_t q = split_query(opt);
    if (append_rewritten(&q, opt, is_register, rules, add_queue, out_list) != 0)
      return -1;
  }
  /* No b= means U (LwM2M Core 6.2.1); the link's own letter, and queue mode the device did
   * not announce itself (a LoRaWAN device: Transport table 6.8.4-1), are declared all the same. */
  if (is_register && rules->profile == GW_PROFILE_LWM2M11 &&
      (is_transport_letter(rules->link_letter) || add_queue) &&
      !gw_reg_has_query(msg, "b", true)) {
    reg_query_t implicit_u = {"b", 1, "U", 1};
    char binding[8];
    if (list_append(out_list, "b=", binding,
                    strict_binding(&implicit_u, rules->link_letter, add_queue, binding)) != 0)
      return -1;
  }
  return 0;
}

/* ---- profile names ---------------------------------------------------------------------- */

static const char *const profile_names[] = {
    [GW_PROFILE_LWM2M11] = "lwm2m11",
    [GW_PROFILE_PASSTHROUGH] = "passthrough",
};

#define PROFILE_COUNT (sizeof(profile_names) / sizeof(profile_names[0]))

int gw_profile_from_name(const char *name) {
  for (size_t i = 0; name && i < PROFILE_COUNT; i++) {
    if (strcmp(name, profile_names[i]) == 0)
      return (int)i;
  }
  return -1;
}

const char *gw_profile_name(gw_profile_t profile) {
  return (unsigned)profile < PROFILE_COUNT ? profile_names[profile] : "unknown";
}
