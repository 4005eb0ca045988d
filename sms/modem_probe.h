/* lwm2m-gw: `lwm2m-gw modem list` and `lwm2m-gw modem probe PORT`: find the modem's AT port and
 * print what the SMS binding needs to know about it, ending with a configuration snippet.
 * Both print to a FILE* and return; neither needs the daemon's configuration. */
#ifndef SMS_MODEM_PROBE_H
#define SMS_MODEM_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  unsigned baud;          /* 0: 115200 */
  uint32_t timeout_ms;    /* the whole probe; 0: 30000 */
  const char *by_id_dir;  /* NULL: /dev/serial/by-id */
} sms_modem_probe_opts_t;

/* Serial ports libserialport knows, with USB identity (VID:PID, manufacturer, product, serial
 * number), a hint for known modem makers (Quectel, SIMCom, Huawei, Sierra, Telit, u-blox), the
 * by-id links pointing to each port and who holds it open. by_id_dir NULL: /dev/serial/by-id.
 * Returns the number of ports listed, or a negative GW_ERR_*. */
int sms_modem_probe_list(FILE *out, const char *by_id_dir);

/* Opens port, asks identity, SIM state, own number, signal, registration, SMS centre and
 * storage, prints them and a `bindings = { sms = { ... }; };` snippet naming the stable by-id
 * path when one points to port. Runs its own event loop, bounded by opts->timeout_ms; does not
 * change the modem's settings beyond ATE0 and AT+CMEE=1 and never enters a PIN.
 * Returns GW_OK when the modem answered AT, else a negative GW_ERR_*. opts may be NULL. */
int sms_modem_probe_port(FILE *out, const char *port, const sms_modem_probe_opts_t *opts);

/* The first link in dir (sorted by name) that resolves to the same device as port. */
bool sms_modem_probe_by_id_link(const char *dir, const char *port, char *out, size_t out_size);

#endif
