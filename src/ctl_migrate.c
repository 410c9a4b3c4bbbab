/*
 * Control commands for migration: start a run, its status, the dry run
 * (kept and shown in columns, or streamed line by line in constant memory)
 * and why a file would or would not move.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfs.h"
#include "dfs-protocol.h"
#include "ctl_int.h"

static const char *
ctl_tier_name(int t)
{
	return (t >= 0 && t < dfs.ntiers ? dfs.tiers[t].name : "-");
}

/* Runs and plans see only what the index holds. */
static void
ctl_unscanned(struct ctl_buf *b)
{
	if (!index_is_scanned())
		ctl_buf_printf(b, "note: no full scan has completed yet; files "
		    "not in the index yet are not considered\n");
}

/*
 * Seconds a running run has left, from the candidates it had at its
 * start and the pace so far (files moved, skipped or failed); -1 unknown.
 */
static long
ctl_eta(const struct mig_run *r, double secs)
{
	unsigned long	done = r->files + r->errors;
	int		i;

	for (i = 1; i < MIG_SKIP_MAX; i++)
		done += r->skipped[i];
	if (r->todo == 0 || done == 0 || secs <= 0)
		return (-1);
	if (done >= r->todo)
		return (0);
	return ((long)((r->todo - done) * (secs / done) + 0.5));
}

/* ", about 1h 2m left", or nothing when the pace is not known yet. */
static void
ctl_eta_text(struct ctl_buf *b, long eta)
{
	if (eta < 0)
		return;
	if (eta >= 3600)
		ctl_buf_printf(b, ", about %ldh %ldm left", eta / 3600,
		    eta / 60 % 60);
	else if (eta >= 60)
		ctl_buf_printf(b, ", about %ldm %lds left", eta / 60, eta % 60);
	else
		ctl_buf_printf(b, ", about %lds left", eta);
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
	ctl_buf_printf(b, ",\"candidates\":");
	if (r->todo > 0)
		ctl_buf_printf(b, "%lu", r->todo);
	else
		ctl_buf_printf(b, "null");
	ctl_buf_printf(b, ",\"eta\":");
	if (strcmp(state, "running") == 0 && ctl_eta(r, secs) >= 0)
		ctl_buf_printf(b, "%ld", ctl_eta(r, secs));
	else
		ctl_buf_printf(b, "null");
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
	if (strcmp(state, "running") == 0 && r->todo > 0) {
		ctl_buf_printf(b, "\nprogress  %lu of about %lu candidates",
		    r->files + r->errors + ctl_skipped(r), r->todo);
		ctl_eta_text(b, ctl_eta(r, secs));
	}
	ctl_buf_putc(b, '\n');
}

/* The running run and the last ones: JSON, or a table. */
void
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
		ctl_buf_printf(b, ") for %.0f s, %lu files, %s so far",
		    difftime(time(NULL), s->current.started),
		    s->current.files, size);
		if (s->current.todo > 0) {
			ctl_buf_printf(b, " (%lu of about %lu candidates",
			    s->current.files + s->current.errors +
			    ctl_skipped(&s->current), s->current.todo);
			ctl_eta_text(b, ctl_eta(&s->current,
			    difftime(time(NULL), s->current.started)));
			ctl_buf_putc(b, ')');
		}
		ctl_buf_putc(b, '\n');
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

int
ctl_cmd_migrate(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	unsigned long		 seq;

	seq = migrate_kick((const char *const *)p->rel, p->n);
	log_info("migration run %lu requested by uid %ld (pid %ld), %zu "
	    "paths", seq, (long)c->uid, (long)c->pid, p->n);
	if (c->hdr.flags & DFS_FLAG_JSON)
		ctl_buf_printf(b, "{\"run\":%lu,\"paths\":%zu,\"indexed\":%s}\n",
		    seq, p->n, index_is_scanned() ? "true" : "false");
	else {
		ctl_buf_printf(b, "migration run %lu started\n", seq);
		ctl_unscanned(b);
	}
	return (DFS_STATUS_OK);
}

int
ctl_cmd_migrate_status(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
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
	struct ctl_plan_item	*e;
	struct ctl_buf		 pb;

	if (array_grow(&pl->v, &pl->cap, pl->n + 1, sizeof *pl->v) != 0) {
		pl->nomem = 1;
		return (-1);
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

int
ctl_cmd_migrate_plan(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	struct ctl_plan		 pl;

	memset(&pl, 0, sizeof pl);
	if (p->n > 0) {
		pl.paths = p;
		if ((pl.seen = calloc(p->n, 1)) == NULL) {
			b->nomem = 1;
			return (DFS_STATUS_FAILED);
		}
	}
	migrate_plan((const char *const *)p->rel, p->n, 0, ctl_plan_cb, &pl);

	ctl_plan_named(p, pl.seen, ctl_plan_cb, &pl);
	if (pl.nomem)
		b->nomem = 1;
	else if (c->hdr.flags & DFS_FLAG_JSON)
		ctl_plan_json(b, &pl);
	else
		ctl_plan_text(b, &pl);
	ctl_plan_free(&pl);
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

int
ctl_cmd_migrate_stream(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	struct ctl_stream	*st;
	uint64_t		 limit;
	char			 size[32];
	size_t			 i;
	int			 json = (c->hdr.flags & DFS_FLAG_JSON) != 0;

	memcpy(&limit, c->payload, sizeof limit);
	if ((st = calloc(1, sizeof *st)) == NULL ||
	    ctl_buf_grow(&st->b, sizeof (struct dfs_proto_hdr) +
	    CTL_STREAM_CHUNK + PATH_MAX + 1024) != 0) {
		free(st);
		b->nomem = 1;
		return (DFS_STATUS_FAILED);
	}
	st->c = c;
	st->json = json;
	st->b.len = sizeof (struct dfs_proto_hdr);
	st->sent = ctl_now();
	if (p->n > 0) {
		st->paths = p;
		if ((st->seen = calloc(p->n, 1)) == NULL)
			st->b.nomem = 1;
	}
	if (!st->b.nomem)
		migrate_plan((const char *const *)p->rel, p->n, limit,
		    ctl_stream_cb, st);

	if (st->seen != NULL && !st->broken)
		ctl_plan_named(p, st->seen, ctl_stream_cb, st);
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
	return (DFS_STATUS_OK);
}

int
ctl_cmd_explain(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	const struct irow	*r = &p->rows[0];
	const char		*path = p->given[0], *rel = p->rel[0];
	const char		*text, *e;
	char			*buf;
	size_t			 len, blen = PATH_MAX + 512;
	int			 rv = DFS_STATUS_FAILED, err;

	if ((buf = malloc(blen)) == NULL) {
		b->nomem = 1;
		return (DFS_STATUS_FAILED);
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
		    (unsigned long long)r->id, ctl_type(r->type));
		ctl_buf_json(b, r->type == S_IFDIR ? NULL :
		    ctl_tier_name(r->tier));
		ctl_buf_printf(b, ",\"pinned\":%s,\"explain\":", r->pin ?
		    "true" : "false");
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
	return (rv);
}
