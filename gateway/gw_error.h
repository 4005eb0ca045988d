/* lwm2m-gw: one error enum for the whole daemon (mosquitto MOSQ_ERR_*, libuv). */
#ifndef GW_ERROR_H
#define GW_ERROR_H

typedef enum {
  GW_OK = 0,
  GW_ERR_NOMEM = -1,     /* allocation failed */
  GW_ERR_INVAL = -2,     /* bad argument or malformed input */
  GW_ERR_IO = -3,        /* system call failed, errno tells more */
  GW_ERR_CONFIG = -4,    /* configuration rejected */
  GW_ERR_NOTFOUND = -5,  /* no such device, session, exchange */
  GW_ERR_FULL = -6,      /* bounded table or queue is full */
  GW_ERR_TOOBIG = -7,    /* message does not fit the buffer or link MTU */
  GW_ERR_UNSUPPORTED = -8, /* optional binding slot is NULL, or feature not built */
  GW_ERR_UPSTREAM = -9,  /* libcoap refused to create a session or send */
  GW_ERR_DUPLICATE = -10 /* already seen (deduplication) */
} gw_err_t;

const char *gw_strerror(int err);

#endif
