/* test_purity.c: the pure cores make no I/O.
 *
 * Reads every raft/ source except the storage edge (store*, raft_store.h), and every
 * xmppd/core/ source (DESIGN.md: "No sockets, no clock, no libuv"), and checks,
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
#define XMPPD_CORE_DIR "../../xmppd/core"

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

/* The scanner's state over one file. */
/* The xmppd core's exceptions, each for a stated reason. */
static const char *const core_ok_headers[] = {
    "stdio.h",     /* snprintf; its I/O functions are still refused */
    "arpa/inet.h", /* inet_pton/inet_ntop: pure address conversions */
    NULL,
};
/* expat's allocator callbacks take no user pointer, so xs.c points a
 * thread-local at the framer being driven around each expat call
 * (xs__mem_current); it holds no state between calls. */
static const char *const core_ok_globals[] = {"xs__mem_current", NULL};

/* allowed_global: whether the declaration stmt names an allowed global as
 * a whole word. */
static bool allowed_global(const char *stmt)
{
    for (const char *const *g = core_ok_globals; *g; g++) {
        const char *p = strstr(stmt, *g);
        size_t n = strlen(*g);
        if (p != NULL &&
            (p == stmt || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
            !(isalnum((unsigned char)p[n]) || p[n] == '_'))
            return true;
    }
    return false;
}

struct scan {
    bool allow_stdio; /* the xmppd core profile: core_ok_headers and
                         core_ok_globals are allowed */
    const char *file;
    const char *text;
    const char *p;
    int line;
    int depth;      /* nesting of (), [], {} */
    int bad;        /* violations found */
    bool bol;       /* at the beginning of a line (for preprocessor) */
    bool in_func;   /* the current top-level braces are a function body */
    char stmt[512]; /* the current top-level declaration, normalized */
    size_t sl;
};

static void report(struct scan *sc, const char *what, const char *name)
{
    printf("  %s:%d: %s %s\n", sc->file, sc->line, what, name);
    sc->bad++;
}

/* A preprocessor line: check #include, skip the rest (and continuations). */
static void scan_preproc(struct scan *sc)
{
    const char *p = sc->p, *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char dir[256];
    snprintf(dir, sizeof dir, "%.*s", (int)(n < 255 ? n : 255), p);
    char *inc = strstr(dir, "include");
    char *a = inc ? strpbrk(inc, "<\"") : NULL;
    char *b = a ? strpbrk(a + 1, ">\"") : NULL;
    if (b != NULL) {
        *b = '\0';
        if (in_list(bad_headers, a + 1) &&
            !(sc->allow_stdio && in_list(core_ok_headers, a + 1)))
            report(sc, "includes", a + 1);
    }
    while (e != NULL && e > p && e[-1] == '\\') {
        sc->line++;
        e = strchr(e + 1, '\n');
    }
    sc->p = e ? e : p + n;
}

/* Comments and literals: skipped (a literal counts as one token). */
static bool scan_skip(struct scan *sc)
{
    const char *p = sc->p;
    if (p[0] == '/' && p[1] == '*') {
        const char *e = strstr(p + 2, "*/");
        const char *end = e ? e + 2 : p + strlen(p);
        for (const char *q = p; q < end; q++)
            sc->line += *q == '\n';
        sc->p = end;
        return true;
    }
    if (p[0] == '/' && p[1] == '/') {
        const char *e = strchr(p, '\n');
        sc->p = e ? e : p + strlen(p);
        return true;
    }
    if (p[0] == '"' || p[0] == '\'') {
        const char *q = p + 1;
        while (*q && *q != p[0]) {
            if (*q == '\\' && q[1])
                q++;
            q++;
        }
        sc->p = *q ? q + 1 : q;
        if (sc->depth == 0)
            push(sc->stmt, &sc->sl, sizeof sc->stmt, 'S');
        return true;
    }
    return false;
}

/* An identifier: a forbidden call or name unless it is a member access. */
static void scan_ident(struct scan *sc)
{
    char id[128];
    size_t n = 0;
    const char *q = sc->p;
    while ((isalnum((unsigned char)*q) || *q == '_') && n < sizeof id - 1)
        id[n++] = *q++;
    id[n] = '\0';
    const char *b = sc->p;
    while (b > sc->text && isspace((unsigned char)b[-1]))
        b--;
    bool member = b > sc->text &&
                  (b[-1] == '.' || (b[-1] == '>' && b - 1 > sc->text && b[-2] == '-'));
    const char *a = q;
    while (*a == ' ' || *a == '\t')
        a++;
    if (!member && *a == '(' && (in_list(bad_calls, id) || strncmp(id, "uv_", 3) == 0))
        report(sc, "calls", id);
    if (!member && in_list(bad_names, id))
        report(sc, "uses", id);
    if (sc->depth == 0 && sc->sl + n + 2 < sizeof sc->stmt) {
        memcpy(sc->stmt + sc->sl, id, n);
        sc->sl += n;
        sc->stmt[sc->sl++] = ' ';
    }
    sc->p = q;
}

/* Punctuation: nesting, and the end of top-level declarations. */
static void scan_punct(struct scan *sc, char ch)
{
    if (ch == '{' || ch == '(' || ch == '[') {
        if (sc->depth == 0 && ch == '{') {
            size_t k = sc->sl;
            while (k > 0 && sc->stmt[k - 1] == ' ')
                k--;
            sc->in_func = k > 0 && sc->stmt[k - 1] == ')';
        }
        if (sc->depth == 0)
            push(sc->stmt, &sc->sl, sizeof sc->stmt, ch);
        sc->depth++;
    } else if (ch == '}' || ch == ')' || ch == ']') {
        sc->depth--;
        if (sc->depth == 0 && ch == '}' && sc->in_func) {
            sc->sl = 0; /* end of a function body */
            sc->in_func = false;
        } else if (sc->depth == 0) {
            push(sc->stmt, &sc->sl, sizeof sc->stmt, ch);
        }
    } else if (sc->depth == 0 && ch == ';') {
        sc->stmt[sc->sl] = '\0';
        if (sc->sl > 0 && file_scope_var(sc->stmt) &&
            !(sc->allow_stdio && allowed_global(sc->stmt)))
            report(sc, "file-scope variable:", sc->stmt);
        sc->sl = 0;
    } else if (sc->depth == 0 && ch == '=') {
        push(sc->stmt, &sc->sl, sizeof sc->stmt, '=');
    }
}

/* check_text reports each violation in text (named file) to stdout and
 * returns their count. */
static int check_text_opt(const char *file, const char *text, bool allow_stdio)
{
    struct scan sc = {.allow_stdio = allow_stdio,
                      .file = file,
                      .text = text,
                      .p = text,
                      .line = 1,
                      .bol = true};
    while (*sc.p) {
        char ch = *sc.p;
        if (ch == '\n') {
            sc.line++;
            sc.bol = true;
            sc.p++;
        } else if (sc.bol && isspace((unsigned char)ch)) {
            sc.p++;
        } else if (sc.bol && ch == '#') {
            scan_preproc(&sc);
        } else {
            sc.bol = false;
            if (scan_skip(&sc))
                continue;
            if (isalpha((unsigned char)ch) || ch == '_') {
                scan_ident(&sc);
                continue;
            }
            scan_punct(&sc, ch);
            sc.p++;
        }
    }
    return sc.bad;
}

static int check_text(const char *file, const char *text)
{
    return check_text_opt(file, text, false);
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

/* check_dir checks every .c/.h in dir (skipping names starting with skip, if
 * any, after a "raft_" prefix) and returns the number of violations; *files
 * counts what it read. */
static int check_dir(const char *dir, const char *skip, bool allow_stdio, int *files)
{
    DIR *d = opendir(dir);
    int bad = 0;
    struct dirent *de;

    *files = 0;
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t l = strlen(n);
        if (l < 3 || (strcmp(n + l - 2, ".c") != 0 && strcmp(n + l - 2, ".h") != 0))
            continue;
        const char *base = strncmp(n, "raft_", 5) == 0 ? n + 5 : n; /* raft_store.h */
        if (skip != NULL && strncmp(base, skip, strlen(skip)) == 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, n);
        char *text = slurp(path);
        if (text == NULL) {
            bad++;
            continue;
        }
        bad += check_text_opt(n, text, allow_stdio);
        (*files)++;
        free(text);
    }
    closedir(d);
    return bad;
}

static void test_core_sources_are_pure(void)
{
    int files;

    /* the storage edge (store*, raft_store.h) does file I/O by design */
    CHECK_INT(check_dir(RAFT_DIR, "store", false, &files), 0);
    CHECK(files >= 5);
}

static void test_xmppd_core_sources_are_pure(void)
{
    int files;

    CHECK_INT(check_dir(XMPPD_CORE_DIR, NULL, true, &files), 0);
    CHECK(files >= 20);
    /* other globals are still refused under the core profile */
    CHECK_INT(check_text_opt("sample", "static int counter;\n", true), 1);
    /* stdio.h is allowed there, fprintf and fopen still are not */
    CHECK_INT(check_text_opt("sample",
                             "#include <stdio.h>\nint f(void) "
                             "{ fprintf(stderr, \"x\"); return 0; }\n",
                             true),
              2);
}

TL_MAIN(T(test_checker_catches_violations), T(test_core_sources_are_pure),
        T(test_xmppd_core_sources_are_pure))
