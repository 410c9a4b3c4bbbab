/*
 * The configuration file: a libconfuse schema with parsing and validation
 * callbacks, then the translation into a read-only struct dfs_config.
 *
 * Every refusal names the file, the line, the directive, the bad value and
 * what is allowed:
 *
 *	/etc/dfs.conf:12: tier "archive": high_watermark "120": must be a
 *	percentage 1-100
 *
 * libconfuse parses; its parsing callbacks (config_parse_*) check each
 * value, its validation callbacks (config_check_*) each section as it
 * closes, and config_build what spans sections.  libconfuse does not keep
 * the line of each option, so the parsing callbacks note it (config_note)
 * for the later checks.  Comments are blanked before libconfuse sees the
 * text, as its lexer miscounts lines after them (config_strip).
 *
 * libconfuse's lexer and parser use globals, so loads are serialised by
 * config_lock; the callbacks reach the load in progress through config_cur.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <confuse.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "dfs.h"
#include "config_int.h"

#ifndef DFS_STATEDIR
#define DFS_STATEDIR	"/var/lib/dfs"
#endif

#define CONFIG_TIMEOUT_MAX	86400.0
#define CONFIG_FILE_MAX		(1024 * 1024)

/* Where a directive was seen: section, option name, line. */
struct config_note {
	cfg_t		*sec;
	const char	*name;
	int		 line;
};

/* One load in progress. */
struct config_load {
	const char		*file;
	cfg_t			*root;
	char			*cause;		/* the first error */
	struct config_note	*notes;
	size_t			 nnotes;
	int			 migration_line; /* end of the first migration {} */
};

static pthread_mutex_t		 config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_load	*config_cur;

/* Words accepted by the enumerated options. */
struct config_word {
	const char	*option;
	const char	*word;
	long		 value;
};

static const struct config_word config_words[] = {
	{ "log_level", "error", LOG_ERR },
	{ "log_level", "warn", LOG_WARNING },
	{ "log_level", "info", LOG_INFO },
	{ "log_level", "debug", LOG_DEBUG },
	{ "action", "migrate", DFS_POLICY_MIGRATE },
	{ "action", "exclude", DFS_POLICY_EXCLUDE },
	{ "age_by", "mtime", DFS_AGE_MTIME },
	{ "age_by", "ctime", DFS_AGE_CTIME },
	{ "age_by", "atime", DFS_AGE_ATIME },
	{ "age_by", "access", DFS_AGE_ACCESS },
	{ "hardlinks", "move", DFS_HARDLINKS_MOVE },
	{ "hardlinks", "skip", DFS_HARDLINKS_SKIP },
	{ "stable_inodes", "auto", DFS_INODES_AUTO },
	{ "stable_inodes", "yes", DFS_INODES_STABLE },
	{ "stable_inodes", "no", DFS_INODES_UNSTABLE },
};

static void	config_error(int, cfg_t *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	config_verror(int, cfg_t *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));
static void	config_errfunc(cfg_t *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));
static int	config_bad(cfg_t *, cfg_opt_t *, const char *, const char *);
static int	config_note(cfg_t *, cfg_opt_t *);

static int	config_parse_path(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_socket(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_word(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_bool(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_seconds(cfg_t *, cfg_opt_t *, const char *,
		    void *);
static int	config_parse_percent(cfg_t *, cfg_opt_t *, const char *,
		    void *);
static int	config_parse_count(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_size(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_room(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_duration(cfg_t *, cfg_opt_t *, const char *,
		    void *);
static int	config_parse_tierref(cfg_t *, cfg_opt_t *, const char *,
		    void *);
static int	config_parse_glob(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_owner(cfg_t *, cfg_opt_t *, const char *, void *);
static int	config_parse_fuseopt(cfg_t *, cfg_opt_t *, const char *,
		    void *);

static int	config_check_tier(cfg_t *, cfg_opt_t *);
static int	config_check_policy(cfg_t *, cfg_opt_t *);
static int	config_check_migration(cfg_t *, cfg_opt_t *);

static cfg_opt_t config_tier_opts[] = {
	CFG_STR_CB("path", NULL, CFGF_NODEFAULT, config_parse_path),
	CFG_INT_CB("high_watermark", 0, CFGF_NODEFAULT, config_parse_percent),
	CFG_INT_CB("low_watermark", 0, CFGF_NODEFAULT, config_parse_percent),
	CFG_STR_CB("min_free", DFS_MIN_FREE_DEFAULT, CFGF_NONE,
	    config_parse_room),
	CFG_INT_CB("stable_inodes", DFS_INODES_AUTO, CFGF_NONE,
	    config_parse_word),
	CFG_FLOAT_CB("timeout", DFS_TIER_TIMEOUT, CFGF_NONE,
	    config_parse_seconds),
	CFG_END()
};

static cfg_opt_t config_policy_opts[] = {
	CFG_INT_CB("action", DFS_POLICY_MIGRATE, CFGF_NONE, config_parse_word),
	CFG_STR_CB("from", NULL, CFGF_NODEFAULT, config_parse_tierref),
	CFG_STR_CB("to", NULL, CFGF_NODEFAULT, config_parse_tierref),
	CFG_STR_LIST_CB("paths", NULL, CFGF_NODEFAULT, config_parse_glob),
	CFG_STR_CB("min_size", NULL, CFGF_NODEFAULT, config_parse_size),
	CFG_STR_CB("max_size", NULL, CFGF_NODEFAULT, config_parse_size),
	CFG_STR_CB("owner", NULL, CFGF_NODEFAULT, config_parse_owner),
	CFG_STR_CB("age", NULL, CFGF_NODEFAULT, config_parse_duration),
	CFG_INT_CB("age_by", DFS_AGE_MTIME, CFGF_NONE, config_parse_word),
	CFG_END()
};

static cfg_opt_t config_migration_opts[] = {
	CFG_STR_CB("interval", "1h", CFGF_NONE, config_parse_duration),
	CFG_INT_CB("max_files", 0, CFGF_NONE, config_parse_count),
	CFG_STR_CB("max_bytes", "0", CFGF_NONE, config_parse_size),
	CFG_STR_CB("bandwidth", "0", CFGF_NONE, config_parse_size),
	CFG_BOOL_CB("verify", cfg_false, CFGF_NONE, config_parse_bool),
	CFG_INT_CB("hardlinks", DFS_HARDLINKS_MOVE, CFGF_NONE,
	    config_parse_word),
	CFG_INT_CB("promote_after_reads", 0, CFGF_NONE, config_parse_count),
	CFG_STR_CB("promote_window", "1d", CFGF_NONE, config_parse_duration),
	CFG_STR_CB("min_residency", "1d", CFGF_NONE, config_parse_duration),
	CFG_END()
};

static cfg_opt_t config_opts[] = {
	CFG_STR_CB("mountpoint", NULL, CFGF_NODEFAULT, config_parse_path),
	CFG_STR_CB("state_dir", DFS_STATEDIR, CFGF_NONE, config_parse_path),
	CFG_STR_CB("socket", NULL, CFGF_NODEFAULT, config_parse_socket),
	CFG_INT_CB("log_level", LOG_INFO, CFGF_NONE, config_parse_word),
	CFG_BOOL_CB("allow_other", cfg_false, CFGF_NONE, config_parse_bool),
	CFG_STR_LIST_CB("options", NULL, CFGF_NODEFAULT, config_parse_fuseopt),
	CFG_FLOAT_CB("attr_timeout", 60.0, CFGF_NONE, config_parse_seconds),
	CFG_FLOAT_CB("entry_timeout", 60.0, CFGF_NONE, config_parse_seconds),
	CFG_SEC("tier", config_tier_opts,
	    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("policy", config_policy_opts,
	    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("migration", config_migration_opts, CFGF_NONE),
	CFG_END()
};

/*
 * Errors.  Only the first is kept: it is the one the parse stopped on.
 */

static void
config_verror(int line, cfg_t *sec, const char *fmt, va_list ap)
{
	struct config_load	*cl = config_cur;
	char			*msg, ctx[CONFIG_NAME_MAX * 2 + 32];
	int			 n;

	if (cl->cause != NULL)
		return;
	if (vasprintf(&msg, fmt, ap) == -1) {
		cl->cause = strdup("out of memory");
		return;
	}

	ctx[0] = '\0';
	if (sec != NULL && sec != cl->root) {
		if (sec->title != NULL)
			snprintf(ctx, sizeof ctx, "%s \"%s\": ", sec->name,
			    sec->title);
		else
			snprintf(ctx, sizeof ctx, "%s: ", sec->name);
	}
	if (line > 0)
		n = asprintf(&cl->cause, "%s:%d: %s%s", cl->file, line, ctx,
		    msg);
	else
		n = asprintf(&cl->cause, "%s: %s%s", cl->file, ctx, msg);
	if (n == -1)
		cl->cause = strdup("out of memory");
	free(msg);
}

static void
config_error(int line, cfg_t *sec, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	config_verror(line, sec, fmt, ap);
	va_end(ap);
}

/* Append to a list in a fixed buffer: "a, b, c"; truncates quietly. */
static void
config_append(char *buf, size_t len, const char *s)
{
	size_t	used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used == 0 ? "" : ", ", s);
}

/* The names a section allows, for "unknown directive" messages. */
static void
config_allowed(cfg_opt_t *opts, char *buf, size_t len)
{
	size_t	i;

	buf[0] = '\0';
	for (i = 0; opts[i].name != NULL; i++)
		config_append(buf, len, opts[i].name);
}

/*
 * libconfuse's own errors (syntax, unknown option, duplicate section
 * title) come here.  The two the user most often meets are reworded into
 * dfs's form; the others keep libconfuse's words after file:line:.
 */
static void
config_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	struct config_load	*cl = config_cur;
	const char		*name, *kind;
	char			 allowed[512], hint[128];
	cfg_opt_t		*sec;
	size_t			 i;
	int			 t, p;

	if (strcmp(fmt, "no such option '%s'") == 0) {
		name = va_arg(ap, const char *);
		config_allowed(cfg->opts, allowed, sizeof allowed);

		/*
		 * A top-level directive inside a section: a } is missing.  A
		 * directive outside the section it belongs in: say which.
		 */
		hint[0] = '\0';
		for (sec = cl->root->opts; cfg != cl->root && sec->name != NULL;
		    sec++) {
			if (strcmp(sec->name, name) == 0) {
				snprintf(hint, sizeof hint, " (a \"}\" missing "
				    "before it?)");
				break;
			}
		}
		for (sec = cl->root->opts; hint[0] == '\0' && sec->name != NULL;
		    sec++) {
			if (sec->type != CFGT_SEC ||
			    strcmp(sec->name, cfg->name) == 0)
				continue;
			for (i = 0; sec->subopts[i].name != NULL; i++) {
				if (strcmp(sec->subopts[i].name, name) == 0)
					break;
			}
			if (sec->subopts[i].name != NULL) {
				snprintf(hint, sizeof hint,
				    " (\"%s\" belongs in a %s section)", name,
				    sec->name);
				break;
			}
		}
		config_error(cfg->line, cfg,
		    "unknown directive \"%s\"%s; allowed here: %s", name, hint,
		    allowed);
		return;
	}
	if (strcmp(fmt, "found duplicate title '%s'") == 0) {
		name = va_arg(ap, const char *);
		t = cfg_opt_gettsec(cfg_getopt(cfg, "tier"), name) != NULL;
		p = cfg_opt_gettsec(cfg_getopt(cfg, "policy"), name) != NULL;
		if (t && !p)
			kind = "tier";
		else if (p && !t)
			kind = "policy";
		else
			kind = "tier or policy";
		config_error(cfg->line, NULL,
		    "%s \"%s\": defined twice; each %s needs a name of its own",
		    kind, name, kind);
		return;
	}
	if (strcmp(fmt, "premature end of file") == 0) {
		config_error(cfg->line, cfg, "premature end of file: a "
		    "directive without its value, or a \" left open?");
		return;
	}
	config_verror(cfg->line, cfg, fmt, ap);
}

/* A bad value: 'DIRECTIVE "VALUE": WHAT IS ALLOWED', with a hint for ;. */
static int
config_bad(cfg_t *cfg, cfg_opt_t *opt, const char *value, const char *allowed)
{
	size_t		 len = strlen(value);
	const char	*hint = "";

	if (len != 0 && value[len - 1] == ';')
		hint = " (drop the \";\": directives end at a newline)";
	config_error(cfg->line, cfg, "%s \"%s\": %s%s", opt->name, value,
	    allowed, hint);
	return (-1);
}

/*
 * Note the line of a directive for the checks that run later.  A directive
 * given twice in one section is refused (lists excepted: += appends).
 */
static int
config_note(cfg_t *cfg, cfg_opt_t *opt)
{
	struct config_load	*cl = config_cur;
	struct config_note	*n;
	size_t			 i;

	if (!(opt->flags & CFGF_LIST)) {
		for (i = 0; i < cl->nnotes; i++) {
			n = &cl->notes[i];
			if (n->sec == cfg && strcmp(n->name, opt->name) == 0) {
				config_error(cfg->line, cfg,
				    "%s: given twice (first on line %d); "
				    "keep one", opt->name, n->line);
				return (-1);
			}
		}
	}
	n = reallocarray(cl->notes, cl->nnotes + 1, sizeof *cl->notes);
	if (n == NULL) {
		config_error(cfg->line, cfg, "out of memory");
		return (-1);
	}
	cl->notes = n;
	n = &cl->notes[cl->nnotes++];
	n->sec = cfg;
	n->name = opt->name;
	n->line = cfg->line;
	return (0);
}

/* The line a directive was seen on, 0 if it was not given. */
static int
config_line(cfg_t *sec, const char *name)
{
	struct config_load	*cl = config_cur;
	size_t			 i;
	int			 line = 0;

	for (i = 0; i < cl->nnotes; i++) {
		if (cl->notes[i].sec == sec &&
		    strcmp(cl->notes[i].name, name) == 0)
			line = cl->notes[i].line;
	}
	return (line);
}

/*
 * Blank out the comments before libconfuse's lexer sees them.  Its lexer
 * (3.3, and master as of 2025) counts every # or // comment as three lines
 * and every C comment as one line too many, which puts every later
 * message on the wrong line, and fails on a comment inside a { list }
 * (libconfuse issue #150).  The scan follows the lexer's own rules: a #
 * anywhere outside a quoted string, or a // or a C comment where a token
 * starts; newlines are kept, so the lexer's count becomes right.
 */
#define CONFIG_UNQUOTED(c)	((c) != '\0' && strchr(" #\"'\t\n\r={}()+,*", \
				    (c)) == NULL)

static void
config_strip(char *buf, size_t len)
{
	char	*p = buf, *end = buf + len, *q, quote;

	while (p < end) {
		if (*p == '#' || (*p == '/' && p + 1 < end && p[1] == '/')) {
			for (; p < end && *p != '\n'; p++)
				*p = ' ';
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			for (; p < end; p++) {
				if (p + 1 < end && p[0] == '*' && p[1] == '/') {
					p[0] = p[1] = ' ';
					p += 2;
					break;
				}
				if (*p != '\n')
					*p = ' ';
			}
		} else if (*p == '"' || *p == '\'') {
			quote = *p++;
			while (p < end && *p != quote) {
				if (*p == '\\')
					p++;
				else if (quote == '"' && *p == '$' &&
				    p + 1 < end && p[1] == '{' &&
				    (q = memchr(p, '}', end - p)) != NULL)
					p = q;
				p++;
			}
			p++;
		} else if (*p == '$' && p + 1 < end && p[1] == '{' &&
		    (q = memchr(p, '}', end - p)) != NULL) {
			p = q + 1;
		} else if (CONFIG_UNQUOTED(*p)) {
			while (p < end && CONFIG_UNQUOTED(*p))
				p++;
		} else
			p++;
	}
}

/*
 * libconfuse parsing callbacks: check one value, note its line, store it.
 */

static int
config_parse_path(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	if (config_note(cfg, opt) != 0)
		return (-1);
	if (!config_path_ok(value))
		return (config_bad(cfg, opt, value,
		    "must be an absolute path without . or .. components"));
	*(const char **)res = value;
	return (0);
}

static int
config_parse_socket(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	char	msg[128];

	if (config_parse_path(cfg, opt, value, res) != 0)
		return (-1);
	if (strlen(value) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		snprintf(msg, sizeof msg, "too long for a socket path "
		    "(at most %zu bytes)",
		    sizeof ((struct sockaddr_un *)0)->sun_path - 1);
		return (config_bad(cfg, opt, value, msg));
	}
	return (0);
}

static int
config_parse_word(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	char	allowed[128], msg[160];
	size_t	i;

	if (config_note(cfg, opt) != 0)
		return (-1);
	allowed[0] = '\0';
	for (i = 0; i < sizeof config_words / sizeof config_words[0]; i++) {
		if (strcmp(config_words[i].option, opt->name) != 0)
			continue;
		if (strcmp(config_words[i].word, value) == 0) {
			*(long *)res = config_words[i].value;
			return (0);
		}
		config_append(allowed, sizeof allowed, config_words[i].word);
	}
	snprintf(msg, sizeof msg, "must be one of: %s", allowed);
	return (config_bad(cfg, opt, value, msg));
}

static int
config_parse_bool(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	int	b;

	if (config_note(cfg, opt) != 0)
		return (-1);
	if ((b = cfg_parse_boolean(value)) == -1)
		return (config_bad(cfg, opt, value, "must be yes or no"));
	*(int *)res = b;
	return (0);
}

static int
config_parse_seconds(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	char	*end;
	double	 d;

	if (config_note(cfg, opt) != 0)
		return (-1);
	errno = 0;
	d = strtod(value, &end);
	if (errno != 0 || end == value || *end != '\0' || !isfinite(d) ||
	    d < 0 || d > CONFIG_TIMEOUT_MAX)
		return (config_bad(cfg, opt, value,
		    "must be a number of seconds from 0 to 86400, e.g. 1 "
		    "or 0.5"));
	*(double *)res = d;
	return (0);
}

static int
config_parse_percent(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	char	*end;
	long	 v;

	if (config_note(cfg, opt) != 0)
		return (-1);
	errno = 0;
	v = strtol(value, &end, 10);
	if (*end == '%')
		end++;
	if (errno != 0 || end == value || *end != '\0' || v < 1 || v > 100 ||
	    value[0] < '0' || value[0] > '9')
		return (config_bad(cfg, opt, value,
		    "must be a percentage 1-100"));
	*(long *)res = v;
	return (0);
}

static int
config_parse_count(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	char	*end;
	long	 v;

	if (config_note(cfg, opt) != 0)
		return (-1);
	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < 0 ||
	    v > INT_MAX || value[0] < '0' || value[0] > '9')
		return (config_bad(cfg, opt, value,
		    "must be a whole number from 0 (no limit) to 2147483647"));
	*(long *)res = v;
	return (0);
}

static int
config_parse_size(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	int64_t	v;

	if (config_note(cfg, opt) != 0)
		return (-1);
	if (config_size(value, &v) != 0)
		return (config_bad(cfg, opt, value, "must be a size: a number "
		    "of bytes with an optional K, M, G, T or P (powers of "
		    "1024), e.g. 10M"));
	*(const char **)res = value;
	return (0);
}

static int
config_parse_room(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	int64_t	b;
	int	ppm;

	if (config_note(cfg, opt) != 0)
		return (-1);
	if (config_room(value, &b, &ppm) != 0)
		return (config_bad(cfg, opt, value, "must be a size (a number "
		    "of bytes with an optional K, M, G, T or P, e.g. 64M) or "
		    "a percentage of the tier from 0% to 50% (e.g. 2% or "
		    "0.5%)"));
	*(const char **)res = value;
	return (0);
}

static int
config_parse_duration(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *res)
{
	int64_t	v;

	if (config_note(cfg, opt) != 0)
		return (-1);
	if (config_duration(value, &v) != 0)
		return (config_bad(cfg, opt, value, "must be a duration: a "
		    "number followed by s, m, h, d or w, e.g. 90d"));
	*(const char **)res = value;
	return (0);
}

/* from and to: the tier list may come later in the file; checked at the end. */
static int
config_parse_tierref(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	if (config_note(cfg, opt) != 0)
		return (-1);
	if (!config_name_ok(value))
		return (config_bad(cfg, opt, value, "must be the name of a "
		    "tier"));
	*(const char **)res = value;
	return (0);
}

static int
config_parse_glob(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	size_t	len = strlen(value);

	if (config_note(cfg, opt) != 0)
		return (-1);
	if (len == 0 || value[len - 1] == ';')
		return (config_bad(cfg, opt, value, "must be a pattern, e.g. "
		    "\"*.iso\" or \"/projects/*/old/*\""));
	if (strchr(value, '/') != NULL && value[0] != '/')
		return (config_bad(cfg, opt, value, "a pattern with a / is "
		    "matched against the path from the mount root, so must "
		    "start with /"));
	*(const char **)res = value;
	return (0);
}

static int
config_parse_owner(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *res)
{
	uid_t	uid;

	if (config_note(cfg, opt) != 0)
		return (-1);
	if (config_uid(value, &uid) != 0)
		return (config_bad(cfg, opt, value, "must be a known user "
		    "name or a numeric uid"));
	*(const char **)res = value;
	return (0);
}

static int
config_parse_fuseopt(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *res)
{
	size_t	len = strlen(value);

	if (config_note(cfg, opt) != 0)
		return (-1);
	if (len == 0 || strcspn(value, ", \t") != len || value[len - 1] == ';')
		return (config_bad(cfg, opt, value, "must be one FUSE mount "
		    "option per list item, e.g. { \"default_permissions\", "
		    "\"max_read=131072\" }"));
	*(const char **)res = value;
	return (0);
}

/*
 * libconfuse validation callbacks: run when a section closes; cfg is the
 * enclosing section and cfg->line the closing brace.
 */

static cfg_t *
config_last(cfg_opt_t *opt)
{
	return (cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1));
}

static int
config_check_tier(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t	*sec = config_last(opt);
	long	 high, low;

	if (!config_name_ok(sec->title)) {
		config_error(cfg->line, NULL, "tier \"%s\": bad name; use up "
		    "to %d letters, digits, -, _ or ., starting with a letter "
		    "or digit", sec->title, CONFIG_NAME_MAX);
		return (-1);
	}
	if (cfg_getstr(sec, "path") == NULL) {
		config_error(cfg->line, sec, "no path; each tier needs "
		    "path = DIRECTORY");
		return (-1);
	}
	if (cfg_size(sec, "low_watermark") == 0)
		return (0);
	low = cfg_getint(sec, "low_watermark");
	if (cfg_size(sec, "high_watermark") == 0) {
		config_error(config_line(sec, "low_watermark"), sec,
		    "low_watermark \"%ld\": needs a high_watermark in the "
		    "same tier", low);
		return (-1);
	}
	high = cfg_getint(sec, "high_watermark");
	if (low > high) {
		config_error(config_line(sec, "low_watermark"), sec,
		    "low_watermark \"%ld\": must not be above high_watermark "
		    "(%ld, line %d)", low, high,
		    config_line(sec, "high_watermark"));
		return (-1);
	}
	return (0);
}

static int
config_check_policy(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t		*sec = config_last(opt);
	const char	*from, *to;
	int64_t		 min, max;

	if (!config_name_ok(sec->title)) {
		config_error(cfg->line, NULL, "policy \"%s\": bad name; use "
		    "up to %d letters, digits, -, _ or ., starting with a "
		    "letter or digit", sec->title, CONFIG_NAME_MAX);
		return (-1);
	}
	from = cfg_getstr(sec, "from");
	to = cfg_getstr(sec, "to");
	if (cfg_getint(sec, "action") == DFS_POLICY_MIGRATE && to == NULL) {
		config_error(cfg->line, sec, "no target tier; a migrate "
		    "policy needs to = TIER");
		return (-1);
	}
	if (from != NULL && to != NULL && strcmp(from, to) == 0) {
		config_error(config_line(sec, "to"), sec, "to \"%s\": same "
		    "tier as from; must be another tier", to);
		return (-1);
	}
	if (cfg_getstr(sec, "min_size") != NULL &&
	    cfg_getstr(sec, "max_size") != NULL) {
		config_size(cfg_getstr(sec, "min_size"), &min);
		config_size(cfg_getstr(sec, "max_size"), &max);
		if (min > max) {
			config_error(config_line(sec, "max_size"), sec,
			    "max_size \"%s\": must not be below min_size "
			    "(\"%s\", line %d)", cfg_getstr(sec, "max_size"),
			    cfg_getstr(sec, "min_size"),
			    config_line(sec, "min_size"));
			return (-1);
		}
	}
	if (cfg_getstr(sec, "age") == NULL &&
	    config_line(sec, "age_by") != 0) {
		config_error(config_line(sec, "age_by"), sec, "age_by: has "
		    "no effect without age; add age = DURATION or remove it");
		return (-1);
	}
	return (0);
}

static int
config_check_migration(cfg_t *cfg, cfg_opt_t *opt)
{
	struct config_load	*cl = config_cur;

	(void)opt;
	/* A second migration {} would silently merge into the first. */
	if (cl->migration_line != 0) {
		config_error(cfg->line, NULL, "migration: given twice (first "
		    "ends on line %d); keep one", cl->migration_line);
		return (-1);
	}
	cl->migration_line = cfg->line;
	return (0);
}

/*
 * Checks across sections, then the copy into struct dfs_config.
 */

static int
config_tier_index(const struct dfs_config *conf, const char *name)
{
	int	i;

	for (i = 0; i < conf->ntiers; i++) {
		if (strcmp(conf->tiers[i].name, name) == 0)
			return (i);
	}
	return (-1);
}

static int
config_build_tiers(cfg_t *cfg, struct dfs_config *conf)
{
	struct dfs_config_tier	*t, *o;
	cfg_t			*sec, *osec;
	unsigned int		 n = cfg_size(cfg, "tier");
	int			 i, j;

	if (n < 2) {
		if (n == 0) {
			config_error(0, NULL, "no tiers; dfs needs at least 2, "
			    "fastest first: tier NAME { path = DIRECTORY }");
			return (-1);
		}
		sec = cfg_getnsec(cfg, "tier", 0);
		config_error(config_line(sec, "path"), sec, "the only tier; "
		    "dfs needs at least 2, fastest first");
		return (-1);
	}
	if (n > DFS_MAX_TIERS) {
		sec = cfg_getnsec(cfg, "tier", DFS_MAX_TIERS);
		config_error(config_line(sec, "path"), sec, "too many tiers; "
		    "at most %d", DFS_MAX_TIERS);
		return (-1);
	}
	if ((conf->tiers = calloc(n, sizeof *conf->tiers)) == NULL)
		goto nomem;
	for (i = 0; i < (int)n; i++) {
		sec = cfg_getnsec(cfg, "tier", i);
		t = &conf->tiers[i];
		conf->ntiers = i + 1;
		if ((t->name = strdup(sec->title)) == NULL ||
		    (t->path = config_path_clean(cfg_getstr(sec, "path"))) ==
		    NULL)
			goto nomem;
		t->stable_inodes = cfg_getint(sec, "stable_inodes");
		t->timeout = cfg_getfloat(sec, "timeout");
		config_room(cfg_getstr(sec, "min_free"), &t->min_free,
		    &t->min_free_ppm);
		if (cfg_size(sec, "high_watermark") != 0) {
			t->high_watermark = cfg_getint(sec, "high_watermark");
			if (cfg_size(sec, "low_watermark") != 0)
				t->low_watermark = cfg_getint(sec,
				    "low_watermark");
			else if (t->high_watermark > 10)
				t->low_watermark = t->high_watermark - 10;
			else
				t->low_watermark = 0;
		}
		if (i == (int)n - 1 && t->high_watermark != 0) {
			config_error(config_line(sec, "high_watermark"), sec,
			    "high_watermark \"%d\": the last tier has no tier "
			    "below it to move files to; remove it",
			    t->high_watermark);
			return (-1);
		}

		for (j = 0; j < i; j++) {
			o = &conf->tiers[j];
			osec = cfg_getnsec(cfg, "tier", j);
			if (!config_path_under(t->path, o->path) &&
			    !config_path_under(o->path, t->path))
				continue;
			config_error(config_line(sec, "path"), sec,
			    "path \"%s\": %s tier \"%s\" (\"%s\", line %d); "
			    "tiers must not overlap", cfg_getstr(sec, "path"),
			    strcmp(t->path, o->path) == 0 ? "same as" :
			    config_path_under(t->path, o->path) ? "inside" :
			    "contains", o->name, o->path,
			    config_line(osec, "path"));
			return (-1);
		}
		/* The mount point may be a tier itself (tiering in place). */
		if (conf->mountpoint != NULL &&
		    strcmp(conf->mountpoint, t->path) != 0 &&
		    (config_path_under(conf->mountpoint, t->path) ||
		    config_path_under(t->path, conf->mountpoint))) {
			config_error(config_line(sec, "path"), sec,
			    "path \"%s\": %s the mount point \"%s\"; dfs would "
			    "%s", cfg_getstr(sec, "path"),
			    config_path_under(t->path, conf->mountpoint) ?
			    "inside" : "contains",
			    conf->mountpoint,
			    config_path_under(t->path, conf->mountpoint) ?
			    "hide it under its own mount" :
			    "see its own mount through it");
			return (-1);
		}
	}
	return (0);

nomem:
	config_error(0, NULL, "out of memory");
	return (-1);
}

/*
 * state_dir and socket must be outside the mount (dfs would wait on itself)
 * and outside every tier (dfs would serve, and could migrate, its own files).
 */
static int
config_check_private(cfg_t *cfg, const struct dfs_config *conf,
    const char *name, const char *path)
{
	const char	*value = cfg_getstr(cfg, name);
	int		 i;

	if (value == NULL)
		value = path;
	if (conf->mountpoint != NULL &&
	    config_path_under(path, conf->mountpoint)) {
		config_error(config_line(cfg, name), NULL, "%s \"%s\": inside "
		    "the mount point \"%s\"; dfs would wait on itself", name,
		    value, conf->mountpoint);
		return (-1);
	}
	for (i = 0; i < conf->ntiers; i++) {
		if (!config_path_under(path, conf->tiers[i].path))
			continue;
		config_error(config_line(cfg, name), NULL, "%s \"%s\": inside "
		    "tier \"%s\" (\"%s\"); keep dfs's own files off the tiers",
		    name, value, conf->tiers[i].name, conf->tiers[i].path);
		return (-1);
	}
	return (0);
}

static int
config_build_policy(cfg_t *sec, struct dfs_config *conf,
    struct dfs_config_policy *p)
{
	const char	*ref[2] = { "from", "to" };
	int		*idx[2] = { &p->from, &p->to };
	const char	*s;
	unsigned int	 i;
	int		 t;
	char		 tiers[512];

	if ((p->name = strdup(sec->title)) == NULL)
		goto nomem;
	p->action = cfg_getint(sec, "action");
	for (i = 0; i < 2; i++) {
		*idx[i] = -1;
		if ((s = cfg_getstr(sec, ref[i])) == NULL)
			continue;
		if ((*idx[i] = config_tier_index(conf, s)) != -1)
			continue;
		tiers[0] = '\0';
		for (t = 0; t < conf->ntiers; t++)
			config_append(tiers, sizeof tiers, conf->tiers[t].name);
		config_error(config_line(sec, ref[i]), sec, "%s \"%s\": no "
		    "such tier; tiers are: %s", ref[i], s, tiers);
		return (-1);
	}

	p->npaths = cfg_size(sec, "paths");
	if (p->npaths != 0) {
		if ((p->paths = calloc(p->npaths, sizeof *p->paths)) == NULL)
			goto nomem;
		for (i = 0; i < p->npaths; i++) {
			p->paths[i] = strdup(cfg_getnstr(sec, "paths", i));
			if (p->paths[i] == NULL)
				goto nomem;
		}
	}

	p->min_size = 0;
	if ((s = cfg_getstr(sec, "min_size")) != NULL)
		config_size(s, &p->min_size);
	p->max_size = -1;
	if ((s = cfg_getstr(sec, "max_size")) != NULL)
		config_size(s, &p->max_size);

	if ((s = cfg_getstr(sec, "owner")) != NULL) {
		if (config_uid(s, &p->owner) != 0) {
			config_error(config_line(sec, "owner"), sec, "owner "
			    "\"%s\": must be a known user name or a numeric "
			    "uid", s);
			return (-1);
		}
		p->has_owner = 1;
	}

	p->age = 0;
	if ((s = cfg_getstr(sec, "age")) != NULL)
		config_duration(s, &p->age);
	p->age_by = cfg_getint(sec, "age_by");
	return (0);

nomem:
	config_error(0, NULL, "out of memory");
	return (-1);
}

static int
config_build(cfg_t *cfg, struct dfs_config *conf)
{
	struct dfs_config_migration	*m = &conf->migration;
	cfg_t				*sec;
	const char			*s;
	unsigned int			 i;
	size_t				 max;

	if ((s = cfg_getstr(cfg, "mountpoint")) != NULL &&
	    (conf->mountpoint = config_path_clean(s)) == NULL)
		goto nomem;
	if (config_build_tiers(cfg, conf) != 0)
		return (-1);

	if ((conf->state_dir = config_path_clean(cfg_getstr(cfg,
	    "state_dir"))) == NULL)
		goto nomem;
	if ((s = cfg_getstr(cfg, "socket")) != NULL) {
		if ((conf->socket = config_path_clean(s)) == NULL)
			goto nomem;
	} else {
		if (asprintf(&conf->socket, "%s/dfs.sock",
		    strcmp(conf->state_dir, "/") == 0 ? "" :
		    conf->state_dir) == -1) {
			conf->socket = NULL;
			goto nomem;
		}
		max = sizeof ((struct sockaddr_un *)0)->sun_path - 1;
		if (strlen(conf->socket) > max) {
			config_error(config_line(cfg, "state_dir"), NULL,
			    "state_dir \"%s\": too long for the control socket "
			    "%s (at most %zu bytes); set socket to a shorter "
			    "path", conf->state_dir, conf->socket, max);
			return (-1);
		}
	}
	if (config_check_private(cfg, conf, "state_dir", conf->state_dir) != 0 ||
	    config_check_private(cfg, conf, "socket", conf->socket) != 0)
		return (-1);
	conf->log_level = cfg_getint(cfg, "log_level");
	conf->allow_other = cfg_getbool(cfg, "allow_other");
	conf->nfuse_options = cfg_size(cfg, "options");
	if (conf->nfuse_options != 0) {
		conf->fuse_options = calloc(conf->nfuse_options,
		    sizeof *conf->fuse_options);
		if (conf->fuse_options == NULL)
			goto nomem;
		for (i = 0; i < conf->nfuse_options; i++) {
			conf->fuse_options[i] = strdup(cfg_getnstr(cfg,
			    "options", i));
			if (conf->fuse_options[i] == NULL)
				goto nomem;
		}
	}
	conf->attr_timeout = cfg_getfloat(cfg, "attr_timeout");
	conf->entry_timeout = cfg_getfloat(cfg, "entry_timeout");

	conf->npolicies = cfg_size(cfg, "policy");
	if (conf->npolicies != 0) {
		conf->policies = calloc(conf->npolicies,
		    sizeof *conf->policies);
		if (conf->policies == NULL)
			goto nomem;
	}
	for (i = 0; i < conf->npolicies; i++) {
		if (config_build_policy(cfg_getnsec(cfg, "policy", i), conf,
		    &conf->policies[i]) != 0)
			return (-1);
	}

	/* Absent, the section still exists with its defaults. */
	sec = cfg_getsec(cfg, "migration");
	config_duration(cfg_getstr(sec, "interval"), &m->interval);
	m->max_files = cfg_getint(sec, "max_files");
	config_size(cfg_getstr(sec, "max_bytes"), &m->max_bytes);
	config_size(cfg_getstr(sec, "bandwidth"), &m->bandwidth);
	m->verify = cfg_getbool(sec, "verify");
	m->hardlinks = cfg_getint(sec, "hardlinks");
	m->promote_after_reads = cfg_getint(sec, "promote_after_reads");
	config_duration(cfg_getstr(sec, "promote_window"), &m->promote_window);
	config_duration(cfg_getstr(sec, "min_residency"), &m->min_residency);
	if (m->promote_after_reads != 0 && m->promote_window == 0) {
		config_error(config_line(sec, "promote_window"), sec,
		    "promote_window \"0\": must be longer than 0 when "
		    "promote_after_reads is set");
		return (-1);
	}
	return (0);

nomem:
	config_error(0, NULL, "out of memory");
	return (-1);
}

/*
 * Read and check a configuration file.  On success *out is a new config to
 * be freed with config_free; on failure *cause is the reason, one line,
 * starting with the file name (and the line when there is one).
 */
int
config_load(const char *path, struct dfs_config **out, char **cause)
{
	struct config_load	 cl;
	struct dfs_config	*conf = NULL;
	cfg_t			*cfg = NULL;
	FILE			*fp = NULL;
	struct stat		 st;
	char			*buf = NULL;
	size_t			 len;
	int			 rv = -1;

	*out = NULL;
	*cause = NULL;
	memset(&cl, 0, sizeof cl);
	cl.file = path;

	pthread_mutex_lock(&config_lock);
	config_cur = &cl;

	if ((cfg = cfg_init(config_opts, CFGF_NONE)) == NULL) {
		config_error(0, NULL, "out of memory");
		goto out;
	}
	cl.root = cfg;
	cfg_set_error_function(cfg, config_errfunc);
	cfg_set_validate_func(cfg, "tier", config_check_tier);
	cfg_set_validate_func(cfg, "policy", config_check_policy);
	cfg_set_validate_func(cfg, "migration", config_check_migration);

	/*
	 * Read here rather than by cfg_parse: libconfuse's lexer exits the
	 * process on a read error (reading a directory, say), and its
	 * comments need blanking (config_strip).
	 */
	if ((fp = fopen(path, "r")) == NULL ||
	    fstat(fileno(fp), &st) != 0) {
		config_error(0, NULL, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		config_error(0, NULL, "not a regular file");
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		config_error(0, NULL, "too large (more than %d bytes)",
		    CONFIG_FILE_MAX);
		goto out;
	}
	/* One byte more than the file, to see it grow and to fill if empty. */
	if ((buf = calloc(1, st.st_size + 2)) == NULL) {
		config_error(0, NULL, "out of memory");
		goto out;
	}
	len = fread(buf, 1, st.st_size + 1, fp);
	if (ferror(fp) || len > (size_t)st.st_size) {
		config_error(0, NULL, "%s", ferror(fp) ? strerror(errno) :
		    "changed while being read");
		goto out;
	}
	fclose(fp);
	config_strip(buf, len);
	if (len == 0)
		buf[len++] = '\n';
	if ((fp = fmemopen(buf, len, "r")) == NULL) {
		config_error(0, NULL, "%s", strerror(errno));
		goto out;
	}
	free(cfg->filename);
	if ((cfg->filename = strdup(path)) == NULL) {
		config_error(0, NULL, "out of memory");
		goto out;
	}
	if (cfg_parse_fp(cfg, fp) != CFG_SUCCESS) {
		config_error(0, NULL, "cannot parse");
		goto out;
	}

	if ((conf = calloc(1, sizeof *conf)) == NULL ||
	    (conf->file = strdup(path)) == NULL) {
		config_error(0, NULL, "out of memory");
		goto out;
	}
	if (config_build(cfg, conf) != 0)
		goto out;
	*out = conf;
	conf = NULL;
	rv = 0;

out:
	if (rv != 0)
		*cause = cl.cause;
	else
		free(cl.cause);
	config_free(conf);
	if (cfg != NULL)
		cfg_free(cfg);
	if (fp != NULL)
		fclose(fp);
	free(buf);
	free(cl.notes);
	config_cur = NULL;
	pthread_mutex_unlock(&config_lock);
	if (rv != 0 && *cause == NULL)
		*cause = strdup("out of memory");
	return (rv);
}

void
config_free(struct dfs_config *conf)
{
	struct dfs_config_policy	*p;
	unsigned int			 i, j;

	if (conf == NULL)
		return;
	for (i = 0; i < (unsigned int)conf->ntiers; i++) {
		free(conf->tiers[i].name);
		free(conf->tiers[i].path);
	}
	free(conf->tiers);
	for (i = 0; i < conf->npolicies; i++) {
		p = &conf->policies[i];
		free(p->name);
		for (j = 0; p->paths != NULL && j < p->npaths; j++)
			free(p->paths[j]);
		free(p->paths);
	}
	free(conf->policies);
	for (i = 0; conf->fuse_options != NULL && i < conf->nfuse_options; i++)
		free(conf->fuse_options[i]);
	free(conf->fuse_options);
	free(conf->file);
	free(conf->mountpoint);
	free(conf->state_dir);
	free(conf->socket);
	free(conf);
}

/* The index of a tier by name, or -1. */
int
config_tier(const struct dfs_config *conf, const char *name)
{
	return (config_tier_index(conf, name));
}

static int
config_same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

/*
 * Can a running mount switch from old to new (SIGHUP, dfsctl reload)?
 * Policies, migration settings, watermarks, min_free and the log level
 * change live; what the mount, the index or the socket was set up with
 * does not.
 */
int
config_reloadable(const struct dfs_config *old, const struct dfs_config *new,
    char **cause)
{
	const char	*what = NULL;
	unsigned int	 i;
	int		 t;

	*cause = NULL;
	if (!config_same_str(old->mountpoint, new->mountpoint))
		what = "mountpoint";
	else if (old->ntiers != new->ntiers)
		what = "the tier list";
	else if (!config_same_str(old->state_dir, new->state_dir))
		what = "state_dir";
	else if (!config_same_str(old->socket, new->socket))
		what = "socket";
	else if (old->allow_other != new->allow_other)
		what = "allow_other";
	else if (old->attr_timeout != new->attr_timeout)
		what = "attr_timeout";
	else if (old->entry_timeout != new->entry_timeout)
		what = "entry_timeout";
	else if (old->nfuse_options != new->nfuse_options)
		what = "options";
	for (t = 0; what == NULL && t < old->ntiers; t++) {
		if (strcmp(old->tiers[t].name, new->tiers[t].name) != 0 ||
		    strcmp(old->tiers[t].path, new->tiers[t].path) != 0)
			what = "the tier list";
		else if (old->tiers[t].stable_inodes !=
		    new->tiers[t].stable_inodes)
			what = "stable_inodes";
	}
	for (i = 0; what == NULL && i < old->nfuse_options; i++) {
		if (strcmp(old->fuse_options[i], new->fuse_options[i]) != 0)
			what = "options";
	}
	if (what == NULL)
		return (0);
	if (asprintf(cause, "%s: %s changed; it cannot change while mounted "
	    "(restart dfs), the running configuration stays", new->file,
	    what) == -1)
		*cause = NULL;
	return (-1);
}
