/*
 * Namespace changes in the merged tree: creation lands on the first tier
 * with room (tier 0 unless it is short of its min_free) with any missing
 * parents made like the existing ones; unlink, rmdir, rename and
 * link act on the tiers that hold the names, so that a name exists once
 * and no client ever sees EXDEV.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

/*
 * After a change on tier t inside dir, move dir's mtime and ctime on the
 * tier its attributes come from, as a local filesystem would.
 */
void
ns_touch_dir(struct node *dir, int t)
{
	struct timespec	ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
	int		fd, at = dir->tier;

	if (at == t || (fd = node_dirfd(dir, at)) < 0)
		return;
	tier_utimensat(at, fd, "", ts);
}

/*
 * The tiers have changed; an index that failed to follow is put right by
 * the next scan (it always runs at start), and lookups repair stale rows.
 */
static void
ns_index(int rv, const char *op, const char *name)
{
	if (rv != 0)
		log_error("%s %s: index not updated: %s", op, name,
		    strerror(-rv));
}

/*
 * The handle of dir on tier t, creating it there (and its missing parents)
 * with the mode, owner, extended attributes and times of the existing one.
 */
int
ns_ensure_dir(struct node *dir, int t)
{
	struct timespec	 ts[2];
	struct stat	 st, pst;
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	int		 fd, pfd, afd, at, rv, restore;

	if ((fd = node_dirfd(dir, t)) >= 0)
		return (fd);
	if ((rv = node_name(dir, &parent, name, sizeof name)) != 0)
		return (rv);
	if ((pfd = ns_ensure_dir(parent, t)) < 0) {
		rv = pfd;
		goto out;
	}
	/* A directory's attribute tier moves up as copies appear. */
	at = node_tier(dir);
	afd = node_dirfd(dir, at);
	if (afd < 0 || (rv = tier_fstatat(at, afd, "", &st)) != 0) {
		rv = afd < 0 ? afd : rv;
		goto out;
	}
	/* Making it must not look like a change to the parent. */
	restore = node_tier(parent) == t && tier_fstatat(t, pfd, "", &pst) ==
	    0;
	rv = tier_mkdirat(t, pfd, name, st.st_mode & 07777);
	if (rv != 0 && rv != -EEXIST)
		goto out;
	if ((fd = tier_openat(t, pfd, name, O_PATH | O_DIRECTORY, 0)) < 0) {
		rv = fd;
		goto out;
	}
	if (rv == 0) {
		tier_fchownat(t, fd, "", st.st_uid, st.st_gid);
		tier_fchmodat(t, fd, "", st.st_mode & 07777);
		tier_copy_xattrs(afd, fd, 0);
		ts[0] = st.st_atim;
		ts[1] = st.st_mtim;
		tier_utimensat(t, fd, "", ts);
		if (restore) {
			ts[0] = pst.st_atim;
			ts[1] = pst.st_mtim;
			tier_utimensat(t, pfd, "", ts);
		}
	}
	node_dir_created(dir, t, fd);
	index_add_tier(dir->id, t);
	rv = node_dirfd(dir, t);
out:
	node_put(parent);
	return (rv);
}

/*
 * Give a new object the caller's ownership.  dfs creates as root, so the
 * group comes from the caller unless the directory is setgid (then the
 * backing filesystem already gave it the directory's group); chown clears
 * set-id bits, so they are put back.
 */
static int
ns_own(int t, int dirfd, const char *name, int fd, mode_t mode,
    const struct fuse_ctx *ctx)
{
	struct stat	dst;
	gid_t		gid = ctx->gid;
	int		rv;

	if (tier_fstatat(t, dirfd, "", &dst) == 0 && (dst.st_mode & S_ISGID))
		gid = (gid_t)-1;
	if (fd >= 0)
		rv = tier_fchownat(t, fd, "", ctx->uid, gid);
	else
		rv = tier_fchownat(t, dirfd, name, ctx->uid, gid);
	if (rv != 0)
		return (rv);
	if ((mode & (S_ISUID | S_ISGID)) && !S_ISLNK(mode) && !S_ISDIR(mode))
		rv = tier_fchmodat(t, fd >= 0 ? fd : dirfd,
		    fd >= 0 ? "" : name, mode & 07777);
	return (rv);
}

/*
 * The migration worker, above this layer, keeps moved files' sources
 * waiting for their batch and makes room on a full tier; it is reached
 * only through the calls it gives here.
 */
static struct ns_hooks	ns_hooks;

void
ns_set_hooks(const struct ns_hooks *h)
{
	ns_hooks = *h;
}

/* A moved file's waiting source must not outlive a change to its name. */
static void
ns_flush_source(fuse_ino_t id)
{
	if (ns_hooks.flush_source != NULL)
		ns_hooks.flush_source(id);
}

/*
 * A tier may still hold a moved file's source, waiting to be removed with
 * its batch, under a name a client has since freed: on a clash, have the
 * waiting sources removed now and let the caller try once more.
 */
static int
ns_retry(int rv)
{
	return ((rv == -EEXIST || rv == -ENOTDIR || rv == -EISDIR) &&
	    ns_hooks.flush_sources != NULL && ns_hooks.flush_sources());
}

/* A name about to be made must not exist on any tier. */
static int
ns_absent(struct node *parent, const char *name)
{
	struct probe	p;
	int		rv;

	rv = resolve_probe(parent, name, &p);
	if (rv == 0)
		return (-EEXIST);
	return (rv == -ENOENT ? 0 : rv);
}

/*
 * Tier t was seen short of room, or with room again: say so once, and
 * have the worker make room at once rather than at its next check.
 */
static void
ns_room_seen(int t, int isshort, uint64_t avail, uint64_t need)
{
	if (atomic_exchange(&dfs.tiers[t].short_room, isshort) == isshort)
		return;
	if (isshort) {
		log_info("tier %s: %llu bytes free, min_free %llu: new files "
		    "go to the next tier with room", dfs.tiers[t].name,
		    (unsigned long long)avail, (unsigned long long)need);
		if (ns_hooks.room_short != NULL)
			ns_hooks.room_short(t);
	} else
		log_info("tier %s has room again for new files",
		    dfs.tiers[t].name);
}

/*
 * The tier for a new name: the first with more than its min_free
 * available.  If none has, the one with the most, so that a create fails
 * only when no tier can take it.  A tier that cannot say is passed over.
 */
static int
ns_place(void)
{
	uint64_t	avail, need, best = 0;
	int		t, r, pick = 0;

	for (t = 0; t < dfs.ntiers; t++) {
		if ((r = tier_room(t, &avail, &need)) < 0)
			continue;
		ns_room_seen(t, !r, avail, need);
		if (r)
			return (t);
		if (avail > best) {
			best = avail;
			pick = t;
		}
	}
	return (pick);
}

/* mkdir, mknod and symlink: a new name on the first tier with room. */
int
ns_make(struct node *parent, const char *name, mode_t mode, dev_t rdev,
    const char *target, const struct fuse_ctx *ctx,
    struct fuse_entry_param *e)
{
	int	t, pfd, rv, retry = 0;

	if ((rv = ns_absent(parent, name)) != 0)
		return (rv);
	t = ns_place();
	if ((pfd = ns_ensure_dir(parent, t)) < 0)
		return (pfd);
	do {
		if (target != NULL)
			rv = tier_symlinkat(t, target, pfd, name);
		else if (S_ISDIR(mode))
			rv = tier_mkdirat(t, pfd, name, mode & 07777);
		else
			rv = tier_mknodat(t, pfd, name, mode, rdev);
	} while (rv != 0 && retry++ == 0 && ns_retry(rv));
	if (rv != 0)
		return (rv);
	if (target != NULL)
		mode = S_IFLNK | 0777;
	if ((rv = ns_own(t, pfd, name, -1, mode, ctx)) != 0 ||
	    (rv = resolve_lookup_at(parent, name, t, 1, NULL, e)) != 0) {
		tier_unlinkat(t, pfd, name, S_ISDIR(mode) ? AT_REMOVEDIR : 0);
		return (rv);
	}
	if (S_ISDIR(mode))
		node_subdirs_changed(parent);
	ns_touch_dir(parent, t);
	return (0);
}

/* create: a new regular file on the first tier with room, opened. */
int
ns_create(struct node *parent, const char *name, mode_t mode, int flags,
    const struct fuse_ctx *ctx, struct fuse_entry_param *e, int *fdp)
{
	int	t, pfd, fd, rv;

	if ((rv = ns_absent(parent, name)) != 0)
		return (rv);
	t = ns_place();
	if ((pfd = ns_ensure_dir(parent, t)) < 0)
		return (pfd);
	flags &= ~O_NOFOLLOW;
	fd = tier_openat(t, pfd, name, flags | O_CREAT | O_EXCL, mode & 07777);
	if (ns_retry(fd))
		fd = tier_openat(t, pfd, name, flags | O_CREAT | O_EXCL,
		    mode & 07777);
	if (fd < 0)
		return (fd);
	if ((rv = ns_own(t, pfd, name, fd, S_IFREG | mode, ctx)) != 0 ||
	    (rv = resolve_lookup_at(parent, name, t, 1, NULL, e)) != 0) {
		close(fd);
		tier_unlinkat(t, pfd, name, 0);
		return (rv);
	}
	ns_touch_dir(parent, t);
	*fdp = fd;
	return (0);
}

/* A new name of node n: the index and the node table share its inode. */
static int
ns_link_enter(struct node *n, struct node *nparent, const char *nname, int t,
    int npfd, struct fuse_entry_param *e)
{
	struct probe	 p;
	struct node	*ln;
	int		 rv;

	if ((rv = tier_fstatat(t, npfd, nname, &p.st)) != 0)
		return (rv);
	p.tier = t;
	p.id = n->id;
	p.tiers = 0;
	p.partial = 0;
	if ((rv = index_link(nparent->id, nname, n->id, &p.st)) != 0)
		log_warn("link %s: index not updated: %s", nname,
		    strerror(-rv));
	if ((ln = node_enter(nparent, nname, &p)) == NULL)
		return (-ENOMEM);
	p.st.st_ino = ln->id;
	resolve_entry_fill(ln, &p.st, e);
	return (0);
}

/* link: on the tier that holds the file, so it stays one file. */
int
ns_link(struct node *n, struct node *nparent, const char *nname,
    struct fuse_entry_param *e)
{
	struct node	*oparent;
	char		 oname[NAME_MAX + 1];
	int		 t, opfd, npfd, rv;

	if ((rv = ns_absent(nparent, nname)) != 0)
		return (rv);
	if ((rv = node_name(n, &oparent, oname, sizeof oname)) != 0)
		return (rv);
	node_busy_enter(n);
	t = n->tier;
	if ((opfd = node_dirfd(oparent, t)) < 0)
		rv = opfd;
	else if ((npfd = ns_ensure_dir(nparent, t)) < 0)
		rv = npfd;
	else if (((rv = tier_linkat(t, opfd, oname, npfd, nname)) == 0 ||
	    (ns_retry(rv) &&
	    (rv = tier_linkat(t, opfd, oname, npfd, nname)) == 0)) &&
	    (rv = ns_link_enter(n, nparent, nname, t, npfd, e)) == 0)
		ns_touch_dir(nparent, t);
	node_busy_leave(n);
	node_put(oparent);
	return (rv);
}

/*
 * The node a name leads to, if the node table has it, held busy so that a
 * migration does not switch it under a namespace change.
 */
static struct node *
ns_busy(struct node *parent, const char *name)
{
	struct node	*n;

	if ((n = node_find(parent, name)) != NULL)
		node_busy_enter(n);
	return (n);
}

static void
ns_unbusy(struct node *n)
{
	if (n != NULL) {
		node_busy_leave(n);
		node_put(n);
	}
}

static int
ns_unlink_name(struct node *parent, const char *name)
{
	struct probe	p;
	int		pfd, rv;

	if ((rv = resolve_probe(parent, name, &p)) != 0)
		return (rv);
	if (S_ISDIR(p.st.st_mode))
		return (-EISDIR);
	if ((pfd = node_dirfd(parent, p.tier)) < 0)
		return (pfd);
	if ((rv = tier_unlinkat(p.tier, pfd, name, 0)) != 0)
		return (rv);
	ns_index(index_unlink(parent->id, name), "unlink", name);
	node_alias_remove(parent, name);
	ns_flush_source(p.id);
	ns_touch_dir(parent, p.tier);
	return (0);
}

int
ns_unlink(struct node *parent, const char *name)
{
	struct node	*n = ns_busy(parent, name);
	int		 rv;

	rv = ns_unlink_name(parent, name);
	ns_unbusy(n);
	return (rv);
}

/* Remove a directory from every tier that holds it; fds from resolve_dir_tiers. */
static int
ns_rmdir_tiers(struct node *parent, const char *name, int *fds, int check)
{
	int	t, rv;

	if (check) {
		for (t = 0; t < dfs.ntiers; t++)
			if (fds[t] >= 0 &&
			    (rv = tier_dir_empty(t, fds[t])) != 0)
				return (rv);
	}
	/* Slowest first: until the last one goes, the name still answers. */
	for (t = dfs.ntiers - 1; t >= 0; t--) {
		if (fds[t] < 0)
			continue;
		rv = tier_unlinkat(t, node_dirfd(parent, t), name,
		    AT_REMOVEDIR);
		if (rv != 0 && rv != -ENOENT)
			return (rv);
		ns_touch_dir(parent, t);
	}
	return (0);
}

static void
ns_close_fds(int *fds)
{
	int	t;

	for (t = 0; t < dfs.ntiers; t++)
		if (fds[t] >= 0)
			close(fds[t]);
}

int
ns_rmdir(struct node *parent, const char *name)
{
	struct probe	p;
	int		fds[DFS_MAX_TIERS], rv;

	if ((rv = resolve_probe(parent, name, &p)) != 0)
		return (rv);
	if (!S_ISDIR(p.st.st_mode))
		return (-ENOTDIR);
	if ((rv = resolve_dir_tiers(parent, name, fds)) < 0)
		return (rv);
	rv = ns_rmdir_tiers(parent, name, fds, 1);
	ns_close_fds(fds);
	if (rv == 0) {
		ns_index(index_unlink(parent->id, name), "rmdir", name);
		node_alias_remove(parent, name);
		node_subdirs_changed(parent);
	}
	return (rv);
}

/* The set of tiers an object occupies, as a bit mask. */
static unsigned
ns_tierset(const struct probe *p, const int *fds)
{
	unsigned	m = 0;
	int		t;

	if (!S_ISDIR(p->st.st_mode))
		return (1u << p->tier);
	for (t = 0; t < dfs.ntiers; t++)
		if (fds[t] >= 0)
			m |= 1u << t;
	return (m);
}

/*
 * Rename on every tier in mask; on failure, undo the tiers already done so
 * the name is never split between two places.
 */
static int
ns_rename_tiers(unsigned mask, struct node *p1, const char *n1,
    struct node *p2, const char *n2, unsigned flags)
{
	int	t, u, rv = 0, ofd, nfd;

	for (t = 0; t < dfs.ntiers; t++) {
		if (!(mask & (1u << t)))
			continue;
		if ((ofd = node_dirfd(p1, t)) < 0)
			rv = ofd;
		else if ((nfd = ns_ensure_dir(p2, t)) < 0)
			rv = nfd;
		else if ((rv = tier_renameat2(t, ofd, n1, nfd, n2, flags)) !=
		    0 && ns_retry(rv))
			rv = tier_renameat2(t, ofd, n1, nfd, n2, flags);
		if (rv != 0)
			break;
	}
	if (rv == 0)
		return (0);
	for (u = 0; u < t; u++) {
		if (!(mask & (1u << u)))
			continue;
		if (flags & RENAME_EXCHANGE)
			tier_renameat2(u, node_dirfd(p1, u), n1,
			    node_dirfd(p2, u), n2, RENAME_EXCHANGE);
		else
			tier_renameat2(u, node_dirfd(p2, u), n2,
			    node_dirfd(p1, u), n1, RENAME_NOREPLACE);
	}
	return (rv);
}

static int	ns_rename_names(struct node *, const char *, struct node *,
		    const char *, unsigned);

int
ns_rename(struct node *p1, const char *n1, struct node *p2, const char *n2,
    unsigned flags)
{
	struct node	*a, *b;
	int		 rv;

	a = ns_busy(p1, n1);
	b = ns_busy(p2, n2);
	rv = ns_rename_names(p1, n1, p2, n2, flags);
	ns_unbusy(b);
	ns_unbusy(a);
	return (rv);
}

static int
ns_rename_names(struct node *p1, const char *n1, struct node *p2,
    const char *n2, unsigned flags)
{
	struct probe	 s, d;
	int		 sfds[DFS_MAX_TIERS], dfds[DFS_MAX_TIERS];
	unsigned	 smask, dmask;
	int		 rv, dexists, dirs = 0, t;

	for (t = 0; t < DFS_MAX_TIERS; t++)
		sfds[t] = dfds[t] = -1;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return (-EINVAL);
	if ((rv = resolve_name_ok(n2)) != 0)
		return (rv);
	if ((rv = resolve_probe(p1, n1, &s)) != 0)
		return (rv);
	rv = resolve_probe(p2, n2, &d);
	if (rv != 0 && rv != -ENOENT)
		return (rv);
	dexists = rv == 0;
	if ((flags & RENAME_EXCHANGE) && !dexists)
		return (-ENOENT);
	if ((flags & RENAME_NOREPLACE) && dexists)
		return (-EEXIST);
	if (dexists && !(flags & RENAME_EXCHANGE)) {
		if (S_ISDIR(s.st.st_mode) && !S_ISDIR(d.st.st_mode))
			return (-ENOTDIR);
		if (!S_ISDIR(s.st.st_mode) && S_ISDIR(d.st.st_mode))
			return (-EISDIR);
		/* Two names of one file: nothing to do. */
		if (s.tier == d.tier && (s.id == d.id ||
		    (tier_has(s.tier, TIER_CAP_STABLE_INO) &&
		    s.st.st_dev == d.st.st_dev && s.st.st_ino == d.st.st_ino)))
			return (0);
	}
	if (S_ISDIR(s.st.st_mode) &&
	    (rv = resolve_dir_tiers(p1, n1, sfds)) < 0)
		goto out;
	if (dexists && S_ISDIR(d.st.st_mode) &&
	    (rv = resolve_dir_tiers(p2, n2, dfds)) < 0)
		goto out;
	smask = ns_tierset(&s, sfds);
	dmask = dexists ? ns_tierset(&d, dfds) : 0;
	if ((dirs = S_ISDIR(s.st.st_mode) || (dexists &&
	    S_ISDIR(d.st.st_mode))))
		node_rename_begin();

	if (flags & RENAME_EXCHANGE) {
		/*
		 * Possible only when both occupy the same tiers, and those
		 * exchange atomically: done in steps, a crash would leave a
		 * name missing.
		 */
		if (smask != dmask) {
			rv = -EINVAL;
			goto out;
		}
		for (t = 0; t < dfs.ntiers; t++)
			if ((smask & (1u << t)) &&
			    !tier_has(t, TIER_CAP_EXCHANGE)) {
				rv = -EINVAL;
				goto out;
			}
		if ((rv = ns_rename_tiers(smask, p1, n1, p2, n2, flags)) == 0) {
			ns_index(index_rename(p1->id, n1, p2->id, n2, 1),
			    "rename", n1);
			node_alias_swap(p1, n1, p2, n2);
		}
		goto done;
	}
	/* A directory being replaced must be empty on every tier. */
	if (dexists && S_ISDIR(d.st.st_mode)) {
		for (t = 0; t < dfs.ntiers; t++)
			if (dfds[t] >= 0 &&
			    (rv = tier_dir_empty(t, dfds[t])) != 0)
				goto out;
	}
	if ((rv = ns_rename_tiers(smask, p1, n1, p2, n2, flags)) != 0)
		goto out;
	/* The old target on tiers the source was not on must go too. */
	if (dexists && (dmask & ~smask)) {
		if (S_ISDIR(d.st.st_mode)) {
			for (t = 0; t < dfs.ntiers; t++)
				if (smask & (1u << t) && dfds[t] >= 0) {
					close(dfds[t]);
					dfds[t] = -1;
				}
			ns_rmdir_tiers(p2, n2, dfds, 0);
		} else
			tier_unlinkat(d.tier, node_dirfd(p2, d.tier), n2, 0);
	}
	ns_index(index_rename(p1->id, n1, p2->id, n2, 0), "rename", n1);
	node_alias_move(p1, n1, p2, n2);
done:
	if (rv == 0) {
		if (!S_ISDIR(s.st.st_mode))
			ns_flush_source(s.id);
		if (dexists && !S_ISDIR(d.st.st_mode))
			ns_flush_source(d.id);
		if (S_ISDIR(s.st.st_mode) || (dexists && S_ISDIR(d.st.st_mode))) {
			node_subdirs_changed(p1);
			node_subdirs_changed(p2);
		}
		for (t = 0; t < dfs.ntiers; t++) {
			if ((smask | dmask) & (1u << t)) {
				ns_touch_dir(p1, t);
				ns_touch_dir(p2, t);
			}
		}
	}
out:
	if (dirs)
		node_rename_end();
	ns_close_fds(sfds);
	ns_close_fds(dfds);
	return (rv);
}
