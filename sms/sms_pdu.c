/* lwm2m-gw: SMS PDU codec (3GPP TS 23.040, 23.038; PDU mode of 3GPP TS 27.005). */
#include "sms_pdu.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gw_error.h"
#include "gw_text.h"

static const char *const sms_err_names[SMS_ERR__COUNT] = {
    [SMS_OK] = "ok",
    [SMS_ERR_ARG] = "invalid argument",
    [SMS_ERR_HEX_ODD_LENGTH] = "hex string of odd length",
    [SMS_ERR_HEX_DIGIT] = "non-hex character in hex string",
    [SMS_ERR_BUFFER_TOO_SMALL] = "output buffer too small",
    [SMS_ERR_EMPTY] = "empty PDU",
    [SMS_ERR_SMSC_LENGTH] = "SMSC address length above 11 octets",
    [SMS_ERR_SMSC_TRUNCATED] = "SMSC address runs past the PDU",
    [SMS_ERR_NO_FIRST_OCTET] = "PDU ends after the SMSC address",
    [SMS_ERR_ADDRESS_LENGTH] = "address length above 20 digits (or empty MSISDN)",
    [SMS_ERR_ADDRESS_TRUNCATED] = "address runs past the PDU",
    [SMS_ERR_ADDRESS_DIGIT] = "invalid digit in address",
    [SMS_ERR_HEADER_TRUNCATED] = "PDU ends inside TP-PID/TP-DCS/TP-SCTS/TP-UDL",
    [SMS_ERR_DCS_COMPRESSED] = "compressed user data (TP-DCS) not supported",
    [SMS_ERR_DCS_UNSUPPORTED] = "TP-DCS not supported by the encoder",
    [SMS_ERR_UDL_TOO_LONG] = "TP-UDL above 160 septets / 140 octets",
    [SMS_ERR_UD_TRUNCATED] = "user data shorter than TP-UDL",
    [SMS_ERR_TRAILING_DATA] = "octets after the user data",
    [SMS_ERR_UDH_MISSING] = "TP-UDHI set but no user data header",
    [SMS_ERR_UDH_LENGTH] = "user data header length runs past the user data",
    [SMS_ERR_UDH_IE_TRUNCATED] = "information element runs past the user data header",
    [SMS_ERR_UDH_IE_LENGTH] = "concatenation or port information element of wrong length",
    [SMS_ERR_UCS2_ODD_LENGTH] = "UCS2 user data of odd length",
    [SMS_ERR_UD_TOO_LONG] = "user data header and data above 140 octets",
    [SMS_ERR_CONCAT_VALUES] = "invalid concatenation reference, total or sequence",
    [SMS_ERR_PORT_VALUES] = "8-bit port above 255",
    [SMS_ERR_TOO_MANY_PARTS] = "payload needs more than 255 concatenated parts",
    [SMS_ERR_NOMEM] = "out of memory",
};

const char *sms_strerror(sms_err_t err) {
  if ((unsigned)err < SMS_ERR__COUNT && sms_err_names[err])
    return sms_err_names[err];
  return "unknown SMS codec error";
}

/* ---- hex ---- */

sms_err_t sms_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_size,
                         size_t *out_len) {
  if ((!hex && hex_len) || !out_len || (!out && out_size))
    return SMS_ERR_ARG;
  *out_len = 0;
  if (hex_len % 2)
    return SMS_ERR_HEX_ODD_LENGTH;
  for (size_t i = 0; i < hex_len; i++)
    if (gw_hex_digit(hex[i]) < 0)
      return SMS_ERR_HEX_DIGIT;
  return gw_hex_decode(hex, hex_len, out, out_size, out_len) == GW_OK ? SMS_OK
                                                                      : SMS_ERR_BUFFER_TOO_SMALL;
}

sms_err_t sms_hex_encode(const uint8_t *bin, size_t len, char *out, size_t out_size) {
  if ((!bin && len) || !out)
    return SMS_ERR_ARG;
  return gw_hex_encode(bin, len, out, out_size) == GW_OK ? SMS_OK : SMS_ERR_BUFFER_TOO_SMALL;
}

/* ---- bounded reading ---- */

typedef struct {
  const uint8_t *p;
  size_t len;
  size_t pos;
} reader_t;

static bool take(reader_t *r, size_t n, const uint8_t **out) {
  if (r->len - r->pos < n)
    return false;
  *out = r->p + r->pos;
  r->pos += n;
  return true;
}

static bool take_u8(reader_t *r, uint8_t *out) {
  const uint8_t *p;
  if (!take(r, 1, &p))
    return false;
  *out = *p;
  return true;
}

/* ---- UTF-8 output ---- */

typedef struct {
  uint8_t *buf;
  size_t cap; /* room for text, the NUL excluded */
  size_t len;
} utf8_out_t;

static bool put_cp(utf8_out_t *o, uint32_t cp) {
  uint8_t tmp[4];
  size_t n;
  if (cp < 0x80) {
    tmp[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    tmp[0] = (uint8_t)(0xC0 | cp >> 6);
    tmp[1] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    tmp[0] = (uint8_t)(0xE0 | cp >> 12);
    tmp[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    tmp[2] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    tmp[0] = (uint8_t)(0xF0 | cp >> 18);
    tmp[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    tmp[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    tmp[3] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 4;
  }
  if (o->cap - o->len < n)
    return false;
  memcpy(o->buf + o->len, tmp, n);
  o->len += n;
  o->buf[o->len] = '\0';
  return true;
}

/* ---- GSM 7-bit default alphabet (23.038 6.2.1) and its extension table (6.2.1.1) ---- */

static const uint16_t gsm7_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, /* 0x00 */
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5, /* 0x08 */
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, /* 0x10 */
    0x03A3, 0x0398, 0x039E, 0x0020, 0x00C6, 0x00E6, 0x00DF, 0x00C9, /* 0x18; 0x1B: ESC */
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027, /* 0x20 */
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F, /* 0x28 */
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037, /* 0x30 */
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F, /* 0x38 */
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047, /* 0x40 */
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F, /* 0x48 */
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057, /* 0x50 */
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7, /* 0x58 */
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, /* 0x60 */
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F, /* 0x68 */
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077, /* 0x70 */
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0, /* 0x78 */
};

static uint16_t gsm7_extension(uint8_t c) {
  switch (c) {
  case 0x0A: return 0x000C; /* form feed (page break) */
  case 0x14: return '^';
  case 0x28: return '{';
  case 0x29: return '}';
  case 0x2F: return '\\';
  case 0x3C: return '[';
  case 0x3D: return '~';
  case 0x3E: return ']';
  case 0x40: return '|';
  case 0x65: return 0x20AC; /* euro sign */
  default: return 0;
  }
}

/* Septet number index of a packed stream (23.038 6.1.2.1.1: septets fill octets from bit 0 up).
 * The caller guarantees (index + 1) * 7 <= in_len * 8. */
static uint8_t septet_at(const uint8_t *in, size_t in_len, size_t index) {
  size_t bit = index * 7;
  size_t octet = bit / 8;
  unsigned shift = bit % 8;
  unsigned v = in[octet] >> shift;
  if (shift > 1 && octet + 1 < in_len)
    v |= (unsigned)in[octet + 1] << (8 - shift);
  return (uint8_t)(v & 0x7F);
}

/* Converts septets [first, first + count) of a packed stream to UTF-8. The caller guarantees
 * (first + count) * 7 <= in_len * 8. */
static bool gsm7_to_utf8(const uint8_t *in, size_t in_len, size_t first, size_t count,
                         utf8_out_t *o) {
  size_t end = first + count;
  for (size_t i = first; i < end; i++) {
    uint8_t c = septet_at(in, in_len, i);
    uint32_t cp = gsm7_basic[c];
    if (c == 0x1B) {
      if (i + 1 == end) {
        cp = ' '; /* 23.038 6.2.1 note 1: an ESC not understood is shown as a space */
      } else {
        uint8_t next = septet_at(in, in_len, ++i);
        uint16_t ext = gsm7_extension(next);
        if (next == 0x1B)
          cp = ' '; /* 6.2.1.1: ESC ESC is reserved; show a space */
        else if (ext)
          cp = ext;
        else
          cp = gsm7_basic[next]; /* 6.2.1.1: unknown extension: show the basic character */
      }
    }
    if (!put_cp(o, cp))
      return false;
  }
  return true;
}

/* UCS2 (big-endian, 23.038 6.2.3) to UTF-8; surrogate pairs are joined, a lone surrogate (a
 * pair split across concatenated parts) becomes U+FFFD. */
static bool ucs2_to_utf8(const uint8_t *in, size_t len, utf8_out_t *o) {
  for (size_t i = 0; i + 1 < len; i += 2) {
    uint32_t u = (uint32_t)in[i] << 8 | in[i + 1];
    if (u >= 0xD800 && u <= 0xDBFF && i + 3 < len) {
      uint32_t lo = (uint32_t)in[i + 2] << 8 | in[i + 3];
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        i += 2;
      }
    }
    if (u >= 0xD800 && u <= 0xDFFF)
      u = 0xFFFD;
    if (!put_cp(o, u))
      return false;
  }
  return true;
}

/* ---- addresses (23.040 9.1.2.3, 9.1.2.5) ---- */

static const char bcd_chars[16] = {'0', '1', '2', '3', '4', '5', '6', '7',
                                   '8', '9', '*', '#', 'a', 'b', 'c', '?'};

/* Semi-octet digits, low nibble first (9.1.2.3); 0xF is only a filler after the last digit. */
static sms_err_t bcd_unpack(const uint8_t *in, size_t ndigits, char *out) {
  for (size_t i = 0; i < ndigits; i++) {
    uint8_t nib = (i & 1) ? in[i / 2] >> 4 : in[i / 2] & 0x0F;
    if (nib == 0x0F)
      return SMS_ERR_ADDRESS_DIGIT;
    out[i] = bcd_chars[nib];
  }
  out[ndigits] = '\0';
  return SMS_OK;
}

/* TP-OA, TP-DA, TP-RA: length in useful semi-octets, type of address, value. */
static sms_err_t address_decode(reader_t *r, sms_address_t *out) {
  uint8_t n, toa;
  const uint8_t *value;
  if (!take_u8(r, &n))
    return SMS_ERR_ADDRESS_TRUNCATED;
  if (n > SMS_ADDR_DIGITS_MAX)
    return SMS_ERR_ADDRESS_LENGTH;
  size_t octets = ((size_t)n + 1) / 2;
  if (!take_u8(r, &toa) || !take(r, octets, &value))
    return SMS_ERR_ADDRESS_TRUNCATED;
  out->toa = toa;
  out->ton = (sms_ton_t)(toa >> 4 & 0x07);
  if (out->ton == SMS_TON_ALPHANUMERIC) {
    /* 9.1.2.5: GSM 7-bit characters packed as in 6.1.2.1.1 of 23.038, length in semi-octets. */
    utf8_out_t o = {(uint8_t *)out->number, sizeof(out->number) - 1, 0};
    out->number[0] = '\0';
    if (!gsm7_to_utf8(value, octets, 0, (size_t)n * 4 / 7, &o))
      return SMS_ERR_ADDRESS_LENGTH; /* unreachable: 11 septets fit */
    return SMS_OK;
  }
  return bcd_unpack(value, n, out->number);
}

/* RP address before the TPDU (27.005 PDU mode; 24.011 8.2.5.1): length in octets including
 * the type of address. The digit count is implied; an odd one ends with an 0xF filler. */
static sms_err_t smsc_decode(reader_t *r, sms_deliver_t *out) {
  uint8_t n;
  const uint8_t *p;
  if (!take_u8(r, &n))
    return SMS_ERR_EMPTY;
  if (n == 0)
    return SMS_OK;
  if (n > SMS_SMSC_LEN_MAX)
    return SMS_ERR_SMSC_LENGTH;
  if (!take(r, n, &p))
    return SMS_ERR_SMSC_TRUNCATED;
  out->has_smsc = true;
  out->smsc.toa = p[0];
  out->smsc.ton = (sms_ton_t)(p[0] >> 4 & 0x07);
  size_t ndigits = ((size_t)n - 1) * 2;
  if (ndigits && (p[n - 1] >> 4) == 0x0F)
    ndigits--;
  return bcd_unpack(p + 1, ndigits, out->smsc.number);
}

/* ---- TP-SCTS (23.040 9.2.3.11) ---- */

static void timestamp_decode(const uint8_t raw[7], sms_timestamp_t *ts) {
  static const uint8_t max[6] = {99, 12, 31, 23, 59, 59};
  uint8_t v[6];
  bool valid = true;
  memcpy(ts->raw, raw, 7);
  for (int i = 0; i < 6; i++) {
    unsigned tens = raw[i] & 0x0F, units = raw[i] >> 4;
    if (tens > 9 || units > 9)
      valid = false;
    v[i] = (uint8_t)(tens * 10 + units);
    if (v[i] > max[i] || (i == 1 && v[i] == 0) || (i == 2 && v[i] == 0))
      valid = false;
  }
  /* Time zone: quarters of an hour; bit 3 of the first semi-octet is the sign. */
  unsigned tz_tens = raw[6] & 0x07, tz_units = raw[6] >> 4;
  if (tz_units > 9)
    valid = false;
  unsigned quarters = tz_tens * 10 + tz_units;
  bool negative = (raw[6] & 0x08) != 0 && quarters != 0; /* "-0" is printed as +00:00 */
  ts->valid = valid;
  ts->year = v[0];
  ts->month = v[1];
  ts->day = v[2];
  ts->hour = v[3];
  ts->minute = v[4];
  ts->second = v[5];
  ts->tz_quarters = (int8_t)(negative ? -(int)quarters : (int)quarters);
  if (valid)
    snprintf(ts->text, sizeof(ts->text), "%02u-%02u-%02u %02u:%02u:%02u %c%02u:%02u",
             v[0] % 100u, v[1] % 100u, v[2] % 100u, v[3] % 100u, v[4] % 100u, v[5] % 100u,
             negative ? '-' : '+', (quarters / 4) % 100u, (quarters % 4) * 15);
  else
    snprintf(ts->text, sizeof(ts->text), "invalid");
}

/* ---- TP-DCS (23.038 4) ---- */

sms_err_t sms_dcs_parse(uint8_t dcs, sms_alphabet_t *out_alphabet, int *out_class) {
  sms_alphabet_t alphabet = SMS_ALPHABET_GSM7;
  int msg_class = -1;
  unsigned group = dcs >> 4;
  if (group <= 0x7) {
    /* 00xx general data coding, 01xx automatic deletion group: same low bits. */
    if (dcs & 0x20)
      return SMS_ERR_DCS_COMPRESSED;
    if (dcs & 0x10)
      msg_class = dcs & 0x03;
    switch (dcs >> 2 & 0x03) {
    case 1: alphabet = SMS_ALPHABET_8BIT; break;
    case 2: alphabet = SMS_ALPHABET_UCS2; break;
    default: alphabet = SMS_ALPHABET_GSM7; break; /* 11 reserved: default alphabet */
    }
  } else if (group == 0xE) {
    alphabet = SMS_ALPHABET_UCS2; /* message waiting indication, store, UCS2 */
  } else if (group == 0xF) {
    alphabet = (dcs & 0x04) ? SMS_ALPHABET_8BIT : SMS_ALPHABET_GSM7;
    msg_class = dcs & 0x03;
  }
  /* 1000..1011 reserved and 1100/1101 message waiting: GSM 7-bit default alphabet. */
  if (out_alphabet)
    *out_alphabet = alphabet;
  if (out_class)
    *out_class = msg_class;
  return SMS_OK;
}

/* ---- user data header (23.040 9.2.3.24) ---- */

sms_err_t sms_udh_parse(const uint8_t *ud, size_t ud_len, sms_udh_t *out, size_t *out_udh_len) {
  if (!out || !out_udh_len || (!ud && ud_len))
    return SMS_ERR_ARG;
  memset(out, 0, sizeof(*out));
  *out_udh_len = 0;
  if (ud_len == 0)
    return SMS_ERR_UDH_MISSING;
  size_t end = 1 + (size_t)ud[0];
  if (end > ud_len)
    return SMS_ERR_UDH_LENGTH;
  size_t pos = 1;
  while (pos < end) {
    if (end - pos < 2)
      return SMS_ERR_UDH_IE_TRUNCATED;
    uint8_t iei = ud[pos], len = ud[pos + 1];
    pos += 2;
    if (len > end - pos)
      return SMS_ERR_UDH_IE_TRUNCATED;
    const uint8_t *v = ud + pos;
    if (out->ie_count < SMS_UDH_MAX_IES) {
      out->ies[out->ie_count].iei = iei;
      out->ies[out->ie_count].len = len;
      out->ie_count++;
    }
    /* A repeated IE replaces the earlier one (9.2.3.24: the last occurrence is used). */
    switch (iei) {
    case SMS_IEI_CONCAT_8: /* 9.2.3.24.1 */
      if (len != 3)
        return SMS_ERR_UDH_IE_LENGTH;
      out->has_concat = true;
      out->concat = (sms_concat_t){.ref = v[0], .total = v[1], .seq = v[2], .ref16 = false};
      break;
    case SMS_IEI_CONCAT_16: /* 9.2.3.24.8 */
      if (len != 4)
        return SMS_ERR_UDH_IE_LENGTH;
      out->has_concat = true;
      out->concat = (sms_concat_t){
          .ref = (uint16_t)(v[0] << 8 | v[1]), .total = v[2], .seq = v[3], .ref16 = true};
      break;
    case SMS_IEI_PORTS_8: /* 9.2.3.24.3 */
      if (len != 2)
        return SMS_ERR_UDH_IE_LENGTH;
      out->has_ports = true;
      out->ports = (sms_ports_t){.dst = v[0], .src = v[1], .port16 = false};
      break;
    case SMS_IEI_PORTS_16: /* 9.2.3.24.4 */
      if (len != 4)
        return SMS_ERR_UDH_IE_LENGTH;
      out->has_ports = true;
      out->ports = (sms_ports_t){
          .dst = (uint16_t)(v[0] << 8 | v[1]), .src = (uint16_t)(v[2] << 8 | v[3]), .port16 = true};
      break;
    default:
      /* 9.2.3.24: "(U)SIM Toolkit Security Headers" carry no data (3GPP 31.115 4). */
      if (iei >= 0x70 && iei <= 0x7F && len == 0) {
        out->has_security = true;
        out->security_iei = iei;
      }
      break;
    }
    pos += len;
  }
  *out_udh_len = end;
  return SMS_OK;
}

sms_err_t sms_udh_encode(const sms_udh_t *udh, uint8_t *out, size_t out_size, size_t *out_len) {
  uint8_t tmp[1 + 2 + 6 + 6];
  size_t n = 1;
  if (!udh || !out_len || (!out && out_size))
    return SMS_ERR_ARG;
  *out_len = 0;
  if (udh->has_security) {
    if (udh->security_iei < 0x70 || udh->security_iei > 0x7F)
      return SMS_ERR_ARG;
    tmp[n++] = udh->security_iei;
    tmp[n++] = 0;
  }
  if (udh->has_ports) {
    const sms_ports_t *p = &udh->ports;
    if (p->port16) {
      tmp[n++] = SMS_IEI_PORTS_16;
      tmp[n++] = 4;
      tmp[n++] = (uint8_t)(p->dst >> 8);
      tmp[n++] = (uint8_t)p->dst;
      tmp[n++] = (uint8_t)(p->src >> 8);
      tmp[n++] = (uint8_t)p->src;
    } else {
      if (p->dst > 0xFF || p->src > 0xFF)
        return SMS_ERR_PORT_VALUES;
      tmp[n++] = SMS_IEI_PORTS_8;
      tmp[n++] = 2;
      tmp[n++] = (uint8_t)p->dst;
      tmp[n++] = (uint8_t)p->src;
    }
  }
  if (udh->has_concat) {
    const sms_concat_t *c = &udh->concat;
    if (c->total == 0 || c->seq == 0 || c->seq > c->total || (!c->ref16 && c->ref > 0xFF))
      return SMS_ERR_CONCAT_VALUES;
    if (c->ref16) {
      tmp[n++] = SMS_IEI_CONCAT_16;
      tmp[n++] = 4;
      tmp[n++] = (uint8_t)(c->ref >> 8);
    } else {
      tmp[n++] = SMS_IEI_CONCAT_8;
      tmp[n++] = 3;
    }
    tmp[n++] = (uint8_t)c->ref;
    tmp[n++] = c->total;
    tmp[n++] = c->seq;
  }
  if (n == 1)
    return SMS_OK;
  if (n > out_size)
    return SMS_ERR_BUFFER_TOO_SMALL;
  tmp[0] = (uint8_t)(n - 1);
  memcpy(out, tmp, n);
  *out_len = n;
  return SMS_OK;
}

/* ---- SMS-DELIVER (23.040 9.2.2.1) ---- */

/* TP-UD after TP-UDL (9.2.3.16, 9.2.3.24): checks TP-UDL against what follows exactly, parses
 * the UDH, then converts the rest. */
static sms_err_t user_data_decode(const uint8_t *ud, size_t avail, sms_deliver_t *out) {
  size_t udl = out->udl, octets, hdr = 0;
  if (out->alphabet == SMS_ALPHABET_GSM7) {
    if (udl > SMS_UD_SEPTETS_MAX)
      return SMS_ERR_UDL_TOO_LONG;
    octets = (udl * 7 + 7) / 8;
  } else {
    if (udl > SMS_UD_OCTETS_MAX)
      return SMS_ERR_UDL_TOO_LONG;
    octets = udl;
  }
  if (avail < octets)
    return SMS_ERR_UD_TRUNCATED;
  if (avail > octets)
    return SMS_ERR_TRAILING_DATA;
  if (out->udhi) {
    sms_err_t err = sms_udh_parse(ud, octets, &out->udh, &hdr);
    if (err != SMS_OK)
      return err;
  }
  utf8_out_t o = {out->ud, SMS_UD_TEXT_MAX, 0};
  out->ud[0] = '\0';
  switch (out->alphabet) {
  case SMS_ALPHABET_8BIT:
    memcpy(out->ud, ud + hdr, octets - hdr);
    out->ud_len = octets - hdr;
    out->ud[out->ud_len] = '\0';
    return SMS_OK;
  case SMS_ALPHABET_UCS2:
    if ((octets - hdr) % 2)
      return SMS_ERR_UCS2_ODD_LENGTH;
    if (!ucs2_to_utf8(ud + hdr, octets - hdr, &o))
      return SMS_ERR_BUFFER_TOO_SMALL; /* unreachable: 70 units need at most 210 octets */
    out->ud_len = o.len;
    return SMS_OK;
  case SMS_ALPHABET_GSM7:
  default: {
    /* 9.2.3.24: the UDH takes whole septets; fill bits pad it to the next septet boundary. */
    size_t hdr_septets = (hdr * 8 + 6) / 7;
    if (hdr_septets > udl)
      return SMS_ERR_UDH_LENGTH;
    if (!gsm7_to_utf8(ud, octets, hdr_septets, udl - hdr_septets, &o))
      return SMS_ERR_BUFFER_TOO_SMALL; /* unreachable: 160 septets need at most 480 octets */
    out->ud_len = o.len;
    return SMS_OK;
  }
  }
}

/* SMS-STATUS-REPORT (9.2.2.3): the fixed fields, best effort; report->valid when all present. */
static void status_report_decode(reader_t *r, sms_status_report_t *report) {
  const uint8_t *scts, *dt;
  uint8_t mr, st;
  sms_address_t recipient;
  memset(&recipient, 0, sizeof(recipient));
  if (!take_u8(r, &mr) || address_decode(r, &recipient) != SMS_OK || !take(r, 7, &scts) ||
      !take(r, 7, &dt) || !take_u8(r, &st))
    return;
  report->valid = true;
  report->mr = mr;
  report->recipient = recipient;
  timestamp_decode(scts, &report->scts);
  timestamp_decode(dt, &report->discharge);
  report->status = st;
}

sms_err_t sms_pdu_decode(const uint8_t *pdu, size_t len, sms_deliver_t *out) {
  if (!out || (!pdu && len))
    return SMS_ERR_ARG;
  memset(out, 0, sizeof(*out));
  out->msg_class = -1;
  reader_t r = {pdu, len, 0};
  sms_err_t err = smsc_decode(&r, out);
  if (err != SMS_OK)
    return err;
  uint8_t fo;
  if (!take_u8(&r, &fo))
    return SMS_ERR_NO_FIRST_OCTET;
  out->first_octet = fo;
  out->kind = (sms_kind_t)(fo & 0x03); /* TP-MTI, 9.2.3.1 */
  if (out->kind == SMS_KIND_STATUS_REPORT) {
    status_report_decode(&r, &out->report);
    return SMS_OK;
  }
  if (out->kind != SMS_KIND_DELIVER)
    return SMS_OK; /* a stored SUBMIT, a SUBMIT-REPORT or a reserved MTI: the caller skips it */

  out->more_messages = (fo & 0x04) == 0; /* TP-MMS 9.2.3.2 */
  out->status_report = (fo & 0x20) != 0; /* TP-SRI 9.2.3.4 */
  out->udhi = (fo & 0x40) != 0;          /* TP-UDHI 9.2.3.23 */
  out->reply_path = (fo & 0x80) != 0;    /* TP-RP 9.2.3.17 */
  err = address_decode(&r, &out->originator);
  if (err != SMS_OK)
    return err;
  const uint8_t *scts;
  if (!take_u8(&r, &out->pid) || !take_u8(&r, &out->dcs) || !take(&r, 7, &scts) ||
      !take_u8(&r, &out->udl))
    return SMS_ERR_HEADER_TRUNCATED;
  err = sms_dcs_parse(out->dcs, &out->alphabet, &out->msg_class);
  if (err != SMS_OK)
    return err;
  timestamp_decode(scts, &out->scts);
  return user_data_decode(r.p + r.pos, r.len - r.pos, out);
}

sms_err_t sms_pdu_decode_hex(const char *hex, size_t hex_len, sms_deliver_t *out) {
  uint8_t bin[SMS_PDU_MAX];
  size_t len;
  if (!out)
    return SMS_ERR_ARG;
  sms_err_t err = sms_hex_decode(hex, hex_len, bin, sizeof(bin), &len);
  if (err != SMS_OK) {
    memset(out, 0, sizeof(*out));
    return err;
  }
  return sms_pdu_decode(bin, len, out);
}

/* ---- SMS-SUBMIT (23.040 9.2.2.2) ---- */

void sms_submit_init(sms_submit_t *submit, const char *destination) {
  memset(submit, 0, sizeof(*submit));
  submit->destination = destination;
  submit->dcs = SMS_DCS_8BIT;
}

uint8_t sms_validity_relative(uint32_t minutes) {
  /* 9.2.3.12.1: 0..143 five minutes, 144..167 half hours past 12 h, 168..196 days,
   * 197..255 weeks. Rounded up so a message lives at least as long as asked. */
  if (minutes <= 720)
    return minutes <= 5 ? 0 : (uint8_t)((minutes + 4) / 5 - 1);
  if (minutes <= 1440)
    return (uint8_t)(143 + (minutes - 720 + 29) / 30);
  if (minutes <= 30u * 1440)
    return (uint8_t)(166 + (minutes + 1439) / 1440);
  uint32_t weeks = minutes / 10080 + (minutes % 10080 != 0);
  if (weeks > 63)
    weeks = 63;
  return (uint8_t)(192 + weeks);
}

uint32_t sms_validity_minutes(uint8_t vp) {
  if (vp <= 143)
    return ((uint32_t)vp + 1) * 5;
  if (vp <= 167)
    return 720 + ((uint32_t)vp - 143) * 30;
  if (vp <= 196)
    return ((uint32_t)vp - 166) * 1440;
  return ((uint32_t)vp - 192) * 10080;
}

sms_err_t sms_pdu_encode_submit(const sms_submit_t *submit, const uint8_t *data, size_t data_len,
                                uint8_t *out, size_t out_size, size_t *out_len,
                                size_t *out_tpdu_len) {
  if (!submit || !submit->destination || (!data && data_len) || !out || !out_len ||
      !out_tpdu_len)
    return SMS_ERR_ARG;
  *out_len = 0;
  *out_tpdu_len = 0;
  if (submit->dcs != SMS_DCS_8BIT && submit->dcs != SMS_DCS_8BIT_CLASS0 &&
      submit->dcs != SMS_DCS_8BIT_CLASS1 && submit->dcs != SMS_DCS_8BIT_CLASS2)
    return SMS_ERR_DCS_UNSUPPORTED;
  /* TP-DA from an MSISDN (3GPP 23.003: country code and number, digits only). */
  const char *msisdn = submit->destination;
  size_t ndigits = strnlen(msisdn, SMS_ADDR_DIGITS_MAX + 1);
  if (ndigits == 0 || ndigits > SMS_ADDR_DIGITS_MAX)
    return SMS_ERR_ADDRESS_LENGTH;
  for (size_t i = 0; i < ndigits; i++) {
    if (msisdn[i] < '0' || msisdn[i] > '9')
      return SMS_ERR_ADDRESS_DIGIT;
  }
  uint8_t udh[16];
  size_t udh_len;
  sms_err_t err = sms_udh_encode(&submit->udh, udh, sizeof(udh), &udh_len);
  if (err != SMS_OK)
    return err;
  if (data_len > SMS_UD_OCTETS_MAX - udh_len)
    return SMS_ERR_UD_TOO_LONG;
  bool vp = submit->validity_min != 0;
  size_t total = 1 + 1 + 1 + 2 + (ndigits + 1) / 2 + 2 + (vp ? 1 : 0) + 1 + udh_len + data_len;
  if (total > out_size)
    return SMS_ERR_BUFFER_TOO_SMALL;

  size_t n = 0;
  out[n++] = 0x00; /* SMSC length 0: the modem uses its stored SMSC (27.005 3.1) */
  uint8_t fo = 0x01;                           /* TP-MTI SMS-SUBMIT, TP-RD 0 (9.2.3.25) */
  if (vp)
    fo |= 0x10;                                /* TP-VPF relative (9.2.3.3) */
  if (submit->status_report)
    fo |= 0x20;                                /* TP-SRR (9.2.3.5) */
  if (udh_len)
    fo |= 0x40;                                /* TP-UDHI (9.2.3.23) */
  out[n++] = fo;
  out[n++] = 0x00;                             /* TP-MR: the modem assigns it */
  out[n++] = (uint8_t)ndigits;                 /* TP-DA (9.1.2.5) */
  out[n++] = submit->national ? SMS_TOA_NATIONAL : SMS_TOA_INTERNATIONAL;
  for (size_t i = 0; i < ndigits; i += 2) {
    uint8_t lo = (uint8_t)(msisdn[i] - '0');
    uint8_t hi = i + 1 < ndigits ? (uint8_t)(msisdn[i + 1] - '0') : 0x0F;
    out[n++] = (uint8_t)(hi << 4 | lo);
  }
  out[n++] = submit->pid;                      /* TP-PID (9.2.3.9), 00 unless asked */
  out[n++] = submit->dcs;                      /* TP-DCS (23.038 4) */
  if (vp)
    out[n++] = sms_validity_relative(submit->validity_min);
  out[n++] = (uint8_t)(udh_len + data_len);    /* TP-UDL in octets for 8-bit data */
  if (udh_len)
    memcpy(out + n, udh, udh_len);
  n += udh_len;
  if (data_len)
    memcpy(out + n, data, data_len);
  n += data_len;
  *out_len = n;
  *out_tpdu_len = n - 1;
  return SMS_OK;
}

/* ---- description ---- */

typedef struct {
  char *buf;
  size_t size;
  size_t len;
} text_t;

__attribute__((format(printf, 2, 3))) static void addf(text_t *t, const char *fmt, ...) {
  va_list ap;
  size_t room = t->len < t->size ? t->size - t->len : 0;
  va_start(ap, fmt);
  int n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    t->len += (size_t)n;
}

static const char *ton_name(sms_ton_t ton) {
  static const char *const names[8] = {"unknown",    "international", "national",
                                       "network",    "subscriber",    "alphanumeric",
                                       "abbreviated", "reserved"};
  return names[ton & 7];
}

/* Text between quotes with control characters escaped, so a message cannot forge lines. */
static void add_quoted(text_t *t, const uint8_t *s, size_t len) {
  addf(t, "\"");
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (c == '\n')
      addf(t, "\\n");
    else if (c == '\r')
      addf(t, "\\r");
    else if (c == '"' || c == '\\')
      addf(t, "\\%c", c);
    else if (c < 0x20 || c == 0x7F)
      addf(t, "\\x%02X", c);
    else
      addf(t, "%c", c);
  }
  addf(t, "\"");
}

static void describe_address(text_t *t, const char *label, const sms_address_t *a) {
  if (a->ton == SMS_TON_ALPHANUMERIC) {
    addf(t, "%s: ", label);
    add_quoted(t, (const uint8_t *)a->number, strlen(a->number));
    addf(t, " (type 0x%02X, alphanumeric)\n", a->toa);
  } else {
    addf(t, "%s: %s%s (type 0x%02X, %s)\n", label, a->ton == SMS_TON_INTERNATIONAL ? "+" : "",
         a->number, a->toa, ton_name(a->ton));
  }
}

static const char *alphabet_name(sms_alphabet_t a) {
  switch (a) {
  case SMS_ALPHABET_8BIT: return "8-bit data";
  case SMS_ALPHABET_UCS2: return "UCS2";
  case SMS_ALPHABET_GSM7:
  default: return "GSM 7-bit default alphabet";
  }
}

static void describe_dcs(text_t *t, uint8_t dcs) {
  static const char *const groups[16] = {
      "general data coding", "general data coding", "general data coding",
      "general data coding", "automatic deletion", "automatic deletion",
      "automatic deletion",  "automatic deletion",  "reserved group",
      "reserved group",      "reserved group",      "reserved group",
      "message waiting, discard", "message waiting, store", "message waiting, store",
      "data coding/message class"};
  sms_alphabet_t alphabet;
  int msg_class;
  if (sms_dcs_parse(dcs, &alphabet, &msg_class) != SMS_OK) {
    addf(t, "dcs: 0x%02X (%s, compressed)\n", dcs, groups[dcs >> 4]);
    return;
  }
  addf(t, "dcs: 0x%02X (%s, %s", dcs, groups[dcs >> 4], alphabet_name(alphabet));
  if (msg_class >= 0)
    addf(t, ", class %d", msg_class);
  addf(t, ")\n");
}

static void describe_hex(text_t *t, const uint8_t *d, size_t len) {
  for (size_t line = 0; line < len; line += 16) {
    addf(t, "  %04zx:", line);
    for (size_t i = line; i < line + 16; i++) {
      if (i < len)
        addf(t, " %02x", d[i]);
      else
        addf(t, "   ");
    }
    addf(t, "  |");
    for (size_t i = line; i < len && i < line + 16; i++)
      addf(t, "%c", d[i] >= 0x20 && d[i] < 0x7F ? d[i] : '.');
    addf(t, "|\n");
  }
}

static void describe_udh(text_t *t, const sms_udh_t *udh) {
  for (size_t i = 0; i < udh->ie_count; i++) {
    const sms_udh_ie_t *ie = &udh->ies[i];
    switch (ie->iei) {
    case SMS_IEI_CONCAT_8:
    case SMS_IEI_CONCAT_16:
    case SMS_IEI_PORTS_8:
    case SMS_IEI_PORTS_16:
      break; /* shown below with their values (the last occurrence counts) */
    default:
      addf(t, "udh: iei 0x%02X, %u octets (skipped)\n", ie->iei, ie->len);
    }
  }
  if (udh->has_concat)
    addf(t, "udh: concatenation ref %u (%s), part %u of %u\n", udh->concat.ref,
         udh->concat.ref16 ? "16-bit, iei 0x08" : "8-bit, iei 0x00", udh->concat.seq,
         udh->concat.total);
  if (udh->has_ports)
    addf(t, "udh: ports dst %u src %u (%s)\n", udh->ports.dst, udh->ports.src,
         udh->ports.port16 ? "16-bit, iei 0x05" : "8-bit, iei 0x04");
}

static const char *status_meaning(uint8_t st) {
  /* 23.040 9.2.3.15 */
  if (st <= 0x1F)
    return "delivered";
  if (st <= 0x3F)
    return "temporary error, SC still trying";
  if (st <= 0x5F)
    return "permanent error, SC gave up";
  if (st <= 0x7F)
    return "temporary error, SC gave up";
  return "reserved";
}

size_t sms_pdu_describe(const sms_deliver_t *pdu, char *out, size_t out_size) {
  text_t t = {out, out ? out_size : 0, 0};
  if (t.size)
    out[0] = '\0';
  if (!pdu)
    return 0;
  static const char *const kinds[4] = {"SMS-DELIVER", "SMS-SUBMIT or SMS-SUBMIT-REPORT",
                                       "SMS-STATUS-REPORT", "reserved TP-MTI"};
  addf(&t, "type: %s (first octet 0x%02X)%s\n", kinds[pdu->kind & 3], pdu->first_octet,
       pdu->kind == SMS_KIND_DELIVER ? "" : ", not a deliver: skipped");
  if (pdu->has_smsc)
    describe_address(&t, "smsc", &pdu->smsc);
  else
    addf(&t, "smsc: none (modem default)\n");
  if (pdu->kind == SMS_KIND_STATUS_REPORT) {
    const sms_status_report_t *r = &pdu->report;
    if (!r->valid) {
      addf(&t, "report: incomplete\n");
      return t.len;
    }
    addf(&t, "message reference: %u\n", r->mr);
    describe_address(&t, "recipient", &r->recipient);
    addf(&t, "timestamp: %s\n", r->scts.text);
    addf(&t, "discharge time: %s\n", r->discharge.text);
    addf(&t, "status: 0x%02X (%s)\n", r->status, status_meaning(r->status));
    return t.len;
  }
  if (pdu->kind != SMS_KIND_DELIVER)
    return t.len;
  describe_address(&t, "originator", &pdu->originator);
  addf(&t, "pid: 0x%02X\n", pdu->pid);
  describe_dcs(&t, pdu->dcs);
  addf(&t, "timestamp: %s\n", pdu->scts.text);
  if (pdu->more_messages || pdu->status_report || pdu->reply_path)
    addf(&t, "flags:%s%s%s\n", pdu->more_messages ? " more-messages" : "",
         pdu->status_report ? " status-report-indication" : "",
         pdu->reply_path ? " reply-path" : "");
  if (pdu->udhi)
    describe_udh(&t, &pdu->udh);
  if (pdu->alphabet == SMS_ALPHABET_8BIT) {
    addf(&t, "user data: %zu octets (TP-UDL %u)\n", pdu->ud_len, pdu->udl);
    describe_hex(&t, pdu->ud, pdu->ud_len);
  } else {
    addf(&t, "user data: TP-UDL %u %s, %zu octets of UTF-8\n", pdu->udl,
         pdu->alphabet == SMS_ALPHABET_GSM7 ? "septets" : "octets", pdu->ud_len);
    addf(&t, "text: ");
    add_quoted(&t, pdu->ud, pdu->ud_len);
    addf(&t, "\n");
  }
  return t.len;
}
