/* lwm2m-gw: LoRaWAN regional payload sizes and data rates. See region.h. */
#include "region.h"

#include <string.h>

#include "gw_error.h"

void gw_region_eu868(gw_region_t *out) {
  /* ChirpStack lrwn/src/region/eu868.rs, MaxPayloadSize n with repeater_compatible = false. */
  static const uint8_t n[] = {51, 51, 51, 115, 242, 242, 242, 242, 50, 115, 50, 115};
  memset(out, 0, sizeof *out);
  memcpy(out->max_payload, n, sizeof n);
  out->dr_count = sizeof n;
}

int gw_region_set_table(gw_region_t *r, const unsigned *table, size_t count) {
  if (count == 0 || count > GW_REGION_DR_COUNT)
    return GW_ERR_INVAL;
  for (size_t i = 0; i < count; i++)
    if (table[i] < 1 || table[i] > 255)
      return GW_ERR_INVAL;
  memset(r, 0, sizeof *r);
  for (size_t i = 0; i < count; i++)
    r->max_payload[i] = (uint8_t)table[i];
  r->dr_count = count;
  return GW_OK;
}

size_t gw_region_min_payload(const gw_region_t *r) {
  size_t min = r->dr_count ? 255 : 0;
  for (size_t i = 0; i < r->dr_count && i < GW_REGION_DR_COUNT; i++)
    if (r->max_payload[i] < min)
      min = r->max_payload[i];
  return min;
}

size_t gw_region_max_payload(const gw_region_t *r, int dr) {
  if (dr < 0 || (size_t)dr >= r->dr_count || dr >= GW_REGION_DR_COUNT)
    return gw_region_min_payload(r);
  return r->max_payload[dr];
}

int gw_region_eu868_lora_dr(unsigned spreading_factor, uint32_t bandwidth_hz) {
  if (bandwidth_hz == 125000 && spreading_factor >= 7 && spreading_factor <= 12)
    return (int)(12 - spreading_factor);
  if (bandwidth_hz == 250000 && spreading_factor == 7)
    return 6;
  return -1;
}

int gw_region_eu868_fsk_dr(uint32_t bit_rate) { return bit_rate == 50000 ? 7 : -1; }
