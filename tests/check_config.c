/*
 * config.c: good files load with the values they say, bad ones are refused
 * with a message naming the file, the exact line, the directive and what
 * is allowed.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "dfs.h"

#ifndef TEST_CONF_DIR
#error "TEST_CONF_DIR must name the tests/conf directory"
#endif

#define CONF(name)	TEST_CONF_DIR "/" name

static struct dfs_config *
load_ok(const char *path)
{
	struct dfs_config	*conf;
	char			*cause;

	if (config_load(path, &conf, &cause) != 0)
		ck_abort_msg("%s: refused: %s", path, cause);
	ck_assert_ptr_nonnull(conf);
	return (conf);
}

static char *
load_bad(const char *path)
{
	struct dfs_config	*conf;
	char			*cause;

	ck_assert_int_eq(config_load(path, &conf, &cause), -1);
	ck_assert_ptr_null(conf);
	ck_assert_ptr_nonnull(cause);
	ck_assert_msg(strchr(cause, '\n') == NULL, "two lines: %s", cause);
	return (cause);
}

START_TEST(test_example)
{
	struct dfs_config	*conf;

	/* The annotated example shipped in etc/ must pass. */
	conf = load_ok(TEST_CONF_DIR "/../../etc/dfs.conf");
	ck_assert_int_eq(conf->ntiers, 2);
	ck_assert_uint_ge(conf->npolicies, 1);
	config_free(conf);
}
END_TEST

START_TEST(test_minimal)
{
	struct dfs_config		*conf;
	struct dfs_config_migration	*m;
	char				 sock[PATH_MAX];

	conf = load_ok(CONF("good-minimal.conf"));
	ck_assert_str_eq(conf->file, CONF("good-minimal.conf"));
	ck_assert_ptr_null(conf->mountpoint);
	ck_assert_int_eq(conf->ntiers, 2);
	ck_assert_str_eq(conf->tiers[0].name, "fast");
	ck_assert_str_eq(conf->tiers[0].path, "/srv/fast");
	ck_assert_int_eq(conf->tiers[0].high_watermark, 0);
	ck_assert_int_eq(conf->tiers[0].low_watermark, 0);
	ck_assert_int_eq(conf->tiers[0].stable_inodes, DFS_INODES_AUTO);
	ck_assert_int_eq(conf->tiers[0].min_free, 0);
	ck_assert_int_eq(conf->tiers[0].min_free_ppm, DFS_MIN_FREE_PPM);
	ck_assert_int_eq(conf->tiers[1].min_free_ppm, DFS_MIN_FREE_PPM);
	ck_assert_str_eq(conf->tiers[1].name, "slow");
	ck_assert_str_eq(conf->tiers[1].path, "/srv/slow");
#ifdef DFS_STATEDIR
	ck_assert_str_eq(conf->state_dir, DFS_STATEDIR);
#endif
	snprintf(sock, sizeof sock, "%s/dfs.sock", conf->state_dir);
	ck_assert_str_eq(conf->socket, sock);
	ck_assert_int_eq(conf->log_level, LOG_INFO);
	ck_assert_int_eq(conf->allow_other, 0);
	ck_assert_uint_eq(conf->nfuse_options, 0);
	ck_assert_ptr_null(conf->fuse_options);
	ck_assert_double_eq(conf->attr_timeout, 60.0);
	ck_assert_double_eq(conf->entry_timeout, 60.0);
	ck_assert_uint_eq(conf->npolicies, 0);

	m = &conf->migration;
	ck_assert_int_eq(m->interval, 3600);
	ck_assert_int_eq(m->max_files, 0);
	ck_assert_int_eq(m->max_bytes, 0);
	ck_assert_int_eq(m->bandwidth, 0);
	ck_assert_int_eq(m->verify, 0);
	ck_assert_int_eq(m->hardlinks, DFS_HARDLINKS_MOVE);
	ck_assert_int_eq(m->promote_after_reads, 0);
	ck_assert_int_eq(m->promote_window, 86400);
	ck_assert_int_eq(m->min_residency, 86400);

	ck_assert_int_eq(config_tier(conf, "fast"), 0);
	ck_assert_int_eq(config_tier(conf, "slow"), 1);
	ck_assert_int_eq(config_tier(conf, "nope"), -1);
	config_free(conf);
}
END_TEST

START_TEST(test_common)
{
	struct dfs_config		*conf;
	struct dfs_config_policy	*p;

	/* "Move files not modified for 90 days from fast to archive." */
	conf = load_ok(CONF("good-common.conf"));
	ck_assert_str_eq(conf->mountpoint, "/srv/data");
	ck_assert_uint_eq(conf->npolicies, 1);
	p = &conf->policies[0];
	ck_assert_str_eq(p->name, "cold");
	ck_assert_int_eq(p->action, DFS_POLICY_MIGRATE);
	ck_assert_int_eq(p->from, 0);
	ck_assert_int_eq(p->to, 1);
	ck_assert_int_eq(p->age, 90 * 86400);
	ck_assert_int_eq(p->age_by, DFS_AGE_MTIME);
	ck_assert_uint_eq(p->npaths, 0);
	ck_assert_int_eq(p->min_size, 0);
	ck_assert_int_eq(p->max_size, -1);
	ck_assert_int_eq(p->has_owner, 0);
	config_free(conf);
}
END_TEST

START_TEST(test_full)
{
	struct dfs_config		*conf;
	struct dfs_config_policy	*p;
	struct dfs_config_migration	*m;

	conf = load_ok(CONF("good-full.conf"));
	ck_assert_str_eq(conf->mountpoint, "/mnt/dfs");
	ck_assert_str_eq(conf->state_dir, "/var/lib/dfs-test");
	ck_assert_str_eq(conf->socket, "/run/dfs-test.sock");
	ck_assert_int_eq(conf->log_level, LOG_DEBUG);
	ck_assert_int_eq(conf->allow_other, 1);
	ck_assert_uint_eq(conf->nfuse_options, 3);
	ck_assert_str_eq(conf->fuse_options[0], "default_permissions");
	ck_assert_str_eq(conf->fuse_options[1], "max_read=131072");
	ck_assert_str_eq(conf->fuse_options[2], "noatime");
	ck_assert_double_eq(conf->attr_timeout, 0.5);
	ck_assert_double_eq(conf->entry_timeout, 30.0);

	ck_assert_int_eq(conf->ntiers, 3);
	ck_assert_str_eq(conf->tiers[0].name, "nvme");
	ck_assert_int_eq(conf->tiers[0].high_watermark, 85);
	ck_assert_int_eq(conf->tiers[0].low_watermark, 70);
	ck_assert_int_eq(conf->tiers[0].min_free, 64 << 20);
	ck_assert_int_eq(conf->tiers[0].min_free_ppm, 0);
	ck_assert_str_eq(conf->tiers[1].name, "ssd");
	ck_assert_int_eq(conf->tiers[1].min_free, 0);
	ck_assert_int_eq(conf->tiers[1].min_free_ppm, 5000);
	ck_assert_int_eq(conf->tiers[1].high_watermark, 95);
	ck_assert_int_eq(conf->tiers[1].low_watermark, 85);
	ck_assert_int_eq(conf->tiers[1].stable_inodes, DFS_INODES_STABLE);
	ck_assert_str_eq(conf->tiers[2].name, "disk");
	ck_assert_int_eq(conf->tiers[2].high_watermark, 0);
	ck_assert_int_eq(conf->tiers[2].stable_inodes, DFS_INODES_UNSTABLE);
	ck_assert_double_eq(conf->tiers[1].timeout, DFS_TIER_TIMEOUT);
	ck_assert_double_eq(conf->tiers[2].timeout, 7.5);
	ck_assert_int_eq(conf->tiers[2].min_free, 0);
	ck_assert_int_eq(conf->tiers[2].min_free_ppm, 0);

	ck_assert_uint_eq(conf->npolicies, 3);
	p = &conf->policies[0];
	ck_assert_str_eq(p->name, "keep-db");
	ck_assert_int_eq(p->action, DFS_POLICY_EXCLUDE);
	ck_assert_int_eq(p->from, -1);
	ck_assert_int_eq(p->to, -1);
	ck_assert_uint_eq(p->npaths, 2);
	ck_assert_str_eq(p->paths[0], "*.db");
	ck_assert_str_eq(p->paths[1], "/vm/*");

	p = &conf->policies[1];
	ck_assert_str_eq(p->name, "big");
	ck_assert_int_eq(p->action, DFS_POLICY_MIGRATE);
	ck_assert_int_eq(p->from, 0);
	ck_assert_int_eq(p->to, 2);
	ck_assert_uint_eq(p->npaths, 1);
	ck_assert_str_eq(p->paths[0], "*.iso");
	ck_assert_int_eq(p->min_size, 1LL << 30);
	ck_assert_int_eq(p->max_size, 2LL << 40);
	ck_assert_int_eq(p->has_owner, 1);
	ck_assert_uint_eq(p->owner, 0);
	ck_assert_int_eq(p->age, 14 * 86400);
	ck_assert_int_eq(p->age_by, DFS_AGE_ACCESS);

	p = &conf->policies[2];
	ck_assert_str_eq(p->name, "old-ssd");
	ck_assert_int_eq(p->from, 1);
	ck_assert_int_eq(p->to, 2);
	ck_assert_uint_eq(p->owner, 4242);
	ck_assert_int_eq(p->age, 36 * 3600);
	ck_assert_int_eq(p->age_by, DFS_AGE_CTIME);

	m = &conf->migration;
	ck_assert_int_eq(m->interval, 15 * 60);
	ck_assert_int_eq(m->max_files, 1000);
	ck_assert_int_eq(m->max_bytes, 10LL << 30);
	ck_assert_int_eq(m->bandwidth, 50LL << 20);
	ck_assert_int_eq(m->verify, 1);
	ck_assert_int_eq(m->hardlinks, DFS_HARDLINKS_SKIP);
	ck_assert_int_eq(m->promote_after_reads, 3);
	ck_assert_int_eq(m->promote_window, 12 * 3600);
	ck_assert_int_eq(m->min_residency, 2 * 86400);
	config_free(conf);
}
END_TEST

START_TEST(test_comments)
{
	struct dfs_config	*conf;

	conf = load_ok(CONF("good-comments.conf"));
	ck_assert_str_eq(conf->tiers[0].path, "/srv/a/b");
	ck_assert_str_eq(conf->tiers[1].path, "/srv/with # hash");
	ck_assert_uint_eq(conf->npolicies, 1);
	ck_assert_uint_eq(conf->policies[0].npaths, 2);
	ck_assert_str_eq(conf->policies[0].paths[0], "*.iso");
	ck_assert_str_eq(conf->policies[0].paths[1], "/x/*.img");
	config_free(conf);
}
END_TEST

/*
 * Each bad fixture: the "file:line:" the message must start with (no line
 * when the file as a whole is at fault) and a piece of what it says.
 */
static const struct bad {
	const char	*file;
	const char	*where;
	const char	*says;
} bad[] = {
	{ "bad-unknown-key.conf", ":10: ", "tier \"archive\": unknown "
	    "directive \"hgh_watermark\"; allowed here: path, high_watermark, "
	    "low_watermark, min_free, stable_inodes" },
	{ "bad-min-free.conf", ":7: ", "tier \"slow\": min_free \"120%\": "
	    "must be a size (a number of bytes with an optional K, M, G, T "
	    "or P, e.g. 64M) or a percentage of the tier from 0% to 50%" },
	{ "bad-stable-inodes.conf", ":7: ", "tier \"slow\": stable_inodes "
	    "\"maybe\": must be one of: auto, yes, no" },
	{ "bad-misplaced-key.conf", ":9: ", "unknown directive \"interval\" "
	    "(\"interval\" belongs in a migration section)" },
	{ "bad-watermark.conf", ":7: ", "tier \"archive\": high_watermark "
	    "\"120\": must be a percentage 1-100" },
	{ "bad-watermark-order.conf", ":5: ", "tier \"fast\": low_watermark "
	    "\"90\": must not be above high_watermark (80, line 4)" },
	{ "bad-watermark-low-only.conf", ":5: ", "low_watermark \"50\": needs "
	    "a high_watermark" },
	{ "bad-watermark-last.conf", ":10: ", "tier \"archive\": "
	    "high_watermark \"90\": the last tier has no tier below it" },
	{ "bad-no-tiers.conf", ": ", "no tiers; dfs needs at least 2" },
	{ "bad-one-tier.conf", ":5: ", "tier \"only\": the only tier; dfs "
	    "needs at least 2" },
	{ "bad-too-many-tiers.conf", ":18: ", "tier \"t17\": too many tiers; "
	    "at most 16" },
	{ "bad-dup-tier-name.conf", ":5: ", "tier \"fast\": defined twice" },
	{ "bad-dup-tier-path.conf", ":6: ", "tier \"slow\": path "
	    "\"/srv//fast/\": same as tier \"fast\" (\"/srv/fast\", line 3)" },
	{ "bad-nested-tier.conf", ":6: ", "tier \"slow\": path "
	    "\"/srv/fast/slow\": inside tier \"fast\"" },
	{ "bad-mountpoint-in-tier.conf", ":4: ", "tier \"fast\": path "
	    "\"/srv/fast\": contains the mount point \"/srv/fast/mnt\"" },
	{ "bad-relative-path.conf", ":3: ", "tier \"fast\": path \"srv/fast\": "
	    "must be an absolute path" },
	{ "bad-dotdot-path.conf", ":2: ", "state_dir \"/var/lib/../lib/dfs\": "
	    "must be an absolute path without . or .. components" },
	{ "bad-tier-name.conf", ":4: ", "tier \"fast one\": bad name" },
	{ "bad-no-path.conf", ":7: ", "tier \"slow\": no path" },
	{ "bad-unknown-tier.conf", ":11: ", "policy \"cold\": to \"archive\": "
	    "no such tier; tiers are: fast, slow" },
	{ "bad-from-equals-to.conf", ":11: ", "policy \"cold\": to \"slow\": "
	    "same tier as from" },
	{ "bad-migrate-no-to.conf", ":12: ", "policy \"cold\": no target "
	    "tier" },
	{ "bad-semicolon.conf", ":10: ", "policy \"cold\": from \"fast;\": "
	    "must be the name of a tier (drop the \";\"" },
	{ "bad-size.conf", ":11: ", "policy \"big\": min_size \"10X\": must be "
	    "a size" },
	{ "bad-min-max.conf", ":12: ", "policy \"mid\": max_size \"10M\": must "
	    "not be below min_size (\"1G\", line 11)" },
	{ "bad-duration.conf", ":11: ", "policy \"cold\": age \"90\": must be "
	    "a duration: a number followed by s, m, h, d or w" },
	{ "bad-duration-unit.conf", ":11: ", "migration: min_residency "
	    "\"2y\": must be a duration" },
	{ "bad-bandwidth.conf", ":9: ", "migration: bandwidth \"50MB/s\": "
	    "must be a size" },
	{ "bad-age-by.conf", ":11: ", "policy \"cold\": age_by \"birth\": must "
	    "be one of: mtime, ctime, atime, access" },
	{ "bad-age-by-without-age.conf", ":10: ", "policy \"cold\": age_by: "
	    "has no effect without age" },
	{ "bad-action.conf", ":9: ", "policy \"cold\": action \"delete\": must "
	    "be one of: migrate, exclude" },
	{ "bad-owner.conf", ":10: ", "policy \"theirs\": owner "
	    "\"no-such-user-dfs-test\": must be a known user name or a "
	    "numeric uid" },
	{ "bad-glob.conf", ":11: ", "policy \"scratch\": paths "
	    "\"home/*/scratch/*\": a pattern with a / " },
	{ "bad-log-level.conf", ":2: ", "log_level \"verbose\": must be one "
	    "of: error, warn, info, debug" },
	{ "bad-bool.conf", ":8: ", "allow_other \"maybe\": must be yes or no" },
	{ "bad-timeout.conf", ":3: ", "entry_timeout \"-1\": must be a number "
	    "of seconds from 0 to 86400" },
	{ "bad-fuse-option.conf", ":2: ", "options "
	    "\"default_permissions,noatime\": must be one FUSE mount option "
	    "per list item" },
	{ "bad-socket.conf", ":2: ", "too long for a socket path (at most 107 "
	    "bytes)" },
	{ "bad-statedir-long.conf", ":9: ", "too long for the control "
	    "socket" },
	{ "bad-statedir-on-tier.conf", ":8: ", "state_dir \"/srv/slow/.dfs\": "
	    "inside tier \"slow\" (\"/srv/slow\")" },
	{ "bad-socket-in-mount.conf", ":3: ", "socket \"/srv/data/.dfs.sock\": "
	    "inside the mount point \"/srv/data\"" },
	{ "bad-twice.conf", ":10: ", "tier \"archive\": path: given twice "
	    "(first on line 9)" },
	{ "bad-migration-twice.conf", ":13: ", "migration: given twice (first "
	    "ends on line 10)" },
	{ "bad-count.conf", ":9: ", "migration: max_files \"-5\": must be a "
	    "whole number" },
	{ "bad-promote-window.conf", ":10: ", "migration: promote_window "
	    "\"0\": must be longer than 0" },
	{ "bad-syntax.conf", ":8: ", "missing equal sign after option "
	    "'log_level'" },
	{ "bad-unterminated.conf", ":9: ", "premature end of file" },
	{ "bad-brace.conf", ":8: ", "unexpected closing brace" },
	{ "bad-missing-brace.conf", ":5: ", "tier \"fast\": unknown directive "
	    "\"tier\" (a \"}\" missing before it?)" },
	{ "bad-after-comments.conf", ":8: ", "tier \"slow\": high_watermark "
	    "\"200\": must be a percentage 1-100" },
};

START_TEST(test_bad)
{
	const struct bad	*b = &bad[_i];
	char			 path[PATH_MAX], prefix[PATH_MAX + 16];
	char			*cause;

	snprintf(path, sizeof path, "%s/%s", TEST_CONF_DIR, b->file);
	snprintf(prefix, sizeof prefix, "%s%s", path, b->where);
	cause = load_bad(path);
	ck_assert_msg(strncmp(cause, prefix, strlen(prefix)) == 0,
	    "%s: want \"%s\" at the start of: %s", b->file, prefix, cause);
	ck_assert_msg(strstr(cause, b->says) != NULL,
	    "%s: want \"%s\" in: %s", b->file, b->says, cause);
	free(cause);
}
END_TEST

START_TEST(test_not_a_file)
{
	char	*cause;

	cause = load_bad(CONF("no-such-file.conf"));
	ck_assert_str_eq(cause, CONF("no-such-file.conf") ": No such file or "
	    "directory");
	free(cause);

	/* libconfuse's lexer would exit(2) reading a directory. */
	cause = load_bad(TEST_CONF_DIR);
	ck_assert_str_eq(cause, TEST_CONF_DIR ": not a regular file");
	free(cause);
}
END_TEST

START_TEST(test_empty)
{
	char	 path[] = "/tmp/check_config.XXXXXX", want[64];
	char	*cause;
	int	 fd;

	ck_assert_int_ne(fd = mkstemp(path), -1);
	close(fd);
	cause = load_bad(path);
	snprintf(want, sizeof want, "%s: no tiers", path);
	ck_assert_msg(strncmp(cause, want, strlen(want)) == 0, "%s", cause);
	free(cause);
	unlink(path);
}
END_TEST

START_TEST(test_reloadable)
{
	struct dfs_config	*a, *b;
	char			*cause;

	a = load_ok(CONF("good-minimal.conf"));

	/* Policies, migration, watermarks, log level: live. */
	b = load_ok(CONF("good-reload.conf"));
	ck_assert_int_eq(config_reloadable(a, b, &cause), 0);
	ck_assert_ptr_null(cause);
	config_free(b);

	b = load_ok(CONF("good-moved-tier.conf"));
	ck_assert_int_eq(config_reloadable(a, b, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "the tier list changed"));
	free(cause);
	config_free(b);

	b = load_ok(CONF("good-inodes.conf"));
	ck_assert_int_eq(config_reloadable(a, b, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "stable_inodes changed"));
	free(cause);
	config_free(b);

	b = load_ok(CONF("good-common.conf"));
	ck_assert_int_eq(config_reloadable(a, b, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "mountpoint changed"));
	free(cause);
	config_free(b);
	config_free(a);
}
END_TEST

/* libconfuse's lexer has globals: loads from several threads must queue. */
static void *
load_many(void *arg)
{
	struct dfs_config	*conf;
	char			*cause;
	int			 i, fails = 0;

	(void)arg;
	for (i = 0; i < 200; i++) {
		if (config_load(CONF("good-full.conf"), &conf, &cause) != 0)
			fails++;
		else
			config_free(conf);
		if (config_load(CONF("bad-after-comments.conf"), &conf,
		    &cause) != 0 && strstr(cause, ".conf:8: ") != NULL)
			free(cause);
		else
			fails++;
	}
	return ((void *)(intptr_t)fails);
}

START_TEST(test_threads)
{
	pthread_t	t[4];
	void		*rv;
	int		 i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, load_many, NULL),
		    0);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], &rv), 0);
		ck_assert_int_eq((intptr_t)rv, 0);
	}
}
END_TEST

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

	tc = tcase_create("good");
	tcase_add_test(tc, test_example);
	tcase_add_test(tc, test_minimal);
	tcase_add_test(tc, test_common);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_reloadable);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad, 0, sizeof bad / sizeof bad[0]);
	tcase_add_test(tc, test_not_a_file);
	tcase_add_test(tc, test_empty);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
