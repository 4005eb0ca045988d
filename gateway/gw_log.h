/* lwm2m-gw: one logging call with module and level; syslog on a router, stderr in tests.
 * libcoap's log is routed into it (see upstream.c). */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdarg.h>
#include <stdint.h>

/* Same numbers as syslog(3) priorities, so the syslog target needs no mapping. */
typedef enum {
  GW_LOG_ERR = 3,
  GW_LOG_WARNING = 4,
  GW_LOG_NOTICE = 5,
  GW_LOG_INFO = 6,
  GW_LOG_DEBUG = 7
} gw_log_level_t;

typedef enum { GW_LOG_TO_STDERR = 0, GW_LOG_TO_SYSLOG = 1 } gw_log_target_t;

void gw_log_setup(gw_log_target_t target, gw_log_level_t level);
void gw_log_set_level(gw_log_level_t level);
gw_log_level_t gw_log_get_level(void);

/* Parses "error", "warning", "notice", "info", "debug"; returns -1 if unknown. */
int gw_log_level_from_name(const char *name);
const char *gw_log_level_name(gw_log_level_t level);

void gw_log(gw_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_vlog(gw_log_level_t level, const char *module, const char *fmt, va_list ap);

/* Lines about input from outside (malformed datagrams, refused senders, floods) are limited per
 * kind, so that a flood cannot fill a router's flash or log ring: at most GW_LOG_BURST lines of
 * one kind per GW_LOG_WINDOW_MS; the first line of the next window says how many were
 * suppressed. The exact counts are always in the metrics. One gw_log_limit_t per kind (the
 * GW_*_LIMITED macros keep one per call site). Event loop thread only. */
#define GW_LOG_BURST 5
#define GW_LOG_WINDOW_MS 10000
typedef struct {
  uint64_t window_start_ms;
  uint32_t logged;     /* lines logged in the current window */
  uint64_t suppressed; /* lines dropped in the current window */
} gw_log_limit_t;

void gw_log_limited(gw_log_limit_t *limit, gw_log_level_t level, const char *module,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define GW_LOG_LIMITED(level, mod, ...)                                                        \
  do {                                                                                         \
    static gw_log_limit_t limit_;                                                              \
    gw_log_limited(&limit_, level, mod, __VA_ARGS__);                                          \
  } while (0)
#define GW_ERR_LIMITED(mod, ...) GW_LOG_LIMITED(GW_LOG_ERR, mod, __VA_ARGS__)
#define GW_WARN_LIMITED(mod, ...) GW_LOG_LIMITED(GW_LOG_WARNING, mod, __VA_ARGS__)
#define GW_NOTICE_LIMITED(mod, ...) GW_LOG_LIMITED(GW_LOG_NOTICE, mod, __VA_ARGS__)
#define GW_INFO_LIMITED(mod, ...) GW_LOG_LIMITED(GW_LOG_INFO, mod, __VA_ARGS__)

#define GW_ERR(mod, ...) gw_log(GW_LOG_ERR, mod, __VA_ARGS__)
#define GW_WARN(mod, ...) gw_log(GW_LOG_WARNING, mod, __VA_ARGS__)
#define GW_NOTICE(mod, ...) gw_log(GW_LOG_NOTICE, mod, __VA_ARGS__)
#define GW_INFO(mod, ...) gw_log(GW_LOG_INFO, mod, __VA_ARGS__)
#define GW_DEBUG(mod, ...) gw_log(GW_LOG_DEBUG, mod, __VA_ARGS__)

#endif
