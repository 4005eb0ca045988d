/* lwm2m-gw: the configuration as a plain struct. Only conf/ includes <libconfig.h>.
 *
 * The file shape is the contract of ../shared/DESIGN.md ("gateway", "upstream", "devices",
 * "bindings"); every setting is documented in conf/README.md. Loading validates everything and
 * reports the first error as "FILE:LINE: SETTING: what was expected".
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_PSK_KEY_MAX 64
#define GW_SMS_KEY_PARAMS_LEN 7 /* KIc, KID, SPI (2), TAR (3) */

typedef struct {
  char *state_dir;          /* default "/var/lib/lwm2m-gw" */
  int log_level;            /* gw_log_level_t; default info */
  bool log_syslog;          /* log_target = "syslog"; default stderr */
  char *metrics;            /* "host:port" of the metrics endpoint, NULL = off */
  uint32_t piggyback_window_ms;   /* default 1500; must be < 2000 (CoAP ACK_TIMEOUT) */
  uint32_t device_timeout_ms;     /* default 10000; silent device -> 5.04 */
  uint32_t downlink_queue_length; /* default 8; per device, for queue mode */
  uint32_t queue_awake_ms;        /* default 93000 (CoAP MAX_TRANSMIT_WAIT) */
  uint32_t max_devices;           /* default 10000 */
  uint32_t max_unregistered;      /* devices not registered (yet) at once; default 1000 */
  uint32_t unregistered_timeout_s; /* an idle device that never registered is dropped; 30 */
  uint32_t uplink_queue_length;   /* device requests waiting behind those in flight; 64 */
  uint32_t uplink_hold_s;         /* an accepted request waits this long for the server; 86400 */
} gw_gateway_conf_t;

typedef enum { GW_PROFILE_LWM2M11 = 0, GW_PROFILE_PASSTHROUGH = 1 } gw_profile_t;

typedef struct {
  char *name;     /* unique; devices refer to it */
  char *uri;      /* coap://host:port or coaps://host:port */
  bool secure;    /* scheme is coaps */
  char *host;     /* parsed from uri */
  uint16_t port;  /* parsed from uri; default 5683 / 5684 */
  gw_profile_t profile; /* "lwm2m11" (default) or "passthrough" */
  char *ca_file;   /* X.509 trust anchor for the server, optional */
  char *cert_file; /* default client certificate for devices on this upstream, optional */
  char *key_file;
} gw_upstream_conf_t;

typedef struct {
  char *identity;
  uint8_t key[GW_PSK_KEY_MAX];
  size_t key_len;
} gw_psk_t;

/* SMS channel security of a device (Transport 5.3): "none" is for debugging only. */
typedef enum {
  GW_SMS_SECURITY_NONE = 0,
  GW_SMS_SECURITY_DTLS,          /* 5.3.2.1: DTLS over SMS, the gateway is the DTLS server */
  GW_SMS_SECURITY_SECURED_PACKET /* 5.3.2.1.3: 3GPP 31.115 secured packets */
} gw_sms_security_t;

typedef struct {
  char *endpoint;     /* required, unique; used as ep= upstream */
  char *upstream;     /* name; default: the upstream named "default", else the first */
  char *msisdn;       /* SMS binding address, optional */
  char *ue_address;   /* NIDD SGi: "ip" or "ip:port" of the UE, optional */
  char *external_id;  /* NIDD via SCEF: the External Identifier "local@domain" (TS 23.003
                         19.7.2), optional; a device of the SCEF binding has it or msisdn */
  char *mqtt_prefix;  /* MQTT: the device's topic prefix ("" = none), optional; the topic's
                         ENDPOINT is the endpoint name (Transport 8.2) */
  char *psk_identity; /* DTLS PSK toward the upstream server, optional */
  uint8_t psk_key[GW_PSK_KEY_MAX];
  size_t psk_key_len; /* from psk_key_hex or psk_key_file (hex text) */
  char *cert_file;    /* X.509 client certificate for this device, optional */
  char *key_file;
  bool queue_mode;    /* sleepy device: downlink waits in its queue */
  /* HTTP binding (Transport 7): the device's own HTTP server for the server's requests
   * ("http://10.0.0.5:8080", "https://dev.example/lwm2m"; no query, no trailing '/'), and the
   * credential it must present to the gateway: HTTP Basic (user = endpoint name, http_password
   * or http_password_file) or Bearer (http_token or http_token_file). All optional. */
  char *http_url;
  char *http_password;
  char *http_token;
  gw_sms_security_t sms_security; /* Transport 5.3.2 on the SMS path; default none */
  gw_psk_t sms_psk;   /* DTLS over SMS: sms_psk_identity with sms_psk_key_hex or _file */
  /* Secured packets (5.3.2.1.3): "SMS Binding Key Parameters" KIc, KID, SPI (2), TAR (3) from
   * sms_key_params_hex, and "SMS Binding Secret Keys" (KIc key then KID key: 32, 48 or 64
   * octets) from sms_secret_key_hex or sms_secret_key_file. Lengths checked here only; the SMS
   * binding parses them (sms_sp_keys_parse). */
  bool has_sms_key_params;
  uint8_t sms_key_params[GW_SMS_KEY_PARAMS_LEN];
  uint8_t sms_secret[GW_PSK_KEY_MAX];
  size_t sms_secret_len;
  /* LoRaWAN binding (Transport 6.8.4). */
  char *dev_eui;       /* the DevEUI: 16 hex digits in the file, any case, kept as 16 upper-case
                          hex digits; unique among devices. With it, endpoint defaults to it
                          (Transport table 6.8.4-1: "Endpoint Client Name ... default DevEUI") */
  char *lns_device_id; /* setting device_id: the TTS end device ID; default "eui-" + the DevEUI
                          in lower case, as TTS's console names devices; only meaningful with
                          TTS; set whenever dev_eui is */
  char *objects;       /* the device's Objects and Object Instances as CoRE link format
                          ("</1/0>,</3/0>,</5>"), for a LoRaWAN device that registers without its
                          object list (Transport table 6.8.4-1); never lists object 0; optional */
} gw_device_conf_t;

/* One RDS port pair of bindings.nidd.scef.rds (TS 24.250; Transport Appendix D.3): an uplink
 * with this pair is for this server, and what goes to the device from that server carries it. */
typedef struct {
  uint8_t ue_port;   /* the UE's port, 0..15 (RDS ports are 4 bits); the Security object's RDS
                        Source Port /0/x/29 on the device */
  uint8_t scef_port; /* the SCEF's port, 0..15; RDS Destination Port /0/x/28. The pair
                        (ue_port, scef_port) is unique among rds */
  char *upstream;    /* upstream name of the LwM2M server of this pair, or NULL ... */
  char *bootstrap;   /* ... of the bootstrap server: exactly one of the two is set. A server may
                        have several pairs (devices configured differently): what it sends a
                        device goes with the pair that device last used toward it */
} gw_scef_rds_conf_t;

/* bindings.nidd.scef.oauth: OAuth 2.0 client credentials grant (RFC 6749 4.4) for the T8 API. */
typedef struct {
  char *token_url;     /* the token endpoint, http:// or https:// */
  char *client_id;
  char *client_secret; /* the first line of client_secret_file, a private file; never inline */
  char *scope;         /* space-separated scope tokens (RFC 6749 3.3), NULL = none asked */
} gw_scef_oauth_conf_t;

/* bindings.nidd.scef: NIDD via the SCEF's T8 API (TS 29.122; Transport Appendix D.3); the
 * gateway is the SCS/AS. Every setting is filled in (and checked) when the group is present,
 * whether it is on or not. */
typedef struct {
  bool enabled;        /* bindings.nidd.enabled, the group present and not `enabled = false`
                          in it */
  char *url;           /* {apiRoot} of TS 29.122 5.2.4, http:// or https://, trailing '/'
                          dropped: requests go to {url}/3gpp-nidd/v1/{scs_as_id}/... */
  char *scs_as_id;     /* {scsAsId}: 1..128 of A-Z a-z 0-9 - . _ ~ (a path segment that needs no
                          percent-encoding), not "." or ".." */
  char *notification_listen; /* "host:port" the notification server listens on (plain HTTP) */
  char *notification_url;    /* notificationDestination as the SCEF reaches it; default
                                "http://" notification_listen "/t8/notifications" (required when
                                notification_listen's host is 0.0.0.0 or [::]) */
  char *token;         /* static bearer token (RFC 6750) from token_file; NULL = none */
  gw_scef_oauth_conf_t oauth;
  bool has_oauth;      /* the oauth group is given: fetch tokens instead of token; exclusive
                          with token */
  char *ca_file, *cert_file, *key_file; /* TLS toward the SCEF and the token endpoint, optional */
  char **notification_allow;  /* numeric IPv4/IPv6 addresses notifications may come from */
  size_t notification_allow_count; /* 0 = from any address */
  bool reliable_data_service; /* reliableDataService in configurations and downlinks; default
                                 true when rds pairs are given, else false */
  uint32_t configuration_duration_s; /* a NIDD configuration's duration, renewed before it ends;
                                        default 86400; 10..31536000 */
  uint32_t maximum_latency_s; /* downlinks' maximumLatency for devices without queue_mode; default
                                 0: the SCEF does not buffer (Transport Appendix D.6); queue-mode
                                 devices always get 0; 0..86400 */
  char *external_group_id;    /* one NIDD configuration for this group instead of one per
                                 device; NULL = per device (external_id, else msisdn) */
  gw_scef_rds_conf_t *rds;
  size_t rds_count;           /* 0 = RDS ports are not used */
} gw_scef_conf_t;

typedef struct {
  bool enabled;
  char *sgi_listen;      /* "host:port" (Appendix D.2 SGi tunnel); NULL = no SGi tunnel, which
                            needs scef.enabled; required when enabled without scef */
  bool accept_unknown;   /* accept UEs not listed in devices; default true */
  gw_scef_conf_t scef;   /* NIDD via SCEF; both may be on at once */
} gw_nidd_conf_t;

/* bindings.sms (Transport 6.8.3): one cellular modem driven by AT commands. */
typedef struct {
  bool enabled;
  char *modem;             /* serial port, required when enabled; /dev/serial/by-id/... is stable */
  uint32_t baud;           /* default 115200 */
  char *msisdn;            /* the modem's own number, 3GPP 23.003 form (no '+'), optional */
  char *pin;               /* SIM PIN (pin or pin_file), optional */
  char *smsc;              /* SMS centre to set, optional: the SIM's otherwise */
  char *storage;           /* preferred message storage "SM", "ME" or "MT"; default "ME" (falls
                              back to "SM") */
  bool concatenated;       /* split and reassemble long messages (23.040 9.2.3.24.1); default
                              true; false leaves it to a modem that does it itself */
  char **allow;            /* MSISDNs accepted besides the devices' (Transport 5.3) */
  size_t allow_count;
  uint32_t reassembly_timeout_ms; /* incomplete concatenated SMS expire; default 60000 */
  uint32_t send_interval_ms;      /* pacing between two SMS sent; default 200 */
  uint32_t sweep_interval_ms;     /* periodic read of the modem storage; default 30000 */
  bool dtls_cookies;              /* DTLS over SMS: HelloVerifyRequest cookies; default true */
  uint32_t dtls_handshake_min_ms; /* DTLS retransmission timer start; default 10000 */
  uint32_t dtls_handshake_max_ms; /* and its cap; default 300000 (SMS may take minutes) */
  uint32_t dtls_mtu;              /* DTLS datagram limit when concatenated; default 1024 */
  bool wake_queued;               /* wake a sleeping device that gave sms= with the Registration
                                     Update Trigger by SMS when a request waits for it (6.6);
                                     default false: each costs an SMS */
} gw_sms_conf_t;

/* One MQTT topic prefix (Transport 8.2 PREFIX: a tenant) and where its devices are relayed. */
typedef struct {
  char *prefix;    /* "" = topics without a prefix: lwm2m/rd/EP */
  char *upstream;  /* upstream name for the rd interface; NULL = the default upstream */
  char *bootstrap; /* upstream name of the bootstrap server for the bs interface; NULL = the
                      bs topics of this prefix are not subscribed */
} gw_mqtt_tenant_conf_t;

/* bindings.mqtt (Transport 8): one broker connection, one or more prefixes. */
typedef struct {
  bool enabled;
  char *broker;       /* tcp://, mqtt://, ssl://, mqtts://, ws://, wss:// URI; required */
  char *client_id;    /* optional; default lwm2m-gw-<hostname>, stable: the broker keeps the
                         session under it */
  char *username;     /* optional */
  char *password;     /* optional, from password or password_file */
  char *ca_file, *cert_file, *key_file; /* TLS, optional */
  uint32_t qos;          /* 0..2; default 1 */
  uint32_t mqtt_version; /* 4 (3.1.1, default) or 5 */
  uint32_t keepalive_s;  /* default 30 */
  uint32_t session_expiry_s; /* the broker keeps the session this long after a disconnect
                                (MQTT 5 Session Expiry Interval); 0 = clean session; default
                                86400 */
  bool accept_unknown;   /* endpoints not listed in devices are served; default true */
  gw_mqtt_tenant_conf_t *tenants;
  size_t tenant_count;   /* >= 1 after loading */
} gw_mqtt_conf_t;

/* bindings.http (Transport 7): the gateway's HTTP server for devices, and its client toward
 * the devices' own HTTP servers. */
typedef struct {
  bool enabled;
  char *listen;          /* "host:port", required when enabled */
  char *cert_file, *key_file; /* TLS for the listener (https), optional, both or neither */
  char *client_ca_file;  /* devices' client certificates are verified against it; optional */
  char *upstream;        /* upstream name for the rd interface; NULL = the device's or default */
  char *bootstrap;       /* upstream name of the bootstrap server for POST /bs; NULL = 404 */
  char *device_ca_file;  /* trust anchor for https:// device URLs; NULL = the system's */
  char *device_cert_file, *device_key_file; /* the gateway's client certificate toward
                                               devices, optional */
  bool accept_unknown;   /* endpoints not listed in devices are served; default false */
  uint32_t max_body;     /* largest request body accepted, bytes; default 65536 */
  /* What one client, or all together, may hold of the HTTP server (slowloris, floods). */
  uint32_t max_connections;            /* open at once; default 256 */
  uint32_t max_connections_per_client; /* open at once from one address; default 16 */
  uint32_t idle_timeout_s;   /* a connection without traffic is closed after; default 60 */
  uint32_t header_timeout_s; /* a request's header must be complete within; default 10 */
  uint32_t body_timeout_s;   /* its body within this after the header; default 30 */
} gw_http_conf_t;

/* One FPort of bindings.lorawan.ports: the device's server URI is lorawan://{fport} (Transport 6.8.4). */
typedef struct {
  uint8_t fport;     /* 1..255, unique among ports */
  char *upstream;    /* upstream name for LwM2M servers on this port; NULL = the device's, else the default */
  char *bootstrap;   /* upstream name of a bootstrap server: this port is the bootstrap server's; exactly one of upstream/bootstrap may be set (neither = upstream default) */
} gw_lorawan_port_conf_t;

typedef enum { GW_LNS_CHIRPSTACK = 0, GW_LNS_TTS = 1 } gw_lns_kind_t;

#define GW_LORAWAN_MAX_PAYLOAD_DRS 16

/* bindings.lorawan (Transport 6.8.4, Appendix C): the gateway is the LoRaWAN Application Server of one application of a network server, over its MQTT integration. */
typedef struct {
  bool enabled;
  char *broker;        /* same URI schemes and checks as bindings.mqtt.broker; required when enabled */
  char *client_id;     /* optional, as bindings.mqtt */
  char *username;      /* optional; TTS: "{application id}@{tenant id}", default application_id */
  char *password;      /* optional, from password or password_file; TTS: its API key, which must come from api_key_file (or password_file): a private file; required with TTS when enabled */
  char *ca_file, *cert_file, *key_file; /* TLS, optional, as bindings.mqtt */
  uint32_t keepalive_s;      /* setting keepalive, as bindings.mqtt; default 30 */
  uint32_t qos;              /* 0..1; default 1 for chirpstack; TTS supports QoS 0 only: default 0 and anything else is an error */
  gw_lns_kind_t network_server; /* "chirpstack" (default) or "tts" */
  char *application_id;      /* required when enabled: ChirpStack the application's UUID (kept in lower case, as in its topics), TTS "app@tenant" or "app" (TTS ids: 3..36 of a-z, 0-9, single '-' inside) */
  gw_lorawan_port_conf_t *ports; size_t port_count; /* required when enabled, at least one */
  bool accept_unknown;       /* DevEUIs not listed in devices are served; default false */
  bool confirmed_downlinks;  /* LoRaWAN confirmed downlinks (Appendix C.3.1); default false: unconfirmed with the Appendix C.3.2 retransmission */
  uint32_t ack_timeout_s;    /* Appendix C.2 ACK_TIMEOUT; default 300; 1..86400 */
  uint32_t max_retransmit;   /* Appendix C.2 MAX_RETRANSMIT; default 4; 0..20 */
  uint32_t max_payload[GW_LORAWAN_MAX_PAYLOAD_DRS]; /* largest application payload N per data rate, DR0 first; default the EU868 table: 51,51,51,115,242,242,242,242 (ChirpStack lrwn/src/region/eu868.rs, not repeater compatible) */
  size_t max_payload_count;  /* entries set; 8 by default; `max_payload = [ ... ]` replaces the table: 1..16 entries, each 11..255 */
  uint32_t downlink_hold_s;  /* a server request waits this long at most for a class A device to open an RX window before 5.04; default 86400 */
} gw_lorawan_conf_t;

typedef struct {
  char *path; /* the file it came from */
  gw_gateway_conf_t gateway;
  gw_upstream_conf_t *upstreams;
  size_t upstream_count;
  gw_device_conf_t *devices;
  size_t device_count;
  struct {
    gw_nidd_conf_t nidd;
    gw_sms_conf_t sms;
    gw_mqtt_conf_t mqtt;
    gw_http_conf_t http;
    gw_lorawan_conf_t lorawan;
  } bindings;
} gw_config_t;

/* Loads and validates path into *out_config (zeroed first). On error returns GW_ERR_CONFIG and
 * writes "FILE:LINE: SETTING: message" into err. On success the caller owns *out_config and
 * frees it with gw_config_free(). */
int gw_config_load(const char *path, gw_config_t *out_config, char *err, size_t err_size);
/* Same, from a string (for tests and fuzzing); file name in messages is "<string>". */
int gw_config_load_string(const char *text, gw_config_t *out_config, char *err, size_t err_size);
void gw_config_free(gw_config_t *config);

const gw_upstream_conf_t *gw_config_find_upstream(const gw_config_t *config, const char *name);
/* The upstream a device uses (its own, else "default", else the first). */
const gw_upstream_conf_t *gw_config_device_upstream(const gw_config_t *config,
                                                    const gw_device_conf_t *device);
/* true when the two device entries would need a new upstream session (address, upstream or
 * credentials differ). Used by SIGHUP reload to keep unchanged sessions. */
bool gw_device_conf_session_changed(const gw_device_conf_t *a, const gw_device_conf_t *b);

/* Parses "host:port" or "[v6]:port" into a sockaddr. Returns 0 or -1. */
struct sockaddr_storage;
int gw_parse_host_port(const char *text, struct sockaddr_storage *out_addr, unsigned *out_len);

#endif
