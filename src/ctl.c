/*
 * The control socket: a thread that serves dfsctl over a Unix socket with
 * the protocol of dfs-protocol.h.
 *
 * One thread polls the listening socket and up to CTL_MAX_CLIENTS
 * non-blocking clients.  Each client must send a whole request within
 * CTL_TIMEOUT_MS, so a slow or silent one costs a slot for a while but never
 * holds up the others.  Requests are checked in the order the protocol
 * header lists; a bad one gets an error reply and that client is closed.
 * The server renders every reply (text, JSON or Prometheus) so that dfsctl
 * only prints it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dfs.h"
#include "dfs-protocol.h"

#define CTL_MAX_CLIENTS	16
#define CTL_TIMEOUT_MS	5000	/* to send a request, or to take a reply */
#define CTL_BACKLOG	16
#define CTL_ERR_MAX	256	/* an error reply's text */

/* Set by ctl_configure; the hook returns 0, or -1 and a cause. */
static const char	*ctl_config_file;	/* for status; may be NULL */
static int		(*ctl_reload_hook)(char **);

/* Reply text under construction; nomem once an allocation failed. */
struct ctl_buf {
	char		*s;
	size_t		 len;
	size_t		 size;
	int		 nomem;
};

struct ctl_client {
	int			 fd;		/* -1: slot free */
	uid_t			 uid;		/* SO_PEERCRED at accept */
	pid_t			 pid;
	struct dfs_proto_hdr	 hdr;
	char			*payload;
	size_t			 have;		/* request bytes read */
	char			*out;		/* reply: header and text */
	size_t			 outlen;
	size_t			 outoff;
	char			*outbuf;	/* allocated reply, or NULL */
	char			 errbuf[sizeof (struct dfs_proto_hdr) +
				    CTL_ERR_MAX];
	int			 closing;	/* close once the reply is out */
	uint64_t		 deadline;	/* ms, CLOCK_MONOTONIC */
	int			 working;	/* a worker makes the reply */
	int			 done;		/* ...and has: ctl_work_mtx */
};

struct ctl_command {
	uint16_t	 code;
	const char	*name;
	uint32_t	 minlen;	/* request payload bytes */
	uint32_t	 maxlen;
	uint32_t	 flags;		/* flags it accepts */
	int		(*handler)(struct ctl_client *, struct ctl_buf *);
};

static int	ctl_cmd_status(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_reload(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_stats(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_scan(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_scan_status(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_where(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_conflicts(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_migrate(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_migrate_status(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_migrate_plan(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_migrate_stream(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_explain(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_pin(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_unpin(struct ctl_client *, struct ctl_buf *);
static int	ctl_cmd_pins(struct ctl_client *, struct ctl_buf *);
static void	ctl_runs(struct ctl_buf *, const struct mig_status *, int);
static void	ctl_scan_json(struct ctl_buf *, const struct scan_progress *);
static void	ctl_scan_line(struct ctl_buf *, const struct scan_progress *);

/* Indexed by command code; checked by ctl_check_table at start. */
static const struct ctl_command ctl_commands[] = {
	{ 0, NULL, 0, 0, 0, NULL },
	{ DFS_CMD_STATUS, "status", 0, 0, DFS_FLAG_JSON, ctl_cmd_status },
	{ DFS_CMD_RELOAD, "reload", 0, 0, DFS_FLAG_JSON, ctl_cmd_reload },
	{ DFS_CMD_STATS, "stats", 0, 0, DFS_FLAG_JSON | DFS_FLAG_PROMETHEUS,
	    ctl_cmd_stats },
	{ DFS_CMD_SCAN, "scan", 0, 0, DFS_FLAG_JSON, ctl_cmd_scan },
	{ DFS_CMD_SCAN_STATUS, "scan status", 0, 0, DFS_FLAG_JSON,
	    ctl_cmd_scan_status },
	{ DFS_CMD_WHERE, "where", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    ctl_cmd_where },
	{ DFS_CMD_CONFLICTS, "conflicts", 0, 0, DFS_FLAG_JSON,
	    ctl_cmd_conflicts },
	{ DFS_CMD_MIGRATE, "migrate", 0, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    ctl_cmd_migrate },
	{ DFS_CMD_MIGRATE_STATUS, "migrate status", 8, 8, DFS_FLAG_JSON,
	    ctl_cmd_migrate_status },
	{ DFS_CMD_MIGRATE_PLAN, "migrate --dry-run", 0, DFS_PROTO_MAX_PAYLOAD,
	    DFS_FLAG_JSON, ctl_cmd_migrate_plan },
	{ DFS_CMD_EXPLAIN, "explain", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    ctl_cmd_explain },
	{ DFS_CMD_PIN, "pin", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    ctl_cmd_pin },
	{ DFS_CMD_UNPIN, "unpin", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    ctl_cmd_unpin },
	{ DFS_CMD_PINS, "pins", 0, 0, DFS_FLAG_JSON, ctl_cmd_pins },
	{ DFS_CMD_MIGRATE_STREAM, "migrate --dry-run", 8,
	    DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON, ctl_cmd_migrate_stream },
};
#define CTL_NCOMMANDS	(sizeof ctl_commands / sizeof ctl_commands[0])

/* The counters of struct tier_stats, and their Prometheus families. */
enum ctl_family {
	CTL_CALLS,
	CTL_READ,
	CTL_WRITTEN,
	CTL_ERRORS
};

static const struct {
	const char	*name;
	size_t		 off;
	enum ctl_family	 family;
} ctl_counters[] = {
	{ "lookup", offsetof(struct tier_stats, lookup), CTL_CALLS },
	{ "readdir", offsetof(struct tier_stats, readdir), CTL_CALLS },
	{ "open", offsetof(struct tier_stats, open), CTL_CALLS },
	{ "create", offsetof(struct tier_stats, create), CTL_CALLS },
	{ "unlink", offsetof(struct tier_stats, unlink), CTL_CALLS },
	{ "rename", offsetof(struct tier_stats, rename), CTL_CALLS },
	{ "setattr", offsetof(struct tier_stats, setattr), CTL_CALLS },
	{ "xattr", offsetof(struct tier_stats, xattr), CTL_CALLS },
	{ "bytes_read", offsetof(struct tier_stats, bytes_read), CTL_READ },
	{ "bytes_written", offsetof(struct tier_stats, bytes_written),
	    CTL_WRITTEN },
	{ "errors", offsetof(struct tier_stats, errors), CTL_ERRORS },
};
#define CTL_NCOUNTERS	(sizeof ctl_counters / sizeof ctl_counters[0])

static const struct {
	enum ctl_family	 family;
	const char	*metric;
	const char	*help;
} ctl_families[] = {
	{ CTL_CALLS, "dfs_backing_calls_total",
	    "Calls dfs made to a tier's backing file system, by operation." },
	{ CTL_READ, "dfs_backing_read_bytes_total",
	    "Bytes dfs read from a tier." },
	{ CTL_WRITTEN, "dfs_backing_written_bytes_total",
	    "Bytes dfs wrote to a tier." },
	{ CTL_ERRORS, "dfs_backing_errors_total",
	    "Backing calls that failed, ENOENT probes excepted." },
};

static int			 ctl_fd = -1;
static int			 ctl_wake[2] = { -1, -1 };
static atomic_int		 ctl_stopping;

/*
 * Commands that may read the whole index (a dry run over millions of
 * files, every conflict or pin) run in a worker thread of their own, so
 * that status, stats, where and explain keep answering meanwhile.
 */
#define CTL_MAX_WORKERS	4
static pthread_mutex_t		 ctl_work_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 ctl_work_cv = PTHREAD_COND_INITIALIZER;
static unsigned			 ctl_nworkers;
static char			*ctl_path;
static dev_t			 ctl_dev;
static ino_t			 ctl_ino;
static pthread_t		 ctl_thread;
static int			 ctl_running;
static struct timespec		 ctl_started;
static struct ctl_client	 ctl_clients[CTL_MAX_CLIENTS];
static unsigned			 ctl_nclients;
static uint64_t			 ctl_accept_after;	/* ms; after EMFILE */

static uint64_t
ctl_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* --- reply text --------------------------------------------------------- */

static int
ctl_buf_grow(struct ctl_buf *b, size_t need)
{
	size_t	 size;
	char	*s;

	if (b->nomem)
		return (-1);
	if (b->len + need + 1 <= b->size)
		return (0);
	size = b->size == 0 ? 4096 : b->size;
	while (size < b->len + need + 1)
		size *= 2;
	if ((s = realloc(b->s, size)) == NULL) {
		b->nomem = 1;
		return (-1);
	}
	b->s = s;
	b->size = size;
	return (0);
}

static void ctl_buf_printf(struct ctl_buf *, const char *, ...)
	__attribute__((format(printf, 2, 3)));

static void
ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->nomem = 1;
		return;
	}
	if (ctl_buf_grow(b, n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

static void
ctl_buf_putc(struct ctl_buf *b, char c)
{
	if (ctl_buf_grow(b, 1) != 0)
		return;
	b->s[b->len++] = c;
	b->s[b->len] = '\0';
}

/* Text for a terminal: control characters become '?'; padded to width. */
static void
ctl_buf_text(struct ctl_buf *b, const char *s, int width)
{
	const unsigned char	*p;
	int			 n = 0;

	for (p = (const unsigned char *)s; *p != '\0'; p++, n++)
		ctl_buf_putc(b, *p < 0x20 || *p == 0x7f ? '?' : (char)*p);
	for (; n < width; n++)
		ctl_buf_putc(b, ' ');
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
ctl_utf8_len(const unsigned char *p)
{
	size_t		n, i;
	uint32_t	cp;

	if (p[0] < 0x80)
		return (1);
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return (0);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return (0);
	return (n);
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void
ctl_buf_json(struct ctl_buf *b, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n;

	if (s == NULL) {
		ctl_buf_printf(b, "null");
		return;
	}
	ctl_buf_putc(b, '"');
	while (*p != '\0') {
		switch (*p) {
		case '"':
			ctl_buf_printf(b, "\\\"");
			break;
		case '\\':
			ctl_buf_printf(b, "\\\\");
			break;
		case '\n':
			ctl_buf_printf(b, "\\n");
			break;
		case '\t':
			ctl_buf_printf(b, "\\t");
			break;
		case '\r':
			ctl_buf_printf(b, "\\r");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				ctl_buf_printf(b, "\\u%04x", *p);
				break;
			}
			if ((n = ctl_utf8_len(p)) == 0) {
				ctl_buf_printf(b, "\\ufffd");
				break;
			}
			while (n-- > 1)
				ctl_buf_putc(b, (char)*p++);
			ctl_buf_putc(b, (char)*p);
			break;
		}
		p++;
	}
	ctl_buf_putc(b, '"');
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void
ctl_buf_label(struct ctl_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			ctl_buf_putc(b, '\\');
		if (*s == '\n')
			ctl_buf_printf(b, "\\n");
		else
			ctl_buf_putc(b, *s);
	}
}

/* Sizes as df -h shows them. */
static void
ctl_size(char *buf, size_t len, uint64_t n)
{
	static const char	 units[] = "KMGTPE";
	double			 d = n;
	int			 i = -1;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 "B", n);
		return;
	}
	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	if (d < 9.95)
		snprintf(buf, len, "%.1f%c", d, units[i]);
	else
		snprintf(buf, len, "%.0f%c", d, units[i]);
}

/* --- commands ----------------------------------------------------------- */

/* How long status waits for the tiers' answers before it shows the last. */
#define CTL_TIER_WAIT_MS	300

/* What tier t's file system supports, as the probe at start found it. */
static void
ctl_tier_caps_json(struct ctl_buf *b, int t)
{
	const char	*name;
	unsigned	 i;

	ctl_buf_printf(b, ",\"fstype\":");
	ctl_buf_json(b, dfs.tiers[t].fstype);
	ctl_buf_printf(b, ",\"supports\":{");
	for (i = 0; (name = tier_cap_name(1u << i)) != NULL; i++)
		ctl_buf_printf(b, "%s\"%s\":%s", i == 0 ? "" : ",", name,
		    tier_has(t, 1u << i) ? "true" : "false");
	ctl_buf_printf(b, "},\"stable_inodes_from\":\"%s\"",
	    dfs.tiers[t].inodes_set ? "config" : "probe");
}

/* The same, a line per tier under the usage table. */
static void
ctl_tier_caps_text(struct ctl_buf *b, int wname)
{
	static const struct {
		const char	*head;
		unsigned	 cap;
	} col[] = {
		{ "NOREPLACE", TIER_CAP_NOREPLACE },
		{ "EXCHANGE", TIER_CAP_EXCHANGE },
		{ "LINKS", TIER_CAP_LINK },
		{ "NLINK", TIER_CAP_NLINK },
		{ "XATTRS", TIER_CAP_XATTR },
		{ "NS_TIMES", TIER_CAP_NSEC },
	};
	size_t	 i;
	int	 t, wfs = 11;

	for (t = 0; t < dfs.ntiers; t++)
		if ((int)strlen(dfs.tiers[t].fstype) > wfs)
			wfs = strlen(dfs.tiers[t].fstype);
	ctl_buf_printf(b, "%-*s  %-*s", wname, "TIER", wfs, "FILE SYSTEM");
	for (i = 0; i < sizeof col / sizeof col[0]; i++)
		ctl_buf_printf(b, "  %s", col[i].head);
	ctl_buf_printf(b, "  INODES\n");
	for (t = 0; t < dfs.ntiers; t++) {
		ctl_buf_text(b, dfs.tiers[t].name, wname);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, dfs.tiers[t].fstype, wfs);
		for (i = 0; i < sizeof col / sizeof col[0]; i++)
			ctl_buf_printf(b, "  %-*s", (int)strlen(col[i].head),
			    tier_has(t, col[i].cap) ? "yes" : "no");
		ctl_buf_printf(b, "  %s%s\n",
		    tier_has(t, TIER_CAP_STABLE_INO) ? "stable" : "unstable",
		    dfs.tiers[t].inodes_set ? " (config)" : "");
	}
}

static int
ctl_cmd_status(struct ctl_client *c, struct ctl_buf *b)
{
	struct tier_space	 sp[DFS_MAX_TIERS];
	struct scan_progress	 scan;
	struct mig_status	 mig;
	struct timespec		 now;
	uint64_t		 files[DFS_MAX_TIERS], bytes[DFS_MAX_TIERS];
	uint64_t		 need;
	char			 used[16], total[16], held[16];
	unsigned long		 nodes = node_count(), nconflicts;
	long			 up;
	int			 i, wname = 4, wpath = 4, haveconflicts;
	int			 haveusage, high, low;

	scan_progress(&scan);
	haveconflicts = index_conflict_count(&nconflicts) == 0;
	haveusage = index_tier_usage(dfs.ntiers, files, bytes) == 0;
	migrate_status(&mig);
	clock_gettime(CLOCK_MONOTONIC, &now);
	up = now.tv_sec - ctl_started.tv_sec;
	tier_space(sp, CTL_TIER_WAIT_MS);

	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"version\":");
		ctl_buf_json(b, PACKAGE_VERSION);
		ctl_buf_printf(b, ",\"uptime\":%ld,\"mountpoint\":", up);
		ctl_buf_json(b, dfs.mountpoint);
		ctl_buf_printf(b, ",\"config\":");
		ctl_buf_json(b, ctl_config_file);
		ctl_buf_printf(b, ",\"nodes\":%lu,\"index\":", nodes);
		ctl_buf_json(b, dfs.index_path);
		ctl_buf_printf(b, ",\"conflicts\":");
		if (haveconflicts)
			ctl_buf_printf(b, "%lu", nconflicts);
		else
			ctl_buf_printf(b, "null");
		ctl_buf_printf(b, ",\"scan\":");
		ctl_scan_json(b, &scan);
		ctl_buf_printf(b, ",\"migration\":");
		ctl_runs(b, &mig, 1);
		ctl_buf_printf(b, ",\"tiers\":[");
		for (i = 0; i < dfs.ntiers; i++) {
			ctl_buf_printf(b, "%s{\"name\":", i == 0 ? "" : ",");
			ctl_buf_json(b, dfs.tiers[i].name);
			ctl_buf_printf(b, ",\"path\":");
			ctl_buf_json(b, dfs.tiers[i].path);
			ctl_buf_printf(b, ",\"answering\":%s",
			    sp[i].waiting >= 0 ? "false" : "true");
			if (sp[i].waiting >= 0)
				ctl_buf_printf(b, ",\"not_answering_for\":%ld",
				    sp[i].waiting);
			if (sp[i].error != 0) {
				ctl_buf_printf(b, ",\"error\":");
				ctl_buf_json(b, strerror(sp[i].error));
			} else if (!sp[i].known) {
				ctl_buf_printf(b, ",\"error\":\"not answering\"");
			} else {
				ctl_buf_printf(b, ",\"used\":%" PRIu64
				    ",\"available\":%" PRIu64 ",\"total\":%"
				    PRIu64 ",\"percent\":%d", sp[i].used,
				    sp[i].avail, sp[i].total, sp[i].percent);
				need = tier_min_free(i, sp[i].total);
				ctl_buf_printf(b, ",\"min_free\":%" PRIu64
				    ",\"room\":%s", need, sp[i].total == 0 ||
				    sp[i].avail > need ? "true" : "false");
			}
			if (haveusage)
				ctl_buf_printf(b, ",\"files\":%" PRIu64
				    ",\"bytes\":%" PRIu64, files[i], bytes[i]);
			else
				ctl_buf_printf(b, ",\"files\":null,"
				    "\"bytes\":null");
			if (migrate_watermarks(i, &high, &low))
				ctl_buf_printf(b, ",\"high_watermark\":%d,"
				    "\"low_watermark\":%d", high, low);
			else
				ctl_buf_printf(b, ",\"high_watermark\":null,"
				    "\"low_watermark\":null");
			ctl_tier_caps_json(b, i);
			ctl_buf_putc(b, '}');
		}
		ctl_buf_printf(b, "]}\n");
		return (DFS_STATUS_OK);
	}

	ctl_buf_printf(b, "dfs %s, up ", PACKAGE_VERSION);
	if (up >= 86400)
		ctl_buf_printf(b, "%ldd ", up / 86400);
	ctl_buf_printf(b, "%02ld:%02ld:%02ld\n", up % 86400 / 3600,
	    up % 3600 / 60, up % 60);
	ctl_buf_printf(b, "mount point  ");
	ctl_buf_text(b, dfs.mountpoint != NULL ? dfs.mountpoint : "-", 0);
	ctl_buf_printf(b, "\nconfig file  ");
	ctl_buf_text(b, ctl_config_file != NULL ? ctl_config_file : "none", 0);
	ctl_buf_printf(b, "\nnodes        %lu\nindex        ", nodes);
	ctl_buf_text(b, dfs.index_path != NULL ? dfs.index_path : "none", 0);
	ctl_buf_printf(b, "\nscan         ");
	ctl_scan_line(b, &scan);
	if (haveconflicts)
		ctl_buf_printf(b, "\nconflicts    %lu%s", nconflicts,
		    nconflicts != 0 ? " (dfsctl conflicts lists them)" : "");
	ctl_buf_printf(b, "\n\n");

	for (i = 0; i < dfs.ntiers; i++) {
		if ((int)strlen(dfs.tiers[i].name) > wname)
			wname = strlen(dfs.tiers[i].name);
		if ((int)strlen(dfs.tiers[i].path) > wpath)
			wpath = strlen(dfs.tiers[i].path);
	}
	ctl_buf_printf(b, "%-*s  %-*s  %7s  %7s  %4s  %8s  %7s  %s\n", wname,
	    "TIER", wpath, "PATH", "USED", "SIZE", "USE%", "FILES", "DATA",
	    "WATERMARKS");
	for (i = 0; i < dfs.ntiers; i++) {
		ctl_buf_text(b, dfs.tiers[i].name, wname);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, dfs.tiers[i].path, wpath);
		if (sp[i].waiting >= 0) {
			ctl_buf_printf(b, "  not answering for %ld s\n",
			    sp[i].waiting);
			continue;
		}
		if (sp[i].error != 0) {
			ctl_buf_printf(b, "  %s\n", strerror(sp[i].error));
			continue;
		}
		ctl_size(used, sizeof used, sp[i].used);
		ctl_size(total, sizeof total, sp[i].total);
		ctl_buf_printf(b, "  %7s  %7s  %3d%%", used, total,
		    sp[i].percent);
		if (haveusage) {
			ctl_size(held, sizeof held, bytes[i]);
			ctl_buf_printf(b, "  %8" PRIu64 "  %7s", files[i],
			    held);
		} else
			ctl_buf_printf(b, "  %8s  %7s", "-", "-");
		/* Usage against the watermarks that trigger a run. */
		if (migrate_watermarks(i, &high, &low))
			ctl_buf_printf(b, "  high %d%%, low %d%%%s", high,
			    low, sp[i].percent > high ? " (over)" : "");
		else
			ctl_buf_printf(b, "  -");
		/* New files are going elsewhere: say why. */
		need = tier_min_free(i, sp[i].total);
		if (sp[i].total != 0 && sp[i].avail <= need)
			ctl_buf_printf(b, "  (short of min_free, new files go "
			    "to the next tier)");
		ctl_buf_putc(b, '\n');
	}
	ctl_buf_putc(b, '\n');
	ctl_tier_caps_text(b, wname);
	ctl_buf_putc(b, '\n');
	ctl_runs(b, &mig, 0);
	return (DFS_STATUS_OK);
}

static int
ctl_cmd_reload(struct ctl_client *c, struct ctl_buf *b)
{
	char	*cause = NULL;

	log_info("reload requested by uid %ld (pid %ld)", (long)c->uid,
	    (long)c->pid);
	if (ctl_reload_hook == NULL) {
		ctl_buf_printf(b, "reload is not available");
		return (DFS_STATUS_FAILED);
	}
	if (ctl_reload_hook(&cause) != 0) {
		ctl_buf_printf(b, "%s", cause != NULL ? cause :
		    "reload failed");
		free(cause);
		return (DFS_STATUS_FAILED);
	}
	free(cause);
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"reloaded\":true,\"config\":");
		ctl_buf_json(b, ctl_config_file);
		ctl_buf_printf(b, "}\n");
	} else {
		ctl_buf_printf(b, "reloaded ");
		ctl_buf_text(b, ctl_config_file != NULL ? ctl_config_file :
		    "the configuration", 0);
		ctl_buf_putc(b, '\n');
	}
	return (DFS_STATUS_OK);
}

static uint64_t
ctl_counter(int t, size_t i)
{
	atomic_uint_fast64_t	*p;

	p = (atomic_uint_fast64_t *)((char *)&dfs.tiers[t].stats +
	    ctl_counters[i].off);
	return (atomic_load_explicit(p, memory_order_relaxed));
}

static int
ctl_cmd_stats(struct ctl_client *c, struct ctl_buf *b)
{
	uint64_t	v[DFS_MAX_TIERS][CTL_NCOUNTERS];
	size_t		i, f;
	int		t, w = 8;

	for (t = 0; t < dfs.ntiers; t++) {
		for (i = 0; i < CTL_NCOUNTERS; i++)
			v[t][i] = ctl_counter(t, i);
	}

	if (c->hdr.flags & DFS_FLAG_PROMETHEUS) {
		for (f = 0; f < sizeof ctl_families / sizeof ctl_families[0];
		    f++) {
			ctl_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n",
			    ctl_families[f].metric, ctl_families[f].help,
			    ctl_families[f].metric);
			for (t = 0; t < dfs.ntiers; t++) {
				for (i = 0; i < CTL_NCOUNTERS; i++) {
					if (ctl_counters[i].family !=
					    ctl_families[f].family)
						continue;
					ctl_buf_printf(b, "%s{tier=\"",
					    ctl_families[f].metric);
					ctl_buf_label(b, dfs.tiers[t].name);
					if (ctl_families[f].family ==
					    CTL_CALLS)
						ctl_buf_printf(b, "\",op=\"%s",
						    ctl_counters[i].name);
					ctl_buf_printf(b, "\"} %" PRIu64 "\n",
					    v[t][i]);
				}
			}
		}
		return (DFS_STATUS_OK);
	}

	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"tiers\":[");
		for (t = 0; t < dfs.ntiers; t++) {
			ctl_buf_printf(b, "%s{\"name\":", t == 0 ? "" : ",");
			ctl_buf_json(b, dfs.tiers[t].name);
			ctl_buf_printf(b, ",\"path\":");
			ctl_buf_json(b, dfs.tiers[t].path);
			for (i = 0; i < CTL_NCOUNTERS; i++) {
				ctl_buf_printf(b, ",\"%s\":%" PRIu64,
				    ctl_counters[i].name, v[t][i]);
			}
			ctl_buf_putc(b, '}');
		}
		ctl_buf_printf(b, "]}\n");
		return (DFS_STATUS_OK);
	}

	/* A column per tier. */
	for (t = 0; t < dfs.ntiers; t++) {
		if ((int)strlen(dfs.tiers[t].name) > w)
			w = strlen(dfs.tiers[t].name);
	}
	ctl_buf_printf(b, "%-13s", "");
	for (t = 0; t < dfs.ntiers; t++) {
		ctl_buf_printf(b, "  %*s", w - (int)strlen(dfs.tiers[t].name),
		    "");
		ctl_buf_text(b, dfs.tiers[t].name, 0);
	}
	ctl_buf_putc(b, '\n');
	for (i = 0; i < CTL_NCOUNTERS; i++) {
		ctl_buf_printf(b, "%-13s", ctl_counters[i].name);
		for (t = 0; t < dfs.ntiers; t++)
			ctl_buf_printf(b, "  %*" PRIu64, w, v[t][i]);
		ctl_buf_putc(b, '\n');
	}
	return (DFS_STATUS_OK);
}

/* --- the index: scans, where, conflicts --------------------------------- */

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

static void
ctl_time(char *buf, size_t len, long t)
{
	struct tm	tm;
	time_t		tt = t;

	if (t == 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
}

static void
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
static void
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

static int
ctl_cmd_scan(struct ctl_client *c, struct ctl_buf *b)
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

static int
ctl_cmd_scan_status(struct ctl_client *c, struct ctl_buf *b)
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

/* The tiers of a row as names, "fast,slow" or a JSON array. */
static void
ctl_tier_names(struct ctl_buf *b, unsigned mask, int json)
{
	int	t, n = 0;

	if (json)
		ctl_buf_putc(b, '[');
	for (t = 0; t < dfs.ntiers; t++) {
		if (!(mask & (1u << t)))
			continue;
		if (n++ != 0)
			ctl_buf_putc(b, ',');
		if (json)
			ctl_buf_json(b, dfs.tiers[t].name);
		else
			ctl_buf_text(b, dfs.tiers[t].name, 0);
	}
	if (json)
		ctl_buf_putc(b, ']');
	else if (n == 0)
		ctl_buf_putc(b, '-');
}

static unsigned
ctl_row_tiers(const struct irow *r)
{
	if (r->type == S_IFDIR && r->tiers != 0)
		return (r->tiers);
	return (r->tier >= 0 && r->tier < DFS_MAX_TIERS ? 1u << r->tier : 0);
}

static const char *
ctl_type(unsigned type)
{
	switch (type) {
	case S_IFDIR:
		return ("directory");
	case S_IFREG:
		return ("file");
	case S_IFLNK:
		return ("symlink");
	default:
		return ("special");
	}
}

/*
 * The path below the mount point that path names: an absolute path must
 * be the mount point or beneath it; a relative one is taken from the mount
 * point.  NULL if it is outside.
 */
static const char *
ctl_strip_mount(const char *path)
{
	const char	*m, *p = path, *mc, *pc;
	size_t		 ml, pl;

	if (*path != '/')
		return (path);
	m = dfs.mountpoint != NULL ? dfs.mountpoint : "/";
	while ((mc = index_component(&m, &ml)) != NULL) {
		if (ml == 1 && *mc == '.')
			continue;
		do {
			pc = index_component(&p, &pl);
		} while (pc != NULL && pl == 1 && *pc == '.');
		if (pc == NULL || pl != ml || memcmp(pc, mc, ml) != 0)
			return (NULL);
	}
	return (p);
}

static int
ctl_cmd_where(struct ctl_client *c, struct ctl_buf *b)
{
	struct irow	 r;
	const char	*rel, *e;
	char		*path;
	int		 rv;

	if (memchr(c->payload, '\0', c->hdr.length) != NULL) {
		ctl_buf_printf(b, "where: the path contains a NUL byte");
		return (DFS_STATUS_FAILED);
	}
	if ((path = strndup(c->payload, c->hdr.length)) == NULL) {
		b->nomem = 1;
		return (DFS_STATUS_FAILED);
	}
	if (!index_is_open()) {
		ctl_buf_printf(b, "where: dfs has no index");
		rv = DFS_STATUS_FAILED;
		goto out;
	}
	if ((rel = ctl_strip_mount(path)) == NULL) {
		ctl_buf_text(b, path, 0);
		ctl_buf_printf(b, ": not under the mount point ");
		ctl_buf_text(b, dfs.mountpoint != NULL ? dfs.mountpoint : "/",
		    0);
		rv = DFS_STATUS_FAILED;
		goto out;
	}
	if ((rv = index_resolve(rel, &r)) != 0) {
		ctl_buf_text(b, path, 0);
		if (rv == -ENOENT)
			ctl_buf_printf(b, ": not in the index");
		else {
			e = strerror(-rv);
			ctl_buf_printf(b, ": %c%s", tolower((unsigned char)*e),
			    e + 1);
		}
		if (rv == -ENOENT && !index_is_scanned())
			ctl_buf_printf(b, " (no full scan has completed yet)");
		rv = DFS_STATUS_FAILED;
		goto out;
	}
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"path\":");
		ctl_buf_json(b, path);
		ctl_buf_printf(b, ",\"inode\":%llu,\"type\":\"%s\",\"tiers\":",
		    (unsigned long long)r.id, ctl_type(r.type));
		ctl_tier_names(b, ctl_row_tiers(&r), 1);
		ctl_buf_printf(b, "}\n");
	} else {
		ctl_buf_text(b, path, 0);
		ctl_buf_printf(b, "  ");
		ctl_tier_names(b, ctl_row_tiers(&r), 0);
		ctl_buf_putc(b, '\n');
	}
	rv = DFS_STATUS_OK;
out:
	free(path);
	return (rv);
}

/*
 * The path of name in directory parent as the mount shows it, walking
 * the index up the parents; "?" stands for a part it cannot name.
 */
static void
ctl_index_path(struct ctl_buf *b, fuse_ino_t parent, const char *name)
{
	char		**names = NULL, **nn;
	char		  buf[NAME_MAX + 1];
	fuse_ino_t	  id = parent, up;
	size_t		  n = 0, cap = 0, i;
	int		  unknown = 0;

	while (id != FUSE_ROOT_ID) {
		if (n == 4096 || index_name(id, &up, buf, sizeof buf) != 0) {
			unknown = 1;
			break;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nn = realloc(names, cap * sizeof *names)) ==
			    NULL) {
				b->nomem = 1;
				break;
			}
			names = nn;
		}
		if ((names[n] = strdup(buf)) == NULL) {
			b->nomem = 1;
			break;
		}
		n++;
		id = up;
	}
	ctl_buf_printf(b, "%s", dfs.mountpoint != NULL &&
	    strcmp(dfs.mountpoint, "/") != 0 ? dfs.mountpoint : "");
	if (unknown)
		ctl_buf_printf(b, "/?");
	for (i = n; i > 0; i--) {
		ctl_buf_printf(b, "/%s", names[i - 1]);
		free(names[i - 1]);
	}
	free(names);
	ctl_buf_printf(b, "/%s", name);
}

/* Room kept for the end of a conflicts reply that was cut short. */
#define CTL_TAIL	4096

static int
ctl_cmd_conflicts(struct ctl_client *c, struct ctl_buf *b)
{
	struct index_conflict	*v;
	struct ctl_buf		 pb;
	struct irow		 r;
	size_t			 n, i;
	int			 json = c->hdr.flags & DFS_FLAG_JSON, rv;

	if ((rv = index_conflicts(&v, &n)) != 0) {
		ctl_buf_printf(b, "conflicts: %s", rv == -ENXIO ?
		    "dfs has no index" : strerror(-rv));
		return (DFS_STATUS_FAILED);
	}
	memset(&pb, 0, sizeof pb);
	if (json)
		ctl_buf_printf(b, "{\"conflicts\":[");
	for (i = 0; i < n && !b->nomem; i++) {
		if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
			break;
		pb.len = 0;
		ctl_index_path(&pb, v[i].parent, v[i].name);
		if (pb.nomem) {
			b->nomem = 1;
			break;
		}
		if (index_lookup(v[i].parent, v[i].name, &r) != 0)
			memset(&r, 0, sizeof r);
		if (json) {
			ctl_buf_printf(b, "%s{\"path\":", i == 0 ? "" : ",");
			ctl_buf_json(b, pb.s);
			ctl_buf_printf(b, ",\"served\":");
			if (r.id != 0)
				ctl_tier_names(b, ctl_row_tiers(&r), 1);
			else
				ctl_buf_printf(b, "null");
			ctl_buf_printf(b, ",\"shadowed\":");
			ctl_tier_names(b, v[i].tiers, 1);
			ctl_buf_putc(b, '}');
		} else {
			ctl_buf_text(b, pb.s, 0);
			ctl_buf_printf(b, "  ");
			if (r.id != 0)
				ctl_tier_names(b, ctl_row_tiers(&r), 0);
			else
				ctl_buf_putc(b, '-');
			ctl_buf_printf(b, "  shadowed on ");
			ctl_tier_names(b, v[i].tiers, 0);
			ctl_buf_putc(b, '\n');
		}
	}
	if (json)
		ctl_buf_printf(b, "],\"total\":%zu,\"truncated\":%s}\n", n,
		    i < n ? "true" : "false");
	else if (n == 0)
		ctl_buf_printf(b, "no conflicts\n");
	else if (i < n)
		ctl_buf_printf(b, "... and %zu more\n", n - i);
	free(pb.s);
	index_conflicts_free(v, n);
	return (DFS_STATUS_OK);
}

/* --- migration: runs, plans, explain, pins ------------------------------ */

/* A duration as "200d", "5h", "30m" or "12s". */
static void
ctl_age(char *buf, size_t len, int64_t s)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s >= 2 * 86400)
		snprintf(buf, len, "%lldd", (long long)(s / 86400));
	else if (s >= 2 * 3600)
		snprintf(buf, len, "%lldh", (long long)(s / 3600));
	else if (s >= 2 * 60)
		snprintf(buf, len, "%lldm", (long long)(s / 60));
	else
		snprintf(buf, len, "%llds", (long long)s);
}

static const char *
ctl_tier_name(int t)
{
	return (t >= 0 && t < dfs.ntiers ? dfs.tiers[t].name : "-");
}

/* A path from the mount root ("/a/b") as the mount shows it. */
static void
ctl_mount_path(struct ctl_buf *b, const char *rel)
{
	const char	*m = dfs.mountpoint;

	if (m == NULL || strcmp(m, "/") == 0)
		ctl_buf_printf(b, "%s", rel);
	else if (strcmp(rel, "/") == 0)
		ctl_buf_printf(b, "%s", m);
	else
		ctl_buf_printf(b, "%s%s", m, rel);
}

/*
 * The index row of a path a client gave, and its canonical path from the
 * mount root in rel (PATH_MAX bytes).  0, or -1 with the reason in b.
 */
static int
ctl_lookup(struct ctl_buf *b, const char *path, struct irow *r, char *rel)
{
	const char	*sub, *e;
	int		 rv;

	if ((sub = ctl_strip_mount(path)) == NULL) {
		ctl_buf_text(b, path, 0);
		ctl_buf_printf(b, ": not under the mount point ");
		ctl_buf_text(b, dfs.mountpoint != NULL ? dfs.mountpoint : "/",
		    0);
		return (-1);
	}
	if ((rv = index_resolve(sub, r)) == 0)
		rv = index_path(r->id, rel, PATH_MAX);
	if (rv != 0) {
		ctl_buf_text(b, path, 0);
		if (rv == -ENOENT)
			ctl_buf_printf(b, ": not in the index");
		else {
			e = strerror(-rv);
			ctl_buf_printf(b, ": %c%s", tolower((unsigned char)*e),
			    e + 1);
		}
		if (rv == -ENOENT && !index_is_scanned())
			ctl_buf_printf(b, " (no full scan has completed yet)");
		return (-1);
	}
	return (0);
}

/* Runs and plans see only what the index holds. */
static void
ctl_unscanned(struct ctl_buf *b)
{
	if (!index_is_scanned())
		ctl_buf_printf(b, "note: no full scan has completed yet; files "
		    "not in the index yet are not considered\n");
}

/* The one path of a request (no NUL), malloc'd; NULL with b filled. */
static char *
ctl_one_path(struct ctl_client *c, struct ctl_buf *b, const char *what)
{
	char	*path;

	if (memchr(c->payload, '\0', c->hdr.length) != NULL) {
		ctl_buf_printf(b, "%s: the path contains a NUL byte", what);
		return (NULL);
	}
	if (!index_is_open()) {
		ctl_buf_printf(b, "%s: dfs has no index", what);
		return (NULL);
	}
	if ((path = strndup(c->payload, c->hdr.length)) == NULL)
		b->nomem = 1;
	return (path);
}

/* The paths of a request, resolved. */
struct ctl_paths {
	size_t		 n;
	const char	**given;	/* into the payload */
	char		**rel;		/* canonical, from the mount root */
	struct irow	*rows;
};

static void
ctl_paths_free(struct ctl_paths *p)
{
	size_t	i;

	for (i = 0; i < p->n; i++)
		free(p->rel[i]);
	free(p->given);
	free(p->rel);
	free(p->rows);
	memset(p, 0, sizeof *p);
}

/*
 * A path list (each path ended by a NUL), every path in the index; files
 * only if files is set.  0, or -1 with the reason in b.
 */
static int
ctl_paths_at(struct ctl_client *c, struct ctl_buf *b, const char *what,
    int files, size_t skip, struct ctl_paths *p)
{
	const char	*s = c->payload + skip, *end = c->payload + c->hdr.length;
	size_t		 n = 0, i, len;

	memset(p, 0, sizeof *p);
	if (c->hdr.length > skip && end[-1] != '\0') {
		ctl_buf_printf(b, "%s: the path list does not end with a NUL",
		    what);
		return (-1);
	}
	for (; s < end; s += len + 1) {
		if ((len = strlen(s)) == 0) {
			ctl_buf_printf(b, "%s: an empty path", what);
			return (-1);
		}
		n++;
	}
	if (!index_is_open()) {
		ctl_buf_printf(b, "%s: dfs has no index", what);
		return (-1);
	}
	if (n == 0)
		return (0);
	if ((p->given = calloc(n, sizeof *p->given)) == NULL ||
	    (p->rel = calloc(n, sizeof *p->rel)) == NULL ||
	    (p->rows = calloc(n, sizeof *p->rows)) == NULL) {
		ctl_paths_free(p);
		b->nomem = 1;
		return (-1);
	}
	for (s = c->payload + skip, i = 0; i < n; s += strlen(s) + 1, i++) {
		p->given[i] = s;
		if ((p->rel[i] = malloc(PATH_MAX)) == NULL) {
			b->nomem = 1;
			break;
		}
		p->n = i + 1;
		if (ctl_lookup(b, s, &p->rows[i], p->rel[i]) != 0)
			break;
		if (files && p->rows[i].type != S_IFREG) {
			ctl_buf_text(b, s, 0);
			ctl_buf_printf(b, ": a %s; only files migrate",
			    ctl_type(p->rows[i].type));
			break;
		}
	}
	if (i < n) {
		ctl_paths_free(p);
		return (-1);
	}
	return (0);
}

static int
ctl_paths(struct ctl_client *c, struct ctl_buf *b, const char *what,
    int files, struct ctl_paths *p)
{
	return (ctl_paths_at(c, b, what, files, 0, p));
}

static void
ctl_run_json(struct ctl_buf *b, const struct mig_run *r, const char *state)
{
	double	secs;
	int	i, n = 0;

	secs = strcmp(state, "running") == 0 ? difftime(time(NULL),
	    r->started) : r->seconds;
	ctl_buf_printf(b, "{\"run\":%lu,\"state\":\"%s\",\"trigger\":",
	    r->seq, state);
	ctl_buf_json(b, r->trigger);
	ctl_buf_printf(b, ",\"started\":%lld,\"seconds\":%.3f,\"files\":%lu,"
	    "\"bytes\":%" PRIu64 ",\"rate\":", (long long)r->started, secs,
	    r->files, r->bytes);
	if (secs > 0)
		ctl_buf_printf(b, "%.0f", r->bytes / secs);
	else
		ctl_buf_printf(b, "null");
	ctl_buf_printf(b, ",\"skipped\":{");
	for (i = 1; i < MIG_SKIP_MAX; i++) {
		if (r->skipped[i] == 0)
			continue;
		ctl_buf_printf(b, "%s", n++ == 0 ? "" : ",");
		ctl_buf_json(b, migrate_skip_name(i));
		ctl_buf_printf(b, ":%lu", r->skipped[i]);
	}
	ctl_buf_printf(b, "},\"errors\":%lu,\"last_error\":", r->errors);
	ctl_buf_json(b, r->errors != 0 && r->last_error[0] != '\0' ?
	    r->last_error : NULL);
	ctl_buf_putc(b, '}');
}

static unsigned long
ctl_skipped(const struct mig_run *r)
{
	unsigned long	n = 0;
	int		i;

	for (i = 1; i < MIG_SKIP_MAX; i++)
		n += r->skipped[i];
	return (n);
}

/* "pinned 2, hard links 1", or "-". */
static void
ctl_skip_text(struct ctl_buf *b, const struct mig_run *r)
{
	int	i, n = 0;

	for (i = 1; i < MIG_SKIP_MAX; i++) {
		if (r->skipped[i] == 0)
			continue;
		ctl_buf_printf(b, "%s%s %lu", n++ == 0 ? "" : ", ",
		    migrate_skip_name(i), r->skipped[i]);
	}
	if (n == 0)
		ctl_buf_putc(b, '-');
}

/* One run, several lines: the outcome dfsctl migrate --wait shows. */
static void
ctl_run_text(struct ctl_buf *b, const struct mig_run *r, const char *state)
{
	char	t[32], size[16], rate[16];
	double	secs;

	secs = strcmp(state, "running") == 0 ? difftime(time(NULL),
	    r->started) : r->seconds;
	ctl_time(t, sizeof t, r->started);
	ctl_size(size, sizeof size, r->bytes);
	ctl_buf_printf(b, "run %lu (", r->seq);
	ctl_buf_text(b, r->trigger, 0);
	ctl_buf_printf(b, "): %s", state);
	if (strcmp(state, "done") == 0)
		ctl_buf_printf(b, " in %.2f s", secs);
	ctl_buf_printf(b, "\nstarted   %s\nmoved     %lu file%s, %s", t,
	    r->files, r->files == 1 ? "" : "s", size);
	if (secs > 0 && r->bytes > 0) {
		ctl_size(rate, sizeof rate, (uint64_t)(r->bytes / secs));
		ctl_buf_printf(b, " (%s/s)", rate);
	}
	ctl_buf_printf(b, "\nskipped   %lu", ctl_skipped(r));
	if (ctl_skipped(r) != 0) {
		ctl_buf_printf(b, ": ");
		ctl_skip_text(b, r);
	}
	ctl_buf_printf(b, "\nerrors    %lu", r->errors);
	if (r->errors != 0 && r->last_error[0] != '\0') {
		ctl_buf_printf(b, "; last: ");
		ctl_buf_text(b, r->last_error, 0);
	}
	ctl_buf_putc(b, '\n');
}

/* The running run and the last ones: JSON, or a table. */
static void
ctl_runs(struct ctl_buf *b, const struct mig_status *s, int json)
{
	const struct mig_run	*r;
	char			 t[32], size[16];
	size_t			 i;

	if (json) {
		ctl_buf_printf(b, "{\"running\":%s,\"current\":",
		    s->running ? "true" : "false");
		if (s->running)
			ctl_run_json(b, &s->current, "running");
		else
			ctl_buf_printf(b, "null");
		ctl_buf_printf(b, ",\"runs\":[");
		for (i = 0; i < s->nruns; i++) {
			ctl_buf_printf(b, "%s", i == 0 ? "" : ",");
			ctl_run_json(b, &s->runs[i], "done");
		}
		ctl_buf_printf(b, "]}");
		return;
	}
	if (s->running) {
		ctl_size(size, sizeof size, s->current.bytes);
		ctl_buf_printf(b, "migration    running: run %lu (",
		    s->current.seq);
		ctl_buf_text(b, s->current.trigger, 0);
		ctl_buf_printf(b, ") for %.0f s, %lu files, %s so far\n",
		    difftime(time(NULL), s->current.started),
		    s->current.files, size);
	} else
		ctl_buf_printf(b, "migration    idle%s\n", s->nruns == 0 ?
		    ", no run yet" : "");
	if (s->nruns == 0)
		return;
	ctl_buf_printf(b, "%4s  %-19s  %8s  %-9s  %6s  %7s  %6s  %s\n", "RUN",
	    "STARTED", "SECONDS", "TRIGGER", "FILES", "DATA", "ERRORS",
	    "SKIPPED");
	for (i = 0; i < s->nruns; i++) {
		r = &s->runs[i];
		ctl_time(t, sizeof t, r->started);
		ctl_size(size, sizeof size, r->bytes);
		ctl_buf_printf(b, "%4lu  %-19s  %8.2f  ", r->seq, t,
		    r->seconds);
		ctl_buf_text(b, r->trigger, 9);
		ctl_buf_printf(b, "  %6lu  %7s  %6lu  ", r->files, size,
		    r->errors);
		ctl_skip_text(b, r);
		ctl_buf_putc(b, '\n');
		if (r->errors != 0 && r->last_error[0] != '\0') {
			ctl_buf_printf(b, "      last error: ");
			ctl_buf_text(b, r->last_error, 0);
			ctl_buf_putc(b, '\n');
		}
	}
}

static int
ctl_cmd_migrate(struct ctl_client *c, struct ctl_buf *b)
{
	struct ctl_paths	 p;
	unsigned long		 seq;

	if (ctl_paths(c, b, "migrate", 1, &p) != 0)
		return (DFS_STATUS_FAILED);
	seq = migrate_kick((const char *const *)p.rel, p.n);
	log_info("migration run %lu requested by uid %ld (pid %ld), %zu "
	    "paths", seq, (long)c->uid, (long)c->pid, p.n);
	if (c->hdr.flags & DFS_FLAG_JSON)
		ctl_buf_printf(b, "{\"run\":%lu,\"paths\":%zu,\"indexed\":%s}\n",
		    seq, p.n, index_is_scanned() ? "true" : "false");
	else {
		ctl_buf_printf(b, "migration run %lu started\n", seq);
		ctl_unscanned(b);
	}
	ctl_paths_free(&p);
	return (DFS_STATUS_OK);
}

static int
ctl_cmd_migrate_status(struct ctl_client *c, struct ctl_buf *b)
{
	struct mig_status	 s;
	const struct mig_run	*r = NULL;
	const char		*state;
	uint64_t		 want;
	size_t			 i;

	memcpy(&want, c->payload, sizeof want);
	migrate_status(&s);
	if (want == 0) {
		ctl_runs(b, &s, c->hdr.flags & DFS_FLAG_JSON);
		if (c->hdr.flags & DFS_FLAG_JSON)
			ctl_buf_putc(b, '\n');
		return (DFS_STATUS_OK);
	}
	if (s.running && s.current.seq == want) {
		r = &s.current;
		state = "running";
	} else {
		for (i = 0; i < s.nruns && s.runs[i].seq != want; i++)
			;
		if (i < s.nruns) {
			r = &s.runs[i];
			state = "done";
		} else
			state = want > s.seq ? "pending" : "forgotten";
	}
	if (c->hdr.flags & DFS_FLAG_JSON) {
		if (r != NULL)
			ctl_run_json(b, r, state);
		else
			ctl_buf_printf(b, "{\"run\":%" PRIu64 ",\"state\":"
			    "\"%s\"}", want, state);
		ctl_buf_putc(b, '\n');
	} else if (r != NULL)
		ctl_run_text(b, r, state);
	else
		ctl_buf_printf(b, "run %" PRIu64 ": %s\n", want,
		    strcmp(state, "pending") == 0 ? "not started yet" :
		    "no longer recorded");
	return (DFS_STATUS_OK);
}

/* What a dry run found, kept to render it in columns. */
struct ctl_plan_item {
	char		*path;		/* as the mount shows it */
	char		 policy[64];
	char		 why[256];
	fuse_ino_t	 id;
	int		 from;
	int		 to;
	int		 skip;		/* < 0: would move */
	int64_t		 size;
	int64_t		 age;
};

#define CTL_PLAN_MAX	20000	/* items kept of each kind */

struct ctl_plan {
	struct ctl_plan_item	*v;
	size_t			 n;
	size_t			 cap;
	unsigned long		 moves;		/* counted, kept or not */
	unsigned long		 left;
	uint64_t		 bytes;		/* of the moves */
	unsigned long		 dropped;
	int			 nomem;
	const struct ctl_paths	*paths;
	unsigned char		*seen;		/* per path: an item named it */
};

static int
ctl_plan_add(struct ctl_plan *pl, const struct mig_item *it)
{
	struct ctl_plan_item	*e, *nv;
	struct ctl_buf		 pb;
	size_t			 cap;

	if (pl->n == pl->cap) {
		cap = pl->cap == 0 ? 64 : pl->cap * 2;
		if ((nv = realloc(pl->v, cap * sizeof *nv)) == NULL) {
			pl->nomem = 1;
			return (-1);
		}
		pl->v = nv;
		pl->cap = cap;
	}
	memset(&pb, 0, sizeof pb);
	ctl_mount_path(&pb, it->path);
	if (pb.nomem) {
		free(pb.s);
		pl->nomem = 1;
		return (-1);
	}
	e = &pl->v[pl->n++];
	e->path = pb.s;
	snprintf(e->policy, sizeof e->policy, "%s", it->policy);
	snprintf(e->why, sizeof e->why, "%s", it->why);
	e->id = it->id;
	e->from = it->from;
	e->to = it->to;
	e->skip = it->skip;
	e->size = it->size;
	e->age = it->age;
	return (0);
}

static int
ctl_plan_cb(void *arg, const struct mig_item *it)
{
	struct ctl_plan	*pl = arg;
	size_t		 i;

	if (pl->paths != NULL) {
		for (i = 0; i < pl->paths->n; i++)
			if (pl->paths->rows[i].id == it->id)
				pl->seen[i] = 1;
	}
	if (it->skip < 0) {
		pl->moves++;
		pl->bytes += it->size;
		if (pl->moves > CTL_PLAN_MAX) {
			pl->dropped++;
			return (0);
		}
	} else if (++pl->left > CTL_PLAN_MAX) {
		pl->dropped++;
		return (0);
	}
	if (!pl->nomem)
		ctl_plan_add(pl, it);
	return (0);
}

static void
ctl_plan_free(struct ctl_plan *pl)
{
	size_t	i;

	for (i = 0; i < pl->n; i++)
		free(pl->v[i].path);
	free(pl->v);
	free(pl->seen);
}

static int
ctl_width(int w, const char *s)
{
	return ((int)strlen(s) > w ? (int)strlen(s) : w);
}

static void
ctl_plan_json(struct ctl_buf *b, const struct ctl_plan *pl)
{
	const struct ctl_plan_item	*e;
	size_t				 i;
	int				 moves, n = 0;

	ctl_buf_printf(b, "{\"indexed\":%s,\"files\":%lu,\"bytes\":%" PRIu64
	    ",\"left_count\":%lu,\"truncated\":%s", index_is_scanned() ?
	    "true" : "false", pl->moves, pl->bytes, pl->left,
	    pl->dropped != 0 || b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD ?
	    "true" : "false");
	for (moves = 1; moves >= 0; moves--) {
		ctl_buf_printf(b, moves ? ",\"moves\":[" : "],\"left\":[");
		n = 0;
		for (i = 0; i < pl->n; i++) {
			e = &pl->v[i];
			if ((e->skip < 0) != moves)
				continue;
			if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
				break;
			ctl_buf_printf(b, "%s{\"path\":", n++ == 0 ? "" : ",");
			ctl_buf_json(b, e->path);
			ctl_buf_printf(b, ",\"inode\":%llu,\"policy\":",
			    (unsigned long long)e->id);
			ctl_buf_json(b, e->policy[0] != '\0' ? e->policy :
			    NULL);
			ctl_buf_printf(b, ",\"from\":");
			ctl_buf_json(b, e->from >= 0 ? ctl_tier_name(e->from) :
			    NULL);
			ctl_buf_printf(b, ",\"to\":");
			ctl_buf_json(b, e->to >= 0 ? ctl_tier_name(e->to) :
			    NULL);
			ctl_buf_printf(b, ",\"age\":%lld,\"size\":%lld",
			    (long long)e->age, (long long)e->size);
			if (!moves) {
				ctl_buf_printf(b, ",\"reason\":");
				ctl_buf_json(b, e->skip > 0 ?
				    migrate_skip_name(e->skip) : "no policy");
			}
			ctl_buf_printf(b, ",\"why\":");
			ctl_buf_json(b, e->why);
			ctl_buf_putc(b, '}');
		}
	}
	ctl_buf_printf(b, "]}\n");
}

static void
ctl_plan_text(struct ctl_buf *b, const struct ctl_plan *pl)
{
	const struct ctl_plan_item	*e;
	char				 size[16], age[24], total[16];
	size_t				 i;
	int				 wp = 6, wf = 4, wt = 2, wr = 6;

	for (i = 0; i < pl->n; i++) {
		e = &pl->v[i];
		wp = ctl_width(wp, e->policy);
		if (e->skip < 0) {
			wf = ctl_width(wf, ctl_tier_name(e->from));
			wt = ctl_width(wt, ctl_tier_name(e->to));
		} else
			wr = ctl_width(wr, e->skip > 0 ?
			    migrate_skip_name(e->skip) : "no policy");
	}
	ctl_size(total, sizeof total, pl->bytes);
	if (pl->moves == 0)
		ctl_buf_printf(b, "nothing to move\n");
	else {
		ctl_buf_printf(b, "would move %lu file%s, %s:\n", pl->moves,
		    pl->moves == 1 ? "" : "s", total);
		ctl_buf_printf(b, "%-*s  %-*s    %-*s  %6s  %7s  %s\n", wp,
		    "POLICY", wf, "FROM", wt, "TO", "AGE", "SIZE", "PATH");
	}
	for (i = 0; i < pl->n; i++) {
		e = &pl->v[i];
		if (e->skip >= 0)
			continue;
		if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
			break;
		ctl_age(age, sizeof age, e->age);
		ctl_size(size, sizeof size, e->size);
		ctl_buf_text(b, e->policy, wp);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, ctl_tier_name(e->from), wf);
		ctl_buf_printf(b, " -> ");
		ctl_buf_text(b, ctl_tier_name(e->to), wt);
		ctl_buf_printf(b, "  %6s  %7s  ", age, size);
		ctl_buf_text(b, e->path, 0);
		ctl_buf_putc(b, '\n');
	}
	if (pl->left != 0) {
		ctl_buf_printf(b, "%swould leave %lu file%s:\n", pl->moves == 0 ?
		    "" : "\n", pl->left, pl->left == 1 ? "" : "s");
		ctl_buf_printf(b, "%-*s  %-*s  %s\n", wr, "REASON", wp,
		    "POLICY", "PATH (WHY)");
	}
	for (i = 0; i < pl->n; i++) {
		e = &pl->v[i];
		if (e->skip < 0)
			continue;
		if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
			break;
		ctl_buf_text(b, e->skip > 0 ? migrate_skip_name(e->skip) :
		    "no policy", wr);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, e->policy[0] != '\0' ? e->policy : "-", wp);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, e->path, 0);
		ctl_buf_printf(b, " (");
		ctl_buf_text(b, e->why, 0);
		ctl_buf_printf(b, ")\n");
	}
	if (pl->dropped != 0 || b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
		ctl_buf_printf(b, "(the list is cut short)\n");
	ctl_unscanned(b);
}

/*
 * The named files a plan did not meet (no policy takes them): each goes
 * to cb with the reason explain gives.
 */
static void
ctl_plan_named(const struct ctl_paths *p, const unsigned char *seen,
    int (*cb)(void *, const struct mig_item *), void *arg)
{
	struct mig_item	*it;
	const char	*text;
	char		*buf;
	size_t		 i, len;

	buf = malloc(PATH_MAX + 512);
	it = malloc(sizeof *it);
	for (i = 0; i < p->n && buf != NULL && it != NULL; i++) {
		if (seen[i])
			continue;
		memset(it, 0, sizeof *it);
		it->id = p->rows[i].id;
		it->from = p->rows[i].tier;
		it->to = -1;
		it->skip = 0;
		it->size = p->rows[i].size;
		it->age = time(NULL) - p->rows[i].mtime / 1000000000;
		snprintf(it->path, sizeof it->path, "%s", p->rel[i]);
		if (migrate_explain(p->rel[i], buf, PATH_MAX + 512) == 0) {
			len = strlen(p->rel[i]);
			text = buf;
			if (strncmp(buf, p->rel[i], len) == 0 &&
			    strncmp(buf + len, ": ", 2) == 0)
				text += len + 2;
			snprintf(it->why, sizeof it->why, "%s", text);
		}
		if (cb(arg, it) != 0)
			break;
	}
	free(it);
	free(buf);
}

static int
ctl_cmd_migrate_plan(struct ctl_client *c, struct ctl_buf *b)
{
	struct ctl_paths	 p;
	struct ctl_plan		 pl;

	if (ctl_paths(c, b, "migrate", 1, &p) != 0)
		return (DFS_STATUS_FAILED);
	memset(&pl, 0, sizeof pl);
	if (p.n > 0) {
		pl.paths = &p;
		if ((pl.seen = calloc(p.n, 1)) == NULL) {
			ctl_paths_free(&p);
			b->nomem = 1;
			return (DFS_STATUS_FAILED);
		}
	}
	migrate_plan((const char *const *)p.rel, p.n, 0, ctl_plan_cb, &pl);

	ctl_plan_named(&p, pl.seen, ctl_plan_cb, &pl);
	if (pl.nomem)
		b->nomem = 1;
	else if (c->hdr.flags & DFS_FLAG_JSON)
		ctl_plan_json(b, &pl);
	else
		ctl_plan_text(b, &pl);
	ctl_plan_free(&pl);
	ctl_paths_free(&p);
	return (DFS_STATUS_OK);
}

/*
 * A dry run that streams (DFS_CMD_MIGRATE_STREAM): one line per file as
 * the plan meets it, in frames of DFS_STATUS_MORE written by the worker
 * that runs the command, then the summary as the reply.  Nothing is kept
 * per file, so a plan over millions of files runs in constant memory.
 */
#define CTL_STREAM_CHUNK	(64U * 1024U)
#define CTL_STREAM_MS		200	/* longest a line waits for its frame */
#define CTL_STREAM_STALL_MS	30000	/* a client that reads nothing */
#define CTL_STREAM_SUMS		64

struct ctl_stream {
	struct ctl_client	*c;
	struct ctl_buf		 b;	/* header room, then lines not sent */
	int			 json;
	int			 broken;
	uint64_t		 sent;	/* ms, the last frame */
	unsigned long		 moves;
	unsigned long		 left;
	uint64_t		 bytes;
	struct {
		char		 policy[64];
		int		 from;
		int		 to;
		unsigned long	 files;
		uint64_t	 bytes;
	}			 sum[CTL_STREAM_SUMS];
	size_t			 nsum;
	const struct ctl_paths	*paths;
	unsigned char		*seen;
};

/* Write all of buf to the client, waiting while it reads; 0 or -1. */
static int
ctl_send_all(int fd, const char *buf, size_t len)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLOUT };
	ssize_t		n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (poll(&pfd, 1, CTL_STREAM_STALL_MS) != 1)
				return (-1);
			continue;
		}
		if (n == -1)
			return (-1);
		buf += n;
		len -= n;
	}
	return (0);
}

static void
ctl_stream_flush(struct ctl_stream *st)
{
	struct dfs_proto_hdr	h;
	size_t			hl = sizeof h;

	if (st->b.len <= hl || st->broken || st->b.nomem)
		return;
	memset(&h, 0, sizeof h);
	h.magic = DFS_PROTO_MAGIC;
	h.version = DFS_PROTO_VERSION;
	h.type = DFS_TYPE_REPLY;
	h.command = st->c->hdr.command;
	h.status = DFS_STATUS_MORE;
	h.length = st->b.len - hl;
	memcpy(st->b.s, &h, hl);
	if (ctl_send_all(st->c->fd, st->b.s, st->b.len) != 0) {
		st->broken = 1;
		st->c->closing = 1;
	}
	st->b.len = hl;
	st->sent = ctl_now();
}

static void
ctl_stream_sum(struct ctl_stream *st, const struct mig_item *it)
{
	size_t	i;

	for (i = 0; i < st->nsum; i++)
		if (st->sum[i].from == it->from && st->sum[i].to == it->to &&
		    strcmp(st->sum[i].policy, it->policy) == 0)
			break;
	if (i == st->nsum) {
		if (st->nsum == CTL_STREAM_SUMS)
			return;
		snprintf(st->sum[i].policy, sizeof st->sum[i].policy, "%s",
		    it->policy);
		st->sum[i].from = it->from;
		st->sum[i].to = it->to;
		st->sum[i].files = 0;
		st->sum[i].bytes = 0;
		st->nsum++;
	}
	st->sum[i].files++;
	st->sum[i].bytes += it->size;
}

static int
ctl_stream_cb(void *arg, const struct mig_item *it)
{
	struct ctl_stream	*st = arg;
	struct ctl_buf		*b = &st->b;
	struct ctl_buf		 pb;
	char			 age[32], size[32];
	const char		*reason;
	size_t			 i;

	if (st->paths != NULL)
		for (i = 0; i < st->paths->n; i++)
			if (st->paths->rows[i].id == it->id)
				st->seen[i] = 1;
	memset(&pb, 0, sizeof pb);
	ctl_mount_path(&pb, it->path);
	reason = it->skip > 0 ? migrate_skip_name(it->skip) : "no policy";
	if (it->skip < 0) {
		st->moves++;
		st->bytes += it->size;
		ctl_stream_sum(st, it);
	} else
		st->left++;
	if (st->json) {
		ctl_buf_printf(b, "{\"%s\":{\"path\":", it->skip < 0 ?
		    "move" : "stay");
		ctl_buf_json(b, pb.s != NULL ? pb.s : "");
		ctl_buf_printf(b, ",\"policy\":");
		ctl_buf_json(b, it->policy);
		if (it->skip < 0) {
			ctl_buf_printf(b, ",\"from\":");
			ctl_buf_json(b, ctl_tier_name(it->from));
			ctl_buf_printf(b, ",\"to\":");
			ctl_buf_json(b, ctl_tier_name(it->to));
			ctl_buf_printf(b, ",\"age\":%lld,\"size\":%lld}}\n",
			    (long long)it->age, (long long)it->size);
		} else {
			ctl_buf_printf(b, ",\"reason\":");
			ctl_buf_json(b, reason);
			ctl_buf_printf(b, ",\"why\":");
			ctl_buf_json(b, it->why);
			ctl_buf_printf(b, "}}\n");
		}
	} else if (it->skip < 0) {
		ctl_age(age, sizeof age, it->age);
		ctl_size(size, sizeof size, it->size);
		ctl_buf_printf(b, "move  ");
		ctl_buf_text(b, it->policy, 0);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, ctl_tier_name(it->from), 0);
		ctl_buf_printf(b, " -> ");
		ctl_buf_text(b, ctl_tier_name(it->to), 0);
		ctl_buf_printf(b, "  %s  %s  ", age, size);
		ctl_buf_text(b, pb.s != NULL ? pb.s : "", 0);
		ctl_buf_putc(b, '\n');
	} else {
		ctl_buf_printf(b, "stay  ");
		ctl_buf_text(b, reason, 0);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, it->policy[0] != '\0' ? it->policy : "-", 0);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, pb.s != NULL ? pb.s : "", 0);
		ctl_buf_printf(b, " (");
		ctl_buf_text(b, it->why, 0);
		ctl_buf_printf(b, ")\n");
	}
	free(pb.s);
	if (b->len >= CTL_STREAM_CHUNK ||
	    ctl_now() - st->sent >= CTL_STREAM_MS)
		ctl_stream_flush(st);
	return (st->broken || b->nomem);
}

static int
ctl_cmd_migrate_stream(struct ctl_client *c, struct ctl_buf *b)
{
	struct ctl_paths	 p;
	struct ctl_stream	*st;
	uint64_t		 limit;
	char			 size[32];
	size_t			 i;
	int			 json = (c->hdr.flags & DFS_FLAG_JSON) != 0;

	memcpy(&limit, c->payload, sizeof limit);
	if (ctl_paths_at(c, b, "migrate", 1, sizeof limit, &p) != 0)
		return (DFS_STATUS_FAILED);
	if ((st = calloc(1, sizeof *st)) == NULL ||
	    ctl_buf_grow(&st->b, sizeof (struct dfs_proto_hdr) +
	    CTL_STREAM_CHUNK + PATH_MAX + 1024) != 0) {
		free(st);
		ctl_paths_free(&p);
		b->nomem = 1;
		return (DFS_STATUS_FAILED);
	}
	st->c = c;
	st->json = json;
	st->b.len = sizeof (struct dfs_proto_hdr);
	st->sent = ctl_now();
	if (p.n > 0) {
		st->paths = &p;
		if ((st->seen = calloc(p.n, 1)) == NULL)
			st->b.nomem = 1;
	}
	if (!st->b.nomem)
		migrate_plan((const char *const *)p.rel, p.n, limit,
		    ctl_stream_cb, st);

	if (st->seen != NULL && !st->broken)
		ctl_plan_named(&p, st->seen, ctl_stream_cb, st);
	ctl_stream_flush(st);
	if (st->b.nomem)
		b->nomem = 1;
	else if (json) {
		ctl_buf_printf(b, "{\"files\":%lu,\"bytes\":%llu,\"left\":%lu,"
		    "\"limited\":%s,\"indexed\":%s,\"policies\":[", st->moves,
		    (unsigned long long)st->bytes, st->left, limit > 0 &&
		    st->moves >= limit ? "true" : "false", index_is_scanned() ?
		    "true" : "false");
		for (i = 0; i < st->nsum; i++) {
			ctl_buf_printf(b, "%s{\"policy\":", i == 0 ? "" : ",");
			ctl_buf_json(b, st->sum[i].policy);
			ctl_buf_printf(b, ",\"from\":");
			ctl_buf_json(b, ctl_tier_name(st->sum[i].from));
			ctl_buf_printf(b, ",\"to\":");
			ctl_buf_json(b, ctl_tier_name(st->sum[i].to));
			ctl_buf_printf(b, ",\"files\":%lu,\"bytes\":%llu}",
			    st->sum[i].files,
			    (unsigned long long)st->sum[i].bytes);
		}
		ctl_buf_printf(b, "]}\n");
	} else {
		ctl_size(size, sizeof size, st->bytes);
		ctl_buf_printf(b, "would move %lu file%s, %s%s; would leave "
		    "%lu\n", st->moves, st->moves == 1 ? "" : "s", size,
		    limit > 0 && st->moves >= limit ? " (--limit reached)" : "",
		    st->left);
		for (i = 0; i < st->nsum; i++) {
			ctl_size(size, sizeof size, st->sum[i].bytes);
			ctl_buf_printf(b, "  ");
			ctl_buf_text(b, st->sum[i].policy, 0);
			ctl_buf_printf(b, "  ");
			ctl_buf_text(b, ctl_tier_name(st->sum[i].from), 0);
			ctl_buf_printf(b, " -> ");
			ctl_buf_text(b, ctl_tier_name(st->sum[i].to), 0);
			ctl_buf_printf(b, "  %lu file%s, %s\n", st->sum[i].files,
			    st->sum[i].files == 1 ? "" : "s", size);
		}
		ctl_unscanned(b);
	}
	free(st->seen);
	free(st->b.s);
	free(st);
	ctl_paths_free(&p);
	return (DFS_STATUS_OK);
}

static int
ctl_cmd_explain(struct ctl_client *c, struct ctl_buf *b)
{
	struct irow	 r;
	const char	*text, *e;
	char		*path, rel[PATH_MAX], *buf = NULL;
	size_t		 len, blen = PATH_MAX + 512;
	int		 rv = DFS_STATUS_FAILED, err;

	if ((path = ctl_one_path(c, b, "explain")) == NULL)
		return (DFS_STATUS_FAILED);
	if (ctl_lookup(b, path, &r, rel) != 0)
		goto out;
	if ((buf = malloc(blen)) == NULL) {
		b->nomem = 1;
		goto out;
	}
	if ((err = migrate_explain(rel, buf, blen)) != 0) {
		ctl_buf_text(b, path, 0);
		e = strerror(-err);
		ctl_buf_printf(b, ": %c%s", tolower((unsigned char)*e), e + 1);
		goto out;
	}
	/* The text starts with the path it was given: show the client's. */
	text = buf;
	len = strlen(rel);
	if (strncmp(buf, rel, len) == 0 && strncmp(buf + len, ": ", 2) == 0)
		text += len + 2;
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"path\":");
		ctl_buf_json(b, path);
		ctl_buf_printf(b, ",\"inode\":%llu,\"type\":\"%s\",\"tier\":",
		    (unsigned long long)r.id, ctl_type(r.type));
		ctl_buf_json(b, r.type == S_IFDIR ? NULL : ctl_tier_name(r.tier));
		ctl_buf_printf(b, ",\"pinned\":%s,\"explain\":", r.pin ? "true" :
		    "false");
		ctl_buf_json(b, text);
		ctl_buf_printf(b, "}\n");
	} else {
		ctl_buf_text(b, path, 0);
		ctl_buf_printf(b, ": ");
		ctl_buf_text(b, text, 0);
		ctl_buf_putc(b, '\n');
	}
	rv = DFS_STATUS_OK;
out:
	free(buf);
	free(path);
	return (rv);
}

static int
ctl_pin(struct ctl_client *c, struct ctl_buf *b, int pin)
{
	struct irow	 r;
	const char	*what = pin ? "pin" : "unpin", *e;
	char		*path, rel[PATH_MAX];
	int		 rv = DFS_STATUS_FAILED, err;

	if ((path = ctl_one_path(c, b, what)) == NULL)
		return (DFS_STATUS_FAILED);
	if (ctl_lookup(b, path, &r, rel) != 0)
		goto out;
	if ((err = migrate_pin(rel, pin)) != 0) {
		ctl_buf_text(b, path, 0);
		e = strerror(-err);
		ctl_buf_printf(b, ": %s: %c%s", what,
		    tolower((unsigned char)*e), e + 1);
		goto out;
	}
	log_info("%s %s by uid %ld (pid %ld)", pin ? "pinned" : "unpinned",
	    rel, (long)c->uid, (long)c->pid);
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"path\":");
		ctl_buf_json(b, path);
		ctl_buf_printf(b, ",\"inode\":%llu,\"pinned\":%s}\n",
		    (unsigned long long)r.id, pin ? "true" : "false");
	} else {
		ctl_buf_printf(b, "%s ", pin ? "pinned" : "unpinned");
		ctl_buf_text(b, path, 0);
		ctl_buf_putc(b, '\n');
	}
	rv = DFS_STATUS_OK;
out:
	free(path);
	return (rv);
}

static int
ctl_cmd_pin(struct ctl_client *c, struct ctl_buf *b)
{
	return (ctl_pin(c, b, 1));
}

static int
ctl_cmd_unpin(struct ctl_client *c, struct ctl_buf *b)
{
	return (ctl_pin(c, b, 0));
}

static int
ctl_cmd_pins(struct ctl_client *c, struct ctl_buf *b)
{
	struct ctl_buf	 pb;
	struct irow	 r;
	fuse_ino_t	*ids;
	char		 rel[PATH_MAX];
	size_t		 n, i, shown = 0;
	int		 json = c->hdr.flags & DFS_FLAG_JSON, rv;

	if ((rv = index_pins(&ids, &n)) != 0) {
		ctl_buf_printf(b, "pins: %s", rv == -ENXIO ?
		    "dfs has no index" : strerror(-rv));
		return (DFS_STATUS_FAILED);
	}
	memset(&pb, 0, sizeof pb);
	if (json)
		ctl_buf_printf(b, "{\"pins\":[");
	for (i = 0; i < n && !b->nomem; i++) {
		if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
			break;
		/* Gone since the query: not a pin any more. */
		if (index_get(ids[i], &r) != 0 ||
		    index_path(ids[i], rel, sizeof rel) != 0)
			continue;
		pb.len = 0;
		ctl_mount_path(&pb, rel);
		if (pb.nomem) {
			b->nomem = 1;
			break;
		}
		if (json) {
			ctl_buf_printf(b, "%s{\"path\":", shown == 0 ? "" :
			    ",");
			ctl_buf_json(b, pb.s);
			ctl_buf_printf(b, ",\"inode\":%llu,\"type\":\"%s\"}",
			    (unsigned long long)r.id, ctl_type(r.type));
		} else {
			ctl_buf_text(b, pb.s, 0);
			ctl_buf_putc(b, '\n');
		}
		shown++;
	}
	if (json)
		ctl_buf_printf(b, "],\"total\":%zu,\"truncated\":%s}\n", shown,
		    i < n ? "true" : "false");
	else if (shown == 0)
		ctl_buf_printf(b, "no pinned paths\n");
	else if (i < n)
		ctl_buf_printf(b, "... and %zu more\n", n - i);
	free(pb.s);
	free(ids);
	return (DFS_STATUS_OK);
}


/* --- clients ------------------------------------------------------------ */

/* The one place that says who may use the socket. */
static int
ctl_peer_allowed(uid_t uid)
{
	return (uid == 0 || uid == getuid());
}

static void
ctl_close(struct ctl_client *c)
{
	close(c->fd);
	free(c->payload);
	free(c->outbuf);
	memset(c, 0, sizeof *c);
	c->fd = -1;
	ctl_nclients--;
}

/* Queue a reply: the header for the request in c->hdr, then text. */
static void
ctl_reply(struct ctl_client *c, char *buf, uint32_t status, const char *text,
    size_t len)
{
	struct dfs_proto_hdr	h;

	memset(&h, 0, sizeof h);
	h.magic = DFS_PROTO_MAGIC;
	h.version = DFS_PROTO_VERSION;
	h.type = DFS_TYPE_REPLY;
	h.command = c->hdr.command;
	h.status = status;
	h.length = len;
	memcpy(buf, &h, sizeof h);
	if (text != buf + sizeof h)
		memmove(buf + sizeof h, text, len);
	c->out = buf;
	c->outlen = sizeof h + len;
	c->outoff = 0;
	c->deadline = ctl_now() + CTL_TIMEOUT_MS;
}

static void ctl_error(struct ctl_client *, uint32_t, const char *, ...)
	__attribute__((format(printf, 3, 4)));

/* An error reply from the client's own buffer; never allocates. */
static void
ctl_error(struct ctl_client *c, uint32_t status, const char *fmt, ...)
{
	char	*text = c->errbuf + sizeof (struct dfs_proto_hdr);
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(text, CTL_ERR_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	else if (n >= CTL_ERR_MAX)
		n = CTL_ERR_MAX - 1;
	log_debug("%s: uid %ld pid %ld: %s", __func__, (long)c->uid,
	    (long)c->pid, text);
	if (status != DFS_STATUS_FAILED)
		c->closing = 1;
	ctl_reply(c, c->errbuf, status, text, n);
}

/*
 * Check a request header, in the order of dfs-protocol.h.  Returns
 * DFS_STATUS_OK or queues the error reply and returns its status.
 */
static uint32_t
ctl_check(struct ctl_client *c)
{
	const struct dfs_proto_hdr	*h = &c->hdr;
	const struct ctl_command	*cmd;
	size_t				 i;

	if (h->length > DFS_PROTO_MAX_PAYLOAD) {
		ctl_error(c, DFS_STATUS_TOOLONG, "request of %" PRIu32
		    " bytes is over the limit of %u", h->length,
		    DFS_PROTO_MAX_PAYLOAD);
		return (DFS_STATUS_TOOLONG);
	}
	for (i = 0; i < sizeof h->reserved; i++) {
		if (h->reserved[i] != 0)
			break;
	}
	if (h->magic != DFS_PROTO_MAGIC || h->type != DFS_TYPE_REQUEST ||
	    h->status != 0 || i != sizeof h->reserved) {
		ctl_error(c, DFS_STATUS_BADHEADER, "malformed request header");
		return (DFS_STATUS_BADHEADER);
	}
	if (h->version != DFS_PROTO_VERSION) {
		ctl_error(c, DFS_STATUS_BADVERSION, "protocol version %u is not "
		    "supported (dfs %s speaks version %d)", h->version,
		    PACKAGE_VERSION, DFS_PROTO_VERSION);
		return (DFS_STATUS_BADVERSION);
	}
	if (h->command == 0 || h->command >= CTL_NCOMMANDS) {
		ctl_error(c, DFS_STATUS_BADCOMMAND, "unknown command %u",
		    h->command);
		return (DFS_STATUS_BADCOMMAND);
	}
	cmd = &ctl_commands[h->command];
	if ((h->flags & ~cmd->flags) != 0 ||
	    ((h->flags & DFS_FLAG_JSON) && (h->flags & DFS_FLAG_PROMETHEUS))) {
		ctl_error(c, DFS_STATUS_BADFLAGS, "%s: flags 0x%" PRIx32
		    " not accepted", cmd->name, h->flags);
		return (DFS_STATUS_BADFLAGS);
	}
	if (h->length < cmd->minlen || h->length > cmd->maxlen) {
		if (cmd->minlen == cmd->maxlen)
			ctl_error(c, DFS_STATUS_BADLENGTH, "%s: request payload "
			    "must be %" PRIu32 " bytes, not %" PRIu32,
			    cmd->name, cmd->minlen, h->length);
		else
			ctl_error(c, DFS_STATUS_BADLENGTH, "%s: request payload "
			    "must be %" PRIu32 " to %" PRIu32 " bytes, not %"
			    PRIu32, cmd->name, cmd->minlen, cmd->maxlen,
			    h->length);
		return (DFS_STATUS_BADLENGTH);
	}
	if (!ctl_peer_allowed(c->uid)) {
		log_warn("control socket: %s from uid %ld (pid %ld) refused",
		    cmd->name, (long)c->uid, (long)c->pid);
		ctl_error(c, DFS_STATUS_DENIED, "permission denied: uid %ld "
		    "may not control this dfs", (long)c->uid);
		return (DFS_STATUS_DENIED);
	}
	return (DFS_STATUS_OK);
}

static void
ctl_dispatch(struct ctl_client *c)
{
	const struct ctl_command	*cmd = &ctl_commands[c->hdr.command];
	struct ctl_buf			 b;
	size_t				 hl = sizeof (struct dfs_proto_hdr);
	int				 status;

	log_debug("%s: %s from uid %ld (pid %ld)", __func__, cmd->name,
	    (long)c->uid, (long)c->pid);
	memset(&b, 0, sizeof b);
	/* Room for the header in front of the text. */
	if (ctl_buf_grow(&b, hl) == 0)
		b.len = hl;
	status = cmd->handler(c, &b);
	if (b.nomem) {
		free(b.s);
		ctl_error(c, DFS_STATUS_FAILED, "%s: out of memory", cmd->name);
		return;
	}
	if (b.len - hl > DFS_PROTO_MAX_PAYLOAD) {
		free(b.s);
		ctl_error(c, DFS_STATUS_FAILED, "%s: reply too long",
		    cmd->name);
		return;
	}
	free(c->outbuf);
	c->outbuf = b.s;
	ctl_reply(c, b.s, status, b.s + hl, b.len - hl);
}

/* Returns -1 once the client is gone. */
static int
ctl_write(struct ctl_client *c)
{
	ssize_t	n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return (0);
			log_debug("%s: %s", __func__, strerror(errno));
			ctl_close(c);
			return (-1);
		}
		c->outoff += n;
	}
	if (c->closing) {
		ctl_close(c);
		return (-1);
	}
	/* Ready for the next request. */
	c->out = NULL;
	free(c->outbuf);
	c->outbuf = NULL;
	free(c->payload);
	c->payload = NULL;
	c->have = 0;
	c->deadline = ctl_now() + CTL_TIMEOUT_MS;
	return (0);
}

static int
ctl_slow(uint16_t command)
{
	return (command == DFS_CMD_MIGRATE_PLAN ||
	    command == DFS_CMD_MIGRATE_STREAM ||
	    command == DFS_CMD_CONFLICTS || command == DFS_CMD_PINS);
}

static void *
ctl_work(void *arg)
{
	struct ctl_client	*c = arg;
	sigset_t		 set;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	ctl_dispatch(c);
	pthread_mutex_lock(&ctl_work_mtx);
	c->done = 1;
	(void)!write(ctl_wake[1], "w", 1);
	ctl_nworkers--;
	pthread_cond_broadcast(&ctl_work_cv);
	pthread_mutex_unlock(&ctl_work_mtx);
	return (NULL);
}

/*
 * Run c's request in a worker if it is slow and there is room for one.
 * The control thread leaves c alone until the worker is done.
 */
static int
ctl_work_start(struct ctl_client *c)
{
	pthread_attr_t	attr;
	pthread_t	t;
	int		rv;

	if (!ctl_slow(c->hdr.command))
		return (-1);
	pthread_mutex_lock(&ctl_work_mtx);
	if (ctl_nworkers >= CTL_MAX_WORKERS) {
		pthread_mutex_unlock(&ctl_work_mtx);
		return (-1);
	}
	ctl_nworkers++;
	c->working = 1;
	c->done = 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rv = pthread_create(&t, &attr, ctl_work, c);
	pthread_attr_destroy(&attr);
	if (rv != 0) {
		ctl_nworkers--;
		c->working = 0;
	}
	pthread_mutex_unlock(&ctl_work_mtx);
	return (rv == 0 ? 0 : -1);
}

/* Replies the workers have made: send them. */
static void
ctl_work_collect(void)
{
	struct ctl_client	*c;
	unsigned		 i;
	int			 done;

	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		c = &ctl_clients[i];
		if (c->fd == -1 || !c->working)
			continue;
		pthread_mutex_lock(&ctl_work_mtx);
		done = c->done;
		pthread_mutex_unlock(&ctl_work_mtx);
		if (done) {
			c->working = c->done = 0;
			ctl_write(c);
		}
	}
}

static void
ctl_read(struct ctl_client *c)
{
	size_t	hl = sizeof c->hdr, want;
	char	*dst;
	ssize_t	n;

	for (;;) {
		if (c->have < hl) {
			dst = (char *)&c->hdr + c->have;
			want = hl - c->have;
		} else {
			dst = c->payload + (c->have - hl);
			want = hl + c->hdr.length - c->have;
		}
		if (want == 0)
			break;
		n = recv(c->fd, dst, want, MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("%s: %s", __func__, strerror(errno));
				ctl_close(c);
			}
			return;
		}
		if (n == 0) {
			if (c->have == 0)
				ctl_close(c);
			else {
				ctl_error(c, DFS_STATUS_BADLENGTH, "truncated "
				    "request: %zu of %zu bytes", c->have,
				    c->have < hl ? hl : hl + c->hdr.length);
				ctl_write(c);
			}
			return;
		}
		c->have += n;
		if (c->have == hl) {
			if (ctl_check(c) != DFS_STATUS_OK) {
				ctl_write(c);
				return;
			}
			if (c->hdr.length != 0 &&
			    (c->payload = malloc(c->hdr.length)) == NULL) {
				ctl_error(c, DFS_STATUS_FAILED,
				    "out of memory");
				c->closing = 1;
				ctl_write(c);
				return;
			}
		}
	}
	if (ctl_work_start(c) == 0)
		return;
	ctl_dispatch(c);
	ctl_write(c);
}

/* Returns -1 when there is nothing more to accept for now. */
static int
ctl_accept(void)
{
	struct ctl_client	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof cred;
	unsigned		 i;
	int			 fd;

	fd = accept4(ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EINTR || errno == ECONNABORTED)
			return (0);
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("control socket: accept: %s", strerror(errno));
			ctl_accept_after = ctl_now() + 1000;
		}
		return (-1);
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control socket: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return (0);
	}
	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (ctl_clients[i].fd == -1)
			break;
	}
	c = &ctl_clients[i];
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->deadline = ctl_now() + CTL_TIMEOUT_MS;
	ctl_nclients++;
	log_debug("%s: uid %ld pid %ld", __func__, (long)c->uid, (long)c->pid);
	return (0);
}

/* A client out of time: say so if it was part-way through a request. */
static void
ctl_expire(struct ctl_client *c)
{
	if (c->out == NULL && c->have != 0) {
		ctl_error(c, DFS_STATUS_BADLENGTH, "request timed out after "
		    "%zu bytes", c->have);
		c->deadline = ctl_now() + CTL_TIMEOUT_MS;
		ctl_write(c);
		if (c->fd != -1 && c->out != NULL)
			ctl_close(c);	/* no second chance */
		return;
	}
	ctl_close(c);
}

static void *
ctl_main(void *arg)
{
	struct pollfd	 pfd[2 + CTL_MAX_CLIENTS];
	int		 who[2 + CTL_MAX_CLIENTS];
	struct ctl_client *c;
	sigset_t	 set;
	uint64_t	 now, next;
	nfds_t		 n, j;
	unsigned	 i;
	int		 timeout;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	for (;;) {
		now = ctl_now();
		next = UINT64_MAX;
		n = 0;
		pfd[n].fd = ctl_wake[0];
		pfd[n].events = POLLIN;
		who[n++] = -1;
		if (ctl_nclients < CTL_MAX_CLIENTS && now >= ctl_accept_after) {
			pfd[n].fd = ctl_fd;
			pfd[n].events = POLLIN;
			who[n++] = -2;
		} else if (ctl_nclients < CTL_MAX_CLIENTS)
			next = ctl_accept_after;
		for (i = 0; i < CTL_MAX_CLIENTS; i++) {
			c = &ctl_clients[i];
			if (c->fd == -1 || c->working)
				continue;
			pfd[n].fd = c->fd;
			pfd[n].events = c->out != NULL ? POLLOUT : POLLIN;
			who[n++] = i;
			if (c->deadline < next)
				next = c->deadline;
		}
		if (next == UINT64_MAX)
			timeout = -1;
		else if (next <= now)
			timeout = 0;
		else
			timeout = next - now > INT32_MAX ? INT32_MAX :
			    (int)(next - now);

		if (poll(pfd, n, timeout) == -1) {
			if (errno != EINTR) {
				log_error("control socket: poll: %s",
				    strerror(errno));
				poll(NULL, 0, 100);
			}
			continue;
		}
		if (pfd[0].revents != 0) {
			char	drain[64];

			while (read(ctl_wake[0], drain, sizeof drain) > 0)
				;
			if (atomic_load(&ctl_stopping))
				break;
			ctl_work_collect();
		}
		for (j = 1; j < n; j++) {
			if (pfd[j].revents == 0)
				continue;
			if (who[j] == -2) {
				while (ctl_nclients < CTL_MAX_CLIENTS &&
				    ctl_accept() == 0)
					;
				continue;
			}
			c = &ctl_clients[who[j]];
			if (c->out != NULL)
				ctl_write(c);
			else
				ctl_read(c);
		}
		now = ctl_now();
		for (i = 0; i < CTL_MAX_CLIENTS; i++) {
			c = &ctl_clients[i];
			if (c->fd != -1 && !c->working && c->deadline <= now)
				ctl_expire(c);
		}
	}

	/* Workers use their clients' slots: wait for them to finish. */
	pthread_mutex_lock(&ctl_work_mtx);
	while (ctl_nworkers > 0)
		pthread_cond_wait(&ctl_work_cv, &ctl_work_mtx);
	pthread_mutex_unlock(&ctl_work_mtx);

	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (ctl_clients[i].fd != -1)
			ctl_close(&ctl_clients[i]);
	}
	return (arg);
}

/* --- start and stop ----------------------------------------------------- */

static int
ctl_check_table(char **cause)
{
	size_t	i;

	for (i = 1; i < CTL_NCOMMANDS; i++) {
		if (ctl_commands[i].code != i ||
		    ctl_commands[i].name == NULL ||
		    ctl_commands[i].handler == NULL ||
		    ctl_commands[i].minlen > ctl_commands[i].maxlen ||
		    ctl_commands[i].maxlen > DFS_PROTO_MAX_PAYLOAD ||
		    (ctl_commands[i].flags & ~(DFS_FLAG_JSON |
		    DFS_FLAG_PROMETHEUS)) != 0) {
			asprintf(cause, "control socket: command table entry "
			    "%zu is inconsistent", i);
			return (-1);
		}
	}
	if (CTL_NCOMMANDS - 1 != DFS_CMD_MAX) {
		asprintf(cause, "control socket: command table has %zu "
		    "commands, the protocol %d", CTL_NCOMMANDS - 1,
		    DFS_CMD_MAX);
		return (-1);
	}
	return (0);
}

/*
 * Does something answer on the socket at sa?  1 yes, 0 no (stale), -1 on
 * an error, in errno.
 */
static int
ctl_probe(const struct sockaddr_un *sa)
{
	int	fd, rv, saved;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return (-1);
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
		rv = 1;
	else if (errno == EAGAIN || errno == EINPROGRESS)
		rv = 1;		/* listening, backlog full */
	else if (errno == ECONNREFUSED)
		rv = 0;
	else
		rv = -1;
	saved = errno;
	close(fd);
	errno = saved;
	return (rv);
}

/*
 * What status and reload show as the config file (NULL: none) and what
 * reload calls.  conf_file must outlive the control socket.
 */
void
ctl_configure(const char *conf_file, int (*reload)(char **))
{
	ctl_config_file = conf_file;
	ctl_reload_hook = reload;
}

/*
 * Create the control socket at path and start the thread that serves it.
 * Call once, after daemonising and before threads that create files start
 * (the umask is process-wide).
 */
int
ctl_start(const char *path, char **cause)
{
	struct sockaddr_un	 sa;
	struct stat		 st;
	sigset_t		 set, old;
	mode_t			 mask;
	unsigned		 i;
	int			 fd = -1, rv, saved;

	if (ctl_running) {
		asprintf(cause, "control socket %s: already serving %s", path,
		    ctl_path);
		return (-1);
	}
	if (ctl_check_table(cause) != 0)
		return (-1);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		asprintf(cause, "control socket %s: path too long (at most %zu "
		    "bytes)", path, sizeof sa.sun_path - 1);
		return (-1);
	}
	strcpy(sa.sun_path, path);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			asprintf(cause, "control socket %s: exists and is not "
			    "a socket", path);
			return (-1);
		}
		if ((rv = ctl_probe(&sa)) == 1) {
			asprintf(cause, "control socket %s: in use (is another "
			    "dfs running?)", path);
			return (-1);
		}
		if (rv == -1) {
			asprintf(cause, "control socket %s: %s", path,
			    strerror(errno));
			return (-1);
		}
		log_info("control socket %s: removing stale socket", path);
		if (unlink(path) == -1 && errno != ENOENT)
			goto fail;
	} else if (errno != ENOENT)
		goto fail;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto fail;
	mask = umask(S_IXUSR | S_IRWXG | S_IRWXO);
	rv = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	saved = errno;
	umask(mask);
	if (rv == -1) {
		errno = saved;
		if (errno == EADDRINUSE) {
			asprintf(cause, "control socket %s: in use (is another "
			    "dfs running?)", path);
			close(fd);
			return (-1);
		}
		goto fail;
	}
	if (lstat(path, &st) == -1 || listen(fd, CTL_BACKLOG) == -1) {
		saved = errno;
		unlink(path);
		errno = saved;
		goto fail;
	}
	ctl_dev = st.st_dev;
	ctl_ino = st.st_ino;
	if (pipe2(ctl_wake, O_CLOEXEC | O_NONBLOCK) == -1) {
		saved = errno;
		unlink(path);
		errno = saved;
		goto fail;
	}
	if ((ctl_path = strdup(path)) == NULL) {
		errno = ENOMEM;
		goto fail_unlink;
	}
	ctl_fd = fd;
	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		memset(&ctl_clients[i], 0, sizeof ctl_clients[i]);
		ctl_clients[i].fd = -1;
	}
	ctl_nclients = 0;
	ctl_accept_after = 0;
	clock_gettime(CLOCK_MONOTONIC, &ctl_started);

	/* The thread starts with every signal blocked. */
	atomic_store(&ctl_stopping, 0);
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	rv = pthread_create(&ctl_thread, NULL, ctl_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv != 0) {
		ctl_fd = -1;
		free(ctl_path);
		ctl_path = NULL;
		errno = rv;
		goto fail_unlink;
	}
	ctl_running = 1;
	log_debug("%s: listening on %s", __func__, path);
	return (0);

fail_unlink:
	saved = errno;
	unlink(path);
	close(ctl_wake[0]);
	close(ctl_wake[1]);
	ctl_wake[0] = ctl_wake[1] = -1;
	errno = saved;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	asprintf(cause, "control socket %s: %s", path, strerror(saved));
	return (-1);
}

/* Stop the thread, close every client and remove the socket. */
void
ctl_stop(void)
{
	struct stat	st;

	if (!ctl_running)
		return;
	atomic_store(&ctl_stopping, 1);
	(void)!write(ctl_wake[1], "", 1);
	pthread_join(ctl_thread, NULL);
	ctl_running = 0;
	close(ctl_fd);
	ctl_fd = -1;
	close(ctl_wake[0]);
	close(ctl_wake[1]);
	ctl_wake[0] = ctl_wake[1] = -1;
	/* Only our own socket: another dfs may have replaced it. */
	if (lstat(ctl_path, &st) == 0 && st.st_dev == ctl_dev &&
	    st.st_ino == ctl_ino)
		unlink(ctl_path);
	free(ctl_path);
	ctl_path = NULL;
}
