/*
 * The migration journal: a row per name of each file being moved, what
 * recovery at start finishes or undoes, and the switch, the moment moves
 * take effect.  Each change commits at once: recovery depends on it.
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

static int
index_journal_bind(sqlite3_stmt *q, const struct jrow *j)
{
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, j->id);
	sqlite3_bind_int(q, 2, j->src);
	sqlite3_bind_int(q, 3, j->dst);
	sqlite3_bind_int64(q, 4, j->parent);
	sqlite3_bind_text(q, 5, j->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 6, j->tmp, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 7, (int64_t)j->ino);
	sqlite3_bind_int64(q, 8, j->size);
	sqlite3_bind_int64(q, 9, j->mtime);
	sqlite3_bind_int64(q, 10, j->ctime);
	sqlite3_bind_int(q, 11, j->state);
	return (sqlite3_step(q) == SQLITE_DONE ? 0 :
	    index_err(index_main.db, "journal"));
}

/* Journal rows for a batch of moves, in one transaction. */
int
index_journal_add_many(const struct jrow *j, size_t n)
{
	sqlite3_stmt	*q;
	size_t		 i;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(&index_main)) == 0) {
		if ((q = index_prep("INSERT OR REPLACE INTO journal (inode, "
		    "src, dst, parent, name, tmp, ino, size, mtime, ctime, "
		    "state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
		    "?11)")) == NULL)
			rv = -EIO;
		for (i = 0; i < n && rv == 0; i++)
			rv = index_journal_bind(q, &j[i]);
		sqlite3_finalize(q);
		rv = index_end(&index_main, rv);
	}
	index_sync_locked();
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

int
index_journal_add(const struct jrow *j)
{
	return (index_journal_add_many(j, 1));
}

/*
 * The moment moves take effect: in one transaction, each inode's tier
 * becomes its target with the copy's identity, and the journal says so.
 */
int
index_switch_many(const struct index_switch *sw, size_t n)
{
	struct timespec	 now;
	sqlite3_stmt	*q = NULL, *qj = NULL;
	size_t		 i;
	int		 rv;

	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(&index_main)) != 0)
		goto out;
	if ((q = index_prep("UPDATE inode SET tier = ?2, dev = ?3, ino = ?4, "
	    "moved_at = ?5, accesses = 0, window_start = 0 WHERE id = ?1")) ==
	    NULL || (qj = index_prep("UPDATE journal SET state = ?2 "
	    "WHERE inode = ?1")) == NULL)
		rv = -EIO;
	for (i = 0; i < n && rv == 0; i++) {
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, sw[i].id);
		sqlite3_bind_int(q, 2, sw[i].dst);
		sqlite3_bind_int64(q, 3, (int64_t)sw[i].dev);
		sqlite3_bind_int64(q, 4, (int64_t)sw[i].ino);
		sqlite3_bind_int64(q, 5, index_ns(&now));
		if (sqlite3_step(q) != SQLITE_DONE)
			rv = index_err(index_main.db, "switch");
		sqlite3_reset(qj);
		sqlite3_bind_int64(qj, 1, sw[i].id);
		sqlite3_bind_int(qj, 2, JOURNAL_SWITCHED);
		if (rv == 0 && sqlite3_step(qj) != SQLITE_DONE)
			rv = index_err(index_main.db, "switch journal");
	}
	sqlite3_finalize(q);
	sqlite3_finalize(qj);
	rv = index_end(&index_main, rv);
	index_sync_locked();
out:
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

int
index_switch(fuse_ino_t id, int dst, uint64_t dev, uint64_t ino)
{
	struct index_switch	sw = { id, dst, dev, ino };

	return (index_switch_many(&sw, 1));
}

int
index_journal_del(fuse_ino_t id)
{
	sqlite3_stmt	*q;
	int		 rv = -EIO;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("DELETE FROM journal WHERE inode = ?1")) != NULL) {
		sqlite3_bind_int64(q, 1, id);
		rv = index_run(q, "journal delete");
	}
	index_sync_locked();
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/* The journal rows of finished moves, in one transaction. */
int
index_journal_del_many(const fuse_ino_t *ids, size_t n)
{
	sqlite3_stmt	*q;
	size_t		 i;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((rv = index_begin(&index_main)) == 0) {
		if ((q = index_prep("DELETE FROM journal WHERE inode = ?1")) ==
		    NULL)
			rv = -EIO;
		for (i = 0; i < n && rv == 0; i++) {
			sqlite3_reset(q);
			sqlite3_bind_int64(q, 1, ids[i]);
			if (sqlite3_step(q) != SQLITE_DONE)
				rv = index_err(index_main.db, "journal delete");
		}
		sqlite3_finalize(q);
		rv = index_end(&index_main, rv);
	}
	index_sync_locked();
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/* Every journal row, for recovery at start. */
int
index_journal(struct jrow **rowsp, size_t *np)
{
	sqlite3_stmt	*q;
	struct jrow	*rows = NULL, *j;
	size_t		 n = 0, cap = 0;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT inode, src, dst, parent, name, tmp, ino, "
	    "size, mtime, ctime, state FROM journal")) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (array_grow(&rows, &cap, n + 1, sizeof *rows) != 0) {
			rv = SQLITE_NOMEM;
			break;
		}
		j = &rows[n++];
		memset(j, 0, sizeof *j);
		j->id = sqlite3_column_int64(q, 0);
		j->src = sqlite3_column_int(q, 1);
		j->dst = sqlite3_column_int(q, 2);
		j->parent = sqlite3_column_int64(q, 3);
		snprintf(j->name, sizeof j->name, "%s",
		    (const char *)sqlite3_column_text(q, 4));
		snprintf(j->tmp, sizeof j->tmp, "%s",
		    (const char *)sqlite3_column_text(q, 5));
		j->ino = sqlite3_column_int64(q, 6);
		j->size = sqlite3_column_int64(q, 7);
		j->mtime = sqlite3_column_int64(q, 8);
		j->ctime = sqlite3_column_int64(q, 9);
		j->state = sqlite3_column_int(q, 10);
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	if (rv != SQLITE_DONE) {
		free(rows);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	*rowsp = rows;
	*np = n;
	return (0);
}
