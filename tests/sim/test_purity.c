/* test_purity.c: the consensus core makes no I/O.
 *
 * Reads every raft/ source except the storage edge (store*) and checks,
 * outside comments and string literals, that it
 *   - includes no header of an I/O or clock API (uv.h, sys/socket.h,
 *     unistd.h, fcntl.h, stdio.h, time.h, ...);
 *   - calls no socket, file, stdio, clock, sleep, environment or libc-random
 *     function, nor anything uv_*;
 *   - names no stdin/stdout/stderr or errno;
 *   - defines no mutable file-scope variable (no global state).
 * A self-test first feeds the checker a sample that breaks every rule, so the
 * test cannot pass by finding nothing.  Run from tests/sim (CTest does). */
#include "testlib.h"

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>

#define RAFT_DIR "../../raft"

static const char *const bad_headers[] = {
    "uv.h",    "sys/socket.h", "netinet/in.h", "arpa/inet.h", "netdb.h",    "unistd.h",
    "fcntl.h", "stdio.h",      "time.h",       "sys/time.h",  "sys/stat.h", "pthread.h",
    "poll.h",  "sys/epoll.h",  "signal.h",     "dirent.h",    "sys/mman.h", NULL,
};

static const char *const bad_calls[] = {
    "socket",       "connect",       "bind",       "listen",   "accept",    "send",
    "sendto",       "sendmsg",       "recv",       "recvfrom", "recvmsg",   "open",
    "openat",       "creat",         "close",      "read",     "write",     "pread",
    "pwrite",       "readv",         "writev",     "fsync",    "fdatasync", "ftruncate",
    "unlink",       "rename",        "mkdir",      "fopen",    "fclose",    "fread",
    "fwrite",       "fprintf",       "printf",     "vprintf",  "vfprintf",  "puts",
    "fputs",        "fputc",         "putchar",    "perror",   "fflush",    "time",
    "gettimeofday", "clock_gettime", "clock",      "sleep",    "usleep",    "nanosleep",
    "rand",         "srand",         "random",     "srandom",  "getrandom", "getenv",
    "setenv",       "exit",          "_exit",      "system",   "popen",     "fork",
    "select",       "poll",          "epoll_wait", "signal",   "sigaction", NULL,
};

static const char *const bad_names[] = {"stdin", "stdout", "stderr", "errno", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

static void push(char *stmt, size_t *sl, size_t cap, char ch)
{
    if (*sl + 2 < cap)
        stmt[(*sl)++] = ch;
}

/* file_scope_var: whether a top-level declaration (identifiers separated by
 * spaces, with ( ) { } = kept and contents of brackets dropped) defines a
 * mutable variable. */
static bool file_scope_var(const char *stmt)
{
    if (strncmp(stmt, "typedef ", 8) == 0 || strncmp(stmt, "extern ", 7) == 0)
        return false;
    if (strstr(stmt, "const ") != NULL)
        return false;
    bool init = strchr(stmt, '=') != NULL;
    if (!init && strchr(stmt, '(') != NULL)
        return false; /* a prototype */
    if (!init && (strncmp(stmt, "struct ", 7) == 0 || strncmp(stmt, "enum ", 5) == 0 ||
                  strncmp(stmt, "union ", 6) == 0)) {
        size_t l = strlen(stmt);
        while (l > 0 && stmt[l - 1] == ' ')
            l--;
        if (l > 0 && stmt[l - 1] == '}')
            return false; /* a type definition */
        int words = 0;
        for (const char *q = stmt; *q; q++)
            words += *q != ' ' && (q == stmt || q[-1] == ' ');
        if (words <= 2 && strchr(stmt, '{') == NULL)
            return false; /* a forward declaration */
    }
    return true;
}

/* check_text reports each violation in text (named file) to stdout and
 * returns their count. */
static int check_text(const char *file, const char *text)
{
    int bad = 0, depth = 0, line = 1;
    char stmt[512];
    size_t sl = 0;
    bool bol = true;      /* at the beginning of a line (for preprocessor) */
    bool in_func = false; /* the current top-level braces are a body */
    for (const char *p = text; *p;) {
        char ch = *p;
        if (ch == '\n') {
            line++;
            bol = true;
            p++;
            continue;
        }
        if (bol && isspace((unsigned char)ch)) {
            p++;
            continue;
        }
        if (bol && ch == '#') {
            /* preprocessor line: check includes, skip the rest */
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            char dir[256];
            snprintf(dir, sizeof dir, "%.*s", (int)(n < 255 ? n : 255), p);
            char *inc = strstr(dir, "include");
            if (inc != NULL) {
                char *a = strpbrk(inc, "<\"");
                char *b = a ? strpbrk(a + 1, ">\"") : NULL;
                if (a && b) {
                    *b = '\0';
                    if (in_list(bad_headers, a + 1)) {
                        printf("  %s:%d: includes <%s>\n", file, line, a + 1);
                        bad++;
                    }
                }
            }
            while (e && e > p && e[-1] == '\\') { /* continued line */
                line++;
                e = strchr(e + 1, '\n');
            }
            p = e ? e : p + n;
            continue;
        }
        bol = false;
        if (ch == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            for (const char *q = p; q < (e ? e : p + strlen(p)); q++)
                line += *q == '\n';
            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        if (ch == '/' && p[1] == '/') {
            const char *e = strchr(p, '\n');
            p = e ? e : p + strlen(p);
            continue;
        }
        if (ch == '"' || ch == '\'') {
            const char *q = p + 1;
            while (*q && *q != ch) {
                if (*q == '\\' && q[1])
                    q++;
                q++;
            }
            p = *q ? q + 1 : q;
            if (depth == 0)
                push(stmt, &sl, sizeof stmt, 'S');
            continue;
        }
        if (isalpha((unsigned char)ch) || ch == '_') {
            char id[128];
            size_t n = 0;
            const char *q = p;
            while ((isalnum((unsigned char)*q) || *q == '_') && n < sizeof id - 1)
                id[n++] = *q++;
            id[n] = '\0';
            /* previous significant char: member access is not a call */
            const char *b = p;
            while (b > text && isspace((unsigned char)b[-1]))
                b--;
            bool member = b > text && (b[-1] == '.' ||
                                       (b[-1] == '>' && b - 1 > text && b[-2] == '-'));
            const char *a = q;
            while (*a == ' ' || *a == '\t')
                a++;
            if (!member && *a == '(' &&
                (in_list(bad_calls, id) || strncmp(id, "uv_", 3) == 0)) {
                printf("  %s:%d: calls %s()\n", file, line, id);
                bad++;
            }
            if (!member && in_list(bad_names, id)) {
                printf("  %s:%d: uses %s\n", file, line, id);
                bad++;
            }
            if (depth == 0 && sl + n + 2 < sizeof stmt) {
                memcpy(stmt + sl, id, n);
                sl += n;
                stmt[sl++] = ' ';
            }
            p = q;
            continue;
        }
        if (ch == '{' || ch == '(' || ch == '[') {
            if (depth == 0 && ch == '{') {
                size_t k = sl;
                while (k > 0 && stmt[k - 1] == ' ')
                    k--;
                in_func = k > 0 && stmt[k - 1] == ')';
            }
            if (depth == 0)
                push(stmt, &sl, sizeof stmt, ch);
            depth++;
        } else if (ch == '}' || ch == ')' || ch == ']') {
            depth--;
            if (depth == 0 && ch == '}' && in_func) {
                sl = 0; /* end of a function body */
                in_func = false;
            } else if (depth == 0) {
                push(stmt, &sl, sizeof stmt, ch);
            }
        } else if (depth == 0 && ch == ';') {
            stmt[sl] = '\0';
            if (sl > 0 && file_scope_var(stmt)) {
                printf("  %s:%d: file-scope variable: %s\n", file, line, stmt);
                bad++;
            }
            sl = 0;
        } else if (depth == 0 && ch == '=') {
            push(stmt, &sl, sizeof stmt, '=');
        }
        p++;
    }
    return bad;
}

static void test_checker_catches_violations(void)
{
    const char *sample = "#include <uv.h>\n"
                         "#include <stdio.h>\n"
                         "static int counter;\n"
                         "int total = 0;\n"
                         "static const int limit = 3;\n"
                         "struct s { int a; };\n"
                         "int f(int x);\n"
                         "int f(int x) {\n"
                         "  /* write(1, x, 2) in a comment is fine */\n"
                         "  const char *s = \"send(\";\n"
                         "  uv_run(0);\n"
                         "  int fd = socket(1, 2, 3);\n"
                         "  fprintf(stderr, \"x\");\n"
                         "  now = time(NULL);\n"
                         "  r->io.write(x);\n"
                         "  return open(s, 0);\n"
                         "}\n";
    /* uv.h, stdio.h, counter, total, uv_run, socket, fprintf, stderr, time,
     * open: 10 */
    CHECK_INT(check_text("sample", sample), 10);
    CHECK_INT(check_text("ok", "#include <string.h>\nstatic int f(void);\n"
                               "static const char *const names[] = {\"a\"};\n"
                               "struct raft;\nenum e { A, B };\n"
                               "static int f(void) { return (int)strlen(\"x\"); }\n"),
              0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s != NULL && fread(s, 1, (size_t)n, f) == (size_t)n)
        s[n] = '\0';
    fclose(f);
    return s;
}

static void test_core_sources_are_pure(void)
{
    DIR *d = opendir(RAFT_DIR);
    REQUIRE(d != NULL);
    int files = 0, bad = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t l = strlen(n);
        if (l < 3 || (strcmp(n + l - 2, ".c") != 0 && strcmp(n + l - 2, ".h") != 0))
            continue;
        if (strncmp(n, "store", 5) == 0)
            continue; /* the storage edge does file I/O by design */
        char path[512];
        snprintf(path, sizeof path, "%s/%s", RAFT_DIR, n);
        char *text = slurp(path);
        REQUIRE(text != NULL);
        bad += check_text(n, text);
        files++;
        free(text);
    }
    closedir(d);
    CHECK(files >= 5);
    CHECK_INT(bad, 0);
}

TL_MAIN(T(test_checker_catches_violations), T(test_core_sources_are_pure))
