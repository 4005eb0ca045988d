/* lwm2m-gw: unpredictable numbers for message IDs, tokens and references.
 *
 * RFC 7252 4.4 and 5.3.1: message IDs start at a random point and tokens are hard to guess, so
 * that a restarted gateway is not taken for a duplicate of its former self and a third party
 * cannot forge answers. Taken from the kernel (getrandom(2), /dev/urandom on kernels without
 * it), never from an unseeded rand()/random().
 */
#ifndef GW_RANDOM_H
#define GW_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills out with len random bytes. Never fails: without a kernel source (no getrandom, no
 * /dev/urandom: a broken chroot) it falls back once, logged as an error, to a generator seeded
 * from the clock, the pid and an address, which is still different at every start. */
void gw_random_bytes(void *out, size_t len);
uint16_t gw_random_u16(void);
uint32_t gw_random_u32(void);
uint64_t gw_random_u64(void);

#endif
