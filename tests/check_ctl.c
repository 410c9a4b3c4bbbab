/*
 * Unit tests of the control socket: the server runs in the test process on
 * a temp socket; requests, good and malformed, go over raw sockets.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"
#include "dfs-protocol.h"

/* Quotes and a newline: status must escape them. */
#define TEST_CONF_FILE	"/etc/dfs \"test\"\n.conf"

static char	tmp[] = "/tmp/check_ctl.XXXXXX";
static char	sock[PATH_MAX];

static char *
path(const char *rel)
{
	static char	buf[4][PATH_MAX];
	static int	i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmp, rel);
	return (buf[i]);
}

static void
setup(void)
{
	char	*cause = NULL;

	ck_assert_ptr_nonnull(mkdtemp(strcpy(tmp, "/tmp/check_ctl.XXXXXX")));
	ck_assert_int_eq(mkdir(path("fast"), 0755), 0);
	ck_assert_int_eq(mkdir(path("slow"), 0755), 0);
	ck_assert_int_eq(mkdir(path("mnt"), 0755), 0);
	ck_assert_int_eq(tier_add("fast", path("fast"), &cause), 0);
	ck_assert_int_eq(tier_add("slow", path("slow"), &cause), 0);
	dfs.mountpoint = strdup(path("mnt"));
	ctl_configure(TEST_CONF_FILE, NULL);
	snprintf(sock, sizeof sock, "%s", path("dfs.sock"));
	if (ctl_start(sock, &cause) != 0)
		ck_abort_msg("ctl_start: %s", cause);
}

static void
teardown(void)
{
	char	cmd[PATH_MAX + 16];

	ctl_stop();
	tier_close_all();
	free(dfs.mountpoint);
	dfs.mountpoint = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(cmd), 0);
}

static int
xconnect(void)
{
	struct sockaddr_un	sa;
	int			fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0,
	    "connect %s: %s", sock, strerror(errno));
	return (fd);
}

static void
xhdr(struct dfs_proto_hdr *h, uint16_t command, uint32_t flags)
{
	memset(h, 0, sizeof *h);
	h->magic = DFS_PROTO_MAGIC;
	h->version = DFS_PROTO_VERSION;
	h->type = DFS_TYPE_REQUEST;
	h->command = command;
	h->flags = flags;
}

static void
xsend(int fd, const void *buf, size_t len)
{
	ck_assert_int_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read exactly len bytes within 10 s; returns the count read. */
static size_t
xread(int fd, void *buf, size_t len)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	char		*p = buf;
	size_t		 got = 0;
	ssize_t		 n;

	while (got < len) {
		ck_assert_msg(poll(&pfd, 1, 10000) == 1, "no reply in 10 s");
		n = recv(fd, p + got, len - got, 0);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		got += n;
	}
	return (got);
}

/* The reply's status; its text (malloc'd, NUL-terminated) in *text. */
static uint32_t
xreply(int fd, uint16_t command, char **text)
{
	struct dfs_proto_hdr	h;
	char			*s;

	ck_assert_uint_eq(xread(fd, &h, sizeof h), sizeof h);
	ck_assert_uint_eq(h.magic, DFS_PROTO_MAGIC);
	ck_assert_uint_eq(h.version, DFS_PROTO_VERSION);
	ck_assert_uint_eq(h.type, DFS_TYPE_REPLY);
	ck_assert_uint_eq(h.command, command);
	ck_assert_uint_le(h.length, DFS_PROTO_MAX_PAYLOAD);
	s = malloc(h.length + 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(xread(fd, s, h.length), h.length);
	s[h.length] = '\0';
	ck_assert_ptr_null(memchr(s, '\0', h.length));
	if (text != NULL)
		*text = s;
	else
		free(s);
	return (h.status);
}

/* The server closed the connection (after an error reply). */
static void
xclosed(int fd)
{
	char	c;

	ck_assert_uint_eq(xread(fd, &c, 1), 0);
	close(fd);
}

/* One request on a new connection; returns the status. */
static uint32_t
xrequest(uint16_t command, uint32_t flags, char **text)
{
	struct dfs_proto_hdr	h;
	uint32_t		status;
	int			fd;

	fd = xconnect();
	xhdr(&h, command, flags);
	xsend(fd, &h, sizeof h);
	status = xreply(fd, command, text);
	close(fd);
	return (status);
}

/* A good status request is still served. */
static void
xstill_serving(void)
{
	char	*text;

	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, 0, &text), DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "dfs " PACKAGE_VERSION));
	free(text);
}

/* Send a bad header; expect status and a closed connection. */
static char *
xbad(const struct dfs_proto_hdr *h, uint32_t want)
{
	char	*text;
	int	 fd;

	fd = xconnect();
	xsend(fd, h, sizeof *h);
	ck_assert_uint_eq(xreply(fd, h->command, &text), want);
	xclosed(fd);
	xstill_serving();
	return (text);
}

#define JSON_START	"{\"version\":\"" PACKAGE_VERSION "\",\"uptime\":"

START_TEST(test_status)
{
	struct stat	 st;
	char		*text;

	ck_assert_int_eq(lstat(sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);

	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, 0, &text), DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "dfs " PACKAGE_VERSION ", up "));
	ck_assert_ptr_nonnull(strstr(text, path("mnt")));
	ck_assert_ptr_nonnull(strstr(text, "/etc/dfs \"test\"?.conf"));
	ck_assert_ptr_nonnull(strstr(text, "fast"));
	ck_assert_ptr_nonnull(strstr(text, path("slow")));
	ck_assert_ptr_nonnull(strstr(text, "USE%"));
	free(text);

	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, DFS_FLAG_JSON, &text),
	    DFS_STATUS_OK);
	ck_assert_msg(strncmp(text, JSON_START, strlen(JSON_START)) == 0, "%s",
	    text);
	ck_assert_ptr_nonnull(strstr(text,
	    "\"config\":\"/etc/dfs \\\"test\\\"\\n.conf\""));
	ck_assert_ptr_nonnull(strstr(text, "\"tiers\":[{\"name\":\"fast\","));
	ck_assert_ptr_nonnull(strstr(text, "\"percent\":"));
	ck_assert_str_eq(text + strlen(text) - 3, "]}\n");
	free(text);
}
END_TEST

START_TEST(test_truncated)
{
	struct dfs_proto_hdr	 h;
	char			*text;
	int			 fd;

	xhdr(&h, DFS_CMD_STATUS, 0);
	fd = xconnect();
	xsend(fd, &h, 10);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_STATUS, &text),
	    DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "truncated"));
	free(text);
	xclosed(fd);

	/* Connected and gone without a byte: nothing to answer. */
	close(xconnect());
	xstill_serving();
}
END_TEST

START_TEST(test_bad_version)
{
	struct dfs_proto_hdr	 h;
	char			*text;

	xhdr(&h, DFS_CMD_STATUS, 0);
	h.version = 9;
	text = xbad(&h, DFS_STATUS_BADVERSION);
	ck_assert_ptr_nonnull(strstr(text, "version 9"));
	free(text);
}
END_TEST

START_TEST(test_huge_length)
{
	struct dfs_proto_hdr	 h;
	char			*text;

	xhdr(&h, DFS_CMD_STATUS, 0);
	h.length = UINT32_MAX;
	text = xbad(&h, DFS_STATUS_TOOLONG);
	ck_assert_ptr_nonnull(strstr(text, "over the limit"));
	free(text);

	h.length = DFS_PROTO_MAX_PAYLOAD + 1;
	free(xbad(&h, DFS_STATUS_TOOLONG));

	/* Within the limit, but not what status takes. */
	h.length = 4;
	text = xbad(&h, DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "must be 0 bytes"));
	free(text);
}
END_TEST

START_TEST(test_unknown_command)
{
	struct dfs_proto_hdr	 h;
	char			*text;

	xhdr(&h, 999, 0);
	text = xbad(&h, DFS_STATUS_BADCOMMAND);
	ck_assert_str_eq(text, "unknown command 999");
	free(text);
	xhdr(&h, 0, 0);
	free(xbad(&h, DFS_STATUS_BADCOMMAND));
	xhdr(&h, DFS_CMD_MAX + 1, 0);
	free(xbad(&h, DFS_STATUS_BADCOMMAND));
}
END_TEST

START_TEST(test_reserved)
{
	struct dfs_proto_hdr	h;

	xhdr(&h, DFS_CMD_STATUS, 0);
	h.reserved[11] = 1;
	free(xbad(&h, DFS_STATUS_BADHEADER));

	xhdr(&h, DFS_CMD_STATUS, 0);
	h.magic = 0x12345678;
	free(xbad(&h, DFS_STATUS_BADHEADER));

	xhdr(&h, DFS_CMD_STATUS, 0);
	h.type = DFS_TYPE_REPLY;
	free(xbad(&h, DFS_STATUS_BADHEADER));

	xhdr(&h, DFS_CMD_STATUS, 0);
	h.status = 1;
	free(xbad(&h, DFS_STATUS_BADHEADER));

	/* The header is checked before the version. */
	xhdr(&h, DFS_CMD_STATUS, 0);
	h.version = 2;
	h.reserved[0] = 1;
	free(xbad(&h, DFS_STATUS_BADHEADER));
}
END_TEST

START_TEST(test_bad_flags)
{
	struct dfs_proto_hdr	h;

	xhdr(&h, DFS_CMD_STATUS, DFS_FLAG_PROMETHEUS);
	free(xbad(&h, DFS_STATUS_BADFLAGS));
	xhdr(&h, DFS_CMD_STATS, DFS_FLAG_PROMETHEUS | DFS_FLAG_JSON);
	free(xbad(&h, DFS_STATUS_BADFLAGS));
	xhdr(&h, DFS_CMD_STATS, 0x80);
	free(xbad(&h, DFS_STATUS_BADFLAGS));
}
END_TEST

START_TEST(test_stats)
{
	char	*text;

	atomic_store(&dfs.tiers[0].stats.lookup, 12);
	atomic_store(&dfs.tiers[1].stats.bytes_written, 4096);
	atomic_store(&dfs.tiers[1].stats.errors, 3);

	ck_assert_uint_eq(xrequest(DFS_CMD_STATS, 0, &text), DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "fast"));
	ck_assert_ptr_nonnull(strstr(text, "bytes_written"));
	free(text);

	ck_assert_uint_eq(xrequest(DFS_CMD_STATS, DFS_FLAG_JSON, &text),
	    DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "{\"name\":\"fast\","));
	ck_assert_ptr_nonnull(strstr(text, "\"lookup\":12,"));
	ck_assert_ptr_nonnull(strstr(text, "\"bytes_written\":4096,"));
	ck_assert_ptr_nonnull(strstr(text, "\"errors\":3}"));
	free(text);

	ck_assert_uint_eq(xrequest(DFS_CMD_STATS, DFS_FLAG_PROMETHEUS, &text),
	    DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE dfs_backing_calls_total counter\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\ndfs_backing_calls_total{tier=\"fast\",op=\"lookup\"} 12\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\ndfs_backing_written_bytes_total{tier=\"slow\"} 4096\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\ndfs_backing_errors_total{tier=\"slow\"} 3\n"));
	ck_assert_ptr_null(strstr(text, "op=\"bytes_read\""));
	free(text);
}
END_TEST

static int
reload_fail(char **cause)
{
	*cause = strdup("/etc/dfs.conf:3: tier \"x\": unknown");
	return (-1);
}

static int
reload_ok(char **cause)
{
	*cause = NULL;
	return (0);
}

START_TEST(test_reload)
{
	struct dfs_proto_hdr	 h;
	char			*text;
	int			 fd;

	/* A failed command keeps the connection. */
	fd = xconnect();
	xhdr(&h, DFS_CMD_RELOAD, 0);
	xsend(fd, &h, sizeof h);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_RELOAD, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "reload is not available");
	free(text);

	ctl_configure(TEST_CONF_FILE, reload_fail);
	xsend(fd, &h, sizeof h);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_RELOAD, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "/etc/dfs.conf:3: tier \"x\": unknown");
	free(text);

	ctl_configure(TEST_CONF_FILE, reload_ok);
	xsend(fd, &h, sizeof h);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_RELOAD, &text), DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "reloaded"));
	free(text);

	/* Then other commands on the same connection. */
	xhdr(&h, DFS_CMD_STATS, DFS_FLAG_JSON);
	xsend(fd, &h, sizeof h);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_STATS, NULL), DFS_STATUS_OK);
	xhdr(&h, DFS_CMD_STATUS, 0);
	xsend(fd, &h, sizeof h);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_STATUS, NULL), DFS_STATUS_OK);
	close(fd);
}
END_TEST

/* Idle and half-sent clients do not hold up another one. */
START_TEST(test_slow_clients)
{
	struct dfs_proto_hdr	h;
	int			idle, half;

	idle = xconnect();
	half = xconnect();
	xhdr(&h, DFS_CMD_STATUS, 0);
	xsend(half, &h, 7);
	xstill_serving();
	xstill_serving();
	close(idle);
	close(half);
	xstill_serving();
}
END_TEST

/* A request not completed in time is answered and closed. */
START_TEST(test_timeout)
{
	struct dfs_proto_hdr	 h;
	char			*text;
	int			 fd;

	fd = xconnect();
	xhdr(&h, DFS_CMD_STATUS, 0);
	xsend(fd, &h, 7);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_STATUS, &text),
	    DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "timed out"));
	free(text);
	xclosed(fd);
	xstill_serving();
}
END_TEST

START_TEST(test_socket_in_use)
{
	struct sockaddr_un	 sa;
	struct stat		 st;
	char			*cause = NULL;
	int			 fd;

	/* One control socket per process. */
	ck_assert_int_eq(ctl_start(path("other.sock"), &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "already serving"));
	free(cause);
	xstill_serving();

	/* Stopped: the socket is gone. */
	ctl_stop();
	ck_assert_int_eq(access(sock, F_OK), -1);

	/* Something answers there (another dfs): refused, left alone. */
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(ctl_start(sock, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "in use"));
	free(cause);
	ck_assert_int_eq(lstat(sock, &st), 0);

	/* Nothing listens any more: stale, so it is replaced. */
	close(fd);
	if (ctl_start(sock, &cause) != 0)
		ck_abort_msg("ctl_start: %s", cause);
	xstill_serving();

	/* Not a socket: refused, never removed. */
	ctl_stop();
	ck_assert_int_eq(close(open(sock, O_CREAT | O_WRONLY, 0600)), 0);
	ck_assert_int_eq(ctl_start(sock, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "not a socket"));
	free(cause);
	ck_assert_int_eq(lstat(sock, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
}
END_TEST

/* Another uid reaching the socket gets DFS_STATUS_DENIED. */
START_TEST(test_denied)
{
	struct dfs_proto_hdr	 h;
	char			*text;
	pid_t			 pid;
	int			 status, fd;

	if (geteuid() != 0)
		return;		/* needs root to become another uid */
	ck_assert_int_eq(chmod(sock, 0666), 0);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		if (setgid(12345) != 0 || setuid(12345) != 0)
			_exit(10);
		fd = xconnect();
		xhdr(&h, DFS_CMD_STATUS, 0);
		xsend(fd, &h, sizeof h);
		if (xreply(fd, DFS_CMD_STATUS, &text) != DFS_STATUS_DENIED)
			_exit(11);
		if (strstr(text, "permission denied: uid 12345") == NULL)
			_exit(12);
		xclosed(fd);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	xstill_serving();
}
END_TEST

/* The index commands answer sensibly in a process with no index. */
START_TEST(test_index_commands)
{
	struct dfs_proto_hdr	 h;
	char			*text;
	int			 fd;

	ck_assert_uint_eq(xrequest(DFS_CMD_SCAN_STATUS, DFS_FLAG_JSON, &text),
	    DFS_STATUS_OK);
	ck_assert_msg(strncmp(text, "{\"state\":\"none\",\"running\":false,",
	    32) == 0, "%s", text);
	free(text);
	ck_assert_uint_eq(xrequest(DFS_CMD_SCAN, 0, &text), DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "scan: dfs has no index");
	free(text);
	ck_assert_uint_eq(xrequest(DFS_CMD_CONFLICTS, DFS_FLAG_JSON, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "conflicts: dfs has no index");
	free(text);

	/* where takes a path: none is a bad length, and closes. */
	xhdr(&h, DFS_CMD_WHERE, 0);
	text = xbad(&h, DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "must be 1 to"));
	free(text);

	/* A failed where leaves the connection open for the next one. */
	fd = xconnect();
	xhdr(&h, DFS_CMD_WHERE, 0);
	h.length = 3;
	xsend(fd, &h, sizeof h);
	xsend(fd, "a/b", 3);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_WHERE, &text), DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "where: dfs has no index");
	free(text);
	h.length = 2;
	xsend(fd, &h, sizeof h);
	xsend(fd, "a\0", 2);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_WHERE, &text), DFS_STATUS_FAILED);
	ck_assert_ptr_nonnull(strstr(text, "NUL"));
	free(text);
	xhdr(&h, DFS_CMD_STATUS, 0);
	xsend(fd, &h, sizeof h);
	ck_assert_uint_eq(xreply(fd, DFS_CMD_STATUS, &text), DFS_STATUS_OK);
	free(text);
	close(fd);

	/* status says what it knows of the index. */
	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, 0, &text), DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "\nscan         none\n"));
	free(text);
	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, DFS_FLAG_JSON, &text),
	    DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "\"conflicts\":null,\"scan\":{"));
	free(text);
}
END_TEST

/* A request with a payload on a new connection; returns the status. */
static uint32_t
xrequest_with(uint16_t command, uint32_t flags, const void *payload,
    size_t len, char **text)
{
	struct dfs_proto_hdr	h;
	uint32_t		status;
	int			fd;

	fd = xconnect();
	xhdr(&h, command, flags);
	h.length = len;
	xsend(fd, &h, sizeof h);
	if (len != 0)
		xsend(fd, payload, len);
	status = xreply(fd, command, text);
	close(fd);
	return (status);
}

/* The migration commands: lengths, path lists, and no index. */
START_TEST(test_migrate_commands)
{
	static const uint16_t	 onepath[] = { DFS_CMD_EXPLAIN, DFS_CMD_PIN,
	    DFS_CMD_UNPIN };
	struct dfs_proto_hdr	 h;
	uint64_t		 seq;
	size_t			 i;
	char			*text;

	/* The run number is 8 bytes, neither fewer nor more. */
	xhdr(&h, DFS_CMD_MIGRATE_STATUS, 0);
	text = xbad(&h, DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "must be 8 bytes, not 0"));
	free(text);
	h.length = 9;
	text = xbad(&h, DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "must be 8 bytes, not 9"));
	free(text);

	/* One path: at least a byte. */
	for (i = 0; i < sizeof onepath / sizeof onepath[0]; i++) {
		xhdr(&h, onepath[i], 0);
		text = xbad(&h, DFS_STATUS_BADLENGTH);
		ck_assert_ptr_nonnull(strstr(text, "must be 1 to"));
		free(text);
		xhdr(&h, onepath[i], 0);
		h.length = DFS_PROTO_MAX_PAYLOAD + 1;
		free(xbad(&h, DFS_STATUS_TOOLONG));
	}

	/* pins takes nothing; path lists take up to the maximum. */
	xhdr(&h, DFS_CMD_PINS, 0);
	h.length = 1;
	text = xbad(&h, DFS_STATUS_BADLENGTH);
	ck_assert_ptr_nonnull(strstr(text, "must be 0 bytes, not 1"));
	free(text);
	xhdr(&h, DFS_CMD_MIGRATE, 0);
	h.length = DFS_PROTO_MAX_PAYLOAD + 1;
	free(xbad(&h, DFS_STATUS_TOOLONG));
	xhdr(&h, DFS_CMD_MIGRATE_PLAN, DFS_FLAG_PROMETHEUS);
	free(xbad(&h, DFS_STATUS_BADFLAGS));

	/* A path list: every path ends with a NUL, none is empty. */
	ck_assert_uint_eq(xrequest_with(DFS_CMD_MIGRATE, 0, "a", 1, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "migrate: the path list does not end with a "
	    "NUL");
	free(text);
	ck_assert_uint_eq(xrequest_with(DFS_CMD_MIGRATE_PLAN, 0, "a\0\0", 3,
	    &text), DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "migrate: an empty path");
	free(text);
	ck_assert_uint_eq(xrequest_with(DFS_CMD_MIGRATE, 0, "a\0b", 4, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "migrate: dfs has no index");
	free(text);
	ck_assert_uint_eq(xrequest(DFS_CMD_MIGRATE_PLAN, DFS_FLAG_JSON, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "migrate: dfs has no index");
	free(text);
	ck_assert_uint_eq(xrequest_with(DFS_CMD_EXPLAIN, 0, "a/b", 3, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "explain: dfs has no index");
	free(text);
	ck_assert_uint_eq(xrequest_with(DFS_CMD_PIN, 0, "a\0", 2, &text),
	    DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "pin: the path contains a NUL byte");
	free(text);
	ck_assert_uint_eq(xrequest(DFS_CMD_PINS, 0, &text), DFS_STATUS_FAILED);
	ck_assert_str_eq(text, "pins: dfs has no index");
	free(text);

	/* No run yet: all of them, one to come. */
	seq = 0;
	ck_assert_uint_eq(xrequest_with(DFS_CMD_MIGRATE_STATUS, 0, &seq,
	    sizeof seq, &text), DFS_STATUS_OK);
	ck_assert_str_eq(text, "migration    idle, no run yet\n");
	free(text);
	ck_assert_uint_eq(xrequest_with(DFS_CMD_MIGRATE_STATUS, DFS_FLAG_JSON,
	    &seq, sizeof seq, &text), DFS_STATUS_OK);
	ck_assert_str_eq(text, "{\"running\":false,\"current\":null,"
	    "\"runs\":[]}\n");
	free(text);
	seq = 7;
	ck_assert_uint_eq(xrequest_with(DFS_CMD_MIGRATE_STATUS, DFS_FLAG_JSON,
	    &seq, sizeof seq, &text), DFS_STATUS_OK);
	ck_assert_str_eq(text, "{\"run\":7,\"state\":\"pending\"}\n");
	free(text);

	/* status has the runs and the files of each tier, if it can. */
	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, 0, &text), DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "\nmigration    idle"));
	ck_assert_ptr_nonnull(strstr(text, "  FILE SYSTEM  NOREPLACE  "
	    "EXCHANGE  LINKS  NLINK  XATTRS  NS_TIMES  INODES\n"));
	free(text);
	ck_assert_uint_eq(xrequest(DFS_CMD_STATUS, DFS_FLAG_JSON, &text),
	    DFS_STATUS_OK);
	ck_assert_ptr_nonnull(strstr(text, "\"files\":null,\"bytes\":null,"
	    "\"high_watermark\":null,\"low_watermark\":null,\"fstype\":"));
	/* What the tier supports: the probe never ran here. */
	ck_assert_ptr_nonnull(strstr(text, ",\"supports\":{"
	    "\"rename_noreplace\":false,\"rename_exchange\":false,"
	    "\"hardlinks\":false,\"nlink\":false,\"xattrs\":false,"
	    "\"stable_inodes\":false,\"ns_times\":false},"
	    "\"stable_inodes_from\":\"probe\"}"));
	ck_assert_ptr_nonnull(strstr(text, ",\"migration\":{\"running\":"
	    "false,\"current\":null,\"runs\":[]},\"tiers\":["));
	free(text);
	xstill_serving();
}
END_TEST

static Suite *
ctl_suite(void)
{
	Suite	*s = suite_create("ctl");
	TCase	*tc = tcase_create("ctl");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_bad_version);
	tcase_add_test(tc, test_huge_length);
	tcase_add_test(tc, test_unknown_command);
	tcase_add_test(tc, test_reserved);
	tcase_add_test(tc, test_bad_flags);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_slow_clients);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_socket_in_use);
	tcase_add_test(tc, test_denied);
	tcase_add_test(tc, test_index_commands);
	tcase_add_test(tc, test_migrate_commands);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(ctl_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
