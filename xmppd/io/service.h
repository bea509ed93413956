/* service.h: telling the service manager how the daemon is doing
 * (systemd's sd_notify protocol, sd_notify(3); docs/admin.md "Running as a
 * service").  Every call is a no-op when NOTIFY_SOCKET is not set (not
 * started by systemd with Type=notify) or xmppd was built without
 * libsystemd. */
#ifndef XMPPD_SERVICE_H
#define XMPPD_SERVICE_H

#include <stdint.h>

/* service_notify_ready: start-up is done (the control socket is up, and XMPP
 * is served if enabled): READY=1, with status (borrowed, one line) as
 * STATUS=. */
void service_notify_ready(const char *status);

/* service_notify_stopping: a clean shutdown began: STOPPING=1. */
void service_notify_stopping(void);

/* service_notify_status: STATUS= with status (borrowed, one line), shown by
 * systemctl status. */
void service_notify_status(const char *status);

/* service_watchdog_ms: the interval at which to send WATCHDOG=1, in ms:
 * half the WatchdogSec= systemd asked of this process (sd_watchdog_enabled:
 * WATCHDOG_USEC set and WATCHDOG_PID, if set, this process), at least 1;
 * 0 when no watchdog is wanted. */
uint64_t service_watchdog_ms(void);

/* service_notify_watchdog: WATCHDOG=1, "the daemon is alive". */
void service_notify_watchdog(void);

#endif
