/* test_scenario.c: runs every scenario script (tests/sim/scenarios, *.txt)
 * the cluster's transcript with the expected output in the file.
 *
 * Usage: sim_test_scenario [-rewrite] [name-substring]
 * With -rewrite (or RAFT_REWRITE=1 in the environment) the expected output
 * is replaced by the actual one; review the change with git diff.  Run from
 * tests/sim (CTest does). */
#include "scenario.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIRNAME "scenarios"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    bool rewrite =
        getenv("RAFT_REWRITE") != NULL && strcmp(getenv("RAFT_REWRITE"), "1") == 0;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-rewrite") == 0)
            rewrite = true;
        else
            filter = argv[i];
    }
    DIR *d = opendir(DIRNAME);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s (run from tests/sim)\n", DIRNAME);
        return 1;
    }
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".txt") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp);
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (filter == NULL || strstr(names[i], filter) != NULL) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", DIRNAME, names[i]);
            int rc = scn_run_file(path, rewrite, stdout);
            printf("%s %s%s\n", rc == 0 ? "ok  " : "FAIL", names[i],
                   rewrite && rc == 0 ? " (rewritten)" : "");
            if (rc == 0)
                passed++;
            else
                failed++;
        }
        free(names[i]);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
