/*
 * The index: where each file lives.  Two tables, as a filesystem has them:
 * inode (id = st_ino = FUSE node id) and dentry (parent, name -> inode).
 * The only file that includes <sqlite3.h>.
 *
 * FUSE threads share one connection under a mutex; each statement is
 * prepared once.  The scan has a connection of its own and commits in
 * short batches so that FUSE writers never wait long.
 */
#include "config.h"

#include <sys/statvfs.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "dfs.h"

/*
 * The schema version, in PRAGMA user_version.  An index of an older
 * version is brought up to date by the steps in index_upgrade, in order,
 * in one transaction; none has been needed since the first release.
 */
#define INDEX_VERSION	1

static const char *const index_upgrade[INDEX_VERSION + 1] = {
	[0] = NULL,	/* new: the schema below creates everything */
	[1] = NULL,
};

enum {
	Q_LOOKUP,
	Q_GET,
	Q_NAME,
	Q_INS_INODE,
	Q_INS_DENTRY,
	Q_DEL_DENTRY,
	Q_DEL_ORPHAN,
	Q_RENAME,
	Q_SET_TIER,
	Q_SET_TIERS,
	Q_SET_STAT,
	Q_LIST,
	Q_META_GET,
	Q_META_SET,
	Q_FIND_LINK,
	Q_COUNT_CHILD,
	Q_SCAN_MARK,
	Q_SCAN_MARKD,
	Q_SET_IDENT,
	Q_NLINK,
	Q_LAST
};

static const char *index_sql[Q_LAST] = {
	[Q_LOOKUP] = "SELECT i.id, i.type, i.tier, i.tiers, i.dev, i.ino, "
	    "i.size, i.mtime, i.partial, i.pin, i.moved_at, i.atime_seen, "
	    "i.ctime FROM dentry d "
	    "JOIN inode i ON i.id = d.inode "
	    "WHERE d.parent = ?1 AND d.name = ?2",
	[Q_GET] = "SELECT id, type, tier, tiers, dev, ino, size, mtime, partial, "
	    "pin, moved_at, atime_seen, ctime "
	    "FROM inode WHERE id = ?1",
	[Q_NAME] = "SELECT parent, name FROM dentry WHERE inode = ?1 LIMIT 1",
	[Q_INS_INODE] = "INSERT INTO inode (type, tier, tiers, dev, ino, "
	    "nlink, size, mtime, ctime, gen, partial) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[Q_INS_DENTRY] = "INSERT OR REPLACE INTO dentry (parent, name, inode, "
	    "gen) VALUES (?1, ?2, ?3, ?4)",
	[Q_DEL_DENTRY] = "DELETE FROM dentry WHERE parent = ?1 AND name = ?2 "
	    "RETURNING inode",
	[Q_DEL_ORPHAN] = "DELETE FROM inode WHERE id = ?1 AND id != 1 AND "
	    "NOT EXISTS (SELECT 1 FROM dentry WHERE inode = ?1)",
	[Q_RENAME] = "UPDATE dentry SET parent = ?3, name = ?4, gen = ?5 "
	    "WHERE parent = ?1 AND name = ?2",
	[Q_SET_TIER] = "UPDATE inode SET tier = ?2, dev = ?3, ino = ?4 "
	    "WHERE id = ?1",
	[Q_SET_TIERS] = "UPDATE inode SET tier = min(tier, ?2), "
	    "tiers = tiers | (1 << ?2) WHERE id = ?1",
	[Q_SET_STAT] = "UPDATE inode SET size = ?2, mtime = ?3, ctime = ?4, "
	    "nlink = ?5 WHERE id = ?1",
	[Q_LIST] = "SELECT d.name, i.type, i.tier, d.inode FROM dentry d "
	    "JOIN inode i ON i.id = d.inode WHERE d.parent = ?1",
	[Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[Q_META_SET] = "INSERT OR REPLACE INTO meta (key, value) "
	    "VALUES (?1, ?2)",
	[Q_FIND_LINK] = "SELECT id FROM inode WHERE tier = ?1 AND dev = ?2 "
	    "AND ino = ?3 AND nlink > 1",
	[Q_COUNT_CHILD] = "SELECT count(*) FROM dentry WHERE parent = ?1",
	[Q_SCAN_MARK] = "UPDATE inode SET tier = ?2, tiers = ?3, gen = ?4, "
	    "partial = 0, dev = ?5, ino = ?6 "
	    "WHERE id = ?1",
	[Q_SCAN_MARKD] = "UPDATE dentry SET gen = ?3 WHERE parent = ?1 AND "
	    "name = ?2",
	[Q_SET_IDENT] = "UPDATE inode SET dev = ?3, ino = ?4 WHERE id = ?1 AND "
	    "tier = ?2",
	[Q_NLINK] = "SELECT count(*) FROM dentry WHERE inode = ?1",
};

static const char index_schema[] =
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY, value INTEGER);"
    "CREATE TABLE IF NOT EXISTS inode ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  type INTEGER NOT NULL,"		/* S_IFMT */
    "  tier INTEGER NOT NULL,"		/* file: its tier; dir: fastest */
    "  tiers INTEGER NOT NULL DEFAULT 0,"	/* dir: mask of its tiers */
    "  dev INTEGER, ino INTEGER, nlink INTEGER DEFAULT 1,"
    "  size INTEGER DEFAULT 0, mtime INTEGER DEFAULT 0,"	/* ns */
    "  ctime INTEGER DEFAULT 0,"
    "  atime_seen INTEGER DEFAULT 0,"	/* last access through dfs */
    "  accesses INTEGER DEFAULT 0,"
    "  pin INTEGER DEFAULT 0,"
    "  gen INTEGER DEFAULT 0,"
    /* dir: found outside a scan, so its entries may be missing */
    "  partial INTEGER DEFAULT 0,"
    "  moved_at INTEGER DEFAULT 0,"	/* last migration, ns */
    "  window_start INTEGER DEFAULT 0);"	/* accesses counted since, ns */
    /*
     * Moves in progress, one row per name of the file (a hard-link group
     * has several): what recovery finishes or undoes.
     */
    "CREATE TABLE IF NOT EXISTS journal ("
    "  inode INTEGER NOT NULL, src INTEGER NOT NULL, dst INTEGER NOT NULL,"
    "  parent INTEGER NOT NULL, name TEXT NOT NULL, tmp TEXT NOT NULL,"
    "  ino INTEGER, size INTEGER, mtime INTEGER, ctime INTEGER,"
    "  state INTEGER NOT NULL, PRIMARY KEY (inode, parent, name));"
    "CREATE TABLE IF NOT EXISTS dentry ("
    "  parent INTEGER NOT NULL, name TEXT NOT NULL, inode INTEGER NOT NULL,"
    "  gen INTEGER DEFAULT 0, PRIMARY KEY (parent, name)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS dentry_inode ON dentry (inode);"
    "CREATE INDEX IF NOT EXISTS inode_age ON inode (tier, mtime);"
    "CREATE INDEX IF NOT EXISTS inode_link ON inode (tier, dev, ino) "
    "  WHERE nlink > 1;"
    "CREATE TABLE IF NOT EXISTS conflict ("
    "  parent INTEGER NOT NULL, name TEXT NOT NULL, tier INTEGER NOT NULL,"
    "  PRIMARY KEY (parent, name, tier)) WITHOUT ROWID;";

struct index_conn {
	sqlite3		*db;
	sqlite3_stmt	*q[Q_LAST];
};

static struct index_conn	 index_main;
static pthread_mutex_t		 index_mtx = PTHREAD_MUTEX_INITIALIZER;
static char			*index_file;
static atomic_int		 index_scanned;	/* a full scan has completed */
static int			 index_trust;	/* clean stop after a full scan */
static atomic_long		 index_gen;	/* the current scan generation */

static int	index_sync_locked(void);
static int	index_redo_replay(const char *, char **);
static void	index_wlock(int);
static void	index_wunlock(void);
static int	index_group_start(void);
static void	index_group_end(void);

static int
index_err(sqlite3 *db, const char *what)
{
	log_error("index %s: %s: %s", index_file, what, sqlite3_errmsg(db));
	switch (sqlite3_errcode(db)) {
	case SQLITE_FULL:
		return (-ENOSPC);
	case SQLITE_NOMEM:
		return (-ENOMEM);
	case SQLITE_READONLY:
		return (-EROFS);
	default:
		return (-EIO);
	}
}

/*
 * Open a connection to the index: the schema is created or upgraded
 * first, then every statement is prepared.
 */
static int
index_conn_open(struct index_conn *c, char **cause)
{
	sqlite3_stmt	*q = NULL;
	int64_t		 version = -1;
	char		 sql[64];
	int		 i;

	if (sqlite3_open_v2(index_file, &c->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		asprintf(cause, "index %s: %s", index_file,
		    c->db != NULL ? sqlite3_errmsg(c->db) : "out of memory");
		return (-1);
	}
	sqlite3_busy_timeout(c->db, 10000);
	if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=OFF;"
	    "PRAGMA temp_store=MEMORY;BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &q,
	    NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		version = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (version < 0)
		goto fail;
	if (version > INDEX_VERSION) {
		asprintf(cause, "index %s: version %lld is newer than this "
		    "dfs knows (%d)", index_file, (long long)version,
		    INDEX_VERSION);
		goto fail_cause;
	}
	for (i = (int)version + 1; version > 0 && i <= INDEX_VERSION; i++) {
		if (index_upgrade[i] != NULL && sqlite3_exec(c->db,
		    index_upgrade[i], NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
	}
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", INDEX_VERSION);
	if (sqlite3_exec(c->db, index_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (i = 0; i < Q_LAST; i++) {
		if (sqlite3_prepare_v3(c->db, index_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &c->q[i], NULL) != SQLITE_OK)
			goto fail;
	}
	return (0);
fail:
	asprintf(cause, "index %s: %s", index_file, sqlite3_errmsg(c->db));
fail_cause:
	for (i = 0; i < Q_LAST; i++) {
		sqlite3_finalize(c->q[i]);
		c->q[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
	return (-1);
}

static void
index_conn_close(struct index_conn *c)
{
	int	i;

	if (c->db == NULL)
		return;
	for (i = 0; i < Q_LAST; i++)
		sqlite3_finalize(c->q[i]);
	sqlite3_close(c->db);
	c->db = NULL;
}

/* Bind the arguments, run to completion; the first row is left in q. */
static sqlite3_stmt *
index_q(struct index_conn *c, int which)
{
	sqlite3_stmt	*q = c->q[which];

	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return (q);
}

static int64_t
index_meta_get(struct index_conn *c, const char *key, int64_t def)
{
	sqlite3_stmt	*q = index_q(c, Q_META_GET);
	int64_t		 v = def;

	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return (v);
}

static int
index_meta_set(struct index_conn *c, const char *key, int64_t v)
{
	sqlite3_stmt	*q = index_q(c, Q_META_SET);
	int		 rv;

	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, v);
	rv = sqlite3_step(q) == SQLITE_DONE ? 0 : index_err(c->db, key);
	sqlite3_reset(q);
	return (rv);
}

/*
 * Open (or create) the index at path.  Returns 1 if a full scan is needed
 * (new index, or the last run did not shut down cleanly), 0 if not, -1
 * with *cause on error.
 */
int
index_open(const char *path, char **cause)
{
	struct index_conn	*c = &index_main;
	int64_t			 dirty, scanned;
	int			 rv;

	index_file = strdup(path);
	if (index_conn_open(c, cause) != 0)
		return (-1);
	sqlite3_exec(c->db, "INSERT OR IGNORE INTO inode (id, type, tier, "
	    "tiers) VALUES (1, 16384, 0, 0)", NULL, NULL, NULL);
	if (index_redo_replay(path, cause) != 0)
		return (-1);
	dirty = index_meta_get(c, "dirty", 1);
	scanned = index_meta_get(c, "scanned", 0);
	atomic_store(&index_gen, index_meta_get(c, "gen", 0));
	/* Until a clean shutdown clears it, the index may lag the tiers. */
	if (index_meta_set(c, "dirty", 1) != 0) {
		asprintf(cause, "index %s: %s", path, sqlite3_errmsg(c->db));
		return (-1);
	}
	/*
	 * After an unclean stop the last group of changes may be lost with
	 * the ids it handed out: skip past any of them.
	 */
	if (dirty)
		sqlite3_exec(c->db, "UPDATE sqlite_sequence SET seq = seq + "
		    "1048576 WHERE name = 'inode'", NULL, NULL, NULL);
	if (index_group_start() != 0) {
		asprintf(cause, "index %s: cannot start a thread", path);
		return (-1);
	}
	rv = dirty || !scanned;
	/*
	 * A scan runs at every start, since the tiers may have changed while
	 * dfs was down; until it completes, misses probe the tiers, unless
	 * index_trust_previous finds the index as whole as the last stop
	 * left it.
	 */
	index_trust = !dirty && scanned && index_meta_get(c, "ntiers", 0) ==
	    dfs.ntiers;
	atomic_store(&index_scanned, 0);
	return (rv);
}

/* One recorded identity of tier t's file system: 0, or -1 and *cause. */
static int
index_check_tier(int t, const char *what, int64_t now, int accept,
    char **cause)
{
	char	key[32];
	int64_t	known;
	int	rv = 0;

	if (now == 0)
		return (0);
	snprintf(key, sizeof key, "tier%d.%s", t, what);
	pthread_mutex_lock(&index_mtx);
	known = index_meta_get(&index_main, key, 0);
	if (known == 0 || (known != now && accept))
		rv = index_meta_set(&index_main, key, now);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0) {
		asprintf(cause, "index %s: %s", index_file, strerror(-rv));
		return (-1);
	}
	if (known != 0 && known != now && !accept) {
		asprintf(cause, "tier %s (%s) is not on the file system the "
		    "index knows it on (%s %llx, was %llx): is its file system "
		    "mounted?  If the tier moved on purpose, start once with "
		    "-o retier", dfs.tiers[t].name, dfs.tiers[t].path, what,
		    (unsigned long long)now, (unsigned long long)known);
		return (-1);
	}
	if (known != 0 && known != now) {
		log_warn("tier %s (%s): a new file system, as -o retier "
		    "allows", dfs.tiers[t].name, dfs.tiers[t].path);
		index_trust = 0;
	}
	if (known == 0)
		index_trust = 0;	/* a tier the index has not seen */
	return (0);
}

/*
 * Each tier must be the file system the index knows it on (statfs's
 * f_fsid, recorded on first use): a tier whose disk did not mount shows
 * an empty directory of the file system below, and a scan would drop
 * every row of the tier while migration filled the wrong disk.  With
 * accept, a tier moved on purpose is recorded anew.  The file system
 * type is recorded too: it is all FUSE file systems (sshfs, s3fs) give,
 * and still tells an sshfs that did not mount from the disk below it.
 */
int
index_check_tiers(int accept, char **cause)
{
	struct statvfs	sv;
	int		t, rv;

	for (t = 0; t < dfs.ntiers; t++) {
		if ((rv = tier_statfs(t, &sv)) != 0) {
			asprintf(cause, "tier %s (%s): %s", dfs.tiers[t].name,
			    dfs.tiers[t].path, strerror(-rv));
			return (-1);
		}
		if (index_check_tier(t, "fsid", (int64_t)sv.f_fsid, accept,
		    cause) != 0 || index_check_tier(t, "fstype",
		    dfs.tiers[t].magic, accept, cause) != 0)
			return (-1);
	}
	return (0);
}

void
index_close(int clean)
{
	index_flush(0);
	index_group_end();
	pthread_mutex_lock(&index_mtx);
	if (index_main.db != NULL && clean)
		index_meta_set(&index_main, "dirty", 0);
	index_conn_close(&index_main);
	redo_close();
	pthread_mutex_unlock(&index_mtx);
	free(index_file);
	index_file = NULL;
}

/*
 * After a clean stop that followed a completed scan, on the same tiers,
 * the index holds every name dfs made or saw: serve from it at once (no
 * probe of any tier for a miss) while the start-up scan looks for what
 * changed on the tiers while dfs was down, as a dfsctl scan would on a
 * live mount.  Returns 1 if it did.
 */
int
index_trust_previous(void)
{
	if (!index_trust)
		return (0);
	atomic_store(&index_scanned, 1);
	return (1);
}

int
index_is_scanned(void)
{
	return (atomic_load(&index_scanned));
}

static void
index_row(sqlite3_stmt *q, struct irow *r)
{
	r->id = sqlite3_column_int64(q, 0);
	r->type = sqlite3_column_int(q, 1);
	r->tier = sqlite3_column_int(q, 2);
	r->tiers = sqlite3_column_int(q, 3);
	r->dev = sqlite3_column_int64(q, 4);
	r->ino = sqlite3_column_int64(q, 5);
	r->size = sqlite3_column_int64(q, 6);
	r->mtime = sqlite3_column_int64(q, 7);
	r->partial = sqlite3_column_int(q, 8);
	r->pin = sqlite3_column_int(q, 9);
	r->moved_at = sqlite3_column_int64(q, 10);
	r->atime_seen = sqlite3_column_int64(q, 11);
	r->ctime = sqlite3_column_int64(q, 12);
}

/* (parent, name) -> row; -ENOENT when the index has no such name. */
int
index_lookup(fuse_ino_t parent, const char *name, struct irow *r)
{
	sqlite3_stmt	*q;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_LOOKUP);
	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	switch (sqlite3_step(q)) {
	case SQLITE_ROW:
		index_row(q, r);
		rv = 0;
		break;
	case SQLITE_DONE:
		rv = -ENOENT;
		break;
	default:
		rv = index_err(index_main.db, "lookup");
		break;
	}
	sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

int
index_get(fuse_ino_t id, struct irow *r)
{
	sqlite3_stmt	*q;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_GET);
	sqlite3_bind_int64(q, 1, id);
	rv = sqlite3_step(q);
	if (rv == SQLITE_ROW) {
		index_row(q, r);
		rv = 0;
	} else
		rv = rv == SQLITE_DONE ? -ENOENT : index_err(index_main.db,
		    "get");
	sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

/*
 * How many names inode id has in the index: its link count where the
 * tier's st_nlink does not count them (sshfs says 1).  0 on error.
 */
unsigned
index_nlink(fuse_ino_t id)
{
	sqlite3_stmt	*q;
	unsigned	 n = 0;

	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_NLINK);
	sqlite3_bind_int64(q, 1, id);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = (unsigned)sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	return (n);
}

/* One name of inode id: its parent and the name copied into buf. */
int
index_name(fuse_ino_t id, fuse_ino_t *parent, char *buf, size_t len)
{
	sqlite3_stmt	*q;
	const char	*name;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_NAME);
	sqlite3_bind_int64(q, 1, id);
	rv = sqlite3_step(q);
	if (rv == SQLITE_ROW) {
		*parent = sqlite3_column_int64(q, 0);
		name = (const char *)sqlite3_column_text(q, 1);
		if (name == NULL || strlen(name) >= len)
			rv = -ENAMETOOLONG;
		else {
			strcpy(buf, name);
			rv = 0;
		}
	} else
		rv = rv == SQLITE_DONE ? -ENOENT : index_err(index_main.db,
		    "name");
	sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

static int
index_step_done(struct index_conn *c, sqlite3_stmt *q, const char *what)
{
	int	rv;

	rv = sqlite3_step(q) == SQLITE_DONE ? 0 : index_err(c->db, what);
	sqlite3_reset(q);
	return (rv);
}

static int64_t
index_ns(const struct timespec *ts)
{
	return ((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
}

/* A new inode row for st on tier t; its id is the new node id. */
static int
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

static int
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
static int
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
static int		index_scanning;
/*
 * Into an empty index the scan inserts without looking first, until a
 * FUSE thread writes: a lookup meanwhile may have given a name the scan
 * has yet to reach an inode, which the scan must keep, not replace.
 */
static atomic_int	index_scan_fresh;
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

static int64_t
index_mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* Commit index_main's open group, if any; index_mtx is held. */
static int
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
static void
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

static int
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

static void
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

static void
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

static void
index_wunlock(void)
{
	pthread_mutex_lock(&index_wmtx);
	index_wheld = 0;
	pthread_cond_broadcast(&index_wcv);
	pthread_mutex_unlock(&index_wmtx);
}

static int
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

static int
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
	/* Made-up inode numbers may be another file's: no link by them. */
	if (*id == 0 && !S_ISDIR(st->st_mode) && st->st_nlink > 1 &&
	    tier_has(t, TIER_CAP_STABLE_INO)) {
		q = index_q(c, Q_FIND_LINK);
		sqlite3_bind_int(q, 1, t);
		sqlite3_bind_int64(q, 2, (int64_t)st->st_dev);
		sqlite3_bind_int64(q, 3, (int64_t)st->st_ino);
		if (sqlite3_step(q) == SQLITE_ROW)
			*id = sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
	}
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
static int
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

/* The names in directory parent, as the index knows them. */
int
index_list(fuse_ino_t parent, struct dirlist *l)
{
	sqlite3_stmt	*q;
	struct dirent_m	*ents;
	size_t		 cap = 0;
	int		 rv;

	l->ents = NULL;
	l->n = 0;
	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_LIST);
	sqlite3_bind_int64(q, 1, parent);
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (l->n == cap) {
			cap = cap < 64 ? 64 : cap * 2;
			if ((ents = realloc(l->ents, cap * sizeof *ents)) ==
			    NULL) {
				rv = SQLITE_NOMEM;
				break;
			}
			l->ents = ents;
		}
		l->ents[l->n].name = strdup((const char *)
		    sqlite3_column_text(q, 0));
		if (l->ents[l->n].name == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		l->ents[l->n].type = (sqlite3_column_int(q, 1) >> 12) & 017;
		l->ents[l->n].tier = sqlite3_column_int(q, 2);
		l->ents[l->n].ino = 0;
		l->ents[l->n].id = sqlite3_column_int64(q, 3);
		l->n++;
	}
	sqlite3_reset(q);
	pthread_mutex_unlock(&index_mtx);
	if (rv != SQLITE_DONE) {
		dirlist_free(l);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	return (0);
}

/*
 * Migration: candidates, the journal and the switch.  Statements here run
 * seldom (once per candidate batch or move), so they are prepared on use.
 */
static sqlite3_stmt *
index_prep(const char *sql)
{
	sqlite3_stmt	*q = NULL;

	if (sqlite3_prepare_v2(index_main.db, sql, -1, &q, NULL) !=
	    SQLITE_OK) {
		index_err(index_main.db, sql);
		return (NULL);
	}
	return (q);
}

/* Run a prepared one-off statement to completion and free it. */
static int
index_run(sqlite3_stmt *q, const char *what)
{
	int	rv;

	if ((rv = index_begin(&index_main)) == 0) {
		rv = sqlite3_step(q) == SQLITE_DONE ? 0 :
		    index_err(index_main.db, what);
		rv = index_end(&index_main, rv);
	}
	sqlite3_finalize(q);
	return (rv);
}

/* The next component of a path at *pp, its length in *len; NULL at end. */
const char *
index_component(const char **pp, size_t *len)
{
	const char	*s = *pp;

	while (*s == '/')
		s++;
	if (*s == '\0') {
		*pp = s;
		return (NULL);
	}
	*len = strcspn(s, "/");
	*pp = s + *len;
	return (s);
}

/*
 * Resolve rel, a path from the mount root ("." and ".." allowed), through
 * the index one component at a time: for dfsctl and migration requests.
 * 0 and the row, or -errno.
 */
int
index_resolve(const char *rel, struct irow *r)
{
	fuse_ino_t	*stack = NULL, *ns;
	size_t		 depth = 0, cap = 0, len;
	const char	*comp;
	char		 name[NAME_MAX + 1];
	int		 rv;

	if ((rv = index_get(FUSE_ROOT_ID, r)) != 0)
		return (rv);
	while ((comp = index_component(&rel, &len)) != NULL) {
		if (len == 1 && *comp == '.')
			continue;
		if (r->type != S_IFDIR) {
			rv = -ENOTDIR;
			break;
		}
		if (len == 2 && comp[0] == '.' && comp[1] == '.') {
			if (depth > 0)
				rv = index_get(stack[--depth], r);
			else
				rv = index_get(FUSE_ROOT_ID, r);
			if (rv != 0)
				break;
			continue;
		}
		if (len > NAME_MAX) {
			rv = -ENAMETOOLONG;
			break;
		}
		memcpy(name, comp, len);
		name[len] = '\0';
		if (depth == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((ns = realloc(stack, cap * sizeof *stack)) ==
			    NULL) {
				rv = -ENOMEM;
				break;
			}
			stack = ns;
		}
		stack[depth++] = r->id;
		if ((rv = index_lookup(r->id, name, r)) != 0)
			break;
	}
	free(stack);
	return (rv);
}

/* Every row a one-off inode query gives; the statement is freed. */
static int
index_fetch(sqlite3_stmt *q, struct irow **rowsp, size_t *np)
{
	struct irow	*rows = NULL, *nr;
	size_t		 n = 0, cap = 0;
	int		 rv;

	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((nr = realloc(rows, cap * sizeof *rows)) == NULL) {
				rv = SQLITE_NOMEM;
				break;
			}
			rows = nr;
		}
		index_row(q, &rows[n++]);
	}
	sqlite3_finalize(q);
	if (rv != SQLITE_DONE) {
		free(rows);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	*rowsp = rows;
	*np = n;
	return (0);
}

/*
 * Regular files on tier t, not pinned, oldest first by mtime (by = 0),
 * ctime (1) or last access through dfs (2), older than before (ns), and
 * after the row (*after_val, *after_id) a previous page ended with; both
 * are moved on to this page's last row.
 */
int
index_candidates(int t, int by, int64_t before, int64_t *after_val,
    fuse_ino_t *after_id, size_t limit, struct irow **rowsp, size_t *np)
{
	static const char *const col[] = { "mtime", "ctime", "atime_seen" };
	struct irow	*rows = NULL;
	sqlite3_stmt	*q;
	char		 sql[512];
	size_t		 n = 0;
	int		 rv;

	snprintf(sql, sizeof sql, "SELECT id, type, tier, tiers, dev, ino, "
	    "size, mtime, partial, pin, moved_at, atime_seen, ctime "
	    "FROM inode WHERE tier = ?1 AND type = %d AND pin = 0 AND "
	    "%s < ?2 AND (%s > ?4 OR (%s = ?4 AND id > ?5)) "
	    "ORDER BY %s, id LIMIT ?3", S_IFREG, col[by], col[by], col[by],
	    col[by]);
	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep(sql)) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	sqlite3_bind_int(q, 1, t);
	sqlite3_bind_int64(q, 2, before);
	sqlite3_bind_int64(q, 3, (int64_t)limit);
	sqlite3_bind_int64(q, 4, *after_val);
	sqlite3_bind_int64(q, 5, (int64_t)*after_id);
	rv = index_fetch(q, &rows, &n);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0)
		return (rv);
	if (n > 0) {
		*after_val = by == 0 ? rows[n - 1].mtime : by == 1 ?
		    rows[n - 1].ctime : rows[n - 1].atime_seen;
		*after_id = rows[n - 1].id;
	}
	*rowsp = rows;
	*np = n;
	return (0);
}

/*
 * Files on tier t read at least reads times in the current window
 * (started after since, ns), most read first: candidates for promotion.
 */
int
index_hot(int t, int64_t reads, int64_t since, size_t limit,
    struct irow **rowsp, size_t *np)
{
	struct irow	*rows = NULL;
	sqlite3_stmt	*q;
	size_t		 n = 0;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT id, type, tier, tiers, dev, ino, size, "
	    "mtime, partial, pin, moved_at, atime_seen, ctime FROM inode "
	    "WHERE tier = ?1 AND type = 32768 AND pin = 0 AND accesses >= ?2 "
	    "AND window_start > ?3 ORDER BY accesses DESC LIMIT ?4")) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	sqlite3_bind_int(q, 1, t);
	sqlite3_bind_int64(q, 2, reads);
	sqlite3_bind_int64(q, 3, since);
	sqlite3_bind_int64(q, 4, (int64_t)limit);
	rv = index_fetch(q, &rows, &n);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0)
		return (rv);
	*rowsp = rows;
	*np = n;
	return (0);
}

/* How many inodes are pinned, as this connection sees them; -1 on error. */
long
index_pin_count(void)
{
	sqlite3_stmt	*q;
	long		 n = -1;

	pthread_mutex_lock(&index_mtx);
	if (index_main.db != NULL && (q = index_prep("SELECT count(*) FROM "
	    "inode WHERE pin != 0")) != NULL) {
		if (sqlite3_step(q) == SQLITE_ROW)
			n = (long)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&index_mtx);
	return (n);
}

/* Would index_hot list inode id?  1 or 0. */
int
index_is_hot(fuse_ino_t id, int64_t reads, int64_t since)
{
	sqlite3_stmt	*q;
	int		 hot = 0;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT 1 FROM inode WHERE id = ?1 AND "
	    "type = 32768 AND accesses >= ?2 AND window_start > ?3")) != NULL) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int64(q, 2, reads);
		sqlite3_bind_int64(q, 3, since);
		hot = sqlite3_step(q) == SQLITE_ROW;
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&index_mtx);
	return (hot);
}

/* The path of inode id from the mount root ("/a/b"), for policies and logs. */
int
index_path(fuse_ino_t id, char *buf, size_t len)
{
	char		 name[NAME_MAX + 1], *tmp;
	fuse_ino_t	 parent;
	size_t		 used = 0, nl;
	int		 rv, depth = 0;

	if (len < 2)
		return (-ENAMETOOLONG);
	if ((tmp = malloc(len)) == NULL)
		return (-ENOMEM);
	buf[0] = '\0';
	while (id != FUSE_ROOT_ID) {
		if ((rv = index_name(id, &parent, name, sizeof name)) != 0 ||
		    ++depth > 65536)
			goto out;
		nl = strlen(name);
		if (used + nl + 2 > len) {
			rv = -ENAMETOOLONG;
			goto out;
		}
		/* Prepend "/name". */
		memcpy(tmp, buf, used + 1);
		buf[0] = '/';
		memcpy(buf + 1, name, nl);
		memcpy(buf + 1 + nl, tmp, used + 1);
		used += nl + 1;
		id = parent;
	}
	if (used == 0)
		strcpy(buf, "/");
	rv = 0;
out:
	free(tmp);
	return (rv);
}

/* Every name of inode id (a hard-link group): parents and names. */
int
index_names(fuse_ino_t id, fuse_ino_t **parentsp, char ***namesp, size_t *np)
{
	sqlite3_stmt	*q;
	fuse_ino_t	*parents = NULL, *np2;
	char		**names = NULL, **nn;
	size_t		 n = 0;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT parent, name FROM dentry WHERE inode = ?1 "
	    "ORDER BY parent, name")) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	sqlite3_bind_int64(q, 1, id);
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		np2 = realloc(parents, (n + 1) * sizeof *parents);
		if (np2 != NULL)
			parents = np2;
		nn = realloc(names, (n + 1) * sizeof *names);
		if (nn != NULL)
			names = nn;
		if (np2 == NULL || nn == NULL || (names[n] = strdup(
		    (const char *)sqlite3_column_text(q, 1))) == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		parents[n++] = sqlite3_column_int64(q, 0);
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	if (rv != SQLITE_DONE) {
		while (n > 0)
			free(names[--n]);
		free(names);
		free(parents);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	*parentsp = parents;
	*namesp = names;
	*np = n;
	return (0);
}

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
	struct jrow	*rows = NULL, *nr, *j;
	size_t		 n = 0;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT inode, src, dst, parent, name, tmp, ino, "
	    "size, mtime, ctime, state FROM journal")) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if ((nr = realloc(rows, (n + 1) * sizeof *rows)) == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		rows = nr;
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

/*
 * The scan: its own connection, entries upserted in batches, rows it did
 * not see swept at the end.  Rows the FUSE threads write meanwhile carry
 * the new generation, so the sweep spares them.
 */
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
	atomic_store(&index_scan_fresh, sqlite3_step(q) == SQLITE_ROW &&
	    sqlite3_column_int64(q, 0) == 0);
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
    const struct stat *st, fuse_ino_t *id)
{
	struct index_conn	*c = &index_scan_c;
	struct irow		 r;
	sqlite3_stmt		*q;
	int64_t			 gen = atomic_load(&index_gen);
	int			 rv, found = 0;

	if (!atomic_load(&index_scan_fresh)) {
		q = index_q(c, Q_LOOKUP);
		sqlite3_bind_int64(q, 1, parent);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
		if (sqlite3_step(q) == SQLITE_ROW) {
			index_row(q, &r);
			found = 1;
		}
		sqlite3_reset(q);
	}
	/* A tier that renumbers its files: the name says which file it is. */
	if (found && (unsigned)r.type == (st->st_mode & S_IFMT) &&
	    (S_ISDIR(st->st_mode) || (r.tier == t &&
	    tier_same_file(t, st, r.dev, r.ino)))) {
		*id = r.id;
		q = index_q(c, Q_SET_STAT);
		sqlite3_bind_int64(q, 1, r.id);
		sqlite3_bind_int64(q, 2, st->st_size);
		sqlite3_bind_int64(q, 3, index_ns(&st->st_mtim));
		sqlite3_bind_int64(q, 4, index_ns(&st->st_ctim));
		sqlite3_bind_int64(q, 5, S_ISDIR(st->st_mode) ? 1 :
		    st->st_nlink);
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
		q = index_q(c, Q_SCAN_MARKD);
		sqlite3_bind_int64(q, 1, parent);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, gen);
		rv = index_step_done(c, q, "scan mark");
	} else {
		if (found && (rv = index_remove_dentry(c, parent, name)) != 0)
			return (rv);
		*id = 0;
		if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 &&
		    tier_has(t, TIER_CAP_STABLE_INO)) {
			q = index_q(c, Q_FIND_LINK);
			sqlite3_bind_int(q, 1, t);
			sqlite3_bind_int64(q, 2, (int64_t)st->st_dev);
			sqlite3_bind_int64(q, 3, (int64_t)st->st_ino);
			if (sqlite3_step(q) == SQLITE_ROW)
				*id = sqlite3_column_int64(q, 0);
			sqlite3_reset(q);
		}
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

/* Finish: sweep what the scan did not see, and say the index is whole. */
int
index_scan_end(int ok)
{
	struct index_conn	*c = &index_scan_c;
	char			 sql[512];
	int			 rv = 0;

	if (ok) {
		snprintf(sql, sizeof sql,
		    "DELETE FROM dentry WHERE gen < %ld;"
		    "DELETE FROM inode WHERE id != 1 AND id NOT IN "
		    "(SELECT inode FROM dentry);"
		    "INSERT OR REPLACE INTO meta VALUES ('scanned', 1);"
		    "INSERT OR REPLACE INTO meta VALUES ('ntiers', %d);"
		    "INSERT OR REPLACE INTO meta VALUES ('gen', %ld);",
		    atomic_load(&index_gen), dfs.ntiers,
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
	return (rv);
}

/* Queries for dfsctl. */

int
index_is_open(void)
{
	int	open;

	pthread_mutex_lock(&index_mtx);
	open = index_main.db != NULL;
	pthread_mutex_unlock(&index_mtx);
	return (open);
}

/* How many names have shadowed copies on slower tiers. */
int
index_conflict_count(unsigned long *n)
{
	sqlite3_stmt	*q = NULL;
	int		 rv;

	*n = 0;
	pthread_mutex_lock(&index_mtx);
	if (index_main.db == NULL) {
		rv = -ENXIO;
		goto out;
	}
	if (sqlite3_prepare_v2(index_main.db, "SELECT count(*) FROM "
	    "(SELECT DISTINCT parent, name FROM conflict)", -1, &q,
	    NULL) != SQLITE_OK) {
		rv = index_err(index_main.db, "conflict count");
		goto out;
	}
	if (sqlite3_step(q) == SQLITE_ROW) {
		*n = sqlite3_column_int64(q, 0);
		rv = 0;
	} else
		rv = index_err(index_main.db, "conflict count");
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

void
index_conflicts_free(struct index_conflict *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/*
 * The conflict table, one entry per name with the tiers that hold its
 * shadowed copies, in (parent, name) order.
 */
int
index_conflicts(struct index_conflict **out, size_t *np)
{
	struct index_conflict	*v = NULL, *nv, *e;
	sqlite3_stmt		*q = NULL;
	size_t			 n = 0, cap = 0;
	const char		*name;
	fuse_ino_t		 parent;
	int			 rv, t;

	*out = NULL;
	*np = 0;
	pthread_mutex_lock(&index_mtx);
	if (index_main.db == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-ENXIO);
	}
	if (sqlite3_prepare_v2(index_main.db, "SELECT parent, name, tier "
	    "FROM conflict ORDER BY parent, name, tier", -1, &q, NULL) !=
	    SQLITE_OK) {
		rv = index_err(index_main.db, "conflicts");
		goto out;
	}
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		parent = sqlite3_column_int64(q, 0);
		name = (const char *)sqlite3_column_text(q, 1);
		t = sqlite3_column_int(q, 2);
		if (name == NULL || t < 0 || t >= DFS_MAX_TIERS)
			continue;
		if (n != 0 && v[n - 1].parent == parent &&
		    strcmp(v[n - 1].name, name) == 0) {
			v[n - 1].tiers |= 1u << t;
			continue;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
				rv = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		e = &v[n];
		e->parent = parent;
		e->tiers = 1u << t;
		if ((e->name = strdup(name)) == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	if (rv == SQLITE_DONE)
		rv = 0;
	else if (rv == SQLITE_NOMEM)
		rv = -ENOMEM;
	else
		rv = index_err(index_main.db, "conflicts");
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0) {
		index_conflicts_free(v, n);
		return (rv);
	}
	*out = v;
	*np = n;
	return (0);
}

/*
 * A read-only connection of the caller's own, for queries that read many
 * rows: in WAL mode they run beside the writers, without index_mtx.
 */
static int
index_reader(sqlite3 **db)
{
	int	rv;

	*db = NULL;
	if (index_file == NULL)
		return (-ENXIO);
	index_sync();
	if (sqlite3_open_v2(index_file, db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rv = index_err(*db, "read-only connection");
		sqlite3_close(*db);
		*db = NULL;
		return (rv);
	}
	sqlite3_busy_timeout(*db, 10000);
	return (0);
}

/* The regular files on each of the first n tiers and their bytes. */
int
index_tier_usage(int n, uint64_t *files, uint64_t *bytes)
{
	sqlite3		*db;
	sqlite3_stmt	*q = NULL;
	int		 t, rv;

	if ((rv = index_reader(&db)) != 0)
		return (rv);
	if (sqlite3_prepare_v2(db, "SELECT count(*), sum(size) FROM inode "
	    "WHERE tier = ? AND type = 32768", -1, &q, NULL) != SQLITE_OK) {
		rv = index_err(db, "tier usage");
		goto out;
	}
	for (t = 0; t < n; t++) {
		sqlite3_reset(q);
		sqlite3_bind_int(q, 1, t);
		if (sqlite3_step(q) != SQLITE_ROW) {
			rv = index_err(db, "tier usage");
			break;
		}
		files[t] = sqlite3_column_int64(q, 0);
		bytes[t] = sqlite3_column_int64(q, 1);
	}
out:
	sqlite3_finalize(q);
	sqlite3_close(db);
	return (rv);
}

/* The pinned inodes, in id order; *ids is malloc'd. */
int
index_pins(fuse_ino_t **ids, size_t *np)
{
	sqlite3		*db;
	sqlite3_stmt	*q = NULL;
	fuse_ino_t	*v = NULL, *nv;
	size_t		 n = 0, cap = 0;
	int		 rv;

	*ids = NULL;
	*np = 0;
	if ((rv = index_reader(&db)) != 0)
		return (rv);
	if (sqlite3_prepare_v2(db, "SELECT id FROM inode WHERE pin != 0 "
	    "ORDER BY id", -1, &q, NULL) != SQLITE_OK) {
		rv = index_err(db, "pins");
		goto out;
	}
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
				rv = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = sqlite3_column_int64(q, 0);
	}
	if (rv == SQLITE_DONE)
		rv = 0;
	else if (rv == SQLITE_NOMEM)
		rv = -ENOMEM;
	else
		rv = index_err(db, "pins");
out:
	sqlite3_finalize(q);
	sqlite3_close(db);
	if (rv != 0) {
		free(v);
		return (rv);
	}
	*ids = v;
	*np = n;
	return (0);
}
