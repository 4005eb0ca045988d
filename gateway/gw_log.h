/* lwm2m-gw: one logging call with module and level; syslog on a router, stderr in tests.
 * libcoap's log is routed into it (see upstream.c). */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdarg.h>

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

#define GW_ERR(mod, ...) gw_log(GW_LOG_ERR, mod, __VA_ARGS__)
#define GW_WARN(mod, ...) gw_log(GW_LOG_WARNING, mod, __VA_ARGS__)
#define GW_NOTICE(mod, ...) gw_log(GW_LOG_NOTICE, mod, __VA_ARGS__)
#define GW_INFO(mod, ...) gw_log(GW_LOG_INFO, mod, __VA_ARGS__)
#define GW_DEBUG(mod, ...) gw_log(GW_LOG_DEBUG, mod, __VA_ARGS__)

#endif
