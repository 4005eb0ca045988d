/* libFuzzer target for the CoAP codec and for what the gateway reads out of a parsed Register:
 * every datagram a device sends reaches gw_coap_parse() first.
 *
 * Checks beyond "no crash": a parsed message serialises back to exactly the input bytes (the
 * RFC 7252 3.1 option encoding leaves one way to write each delta and length), re-parses to an
 * equal message, and does not fit one byte less. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coap_msg.h"
#include "profile.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

static bool options_equal(const gw_coap_option_t *a, const gw_coap_option_t *b) {
  return a->number == b->number && a->length == b->length &&
         (a->length == 0 || memcmp(a->value, b->value, a->length) == 0);
}

static bool msgs_equal(const gw_coap_msg_t *a, const gw_coap_msg_t *b) {
  if (a->type != b->type || a->code != b->code || a->mid != b->mid ||
      a->token_len != b->token_len || memcmp(a->token, b->token, a->token_len) != 0 ||
      a->option_count != b->option_count || a->payload_len != b->payload_len ||
      (a->payload == NULL) != (b->payload == NULL))
    return false;
  for (uint16_t i = 0; i < a->option_count; i++) {
    if (!options_equal(&a->options[i], &b->options[i]))
      return false;
  }
  return a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0;
}

static void check_round_trip(const gw_coap_msg_t *msg, const uint8_t *data, size_t size) {
  uint8_t *out = malloc(size);
  check(out != NULL);
  check(gw_coap_serialize(msg, out, size) == size);
  check(memcmp(out, data, size) == 0);
  check(gw_coap_serialize(msg, out, size - 1) == 0);
  gw_coap_msg_t again;
  check(gw_coap_parse(out, size, &again) == GW_COAP_PARSE_OK);
  check(msgs_equal(msg, &again));
  free(out);
}

static void check_query_list(const gw_query_list_t *list) {
  check(list->count <= GW_REG_MAX_QUERY && list->used <= sizeof(list->buf));
  for (size_t i = 0; i < list->count; i++) {
    const char *v = list->values[i];
    check(v >= list->buf && v + list->lengths[i] < list->buf + list->used);
    check(v[list->lengths[i]] == '\0');
  }
}

/* The registration path: what the gateway reads and what it would relay upstream, under every
 * combination of profile, sleepiness, Register/Update and endpoint override. */
static void exercise_registration(const gw_coap_msg_t *msg) {
  gw_reg_params_t params;
  if (gw_reg_params_parse(msg, &params) == 0)
    check(strlen(params.endpoint) < sizeof(params.endpoint));
  for (unsigned combo = 0; combo < 32; combo++) {
    gw_rewrite_rules_t rules = {
        .profile = (combo & 1) ? GW_PROFILE_PASSTHROUGH : GW_PROFILE_LWM2M11,
        .sleepy = (combo & 2) != 0,
        .endpoint = (combo & 4) ? "gw-endpoint" : NULL,
        .link_letter = (combo & 16) ? 'S' : 0,
    };
    gw_query_list_t list;
    if (gw_profile_rewrite_query(msg, (combo & 8) != 0, &rules, &list) == 0)
      check_query_list(&list);
  }
}

static void exercise_text(const gw_coap_msg_t *msg) {
  char path[64], tiny[3], code[8];
  gw_coap_path_str(msg, GW_COAP_OPT_URI_PATH, path, sizeof(path));
  check(path[0] == '/');
  gw_coap_path_str(msg, GW_COAP_OPT_LOCATION_PATH, tiny, sizeof(tiny));
  gw_coap_code_str(msg->code, code);
  gw_coap_type_str(msg->type);
  gw_coap_option_uint(gw_coap_find_option(msg, GW_COAP_OPT_OBSERVE));
}

/* Rebuilding the options through the public setters gives the same message back. */
static void check_rebuild(const gw_coap_msg_t *msg) {
  gw_coap_msg_t rebuilt;
  gw_coap_msg_init(&rebuilt, msg->type, msg->code, msg->mid);
  check(gw_coap_set_token(&rebuilt, msg->token, msg->token_len) == 0);
  /* Added in reverse: insertion must still restore ascending order with repeats in order. */
  for (uint16_t i = msg->option_count; i-- > 0;) {
    const gw_coap_option_t *opt = &msg->options[i];
    if (i + 1 < msg->option_count && msg->options[i + 1].number == opt->number)
      continue; /* a run of repeats is added front to back below */
    uint16_t first = i;
    while (first > 0 && msg->options[first - 1].number == opt->number)
      first--;
    for (uint16_t j = first; j <= i; j++)
      check(gw_coap_add_option(&rebuilt, msg->options[j].number, msg->options[j].value,
                               msg->options[j].length) == 0);
  }
  rebuilt.payload = msg->payload;
  rebuilt.payload_len = msg->payload_len;
  check(msgs_equal(msg, &rebuilt));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gw_coap_msg_t msg;
  if (gw_coap_parse(data, size, &msg) != GW_COAP_PARSE_OK)
    return 0;
  check_round_trip(&msg, data, size);
  check_rebuild(&msg);
  exercise_text(&msg);
  exercise_registration(&msg);
  return 0;
}
