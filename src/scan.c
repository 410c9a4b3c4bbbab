/*
 * The full scan: walk every tier once, merge each directory's names as
 * the mount shows them, and bring the index in line.  It runs in its own
 * thread with the mount already serving; until it completes, lookups
 * that miss the index probe the tiers.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

static pthread_t	 scan_thread;
static pthread_mutex_t	 scan_mtx = PTHREAD_MUTEX_INITIALIZER;
static int		 scan_running;
static int		 scan_joinable;
static atomic_int	 scan_stop;
static atomic_ulong	 scan_files, scan_dirs, scan_conflicts;
static atomic_long	 scan_started, scan_finished;
static atomic_int	 scan_error;
/* A scan and a migration never run at once: each would see the other's
 * half-done work as a change behind dfs's back. */
static pthread_mutex_t	 scan_tree_mtx = PTHREAD_MUTEX_INITIALIZER;

/* Called when a scan completes: the worker, above, waits for one. */
static void	(*scan_done_hook)(void);

void
scan_set_done_hook(void (*hook)(void))
{
	scan_done_hook = hook;
}

void
scan_hold(void)
{
	pthread_mutex_lock(&scan_tree_mtx);
}

void
scan_release(void)
{
	pthread_mutex_unlock(&scan_tree_mtx);
}

static int
scan_cmp(const void *a, const void *b)
{
	const struct dirent_m	*x = a, *y = b;
	int			 c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return (c);
	return (x->tier - y->tier);
}

/*
 * What the kernel may cache wrongly after a scan: files changed behind
 * dfs's back, names that now are another file or none, and names it may
 * have been told did not exist.  It is told once the
 * scan is over and holds nothing: a notification waits for the
 * directory's lock, which a lookup holds while it waits for the index or
 * a migration.
 */
static struct {
	fuse_ino_t	*ids;
	size_t		 nids, capids;
	struct name_at	*names;
	size_t		 nnames, capnames;
} scan_stale;

static void
scan_note(fuse_ino_t parent, const char *name, fuse_ino_t id,
    enum index_seen seen)
{
	struct name_at		*sn;

	if (seen == INDEX_SEEN_CHANGED &&
	    array_grow(&scan_stale.ids, &scan_stale.capids,
	    scan_stale.nids + 1, sizeof *scan_stale.ids) == 0)
		scan_stale.ids[scan_stale.nids++] = id;
	if ((seen == INDEX_SEEN_REPLACED || seen == INDEX_SEEN_NEW) &&
	    array_grow(&scan_stale.names, &scan_stale.capnames,
	    scan_stale.nnames + 1, sizeof *scan_stale.names) == 0) {
		sn = &scan_stale.names[scan_stale.nnames];
		if ((sn->name = strdup(name)) != NULL) {
			sn->parent = parent;
			scan_stale.nnames++;
		}
	}
}

/* A name the sweep removed: the kernel may still hold it. */
static void
scan_gone(fuse_ino_t parent, const char *name)
{
	scan_note(parent, name, 0, INDEX_SEEN_REPLACED);
}

static void
scan_tell_kernel(void)
{
	size_t	i;

	for (i = 0; i < scan_stale.nids; i++)
		node_inval(scan_stale.ids[i], 0, 0);
	for (i = 0; i < scan_stale.nnames; i++) {
		node_inval_entry(scan_stale.names[i].parent,
		    scan_stale.names[i].name);
		free(scan_stale.names[i].name);
	}
	free(scan_stale.ids);
	free(scan_stale.names);
	memset(&scan_stale, 0, sizeof scan_stale);
}

/* Scan directory id, open on the tiers whose fds are >= 0. */
static int
scan_dir(fuse_ino_t id, const int *fds)
{
	struct dirlist	 l = { .strays = 1 };
	struct stat	 st;
	struct dirent_m	*e;
	fuse_ino_t	 cid;
	enum index_seen	 seen;
	size_t		 i, j, k;
	unsigned	 mask;
	int		 cfds[DFS_MAX_TIERS], t, rv = 0;

	atomic_fetch_add(&scan_dirs, 1);
	for (t = 0; t < dfs.ntiers; t++)
		if (fds[t] >= 0 && (rv = tier_list(t, fds[t], &l)) != 0)
			goto out;
	if (l.n > 1)
		qsort(l.ents, l.n, sizeof *l.ents, scan_cmp);
	for (i = 0; i < l.n && rv == 0; i = j) {
		if (atomic_load(&scan_stop)) {
			rv = -EINTR;
			break;
		}
		e = &l.ents[i];
		for (j = i + 1; j < l.n && strcmp(l.ents[j].name, e->name) ==
		    0; j++)
			;
		/*
		 * A name on several tiers is served from the one the index
		 * gives it, as lookups do; the fastest only if it gives none.
		 */
		if (j - i > 1 && (t = index_scan_tier(id, e->name)) >= 0) {
			for (k = i; k < j; k++)
				if (l.ents[k].tier == t)
					break;
			if (k < j && k != i) {
				struct dirent_m	tmp = l.ents[i];

				l.ents[i] = l.ents[k];
				l.ents[k] = tmp;
				e = &l.ents[i];
			}
		}
		rv = tier_fstatat(e->tier, fds[e->tier], e->name, &st);
		if (rv == -ENOENT) {
			rv = 0;		/* gone since the listing */
			continue;
		}
		if (rv != 0)
			break;
		mask = 0;
		for (t = 0; t < dfs.ntiers; t++)
			cfds[t] = -1;
		if (S_ISDIR(st.st_mode)) {
			for (; i < j; i++) {
				t = l.ents[i].tier;
				cfds[t] = tier_openat(t, fds[t], e->name,
				    O_PATH | O_DIRECTORY, 0);
				if (cfds[t] >= 0)
					mask |= 1u << t;
				else {
					cfds[t] = -1;
					index_scan_conflict(id, e->name, t);
					atomic_fetch_add(&scan_conflicts, 1);
				}
			}
		} else {
			/* Slower copies of a name are conflicts, kept as they are. */
			for (i++; i < j; i++) {
				index_scan_conflict(id, e->name,
				    l.ents[i].tier);
				atomic_fetch_add(&scan_conflicts, 1);
				log_warn("conflict: %s on tier %s is shadowed "
				    "by tier %s", e->name,
				    dfs.tiers[l.ents[i].tier].name,
				    dfs.tiers[e->tier].name);
			}
			atomic_fetch_add(&scan_files, 1);
		}
		rv = index_scan_entry(id, e->name, e->tier, mask, &st, &cid,
		    &seen);
		if (rv == 0 && seen != INDEX_SEEN_SAME &&
		    seen != INDEX_SEEN_FIRST)
			scan_note(id, e->name, cid, seen);
		if (rv == 0 && mask != 0)
			rv = scan_dir(cid, cfds);
		for (t = 0; t < dfs.ntiers; t++)
			if (cfds[t] >= 0)
				close(cfds[t]);
	}
out:
	dirlist_free(&l);
	return (rv);
}

static void *
scan_main(void *arg)
{
	sigset_t	 set;
	char		*cause = NULL;
	int		 fds[DFS_MAX_TIERS], t, rv;
	unsigned	 all = 0;

	(void)arg;
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (t = 0; t < dfs.ntiers; t++) {
		fds[t] = dfs.tiers[t].fd;
		all |= 1u << t;
	}
	scan_hold();
	if (index_scan_begin(all, &cause) != 0) {
		log_error("%s", cause);
		free(cause);
		rv = -EIO;
	} else {
		rv = scan_dir(FUSE_ROOT_ID, fds);
		if (index_scan_end(rv == 0, scan_gone) != 0 && rv == 0)
			rv = -EIO;
	}
	scan_release();
	scan_tell_kernel();
	atomic_store(&scan_error, -rv);
	atomic_store(&scan_finished, (long)time(NULL));
	if (rv == 0) {
		node_scanned();
		if (scan_done_hook != NULL)
			scan_done_hook();
	}
	if (rv == 0)
		log_info("scan complete: %lu directories, %lu files, %lu "
		    "conflicts", atomic_load(&scan_dirs),
		    atomic_load(&scan_files), atomic_load(&scan_conflicts));
	else
		log_error("scan failed: %s", strerror(-rv));
	pthread_mutex_lock(&scan_mtx);
	scan_running = 0;
	pthread_mutex_unlock(&scan_mtx);
	return (NULL);
}

/* Start a scan unless one is running.  0, or -EBUSY, or -errno. */
int
scan_start(void)
{
	pthread_attr_t	attr;
	int		rv;

	pthread_mutex_lock(&scan_mtx);
	if (scan_running) {
		pthread_mutex_unlock(&scan_mtx);
		return (-EBUSY);
	}
	if (scan_joinable)
		pthread_join(scan_thread, NULL);
	scan_joinable = 0;
	atomic_store(&scan_stop, 0);
	atomic_store(&scan_files, 0);
	atomic_store(&scan_dirs, 0);
	atomic_store(&scan_conflicts, 0);
	atomic_store(&scan_started, (long)time(NULL));
	atomic_store(&scan_finished, 0);
	pthread_attr_init(&attr);
	/* The walk recurses once per directory level. */
	pthread_attr_setstacksize(&attr, 64 * 1024 * 1024);
	rv = pthread_create(&scan_thread, &attr, scan_main, NULL);
	pthread_attr_destroy(&attr);
	if (rv == 0)
		scan_running = scan_joinable = 1;
	pthread_mutex_unlock(&scan_mtx);
	return (-rv);
}

void
scan_shutdown(void)
{
	atomic_store(&scan_stop, 1);
	pthread_mutex_lock(&scan_mtx);
	if (scan_joinable) {
		pthread_mutex_unlock(&scan_mtx);
		pthread_join(scan_thread, NULL);
		pthread_mutex_lock(&scan_mtx);
		scan_joinable = 0;
	}
	pthread_mutex_unlock(&scan_mtx);
}

void
scan_progress(struct scan_progress *p)
{
	pthread_mutex_lock(&scan_mtx);
	p->running = scan_running;
	pthread_mutex_unlock(&scan_mtx);
	p->complete = index_is_scanned();
	p->files = atomic_load(&scan_files);
	p->dirs = atomic_load(&scan_dirs);
	p->conflicts = atomic_load(&scan_conflicts);
	p->started = atomic_load(&scan_started);
	p->finished = atomic_load(&scan_finished);
	p->error = atomic_load(&scan_error);
}
