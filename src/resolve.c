/*
 * Resolution of names in the merged tree: which tier holds (parent, name),
 * the attributes a client sees, and merged directory listings.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

int
resolve_name_ok(const char *name)
{
	if (strlen(name) > NAME_MAX)
		return (-ENAMETOOLONG);
	if (tier_is_private(name))
		return (-ENOENT);
	return (0);
}

/*
 * Does what a tier holds match what the index says is there?  Where the
 * tier renumbers its files, the name and the type say it is the file.
 */
static int
resolve_matches(const struct irow *r, const struct stat *st)
{
	if (r->type != (st->st_mode & S_IFMT))
		return (0);
	return (S_ISDIR(st->st_mode) ||
	    tier_same_file(r->tier, st, r->dev, r->ino));
}

/* A matched file the tier has renumbered: the index learns the number. */
static void
resolve_renumbered(const struct irow *r, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) || (r->dev == (uint64_t)st->st_dev &&
	    r->ino == (uint64_t)st->st_ino))
		return;
	log_debug("%s: inode %llu is %llu on tier %s now, was %llu",
	    __func__, (unsigned long long)r->id,
	    (unsigned long long)st->st_ino, dfs.tiers[r->tier].name,
	    (unsigned long long)r->ino);
	index_set_ident(r->id, r->tier, st);
}

/*
 * Probe the tiers in order for name: the fastest holding it wins.  The
 * index learns the answer.
 */
static int
resolve_probe_tiers(struct node *parent, const char *name, struct probe *p)
{
	struct stat	st;
	int		t, u, fd, rv, err = -ENOENT;

	for (t = 0; t < dfs.ntiers; t++) {
		if ((fd = node_dirfd(parent, t)) < 0) {
			/* Not an absence: the name may be there. */
			if (fd != -ENOENT && err == -ENOENT)
				err = fd;
			continue;
		}
		rv = tier_fstatat(t, fd, name, &p->st);
		if (rv == -ENOENT || rv == -ENOTDIR)
			continue;
		if (rv != 0)
			return (rv);
		p->tier = t;
		p->tiers = 0;
		p->partial = 1;
		if (S_ISDIR(p->st.st_mode)) {
			p->tiers = 1u << t;
			for (u = t + 1; u < dfs.ntiers; u++)
				if ((fd = node_dirfd(parent, u)) >= 0 &&
				    tier_fstatat(u, fd, name, &st) == 0 &&
				    S_ISDIR(st.st_mode))
					p->tiers |= 1u << u;
		}
		return (index_add(parent->id, name, t, p->tiers, 1, &p->st,
		    &p->id));
	}
	return (err);
}

/*
 * Does the index hold every entry of dir?  Once a scan has completed, it
 * does, except for directories found outside a scan (a tier changed
 * behind dfs's back), which are read from the tiers until the next scan.
 */
int
resolve_complete(struct node *dir)
{
	return (index_is_scanned() && !dir->partial);
}

/* The index had a row for a name its tier no longer holds: forget it. */
static void
resolve_stale(struct node *parent, const char *name)
{
	log_debug("%s: stale index row for %s in %llu", __func__, name,
	    (unsigned long long)parent->id);
	index_unlink(parent->id, name);
	node_alias_remove(parent, name);
	node_listing_changed(parent->id);
}

/*
 * Find name in parent.  The node table, then the index, say which tier
 * holds it, and one backing call there confirms it.  A stale row is
 * repaired; a miss is final once a full scan has completed, and before
 * that the tiers are probed.
 */
int
resolve_probe(struct node *parent, const char *name, struct probe *p)
{
	struct node	*n;
	struct irow	 r;
	int		 t, fd, rv, rechecked = 0;

	if ((rv = resolve_name_ok(name)) != 0)
		return (rv);
	if ((n = node_find(parent, name)) != NULL) {
		dev_t	dev;
		ino_t	ino;

		/* One of the tier and identity a switch sets, not a mix. */
		node_where(n, &t, &dev, &ino);
		fd = node_dirfd(parent, t);
		rv = fd < 0 ? fd : tier_fstatat(t, fd, name, &p->st);
		if (rv == 0 && (n->is_dir ? S_ISDIR(p->st.st_mode) :
		    (n->fmt == (p->st.st_mode & S_IFMT) &&
		    tier_same_file(t, &p->st, dev, ino)))) {
			p->tier = t;
			p->id = n->id;
			p->tiers = 0;
			p->partial = n->partial;
			node_put(n);
			return (0);
		}
		node_put(n);
	}
	rv = index_lookup(parent->id, name, &r);
	while (rv == 0) {
		struct irow	r2;

		t = r.tier;
		fd = node_dirfd(parent, t);
		rv = fd < 0 ? fd : tier_fstatat(t, fd, name, &p->st);
		if (rv == 0 && resolve_matches(&r, &p->st)) {
			resolve_renumbered(&r, &p->st);
			p->tier = t;
			p->id = r.id;
			p->tiers = r.tiers;
			p->partial = r.partial;
			return (0);
		}
		if (rv != 0 && rv != -ENOENT && rv != -ENOTDIR)
			return (rv);
		/* A migration may have switched the row meanwhile. */
		rv = index_lookup(parent->id, name, &r2);
		if (rv == 0 && (r2.id != r.id || r2.tier != r.tier ||
		    r2.ino != r.ino)) {
			r = r2;
			continue;
		}
		/*
		 * Before calling the row stale, make sure the parent's
		 * handle on that tier is right: the tier may have gained
		 * the directory, or made it anew, behind dfs's back.
		 */
		if (!rechecked++) {
			rv = node_dirfd_recheck(parent, t);
			if (rv == 1) {
				rv = 0;
				continue;
			}
			/* Unsure, as a directory rename ran: keep it. */
			if (rv == -EAGAIN)
				return (-ENOENT);
			if (rv != 0 && rv != -ENOENT)
				return (rv);
		}
		/* Stale: the name may be elsewhere now; probe for it. */
		resolve_stale(parent, name);
		return (resolve_probe_tiers(parent, name, p));
	}
	if (rv != -ENOENT)
		return (rv);
	if (resolve_complete(parent))
		return (-ENOENT);
	return (resolve_probe_tiers(parent, name, p));
}

/* The subdirectories of a directory, over all its tiers. */
long
resolve_subdirs(struct node *dir)
{
	struct dirlist	 l = { .ents = NULL };
	struct stat	 st;
	long		 n = 0, cached;
	size_t		 i;
	unsigned	 gen = atomic_load(&dir->subdirs_gen);
	int		 fd;

	if ((cached = atomic_load(&dir->subdirs)) >= 0)
		return (cached);
	if (resolve_list(dir, &l) != 0)
		return (-1);
	for (i = 0; i < l.n; i++) {
		if (l.ents[i].type == DT_DIR)
			n++;
		else if (l.ents[i].type == DT_UNKNOWN &&
		    (fd = node_dirfd(dir, l.ents[i].tier)) >= 0 &&
		    tier_fstatat(l.ents[i].tier, fd, l.ents[i].name, &st) == 0 &&
		    S_ISDIR(st.st_mode))
			n++;
	}
	dirlist_free(&l);
	/* Kept unless the count changed while it was taken. */
	cached = -1;
	if (atomic_compare_exchange_strong(&dir->subdirs, &cached, n) &&
	    atomic_load(&dir->subdirs_gen) != gen)
		atomic_store(&dir->subdirs, -1);
	return (n);
}

/*
 * A file's link count where its tier does not keep one (sshfs says 1
 * for every file): the names the index gives it, so that tar and rsync
 * -H still see a hard-link group.
 */
void
resolve_nlink(int t, fuse_ino_t id, struct stat *st)
{
	unsigned	n;

	if (S_ISDIR(st->st_mode) || st->st_nlink == 0 ||
	    tier_has(t, TIER_CAP_NLINK))
		return;
	if ((n = index_nlink(id)) > st->st_nlink)
		st->st_nlink = n;
}

/* The attributes a client sees for node n. */
int
resolve_stat(struct node *n, struct stat *st)
{
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	int		 fd, rv, t;
	long		 sub;

	if (n->is_dir) {
		if ((fd = node_dirfd(n, n->tier)) < 0)
			return (fd);
		if ((rv = tier_fstatat(n->tier, fd, "", st)) != 0)
			return (rv);
		if (node_tiers_known(n) > 1 && (sub = resolve_subdirs(n)) >= 0)
			st->st_nlink = 2 + sub;
	} else if ((rv = node_name(n, &parent, name, sizeof name)) != 0) {
		/* Unlinked but open: its handles still reach it. */
		if ((fd = node_open_fd(n, &t)) < 0)
			return (rv);
		rv = tier_fstatat(t, fd, "", st);
		close(fd);
		if (rv != 0)
			return (rv);
	} else {
		node_busy_enter(n);
		t = n->tier;
		fd = node_dirfd(parent, t);
		rv = fd < 0 ? fd : tier_fstatat(t, fd, name, st);
		node_busy_leave(n);
		node_put(parent);
		if (rv != 0)
			return (rv);
		resolve_nlink(t, n->id, st);
	}
	st->st_ino = n->id;
	return (0);
}

/*
 * Enter a probed name in the node table (a directory's attributes are
 * its fastest tier's) and fill the entry a lookup replies with.
 */
static int
resolve_enter(struct node *parent, const char *name, struct probe *p,
    struct fuse_entry_param *e, struct node **out)
{
	struct node	*n;
	int		 rv;

	if ((n = node_enter(parent, name, p)) == NULL)
		return (-ENOMEM);
	if (n->is_dir && (rv = resolve_stat(n, &p->st)) != 0) {
		node_forget(n->id, 1);
		return (rv);
	}
	p->st.st_ino = n->id;
	resolve_entry_fill(n, &p->st, e);
	if (out != NULL)
		*out = n;
	return (0);
}

int
resolve_lookup(struct node *parent, const char *name,
    struct fuse_entry_param *e, struct node **out)
{
	struct probe	 p;
	struct node	*n;
	int		 rv;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		/* NFS reconnects a handle through its parent. */
		if ((n = node_self(parent, name[1] == '.')) == NULL)
			return (-ESTALE);
		if ((rv = resolve_stat(n, &p.st)) != 0) {
			node_forget(n->id, 1);
			return (rv);
		}
		p.st.st_ino = n->id;
		resolve_entry_fill(n, &p.st, e);
		if (out != NULL)
			*out = n;
		return (0);
	}
	if ((rv = resolve_probe(parent, name, &p)) != 0)
		return (rv);
	return (resolve_enter(parent, name, &p, e, out));
}

static int
resolve_cmp_ent(const void *a, const void *b)
{
	const struct dirent_m	*x = a, *y = b;
	int			 c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return (c);
	return (x->tier - y->tier);
}

/* The merged listing of dir: every name once, from the fastest tier. */
int
resolve_list(struct node *dir, struct dirlist *l)
{
	size_t	i, j;
	int	t, fd, rv;

	/* Once the index is whole, a listing costs no backing call. */
	l->strays = 0;
	l->rows = 0;
	if (resolve_complete(dir))
		return (index_list(dir->id, l));
	l->ents = NULL;
	l->n = 0;
	for (t = 0; t < dfs.ntiers; t++) {
		if ((fd = node_dirfd(dir, t)) < 0)
			continue;
		if ((rv = tier_list(t, fd, l)) != 0) {
			dirlist_free(l);
			return (rv);
		}
	}
	if (l->n < 2)
		return (0);
	qsort(l->ents, l->n, sizeof *l->ents, resolve_cmp_ent);
	for (i = 1, j = 0; i < l->n; i++) {
		if (strcmp(l->ents[i].name, l->ents[j].name) == 0)
			free(l->ents[i].name);
		else
			l->ents[++j] = l->ents[i];
	}
	l->n = j + 1;
	return (0);
}

/*
 * The tiers on which name in parent is a directory: handles (O_PATH) in
 * fds[], -1 where absent.  Returns how many, or -errno.
 */
int
resolve_dir_tiers(struct node *parent, const char *name, int *fds)
{
	int	t, pfd, n = 0;

	for (t = 0; t < dfs.ntiers; t++) {
		fds[t] = -1;
		if ((pfd = node_dirfd(parent, t)) < 0)
			continue;
		fds[t] = tier_openat(t, pfd, name, O_PATH | O_DIRECTORY, 0);
		if (fds[t] >= 0)
			n++;
		else if (fds[t] != -ENOENT && fds[t] != -ENOTDIR &&
		    fds[t] != -ELOOP) {
			int	rv = fds[t], u;

			for (u = 0; u < t; u++)
				if (fds[u] >= 0)
					close(fds[u]);
			fds[t] = -1;
			return (rv);
		} else
			fds[t] = -1;
	}
	return (n);
}

/*
 * Lookup of a name whose tier is known (a listing, or dfs just made it
 * there): one backing call, and the index gives or learns its inode.
 * known, if not NULL, is the name's row as the index has it now (a
 * listing's, index_list_row), which saves asking again.
 */
int
resolve_lookup_at(struct node *parent, const char *name, int t, int made,
    const struct irow *known, struct fuse_entry_param *e)
{
	struct probe	 p;
	struct irow	 r;
	int		 fd, rv;

	fd = node_dirfd(parent, t);
	rv = fd < 0 ? fd : tier_fstatat(t, fd, name, &p.st);
	/*
	 * A listing may be older than a migration that moved the name, or
	 * come from an index that knows a tier the handles do not yet:
	 * anything unexpected is resolved the long way.
	 */
	if (!made && rv == -ENOENT)
		return (resolve_lookup(parent, name, e, NULL));
	if (rv != 0)
		return (rv);
	p.tier = t;
	p.tiers = S_ISDIR(p.st.st_mode) ? 1u << t : 0;
	/* A directory dfs just made is empty: the index has all of it. */
	p.partial = !made;
	if (known != NULL) {
		r = *known;
		rv = 0;
	} else
		rv = index_lookup(parent->id, name, &r);
	if (rv == 0 && r.tier == t && resolve_matches(&r, &p.st)) {
		resolve_renumbered(&r, &p.st);
		p.id = r.id;
		p.tiers = r.tiers;
		p.partial = r.partial;
	} else if (!made && (rv == 0 ||
	    (rv == -ENOENT && S_ISDIR(p.st.st_mode))))
		/* A directory new to the index: find all the tiers it is on. */
		return (resolve_lookup(parent, name, e, NULL));
	else if (rv == 0 || rv == -ENOENT) {
		if (rv == 0)
			resolve_stale(parent, name);
		if ((rv = index_add(parent->id, name, t, p.tiers, p.partial,
		    &p.st, &p.id)) != 0)
			return (rv);
	} else
		return (rv);
	return (resolve_enter(parent, name, &p, e, NULL));
}

/* The entry a lookup or create of n replies with. */
void
resolve_entry_fill(struct node *n, const struct stat *st,
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

/*
 * An O_PATH handle on node n where it holds its data (a directory: its
 * attribute tier).  *closep says whether the caller must close it.  For
 * a file, the caller holds it busy (node_busy_enter) while it uses it.
 * Returns the fd or -errno.
 */
int
resolve_path_fd(struct node *n, int *closep)
{
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	int		 fd, rv;

	*closep = 0;
	if (n->is_dir)
		return (node_dirfd(n, n->tier));
	if ((rv = node_name(n, &parent, name, sizeof name)) != 0) {
		int	t;

		if ((fd = node_open_fd(n, &t)) < 0)
			return (rv);
		*closep = 1;
		return (fd);
	}
	fd = node_dirfd(parent, n->tier);
	if (fd >= 0)
		fd = tier_openat(n->tier, fd, name, O_PATH, 0);
	node_put(parent);
	*closep = fd >= 0;
	return (fd);
}

/*
 * The node of inode id, referenced, made from the index if the kernel has
 * forgotten it (an NFS file handle outlives the kernel's cache, and dfs
 * restarts): its names are walked up to a node that is known.
 */
struct node *
resolve_node(fuse_ino_t id, int depth)
{
	struct node	*n, *parent;
	struct probe	 p;
	fuse_ino_t	 pid;
	char		 name[NAME_MAX + 1];

	if ((n = node_get(id)) != NULL || depth > 4096)
		return (n);
	if (index_name(id, &pid, name, sizeof name) != 0)
		return (NULL);
	if ((parent = resolve_node(pid, depth + 1)) == NULL)
		return (NULL);
	if (resolve_probe(parent, name, &p) == 0 && p.id == id &&
	    (n = node_enter(parent, name, &p)) != NULL) {
		/* Held by this reference, not by a kernel lookup. */
		node_ref(n);
		node_forget(n->id, 1);
	}
	node_put(parent);
	return (n);
}
