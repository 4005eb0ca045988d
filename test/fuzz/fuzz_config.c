/* libFuzzer target: the configuration loader (conf/config.c) over libconfig text.
 * Seeds: test/fuzz/corpus/config/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* @include would make libconfig open arbitrary files (even FIFOs or devices that block):
   * what the loader does with a file's contents is what the rest of the input exercises. */
  if (memmem(data, size, "@include", 8) != NULL)
    return 0;
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  gw_config_t config;
  char err[512];
  if (gw_config_load_string(text, &config, err, sizeof(err)) == 0) {
    /* exercise the accessors a reload uses */
    for (size_t i = 0; i < config.device_count; i++) {
      (void)gw_config_device_upstream(&config, &config.devices[i]);
      (void)gw_device_conf_session_changed(&config.devices[i], &config.devices[0]);
    }
  } else if (strlen(err) >= sizeof(err)) {
    abort(); /* unreachable: the message is always terminated */
  }
  gw_config_free(&config);
  free(text);
  return 0;
}
