/*
 * Directory listing: the merged list is made when a listing starts (or
 * restarts at offset 0) and served from the handle, so offsets are
 * stable for telldir/seekdir.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle	*h;
	struct node	*n;

	if ((n = node_get(ino)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((h = calloc(1, sizeof *h)) == NULL) {
		node_put(n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->fd = -1;
	h->node = n;
	fi->fh = (uintptr_t)h;
	/*
	 * A listing from the index changes only through this mount, which
	 * the kernel sees, or by a scan, which drops the kernel's copy: the
	 * kernel may keep it across opens and answer the next listing itself.
	 */
	if (resolve_complete(n)) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	if (fuse_reply_open(req, fi) != 0) {
		node_put(n);
		free(h);
	}
}

/*
 * d_ino of an entry is the inode number stat gives: from the listing (the
 * index), the node table or the index; until the scan has indexed the
 * name, a lookup (if allowed) lets the index learn it.
 */
static fuse_ino_t
op_dirent_ino(struct node *dir, const struct dirent_m *ent, int lookup)
{
	struct fuse_entry_param	 e;
	struct irow		 r;
	struct node		*c;
	fuse_ino_t		 ino;

	if (ent->id != 0)
		return (ent->id);
	if ((c = node_find(dir, ent->name)) != NULL) {
		ino = c->id;
		node_put(c);
		return (ino);
	}
	if (index_lookup(dir->id, ent->name, &r) == 0)
		return (r.id);
	if (lookup && resolve_lookup(dir, ent->name, &e, NULL) == 0) {
		node_forget(e.ino, 1);
		return (e.ino);
	}
	return (ent->ino);
}

/* Offsets: 1 follows ".", 2 follows "..", k + 3 follows entry k. */
static void
op_readdir_common(fuse_req_t req, size_t size, off_t off,
    struct fuse_file_info *fi, int plus)
{
	struct handle		*h = (struct handle *)(uintptr_t)fi->fh;
	struct fuse_entry_param	 e;
	struct dirent_m		*ent;
	struct irow		 r;
	struct stat		 st;
	char			*buf, *p;
	size_t			 rem = size, len;
	off_t			 k;
	int			 rv, known;

	if (off == 0 || !h->listed) {
		dirlist_free(&h->list);
		if ((rv = resolve_list(h->node, &h->list)) != 0) {
			fuse_reply_err(req, -rv);
			return;
		}
		h->listed = 1;
	}
	if ((buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	for (k = off; k < (off_t)h->list.n + 2; k++) {
		memset(&e, 0, sizeof e);
		if (k < 2) {
			const char	*dot = k == 0 ? "." : "..";

			e.attr.st_ino = h->node->id;
			e.attr.st_mode = S_IFDIR;
			if (plus)
				len = fuse_add_direntry_plus(req, p, rem, dot,
				    &e, k + 1);
			else
				len = fuse_add_direntry(req, p, rem, dot,
				    &e.attr, k + 1);
			if (len > rem)
				break;
			p += len;
			rem -= len;
			continue;
		}
		ent = &h->list.ents[k - 2];
		if (plus) {
			/*
			 * Attributes cost a call to the entry's tier: one a
			 * local tier answers at once, but a trip over the
			 * network for each name on a remote one, so those
			 * names go without (the kernel looks one up when it
			 * is used).  A name whose tier fails is listed all
			 * the same: a listing with a hole would tell a
			 * backup or rsync --delete it was gone.
			 */
			known = index_list_row(&h->list, (size_t)(k - 2), &r);
			rv = tier_remote(ent->tier) ? -EREMOTE :
			    resolve_lookup_at(h->node, ent->name, ent->tier,
			    0, known ? &r : NULL, &e);
			if (rv == -ENOENT)
				continue;	/* gone since the listing */
			if (rv != 0) {
				memset(&e, 0, sizeof e);
				e.attr.st_ino = op_dirent_ino(h->node, ent, 0);
				e.attr.st_mode = (mode_t)ent->type << 12;
			}
			len = fuse_add_direntry_plus(req, p, rem, ent->name,
			    &e, k + 1);
			if (len > rem) {
				if (e.ino != 0)
					node_forget(e.ino, 1);
				break;
			}
		} else {
			memset(&st, 0, sizeof st);
			st.st_ino = op_dirent_ino(h->node, ent, 1);
			st.st_mode = (mode_t)ent->type << 12;
			len = fuse_add_direntry(req, p, rem, ent->name, &st,
			    k + 1);
			if (len > rem)
				break;
		}
		p += len;
		rem -= len;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	op_readdir_common(req, size, off, fi, 0);
}

void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	op_readdir_common(req, size, off, fi, 1);
}

void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle	*h = (struct handle *)(uintptr_t)fi->fh;

	dirlist_free(&h->list);
	node_put(h->node);
	free(h);
	fuse_reply_err(req, 0);
}

void
op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
    struct fuse_file_info *fi)
{
	struct handle	*h = (struct handle *)(uintptr_t)fi->fh;
	int		 t, fd, dfd, rv = 0;

	for (t = 0; t < dfs.ntiers && rv == 0; t++) {
		if ((dfd = node_dirfd(h->node, t)) < 0)
			continue;
		if ((fd = tier_openat(t, dfd, ".", O_RDONLY | O_DIRECTORY,
		    0)) < 0) {
			rv = fd;
			break;
		}
		if ((datasync ? fdatasync(fd) : fsync(fd)) == -1)
			rv = tier_error(t, "fsyncdir", ".", errno);
		close(fd);
	}
	fuse_reply_err(req, -rv);
}
