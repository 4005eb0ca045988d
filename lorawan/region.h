/* lwm2m-gw: LoRaWAN regional parameters the gateway needs: how many application bytes one frame
 * carries at each data rate, and which data rate a modulation is.
 *
 * The network server, not the gateway, builds the frames; the gateway only has to keep every
 * CoAP message within what the device's next downlink can carry, or the network server drops it
 * (ChirpStack: log event DOWNLINK_PAYLOAD_SIZE; The Things Stack: down/failed
 * application_downlink_too_long). Source of the EU868 numbers: ChirpStack lrwn/src/region/eu868.rs
 * (MaxPayloadSize n, not repeater compatible, the default), the same as LoRaWAN Regional
 * Parameters RP002 for EU868 (see shared/reference/lorawan-and-t8.md 1a "EU868 max payload per
 * DR"). Other regions are a configured table (gw_region_set_table).
 */
#ifndef GW_LORAWAN_REGION_H
#define GW_LORAWAN_REGION_H

#include <stddef.h>
#include <stdint.h>

/* Data rates 0..15: DR is a 4-bit field (LinkADRReq, LoRaWAN 1.0.4 5.3). */
#define GW_REGION_DR_COUNT 16

typedef struct {
  /* N: the largest FRMPayload without FOpts, in bytes, for DR 0..dr_count-1. A network server
   * that adds MAC commands in FOpts (at most 15 bytes) leaves less for the application. */
  uint8_t max_payload[GW_REGION_DR_COUNT];
  size_t dr_count;
} gw_region_t;

/* EU868, not repeater compatible: DR0-2 51, DR3 115, DR4-7 242 (SF8/125, SF7/125, SF7/250,
 * FSK 50 kbit/s), DR8-11 LR-FHSS 50, 115, 50, 115. */
void gw_region_eu868(gw_region_t *out);

/* Replaces the table with count values, one per DR from DR0 (the configuration's
 * bindings.lorawan.max_payload = [51, 51, 51, 115, 242, 242, 242, 242]); DRs past count become
 * unknown. Borrows table. GW_OK; GW_ERR_INVAL (r unchanged) when count is 0 or above
 * GW_REGION_DR_COUNT or a value is outside 1..255 (255: the most a FRMPayload can hold, the same
 * bound as The Things Stack's frm_payload max_len). */
int gw_region_set_table(gw_region_t *r, const unsigned *table, size_t count);

/* N at data rate dr. An unknown dr (negative, not in the table: a network server that did not
 * say) gives the smallest N of the table, which fits whatever the real data rate is. */
size_t gw_region_max_payload(const gw_region_t *r, int dr);

/* The smallest N of the table: what always fits. 0 for a table never filled (dr_count 0). */
size_t gw_region_min_payload(const gw_region_t *r);

/* EU868 data rate of a LoRa modulation (RP002 EU868 data rate table): SF12..SF7 at 125 kHz are
 * DR0..DR5, SF7 at 250 kHz is DR6. bandwidth_hz as the network servers write it (125000).
 * -1 for any other pair. */
int gw_region_eu868_lora_dr(unsigned spreading_factor, uint32_t bandwidth_hz);

/* EU868 data rate of an FSK modulation: 50 kbit/s is DR7; -1 otherwise. */
int gw_region_eu868_fsk_dr(uint32_t bit_rate);

#endif
