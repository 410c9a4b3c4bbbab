/*
 * Attribute operations.
 */
#include "config.h"

#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

static struct handle *
op_handle(struct fuse_file_info *fi)
{
	return (fi == NULL ? NULL : (struct handle *)(uintptr_t)fi->fh);
}

void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle		*h = op_handle(fi);
	struct op_deadline	 d;
	struct node		*n;
	struct stat		 st;
	int			 rv;

	op_tune_once();
	if ((n = node_get(ino)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	op_deadline_begin(&d, req, "stat", ino, NULL);
	if (h != NULL && !n->is_dir) {
		rv = tier_fstatat(h->tier, h->fd, "", &st);
		st.st_ino = n->id;
		if (rv == 0)
			resolve_nlink(h->tier, n->id, &st);
	} else
		rv = resolve_stat(n, &st);
	node_put(n);
	if (op_deadline_end(&d))
		return;
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_attr(req, &st, dfs.attr_timeout);
}

/* Apply one setattr to one object: an open fd, or (dirfd, name). */
static int
op_setattr_one(int t, int fd, const char *name, struct stat *attr, int set)
{
	struct timespec	ts[2];
	int		rv = 0, wfd;

	if (set & FUSE_SET_ATTR_MODE)
		rv = tier_fchmodat(t, fd, name, attr->st_mode & 07777);
	if (rv == 0 && (set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		rv = tier_fchownat(t, fd, name,
		    (set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
		    (set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1);
	if (rv == 0 && (set & FUSE_SET_ATTR_SIZE)) {
		if (*name == '\0')
			rv = tier_ftruncate(t, fd, attr->st_size);
		else if ((wfd = tier_openat(t, fd, name,
		    O_WRONLY | O_NONBLOCK, 0)) < 0)
			rv = wfd;
		else {
			rv = tier_ftruncate(t, wfd, attr->st_size);
			close(wfd);
		}
	}
	if (rv == 0 && (set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
		if (set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		rv = tier_utimensat(t, fd, name, ts);
	}
	return (rv);
}

void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int set,
    struct fuse_file_info *fi)
{
	struct handle	*h = op_handle(fi);
	struct node	*n, *parent;
	struct stat	 st;
	char		 name[NAME_MAX + 1];
	int		 rv = 0, t, fd;

	if ((n = node_get(ino)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (n->is_dir) {
		/* Mode, owner and times are kept in step on every tier. */
		if (set & FUSE_SET_ATTR_SIZE)
			rv = -EISDIR;
		for (t = 0; rv == 0 && t < dfs.ntiers; t++)
			if ((fd = node_dirfd(n, t)) >= 0)
				rv = op_setattr_one(t, fd, "", attr, set);
	} else if (h != NULL)
		rv = op_setattr_one(h->tier, h->fd, "", attr, set);
	else if ((rv = node_name(n, &parent, name, sizeof name)) == 0) {
		node_busy_enter(n);
		fd = node_dirfd(parent, n->tier);
		rv = fd < 0 ? fd : op_setattr_one(n->tier, fd, name, attr, set);
		node_busy_leave(n);
		node_put(parent);
	} else if ((fd = node_open_fd(n, &t)) >= 0) {
		/* Unlinked but open: its handles still reach it. */
		rv = op_setattr_one(t, fd, "", attr, set);
		close(fd);
	}
	/* After the truncate: a migration's copy may predate it. */
	if (!n->is_dir && (set & FUSE_SET_ATTR_SIZE))
		atomic_fetch_add(&n->wgen, 1);
	if (rv == 0)
		rv = resolve_stat(n, &st);
	/* Policies select by size and mtime: touch, truncate, rsync -t. */
	if (rv == 0 && !n->is_dir &&
	    (set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME)))
		index_defer_stat(n->id, &st);
	node_put(n);
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_attr(req, &st, dfs.attr_timeout);
}

void
op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct node	*n;

	/* default_permissions: the kernel has checked the mode already. */
	if ((n = node_get(ino)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	node_put(n);
	fuse_reply_err(req, 0);
}

void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node	*n, *parent;
	char		 name[NAME_MAX + 1], buf[PATH_MAX + 1];
	int		 rv, fd;

	if ((n = node_get(ino)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((rv = node_name(n, &parent, name, sizeof name)) == 0) {
		node_busy_enter(n);
		fd = node_dirfd(parent, n->tier);
		rv = fd < 0 ? fd : tier_readlinkat(n->tier, fd, name, buf,
		    sizeof buf - 1);
		node_busy_leave(n);
		node_put(parent);
	}
	node_put(n);
	if (rv < 0)
		fuse_reply_err(req, -rv);
	else {
		buf[rv] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* The sum of the tiers, in units of the first tier's fragment size. */
void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct op_deadline	d;
	struct statvfs		sum, sv;
	unsigned long		unit;
	int			t, rv;

	(void)ino;
	memset(&sum, 0, sizeof sum);
	for (t = 0; t < dfs.ntiers; t++) {
		op_deadline_begin(&d, req, "statfs", FUSE_ROOT_ID, NULL);
		rv = tier_statfs(t, &sv);
		if (op_deadline_end(&d))
			return;
		if (rv != 0) {
			fuse_reply_err(req, -rv);
			return;
		}
		if (t == 0) {
			sum = sv;
			sum.f_blocks = sum.f_bfree = sum.f_bavail = 0;
			sum.f_files = sum.f_ffree = sum.f_favail = 0;
		}
		unit = sum.f_frsize;
		sum.f_blocks += sv.f_blocks * sv.f_frsize / unit;
		sum.f_bfree += sv.f_bfree * sv.f_frsize / unit;
		sum.f_bavail += sv.f_bavail * sv.f_frsize / unit;
		sum.f_files += sv.f_files;
		sum.f_ffree += sv.f_ffree;
		sum.f_favail += sv.f_favail;
		if (sv.f_namemax < sum.f_namemax)
			sum.f_namemax = sv.f_namemax;
	}
	fuse_reply_statfs(req, &sum);
}
