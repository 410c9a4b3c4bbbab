/*
 * Extended attributes: a file's live on its tier; a directory's are read
 * from its attribute tier and written on every tier that holds it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "dfs.h"

/*
 * One xattr call on node ino.  Writes to a directory go to all its tiers.
 * Returns the size or 0, or -errno.
 */
static ssize_t
op_xattr_call(fuse_ino_t ino, int op, const char *name, void *buf,
    size_t len, int flags)
{
	struct node	*n, *parent;
	char		 fname[NAME_MAX + 1];
	ssize_t		 rv;
	int		 fd, doclose, t;

	if ((n = node_get(ino)) == NULL)
		return (-ESTALE);
	if (n->is_dir && (op == TIER_XATTR_SET || op == TIER_XATTR_REMOVE)) {
		rv = -ENOENT;
		for (t = 0; t < dfs.ntiers; t++) {
			if ((fd = node_dirfd(n, t)) < 0)
				continue;
			rv = tier_xattr(t, fd, op, name, buf, len, flags);
			if (rv < 0)
				break;
		}
	} else if (n->is_dir) {
		if ((fd = node_dirfd(n, n->tier)) < 0)
			rv = fd;
		else
			rv = tier_xattr(n->tier, fd, op, name, buf, len, flags);
	} else if (op == TIER_XATTR_GET && n->no_seccap &&
	    strcmp(name, "security.capability") == 0) {
		/* Asked before every write; remembered until it is set. */
		rv = -ENODATA;
	} else if (node_name(n, &parent, fname, sizeof fname) == 0) {
		node_busy_enter(n);
		if ((fd = node_dirfd(parent, n->tier)) < 0)
			rv = fd;
		else
			rv = tier_xattr_at(n->tier, fd, fname, op, name, buf,
			    len, flags);
		node_busy_leave(n);
		node_put(parent);
		if (name != NULL && strcmp(name, "security.capability") == 0)
			n->no_seccap = op == TIER_XATTR_GET && rv == -ENODATA;
	} else if ((fd = resolve_path_fd(n, &doclose)) >= 0) {
		/* Unlinked but open. */
		rv = tier_xattr(n->tier, fd, op, name, buf, len, flags);
		if (doclose)
			close(fd);
	} else
		rv = fd;
	node_put(n);
	return (rv);
}

void
op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
    const char *value, size_t size, int flags)
{
	ssize_t	rv;

	rv = op_xattr_call(ino, TIER_XATTR_SET, name, (void *)value, size,
	    flags);
	fuse_reply_err(req, rv < 0 ? (int)-rv : 0);
}

static void
op_xattr_reply(fuse_req_t req, fuse_ino_t ino, int op, const char *name,
    size_t size)
{
	char	*buf = NULL;
	ssize_t	 rv;

	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rv = op_xattr_call(ino, op, name, buf, size, 0);
	if (rv < 0)
		fuse_reply_err(req, (int)-rv);
	else if (size == 0)
		fuse_reply_xattr(req, rv);
	else
		fuse_reply_buf(req, buf, rv);
	free(buf);
}

void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	op_xattr_reply(req, ino, TIER_XATTR_GET, name, size);
}

void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	op_xattr_reply(req, ino, TIER_XATTR_LIST, NULL, size);
}

void
op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	ssize_t	rv;

	rv = op_xattr_call(ino, TIER_XATTR_REMOVE, name, NULL, 0, 0);
	fuse_reply_err(req, rv < 0 ? (int)-rv : 0);
}
