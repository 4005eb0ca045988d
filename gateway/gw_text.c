#include "gw_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"

void gw_appendf(char *out, size_t out_size, size_t *used, const char *fmt, ...) {
  if (out_size == 0)
    return;
  if (*used >= out_size - 1) {
    out[out_size - 1] = '\0';
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out + *used, out_size - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used = *used + (size_t)n >= out_size ? out_size - 1 : *used + (size_t)n;
}

int gw_hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int gw_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_size,
                  size_t *out_len) {
  if (hex_len % 2 != 0)
    return GW_ERR_INVAL;
  if (hex_len / 2 > out_size)
    return GW_ERR_TOOBIG;
  for (size_t i = 0; i < hex_len; i += 2) {
    int hi = gw_hex_digit(hex[i]), lo = gw_hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return GW_ERR_INVAL;
    out[i / 2] = (uint8_t)(hi << 4 | lo);
  }
  *out_len = hex_len / 2;
  return GW_OK;
}

int gw_hex_encode(const uint8_t *bin, size_t len, char *out, size_t out_size) {
  static const char digits[] = "0123456789ABCDEF";
  if (out_size == 0 || len > (out_size - 1) / 2) {
    if (out_size)
      out[0] = '\0';
    return GW_ERR_TOOBIG;
  }
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[bin[i] >> 4];
    out[2 * i + 1] = digits[bin[i] & 15];
  }
  out[2 * len] = '\0';
  return GW_OK;
}

bool gw_is_uuid(const char *text) {
  if (strnlen(text, 37) != 36)
    return false;
  for (size_t i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : gw_hex_digit(text[i]) < 0)
      return false;
  }
  return true;
}

bool gw_is_tts_id(const char *id, size_t len, size_t min_len) {
  if (len < min_len || len > 36 || id[0] == '-' || id[len - 1] == '-')
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && id[i + 1] != '-'))
      return false;
  }
  return true;
}

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int gw_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_size,
                     size_t *out_len) {
  if (len % 4 != 0)
    return GW_ERR_INVAL;
  size_t pad = len == 0 ? 0 : (in[len - 1] == '=') + (in[len - 1] == '=' && in[len - 2] == '=');
  if (len / 4 * 3 - pad > out_size)
    return GW_ERR_TOOBIG;
  size_t n = 0;
  for (size_t i = 0; i < len; i += 4) {
    bool last = i + 4 == len;
    uint32_t w = 0;
    for (size_t k = 0; k < 4; k++) {
      int v = last && k >= 4 - pad ? 0 : base64_value(in[i + k]);
      if (v < 0)
        return GW_ERR_INVAL; /* includes a "=" anywhere but the very end */
      w = w << 6 | (uint32_t)v;
    }
    out[n++] = (uint8_t)(w >> 16);
    if (!last || pad < 2)
      out[n++] = (uint8_t)(w >> 8);
    if (!last || pad < 1)
      out[n++] = (uint8_t)w;
  }
  *out_len = n;
  return GW_OK;
}

int gw_base64_encode(const uint8_t *bin, size_t len, char *out, size_t out_size) {
  if (out_size == 0 || len > (out_size - 1) / 4 * 3) {
    if (out_size)
      out[0] = '\0';
    return GW_ERR_TOOBIG;
  }
  size_t n = 0;
  for (size_t i = 0; i < len; i += 3) {
    size_t left = len - i;
    uint32_t w = (uint32_t)bin[i] << 16 | (left > 1 ? (uint32_t)bin[i + 1] << 8 : 0) |
                 (left > 2 ? bin[i + 2] : 0);
    out[n++] = base64_alphabet[w >> 18 & 63];
    out[n++] = base64_alphabet[w >> 12 & 63];
    out[n++] = left > 1 ? base64_alphabet[w >> 6 & 63] : '=';
    out[n++] = left > 2 ? base64_alphabet[w & 63] : '=';
  }
  out[n] = '\0';
  return GW_OK;
}

size_t gw_utf8_next(const uint8_t *s, size_t n, uint32_t *out_cp) {
  static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
  uint8_t b = s[0];
  size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3
             : (b & 0xf8) == 0xf0 ? 4 : 0;
  if (len == 0 || len > n)
    return 0;
  uint32_t cp = len == 1 ? b : (uint32_t)(b & (0x7f >> len));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  *out_cp = cp;
  return len;
}

uint64_t gw_fnv1a(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

size_t gw_hash_str(const char *s) { return (size_t)gw_fnv1a(GW_FNV1A_INIT, s, strlen(s)); }

void gw_append_counter(char *out, size_t out_size, size_t *used, const char *binding,
                       const char *name, const char *help, uint64_t value) {
  gw_appendf(out, out_size, used, "# HELP lwm2m_gw_%s_%s_total %s\nlwm2m_gw_%s_%s_total %llu\n",
             binding, name, help, binding, name, (unsigned long long)value);
}

char *gw_strdup_opt(const char *s, bool *failed) {
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *failed = true;
  return d;
}
