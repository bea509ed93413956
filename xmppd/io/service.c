/* service.c: sd_notify messages to systemd (contract in service.h). */
#include "service.h"

#include <stdio.h>

#ifdef XMPPD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void service_notify_ready(const char *status)
{
#ifdef XMPPD_HAVE_SYSTEMD
    /* unset_environment 0: nothing forks; later calls reuse NOTIFY_SOCKET. */
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
#else
    (void)status;
#endif
}

void service_notify_stopping(void)
{
#ifdef XMPPD_HAVE_SYSTEMD
    sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
#endif
}
