/* lwm2m-gw: serial port backends for the modem driver. Internal to sms/.
 *
 * Two ways to open a port, one result: a non-blocking file descriptor for the event loop.
 *   - libserialport for real ports (USB CDC-ACM, USB serial "option" ports, UARTs);
 *   - plain termios for pseudo-terminals, which libserialport 0.1.1 cannot open (the virtual
 *     modem, socat, tests), and as a fallback when libserialport fails on a port.
 * The path is resolved first (realpath), so /dev/serial/by-id/ links pick the right backend and
 * a port re-enumerated under another ttyUSBn is found again at the next open.
 *
 * Ports are taken exclusively (TIOCEXCL). When another process holds the port, the error names
 * it (typically ModemManager) and says how to make it let go.
 */
#ifndef SMS_SERIAL_H
#define SMS_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef enum {
  SMS_SERIAL_AUTO,          /* termios under /dev/pts/, else libserialport, else termios */
  SMS_SERIAL_LIBSERIALPORT, /* only libserialport */
  SMS_SERIAL_TERMIOS        /* only termios */
} sms_serial_backend_t;

typedef struct sms_serial sms_serial_t;

/* Opens port at baud, 8N1, no flow control, raw, non-blocking, exclusive.
 * Returns GW_OK; GW_ERR_NOTFOUND when the path does not exist (yet: USB enumeration);
 * GW_ERR_IO with a message in err (always NUL-terminated) for anything else, the holder named
 * when the port is busy. */
int sms_serial_open(const char *port, unsigned baud, sms_serial_backend_t backend,
                    sms_serial_t **out_serial, char *err, size_t err_size);
void sms_serial_close(sms_serial_t **serial);

int sms_serial_fd(const sms_serial_t *serial);
/* "libserialport" or "termios" */
const char *sms_serial_backend_name(const sms_serial_t *serial);
/* The device path the port resolved to (e.g. /dev/ttyUSB2). */
const char *sms_serial_device(const sms_serial_t *serial);

/* Non-blocking read/write: >0 bytes, 0 when it would block, -1 on error or end of file (the
 * device is gone); errno tells which (0 for end of file). */
ssize_t sms_serial_read(sms_serial_t *serial, void *buf, size_t len);
ssize_t sms_serial_write(sms_serial_t *serial, const void *buf, size_t len);

/* Other processes holding path open, as "ModemManager (pid 812)" joined by ", " into out
 * (empty when none or when /proc cannot tell). Returns how many were found. */
int sms_serial_holders(const char *path, char *out, size_t out_size);

#endif
