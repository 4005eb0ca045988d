/* libFuzzer target for the SMS PDU codec: every PDU a modem lists (+CMGL/+CMGR) reaches
 * sms_pdu_decode() first, and `lwm2m-gw sms decode HEX` prints it with sms_pdu_describe().
 *
 * Checks beyond "no crash": the decoded strings are terminated inside their arrays, the
 * description has the same length at every buffer size, and an SMS-DELIVER with 8-bit data goes
 * round the encoder: re-sent as an SMS-SUBMIT to its originator (same ports and concatenation),
 * its TP-UD re-wrapped as a DELIVER decodes to the same data. Its concatenation IE is then fed to
 * a reassembly, and its data split and reassembled. The input is also tried as a hex string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csms.h"
#include "sms_pdu.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

static void check_address(const sms_address_t *a) {
  check(strnlen(a->number, sizeof(a->number)) < sizeof(a->number));
}

static void check_describe(const sms_deliver_t *d) {
  static char big[8192], small[64];
  size_t n = sms_pdu_describe(d, big, sizeof(big));
  check(n < sizeof(big) && strlen(big) == n);
  for (size_t size = 0; size <= sizeof(small); size += 13) {
    check(sms_pdu_describe(d, small, size) == n);
    if (size)
      check(strlen(small) == (n < size ? n : size - 1) && memcmp(small, big, strlen(small)) == 0);
  }
}

static bool numeric(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > SMS_ADDR_DIGITS_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
  }
  return true;
}

static bool concat_valid(const sms_concat_t *c) {
  return c->total && c->seq && c->seq <= c->total;
}

/* Re-sends the 8-bit data as an SMS-SUBMIT and reads its TP-UD back as a DELIVER. */
static void round_trip(const sms_deliver_t *d) {
  if (d->originator.ton == SMS_TON_ALPHANUMERIC || !numeric(d->originator.number))
    return;
  sms_submit_t s;
  sms_submit_init(&s, d->originator.number);
  s.national = d->originator.ton != SMS_TON_INTERNATIONAL;
  s.dcs = d->dcs == SMS_DCS_8BIT_CLASS0 || d->dcs == SMS_DCS_8BIT_CLASS1 ? d->dcs : SMS_DCS_8BIT;
  s.validity_min = d->pid * 97u;
  s.status_report = d->status_report;
  s.udh.has_ports = d->udh.has_ports;
  s.udh.ports = d->udh.ports;
  s.udh.has_concat = d->udh.has_concat && concat_valid(&d->udh.concat);
  s.udh.concat = d->udh.concat;
  uint8_t out[SMS_PDU_MAX];
  size_t len, tpdu;
  /* The re-encoded UDH is never longer than the one received, so the data always fits. */
  check(sms_pdu_encode_submit(&s, d->ud, d->ud_len, out, sizeof(out), &len, &tpdu) == SMS_OK);
  check(tpdu == len - 1 && out[0] == 0x00 && (out[1] & 0x03) == 0x01);
  /* The PDU ends with TP-UDL, the UDH sms_udh_encode() writes, and the data. */
  uint8_t udh[16];
  size_t udh_len;
  check(sms_udh_encode(&s.udh, udh, sizeof(udh), &udh_len) == SMS_OK);
  bool has_udh = udh_len != 0;
  size_t ud_octets = udh_len + d->ud_len;
  check(((out[1] & 0x40) != 0) == has_udh && out[len - ud_octets - 1] == ud_octets);
  check(memcmp(out + len - ud_octets, udh, udh_len) == 0);
  check(d->ud_len == 0 || memcmp(out + len - d->ud_len, d->ud, d->ud_len) == 0);

  uint8_t deliver[SMS_PDU_MAX];
  size_t n = 0;
  deliver[n++] = 0x00;
  deliver[n++] = (uint8_t)(0x04 | (has_udh ? 0x40 : 0));
  memcpy(deliver + n, "\x0B\x91\x41\x51\x55\x05\x21\xF5\x00", 9);
  n += 9;
  deliver[n++] = s.dcs;
  memcpy(deliver + n, "\x52\x20\x41\x21\x43\x00\x80", 7);
  n += 7;
  deliver[n++] = (uint8_t)ud_octets;
  memcpy(deliver + n, out + len - ud_octets, ud_octets);
  n += ud_octets;
  sms_deliver_t back;
  check(sms_pdu_decode(deliver, n, &back) == SMS_OK);
  check(back.kind == SMS_KIND_DELIVER && back.alphabet == SMS_ALPHABET_8BIT);
  check(back.ud_len == d->ud_len && memcmp(back.ud, d->ud, d->ud_len) == 0);
  check(back.udh.has_concat == s.udh.has_concat && back.udh.has_ports == s.udh.has_ports);
  if (s.udh.has_concat)
    check(memcmp(&back.udh.concat, &s.udh.concat, sizeof(s.udh.concat)) == 0);
  if (s.udh.has_ports)
    check(memcmp(&back.udh.ports, &s.udh.ports, sizeof(s.udh.ports)) == 0);
}

/* The part goes to a small reassembly; the data is split and joined again. */
static void reassemble(const sms_deliver_t *d) {
  csms_reassembly_t r;
  csms_limits_t limits = {.timeout_ms = 1000, .max_messages = 2, .max_bytes = 200};
  check(csms_reassembly_init(&r, &limits) == SMS_OK);
  const uint8_t *out;
  size_t len;
  if (d->udh.has_concat) {
    csms_result_t res =
        csms_reassembly_add(&r, d->originator.number, &d->udh.concat, d->ud, d->ud_len, 1, &out,
                            &len);
    check(res == (concat_valid(&d->udh.concat) ? (d->udh.concat.total == 1 ? CSMS_COMPLETE
                                                                             : CSMS_STORED)
                                                : CSMS_MALFORMED));
    check(csms_reassembly_add(&r, d->originator.number, &d->udh.concat, d->ud, d->ud_len, 2,
                              &out, &len) == (res == CSMS_STORED ? CSMS_DUPLICATE : res));
  }
  /* Three copies make a payload above 140 octets whenever the data has 47 or more. */
  uint8_t payload[3 * SMS_UD_TEXT_MAX];
  for (int i = 0; i < 3; i++)
    memcpy(payload + i * d->ud_len, d->ud, d->ud_len);
  size_t total = 3 * d->ud_len, parts = csms_split_count(total, d->pid & 1);
  check(parts >= 1);
  csms_reassembly_clear(&r);
  check(csms_reassembly_init(&r, NULL) == SMS_OK);
  for (size_t i = parts; i-- > 0;) {
    csms_part_t part;
    check(csms_split_part(payload, total, d->pid & 1, d->dcs, i, &part) == SMS_OK);
    check(part.has_concat == (parts > 1));
    if (!part.has_concat)
      continue;
    csms_result_t res =
        csms_reassembly_add(&r, "1", &part.concat, part.data, part.len, 10, &out, &len);
    check(res == (i == 0 ? CSMS_COMPLETE : CSMS_STORED));
    if (i == 0)
      check(len == total && memcmp(out, payload, total) == 0);
  }
  csms_reassembly_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static sms_deliver_t d;
  sms_err_t err = sms_pdu_decode(data, size, &d);
  check((unsigned)err < SMS_ERR__COUNT && sms_strerror(err) != NULL);
  if (err == SMS_OK) {
    check_address(&d.smsc);
    check_address(&d.originator);
    check_address(&d.report.recipient);
    check(d.ud_len <= SMS_UD_TEXT_MAX && d.ud[d.ud_len] == '\0');
    check(d.udh.ie_count <= SMS_UDH_MAX_IES);
    check_describe(&d);
    if (d.kind == SMS_KIND_DELIVER && d.alphabet == SMS_ALPHABET_8BIT) {
      check(d.ud_len <= SMS_UD_OCTETS_MAX);
      round_trip(&d);
      reassemble(&d);
    }
  }
  /* The same bytes as the hex text a modem would print. */
  err = sms_pdu_decode_hex((const char *)data, size, &d);
  if (err == SMS_OK)
    check_describe(&d);
  return 0;
}
