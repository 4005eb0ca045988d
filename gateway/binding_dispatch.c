/* Dispatch wrappers of the binding interface: optional slots answer "not supported" or a
 * default, so the core never tests for NULL itself. */
#include "binding.h"
#include "gw_error.h"

#include <string.h>

static const gw_link_policy_t default_policy = {
    .max_retransmit = 0, .ack_timeout_ms = 2000, .mtu = 1152, .sleepy = false,
    .accept_unknown = true, .binding_letter = 'U'};

int gw_binding_send(gw_binding_t *binding, const gw_baddr_t *to, const uint8_t *data,
                    size_t len) {
  if (!binding->ops->send)
    return GW_ERR_UNSUPPORTED;
  return binding->ops->send(binding, to, data, len);
}

const gw_link_policy_t *gw_binding_policy(const gw_binding_t *binding) {
  return binding->ops->policy ? binding->ops->policy(binding) : &default_policy;
}

const gw_device_conf_t *gw_binding_lookup_device(const gw_binding_t *binding,
                                                 const gw_config_t *config,
                                                 const gw_baddr_t *addr) {
  return binding->ops->lookup_device ? binding->ops->lookup_device(binding, config, addr) : NULL;
}

size_t gw_binding_format_metrics(const gw_binding_t *binding, char *out, size_t out_size) {
  if (!binding->ops->format_metrics || out_size == 0)
    return 0;
  return binding->ops->format_metrics(binding, out, out_size);
}

size_t gw_binding_max_datagram(const gw_binding_t *binding, const gw_baddr_t *to) {
  size_t mtu = gw_binding_policy(binding)->mtu;
  size_t now = binding->ops->max_datagram ? binding->ops->max_datagram(binding, to) : 0;
  return now && now < mtu ? now : mtu;
}

void gw_binding_forget_device(gw_binding_t *binding, const gw_baddr_t *addr) {
  if (binding->ops->forget_device)
    binding->ops->forget_device(binding, addr);
}

const gw_upstream_conf_t *gw_binding_upstream(const gw_binding_t *binding,
                                              const gw_config_t *config, const gw_baddr_t *addr,
                                              const gw_device_conf_t *conf) {
  const char *name =
      binding->ops->upstream_name ? binding->ops->upstream_name(binding, addr, conf) : NULL;
  return name ? gw_config_find_upstream(config, name) : gw_config_device_upstream(config, conf);
}

/* ---- answers a binding gives itself (binding.h) ---- */

static void local_answers_due(gw_loop_t *loop, void *arg) {
  (void)loop;
  gw_local_answers_t *a = arg;
  /* Copy out first: delivering may make the core send again, which may queue more. */
  size_t n = a->count;
  gw_local_answer_t batch[GW_LOCAL_ANSWERS_MAX];
  memcpy(batch, a->items, n * sizeof(batch[0]));
  a->count = 0;
  for (size_t i = 0; i < n; i++)
    a->env.on_message(a->env.core, a->binding, &batch[i].to, batch[i].data, batch[i].len);
}

void gw_local_answers_init(gw_local_answers_t *a, gw_binding_t *binding,
                           const gw_binding_env_t *env) {
  a->binding = binding;
  a->env = *env;
  a->count = 0;
  gw_timer_init(&a->timer, local_answers_due, a);
}

int gw_local_answer(gw_local_answers_t *a, const gw_baddr_t *to, const gw_coap_msg_t *req,
                    uint8_t code, const char *diagnostic) {
  if (a->count == GW_LOCAL_ANSWERS_MAX)
    return GW_ERR_FULL;
  gw_local_answer_t *item = &a->items[a->count];
  gw_coap_msg_t m;
  gw_coap_answer_init(&m, req, code, req->mid, diagnostic);
  item->len = gw_coap_serialize(&m, item->data, sizeof(item->data));
  item->to = *to;
  a->count++;
  gw_timer_start(a->env.loop, &a->timer, 0);
  return GW_OK;
}

void gw_local_answers_stop(gw_local_answers_t *a) {
  if (a->env.loop)
    gw_timer_stop(a->env.loop, &a->timer);
  a->count = 0;
}
