/* lwm2m-gw: appending formatted text to a bounded buffer (metrics pages, descriptions). */
#ifndef GW_TEXT_H
#define GW_TEXT_H

#include <stddef.h>

/* Appends to out[*used..out_size), keeping out NUL-terminated and *used below out_size; output
 * that does not fit is cut. Does nothing when out_size is 0. */
void gw_appendf(char *out, size_t out_size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
