/*
 * Unit tests of the index's redo log: records come back as written, in
 * order; a torn or foreign tail ends the log; a reset empties it.
 */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

static char	tmp[] = "/tmp/check_redo.XXXXXX";
static char	file[PATH_MAX];

static void
setup(void)
{
	char	*cause = NULL;

	ck_assert_ptr_nonnull(mkdtemp(strcpy(tmp, "/tmp/check_redo.XXXXXX")));
	snprintf(file, sizeof file, "%s/index.db-redo", tmp);
	ck_assert_int_eq(redo_open(file, &cause), 0);
}

static void
teardown(void)
{
	redo_close();
	unlink(file);
	rmdir(tmp);
}

static void
rec(struct redo_rec *r, uint64_t seq, int op, const char *n1, const char *n2)
{
	memset(r, 0, sizeof *r);
	r->seq = seq;
	r->op = op;
	r->id = 1000 + seq;
	r->p1 = 7;
	r->p2 = 9;
	r->tier = 1;
	r->tiers = 3;
	r->mode = 0100644;
	r->dev = 2049;
	r->ino = 123456789;
	r->nlink = 2;
	r->size = 1 << 20;
	r->mtime = 1700000000123456789LL;
	r->ctime = 1700000001123456789LL;
	snprintf(r->n1, sizeof r->n1, "%s", n1);
	snprintf(r->n2, sizeof r->n2, "%s", n2);
}

START_TEST(test_round_trip)
{
	struct redo_rec	 w[4], *v;
	char		 longname[NAME_MAX + 1];
	size_t		 n, i;

	memset(longname, 'x', NAME_MAX);
	longname[NAME_MAX] = '\0';
	rec(&w[0], 1, REDO_ADD, "a", "");
	rec(&w[1], 2, REDO_LINK, longname, "");
	rec(&w[2], 3, REDO_RENAME, "from", longname);
	w[2].exchange = 1;
	rec(&w[3], 4, REDO_UNLINK, "gone\nwith a newline", "");
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(redo_append(&w[i]), 0);
	ck_assert_int_eq(redo_read(&v, &n), 0);
	ck_assert_uint_eq(n, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(memcmp(&v[i], &w[i], sizeof w[i]), 0);
	free(v);
}
END_TEST

START_TEST(test_torn_tail)
{
	struct redo_rec	 w, *v;
	size_t		 n;
	off_t		 end;
	int		 fd;

	rec(&w, 1, REDO_ADD, "one", "");
	ck_assert_int_eq(redo_append(&w), 0);
	rec(&w, 2, REDO_ADD, "two", "");
	ck_assert_int_eq(redo_append(&w), 0);
	/* The second record loses its last bytes, as a power loss may. */
	fd = open(file, O_RDWR);
	ck_assert_int_ge(fd, 0);
	end = lseek(fd, 0, SEEK_END);
	ck_assert_int_eq(ftruncate(fd, end - 3), 0);
	close(fd);
	ck_assert_int_eq(redo_read(&v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].n1, "one");
	free(v);
}
END_TEST

START_TEST(test_bad_sum)
{
	struct redo_rec	 w, *v;
	size_t		 n;
	int		 fd;
	char		 c = 'Z';

	rec(&w, 1, REDO_ADD, "one", "");
	ck_assert_int_eq(redo_append(&w), 0);
	rec(&w, 2, REDO_ADD, "two", "");
	ck_assert_int_eq(redo_append(&w), 0);
	/* A flipped byte in the first record's name ends the log there. */
	fd = open(file, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, 0), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, 0), 1);
	close(fd);
	ck_assert_int_eq(redo_read(&v, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
}
END_TEST

START_TEST(test_reset_and_reopen)
{
	struct redo_rec	 w, *v;
	char		*cause = NULL;
	size_t		 n;

	rec(&w, 1, REDO_ADD, "one", "");
	ck_assert_int_eq(redo_append(&w), 0);
	ck_assert_int_eq(redo_reset(), 0);
	ck_assert_int_eq(redo_read(&v, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
	/* Reopened, a log goes on after what it holds. */
	rec(&w, 2, REDO_ADD, "two", "");
	ck_assert_int_eq(redo_append(&w), 0);
	redo_close();
	ck_assert_int_eq(redo_open(file, &cause), 0);
	rec(&w, 3, REDO_UNLINK, "two", "");
	ck_assert_int_eq(redo_append(&w), 0);
	ck_assert_int_eq(redo_read(&v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(v[0].seq, 2);
	ck_assert_uint_eq(v[1].seq, 3);
	free(v);
	/* A reset after reopening empties it too. */
	redo_close();
	ck_assert_int_eq(redo_open(file, &cause), 0);
	ck_assert_int_eq(redo_reset(), 0);
	ck_assert_int_eq(redo_read(&v, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
}
END_TEST

static Suite *
redo_suite(void)
{
	Suite	*s = suite_create("redo");
	TCase	*tc = tcase_create("redo");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_torn_tail);
	tcase_add_test(tc, test_bad_sum);
	tcase_add_test(tc, test_reset_and_reopen);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(redo_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
