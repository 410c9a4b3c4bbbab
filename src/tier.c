/*
 * Tiers: the only code that touches backing storage.  Every access is an
 * *at() call relative to a tier's root handle or a directory handle opened
 * beneath it, never following a symlink; each call is counted per tier.
 */
#include "config.h"

#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

struct dfs	dfs;

static char	*tier_real[DFS_MAX_TIERS];

/* Open a tier's root and check it does not repeat another one. */
int
tier_add(const char *name, const char *path, char **cause)
{
	struct tier	*t;
	struct stat	 st;
	char		*real;
	int		 fd, i;

	if (dfs.ntiers == DFS_MAX_TIERS) {
		asprintf(cause, "tier %s: too many tiers (at most %d)", path,
		    DFS_MAX_TIERS);
		return (-1);
	}
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOTDIR)
			asprintf(cause, "tier %s: not a directory", path);
		else
			asprintf(cause, "tier %s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1 || (real = realpath(path, NULL)) == NULL) {
		asprintf(cause, "tier %s: %s", path, strerror(errno));
		close(fd);
		return (-1);
	}
	for (i = 0; i < dfs.ntiers; i++) {
		if (dfs.tiers[i].dev == st.st_dev &&
		    dfs.tiers[i].ino == st.st_ino) {
			asprintf(cause, "tier %s: same directory as tier %s",
			    path, dfs.tiers[i].path);
			goto fail;
		}
		if (name != NULL && strcmp(dfs.tiers[i].name, name) == 0) {
			asprintf(cause, "tier %s: duplicate tier name \"%s\"",
			    path, name);
			goto fail;
		}
	}
	t = &dfs.tiers[dfs.ntiers];
	memset(t, 0, sizeof *t);
	t->fd = fd;
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->path = strdup(path);
	if (name != NULL)
		t->name = strdup(name);
	else
		asprintf(&t->name, "tier%d", dfs.ntiers);
	atomic_store(&t->min_free_ppm, DFS_MIN_FREE_PPM);
	tier_real[dfs.ntiers] = real;
	dfs.ntiers++;
	return (0);

fail:
	free(real);
	close(fd);
	return (-1);
}

#define TIER_FUSE_MAGIC	0x65735546	/* statfs f_type of any FUSE mount */

/* statfs f_type of file systems whose every call goes over a network. */
static const long tier_remote_magic[] = {
	TIER_FUSE_MAGIC,	/* sshfs, s3fs, rclone, ... */
	0x6969,			/* NFS */
	0xff534d42,		/* CIFS */
	0xfe534d42,		/* SMB2 */
	0x517b,			/* SMB */
	0x01021997,		/* 9P */
	0x00c36400,		/* Ceph */
};

static const char *const tier_caps[] = {
	"rename_noreplace", "rename_exchange", "hardlinks", "nlink",
	"xattrs", "stable_inodes", "ns_times"
};

/* The name of one TIER_CAP_* bit, for logs and dfsctl; NULL past the last. */
const char *
tier_cap_name(unsigned cap)
{
	unsigned	i;

	for (i = 0; i < sizeof tier_caps / sizeof tier_caps[0]; i++)
		if (cap == 1u << i)
			return (tier_caps[i]);
	return (NULL);
}

int
tier_has(int t, unsigned cap)
{
	return ((dfs.tiers[t].caps & cap) == cap);
}

int
tier_remote(int t)
{
	return (dfs.tiers[t].remote);
}

/*
 * The file system type of tier t as mountinfo gives it ("fuse.sshfs"),
 * found by the root's device; *noserverino says whether an SMB mount
 * makes up its inode numbers.
 */
static void
tier_mountinfo(int t, int *noserverino)
{
	struct tier	*tr = &dfs.tiers[t];
	FILE		*f;
	char		 line[PATH_MAX * 2 + 512], type[32], *p;
	unsigned	 maj, min;

	*noserverino = 0;
	snprintf(tr->fstype, sizeof tr->fstype, "?");
	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%*d %*d %u:%u", &maj, &min) != 2 ||
		    makedev(maj, min) != tr->dev ||
		    (p = strstr(line, " - ")) == NULL ||
		    sscanf(p + 3, "%31s", type) != 1)
			continue;
		/* The last mount of the device is the one on top. */
		snprintf(tr->fstype, sizeof tr->fstype, "%s", type);
		*noserverino = strstr(p, "noserverino") != NULL;
	}
	fclose(f);
}

/*
 * Find out what tier t's file system supports, on private names under
 * its root (hidden from clients, removed after): rename flags, hard
 * links and whether st_nlink counts them, user xattrs, nanosecond times.
 * Inode numbers cannot be tested in a moment: FUSE file systems (sshfs,
 * s3fs, rclone) make them up and renumber a file once the kernel forgets
 * it, as SMB does with noserverino; inodes (enum dfs_stable_inodes)
 * overrides the guess.  A tier dfs cannot write to is taken to have none
 * of what was to be tried.
 */
void
tier_probe(int t, int inodes)
{
	static const char	 val[] = "1";
	struct tier		*tr = &dfs.tiers[t];
	struct statfs		 sf;
	struct stat		 sa, sc, root;
	struct timespec		 ts[2] = { { 1, 123456789 }, { 1, 123456789 } };
	char			 a[64], b[64], c[64], px[PATH_MAX];
	const char		*env;
	size_t			 len;
	unsigned		 i;
	int			 fd, nsi, unstable;

	tr->caps = 0;
	tier_mountinfo(t, &nsi);
	tr->magic = fstatfs(tr->fd, &sf) == 0 ? (long)sf.f_type : 0;
	unstable = nsi || tr->magic == TIER_FUSE_MAGIC;
	tr->remote = 0;
	for (i = 0; i < sizeof tier_remote_magic / sizeof tier_remote_magic[0];
	    i++)
		/* f_type is 32 bits, sign-extended on some ABIs */
		if ((uint32_t)tr->magic == (uint32_t)tier_remote_magic[i])
			tr->remote = 1;
	if ((env = getenv("DFS_NO_PROBE")) != NULL && *env != '\0') {
		/* Tests only: the tier as dfs took every tier before it probed. */
		tr->caps = TIER_CAP_ALL;
		log_info("tier %s (%s, %s): not probed (DFS_NO_PROBE)",
		    tr->name, tr->path, tr->fstype);
		return;
	}
	snprintf(a, sizeof a, "%sprobe.%ld.a", DFS_TMP_PREFIX, (long)getpid());
	snprintf(b, sizeof b, "%sprobe.%ld.b", DFS_TMP_PREFIX, (long)getpid());
	snprintf(c, sizeof c, "%sprobe.%ld.c", DFS_TMP_PREFIX, (long)getpid());
	/* The probe must not look like a change to the tree's root. */
	if (fstat(tr->fd, &root) == -1)
		root.st_mtim.tv_nsec = UTIME_OMIT;
	unlinkat(tr->fd, a, 0);
	unlinkat(tr->fd, b, 0);
	unlinkat(tr->fd, c, 0);
	if ((fd = openat(tr->fd, a, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1 || close(fd) == -1 ||
	    (fd = openat(tr->fd, b, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1 || close(fd) == -1) {
		log_warn("tier %s (%s): cannot try what it supports: %s; "
		    "assuming no rename flags, hard links nor xattrs",
		    tr->name, tr->path, strerror(errno));
		goto out;
	}
	/*
	 * Onto a free name: the kernel answers EEXIST for a name in the way
	 * itself, before the file system sees the flag.
	 */
	if (renameat2(tr->fd, a, tr->fd, c, RENAME_NOREPLACE) == 0 &&
	    renameat2(tr->fd, c, tr->fd, a, RENAME_NOREPLACE) == 0)
		tr->caps |= TIER_CAP_NOREPLACE;
	if (renameat2(tr->fd, a, tr->fd, b, RENAME_EXCHANGE) == 0)
		tr->caps |= TIER_CAP_EXCHANGE;
	if (linkat(tr->fd, a, tr->fd, c, 0) == 0) {
		tr->caps |= TIER_CAP_LINK;
		if (fstatat(tr->fd, a, &sa, AT_SYMLINK_NOFOLLOW) == 0 &&
		    fstatat(tr->fd, c, &sc, AT_SYMLINK_NOFOLLOW) == 0 &&
		    sa.st_nlink == 2 && sc.st_nlink == 2)
			tr->caps |= TIER_CAP_NLINK;
	}
	snprintf(px, sizeof px, "/proc/self/fd/%d/%s", tr->fd, a);
	if (lsetxattr(px, "user.dfs-probe", val, 1, 0) == 0)
		tr->caps |= TIER_CAP_XATTR;
	if (utimensat(tr->fd, a, ts, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatat(tr->fd, a, &sa, AT_SYMLINK_NOFOLLOW) == 0 &&
	    sa.st_mtim.tv_nsec == ts[1].tv_nsec)
		tr->caps |= TIER_CAP_NSEC;
out:
	unlinkat(tr->fd, a, 0);
	unlinkat(tr->fd, b, 0);
	unlinkat(tr->fd, c, 0);
	if (root.st_mtim.tv_nsec != UTIME_OMIT) {
		ts[0] = root.st_atim;
		ts[1] = root.st_mtim;
		tier_procpath(tr->fd, px, sizeof px);
		utimensat(AT_FDCWD, px, ts, 0);
	}
	tr->inodes_set = inodes != DFS_INODES_AUTO;
	if (inodes == DFS_INODES_STABLE ||
	    (inodes == DFS_INODES_AUTO && !unstable))
		tr->caps |= TIER_CAP_STABLE_INO;
	for (i = 0, len = 0; tier_cap_name(1u << i) != NULL; i++)
		if (!(tr->caps & (1u << i)) && len < sizeof px)
			len += snprintf(px + len, sizeof px - len, "%s%s",
			    len == 0 ? "" : ", ", tier_cap_name(1u << i));
	log_info("tier %s (%s, %s): lacks %s%s", tr->name, tr->path,
	    tr->fstype, len == 0 ? "nothing" : px, tr->inodes_set ?
	    " (stable_inodes set in the config)" : "");
}

/*
 * Is st, found at a file's name on tier t, the file recorded with this
 * backing identity?  On a tier that renumbers its files, the identity
 * is only a hint: the name says which file it is.
 */
int
tier_same_file(int t, const struct stat *st, uint64_t dev, uint64_t ino)
{
	return (!tier_has(t, TIER_CAP_STABLE_INO) ||
	    ((uint64_t)st->st_dev == dev && (uint64_t)st->st_ino == ino));
}

/* Does st's mtime on tier t show the time ns, as precisely as t keeps it? */
int
tier_same_mtime(int t, const struct stat *st, int64_t ns)
{
	if (tier_has(t, TIER_CAP_NSEC))
		return ((int64_t)st->st_mtim.tv_sec * 1000000000 +
		    st->st_mtim.tv_nsec == ns);
	return ((int64_t)st->st_mtim.tv_sec == ns / 1000000000);
}

/* Is b equal to a or beneath it? */
static int
tier_beneath(const char *a, const char *b)
{
	size_t	len = strlen(a);

	if (strcmp(a, "/") == 0)
		return (1);
	return (strncmp(a, b, len) == 0 && (b[len] == '/' || b[len] == '\0'));
}

/* No tier inside another, no mount point inside a tier, or the reverse. */
int
tier_check_layout(const char *mountpoint, char **cause)
{
	char	*mnt;
	int	 i, j;

	if (dfs.ntiers < 2) {
		asprintf(cause, "at least two tiers are needed, %d given",
		    dfs.ntiers);
		return (-1);
	}
	for (i = 0; i < dfs.ntiers; i++) {
		for (j = 0; j < dfs.ntiers; j++) {
			if (i != j && tier_beneath(tier_real[i],
			    tier_real[j])) {
				asprintf(cause, "tier %s is inside tier %s",
				    dfs.tiers[j].path, dfs.tiers[i].path);
				return (-1);
			}
		}
	}
	if ((mnt = realpath(mountpoint, NULL)) == NULL) {
		asprintf(cause, "mount point %s: %s", mountpoint,
		    strerror(errno));
		return (-1);
	}
	for (i = 0; i < dfs.ntiers; i++) {
		if (tier_beneath(tier_real[i], mnt)) {
			asprintf(cause, "mount point %s is inside tier %s",
			    mountpoint, dfs.tiers[i].path);
			goto fail;
		}
		if (tier_beneath(mnt, tier_real[i])) {
			asprintf(cause, "tier %s is inside mount point %s",
			    dfs.tiers[i].path, mountpoint);
			goto fail;
		}
	}
	free(mnt);
	return (0);
fail:
	free(mnt);
	return (-1);
}

/*
 * Each tier's watcher: a thread that makes the statvfs calls dfsctl status
 * asks for, on a handle of its own, so that a tier that hangs (a stopped
 * NFS or sshfs server) holds only its watcher.  Askers wait a bound and
 * read the last answer; a watcher stuck in a call is left to it, and
 * frees itself when the call returns.
 */
struct tier_watch {
	int			 fd;
	int			 stop;
	uint64_t		 asked;		/* calls wanted */
	uint64_t		 started;	/* calls begun */
	uint64_t		 done;		/* calls answered */
	int			 busy;		/* a call in progress */
	struct timespec		 since;		/* when it began */
	struct tier_space	 last;
};

static pthread_mutex_t		 tier_watch_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 tier_watch_cv;		/* to the watchers */
static pthread_cond_t		 tier_watch_done_cv;	/* to the askers */
static int			 tier_watch_cv_ready;
static struct tier_watch	*tier_watch[DFS_MAX_TIERS];

static void
tier_space_of(const struct statvfs *sv, struct tier_space *sp)
{
	uint64_t	frsize;

	frsize = sv->f_frsize != 0 ? sv->f_frsize : sv->f_bsize;
	sp->total = (uint64_t)sv->f_blocks * frsize;
	sp->used = (uint64_t)(sv->f_blocks - sv->f_bfree) * frsize;
	sp->avail = (uint64_t)sv->f_bavail * frsize;
	sp->percent = 0;
	if (sp->used + sp->avail != 0)
		sp->percent = (sp->used * 100 + sp->used + sp->avail - 1) /
		    (sp->used + sp->avail);
}

static void *
tier_watch_main(void *arg)
{
	struct tier_watch	*w = arg;
	struct tier_space	 sp;
	struct statvfs		 sv;

	pthread_mutex_lock(&tier_watch_mtx);
	for (;;) {
		while (!w->stop && w->started >= w->asked)
			pthread_cond_wait(&tier_watch_cv, &tier_watch_mtx);
		if (w->stop)
			break;
		w->started = w->asked;
		w->busy = 1;
		clock_gettime(CLOCK_MONOTONIC, &w->since);
		pthread_mutex_unlock(&tier_watch_mtx);

		memset(&sp, 0, sizeof sp);
		sp.known = 1;
		sp.waiting = -1;
		if (fstatvfs(w->fd, &sv) == -1)
			sp.error = errno;
		else
			tier_space_of(&sv, &sp);

		pthread_mutex_lock(&tier_watch_mtx);
		w->busy = 0;
		w->done = w->started;
		w->last = sp;
		pthread_cond_broadcast(&tier_watch_done_cv);
	}
	pthread_mutex_unlock(&tier_watch_mtx);
	close(w->fd);
	free(w);
	return (NULL);
}

/* Tier t's watcher, started on first use; tier_watch_mtx is held. */
static struct tier_watch *
tier_watch_get(int t)
{
	struct tier_watch	*w;
	pthread_condattr_t	 a;
	pthread_t		 thread;
	sigset_t		 set, old;
	int			 rv;

	if (tier_watch[t] != NULL)
		return (tier_watch[t]);
	if (!tier_watch_cv_ready) {
		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&tier_watch_done_cv, &a);
		pthread_cond_init(&tier_watch_cv, &a);
		pthread_condattr_destroy(&a);
		tier_watch_cv_ready = 1;
	}
	if ((w = calloc(1, sizeof *w)) == NULL)
		return (NULL);
	w->last.waiting = -1;
	if ((w->fd = fcntl(dfs.tiers[t].fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		free(w);
		return (NULL);
	}
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	rv = pthread_create(&thread, NULL, tier_watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv != 0) {
		log_warn("tier %s: watcher: %s", dfs.tiers[t].name,
		    strerror(rv));
		close(w->fd);
		free(w);
		return (NULL);
	}
	pthread_detach(thread);
	tier_watch[t] = w;
	return (w);
}

static void
tier_watch_stop(void)
{
	int	t;

	pthread_mutex_lock(&tier_watch_mtx);
	for (t = 0; t < DFS_MAX_TIERS; t++) {
		if (tier_watch[t] != NULL)
			tier_watch[t]->stop = 1;
		tier_watch[t] = NULL;
	}
	if (tier_watch_cv_ready)
		pthread_cond_broadcast(&tier_watch_cv);
	pthread_mutex_unlock(&tier_watch_mtx);
}

/*
 * Every tier's space and health: fresh answers where they come within ms
 * milliseconds, else the last one with how long the tier has not been
 * answering.  Never waits longer than ms, whatever the tiers do.
 */
void
tier_space(struct tier_space *sp, int ms)
{
	struct tier_watch	*w[DFS_MAX_TIERS];
	struct timespec		 now, end;
	uint64_t		 want[DFS_MAX_TIERS];
	int			 t, waiting;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&tier_watch_mtx);
	for (t = 0; t < dfs.ntiers; t++) {
		if ((w[t] = tier_watch_get(t)) == NULL)
			continue;
		/* A call in progress began before this question. */
		want[t] = w[t]->started + 1;
		if (w[t]->asked < want[t])
			w[t]->asked = want[t];
	}
	pthread_cond_broadcast(&tier_watch_cv);
	for (;;) {
		waiting = 0;
		for (t = 0; t < dfs.ntiers; t++)
			if (w[t] != NULL && w[t]->done < want[t])
				waiting = 1;
		if (!waiting || pthread_cond_timedwait(&tier_watch_done_cv,
		    &tier_watch_mtx, &end) == ETIMEDOUT)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (t = 0; t < dfs.ntiers; t++) {
		if (w[t] == NULL) {
			memset(&sp[t], 0, sizeof sp[t]);
			sp[t].known = 1;
			sp[t].error = ENOMEM;
			sp[t].waiting = -1;
			continue;
		}
		sp[t] = w[t]->last;
		if (w[t]->done < want[t])
			sp[t].waiting = w[t]->busy ?
			    now.tv_sec - w[t]->since.tv_sec : 0;
	}
	pthread_mutex_unlock(&tier_watch_mtx);
}

void
tier_close_all(void)
{
	int	i;

	tier_watch_stop();
	for (i = 0; i < dfs.ntiers; i++) {
		close(dfs.tiers[i].fd);
		free(dfs.tiers[i].name);
		free(dfs.tiers[i].path);
		free(tier_real[i]);
		tier_real[i] = NULL;
	}
	dfs.ntiers = 0;
}

void
tier_count(int t, atomic_uint_fast64_t *c, uint64_t n)
{
	(void)t;
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/*
 * Is err an answer a client gets in normal use (no such file, exists, not
 * empty, permission), rather than a failure of the tier?
 */
int
tier_is_answer(int err)
{
	switch (err) {
	case ENOENT:
	case EEXIST:
	case ENOTEMPTY:
	case EACCES:
	case EPERM:
	case ENOTDIR:
	case EISDIR:
	case ENAMETOOLONG:
	case ENODATA:
	case ERANGE:
	case EOPNOTSUPP:
	case EINVAL:
	case ELOOP:
	case EXDEV:
		return (1);
	default:
		return (0);
	}
}

/*
 * Account a failed call and log it with its context.  Answers a client
 * gets in normal use are logged at debug level only and are not the
 * tier's errors.  Returns -err.
 */
int
tier_error(int t, const char *op, const char *name, int err)
{
	if (err == ENOENT)
		return (-err);
	if (tier_is_answer(err)) {
		log_debug("tier %s: %s %s: %s", dfs.tiers[t].name, op,
		    name != NULL ? name : "", strerror(err));
		return (-err);
	}
	/* Only these count as the tier's errors in dfsctl stats. */
	log_warn("tier %s: %s %s: %s", dfs.tiers[t].name, op,
	    name != NULL ? name : "", strerror(err));
	tier_count(t, &dfs.tiers[t].stats.errors, 1);
	return (-err);
}

static _Thread_local struct tier_track	*tier_tracked;

/* Calls from this thread are watched through tk (NULL: no longer). */
void
tier_track(struct tier_track *tk)
{
	tier_tracked = tk;
}

/* From the config, or the default for tiers given on the command line. */
void
tier_set_timeouts(const struct dfs_config *conf)
{
	double	s;
	int	t;

	for (t = 0; t < dfs.ntiers; t++) {
		s = conf != NULL && t < conf->ntiers ? conf->tiers[t].timeout :
		    DFS_TIER_TIMEOUT;
		atomic_store(&dfs.tiers[t].timeout_ms, (long long)(s * 1000));
	}
}

long long
tier_now_ms(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

/*
 * Before a call a client waits on: while calls given up on are still out
 * on the tier, it does not answer, and this call fails at once rather
 * than hold one more thread.
 */
static int
tier_call_begin(int t, const char *op, const char *name)
{
	if (tier_tracked == NULL)
		return (0);
	if (atomic_load(&dfs.tiers[t].stuck) > 0)
		return (tier_error(t, op, name, ETIMEDOUT));
	atomic_store(&tier_tracked->since, tier_now_ms());
	atomic_store(&tier_tracked->tier, t);
	return (0);
}

static void
tier_call_end(void)
{
	if (tier_tracked != NULL)
		atomic_store(&tier_tracked->tier, -1);
}

/* A syscall's result as 0 (or the value) or -errno, errors accounted. */
static inline int
TIER_RET(int t, int rv, const char *op, const char *name)
{
	return (rv == -1 ? tier_error(t, op, name, errno) : rv);
}

int
tier_fstatat(int t, int dirfd, const char *name, struct stat *st)
{
	int	rv;

	tier_count(t, &dfs.tiers[t].stats.lookup, 1);
	if ((rv = tier_call_begin(t, "stat", name)) != 0)
		return (rv);
	rv = fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH);
	tier_call_end();
	return (TIER_RET(t, rv, "stat", name));
}

/* Returns a new fd or -errno.  Never follows a symlink. */
int
tier_openat(int t, int dirfd, const char *name, int flags, mode_t mode)
{
	int	fd;

	tier_count(t, (flags & O_CREAT) ? &dfs.tiers[t].stats.create :
	    (flags & O_PATH) ? &dfs.tiers[t].stats.lookup :
	    &dfs.tiers[t].stats.open, 1);
	if ((fd = tier_call_begin(t, "open", name)) != 0)
		return (fd);
	fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	tier_call_end();
	return (TIER_RET(t, fd, "open", name));
}

int
tier_mkdirat(int t, int dirfd, const char *name, mode_t mode)
{
	tier_count(t, &dfs.tiers[t].stats.create, 1);
	return (TIER_RET(t, mkdirat(dirfd, name, mode), "mkdir", name));
}

int
tier_mknodat(int t, int dirfd, const char *name, mode_t mode, dev_t rdev)
{
	tier_count(t, &dfs.tiers[t].stats.create, 1);
	return (TIER_RET(t, mknodat(dirfd, name, mode, rdev), "mknod", name));
}

int
tier_symlinkat(int t, const char *target, int dirfd, const char *name)
{
	tier_count(t, &dfs.tiers[t].stats.create, 1);
	return (TIER_RET(t, symlinkat(target, dirfd, name), "symlink", name));
}

int
tier_linkat(int t, int olddirfd, const char *oldname, int newdirfd,
    const char *newname)
{
	tier_count(t, &dfs.tiers[t].stats.create, 1);
	return (TIER_RET(t, linkat(olddirfd, oldname, newdirfd, newname, 0),
	    "link", newname));
}

int
tier_unlinkat(int t, int dirfd, const char *name, int flags)
{
	tier_count(t, &dfs.tiers[t].stats.unlink, 1);
	return (TIER_RET(t, unlinkat(dirfd, name, flags),
	    (flags & AT_REMOVEDIR) ? "rmdir" : "unlink", name));
}

/*
 * renameat2 with the flags the tier takes.  Without RENAME_NOREPLACE (the
 * NFS client, sshfs, s3fs and any FUSE file system without rename2 answer
 * EINVAL), the target is checked to be free and a plain rename follows:
 * dfs owns the names on its tiers, and every caller holds off clients
 * from the target name (the kernel's lock on a client's rename, or the
 * hold a migration has on the file whose name it is).  Link and unlink
 * would be atomic but leave a moment with two names, and an open source
 * behind as .nfsXXXX or .fuse_hidden for clients to see.  No
 * RENAME_EXCHANGE: EINVAL, as the file system would answer.
 */
int
tier_renameat2(int t, int olddirfd, const char *oldname, int newdirfd,
    const char *newname, unsigned flags)
{
	struct stat	st;

	tier_count(t, &dfs.tiers[t].stats.rename, 1);
	if ((flags & RENAME_EXCHANGE) && !tier_has(t, TIER_CAP_EXCHANGE))
		return (tier_error(t, "rename (exchange)", oldname, EINVAL));
	if ((flags & RENAME_NOREPLACE) && !tier_has(t, TIER_CAP_NOREPLACE)) {
		if (fstatat(newdirfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return (tier_error(t, "rename", newname, EEXIST));
		if (errno != ENOENT)
			return (tier_error(t, "rename", newname, errno));
		flags &= ~RENAME_NOREPLACE;
	}
	return (TIER_RET(t, renameat2(olddirfd, oldname, newdirfd, newname,
	    flags), "rename", oldname));
}

/* Returns the length read or -errno. */
int
tier_readlinkat(int t, int dirfd, const char *name, char *buf, size_t len)
{
	ssize_t	n;

	tier_count(t, &dfs.tiers[t].stats.lookup, 1);
	n = readlinkat(dirfd, name, buf, len);
	return (n == -1 ? tier_error(t, "readlink", name, errno) : (int)n);
}

int
tier_fchownat(int t, int dirfd, const char *name, uid_t uid, gid_t gid)
{
	tier_count(t, &dfs.tiers[t].stats.setattr, 1);
	return (TIER_RET(t, fchownat(dirfd, name, uid, gid,
	    AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH), "chown", name));
}

int
tier_fchmodat(int t, int dirfd, const char *name, mode_t mode)
{
	char	proc[64];
	int	fd, rv;

	tier_count(t, &dfs.tiers[t].stats.setattr, 1);
	if (*name == '\0') {
		/* An O_PATH handle: chmod through its /proc name. */
		tier_procpath(dirfd, proc, sizeof proc);
		return (TIER_RET(t, chmod(proc, mode), "chmod", name));
	}
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return (tier_error(t, "chmod", name, errno));
	tier_procpath(fd, proc, sizeof proc);
	rv = chmod(proc, mode);
	if (rv == -1)
		rv = tier_error(t, "chmod", name, errno);
	close(fd);
	return (rv);
}

int
tier_utimensat(int t, int dirfd, const char *name, const struct timespec *ts)
{
	tier_count(t, &dfs.tiers[t].stats.setattr, 1);
	if (*name == '\0') {
		char	proc[64];

		tier_procpath(dirfd, proc, sizeof proc);
		return (TIER_RET(t, utimensat(AT_FDCWD, proc, ts, 0),
		    "utimens", name));
	}
	return (TIER_RET(t, utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW),
	    "utimens", name));
}

int
tier_statfs(int t, struct statvfs *sv)
{
	int	rv;

	if ((rv = tier_call_begin(t, "statfs", "/")) != 0)
		return (rv);
	rv = fstatvfs(dfs.tiers[t].fd, sv);
	tier_call_end();
	return (TIER_RET(t, rv, "statfs", "/"));
}

/* The room tier t keeps for new files: bytes, or a share of its size. */
void
tier_set_min_free(int t, int64_t bytes, int ppm)
{
	atomic_store(&dfs.tiers[t].min_free, bytes);
	atomic_store(&dfs.tiers[t].min_free_ppm, ppm);
}

/* The bytes tier t keeps free for new files, of a tier of total bytes. */
uint64_t
tier_min_free(int t, uint64_t total)
{
	int64_t	bytes = atomic_load(&dfs.tiers[t].min_free);
	int	ppm = atomic_load(&dfs.tiers[t].min_free_ppm);

	if (bytes > 0)
		return ((uint64_t)bytes);
	return ((uint64_t)((double)total * ppm / 1000000));
}

/*
 * Has tier t room for new files: more than its min_free available to
 * dfs (which runs as root, but leaves the root reserve to others)?  1 or
 * 0, with what is available and what must stay free; -errno if the tier
 * cannot say.
 */
int
tier_room(int t, uint64_t *avail, uint64_t *need)
{
	struct statvfs	sv;
	int		rv;

	if ((rv = tier_statfs(t, &sv)) != 0)
		return (rv);
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	*need = tier_min_free(t, (uint64_t)sv.f_blocks * sv.f_frsize);
	/* A tier reporting no size at all (some network ones) has room. */
	if (sv.f_blocks == 0)
		return (1);
	return (*avail > *need);
}

int
tier_procpath(int fd, char *buf, size_t len)
{
	return (snprintf(buf, len, "/proc/self/fd/%d", fd));
}

int
tier_is_private(const char *name)
{
	return (strncmp(name, DFS_TMP_PREFIX, sizeof DFS_TMP_PREFIX - 1) == 0);
}

void
dirlist_free(struct dirlist *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		free(l->ents[i].name);
	free(l->ents);
	l->ents = NULL;
	l->n = 0;
	l->rows = 0;
}

/* Append the entries of one directory of tier t to l (dot entries left out). */
int
tier_list(int t, int dirfd, struct dirlist *l)
{
	struct dirent	*de;
	struct dirent_m	*e;
	DIR		*dp;
	size_t		 cap = l->n;
	int		 fd, rv = 0;

	tier_count(t, &dfs.tiers[t].stats.readdir, 1);
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return (tier_error(t, "opendir", ".", errno));
	if ((dp = fdopendir(fd)) == NULL) {
		rv = tier_error(t, "opendir", ".", errno);
		close(fd);
		return (rv);
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(dp)) == NULL) {
			if (errno != 0)
				rv = tier_error(t, "readdir", ".", errno);
			break;
		}
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (tier_is_private(de->d_name)) {
			/*
			 * The scan runs when no move is under way and after
			 * recovery: a temp file now is a stray.
			 */
			if (l->strays && de->d_type != DT_DIR &&
			    unlinkat(fd, de->d_name, 0) == 0)
				log_info("tier %s: removed stray %s",
				    dfs.tiers[t].name, de->d_name);
			continue;
		}
		if (array_grow(&l->ents, &cap, l->n + 1, sizeof *l->ents) !=
		    0) {
			rv = -ENOMEM;
			break;
		}
		e = &l->ents[l->n];
		if ((e->name = strdup(de->d_name)) == NULL) {
			rv = -ENOMEM;
			break;
		}
		e->type = de->d_type;
		e->tier = t;
		e->ino = de->d_ino;
		e->id = 0;
		l->n++;
	}
	closedir(dp);
	return (rv);
}

/* 0 if the directory is empty on tier t, -ENOTEMPTY if not. */
int
tier_dir_empty(int t, int dirfd)
{
	struct dirlist	l = { .ents = NULL };
	int		rv;

	if ((rv = tier_list(t, dirfd, &l)) != 0)
		return (rv);
	rv = l.n == 0 ? 0 : -ENOTEMPTY;
	dirlist_free(&l);
	return (rv);
}

/*
 * Copy every extended attribute (ACLs included) from one handle to
 * another; both may be O_PATH handles.  Attributes the target refuses
 * (security.* without privilege, a namespace the filesystem lacks) are
 * skipped unless strict is set.
 */
int
tier_copy_xattrs(int srcfd, int dstfd, int strict)
{
	char	 src[64], dst[64], *names = NULL, *name, *val = NULL;
	ssize_t	 len, vlen;
	size_t	 vcap = 0;
	int	 rv = 0;

	tier_procpath(srcfd, src, sizeof src);
	tier_procpath(dstfd, dst, sizeof dst);
	len = listxattr(src, NULL, 0);
	if (len <= 0)
		return (len == -1 && errno != ENOTSUP && strict ? -errno : 0);
	if ((names = malloc(len)) == NULL)
		return (-ENOMEM);
	len = listxattr(src, names, len);
	if (len == -1) {
		rv = -errno;
		goto out;
	}
	for (name = names; name < names + len; name += strlen(name) + 1) {
		vlen = getxattr(src, name, NULL, 0);
		if (vlen == -1)
			continue;
		if ((size_t)vlen > vcap) {
			char	*nv = realloc(val, vlen);

			if (nv == NULL) {
				rv = -ENOMEM;
				goto out;
			}
			val = nv;
			vcap = vlen;
		}
		vlen = getxattr(src, name, val, vlen);
		if (vlen == -1)
			continue;
		if (setxattr(dst, name, val, vlen, 0) == -1 && strict) {
			rv = -errno;
			goto out;
		}
	}
out:
	free(val);
	free(names);
	return (rv);
}

int
tier_ftruncate(int t, int fd, off_t size)
{
	tier_count(t, &dfs.tiers[t].stats.setattr, 1);
	return (TIER_RET(t, ftruncate(fd, size), "truncate", ""));
}

/*
 * Extended attributes through a handle's /proc name, so that O_PATH
 * handles work.  Sizes or 0 on success, -errno on failure.
 */
ssize_t
tier_xattr(int t, int fd, int op, const char *name, void *buf, size_t len,
    int flags)
{
	return (tier_xattr_at(t, fd, NULL, op, name, buf, len, flags));
}

/*
 * Extended attributes of fname in directory dirfd (NULL: of the object
 * dirfd itself, which may be an O_PATH handle), through /proc: one call,
 * never following a symlink at fname.  Sizes or 0, or -errno.
 */
ssize_t
tier_xattr_at(int t, int dirfd, const char *fname, int op, const char *name,
    void *buf, size_t len, int flags)
{
	char	proc[PATH_MAX];
	ssize_t	rv;

	tier_count(t, &dfs.tiers[t].stats.xattr, 1);
	if (fname != NULL)
		snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", dirfd,
		    fname);
	else
		tier_procpath(dirfd, proc, sizeof proc);
	switch (op) {
	case TIER_XATTR_GET:
		rv = fname != NULL ? lgetxattr(proc, name, buf, len) :
		    getxattr(proc, name, buf, len);
		break;
	case TIER_XATTR_SET:
		rv = fname != NULL ? lsetxattr(proc, name, buf, len, flags) :
		    setxattr(proc, name, buf, len, flags);
		break;
	case TIER_XATTR_LIST:
		rv = fname != NULL ? llistxattr(proc, buf, len) :
		    listxattr(proc, buf, len);
		break;
	default:
		rv = fname != NULL ? lremovexattr(proc, name) :
		    removexattr(proc, name);
		break;
	}
	if (rv == -1)
		return (tier_error(t, "xattr", name != NULL ? name : "", errno));
	return (rv);
}
