/* Tests of the MQTT client (mqtt/mqtt_client.c) against a real mosquitto broker that the test
 * starts itself on a free loopback port, with its own configuration in a temporary directory.
 * The loop is driven with gw_loop_run_once() in bounded waits; a wait that runs out fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_log.h"
#include "loop.h"
#include "mqtt_client.h"

#define DEADLINE_MS 10000 /* a wait longer than this has failed */

/* ---- the broker -------------------------------------------------------------------------------- */

static struct {
  char dir[64];
  char conf[128];
  int port;
  pid_t pid;
} broker = {.pid = -1};

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0) {
    if (s >= 0)
      close(s);
    return -1;
  }
  close(s);
  return ntohs(a.sin_port);
}

static bool port_accepts(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
  if (s >= 0)
    close(s);
  return ok;
}

static int broker_start(void) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test that aborts takes its broker with it */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
    }
    execlp("mosquitto", "mosquitto", "-c", broker.conf, (char *)NULL);
    execl("/usr/sbin/mosquitto", "mosquitto", "-c", broker.conf, (char *)NULL);
    _exit(127);
  }
  broker.pid = pid;
  for (int i = 0; i < 500; i++) {
    if (port_accepts(broker.port))
      return 0;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      broker.pid = -1;
      return -1;
    }
    usleep(10 * 1000);
  }
  return -1;
}

static void broker_stop(void) {
  if (broker.pid > 0) {
    kill(broker.pid, SIGTERM);
    waitpid(broker.pid, NULL, 0);
    broker.pid = -1;
  }
}

/* persistent: mosquitto saves sessions and queued messages in broker.dir when it stops and
 * loads them when it starts, as a broker must for nothing to be lost across its restart. */
static int broker_write_conf(bool persistent) {
  FILE *f = fopen(broker.conf, "w");
  if (!f)
    return -1;
  fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\n", broker.port);
  if (persistent)
    fprintf(f, "persistence true\npersistence_location %s/\nlog_dest file %s/broker.log\n"
               "log_type subscribe\n", broker.dir, broker.dir);
  else
    fprintf(f, "persistence false\nlog_dest none\n");
  fclose(f);
  chmod(broker.conf, 0644);
  return 0;
}

/* Restarts the broker on its port, with or without persistence. */
static void broker_restart(bool persistent) {
  broker_stop();
  assert_int_equal(broker_write_conf(persistent), 0);
  assert_int_equal(broker_start(), 0);
}

static int group_setup(void **state) {
  (void)state;
  gw_log_setup(GW_LOG_TO_STDERR, GW_LOG_WARNING);
  strcpy(broker.dir, "/tmp/test_mqtt_client.XXXXXX");
  if (!mkdtemp(broker.dir))
    return -1;
  chmod(broker.dir, 0777); /* mosquitto may drop root to its own user, and writes here */
  snprintf(broker.conf, sizeof broker.conf, "%s/mosquitto.conf", broker.dir);
  broker.port = free_port();
  if (broker.port <= 0 || broker_write_conf(false) != 0)
    return -1;
  if (broker_start() != 0) {
    fprintf(stderr, "cannot start mosquitto on port %d\n", broker.port);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  broker_stop();
  const char *files[] = {"mosquitto.db", "broker.log"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", broker.dir, files[i]);
    unlink(path);
  }
  unlink(broker.conf);
  rmdir(broker.dir);
  return 0;
}

/* ---- what a client saw ----------------------------------------------------------------------- */

typedef struct {
  int messages, ups, downs, redelivered;
  bool connected;
  char topic[128];
  char payload[256][32]; /* payloads of the first 256 messages, as strings */
} seen_t;

static void on_message(void *arg, const char *topic, const uint8_t *payload, size_t len,
                       bool dup) {
  seen_t *s = arg;
  s->redelivered += dup;
  snprintf(s->topic, sizeof s->topic, "%s", topic);
  if (s->messages < 256)
    snprintf(s->payload[s->messages], sizeof s->payload[0], "%.*s", (int)len,
             (const char *)payload);
  s->messages++;
}

static void on_state(void *arg, bool connected) {
  seen_t *s = arg;
  s->connected = connected;
  if (connected)
    s->ups++;
  else
    s->downs++;
}

/* conf for a test client; *uri must outlive it. */
static mqtt_client_conf_t client_conf(char uri[64], int version, const char *id) {
  snprintf(uri, 64, "tcp://127.0.0.1:%d", broker.port);
  mqtt_client_conf_t conf;
  mqtt_client_conf_init(&conf);
  conf.uri = uri;
  conf.client_id = id;
  conf.mqtt_version = version;
  conf.reconnect_min_ms = 100;
  conf.reconnect_max_ms = 400;
  return conf;
}

static mqtt_client_t *client_with(gw_loop_t *loop, const mqtt_client_conf_t *conf, seen_t *seen) {
  mqtt_client_callbacks_t cb = {.arg = seen, .on_message = on_message, .on_state = on_state};
  mqtt_client_t *c = NULL;
  assert_int_equal(mqtt_client_new(loop, conf, &cb, &c), GW_OK);
  assert_non_null(c);
  return c;
}

static mqtt_client_t *client(gw_loop_t *loop, int version, const char *id, seen_t *seen) {
  char uri[64];
  mqtt_client_conf_t conf = client_conf(uri, version, id);
  return client_with(loop, &conf, seen);
}

/* Runs the loop until *counter >= want; fails after DEADLINE_MS. */
static void wait_for(gw_loop_t *loop, const int *counter, int want) {
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (*counter < want) {
    assert_true(gw_now_ms() < end);
    assert_int_equal(gw_loop_run_once(loop, 50), GW_OK);
  }
}

static void run_for(gw_loop_t *loop, uint64_t ms) {
  uint64_t end = gw_now_ms() + ms;
  for (uint64_t now = gw_now_ms(); now < end; now = gw_now_ms())
    assert_int_equal(gw_loop_run_once(loop, (int)(end - now)), GW_OK);
}

/* Starts c and runs the loop until it is connected. */
static void start_connected(gw_loop_t *loop, mqtt_client_t *c, seen_t *seen) {
  assert_int_equal(mqtt_client_start(c), GW_OK);
  wait_for(loop, &seen->ups, seen->ups + 1);
}

/* Starts a and b together (a connect takes Paho up to a second) and waits for both. */
static void start_both(gw_loop_t *loop, mqtt_client_t *a, seen_t *sa, mqtt_client_t *b,
                       seen_t *sb) {
  int want_a = sa->ups + 1, want_b = sb->ups + 1;
  assert_int_equal(mqtt_client_start(a), GW_OK);
  assert_int_equal(mqtt_client_start(b), GW_OK);
  wait_for(loop, &sa->ups, want_a);
  wait_for(loop, &sb->ups, want_b);
}

static void publish_str(mqtt_client_t *c, const char *topic, const char *text) {
  assert_int_equal(mqtt_client_publish(c, topic, (const uint8_t *)text, strlen(text)), GW_OK);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_two_clients_through_loop(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  seen_t *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
  mqtt_client_t *a = client(loop, 4, "test-a", sa);
  mqtt_client_t *b = client(loop, 4, "test-b", sb);
  assert_int_equal(mqtt_client_subscribe(a, "gw/test/two"), GW_OK);
  start_both(loop, a, sa, b, sb);
  assert_true(mqtt_client_status(a)->connected);

  publish_str(b, "gw/test/two", "hello");
  wait_for(loop, &sa->messages, 1);
  assert_string_equal(sa->topic, "gw/test/two");
  assert_string_equal(sa->payload[0], "hello");
  assert_int_equal(mqtt_client_status(a)->received, 1);
  assert_int_equal(sb->messages, 0);

  mqtt_client_free(&a);
  mqtt_client_free(&b);
  assert_null(a);
  gw_loop_free(&loop);
  free(sa);
  free(sb);
}

static void test_qos1_delivery_in_order(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  seen_t *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
  mqtt_client_t *a = client(loop, 4, "test-qos-a", sa);
  mqtt_client_t *b = client(loop, 4, "test-qos-b", sb);
  assert_int_equal(mqtt_client_subscribe(a, "gw/test/qos/#"), GW_OK);
  start_both(loop, a, sa, b, sb);
  enum { N = 200 }; /* more than the in-flight window */
  for (int i = 0; i < N; i++) {
    char text[16];
    snprintf(text, sizeof text, "m%d", i);
    publish_str(b, "gw/test/qos/x", text);
  }
  wait_for(loop, &sa->messages, N);
  for (int i = 0; i < N; i++) {
    char text[16];
    snprintf(text, sizeof text, "m%d", i);
    assert_string_equal(sa->payload[i], text);
  }
  /* Every PUBACK reached the loop. */
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (mqtt_client_status(b)->published < N) {
    assert_true(gw_now_ms() < end);
    gw_loop_run_once(loop, 50);
  }
  assert_int_equal(mqtt_client_status(b)->dropped, 0);
  mqtt_client_free(&a);
  mqtt_client_free(&b);
  gw_loop_free(&loop);
  free(sa);
  free(sb);
}

/* A client subscribed to what it publishes: MQTT 5 no-local keeps its own message away, while a
 * second subscriber proves the broker did get it. */
static void test_v5_no_local(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  seen_t *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
  mqtt_client_t *a = client(loop, 5, "test-nl-a", sa);
  mqtt_client_t *b = client(loop, 5, "test-nl-b", sb);
  assert_int_equal(mqtt_client_subscribe(a, "gw/test/nl"), GW_OK);
  assert_int_equal(mqtt_client_subscribe(b, "gw/test/nl"), GW_OK);
  start_both(loop, a, sa, b, sb);
  publish_str(a, "gw/test/nl", "own");
  wait_for(loop, &sb->messages, 1);
  assert_string_equal(sb->payload[0], "own");
  run_for(loop, 300);
  assert_int_equal(sa->messages, 0);
  /* and b, publishing, reaches a but not itself */
  publish_str(b, "gw/test/nl", "from-b");
  wait_for(loop, &sa->messages, 1);
  run_for(loop, 200);
  assert_int_equal(sb->messages, 1);
  mqtt_client_free(&a);
  mqtt_client_free(&b);
  gw_loop_free(&loop);
  free(sa);
  free(sb);
}

static void test_v311_receives_own(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  seen_t *sa = calloc(1, sizeof *sa);
  mqtt_client_t *a = client(loop, 4, "test-own", sa);
  assert_int_equal(mqtt_client_subscribe(a, "gw/test/own"), GW_OK);
  start_connected(loop, a, sa);
  publish_str(a, "gw/test/own", "echo");
  wait_for(loop, &sa->messages, 1);
  assert_string_equal(sa->payload[0], "echo");
  mqtt_client_free(&a);
  gw_loop_free(&loop);
  free(sa);
}

/* Kill the broker, publish while disconnected, start it again on the same port: the client
 * reconnects, subscribes again before it flushes, and so receives its own queued QoS 1 message
 * (3.1.1 has no no-local). A second subscriber added while connected is re-made too: this broker
 * keeps nothing across its restart, so the client finds no session and says so. */
static void test_broker_restart(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  seen_t *sa = calloc(1, sizeof *sa);
  mqtt_client_t *a = client(loop, 4, "test-restart", sa);
  assert_int_equal(mqtt_client_subscribe(a, "gw/test/restart"), GW_OK);
  start_connected(loop, a, sa);
  assert_int_equal(mqtt_client_subscribe(a, "gw/test/later"), GW_OK); /* while connected */
  publish_str(a, "gw/test/later", "before");
  wait_for(loop, &sa->messages, 1);

  broker_stop();
  wait_for(loop, &sa->downs, 1);
  assert_false(mqtt_client_status(a)->connected);
  publish_str(a, "gw/test/restart", "queued");
  publish_str(a, "gw/test/later", "queued-2");
  run_for(loop, 500); /* some failed reconnect attempts */
  assert_int_equal(sa->messages, 1);

  assert_int_equal(broker_start(), 0);
  wait_for(loop, &sa->ups, 2);
  wait_for(loop, &sa->messages, 3);
  assert_string_equal(sa->payload[1], "queued");
  assert_string_equal(sa->payload[2], "queued-2");
  const mqtt_client_status_t *st = mqtt_client_status(a);
  assert_true(st->connected);
  assert_int_equal(st->reconnects, 1);
  assert_int_equal(st->dropped, 0);
  assert_false(st->session_present);
  assert_int_equal(st->sessions_lost, 1);
  mqtt_client_free(&a);
  gw_loop_free(&loop);
  free(sa);
}

/* Lines of the persistent broker's log that record a SUBSCRIBE of client id to filter. */
static int subscribes_logged(const char *id, const char *filter) {
  char path[128], line[512], want[256];
  snprintf(path, sizeof path, "%s/broker.log", broker.dir);
  snprintf(want, sizeof want, ": %s 1 %s\n", id, filter);
  FILE *f = fopen(path, "r");
  int n = 0;
  while (f && fgets(line, sizeof line, f))
    n += strstr(line, want) != NULL;
  if (f)
    fclose(f);
  return n;
}

static void wait_published(gw_loop_t *loop, const mqtt_client_t *c, uint64_t want) {
  uint64_t end = gw_now_ms() + DEADLINE_MS;
  while (mqtt_client_status(c)->published < want) {
    assert_true(gw_now_ms() < end);
    assert_int_equal(gw_loop_run_once(loop, 50), GW_OK);
  }
}

/* A subscriber `sub` with the given Session Expiry Interval and a publisher; the broker (with
 * persistence) restarts, the publisher is back first and publishes twice, then the subscriber
 * comes back. Returns what the subscriber saw. */
static void restart_while_away(int version, uint32_t session_expiry_s, const char *sub_id,
                               seen_t *seen, mqtt_client_status_t *out_status) {
  broker_restart(true);
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  seen_t *sp = calloc(1, sizeof *sp);
  char uri[64];
  mqtt_client_conf_t conf = client_conf(uri, version, sub_id);
  conf.session_expiry_s = session_expiry_s;
  conf.reconnect_min_ms = conf.reconnect_max_ms = 1500; /* back after the publisher */
  mqtt_client_t *sub = client_with(loop, &conf, seen);
  mqtt_client_t *pub = client(loop, version, "test-away-pub", sp);
  assert_int_equal(mqtt_client_subscribe(sub, "gw/test/away/#"), GW_OK);
  start_both(loop, sub, seen, pub, sp);
  publish_str(pub, "gw/test/away/x", "live");
  wait_for(loop, &seen->messages, 1);

  broker_restart(true);
  wait_for(loop, &sp->ups, 2);
  assert_int_equal(seen->ups, 1); /* still away */
  publish_str(pub, "gw/test/away/x", "while-away-1");
  publish_str(pub, "gw/test/away/y", "while-away-2");
  wait_published(loop, pub, 3); /* the broker has them */
  wait_for(loop, &seen->ups, 2);
  run_for(loop, 300);
  *out_status = *mqtt_client_status(sub);
  mqtt_client_free(&sub);
  mqtt_client_free(&pub);
  gw_loop_free(&loop);
  free(sp);
  broker_restart(false);
}

/* MQTT 3.1.1 4.1 / MQTT 5 4.1: with clean session (clean start) off the broker keeps the
 * subscription and queues what is published while the client is away, across its own restart
 * when it has persistence: the client gets both messages after its reconnect and does not
 * subscribe again (which would make the broker re-send retained messages). */
static void test_session_kept_across_broker_restart(void **state) {
  (void)state;
  for (int version = 4; version <= 5; version++) {
    seen_t *seen = calloc(1, sizeof *seen);
    mqtt_client_status_t st;
    const char *id = version == 4 ? "test-away-sub-4" : "test-away-sub-5";
    restart_while_away(version, 3600, id, seen, &st);
    assert_int_equal(seen->messages, 3);
    assert_string_equal(seen->payload[1], "while-away-1");
    assert_string_equal(seen->payload[2], "while-away-2");
    assert_true(st.session_present);
    assert_int_equal(st.sessions_lost, 0);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(subscribes_logged(id, "gw/test/away/#"), 1);
    free(seen);
  }
}

/* session_expiry_s 0: a clean session every time; what was published while the client was away
 * is not delivered, and the subscription is made again. */
static void test_clean_session_keeps_nothing(void **state) {
  (void)state;
  seen_t *seen = calloc(1, sizeof *seen);
  mqtt_client_status_t st;
  restart_while_away(4, 0, "test-away-clean", seen, &st);
  assert_int_equal(seen->messages, 1);
  assert_false(st.session_present);
  assert_int_equal(st.sessions_lost, 0); /* none was asked for */
  assert_int_equal(subscribes_logged("test-away-clean", "gw/test/away/#"), 2);
  free(seen);
}

static void test_bad_uri_and_unreachable(void **state) {
  (void)state;
  gw_loop_t *loop = NULL;
  assert_int_equal(gw_loop_new(&loop), GW_OK);
  mqtt_client_conf_t conf;
  mqtt_client_conf_init(&conf);
  mqtt_client_t *c = (mqtt_client_t *)&conf; /* must be set to NULL on failure */
  const char *bad[] = {"foo://127.0.0.1:1883", "tcp://", "127.0.0.1:1883", "", "http://x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    conf.uri = bad[i];
    assert_int_equal(mqtt_client_new(loop, &conf, NULL, &c), GW_ERR_INVAL);
    assert_null(c);
  }
  conf.uri = NULL;
  assert_int_equal(mqtt_client_new(loop, &conf, NULL, &c), GW_ERR_INVAL);
  conf.uri = "tcp://127.0.0.1:1883";
  conf.mqtt_version = 3;
  assert_int_equal(mqtt_client_new(loop, &conf, NULL, &c), GW_ERR_INVAL);
  conf.mqtt_version = 4;
  conf.qos = 3;
  assert_int_equal(mqtt_client_new(loop, &conf, NULL, &c), GW_ERR_INVAL);

  /* Nobody listens: attempts fail, back off, nothing crashes; a QoS 1 publish waits. */
  char uri[64];
  snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", free_port());
  mqtt_client_conf_init(&conf);
  conf.uri = uri;
  conf.reconnect_min_ms = 50;
  conf.reconnect_max_ms = 100;
  seen_t *s = calloc(1, sizeof *s);
  mqtt_client_callbacks_t cb = {.arg = s, .on_message = on_message, .on_state = on_state};
  assert_int_equal(mqtt_client_new(loop, &conf, &cb, &c), GW_OK);
  assert_int_equal(mqtt_client_start(c), GW_OK);
  publish_str(c, "gw/test/none", "x");
  run_for(loop, 600);
  assert_int_equal(s->ups, 0);
  assert_false(mqtt_client_status(c)->connected);
  mqtt_client_free(&c);
  gw_loop_free(&loop);
  free(s);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_clients_through_loop),
      cmocka_unit_test(test_qos1_delivery_in_order),
      cmocka_unit_test(test_v5_no_local),
      cmocka_unit_test(test_v311_receives_own),
      cmocka_unit_test(test_broker_restart),
      cmocka_unit_test(test_session_kept_across_broker_restart),
      cmocka_unit_test(test_clean_session_keeps_nothing),
      cmocka_unit_test(test_bad_uri_and_unreachable),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
