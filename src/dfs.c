/*
 * dfs: mount tiers, fastest first, as one tree.  main() and usage() only.
 */
#include "config.h"

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

/* Asked for (-h, --help): on stdout, exit 0; a mistake: stderr, exit 2. */
static void __attribute__((noreturn))
usage(int asked)
{
	fprintf(asked ? stdout : stderr,
	    "usage: dfs [-fdnV] [-o option[,option...]] TIER0 TIER1 [TIER...] "
	    "MOUNTPOINT\n"
	    "       dfs [-fdnV] [-c FILE] [-o option[,option...]] "
	    "[MOUNTPOINT]\n");
	if (asked)
		printf("\n"
		    "  -c FILE         the configuration file (default %s)\n"
		    "  -f              stay in the foreground\n"
		    "  -d              FUSE debug output (implies -f)\n"
		    "  -n              check the configuration and exit\n"
		    "  -o OPTIONS      mount options (see dfs(8))\n"
		    "  -V, --version   print the version and exit\n"
		    "  -h, --help      print this help and exit\n", DFS_CONF);
	exit(asked ? 0 : 2);
}

static const struct option dfs_longopts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

/* Append one -o option to the string passed to libfuse. */
static int
dfs_add_opt(char **opts, const char *opt)
{
	char	*s;

	if (*opts == NULL)
		s = strdup(opt);
	else if (asprintf(&s, "%s,%s", *opts, opt) == -1)
		s = NULL;
	if (s == NULL)
		return (-1);
	free(*opts);
	*opts = s;
	return (0);
}

static char	*dfs_ctl_path;		/* -o ctl=, or the config's socket */

/*
 * Options an fstab line may carry through mount(8) and mount.fuse3 that
 * mean nothing to a FUSE mount, and that libfuse would refuse.
 */
static int
dfs_ignored_opt(const char *opt)
{
	static const char *const ignored[] = {
		"defaults", "auto", "noauto", "nofail", "_netdev", "user",
		"nouser", "users", "owner", "group", "relatime", "norelatime",
		"strictatime", "nostrictatime", "lazytime", "nolazytime",
		"diratime", "nodiratime", "iversion", "noiversion", "silent",
		"loud", NULL
	};
	int	i;

	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0)
		return (1);
	for (i = 0; ignored[i] != NULL; i++)
		if (strcmp(opt, ignored[i]) == 0)
			return (1);
	return (0);
}

static int	dfs_retier;	/* -o retier: accept tiers' new file systems */

/* dfs's own -o options are taken here; the rest go to libfuse. */
static int
dfs_parse_opts(char *arg, char **fuse_opts, char **cause)
{
	char	*opt, *end, *val;

	while ((opt = strsep(&arg, ",")) != NULL) {
		if (*opt == '\0')
			continue;
		val = strchr(opt, '=');
		if (strncmp(opt, "ctl=", 4) == 0) {
			free(dfs_ctl_path);
			if ((dfs_ctl_path = strdup(opt + 4)) == NULL)
				return (-1);
			continue;
		}
		if (strcmp(opt, "retier") == 0) {
			dfs_retier = 1;
			continue;
		}
		if (strncmp(opt, "index=", 6) == 0) {
			free(dfs.index_path);
			dfs.index_path = strdup(opt + 6);
			continue;
		}
		if (strncmp(opt, "attr_timeout=", 13) == 0 ||
		    strncmp(opt, "entry_timeout=", 14) == 0) {
			double	d = strtod(val + 1, &end);

			if (*end != '\0' || val[1] == '\0' || d < 0) {
				asprintf(cause, "-o %s: a number of seconds "
				    "is expected", opt);
				return (-1);
			}
			if (opt[0] == 'a')
				dfs.attr_timeout = d;
			else
				dfs.entry_timeout = d;
			continue;
		}
		if (dfs_ignored_opt(opt))
			continue;
		if (dfs_add_opt(fuse_opts, opt) != 0)
			return (-1);
	}
	return (0);
}

/* mkdir -p, for the state directory. */
static void
dfs_mkdirs(const char *dir)
{
	char	*copy, *p;

	if ((copy = strdup(dir)) == NULL)
		return;
	for (p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(copy, 0755);
		*p = '/';
	}
	mkdir(copy, 0700);
	free(copy);
}

/*
 * Without -o index, the index of a mount lives in the state directory,
 * named after the mount point, so that inode numbers survive a remount.
 */
static char *
dfs_default_index(const char *mnt)
{
	char	*real, *p, *path = NULL;

	if ((real = realpath(mnt, NULL)) == NULL)
		return (NULL);
	for (p = real; *p != '\0'; p++)
		if (*p == '/')
			*p = '-';
	dfs_mkdirs(DFS_STATEDIR);
	if (asprintf(&path, "%s/index%s.db", DFS_STATEDIR,
	    strcmp(real, "-") == 0 ? "-root" : real) == -1)
		path = NULL;
	free(real);
	return (path);
}

/* Each open handle and each directory on each tier costs a descriptor. */
static void
dfs_raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Fork; the parent waits for the child to report the mount up (an empty
 * message) or the text of the error that stopped it, so a failed start
 * still exits non-zero at the terminal.
 */
static int
dfs_daemonise(int *report)
{
	char	buf[1024];
	ssize_t	n;
	int	fds[2], status;
	pid_t	pid;

	if (pipe2(fds, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(fds[0]);
		setsid();
		*report = fds[1];
		return (0);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof buf - 1);
	if (n == 1 && buf[0] == '\0')
		exit(0);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(stderr, "dfs: %s\n", buf);
	} else
		fprintf(stderr, "dfs: start-up failed\n");
	waitpid(pid, &status, 0);
	exit(1);
}

static void
dfs_report(int fd, const char *msg)
{
	if (fd == -1)
		return;
	if (msg == NULL)
		(void)!write(fd, "", 1);
	else
		(void)!write(fd, msg, strlen(msg));
	close(fd);
}

/* How far the start got: a failure takes down what started, in order. */
enum {
	DFS_UP_NONE,
	DFS_UP_INDEX,		/* index open, recovery may have run */
	DFS_UP_MOUNT,		/* the control socket listens, FUSE mounted */
	DFS_UP_SCAN,
	DFS_UP_WORKER
};
static int			 dfs_up = DFS_UP_NONE;
static struct fuse_session	*dfs_up_se;

static void __attribute__((noreturn, format(printf, 2, 3)))
dfs_fail(int report, const char *fmt, ...)
{
	char	buf[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	ctl_stop();
	if (dfs_up >= DFS_UP_MOUNT && dfs_up_se != NULL) {
		node_set_session(NULL);
		fuse_session_unmount(dfs_up_se);
	}
	if (dfs_up >= DFS_UP_WORKER)
		migrate_shutdown();
	if (dfs_up >= DFS_UP_SCAN)
		scan_shutdown();
	if (dfs_up >= DFS_UP_INDEX)
		index_close(0);		/* no clean stop: the next start scans */
	if (report != -1)
		dfs_report(report, buf);
	else
		fprintf(stderr, "dfs: %s\n", buf);
	exit(1);
}

/* The current config of a mount started from a file; NULL otherwise. */
static struct dfs_config	*dfs_conf;
static pthread_mutex_t		 dfs_conf_mtx = PTHREAD_MUTEX_INITIALIZER;

/*
 * Re-read the config file: what may change live changes; an invalid file,
 * or one that changes what cannot change live, is refused and the old one
 * stays.
 */
static int
dfs_reload(char **cause)
{
	struct dfs_config	*conf, *old;
	int			 t;

	pthread_mutex_lock(&dfs_conf_mtx);
	if ((old = dfs_conf) == NULL) {
		pthread_mutex_unlock(&dfs_conf_mtx);
		*cause = strdup("mounted from the command line: no config "
		    "file to reload");
		return (-1);
	}
	if (config_load(old->file, &conf, cause) != 0) {
		pthread_mutex_unlock(&dfs_conf_mtx);
		return (-1);
	}
	if (config_reloadable(old, conf, cause) != 0) {
		pthread_mutex_unlock(&dfs_conf_mtx);
		config_free(conf);
		return (-1);
	}
	dfs_conf = conf;
	tier_set_timeouts(conf);
	migrate_configure(conf);
	for (t = 0; t < conf->ntiers; t++)
		tier_set_min_free(t, conf->tiers[t].min_free,
		    conf->tiers[t].min_free_ppm);
	log_set_level(conf->log_level);
	/* Under the lock: another reload may free conf once it is out. */
	log_info("reloaded %s", conf->file);
	pthread_mutex_unlock(&dfs_conf_mtx);
	config_free(old);
	return (0);
}

static atomic_int	dfs_stopping;

/*
 * SIGHUP is blocked in every thread; this one waits for it and reloads.
 * At exit, main sends it one more SIGHUP to end it.
 */
static void *
dfs_signal_main(void *arg)
{
	sigset_t	 set;
	char		*cause = NULL;
	int		 sig;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0 || sig != SIGHUP)
			continue;
		if (atomic_load(&dfs_stopping))
			break;
		if (dfs_reload(&cause) != 0) {
			log_error("reload refused: %s", cause);
			free(cause);
			cause = NULL;
		}
	}
	return (NULL);
}

/* Tell systemd (Type=notify) that the mount is up. */
static void
dfs_notify(const char *msg)
{
	struct sockaddr_un	 sun;
	const char		*path = getenv("NOTIFY_SOCKET");
	socklen_t		 len;
	int			 fd;

	if (path == NULL || (*path != '/' && *path != '@') ||
	    strlen(path) >= sizeof sun.sun_path)
		return;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	if (*path == '@')
		sun.sun_path[0] = '\0';
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1)
		log_warn("notify %s: %s", path, strerror(errno));
	close(fd);
}

/* Take the tiers, mount point and options a config file gives. */
static void
dfs_apply_config(struct dfs_config *conf, const char **mnt, char **fuse_opts)
{
	char		*cause = NULL;
	unsigned	 i;
	int		 t;

	for (t = 0; t < conf->ntiers; t++) {
		if (tier_add(conf->tiers[t].name, conf->tiers[t].path,
		    &cause) != 0) {
			fprintf(stderr, "dfs: %s: %s\n", conf->file, cause);
			exit(2);
		}
		tier_set_min_free(t, conf->tiers[t].min_free,
		    conf->tiers[t].min_free_ppm);
	}
	if (*mnt == NULL)
		*mnt = conf->mountpoint;
	if (*mnt == NULL) {
		fprintf(stderr, "dfs: %s: no mount point in the file or on "
		    "the command line\n", conf->file);
		exit(2);
	}
	dfs.attr_timeout = conf->attr_timeout;
	dfs.entry_timeout = conf->entry_timeout;
	if ((conf->allow_other && dfs_add_opt(fuse_opts, "allow_other") != 0))
		fatalx("out of memory");
	for (i = 0; i < conf->nfuse_options; i++)
		if (dfs_parse_opts(conf->fuse_options[i], fuse_opts,
		    &cause) != 0) {
			fprintf(stderr, "dfs: %s: %s\n", conf->file, cause);
			exit(2);
		}
	if (dfs.index_path == NULL) {
		dfs_mkdirs(conf->state_dir);
		if (asprintf(&dfs.index_path, "%s/index.db",
		    conf->state_dir) == -1)
			fatalx("out of memory");
	}
}

/*
 * A dfs that died (kill -9, a crash) leaves its mount behind, answering
 * ENOTCONN: a restart (systemd's Restart=on-failure) detaches it first.
 */
static void
dfs_detach_stale(const char *mnt)
{
	if (umount2(mnt, MNT_DETACH) == 0)
		fprintf(stderr, "dfs: %s: detached the mount of a dfs that "
		    "is gone\n", mnt);
}

/* PATH made absolute against the working directory, symlinks kept. */
static char *
dfs_absolute(const char *path)
{
	char	*cwd, *abs;

	if ((cwd = getcwd(NULL, 0)) == NULL)
		return (NULL);
	if (asprintf(&abs, "%s/%s", cwd, path) == -1)
		abs = NULL;
	free(cwd);
	return (abs);
}

/* "fast:archive" as fstab's source field gives the tiers. */
static void
dfs_split_tiers(const char *src)
{
	char	*copy, *p, *tier, *cause = NULL;

	if ((copy = strdup(src)) == NULL)
		fatalx("out of memory");
	p = copy;
	while ((tier = strsep(&p, ":")) != NULL) {
		if (*tier != '\0' && tier_add(NULL, tier, &cause) != 0) {
			fprintf(stderr, "dfs: %s\n", cause);
			exit(2);
		}
	}
	free(copy);
}

int
main(int argc, char **argv)
{
	struct fuse_args	 args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session	*se;
	struct fuse_loop_config	*lc;
	struct stat		 st;
	struct statvfs		 sv;
	pthread_t		 sigthread;
	sigset_t		 set;
	char			*fuse_opts = NULL, *cause = NULL, *p;
	const char		*mnt = NULL, *conf_path = NULL;
	int			 ch, foreground = 0, check = 0, report = -1;
	int			 rv, i, nfd;

	dfs.attr_timeout = 60.0;
	dfs.entry_timeout = 60.0;
	if (dfs_add_opt(&fuse_opts, "default_permissions,fsname=dfs,"
	    "subtype=dfs") != 0)
		fatalx("out of memory");
	while ((ch = getopt_long(argc, argv, "c:dfhno:V", dfs_longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'd':
			dfs.debug = 1;
			foreground = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'o':
			if (dfs_parse_opts(optarg, &fuse_opts, &cause) != 0) {
				fprintf(stderr, "dfs: %s\n", cause);
				exit(2);
			}
			break;
		case 'V':
			printf("dfs %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(1);
		default:
			usage(0);
		}
	}
	argc -= optind;
	argv += optind;
	/*
	 * The tiers come from a config file (no argument, or only the mount
	 * point; fstab may name the file as its source), or from the
	 * command line: TIER0 TIER1 ... MOUNTPOINT, or "TIER0:TIER1" MOUNTPOINT.
	 */
	if (argc >= 3 && conf_path != NULL) {
		fprintf(stderr, "dfs: tiers come from %s or from the command "
		    "line, not both\n", conf_path);
		usage(0);
	}
	if (argc == 2 && conf_path == NULL && stat(argv[0], &st) == 0 &&
	    S_ISREG(st.st_mode))
		conf_path = argv[0];
	if (argc <= 1 || (argc == 2 && conf_path != NULL)) {
		if (conf_path == NULL) {
			conf_path = DFS_CONF;
			if (access(conf_path, F_OK) == -1) {
				fprintf(stderr, "dfs: no tiers given, and no "
				    "config file %s: %s\n", conf_path,
				    strerror(errno));
				usage(0);
			}
		}
		if (argc >= 1)
			mnt = argv[argc - 1];
		if (config_load(conf_path, &dfs_conf, &cause) != 0) {
			fprintf(stderr, "dfs: %s\n", cause);
			exit(2);
		}
		/*
		 * Absolute: the daemon reloads it after its chdir("/").  The
		 * control thread keeps conf_path; dfs_conf is freed on reload.
		 */
		if (*conf_path != '/') {
			free(dfs_conf->file);
			if ((p = dfs_absolute(conf_path)) == NULL ||
			    (dfs_conf->file = strdup(p)) == NULL)
				fatalx("out of memory");
			conf_path = p;
		}
		dfs_apply_config(dfs_conf, &mnt, &fuse_opts);
	} else if (argc == 2) {
		mnt = argv[1];
		dfs_split_tiers(argv[0]);
	} else {
		mnt = argv[argc - 1];
		for (i = 0; i < argc - 1; i++) {
			if (tier_add(NULL, argv[i], &cause) != 0) {
				fprintf(stderr, "dfs: %s\n", cause);
				exit(2);
			}
		}
	}
	/*
	 * statfs, not stat: the kernel may answer a stat of a dead mount's
	 * root from attributes it still holds, but never a statfs.
	 */
	if (!check && statvfs(mnt, &sv) == -1 && errno == ENOTCONN)
		dfs_detach_stale(mnt);
	if (stat(mnt, &st) == -1) {
		fprintf(stderr, "dfs: mount point %s: %s\n", mnt,
		    strerror(errno));
		exit(2);
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "dfs: mount point %s: not a directory\n", mnt);
		exit(2);
	}
	if (tier_check_layout(mnt, &cause) != 0) {
		fprintf(stderr, "dfs: %s\n", cause);
		exit(2);
	}
	if (check) {
		printf("%s: ok\n", conf_path != NULL ? conf_path :
		    "command line");
		exit(0);
	}
	/* Absolute: the daemon unmounts after its chdir("/"). */
	if ((dfs.mountpoint = realpath(mnt, NULL)) == NULL) {
		fprintf(stderr, "dfs: mount point %s: %s\n", mnt,
		    strerror(errno));
		exit(2);
	}
	mnt = dfs.mountpoint;
	if (dfs.index_path == NULL &&
	    (dfs.index_path = dfs_default_index(mnt)) == NULL) {
		fprintf(stderr, "dfs: mount point %s: %s\n", mnt,
		    strerror(errno));
		exit(2);
	}

	/* Modes reach the tiers exactly as the client asked. */
	umask(0);
	dfs_raise_nofile();
	if (!foreground)
		dfs_daemonise(&report);
	log_init(foreground, dfs.debug);
	if (dfs_conf != NULL && !dfs.debug)
		log_set_level(dfs_conf->log_level);
	/* Every thread inherits this: SIGHUP goes to the reload thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	/* Recovery, the scan and every move depend on what the tiers offer. */
	for (i = 0; i < dfs.ntiers; i++)
		tier_probe(i, dfs_conf != NULL && i < dfs_conf->ntiers ?
		    dfs_conf->tiers[i].stable_inodes : DFS_INODES_AUTO);
	tier_set_timeouts(dfs_conf);
	if ((rv = node_init()) != 0)
		dfs_fail(report, "node table: %s", strerror(-rv));
	if (index_open(dfs.index_path, &cause) < 0)
		dfs_fail(report, "%s", cause);
	dfs_up = DFS_UP_INDEX;
	if (index_check_tiers(dfs_retier, &cause) != 0)
		dfs_fail(report, "%s", cause);
	if ((rv = migrate_recover()) != 0)
		dfs_fail(report, "recovery of interrupted migrations: %s",
		    strerror(-rv));
	index_boot_mark();
	if (index_trust_previous())
		log_info("index %s: whole at the last stop; served at once, "
		    "while a scan looks for changes made meanwhile",
		    dfs.index_path);
	migrate_configure(dfs_conf);
	/* The layers below reach the worker only through these. */
	ns_set_hooks(&(struct ns_hooks){ migrate_sources_flush,
	    migrate_sources_flush_id, migrate_room_short });
	scan_set_done_hook(migrate_wake);
	if (fuse_opt_add_arg(&args, "dfs") != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, fuse_opts) != 0 ||
	    (dfs.debug && fuse_opt_add_arg(&args, "-d") != 0))
		dfs_fail(report, "out of memory");
	se = fuse_session_new(&args, &op_table, sizeof op_table, NULL);
	if (se == NULL)
		dfs_fail(report, "invalid FUSE options: %s", fuse_opts);
	if (fuse_set_signal_handlers(se) != 0)
		dfs_fail(report, "signal handlers: %s", strerror(errno));
	/* Before the mount: a second dfs on the same socket stops here. */
	if (dfs_conf != NULL && dfs_ctl_path == NULL &&
	    (dfs_ctl_path = strdup(dfs_conf->socket)) == NULL)
		dfs_fail(report, "out of memory");
	/* conf_path, not dfs_conf->file: dfs_conf is freed on reload. */
	ctl_configure(dfs_conf != NULL ? conf_path : NULL, dfs_reload);
	/* Absolute: the daemon removes the socket after its chdir("/"). */
	if (dfs_ctl_path != NULL && *dfs_ctl_path != '/') {
		if ((p = dfs_absolute(dfs_ctl_path)) == NULL)
			dfs_fail(report, "out of memory");
		free(dfs_ctl_path);
		dfs_ctl_path = p;
	}
	if (dfs_ctl_path != NULL && ctl_start(dfs_ctl_path, &cause) != 0)
		dfs_fail(report, "%s", cause);
	if (fuse_session_mount(se, mnt) != 0)
		dfs_fail(report, "cannot mount on %s", mnt);
	dfs_up_se = se;
	dfs_up = DFS_UP_MOUNT;
	log_info("mounted %s with %d tiers, index %s", mnt, dfs.ntiers,
	    dfs.index_path);
	node_set_session(se);
	if ((rv = scan_start()) != 0)
		dfs_fail(report, "scan: %s", strerror(-rv));
	dfs_up = DFS_UP_SCAN;
	if ((rv = migrate_start()) != 0)
		dfs_fail(report, "migration worker: %s", strerror(-rv));
	dfs_up = DFS_UP_WORKER;
	if ((rv = pthread_create(&sigthread, NULL, dfs_signal_main, NULL)) != 0)
		dfs_fail(report, "signal thread: %s", strerror(rv));

	if (report != -1) {
		if (chdir("/") == -1)
			log_warn("chdir /: %s", strerror(errno));
		if ((nfd = open("/dev/null", O_RDWR)) != -1) {
			dup2(nfd, STDIN_FILENO);
			dup2(nfd, STDOUT_FILENO);
			dup2(nfd, STDERR_FILENO);
			if (nfd > STDERR_FILENO)
				close(nfd);
		}
		dfs_report(report, NULL);
	}
	dfs_notify("READY=1");

	if ((lc = fuse_loop_cfg_create()) == NULL)
		rv = -1;
	else {
		fuse_loop_cfg_set_clone_fd(lc, 1);
		fuse_loop_cfg_set_max_threads(lc, 16);
		rv = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* Positive: the signal (SIGTERM, SIGINT) that ended the loop. */
	if (rv > 0) {
		log_info("%s: unmounting", strsignal(rv));
		rv = 0;
	}
	dfs_notify("STOPPING=1");
	ctl_stop();
	node_set_session(NULL);
	fuse_session_unmount(se);
	migrate_shutdown();
	scan_shutdown();
	index_close(rv == 0);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	/* No reload may run while the configuration is freed. */
	atomic_store(&dfs_stopping, 1);
	pthread_kill(sigthread, SIGHUP);
	pthread_join(sigthread, NULL);
	node_shutdown();
	tier_close_all();
	free(fuse_opts);
	log_info("unmounted %s", mnt);
	config_free(dfs_conf);
	return (rv == 0 ? 0 : 1);
}
