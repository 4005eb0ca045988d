/* libFuzzer target for the SMS Secured Packet decoder (sms_sp_decode, LwM2M Transport 5.3.2.1.3)
 * with fixed keys in several SPI variants: ciphered or not, every counter mode, AES-128/192/256,
 * reserved SPI bits and a PoR request set.
 *
 * Input: one selector octet, then the packet. The packet is decoded with the selected keys (and
 * with every key set), from an exact-size copy so that any read past it is caught; an accepted
 * packet re-encodes and decodes to the same data and counter, a refused one leaves nothing
 * behind. The packet octets also go through the other direction (encode as secured data, decode
 * back), the SMS split and the BER-TLV reader. Seeds in corpus/secured_packet/ are valid packets
 * for each key set, so mutations start past the clear header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secured_packet.h"

static void check(bool ok) {
  if (!ok)
    abort();
}

#define KEY_SETS 6

static sms_sp_keys_t key_set(size_t i) {
  static const struct {
    uint8_t kic, kid, spi1, spi2;
    size_t key_len;
  } sets[KEY_SETS] = {
      {0x12, 0x12, 0x16, 0x00, 16}, /* LwM2M profile: ciphered, counter higher */
      {0x52, 0x62, 0x1E, 0x09, 32}, /* ciphered, exactly +1, PoR with CC */
      {0x22, 0x22, 0x0A, 0x00, 24}, /* clear, counter available */
      {0x00, 0x12, 0x02, 0x00, 16}, /* clear, no counter, KIc implicit (unused) */
      {0x12, 0x12, 0xF6, 0x21, 16}, /* reserved SPI bits set, PoR by SMS-SUBMIT */
      {0xF2, 0xF2, 0x16, 0x00, 32}, /* key indication 15, AES-256 */
  };
  sms_sp_keys_t k;
  memset(&k, 0, sizeof(k));
  k.kic = sets[i].kic;
  k.kid = sets[i].kid;
  k.spi[0] = sets[i].spi1;
  k.spi[1] = sets[i].spi2;
  k.tar[0] = 0xB2;
  k.tar[1] = 0x02;
  k.tar[2] = 0x03;
  for (size_t j = 0; j < sets[i].key_len; j++) {
    k.kic_key[j] = (uint8_t)(0x40 + j * 3 + i);
    k.kid_key[j] = (uint8_t)(0x90 + j * 5 + i);
  }
  k.kic_key_len = sets[i].key_len;
  k.kid_key_len = sets[i].key_len;
  check(sms_sp_keys_check(&k) == SMS_SP_OK);
  return k;
}

static uint8_t scratch_a[SMS_SP_PACKET_MAX + 64], scratch_b[SMS_SP_PACKET_MAX + 64];

static void decode_one(const sms_sp_keys_t *k, const uint8_t *pkt, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  check(copy != NULL);
  if (len)
    memcpy(copy, pkt, len);
  size_t cap = len >= SMS_SP_OVERHEAD ? len - SMS_SP_OVERHEAD : 0;
  uint8_t *out = malloc(cap ? cap : 1);
  check(out != NULL);
  size_t out_len = 7;
  uint64_t counter = 7;
  sms_sp_err_t err = sms_sp_decode(k, copy, len, out, cap, &out_len, &counter);
  check((unsigned)err < SMS_SP_ERR__COUNT && sms_sp_strerror(err) != NULL);
  if (err != SMS_SP_OK) {
    check(out_len == 0 && counter == 0);
  } else {
    check(out_len <= cap && counter <= SMS_SP_COUNTER_MAX);
    size_t n, again_len;
    uint64_t again_counter;
    check(sms_sp_encode(k, counter, out, out_len, scratch_a, sizeof(scratch_a), &n) ==
          SMS_SP_OK);
    check(sms_sp_decode(k, scratch_a, n, scratch_b, sizeof(scratch_b), &again_len,
                        &again_counter) == SMS_SP_OK);
    check(again_len == out_len && again_counter == counter);
    check(out_len == 0 || memcmp(scratch_b, out, out_len) == 0);
  }
  free(out);
  free(copy);
}

static void round_trip(const sms_sp_keys_t *k, const uint8_t *data, size_t len,
                       uint64_t counter) {
  size_t n, m;
  uint64_t c;
  counter &= SMS_SP_COUNTER_MAX;
  check(sms_sp_encode(k, counter, data, len, scratch_a, sizeof(scratch_a), &n) == SMS_SP_OK);
  check(n == sms_sp_encoded_len(k, len));
  check(sms_sp_decode(k, scratch_a, n, scratch_b, sizeof(scratch_b), &m, &c) == SMS_SP_OK);
  check(m == len && c == counter && (len == 0 || memcmp(scratch_b, data, len) == 0));
}

static void split(const uint8_t *pkt, size_t len) {
  size_t parts = sms_sp_sms_count(len, len & 1);
  if (parts == 0)
    return;
  size_t joined = 0;
  for (size_t i = 0; i < parts; i++) {
    sms_sp_part_t part;
    check(sms_sp_sms_part(pkt, len, len & 1, (uint16_t)len, i, &part) == SMS_SP_OK);
    check(part.data == pkt + joined);
    joined += part.len;
    uint8_t udh[16];
    size_t udh_len;
    check(sms_udh_encode(&part.udh, udh, sizeof(udh), &udh_len) == SMS_OK);
    check(udh_len + part.len <= SMS_UD_OCTETS_MAX);
    check(part.udh.has_security == (i == 0));
  }
  check(joined == len);
}

static void tlv(const uint8_t *data, size_t len) {
  const uint8_t *v;
  size_t vlen;
  if (sms_sp_tlv_unwrap(SMS_SP_TAG_COAP, data, len, &v, &vlen) != SMS_SP_OK)
    return;
  check(v >= data && v + vlen == data + len);
  size_t n;
  check(sms_sp_tlv_wrap(SMS_SP_TAG_COAP, v, vlen, scratch_a, sizeof(scratch_a), &n) ==
        SMS_SP_OK);
  check(n <= len && memcmp(scratch_a + (n - vlen), v, vlen) == 0);
}

static void counters(const sms_sp_keys_t *k, const uint8_t *data, size_t len) {
  if (len < 10)
    return;
  uint64_t last = 0, received = 0;
  for (int i = 0; i < 5; i++) {
    last = last << 8 | data[i];
    received = received << 8 | data[5 + i];
  }
  bool ok = sms_sp_counter_acceptable(k->spi, last, received);
  switch (k->spi[0] & SMS_SP_SPI1_COUNTER_MASK) {
  case SMS_SP_COUNTER_HIGHER:
    check(ok == (received > last));
    break;
  case SMS_SP_COUNTER_PLUS_ONE:
    check(ok == (received == last + 1));
    break;
  default:
    check(ok);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const uint8_t *pkt = data + 1;
  size_t len = size - 1;
  sms_sp_keys_t chosen = key_set(data[0] % KEY_SETS);
  decode_one(&chosen, pkt, len);
  for (size_t i = 0; i < KEY_SETS; i++) {
    sms_sp_keys_t k = key_set(i);
    if (i != data[0] % KEY_SETS)
      decode_one(&k, pkt, len);
    if (len <= 4096)
      round_trip(&k, pkt, len, len * 0x9E3779B97F4A7C15ull);
  }
  split(pkt, len);
  tlv(pkt, len);
  counters(&chosen, pkt, len);
  return 0;
}
