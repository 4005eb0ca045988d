/* The registry of bindings: adding a transport adds one line here (DESIGN.md). */
#include <stddef.h>

#include "binding.h"

#ifdef WITH_NIDD
extern const gw_binding_ops_t gw_nidd_sgi_binding;
#endif
#ifdef WITH_SMS
extern const gw_binding_ops_t gw_sms_binding;
#endif
#ifdef WITH_MQTT
extern const gw_binding_ops_t gw_mqtt_binding;
#endif
#ifdef WITH_HTTP
extern const gw_binding_ops_t gw_http_binding;
#endif
#ifdef WITH_LORAWAN
extern const gw_binding_ops_t gw_lorawan_binding;
#endif

static const gw_binding_ops_t *const registry[] = {
#ifdef WITH_NIDD
    &gw_nidd_sgi_binding,
#endif
#ifdef WITH_SMS
    &gw_sms_binding,
#endif
#ifdef WITH_MQTT
    &gw_mqtt_binding,
#endif
#ifdef WITH_HTTP
    &gw_http_binding,
#endif
#ifdef WITH_LORAWAN
    &gw_lorawan_binding,
#endif
    NULL};

const gw_binding_ops_t *const *gw_binding_registry(size_t *out_count) {
  *out_count = sizeof(registry) / sizeof(registry[0]) - 1;
  return registry;
}
