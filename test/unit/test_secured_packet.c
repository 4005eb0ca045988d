/* Unit tests of the SMS Secured Packet codec (LwM2M Transport 5.3.2.1.3; 3GPP TS 31.115 4; ETSI
 * TS 102 225 5): the AES primitives against RFC 4493 / NIST SP 800-38A and 800-38B, Command Packet
 * octets worked out by hand from the structure, the interop vectors written by the independent
 * Python implementation (scripts/secured_packet.py vectors > secured_packet_vectors.txt, found
 * next to this file or through $SECURED_PACKET_VECTORS), tampering with every octet, truncation,
 * replayed counters, DES refused, the BER-TLV and the SMS framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_text.h"
#include "secured_packet.h"
#include "sms_pdu.h"

#if __has_include(<mbedtls/cmac.h>)
#include <mbedtls/cipher.h>
#include <mbedtls/cmac.h>
#endif

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = 0;
  assert_int_equal(gw_hex_decode(hex, strlen(hex), out, cap, &n), 0);
  return n;
}

/* Keys KIc 0x12 / KID 0x12 (AES, key indication 1), TAR B2 02 03, KIc key 00..0F, KID key
 * 10..1F (or longer). */
static sms_sp_keys_t make_keys(uint8_t spi1, uint8_t spi2, size_t key_len) {
  sms_sp_keys_t k;
  memset(&k, 0, sizeof(k));
  k.kic = 0x12;
  k.kid = 0x12;
  k.spi[0] = spi1;
  k.spi[1] = spi2;
  k.tar[0] = 0xB2;
  k.tar[1] = 0x02;
  k.tar[2] = 0x03;
  for (size_t i = 0; i < key_len; i++) {
    k.kic_key[i] = (uint8_t)i;
    k.kid_key[i] = (uint8_t)(0x10 + i);
  }
  k.kic_key_len = key_len;
  k.kid_key_len = key_len;
  return k;
}

#define SPI_CIPHER_HIGHER 0x16u /* CC, ciphering, counter "process if higher" */
#define SPI_CLEAR_HIGHER 0x12u  /* CC, no ciphering, counter "process if higher" */

/* Decodes from an exact-size heap copy so ASan sees any read past the packet. */
static sms_sp_err_t decode_exact(const sms_sp_keys_t *k, const uint8_t *pkt, size_t len,
                                 uint8_t *out, size_t cap, size_t *out_len, uint64_t *cntr) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len)
    memcpy(copy, pkt, len);
  sms_sp_err_t err = sms_sp_decode(k, copy, len, out, cap, out_len, cntr);
  free(copy);
  return err;
}

/* ---- primitives ---- */

static const char *const nist_key128 = "2b7e151628aed2a6abf7158809cf4f3c";
static const char *const nist_key192 = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b";
static const char *const nist_key256 =
    "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
static const char *const nist_msg =
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

static void check_cmac(const char *key_hex, size_t msg_len, const char *tag_hex) {
  uint8_t key[32], msg[64], tag[16], want[16];
  size_t key_len = unhex(key_hex, key, sizeof(key));
  unhex(nist_msg, msg, sizeof(msg));
  unhex(tag_hex, want, sizeof(want));
  assert_int_equal(sms_sp_aes_cmac(key, key_len, msg, msg_len, tag), SMS_SP_OK);
  assert_memory_equal(tag, want, 16);
}

/* RFC 4493 4 examples 1-4 (AES-128); NIST SP 800-38B D.2 and D.3 (AES-192, AES-256). */
static void test_cmac_known_answers(void **state) {
  (void)state;
  check_cmac(nist_key128, 0, "bb1d6929e95937287fa37d129b756746");
  check_cmac(nist_key128, 16, "070a16b46b4d4144f79bdd9dd04a287c");
  check_cmac(nist_key128, 40, "dfa66747de9ae63030ca32611497c827");
  check_cmac(nist_key128, 64, "51f0bebf7e3b9d92fc49741779363cfe");
  check_cmac(nist_key192, 0, "d17ddf46adaacde531cac483de7a9367");
  check_cmac(nist_key192, 16, "9e99a7bf31e710900662f65e617c5184");
  check_cmac(nist_key192, 40, "8a1de5be2eb31aad089a82e6ee908b0e");
  check_cmac(nist_key192, 64, "a1d5df0eed790f794d77589659f39a11");
  check_cmac(nist_key256, 0, "028962f61b7bf89efc6b551f4667d983");
  check_cmac(nist_key256, 16, "28a7023f452e8f82bd4bf28d8c37c35c");
  check_cmac(nist_key256, 40, "aaf3d8f1de5640c232f5b169b9c911e6");
  check_cmac(nist_key256, 64, "e1992190549f6ed5696a2c056c315410");

  uint8_t key[16], tag[16];
  unhex(nist_key128, key, sizeof(key));
  assert_int_equal(sms_sp_aes_cmac(key, 15, NULL, 0, tag), SMS_SP_ERR_KEY_LENGTH);
  assert_int_equal(sms_sp_aes_cmac(key, 16, NULL, 1, tag), SMS_SP_ERR_ARG);
}

/* The streaming CMAC against mbedtls' own (where the library has MBEDTLS_CMAC_C), every
 * length across the block boundaries. */
static void test_cmac_matches_mbedtls(void **state) {
  (void)state;
#if defined(MBEDTLS_CMAC_C)
  uint8_t key[16], msg[80], a[16], b[16];
  unhex(nist_key128, key, sizeof(key));
  for (size_t i = 0; i < sizeof(msg); i++)
    msg[i] = (uint8_t)(i * 37 + 5);
  const mbedtls_cipher_info_t *info = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB);
  for (size_t len = 0; len <= sizeof(msg); len++) {
    assert_int_equal(sms_sp_aes_cmac(key, 16, msg, len, a), SMS_SP_OK);
    assert_int_equal(mbedtls_cipher_cmac(info, key, 128, msg, len, b), 0);
    assert_memory_equal(a, b, 16);
  }
#else
  skip();
#endif
}

/* NIST SP 800-38A F.2.1/F.2.2 (CBC-AES128), F.2.3 (AES192), F.2.5 (AES256), both ways. */
static void check_cbc(const char *key_hex, const char *ct_hex) {
  uint8_t key[32], iv[16], pt[64], ct[64], want[64], back[64];
  size_t key_len = unhex(key_hex, key, sizeof(key));
  for (size_t i = 0; i < 16; i++)
    iv[i] = (uint8_t)i;
  unhex(nist_msg, pt, sizeof(pt));
  unhex(ct_hex, want, sizeof(want));
  assert_int_equal(sms_sp_aes_cbc(true, key, key_len, iv, pt, 64, ct), SMS_SP_OK);
  assert_memory_equal(ct, want, 64);
  assert_int_equal(sms_sp_aes_cbc(false, key, key_len, iv, ct, 64, back), SMS_SP_OK);
  assert_memory_equal(back, pt, 64);
  memcpy(back, pt, 64); /* in place */
  assert_int_equal(sms_sp_aes_cbc(true, key, key_len, iv, back, 64, back), SMS_SP_OK);
  assert_memory_equal(back, want, 64);
  assert_int_equal(sms_sp_aes_cbc(false, key, key_len, iv, back, 64, back), SMS_SP_OK);
  assert_memory_equal(back, pt, 64);
}

static void test_cbc_known_answers(void **state) {
  (void)state;
  check_cbc(nist_key128, "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
                         "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
  check_cbc(nist_key192, "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a"
                         "571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd");
  check_cbc(nist_key256, "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
                         "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b");
  uint8_t key[16] = {0}, iv[16] = {0}, buf[17] = {0};
  assert_int_equal(sms_sp_aes_cbc(true, key, 16, iv, buf, 17, buf), SMS_SP_ERR_BLOCK_LENGTH);
  assert_int_equal(sms_sp_aes_cbc(true, key, 20, iv, buf, 16, buf), SMS_SP_ERR_KEY_LENGTH);
}

/* ---- keys ---- */

static const uint8_t params_lwm2m[7] = {0x12, 0x12, 0x16, 0x00, 0xB2, 0x02, 0x03};

static void test_keys_parse(void **state) {
  (void)state;
  uint8_t secret[64];
  for (size_t i = 0; i < sizeof(secret); i++)
    secret[i] = (uint8_t)(0xA0 + i);
  sms_sp_keys_t k;
  static const size_t lens[] = {32, 48, 64};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(sms_sp_keys_parse(params_lwm2m, 7, secret, lens[i], &k), SMS_SP_OK);
    assert_int_equal(k.kic, 0x12);
    assert_int_equal(k.kid, 0x12);
    assert_int_equal(k.spi[0], 0x16);
    assert_int_equal(k.spi[1], 0x00);
    assert_memory_equal(k.tar, params_lwm2m + 4, 3);
    assert_int_equal(k.kic_key_len, lens[i] / 2);
    assert_int_equal(k.kid_key_len, lens[i] / 2);
    assert_memory_equal(k.kic_key, secret, lens[i] / 2);
    assert_memory_equal(k.kid_key, secret + lens[i] / 2, lens[i] / 2);
    assert_true(sms_sp_keys_lwm2m_profile(&k));
  }
  static const size_t bad_lens[] = {0, 16, 31, 33, 40, 62};
  for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
    memset(&k, 0x5A, sizeof(k));
    assert_int_equal(sms_sp_keys_parse(params_lwm2m, 7, secret, bad_lens[i], &k),
                     SMS_SP_ERR_KEY_LENGTH);
    sms_sp_keys_t zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&k, &zero, sizeof(k)); /* wiped on error */
  }
  assert_int_equal(sms_sp_keys_parse(params_lwm2m, 6, secret, 32, &k), SMS_SP_ERR_PARAMS_LENGTH);
  assert_int_equal(sms_sp_keys_parse(params_lwm2m, 8, secret, 32, &k), SMS_SP_ERR_PARAMS_LENGTH);
  assert_int_equal(sms_sp_keys_parse(NULL, 7, secret, 32, &k), SMS_SP_ERR_ARG);
  assert_int_equal(sms_sp_keys_parse(params_lwm2m, 7, secret, 32, NULL), SMS_SP_ERR_ARG);
  sms_sp_keys_clear(&k);
  sms_sp_keys_clear(NULL);
}

static sms_sp_err_t parse_with(uint8_t kic, uint8_t kid, uint8_t spi1, const uint8_t tar[3]) {
  uint8_t params[7] = {kic, kid, spi1, 0x00, tar[0], tar[1], tar[2]};
  uint8_t secret[32] = {1, 2, 3};
  sms_sp_keys_t k;
  sms_sp_err_t err = sms_sp_keys_parse(params, 7, secret, 32, &k);
  sms_sp_keys_clear(&k);
  return err;
}

/* 102 225 5.2.2/5.2.3: b2b1 01 = DES, b4b3 00 = DES CBC, 11 = DES ECB (KIc); 01/10 = 3DES. */
static void test_keys_refused(void **state) {
  (void)state;
  static const uint8_t tar[3] = {0xB2, 0x02, 0x03};
  assert_int_equal(parse_with(0x11, 0x12, 0x16, tar), SMS_SP_ERR_DES); /* KIc DES CBC */
  assert_int_equal(parse_with(0x1D, 0x12, 0x16, tar), SMS_SP_ERR_DES); /* KIc DES ECB */
  assert_int_equal(parse_with(0x12, 0x01, 0x16, tar), SMS_SP_ERR_DES); /* KID DES CBC */
  assert_int_equal(parse_with(0x11, 0x12, 0x12, tar), SMS_SP_ERR_DES); /* even unciphered */
  assert_int_equal(parse_with(0x15, 0x12, 0x16, tar), SMS_SP_ERR_ALGORITHM); /* 3DES 2 keys */
  assert_int_equal(parse_with(0x12, 0x19, 0x16, tar), SMS_SP_ERR_ALGORITHM); /* 3DES 3 keys */
  assert_int_equal(parse_with(0x16, 0x12, 0x16, tar), SMS_SP_ERR_ALGORITHM); /* AES mode 01 */
  assert_int_equal(parse_with(0x12, 0x13, 0x16, tar), SMS_SP_ERR_ALGORITHM); /* proprietary */
  assert_int_equal(parse_with(0x10, 0x12, 0x16, tar), SMS_SP_ERR_ALGORITHM); /* implicit */
  assert_int_equal(parse_with(0x10, 0x12, 0x12, tar), SMS_SP_OK); /* KIc unused unciphered */
  assert_int_equal(parse_with(0x12, 0x12, 0x14, tar), SMS_SP_ERR_SPI_INTEGRITY); /* none */
  assert_int_equal(parse_with(0x12, 0x12, 0x15, tar), SMS_SP_ERR_SPI_INTEGRITY); /* RC */
  assert_int_equal(parse_with(0x12, 0x12, 0x17, tar), SMS_SP_ERR_SPI_INTEGRITY); /* DS */
  static const uint8_t ram_tar[3] = {0x00, 0x00, 0x00};
  static const uint8_t near_tar[3] = {0xB2, 0x02, 0x04};
  assert_int_equal(parse_with(0x12, 0x12, 0x16, ram_tar), SMS_SP_ERR_TAR);
  assert_int_equal(parse_with(0x12, 0x12, 0x16, near_tar), SMS_SP_ERR_TAR);

  /* Encoding and decoding check the keys too: hand-filled keys with DES are refused. */
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t pkt[64];
  size_t n;
  uint64_t c;
  k.kic = 0x01;
  assert_int_equal(sms_sp_encode(&k, 1, (const uint8_t *)"x", 1, pkt, sizeof(pkt), &n),
                   SMS_SP_ERR_DES);
  assert_int_equal(n, 0);
  assert_int_equal(sms_sp_decode(&k, pkt, 0, pkt, sizeof(pkt), &n, &c), SMS_SP_ERR_DES);
}

static void test_lwm2m_profile(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(0x16, 0x00, 16);
  assert_true(sms_sp_keys_lwm2m_profile(&k));
  k.spi[0] = 0x1E; /* exactly one higher: stricter, still "only when higher" */
  assert_true(sms_sp_keys_lwm2m_profile(&k));
  k.spi[0] = 0x12; /* no ciphering */
  assert_false(sms_sp_keys_lwm2m_profile(&k));
  k.spi[0] = 0x0E; /* counter without replay check */
  assert_false(sms_sp_keys_lwm2m_profile(&k));
  k.spi[0] = 0x06; /* no counter */
  assert_false(sms_sp_keys_lwm2m_profile(&k));
  k.spi[0] = 0x16;
  k.kic = 0x11;
  assert_false(sms_sp_keys_lwm2m_profile(&k));
  assert_false(sms_sp_keys_lwm2m_profile(NULL));
}

/* ---- Command Packet octets worked out from 31.115 4 / 102 225 5.1.1 ---- */

static void test_encode_header_by_hand_ciphered(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0x00, 16);
  const uint8_t data[10] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
  uint8_t pkt[64];
  size_t n;
  /* CNTR(5) PCNTR(1) CC(8) + 10 octets = 24: 8 octets of padding to 32. CPL counts CHL(1),
   * SPI..TAR(7) and the 32 ciphered octets: 40 = 0x28; CHL = 13 + 8 = 21 = 0x15. */
  assert_int_equal(sms_sp_encode(&k, 1, data, sizeof(data), pkt, sizeof(pkt), &n), SMS_SP_OK);
  assert_int_equal(n, 42);
  assert_int_equal(sms_sp_encoded_len(&k, sizeof(data)), 42);
  static const uint8_t header[10] = {0x00, 0x28, 0x15, 0x16, 0x00, 0x12, 0x12, 0xB2, 0x02, 0x03};
  assert_memory_equal(pkt, header, 10);

  /* Decrypting with AES-CBC, zero IV, shows CNTR, PCNTR, CC, data and zero padding. */
  uint8_t plain[32], iv[16] = {0};
  assert_int_equal(sms_sp_aes_cbc(false, k.kic_key, 16, iv, pkt + 10, 32, plain), SMS_SP_OK);
  static const uint8_t cntr_pcntr[6] = {0x00, 0x00, 0x00, 0x00, 0x01, 0x08};
  assert_memory_equal(plain, cntr_pcntr, 6);
  assert_memory_equal(plain + 14, data, 10);
  static const uint8_t zeros[8] = {0};
  assert_memory_equal(plain + 24, zeros, 8);

  /* CC: the leftmost 8 octets of AES-CMAC over CPL .. PCNTR, data and padding. */
  uint8_t mac_in[10 + 6 + 18], tag[16];
  memcpy(mac_in, header, 10);
  memcpy(mac_in + 10, cntr_pcntr, 6);
  memcpy(mac_in + 16, data, 10);
  memset(mac_in + 26, 0, 8);
  assert_int_equal(sms_sp_aes_cmac(k.kid_key, 16, mac_in, sizeof(mac_in), tag), SMS_SP_OK);
  assert_memory_equal(plain + 6, tag, 8);

  uint8_t out[64];
  uint64_t c;
  assert_int_equal(decode_exact(&k, pkt, n, out, sizeof(out), &n, &c), SMS_SP_OK);
  assert_int_equal(n, 10);
  assert_memory_equal(out, data, 10);
  assert_int_equal(c, 1);
}

static void test_encode_header_by_hand_clear(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CLEAR_HIGHER, 0x21, 24);
  k.kic = 0x22;
  k.kid = 0x32;
  const uint8_t data[3] = {0xC0, 0xFF, 0xEE};
  uint8_t pkt[64];
  size_t n;
  assert_int_equal(sms_sp_encode(&k, 0x0102030405ull, data, 3, pkt, sizeof(pkt), &n),
                   SMS_SP_OK);
  assert_int_equal(n, 27);
  static const uint8_t clear[16] = {0x00, 0x19, 0x15, 0x12, 0x21, 0x22, 0x32, 0xB2,
                                    0x02, 0x03, 0x01, 0x02, 0x03, 0x04, 0x05, 0x00};
  assert_memory_equal(pkt, clear, 16);
  assert_memory_equal(pkt + 24, data, 3);
  uint8_t mac_in[19], tag[16];
  memcpy(mac_in, clear, 16);
  memcpy(mac_in + 16, data, 3);
  assert_int_equal(sms_sp_aes_cmac(k.kid_key, 24, mac_in, sizeof(mac_in), tag), SMS_SP_OK);
  assert_memory_equal(pkt + 16, tag, 8);
}

/* Padding lengths: every data length 0..48 gives a ciphered part of whole blocks, PCNTR < 16,
 * and round-trips; the packet is 24 + len + pad octets. */
static void test_padding_all_lengths(void **state) {
  (void)state;
  static const size_t key_lens[] = {16, 24, 32};
  for (size_t ki = 0; ki < 3; ki++) {
    sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, key_lens[ki]);
    for (size_t len = 0; len <= 48; len++) {
      uint8_t data[48], pkt[96], out[96];
      for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(len + i);
      size_t n, m;
      uint64_t c;
      assert_int_equal(sms_sp_encode(&k, len + 1, data, len, pkt, sizeof(pkt), &n), SMS_SP_OK);
      assert_int_equal((n - 10) % 16, 0);
      size_t pad = n - 24 - len;
      assert_true(pad < 16);
      assert_int_equal(n, sms_sp_encoded_len(&k, len));
      assert_int_equal(decode_exact(&k, pkt, n, out, n - 24, &m, &c), SMS_SP_OK);
      assert_int_equal(m, len);
      assert_memory_equal(out, data, len);
      assert_int_equal(c, len + 1);
    }
  }
}

/* ---- interop vectors from scripts/secured_packet.py ---- */

static FILE *open_vectors(void) {
  const char *env = getenv("SECURED_PACKET_VECTORS");
  if (env && *env)
    return fopen(env, "r");
  char path[4096];
  const char *slash = strrchr(__FILE__, '/');
  size_t dir = slash ? (size_t)(slash - __FILE__) + 1 : 0;
  snprintf(path, sizeof(path), "%.*ssecured_packet_vectors.txt", (int)dir, __FILE__);
  return fopen(path, "r");
}

static void test_python_vectors(void **state) {
  (void)state;
  FILE *f = open_vectors();
  assert_non_null(f); /* set SECURED_PACKET_VECTORS when the source tree moved */
  static char line[8192];
  int count = 0;
  while (fgets(line, sizeof(line), f)) {
    if (line[0] == '#' || line[0] == '\n')
      continue;
    char name[64], params_hex[32], secret_hex[160], cntr_hex[16];
    static char data_hex[4096], pkt_hex[4096];
    assert_int_equal(sscanf(line, "%63s %31s %159s %15s %4095s %4095s", name, params_hex,
                            secret_hex, cntr_hex, data_hex, pkt_hex),
                     6);
    uint8_t params[7], secret[64];
    static uint8_t data[2048], pkt[2048], enc[2048], out[2048];
    assert_int_equal(unhex(params_hex, params, sizeof(params)), 7);
    size_t secret_len = unhex(secret_hex, secret, sizeof(secret));
    size_t data_len = strcmp(data_hex, "-") == 0 ? 0 : unhex(data_hex, data, sizeof(data));
    size_t pkt_len = unhex(pkt_hex, pkt, sizeof(pkt));
    uint64_t counter = strtoull(cntr_hex, NULL, 16);

    sms_sp_keys_t k;
    assert_int_equal(sms_sp_keys_parse(params, 7, secret, secret_len, &k), SMS_SP_OK);
    size_t n;
    uint64_t c;
    /* Python encoded; C decodes it ... */
    assert_int_equal(decode_exact(&k, pkt, pkt_len, out, sizeof(out), &n, &c), SMS_SP_OK);
    assert_int_equal(n, data_len);
    assert_memory_equal(out, data, data_len);
    assert_int_equal(c, counter);
    /* ... and encodes the same octets. */
    assert_int_equal(sms_sp_encode(&k, counter, data, data_len, enc, sizeof(enc), &n), SMS_SP_OK);
    assert_int_equal(n, pkt_len);
    assert_memory_equal(enc, pkt, pkt_len);
    sms_sp_keys_clear(&k);
    count++;
  }
  fclose(f);
  assert_true(count >= 13);
}

/* ---- tampering, truncation, errors ---- */

static void tamper_every_octet(const sms_sp_keys_t *k) {
  uint8_t data[40], pkt[96], out[96];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 3);
  size_t n, m;
  uint64_t c;
  assert_int_equal(sms_sp_encode(k, 500, data, sizeof(data), pkt, sizeof(pkt), &n), SMS_SP_OK);
  static const uint8_t flips[] = {0x01, 0x80, 0xFF};
  for (size_t i = 0; i < n; i++) {
    for (size_t f = 0; f < sizeof(flips); f++) {
      uint8_t bad[96];
      memcpy(bad, pkt, n);
      bad[i] ^= flips[f];
      sms_sp_err_t want = SMS_SP_ERR_CHECKSUM;
      if (i < 2)
        want = SMS_SP_ERR_CPL;
      else if (i == 2)
        want = SMS_SP_ERR_CHL;
      else if (i == 3)
        want = (bad[3] & 0x1F) != (pkt[3] & 0x1F) ? SMS_SP_ERR_SPI_MISMATCH
                                                  : SMS_SP_ERR_CHECKSUM; /* reserved bits */
      else if (i == 4)
        want = SMS_SP_ERR_CHECKSUM; /* PoR octet: not compared, but covered by the CC */
      else if (i == 5 || i == 6)
        want = (bad[i] & 0x0F) == 0x01 || (bad[i] & 0x0F) == 0x0D ? SMS_SP_ERR_DES
                                                                  : SMS_SP_ERR_KEYID_MISMATCH;
      else if (i < 10)
        want = SMS_SP_ERR_TAR;
      memset(out, 0xAA, sizeof(out));
      assert_int_equal(decode_exact(k, bad, n, out, sizeof(out), &m, &c), want);
      assert_int_equal(m, 0);
      assert_int_equal(c, 0);
      if (want == SMS_SP_ERR_CHECKSUM) { /* the plaintext does not stay in out */
        for (size_t j = 0; j < n - 24; j++)
          assert_int_equal(out[j], 0);
      }
    }
  }
}

static void test_tamper_each_field(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0x00, 16);
  tamper_every_octet(&k);
  k = make_keys(SPI_CLEAR_HIGHER, 0x01, 32);
  tamper_every_octet(&k);
}

static void test_truncated_and_extended(void **state) {
  (void)state;
  for (int ciphered = 0; ciphered < 2; ciphered++) {
    sms_sp_keys_t k = make_keys(ciphered ? SPI_CIPHER_HIGHER : SPI_CLEAR_HIGHER, 0, 16);
    uint8_t data[33], pkt[128], out[128];
    memset(data, 0x42, sizeof(data));
    size_t n, m;
    uint64_t c;
    assert_int_equal(sms_sp_encode(&k, 7, data, sizeof(data), pkt, sizeof(pkt), &n), SMS_SP_OK);
    for (size_t len = 0; len < n; len++) {
      /* As cut, and with CPL fixed up to the cut length. */
      assert_int_not_equal(decode_exact(&k, pkt, len, out, sizeof(out), &m, &c), SMS_SP_OK);
      uint8_t fixed[128];
      memcpy(fixed, pkt, len);
      if (len >= 2) {
        fixed[0] = (uint8_t)((len - 2) >> 8);
        fixed[1] = (uint8_t)(len - 2);
      }
      sms_sp_err_t err = decode_exact(&k, fixed, len, out, sizeof(out), &m, &c);
      assert_int_not_equal(err, SMS_SP_OK);
      if (len >= 10 && len < 24)
        assert_int_equal(err, SMS_SP_ERR_TOO_SHORT);
      if (ciphered && len >= 24 && (len - 10) % 16)
        assert_int_equal(err, SMS_SP_ERR_BLOCK_LENGTH);
    }
    pkt[n] = 0;
    assert_int_equal(decode_exact(&k, pkt, n + 1, out, sizeof(out), &m, &c), SMS_SP_ERR_CPL);
    pkt[1]++;
    assert_int_equal(decode_exact(&k, pkt, n + 1, out, sizeof(out), &m, &c),
                     ciphered ? SMS_SP_ERR_BLOCK_LENGTH : SMS_SP_ERR_CHECKSUM);
  }
}

static void test_wrong_keys(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t pkt[64], out[64];
  size_t n, m;
  uint64_t c;
  assert_int_equal(sms_sp_encode(&k, 9, (const uint8_t *)"hello", 5, pkt, sizeof(pkt), &n),
                   SMS_SP_OK);
  sms_sp_keys_t other = k;
  other.kid_key[0] ^= 1;
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_CHECKSUM);
  other = k;
  other.kic_key[15] ^= 0x80;
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_CHECKSUM);
  other = k;
  other.spi[0] = SPI_CLEAR_HIGHER; /* a receiver that expects no ciphering */
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c),
                   SMS_SP_ERR_SPI_MISMATCH);
  other = k;
  other.spi[0] = 0x1E; /* another counter mode */
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c),
                   SMS_SP_ERR_SPI_MISMATCH);
  other = k;
  other.spi[1] = 0x21; /* another PoR request: not compared */
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c), SMS_SP_OK);
  other = k;
  other.kid = 0x22; /* another key indication */
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c),
                   SMS_SP_ERR_KEYID_MISMATCH);
  other = k;
  other.tar[2] = 0x04;
  assert_int_equal(decode_exact(&other, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_TAR);
}

/* A packet with a valid CC but a PCNTR that cannot be: built by hand with the primitives. */
static size_t build_with_pcntr(const sms_sp_keys_t *k, bool cipher, uint8_t pcntr,
                               size_t body_len, uint8_t *pkt) {
  size_t n = 24 + body_len;
  pkt[0] = (uint8_t)((n - 2) >> 8);
  pkt[1] = (uint8_t)(n - 2);
  pkt[2] = 21;
  pkt[3] = k->spi[0];
  pkt[4] = k->spi[1];
  pkt[5] = k->kic;
  pkt[6] = k->kid;
  memcpy(pkt + 7, k->tar, 3);
  memset(pkt + 10, 0, 5);
  pkt[14] = 1;
  pkt[15] = pcntr;
  memset(pkt + 24, 0x33, body_len);
  uint8_t mac_in[256], tag[16];
  memcpy(mac_in, pkt, 16);
  memcpy(mac_in + 16, pkt + 24, body_len);
  assert_int_equal(sms_sp_aes_cmac(k->kid_key, k->kid_key_len, mac_in, 16 + body_len, tag),
                   SMS_SP_OK);
  memcpy(pkt + 16, tag, 8);
  if (cipher) {
    uint8_t iv[16] = {0};
    assert_int_equal(
        sms_sp_aes_cbc(true, k->kic_key, k->kic_key_len, iv, pkt + 10, n - 10, pkt + 10),
        SMS_SP_OK);
  }
  return n;
}

static void test_padding_counter_checked_after_cc(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t pkt[128], out[128];
  size_t m;
  uint64_t c;
  size_t n = build_with_pcntr(&k, true, 15, 18, pkt); /* 15 of 18 octets: fine */
  assert_int_equal(decode_exact(&k, pkt, n, out, sizeof(out), &m, &c), SMS_SP_OK);
  assert_int_equal(m, 3);
  n = build_with_pcntr(&k, true, 16, 18, pkt); /* a whole block of padding */
  assert_int_equal(decode_exact(&k, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_PADDING);
  n = build_with_pcntr(&k, true, 3, 2, pkt); /* more padding than data */
  assert_int_equal(decode_exact(&k, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_PADDING);
  sms_sp_keys_t clear = make_keys(SPI_CLEAR_HIGHER, 0, 16);
  n = build_with_pcntr(&clear, false, 1, 5, pkt); /* padding without ciphering */
  assert_int_equal(decode_exact(&clear, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_PADDING);
  n = build_with_pcntr(&clear, false, 0, 5, pkt);
  assert_int_equal(decode_exact(&clear, pkt, n, out, sizeof(out), &m, &c), SMS_SP_OK);
  assert_int_equal(m, 5);
}

static void test_encode_errors(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t data[20] = {1}, pkt[64];
  size_t n = 99;
  assert_int_equal(sms_sp_encode(&k, SMS_SP_COUNTER_MAX, data, 20, pkt, sizeof(pkt), &n),
                   SMS_SP_OK);
  assert_int_equal(sms_sp_encode(&k, SMS_SP_COUNTER_MAX + 1, data, 20, pkt, sizeof(pkt), &n),
                   SMS_SP_ERR_COUNTER_RANGE);
  assert_int_equal(n, 0);
  assert_int_equal(sms_sp_encode(&k, 1, data, 20, pkt, 57, &n), SMS_SP_ERR_BUFFER_TOO_SMALL);
  assert_int_equal(sms_sp_encode(&k, 1, data, 20, pkt, 58, &n), SMS_SP_OK); /* 10 + 48 */
  assert_int_equal(sms_sp_encode(&k, 1, pkt + 30, 10, pkt, sizeof(pkt), &n), SMS_SP_ERR_ARG);
  assert_int_equal(sms_sp_encode(&k, 1, NULL, 1, pkt, sizeof(pkt), &n), SMS_SP_ERR_ARG);
  assert_int_equal(sms_sp_encode(&k, 1, data, 1, pkt, sizeof(pkt), NULL), SMS_SP_ERR_ARG);
  assert_int_equal(sms_sp_encode(NULL, 1, data, 1, pkt, sizeof(pkt), &n), SMS_SP_ERR_ARG);
  /* CPL is 16 bits: 65535 octets after it at most. */
  size_t big = 65537 - 24 - 15;
  uint8_t *huge = calloc(1, big + 64), *hout = malloc(65537 + 64);
  assert_non_null(huge);
  assert_non_null(hout);
  size_t ok_len = 0;
  for (size_t len = big; len < big + 40; len++) { /* the largest length that still fits */
    if (sms_sp_encoded_len(&k, len))
      ok_len = len;
  }
  assert_true(ok_len > 0);
  assert_int_equal(sms_sp_encode(&k, 1, huge, ok_len, hout, 65537, &n), SMS_SP_OK);
  assert_true(n <= 65537);
  assert_int_equal((size_t)(hout[0] << 8 | hout[1]), n - 2);
  assert_int_equal(sms_sp_encode(&k, 1, huge, ok_len + 16, hout, 65537 + 64, &n),
                   SMS_SP_ERR_TOO_LONG);
  free(huge);
  free(hout);
}

static void test_decode_errors(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t data[20] = {0}, pkt[64], out[64];
  size_t n, m = 5;
  uint64_t c = 5;
  assert_int_equal(sms_sp_encode(&k, 3, data, 20, pkt, sizeof(pkt), &n), SMS_SP_OK);
  assert_int_equal(n, 58);
  assert_int_equal(decode_exact(&k, pkt, n, out, n - 25, &m, &c), SMS_SP_ERR_BUFFER_TOO_SMALL);
  assert_int_equal(m, 0);
  assert_int_equal(c, 0);
  assert_int_equal(decode_exact(&k, pkt, n, out, n - 24, &m, &c), SMS_SP_OK);
  assert_int_equal(sms_sp_decode(&k, pkt, n, out, sizeof(out), NULL, &c), SMS_SP_ERR_ARG);
  assert_int_equal(sms_sp_decode(&k, NULL, 3, out, sizeof(out), &m, &c), SMS_SP_ERR_ARG);
  assert_int_equal(sms_sp_decode(&k, pkt, 0, out, sizeof(out), &m, &c), SMS_SP_ERR_TOO_SHORT);
  /* A received header that names DES, whatever the keys, is refused as such. */
  pkt[5] = 0x11;
  assert_int_equal(decode_exact(&k, pkt, n, out, sizeof(out), &m, &c), SMS_SP_ERR_DES);
}

/* ---- counters (102 225 5.2.1 b5b4; LwM2M 5.3.2.1.3 "process if ... higher") ---- */

static void test_counter_modes(void **state) {
  (void)state;
  const uint8_t none[2] = {0x06, 0}, avail[2] = {0x0E, 0}, higher[2] = {0x16, 0},
                plus1[2] = {0x1E, 0};
  assert_true(sms_sp_counter_acceptable(none, 10, 3));
  assert_true(sms_sp_counter_acceptable(avail, 10, 10));
  assert_false(sms_sp_counter_acceptable(avail, 0, SMS_SP_COUNTER_MAX + 1));
  assert_true(sms_sp_counter_acceptable(higher, 10, 11));
  assert_true(sms_sp_counter_acceptable(higher, 10, 500));
  assert_false(sms_sp_counter_acceptable(higher, 10, 10)); /* replay */
  assert_false(sms_sp_counter_acceptable(higher, 10, 9));
  assert_false(sms_sp_counter_acceptable(higher, SMS_SP_COUNTER_MAX, SMS_SP_COUNTER_MAX));
  assert_true(sms_sp_counter_acceptable(higher, SMS_SP_COUNTER_MAX - 1, SMS_SP_COUNTER_MAX));
  assert_false(sms_sp_counter_acceptable(higher, 0, SMS_SP_COUNTER_MAX + 1));
  assert_true(sms_sp_counter_acceptable(plus1, 10, 11));
  assert_false(sms_sp_counter_acceptable(plus1, 10, 12));
  assert_false(sms_sp_counter_acceptable(plus1, 10, 10));
  assert_false(sms_sp_counter_acceptable(plus1, SMS_SP_COUNTER_MAX, 0));
  assert_false(sms_sp_counter_acceptable(NULL, 0, 1));
  const uint8_t reserved_bits[2] = {0xF6, 0xFF}; /* b8..b6 ignored */
  assert_false(sms_sp_counter_acceptable(reserved_bits, 10, 10));
}

/* The flow a receiver follows: decode, check the counter, remember it only when accepted. */
static void test_replayed_packet_rejected(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t p5[64], p4[64], out[64];
  size_t n5, n4, m;
  uint64_t c, last = 0;
  assert_int_equal(sms_sp_encode(&k, 5, (const uint8_t *)"five", 4, p5, sizeof(p5), &n5),
                   SMS_SP_OK);
  assert_int_equal(sms_sp_encode(&k, 4, (const uint8_t *)"four", 4, p4, sizeof(p4), &n4),
                   SMS_SP_OK);
  assert_int_equal(decode_exact(&k, p5, n5, out, sizeof(out), &m, &c), SMS_SP_OK);
  assert_true(sms_sp_counter_acceptable(k.spi, last, c));
  last = c;
  assert_int_equal(decode_exact(&k, p5, n5, out, sizeof(out), &m, &c), SMS_SP_OK);
  assert_false(sms_sp_counter_acceptable(k.spi, last, c)); /* the same SMS again */
  assert_int_equal(decode_exact(&k, p4, n4, out, sizeof(out), &m, &c), SMS_SP_OK);
  assert_false(sms_sp_counter_acceptable(k.spi, last, c)); /* an older one */
}

/* ---- BER-TLV ---- */

static void test_tlv(void **state) {
  (void)state;
  static uint8_t value[70000], buf[70010];
  for (size_t i = 0; i < sizeof(value); i++)
    value[i] = (uint8_t)i;
  static const struct {
    size_t len, hdr;
    uint8_t b1;
  } cases[] = {{0, 2, 0x00}, {1, 2, 0x01}, {127, 2, 0x7F}, {128, 3, 0x81},
               {255, 3, 0x81}, {256, 4, 0x82}, {65535, 4, 0x82}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t n;
    const uint8_t *v;
    size_t vlen;
    assert_int_equal(sms_sp_tlv_wrap(SMS_SP_TAG_COAP, value, cases[i].len, buf, sizeof(buf), &n),
                     SMS_SP_OK);
    assert_int_equal(n, cases[i].hdr + cases[i].len);
    assert_int_equal(buf[0], 0x05);
    assert_int_equal(buf[1], cases[i].b1);
    assert_int_equal(sms_sp_tlv_unwrap(SMS_SP_TAG_COAP, buf, n, &v, &vlen), SMS_SP_OK);
    assert_int_equal(vlen, cases[i].len);
    assert_ptr_equal(v, buf + cases[i].hdr);
    assert_memory_equal(v, value, vlen);
    assert_int_equal(sms_sp_tlv_unwrap(SMS_SP_TAG_COAP, buf, n - 1 + (n == 2), &v, &vlen),
                     n == 2 ? SMS_SP_OK : SMS_SP_ERR_TLV_LENGTH);
    assert_int_equal(sms_sp_tlv_unwrap(0x06, buf, n, &v, &vlen), SMS_SP_ERR_TLV_TAG);
    assert_int_equal(sms_sp_tlv_wrap(SMS_SP_TAG_COAP, value, cases[i].len, buf, n - 1, &n),
                     SMS_SP_ERR_BUFFER_TOO_SMALL);
  }
  size_t n;
  assert_int_equal(sms_sp_tlv_wrap(5, value, 65536, buf, sizeof(buf), &n), SMS_SP_ERR_TOO_LONG);
  const uint8_t *v;
  size_t vlen;
  static const uint8_t non_minimal[] = {0x05, 0x81, 0x02, 0xAA, 0xBB};
  assert_int_equal(sms_sp_tlv_unwrap(5, non_minimal, sizeof(non_minimal), &v, &vlen), SMS_SP_OK);
  assert_int_equal(vlen, 2);
  static const uint8_t trailing[] = {0x05, 0x01, 0xAA, 0xBB};
  assert_int_equal(sms_sp_tlv_unwrap(5, trailing, 4, &v, &vlen), SMS_SP_ERR_TLV_LENGTH);
  static const uint8_t indefinite[] = {0x05, 0x80, 0xAA, 0x00, 0x00};
  assert_int_equal(sms_sp_tlv_unwrap(5, indefinite, 5, &v, &vlen), SMS_SP_ERR_TLV_LENGTH);
  static const uint8_t three_octets[] = {0x05, 0x83, 0x00, 0x00, 0x01, 0xAA};
  assert_int_equal(sms_sp_tlv_unwrap(5, three_octets, 6, &v, &vlen), SMS_SP_ERR_TLV_LENGTH);
  static const uint8_t cut[] = {0x05, 0x82, 0x00};
  assert_int_equal(sms_sp_tlv_unwrap(5, cut, 3, &v, &vlen), SMS_SP_ERR_TLV_LENGTH);
  assert_int_equal(sms_sp_tlv_unwrap(5, cut, 1, &v, &vlen), SMS_SP_ERR_TLV_LENGTH);
  assert_int_equal(sms_sp_tlv_unwrap(5, cut, 0, &v, &vlen), SMS_SP_ERR_TLV_TAG);
  /* Wrapping in place (value at the start of out) works: the value is moved. */
  memcpy(buf, "abc", 3);
  assert_int_equal(sms_sp_tlv_wrap(5, buf, 3, buf, sizeof(buf), &n), SMS_SP_OK);
  assert_memory_equal(buf, "\x05\x03" "abc", 5);
}

/* ---- in SMS ---- */

static void test_sms_count(void **state) {
  (void)state;
  assert_int_equal(sms_sp_sms_count(0, false), 1);
  assert_int_equal(sms_sp_sms_count(137, false), 1);
  assert_int_equal(sms_sp_sms_count(138, false), 2);
  assert_int_equal(sms_sp_sms_count(132 + 134, false), 2);
  assert_int_equal(sms_sp_sms_count(132 + 135, false), 3);
  assert_int_equal(sms_sp_sms_count(131 + 133, true), 2);
  assert_int_equal(sms_sp_sms_count(131 + 134, true), 3);
  assert_int_equal(sms_sp_sms_count(132 + 254 * 134, false), 255);
  assert_int_equal(sms_sp_sms_count(132 + 254 * 134 + 1, false), 0);
  sms_sp_part_t part;
  uint8_t pkt[40000];
  assert_int_equal(sms_sp_sms_part(pkt, sizeof(pkt), false, 1, 0, &part),
                   SMS_SP_ERR_TOO_MANY_PARTS);
  assert_int_equal(sms_sp_sms_part(pkt, 100, false, 1, 1, &part), SMS_SP_ERR_ARG);
}

/* The largest secured data that fits one SMS (137 octets after the UDH): ciphered 98, as 14 +
 * 98 = 112 is 7 blocks (122 octets; 99 needs an 8th: 138); in clear 137 - 24 = 113. */
static void test_single_sms_capacity(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  size_t max = 0;
  for (size_t len = 0; len < 140; len++)
    if (sms_sp_encoded_len(&k, len) <= SMS_SP_SINGLE_MAX)
      max = len;
  assert_int_equal(max, 98);
  k.spi[0] = SPI_CLEAR_HIGHER;
  max = 0;
  for (size_t len = 0; len < 140; len++)
    if (sms_sp_encoded_len(&k, len) <= SMS_SP_SINGLE_MAX)
      max = len;
  assert_int_equal(max, 113);
}

/* A single SMS-SUBMIT: TP-PID 7F, TP-DCS F6, TP-UDHI, UDH 02 70 00, then the packet. */
static void test_submit_single(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t pkt[64], pdu[SMS_PDU_MAX];
  size_t n, pdu_len, tpdu_len;
  assert_int_equal(sms_sp_encode(&k, 1, (const uint8_t *)"ping", 4, pkt, sizeof(pkt), &n),
                   SMS_SP_OK);
  sms_sp_part_t part;
  assert_int_equal(sms_sp_sms_part(pkt, n, false, 0, 0, &part), SMS_SP_OK);
  assert_ptr_equal(part.data, pkt);
  assert_int_equal(part.len, n);
  assert_false(part.udh.has_concat);
  sms_submit_t submit;
  sms_sp_submit_init(&submit, "14155550125");
  submit.udh = part.udh;
  assert_int_equal(sms_pdu_encode_submit(&submit, part.data, part.len, pdu, sizeof(pdu),
                                         &pdu_len, &tpdu_len),
                   SMS_OK);
  /* 00 | 41 (SUBMIT, UDHI) | MR 00 | DA 0B 91 41 51 55 05 21 F5 | PID 7F | DCS F6 | UDL */
  static const uint8_t head[] = {0x00, 0x41, 0x00, 0x0B, 0x91, 0x41, 0x51, 0x55,
                                 0x05, 0x21, 0xF5, 0x7F, 0xF6};
  assert_memory_equal(pdu, head, sizeof(head));
  assert_int_equal(pdu[sizeof(head)], 3 + n);
  static const uint8_t udh[] = {0x02, 0x70, 0x00};
  assert_memory_equal(pdu + sizeof(head) + 1, udh, 3);
  assert_memory_equal(pdu + sizeof(head) + 4, pkt, n);
  assert_int_equal(pdu_len, sizeof(head) + 4 + n);

  sms_udh_t parsed;
  size_t udh_len;
  assert_int_equal(sms_udh_parse(pdu + sizeof(head) + 1, 3 + n, &parsed, &udh_len), SMS_OK);
  assert_int_equal(udh_len, 3);
  assert_true(parsed.has_security);
  assert_int_equal(parsed.security_iei, SMS_IEI_CPI);
  assert_false(parsed.has_concat);
}

/* Concatenated: CPI only in the first part (07 70 00 00 03 ref total 01), then 05 00 03 ...;
 * joining the slices gives the packet back. */
static void test_submit_concatenated(void **state) {
  (void)state;
  sms_sp_keys_t k = make_keys(SPI_CIPHER_HIGHER, 0, 16);
  uint8_t data[300], pkt[400], joined[400];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i ^ 0x5A);
  size_t n;
  assert_int_equal(sms_sp_encode(&k, 77, data, sizeof(data), pkt, sizeof(pkt), &n), SMS_SP_OK);
  assert_int_equal(n, 330); /* 10 + 14 + 300 = 324, + 6 padding */
  for (int ref16 = 0; ref16 < 2; ref16++) {
    size_t parts = sms_sp_sms_count(n, ref16);
    assert_int_equal(parts, 3);
    size_t joined_len = 0;
    for (size_t i = 0; i < parts; i++) {
      sms_sp_part_t part;
      assert_int_equal(sms_sp_sms_part(pkt, n, ref16, 0x1234, i, &part), SMS_SP_OK);
      assert_true(part.udh.has_concat);
      assert_int_equal(part.udh.concat.total, 3);
      assert_int_equal(part.udh.concat.seq, i + 1);
      assert_int_equal(part.udh.concat.ref, ref16 ? 0x1234 : 0x34);
      assert_int_equal(part.udh.has_security, i == 0);
      uint8_t ud[SMS_UD_OCTETS_MAX];
      size_t udh_len;
      assert_int_equal(sms_udh_encode(&part.udh, ud, sizeof(ud), &udh_len), SMS_OK);
      assert_int_equal(udh_len + part.len <= SMS_UD_OCTETS_MAX, true);
      if (i == 0 && !ref16) {
        static const uint8_t first[] = {0x07, 0x70, 0x00, 0x00, 0x03, 0x34, 0x03, 0x01};
        assert_int_equal(udh_len, sizeof(first));
        assert_memory_equal(ud, first, sizeof(first));
        assert_int_equal(part.len, 132);
      } else if (i == 1 && !ref16) {
        static const uint8_t next[] = {0x05, 0x00, 0x03, 0x34, 0x03, 0x02};
        assert_int_equal(udh_len, sizeof(next));
        assert_memory_equal(ud, next, sizeof(next));
        assert_int_equal(part.len, 134);
      } else if (i == 0 && ref16) {
        static const uint8_t first16[] = {0x08, 0x70, 0x00, 0x08, 0x04, 0x12, 0x34, 0x03, 0x01};
        assert_memory_equal(ud, first16, sizeof(first16));
        assert_int_equal(part.len, 131);
      }
      sms_submit_t submit;
      sms_sp_submit_init(&submit, "14155550125");
      submit.udh = part.udh;
      uint8_t pdu[SMS_PDU_MAX];
      size_t pdu_len, tpdu_len;
      assert_int_equal(sms_pdu_encode_submit(&submit, part.data, part.len, pdu, sizeof(pdu),
                                             &pdu_len, &tpdu_len),
                       SMS_OK);
      memcpy(joined + joined_len, part.data, part.len);
      joined_len += part.len;
    }
    assert_int_equal(joined_len, n);
    assert_memory_equal(joined, pkt, n);
  }
}

/* The sms_pdu extension: a security header IE outside 0x70..0x7F is refused; one with data is
 * only listed; a class-2 DCS and a PID are accepted by the SUBMIT encoder. */
static void test_sms_pdu_extension(void **state) {
  (void)state;
  sms_udh_t udh;
  memset(&udh, 0, sizeof(udh));
  udh.has_security = true;
  udh.security_iei = 0x6F;
  uint8_t buf[16];
  size_t n;
  assert_int_equal(sms_udh_encode(&udh, buf, sizeof(buf), &n), SMS_ERR_ARG);
  udh.security_iei = SMS_IEI_RPI;
  assert_int_equal(sms_udh_encode(&udh, buf, sizeof(buf), &n), SMS_OK);
  assert_int_equal(n, 3);
  assert_memory_equal(buf, "\x02\x71\x00", 3);
  static const uint8_t with_data[] = {0x03, 0x70, 0x01, 0xAA};
  sms_udh_t parsed;
  assert_int_equal(sms_udh_parse(with_data, sizeof(with_data), &parsed, &n), SMS_OK);
  assert_false(parsed.has_security);
  assert_int_equal(parsed.ie_count, 1);
  sms_submit_t submit;
  sms_submit_init(&submit, "123");
  assert_int_equal(submit.pid, SMS_PID_PLAIN);
  assert_int_equal(submit.dcs, SMS_DCS_8BIT);
}

static void test_strerror(void **state) {
  (void)state;
  for (int e = 0; e < SMS_SP_ERR__COUNT; e++) {
    const char *s = sms_sp_strerror((sms_sp_err_t)e);
    assert_non_null(s);
    assert_string_not_equal(s, "unknown secured packet error");
    for (int o = 0; o < e; o++)
      assert_string_not_equal(s, sms_sp_strerror((sms_sp_err_t)o));
  }
  assert_string_equal(sms_sp_strerror(SMS_SP_ERR__COUNT), "unknown secured packet error");
  assert_string_equal(sms_sp_strerror((sms_sp_err_t)-1), "unknown secured packet error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cmac_known_answers),
      cmocka_unit_test(test_cmac_matches_mbedtls),
      cmocka_unit_test(test_cbc_known_answers),
      cmocka_unit_test(test_keys_parse),
      cmocka_unit_test(test_keys_refused),
      cmocka_unit_test(test_lwm2m_profile),
      cmocka_unit_test(test_encode_header_by_hand_ciphered),
      cmocka_unit_test(test_encode_header_by_hand_clear),
      cmocka_unit_test(test_padding_all_lengths),
      cmocka_unit_test(test_python_vectors),
      cmocka_unit_test(test_tamper_each_field),
      cmocka_unit_test(test_truncated_and_extended),
      cmocka_unit_test(test_wrong_keys),
      cmocka_unit_test(test_padding_counter_checked_after_cc),
      cmocka_unit_test(test_encode_errors),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_counter_modes),
      cmocka_unit_test(test_replayed_packet_rejected),
      cmocka_unit_test(test_tlv),
      cmocka_unit_test(test_sms_count),
      cmocka_unit_test(test_single_sms_capacity),
      cmocka_unit_test(test_submit_single),
      cmocka_unit_test(test_submit_concatenated),
      cmocka_unit_test(test_sms_pdu_extension),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
