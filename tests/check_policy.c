/*
 * policy.c: the decision table.  Every reason a file stays, and every way
 * it is sent somewhere, from a configuration as an operator writes it.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

#define DAY	86400LL
#define NS	1000000000LL
#define NOW	(1000 * DAY * NS)

static const char *base_conf =
    "tier fast { path = /tiers/fast }\n"
    "tier mid { path = /tiers/mid }\n"
    "tier slow { path = /tiers/slow }\n";

static struct dfs_config *
load(const char *body)
{
	struct dfs_config	*conf;
	char			 path[] = "/tmp/check_policy.XXXXXX", *cause;
	FILE			*fp;
	int			 fd;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "%s%s", base_conf, body);
	ck_assert_int_eq(fclose(fp), 0);
	if (config_load(path, &conf, &cause) != 0)
		ck_abort_msg("refused: %s", cause);
	unlink(path);
	return (conf);
}

struct file {
	struct policy_file	f;
	struct stat		st;
	struct irow		row;
	int			pinned;
	int			asked;		/* times the pin walk ran */
};

static int
pinned(void *arg, fuse_ino_t id)
{
	struct file	*fl = arg;

	ck_assert_uint_eq(id, fl->f.id);
	fl->asked++;
	return (fl->pinned);
}

/* A regular file of size bytes on tier t, last changed age_days ago. */
static void
file(struct file *fl, const char *path, int t, off_t size, int age_days)
{
	memset(fl, 0, sizeof *fl);
	fl->st.st_mode = S_IFREG | 0644;
	fl->st.st_size = size;
	fl->st.st_nlink = 1;
	fl->st.st_uid = 1000;
	fl->st.st_mtim.tv_sec = (NOW - age_days * DAY * NS) / NS;
	fl->st.st_ctim = fl->st.st_mtim;
	fl->st.st_atim = fl->st.st_mtim;
	fl->row.id = 42;
	fl->row.tier = t;
	fl->f.id = 42;
	fl->f.path = path;
	fl->f.st = &fl->st;
	fl->f.row = &fl->row;
	fl->f.tier = t;
	fl->f.nlink = 1;
	fl->f.now = NOW;
	fl->f.force_to = -1;
	fl->f.pinned = pinned;
	fl->f.arg = fl;
}

static void
moves(struct dfs_config *c, struct file *fl, int to, const char *name)
{
	struct policy_decision	d;

	ck_assert_msg(policy_decide(c, &fl->f, &d) == 1, "%s stays: %s",
	    fl->f.path, d.why);
	ck_assert_int_eq(d.to, to);
	ck_assert_int_eq(d.skip, -1);
	ck_assert_str_eq(d.name, name);
}

/* Stays: skip is the MIG_SKIP_* reason, or -1 for "nothing sends it". */
static void
stays(struct dfs_config *c, struct file *fl, int skip, const char *why)
{
	struct policy_decision	d;

	ck_assert_msg(policy_decide(c, &fl->f, &d) == 0, "%s moves to %d",
	    fl->f.path, d.to);
	ck_assert_int_eq(d.skip, skip);
	if (why != NULL)
		ck_assert_msg(strstr(d.why, why) != NULL, "why \"%s\", want "
		    "\"%s\"", d.why, why);
}

START_TEST(test_no_policies)
{
	struct dfs_config	*c = load("");
	struct file		 fl;

	file(&fl, "/a", 0, 10, 400);
	stays(c, &fl, -1, "no policies");
	ck_assert_int_eq(fl.asked, 0);
	config_free(c);
}
END_TEST

START_TEST(test_conditions)
{
	struct dfs_config	*c = load(
	    "policy old { from = fast to = mid age = 30d min_size = 100\n"
	    "    max_size = 1M owner = 1000 paths = { \"*.doc\", \"/arch\" } }\n");
	struct file		 fl;

	file(&fl, "/x/report.doc", 0, 500, 31);
	moves(c, &fl, 1, "old");
	file(&fl, "/arch/2020/deep/data.bin", 0, 500, 31);
	moves(c, &fl, 1, "old");	/* a pattern with / covers below it */
	file(&fl, "/x/report.doc", 0, 500, 29);
	stays(c, &fl, -1, "age 29d, below 30d");
	file(&fl, "/x/report.doc", 0, 50, 31);
	stays(c, &fl, -1, "size 50 below 100");
	file(&fl, "/x/report.doc", 0, 2 << 20, 31);
	stays(c, &fl, -1, "above");
	file(&fl, "/x/report.pdf", 0, 500, 31);
	stays(c, &fl, -1, "patterns");
	file(&fl, "/archive/report.pdf", 0, 500, 31);
	stays(c, &fl, -1, "patterns");	/* /arch is not /archive */
	file(&fl, "/x/report.doc", 0, 500, 31);
	fl.st.st_uid = 0;
	stays(c, &fl, -1, "owner 0, not 1000");
	file(&fl, "/x/report.doc", 2, 500, 31);
	stays(c, &fl, -1, "on tier slow, not fast");
	file(&fl, "/x/report.doc", 1, 500, 31);
	stays(c, &fl, -1, "on tier mid, not fast");
	ck_assert_int_eq(fl.asked, 0);	/* no pin walk for who stays */
	config_free(c);
	c = load("policy all { to = mid }\n");
	file(&fl, "/x/report.doc", 1, 500, 31);
	stays(c, &fl, -1, "already on tier mid");
	config_free(c);
}
END_TEST

START_TEST(test_first_match_decides)
{
	struct dfs_config	*c = load(
	    "policy keep { action = exclude paths = { \"*.db\" } }\n"
	    "policy iso { to = slow paths = { \"*.iso\" } }\n"
	    "policy rest { from = fast to = mid }\n");
	struct file		 fl;

	file(&fl, "/vm/disk.db", 0, 10, 400);
	stays(c, &fl, MIG_SKIP_EXCLUDED, NULL);
	file(&fl, "/img/a.iso", 0, 10, 0);
	moves(c, &fl, 2, "iso");
	file(&fl, "/img/a.iso", 1, 10, 0);
	moves(c, &fl, 2, "iso");	/* from any tier */
	file(&fl, "/img/a.txt", 0, 10, 0);
	moves(c, &fl, 1, "rest");
	config_free(c);
}
END_TEST

START_TEST(test_age_by)
{
	struct dfs_config	*c = load(
	    "policy a { from = fast to = mid age = 10d age_by = access }\n");
	struct file		 fl;

	file(&fl, "/f", 0, 1, 30);
	moves(c, &fl, 1, "a");		/* never read through dfs */
	fl.row.atime_seen = NOW - 2 * DAY * NS;
	stays(c, &fl, -1, "age 2d, below 10d");
	config_free(c);
	c = load("policy c { from = mid to = slow age = 10d age_by = ctime }\n");
	file(&fl, "/f", 1, 1, 30);
	fl.st.st_ctim.tv_sec = (NOW - DAY * NS) / NS;
	stays(c, &fl, -1, "age 1d");
	config_free(c);
}
END_TEST

START_TEST(test_residency)
{
	struct dfs_config	*c = load(
	    "policy old { from = fast to = mid }\n"
	    "migration { min_residency = 2d }\n");
	struct file		 fl;

	file(&fl, "/f", 0, 1, 30);
	fl.row.moved_at = NOW - DAY * NS;
	stays(c, &fl, MIG_SKIP_RESIDENCY, NULL);
	fl.row.moved_at = NOW - 3 * DAY * NS;
	moves(c, &fl, 1, "old");
	fl.row.moved_at = 0;		/* never moved: made here */
	moves(c, &fl, 1, "old");
	config_free(c);
}
END_TEST

START_TEST(test_hardlinks)
{
	struct dfs_config	*c = load("policy old { from = fast to = mid }\n");
	struct file		 fl;

	/* The default moves a link group as one. */
	file(&fl, "/f", 0, 1, 30);
	fl.f.nlink = 3;
	moves(c, &fl, 1, "old");
	config_free(c);
	c = load("policy old { from = fast to = mid }\n"
	    "migration { hardlinks = skip }\n");
	stays(c, &fl, MIG_SKIP_LINKS, NULL);
	fl.f.nlink = 1;
	moves(c, &fl, 1, "old");
	config_free(c);
}
END_TEST

START_TEST(test_pinned)
{
	struct dfs_config	*c = load("policy old { from = fast to = mid }\n");
	struct file		 fl;

	file(&fl, "/f", 0, 1, 30);
	fl.pinned = 1;
	stays(c, &fl, MIG_SKIP_PINNED, NULL);
	ck_assert_int_eq(fl.asked, 1);
	fl.pinned = 0;
	moves(c, &fl, 1, "old");
	fl.f.pinned = NULL;		/* no walk given: not pinned */
	moves(c, &fl, 1, "old");
	config_free(c);
}
END_TEST

START_TEST(test_watermark_and_promotion)
{
	struct dfs_config	*c = load(
	    "policy keep { action = exclude paths = { \"/keep\" } }\n"
	    "policy iso { from = fast to = slow paths = { \"*.iso\" } }\n"
	    "policy old { from = fast to = mid age = 30d }\n");
	struct file		 fl;

	/* A watermark run takes young files too, to where a policy says. */
	file(&fl, "/young", 0, 1, 0);
	stays(c, &fl, -1, "no policy matches");
	fl.f.force_to = 1;
	moves(c, &fl, 1, "");
	file(&fl, "/a.iso", 0, 1, 0);
	fl.f.force_to = 1;
	moves(c, &fl, 2, "iso");
	file(&fl, "/keep/x", 0, 1, 400);
	fl.f.force_to = 1;
	stays(c, &fl, MIG_SKIP_EXCLUDED, NULL);

	/* Read often: back to the first tier, whatever would move it. */
	file(&fl, "/old", 1, 1, 400);
	fl.f.force_to = 0;
	fl.f.promote = 1;
	moves(c, &fl, 0, "promotion");
	file(&fl, "/keep/x", 1, 1, 400);
	fl.f.force_to = 0;
	fl.f.promote = 1;
	stays(c, &fl, MIG_SKIP_EXCLUDED, NULL);
	file(&fl, "/old", 1, 1, 400);
	fl.f.force_to = 0;
	fl.f.promote = 1;
	fl.pinned = 1;
	stays(c, &fl, MIG_SKIP_PINNED, NULL);
	config_free(c);
}
END_TEST

static Suite *
policy_suite(void)
{
	Suite	*s = suite_create("policy");
	TCase	*tc = tcase_create("decide");

	tcase_add_test(tc, test_no_policies);
	tcase_add_test(tc, test_conditions);
	tcase_add_test(tc, test_first_match_decides);
	tcase_add_test(tc, test_age_by);
	tcase_add_test(tc, test_residency);
	tcase_add_test(tc, test_hardlinks);
	tcase_add_test(tc, test_pinned);
	tcase_add_test(tc, test_watermark_and_promotion);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(policy_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
