/* Unit tests of registration parameters (LwM2M Core 1.2 6.2.1, 6.2.2) and their rewriting for
 * strict upstream servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "profile.h"

#define QUERIES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A Register (POST /rd) or Update (POST /rd/5a3f) carrying queries as Uri-Query options; the
 * message borrows the string literals. */
static void make_reg_msg(gw_coap_msg_t *msg, bool is_register, const char *const *queries) {
  gw_coap_msg_init(msg, GW_COAP_CON, GW_COAP_POST, 0x1234);
  gw_coap_add_option(msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"rd", 2);
  if (!is_register)
    gw_coap_add_option(msg, GW_COAP_OPT_URI_PATH, (const uint8_t *)"5a3f", 4);
  gw_coap_add_option(msg, GW_COAP_OPT_CONTENT_FORMAT, (const uint8_t *)"\x28", 1);
  for (size_t i = 0; queries[i]; i++)
    gw_coap_add_option(msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)queries[i],
                       strlen(queries[i]));
}

static void assert_query_list(const gw_query_list_t *list, const char *const *expected) {
  size_t n = 0;
  while (expected[n])
    n++;
  assert_int_equal(list->count, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(list->values[i], expected[i]);
    assert_int_equal(list->lengths[i], strlen(expected[i]));
  }
}

/* Rewrites the queries of a Register or Update and checks the upstream list. */
static void assert_rewrite(bool is_register, const gw_rewrite_rules_t *rules,
                           const char *const *queries, const char *const *expected) {
  gw_coap_msg_t msg;
  make_reg_msg(&msg, is_register, queries);
  gw_query_list_t list;
  assert_int_equal(gw_profile_rewrite_query(&msg, is_register, rules, &list), 0);
  assert_query_list(&list, expected);
}

static const gw_rewrite_rules_t strict = {.profile = GW_PROFILE_LWM2M11};
static const gw_rewrite_rules_t strict_sleepy = {.profile = GW_PROFILE_LWM2M11, .sleepy = true};

/* ---- gw_reg_params_parse ----------------------------------------------------------------- */

static void test_params_register(void **state) {
  gw_coap_msg_t msg;
  make_reg_msg(&msg, true,
               QUERIES("ep=urn:imei:490154203237518", "lt=300", "lwm2m=1.2", "b=UQ",
                       "sms=+15555550100", "vendor=x"));
  gw_reg_params_t p;
  assert_int_equal(gw_reg_params_parse(&msg, &p), 0);
  assert_string_equal(p.endpoint, "urn:imei:490154203237518");
  assert_true(p.has_lifetime);
  assert_int_equal(p.lifetime, 300);
  assert_string_equal(p.lwm2m_version, "1.2");
  assert_string_equal(p.binding, "UQ");
  assert_true(p.queue_mode); /* the 1.0 Q letter */
  assert_string_equal(p.sms_number, "+15555550100");
}

static void test_params_absent(void **state) {
  gw_coap_msg_t msg;
  make_reg_msg(&msg, false, QUERIES("b=N"));
  gw_reg_params_t p;
  memset(&p, 0x5a, sizeof(p));
  assert_int_equal(gw_reg_params_parse(&msg, &p), 0);
  assert_string_equal(p.endpoint, "");
  assert_string_equal(p.lwm2m_version, "");
  assert_false(p.has_lifetime);
  assert_int_equal(p.lifetime, 0);
  assert_false(p.queue_mode);
  assert_string_equal(p.sms_number, "");
}

static void test_params_queue_parameter(void **state) {
  gw_coap_msg_t msg;
  make_reg_msg(&msg, true, QUERIES("ep=a", "lwm2m=1.1", "b=U", "Q"));
  gw_reg_params_t p;
  assert_int_equal(gw_reg_params_parse(&msg, &p), 0);
  assert_true(p.queue_mode);
  assert_string_equal(p.binding, "U");
}

static void test_params_endpoint_length(void **state) {
  char query[3 + 129];
  memcpy(query, "ep=", 3);
  memset(query + 3, 'e', 127);
  query[3 + 127] = '\0';
  gw_coap_msg_t msg;
  gw_reg_params_t p;
  make_reg_msg(&msg, true, QUERIES(query));
  assert_int_equal(gw_reg_params_parse(&msg, &p), 0);
  assert_int_equal(strlen(p.endpoint), 127);

  query[3 + 127] = 'e';
  query[3 + 128] = '\0';
  make_reg_msg(&msg, true, QUERIES(query));
  assert_int_equal(gw_reg_params_parse(&msg, &p), -1);
}

static void test_params_overlong_values(void **state) {
  gw_coap_msg_t msg;
  gw_reg_params_t p;
  make_reg_msg(&msg, true, QUERIES("ep=a", "lwm2m=1.1.12345"));
  assert_int_equal(gw_reg_params_parse(&msg, &p), -1);
  make_reg_msg(&msg, true, QUERIES("ep=a", "b=UUUUUUUUUUUUUUUU"));
  assert_int_equal(gw_reg_params_parse(&msg, &p), -1);
  make_reg_msg(&msg, true, QUERIES("ep=a", "sms=+1234567890123456789012345678901"));
  assert_int_equal(gw_reg_params_parse(&msg, &p), -1);
}

static void test_params_bad_lifetime(void **state) {
  gw_coap_msg_t msg;
  gw_reg_params_t p;
  make_reg_msg(&msg, true, QUERIES("ep=a", "lt=4294967295"));
  assert_int_equal(gw_reg_params_parse(&msg, &p), 0);
  assert_int_equal(p.lifetime, 4294967295u);
  static const char *const bad[] = {"lt=4294967296", "lt=", "lt=-1", "lt=30s", "lt=99999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    make_reg_msg(&msg, true, QUERIES("ep=a", bad[i]));
    assert_int_equal(gw_reg_params_parse(&msg, &p), -1);
  }
}

/* A NUL inside a value would cut the C string short; refused rather than truncated. */
static void test_params_nul_in_value(void **state) {
  gw_coap_msg_t msg;
  make_reg_msg(&msg, true, QUERIES("lt=60"));
  gw_coap_add_option(&msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"ep=a\0b", 6);
  gw_reg_params_t p;
  assert_int_equal(gw_reg_params_parse(&msg, &p), -1);
}

/* ---- gw_profile_rewrite_query, lwm2m11 --------------------------------------------------- */

static void test_rewrite_version(void **state) {
  assert_rewrite(true, &strict, QUERIES("ep=a", "lwm2m=1.2"), QUERIES("ep=a", "lwm2m=1.1"));
  assert_rewrite(true, &strict, QUERIES("ep=a", "lwm2m=1.0"), QUERIES("ep=a", "lwm2m=1.0"));
  assert_rewrite(true, &strict, QUERIES("ep=a", "lwm2m=1.1"), QUERIES("ep=a", "lwm2m=1.1"));
  assert_rewrite(true, &strict, QUERIES("ep=a", "lwm2m=1.10"), QUERIES("ep=a", "lwm2m=1.1"));
  assert_rewrite(true, &strict, QUERIES("ep=a", "lwm2m="), QUERIES("ep=a", "lwm2m=1.1"));
}

static void test_rewrite_binding(void **state) {
  static const struct {
    const char *device, *upstream;
  } cases[] = {
      {"b=M", "b=U"},   {"b=UQ", "b=UQ"}, {"b=NQ", "b=NQ"},   {"b=UMH", "b=U"},
      {"b=T", "b=T"},   {"b=US", "b=US"}, {"b=UQS", "b=UQS"}, {"b=SU", "b=SU"},
      {"b=UUQQ", "b=UQ"}, {"b=MQ", "b=UQ"}, {"b=", "b=U"},  {"b=u", "b=U"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_rewrite(true, &strict, QUERIES("ep=a", cases[i].device),
                   QUERIES("ep=a", cases[i].upstream));
}

static void test_rewrite_binding_sleepy(void **state) {
  assert_rewrite(true, &strict_sleepy, QUERIES("ep=a", "b=N"), QUERIES("ep=a", "b=NQ"));
  assert_rewrite(true, &strict_sleepy, QUERIES("ep=a", "b=UQ"), QUERIES("ep=a", "b=UQ"));
  assert_rewrite(true, &strict_sleepy, QUERIES("ep=a", "b=M"), QUERIES("ep=a", "b=UQ"));
}

/* Issue 11: an unmodified UDP client behind an SMS modem registers with b=U (or no b= at all,
 * which means U); the server is told it is reached by SMS too. Passthrough leaves b= alone. */
static void test_rewrite_link_letter_added(void **state) {
  gw_rewrite_rules_t sms = {.profile = GW_PROFILE_LWM2M11, .link_letter = 'S'};
  assert_rewrite(true, &sms, QUERIES("ep=a", "b=U"), QUERIES("ep=a", "b=US"));
  assert_rewrite(true, &sms, QUERIES("ep=a", "b=S"), QUERIES("ep=a", "b=S"));
  assert_rewrite(true, &sms, QUERIES("ep=a", "b=SU"), QUERIES("ep=a", "b=SU"));
  assert_rewrite(true, &sms, QUERIES("ep=a", "b=UQ"), QUERIES("ep=a", "b=UQS"));
  assert_rewrite(true, &sms, QUERIES("ep=a", "b=M"), QUERIES("ep=a", "b=S"));
  assert_rewrite(true, &sms, QUERIES("ep=a", "lt=60"), QUERIES("ep=a", "lt=60", "b=US"));
  assert_rewrite(false, &sms, QUERIES("lt=60"), QUERIES("lt=60")); /* an Update keeps its b= */
  gw_rewrite_rules_t sms_sleepy = {.profile = GW_PROFILE_LWM2M11, .sleepy = true,
                                   .link_letter = 'S'};
  assert_rewrite(true, &sms_sleepy, QUERIES("ep=a"), QUERIES("ep=a", "b=USQ"));
  gw_rewrite_rules_t pass = {.profile = GW_PROFILE_PASSTHROUGH, .link_letter = 'S'};
  assert_rewrite(true, &pass, QUERIES("ep=a", "b=U"), QUERIES("ep=a", "b=U"));
  assert_rewrite(true, &pass, QUERIES("ep=a"), QUERIES("ep=a"));
}

/* LwM2M 1.1 6.2.1: queue mode announced with the Q parameter is relayed as the device sent it. */
static void test_rewrite_queue_parameter_kept(void **state) {
  assert_rewrite(true, &strict_sleepy, QUERIES("ep=a", "lwm2m=1.1", "b=U", "Q"),
                 QUERIES("ep=a", "lwm2m=1.1", "b=U", "Q"));
  assert_rewrite(true, &strict, QUERIES("ep=a", "Q", "b=N"), QUERIES("ep=a", "Q", "b=N"));
}

static void test_rewrite_lwm2m_register_example(void **state) {
  assert_rewrite(true, &strict, QUERIES("ep=node-1", "lt=300", "lwm2m=1.2", "b=UQ"),
                 QUERIES("ep=node-1", "lt=300", "lwm2m=1.1", "b=UQ"));
}

static void test_rewrite_other_params_in_order(void **state) {
  assert_rewrite(true, &strict,
                 QUERIES("vendor=1", "ep=a", "sms=+1555", "lwm2m=1.2", "x", "b=UM", "lt=60"),
                 QUERIES("vendor=1", "ep=a", "sms=+1555", "lwm2m=1.1", "x", "b=U", "lt=60"));
}

static void test_rewrite_endpoint_override(void **state) {
  gw_rewrite_rules_t rules = {.profile = GW_PROFILE_LWM2M11, .endpoint = "gw-node-7"};
  assert_rewrite(true, &rules, QUERIES("ep=device-own", "lt=300", "b=U"),
                 QUERIES("ep=gw-node-7", "lt=300", "b=U"));
  /* LwM2M 1.1+ lets the device leave ep= out; the server still needs the configured name */
  assert_rewrite(true, &rules, QUERIES("lt=300", "b=U"), QUERIES("ep=gw-node-7", "lt=300", "b=U"));
}

static void test_rewrite_update(void **state) {
  gw_rewrite_rules_t rules = {.profile = GW_PROFILE_LWM2M11, .sleepy = true,
                              .endpoint = "gw-node-7"};
  /* Update without b=: nothing to rewrite, no ep= added */
  assert_rewrite(false, &rules, QUERIES("lt=60"), QUERIES("lt=60"));
  assert_rewrite(false, &rules, QUERIES("lt=60", "b=UM"), QUERIES("lt=60", "b=UQ"));
  assert_rewrite(false, &rules, QUERIES("lwm2m=1.2", "b=N"), QUERIES("lwm2m=1.1", "b=NQ"));

  gw_coap_msg_t msg;
  make_reg_msg(&msg, false, (const char *const[]){NULL});
  gw_query_list_t list;
  assert_int_equal(gw_profile_rewrite_query(&msg, false, &rules, &list), 0);
  assert_int_equal(list.count, 0);
}

/* ---- gw_profile_rewrite_query, passthrough ----------------------------------------------- */

static void test_rewrite_passthrough(void **state) {
  gw_rewrite_rules_t rules = {.profile = GW_PROFILE_PASSTHROUGH, .sleepy = true};
  const char *const *queries = QUERIES("ep=a", "lt=300", "lwm2m=1.2", "b=UMH", "Q", "vendor=1");
  assert_rewrite(true, &rules, queries, queries);
  assert_rewrite(false, &rules, QUERIES("lwm2m=1.2", "b=M"), QUERIES("lwm2m=1.2", "b=M"));
  rules.endpoint = "gw-node-7";
  assert_rewrite(true, &rules, QUERIES("ep=a", "lwm2m=1.2", "b=M"),
                 QUERIES("ep=gw-node-7", "lwm2m=1.2", "b=M"));
}

/* ---- limits ------------------------------------------------------------------------------ */

static void test_rewrite_too_long(void **state) {
  static char big[300];
  memset(big, 'v', sizeof(big) - 1);
  memcpy(big, "x=", 2);
  gw_coap_msg_t msg;
  gw_query_list_t list;
  make_reg_msg(&msg, true, QUERIES("ep=a", big));
  assert_int_equal(gw_profile_rewrite_query(&msg, true, &strict, &list), 0);
  make_reg_msg(&msg, true, QUERIES("ep=a", big, big));
  assert_int_equal(gw_profile_rewrite_query(&msg, true, &strict, &list), -1);

  static char long_endpoint[GW_REG_QUERY_BUF];
  memset(long_endpoint, 'e', sizeof(long_endpoint) - 1);
  gw_rewrite_rules_t rules = {.profile = GW_PROFILE_PASSTHROUGH, .endpoint = long_endpoint};
  make_reg_msg(&msg, true, QUERIES("ep=a"));
  assert_int_equal(gw_profile_rewrite_query(&msg, true, &rules, &list), -1);
  make_reg_msg(&msg, true, QUERIES("lt=1"));
  assert_int_equal(gw_profile_rewrite_query(&msg, true, &rules, &list), -1);
}

static void test_rewrite_too_many(void **state) {
  gw_coap_msg_t msg;
  make_reg_msg(&msg, true, QUERIES("ep=a"));
  for (int i = 1; i < GW_REG_MAX_QUERY; i++)
    gw_coap_add_option(&msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"x=1", 3);
  gw_query_list_t list;
  assert_int_equal(gw_profile_rewrite_query(&msg, true, &strict, &list), 0);
  assert_int_equal(list.count, GW_REG_MAX_QUERY);
  gw_coap_add_option(&msg, GW_COAP_OPT_URI_QUERY, (const uint8_t *)"x=1", 3);
  assert_int_equal(gw_profile_rewrite_query(&msg, true, &strict, &list), -1);
}

/* ---- names ------------------------------------------------------------------------------- */

static void test_profile_names(void **state) {
  assert_int_equal(gw_profile_from_name("lwm2m11"), GW_PROFILE_LWM2M11);
  assert_int_equal(gw_profile_from_name("passthrough"), GW_PROFILE_PASSTHROUGH);
  assert_int_equal(gw_profile_from_name("LWM2M11"), -1);
  assert_int_equal(gw_profile_from_name(""), -1);
  assert_int_equal(gw_profile_from_name(NULL), -1);
  assert_string_equal(gw_profile_name(GW_PROFILE_LWM2M11), "lwm2m11");
  assert_string_equal(gw_profile_name(GW_PROFILE_PASSTHROUGH), "passthrough");
  assert_string_equal(gw_profile_name((gw_profile_t)7), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params_register),
      cmocka_unit_test(test_params_absent),
      cmocka_unit_test(test_params_queue_parameter),
      cmocka_unit_test(test_params_endpoint_length),
      cmocka_unit_test(test_params_overlong_values),
      cmocka_unit_test(test_params_bad_lifetime),
      cmocka_unit_test(test_params_nul_in_value),
      cmocka_unit_test(test_rewrite_version),
      cmocka_unit_test(test_rewrite_binding),
      cmocka_unit_test(test_rewrite_binding_sleepy),
      cmocka_unit_test(test_rewrite_queue_parameter_kept),
      cmocka_unit_test(test_rewrite_link_letter_added),
      cmocka_unit_test(test_rewrite_lwm2m_register_example),
      cmocka_unit_test(test_rewrite_other_params_in_order),
      cmocka_unit_test(test_rewrite_endpoint_override),
      cmocka_unit_test(test_rewrite_update),
      cmocka_unit_test(test_rewrite_passthrough),
      cmocka_unit_test(test_rewrite_too_long),
      cmocka_unit_test(test_rewrite_too_many),
      cmocka_unit_test(test_profile_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
