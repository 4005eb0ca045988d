/* lwm2m-gw: serial port backends (libserialport, termios). See serial.h. */
#include "serial.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <libserialport.h>

#include "gw_error.h"
#include "gw_log.h"

#define MOD "modem"

struct sms_serial {
  int fd;
  struct sp_port *sp; /* NULL for termios */
  char device[PATH_MAX];
};

int sms_serial_fd(const sms_serial_t *s) { return s->fd; }
const char *sms_serial_backend_name(const sms_serial_t *s) {
  return s->sp ? "libserialport" : "termios";
}
const char *sms_serial_device(const sms_serial_t *s) { return s->device; }

/* ---- who holds the port ---- */

static void process_name(const char *pid, char *out, size_t out_size) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%s/comm", pid);
  FILE *f = fopen(path, "r");
  out[0] = '\0';
  if (!f)
    return;
  if (fgets(out, (int)out_size, f))
    out[strcspn(out, "\n")] = '\0';
  fclose(f);
}

int sms_serial_holders(const char *path, char *out, size_t out_size) {
  if (out_size)
    out[0] = '\0';
  char want[PATH_MAX];
  if (!realpath(path, want))
    return 0;
  DIR *proc = opendir("/proc");
  if (!proc)
    return 0;
  int found = 0;
  size_t used = 0;
  char self[32];
  snprintf(self, sizeof(self), "%d", (int)getpid());
  struct dirent *p;
  while ((p = readdir(proc)) != NULL) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9' || strcmp(p->d_name, self) == 0)
      continue;
    char fd_dir[300];
    snprintf(fd_dir, sizeof(fd_dir), "/proc/%s/fd", p->d_name);
    DIR *fds = opendir(fd_dir);
    if (!fds)
      continue; /* another user's process: not visible without privileges */
    struct dirent *f;
    while ((f = readdir(fds)) != NULL) {
      if (f->d_name[0] == '.')
        continue;
      char link[600], target[PATH_MAX];
      snprintf(link, sizeof(link), "%s/%s", fd_dir, f->d_name);
      ssize_t n = readlink(link, target, sizeof(target) - 1);
      if (n <= 0)
        continue;
      target[n] = '\0';
      if (strcmp(target, want) != 0)
        continue;
      char name[64];
      process_name(p->d_name, name, sizeof(name));
      if (used + 1 < out_size) {
        int w = snprintf(out + used, out_size - used, "%s%s (pid %s)", found ? ", " : "",
                         name[0] ? name : "?", p->d_name);
        if (w > 0)
          used += (size_t)w < out_size - used ? (size_t)w : out_size - used - 1;
      }
      found++;
      break;
    }
    closedir(fds);
  }
  closedir(proc);
  return found;
}

/* UUCP lock files (/var/lock/LCK..ttyUSB2) are still written by some tools (minicom, pppd,
 * gammu): honour one whose process is alive. */
static pid_t uucp_lock_owner(const char *device) {
  const char *base = strrchr(device, '/');
  base = base ? base + 1 : device;
  static const char *const dirs[] = {"/var/lock", "/run/lock", "/var/lock/lockdev"};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/LCK..%s", dirs[i], base);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    char buf[64] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    long pid = 0;
    /* ASCII format: "      1234\n"; old binary format: a 4-byte int. */
    if (n == 4 && (buf[0] < ' ' || buf[3] < ' ')) {
      int32_t v;
      memcpy(&v, buf, 4);
      pid = v;
    } else {
      pid = strtol(buf, NULL, 10);
    }
    if (pid > 0 && pid != getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
      return (pid_t)pid;
  }
  return 0;
}

static void busy_message(const char *port, const char *device, char *err, size_t err_size) {
  char holders[256];
  int n = sms_serial_holders(device, holders, sizeof(holders));
  if (n > 0)
    snprintf(err, err_size,
             "%s (%s) is busy: held by %s. If that is ModemManager, stop it or tell it to leave "
             "the port alone (udev: ENV{ID_MM_DEVICE_IGNORE}=\"1\")",
             port, device, holders);
  else
    snprintf(err, err_size,
             "%s (%s) is busy: another process has it open exclusively, typically "
             "ModemManager (stop it, or set the udev property ID_MM_DEVICE_IGNORE=1 on the "
             "modem)",
             port, device);
}

/* ---- backends ---- */

static speed_t baud_to_speed(unsigned baud) {
  switch (baud) {
  case 1200: return B1200;
  case 2400: return B2400;
  case 4800: return B4800;
  case 9600: return B9600;
  case 19200: return B19200;
  case 38400: return B38400;
  case 57600: return B57600;
  case 115200: return B115200;
  case 230400: return B230400;
  case 460800: return B460800;
  case 500000: return B500000;
  case 921600: return B921600;
  case 1000000: return B1000000;
  case 2000000: return B2000000;
  case 3000000: return B3000000;
  case 4000000: return B4000000;
  default: return 0;
  }
}

static int open_termios(const char *device, unsigned baud, int *out_fd, char *err,
                        size_t err_size) {
  speed_t speed = baud_to_speed(baud);
  if (!speed) {
    snprintf(err, err_size, "%s: unsupported baud rate %u", device, baud);
    return GW_ERR_INVAL;
  }
  int fd = open(device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == EBUSY)
      return GW_ERR_FULL; /* the caller words the busy message */
    snprintf(err, err_size, "%s: %s", device, strerror(e));
    return e == ENOENT || e == ENODEV || e == ENXIO ? GW_ERR_NOTFOUND : GW_ERR_IO;
  }
  struct termios t;
  if (tcgetattr(fd, &t) != 0) {
    snprintf(err, err_size, "%s: not a terminal: %s", device, strerror(errno));
    close(fd);
    return GW_ERR_IO;
  }
  cfmakeraw(&t);
  t.c_cflag |= CLOCAL | CREAD; /* no hang-up on a missing DCD; the modem drives nothing */
  t.c_cflag &= ~(CRTSCTS | CSTOPB | PARENB);
  /* VMIN 1: an empty non-blocking read fails with EAGAIN; with VMIN 0 it would return 0,
   * which could not be told from a hang-up. */
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  cfsetispeed(&t, speed);
  cfsetospeed(&t, speed);
  if (tcsetattr(fd, TCSANOW, &t) != 0) {
    snprintf(err, err_size, "%s: cannot configure: %s", device, strerror(errno));
    close(fd);
    return GW_ERR_IO;
  }
  *out_fd = fd;
  return GW_OK;
}

/* Returns GW_OK, GW_ERR_FULL (busy) or GW_ERR_IO (try termios). */
static int open_libserialport(const char *device, unsigned baud, struct sp_port **out_sp,
                              int *out_fd, char *err, size_t err_size) {
  struct sp_port *sp = NULL;
  if (sp_get_port_by_name(device, &sp) != SP_OK) {
    snprintf(err, err_size, "%s: libserialport does not know this port", device);
    return GW_ERR_IO;
  }
  enum sp_return rc = sp_open(sp, SP_MODE_READ_WRITE);
  if (rc != SP_OK) {
    int code = rc == SP_ERR_FAIL ? sp_last_error_code() : 0;
    char *msg = rc == SP_ERR_FAIL ? sp_last_error_message() : NULL;
    snprintf(err, err_size, "%s: libserialport: %s", device, msg ? msg : "open failed");
    if (msg)
      sp_free_error_message(msg);
    sp_free_port(sp);
    return code == EBUSY ? GW_ERR_FULL : GW_ERR_IO;
  }
  if (sp_set_baudrate(sp, (int)baud) != SP_OK || sp_set_bits(sp, 8) != SP_OK ||
      sp_set_parity(sp, SP_PARITY_NONE) != SP_OK || sp_set_stopbits(sp, 1) != SP_OK ||
      sp_set_flowcontrol(sp, SP_FLOWCONTROL_NONE) != SP_OK) {
    snprintf(err, err_size, "%s: libserialport cannot configure %u 8N1", device, baud);
    sp_close(sp);
    sp_free_port(sp);
    return GW_ERR_IO;
  }
  /* Some modems stay silent until DTR is asserted. */
  sp_set_dtr(sp, SP_DTR_ON);
  sp_set_rts(sp, SP_RTS_ON);
  int fd = -1;
  if (sp_get_port_handle(sp, &fd) != SP_OK || fd < 0) {
    snprintf(err, err_size, "%s: libserialport gives no file descriptor", device);
    sp_close(sp);
    sp_free_port(sp);
    return GW_ERR_IO;
  }
  *out_sp = sp;
  *out_fd = fd;
  return GW_OK;
}

int sms_serial_open(const char *port, unsigned baud, sms_serial_backend_t backend,
                    sms_serial_t **out_serial, char *err, size_t err_size) {
  err[0] = '\0';
  if (!port || !*port) {
    snprintf(err, err_size, "no serial port given");
    return GW_ERR_INVAL;
  }
  if (!baud)
    baud = 115200;
  char device[PATH_MAX];
  if (!realpath(port, device)) {
    int e = errno;
    snprintf(err, err_size, "%s: %s%s", port, strerror(e),
             e == ENOENT ? " (modem unplugged or not enumerated yet)" : "");
    return e == ENOENT || e == ENOTDIR ? GW_ERR_NOTFOUND : GW_ERR_IO;
  }
  pid_t locker = uucp_lock_owner(device);
  if (locker) {
    char name[64], pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)locker);
    process_name(pid, name, sizeof(name));
    snprintf(err, err_size, "%s (%s) is busy: locked by %s (pid %d) through a UUCP lock file",
             port, device, name[0] ? name : "?", (int)locker);
    return GW_ERR_IO;
  }

  bool pty = strncmp(device, "/dev/pts/", 9) == 0;
  struct sp_port *sp = NULL;
  int fd = -1, rc = GW_ERR_IO;
  if (backend == SMS_SERIAL_LIBSERIALPORT || (backend == SMS_SERIAL_AUTO && !pty)) {
    rc = open_libserialport(device, baud, &sp, &fd, err, err_size);
    if (rc != GW_OK && rc != GW_ERR_FULL && backend == SMS_SERIAL_AUTO)
      GW_DEBUG(MOD, "%s; trying plain termios", err);
  }
  if (rc != GW_OK && rc != GW_ERR_FULL && backend != SMS_SERIAL_LIBSERIALPORT)
    rc = open_termios(device, baud, &fd, err, err_size);
  if (rc == GW_ERR_FULL) {
    busy_message(port, device, err, err_size);
    return GW_ERR_IO;
  }
  if (rc != GW_OK)
    return rc;

  /* Exclusive: a second opener (ModemManager probing, a stray minicom) gets EBUSY instead of
   * stealing our replies. */
  if (ioctl(fd, TIOCEXCL) != 0)
    GW_DEBUG(MOD, "%s: TIOCEXCL: %s", device, strerror(errno));
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    snprintf(err, err_size, "%s: cannot make non-blocking: %s", device, strerror(errno));
    if (sp) {
      sp_close(sp);
      sp_free_port(sp);
    } else {
      close(fd);
    }
    return GW_ERR_IO;
  }
  /* libserialport leaves VMIN 0: an empty read would return 0 and look like end of file. */
  struct termios t;
  if (tcgetattr(fd, &t) == 0 && (t.c_cc[VMIN] != 1 || t.c_cc[VTIME] != 0)) {
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(fd, TCSANOW, &t);
  }
  tcflush(fd, TCIOFLUSH); /* stale bytes from before we came */

  /* A pseudo-terminal is held open by its emulator (the virtual modem) by design. */
  char holders[256];
  if (strncmp(device, "/dev/pts/", 9) != 0 &&
      sms_serial_holders(device, holders, sizeof(holders)) > 0)
    GW_WARN(MOD,
            "%s is also open in %s: replies may go astray; if that is ModemManager, set the "
            "udev property ID_MM_DEVICE_IGNORE=1 on the modem",
            device, holders);

  sms_serial_t *s = calloc(1, sizeof(*s));
  if (!s) {
    if (sp) {
      sp_close(sp);
      sp_free_port(sp);
    } else {
      close(fd);
    }
    return GW_ERR_NOMEM;
  }
  s->fd = fd;
  s->sp = sp;
  snprintf(s->device, sizeof(s->device), "%s", device);
  *out_serial = s;
  return GW_OK;
}

void sms_serial_close(sms_serial_t **serial) {
  if (!*serial)
    return;
  sms_serial_t *s = *serial;
  if (s->sp) {
    sp_close(s->sp);
    sp_free_port(s->sp);
  } else {
    close(s->fd);
  }
  free(s);
  *serial = NULL;
}

ssize_t sms_serial_read(sms_serial_t *s, void *buf, size_t len) {
  ssize_t n = read(s->fd, buf, len);
  if (n > 0)
    return n;
  if (n == 0) {
    errno = 0;
    return -1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return 0;
  return -1;
}

ssize_t sms_serial_write(sms_serial_t *s, const void *buf, size_t len) {
  ssize_t n = write(s->fd, buf, len);
  if (n >= 0)
    return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return 0;
  return -1;
}
