/* lwm2m-gw: loads and validates the libconfig file into gw_config_t (conf/README.md documents
 * every setting). The only file of the project that includes <libconfig.h>.
 *
 * The first error wins and is reported as "FILE:LINE: SETTING: what was expected", SETTING being
 * the libconfig path of the setting ("devices.[1].psk_key_hex", list indexes from 0). A missing
 * setting is reported at the line of the group that should hold it. Secret values (PSK keys) are
 * never echoed in messages.
 */
#include "gw_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"

/* RFC 7252 4.8: a piggybacked answer must leave before the server's first retransmission. */
#define COAP_ACK_TIMEOUT_MS 2000
#define SETTING_PATH_MAX 256
#define HOST_NAME_MAX_LEN 253
#define ENDPOINT_MAX_LEN 127
#define MQTT_PREFIX_MAX_LEN 64
#define PSK_KEY_FILE_MAX 4096
#define DEV_EUI_HEX_LEN 16
#define OBJECTS_MAX_LEN 1024
#define SCS_AS_ID_MAX_LEN 128
#define SECRET_LINE_MAX 4096 /* a password, a token (a JWT may take a few hundred bytes) */

typedef struct {
  const char *file;     /* name for messages when libconfig knows none: the path or "<string>" */
  const char *base_dir; /* relative file settings resolve against it; NULL: kept as given */
  char *err;
  size_t err_size;
  bool allow_readable_secrets; /* gateway.allow_readable_secrets */
} load_ctx_t;

static const char *const top_level_keys[] = {"gateway", "upstream", "devices", "bindings", NULL};
static const char *const gateway_keys[] = {
    "state_dir",      "log_level",     "log_target",  "metrics",
    "piggyback_window_ms", "device_timeout_ms", "downlink_queue_length", "queue_awake_ms",
    "max_devices",    "allow_readable_secrets", "max_unregistered", "unregistered_timeout_s",
    "uplink_queue_length", "uplink_hold_s", NULL};
static const char *const upstream_keys[] = {"name",    "uri",       "profile",
                                            "ca_file", "cert_file", "key_file", NULL};
static const char *const device_keys[] = {
    "endpoint",    "upstream",     "msisdn",       "ue_address", "external_id", "psk_identity",
    "psk_key_hex", "psk_key_file", "cert_file",    "key_file",   "queue_mode",
    "sms_security", "sms_psk_identity", "sms_psk_key_hex", "sms_psk_key_file",
    "sms_key_params_hex", "sms_secret_key_hex", "sms_secret_key_file", "mqtt_prefix",
    "http_url", "http_password", "http_password_file", "http_token", "http_token_file",
    "dev_eui", "device_id", "objects", NULL};
static const char *const binding_keys[] = {"nidd", "sms", "mqtt", "http", "lorawan", NULL};
static const char *const nidd_keys[] = {"enabled", "sgi", "scef", "accept_unknown", NULL};
static const char *const sgi_keys[] = {"listen", NULL};
/* token and oauth.client_secret are known only to be refused: secrets come from their _file. */
static const char *const scef_keys[] = {
    "enabled",  "url",       "scs_as_id",  "notification_listen", "notification_url",
    "token",    "token_file", "oauth",     "ca_file",             "cert_file",
    "key_file", "notification_allow",      "reliable_data_service", "configuration_duration_s",
    "maximum_latency_s",     "external_group_id", "rds", NULL};
static const char *const scef_oauth_keys[] = {"token_url", "client_id", "client_secret",
                                              "client_secret_file", "scope", NULL};
static const char *const scef_rds_keys[] = {"ue_port", "scef_port", "upstream", "bootstrap",
                                            NULL};
static const char *const sms_keys[] = {
    "enabled", "modem",   "baud",         "msisdn",   "pin",   "pin_file",
    "smsc",    "storage", "concatenated", "allow",    "reassembly_timeout_ms",
    "send_interval_ms",   "sweep_interval_ms",        "wake_queued", "dtls_cookies",
    "dtls_handshake_min_ms", "dtls_handshake_max_ms", "dtls_mtu", NULL};
static const char *const storage_names[] = {"SM", "ME", "MT", NULL};
static const char *const mqtt_keys[] = {
    "enabled", "broker",    "client_id", "username", "password",     "password_file",
    "ca_file", "cert_file", "key_file",  "qos",      "mqtt_version", "keepalive",
    "session_expiry_s", "accept_unknown", "prefix", "upstream", "bootstrap", "prefixes", NULL};
static const char *const http_keys[] = {
    "enabled",   "listen",         "cert_file",        "key_file",        "client_ca_file",
    "upstream",  "bootstrap",      "device_ca_file",   "device_cert_file", "device_key_file",
    "accept_unknown", "max_body", "max_connections", "max_connections_per_client",
    "idle_timeout_s", "header_timeout_s", "body_timeout_s", NULL};
static const char *const mqtt_prefix_keys[] = {"prefix", "upstream", "bootstrap", NULL};
/* api_key is known only to be refused with a clear message: the key belongs in api_key_file. */
static const char *const lorawan_keys[] = {
    "enabled",   "broker",        "client_id",      "username",     "password",
    "password_file", "api_key",   "api_key_file",   "ca_file",      "cert_file",
    "key_file",  "keepalive",     "qos",            "network_server", "application_id",
    "ports",     "accept_unknown", "confirmed_downlinks", "ack_timeout_s", "max_retransmit",
    "max_payload", "downlink_hold_s", NULL};
static const char *const lorawan_port_keys[] = {"fport", "upstream", "bootstrap", NULL};
/* Largest application payload N per data rate DR0..DR7 in EU868, not repeater compatible
 * (ChirpStack lrwn/src/region/eu868.rs; LoRaWAN Regional Parameters RP002). */
static const uint32_t eu868_max_payload[] = {51, 51, 51, 115, 242, 242, 242, 242};

/* ---- messages ---- */

static int fail(load_ctx_t *ctx, const config_setting_t *where, const char *setting,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(load_ctx_t *ctx, const config_setting_t *where, const char *setting,
                const char *fmt, ...) {
  if (ctx->err && ctx->err_size > 0) {
    const char *file = where ? config_setting_source_file(where) : NULL;
    unsigned line = where ? config_setting_source_line(where) : 0;
    if (!file)
      file = ctx->file;
    if (line == 0) /* the root group: "the top of the file" */
      line = 1;
    int n = snprintf(ctx->err, ctx->err_size, "%s:%u: %s: ", file, line, setting);
    if (n >= 0 && (size_t)n < ctx->err_size) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(ctx->err + n, ctx->err_size - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return GW_ERR_CONFIG;
}

static int nomem(load_ctx_t *ctx) {
  if (ctx->err && ctx->err_size > 0)
    snprintf(ctx->err, ctx->err_size, "%s: out of memory", ctx->file);
  return GW_ERR_NOMEM;
}

static void path_member(char out[SETTING_PATH_MAX], const char *parent, const char *name) {
  if (!parent || !*parent)
    snprintf(out, SETTING_PATH_MAX, "%s", name);
  else
    snprintf(out, SETTING_PATH_MAX, "%s.%s", parent, name);
}

static void path_index(char out[SETTING_PATH_MAX], const char *parent, size_t index) {
  snprintf(out, SETTING_PATH_MAX, "%s.[%zu]", parent, index);
}

static const char *type_name(const config_setting_t *s) {
  switch (config_setting_type(s)) {
  case CONFIG_TYPE_GROUP: return "a group";
  case CONFIG_TYPE_INT:
  case CONFIG_TYPE_INT64: return "an integer";
  case CONFIG_TYPE_FLOAT: return "a float";
  case CONFIG_TYPE_STRING: return "a string";
  case CONFIG_TYPE_BOOL: return "a boolean";
  case CONFIG_TYPE_ARRAY: return "an array";
  case CONFIG_TYPE_LIST: return "a list";
  default: return "nothing";
  }
}

static bool in_list(const char *const *list, const char *name) {
  for (; *list; list++)
    if (strcmp(*list, name) == 0)
      return true;
  return false;
}

/* Typos must not pass silently: every member of group must be one of known. */
static int check_known(load_ctx_t *ctx, const config_setting_t *group, const char *group_path,
                       const char *const *known) {
  int n = config_setting_length(group);
  for (int i = 0; i < n; i++) {
    const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
    const char *name = config_setting_name(s);
    if (!name || in_list(known, name))
      continue;
    char list[512] = "";
    size_t used = 0;
    for (const char *const *k = known; *k && used < sizeof(list); k++) {
      int w = snprintf(list + used, sizeof(list) - used, "%s%s", k == known ? "" : ", ", *k);
      if (w < 0)
        break;
      used += (size_t)w;
    }
    char path[SETTING_PATH_MAX];
    path_member(path, group_path, name);
    return fail(ctx, s, path, "unknown setting (expected one of: %s)", list);
  }
  return 0;
}

/* ---- typed getters; absent optional settings leave *out untouched ---- */

static const config_setting_t *member(const config_setting_t *group, const char *name) {
  return group ? config_setting_get_member(group, name) : NULL;
}

/* expect: what the value should look like, used in messages ("a directory path"). */
static int get_string(load_ctx_t *ctx, const config_setting_t *group, const char *group_path,
                      const char *name, bool required, const char *expect,
                      const config_setting_t **out_setting, const char **out_value) {
  const config_setting_t *s = member(group, name);
  char path[SETTING_PATH_MAX];
  path_member(path, group_path, name);
  *out_value = NULL;
  if (out_setting)
    *out_setting = s;
  if (!s)
    return required ? fail(ctx, group, path, "missing (expected %s)", expect) : 0;
  if (config_setting_type(s) != CONFIG_TYPE_STRING)
    return fail(ctx, s, path, "expected %s in double quotes, got %s", expect, type_name(s));
  const char *v = config_setting_get_string(s);
  if (!v || !*v)
    return fail(ctx, s, path, "expected %s, got an empty string", expect);
  *out_value = v;
  return 0;
}

static int get_uint(load_ctx_t *ctx, const config_setting_t *group, const char *group_path,
                    const char *name, long long min, long long max, const char *why,
                    const config_setting_t **out_setting, uint32_t *out) {
  const config_setting_t *s = member(group, name);
  char path[SETTING_PATH_MAX];
  path_member(path, group_path, name);
  if (out_setting)
    *out_setting = s;
  if (!s)
    return 0;
  int type = config_setting_type(s);
  if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
    return fail(ctx, s, path, "expected an integer from %lld to %lld%s, got %s", min, max, why,
                type_name(s));
  long long v = config_setting_get_int64(s);
  if (v < min || v > max)
    return fail(ctx, s, path, "expected an integer from %lld to %lld%s, got %lld", min, max, why,
                v);
  *out = (uint32_t)v;
  return 0;
}

static int get_bool(load_ctx_t *ctx, const config_setting_t *group, const char *group_path,
                    const char *name, const config_setting_t **out_setting, bool *out) {
  const config_setting_t *s = member(group, name);
  char path[SETTING_PATH_MAX];
  path_member(path, group_path, name);
  if (out_setting)
    *out_setting = s;
  if (!s)
    return 0;
  if (config_setting_type(s) != CONFIG_TYPE_BOOL)
    return fail(ctx, s, path, "expected true or false (without quotes), got %s", type_name(s));
  *out = config_setting_get_bool(s) != 0;
  return 0;
}

/* A group that may be absent; present but not a group is an error. */
static int get_group(load_ctx_t *ctx, const config_setting_t *parent, const char *parent_path,
                     const char *name, const char *expect, const config_setting_t **out) {
  const config_setting_t *s = member(parent, name);
  char path[SETTING_PATH_MAX];
  path_member(path, parent_path, name);
  *out = NULL;
  if (!s)
    return 0;
  if (config_setting_type(s) != CONFIG_TYPE_GROUP)
    return fail(ctx, s, path, "expected a group %s, got %s", expect, type_name(s));
  *out = s;
  return 0;
}

static int dup_string(load_ctx_t *ctx, const char *value, char **out) {
  if (!value)
    return 0;
  *out = strdup(value);
  return *out ? 0 : nomem(ctx);
}

/* ---- syntax of values ---- */

/* Digits only, 1..65535. */
static int parse_port(const char *text, size_t len, uint16_t *out_port) {
  if (len == 0 || len > 5)
    return -1;
  unsigned long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9')
      return -1;
    v = v * 10 + (unsigned long)(text[i] - '0');
  }
  if (v < 1 || v > 65535)
    return -1;
  *out_port = (uint16_t)v;
  return 0;
}

static bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_';
}

/* Splits "host:port" / "[v6]:port". On success host (brackets removed) is copied into host_buf
 * and *out_port_text points at the port. Returns NULL or the reason it is malformed. */
static const char *split_host_port(const char *text, char *host_buf, size_t host_size,
                                   bool *out_bracketed, const char **out_port_text) {
  const char *host;
  size_t host_len;
  const char *rest;
  *out_bracketed = text[0] == '[';
  if (*out_bracketed) {
    const char *close = strchr(text, ']');
    if (!close)
      return "'[' without ']'";
    host = text + 1;
    host_len = (size_t)(close - host);
    rest = close + 1;
    if (*rest != ':')
      return "missing \":port\" after ']'";
  } else {
    const char *colon = strrchr(text, ':');
    if (!colon)
      return "missing \":port\"";
    host = text;
    host_len = (size_t)(colon - text);
    if (memchr(text, ':', host_len))
      return "IPv6 addresses go in brackets, as in \"[::1]:5685\"";
    for (size_t i = 0; i < host_len; i++)
      if (!is_host_char(host[i]))
        return "the host may hold only letters, digits, '-', '.', '_'";
    rest = colon;
  }
  if (host_len == 0)
    return "missing host before the port";
  if (host_len >= host_size || host_len > HOST_NAME_MAX_LEN)
    return "host name too long";
  memcpy(host_buf, host, host_len);
  host_buf[host_len] = '\0';
  *out_port_text = rest + 1;
  return NULL;
}

static const char *host_port_reason(const char *text, struct sockaddr_storage *out_addr,
                                    unsigned *out_len) {
  char host[HOST_NAME_MAX_LEN + 1];
  bool bracketed;
  const char *port_text;
  const char *reason = split_host_port(text, host, sizeof(host), &bracketed, &port_text);
  if (reason)
    return reason;
  uint16_t port;
  if (parse_port(port_text, strlen(port_text), &port) != 0)
    return "the port must be a number from 1 to 65535";
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
  struct addrinfo *res = NULL;
  if (getaddrinfo(host, port_text, &hints, &res) != 0 || !res)
    return bracketed ? "not a valid IPv6 address in brackets" : "cannot resolve the host";
  if (res->ai_addrlen > sizeof(struct sockaddr_storage)) {
    freeaddrinfo(res);
    return "unsupported address family";
  }
  if (out_addr) {
    memset(out_addr, 0, sizeof(*out_addr));
    memcpy(out_addr, res->ai_addr, res->ai_addrlen);
  }
  if (out_len)
    *out_len = (unsigned)res->ai_addrlen;
  freeaddrinfo(res);
  return NULL;
}

int gw_parse_host_port(const char *text, struct sockaddr_storage *out_addr, unsigned *out_len) {
  if (!text)
    return -1;
  return host_port_reason(text, out_addr, out_len) ? -1 : 0;
}

/* A string setting whose syntax reason_of checks (NULL: good, else what is wrong), copied into
 * *out, which stays NULL when it is absent and optional. what: the setting, for a missing one
 * ("the modem's serial port"); form: its syntax, for a malformed one ("an http:// URL"). */
static int get_checked_string(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                              const char *name, bool required, const char *what,
                              const char *form, const char *(*reason_of)(const char *value),
                              char **out) {
  const config_setting_t *s;
  const char *value;
  int rc = get_string(ctx, g, gpath, name, required, what, &s, &value);
  if (rc != 0 || !value)
    return rc;
  const char *reason = reason_of(value);
  if (reason) {
    char path[SETTING_PATH_MAX];
    path_member(path, gpath, name);
    return fail(ctx, s, path, "expected %s: %s, got \"%.80s\"", form, reason, value);
  }
  return dup_string(ctx, value, out);
}

static const char *listen_reason(const char *text) {
  return host_port_reason(text, NULL, NULL);
}

/* A "host:port" / "[ipv6]:port" to listen on; *out stays NULL when absent and optional. */
static int get_listen(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                      const char *name, bool required, const char *what, char **out) {
  return get_checked_string(ctx, g, gpath, name, required, what,
                            "\"host:port\" or \"[ipv6]:port\" to listen on", listen_reason, out);
}

/* The syntax of an External (Group) Identifier, for messages: what is "External Identifier". */
#define EXTERNAL_ID_FORM(what) "\"local-id@domain\" (3GPP TS 23.003 19.7 " what ")"

/* "coap://host[:port]" or "coaps://host[:port]", an optional lone trailing '/'. */
static const char *parse_coap_uri(const char *uri, bool *out_secure, char *host_buf,
                                  size_t host_size, uint16_t *out_port) {
  const char *p;
  if (strncasecmp(uri, "coaps://", 8) == 0) {
    *out_secure = true;
    p = uri + 8;
  } else if (strncasecmp(uri, "coap://", 7) == 0) {
    *out_secure = false;
    p = uri + 7;
  } else {
    return "the scheme must be coap:// or coaps://";
  }
  const char *host = p;
  size_t host_len;
  bool bracketed = *p == '[';
  if (bracketed) {
    const char *close = strchr(p, ']');
    if (!close)
      return "'[' without ']'";
    host = p + 1;
    host_len = (size_t)(close - host);
    p = close + 1;
  } else {
    host_len = 0;
    while (is_host_char(host[host_len]))
      host_len++;
    p = host + host_len;
  }
  if (host_len == 0)
    return "missing host";
  if (host_len >= host_size || host_len > HOST_NAME_MAX_LEN)
    return "host name too long";
  memcpy(host_buf, host, host_len);
  host_buf[host_len] = '\0';
  if (bracketed) {
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host_buf, &a6) != 1)
      return "not a valid IPv6 address in brackets";
  }
  *out_port = *out_secure ? 5684 : 5683;
  if (*p == ':') {
    const char *port_text = p + 1;
    size_t port_len = strcspn(port_text, "/");
    if (parse_port(port_text, port_len, out_port) != 0)
      return "the port must be a number from 1 to 65535";
    p = port_text + port_len;
  }
  if (p[0] == '/' && p[1] == '\0')
    p++;
  if (*p != '\0')
    return "nothing may follow host[:port] (no path, query or user info)";
  return NULL;
}

typedef struct {
  int family;
  uint8_t addr[16];
  uint16_t port; /* 0: any port */
} ue_addr_t;

/* "ipv4", "ipv4:port", "[ipv6]", "[ipv6]:port" */
static const char *parse_ue_address(const char *text, ue_addr_t *out) {
  char host[64];
  const char *rest;
  size_t host_len;
  memset(out, 0, sizeof(*out));
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (!close)
      return "'[' without ']'";
    host_len = (size_t)(close - text - 1);
    if (host_len == 0 || host_len >= sizeof(host))
      return "not a valid IPv6 address in brackets";
    memcpy(host, text + 1, host_len);
    host[host_len] = '\0';
    out->family = AF_INET6;
    if (inet_pton(AF_INET6, host, out->addr) != 1)
      return "not a valid IPv6 address in brackets";
    rest = close + 1;
  } else {
    host_len = strcspn(text, ":");
    if (strchr(text + host_len + (text[host_len] ? 1 : 0), ':'))
      return "IPv6 addresses go in brackets, as in \"[2001:db8::1]:5683\"";
    if (host_len == 0 || host_len >= sizeof(host))
      return "not a valid IPv4 address";
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    out->family = AF_INET;
    if (inet_pton(AF_INET, host, out->addr) != 1)
      return "not a valid IPv4 address (numeric, like 10.0.0.7)";
    rest = text + host_len;
  }
  if (*rest == ':') {
    if (parse_port(rest + 1, strlen(rest + 1), &out->port) != 0)
      return "the port must be a number from 1 to 65535";
  } else if (*rest != '\0') {
    return "unexpected text after the address";
  }
  return NULL;
}

static bool valid_upstream_name(const char *name) {
  for (const char *c = name; *c; c++)
    if (!is_host_char(*c))
      return false;
  return true;
}

static bool valid_endpoint(const char *ep) {
  size_t len = strlen(ep);
  if (len == 0 || len > ENDPOINT_MAX_LEN)
    return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)ep[i];
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '&')
      return false;
  }
  return true;
}

/* E.164: up to 15 digits; at least 3 to catch obvious mistakes. */
static bool valid_msisdn(const char *msisdn) {
  const char *d = msisdn[0] == '+' ? msisdn + 1 : msisdn;
  size_t n = 0;
  for (; d[n]; n++)
    if (d[n] < '0' || d[n] > '9')
      return false;
  return n >= 3 && n <= 15;
}

/* A realm of RFC 4282 2.1 (a domain name): labels of letters, digits and '-', neither starting
 * nor ending with '-', at most 63 each, joined by single dots. */
static bool valid_domain(const char *domain) {
  size_t len = strlen(domain), label = 0;
  if (len == 0 || len > HOST_NAME_MAX_LEN)
    return false;
  for (size_t i = 0; i <= len; i++) {
    char c = domain[i];
    if (c == '.' || c == '\0') {
      if (label == 0 || label > 63 || domain[i - 1] == '-')
        return false;
      label = 0;
    } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
      label++;
    } else {
      return false;
    }
  }
  return true;
}

/* TS 23.003 19.7.2 (External Identifier) and 19.7.3 (External Group Identifier): "local@domain",
 * the form username@realm of RFC 4282; TS 29.122 ExternalId: neither part holds '@'. The local
 * identifier is printable ASCII without spaces, the domain a domain name. */
static const char *external_id_reason(const char *id) {
  const char *at = strchr(id, '@');
  if (!at)
    return "it has no '@'";
  if (at == id)
    return "the local identifier before '@' is empty";
  if (strchr(at + 1, '@'))
    return "it has more than one '@'";
  for (const char *c = id; c < at; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
      return "the local identifier holds a space or a character outside printable ASCII";
  if (!valid_domain(at + 1))
    return "the part after '@' is not a domain name such as iot.example.net (labels of letters, "
           "digits and inner '-' joined by dots)";
  return NULL;
}

/* {scsAsId} is a path segment of every T8 resource (TS 29.122 5.2.4 and TS29122_NIDD.yaml:
 * "String identifying the SCS/AS", no format given): RFC 3986 unreserved characters need no
 * percent-encoding, and "." or ".." would be removed from the path as dot-segments. */
static const char *scs_as_id_reason(const char *id) {
  size_t len = strlen(id);
  if (len > SCS_AS_ID_MAX_LEN)
    return "it is longer than 128 characters";
  if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
    return "\".\" and \"..\" are removed from URL paths";
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)id[i]) && !strchr("-._~", id[i]))
      return "it holds a character other than letters, digits, '-', '.', '_' and '~'";
  return NULL;
}

static bool is_printable_ascii(const char *text) {
  for (const char *c = text; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
      return false;
  return true;
}

/* RFC 6749 3.3: scope-tokens of NQCHAR (%x21 / %x23-5B / %x5D-7E) joined by single spaces. */
static bool valid_oauth_scope(const char *scope) {
  for (const char *c = scope; *c; c++) {
    if (*c == ' ' ? c == scope || c[1] == ' ' || c[1] == '\0'
                  : *c == '"' || *c == '\\' || (unsigned char)*c < 0x21 ||
                        (unsigned char)*c > 0x7e)
      return false;
  }
  return true;
}

/* RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". */
static bool valid_bearer_token(const char *token) {
  static const char b64token[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789-._~+/";
  size_t n = strspn(token, b64token);
  return n > 0 && token[n + strspn(token + n, "=")] == '\0';
}

/* 0.0.0.0 or [::]: a listener on every address, which no peer can be told to reach. */
static bool is_wildcard_host(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  return (inet_pton(AF_INET, host, &a4) == 1 && a4.s_addr == htonl(INADDR_ANY)) ||
         (inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6));
}

/* A LoRaWAN DevEUI: 16 hex digits in either case, written into out as 16 upper-case ones. */
static bool parse_dev_eui(const char *text, char out[DEV_EUI_HEX_LEN + 1]) {
  uint8_t eui[DEV_EUI_HEX_LEN / 2];
  size_t n = 0;
  return strlen(text) == DEV_EUI_HEX_LEN &&
         gw_hex_decode(text, DEV_EUI_HEX_LEN, eui, sizeof(eui), &n) == GW_OK &&
         n == sizeof(eui) && gw_hex_encode(eui, n, out, DEV_EUI_HEX_LEN + 1) == GW_OK;
}

/* One link-value of a CoRE link format list (RFC 6690 2): <path> and its attributes. */
typedef struct {
  const char *path, *attrs;
  size_t path_len, attrs_len;
} link_value_t;

/* Reads the link-value at *p into out and moves *p past it and its ','. NULL or the reason. */
static const char *next_link_value(const char **p, link_value_t *out) {
  const char *v = *p;
  if (*v != '<')
    return "an entry does not start with '<'";
  const char *close = strchr(v, '>');
  if (!close)
    return "'<' without '>'";
  out->path = v + 1;
  out->path_len = (size_t)(close - out->path);
  const char *q = close + 1;
  bool quoted = false;
  for (; *q && (quoted || *q != ','); q++)
    if (*q == '"')
      quoted = !quoted;
  if (quoted)
    return "a quoted attribute value is not closed";
  out->attrs = close + 1;
  out->attrs_len = (size_t)(q - out->attrs);
  if (out->attrs_len && out->attrs[0] != ';')
    return "something other than ;attributes follows a <path>";
  if (*q == ',') {
    q++;
    while (*q == ' ')
      q++;
    if (!*q)
      return "it ends with ','";
  }
  *p = q;
  return NULL;
}

/* An Object or Object Instance path "/O" or "/O/I" (numbers up to 65535): its Object ID, or -1. */
static long object_of_path(const char *path, size_t len) {
  long object = -1;
  int segments = 0;
  size_t i = 0;
  while (i < len) {
    if (path[i++] != '/' || i >= len || segments == 2)
      return -1;
    long v = 0;
    size_t start = i;
    for (; i < len && path[i] >= '0' && path[i] <= '9' && i - start < 6; i++)
      v = v * 10 + (path[i] - '0');
    if (i == start || v > 65535 || (i < len && path[i] != '/'))
      return -1;
    if (segments++ == 0)
      object = v;
  }
  return object;
}

/* devices.objects: what a device would put in its Register payload (Transport table 6.8.4-1),
 * checked for plausibility: printable ASCII, link-values </O> or </O/I> under the root or under
 * the alternate path of a <...>;rt="oma.lwm2m" entry (Core 6.2.2.1), never the Security Object. */
static const char *objects_reason(const char *links) {
  size_t len = strlen(links);
  if (len > OBJECTS_MAX_LEN)
    return "it is longer than 1024 bytes";
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)links[i] < 0x20 || (unsigned char)links[i] > 0x7e)
      return "it holds a character outside printable ASCII";
  if (links[0] != '<')
    return "it does not start with '<'";
  const char *p = links, *reason;
  link_value_t link, root = {0};
  while (*p) { /* the alternate path first: it may be listed anywhere */
    if ((reason = next_link_value(&p, &link)) != NULL)
      return reason;
    static const char rt[] = "rt=\"oma.lwm2m\"";
    if (memmem(link.attrs, link.attrs_len, rt, sizeof(rt) - 1))
      root = link;
  }
  for (p = links; *p;) {
    next_link_value(&p, &link);
    if (link.path == root.path)
      continue;
    if (root.path_len > 1 && link.path_len > root.path_len &&
        memcmp(link.path, root.path, root.path_len) == 0) {
      link.path += root.path_len;
      link.path_len -= root.path_len;
    }
    long object = object_of_path(link.path, link.path_len);
    if (object < 0)
      return "an entry is not </object> or </object/instance> with numbers up to 65535";
    if (object == 0)
      return "it lists the Security Object (</0...>), which Transport table 6.8.4-1 says MUST "
             "not be part of the list";
  }
  return NULL;
}

/* An http:// or https:// URL with a host, an optional port and path; no query, fragment, user
 * info or whitespace: a device's base URL for the HTTP binding (the gateway appends
 * /O/I/R?query), the SCEF's API root, the SCEF's notification destination. */
static const char *http_url_reason(const char *url) {
  size_t scheme = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
  if (scheme == 0)
    return "the scheme is not http:// or https://";
  if (strlen(url) > 512)
    return "it is longer than 512 characters";
  for (const char *p = url; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= 0x20 || c >= 0x7f)
      return "it contains a space or a character outside printable ASCII";
    if (c == '?' || c == '#')
      return "it has a query or fragment";
  }
  const char *host = url + scheme;
  size_t authority = strcspn(host, "/");
  if (memchr(host, '@', authority))
    return "it carries user information (credentials have settings of their own)";
  if (authority == 0 || host[0] == ':')
    return "it has no host";
  const char *port = host[0] == '[' ? memchr(host, ']', authority) : host;
  if (!port)
    return "it has an unterminated [IPv6] host";
  const char *colon = memchr(port, ':', authority - (size_t)(port - host));
  uint16_t number;
  if (colon && parse_port(colon + 1, authority - (size_t)(colon + 1 - host), &number) != 0)
    return "it has an invalid port";
  return NULL;
}

/* Never quotes the text: it is a secret. */
static const char *parse_hex_key(const char *text, size_t len, uint8_t *out, size_t *out_len) {
  if (len == 0)
    return "it is empty";
  if (len % 2 != 0)
    return "it has an odd number of hex digits";
  if (len / 2 > GW_PSK_KEY_MAX)
    return "it is longer than 64 bytes";
  if (gw_hex_decode(text, len, out, GW_PSK_KEY_MAX, out_len) != GW_OK)
    return "it holds a character that is not a hex digit";
  return NULL;
}

/* ---- files named by settings ---- */

/* Relative paths resolve against the configuration file's directory, so the daemon may chdir. */
static int resolve_path(load_ctx_t *ctx, const char *value, char **out) {
  if (value[0] == '/' || !ctx->base_dir)
    return dup_string(ctx, value, out);
  size_t n = strlen(ctx->base_dir) + 1 + strlen(value) + 1;
  *out = malloc(n);
  if (!*out)
    return nomem(ctx);
  snprintf(*out, n, "%s/%s", ctx->base_dir, value);
  return 0;
}

/* A file anyone may write can be made to say anything: another trust anchor, another key,
 * another server. Refused whatever else the configuration allows. */
static int check_not_world_writable(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                                    const char *file, const struct stat *st) {
  if (!(st->st_mode & S_IWOTH))
    return 0;
  return fail(ctx, s, path, "every user can write \"%s\" (mode %04o): chmod o-w it", file,
              (unsigned)(st->st_mode & 07777));
}

static int check_readable(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                          const char *file) {
  struct stat st;
  if (stat(file, &st) != 0)
    return fail(ctx, s, path, "cannot read \"%s\": %s", file, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return fail(ctx, s, path, "\"%s\" is a directory, expected a file", file);
  if (access(file, R_OK) != 0)
    return fail(ctx, s, path, "cannot read \"%s\": %s", file, strerror(errno));
  return check_not_world_writable(ctx, s, path, file, &st);
}

/* The file that holds setting s, as a path this process can open: libconfig reports an
 * @include as written, relative to the including file's directory (the include dir), not to
 * the working directory, and the main file as it was given, relative to the working directory.
 * NULL for strings loaded by gw_config_load_string. */
static const char *source_file_of(const load_ctx_t *ctx, const config_setting_t *s, char *buf,
                                  size_t size) {
  const char *file = config_setting_source_file(s);
  if (!file || file[0] == '/' || !ctx->base_dir || strcmp(file, ctx->file) == 0)
    return file;
  snprintf(buf, size, "%s/%s", ctx->base_dir, file);
  return buf;
}

/* A secret (a key, a PIN) may sit only in a file other users cannot read. file NULL: the
 * configuration file holding setting s. Strings loaded by gw_config_load_string have no file. */
static int check_secret_file(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                             const char *file) {
  struct stat st;
  char source[PATH_MAX];
  if (!file)
    file = source_file_of(ctx, s, source, sizeof(source));
  if (!file)
    return 0;
  if (stat(file, &st) != 0)
    return fail(ctx, s, path, "cannot check who may read \"%s\": %s", file, strerror(errno));
  int rc = check_not_world_writable(ctx, s, path, file, &st);
  if (rc != 0 || ctx->allow_readable_secrets || !(st.st_mode & S_IROTH))
    return rc;
  return fail(ctx, s, path,
              "\"%s\" holds a secret but every user can read it (mode %04o): "
              "chmod o-r it, or set gateway.allow_readable_secrets = true",
              file, (unsigned)(st.st_mode & 07777));
}

/* A readable file; *out is the resolved path (owned). */
static int get_file(load_ctx_t *ctx, const config_setting_t *group, const char *group_path,
                    const char *name, const config_setting_t **out_setting, char **out) {
  const char *value;
  int rc = get_string(ctx, group, group_path, name, false, "a file path", out_setting, &value);
  if (rc != 0 || !value)
    return rc;
  rc = resolve_path(ctx, value, out);
  if (rc != 0)
    return rc;
  char path[SETTING_PATH_MAX];
  path_member(path, group_path, name);
  return check_readable(ctx, *out_setting, path, *out);
}

/* An http:// or https:// URL (http_url_reason), its trailing '/'s dropped; *out stays NULL
 * when absent and optional. */
static int get_http_url(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                        const char *name, bool required, const char *what, char **out) {
  int rc = get_checked_string(ctx, g, gpath, name, required, what,
                              "an http:// or https:// URL", http_url_reason, out);
  if (rc != 0 || !*out)
    return rc;
  size_t n = strlen(*out);
  while (n > 0 && (*out)[n - 1] == '/')
    (*out)[--n] = 0;
  return 0;
}

/* ca_file, cert_file and key_file of a group whose connection has no TLS: refused, with why. */
static int refuse_tls_files(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                            const char *why) {
  static const char *const file_keys[] = {"ca_file", "cert_file", "key_file"};
  for (size_t k = 0; k < sizeof(file_keys) / sizeof(file_keys[0]); k++) {
    const config_setting_t *file_s = member(g, file_keys[k]);
    if (file_s) {
      char path[SETTING_PATH_MAX];
      path_member(path, gpath, file_keys[k]);
      return fail(ctx, file_s, path, "%s", why);
    }
  }
  return 0;
}

static int read_psk_key_file(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                             const char *file, uint8_t *out_key, size_t *out_key_len) {
  int rc = check_readable(ctx, s, path, file);
  if (rc == 0)
    rc = check_secret_file(ctx, s, path, file);
  if (rc != 0)
    return rc;
  FILE *f = fopen(file, "r");
  if (!f)
    return fail(ctx, s, path, "cannot read \"%s\": %s", file, strerror(errno));
  char buf[PSK_KEY_FILE_MAX + 1];
  size_t n = fread(buf, 1, sizeof(buf), f);
  bool read_error = ferror(f) != 0;
  fclose(f);
  if (read_error) {
    rc = fail(ctx, s, path, "cannot read \"%s\"", file);
  } else if (n > PSK_KEY_FILE_MAX) {
    rc = fail(ctx, s, path, "\"%s\" is too large to hold a hex key", file);
  } else {
    size_t start = 0, end = n;
    while (start < end && memchr(" \t\r\n\v\f", buf[start], 6))
      start++;
    while (end > start && memchr(" \t\r\n\v\f", buf[end - 1], 6))
      end--;
    const char *reason = parse_hex_key(buf + start, end - start, out_key, out_key_len);
    if (reason)
      rc = fail(ctx, s, path,
                "\"%s\" must hold the key as 2 to 128 hex digits (1 to 64 bytes), but %s", file,
                reason);
  }
  explicit_bzero(buf, sizeof(buf));
  return rc;
}

/* ---- sections ---- */

static int load_gateway(load_ctx_t *ctx, const config_setting_t *root, gw_gateway_conf_t *gw) {
  const config_setting_t *g;
  int rc = get_group(ctx, root, "", "gateway", "{ state_dir = ...; log_level = ...; }", &g);
  if (rc != 0 || !g)
    return rc;
  if ((rc = check_known(ctx, g, "gateway", gateway_keys)) != 0)
    return rc;

  const config_setting_t *s;
  const char *value;
  if ((rc = get_string(ctx, g, "gateway", "state_dir", false, "a directory path", &s, &value)))
    return rc;
  if (value) {
    char *resolved;
    if ((rc = resolve_path(ctx, value, &resolved)) != 0)
      return rc;
    free(gw->state_dir);
    gw->state_dir = resolved;
  }

  s = member(g, "log_level");
  if (s) {
    int level = -1;
    if (config_setting_type(s) == CONFIG_TYPE_STRING)
      level = gw_log_level_from_name(config_setting_get_string(s));
    else if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64)
      level = config_setting_get_int64(s) >= GW_LOG_ERR && config_setting_get_int64(s) <= GW_LOG_DEBUG
                  ? (int)config_setting_get_int64(s)
                  : -1;
    if (level < 0)
      return fail(ctx, s, "gateway.log_level",
                  "expected \"error\", \"warning\", \"notice\", \"info\" or \"debug\" (or 3 to 7)");
    gw->log_level = level;
  }

  if ((rc = get_string(ctx, g, "gateway", "log_target", false, "\"stderr\" or \"syslog\"", &s,
                       &value)))
    return rc;
  if (value) {
    if (strcmp(value, "syslog") == 0)
      gw->log_syslog = true;
    else if (strcmp(value, "stderr") == 0)
      gw->log_syslog = false;
    else
      return fail(ctx, s, "gateway.log_target", "expected \"stderr\" or \"syslog\"");
  }

  if ((rc = get_listen(ctx, g, "gateway", "metrics", false, "\"host:port\"", &gw->metrics)))
    return rc;

  const config_setting_t *piggyback_s, *timeout_s;
  if ((rc = get_uint(ctx, g, "gateway", "piggyback_window_ms", 0, COAP_ACK_TIMEOUT_MS - 1,
                     " (below CoAP ACK_TIMEOUT, RFC 7252 4.8)", &piggyback_s,
                     &gw->piggyback_window_ms)))
    return rc;
  if ((rc = get_uint(ctx, g, "gateway", "device_timeout_ms", 100, 600000, "", &timeout_s,
                     &gw->device_timeout_ms)))
    return rc;
  if (gw->device_timeout_ms <= gw->piggyback_window_ms)
    return fail(ctx, timeout_s ? timeout_s : piggyback_s, "gateway.device_timeout_ms",
                "must be greater than gateway.piggyback_window_ms (%u)", gw->piggyback_window_ms);
  if ((rc = get_uint(ctx, g, "gateway", "downlink_queue_length", 0, 1024, "", NULL,
                     &gw->downlink_queue_length)))
    return rc;
  if ((rc = get_uint(ctx, g, "gateway", "queue_awake_ms", 1000, 86400000, "", NULL,
                     &gw->queue_awake_ms)))
    return rc;
  if ((rc = get_bool(ctx, g, "gateway", "allow_readable_secrets", NULL,
                     &ctx->allow_readable_secrets)) != 0)
    return rc;
  if ((rc = get_uint(ctx, g, "gateway", "max_devices", 1, 1000000, "", NULL, &gw->max_devices)))
    return rc;
  if (gw->max_unregistered > gw->max_devices) /* the default follows a small max_devices */
    gw->max_unregistered = gw->max_devices;
  const config_setting_t *unreg_s;
  if ((rc = get_uint(ctx, g, "gateway", "max_unregistered", 1, 1000000, "", &unreg_s,
                     &gw->max_unregistered)))
    return rc;
  if (gw->max_unregistered > gw->max_devices)
    return fail(ctx, unreg_s, "gateway.max_unregistered",
                "must not exceed gateway.max_devices (%u)", gw->max_devices);
  if ((rc = get_uint(ctx, g, "gateway", "unregistered_timeout_s", 1, 86400, "", NULL,
                     &gw->unregistered_timeout_s)))
    return rc;
  if ((rc = get_uint(ctx, g, "gateway", "uplink_queue_length", 0, 4096, "", NULL,
                     &gw->uplink_queue_length)))
    return rc;
  return get_uint(ctx, g, "gateway", "uplink_hold_s", 1, 2592000, "", NULL, &gw->uplink_hold_s);
}

/* cert_file and key_file: both or neither. */
static int check_cert_pair(load_ctx_t *ctx, const char *group_path, const config_setting_t *cert_s,
                           const config_setting_t *key_s) {
  char path[SETTING_PATH_MAX];
  if (cert_s && !key_s) {
    path_member(path, group_path, "cert_file");
    return fail(ctx, cert_s, path, "needs key_file too (the certificate's private key)");
  }
  if (key_s && !cert_s) {
    path_member(path, group_path, "key_file");
    return fail(ctx, key_s, path, "needs cert_file too (the key's certificate)");
  }
  return 0;
}

/* cert_file and key_file: both or neither, the key in a private file. *out_cert and *out_key
 * are the resolved paths (owned), NULL when absent. */
static int get_cert_and_key(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                            char **out_cert, char **out_key) {
  const config_setting_t *s;
  char path[SETTING_PATH_MAX];
  int rc;
  if ((rc = check_cert_pair(ctx, gpath, member(g, "cert_file"), member(g, "key_file"))) != 0 ||
      (rc = get_file(ctx, g, gpath, "cert_file", &s, out_cert)) != 0 ||
      (rc = get_file(ctx, g, gpath, "key_file", &s, out_key)) != 0 || !*out_key)
    return rc;
  path_member(path, gpath, "key_file");
  return check_secret_file(ctx, s, path, *out_key);
}

/* An entry of the upstream or devices list: a group holding only known settings. */
static int check_list_entry(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                            const char *shape, const char *const *keys) {
  if (config_setting_type(e) != CONFIG_TYPE_GROUP)
    return fail(ctx, e, epath, "expected a group %s, got %s", shape, type_name(e));
  return check_known(ctx, e, epath, keys);
}

static int load_upstream(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                         gw_config_t *config, gw_upstream_conf_t *up) {
  int rc;
  if ((rc = check_list_entry(ctx, e, epath, "{ name = \"...\"; uri = \"coap://...\"; }",
                             upstream_keys)) != 0)
    return rc;

  const config_setting_t *s;
  const char *value;
  char path[SETTING_PATH_MAX];
  if ((rc = get_string(ctx, e, epath, "name", true, "a name of letters, digits, '_', '.', '-'", &s,
                       &value)))
    return rc;
  path_member(path, epath, "name");
  if (!valid_upstream_name(value))
    return fail(ctx, s, path, "expected a name of letters, digits, '_', '.', '-'");
  for (size_t j = 0; j < config->upstream_count; j++)
    if (strcmp(config->upstreams[j].name, value) == 0)
      return fail(ctx, s, path, "\"%s\" is already the name of upstream.[%zu]", value, j);
  if ((rc = dup_string(ctx, value, &up->name)) != 0)
    return rc;

  if ((rc = get_string(ctx, e, epath, "uri", true, "\"coap://host[:port]\" or \"coaps://host[:port]\"",
                       &s, &value)))
    return rc;
  char host[HOST_NAME_MAX_LEN + 1];
  const char *reason = parse_coap_uri(value, &up->secure, host, sizeof(host), &up->port);
  if (reason) {
    path_member(path, epath, "uri");
    return fail(ctx, s, path, "expected \"coap://host[:port]\" or \"coaps://host[:port]\": %s",
                reason);
  }
  if ((rc = dup_string(ctx, value, &up->uri)) != 0 || (rc = dup_string(ctx, host, &up->host)) != 0)
    return rc;

  if ((rc = get_string(ctx, e, epath, "profile", false, "\"lwm2m11\" or \"passthrough\"", &s,
                       &value)))
    return rc;
  if (value) {
    if (strcmp(value, "lwm2m11") == 0) {
      up->profile = GW_PROFILE_LWM2M11;
    } else if (strcmp(value, "passthrough") == 0) {
      up->profile = GW_PROFILE_PASSTHROUGH;
    } else {
      path_member(path, epath, "profile");
      return fail(ctx, s, path, "expected \"lwm2m11\" or \"passthrough\"");
    }
  }

  if (!up->secure && (rc = refuse_tls_files(ctx, e, epath, "only used with a coaps:// uri "
                                                           "(DTLS), this upstream is coap://")))
    return rc;
  if ((rc = get_file(ctx, e, epath, "ca_file", &s, &up->ca_file)) != 0)
    return rc;
  return get_cert_and_key(ctx, e, epath, &up->cert_file, &up->key_file);
}

/* A list ( ... ) or an array [ ... ]; expect says what it should hold. */
static int check_list(load_ctx_t *ctx, const config_setting_t *list, const char *path,
                      const char *expect) {
  int type = config_setting_type(list);
  if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
    return fail(ctx, list, path, "expected %s, got %s", expect, type_name(list));
  return 0;
}

/* An array [ "...", ... ] named name in g: each string is checked and copied by dup_value, which
 * reports its own errors. expect says what the array holds, item what one string is. *out is
 * allocated even for an empty array. */
static int load_string_array(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                             const char *name, const char *expect, const char *item,
                             int (*dup_value)(load_ctx_t *ctx, const config_setting_t *s,
                                              const char *path, const char *value, char **out),
                             char ***out, size_t *out_count) {
  const config_setting_t *list = member(g, name);
  if (!list)
    return 0;
  char list_path[SETTING_PATH_MAX];
  path_member(list_path, gpath, name);
  int rc = check_list(ctx, list, list_path, expect);
  if (rc != 0)
    return rc;
  int n = config_setting_length(list);
  if (!(*out = calloc((size_t)(n > 0 ? n : 1), sizeof(**out))))
    return nomem(ctx);
  for (int i = 0; i < n; i++) {
    const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    char path[SETTING_PATH_MAX];
    path_index(path, list_path, (size_t)i);
    const char *v = config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e)
                                                                  : NULL;
    if (!v)
      return fail(ctx, e, path, "expected %s in double quotes, got %s", item, type_name(e));
    if ((rc = dup_value(ctx, e, path, v, &(*out)[*out_count])) != 0)
      return rc;
    (*out_count)++;
  }
  return 0;
}

/* A non-empty list ( { ... }, ... ) of groups of one kind, such as bindings.lorawan.ports. */
typedef struct {
  const char *name;  /* "ports" */
  const char *path;  /* "bindings.lorawan.ports" */
  const char *shape; /* one entry as written, for messages: "{ fport = 1; ... }" */
  const char *noun;  /* "port", for "expected at least one port" */
  const char *const *keys;
  size_t entry_size;
  /* Loads entry e into entries[index] (entries: an array of entry_size-byte structs), and
   * checks it against the entries before it. */
  int (*load_entry)(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                    const gw_config_t *config, void *entries, size_t index);
} group_list_t;

/* The list kind->name of group g. *out is the array, *out_count the entries begun: the caller
 * frees a partly loaded list too. missing: the message when it is absent, NULL if optional. */
static int load_group_list(load_ctx_t *ctx, const config_setting_t *g, const group_list_t *kind,
                           const gw_config_t *config, const char *missing, void **out,
                           size_t *out_count) {
  const config_setting_t *list = member(g, kind->name);
  if (!list)
    return missing ? fail(ctx, g, kind->path, "%s", missing) : 0;
  char expect[192];
  snprintf(expect, sizeof(expect), "a list ( %s, ... )", kind->shape);
  int rc = check_list(ctx, list, kind->path, expect);
  if (rc != 0)
    return rc;
  int n = config_setting_length(list);
  if (n <= 0)
    return fail(ctx, list, kind->path, "expected at least one %s", kind->noun);
  if (!(*out = calloc((size_t)n, kind->entry_size)))
    return nomem(ctx);
  for (int i = 0; i < n; i++) {
    const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    char epath[SETTING_PATH_MAX];
    path_index(epath, kind->path, (size_t)i);
    rc = check_list_entry(ctx, e, epath, kind->shape, kind->keys);
    if (rc == 0)
      rc = kind->load_entry(ctx, e, epath, config, *out, (size_t)i);
    (*out_count)++;
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int load_upstreams(load_ctx_t *ctx, const config_setting_t *root, gw_config_t *config) {
  const config_setting_t *list = member(root, "upstream");
  if (!list)
    return fail(ctx, root, "upstream",
                "missing (expected a list of servers: upstream = ( { name = \"default\"; "
                "uri = \"coap://host:5683\"; } );)");
  int rc = check_list(ctx, list, "upstream", "a list ( { name = ...; uri = ...; }, ... ) of servers");
  if (rc != 0)
    return rc;
  int n = config_setting_length(list);
  if (n <= 0)
    return fail(ctx, list, "upstream", "expected at least one upstream server");
  config->upstreams = calloc((size_t)n, sizeof(*config->upstreams));
  if (!config->upstreams)
    return nomem(ctx);
  for (int i = 0; i < n; i++) {
    char epath[SETTING_PATH_MAX];
    path_index(epath, "upstream", (size_t)i);
    gw_upstream_conf_t *up = &config->upstreams[i];
    rc = load_upstream(ctx, config_setting_get_elem(list, (unsigned)i), epath, config, up);
    config->upstream_count++; /* counted even when partial, so gw_config_free frees it */
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* 3GPP 23.003 form: digits only, no '+'; a leading '+' is accepted and dropped. */
static int dup_msisdn(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                      const char *value, char **out) {
  if (!valid_msisdn(value))
    return fail(ctx, s, path, "expected an E.164 number: 3 to 15 digits, optionally after '+'");
  return dup_string(ctx, value[0] == '+' ? value + 1 : value, out);
}

/* A PSK pair: <prefix>psk_identity with <prefix>psk_key_hex or <prefix>psk_key_file. The
 * identity is allocated into out->identity; *out_identity_s is its setting (NULL if absent). */
static int load_psk(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                    const char *prefix, gw_psk_t *out, const config_setting_t **out_identity_s) {
  char name_id[40], name_hex[40], name_file[40], path[SETTING_PATH_MAX];
  snprintf(name_id, sizeof(name_id), "%spsk_identity", prefix);
  snprintf(name_hex, sizeof(name_hex), "%spsk_key_hex", prefix);
  snprintf(name_file, sizeof(name_file), "%spsk_key_file", prefix);
  const config_setting_t *identity_s, *hex_s, *key_file_s;
  const char *value;
  int rc;
  if ((rc = get_string(ctx, e, epath, name_id, false, "the PSK identity", &identity_s, &value)))
    return rc;
  *out_identity_s = identity_s;
  if (value && (rc = dup_string(ctx, value, &out->identity)) != 0)
    return rc;
  if ((rc = get_string(ctx, e, epath, name_hex, false, "the PSK as hex digits", &hex_s, &value)))
    return rc;
  if (value) {
    path_member(path, epath, name_hex);
    const char *reason = parse_hex_key(value, strlen(value), out->key, &out->key_len);
    if (reason)
      return fail(ctx, hex_s, path, "expected 2 to 128 hex digits (1 to 64 bytes), but %s",
                  reason);
    if ((rc = check_secret_file(ctx, hex_s, path, NULL)) != 0)
      return rc;
  }
  if ((rc = get_string(ctx, e, epath, name_file, false, "a file path", &key_file_s, &value)))
    return rc;
  if (value) {
    path_member(path, epath, name_file);
    if (hex_s)
      return fail(ctx, key_file_s, path, "give either %s or %s, not both", name_hex, name_file);
    char *file;
    if ((rc = resolve_path(ctx, value, &file)) != 0)
      return rc;
    rc = read_psk_key_file(ctx, key_file_s, path, file, out->key, &out->key_len);
    free(file);
    if (rc != 0)
      return rc;
  }
  if (identity_s && !hex_s && !key_file_s) {
    path_member(path, epath, name_id);
    return fail(ctx, identity_s, path, "needs %s or %s", name_hex, name_file);
  }
  if (!identity_s && (hex_s || key_file_s)) {
    path_member(path, epath, hex_s ? name_hex : name_file);
    return fail(ctx, hex_s ? hex_s : key_file_s, path, "needs %s too", name_id);
  }
  return 0;
}

/* Secured packets (5.3.2.1.3): sms_key_params_hex (7 octets: KIc, KID, SPI, TAR) and
 * sms_secret_key_hex or sms_secret_key_file (KIc key then KID key: 32, 48 or 64 octets). Only
 * lengths are checked here; the SMS binding parses the keys (conf/ does not depend on sms/). */
static int load_sms_secured_packet_keys(load_ctx_t *ctx, const config_setting_t *e,
                                        const char *epath, gw_device_conf_t *dev) {
  const config_setting_t *params_s, *hex_s, *file_s;
  const char *value;
  char path[SETTING_PATH_MAX];
  int rc;
  if ((rc = get_string(ctx, e, epath, "sms_key_params_hex", false,
                       "14 hex digits: KIc, KID, SPI (2), TAR (3)", &params_s, &value)) != 0)
    return rc;
  if (value) {
    path_member(path, epath, "sms_key_params_hex");
    uint8_t buf[GW_PSK_KEY_MAX];
    size_t n = 0;
    const char *reason = parse_hex_key(value, strlen(value), buf, &n);
    if (!reason && n != GW_SMS_KEY_PARAMS_LEN)
      reason = "it is not 7 bytes";
    if (reason)
      return fail(ctx, params_s, path,
                  "expected 14 hex digits (7 bytes: KIc, KID, SPI (2), TAR (3)), but %s", reason);
    memcpy(dev->sms_key_params, buf, GW_SMS_KEY_PARAMS_LEN);
    dev->has_sms_key_params = true;
  }
  if ((rc = get_string(ctx, e, epath, "sms_secret_key_hex", false,
                       "the secret keys as hex digits", &hex_s, &value)) != 0)
    return rc;
  if (value) {
    path_member(path, epath, "sms_secret_key_hex");
    const char *reason = parse_hex_key(value, strlen(value), dev->sms_secret, &dev->sms_secret_len);
    if (!reason && dev->sms_secret_len != 32 && dev->sms_secret_len != 48 &&
        dev->sms_secret_len != 64)
      reason = "it is not 32, 48 or 64 bytes";
    if (reason) {
      explicit_bzero(dev->sms_secret, sizeof(dev->sms_secret));
      dev->sms_secret_len = 0;
      return fail(ctx, hex_s, path,
                  "expected 64, 96 or 128 hex digits (the KIc key then the KID key), but %s",
                  reason);
    }
    if ((rc = check_secret_file(ctx, hex_s, path, NULL)) != 0)
      return rc;
  }
  if ((rc = get_string(ctx, e, epath, "sms_secret_key_file", false, "a file path", &file_s,
                       &value)) != 0)
    return rc;
  if (value) {
    path_member(path, epath, "sms_secret_key_file");
    if (hex_s)
      return fail(ctx, file_s, path,
                  "give either sms_secret_key_hex or sms_secret_key_file, not both");
    char *file;
    if ((rc = resolve_path(ctx, value, &file)) != 0)
      return rc;
    rc = read_psk_key_file(ctx, file_s, path, file, dev->sms_secret, &dev->sms_secret_len);
    if (rc == 0 && dev->sms_secret_len != 32 && dev->sms_secret_len != 48 &&
        dev->sms_secret_len != 64)
      rc = fail(ctx, file_s, path,
                "\"%s\" must hold 32, 48 or 64 bytes (the KIc key then the KID key), not %zu",
                file, dev->sms_secret_len);
    free(file);
    if (rc != 0) {
      explicit_bzero(dev->sms_secret, sizeof(dev->sms_secret));
      dev->sms_secret_len = 0;
      return rc;
    }
  }
  if (dev->sms_security != GW_SMS_SECURITY_SECURED_PACKET && (params_s || hex_s || file_s)) {
    const config_setting_t *which = params_s ? params_s : hex_s ? hex_s : file_s;
    path_member(path, epath,
                params_s ? "sms_key_params_hex" : hex_s ? "sms_secret_key_hex"
                                                        : "sms_secret_key_file");
    return fail(ctx, which, path, "only used with sms_security = \"secured_packet\"");
  }
  return 0;
}

/* Transport 5.3: how the SMS path of this device is protected, and its keys. */
static int load_device_sms_security(load_ctx_t *ctx, const config_setting_t *e,
                                    const char *epath, gw_device_conf_t *dev) {
  const config_setting_t *s, *identity_s;
  const char *value;
  char path[SETTING_PATH_MAX];
  int rc;
  if ((rc = get_string(ctx, e, epath, "sms_security", false,
                       "\"none\", \"dtls\" or \"secured_packet\"", &s, &value)) != 0)
    return rc;
  path_member(path, epath, "sms_security");
  if (!value || strcmp(value, "none") == 0)
    dev->sms_security = GW_SMS_SECURITY_NONE;
  else if (strcmp(value, "dtls") == 0)
    dev->sms_security = GW_SMS_SECURITY_DTLS;
  else if (strcmp(value, "secured_packet") == 0)
    dev->sms_security = GW_SMS_SECURITY_SECURED_PACKET;
  else
    return fail(ctx, s, path, "expected \"none\", \"dtls\" or \"secured_packet\", got \"%.32s\"",
                value);
  if ((rc = load_psk(ctx, e, epath, "sms_", &dev->sms_psk, &identity_s)) != 0)
    return rc;
  if (dev->sms_security == GW_SMS_SECURITY_DTLS && !identity_s)
    return fail(ctx, s, path, "\"dtls\" needs sms_psk_identity with sms_psk_key_hex or "
                              "sms_psk_key_file (the device's PSK for DTLS over SMS)");
  if ((rc = load_sms_secured_packet_keys(ctx, e, epath, dev)) != 0)
    return rc;
  if (dev->sms_security == GW_SMS_SECURITY_SECURED_PACKET &&
      (!dev->has_sms_key_params || dev->sms_secret_len == 0))
    return fail(ctx, s, path, "\"secured_packet\" needs sms_key_params_hex with "
                              "sms_secret_key_hex or sms_secret_key_file (5.3.2.1.3 keys)");
  if (dev->sms_security != GW_SMS_SECURITY_NONE && !dev->msisdn)
    return fail(ctx, s, path, "SMS security needs the device's msisdn");
  return 0;
}

/* Transport 8.2: PREFIX is part of an MQTT topic name: UTF-8 (checked by the broker), no
 * wildcards ('+', '#'), not starting with '$' (broker topics) and without a '/' at either end,
 * which would make an empty topic level. "" means topics without a prefix. */
static const char *mqtt_prefix_reason(const char *prefix) {
  size_t len = strlen(prefix);
  if (len > MQTT_PREFIX_MAX_LEN)
    return "longer than 64 bytes";
  if (strpbrk(prefix, "+#"))
    return "contains an MQTT wildcard ('+' or '#')";
  if (prefix[0] == '$')
    return "starts with '$' (reserved for broker topics)";
  if (len && (prefix[0] == '/' || prefix[len - 1] == '/'))
    return "starts or ends with '/'";
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)prefix[i] < 0x20 || prefix[i] == 0x7f)
      return "contains a control character";
  return NULL;
}

/* Like get_string, but "" is a valid value (an MQTT prefix may be empty). */
static int get_mqtt_prefix(load_ctx_t *ctx, const config_setting_t *group,
                           const char *group_path, const char *name, char **out) {
  const config_setting_t *s = member(group, name);
  if (!s)
    return 0;
  char path[SETTING_PATH_MAX];
  path_member(path, group_path, name);
  if (config_setting_type(s) != CONFIG_TYPE_STRING)
    return fail(ctx, s, path, "expected the MQTT topic prefix in double quotes (\"\" for none), got %s",
                type_name(s));
  const char *v = config_setting_get_string(s);
  const char *reason = mqtt_prefix_reason(v);
  if (reason)
    return fail(ctx, s, path, "expected an MQTT topic prefix such as \"tenant-a\", but it %s",
                reason);
  return dup_string(ctx, v, out);
}

static int load_secret(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                       const char *name, const char *what, char **out);

/* http_url (its trailing '/' dropped), and one credential: Basic or Bearer (Transport 7). */
static int load_device_http(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                            gw_device_conf_t *dev) {
  char path[SETTING_PATH_MAX];
  int rc;
  if ((rc = get_http_url(ctx, e, epath, "http_url", false, "the device's HTTP base URL",
                         &dev->http_url)) != 0 ||
      (rc = load_secret(ctx, e, epath, "http_password", "the device's HTTP Basic password",
                        &dev->http_password)) != 0 ||
      (rc = load_secret(ctx, e, epath, "http_token", "the device's HTTP Bearer token",
                        &dev->http_token)) != 0)
    return rc;
  if (dev->http_password && dev->http_token) {
    path_member(path, epath, "http_token");
    return fail(ctx, member(e, member(e, "http_token") ? "http_token" : "http_token_file"), path,
                "a device authenticates with either http_password (Basic) or http_token "
                "(Bearer), not both");
  }
  return 0;
}

/* The device's LoRaWAN address (Transport 6.8.4): dev_eui, kept in upper case. */
static int load_device_dev_eui(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                               gw_device_conf_t *dev) {
  const config_setting_t *s;
  const char *value;
  int rc = get_string(ctx, e, epath, "dev_eui", false, "the DevEUI as 16 hex digits", &s, &value);
  if (rc != 0 || !value)
    return rc;
  char eui[DEV_EUI_HEX_LEN + 1];
  if (!parse_dev_eui(value, eui)) {
    char path[SETTING_PATH_MAX];
    path_member(path, epath, "dev_eui");
    return fail(ctx, s, path, "expected the DevEUI as 16 hex digits, e.g. \"70B3D57ED0012345\", "
                              "got \"%.40s\"", value);
  }
  return dup_string(ctx, eui, &dev->dev_eui);
}

/* The rest of a LoRaWAN device: The Things Stack's device ID ("eui-" and the DevEUI in lower
 * case unless given, as TTS's console names devices), and the object list the gateway supplies
 * when the device registers without one (Transport table 6.8.4-1). */
static int load_device_lorawan(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                               gw_device_conf_t *dev) {
  const config_setting_t *id_s, *objects_s;
  const char *id, *objects;
  char path[SETTING_PATH_MAX];
  int rc;
  if ((rc = get_string(ctx, e, epath, "device_id", false, "The Things Stack's end device ID",
                       &id_s, &id)) != 0 ||
      (rc = get_string(ctx, e, epath, "objects", false,
                       "the device's objects in CoRE link format, e.g. \"</1/0>,</3/0>,</5>\"",
                       &objects_s, &objects)) != 0)
    return rc;
  if (!dev->dev_eui && (id_s || objects_s)) {
    path_member(path, epath, id_s ? "device_id" : "objects");
    return fail(ctx, id_s ? id_s : objects_s, path, "only used with dev_eui (a LoRaWAN device)");
  }
  if (!dev->dev_eui)
    return 0;
  if (id && !gw_is_tts_id(id, strlen(id), 3)) {
    path_member(path, epath, "device_id");
    return fail(ctx, id_s, path,
                "expected a The Things Stack end device ID: 3 to 36 lower-case letters, digits "
                "and single '-' between them, got \"%.40s\"", id);
  }
  char default_id[4 + DEV_EUI_HEX_LEN + 1];
  snprintf(default_id, sizeof(default_id), "eui-%s", dev->dev_eui);
  for (char *c = default_id; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  if ((rc = dup_string(ctx, id ? id : default_id, &dev->lns_device_id)) != 0 || !objects)
    return rc;
  const char *reason = objects_reason(objects);
  if (reason) {
    path_member(path, epath, "objects");
    return fail(ctx, objects_s, path,
                "expected the Objects and Object Instances in CoRE link format, e.g. "
                "\"</1/0>,</3/0>,</5>\", but %s", reason);
  }
  return dup_string(ctx, objects, &dev->objects);
}

static int load_device(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                       const gw_config_t *config, gw_device_conf_t *dev) {
  int rc;
  if ((rc = check_list_entry(ctx, e, epath, "{ endpoint = \"...\"; ... }", device_keys)) != 0)
    return rc;

  const config_setting_t *s;
  const char *value;
  char path[SETTING_PATH_MAX];
  /* Transport table 6.8.4-1: a LoRaWAN device's endpoint name defaults to its DevEUI. */
  if ((rc = load_device_dev_eui(ctx, e, epath, dev)) != 0 ||
      (rc = get_string(ctx, e, epath, "endpoint", !dev->dev_eui, "the LwM2M endpoint name", &s,
                       &value)))
    return rc;
  if (value && !valid_endpoint(value)) {
    path_member(path, epath, "endpoint");
    return fail(ctx, s, path,
                "expected 1 to 127 printable ASCII characters without '/', '?', '&' or spaces");
  }
  if ((rc = dup_string(ctx, value ? value : dev->dev_eui, &dev->endpoint)) != 0)
    return rc;

  if ((rc = get_string(ctx, e, epath, "upstream", false, "the name of an upstream", &s, &value)))
    return rc;
  if (value) {
    if (!gw_config_find_upstream(config, value)) {
      path_member(path, epath, "upstream");
      return fail(ctx, s, path, "no upstream is named \"%.64s\"", value);
    }
    if ((rc = dup_string(ctx, value, &dev->upstream)) != 0)
      return rc;
  }

  if ((rc = get_string(ctx, e, epath, "msisdn", false, "an E.164 number", &s, &value)))
    return rc;
  path_member(path, epath, "msisdn");
  if (value && (rc = dup_msisdn(ctx, s, path, value, &dev->msisdn)) != 0)
    return rc;

  if ((rc = get_string(ctx, e, epath, "ue_address", false, "the UE's IP address", &s, &value)))
    return rc;
  if (value) {
    ue_addr_t ue;
    const char *reason = parse_ue_address(value, &ue);
    if (reason) {
      path_member(path, epath, "ue_address");
      return fail(ctx, s, path,
                  "expected \"ipv4\", \"ipv4:port\", \"[ipv6]\" or \"[ipv6]:port\": %s", reason);
    }
    if ((rc = dup_string(ctx, value, &dev->ue_address)) != 0)
      return rc;
  }

  if ((rc = get_checked_string(ctx, e, epath, "external_id", false, "\"local-id@domain\"",
                                EXTERNAL_ID_FORM("External Identifier"), external_id_reason,
                                &dev->external_id)) != 0 ||
      (rc = get_mqtt_prefix(ctx, e, epath, "mqtt_prefix", &dev->mqtt_prefix)) != 0)
    return rc;

  /* Credentials toward the upstream server. */
  const config_setting_t *identity_s;
  gw_psk_t upstream_psk = {0};
  rc = load_psk(ctx, e, epath, "", &upstream_psk, &identity_s);
  dev->psk_identity = upstream_psk.identity; /* owned by dev even when rc says failure */
  memcpy(dev->psk_key, upstream_psk.key, upstream_psk.key_len);
  dev->psk_key_len = upstream_psk.key_len;
  explicit_bzero(&upstream_psk, sizeof(upstream_psk));
  if (rc != 0)
    return rc;

  const config_setting_t *cert_s = member(e, "cert_file");
  if ((rc = get_cert_and_key(ctx, e, epath, &dev->cert_file, &dev->key_file)) != 0)
    return rc;
  if (identity_s && cert_s) {
    path_member(path, epath, "cert_file");
    return fail(ctx, cert_s, path,
                "a device uses either a PSK or a certificate toward its upstream, not both");
  }

  const gw_upstream_conf_t *up = gw_config_device_upstream(config, dev);
  if (up && !up->secure && (identity_s || cert_s)) {
    path_member(path, epath, identity_s ? "psk_identity" : "cert_file");
    return fail(ctx, identity_s ? identity_s : cert_s, path,
                "DTLS credentials need a coaps:// upstream, but upstream \"%s\" is coap://",
                up->name);
  }
  if (up && up->secure && !identity_s && !cert_s && !up->cert_file)
    return fail(ctx, e, epath,
                "upstream \"%s\" is coaps:// but this device has no credentials: set "
                "psk_identity with psk_key_hex or psk_key_file, or cert_file and key_file "
                "(here or on the upstream)",
                up->name);

  if ((rc = get_bool(ctx, e, epath, "queue_mode", NULL, &dev->queue_mode)) != 0 ||
      (rc = load_device_http(ctx, e, epath, dev)) != 0 ||
      (rc = load_device_lorawan(ctx, e, epath, dev)) != 0)
    return rc;
  return load_device_sms_security(ctx, e, epath, dev);
}

/* ---- uniqueness of device keys (sorted, so large device lists stay fast) ---- */

typedef struct {
  const char *key;
  uint16_t port; /* ue_address only; 0 = any port, which clashes with every port */
  size_t index;
} keyed_t;

static int keyed_cmp(const void *pa, const void *pb) {
  const keyed_t *a = pa, *b = pb;
  int c = strcmp(a->key, b->key);
  if (c != 0)
    return c;
  if (a->port != b->port)
    return a->port < b->port ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* Sorts items and finds a clash; reports the pair in file order. */
static bool find_duplicate(keyed_t *items, size_t n, size_t *out_first, size_t *out_second) {
  if (n < 2)
    return false;
  qsort(items, n, sizeof(*items), keyed_cmp);
  bool found = false;
  for (size_t i = 1; i < n; i++) {
    const keyed_t *a = &items[i - 1], *b = &items[i];
    if (strcmp(a->key, b->key) != 0)
      continue;
    if (a->port != b->port && a->port != 0 && b->port != 0)
      continue;
    size_t first = a->index < b->index ? a->index : b->index;
    size_t second = a->index < b->index ? b->index : a->index;
    if (!found || second < *out_second) {
      found = true;
      *out_first = first;
      *out_second = second;
    }
  }
  return found;
}

/* dev_eui first: two entries with one DevEUI and no endpoint also share the endpoint. */
enum {
  KEY_DEV_EUI, KEY_LNS_DEVICE_ID, KEY_ENDPOINT, KEY_MSISDN, KEY_EXTERNAL_ID, KEY_UE_ADDRESS,
  KEY_COUNT
};

static int check_device_uniqueness(load_ctx_t *ctx, const config_setting_t *list,
                                   const gw_config_t *config) {
  static const char *const names[KEY_COUNT] = {"dev_eui",     "device_id",  "endpoint",
                                               "msisdn",      "external_id", "ue_address"};
  size_t n = config->device_count;
  keyed_t *items = calloc(n ? n : 1, sizeof(*items));
  char(*ue_keys)[40] = calloc(n ? n : 1, sizeof(*ue_keys));
  if (!items || !ue_keys) {
    free(items);
    free(ue_keys);
    return nomem(ctx);
  }
  int rc = 0;
  for (int k = 0; k < KEY_COUNT && rc == 0; k++) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
      const gw_device_conf_t *d = &config->devices[i];
      keyed_t *item = &items[count];
      item->index = i;
      item->port = 0;
      if (k == KEY_ENDPOINT) {
        item->key = d->endpoint;
      } else if (k == KEY_DEV_EUI && d->dev_eui) {
        item->key = d->dev_eui;
      } else if (k == KEY_LNS_DEVICE_ID && d->lns_device_id) {
        item->key = d->lns_device_id;
      } else if (k == KEY_MSISDN && d->msisdn) {
        item->key = d->msisdn[0] == '+' ? d->msisdn + 1 : d->msisdn;
      } else if (k == KEY_EXTERNAL_ID && d->external_id) {
        item->key = d->external_id;
      } else if (k == KEY_UE_ADDRESS && d->ue_address) {
        ue_addr_t ue;
        if (parse_ue_address(d->ue_address, &ue) != NULL)
          continue;
        int w = snprintf(ue_keys[i], sizeof(ue_keys[i]), "%d:", ue.family);
        for (size_t b = 0; b < 16; b++)
          w += snprintf(ue_keys[i] + w, sizeof(ue_keys[i]) - (size_t)w, "%02x", ue.addr[b]);
        item->key = ue_keys[i];
        item->port = ue.port;
      } else {
        continue;
      }
      count++;
    }
    size_t first = 0, second = 0;
    if (find_duplicate(items, count, &first, &second)) {
      const config_setting_t *dup = config_setting_get_elem(list, (unsigned)second);
      const config_setting_t *orig = config_setting_get_elem(list, (unsigned)first);
      char epath[SETTING_PATH_MAX], path[SETTING_PATH_MAX];
      path_index(epath, "devices", second);
      path_member(path, epath, names[k]);
      /* a value by default (endpoint, device_id) is reported at its entry */
      const config_setting_t *where = member(dup, names[k]) ? member(dup, names[k]) : dup;
      rc = fail(ctx, where, path,
                "%s is already used by devices.[%zu] (line %u); each device needs its own",
                k == KEY_UE_ADDRESS ? "this address" : "this value", first,
                config_setting_source_line(orig));
    }
  }
  free(items);
  free(ue_keys);
  return rc;
}

static int load_devices(load_ctx_t *ctx, const config_setting_t *root, gw_config_t *config) {
  const config_setting_t *list = member(root, "devices");
  if (!list)
    return 0;
  int rc = check_list(ctx, list, "devices", "a list ( { endpoint = ...; }, ... ) of devices");
  if (rc != 0)
    return rc;
  int n = config_setting_length(list);
  if (n <= 0)
    return 0;
  if ((uint32_t)n > config->gateway.max_devices)
    return fail(ctx, list, "devices", "lists %d devices, more than gateway.max_devices (%u)", n,
                config->gateway.max_devices);
  config->devices = calloc((size_t)n, sizeof(*config->devices));
  if (!config->devices)
    return nomem(ctx);
  for (int i = 0; i < n; i++) {
    char epath[SETTING_PATH_MAX];
    path_index(epath, "devices", (size_t)i);
    gw_device_conf_t *dev = &config->devices[i];
    rc = load_device(ctx, config_setting_get_elem(list, (unsigned)i), epath, config, dev);
    config->device_count++;
    if (rc != 0)
      return rc;
  }
  return check_device_uniqueness(ctx, list, config);
}

#ifdef GW_HAVE_SMS
#define GW_BUILT_SMS true
#else
#define GW_BUILT_SMS false
#endif
#ifdef GW_HAVE_MQTT
#define GW_BUILT_MQTT true
#else
#define GW_BUILT_MQTT false
#endif

/* An enabled binding this build left out (WITH_<NAME>=OFF) is a configuration error. */
static int refuse_unbuilt(load_ctx_t *ctx, const config_setting_t *g, const char *name,
                          bool built) {
  if (built)
    return 0;
  char path[SETTING_PATH_MAX], option[16];
  snprintf(path, sizeof(path), "bindings.%s.enabled", name);
  size_t n = 0;
  for (; name[n] && n + 1 < sizeof(option); n++)
    option[n] = (char)toupper((unsigned char)name[n]);
  option[n] = 0;
  return fail(ctx, member(g, "enabled"), path,
              "binding '%s' is not available in this build (built without WITH_%s)", name,
              option);
}

/* The first line of a small secret file (a PIN, a password, a token), without trailing
 * whitespace, into buf; a first line that does not fit is an error, not cut (check_secret_file
 * is left to the caller, which knows the setting). */
static int read_secret_line(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                            const char *file, char *buf, size_t size) {
  int rc = check_readable(ctx, s, path, file);
  if (rc != 0)
    return rc;
  FILE *f = fopen(file, "r");
  size_t n = f ? fread(buf, 1, size - 1, f) : 0;
  bool more = f && n == size - 1 && fgetc(f) != EOF;
  if (f)
    fclose(f);
  buf[n] = 0;
  if (more && strcspn(buf, "\r\n") == n) {
    explicit_bzero(buf, size);
    return fail(ctx, s, path, "the first line of \"%s\" is too long (at most %zu bytes)", file,
                size - 2);
  }
  n = strcspn(buf, "\r\n");
  while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    n--;
  buf[n] = 0;
  return 0;
}

/* 27.007 +CPIN: 4 to 8 digits; from pin or, to keep it out of the main file, pin_file. */
static int load_sms_pin(load_ctx_t *ctx, const config_setting_t *g, gw_sms_conf_t *sms) {
  const config_setting_t *s, *file_s;
  const char *pin, *file;
  int rc;
  if ((rc = get_string(ctx, g, "bindings.sms", "pin", false, "the SIM PIN", &s, &pin)) != 0 ||
      (rc = get_string(ctx, g, "bindings.sms", "pin_file", false, "a file holding the SIM PIN",
                       &file_s, &file)) != 0)
    return rc;
  if (pin && file)
    return fail(ctx, file_s, "bindings.sms.pin_file", "give either pin or pin_file, not both");
  char buf[32] = "";
  if (file) {
    if ((rc = read_secret_line(ctx, file_s, "bindings.sms.pin_file", file, buf, sizeof(buf))))
      return rc;
    pin = buf;
    s = file_s;
  }
  if (!pin)
    return 0;
  if ((rc = check_secret_file(ctx, s, file ? "bindings.sms.pin_file" : "bindings.sms.pin",
                              file)) != 0)
    return rc;
  size_t len = strlen(pin);
  rc = len >= 4 && len <= 8 && strspn(pin, "0123456789") == len
           ? dup_string(ctx, pin, &sms->pin)
           : fail(ctx, s, file ? "bindings.sms.pin_file" : "bindings.sms.pin",
                  "expected the SIM PIN: 4 to 8 digits");
  explicit_bzero(buf, sizeof(buf));
  return rc;
}

static int load_sms(load_ctx_t *ctx, const config_setting_t *g, gw_sms_conf_t *sms) {
  static const char *const P = "bindings.sms";
  const config_setting_t *s;
  const char *value;
  int rc;
  if ((rc = check_known(ctx, g, P, sms_keys)) != 0 ||
      (rc = get_bool(ctx, g, P, "enabled", NULL, &sms->enabled)) != 0 ||
      (rc = get_bool(ctx, g, P, "concatenated", NULL, &sms->concatenated)) != 0 ||
      (rc = get_bool(ctx, g, P, "wake_queued", NULL, &sms->wake_queued)) != 0 ||
      (rc = get_bool(ctx, g, P, "dtls_cookies", NULL, &sms->dtls_cookies)) != 0 ||
      (rc = get_uint(ctx, g, P, "dtls_handshake_min_ms", 100, 3600000, "", NULL,
                     &sms->dtls_handshake_min_ms)) != 0 ||
      (rc = get_uint(ctx, g, P, "dtls_handshake_max_ms", 1000, 86400000, "", NULL,
                     &sms->dtls_handshake_max_ms)) != 0 ||
      (rc = get_uint(ctx, g, P, "dtls_mtu", 140, 34170, "", NULL, &sms->dtls_mtu)) != 0 ||
      (rc = get_uint(ctx, g, P, "baud", 1200, 4000000, "", NULL, &sms->baud)) != 0 ||
      (rc = get_uint(ctx, g, P, "reassembly_timeout_ms", 1000, 86400000, "", NULL,
                     &sms->reassembly_timeout_ms)) != 0 ||
      (rc = get_uint(ctx, g, P, "send_interval_ms", 0, 60000, "", NULL,
                     &sms->send_interval_ms)) != 0 ||
      (rc = get_uint(ctx, g, P, "sweep_interval_ms", 1000, 3600000, "", NULL,
                     &sms->sweep_interval_ms)) != 0)
    return rc;
  if (sms->enabled && (rc = refuse_unbuilt(ctx, g, "sms", GW_BUILT_SMS)) != 0)
    return rc;
  if ((rc = get_string(ctx, g, P, "modem", sms->enabled,
                       "the modem's serial port, e.g. \"/dev/serial/by-id/usb-...-if02-port0\"",
                       &s, &value)) != 0 ||
      (rc = dup_string(ctx, value, &sms->modem)) != 0)
    return rc;
  if ((rc = get_string(ctx, g, P, "msisdn", false, "the modem's own number", &s, &value)) != 0 ||
      (value && (rc = dup_msisdn(ctx, s, "bindings.sms.msisdn", value, &sms->msisdn)) != 0))
    return rc;
  if ((rc = get_string(ctx, g, P, "smsc", false, "the SMS centre number", &s, &value)) != 0 ||
      (value && (rc = dup_msisdn(ctx, s, "bindings.sms.smsc", value, &sms->smsc)) != 0))
    return rc;
  if ((rc = get_string(ctx, g, P, "storage", false, "\"SM\", \"ME\" or \"MT\"", &s,
                       &value)) != 0)
    return rc;
  if (value && !in_list(storage_names, value))
    return fail(ctx, s, "bindings.sms.storage",
                "expected \"SM\" (SIM), \"ME\" (modem) or \"MT\" (both), got \"%.16s\"", value);
  if ((rc = dup_string(ctx, value ? value : "ME", &sms->storage)) != 0)
    return rc;
  if ((rc = load_sms_pin(ctx, g, sms)) != 0)
    return rc;
  return load_string_array(ctx, g, P, "allow", "an array of numbers in quotes, [ \"14155550125\" ]",
                           "a number", dup_msisdn, &sms->allow, &sms->allow_count);
}

/* An upstream named by a binding setting must exist; *out gets a copy of its name. */
static int get_upstream_ref(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                            const char *name, const gw_config_t *config, char **out) {
  const config_setting_t *s;
  const char *value;
  int rc = get_string(ctx, g, gpath, name, false, "the name of an upstream", &s, &value);
  if (rc != 0 || !value)
    return rc;
  if (!gw_config_find_upstream(config, value)) {
    char path[SETTING_PATH_MAX];
    path_member(path, gpath, name);
    return fail(ctx, s, path, "no upstream is named \"%.64s\"", value);
  }
  return dup_string(ctx, value, out);
}

/* Whose an entry is: upstream = "name" (an LwM2M server's) or bootstrap = "name" (a bootstrap
 * server's), each naming an upstream, not both; required: one of them. what names the entry in
 * messages ("a port"). */
static int get_server_refs(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                           const gw_config_t *config, const char *what, bool required,
                           char **out_upstream, char **out_bootstrap) {
  char path[SETTING_PATH_MAX];
  int rc;
  if ((rc = get_upstream_ref(ctx, e, epath, "upstream", config, out_upstream)) != 0 ||
      (rc = get_upstream_ref(ctx, e, epath, "bootstrap", config, out_bootstrap)) != 0)
    return rc;
  if (*out_upstream && *out_bootstrap) {
    path_member(path, epath, "bootstrap");
    return fail(ctx, member(e, "bootstrap"), path,
                "%s is either a server's (upstream) or a bootstrap server's (bootstrap), not both",
                what);
  }
  if (required && !*out_upstream && !*out_bootstrap) {
    path_member(path, epath, "upstream");
    return fail(ctx, e, path,
                "missing: %s needs upstream = \"name\" (its LwM2M server) or bootstrap = "
                "\"name\" (its bootstrap server)",
                what);
  }
  return 0;
}

/* One prefix: { prefix = "tenant-a"; upstream = "leshan"; bootstrap = "bs"; }. */
static int load_mqtt_tenant(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                            const gw_config_t *config, gw_mqtt_tenant_conf_t *t) {
  int rc;
  if ((rc = get_mqtt_prefix(ctx, g, gpath, "prefix", &t->prefix)) != 0 ||
      (rc = get_upstream_ref(ctx, g, gpath, "upstream", config, &t->upstream)) != 0 ||
      (rc = get_upstream_ref(ctx, g, gpath, "bootstrap", config, &t->bootstrap)) != 0)
    return rc;
  return t->prefix ? 0 : dup_string(ctx, "", &t->prefix);
}

static int check_mqtt_prefixes_unique(load_ctx_t *ctx, const config_setting_t *list,
                                      const gw_mqtt_conf_t *mqtt) {
  for (size_t i = 0; i < mqtt->tenant_count; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(mqtt->tenants[i].prefix, mqtt->tenants[j].prefix) == 0) {
        char path[SETTING_PATH_MAX];
        path_index(path, "bindings.mqtt.prefixes", i);
        return fail(ctx, config_setting_get_elem(list, (unsigned)i), path,
                    "prefix \"%s\" is already given by bindings.mqtt.prefixes.[%zu]",
                    mqtt->tenants[i].prefix, j);
      }
  return 0;
}

/* Either one prefix (prefix, upstream, bootstrap in bindings.mqtt) or a list of them. */
static int load_mqtt_tenants(load_ctx_t *ctx, const config_setting_t *g,
                             const gw_config_t *config, gw_mqtt_conf_t *mqtt) {
  static const char *const P = "bindings.mqtt";
  const config_setting_t *list = member(g, "prefixes");
  size_t n = 1;
  if (list) {
    const config_setting_t *single = member(g, "prefix") ? member(g, "prefix")
                                     : member(g, "upstream") ? member(g, "upstream")
                                                             : member(g, "bootstrap");
    if (single)
      return fail(ctx, single, P,
                  "give either prefix (with upstream, bootstrap) or a prefixes list, not both");
    int rc = check_list(ctx, list, "bindings.mqtt.prefixes",
                        "a list ( { prefix = \"tenant-a\"; upstream = \"...\"; }, ... )");
    if (rc != 0)
      return rc;
    if (config_setting_length(list) <= 0)
      return fail(ctx, list, "bindings.mqtt.prefixes", "expected at least one prefix");
    n = (size_t)config_setting_length(list);
  }
  mqtt->tenants = calloc(n, sizeof(*mqtt->tenants));
  if (!mqtt->tenants)
    return nomem(ctx);
  for (size_t i = 0; i < n; i++) {
    char epath[SETTING_PATH_MAX];
    const config_setting_t *e = list ? config_setting_get_elem(list, (unsigned)i) : g;
    snprintf(epath, sizeof(epath), "%s", P);
    int rc = 0;
    if (list) {
      path_index(epath, "bindings.mqtt.prefixes", i);
      rc = check_list_entry(ctx, e, epath, "{ prefix = \"...\"; upstream = \"...\"; }",
                            mqtt_prefix_keys);
    }
    if (rc == 0)
      rc = load_mqtt_tenant(ctx, e, epath, config, &mqtt->tenants[i]);
    mqtt->tenant_count++;
    if (rc != 0)
      return rc;
  }
  return list ? check_mqtt_prefixes_unique(ctx, list, mqtt) : 0;
}

/* A secret that never stands in the configuration itself: `name` is known only to be refused,
 * pointing at `name`_file. what: "an API key". */
static int refuse_inline_secret(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                                const char *name, const char *what) {
  const config_setting_t *s = member(g, name);
  if (!s)
    return 0;
  char path[SETTING_PATH_MAX];
  path_member(path, gpath, name);
  return fail(ctx, s, path,
              "%s is not written into the configuration: put it in a private file (mode 0600) "
              "and set %s_file",
              what, name);
}

/* A secret given inline as `name` (the configuration file must then be private) or as the
 * first line of `name`_file; *out stays NULL when neither is set. */
static int load_secret(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                       const char *name, const char *what, char **out) {
  char file_name[64], path[SETTING_PATH_MAX], file_path[SETTING_PATH_MAX], what_file[96];
  snprintf(file_name, sizeof(file_name), "%s_file", name);
  snprintf(what_file, sizeof(what_file), "a file holding %s", what);
  path_member(path, gpath, name);
  path_member(file_path, gpath, file_name);
  const config_setting_t *s, *file_s;
  const char *value, *file;
  int rc;
  if ((rc = get_string(ctx, g, gpath, name, false, what, &s, &value)) != 0 ||
      (rc = get_string(ctx, g, gpath, file_name, false, what_file, &file_s, &file)) != 0)
    return rc;
  if (value && file)
    return fail(ctx, file_s, file_path, "give either %s or %s, not both", name, file_name);
  if (!value && !file)
    return 0;
  char buf[SECRET_LINE_MAX] = "";
  char *resolved = NULL;
  if (file) {
    if ((rc = resolve_path(ctx, file, &resolved)) != 0)
      return rc;
    rc = read_secret_line(ctx, file_s, file_path, resolved, buf, sizeof(buf));
    value = buf;
  }
  if (rc == 0 && value[0] == 0)
    rc = fail(ctx, file ? file_s : s, file ? file_path : path, "%s is empty", what);
  if (rc == 0)
    rc = check_secret_file(ctx, file ? file_s : s, file ? file_path : path, resolved);
  if (rc == 0)
    rc = dup_string(ctx, value, out);
  explicit_bzero(buf, sizeof(buf));
  free(resolved);
  return rc;
}

/* The MQTT connection bindings.mqtt and bindings.lorawan share: where, as whom, with which TLS
 * files, how often to ping. load_broker leaves the password to the caller: a network server may
 * name it otherwise. */
typedef struct {
  char **broker, **client_id, **username, **password, **ca_file, **cert_file, **key_file;
  uint32_t *keepalive_s;
} broker_conf_t;

/* The broker fields of a gw_mqtt_conf_t or a gw_lorawan_conf_t, which name them alike. */
#define BROKER_CONF_OF(conf)                                                                     \
  {&(conf)->broker,  &(conf)->client_id, &(conf)->username, &(conf)->password,                  \
   &(conf)->ca_file, &(conf)->cert_file, &(conf)->key_file, &(conf)->keepalive_s}

static int load_broker(load_ctx_t *ctx, const config_setting_t *g, const char *gpath,
                       bool required, const broker_conf_t *out) {
  static const char *const schemes[] = {"tcp://", "mqtt://", "ssl://", "mqtts://",
                                        "ws://",  "wss://",  NULL};
  const config_setting_t *s;
  const char *value;
  int rc;
  if ((rc = get_uint(ctx, g, gpath, "keepalive", 5, 3600, " seconds", NULL, out->keepalive_s)) ||
      (rc = get_string(ctx, g, gpath, "broker", required,
                       "the broker URI, e.g. \"tcp://127.0.0.1:1883\" or \"ssl://host:8883\"",
                       &s, &value)) != 0)
    return rc;
  bool known_scheme = !value;
  for (const char *const *k = schemes; *k && !known_scheme; k++)
    known_scheme = strncmp(value, *k, strlen(*k)) == 0;
  if (!known_scheme) {
    char path[SETTING_PATH_MAX];
    path_member(path, gpath, "broker");
    return fail(ctx, s, path,
                "expected a tcp://, mqtt://, ssl://, mqtts://, ws:// or wss:// URI, got \"%.64s\"",
                value);
  }
  if ((rc = dup_string(ctx, value, out->broker)) != 0 ||
      (rc = get_string(ctx, g, gpath, "client_id", false, "an MQTT client identifier", &s,
                       &value)) != 0 ||
      (rc = dup_string(ctx, value, out->client_id)) != 0 ||
      (rc = get_string(ctx, g, gpath, "username", false, "the broker user name", &s, &value)) ||
      (rc = dup_string(ctx, value, out->username)) != 0 ||
      (rc = get_file(ctx, g, gpath, "ca_file", &s, out->ca_file)) != 0)
    return rc;
  return get_cert_and_key(ctx, g, gpath, out->cert_file, out->key_file);
}

static int load_mqtt(load_ctx_t *ctx, const config_setting_t *g, const gw_config_t *config,
                     gw_mqtt_conf_t *mqtt) {
  static const char *const P = "bindings.mqtt";
  int rc;
  if ((rc = check_known(ctx, g, P, mqtt_keys)) != 0 ||
      (rc = get_bool(ctx, g, P, "enabled", NULL, &mqtt->enabled)) != 0 ||
      (rc = get_bool(ctx, g, P, "accept_unknown", NULL, &mqtt->accept_unknown)) != 0 ||
      (rc = get_uint(ctx, g, P, "qos", 0, 2, " (MQTT QoS)", NULL, &mqtt->qos)) != 0 ||
      (rc = get_uint(ctx, g, P, "mqtt_version", 4, 5, " (4 = MQTT 3.1.1, 5 = MQTT 5)", NULL,
                     &mqtt->mqtt_version)) != 0 ||
      /* MQTT 5 3.1.2.11.2 takes up to 0xFFFFFFFF, but libconfig reads 4294967295 as the int -1;
       * 68 years is "never" for a router. */
      (rc = get_uint(ctx, g, P, "session_expiry_s", 0, INT32_MAX,
                     " seconds (0: clean session, the broker keeps nothing)", NULL,
                     &mqtt->session_expiry_s)))
    return rc;
  if (mqtt->enabled && (rc = refuse_unbuilt(ctx, g, "mqtt", GW_BUILT_MQTT)) != 0)
    return rc;
  const broker_conf_t broker = BROKER_CONF_OF(mqtt);
  if ((rc = load_broker(ctx, g, P, mqtt->enabled, &broker)) != 0 ||
      (rc = load_secret(ctx, g, P, "password", "the broker password", &mqtt->password)) != 0)
    return rc;
  return load_mqtt_tenants(ctx, g, config, mqtt);
}

#ifdef GW_HAVE_HTTP
#define GW_BUILT_HTTP true
#else
#define GW_BUILT_HTTP false
#endif

/* The listener's TLS files and the client's, each key private. */
static int load_http_files(load_ctx_t *ctx, const config_setting_t *g, gw_http_conf_t *http) {
  static const char *const P = "bindings.http";
  const config_setting_t *s;
  int rc;
  if ((rc = get_cert_and_key(ctx, g, P, &http->cert_file, &http->key_file)) != 0 ||
      (rc = get_file(ctx, g, P, "client_ca_file", &s, &http->client_ca_file)) != 0)
    return rc;
  if (http->client_ca_file && !http->cert_file)
    return fail(ctx, s, "bindings.http.client_ca_file",
                "client certificates need TLS: set cert_file and key_file too");
  const config_setting_t *dcert = member(g, "device_cert_file"), *dkey = member(g, "device_key_file");
  if (dcert && !dkey)
    return fail(ctx, dcert, "bindings.http.device_cert_file", "needs device_key_file too");
  if (dkey && !dcert)
    return fail(ctx, dkey, "bindings.http.device_key_file", "needs device_cert_file too");
  if ((rc = get_file(ctx, g, P, "device_ca_file", &s, &http->device_ca_file)) != 0 ||
      (rc = get_file(ctx, g, P, "device_cert_file", &s, &http->device_cert_file)) != 0 ||
      (rc = get_file(ctx, g, P, "device_key_file", &s, &http->device_key_file)) != 0 ||
      (http->device_key_file &&
       (rc = check_secret_file(ctx, s, "bindings.http.device_key_file",
                               http->device_key_file)) != 0))
    return rc;
  return 0;
}

/* What one client, or all together, may hold of the listener (slowloris, floods). */
static int load_http_limits(load_ctx_t *ctx, const config_setting_t *g, gw_http_conf_t *http) {
  static const char *const P = "bindings.http";
  const config_setting_t *per_client;
  int rc;
  if ((rc = get_uint(ctx, g, P, "max_connections", 1, 65535, " connections", NULL,
                     &http->max_connections)) != 0 ||
      (rc = get_uint(ctx, g, P, "max_connections_per_client", 1, 65535, " connections",
                     &per_client, &http->max_connections_per_client)) != 0 ||
      (rc = get_uint(ctx, g, P, "idle_timeout_s", 1, 86400, " seconds", NULL,
                     &http->idle_timeout_s)) != 0 ||
      (rc = get_uint(ctx, g, P, "header_timeout_s", 1, 3600, " seconds", NULL,
                     &http->header_timeout_s)) != 0 ||
      (rc = get_uint(ctx, g, P, "body_timeout_s", 1, 3600, " seconds", NULL,
                     &http->body_timeout_s)) != 0)
    return rc;
  if (http->max_connections_per_client <= http->max_connections)
    return 0;
  if (!per_client) { /* the default, under a smaller max_connections */
    http->max_connections_per_client = http->max_connections;
    return 0;
  }
  return fail(ctx, per_client, "bindings.http.max_connections_per_client",
              "%u is more than max_connections (%u)", http->max_connections_per_client,
              http->max_connections);
}

static int load_http(load_ctx_t *ctx, const config_setting_t *g, const gw_config_t *config,
                     gw_http_conf_t *http) {
  static const char *const P = "bindings.http";
  int rc;
  if ((rc = check_known(ctx, g, P, http_keys)) != 0 ||
      (rc = get_bool(ctx, g, P, "enabled", NULL, &http->enabled)) != 0 ||
      (rc = get_bool(ctx, g, P, "accept_unknown", NULL, &http->accept_unknown)) != 0 ||
      (rc = get_uint(ctx, g, P, "max_body", 1024, 16u << 20, " bytes", NULL, &http->max_body)) ||
      (rc = load_http_limits(ctx, g, http)) != 0)
    return rc;
  if (http->enabled && (rc = refuse_unbuilt(ctx, g, "http", GW_BUILT_HTTP)) != 0)
    return rc;
  if ((rc = get_listen(ctx, g, P, "listen", http->enabled,
                       "\"host:port\" to serve devices on, e.g. \"0.0.0.0:8080\"",
                       &http->listen)) != 0 ||
      (rc = get_upstream_ref(ctx, g, P, "upstream", config, &http->upstream)) != 0 ||
      (rc = get_upstream_ref(ctx, g, P, "bootstrap", config, &http->bootstrap)) != 0)
    return rc;
  return load_http_files(ctx, g, http);
}

#ifdef GW_HAVE_LORAWAN
#define GW_BUILT_LORAWAN true
#else
#define GW_BUILT_LORAWAN false
#endif

/* network_server, and the QoS it allows: The Things Stack's MQTT server "supports the MQTT
 * Standard Version 3.1.1 and QoS 0 only" (its MQTT integration docs). */
static int load_lorawan_network_server(load_ctx_t *ctx, const config_setting_t *g,
                                       gw_lorawan_conf_t *lw) {
  static const char *const P = "bindings.lorawan";
  const config_setting_t *s, *qos_s;
  const char *value;
  int rc = get_string(ctx, g, P, "network_server", false,
                      "\"chirpstack\" or \"tts\" (The Things Stack)", &s, &value);
  if (rc != 0)
    return rc;
  if (value && strcmp(value, "tts") == 0)
    lw->network_server = GW_LNS_TTS;
  else if (value && strcmp(value, "chirpstack") != 0)
    return fail(ctx, s, "bindings.lorawan.network_server",
                "expected \"chirpstack\" or \"tts\" (The Things Stack), got \"%.32s\"", value);
  bool tts = lw->network_server == GW_LNS_TTS;
  lw->qos = tts ? 0 : 1;
  if ((rc = get_uint(ctx, g, P, "qos", 0, tts ? 2 : 1, " (MQTT QoS)", &qos_s, &lw->qos)) != 0)
    return rc;
  if (tts && lw->qos != 0)
    return fail(ctx, qos_s, "bindings.lorawan.qos",
                "The Things Stack supports QoS 0 only (network_server = \"tts\"): set qos = 0 "
                "or leave it out");
  return 0;
}

/* max_payload = [ ... ]: the largest application payload N per data rate, DR0 first; it replaces
 * the EU868 table for another region or a repeater-compatible network. */
static int load_lorawan_max_payload(load_ctx_t *ctx, const config_setting_t *g,
                                    gw_lorawan_conf_t *lw) {
  static const char *const P = "bindings.lorawan.max_payload";
  const config_setting_t *list = member(g, "max_payload");
  if (!list)
    return 0;
  int rc = check_list(ctx, list, P, "an array of bytes per data rate, DR0 first, e.g. "
                                    "[ 51, 51, 51, 115, 242, 242, 242, 242 ]");
  if (rc != 0)
    return rc;
  int n = config_setting_length(list);
  if (n < 1 || n > GW_LORAWAN_MAX_PAYLOAD_DRS)
    return fail(ctx, list, P, "expected 1 to %d entries (DR0 to DR15), got %d",
                GW_LORAWAN_MAX_PAYLOAD_DRS, n);
  for (int i = 0; i < n; i++) {
    const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    int type = config_setting_type(e);
    bool integer = type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
    long long v = integer ? config_setting_get_int64(e) : 0;
    char path[SETTING_PATH_MAX];
    path_index(path, P, (size_t)i);
    if (!integer)
      return fail(ctx, e, path, "expected the largest application payload at DR%d, an integer "
                                "from 11 to 255 bytes, got %s", i, type_name(e));
    if (v < 11 || v > 255)
      return fail(ctx, e, path, "expected the largest application payload at DR%d, an integer "
                                "from 11 to 255 bytes, got %lld", i, v);
    lw->max_payload[i] = (uint32_t)v;
  }
  lw->max_payload_count = (size_t)n;
  return 0;
}

/* The broker password; for The Things Stack the application's API key, which never stands in
 * the configuration file itself: api_key_file (or password_file), a private file. */
static int load_lorawan_password(load_ctx_t *ctx, const config_setting_t *g,
                                 gw_lorawan_conf_t *lw) {
  static const char *const P = "bindings.lorawan";
  bool tts = lw->network_server == GW_LNS_TTS;
  const config_setting_t *inline_s = member(g, "password"), *key_file = member(g, "api_key_file");
  int rc = refuse_inline_secret(ctx, g, P, "api_key", "an API key");
  if (rc != 0)
    return rc;
  if (tts && inline_s)
    return fail(ctx, inline_s, "bindings.lorawan.password",
                "The Things Stack's API key must come from api_key_file (a private file), not "
                "from the configuration");
  if (!tts && key_file)
    return fail(ctx, key_file, "bindings.lorawan.api_key_file",
                "only used with network_server = \"tts\" (The Things Stack's API key); give "
                "ChirpStack's broker password with password or password_file");
  if (key_file && member(g, "password_file"))
    return fail(ctx, key_file, "bindings.lorawan.api_key_file",
                "give either password_file or api_key_file, not both");
  rc = key_file ? load_secret(ctx, g, P, "api_key", "the application's API key", &lw->password)
                : load_secret(ctx, g, P, "password", "the broker password", &lw->password);
  if (rc == 0 && tts && lw->enabled && !lw->password)
    return fail(ctx, g, "bindings.lorawan.api_key_file",
                "missing (expected a file holding the application's API key: The Things "
                "Stack's MQTT server needs it)");
  return rc;
}

/* ChirpStack: the application's UUID, in lower case as in its topics. The Things Stack:
 * "application-id@tenant-id" or, on TTS Open Source, "application-id"; it is the MQTT user name
 * there too unless username is given. */
static int load_lorawan_application(load_ctx_t *ctx, const config_setting_t *g,
                                    gw_lorawan_conf_t *lw) {
  const config_setting_t *s;
  const char *value;
  bool tts = lw->network_server == GW_LNS_TTS;
  int rc = get_string(ctx, g, "bindings.lorawan", "application_id", lw->enabled,
                      tts ? "The Things Stack's \"application-id@tenant-id\""
                          : "the ChirpStack application's id (a UUID)",
                      &s, &value);
  if (rc != 0 || !value)
    return rc;
  if (tts) {
    const char *at = strchr(value, '@');
    size_t app_len = at ? (size_t)(at - value) : strlen(value);
    if (!gw_is_tts_id(value, app_len, 3) || (at && !gw_is_tts_id(at + 1, strlen(at + 1), 3)))
      return fail(ctx, s, "bindings.lorawan.application_id",
                  "expected The Things Stack's \"application-id@tenant-id\" or "
                  "\"application-id\": each 3 to 36 lower-case letters, digits and single '-' "
                  "between them, got \"%.80s\"", value);
  } else if (!gw_is_uuid(value)) {
    return fail(ctx, s, "bindings.lorawan.application_id",
                "expected the ChirpStack application's id, a UUID such as "
                "\"8ad2f5a3-4c1e-4d7b-9f0a-2b6c3d4e5f60\", got \"%.80s\"", value);
  }
  if ((rc = dup_string(ctx, value, &lw->application_id)) != 0)
    return rc;
  for (char *c = lw->application_id; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  return tts && !lw->username ? dup_string(ctx, value, &lw->username) : 0;
}

/* One entry of ports: { fport = 1; upstream = "default"; } or { fport = 2; bootstrap = "bs"; }. */
static int load_lorawan_port(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                             const gw_config_t *config, void *entries, size_t index) {
  gw_lorawan_port_conf_t *ports = entries, *port = &ports[index];
  char path[SETTING_PATH_MAX];
  uint32_t fport = 0;
  int rc;
  path_member(path, epath, "fport");
  if (!member(e, "fport"))
    return fail(ctx, e, path, "missing (expected the FPort of lorawan://{fport}, 1 to 255)");
  if ((rc = get_uint(ctx, e, epath, "fport", 1, 255,
                     " (Transport 6.8.4: the FPort of lorawan://{fport}; 0 is for MAC commands)",
                     NULL, &fport)) != 0 ||
      (rc = get_server_refs(ctx, e, epath, config, "a port", false, &port->upstream,
                            &port->bootstrap)) != 0)
    return rc;
  port->fport = (uint8_t)fport;
  for (size_t j = 0; j < index; j++)
    if (ports[j].fport == port->fport)
      return fail(ctx, member(e, "fport"), path,
                  "FPort %u is already given by bindings.lorawan.ports.[%zu]", port->fport, j);
  return 0;
}

/* ports: each FPort a device may use as lorawan://{fport}, and whose server it is. */
static int load_lorawan_ports(load_ctx_t *ctx, const config_setting_t *g,
                              const gw_config_t *config, gw_lorawan_conf_t *lw) {
  static const group_list_t ports = {
      "ports", "bindings.lorawan.ports", "{ fport = 1; upstream = \"...\"; }", "port",
      lorawan_port_keys, sizeof(gw_lorawan_port_conf_t), load_lorawan_port};
  void *entries = NULL;
  int rc = load_group_list(ctx, g, &ports, config,
                           lw->enabled ? "missing (expected a list of FPorts, e.g. ports = ( { "
                                         "fport = 1; upstream = \"default\"; } );)"
                                       : NULL,
                           &entries, &lw->port_count);
  lw->ports = entries;
  return rc;
}

/* bindings.lorawan (Transport 6.8.4, Appendix C): the network server's MQTT integration. */
static int load_lorawan(load_ctx_t *ctx, const config_setting_t *g, const gw_config_t *config,
                        gw_lorawan_conf_t *lw) {
  static const char *const P = "bindings.lorawan";
  int rc;
  if ((rc = check_known(ctx, g, P, lorawan_keys)) != 0 ||
      (rc = get_bool(ctx, g, P, "enabled", NULL, &lw->enabled)) != 0 ||
      (rc = get_bool(ctx, g, P, "accept_unknown", NULL, &lw->accept_unknown)) != 0 ||
      (rc = get_bool(ctx, g, P, "confirmed_downlinks", NULL, &lw->confirmed_downlinks)) != 0 ||
      (rc = get_uint(ctx, g, P, "ack_timeout_s", 1, 86400,
                     " seconds (Appendix C.2 ACK_TIMEOUT)", NULL, &lw->ack_timeout_s)) != 0 ||
      (rc = get_uint(ctx, g, P, "max_retransmit", 0, 20, " (Appendix C.2 MAX_RETRANSMIT)", NULL,
                     &lw->max_retransmit)) != 0 ||
      (rc = get_uint(ctx, g, P, "downlink_hold_s", 1, 2592000, " seconds", NULL,
                     &lw->downlink_hold_s)) != 0 ||
      (rc = load_lorawan_network_server(ctx, g, lw)) != 0 ||
      (rc = load_lorawan_max_payload(ctx, g, lw)) != 0)
    return rc;
  const broker_conf_t broker = BROKER_CONF_OF(lw);
  if ((rc = load_broker(ctx, g, P, lw->enabled, &broker)) != 0 ||
      (rc = load_lorawan_password(ctx, g, lw)) != 0 ||
      (rc = load_lorawan_application(ctx, g, lw)) != 0 ||
      (rc = load_lorawan_ports(ctx, g, config, lw)) != 0)
    return rc;
  /* Last, unlike the other bindings: a build without it still checks the whole group, so a
   * configuration can be checked before the router image that runs it is built. */
  return lw->enabled ? refuse_unbuilt(ctx, g, "lorawan", GW_BUILT_LORAWAN) : 0;
}

/* ---- bindings.nidd: the SGi tunnel (Transport Appendix D.2) and NIDD via SCEF (D.3) ---- */

/* A numeric IPv4 or IPv6 address as written, without brackets or port. */
static int dup_ip_address(load_ctx_t *ctx, const config_setting_t *s, const char *path,
                          const char *value, char **out) {
  struct in6_addr addr;
  if (inet_pton(AF_INET, value, &addr) != 1 && inet_pton(AF_INET6, value, &addr) != 1)
    return fail(ctx, s, path,
                "expected a numeric IPv4 or IPv6 address without brackets or port, e.g. "
                "\"10.0.0.1\" or \"2001:db8::1\", got \"%.64s\"",
                value);
  return dup_string(ctx, value, out);
}

/* Where the SCEF's notifications come in: the listener, the notificationDestination the SCEF is
 * given (by default the listener's own address, which a wildcard cannot be), who may send. */
static int load_scef_notifications(load_ctx_t *ctx, const config_setting_t *g,
                                   gw_scef_conf_t *scef) {
  static const char *const P = "bindings.nidd.scef";
  int rc;
  if ((rc = get_listen(ctx, g, P, "notification_listen", scef->enabled,
                       "\"host:port\" for the SCEF's notifications, e.g. \"192.0.2.10:8081\"",
                       &scef->notification_listen)) != 0 ||
      (rc = get_http_url(ctx, g, P, "notification_url", false,
                         "the URL the SCEF sends notifications to", &scef->notification_url)) ||
      (rc = load_string_array(ctx, g, P, "notification_allow",
                              "an array of addresses in quotes, [ \"10.0.0.1\" ]", "an address",
                              dup_ip_address, &scef->notification_allow,
                              &scef->notification_allow_count)) != 0)
    return rc;
  if (scef->notification_url || !scef->notification_listen)
    return 0;
  char host[HOST_NAME_MAX_LEN + 1];
  bool bracketed;
  const char *port;
  split_host_port(scef->notification_listen, host, sizeof(host), &bracketed, &port);
  if (is_wildcard_host(host))
    return fail(ctx, g, "bindings.nidd.scef.notification_url",
                "missing: notification_listen \"%s\" listens on every address of this host, "
                "which is no address to give the SCEF; give the URL it reaches the gateway at, "
                "e.g. \"http://192.0.2.10:%s/t8/notifications\"",
                scef->notification_listen, port);
  size_t n = strlen(scef->notification_listen) + sizeof("http:///t8/notifications");
  if (!(scef->notification_url = malloc(n)))
    return nomem(ctx);
  snprintf(scef->notification_url, n, "http://%s/t8/notifications", scef->notification_listen);
  return 0;
}

/* oauth = { token_url; client_id; client_secret_file; scope; }: the client credentials grant
 * (RFC 6749 4.4); everything but scope is required when the SCEF binding is on. */
static int load_scef_oauth(load_ctx_t *ctx, const config_setting_t *g, bool required,
                           gw_scef_oauth_conf_t *oauth) {
  static const char *const P = "bindings.nidd.scef.oauth";
  const config_setting_t *id_s, *scope_s;
  const char *id, *scope;
  int rc;
  if ((rc = check_known(ctx, g, P, scef_oauth_keys)) != 0 ||
      (rc = get_http_url(ctx, g, P, "token_url", required,
                         "the token endpoint, e.g. \"https://auth.example.net/oauth2/token\"",
                         &oauth->token_url)) != 0 ||
      (rc = get_string(ctx, g, P, "client_id", required, "the OAuth client_id", &id_s, &id)) ||
      (rc = get_string(ctx, g, P, "scope", false, "the OAuth scope", &scope_s, &scope)) != 0)
    return rc;
  if (id && !is_printable_ascii(id))
    return fail(ctx, id_s, "bindings.nidd.scef.oauth.client_id",
                "expected the OAuth client_id: printable ASCII (RFC 6749 A.1)");
  if (scope && !valid_oauth_scope(scope))
    return fail(ctx, scope_s, "bindings.nidd.scef.oauth.scope",
                "expected scope tokens of printable ASCII without '\"' or '\\' joined by "
                "single spaces (RFC 6749 3.3), got \"%.80s\"",
                scope);
  if ((rc = dup_string(ctx, id, &oauth->client_id)) != 0 ||
      (rc = dup_string(ctx, scope, &oauth->scope)) != 0 ||
      (rc = refuse_inline_secret(ctx, g, P, "client_secret", "a client secret")) != 0 ||
      (rc = load_secret(ctx, g, P, "client_secret", "the OAuth client secret",
                        &oauth->client_secret)) != 0)
    return rc;
  if (required && !oauth->client_secret)
    return fail(ctx, g, "bindings.nidd.scef.oauth.client_secret_file",
                "missing (expected a file holding the OAuth client secret)");
  return 0;
}

/* Who the gateway is to the SCEF: a static bearer token from token_file, OAuth 2.0 client
 * credentials, or neither (a SCEF that knows it by its address or its client certificate). */
static int load_scef_credentials(load_ctx_t *ctx, const config_setting_t *g,
                                 gw_scef_conf_t *scef) {
  static const char *const P = "bindings.nidd.scef";
  const config_setting_t *oauth;
  int rc;
  if ((rc = refuse_inline_secret(ctx, g, P, "token", "a bearer token")) != 0 ||
      (rc = get_group(ctx, g, P, "oauth",
                      "{ token_url = \"https://...\"; client_id = \"...\"; "
                      "client_secret_file = \"...\"; }",
                      &oauth)) != 0)
    return rc;
  if (oauth && member(g, "token_file"))
    return fail(ctx, oauth, "bindings.nidd.scef.oauth",
                "give either token_file (a static bearer token) or oauth, not both");
  if ((rc = load_secret(ctx, g, P, "token", "the SCEF's bearer token", &scef->token)) != 0)
    return rc;
  if (scef->token && !valid_bearer_token(scef->token))
    return fail(ctx, member(g, "token_file"), "bindings.nidd.scef.token_file",
                "the file's first line is not a bearer token (RFC 6750 2.1: letters, digits, "
                "'-', '.', '_', '~', '+', '/', then '='s only)");
  scef->has_oauth = oauth != NULL;
  return oauth ? load_scef_oauth(ctx, oauth, scef->enabled, &scef->oauth) : 0;
}

/* TLS files for the SCEF and its token endpoint: only when one of them is https://. */
static int load_scef_tls(load_ctx_t *ctx, const config_setting_t *g, gw_scef_conf_t *scef) {
  static const char *const P = "bindings.nidd.scef";
  const char *token_url = scef->oauth.token_url;
  bool https = (scef->url && strncmp(scef->url, "https://", 8) == 0) ||
               (token_url && strncmp(token_url, "https://", 8) == 0);
  const config_setting_t *s;
  int rc;
  if ((scef->url || token_url) && !https &&
      (rc = refuse_tls_files(ctx, g, P, "only used with TLS: url (or oauth.token_url) is not "
                                        "https://")) != 0)
    return rc;
  if ((rc = get_file(ctx, g, P, "ca_file", &s, &scef->ca_file)) != 0)
    return rc;
  return get_cert_and_key(ctx, g, P, &scef->cert_file, &scef->key_file);
}

/* One pair of rds: { ue_port = 0; scef_port = 1; upstream = "default"; }. */
static int load_scef_rds_pair(load_ctx_t *ctx, const config_setting_t *e, const char *epath,
                              const gw_config_t *config, void *entries, size_t index) {
  static const char *const port_names[] = {"ue_port", "scef_port"};
  gw_scef_rds_conf_t *pairs = entries, *pair = &pairs[index];
  uint32_t ports[2];
  int rc;
  for (size_t k = 0; k < 2; k++) {
    char path[SETTING_PATH_MAX];
    path_member(path, epath, port_names[k]);
    if (!member(e, port_names[k]))
      return fail(ctx, e, path, "missing (expected an RDS port, 0 to 15)");
    if ((rc = get_uint(ctx, e, epath, port_names[k], 0, 15,
                       " (TS 24.250: an RDS port is 4 bits)", NULL, &ports[k])) != 0)
      return rc;
  }
  pair->ue_port = (uint8_t)ports[0];
  pair->scef_port = (uint8_t)ports[1];
  if ((rc = get_server_refs(ctx, e, epath, config, "an RDS port pair", true, &pair->upstream,
                            &pair->bootstrap)) != 0)
    return rc;
  for (size_t j = 0; j < index; j++)
    if (pairs[j].ue_port == pair->ue_port && pairs[j].scef_port == pair->scef_port)
      return fail(ctx, e, epath,
                  "ue_port %u with scef_port %u is already given by "
                  "bindings.nidd.scef.rds.[%zu]: a pair names one server",
                  pair->ue_port, pair->scef_port, j);
  return 0;
}

/* rds: which server each RDS port pair is (TS 24.250; Transport Appendix D.3). */
static int load_scef_rds(load_ctx_t *ctx, const config_setting_t *g, const gw_config_t *config,
                         gw_scef_conf_t *scef) {
  static const group_list_t pairs = {
      "rds", "bindings.nidd.scef.rds", "{ ue_port = 0; scef_port = 1; upstream = \"...\"; }",
      "RDS port pair", scef_rds_keys, sizeof(gw_scef_rds_conf_t), load_scef_rds_pair};
  void *entries = NULL;
  int rc = load_group_list(ctx, g, &pairs, config, NULL, &entries, &scef->rds_count);
  scef->rds = entries;
  return rc;
}

/* bindings.nidd.scef (Transport Appendix D.3; TS 29.122 T8 NIDD): the SCEF's API, who the
 * gateway is to it, where its notifications come in, the NIDD configurations' parameters. On
 * when NIDD is enabled, unless `enabled = false` here; checked whole either way. */
static int load_scef(load_ctx_t *ctx, const config_setting_t *g, const gw_config_t *config,
                     bool nidd_enabled, gw_scef_conf_t *scef) {
  static const char *const P = "bindings.nidd.scef";
  bool on = true;
  int rc;
  if ((rc = check_known(ctx, g, P, scef_keys)) != 0 ||
      (rc = get_bool(ctx, g, P, "enabled", NULL, &on)) != 0)
    return rc;
  scef->enabled = nidd_enabled && on;
  if ((rc = get_http_url(ctx, g, P, "url", scef->enabled,
                         "the SCEF's T8 API root ({apiRoot}, TS 29.122 5.2.4), e.g. "
                         "\"https://scef.example.net/api\"",
                         &scef->url)) != 0 ||
      (rc = get_checked_string(ctx, g, P, "scs_as_id", scef->enabled,
                               "the SCS/AS identifier the SCEF knows the gateway by",
                               "{scsAsId} of TS 29.122, a path segment", scs_as_id_reason,
                               &scef->scs_as_id)) != 0 ||
      (rc = load_scef_notifications(ctx, g, scef)) != 0 ||
      (rc = load_scef_credentials(ctx, g, scef)) != 0 || (rc = load_scef_tls(ctx, g, scef)) ||
      (rc = get_uint(ctx, g, P, "configuration_duration_s", 10, 31536000, " seconds", NULL,
                     &scef->configuration_duration_s)) != 0 ||
      (rc = get_uint(ctx, g, P, "maximum_latency_s", 0, 86400,
                     " seconds (0: the SCEF does not buffer)", NULL,
                     &scef->maximum_latency_s)) != 0 ||
      (rc = get_checked_string(ctx, g, P, "external_group_id", false, "\"local-id@domain\"",
                               EXTERNAL_ID_FORM("External Group Identifier"), external_id_reason,
                               &scef->external_group_id)) != 0 ||
      (rc = load_scef_rds(ctx, g, config, scef)) != 0)
    return rc;
  scef->reliable_data_service = scef->rds_count > 0;
  return get_bool(ctx, g, P, "reliable_data_service", NULL, &scef->reliable_data_service);
}

static int load_nidd(load_ctx_t *ctx, const config_setting_t *g, const gw_config_t *config,
                     gw_nidd_conf_t *nidd) {
  static const char *const P = "bindings.nidd";
  const config_setting_t *sgi, *scef;
  int rc;
  if ((rc = check_known(ctx, g, P, nidd_keys)) != 0 ||
      (rc = get_bool(ctx, g, P, "enabled", NULL, &nidd->enabled)) != 0 ||
      (rc = get_bool(ctx, g, P, "accept_unknown", NULL, &nidd->accept_unknown)) != 0 ||
      (rc = get_group(ctx, g, P, "sgi", "{ listen = \"host:port\"; }", &sgi)) != 0 ||
      (sgi && (rc = check_known(ctx, sgi, "bindings.nidd.sgi", sgi_keys)) != 0) ||
      (sgi && (rc = get_listen(ctx, sgi, "bindings.nidd.sgi", "listen", nidd->enabled,
                               "\"host:port\" to receive the SGi UDP tunnel on",
                               &nidd->sgi_listen)) != 0) ||
      (rc = get_group(ctx, g, P, "scef", "{ url = \"https://...\"; ... }", &scef)) != 0 ||
      (scef && (rc = load_scef(ctx, scef, config, nidd->enabled, &nidd->scef)) != 0))
    return rc;
  if (nidd->enabled && !sgi && !nidd->scef.enabled)
    return fail(ctx, g, "bindings.nidd.sgi.listen",
                "missing: the NIDD binding needs sgi = { listen = \"host:port\"; } (the SGi UDP "
                "tunnel address) or scef = { url = ...; ... } (NIDD via SCEF)");
  return 0;
}

/* Last, bindings.nidd.scef with the devices: without external_group_id the SCEF serves the
 * devices listed by external_id or msisdn, one NIDD configuration each, and with none of them
 * it would deliver nothing. Then, until its binding (issue 13) exists, a file that turns it on
 * is refused, after every other check so that --check-config reports real mistakes first. */
static int check_scef(load_ctx_t *ctx, const config_setting_t *root, const gw_config_t *config) {
  const gw_scef_conf_t *scef = &config->bindings.nidd.scef;
  if (!scef->enabled)
    return 0;
  const config_setting_t *g = member(member(member(root, "bindings"), "nidd"), "scef");
  bool served = scef->external_group_id != NULL;
  for (size_t i = 0; i < config->device_count && !served; i++)
    served = config->devices[i].external_id || config->devices[i].msisdn;
  if (!served)
    return fail(ctx, g, "bindings.nidd.scef",
                "no device to configure at the SCEF: list devices with external_id or msisdn, "
                "or give external_group_id (one NIDD configuration for a group)");
  return fail(ctx, g, "bindings.nidd.scef",
              "NIDD via SCEF is not implemented in this version yet; the rest of the file is "
              "valid (set enabled = false in this group to run the other bindings)");
}

/* A device's device_id names a The Things Stack end device: meaningless to ChirpStack. */
static int check_lorawan_devices(load_ctx_t *ctx, const config_setting_t *root,
                                 const gw_config_t *config) {
  if (config->bindings.lorawan.network_server == GW_LNS_TTS)
    return 0;
  for (size_t i = 0; i < config->device_count; i++) {
    const config_setting_t *e = config_setting_get_elem(member(root, "devices"), (unsigned)i);
    const config_setting_t *id_s = member(e, "device_id");
    if (!id_s)
      continue;
    char epath[SETTING_PATH_MAX], path[SETTING_PATH_MAX];
    path_index(epath, "devices", i);
    path_member(path, epath, "device_id");
    return fail(ctx, id_s, path,
                "only used with bindings.lorawan.network_server = \"tts\" (The Things Stack's "
                "end device ID); ChirpStack knows devices by DevEUI");
  }
  return 0;
}

/* A device entry with mqtt_prefix must name a prefix the binding serves. */
static int check_mqtt_devices(load_ctx_t *ctx, const config_setting_t *root,
                              const gw_config_t *config) {
  const gw_mqtt_conf_t *mqtt = &config->bindings.mqtt;
  if (!mqtt->enabled)
    return 0;
  for (size_t i = 0; i < config->device_count; i++) {
    const char *p = config->devices[i].mqtt_prefix;
    bool served = p == NULL;
    for (size_t t = 0; !served && t < mqtt->tenant_count; t++)
      served = strcmp(mqtt->tenants[t].prefix, p) == 0;
    if (served)
      continue;
    char epath[SETTING_PATH_MAX], path[SETTING_PATH_MAX];
    path_index(epath, "devices", i);
    path_member(path, epath, "mqtt_prefix");
    const config_setting_t *e = config_setting_get_elem(member(root, "devices"), (unsigned)i);
    return fail(ctx, member(e, "mqtt_prefix"), path,
                "prefix \"%s\" is not one of bindings.mqtt's prefixes", p);
  }
  return 0;
}

static int load_bindings(load_ctx_t *ctx, const config_setting_t *root, gw_config_t *config) {
  const config_setting_t *b;
  int rc = get_group(ctx, root, "", "bindings", "{ nidd = { enabled = true; ... }; }", &b);
  if (rc != 0)
    return rc;
  int n = b ? config_setting_length(b) : 0;
  for (int i = 0; i < n; i++) {
    const config_setting_t *s = config_setting_get_elem(b, (unsigned)i);
    const char *name = config_setting_name(s);
    char path[SETTING_PATH_MAX];
    path_member(path, "bindings", name ? name : "?");
    if (!name || !in_list(binding_keys, name))
      return fail(ctx, s, path, "unknown binding (expected nidd, sms, mqtt, http or lorawan)");
    if (config_setting_type(s) != CONFIG_TYPE_GROUP)
      return fail(ctx, s, path, "expected a group { enabled = true; ... }, got %s",
                  type_name(s));
    if (strcmp(name, "nidd") == 0) {
      if ((rc = load_nidd(ctx, s, config, &config->bindings.nidd)) != 0)
        return rc;
      continue;
    }
    if (strcmp(name, "sms") == 0) {
      if ((rc = load_sms(ctx, s, &config->bindings.sms)) != 0)
        return rc;
      continue;
    }
    if (strcmp(name, "mqtt") == 0) {
      if ((rc = load_mqtt(ctx, s, config, &config->bindings.mqtt)) != 0)
        return rc;
      continue;
    }
    if (strcmp(name, "http") == 0) {
      if ((rc = load_http(ctx, s, config, &config->bindings.http)) != 0)
        return rc;
      continue;
    }
    if ((rc = load_lorawan(ctx, s, config, &config->bindings.lorawan)) != 0)
      return rc;
  }
  if ((rc = check_mqtt_devices(ctx, root, config)) != 0 ||
      (rc = check_lorawan_devices(ctx, root, config)) != 0)
    return rc;
  if (!config->bindings.nidd.enabled && !config->bindings.sms.enabled &&
      !config->bindings.mqtt.enabled && !config->bindings.http.enabled &&
      !config->bindings.lorawan.enabled)
    return fail(ctx, b ? b : root, "bindings",
                "no binding is enabled (this build has: %s); set "
                "bindings.<name>.enabled = true", GW_BUILT_BINDINGS);
  return 0;
}

/* Every file the configuration was read from (the main file and each @include that holds a
 * setting) must not be writable by every user: whoever can write it runs the gateway. */
static int check_config_files_under(load_ctx_t *ctx, const config_setting_t *s,
                                    const char **checked, size_t *checked_count, size_t max) {
  const char *file = config_setting_source_file(s);
  bool seen = !file;
  for (size_t i = 0; i < *checked_count && !seen; i++)
    seen = strcmp(checked[i], file) == 0;
  if (!seen && *checked_count < max) {
    checked[(*checked_count)++] = file;
    char buf[PATH_MAX];
    const char *path = source_file_of(ctx, s, buf, sizeof(buf));
    struct stat st;
    if (stat(path, &st) == 0) {
      int rc = check_not_world_writable(ctx, s, "(file)", path, &st);
      if (rc != 0)
        return rc;
    }
  }
  for (int i = 0; i < config_setting_length(s); i++) {
    const config_setting_t *child = config_setting_get_elem(s, (unsigned)i);
    int rc = child ? check_config_files_under(ctx, child, checked, checked_count, max) : 0;
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int check_config_files(load_ctx_t *ctx, const config_setting_t *root) {
  const char *checked[64];
  size_t count = 0;
  struct stat st;
  if (ctx->base_dir && stat(ctx->file, &st) == 0) { /* a file, not a string */
    int rc = check_not_world_writable(ctx, NULL, "(file)", ctx->file, &st);
    if (rc != 0)
      return rc;
  }
  return check_config_files_under(ctx, root, checked, &count, sizeof(checked) / sizeof(*checked));
}

static int load_root(load_ctx_t *ctx, const config_t *cfg, gw_config_t *config) {
  const config_setting_t *root = config_root_setting(cfg);
  gw_gateway_conf_t *gw = &config->gateway;
  gw->state_dir = strdup("/var/lib/lwm2m-gw");
  if (!gw->state_dir)
    return nomem(ctx);
  gw->log_level = GW_LOG_INFO;
  gw->log_syslog = false;
  gw->piggyback_window_ms = 1500;
  gw->device_timeout_ms = 10000;
  gw->downlink_queue_length = 8;
  gw->queue_awake_ms = 93000; /* CoAP MAX_TRANSMIT_WAIT, RFC 7252 4.8.2 */
  gw->max_devices = 10000;
  gw->max_unregistered = 1000;
  gw->unregistered_timeout_s = 30;
  gw->uplink_queue_length = 64;
  gw->uplink_hold_s = 86400;
  config->bindings.nidd.accept_unknown = true;
  config->bindings.nidd.scef.configuration_duration_s = 86400;
  gw_sms_conf_t *sms = &config->bindings.sms;
  sms->baud = 115200;
  sms->concatenated = true;
  sms->reassembly_timeout_ms = 60000;
  sms->send_interval_ms = 200;
  sms->sweep_interval_ms = 30000;
  sms->dtls_cookies = true;
  sms->dtls_handshake_min_ms = 10000;
  sms->dtls_handshake_max_ms = 300000;
  sms->dtls_mtu = 1024;
  gw_mqtt_conf_t *mqtt = &config->bindings.mqtt;
  mqtt->qos = 1;
  mqtt->mqtt_version = 4;
  mqtt->keepalive_s = 30;
  mqtt->session_expiry_s = 86400;
  mqtt->accept_unknown = true;
  gw_http_conf_t *http = &config->bindings.http;
  http->max_body = 65536;
  http->accept_unknown = false;
  http->max_connections = 256;
  http->max_connections_per_client = 16;
  http->idle_timeout_s = 60;
  http->header_timeout_s = 10;
  http->body_timeout_s = 30;
  gw_lorawan_conf_t *lorawan = &config->bindings.lorawan;
  lorawan->keepalive_s = 30;
  lorawan->qos = 1; /* 0 with The Things Stack: set with network_server */
  lorawan->ack_timeout_s = 300; /* Appendix C.2 */
  lorawan->max_retransmit = 4;
  lorawan->downlink_hold_s = 86400;
  memcpy(lorawan->max_payload, eu868_max_payload, sizeof(eu868_max_payload));
  lorawan->max_payload_count = sizeof(eu868_max_payload) / sizeof(eu868_max_payload[0]);

  int rc;
  if ((rc = check_config_files(ctx, root)) != 0 ||
      (rc = check_known(ctx, root, "", top_level_keys)) != 0 ||
      (rc = load_gateway(ctx, root, gw)) != 0 || (rc = load_upstreams(ctx, root, config)) != 0 ||
      (rc = load_devices(ctx, root, config)) != 0 || (rc = load_bindings(ctx, root, config)) != 0)
    return rc;
  return check_scef(ctx, root, config);
}

static int parse_error(load_ctx_t *ctx, const config_t *cfg) {
  if (ctx->err && ctx->err_size > 0) {
    const char *file = config_error_file(cfg) ? config_error_file(cfg) : ctx->file;
    if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
      snprintf(ctx->err, ctx->err_size, "%s: cannot read the file", file);
    else
      snprintf(ctx->err, ctx->err_size, "%s:%d: %s", file, config_error_line(cfg),
               config_error_text(cfg) ? config_error_text(cfg) : "syntax error");
  }
  return GW_ERR_CONFIG;
}

int gw_config_load(const char *path, gw_config_t *out_config, char *err, size_t err_size) {
  memset(out_config, 0, sizeof(*out_config));
  if (err && err_size > 0)
    err[0] = '\0';
  load_ctx_t ctx = {.file = path ? path : "(null)", .err = err, .err_size = err_size};
  if (!path)
    return fail(&ctx, NULL, "(file)", "no configuration file given");
  FILE *f = fopen(path, "r");
  if (!f) {
    if (err && err_size > 0)
      snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return GW_ERR_CONFIG;
  }
  struct stat st;
  bool is_dir = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode);
  fclose(f);
  if (is_dir) {
    if (err && err_size > 0)
      snprintf(err, err_size, "%s: is a directory, expected a configuration file", path);
    return GW_ERR_CONFIG;
  }

  /* Relative paths inside the file (and @include) are relative to the file's directory. */
  char *dir = strdup(path);
  if (!dir)
    return nomem(&ctx);
  char *slash = strrchr(dir, '/');
  if (!slash) {
    free(dir);
    if (!(dir = strdup(".")))
      return nomem(&ctx);
  } else if (slash == dir) {
    slash[1] = '\0';
  } else {
    *slash = '\0';
  }
  char *base_dir = realpath(dir, NULL);
  if (base_dir) /* else an unreadable parent directory: keep the directory as written */
    free(dir);
  else
    base_dir = dir;
  ctx.base_dir = base_dir;

  config_t cfg;
  config_init(&cfg);
  config_set_include_dir(&cfg, base_dir);
  int rc;
  if (!config_read_file(&cfg, path))
    rc = parse_error(&ctx, &cfg);
  else if ((rc = load_root(&ctx, &cfg, out_config)) == 0)
    rc = dup_string(&ctx, path, &out_config->path);
  config_destroy(&cfg);
  free(base_dir);
  if (rc != 0)
    gw_config_free(out_config);
  return rc;
}

int gw_config_load_string(const char *text, gw_config_t *out_config, char *err, size_t err_size) {
  memset(out_config, 0, sizeof(*out_config));
  if (err && err_size > 0)
    err[0] = '\0';
  load_ctx_t ctx = {.file = "<string>", .err = err, .err_size = err_size};
  config_t cfg;
  config_init(&cfg);
  int rc;
  if (!config_read_string(&cfg, text ? text : ""))
    rc = parse_error(&ctx, &cfg);
  else
    rc = load_root(&ctx, &cfg, out_config);
  config_destroy(&cfg);
  if (rc != 0)
    gw_config_free(out_config);
  return rc;
}

static void free_secret(char *s) {
  if (s)
    explicit_bzero(s, strlen(s));
  free(s);
}

static void broker_conf_free(const broker_conf_t *broker) {
  free(*broker->broker);
  free(*broker->client_id);
  free(*broker->username);
  free_secret(*broker->password);
  free(*broker->ca_file);
  free(*broker->cert_file);
  free(*broker->key_file);
}

static void gw_mqtt_conf_free(gw_mqtt_conf_t *mqtt) {
  const broker_conf_t broker = BROKER_CONF_OF(mqtt);
  broker_conf_free(&broker);
  for (size_t i = 0; i < mqtt->tenant_count; i++) {
    free(mqtt->tenants[i].prefix);
    free(mqtt->tenants[i].upstream);
    free(mqtt->tenants[i].bootstrap);
  }
  free(mqtt->tenants);
}

static void gw_lorawan_conf_free(gw_lorawan_conf_t *lorawan) {
  const broker_conf_t broker = BROKER_CONF_OF(lorawan);
  broker_conf_free(&broker);
  free(lorawan->application_id);
  for (size_t i = 0; i < lorawan->port_count; i++) {
    free(lorawan->ports[i].upstream);
    free(lorawan->ports[i].bootstrap);
  }
  free(lorawan->ports);
}

static void free_strings(char **strings, size_t count) {
  for (size_t i = 0; i < count; i++)
    free(strings[i]);
  free(strings);
}

static void gw_scef_conf_free(gw_scef_conf_t *scef) {
  char *owned[] = {scef->url,        scef->scs_as_id,          scef->notification_listen,
                   scef->notification_url, scef->oauth.token_url, scef->oauth.client_id,
                   scef->oauth.scope, scef->ca_file,           scef->cert_file,
                   scef->key_file,   scef->external_group_id};
  for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
    free(owned[i]);
  free_secret(scef->token);
  free_secret(scef->oauth.client_secret);
  free_strings(scef->notification_allow, scef->notification_allow_count);
  for (size_t i = 0; i < scef->rds_count; i++) {
    free(scef->rds[i].upstream);
    free(scef->rds[i].bootstrap);
  }
  free(scef->rds);
}

static void gw_http_conf_free(gw_http_conf_t *http) {
  free(http->listen);
  free(http->cert_file);
  free(http->key_file);
  free(http->client_ca_file);
  free(http->upstream);
  free(http->bootstrap);
  free(http->device_ca_file);
  free(http->device_cert_file);
  free(http->device_key_file);
}

void gw_config_free(gw_config_t *config) {
  if (!config)
    return;
  free(config->path);
  free(config->gateway.state_dir);
  free(config->gateway.metrics);
  for (size_t i = 0; i < config->upstream_count; i++) {
    gw_upstream_conf_t *up = &config->upstreams[i];
    free(up->name);
    free(up->uri);
    free(up->host);
    free(up->ca_file);
    free(up->cert_file);
    free(up->key_file);
  }
  free(config->upstreams);
  for (size_t i = 0; i < config->device_count; i++) {
    gw_device_conf_t *d = &config->devices[i];
    free(d->endpoint);
    free(d->upstream);
    free(d->msisdn);
    free(d->ue_address);
    free(d->external_id);
    free(d->mqtt_prefix);
    free(d->http_url);
    free_secret(d->http_password);
    free_secret(d->http_token);
    free(d->psk_identity);
    free(d->cert_file);
    free(d->key_file);
    free(d->dev_eui);
    free(d->lns_device_id);
    free(d->objects);
    explicit_bzero(d->psk_key, sizeof(d->psk_key));
    free(d->sms_psk.identity);
    explicit_bzero(&d->sms_psk, sizeof(d->sms_psk));
    explicit_bzero(d->sms_secret, sizeof(d->sms_secret));
    d->sms_secret_len = 0;
  }
  free(config->devices);
  free(config->bindings.nidd.sgi_listen);
  gw_scef_conf_free(&config->bindings.nidd.scef);
  gw_sms_conf_t *sms = &config->bindings.sms;
  free(sms->modem);
  free(sms->msisdn);
  free(sms->pin);
  free(sms->smsc);
  free(sms->storage);
  free_strings(sms->allow, sms->allow_count);
  gw_mqtt_conf_free(&config->bindings.mqtt);
  gw_http_conf_free(&config->bindings.http);
  gw_lorawan_conf_free(&config->bindings.lorawan);
  memset(config, 0, sizeof(*config));
}

const gw_upstream_conf_t *gw_config_find_upstream(const gw_config_t *config, const char *name) {
  if (!config || !name)
    return NULL;
  for (size_t i = 0; i < config->upstream_count; i++)
    if (config->upstreams[i].name && strcmp(config->upstreams[i].name, name) == 0)
      return &config->upstreams[i];
  return NULL;
}

const gw_upstream_conf_t *gw_config_device_upstream(const gw_config_t *config,
                                                    const gw_device_conf_t *device) {
  if (!config || config->upstream_count == 0)
    return NULL;
  if (device && device->upstream)
    return gw_config_find_upstream(config, device->upstream);
  const gw_upstream_conf_t *up = gw_config_find_upstream(config, "default");
  return up ? up : &config->upstreams[0];
}

static bool strings_differ(const char *a, const char *b) {
  if (!a || !b)
    return a != b;
  return strcmp(a, b) != 0;
}

bool gw_device_conf_session_changed(const gw_device_conf_t *a, const gw_device_conf_t *b) {
  if (!a || !b)
    return a != b;
  return strings_differ(a->endpoint, b->endpoint) || strings_differ(a->upstream, b->upstream) ||
         strings_differ(a->msisdn, b->msisdn) || strings_differ(a->ue_address, b->ue_address) ||
         strings_differ(a->external_id, b->external_id) ||
         strings_differ(a->dev_eui, b->dev_eui) ||
         strings_differ(a->lns_device_id, b->lns_device_id) ||
         strings_differ(a->psk_identity, b->psk_identity) || a->psk_key_len != b->psk_key_len ||
         a->sms_security != b->sms_security ||
         strings_differ(a->sms_psk.identity, b->sms_psk.identity) ||
         a->sms_psk.key_len != b->sms_psk.key_len ||
         memcmp(a->sms_psk.key, b->sms_psk.key, a->sms_psk.key_len) != 0 ||
         a->has_sms_key_params != b->has_sms_key_params ||
         memcmp(a->sms_key_params, b->sms_key_params, sizeof(a->sms_key_params)) != 0 ||
         a->sms_secret_len != b->sms_secret_len ||
         memcmp(a->sms_secret, b->sms_secret, a->sms_secret_len) != 0 ||
         memcmp(a->psk_key, b->psk_key, a->psk_key_len) != 0 ||
         strings_differ(a->cert_file, b->cert_file) || strings_differ(a->key_file, b->key_file);
}
