/* Unit tests of the SMS PDU codec: hex, SMS-DELIVER decoding (3GPP TS 23.040 9.2.2.1) with the
 * alphabets of 23.038, the UDH (9.2.3.24), skipped kinds, every malformed-input error, SMS-SUBMIT
 * encoding (9.2.2.2) checked against hand-computed octets and a test-only SUBMIT parser, and the
 * describer. Vectors: the classic "How are you?" deliver, the "hellohello" packing of 23.038
 * (as in the GSM 03.38 literature), a WAP push UDH (WAP-259 WDP port 2948), and PDUs built here
 * octet by octet with the arithmetic in comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sms_pdu.h"

static void decode_hex_ok(const char *hex, sms_deliver_t *out) {
  sms_err_t err = sms_pdu_decode_hex(hex, strlen(hex), out);
  if (err != SMS_OK)
    fail_msg("decode %s: %s", hex, sms_strerror(err));
}

static sms_err_t decode_hex(const char *hex) {
  static sms_deliver_t d;
  return sms_pdu_decode_hex(hex, strlen(hex), &d);
}

/* ---- hex ---- */

static void test_hex_decode(void **state) {
  (void)state;
  uint8_t out[8];
  size_t len = 99;
  assert_int_equal(sms_hex_decode("00aBcD0f", 8, out, sizeof(out), &len), SMS_OK);
  assert_int_equal(len, 4);
  assert_memory_equal(out, "\x00\xAB\xCD\x0F", 4);
  assert_int_equal(sms_hex_decode("", 0, out, sizeof(out), &len), SMS_OK);
  assert_int_equal(len, 0);
  assert_int_equal(sms_hex_decode("ABC", 3, out, sizeof(out), &len), SMS_ERR_HEX_ODD_LENGTH);
  assert_int_equal(sms_hex_decode("0G", 2, out, sizeof(out), &len), SMS_ERR_HEX_DIGIT);
  assert_int_equal(sms_hex_decode("0 ", 2, out, sizeof(out), &len), SMS_ERR_HEX_DIGIT);
  assert_int_equal(sms_hex_decode("00\r\n", 4, out, sizeof(out), &len), SMS_ERR_HEX_DIGIT);
  assert_int_equal(sms_hex_decode("000102", 6, out, 2, &len), SMS_ERR_BUFFER_TOO_SMALL);
  assert_int_equal(sms_hex_decode(NULL, 2, out, 2, &len), SMS_ERR_ARG);
}

static void test_hex_encode(void **state) {
  (void)state;
  char out[9];
  assert_int_equal(sms_hex_encode((const uint8_t *)"\x00\xAB\xCD\x0F", 4, out, 9), SMS_OK);
  assert_string_equal(out, "00ABCD0F");
  assert_int_equal(sms_hex_encode((const uint8_t *)"\x00\xAB\xCD\x0F", 4, out, 8),
                   SMS_ERR_BUFFER_TOO_SMALL);
  assert_string_equal(out, "");
  assert_int_equal(sms_hex_encode(NULL, 0, out, 1), SMS_OK);
  assert_string_equal(out, "");
}

/* ---- SMS-DELIVER ---- */

/* The classic example: SMSC +31624000000, "How are you?" from +31641600986, GSM 7-bit. */
#define CLASSIC "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"

static void test_deliver_classic(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok(CLASSIC, &d);
  assert_int_equal(d.kind, SMS_KIND_DELIVER);
  assert_true(d.has_smsc);
  assert_int_equal(d.smsc.toa, 0x91);
  assert_string_equal(d.smsc.number, "31624000000"); /* 11 digits, F filler dropped */
  assert_int_equal(d.first_octet, 0x04);
  assert_false(d.more_messages); /* TP-MMS 1: no more messages */
  assert_false(d.udhi);
  assert_int_equal(d.originator.toa, SMS_TOA_INTERNATIONAL);
  assert_int_equal(d.originator.ton, SMS_TON_INTERNATIONAL);
  assert_string_equal(d.originator.number, "31641600986");
  assert_int_equal(d.pid, 0x00);
  assert_int_equal(d.dcs, 0x00);
  assert_int_equal(d.alphabet, SMS_ALPHABET_GSM7);
  assert_int_equal(d.msg_class, -1);
  assert_memory_equal(d.scts.raw, "\x20\x80\x62\x91\x73\x14\x08", 7);
  assert_true(d.scts.valid);
  assert_int_equal(d.scts.year, 2);
  assert_int_equal(d.scts.month, 8);
  assert_int_equal(d.scts.day, 26);
  assert_int_equal(d.scts.hour, 19);
  assert_int_equal(d.scts.minute, 37);
  assert_int_equal(d.scts.second, 41);
  /* Octet 0x08: first semi-octet 8 = sign bit set, tens 0; second semi-octet 0: "-0", GMT
   * (not +02:00, as decoders that read the octet unswapped say). */
  assert_int_equal(d.scts.tz_quarters, 0);
  assert_string_equal(d.scts.text, "02-08-26 19:37:41 +00:00");
  assert_int_equal(d.udl, 12);
  assert_int_equal(d.ud_len, 12);
  assert_string_equal((const char *)d.ud, "How are you?");
}

static void test_deliver_classic_lower_case_and_no_smsc(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00040b911346610089f60000208062917314080cc8f71d14969741f977fd07", &d);
  assert_false(d.has_smsc);
  assert_string_equal(d.originator.number, "31641600986");
  assert_string_equal((const char *)d.ud, "How are you?");
}

/* 8-bit data in two concatenated parts with the 8-bit reference IE (9.2.3.24.1):
 * 00 | 44 (MTI 00, MMS, UDHI) | 0B 91 415155 0521F5 (+14155550125) | 00 | 04 |
 * 52 20 41 21 43 00 80 (25-02-14 12:34:00 +8 quarters) | UDL | 05 00 03 2A 02 seq | data. */
static void test_deliver_8bit_concat_8bit_ref(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00440B914151550521F5000452204121430080"
                "0A0500032A020140011234",
                &d);
  assert_int_equal(d.kind, SMS_KIND_DELIVER);
  assert_true(d.udhi);
  assert_string_equal(d.originator.number, "14155550125");
  assert_int_equal(d.alphabet, SMS_ALPHABET_8BIT);
  assert_string_equal(d.scts.text, "25-02-14 12:34:00 +02:00");
  assert_int_equal(d.scts.tz_quarters, 8);
  assert_true(d.udh.has_concat);
  assert_false(d.udh.concat.ref16);
  assert_int_equal(d.udh.concat.ref, 0x2A);
  assert_int_equal(d.udh.concat.total, 2);
  assert_int_equal(d.udh.concat.seq, 1);
  assert_false(d.udh.has_ports);
  assert_int_equal(d.udh.ie_count, 1);
  assert_int_equal(d.ud_len, 4);
  assert_memory_equal(d.ud, "\x40\x01\x12\x34", 4);

  decode_hex_ok("00440B914151550521F5000452204121430080"
                "080500032A0202FFFF",
                &d);
  assert_int_equal(d.udh.concat.seq, 2);
  assert_int_equal(d.ud_len, 2);
  assert_memory_equal(d.ud, "\xFF\xFF", 2);
}

/* 16-bit reference (IEI 08, 9.2.3.24.8): 06 08 04 12 34 03 02. */
static void test_deliver_concat_16bit_ref(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00440B914151550521F5000452204121430080"
                "0906080412340302C0DE",
                &d);
  assert_true(d.udh.has_concat);
  assert_true(d.udh.concat.ref16);
  assert_int_equal(d.udh.concat.ref, 0x1234);
  assert_int_equal(d.udh.concat.total, 3);
  assert_int_equal(d.udh.concat.seq, 2);
  assert_int_equal(d.ud_len, 2);
  assert_memory_equal(d.ud, "\xC0\xDE", 2);
}

/* WAP push: 16-bit ports (IEI 05) dst 2948 (0x0B84, WAP push) src 9200 (0x23F0), DCS F5
 * (8-bit, class 1), then a WSP push header start: 06 05 04 0B 84 23 F0 | 01 06 01 AE. */
static void test_deliver_wap_push_ports(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00440B914151550521F500F552204121430080"
                "0B0605040B8423F0010601AE",
                &d);
  assert_int_equal(d.dcs, 0xF5);
  assert_int_equal(d.alphabet, SMS_ALPHABET_8BIT);
  assert_int_equal(d.msg_class, 1);
  assert_true(d.udh.has_ports);
  assert_true(d.udh.ports.port16);
  assert_int_equal(d.udh.ports.dst, 2948);
  assert_int_equal(d.udh.ports.src, 9200);
  assert_false(d.udh.has_concat);
  assert_int_equal(d.ud_len, 4);
  assert_memory_equal(d.ud, "\x01\x06\x01\xAE", 4);
}

/* WAP push split over SMS: ports then concatenation, as WAP-259 does, with DCS F4 (class 0):
 * 0B | 05 04 0B 84 23 F0 | 00 03 7F 02 01. Also 8-bit ports (IEI 04) and a skipped IE. */
static void test_deliver_ports_and_concat_and_skipped(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00440B914151550521F500F452204121430080"
                "0D0B05040B8423F00003"
                "7F0201AA",
                &d);
  assert_int_equal(d.msg_class, 0);
  assert_true(d.udh.has_ports);
  assert_true(d.udh.has_concat);
  assert_int_equal(d.udh.concat.ref, 0x7F);
  assert_int_equal(d.udh.concat.seq, 1);
  assert_int_equal(d.udh.ie_count, 2);
  assert_int_equal(d.ud_len, 1);

  /* 07 | 04 02 10 20 (8-bit ports 16 <- 32) | 24 01 05 (national language single shift,
   * skipped) | data 55. */
  decode_hex_ok("00440B914151550521F5000452204121430080"
                "0907040210202401" "0555",
                &d);
  assert_true(d.udh.has_ports);
  assert_false(d.udh.ports.port16);
  assert_int_equal(d.udh.ports.dst, 0x10);
  assert_int_equal(d.udh.ports.src, 0x20);
  assert_int_equal(d.udh.ie_count, 2);
  assert_int_equal(d.udh.ies[1].iei, 0x24);
  assert_int_equal(d.udh.ies[1].len, 1);
  assert_int_equal(d.ud_len, 1);
  assert_int_equal(d.ud[0], 0x55);
}

/* Alphanumeric originator (TON 101, 0xD0): "Design@Home", 11 septets = 77 bits = 10 octets,
 * length 20 semi-octets (0x14), GSM 7-bit packed. */
static void test_deliver_alphanumeric_sender(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("000414D0C4F23C7D760390EF7619" "0000" "52204121430080"
                "0AE8329BFD4697D9EC37",
                &d);
  assert_int_equal(d.originator.toa, SMS_TOA_ALPHANUMERIC);
  assert_int_equal(d.originator.ton, SMS_TON_ALPHANUMERIC);
  assert_string_equal(d.originator.number, "Design@Home");
  /* 23.038 "hellohello" packs to E8 32 9B FD 46 97 D9 EC 37. */
  assert_string_equal((const char *)d.ud, "hellohello");
}

static void test_deliver_national_and_bcd_specials(void **state) {
  (void)state;
  sms_deliver_t d;
  /* Type 0x81 (unknown/ISDN), 10 digits 0612345678; then a TOA 0xA1 number "12*#" (BCD A, B). */
  decode_hex_ok("00040A81" "6021436587" "0004" "52204121430080" "0100", &d);
  assert_int_equal(d.originator.toa, 0x81);
  assert_int_equal(d.originator.ton, SMS_TON_UNKNOWN);
  assert_string_equal(d.originator.number, "0612345678");
  decode_hex_ok("000404A121BA" "0004" "52204121430080" "0100", &d);
  assert_int_equal(d.originator.ton, SMS_TON_NATIONAL);
  assert_string_equal(d.originator.number, "12*#");
}

/* SMS-STATUS-REPORT (TP-MTI 10, 9.2.2.3): recognised, not a deliver, no error. */
static void test_status_report_skipped(void **state) {
  (void)state;
  sms_deliver_t d;
  /* 06 (MTI 10, MMS) | MR 2A | RA 0B 91 415155 0521F5 | SCTS | DT | ST 00 */
  decode_hex_ok("07911326040000F0" "062A0B914151550521F5" "52204121430080"
                "52204121530080" "00",
                &d);
  assert_int_equal(d.kind, SMS_KIND_STATUS_REPORT);
  assert_true(d.has_smsc);
  assert_true(d.report.valid);
  assert_int_equal(d.report.mr, 0x2A);
  assert_string_equal(d.report.recipient.number, "14155550125");
  assert_string_equal(d.report.discharge.text, "25-02-14 12:35:00 +02:00");
  assert_int_equal(d.report.status, 0);
  /* Cut short: still no error, only the report is incomplete. */
  decode_hex_ok("00062A0B9141", &d);
  assert_int_equal(d.kind, SMS_KIND_STATUS_REPORT);
  assert_false(d.report.valid);
  decode_hex_ok("0006", &d);
  assert_int_equal(d.kind, SMS_KIND_STATUS_REPORT);
}

static void test_submit_and_reserved_skipped(void **state) {
  (void)state;
  sms_deliver_t d;
  /* A stored SMS-SUBMIT (MTI 01) as +CMGL lists it; and a reserved MTI 11. */
  decode_hex_ok("0001000B914151550521F5000402ABCD", &d);
  assert_int_equal(d.kind, SMS_KIND_SUBMIT);
  decode_hex_ok("0003", &d);
  assert_int_equal(d.kind, SMS_KIND_RESERVED);
  decode_hex_ok("00FF", &d);
  assert_int_equal(d.kind, SMS_KIND_RESERVED);
}

/* UCS2 (DCS 08): U+4F60 U+597D, then a surrogate pair (U+1F600) and a lone high surrogate. */
static void test_deliver_ucs2(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00040B914151550521F5" "0008" "52204121430080" "044F60597D", &d);
  assert_int_equal(d.alphabet, SMS_ALPHABET_UCS2);
  assert_string_equal((const char *)d.ud, "\xE4\xBD\xA0\xE5\xA5\xBD");
  decode_hex_ok("00040B914151550521F5" "0008" "52204121430080" "06D83DDE00D83D", &d);
  assert_string_equal((const char *)d.ud, "\xF0\x9F\x98\x80\xEF\xBF\xBD");
  /* Message waiting group, store, UCS2 (1110xxxx). */
  decode_hex_ok("00040B914151550521F5" "00E0" "52204121430080" "020041", &d);
  assert_string_equal((const char *)d.ud, "A");
}

/* GSM 7-bit after a 6-octet UDH: 48 bits, so one fill bit and the text starts at septet 7
 * (9.2.3.24, 23.038 6.1.2.1.1). UDL 17 septets = 7 + 10; 15 octets. */
static void test_deliver_gsm7_udh_fill_bits(void **state) {
  (void)state;
  sms_deliver_t d;
  decode_hex_ok("00440B914151550521F5" "0000" "52204121430080"
                "11050003CC0201D06536FB8D2EB3D96F",
                &d);
  assert_true(d.udh.has_concat);
  assert_int_equal(d.udh.concat.ref, 0xCC);
  assert_int_equal(d.udh.concat.total, 2);
  assert_int_equal(d.udl, 17);
  assert_string_equal((const char *)d.ud, "hellohello");
  /* A 7-octet UDH (16-bit ref): 56 bits, no fill bit, text at septet 8; UDL 18 = 8 + 10. */
  decode_hex_ok("00440B914151550521F5" "0000" "52204121430080"
                "1206080412340201E8329BFD4697D9EC37",
                &d);
  assert_true(d.udh.concat.ref16);
  assert_int_equal(d.udh.concat.ref, 0x1234);
  assert_string_equal((const char *)d.ud, "hellohello");
}

/* Extension table (23.038 6.2.1.1): ESC 65 = euro, ESC 3C = '[', ESC 3E = ']'; an unknown
 * extension shows the basic character; ESC ESC and a trailing ESC show a space. */
static void test_deliver_gsm7_extension(void **state) {
  (void)state;
  sms_deliver_t d;
  /* Septets 1B 65 1B 3C 78 1B 3E = "€[x]" packed as 9B F2 86 87 DF F8 00. */
  decode_hex_ok("00040B914151550521F5" "0000" "52204121430080" "079BF28687DFF800", &d);
  assert_string_equal((const char *)d.ud, "\xE2\x82\xAC[x]");
  /* Septets 1B 41 ("ESC A": not in the table, shown as A), 1B 1B, 1B (trailing):
   * packed LSB first: 9B E0 66 B3 01. */
  decode_hex_ok("00040B914151550521F5" "0000" "52204121430080" "059BE066B301", &d);
  assert_string_equal((const char *)d.ud, "A  ");
  /* Basic table non-ASCII: 00 01 24 7F = "@£¤à" packed 80 00 E9 0F. */
  decode_hex_ok("00040B914151550521F5" "0000" "52204121430080" "048000E90F", &d);
  assert_string_equal((const char *)d.ud, "@\xC2\xA3\xC2\xA4\xC3\xA0");
}

static void test_dcs_parse(void **state) {
  (void)state;
  static const struct {
    uint8_t dcs;
    sms_err_t err;
    sms_alphabet_t alphabet;
    int msg_class;
  } cases[] = {
      {0x00, SMS_OK, SMS_ALPHABET_GSM7, -1}, {0x04, SMS_OK, SMS_ALPHABET_8BIT, -1},
      {0x08, SMS_OK, SMS_ALPHABET_UCS2, -1}, {0x0C, SMS_OK, SMS_ALPHABET_GSM7, -1},
      {0x10, SMS_OK, SMS_ALPHABET_GSM7, 0},  {0x16, SMS_OK, SMS_ALPHABET_8BIT, 2},
      {0x19, SMS_OK, SMS_ALPHABET_UCS2, 1},  {0x20, SMS_ERR_DCS_COMPRESSED, 0, 0},
      {0x44, SMS_OK, SMS_ALPHABET_8BIT, -1}, {0x64, SMS_ERR_DCS_COMPRESSED, 0, 0},
      {0x84, SMS_OK, SMS_ALPHABET_GSM7, -1}, {0xC8, SMS_OK, SMS_ALPHABET_GSM7, -1},
      {0xD0, SMS_OK, SMS_ALPHABET_GSM7, -1}, {0xE0, SMS_OK, SMS_ALPHABET_UCS2, -1},
      {0xF0, SMS_OK, SMS_ALPHABET_GSM7, 0},  {0xF3, SMS_OK, SMS_ALPHABET_GSM7, 3},
      {0xF4, SMS_OK, SMS_ALPHABET_8BIT, 0},  {0xF5, SMS_OK, SMS_ALPHABET_8BIT, 1},
      {0xF6, SMS_OK, SMS_ALPHABET_8BIT, 2},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sms_alphabet_t a;
    int c;
    assert_int_equal(sms_dcs_parse(cases[i].dcs, &a, &c), cases[i].err);
    if (cases[i].err != SMS_OK)
      continue;
    assert_int_equal(a, cases[i].alphabet);
    assert_int_equal(c, cases[i].msg_class);
  }
}

static void test_timestamp_decoding(void **state) {
  (void)state;
  sms_deliver_t d;
  /* tz 0A: first semi-octet A = sign + tens 2, second 0: -20 quarters = -05:00. */
  decode_hex_ok("00040B914151550521F5" "0004" "5220412143000A" "00", &d);
  assert_int_equal(d.scts.tz_quarters, -20);
  assert_string_equal(d.scts.text, "25-02-14 12:34:00 -05:00");
  /* tz 32 -> 23 quarters = +05:45 (Nepal). */
  decode_hex_ok("00040B914151550521F5" "0004" "52204121430032" "00", &d);
  assert_string_equal(d.scts.text, "25-02-14 12:34:00 +05:45");
  /* Non-BCD digits and month 13 decode, flagged, without failing the message. */
  decode_hex_ok("00040B914151550521F5" "0004" "5F204121430080" "00", &d);
  assert_false(d.scts.valid);
  assert_string_equal(d.scts.text, "invalid");
  decode_hex_ok("00040B914151550521F5" "0004" "52314121430080" "00", &d);
  assert_false(d.scts.valid);
  assert_memory_equal(d.scts.raw, "\x52\x31\x41\x21\x43\x00\x80", 7);
}

/* Every malformed input gives its own error. Prefix P: no SMSC, DELIVER, +14155550125. */
#define P "00040B914151550521F5"
#define PU "00440B914151550521F5"
#define TS "52204121430080"
static void test_malformed(void **state) {
  (void)state;
  static const struct {
    const char *hex;
    sms_err_t err;
  } cases[] = {
      {"", SMS_ERR_EMPTY},
      {"0C91", SMS_ERR_SMSC_LENGTH},
      {"07911326040000", SMS_ERR_SMSC_TRUNCATED},
      {"07911326040000F0", SMS_ERR_NO_FIRST_OCTET},
      {"0391F1F2", SMS_ERR_ADDRESS_DIGIT}, /* F inside the SMSC number */
      {"0004", SMS_ERR_ADDRESS_TRUNCATED},
      {"00040B", SMS_ERR_ADDRESS_TRUNCATED},
      {"00040B9141515505", SMS_ERR_ADDRESS_TRUNCATED},
      {"000415914151550521F541515505", SMS_ERR_ADDRESS_LENGTH},
      {"00040B914151F50521F5", SMS_ERR_ADDRESS_DIGIT},
      {P, SMS_ERR_HEADER_TRUNCATED},
      {P "00", SMS_ERR_HEADER_TRUNCATED},
      {P "0000522041", SMS_ERR_HEADER_TRUNCATED},
      {P "0000" TS, SMS_ERR_HEADER_TRUNCATED},
      {P "0020" TS "00", SMS_ERR_DCS_COMPRESSED},
      {P "0000" TS "A1", SMS_ERR_UDL_TOO_LONG},
      {P "0004" TS "8D", SMS_ERR_UDL_TOO_LONG},
      {P "0008" TS "8D", SMS_ERR_UDL_TOO_LONG},
      {P "0004" TS "03AABB", SMS_ERR_UD_TRUNCATED},
      {P "0000" TS "0CC8F71D14969741F977FD", SMS_ERR_UD_TRUNCATED},
      {P "0004" TS "01AABB", SMS_ERR_TRAILING_DATA},
      {P "0000" TS "00" "00", SMS_ERR_TRAILING_DATA},
      {PU "0004" TS "00", SMS_ERR_UDH_MISSING},
      {PU "0004" TS "0306AABB", SMS_ERR_UDH_LENGTH},
      {PU "0004" TS "020100", SMS_ERR_UDH_IE_TRUNCATED},
      {PU "0004" TS "0302000A", SMS_ERR_UDH_IE_TRUNCATED},
      {PU "0004" TS "050400000102", SMS_ERR_UDH_IE_LENGTH},
      {PU "0004" TS "070600040B8423F0", SMS_ERR_UDH_IE_LENGTH},
      {PU "0004" TS "06050803000102", SMS_ERR_UDH_IE_LENGTH},
      {PU "0004" TS "060504030B8400", SMS_ERR_UDH_IE_LENGTH},
      {PU "0004" TS "050405020001", SMS_ERR_UDH_IE_LENGTH},
      {P "0008" TS "03004100", SMS_ERR_UCS2_ODD_LENGTH},
      {PU "0008" TS "020041", SMS_ERR_UCS2_ODD_LENGTH},
      /* GSM 7-bit: UDL 6 septets (6 octets) but the UDH takes 6 octets = 7 septets. */
      {PU "0000" TS "06050003010201", SMS_ERR_UDH_LENGTH},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sms_err_t err = decode_hex(cases[i].hex);
    if (err != cases[i].err)
      fail_msg("case %zu (%s): got %s, want %s", i, cases[i].hex, sms_strerror(err),
               sms_strerror(cases[i].err));
  }
  sms_deliver_t d;
  assert_int_equal(sms_pdu_decode(NULL, 3, &d), SMS_ERR_ARG);
  assert_int_equal(sms_pdu_decode((const uint8_t *)"", 0, NULL), SMS_ERR_ARG);
  assert_int_equal(decode_hex("0G"), SMS_ERR_HEX_DIGIT);
  assert_int_equal(decode_hex("000"), SMS_ERR_HEX_ODD_LENGTH);
}

/* Every prefix of a valid PDU fails with an error and reads nothing past its end (ASan checks
 * the exact-size copies), and one octet more is trailing data. */
static void test_truncation_sweep(void **state) {
  (void)state;
  static const char *const vectors[] = {
      CLASSIC,
      "00440B914151550521F5000452204121430080" "0906080412340302C0DE",
      "00440B914151550521F5" "0000" "52204121430080" "11050003CC0201D06536FB8D2EB3D96F",
      "000414D0C4F23C7D760390EF7619" "0000" "52204121430080" "0AE8329BFD4697D9EC37",
  };
  for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
    uint8_t full[SMS_PDU_MAX + 1];
    size_t len;
    assert_int_equal(sms_hex_decode(vectors[v], strlen(vectors[v]), full, SMS_PDU_MAX, &len),
                     SMS_OK);
    sms_deliver_t d;
    for (size_t n = 0; n < len; n++) {
      uint8_t *copy = test_malloc(n ? n : 1);
      memcpy(copy, full, n);
      sms_err_t err = sms_pdu_decode(n ? copy : NULL, n, &d);
      test_free(copy);
      if (err == SMS_OK)
        fail_msg("vector %zu cut at %zu decoded", v, n);
    }
    full[len] = 0x00;
    assert_int_equal(sms_pdu_decode(full, len + 1, &d), SMS_ERR_TRAILING_DATA);
    assert_int_equal(sms_pdu_decode(full, len, &d), SMS_OK);
  }
}

static void test_udh_parse_direct(void **state) {
  (void)state;
  sms_udh_t udh;
  size_t n;
  /* A repeated concatenation IE: the last one counts (9.2.3.24). */
  const uint8_t twice[] = {0x0B, 0x00, 0x03, 0x01, 0x02, 0x01, 0x08, 0x04, 0x01, 0x02, 0x05, 0x04};
  assert_int_equal(sms_udh_parse(twice, sizeof(twice), &udh, &n), SMS_OK);
  assert_int_equal(n, 12);
  assert_true(udh.concat.ref16);
  assert_int_equal(udh.concat.ref, 0x0102);
  assert_int_equal(udh.concat.total, 5);
  assert_int_equal(udh.concat.seq, 4);
  /* Values are reported as received: the reassembly rejects seq 0. */
  const uint8_t seq0[] = {0x05, 0x00, 0x03, 0x01, 0x02, 0x00};
  assert_int_equal(sms_udh_parse(seq0, sizeof(seq0), &udh, &n), SMS_OK);
  assert_int_equal(udh.concat.seq, 0);
  /* An empty UDH and an empty IE. */
  assert_int_equal(sms_udh_parse((const uint8_t *)"\x00", 1, &udh, &n), SMS_OK);
  assert_int_equal(n, 1);
  assert_int_equal(udh.ie_count, 0);
  assert_int_equal(sms_udh_parse((const uint8_t *)"\x02\x70\x00", 3, &udh, &n), SMS_OK);
  assert_int_equal(udh.ie_count, 1);
  assert_int_equal(sms_udh_parse(NULL, 0, &udh, &n), SMS_ERR_UDH_MISSING);
  assert_int_equal(sms_udh_parse((const uint8_t *)"\x05", 1, &udh, &n), SMS_ERR_UDH_LENGTH);
}

/* ---- SMS-SUBMIT ---- */

/* A test-only SMS-SUBMIT parser (23.040 9.2.2.2), written from the spec apart from the codec,
 * for the PDUs the encoder writes: SMSC length 00, relative or no TP-VP. */
typedef struct {
  uint8_t fo, mr, da_len, toa, pid, dcs, vp, udl;
  bool has_vp;
  char da[24];
  sms_udh_t udh;
  bool has_udh;
  const uint8_t *data;
  size_t data_len;
} test_submit_t;

static void parse_submit(const uint8_t *p, size_t len, test_submit_t *s) {
  size_t i = 0;
  memset(s, 0, sizeof(*s));
  assert_true(len >= 8);
  assert_int_equal(p[i++], 0x00);
  s->fo = p[i++];
  assert_int_equal(s->fo & 0x03, 0x01);
  assert_int_equal(s->fo & 0x04, 0x00);               /* TP-RD */
  assert_true((s->fo & 0x18) == 0 || (s->fo & 0x18) == 0x10); /* VPF none or relative */
  s->mr = p[i++];
  s->da_len = p[i++];
  s->toa = p[i++];
  for (size_t k = 0; k < s->da_len; k++) {
    uint8_t o = p[i + k / 2];
    s->da[k] = (char)('0' + ((k & 1) ? o >> 4 : o & 0x0F));
  }
  if (s->da_len & 1)
    assert_int_equal(p[i + s->da_len / 2] >> 4, 0x0F);
  i += (s->da_len + 1u) / 2;
  s->pid = p[i++];
  s->dcs = p[i++];
  s->has_vp = (s->fo & 0x18) == 0x10;
  if (s->has_vp)
    s->vp = p[i++];
  s->udl = p[i++];
  assert_int_equal(len - i, s->udl);
  size_t hdr = 0;
  if (s->fo & 0x40) {
    s->has_udh = true;
    assert_int_equal(sms_udh_parse(p + i, s->udl, &s->udh, &hdr), SMS_OK);
  }
  s->data = p + i + hdr;
  s->data_len = s->udl - hdr;
}

/* 2 octets of 8-bit data to 14155550125, by hand:
 * 00 SMSC default | 01 SUBMIT, no VP | 00 MR | 0B 11 digits | 91 international |
 * 41 51 55 05 21 F5 (1 4|1 5|5 5|5 0|1 2|5 F, low nibble first) | 00 PID | 04 DCS | 02 UDL |
 * AB CD. The TPDU is everything after the SMSC octet: 15 octets. */
static void test_submit_hand_computed(void **state) {
  (void)state;
  sms_submit_t s;
  sms_submit_init(&s, "14155550125");
  uint8_t out[SMS_PDU_MAX];
  size_t len, tpdu;
  assert_int_equal(sms_pdu_encode_submit(&s, (const uint8_t *)"\xAB\xCD", 2, out, sizeof(out),
                                         &len, &tpdu),
                   SMS_OK);
  char hex[2 * SMS_PDU_MAX + 1];
  assert_int_equal(sms_hex_encode(out, len, hex, sizeof(hex)), SMS_OK);
  assert_string_equal(hex, "0001000B914151550521F5000402ABCD");
  assert_int_equal(len, 16);
  assert_int_equal(tpdu, 15);

  /* National (type 0x81), 10 digits without filler, SRR, relative validity 1 day (VP 167 =
   * 12 h + 24 * 30 min), DCS F5: 00 | 31 (MTI 01, VPF 10, SRR) | 00 | 0A 81 60 21 43 65 87 |
   * 00 | F5 | A7 | 01 | 7F. */
  sms_submit_init(&s, "0612345678");
  s.national = true;
  s.status_report = true;
  s.validity_min = 24 * 60;
  s.dcs = SMS_DCS_8BIT_CLASS1;
  assert_int_equal(sms_pdu_encode_submit(&s, (const uint8_t *)"\x7F", 1, out, sizeof(out), &len,
                                         &tpdu),
                   SMS_OK);
  assert_int_equal(sms_hex_encode(out, len, hex, sizeof(hex)), SMS_OK);
  assert_string_equal(hex, "0031000A816021436587" "00F5A7017F");
  assert_int_equal(tpdu, len - 1);
}

/* Concatenation and port UDHs: 8-bit ref 05 00 03, 16-bit ref 06 08 04, ports first. */
static void test_submit_udh(void **state) {
  (void)state;
  sms_submit_t s;
  uint8_t out[SMS_PDU_MAX];
  char hex[2 * SMS_PDU_MAX + 1];
  size_t len, tpdu;
  sms_submit_init(&s, "14155550125");
  s.udh.has_concat = true;
  s.udh.concat = (sms_concat_t){.ref = 0x2A, .total = 3, .seq = 2};
  assert_int_equal(sms_pdu_encode_submit(&s, (const uint8_t *)"\x01", 1, out, sizeof(out), &len,
                                         &tpdu),
                   SMS_OK);
  assert_int_equal(sms_hex_encode(out, len, hex, sizeof(hex)), SMS_OK);
  assert_string_equal(hex, "0041000B914151550521F50004" "07" "0500032A0302" "01");

  s.udh.concat = (sms_concat_t){.ref = 0xBEEF, .total = 3, .seq = 3, .ref16 = true};
  s.udh.has_ports = true;
  s.udh.ports = (sms_ports_t){.dst = 2948, .src = 9200, .port16 = true};
  assert_int_equal(sms_pdu_encode_submit(&s, NULL, 0, out, sizeof(out), &len, &tpdu), SMS_OK);
  assert_int_equal(sms_hex_encode(out, len, hex, sizeof(hex)), SMS_OK);
  assert_string_equal(hex, "0041000B914151550521F50004" "0D" "0C05040B8423F00804BEEF0303");

  s.udh.has_concat = false;
  s.udh.ports = (sms_ports_t){.dst = 16, .src = 32};
  assert_int_equal(sms_pdu_encode_submit(&s, NULL, 0, out, sizeof(out), &len, &tpdu), SMS_OK);
  assert_int_equal(sms_hex_encode(out, len, hex, sizeof(hex)), SMS_OK);
  assert_string_equal(hex, "0041000B914151550521F50004" "05" "0404021020");
}

static void test_submit_errors(void **state) {
  (void)state;
  sms_submit_t s;
  uint8_t out[SMS_PDU_MAX], data[141] = {0};
  size_t len, tpdu;
  sms_submit_init(&s, "+14155550125");
  assert_int_equal(sms_pdu_encode_submit(&s, data, 1, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_ADDRESS_DIGIT);
  sms_submit_init(&s, "");
  assert_int_equal(sms_pdu_encode_submit(&s, data, 1, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_ADDRESS_LENGTH);
  sms_submit_init(&s, "123456789012345678901");
  assert_int_equal(sms_pdu_encode_submit(&s, data, 1, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_ADDRESS_LENGTH);
  sms_submit_init(&s, "12345678901234567890");
  assert_int_equal(sms_pdu_encode_submit(&s, data, 140, out, sizeof(out), &len, &tpdu), SMS_OK);
  assert_int_equal(tpdu, 1 + 1 + 2 + 10 + 2 + 1 + 140);
  assert_int_equal(sms_pdu_encode_submit(&s, data, 141, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_UD_TOO_LONG);
  assert_int_equal(sms_pdu_encode_submit(&s, data, 140, out, 20, &len, &tpdu),
                   SMS_ERR_BUFFER_TOO_SMALL);
  sms_submit_init(&s, "14155550125");
  s.udh.has_concat = true;
  s.udh.concat = (sms_concat_t){.ref = 1, .total = 2, .seq = 1};
  assert_int_equal(sms_pdu_encode_submit(&s, data, 134, out, sizeof(out), &len, &tpdu), SMS_OK);
  assert_int_equal(out[len - 141], 140); /* UDL: 6 + 134 */
  assert_int_equal(sms_pdu_encode_submit(&s, data, 135, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_UD_TOO_LONG);
  static const sms_concat_t bad[] = {
      {.ref = 1, .total = 0, .seq = 0}, {.ref = 1, .total = 2, .seq = 0},
      {.ref = 1, .total = 2, .seq = 3}, {.ref = 256, .total = 2, .seq = 1}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    s.udh.concat = bad[i];
    assert_int_equal(sms_pdu_encode_submit(&s, data, 1, out, sizeof(out), &len, &tpdu),
                     SMS_ERR_CONCAT_VALUES);
  }
  s.udh.has_concat = false;
  s.udh.has_ports = true;
  s.udh.ports = (sms_ports_t){.dst = 256, .src = 1};
  assert_int_equal(sms_pdu_encode_submit(&s, data, 1, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_PORT_VALUES);
  sms_submit_init(&s, "14155550125");
  s.dcs = 0x00;
  assert_int_equal(sms_pdu_encode_submit(&s, data, 1, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_DCS_UNSUPPORTED);
  assert_int_equal(sms_pdu_encode_submit(NULL, data, 1, out, sizeof(out), &len, &tpdu),
                   SMS_ERR_ARG);
}

static void test_validity(void **state) {
  (void)state;
  static const struct {
    uint32_t minutes;
    uint8_t vp;
  } cases[] = {{1, 0},       {5, 0},       {6, 1},         {720, 143},     {721, 144},
               {1440, 167},  {1441, 168},  {2880, 168},    {43200, 196},   {43201, 197},
               {50400, 197}, {50401, 198}, {635040, 255},  {UINT32_MAX, 255}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(sms_validity_relative(cases[i].minutes), cases[i].vp);
    assert_true(sms_validity_minutes(cases[i].vp) >= cases[i].minutes ||
                cases[i].minutes > 635040);
  }
  /* Every octet maps back to itself, and the next octet down would be too short. */
  for (unsigned vp = 0; vp <= 255; vp++) {
    uint32_t m = sms_validity_minutes((uint8_t)vp);
    assert_int_equal(sms_validity_relative(m), vp);
    if (vp)
      assert_true(sms_validity_minutes((uint8_t)(vp - 1)) < m);
  }
}

/* Encode, then read back with the test-only parser, over DCS, VP, SRR, UDH combinations and
 * every data length; and re-wrap the SUBMIT's user data as a DELIVER for sms_pdu_decode(). */
static void test_submit_round_trip(void **state) {
  (void)state;
  uint8_t data[140];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 37 + 11);
  static const uint8_t dcs[] = {SMS_DCS_8BIT, SMS_DCS_8BIT_CLASS0, SMS_DCS_8BIT_CLASS1};
  for (unsigned combo = 0; combo < 48; combo++) {
    sms_submit_t s;
    sms_submit_init(&s, (combo & 1) ? "4915112345678" : "14155550125");
    s.national = (combo & 2) != 0;
    s.status_report = (combo & 4) != 0;
    s.validity_min = (combo & 8) ? 90 : 0;
    s.dcs = dcs[(combo >> 4) % 3];
    if (combo & 1) {
      s.udh.has_concat = true;
      s.udh.concat = (sms_concat_t){.ref = (uint16_t)((combo & 2) ? combo * 1000 : combo),
                                    .total = 9, .seq = 7, .ref16 = (combo & 2) != 0};
    }
    if (combo & 4) {
      s.udh.has_ports = true;
      s.udh.ports = (sms_ports_t){.dst = 5683, .src = 5684, .port16 = true};
    }
    size_t udh_len = (s.udh.has_concat ? (s.udh.concat.ref16 ? 6 : 5) : 0) +
                     (s.udh.has_ports ? 6 : 0);
    udh_len += udh_len ? 1 : 0;
    for (size_t n = 0; n + udh_len <= 140; n += 7) {
      uint8_t out[SMS_PDU_MAX];
      size_t len, tpdu;
      assert_int_equal(sms_pdu_encode_submit(&s, data, n, out, sizeof(out), &len, &tpdu), SMS_OK);
      assert_int_equal(tpdu, len - 1);
      test_submit_t p;
      parse_submit(out, len, &p);
      assert_string_equal(p.da, s.destination);
      assert_int_equal(p.toa, s.national ? 0x81 : 0x91);
      assert_int_equal(p.mr, 0);
      assert_int_equal(p.pid, 0);
      assert_int_equal(p.dcs, s.dcs);
      assert_int_equal((p.fo & 0x20) != 0, s.status_report);
      assert_int_equal(p.has_vp, s.validity_min != 0);
      if (p.has_vp)
        assert_int_equal(p.vp, 17); /* 90 min = (17 + 1) * 5 */
      assert_int_equal(p.has_udh, udh_len != 0);
      assert_int_equal(p.udh.has_concat, s.udh.has_concat);
      if (s.udh.has_concat)
        assert_memory_equal(&p.udh.concat, &s.udh.concat, sizeof(sms_concat_t));
      assert_int_equal(p.udh.has_ports, s.udh.has_ports);
      assert_int_equal(p.data_len, n);
      if (n)
        assert_memory_equal(p.data, data, n);

      /* The same TP-UD as the receiving side sees it in an SMS-DELIVER. */
      uint8_t deliver[SMS_PDU_MAX];
      size_t d = 0;
      deliver[d++] = 0x00;
      deliver[d++] = (uint8_t)(0x04 | (p.has_udh ? 0x40 : 0));
      memcpy(deliver + d, "\x0B\x91\x41\x51\x55\x05\x21\xF5", 8);
      d += 8;
      deliver[d++] = 0x00;
      deliver[d++] = p.dcs;
      memcpy(deliver + d, "\x52\x20\x41\x21\x43\x00\x80", 7);
      d += 7;
      deliver[d++] = p.udl;
      memcpy(deliver + d, out + len - p.udl, p.udl);
      d += p.udl;
      sms_deliver_t dd;
      assert_int_equal(sms_pdu_decode(deliver, d, &dd), SMS_OK);
      assert_int_equal(dd.alphabet, SMS_ALPHABET_8BIT);
      assert_int_equal(dd.ud_len, n);
      if (n)
        assert_memory_equal(dd.ud, data, n);
      assert_int_equal(dd.udh.has_concat, s.udh.has_concat);
      if (s.udh.has_concat)
        assert_memory_equal(&dd.udh.concat, &s.udh.concat, sizeof(sms_concat_t));
      if (s.udh.has_ports)
        assert_memory_equal(&dd.udh.ports, &s.udh.ports, sizeof(sms_ports_t));
    }
  }
}

static void test_udh_encode_parse_round_trip(void **state) {
  (void)state;
  sms_udh_t in = {0}, back;
  uint8_t buf[16];
  size_t len, parsed;
  assert_int_equal(sms_udh_encode(&in, buf, sizeof(buf), &len), SMS_OK);
  assert_int_equal(len, 0);
  in.has_concat = true;
  in.concat = (sms_concat_t){.ref = 0xFFFF, .total = 255, .seq = 255, .ref16 = true};
  in.has_ports = true;
  in.ports = (sms_ports_t){.dst = 0xFFFF, .src = 0, .port16 = true};
  assert_int_equal(sms_udh_encode(&in, buf, sizeof(buf), &len), SMS_OK);
  assert_int_equal(len, 13);
  assert_int_equal(sms_udh_parse(buf, len, &back, &parsed), SMS_OK);
  assert_int_equal(parsed, len);
  assert_memory_equal(&back.concat, &in.concat, sizeof(in.concat));
  assert_memory_equal(&back.ports, &in.ports, sizeof(in.ports));
  assert_int_equal(sms_udh_encode(&in, buf, 12, &len), SMS_ERR_BUFFER_TOO_SMALL);
}

/* ---- describer and errors ---- */

static void test_describe_classic(void **state) {
  (void)state;
  sms_deliver_t d;
  char out[1024];
  decode_hex_ok(CLASSIC, &d);
  size_t n = sms_pdu_describe(&d, out, sizeof(out));
  assert_int_equal(n, strlen(out));
  assert_non_null(strstr(out, "type: SMS-DELIVER (first octet 0x04)\n"));
  assert_non_null(strstr(out, "smsc: +31624000000 (type 0x91, international)\n"));
  assert_non_null(strstr(out, "originator: +31641600986 (type 0x91, international)\n"));
  assert_non_null(strstr(out, "pid: 0x00\n"));
  assert_non_null(strstr(out, "dcs: 0x00 (general data coding, GSM 7-bit default alphabet)\n"));
  assert_non_null(strstr(out, "timestamp: 02-08-26 19:37:41 +00:00\n"));
  assert_non_null(strstr(out, "user data: TP-UDL 12 septets, 12 octets of UTF-8\n"));
  assert_non_null(strstr(out, "text: \"How are you?\"\n"));

  /* Truncated output: NUL-terminated, same needed length reported. */
  for (size_t size = 0; size < 40; size++) {
    char small[40];
    memset(small, 'X', sizeof(small));
    assert_int_equal(sms_pdu_describe(&d, small, size), n);
    if (size) {
      assert_int_equal(strlen(small), size - 1);
      assert_memory_equal(small, out, size - 1);
    }
  }
  assert_int_equal(sms_pdu_describe(&d, NULL, 0), n);
}

static void test_describe_8bit_udh_and_report(void **state) {
  (void)state;
  sms_deliver_t d;
  char out[2048];
  decode_hex_ok("00440B914151550521F500F452204121430080"
                "100B05040B8423F000037F0201" "48690A00",
                &d);
  sms_pdu_describe(&d, out, sizeof(out));
  assert_non_null(strstr(out, "smsc: none (modem default)\n"));
  assert_non_null(strstr(out, "dcs: 0xF4 (data coding/message class, 8-bit data, class 0)\n"));
  assert_non_null(strstr(out, "udh: concatenation ref 127 (8-bit, iei 0x00), part 1 of 2\n"));
  assert_non_null(strstr(out, "udh: ports dst 2948 src 9200 (16-bit, iei 0x05)\n"));
  assert_non_null(strstr(out, "user data: 4 octets (TP-UDL 16)\n"));
  assert_non_null(strstr(out, "  0000: 48 69 0a 00"));
  assert_non_null(strstr(out, "|Hi..|\n"));

  decode_hex_ok("00062A0B914151550521F5" "52204121430080" "52204121530080" "45", &d);
  sms_pdu_describe(&d, out, sizeof(out));
  assert_non_null(strstr(out, "type: SMS-STATUS-REPORT (first octet 0x06), not a deliver"));
  assert_non_null(strstr(out, "recipient: +14155550125"));
  assert_non_null(strstr(out, "status: 0x45 (permanent error, SC gave up)\n"));

  decode_hex_ok("000414D0C4F23C7D760390EF7619" "0000" "52204121430080" "048000E90F", &d);
  sms_pdu_describe(&d, out, sizeof(out));
  assert_non_null(strstr(out, "originator: \"Design@Home\" (type 0xD0, alphanumeric)\n"));
  assert_non_null(strstr(out, "text: \"@\xC2\xA3\xC2\xA4\xC3\xA0\"\n"));

  /* Control characters and quotes are escaped: a message cannot forge description lines.
   * Septets 61 0A 62 22 ("a", LF, "b", '"') pack to 61 85 58 04. */
  decode_hex_ok("00040B914151550521F5" "0000" "52204121430080" "0461855804", &d);
  sms_pdu_describe(&d, out, sizeof(out));
  assert_non_null(strstr(out, "text: \"a\\nb\\\"\"\n"));
}

static void test_strerror(void **state) {
  (void)state;
  for (int i = 0; i < SMS_ERR__COUNT; i++) {
    const char *s = sms_strerror((sms_err_t)i);
    assert_non_null(s);
    assert_string_not_equal(s, "unknown SMS codec error");
    for (int j = 0; j < i; j++)
      assert_string_not_equal(s, sms_strerror((sms_err_t)j));
  }
  assert_string_equal(sms_strerror(SMS_ERR__COUNT), "unknown SMS codec error");
  assert_string_equal(sms_strerror((sms_err_t)-1), "unknown SMS codec error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hex_decode),
      cmocka_unit_test(test_hex_encode),
      cmocka_unit_test(test_deliver_classic),
      cmocka_unit_test(test_deliver_classic_lower_case_and_no_smsc),
      cmocka_unit_test(test_deliver_8bit_concat_8bit_ref),
      cmocka_unit_test(test_deliver_concat_16bit_ref),
      cmocka_unit_test(test_deliver_wap_push_ports),
      cmocka_unit_test(test_deliver_ports_and_concat_and_skipped),
      cmocka_unit_test(test_deliver_alphanumeric_sender),
      cmocka_unit_test(test_deliver_national_and_bcd_specials),
      cmocka_unit_test(test_status_report_skipped),
      cmocka_unit_test(test_submit_and_reserved_skipped),
      cmocka_unit_test(test_deliver_ucs2),
      cmocka_unit_test(test_deliver_gsm7_udh_fill_bits),
      cmocka_unit_test(test_deliver_gsm7_extension),
      cmocka_unit_test(test_dcs_parse),
      cmocka_unit_test(test_timestamp_decoding),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_truncation_sweep),
      cmocka_unit_test(test_udh_parse_direct),
      cmocka_unit_test(test_submit_hand_computed),
      cmocka_unit_test(test_submit_udh),
      cmocka_unit_test(test_submit_errors),
      cmocka_unit_test(test_validity),
      cmocka_unit_test(test_submit_round_trip),
      cmocka_unit_test(test_udh_encode_parse_round_trip),
      cmocka_unit_test(test_describe_classic),
      cmocka_unit_test(test_describe_8bit_udh_and_report),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
