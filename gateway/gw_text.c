#include "gw_text.h"

#include <stdarg.h>
#include <stdio.h>

void gw_appendf(char *out, size_t out_size, size_t *used, const char *fmt, ...) {
  if (out_size == 0)
    return;
  if (*used >= out_size - 1) {
    out[out_size - 1] = '\0';
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out + *used, out_size - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used = *used + (size_t)n >= out_size ? out_size - 1 : *used + (size_t)n;
}
