/*
 * Logging: stderr in the foreground, syslog once daemonised.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "dfs.h"

static int	log_foreground = 1;
/* A reload sets it while other threads log. */
static atomic_int log_level_max = LOG_INFO;

void
log_init(int foreground, int debug)
{
	log_foreground = foreground;
	atomic_store(&log_level_max, debug ? LOG_DEBUG : LOG_INFO);
	if (!foreground)
		openlog("dfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(int level)
{
	atomic_store(&log_level_max, level);
}

static void __attribute__((format(printf, 2, 0)))
log_vwrite(int pri, const char *fmt, va_list ap)
{
	if (pri > atomic_load(&log_level_max))
		return;
	if (log_foreground) {
		char	buf[2048];

		vsnprintf(buf, sizeof buf, fmt, ap);
		fprintf(stderr, "dfs: %s\n", buf);
	} else
		vsyslog(pri, fmt, ap);
}

#define LOG_FN(fn, pri)					\
void							\
fn(const char *fmt, ...)				\
{							\
	va_list	ap;					\
							\
	va_start(ap, fmt);				\
	log_vwrite(pri, fmt, ap);			\
	va_end(ap);					\
}
LOG_FN(log_debug, LOG_DEBUG)
LOG_FN(log_info, LOG_INFO)
LOG_FN(log_warn, LOG_WARNING)
LOG_FN(log_error, LOG_ERR)

void
fatal(const char *fmt, ...)
{
	char	buf[1024];
	int	saved = errno;
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_error("%s: %s", buf, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
