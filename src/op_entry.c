/*
 * Name operations: each resolves its nodes, calls resolve or ns, and
 * replies once.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "dfs.h"

void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param	 e;
	struct op_deadline	 d;
	struct node		*p;
	int			 rv;

	op_tune_once();
	/* "." of a forgotten node: an NFS handle being decoded. */
	p = strcmp(name, ".") == 0 ? resolve_node(parent, 0) : node_get(parent);
	if (p == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	op_deadline_begin(&d, req, "lookup", parent, name);
	rv = resolve_lookup(p, name, &e, NULL);
	node_put(p);
	if (op_deadline_end(&d)) {
		/* Answered already: the kernel did not get this entry. */
		if (rv == 0)
			node_forget(e.ino, 1);
		return;
	}
	if (rv == -ENOENT) {
		/*
		 * A negative entry.  Names made through the mount replace it
		 * in the kernel; one made directly on a tier must show once a
		 * scan has found it, which nothing tells the kernel: held for
		 * a second at most.
		 */
		struct fuse_entry_param	neg = { .ino = 0,
		    .entry_timeout = dfs.entry_timeout < DFS_NEGATIVE_TIMEOUT ?
		    dfs.entry_timeout : DFS_NEGATIVE_TIMEOUT };

		fuse_reply_entry(req, &neg);
	} else if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_entry(req, &e);
}

void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(ino, nlookup);
	fuse_reply_none(req);
}

void
op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	size_t	i;

	for (i = 0; i < count; i++)
		node_forget(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void
op_reply_entry(fuse_req_t req, int rv, struct fuse_entry_param *e)
{
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else if (fuse_reply_entry(req, e) != 0)
		node_forget(e->ino, 1);
}

static void
op_make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    dev_t rdev, const char *target)
{
	struct fuse_entry_param	 e;
	struct node		*p;
	int			 rv;

	if ((p = node_get(parent)) == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rv = ns_make(p, name, mode, rdev, target, fuse_req_ctx(req), &e);
	node_put(p);
	op_reply_entry(req, rv, &e);
}

void
op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    dev_t rdev)
{
	op_make(req, parent, name, mode, rdev, NULL);
}

void
op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	op_make(req, parent, name, S_IFDIR | mode, 0, NULL);
}

void
op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
    const char *name)
{
	op_make(req, parent, name, S_IFLNK | 0777, 0, target);
}

void
op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
    const char *newname)
{
	struct fuse_entry_param	 e;
	struct node		*n, *p;
	int			 rv = -ESTALE;

	n = node_get(ino);
	p = node_get(newparent);
	if (n != NULL && p != NULL)
		rv = n->is_dir ? -EPERM : ns_link(n, p, newname, &e);
	node_put(n);
	node_put(p);
	op_reply_entry(req, rv, &e);
}

void
op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node	*p;
	int		 rv = -ESTALE;

	if ((p = node_get(parent)) != NULL) {
		rv = ns_unlink(p, name);
		node_put(p);
	}
	fuse_reply_err(req, -rv);
}

void
op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node	*p;
	int		 rv = -ESTALE;

	if ((p = node_get(parent)) != NULL) {
		rv = ns_rmdir(p, name);
		node_put(p);
	}
	fuse_reply_err(req, -rv);
}

void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
    fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct node	*p1, *p2;
	int		 rv = -ESTALE;

	p1 = node_get(parent);
	p2 = node_get(newparent);
	if (p1 != NULL && p2 != NULL)
		rv = ns_rename(p1, name, p2, newname, flags);
	node_put(p1);
	node_put(p2);
	fuse_reply_err(req, -rv);
}
