/* Unit tests of conf/config.c: every validation rule of conf/README.md, the exact
 * "FILE:LINE: SETTING:" prefix of errors, defaults, secrets from files, reload comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"

#define UP "upstream = ( { name = \"default\"; uri = \"coap://127.0.0.1:5683\"; } );\n"
#define UPS "upstream = ( { name = \"default\"; uri = \"coaps://127.0.0.1\"; } );\n"
#define NIDD "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; }; };\n"
#define MIN UP NIDD

static char tmp_dir[64];
static char err[1024];
static gw_config_t cfg;

/* ---- helpers ---- */

/* Files are private (0600), as secrets must be; tests that want them readable chmod them. */
static void write_file(const char *name, const char *content, char *out_path, size_t size) {
  snprintf(out_path, size, "%s/%s", tmp_dir, name);
  FILE *f = fopen(out_path, "w");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
  assert_int_equal(chmod(out_path, 0600), 0);
}

static int load(const char *text) {
  gw_config_free(&cfg);
  return gw_config_load_string(text, &cfg, err, sizeof(err));
}

static int load_path(const char *path) {
  gw_config_free(&cfg);
  return gw_config_load(path, &cfg, err, sizeof(err));
}

static void load_ok(const char *text) {
  int rc = load(text);
  if (rc != 0)
    fail_msg("expected success, got %d: %s\n--- config ---\n%s", rc, err, text);
}

/* The error must start with prefix ("<string>:LINE: SETTING: ...") and contain detail. */
static void load_err(const char *text, const char *prefix, const char *detail) {
  int rc = load(text);
  if (rc != GW_ERR_CONFIG)
    fail_msg("expected GW_ERR_CONFIG, got %d\n--- config ---\n%s", rc, text);
  if (strncmp(err, prefix, strlen(prefix)) != 0)
    fail_msg("error \"%s\"\n does not start with \"%s\"", err, prefix);
  if (detail && !strstr(err, detail))
    fail_msg("error \"%s\"\n does not contain \"%s\"", err, detail);
  /* a failed load leaves nothing behind */
  assert_null(cfg.upstreams);
  assert_null(cfg.devices);
  assert_null(cfg.gateway.state_dir);
}

/* A config with one device entry (fields given as libconfig text) and an upstream list. */
static const char *with_device(const char *upstream, const char *device_fields) {
  static char text[4096];
  snprintf(text, sizeof(text), "%sdevices = ( { %s } );\n%s", upstream, device_fields, NIDD);
  return text;
}

static const char *with_gateway(const char *gateway_fields) {
  static char text[4096];
  snprintf(text, sizeof(text), "gateway = { %s };\n%s", gateway_fields, MIN);
  return text;
}

static char ca_path[256], cert_path[256], key_path[256], psk_path[256], psk_bad_path[256],
    psk_odd_path[256], psk_empty_path[256], psk_big_path[256];

static int setup(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test_config.XXXXXX");
  if (!mkdtemp(tmp_dir))
    return -1;
  write_file("ca.pem", "-----BEGIN CERTIFICATE-----\n", ca_path, sizeof(ca_path));
  write_file("cert.pem", "-----BEGIN CERTIFICATE-----\n", cert_path, sizeof(cert_path));
  write_file("key.pem", "-----BEGIN PRIVATE KEY-----\n", key_path, sizeof(key_path));
  write_file("psk.hex", "  \n 00112233AABBccdd \r\n\n", psk_path, sizeof(psk_path));
  write_file("psk_bad.hex", "0011zz5ecret\n", psk_bad_path, sizeof(psk_bad_path));
  write_file("psk_odd.hex", "abc\n", psk_odd_path, sizeof(psk_odd_path));
  write_file("psk_empty.hex", " \n", psk_empty_path, sizeof(psk_empty_path));
  char big[5000];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  write_file("psk_big.hex", big, psk_big_path, sizeof(psk_big_path));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  gw_config_free(&cfg);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- defaults and the gateway group ---- */

static void test_defaults(void **state) {
  (void)state;
  load_ok(MIN);
  assert_null(cfg.path);
  assert_string_equal(cfg.gateway.state_dir, "/var/lib/lwm2m-gw");
  assert_int_equal(cfg.gateway.log_level, GW_LOG_INFO);
  assert_false(cfg.gateway.log_syslog);
  assert_null(cfg.gateway.metrics);
  assert_int_equal(cfg.gateway.piggyback_window_ms, 1500);
  assert_int_equal(cfg.gateway.device_timeout_ms, 10000);
  assert_int_equal(cfg.gateway.downlink_queue_length, 8);
  assert_int_equal(cfg.gateway.queue_awake_ms, 93000);
  assert_int_equal(cfg.gateway.max_devices, 10000);
  assert_int_equal(cfg.gateway.max_unregistered, 1000);
  assert_int_equal(cfg.gateway.unregistered_timeout_s, 30);
  assert_int_equal(cfg.gateway.uplink_queue_length, 64);
  assert_int_equal(cfg.gateway.uplink_hold_s, 86400);
  assert_int_equal(cfg.upstream_count, 1);
  const gw_upstream_conf_t *up = &cfg.upstreams[0];
  assert_string_equal(up->name, "default");
  assert_string_equal(up->uri, "coap://127.0.0.1:5683");
  assert_string_equal(up->host, "127.0.0.1");
  assert_int_equal(up->port, 5683);
  assert_false(up->secure);
  assert_int_equal(up->profile, GW_PROFILE_LWM2M11);
  assert_null(up->ca_file);
  assert_null(up->cert_file);
  assert_int_equal(cfg.device_count, 0);
  assert_null(cfg.devices);
  assert_true(cfg.bindings.nidd.enabled);
  assert_true(cfg.bindings.nidd.accept_unknown);
  assert_string_equal(cfg.bindings.nidd.sgi_listen, "127.0.0.1:5685");
}

static void test_gateway_all_set(void **state) {
  (void)state;
  load_ok(with_gateway("state_dir = \"/tmp/gw\"; log_level = \"debug\"; log_target = \"syslog\";"
                       " metrics = \"127.0.0.1:9464\"; piggyback_window_ms = 0;"
                       " device_timeout_ms = 600000; downlink_queue_length = 1024;"
                       " queue_awake_ms = 86400000; max_devices = 1000000;"));
  assert_string_equal(cfg.gateway.state_dir, "/tmp/gw");
  assert_int_equal(cfg.gateway.log_level, GW_LOG_DEBUG);
  assert_true(cfg.gateway.log_syslog);
  assert_string_equal(cfg.gateway.metrics, "127.0.0.1:9464");
  assert_int_equal(cfg.gateway.piggyback_window_ms, 0);
  assert_int_equal(cfg.gateway.device_timeout_ms, 600000);
  assert_int_equal(cfg.gateway.downlink_queue_length, 1024);
  assert_int_equal(cfg.gateway.queue_awake_ms, 86400000);
  assert_int_equal(cfg.gateway.max_devices, 1000000);
  load_ok(with_gateway("log_target = \"stderr\";"));
  assert_false(cfg.gateway.log_syslog);
  load_ok("gateway = { };\n" MIN);
}

static void test_log_level(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int level;
  } levels[] = {{"error", 3}, {"warning", 4}, {"notice", 5}, {"info", 6}, {"debug", 7}};
  char fields[128];
  for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
    snprintf(fields, sizeof(fields), "log_level = \"%s\";", levels[i].name);
    load_ok(with_gateway(fields));
    assert_int_equal(cfg.gateway.log_level, levels[i].level);
    snprintf(fields, sizeof(fields), "log_level = %d;", levels[i].level);
    load_ok(with_gateway(fields));
    assert_int_equal(cfg.gateway.log_level, levels[i].level);
  }
  load_err(with_gateway("log_level = \"verbose\";"), "<string>:1: gateway.log_level: expected",
           "\"debug\"");
  load_err(with_gateway("log_level = 8;"), "<string>:1: gateway.log_level: expected", NULL);
  load_err(with_gateway("log_level = 2;"), "<string>:1: gateway.log_level: expected", NULL);
  load_err(with_gateway("log_level = true;"), "<string>:1: gateway.log_level: expected", NULL);
  load_err(with_gateway("log_target = \"file\";"),
           "<string>:1: gateway.log_target: expected \"stderr\" or \"syslog\"", NULL);
  load_err(with_gateway("log_target = 1;"), "<string>:1: gateway.log_target: expected",
           "got an integer");
}

static void test_gateway_ranges(void **state) {
  (void)state;
  static const struct {
    const char *name;
    long long min, max;
  } ranges[] = {{"piggyback_window_ms", 0, 1999},
                {"device_timeout_ms", 2000, 600000}, /* min raised above the default window */
                {"downlink_queue_length", 0, 1024},
                {"queue_awake_ms", 1000, 86400000},
                {"max_devices", 1, 1000000},
                {"unregistered_timeout_s", 1, 86400},
                {"uplink_queue_length", 0, 4096},
                {"uplink_hold_s", 1, 2592000}};
  char fields[128], prefix[128];
  for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
    snprintf(prefix, sizeof(prefix), "<string>:1: gateway.%s: expected an integer from",
             ranges[i].name);
    snprintf(fields, sizeof(fields), "%s = %lld;", ranges[i].name, ranges[i].min);
    load_ok(with_gateway(fields));
    snprintf(fields, sizeof(fields), "%s = %lld;", ranges[i].name, ranges[i].max);
    load_ok(with_gateway(fields));
    snprintf(fields, sizeof(fields), "%s = %lld;", ranges[i].name, ranges[i].max + 1);
    load_err(with_gateway(fields), prefix, NULL);
    if (i != 1) { /* device_timeout_ms below its own minimum is checked next */
      snprintf(fields, sizeof(fields), "%s = %lld;", ranges[i].name, ranges[i].min - 1);
      load_err(with_gateway(fields), prefix, NULL);
    }
    snprintf(fields, sizeof(fields), "%s = \"5\";", ranges[i].name);
    load_err(with_gateway(fields), prefix, "got a string");
    snprintf(fields, sizeof(fields), "%s = 5.0;", ranges[i].name);
    load_err(with_gateway(fields), prefix, "got a float");
  }
  load_err(with_gateway("piggyback_window_ms = 2000;"),
           "<string>:1: gateway.piggyback_window_ms: expected an integer from 0 to 1999",
           "ACK_TIMEOUT");
  load_err(with_gateway("device_timeout_ms = 99;"),
           "<string>:1: gateway.device_timeout_ms: expected an integer from 100 to 600000", NULL);
  load_err(with_gateway("device_timeout_ms = 1500;"),
           "<string>:1: gateway.device_timeout_ms: must be greater than "
           "gateway.piggyback_window_ms (1500)",
           NULL);
  load_ok(with_gateway("piggyback_window_ms = 50; device_timeout_ms = 100;"));
  load_err(with_gateway("piggyback_window_ms = 100; device_timeout_ms = 100;"),
           "<string>:1: gateway.device_timeout_ms: must be greater", NULL);
  load_ok(with_gateway("max_devices = 100000L;"));
  assert_int_equal(cfg.gateway.max_devices, 100000);
  /* the unregistered limit: within max_devices, and following a small max_devices */
  load_err(with_gateway("max_devices = 50; max_unregistered = 51;"),
           "<string>:1: gateway.max_unregistered: must not exceed gateway.max_devices (50)", NULL);
  load_ok(with_gateway("max_devices = 50;"));
  assert_int_equal(cfg.gateway.max_unregistered, 50);
  load_ok(with_gateway("max_devices = 50; max_unregistered = 5;"));
  assert_int_equal(cfg.gateway.max_unregistered, 5);
  load_err(with_gateway("max_unregistered = 0;"),
           "<string>:1: gateway.max_unregistered: expected an integer from 1 to 1000000", NULL);
  load_ok(with_gateway("max_unregistered = 10000;"));
}

static void test_gateway_types(void **state) {
  (void)state;
  load_err(with_gateway("state_dir = 5;"),
           "<string>:1: gateway.state_dir: expected a directory path in double quotes, got an "
           "integer",
           NULL);
  load_err(with_gateway("state_dir = \"\";"), "<string>:1: gateway.state_dir: expected",
           "empty string");
  load_err("gateway = ( );\n" MIN, "<string>:1: gateway: expected a group", "got a list");
  load_err("gateway = \"x\";\n" MIN, "<string>:1: gateway: expected a group", "got a string");
}

static void test_metrics(void **state) {
  (void)state;
  const char *good[] = {"127.0.0.1:9464", "[::1]:9464", "localhost:9464", "0.0.0.0:1",
                        "127.0.0.1:65535"};
  const char *bad[] = {"127.0.0.1",  "127.0.0.1:0", "127.0.0.1:65536", "::1:9464",
                       "[::1",       "[::1]",       "[::1]9464",       ":9464",
                       "a b:9464",   "127.0.0.1:x", "[1.2.3.4]:80",    "127.0.0.1:-1",
                       "no-such-host.invalid:9464"};
  char fields[128];
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    snprintf(fields, sizeof(fields), "metrics = \"%s\";", good[i]);
    load_ok(with_gateway(fields));
    assert_string_equal(cfg.gateway.metrics, good[i]);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(fields, sizeof(fields), "metrics = \"%s\";", bad[i]);
    load_err(with_gateway(fields), "<string>:1: gateway.metrics: expected \"host:port\"", NULL);
  }
}

static void test_parse_host_port(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  unsigned len = 0;
  assert_int_equal(gw_parse_host_port("1.2.3.4:5685", &ss, &len), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(len, sizeof(struct sockaddr_in));
  const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
  assert_int_equal(ntohs(in4->sin_port), 5685);
  assert_int_equal(ntohl(in4->sin_addr.s_addr), 0x01020304);

  assert_int_equal(gw_parse_host_port("[::1]:5685", &ss, &len), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(len, sizeof(struct sockaddr_in6));
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
  assert_int_equal(ntohs(in6->sin6_port), 5685);
  assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));

  assert_int_equal(gw_parse_host_port("localhost:5685", &ss, &len), 0);
  assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
  assert_int_equal(gw_parse_host_port("localhost:5685", NULL, NULL), 0);

  assert_int_equal(gw_parse_host_port("1.2.3.4", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("1.2.3.4:0", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("1.2.3.4:65536", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("1.2.3.4:123456", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("1.2.3.4:", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("[::1]", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("[::1:5685", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("::1:5685", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port("", &ss, &len), -1);
  assert_int_equal(gw_parse_host_port(NULL, &ss, &len), -1);
}

/* ---- top level, syntax ---- */

static void test_top_level(void **state) {
  (void)state;
  load_err("gatway = { };\n" MIN, "<string>:1: gatway: unknown setting",
           "gateway, upstream, devices, bindings");
  load_err(MIN "\n\nversion = 2;\n", "<string>:5: version: unknown setting", NULL);
  load_err("gateway = { state_dir = \"/x\"; log_lvl = \"info\"; };\n" MIN,
           "<string>:1: gateway.log_lvl: unknown setting", "log_level");
}

static void test_syntax_errors(void **state) {
  (void)state;
  load_err(MIN "\nbad = (1,;\n", "<string>:4: syntax error", NULL);
  load_err("gateway = { state_dir = \"/a\";\n state_dir = \"/b\"; };\n" MIN,
           "<string>:2: duplicate setting name", NULL);
  load_err("upstream = [ { name = \"x\"; } ];\n" NIDD, "<string>:1: syntax error", NULL);
  load_err("", "<string>:1: upstream: missing", NULL);
  assert_int_equal(gw_config_load_string(NULL, &cfg, err, sizeof(err)), GW_ERR_CONFIG);
}

/* ---- upstream ---- */

static void test_upstream_list(void **state) {
  (void)state;
  load_err(NIDD, "<string>:1: upstream: missing", NULL);
  load_err("upstream = ();\n" NIDD, "<string>:1: upstream: expected at least one", NULL);
  load_err("upstream = [];\n" NIDD, "<string>:1: upstream: expected at least one", NULL);
  load_err("upstream = { name = \"default\"; uri = \"coap://h\"; };\n" NIDD,
           "<string>:1: upstream: expected a list", "got a group");
  load_err("upstream = [ 1, 2 ];\n" NIDD, "<string>:1: upstream.[0]: expected a group",
           "got an integer");
  load_err("upstream = ( { name = \"a\"; uri = \"coap://h\"; },\n  \"b\" );\n" NIDD,
           "<string>:2: upstream.[1]: expected a group", "got a string");
  /* missing settings are reported at the line of their group */
  load_err("upstream = (\n  { name = \"a\"; uri = \"coap://h\"; },\n  {\n    uri = \"coap://h\";\n"
           "  }\n);\n" NIDD,
           "<string>:3: upstream.[1].name: missing", NULL);
  load_err("upstream = (\n  { name = \"a\";\n  }\n);\n" NIDD,
           "<string>:2: upstream.[0].uri: missing", "coap://host[:port]");
  load_err("upstream = ( { name = \"a\"; uri = \"coap://h\"; url = \"x\"; } );\n" NIDD,
           "<string>:1: upstream.[0].url: unknown setting", "uri");
}

static void test_upstream_name(void **state) {
  (void)state;
  load_ok("upstream = ( { name = \"Leshan_1.eu-west\"; uri = \"coap://h\"; },\n"
          "             { name = \"b\"; uri = \"coap://h\"; } );\n" NIDD);
  assert_int_equal(cfg.upstream_count, 2);
  assert_string_equal(cfg.upstreams[0].name, "Leshan_1.eu-west");
  load_err("upstream = ( { name = \"le shan\"; uri = \"coap://h\"; } );\n" NIDD,
           "<string>:1: upstream.[0].name: expected a name of letters", NULL);
  load_err("upstream = ( { name = \"a/b\"; uri = \"coap://h\"; } );\n" NIDD,
           "<string>:1: upstream.[0].name: expected a name", NULL);
  load_err("upstream = ( { name = \"\"; uri = \"coap://h\"; } );\n" NIDD,
           "<string>:1: upstream.[0].name: expected", "empty");
  load_err("upstream = ( { name = 1; uri = \"coap://h\"; } );\n" NIDD,
           "<string>:1: upstream.[0].name: expected", "got an integer");
  load_err("upstream = ( { name = \"a\"; uri = \"coap://h\"; },\n"
           "             { name = \"a\"; uri = \"coap://h2\"; } );\n" NIDD,
           "<string>:2: upstream.[1].name: \"a\" is already the name of upstream.[0]", NULL);
}

static void test_upstream_uri(void **state) {
  (void)state;
  static const struct {
    const char *uri;
    bool secure;
    const char *host;
    int port;
  } good[] = {{"coap://leshan.example.net", false, "leshan.example.net", 5683},
              {"coaps://leshan.example.net", true, "leshan.example.net", 5684},
              {"coap://10.0.0.1:5783", false, "10.0.0.1", 5783},
              {"coaps://10.0.0.1:1", true, "10.0.0.1", 1},
              {"coap://[::1]", false, "::1", 5683},
              {"coaps://[2001:db8::1]:65535", true, "2001:db8::1", 65535},
              {"coap://host/", false, "host", 5683},
              {"COAPS://Host:5690/", true, "Host", 5690}};
  char text[512];
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    snprintf(text, sizeof(text), "upstream = ( { name = \"u\"; uri = \"%s\"; } );\n" NIDD,
             good[i].uri);
    load_ok(text);
    assert_string_equal(cfg.upstreams[0].uri, good[i].uri);
    assert_int_equal(cfg.upstreams[0].secure, good[i].secure);
    assert_string_equal(cfg.upstreams[0].host, good[i].host);
    assert_int_equal(cfg.upstreams[0].port, good[i].port);
  }
  const char *bad[] = {"http://h:80",        "coap://",          "coap://:5683",
                       "coap://h:0",         "coap://h:65536",   "coap://h:",
                       "coap://h/rd",        "coap://h?x=1",     "coap://user@h",
                       "coap://[::1",        "coap://[zz]:5683", "coap://::1:5683",
                       "coap+tcp://h",       "coap://h:56a3",    "coaps//h",
                       "coap://h:5683/x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(text, sizeof(text), "upstream = ( { name = \"u\"; uri = \"%s\"; } );\n" NIDD,
             bad[i]);
    load_err(text, "<string>:1: upstream.[0].uri: expected \"coap://host[:port]\" or", NULL);
  }
  load_err("upstream = ( { name = \"u\"; uri = 5683; } );\n" NIDD,
           "<string>:1: upstream.[0].uri: expected", "got an integer");
}

static void test_upstream_profile(void **state) {
  (void)state;
  load_ok("upstream = ( { name = \"u\"; uri = \"coap://h\"; profile = \"passthrough\"; } );\n" NIDD);
  assert_int_equal(cfg.upstreams[0].profile, GW_PROFILE_PASSTHROUGH);
  load_ok("upstream = ( { name = \"u\"; uri = \"coap://h\"; profile = \"lwm2m11\"; } );\n" NIDD);
  assert_int_equal(cfg.upstreams[0].profile, GW_PROFILE_LWM2M11);
  load_err("upstream = ( { name = \"u\"; uri = \"coap://h\"; profile = \"leshan\"; } );\n" NIDD,
           "<string>:1: upstream.[0].profile: expected \"lwm2m11\" or \"passthrough\"", NULL);
}

static void test_upstream_files(void **state) {
  (void)state;
  char text[2048];
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"u\"; uri = \"coaps://h\"; ca_file = \"%s\";\n"
           "  cert_file = \"%s\"; key_file = \"%s\"; } );\n" NIDD,
           ca_path, cert_path, key_path);
  load_ok(text);
  assert_string_equal(cfg.upstreams[0].ca_file, ca_path);
  assert_string_equal(cfg.upstreams[0].cert_file, cert_path);
  assert_string_equal(cfg.upstreams[0].key_file, key_path);

  snprintf(text, sizeof(text),
           "upstream = ( { name = \"u\"; uri = \"coap://h\";\n ca_file = \"%s\"; } );\n" NIDD,
           ca_path);
  load_err(text, "<string>:2: upstream.[0].ca_file: only used with a coaps:// uri", NULL);
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"u\"; uri = \"coap://h\"; cert_file = \"%s\"; "
           "key_file = \"%s\"; } );\n" NIDD,
           cert_path, key_path);
  load_err(text, "<string>:1: upstream.[0].cert_file: only used with a coaps:// uri", NULL);
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"u\"; uri = \"coaps://h\"; cert_file = \"%s\"; } );\n" NIDD,
           cert_path);
  load_err(text, "<string>:1: upstream.[0].cert_file: needs key_file too", NULL);
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"u\"; uri = \"coaps://h\"; key_file = \"%s\"; } );\n" NIDD,
           key_path);
  load_err(text, "<string>:1: upstream.[0].key_file: needs cert_file too", NULL);
  load_err("upstream = ( { name = \"u\"; uri = \"coaps://h\";\n\n ca_file = \"/nonexistent/ca.pem\"; } );\n" NIDD,
           "<string>:3: upstream.[0].ca_file: cannot read \"/nonexistent/ca.pem\"",
           "No such file");
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"u\"; uri = \"coaps://h\"; ca_file = \"%s\"; } );\n" NIDD,
           tmp_dir);
  load_err(text, "<string>:1: upstream.[0].ca_file: ", "is a directory");
  if (geteuid() != 0) { /* root reads anything */
    char locked[256];
    write_file("locked.pem", "x", locked, sizeof(locked));
    chmod(locked, 0);
    snprintf(text, sizeof(text),
             "upstream = ( { name = \"u\"; uri = \"coaps://h\"; ca_file = \"%s\"; } );\n" NIDD,
             locked);
    load_err(text, "<string>:1: upstream.[0].ca_file: cannot read", "Permission denied");
  }
}

/* ---- devices ---- */

static void test_devices_list(void **state) {
  (void)state;
  load_ok(UP "devices = ( );\n" NIDD);
  assert_int_equal(cfg.device_count, 0);
  load_ok(UP "devices = [ ];\n" NIDD);
  load_err(UP "devices = { endpoint = \"a\"; };\n" NIDD, "<string>:2: devices: expected a list",
           "got a group");
  load_err(UP "devices = ( \"a\" );\n" NIDD, "<string>:2: devices.[0]: expected a group",
           "got a string");
  load_err(UP "devices = (\n { endpoint = \"a\"; },\n {\n  upstream = \"default\";\n } );\n" NIDD,
           "<string>:4: devices.[1].endpoint: missing", NULL);
  load_err(with_device(UP, "endpoint = \"a\"; psk_key = \"00\";"),
           "<string>:2: devices.[0].psk_key: unknown setting", "psk_key_hex");
  load_err("gateway = { max_devices = 1; };\n" UP
           "devices = ( { endpoint = \"a\"; }, { endpoint = \"b\"; } );\n" NIDD,
           "<string>:3: devices: lists 2 devices, more than gateway.max_devices (1)", NULL);
}

static void test_device_defaults(void **state) {
  (void)state;
  load_ok(with_device(UP, "endpoint = \"meter-17\";"));
  assert_int_equal(cfg.device_count, 1);
  const gw_device_conf_t *d = &cfg.devices[0];
  assert_string_equal(d->endpoint, "meter-17");
  assert_null(d->upstream);
  assert_null(d->msisdn);
  assert_null(d->ue_address);
  assert_null(d->external_id);
  assert_null(d->psk_identity);
  assert_int_equal(d->psk_key_len, 0);
  assert_null(d->cert_file);
  assert_null(d->key_file);
  assert_false(d->queue_mode);
  load_ok(with_device(UP, "endpoint = \"m\"; queue_mode = true;"));
  assert_true(cfg.devices[0].queue_mode);
  load_err(with_device(UP, "endpoint = \"m\"; queue_mode = \"yes\";"),
           "<string>:2: devices.[0].queue_mode: expected true or false", "got a string");
  load_err(with_device(UP, "endpoint = \"m\"; queue_mode = 1;"),
           "<string>:2: devices.[0].queue_mode: expected true or false", "got an integer");
}

static void test_device_endpoint(void **state) {
  (void)state;
  char ep127[128], ep128[129], fields[300];
  memset(ep127, 'e', 127);
  ep127[127] = '\0';
  memset(ep128, 'e', 128);
  ep128[128] = '\0';
  snprintf(fields, sizeof(fields), "endpoint = \"%s\";", ep127);
  load_ok(with_device(UP, fields));
  load_ok(with_device(UP, "endpoint = \"urn:imei:490154203237518\";"));
  load_ok(with_device(UP, "endpoint = \"a!#$%()*+,-.:;<=>@[]^_{|}~\";"));
  snprintf(fields, sizeof(fields), "endpoint = \"%s\";", ep128);
  load_err(with_device(UP, fields), "<string>:2: devices.[0].endpoint: expected 1 to 127", NULL);
  const char *bad[] = {"a/b", "a?b", "a&b", "a b", "a\\tb", "caf\\xc3\\xa9"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(fields, sizeof(fields), "endpoint = \"%s\";", bad[i]);
    load_err(with_device(UP, fields), "<string>:2: devices.[0].endpoint: expected 1 to 127",
             "'/', '?', '&'");
  }
  load_err(with_device(UP, "endpoint = \"\";"), "<string>:2: devices.[0].endpoint: expected",
           "empty");
  load_err(with_device(UP, "endpoint = 17;"), "<string>:2: devices.[0].endpoint: expected",
           "got an integer");
  load_err(UP "devices = (\n { endpoint = \"a\"; },\n { endpoint = \"b\"; },\n"
              " { endpoint = \"a\"; },\n { endpoint = \"b\"; } );\n" NIDD,
           "<string>:5: devices.[2].endpoint: this value is already used by devices.[0] (line 3)",
           NULL);
}

static void test_device_upstream(void **state) {
  (void)state;
  const char *ups = "upstream = ( { name = \"first\"; uri = \"coap://h1\"; },\n"
                    "             { name = \"default\"; uri = \"coap://h2\"; } );\n";
  load_ok(with_device(ups, "endpoint = \"a\"; upstream = \"first\";"));
  assert_string_equal(cfg.devices[0].upstream, "first");
  load_err(with_device(ups, "endpoint = \"a\"; upstream = \"second\";"),
           "<string>:3: devices.[0].upstream: no upstream is named \"second\"", NULL);
  load_err(with_device(ups, "endpoint = \"a\"; upstream = 2;"),
           "<string>:3: devices.[0].upstream: expected", "got an integer");
}

static void test_find_upstream(void **state) {
  (void)state;
  load_ok("upstream = ( { name = \"first\"; uri = \"coap://h1\"; },\n"
          "             { name = \"default\"; uri = \"coap://h2\"; } );\n"
          "devices = ( { endpoint = \"a\"; upstream = \"first\"; }, { endpoint = \"b\"; } );\n" NIDD);
  assert_ptr_equal(gw_config_find_upstream(&cfg, "first"), &cfg.upstreams[0]);
  assert_ptr_equal(gw_config_find_upstream(&cfg, "default"), &cfg.upstreams[1]);
  assert_null(gw_config_find_upstream(&cfg, "none"));
  assert_null(gw_config_find_upstream(&cfg, NULL));
  assert_null(gw_config_find_upstream(NULL, "first"));
  assert_ptr_equal(gw_config_device_upstream(&cfg, &cfg.devices[0]), &cfg.upstreams[0]);
  assert_ptr_equal(gw_config_device_upstream(&cfg, &cfg.devices[1]), &cfg.upstreams[1]);
  assert_ptr_equal(gw_config_device_upstream(&cfg, NULL), &cfg.upstreams[1]);
  /* no upstream named "default": the first */
  load_ok("upstream = ( { name = \"x\"; uri = \"coap://h1\"; }, { name = \"y\"; uri = \"coap://h2\"; } );\n"
          "devices = ( { endpoint = \"b\"; } );\n" NIDD);
  assert_ptr_equal(gw_config_device_upstream(&cfg, &cfg.devices[0]), &cfg.upstreams[0]);
  gw_config_t empty = {0};
  assert_null(gw_config_device_upstream(&empty, NULL));
}

static void test_device_msisdn(void **state) {
  (void)state;
  const char *good[] = {"14155550125", "+14155550125", "112", "+123456789012345"};
  const char *bad[] = {"12", "+12", "1234567890123456", "+1 415 555", "1415-555", "++1415",
                       "+", "0x12"};
  char fields[128];
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    snprintf(fields, sizeof(fields), "endpoint = \"a\"; msisdn = \"%s\";", good[i]);
    load_ok(with_device(UP, fields));
    /* kept in 3GPP 23.003 form: the SMS binding's device address, without '+' */
    assert_string_equal(cfg.devices[0].msisdn, good[i] + (good[i][0] == '+'));
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(fields, sizeof(fields), "endpoint = \"a\"; msisdn = \"%s\";", bad[i]);
    load_err(with_device(UP, fields), "<string>:2: devices.[0].msisdn: expected an E.164 number",
             NULL);
  }
  load_err(with_device(UP, "endpoint = \"a\"; msisdn = 14155550125;"),
           "<string>:2: devices.[0].msisdn: expected", "got an integer");
  load_err(UP "devices = ( { endpoint = \"a\"; msisdn = \"+14155550125\"; },\n"
              "  { endpoint = \"b\"; msisdn = \"14155550125\"; } );\n" NIDD,
           "<string>:3: devices.[1].msisdn: this value is already used by devices.[0]", NULL);
}

static void test_device_ue_address(void **state) {
  (void)state;
  const char *good[] = {"10.0.0.7", "10.0.0.7:5683", "[2001:db8::7]", "[2001:db8::7]:1",
                        "[::ffff:10.0.0.7]:65535"};
  const char *bad[] = {"10.0.0",      "10.0.0.256",   "10.0.0.7:",    "10.0.0.7:0",
                       "10.0.0.7:65536", "2001:db8::7", "[2001:db8::7", "[2001:db8::7]:",
                       "[10.0.0.7]",  "host:5683",    "[]",           "10.0.0.7 ",
                       "[::1]x"};
  char fields[128];
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    snprintf(fields, sizeof(fields), "endpoint = \"a\"; ue_address = \"%s\";", good[i]);
    load_ok(with_device(UP, fields));
    assert_string_equal(cfg.devices[0].ue_address, good[i]);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(fields, sizeof(fields), "endpoint = \"a\"; ue_address = \"%s\";", bad[i]);
    load_err(with_device(UP, fields),
             "<string>:2: devices.[0].ue_address: expected \"ipv4\", \"ipv4:port\"", NULL);
  }
  /* distinct ports of one address are distinct UEs (NAT), a port-less entry takes them all */
  load_ok(UP "devices = ( { endpoint = \"a\"; ue_address = \"10.0.0.7:1000\"; },\n"
             "  { endpoint = \"b\"; ue_address = \"10.0.0.7:1001\"; },\n"
             "  { endpoint = \"c\"; ue_address = \"10.0.0.8\"; } );\n" NIDD);
  load_err(UP "devices = ( { endpoint = \"a\"; ue_address = \"10.0.0.7:1000\"; },\n"
              "  { endpoint = \"b\"; ue_address = \"10.0.0.7:1000\"; } );\n" NIDD,
           "<string>:3: devices.[1].ue_address: this address is already used by devices.[0]",
           NULL);
  load_err(UP "devices = ( { endpoint = \"a\"; ue_address = \"10.0.0.7:1000\"; },\n"
              "  { endpoint = \"b\"; ue_address = \"10.0.0.7\"; } );\n" NIDD,
           "<string>:3: devices.[1].ue_address: this address is already used by devices.[0]",
           NULL);
  load_err(UP "devices = ( { endpoint = \"a\"; ue_address = \"[2001:db8::7]\"; },\n"
              "  { endpoint = \"b\"; ue_address = \"[2001:db8:0::7]:5683\"; } );\n" NIDD,
           "<string>:3: devices.[1].ue_address: this address is already used by devices.[0]",
           NULL);
}

static void test_device_external_id(void **state) {
  (void)state;
  load_ok(with_device(UP, "endpoint = \"a\"; external_id = \"meter-17@iot.example.net\";"));
  assert_string_equal(cfg.devices[0].external_id, "meter-17@iot.example.net");
  load_ok(with_device(UP, "endpoint = \"a\"; external_id = \"123456@operator.example\";"));
  load_ok(with_device(UP, "endpoint = \"a\"; external_id = \"u/7+x@d\";")); /* RFC 4282 chars */
  /* TS 23.003 19.7.2: local@domain, the domain a realm (RFC 4282 2.1) */
  static const struct {
    const char *id, *reason;
  } bad[] = {{"meter-17", "no '@'"},
             {"@iot.example.net", "local identifier before '@' is empty"},
             {"meter@", "not a domain name"},
             {"a@b@c", "more than one '@'"},
             {"a b@c", "space"},
             {"a@b_c.net", "not a domain name"},
             {"a@-b.net", "not a domain name"},
             {"a@b-.net", "not a domain name"},
             {"a@b..net", "not a domain name"},
             {"a@.b.net", "not a domain name"},
             {"a@b.net.", "not a domain name"}};
  char fields[128];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(fields, sizeof(fields), "endpoint = \"a\"; external_id = \"%s\";", bad[i].id);
    load_err(with_device(UP, fields),
             "<string>:2: devices.[0].external_id: expected \"local-id@domain\" (3GPP TS 23.003 "
             "19.7 External Identifier): ",
             bad[i].reason);
  }
  load_err(UP "devices = ( { endpoint = \"a\"; external_id = \"x@d\"; },\n"
              "  { endpoint = \"b\"; external_id = \"x@d\"; } );\n" NIDD,
           "<string>:3: devices.[1].external_id: this value is already used by devices.[0]",
           NULL);
}

static void test_device_psk_hex(void **state) {
  (void)state;
  load_ok(with_device(UPS, "endpoint = \"a\"; psk_identity = \"a-id\"; psk_key_hex = \"00ff10Ab\";"));
  const gw_device_conf_t *d = &cfg.devices[0];
  assert_string_equal(d->psk_identity, "a-id");
  assert_int_equal(d->psk_key_len, 4);
  static const uint8_t key[] = {0x00, 0xff, 0x10, 0xab};
  assert_memory_equal(d->psk_key, key, sizeof(key));

  char hex[200], fields[300];
  memset(hex, 'a', 128);
  hex[128] = '\0';
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"%s\";",
           hex);
  load_ok(with_device(UPS, fields));
  assert_int_equal(cfg.devices[0].psk_key_len, 64);
  memset(hex, 'a', 130);
  hex[130] = '\0';
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"%s\";",
           hex);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].psk_key_hex: expected 2 to 128 hex",
           "longer than 64 bytes");
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"abc\";"),
           "<string>:2: devices.[0].psk_key_hex: expected 2 to 128 hex", "odd number");
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"5ecretzz\";"),
           "<string>:2: devices.[0].psk_key_hex: expected 2 to 128 hex", "not a hex digit");
  assert_null(strstr(err, "5ecret")); /* secrets are never echoed */
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"0x00\";"),
           "<string>:2: devices.[0].psk_key_hex: expected", NULL);
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"\";"),
           "<string>:2: devices.[0].psk_key_hex: expected", "empty");
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = 1234;"),
           "<string>:2: devices.[0].psk_key_hex: expected", "got an integer");
}

static void test_device_psk_pairing(void **state) {
  (void)state;
  char fields[512];
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\";"),
           "<string>:2: devices.[0].psk_identity: needs psk_key_hex or psk_key_file", NULL);
  load_err(with_device(UPS, "endpoint = \"a\"; psk_key_hex = \"0011\";"),
           "<string>:2: devices.[0].psk_key_hex: needs psk_identity", NULL);
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_key_file = \"%s\";", psk_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].psk_key_file: needs psk_identity",
           NULL);
  snprintf(fields, sizeof(fields),
           "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"0011\"; psk_key_file = \"%s\";",
           psk_path);
  load_err(with_device(UPS, fields),
           "<string>:2: devices.[0].psk_key_file: give either psk_key_hex or psk_key_file", NULL);
  load_err(with_device(UP, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"0011\";"),
           "<string>:2: devices.[0].psk_identity: DTLS credentials need a coaps:// upstream",
           "\"default\" is coap://");
  /* the device's own upstream decides, not the default */
  load_err("upstream = ( { name = \"default\"; uri = \"coaps://h\"; },\n"
           "             { name = \"plain\"; uri = \"coap://h\"; } );\n"
           "devices = ( { endpoint = \"a\"; upstream = \"plain\";\n"
           "  psk_identity = \"i\"; psk_key_hex = \"0011\"; } );\n" NIDD,
           "<string>:4: devices.[0].psk_identity: DTLS credentials need a coaps:// upstream",
           "\"plain\"");
  load_err(with_device(UPS, "endpoint = \"a\";"),
           "<string>:2: devices.[0]: upstream \"default\" is coaps:// but this device has no "
           "credentials",
           NULL);
}

static void test_device_psk_file(void **state) {
  (void)state;
  char fields[512];
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\";",
           psk_path);
  load_ok(with_device(UPS, fields));
  static const uint8_t key[] = {0x00, 0x11, 0x22, 0x33, 0xaa, 0xbb, 0xcc, 0xdd};
  assert_int_equal(cfg.devices[0].psk_key_len, sizeof(key));
  assert_memory_equal(cfg.devices[0].psk_key, key, sizeof(key));

  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\";",
           psk_bad_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].psk_key_file: ", "not a hex digit");
  assert_null(strstr(err, "5ecret"));
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\";",
           psk_odd_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].psk_key_file: ", "odd number");
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\";",
           psk_empty_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].psk_key_file: ", "empty");
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\";",
           psk_big_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].psk_key_file: ", "too large");
  load_err(with_device(UPS, "endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"/nonexistent/k\";"),
           "<string>:2: devices.[0].psk_key_file: cannot read \"/nonexistent/k\"", NULL);
}

static void test_device_cert(void **state) {
  (void)state;
  char fields[1024];
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; cert_file = \"%s\"; key_file = \"%s\";",
           cert_path, key_path);
  load_ok(with_device(UPS, fields));
  assert_string_equal(cfg.devices[0].cert_file, cert_path);
  assert_string_equal(cfg.devices[0].key_file, key_path);
  load_err(with_device(UP, fields),
           "<string>:2: devices.[0].cert_file: DTLS credentials need a coaps:// upstream", NULL);
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; cert_file = \"%s\";", cert_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].cert_file: needs key_file too",
           NULL);
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; key_file = \"%s\";", key_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].key_file: needs cert_file too",
           NULL);
  snprintf(fields, sizeof(fields), "endpoint = \"a\"; cert_file = \"%s\"; key_file = \"/no/key\";",
           cert_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].key_file: cannot read \"/no/key\"",
           NULL);
  snprintf(fields, sizeof(fields),
           "endpoint = \"a\"; cert_file = \"%s\"; key_file = \"%s\"; psk_identity = \"i\"; "
           "psk_key_hex = \"0011\";",
           cert_path, key_path);
  load_err(with_device(UPS, fields), "<string>:2: devices.[0].cert_file: a device uses either",
           NULL);
  /* the upstream's certificate serves devices without their own credentials */
  char text[2048];
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"default\"; uri = \"coaps://h\"; cert_file = \"%s\"; "
           "key_file = \"%s\"; } );\n"
           "devices = ( { endpoint = \"a\"; } );\n" NIDD,
           cert_path, key_path);
  load_ok(text);
}

/* ---- SMS channel security per device (Transport 5.3) ---- */

#define SMS_DEV "devices = ( { endpoint = \"m\"; msisdn = \"14155550125\"; "

static void test_device_sms_security(void **state) {
  (void)state;
  load_ok(UP SMS_DEV "sms_security = \"dtls\"; sms_psk_identity = \"m\"; "
                    "sms_psk_key_hex = \"000102030405060708090a0b0c0d0e0f\"; } );\n" NIDD);
  assert_int_equal(cfg.devices[0].sms_security, GW_SMS_SECURITY_DTLS);
  assert_string_equal(cfg.devices[0].sms_psk.identity, "m");
  assert_int_equal(cfg.devices[0].sms_psk.key_len, 16);
  assert_null(cfg.devices[0].psk_identity); /* the upstream credentials stay separate */
  load_ok(UP SMS_DEV "} );\n" NIDD);
  assert_int_equal(cfg.devices[0].sms_security, GW_SMS_SECURITY_NONE);
  load_err(UP SMS_DEV "sms_security = \"dtls\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_security: ", "needs sms_psk_identity");
  load_err(UP SMS_DEV "sms_security = \"tls\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_security: expected \"none\", \"dtls\"", NULL);
  load_err(UP "devices = ( { endpoint = \"m\"; sms_security = \"dtls\"; sms_psk_identity = \"m\"; "
              "sms_psk_key_hex = \"00ff\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_security: ", "msisdn");
  load_err(UP SMS_DEV "sms_psk_key_hex = \"00ff\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_psk_key_hex: needs sms_psk_identity", NULL);
}

#define SP_KEY32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void test_device_sms_secured_packet(void **state) {
  (void)state;
  load_ok(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                     "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD);
  assert_int_equal(cfg.devices[0].sms_security, GW_SMS_SECURITY_SECURED_PACKET);
  assert_true(cfg.devices[0].has_sms_key_params);
  static const uint8_t params[7] = {0x12, 0x12, 0x12, 0x00, 0xB2, 0x02, 0x03};
  assert_memory_equal(cfg.devices[0].sms_key_params, params, 7);
  assert_int_equal(cfg.devices[0].sms_secret_len, 32);
  assert_int_equal(cfg.devices[0].sms_secret[31], 0x1f);
  /* 48 and 64 octets */
  load_ok(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                     "sms_secret_key_hex = \"" SP_KEY32 "000102030405060708090a0b0c0d0e0f\"; } );\n" NIDD);
  assert_int_equal(cfg.devices[0].sms_secret_len, 48);
  load_ok(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                     "sms_secret_key_hex = \"" SP_KEY32 SP_KEY32 "\"; } );\n" NIDD);
  assert_int_equal(cfg.devices[0].sms_secret_len, 64);
  /* from a private file */
  char path[256], fields[1024];
  write_file("sp.hex", " " SP_KEY32 "\n", path, sizeof(path));
  snprintf(fields, sizeof(fields),
           UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                      "sms_secret_key_file = \"%s\"; } );\n" NIDD, path);
  load_ok(fields);
  assert_int_equal(cfg.devices[0].sms_secret_len, 32);
  assert_int_equal(cfg.devices[0].sms_secret[0], 0x00);
  assert_int_equal(cfg.devices[0].sms_secret[1], 0x01);
  /* a world-readable key file is refused */
  assert_int_equal(chmod(path, 0644), 0);
  load_err(fields, "<string>:2: devices.[0].sms_secret_key_file: ", "every user can read it");
  assert_int_equal(chmod(path, 0600), 0);
  /* a key file of the wrong length */
  char short_path[256];
  write_file("sp_short.hex", "00112233445566778899aabbccddeeff\n", short_path, sizeof(short_path));
  snprintf(fields, sizeof(fields),
           UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                      "sms_secret_key_file = \"%s\"; } );\n" NIDD, short_path);
  load_err(fields, "<string>:2: devices.[0].sms_secret_key_file: ", "32, 48 or 64 bytes");
  /* both hex and file */
  snprintf(fields, sizeof(fields),
           UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                      "sms_secret_key_hex = \"" SP_KEY32 "\"; sms_secret_key_file = \"%s\"; } );\n" NIDD,
           path);
  load_err(fields, "<string>:2: devices.[0].sms_secret_key_file: give either", NULL);
  /* required */
  load_err(UP SMS_DEV "sms_security = \"secured_packet\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_security: ", "needs sms_key_params_hex");
  load_err(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                      "} );\n" NIDD,
           "<string>:2: devices.[0].sms_security: ", "sms_secret_key_hex");
  load_err(UP SMS_DEV "sms_security = \"secured_packet\"; sms_secret_key_hex = \"" SP_KEY32 "\"; "
                      "} );\n" NIDD,
           "<string>:2: devices.[0].sms_security: ", "needs sms_key_params_hex");
  /* lengths */
  load_err(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"121212B20203\"; "
                      "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_key_params_hex: expected 14 hex digits", "not 7 bytes");
  load_err(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B2020z\"; "
                      "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_key_params_hex: ", "not a hex digit");
  load_err(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                      "sms_secret_key_hex = \"00112233445566778899aabbccddeeff\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_secret_key_hex: ", "not 32, 48 or 64 bytes");
  /* only with secured_packet */
  load_err(UP SMS_DEV "sms_key_params_hex = \"12121200B20203\"; } );\n" NIDD,
           "<string>:2: devices.[0].sms_key_params_hex: only used with", NULL);

  /* a key change is a session change */
  gw_config_t a;
  assert_int_equal(gw_config_load_string(UP SMS_DEV "sms_security = \"secured_packet\"; "
                                            "sms_key_params_hex = \"12121200B20203\"; "
                                            "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD,
                                         &a, err, sizeof(err)),
                   0);
  load_ok(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                     "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD);
  assert_false(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  load_ok(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121600B20203\"; "
                     "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD);
  assert_true(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  load_ok(UP SMS_DEV "sms_security = \"secured_packet\"; sms_key_params_hex = \"12121200B20203\"; "
                     "sms_secret_key_hex = \"" SP_KEY32 "\"; } );\n" NIDD);
  cfg.devices[0].sms_secret[5] ^= 1;
  assert_true(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  gw_config_free(&a);
  /* wiped on free */
  gw_config_free(&cfg);
  assert_int_equal(cfg.device_count, 0);
}

/* ---- secrets in files other users can read ---- */

static void test_secret_files_must_not_be_world_readable(void **state) {
  (void)state;
  char text[1024], conf_path[256];
  assert_int_equal(chmod(psk_path, 0644), 0);
  snprintf(text, sizeof(text),
           UPS "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\"; } );\n"
               NIDD, psk_path);
  load_err(text, "<string>:2: devices.[0].psk_key_file: ", "every user can read it (mode 0644)");
  /* The operator may decide otherwise, explicitly. */
  snprintf(text, sizeof(text),
           "gateway = { allow_readable_secrets = true; };\n" UPS
           "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\"; } );\n"
           NIDD, psk_path);
  load_ok(text);
  assert_int_equal(chmod(psk_path, 0640), 0); /* a service group may read it */
  snprintf(text, sizeof(text),
           UPS "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\"; } );\n"
               NIDD, psk_path);
  load_ok(text);
  assert_int_equal(chmod(psk_path, 0600), 0);

  /* A key written into the configuration file itself makes that file a secret. */
  write_file("inline.conf",
             UPS "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"00ff\"; } );\n"
                 NIDD, conf_path, sizeof(conf_path));
  gw_config_t c;
  assert_int_equal(gw_config_load(conf_path, &c, err, sizeof(err)), GW_OK);
  gw_config_free(&c);
  assert_int_equal(chmod(conf_path, 0644), 0);
  assert_int_equal(gw_config_load(conf_path, &c, err, sizeof(err)), GW_ERR_CONFIG);
  assert_non_null(strstr(err, ":2: devices.[0].psk_key_hex: "));
  assert_non_null(strstr(err, "every user can read it"));
  assert_null(strstr(err, "00ff")); /* never the secret itself */
}

/* An @include with a relative path is relative to the including file, not to the working
 * directory: its secrets are checked wherever the daemon was started from (issue 11). */
static void test_included_secret_checked_from_any_directory(void **state) {
  (void)state;
  char inc_path[256], main_path[256];
  write_file("secret-devices.conf",
             "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"00ff\"; } );\n",
             inc_path, sizeof(inc_path));
  write_file("with-include.conf", UPS "@include \"secret-devices.conf\"\n" NIDD, main_path,
             sizeof(main_path));
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir("/"), 0);
  int private_rc = load_path(main_path);
  assert_int_equal(chmod(inc_path, 0644), 0);
  int readable_rc = load_path(main_path);
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(private_rc, GW_OK);
  assert_int_equal(readable_rc, GW_ERR_CONFIG);
  assert_non_null(strstr(err, "secret-devices.conf:1: devices.[0].psk_key_hex: "));
  assert_non_null(strstr(err, "every user can read it (mode 0644)"));
}

/* A main file given by a relative path with a directory (lwm2m-gw --check-config
 * conf/lwm2m-gw.conf): its own secrets are checked in it, not in conf/conf/lwm2m-gw.conf. */
static void test_secret_in_main_file_by_relative_path(void **state) {
  (void)state;
  char main_path[256], cwd[512];
  write_file("inline-secret.conf",
             UPS "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_hex = \"00ff\"; } );\n"
                 NIDD,
             main_path, sizeof(main_path));
  const char *dir = strrchr(tmp_dir, '/');
  char relative[128];
  snprintf(relative, sizeof(relative), "%s/inline-secret.conf", dir + 1);
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir("/tmp"), 0);
  int private_rc = load_path(relative);
  char private_err[sizeof(err)];
  memcpy(private_err, err, sizeof(err));
  assert_int_equal(chmod(main_path, 0644), 0);
  int readable_rc = load_path(relative);
  assert_int_equal(chdir(cwd), 0);
  if (private_rc != GW_OK)
    fail_msg("%s", private_err);
  assert_int_equal(readable_rc, GW_ERR_CONFIG);
  assert_non_null(strstr(err, "inline-secret.conf:2: devices.[0].psk_key_hex: "));
  assert_non_null(strstr(err, "every user can read it (mode 0644)"));
}

/* Whoever can write the configuration or a file it names runs the gateway: refused, even with
 * allow_readable_secrets (issue 11). */
static void test_world_writable_files_refused(void **state) {
  (void)state;
  char main_path[256], inc_path[256], text[1024];
  write_file("plain.conf", MIN, main_path, sizeof(main_path));
  assert_int_equal(load_path(main_path), GW_OK);
  assert_int_equal(chmod(main_path, 0666), 0);
  assert_int_equal(load_path(main_path), GW_ERR_CONFIG);
  assert_non_null(strstr(err, "every user can write"));
  assert_non_null(strstr(err, "plain.conf"));
  assert_non_null(strstr(err, "(mode 0666)"));

  write_file("upstreams.conf", UP, inc_path, sizeof(inc_path));
  write_file("includes-upstreams.conf", "@include \"upstreams.conf\"\n" NIDD, main_path,
             sizeof(main_path));
  assert_int_equal(load_path(main_path), GW_OK);
  assert_int_equal(chmod(inc_path, 0602), 0);
  assert_int_equal(load_path(main_path), GW_ERR_CONFIG);
  assert_non_null(strstr(err, "upstreams.conf:1: (file): every user can write"));

  /* a trust anchor anyone may replace */
  assert_int_equal(chmod(ca_path, 0646), 0);
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"default\"; uri = \"coaps://h\"; ca_file = \"%s\"; "
           "cert_file = \"%s\"; key_file = \"%s\"; } );\n" NIDD,
           ca_path, cert_path, key_path);
  load_err(text, "<string>:1: upstream.[0].ca_file: ", "every user can write");
  assert_int_equal(chmod(ca_path, 0600), 0);
  load_ok(text);
  /* a key anyone may replace, even where readable secrets are allowed */
  assert_int_equal(chmod(psk_path, 0666), 0);
  snprintf(text, sizeof(text),
           "gateway = { allow_readable_secrets = true; };\n" UPS
           "devices = ( { endpoint = \"a\"; psk_identity = \"i\"; psk_key_file = \"%s\"; } );\n"
           NIDD, psk_path);
  load_err(text, "<string>:3: devices.[0].psk_key_file: ", "every user can write");
  assert_int_equal(chmod(psk_path, 0600), 0);
}

/* ---- bindings ---- */

#define SMS_ON "bindings = { sms = { enabled = true; modem = \"/dev/ttyUSB2\"; "

static void test_sms_binding(void **state) {
  (void)state;
  gw_config_t c;
  char msg[512];
  assert_int_equal(gw_config_load_string(UP SMS_ON "msisdn = \"+12125550178\"; pin = \"1234\"; "
                                            "allow = [ \"14155550125\", \"+4915112345678\" ]; "
                                            "}; };\n",
                                         &c, msg, sizeof(msg)),
                   GW_OK);
  const gw_sms_conf_t *sms = &c.bindings.sms;
  assert_true(sms->enabled);
  assert_string_equal(sms->modem, "/dev/ttyUSB2");
  assert_string_equal(sms->msisdn, "12125550178"); /* 23.003 form: '+' dropped */
  assert_string_equal(sms->pin, "1234");
  assert_string_equal(sms->storage, "ME");
  assert_true(sms->concatenated);
  assert_int_equal(sms->baud, 115200);
  assert_int_equal(sms->reassembly_timeout_ms, 60000);
  assert_int_equal(sms->allow_count, 2);
  assert_string_equal(sms->allow[1], "4915112345678");
  gw_config_free(&c);

  load_err(UP "bindings = { sms = { enabled = true; }; };\n",
           "<string>:2: bindings.sms.modem: missing", NULL);
  load_err(UP SMS_ON "pin = \"12\"; }; };\n", "<string>:2: bindings.sms.pin: ",
           "4 to 8 digits");
  load_err(UP SMS_ON "pin = \"1234\"; pin_file = \"/etc/hostname\"; }; };\n",
           "<string>:2: bindings.sms.pin_file: ", "not both");
  load_err(UP SMS_ON "allow = [ \"14155550125\", \"x1\" ]; }; };\n",
           "<string>:2: bindings.sms.allow.[1]: ", "E.164");
  load_err(UP SMS_ON "storage = \"XX\"; }; };\n", "<string>:2: bindings.sms.storage: ", "\"SM\"");
  load_err(UP SMS_ON "baud = 0; }; };\n", "<string>:2: bindings.sms.baud: ", NULL);
  load_err(UP SMS_ON "modme = 1; }; };\n", "<string>:2: bindings.sms.modme: unknown setting",
           NULL);
}

static void test_bindings(void **state) {
  (void)state;
  load_err(UP, "<string>:1: bindings: no binding is enabled", NULL);
  load_err(UP "\nbindings = {\n  nidd = { enabled = false; };\n};\n",
           "<string>:3: bindings: no binding is enabled", NULL);
  load_err(UP "bindings = { };\n", "<string>:2: bindings: no binding is enabled", NULL);
  load_err(UP "bindings = ( );\n", "<string>:2: bindings: expected a group", "got a list");
  load_err(UP "bindings = { lorawan = { enabled = \"no\"; }; };\n",
           "<string>:2: bindings.lorawan.enabled: expected true or false", NULL);
  load_err(UP "bindings = { lorawan = 1; };\n", "<string>:2: bindings.lorawan: expected a group",
           NULL);
  /* disabled bindings still have their settings checked: a typo is a typo */
  load_ok(UP "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; };\n"
             "  sms = { modem = \"/dev/ttyUSB2\"; pin = \"1234\"; allow = [ \"1415\" ]; };\n"
             "  lorawan = { enabled = false; network_server = \"tts\"; }; };\n");
  load_err(UP "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; };\n"
              "  lorawan = { enabled = false; region = \"EU868\"; }; };\n",
           "<string>:3: bindings.lorawan.region: unknown setting", "network_server");
  load_err(UP "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; };\n"
              "  coap = { enabled = false; }; };\n",
           "<string>:3: bindings.coap: unknown binding", "nidd, sms, mqtt, http or lorawan");
}

#define HTTP_ON(extra) "bindings = { http = { enabled = true; listen = \"127.0.0.1:8080\"; " extra " }; };\n"

/* bindings.http and the devices' http_* settings (Transport 7). */
static void test_http(void **state) {
  (void)state;
  load_ok(UP HTTP_ON(""));
  assert_true(cfg.bindings.http.enabled);
  assert_string_equal(cfg.bindings.http.listen, "127.0.0.1:8080");
  assert_false(cfg.bindings.http.accept_unknown);
  assert_int_equal(cfg.bindings.http.max_body, 65536);
  assert_null(cfg.bindings.http.cert_file);
  assert_null(cfg.bindings.http.bootstrap);

  load_ok("upstream = ( { name = \"default\"; uri = \"coap://h\"; }, { name = \"bs\"; uri = "
          "\"coap://b\"; } );\n"
          "devices = ( { endpoint = \"h1\"; http_url = \"http://10.0.0.5:8080/lwm2m//\"; "
          "http_password = \"pw\"; },\n"
          "  { endpoint = \"h2\"; http_url = \"https://[::1]:8443\"; http_token = \"t0k\"; } );\n"
          HTTP_ON("bootstrap = \"bs\"; accept_unknown = true; max_body = 2048;"));
  assert_string_equal(cfg.bindings.http.bootstrap, "bs");
  assert_true(cfg.bindings.http.accept_unknown);
  assert_int_equal(cfg.bindings.http.max_body, 2048);
  assert_string_equal(cfg.devices[0].http_url, "http://10.0.0.5:8080/lwm2m");
  assert_string_equal(cfg.devices[0].http_password, "pw");
  assert_null(cfg.devices[0].http_token);
  assert_string_equal(cfg.devices[1].http_url, "https://[::1]:8443");
  assert_string_equal(cfg.devices[1].http_token, "t0k");

  load_err(UP "bindings = { http = { enabled = true; }; };\n",
           "<string>:2: bindings.http.listen: missing", "host:port");
  load_err(UP "bindings = { http = { enabled = true; listen = \"nowhere\"; }; };\n",
           "<string>:2: bindings.http.listen: ", "to listen on");
  load_err(UP HTTP_ON("bootstrap = \"nope\";"), "<string>:2: bindings.http.bootstrap: ",
           "no upstream is named \"nope\"");
  load_err(UP HTTP_ON("cert_file = \"/etc/hostname\";"), "<string>:2: bindings.http.cert_file: ",
           "needs key_file");
  load_err(UP HTTP_ON("client_ca_file = \"/etc/hostname\";"),
           "<string>:2: bindings.http.client_ca_file: ", "need TLS");
  load_err(UP HTTP_ON("device_cert_file = \"/etc/hostname\";"),
           "<string>:2: bindings.http.device_cert_file: ", "device_key_file");
  load_err(UP HTTP_ON("max_body = 10;"), "<string>:2: bindings.http.max_body: ", "1024");
  load_err(UP HTTP_ON("realm = \"x\";"), "<string>:2: bindings.http.realm: ", "unknown");

  static const struct {
    const char *url, *reason;
  } bad_urls[] = {
      {"ftp://h", "http:// or https://"},
      {"http://", "no host"},
      {"http://:80", "no host"},
      {"http://h:99999", "invalid port"},
      {"http://h:x", "invalid port"},
      {"http://[::1", "unterminated"},
      {"http://h/a?b=1", "query"},
      {"http://h/#x", "fragment"},
      {"http://u:p@h", "user information"},
      {"http://h/a b", "space"},
  };
  char text[512];
  for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
    snprintf(text, sizeof(text),
             UP "devices = ( { endpoint = \"h1\"; http_url = \"%s\"; } );\n" HTTP_ON(""),
             bad_urls[i].url);
    load_err(text, "<string>:2: devices.[0].http_url: ", bad_urls[i].reason);
  }
  load_err(UP "devices = ( { endpoint = \"h1\"; http_password = \"a\"; http_token = \"b\"; } );\n"
           HTTP_ON(""), "<string>:2: devices.[0].http_token: ", "not both");
  load_err(UP "devices = ( { endpoint = \"h1\"; http_password = \"\"; } );\n" HTTP_ON(""),
           "<string>:2: devices.[0].http_password: ", "empty string");
  load_err(UP "devices = ( { endpoint = \"h1\"; http_token = \"a\"; http_token_file = \"/x\"; "
           "} );\n" HTTP_ON(""), "<string>:2: devices.[0].http_token_file: ", "not both");
}

/* bindings.http's limits against slowloris and floods: defaults, values, errors. */
static void test_http_limits(void **state) {
  (void)state;
  load_ok(UP HTTP_ON(""));
  const gw_http_conf_t *h = &cfg.bindings.http;
  assert_int_equal(h->max_connections, 256);
  assert_int_equal(h->max_connections_per_client, 16);
  assert_int_equal(h->idle_timeout_s, 60);
  assert_int_equal(h->header_timeout_s, 10);
  assert_int_equal(h->body_timeout_s, 30);
  load_ok(UP HTTP_ON("max_connections = 1000; max_connections_per_client = 4; "
                     "idle_timeout_s = 120; header_timeout_s = 5; body_timeout_s = 20;"));
  assert_int_equal(h->max_connections, 1000);
  assert_int_equal(h->max_connections_per_client, 4);
  assert_int_equal(h->idle_timeout_s, 120);
  assert_int_equal(h->header_timeout_s, 5);
  assert_int_equal(h->body_timeout_s, 20);
  /* the per-client default follows a smaller total */
  load_ok(UP HTTP_ON("max_connections = 8;"));
  assert_int_equal(h->max_connections_per_client, 8);

  load_err(UP HTTP_ON("max_connections = 0;"), "<string>:2: bindings.http.max_connections: ",
           "from 1 to 65535 connections, got 0");
  load_err(UP HTTP_ON("max_connections = 8; max_connections_per_client = 32;"),
           "<string>:2: bindings.http.max_connections_per_client: ",
           "32 is more than max_connections (8)");
  load_err(UP HTTP_ON("max_connections_per_client = 0;"),
           "<string>:2: bindings.http.max_connections_per_client: ", "from 1 to 65535");
  load_err(UP HTTP_ON("idle_timeout_s = \"60\";"), "<string>:2: bindings.http.idle_timeout_s: ",
           "expected an integer from 1 to 86400 seconds, got a string");
  load_err(UP HTTP_ON("header_timeout_s = 0;"), "<string>:2: bindings.http.header_timeout_s: ",
           "from 1 to 3600 seconds");
  load_err(UP HTTP_ON("body_timeout_s = 3601;"), "<string>:2: bindings.http.body_timeout_s: ",
           "got 3601");
}

#define MQTT_ON(extra) "bindings = { mqtt = { enabled = true; broker = \"tcp://127.0.0.1:1883\"; " extra " }; };\n"

static void test_mqtt(void **state) {
  (void)state;
  load_ok(UP MQTT_ON(""));
  assert_true(cfg.bindings.mqtt.enabled);
  assert_int_equal(cfg.bindings.mqtt.qos, 1);
  assert_int_equal(cfg.bindings.mqtt.mqtt_version, 4);
  assert_int_equal(cfg.bindings.mqtt.keepalive_s, 30);
  assert_int_equal(cfg.bindings.mqtt.session_expiry_s, 86400); /* a day: persistent session */
  assert_null(cfg.bindings.mqtt.client_id); /* the client's stable lwm2m-gw-<hostname> */
  assert_true(cfg.bindings.mqtt.accept_unknown);
  assert_int_equal(cfg.bindings.mqtt.tenant_count, 1);
  assert_string_equal(cfg.bindings.mqtt.tenants[0].prefix, "");
  assert_null(cfg.bindings.mqtt.tenants[0].upstream);
  assert_null(cfg.bindings.mqtt.tenants[0].bootstrap);

  load_ok("upstream = ( { name = \"default\"; uri = \"coap://h\"; }, { name = \"bs\"; uri = "
          "\"coap://b\"; } );\n" MQTT_ON("prefix = \"t/a\"; bootstrap = \"bs\"; qos = 2; "
                                         "mqtt_version = 5; keepalive = 60; client_id = \"gw-1\"; "
                                         "username = \"u\"; password = \"p\";"));
  assert_string_equal(cfg.bindings.mqtt.tenants[0].prefix, "t/a");
  assert_string_equal(cfg.bindings.mqtt.tenants[0].bootstrap, "bs");
  assert_int_equal(cfg.bindings.mqtt.qos, 2);
  assert_int_equal(cfg.bindings.mqtt.mqtt_version, 5);
  assert_string_equal(cfg.bindings.mqtt.password, "p");

  /* Session Expiry Interval: 0 (clean session) up to 68 years (MQTT 5 3.1.2.11.2). */
  load_ok(UP MQTT_ON("session_expiry_s = 0;"));
  assert_int_equal(cfg.bindings.mqtt.session_expiry_s, 0);
  load_ok(UP MQTT_ON("session_expiry_s = 2147483647;"));
  assert_int_equal(cfg.bindings.mqtt.session_expiry_s, 2147483647);
  load_ok(UP MQTT_ON("session_expiry_s = 3600;"));
  assert_int_equal(cfg.bindings.mqtt.session_expiry_s, 3600);
  load_err(UP MQTT_ON("session_expiry_s = -1;"), "<string>:2: bindings.mqtt.session_expiry_s: ",
           "from 0 to 2147483647 seconds (0: clean session");
  load_err(UP MQTT_ON("session_expiry_s = 2147483648L;"),
           "<string>:2: bindings.mqtt.session_expiry_s: ", "got 2147483648");
  load_err(UP MQTT_ON("session_expiry_s = \"1d\";"),
           "<string>:2: bindings.mqtt.session_expiry_s: ", "got a string");

  load_ok("upstream = ( { name = \"default\"; uri = \"coap://h\"; }, { name = \"b\"; uri = "
          "\"coap://b\"; } );\n"
          "devices = ( { endpoint = \"m1\"; mqtt_prefix = \"tenant-b\"; } );\n"
          MQTT_ON("prefixes = ( { prefix = \"tenant-a\"; }, { prefix = \"tenant-b\"; "
                  "upstream = \"b\"; } );"));
  assert_int_equal(cfg.bindings.mqtt.tenant_count, 2);
  assert_string_equal(cfg.bindings.mqtt.tenants[1].upstream, "b");
  assert_string_equal(cfg.devices[0].mqtt_prefix, "tenant-b");

  load_err(UP "bindings = { mqtt = { enabled = true; }; };\n",
           "<string>:2: bindings.mqtt.broker: missing", "broker URI");
  load_err(UP "bindings = { mqtt = { enabled = true; broker = \"http://x\"; }; };\n",
           "<string>:2: bindings.mqtt.broker: expected a tcp://", "got \"http://x\"");
  load_err(UP MQTT_ON("prefix = \"a/#\";"), "<string>:2: bindings.mqtt.prefix: ", "wildcard");
  load_err(UP MQTT_ON("prefix = \"$SYS\";"), "<string>:2: bindings.mqtt.prefix: ", "'$'");
  load_err(UP MQTT_ON("prefix = \"a/\";"), "<string>:2: bindings.mqtt.prefix: ", "ends with '/'");
  load_err(UP MQTT_ON("prefix = 1;"), "<string>:2: bindings.mqtt.prefix: ", "got an integer");
  load_err(UP MQTT_ON("upstream = \"nope\";"), "<string>:2: bindings.mqtt.upstream: ",
           "no upstream is named \"nope\"");
  load_err(UP MQTT_ON("qos = 3;"), "<string>:2: bindings.mqtt.qos: ", "from 0 to 2");
  load_err(UP MQTT_ON("mqtt_version = 3;"), "<string>:2: bindings.mqtt.mqtt_version: ",
           "4 = MQTT 3.1.1");
  load_err(UP MQTT_ON("cert_file = \"/etc/hostname\";"), "<string>:2: bindings.mqtt.cert_file: ",
           "needs key_file");
  load_err(UP MQTT_ON("prefix = \"a\"; prefixes = ( { prefix = \"b\"; } );"),
           "<string>:2: bindings.mqtt: ", "not both");
  load_err(UP MQTT_ON("prefixes = ( );"), "<string>:2: bindings.mqtt.prefixes: ", "at least one");
  load_err(UP MQTT_ON("prefixes = ( { prefix = \"a\"; }, { prefix = \"a\"; } );"),
           "<string>:2: bindings.mqtt.prefixes.[1]: ", "already given by bindings.mqtt.prefixes.[0]");
  load_err(UP MQTT_ON("prefixes = ( { prefix = \"a\"; bogus = 1; } );"),
           "<string>:2: bindings.mqtt.prefixes.[0].bogus: unknown setting", NULL);
  load_err(UP MQTT_ON("password = \"x\"; password_file = \"/etc/hostname\";"),
           "<string>:2: bindings.mqtt.password_file: ", "not both");
  load_err(UP "devices = ( { endpoint = \"m1\"; mqtt_prefix = \"c\"; } );\n"
              MQTT_ON("prefix = \"a\";"),
           "<string>:2: devices.[0].mqtt_prefix: ", "not one of bindings.mqtt's prefixes");
  load_err(UP "devices = ( { endpoint = \"m1\"; mqtt_prefix = \"c+\"; } );\n" NIDD,
           "<string>:2: devices.[0].mqtt_prefix: ", "wildcard");

  /* The password from a private file; a world-readable one is refused. */
  char path[128], text[512];
  write_file("mqtt-password", "s3cret\n", path, sizeof(path));
  snprintf(text, sizeof(text), UP MQTT_ON("password_file = \"%s\";"), path);
  load_ok(text);
  assert_string_equal(cfg.bindings.mqtt.password, "s3cret");
  assert_int_equal(chmod(path, 0644), 0);
  load_err(text, "<string>:2: bindings.mqtt.password_file: ", "every user can read it");
}

static void test_nidd(void **state) {
  (void)state;
  load_ok(UP "bindings = { nidd = { enabled = true; accept_unknown = false;\n"
             "  sgi = { listen = \"[::1]:5685\"; }; }; };\n");
  assert_false(cfg.bindings.nidd.accept_unknown);
  assert_string_equal(cfg.bindings.nidd.sgi_listen, "[::1]:5685");
  load_ok(UP "bindings = { nidd = { enabled = true; sgi = { listen = \"localhost:5685\"; }; }; };\n");
  load_err(UP "bindings = {\n nidd = { enabled = true; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: missing", NULL);
  load_err(UP "bindings = { nidd = { enabled = true;\n sgi = { }; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: missing", NULL);
  load_err(UP "bindings = { nidd = { enabled = true;\n sgi = { listen = \"127.0.0.1\"; }; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: expected \"host:port\"", "missing \":port\"");
  load_err(UP "bindings = { nidd = { enabled = true;\n sgi = { listen = \"127.0.0.1:0\"; }; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: expected \"host:port\"", "1 to 65535");
  load_err(UP "bindings = { nidd = { enabled = true;\n sgi = { listen = 5685; }; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: expected", "got an integer");
  load_err(UP "bindings = { nidd = { enabled = true; sgi = \"127.0.0.1:5685\"; }; };\n",
           "<string>:2: bindings.nidd.sgi: expected a group", NULL);
  load_err(UP "bindings = { nidd = { enabled = 1; sgi = { listen = \"127.0.0.1:5685\"; }; }; };\n",
           "<string>:2: bindings.nidd.enabled: expected true or false", NULL);
  load_err(UP "bindings = { nidd = { enabled = true; accept_unknown = \"yes\";\n"
              " sgi = { listen = \"127.0.0.1:5685\"; }; }; };\n",
           "<string>:2: bindings.nidd.accept_unknown: expected true or false", NULL);
  load_err(UP "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\";\n"
              "  port = 1; }; }; };\n",
           "<string>:3: bindings.nidd.sgi.port: unknown setting", "listen");
  load_err(UP "bindings = { nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; };\n"
              "  tunnel = { }; }; };\n",
           "<string>:3: bindings.nidd.tunnel: unknown setting", "sgi, scef, accept_unknown");
  /* a disabled nidd still has its address checked: a typo is a typo */
  load_err(UP "bindings = { nidd = { enabled = false;\n sgi = { listen = \"x\"; }; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: expected \"host:port\"", NULL);
}

/* ---- bindings.nidd.scef: NIDD via SCEF, T8 (issue 13; Transport Appendix D.3) ---- */

/* Line 1 the upstreams, 2 the devices, 3 opens nidd, 4 its sgi, 5 the scef group: errors in its
 * settings, and missing ones, are reported at line 5. nidd with sgi keeps every test
 * independent of WITH_* options. */
#define SCEF_UPS                                                                                 \
  "upstream = ( { name = \"default\"; uri = \"coap://h\"; }, { name = \"bs\"; uri = \"coap://b\"; } );\n"
#define SCEF_DEV "devices = ( { endpoint = \"nb-1\"; external_id = \"123456@operator.example\"; } );\n"
#define SCEF(fields)                                                                             \
  SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = true;\n"                                    \
                    "  sgi = { listen = \"127.0.0.1:5685\"; };\n"                                \
                    "  scef = { " fields " }; }; };\n"
#define SCEF_MIN                                                                                 \
  "url = \"https://scef.example.net/api/\"; scs_as_id = \"lwm2m-gw\"; "                          \
  "notification_listen = \"127.0.0.1:8081\"; "
/* Off: checked and filled in, not refused. */
#define SCEF_OFF "enabled = false; " SCEF_MIN
#define SCEF_REFUSED "NIDD via SCEF is not implemented in this version yet"

static void assert_scef_unset(const gw_scef_conf_t *scef) {
  assert_false(scef->enabled);
  assert_null(scef->token);
  assert_false(scef->has_oauth);
  assert_null(scef->oauth.token_url);
  assert_null(scef->oauth.client_id);
  assert_null(scef->oauth.client_secret);
  assert_null(scef->oauth.scope);
  assert_null(scef->ca_file);
  assert_null(scef->cert_file);
  assert_null(scef->key_file);
  assert_null(scef->notification_allow);
  assert_int_equal(scef->notification_allow_count, 0);
  assert_false(scef->reliable_data_service);
  assert_int_equal(scef->configuration_duration_s, 86400);
  assert_int_equal(scef->maximum_latency_s, 0);
  assert_null(scef->external_group_id);
  assert_null(scef->rds);
  assert_int_equal(scef->rds_count, 0);
}

static void test_scef_defaults(void **state) {
  (void)state;
  load_ok(MIN); /* no scef group */
  assert_scef_unset(&cfg.bindings.nidd.scef);
  assert_null(cfg.bindings.nidd.scef.url);
  load_ok(SCEF(SCEF_OFF));
  const gw_scef_conf_t *scef = &cfg.bindings.nidd.scef;
  assert_scef_unset(scef);
  assert_string_equal(scef->url, "https://scef.example.net/api"); /* the '/' dropped */
  assert_string_equal(scef->scs_as_id, "lwm2m-gw");
  assert_string_equal(scef->notification_listen, "127.0.0.1:8081");
  assert_string_equal(scef->notification_url, "http://127.0.0.1:8081/t8/notifications");
  load_ok(SCEF("enabled = false; notification_listen = \"[::1]:8081\";"));
  assert_string_equal(cfg.bindings.nidd.scef.notification_url, "http://[::1]:8081/t8/notifications");
  assert_null(cfg.bindings.nidd.scef.url); /* not required while off */
  /* a wildcard listener is no address to give the SCEF, unless notification_url says one */
  load_ok(SCEF("enabled = false; notification_listen = \"0.0.0.0:8081\"; "
               "notification_url = \"https://gw.example.net:8443/t8\";"));
  assert_string_equal(cfg.bindings.nidd.scef.notification_url, "https://gw.example.net:8443/t8");
  /* the RDS ports ask for RDS unless told otherwise */
  load_ok(SCEF(SCEF_OFF "rds = ( { ue_port = 0; scef_port = 1; upstream = \"default\"; } );"));
  assert_true(cfg.bindings.nidd.scef.reliable_data_service);
  load_ok(SCEF(SCEF_OFF "reliable_data_service = false; "
                        "rds = ( { ue_port = 0; scef_port = 1; upstream = \"default\"; } );"));
  assert_false(cfg.bindings.nidd.scef.reliable_data_service);
  load_ok(SCEF(SCEF_OFF "reliable_data_service = true;"));
  assert_true(cfg.bindings.nidd.scef.reliable_data_service);
}

/* The group is on when present (and NIDD is): checked whole, then refused, last. */
static void test_scef_refused_last(void **state) {
  (void)state;
  load_err(SCEF(SCEF_MIN), "<string>:5: bindings.nidd.scef: ", SCEF_REFUSED);
  load_err(SCEF("enabled = true; " SCEF_MIN), "<string>:5: bindings.nidd.scef: ", SCEF_REFUSED);
  /* without sgi: the SCEF alone is a NIDD binding */
  load_err(SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = true;\n"
                             "  scef = { " SCEF_MIN " }; }; };\n",
           "<string>:4: bindings.nidd.scef: ", SCEF_REFUSED);
  /* real mistakes first, wherever they are */
  load_err(SCEF(SCEF_MIN "maximum_latency_s = -1;"), "<string>:5: bindings.nidd.scef.maximum_latency_s: ",
           "from 0 to 86400");
  load_err(SCEF(SCEF_MIN) "gateway = { log_level = \"loud\"; };\n", "<string>:6: gateway.log_level: ",
           NULL);
  load_err(SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = true;\n"
                             "  scef = { " SCEF_MIN " }; };\n  http = { enabled = 1; }; };\n",
           "<string>:5: bindings.http.enabled: ", "true or false");
  /* NIDD off: the group is checked but nothing is on */
  load_err(SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = false;\n"
                             "  scef = { url = \"ftp://x\"; }; }; };\n",
           "<string>:4: bindings.nidd.scef.url: ", "the scheme is not http:// or https://");
  load_err(SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = false;\n"
                             "  scef = { " SCEF_MIN " }; }; };\n",
           "<string>:3: bindings: no binding is enabled", NULL);
  /* off inside the group: NIDD needs the tunnel then */
  load_err(SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = true;\n"
                             "  scef = { " SCEF_OFF " }; }; };\n",
           "<string>:3: bindings.nidd.sgi.listen: missing", "or scef = {");
  /* nothing for the SCEF to configure */
  load_err(SCEF_UPS "bindings = { nidd = { enabled = true;\n  scef = { " SCEF_MIN " }; }; };\n",
           "<string>:3: bindings.nidd.scef: no device to configure at the SCEF", NULL);
  load_err(SCEF_UPS "devices = ( { endpoint = \"nb-2\"; msisdn = \"491701234567\"; } );\n"
                    "bindings = { nidd = { enabled = true;\n  scef = { " SCEF_MIN " }; }; };\n",
           "<string>:4: bindings.nidd.scef: ", SCEF_REFUSED);
  load_err(SCEF_UPS "bindings = { nidd = { enabled = true;\n"
                    "  scef = { " SCEF_MIN " external_group_id = \"meters@operator.example\"; }; }; };\n",
           "<string>:3: bindings.nidd.scef: ", SCEF_REFUSED);
}

static void test_scef_settings(void **state) {
  (void)state;
  char token[256], secret[256], text[2048];
  write_file("scef.token", "eyJhbGciOi.JIUzI1-NiJ9_~+/==\n", token, sizeof(token));
  write_file("scef.secret", "s3cret with spaces\n", secret, sizeof(secret));
  snprintf(text, sizeof(text),
           SCEF(SCEF_OFF "token_file = \"%s\"; ca_file = \"%s\"; cert_file = \"%s\";\n"
                "  key_file = \"%s\"; notification_url = \"https://gw.example.net:8081/t8/\";\n"
                "  notification_allow = [ \"10.0.0.1\", \"2001:db8::7\" ];\n"
                "  configuration_duration_s = 3600; maximum_latency_s = 60;\n"
                "  external_group_id = \"meters@operator.example\";\n"
                "  rds = ( { ue_port = 0; scef_port = 1; upstream = \"default\"; },\n"
                "          { ue_port = 0; scef_port = 2; bootstrap = \"bs\"; },\n"
                "          { ue_port = 15; scef_port = 15; upstream = \"default\"; } );"),
           token, ca_path, cert_path, key_path);
  load_ok(text);
  const gw_scef_conf_t *scef = &cfg.bindings.nidd.scef;
  assert_string_equal(scef->token, "eyJhbGciOi.JIUzI1-NiJ9_~+/==");
  assert_false(scef->has_oauth);
  assert_string_equal(scef->ca_file, ca_path);
  assert_string_equal(scef->cert_file, cert_path);
  assert_string_equal(scef->key_file, key_path);
  assert_string_equal(scef->notification_url, "https://gw.example.net:8081/t8");
  assert_int_equal(scef->notification_allow_count, 2);
  assert_string_equal(scef->notification_allow[0], "10.0.0.1");
  assert_string_equal(scef->notification_allow[1], "2001:db8::7");
  assert_int_equal(scef->configuration_duration_s, 3600);
  assert_int_equal(scef->maximum_latency_s, 60);
  assert_string_equal(scef->external_group_id, "meters@operator.example");
  assert_true(scef->reliable_data_service);
  assert_int_equal(scef->rds_count, 3);
  assert_int_equal(scef->rds[0].ue_port, 0);
  assert_int_equal(scef->rds[0].scef_port, 1);
  assert_string_equal(scef->rds[0].upstream, "default");
  assert_null(scef->rds[0].bootstrap);
  assert_int_equal(scef->rds[1].scef_port, 2);
  assert_null(scef->rds[1].upstream);
  assert_string_equal(scef->rds[1].bootstrap, "bs");
  assert_int_equal(scef->rds[2].ue_port, 15);
  assert_int_equal(scef->rds[2].scef_port, 15);

  snprintf(text, sizeof(text),
           SCEF(SCEF_OFF "oauth = { token_url = \"https://auth.example.net/token\";\n"
                "  client_id = \"lwm2m gw\"; client_secret_file = \"%s\"; scope = \"nidd t8:read\"; };"),
           secret);
  load_ok(text);
  assert_true(scef->has_oauth);
  assert_null(scef->token);
  assert_string_equal(scef->oauth.token_url, "https://auth.example.net/token");
  assert_string_equal(scef->oauth.client_id, "lwm2m gw");
  assert_string_equal(scef->oauth.client_secret, "s3cret with spaces");
  assert_string_equal(scef->oauth.scope, "nidd t8:read");
  /* TLS files with an http:// SCEF are fine when the token endpoint is https:// */
  snprintf(text, sizeof(text),
           SCEF("enabled = false; url = \"http://127.0.0.1:8080\"; ca_file = \"%s\";\n"
                "  oauth = { token_url = \"https://auth.example.net/token\"; };"),
           ca_path);
  load_ok(text);
  assert_string_equal(cfg.bindings.nidd.scef.url, "http://127.0.0.1:8080");
}

static void test_scef_errors(void **state) {
  (void)state;
  /* required when on; reported at the group's line */
  load_err(SCEF("scs_as_id = \"gw\"; notification_listen = \"127.0.0.1:8081\";"),
           "<string>:5: bindings.nidd.scef.url: missing (expected the SCEF's T8 API root", NULL);
  load_err(SCEF("url = \"https://s\"; notification_listen = \"127.0.0.1:8081\";"),
           "<string>:5: bindings.nidd.scef.scs_as_id: missing", NULL);
  load_err(SCEF("url = \"https://s\"; scs_as_id = \"gw\";"),
           "<string>:5: bindings.nidd.scef.notification_listen: missing", NULL);
  load_err(SCEF(SCEF_MIN "oauth = { client_id = \"c\"; };"),
           "<string>:5: bindings.nidd.scef.oauth.token_url: missing", NULL);
  load_err(SCEF(SCEF_MIN "oauth = { token_url = \"https://a/t\"; };"),
           "<string>:5: bindings.nidd.scef.oauth.client_id: missing", NULL);
  load_err(SCEF(SCEF_MIN "oauth = { token_url = \"https://a/t\"; client_id = \"c\"; };"),
           "<string>:5: bindings.nidd.scef.oauth.client_secret_file: missing", NULL);

  char long_id[160];
  memset(long_id, 'a', 129);
  long_id[129] = '\0';
  char long_fields[320];
  snprintf(long_fields, sizeof(long_fields), "scs_as_id = \"%s\";", long_id);
  static const struct {
    const char *fields, *setting, *detail;
  } bad[] = {
      {"url = \"ftp://scef\";", "url", "expected an http:// or https:// URL: the scheme is not"},
      {"url = \"https://scef/api?v=1\";", "url", "query or fragment, got \"https://scef/api?v=1\""},
      {"url = \"https://u:p@scef\";", "url", "user information"},
      {"url = \"https://scef:0\";", "url", "invalid port"},
      {"url = 443;", "url", "got an integer"},
      {"url = \"\";", "url", "got an empty string"},
      {"scs_as_id = \"a/b\";", "scs_as_id", "other than letters, digits"},
      {"scs_as_id = \"..\";", "scs_as_id", "removed from URL paths"},
      {"scs_as_id = \"a b\";", "scs_as_id", "{scsAsId} of TS 29.122"},
      {NULL, "scs_as_id", "longer than 128"},
      {"notification_listen = \"127.0.0.1\";", "notification_listen", "missing \":port\""},
      {"notification_listen = \"::1:8081\";", "notification_listen", "in brackets"},
      {"notification_url = \"gw:8081/t8\";", "notification_url", "the scheme is not"},
      {"notification_allow = \"10.0.0.1\";", "notification_allow", "expected an array"},
      {"notification_allow = [ \"10.0.0.1:80\" ];", "notification_allow.[0]",
       "numeric IPv4 or IPv6 address without brackets or port"},
      {"notification_allow = [ \"10.0.0.1\", \"[::1]\" ];", "notification_allow.[1]", "numeric"},
      {"notification_allow = [ \"gw.example.net\" ];", "notification_allow.[0]", "numeric"},
      {"notification_allow = [ 1 ];", "notification_allow.[0]",
       "expected an address in double quotes, got an integer"},
      {"token = \"abc\";", "token",
       "a bearer token is not written into the configuration: put it in a private file (mode "
       "0600) and set token_file"},
      {"token_file = \"/nonexistent/scef.token\";", "token_file",
       "cannot read \"/nonexistent/scef.token\""},
      {"token_file = \"/x\"; oauth = { };", "oauth", "give either token_file"},
      {"oauth = 1;", "oauth", "expected a group"},
      {"oauth = { tokenurl = \"x\"; };", "oauth.tokenurl", "unknown setting"},
      {"oauth = { token_url = \"ftp://a\"; };", "oauth.token_url", "the scheme is not"},
      {"oauth = { client_id = \"a\\tb\"; };", "oauth.client_id", "printable ASCII"},
      {"oauth = { scope = \"a  b\"; };", "oauth.scope", "RFC 6749 3.3"},
      {"oauth = { scope = \"a \"; };", "oauth.scope", "RFC 6749 3.3"},
      {"oauth = { scope = \"a\\\"b\"; };", "oauth.scope", "RFC 6749 3.3"},
      {"oauth = { client_secret = \"x\"; };", "oauth.client_secret",
       "a client secret is not written into the configuration"},
      {"oauth = { client_secret_file = \"/nonexistent/s\"; };", "oauth.client_secret_file",
       "cannot read"},
      {"url = \"http://scef\"; ca_file = \"/x\";", "ca_file",
       "only used with TLS: url (or oauth.token_url) is not https://"},
      {"cert_file = \"/x\";", "cert_file", "needs key_file too"},
      {"ca_file = \"/nonexistent/ca.pem\";", "ca_file", "cannot read"},
      {"reliable_data_service = 1;", "reliable_data_service", "true or false"},
      {"configuration_duration_s = 9;", "configuration_duration_s",
       "from 10 to 31536000 seconds, got 9"},
      {"configuration_duration_s = 31536001;", "configuration_duration_s", "got 31536001"},
      {"maximum_latency_s = 86401;", "maximum_latency_s",
       "from 0 to 86400 seconds (0: the SCEF does not buffer), got 86401"},
      {"external_group_id = \"meters\";", "external_group_id",
       "(3GPP TS 23.003 19.7 External Group Identifier): it has no '@'"},
      {"external_group_id = \"m@op_x\";", "external_group_id", "not a domain name"},
      {"rds = ();", "rds", "expected at least one RDS port pair"},
      {"rds = { ue_port = 0; };", "rds", "expected a list ( { ue_port = 0; scef_port = 1;"},
      {"rds = ( 1 );", "rds.[0]", "expected a group { ue_port = 0;"},
      {"rds = ( { ue_port = 16; scef_port = 1; upstream = \"default\"; } );", "rds.[0].ue_port",
       "expected an integer from 0 to 15 (TS 24.250: an RDS port is 4 bits), got 16"},
      {"rds = ( { ue_port = 0; scef_port = -1; upstream = \"default\"; } );", "rds.[0].scef_port",
       "got -1"},
      {"rds = ( { ue_port = \"0\"; scef_port = 1; upstream = \"default\"; } );", "rds.[0].ue_port",
       "got a string"},
      {"rds = ( { ue_port = 0; upstream = \"default\"; } );", "rds.[0].scef_port",
       "missing (expected an RDS port, 0 to 15)"},
      {"rds = ( { scef_port = 1; upstream = \"default\"; } );", "rds.[0].ue_port", "missing"},
      {"rds = ( { ue_port = 0; scef_port = 1; } );", "rds.[0].upstream",
       "missing: an RDS port pair needs upstream = \"name\" (its LwM2M server) or bootstrap = "
       "\"name\" (its bootstrap server)"},
      {"rds = ( { ue_port = 0; scef_port = 1; upstream = \"default\"; bootstrap = \"bs\"; } );",
       "rds.[0].bootstrap",
       "an RDS port pair is either a server's (upstream) or a bootstrap server's (bootstrap), "
       "not both"},
      {"rds = ( { ue_port = 0; scef_port = 1; upstream = \"nope\"; } );", "rds.[0].upstream",
       "no upstream is named \"nope\""},
      {"rds = ( { ue_port = 0; scef_port = 1; bootstrap = \"nope\"; } );", "rds.[0].bootstrap",
       "no upstream is named \"nope\""},
      {"rds = ( { ue_port = 0; scef_port = 1; upstream = \"default\"; },"
       " { ue_port = 0; scef_port = 1; bootstrap = \"bs\"; } );",
       "rds.[1]",
       "ue_port 0 with scef_port 1 is already given by bindings.nidd.scef.rds.[0]"},
      {"rds = ( { ue_port = 0; scef_port = 1; upstream = \"default\"; port = 3; } );",
       "rds.[0].port", "unknown setting (expected one of: ue_port, scef_port, upstream, bootstrap)"},
      {"apn = \"iot\";", "apn", "unknown setting (expected one of: enabled, url, scs_as_id"},
  };
  char text[2048], prefix[160];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    /* off, so that nothing but the setting under test is required */
    snprintf(text, sizeof(text), SCEF("enabled = false; %s"),
             bad[i].fields ? bad[i].fields : long_fields);
    snprintf(prefix, sizeof(prefix), "<string>:5: bindings.nidd.scef.%s: ", bad[i].setting);
    load_err(text, prefix, bad[i].detail);
  }
  load_err(SCEF("enabled = \"yes\";"), "<string>:5: bindings.nidd.scef.enabled: ", "true or false");
  load_err(SCEF_UPS SCEF_DEV "bindings = { nidd = { enabled = true;\n  scef = \"https://s\"; }; };\n",
           "<string>:4: bindings.nidd.scef: expected a group", NULL);
  /* the notification destination of a wildcard listener must be given */
  load_err(SCEF("enabled = false; notification_listen = \"0.0.0.0:8081\";"),
           "<string>:5: bindings.nidd.scef.notification_url: missing: notification_listen "
           "\"0.0.0.0:8081\" listens on every address of this host",
           "\"http://192.0.2.10:8081/t8/notifications\"");
  load_err(SCEF("enabled = false; notification_listen = \"[::]:9000\";"),
           "<string>:5: bindings.nidd.scef.notification_url: missing", "listens on every address");
  /* an entry's own line */
  load_err(SCEF("enabled = false; rds = (\n  { ue_port = 0; scef_port = 1; upstream = \"default\"; },\n"
                "  { ue_port = 99; scef_port = 1; upstream = \"default\"; } );"),
           "<string>:7: bindings.nidd.scef.rds.[1].ue_port: ", "got 99");
}

/* token_file and client_secret_file hold secrets: private files with a token's syntax. */
static void test_scef_secret_files(void **state) {
  (void)state;
  char token[256], secret[256], text[1024];
  write_file("t8.token", "abc.DEF-123\n", token, sizeof(token));
  snprintf(text, sizeof(text), SCEF(SCEF_OFF "token_file = \"%s\";"), token);
  load_ok(text);
  assert_string_equal(cfg.bindings.nidd.scef.token, "abc.DEF-123");
  assert_int_equal(chmod(token, 0644), 0);
  load_err(text, "<string>:5: bindings.nidd.scef.token_file: ",
           "holds a secret but every user can read it (mode 0644)");
  assert_int_equal(chmod(token, 0640), 0); /* a service group may read it */
  load_ok(text);
  assert_int_equal(chmod(token, 0602), 0);
  load_err(text, "<string>:5: bindings.nidd.scef.token_file: ", "every user can write");

  /* not a token: the file is named, its content never */
  write_file("t8.token", "Bearer abc def\n", token, sizeof(token));
  load_err(text, "<string>:5: bindings.nidd.scef.token_file: ",
           "the file's first line is not a bearer token (RFC 6750 2.1");
  assert_null(strstr(err, "abc def"));
  write_file("t8.token", "\n", token, sizeof(token));
  load_err(text, "<string>:5: bindings.nidd.scef.token_file: ", "bearer token is empty");
  /* a long token (a JWT) is read whole, a longer line is not cut */
  static char big[5000];
  memset(big, 'a', 4094);
  big[4094] = '\n';
  write_file("t8.token", big, token, sizeof(token));
  load_ok(text);
  assert_int_equal(strlen(cfg.bindings.nidd.scef.token), 4094);
  memset(big, 'a', sizeof(big) - 1);
  write_file("t8.token", big, token, sizeof(token));
  load_err(text, "<string>:5: bindings.nidd.scef.token_file: ", "is too long (at most 4094 bytes)");
  assert_null(cfg.bindings.nidd.scef.token);

  write_file("t8.secret", "s3cret\n", secret, sizeof(secret));
  snprintf(text, sizeof(text),
           SCEF(SCEF_MIN "oauth = { token_url = \"https://a/t\"; client_id = \"c\";\n"
                "  client_secret_file = \"%s\"; };"),
           secret);
  load_err(text, "<string>:5: bindings.nidd.scef: ", SCEF_REFUSED); /* everything else is right */
  assert_int_equal(chmod(secret, 0644), 0);
  load_err(text, "<string>:6: bindings.nidd.scef.oauth.client_secret_file: ",
           "every user can read it (mode 0644)");
  char with_allow[1200];
  snprintf(with_allow, sizeof(with_allow), "gateway = { allow_readable_secrets = true; };\n%s",
           text);
  load_err(with_allow, "<string>:6: bindings.nidd.scef: ", SCEF_REFUSED);
  assert_int_equal(chmod(secret, 0600), 0);

  /* the TLS key, as everywhere */
  assert_int_equal(chmod(key_path, 0644), 0);
  snprintf(text, sizeof(text), SCEF(SCEF_OFF "cert_file = \"%s\"; key_file = \"%s\";"), cert_path,
           key_path);
  load_err(text, "<string>:5: bindings.nidd.scef.key_file: ", "every user can read it");
  assert_int_equal(chmod(key_path, 0600), 0);
  load_ok(text);
}

/* ---- bindings.lorawan and the devices' LoRaWAN settings (Transport 6.8.4, Appendix C) ---- */

/* Line 2 opens bindings, line 3 enables nidd (so that no test depends on a WITH_* option), line
 * 4 is the lorawan group: its settings' errors are reported at line 4. */
#define LW_BINDINGS(fields)                                                                      \
  "bindings = {\n  nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; };\n"         \
  "  lorawan = { " fields " };\n};\n"
#define LW_APP "3f8b4c2e-9d71-4a5b-b6e0-7c1d2a9f4e83"
#define LW_ON "enabled = true; broker = \"tcp://127.0.0.1:1883\"; "
#define LW_TTS "network_server = \"tts\"; "
#define LW_DEV_UPS                                                                               \
  "upstream = ( { name = \"default\"; uri = \"coap://h\"; }, { name = \"bs\"; uri = \"coap://b\"; } );\n"

/* Whether this build has the lorawan binding, from the message that lists what it has. */
static bool lorawan_built(void) {
  gw_config_t c;
  char msg[512];
  assert_int_equal(gw_config_load_string(UP, &c, msg, sizeof(msg)), GW_ERR_CONFIG);
  const char *has = strstr(msg, "(this build has: ");
  assert_non_null(has);
  const char *lorawan = strstr(has, "lorawan");
  return lorawan && lorawan < strchr(has, ')');
}

/* A configuration enabling the lorawan binding loads in a build that has it; a build without it
 * refuses exactly that, after checking the rest. Returns whether it loaded. */
static bool load_enabled_lorawan(const char *text, const char *line_prefix) {
  if (lorawan_built()) {
    load_ok(text);
    return true;
  }
  char prefix[128];
  snprintf(prefix, sizeof(prefix), "%sbindings.lorawan.enabled: ", line_prefix);
  load_err(text, prefix, "binding 'lorawan' is not available in this build (built without "
                         "WITH_LORAWAN)");
  return false;
}

static void assert_lorawan_defaults(const gw_lorawan_conf_t *lw) {
  static const uint32_t eu868[] = {51, 51, 51, 115, 242, 242, 242, 242};
  assert_false(lw->enabled);
  assert_null(lw->broker);
  assert_null(lw->client_id);
  assert_null(lw->username);
  assert_null(lw->password);
  assert_null(lw->ca_file);
  assert_null(lw->cert_file);
  assert_null(lw->key_file);
  assert_int_equal(lw->keepalive_s, 30);
  assert_int_equal(lw->qos, 1);
  assert_int_equal(lw->network_server, GW_LNS_CHIRPSTACK);
  assert_null(lw->application_id);
  assert_null(lw->ports);
  assert_int_equal(lw->port_count, 0);
  assert_false(lw->accept_unknown);
  assert_false(lw->confirmed_downlinks);
  assert_int_equal(lw->ack_timeout_s, 300);
  assert_int_equal(lw->max_retransmit, 4);
  assert_int_equal(lw->max_payload_count, 8);
  for (size_t i = 0; i < 8; i++)
    assert_int_equal(lw->max_payload[i], eu868[i]);
  assert_int_equal(lw->downlink_hold_s, 86400);
}

static void test_lorawan_defaults(void **state) {
  (void)state;
  load_ok(MIN); /* no lorawan group at all */
  assert_lorawan_defaults(&cfg.bindings.lorawan);
  load_ok(UP LW_BINDINGS("enabled = false;"));
  assert_lorawan_defaults(&cfg.bindings.lorawan);
  /* The Things Stack's MQTT server supports QoS 0 only: its default */
  load_ok(UP LW_BINDINGS(LW_TTS));
  assert_int_equal(cfg.bindings.lorawan.network_server, GW_LNS_TTS);
  assert_int_equal(cfg.bindings.lorawan.qos, 0);
  load_ok(UP LW_BINDINGS(LW_TTS "qos = 0;"));
  assert_int_equal(cfg.bindings.lorawan.qos, 0);
}

/* Every setting read, whether the binding is enabled or not (nor built). */
static void test_lorawan_settings(void **state) {
  (void)state;
  char text[2048];
  snprintf(text, sizeof(text),
           LW_DEV_UPS LW_BINDINGS(
               "enabled = false; broker = \"mqtts://ns.example:8883\"; client_id = \"gw-7\"; "
               "username = \"u\"; password = \"p\"; ca_file = \"%s\"; cert_file = \"%s\"; "
               "key_file = \"%s\"; keepalive = 60; qos = 0; network_server = \"chirpstack\"; "
               "application_id = \"3F8B4C2E-9D71-4A5B-B6E0-7C1D2A9F4E83\"; "
               "ports = ( { fport = 1; upstream = \"default\"; }, { fport = 2; bootstrap = "
               "\"bs\"; }, { fport = 255; } ); accept_unknown = true; confirmed_downlinks = "
               "true; ack_timeout_s = 30; max_retransmit = 0; max_payload = [ 11, 59, 255 ]; "
               "downlink_hold_s = 3600;"),
           ca_path, cert_path, key_path);
  load_ok(text);
  const gw_lorawan_conf_t *lw = &cfg.bindings.lorawan;
  assert_string_equal(lw->broker, "mqtts://ns.example:8883");
  assert_string_equal(lw->client_id, "gw-7");
  assert_string_equal(lw->username, "u");
  assert_string_equal(lw->password, "p");
  assert_string_equal(lw->ca_file, ca_path);
  assert_string_equal(lw->cert_file, cert_path);
  assert_string_equal(lw->key_file, key_path);
  assert_int_equal(lw->keepalive_s, 60);
  assert_int_equal(lw->qos, 0);
  assert_int_equal(lw->network_server, GW_LNS_CHIRPSTACK);
  assert_string_equal(lw->application_id, LW_APP); /* lower case, as in ChirpStack's topics */
  assert_int_equal(lw->port_count, 3);
  assert_int_equal(lw->ports[0].fport, 1);
  assert_string_equal(lw->ports[0].upstream, "default");
  assert_null(lw->ports[0].bootstrap);
  assert_int_equal(lw->ports[1].fport, 2);
  assert_null(lw->ports[1].upstream);
  assert_string_equal(lw->ports[1].bootstrap, "bs");
  assert_int_equal(lw->ports[2].fport, 255);
  assert_null(lw->ports[2].upstream);
  assert_null(lw->ports[2].bootstrap);
  assert_true(lw->accept_unknown);
  assert_true(lw->confirmed_downlinks);
  assert_int_equal(lw->ack_timeout_s, 30);
  assert_int_equal(lw->max_retransmit, 0);
  assert_int_equal(lw->max_payload_count, 3);
  assert_int_equal(lw->max_payload[0], 11);
  assert_int_equal(lw->max_payload[1], 59);
  assert_int_equal(lw->max_payload[2], 255);
  assert_int_equal(lw->downlink_hold_s, 3600);

  /* 16 data rates at most (DR0..DR15) */
  load_ok(UP LW_BINDINGS("max_payload = [ 51, 51, 51, 115, 242, 242, 242, 242, 50, 115, 50, 115, "
                         "11, 11, 11, 11 ];"));
  assert_int_equal(cfg.bindings.lorawan.max_payload_count, 16);
  assert_int_equal(cfg.bindings.lorawan.max_payload[15], 11);

  /* The Things Stack: "app@tenant" is the MQTT user name unless one is given */
  load_ok(UP LW_BINDINGS(LW_TTS "application_id = \"lwm2m-demo@ttn\";"));
  assert_string_equal(cfg.bindings.lorawan.application_id, "lwm2m-demo@ttn");
  assert_string_equal(cfg.bindings.lorawan.username, "lwm2m-demo@ttn");
  load_ok(UP LW_BINDINGS(LW_TTS "application_id = \"app-1\"; username = \"other\";"));
  assert_string_equal(cfg.bindings.lorawan.application_id, "app-1"); /* TTS Open Source */
  assert_string_equal(cfg.bindings.lorawan.username, "other");
  char id36[64];
  snprintf(id36, sizeof(id36), "a%034db", 0);
  snprintf(text, sizeof(text), UP LW_BINDINGS(LW_TTS "application_id = \"%s@%s\";"), id36, id36);
  load_ok(text);
}

/* Every error, with its file, line and setting; none depends on the binding being built. */
static void test_lorawan_errors(void **state) {
  (void)state;
  /* required when enabled */
  load_err(UP LW_BINDINGS("enabled = true;"), "<string>:4: bindings.lorawan.broker: missing",
           "broker URI");
  load_err(UP LW_BINDINGS(LW_ON), "<string>:4: bindings.lorawan.application_id: missing",
           "UUID");
  load_err(UP LW_BINDINGS(LW_ON "application_id = \"" LW_APP "\";"),
           "<string>:4: bindings.lorawan.ports: missing", "fport = 1");
  load_err(UP LW_BINDINGS(LW_ON LW_TTS "application_id = \"app@ttn\";"),
           "<string>:4: bindings.lorawan.api_key_file: missing", "API key");

  static const struct {
    const char *fields, *prefix, *detail;
  } cases[] = {
      {"broker = \"http://x\";", "bindings.lorawan.broker: ", "expected a tcp://, mqtt://, ssl://"},
      {"broker = 1883;", "bindings.lorawan.broker: ", "got an integer"},
      {"network_server = \"loriot\";", "bindings.lorawan.network_server: ",
       "expected \"chirpstack\" or \"tts\" (The Things Stack), got \"loriot\""},
      {"qos = 2;", "bindings.lorawan.qos: ", "from 0 to 1 (MQTT QoS), got 2"},
      {LW_TTS "qos = 1;", "bindings.lorawan.qos: ", "The Things Stack supports QoS 0 only"},
      {LW_TTS "qos = 2;", "bindings.lorawan.qos: ", "QoS 0 only"},
      {LW_TTS "qos = 3;", "bindings.lorawan.qos: ", "from 0 to 2"},
      {"keepalive = 4;", "bindings.lorawan.keepalive: ", "from 5 to 3600 seconds, got 4"},
      {"ack_timeout_s = 0;", "bindings.lorawan.ack_timeout_s: ",
       "from 1 to 86400 seconds (Appendix C.2 ACK_TIMEOUT), got 0"},
      {"ack_timeout_s = 86401;", "bindings.lorawan.ack_timeout_s: ", "got 86401"},
      {"max_retransmit = 21;", "bindings.lorawan.max_retransmit: ",
       "from 0 to 20 (Appendix C.2 MAX_RETRANSMIT), got 21"},
      {"max_retransmit = -1;", "bindings.lorawan.max_retransmit: ", "got -1"},
      {"downlink_hold_s = 0;", "bindings.lorawan.downlink_hold_s: ", "from 1 to 2592000"},
      {"accept_unknown = 1;", "bindings.lorawan.accept_unknown: ", "expected true or false"},
      {"confirmed_downlinks = \"yes\";", "bindings.lorawan.confirmed_downlinks: ",
       "expected true or false"},
      {"region = \"EU868\";", "bindings.lorawan.region: ", "unknown setting (expected one of: "},
      /* application_id */
      {"application_id = \"not-a-uuid\";", "bindings.lorawan.application_id: ",
       "a UUID such as"},
      {"application_id = \"3f8b4c2e-9d71-4a5b-b6e0-7c1d2a9f4e8\";",
       "bindings.lorawan.application_id: ", "a UUID"},
      {"application_id = \"3f8b4c2e_9d71-4a5b-b6e0-7c1d2a9f4e83\";",
       "bindings.lorawan.application_id: ", "a UUID"},
      {"application_id = \"3f8b4c2e-9d71-4a5b-b6e0-7c1d2a9f4e8g\";",
       "bindings.lorawan.application_id: ", "a UUID"},
      {"application_id = \"\";", "bindings.lorawan.application_id: ", "empty string"},
      {LW_TTS "application_id = \"app_1@ttn\";", "bindings.lorawan.application_id: ",
       "\"application-id@tenant-id\""},
      {LW_TTS "application_id = \"My-App@ttn\";", "bindings.lorawan.application_id: ",
       "lower-case"},
      {LW_TTS "application_id = \"ab@ttn\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"app@tt\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"my--app\";", "bindings.lorawan.application_id: ",
       "single '-'"},
      {LW_TTS "application_id = \"my-app-\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"-my-app\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"app@\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"@ttn\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"app@ttn@x\";", "bindings.lorawan.application_id: ", "3 to 36"},
      {LW_TTS "application_id = \"a0000000000000000000000000000000000b9\";",
       "bindings.lorawan.application_id: ", "3 to 36"},
      /* ports */
      {"ports = ( );", "bindings.lorawan.ports: ", "expected at least one port"},
      {"ports = 1;", "bindings.lorawan.ports: ", "expected a list ( { fport = 1;"},
      {"ports = ( 1 );", "bindings.lorawan.ports.[0]: ", "expected a group"},
      {"ports = ( { fport = 0; } );", "bindings.lorawan.ports.[0].fport: ",
       "expected an integer from 1 to 255 (Transport 6.8.4: the FPort of lorawan://{fport}; 0 "
       "is for MAC commands), got 0"},
      {"ports = ( { fport = 256; } );", "bindings.lorawan.ports.[0].fport: ", "got 256"},
      {"ports = ( { fport = \"1\"; } );", "bindings.lorawan.ports.[0].fport: ", "got a string"},
      {"ports = ( { upstream = \"default\"; } );", "bindings.lorawan.ports.[0].fport: ",
       "missing (expected the FPort of lorawan://{fport}, 1 to 255)"},
      {"ports = ( { fport = 1; }, { fport = 2; }, { fport = 1; } );",
       "bindings.lorawan.ports.[2].fport: ", "FPort 1 is already given by bindings.lorawan.ports.[0]"},
      {"ports = ( { fport = 1; upstream = \"nope\"; } );", "bindings.lorawan.ports.[0].upstream: ",
       "no upstream is named \"nope\""},
      {"ports = ( { fport = 2; bootstrap = \"nope\"; } );",
       "bindings.lorawan.ports.[0].bootstrap: ", "no upstream is named \"nope\""},
      {"ports = ( { fport = 2; upstream = \"default\"; bootstrap = \"default\"; } );",
       "bindings.lorawan.ports.[0].bootstrap: ", "not both"},
      {"ports = ( { fport = 1; port = 2; } );", "bindings.lorawan.ports.[0].port: ",
       "unknown setting (expected one of: fport, upstream, bootstrap)"},
      /* max_payload */
      {"max_payload = 51;", "bindings.lorawan.max_payload: ", "expected an array"},
      {"max_payload = [ ];", "bindings.lorawan.max_payload: ",
       "expected 1 to 16 entries (DR0 to DR15), got 0"},
      {"max_payload = [ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 ];",
       "bindings.lorawan.max_payload: ", "got 17"},
      {"max_payload = [ 51, 10 ];", "bindings.lorawan.max_payload.[1]: ",
       "largest application payload at DR1, an integer from 11 to 255 bytes, got 10"},
      {"max_payload = [ 256 ];", "bindings.lorawan.max_payload.[0]: ", "got 256"},
      {"max_payload = ( \"51\" );", "bindings.lorawan.max_payload.[0]: ", "got a string"},
      /* credentials and TLS */
      {"api_key = \"NNSXS.X\";", "bindings.lorawan.api_key: ",
       "an API key is not written into the configuration"},
      {LW_TTS "api_key = \"NNSXS.X\";", "bindings.lorawan.api_key: ", "set api_key_file"},
      {LW_TTS "password = \"NNSXS.X\";", "bindings.lorawan.password: ",
       "The Things Stack's API key must come from api_key_file"},
      {"api_key_file = \"/etc/hostname\";", "bindings.lorawan.api_key_file: ",
       "only used with network_server = \"tts\""},
      {LW_TTS "password_file = \"/etc/hostname\"; api_key_file = \"/etc/hostname\";",
       "bindings.lorawan.api_key_file: ", "give either password_file or api_key_file, not both"},
      {"password = \"a\"; password_file = \"/etc/hostname\";", "bindings.lorawan.password_file: ",
       "not both"},
      {"password = \"\";", "bindings.lorawan.password: ", "empty string"},
      {"cert_file = \"/etc/hostname\";", "bindings.lorawan.cert_file: ", "needs key_file"},
      {"key_file = \"/etc/hostname\";", "bindings.lorawan.key_file: ", "needs cert_file"},
      {"ca_file = \"/nonexistent/ca.pem\";", "bindings.lorawan.ca_file: ",
       "cannot read \"/nonexistent/ca.pem\""},
  };
  char text[1024], prefix[160];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(text, sizeof(text), UP LW_BINDINGS("%s"), cases[i].fields);
    snprintf(prefix, sizeof(prefix), "<string>:4: %s", cases[i].prefix);
    load_err(text, prefix, cases[i].detail);
  }
}

/* A complete enabled group: loaded where the binding is built, refused (after every other check)
 * where it is not, at the line of enabled. */
static void test_lorawan_enabled(void **state) {
  (void)state;
  const char *text = UP "bindings = {\n"
                        "  lorawan = {\n"
                        "    enabled = true; broker = \"tcp://127.0.0.1:1883\";\n"
                        "    application_id = \"" LW_APP "\";\n"
                        "    ports = ( { fport = 1; } ); }; };\n";
  if (load_enabled_lorawan(text, "<string>:4: ")) {
    assert_true(cfg.bindings.lorawan.enabled);
    assert_false(cfg.bindings.nidd.enabled); /* lorawan alone is a binding enabled */
  }
  /* the check of every other setting comes first */
  load_err(UP "bindings = {\n  lorawan = {\n    enabled = true; broker = \"tcp://h:1883\";\n"
              "    application_id = \"" LW_APP "\"; ports = ( { fport = 0; } ); }; };\n",
           "<string>:5: bindings.lorawan.ports.[0].fport: ", "got 0");
}

/* The Things Stack's API key comes from a private file; others' reading it is refused. */
static void test_lorawan_api_key_file(void **state) {
  (void)state;
  char key[256], text[1024], conf_path[256];
  write_file("tts.key", "NNSXS.ABCDEFGHIJKLMNOP.QRSTUVWXYZ\n", key, sizeof(key));
  snprintf(text, sizeof(text),
           UP LW_BINDINGS(LW_TTS "application_id = \"app@ttn\"; api_key_file = \"%s\";"), key);
  load_ok(text);
  assert_string_equal(cfg.bindings.lorawan.password, "NNSXS.ABCDEFGHIJKLMNOP.QRSTUVWXYZ");
  assert_string_equal(cfg.bindings.lorawan.username, "app@ttn");
  /* password_file is the same thing under the MQTT binding's name */
  snprintf(text, sizeof(text),
           UP LW_BINDINGS(LW_TTS "application_id = \"app@ttn\"; password_file = \"%s\";"), key);
  load_ok(text);
  assert_string_equal(cfg.bindings.lorawan.password, "NNSXS.ABCDEFGHIJKLMNOP.QRSTUVWXYZ");

  snprintf(text, sizeof(text),
           UP LW_BINDINGS(LW_TTS "application_id = \"app@ttn\"; api_key_file = \"%s\";"), key);
  assert_int_equal(chmod(key, 0644), 0);
  load_err(text, "<string>:4: bindings.lorawan.api_key_file: ",
           "holds a secret but every user can read it (mode 0644)");
  assert_null(strstr(err, "NNSXS")); /* never the secret itself */
  assert_int_equal(chmod(key, 0640), 0); /* a service group may read it */
  load_ok(text);
  assert_int_equal(chmod(key, 0666), 0); /* anyone may replace it: refused whatever else is set */
  load_err(text, "<string>:4: bindings.lorawan.api_key_file: ", "every user can write");
  assert_int_equal(chmod(key, 0600), 0);
  write_file("empty.key", "\n", key, sizeof(key));
  snprintf(text, sizeof(text), UP LW_BINDINGS(LW_TTS "api_key_file = \"%s\";"), key);
  load_err(text, "<string>:4: bindings.lorawan.api_key_file: ", "the application's API key is empty");

  /* An enabled TTS group with its key: complete */
  write_file("tts.key", "NNSXS.K\n", key, sizeof(key));
  snprintf(text, sizeof(text),
           UP "bindings = {\n  lorawan = {\n    enabled = true; " LW_TTS
              "broker = \"mqtts://eu1.cloud.thethings.network:8883\";\n"
              "    application_id = \"app@ttn\"; api_key_file = \"%s\"; ports = ( { fport = 1; } );\n"
              "}; };\n", key);
  if (load_enabled_lorawan(text, "<string>:4: "))
    assert_string_equal(cfg.bindings.lorawan.password, "NNSXS.K");

  /* ChirpStack's broker password inline makes the configuration file a secret */
  write_file("lw-inline.conf", UP LW_BINDINGS("password = \"p\";"), conf_path, sizeof(conf_path));
  assert_int_equal(load_path(conf_path), GW_OK);
  assert_int_equal(chmod(conf_path, 0644), 0);
  assert_int_equal(load_path(conf_path), GW_ERR_CONFIG);
  assert_non_null(strstr(err, "lw-inline.conf:4: bindings.lorawan.password: "));
  assert_non_null(strstr(err, "every user can read it"));
}

/* A configuration with the given device list (line 2) and lorawan fields (line 5). */
static const char *with_lorawan_devices(const char *devices, const char *lorawan_fields) {
  static char text[4096];
  snprintf(text, sizeof(text),
           LW_DEV_UPS "devices = ( %s );\n"
                      "bindings = {\n  nidd = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; };\n"
                      "  lorawan = { %s };\n};\n",
           devices, lorawan_fields);
  return text;
}

static void test_device_lorawan(void **state) {
  (void)state;
  /* Transport table 6.8.4-1: the endpoint name defaults to the DevEUI */
  load_ok(with_lorawan_devices("{ dev_eui = \"70b3d57ed0012345\"; }", ""));
  const gw_device_conf_t *d = &cfg.devices[0];
  assert_string_equal(d->dev_eui, "70B3D57ED0012345");
  assert_string_equal(d->endpoint, "70B3D57ED0012345");
  assert_string_equal(d->lns_device_id, "eui-70b3d57ed0012345"); /* as TTS's console names it */
  assert_null(d->objects);
  load_ok(with_lorawan_devices("{ dev_eui = \"70B3d57Ed0012345\"; endpoint = \"probe-7\"; "
                               "objects = \"</1/0>,</3/0>,</5>\"; }",
                               ""));
  assert_string_equal(cfg.devices[0].dev_eui, "70B3D57ED0012345");
  assert_string_equal(cfg.devices[0].endpoint, "probe-7");
  assert_string_equal(cfg.devices[0].objects, "</1/0>,</3/0>,</5>");
  load_ok(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012345\"; device_id = \"probe-7\"; }, "
                               "{ dev_eui = \"70B3D57ED0012346\"; }",
                               LW_TTS));
  assert_string_equal(cfg.devices[0].lns_device_id, "probe-7");
  assert_string_equal(cfg.devices[1].lns_device_id, "eui-70b3d57ed0012346");
  assert_string_equal(cfg.devices[1].endpoint, "70B3D57ED0012346");
  /* devices of other bindings have none of it */
  load_ok(with_lorawan_devices("{ endpoint = \"a\"; }", ""));
  assert_null(cfg.devices[0].dev_eui);
  assert_null(cfg.devices[0].lns_device_id);
  load_err(with_lorawan_devices("{ msisdn = \"14155550125\"; }", ""),
           "<string>:2: devices.[0].endpoint: missing", NULL);

  static const char *const bad_euis[] = {"70B3D57ED001234", "70B3D57ED00123456",
                                         "70B3D57ED001234G", "70-B3-D5-7E-D0-01-23-45",
                                         " 70B3D57ED0012345"};
  char fields[2048];
  for (size_t i = 0; i < sizeof(bad_euis) / sizeof(bad_euis[0]); i++) {
    snprintf(fields, sizeof(fields), "{ dev_eui = \"%s\"; }", bad_euis[i]);
    load_err(with_lorawan_devices(fields, ""), "<string>:2: devices.[0].dev_eui: ",
             "expected the DevEUI as 16 hex digits");
  }
  load_err(with_lorawan_devices("{ dev_eui = 1; }", ""), "<string>:2: devices.[0].dev_eui: ",
           "got an integer");

  /* unique, whatever the case; a DevEUI is reported before the endpoint it gives */
  load_err(LW_DEV_UPS "devices = (\n { dev_eui = \"70B3D57ED0012345\"; },\n"
                      " { dev_eui = \"70b3d57ed0012345\"; endpoint = \"b\"; } );\n" NIDD,
           "<string>:4: devices.[1].dev_eui: this value is already used by devices.[0] (line 3)",
           NULL);
  load_err(LW_DEV_UPS "devices = (\n { dev_eui = \"70B3D57ED0012345\"; },\n"
                      " { dev_eui = \"70B3D57ED0012345\"; } );\n" NIDD,
           "<string>:4: devices.[1].dev_eui: this value is already used", NULL);
  /* an endpoint by default clashing with one given: reported at its entry */
  load_err(LW_DEV_UPS "devices = (\n { endpoint = \"70B3D57ED0012345\"; },\n"
                      " { dev_eui = \"70B3D57ED0012345\"; } );\n" NIDD,
           "<string>:4: devices.[1].endpoint: this value is already used by devices.[0] (line 3)",
           NULL);
  load_err(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012345\"; device_id = \"probe\"; }, "
                                "{ dev_eui = \"70B3D57ED0012346\"; device_id = \"probe\"; }",
                                LW_TTS),
           "<string>:2: devices.[1].device_id: this value is already used by devices.[0]", NULL);

  /* device_id: a TTS end device ID, only for a LoRaWAN device behind TTS */
  load_err(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012345\"; device_id = \"Probe\"; }",
                                LW_TTS),
           "<string>:2: devices.[0].device_id: ",
           "expected a The Things Stack end device ID: 3 to 36 lower-case letters");
  load_err(with_lorawan_devices("{ endpoint = \"a\"; device_id = \"probe\"; }", LW_TTS),
           "<string>:2: devices.[0].device_id: ", "only used with dev_eui");
  load_err(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012345\"; device_id = \"probe\"; }", ""),
           "<string>:2: devices.[0].device_id: ",
           "only used with bindings.lorawan.network_server = \"tts\"");
  load_err(with_lorawan_devices("{ endpoint = \"a\"; objects = \"</1/0>\"; }", ""),
           "<string>:2: devices.[0].objects: ", "only used with dev_eui");

  /* objects: a plausible Register payload, never the Security Object */
  static const char *const good_objects[] = {
      "</1/0>",
      "</1/0>,</3/0>,</3303/0>,</3303/1>,</65535>",
      "</1/0>, </3/0>",
      "</>;rt=\\\"oma.lwm2m\\\";ct=11543,</1/0>,</3/0>;ver=1.1",
      "</lwm2m>;rt=\\\"oma.lwm2m\\\",</lwm2m/1/0>,</lwm2m/3/0>",
      "</1/0>,</lwm2m>;rt=\\\"oma.lwm2m\\\",</lwm2m/3/0>",
      "</3/0>;title=\\\"a,b\\\",</5>",
      "</10>", /* object 10 is not object 0 */
  };
  for (size_t i = 0; i < sizeof(good_objects) / sizeof(good_objects[0]); i++) {
    snprintf(fields, sizeof(fields), "{ dev_eui = \"70B3D57ED0012345\"; objects = \"%s\"; }",
             good_objects[i]);
    load_ok(with_lorawan_devices(fields, ""));
  }
  static const struct {
    const char *objects, *reason;
  } bad_objects[] = {
      {"1/0", "it does not start with '<'"},
      {"</0/0>", "it lists the Security Object (</0...>), which Transport table 6.8.4-1 says MUST "
                 "not be part of the list"},
      {"</1/0>,</0>", "Security Object"},
      {"</00/1>", "Security Object"},
      {"</lwm2m>;rt=\\\"oma.lwm2m\\\",</lwm2m/0/0>,</lwm2m/1/0>", "Security Object"},
      {"</1/0>,", "it ends with ','"},
      {"</1/0>,,</3/0>", "an entry does not start with '<'"},
      {"</1/0> </3/0>", "something other than ;attributes follows a <path>"},
      {"</1/0>x", "something other than ;attributes follows a <path>"},
      {"</abc>", "not </object> or </object/instance>"},
      {"</1/0/1>", "not </object> or </object/instance>"},
      {"</1//0>", "not </object>"},
      {"</1/0/>", "not </object>"},
      {"</70000>", "numbers up to 65535"},
      {"</1234567>", "numbers up to 65535"},
      {"</1/0", "'<' without '>'"},
      {"</1/0>;title=\\\"a", "a quoted attribute value is not closed"},
      {"</1/0>\\t", "outside printable ASCII"},
  };
  for (size_t i = 0; i < sizeof(bad_objects) / sizeof(bad_objects[0]); i++) {
    snprintf(fields, sizeof(fields), "{ dev_eui = \"70B3D57ED0012345\"; objects = \"%s\"; }",
             bad_objects[i].objects);
    load_err(with_lorawan_devices(fields, ""), "<string>:2: devices.[0].objects: expected the "
                                               "Objects and Object Instances in CoRE link format",
             bad_objects[i].reason);
  }
  /* 1024 bytes at most: 203 times "</1>," and "</1/1234>" */
  char objects[1100] = "";
  for (int i = 0; i < 203; i++)
    strcat(objects, "</1>,");
  strcat(objects, "</1/1234>");
  assert_int_equal(strlen(objects), 1024);
  snprintf(fields, sizeof(fields), "{ dev_eui = \"70B3D57ED0012345\"; objects = \"%s\"; }",
           objects);
  load_ok(with_lorawan_devices(fields, ""));
  assert_int_equal(strlen(cfg.devices[0].objects), 1024);
  strcpy(objects + 1015, "</1/12345>");
  snprintf(fields, sizeof(fields), "{ dev_eui = \"70B3D57ED0012345\"; objects = \"%s\"; }",
           objects);
  load_err(with_lorawan_devices(fields, ""), "<string>:2: devices.[0].objects: ",
           "it is longer than 1024 bytes");
}

/* ---- the DESIGN.md example, with nidd enabled instead of sms ---- */

static void test_design_example(void **state) {
  (void)state;
  load_ok(
      "gateway = { state_dir = \"/var/lib/lwm2m-gw\"; log_level = \"info\"; metrics = "
      "\"127.0.0.1:9464\"; };\n"
      "upstream = ( { name = \"default\"; uri = \"coaps://lwm2m.example.net:5684\"; profile = "
      "\"lwm2m11\"; } );\n"
      "devices = ( { endpoint = \"meter-17\"; msisdn = \"14155550125\"; upstream = \"default\";\n"
      "              psk_identity = \"meter-17\"; psk_key_hex = \"000102030405060708090a0b0c0d0e0f\"; "
      "} );\n"
      "bindings = {\n"
      "  sms     = { enabled = false; modem = \"/dev/serial/by-id/usb-Quectel_EC25-if02-port0\";\n"
      "              msisdn = \"12125550178\"; pin = \"1234\"; concatenated = true; allow = [ "
      "\"14155550125\" ]; };\n"
      "  mqtt    = { enabled = false; broker = \"tcp://127.0.0.1:1883\"; prefix = \"tenant-a\"; };\n"
      "  http    = { enabled = false; listen = \"0.0.0.0:8080\"; };\n"
      "  lorawan = { enabled = false; };\n"
      "  nidd    = { enabled = true; sgi = { listen = \"127.0.0.1:5685\"; }; };\n"
      "};\n");
  assert_string_equal(cfg.gateway.metrics, "127.0.0.1:9464");
  assert_int_equal(cfg.upstreams[0].port, 5684);
  assert_true(cfg.upstreams[0].secure);
  assert_int_equal(cfg.device_count, 1);
  assert_string_equal(cfg.devices[0].msisdn, "14155550125");
  assert_int_equal(cfg.devices[0].psk_key_len, 16);
  assert_true(cfg.bindings.nidd.enabled);
}

/* ---- files: FILE:LINE, relative paths, the shipped example ---- */

static void test_load_file(void **state) {
  (void)state;
  char path[256], text[2048];
  write_file("keys.hex", "000102030405060708090a0b0c0d0e0f\n", path, sizeof(path));
  snprintf(text, sizeof(text),
           "# test configuration\n"                                            /* 1 */
           "upstream = ( { name = \"default\"; uri = \"coaps://h\"; } );\n"    /* 2 */
           "devices = (\n"                                                     /* 3 */
           "  { endpoint = \"a\"; psk_identity = \"a\"; psk_key_file = \"keys.hex\"; },\n" /* 4 */
           "  { endpoint = \"b\";\n"                                           /* 5 */
           "    psk_identity = \"b\";\n"                                       /* 6 */
           "    psk_key_hex = \"0g\"; }\n"                                     /* 7 */
           ");\n" NIDD);
  write_file("bad.conf", text, path, sizeof(path));
  char expected[512];
  assert_int_equal(load_path(path), GW_ERR_CONFIG);
  snprintf(expected, sizeof(expected), "%s:7: devices.[1].psk_key_hex: expected 2 to 128 hex",
           path);
  assert_true(strncmp(err, expected, strlen(expected)) == 0);

  /* the same file fixed: psk_key_file is relative to the configuration's directory */
  snprintf(text, sizeof(text),
           "upstream = ( { name = \"default\"; uri = \"coaps://h\"; } );\n"
           "devices = ( { endpoint = \"a\"; psk_identity = \"a\"; psk_key_file = \"keys.hex\"; } );\n"
           "gateway = { state_dir = \"state\"; };\n" NIDD);
  write_file("good.conf", text, path, sizeof(path));
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir("/"), 0);
  int rc = load_path(path);
  assert_int_equal(chdir(cwd), 0);
  if (rc != 0)
    fail_msg("%s", err);
  assert_string_equal(cfg.path, path);
  assert_int_equal(cfg.devices[0].psk_key_len, 16);
  assert_int_equal(cfg.devices[0].psk_key[15], 0x0f);
  char state_dir[512];
  snprintf(state_dir, sizeof(state_dir), "%s/state", tmp_dir);
  assert_string_equal(cfg.gateway.state_dir, state_dir);
  gw_config_free(&cfg);

  /* missing settings: the line of the group that should hold them */
  write_file("missing.conf",
             "upstream = (\n  {\n    name = \"default\";\n  }\n);\n" NIDD, path, sizeof(path));
  assert_int_equal(load_path(path), GW_ERR_CONFIG);
  snprintf(expected, sizeof(expected), "%s:2: upstream.[0].uri: missing", path);
  assert_true(strncmp(err, expected, strlen(expected)) == 0);

  /* syntax errors name the file and line */
  write_file("syntax.conf", MIN "\n\ngateway = { state_dir = ; };\n", path, sizeof(path));
  assert_int_equal(load_path(path), GW_ERR_CONFIG);
  snprintf(expected, sizeof(expected), "%s:5: syntax error", path);
  assert_string_equal(err, expected);

  /* @include is relative to the configuration's directory, errors name the included file */
  char inc[256];
  write_file("inc.conf", "\ndevices = ( { endpoint = \"a b\"; } );\n", inc, sizeof(inc));
  write_file("main.conf", UP "@include \"inc.conf\"\n" NIDD, path, sizeof(path));
  assert_int_equal(load_path(path), GW_ERR_CONFIG);
  snprintf(expected, sizeof(expected), ":2: devices.[0].endpoint: expected 1 to 127");
  assert_non_null(strstr(err, expected));
  assert_non_null(strstr(err, "inc.conf"));

  snprintf(path, sizeof(path), "%s/nonexistent.conf", tmp_dir);
  assert_int_equal(load_path(path), GW_ERR_CONFIG);
  snprintf(expected, sizeof(expected), "%s: cannot open: No such file or directory", path);
  assert_string_equal(err, expected);
  assert_int_equal(load_path(tmp_dir), GW_ERR_CONFIG);
  assert_non_null(strstr(err, tmp_dir));
}

/* The shipped example (conf/lwm2m-gw.conf) must load. */
static void test_shipped_example(void **state) {
  (void)state;
  const char *candidates[] = {"conf/lwm2m-gw.conf", "../conf/lwm2m-gw.conf",
                              "../../conf/lwm2m-gw.conf"};
  const char *src = getenv("GW_EXAMPLE_CONF");
  for (size_t i = 0; !src && i < sizeof(candidates) / sizeof(candidates[0]); i++)
    if (access(candidates[i], R_OK) == 0)
      src = candidates[i];
  if (!src)
    fail_msg("conf/lwm2m-gw.conf not found; ctest sets GW_EXAMPLE_CONF");
  /* Installed as an operator would: it holds a key, so private (install -m 600). */
  char installed[256], cmd[600];
  snprintf(installed, sizeof(installed), "%s/lwm2m-gw.conf", tmp_dir);
  snprintf(cmd, sizeof(cmd), "install -m 600 '%s' '%s'", src, installed);
  assert_int_equal(system(cmd), 0);
  int rc = load_path(installed);
  if (rc != 0)
    fail_msg("%s", err);
  assert_true(cfg.bindings.nidd.enabled);
  assert_string_equal(cfg.bindings.nidd.sgi_listen, "127.0.0.1:5685");
  assert_int_equal(cfg.device_count, 2);
  const gw_upstream_conf_t *plain = gw_config_device_upstream(&cfg, &cfg.devices[0]);
  assert_string_equal(plain->host, "leshan.example.net");
  assert_int_equal(plain->port, 5683);
  assert_false(plain->secure);
  assert_null(cfg.devices[0].psk_identity);
  const gw_upstream_conf_t *dtls = gw_config_device_upstream(&cfg, &cfg.devices[1]);
  assert_true(dtls->secure);
  assert_int_equal(dtls->port, 5684);
  assert_int_equal(cfg.devices[1].psk_key_len, 16);
}

/* The shipped examples' folder: beside GW_EXAMPLE_CONF (set by ctest), else found from here. */
static void example_path(const char *name, char *out, size_t size) {
  const char *conf = getenv("GW_EXAMPLE_CONF");
  const char *slash = conf ? strrchr(conf, '/') : NULL;
  if (slash) {
    snprintf(out, size, "%.*s/%s", (int)(slash - conf), conf, name);
    return;
  }
  const char *dirs[] = {"conf", "../conf", "../../conf"};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    snprintf(out, size, "%s/%s", dirs[i], name);
    if (access(out, R_OK) == 0)
      return;
  }
  fail_msg("conf/%s not found; ctest sets GW_EXAMPLE_CONF", name);
}

/* text with every "from" replaced by "to"; frees text, the result is the caller's. */
static char *replaced(char *text, const char *from, const char *to) {
  size_t count = 0;
  for (const char *p = text; (p = strstr(p, from)) != NULL; p += strlen(from))
    count++;
  char *out = malloc(strlen(text) + count * strlen(to) + 1);
  assert_non_null(out);
  out[0] = '\0';
  const char *p = text;
  for (const char *hit; (hit = strstr(p, from)) != NULL; p = hit + strlen(from)) {
    strncat(out, p, (size_t)(hit - p));
    strcat(out, to);
  }
  strcat(out, p);
  free(text);
  return out;
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    fail_msg("cannot open %s", path);
  char *text = calloc(1, 65536);
  assert_non_null(text);
  size_t n = fread(text, 1, 65535, f);
  fclose(f);
  assert_true(n < 65535);
  return text;
}

/* An example as shipped loads where the binding is built; elsewhere it fails only at
 * bindings.lorawan.enabled. Then it is loaded with the binding disabled and nidd enabled
 * instead, so that what it holds is checked in every build. text is consumed. */
static void load_lorawan_example(const char *name, char *text) {
  char installed[512];
  write_file(name, text, installed, sizeof(installed)); /* private, as install -m 600 makes it */
  if (load_path(installed) != 0 &&
      (lorawan_built() || !strstr(err, "bindings.lorawan.enabled: binding 'lorawan' is not "
                                       "available in this build")))
    fail_msg("%s", err);
  text = replaced(text, "enabled = true;", "enabled = false;");
  text = replaced(text, "bindings = {\n", "bindings = {\n  nidd = { enabled = true; sgi = { "
                                          "listen = \"127.0.0.1:5685\"; }; };\n");
  write_file(name, text, installed, sizeof(installed));
  free(text);
  if (load_path(installed) != 0)
    fail_msg("%s", err);
}

/* conf/nidd-scef.conf loads up to the refusal of NIDD via SCEF, at the scef group's line; with
 * the group off (and the SGi tunnel on), what it holds is checked and read. */
static void test_scef_example(void **state) {
  (void)state;
  char src[512], installed[512], token[256], dir_slash[128];
  example_path("nidd-scef.conf", src, sizeof(src));
  if (access("/etc/lwm2m-gw/scef.token", F_OK) != 0) { /* as shipped, before the token is there */
    char *shipped = read_text(src);
    write_file("nidd-scef-as-shipped.conf", shipped, installed, sizeof(installed));
    free(shipped);
    assert_int_equal(load_path(installed), GW_ERR_CONFIG);
    assert_non_null(strstr(err, ": bindings.nidd.scef.token_file: cannot read "
                                "\"/etc/lwm2m-gw/scef.token\": No such file or directory"));
  }
  write_file("scef.token", "c2NlZi10b2tlbi1leGFtcGxl\n", token, sizeof(token));
  snprintf(dir_slash, sizeof(dir_slash), "%s/", tmp_dir);
  char *text = replaced(read_text(src), "/etc/lwm2m-gw/", dir_slash);
  const char *group = strstr(text, "    scef = {");
  assert_non_null(group);
  unsigned line = 1;
  for (const char *c = text; c < group; c++)
    line += *c == '\n';
  char expect[128];
  snprintf(expect, sizeof(expect), "nidd-scef.conf:%u: bindings.nidd.scef: " SCEF_REFUSED, line);
  write_file("nidd-scef.conf", text, installed, sizeof(installed));
  assert_int_equal(load_path(installed), GW_ERR_CONFIG);
  if (!strstr(err, expect))
    fail_msg("error \"%s\"\n does not contain \"%s\"", err, expect);

  text = replaced(text, "    scef = {",
                  "    sgi = { listen = \"127.0.0.1:5685\"; };\n    scef = { enabled = false;");
  write_file("nidd-scef.conf", text, installed, sizeof(installed));
  free(text);
  if (load_path(installed) != 0)
    fail_msg("%s", err);
  const gw_scef_conf_t *scef = &cfg.bindings.nidd.scef;
  assert_false(scef->enabled);
  assert_string_equal(scef->url, "https://scef.operator.example/t8");
  assert_string_equal(scef->scs_as_id, "lwm2m-gw");
  assert_string_equal(scef->token, "c2NlZi10b2tlbi1leGFtcGxl");
  assert_false(scef->has_oauth);
  assert_string_equal(scef->notification_listen, "0.0.0.0:8081");
  assert_string_equal(scef->notification_url, "http://203.0.113.20:8081/t8/notifications");
  assert_int_equal(scef->notification_allow_count, 1);
  assert_string_equal(scef->notification_allow[0], "198.51.100.7");
  assert_true(scef->reliable_data_service);
  assert_int_equal(scef->configuration_duration_s, 86400);
  assert_int_equal(scef->maximum_latency_s, 0);
  assert_null(scef->external_group_id);
  assert_int_equal(scef->rds_count, 2);
  assert_int_equal(scef->rds[0].ue_port, 0);
  assert_int_equal(scef->rds[0].scef_port, 1);
  assert_string_equal(scef->rds[0].upstream, "default");
  assert_int_equal(scef->rds[1].scef_port, 2);
  assert_string_equal(scef->rds[1].bootstrap, "bootstrap");
  assert_false(cfg.bindings.nidd.accept_unknown);
  assert_int_equal(cfg.device_count, 2);
  assert_string_equal(cfg.devices[0].external_id, "123456@iot.operator.example");
  assert_true(cfg.devices[0].queue_mode);
  assert_string_equal(cfg.devices[1].msisdn, "491701234567");
}

/* The two LoRaWAN examples, conf/lorawan-chirpstack.conf and conf/lorawan-tts.conf, load. */
static void test_lorawan_examples(void **state) {
  (void)state;
  char src[512], installed[512];
  example_path("lorawan-chirpstack.conf", src, sizeof(src));
  load_lorawan_example("lorawan-chirpstack.conf", read_text(src));
  const gw_lorawan_conf_t *lw = &cfg.bindings.lorawan;
  assert_int_equal(lw->network_server, GW_LNS_CHIRPSTACK);
  assert_string_equal(lw->broker, "tcp://127.0.0.1:1883");
  assert_string_equal(lw->application_id, LW_APP);
  assert_int_equal(lw->qos, 1);
  assert_int_equal(lw->port_count, 2);
  assert_int_equal(lw->ports[0].fport, 1);
  assert_string_equal(lw->ports[0].upstream, "default");
  assert_int_equal(lw->ports[1].fport, 2);
  assert_string_equal(lw->ports[1].bootstrap, "bootstrap");
  assert_int_equal(cfg.device_count, 2);
  assert_string_equal(cfg.devices[0].endpoint, "70B3D57ED0012345");
  assert_string_equal(cfg.devices[0].objects, "</1/0>,</3/0>,</5>");
  assert_string_equal(cfg.devices[1].dev_eui, "70B3D57ED0012346");
  assert_string_equal(cfg.devices[1].endpoint, "soil-probe-7");

  /* As shipped, on a machine without the API key yet: that is its only error. */
  example_path("lorawan-tts.conf", src, sizeof(src));
  if (access("/etc/lwm2m-gw/tts.key", F_OK) != 0) {
    char *shipped = read_text(src);
    write_file("lorawan-tts-as-shipped.conf", shipped, installed, sizeof(installed));
    free(shipped);
    assert_int_equal(load_path(installed), GW_ERR_CONFIG);
    assert_non_null(strstr(err, ": bindings.lorawan.api_key_file: cannot read "
                                "\"/etc/lwm2m-gw/tts.key\": No such file or directory"));
  }
  /* With the key where it says, here the test's directory (and a trust anchor where the
   * machine has no system store). */
  char key[256], dir_slash[128];
  write_file("tts.key", "NNSXS.EXAMPLE.KEY\n", key, sizeof(key));
  snprintf(dir_slash, sizeof(dir_slash), "%s/", tmp_dir);
  char *text = replaced(read_text(src), "/etc/lwm2m-gw/", dir_slash);
  if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) != 0)
    text = replaced(text, "/etc/ssl/certs/ca-certificates.crt", ca_path);
  load_lorawan_example("lorawan-tts.conf", text);
  assert_int_equal(lw->network_server, GW_LNS_TTS);
  assert_int_equal(lw->qos, 0);
  assert_string_equal(lw->broker, "mqtts://eu1.cloud.thethings.network:8883");
  assert_non_null(lw->ca_file);
  assert_string_equal(lw->application_id, "lwm2m-demo@ttn");
  assert_string_equal(lw->username, "lwm2m-demo@ttn");
  assert_string_equal(lw->password, "NNSXS.EXAMPLE.KEY");
  assert_int_equal(lw->port_count, 1);
  assert_string_equal(cfg.devices[0].endpoint, "70B3D57ED0012345");
  assert_string_equal(cfg.devices[0].lns_device_id, "eui-70b3d57ed0012345");
  assert_string_equal(cfg.devices[1].lns_device_id, "soil-probe-7");
}

/* ---- reload, free, error buffer ---- */

static void test_session_changed(void **state) {
  (void)state;
  const char *base_fields =
      "endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; "
      "ue_address = \"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; "
      "psk_key_hex = \"0011\"; queue_mode = false;";
  const char *ups = "upstream = ( { name = \"default\"; uri = \"coaps://h\"; },\n"
                    "             { name = \"other\"; uri = \"coaps://h2\"; } );\n";
  gw_config_t a;
  assert_int_equal(gw_config_load_string(with_device(ups, base_fields), &a, err, sizeof(err)), 0);
  const struct {
    const char *fields;
    bool changed;
  } cases[] = {
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"0011\"; "
       "queue_mode = true;",
       false},
      {"endpoint = \"b\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"other\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550126\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.8\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"b@d\"; psk_identity = \"a\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; psk_identity = \"a\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"b\"; psk_key_hex = \"0011\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"0012\";",
       true},
      {"endpoint = \"a\"; upstream = \"default\"; msisdn = \"14155550125\"; ue_address = "
       "\"10.0.0.7\"; external_id = \"a@d\"; psk_identity = \"a\"; psk_key_hex = \"001100\";",
       true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    load_ok(with_device(ups, cases[i].fields));
    if (gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]) != cases[i].changed)
      fail_msg("case %zu: expected changed=%d", i, cases[i].changed);
    assert_int_equal(gw_device_conf_session_changed(&cfg.devices[0], &a.devices[0]),
                     cases[i].changed);
  }
  assert_false(gw_device_conf_session_changed(&a.devices[0], &a.devices[0]));
  assert_true(gw_device_conf_session_changed(&a.devices[0], NULL));
  assert_false(gw_device_conf_session_changed(NULL, NULL));

  /* certificates */
  char fields_a[1024], fields_b[1024];
  snprintf(fields_a, sizeof(fields_a), "endpoint = \"a\"; cert_file = \"%s\"; key_file = \"%s\";",
           cert_path, key_path);
  snprintf(fields_b, sizeof(fields_b), "endpoint = \"a\"; cert_file = \"%s\"; key_file = \"%s\";",
           ca_path, key_path);
  gw_config_free(&a);
  assert_int_equal(gw_config_load_string(with_device(ups, fields_a), &a, err, sizeof(err)), 0);
  load_ok(with_device(ups, fields_b));
  assert_true(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  load_ok(with_device(ups, fields_a));
  assert_false(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  gw_config_free(&a);

  /* LoRaWAN: the DevEUI and the TTS device ID address the device; its object list does not */
  assert_int_equal(gw_config_load_string(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012345\"; "
                                                              "objects = \"</1/0>\"; }",
                                                              LW_TTS),
                                         &a, err, sizeof(err)),
                   0);
  load_ok(with_lorawan_devices("{ dev_eui = \"70b3d57ed0012345\"; objects = \"</1/0>,</3/0>\"; }",
                               LW_TTS));
  assert_false(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  load_ok(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012346\"; endpoint = \"70B3D57ED0012345\"; "
                               "device_id = \"eui-70b3d57ed0012345\"; }",
                               LW_TTS));
  assert_true(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  load_ok(with_lorawan_devices("{ dev_eui = \"70B3D57ED0012345\"; device_id = \"probe-7\"; }",
                               LW_TTS));
  assert_true(gw_device_conf_session_changed(&a.devices[0], &cfg.devices[0]));
  gw_config_free(&a);
}

static void test_config_free(void **state) {
  (void)state;
  load_ok(with_device(UP, "endpoint = \"a\";"));
  gw_config_free(&cfg);
  gw_config_t zero;
  memset(&zero, 0, sizeof(zero));
  assert_memory_equal(&cfg, &zero, sizeof(cfg));
  gw_config_free(&cfg); /* twice is harmless */
  gw_config_free(NULL);
}

static void test_error_buffer(void **state) {
  (void)state;
  char small[8];
  memset(small, 'x', sizeof(small));
  gw_config_free(&cfg);
  assert_int_equal(gw_config_load_string("gatway = 1;", &cfg, small, sizeof(small)),
               GW_ERR_CONFIG);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  assert_memory_equal(small, "<string", 7);
  assert_int_equal(gw_config_load_string("gatway = 1;", &cfg, NULL, 0), GW_ERR_CONFIG);
  assert_int_equal(gw_config_load_string(MIN, &cfg, NULL, 0), 0);
  gw_config_free(&cfg);
  char text[256];
  err[0] = 'x';
  snprintf(text, sizeof(text), "%s", MIN);
  assert_int_equal(gw_config_load_string(text, &cfg, err, sizeof(err)), 0);
  assert_string_equal(err, ""); /* success clears the message */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),         cmocka_unit_test(test_gateway_all_set),
      cmocka_unit_test(test_log_level),        cmocka_unit_test(test_gateway_ranges),
      cmocka_unit_test(test_gateway_types),    cmocka_unit_test(test_metrics),
      cmocka_unit_test(test_parse_host_port),  cmocka_unit_test(test_top_level),
      cmocka_unit_test(test_syntax_errors),    cmocka_unit_test(test_upstream_list),
      cmocka_unit_test(test_upstream_name),    cmocka_unit_test(test_upstream_uri),
      cmocka_unit_test(test_upstream_profile), cmocka_unit_test(test_upstream_files),
      cmocka_unit_test(test_devices_list),     cmocka_unit_test(test_device_defaults),
      cmocka_unit_test(test_device_endpoint),  cmocka_unit_test(test_device_upstream),
      cmocka_unit_test(test_find_upstream),    cmocka_unit_test(test_device_msisdn),
      cmocka_unit_test(test_device_ue_address), cmocka_unit_test(test_device_external_id),
      cmocka_unit_test(test_device_psk_hex),   cmocka_unit_test(test_device_psk_pairing),
      cmocka_unit_test(test_device_psk_file),  cmocka_unit_test(test_device_cert),
      cmocka_unit_test(test_bindings),
      cmocka_unit_test(test_sms_binding),
      cmocka_unit_test(test_secret_files_must_not_be_world_readable),
      cmocka_unit_test(test_device_sms_security),
      cmocka_unit_test(test_device_sms_secured_packet),
      cmocka_unit_test(test_nidd),             cmocka_unit_test(test_mqtt),
      cmocka_unit_test(test_scef_defaults),    cmocka_unit_test(test_scef_refused_last),
      cmocka_unit_test(test_scef_settings),    cmocka_unit_test(test_scef_errors),
      cmocka_unit_test(test_scef_secret_files),
      cmocka_unit_test(test_http),
      cmocka_unit_test(test_http_limits),
      cmocka_unit_test(test_lorawan_defaults), cmocka_unit_test(test_lorawan_settings),
      cmocka_unit_test(test_lorawan_errors),   cmocka_unit_test(test_lorawan_enabled),
      cmocka_unit_test(test_lorawan_api_key_file), cmocka_unit_test(test_device_lorawan),
      cmocka_unit_test(test_lorawan_examples),
      cmocka_unit_test(test_scef_example),
      cmocka_unit_test(test_design_example),   cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_included_secret_checked_from_any_directory),
      cmocka_unit_test(test_secret_in_main_file_by_relative_path),
      cmocka_unit_test(test_world_writable_files_refused),
      cmocka_unit_test(test_shipped_example),  cmocka_unit_test(test_session_changed),
      cmocka_unit_test(test_config_free),             cmocka_unit_test(test_error_buffer),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
