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
#include <fuse_lowlevel.h>

#define DFS_MAX_TIERS	16

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

struct tier {
	char			*name;
	char			*path;		/* as given, for messages */
	int			 fd;		/* O_PATH|O_DIRECTORY root handle */
	dev_t			 dev;
	ino_t			 ino;
	struct tier_stats	 stats;
};

/* Whole-process state of the mount. */
struct dfs {
	struct tier	 tiers[DFS_MAX_TIERS];
	int		 ntiers;
	char		*mountpoint;
	double		 attr_timeout;
	double		 entry_timeout;
	int		 debug;
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
	dev_t		 dev;		/* backing identity (files) */
	ino_t		 ino;
	uint64_t	 nlookup;	/* kernel references */
	unsigned	 refs;		/* dfs references: children, ops in flight */
	struct alias	*aliases;
	int		 fds[DFS_MAX_TIERS];	/* directories only */
	long		 subdirs;	/* cached count of subdirectories, -1 unknown */
	struct timespec	 cache_mtime;	/* content seen at last open/release */
	off_t		 cache_size;
	int		 writers;	/* open handles with write access */
};

/* Where a name resolved to, before it becomes a node. */
struct probe {
	int		 tier;		/* first tier holding the name */
	struct stat	 st;		/* its attributes there */
};

/* A merged directory listing entry. */
struct dirent_m {
	char		*name;
	unsigned char	 type;		/* DT_* */
	int		 tier;
	ino_t		 ino;		/* backing inode, for ordering only */
};

struct dirlist {
	struct dirent_m	*ents;
	size_t		 n;
};

/* An open file or directory. */
struct handle {
	int		 fd;
	int		 tier;
	int		 writable;
	struct node	*node;
	struct dirlist	 list;		/* directories */
	int		 listed;
};

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
int	tier_is_private(const char *);
void	dirlist_free(struct dirlist *);

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
void	node_alias_remove(struct node *, const char *);
void	node_alias_swap(struct node *, const char *, struct node *,
	    const char *);
void	node_alias_move(struct node *, const char *, struct node *,
	    const char *);
void	node_dir_created(struct node *, int, int);
void	node_subdirs_changed(struct node *);
int	node_tiers_known(struct node *);
unsigned long node_count(void);

/* resolve.c */
int	resolve_name_ok(const char *);
int	resolve_probe(struct node *, const char *, struct probe *);
int	resolve_lookup(struct node *, const char *, struct fuse_entry_param *,
	    struct node **);
int	resolve_list(struct node *, struct dirlist *);
long	resolve_subdirs(struct node *);
int	resolve_stat(struct node *, struct stat *);
int	resolve_dir_tiers(struct node *, const char *, int *);
int	resolve_lookup_at(struct node *, const char *, int,
	    struct fuse_entry_param *);
int	resolve_path_fd(struct node *, int *);

/* ns.c */
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
void	op_entry_fill(struct node *, const struct stat *,
	    struct fuse_entry_param *);

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

#endif /* DFS_H */
