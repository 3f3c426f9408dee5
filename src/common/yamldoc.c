/* yamldoc.c — YAML document helpers (yamldoc.h). */
#include "yamldoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ydoc_load(ydoc *d, const char *text, size_t len, const char *name, char *err, size_t errlen)
{
        yaml_parser_t parser;

        memset(d, 0, sizeof(*d));
        d->name = name ? name : "<yaml>";
        d->err = err;
        d->errlen = errlen;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        if (!yaml_parser_load(&parser, &d->doc)) {
                if (err && errlen)
                        snprintf(err, errlen, "%s:%zu: %s%s%s", d->name,
                                 parser.problem_mark.line + 1,
                                 parser.problem ? parser.problem : "invalid YAML",
                                 parser.context ? " " : "", parser.context ? parser.context : "");
                yaml_parser_delete(&parser);
                return parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
        }
        yaml_parser_delete(&parser);
        d->loaded = true;
        return 0;
}

void ydoc_release(ydoc *d)
{
        if (d && d->loaded) {
                yaml_document_delete(&d->doc);
                d->loaded = false;
        }
}

yaml_node_t *ydoc_root(ydoc *d)
{
        return d->loaded ? yaml_document_get_root_node(&d->doc) : NULL;
}

yaml_node_t *ydoc_node(ydoc *d, yaml_node_item_t i)
{
        return d->loaded ? yaml_document_get_node(&d->doc, i) : NULL;
}

const char *ydoc_scalar(const yaml_node_t *n)
{
        return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

int ydoc_fail(const ydoc *d, const yaml_node_t *n, int e, const char *fmt, ...)
{
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (d->err && d->errlen)
                snprintf(d->err, d->errlen, "%s:%zu: %s", d->name,
                         n ? n->start_mark.line + 1 : (size_t)1, msg);
        return e;
}
