/*
 * The paths a control request names: checked, resolved through the index
 * to rows and canonical paths, and shown again as the mount shows them.
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dfs.h"
#include "dfs-protocol.h"
#include "ctl_int.h"

/*
 * The path below the mount point that path names: an absolute path must
 * be the mount point or beneath it; a relative one is taken from the mount
 * point.  NULL if it is outside.
 */
static const char *
ctl_strip_mount(const char *path)
{
	const char	*m, *p = path, *mc, *pc;
	size_t		 ml, pl;

	if (*path != '/')
		return (path);
	m = dfs.mountpoint != NULL ? dfs.mountpoint : "/";
	while ((mc = index_component(&m, &ml)) != NULL) {
		if (ml == 1 && *mc == '.')
			continue;
		do {
			pc = index_component(&p, &pl);
		} while (pc != NULL && pl == 1 && *pc == '.');
		if (pc == NULL || pl != ml || memcmp(pc, mc, ml) != 0)
			return (NULL);
	}
	return (p);
}

/* A path from the mount root ("/a/b") as the mount shows it. */
void
ctl_mount_path(struct ctl_buf *b, const char *rel)
{
	const char	*m = dfs.mountpoint;

	if (m == NULL || strcmp(m, "/") == 0)
		ctl_buf_printf(b, "%s", rel);
	else if (strcmp(rel, "/") == 0)
		ctl_buf_printf(b, "%s", m);
	else
		ctl_buf_printf(b, "%s%s", m, rel);
}

/*
 * The index row of a path a client gave, and its canonical path from the
 * mount root in rel (PATH_MAX bytes).  0, or -1 with the reason in b.
 */
static int
ctl_lookup(struct ctl_buf *b, const char *path, struct irow *r, char *rel)
{
	const char	*sub, *e;
	int		 rv;

	if ((sub = ctl_strip_mount(path)) == NULL) {
		ctl_buf_text(b, path, 0);
		ctl_buf_printf(b, ": not under the mount point ");
		ctl_buf_text(b, dfs.mountpoint != NULL ? dfs.mountpoint : "/",
		    0);
		return (-1);
	}
	if ((rv = index_resolve(sub, r)) == 0)
		rv = index_path(r->id, rel, PATH_MAX);
	if (rv != 0) {
		ctl_buf_text(b, path, 0);
		if (rv == -ENOENT)
			ctl_buf_printf(b, ": not in the index");
		else {
			e = strerror(-rv);
			ctl_buf_printf(b, ": %c%s", tolower((unsigned char)*e),
			    e + 1);
		}
		if (rv == -ENOENT && !index_is_scanned())
			ctl_buf_printf(b, " (no full scan has completed yet)");
		return (-1);
	}
	return (0);
}

void
ctl_paths_free(struct ctl_paths *p)
{
	size_t	i;

	for (i = 0; i < p->n; i++)
		free(p->rel[i]);
	free(p->given);
	free(p->rel);
	free(p->rows);
	free(p->one);
	memset(p, 0, sizeof *p);
}

/*
 * Resolve the n paths at s, each ended by a NUL, into p: every path in the
 * index; files only if files is set.  0, or -1 with the reason in b.
 */
static int
ctl_paths_resolve(struct ctl_buf *b, const char *s, size_t n, int files,
    struct ctl_paths *p)
{
	size_t	i;

	if (n == 0)
		return (0);
	if ((p->given = calloc(n, sizeof *p->given)) == NULL ||
	    (p->rel = calloc(n, sizeof *p->rel)) == NULL ||
	    (p->rows = calloc(n, sizeof *p->rows)) == NULL) {
		ctl_paths_free(p);
		b->nomem = 1;
		return (-1);
	}
	for (i = 0; i < n; s += strlen(s) + 1, i++) {
		p->given[i] = s;
		if ((p->rel[i] = malloc(PATH_MAX)) == NULL) {
			b->nomem = 1;
			break;
		}
		p->n = i + 1;
		if (ctl_lookup(b, s, &p->rows[i], p->rel[i]) != 0)
			break;
		if (files && p->rows[i].type != S_IFREG) {
			ctl_buf_text(b, s, 0);
			ctl_buf_printf(b, ": a %s; only files migrate",
			    ctl_type(p->rows[i].type));
			break;
		}
	}
	if (i < n) {
		ctl_paths_free(p);
		return (-1);
	}
	return (0);
}

/*
 * The one path of a request (the whole payload, no NUL in it), any type,
 * resolved into p.  0, or -1 with the reason in b.
 */
int
ctl_one_path(struct ctl_client *c, struct ctl_buf *b, const char *what,
    struct ctl_paths *p)
{
	memset(p, 0, sizeof *p);
	if (memchr(c->payload, '\0', c->hdr.length) != NULL) {
		ctl_buf_printf(b, "%s: the path contains a NUL byte", what);
		return (-1);
	}
	if (!index_is_open()) {
		ctl_buf_printf(b, "%s: dfs has no index", what);
		return (-1);
	}
	if ((p->one = strndup(c->payload, c->hdr.length)) == NULL) {
		b->nomem = 1;
		return (-1);
	}
	return (ctl_paths_resolve(b, p->one, 1, 0, p));
}

/*
 * The path list after the first skip bytes of a request (each path ended
 * by a NUL), resolved into p; files only if files is set.  0, or -1 with
 * the reason in b.
 */
int
ctl_paths_at(struct ctl_client *c, struct ctl_buf *b, const char *what,
    int files, size_t skip, struct ctl_paths *p)
{
	const char	*s = c->payload + skip, *end = c->payload + c->hdr.length;
	size_t		 n = 0, len;

	memset(p, 0, sizeof *p);
	if (c->hdr.length > skip && end[-1] != '\0') {
		ctl_buf_printf(b, "%s: the path list does not end with a NUL",
		    what);
		return (-1);
	}
	for (; s < end; s += len + 1) {
		if ((len = strlen(s)) == 0) {
			ctl_buf_printf(b, "%s: an empty path", what);
			return (-1);
		}
		n++;
	}
	if (!index_is_open()) {
		ctl_buf_printf(b, "%s: dfs has no index", what);
		return (-1);
	}
	return (ctl_paths_resolve(b, c->payload + skip, n, files, p));
}
