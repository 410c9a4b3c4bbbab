/*
 * Control commands that read the index: where a path lives, the conflicts
 * the scan found, and pins (set, cleared, listed).
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

/* The tiers of a row as names, "fast,slow" or a JSON array. */
static void
ctl_tier_names(struct ctl_buf *b, unsigned mask, int json)
{
	int	t, n = 0;

	if (json)
		ctl_buf_putc(b, '[');
	for (t = 0; t < dfs.ntiers; t++) {
		if (!(mask & (1u << t)))
			continue;
		if (n++ != 0)
			ctl_buf_putc(b, ',');
		if (json)
			ctl_buf_json(b, dfs.tiers[t].name);
		else
			ctl_buf_text(b, dfs.tiers[t].name, 0);
	}
	if (json)
		ctl_buf_putc(b, ']');
	else if (n == 0)
		ctl_buf_putc(b, '-');
}

static unsigned
ctl_row_tiers(const struct irow *r)
{
	if (r->type == S_IFDIR && r->tiers != 0)
		return (r->tiers);
	return (r->tier >= 0 && r->tier < DFS_MAX_TIERS ? 1u << r->tier : 0);
}

int
ctl_cmd_where(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	const struct irow	*r = &p->rows[0];
	const char		*path = p->given[0];

	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"path\":");
		ctl_buf_json(b, path);
		ctl_buf_printf(b, ",\"inode\":%llu,\"type\":\"%s\",\"tiers\":",
		    (unsigned long long)r->id, ctl_type(r->type));
		ctl_tier_names(b, ctl_row_tiers(r), 1);
		ctl_buf_printf(b, "}\n");
	} else {
		ctl_buf_text(b, path, 0);
		ctl_buf_printf(b, "  ");
		ctl_tier_names(b, ctl_row_tiers(r), 0);
		ctl_buf_putc(b, '\n');
	}
	return (DFS_STATUS_OK);
}

/*
 * The path of name in directory parent as the mount shows it, walking
 * the index up the parents; "?" stands for a part it cannot name.
 */
static void
ctl_index_path(struct ctl_buf *b, fuse_ino_t parent, const char *name)
{
	char		**names = NULL;
	char		  buf[NAME_MAX + 1];
	fuse_ino_t	  id = parent, up;
	size_t		  n = 0, cap = 0, i;
	int		  unknown = 0;

	while (id != FUSE_ROOT_ID) {
		if (n == 4096 || index_name(id, &up, buf, sizeof buf) != 0) {
			unknown = 1;
			break;
		}
		if (array_grow(&names, &cap, n + 1, sizeof *names) != 0) {
			b->nomem = 1;
			break;
		}
		if ((names[n] = strdup(buf)) == NULL) {
			b->nomem = 1;
			break;
		}
		n++;
		id = up;
	}
	ctl_buf_printf(b, "%s", dfs.mountpoint != NULL &&
	    strcmp(dfs.mountpoint, "/") != 0 ? dfs.mountpoint : "");
	if (unknown)
		ctl_buf_printf(b, "/?");
	for (i = n; i > 0; i--) {
		ctl_buf_printf(b, "/%s", names[i - 1]);
		free(names[i - 1]);
	}
	free(names);
	ctl_buf_printf(b, "/%s", name);
}

int
ctl_cmd_conflicts(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	struct index_conflict	*v;
	struct ctl_buf		 pb;
	struct irow		 r;
	size_t			 n, i;
	int			 json = c->hdr.flags & DFS_FLAG_JSON, rv;

	if ((rv = index_conflicts(&v, &n)) != 0) {
		ctl_buf_printf(b, "conflicts: %s", rv == -ENXIO ?
		    "dfs has no index" : strerror(-rv));
		return (DFS_STATUS_FAILED);
	}
	memset(&pb, 0, sizeof pb);
	if (json)
		ctl_buf_printf(b, "{\"conflicts\":[");
	for (i = 0; i < n && !b->nomem; i++) {
		if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
			break;
		pb.len = 0;
		ctl_index_path(&pb, v[i].parent, v[i].name);
		if (pb.nomem) {
			b->nomem = 1;
			break;
		}
		if (index_lookup(v[i].parent, v[i].name, &r) != 0)
			memset(&r, 0, sizeof r);
		if (json) {
			ctl_buf_printf(b, "%s{\"path\":", i == 0 ? "" : ",");
			ctl_buf_json(b, pb.s);
			ctl_buf_printf(b, ",\"served\":");
			if (r.id != 0)
				ctl_tier_names(b, ctl_row_tiers(&r), 1);
			else
				ctl_buf_printf(b, "null");
			ctl_buf_printf(b, ",\"shadowed\":");
			ctl_tier_names(b, v[i].tiers, 1);
			ctl_buf_putc(b, '}');
		} else {
			ctl_buf_text(b, pb.s, 0);
			ctl_buf_printf(b, "  ");
			if (r.id != 0)
				ctl_tier_names(b, ctl_row_tiers(&r), 0);
			else
				ctl_buf_putc(b, '-');
			ctl_buf_printf(b, "  shadowed on ");
			ctl_tier_names(b, v[i].tiers, 0);
			ctl_buf_putc(b, '\n');
		}
	}
	if (json)
		ctl_buf_printf(b, "],\"total\":%zu,\"truncated\":%s}\n", n,
		    i < n ? "true" : "false");
	else if (n == 0)
		ctl_buf_printf(b, "no conflicts\n");
	else if (i < n)
		ctl_buf_printf(b, "... and %zu more\n", n - i);
	free(pb.s);
	index_conflicts_free(v, n);
	return (DFS_STATUS_OK);
}

static int
ctl_pin(struct ctl_client *c, struct ctl_buf *b, const struct ctl_paths *p,
    int pin)
{
	const struct irow	*r = &p->rows[0];
	const char		*what = pin ? "pin" : "unpin", *e;
	const char		*path = p->given[0], *rel = p->rel[0];
	int			 err;

	if ((err = migrate_pin(rel, pin)) != 0) {
		ctl_buf_text(b, path, 0);
		e = strerror(-err);
		ctl_buf_printf(b, ": %s: %c%s", what,
		    tolower((unsigned char)*e), e + 1);
		return (DFS_STATUS_FAILED);
	}
	log_info("%s %s by uid %ld (pid %ld)", pin ? "pinned" : "unpinned",
	    rel, (long)c->uid, (long)c->pid);
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"path\":");
		ctl_buf_json(b, path);
		ctl_buf_printf(b, ",\"inode\":%llu,\"pinned\":%s}\n",
		    (unsigned long long)r->id, pin ? "true" : "false");
	} else {
		ctl_buf_printf(b, "%s ", pin ? "pinned" : "unpinned");
		ctl_buf_text(b, path, 0);
		ctl_buf_putc(b, '\n');
	}
	return (DFS_STATUS_OK);
}

int
ctl_cmd_pin(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	return (ctl_pin(c, b, p, 1));
}

int
ctl_cmd_unpin(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	return (ctl_pin(c, b, p, 0));
}

int
ctl_cmd_pins(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	struct ctl_buf	 pb;
	struct irow	 r;
	fuse_ino_t	*ids;
	char		 rel[PATH_MAX];
	size_t		 n, i, shown = 0;
	int		 json = c->hdr.flags & DFS_FLAG_JSON, rv;

	if ((rv = index_pins(&ids, &n)) != 0) {
		ctl_buf_printf(b, "pins: %s", rv == -ENXIO ?
		    "dfs has no index" : strerror(-rv));
		return (DFS_STATUS_FAILED);
	}
	memset(&pb, 0, sizeof pb);
	if (json)
		ctl_buf_printf(b, "{\"pins\":[");
	for (i = 0; i < n && !b->nomem; i++) {
		if (b->len + CTL_TAIL > DFS_PROTO_MAX_PAYLOAD)
			break;
		/* Gone since the query: not a pin any more. */
		if (index_get(ids[i], &r) != 0 ||
		    index_path(ids[i], rel, sizeof rel) != 0)
			continue;
		pb.len = 0;
		ctl_mount_path(&pb, rel);
		if (pb.nomem) {
			b->nomem = 1;
			break;
		}
		if (json) {
			ctl_buf_printf(b, "%s{\"path\":", shown == 0 ? "" :
			    ",");
			ctl_buf_json(b, pb.s);
			ctl_buf_printf(b, ",\"inode\":%llu,\"type\":\"%s\"}",
			    (unsigned long long)r.id, ctl_type(r.type));
		} else {
			ctl_buf_text(b, pb.s, 0);
			ctl_buf_putc(b, '\n');
		}
		shown++;
	}
	if (json)
		ctl_buf_printf(b, "],\"total\":%zu,\"truncated\":%s}\n", shown,
		    i < n ? "true" : "false");
	else if (shown == 0)
		ctl_buf_printf(b, "no pinned paths\n");
	else if (i < n)
		ctl_buf_printf(b, "... and %zu more\n", n - i);
	free(pb.s);
	free(ids);
	return (DFS_STATUS_OK);
}
