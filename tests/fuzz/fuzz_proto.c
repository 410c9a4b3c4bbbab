/*
 * libFuzzer harness for the control protocol's decoder: each input is
 * what a peer sends on the control socket, a header and a payload.  It
 * goes through the server's checks (ctl_check, in the order of
 * dfs-protocol.h) and, when they pass, through the handler of each
 * command that only reads or records (status, stats, where, conflicts,
 * migrate status, explain, pin, unpin, pins), against an empty index.
 * Commands that start work (scan, migrate, reload) stop at the checks.
 */
#include "../../src/ctl.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	fuzz_ready;

static void
fuzz_setup(void)
{
	char	dir[] = "/dev/shm/fuzz_proto.XXXXXX", path[64], *cause = NULL;

	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof path, "%s/index.db", dir);
	if (index_open(path, &cause) < 0) {
		fprintf(stderr, "fuzz_proto: %s\n", cause);
		abort();
	}
	dfs.mountpoint = strdup("/mnt/dfs");
	fuzz_ready = 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_client	 c;
	struct ctl_buf		 b;
	size_t			 hl = sizeof c.hdr;
	uint16_t		 cmd;

	if (!fuzz_ready)
		fuzz_setup();
	memset(&c, 0, sizeof c);
	c.fd = -1;
	c.uid = 0;
	if (size < hl)
		return (0);	/* the server waits for the rest */
	memcpy(&c.hdr, data, hl);
	if (ctl_check(&c) != DFS_STATUS_OK)
		return (0);
	/* The server reads exactly length bytes of payload. */
	if (size - hl < c.hdr.length)
		return (0);
	if ((c.payload = malloc(c.hdr.length + 1)) == NULL)
		return (0);
	memcpy(c.payload, data + hl, c.hdr.length);
	cmd = c.hdr.command;
	switch (cmd) {
	case DFS_CMD_STATUS:
	case DFS_CMD_STATS:
	case DFS_CMD_WHERE:
	case DFS_CMD_CONFLICTS:
	case DFS_CMD_MIGRATE_STATUS:
	case DFS_CMD_EXPLAIN:
	case DFS_CMD_PIN:
	case DFS_CMD_UNPIN:
	case DFS_CMD_PINS:
		memset(&b, 0, sizeof b);
		if (ctl_buf_grow(&b, hl) == 0)
			b.len = hl;
		ctl_run(&c, &b);
		free(b.s);
		break;
	default:
		break;
	}
	free(c.payload);
	free(c.outbuf);
	return (0);
}
