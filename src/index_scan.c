/*
 * The scan: its own connection, entries upserted in batches, rows it did
 * not see swept at the end.  Rows the FUSE threads write meanwhile carry
 * the new generation, so the sweep spares them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dfs.h"
#include "index_int.h"

int			index_scanning;	/* under index_mtx */
/*
 * Into an empty index the scan inserts without looking first, until a
 * FUSE thread writes: a lookup meanwhile may have given a name the scan
 * has yet to reach an inode, which the scan must keep, not replace.
 */
atomic_int		index_scan_fresh;
/* The index was empty when this scan began (fresh may end before it). */
static int		index_scan_first;

static struct index_conn	index_scan_c;
static unsigned			index_scan_batch_n;

#define INDEX_SCAN_BATCH	4096
#define INDEX_SCAN_HOLD_NS	(10 * 1000000LL)
static int64_t			index_scan_since;

int
index_scan_begin(unsigned all_tiers, char **cause)
{
	struct index_conn	*c = &index_scan_c;
	sqlite3_stmt		*q;
	char			 sql[128];

	if (index_conn_open(c, cause) != 0)
		return (-1);
	/* The scan writes beside index_main: no group may hold it off. */
	pthread_mutex_lock(&index_mtx);
	index_sync_locked();
	index_scanning = 1;
	pthread_mutex_unlock(&index_mtx);
	atomic_fetch_add(&index_gen, 1);
	snprintf(sql, sizeof sql, "BEGIN IMMEDIATE; DELETE FROM conflict;"
	    "UPDATE inode SET tier = 0, tiers = %u, gen = %ld WHERE id = 1",
	    all_tiers, atomic_load(&index_gen));
	index_wlock(1);
	if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		index_wunlock();
		goto fail;
	}
	/* Counted with the writer's turn held: no write slips in between. */
	if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM dentry", -1, &q,
	    NULL) != SQLITE_OK) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		index_wunlock();
		goto fail;
	}
	index_scan_first = sqlite3_step(q) == SQLITE_ROW &&
	    sqlite3_column_int64(q, 0) == 0;
	atomic_store(&index_scan_fresh, index_scan_first);
	sqlite3_finalize(q);
	index_scan_batch_n = 0;
	index_scan_since = index_mono_ns();
	return (0);
fail:
	asprintf(cause, "index %s: scan: %s", index_file,
	    sqlite3_errmsg(c->db));
	pthread_mutex_lock(&index_mtx);
	index_scanning = 0;
	pthread_mutex_unlock(&index_mtx);
	index_conn_close(c);
	return (-1);
}

/*
 * Commit now and then, so FUSE threads' writes get their turn: every
 * INDEX_SCAN_BATCH entries, or sooner when a slow tier makes the batch
 * take longer than INDEX_SCAN_HOLD_NS.
 */
static int
index_scan_tick(struct index_conn *c)
{
	int	rv;

	if (++index_scan_batch_n < INDEX_SCAN_BATCH &&
	    index_mono_ns() - index_scan_since < INDEX_SCAN_HOLD_NS)
		return (0);
	index_scan_batch_n = 0;
	index_scan_since = index_mono_ns();
	rv = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	index_wunlock();
	index_wlock(1);
	if (rv != SQLITE_OK || sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL,
	    NULL, NULL) != SQLITE_OK) {
		/* index_scan_end releases the writer's turn. */
		return (index_err(c->db, "scan commit"));
	}
	return (0);
}

/* The tier the index gives a file's name, or -1. */
int
index_scan_tier(fuse_ino_t parent, const char *name)
{
	sqlite3_stmt	*q;
	struct irow	 r;
	int		 t = -1;

	if (index_scan_fresh)
		return (-1);
	q = index_q(&index_scan_c, Q_LOOKUP);
	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW) {
		index_row(q, &r);
		if (r.type != S_IFDIR)
			t = r.tier;
	}
	sqlite3_reset(q);
	return (t);
}

/* One name the scan found: keep its inode if it is the same object. */
int
index_scan_entry(fuse_ino_t parent, const char *name, int t, unsigned tiers,
    const struct stat *st, fuse_ino_t *id, enum index_seen *seen)
{
	struct index_conn	*c = &index_scan_c;
	struct irow		 r;
	sqlite3_stmt		*q;
	int64_t			 gen = atomic_load(&index_gen), nlink = 0;
	int64_t			 want_nlink = S_ISDIR(st->st_mode) ? 1 :
	    (int64_t)st->st_nlink;
	int			 rv, found = 0;

	if (!atomic_load(&index_scan_fresh)) {
		q = index_q(c, Q_LOOKUP);
		sqlite3_bind_int64(q, 1, parent);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
		if (sqlite3_step(q) == SQLITE_ROW) {
			index_row(q, &r);
			nlink = sqlite3_column_int64(q, 13);
			found = 1;
		}
		sqlite3_reset(q);
	}
	/* A tier that renumbers its files: the name says which file it is. */
	if (found && (unsigned)r.type == (st->st_mode & S_IFMT) &&
	    (S_ISDIR(st->st_mode) || (r.tier == t &&
	    tier_same_file(t, st, r.dev, r.ino)))) {
		*id = r.id;
		/*
		 * A rescan finds most rows as they are: only the name's
		 * generation is written then, for the sweep.
		 */
		if (r.size == st->st_size && r.mtime == index_ns(&st->st_mtim) &&
		    r.ctime == index_ns(&st->st_ctim) && nlink == want_nlink &&
		    r.tier == t && r.tiers == tiers && r.partial == 0 &&
		    r.dev == (uint64_t)st->st_dev &&
		    r.ino == (uint64_t)st->st_ino) {
			*seen = INDEX_SEEN_SAME;
			goto mark_name;
		}
		*seen = INDEX_SEEN_CHANGED;
		q = index_q(c, Q_SET_STAT);
		sqlite3_bind_int64(q, 1, r.id);
		sqlite3_bind_int64(q, 2, st->st_size);
		sqlite3_bind_int64(q, 3, index_ns(&st->st_mtim));
		sqlite3_bind_int64(q, 4, index_ns(&st->st_ctim));
		sqlite3_bind_int64(q, 5, want_nlink);
		if ((rv = index_step_done(c, q, "scan stat")) != 0)
			return (rv);
		q = index_q(c, Q_SCAN_MARK);
		sqlite3_bind_int64(q, 1, r.id);
		sqlite3_bind_int(q, 2, t);
		sqlite3_bind_int(q, 3, tiers);
		sqlite3_bind_int64(q, 4, gen);
		sqlite3_bind_int64(q, 5, (int64_t)st->st_dev);
		sqlite3_bind_int64(q, 6, (int64_t)st->st_ino);
		if ((rv = index_step_done(c, q, "scan mark")) != 0)
			return (rv);
mark_name:
		q = index_q(c, Q_SCAN_MARKD);
		sqlite3_bind_int64(q, 1, parent);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, gen);
		rv = index_step_done(c, q, "scan mark");
	} else {
		*seen = found ? INDEX_SEEN_REPLACED :
		    index_scan_first ? INDEX_SEEN_FIRST :
		    INDEX_SEEN_NEW;
		if (found && (rv = index_remove_dentry(c, parent, name)) != 0)
			return (rv);
		*id = index_find_link(c, t, st);
		rv = 0;
		if (*id == 0)
			rv = index_insert_inode(c, t, tiers, 0, st, id);
		if (rv == 0)
			rv = index_insert_dentry(c, parent, name, *id);
	}
	if (rv == 0)
		rv = index_scan_tick(c);
	return (rv);
}

int
index_scan_conflict(fuse_ino_t parent, const char *name, int t)
{
	struct index_conn	*c = &index_scan_c;
	sqlite3_stmt		*q;
	int			 rv;

	if (sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO conflict "
	    "(parent, name, tier) VALUES (?1, ?2, ?3)", -1, &q, NULL) !=
	    SQLITE_OK)
		return (index_err(c->db, "conflict"));
	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, t);
	rv = sqlite3_step(q) == SQLITE_DONE ? 0 : index_err(c->db, "conflict");
	sqlite3_finalize(q);
	return (rv);
}

/* Sweep the names the scan did not see, keeping them for gone. */
static int
index_scan_gone(struct index_conn *c, struct name_at **v, size_t *n)
{
	sqlite3_stmt	*q;
	size_t		 cap = 0;
	int		 rv;

	if (sqlite3_prepare_v2(c->db, "DELETE FROM dentry WHERE gen < ?1 "
	    "RETURNING parent, name", -1, &q, NULL) != SQLITE_OK)
		return (index_err(c->db, "scan sweep"));
	sqlite3_bind_int64(q, 1, atomic_load(&index_gen));
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (array_grow(v, &cap, *n + 1, sizeof **v) != 0 ||
		    ((*v)[*n].name = strdup((const char *)
		    sqlite3_column_text(q, 1))) == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		(*v)[*n].parent = (fuse_ino_t)sqlite3_column_int64(q, 0);
		(*n)++;
	}
	sqlite3_finalize(q);
	return (rv == SQLITE_DONE ? 0 : index_err(c->db, "scan sweep"));
}

/*
 * Finish: sweep what the scan did not see, and say the index is whole.
 * gone, if not NULL, hears each name swept, once the index is committed
 * and free for others.
 */
int
index_scan_end(int ok, void (*gone)(fuse_ino_t, const char *))
{
	struct index_conn	*c = &index_scan_c;
	struct name_at	*v = NULL;
	char			 sql[512];
	size_t			 n = 0, i;
	int			 rv = 0, swept = 0;

	if (ok && gone != NULL && !index_scan_first) {
		rv = index_scan_gone(c, &v, &n);
		swept = 1;
	}
	if (ok && rv == 0) {
		/* Names swept above are not swept again: a constant false. */
		snprintf(sql, sizeof sql,
		    "DELETE FROM dentry WHERE %d = 0 AND gen < %ld;"
		    "DELETE FROM inode WHERE id != 1 AND id NOT IN "
		    "(SELECT inode FROM dentry);"
		    "INSERT OR REPLACE INTO meta VALUES ('scanned', 1);"
		    "INSERT OR REPLACE INTO meta VALUES ('ntiers', %d);"
		    "INSERT OR REPLACE INTO meta VALUES ('gen', %ld);",
		    swept, atomic_load(&index_gen), dfs.ntiers,
		    atomic_load(&index_gen));
		if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			rv = index_err(c->db, "scan sweep");
	}
	if (rv == 0 && ok && sqlite3_exec(c->db, "COMMIT", NULL, NULL,
	    NULL) != SQLITE_OK)
		rv = index_err(c->db, "scan commit");
	if (rv != 0 || !ok)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	index_wunlock();
	index_conn_close(c);
	if (rv == 0 && ok)
		atomic_store(&index_scanned, 1);
	pthread_mutex_lock(&index_mtx);
	index_scanning = 0;
	pthread_mutex_unlock(&index_mtx);
	for (i = 0; i < n; i++) {
		if (rv == 0 && ok)
			gone(v[i].parent, v[i].name);
		free(v[i].name);
	}
	free(v);
	return (rv);
}
