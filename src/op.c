/*
 * The low-level FUSE operation table and the session set-up it needs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;

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

/* The reply to a lookup or create of n. */
void
op_entry_fill(struct node *n, const struct stat *st,
    struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	e->ino = n->id;
	e->generation = 1;
	e->attr = *st;
	e->attr.st_ino = n->id;
	if (!n->is_dir)
		resolve_nlink(n->tier, n->id, &e->attr);
	e->attr_timeout = dfs.attr_timeout;
	e->entry_timeout = dfs.entry_timeout;
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
