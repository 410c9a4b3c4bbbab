/*
 * The migration worker: a thread inside the daemon that moves files the
 * policies select to their target tier while the tree stays online.  It
 * picks candidates from the index a page at a time, asks policy_decide
 * about each, and hands the moves to migrate_move.c; the triggers (a
 * request, the interval, a watermark, a tier short of room, promotions)
 * and the run records live here too.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dfs.h"
#include "migrate_int.h"

#define MIG_BATCH	512

static pthread_t		 mig_thread;
static int			 mig_started;
pthread_mutex_t			 mig_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 mig_cv = PTHREAD_COND_INITIALIZER;
static struct dfs_config	*mig_conf;	/* guarded by mig_conf_mtx */
static pthread_mutex_t		 mig_conf_mtx = PTHREAD_MUTEX_INITIALIZER;
static int			 mig_stop;
static int			 mig_kick;
static int			 mig_room;	/* a tier fell short of min_free */
static char			**mig_kick_paths;
static size_t			 mig_kick_npaths;
static struct mig_run		 mig_runs[MIG_RUNS];
static size_t			 mig_nruns;
struct mig_run			 mig_cur;
static int			 mig_running;
static unsigned long		 mig_run_seq;
static char			*mig_crash_at;	/* fault injection, tests only */

static const char *const mig_skip_names[MIG_SKIP_MAX] = {
	[MIG_SKIP_CHANGED] = "changed",
	[MIG_SKIP_WRITERS] = "open for writing",
	[MIG_SKIP_PINNED] = "pinned",
	[MIG_SKIP_CONFLICT] = "name taken on target",
	[MIG_SKIP_LINKS] = "hard links",
	[MIG_SKIP_RESIDENCY] = "minimum residency",
	[MIG_SKIP_EXCLUDED] = "excluded",
	[MIG_SKIP_LIMIT] = "run limit",
	[MIG_SKIP_LONGPATH] = "path over PATH_MAX",
};

const char *
migrate_skip_name(int why)
{
	return (why >= 0 && why < MIG_SKIP_MAX ? mig_skip_names[why] : "?");
}

/* Die here if the tests asked for it (DFS_CRASH_AT=step). */
void
mig_crash(const char *step)
{
	if (mig_crash_at != NULL && strcmp(mig_crash_at, step) == 0) {
		log_warn("crash injected at %s", step);
		raise(SIGKILL);
	}
}

/* Pinned inodes as last counted (-1: count again), and pin changes. */
static pthread_mutex_t	mig_pins_mtx = PTHREAD_MUTEX_INITIALIZER;
static long		mig_npins = -1;
static unsigned		mig_pins_gen;

/* Is the file or a directory above it pinned? */
static int
mig_pinned(void *arg, fuse_ino_t id)
{
	struct irow	r;
	fuse_ino_t	parent;
	char		name[NAME_MAX + 1];
	long		np;
	unsigned	gen;
	int		depth = 0;

	/*
	 * Most trees pin nothing: then no candidate need walk up its
	 * parents.  The count is taken again after every pin or unpin; one
	 * taken while a pin changed is not kept.
	 */
	pthread_mutex_lock(&mig_pins_mtx);
	np = mig_npins;
	gen = mig_pins_gen;
	pthread_mutex_unlock(&mig_pins_mtx);
	if (np < 0 && (np = index_pin_count()) >= 0) {
		pthread_mutex_lock(&mig_pins_mtx);
		if (gen == mig_pins_gen)
			mig_npins = np;
		pthread_mutex_unlock(&mig_pins_mtx);
	}
	if (np == 0)
		return (0);
	while (id != 0 && depth++ < 65536) {
		if (index_get(id, &r) != 0)
			return (0);
		if (r.pin)
			return (1);
		if (id == FUSE_ROOT_ID ||
		    index_name(id, &parent, name, sizeof name) != 0)
			return (0);
		id = parent;
	}
	return (0);
}

/* A dry run: what would move goes to cb, counted against the limits. */
struct mig_plan {
	int		(*cb)(void *, const struct mig_item *);	/* 1: stop */
	void		 *arg;
	unsigned long	  files;
	uint64_t	  bytes;
	int		  all;		/* also files that stay put: explain */
	unsigned long	  limit;	/* files to plan; 0: the run's limits */
	int		  stop;
	struct node	 *keep;		/* the last file's directory, held */
};

/*
 * Decide for one file (and, unless planning, move it).  force_to >= 0: a
 * watermark run, moving to that tier unless a policy excludes the file
 * or sends it elsewhere; with promote, a promotion to that tier unless a
 * policy excludes the file.  Returns 0 (moved or nothing to do), or counts a
 * skip or an error in the current run.
 */
static void
mig_one(const struct irow *r, int force_to, int promote,
    struct mig_plan *plan, const struct mig_limits *lim)
{
	struct policy_file		 pf;
	struct policy_decision		 d;
	struct mig_item			 it;
	struct node			*n, *parent = NULL;
	struct stat			 st;
	char				 name[NAME_MAX + 1];
	int64_t				 now = mig_now_ns();
	nlink_t				 nl;
	int				 rv, to = -1, src = r->tier, fd, et;

	memset(&it, 0, sizeof it);
	it.id = r->id;
	it.from = src;
	it.to = -1;
	it.skip = -1;
	/*
	 * Policies match whole paths, and recovery finds a move's directory
	 * by one: a file deeper than PATH_MAX stays where it is, counted.
	 */
	if ((rv = index_path(r->id, it.path, sizeof it.path)) != 0) {
		if (rv != -ENAMETOOLONG)
			return;
		size_t	l = strlen(it.path), cut;

		/* index_path leaves the end of the path: shown as such */
		cut = l + 4 > sizeof it.path ? l + 4 - sizeof it.path : 0;
		memmove(it.path + 3, it.path + cut, l - cut + 1);
		memcpy(it.path, "...", 3);
		n = NULL;
		it.skip = MIG_SKIP_LONGPATH;
		goto done;
	}
	if ((n = resolve_node(r->id, 0)) == NULL)
		return;
	if (n->is_dir || node_name(n, &parent, name, sizeof name) != 0 ||
	    n->tier != src || (fd = node_dirfd(parent, src)) < 0 ||
	    tier_fstatat(src, fd, name, &st) != 0 || !S_ISREG(st.st_mode) ||
	    !tier_same_file(src, &st, st.st_dev, r->ino)) {
		it.skip = MIG_SKIP_CHANGED;
		goto done;
	}
	it.size = st.st_size;
	it.age = now / 1000000000 - st.st_mtim.tv_sec;
	nl = mig_nlink(src, r->id, &st);
	memset(&pf, 0, sizeof pf);
	pf.id = r->id;
	pf.path = it.path;
	pf.st = &st;
	pf.row = r;
	pf.tier = src;
	pf.nlink = nl;
	pf.now = now;
	pf.force_to = force_to;
	pf.promote = promote;
	pf.pinned = mig_pinned;
	pthread_mutex_lock(&mig_conf_mtx);
	policy_decide(mig_conf, &pf, &d);
	pthread_mutex_unlock(&mig_conf_mtx);
	snprintf(it.policy, sizeof it.policy, "%s", d.name);
	snprintf(it.why, sizeof it.why, "%s", d.why);
	it.to = to = d.to;
	it.skip = d.skip;
	if (it.skip >= 0 || to < 0 || to == src)
		goto done;
	if (plan != NULL) {
		if (plan->cb(plan->arg, &it) != 0)
			plan->stop = 1;
		plan->files++;
		plan->bytes += st.st_size;
		goto out;
	}
	if (nl > 1 || st.st_size >= MIG_SMALL) {
		/*
		 * Groups and large files move on their own, after the batch
		 * before them: a large file's copy outweighs what a batch
		 * saves, and should not hold a batch's files back.
		 */
		mig_flush();
		et = to;
		if (nl > 1)
			rv = mig_move_group(n, parent, name, &st, src, to, lim,
			    &et);
		else
			rv = mig_move(n, parent, name, &st, src, to, lim, NULL,
			    0, &et);
		mig_result(it.path, src, to, et, st.st_size, rv);
	} else if (mig_batch_add(n, parent, name, it.path, &st, src, to))
		n = parent = NULL;	/* the batch holds the references now */
	mig_batch_tick();
	goto out;
done:
	if (plan == NULL && it.skip >= 0) {
		pthread_mutex_lock(&mig_mtx);
		mig_cur.skipped[it.skip]++;
		pthread_mutex_unlock(&mig_mtx);
	} else if (plan != NULL && (it.skip >= 0 || plan->all) &&
	    plan->cb(plan->arg, &it) != 0)
		plan->stop = 1;
out:
	if (plan != NULL && parent != NULL) {
		/*
		 * The next candidate is most often in the same directory:
		 * held, its node keeps its handles, and the next lookup
		 * opens nothing.
		 */
		node_put(plan->keep);
		plan->keep = parent;
		parent = NULL;
	}
	node_put(parent);
	node_put(n);
}

/*
 * What the policies have before them, for the estimate of the time a
 * run has left: the candidates the index counts (files some rule keeps
 * where they are included, and those two policies name counted twice).
 */
static void
mig_count_todo(void)
{
	const struct dfs_config_policy	*p;
	uint64_t			 files, bytes, tf = 0, tb = 0;
	int64_t				 before;
	unsigned			 k;
	int				 t, by, from, to;

	for (k = 0;; k++) {
		pthread_mutex_lock(&mig_conf_mtx);
		if (mig_conf == NULL || k >= mig_conf->npolicies) {
			pthread_mutex_unlock(&mig_conf_mtx);
			break;
		}
		p = &mig_conf->policies[k];
		from = p->from;
		to = p->to;
		by = p->age_by == DFS_AGE_CTIME ? 1 : p->age_by ==
		    DFS_AGE_ACCESS ? 2 : 0;
		before = p->age_by == DFS_AGE_ATIME ? INT64_MAX - 1 :
		    mig_now_ns() - p->age * 1000000000;
		if (p->action != DFS_POLICY_MIGRATE)
			from = to = -2;		/* nothing to count */
		pthread_mutex_unlock(&mig_conf_mtx);
		for (t = 0; t < dfs.ntiers && to != -2; t++) {
			if ((from >= 0 && t != from) || t == to ||
			    index_count_candidates(t, by, before + 1, &files,
			    &bytes) != 0)
				continue;
			tf += files;
			tb += bytes;
		}
	}
	pthread_mutex_lock(&mig_mtx);
	mig_cur.todo = tf;
	mig_cur.todo_bytes = tb;
	pthread_mutex_unlock(&mig_mtx);
}

/* Has the run (or the dry run) reached its file or byte limit? */
static int
mig_limited(struct mig_plan *plan)
{
	unsigned long	files, pfiles;
	uint64_t	bytes, pbytes;
	int		limited;

	if (plan != NULL && (plan->stop ||
	    (plan->limit > 0 && plan->files >= plan->limit)))
		return (1);
	pfiles = 0;
	pbytes = 0;
	if (plan == NULL)
		mig_batch_size(&pfiles, &pbytes);
	pthread_mutex_lock(&mig_conf_mtx);
	pthread_mutex_lock(&mig_mtx);
	/* Copies waiting for their batch count as moved. */
	files = plan != NULL ? plan->files : mig_cur.files + pfiles;
	bytes = plan != NULL ? plan->bytes : mig_cur.bytes + pbytes;
	limited = mig_stop || (mig_conf != NULL &&
	    ((mig_conf->migration.max_files > 0 &&
	    files >= (unsigned long)mig_conf->migration.max_files) ||
	    (mig_conf->migration.max_bytes > 0 &&
	    bytes >= (uint64_t)mig_conf->migration.max_bytes)));
	pthread_mutex_unlock(&mig_mtx);
	pthread_mutex_unlock(&mig_conf_mtx);
	return (limited);
}

/*
 * What tier t has free in blocks of sv's size, counting as free what the
 * moves in flight free once their sources go, so that a run stops in time
 * without giving up its batches.
 */
static double
mig_avail(int t, struct statvfs *sv)
{
	double		avail;

	if (tier_statfs(t, sv) != 0 || sv->f_blocks == 0 || sv->f_frsize == 0)
		return (-1);
	avail = (double)sv->f_bavail + mig_freed_blocks(t, sv->f_frsize);
	if (avail > sv->f_blocks)
		avail = sv->f_blocks;
	return (avail);
}

/* Tier t's usage in percent, moves in flight counted as done. */
static int
mig_usage(int t)
{
	struct statvfs	sv;
	double		avail;

	if ((avail = mig_avail(t, &sv)) < 0)
		return (0);
	return ((int)(100 - avail * 100 / sv.f_blocks));
}

/*
 * Is tier t short of room for new files: less than factor times its
 * min_free free, moves in flight counted as done?  A run that starts at 1
 * goes on until 2, so that it does not stop at the edge.
 */
static int
mig_short(int t, int factor)
{
	struct statvfs	sv;
	uint64_t	a, need;
	double		avail;

	if (tier_room(t, &a, &need) < 0 || need == 0 ||
	    (avail = mig_avail(t, &sv)) < 0)
		return (0);
	return (avail * sv.f_frsize < (double)need * factor);
}

/* Has tier t more than its min_free free (or cannot it say)? */
static int
mig_room_for(int t)
{
	uint64_t	avail, need;

	return (tier_room(t, &avail, &need) != 0);
}

/* Should a room run on tier t go on? */
static int
mig_want_room(int t, int high, int low)
{
	return ((high > 0 && mig_usage(t) > low) || mig_short(t, 2));
}

/*
 * One run: the named paths, or the watermarks (oldest first until below
 * the low one) and then each migrate policy's candidates.
 */
static void
mig_run(char **paths, size_t npaths, struct mig_plan *plan)
{
	struct mig_limits	 lim;
	struct irow		*rows, r;
	const struct dfs_config	*c;
	size_t			 i, n, k;
	int			 t, from, to, by, high, low, npol;
	int64_t			 before, reads, window, after;
	fuse_ino_t		 after_id;

	pthread_mutex_lock(&mig_conf_mtx);
	/* The config may be replaced by a reload: read it only under the lock. */
	c = mig_conf;
	lim.bandwidth = c != NULL ? c->migration.bandwidth : 0;
	lim.verify = c != NULL ? c->migration.verify : 0;
	npol = c != NULL ? (int)c->npolicies : 0;
	pthread_mutex_unlock(&mig_conf_mtx);
	if (plan == NULL)
		mig_set_limits(&lim);

	if (plan == NULL && npaths > 0) {
		pthread_mutex_lock(&mig_mtx);
		mig_cur.todo = npaths;
		pthread_mutex_unlock(&mig_mtx);
	} else if (plan == NULL)
		mig_count_todo();
	if (npaths > 0) {
		for (i = 0; i < npaths && !mig_limited(plan); i++) {
			if (index_resolve(paths[i], &r) == 0 &&
			    r.type == S_IFREG)
				mig_one(&r, -1, 0, plan, &lim);
		}
		return;
	}
	for (t = 0; t + 1 < dfs.ntiers && plan == NULL; t++) {
		pthread_mutex_lock(&mig_conf_mtx);
		c = mig_conf;
		high = c != NULL && t < c->ntiers ? c->tiers[t].high_watermark :
		    0;
		low = c != NULL && t < c->ntiers ? c->tiers[t].low_watermark :
		    0;
		pthread_mutex_unlock(&mig_conf_mtx);
		if (mig_short(t, 1))
			log_info("tier %s is short of its min_free: moving the "
			    "oldest files to %s", dfs.tiers[t].name,
			    dfs.tiers[t + 1].name);
		else if (high > 0 && mig_usage(t) > high)
			log_info("tier %s is %d%% full, above %d%%: moving the "
			    "oldest files to %s", dfs.tiers[t].name,
			    mig_usage(t), high, dfs.tiers[t + 1].name);
		else
			continue;
		after = INT64_MIN;
		after_id = 0;
		while (mig_want_room(t, high, low) && !mig_limited(plan)) {
			if (index_candidates(t, 0, INT64_MAX, &after, &after_id,
			    MIG_BATCH, &rows, &n) != 0)
				break;
			for (i = 0; i < n && mig_want_room(t, high, low) &&
			    !mig_limited(plan); i++)
				mig_one(&rows[i], t + 1, 0, NULL, &lim);
			free(rows);
			if (n < MIG_BATCH)
				break;
		}
	}
	for (k = 0; k < (size_t)npol && !mig_limited(plan); k++) {
		pthread_mutex_lock(&mig_conf_mtx);
		if (mig_conf == NULL || k >= mig_conf->npolicies ||
		    mig_conf->policies[k].action != DFS_POLICY_MIGRATE) {
			pthread_mutex_unlock(&mig_conf_mtx);
			continue;
		}
		from = mig_conf->policies[k].from;
		to = mig_conf->policies[k].to;
		by = mig_conf->policies[k].age_by == DFS_AGE_CTIME ? 1 :
		    mig_conf->policies[k].age_by == DFS_AGE_ACCESS ? 2 : 0;
		before = mig_now_ns() - mig_conf->policies[k].age * 1000000000;
		/* The index keeps no atime: every file is a candidate. */
		if (mig_conf->policies[k].age_by == DFS_AGE_ATIME)
			before = INT64_MAX - 1;
		pthread_mutex_unlock(&mig_conf_mtx);
		for (t = 0; t < dfs.ntiers; t++) {
			if ((from >= 0 && t != from) || t == to)
				continue;
			/* Page through them all: skipped ones hide none. */
			after = INT64_MIN;
			after_id = 0;
			do {
				if (index_candidates(t, by, before + 1, &after,
				    &after_id, MIG_BATCH, &rows, &n) != 0)
					break;
				for (i = 0; i < n && !mig_limited(plan); i++)
					mig_one(&rows[i], -1, 0, plan, &lim);
				free(rows);
			} while (n == MIG_BATCH && !mig_limited(plan));
		}
	}
	pthread_mutex_lock(&mig_conf_mtx);
	c = mig_conf;
	reads = c != NULL ? c->migration.promote_after_reads : 0;
	window = c != NULL ? c->migration.promote_window : 0;
	pthread_mutex_unlock(&mig_conf_mtx);
	for (t = 1; reads > 0 && t < dfs.ntiers && !mig_limited(plan); t++) {
		if (index_hot(t, reads, mig_now_ns() - window * 1000000000,
		    MIG_BATCH, &rows, &n) != 0)
			continue;
		/* Promotions never take the room kept for new files. */
		for (i = 0; i < n && !mig_limited(plan) && mig_room_for(0);
		    i++)
			mig_one(&rows[i], 0, 1, plan, &lim);
		free(rows);
	}
}

/* Begin a run; mig_mtx is held.  Its number is the next one. */
static void
mig_begin_locked(const char *trigger)
{
	memset(&mig_cur, 0, sizeof mig_cur);
	mig_cur.seq = ++mig_run_seq;
	mig_cur.started = time(NULL);
	snprintf(mig_cur.trigger, sizeof mig_cur.trigger, "%s", trigger);
	mig_running = 1;
}

/* Run what mig_begin_locked began, and keep its record. */
static void
mig_record(char **paths, size_t npaths)
{
	double	t0 = mig_mono();

	scan_hold();
	mig_run(paths, npaths, NULL);
	mig_flush();
	mig_finish();
	scan_release();

	pthread_mutex_lock(&mig_mtx);
	mig_cur.seconds = mig_mono() - t0;
	memmove(&mig_runs[1], &mig_runs[0], (MIG_RUNS - 1) *
	    sizeof mig_runs[0]);
	mig_runs[0] = mig_cur;
	if (mig_nruns < MIG_RUNS)
		mig_nruns++;
	mig_running = 0;
	pthread_cond_broadcast(&mig_cv);
	pthread_mutex_unlock(&mig_mtx);
	if (mig_cur.files > 0 || mig_cur.errors > 0)
		log_info("migration run %lu (%s): %lu files, %llu bytes, %lu "
		    "errors, %.1fs", mig_cur.seq, mig_cur.trigger,
		    mig_cur.files, (unsigned long long)mig_cur.bytes,
		    mig_cur.errors, mig_cur.seconds);
}

static void
mig_free_paths(char **paths, size_t n)
{
	while (n > 0)
		free(paths[--n]);
	free(paths);
}

/* Is any tier but the last over its high watermark or short of room? */
static int
mig_over_watermark(void)
{
	int	t, high, over = 0;

	for (t = 0; t + 1 < dfs.ntiers && !over; t++) {
		pthread_mutex_lock(&mig_conf_mtx);
		high = mig_conf != NULL && t < mig_conf->ntiers ?
		    mig_conf->tiers[t].high_watermark : 0;
		pthread_mutex_unlock(&mig_conf_mtx);
		over = (high > 0 && mig_usage(t) > high) || mig_short(t, 1);
	}
	return (over);
}

static void *
mig_main(void *arg)
{
	struct timespec	 until;
	sigset_t	 set;
	char		**paths;
	size_t		 npaths;
	time_t		 last = time(NULL), interval = 0, last_wm = 0;
	int64_t		 window;
	int		 over;
	const char	*trigger;

	(void)arg;
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/*
	 * The lowest CPU priority (for this thread alone, on Linux): the
	 * threads serving clients run first, and the kernel's share of the
	 * copy is charged to this thread.
	 */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) == -1)
		log_debug("setpriority: %s", strerror(errno));
	for (;;) {
		/*
		 * Wake for a request, the interval, or a watermark check.  Runs,
		 * requested ones too, wait for a complete index: before it, a
		 * run would see only part of the tree.
		 */
		pthread_mutex_lock(&mig_mtx);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += interval > 0 && interval < 5 ? interval : 5;
		while (!mig_stop && !((mig_kick || mig_room) &&
		    index_is_scanned()))
			if (pthread_cond_timedwait(&mig_cv, &mig_mtx,
			    &until) != 0)
				break;
		mig_room = 0;
		pthread_mutex_unlock(&mig_mtx);
		if (mig_stop)
			break;

		pthread_mutex_lock(&mig_conf_mtx);
		interval = mig_conf != NULL ? mig_conf->migration.interval : 0;
		window = mig_conf != NULL ?
		    mig_conf->migration.promote_window * 1000000000 : 0;
		pthread_mutex_unlock(&mig_conf_mtx);
		index_flush(window);
		over = index_is_scanned() && mig_over_watermark();

		trigger = NULL;
		paths = NULL;
		npaths = 0;
		pthread_mutex_lock(&mig_mtx);
		if (!index_is_scanned() || mig_stop)
			;
		else if (mig_kick) {
			trigger = "request";
			paths = mig_kick_paths;
			npaths = mig_kick_npaths;
			mig_kick = 0;
			mig_kick_paths = NULL;
			mig_kick_npaths = 0;
		} else if (interval > 0 && time(NULL) - last >= interval) {
			trigger = "interval";
			last = time(NULL);
		} else if (over && (mig_runs[0].files > 0 ||
		    strcmp(mig_runs[0].trigger, "watermark") != 0 ||
		    time(NULL) - last_wm >= 60)) {
			/* A tier that stays full with nothing to move: once a minute. */
			trigger = "watermark";
			last_wm = time(NULL);
		}
		if (trigger != NULL)
			mig_begin_locked(trigger);
		pthread_mutex_unlock(&mig_mtx);
		if (trigger != NULL)
			mig_record(paths, npaths);
		mig_free_paths(paths, npaths);
	}
	return (NULL);
}

/* The scan completed: a requested run may start. */
void
migrate_wake(void)
{
	pthread_mutex_lock(&mig_mtx);
	pthread_cond_broadcast(&mig_cv);
	pthread_mutex_unlock(&mig_mtx);
}

/*
 * Tier t has fallen short of its min_free: check the tiers now, not at
 * the next interval, so that room is made while new files go elsewhere.
 */
void
migrate_room_short(int t)
{
	(void)t;
	pthread_mutex_lock(&mig_mtx);
	mig_room = 1;
	pthread_cond_broadcast(&mig_cv);
	pthread_mutex_unlock(&mig_mtx);
}

/* A tier's watermarks in the current config (0: none). */
int
migrate_watermarks(int t, int *high, int *low)
{
	pthread_mutex_lock(&mig_conf_mtx);
	*high = *low = 0;
	if (mig_conf != NULL && t >= 0 && t < mig_conf->ntiers) {
		*high = mig_conf->tiers[t].high_watermark;
		*low = mig_conf->tiers[t].low_watermark;
	}
	pthread_mutex_unlock(&mig_conf_mtx);
	return (*high > 0);
}

/* Take a (new) config; the old one is returned for the caller to free. */
struct dfs_config *
migrate_configure(struct dfs_config *c)
{
	struct dfs_config	*old;

	pthread_mutex_lock(&mig_conf_mtx);
	old = mig_conf;
	mig_conf = c;
	pthread_mutex_unlock(&mig_conf_mtx);
	return (old);
}

int
migrate_start(void)
{
	const char	*crash = getenv("DFS_CRASH_AT");
	int		 rv;

	if (crash != NULL && *crash != '\0')
		mig_crash_at = strdup(crash);
	if ((rv = pthread_create(&mig_thread, NULL, mig_main, NULL)) != 0)
		return (-rv);
	mig_started = 1;
	return (0);
}

void
migrate_shutdown(void)
{
	if (!mig_started)
		return;
	pthread_mutex_lock(&mig_mtx);
	mig_stop = 1;
	pthread_cond_broadcast(&mig_cv);
	pthread_mutex_unlock(&mig_mtx);
	pthread_join(mig_thread, NULL);
	mig_started = 0;
	mig_free_paths(mig_kick_paths, mig_kick_npaths);
}

/*
 * Ask for a run now (of the given paths only, if any).  Returns the number
 * the run will have, for migrate_status.
 */
unsigned long
migrate_kick(const char *const *paths, size_t npaths)
{
	unsigned long	  seq;
	char		**np;
	size_t		  i;

	pthread_mutex_lock(&mig_mtx);
	/*
	 * Requests before the run starts join it: a request for the whole
	 * tree covers any for named paths, and named paths add up.
	 */
	if (!mig_kick || mig_kick_npaths > 0) {
		if (npaths == 0) {
			mig_free_paths(mig_kick_paths, mig_kick_npaths);
			mig_kick_paths = NULL;
			mig_kick_npaths = 0;
		} else if ((np = realloc(mig_kick_paths, (mig_kick_npaths +
		    npaths) * sizeof *np)) != NULL) {
			mig_kick_paths = np;
			for (i = 0; i < npaths; i++)
				if ((np[mig_kick_npaths] = strdup(paths[i])) !=
				    NULL)
					mig_kick_npaths++;
		}
	}
	mig_kick = 1;
	seq = mig_run_seq + 1;
	pthread_cond_broadcast(&mig_cv);
	pthread_mutex_unlock(&mig_mtx);
	return (seq);
}

/* The current run (if one is running) and the last ones, newest first. */
void
migrate_status(struct mig_status *s)
{
	pthread_mutex_lock(&mig_mtx);
	s->running = mig_running;
	s->current = mig_cur;
	memcpy(s->runs, mig_runs, sizeof s->runs);
	s->nruns = mig_nruns;
	s->seq = mig_run_seq;
	pthread_mutex_unlock(&mig_mtx);
}

static void	mig_flush_deferred(void);

/* What a run would do, without moving anything. */
void
migrate_plan(const char *const *paths, size_t npaths, unsigned long limit,
    int (*cb)(void *, const struct mig_item *), void *arg)
{
	struct mig_plan	plan = { cb, arg, 0, 0, 0, limit, 0, NULL };

	mig_flush_deferred();
	scan_hold();
	/* Its many reads on a snapshot: they hold no client back. */
	index_read_begin();
	mig_run((char **)paths, npaths, &plan);
	index_read_end();
	node_put(plan.keep);
	scan_release();
}

/*
 * Sizes, times and accesses queued for the index: written before a plan
 * or an explanation, as the worker does before a run, so that each sees
 * what the run would.
 */
static void
mig_flush_deferred(void)
{
	int64_t	window;

	pthread_mutex_lock(&mig_conf_mtx);
	window = mig_conf != NULL ?
	    mig_conf->migration.promote_window * 1000000000 : 0;
	pthread_mutex_unlock(&mig_conf_mtx);
	index_flush(window);
}

static int
mig_explain_cb(void *arg, const struct mig_item *it)
{
	*(struct mig_item *)arg = *it;
	return (0);
}

/*
 * What a run would do with the file at path, and why: the worker's own
 * decision (mig_one, planning), so that explain cannot disagree with it.
 */
int
migrate_explain(const char *path, char *buf, size_t len)
{
	struct mig_limits	 lim = { 0, 0 };
	struct mig_item		*it;
	struct mig_plan		 plan = { mig_explain_cb, NULL, 0, 0, 1, 0, 0,
	    NULL };
	struct irow		 r;
	int64_t			 reads, window;
	int			 rv, promote;

	mig_flush_deferred();
	if ((rv = index_resolve(path, &r)) != 0)
		return (rv);
	if (r.type != S_IFREG) {
		snprintf(buf, len, "%s: not a regular file; only files move",
		    path);
		return (0);
	}
	if ((it = calloc(1, sizeof *it)) == NULL)
		return (-ENOMEM);
	it->from = -2;		/* no decision came */
	plan.arg = it;
	pthread_mutex_lock(&mig_conf_mtx);
	reads = mig_conf != NULL ? mig_conf->migration.promote_after_reads : 0;
	window = mig_conf != NULL ? mig_conf->migration.promote_window : 0;
	pthread_mutex_unlock(&mig_conf_mtx);
	promote = r.tier > 0 && reads > 0 && index_is_hot(r.id, reads,
	    mig_now_ns() - window * 1000000000);
	mig_one(&r, promote ? 0 : -1, promote, &plan, &lim);
	node_put(plan.keep);
	if (it->from == -2)
		snprintf(buf, len, "%s: on tier %s; changed or gone since the "
		    "index saw it", path, dfs.tiers[r.tier].name);
	else if (it->skip == MIG_SKIP_EXCLUDED)
		snprintf(buf, len, "%s: on tier %s; stays: excluded by policy "
		    "%s (%s)", path, dfs.tiers[r.tier].name, it->policy,
		    it->why);
	else if (it->skip >= 0 && it->to >= 0)
		snprintf(buf, len, "%s: on tier %s; %s %s moves it to %s (%s), "
		    "but it stays: %s", path, dfs.tiers[r.tier].name,
		    promote ? "a" : "policy", it->policy,
		    dfs.tiers[it->to].name, it->why, migrate_skip_name(it->skip));
	else if (it->skip >= 0)
		snprintf(buf, len, "%s: on tier %s; stays: %s", path,
		    dfs.tiers[r.tier].name, migrate_skip_name(it->skip));
	else if (it->to >= 0 && it->to != r.tier)
		snprintf(buf, len, "%s: on tier %s; %s %s moves it to %s (%s)",
		    path, dfs.tiers[r.tier].name, promote ? "a" : "policy",
		    it->policy, dfs.tiers[it->to].name, it->why);
	else
		snprintf(buf, len, "%s: on tier %s; stays: %s", path,
		    dfs.tiers[r.tier].name, it->why[0] != '\0' ? it->why :
		    "no policy takes it");
	free(it);
	return (0);
}

/* Pin or unpin the file or directory at path. */
int
migrate_pin(const char *path, int pin)
{
	struct irow	r;
	int		rv;

	if ((rv = index_resolve(path, &r)) != 0)
		return (rv);
	rv = index_set_pin(r.id, pin);
	pthread_mutex_lock(&mig_pins_mtx);
	mig_pins_gen++;
	mig_npins = -1;
	pthread_mutex_unlock(&mig_pins_mtx);
	return (rv);
}
