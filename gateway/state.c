#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "gw_error.h"
#include "gw_log.h"

#define MOD "state"
#define SCHEMA_VERSION 1

/* The statements the gateway runs, prepared once. */
enum {
  ST_DEVICE_INSERT,
  ST_DEVICE_UPDATE,
  ST_DEVICE_DELETE,
  ST_OBSERVATION_SAVE,
  ST_OBSERVATION_DELETE,
  ST_DOWNLINK_SAVE,
  ST_DOWNLINK_DELETE,
  ST_DEVICES,
  ST_OBSERVATIONS_OF,
  ST_DOWNLINKS_OF,
  ST_UPLINK_SAVE,
  ST_UPLINK_DELETE,
  ST_UPLINKS_OF,
  ST_BINDING_PUT,
  ST_BINDING_DEL,
  ST_BINDING_OF,
  ST_COUNT
};

static const char *const statement_sql[ST_COUNT] = {
    [ST_DEVICE_INSERT] = "INSERT OR REPLACE INTO device(binding, address, endpoint, local_port, "
                         "upstream_key, registered, location, ep, lwm2m, b, lt, queue, sms, "
                         "server_instance, queue_mode, registered_at, registered_port) "
                         "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?18)",
    [ST_DEVICE_UPDATE] = "UPDATE device SET binding=?1, address=?2, endpoint=?3, local_port=?4, "
                         "upstream_key=?5, registered=?6, location=?7, ep=?8, lwm2m=?9, b=?10, "
                         "lt=?11, queue=?12, sms=?13, server_instance=?14, queue_mode=?15, "
                         "registered_at=?16, registered_port=?18 WHERE id=?17",
    [ST_DEVICE_DELETE] = "DELETE FROM device WHERE id=?1",
    [ST_OBSERVATION_SAVE] = "INSERT OR REPLACE INTO observation(device, token, path) "
                            "VALUES(?1,?2,?3)",
    [ST_OBSERVATION_DELETE] = "DELETE FROM observation WHERE device=?1 AND token=?2",
    [ST_DOWNLINK_SAVE] = "INSERT OR REPLACE INTO downlink(device, server_mid, device_mid, token, "
                         "server_type, state, flags, queue_seq, path, request, deadline_at) "
                         "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [ST_DOWNLINK_DELETE] = "DELETE FROM downlink WHERE device=?1 AND server_mid=?2",
    [ST_DEVICES] = "SELECT id, binding, address, endpoint, local_port, upstream_key, registered, "
                   "location, ep, lwm2m, b, lt, queue, sms, server_instance, queue_mode, "
                   "registered_at, registered_port FROM device ORDER BY id",
    [ST_OBSERVATIONS_OF] = "SELECT token, path FROM observation WHERE device=?1",
    [ST_DOWNLINKS_OF] = "SELECT server_mid, device_mid, token, server_type, state, flags, "
                        "queue_seq, path, request, deadline_at FROM downlink WHERE device=?1 "
                        "ORDER BY queue_seq",
    [ST_UPLINK_SAVE] = "INSERT INTO uplink(device, received_at, data) VALUES(?1,?2,?3)",
    [ST_UPLINK_DELETE] = "DELETE FROM uplink WHERE id=?1",
    [ST_UPLINKS_OF] = "SELECT id, data, received_at FROM uplink WHERE device=?1 ORDER BY id",
    [ST_BINDING_PUT] = "INSERT OR REPLACE INTO binding_state(binding, key, value) "
                       "VALUES(?1,?2,?3)",
    [ST_BINDING_DEL] = "DELETE FROM binding_state WHERE binding=?1 AND key=?2",
    [ST_BINDING_OF] = "SELECT key, value FROM binding_state WHERE binding=?1 ORDER BY key",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS device("
    " id INTEGER PRIMARY KEY, binding TEXT NOT NULL, address TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, local_port INTEGER NOT NULL, upstream_key INTEGER NOT NULL,"
    " registered INTEGER NOT NULL, location TEXT NOT NULL,"
    " ep TEXT NOT NULL, lwm2m TEXT NOT NULL, b TEXT NOT NULL, lt INTEGER, queue INTEGER NOT NULL,"
    " sms TEXT NOT NULL, server_instance INTEGER NOT NULL, queue_mode INTEGER NOT NULL,"
    " registered_at INTEGER NOT NULL, registered_port INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(binding, address));"
    "CREATE TABLE IF NOT EXISTS observation("
    " device INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE, token BLOB NOT NULL,"
    " path TEXT NOT NULL, PRIMARY KEY(device, token)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS downlink("
    " device INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
    " server_mid INTEGER NOT NULL, device_mid INTEGER NOT NULL, token BLOB NOT NULL,"
    " server_type INTEGER NOT NULL, state INTEGER NOT NULL, flags INTEGER NOT NULL,"
    " queue_seq INTEGER NOT NULL, path TEXT NOT NULL, request BLOB NOT NULL,"
    " deadline_at INTEGER NOT NULL, PRIMARY KEY(device, server_mid)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS uplink("
    " id INTEGER PRIMARY KEY, device INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
    " received_at INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS uplink_of_device ON uplink(device);"
    "CREATE TABLE IF NOT EXISTS binding_state("
    " binding TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(binding, key)) WITHOUT ROWID;";

struct gw_state {
  sqlite3 *db;
  sqlite3_stmt *stmt[ST_COUNT];
  gw_journal_t *journal;
  int lock_fd;
  bool in_transaction;
  uint64_t write_errors;
  uint64_t commits;
};

int64_t gw_wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}

/* ---- opening ---- */

static int lock_directory(const char *state_dir, int *out_fd) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/lock", state_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return errno;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    return err == EWOULDBLOCK ? EBUSY : err;
  }
  /* The holder's pid, for the operator who finds the directory busy. */
  char pid[24];
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) != n)
    GW_DEBUG(MOD, "could not write the pid into %s", path);
  *out_fd = fd;
  return 0;
}

static bool exec_sql(gw_state_t *st, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &err) == SQLITE_OK)
    return true;
  GW_ERR(MOD, "state database: %s", err ? err : sqlite3_errmsg(st->db));
  sqlite3_free(err);
  return false;
}

static bool open_database(gw_state_t *st, const char *state_dir) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/state.db", state_dir);
  if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    GW_ERR(MOD, "cannot open %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
    return false;
  }
  sqlite3_busy_timeout(st->db, 1000);
  if (!exec_sql(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    "PRAGMA foreign_keys=ON;"))
    return false;
  sqlite3_stmt *v;
  int version = 0;
  if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &v, NULL) == SQLITE_OK &&
      sqlite3_step(v) == SQLITE_ROW)
    version = sqlite3_column_int(v, 0);
  sqlite3_finalize(v);
  if (version > SCHEMA_VERSION) {
    GW_ERR(MOD, "%s was written by a newer lwm2m-gw (schema %d, this one knows %d)", path,
           version, SCHEMA_VERSION);
    return false;
  }
  if (!exec_sql(st, schema_sql) || !exec_sql(st, "PRAGMA user_version=1"))
    return false;
  for (int i = 0; i < ST_COUNT; i++) {
    if (sqlite3_prepare_v3(st->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &st->stmt[i], NULL) != SQLITE_OK) {
      GW_ERR(MOD, "state database: %s", sqlite3_errmsg(st->db));
      return false;
    }
  }
  return true;
}

static void close_database(gw_state_t *st) {
  for (int i = 0; i < ST_COUNT; i++) {
    sqlite3_finalize(st->stmt[i]);
    st->stmt[i] = NULL;
  }
  if (st->db)
    sqlite3_close(st->db);
  st->db = NULL;
}

/* The directory itself: created (0700) when its parent exists. */
static bool usable_directory(const char *state_dir) {
  struct stat st;
  if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
    GW_ERR(MOD, "cannot create gateway.state_dir %s: %s", state_dir, strerror(errno));
    return false;
  }
  if (stat(state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    GW_ERR(MOD, "gateway.state_dir %s is not a directory", state_dir);
    return false;
  }
  if (access(state_dir, W_OK | X_OK) != 0) {
    GW_ERR(MOD, "cannot write in gateway.state_dir %s: %s", state_dir, strerror(errno));
    return false;
  }
  return true;
}

int gw_state_open(const char *state_dir, uint32_t max_devices, gw_state_t **out_state) {
  gw_state_t *st = calloc(1, sizeof(*st));
  if (!st)
    return GW_ERR_NOMEM;
  st->lock_fd = -1;
  bool persistent = getenv("GW_HACK_NOSTATE") == NULL && state_dir && *state_dir && usable_directory(state_dir);
  if (persistent) {
    int err = lock_directory(state_dir, &st->lock_fd);
    if (err == EBUSY) {
      GW_ERR(MOD, "gateway.state_dir %s is in use by another lwm2m-gw (see %s/lock)", state_dir,
             state_dir);
      free(st);
      return GW_ERR_IO;
    }
    persistent = err == 0 && open_database(st, state_dir);
    if (!persistent)
      close_database(st);
  }
  char journal_path[4096];
  snprintf(journal_path, sizeof(journal_path), "%s/exchanges.journal", state_dir ? state_dir : "");
  int rc = gw_journal_open(persistent ? journal_path : NULL, max_devices, &st->journal);
  if (rc != GW_OK && persistent)
    rc = gw_journal_open(NULL, max_devices, &st->journal);
  if (rc != GW_OK) {
    gw_state_close(&st);
    return rc;
  }
  if (!persistent && state_dir && *state_dir)
    GW_ERR(MOD, "state kept in memory only: after a restart every device must register again "
                "and requests in flight are lost; fix gateway.state_dir (%s)", state_dir);
  else if (persistent)
    GW_INFO(MOD, "state in %s", state_dir);
  *out_state = st;
  return GW_OK;
}

void gw_state_close(gw_state_t **state) {
  gw_state_t *st = *state;
  if (!st)
    return;
  gw_state_commit(st);
  close_database(st);
  gw_journal_close(&st->journal);
  if (st->lock_fd >= 0)
    close(st->lock_fd);
  free(st);
  *state = NULL;
}

bool gw_state_persistent(const gw_state_t *st) { return st->db != NULL; }
gw_journal_t *gw_state_journal(gw_state_t *st) { return st->journal; }
uint64_t gw_state_write_errors(const gw_state_t *st) { return st->write_errors; }
uint64_t gw_state_commits(const gw_state_t *st) { return st->commits; }

/* ---- writing ---- */

static void write_failed(gw_state_t *st, const char *what) {
  st->write_errors++;
  GW_ERR_LIMITED(MOD, "state database: %s: %s (%llu write errors so far)", what,
                 sqlite3_errmsg(st->db), (unsigned long long)st->write_errors);
}

/* The statement, reset and inside the open transaction; NULL without a database. */
static sqlite3_stmt *begin(gw_state_t *st, int which) {
  if (!st->db)
    return NULL;
  if (!st->in_transaction) {
    if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
      write_failed(st, "BEGIN");
      return NULL;
    }
    st->in_transaction = true;
  }
  sqlite3_stmt *s = st->stmt[which];
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return s;
}

static void run(gw_state_t *st, sqlite3_stmt *s, const char *what) {
  if (s && sqlite3_step(s) != SQLITE_DONE)
    write_failed(st, what);
  if (s)
    sqlite3_reset(s);
}

int gw_state_commit(gw_state_t *st) {
  if (!st->db || !st->in_transaction)
    return GW_OK;
  st->in_transaction = false;
  if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    write_failed(st, "COMMIT");
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return GW_ERR_IO;
  }
  st->commits++;
  return GW_OK;
}

void gw_state_flush(gw_state_t *st) { gw_state_commit(st); }

static void bind_text(sqlite3_stmt *s, int i, const char *text) {
  sqlite3_bind_text(s, i, text ? text : "", -1, SQLITE_TRANSIENT);
}

void gw_state_save_device(gw_state_t *st, gw_device_t *dev) {
  sqlite3_stmt *s = begin(st, dev->state_id ? ST_DEVICE_UPDATE : ST_DEVICE_INSERT);
  if (!s)
    return;
  const gw_reg_params_t *p = &dev->device_params;
  bind_text(s, 1, dev->binding->ops->name);
  bind_text(s, 2, dev->addr.text);
  bind_text(s, 3, dev->endpoint);
  sqlite3_bind_int(s, 4, dev->local_port);
  sqlite3_bind_int64(s, 5, dev->upstream_key);
  sqlite3_bind_int(s, 6, dev->registered);
  bind_text(s, 7, dev->location);
  bind_text(s, 8, p->endpoint);
  bind_text(s, 9, p->lwm2m_version);
  bind_text(s, 10, p->binding);
  if (p->has_lifetime)
    sqlite3_bind_int64(s, 11, p->lifetime);
  sqlite3_bind_int(s, 12, p->queue_mode);
  bind_text(s, 13, p->sms_number);
  sqlite3_bind_int64(s, 14, dev->server_instance);
  sqlite3_bind_int(s, 15, dev->queue_mode);
  sqlite3_bind_int64(s, 16, dev->registered_at);
  if (dev->state_id)
    sqlite3_bind_int64(s, 17, dev->state_id);
  sqlite3_bind_int(s, 18, dev->registered_port);
  run(st, s, "saving a device");
  if (!dev->state_id)
    dev->state_id = sqlite3_last_insert_rowid(st->db);
}

void gw_state_forget_device(gw_state_t *st, gw_device_t *dev) {
  if (!dev->state_id)
    return;
  sqlite3_stmt *s = begin(st, ST_DEVICE_DELETE);
  if (s) {
    sqlite3_bind_int64(s, 1, dev->state_id);
    run(st, s, "forgetting a device");
  }
  dev->state_id = 0;
}

void gw_state_save_observation(gw_state_t *st, const gw_device_t *dev,
                               const gw_observation_t *obs) {
  sqlite3_stmt *s = dev->state_id ? begin(st, ST_OBSERVATION_SAVE) : NULL;
  if (!s)
    return;
  sqlite3_bind_int64(s, 1, dev->state_id);
  sqlite3_bind_blob(s, 2, obs->token, obs->token_len, SQLITE_TRANSIENT);
  bind_text(s, 3, obs->path);
  run(st, s, "saving an observation");
}

void gw_state_forget_observation(gw_state_t *st, const gw_device_t *dev, const uint8_t *token,
                                 size_t token_len) {
  sqlite3_stmt *s = dev->state_id ? begin(st, ST_OBSERVATION_DELETE) : NULL;
  if (!s)
    return;
  sqlite3_bind_int64(s, 1, dev->state_id);
  sqlite3_bind_blob(s, 2, token, (int)token_len, SQLITE_TRANSIENT);
  run(st, s, "forgetting an observation");
}

/* The flags column: the exchange's booleans, and on links that report delivery its Appendix C
 * state (late_delivery.h): whether its copy was reported sent or acknowledged, and how many
 * more copies it may have (bits 8..15). */
enum { FLAG_ACKED = 1, FLAG_OBSERVE_REGISTER = 2, FLAG_OBSERVE_CANCEL = 4, FLAG_LATE_SENT = 8,
       FLAG_LATE_ACKED = 16, FLAG_LATE_RESENDS_SHIFT = 8 };

void gw_state_save_downlink(gw_state_t *st, const gw_device_t *dev, const gw_downlink_xchg_t *x,
                            int64_t deadline_at) {
  sqlite3_stmt *s = dev->state_id ? begin(st, ST_DOWNLINK_SAVE) : NULL;
  if (!s)
    return;
  int flags = (x->acked_upstream ? FLAG_ACKED : 0) |
              (x->observe_register ? FLAG_OBSERVE_REGISTER : 0) |
              (x->observe_cancel ? FLAG_OBSERVE_CANCEL : 0) |
              (x->late.sent ? FLAG_LATE_SENT : 0) | (x->late.acked ? FLAG_LATE_ACKED : 0) |
              (int)x->late.resends_left << FLAG_LATE_RESENDS_SHIFT;
  sqlite3_bind_int64(s, 1, dev->state_id);
  sqlite3_bind_int(s, 2, x->server_mid);
  sqlite3_bind_int(s, 3, x->device_mid);
  sqlite3_bind_blob(s, 4, x->token, x->token_len, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 5, x->server_type);
  sqlite3_bind_int(s, 6, x->state);
  sqlite3_bind_int(s, 7, flags);
  sqlite3_bind_int64(s, 8, x->queue_seq);
  bind_text(s, 9, x->path);
  sqlite3_bind_blob(s, 10, x->request, (int)x->request_len, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 11, deadline_at);
  run(st, s, "saving a waiting request");
}

void gw_state_forget_downlink(gw_state_t *st, const gw_device_t *dev, uint16_t server_mid) {
  sqlite3_stmt *s = dev->state_id ? begin(st, ST_DOWNLINK_DELETE) : NULL;
  if (!s)
    return;
  sqlite3_bind_int64(s, 1, dev->state_id);
  sqlite3_bind_int(s, 2, server_mid);
  run(st, s, "forgetting a waiting request");
}

int64_t gw_state_save_uplink(gw_state_t *st, const gw_device_t *dev, const uint8_t *data,
                             size_t len, int64_t received_at) {
  sqlite3_stmt *s = dev->state_id ? begin(st, ST_UPLINK_SAVE) : NULL;
  if (!s)
    return 0;
  sqlite3_bind_int64(s, 1, dev->state_id);
  sqlite3_bind_int64(s, 2, received_at);
  sqlite3_bind_blob(s, 3, data, (int)len, SQLITE_TRANSIENT);
  if (sqlite3_step(s) != SQLITE_DONE) {
    write_failed(st, "saving a device request");
    sqlite3_reset(s);
    return 0;
  }
  sqlite3_reset(s);
  return sqlite3_last_insert_rowid(st->db);
}

void gw_state_forget_uplink(gw_state_t *st, int64_t id) {
  sqlite3_stmt *s = id ? begin(st, ST_UPLINK_DELETE) : NULL;
  if (!s)
    return;
  sqlite3_bind_int64(s, 1, id);
  run(st, s, "forgetting a device request");
}

static const char *column_text(sqlite3_stmt *s, int i);

void gw_state_put_binding(gw_state_t *st, const char *binding, const char *key,
                          const void *value, size_t len) {
  sqlite3_stmt *s = begin(st, ST_BINDING_PUT);
  if (!s)
    return;
  bind_text(s, 1, binding);
  bind_text(s, 2, key);
  sqlite3_bind_blob(s, 3, len ? value : "", (int)len, SQLITE_TRANSIENT);
  run(st, s, "saving a binding's state");
}

void gw_state_del_binding(gw_state_t *st, const char *binding, const char *key) {
  sqlite3_stmt *s = begin(st, ST_BINDING_DEL);
  if (!s)
    return;
  bind_text(s, 1, binding);
  bind_text(s, 2, key);
  run(st, s, "forgetting a binding's state");
}

void gw_state_restore_binding(gw_state_t *st, const char *binding,
                              void (*fn)(void *arg, const char *key, const void *value,
                                         size_t len),
                              void *arg) {
  if (!st->db)
    return;
  sqlite3_stmt *s = st->stmt[ST_BINDING_OF];
  sqlite3_reset(s);
  bind_text(s, 1, binding);
  while (sqlite3_step(s) == SQLITE_ROW)
    fn(arg, column_text(s, 0), sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
  sqlite3_reset(s);
}

/* ---- reading back ---- */

static const char *column_text(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? (const char *)t : "";
}

static void copy_text(char *out, size_t size, const char *text) {
  snprintf(out, size, "%s", text);
}

static void read_device(sqlite3_stmt *s, gw_state_device_t *d) {
  memset(d, 0, sizeof(*d));
  d->id = sqlite3_column_int64(s, 0);
  d->binding = column_text(s, 1);
  d->address = column_text(s, 2);
  d->endpoint = column_text(s, 3);
  d->local_port = (uint16_t)sqlite3_column_int(s, 4);
  d->upstream_key = (uint32_t)sqlite3_column_int64(s, 5);
  d->registered = sqlite3_column_int(s, 6) != 0;
  d->location = column_text(s, 7);
  copy_text(d->params.endpoint, sizeof(d->params.endpoint), column_text(s, 8));
  copy_text(d->params.lwm2m_version, sizeof(d->params.lwm2m_version), column_text(s, 9));
  copy_text(d->params.binding, sizeof(d->params.binding), column_text(s, 10));
  d->params.has_lifetime = sqlite3_column_type(s, 11) != SQLITE_NULL;
  d->params.lifetime = (uint32_t)sqlite3_column_int64(s, 11);
  d->params.queue_mode = sqlite3_column_int(s, 12) != 0;
  copy_text(d->params.sms_number, sizeof(d->params.sms_number), column_text(s, 13));
  d->server_instance = (uint32_t)sqlite3_column_int64(s, 14);
  d->queue_mode = sqlite3_column_int(s, 15) != 0;
  d->registered_at = sqlite3_column_int64(s, 16);
  d->registered_port = (uint16_t)sqlite3_column_int(s, 17);
}

static void restore_observations(gw_state_t *st, const gw_state_restore_t *cb, int64_t id,
                                 gw_device_t *dev) {
  sqlite3_stmt *s = st->stmt[ST_OBSERVATIONS_OF];
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW) {
    int len = sqlite3_column_bytes(s, 0);
    const void *token = sqlite3_column_blob(s, 0);
    if (len <= GW_COAP_MAX_TOKEN)
      cb->observation(cb->arg, dev, token, (size_t)len, column_text(s, 1));
  }
  sqlite3_reset(s);
}

static void restore_downlinks(gw_state_t *st, const gw_state_restore_t *cb, int64_t id,
                              gw_device_t *dev) {
  sqlite3_stmt *s = st->stmt[ST_DOWNLINKS_OF];
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW) {
    gw_state_downlink_t d = {0};
    int token_len = sqlite3_column_bytes(s, 2);
    if (token_len > GW_COAP_MAX_TOKEN)
      continue;
    int flags = sqlite3_column_int(s, 5);
    d.server_mid = (uint16_t)sqlite3_column_int(s, 0);
    d.device_mid = (uint16_t)sqlite3_column_int(s, 1);
    if (token_len)
      memcpy(d.token, sqlite3_column_blob(s, 2), (size_t)token_len);
    d.token_len = (uint8_t)token_len;
    d.server_type = (gw_coap_type_t)sqlite3_column_int(s, 3);
    d.state = (gw_down_state_t)sqlite3_column_int(s, 4);
    d.acked_upstream = flags & FLAG_ACKED;
    d.observe_register = flags & FLAG_OBSERVE_REGISTER;
    d.observe_cancel = flags & FLAG_OBSERVE_CANCEL;
    d.late = (gw_late_t){.sent = flags & FLAG_LATE_SENT, .acked = flags & FLAG_LATE_ACKED,
                         .resends_left = (uint8_t)(flags >> FLAG_LATE_RESENDS_SHIFT)};
    d.queue_seq = (uint32_t)sqlite3_column_int64(s, 6);
    d.path = column_text(s, 7);
    d.request = sqlite3_column_blob(s, 8);
    d.request_len = (size_t)sqlite3_column_bytes(s, 8);
    d.deadline_at = sqlite3_column_int64(s, 9);
    if (d.request_len)
      cb->downlink(cb->arg, dev, &d);
  }
  sqlite3_reset(s);
}

static void restore_uplinks(gw_state_t *st, const gw_state_restore_t *cb, int64_t id,
                            gw_device_t *dev) {
  sqlite3_stmt *s = st->stmt[ST_UPLINKS_OF];
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW)
    cb->uplink(cb->arg, dev, sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
               (size_t)sqlite3_column_bytes(s, 1), sqlite3_column_int64(s, 2));
  sqlite3_reset(s);
}

size_t gw_state_restore(gw_state_t *st, const gw_state_restore_t *cb) {
  if (!st->db)
    return 0;
  size_t restored = 0;
  /* Rows to drop are collected first: the SELECT is still reading the table. */
  int64_t *dropped = NULL;
  size_t dropped_count = 0, dropped_cap = 0;
  sqlite3_stmt *s = st->stmt[ST_DEVICES];
  sqlite3_reset(s);
  while (sqlite3_step(s) == SQLITE_ROW) {
    gw_state_device_t saved;
    read_device(s, &saved);
    gw_device_t *dev = cb->device(cb->arg, &saved);
    if (dev) {
      dev->state_id = saved.id;
      restore_observations(st, cb, saved.id, dev);
      restore_downlinks(st, cb, saved.id, dev);
      if (cb->uplink)
        restore_uplinks(st, cb, saved.id, dev);
      restored++;
      continue;
    }
    if (dropped_count == dropped_cap) {
      size_t cap = dropped_cap ? 2 * dropped_cap : 64;
      int64_t *grown = realloc(dropped, cap * sizeof(*grown));
      if (!grown)
        continue;
      dropped = grown;
      dropped_cap = cap;
    }
    dropped[dropped_count++] = saved.id;
  }
  sqlite3_reset(s);
  for (size_t i = 0; i < dropped_count; i++) {
    sqlite3_stmt *del = begin(st, ST_DEVICE_DELETE);
    if (del) {
      sqlite3_bind_int64(del, 1, dropped[i]);
      run(st, del, "dropping a device at start");
    }
  }
  free(dropped);
  gw_state_commit(st);
  return restored;
}
