/* lwm2m-gw: appending formatted text to a bounded buffer (metrics pages, descriptions). */
#ifndef GW_TEXT_H
#define GW_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Appends to out[*used..out_size), keeping out NUL-terminated and *used below out_size; output
 * that does not fit is cut. Does nothing when out_size is 0. */
void gw_appendf(char *out, size_t out_size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));



#include <stdint.h>

/* 0..15 for a hex digit (either case), -1 otherwise. */
int gw_hex_digit(char c);
/* Decodes hex_len hex digits into out. Borrows both. GW_OK; GW_ERR_INVAL for an odd length or
 * a character that is not a hex digit (nothing is then guaranteed in out); GW_ERR_TOOBIG when
 * out is too small. */
int gw_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_size,
                  size_t *out_len);
/* Writes len bytes as upper-case hex and a NUL into out. GW_OK, or GW_ERR_TOOBIG (out then holds
 * an empty string when out_size > 0). */
int gw_hex_encode(const uint8_t *bin, size_t len, char *out, size_t out_size);
/* Length of the base64 text of n bytes, padding included, without the NUL (RFC 4648 4). */
#define GW_BASE64_LEN(n) (((n) + 2) / 3 * 4)
/* Decodes len characters of base64 (RFC 4648 4: the standard alphabet, padding required, so len
 * is a multiple of 4; "=" only in the last one or two places; no white space) into out. Borrows
 * both. "" decodes to nothing. Pad bits that are not zero are ignored (RFC 4648 3.5 lets a
 * decoder accept them). GW_OK with *out_len set; GW_ERR_INVAL for malformed text (nothing is then
 * guaranteed in out); GW_ERR_TOOBIG when the decoded bytes would not fit out_size. */
int gw_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_size,
                     size_t *out_len);
/* Writes len bytes as padded base64 (RFC 4648 4) and a NUL into out: GW_BASE64_LEN(len) + 1
 * bytes. GW_OK, or GW_ERR_TOOBIG (out then holds an empty string when out_size > 0). */
int gw_base64_encode(const uint8_t *bin, size_t len, char *out, size_t out_size);
/* Whether text is a UUID as RFC 4122 3 writes it: 8-4-4-4-12 hex digits of either case, nothing
 * after (ChirpStack's application and queue-item ids). */
/* A The Things Stack identifier (application, tenant, end device; TTS docs "ID and EUI
 * Constraints": ^[a-z0-9](?:[-]?[a-z0-9]){2,}$, at most 36 characters): the len bytes of id,
 * with at least min_len of them (3 by the docs; 2 what early v3 releases allowed). */
bool gw_is_tts_id(const char *id, size_t len, size_t min_len);
bool gw_is_uuid(const char *text);
/* Length of the well-formed UTF-8 sequence at s[0..n) (n > 0) and its code point in *out_cp;
 * 0 when ill-formed: truncated, overlong, a surrogate or above U+10FFFF (RFC 3629 4). */
size_t gw_utf8_next(const uint8_t *s, size_t n, uint32_t *out_cp);
/* FNV-1a of a NUL-terminated string: hash tables keyed by binding addresses. */
size_t gw_hash_str(const char *s);
/* 64-bit FNV-1a of len bytes, continuing from h (GW_FNV1A_INIT to start): a digest that tells
 * a repeated message from a new one, not a cryptographic one. */
#define GW_FNV1A_INIT 1469598103934665603ull
uint64_t gw_fnv1a(uint64_t h, const void *data, size_t len);

/* One Prometheus counter of a binding, with its help line:
 * "# HELP lwm2m_gw_<binding>_<name>_total <help>\nlwm2m_gw_<binding>_<name>_total <value>\n". */
void gw_append_counter(char *out, size_t out_size, size_t *used, const char *binding,
                       const char *name, const char *help, uint64_t value);

/* strdup(s), or NULL for NULL; sets *failed when out of memory (several copies, one check). */
char *gw_strdup_opt(const char *s, bool *failed);

#endif
