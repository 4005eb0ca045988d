#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dedup.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_random.h"

#define MOD "state"
#define JOURNAL_MAGIC 0x4c57474au /* "LWGJ" */
#define JOURNAL_VERSION 2u
#define EXCHANGE_LIFETIME_S (GW_EXCHANGE_LIFETIME_MS / 1000u)

/* One message ID pair, mids = first << 16 | second. at_s is the word that makes it valid: it is
 * zeroed before mids changes and set after, so a process killed in between leaves an invalid
 * entry, never a wrong one (see journal.h). */
typedef struct {
  uint32_t at_s;
  uint32_t mids;
} mid_pair_t;

/* Which device a slot is for: both 0 when free. The keys of all slots lie together after the
 * header, so opening the journal and freeing what no device claimed read 8 octets a slot, not
 * every slot's pages (a router's RAM holds only the slots in use). */
typedef struct {
  uint32_t lo, hi;
} slot_key_t;

typedef struct {
  uint32_t next_mids; /* next upstream ID << 16 | next downstream ID */
  uint32_t up_next;   /* ring positions */
  uint32_t down_next;
  uint32_t reserved;
  mid_pair_t up[GW_JOURNAL_UP_ENTRIES];
  mid_pair_t down[GW_JOURNAL_DOWN_ENTRIES];
} slot_t;

typedef struct {
  uint32_t magic;
  uint32_t version;
  uint32_t byte_order; /* 0x01020304 as this machine stores it */
  uint32_t slot_size;
  uint32_t slot_count;
  uint32_t reserved[11];
} header_t;

struct gw_journal {
  header_t *header;
  slot_key_t *keys; /* slot_count of them, then the slots */
  slot_t *slots;
  size_t map_size;
  uint32_t slot_count;
  uint32_t *free_slots; /* stack of free slot indices */
  uint32_t free_count;
  uint32_t *index; /* open addressing: key -> slot + 1, 0 empty; capacity a power of two */
  uint32_t index_mask;
  uint8_t *claimed; /* claimed by a device since open */
};

static uint64_t key_of(const gw_journal_t *j, uint32_t slot) {
  return (uint64_t)j->keys[slot].hi << 32 | j->keys[slot].lo;
}

uint64_t gw_journal_key(const char *binding_name, const char *address) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = binding_name; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h = (h ^ '/') * 1099511628211ull;
  for (const char *p = address; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return h ? h : 1; /* 0 marks a free slot */
}

/* ---- key -> slot index (rebuilt at open, never on disk) ---- */

static uint32_t *index_probe(gw_journal_t *j, uint64_t key) {
  uint32_t i = (uint32_t)(key ^ key >> 32) & j->index_mask;
  while (j->index[i] && key_of(j, j->index[i] - 1) != key)
    i = (i + 1) & j->index_mask;
  return &j->index[i];
}

/* Backward-shift deletion keeps the probe chains intact. */
static void index_remove(gw_journal_t *j, uint64_t key) {
  uint32_t *hole = index_probe(j, key);
  if (!*hole)
    return;
  uint32_t i = (uint32_t)(hole - j->index);
  *hole = 0;
  for (uint32_t k = (i + 1) & j->index_mask; j->index[k]; k = (k + 1) & j->index_mask) {
    uint64_t kk = key_of(j, j->index[k] - 1);
    uint32_t home = (uint32_t)(kk ^ kk >> 32) & j->index_mask;
    /* the entry at k may move into the hole at i when its home is not in (i, k] */
    bool stays = i <= k ? (home > i && home <= k) : (home > i || home <= k);
    if (!stays) {
      j->index[i] = j->index[k];
      j->index[k] = 0;
      i = k;
    }
  }
}

/* ---- the mapping ---- */

static bool header_fits(const header_t *h, uint32_t slot_count) {
  return h->magic == JOURNAL_MAGIC && h->version == JOURNAL_VERSION &&
         h->byte_order == 0x01020304u && h->slot_size == sizeof(slot_t) &&
         h->slot_count == slot_count;
}

/* Maps path; *out_empty when the file is new or was of another layout (then emptied without
 * touching its pages: a router's RAM holds only the slots in use). */
static int map_file(const char *path, size_t size, uint32_t slot_count, gw_journal_t *j,
                    bool *out_empty) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    GW_ERR(MOD, "cannot open the exchange journal %s: %s", path, strerror(errno));
    return GW_ERR_IO;
  }
  struct stat st;
  header_t header;
  bool fresh = fstat(fd, &st) != 0 || (size_t)st.st_size != size;
  bool other_layout = !fresh && (pread(fd, &header, sizeof(header), 0) != sizeof(header) ||
                                 !header_fits(&header, slot_count));
  if (other_layout)
    GW_WARN(MOD, "exchange journal %s has another layout or size (gateway.max_devices "
                 "changed?): started afresh, message IDs of the last minutes are forgotten",
            path);
  *out_empty = fresh || other_layout;
  if (*out_empty && ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)size) != 0) {
    GW_ERR(MOD, "cannot size the exchange journal %s: %s", path, strerror(errno));
    close(fd);
    return GW_ERR_IO;
  }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    GW_ERR(MOD, "cannot map the exchange journal %s: %s", path, strerror(errno));
    return GW_ERR_IO;
  }
  j->header = p;
  return GW_OK;
}

static void init_header(gw_journal_t *j) {
  header_t *h = j->header;
  if (header_fits(h, j->slot_count))
    return;
  memset(h, 0, sizeof(*h));
  h->version = JOURNAL_VERSION;
  h->byte_order = 0x01020304u;
  h->slot_size = sizeof(slot_t);
  h->slot_count = j->slot_count;
  h->magic = JOURNAL_MAGIC; /* last: a header cut short by a kill is not taken for whole */
}

/* The key -> slot index and the free slots; an empty journal has every slot free and is not
 * read (its pages stay untouched). */
static int build_index(gw_journal_t *j, bool empty) {
  uint32_t cap = 64;
  while (cap < 2 * j->slot_count)
    cap <<= 1;
  j->index = calloc(cap, sizeof(*j->index));
  j->free_slots = malloc(j->slot_count * sizeof(*j->free_slots));
  j->claimed = calloc(j->slot_count, 1);
  if (!j->index || !j->free_slots || !j->claimed)
    return GW_ERR_NOMEM;
  j->index_mask = cap - 1;
  for (uint32_t i = j->slot_count; i-- > 0;) {
    uint32_t *at = !empty && key_of(j, i) ? index_probe(j, key_of(j, i)) : NULL;
    if (at && !*at)
      *at = i + 1;
    else /* free, or a second slot with the same key (cannot be told apart: forgotten) */
      j->free_slots[j->free_count++] = i;
  }
  return GW_OK;
}

int gw_journal_open(const char *path, uint32_t slot_count, gw_journal_t **out_journal) {
  gw_journal_t *j = calloc(1, sizeof(*j));
  if (!j)
    return GW_ERR_NOMEM;
  j->slot_count = slot_count;
  j->map_size = sizeof(header_t) + (size_t)slot_count * (sizeof(slot_key_t) + sizeof(slot_t));
  int rc = GW_OK;
  bool empty = true;
  if (path) {
    rc = map_file(path, j->map_size, slot_count, j, &empty);
  } else {
    void *p = mmap(NULL, j->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      rc = GW_ERR_NOMEM;
    else
      j->header = p;
  }
  if (rc == GW_OK) {
    j->keys = (slot_key_t *)(void *)(j->header + 1);
    j->slots = (slot_t *)(void *)(j->keys + slot_count);
    init_header(j);
    rc = build_index(j, empty);
  }
  if (rc != GW_OK) {
    gw_journal_close(&j);
    return rc;
  }
  *out_journal = j;
  return GW_OK;
}

void gw_journal_close(gw_journal_t **journal) {
  gw_journal_t *j = *journal;
  if (!j)
    return;
  if (j->header)
    munmap(j->header, j->map_size);
  free(j->index);
  free(j->free_slots);
  free(j->claimed);
  free(j);
  *journal = NULL;
}

/* ---- slots ---- */

uint32_t gw_journal_claim(gw_journal_t *j, uint64_t key) {
  uint32_t *at = index_probe(j, key);
  if (*at) {
    j->claimed[*at - 1] = 1;
    return *at - 1;
  }
  if (j->free_count == 0)
    return GW_JOURNAL_NO_SLOT;
  uint32_t i = j->free_slots[--j->free_count];
  slot_t *s = &j->slots[i];
  memset(s, 0, sizeof(*s));
  s->next_mids = gw_random_u32();
  j->keys[i].hi = (uint32_t)(key >> 32);
  j->keys[i].lo = (uint32_t)key;
  *at = i + 1;
  j->claimed[i] = 1;
  return i;
}

void gw_journal_release(gw_journal_t *j, uint32_t slot) {
  if (slot >= j->slot_count || !key_of(j, slot))
    return;
  index_remove(j, key_of(j, slot));
  j->keys[slot].lo = j->keys[slot].hi = 0;
  j->claimed[slot] = 0;
  j->free_slots[j->free_count++] = slot;
}

void gw_journal_release_unclaimed(gw_journal_t *j) {
  for (uint32_t i = 0; i < j->slot_count; i++)
    if (!j->claimed[i] && key_of(j, i))
      gw_journal_release(j, i);
}

/* ---- message IDs ---- */

static uint16_t take_next(slot_t *s, bool upstream) {
  uint32_t n = s->next_mids;
  uint16_t mid = upstream ? (uint16_t)(n >> 16) : (uint16_t)n;
  s->next_mids = upstream ? (uint32_t)(uint16_t)(mid + 1) << 16 | (n & 0xffffu)
                          : (n & 0xffff0000u) | (uint16_t)(mid + 1);
  return mid;
}

/* The entry recorded for `from` within EXCHANGE_LIFETIME, or NULL. */
static const mid_pair_t *ring_find(const mid_pair_t *ring, uint32_t ring_size, uint16_t from,
                                   uint32_t now_s) {
  for (uint32_t i = 0; i < ring_size; i++) {
    const mid_pair_t *e = &ring[i];
    if (e->at_s && (uint16_t)(e->mids >> 16) == from && now_s - e->at_s < EXCHANGE_LIFETIME_S)
      return e;
  }
  return NULL;
}

/* The ID recorded for `from` within EXCHANGE_LIFETIME, else a new one, recorded. */
static uint16_t mapped_mid(slot_t *s, mid_pair_t *ring, uint32_t ring_size, uint32_t *ring_next,
                           bool upstream, uint16_t from, uint32_t now_s) {
  const mid_pair_t *known = ring_find(ring, ring_size, from, now_s);
  if (known)
    return (uint16_t)known->mids;
  uint16_t to = take_next(s, upstream);
  mid_pair_t *e = &ring[*ring_next % ring_size];
  *ring_next = (*ring_next + 1) % ring_size;
  volatile mid_pair_t *v = e; /* the three stores in this order (see mid_pair_t) */
  v->at_s = 0;
  v->mids = (uint32_t)from << 16 | to;
  v->at_s = now_s ? now_s : 1;
  return to;
}

uint16_t gw_journal_upstream_mid(gw_journal_t *j, uint32_t slot, uint16_t device_mid,
                                 uint32_t now_s) {
  if (slot >= j->slot_count)
    return gw_random_u16();
  slot_t *s = &j->slots[slot];
  return mapped_mid(s, s->up, GW_JOURNAL_UP_ENTRIES, &s->up_next, true, device_mid, now_s);
}

uint16_t gw_journal_downstream_mid(gw_journal_t *j, uint32_t slot, uint16_t server_mid,
                                   uint32_t now_s) {
  if (slot >= j->slot_count)
    return gw_random_u16();
  slot_t *s = &j->slots[slot];
  return mapped_mid(s, s->down, GW_JOURNAL_DOWN_ENTRIES, &s->down_next, false, server_mid, now_s);
}

bool gw_journal_downstream_known(gw_journal_t *j, uint32_t slot, uint16_t server_mid,
                                 uint32_t now_s) {
  return slot < j->slot_count &&
         ring_find(j->slots[slot].down, GW_JOURNAL_DOWN_ENTRIES, server_mid, now_s) != NULL;
}

uint16_t gw_journal_next_upstream_mid(gw_journal_t *j, uint32_t slot) {
  return slot < j->slot_count ? take_next(&j->slots[slot], true) : gw_random_u16();
}

uint16_t gw_journal_next_downstream_mid(gw_journal_t *j, uint32_t slot) {
  return slot < j->slot_count ? take_next(&j->slots[slot], false) : gw_random_u16();
}
