/* Unit tests of gateway/gw_text.h: base64 (RFC 4648 section 4), UUID text (RFC 4122 3).
 *
 * Vectors: RFC 4648 section 10 ("Test Vectors"), both ways; every refusal of the decoder (length
 * not a multiple of 4, "=" not at the end, characters outside the alphabet, white space, the URL
 * alphabet of section 5) and both functions' buffer bounds, fitting exactly and one byte short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_text.h"

/* RFC 4648 section 10. */
static const struct {
  const char *plain, *b64;
} rfc4648_vectors[] = {{"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},
                       {"foo", "Zm9v"},   {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                       {"foobar", "Zm9vYmFy"}};

static void test_base64_rfc4648_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof rfc4648_vectors / sizeof rfc4648_vectors[0]; i++) {
    const char *plain = rfc4648_vectors[i].plain, *b64 = rfc4648_vectors[i].b64;
    char text[16];
    assert_int_equal(gw_base64_encode((const uint8_t *)plain, strlen(plain), text, sizeof text),
                     GW_OK);
    assert_string_equal(text, b64);
    assert_int_equal(strlen(b64), GW_BASE64_LEN(strlen(plain)));
    uint8_t bin[8];
    size_t n = 99;
    assert_int_equal(gw_base64_decode(b64, strlen(b64), bin, sizeof bin, &n), GW_OK);
    assert_int_equal(n, strlen(plain));
    assert_memory_equal(bin, plain, n);
  }
}

static void test_base64_all_bytes_round_trip(void **state) {
  (void)state;
  uint8_t bin[256], back[256];
  for (size_t i = 0; i < sizeof bin; i++)
    bin[i] = (uint8_t)(255 - i);
  char text[GW_BASE64_LEN(256) + 1];
  for (size_t len = 0; len <= sizeof bin; len++) {
    assert_int_equal(gw_base64_encode(bin, len, text, sizeof text), GW_OK);
    assert_int_equal(strlen(text), GW_BASE64_LEN(len));
    size_t n = 0;
    assert_int_equal(gw_base64_decode(text, strlen(text), back, len, &n), GW_OK);
    assert_int_equal(n, len);
    assert_memory_equal(back, bin, len);
  }
  /* "+" and "/" (values 62 and 63) both come out of bytes 0xfb 0xff. */
  assert_int_equal(gw_base64_encode((const uint8_t *)"\xfb\xff", 2, text, sizeof text), GW_OK);
  assert_string_equal(text, "+/8=");
}

static void test_base64_decode_refusals(void **state) {
  (void)state;
  static const char *const bad[] = {
      "Zg",                 /* no padding: section 4 requires it here */
      "Zg=", "Zm9vY",       /* length not a multiple of 4 */
      "Z===", "====",       /* a lone 6-bit group cannot make a byte */
      "Zg==Zm8=", "Zm=v", "=m9v", /* "=" before the end */
      "Zm9v YmFy", "Zm9v\nYmE=", /* white space */
      "Zm9-YmFy", "Zm9_YmFy", /* the URL and filename safe alphabet (section 5) */
      "Zm9v\xc3\xa4mE",     /* not ASCII */
  };
  uint8_t bin[16];
  size_t n = 0;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(gw_base64_decode(bad[i], strlen(bad[i]), bin, sizeof bin, &n), GW_ERR_INVAL);
  /* The length is the caller's: a NUL inside is a character like any other, and not base64. */
  assert_int_equal(gw_base64_decode("Zm9\0YmFy", 8, bin, sizeof bin, &n), GW_ERR_INVAL);
}

static void test_base64_bounds(void **state) {
  (void)state;
  uint8_t bin[6];
  size_t n = 0;
  /* Padding counts: "Zm9vYg==" needs 4 bytes, not 6. */
  assert_int_equal(gw_base64_decode("Zm9vYg==", 8, bin, 4, &n), GW_OK);
  assert_int_equal(n, 4);
  assert_int_equal(gw_base64_decode("Zm9vYg==", 8, bin, 3, &n), GW_ERR_TOOBIG);
  assert_int_equal(gw_base64_decode("Zm9vYmFy", 8, bin, 6, &n), GW_OK);
  assert_int_equal(gw_base64_decode("Zm9vYmFy", 8, bin, 5, &n), GW_ERR_TOOBIG);
  assert_int_equal(gw_base64_decode("", 0, NULL, 0, &n), GW_OK);
  assert_int_equal(n, 0);

  char text[9];
  assert_int_equal(gw_base64_encode((const uint8_t *)"foobar", 6, text, 9), GW_OK);
  assert_string_equal(text, "Zm9vYmFy");
  assert_int_equal(gw_base64_encode((const uint8_t *)"foobar", 6, text, 8), GW_ERR_TOOBIG);
  assert_string_equal(text, "");
  assert_int_equal(gw_base64_encode((const uint8_t *)"fooba", 5, text, 9), GW_OK);
  assert_string_equal(text, "Zm9vYmE=");
  assert_int_equal(gw_base64_encode(NULL, 0, text, 1), GW_OK);
  assert_string_equal(text, "");
  assert_int_equal(gw_base64_encode(NULL, 0, text, 0), GW_ERR_TOOBIG);
}

/* RFC 4648 3.5: pad bits that are not zero are accepted (the decoder MAY refuse them). */
static void test_base64_nonzero_pad_bits(void **state) {
  (void)state;
  uint8_t bin[4];
  size_t n = 0;
  assert_int_equal(gw_base64_decode("Zh==", 4, bin, sizeof bin, &n), GW_OK);
  assert_int_equal(n, 1);
  assert_int_equal(bin[0], 'f');
}

static void test_is_uuid(void **state) {
  (void)state;
  assert_true(gw_is_uuid("17c82e96-be03-4f38-aef3-f83d48582d97"));
  assert_true(gw_is_uuid("17C82E96-BE03-4F38-AEF3-F83D48582D97"));
  assert_false(gw_is_uuid("17c82e96-be03-4f38-aef3-f83d48582d9"));
  assert_false(gw_is_uuid("17c82e96-be03-4f38-aef3-f83d48582d977"));
  assert_false(gw_is_uuid("17c82e96be03-4f38-aef3-f83d48582d97a"));
  assert_false(gw_is_uuid("17c82e96-be03-4f38-aef3-f83d48582d9g"));
  assert_false(gw_is_uuid("{7c82e96-be03-4f38-aef3-f83d48582d97"));
  assert_false(gw_is_uuid(""));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_rfc4648_vectors),
      cmocka_unit_test(test_base64_all_bytes_round_trip),
      cmocka_unit_test(test_base64_decode_refusals),
      cmocka_unit_test(test_base64_bounds),
      cmocka_unit_test(test_base64_nonzero_pad_bits),
      cmocka_unit_test(test_is_uuid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
