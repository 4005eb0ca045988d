/* lwm2m-gw: intrusive doubly linked lists, newest first. A node has `prev` and `next` members;
 * a list is a pointer to its first node (NULL when empty). The macros evaluate their arguments
 * more than once: pass plain lvalues. */
#ifndef GW_LIST_H
#define GW_LIST_H

#include <stddef.h>

/* Puts node first in the list head. */
#define GW_LIST_PUSH(head, node)                                                               \
  do {                                                                                         \
    (node)->prev = NULL;                                                                       \
    (node)->next = (head);                                                                     \
    if ((node)->next)                                                                          \
      (node)->next->prev = (node);                                                             \
    (head) = (node);                                                                           \
  } while (0)

/* Takes node out of the list head; its prev and next become NULL. */
#define GW_LIST_REMOVE(head, node)                                                             \
  do {                                                                                         \
    if ((node)->prev)                                                                          \
      (node)->prev->next = (node)->next;                                                       \
    else                                                                                       \
      (head) = (node)->next;                                                                   \
    if ((node)->next)                                                                          \
      (node)->next->prev = (node)->prev;                                                       \
    (node)->next = (node)->prev = NULL;                                                        \
  } while (0)

#endif
