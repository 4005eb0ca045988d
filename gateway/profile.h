/* lwm2m-gw: registration parameters and their rewriting per upstream server profile.
 *
 * LwM2M Core 1.2 6.2.1 (Register) and 6.2.2 (Update) carry their parameters as Uri-Query options:
 * ep=, lt=, lwm2m=, b=, sms=, Q (queue mode, 1.1+) and vendor parameters. Strict servers
 * (Leshan, ThingsBoard) accept only lwm2m=1.0/1.1 and binding letters U, T, S, N, Q, so the
 * gateway rewrites what it relays upstream while keeping the device's own values for the
 * downstream side.
 */
#ifndef GW_PROFILE_H
#define GW_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap_msg.h"
#include "gw_config.h"

#define GW_REG_MAX_QUERY 16
#define GW_REG_QUERY_BUF 512

/* What the device itself said in its Register or Update. Strings are NUL terminated; empty
 * when absent. lifetime is 0 when absent. */
typedef struct {
  char endpoint[128];
  char lwm2m_version[8];
  char binding[16];
  uint32_t lifetime;
  bool has_lifetime;
  bool queue_mode; /* "Q" parameter (1.1+) or Q letter in b= (1.0) */
  char sms_number[32];
} gw_reg_params_t;

/* A rewritten set of Uri-Query values, owning its strings. */
typedef struct {
  size_t count;
  const char *values[GW_REG_MAX_QUERY]; /* point into buf */
  size_t lengths[GW_REG_MAX_QUERY];
  char buf[GW_REG_QUERY_BUF];
  size_t used;
} gw_query_list_t;

/* Reads the Uri-Query options of msg into *out_params. Unknown parameters are ignored here.
 * Returns 0, or -1 when a value does not fit (e.g. endpoint name > 127 bytes). */
/* true when msg has the Uri-Query "key=..." (has_value) or the bare flag "key". */
bool gw_reg_has_query(const gw_coap_msg_t *msg, const char *key, bool has_value);
int gw_reg_params_parse(const gw_coap_msg_t *msg, gw_reg_params_t *out_params);

typedef struct {
  gw_profile_t profile;
  bool sleepy;                /* the device's link is sleepy or it is configured in queue mode */
  const char *endpoint;       /* configured endpoint name replacing ep=, or NULL to keep */
  char link_letter;           /* the binding letter of the link the device registered over,
                                 added to b= when the device left it out; 0: none */
} gw_rewrite_rules_t;

/* Builds the upstream Uri-Query list for a Register (is_register) or Update from msg's queries.
 * Rules for GW_PROFILE_LWM2M11:
 *  - lwm2m=X: kept when 1.0 or 1.1, otherwise replaced by 1.1;
 *  - b=: letters other than U, T, S, N, Q are dropped; rules->link_letter is added when missing
 *    (a b= without it, or none at all, default U); when no transport letter is left, "U" (the
 *    server reaches the device through the gateway over UDP); a Q letter is added when
 *    rules->sleepy;
 *  - ep= replaced by rules->endpoint when set (Register only);
 *  - all other parameters are kept in order.
 * GW_PROFILE_PASSTHROUGH only applies rules->endpoint.
 * Returns 0, or -1 when the result does not fit. */
int gw_profile_rewrite_query(const gw_coap_msg_t *msg, bool is_register,
                             const gw_rewrite_rules_t *rules, gw_query_list_t *out_list);

/* Parses a profile name from the configuration ("lwm2m11", "passthrough"); -1 if unknown. */
int gw_profile_from_name(const char *name);
const char *gw_profile_name(gw_profile_t profile);

#endif
