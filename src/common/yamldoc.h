/* yamldoc.h — the YAML document helpers the parsers that use libyaml's document API share (fake
 * NVML scenarios, web-config): load a whole document with a "FILE:LINE: reason" error, the node
 * of an index, scalars, iteration over mappings and sequences, and failures that name the line of
 * the node at fault. Not the event-stream parser of the config file (daemon/config.c), which keeps
 * marks of its own. In its own library, vigil_common_yaml, so that only its users link libyaml. */
#ifndef VIGIL_COMMON_YAMLDOC_H
#define VIGIL_COMMON_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "macros.h"

typedef struct ydoc {
        yaml_document_t doc; /* valid after ydoc_load() succeeded, until ydoc_release() */
        bool loaded;         /* doc holds a document */
        const char *name;    /* file name in messages; borrowed, must outlive the ydoc */
        char *err;           /* where failures are written; borrowed */
        size_t errlen;       /* bytes of err */
} ydoc;

/* Parse TEXT[0..LEN) as one YAML document. Returns 0, -ENOMEM, or -EINVAL with
 * "NAME:LINE: problem [context]" in err. NAME and err are kept for ydoc_fail(). On failure nothing
 * needs releasing (ydoc_release() is still fine). */
int ydoc_load(ydoc *d, const char *text, size_t len, const char *name, char *err, size_t errlen);

/* Free the document; a ydoc that never loaded or was released already is fine. */
void ydoc_release(ydoc *d);

/* The root node (NULL for an empty document), the node of an index (NULL when out of range). */
yaml_node_t *ydoc_root(ydoc *d);
yaml_node_t *ydoc_node(ydoc *d, yaml_node_item_t i);

/* A scalar node's value (NUL-terminated by libyaml), or NULL for any other node or NULL. */
const char *ydoc_scalar(const yaml_node_t *n);

/* Write "NAME:LINE: message" into err, LINE being N's (1 without a node); returns E, so that
 * `return ydoc_fail(d, n, -EINVAL, "...")` reads as one step. The message is cut at 255 bytes. */
int ydoc_fail(const ydoc *d, const yaml_node_t *n, int e, const char *fmt, ...) _printf_(4, 5);

/* for each pair of mapping node MAP: K and V are set to the key and value nodes. */
#define YDOC_FOR_PAIRS(d, map, k, v)                                                               \
        for (yaml_node_pair_t *_ydp_##k = (map)->data.mapping.pairs.start;                         \
             _ydp_##k < (map)->data.mapping.pairs.top &&                                           \
             ((k) = ydoc_node((d), _ydp_##k->key), (v) = ydoc_node((d), _ydp_##k->value), 1);      \
             _ydp_##k++)

/* for each item of sequence node SEQ: E is set to the item's node. */
#define YDOC_FOR_ITEMS(d, seq, e)                                                                  \
        for (yaml_node_item_t *_ydi_##e = (seq)->data.sequence.items.start;                        \
             _ydi_##e < (seq)->data.sequence.items.top && ((e) = ydoc_node((d), *_ydi_##e), 1);    \
             _ydi_##e++)

#endif
