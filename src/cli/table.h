/* table.h — text tables for the CLI: plain aligned columns (like `ps`) or a boxed grid (like
 * `dcgmi discovery -l`). Cells are copied; a cell may hold several lines separated by '\n'
 * (each line is its own row of text inside the cell). Widths count UTF-8 code points.
 * Not thread-safe; one table per caller. */
#ifndef VIGIL_CLI_TABLE_H
#define VIGIL_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

#define TABLE_MAX_COLS 32

enum table_align {
        TABLE_LEFT = 0,
        TABLE_RIGHT = 1,
};

enum table_style {
        TABLE_PLAIN = 0, /* header line, then rows; columns separated by two spaces */
        TABLE_BOX = 1,   /* +---+ borders, a rule after the header and after every row */
};

typedef struct table table;

/* A table with ncols columns (1..TABLE_MAX_COLS) and these header titles (ncols strings, or
 * NULL for no header line). Returns 0 and *ret, -EINVAL or -ENOMEM. */
int table_new(size_t ncols, const char *const *header, table **ret);
table *table_free(table *t);

void table_set_style(table *t, enum table_style style);
void table_set_align(table *t, size_t col, enum table_align align);
/* Minimum width of a column in characters (e.g. to make a box as wide as dcgmi's). */
void table_set_min_width(table *t, size_t col, size_t width);

/* Add a row of ncols cells (NULL cells print as empty). Returns 0 or -ENOMEM. */
int table_add_row(table *t, const char *const *cells);
/* Same, cells given as arguments; exactly ncols of them. */
int table_add_rowv(table *t, ...);
size_t table_rows(const table *t);

/* Render into b (appended). Returns 0 or b's error. Lines end with '\n'; no trailing blanks in
 * plain style. */
int table_render(const table *t, buf *b);

/* Display width of s in characters (UTF-8 code points), up to the first '\n' or end. */
size_t table_text_width(const char *s, size_t n);

#endif
