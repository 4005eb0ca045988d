/* lwm2m-gw: the `sms` binding (LwM2M Transport 6.8.3 and 5.3).
 *
 * A device is an MSISDN (3GPP 23.003 form, no '+'). CoAP messages travel as 8-bit binary SMS,
 * concatenated (23.040 9.2.3.24.1) when longer than 140 octets. The modem driver (modem.c)
 * hands over each received PDU and deletes it from the modem once this binding returned, so a
 * message is either handled or still on the SIM. Transport 5.3: SMS from numbers that are
 * neither a configured device nor on the allow-list are ignored (counted, not answered).
 * Link policy: no CoAP retransmissions on the SMS side (each costs an SMS and the network
 * already stores and forwards).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "csms.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_random.h"
#include "gw_text.h"
#include "modem.h"
#include "secured_packet.h"
#include "sms_dtls.h"
#include "sms_pdu.h"

#define MOD "sms"

/* Counters of this binding, shown on the metrics endpoint. */
#define SMS_METRICS(X)                                                                         \
  X(received, "SMS received and handled")                                                      \
  X(ignored_senders, "SMS from numbers neither in devices nor in allow (Transport 5.3)")       \
  X(not_deliver, "stored PDUs that were no SMS-DELIVER (status reports ...), skipped")          \
  X(malformed, "SMS PDUs that could not be decoded")                                            \
  X(not_binary, "SMS with text coding instead of 8-bit data, ignored")                          \
  X(messages_in, "CoAP messages received over SMS")                                             \
  X(messages_out, "CoAP messages sent over SMS")                                                \
  X(sms_out, "SMS handed to the modem")                                                         \
  X(send_failures, "SMS the modem could not send")                                              \
  X(unprotected, "SMS refused because the device's SMS security was not applied (5.3.2)")     \
  X(secured_packets_in, "secured packets (31.115) accepted from devices")                       \
  X(secured_packets_out, "secured packets (31.115) sent to devices")                            \
  X(secured_packets_rejected, "secured packets dropped: not correctly protected (5.3.2)")       \
  X(replayed, "secured packets dropped: counter not above the last accepted one")

typedef struct {
#define SMS_METRIC_FIELD(name, help) uint64_t name;
  SMS_METRICS(SMS_METRIC_FIELD)
#undef SMS_METRIC_FIELD
} sms_metrics_t;

/* Secured packet counters of one device (by MSISDN), persisted in gateway.state_dir. */
typedef struct {
  char msisdn[24];
  uint64_t out; /* last counter sent to the device */
  uint64_t in;  /* last counter accepted from it */
} sp_counter_t;

/* A concatenated SMS whose first part carried the CPI (UDH IE 0x70): (sender, reference). */
#define SP_CPI_MARKS 32
typedef struct {
  char msisdn[24];
  uint16_t ref;
  bool used;
} sp_cpi_mark_t;

typedef struct {
  gw_binding_t base;
  gw_binding_env_t env;
  const gw_config_t *config; /* the gateway's running configuration: devices change on reload */
  sms_modem_t *modem;
  sms_dtls_t *dtls; /* DTLS over SMS (Transport 5.3.2.1), for devices with sms_security dtls */
  csms_reassembly_t reassembly;
  gw_timer_t reassembly_timer;
  uint16_t next_ref;
  gw_link_policy_t policy;
  sms_metrics_t metrics;
  sp_counter_t *sp_counters; /* secured packets: per device counters */
  size_t sp_count;
  char *sp_state_file;       /* NULL when gateway.state_dir is unusable: counters in memory only */
  bool sp_state_error_logged;
  sp_cpi_mark_t sp_marks[SP_CPI_MARKS];
  size_t sp_next_mark;
} sms_binding_t;

static const gw_binding_ops_t *ops_self(void);

/* ---- who may talk to us ---- */

static const gw_device_conf_t *device_by_msisdn(const gw_config_t *config, const char *msisdn) {
  for (size_t i = 0; i < config->device_count; i++) {
    const char *m = config->devices[i].msisdn;
    if (m && strcmp(m, msisdn) == 0) /* both in 23.003 form: conf/ drops a '+' */
      return &config->devices[i];
  }
  return NULL;
}

static bool sender_allowed(const sms_binding_t *b, const char *msisdn) {
  if (device_by_msisdn(b->config, msisdn))
    return true;
  const gw_sms_conf_t *conf = &b->config->bindings.sms;
  for (size_t i = 0; i < conf->allow_count; i++)
    if (strcmp(conf->allow[i], msisdn) == 0)
      return true;
  return false;
}

/* ---- secured packets (Transport 5.3.2.1.3): counters ---- */

#define SP_STATE_FILE "sms_secured_packet_counters"

static void sp_state_error(sms_binding_t *b, const char *what, const char *file, int err) {
  if (b->sp_state_error_logged)
    return;
  b->sp_state_error_logged = true;
  GW_ERR(MOD,
         "secured packets: cannot %s \"%s\" (%s): counters are kept in memory only, so a restart "
         "may reuse an outgoing counter or accept a replayed packet; fix gateway.state_dir",
         what, file, strerror(err));
}

/* Writes all counters to the state file: a temporary file, then rename (atomic). */
static void sp_state_save(sms_binding_t *b) {
  if (!b->sp_state_file)
    return;
  size_t n = strlen(b->sp_state_file) + 8;
  char *tmp = malloc(n);
  if (!tmp)
    return;
  snprintf(tmp, n, "%s.tmp", b->sp_state_file);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    sp_state_error(b, "write", tmp, errno);
    if (fd >= 0)
      close(fd);
    free(tmp);
    return;
  }
  fprintf(f, "# lwm2m-gw secured packet counters: msisdn last-sent last-accepted\n");
  for (size_t i = 0; i < b->sp_count; i++)
    fprintf(f, "%s %" PRIu64 " %" PRIu64 "\n", b->sp_counters[i].msisdn, b->sp_counters[i].out,
            b->sp_counters[i].in);
  bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  int err = errno;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, b->sp_state_file) != 0) {
    sp_state_error(b, "write", ok ? b->sp_state_file : tmp, ok ? errno : err);
    unlink(tmp);
  }
  free(tmp);
}

static sp_counter_t *sp_counter(sms_binding_t *b, const char *msisdn) {
  for (size_t i = 0; i < b->sp_count; i++)
    if (strcmp(b->sp_counters[i].msisdn, msisdn) == 0)
      return &b->sp_counters[i];
  if (strlen(msisdn) >= sizeof(b->sp_counters[0].msisdn))
    return NULL;
  sp_counter_t *grown = realloc(b->sp_counters, (b->sp_count + 1) * sizeof(*grown));
  if (!grown)
    return NULL;
  b->sp_counters = grown;
  sp_counter_t *c = &b->sp_counters[b->sp_count++];
  memset(c, 0, sizeof(*c));
  snprintf(c->msisdn, sizeof(c->msisdn), "%s", msisdn);
  return c;
}

/* Loads the counters saved by an earlier run; a missing file is a first start. */
static void sp_state_load(sms_binding_t *b, const char *state_dir) {
  if (!state_dir || !*state_dir)
    return;
  size_t n = strlen(state_dir) + sizeof(SP_STATE_FILE) + 2;
  b->sp_state_file = malloc(n);
  if (!b->sp_state_file)
    return;
  snprintf(b->sp_state_file, n, "%s/%s", state_dir, SP_STATE_FILE);
  if (access(state_dir, W_OK) != 0) {
    sp_state_error(b, "use the state directory of", state_dir, errno);
    free(b->sp_state_file);
    b->sp_state_file = NULL;
    return;
  }
  FILE *f = fopen(b->sp_state_file, "r");
  if (!f) {
    if (errno != ENOENT)
      sp_state_error(b, "read", b->sp_state_file, errno);
    return;
  }
  char line[128];
  while (fgets(line, sizeof(line), f)) {
    char msisdn[24];
    uint64_t out, in;
    if (line[0] == '#' || sscanf(line, "%23s %" SCNu64 " %" SCNu64, msisdn, &out, &in) != 3)
      continue;
    sp_counter_t *c = sp_counter(b, msisdn);
    if (c) {
      c->out = out;
      c->in = in;
    }
  }
  fclose(f);
}

/* The device's keys, parsed from its configuration. */
static bool sp_keys_of(const gw_device_conf_t *d, sms_sp_keys_t *keys) {
  if (!d || d->sms_security != GW_SMS_SECURITY_SECURED_PACKET || !d->has_sms_key_params)
    return false;
  sms_sp_err_t err = sms_sp_keys_parse(d->sms_key_params, sizeof(d->sms_key_params),
                                       d->sms_secret, d->sms_secret_len, keys);
  if (err != SMS_SP_OK) {
    GW_WARN(MOD, "device %s: unusable secured packet keys: %s", d->endpoint,
            sms_sp_strerror(err));
    return false;
  }
  return true;
}

/* A concatenated SMS whose first part carried the CPI. */
static void sp_mark_cpi(sms_binding_t *b, const char *msisdn, uint16_t ref) {
  sp_cpi_mark_t *m = &b->sp_marks[b->sp_next_mark++ % SP_CPI_MARKS];
  snprintf(m->msisdn, sizeof(m->msisdn), "%s", msisdn);
  m->ref = ref;
  m->used = true;
}

static bool sp_take_cpi_mark(sms_binding_t *b, const char *msisdn, uint16_t ref) {
  for (size_t i = 0; i < SP_CPI_MARKS; i++) {
    sp_cpi_mark_t *m = &b->sp_marks[i];
    if (m->used && m->ref == ref && strcmp(m->msisdn, msisdn) == 0) {
      m->used = false;
      return true;
    }
  }
  return false;
}

/* ---- receiving ---- */

static void arm_reassembly_timer(sms_binding_t *b) {
  uint64_t due = csms_reassembly_next_expiry(&b->reassembly);
  if (due == UINT64_MAX) {
    gw_timer_stop(b->env.loop, &b->reassembly_timer);
    return;
  }
  uint64_t now = gw_now_ms();
  gw_timer_start(b->env.loop, &b->reassembly_timer, due > now ? due - now : 0);
}

static void on_reassembly_timer(gw_loop_t *loop, void *arg) {
  (void)loop;
  sms_binding_t *b = arg;
  uint64_t missing_before = b->reassembly.counters.parts_missing;
  size_t expired = csms_reassembly_check(&b->reassembly, gw_now_ms());
  if (expired)
    GW_WARN(MOD, "%zu concatenated SMS expired incomplete (%llu parts missing)", expired,
            (unsigned long long)(b->reassembly.counters.parts_missing - missing_before));
  arm_reassembly_timer(b);
}

/* A CoAP message for the core. */
static void deliver_plaintext(sms_binding_t *b, const char *msisdn, const uint8_t *data,
                              size_t len) {
  gw_baddr_t addr;
  snprintf(addr.text, sizeof(addr.text), "%s", msisdn);
  b->metrics.messages_in++;
  b->env.on_message(b->env.core, &b->base, &addr, data, len);
}

static gw_sms_security_t security_of(const sms_binding_t *b, const char *msisdn) {
  const gw_device_conf_t *d = device_by_msisdn(b->config, msisdn);
  return d ? d->sms_security : GW_SMS_SECURITY_NONE;
}

/* A Command Packet from a device in secured mode: checked, counter judged and stored, then its
 * CoAP message goes to the core. Any failure: dropped, counted, never answered (5.3.2). */
static void deliver_secured(sms_binding_t *b, const char *msisdn, const uint8_t *pkt,
                            size_t len) {
  sms_sp_keys_t keys;
  if (!sp_keys_of(device_by_msisdn(b->config, msisdn), &keys)) {
    b->metrics.secured_packets_rejected++;
    return;
  }
  uint8_t *plain = malloc(len ? len : 1);
  if (!plain) {
    sms_sp_keys_clear(&keys);
    return;
  }
  size_t plain_len = 0;
  uint64_t counter = 0;
  sms_sp_err_t err = sms_sp_decode(&keys, pkt, len, plain, len, &plain_len, &counter);
  sp_counter_t *c = err == SMS_SP_OK ? sp_counter(b, msisdn) : NULL;
  const uint8_t *coap = NULL;
  size_t coap_len = 0;
  if (err != SMS_SP_OK) {
    b->metrics.secured_packets_rejected++;
    GW_INFO_LIMITED(MOD, "%s: secured packet dropped: %s", msisdn, sms_sp_strerror(err));
  } else if (!c) {
    b->metrics.secured_packets_rejected++;
  } else if (!sms_sp_counter_acceptable(keys.spi, c->in, counter)) {
    b->metrics.replayed++;
    GW_INFO_LIMITED(MOD, "%s: secured packet dropped: counter %" PRIu64 " not above %" PRIu64, msisdn,
            counter, c->in);
  } else if ((err = sms_sp_tlv_unwrap(SMS_SP_TAG_COAP, plain, plain_len, &coap, &coap_len)) !=
             SMS_SP_OK) {
    /* authentic but not a CoAP TLV: the counter is used up all the same */
    c->in = counter;
    sp_state_save(b);
    b->metrics.secured_packets_rejected++;
    GW_INFO_LIMITED(MOD, "%s: secured packet dropped: %s", msisdn, sms_sp_strerror(err));
  } else {
    c->in = counter;
    sp_state_save(b);
    b->metrics.secured_packets_in++;
    deliver_plaintext(b, msisdn, coap, coap_len);
  }
  sms_sp_keys_clear(&keys);
  explicit_bzero(plain, len ? len : 1);
  free(plain);
}

/* One reassembled SMS payload: plain CoAP, or protected as the device's configuration says.
 * cpi: the SMS (its first part) carried the Command Packet Identifier, UDH IE 0x70.
 * Transport 5.3.2: what is not correctly protected is discarded with no reply. */
static void deliver(sms_binding_t *b, const char *msisdn, const uint8_t *data, size_t len,
                    bool cpi) {
  switch (security_of(b, msisdn)) {
  case GW_SMS_SECURITY_DTLS:
    sms_dtls_input(b->dtls, msisdn, data, len);
    return;
  case GW_SMS_SECURITY_SECURED_PACKET:
    if (!cpi) {
      b->metrics.unprotected++;
      GW_INFO_LIMITED(MOD, "%s: SMS without a secured packet header dropped", msisdn);
      return;
    }
    deliver_secured(b, msisdn, data, len);
    return;
  case GW_SMS_SECURITY_NONE:
    if (cpi) { /* a secured packet from a device not configured for them: not CoAP */
      b->metrics.unprotected++;
      return;
    }
    deliver_plaintext(b, msisdn, data, len);
    return;
  }
}

/* ---- parts of concatenated SMS in the gateway's state ----
 * Each part is deleted from the modem once read; until its message is whole and handed on, the
 * part lives in the gateway's state (issue 11: a SIGKILL mid-message lost the message), under
 * "csms/SENDER/REF/TOTAL/SEQ" (REF with a w for a 16-bit reference) and the value: one octet
 * with the CPI flag of a first part (5.3.2.1.3), then the part's user data. */

#define PART_KEY_MAX (sizeof("csms///w65535/255/255") + CSMS_SENDER_MAX)

static void part_key(char out[PART_KEY_MAX], const char *sender, uint16_t ref, bool ref16,
                     uint8_t total, uint8_t seq) {
  snprintf(out, PART_KEY_MAX, "csms/%s/%s%u/%03u/%03u", sender, ref16 ? "w" : "", ref, total,
           seq);
}

static void part_keep(sms_binding_t *b, const char *sender, const sms_concat_t *c, bool cpi,
                      const uint8_t *ud, size_t len) {
  if (!b->env.state_put)
    return;
  uint8_t value[1 + CSMS_SINGLE_MAX];
  size_t n = len < CSMS_SINGLE_MAX ? len : CSMS_SINGLE_MAX; /* a part's user data fits one SMS */
  value[0] = cpi;
  memcpy(value + 1, ud, n);
  char key[PART_KEY_MAX];
  part_key(key, sender, c->ref, c->ref16, c->total, c->seq);
  /* durable before the modem deletes the part */
  b->env.state_put(b->env.core, &b->base, key, value, 1 + n, true);
}

static void parts_forget(sms_binding_t *b, const char *sender, uint16_t ref, uint8_t total,
                         bool ref16) {
  if (!b->env.state_del)
    return;
  char key[PART_KEY_MAX];
  for (unsigned seq = 1; seq <= total; seq++) {
    part_key(key, sender, ref, ref16, total, (uint8_t)seq);
    b->env.state_del(b->env.core, &b->base, key);
  }
}

static void on_parts_dropped(void *arg, const char *sender, uint16_t ref, uint8_t total,
                             bool ref16) {
  parts_forget(arg, sender, ref, total, ref16);
}

/* A concatenated part: joined with its siblings before it reaches the core. */
static void receive_part_of(sms_binding_t *b, const char *sender, const sms_concat_t *concat,
                            bool cpi, const uint8_t *ud, size_t ud_len, bool keep) {
  const uint8_t *joined = NULL;
  size_t joined_len = 0;
  /* the CPI travels in the first part only: remember it by (sender, reference) */
  if (cpi && concat->seq == 1)
    sp_mark_cpi(b, sender, concat->ref);
  csms_result_t r = csms_reassembly_add(&b->reassembly, sender, concat, ud, ud_len, gw_now_ms(),
                                        &joined, &joined_len);
  switch (r) {
  case CSMS_COMPLETE:
    /* Its kept parts go in the same commit that keeps the whole message in the core. */
    parts_forget(b, sender, concat->ref, concat->total, concat->ref16);
    deliver(b, sender, joined, joined_len, sp_take_cpi_mark(b, sender, concat->ref));
    break;
  case CSMS_STORED:
    if (keep)
      part_keep(b, sender, concat, cpi && concat->seq == 1, ud, ud_len);
    break;
  case CSMS_DUPLICATE:
    GW_DEBUG(MOD, "%s: duplicate part %u/%u dropped", sender, concat->seq, concat->total);
    break;
  default:
    GW_WARN_LIMITED(MOD, "%s: concatenated part %u/%u dropped (%s)", sender, concat->seq,
                    concat->total,
                    r == CSMS_MALFORMED ? "malformed" : r == CSMS_TOO_BIG ? "over the memory limit"
                                                                         : "out of memory");
    break;
  }
  arm_reassembly_timer(b);
}

static void receive_part(sms_binding_t *b, const sms_deliver_t *sms) {
  receive_part_of(b, sms->originator.number, &sms->udh.concat,
                  sms->udh.has_security && sms->udh.security_iei == SMS_IEI_CPI, sms->ud,
                  sms->ud_len, true);
}

/* A part kept by an earlier run (binding.h restore): back into the reassembly. */
static void sms_restore(gw_binding_t *binding, const char *key, const void *value, size_t len) {
  sms_binding_t *b = (sms_binding_t *)binding;
  char sender[CSMS_SENDER_MAX];
  char ref_text[8];
  unsigned total, seq;
  const uint8_t *v = value;
  if (len < 1 || sscanf(key, "csms/%47[^/]/%7[^/]/%u/%u", sender, ref_text, &total, &seq) != 4 ||
      total == 0 || total > 255 || seq == 0 || seq > total) {
    b->env.state_del(b->env.core, binding, key);
    return;
  }
  bool ref16 = ref_text[0] == 'w';
  sms_concat_t c = {.ref = (uint16_t)strtoul(ref_text + ref16, NULL, 10), .total = (uint8_t)total,
                    .seq = (uint8_t)seq, .ref16 = ref16};
  receive_part_of(b, sender, &c, v[0] != 0, v + 1, len - 1, false);
}

static void reject(sms_binding_t *b, const char *from, const char *why) {
  gw_baddr_t addr;
  snprintf(addr.text, sizeof(addr.text), "%s", from ? from : "?");
  b->env.on_rejected(b->env.core, &b->base, &addr, why);
}

static void on_modem_pdu(void *arg, const uint8_t *pdu, size_t len) {
  sms_binding_t *b = arg;
  sms_deliver_t *sms = malloc(sizeof(*sms));
  if (!sms)
    return;
  sms_err_t err = sms_pdu_decode(pdu, len, sms);
  b->metrics.received++;
  if (err != SMS_OK) {
    b->metrics.malformed++;
    reject(b, NULL, sms_strerror(err));
  } else if (sms->kind != SMS_KIND_DELIVER) {
    b->metrics.not_deliver++; /* status reports and stored SUBMITs: nothing to relay */
  } else if (sms->originator.ton == SMS_TON_ALPHANUMERIC ||
             !sender_allowed(b, sms->originator.number)) {
    b->metrics.ignored_senders++;
    GW_DEBUG(MOD, "SMS from %s ignored: not a device nor allowed", sms->originator.number);
  } else if (sms->alphabet != SMS_ALPHABET_8BIT) {
    b->metrics.not_binary++;
    reject(b, sms->originator.number, "text SMS, not 8-bit binary CoAP");
  } else if (sms->udhi && sms->udh.has_concat && b->config->bindings.sms.concatenated) {
    receive_part(b, sms);
  } else {
    deliver(b, sms->originator.number, sms->ud, sms->ud_len,
            sms->udhi && sms->udh.has_security && sms->udh.security_iei == SMS_IEI_CPI);
  }
  free(sms);
}

static void on_modem_sent(void *arg, uint32_t send_id, bool ok, int message_reference) {
  sms_binding_t *b = arg;
  if (ok)
    return;
  b->metrics.send_failures++;
  GW_WARN(MOD, "the modem could not send SMS #%u", send_id);
  (void)message_reference;
}

static void on_modem_state(void *arg, sms_modem_state_t state) {
  (void)arg;
  static const char *const names[] = {"closed", "initialising", "ready", "failed"};
  GW_NOTICE(MOD, "modem %s", names[state]);
}

/* ---- sending ---- */

static int send_submit(sms_binding_t *b, const char *to, const sms_submit_t *submit,
                       const uint8_t *data, size_t len) {
  uint8_t pdu[200];
  size_t pdu_len = 0, tpdu_len = 0;
  sms_err_t err = sms_pdu_encode_submit(submit, data, len, pdu, sizeof(pdu), &pdu_len, &tpdu_len);
  if (err != SMS_OK) {
    GW_WARN(MOD, "cannot encode an SMS to %s: %s", to, sms_strerror(err));
    return GW_ERR_INVAL;
  }
  uint32_t id;
  int rc = sms_modem_send(b->modem, pdu, pdu_len, tpdu_len, &id);
  if (rc == GW_OK)
    b->metrics.sms_out++;
  return rc;
}

static int send_part(sms_binding_t *b, const char *to, const uint8_t *data, size_t len,
                     const csms_part_t *part) {
  sms_submit_t submit;
  sms_submit_init(&submit, to);
  if (part && part->has_concat) {
    submit.udh.has_concat = true;
    submit.udh.concat = part->concat;
  }
  return send_submit(b, to, &submit, data, len);
}

/* A CoAP message to a device in secured mode (5.3.2.1.3): BER-TLV, Command Packet with the next
 * counter (stored before it leaves), then TP-PID 7F / TP-DCS F6 SMS, the CPI in the first. */
static int send_secured(sms_binding_t *b, const char *to, const uint8_t *data, size_t len) {
  sms_sp_keys_t keys;
  if (!sp_keys_of(device_by_msisdn(b->config, to), &keys))
    return GW_ERR_UNSUPPORTED;
  sp_counter_t *c = sp_counter(b, to);
  uint8_t *tlv = malloc(len + 4);
  size_t tlv_len = 0, pkt_cap = sms_sp_encoded_len(&keys, len + 4), pkt_len = 0;
  uint8_t *pkt = pkt_cap ? malloc(pkt_cap) : NULL;
  int rc = GW_OK;
  if (!c || !tlv || !pkt) {
    rc = pkt_cap ? GW_ERR_NOMEM : GW_ERR_TOOBIG;
    goto out;
  }
  if (c->out >= SMS_SP_COUNTER_MAX) {
    GW_ERR(MOD, "%s: secured packet counter exhausted: provision new keys", to);
    rc = GW_ERR_UNSUPPORTED;
    goto out;
  }
  sms_sp_err_t err = sms_sp_tlv_wrap(SMS_SP_TAG_COAP, data, len, tlv, len + 4, &tlv_len);
  if (err == SMS_SP_OK)
    err = sms_sp_encode(&keys, c->out + 1, tlv, tlv_len, pkt, pkt_cap, &pkt_len);
  if (err != SMS_SP_OK) {
    GW_WARN(MOD, "%s: cannot make a secured packet: %s", to, sms_sp_strerror(err));
    rc = err == SMS_SP_ERR_TOO_LONG ? GW_ERR_TOOBIG : GW_ERR_INVAL;
    goto out;
  }
  size_t parts = sms_sp_sms_count(pkt_len, false);
  if (parts == 0 || (parts > 1 && !b->config->bindings.sms.concatenated)) {
    rc = GW_ERR_TOOBIG;
    goto out;
  }
  c->out++; /* used up now, kept across restarts: never sent twice */
  sp_state_save(b);
  uint16_t ref = b->next_ref++ & 0xff;
  for (size_t i = 0; i < parts && rc == GW_OK; i++) {
    sms_sp_part_t part;
    if (sms_sp_sms_part(pkt, pkt_len, false, ref, i, &part) != SMS_SP_OK) {
      rc = GW_ERR_INVAL;
      break;
    }
    sms_submit_t submit;
    sms_sp_submit_init(&submit, to);
    submit.udh = part.udh;
    rc = send_submit(b, to, &submit, part.data, part.len);
  }
  if (rc == GW_OK) {
    b->metrics.messages_out++;
    b->metrics.secured_packets_out++;
  }
out:
  sms_sp_keys_clear(&keys);
  if (tlv)
    explicit_bzero(tlv, len + 4);
  free(tlv);
  free(pkt);
  return rc;
}

/* One payload to a number: a single SMS up to 140 octets, else concatenated SMS. */
static int send_payload(sms_binding_t *b, const char *to, const uint8_t *data, size_t len) {
  if (len <= CSMS_SINGLE_MAX) {
    b->metrics.messages_out++;
    return send_part(b, to, data, len, NULL);
  }
  size_t parts = csms_split_count(len, false);
  if (!b->config->bindings.sms.concatenated || parts == 0)
    return GW_ERR_TOOBIG;
  uint16_t ref = b->next_ref++ & 0xff;
  for (size_t i = 0; i < parts; i++) {
    csms_part_t part;
    if (csms_split_part(data, len, false, ref, i, &part) != SMS_OK)
      return GW_ERR_INVAL;
    int rc = send_part(b, to, part.data, part.len, &part);
    if (rc != GW_OK)
      return rc;
  }
  b->metrics.messages_out++;
  return GW_OK;
}

static int sms_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                    size_t len) {
  sms_binding_t *b = (sms_binding_t *)binding;
  switch (security_of(b, to->text)) {
  case GW_SMS_SECURITY_DTLS:
    /* No established session: refused, and the server gets 5.03 (the device must first
     * complete the handshake it starts). */
    return sms_dtls_write(b->dtls, to->text, data, len);
  case GW_SMS_SECURITY_SECURED_PACKET:
    return send_secured(b, to->text, data, len);
  case GW_SMS_SECURITY_NONE:
    break;
  }
  return send_payload(b, to->text, data, len);
}

/* ---- DTLS over SMS (Transport 5.3.2.1) ---- */

static int dtls_send_datagram(void *arg, const char *msisdn, const uint8_t *data, size_t len) {
  return send_payload(arg, msisdn, data, len);
}

static void dtls_on_plaintext(void *arg, const char *msisdn, const uint8_t *data, size_t len) {
  deliver_plaintext(arg, msisdn, data, len);
}

/* The PSK of the device with this MSISDN, if the identity it offers is its own. */
static bool dtls_psk_lookup(void *arg, const char *msisdn, const uint8_t *identity,
                            size_t identity_len, uint8_t *out_key, size_t *out_key_len) {
  const sms_binding_t *b = arg;
  const gw_device_conf_t *d = device_by_msisdn(b->config, msisdn);
  if (!d || d->sms_security != GW_SMS_SECURITY_DTLS || !d->sms_psk.identity ||
      strlen(d->sms_psk.identity) != identity_len ||
      memcmp(d->sms_psk.identity, identity, identity_len) != 0 ||
      d->sms_psk.key_len > *out_key_len)
    return false;
  memcpy(out_key, d->sms_psk.key, d->sms_psk.key_len);
  *out_key_len = d->sms_psk.key_len;
  return true;
}

static int create_dtls(sms_binding_t *b, const gw_sms_conf_t *conf) {
  sms_dtls_conf_t dconf;
  sms_dtls_conf_default(&dconf);
  /* Records fit one SMS, or concatenated SMS when that is on (Transport 5.3.2.1.1). */
  dconf.mtu = conf->concatenated ? conf->dtls_mtu : CSMS_SINGLE_MAX;
  dconf.cookies = conf->dtls_cookies;
  dconf.handshake_min_ms = conf->dtls_handshake_min_ms;
  dconf.handshake_max_ms = conf->dtls_handshake_max_ms;
  sms_dtls_callbacks_t cb = {.arg = b, .send_datagram = dtls_send_datagram,
                             .on_plaintext = dtls_on_plaintext, .psk_lookup = dtls_psk_lookup};
  return sms_dtls_new(b->env.loop, &dconf, &cb, &b->dtls);
}

/* ---- the binding's table ---- */

static bool sms_enabled(const gw_config_t *config) { return config->bindings.sms.enabled; }

static int sms_create(const gw_config_t *config, const gw_binding_env_t *env,
                      gw_binding_t **out_binding) {
  const gw_sms_conf_t *conf = &config->bindings.sms;
  sms_binding_t *b = calloc(1, sizeof(*b));
  if (!b)
    return GW_ERR_NOMEM;
  b->base.ops = ops_self();
  b->env = *env;
  b->config = config;
  b->next_ref = gw_random_u16();
  gw_timer_init(&b->reassembly_timer, on_reassembly_timer, b);
  csms_limits_t limits;
  csms_limits_default(&limits);
  limits.timeout_ms = conf->reassembly_timeout_ms;
  b->policy = (gw_link_policy_t){.max_retransmit = 0,
                                 .ack_timeout_ms = 2000,
                                 .mtu = conf->concatenated ? CSMS_PAYLOAD_MAX : CSMS_SINGLE_MAX,
                                 .sleepy = false,
                                 /* this binding admits only devices and allowed
                                  * numbers itself (Transport 5.3) */
                                 .accept_unknown = true,
                                 .costly = true,
                                 .accepts_on_receipt = true, /* deleted once handled */
                                 .binding_letter = 'S',
                                 /* a UDP client behind an SMS modem says b=U, yet it is
                                  * reached by SMS (issue 11) */
                                 .letter_implied = true};
  sms_modem_conf_t mconf = {.port = conf->modem,
                            .baud = conf->baud,
                            .pin = conf->pin,
                            .smsc = conf->smsc,
                            .storage = conf->storage,
                            .sweep_interval_ms = conf->sweep_interval_ms,
                            .send_interval_ms = conf->send_interval_ms};
  sms_modem_callbacks_t callbacks = {.arg = b, .on_pdu = on_modem_pdu, .on_sent = on_modem_sent,
                                     .on_state = on_modem_state};
  if (csms_reassembly_init(&b->reassembly, &limits) != SMS_OK || create_dtls(b, conf) != GW_OK ||
      sms_modem_new(env->loop, &mconf, &callbacks, &b->modem) != GW_OK) {
    sms_dtls_free(&b->dtls);
    csms_reassembly_clear(&b->reassembly);
    free(b);
    return GW_ERR_NOMEM;
  }
  b->reassembly.on_dropped = on_parts_dropped;
  b->reassembly.dropped_arg = b;
  sp_state_load(b, config->gateway.state_dir);
  for (size_t i = 0; i < config->device_count; i++) {
    const gw_device_conf_t *d = &config->devices[i];
    sms_sp_keys_t keys;
    if (d->sms_security != GW_SMS_SECURITY_SECURED_PACKET || !sp_keys_of(d, &keys))
      continue;
    if (!sms_sp_keys_lwm2m_profile(&keys))
      GW_WARN(MOD, "device %s: secured packet keys without ciphering or without the counter "
                   "mode \"higher\" do not follow LwM2M 5.3.2.1.3", d->endpoint);
    sms_sp_keys_clear(&keys);
  }
  *out_binding = &b->base;
  return GW_OK;
}

static int sms_start(gw_binding_t *binding) {
  sms_binding_t *b = (sms_binding_t *)binding;
  GW_NOTICE(MOD, "modem on %s", b->config->bindings.sms.modem);
  return sms_modem_start(b->modem);
}

static void sms_stop(gw_binding_t *binding) {
  sms_binding_t *b = (sms_binding_t *)binding;
  gw_timer_stop(b->env.loop, &b->reassembly_timer);
}

static void sms_free(gw_binding_t **binding) {
  sms_binding_t *b = (sms_binding_t *)*binding;
  if (!b)
    return;
  sms_stop(&b->base);
  sms_modem_free(&b->modem);
  sms_dtls_free(&b->dtls);
  csms_reassembly_clear(&b->reassembly);
  free(b->sp_counters);
  free(b->sp_state_file);
  free(b);
  *binding = NULL;
}

static const gw_link_policy_t *sms_policy(const gw_binding_t *binding) {
  return &((const sms_binding_t *)binding)->policy;
}

/* SIGHUP changed or removed the device: a DTLS session under its old key must not live on. */
static void sms_forget_device(gw_binding_t *binding, const gw_baddr_t *addr) {
  sms_dtls_forget(((sms_binding_t *)binding)->dtls, addr->text);
}

static const gw_device_conf_t *sms_lookup(const gw_binding_t *binding, const gw_config_t *config,
                                          const gw_baddr_t *addr) {
  (void)binding;
  return device_by_msisdn(config, addr->text);
}

/* Prometheus text of this binding's counters and the modem's health. */
static size_t sms_format_metrics(const gw_binding_t *binding, char *out, size_t out_size) {
  const sms_binding_t *b = (const sms_binding_t *)binding;
  const sms_modem_status_t *st = sms_modem_status(b->modem);
  const csms_counters_t *c = &b->reassembly.counters;
  size_t used = 0;
#define APPEND(...) gw_appendf(out, out_size, &used, __VA_ARGS__)
#define SMS_METRIC_TEXT(name, help) \
  gw_append_counter(out, out_size, &used, "sms", #name, help, b->metrics.name);
  SMS_METRICS(SMS_METRIC_TEXT)
  APPEND("lwm2m_gw_sms_concat_completed_total %llu\n", (unsigned long long)c->completed);
  APPEND("lwm2m_gw_sms_concat_duplicates_total %llu\n", (unsigned long long)c->duplicates);
  APPEND("lwm2m_gw_sms_concat_expired_total %llu\n", (unsigned long long)c->expired);
  APPEND("lwm2m_gw_sms_concat_parts_missing_total %llu\n", (unsigned long long)c->parts_missing);
  APPEND("lwm2m_gw_sms_concat_evicted_total %llu\n", (unsigned long long)c->evicted);
  APPEND("lwm2m_gw_sms_modem_ready %d\n", st->state == SMS_MODEM_READY);
  APPEND("lwm2m_gw_sms_modem_rssi %d\n", st->rssi);
  APPEND("lwm2m_gw_sms_modem_registration %d\n", st->cereg > 0 ? st->cereg : st->creg);
  APPEND("lwm2m_gw_sms_modem_storage_used %d\n", st->storage_used);
  APPEND("lwm2m_gw_sms_modem_reopens_total %llu\n", (unsigned long long)st->reopens);
  APPEND("lwm2m_gw_sms_send_queue %zu\n", sms_modem_send_queue_length(b->modem));
  const sms_dtls_counters_t *d = sms_dtls_counters(b->dtls);
  APPEND("lwm2m_gw_sms_dtls_handshakes_total %llu\n", (unsigned long long)d->handshakes);
  APPEND("lwm2m_gw_sms_dtls_resumed_total %llu\n", (unsigned long long)d->resumed);
  APPEND("lwm2m_gw_sms_dtls_failed_handshakes_total %llu\n",
         (unsigned long long)d->failed_handshakes);
  APPEND("lwm2m_gw_sms_dtls_bad_records_total %llu\n", (unsigned long long)d->bad_records);
  APPEND("lwm2m_gw_sms_dtls_no_session_total %llu\n", (unsigned long long)d->no_session);
  APPEND("lwm2m_gw_sms_dtls_datagrams_out_total %llu\n", (unsigned long long)d->datagrams_out);
#undef SMS_METRIC_TEXT
#undef APPEND
  return used;
}

const gw_binding_ops_t gw_sms_binding = {
    .name = "sms",
    .enabled = sms_enabled,
    .create = sms_create,
    .start = sms_start,
    .send = sms_send,
    .stop = sms_stop,
    .free = sms_free,
    .policy = sms_policy,
    .lookup_device = sms_lookup,
    .forget_device = sms_forget_device,
    .restore = sms_restore,
    .format_metrics = sms_format_metrics,
};

static const gw_binding_ops_t *ops_self(void) { return &gw_sms_binding; }
