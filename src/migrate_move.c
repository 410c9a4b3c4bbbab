/*
 * The move protocol, for a file the worker decided on.  A move (DESIGN.md, "Migration: the protocol"): re-stat and compare with
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

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"
#include "migrate_int.h"

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

void
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
static struct mig_pend	mig_pend[MIG_PEND_MAX];
static size_t		mig_npend;
static uint64_t		mig_pend_bytes;
static struct mig_limits mig_lim;	/* the current run's */

void
mig_set_limits(const struct mig_limits *lim)
{
	mig_lim = *lim;
}

/*
 * Take a small single-named file into the batch, with the references to
 * n and parent: 1, or 0 if it is there already (named twice in a
 * request) and the caller keeps them.  A full batch moves at once.
 */
int
mig_batch_add(struct node *n, struct node *parent, const char *name,
    const char *path, const struct stat *st, int src, int dst)
{
	struct mig_pend	*pd = &mig_pend[mig_npend];
	size_t		 i;

	for (i = 0; i < mig_npend; i++)
		if (mig_pend[i].n == n)
			return (0);
	memset(pd, 0, sizeof *pd);
	pd->n = n;
	pd->parent = parent;
	snprintf(pd->name, sizeof pd->name, "%s", name);
	snprintf(pd->path, sizeof pd->path, "%s", path);
	pd->st = *st;
	pd->src = src;
	pd->dst = dst;
	mig_npend++;
	mig_pend_bytes += st->st_size;
	if (mig_npend == MIG_PEND_MAX || mig_pend_bytes >= MIG_PEND_BYTES)
		mig_flush();
	return (1);
}

/* The files and bytes in the batch (the worker's own, no lock). */
void
mig_batch_size(unsigned long *files, uint64_t *bytes)
{
	*files = mig_npend;
	*bytes = mig_pend_bytes;
}

/* Sources wait at most a moment for their batch. */
void
mig_batch_tick(void)
{
	pthread_mutex_lock(&mig_done_mtx);
	if (mig_ndone > 0 && mig_mono() - mig_done_since > 0.1)
		mig_finish_locked();
	pthread_mutex_unlock(&mig_done_mtx);
}

/*
 * Blocks of frsize bytes that the moves in flight free on tier t once
 * their sources go.
 */
double
mig_freed_blocks(int t, unsigned long frsize)
{
	double	blocks = 0;
	size_t	i;

	for (i = 0; i < mig_npend; i++)
		if (mig_pend[i].src == t)
			blocks += (mig_pend[i].st.st_size + frsize - 1) / frsize;
	pthread_mutex_lock(&mig_done_mtx);
	for (i = 0; i < mig_ndone; i++)
		if (mig_done[i].src == t)
			blocks += (mig_done[i].size + frsize - 1) / frsize;
	pthread_mutex_unlock(&mig_done_mtx);
	return (blocks);
}

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
	node_inval(p->n->id, -1, 0);
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
void
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
void
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
int
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
nlink_t
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
int
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

