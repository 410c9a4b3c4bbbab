/*
 * Namespace writes: names added, linked, renamed and removed, tiers, stat
 * and identity, pins and accesses; and how they commit: in groups through
 * the redo log, one writer at a time, with the updates that may wait
 * written in batches.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "dfs.h"
#include "index_int.h"

/* A new inode row for st on tier t; its id is the new node id. */
int
index_insert_inode(struct index_conn *c, int t, unsigned tiers, int partial,
    const struct stat *st, fuse_ino_t *id)
{
	sqlite3_stmt	*q = index_q(c, Q_INS_INODE);
	int		 rv;

	sqlite3_bind_int(q, 1, st->st_mode & S_IFMT);
	sqlite3_bind_int(q, 2, t);
	sqlite3_bind_int(q, 3, tiers);
	sqlite3_bind_int64(q, 4, (int64_t)st->st_dev);
	sqlite3_bind_int64(q, 5, (int64_t)st->st_ino);
	sqlite3_bind_int64(q, 6, S_ISDIR(st->st_mode) ? 1 : st->st_nlink);
	sqlite3_bind_int64(q, 7, st->st_size);
	sqlite3_bind_int64(q, 8, index_ns(&st->st_mtim));
	sqlite3_bind_int64(q, 9, index_ns(&st->st_ctim));
	sqlite3_bind_int64(q, 10, atomic_load(&index_gen));
	sqlite3_bind_int(q, 11, S_ISDIR(st->st_mode) && partial);
	if ((rv = index_step_done(c, q, "insert inode")) == 0)
		*id = sqlite3_last_insert_rowid(c->db);
	return (rv);
}

int
index_insert_dentry(struct index_conn *c, fuse_ino_t parent,
    const char *name, fuse_ino_t id)
{
	sqlite3_stmt	*q = index_q(c, Q_INS_DENTRY);

	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, id);
	sqlite3_bind_int64(q, 4, atomic_load(&index_gen));
	return (index_step_done(c, q, "insert dentry"));
}

/* Drop name from parent; the inode goes too once no name is left. */
int
index_remove_dentry(struct index_conn *c, fuse_ino_t parent,
    const char *name)
{
	sqlite3_stmt	*q = index_q(c, Q_DEL_DENTRY);
	fuse_ino_t	 id = 0;
	int		 rv;

	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	rv = sqlite3_step(q);
	if (rv == SQLITE_ROW) {
		id = sqlite3_column_int64(q, 0);
		rv = sqlite3_step(q);
	}
	sqlite3_reset(q);
	if (rv != SQLITE_DONE)
		return (index_err(c->db, "remove dentry"));
	if (id == 0)
		return (0);
	q = index_q(c, Q_DEL_ORPHAN);
	sqlite3_bind_int64(q, 1, id);
	return (index_step_done(c, q, "remove inode"));
}

/*
 * Changes through index_main commit in groups.  Once the index is whole
 * and no scan runs, a transaction stays open for up to INDEX_GROUP_NS
 * and takes every change made meanwhile, each in a savepoint of its own;
 * a change costs its statements, not a commit.  A kill -9 loses at most
 * that window of index changes, never a file: the scan at the next start
 * puts back what the tiers hold (and the inode sequence skips ahead, so
 * no id handed out is reused).  What recovery depends on (journal rows,
 * switches, pins) commits at once, as does anything before a reader on
 * another connection looks.
 */
#define INDEX_GROUP_NS	(5 * 1000000LL)

static int		index_group_open;	/* under index_mtx */
static int		index_in_savepoint;
static int64_t		index_group_since;
static int		index_group_stop;
static pthread_t	index_group_thread;
static int		index_group_started;
static pthread_cond_t	index_group_cv;
static sqlite3_stmt	*index_sp_q[3];	/* SAVEPOINT, RELEASE, ROLLBACK TO */

/*
 * The namespace changes of the open group also go to the redo log
 * (redo.c) as each is made, so that a kill -9 loses none of them: the
 * change an operation made is described in index_redo_op before
 * index_end, which logs it once its savepoint is released.
 */
static struct redo_rec	index_redo_op;
static int		index_redo_pending;
static uint64_t		index_redo_seq;		/* the last record logged */
static uint64_t		index_redo_done;	/* the last one committed */

/* Run one of the savepoint statements, prepared once. */
static int
index_sp(int which)
{
	static const char *const	sql[3] = { "SAVEPOINT op",
	    "RELEASE op", "ROLLBACK TO op" };
	sqlite3_stmt			*q;
	int				 rv;

	if (index_sp_q[which] == NULL && sqlite3_prepare_v3(index_main.db,
	    sql[which], -1, SQLITE_PREPARE_PERSISTENT, &index_sp_q[which],
	    NULL) != SQLITE_OK)
		return (SQLITE_ERROR);
	q = index_sp_q[which];
	rv = sqlite3_step(q);
	sqlite3_reset(q);
	return (rv == SQLITE_DONE ? SQLITE_OK : rv);
}

/* Commit index_main's open group, if any; index_mtx is held. */
int
index_sync_locked(void)
{
	int	rv = 0;

	if (!index_group_open)
		return (0);
	index_group_open = 0;
	/* The group says which logged changes it holds. */
	if (index_redo_seq != index_redo_done)
		index_meta_set(&index_main, "redo", (int64_t)index_redo_seq);
	if (sqlite3_exec(index_main.db, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		/* The tiers keep every file; the next scan puts the rows back. */
		rv = index_err(index_main.db, "group commit");
		sqlite3_exec(index_main.db, "ROLLBACK", NULL, NULL, NULL);
	}
	index_redo_done = index_redo_seq;
	if (redo_reset() != 0)
		log_warn("index %s: cannot empty the redo log", index_file);
	index_wunlock();
	return (rv);
}

/* Commit what index_main has open, before another connection reads. */
void
index_sync(void)
{
	pthread_mutex_lock(&index_mtx);
	index_sync_locked();
	pthread_mutex_unlock(&index_mtx);
}

/* Commits each group once it has been open INDEX_GROUP_NS. */
static void *
index_group_main(void *arg)
{
	struct timespec	ts;
	int64_t		due;

	(void)arg;
	pthread_mutex_lock(&index_mtx);
	while (!index_group_stop) {
		if (!index_group_open) {
			pthread_cond_wait(&index_group_cv, &index_mtx);
			continue;
		}
		due = index_group_since + INDEX_GROUP_NS;
		if (index_mono_ns() >= due) {
			index_sync_locked();
			continue;
		}
		ts.tv_sec = due / 1000000000;
		ts.tv_nsec = due % 1000000000;
		pthread_cond_timedwait(&index_group_cv, &index_mtx, &ts);
	}
	index_sync_locked();
	pthread_mutex_unlock(&index_mtx);
	return (NULL);
}

int
index_group_start(void)
{
	pthread_condattr_t	a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&index_group_cv, &a);
	pthread_condattr_destroy(&a);
	index_group_stop = 0;
	if (pthread_create(&index_group_thread, NULL, index_group_main,
	    NULL) != 0)
		return (-1);
	index_group_started = 1;
	return (0);
}

void
index_group_end(void)
{
	int	i;

	if (!index_group_started)
		return;
	pthread_mutex_lock(&index_mtx);
	index_group_stop = 1;
	pthread_cond_signal(&index_group_cv);
	pthread_mutex_unlock(&index_mtx);
	pthread_join(index_group_thread, NULL);
	index_group_started = 0;
	for (i = 0; i < 3; i++) {
		sqlite3_finalize(index_sp_q[i]);
		index_sp_q[i] = NULL;
	}
}

/*
 * One write transaction at a time, handed over in dfs rather than by
 * sqlite's busy handler, which sleeps and lets the scan take the lock
 * back again and again: clients' changes would wait seconds behind a
 * scan.  The scan gives way to waiting client writers, for a while.
 */
static pthread_mutex_t	index_wmtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	index_wcv = PTHREAD_COND_INITIALIZER;
static int		index_wheld;
static int		index_wwaiting;	/* client writers waiting */

#define INDEX_SCAN_YIELD_NS	(20 * 1000000LL)

void
index_wlock(int scan)
{
	struct timespec	ts;
	int64_t		until;

	pthread_mutex_lock(&index_wmtx);
	if (scan) {
		clock_gettime(CLOCK_REALTIME, &ts);
		until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
		    INDEX_SCAN_YIELD_NS;
		ts.tv_sec = until / 1000000000;
		ts.tv_nsec = until % 1000000000;
		while (index_wwaiting > 0 || index_wheld)
			if (pthread_cond_timedwait(&index_wcv, &index_wmtx,
			    &ts) != 0 && !index_wheld)
				break;
		while (index_wheld)
			pthread_cond_wait(&index_wcv, &index_wmtx);
	} else {
		index_wwaiting++;
		while (index_wheld)
			pthread_cond_wait(&index_wcv, &index_wmtx);
		index_wwaiting--;
	}
	index_wheld = 1;
	pthread_mutex_unlock(&index_wmtx);
}

void
index_wunlock(void)
{
	pthread_mutex_lock(&index_wmtx);
	index_wheld = 0;
	pthread_cond_broadcast(&index_wcv);
	pthread_mutex_unlock(&index_wmtx);
}

int
index_begin(struct index_conn *c)
{
	if (c == &index_main && atomic_load(&index_scanned) &&
	    !index_scanning && index_group_started) {
		if (!index_group_open) {
			index_wlock(0);
			if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL,
			    NULL) != SQLITE_OK) {
				index_wunlock();
				return (index_err(c->db, "begin"));
			}
			index_group_open = 1;
			index_group_since = index_mono_ns();
			pthread_cond_signal(&index_group_cv);
		}
		if (index_sp(0) != SQLITE_OK)
			return (index_err(c->db, "savepoint"));
		index_in_savepoint = 1;
		return (0);
	}
	if (c == &index_main) {
		index_sync_locked();
		index_wlock(0);
		/* Between the scan's batches: from now on it looks first. */
		if (index_scanning)
			atomic_store(&index_scan_fresh, 0);
	}
	if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		if (c == &index_main)
			index_wunlock();
		return (index_err(c->db, "begin"));
	}
	return (0);
}

int
index_end(struct index_conn *c, int rv)
{
	if (c == &index_main && index_in_savepoint) {
		index_in_savepoint = 0;
		if (rv != 0)
			index_sp(2);
		if (index_sp(1) != SQLITE_OK && rv == 0)
			rv = index_err(c->db, "release");
		if (rv == 0 && index_redo_pending) {
			index_redo_op.seq = index_redo_seq + 1;
			if (redo_append(&index_redo_op) == 0)
				index_redo_seq++;
			else {
				/* Not logged: commit it now instead. */
				index_redo_pending = 0;
				return (index_sync_locked());
			}
		}
		index_redo_pending = 0;
		if (index_mono_ns() - index_group_since >= INDEX_GROUP_NS)
			index_sync_locked();
		return (rv);
	}
	index_redo_pending = 0;
	if (rv == 0 && sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK)
		rv = index_err(c->db, "commit");
	if (rv != 0)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	if (c == &index_main)
		index_wunlock();
	return (rv);
}

/* Describe the change being made, for the redo log. */
static void
index_redo_set(int op, fuse_ino_t id, fuse_ino_t p1, const char *n1,
    fuse_ino_t p2, const char *n2, const struct stat *st)
{
	struct redo_rec	*r = &index_redo_op;

	memset(r, 0, sizeof *r);
	r->op = op;
	r->id = id;
	r->p1 = p1;
	r->p2 = p2;
	snprintf(r->n1, sizeof r->n1, "%s", n1);
	if (n2 != NULL)
		snprintf(r->n2, sizeof r->n2, "%s", n2);
	if (st != NULL) {
		r->mode = st->st_mode;
		r->dev = st->st_dev;
		r->ino = st->st_ino;
		r->nlink = S_ISDIR(st->st_mode) ? 1 : st->st_nlink;
		r->size = st->st_size;
		r->mtime = index_ns(&st->st_mtim);
		r->ctime = index_ns(&st->st_ctim);
	}
	index_redo_pending = 1;
}

/* The backing identity of inode id on tier t, if it is still there. */
/*
 * Another name of a hard-linked file the index knows: its inode, or 0.
 * Made-up inode numbers (a tier without stable ones) may be another
 * file's: no link is found by them.
 */
fuse_ino_t
index_find_link(struct index_conn *c, int t, const struct stat *st)
{
	sqlite3_stmt	*q;
	fuse_ino_t	 id = 0;

	if (S_ISDIR(st->st_mode) || st->st_nlink < 2 ||
	    !tier_has(t, TIER_CAP_STABLE_INO))
		return (0);
	q = index_q(c, Q_FIND_LINK);
	sqlite3_bind_int(q, 1, t);
	sqlite3_bind_int64(q, 2, (int64_t)st->st_dev);
	sqlite3_bind_int64(q, 3, (int64_t)st->st_ino);
	if (sqlite3_step(q) == SQLITE_ROW)
		id = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return (id);
}

static int
index_ident(struct index_conn *c, fuse_ino_t id, int t, const struct stat *st)
{
	sqlite3_stmt	*q = index_q(c, Q_SET_IDENT);

	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int(q, 2, t);
	sqlite3_bind_int64(q, 3, (int64_t)st->st_dev);
	sqlite3_bind_int64(q, 4, (int64_t)st->st_ino);
	return (index_step_done(c, q, "set identity"));
}

/*
 * A file on a tier that renumbers its files has a new number there (a
 * hint for finding changes, not its identity).  A switch meanwhile to
 * another tier wins.
 */
int
index_set_ident(fuse_ino_t id, int t, const struct stat *st)
{
	int	rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(&index_main)) == 0)
		rv = index_end(&index_main, index_ident(&index_main, id, t,
		    st));
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/*
 * A name found on tier t (or just made there): give it an inode, or, for
 * another name of a known hard-linked file, the inode it shares.
 */
int
index_add(fuse_ino_t parent, const char *name, int t, unsigned tiers,
    int partial, const struct stat *st, fuse_ino_t *id)
{
	struct index_conn	*c = &index_main;
	sqlite3_stmt		*q;
	int			 rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(c)) != 0)
		goto out;
	*id = 0;
	/* Another thread may have added it since this one looked. */
	q = index_q(c, Q_LOOKUP);
	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW) {
		struct irow	r;

		index_row(q, &r);
		sqlite3_reset(q);
		if (r.type == (st->st_mode & S_IFMT) && r.tier == t &&
		    (S_ISDIR(st->st_mode) ||
		    tier_same_file(t, st, r.dev, r.ino))) {
			*id = r.id;
			if ((rv = index_ident(c, r.id, t, st)) != 0)
				goto end;
		} else if ((rv = index_remove_dentry(c, parent, name)) != 0)
			goto end;
	}
	sqlite3_reset(q);
	if (*id == 0)
		*id = index_find_link(c, t, st);
	if (*id == 0)
		rv = index_insert_inode(c, t, tiers, partial, st, id);
	if (rv == 0)
		rv = index_insert_dentry(c, parent, name, *id);
	if (rv == 0) {
		index_redo_set(REDO_ADD, *id, parent, name, 0, NULL, st);
		index_redo_op.tier = t;
		index_redo_op.tiers = tiers;
		index_redo_op.partial = partial;
	}
end:
	rv = index_end(c, rv);
out:
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/* Another name for inode id (link). */
int
index_link(fuse_ino_t parent, const char *name, fuse_ino_t id,
    const struct stat *st)
{
	struct index_conn	*c = &index_main;
	sqlite3_stmt		*q;
	int			 rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(c)) == 0) {
		rv = index_insert_dentry(c, parent, name, id);
		if (rv == 0) {
			q = index_q(c, Q_SET_STAT);
			sqlite3_bind_int64(q, 1, id);
			sqlite3_bind_int64(q, 2, st->st_size);
			sqlite3_bind_int64(q, 3, index_ns(&st->st_mtim));
			sqlite3_bind_int64(q, 4, index_ns(&st->st_ctim));
			sqlite3_bind_int64(q, 5, st->st_nlink);
			rv = index_step_done(c, q, "link");
		}
		if (rv == 0)
			index_redo_set(REDO_LINK, id, parent, name, 0, NULL,
			    st);
		rv = index_end(c, rv);
	}
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

int
index_unlink(fuse_ino_t parent, const char *name)
{
	int	rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(&index_main)) == 0) {
		rv = index_remove_dentry(&index_main, parent, name);
		if (rv == 0)
			index_redo_set(REDO_UNLINK, 0, parent, name, 0, NULL,
			    NULL);
		rv = index_end(&index_main, rv);
	}
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

static int
index_move_dentry(struct index_conn *c, fuse_ino_t p1, const char *n1,
    fuse_ino_t p2, const char *n2)
{
	sqlite3_stmt	*q = index_q(c, Q_RENAME);

	sqlite3_bind_int64(q, 1, p1);
	sqlite3_bind_text(q, 2, n1, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, p2);
	sqlite3_bind_text(q, 4, n2, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, atomic_load(&index_gen));
	return (index_step_done(c, q, "rename"));
}

/*
 * A rename is one dentry row, whatever lies below a renamed directory;
 * a replaced target loses its name (and its inode, if that was the last).
 */
static int
index_rename_in(struct index_conn *c, fuse_ino_t p1, const char *n1,
    fuse_ino_t p2, const char *n2, int exchange)
{
	int	rv;

	if (exchange) {
		/* Through a name no client can make. */
		rv = index_move_dentry(c, p1, n1, p1, "/");
		if (rv == 0)
			rv = index_move_dentry(c, p2, n2, p1, n1);
		if (rv == 0)
			rv = index_move_dentry(c, p1, "/", p2, n2);
	} else {
		rv = index_remove_dentry(c, p2, n2);
		if (rv == 0)
			rv = index_move_dentry(c, p1, n1, p2, n2);
	}
	return (rv);
}

int
index_rename(fuse_ino_t p1, const char *n1, fuse_ino_t p2, const char *n2,
    int exchange)
{
	struct index_conn	*c = &index_main;
	int			 rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(c)) == 0) {
		rv = index_rename_in(c, p1, n1, p2, n2, exchange);
		if (rv == 0) {
			index_redo_set(REDO_RENAME, 0, p1, n1, p2, n2, NULL);
			index_redo_op.exchange = exchange;
		}
		rv = index_end(c, rv);
	}
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/* One logged change, made again as index_add and friends made it. */
static int
index_redo_apply(struct index_conn *c, const struct redo_rec *r)
{
	struct irow	 row;
	sqlite3_stmt	*q;
	int		 rv = 0, found, have;

	switch (r->op) {
	case REDO_ADD:
		q = index_q(c, Q_LOOKUP);
		sqlite3_bind_int64(q, 1, r->p1);
		sqlite3_bind_text(q, 2, r->n1, -1, SQLITE_STATIC);
		if ((found = sqlite3_step(q) == SQLITE_ROW))
			index_row(q, &row);
		sqlite3_reset(q);
		if (found && row.id == r->id)
			return (0);
		if (found && (rv = index_remove_dentry(c, r->p1, r->n1)) != 0)
			return (rv);
		q = index_q(c, Q_GET);
		sqlite3_bind_int64(q, 1, r->id);
		have = sqlite3_step(q) == SQLITE_ROW;
		sqlite3_reset(q);
		if (!have) {
			if (sqlite3_prepare_v2(c->db, "INSERT INTO inode (id, "
			    "type, tier, tiers, dev, ino, nlink, size, mtime, "
			    "ctime, gen, partial) VALUES (?1, ?2, ?3, ?4, ?5, "
			    "?6, ?7, ?8, ?9, ?10, ?11, ?12)", -1, &q, NULL) !=
			    SQLITE_OK)
				return (index_err(c->db, "redo"));
			sqlite3_bind_int64(q, 1, r->id);
			sqlite3_bind_int(q, 2, r->mode & S_IFMT);
			sqlite3_bind_int(q, 3, r->tier);
			sqlite3_bind_int(q, 4, r->tiers);
			sqlite3_bind_int64(q, 5, (int64_t)r->dev);
			sqlite3_bind_int64(q, 6, (int64_t)r->ino);
			sqlite3_bind_int64(q, 7, (int64_t)r->nlink);
			sqlite3_bind_int64(q, 8, r->size);
			sqlite3_bind_int64(q, 9, r->mtime);
			sqlite3_bind_int64(q, 10, r->ctime);
			sqlite3_bind_int64(q, 11, atomic_load(&index_gen));
			sqlite3_bind_int(q, 12, S_ISDIR(r->mode) && r->partial);
			rv = sqlite3_step(q) == SQLITE_DONE ? 0 :
			    index_err(c->db, "redo add");
			sqlite3_finalize(q);
			if (rv != 0)
				return (rv);
		}
		return (index_insert_dentry(c, r->p1, r->n1, r->id));
	case REDO_LINK:
		if ((rv = index_insert_dentry(c, r->p1, r->n1, r->id)) != 0)
			return (rv);
		q = index_q(c, Q_SET_STAT);
		sqlite3_bind_int64(q, 1, r->id);
		sqlite3_bind_int64(q, 2, r->size);
		sqlite3_bind_int64(q, 3, r->mtime);
		sqlite3_bind_int64(q, 4, r->ctime);
		sqlite3_bind_int64(q, 5, (int64_t)r->nlink);
		return (index_step_done(c, q, "redo link"));
	case REDO_UNLINK:
		return (index_remove_dentry(c, r->p1, r->n1));
	case REDO_RENAME:
		return (index_rename_in(c, r->p1, r->n1, r->p2, r->n2,
		    r->exchange));
	}
	return (0);
}

/*
 * At start: open the redo log beside the index and make again, in one
 * transaction, the changes a kill -9 kept from their group's commit.
 */
int
index_redo_replay(const char *path, char **cause)
{
	struct index_conn	*c = &index_main;
	struct redo_rec		*v = NULL;
	char			*rpath = NULL;
	size_t			 n = 0, i, made = 0;
	uint64_t		 done;
	int			 rv;

	if (asprintf(&rpath, "%s-redo", path) == -1) {
		*cause = strdup("out of memory");
		return (-1);
	}
	rv = redo_open(rpath, cause);
	free(rpath);
	if (rv != 0)
		return (-1);
	if ((rv = redo_read(&v, &n)) != 0) {
		asprintf(cause, "index %s: redo log: %s", path, strerror(-rv));
		return (-1);
	}
	done = (uint64_t)index_meta_get(c, "redo", 0);
	index_redo_seq = index_redo_done = done;
	if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		free(v);
		asprintf(cause, "index %s: %s", path, sqlite3_errmsg(c->db));
		return (-1);
	}
	for (i = 0, rv = 0; i < n && rv == 0; i++) {
		if (v[i].seq <= done)
			continue;
		rv = index_redo_apply(c, &v[i]);
		made++;
		if (v[i].seq > index_redo_seq)
			index_redo_seq = v[i].seq;
	}
	if (rv == 0 && index_redo_seq != done)
		rv = index_meta_set(c, "redo", (int64_t)index_redo_seq);
	if (rv != 0 || sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		asprintf(cause, "index %s: redo log replay: %s", path,
		    sqlite3_errmsg(c->db));
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		free(v);
		return (-1);
	}
	free(v);
	index_redo_done = index_redo_seq;
	if (made > 0)
		log_info("index %s: %zu changes made again from the redo log",
		    path, made);
	redo_reset();
	return (0);
}

/* A directory dfs has just made on tier t as well. */
int
index_add_tier(fuse_ino_t id, int t)
{
	sqlite3_stmt	*q;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_SET_TIERS);
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int(q, 2, t);
	if ((rv = index_begin(&index_main)) == 0)
		rv = index_end(&index_main, index_step_done(&index_main, q,
		    "add tier"));
	else
		sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/* Size and times after a change through dfs (for migration candidates). */
int
index_set_stat(fuse_ino_t id, const struct stat *st)
{
	sqlite3_stmt	*q;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_SET_STAT);
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2, st->st_size);
	sqlite3_bind_int64(q, 3, index_ns(&st->st_mtim));
	sqlite3_bind_int64(q, 4, index_ns(&st->st_ctim));
	sqlite3_bind_int64(q, 5, S_ISDIR(st->st_mode) ? 1 : st->st_nlink);
	if ((rv = index_begin(&index_main)) == 0)
		rv = index_end(&index_main, index_step_done(&index_main, q,
		    "set stat"));
	else
		sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

int
index_set_pin(fuse_ino_t id, int pin)
{
	sqlite3_stmt	*q;
	int		 rv = -EIO;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("UPDATE inode SET pin = ?2 WHERE id = ?1")) !=
	    NULL) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int(q, 2, pin);
		rv = index_run(q, "pin");
		if (rv == 0 && sqlite3_changes(index_main.db) == 0)
			rv = -ENOENT;
	}
	index_sync_locked();
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/* A read through dfs, for age by access and promotion. */
int
index_access(fuse_ino_t id, int64_t when)
{
	sqlite3_stmt	*q;
	int		 rv = -EIO;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("UPDATE inode SET atime_seen = ?2, accesses = "
	    "accesses + 1 WHERE id = ?1")) != NULL) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int64(q, 2, when);
		rv = index_run(q, "access");
	}
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/*
 * Updates that need not be durable at once (sizes and times after a
 * write, accesses for policies) are queued by the FUSE threads and
 * written in one transaction now and then, off their path.
 */
struct index_deferred {
	fuse_ino_t	id;
	int		access;		/* else a size and times update */
	int64_t		size, mtime, ctime, when;
};

#define INDEX_DEFER_MAX	8192
static struct index_deferred	index_defer_q[INDEX_DEFER_MAX];
static size_t			index_defer_n;
static pthread_mutex_t		index_defer_mtx = PTHREAD_MUTEX_INITIALIZER;

static void
index_defer(const struct index_deferred *d)
{
	pthread_mutex_lock(&index_defer_mtx);
	/* When full, drop it: the next scan brings the row up to date. */
	if (index_defer_n < INDEX_DEFER_MAX)
		index_defer_q[index_defer_n++] = *d;
	pthread_mutex_unlock(&index_defer_mtx);
}

void
index_defer_stat(fuse_ino_t id, const struct stat *st)
{
	struct index_deferred	d = { .id = id, .size = st->st_size,
	    .mtime = index_ns(&st->st_mtim), .ctime = index_ns(&st->st_ctim) };

	index_defer(&d);
}

void
index_defer_access(fuse_ino_t id, int64_t when)
{
	struct index_deferred	d = { .id = id, .access = 1, .when = when };

	index_defer(&d);
}

/*
 * Write what was queued, in one transaction.  Accesses are counted within
 * a window (ns) that restarts once it has passed; 0: no window.
 */
void
index_flush(int64_t window)
{
	static struct index_deferred	 batch[INDEX_DEFER_MAX];
	static pthread_mutex_t		 flush_mtx = PTHREAD_MUTEX_INITIALIZER;
	sqlite3_stmt			*up = NULL, *acc = NULL;
	size_t				 n, i;

	pthread_mutex_lock(&flush_mtx);
	pthread_mutex_lock(&index_defer_mtx);
	n = index_defer_n;
	memcpy(batch, index_defer_q, n * sizeof *batch);
	index_defer_n = 0;
	pthread_mutex_unlock(&index_defer_mtx);
	if (n == 0 || index_main.db == NULL) {
		pthread_mutex_unlock(&flush_mtx);
		return;
	}
	pthread_mutex_lock(&index_mtx);
	if (index_begin(&index_main) != 0)
		goto out;
	up = index_prep("UPDATE inode SET size = ?2, mtime = ?3, ctime = ?4 "
	    "WHERE id = ?1");
	acc = index_prep("UPDATE inode SET atime_seen = max(atime_seen, ?2), "
	    "accesses = CASE WHEN ?3 > 0 AND ?2 - window_start > ?3 THEN 1 "
	    "ELSE accesses + 1 END, window_start = CASE WHEN ?3 > 0 AND "
	    "?2 - window_start > ?3 THEN ?2 ELSE window_start END "
	    "WHERE id = ?1");
	for (i = 0; i < n && up != NULL && acc != NULL; i++) {
		sqlite3_stmt	*q = batch[i].access ? acc : up;

		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, batch[i].id);
		if (batch[i].access) {
			sqlite3_bind_int64(q, 2, batch[i].when);
			sqlite3_bind_int64(q, 3, window);
		} else {
			sqlite3_bind_int64(q, 2, batch[i].size);
			sqlite3_bind_int64(q, 3, batch[i].mtime);
			sqlite3_bind_int64(q, 4, batch[i].ctime);
		}
		sqlite3_step(q);
	}
	sqlite3_finalize(up);
	sqlite3_finalize(acc);
	index_end(&index_main, 0);
out:
	pthread_mutex_unlock(&index_mtx);
	pthread_mutex_unlock(&flush_mtx);
}
