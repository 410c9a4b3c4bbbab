/*
 * The control protocol between dfs (ctl.c) and dfsctl: one header, used by
 * requests and replies, over the Unix control socket.
 *
 * Rules:
 * - A released message never changes.  A new request or reply form gets a
 *   new command code; DFS_PROTO_VERSION moves only when the header does.
 * - Reserved bytes are sent as zero and a request with any of them set is
 *   refused, so a later version can give them a meaning.
 * - Integers are in host byte order: both ends are on the same host.
 *
 * Changelog:
 *   version 1 (dfs 0.1.0)
 *	header as below (32 bytes);
 *	DFS_CMD_STATUS, DFS_CMD_RELOAD, DFS_CMD_STATS, all with an empty
 *	request payload;
 *	flags DFS_FLAG_JSON (all commands), DFS_FLAG_PROMETHEUS (stats).
 *   version 1, after dfs 0.1.0 (new commands; the header is unchanged)
 *	DFS_CMD_SCAN and DFS_CMD_SCAN_STATUS, empty request payload;
 *	DFS_CMD_WHERE, the payload one path (1 byte to the maximum, no
 *	NUL), answered DFS_STATUS_FAILED with one line if it is not in
 *	the index; DFS_CMD_CONFLICTS, empty request payload;
 *	all take DFS_FLAG_JSON.  The status reply gained lines (text) and
 *	the keys "index", "conflicts" and "scan" (JSON).
 *   version 1, after dfs 0.1.0 (migration; the header is unchanged)
 *	A path list is zero or more paths, each 1 byte or more and ended
 *	by a NUL; a single path has no NUL.  Paths are mount paths:
 *	absolute under the mount point, or relative to the mount root.
 *	DFS_CMD_MIGRATE, a path list: start a migration run (of those
 *	files only, if any); the reply gives the number the run will have
 *	(text "run N", JSON "run"; "indexed" false while no full scan has
 *	completed).  The server does not wait for the run.
 *	DFS_CMD_MIGRATE_STATUS, 8 bytes: a run number (uint64_t), 0 for
 *	all: the running run and the last ones, or that run alone (JSON
 *	"state": "pending", "running", "done" or "forgotten").
 *	DFS_CMD_MIGRATE_PLAN, a path list: what a run would move, and the
 *	files it would leave, with the reasons; nothing moves.
 *	DFS_CMD_EXPLAIN, one path: the policy that decides for it, and why.
 *	DFS_CMD_PIN and DFS_CMD_UNPIN, one path; DFS_CMD_PINS, empty.
 *	All take DFS_FLAG_JSON and answer DFS_STATUS_FAILED with one line
 *	for a path that is not in the index.  The status reply gained the
 *	last migration runs and the files and bytes of each tier (text),
 *	the key "migration" and the tier keys "files" and "bytes" (JSON).
 *   version 1, after dfs 0.1.0 (tiers' capabilities; no new message)
 *	The status reply gained a table of what each tier's file system
 *	supports (text) and the tier keys "fstype", "supports" (an object
 *	of booleans: "rename_noreplace", "rename_exchange", "hardlinks",
 *	"nlink", "xattrs", "stable_inodes", "ns_times") and
 *	"stable_inodes_from" ("probe" or "config") (JSON).
 *   version 1, after dfs 0.1.0 (a streamed dry run; the header is unchanged)
 *	DFS_CMD_MIGRATE_STREAM, 8 bytes (a file limit, uint64_t, 0 for the
 *	run's own limits) then a path list: what DFS_CMD_MIGRATE_PLAN
 *	answers, as it is found.  The reply is zero or more frames of
 *	status DFS_STATUS_MORE, each of whole lines, one per file
 *	("move POLICY FROM -> TO AGE SIZE PATH" or "stay REASON POLICY
 *	PATH (WHY)"; JSON: one object per line, {"move": {...}} or
 *	{"stay": {...}}), then one frame of the final status: the summary
 *	(files, bytes, files left, per policy and target) or the reason.
 *
 * An exchange: the client sends a header with type DFS_TYPE_REQUEST,
 * status 0 and `length` payload bytes; the server answers with a header of
 * type DFS_TYPE_REPLY carrying the same version and command, a status and
 * `length` bytes of UTF-8 text, no NUL: the rendered output for
 * DFS_STATUS_OK, one line saying why otherwise.  A client may send further
 * requests on the connection; after any error status other than
 * DFS_STATUS_FAILED the server closes it.
 *
 * The server checks a request in this order and answers the first failure:
 *	header incomplete				DFS_STATUS_BADLENGTH
 *	length > DFS_PROTO_MAX_PAYLOAD			DFS_STATUS_TOOLONG
 *	magic, type, status or reserved bytes wrong	DFS_STATUS_BADHEADER
 *	version						DFS_STATUS_BADVERSION
 *	command number					DFS_STATUS_BADCOMMAND
 *	flags the command does not take			DFS_STATUS_BADFLAGS
 *	length not what the command expects		DFS_STATUS_BADLENGTH
 *	(a fixed length, or a range: DFS_CMD_WHERE, path lists)
 *	peer not allowed				DFS_STATUS_DENIED
 */
#ifndef DFS_PROTOCOL_H
#define DFS_PROTOCOL_H

#include <stdint.h>

#define DFS_PROTO_MAGIC		0x43534644U	/* "DFSC" in little endian */
#define DFS_PROTO_VERSION	1

/* Largest payload either way; a longer request is refused unread. */
#define DFS_PROTO_MAX_PAYLOAD	(1024U * 1024U)

#define DFS_TYPE_REQUEST	1
#define DFS_TYPE_REPLY		2

struct dfs_proto_hdr {
	uint32_t	magic;		/* DFS_PROTO_MAGIC */
	uint8_t		version;	/* DFS_PROTO_VERSION */
	uint8_t		type;		/* DFS_TYPE_* */
	uint16_t	command;	/* DFS_CMD_* */
	uint32_t	flags;		/* DFS_FLAG_* */
	uint32_t	status;		/* request: 0; reply: DFS_STATUS_* */
	uint32_t	length;		/* payload bytes after the header */
	uint8_t		reserved[12];	/* zero */
};

_Static_assert(sizeof (struct dfs_proto_hdr) == 32,
    "the version 1 header is 32 bytes");

/* Commands.  Codes are never reused; 0 is never a command. */
#define DFS_CMD_STATUS		1	/* version, uptime, tiers */
#define DFS_CMD_RELOAD		2	/* re-read the configuration */
#define DFS_CMD_STATS		3	/* per-tier backing call counters */
#define DFS_CMD_SCAN		4	/* start a full scan of the tiers */
#define DFS_CMD_SCAN_STATUS	5	/* the running or last scan */
#define DFS_CMD_WHERE		6	/* the tiers holding one path */
#define DFS_CMD_CONFLICTS	7	/* names with shadowed copies */
#define DFS_CMD_MIGRATE		8	/* start a migration run */
#define DFS_CMD_MIGRATE_STATUS	9	/* the running or last runs */
#define DFS_CMD_MIGRATE_PLAN	10	/* what a run would do (dry run) */
#define DFS_CMD_EXPLAIN		11	/* the policy deciding for one path */
#define DFS_CMD_PIN		12	/* keep one path where it is */
#define DFS_CMD_UNPIN		13
#define DFS_CMD_PINS		14	/* the pinned paths */
#define DFS_CMD_MIGRATE_STREAM	15	/* a dry run, streamed */
#define DFS_CMD_MAX		15	/* highest code this version knows */

/* Request flags: the output form.  Neither: text for people. */
#define DFS_FLAG_JSON		0x1U	/* one JSON object */
#define DFS_FLAG_PROMETHEUS	0x2U	/* Prometheus text format 0.0.4 */

/* Reply status. */
#define DFS_STATUS_OK		0
#define DFS_STATUS_FAILED	1	/* the command ran and failed */
#define DFS_STATUS_BADLENGTH	2	/* truncated, or wrong for the command */
#define DFS_STATUS_TOOLONG	3	/* length over DFS_PROTO_MAX_PAYLOAD */
#define DFS_STATUS_BADHEADER	4	/* magic, type, status or reserved */
#define DFS_STATUS_BADVERSION	5
#define DFS_STATUS_BADCOMMAND	6
#define DFS_STATUS_BADFLAGS	7
#define DFS_STATUS_DENIED	8	/* peer uid not allowed */
#define DFS_STATUS_MORE		9	/* part of a reply; more follows */

#endif /* DFS_PROTOCOL_H */
