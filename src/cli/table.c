/* table.c — column widths are computed over every line of every cell at render time, so rows
 * may be added in any order and the output is aligned however long the values turn out. */
#include "table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

struct table {
        size_t ncols;                           /* columns */
        char **header;                          /* ncols titles or NULL; owned */
        char **cells;                           /* rows × ncols strings; owned */
        size_t nrows;                           /* rows used */
        size_t cap;                             /* rows allocated */
        enum table_style style;                 /* plain or boxed */
        enum table_align align[TABLE_MAX_COLS]; /* per column */
        size_t min_width[TABLE_MAX_COLS];       /* characters */
};

size_t table_text_width(const char *s, size_t n)
{
        size_t w = 0;

        for (size_t i = 0; i < n && s[i] && s[i] != '\n'; i++)
                if (((unsigned char)s[i] & 0xC0) != 0x80)
                        w++;
        return w;
}

int table_new(size_t ncols, const char *const *header, table **ret)
{
        table *t;

        if (ncols == 0 || ncols > TABLE_MAX_COLS)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->ncols = ncols;
        if (header) {
                t->header = calloc(ncols, sizeof(char *));
                if (!t->header) {
                        free(t);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < ncols; i++) {
                        t->header[i] = strdup(header[i] ? header[i] : "");
                        if (!t->header[i]) {
                                table_free(t);
                                return -ENOMEM;
                        }
                }
        }
        *ret = t;
        return 0;
}

table *table_free(table *t)
{
        if (!t)
                return NULL;
        if (t->header)
                for (size_t i = 0; i < t->ncols; i++)
                        free(t->header[i]);
        free(t->header);
        for (size_t i = 0; i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

void table_set_style(table *t, enum table_style style)
{
        t->style = style;
}

void table_set_align(table *t, size_t col, enum table_align align)
{
        if (col < t->ncols)
                t->align[col] = align;
}

void table_set_min_width(table *t, size_t col, size_t width)
{
        if (col < t->ncols)
                t->min_width[col] = width;
}

size_t table_rows(const table *t)
{
        return t->nrows;
}

int table_add_row(table *t, const char *const *cells)
{
        char **row;

        if (t->nrows == t->cap) {
                size_t ncap = t->cap ? t->cap * 2 : 16;
                char **n = realloc(t->cells, ncap * t->ncols * sizeof(char *));
                if (!n)
                        return -ENOMEM;
                t->cells = n;
                t->cap = ncap;
        }
        row = t->cells + t->nrows * t->ncols;
        for (size_t i = 0; i < t->ncols; i++) {
                row[i] = strdup(cells[i] ? cells[i] : "");
                if (!row[i]) {
                        while (i-- > 0)
                                free(row[i]);
                        return -ENOMEM;
                }
        }
        t->nrows++;
        return 0;
}

int table_add_rowv(table *t, ...)
{
        const char *cells[TABLE_MAX_COLS];
        va_list ap;

        va_start(ap, t);
        for (size_t i = 0; i < t->ncols; i++)
                cells[i] = va_arg(ap, const char *);
        va_end(ap);
        return table_add_row(t, cells);
}

/* Number of lines in a cell and the widest one. */
static size_t cell_lines(const char *s, size_t *width)
{
        size_t lines = 1, w = 0;

        for (;;) {
                const char *nl = strchr(s, '\n');
                size_t lw = table_text_width(s, nl ? (size_t)(nl - s) : strlen(s));
                w = MAX(w, lw);
                if (!nl)
                        break;
                lines++;
                s = nl + 1;
        }
        *width = w;
        return lines;
}

/* Line k of a cell (start and byte length), or an empty line past the end. */
static const char *cell_line(const char *s, size_t k, size_t *len)
{
        while (k > 0) {
                const char *nl = strchr(s, '\n');
                if (!nl) {
                        *len = 0;
                        return "";
                }
                s = nl + 1;
                k--;
        }
        const char *nl = strchr(s, '\n');
        *len = nl ? (size_t)(nl - s) : strlen(s);
        return s;
}

static void pad(buf *b, size_t n, char c)
{
        for (size_t i = 0; i < n; i++)
                buf_append(b, &c, 1);
}

static void rule(const table *t, buf *b, const size_t *w)
{
        buf_puts(b, "+");
        for (size_t c = 0; c < t->ncols; c++) {
                pad(b, w[c] + 2, '-');
                buf_puts(b, "+");
        }
        buf_puts(b, "\n");
}

static void emit_row(const table *t, buf *b, char *const *row, const size_t *w)
{
        size_t lines = 1;
        bool box = t->style == TABLE_BOX;

        for (size_t c = 0; c < t->ncols; c++) {
                size_t dummy;
                lines = MAX(lines, cell_lines(row[c], &dummy));
        }
        for (size_t k = 0; k < lines; k++) {
                size_t start = b->len, len;

                if (box)
                        buf_puts(b, "| ");
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *s = cell_line(row[c], k, &len);
                        size_t sw = table_text_width(s, len);
                        size_t gap = w[c] > sw ? w[c] - sw : 0;

                        if (t->align[c] == TABLE_RIGHT)
                                pad(b, gap, ' ');
                        buf_append(b, s, len);
                        if (t->align[c] == TABLE_LEFT)
                                pad(b, gap, ' ');
                        if (box)
                                buf_puts(b, c + 1 < t->ncols ? " | " : " |");
                        else if (c + 1 < t->ncols)
                                buf_puts(b, "  ");
                }
                if (!box && b->data)
                        while (b->len > start && b->data[b->len - 1] == ' ')
                                b->data[--b->len] = '\0';
                buf_puts(b, "\n");
        }
}

int table_render(const table *t, buf *b)
{
        size_t w[TABLE_MAX_COLS];

        for (size_t c = 0; c < t->ncols; c++) {
                size_t cw;
                w[c] = t->min_width[c];
                if (t->header) {
                        cell_lines(t->header[c], &cw);
                        w[c] = MAX(w[c], cw);
                }
                for (size_t r = 0; r < t->nrows; r++) {
                        cell_lines(t->cells[r * t->ncols + c], &cw);
                        w[c] = MAX(w[c], cw);
                }
        }
        if (t->style == TABLE_BOX)
                rule(t, b, w);
        if (t->header) {
                emit_row(t, b, t->header, w);
                if (t->style == TABLE_BOX)
                        rule(t, b, w);
        }
        for (size_t r = 0; r < t->nrows; r++) {
                emit_row(t, b, t->cells + r * t->ncols, w);
                if (t->style == TABLE_BOX)
                        rule(t, b, w);
        }
        return b->err;
}
