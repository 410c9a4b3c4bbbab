/*
 * What the parts of the index (index*.c) share: the connection, its
 * statements, the locks and the helpers.  Only index*.c include this
 * file, and with it <sqlite3.h>; the rest of dfs sees dfs.h alone.
 */
#ifndef INDEX_INT_H
#define INDEX_INT_H

#include <sqlite3.h>

/* The schema version, in PRAGMA user_version. */
#define INDEX_VERSION	1

/* The statements each connection prepares once, by index. */
enum {
	Q_LOOKUP,
	Q_GET,
	Q_NAME,
	Q_INS_INODE,
	Q_INS_DENTRY,
	Q_DEL_DENTRY,
	Q_DEL_ORPHAN,
	Q_RENAME,
	Q_SET_TIER,
	Q_SET_TIERS,
	Q_SET_STAT,
	Q_LIST,
	Q_META_GET,
	Q_META_SET,
	Q_FIND_LINK,
	Q_COUNT_CHILD,
	Q_SCAN_MARK,
	Q_SCAN_MARKD,
	Q_SET_IDENT,
	Q_NLINK,
	Q_LAST
};

struct index_conn {
	sqlite3		*db;
	sqlite3_stmt	*q[Q_LAST];
};

/* index.c */
extern struct index_conn	 index_main;
extern pthread_mutex_t		 index_mtx;
extern char			*index_file;
extern atomic_int		 index_scanned;
extern atomic_long		 index_gen;
int		 index_err(sqlite3 *, const char *);
int		 index_conn_open(struct index_conn *, char **);
void		 index_conn_close(struct index_conn *);
sqlite3_stmt	*index_q(struct index_conn *, int);
struct index_conn *index_rlock(void);
void		 index_runlock(struct index_conn *);
int64_t		 index_meta_get(struct index_conn *, const char *, int64_t);
int		 index_meta_set(struct index_conn *, const char *, int64_t);
void		 index_row(sqlite3_stmt *, struct irow *);
int		 index_step_done(struct index_conn *, sqlite3_stmt *,
		     const char *);
int64_t		 index_ns(const struct timespec *);
int64_t		 index_mono_ns(void);
sqlite3_stmt	*index_prep(const char *);
int		 index_run(sqlite3_stmt *, const char *);

/* index_ns.c */
int		 index_insert_inode(struct index_conn *, int, unsigned, int,
		     const struct stat *, fuse_ino_t *);
int		 index_insert_dentry(struct index_conn *, fuse_ino_t,
		     const char *, fuse_ino_t);
int		 index_remove_dentry(struct index_conn *, fuse_ino_t,
		     const char *);
fuse_ino_t	 index_find_link(struct index_conn *, int,
		     const struct stat *);
int		 index_sync_locked(void);
void		 index_sync(void);
int		 index_group_start(void);
void		 index_group_end(void);
void		 index_wlock(int);
void		 index_wunlock(void);
int		 index_begin(struct index_conn *);
int		 index_end(struct index_conn *, int);
int		 index_redo_replay(const char *, char **);

/* index_scan.c */
extern int			 index_scanning;
extern atomic_int		 index_scan_fresh;

#endif /* INDEX_INT_H */
