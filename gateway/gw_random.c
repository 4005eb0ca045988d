#include "gw_random.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gw_log.h"

/* splitmix64 (Steele, Lea, Flood 2014): only for the no-kernel-source fallback. */
static uint64_t fallback_next(void) {
  static uint64_t state;
  static bool seeded;
  if (!seeded) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    state = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
            (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&ts;
    seeded = true;
    GW_ERR("random", "no kernel random source (getrandom, /dev/urandom): message IDs and "
                     "tokens come from a clock-seeded generator and are guessable");
  }
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static bool from_urandom(uint8_t *out, size_t len) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, out + got, len - got);
    if (n <= 0 && errno != EINTR)
      break;
    if (n > 0)
      got += (size_t)n;
  }
  close(fd);
  return got == len;
}

void gw_random_bytes(void *out, size_t len) {
  uint8_t *p = out;
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(p + got, len - got, 0);
    if (n > 0)
      got += (size_t)n;
    else if (errno != EINTR)
      break;
  }
  if (got == len || from_urandom(p + got, len - got))
    return;
  for (; got < len; got++)
    p[got] = (uint8_t)fallback_next();
}

uint16_t gw_random_u16(void) {
  uint16_t v;
  gw_random_bytes(&v, sizeof(v));
  return v;
}

uint32_t gw_random_u32(void) {
  uint32_t v;
  gw_random_bytes(&v, sizeof(v));
  return v;
}

uint64_t gw_random_u64(void) {
  uint64_t v;
  gw_random_bytes(&v, sizeof(v));
  return v;
}
