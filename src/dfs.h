/*
 * dfs: a storage-tiering filesystem.  The one private header: shared
 * structures, then prototypes grouped by the file that defines them.
 */
#ifndef DFS_H
#define DFS_H

#define FUSE_USE_VERSION 314

#include <sys/types.h>
#include <sys/stat.h>

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <fuse_lowlevel.h>

#define DFS_MAX_TIERS	16
/* Seconds the kernel may remember that a name does not exist. */
#define DFS_NEGATIVE_TIMEOUT	1.0

/*
 * Free space a tier keeps for new files unless its config says otherwise:
 * enough that the files already open on it can still grow while new ones
 * go to the next tier.
 */
#define DFS_MIN_FREE_DEFAULT	"2%"
#define DFS_MIN_FREE_PPM	20000

/* Temp files of dfs itself on a tier start with this; never shown to clients. */
#define DFS_TMP_PREFIX	".dfs-tmp."

/* Per-tier counters of the backing calls dfs makes (dfsctl stats). */
struct tier_stats {
	atomic_uint_fast64_t	lookup;		/* fstatat/openat(O_PATH) probes */
	atomic_uint_fast64_t	readdir;	/* directory listings */
	atomic_uint_fast64_t	open;
	atomic_uint_fast64_t	create;		/* files, dirs, nodes, links */
	atomic_uint_fast64_t	unlink;		/* unlink and rmdir */
	atomic_uint_fast64_t	rename;
	atomic_uint_fast64_t	setattr;	/* chmod, chown, utimens, truncate */
	atomic_uint_fast64_t	xattr;
	atomic_uint_fast64_t	bytes_read;
	atomic_uint_fast64_t	bytes_written;
	atomic_uint_fast64_t	errors;		/* calls that failed, ENOENT probes excepted */
};

/*
 * What a tier's file system offers, probed at start (tier_probe): a slow
 * tier is often sshfs, s3fs, NFS or SMB, which lack some of it.
 */
#define TIER_CAP_NOREPLACE	0x01	/* renameat2 RENAME_NOREPLACE */
#define TIER_CAP_EXCHANGE	0x02	/* renameat2 RENAME_EXCHANGE */
#define TIER_CAP_LINK		0x04	/* link(2) */
#define TIER_CAP_NLINK		0x08	/* st_nlink counts a file's names */
#define TIER_CAP_XATTR		0x10	/* user.* extended attributes */
#define TIER_CAP_STABLE_INO	0x20	/* a file keeps its inode number */
#define TIER_CAP_NSEC		0x40	/* times kept to the nanosecond */
#define TIER_CAP_ALL		0x7f

/* stable_inodes in a tier's config: the probe decides, or the operator. */
enum dfs_stable_inodes {
	DFS_INODES_AUTO,
	DFS_INODES_STABLE,
	DFS_INODES_UNSTABLE
};

struct tier {
	char			*name;
	char			*path;		/* as given, for messages */
	int			 fd;		/* O_PATH|O_DIRECTORY root handle */
	dev_t			 dev;
	ino_t			 ino;
	unsigned		 caps;		/* TIER_CAP_* */
	long			 magic;		/* statfs f_type */
	int			 inodes_set;	/* stable_inodes from the config */
	int			 remote;	/* network or FUSE: a call costs a trip */
	char			 fstype[32];	/* as mountinfo names it */
	struct tier_stats	 stats;
	atomic_llong		 timeout_ms;	/* a client waits on it; 0: ever */
	atomic_int		 stuck;		/* calls given up on, still out */
	atomic_int_fast64_t	 min_free;	/* bytes; see tier_room() */
	atomic_int		 min_free_ppm;	/* or of the tier's size */
	atomic_int		 short_room;	/* below min_free when last seen */
};

/*
 * The tier call in progress on a thread serving a client, for the
 * watchdog (op.c) to give up on when the tier does not answer in time.
 */
struct tier_track {
	atomic_int		 tier;		/* in a call to it, or -1 */
	atomic_llong		 since;		/* when it began, ms monotonic */
};

/*
 * A tier's free space and health as its watcher last saw them: a statvfs
 * made by a thread of its own, so that a tier that does not answer costs
 * the asker a bound, not a hang.
 */
struct tier_space {
	int		 known;		/* an answer has come */
	int		 error;		/* errno of the last statvfs, or 0 */
	long		 waiting;	/* s the call in progress has taken, or -1 */
	uint64_t	 total;
	uint64_t	 used;
	uint64_t	 avail;		/* to unprivileged users */
	int		 percent;	/* used / (used + avail), as df */
};

/* Whole-process state of the mount. */
struct dfs {
	struct tier	 tiers[DFS_MAX_TIERS];
	int		 ntiers;
	char		*mountpoint;
	char		*index_path;
	double		 attr_timeout;
	double		 entry_timeout;
	int		 debug;
	atomic_ulong	 client_io;	/* reads and writes served to clients */
};
extern struct dfs dfs;

/*
 * A node is one file or directory of the merged tree, keyed by its node id,
 * which is also its st_ino.  A non-directory lives on exactly one tier and
 * may have several names (hard links); a directory has one name and a handle
 * on every tier it exists on.
 */
#define DIRFD_UNKNOWN	(-2)	/* not probed yet on that tier */
#define DIRFD_ABSENT	(-1)	/* probed: the directory is not on that tier */

struct node;

/* One name of a node: its parent directory and the name in it. */
struct alias {
	struct node	*parent;
	char		*name;
	struct node	*node;
	struct alias	*next;		/* next name of the same node */
};

struct node {
	fuse_ino_t	 id;
	int		 is_dir;
	int		 tier;		/* file: holding tier; dir: attribute tier */
	mode_t		 fmt;		/* S_IFMT bits */
	dev_t		 dev;		/* backing identity (files) */
	ino_t		 ino;
	uint64_t	 nlookup;	/* kernel references */
	unsigned	 refs;		/* dfs references: children, ops in flight */
	struct alias	*aliases;
	int		 fds[DFS_MAX_TIERS];	/* directories only */
	int		*retired;	/* replaced handles, closed at free */
	size_t		 nretired;
	atomic_long	 subdirs;	/* cached count of subdirectories, -1 unknown */
	atomic_uint	 subdirs_gen;	/* bumped by each change of the count */
	struct timespec	 cache_mtime;	/* content seen at last open/release */
	off_t		 cache_size;
	int		 writers;	/* open handles with write access */
	atomic_uint	 wgen;		/* bumped when a write handle closes and
					   after a truncate: content may differ */
	atomic_int	 partial;	/* dir: the index may lack entries */
	int		 tiers_known;	/* dir: fds[] UNKNOWN means present */
	int		 no_seccap;	/* file: has no security.capability */
	atomic_int	 busy;		/* ops reaching the file by name */
	atomic_int	 moving;	/* a migration is switching its tier */
	struct handle	*handles;	/* open files, for a node with no name left */
};

/* Where a name resolved to, before it becomes a node. */
struct probe {
	int		 tier;		/* first tier holding the name */
	struct stat	 st;		/* its attributes there */
	fuse_ino_t	 id;		/* its inode in the index */
	unsigned	 tiers;		/* dir: tiers holding it; 0 unknown */
	int		 partial;	/* dir: the index may lack entries */
};

/* An inode row of the index. */
struct irow {
	fuse_ino_t	 id;
	unsigned	 type;		/* S_IFMT bits */
	int		 tier;
	unsigned	 tiers;
	uint64_t	 dev;
	uint64_t	 ino;
	int64_t		 size;
	int64_t		 mtime;		/* ns */
	int		 partial;	/* dir: entries may be missing */
	int		 pin;
	int64_t		 moved_at;	/* ns; 0 never */
	int64_t		 atime_seen;	/* ns; last access through dfs */
	int64_t		 ctime;		/* ns */
};

/* A move in progress, as the journal records it. */
#define JOURNAL_COPYING		1
#define JOURNAL_SWITCHED	2
struct jrow {
	fuse_ino_t	 id;
	int		 src;
	int		 dst;
	fuse_ino_t	 parent;
	char		 name[NAME_MAX + 1];
	char		 tmp[64];
	uint64_t	 ino;		/* the source's identity */
	int64_t		 size;
	int64_t		 mtime;
	int64_t		 ctime;
	int		 state;
};

/* A move's switch: inode id now lives on tier dst as (dev, ino). */
struct index_switch {
	fuse_ino_t	 id;
	int		 dst;
	uint64_t	 dev;
	uint64_t	 ino;
};

/* Why a migration left a file where it is. */
enum {
	MIG_SKIP_CHANGED = 1,
	MIG_SKIP_WRITERS,
	MIG_SKIP_PINNED,
	MIG_SKIP_CONFLICT,
	MIG_SKIP_LINKS,
	MIG_SKIP_RESIDENCY,
	MIG_SKIP_EXCLUDED,
	MIG_SKIP_LIMIT,
	MIG_SKIP_LONGPATH,
	MIG_SKIP_MAX
};

/* One migration run, for dfsctl status. */
struct mig_run {
	unsigned long	 seq;
	time_t		 started;
	double		 seconds;
	char		 trigger[16];	/* request, interval, watermark */
	unsigned long	 files;
	uint64_t	 bytes;
	unsigned long	 todo;		/* candidates at the start; 0: unknown */
	uint64_t	 todo_bytes;
	unsigned long	 skipped[MIG_SKIP_MAX];
	unsigned long	 errors;
	char		 last_error[PATH_MAX + 128];
};

#define MIG_RUNS	8
struct mig_status {
	int		 running;
	unsigned long	 seq;		/* of the last finished run */
	struct mig_run	 current;
	struct mig_run	 runs[MIG_RUNS];	/* newest first */
	size_t		 nruns;
};

/* A file a run would move, or leaves where it is (skip >= 0). */
struct mig_item {
	fuse_ino_t	 id;
	char		 path[PATH_MAX];
	char		 policy[64];
	char		 why[256];
	int		 from;
	int		 to;
	off_t		 size;
	int64_t		 age;		/* seconds since mtime */
	int		 skip;
};

struct scan_progress {
	int		 running;
	int		 complete;	/* a full scan has completed */
	unsigned long	 files;
	unsigned long	 dirs;
	unsigned long	 conflicts;
	long		 started;
	long		 finished;
	int		 error;
};

/* A merged directory listing entry. */
struct dirent_m {
	char		*name;
	unsigned char	 type;		/* DT_* */
	int		 tier;
	ino_t		 ino;		/* backing inode, for ordering only */
	fuse_ino_t	 id;		/* from the index; 0 unknown */
	/* From the index: the rest of its row, for index_list_row. */
	uint64_t	 rdev;
	uint64_t	 rino;
	unsigned	 rtiers;
	int		 rpartial;
};

struct dirlist {
	struct dirent_m	*ents;
	size_t		 n;
	int		 strays;	/* remove dfs's temp files found (scan) */
	int		 rows;		/* from the index, as of: */
	uint64_t	 changes;	/* the index's count of changes */
	long		 gen;		/* and its scan generation */
};

/* An open file or directory. */
struct handle {
	int		 fd;
	int		 tier;
	int		 writable;
	struct node	*node;
	struct dirlist	 list;		/* directories */
	int		 listed;
	struct handle	*next;		/* the node's other open handles */
};

/* array.c */
int	array_grow(void *, size_t *, size_t, size_t);

/* log.c */
void	log_init(int, int);
void	log_set_level(int);
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/* tier.c */
int	tier_add(const char *, const char *, char **);
int	tier_check_layout(const char *, char **);
void	tier_probe(int, int);
int	tier_has(int, unsigned);
int	tier_remote(int);
const char *tier_cap_name(unsigned);
int	tier_same_file(int, const struct stat *, uint64_t, uint64_t);
int	tier_same_mtime(int, const struct stat *, int64_t);
int	tier_is_answer(int);
void	tier_close_all(void);
int	tier_fstatat(int, int, const char *, struct stat *);
int	tier_openat(int, int, const char *, int, mode_t);
int	tier_mkdirat(int, int, const char *, mode_t);
int	tier_mknodat(int, int, const char *, mode_t, dev_t);
int	tier_symlinkat(int, const char *, int, const char *);
int	tier_linkat(int, int, const char *, int, const char *);
int	tier_unlinkat(int, int, const char *, int);
int	tier_renameat2(int, int, const char *, int, const char *, unsigned);
int	tier_readlinkat(int, int, const char *, char *, size_t);
int	tier_fchownat(int, int, const char *, uid_t, gid_t);
int	tier_fchmodat(int, int, const char *, mode_t);
int	tier_utimensat(int, int, const char *, const struct timespec *);
int	tier_list(int, int, struct dirlist *);
int	tier_dir_empty(int, int);
int	tier_statfs(int, struct statvfs *);
void	tier_space(struct tier_space *, int);
void	tier_track(struct tier_track *);
struct dfs_config;
void	tier_set_timeouts(const struct dfs_config *);
long long tier_now_ms(void);
void	tier_set_min_free(int, int64_t, int);
uint64_t tier_min_free(int, uint64_t);
int	tier_room(int, uint64_t *, uint64_t *);
int	tier_copy_xattrs(int, int, int);
void	tier_count(int, atomic_uint_fast64_t *, uint64_t);
int	tier_error(int, const char *, const char *, int);
int	tier_procpath(int, char *, size_t);
int	tier_ftruncate(int, int, off_t);
#define TIER_XATTR_GET		0
#define TIER_XATTR_SET		1
#define TIER_XATTR_LIST		2
#define TIER_XATTR_REMOVE	3
ssize_t	tier_xattr(int, int, int, const char *, void *, size_t, int);
ssize_t	tier_xattr_at(int, int, const char *, int, const char *, void *,
	    size_t, int);
int	tier_is_private(const char *);
void	dirlist_free(struct dirlist *);

/* redo.c */
#define REDO_ADD	1
#define REDO_LINK	2
#define REDO_UNLINK	3
#define REDO_RENAME	4
/* One namespace change of an index commit group. */
struct redo_rec {
	uint64_t	 seq;
	int		 op;
	int		 exchange;	/* rename: RENAME_EXCHANGE */
	fuse_ino_t	 id;		/* add, link: the inode */
	fuse_ino_t	 p1;		/* the parent of n1 */
	fuse_ino_t	 p2;		/* rename: the parent of n2 */
	int		 tier;		/* add: where it was found */
	unsigned	 tiers;
	int		 partial;
	uint32_t	 mode;		/* add, link: the backing file's stat */
	uint64_t	 dev;
	uint64_t	 ino;
	uint64_t	 nlink;
	int64_t		 size;
	int64_t		 mtime;
	int64_t		 ctime;
	char		 n1[NAME_MAX + 1];
	char		 n2[NAME_MAX + 1];
};
int	redo_open(const char *, char **);
void	redo_close(void);
int	redo_append(const struct redo_rec *);
int	redo_reset(void);
int	redo_read(struct redo_rec **, size_t *);

/* index.c */
int	index_open(const char *, char **);
void	index_close(int);
int	index_is_scanned(void);
int	index_trust_previous(void);
int	index_same_boot(void);
void	index_boot_mark(void);
int	index_check_tiers(int, char **);

/* index_ns.c */
int	index_add(fuse_ino_t, const char *, int, unsigned, int,
	    const struct stat *, fuse_ino_t *);
int	index_link(fuse_ino_t, const char *, fuse_ino_t, const struct stat *);
int	index_unlink(fuse_ino_t, const char *);
int	index_rename(fuse_ino_t, const char *, fuse_ino_t, const char *, int);
int	index_add_tier(fuse_ino_t, int);
int	index_set_stat(fuse_ino_t, const struct stat *);
int	index_set_ident(fuse_ino_t, int, const struct stat *);
int	index_set_pin(fuse_ino_t, int);
int	index_access(fuse_ino_t, int64_t);
void	index_defer_stat(fuse_ino_t, const struct stat *);
void	index_defer_access(fuse_ino_t, int64_t);
void	index_flush(int64_t);

/* index_journal.c */
int	index_journal_add(const struct jrow *);
int	index_journal_add_many(const struct jrow *, size_t);
int	index_switch(fuse_ino_t, int, uint64_t, uint64_t);
int	index_switch_many(const struct index_switch *, size_t);
int	index_journal_del(fuse_ino_t);
int	index_journal_del_many(const fuse_ino_t *, size_t);
int	index_journal(struct jrow **, size_t *);

/* index_scan.c */
int	index_scan_begin(unsigned, char **);
int	index_scan_tier(fuse_ino_t, const char *);
/* A name in a directory, held apart from both. */
struct name_at {
	fuse_ino_t	 parent;
	char		*name;
};

/* What index_scan_entry found of a name, against the index's row. */
enum index_seen {
	INDEX_SEEN_SAME,	/* as the row says */
	INDEX_SEEN_CHANGED,	/* the same file, changed (size, times, ...) */
	INDEX_SEEN_FIRST,	/* into an empty index: no row looked for */
	INDEX_SEEN_NEW,		/* no row */
	INDEX_SEEN_REPLACED	/* another file under the name */
};
int	index_scan_entry(fuse_ino_t, const char *, int, unsigned,
	    const struct stat *, fuse_ino_t *, enum index_seen *);
int	index_scan_conflict(fuse_ino_t, const char *, int);
int	index_scan_end(int, void (*)(fuse_ino_t, const char *));

/* index_query.c */
int	index_lookup(fuse_ino_t, const char *, struct irow *);
int	index_get(fuse_ino_t, struct irow *);
int	index_read_begin(void);
void	index_read_refresh(void);
void	index_read_end(void);
int	index_name(fuse_ino_t, fuse_ino_t *, char *, size_t);
unsigned index_nlink(fuse_ino_t);
int	index_list(fuse_ino_t, struct dirlist *);
int	index_list_row(const struct dirlist *, size_t, struct irow *);
int	index_count_candidates(int, int, int64_t, uint64_t *, uint64_t *);
int	index_candidates(int, int, int64_t, int64_t *, fuse_ino_t *, size_t,
	    struct irow **, size_t *);
int	index_path(fuse_ino_t, char *, size_t);
int	index_resolve(const char *, struct irow *);
int	index_names(fuse_ino_t, fuse_ino_t **, char ***, size_t *);
const char *index_component(const char **, size_t *);
long	index_pin_count(void);
int	index_hot(int, int64_t, int64_t, size_t, struct irow **, size_t *);
int	index_is_hot(fuse_ino_t, int64_t, int64_t);

/* scan.c */
void	scan_set_done_hook(void (*)(void));
void	scan_hold(void);
void	scan_release(void);
int	scan_start(void);
void	scan_shutdown(void);
void	scan_progress(struct scan_progress *);

/* policy.c */
struct dfs_config;
/* What the decision needs to know of one file. */
struct policy_file {
	fuse_ino_t		 id;
	const char		*path;		/* from the mount root */
	const struct stat	*st;		/* on its tier, now */
	const struct irow	*row;		/* moved_at, atime_seen; or NULL */
	int			 tier;
	nlink_t			 nlink;		/* links the index knows */
	int64_t			 now;		/* ns */
	int			 force_to;	/* watermark or promotion target */
	int			 promote;	/* force_to is a promotion */
	int			(*pinned)(void *, fuse_ino_t);	/* or NULL */
	void			*arg;
};
struct policy_decision {
	int	policy;		/* in the config's policies, or -1 */
	char	name[64];	/* the policy's, "promotion", or "" */
	char	why[256];
	int	to;		/* target tier, or -1 */
	int	skip;		/* MIG_SKIP_* that keeps it, or -1 */
};
int	policy_decide(const struct dfs_config *, const struct policy_file *,
	    struct policy_decision *);

/* migrate.c */
const char *migrate_skip_name(int);
int	migrate_recover(void);
struct dfs_config *migrate_configure(struct dfs_config *);
int	migrate_start(void);
void	migrate_shutdown(void);
unsigned long migrate_kick(const char *const *, size_t);
void	migrate_status(struct mig_status *);
void	migrate_plan(const char *const *, size_t, unsigned long,
	    int (*)(void *, const struct mig_item *), void *);
int	migrate_explain(const char *, char *, size_t);
int	migrate_pin(const char *, int);
int	migrate_watermarks(int, int *, int *);
void	migrate_wake(void);
void	migrate_room_short(int);
int	migrate_sources_flush(void);
void	migrate_sources_flush_id(fuse_ino_t);

/* node.c */
int	node_init(void);
void	node_shutdown(void);
struct node *node_get(fuse_ino_t);
struct node *node_root(void);
void	node_ref(struct node *);
void	node_put(struct node *);
void	node_forget(fuse_ino_t, uint64_t);
int	node_dirfd(struct node *, int);
int	node_name(struct node *, struct node **, char *, size_t);
struct node *node_enter(struct node *, const char *, const struct probe *);
struct node *node_find(struct node *, const char *);
struct node *node_self(struct node *, int);
void	node_scanned(void);
void	node_listing_changed(fuse_ino_t);
void	node_busy_enter(struct node *);
void	node_busy_leave(struct node *);
void	node_move_begin(struct node *);
int	node_move_try_begin(struct node *);
void	node_move_end(struct node *, int, dev_t, ino_t);
void	node_handle_add(struct node *, struct handle *);
void	node_handle_del(struct node *, struct handle *);
int	node_open_fd(struct node *, int *);
void	node_alias_remove(struct node *, const char *);
void	node_alias_swap(struct node *, const char *, struct node *,
	    const char *);
void	node_alias_move(struct node *, const char *, struct node *,
	    const char *);
void	node_dir_created(struct node *, int, int);
void	node_subdirs_changed(struct node *);
int	node_tier(struct node *);
void	node_where(struct node *, int *, dev_t *, ino_t *);
void	node_set_session(struct fuse_session *);
void	node_inval(fuse_ino_t, off_t, off_t);
void	node_inval_entry(fuse_ino_t, const char *);
int	node_tiers_known(struct node *);
int	node_dirfd_recheck(struct node *, int);
void	node_rename_begin(void);
void	node_rename_end(void);
unsigned long node_count(void);

/* resolve.c */
int	resolve_name_ok(const char *);
int	resolve_probe(struct node *, const char *, struct probe *);
int	resolve_lookup(struct node *, const char *, struct fuse_entry_param *,
	    struct node **);
int	resolve_list(struct node *, struct dirlist *);
int	resolve_complete(struct node *);
long	resolve_subdirs(struct node *);
int	resolve_stat(struct node *, struct stat *);
void	resolve_nlink(int, fuse_ino_t, struct stat *);
void	resolve_entry_fill(struct node *, const struct stat *,
	    struct fuse_entry_param *);
int	resolve_dir_tiers(struct node *, const char *, int *);
int	resolve_lookup_at(struct node *, const char *, int, int,
	    const struct irow *, struct fuse_entry_param *);
int	resolve_path_fd(struct node *, int *);
struct node *resolve_node(fuse_ino_t, int);

/* ns.c */
/* How the namespace reaches the migration worker above it. */
struct ns_hooks {
	int	(*flush_sources)(void);		/* 1: some were waiting */
	void	(*flush_source)(fuse_ino_t);
	void	(*room_short)(int);		/* a tier is short of room */
};
void	ns_set_hooks(const struct ns_hooks *);
int	ns_ensure_dir(struct node *, int);
int	ns_make(struct node *, const char *, mode_t, dev_t, const char *,
	    const struct fuse_ctx *, struct fuse_entry_param *);
int	ns_create(struct node *, const char *, mode_t, int,
	    const struct fuse_ctx *, struct fuse_entry_param *, int *);
int	ns_link(struct node *, struct node *, const char *,
	    struct fuse_entry_param *);
int	ns_unlink(struct node *, const char *);
int	ns_rmdir(struct node *, const char *);
int	ns_rename(struct node *, const char *, struct node *, const char *,
	    unsigned);
void	ns_touch_dir(struct node *, int);

/* op.c */
extern const struct fuse_lowlevel_ops op_table;
void	op_tune_once(void);
struct op_deadline {
	fuse_req_t		 req;
	const char		*what;
	fuse_ino_t		 ino;
	const char		*name;		/* in ino, or NULL */
	int			 replied;	/* by the watchdog */
	int			 tier;		/* it gave up on */
	struct tier_track	 track;
	struct op_deadline	*prev, *next;
};
void	op_deadline_begin(struct op_deadline *, fuse_req_t, const char *,
	    fuse_ino_t, const char *);
int	op_deadline_end(struct op_deadline *);

/* op_entry.c */
void	op_lookup(fuse_req_t, fuse_ino_t, const char *);
void	op_forget(fuse_req_t, fuse_ino_t, uint64_t);
void	op_forget_multi(fuse_req_t, size_t, struct fuse_forget_data *);
void	op_mknod(fuse_req_t, fuse_ino_t, const char *, mode_t, dev_t);
void	op_mkdir(fuse_req_t, fuse_ino_t, const char *, mode_t);
void	op_symlink(fuse_req_t, const char *, fuse_ino_t, const char *);
void	op_link(fuse_req_t, fuse_ino_t, fuse_ino_t, const char *);
void	op_unlink(fuse_req_t, fuse_ino_t, const char *);
void	op_rmdir(fuse_req_t, fuse_ino_t, const char *);
void	op_rename(fuse_req_t, fuse_ino_t, const char *, fuse_ino_t,
	    const char *, unsigned int);

/* op_attr.c */
void	op_getattr(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void	op_setattr(fuse_req_t, fuse_ino_t, struct stat *, int,
	    struct fuse_file_info *);
void	op_access(fuse_req_t, fuse_ino_t, int);
void	op_readlink(fuse_req_t, fuse_ino_t);
void	op_statfs(fuse_req_t, fuse_ino_t);

/* op_dir.c */
void	op_opendir(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void	op_readdir(fuse_req_t, fuse_ino_t, size_t, off_t,
	    struct fuse_file_info *);
void	op_readdirplus(fuse_req_t, fuse_ino_t, size_t, off_t,
	    struct fuse_file_info *);
void	op_releasedir(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void	op_fsyncdir(fuse_req_t, fuse_ino_t, int, struct fuse_file_info *);

/* op_file.c */
void	op_open(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void	op_create(fuse_req_t, fuse_ino_t, const char *, mode_t,
	    struct fuse_file_info *);
void	op_read(fuse_req_t, fuse_ino_t, size_t, off_t,
	    struct fuse_file_info *);
void	op_write_buf(fuse_req_t, fuse_ino_t, struct fuse_bufvec *, off_t,
	    struct fuse_file_info *);
void	op_flush(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void	op_release(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void	op_fsync(fuse_req_t, fuse_ino_t, int, struct fuse_file_info *);
void	op_fallocate(fuse_req_t, fuse_ino_t, int, off_t, off_t,
	    struct fuse_file_info *);
void	op_copy_file_range(fuse_req_t, fuse_ino_t, off_t,
	    struct fuse_file_info *, fuse_ino_t, off_t, struct fuse_file_info *,
	    size_t, int);
void	op_lseek(fuse_req_t, fuse_ino_t, off_t, int, struct fuse_file_info *);
void	op_ioctl(fuse_req_t, fuse_ino_t, unsigned int, void *,
	    struct fuse_file_info *, unsigned, const void *, size_t, size_t);

/* op_xattr.c */
void	op_setxattr(fuse_req_t, fuse_ino_t, const char *, const char *,
	    size_t, int);
void	op_getxattr(fuse_req_t, fuse_ino_t, const char *, size_t);
void	op_listxattr(fuse_req_t, fuse_ino_t, size_t);
void	op_removexattr(fuse_req_t, fuse_ino_t, const char *);

/* config.c */
enum dfs_policy_action {
	DFS_POLICY_MIGRATE,
	DFS_POLICY_EXCLUDE
};

enum dfs_age_by {
	DFS_AGE_MTIME,
	DFS_AGE_CTIME,
	DFS_AGE_ATIME,
	DFS_AGE_ACCESS		/* last access seen through dfs */
};

enum dfs_hardlinks {
	DFS_HARDLINKS_MOVE,	/* a link group moves as one unit */
	DFS_HARDLINKS_SKIP
};

struct dfs_config_tier {
	char		*name;
	char		*path;		/* absolute, no trailing / */
	int		 high_watermark;	/* percent used; 0: none */
	int		 low_watermark;
	int		 stable_inodes;	/* enum dfs_stable_inodes */
	double		 timeout;	/* s; 0: wait as long as the tier does */
	int64_t		 min_free;	/* bytes kept free for placement */
	int		 min_free_ppm;	/* or parts per million of the tier */
};

/* s a client waits for a tier before it gets ETIMEDOUT, by default */
#define DFS_TIER_TIMEOUT	30.0

/* Ordered: the first policy that matches a file decides. */
struct dfs_config_policy {
	char		*name;
	int		 action;	/* enum dfs_policy_action */
	int		 from;		/* tier index; -1: any tier */
	int		 to;		/* tier index; -1: any (exclude only) */
	char		**paths;	/* fnmatch(3) patterns; none: all */
	unsigned int	 npaths;
	int64_t		 min_size;	/* bytes; 0: no lower bound */
	int64_t		 max_size;	/* bytes; -1: no upper bound */
	int		 has_owner;
	uid_t		 owner;
	int64_t		 age;		/* seconds; 0: any age */
	int		 age_by;	/* enum dfs_age_by */
};

struct dfs_config_migration {
	int64_t		 interval;	/* seconds; 0: no periodic run */
	int64_t		 max_files;	/* per run; 0: no limit */
	int64_t		 max_bytes;	/* per run; 0: no limit */
	int64_t		 bandwidth;	/* bytes per second; 0: no limit */
	int		 verify;
	int		 hardlinks;	/* enum dfs_hardlinks */
	int64_t		 promote_after_reads;	/* 0: never promote */
	int64_t		 promote_window;	/* seconds */
	int64_t		 min_residency;		/* seconds */
};

/* One configuration file, checked; read-only once loaded. */
struct dfs_config {
	char			*file;
	char			*mountpoint;	/* NULL: not in the file */
	struct dfs_config_tier	*tiers;		/* fastest first, >= 2 */
	int			 ntiers;
	char			*state_dir;
	char			*socket;
	int			 log_level;	/* LOG_ERR .. LOG_DEBUG */
	int			 allow_other;
	char			**fuse_options;	/* passed as -o */
	unsigned int		 nfuse_options;
	double			 attr_timeout;	/* seconds */
	double			 entry_timeout;
	struct dfs_config_policy *policies;
	unsigned int		 npolicies;
	struct dfs_config_migration migration;
};

int	config_load(const char *, struct dfs_config **, char **);
void	config_free(struct dfs_config *);
int	config_tier(const struct dfs_config *, const char *);
int	config_reloadable(const struct dfs_config *,
	    const struct dfs_config *, char **);

/* ctl.c */
void	ctl_configure(const char *, int (*)(char **));
int	ctl_start(const char *, char **);
void	ctl_stop(void);

/* index_query.c: dfsctl queries */
struct index_conflict {
	fuse_ino_t	 parent;
	char		*name;
	unsigned	 tiers;		/* tiers holding shadowed copies */
};

int	index_is_open(void);
int	index_conflict_count(unsigned long *);
int	index_conflicts(struct index_conflict **, size_t *);
void	index_conflicts_free(struct index_conflict *, size_t);
int	index_tier_usage(int, uint64_t *, uint64_t *);
int	index_pins(fuse_ino_t **, size_t *);

#endif /* DFS_H */
