/* lwm2m-gw: the one event loop. One thread, epoll, fd watchers and timers; small enough to
 * read in one sitting (Redis ae.c, OpenWrt uloop). libcoap joins it through its epoll fd;
 * threaded libraries post into it through an eventfd. */
#ifndef GW_LOOP_H
#define GW_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct gw_loop gw_loop_t;

typedef void (*gw_fd_cb_t)(gw_loop_t *loop, int fd, uint32_t events, void *arg);
typedef void (*gw_timer_cb_t)(gw_loop_t *loop, void *arg);
/* Called before every wait; returns the longest the loop may sleep in ms, or -1 for no limit.
 * libcoap uses it to get its retransmission timers served. */
typedef int (*gw_prepare_cb_t)(gw_loop_t *loop, void *arg);

/* A timer lives inside its owner (no allocation); initialise once with gw_timer_init(). */
typedef struct gw_timer {
  gw_timer_cb_t cb;
  void *arg;
  uint64_t due_ms;
  int heap_index; /* -1 when not armed */
} gw_timer_t;

int gw_loop_new(gw_loop_t **out_loop);
void gw_loop_free(gw_loop_t **loop);

/* events are EPOLLIN/EPOLLOUT bits. The loop does not own fd; remove it before closing. */
int gw_loop_add_fd(gw_loop_t *loop, int fd, uint32_t events, gw_fd_cb_t cb, void *arg);
int gw_loop_mod_fd(gw_loop_t *loop, int fd, uint32_t events);
void gw_loop_del_fd(gw_loop_t *loop, int fd);

void gw_timer_init(gw_timer_t *timer, gw_timer_cb_t cb, void *arg);
/* (Re)arms the timer to fire once, after_ms from now. */
int gw_timer_start(gw_loop_t *loop, gw_timer_t *timer, uint64_t after_ms);
void gw_timer_stop(gw_loop_t *loop, gw_timer_t *timer);
static inline bool gw_timer_active(const gw_timer_t *timer) { return timer->heap_index >= 0; }

int gw_loop_add_prepare(gw_loop_t *loop, gw_prepare_cb_t cb, void *arg);

/* Monotonic milliseconds. */
uint64_t gw_now_ms(void);

/* Runs until gw_loop_stop(). Returns 0, or GW_ERR_IO when epoll fails. */
int gw_loop_run(gw_loop_t *loop);
void gw_loop_stop(gw_loop_t *loop);
/* Runs one iteration, waiting at most max_wait_ms (tests and the benchmark). */
int gw_loop_run_once(gw_loop_t *loop, int max_wait_ms);

#endif
