/*
 * libFuzzer harness for the configuration parser: each input is a
 * configuration file, loaded as dfs -c would load it.  A bad file must
 * give a message and -1, never a crash, a leak or undefined behaviour.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	fuzz_path[64];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dfs_config	*conf = NULL;
	char			*cause = NULL;
	FILE			*fp;
	int			 fd;

	if (fuzz_path[0] == '\0') {
		snprintf(fuzz_path, sizeof fuzz_path, "/dev/shm/fuzz_config.%ld",
		    (long)getpid());
		if ((fd = mkstemp(strcat(fuzz_path, ".XXXXXX"))) == -1)
			abort();
		close(fd);
	}
	if ((fp = fopen(fuzz_path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, fp) != size)
		abort();
	fclose(fp);
	if (config_load(fuzz_path, &conf, &cause) == 0) {
		if (conf == NULL || cause != NULL)
			abort();
		config_free(conf);
	} else if (cause == NULL || *cause == '\0')
		abort();	/* every refusal says why */
	free(cause);
	return (0);
}
