/*
 * Policies: ordered, the first whose conditions all hold decides whether
 * a file moves (and where) or stays.
 */
#include "config.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "dfs.h"

/*
 * A pattern with a '/' is matched against the path from the mount root,
 * and also covers everything below a directory it matches; one without
 * is matched against the file name.
 */
static int
policy_path_matches(const char *pat, const char *path)
{
	const char	*base;
	char		 prefix[PATH_MAX];
	size_t		 i;

	if (strchr(pat, '/') == NULL) {
		base = strrchr(path, '/');
		return (fnmatch(pat, base != NULL ? base + 1 : path, 0) == 0);
	}
	if (fnmatch(pat, path, 0) == 0)
		return (1);
	for (i = 1; path[i] != '\0' && i < sizeof prefix; i++) {
		if (path[i] != '/')
			continue;
		memcpy(prefix, path, i);
		prefix[i] = '\0';
		if (fnmatch(pat, prefix, 0) == 0)
			return (1);
	}
	return (0);
}

/* A duration as an operator writes it: 200d, 5h, 30m, 12s. */
static const char *
policy_dur(int64_t secs, char *buf, size_t len)
{
	if (secs >= 86400)
		snprintf(buf, len, "%lldd", (long long)(secs / 86400));
	else if (secs >= 3600)
		snprintf(buf, len, "%lldh", (long long)(secs / 3600));
	else if (secs >= 60)
		snprintf(buf, len, "%lldm", (long long)(secs / 60));
	else
		snprintf(buf, len, "%llds", (long long)secs);
	return (buf);
}

/* The time a policy's age is measured from, in seconds. */
static int64_t
policy_when(const struct dfs_config_policy *p, const struct stat *st,
    const struct irow *r)
{
	switch (p->age_by) {
	case DFS_AGE_CTIME:
		return (st->st_ctim.tv_sec);
	case DFS_AGE_ATIME:
		return (st->st_atim.tv_sec);
	case DFS_AGE_ACCESS:
		/* Never read through dfs: as old as its last change. */
		if (r != NULL && r->atime_seen > 0)
			return (r->atime_seen / 1000000000);
		return (st->st_mtim.tv_sec);
	default:
		return (st->st_mtim.tv_sec);
	}
}

/*
 * Does policy p hold for the file at path on tier t?  If not, why says
 * which condition failed.
 */
static int
policy_holds(const struct dfs_config *c, const struct dfs_config_policy *p,
    const char *path, const struct stat *st, const struct irow *r, int t,
    int64_t now, char *why, size_t len)
{
	unsigned	i;
	int64_t		age;
	char		a1[32], a2[32];

	if (p->from >= 0 && p->from != t) {
		snprintf(why, len, "on tier %s, not %s", c->tiers[t].name,
		    c->tiers[p->from].name);
		return (0);
	}
	if (p->action == DFS_POLICY_MIGRATE && p->to == t) {
		snprintf(why, len, "already on tier %s", c->tiers[t].name);
		return (0);
	}
	if (p->npaths > 0) {
		for (i = 0; i < p->npaths; i++)
			if (policy_path_matches(p->paths[i], path))
				break;
		if (i == p->npaths) {
			snprintf(why, len, "path matches none of its patterns");
			return (0);
		}
	}
	if (st->st_size < p->min_size) {
		snprintf(why, len, "size %lld below %lld", (long long)st->st_size,
		    (long long)p->min_size);
		return (0);
	}
	if (p->max_size >= 0 && st->st_size > p->max_size) {
		snprintf(why, len, "size %lld above %lld", (long long)st->st_size,
		    (long long)p->max_size);
		return (0);
	}
	if (p->has_owner && st->st_uid != p->owner) {
		snprintf(why, len, "owner %u, not %u", (unsigned)st->st_uid,
		    (unsigned)p->owner);
		return (0);
	}
	age = now - policy_when(p, st, r);
	if (age < p->age) {
		snprintf(why, len, "age %s, below %s",
		    policy_dur(age, a1, sizeof a1),
		    policy_dur(p->age, a2, sizeof a2));
		return (0);
	}
	snprintf(why, len, "age %s, size %lld", policy_dur(age, a1, sizeof a1),
	    (long long)st->st_size);
	return (1);
}

/*
 * The policy that decides for a file: its index in c->policies, or -1 if
 * none matches.  why explains the decision (or, with none, the first
 * policy's reason for not matching).
 */
static int
policy_match(const struct dfs_config *c, const char *path,
    const struct stat *st, const struct irow *r, int t, int64_t now,
    char *why, size_t len)
{
	char		 first[256] = "";
	unsigned	 i;

	if (c == NULL || c->npolicies == 0) {
		snprintf(why, len, "no policies");
		return (-1);
	}
	for (i = 0; i < c->npolicies; i++) {
		if (policy_holds(c, &c->policies[i], path, st, r, t, now, why,
		    len))
			return ((int)i);
		if (i == 0)
			snprintf(first, sizeof first, "%s", why);
	}
	/* Names are at most 32 bytes; the reason is cut to fit. */
	snprintf(why, len, "no policy matches (%.32s: %.200s)",
	    c->policies[0].name, first);
	return (-1);
}

/*
 * The one answer to "should this file move, and where": the worker, the
 * dry run and explain all ask it, so they cannot disagree.  The facts
 * are the caller's; the pin walk costs index queries, so it is asked
 * only of a file that would otherwise move.  Returns 1 if the file
 * moves to d->to, 0 if it stays (d->skip says why, when a rule rather
 * than the lack of a policy keeps it).
 */
int
policy_decide(const struct dfs_config *c, const struct policy_file *f,
    struct policy_decision *d)
{
	const struct dfs_config_policy	*p = NULL;
	int				 k, to = -1;

	memset(d, 0, sizeof *d);
	d->policy = -1;
	d->to = -1;
	d->skip = -1;
	k = policy_match(c, f->path, f->st, f->row, f->tier,
	    f->now / 1000000000, d->why, sizeof d->why);
	if (k >= 0) {
		p = &c->policies[k];
		d->policy = k;
		snprintf(d->name, sizeof d->name, "%s", p->name);
		if (p->action == DFS_POLICY_MIGRATE)
			to = p->to;
	}
	if (f->promote && f->force_to >= 0 &&
	    (p == NULL || p->action == DFS_POLICY_MIGRATE)) {
		/* Read often: back up, whatever would move it down. */
		to = f->force_to;
		snprintf(d->name, sizeof d->name, "promotion");
		snprintf(d->why, sizeof d->why, "read often within the window");
	} else if (f->force_to >= 0 && to < 0 &&
	    (p == NULL || p->action == DFS_POLICY_MIGRATE))
		to = f->force_to;	/* a watermark run: down unless excluded */
	d->to = to;
	if (p != NULL && p->action == DFS_POLICY_EXCLUDE)
		d->skip = MIG_SKIP_EXCLUDED;
	else if (to < 0 || to == f->tier)
		;
	else if (f->row != NULL && f->row->moved_at > 0 &&
	    f->now - f->row->moved_at <
	    c->migration.min_residency * 1000000000)
		d->skip = MIG_SKIP_RESIDENCY;
	else if (f->nlink > 1 && c->migration.hardlinks == DFS_HARDLINKS_SKIP)
		d->skip = MIG_SKIP_LINKS;
	else if (f->pinned != NULL && f->pinned(f->arg, f->id))
		d->skip = MIG_SKIP_PINNED;
	return (d->skip < 0 && to >= 0 && to != f->tier);
}
