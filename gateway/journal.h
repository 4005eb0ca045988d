/* lwm2m-gw: the exchange journal. Which message ID the gateway gave each recent message, per
 * device, in a memory-mapped file of gateway.state_dir, so that a SIGKILL changes nothing a peer
 * can see (issue 11, DESIGN.md "State that survives the process").
 *
 * The servers and devices deduplicate by message ID (RFC 7252 4.5). When the gateway is killed
 * after it relayed a device's request but before the device had the answer, the device sends
 * the request again; the restarted gateway must relay it with the same upstream message ID, so
 * the server answers it from its cache instead of acting twice (a Send stored twice, an Execute
 * run twice). The same holds for the server's retransmissions toward the device. The journal
 * keeps, per device:
 *  - up: device message ID -> the upstream message ID the gateway used for it;
 *  - down: server message ID -> the message ID the gateway used toward the device;
 *  - the next message ID of each direction, so IDs continue after a restart (RFC 7252 4.4)
 *    instead of starting anew where a peer's duplicate cache could still match them.
 *
 * Why a mapped file and not the database: this is written for every message, and a store into
 * a shared file mapping is in the kernel's page cache the moment it is made: a killed process
 * cannot lose it, and it costs no system call. The kernel writes the few pages back every few
 * seconds, the same pages over and over (a fixed slot per device), so flash wear does not grow
 * with the message rate. A power cut may lose the last seconds; the device's own retransmission
 * window (93 s) is shorter than a router's reboot, so nothing then depends on them.
 *
 * Entries are written as aligned 32-bit words, the key word last, so a process killed between
 * two stores leaves an old entry or a new one, never a mix. The file is host-local: byte order
 * and layout are those of the machine, checked by its header. Event loop thread only.
 */
#ifndef GW_JOURNAL_H
#define GW_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_JOURNAL_UP_ENTRIES 32 /* a burst of stored SMS read back after a restart */
#define GW_JOURNAL_DOWN_ENTRIES 16
#define GW_JOURNAL_NO_SLOT UINT32_MAX

typedef struct gw_journal gw_journal_t;

/* Maps path (created when missing, mode 0600) with room for slot_count devices. path NULL: an
 * anonymous mapping that dies with the process (no state_dir). A file of another layout, byte
 * order or size is started afresh, with a warning. GW_OK, GW_ERR_IO or GW_ERR_NOMEM. */
int gw_journal_open(const char *path, uint32_t slot_count, gw_journal_t **out_journal);
void gw_journal_close(gw_journal_t **journal);

/* The slot of the device known by key (a hash of its binding and address): the one it had,
 * else a free one, first used with random message IDs. GW_JOURNAL_NO_SLOT when all are taken. */
uint32_t gw_journal_claim(gw_journal_t *journal, uint64_t key);
/* The slot's device is gone: its slot is free again. */
void gw_journal_release(gw_journal_t *journal, uint32_t slot);
/* After a restart: slots no device claimed since gw_journal_open are freed. */
void gw_journal_release_unclaimed(gw_journal_t *journal);

/* The upstream message ID for the device's message device_mid: the one used for it within
 * EXCHANGE_LIFETIME, else a new one, recorded before it is returned. now_s: wall clock.
 * These four take GW_JOURNAL_NO_SLOT too (a device that got no slot: more restored than
 * gateway.max_devices now allows) and then give a random ID, remembering nothing. */
uint16_t gw_journal_upstream_mid(gw_journal_t *journal, uint32_t slot, uint16_t device_mid,
                                 uint32_t now_s);
/* The message ID toward the device for the server's message server_mid, likewise. */
uint16_t gw_journal_downstream_mid(gw_journal_t *journal, uint32_t slot, uint16_t server_mid,
                                   uint32_t now_s);
/* A fresh ID for a message the gateway makes itself (a separate response, a trigger). */
uint16_t gw_journal_next_upstream_mid(gw_journal_t *journal, uint32_t slot);
uint16_t gw_journal_next_downstream_mid(gw_journal_t *journal, uint32_t slot);
/* Whether the server's message server_mid was given an ID toward the device within
 * EXCHANGE_LIFETIME, by this run or the last: it was relayed before. Records nothing; false
 * for GW_JOURNAL_NO_SLOT. */
bool gw_journal_downstream_known(gw_journal_t *journal, uint32_t slot, uint16_t server_mid,
                                 uint32_t now_s);

/* 64-bit FNV-1a of the binding's name and the address: the key of gw_journal_claim. */
uint64_t gw_journal_key(const char *binding_name, const char *address);

#endif
