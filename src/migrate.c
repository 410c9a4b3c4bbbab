/*
 * The migration worker: a thread inside the daemon that moves files the
 * policies select to their target tier while the tree stays online.
 *
 * A move (DESIGN.md, "Migration: the protocol"): re-stat and compare with
 * the index; journal "copying"; copy into a temp file beside the target
 * name (holes kept), then owner, mode, xattrs and times, fsync, verify;
 * hold off operations on the file and re-check the source; rename the
 * temp into place and fsync the directory; switch the index row and the
 * journal in one transaction; unlink the source, fsync, drop the journal
 * row.  Recovery at start finishes or undoes what a crash interrupted.
 *
 * Small files move in batches, each step taken for the whole batch: one
 * transaction for the journal rows, one file system commit for the
 * copies, one transaction for the switches, one sync per directory
 * before the sources go.  Large files and hard-link groups move alone.
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

/*
 * The copy's unit: large while clients are quiet, small while they read
 * or write, so that each of their requests queues behind less of it.
 */
#define MIG_CHUNK	(512 * 1024)
#define MIG_CHUNK_BUSY	(128 * 1024)
#define MIG_BATCH	512

static pthread_t		 mig_thread;
static int			 mig_started;
static pthread_mutex_t		 mig_mtx = PTHREAD_MUTEX_INITIALIZER;
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
static struct mig_run		 mig_cur;
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
static void
mig_crash(const char *step)
{
	if (mig_crash_at != NULL && strcmp(mig_crash_at, step) == 0) {
		log_warn("crash injected at %s", step);
		raise(SIGKILL);
	}
}

static int64_t
mig_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static double
mig_mono(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static int64_t
mig_ns(const struct timespec *ts)
{
	return ((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
}

static int
mig_fsync_dir(int t, int dirfd)
{
	int	fd, rv = 0;

	if ((fd = tier_openat(t, dirfd, ".", O_RDONLY | O_DIRECTORY, 0)) < 0)
		return (fd);
	if (fsync(fd) == -1)
		rv = tier_error(t, "fsync", ".", errno);
	close(fd);
	return (rv);
}

/*
 * The parent directory of a journal row on tier t, walked one component
 * at a time from the tier's root, following no symlink.
 */
static int
mig_open_dir(fuse_ino_t dir, int t)
{
	char	 path[PATH_MAX], *p, *comp;
	int	 fd, nfd;

	if (index_path(dir, path, sizeof path) != 0)
		return (-ENOENT);
	if ((fd = tier_openat(t, dfs.tiers[t].fd, ".", O_PATH | O_DIRECTORY,
	    0)) < 0)
		return (fd);
	p = path;
	while ((comp = strsep(&p, "/")) != NULL) {
		if (*comp == '\0')
			continue;
		nfd = tier_openat(t, fd, comp, O_PATH | O_DIRECTORY, 0);
		close(fd);
		if ((fd = nfd) < 0)
			return (fd);
	}
	return (fd);
}

/* Is the file at name in dirfd on tier t still the source a row recorded? */
static int
mig_is_source(const struct jrow *j, int dirfd, struct stat *st)
{
	return (dirfd >= 0 && tier_fstatat(j->src, dirfd, j->name, st) == 0 &&
	    S_ISREG(st->st_mode) && tier_same_file(j->src, st, st->st_dev,
	    j->ino) && st->st_size == j->size &&
	    mig_ns(&st->st_mtim) == j->mtime);
}

/* Is the file at name in dirfd on tier t a copy of the row's source? */
static int
mig_is_copy(const struct jrow *j, int dirfd)
{
	struct stat	st;

	/* A tier keeping whole seconds (sshfs) has the copy's mtime cut. */
	return (dirfd >= 0 && tier_fstatat(j->dst, dirfd, j->name, &st) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size == j->size &&
	    tier_same_mtime(j->dst, &st, j->mtime));
}

static int
mig_jrow_cmp(const void *a, const void *b)
{
	const struct jrow	*x = a, *y = b;

	return (x->id < y->id ? -1 : x->id > y->id);
}

/*
 * Finish or undo the moves a crash interrupted, before the mount serves,
 * one file (all the journal rows of its names) at a time.
 *
 * Before the switch the source is the file: a copy renamed into place is
 * taken back out.  After it the copy is the file, whatever clients did
 * to it since (wrote, renamed, removed it: the index, which logs every
 * change, says so), and the source goes if it is still the file that was
 * copied.  One case only undoes a switch: the index still gives the name
 * to the file but the target tier has nothing there, as after a power
 * loss that kept the switch and not the rename; then the source, still
 * intact, is the file again.
 */
int
migrate_recover(void)
{
	struct jrow	*rows = NULL, *j;
	struct irow	 r;
	struct stat	 st;
	size_t		 n = 0, i, k, e;
	int		 sfd[64], dfd[64], rv = 0, switched, revert, nd;

	if ((rv = index_journal(&rows, &n)) != 0)
		return (rv);
	if (n > 1)
		qsort(rows, n, sizeof *rows, mig_jrow_cmp);
	for (i = 0; i < n && rv == 0; i = e) {
		for (e = i + 1; e < n && rows[e].id == rows[i].id &&
		    e - i < 64; e++)
			;
		nd = (int)(e - i);
		for (k = 0; k < (size_t)nd; k++) {
			j = &rows[i + k];
			sfd[k] = mig_open_dir(j->parent, j->src);
			dfd[k] = mig_open_dir(j->parent, j->dst);
			if (dfd[k] >= 0 && j->tmp[0] != '\0')
				tier_unlinkat(j->dst, dfd[k], j->tmp, 0);
		}
		/*
		 * A switch undone (by an earlier recovery that died before
		 * dropping the rows) leaves the source the file again.
		 */
		switched = rows[i].state == JOURNAL_SWITCHED &&
		    !(index_get(rows[i].id, &r) == 0 && r.tier == rows[i].src);
		revert = 0;
		if (switched) {
			for (k = 0; k < (size_t)nd && !revert; k++) {
				j = &rows[i + k];
				revert = index_lookup(j->parent, j->name,
				    &r) == 0 && r.id == j->id &&
				    r.tier == j->dst && dfd[k] >= 0 &&
				    tier_fstatat(j->dst, dfd[k], j->name,
				    &st) == -ENOENT && mig_is_source(j, sfd[k],
				    &st);
			}
			if (revert && index_switch(rows[i].id, rows[i].src,
			    st.st_dev, st.st_ino) != 0)
				revert = 0;	/* the index still says target */
			if (revert)
				switched = 0;
		}
		for (k = 0; k < (size_t)nd; k++) {
			j = &rows[i + k];
			if (switched) {
				if (mig_is_source(j, sfd[k], &st))
					tier_unlinkat(j->src, sfd[k], j->name,
					    0);
			} else if (mig_is_source(j, sfd[k], &st) &&
			    mig_is_copy(j, dfd[k]))
				/* Renamed into place, not switched. */
				tier_unlinkat(j->dst, dfd[k], j->name, 0);
		}
		for (k = 0; k < (size_t)nd; k++) {
			if (dfd[k] >= 0)
				close(dfd[k]);
			if (sfd[k] >= 0)
				close(sfd[k]);
		}
		log_info("recovered the move of inode %llu (%s) from tier %s "
		    "to %s: %s", (unsigned long long)rows[i].id, rows[i].name,
		    dfs.tiers[rows[i].src].name, dfs.tiers[rows[i].dst].name,
		    revert ? "the copy is missing, the source stays" :
		    !switched ? "not switched, the source stays" :
		    "switched, the copy stays");
	}
	/*
	 * What recovery removed is made durable once per tier, not once per
	 * directory, before the rows go: a crash before then runs it again.
	 */
	for (k = 0; n > 0 && k < (size_t)dfs.ntiers; k++) {
		int	fd = tier_openat((int)k, dfs.tiers[k].fd, ".", O_RDONLY |
		    O_DIRECTORY, 0);

		if (fd >= 0) {
			if (syncfs(fd) == -1)
				log_warn("tier %s: syncfs: %s",
				    dfs.tiers[k].name, strerror(errno));
			close(fd);
		}
	}
	for (i = 0; i < n && rv == 0; i = e) {
		fuse_ino_t	ids[64];
		size_t		m = 0;

		for (e = i; e < n && m < 64; e++)
			if (e == i || rows[e].id != rows[e - 1].id)
				ids[m++] = rows[e].id;
		rv = index_journal_del_many(ids, m);
	}
	free(rows);
	return (rv);
}

/* Sleep s seconds, if any. */
static void
mig_sleep(double s)
{
	struct timespec	ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* Keep to the bandwidth limit: sleep off any lead over it. */
static void
mig_pace(double start, uint64_t bytes, uint64_t bandwidth)
{
	if (bandwidth != 0)
		mig_sleep((double)bytes / bandwidth - (mig_mono() - start));
}

/*
 * The bulk copy yields the disk to clients: idle I/O class while it runs,
 * on schedulers that honour priorities (mq-deadline, bfq).  Syncs and
 * metadata keep the normal class, so small files are not held back.
 */
static void
mig_ioprio(int idle)
{
	int	prio = idle ? 3 << 13 : (2 << 13) | 4;	/* IDLE; BE, 4 */

	if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */,
	    (int)syscall(SYS_gettid), prio) == -1)
		log_debug("ioprio_set: %s", strerror(errno));
}

/* Copy [off, end) of in to out, by copy_file_range or read and write. */
static int
mig_copy_range(int in, int out, off_t off, off_t end, double start,
    uint64_t *done, uint64_t bandwidth, char **buf, off_t *wb,
    unsigned long *seen)
{
	ssize_t		n, w, r;
	size_t		len, chunk;
	unsigned long	io;
	double		t0;
	int		busy;

	while (off < end) {
		io = atomic_load_explicit(&dfs.client_io, memory_order_relaxed);
		busy = io != *seen;
		chunk = busy ? MIG_CHUNK_BUSY : MIG_CHUNK;
		*seen = io;
		t0 = mig_mono();
		len = end - off < (off_t)chunk ? (size_t)(end - off) : chunk;
		if (*buf == NULL) {
			loff_t	oi = off, oo = off;

			n = copy_file_range(in, &oi, out, &oo, len, 0);
			if (n == -1 && (errno == EXDEV || errno == EOPNOTSUPP ||
			    errno == ENOSYS || errno == EINVAL)) {
				if ((*buf = malloc(MIG_CHUNK)) == NULL)
					return (-ENOMEM);
				continue;
			}
		} else {
			n = pread(in, *buf, len, off);
			for (w = 0; n > 0 && w < n; w += r) {
				/* A short write is retried: its error is the cause. */
				if ((r = pwrite(out, *buf + w, n - w, off + w)) <= 0)
					return (r == -1 ? -errno : -EIO);
			}
		}
		if (n == -1)
			return (-errno);
		if (n == 0)
			return (-EIO);	/* the source shrank: changed */
		/*
		 * Start the chunk's writeback now, from this thread and at
		 * its I/O priority, and wait for the chunk before: one chunk
		 * in flight, rather than a burst of dirty pages for the final
		 * fsync to push past clients' reads.  A small file's only
		 * chunk is waited for by the batch's fsync.
		 */
		sync_file_range(out, off, n, SYNC_FILE_RANGE_WRITE);
		if (*wb < off)
			sync_file_range(out, *wb, off - *wb,
			    SYNC_FILE_RANGE_WAIT_BEFORE |
			    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
		*wb = off;
		off += n;
		*done += n;
		mig_pace(start, *done, bandwidth);
		/*
		 * While clients read or write, the copy takes at most half
		 * the time: it rests as long as its chunk took.
		 */
		if (busy && (t0 = mig_mono() - t0) > 0)
			mig_sleep(t0 > 0.1 ? 0.1 : t0);	/* t0: the chunk's time */
	}
	return (0);
}

/* The data of in into out, holes kept as holes. */
static int
mig_copy_data(int in, int out, off_t size, uint64_t bandwidth,
    uint64_t *copied)
{
	double		 start = mig_mono();
	char		*buf = NULL;
	off_t		 data, hole, off = 0, wb = 0;
	unsigned long	 seen = 0;
	int		 rv = 0;

	*copied = 0;
	while (off < size && rv == 0) {
		data = lseek(in, off, SEEK_DATA);
		if (data == -1 && errno == ENXIO)
			break;
		if (data == -1) {
			/* No hole support: all data. */
			rv = mig_copy_range(in, out, off, size, start, copied,
			    bandwidth, &buf, &wb, &seen);
			break;
		}
		if ((hole = lseek(in, data, SEEK_HOLE)) == -1)
			hole = size;
		if (hole > size)
			hole = size;
		rv = mig_copy_range(in, out, data, hole, start, copied,
		    bandwidth, &buf, &wb, &seen);
		off = hole;
	}
	free(buf);
	if (rv == 0 && ftruncate(out, size) == -1)
		rv = -errno;
	return (rv);
}

/* Read the copy back and compare it with the source. */
static int
mig_verify(int a, int b, off_t size)
{
	char	*x, *y;
	off_t	 off;
	ssize_t	 n, m;
	int	 rv = 0;

	x = malloc(1 << 20);
	y = malloc(1 << 20);
	if (x == NULL || y == NULL) {
		free(x);
		free(y);
		return (-ENOMEM);
	}
	for (off = 0; off < size && rv == 0; off += n) {
		n = pread(a, x, 1 << 20, off);
		m = pread(b, y, 1 << 20, off);
		if (n <= 0 || n != m || memcmp(x, y, n) != 0)
			rv = -EIO;
	}
	free(x);
	free(y);
	return (rv);
}

/* Is a, on tier t, still the file b was?  Numbers only where t keeps them. */
static int
mig_same(int t, const struct stat *a, const struct stat *b)
{
	return (tier_same_file(t, a, b->st_dev, b->st_ino) &&
	    a->st_size == b->st_size &&
	    mig_ns(&a->st_mtim) == mig_ns(&b->st_mtim) &&
	    mig_ns(&a->st_ctim) == mig_ns(&b->st_ctim));
}

/* Another name of a hard-linked file being moved. */
struct mig_name {
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	int		 sfd;
	int		 dfd;
};

/*
 * Switched moves whose sources are still to go: removed in batches, so
 * that each directory is synced once per batch rather than per file.
 */
struct mig_done {
	fuse_ino_t	 id;
	int		 src;
	int		 sfd;		/* dup of the source directory */
	char		 name[NAME_MAX + 1];
	ino_t		 ino;		/* the source's identity */
	off_t		 size;
	int64_t		 mtime;
	int		 dst;
	int		 dfd;		/* dup of the target directory */
};

#define MIG_DONE_MAX	64
static struct mig_done	mig_done[MIG_DONE_MAX];
static size_t		mig_ndone;
static double		mig_done_since;
/* The worker fills the batch; a client's create may empty it early. */
static pthread_mutex_t	mig_done_mtx = PTHREAD_MUTEX_INITIALIZER;
static double		mig_finished;	/* when a batch last went */

static int
mig_same_dir(int a, int b)
{
	struct stat	x, y;

	return (fstat(a, &x) == 0 && fstat(b, &y) == 0 &&
	    x.st_dev == y.st_dev && x.st_ino == y.st_ino);
}

/* Sync each directory of the batch once: tier t's target or source dirs. */
static void
mig_sync_dirs(int target)
{
	size_t	i, k;
	int	fd, t;

	for (i = 0; i < mig_ndone; i++) {
		fd = target ? mig_done[i].dfd : mig_done[i].sfd;
		t = target ? mig_done[i].dst : mig_done[i].src;
		for (k = 0; k < i; k++)
			if (mig_same_dir(fd, target ? mig_done[k].dfd :
			    mig_done[k].sfd))
				break;
		if (k == i)
			mig_fsync_dir(t, fd);
	}
}

/*
 * A moved file's source, only if it is still the file that was copied: a
 * client may have put another under the name since, even one that reuses
 * its inode number.
 */
static void
mig_remove_source(const struct mig_done *d)
{
	struct stat	st;

	if (tier_fstatat(d->src, d->sfd, d->name, &st) == 0 &&
	    S_ISREG(st.st_mode) && tier_same_file(d->src, &st, st.st_dev,
	    d->ino) && st.st_size == d->size &&
	    mig_ns(&st.st_mtim) == d->mtime)
		tier_unlinkat(d->src, d->sfd, d->name, 0);
}

/*
 * Finish the batch: the copies' directories are synced, then each source
 * that is still the file that was copied is removed, its directory
 * synced, and the journal rows dropped.
 */
static void
mig_finish_locked(void)
{
	size_t	i;

	if (mig_ndone == 0)
		return;
	mig_sync_dirs(1);
	for (i = 0; i < mig_ndone; i++) {
		mig_remove_source(&mig_done[i]);
	}
	mig_sync_dirs(0);
	mig_crash("unlinked");
	{
		fuse_ino_t	ids[MIG_DONE_MAX];

		for (i = 0; i < mig_ndone; i++) {
			ids[i] = mig_done[i].id;
			close(mig_done[i].sfd);
			close(mig_done[i].dfd);
		}
		index_journal_del_many(ids, mig_ndone);
	}
	mig_ndone = 0;
	mig_finished = mig_mono();
}

static void
mig_finish(void)
{
	pthread_mutex_lock(&mig_done_mtx);
	mig_finish_locked();
	pthread_mutex_unlock(&mig_done_mtx);
}

/*
 * The sources of switched moves go now, not with their batch: a client
 * that removed a moved file may make a new one of that name on the
 * source tier at once.  Returns whether any were waiting.
 */
int
migrate_sources_flush(void)
{
	int	any;

	pthread_mutex_lock(&mig_done_mtx);
	/* Or the worker removed some just before: worth a retry too. */
	any = mig_ndone > 0 || mig_mono() - mig_finished < 1.0;
	mig_finish_locked();
	pthread_mutex_unlock(&mig_done_mtx);
	return (any);
}

/*
 * A client renamed or unlinked file id: if its source still waits, the
 * batch goes now, or a lookup in a directory the index may lack names of
 * would find the source under the old name and bring the file back.
 */
void
migrate_sources_flush_id(fuse_ino_t id)
{
	size_t	i;

	pthread_mutex_lock(&mig_done_mtx);
	for (i = 0; i < mig_ndone; i++) {
		if (mig_done[i].id == id) {
			mig_finish_locked();
			break;
		}
	}
	pthread_mutex_unlock(&mig_done_mtx);
}

static void
mig_defer(fuse_ino_t id, int src, int sfd, const char *name,
    const struct stat *st, int dst, int dfd)
{
	struct mig_done	*d;

	pthread_mutex_lock(&mig_done_mtx);
	if (mig_ndone == MIG_DONE_MAX)
		mig_finish_locked();
	if (mig_ndone == 0)
		mig_done_since = mig_mono();
	d = &mig_done[mig_ndone];
	d->id = id;
	d->src = src;
	d->dst = dst;
	d->ino = st->st_ino;
	d->size = st->st_size;
	d->mtime = mig_ns(&st->st_mtim);
	snprintf(d->name, sizeof d->name, "%s", name);
	d->sfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	d->dfd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (d->sfd == -1 || d->dfd == -1) {
		/* No descriptor to spare: finish this one now. */
		if (d->sfd != -1)
			close(d->sfd);
		if (d->dfd != -1)
			close(d->dfd);
		d->sfd = sfd;
		mig_fsync_dir(dst, dfd);
		mig_remove_source(d);
		mig_fsync_dir(src, sfd);
		index_journal_del(id);
		pthread_mutex_unlock(&mig_done_mtx);
		return;
	}
	mig_ndone++;
	pthread_mutex_unlock(&mig_done_mtx);
}

struct mig_limits {
	uint64_t	bandwidth;
	int		verify;
};

/*
 * A move between its copy and its commit.  Copies wait in a batch so that
 * one file system commit makes them all durable: the first fsync of the
 * batch commits every copy's metadata, the others find it done.
 */
struct mig_pend {
	struct node	*n;		/* referenced, as is parent */
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	struct stat	 st;		/* the source as the copy began */
	int		 src;
	int		 dst;
	int		 sfd;		/* parent's handles, valid while held */
	int		 dfd;
	int		 in;
	int		 out;
	unsigned	 wgen;		/* the node's, before the copy began */
	char		 tmp[64];
	uint64_t	 bytes;
	int		 etier;		/* where a failure happened */
	struct mig_name	*extra;		/* the other names of a link group */
	size_t		 nextra;
	char		 path[PATH_MAX];
};

#define MIG_PEND_MAX	64
#define MIG_PEND_BYTES	((uint64_t)64 << 20)
#define MIG_SMALL	((off_t)1 << 20)	/* batched below this size */
static struct mig_pend	mig_pend[MIG_PEND_MAX];
static size_t		mig_npend;
static uint64_t		mig_pend_bytes;
static struct mig_limits mig_lim;	/* the current run's */

/* Undo a move before its switch: the copy goes, the source stays. */
static void
mig_undo(struct mig_pend *p, size_t linked, int moving)
{
	while (linked > 0) {
		linked--;
		tier_unlinkat(p->dst, p->extra[linked].dfd,
		    p->extra[linked].name, 0);
	}
	if (moving)
		node_move_end(p->n, -1, 0, 0);
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
	tier_unlinkat(p->dst, p->dfd, p->tmp, 0);
	index_journal_del(p->n->id);
}

/*
 * The handles a move needs, and the target names free: 0, a skip reason
 * (> 0) or -errno.
 */
static int
mig_check(struct mig_pend *p)
{
	struct stat	cst;
	size_t		i;

	p->in = p->out = -1;
	p->bytes = 0;
	p->etier = p->src;
	snprintf(p->tmp, sizeof p->tmp, "%s%llu", DFS_TMP_PREFIX,
	    (unsigned long long)p->n->id);
	if ((p->sfd = node_dirfd(p->parent, p->src)) < 0)
		return (p->sfd == -ENOENT ? MIG_SKIP_CHANGED : p->sfd);
	for (i = 0; i < p->nextra; i++)
		if ((p->extra[i].sfd = node_dirfd(p->extra[i].parent,
		    p->src)) < 0)
			return (p->extra[i].sfd);
	p->etier = p->dst;
	if ((p->dfd = ns_ensure_dir(p->parent, p->dst)) < 0)
		return (p->dfd);
	if (tier_fstatat(p->dst, p->dfd, p->name, &cst) == 0)
		return (MIG_SKIP_CONFLICT);
	for (i = 0; i < p->nextra; i++) {
		struct mig_name	*x = &p->extra[i];

		if ((x->dfd = ns_ensure_dir(x->parent, p->dst)) < 0)
			return (x->dfd);
		if (tier_fstatat(p->dst, x->dfd, x->name, &cst) == 0)
			return (MIG_SKIP_CONFLICT);
	}
	return (0);
}

/* The journal row of a move's (first) name. */
static void
mig_jrow(const struct mig_pend *p, struct jrow *j)
{
	memset(j, 0, sizeof *j);
	j->id = p->n->id;
	j->src = p->src;
	j->dst = p->dst;
	j->parent = p->parent->id;
	snprintf(j->name, sizeof j->name, "%s", p->name);
	snprintf(j->tmp, sizeof j->tmp, "%s", p->tmp);
	j->ino = p->st.st_ino;
	j->size = p->st.st_size;
	j->mtime = mig_ns(&p->st.st_mtim);
	j->ctime = mig_ns(&p->st.st_ctim);
	j->state = JOURNAL_COPYING;
}

/* Open the source and check it is still the file the move was decided on. */
static int
mig_open(struct mig_pend *p)
{
	struct stat	now;

	/* Reading for the copy is no access: atime stays as it was. */
	/*
	 * Writes through dfs that end after this show in wgen: timestamps
	 * alone may not (a coarse clock ticks every few milliseconds).
	 */
	p->wgen = atomic_load(&p->n->wgen);
	/* Renamed or removed since it was picked: a change, no error. */
	p->etier = p->src;
	if ((p->in = tier_openat(p->src, p->sfd, p->name, O_RDONLY |
	    O_NOATIME, 0)) < 0)
		return (p->in == -ENOENT ? MIG_SKIP_CHANGED : p->in);
	if (fstat(p->in, &now) == -1 || !mig_same(p->src, &now, &p->st))
		return (MIG_SKIP_CHANGED);
	p->etier = p->dst;
	return (0);
}

/*
 * Copy the source into a temp file beside the target name, with owner,
 * mode, xattrs and times.  Not synced yet.
 */
static int
mig_copy(struct mig_pend *p, const struct mig_limits *lim)
{
	struct stat	 now;
	struct timespec	 ts[2];
	int		 rv, src = p->src, dst = p->dst;

	tier_unlinkat(dst, p->dfd, p->tmp, 0);
	p->out = tier_openat(dst, p->dfd, p->tmp, O_RDWR | O_CREAT | O_EXCL |
	    O_NOATIME, 0600);
	if (p->out < 0)
		return (p->out);
	mig_ioprio(1);
	rv = mig_copy_data(p->in, p->out, p->st.st_size, lim->bandwidth,
	    &p->bytes);
	mig_ioprio(0);
	if (rv != 0) {
		/* A client writing meanwhile is no error: try it next run. */
		if (fstat(p->in, &now) == 0 && !mig_same(p->src, &now, &p->st))
			return (MIG_SKIP_CHANGED);
		return (tier_error(dst, "copy to", p->tmp, -rv));
	}
	tier_count(src, &dfs.tiers[src].stats.bytes_read, p->bytes);
	tier_count(dst, &dfs.tiers[dst].stats.bytes_written, p->bytes);
	mig_crash("copy");
	if (fchown(p->out, p->st.st_uid, p->st.st_gid) == -1)
		return (tier_error(dst, "chown", p->tmp, errno));
	if (fchmod(p->out, p->st.st_mode & 07777) == -1)
		return (tier_error(dst, "chmod", p->tmp, errno));
	tier_copy_xattrs(p->in, p->out, 0);
	ts[0] = p->st.st_atim;
	ts[1] = p->st.st_mtim;
	if (futimens(p->out, ts) == -1)
		return (tier_error(dst, "utimens", p->tmp, errno));
	return (0);
}

/*
 * Make the copy durable (on a file system with a journal, the first
 * fsync of a batch commits every copy's metadata and the others find it
 * done), then, with verify, read it back.
 */
static int
mig_sync(struct mig_pend *p, const struct mig_limits *lim)
{
	struct stat	now;
	int		rv;

	if (fsync(p->out) == -1)
		return (tier_error(p->dst, "fsync", p->tmp, errno));
	if (lim->verify && (rv = mig_verify(p->in, p->out, p->st.st_size)) !=
	    0) {
		if (fstat(p->in, &now) == 0 && !mig_same(p->src, &now, &p->st))
			return (MIG_SKIP_CHANGED);
		log_error("migrate %s: the copy on tier %s differs from the "
		    "source", p->path, dfs.tiers[p->dst].name);
		tier_count(p->dst, &dfs.tiers[p->dst].stats.errors, 1);
		return (rv);
	}
	return (0);
}

/*
 * With the file held off from clients: re-check the source, rename the
 * copy into place and link the group's other names.  *linked says how
 * many names to take back out if this fails.
 */
static int
mig_place(struct mig_pend *p, struct stat *cst, size_t *linked)
{
	struct stat	now;
	int		rv, dst = p->dst;

	*linked = 0;
	if (tier_fstatat(p->src, p->sfd, p->name, &now) != 0 ||
	    !mig_same(p->src, &now, &p->st))
		return (MIG_SKIP_CHANGED);
	if (p->n->writers > 0)
		return (MIG_SKIP_WRITERS);
	if (atomic_load(&p->n->wgen) != p->wgen)
		return (MIG_SKIP_CHANGED);
	if (fstat(p->out, cst) == -1)
		return (tier_error(dst, "stat", p->tmp, errno));
	if ((rv = tier_renameat2(dst, p->dfd, p->tmp, p->dfd, p->name,
	    RENAME_NOREPLACE)) != 0)
		return (rv == -EEXIST ? MIG_SKIP_CONFLICT : rv);
	for (; *linked < p->nextra; (*linked)++) {
		if ((rv = tier_linkat(dst, p->dfd, p->name,
		    p->extra[*linked].dfd, p->extra[*linked].name)) != 0) {
			tier_unlinkat(dst, p->dfd, p->name, 0);
			return (rv);
		}
	}
	return (0);
}

/*
 * After the switch: hand the sources to the removal batch (mig_finish),
 * which syncs the target directories before any source goes, then let
 * clients in on the new tier.  In that order, a client that renames or
 * unlinks the file, or makes a new one of its name, finds its source
 * waiting and can have it removed first.  Readers holding a source open
 * keep reading it.
 */
static void
mig_switched(struct mig_pend *p, const struct stat *cst)
{
	size_t	i;

	/*
	 * The sources wait in the batch before clients come back in: one
	 * who removes the file and makes its name anew must find them
	 * there to have them removed.
	 */
	mig_defer(p->n->id, p->src, p->sfd, p->name, &p->st, p->dst, p->dfd);
	for (i = 0; i < p->nextra; i++)
		mig_defer(p->n->id, p->src, p->extra[i].sfd, p->extra[i].name,
		    &p->st, p->dst, p->extra[i].dfd);
	node_move_end(p->n, p->dst, cst->st_dev, cst->st_ino);
	close(p->in);
	close(p->out);
	p->in = p->out = -1;
	if (dfs.se != NULL)
		fuse_lowlevel_notify_inval_inode(dfs.se, p->n->id, -1, 0);
}

/*
 * The switch of one synced copy, waiting as long as it takes for the
 * operations in progress on the file.
 */
static int
mig_commit(struct mig_pend *p)
{
	struct stat	cst;
	size_t		linked;
	int		rv;

	node_move_begin(p->n);
	if ((rv = mig_place(p, &cst, &linked)) != 0) {
		mig_undo(p, linked, 1);
		return (rv);
	}
	mig_crash("renamed");
	if ((rv = index_switch(p->n->id, p->dst, cst.st_dev,
	    cst.st_ino)) != 0) {
		/* The source is still the file: take the copy back out. */
		tier_unlinkat(p->dst, p->dfd, p->name, 0);
		mig_undo(p, linked, 1);
		return (rv);
	}
	mig_switched(p, &cst);
	mig_crash("switched");
	return (0);
}

/*
 * Count a move's outcome in the current run.  A failure is also an error
 * of tier etier, where it happened, in dfsctl stats: tier_error counts
 * most, but not those it takes for answers to a client (EINVAL from a
 * rename flag the tier lacks, EPERM, EEXIST), which no client asked for.
 */
static void
mig_result(const char *path, int src, int to, int etier, off_t size, int rv)
{
	pthread_mutex_lock(&mig_mtx);
	if (rv == 0) {
		mig_cur.files++;
		mig_cur.bytes += size;
		log_debug("migrated %s from %s to %s (%lld bytes)", path,
		    dfs.tiers[src].name, dfs.tiers[to].name, (long long)size);
	} else if (rv > 0)
		mig_cur.skipped[rv]++;
	else {
		mig_cur.errors++;
		if (etier >= 0 && tier_is_answer(-rv))
			tier_count(etier, &dfs.tiers[etier].stats.errors, 1);
		snprintf(mig_cur.last_error, sizeof mig_cur.last_error,
		    "%s: %s", path, strerror(-rv));
		log_error("migrate %s from tier %s to %s: %s", path,
		    dfs.tiers[src].name, dfs.tiers[to].name, strerror(-rv));
	}
	pthread_mutex_unlock(&mig_mtx);
}

/*
 * Move the batch of single-named files mig_one decided on, each step
 * for all of them at once: one transaction for the journal rows, the
 * sources' reads started together, one file system commit for the
 * copies, one transaction for the switches.  A file is held off from
 * clients from its rename until the switch; one that is busy then is
 * switched on its own afterwards, so the worker never waits on a client
 * while it holds another file.
 */
static void
mig_flush(void)
{
	const struct mig_limits	*lim = &mig_lim;
	struct jrow		*rows;
	struct index_switch	 sw[MIG_PEND_MAX];
	struct stat		 cst[MIG_PEND_MAX];
	int			 rv[MIG_PEND_MAX], held[MIG_PEND_MAX];
	struct mig_pend		*p;
	size_t			 i, nrows = 0, nsw = 0, linked;
	int			 err;

	if (mig_npend == 0)
		return;
	if ((rows = calloc(mig_npend, sizeof *rows)) == NULL) {
		for (i = 0; i < mig_npend; i++)
			rv[i] = -ENOMEM;
		goto results;
	}
	for (i = 0; i < mig_npend; i++) {
		held[i] = 0;
		if ((rv[i] = mig_check(&mig_pend[i])) == 0)
			mig_jrow(&mig_pend[i], &rows[nrows++]);
	}
	if ((err = index_journal_add_many(rows, nrows)) != 0) {
		for (i = 0; i < mig_npend; i++)
			if (rv[i] == 0)
				rv[i] = err;
	}
	free(rows);
	if (nrows > 0 && err == 0)
		mig_crash("journal");

	/* Ask for all the sources' data first: the reads overlap. */
	for (i = 0; i < mig_npend; i++) {
		p = &mig_pend[i];
		if (rv[i] != 0)
			continue;
		if ((rv[i] = mig_open(p)) == 0)
			posix_fadvise(p->in, 0, 0, POSIX_FADV_WILLNEED);
		else
			mig_undo(p, 0, 0);
	}
	for (i = 0; i < mig_npend; i++)
		if (rv[i] == 0 && (rv[i] = mig_copy(&mig_pend[i], lim)) != 0)
			mig_undo(&mig_pend[i], 0, 0);
	for (i = 0; i < mig_npend; i++)
		if (rv[i] == 0 && (rv[i] = mig_sync(&mig_pend[i], lim)) != 0)
			mig_undo(&mig_pend[i], 0, 0);
	if (nrows > 0 && err == 0)
		mig_crash("copied");

	for (i = 0; i < mig_npend; i++) {
		p = &mig_pend[i];
		if (rv[i] != 0 || !node_move_try_begin(p->n))
			continue;
		held[i] = 1;
		if ((rv[i] = mig_place(p, &cst[i], &linked)) != 0) {
			mig_undo(p, linked, 1);
			held[i] = 0;
			continue;
		}
		sw[nsw].id = p->n->id;
		sw[nsw].dst = p->dst;
		sw[nsw].dev = cst[i].st_dev;
		sw[nsw].ino = cst[i].st_ino;
		nsw++;
	}
	if (nsw > 0)
		mig_crash("renamed");
	if (nsw > 0 && (err = index_switch_many(sw, nsw)) != 0) {
		/* The sources are still the files: take the copies back out. */
		for (i = 0; i < mig_npend; i++) {
			if (!held[i])
				continue;
			p = &mig_pend[i];
			tier_unlinkat(p->dst, p->dfd, p->name, 0);
			mig_undo(p, p->nextra, 1);
			rv[i] = err;
			held[i] = 0;
		}
	}
	for (i = 0; i < mig_npend; i++)
		if (held[i])
			mig_switched(&mig_pend[i], &cst[i]);
	if (nsw > 0)
		mig_crash("switched");
	/* The ones a client held: now, waiting their turn. */
	for (i = 0; i < mig_npend; i++)
		if (rv[i] == 0 && !held[i])
			rv[i] = mig_commit(&mig_pend[i]);
results:
	for (i = 0; i < mig_npend; i++) {
		p = &mig_pend[i];
		mig_result(p->path, p->src, p->dst, p->etier, p->st.st_size,
		    rv[i]);
		node_put(p->parent);
		node_put(p->n);
	}
	mig_npend = 0;
	mig_pend_bytes = 0;
}

/*
 * Move n now, on its own, from tier src to dst: a hard-link group goes
 * this way (name in parent and the other names in extra), every name
 * moving or none.  Returns 0 when moved, a skip reason (> 0), or -errno.
 */
static int
mig_move(struct node *n, struct node *parent, const char *name,
    const struct stat *st, int src, int dst, const struct mig_limits *lim,
    struct mig_name *extra, size_t nextra, int *etier)
{
	struct mig_pend	p;
	struct jrow	j;
	size_t		i;
	int		rv;

	memset(&p, 0, sizeof p);
	p.n = n;
	p.parent = parent;
	snprintf(p.name, sizeof p.name, "%s", name);
	p.st = *st;
	p.src = src;
	p.dst = dst;
	p.extra = extra;
	p.nextra = nextra;
	snprintf(p.path, sizeof p.path, "%s", name);
	if ((rv = mig_check(&p)) != 0)
		goto out;
	mig_jrow(&p, &j);
	if ((rv = index_journal_add(&j)) != 0)
		goto out;
	/* One row per name, so recovery can finish or undo each. */
	for (i = 0; i < nextra; i++) {
		struct jrow	l = j;

		l.parent = extra[i].parent->id;
		snprintf(l.name, sizeof l.name, "%s", extra[i].name);
		l.tmp[0] = '\0';
		if ((rv = index_journal_add(&l)) != 0)
			goto abort;
	}
	mig_crash("journal");
	if ((rv = mig_open(&p)) != 0 || (rv = mig_copy(&p, lim)) != 0 ||
	    (rv = mig_sync(&p, lim)) != 0)
		goto abort;
	mig_crash("copied");
	rv = mig_commit(&p);
	goto out;
abort:
	mig_undo(&p, 0, 0);
out:
	*etier = p.etier;
	return (rv);
}

/*
 * How many names the file has: st_nlink, or where the tier does not keep
 * it (sshfs says 1), the names the index gives the file.
 */
static nlink_t
mig_nlink(int t, fuse_ino_t id, const struct stat *st)
{
	unsigned	n;

	if (tier_has(t, TIER_CAP_NLINK))
		return (st->st_nlink);
	return ((n = index_nlink(id)) > st->st_nlink ? n : st->st_nlink);
}

/*
 * A hard-link group moves as one unit: every name the index knows, which
 * must be all of them (st_nlink, where the tier keeps it), is held in the
 * node table so that operations on any name wait out the switch.  A
 * tier without hard links takes no group.
 */
static int
mig_move_group(struct node *n, struct node *parent, const char *name,
    const struct stat *st, int src, int dst, const struct mig_limits *lim,
    int *etier)
{
	struct mig_name	*extra = NULL;
	struct probe	 p;
	struct node	*ln;
	fuse_ino_t	*parents = NULL;
	char		**names = NULL;
	size_t		 count = 0, i, nextra = 0;
	int		 rv;

	if (!tier_has(dst, TIER_CAP_LINK))
		return (MIG_SKIP_LINKS);
	if ((rv = index_names(n->id, &parents, &names, &count)) != 0)
		return (rv);
	/* A name the index does not know: st_nlink counts more. */
	if (count < (size_t)st->st_nlink || (tier_has(src, TIER_CAP_NLINK) &&
	    count != (size_t)st->st_nlink)) {
		rv = MIG_SKIP_LINKS;
		goto out;
	}
	if ((extra = calloc(count, sizeof *extra)) == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		if (parents[i] == parent->id && strcmp(names[i], name) == 0)
			continue;
		extra[nextra].parent = resolve_node(parents[i], 0);
		if (extra[nextra].parent == NULL ||
		    resolve_probe(extra[nextra].parent, names[i], &p) != 0 ||
		    p.id != n->id || p.tier != src ||
		    (ln = node_enter(extra[nextra].parent, names[i], &p)) ==
		    NULL) {
			node_put(extra[nextra].parent);
			rv = MIG_SKIP_CHANGED;
			goto out;
		}
		snprintf(extra[nextra].name, sizeof extra[nextra].name, "%s",
		    names[i]);
		nextra++;
	}
	rv = mig_move(n, parent, name, st, src, dst, lim, extra, nextra,
	    etier);
out:
	for (i = 0; i < nextra; i++) {
		node_forget(n->id, 1);	/* the lookups node_enter counted */
		node_put(extra[i].parent);
	}
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	free(parents);
	free(extra);
	return (rv);
}

/* Pinned inodes as last counted (-1: count again), and pin changes. */
static pthread_mutex_t	mig_pins_mtx = PTHREAD_MUTEX_INITIALIZER;
static long		mig_npins = -1;
static unsigned		mig_pins_gen;

/* Is the file or a directory above it pinned? */
static int
mig_pinned(fuse_ino_t id)
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
	const struct dfs_config_policy	*p = NULL;
	struct mig_item			 it;
	struct node			*n, *parent = NULL;
	struct stat			 st;
	char				 name[NAME_MAX + 1];
	int64_t				 now = mig_now_ns();
	nlink_t				 nl;
	int				 k, rv, to = -1, src = r->tier, fd, et;

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
	pthread_mutex_lock(&mig_conf_mtx);
	k = policy_match(mig_conf, it.path, &st, r, src, now / 1000000000,
	    it.why, sizeof it.why);
	if (k >= 0) {
		p = &mig_conf->policies[k];
		snprintf(it.policy, sizeof it.policy, "%s", p->name);
		if (p->action == DFS_POLICY_MIGRATE)
			to = p->to;
	}
	if (promote && (k < 0 || p->action == DFS_POLICY_MIGRATE)) {
		/* Read often: back to the first tier, whatever would move it down. */
		to = force_to;
		snprintf(it.policy, sizeof it.policy, "promotion");
		snprintf(it.why, sizeof it.why, "read often within the window");
	} else if (force_to >= 0 && (k < 0 || p->action == DFS_POLICY_MIGRATE))
		to = to >= 0 ? to : force_to;
	if (k >= 0 && p->action == DFS_POLICY_EXCLUDE)
		it.skip = MIG_SKIP_EXCLUDED;
	else if (to >= 0 && r->moved_at > 0 && now - r->moved_at <
	    (int64_t)mig_conf->migration.min_residency * 1000000000)
		it.skip = MIG_SKIP_RESIDENCY;
	else if (to >= 0 && nl > 1 &&
	    mig_conf->migration.hardlinks == DFS_HARDLINKS_SKIP)
		it.skip = MIG_SKIP_LINKS;
	pthread_mutex_unlock(&mig_conf_mtx);
	if (it.skip < 0 && to >= 0 && mig_pinned(r->id))
		it.skip = MIG_SKIP_PINNED;
	it.to = to;
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
	} else {
		struct mig_pend	*pd = &mig_pend[mig_npend];

		for (k = 0; k < (int)mig_npend; k++)
			if (mig_pend[k].n == n)
				goto out;	/* named twice in a request */
		/* Decided: the batch holds the references now. */
		memset(pd, 0, sizeof *pd);
		pd->n = n;
		pd->parent = parent;
		snprintf(pd->name, sizeof pd->name, "%s", name);
		snprintf(pd->path, sizeof pd->path, "%s", it.path);
		pd->st = st;
		pd->src = src;
		pd->dst = to;
		n = parent = NULL;
		mig_npend++;
		mig_pend_bytes += st.st_size;
		if (mig_npend == MIG_PEND_MAX ||
		    mig_pend_bytes >= MIG_PEND_BYTES)
			mig_flush();
	}
	/* Sources wait at most a moment for their batch. */
	pthread_mutex_lock(&mig_done_mtx);
	if (mig_ndone > 0 && mig_mono() - mig_done_since > 0.1)
		mig_finish_locked();
	pthread_mutex_unlock(&mig_done_mtx);
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
	node_put(parent);
	node_put(n);
}

/* Has the run (or the dry run) reached its file or byte limit? */
static int
mig_limited(struct mig_plan *plan)
{
	unsigned long	files;
	uint64_t	bytes;
	int		limited;

	if (plan != NULL && (plan->stop ||
	    (plan->limit > 0 && plan->files >= plan->limit)))
		return (1);
	pthread_mutex_lock(&mig_conf_mtx);
	pthread_mutex_lock(&mig_mtx);
	/* Copies waiting for their batch count as moved. */
	files = plan != NULL ? plan->files : mig_cur.files + mig_npend;
	bytes = plan != NULL ? plan->bytes : mig_cur.bytes + mig_pend_bytes;
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
	size_t		i;

	if (tier_statfs(t, sv) != 0 || sv->f_blocks == 0 || sv->f_frsize == 0)
		return (-1);
	avail = (double)sv->f_bavail;
	for (i = 0; i < mig_npend; i++)
		if (mig_pend[i].src == t)
			avail += (mig_pend[i].st.st_size + sv->f_frsize - 1) /
			    sv->f_frsize;
	pthread_mutex_lock(&mig_done_mtx);
	for (i = 0; i < mig_ndone; i++)
		if (mig_done[i].src == t)
			avail += (mig_done[i].size + sv->f_frsize - 1) /
			    sv->f_frsize;
	pthread_mutex_unlock(&mig_done_mtx);
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
		mig_lim = lim;

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
	struct mig_plan	plan = { cb, arg, 0, 0, 0, limit, 0 };

	mig_flush_deferred();
	scan_hold();
	mig_run((char **)paths, npaths, &plan);
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
	struct mig_plan		 plan = { mig_explain_cb, NULL, 0, 0, 1, 0, 0 };
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
