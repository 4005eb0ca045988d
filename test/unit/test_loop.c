/* Unit tests of the event loop: timers (min-heap), fd watchers on pipes and eventfds, prepare
 * callbacks and stopping. Delays are short real times; assertions on time only bound from one
 * side or use wide margins, so a loaded machine slows the test down but does not fail it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_error.h"
#include "loop.h"

#define DEADLINE_MS 10000 /* a test that waits longer than this has failed */

static int loop_setup(void **state) {
  gw_loop_t *loop = NULL;
  if (gw_loop_new(&loop) != GW_OK)
    return -1;
  *state = loop;
  return 0;
}

static int loop_teardown(void **state) {
  gw_loop_t *loop = *state;
  gw_loop_free(&loop);
  return 0;
}

/* Runs the loop for about ms milliseconds. */
static void run_for(gw_loop_t *loop, uint64_t ms) {
  uint64_t end = gw_now_ms() + ms;
  for (uint64_t now = gw_now_ms(); now < end; now = gw_now_ms())
    assert_int_equal(gw_loop_run_once(loop, (int)(end - now)), GW_OK);
}

/* ---- timers ------------------------------------------------------------------------------ */

typedef struct {
  gw_timer_t timer;
  int id;
  int fired;
  uint64_t fired_at;
  uint64_t due_at_fire;
  struct fire_log *log;
} probe_t;

typedef struct fire_log {
  int order[1024];
  uint64_t due[1024];
  int count;
} fire_log_t;

static void probe_fired(gw_loop_t *loop, void *arg) {
  (void)loop;
  probe_t *p = arg;
  p->fired++;
  p->fired_at = gw_now_ms();
  p->due_at_fire = p->timer.due_ms;
  /* A timer is disarmed before its callback runs. */
  assert_false(gw_timer_active(&p->timer));
  if (p->log && p->log->count < 1024) {
    p->log->order[p->log->count] = p->id;
    p->log->due[p->log->count] = p->timer.due_ms;
    p->log->count++;
  }
}

static void probe_init(probe_t *p, int id, fire_log_t *log) {
  memset(p, 0, sizeof(*p));
  p->id = id;
  p->log = log;
  gw_timer_init(&p->timer, probe_fired, p);
}

/* Runs the loop until log has n entries or the deadline passes. */
static void run_until_logged(gw_loop_t *loop, const fire_log_t *log, int n) {
  uint64_t deadline = gw_now_ms() + DEADLINE_MS;
  while (log->count < n && gw_now_ms() < deadline)
    assert_int_equal(gw_loop_run_once(loop, 100), GW_OK);
  assert_int_equal(log->count, n);
}

static void test_timer_init(void **state) {
  (void)state;
  probe_t p;
  probe_init(&p, 0, NULL);
  assert_false(gw_timer_active(&p.timer));
  assert_int_equal(p.timer.heap_index, -1);
  assert_ptr_equal(p.timer.arg, &p);
}

static void test_timers_fire_in_due_order(void **state) {
  gw_loop_t *loop = *state;
  static const uint64_t delays[] = {60, 15, 40, 0, 5, 25};
  enum { N = sizeof(delays) / sizeof(delays[0]) };
  static const int expected[N] = {3, 4, 1, 5, 2, 0};
  fire_log_t log = {0};
  probe_t probes[N];
  uint64_t started = gw_now_ms();
  for (int i = 0; i < N; i++) {
    probe_init(&probes[i], i, &log);
    assert_int_equal(gw_timer_start(loop, &probes[i].timer, delays[i]), GW_OK);
    assert_true(gw_timer_active(&probes[i].timer));
    assert_true(probes[i].timer.due_ms >= started + delays[i]);
  }
  run_until_logged(loop, &log, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(log.order[i], expected[i]);
    assert_int_equal(probes[i].fired, 1);
    /* Never early. */
    assert_true(probes[i].fired_at >= probes[i].due_at_fire);
    assert_true(probes[i].fired_at >= started + delays[i]);
  }
}

static void test_timer_fires_once(void **state) {
  gw_loop_t *loop = *state;
  probe_t p;
  probe_init(&p, 0, NULL);
  gw_timer_start(loop, &p.timer, 1);
  run_for(loop, 30);
  assert_int_equal(p.fired, 1);
  assert_false(gw_timer_active(&p.timer));
  run_for(loop, 10);
  assert_int_equal(p.fired, 1);
}

static void test_timer_rearm(void **state) {
  gw_loop_t *loop = *state;
  probe_t p;
  probe_init(&p, 0, NULL);
  /* Re-arming replaces the due time, in both directions, and never duplicates the timer. */
  gw_timer_start(loop, &p.timer, 5000);
  gw_timer_start(loop, &p.timer, 1);
  run_for(loop, 40);
  assert_int_equal(p.fired, 1);

  p.fired = 0;
  uint64_t started = gw_now_ms();
  gw_timer_start(loop, &p.timer, 0);
  gw_timer_start(loop, &p.timer, 150);
  run_for(loop, 50);
  if (gw_now_ms() < started + 150) /* always, unless the machine stalled for 100 ms */
    assert_int_equal(p.fired, 0);
  assert_true(gw_timer_active(&p.timer));
  fire_log_t log = {0};
  p.log = &log;
  run_until_logged(loop, &log, 1);
  assert_int_equal(p.fired, 1);
  assert_true(p.fired_at >= started + 150);
}

static void test_timer_stop(void **state) {
  gw_loop_t *loop = *state;
  probe_t a, b, c, never_armed;
  probe_init(&a, 0, NULL);
  probe_init(&b, 1, NULL);
  probe_init(&c, 2, NULL);
  probe_init(&never_armed, 3, NULL);
  gw_timer_start(loop, &a.timer, 0);
  gw_timer_start(loop, &b.timer, 1);
  gw_timer_start(loop, &c.timer, 2);
  gw_timer_stop(loop, &b.timer);
  assert_false(gw_timer_active(&b.timer));
  gw_timer_stop(loop, &b.timer);           /* twice is harmless */
  gw_timer_stop(loop, &never_armed.timer); /* so is never armed */
  run_for(loop, 30);
  assert_int_equal(a.fired, 1);
  assert_int_equal(b.fired, 0);
  assert_int_equal(c.fired, 1);
  assert_int_equal(never_armed.fired, 0);
  gw_timer_stop(loop, &a.timer); /* after firing: harmless */
  assert_false(gw_timer_active(&a.timer));
}

#define MANY 1000

static void test_many_timers(void **state) {
  gw_loop_t *loop = *state;
  static probe_t probes[MANY];
  static fire_log_t log;
  memset(&log, 0, sizeof(log));
  srand(7252);
  for (int i = 0; i < MANY; i++) {
    probe_init(&probes[i], i, &log);
    assert_int_equal(gw_timer_start(loop, &probes[i].timer, (uint64_t)(rand() % 51)), GW_OK);
  }
  run_until_logged(loop, &log, MANY);
  for (int i = 0; i < MANY; i++)
    assert_int_equal(probes[i].fired, 1);
  for (int i = 1; i < MANY; i++)
    assert_true(log.due[i - 1] <= log.due[i]);
}

/* Stopping timers from the middle of the heap keeps the rest in order. */
static void test_many_timers_some_stopped(void **state) {
  gw_loop_t *loop = *state;
  static probe_t probes[MANY];
  static fire_log_t log;
  memset(&log, 0, sizeof(log));
  srand(7641);
  for (int i = 0; i < MANY; i++) {
    probe_init(&probes[i], i, &log);
    gw_timer_start(loop, &probes[i].timer, (uint64_t)(rand() % 51));
  }
  int stopped = 0;
  for (int i = 0; i < MANY; i += 3) {
    gw_timer_stop(loop, &probes[i].timer);
    stopped++;
  }
  /* Re-arm some of the rest to new random times. */
  for (int i = 1; i < MANY; i += 5)
    if (i % 3 != 0)
      gw_timer_start(loop, &probes[i].timer, (uint64_t)(rand() % 51));
  run_until_logged(loop, &log, MANY - stopped);
  run_for(loop, 20);
  assert_int_equal(log.count, MANY - stopped);
  for (int i = 0; i < MANY; i++)
    assert_int_equal(probes[i].fired, i % 3 == 0 ? 0 : 1);
  for (int i = 1; i < log.count; i++)
    assert_true(log.due[i - 1] <= log.due[i]);
}

typedef struct {
  probe_t self;
  probe_t *victim;
} stopper_t;

static void stop_victim(gw_loop_t *loop, void *arg) {
  stopper_t *s = arg;
  s->self.fired++;
  gw_timer_stop(loop, &s->victim->timer);
}

static void test_timer_callback_stops_another(void **state) {
  gw_loop_t *loop = *state;
  stopper_t s;
  probe_t victim, bystander;
  probe_init(&s.self, 0, NULL);
  gw_timer_init(&s.self.timer, stop_victim, &s);
  probe_init(&victim, 1, NULL);
  probe_init(&bystander, 2, NULL);
  s.victim = &victim;
  gw_timer_start(loop, &s.self.timer, 0);
  gw_timer_start(loop, &victim.timer, 2);
  gw_timer_start(loop, &bystander.timer, 3);
  /* Let all three fall due, so they are served in one pass. */
  usleep(10000);
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  assert_int_equal(s.self.fired, 1);
  assert_int_equal(victim.fired, 0);
  assert_int_equal(bystander.fired, 1);
  run_for(loop, 10);
  assert_int_equal(victim.fired, 0);
}

typedef struct {
  gw_timer_t timer;
  int fired;
  int limit;
  uint64_t period;
} periodic_t;

static void periodic_fired(gw_loop_t *loop, void *arg) {
  periodic_t *p = arg;
  if (++p->fired < p->limit)
    assert_int_equal(gw_timer_start(loop, &p->timer, p->period), GW_OK);
}

static void test_timer_rearms_itself(void **state) {
  gw_loop_t *loop = *state;
  periodic_t p = {.limit = 5, .period = 2};
  gw_timer_init(&p.timer, periodic_fired, &p);
  gw_timer_start(loop, &p.timer, 0);
  uint64_t deadline = gw_now_ms() + DEADLINE_MS;
  while (p.fired < 5 && gw_now_ms() < deadline)
    gw_loop_run_once(loop, 50);
  assert_int_equal(p.fired, 5);
  assert_false(gw_timer_active(&p.timer));
}

/* A timer re-armed for "now" from its own callback must not keep one iteration forever. */
static void test_timer_rearm_now_does_not_starve(void **state) {
  gw_loop_t *loop = *state;
  periodic_t p = {.limit = 1000000, .period = 0};
  gw_timer_init(&p.timer, periodic_fired, &p);
  gw_timer_start(loop, &p.timer, 0);
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  assert_true(p.fired >= 1);
  assert_true(p.fired < 1000);
  int after_one = p.fired;
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  assert_true(p.fired > after_one);
  gw_timer_stop(loop, &p.timer);
}

static void test_loop_free_disarms_timers(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  probe_t a, b;
  probe_init(&a, 0, NULL);
  probe_init(&b, 1, NULL);
  gw_timer_start(loop, &a.timer, 100);
  gw_timer_start(loop, &b.timer, 200);
  gw_loop_free(&loop);
  assert_null(loop);
  assert_false(gw_timer_active(&a.timer));
  assert_false(gw_timer_active(&b.timer));
  gw_loop_free(&loop); /* NULL: harmless */
}

/* ---- fd watchers ------------------------------------------------------------------------- */

typedef struct {
  int fd;
  int calls;
  uint32_t events;
  int seen_fd;
  void *seen_arg;
  /* What the callback does besides recording: drain the fd, delete watches. */
  bool drain;
  int del_fds[2];
  int del_count;
} watch_t;

static void watch_cb(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  watch_t *w = arg;
  w->calls++;
  w->events = events;
  w->seen_fd = fd;
  w->seen_arg = arg;
  if (w->drain) {
    char buf[64];
    assert_true(read(fd, buf, sizeof(buf)) > 0);
  }
  for (int i = 0; i < w->del_count; i++)
    gw_loop_del_fd(loop, w->del_fds[i]);
}

static void test_fd_pipe_readable(void **state) {
  gw_loop_t *loop = *state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  watch_t w = {.fd = p[0], .drain = true};
  assert_int_equal(gw_loop_add_fd(loop, p[0], EPOLLIN, watch_cb, &w), GW_OK);
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  assert_int_equal(w.calls, 0);

  assert_int_equal(write(p[1], "x", 1), 1);
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(w.calls, 1);
  assert_int_equal(w.seen_fd, p[0]);
  assert_ptr_equal(w.seen_arg, &w);
  assert_true(w.events & EPOLLIN);
  /* Drained: level-triggered epoll reports nothing more. */
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  assert_int_equal(w.calls, 1);

  /* Interest in nothing: readable but not reported. */
  assert_int_equal(gw_loop_mod_fd(loop, p[0], 0), GW_OK);
  assert_int_equal(write(p[1], "y", 1), 1);
  assert_int_equal(gw_loop_run_once(loop, 20), GW_OK);
  assert_int_equal(w.calls, 1);
  assert_int_equal(gw_loop_mod_fd(loop, p[0], EPOLLIN), GW_OK);
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(w.calls, 2);

  gw_loop_del_fd(loop, p[0]);
  assert_int_equal(write(p[1], "z", 1), 1);
  assert_int_equal(gw_loop_run_once(loop, 20), GW_OK);
  assert_int_equal(w.calls, 2);
  close(p[0]);
  close(p[1]);
}

static void test_fd_errors(void **state) {
  gw_loop_t *loop = *state;
  watch_t w = {0};
  assert_int_equal(gw_loop_add_fd(loop, -1, EPOLLIN, watch_cb, &w), GW_ERR_IO);
  assert_int_equal(gw_loop_mod_fd(loop, 12345, EPOLLIN), GW_ERR_NOTFOUND);
  gw_loop_del_fd(loop, 12345); /* unknown: harmless */
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(efd >= 0);
  assert_int_equal(gw_loop_add_fd(loop, efd, EPOLLIN, watch_cb, &w), GW_OK);
  /* The same fd twice is refused by epoll and must not leave a second watch behind. */
  assert_int_equal(gw_loop_add_fd(loop, efd, EPOLLIN, watch_cb, &w), GW_ERR_IO);
  gw_loop_del_fd(loop, efd);
  assert_int_equal(gw_loop_mod_fd(loop, efd, EPOLLIN), GW_ERR_NOTFOUND);
  close(efd);
}

static void test_fd_eventfd_writable_and_readable(void **state) {
  gw_loop_t *loop = *state;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(efd >= 0);
  watch_t w = {.fd = efd};
  assert_int_equal(gw_loop_add_fd(loop, efd, EPOLLIN | EPOLLOUT, watch_cb, &w), GW_OK);
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(w.calls, 1);
  assert_int_equal(w.events & (EPOLLIN | EPOLLOUT), EPOLLOUT);
  uint64_t one = 1;
  assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(w.calls, 2);
  assert_int_equal(w.events & (EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
  gw_loop_del_fd(loop, efd);
  close(efd);
}

/* Two fds ready in the same wait; whichever callback runs first deletes both watches. The other
 * event of that wait must be dropped, not dispatched to a freed watch (ASan checks the latter). */
static void test_fd_del_inside_callback(void **state) {
  gw_loop_t *loop = *state;
  int a = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC), b = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(a >= 0 && b >= 0);
  watch_t wa = {.fd = a, .del_fds = {a, b}, .del_count = 2};
  watch_t wb = {.fd = b, .del_fds = {b, a}, .del_count = 2};
  assert_int_equal(gw_loop_add_fd(loop, a, EPOLLIN, watch_cb, &wa), GW_OK);
  assert_int_equal(gw_loop_add_fd(loop, b, EPOLLIN, watch_cb, &wb), GW_OK);
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(wa.calls + wb.calls, 1);
  /* Both still readable, but no longer watched. */
  assert_int_equal(gw_loop_run_once(loop, 20), GW_OK);
  assert_int_equal(wa.calls + wb.calls, 1);
  assert_int_equal(gw_loop_mod_fd(loop, a, EPOLLIN), GW_ERR_NOTFOUND);
  assert_int_equal(gw_loop_mod_fd(loop, b, EPOLLIN), GW_ERR_NOTFOUND);
  close(a);
  close(b);
}

typedef struct {
  int calls;
  int readd_fd;
  watch_t *readd_watch;
} readder_t;

/* Deletes its own fd and watches it again with another callback, in the same dispatch. */
static void readd_cb(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)events;
  readder_t *r = arg;
  r->calls++;
  gw_loop_del_fd(loop, fd);
  assert_int_equal(gw_loop_add_fd(loop, fd, EPOLLIN, watch_cb, r->readd_watch), GW_OK);
}

static void test_fd_del_and_readd_inside_callback(void **state) {
  gw_loop_t *loop = *state;
  int efd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(efd >= 0);
  watch_t second = {.fd = efd, .drain = true};
  readder_t r = {.readd_fd = efd, .readd_watch = &second};
  assert_int_equal(gw_loop_add_fd(loop, efd, EPOLLIN, readd_cb, &r), GW_OK);
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(r.calls, 1);
  assert_int_equal(second.calls, 0);
  assert_int_equal(gw_loop_run_once(loop, 1000), GW_OK);
  assert_int_equal(r.calls, 1);
  assert_int_equal(second.calls, 1);
  gw_loop_del_fd(loop, efd);
  close(efd);
}

/* ---- prepare and stop -------------------------------------------------------------------- */

typedef struct {
  int calls;
  int wait_ms;
} prepare_t;

static int prepare_cb(gw_loop_t *loop, void *arg) {
  (void)loop;
  prepare_t *p = arg;
  p->calls++;
  return p->wait_ms;
}

static void test_prepare_limits_wait(void **state) {
  gw_loop_t *loop = *state;
  prepare_t p = {.wait_ms = 20};
  assert_int_equal(gw_loop_add_prepare(loop, prepare_cb, &p), GW_OK);
  /* No fds, no timers, no limit from the caller: only the prepare callback ends the wait. */
  uint64_t t0 = gw_now_ms();
  assert_int_equal(gw_loop_run_once(loop, -1), GW_OK);
  uint64_t elapsed = gw_now_ms() - t0;
  assert_int_equal(p.calls, 1);
  assert_true(elapsed >= 15);
  assert_true(elapsed < 5000);
  /* The shorter of the caller's limit and the callback's wins. */
  t0 = gw_now_ms();
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  assert_true(gw_now_ms() - t0 < 15);
  assert_int_equal(p.calls, 2);
}

static void test_prepare_no_limit(void **state) {
  gw_loop_t *loop = *state;
  prepare_t none = {.wait_ms = -1}, soon = {.wait_ms = 10};
  assert_int_equal(gw_loop_add_prepare(loop, prepare_cb, &none), GW_OK);
  /* -1 from a callback keeps the caller's limit. */
  uint64_t t0 = gw_now_ms();
  assert_int_equal(gw_loop_run_once(loop, 30), GW_OK);
  uint64_t elapsed = gw_now_ms() - t0;
  assert_true(elapsed >= 25);
  assert_true(elapsed < 5000);
  /* Several callbacks: the smallest limit wins. */
  assert_int_equal(gw_loop_add_prepare(loop, prepare_cb, &soon), GW_OK);
  t0 = gw_now_ms();
  assert_int_equal(gw_loop_run_once(loop, -1), GW_OK);
  elapsed = gw_now_ms() - t0;
  assert_true(elapsed >= 5);
  assert_true(elapsed < 5000);
  assert_int_equal(none.calls, 2);
  assert_int_equal(soon.calls, 1);
}

static void test_prepare_table_full(void **state) {
  gw_loop_t *loop = *state;
  prepare_t p[5] = {{0}};
  int added = 0;
  while (added < 5 && gw_loop_add_prepare(loop, prepare_cb, &p[added]) == GW_OK)
    added++;
  assert_true(added >= 1 && added < 5);
  assert_int_equal(gw_loop_add_prepare(loop, prepare_cb, &p[4]), GW_ERR_FULL);
  assert_int_equal(gw_loop_run_once(loop, 0), GW_OK);
  for (int i = 0; i < added; i++)
    assert_int_equal(p[i].calls, 1);
  assert_int_equal(p[4].calls, 0);
}

/* A timer wakes the loop even when a prepare callback or the caller would wait longer. */
static void test_timer_limits_wait(void **state) {
  gw_loop_t *loop = *state;
  prepare_t p = {.wait_ms = 5000};
  assert_int_equal(gw_loop_add_prepare(loop, prepare_cb, &p), GW_OK);
  probe_t t;
  probe_init(&t, 0, NULL);
  gw_timer_start(loop, &t.timer, 20);
  uint64_t t0 = gw_now_ms();
  uint64_t deadline = t0 + DEADLINE_MS;
  while (!t.fired && gw_now_ms() < deadline)
    assert_int_equal(gw_loop_run_once(loop, -1), GW_OK);
  assert_int_equal(t.fired, 1);
  assert_true(gw_now_ms() - t0 < 2000);
}

static void stop_loop(gw_loop_t *loop, void *arg) {
  (*(int *)arg)++;
  gw_loop_stop(loop);
}

static void test_stop_ends_run(void **state) {
  gw_loop_t *loop = *state;
  int stops = 0;
  gw_timer_t t;
  gw_timer_init(&t, stop_loop, &stops);
  gw_timer_start(loop, &t, 10);
  uint64_t t0 = gw_now_ms();
  assert_int_equal(gw_loop_run(loop), GW_OK);
  assert_int_equal(stops, 1);
  assert_true(gw_now_ms() - t0 >= 10);
  /* The loop runs again after a stop. */
  gw_timer_start(loop, &t, 1);
  assert_int_equal(gw_loop_run(loop), GW_OK);
  assert_int_equal(stops, 2);
}

static void stop_from_fd(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)events;
  uint64_t v;
  assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
  *(uint64_t *)arg = v;
  gw_loop_stop(loop);
}

/* What a threaded library does: post through an eventfd, the loop's watcher stops the loop. */
static void test_stop_from_fd_callback(void **state) {
  gw_loop_t *loop = *state;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(efd >= 0);
  uint64_t got = 0;
  assert_int_equal(gw_loop_add_fd(loop, efd, EPOLLIN, stop_from_fd, &got), GW_OK);
  uint64_t three = 3;
  assert_int_equal(write(efd, &three, sizeof(three)), sizeof(three));
  assert_int_equal(gw_loop_run(loop), GW_OK);
  assert_int_equal(got, 3);
  gw_loop_del_fd(loop, efd);
  close(efd);
}

#define LOOP_TEST(fn) cmocka_unit_test_setup_teardown(fn, loop_setup, loop_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timer_init),
      LOOP_TEST(test_timers_fire_in_due_order),
      LOOP_TEST(test_timer_fires_once),
      LOOP_TEST(test_timer_rearm),
      LOOP_TEST(test_timer_stop),
      LOOP_TEST(test_many_timers),
      LOOP_TEST(test_many_timers_some_stopped),
      LOOP_TEST(test_timer_callback_stops_another),
      LOOP_TEST(test_timer_rearms_itself),
      LOOP_TEST(test_timer_rearm_now_does_not_starve),
      cmocka_unit_test(test_loop_free_disarms_timers),
      LOOP_TEST(test_fd_pipe_readable),
      LOOP_TEST(test_fd_errors),
      LOOP_TEST(test_fd_eventfd_writable_and_readable),
      LOOP_TEST(test_fd_del_inside_callback),
      LOOP_TEST(test_fd_del_and_readd_inside_callback),
      LOOP_TEST(test_prepare_limits_wait),
      LOOP_TEST(test_prepare_no_limit),
      LOOP_TEST(test_prepare_table_full),
      LOOP_TEST(test_timer_limits_wait),
      LOOP_TEST(test_stop_ends_run),
      LOOP_TEST(test_stop_from_fd_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
