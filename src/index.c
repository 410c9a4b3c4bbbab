/*
 * The index: where each file lives.  Two tables, as a filesystem has them:
 * inode (id = st_ino = FUSE node id) and dentry (parent, name -> inode).
 * Only index*.c include <sqlite3.h>; index_int.h is what they share.
 *
 * This file: the connections, the schema and its upgrade, the prepared
 * statements and the helpers every part uses.  Namespace writes and the
 * group commit are in index_ns.c, the migration journal in
 * index_journal.c, the scan in index_scan.c, read-only queries in
 * index_query.c.
 *
 * FUSE threads share one connection under a mutex; each statement is
 * prepared once.  The scan has a connection of its own and commits in
 * short batches so that FUSE writers never wait long.
 */
#include "config.h"

#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dfs.h"
#include "index_int.h"

/*
 * An index of an older version is brought up to date by the steps in
 * index_upgrade, in order, in one transaction; none has been needed since
 * the first release.
 */
static const char *const index_upgrade[INDEX_VERSION + 1] = {
	[0] = NULL,	/* new: the schema below creates everything */
	[1] = NULL,
};

static const char *index_sql[Q_LAST] = {
	[Q_LOOKUP] = "SELECT i.id, i.type, i.tier, i.tiers, i.dev, i.ino, "
	    "i.size, i.mtime, i.partial, i.pin, i.moved_at, i.atime_seen, "
	    "i.ctime, i.nlink FROM dentry d "
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
	[Q_LIST] = "SELECT d.name, i.type, i.tier, d.inode, i.dev, i.ino, "
	    "i.tiers, i.partial FROM dentry d "
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
    "  PRIMARY KEY (parent, name, tier)) WITHOUT ROWID;"
    /*
     * Regular files and their bytes per tier, kept by triggers: dfsctl
     * status reads a row per tier instead of counting millions of rows.
     */
    "CREATE TABLE IF NOT EXISTS usage ("
    "  tier INTEGER PRIMARY KEY, files INTEGER NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0);"
    "INSERT OR IGNORE INTO usage (tier) VALUES (0), (1), (2), (3), (4),"
    "  (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15);"
    "CREATE TRIGGER IF NOT EXISTS usage_add AFTER INSERT ON inode"
    "  WHEN new.type = 32768 BEGIN"
    "  UPDATE usage SET files = files + 1, bytes = bytes + new.size"
    "  WHERE tier = new.tier; END;"
    "CREATE TRIGGER IF NOT EXISTS usage_del AFTER DELETE ON inode"
    "  WHEN old.type = 32768 BEGIN"
    "  UPDATE usage SET files = files - 1, bytes = bytes - old.size"
    "  WHERE tier = old.tier; END;"
    "CREATE TRIGGER IF NOT EXISTS usage_set AFTER UPDATE OF tier, size, type"
    "  ON inode WHEN old.type = 32768 OR new.type = 32768 BEGIN"
    "  UPDATE usage SET files = files - 1, bytes = bytes - old.size"
    "  WHERE tier = old.tier AND old.type = 32768;"
    "  UPDATE usage SET files = files + 1, bytes = bytes + new.size"
    "  WHERE tier = new.tier AND new.type = 32768; END;";

/* An index without the usage table (older, or new) has it counted once. */
static const char index_usage_fill[] =
    "UPDATE usage SET files = (SELECT count(*) FROM inode i WHERE"
    "  i.tier = usage.tier AND i.type = 32768), bytes = (SELECT"
    "  total(i.size) FROM inode i WHERE i.tier = usage.tier AND"
    "  i.type = 32768)";

struct index_conn	 index_main;
pthread_mutex_t		 index_mtx = PTHREAD_MUTEX_INITIALIZER;
char			*index_file;
atomic_int		 index_scanned;	/* a full scan has completed */
static int		 index_trust;	/* clean stop after a full scan */
static int64_t		 index_boot;	/* this boot of the machine, hashed */
static int		 index_boot_same;	/* the last run's boot too */
atomic_long		 index_gen;	/* the current scan generation */

int
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
int
index_conn_open(struct index_conn *c, char **cause)
{
	sqlite3_stmt	*q = NULL;
	int64_t		 version = -1;
	char		 sql[64];
	int		 i, usage;

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
	usage = sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE "
	    "type = 'table' AND name = 'usage'", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW;
	sqlite3_finalize(q);
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", INDEX_VERSION);
	if (sqlite3_exec(c->db, index_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    (!usage && sqlite3_exec(c->db, index_usage_fill, NULL, NULL,
	    NULL) != SQLITE_OK) ||
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

void
index_conn_close(struct index_conn *c)
{
	int	i;

	if (c->db == NULL)
		return;
	/* The struct is opened again (the scan's, each scan): no stale ones. */
	for (i = 0; i < Q_LAST; i++) {
		sqlite3_finalize(c->q[i]);
		c->q[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

/*
 * A thread's read session: from index_read_begin to index_read_end, the
 * thread's lookups, gets and names run on a connection of its own inside
 * one read transaction.  A planner that asks millions of them then takes
 * neither index_mtx, which clients need, nor the WAL's file locks once
 * per statement.  It sees the index as it was at the last refresh.
 */
static __thread struct index_conn	*index_tls;

/* The connection for a read on this thread; index_runlock gives it back. */
struct index_conn *
index_rlock(void)
{
	if (index_tls != NULL)
		return (index_tls);
	pthread_mutex_lock(&index_mtx);
	return (&index_main);
}

void
index_runlock(struct index_conn *c)
{
	if (c == &index_main)
		pthread_mutex_unlock(&index_mtx);
}

/*
 * Start this thread's read session: 0, or -errno (then reads go on
 * through the shared connection, as without one).
 */
int
index_read_begin(void)
{
	struct index_conn	*c;
	int			 i;

	if (index_tls != NULL || index_file == NULL)
		return (index_tls != NULL ? 0 : -ENXIO);
	if ((c = calloc(1, sizeof *c)) == NULL)
		return (-ENOMEM);
	/* What clients were told is committed first, so the session sees it. */
	index_sync();
	if (sqlite3_open_v2(index_file, &c->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(c->db, 10000);
	for (i = 0; i < Q_LAST; i++)
		if (sqlite3_prepare_v3(c->db, index_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &c->q[i], NULL) != SQLITE_OK)
			goto fail;
	if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	index_tls = c;
	return (0);
fail:
	i = index_err(c->db, "read session");
	index_conn_close(c);
	free(c);
	return (i);
}

/*
 * Move the session to the index as it is now.  Between pages of a long
 * plan: a read transaction held for minutes would keep the WAL from
 * being checkpointed.
 */
void
index_read_refresh(void)
{
	struct index_conn	*c = index_tls;

	if (c == NULL)
		return;
	index_sync();
	sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		index_err(c->db, "read session");
}

void
index_read_end(void)
{
	struct index_conn	*c = index_tls;

	if (c == NULL)
		return;
	index_tls = NULL;
	sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	index_conn_close(c);
	free(c);
}

/* Bind the arguments, run to completion; the first row is left in q. */
sqlite3_stmt *
index_q(struct index_conn *c, int which)
{
	sqlite3_stmt	*q = c->q[which];

	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return (q);
}

int64_t
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

int
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
 * This boot of the machine, as a number (FNV-1a of the kernel's boot_id):
 * 0 if unknown.
 */
static int64_t
index_boot_id(void)
{
	char		 buf[64];
	uint64_t	 h = 14695981039346656037ULL;
	ssize_t		 n;
	int		 fd, i;

	if ((fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY |
	    O_CLOEXEC)) == -1)
		return (0);
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 16)
		return (0);
	for (i = 0; i < n && buf[i] != '\n'; i++)
		h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
	return ((int64_t)(h >> 1) | 1);
}

/*
 * Did the run that left the journal run on this boot of the machine?
 * Then no power loss came in between, and every change the tiers
 * acknowledged to it is still on them: recovery need not allow for a
 * rename the disk lost.
 */
int
index_same_boot(void)
{
	return (index_boot_same);
}

/*
 * Recovery is done: later journal rows are this boot's.  Not before, or a
 * crash during the recovery after a power loss would hide the loss from
 * the next one.
 */
void
index_boot_mark(void)
{
	pthread_mutex_lock(&index_mtx);
	if (index_main.db != NULL && index_boot != 0)
		index_meta_set(&index_main, "boot", index_boot);
	pthread_mutex_unlock(&index_mtx);
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
	index_boot = index_boot_id();
	index_boot_same = index_boot != 0 &&
	    index_meta_get(c, "boot", 0) == index_boot;
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

void
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

int
index_step_done(struct index_conn *c, sqlite3_stmt *q, const char *what)
{
	int	rv;

	rv = sqlite3_step(q) == SQLITE_DONE ? 0 : index_err(c->db, what);
	sqlite3_reset(q);
	return (rv);
}

int64_t
index_ns(const struct timespec *ts)
{
	return ((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
}

int64_t
index_mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/*
 * Statements that run seldom (once per candidate batch or move, or a
 * dfsctl request) are prepared on use.
 */
sqlite3_stmt *
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
int
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
