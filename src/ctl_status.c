/*
 * Control commands about the mount as a whole: status, reload and stats
 * (text, JSON, or Prometheus for stats).
 */
#include "config.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dfs.h"
#include "dfs-protocol.h"
#include "ctl_int.h"

/* Set by ctl_configure; the hook returns 0, or -1 and a cause. */
static const char	*ctl_config_file;	/* for status; may be NULL */
static int		(*ctl_reload_hook)(char **);

/*
 * What status and reload show as the config file (NULL: none) and what
 * reload calls.  conf_file must outlive the control socket.
 */
void
ctl_configure(const char *conf_file, int (*reload)(char **))
{
	ctl_config_file = conf_file;
	ctl_reload_hook = reload;
}

/* How long status waits for the tiers' answers before it shows the last. */
#define CTL_TIER_WAIT_MS	300

/* What tier t's file system supports, as the probe at start found it. */
static void
ctl_tier_caps_json(struct ctl_buf *b, int t)
{
	const char	*name;
	unsigned	 i;

	ctl_buf_printf(b, ",\"fstype\":");
	ctl_buf_json(b, dfs.tiers[t].fstype);
	ctl_buf_printf(b, ",\"supports\":{");
	for (i = 0; (name = tier_cap_name(1u << i)) != NULL; i++)
		ctl_buf_printf(b, "%s\"%s\":%s", i == 0 ? "" : ",", name,
		    tier_has(t, 1u << i) ? "true" : "false");
	ctl_buf_printf(b, "},\"stable_inodes_from\":\"%s\"",
	    dfs.tiers[t].inodes_set ? "config" : "probe");
}

/* The same, a line per tier under the usage table. */
static void
ctl_tier_caps_text(struct ctl_buf *b, int wname)
{
	static const struct {
		const char	*head;
		unsigned	 cap;
	} col[] = {
		{ "NOREPLACE", TIER_CAP_NOREPLACE },
		{ "EXCHANGE", TIER_CAP_EXCHANGE },
		{ "LINKS", TIER_CAP_LINK },
		{ "NLINK", TIER_CAP_NLINK },
		{ "XATTRS", TIER_CAP_XATTR },
		{ "NS_TIMES", TIER_CAP_NSEC },
	};
	size_t	 i;
	int	 t, wfs = 11;

	for (t = 0; t < dfs.ntiers; t++)
		if ((int)strlen(dfs.tiers[t].fstype) > wfs)
			wfs = strlen(dfs.tiers[t].fstype);
	ctl_buf_printf(b, "%-*s  %-*s", wname, "TIER", wfs, "FILE SYSTEM");
	for (i = 0; i < sizeof col / sizeof col[0]; i++)
		ctl_buf_printf(b, "  %s", col[i].head);
	ctl_buf_printf(b, "  INODES\n");
	for (t = 0; t < dfs.ntiers; t++) {
		ctl_buf_text(b, dfs.tiers[t].name, wname);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, dfs.tiers[t].fstype, wfs);
		for (i = 0; i < sizeof col / sizeof col[0]; i++)
			ctl_buf_printf(b, "  %-*s", (int)strlen(col[i].head),
			    tier_has(t, col[i].cap) ? "yes" : "no");
		ctl_buf_printf(b, "  %s%s\n",
		    tier_has(t, TIER_CAP_STABLE_INO) ? "stable" : "unstable",
		    dfs.tiers[t].inodes_set ? " (config)" : "");
	}
}

int
ctl_cmd_status(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	struct tier_space	 sp[DFS_MAX_TIERS];
	struct scan_progress	 scan;
	struct mig_status	 mig;
	uint64_t		 files[DFS_MAX_TIERS], bytes[DFS_MAX_TIERS];
	uint64_t		 need;
	char			 used[16], total[16], held[16];
	unsigned long		 nodes = node_count(), nconflicts;
	long			 up;
	int			 i, wname = 4, wpath = 4, haveconflicts;
	int			 haveusage, high, low;

	scan_progress(&scan);
	haveconflicts = index_conflict_count(&nconflicts) == 0;
	haveusage = index_tier_usage(dfs.ntiers, files, bytes) == 0;
	migrate_status(&mig);
	up = ctl_uptime();
	tier_space(sp, CTL_TIER_WAIT_MS);

	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"version\":");
		ctl_buf_json(b, PACKAGE_VERSION);
		ctl_buf_printf(b, ",\"uptime\":%ld,\"mountpoint\":", up);
		ctl_buf_json(b, dfs.mountpoint);
		ctl_buf_printf(b, ",\"config\":");
		ctl_buf_json(b, ctl_config_file);
		ctl_buf_printf(b, ",\"nodes\":%lu,\"index\":", nodes);
		ctl_buf_json(b, dfs.index_path);
		ctl_buf_printf(b, ",\"conflicts\":");
		if (haveconflicts)
			ctl_buf_printf(b, "%lu", nconflicts);
		else
			ctl_buf_printf(b, "null");
		ctl_buf_printf(b, ",\"scan\":");
		ctl_scan_json(b, &scan);
		ctl_buf_printf(b, ",\"migration\":");
		ctl_runs(b, &mig, 1);
		ctl_buf_printf(b, ",\"tiers\":[");
		for (i = 0; i < dfs.ntiers; i++) {
			ctl_buf_printf(b, "%s{\"name\":", i == 0 ? "" : ",");
			ctl_buf_json(b, dfs.tiers[i].name);
			ctl_buf_printf(b, ",\"path\":");
			ctl_buf_json(b, dfs.tiers[i].path);
			ctl_buf_printf(b, ",\"answering\":%s",
			    sp[i].waiting >= 0 ? "false" : "true");
			if (sp[i].waiting >= 0)
				ctl_buf_printf(b, ",\"not_answering_for\":%ld",
				    sp[i].waiting);
			if (sp[i].error != 0) {
				ctl_buf_printf(b, ",\"error\":");
				ctl_buf_json(b, strerror(sp[i].error));
			} else if (!sp[i].known) {
				ctl_buf_printf(b, ",\"error\":\"not answering\"");
			} else {
				ctl_buf_printf(b, ",\"used\":%" PRIu64
				    ",\"available\":%" PRIu64 ",\"total\":%"
				    PRIu64 ",\"percent\":%d", sp[i].used,
				    sp[i].avail, sp[i].total, sp[i].percent);
				need = tier_min_free(i, sp[i].total);
				ctl_buf_printf(b, ",\"min_free\":%" PRIu64
				    ",\"room\":%s", need, sp[i].total == 0 ||
				    sp[i].avail > need ? "true" : "false");
			}
			if (haveusage)
				ctl_buf_printf(b, ",\"files\":%" PRIu64
				    ",\"bytes\":%" PRIu64, files[i], bytes[i]);
			else
				ctl_buf_printf(b, ",\"files\":null,"
				    "\"bytes\":null");
			if (migrate_watermarks(i, &high, &low))
				ctl_buf_printf(b, ",\"high_watermark\":%d,"
				    "\"low_watermark\":%d", high, low);
			else
				ctl_buf_printf(b, ",\"high_watermark\":null,"
				    "\"low_watermark\":null");
			ctl_tier_caps_json(b, i);
			ctl_buf_putc(b, '}');
		}
		ctl_buf_printf(b, "]}\n");
		return (DFS_STATUS_OK);
	}

	ctl_buf_printf(b, "dfs %s, up ", PACKAGE_VERSION);
	if (up >= 86400)
		ctl_buf_printf(b, "%ldd ", up / 86400);
	ctl_buf_printf(b, "%02ld:%02ld:%02ld\n", up % 86400 / 3600,
	    up % 3600 / 60, up % 60);
	ctl_buf_printf(b, "mount point  ");
	ctl_buf_text(b, dfs.mountpoint != NULL ? dfs.mountpoint : "-", 0);
	ctl_buf_printf(b, "\nconfig file  ");
	ctl_buf_text(b, ctl_config_file != NULL ? ctl_config_file : "none", 0);
	ctl_buf_printf(b, "\nnodes        %lu\nindex        ", nodes);
	ctl_buf_text(b, dfs.index_path != NULL ? dfs.index_path : "none", 0);
	ctl_buf_printf(b, "\nscan         ");
	ctl_scan_line(b, &scan);
	if (haveconflicts)
		ctl_buf_printf(b, "\nconflicts    %lu%s", nconflicts,
		    nconflicts != 0 ? " (dfsctl conflicts lists them)" : "");
	ctl_buf_printf(b, "\n\n");

	for (i = 0; i < dfs.ntiers; i++) {
		if ((int)strlen(dfs.tiers[i].name) > wname)
			wname = strlen(dfs.tiers[i].name);
		if ((int)strlen(dfs.tiers[i].path) > wpath)
			wpath = strlen(dfs.tiers[i].path);
	}
	ctl_buf_printf(b, "%-*s  %-*s  %7s  %7s  %4s  %8s  %7s  %s\n", wname,
	    "TIER", wpath, "PATH", "USED", "SIZE", "USE%", "FILES", "DATA",
	    "WATERMARKS");
	for (i = 0; i < dfs.ntiers; i++) {
		ctl_buf_text(b, dfs.tiers[i].name, wname);
		ctl_buf_printf(b, "  ");
		ctl_buf_text(b, dfs.tiers[i].path, wpath);
		if (sp[i].waiting >= 0) {
			ctl_buf_printf(b, "  not answering for %ld s\n",
			    sp[i].waiting);
			continue;
		}
		if (sp[i].error != 0) {
			ctl_buf_printf(b, "  %s\n", strerror(sp[i].error));
			continue;
		}
		ctl_size(used, sizeof used, sp[i].used);
		ctl_size(total, sizeof total, sp[i].total);
		ctl_buf_printf(b, "  %7s  %7s  %3d%%", used, total,
		    sp[i].percent);
		if (haveusage) {
			ctl_size(held, sizeof held, bytes[i]);
			ctl_buf_printf(b, "  %8" PRIu64 "  %7s", files[i],
			    held);
		} else
			ctl_buf_printf(b, "  %8s  %7s", "-", "-");
		/* Usage against the watermarks that trigger a run. */
		if (migrate_watermarks(i, &high, &low))
			ctl_buf_printf(b, "  high %d%%, low %d%%%s", high,
			    low, sp[i].percent > high ? " (over)" : "");
		else
			ctl_buf_printf(b, "  -");
		/* New files are going elsewhere: say why. */
		need = tier_min_free(i, sp[i].total);
		if (sp[i].total != 0 && sp[i].avail <= need)
			ctl_buf_printf(b, "  (short of min_free, new files go "
			    "to the next tier)");
		ctl_buf_putc(b, '\n');
	}
	ctl_buf_putc(b, '\n');
	ctl_tier_caps_text(b, wname);
	ctl_buf_putc(b, '\n');
	ctl_runs(b, &mig, 0);
	return (DFS_STATUS_OK);
}

int
ctl_cmd_reload(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	char	*cause = NULL;

	log_info("reload requested by uid %ld (pid %ld)", (long)c->uid,
	    (long)c->pid);
	if (ctl_reload_hook == NULL) {
		ctl_buf_printf(b, "reload is not available");
		return (DFS_STATUS_FAILED);
	}
	if (ctl_reload_hook(&cause) != 0) {
		ctl_buf_printf(b, "%s", cause != NULL ? cause :
		    "reload failed");
		free(cause);
		return (DFS_STATUS_FAILED);
	}
	free(cause);
	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"reloaded\":true,\"config\":");
		ctl_buf_json(b, ctl_config_file);
		ctl_buf_printf(b, "}\n");
	} else {
		ctl_buf_printf(b, "reloaded ");
		ctl_buf_text(b, ctl_config_file != NULL ? ctl_config_file :
		    "the configuration", 0);
		ctl_buf_putc(b, '\n');
	}
	return (DFS_STATUS_OK);
}

/* The counters of struct tier_stats, and their Prometheus families. */
enum ctl_family {
	CTL_CALLS,
	CTL_READ,
	CTL_WRITTEN,
	CTL_ERRORS
};

static const struct {
	const char	*name;
	size_t		 off;
	enum ctl_family	 family;
} ctl_counters[] = {
	{ "lookup", offsetof(struct tier_stats, lookup), CTL_CALLS },
	{ "readdir", offsetof(struct tier_stats, readdir), CTL_CALLS },
	{ "open", offsetof(struct tier_stats, open), CTL_CALLS },
	{ "create", offsetof(struct tier_stats, create), CTL_CALLS },
	{ "unlink", offsetof(struct tier_stats, unlink), CTL_CALLS },
	{ "rename", offsetof(struct tier_stats, rename), CTL_CALLS },
	{ "setattr", offsetof(struct tier_stats, setattr), CTL_CALLS },
	{ "xattr", offsetof(struct tier_stats, xattr), CTL_CALLS },
	{ "bytes_read", offsetof(struct tier_stats, bytes_read), CTL_READ },
	{ "bytes_written", offsetof(struct tier_stats, bytes_written),
	    CTL_WRITTEN },
	{ "errors", offsetof(struct tier_stats, errors), CTL_ERRORS },
};

#define CTL_NCOUNTERS	(sizeof ctl_counters / sizeof ctl_counters[0])

static const struct {
	enum ctl_family	 family;
	const char	*metric;
	const char	*help;
} ctl_families[] = {
	{ CTL_CALLS, "dfs_backing_calls_total",
	    "Calls dfs made to a tier's backing file system, by operation." },
	{ CTL_READ, "dfs_backing_read_bytes_total",
	    "Bytes dfs read from a tier." },
	{ CTL_WRITTEN, "dfs_backing_written_bytes_total",
	    "Bytes dfs wrote to a tier." },
	{ CTL_ERRORS, "dfs_backing_errors_total",
	    "Backing calls that failed, ENOENT probes excepted." },
};

static uint64_t
ctl_counter(int t, size_t i)
{
	atomic_uint_fast64_t	*p;

	p = (atomic_uint_fast64_t *)((char *)&dfs.tiers[t].stats +
	    ctl_counters[i].off);
	return (atomic_load_explicit(p, memory_order_relaxed));
}

int
ctl_cmd_stats(struct ctl_client *c, struct ctl_buf *b,
    const struct ctl_paths *p)
{
	uint64_t	v[DFS_MAX_TIERS][CTL_NCOUNTERS];
	size_t		i, f;
	int		t, w = 8;

	for (t = 0; t < dfs.ntiers; t++) {
		for (i = 0; i < CTL_NCOUNTERS; i++)
			v[t][i] = ctl_counter(t, i);
	}

	if (c->hdr.flags & DFS_FLAG_PROMETHEUS) {
		for (f = 0; f < sizeof ctl_families / sizeof ctl_families[0];
		    f++) {
			ctl_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n",
			    ctl_families[f].metric, ctl_families[f].help,
			    ctl_families[f].metric);
			for (t = 0; t < dfs.ntiers; t++) {
				for (i = 0; i < CTL_NCOUNTERS; i++) {
					if (ctl_counters[i].family !=
					    ctl_families[f].family)
						continue;
					ctl_buf_printf(b, "%s{tier=\"",
					    ctl_families[f].metric);
					ctl_buf_label(b, dfs.tiers[t].name);
					if (ctl_families[f].family ==
					    CTL_CALLS)
						ctl_buf_printf(b, "\",op=\"%s",
						    ctl_counters[i].name);
					ctl_buf_printf(b, "\"} %" PRIu64 "\n",
					    v[t][i]);
				}
			}
		}
		return (DFS_STATUS_OK);
	}

	if (c->hdr.flags & DFS_FLAG_JSON) {
		ctl_buf_printf(b, "{\"tiers\":[");
		for (t = 0; t < dfs.ntiers; t++) {
			ctl_buf_printf(b, "%s{\"name\":", t == 0 ? "" : ",");
			ctl_buf_json(b, dfs.tiers[t].name);
			ctl_buf_printf(b, ",\"path\":");
			ctl_buf_json(b, dfs.tiers[t].path);
			for (i = 0; i < CTL_NCOUNTERS; i++) {
				ctl_buf_printf(b, ",\"%s\":%" PRIu64,
				    ctl_counters[i].name, v[t][i]);
			}
			ctl_buf_putc(b, '}');
		}
		ctl_buf_printf(b, "]}\n");
		return (DFS_STATUS_OK);
	}

	/* A column per tier. */
	for (t = 0; t < dfs.ntiers; t++) {
		if ((int)strlen(dfs.tiers[t].name) > w)
			w = strlen(dfs.tiers[t].name);
	}
	ctl_buf_printf(b, "%-13s", "");
	for (t = 0; t < dfs.ntiers; t++) {
		ctl_buf_printf(b, "  %*s", w - (int)strlen(dfs.tiers[t].name),
		    "");
		ctl_buf_text(b, dfs.tiers[t].name, 0);
	}
	ctl_buf_putc(b, '\n');
	for (i = 0; i < CTL_NCOUNTERS; i++) {
		ctl_buf_printf(b, "%-13s", ctl_counters[i].name);
		for (t = 0; t < dfs.ntiers; t++)
			ctl_buf_printf(b, "  %*" PRIu64, w, v[t][i]);
		ctl_buf_putc(b, '\n');
	}
	return (DFS_STATUS_OK);
}
