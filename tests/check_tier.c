/*
 * Unit tests of the tier layer: start-up checks and listings.
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

#include "dfs.h"

static char	tmp[] = "/tmp/check_tier.XXXXXX";

static char *
path(const char *rel)
{
	static char	buf[4][PATH_MAX];
	static int	i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmp, rel);
	return (buf[i]);
}

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(strcpy(tmp, "/tmp/check_tier.XXXXXX")));
	ck_assert_int_eq(mkdir(path("a"), 0755), 0);
	ck_assert_int_eq(mkdir(path("b"), 0755), 0);
	ck_assert_int_eq(mkdir(path("a/in"), 0755), 0);
	ck_assert_int_eq(mkdir(path("mnt"), 0755), 0);
	ck_assert_int_eq(close(open(path("file"), O_CREAT | O_WRONLY, 0644)),
	    0);
}

static void
teardown(void)
{
	char	cmd[PATH_MAX + 16];

	tier_close_all();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_add_missing)
{
	char	*cause = NULL;

	ck_assert_int_eq(tier_add(NULL, path("nope"), &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "No such file"));
	free(cause);
}
END_TEST

START_TEST(test_add_file)
{
	char	*cause = NULL;

	ck_assert_int_eq(tier_add(NULL, path("file"), &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "not a directory"));
	free(cause);
}
END_TEST

START_TEST(test_add_twice)
{
	char	*cause = NULL, other[PATH_MAX];

	ck_assert_int_eq(tier_add(NULL, path("a"), &cause), 0);
	/* The same directory by another spelling is still the same tier. */
	snprintf(other, sizeof other, "%s/a/../a", tmp);
	ck_assert_int_eq(tier_add(NULL, other, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "same directory"));
	free(cause);
}
END_TEST

START_TEST(test_layout)
{
	char	*cause = NULL;

	ck_assert_int_eq(tier_add(NULL, path("a"), &cause), 0);
	ck_assert_int_eq(tier_check_layout(path("mnt"), &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "at least two tiers"));
	free(cause);
	cause = NULL;
	ck_assert_int_eq(tier_add(NULL, path("b"), &cause), 0);
	ck_assert_int_eq(tier_check_layout(path("mnt"), &cause), 0);
	ck_assert_int_eq(tier_check_layout(path("a/in"), &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "mount point"));
	ck_assert_ptr_nonnull(strstr(cause, "inside tier"));
	free(cause);
	cause = NULL;
	ck_assert_int_eq(tier_check_layout(tmp, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "inside mount point"));
	free(cause);
	cause = NULL;
	ck_assert_int_eq(tier_add(NULL, path("a/in"), &cause), 0);
	ck_assert_int_eq(tier_check_layout(path("mnt"), &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "is inside tier"));
	free(cause);
}
END_TEST

START_TEST(test_list_hides_private)
{
	struct dirlist	 l = { NULL, 0, 0 };
	char		*cause = NULL;

	ck_assert_int_eq(tier_add(NULL, path("a"), &cause), 0);
	ck_assert_int_eq(close(open(path("a/" DFS_TMP_PREFIX "x"),
	    O_CREAT | O_WRONLY, 0644)), 0);
	ck_assert_int_eq(tier_list(0, dfs.tiers[0].fd, &l), 0);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.ents[0].name, "in");
	dirlist_free(&l);
	ck_assert_int_eq(tier_dir_empty(0, dfs.tiers[0].fd), -ENOTEMPTY);
}
END_TEST

START_TEST(test_name_ok)
{
	char	name[NAME_MAX + 2];

	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	ck_assert_int_eq(resolve_name_ok(name), -ENAMETOOLONG);
	name[NAME_MAX] = '\0';
	ck_assert_int_eq(resolve_name_ok(name), 0);
	ck_assert_int_eq(resolve_name_ok(DFS_TMP_PREFIX "1"), -ENOENT);
}
END_TEST

/* A local file system has everything but perhaps user xattrs. */
START_TEST(test_probe_local)
{
	struct dirlist	 l = { NULL, 0, 0 };
	char		*cause = NULL, cmd[PATH_MAX + 32];
	unsigned	 want = TIER_CAP_NOREPLACE | TIER_CAP_EXCHANGE |
			    TIER_CAP_LINK | TIER_CAP_NLINK |
			    TIER_CAP_STABLE_INO | TIER_CAP_NSEC;
	struct stat	 before, after;
	struct timespec	 old[2] = { { 1000000, 5 }, { 1000000, 7 } };

	unsetenv("DFS_NO_PROBE");
	ck_assert_int_eq(tier_add(NULL, path("b"), &cause), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, path("b"), old, 0), 0);
	ck_assert_int_eq(stat(path("b"), &before), 0);
	tier_probe(0, DFS_INODES_AUTO);
	ck_assert_uint_eq(dfs.tiers[0].caps & want, want);
	/* The root's times are as they were. */
	ck_assert_int_eq(stat(path("b"), &after), 0);
	ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	ck_assert_int_eq(dfs.tiers[0].inodes_set, 0);
	ck_assert_str_ne(dfs.tiers[0].fstype, "?");
	/* Nothing of the probe is left, not even hidden. */
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", path("b"));
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(tier_list(0, dfs.tiers[0].fd, &l), 0);
	ck_assert_uint_eq(l.n, 0);
	tier_probe(0, DFS_INODES_UNSTABLE);
	ck_assert(!tier_has(0, TIER_CAP_STABLE_INO));
	ck_assert_int_eq(dfs.tiers[0].inodes_set, 1);
	ck_assert(tier_has(0, TIER_CAP_NOREPLACE));
}
END_TEST

/* Without rename flags: NOREPLACE still refuses to replace, EXCHANGE fails. */
START_TEST(test_rename_without_flags)
{
	char	*cause = NULL;
	int	 fd;

	ck_assert_int_eq(tier_add(NULL, path("b"), &cause), 0);
	dfs.tiers[0].caps = TIER_CAP_LINK | TIER_CAP_NLINK;
	fd = dfs.tiers[0].fd;
	ck_assert_int_eq(close(open(path("b/x"), O_CREAT | O_WRONLY, 0644)),
	    0);
	ck_assert_int_eq(close(open(path("b/y"), O_CREAT | O_WRONLY, 0644)),
	    0);
	ck_assert_int_eq(tier_renameat2(0, fd, "x", fd, "y",
	    RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(access(path("b/x"), F_OK), 0);
	ck_assert_int_eq(tier_renameat2(0, fd, "x", fd, "y",
	    RENAME_EXCHANGE), -EINVAL);
	ck_assert_int_eq(tier_renameat2(0, fd, "x", fd, "z",
	    RENAME_NOREPLACE), 0);
	ck_assert_int_eq(access(path("b/z"), F_OK), 0);
	ck_assert_int_eq(access(path("b/x"), F_OK), -1);
	ck_assert_uint_eq(dfs.tiers[0].stats.errors, 0);
}
END_TEST

/* Identity and times as precisely as the tier keeps them. */
START_TEST(test_same_file)
{
	struct stat	 st;
	char		*cause = NULL;

	ck_assert_int_eq(tier_add(NULL, path("b"), &cause), 0);
	memset(&st, 0, sizeof st);
	st.st_dev = 5;
	st.st_ino = 7;
	st.st_mtim.tv_sec = 10;
	st.st_mtim.tv_nsec = 0;
	dfs.tiers[0].caps = TIER_CAP_ALL;
	ck_assert(tier_same_file(0, &st, 5, 7));
	ck_assert(!tier_same_file(0, &st, 5, 8));
	ck_assert(!tier_same_file(0, &st, 6, 7));
	ck_assert(!tier_same_mtime(0, &st, 10123456789LL));
	dfs.tiers[0].caps = TIER_CAP_ALL & ~(TIER_CAP_STABLE_INO |
	    TIER_CAP_NSEC);
	ck_assert(tier_same_file(0, &st, 6, 8));
	ck_assert(tier_same_mtime(0, &st, 10123456789LL));
	ck_assert(!tier_same_mtime(0, &st, 11000000000LL));
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("tier");
	TCase	*tc = tcase_create("tier");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_add_missing);
	tcase_add_test(tc, test_add_file);
	tcase_add_test(tc, test_add_twice);
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_list_hides_private);
	tcase_add_test(tc, test_name_ok);
	tcase_add_test(tc, test_probe_local);
	tcase_add_test(tc, test_rename_without_flags);
	tcase_add_test(tc, test_same_file);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? 0 : 1);
}
