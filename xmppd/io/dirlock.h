/* dirlock.h: one xmppd per state directory.
 *
 * An exclusive flock(2) on <state-dir>/lock, taken before anything reads
 * the directory's state and held for the life of the process: a second
 * daemon on the same directory would otherwise open the same Raft log and
 * vote as the same node.  The kernel drops the lock when the holder exits,
 * however it exits, so a stale lock file never blocks a restart. */
#ifndef XMPPD_DIRLOCK_H
#define XMPPD_DIRLOCK_H

#include <stddef.h>

/* dirlock_take locks dir (which must exist) and writes this process's pid
 * into dir/lock for the next one to name.  On success *fd is the lock's
 * descriptor, returned owned: close it (dirlock_release) to give the lock
 * up.  Returns 0; XE_BUSY when another process holds it (err names the
 * directory and, when the file says so, the holder's pid); XE_IO when the
 * file cannot be opened or locked (err says why). */
int dirlock_take(const char *dir, int *fd, char *err, size_t errlen);

/* dirlock_release closes fd (taken) if it is open (>= 0). */
void dirlock_release(int fd);

#endif
