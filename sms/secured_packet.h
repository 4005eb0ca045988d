/* lwm2m-gw: SMS Secured Packets, the SMS Secured mode of LwM2M Transport 1.2.1 5.3.2.1.3: a CoAP
 * message in the Command Packet of 3GPP TS 31.115 4 / ETSI TS 102 225 5.1.1, ciphered with
 * AES-CBC (KIc) and protected by an AES-CMAC cryptographic checksum (KID).
 *
 * Pure and I/O-free: no allocation, no logging, no clock. Keys stay in the caller's
 * sms_sp_keys_t and in stack buffers this module wipes; nothing here prints them. AES is
 * libmbedcrypto's block function; CBC and CMAC are built on it here, so only MBEDTLS_AES_C is
 * needed (an OpenWrt mbedtls may lack MBEDTLS_CMAC_C). sms/README.md "Secured packets" gives
 * the wire format with its spec sections and what the binding must do.
 *
 * Command Packet as it leaves sms_sp_encode() (31.115 4: CPI is the UDH IE 0x70, CHI is null):
 *
 *   CPL(2) CHL(1)=21 SPI(2) KIc(1) KID(1) TAR(3) | CNTR(5) PCNTR(1) CC(8) data padding
 *   \---------------- never ciphered ----------/ \-- AES-CBC, zero IV, when SPI says so --/
 *
 * CPL counts the octets after itself; CC = the leftmost 8 octets of AES-CMAC(KID key, CPL ..
 * PCNTR || data || padding), computed before ciphering.
 */
#ifndef SECURED_PACKET_H
#define SECURED_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sms_pdu.h"

/* Sizes. */
#define SMS_SP_PARAMS_LEN 7u        /* key parameters: KIc, KID, SPI (2), TAR (3) (LwM2M 5.3) */
#define SMS_SP_KEY_MAX 32u          /* AES-256 */
#define SMS_SP_BLOCK 16u            /* AES block: the ciphered part is a multiple of it */
#define SMS_SP_CC_LEN 8u            /* cryptographic checksum octets (AES-CMAC truncated) */
#define SMS_SP_CHL 21u              /* SPI .. PCNTR (13) + CC (8) */
#define SMS_SP_CLEAR_LEN 10u        /* CPL, CHL, SPI, KIc, KID, TAR: never ciphered */
#define SMS_SP_OVERHEAD 24u         /* CLEAR_LEN + CNTR + PCNTR + CC, before padding */
#define SMS_SP_PACKET_MAX 65537u    /* CPL is 16 bits */
#define SMS_SP_COUNTER_MAX 0xFFFFFFFFFFull /* CNTR: 5 octets */

/* SPI, first octet (102 225 5.2.1; b8..b6 reserved). */
#define SMS_SP_SPI1_INTEGRITY_MASK 0x03u /* b2b1: 00 none, 01 RC, 10 CC, 11 DS */
#define SMS_SP_SPI1_CC 0x02u
#define SMS_SP_SPI1_CIPHER 0x04u         /* b3 */
#define SMS_SP_SPI1_COUNTER_MASK 0x18u   /* b5b4 */
#define SMS_SP_COUNTER_NONE 0x00u        /* no counter */
#define SMS_SP_COUNTER_AVAILABLE 0x08u   /* counter available, no replay check */
#define SMS_SP_COUNTER_HIGHER 0x10u      /* process if higher than the receiver's */
#define SMS_SP_COUNTER_PLUS_ONE 0x18u    /* process if exactly one higher */
/* KIc (102 225 5.2.2) and KID (5.2.3): b2b1 algorithm (01 DES, 10 AES), b4b3 mode (00: DES CBC /
 * AES CBC for KIc, AES CMAC for KID), b8..b5 key indication. 0x12: AES, key 1. */
#define SMS_SP_KIC_AES_CBC 0x02u
#define SMS_SP_KID_AES_CMAC 0x02u
/* The LwM2M UICC application (LwM2M 5.3.2.1.3, ETSI 101 220 Annex D). */
#define SMS_SP_TAR_LWM2M {0xB2u, 0x02u, 0x03u}
/* Tag of the BER-TLV around the CoAP message in the secured data: LwM2M 5.3.2.1.3 leaves it
 * "TBD: e.g. 0x05"; this is that example value. */
#define SMS_SP_TAG_COAP 0x05u

typedef enum {
  SMS_SP_OK = 0,
  SMS_SP_ERR_ARG,             /* NULL pointer or an argument out of range */
  SMS_SP_ERR_PARAMS_LENGTH,   /* key parameters are not 7 octets */
  SMS_SP_ERR_KEY_LENGTH,      /* a key is not of 16, 24 or 32 octets (or the halves differ) */
  SMS_SP_ERR_DES,             /* KIc or KID selects single DES: LwM2M 5.3.2.1.3 forbids it */
  SMS_SP_ERR_ALGORITHM,       /* KIc not AES-CBC or KID not AES-CMAC (3DES, implicit, ...) */
  SMS_SP_ERR_SPI_INTEGRITY,   /* SPI asks for no checksum, a redundancy check or a signature */
  SMS_SP_ERR_TAR,             /* TAR is not B2 02 03 (LwM2M UICC application) */
  SMS_SP_ERR_COUNTER_RANGE,   /* counter above 2^40 - 1 */
  SMS_SP_ERR_TOO_SHORT,       /* packet shorter than its fixed header */
  SMS_SP_ERR_TOO_LONG,        /* encoder: the packet would not fit CPL's 16 bits */
  SMS_SP_ERR_CPL,             /* CPL differs from the octets that follow it */
  SMS_SP_ERR_CHL,             /* CHL is not 21 (13 + an 8-octet checksum) */
  SMS_SP_ERR_SPI_MISMATCH,    /* SPI (first octet) differs from the provisioned one */
  SMS_SP_ERR_KEYID_MISMATCH,  /* KIc or KID differs from the provisioned one */
  SMS_SP_ERR_BLOCK_LENGTH,    /* ciphered part not a whole number of AES blocks */
  SMS_SP_ERR_CHECKSUM,        /* cryptographic checksum does not match */
  SMS_SP_ERR_PADDING,         /* PCNTR above 15, past the data, or set without ciphering */
  SMS_SP_ERR_BUFFER_TOO_SMALL,/* output does not fit the caller's buffer */
  SMS_SP_ERR_CRYPTO,          /* the AES library refused a key */
  SMS_SP_ERR_TLV_TAG,         /* secured data does not start with the expected tag */
  SMS_SP_ERR_TLV_LENGTH,      /* BER-TLV length malformed or not matching the secured data */
  SMS_SP_ERR_TOO_MANY_PARTS,  /* the packet needs more than 255 SMS */
  SMS_SP_ERR__COUNT
} sms_sp_err_t;

const char *sms_sp_strerror(sms_sp_err_t err);

/* ---- keys ---- */

/* The "SMS Binding Key Parameters" and "SMS Binding Secret Keys" of one peer. Holds secrets:
 * wipe it with sms_sp_keys_clear() when done; never print it. */
typedef struct {
  uint8_t kic;             /* KIc octet: algorithm and key indication for ciphering */
  uint8_t kid;             /* KID octet: algorithm and key indication for the checksum */
  uint8_t spi[2];          /* SPI as sent: [0] security, [1] proof of receipt */
  uint8_t tar[3];
  uint8_t kic_key[SMS_SP_KEY_MAX];
  size_t kic_key_len;      /* 16, 24 or 32 (may be 0 when SPI has ciphering off) */
  uint8_t kid_key[SMS_SP_KEY_MAX];
  size_t kid_key_len;      /* 16, 24 or 32 */
} sms_sp_keys_t;

/* Fills *out from the LwM2M key parameters (7 octets in the order KIc, KID, SPI, TAR: LwM2M
 * Transport 5.3) and the secret keys (the KIc key then the KID key, of equal length: 32, 48 or
 * 64 octets), then checks them as sms_sp_keys_check() does. Borrows both inputs. On error *out
 * is wiped. Errors: SMS_SP_ERR_ARG, _PARAMS_LENGTH, _KEY_LENGTH and those of
 * sms_sp_keys_check(). */
sms_sp_err_t sms_sp_keys_parse(const uint8_t *params, size_t params_len, const uint8_t *secret,
                               size_t secret_len, sms_sp_keys_t *out);

/* What the codec accepts: SPI with a cryptographic checksum (b2b1 = 10), KID = AES-CMAC,
 * KIc = AES-CBC when SPI ciphers, no DES anywhere (SMS_SP_ERR_DES), keys of 16/24/32 octets,
 * TAR B2 02 03. SPI's counter mode and second octet are free. */
sms_sp_err_t sms_sp_keys_check(const sms_sp_keys_t *keys);

/* True when keys also follow the LwM2M profile of 5.3.2.1.3: ciphering on and counter mode
 * "process if higher" (or the stricter "exactly one higher"). The codec works without (for
 * tests and debugging); a configuration should warn. */
bool sms_sp_keys_lwm2m_profile(const sms_sp_keys_t *keys);

/* Wipes *keys (memory the compiler cannot drop). */
void sms_sp_keys_clear(sms_sp_keys_t *keys);

/* ---- Command Packets ---- */

/* Octets sms_sp_encode() writes for data_len octets of secured data (padding included); 0 when
 * keys fail sms_sp_keys_check() or the packet would not fit CPL. */
size_t sms_sp_encoded_len(const sms_sp_keys_t *keys, size_t data_len);

/* Writes a Command Packet (CPL .. secured data; the CPI is the UDH, see sms_sp_sms_part())
 * carrying data with counter in CNTR, SPI/KIc/KID/TAR from keys. Ciphering pads with zero
 * octets to the AES block and records their count in PCNTR. Deterministic: same input, same
 * octets. Borrows keys, data and out; out and data must not overlap. Errors: SMS_SP_ERR_ARG,
 * those of sms_sp_keys_check(), _COUNTER_RANGE, _TOO_LONG, _BUFFER_TOO_SMALL, _CRYPTO. On
 * error *out_len is 0 and nothing secret is left in out. */
sms_sp_err_t sms_sp_encode(const sms_sp_keys_t *keys, uint64_t counter, const uint8_t *data,
                           size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Checks and opens a Command Packet (CPL .. end, the whole reassembled SMS payload after the
 * UDH). Borrows keys, pkt and out; never reads outside pkt[0..len). Checks, in order: CPL = len
 * - 2, CHL = 21, KIc/KID not DES, SPI first octet (b5..b1), KIc, KID and TAR equal to keys'
 * (SPI's second octet, the PoR request, is not compared), block length, then the checksum in
 * constant time, and only then PCNTR. out needs len - 24 octets (a buffer of len always does):
 * the padded secured data passes through it; on success *out_len is the data without padding
 * and *out_counter is CNTR.
 *
 * The counter is NOT checked here: the caller must pass *out_counter to
 * sms_sp_counter_acceptable() with the last counter it accepted from this peer, drop the packet
 * when that says no, and remember the new value only then. On any error *out_len and
 * *out_counter are 0 and out holds no plaintext. Errors: SMS_SP_ERR_ARG, those of
 * sms_sp_keys_check(), _TOO_SHORT, _CPL, _CHL, _DES, _SPI_MISMATCH, _KEYID_MISMATCH, _TAR,
 * _BLOCK_LENGTH, _BUFFER_TOO_SMALL, _CHECKSUM, _PADDING, _CRYPTO. */
sms_sp_err_t sms_sp_decode(const sms_sp_keys_t *keys, const uint8_t *pkt, size_t len,
                           uint8_t *out, size_t cap, size_t *out_len, uint64_t *out_counter);

/* Replay check by SPI counter mode (102 225 5.2.1 b5b4): no counter and "counter available"
 * accept anything; "higher" accepts received > last; "exactly one higher" received == last + 1.
 * A counter above 2^40 - 1 is never acceptable. spi is the 2-octet SPI (keys->spi). */
bool sms_sp_counter_acceptable(const uint8_t spi[2], uint64_t last, uint64_t received);

/* ---- secured data: the BER-TLV around the CoAP message (LwM2M 5.3.2.1.3) ---- */

/* Writes tag, BER length (1 octet up to 127, 81 xx up to 255, 82 xx xx up to 65535) and value.
 * Borrows value and out; value may lie at the start of out (it is moved up). Errors:
 * SMS_SP_ERR_ARG, _TOO_LONG, _BUFFER_TOO_SMALL. */
sms_sp_err_t sms_sp_tlv_wrap(uint8_t tag, const uint8_t *value, size_t len, uint8_t *out,
                             size_t cap, size_t *out_len);

/* Reads one TLV with the given tag that spans exactly tlv[0..len) (long-form lengths 81 and 82
 * accepted, also non-minimal). *out_value points into tlv (borrowed). Errors: SMS_SP_ERR_ARG,
 * _TLV_TAG, _TLV_LENGTH. */
sms_sp_err_t sms_sp_tlv_unwrap(uint8_t tag, const uint8_t *tlv, size_t len,
                               const uint8_t **out_value, size_t *out_value_len);

/* ---- in SMS (31.115 4; 23.040 9.2.3.24) ---- */

/* TP-UD octets for a Command Packet: one SMS holds 137 (UDH 02 70 00); concatenated, the first
 * part holds 132 (UDH 07 70 00 00 03 ref total seq: the CPI only in the first part), the next
 * ones 134 (05 00 03 ref total seq); with a 16-bit reference one less each. */
#define SMS_SP_SINGLE_MAX 137u
#define SMS_SP_FIRST_MAX_REF8 132u
#define SMS_SP_NEXT_MAX_REF8 134u

typedef struct {
  const uint8_t *data; /* borrowed from the packet given to sms_sp_sms_part() */
  size_t len;
  sms_udh_t udh;       /* put into sms_submit_t.udh as is */
} sms_sp_part_t;

/* Number of SMS for a Command Packet of pkt_len octets; 0 above 255 parts. */
size_t sms_sp_sms_count(size_t pkt_len, bool ref16);

/* Part index (0-based) of a Command Packet: its slice and its UDH (security header IE 0x70 in
 * the only or first part, concatenation IE with ref when more than one part; an 8-bit ref uses
 * the low 8 bits). Errors: SMS_SP_ERR_ARG (index out of range, NULL), _TOO_MANY_PARTS. */
sms_sp_err_t sms_sp_sms_part(const uint8_t *pkt, size_t pkt_len, bool ref16, uint16_t ref,
                             size_t index, sms_sp_part_t *out);

/* sms_submit_init() for a Command Packet to a UICC: TP-PID 7F (USIM data download) and TP-DCS
 * F6 (8-bit, class 2), as LwM2M 5.3.2.1.2 asks. */
void sms_sp_submit_init(sms_submit_t *submit, const char *destination);

/* ---- the primitives, for their known-answer tests ---- */

/* AES-CMAC (NIST SP 800-38B, RFC 4493): the full 16-octet tag of msg under key. */
sms_sp_err_t sms_sp_aes_cmac(const uint8_t *key, size_t key_len, const uint8_t *msg,
                             size_t len, uint8_t out_tag[16]);

/* AES-CBC (NIST SP 800-38A) over len octets (a multiple of 16) from in to out (may be the same
 * buffer) with the given IV; the Command Packet uses an all-zero IV. */
sms_sp_err_t sms_sp_aes_cbc(bool encrypt, const uint8_t *key, size_t key_len,
                            const uint8_t iv[16], const uint8_t *in, size_t len, uint8_t *out);

#endif
