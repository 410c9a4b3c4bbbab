/*
 * What the files of the migration worker share, and no one else:
 * migrate.c (the worker, its triggers and run records), migrate_move.c
 * (the move protocol, its batches and deferred sources), migrate_copy.c
 * (the copy engine) and migrate_recover.c (recovery at start).
 */
#ifndef DFS_MIGRATE_INT_H
#define DFS_MIGRATE_INT_H

#include <stdint.h>
#include <time.h>

#define MIG_SMALL	((off_t)1 << 20)	/* batched below this size */

/* What a run allows a move. */
struct mig_limits {
	uint64_t	bandwidth;
	int		verify;
};

static inline int64_t
mig_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static inline double
mig_mono(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static inline int64_t
mig_ns(const struct timespec *ts)
{
	return ((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
}

/* Sleep s seconds, if any. */
static inline void
mig_sleep(double s)
{
	struct timespec	ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* migrate.c */
extern pthread_mutex_t	 mig_mtx;	/* guards mig_cur */
extern struct mig_run	 mig_cur;	/* the run in progress */
void	mig_crash(const char *);

/* migrate_move.c */
struct mig_name;
void	mig_set_limits(const struct mig_limits *);
int	mig_batch_add(struct node *, struct node *, const char *,
	    const char *, const struct stat *, int, int);
void	mig_batch_tick(void);
void	mig_batch_size(unsigned long *, uint64_t *);
double	mig_freed_blocks(int, unsigned long);
void	mig_flush(void);
void	mig_finish(void);
int	mig_move(struct node *, struct node *, const char *,
	    const struct stat *, int, int, const struct mig_limits *,
	    struct mig_name *, size_t, int *);
nlink_t	mig_nlink(int, fuse_ino_t, const struct stat *);
int	mig_move_group(struct node *, struct node *, const char *,
	    const struct stat *, int, int, const struct mig_limits *, int *);
void	mig_result(const char *, int, int, int, off_t, int);

/* migrate_copy.c */
void	mig_ioprio(int);
int	mig_copy_data(int, int, off_t, uint64_t, uint64_t *);
int	mig_verify(int, int, off_t);

#endif
