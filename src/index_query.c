/*
 * Read-only queries: a row by name or id, names and paths, directory
 * listings, migration candidates, pins, conflicts and usage counts.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dfs.h"
#include "index_int.h"

/* (parent, name) -> row; -ENOENT when the index has no such name. */
int
index_lookup(fuse_ino_t parent, const char *name, struct irow *r)
{
	struct index_conn	*c;
	sqlite3_stmt		*q;
	int		 rv;

	c = index_rlock();
	q = index_q(c, Q_LOOKUP);
	sqlite3_bind_int64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	switch (sqlite3_step(q)) {
	case SQLITE_ROW:
		index_row(q, r);
		rv = 0;
		break;
	case SQLITE_DONE:
		rv = -ENOENT;
		break;
	default:
		rv = index_err(c->db, "lookup");
		break;
	}
	sqlite3_reset(q);
	index_runlock(c);
	return (rv);
}

int
index_get(fuse_ino_t id, struct irow *r)
{
	struct index_conn	*c;
	sqlite3_stmt		*q;
	int		 rv;

	c = index_rlock();
	q = index_q(c, Q_GET);
	sqlite3_bind_int64(q, 1, id);
	rv = sqlite3_step(q);
	if (rv == SQLITE_ROW) {
		index_row(q, r);
		rv = 0;
	} else
		rv = rv == SQLITE_DONE ? -ENOENT : index_err(c->db, "get");
	sqlite3_reset(q);
	index_runlock(c);
	return (rv);
}

/*
 * How many names inode id has in the index: its link count where the
 * tier's st_nlink does not count them (sshfs says 1).  0 on error.
 */
unsigned
index_nlink(fuse_ino_t id)
{
	struct index_conn	*c;
	sqlite3_stmt		*q;
	unsigned	 n = 0;

	c = index_rlock();
	q = index_q(c, Q_NLINK);
	sqlite3_bind_int64(q, 1, id);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = (unsigned)sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	index_runlock(c);
	return (n);
}

/* One name of inode id: its parent and the name copied into buf. */
int
index_name(fuse_ino_t id, fuse_ino_t *parent, char *buf, size_t len)
{
	struct index_conn	*c;
	sqlite3_stmt		*q;
	const char	*name;
	int		 rv;

	c = index_rlock();
	q = index_q(c, Q_NAME);
	sqlite3_bind_int64(q, 1, id);
	rv = sqlite3_step(q);
	if (rv == SQLITE_ROW) {
		*parent = sqlite3_column_int64(q, 0);
		name = (const char *)sqlite3_column_text(q, 1);
		if (name == NULL || strlen(name) >= len)
			rv = -ENAMETOOLONG;
		else {
			strcpy(buf, name);
			rv = 0;
		}
	} else
		rv = rv == SQLITE_DONE ? -ENOENT : index_err(c->db, "name");
	sqlite3_reset(q);
	index_runlock(c);
	return (rv);
}

/* The names in directory parent, as the index knows them. */
int
index_list(fuse_ino_t parent, struct dirlist *l)
{
	sqlite3_stmt	*q;
	size_t		 cap = 0;
	int		 rv;

	l->ents = NULL;
	l->n = 0;
	pthread_mutex_lock(&index_mtx);
	q = index_q(&index_main, Q_LIST);
	sqlite3_bind_int64(q, 1, parent);
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (array_grow(&l->ents, &cap, l->n + 1, sizeof *l->ents) !=
		    0) {
			rv = SQLITE_NOMEM;
			break;
		}
		l->ents[l->n].name = strdup((const char *)
		    sqlite3_column_text(q, 0));
		if (l->ents[l->n].name == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		l->ents[l->n].type = (sqlite3_column_int(q, 1) >> 12) & 017;
		l->ents[l->n].tier = sqlite3_column_int(q, 2);
		l->ents[l->n].ino = 0;
		l->ents[l->n].id = sqlite3_column_int64(q, 3);
		l->ents[l->n].rdev = sqlite3_column_int64(q, 4);
		l->ents[l->n].rino = sqlite3_column_int64(q, 5);
		l->ents[l->n].rtiers = sqlite3_column_int(q, 6);
		l->ents[l->n].rpartial = sqlite3_column_int(q, 7);
		l->n++;
	}
	sqlite3_reset(q);
	/* What the rows are as of, for index_list_row. */
	l->rows = !index_scanning;
	l->changes = (uint64_t)sqlite3_total_changes64(index_main.db);
	l->gen = atomic_load(&index_gen);
	pthread_mutex_unlock(&index_mtx);
	if (rv != SQLITE_DONE) {
		dirlist_free(l);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	return (0);
}

/*
 * The row of entry i of a listing index_list made, if no row of the index
 * can have changed since: no write on the shared connection (its count of
 * changes is the same), and no scan (the only other writer) running or
 * run.  A listing's readdirplus then needs no query per name; after any
 * change it asks the index again, as a lookup would.  1, or 0.
 */
int
index_list_row(const struct dirlist *l, size_t i, struct irow *r)
{
	const struct dirent_m	*e = &l->ents[i];
	int			 fresh;

	if (!l->rows || i >= l->n)
		return (0);
	pthread_mutex_lock(&index_mtx);
	fresh = !index_scanning && index_main.db != NULL &&
	    (uint64_t)sqlite3_total_changes64(index_main.db) == l->changes &&
	    atomic_load(&index_gen) == l->gen;
	pthread_mutex_unlock(&index_mtx);
	if (!fresh)
		return (0);
	memset(r, 0, sizeof *r);
	r->id = e->id;
	r->type = (unsigned)e->type << 12;
	r->tier = e->tier;
	r->tiers = e->rtiers;
	r->dev = e->rdev;
	r->ino = e->rino;
	r->partial = e->rpartial;
	return (1);
}

/* The next component of a path at *pp, its length in *len; NULL at end. */
const char *
index_component(const char **pp, size_t *len)
{
	const char	*s = *pp;

	while (*s == '/')
		s++;
	if (*s == '\0') {
		*pp = s;
		return (NULL);
	}
	*len = strcspn(s, "/");
	*pp = s + *len;
	return (s);
}

/*
 * Resolve rel, a path from the mount root ("." and ".." allowed), through
 * the index one component at a time: for dfsctl and migration requests.
 * 0 and the row, or -errno.
 */
int
index_resolve(const char *rel, struct irow *r)
{
	fuse_ino_t	*stack = NULL;
	size_t		 depth = 0, cap = 0, len;
	const char	*comp;
	char		 name[NAME_MAX + 1];
	int		 rv;

	if ((rv = index_get(FUSE_ROOT_ID, r)) != 0)
		return (rv);
	while ((comp = index_component(&rel, &len)) != NULL) {
		if (len == 1 && *comp == '.')
			continue;
		if (r->type != S_IFDIR) {
			rv = -ENOTDIR;
			break;
		}
		if (len == 2 && comp[0] == '.' && comp[1] == '.') {
			if (depth > 0)
				rv = index_get(stack[--depth], r);
			else
				rv = index_get(FUSE_ROOT_ID, r);
			if (rv != 0)
				break;
			continue;
		}
		if (len > NAME_MAX) {
			rv = -ENAMETOOLONG;
			break;
		}
		memcpy(name, comp, len);
		name[len] = '\0';
		if (array_grow(&stack, &cap, depth + 1, sizeof *stack) != 0) {
			rv = -ENOMEM;
			break;
		}
		stack[depth++] = r->id;
		if ((rv = index_lookup(r->id, name, r)) != 0)
			break;
	}
	free(stack);
	return (rv);
}

/* Every row a one-off inode query gives; the statement is freed. */
static int
index_fetch(sqlite3_stmt *q, struct irow **rowsp, size_t *np)
{
	struct irow	*rows = NULL;
	size_t		 n = 0, cap = 0;
	int		 rv;

	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (array_grow(&rows, &cap, n + 1, sizeof *rows) != 0) {
			rv = SQLITE_NOMEM;
			break;
		}
		index_row(q, &rows[n++]);
	}
	sqlite3_finalize(q);
	if (rv != SQLITE_DONE) {
		free(rows);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	*rowsp = rows;
	*np = n;
	return (0);
}

static int	index_reader(sqlite3 **);

/* The column a policy's age is measured by: mtime, ctime, access. */
static const char *const index_age_col[] = { "mtime", "ctime", "atime_seen" };

/*
 * How many files index_candidates would page through, and their bytes:
 * what a run has before it, for its estimate of the time left.
 */
int
index_count_candidates(int t, int by, int64_t before, uint64_t *files,
    uint64_t *bytes)
{
	sqlite3		*db;
	sqlite3_stmt	*q;
	char		 sql[256];
	int		 rv;

	snprintf(sql, sizeof sql, "SELECT count(*), total(size) FROM inode "
	    "WHERE tier = ?1 AND type = %d AND pin = 0 AND %s < ?2", S_IFREG,
	    index_age_col[by]);
	/* A pass over millions of rows: beside clients, not holding them. */
	if ((rv = index_reader(&db)) != 0)
		return (rv);
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
		rv = index_err(db, "count candidates");
		sqlite3_close(db);
		return (rv);
	}
	sqlite3_bind_int(q, 1, t);
	sqlite3_bind_int64(q, 2, before);
	if ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		*files = (uint64_t)sqlite3_column_int64(q, 0);
		*bytes = (uint64_t)sqlite3_column_double(q, 1);
		rv = 0;
	} else
		rv = index_err(db, "count candidates");
	sqlite3_finalize(q);
	sqlite3_close(db);
	return (rv);
}

/*
 * Regular files on tier t, not pinned, oldest first by mtime (by = 0),
 * ctime (1) or last access through dfs (2), older than before (ns), and
 * after the row (*after_val, *after_id) a previous page ended with; both
 * are moved on to this page's last row.
 */
int
index_candidates(int t, int by, int64_t before, int64_t *after_val,
    fuse_ino_t *after_id, size_t limit, struct irow **rowsp, size_t *np)
{
	struct irow	*rows = NULL;
	sqlite3_stmt	*q;
	char		 sql[512];
	size_t		 n = 0;
	int		 rv;

	snprintf(sql, sizeof sql, "SELECT id, type, tier, tiers, dev, ino, "
	    "size, mtime, partial, pin, moved_at, atime_seen, ctime "
	    "FROM inode WHERE tier = ?1 AND type = %d AND pin = 0 AND "
	    "%s < ?2 AND (%s > ?4 OR (%s = ?4 AND id > ?5)) "
	    "ORDER BY %s, id LIMIT ?3", S_IFREG, index_age_col[by],
	    index_age_col[by], index_age_col[by], index_age_col[by]);
	index_read_refresh();		/* a page: a point to catch up */
	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep(sql)) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	sqlite3_bind_int(q, 1, t);
	sqlite3_bind_int64(q, 2, before);
	sqlite3_bind_int64(q, 3, (int64_t)limit);
	sqlite3_bind_int64(q, 4, *after_val);
	sqlite3_bind_int64(q, 5, (int64_t)*after_id);
	rv = index_fetch(q, &rows, &n);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0)
		return (rv);
	if (n > 0) {
		*after_val = by == 0 ? rows[n - 1].mtime : by == 1 ?
		    rows[n - 1].ctime : rows[n - 1].atime_seen;
		*after_id = rows[n - 1].id;
	}
	*rowsp = rows;
	*np = n;
	return (0);
}

/*
 * Files on tier t read at least reads times in the current window
 * (started after since, ns), most read first: candidates for promotion.
 */
int
index_hot(int t, int64_t reads, int64_t since, size_t limit,
    struct irow **rowsp, size_t *np)
{
	struct irow	*rows = NULL;
	sqlite3_stmt	*q;
	size_t		 n = 0;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT id, type, tier, tiers, dev, ino, size, "
	    "mtime, partial, pin, moved_at, atime_seen, ctime FROM inode "
	    "WHERE tier = ?1 AND type = 32768 AND pin = 0 AND accesses >= ?2 "
	    "AND window_start > ?3 ORDER BY accesses DESC LIMIT ?4")) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	sqlite3_bind_int(q, 1, t);
	sqlite3_bind_int64(q, 2, reads);
	sqlite3_bind_int64(q, 3, since);
	sqlite3_bind_int64(q, 4, (int64_t)limit);
	rv = index_fetch(q, &rows, &n);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0)
		return (rv);
	*rowsp = rows;
	*np = n;
	return (0);
}

/* How many inodes are pinned, as this connection sees them; -1 on error. */
long
index_pin_count(void)
{
	sqlite3_stmt	*q;
	long		 n = -1;

	pthread_mutex_lock(&index_mtx);
	if (index_main.db != NULL && (q = index_prep("SELECT count(*) FROM "
	    "inode WHERE pin != 0")) != NULL) {
		if (sqlite3_step(q) == SQLITE_ROW)
			n = (long)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&index_mtx);
	return (n);
}

/* Would index_hot list inode id?  1 or 0. */
int
index_is_hot(fuse_ino_t id, int64_t reads, int64_t since)
{
	sqlite3_stmt	*q;
	int		 hot = 0;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT 1 FROM inode WHERE id = ?1 AND "
	    "type = 32768 AND accesses >= ?2 AND window_start > ?3")) != NULL) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int64(q, 2, reads);
		sqlite3_bind_int64(q, 3, since);
		hot = sqlite3_step(q) == SQLITE_ROW;
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&index_mtx);
	return (hot);
}

/* The path of inode id from the mount root ("/a/b"), for policies and logs. */
int
index_path(fuse_ino_t id, char *buf, size_t len)
{
	char		 name[NAME_MAX + 1], *tmp;
	fuse_ino_t	 parent;
	size_t		 used = 0, nl;
	int		 rv, depth = 0;

	if (len < 2)
		return (-ENAMETOOLONG);
	if ((tmp = malloc(len)) == NULL)
		return (-ENOMEM);
	buf[0] = '\0';
	while (id != FUSE_ROOT_ID) {
		if ((rv = index_name(id, &parent, name, sizeof name)) != 0 ||
		    ++depth > 65536)
			goto out;
		nl = strlen(name);
		if (used + nl + 2 > len) {
			rv = -ENAMETOOLONG;
			goto out;
		}
		/* Prepend "/name". */
		memcpy(tmp, buf, used + 1);
		buf[0] = '/';
		memcpy(buf + 1, name, nl);
		memcpy(buf + 1 + nl, tmp, used + 1);
		used += nl + 1;
		id = parent;
	}
	if (used == 0)
		strcpy(buf, "/");
	rv = 0;
out:
	free(tmp);
	return (rv);
}

/* Every name of inode id (a hard-link group): parents and names. */
int
index_names(fuse_ino_t id, fuse_ino_t **parentsp, char ***namesp, size_t *np)
{
	sqlite3_stmt	*q;
	fuse_ino_t	*parents = NULL;
	char		**names = NULL;
	size_t		 n = 0, pcap = 0, ncap = 0;
	int		 rv;

	pthread_mutex_lock(&index_mtx);
	if ((q = index_prep("SELECT parent, name FROM dentry WHERE inode = ?1 "
	    "ORDER BY parent, name")) == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-EIO);
	}
	sqlite3_bind_int64(q, 1, id);
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (array_grow(&parents, &pcap, n + 1, sizeof *parents) != 0 ||
		    array_grow(&names, &ncap, n + 1, sizeof *names) != 0 ||
		    (names[n] = strdup(
		    (const char *)sqlite3_column_text(q, 1))) == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		parents[n++] = sqlite3_column_int64(q, 0);
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	if (rv != SQLITE_DONE) {
		while (n > 0)
			free(names[--n]);
		free(names);
		free(parents);
		return (rv == SQLITE_NOMEM ? -ENOMEM : -EIO);
	}
	*parentsp = parents;
	*namesp = names;
	*np = n;
	return (0);
}

/* Queries for dfsctl. */

int
index_is_open(void)
{
	int	open;

	pthread_mutex_lock(&index_mtx);
	open = index_main.db != NULL;
	pthread_mutex_unlock(&index_mtx);
	return (open);
}

/* How many names have shadowed copies on slower tiers. */
int
index_conflict_count(unsigned long *n)
{
	sqlite3_stmt	*q = NULL;
	int		 rv;

	*n = 0;
	pthread_mutex_lock(&index_mtx);
	if (index_main.db == NULL) {
		rv = -ENXIO;
		goto out;
	}
	if (sqlite3_prepare_v2(index_main.db, "SELECT count(*) FROM "
	    "(SELECT DISTINCT parent, name FROM conflict)", -1, &q,
	    NULL) != SQLITE_OK) {
		rv = index_err(index_main.db, "conflict count");
		goto out;
	}
	if (sqlite3_step(q) == SQLITE_ROW) {
		*n = sqlite3_column_int64(q, 0);
		rv = 0;
	} else
		rv = index_err(index_main.db, "conflict count");
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	return (rv);
}

void
index_conflicts_free(struct index_conflict *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/*
 * The conflict table, one entry per name with the tiers that hold its
 * shadowed copies, in (parent, name) order.
 */
int
index_conflicts(struct index_conflict **out, size_t *np)
{
	struct index_conflict	*v = NULL, *e;
	sqlite3_stmt		*q = NULL;
	size_t			 n = 0, cap = 0;
	const char		*name;
	fuse_ino_t		 parent;
	int			 rv, t;

	*out = NULL;
	*np = 0;
	pthread_mutex_lock(&index_mtx);
	if (index_main.db == NULL) {
		pthread_mutex_unlock(&index_mtx);
		return (-ENXIO);
	}
	if (sqlite3_prepare_v2(index_main.db, "SELECT parent, name, tier "
	    "FROM conflict ORDER BY parent, name, tier", -1, &q, NULL) !=
	    SQLITE_OK) {
		rv = index_err(index_main.db, "conflicts");
		goto out;
	}
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		parent = sqlite3_column_int64(q, 0);
		name = (const char *)sqlite3_column_text(q, 1);
		t = sqlite3_column_int(q, 2);
		if (name == NULL || t < 0 || t >= DFS_MAX_TIERS)
			continue;
		if (n != 0 && v[n - 1].parent == parent &&
		    strcmp(v[n - 1].name, name) == 0) {
			v[n - 1].tiers |= 1u << t;
			continue;
		}
		if (array_grow(&v, &cap, n + 1, sizeof *v) != 0) {
			rv = SQLITE_NOMEM;
			break;
		}
		e = &v[n];
		e->parent = parent;
		e->tiers = 1u << t;
		if ((e->name = strdup(name)) == NULL) {
			rv = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	if (rv == SQLITE_DONE)
		rv = 0;
	else if (rv == SQLITE_NOMEM)
		rv = -ENOMEM;
	else
		rv = index_err(index_main.db, "conflicts");
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&index_mtx);
	if (rv != 0) {
		index_conflicts_free(v, n);
		return (rv);
	}
	*out = v;
	*np = n;
	return (0);
}

/*
 * A read-only connection of the caller's own, for queries that read many
 * rows: in WAL mode they run beside the writers, without index_mtx.
 */
static int
index_reader(sqlite3 **db)
{
	int	rv;

	*db = NULL;
	if (index_file == NULL)
		return (-ENXIO);
	index_sync();
	if (sqlite3_open_v2(index_file, db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rv = index_err(*db, "read-only connection");
		sqlite3_close(*db);
		*db = NULL;
		return (rv);
	}
	sqlite3_busy_timeout(*db, 10000);
	return (0);
}

/* The regular files on each of the first n tiers and their bytes. */
int
index_tier_usage(int n, uint64_t *files, uint64_t *bytes)
{
	struct index_conn	*c;
	sqlite3_stmt		*q;
	int			 t, rv = 0;

	c = index_rlock();
	if (c->db == NULL || sqlite3_prepare_v2(c->db, "SELECT tier, files, "
	    "bytes FROM usage WHERE tier < ?1", -1, &q, NULL) != SQLITE_OK) {
		rv = c->db == NULL ? -ENXIO : index_err(c->db, "tier usage");
		index_runlock(c);
		return (rv);
	}
	for (t = 0; t < n; t++)
		files[t] = bytes[t] = 0;
	sqlite3_bind_int(q, 1, n);
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		t = sqlite3_column_int(q, 0);
		if (t >= 0 && t < n) {
			files[t] = (uint64_t)sqlite3_column_int64(q, 1);
			bytes[t] = (uint64_t)sqlite3_column_int64(q, 2);
		}
	}
	rv = rv == SQLITE_DONE ? 0 : index_err(c->db, "tier usage");
	sqlite3_finalize(q);
	index_runlock(c);
	return (rv);
}

/* The pinned inodes, in id order; *ids is malloc'd. */
int
index_pins(fuse_ino_t **ids, size_t *np)
{
	sqlite3		*db;
	sqlite3_stmt	*q = NULL;
	fuse_ino_t	*v = NULL;
	size_t		 n = 0, cap = 0;
	int		 rv;

	*ids = NULL;
	*np = 0;
	if ((rv = index_reader(&db)) != 0)
		return (rv);
	if (sqlite3_prepare_v2(db, "SELECT id FROM inode WHERE pin != 0 "
	    "ORDER BY id", -1, &q, NULL) != SQLITE_OK) {
		rv = index_err(db, "pins");
		goto out;
	}
	while ((rv = sqlite3_step(q)) == SQLITE_ROW) {
		if (array_grow(&v, &cap, n + 1, sizeof *v) != 0) {
			rv = SQLITE_NOMEM;
			break;
		}
		v[n++] = sqlite3_column_int64(q, 0);
	}
	if (rv == SQLITE_DONE)
		rv = 0;
	else if (rv == SQLITE_NOMEM)
		rv = -ENOMEM;
	else
		rv = index_err(db, "pins");
out:
	sqlite3_finalize(q);
	sqlite3_close(db);
	if (rv != 0) {
		free(v);
		return (rv);
	}
	*ids = v;
	*np = n;
	return (0);
}
