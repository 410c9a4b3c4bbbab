/*
 * The index's redo log: the namespace changes of the open commit group.
 *
 * Index changes commit in groups (index_ns.c), so a kill -9 would lose the
 * last few milliseconds of them: the files stay on the tiers, but a name
 * made or renamed in that window would come back under a new inode
 * number, and its pin and access counts would be gone.  Each change of a
 * group is therefore also written here, one record per change, before
 * the client is answered.  A write(2) survives the death of the process;
 * at the next start, index_open replays the records the index does not
 * have yet.  Once a group commits, the log is emptied.
 *
 * A record: a fixed head, the names, and a checksum of both, so that a
 * record torn by a power loss ends the log rather than being replayed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

#define REDO_MAGIC	0x64667372u	/* "dfsr" */

struct redo_head {
	uint32_t	magic;
	uint32_t	len;		/* the whole record */
	uint64_t	seq;
	uint64_t	id;
	uint64_t	p1;
	uint64_t	p2;
	uint64_t	dev;
	uint64_t	ino;
	uint64_t	nlink;
	int64_t		size;
	int64_t		mtime;
	int64_t		ctime;
	uint32_t	mode;
	uint32_t	tiers;
	int32_t		tier;
	int32_t		partial;
	uint16_t	n1len;
	uint16_t	n2len;
	uint8_t		op;
	uint8_t		exchange;
	uint8_t		pad[2];
};

#define REDO_MAX	(sizeof(struct redo_head) + 2 * NAME_MAX + 8)

static int	redo_fd = -1;
static off_t	redo_off;

static uint64_t
redo_sum(const unsigned char *p, size_t n)
{
	uint64_t	h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	while (n-- > 0) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return (h);
}

int
redo_open(const char *path, char **cause)
{
	off_t	end;

	if ((redo_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1 || (end = lseek(redo_fd, 0, SEEK_END)) == -1) {
		asprintf(cause, "redo log %s: %s", path, strerror(errno));
		redo_close();
		return (-1);
	}
	/* Appends go after what is there until a reset empties it. */
	redo_off = end;
	return (0);
}

void
redo_close(void)
{
	if (redo_fd != -1)
		close(redo_fd);
	redo_fd = -1;
}

/* Encode r into buf (REDO_MAX bytes); the record's length. */
static size_t
redo_encode(const struct redo_rec *r, unsigned char *buf)
{
	struct redo_head	h;
	size_t			n1 = strnlen(r->n1, NAME_MAX);
	size_t			n2 = strnlen(r->n2, NAME_MAX);
	size_t			len = sizeof h + n1 + n2 + 8;
	uint64_t		sum;

	memset(&h, 0, sizeof h);
	h.magic = REDO_MAGIC;
	h.len = (uint32_t)len;
	h.seq = r->seq;
	h.id = r->id;
	h.p1 = r->p1;
	h.p2 = r->p2;
	h.dev = r->dev;
	h.ino = r->ino;
	h.nlink = r->nlink;
	h.size = r->size;
	h.mtime = r->mtime;
	h.ctime = r->ctime;
	h.mode = r->mode;
	h.tiers = r->tiers;
	h.tier = r->tier;
	h.partial = r->partial;
	h.n1len = (uint16_t)n1;
	h.n2len = (uint16_t)n2;
	h.op = (uint8_t)r->op;
	h.exchange = (uint8_t)r->exchange;
	memcpy(buf, &h, sizeof h);
	memcpy(buf + sizeof h, r->n1, n1);
	memcpy(buf + sizeof h + n1, r->n2, n2);
	sum = redo_sum(buf, len - 8);
	memcpy(buf + len - 8, &sum, 8);
	return (len);
}

/* Decode the record at buf (avail bytes): its length, or 0 if none is whole. */
static size_t
redo_decode(const unsigned char *buf, size_t avail, struct redo_rec *r)
{
	struct redo_head	h;
	uint64_t		sum;

	if (avail < sizeof h + 8)
		return (0);
	memcpy(&h, buf, sizeof h);
	if (h.magic != REDO_MAGIC || h.n1len > NAME_MAX ||
	    h.n2len > NAME_MAX || h.len != sizeof h + h.n1len + h.n2len + 8 ||
	    h.len > avail)
		return (0);
	memcpy(&sum, buf + h.len - 8, 8);
	if (sum != redo_sum(buf, h.len - 8))
		return (0);
	memset(r, 0, sizeof *r);
	r->seq = h.seq;
	r->op = h.op;
	r->exchange = h.exchange;
	r->id = h.id;
	r->p1 = h.p1;
	r->p2 = h.p2;
	r->dev = h.dev;
	r->ino = h.ino;
	r->nlink = h.nlink;
	r->size = h.size;
	r->mtime = h.mtime;
	r->ctime = h.ctime;
	r->mode = h.mode;
	r->tiers = h.tiers;
	r->tier = h.tier;
	r->partial = h.partial;
	memcpy(r->n1, buf + sizeof h, h.n1len);
	memcpy(r->n2, buf + sizeof h + h.n1len, h.n2len);
	return (h.len);
}

/* Append one record: 0 or -errno. */
int
redo_append(const struct redo_rec *r)
{
	unsigned char	buf[REDO_MAX];
	size_t		len;
	ssize_t		n;

	if (redo_fd == -1)
		return (-EBADF);
	len = redo_encode(r, buf);
	if ((n = pwrite(redo_fd, buf, len, redo_off)) != (ssize_t)len)
		return (n == -1 ? -errno : -EIO);
	redo_off += len;
	return (0);
}

/* Empty the log: every record in it has committed. */
int
redo_reset(void)
{
	if (redo_fd == -1 || redo_off == 0)
		return (0);
	if (ftruncate(redo_fd, 0) == -1)
		return (-errno);
	redo_off = 0;
	return (0);
}

/*
 * Every whole record from the start of the log, in order; a torn or
 * foreign tail ends it.  0 or -errno; *recs is to be freed.
 */
int
redo_read(struct redo_rec **recs, size_t *np)
{
	unsigned char	*buf = NULL;
	struct redo_rec	*v = NULL;
	size_t		 len = 0, cap = 0, off, used, n = 0, vcap = 0;
	ssize_t		 got;

	*recs = NULL;
	*np = 0;
	if (redo_fd == -1)
		return (-EBADF);
	for (;;) {
		if (len == cap && array_grow(&buf, &cap, len + 65536, 1) != 0) {
			free(buf);
			return (-ENOMEM);
		}
		if ((got = pread(redo_fd, buf + len, cap - len,
		    (off_t)len)) == -1) {
			free(buf);
			return (-errno);
		}
		if (got == 0)
			break;
		len += got;
	}
	for (off = 0; off < len; off += used) {
		if (array_grow(&v, &vcap, n + 1, sizeof *v) != 0) {
			free(v);
			free(buf);
			return (-ENOMEM);
		}
		if ((used = redo_decode(buf + off, len - off, &v[n])) == 0)
			break;
		n++;
	}
	free(buf);
	*recs = v;
	*np = n;
	return (0);
}
