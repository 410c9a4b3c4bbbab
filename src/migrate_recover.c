/*
 * Recovery at start: finish or undo the moves a crash interrupted, from
 * the journal rows they left, before the mount serves.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"
#include "migrate_int.h"

/*
 * The parent directory of a journal row on tier t, walked one component
 * at a time from the tier's root, following no symlink.
 */
static int
mig_open_dir(fuse_ino_t dir, int t)
{
	char	 path[PATH_MAX], *p, *comp;
	int	 fd, nfd;

	if (index_path(dir, path, sizeof path) != 0)
		return (-ENOENT);
	if ((fd = tier_openat(t, dfs.tiers[t].fd, ".", O_PATH | O_DIRECTORY,
	    0)) < 0)
		return (fd);
	p = path;
	while ((comp = strsep(&p, "/")) != NULL) {
		if (*comp == '\0')
			continue;
		nfd = tier_openat(t, fd, comp, O_PATH | O_DIRECTORY, 0);
		close(fd);
		if ((fd = nfd) < 0)
			return (fd);
	}
	return (fd);
}

/* Is the file at name in dirfd on tier t still the source a row recorded? */
static int
mig_is_source(const struct jrow *j, int dirfd, struct stat *st)
{
	return (dirfd >= 0 && tier_fstatat(j->src, dirfd, j->name, st) == 0 &&
	    S_ISREG(st->st_mode) && tier_same_file(j->src, st, st->st_dev,
	    j->ino) && st->st_size == j->size &&
	    mig_ns(&st->st_mtim) == j->mtime);
}

/* Is the file at name in dirfd on tier t a copy of the row's source? */
static int
mig_is_copy(const struct jrow *j, int dirfd)
{
	struct stat	st;

	/* A tier keeping whole seconds (sshfs) has the copy's mtime cut. */
	return (dirfd >= 0 && tier_fstatat(j->dst, dirfd, j->name, &st) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size == j->size &&
	    tier_same_mtime(j->dst, &st, j->mtime));
}

static int
mig_jrow_cmp(const void *a, const void *b)
{
	const struct jrow	*x = a, *y = b;

	return (x->id < y->id ? -1 : x->id > y->id);
}

/*
 * Finish or undo the moves a crash interrupted, before the mount serves,
 * one file (all the journal rows of its names) at a time.
 *
 * Before the switch the source is the file: a copy renamed into place is
 * taken back out.  After it the copy is the file, whatever clients did
 * to it since (wrote, renamed, removed it), and the source goes if it is
 * still the file that was copied.
 *
 * One case only undoes a switch: a power loss that kept the switch and
 * lost the rename of the copy into place.  Then the index still gives
 * the name to the file, the target tier has nothing under it, and the
 * source, still intact, is the file again.  Without a power loss (the
 * machine's boot is the one the journal was written in, and the copy is
 * not back under its temp name) the same picture means a client renamed
 * or removed the copy and dfs died before the index heard of it: the
 * copy is the file, under its new name or none, and the source goes.
 * Undoing the switch then would give the file back its old name beside
 * the new one.
 */
int
migrate_recover(void)
{
	struct jrow	*rows = NULL, *j;
	struct irow	 r;
	struct stat	 st;
	size_t		 n = 0, i, k, e;
	int		 sfd[64], dfd[64], tmp[64], rv = 0, switched, revert, nd;
	int		 lost;

	if ((rv = index_journal(&rows, &n)) != 0)
		return (rv);
	if (n > 1)
		qsort(rows, n, sizeof *rows, mig_jrow_cmp);
	for (i = 0; i < n && rv == 0; i = e) {
		for (e = i + 1; e < n && rows[e].id == rows[i].id &&
		    e - i < 64; e++)
			;
		nd = (int)(e - i);
		for (k = 0; k < (size_t)nd; k++) {
			j = &rows[i + k];
			sfd[k] = mig_open_dir(j->parent, j->src);
			dfd[k] = mig_open_dir(j->parent, j->dst);
			tmp[k] = dfd[k] >= 0 && j->tmp[0] != '\0' &&
			    tier_fstatat(j->dst, dfd[k], j->tmp, &st) == 0;
			if (tmp[k])
				tier_unlinkat(j->dst, dfd[k], j->tmp, 0);
		}
		/*
		 * A switch undone (by an earlier recovery that died before
		 * dropping the rows) leaves the source the file again.
		 */
		switched = rows[i].state == JOURNAL_SWITCHED &&
		    !(index_get(rows[i].id, &r) == 0 && r.tier == rows[i].src);
		revert = 0;
		if (switched) {
			for (k = 0; k < (size_t)nd && !revert; k++) {
				j = &rows[i + k];
				/* Could the disk have lost the rename? */
				lost = !index_same_boot() || tmp[k];
				revert = lost && index_lookup(j->parent, j->name,
				    &r) == 0 && r.id == j->id &&
				    r.tier == j->dst && dfd[k] >= 0 &&
				    tier_fstatat(j->dst, dfd[k], j->name,
				    &st) == -ENOENT && mig_is_source(j, sfd[k],
				    &st);
			}
			if (revert && index_switch(rows[i].id, rows[i].src,
			    st.st_dev, st.st_ino) != 0)
				revert = 0;	/* the index still says target */
			if (revert)
				switched = 0;
		}
		for (k = 0; k < (size_t)nd; k++) {
			j = &rows[i + k];
			if (switched) {
				if (mig_is_source(j, sfd[k], &st))
					tier_unlinkat(j->src, sfd[k], j->name,
					    0);
			} else if (mig_is_source(j, sfd[k], &st) &&
			    mig_is_copy(j, dfd[k]))
				/* Renamed into place, not switched. */
				tier_unlinkat(j->dst, dfd[k], j->name, 0);
		}
		for (k = 0; k < (size_t)nd; k++) {
			if (dfd[k] >= 0)
				close(dfd[k]);
			if (sfd[k] >= 0)
				close(sfd[k]);
		}
		log_info("recovered the move of inode %llu (%s) from tier %s "
		    "to %s: %s", (unsigned long long)rows[i].id, rows[i].name,
		    dfs.tiers[rows[i].src].name, dfs.tiers[rows[i].dst].name,
		    revert ? "the copy is missing, the source stays" :
		    !switched ? "not switched, the source stays" :
		    "switched, the copy stays");
	}
	/*
	 * What recovery removed is made durable once per tier, not once per
	 * directory, before the rows go: a crash before then runs it again.
	 */
	for (k = 0; n > 0 && k < (size_t)dfs.ntiers; k++) {
		int	fd = tier_openat((int)k, dfs.tiers[k].fd, ".", O_RDONLY |
		    O_DIRECTORY, 0);

		if (fd >= 0) {
			if (syncfs(fd) == -1)
				log_warn("tier %s: syncfs: %s",
				    dfs.tiers[k].name, strerror(errno));
			close(fd);
		}
	}
	for (i = 0; i < n && rv == 0; i = e) {
		fuse_ino_t	ids[64];
		size_t		m = 0;

		for (e = i; e < n && m < 64; e++)
			if (e == i || rows[e].id != rows[e - 1].id)
				ids[m++] = rows[e].id;
		rv = index_journal_del_many(ids, m);
	}
	free(rows);
	return (rv);
}
