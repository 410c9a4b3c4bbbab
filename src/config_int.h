/*
 * What config.c and config_value.c share: the readers of single values.
 */
#ifndef DFS_CONFIG_INT_H
#define DFS_CONFIG_INT_H

#include <sys/types.h>

#include <stdint.h>

#define CONFIG_NAME_MAX	32		/* tier and policy names */

/* config_value.c */
int	config_size(const char *, int64_t *);
int	config_room(const char *, int64_t *, int *);
int	config_duration(const char *, int64_t *);
int	config_uid(const char *, uid_t *);
int	config_name_ok(const char *);
int	config_path_ok(const char *);
char	*config_path_clean(const char *);
int	config_path_under(const char *, const char *);

#endif
