/*
 * The low-level FUSE operation table and the session set-up it needs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

static void	op_watchdog_start(void);

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;

	op_watchdog_start();

	/*
	 * The kernel picks readdirplus when it helps (ls -l) and plain
	 * readdir when names are enough (find); either gives the inode
	 * numbers stat gives.
	 */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/*
	 * dfs writes as root, which keeps set-id bits: the kernel must clear
	 * them on write and truncate.  The kernel also keeps mtime/ctime
	 * right only without writeback caching.
	 */
	conn->want &= ~(FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_WRITEBACK_CACHE);
	conn->time_gran = 1;
}

static void
op_destroy(void *userdata)
{
	(void)userdata;
}

/*
 * The kernel reads ahead 128 KiB on a FUSE mount, and INIT can only lower
 * that; requests of up to 1 MiB (max_pages) make sequential reads faster.
 * The bdi setting can raise it once INIT is done, which the first lookup
 * or getattr proves.  The device comes from mountinfo, not from a stat
 * of the mount, which would be a request to this very session.
 */
void
op_tune_once(void)
{
	static atomic_int	 done;
	FILE			*f;
	char			 line[PATH_MAX + 256], dev[32], point[PATH_MAX];
	char			 path[96];
	int			 fd, found = 0;

	if (atomic_exchange(&done, 1) != 0 || dfs.mountpoint == NULL)
		return;
	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = sscanf(line, "%*s %*s %31s %*s %4095s", dev,
		    point) == 2 && strcmp(point, dfs.mountpoint) == 0;
	fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1 ||
	    write(fd, "1024", 4) != 4)
		log_debug("%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
}

/*
 * Deadlines: an operation waiting on a tier that does not answer within
 * the tier's timeout is answered ETIMEDOUT by the watchdog, and its call
 * left to return when it can.  A lookup the kernel waits for holds its
 * directory against every create and (with libfuse 3.14, which never
 * asks for parallel directory operations) every lookup in it, tier-0
 * names included.
 */
static pthread_mutex_t		 op_dl_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct op_deadline	*op_dl_head;

void
op_deadline_begin(struct op_deadline *d, fuse_req_t req, const char *what,
    fuse_ino_t ino, const char *name)
{
	d->req = req;
	d->what = what;
	d->ino = ino;
	d->name = name;
	d->replied = 0;
	d->tier = -1;
	atomic_init(&d->track.tier, -1);
	atomic_init(&d->track.since, 0);
	pthread_mutex_lock(&op_dl_mtx);
	d->prev = NULL;
	if ((d->next = op_dl_head) != NULL)
		d->next->prev = d;
	op_dl_head = d;
	pthread_mutex_unlock(&op_dl_mtx);
	tier_track(&d->track);
}

/* Did the watchdog answer for it?  Then req is gone: the caller undoes. */
int
op_deadline_end(struct op_deadline *d)
{
	int	replied;

	tier_track(NULL);
	pthread_mutex_lock(&op_dl_mtx);
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		op_dl_head = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	replied = d->replied;
	pthread_mutex_unlock(&op_dl_mtx);
	if (replied)
		atomic_fetch_sub(&dfs.tiers[d->tier].stuck, 1);
	return (replied);
}

/* "/" and s before the path that starts at buf[*at], if it fits. */
static void
op_path_prepend(char *buf, size_t *at, const char *s)
{
	size_t	l = strlen(s);

	if (l + 1 > *at)
		return;
	*at -= l;
	memcpy(buf + *at, s, l);
	buf[--*at] = '/';
}

/* The path of name in ino (or of ino), from the nodes, for a log line. */
static void
op_path(fuse_ino_t ino, const char *name, char *buf, size_t len)
{
	struct node	*n, *parent;
	char		 part[NAME_MAX + 1];
	size_t		 at = len - 1;
	int		 depth = 0;

	buf[at] = '\0';
	if (name != NULL)
		op_path_prepend(buf, &at, name);
	n = node_get(ino);
	while (n != NULL && n != node_root() && depth++ < 256) {
		if (node_name(n, &parent, part, sizeof part) != 0) {
			op_path_prepend(buf, &at, "(unlinked)");
			break;
		}
		op_path_prepend(buf, &at, part);
		node_put(n);
		n = parent;
	}
	node_put(n);
	if (at == len - 1)
		buf[--at] = '/';
	memmove(buf, buf + at, len - at);
}

static void *
op_watchdog_main(void *arg)
{
	struct timespec		 tick = { 0, 100 * 1000000 };
	struct op_deadline	*d;
	char			 path[PATH_MAX];
	long long		 now, limit;
	int			 t;

	(void)arg;
	for (;;) {
		nanosleep(&tick, NULL);
		now = tier_now_ms();
		pthread_mutex_lock(&op_dl_mtx);
		for (d = op_dl_head; d != NULL; d = d->next) {
			if (d->replied || (t = atomic_load(&d->track.tier)) < 0 ||
			    (limit = atomic_load(&dfs.tiers[t].timeout_ms)) <= 0 ||
			    now - atomic_load(&d->track.since) < limit)
				continue;
			d->replied = 1;
			d->tier = t;
			atomic_fetch_add(&dfs.tiers[t].stuck, 1);
			tier_count(t, &dfs.tiers[t].stats.errors, 1);
			op_path(d->ino, d->name, path, sizeof path);
			log_warn("tier %s: %s %s: no answer in %g s: %s",
			    dfs.tiers[t].name, d->what, path,
			    limit / 1000.0, strerror(ETIMEDOUT));
			fuse_reply_err(d->req, ETIMEDOUT);
		}
		pthread_mutex_unlock(&op_dl_mtx);
	}
	return (NULL);
}

static void
op_watchdog_start(void)
{
	pthread_t	thread;
	sigset_t	set, old;
	int		rv;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	rv = pthread_create(&thread, NULL, op_watchdog_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv != 0)
		log_warn("watchdog: %s", strerror(rv));
	else
		pthread_detach(thread);
}

const struct fuse_lowlevel_ops op_table = {
	.init		 = op_init,
	.destroy	 = op_destroy,
	.lookup		 = op_lookup,
	.forget		 = op_forget,
	.forget_multi	 = op_forget_multi,
	.getattr	 = op_getattr,
	.setattr	 = op_setattr,
	.readlink	 = op_readlink,
	.mknod		 = op_mknod,
	.mkdir		 = op_mkdir,
	.unlink		 = op_unlink,
	.rmdir		 = op_rmdir,
	.symlink	 = op_symlink,
	.rename		 = op_rename,
	.link		 = op_link,
	.open		 = op_open,
	.read		 = op_read,
	.write_buf	 = op_write_buf,
	.flush		 = op_flush,
	.release	 = op_release,
	.fsync		 = op_fsync,
	.opendir	 = op_opendir,
	.readdir	 = op_readdir,
	.readdirplus	 = op_readdirplus,
	.releasedir	 = op_releasedir,
	.fsyncdir	 = op_fsyncdir,
	.statfs		 = op_statfs,
	.setxattr	 = op_setxattr,
	.getxattr	 = op_getxattr,
	.listxattr	 = op_listxattr,
	.removexattr	 = op_removexattr,
	.access		 = op_access,
	.create		 = op_create,
	.ioctl		 = op_ioctl,
	.fallocate	 = op_fallocate,
	.copy_file_range = op_copy_file_range,
	.lseek		 = op_lseek,
};
