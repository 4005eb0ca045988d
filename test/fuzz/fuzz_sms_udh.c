/* libFuzzer target for the user data header parser (3GPP TS 23.040 9.2.3.24) and for the
 * concatenated SMS reassembly fed from it.
 *
 * The whole input is first one TP-UD: a parsed UDH lies inside it, and its concatenation and
 * port IEs encode back (sms_udh_encode) to a UDH that parses to the same values. Then the input
 * is read as a stream of received parts, each [sender][clock step][UD length][UD], whose UDHs
 * drive one small reassembly: its limits must hold after every part, and a completed payload
 * is as long as the parts it was joined from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csms.h"
#include "sms_pdu.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

static void check_udh(const uint8_t *data, size_t size) {
  sms_udh_t udh;
  size_t n;
  sms_err_t err = sms_udh_parse(data, size, &udh, &n);
  check((unsigned)err < SMS_ERR__COUNT);
  if (err != SMS_OK) {
    check(n == 0);
    return;
  }
  check(n >= 1 && n <= size && n == 1u + data[0]);
  check(udh.ie_count <= SMS_UDH_MAX_IES && udh.ie_count <= n / 2);

  sms_udh_t again = udh;
  again.has_concat = udh.has_concat && udh.concat.total && udh.concat.seq &&
                     udh.concat.seq <= udh.concat.total;
  uint8_t buf[16];
  size_t len;
  check(sms_udh_encode(&again, buf, sizeof(buf), &len) == SMS_OK);
  check(len <= n || (!again.has_concat && !again.has_ports));
  if (len == 0)
    return;
  sms_udh_t back;
  size_t back_len;
  check(sms_udh_parse(buf, len, &back, &back_len) == SMS_OK && back_len == len);
  check(back.has_concat == again.has_concat && back.has_ports == again.has_ports);
  if (again.has_concat)
    check(memcmp(&back.concat, &again.concat, sizeof(back.concat)) == 0);
  if (again.has_ports)
    check(memcmp(&back.ports, &again.ports, sizeof(back.ports)) == 0);
}

static void replay_parts(const uint8_t *data, size_t size) {
  static const char *const senders[4] = {"14155550125", "12125550178", "Design@Home", ""};
  csms_reassembly_t r;
  csms_limits_t limits = {.timeout_ms = 5000, .max_messages = 3, .max_bytes = 400};
  check(csms_reassembly_init(&r, &limits) == SMS_OK);
  uint64_t now = 1000000000; /* far enough from 0 that stepping back never wraps */
  size_t pos = 0;
  while (size - pos >= 3) {
    uint8_t who = data[pos], step = data[pos + 1], ud_len = data[pos + 2];
    pos += 3;
    if (ud_len > size - pos)
      ud_len = (uint8_t)(size - pos);
    const uint8_t *ud = data + pos;
    pos += ud_len;
    now += (uint64_t)step * 100;
    if (step == 0xFF)
      now -= 30000; /* a clock stepping back */
    sms_udh_t udh;
    size_t hdr;
    if (sms_udh_parse(ud, ud_len, &udh, &hdr) != SMS_OK || !udh.has_concat)
      continue;
    const uint8_t *out;
    size_t out_len;
    csms_result_t res = csms_reassembly_add(&r, senders[who & 3], &udh.concat, ud + hdr,
                                            ud_len - hdr, now, &out, &out_len);
    check(r.count <= limits.max_messages && r.buffered_bytes <= limits.max_bytes);
    if (res == CSMS_COMPLETE)
      check(out != NULL && out_len <= (size_t)udh.concat.total * 255u);
    else
      check(out == NULL && out_len == 0);
    csms_reassembly_check(&r, now + (who >> 2) * 100u);
    uint64_t next = csms_reassembly_next_expiry(&r);
    check(r.count == 0 ? next == UINT64_MAX : next != UINT64_MAX);
  }
  const csms_counters_t *c = &r.counters;
  check(c->parts_missing <= c->expired * 255u);
  csms_reassembly_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_udh(data, size);
  replay_parts(data, size);
  return 0;
}
