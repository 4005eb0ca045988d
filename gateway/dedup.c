#include "dedup.h"

#include <stdlib.h>
#include <string.h>

#include "gw_error.h"

int gw_dedup_init(gw_dedup_t *dedup, size_t capacity) {
  *dedup = (gw_dedup_t){0};
  dedup->entries = calloc(capacity, sizeof(*dedup->entries));
  if (!dedup->entries)
    return GW_ERR_NOMEM;
  dedup->capacity = capacity;
  return GW_OK;
}

static void entry_release(gw_dedup_entry_t *e) {
  free(e->answer);
  *e = (gw_dedup_entry_t){0};
}

void gw_dedup_clear(gw_dedup_t *dedup) {
  for (size_t i = 0; dedup->entries && i < dedup->capacity; i++)
    entry_release(&dedup->entries[i]);
  free(dedup->entries);
  *dedup = (gw_dedup_t){0};
}

static gw_dedup_entry_t *find_live(gw_dedup_t *dedup, uint16_t mid, uint64_t now_ms) {
  for (size_t i = 0; i < dedup->capacity; i++) {
    gw_dedup_entry_t *e = &dedup->entries[i];
    if (!e->used)
      continue;
    if (e->expires_ms <= now_ms) {
      entry_release(e);
      continue;
    }
    if (e->mid == mid)
      return e;
  }
  return NULL;
}

/* A free slot if there is one, else the oldest entry, which is evicted. */
static gw_dedup_entry_t *take_slot(gw_dedup_t *dedup) {
  gw_dedup_entry_t *oldest = NULL;
  for (size_t i = 0; i < dedup->capacity; i++) {
    gw_dedup_entry_t *e = &dedup->entries[i];
    if (!e->used)
      return e;
    if (!oldest || (int32_t)(e->seq - oldest->seq) < 0)
      oldest = e;
  }
  entry_release(oldest);
  return oldest;
}

gw_dedup_verdict_t gw_dedup_check(gw_dedup_t *dedup, uint16_t mid, bool confirmable,
                                  uint64_t now_ms, const uint8_t **out_answer,
                                  size_t *out_answer_len) {
  gw_dedup_entry_t *e = find_live(dedup, mid, now_ms);
  if (e) {
    if (!e->answered)
      return GW_DEDUP_IN_PROGRESS;
    *out_answer = e->answer;
    *out_answer_len = e->answer_len;
    return GW_DEDUP_ANSWERED;
  }
  e = take_slot(dedup);
  e->used = true;
  e->mid = mid;
  e->seq = dedup->next_seq++;
  e->expires_ms = now_ms + (confirmable ? GW_EXCHANGE_LIFETIME_MS : GW_NON_LIFETIME_MS);
  return GW_DEDUP_NEW;
}

int gw_dedup_answer(gw_dedup_t *dedup, uint16_t mid, const uint8_t *answer, size_t len) {
  for (size_t i = 0; i < dedup->capacity; i++) {
    gw_dedup_entry_t *e = &dedup->entries[i];
    if (!e->used || e->mid != mid)
      continue;
    uint8_t *copy = NULL;
    if (answer && len) {
      copy = malloc(len);
      if (!copy)
        return GW_ERR_NOMEM;
      memcpy(copy, answer, len);
    }
    free(e->answer);
    e->answer = copy;
    e->answer_len = copy ? len : 0;
    e->answered = true;
    return GW_OK;
  }
  return GW_ERR_NOTFOUND;
}

void gw_dedup_forget(gw_dedup_t *dedup, uint16_t mid) {
  for (size_t i = 0; i < dedup->capacity; i++)
    if (dedup->entries[i].used && dedup->entries[i].mid == mid)
      entry_release(&dedup->entries[i]);
}

size_t gw_dedup_count(const gw_dedup_t *dedup, uint64_t now_ms) {
  size_t n = 0;
  for (size_t i = 0; i < dedup->capacity; i++)
    n += dedup->entries[i].used && dedup->entries[i].expires_ms > now_ms;
  return n;
}
