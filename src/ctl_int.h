/*
 * The control socket's private header: what ctl.c, which serves the socket,
 * shares with the files that hold the commands, and with ctl_buf.c, which
 * renders replies.  Include after dfs.h and dfs-protocol.h.
 */
#ifndef CTL_INT_H
#define CTL_INT_H

#define CTL_ERR_MAX	256	/* an error reply's text */

/* Room kept for the end of a reply that was cut short. */
#define CTL_TAIL	4096

/* Reply text under construction; nomem once an allocation failed. */
struct ctl_buf {
	char		*s;
	size_t		 len;
	size_t		 size;
	int		 nomem;
};

/* A connected dfsctl; handlers read its request. */
struct ctl_client {
	int			 fd;		/* -1: slot free */
	uid_t			 uid;		/* SO_PEERCRED at accept */
	pid_t			 pid;
	struct dfs_proto_hdr	 hdr;
	char			*payload;
	size_t			 have;		/* request bytes read */
	char			*out;		/* reply: header and text */
	size_t			 outlen;
	size_t			 outoff;
	char			*outbuf;	/* allocated reply, or NULL */
	char			 errbuf[sizeof (struct dfs_proto_hdr) +
				    CTL_ERR_MAX];
	int			 closing;	/* close once the reply is out */
	uint64_t		 deadline;	/* ms, CLOCK_MONOTONIC */
	int			 working;	/* a worker makes the reply */
	int			 done;		/* ...and has: ctl_work_mtx */
};

/*
 * The paths of a request, resolved by the dispatcher before the handler
 * runs, as the command table says the command takes them.
 */
struct ctl_paths {
	size_t		 n;
	const char	**given;	/* as the client gave them */
	char		**rel;		/* canonical, from the mount root */
	struct irow	*rows;
	char		*one;		/* a lone path, NUL-ended: given[0] */
};

/* ctl.c */
uint64_t	ctl_now(void);
long	ctl_uptime(void);

/* ctl_buf.c */
int	ctl_buf_grow(struct ctl_buf *, size_t);
void	ctl_buf_printf(struct ctl_buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	ctl_buf_putc(struct ctl_buf *, char);
void	ctl_buf_text(struct ctl_buf *, const char *, int);
void	ctl_buf_json(struct ctl_buf *, const char *);
void	ctl_buf_label(struct ctl_buf *, const char *);
void	ctl_size(char *, size_t, uint64_t);
void	ctl_time(char *, size_t, long);
void	ctl_age(char *, size_t, int64_t);
int	ctl_width(int, const char *);
const char *ctl_type(unsigned);

/* ctl_path.c */
void	ctl_mount_path(struct ctl_buf *, const char *);
void	ctl_paths_free(struct ctl_paths *);
int	ctl_one_path(struct ctl_client *, struct ctl_buf *, const char *,
	    struct ctl_paths *);
int	ctl_paths_at(struct ctl_client *, struct ctl_buf *, const char *, int,
	    size_t, struct ctl_paths *);

/* ctl_status.c */
int	ctl_cmd_status(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_reload(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_stats(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);

/* ctl_scan.c */
void	ctl_scan_json(struct ctl_buf *, const struct scan_progress *);
void	ctl_scan_line(struct ctl_buf *, const struct scan_progress *);
int	ctl_cmd_scan(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_scan_status(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);

/* ctl_index.c */
int	ctl_cmd_where(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_conflicts(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_pin(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_unpin(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_pins(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);

/* ctl_migrate.c */
void	ctl_runs(struct ctl_buf *, const struct mig_status *, int);
int	ctl_cmd_migrate(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_migrate_status(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_migrate_plan(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_migrate_stream(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);
int	ctl_cmd_explain(struct ctl_client *, struct ctl_buf *,
	    const struct ctl_paths *);

#endif /* CTL_INT_H */
