/*
 * conf.h - the file syntax shared by relayguard.conf and account files.
 *
 *   # comment (to end of line, also after a value)
 *   key = value                     top-level setting
 *   section [NAME] {                block, e.g. "policyd {" or "account alice {"
 *       key = value
 *   }
 *
 * A value runs to the end of the line (trailing blanks and a trailing
 * comment removed); "double quotes" keep '#' and blanks.  A key may repeat
 * (e.g. several "limit =" lines); the order is kept.  Blocks do not nest.
 * Every item remembers its file and line, so every later error can name them.
 */
#ifndef RG_CONF_H
#define RG_CONF_H

#include <stddef.h>

typedef struct rg_conf_item {
    char *key;
    char *value;
    int line;
} rg_conf_item;

typedef struct rg_conf_block {
    char *type;        /* "" for the top level, else "policyd", "account", ... */
    char *name;        /* "" when the block has no name */
    int line;          /* line of the opening brace */
    rg_conf_item *items;
    size_t nitems;
} rg_conf_block;

typedef struct rg_conf {
    char *file;              /* path as given, for messages */
    rg_conf_block *blocks;   /* blocks[0] is always the top level */
    size_t nblocks;
} rg_conf;

/*
 * Parse a file / a string.  Returns a new rg_conf (free with rg_conf_free),
 * or NULL with "FILE:LINE: message" in err.
 */
rg_conf *rg_conf_parse_file(const char *path, char *err, size_t errlen);
rg_conf *rg_conf_parse_string(const char *name, const char *text, char *err, size_t errlen);
void rg_conf_free(rg_conf *c);

/* First value of key in block, or NULL. */
const char *rg_conf_get(const rg_conf_block *b, const char *key);

/*
 * Split a list value "a, b c" at commas and blanks into a NULL-terminated
 * array of new strings (free with rg_strv_free).  Never NULL (may be empty).
 */
char **rg_strv_split(const char *value);
void rg_strv_free(char **v);
size_t rg_strv_len(char *const *v);

#endif
