/* service.h: telling the service manager how the daemon is doing
 * (systemd's sd_notify protocol, sd_notify(3); docs/admin.md "Running as a
 * service").  Every call is a no-op when NOTIFY_SOCKET is not set (not
 * started by systemd with Type=notify) or xmppd was built without
 * libsystemd. */
#ifndef XMPPD_SERVICE_H
#define XMPPD_SERVICE_H

/* service_notify_ready: start-up is done (the control socket is up, and XMPP
 * is served if enabled): READY=1, with status (borrowed, one line) as
 * STATUS=. */
void service_notify_ready(const char *status);

/* service_notify_stopping: a clean shutdown began: STOPPING=1. */
void service_notify_stopping(void);

#endif
