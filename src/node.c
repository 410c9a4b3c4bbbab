/*
 * The node table: the nodes the kernel holds, by node id (the index's
 * inode id, shared by hard-linked names) and by (parent, name).  One
 * mutex guards the table; backing calls are made without it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

static pthread_mutex_t	 node_mtx = PTHREAD_MUTEX_INITIALIZER;
static void		*node_ids;	/* struct node, by id */
static void		*node_names;	/* struct alias, by parent id and name */
static struct node	*node_rootp;
static unsigned long	 node_total;

static int
node_cmp_id(const void *a, const void *b)
{
	const struct node	*x = a, *y = b;

	return (x->id < y->id ? -1 : x->id > y->id);
}

static int
node_cmp_name(const void *a, const void *b)
{
	const struct alias	*x = a, *y = b;

	if (x->parent->id != y->parent->id)
		return (x->parent->id < y->parent->id ? -1 : 1);
	return (strcmp(x->name, y->name));
}

static struct node *
node_alloc(int is_dir)
{
	struct node	*n;
	int		 t;

	if ((n = calloc(1, sizeof *n)) == NULL)
		return (NULL);
	n->is_dir = is_dir;
	atomic_init(&n->subdirs, -1);
	for (t = 0; t < DFS_MAX_TIERS; t++)
		n->fds[t] = DIRFD_ABSENT;
	return (n);
}

int
node_init(void)
{
	struct node	*n;
	int		 t;

	if ((n = node_alloc(1)) == NULL)
		return (-ENOMEM);
	n->id = FUSE_ROOT_ID;
	n->nlookup = 1;
	n->refs = 1;
	for (t = 0; t < dfs.ntiers; t++)
		n->fds[t] = dfs.tiers[t].fd;
	if (tsearch(n, &node_ids, node_cmp_id) == NULL) {
		free(n);
		return (-ENOMEM);
	}
	node_rootp = n;
	node_total = 1;
	return (0);
}

static void
node_noop(void *p)
{
	(void)p;
}

/* At exit, every node and name: the kernel reclaims the handles. */
static void
node_free_all(void *p)
{
	struct node	*n = p;
	struct alias	*a, *next;
	struct handle	*h, *hn;

	for (a = n->aliases; a != NULL; a = next) {
		next = a->next;
		free(a->name);
		free(a);
	}
	/* Files still open at the unmount: the kernel sends no release. */
	for (h = n->handles; h != NULL; h = hn) {
		hn = h->next;
		free(h);
	}
	free(n->retired);
	free(n);
}

void
node_shutdown(void)
{
	/*
	 * The process is exiting and every thread that used the table has
	 * stopped; the memory goes back so that a leak checker sees only
	 * what was really lost.
	 */
	tdestroy(node_names, node_noop);
	tdestroy(node_ids, node_free_all);
	node_names = node_ids = NULL;
	node_rootp = NULL;
}

struct node *
node_root(void)
{
	return (node_rootp);
}

unsigned long
node_count(void)
{
	unsigned long	n;

	pthread_mutex_lock(&node_mtx);
	n = node_total;
	pthread_mutex_unlock(&node_mtx);
	return (n);
}

static void	node_release_locked(struct node *);

/* Unhook one alias from its node and the name tree; drops the parent ref. */
static void
node_alias_drop_locked(struct alias *a)
{
	struct alias	**ap;
	struct node	 *parent = a->parent;

	tdelete(a, &node_names, node_cmp_name);
	for (ap = &a->node->aliases; *ap != NULL; ap = &(*ap)->next) {
		if (*ap == a) {
			*ap = a->next;
			break;
		}
	}
	free(a->name);
	free(a);
	parent->refs--;
	node_release_locked(parent);
}

/*
 * A handle replaced while callers may still use it (node_dirfd promises
 * it lasts as long as their reference): closed when the node is freed.
 */
static int
node_retire_locked(struct node *n, int fd)
{
	int	*v;

	if ((v = realloc(n->retired, (n->nretired + 1) * sizeof *v)) == NULL)
		return (-ENOMEM);
	v[n->nretired++] = fd;
	n->retired = v;
	return (0);
}

static void
node_release_locked(struct node *n)
{
	size_t	i;
	int	t;

	if (n->nlookup != 0 || n->refs != 0 || n == node_rootp)
		return;
	tdelete(n, &node_ids, node_cmp_id);
	node_total--;
	/* A node can be freed only once nothing refers to it. */
	n->refs = 1;
	while (n->aliases != NULL)
		node_alias_drop_locked(n->aliases);
	for (t = 0; t < DFS_MAX_TIERS; t++)
		if (n->fds[t] >= 0)
			close(n->fds[t]);
	for (i = 0; i < n->nretired; i++)
		close(n->retired[i]);
	free(n->retired);
	free(n);
}

struct node *
node_get(fuse_ino_t id)
{
	struct node	 key, **np, *n = NULL;

	key.id = id;
	pthread_mutex_lock(&node_mtx);
	if ((np = tfind(&key, &node_ids, node_cmp_id)) != NULL) {
		n = *np;
		n->refs++;
	}
	pthread_mutex_unlock(&node_mtx);
	return (n);
}

void
node_ref(struct node *n)
{
	pthread_mutex_lock(&node_mtx);
	n->refs++;
	pthread_mutex_unlock(&node_mtx);
}

void
node_put(struct node *n)
{
	if (n == NULL)
		return;
	pthread_mutex_lock(&node_mtx);
	n->refs--;
	node_release_locked(n);
	pthread_mutex_unlock(&node_mtx);
}

void
node_forget(fuse_ino_t id, uint64_t count)
{
	struct node	 key, **np, *n;

	key.id = id;
	pthread_mutex_lock(&node_mtx);
	if ((np = tfind(&key, &node_ids, node_cmp_id)) != NULL) {
		n = *np;
		n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
		node_release_locked(n);
	}
	pthread_mutex_unlock(&node_mtx);
}

static struct alias *
node_alias_find_locked(struct node *parent, const char *name)
{
	struct alias	 key, **ap;

	key.parent = parent;
	key.name = (char *)name;
	ap = tfind(&key, &node_names, node_cmp_name);
	return (ap == NULL ? NULL : *ap);
}

static int
node_alias_add_locked(struct node *n, struct node *parent, const char *name)
{
	struct alias	*a;

	if ((a = calloc(1, sizeof *a)) == NULL)
		return (-ENOMEM);
	if ((a->name = strdup(name)) == NULL) {
		free(a);
		return (-ENOMEM);
	}
	a->parent = parent;
	a->node = n;
	if (tsearch(a, &node_names, node_cmp_name) == NULL) {
		free(a->name);
		free(a);
		return (-ENOMEM);
	}
	a->next = n->aliases;
	n->aliases = a;
	parent->refs++;
	return (0);
}

/*
 * The handle of directory dir on tier t, opened on first use from the
 * parent's handle on that tier.  It stays valid while the caller holds a
 * reference on dir.  -ENOENT if the directory is not on that tier, or the
 * tier's error.
 */
int
node_dirfd(struct node *dir, int t)
{
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	int		 fd, pfd;

	pthread_mutex_lock(&node_mtx);
	fd = dir->fds[t];
	if (fd != DIRFD_UNKNOWN || dir->aliases == NULL) {
		pthread_mutex_unlock(&node_mtx);
		return (fd >= 0 ? fd : -ENOENT);
	}
	parent = dir->aliases->parent;
	parent->refs++;
	strcpy(name, dir->aliases->name);
	pthread_mutex_unlock(&node_mtx);

	pfd = node_dirfd(parent, t);
	if (pfd >= 0)
		fd = tier_openat(t, pfd, name, O_PATH | O_DIRECTORY, 0);
	else
		fd = pfd;
	node_put(parent);

	/*
	 * Only an answer says the directory is absent: a tier that failed
	 * or did not answer is asked again next time.
	 */
	if (fd < 0 && fd != -ENOENT && fd != -ENOTDIR && fd != -ELOOP)
		return (fd);
	pthread_mutex_lock(&node_mtx);
	if (dir->fds[t] == DIRFD_UNKNOWN)
		dir->fds[t] = fd >= 0 ? fd : DIRFD_ABSENT;
	else if (fd >= 0)
		close(fd);
	fd = dir->fds[t];
	if (fd >= 0 && t < dir->tier)
		dir->tier = t;
	pthread_mutex_unlock(&node_mtx);
	return (fd >= 0 ? fd : -ENOENT);
}

/*
 * Directory renames on the tiers in progress, and done: a handle opened
 * by name while either moves may belong to another directory.
 */
static atomic_uint	node_renaming;
static atomic_ulong	node_renamed;

void
node_rename_begin(void)
{
	atomic_fetch_add(&node_renaming, 1);
}

void
node_rename_end(void)
{
	atomic_fetch_add(&node_renamed, 1);
	atomic_fetch_sub(&node_renaming, 1);
}

/* A handle on a directory removed from its tier (rmdir), or unusable. */
static int
node_dirfd_dead(int t, int fd)
{
	struct stat	st;
	int		rv;

	if ((rv = tier_fstatat(t, fd, "", &st)) != 0)
		return (rv == -ENOENT || rv == -ESTALE);
	return (st.st_nlink == 0);
}

/*
 * The handle table may be older than a change made behind dfs's back: a
 * tier recorded without dir may have gained it, or had it removed and
 * made again.  Open dir on tier t afresh from its parent (the parent too,
 * if needed) and keep the handle unless a live one is there.  1 if the
 * handle changed, 0 if it was right, -ENOENT if dir is not on tier t,
 * -EAGAIN if a rename made the answer unsure, or -errno.
 */
int
node_dirfd_recheck(struct node *dir, int t)
{
	struct node	*parent;
	char		 name[NAME_MAX + 1];
	unsigned long	 renamed;
	int		 old, fd, pfd, rv;

	renamed = atomic_load(&node_renamed);
	if (atomic_load(&node_renaming) != 0)
		return (-EAGAIN);
	pthread_mutex_lock(&node_mtx);
	old = dir->fds[t];
	if (dir == node_rootp || dir->aliases == NULL) {
		pthread_mutex_unlock(&node_mtx);
		return (old >= 0 ? 0 : -ENOENT);
	}
	parent = dir->aliases->parent;
	parent->refs++;
	strcpy(name, dir->aliases->name);
	pthread_mutex_unlock(&node_mtx);

	if (old >= 0 && !node_dirfd_dead(t, old)) {
		node_put(parent);
		return (0);
	}
	pfd = node_dirfd(parent, t);
	fd = pfd < 0 ? pfd : tier_openat(t, pfd, name, O_PATH | O_DIRECTORY,
	    0);
	if (fd == -ENOENT || fd == -ENOTDIR) {
		/* The parent's handle may be the stale one. */
		if ((rv = node_dirfd_recheck(parent, t)) == 1) {
			pfd = node_dirfd(parent, t);
			fd = pfd < 0 ? pfd : tier_openat(t, pfd, name,
			    O_PATH | O_DIRECTORY, 0);
		} else if (rv != 0 && rv != -ENOENT)
			fd = rv;
	}
	node_put(parent);
	if (fd == -ENOTDIR || fd == -ELOOP)
		fd = -ENOENT;
	if (fd < 0 && fd != -ENOENT)
		return (fd);

	pthread_mutex_lock(&node_mtx);
	if (atomic_load(&node_renaming) != 0 ||
	    atomic_load(&node_renamed) != renamed)
		rv = -EAGAIN;
	else if (dir->fds[t] != old)
		rv = 1;		/* settled meanwhile: that one stands */
	else if (fd < 0 && old < 0)
		rv = -ENOENT;
	else if (old >= 0 && (rv = node_retire_locked(dir, old)) != 0)
		;
	else {
		dir->fds[t] = fd >= 0 ? fd : DIRFD_ABSENT;
		if (fd >= 0 && t < dir->tier)
			dir->tier = t;
		rv = fd >= 0 ? 1 : -ENOENT;
		fd = -1;
	}
	pthread_mutex_unlock(&node_mtx);
	if (fd >= 0)
		close(fd);
	if (rv == 1 && node_dirfd(dir, t) < 0)
		rv = -ENOENT;
	return (rv);
}

/*
 * How many tiers hold dir.  When the index told which (tiers_known), a
 * handle not opened yet counts without a backing call; otherwise each
 * tier is probed once.
 */
int
node_tiers_known(struct node *dir)
{
	int	t, n = 0, fd;

	for (t = 0; t < dfs.ntiers; t++) {
		pthread_mutex_lock(&node_mtx);
		fd = dir->fds[t];
		pthread_mutex_unlock(&node_mtx);
		if (fd >= 0 || (fd == DIRFD_UNKNOWN && dir->tiers_known) ||
		    (fd == DIRFD_UNKNOWN && node_dirfd(dir, t) >= 0))
			n++;
	}
	return (n);
}

/* A directory dfs just created (or found) on tier t: record its handle. */
void
node_dir_created(struct node *dir, int t, int fd)
{
	pthread_mutex_lock(&node_mtx);
	if (dir->fds[t] < 0)
		dir->fds[t] = fd;
	else
		close(fd);
	if (t < dir->tier)
		dir->tier = t;
	pthread_mutex_unlock(&node_mtx);
}

/*
 * The count of subdirectories is stale.  The generation goes first: a
 * count being taken meanwhile sees it moved and is not kept.
 */
void
node_subdirs_changed(struct node *dir)
{
	atomic_fetch_add(&dir->subdirs_gen, 1);
	atomic_store(&dir->subdirs, -1);
}

/*
 * One current name of n: its parent (referenced; node_put it) and the
 * name copied to buf.  -ENOENT when n has no known name left.
 */
int
node_name(struct node *n, struct node **parent, char *buf, size_t len)
{
	int	rv = 0;

	pthread_mutex_lock(&node_mtx);
	if (n->aliases == NULL)
		rv = -ENOENT;
	else if (strlen(n->aliases->name) >= len)
		rv = -ENAMETOOLONG;
	else {
		*parent = n->aliases->parent;
		(*parent)->refs++;
		strcpy(buf, n->aliases->name);
	}
	pthread_mutex_unlock(&node_mtx);
	return (rv);
}

/*
 * The index says directory n is on these tiers: one recorded absent has
 * gained it (behind dfs's back, found by a scan) and is opened on next
 * use.  Absence is not learnt here: a handle may be opening meanwhile.
 */
static void
node_learn_tiers_locked(struct node *n, unsigned tiers)
{
	int	t;

	for (t = 0; t < dfs.ntiers; t++)
		if ((tiers & (1u << t)) && n->fds[t] == DIRFD_ABSENT)
			n->fds[t] = DIRFD_UNKNOWN;
}

/*
 * Find or make the node for name in parent, as the probe found it (its
 * id comes from the index), and count one kernel lookup on it.  A cached
 * name that now leads elsewhere is dropped from the old node.
 */
struct node *
node_enter(struct node *parent, const char *name, const struct probe *p)
{
	struct node	*n = NULL, key, **np;
	struct alias	*a;
	int		 is_dir = S_ISDIR(p->st.st_mode), t;

	pthread_mutex_lock(&node_mtx);
	if ((a = node_alias_find_locked(parent, name)) != NULL) {
		if (a->node->id == p->id) {
			n = a->node;
			/* A tier that renumbers its files gave a new number. */
			if (!n->is_dir && n->tier == p->tier) {
				n->fmt = p->st.st_mode & S_IFMT;
				n->dev = p->st.st_dev;
				n->ino = p->st.st_ino;
			}
			goto found;
		}
		node_alias_drop_locked(a);
	}
	key.id = p->id;
	if ((np = tfind(&key, &node_ids, node_cmp_id)) != NULL) {
		n = *np;
		/* A directory has one name: an older one is stale. */
		while (n->is_dir && n->aliases != NULL)
			node_alias_drop_locked(n->aliases);
		if (node_alias_add_locked(n, parent, name) != 0) {
			n = NULL;
			goto found;
		}
		if (!n->is_dir) {
			n->tier = p->tier;
			n->fmt = p->st.st_mode & S_IFMT;
			n->dev = p->st.st_dev;
			n->ino = p->st.st_ino;
		}
		goto found;
	}
	if ((n = node_alloc(is_dir)) == NULL)
		goto found;
	n->id = p->id;
	n->tier = p->tier;
	n->fmt = p->st.st_mode & S_IFMT;
	n->dev = p->st.st_dev;
	n->ino = p->st.st_ino;
	n->partial = p->partial;
	if (is_dir) {
		/*
		 * The index knows its tiers; without it, tiers before the
		 * first hit were probed and lack it.
		 */
		for (t = p->tier; t < dfs.ntiers; t++)
			if (p->tiers == 0 || (p->tiers & (1u << t)))
				n->fds[t] = DIRFD_UNKNOWN;
		n->tiers_known = p->tiers != 0;
	}
	if (tsearch(n, &node_ids, node_cmp_id) == NULL) {
		free(n);
		n = NULL;
		goto found;
	}
	if (node_alias_add_locked(n, parent, name) != 0) {
		tdelete(n, &node_ids, node_cmp_id);
		free(n);
		n = NULL;
		goto found;
	}
	node_total++;
found:
	if (n != NULL) {
		if (n->is_dir)
			node_learn_tiers_locked(n, p->tiers);
		n->nlookup++;
	}
	pthread_mutex_unlock(&node_mtx);
	return (n);
}

/* The node cached for name in parent, referenced, or NULL. */
struct node *
node_find(struct node *parent, const char *name)
{
	struct alias	*a;
	struct node	*n = NULL;

	pthread_mutex_lock(&node_mtx);
	if ((a = node_alias_find_locked(parent, name)) != NULL) {
		n = a->node;
		n->refs++;
	}
	pthread_mutex_unlock(&node_mtx);
	return (n);
}

/* name in parent is gone (unlink, rmdir, replaced by a rename). */
void
node_alias_remove(struct node *parent, const char *name)
{
	struct alias	*a;

	pthread_mutex_lock(&node_mtx);
	parent->refs++;
	if ((a = node_alias_find_locked(parent, name)) != NULL)
		node_alias_drop_locked(a);
	parent->refs--;
	node_release_locked(parent);
	pthread_mutex_unlock(&node_mtx);
}

/* A rename: the name moves, whatever was at the new name loses it. */
void
node_alias_move(struct node *oparent, const char *oname, struct node *nparent,
    const char *nname)
{
	struct alias	*a, *old;
	char		*copy;

	if ((copy = strdup(nname)) == NULL) {
		/* Forgetting the cached names is always safe. */
		node_alias_remove(oparent, oname);
		node_alias_remove(nparent, nname);
		return;
	}
	pthread_mutex_lock(&node_mtx);
	oparent->refs++;
	nparent->refs++;
	if ((old = node_alias_find_locked(nparent, nname)) != NULL)
		node_alias_drop_locked(old);
	if ((a = node_alias_find_locked(oparent, oname)) != NULL) {
		tdelete(a, &node_names, node_cmp_name);
		free(a->name);
		a->name = copy;
		copy = NULL;
		nparent->refs++;
		a->parent = nparent;
		oparent->refs--;
		if (tsearch(a, &node_names, node_cmp_name) == NULL)
			node_alias_drop_locked(a);
	}
	oparent->refs--;
	nparent->refs--;
	node_release_locked(oparent);
	node_release_locked(nparent);
	pthread_mutex_unlock(&node_mtx);
	free(copy);
}

/* Exchange: the two names swap their nodes. */
void
node_alias_swap(struct node *p1, const char *n1, struct node *p2,
    const char *n2)
{
	struct alias	*a, *b;
	struct node	*na;
	struct alias	**ap;

	pthread_mutex_lock(&node_mtx);
	a = node_alias_find_locked(p1, n1);
	b = node_alias_find_locked(p2, n2);
	if (a != NULL && b != NULL) {
		/* Swap the nodes the two dentries lead to. */
		na = a->node;
		for (ap = &na->aliases; *ap != a; ap = &(*ap)->next)
			;
		*ap = a->next;
		for (ap = &b->node->aliases; *ap != b; ap = &(*ap)->next)
			;
		*ap = b->next;
		a->node = b->node;
		a->next = a->node->aliases;
		a->node->aliases = a;
		b->node = na;
		b->next = na->aliases;
		na->aliases = b;
		pthread_mutex_unlock(&node_mtx);
		return;
	}
	pthread_mutex_unlock(&node_mtx);
	node_alias_remove(p1, n1);
	node_alias_remove(p2, n2);
}

/* n itself, or its parent, counted as one more kernel lookup. */
struct node *
node_self(struct node *n, int up)
{
	pthread_mutex_lock(&node_mtx);
	if (up)
		n = n == node_rootp ? n : n->aliases != NULL ?
		    n->aliases->parent : NULL;
	if (n != NULL)
		n->nlookup++;
	pthread_mutex_unlock(&node_mtx);
	return (n);
}

void
node_handle_add(struct node *n, struct handle *h)
{
	pthread_mutex_lock(&node_mtx);
	h->next = n->handles;
	n->handles = h;
	pthread_mutex_unlock(&node_mtx);
}

void
node_handle_del(struct node *n, struct handle *h)
{
	struct handle	**hp;

	pthread_mutex_lock(&node_mtx);
	for (hp = &n->handles; *hp != NULL; hp = &(*hp)->next) {
		if (*hp == h) {
			*hp = h->next;
			break;
		}
	}
	pthread_mutex_unlock(&node_mtx);
}

/*
 * A file unlinked while open has no name left, but its open handles still
 * reach it: a duplicate of one (close it), its tier in *tierp, or -ENOENT.
 */
int
node_open_fd(struct node *n, int *tierp)
{
	int	fd = -ENOENT;

	pthread_mutex_lock(&node_mtx);
	if (n->handles != NULL) {
		fd = fcntl(n->handles->fd, F_DUPFD_CLOEXEC, 0);
		if (fd == -1)
			fd = -errno;
		*tierp = n->handles->tier;
	}
	pthread_mutex_unlock(&node_mtx);
	return (fd);
}

struct node_dirs {
	struct node	**v;
	size_t		  n, cap;
};
static struct node_dirs	node_scanned_dirs;

static void
node_scanned_visit(const void *nodep, VISIT which, int depth)
{
	struct node_dirs	*d = &node_scanned_dirs;
	struct node		*n = *(struct node *const *)nodep;

	(void)depth;
	if ((which != postorder && which != leaf) || !n->is_dir ||
	    n == node_rootp)
		return;
	if (array_grow(&d->v, &d->cap, d->n + 1, sizeof *d->v) != 0)
		return;
	n->refs++;
	d->v[d->n++] = n;
}

/*
 * A scan has completed: the directories it read are whole in the index
 * now, and on the tiers it found them on, also those the node table
 * already holds (a tier may have gained one behind dfs's back).  The
 * index is read without the table's lock, so lookups go on meanwhile.
 */
void
node_scanned(void)
{
	struct node_dirs	*d = &node_scanned_dirs;
	struct irow		 r;
	size_t			 i;

	pthread_mutex_lock(&node_mtx);
	d->n = 0;
	twalk(node_ids, node_scanned_visit);
	pthread_mutex_unlock(&node_mtx);
	for (i = 0; i < d->n; i++) {
		if (index_get(d->v[i]->id, &r) == 0) {
			pthread_mutex_lock(&node_mtx);
			if (d->v[i]->partial)
				d->v[i]->partial = r.partial;
			node_learn_tiers_locked(d->v[i], r.tiers);
			pthread_mutex_unlock(&node_mtx);
		}
		node_listing_changed(d->v[i]->id);
		node_put(d->v[i]);
	}
	node_listing_changed(FUSE_ROOT_ID);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

/*
 * The kernel keeps a listing it read from the index (op_opendir) until it
 * changes the directory itself; a change it did not make (a scan, a stale
 * row) must drop that copy.
 */
void
node_listing_changed(fuse_ino_t id)
{
	node_inval(id, 0, 0);
}

/*
 * The session the kernel's caches are told of changes through.  Threads
 * that tell (the scan, the worker) may do so until the unmount; the fd is
 * closed by the unmount, and a number reused by then would take the
 * message into another file: the unmount takes the session away first.
 */
static pthread_rwlock_t		 node_se_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct fuse_session	*node_se;

void
node_set_session(struct fuse_session *se)
{
	pthread_rwlock_wrlock(&node_se_lock);
	node_se = se;
	pthread_rwlock_unlock(&node_se_lock);
}

/* The kernel drops what it caches of inode id (off, len as libfuse's). */
void
node_inval(fuse_ino_t id, off_t off, off_t len)
{
	pthread_rwlock_rdlock(&node_se_lock);
	if (node_se != NULL)
		fuse_lowlevel_notify_inval_inode(node_se, id, off, len);
	pthread_rwlock_unlock(&node_se_lock);
}

/*
 * The kernel forgets name in parent (a scan found it gone or another file
 * there).  Never from a request on parent: the kernel holds its lock.
 */
void
node_inval_entry(fuse_ino_t parent, const char *name)
{
	pthread_rwlock_rdlock(&node_se_lock);
	if (node_se != NULL)
		fuse_lowlevel_notify_inval_entry(node_se, parent, name,
		    strlen(name));
	pthread_rwlock_unlock(&node_se_lock);
}

/*
 * A migration switches a file's tier while clients use it.  Every
 * operation that reaches a file by name (its tier and a name in its
 * parent) runs between node_busy_enter and node_busy_leave; the switch
 * waits for those in flight, and those that arrive wait for the switch,
 * so none reads the old tier and reaches the source after it is gone.
 */
static pthread_mutex_t	node_move_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	node_move_cv = PTHREAD_COND_INITIALIZER;

void
node_busy_enter(struct node *n)
{
	for (;;) {
		atomic_fetch_add(&n->busy, 1);
		if (!atomic_load(&n->moving))
			return;
		node_busy_leave(n);
		pthread_mutex_lock(&node_move_mtx);
		while (atomic_load(&n->moving))
			pthread_cond_wait(&node_move_cv, &node_move_mtx);
		pthread_mutex_unlock(&node_move_mtx);
	}
}

void
node_busy_leave(struct node *n)
{
	if (atomic_fetch_sub(&n->busy, 1) == 1 && atomic_load(&n->moving)) {
		pthread_mutex_lock(&node_move_mtx);
		pthread_cond_broadcast(&node_move_cv);
		pthread_mutex_unlock(&node_move_mtx);
	}
}

/* Hold off new operations on n and wait for those in flight. */
void
node_move_begin(struct node *n)
{
	atomic_store(&n->moving, 1);
	pthread_mutex_lock(&node_move_mtx);
	while (atomic_load(&n->busy) != 0)
		pthread_cond_wait(&node_move_cv, &node_move_mtx);
	pthread_mutex_unlock(&node_move_mtx);
}

/*
 * node_move_begin only if no operation is in progress on n: the worker
 * holding several files at once must never wait for a client, who may
 * be waiting for one of them.
 */
int
node_move_try_begin(struct node *n)
{
	atomic_store(&n->moving, 1);
	if (atomic_load(&n->busy) == 0)
		return (1);
	node_move_end(n, -1, 0, 0);
	return (0);
}

/* n's tier (a directory's: the fastest holding it), read under the lock. */
int
node_tier(struct node *n)
{
	int	t;

	pthread_mutex_lock(&node_mtx);
	t = n->tier;
	pthread_mutex_unlock(&node_mtx);
	return (t);
}

/* Where n lives: its tier and its identity there, as one switch left them. */
void
node_where(struct node *n, int *t, dev_t *dev, ino_t *ino)
{
	pthread_mutex_lock(&node_mtx);
	*t = n->tier;
	*dev = n->dev;
	*ino = n->ino;
	pthread_mutex_unlock(&node_mtx);
}

/* The switch is done (t >= 0: n now lives on tier t); let operations in. */
void
node_move_end(struct node *n, int t, dev_t dev, ino_t ino)
{
	if (t >= 0) {
		pthread_mutex_lock(&node_mtx);
		n->tier = t;
		n->dev = dev;
		n->ino = ino;
		pthread_mutex_unlock(&node_mtx);
	}
	pthread_mutex_lock(&node_move_mtx);
	atomic_store(&n->moving, 0);
	pthread_cond_broadcast(&node_move_cv);
	pthread_mutex_unlock(&node_move_mtx);
}
