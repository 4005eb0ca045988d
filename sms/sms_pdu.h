/* lwm2m-gw: SMS PDU codec (3GPP TS 23.040, 23.038), as an AT modem gives and takes PDUs in PDU
 * mode (3GPP TS 27.005: +CMGL/+CMGR list the SMSC address before the TPDU; AT+CMGS takes the
 * same layout and wants the TPDU length).
 *
 * Pure and I/O-free: no allocation, no logging, no clock. Transport 6.8.3 carries CoAP in 8-bit
 * SMS, so decoding SMS-DELIVER with 8-bit data and encoding SMS-SUBMIT with 8-bit data are the
 * paths the binding uses; GSM 7-bit and UCS2 are decoded to UTF-8 for diagnostics (and for a
 * human typing a trigger SMS). See sms/README.md for what is supported.
 */
#ifndef SMS_PDU_H
#define SMS_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sizes (23.040 9.2.3.16, 9.1.2.5; 24.011 8.2.5.1). */
#define SMS_UD_OCTETS_MAX 140u   /* TP-UD: 140 octets, 160 septets */
#define SMS_UD_SEPTETS_MAX 160u
#define SMS_ADDR_DIGITS_MAX 20u  /* TP-OA/TP-DA: 10 octets of BCD */
#define SMS_SMSC_LEN_MAX 11u     /* RP address: TOA + 10 octets of BCD */
#define SMS_ADDR_STR_MAX 48u     /* digits, or 11 alphanumeric septets as UTF-8, plus NUL */
#define SMS_UD_TEXT_MAX 480u     /* 160 septets as UTF-8 (at most 3 bytes each) */
#define SMS_PDU_MAX 176u         /* SMSC part (12) + the longest TPDU (164), binary */
#define SMS_UDH_MAX_IES 70u      /* a 140-octet UDH of empty IEs */

/* Type-of-address octets (23.040 9.1.2.5). */
#define SMS_TOA_INTERNATIONAL 0x91u /* TON international, ISDN plan (27.007 type 145) */
/* TON unknown, ISDN plan (27.007 type 129): how modems and SMSCs carry a number dialled in
 * national form. (TON "national" proper, 0xA1, is rarely accepted by SMSCs.) */
#define SMS_TOA_NATIONAL 0x81u
#define SMS_TOA_ALPHANUMERIC 0xD0u

/* UDH information element identifiers (23.040 9.2.3.24). */
#define SMS_IEI_CONCAT_8 0x00u
#define SMS_IEI_PORTS_8 0x04u
#define SMS_IEI_PORTS_16 0x05u
#define SMS_IEI_CONCAT_16 0x08u
/* (U)SIM toolkit security headers, IEIs 0x70..0x7F with no data (23.040 9.2.3.24; 3GPP 31.115
 * 4): 0x70 marks a Command Packet, 0x71 a Response Packet (sms/secured_packet.h). */
#define SMS_IEI_CPI 0x70u
#define SMS_IEI_RPI 0x71u

typedef enum {
  SMS_OK = 0,
  SMS_ERR_ARG,              /* NULL pointer or an argument out of range */
  SMS_ERR_HEX_ODD_LENGTH,   /* hex string of odd length */
  SMS_ERR_HEX_DIGIT,        /* non-hex character in a hex string */
  SMS_ERR_BUFFER_TOO_SMALL, /* output does not fit the caller's buffer */
  SMS_ERR_EMPTY,            /* no octet at all */
  SMS_ERR_SMSC_LENGTH,      /* SMSC length octet above 11 */
  SMS_ERR_SMSC_TRUNCATED,   /* SMSC length octet runs past the input */
  SMS_ERR_NO_FIRST_OCTET,   /* input ends after the SMSC address */
  SMS_ERR_ADDRESS_LENGTH,   /* TP-OA/TP-DA/TP-RA length above 20 semi-octets */
  SMS_ERR_ADDRESS_TRUNCATED,/* address runs past the input */
  SMS_ERR_ADDRESS_DIGIT,    /* 0xF nibble inside a BCD number, or a non-digit in an MSISDN */
  SMS_ERR_HEADER_TRUNCATED, /* input ends inside TP-PID, TP-DCS, TP-SCTS or TP-UDL */
  SMS_ERR_DCS_COMPRESSED,   /* TP-DCS says compressed (23.038 4): not supported */
  SMS_ERR_DCS_UNSUPPORTED,  /* TP-DCS the encoder does not produce */
  SMS_ERR_UDL_TOO_LONG,     /* TP-UDL above 160 septets or 140 octets */
  SMS_ERR_UD_TRUNCATED,     /* fewer user data octets than TP-UDL says */
  SMS_ERR_TRAILING_DATA,    /* octets left after the user data TP-UDL says */
  SMS_ERR_UDH_MISSING,      /* TP-UDHI set but no UDH length octet */
  SMS_ERR_UDH_LENGTH,       /* UDH length runs past the user data */
  SMS_ERR_UDH_IE_TRUNCATED, /* an information element runs past the UDH */
  SMS_ERR_UDH_IE_LENGTH,    /* concatenation or port IE with a wrong length */
  SMS_ERR_UCS2_ODD_LENGTH,  /* UCS2 user data of odd length */
  SMS_ERR_UD_TOO_LONG,      /* encoder: UDH plus data above 140 octets */
  SMS_ERR_CONCAT_VALUES,    /* encoder: total 0, seq 0, seq > total, 8-bit ref above 255 */
  SMS_ERR_PORT_VALUES,      /* encoder: 8-bit port above 255 */
  SMS_ERR_TOO_MANY_PARTS,   /* payload needs more than 255 concatenated parts */
  SMS_ERR_NOMEM,            /* allocation failed (concatenated SMS reassembly only) */
  SMS_ERR__COUNT
} sms_err_t;

const char *sms_strerror(sms_err_t err);

/* ---- hex, as modems write PDUs (27.005 3.1: "hexadecimal format") ---- */

/* Decodes hex_len characters of hex (upper or lower case; no spaces) into out. Borrows hex and
 * out. Errors: SMS_ERR_HEX_ODD_LENGTH, SMS_ERR_HEX_DIGIT, SMS_ERR_BUFFER_TOO_SMALL. */
sms_err_t sms_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_size,
                         size_t *out_len);

/* Writes len octets as upper-case hex plus a NUL (needs 2 * len + 1). Borrows bin and out. */
sms_err_t sms_hex_encode(const uint8_t *bin, size_t len, char *out, size_t out_size);

/* ---- user data header (23.040 9.2.3.24) ---- */

typedef struct {
  uint16_t ref;   /* TP concatenation reference: 0..255 for IEI 0x00, 0..65535 for IEI 0x08 */
  uint8_t total;  /* number of parts, 1..255 (0 is malformed) */
  uint8_t seq;    /* this part, 1..total (0 or > total is malformed) */
  bool ref16;     /* IEI 0x08 (9.2.3.24.8) rather than IEI 0x00 (9.2.3.24.1) */
} sms_concat_t;

typedef struct {
  uint16_t dst;
  uint16_t src;
  bool port16;    /* IEI 0x05 (9.2.3.24.4) rather than IEI 0x04 (9.2.3.24.3) */
} sms_ports_t;

typedef struct {
  uint8_t iei;
  uint8_t len;
} sms_udh_ie_t;

typedef struct {
  bool has_concat;
  sms_concat_t concat;
  bool has_ports;
  sms_ports_t ports;
  bool has_security;                 /* a security header IE (0x70..0x7F, length 0) */
  uint8_t security_iei;              /* which: SMS_IEI_CPI, SMS_IEI_RPI, ... */
  uint8_t ie_count;                  /* every IE seen, the skipped ones too */
  sms_udh_ie_t ies[SMS_UDH_MAX_IES]; /* identifiers and lengths, in order */
} sms_udh_t;

/* Parses the UDH at the start of ud (its first octet is the UDH length, UDHL); ud_len is how
 * many octets of user data follow TP-UDL. Borrows ud. On success *out_udh_len is 1 + UDHL.
 * Concatenation values are reported as received (seq 0, seq > total, total 0 included: the
 * reassembly rejects them); a repeated IE overrides the earlier one (23.040 9.2.3.24). IEIs other
 * than 0x00, 0x04, 0x05, 0x08 are listed in ies and otherwise skipped; an IEI 0x70..0x7F of
 * length 0 also sets has_security/security_iei (with another length it is only listed). */
sms_err_t sms_udh_parse(const uint8_t *ud, size_t ud_len, sms_udh_t *out, size_t *out_udh_len);

/* Writes a UDH (length octet, then the security header IE, port IE, concatenation IE, as in
 * WAP push) for the has_security/has_ports/has_concat parts of udh; ies is ignored. Borrows udh
 * and out. Returns the octet count in *out_len (0 when udh has none). Errors: SMS_ERR_ARG
 * (security_iei outside 0x70..0x7F), SMS_ERR_CONCAT_VALUES, SMS_ERR_PORT_VALUES,
 * SMS_ERR_BUFFER_TOO_SMALL. */
sms_err_t sms_udh_encode(const sms_udh_t *udh, uint8_t *out, size_t out_size, size_t *out_len);

/* ---- SMS-DELIVER decoding ---- */

typedef enum {
  SMS_KIND_DELIVER = 0,       /* TP-MTI 00: decoded in full */
  SMS_KIND_SUBMIT = 1,        /* TP-MTI 01: an SMS-SUBMIT stored in the modem, or SUBMIT-REPORT */
  SMS_KIND_STATUS_REPORT = 2, /* TP-MTI 10: fields in .report (best effort) */
  SMS_KIND_RESERVED = 3       /* TP-MTI 11 */
} sms_kind_t;

typedef enum {
  SMS_ALPHABET_GSM7 = 0, /* 23.038 6.2.1 default alphabet with the 6.2.1.1 extension table */
  SMS_ALPHABET_8BIT = 1,
  SMS_ALPHABET_UCS2 = 2
} sms_alphabet_t;

/* Type of number: bits 6..4 of the type-of-address octet (23.040 9.1.2.5). */
typedef enum {
  SMS_TON_UNKNOWN = 0,
  SMS_TON_INTERNATIONAL = 1,
  SMS_TON_NATIONAL = 2,
  SMS_TON_NETWORK = 3,
  SMS_TON_SUBSCRIBER = 4,
  SMS_TON_ALPHANUMERIC = 5,
  SMS_TON_ABBREVIATED = 6,
  SMS_TON_RESERVED = 7
} sms_ton_t;

typedef struct {
  uint8_t toa;                     /* type-of-address octet as received */
  sms_ton_t ton;
  char number[SMS_ADDR_STR_MAX];   /* digits (no '+'; BCD A..E as * # a b c), or UTF-8 text */
} sms_address_t;

/* TP-SCTS / TP-DT (23.040 9.2.3.11): seven octets of swapped BCD. */
typedef struct {
  uint8_t raw[7];
  bool valid;          /* every digit is BCD; otherwise text says "invalid" */
  uint8_t year, month, day, hour, minute, second; /* year: two digits as sent */
  int8_t tz_quarters;  /* offset from GMT in quarters of an hour */
  char text[32];       /* "YY-MM-DD hh:mm:ss +hh:mm" */
} sms_timestamp_t;

typedef struct {
  bool valid;            /* the fixed fields below were all present */
  uint8_t mr;            /* TP-MR of the SMS-SUBMIT it reports on */
  sms_address_t recipient;
  sms_timestamp_t scts;
  sms_timestamp_t discharge;
  uint8_t status;        /* TP-ST (23.040 9.2.3.15): 0x00..0x1F delivered */
} sms_status_report_t;

typedef struct {
  sms_kind_t kind;
  uint8_t first_octet;
  bool has_smsc;         /* false when the SMSC length octet is 00 */
  sms_address_t smsc;
  /* SMS-DELIVER (23.040 9.2.2.1); only meaningful when kind is SMS_KIND_DELIVER. */
  bool more_messages;    /* TP-MMS = 0 */
  bool status_report;    /* TP-SRI */
  bool reply_path;       /* TP-RP */
  bool udhi;             /* TP-UDHI: udh below is valid */
  sms_address_t originator;
  uint8_t pid;
  uint8_t dcs;
  sms_alphabet_t alphabet;
  int msg_class;         /* 0..3, or -1 when TP-DCS gives no class */
  sms_timestamp_t scts;
  uint8_t udl;           /* TP-UDL as sent: septets for GSM 7-bit, octets otherwise */
  sms_udh_t udh;
  /* User data after the UDH: raw octets for 8-bit, UTF-8 for GSM 7-bit and UCS2. Always
   * NUL-terminated (not counted in ud_len) so text can be printed. */
  uint8_t ud[SMS_UD_TEXT_MAX + 1];
  size_t ud_len;
  /* SMS-STATUS-REPORT (23.040 9.2.2.3); only when kind is SMS_KIND_STATUS_REPORT. */
  sms_status_report_t report;
} sms_deliver_t;

/* Decodes a PDU as listed by +CMGL/+CMGR in PDU mode: SMSC length octet (00 = none), SMSC
 * address, then the TPDU. Borrows pdu (nothing in *out points into it). Never reads outside
 * pdu[0..len).
 *
 * Returns SMS_OK with kind SMS_KIND_DELIVER and every field filled; or SMS_OK with another kind
 * when the TPDU is not an SMS-DELIVER (status report, stored SUBMIT, reserved MTI): the caller
 * skips it; only kind, first_octet, smsc and, for status reports, report are filled. Any other
 * return names what is malformed. */
sms_err_t sms_pdu_decode(const uint8_t *pdu, size_t len, sms_deliver_t *out);

/* sms_hex_decode() then sms_pdu_decode(). Borrows hex. */
sms_err_t sms_pdu_decode_hex(const char *hex, size_t hex_len, sms_deliver_t *out);

/* Alphabet and message class of a TP-DCS octet (23.038 4). Reserved codings count as the GSM
 * 7-bit default alphabet, as 23.038 4 requires of a receiver. Returns SMS_ERR_DCS_COMPRESSED
 * for compressed text. *out_class is -1 when there is no class. */
sms_err_t sms_dcs_parse(uint8_t dcs, sms_alphabet_t *out_alphabet, int *out_class);

/* ---- SMS-SUBMIT encoding (23.040 9.2.2.2) ---- */

#define SMS_DCS_8BIT 0x04u        /* general data coding, 8-bit, no class */
#define SMS_DCS_8BIT_CLASS0 0xF4u /* data coding/message class group, 8-bit, class 0 */
#define SMS_DCS_8BIT_CLASS1 0xF5u /* ... class 1 (ME-specific) */
#define SMS_DCS_8BIT_CLASS2 0xF6u /* ... class 2 ((U)SIM-specific: SIM data download) */

/* TP-PID (23.040 9.2.3.9). */
#define SMS_PID_PLAIN 0x00u          /* plain short message (default) */
#define SMS_PID_USIM_DATA_DOWNLOAD 0x7Fu /* 01 111111: to the UICC (LwM2M Transport 5.3.2.1.2) */

typedef struct {
  const char *destination;  /* MSISDN digits, 3GPP 23.003 form ("14155550125"); borrowed */
  bool national;            /* type of address 0x81 instead of international 0x91 */
  uint8_t pid;              /* TP-PID: SMS_PID_PLAIN (default) or SMS_PID_USIM_DATA_DOWNLOAD */
  uint8_t dcs;              /* SMS_DCS_8BIT (default), SMS_DCS_8BIT_CLASS0, _CLASS1, _CLASS2 */
  bool status_report;       /* TP-SRR */
  uint32_t validity_min;    /* 0: no TP-VP (TP-VPF 00, the SMSC default); else relative
                             * TP-VP rounded up to the next step the format has */
  sms_udh_t udh;            /* has_security / has_concat / has_ports select the UDH; zero: none */
} sms_submit_t;

/* Fills *submit with the defaults: TP-PID 00, 8-bit DCS 0x04, international, no TP-VP, no SRR,
 * no UDH. */
void sms_submit_init(sms_submit_t *submit, const char *destination);

/* Encodes an SMS-SUBMIT for AT+CMGS in PDU mode: SMSC length octet 00 (the modem's default
 * SMSC), first octet (TP-MTI 01, TP-RD 0, TP-VPF, TP-SRR, TP-UDHI), TP-MR 00, TP-DA, TP-PID,
 * TP-DCS, [TP-VP], TP-UDL, [UDH] and data. Borrows submit, data and out. *out_len is the whole
 * PDU length; *out_tpdu_len the length AT+CMGS wants (out_len less the SMSC octet).
 * Errors: SMS_ERR_ARG, SMS_ERR_ADDRESS_DIGIT, SMS_ERR_ADDRESS_LENGTH, SMS_ERR_DCS_UNSUPPORTED,
 * SMS_ERR_CONCAT_VALUES, SMS_ERR_PORT_VALUES, SMS_ERR_UD_TOO_LONG, SMS_ERR_BUFFER_TOO_SMALL. */
sms_err_t sms_pdu_encode_submit(const sms_submit_t *submit, const uint8_t *data, size_t data_len,
                                uint8_t *out, size_t out_size, size_t *out_len,
                                size_t *out_tpdu_len);

/* Relative TP-VP (23.040 9.2.3.12.1): the octet for at least minutes (capped at 63 weeks), and
 * the minutes an octet stands for. */
uint8_t sms_validity_relative(uint32_t minutes);
uint32_t sms_validity_minutes(uint8_t vp);

/* ---- description for `lwm2m-gw sms decode HEX` ---- */

/* Writes a multi-line, human-readable description of a decoded PDU into out (always
 * NUL-terminated when out_size > 0, truncated if needed). Borrows pdu and out. Returns the
 * length the whole description needs, without the NUL, as snprintf does. */
size_t sms_pdu_describe(const sms_deliver_t *pdu, char *out, size_t out_size);

#endif
