#include "gw_error.h"

const char *gw_strerror(int err) {
  switch (err) {
  case GW_OK: return "success";
  case GW_ERR_NOMEM: return "out of memory";
  case GW_ERR_INVAL: return "invalid argument or malformed input";
  case GW_ERR_IO: return "input/output error";
  case GW_ERR_CONFIG: return "configuration error";
  case GW_ERR_NOTFOUND: return "not found";
  case GW_ERR_FULL: return "table or queue full";
  case GW_ERR_TOOBIG: return "message too big";
  case GW_ERR_UNSUPPORTED: return "not supported";
  case GW_ERR_UPSTREAM: return "upstream CoAP error";
  case GW_ERR_DUPLICATE: return "duplicate";
  default: return "unknown error";
  }
}
