#include "gw_log.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static gw_log_target_t log_target = GW_LOG_TO_STDERR;
static gw_log_level_t log_level = GW_LOG_INFO;

static const char *const level_names[] = {
    [GW_LOG_ERR] = "error", [GW_LOG_WARNING] = "warning", [GW_LOG_NOTICE] = "notice",
    [GW_LOG_INFO] = "info", [GW_LOG_DEBUG] = "debug"};

void gw_log_setup(gw_log_target_t target, gw_log_level_t level) {
  if (log_target == GW_LOG_TO_SYSLOG && target != GW_LOG_TO_SYSLOG)
    closelog();
  if (target == GW_LOG_TO_SYSLOG && log_target != GW_LOG_TO_SYSLOG)
    openlog("lwm2m-gw", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  log_target = target;
  log_level = level;
}

void gw_log_set_level(gw_log_level_t level) { log_level = level; }
gw_log_level_t gw_log_get_level(void) { return log_level; }

int gw_log_level_from_name(const char *name) {
  for (int l = GW_LOG_ERR; l <= GW_LOG_DEBUG; l++)
    if (strcmp(name, level_names[l]) == 0)
      return l;
  if (strcmp(name, "warn") == 0)
    return GW_LOG_WARNING;
  if (strcmp(name, "err") == 0)
    return GW_LOG_ERR;
  return -1;
}

const char *gw_log_level_name(gw_log_level_t level) {
  if (level < GW_LOG_ERR || level > GW_LOG_DEBUG)
    return "?";
  return level_names[level];
}

void gw_vlog(gw_log_level_t level, const char *module, const char *fmt, va_list ap) {
  if (level > log_level)
    return;
  char line[1024];
  vsnprintf(line, sizeof(line), fmt, ap);
  if (log_target == GW_LOG_TO_SYSLOG) {
    syslog((int)level, "[%s] %s", module, line);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%02d:%02d:%02d.%03ld %-7s [%s] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
          ts.tv_nsec / 1000000, gw_log_level_name(level), module, line);
}

void gw_log(gw_log_level_t level, const char *module, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gw_vlog(level, module, fmt, ap);
  va_end(ap);
}

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gw_log_limited(gw_log_limit_t *limit, gw_log_level_t level, const char *module,
                    const char *fmt, ...) {
  if (level > log_level)
    return;
  uint64_t now = monotonic_ms();
  if (limit->logged == 0 || now - limit->window_start_ms >= GW_LOG_WINDOW_MS) {
    if (limit->suppressed)
      gw_log(level, module, "%llu more lines like the next were suppressed in %u s",
             (unsigned long long)limit->suppressed, GW_LOG_WINDOW_MS / 1000);
    limit->window_start_ms = now;
    limit->logged = 0;
    limit->suppressed = 0;
  }
  if (limit->logged >= GW_LOG_BURST) {
    limit->suppressed++;
    return;
  }
  limit->logged++;
  va_list ap;
  va_start(ap, fmt);
  gw_vlog(level, module, fmt, ap);
  va_end(ap);
}
