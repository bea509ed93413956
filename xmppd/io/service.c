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

void service_notify_status(const char *status)
{
#ifdef XMPPD_HAVE_SYSTEMD
    sd_notifyf(0, "STATUS=%s", status);
#else
    (void)status;
#endif
}

uint64_t service_watchdog_ms(void)
{
#ifdef XMPPD_HAVE_SYSTEMD
    uint64_t usec = 0;

    /* sd_watchdog_enabled(3): > 0 when WATCHDOG_USEC is set for us; the
     * manual advises a keep-alive at half the interval. */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    return usec / 2000 > 0 ? usec / 2000 : 1;
#else
    return 0;
#endif
}

void service_notify_watchdog(void)
{
#ifdef XMPPD_HAVE_SYSTEMD
    sd_notify(0, "WATCHDOG=1");
#endif
}

void service_notify_stopping(void)
{
#ifdef XMPPD_HAVE_SYSTEMD
    sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
#endif
}
