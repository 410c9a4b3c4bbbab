/*
 * dfsctl: control a running dfs through its control socket.  The daemon
 * renders the output; dfsctl sends one request and prints the reply.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dfs.h"
#include "dfs-protocol.h"

#ifndef DFS_CONF
#define DFS_CONF	"/etc/dfs.conf"
#endif
#ifndef DFS_STATEDIR
#define DFS_STATEDIR	"/var/lib/dfs"
#endif
/* The daemon's socket when no config says otherwise (config.c's default). */
#ifndef DFS_SOCKET
#define DFS_SOCKET	DFS_STATEDIR "/dfs.sock"
#endif

#define DFSCTL_TIMEOUT	60	/* seconds to wait for a reply */

#define DFSCTL_POLL_MS	100	/* --wait: between progress requests */
#define DFSCTL_LOG_SECS	5	/* migrate --wait, not a tty: progress lines */

struct dfsctl {
	const char	*socket;
	uint32_t	 flags;		/* DFS_FLAG_* */
	int		 opts;		/* DFSCTL_OPT_* given */
	uint64_t	 limit;		/* --limit */
};

/* Options of one command only. */
#define DFSCTL_OPT_WAIT		0x1
#define DFSCTL_OPT_STATUS	0x2
#define DFSCTL_OPT_NOW		0x4
#define DFSCTL_OPT_DRYRUN	0x8
#define DFSCTL_OPT_LIMIT	0x10

struct dfsctl_cmd {
	const char	*name;
	const char	*alias;
	const char	*usage;		/* arguments and options */
	const char	*help;
	int		(*handler)(struct dfsctl *, const struct dfsctl_cmd *,
			    int, char **);
	uint16_t	 code;
	uint32_t	 flags;		/* flags it takes */
	int		 opts;		/* DFSCTL_OPT_* it takes */
};

static int	dfsctl_simple(struct dfsctl *, const struct dfsctl_cmd *, int,
		    char **);
static int	dfsctl_scan(struct dfsctl *, const struct dfsctl_cmd *, int,
		    char **);
static int	dfsctl_each(struct dfsctl *, const struct dfsctl_cmd *, int,
		    char **);
static int	dfsctl_migrate(struct dfsctl *, const struct dfsctl_cmd *, int,
		    char **);

static const struct dfsctl_cmd dfsctl_cmds[] = {
	{ "status", NULL, "", "version, uptime, mount point, scan and tiers",
	    dfsctl_simple, DFS_CMD_STATUS, DFS_FLAG_JSON, 0 },
	{ "reload", NULL, "", "re-read the configuration file",
	    dfsctl_simple, DFS_CMD_RELOAD, DFS_FLAG_JSON, 0 },
	{ "stats", NULL, "[--prometheus]", "backing calls per tier",
	    dfsctl_simple, DFS_CMD_STATS, DFS_FLAG_JSON | DFS_FLAG_PROMETHEUS,
	    0 },
	{ "scan", NULL, "[--status] [--wait]",
	    "rescan the tiers; the scan's progress",
	    dfsctl_scan, DFS_CMD_SCAN, DFS_FLAG_JSON,
	    DFSCTL_OPT_WAIT | DFSCTL_OPT_STATUS },
	{ "where", NULL, "path ...", "the tiers holding each path",
	    dfsctl_each, DFS_CMD_WHERE, DFS_FLAG_JSON, 0 },
	{ "conflicts", NULL, "", "names with shadowed copies on slower tiers",
	    dfsctl_simple, DFS_CMD_CONFLICTS, DFS_FLAG_JSON, 0 },
	{ "migrate", NULL, "[--now | --dry-run [--limit N] | --status] [--wait] "
	    "[path ...]",
	    "move files by the policies now; what a run would move",
	    dfsctl_migrate, DFS_CMD_MIGRATE, DFS_FLAG_JSON,
	    DFSCTL_OPT_WAIT | DFSCTL_OPT_STATUS | DFSCTL_OPT_NOW |
	    DFSCTL_OPT_DRYRUN | DFSCTL_OPT_LIMIT },
	{ "explain", NULL, "path ...", "the policy deciding for each path, "
	    "and why", dfsctl_each, DFS_CMD_EXPLAIN, DFS_FLAG_JSON, 0 },
	{ "pin", NULL, "path ...", "keep files (or trees) where they are",
	    dfsctl_each, DFS_CMD_PIN, DFS_FLAG_JSON, 0 },
	{ "unpin", NULL, "path ...", "let them migrate again",
	    dfsctl_each, DFS_CMD_UNPIN, DFS_FLAG_JSON, 0 },
	{ "pins", NULL, "", "the pinned paths",
	    dfsctl_simple, DFS_CMD_PINS, DFS_FLAG_JSON, 0 },
};
#define DFSCTL_NCMDS	(sizeof dfsctl_cmds / sizeof dfsctl_cmds[0])

static void
dfsctl_usage(FILE *f)
{
	const struct dfsctl_cmd	*cmd;
	char			 buf[128];
	size_t			 i;

	fprintf(f, "usage: dfsctl [-hV] [-c file | -s socket] [--json] "
	    "command [args]\n\ncommands:\n");
	for (i = 0; i < DFSCTL_NCMDS; i++) {
		cmd = &dfsctl_cmds[i];
		snprintf(buf, sizeof buf, "%s%s%s", cmd->name,
		    *cmd->usage != '\0' ? " " : "", cmd->usage);
		if (strlen(buf) < 28)
			fprintf(f, "  %-28s%s\n", buf, cmd->help);
		else
			fprintf(f, "  %s\n  %-28s%s\n", buf, "", cmd->help);
	}
}

static void	dfsctl_bad(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

static void
dfsctl_bad(const char *fmt, ...)
{
	va_list	ap;

	if (fmt != NULL) {
		fprintf(stderr, "dfsctl: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
	}
	dfsctl_usage(stderr);
	exit(2);
}

/* Exact name or alias first, then a unique prefix of a name. */
static const struct dfsctl_cmd *
dfsctl_find(const char *name)
{
	const struct dfsctl_cmd	*found = NULL;
	char			 list[256] = "";
	size_t			 i, len = strlen(name);
	int			 n = 0;

	for (i = 0; i < DFSCTL_NCMDS; i++) {
		if (strcmp(dfsctl_cmds[i].name, name) == 0 ||
		    (dfsctl_cmds[i].alias != NULL &&
		    strcmp(dfsctl_cmds[i].alias, name) == 0))
			return (&dfsctl_cmds[i]);
	}
	for (i = 0; len != 0 && i < DFSCTL_NCMDS; i++) {
		if (strncmp(dfsctl_cmds[i].name, name, len) != 0)
			continue;
		found = &dfsctl_cmds[i];
		if (n++ != 0)
			strncat(list, ", ", sizeof list - strlen(list) - 1);
		strncat(list, found->name, sizeof list - strlen(list) - 1);
	}
	if (n == 0)
		dfsctl_bad("unknown command: %s", name);
	if (n > 1)
		dfsctl_bad("ambiguous command: %s (%s)", name, list);
	return (found);
}

/* "Permission denied" -> "permission denied", as the rest of the line. */
static const char *
dfsctl_strerror(int error)
{
	static char	buf[128];

	switch (error) {
	case ENOENT:
		return ("no such socket (is dfs running?)");
	case ECONNREFUSED:
		return ("connection refused (is dfs running?)");
	case EACCES:
	case EPERM:
		return ("permission denied");
	}
	snprintf(buf, sizeof buf, "%s", strerror(error));
	buf[0] = tolower((unsigned char)buf[0]);
	return (buf);
}

static void __attribute__((noreturn))
dfsctl_fail(const char *socket, int error)
{
	fprintf(stderr, "dfsctl: cannot connect to %s: %s\n", socket,
	    dfsctl_strerror(error));
	exit(1);
}

static int
dfsctl_connect(const char *path)
{
	struct sockaddr_un	sa;
	struct timeval		tv = { DFSCTL_TIMEOUT, 0 };
	int			fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path)
		dfsctl_bad("socket path too long (at most %zu bytes): %s",
		    sizeof sa.sun_path - 1, path);
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		dfsctl_fail(path, errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1)
		dfsctl_fail(path, errno);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return (fd);
}

/* 0, or -1 with errno (0 for an early end of the stream). */
static int
dfsctl_read(int fd, void *buf, size_t len)
{
	char	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		n = recv(fd, p, len, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return (-1);
		}
		p += n;
		len -= n;
	}
	return (0);
}

static int
dfsctl_write(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return (-1);
		p += n;
		len -= n;
	}
	return (0);
}

/*
 * One request and its reply on fd.  Returns 0 with the reply's status and
 * text (NUL-terminated, malloc'd), or 1 after saying why on stderr.
 */
static int
dfsctl_exchange(struct dfsctl *ctl, int fd, uint16_t code, uint32_t flags,
    const void *payload, size_t len, uint32_t *status, char **textp)
{
	struct dfs_proto_hdr	 h;
	char			*text;

	memset(&h, 0, sizeof h);
	h.magic = DFS_PROTO_MAGIC;
	h.version = DFS_PROTO_VERSION;
	h.type = DFS_TYPE_REQUEST;
	h.command = code;
	h.flags = flags;
	h.length = len;
	if (dfsctl_write(fd, &h, sizeof h) == -1 ||
	    (len != 0 && dfsctl_write(fd, payload, len) == -1)) {
		fprintf(stderr, "dfsctl: %s: %s\n", ctl->socket,
		    dfsctl_strerror(errno));
		return (1);
	}
	if (dfsctl_read(fd, &h, sizeof h) == -1) {
		fprintf(stderr, "dfsctl: %s: %s\n", ctl->socket, errno == 0 ?
		    "connection closed by dfs" : errno == EAGAIN ?
		    "no reply from dfs" : dfsctl_strerror(errno));
		return (1);
	}
	if (h.magic != DFS_PROTO_MAGIC || h.type != DFS_TYPE_REPLY ||
	    h.length > DFS_PROTO_MAX_PAYLOAD) {
		fprintf(stderr, "dfsctl: %s: malformed reply\n", ctl->socket);
		return (1);
	}
	if ((text = malloc(h.length + 1)) == NULL) {
		fprintf(stderr, "dfsctl: out of memory\n");
		return (1);
	}
	if (dfsctl_read(fd, text, h.length) == -1) {
		fprintf(stderr, "dfsctl: %s: %s\n", ctl->socket, errno == 0 ?
		    "reply cut short" : dfsctl_strerror(errno));
		free(text);
		return (1);
	}
	text[h.length] = '\0';
	*status = h.status;
	*textp = text;
	return (0);
}

/* Print a reply: the text to stdout, or the reason to stderr.  0 or 1. */
static int
dfsctl_print(uint32_t status, char *text)
{
	size_t	len = strlen(text);

	if (status != DFS_STATUS_OK) {
		while (len > 0 && text[len - 1] == '\n')
			text[--len] = '\0';
		fprintf(stderr, "dfsctl: %s\n", len != 0 ? text :
		    "request failed");
		return (1);
	}
	fwrite(text, 1, len, stdout);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "dfsctl: stdout: %s\n", strerror(errno));
		return (1);
	}
	return (0);
}

/*
 * Send one request with an empty payload and print the reply: the text to
 * stdout on success, else the daemon's reason to stderr.  Returns the exit
 * status.
 */
static int
dfsctl_request(struct dfsctl *ctl, uint16_t code)
{
	uint32_t	 status;
	char		*text;
	int		 fd, rv;

	fd = dfsctl_connect(ctl->socket);
	if (dfsctl_exchange(ctl, fd, code, ctl->flags, NULL, 0, &status,
	    &text) != 0)
		return (1);
	close(fd);
	rv = dfsctl_print(status, text);
	free(text);
	return (rv);
}

static int
dfsctl_simple(struct dfsctl *ctl, const struct dfsctl_cmd *cmd, int argc,
    char **argv)
{
	if (argc > 1)
		dfsctl_bad("%s: unexpected argument: %s", cmd->name, argv[1]);
	return (dfsctl_request(ctl, cmd->code));
}

/* The number after "key": in a flat JSON object the daemon rendered. */
static unsigned long
dfsctl_json_num(const char *json, const char *key)
{
	char		 pat[64];
	const char	*p;

	snprintf(pat, sizeof pat, "\"%s\":", key);
	if ((p = strstr(json, pat)) == NULL)
		return (0);
	p += strlen(pat);
	if (strncmp(p, "true", 4) == 0)
		return (1);
	return (strtoul(p, NULL, 10));
}

static double
dfsctl_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* Is a scan running now? */
static int
dfsctl_scan_running(struct dfsctl *ctl, int fd)
{
	uint32_t	 status;
	char		*text;
	int		 running;

	if (dfsctl_exchange(ctl, fd, DFS_CMD_SCAN_STATUS, DFS_FLAG_JSON, NULL,
	    0, &status, &text) != 0)
		return (0);
	running = status == DFS_STATUS_OK && dfsctl_json_num(text, "running");
	free(text);
	return (running);
}

/*
 * scan: start one; --status: show the running or last one; --wait: follow
 * it until it ends (a line of progress on a terminal), then show it.  With
 * --wait, a scan that is running already is followed rather than refused.
 */
static int
dfsctl_scan(struct dfsctl *ctl, const struct dfsctl_cmd *cmd, int argc,
    char **argv)
{
	struct timespec	 pause = { 0, DFSCTL_POLL_MS * 1000000L };
	uint32_t	 status;
	unsigned long	 files, last_files = 0;
	double		 now, last = 0, rate = 0;
	char		*text;
	int		 fd, tty, shown = 0, ok, rv;

	if (argc > 1)
		dfsctl_bad("%s: unexpected argument: %s", cmd->name, argv[1]);
	if (!(ctl->opts & DFSCTL_OPT_WAIT))
		return (dfsctl_request(ctl, (ctl->opts & DFSCTL_OPT_STATUS) ?
		    DFS_CMD_SCAN_STATUS : DFS_CMD_SCAN));

	fd = dfsctl_connect(ctl->socket);
	if (!(ctl->opts & DFSCTL_OPT_STATUS)) {
		if (dfsctl_exchange(ctl, fd, DFS_CMD_SCAN, 0, NULL, 0, &status,
		    &text) != 0)
			return (1);
		if (status != DFS_STATUS_OK && !dfsctl_scan_running(ctl, fd))
			return (dfsctl_print(status, text));
		/* One is running already: follow that one. */
		free(text);
	}
	tty = !(ctl->flags & DFS_FLAG_JSON) && isatty(STDOUT_FILENO);
	for (;;) {
		if (dfsctl_exchange(ctl, fd, DFS_CMD_SCAN_STATUS,
		    DFS_FLAG_JSON, NULL, 0, &status, &text) != 0)
			return (1);
		if (status != DFS_STATUS_OK)
			return (dfsctl_print(status, text));
		if (!dfsctl_json_num(text, "running")) {
			ok = strstr(text, "\"state\":\"complete\"") != NULL;
			free(text);
			break;
		}
		if (tty) {
			files = dfsctl_json_num(text, "files");
			now = dfsctl_now();
			if (last != 0 && now - last >= 0.5) {
				rate = (files - last_files) / (now - last);
				last = now;
				last_files = files;
			} else if (last == 0) {
				last = now;
				last_files = files;
			}
			printf("\r\033[Kscanning: %lu directories, %lu files, "
			    "%lu conflicts", dfsctl_json_num(text, "dirs"),
			    files, dfsctl_json_num(text, "conflicts"));
			if (rate > 0)
				printf(", %.0f files/s", rate);
			fflush(stdout);
			shown = 1;
		}
		free(text);
		nanosleep(&pause, NULL);
	}
	if (shown)
		printf("\r\033[K");
	if (dfsctl_exchange(ctl, fd, DFS_CMD_SCAN_STATUS, ctl->flags, NULL, 0,
	    &status, &text) != 0)
		return (1);
	close(fd);
	rv = dfsctl_print(status, text);
	free(text);
	/* A scan that failed or was stopped is a failure of the command. */
	return (rv != 0 || !ok ? 1 : 0);
}

/* where, explain, pin, unpin: one request per path on one connection. */
static int
dfsctl_each(struct dfsctl *ctl, const struct dfsctl_cmd *cmd, int argc,
    char **argv)
{
	uint32_t	 status;
	size_t		 len;
	char		*text;
	int		 fd, i, rv = 0;

	if (argc < 2)
		dfsctl_bad("%s: no path given", cmd->name);
	fd = dfsctl_connect(ctl->socket);
	for (i = 1; i < argc; i++) {
		len = strlen(argv[i]);
		if (len == 0 || len > DFS_PROTO_MAX_PAYLOAD) {
			fprintf(stderr, "dfsctl: %s: %s\n", argv[i], len == 0 ?
			    "empty path" : "path too long");
			rv = 1;
			continue;
		}
		if (dfsctl_exchange(ctl, fd, cmd->code, ctl->flags, argv[i],
		    len, &status, &text) != 0)
			return (1);
		if (dfsctl_print(status, text) != 0)
			rv = 1;
		free(text);
		/* Only a failure of the command leaves the connection open. */
		if (status != DFS_STATUS_OK && status != DFS_STATUS_FAILED)
			return (1);
	}
	close(fd);
	return (rv);
}

/* The long name of the lowest option in opts. */
static const char *
dfsctl_opt_name(int opts)
{
	if (opts & DFSCTL_OPT_WAIT)
		return ("wait");
	if (opts & DFSCTL_OPT_STATUS)
		return ("status");
	if (opts & DFSCTL_OPT_NOW)
		return ("now");
	if (opts & DFSCTL_OPT_DRYRUN)
		return ("dry-run");
	return ("limit");
}

/* The unsigned number after "key": in a reply, 64 bits. */
static uint64_t
dfsctl_json_u64(const char *json, const char *key)
{
	char		 pat[64];
	const char	*p;

	snprintf(pat, sizeof pat, "\"%s\":", key);
	if ((p = strstr(json, pat)) == NULL)
		return (0);
	return (strtoull(p + strlen(pat), NULL, 10));
}

/* Sizes as the daemon shows them: 512B, 4.0K, 12M. */
static void
dfsctl_size(char *buf, size_t len, double d)
{
	static const char	 units[] = "KMGTPE";
	int			 i = -1;

	if (d < 1024) {
		snprintf(buf, len, "%.0fB", d);
		return;
	}
	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	snprintf(buf, len, d < 9.95 ? "%.1f%c" : "%.0f%c", d, units[i]);
}

/* The paths as a path list: each followed by a NUL. */
static char *
dfsctl_path_list(const struct dfsctl_cmd *cmd, int argc, char **argv,
    size_t *lenp)
{
	size_t	 len = 0, l;
	char	*buf, *p;
	int	 i;

	for (i = 1; i < argc; i++) {
		if ((l = strlen(argv[i])) == 0)
			dfsctl_bad("%s: empty path", cmd->name);
		len += l + 1;
		if (len > DFS_PROTO_MAX_PAYLOAD)
			dfsctl_bad("%s: too many paths (%u bytes at most)",
			    cmd->name, DFS_PROTO_MAX_PAYLOAD);
	}
	if ((buf = malloc(len + 1)) == NULL) {
		fprintf(stderr, "dfsctl: out of memory\n");
		exit(1);
	}
	for (p = buf, i = 1; i < argc; i++) {
		l = strlen(argv[i]) + 1;
		memcpy(p, argv[i], l);
		p += l;
	}
	*lenp = len;
	return (buf);
}

/*
 * Follow run seq until it is over: a progress line on a terminal, a line
 * every few seconds otherwise, nothing for --json.  Then show the outcome;
 * a run with errors fails the command.
 */
static int
dfsctl_migrate_wait(struct dfsctl *ctl, int fd, uint64_t seq)
{
	struct timespec	 pause = { 0, DFSCTL_POLL_MS * 1000000L };
	uint32_t	 status;
	uint64_t	 bytes, last_bytes = 0;
	double		 now, last = 0, logged, rate = -1;
	char		*text, size[16], rsize[16], line[128];
	unsigned long	 files, errors;
	int		 tty, quiet, shown = 0, rv;

	quiet = (ctl->flags & DFS_FLAG_JSON) != 0;
	tty = !quiet && isatty(STDOUT_FILENO);
	logged = dfsctl_now();
	for (;;) {
		if (dfsctl_exchange(ctl, fd, DFS_CMD_MIGRATE_STATUS,
		    DFS_FLAG_JSON, &seq, sizeof seq, &status, &text) != 0)
			return (1);
		if (status != DFS_STATUS_OK) {
			dfsctl_print(status, text);
			free(text);
			return (1);
		}
		if (strstr(text, "\"state\":\"done\"") != NULL)
			break;
		if (strstr(text, "\"state\":\"forgotten\"") != NULL) {
			if (shown)
				printf("\r\033[K");
			fprintf(stderr, "dfsctl: migration run %llu is no "
			    "longer recorded\n", (unsigned long long)seq);
			free(text);
			return (1);
		}
		now = dfsctl_now();
		files = dfsctl_json_num(text, "files");
		bytes = dfsctl_json_u64(text, "bytes");
		if (last == 0 || now - last >= 1) {
			if (last != 0)
				rate = (bytes - last_bytes) / (now - last);
			last = now;
			last_bytes = bytes;
		}
		dfsctl_size(size, sizeof size, bytes);
		if (rate >= 0)
			dfsctl_size(rsize, sizeof rsize, rate);
		if (strstr(text, "\"state\":\"pending\"") != NULL)
			snprintf(line, sizeof line, "migration run %llu: "
			    "waiting for the run before it",
			    (unsigned long long)seq);
		else
			snprintf(line, sizeof line, "migrating: %lu files, "
			    "%s%s%s%s", files, size, rate >= 0 ? ", " : "",
			    rate >= 0 ? rsize : "", rate >= 0 ? "/s" : "");
		if (tty) {
			printf("\r\033[K%s", line);
			fflush(stdout);
			shown = 1;
		} else if (!quiet && now - logged >= DFSCTL_LOG_SECS) {
			printf("%s\n", line);
			fflush(stdout);
			logged = now;
		}
		free(text);
		nanosleep(&pause, NULL);
	}
	if (shown)
		printf("\r\033[K");
	errors = dfsctl_json_num(text, "errors");
	if (!quiet) {
		free(text);
		if (dfsctl_exchange(ctl, fd, DFS_CMD_MIGRATE_STATUS,
		    ctl->flags, &seq, sizeof seq, &status, &text) != 0)
			return (1);
	}
	rv = dfsctl_print(status, text);
	free(text);
	return (rv != 0 || errors != 0 ? 1 : 0);
}

/*
 * A streamed reply: the 8-byte limit and the path list go out, frames of
 * DFS_STATUS_MORE are printed as they come, and the last frame is the
 * summary (or the reason it failed).  Returns the exit status.
 */
static int
dfsctl_stream(struct dfsctl *ctl, int fd, uint16_t code, const char *list,
    size_t len)
{
	struct dfs_proto_hdr	 h;
	char			*req, *text;
	int			 rv;

	if ((req = malloc(sizeof ctl->limit + len)) == NULL) {
		fprintf(stderr, "dfsctl: out of memory\n");
		return (1);
	}
	memcpy(req, &ctl->limit, sizeof ctl->limit);
	if (len != 0)
		memcpy(req + sizeof ctl->limit, list, len);
	memset(&h, 0, sizeof h);
	h.magic = DFS_PROTO_MAGIC;
	h.version = DFS_PROTO_VERSION;
	h.type = DFS_TYPE_REQUEST;
	h.command = code;
	h.flags = ctl->flags;
	h.length = sizeof ctl->limit + len;
	rv = dfsctl_write(fd, &h, sizeof h) == -1 ||
	    dfsctl_write(fd, req, h.length) == -1;
	free(req);
	if (rv) {
		fprintf(stderr, "dfsctl: %s: %s\n", ctl->socket,
		    dfsctl_strerror(errno));
		return (1);
	}
	for (;;) {
		if (dfsctl_read(fd, &h, sizeof h) == -1) {
			fprintf(stderr, "dfsctl: %s: %s\n", ctl->socket,
			    errno == 0 ? "connection closed by dfs" :
			    errno == EAGAIN ? "no reply from dfs" :
			    dfsctl_strerror(errno));
			return (1);
		}
		if (h.magic != DFS_PROTO_MAGIC || h.type != DFS_TYPE_REPLY ||
		    h.length > DFS_PROTO_MAX_PAYLOAD) {
			fprintf(stderr, "dfsctl: %s: malformed reply\n",
			    ctl->socket);
			return (1);
		}
		if ((text = malloc(h.length + 1)) == NULL) {
			fprintf(stderr, "dfsctl: out of memory\n");
			return (1);
		}
		if (dfsctl_read(fd, text, h.length) == -1) {
			fprintf(stderr, "dfsctl: %s: %s\n", ctl->socket,
			    errno == 0 ? "reply cut short" :
			    dfsctl_strerror(errno));
			free(text);
			return (1);
		}
		text[h.length] = '\0';
		if (h.status != DFS_STATUS_MORE) {
			rv = dfsctl_print(h.status, text);
			free(text);
			return (rv);
		}
		if (fwrite(text, 1, h.length, stdout) != h.length ||
		    fflush(stdout) == EOF) {
			fprintf(stderr, "dfsctl: stdout: %s\n",
			    strerror(errno));
			free(text);
			return (1);
		}
		free(text);
	}
}

/*
 * migrate: --now (the default) starts a run, of the given files only if
 * any; --dry-run shows what one would do; --status the last runs; --wait
 * follows the run started until it ends.
 */
static int
dfsctl_migrate(struct dfsctl *ctl, const struct dfsctl_cmd *cmd, int argc,
    char **argv)
{
	uint64_t	 seq = 0;
	uint32_t	 status;
	size_t		 len;
	char		*list, *text;
	int		 modes, fd, rv;

	modes = ctl->opts & (DFSCTL_OPT_NOW | DFSCTL_OPT_DRYRUN |
	    DFSCTL_OPT_STATUS);
	if (modes & (modes - 1))
		dfsctl_bad("%s: --now, --dry-run and --status exclude each "
		    "other", cmd->name);
	if (modes == 0)
		modes = DFSCTL_OPT_NOW;
	if ((ctl->opts & DFSCTL_OPT_WAIT) && modes != DFSCTL_OPT_NOW)
		dfsctl_bad("%s: --wait follows a run started with --now",
		    cmd->name);
	if ((ctl->opts & DFSCTL_OPT_LIMIT) && modes != DFSCTL_OPT_DRYRUN)
		dfsctl_bad("%s: --limit is for --dry-run", cmd->name);
	if (modes == DFSCTL_OPT_STATUS) {
		if (argc > 1)
			dfsctl_bad("%s: --status takes no path", cmd->name);
		fd = dfsctl_connect(ctl->socket);
		if (dfsctl_exchange(ctl, fd, DFS_CMD_MIGRATE_STATUS,
		    ctl->flags, &seq, sizeof seq, &status, &text) != 0)
			return (1);
		close(fd);
		rv = dfsctl_print(status, text);
		free(text);
		return (rv);
	}
	list = dfsctl_path_list(cmd, argc, argv, &len);
	fd = dfsctl_connect(ctl->socket);
	if (modes == DFSCTL_OPT_DRYRUN) {
		rv = dfsctl_stream(ctl, fd, DFS_CMD_MIGRATE_STREAM, list, len);
		free(list);
		close(fd);
		return (rv);
	}
	if (!(ctl->opts & DFSCTL_OPT_WAIT)) {
		rv = dfsctl_exchange(ctl, fd, DFS_CMD_MIGRATE, ctl->flags, list,
		    len, &status, &text);
		free(list);
		if (rv != 0)
			return (1);
		close(fd);
		rv = dfsctl_print(status, text);
		free(text);
		return (rv);
	}
	rv = dfsctl_exchange(ctl, fd, DFS_CMD_MIGRATE, DFS_FLAG_JSON, list,
	    len, &status, &text);
	free(list);
	if (rv != 0)
		return (1);
	if (status != DFS_STATUS_OK) {
		dfsctl_print(status, text);
		free(text);
		return (1);
	}
	seq = dfsctl_json_u64(text, "run");
	free(text);
	rv = dfsctl_migrate_wait(ctl, fd, seq);
	close(fd);
	return (rv);
}

/* The socket of the mount a config file describes. */
static char *
dfsctl_socket_from(const char *file, int status)
{
	struct dfs_config	*conf;
	char			*cause, *s;

	if (config_load(file, &conf, &cause) != 0) {
		fprintf(stderr, "dfsctl: %s\n", cause);
		exit(status);
	}
	if ((s = strdup(conf->socket)) == NULL) {
		fprintf(stderr, "dfsctl: out of memory\n");
		exit(1);
	}
	config_free(conf);
	return (s);
}

static const struct option dfsctl_longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "prometheus", no_argument, NULL, 'p' },
	{ "status", no_argument, NULL, 'S' },
	{ "wait", no_argument, NULL, 'w' },
	{ "now", no_argument, NULL, 'N' },
	{ "dry-run", no_argument, NULL, 'D' },
	{ "limit", required_argument, NULL, 'L' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

/*
 * Options: before the command, up to the first argument that is not one;
 * after it, anywhere among its arguments (-- ends them).
 */
static void
dfsctl_options(int argc, char **argv, struct dfsctl *ctl, const char **file,
    int anywhere)
{
	int	ch;

	while ((ch = getopt_long(argc, argv, anywhere ? "c:hs:V" : "+c:hs:V",
	    dfsctl_longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*file = optarg;
			break;
		case 'h':
			dfsctl_usage(stdout);
			exit(0);
		case 'V':
			printf("dfsctl %s\n", PACKAGE_VERSION);
			exit(0);
		case 'j':
			ctl->flags |= DFS_FLAG_JSON;
			break;
		case 'p':
			ctl->flags |= DFS_FLAG_PROMETHEUS;
			break;
		case 's':
			ctl->socket = optarg;
			break;
		case 'S':
			ctl->opts |= DFSCTL_OPT_STATUS;
			break;
		case 'w':
			ctl->opts |= DFSCTL_OPT_WAIT;
			break;
		case 'N':
			ctl->opts |= DFSCTL_OPT_NOW;
			break;
		case 'D':
			ctl->opts |= DFSCTL_OPT_DRYRUN;
			break;
		case 'L': {
			char			*end;
			unsigned long long	 n;

			errno = 0;
			n = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    *optarg == '-' || n == 0)
				dfsctl_bad("--limit takes a number of files "
				    "above 0, not %s", optarg);
			ctl->limit = n;
			ctl->opts |= DFSCTL_OPT_LIMIT;
			break;
		}
		default:
			dfsctl_bad(NULL);
		}
	}
}

int
main(int argc, char **argv)
{
	const struct dfsctl_cmd	*cmd;
	struct dfsctl		 ctl;
	const char		*file = NULL;
	char			*owned = NULL;
	int			 rv;

	memset(&ctl, 0, sizeof ctl);
	dfsctl_options(argc, argv, &ctl, &file, 0);
	argc -= optind;
	argv += optind;
	if (argc == 0)
		dfsctl_bad("no command given");
	cmd = dfsctl_find(argv[0]);

	/* Options may follow the command too: dfsctl stats --prometheus. */
	optind = 0;
	dfsctl_options(argc, argv, &ctl, &file, 1);
	argv[optind - 1] = argv[0];
	argc -= optind - 1;
	argv += optind - 1;

	if ((ctl.flags & DFS_FLAG_JSON) && (ctl.flags & DFS_FLAG_PROMETHEUS))
		dfsctl_bad("--json and --prometheus exclude each other");
	if ((ctl.flags & ~cmd->flags) != 0)
		dfsctl_bad("%s: --prometheus is for stats only", cmd->name);
	if ((ctl.opts & ~cmd->opts) != 0)
		dfsctl_bad("%s: --%s is not an option of %s", cmd->name,
		    dfsctl_opt_name(ctl.opts & ~cmd->opts), cmd->name);

	if (ctl.socket == NULL) {
		if (file != NULL)
			ctl.socket = owned = dfsctl_socket_from(file, 2);
		else if (access(DFS_CONF, F_OK) == 0)
			ctl.socket = owned = dfsctl_socket_from(DFS_CONF, 1);
		else
			ctl.socket = DFS_SOCKET;
	}
	rv = cmd->handler(&ctl, cmd, argc, argv);
	free(owned);
	return (rv);
}
