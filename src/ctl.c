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
 * only prints it.  This file is the transport and the command table; the
 * commands live in ctl_status.c, ctl_scan.c, ctl_index.c and ctl_migrate.c.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dfs.h"
#include "dfs-protocol.h"
#include "ctl_int.h"

#define CTL_MAX_CLIENTS	16
#define CTL_TIMEOUT_MS	5000	/* to send a request, or to take a reply */
#define CTL_BACKLOG	16

/*
 * What a request's payload holds.  The dispatcher resolves the paths
 * before the handler runs and answers for it when they do not resolve.
 */
enum ctl_args {
	CTL_ARGS_NONE,		/* nothing, or what the handler reads */
	CTL_ARGS_PATH,		/* one path, the whole payload, any type */
	CTL_ARGS_FILES		/* minlen bytes, then files, each NUL-ended */
};

/* Whether a command runs in a worker thread: see ctl_work_start. */
enum ctl_speed {
	CTL_FAST,
	CTL_SLOW
};

struct ctl_command {
	uint16_t	 code;
	const char	*name;
	uint32_t	 minlen;	/* request payload bytes */
	uint32_t	 maxlen;
	uint32_t	 flags;		/* flags it accepts */
	enum ctl_args	 args;
	enum ctl_speed	 speed;
	int		(*handler)(struct ctl_client *, struct ctl_buf *,
			    const struct ctl_paths *);
};

/* Indexed by command code; checked by ctl_check_table at start. */
static const struct ctl_command ctl_commands[] = {
	{ 0, NULL, 0, 0, 0, CTL_ARGS_NONE, CTL_FAST, NULL },
	{ DFS_CMD_STATUS, "status", 0, 0, DFS_FLAG_JSON, CTL_ARGS_NONE,
	    CTL_FAST, ctl_cmd_status },
	{ DFS_CMD_RELOAD, "reload", 0, 0, DFS_FLAG_JSON, CTL_ARGS_NONE,
	    CTL_FAST, ctl_cmd_reload },
	{ DFS_CMD_STATS, "stats", 0, 0, DFS_FLAG_JSON | DFS_FLAG_PROMETHEUS,
	    CTL_ARGS_NONE, CTL_FAST, ctl_cmd_stats },
	{ DFS_CMD_SCAN, "scan", 0, 0, DFS_FLAG_JSON, CTL_ARGS_NONE, CTL_FAST,
	    ctl_cmd_scan },
	{ DFS_CMD_SCAN_STATUS, "scan status", 0, 0, DFS_FLAG_JSON,
	    CTL_ARGS_NONE, CTL_FAST, ctl_cmd_scan_status },
	{ DFS_CMD_WHERE, "where", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    CTL_ARGS_PATH, CTL_FAST, ctl_cmd_where },
	{ DFS_CMD_CONFLICTS, "conflicts", 0, 0, DFS_FLAG_JSON, CTL_ARGS_NONE,
	    CTL_SLOW, ctl_cmd_conflicts },
	{ DFS_CMD_MIGRATE, "migrate", 0, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    CTL_ARGS_FILES, CTL_FAST, ctl_cmd_migrate },
	{ DFS_CMD_MIGRATE_STATUS, "migrate status", 8, 8, DFS_FLAG_JSON,
	    CTL_ARGS_NONE, CTL_FAST, ctl_cmd_migrate_status },
	{ DFS_CMD_MIGRATE_PLAN, "migrate --dry-run", 0, DFS_PROTO_MAX_PAYLOAD,
	    DFS_FLAG_JSON, CTL_ARGS_FILES, CTL_SLOW, ctl_cmd_migrate_plan },
	{ DFS_CMD_EXPLAIN, "explain", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    CTL_ARGS_PATH, CTL_FAST, ctl_cmd_explain },
	{ DFS_CMD_PIN, "pin", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    CTL_ARGS_PATH, CTL_FAST, ctl_cmd_pin },
	{ DFS_CMD_UNPIN, "unpin", 1, DFS_PROTO_MAX_PAYLOAD, DFS_FLAG_JSON,
	    CTL_ARGS_PATH, CTL_FAST, ctl_cmd_unpin },
	{ DFS_CMD_PINS, "pins", 0, 0, DFS_FLAG_JSON, CTL_ARGS_NONE, CTL_SLOW,
	    ctl_cmd_pins },
	{ DFS_CMD_MIGRATE_STREAM, "migrate --dry-run", 8, DFS_PROTO_MAX_PAYLOAD,
	    DFS_FLAG_JSON, CTL_ARGS_FILES, CTL_SLOW, ctl_cmd_migrate_stream },
};
#define CTL_NCOMMANDS	(sizeof ctl_commands / sizeof ctl_commands[0])

static int			 ctl_fd = -1;
static int			 ctl_wake[2] = { -1, -1 };
static atomic_int		 ctl_stopping;

/*
 * Slow commands, which may read the whole index (a dry run over millions
 * of files, every conflict or pin), run in a worker thread of their own,
 * so that status, stats, where and explain keep answering meanwhile.
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

uint64_t
ctl_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Seconds since the socket started serving: status's uptime. */
long
ctl_uptime(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - ctl_started.tv_sec);
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

/*
 * Resolve the paths c's command takes, then run it.  Errors name the
 * command as dfsctl's user typed it, without its options.
 */
static int
ctl_run(struct ctl_client *c, struct ctl_buf *b)
{
	const struct ctl_command	*cmd = &ctl_commands[c->hdr.command];
	struct ctl_paths		 p;
	char				 what[32];
	int				 rv, status;

	snprintf(what, sizeof what, "%.*s", (int)strcspn(cmd->name, " "),
	    cmd->name);
	switch (cmd->args) {
	case CTL_ARGS_PATH:
		rv = ctl_one_path(c, b, what, &p);
		break;
	case CTL_ARGS_FILES:
		rv = ctl_paths_at(c, b, what, 1, cmd->minlen, &p);
		break;
	default:
		memset(&p, 0, sizeof p);
		rv = 0;
		break;
	}
	if (rv != 0)
		return (DFS_STATUS_FAILED);
	status = cmd->handler(c, b, &p);
	ctl_paths_free(&p);
	return (status);
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
	status = ctl_run(c, &b);
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

	if (ctl_commands[c->hdr.command].speed != CTL_SLOW)
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
		    ctl_commands[i].args > CTL_ARGS_FILES ||
		    (ctl_commands[i].args == CTL_ARGS_PATH &&
		    ctl_commands[i].minlen == 0) ||
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
