/* Dispatch wrappers of the binding interface: optional slots answer "not supported" or a
 * default, so the core never tests for NULL itself. */
#include "binding.h"
#include "gw_error.h"

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
