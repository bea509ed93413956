/* print.c: results as text: "Key: value" lines and aligned tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_value_text(json_t *v, char *buf, size_t len)
{
    buf[0] = '\0';
    switch (json_typeof(v)) {
    case JSON_STRING:
        snprintf(buf, len, "%s", json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, len, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, len, "yes");
        break;
    case JSON_FALSE:
        snprintf(buf, len, "no");
        break;
    case JSON_NULL:
        snprintf(buf, len, "-");
        break;
    case JSON_ARRAY: {
        size_t i, used = 0;
        json_t *e;
        if (json_array_size(v) == 0)
            snprintf(buf, len, "-");
        json_array_foreach(v, i, e)
        {
            char one[256];
            cli_value_text(e, one, sizeof one);
            int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", one);
            if (n < 0 || (size_t)n >= len - used)
                break;
            used += (size_t)n;
        }
        break;
    }
    case JSON_OBJECT: {
        char *s = json_dumps(v, JSON_COMPACT);
        snprintf(buf, len, "%s", s != NULL ? s : "{}");
        free(s);
        break;
    }
    }
}

/* label turns a key ("not_after") into a label ("Not after"). */
static void label(const char *key, char *out, size_t len)
{
    static const char *const special[][2] = {{"sans", "SANs"},           {"ca", "CA"},
                                             {"uptime_s", "Uptime (s)"}, {"id", "ID"},
                                             {"node_id", "Node ID"},     {"tls", "TLS"}};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (strcmp(key, special[i][0]) == 0) {
            snprintf(out, len, "%s", special[i][1]);
            return;
        }
    snprintf(out, len, "%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_')
            *p = ' ';
    if (out[0] >= 'a' && out[0] <= 'z')
        out[0] = (char)(out[0] - 'a' + 'A');
}

static bool array_of_objects(json_t *v)
{
    return json_is_array(v) && json_array_size(v) > 0 &&
           json_is_object(json_array_get(v, 0));
}

void cli_print_kv(json_t *obj, int indent)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char l[128];
        label(key, l, sizeof l);
        if (json_is_object(v)) {
            printf("%*s%s:\n", indent, "", l);
            cli_print_kv(v, indent + 2);
        } else if (array_of_objects(v)) {
            printf("%*s%s:\n", indent, "", l);
            /* Columns are the keys of the first element. */
            json_t *first = json_array_get(v, 0);
            size_t n = json_object_size(first), i = 0;
            const char **keys = calloc(n + 1, sizeof *keys);
            char(*heads)[64] = calloc(n + 1, sizeof *heads);
            const char **hp = calloc(n + 1, sizeof *hp);
            if (keys == NULL || heads == NULL || hp == NULL) {
                free(keys), free(heads), free(hp);
                continue;
            }
            const char *k2;
            json_t *v2;
            json_object_foreach(first, k2, v2)
            {
                keys[i] = k2;
                label(k2, heads[i], sizeof heads[i]);
                hp[i] = heads[i];
                i++;
            }
            cli_print_table(v, keys, hp);
            free(keys), free(heads), free(hp);
        } else {
            char text[1024];
            cli_value_text(v, text, sizeof text);
            printf("%*s%s: %s\n", indent, "", l, text);
        }
    }
}

/* cell prints one table cell: padded, or ending the line when last. */
static void cell(const char *s, size_t width, bool last)
{
    if (last)
        printf("%s\n", s);
    else
        printf("%-*s  ", (int)width, s);
}

void cli_print_table(json_t *arr, const char *const *keys, const char *const *headers)
{
    size_t ncols = 0;
    while (keys[ncols] != NULL)
        ncols++;
    size_t nrows = json_array_size(arr);
    if (nrows == 0) {
        printf("(none)\n");
        return;
    }
    size_t *width = calloc(ncols, sizeof *width);
    char **cells = calloc(nrows * ncols, sizeof *cells);
    if (width == NULL || cells == NULL)
        goto out;
    for (size_t c = 0; c < ncols; c++)
        width[c] = strlen(headers[c]);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            char text[1024];
            json_t *v = json_object_get(json_array_get(arr, r), keys[c]);
            if (v == NULL)
                snprintf(text, sizeof text, "-");
            else
                cli_value_text(v, text, sizeof text);
            cells[r * ncols + c] = strdup(text);
            if (cells[r * ncols + c] != NULL && strlen(text) > width[c])
                width[c] = strlen(text);
        }
    for (size_t c = 0; c < ncols; c++)
        cell(headers[c], width[c], c + 1 == ncols);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "?";
            cell(s, width[c], c + 1 == ncols);
        }
out:
    if (cells != NULL)
        for (size_t i = 0; i < nrows * ncols; i++)
            free(cells[i]);
    free(cells);
    free(width);
}
