/* lwm2m-gw: SMS Secured Packets (LwM2M Transport 5.3.2.1.3; 3GPP TS 31.115 4; ETSI TS 102 225
 * 5). See secured_packet.h for the layout and sms/README.md for the decisions. */
#include "secured_packet.h"

#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/platform_util.h>

static const char *const sms_sp_err_names[SMS_SP_ERR__COUNT] = {
    [SMS_SP_OK] = "success",
    [SMS_SP_ERR_ARG] = "invalid argument",
    [SMS_SP_ERR_PARAMS_LENGTH] = "SMS key parameters are not 7 octets (KIc, KID, SPI, TAR)",
    [SMS_SP_ERR_KEY_LENGTH] = "SMS secret keys are not two AES keys of 16, 24 or 32 octets",
    [SMS_SP_ERR_DES] = "KIc or KID selects single DES, which LwM2M forbids",
    [SMS_SP_ERR_ALGORITHM] = "KIc is not AES-CBC or KID is not AES-CMAC",
    [SMS_SP_ERR_SPI_INTEGRITY] = "SPI does not ask for a cryptographic checksum",
    [SMS_SP_ERR_TAR] = "TAR is not B2 02 03 (LwM2M UICC application)",
    [SMS_SP_ERR_COUNTER_RANGE] = "counter above 2^40 - 1",
    [SMS_SP_ERR_TOO_SHORT] = "secured packet shorter than its header",
    [SMS_SP_ERR_TOO_LONG] = "secured packet longer than CPL can say",
    [SMS_SP_ERR_CPL] = "CPL does not match the packet length",
    [SMS_SP_ERR_CHL] = "CHL is not 21",
    [SMS_SP_ERR_SPI_MISMATCH] = "SPI differs from the provisioned one",
    [SMS_SP_ERR_KEYID_MISMATCH] = "KIc or KID differs from the provisioned one",
    [SMS_SP_ERR_BLOCK_LENGTH] = "ciphered part is not a whole number of AES blocks",
    [SMS_SP_ERR_CHECKSUM] = "cryptographic checksum does not match",
    [SMS_SP_ERR_PADDING] = "bad padding counter",
    [SMS_SP_ERR_BUFFER_TOO_SMALL] = "output buffer too small",
    [SMS_SP_ERR_CRYPTO] = "AES key setup failed",
    [SMS_SP_ERR_TLV_TAG] = "secured data does not start with the expected tag",
    [SMS_SP_ERR_TLV_LENGTH] = "secured data BER-TLV length is malformed",
    [SMS_SP_ERR_TOO_MANY_PARTS] = "secured packet needs more than 255 SMS",
};

const char *sms_sp_strerror(sms_sp_err_t err) {
  if ((unsigned)err < SMS_SP_ERR__COUNT && sms_sp_err_names[err])
    return sms_sp_err_names[err];
  return "unknown secured packet error";
}

/* ---- AES-CBC and AES-CMAC on the block function ---- */

static bool aes_key_len_ok(size_t len) {
  return len == 16 || len == 24 || len == 32;
}

static sms_sp_err_t cbc_run(bool encrypt, const uint8_t *key, size_t key_len,
                            const uint8_t iv_in[16], const uint8_t *in, size_t len,
                            uint8_t *out) {
  if (!aes_key_len_ok(key_len))
    return SMS_SP_ERR_KEY_LENGTH;
  if (len % SMS_SP_BLOCK)
    return SMS_SP_ERR_BLOCK_LENGTH;
  mbedtls_aes_context aes;
  mbedtls_aes_init(&aes);
  int rc = encrypt ? mbedtls_aes_setkey_enc(&aes, key, (unsigned)key_len * 8)
                   : mbedtls_aes_setkey_dec(&aes, key, (unsigned)key_len * 8);
  uint8_t chain[16], block[16];
  memcpy(chain, iv_in, 16);
  for (size_t off = 0; rc == 0 && off < len; off += 16) {
    if (encrypt) {
      for (size_t i = 0; i < 16; i++)
        block[i] = in[off + i] ^ chain[i];
      rc = mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, block, out + off);
      memcpy(chain, out + off, 16);
    } else {
      uint8_t next[16];
      memcpy(next, in + off, 16); /* in and out may be the same buffer */
      rc = mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_DECRYPT, next, block);
      for (size_t i = 0; i < 16; i++)
        out[off + i] = block[i] ^ chain[i];
      memcpy(chain, next, 16);
    }
  }
  mbedtls_aes_free(&aes);
  mbedtls_platform_zeroize(block, sizeof(block));
  return rc == 0 ? SMS_SP_OK : SMS_SP_ERR_CRYPTO;
}

sms_sp_err_t sms_sp_aes_cbc(bool encrypt, const uint8_t *key, size_t key_len,
                            const uint8_t iv[16], const uint8_t *in, size_t len, uint8_t *out) {
  if (!key || !iv || ((!in || !out) && len))
    return SMS_SP_ERR_ARG;
  return cbc_run(encrypt, key, key_len, iv, in, len, out);
}

/* Streaming CMAC (SP 800-38B 6.2): the last block, complete or not, stays in buf until
 * cmac_finish() knows it is the last. A failure sticks in rc; cmac_finish() always wipes. */
typedef struct {
  mbedtls_aes_context aes;
  uint8_t x[16];
  uint8_t buf[16];
  size_t buf_len;
  int rc;
} cmac_t;

static void cmac_start(cmac_t *c, const uint8_t *key, size_t key_len) {
  mbedtls_aes_init(&c->aes);
  memset(c->x, 0, sizeof(c->x));
  c->buf_len = 0;
  c->rc = mbedtls_aes_setkey_enc(&c->aes, key, (unsigned)key_len * 8);
}

static void cmac_update(cmac_t *c, const uint8_t *msg, size_t len) {
  while (len && c->rc == 0) {
    if (c->buf_len == 16) {
      for (size_t i = 0; i < 16; i++)
        c->x[i] ^= c->buf[i];
      c->rc = mbedtls_aes_crypt_ecb(&c->aes, MBEDTLS_AES_ENCRYPT, c->x, c->x);
      c->buf_len = 0;
    }
    size_t n = 16 - c->buf_len < len ? 16 - c->buf_len : len;
    memcpy(c->buf + c->buf_len, msg, n);
    c->buf_len += n;
    msg += n;
    len -= n;
  }
}

/* Doubling in GF(2^128) (SP 800-38B 6.1; RFC 4493 2.3: shift left, xor 0x87 on carry). */
static void cmac_double(uint8_t b[16]) {
  uint8_t carry = b[0] >> 7;
  for (size_t i = 0; i < 15; i++)
    b[i] = (uint8_t)(b[i] << 1 | b[i + 1] >> 7);
  b[15] = (uint8_t)(b[15] << 1) ^ (uint8_t)(0x87 & -carry);
}

static int cmac_finish(cmac_t *c, uint8_t tag[16]) {
  uint8_t k[16] = {0};
  int rc = c->rc;
  if (rc == 0)
    rc = mbedtls_aes_crypt_ecb(&c->aes, MBEDTLS_AES_ENCRYPT, k, k); /* L = E(K, 0) */
  if (rc == 0) {
    cmac_double(k); /* K1 */
    if (c->buf_len < 16) {
      cmac_double(k); /* K2, with 10* padding */
      c->buf[c->buf_len] = 0x80;
      memset(c->buf + c->buf_len + 1, 0, 15 - c->buf_len);
    }
    for (size_t i = 0; i < 16; i++)
      c->x[i] ^= c->buf[i] ^ k[i];
    rc = mbedtls_aes_crypt_ecb(&c->aes, MBEDTLS_AES_ENCRYPT, c->x, tag);
  }
  mbedtls_platform_zeroize(k, sizeof(k));
  mbedtls_platform_zeroize(c->x, sizeof(c->x));
  mbedtls_platform_zeroize(c->buf, sizeof(c->buf));
  mbedtls_aes_free(&c->aes);
  return rc;
}

sms_sp_err_t sms_sp_aes_cmac(const uint8_t *key, size_t key_len, const uint8_t *msg,
                             size_t len, uint8_t out_tag[16]) {
  if (!key || !out_tag || (!msg && len))
    return SMS_SP_ERR_ARG;
  if (!aes_key_len_ok(key_len))
    return SMS_SP_ERR_KEY_LENGTH;
  cmac_t c;
  cmac_start(&c, key, key_len);
  cmac_update(&c, msg, len);
  return cmac_finish(&c, out_tag) == 0 ? SMS_SP_OK : SMS_SP_ERR_CRYPTO;
}

/* CC over the 16 header octets CPL .. PCNTR and the secured data with its padding: 102 225
 * 5.1.1 covers the header and the padded secured data, 31.115 4 adds the SMS length fields CPL
 * and CHL (a whole block before the checksum). The leftmost 8 octets of the CMAC (SP 800-38B
 * truncation); sms/README.md says why 8. */
static sms_sp_err_t compute_cc(const sms_sp_keys_t *keys, const uint8_t head[16],
                               const uint8_t *data, size_t len, uint8_t cc[SMS_SP_CC_LEN]) {
  uint8_t tag[16] = {0};
  cmac_t c;
  cmac_start(&c, keys->kid_key, keys->kid_key_len);
  cmac_update(&c, head, 16);
  cmac_update(&c, data, len);
  int rc = cmac_finish(&c, tag);
  memcpy(cc, tag, SMS_SP_CC_LEN);
  mbedtls_platform_zeroize(tag, sizeof(tag));
  return rc == 0 ? SMS_SP_OK : SMS_SP_ERR_CRYPTO;
}

/* ---- keys ---- */

/* KIc/KID b2b1 = 01 is DES; b4b3 then picks DES CBC (00), 3DES with 2 (01) or 3 keys (10), or
 * DES ECB (11, KIc only; reserved for KID). Only the single-DES codings are "DES" here. */
static bool selects_single_des(uint8_t k) {
  return (k & 0x03) == 0x01 && ((k & 0x0C) == 0x00 || (k & 0x0C) == 0x0C);
}

static bool is_aes_mode0(uint8_t k) {
  return (k & 0x0F) == 0x02; /* AES, CBC for KIc, CMAC for KID */
}

static const uint8_t tar_lwm2m[3] = SMS_SP_TAR_LWM2M;

sms_sp_err_t sms_sp_keys_check(const sms_sp_keys_t *keys) {
  if (!keys)
    return SMS_SP_ERR_ARG;
  bool cipher = keys->spi[0] & SMS_SP_SPI1_CIPHER;
  if (selects_single_des(keys->kic) || selects_single_des(keys->kid))
    return SMS_SP_ERR_DES;
  if ((keys->spi[0] & SMS_SP_SPI1_INTEGRITY_MASK) != SMS_SP_SPI1_CC)
    return SMS_SP_ERR_SPI_INTEGRITY;
  if (!is_aes_mode0(keys->kid) || (cipher && !is_aes_mode0(keys->kic)))
    return SMS_SP_ERR_ALGORITHM;
  if (!aes_key_len_ok(keys->kid_key_len) || (cipher && !aes_key_len_ok(keys->kic_key_len)) ||
      keys->kic_key_len > SMS_SP_KEY_MAX)
    return SMS_SP_ERR_KEY_LENGTH;
  if (memcmp(keys->tar, tar_lwm2m, 3) != 0)
    return SMS_SP_ERR_TAR;
  return SMS_SP_OK;
}

bool sms_sp_keys_lwm2m_profile(const sms_sp_keys_t *keys) {
  if (sms_sp_keys_check(keys) != SMS_SP_OK)
    return false;
  uint8_t mode = keys->spi[0] & SMS_SP_SPI1_COUNTER_MASK;
  return (keys->spi[0] & SMS_SP_SPI1_CIPHER) &&
         (mode == SMS_SP_COUNTER_HIGHER || mode == SMS_SP_COUNTER_PLUS_ONE);
}

void sms_sp_keys_clear(sms_sp_keys_t *keys) {
  if (keys)
    mbedtls_platform_zeroize(keys, sizeof(*keys));
}

sms_sp_err_t sms_sp_keys_parse(const uint8_t *params, size_t params_len, const uint8_t *secret,
                               size_t secret_len, sms_sp_keys_t *out) {
  if (!out || (!params && params_len) || (!secret && secret_len))
    return SMS_SP_ERR_ARG;
  sms_sp_keys_clear(out);
  if (params_len != SMS_SP_PARAMS_LEN)
    return SMS_SP_ERR_PARAMS_LENGTH;
  /* LwM2M Transport 5.3: "stored in the order KIC, KID, SPI, TAR (KIC is byte 0)". */
  out->kic = params[0];
  out->kid = params[1];
  out->spi[0] = params[2];
  out->spi[1] = params[3];
  memcpy(out->tar, params + 4, 3);
  if (secret_len % 2 || !aes_key_len_ok(secret_len / 2)) {
    sms_sp_keys_clear(out);
    return SMS_SP_ERR_KEY_LENGTH;
  }
  size_t half = secret_len / 2;
  memcpy(out->kic_key, secret, half);
  out->kic_key_len = half;
  memcpy(out->kid_key, secret + half, half);
  out->kid_key_len = half;
  sms_sp_err_t err = sms_sp_keys_check(out);
  if (err != SMS_SP_OK)
    sms_sp_keys_clear(out);
  return err;
}

/* ---- Command Packets ---- */

static size_t padding_for(const sms_sp_keys_t *keys, size_t data_len) {
  if (!(keys->spi[0] & SMS_SP_SPI1_CIPHER))
    return 0;
  size_t ciphered = 5 + 1 + SMS_SP_CC_LEN + data_len; /* CNTR, PCNTR, CC, data */
  return (SMS_SP_BLOCK - ciphered % SMS_SP_BLOCK) % SMS_SP_BLOCK;
}

size_t sms_sp_encoded_len(const sms_sp_keys_t *keys, size_t data_len) {
  if (sms_sp_keys_check(keys) != SMS_SP_OK || data_len > SMS_SP_PACKET_MAX)
    return 0;
  size_t total = SMS_SP_OVERHEAD + data_len + padding_for(keys, data_len);
  return total <= SMS_SP_PACKET_MAX ? total : 0;
}

static void put_counter(uint8_t *p, uint64_t counter) {
  for (int i = 4; i >= 0; i--) {
    p[i] = (uint8_t)counter;
    counter >>= 8;
  }
}

static uint64_t get_counter(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 5; i++)
    v = v << 8 | p[i];
  return v;
}

sms_sp_err_t sms_sp_encode(const sms_sp_keys_t *keys, uint64_t counter, const uint8_t *data,
                           size_t len, uint8_t *out, size_t cap, size_t *out_len) {
  if (!out_len)
    return SMS_SP_ERR_ARG;
  *out_len = 0;
  if (!keys || (!data && len) || (!out && cap))
    return SMS_SP_ERR_ARG;
  sms_sp_err_t err = sms_sp_keys_check(keys);
  if (err != SMS_SP_OK)
    return err;
  if (counter > SMS_SP_COUNTER_MAX)
    return SMS_SP_ERR_COUNTER_RANGE;
  size_t total = sms_sp_encoded_len(keys, len);
  if (total == 0)
    return SMS_SP_ERR_TOO_LONG;
  if (total > cap)
    return SMS_SP_ERR_BUFFER_TOO_SMALL;
  uintptr_t d = (uintptr_t)data, o = (uintptr_t)out;
  if (len && d < o + total && o < d + len)
    return SMS_SP_ERR_ARG;
  size_t pad = padding_for(keys, len);

  /* 31.115 4: CPL (from CHL to the end of the secured data with padding; CHI is null), CHL
   * (SPI .. RC/CC/DS), SPI, KIc, KID, TAR, then CNTR, PCNTR, CC, secured data, padding. */
  size_t cpl = total - 2;
  out[0] = (uint8_t)(cpl >> 8);
  out[1] = (uint8_t)cpl;
  out[2] = SMS_SP_CHL;
  out[3] = keys->spi[0];
  out[4] = keys->spi[1];
  out[5] = keys->kic;
  out[6] = keys->kid;
  memcpy(out + 7, keys->tar, 3);
  put_counter(out + 10, counter);
  out[15] = (uint8_t)pad;
  uint8_t *body = out + SMS_SP_OVERHEAD;
  if (len)
    memcpy(body, data, len);
  memset(body + len, 0, pad);
  err = compute_cc(keys, out, body, len + pad, out + 16);
  if (err == SMS_SP_OK && (keys->spi[0] & SMS_SP_SPI1_CIPHER)) {
    /* 102 225: CNTR onwards is ciphered, AES in CBC mode with an all-zero initial vector. */
    static const uint8_t zero_iv[16] = {0};
    err = cbc_run(true, keys->kic_key, keys->kic_key_len, zero_iv, out + SMS_SP_CLEAR_LEN,
                  total - SMS_SP_CLEAR_LEN, out + SMS_SP_CLEAR_LEN);
  }
  if (err != SMS_SP_OK) {
    mbedtls_platform_zeroize(out, total);
    return err;
  }
  *out_len = total;
  return SMS_SP_OK;
}

static bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n) {
  uint8_t diff = 0;
  for (size_t i = 0; i < n; i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}

sms_sp_err_t sms_sp_decode(const sms_sp_keys_t *keys, const uint8_t *pkt, size_t len,
                           uint8_t *out, size_t cap, size_t *out_len, uint64_t *out_counter) {
  if (!out_len || !out_counter)
    return SMS_SP_ERR_ARG;
  *out_len = 0;
  *out_counter = 0;
  if (!keys || (!pkt && len) || (!out && cap))
    return SMS_SP_ERR_ARG;
  sms_sp_err_t err = sms_sp_keys_check(keys);
  if (err != SMS_SP_OK)
    return err;

  /* The clear header first: no key is used on a packet that is not meant for these keys. */
  if (len < SMS_SP_CLEAR_LEN)
    return SMS_SP_ERR_TOO_SHORT;
  if ((size_t)(pkt[0] << 8 | pkt[1]) != len - 2)
    return SMS_SP_ERR_CPL;
  if (pkt[2] != SMS_SP_CHL)
    return SMS_SP_ERR_CHL;
  if (selects_single_des(pkt[5]) || selects_single_des(pkt[6]))
    return SMS_SP_ERR_DES;
  /* LwM2M 5.3.2: discard what is not protected with the expected parameters. SPI b8..b6 are
   * reserved; the second octet only asks for a PoR, which this side never sends. */
  if ((pkt[3] & 0x1F) != (keys->spi[0] & 0x1F))
    return SMS_SP_ERR_SPI_MISMATCH;
  if (pkt[5] != keys->kic || pkt[6] != keys->kid)
    return SMS_SP_ERR_KEYID_MISMATCH;
  if (memcmp(pkt + 7, keys->tar, 3) != 0)
    return SMS_SP_ERR_TAR;
  if (len < SMS_SP_OVERHEAD)
    return SMS_SP_ERR_TOO_SHORT;
  bool cipher = keys->spi[0] & SMS_SP_SPI1_CIPHER;
  if (cipher && (len - SMS_SP_CLEAR_LEN) % SMS_SP_BLOCK)
    return SMS_SP_ERR_BLOCK_LENGTH;
  size_t body_len = len - SMS_SP_OVERHEAD; /* secured data with its padding */
  if (cap < body_len)
    return SMS_SP_ERR_BUFFER_TOO_SMALL;

  /* head: CPL .. PCNTR in clear; cc: the received checksum; out: the padded secured data. */
  uint8_t head[16], cc[SMS_SP_CC_LEN], want[SMS_SP_CC_LEN];
  memcpy(head, pkt, SMS_SP_CLEAR_LEN);
  if (cipher) {
    static const uint8_t zero_iv[16] = {0};
    /* The first block holds CNTR, PCNTR, CC and two octets of data (len - 10 is a multiple
     * of 16, so at least 16); the rest chains on the first ciphertext block. */
    uint8_t first[16] = {0};
    err = cbc_run(false, keys->kic_key, keys->kic_key_len, zero_iv, pkt + SMS_SP_CLEAR_LEN, 16,
                  first);
    if (err == SMS_SP_OK && len - SMS_SP_CLEAR_LEN > 16)
      err = cbc_run(false, keys->kic_key, keys->kic_key_len, pkt + SMS_SP_CLEAR_LEN,
                    pkt + SMS_SP_CLEAR_LEN + 16, len - SMS_SP_CLEAR_LEN - 16, out + 2);
    memcpy(head + SMS_SP_CLEAR_LEN, first, 6);
    memcpy(cc, first + 6, SMS_SP_CC_LEN);
    memcpy(out, first + 14, 2);
    mbedtls_platform_zeroize(first, sizeof(first));
  } else {
    memcpy(head + SMS_SP_CLEAR_LEN, pkt + SMS_SP_CLEAR_LEN, 6);
    memcpy(cc, pkt + 16, SMS_SP_CC_LEN);
    if (body_len)
      memcpy(out, pkt + SMS_SP_OVERHEAD, body_len);
  }
  if (err == SMS_SP_OK)
    err = compute_cc(keys, head, out, body_len, want);
  if (err == SMS_SP_OK && !equal_ct(cc, want, SMS_SP_CC_LEN))
    err = SMS_SP_ERR_CHECKSUM;
  /* Only an authentic PCNTR is looked at (no padding oracle). */
  size_t pcntr = head[15];
  if (err == SMS_SP_OK &&
      (pcntr > body_len || (cipher ? pcntr >= SMS_SP_BLOCK : pcntr != 0)))
    err = SMS_SP_ERR_PADDING;
  uint64_t counter = get_counter(head + SMS_SP_CLEAR_LEN);
  mbedtls_platform_zeroize(head, sizeof(head));
  mbedtls_platform_zeroize(want, sizeof(want));
  if (err != SMS_SP_OK) {
    if (body_len)
      mbedtls_platform_zeroize(out, body_len);
    return err;
  }
  if (pcntr)
    mbedtls_platform_zeroize(out + body_len - pcntr, pcntr);
  *out_len = body_len - pcntr;
  *out_counter = counter;
  return SMS_SP_OK;
}

bool sms_sp_counter_acceptable(const uint8_t spi[2], uint64_t last, uint64_t received) {
  if (!spi || received > SMS_SP_COUNTER_MAX)
    return false;
  switch (spi[0] & SMS_SP_SPI1_COUNTER_MASK) {
  case SMS_SP_COUNTER_HIGHER:
    return received > last;
  case SMS_SP_COUNTER_PLUS_ONE:
    return last < SMS_SP_COUNTER_MAX && received == last + 1;
  default: /* no counter; counter available without replay checking */
    return true;
  }
}

/* ---- BER-TLV ---- */

sms_sp_err_t sms_sp_tlv_wrap(uint8_t tag, const uint8_t *value, size_t len, uint8_t *out,
                             size_t cap, size_t *out_len) {
  if (!out_len)
    return SMS_SP_ERR_ARG;
  *out_len = 0;
  if ((!value && len) || (!out && cap))
    return SMS_SP_ERR_ARG;
  if (len > 0xFFFF)
    return SMS_SP_ERR_TOO_LONG;
  size_t hdr = len < 0x80 ? 2 : len <= 0xFF ? 3 : 4;
  if (cap < hdr || cap - hdr < len)
    return SMS_SP_ERR_BUFFER_TOO_SMALL;
  if (len)
    memmove(out + hdr, value, len); /* first: value may sit at the start of out */
  out[0] = tag;
  if (hdr == 2) {
    out[1] = (uint8_t)len;
  } else if (hdr == 3) {
    out[1] = 0x81;
    out[2] = (uint8_t)len;
  } else {
    out[1] = 0x82;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
  }
  *out_len = hdr + len;
  return SMS_SP_OK;
}

sms_sp_err_t sms_sp_tlv_unwrap(uint8_t tag, const uint8_t *tlv, size_t len,
                               const uint8_t **out_value, size_t *out_value_len) {
  if (!out_value || !out_value_len)
    return SMS_SP_ERR_ARG;
  *out_value = NULL;
  *out_value_len = 0;
  if (!tlv && len)
    return SMS_SP_ERR_ARG;
  if (len < 1 || tlv[0] != tag)
    return SMS_SP_ERR_TLV_TAG;
  if (len < 2)
    return SMS_SP_ERR_TLV_LENGTH;
  size_t hdr, vlen;
  if (tlv[1] < 0x80) {
    hdr = 2;
    vlen = tlv[1];
  } else if (tlv[1] == 0x81 && len >= 3) {
    hdr = 3;
    vlen = tlv[2];
  } else if (tlv[1] == 0x82 && len >= 4) {
    hdr = 4;
    vlen = (size_t)tlv[2] << 8 | tlv[3];
  } else {
    return SMS_SP_ERR_TLV_LENGTH;
  }
  if (vlen != len - hdr)
    return SMS_SP_ERR_TLV_LENGTH;
  *out_value = tlv + hdr;
  *out_value_len = vlen;
  return SMS_SP_OK;
}

/* ---- in SMS ---- */

size_t sms_sp_sms_count(size_t pkt_len, bool ref16) {
  if (pkt_len <= SMS_SP_SINGLE_MAX)
    return 1;
  size_t first = SMS_SP_FIRST_MAX_REF8 - ref16, next = SMS_SP_NEXT_MAX_REF8 - ref16;
  size_t parts = 1 + (pkt_len - first + next - 1) / next;
  return parts <= 255 ? parts : 0;
}

sms_sp_err_t sms_sp_sms_part(const uint8_t *pkt, size_t pkt_len, bool ref16, uint16_t ref,
                             size_t index, sms_sp_part_t *out) {
  if (!out || (!pkt && pkt_len))
    return SMS_SP_ERR_ARG;
  memset(out, 0, sizeof(*out));
  size_t parts = sms_sp_sms_count(pkt_len, ref16);
  if (parts == 0)
    return SMS_SP_ERR_TOO_MANY_PARTS;
  if (index >= parts)
    return SMS_SP_ERR_ARG;
  /* 31.115 4: the Command Packet Identifier (IEI 70, no data) opens the UDH of the only or the
   * first SMS; the other parts carry just the concatenation IE (23.040 9.2.3.24.1). */
  if (index == 0) {
    out->udh.has_security = true;
    out->udh.security_iei = SMS_IEI_CPI;
  }
  if (parts == 1) {
    out->data = pkt;
    out->len = pkt_len;
    return SMS_SP_OK;
  }
  size_t first = SMS_SP_FIRST_MAX_REF8 - ref16, next = SMS_SP_NEXT_MAX_REF8 - ref16;
  size_t off = index == 0 ? 0 : first + (index - 1) * next;
  size_t room = index == 0 ? first : next;
  out->data = pkt + off;
  out->len = pkt_len - off < room ? pkt_len - off : room;
  out->udh.has_concat = true;
  out->udh.concat = (sms_concat_t){.ref = ref16 ? ref : (uint16_t)(ref & 0xFF),
                                   .total = (uint8_t)parts,
                                   .seq = (uint8_t)(index + 1),
                                   .ref16 = ref16};
  return SMS_SP_OK;
}

void sms_sp_submit_init(sms_submit_t *submit, const char *destination) {
  sms_submit_init(submit, destination);
  submit->pid = SMS_PID_USIM_DATA_DOWNLOAD;
  submit->dcs = SMS_DCS_8BIT_CLASS2;
}
