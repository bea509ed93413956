/* words.c: split a command line into words, as a shell would for the
 * simple cases an admin types: blanks separate, '...' and "..." group, a
 * backslash escapes the next character (outside single quotes). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_words_free(char **words, int n)
{
    for (int i = 0; i < n; i++)
        free(words[i]);
}

int cli_split(const char *line, char **words, int max, const char **why)
{
    int n = 0;
    size_t len = strlen(line);
    char *cur = malloc(len + 1);
    if (cur == NULL) {
        *why = "out of memory";
        return -1;
    }
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0')
            break;
        size_t k = 0;
        char quote = 0;
        for (; *p != '\0'; p++) {
            char c = *p;
            if (quote == '\'') {
                if (c == '\'')
                    quote = 0;
                else
                    cur[k++] = c;
            } else if (c == '\\') {
                if (p[1] == '\0') {
                    *why = "a backslash ends the line; remove it or escape it (\\\\)";
                    goto err;
                }
                cur[k++] = *++p;
            } else if (quote == '"') {
                if (c == '"')
                    quote = 0;
                else
                    cur[k++] = c;
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                break;
            } else {
                cur[k++] = c;
            }
        }
        if (quote != 0) {
            *why = quote == '"' ? "a double quote (\") is not closed"
                                : "a single quote (') is not closed";
            goto err;
        }
        if (n == max) {
            *why = "too many words on one line";
            goto err;
        }
        cur[k] = '\0';
        words[n] = strdup(cur);
        if (words[n] == NULL) {
            *why = "out of memory";
            goto err;
        }
        n++;
    }
    free(cur);
    return n;
err:
    free(cur);
    cli_words_free(words, n);
    return -1;
}
