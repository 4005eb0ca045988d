#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "gw_error.h"
#include "gw_log.h"

#define MAX_PREPARE 4
#define EVENTS_PER_WAIT 64

typedef struct fd_watch {
  int fd;
  gw_fd_cb_t cb;
  void *arg;
  struct fd_watch *next;
} fd_watch_t;

struct gw_loop {
  int epfd;
  bool stopping;
  fd_watch_t *watches;
  fd_watch_t *removed; /* freed after the current dispatch: its events may still be pending */
  gw_timer_t **heap; /* binary min-heap on due_ms */
  int heap_len, heap_cap;
  struct {
    gw_prepare_cb_t cb;
    void *arg;
  } prepare[MAX_PREPARE];
  int prepare_count;
};

uint64_t gw_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void free_watches(fd_watch_t **list) {
  while (*list) {
    fd_watch_t *next = (*list)->next;
    free(*list);
    *list = next;
  }
}

int gw_loop_new(gw_loop_t **out_loop) {
  gw_loop_t *loop = calloc(1, sizeof(*loop));
  if (!loop)
    return GW_ERR_NOMEM;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0) {
    free(loop);
    return GW_ERR_IO;
  }
  *out_loop = loop;
  return GW_OK;
}

void gw_loop_free(gw_loop_t **loop) {
  if (!*loop)
    return;
  free_watches(&(*loop)->watches);
  free_watches(&(*loop)->removed);
  for (int i = 0; i < (*loop)->heap_len; i++)
    (*loop)->heap[i]->heap_index = -1;
  free((*loop)->heap);
  close((*loop)->epfd);
  free(*loop);
  *loop = NULL;
}

static fd_watch_t *find_watch(gw_loop_t *loop, int fd) {
  for (fd_watch_t *w = loop->watches; w; w = w->next)
    if (w->fd == fd)
      return w;
  return NULL;
}

int gw_loop_add_fd(gw_loop_t *loop, int fd, uint32_t events, gw_fd_cb_t cb, void *arg) {
  fd_watch_t *w = calloc(1, sizeof(*w));
  if (!w)
    return GW_ERR_NOMEM;
  *w = (fd_watch_t){.fd = fd, .cb = cb, .arg = arg, .next = loop->watches};
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    free(w);
    return GW_ERR_IO;
  }
  loop->watches = w;
  return GW_OK;
}

int gw_loop_mod_fd(gw_loop_t *loop, int fd, uint32_t events) {
  fd_watch_t *w = find_watch(loop, fd);
  if (!w)
    return GW_ERR_NOTFOUND;
  struct epoll_event ev = {.events = events, .data.ptr = w};
  return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? GW_OK : GW_ERR_IO;
}

void gw_loop_del_fd(gw_loop_t *loop, int fd) {
  for (fd_watch_t **p = &loop->watches; *p; p = &(*p)->next) {
    if ((*p)->fd != fd)
      continue;
    fd_watch_t *w = *p;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    *p = w->next;
    /* Events of this same epoll_wait may still point at w: mark it dead, free it later. */
    w->cb = NULL;
    w->next = loop->removed;
    loop->removed = w;
    return;
  }
}

/* ---- timers: a binary min-heap, O(log n) arm and disarm ---- */

static void heap_swap(gw_loop_t *loop, int a, int b) {
  gw_timer_t *t = loop->heap[a];
  loop->heap[a] = loop->heap[b];
  loop->heap[b] = t;
  loop->heap[a]->heap_index = a;
  loop->heap[b]->heap_index = b;
}

static void heap_up(gw_loop_t *loop, int i) {
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (loop->heap[parent]->due_ms <= loop->heap[i]->due_ms)
      break;
    heap_swap(loop, i, parent);
    i = parent;
  }
}

static void heap_down(gw_loop_t *loop, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, least = i;
    if (l < loop->heap_len && loop->heap[l]->due_ms < loop->heap[least]->due_ms)
      least = l;
    if (r < loop->heap_len && loop->heap[r]->due_ms < loop->heap[least]->due_ms)
      least = r;
    if (least == i)
      return;
    heap_swap(loop, i, least);
    i = least;
  }
}

void gw_timer_init(gw_timer_t *timer, gw_timer_cb_t cb, void *arg) {
  *timer = (gw_timer_t){.cb = cb, .arg = arg, .heap_index = -1};
}

void gw_timer_stop(gw_loop_t *loop, gw_timer_t *timer) {
  int i = timer->heap_index;
  if (i < 0)
    return;
  int last = loop->heap_len - 1;
  if (i != last) {
    heap_swap(loop, i, last);
    loop->heap_len--;
    heap_down(loop, i);
    heap_up(loop, i);
  } else {
    loop->heap_len--;
  }
  timer->heap_index = -1;
}

int gw_timer_start(gw_loop_t *loop, gw_timer_t *timer, uint64_t after_ms) {
  gw_timer_stop(loop, timer);
  if (loop->heap_len == loop->heap_cap) {
    int cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    gw_timer_t **heap = realloc(loop->heap, (size_t)cap * sizeof(*heap));
    if (!heap)
      return GW_ERR_NOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  timer->due_ms = gw_now_ms() + after_ms;
  timer->heap_index = loop->heap_len;
  loop->heap[loop->heap_len++] = timer;
  heap_up(loop, timer->heap_index);
  return GW_OK;
}

int gw_loop_add_prepare(gw_loop_t *loop, gw_prepare_cb_t cb, void *arg) {
  if (loop->prepare_count == MAX_PREPARE)
    return GW_ERR_FULL;
  loop->prepare[loop->prepare_count].cb = cb;
  loop->prepare[loop->prepare_count].arg = arg;
  loop->prepare_count++;
  return GW_OK;
}

static void run_due_timers(gw_loop_t *loop) {
  uint64_t now = gw_now_ms();
  /* A callback may re-arm its own timer for "now": bound the work per iteration so fd events
   * are never starved. */
  int budget = loop->heap_len + 16;
  while (loop->heap_len > 0 && loop->heap[0]->due_ms <= now && budget-- > 0) {
    gw_timer_t *t = loop->heap[0];
    gw_timer_stop(loop, t);
    t->cb(loop, t->arg);
  }
}

static int next_wait_ms(gw_loop_t *loop, int max_wait_ms) {
  int wait = max_wait_ms;
  for (int i = 0; i < loop->prepare_count; i++) {
    int w = loop->prepare[i].cb(loop, loop->prepare[i].arg);
    if (w >= 0 && (wait < 0 || w < wait))
      wait = w;
  }
  if (loop->heap_len > 0) {
    uint64_t now = gw_now_ms(), due = loop->heap[0]->due_ms;
    int w = due <= now ? 0 : (int)(due - now > 60000 ? 60000 : due - now);
    if (wait < 0 || w < wait)
      wait = w;
  }
  return wait;
}

int gw_loop_run_once(gw_loop_t *loop, int max_wait_ms) {
  struct epoll_event events[EVENTS_PER_WAIT];
  int n = epoll_wait(loop->epfd, events, EVENTS_PER_WAIT, next_wait_ms(loop, max_wait_ms));
  if (n < 0 && errno != EINTR) {
    GW_ERR("loop", "epoll_wait: %s", strerror(errno));
    return GW_ERR_IO;
  }
  for (int i = 0; i < n; i++) {
    fd_watch_t *w = events[i].data.ptr;
    if (w->cb)
      w->cb(loop, w->fd, events[i].events, w->arg);
  }
  free_watches(&loop->removed);
  run_due_timers(loop);
  return GW_OK;
}

int gw_loop_run(gw_loop_t *loop) {
  loop->stopping = false;
  while (!loop->stopping) {
    int rc = gw_loop_run_once(loop, -1);
    if (rc != GW_OK)
      return rc;
  }
  return GW_OK;
}

void gw_loop_stop(gw_loop_t *loop) { loop->stopping = true; }
