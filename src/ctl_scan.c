/*
 * Control commands for the scan that fills the index: start one, and
 * show how the last one went (also part of status).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "dfs.h"
#include "dfs-protocol.h"
#include "ctl_int.h"

/* A scan's state in one word, and its duration and rate, if known. */
static const char *
ctl_scan_state(const struct scan_progress *p, long *secs, long *rate)
{
	long	end;

	end = p->running ? (long)time(NULL) : p->finished;
	*secs = p->started != 0 && end >= p->started ? end - p->started : -1;
	*rate = *secs > 0 ? (long)(p->files / *secs) : -1;
	if (p->running)
		return ("running");
	if (p->started == 0)
		return ("none");
	if (p->error == EINTR)
		return ("stopped");
	if (p->error != 0)
		return ("failed");
	return ("complete");
}

void
ctl_scan_json(struct ctl_buf *b, const struct scan_progress *p)
{
	const char	*state;
	long		 secs, rate;

	state = ctl_scan_state(p, &secs, &rate);
	ctl_buf_printf(b, "{\"state\":\"%s\",\"running\":%s,\"indexed\":%s,"
	    "\"started\":", state, p->running ? "true" : "false",
	    p->complete ? "true" : "false");
	if (p->started != 0)
		ctl_buf_printf(b, "%ld", p->started);
	else
		ctl_buf_printf(b, "null");
	ctl_buf_printf(b, ",\"finished\":");
	if (!p->running && p->finished != 0)
		ctl_buf_printf(b, "%ld", p->finished);
	else
		ctl_buf_printf(b, "null");
	ctl_buf_printf(b, ",\"seconds\":");
	if (secs >= 0)
		ctl_buf_printf(b, "%ld", secs);
	else
		ctl_buf_printf(b, "null");
	ctl_buf_printf(b, ",\"dirs\":%lu,\"files\":%lu,\"conflicts\":%lu,"
	    "\"rate\":", p->dirs, p->files, p->conflicts);
	if (rate >= 0)
		ctl_buf_printf(b, "%ld", rate);
	else
		ctl_buf_printf(b, "null");
	ctl_buf_printf(b, ",\"error\":");
	ctl_buf_json(b, p->error != 0 && !p->running ? strerror(p->error) :
	    NULL);
	ctl_buf_putc(b, '}');
}

/* One line: "complete, 1000 files, 10 directories, ... in 3 s (...)". */
void
ctl_scan_line(struct ctl_buf *b, const struct scan_progress *p)
{
	const char	*state;
	long		 secs, rate;

	state = ctl_scan_state(p, &secs, &rate);
	if (p->started == 0) {
		ctl_buf_printf(b, "none");
		return;
	}
	if (strcmp(state, "failed") == 0)
		ctl_buf_printf(b, "failed (%s)", strerror(p->error));
	else
		ctl_buf_printf(b, "%s", state);
	ctl_buf_printf(b, ", %lu files, %lu directories, %lu conflicts",
	    p->files, p->dirs, p->conflicts);
	if (secs >= 0)
		ctl_buf_printf(b, " in %ld s", secs);
	if (rate >= 0)
		ctl_buf_printf(b, " (%ld files/s)", rate);
}

int
ctl_cmd_scan(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	int	rv;

	if (!index_is_open()) {
		ctl_buf_printf(b, "scan: dfs has no index");
		return (DFS_STATUS_FAILED);
	}
	if ((rv = scan_start()) == -EBUSY) {
		ctl_buf_printf(b, "a scan is already running");
		return (DFS_STATUS_FAILED);
	}
	if (rv != 0) {
		ctl_buf_printf(b, "cannot start a scan: %s", strerror(-rv));
		return (DFS_STATUS_FAILED);
	}
	log_info("scan requested by uid %ld (pid %ld)", (long)c->uid,
	    (long)c->pid);
	if (c->hdr.flags & DFS_FLAG_JSON)
		ctl_buf_printf(b, "{\"started\":true}\n");
	else
		ctl_buf_printf(b, "scan started\n");
	return (DFS_STATUS_OK);
}

int
ctl_cmd_scan_status(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *paths)
{
	struct scan_progress	 p;
	const char		*state;
	char			 t1[32], t2[32];
	long			 secs, rate;

	scan_progress(&p);
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_scan_json(b, &p);
		ctl_buf_putc(b, '\n');
		return (DFS_STATUS_OK);
	}
	state = ctl_scan_state(&p, &secs, &rate);
	ctl_time(t1, sizeof t1, p.started);
	ctl_time(t2, sizeof t2, p.running ? 0 : p.finished);
	ctl_buf_printf(b, "scan         %s", state);
	if (strcmp(state, "failed") == 0)
		ctl_buf_printf(b, ": %s", strerror(p.error));
	ctl_buf_printf(b, "\nstarted      %s\nfinished     %s\n", t1, t2);
	if (secs >= 0)
		ctl_buf_printf(b, "seconds      %ld\n", secs);
	ctl_buf_printf(b, "directories  %lu\nfiles        %lu\n"
	    "conflicts    %lu\n", p.dirs, p.files, p.conflicts);
	if (rate >= 0)
		ctl_buf_printf(b, "rate         %ld files/s\n", rate);
	ctl_buf_printf(b, "index        %s\n", p.complete ? "complete" :
	    "incomplete (no full scan has completed)");
	return (DFS_STATUS_OK);
}
