/*
 * The copy engine of a move: data (holes kept), paced to the bandwidth
 * limit and yielding to clients, then read back when asked to verify.
 */
#include "config.h"

#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"
#include "migrate_int.h"

/*
 * The copy's unit: large while clients are quiet, small while they read
 * or write, so that each of their requests queues behind less of it.
 */
#define MIG_CHUNK	(512 * 1024)
#define MIG_CHUNK_BUSY	(128 * 1024)

/* Keep to the bandwidth limit: sleep off any lead over it. */
static void
mig_pace(double start, uint64_t bytes, uint64_t bandwidth)
{
	if (bandwidth != 0)
		mig_sleep((double)bytes / bandwidth - (mig_mono() - start));
}

/*
 * The bulk copy yields the disk to clients: idle I/O class while it runs,
 * on schedulers that honour priorities (mq-deadline, bfq).  Syncs and
 * metadata keep the normal class, so small files are not held back.
 */
void
mig_ioprio(int idle)
{
	int	prio = idle ? 3 << 13 : (2 << 13) | 4;	/* IDLE; BE, 4 */

	if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */,
	    (int)syscall(SYS_gettid), prio) == -1)
		log_debug("ioprio_set: %s", strerror(errno));
}

/* Copy [off, end) of in to out, by copy_file_range or read and write. */
static int
mig_copy_range(int in, int out, off_t off, off_t end, double start,
    uint64_t *done, uint64_t bandwidth, char **buf, off_t *wb,
    unsigned long *seen)
{
	ssize_t		n, w, r;
	size_t		len, chunk;
	unsigned long	io;
	double		t0;
	int		busy;

	while (off < end) {
		io = atomic_load_explicit(&dfs.client_io, memory_order_relaxed);
		busy = io != *seen;
		chunk = busy ? MIG_CHUNK_BUSY : MIG_CHUNK;
		*seen = io;
		t0 = mig_mono();
		len = end - off < (off_t)chunk ? (size_t)(end - off) : chunk;
		if (*buf == NULL) {
			loff_t	oi = off, oo = off;

			n = copy_file_range(in, &oi, out, &oo, len, 0);
			if (n == -1 && (errno == EXDEV || errno == EOPNOTSUPP ||
			    errno == ENOSYS || errno == EINVAL)) {
				if ((*buf = malloc(MIG_CHUNK)) == NULL)
					return (-ENOMEM);
				continue;
			}
		} else {
			n = pread(in, *buf, len, off);
			for (w = 0; n > 0 && w < n; w += r) {
				/* A short write is retried: its error is the cause. */
				if ((r = pwrite(out, *buf + w, n - w, off + w)) <= 0)
					return (r == -1 ? -errno : -EIO);
			}
		}
		if (n == -1)
			return (-errno);
		if (n == 0)
			return (-EIO);	/* the source shrank: changed */
		/*
		 * Start the chunk's writeback now, from this thread and at
		 * its I/O priority, and wait for the chunk before: one chunk
		 * in flight, rather than a burst of dirty pages for the final
		 * fsync to push past clients' reads.  A small file's only
		 * chunk is waited for by the batch's fsync.
		 */
		sync_file_range(out, off, n, SYNC_FILE_RANGE_WRITE);
		if (*wb < off)
			sync_file_range(out, *wb, off - *wb,
			    SYNC_FILE_RANGE_WAIT_BEFORE |
			    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
		*wb = off;
		off += n;
		*done += n;
		mig_pace(start, *done, bandwidth);
		/*
		 * While clients read or write, the copy takes at most half
		 * the time: it rests as long as its chunk took.
		 */
		if (busy && (t0 = mig_mono() - t0) > 0)
			mig_sleep(t0 > 0.1 ? 0.1 : t0);	/* t0: the chunk's time */
	}
	return (0);
}

/* The data of in into out, holes kept as holes. */
int
mig_copy_data(int in, int out, off_t size, uint64_t bandwidth,
    uint64_t *copied)
{
	double		 start = mig_mono();
	char		*buf = NULL;
	off_t		 data, hole, off = 0, wb = 0;
	unsigned long	 seen = 0;
	int		 rv = 0;

	*copied = 0;
	while (off < size && rv == 0) {
		data = lseek(in, off, SEEK_DATA);
		if (data == -1 && errno == ENXIO)
			break;
		if (data == -1) {
			/* No hole support: all data. */
			rv = mig_copy_range(in, out, off, size, start, copied,
			    bandwidth, &buf, &wb, &seen);
			break;
		}
		if ((hole = lseek(in, data, SEEK_HOLE)) == -1)
			hole = size;
		if (hole > size)
			hole = size;
		rv = mig_copy_range(in, out, data, hole, start, copied,
		    bandwidth, &buf, &wb, &seen);
		off = hole;
	}
	free(buf);
	if (rv == 0 && ftruncate(out, size) == -1)
		rv = -errno;
	return (rv);
}

/* Read the copy back and compare it with the source. */
int
mig_verify(int a, int b, off_t size)
{
	char	*x, *y;
	off_t	 off;
	ssize_t	 n, m;
	int	 rv = 0;

	x = malloc(1 << 20);
	y = malloc(1 << 20);
	if (x == NULL || y == NULL) {
		free(x);
		free(y);
		return (-ENOMEM);
	}
	for (off = 0; off < size && rv == 0; off += n) {
		n = pread(a, x, 1 << 20, off);
		m = pread(b, y, 1 << 20, off);
		if (n <= 0 || n != m || memcmp(x, y, n) != 0)
			rv = -EIO;
	}
	free(x);
	free(y);
	return (rv);
}
