/*
 * Unit tests of the index on a database of their own: names added,
 * renamed and removed come back by name, id and path; journal rows as
 * written; the same rows after a reopen; an index of the previous schema
 * version brought up to date with its rows; a damaged or foreign file
 * refused with a cause, not a crash.
 *
 * The test makes databases of its own shape through the sqlite3 API, so
 * it includes <sqlite3.h>, and index_int.h for the current version.
 */
#include "config.h"

#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dfs.h"
#include "index_int.h"

static char	tmp[] = "/tmp/check_index.XXXXXX";
static char	db[PATH_MAX];

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(strcpy(tmp, "/tmp/check_index.XXXXXX")));
	snprintf(db, sizeof db, "%s/index.db", tmp);
	dfs.ntiers = 2;
}

static void
teardown(void)
{
	char	cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(cmd), 0);
}

/* Attributes as a tier would give them; directories have nlink 2. */
static struct stat *
mkst(struct stat *st, mode_t fmt, uint64_t ino, off_t size)
{
	memset(st, 0, sizeof *st);
	st->st_mode = fmt | (S_ISDIR(fmt) ? 0755 : 0644);
	st->st_dev = 2049;
	st->st_ino = ino;
	st->st_nlink = S_ISDIR(fmt) ? 2 : 1;
	st->st_size = size;
	st->st_mtim.tv_sec = 1700000000;
	st->st_mtim.tv_nsec = 123456789;
	st->st_ctim = st->st_mtim;
	return (st);
}

static fuse_ino_t
add(fuse_ino_t parent, const char *name, mode_t fmt, uint64_t ino,
    off_t size)
{
	struct stat	st;
	fuse_ino_t	id = 0;

	ck_assert_int_eq(index_add(parent, name, 0, S_ISDIR(fmt) ? 1 : 0, 0,
	    mkst(&st, fmt, ino, size), &id), 0);
	ck_assert_uint_gt(id, FUSE_ROOT_ID);
	return (id);
}

static void
open_index(int want)
{
	char	*cause = NULL;
	int	 rv;

	rv = index_open(db, &cause);
	if (rv == -1)
		ck_abort_msg("index_open: %s", cause);
	ck_assert_int_eq(rv, want);
}

static void
assert_path(fuse_ino_t id, const char *want)
{
	char	buf[PATH_MAX];

	ck_assert_int_eq(index_path(id, buf, sizeof buf), 0);
	ck_assert_str_eq(buf, want);
}

/* Run sql on the test's own connection to the database file. */
static void
exec_sql(const char *sql)
{
	sqlite3	*h;
	char	*err = NULL;

	ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
		ck_abort_msg("%s: %s", sql, err);
	sqlite3_close(h);
}

static int64_t
user_version(void)
{
	sqlite3		*h;
	sqlite3_stmt	*q;
	int64_t		 v = -1;

	ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &q,
	    NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(h);
	return (v);
}

static void
jrow(struct jrow *j, fuse_ino_t id, fuse_ino_t parent, const char *name)
{
	memset(j, 0, sizeof *j);
	j->id = id;
	j->src = 0;
	j->dst = 1;
	j->parent = parent;
	snprintf(j->name, sizeof j->name, "%s", name);
	snprintf(j->tmp, sizeof j->tmp, ".dfs-tmp.%llu",
	    (unsigned long long)id);
	j->ino = 5000 + id;
	j->size = 42;
	j->mtime = 1700000000123456789LL;
	j->ctime = 1700000001123456789LL;
	j->state = JOURNAL_COPYING;
}

START_TEST(test_fresh)
{
	struct irow	r;

	/* A new index has never been scanned: it asks for a scan. */
	open_index(1);
	ck_assert_int_eq(index_is_open(), 1);
	ck_assert_int_eq(index_get(FUSE_ROOT_ID, &r), 0);
	ck_assert_uint_eq(r.type, S_IFDIR);
	ck_assert_int_eq(index_lookup(FUSE_ROOT_ID, "a", &r), -ENOENT);
	ck_assert_int_eq(index_is_scanned(), 0);
	index_close(1);
	ck_assert_int_eq(index_is_open(), 0);
	ck_assert_int_eq(user_version(), INDEX_VERSION);
}
END_TEST

/* Files and bytes the index counts on tiers 0 and 1. */
static void
assert_usage(uint64_t f0, uint64_t b0, uint64_t f1, uint64_t b1)
{
	uint64_t	files[2], bytes[2];

	ck_assert_int_eq(index_tier_usage(2, files, bytes), 0);
	ck_assert_uint_eq(files[0], f0);
	ck_assert_uint_eq(bytes[0], b0);
	ck_assert_uint_eq(files[1], f1);
	ck_assert_uint_eq(bytes[1], b1);
}

/* The per-tier counts follow every change to a file's row. */
START_TEST(test_usage)
{
	struct stat	st;
	fuse_ino_t	d, f, g;

	open_index(1);
	assert_usage(0, 0, 0, 0);
	d = add(FUSE_ROOT_ID, "d", S_IFDIR, 100, 0);
	f = add(d, "f", S_IFREG, 101, 1000);
	g = add(d, "g", S_IFREG, 102, 20);
	assert_usage(2, 1020, 0, 0);		/* directories do not count */
	ck_assert_int_eq(index_set_stat(f, mkst(&st, S_IFREG, 101, 3000)), 0);
	assert_usage(2, 3020, 0, 0);
	ck_assert_int_eq(index_switch(f, 1, 2050, 555), 0);
	assert_usage(1, 20, 1, 3000);
	ck_assert_int_eq(index_unlink(d, "g"), 0);
	assert_usage(0, 0, 1, 3000);
	index_close(1);
	/* Kept in the file: the same after a reopen. */
	open_index(1);
	assert_usage(0, 0, 1, 3000);
	index_close(1);
	(void)g;
}
END_TEST

START_TEST(test_add_and_find)
{
	struct irow	 r;
	struct dirlist	 l;
	fuse_ino_t	 a, b, f, parent;
	char		 name[NAME_MAX + 1];

	open_index(1);
	a = add(FUSE_ROOT_ID, "a", S_IFDIR, 100, 0);
	b = add(a, "b", S_IFDIR, 101, 0);
	f = add(b, "f", S_IFREG, 102, 42);
	ck_assert_uint_ne(a, b);
	ck_assert_uint_ne(b, f);

	ck_assert_int_eq(index_lookup(a, "b", &r), 0);
	ck_assert_uint_eq(r.id, b);
	ck_assert_uint_eq(r.type, S_IFDIR);
	ck_assert_int_eq(index_get(f, &r), 0);
	ck_assert_uint_eq(r.type, S_IFREG);
	ck_assert_int_eq(r.size, 42);
	ck_assert_uint_eq(r.ino, 102);
	ck_assert_int_eq(r.mtime, 1700000000123456789LL);
	ck_assert_uint_eq(index_nlink(f), 1);

	ck_assert_int_eq(index_name(f, &parent, name, sizeof name), 0);
	ck_assert_uint_eq(parent, b);
	ck_assert_str_eq(name, "f");
	ck_assert_int_eq(index_name(f, &parent, name, 1), -ENAMETOOLONG);

	assert_path(f, "/a/b/f");
	assert_path(FUSE_ROOT_ID, "/");
	ck_assert_int_eq(index_path(f, name, 4), -ENAMETOOLONG);

	ck_assert_int_eq(index_resolve("a/b/f", &r), 0);
	ck_assert_uint_eq(r.id, f);
	ck_assert_int_eq(index_resolve("/a/./b/../b//f", &r), 0);
	ck_assert_uint_eq(r.id, f);
	ck_assert_int_eq(index_resolve("../a", &r), 0);
	ck_assert_uint_eq(r.id, a);
	ck_assert_int_eq(index_resolve("a/nope", &r), -ENOENT);
	ck_assert_int_eq(index_resolve("a/b/f/g", &r), -ENOTDIR);

	ck_assert_int_eq(index_list(a, &l), 0);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.ents[0].name, "b");
	ck_assert_uint_eq(l.ents[0].id, b);
	dirlist_free(&l);

	/* The same name again is the same inode, not a second one. */
	ck_assert_uint_eq(add(b, "f", S_IFREG, 102, 42), f);
	index_close(1);
}
END_TEST

START_TEST(test_rename_and_remove)
{
	struct irow	r;
	fuse_ino_t	a, b, f, g, h;

	open_index(1);
	a = add(FUSE_ROOT_ID, "a", S_IFDIR, 100, 0);
	b = add(a, "b", S_IFDIR, 101, 0);
	f = add(b, "f", S_IFREG, 102, 1);
	g = add(a, "g", S_IFREG, 103, 2);
	h = add(a, "h", S_IFREG, 104, 3);

	/* Across directories, under a new name. */
	ck_assert_int_eq(index_rename(b, "f", a, "f2", 0), 0);
	ck_assert_int_eq(index_lookup(b, "f", &r), -ENOENT);
	ck_assert_int_eq(index_lookup(a, "f2", &r), 0);
	ck_assert_uint_eq(r.id, f);
	assert_path(f, "/a/f2");

	/* A directory moves with everything below it. */
	ck_assert_int_eq(index_rename(a, "b", FUSE_ROOT_ID, "c", 0), 0);
	ck_assert_int_eq(index_resolve("c", &r), 0);
	ck_assert_uint_eq(r.id, b);

	/* Onto an existing name: the target's inode goes with its name. */
	ck_assert_int_eq(index_rename(a, "g", a, "h", 0), 0);
	ck_assert_int_eq(index_lookup(a, "h", &r), 0);
	ck_assert_uint_eq(r.id, g);
	ck_assert_int_eq(index_get(h, &r), -ENOENT);

	/* An exchange swaps the two names' inodes. */
	ck_assert_int_eq(index_rename(a, "h", a, "f2", 1), 0);
	ck_assert_int_eq(index_lookup(a, "h", &r), 0);
	ck_assert_uint_eq(r.id, f);
	ck_assert_int_eq(index_lookup(a, "f2", &r), 0);
	ck_assert_uint_eq(r.id, g);

	ck_assert_int_eq(index_unlink(a, "h"), 0);
	ck_assert_int_eq(index_lookup(a, "h", &r), -ENOENT);
	ck_assert_int_eq(index_get(f, &r), -ENOENT);
	index_close(1);
}
END_TEST

START_TEST(test_links)
{
	struct stat	 st;
	fuse_ino_t	 f, *parents;
	char		**names;
	size_t		 n;

	open_index(1);
	f = add(FUSE_ROOT_ID, "f", S_IFREG, 102, 7);
	mkst(&st, S_IFREG, 102, 7);
	st.st_nlink = 2;
	ck_assert_int_eq(index_link(FUSE_ROOT_ID, "g", f, &st), 0);
	ck_assert_uint_eq(index_nlink(f), 2);
	ck_assert_int_eq(index_names(f, &parents, &names, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "f");
	ck_assert_str_eq(names[1], "g");
	ck_assert_uint_eq(parents[1], FUSE_ROOT_ID);
	free(names[0]);
	free(names[1]);
	free(names);
	free(parents);
	/* The inode stays while a name is left. */
	ck_assert_int_eq(index_unlink(FUSE_ROOT_ID, "f"), 0);
	ck_assert_uint_eq(index_nlink(f), 1);
	assert_path(f, "/g");
	index_close(1);
}
END_TEST

START_TEST(test_journal)
{
	struct jrow	 w[2], *v;
	struct irow	 r;
	fuse_ino_t	 f, g, ids[1];
	size_t		 n;

	open_index(1);
	f = add(FUSE_ROOT_ID, "f", S_IFREG, 102, 42);
	g = add(FUSE_ROOT_ID, "g", S_IFREG, 103, 42);
	jrow(&w[0], f, FUSE_ROOT_ID, "f");
	jrow(&w[1], g, FUSE_ROOT_ID, "g");
	ck_assert_int_eq(index_journal_add_many(w, 2), 0);
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 2);
	if (v[0].id != f) {
		struct jrow	t = v[0];

		v[0] = v[1];
		v[1] = t;
	}
	ck_assert_int_eq(memcmp(&v[0], &w[0], sizeof w[0]), 0);
	ck_assert_int_eq(memcmp(&v[1], &w[1], sizeof w[1]), 0);
	free(v);

	/* The switch moves the inode and says so in its journal row. */
	ck_assert_int_eq(index_switch(f, 1, 2050, 9001), 0);
	ck_assert_int_eq(index_get(f, &r), 0);
	ck_assert_int_eq(r.tier, 1);
	ck_assert_uint_eq(r.dev, 2050);
	ck_assert_uint_eq(r.ino, 9001);
	ck_assert_int_gt(r.moved_at, 0);
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0].id == f ? v[0].state : v[1].state,
	    JOURNAL_SWITCHED);
	ck_assert_int_eq(v[0].id == g ? v[0].state : v[1].state,
	    JOURNAL_COPYING);
	free(v);

	ck_assert_int_eq(index_journal_del(f), 0);
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0].id, g);
	free(v);
	ids[0] = g;
	ck_assert_int_eq(index_journal_del_many(ids, 1), 0);
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
	index_close(1);
}
END_TEST

START_TEST(test_reopen)
{
	struct jrow	 j, *v;
	struct irow	 r;
	fuse_ino_t	 a, f, g;
	size_t		 n;

	open_index(1);
	a = add(FUSE_ROOT_ID, "a", S_IFDIR, 100, 0);
	f = add(a, "f", S_IFREG, 102, 42);
	ck_assert_int_eq(index_set_pin(f, 1), 0);
	jrow(&j, f, a, "f");
	ck_assert_int_eq(index_journal_add(&j), 0);
	index_close(1);

	/* Clean, but never scanned: still asks for a scan. */
	open_index(1);
	ck_assert_int_eq(index_lookup(FUSE_ROOT_ID, "a", &r), 0);
	ck_assert_uint_eq(r.id, a);
	ck_assert_int_eq(index_get(f, &r), 0);
	ck_assert_int_eq(r.size, 42);
	ck_assert_int_eq(r.pin, 1);
	ck_assert_int_eq(index_pin_count(), 1);
	assert_path(f, "/a/f");
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(memcmp(&v[0], &j, sizeof j), 0);
	free(v);
	/* Stopped uncleanly: ids go on past any the lost changes had. */
	index_close(0);

	open_index(1);
	assert_path(f, "/a/f");
	g = add(a, "g", S_IFREG, 103, 1);
	ck_assert_uint_gt(g, f + 1048575);
	index_close(1);
}
END_TEST

/*
 * The version before 1 is 0, which index_upgrade leaves to the schema:
 * it makes whatever is missing.  An index stamped 0 that holds rows (here
 * the meta, inode and dentry tables alone, stopped cleanly after a scan)
 * keeps them, gains the tables it lacks and is stamped current.
 */
START_TEST(test_upgrade)
{
	struct jrow	 j, *v;
	struct irow	 r;
	size_t		 n;

	exec_sql("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER);"
	    "CREATE TABLE inode (id INTEGER PRIMARY KEY AUTOINCREMENT, "
	    "type INTEGER NOT NULL, tier INTEGER NOT NULL, tiers INTEGER "
	    "NOT NULL DEFAULT 0, dev INTEGER, ino INTEGER, nlink INTEGER "
	    "DEFAULT 1, size INTEGER DEFAULT 0, mtime INTEGER DEFAULT 0, "
	    "ctime INTEGER DEFAULT 0, atime_seen INTEGER DEFAULT 0, accesses "
	    "INTEGER DEFAULT 0, pin INTEGER DEFAULT 0, gen INTEGER DEFAULT 0, "
	    "partial INTEGER DEFAULT 0, moved_at INTEGER DEFAULT 0, "
	    "window_start INTEGER DEFAULT 0);"
	    "CREATE TABLE dentry (parent INTEGER NOT NULL, name TEXT NOT "
	    "NULL, inode INTEGER NOT NULL, gen INTEGER DEFAULT 0, "
	    "PRIMARY KEY (parent, name)) WITHOUT ROWID;"
	    "INSERT INTO inode (id, type, tier, tiers) VALUES (1, 16384, 0, 3),"
	    "  (7, 16384, 0, 1);"
	    "INSERT INTO inode (id, type, tier, dev, ino, size, pin) VALUES "
	    "  (9, 32768, 1, 2050, 77, 4096, 1);"
	    "INSERT INTO dentry (parent, name, inode) VALUES (1, 'dir', 7),"
	    "  (7, 'file', 9);"
	    "INSERT INTO meta VALUES ('dirty', 0), ('scanned', 1),"
	    "  ('ntiers', 2);"
	    "PRAGMA user_version = 0");
	ck_assert_int_eq(user_version(), 0);

	/* Clean after a scan, on as many tiers: no scan needed. */
	open_index(0);
	ck_assert_int_eq(index_trust_previous(), 1);
	ck_assert_int_eq(index_resolve("dir/file", &r), 0);
	ck_assert_uint_eq(r.id, 9);
	ck_assert_int_eq(r.tier, 1);
	ck_assert_int_eq(r.size, 4096);
	ck_assert_int_eq(r.pin, 1);
	assert_path(9, "/dir/file");
	/* Counted once on the way up: the one file, on tier 1. */
	assert_usage(0, 0, 1, 4096);
	/* The journal table is new. */
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
	jrow(&j, 9, 7, "file");
	ck_assert_int_eq(index_journal_add(&j), 0);
	index_close(1);

	ck_assert_int_eq(user_version(), INDEX_VERSION);
	open_index(0);
	ck_assert_int_eq(index_resolve("dir/file", &r), 0);
	ck_assert_uint_eq(r.id, 9);
	ck_assert_int_eq(index_journal(&v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(memcmp(&v[0], &j, sizeof j), 0);
	free(v);
	index_close(1);
}
END_TEST

START_TEST(test_newer_version)
{
	char	*cause = NULL, sql[128];

	snprintf(sql, sizeof sql, "CREATE TABLE meta (key TEXT PRIMARY KEY, "
	    "value INTEGER); PRAGMA user_version = %d", INDEX_VERSION + 1);
	exec_sql(sql);
	ck_assert_int_eq(index_open(db, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, db));
	ck_assert_ptr_nonnull(strstr(cause, "newer"));
	free(cause);
	index_close(0);
	/* Refused, not rewritten. */
	ck_assert_int_eq(user_version(), INDEX_VERSION + 1);
}
END_TEST

/* Write len bytes of garbage, after head, as the index file. */
static void
garbage(const char *head, size_t hlen, size_t len)
{
	unsigned char	*buf;
	size_t		 i;
	int		 fd;

	ck_assert_ptr_nonnull(buf = malloc(len));
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	memcpy(buf, head, hlen);
	ck_assert_int_ge(fd = open(db, O_CREAT | O_WRONLY | O_TRUNC, 0600),
	    0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
}

static void
assert_refused(void)
{
	char	*cause = NULL;

	ck_assert_int_eq(index_open(db, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, db));
	free(cause);
	ck_assert_int_eq(index_is_open(), 0);
	index_close(0);
}

START_TEST(test_garbage)
{
	garbage("not a database", 14, 8192);
	assert_refused();
}
END_TEST

START_TEST(test_bad_header)
{
	/* sqlite's magic, then nothing it can read. */
	garbage("SQLite format 3", 16, 8192);
	assert_refused();
}
END_TEST

static Suite *
index_suite(void)
{
	Suite	*s = suite_create("index");
	TCase	*tc = tcase_create("index");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_fresh);
	tcase_add_test(tc, test_add_and_find);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_rename_and_remove);
	tcase_add_test(tc, test_links);
	tcase_add_test(tc, test_journal);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_upgrade);
	tcase_add_test(tc, test_newer_version);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_bad_header);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(index_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
