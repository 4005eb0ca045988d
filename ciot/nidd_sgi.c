/* lwm2m-gw: the `nidd` binding in SGi mode (Transport spec Appendix D.2).
 *
 * The P-GW tunnels each UE's non-IP data as UDP/IP from an address it assigned to that UE, to
 * a destination pre-configured on the P-GW: this binding's listen address. Mobile-terminated
 * data goes back as UDP to the UE's address and port. A device is therefore a source address;
 * `devices` entries map it to an endpoint name with ue_address ("ip" or "ip:port").
 *
 * Link policy (D.6): the network buffers downlink for sleeping devices, so the gateway sends no
 * CoAP retransmissions of its own toward the device: they would pile up in the network buffers
 * and be delivered as duplicates. A device that does not answer yields 5.04 upstream.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "binding.h"
#include "gw_error.h"
#include "gw_log.h"

#define MOD "nidd"

/* D.4: the Non-IP link MTU is at most 1358 octets (3GPP TS 24.301 6.6.4.2). */
#define NIDD_NON_IP_MTU 1358
#define NIDD_MAX_DATAGRAM 65536

typedef struct {
  gw_binding_t base;
  gw_binding_env_t env;
  int fd;
  struct sockaddr_storage listen_addr;
  unsigned listen_len;
  gw_link_policy_t policy;
  uint8_t rx_buf[NIDD_MAX_DATAGRAM];
} nidd_sgi_t;

static const gw_binding_ops_t *ops_self(void);

/* "ip:port" for IPv4, "[ip]:port" for IPv6: the device's binding address. */
static void addr_to_baddr(const struct sockaddr_storage *sa, gw_baddr_t *out) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(out->text, sizeof(out->text), "%s:%u", ip, ntohs(in->sin_port));
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    snprintf(out->text, sizeof(out->text), "[%s]:%u", ip, ntohs(in6->sin6_port));
  }
}

static int baddr_to_addr(const gw_baddr_t *b, struct sockaddr_storage *out, socklen_t *out_len) {
  unsigned len = 0;
  if (gw_parse_host_port(b->text, out, &len) != 0)
    return GW_ERR_INVAL;
  *out_len = (socklen_t)len;
  return GW_OK;
}

static void on_readable(gw_loop_t *loop, int fd, uint32_t events, void *arg) {
  (void)loop;
  (void)events;
  nidd_sgi_t *n = arg;
  /* Drain what is there, bounded so one busy link cannot starve the others. */
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage from;
    socklen_t from_len = sizeof(from);
    ssize_t len = recvfrom(fd, n->rx_buf, sizeof(n->rx_buf), MSG_DONTWAIT,
                           (struct sockaddr *)&from, &from_len);
    if (len < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        GW_WARN(MOD, "recvfrom: %s", strerror(errno));
      return;
    }
    gw_baddr_t addr;
    addr_to_baddr(&from, &addr);
    n->env.on_message(n->env.core, &n->base, &addr, n->rx_buf, (size_t)len);
  }
}

/* bindings.nidd may hold only the SCEF group (NIDD via T8): no SGi socket then. */
static bool nidd_enabled(const gw_config_t *config) {
  return config->bindings.nidd.enabled && config->bindings.nidd.sgi_listen;
}

static int nidd_create(const gw_config_t *config, const gw_binding_env_t *env,
                       gw_binding_t **out_binding) {
  nidd_sgi_t *n = calloc(1, sizeof(*n));
  if (!n)
    return GW_ERR_NOMEM;
  n->base.ops = ops_self();
  n->env = *env;
  n->fd = -1;
  if (gw_parse_host_port(config->bindings.nidd.sgi_listen, &n->listen_addr, &n->listen_len) != 0) {
    GW_ERR(MOD, "bad SGi listen address %s", config->bindings.nidd.sgi_listen);
    free(n);
    return GW_ERR_CONFIG;
  }
  n->policy = (gw_link_policy_t){.max_retransmit = 0, /* D.6 */
                                 .ack_timeout_ms = 2000,
                                 .mtu = NIDD_NON_IP_MTU,
                                 .sleepy = false,
                                 .accept_unknown = config->bindings.nidd.accept_unknown,
                                 .binding_letter = 'N'};
  *out_binding = &n->base;
  return GW_OK;
}

static int nidd_start(gw_binding_t *binding) {
  nidd_sgi_t *n = (nidd_sgi_t *)binding;
  n->fd = socket(n->listen_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (n->fd < 0 || bind(n->fd, (struct sockaddr *)&n->listen_addr, n->listen_len) != 0) {
    gw_baddr_t a;
    addr_to_baddr(&n->listen_addr, &a);
    GW_ERR(MOD, "cannot listen on %s: %s", a.text, strerror(errno));
    if (n->fd >= 0)
      close(n->fd);
    n->fd = -1;
    return GW_ERR_IO;
  }
  /* Bursts of registrations after a cell outage arrive together: give them room. */
  int rcvbuf = 1 << 20;
  setsockopt(n->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  int rc = gw_loop_add_fd(n->env.loop, n->fd, EPOLLIN, on_readable, n);
  if (rc != GW_OK)
    return rc;
  gw_baddr_t a;
  addr_to_baddr(&n->listen_addr, &a);
  GW_NOTICE(MOD, "SGi tunnel endpoint listening on %s", a.text);
  return GW_OK;
}

static int nidd_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                     size_t len) {
  nidd_sgi_t *n = (nidd_sgi_t *)binding;
  struct sockaddr_storage sa;
  socklen_t sa_len;
  if (baddr_to_addr(to, &sa, &sa_len) != GW_OK)
    return GW_ERR_INVAL;
  if (sendto(n->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sa_len) < 0) {
    GW_WARN(MOD, "sendto %s: %s", to->text, strerror(errno));
    return GW_ERR_IO;
  }
  return GW_OK;
}

static void nidd_stop(gw_binding_t *binding) {
  nidd_sgi_t *n = (nidd_sgi_t *)binding;
  if (n->fd < 0)
    return;
  gw_loop_del_fd(n->env.loop, n->fd);
  close(n->fd);
  n->fd = -1;
}

static void nidd_free(gw_binding_t **binding) {
  if (!*binding)
    return;
  nidd_stop(*binding);
  free(*binding);
  *binding = NULL;
}

static const gw_link_policy_t *nidd_policy(const gw_binding_t *binding) {
  return &((const nidd_sgi_t *)binding)->policy;
}

/* ue_address "ip:port" matches exactly; "ip" matches any port of that UE address. */
static bool ue_address_matches(const char *configured, const gw_baddr_t *addr) {
  if (strcmp(configured, addr->text) == 0)
    return true;
  size_t n = strlen(configured);
  const char *colon = strrchr(addr->text, ':');
  if (!colon)
    return false;
  /* addr->text is "ip:port" or "[v6]:port": compare the part before the last colon. */
  size_t ip_len = (size_t)(colon - addr->text);
  return n == ip_len && strncmp(configured, addr->text, n) == 0;
}

static const gw_device_conf_t *nidd_lookup(const gw_binding_t *binding, const gw_config_t *config,
                                           const gw_baddr_t *addr) {
  (void)binding;
  const gw_device_conf_t *by_ip = NULL;
  for (size_t i = 0; i < config->device_count; i++) {
    const gw_device_conf_t *d = &config->devices[i];
    if (!d->ue_address)
      continue;
    if (strcmp(d->ue_address, addr->text) == 0)
      return d; /* an exact ip:port wins over an ip-only entry */
    if (!by_ip && ue_address_matches(d->ue_address, addr))
      by_ip = d;
  }
  return by_ip;
}

const gw_binding_ops_t gw_nidd_sgi_binding = {
    .name = "nidd",
    .enabled = nidd_enabled,
    .create = nidd_create,
    .start = nidd_start,
    .send = nidd_send,
    .stop = nidd_stop,
    .free = nidd_free,
    .policy = nidd_policy,
    .lookup_device = nidd_lookup,
};

static const gw_binding_ops_t *ops_self(void) { return &gw_nidd_sgi_binding; }
