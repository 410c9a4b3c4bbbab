/*
 * Open files: each handle keeps its own backing fd on the file's tier.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

#define OP_COPY_CHUNK	(1024 * 1024)

static pthread_mutex_t	op_file_mtx = PTHREAD_MUTEX_INITIALIZER;

static struct handle *
op_fh(struct fuse_file_info *fi)
{
	return ((struct handle *)(uintptr_t)fi->fh);
}

/*
 * The kernel may keep its cached pages only if the file is unchanged since
 * dfs last saw it through a handle.
 */
static void
op_cache_check(struct handle *h, struct fuse_file_info *fi)
{
	struct stat	 st;
	struct node	*n = h->node;

	if (fstat(h->fd, &st) != 0)
		return;
	pthread_mutex_lock(&op_file_mtx);
	fi->keep_cache = n->cache_size == st.st_size &&
	    n->cache_mtime.tv_sec == st.st_mtim.tv_sec &&
	    n->cache_mtime.tv_nsec == st.st_mtim.tv_nsec;
	pthread_mutex_unlock(&op_file_mtx);
}

/*
 * Opens through dfs, for "age_by = access" and promotion; the index
 * takes them in batches.
 */
static void
op_note_access(struct handle *h)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	index_defer_access(h->node->id, (int64_t)ts.tv_sec * 1000000000 +
	    ts.tv_nsec);
}

static int
op_handle_new(struct node *n, int fd, int t, struct fuse_file_info *fi)
{
	struct handle	*h;

	if ((h = calloc(1, sizeof *h)) == NULL)
		return (-ENOMEM);
	h->fd = fd;
	h->tier = t;
	h->node = n;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	node_ref(n);
	node_handle_add(n, h);
	pthread_mutex_lock(&op_file_mtx);
	if (h->writable)
		n->writers++;
	pthread_mutex_unlock(&op_file_mtx);
	if (fi->flags & O_DIRECT)
		fi->direct_io = 1;
	fi->fh = (uintptr_t)h;
	return (0);
}

static void
op_handle_free(struct handle *h)
{
	struct node	*n = h->node;
	struct stat	 st;
	int		 ok = fstat(h->fd, &st) == 0;

	node_handle_del(n, h);
	close(h->fd);
	pthread_mutex_lock(&op_file_mtx);
	if (h->writable) {
		/* After its last write: a migration's copy may lack them. */
		atomic_fetch_add(&n->wgen, 1);
		n->writers--;
	}
	if (ok) {
		n->cache_size = st.st_size;
		n->cache_mtime = st.st_mtim;
	}
	pthread_mutex_unlock(&op_file_mtx);
	/* Policies select by size and age: keep the index near the truth. */
	if (ok && h->writable && st.st_nlink > 0)
		index_defer_stat(n->id, &st);
	node_put(n);
	free(h);
}

/* Flags for the backing open: dfs creates nothing here, and follows no link. */
static int
op_open_flags(int flags)
{
	return (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_NOFOLLOW));
}

void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node	*n, *parent;
	char		 name[NAME_MAX + 1];
	int		 fd, rv, t;

	if ((n = node_get(ino)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((rv = node_name(n, &parent, name, sizeof name)) == 0) {
		/* A write handle is counted before a migration can switch. */
		node_busy_enter(n);
		t = n->tier;
		fd = node_dirfd(parent, t);
		if (fd >= 0)
			fd = tier_openat(t, fd, name, op_open_flags(fi->flags),
			    0);
		node_put(parent);
		if (fd < 0)
			rv = fd;
		else if ((rv = op_handle_new(n, fd, t, fi)) != 0)
			close(fd);
		node_busy_leave(n);
	}
	node_put(n);
	if (rv != 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	op_cache_check(op_fh(fi), fi);
	op_note_access(op_fh(fi));
	if (fuse_reply_open(req, fi) != 0)
		op_handle_free(op_fh(fi));
}

void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    struct fuse_file_info *fi)
{
	struct fuse_entry_param	 e;
	struct node		*p, *n;
	int			 fd, rv;

	if ((p = node_get(parent)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rv = ns_create(p, name, mode, op_open_flags(fi->flags),
	    fuse_req_ctx(req), &e, &fd);
	node_put(p);
	if (rv != 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	if ((n = node_get(e.ino)) == NULL) {
		close(fd);
		fuse_reply_err(req, ESTALE);
		return;
	}
	rv = op_handle_new(n, fd, n->tier, fi);
	node_put(n);
	if (rv != 0) {
		close(fd);
		node_forget(e.ino, 1);
		fuse_reply_err(req, -rv);
		return;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		op_handle_free(op_fh(fi));
		node_forget(e.ino, 1);
	}
}

void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct handle		*h = op_fh(fi);
	struct fuse_bufvec	 buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	atomic_fetch_add_explicit(&dfs.client_io, 1, memory_order_relaxed);
	tier_count(h->tier, &dfs.tiers[h->tier].stats.bytes_read, size);
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/*
 * A failed call on an open file: logged with the file's path, so that an
 * operator can tell whose write a full tier refused.
 */
static int
op_file_error(struct handle *h, fuse_ino_t ino, const char *op, int err)
{
	char	path[PATH_MAX];

	if (index_path(ino, path, sizeof path) != 0)
		snprintf(path, sizeof path, "(inode %llu)",
		    (unsigned long long)ino);
	return (tier_error(h->tier, op, path, err));
}

void
op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
    off_t off, struct fuse_file_info *fi)
{
	struct handle		*h = op_fh(fi);
	struct fuse_bufvec	 out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t			 n;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	atomic_fetch_add_explicit(&dfs.client_io, 1, memory_order_relaxed);
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0) {
		fuse_reply_err(req, -op_file_error(h, ino, "write", (int)-n));
		return;
	}
	tier_count(h->tier, &dfs.tiers[h->tier].stats.bytes_written, n);
	fuse_reply_write(req, (size_t)n);
}

void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle	*h = op_fh(fi);
	int		 fd, rv = 0;

	/* Closing a duplicate reports the errors a network tier defers. */
	if ((fd = dup(h->fd)) == -1 || close(fd) == -1)
		rv = op_file_error(h, ino, "flush", errno);
	fuse_reply_err(req, -rv);
}

void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	op_handle_free(op_fh(fi));
	fuse_reply_err(req, 0);
}

void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
    struct fuse_file_info *fi)
{
	struct handle	*h = op_fh(fi);
	int		 rv = 0;

	if ((datasync ? fdatasync(h->fd) : fsync(h->fd)) == -1)
		rv = op_file_error(h, ino, "fsync", errno);
	fuse_reply_err(req, -rv);
}

void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
    struct fuse_file_info *fi)
{
	struct handle	*h = op_fh(fi);
	int		 rv = 0;

	if (fallocate(h->fd, mode, off, len) == -1)
		rv = op_file_error(h, ino, "fallocate", errno);
	fuse_reply_err(req, -rv);
}

/* Copy by read and write, for handles on tiers that cannot copy between them. */
static ssize_t
op_copy_rw(int in, off_t off_in, int out, off_t off_out, size_t len)
{
	char	*buf;
	ssize_t	 r, w, done = 0;

	if ((buf = malloc(OP_COPY_CHUNK)) == NULL)
		return (-ENOMEM);
	while ((size_t)done < len) {
		r = pread(in, buf, len - done < OP_COPY_CHUNK ? len - done :
		    OP_COPY_CHUNK, off_in + done);
		if (r <= 0) {
			if (r == -1 && done == 0)
				done = -errno;
			break;
		}
		w = pwrite(out, buf, r, off_out + done);
		if (w <= 0) {
			if (done == 0)
				done = w == -1 ? -errno : -EIO;
			break;
		}
		done += w;
		if (w < r)
			break;
	}
	free(buf);
	return (done);
}

void
op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
    struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
    struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct handle	*in = op_fh(fi_in), *out = op_fh(fi_out);
	loff_t		 oi = off_in, oo = off_out;
	ssize_t		 n;

	n = copy_file_range(in->fd, &oi, out->fd, &oo, len, flags);
	if (n == -1 && (errno == EXDEV || errno == EOPNOTSUPP ||
	    errno == ENOSYS) && flags == 0)
		n = op_copy_rw(in->fd, off_in, out->fd, off_out, len);
	else if (n == -1)
		n = -errno;
	if (n < 0) {
		fuse_reply_err(req, -op_file_error(out, ino_out,
		    "copy_file_range", (int)-n));
		return;
	}
	tier_count(in->tier, &dfs.tiers[in->tier].stats.bytes_read, n);
	tier_count(out->tier, &dfs.tiers[out->tier].stats.bytes_written, n);
	fuse_reply_write(req, (size_t)n);
}

void
op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
    struct fuse_file_info *fi)
{
	struct handle	*h = op_fh(fi);
	off_t		 res;

	if ((res = lseek(h->fd, off, whence)) == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

void
op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
    struct fuse_file_info *fi, unsigned flags, const void *in_buf,
    size_t in_bufsz, size_t out_bufsz)
{
	/* No ioctl is passed to a tier: a local filesystem's answer. */
	fuse_reply_err(req, ENOTTY);
}
