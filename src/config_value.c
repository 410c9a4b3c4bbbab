/*
 * Single values as an operator writes them in dfs.conf: sizes, room to
 * keep free, durations, owners, names and paths.  They only read a
 * string; config.c wraps them for libconfuse and its checks.
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* A size: bytes, with an optional K, M, G, T or P (powers of 1024). */
int
config_size(const char *s, int64_t *out)
{
	static const char	 units[] = "KMGTP";
	const char		*u;
	char			*end;
	unsigned long long	 v;
	int			 shift = 0;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	if (*end != '\0') {
		u = strchr(units, *end >= 'a' ? *end - 'a' + 'A' : *end);
		if (u == NULL || *u == '\0')
			return (-1);
		shift = 10 * (int)(u - units + 1);
		end++;
		if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
			end += strlen(end);
		if (*end != '\0')
			return (-1);
	}
	if (v > (unsigned long long)(INT64_MAX >> shift))
		return (-1);
	*out = (int64_t)(v << shift);
	return (0);
}

/*
 * Room to keep free: a size ("64M") or a percentage of the tier ("2%",
 * "0.5%"), kept as parts per million.
 */
int
config_room(const char *s, int64_t *bytes, int *ppm)
{
	char	*end;
	double	 d;
	size_t	 len = strlen(s);

	*bytes = 0;
	*ppm = 0;
	if (len == 0 || s[len - 1] != '%')
		return (config_size(s, bytes));
	if (*s < '0' || *s > '9' || strspn(s, "0123456789.") != len - 1)
		return (-1);
	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end != s + len - 1 || d < 0 || d > 50)
		return (-1);
	*ppm = (int)(d * 10000 + 0.5);
	return (0);
}

/* A duration: a number followed by s, m, h, d or w; or just 0. */
int
config_duration(const char *s, int64_t *out)
{
	char			*end;
	unsigned long long	 v;
	int64_t			 mul;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	if (end[0] == '\0') {
		if (v != 0)
			return (-1);
		*out = 0;
		return (0);
	}
	if (end[1] != '\0')
		return (-1);
	switch (end[0]) {
	case 's':
		mul = 1;
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	case 'w':
		mul = 7 * 86400;
		break;
	default:
		return (-1);
	}
	if (v > (unsigned long long)(INT64_MAX / mul))
		return (-1);
	*out = (int64_t)v * mul;
	return (0);
}

/* A user name or a numeric uid. */
int
config_uid(const char *s, uid_t *out)
{
	struct passwd	 pw, *res;
	char		 buf[4096], *end;
	unsigned long	 v;

	if (*s >= '0' && *s <= '9') {
		errno = 0;
		v = strtoul(s, &end, 10);
		if (errno != 0 || *end != '\0' || v >= (uid_t)-1)
			return (-1);
		*out = (uid_t)v;
		return (0);
	}
	if (getpwnam_r(s, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
		return (-1);
	*out = pw.pw_uid;
	return (0);
}

/* Tier and policy names: they appear in dfsctl output and messages. */
int
config_name_ok(const char *s)
{
	size_t	i, len = strlen(s);

	if (len == 0 || len > CONFIG_NAME_MAX)
		return (0);
	for (i = 0; i < len; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (i != 0 && (s[i] == '-' || s[i] == '_' || s[i] == '.')))
			continue;
		return (0);
	}
	return (1);
}

/* An absolute path with no . or .. component and no trailing ;. */
int
config_path_ok(const char *s)
{
	const char	*p;
	size_t		 len;

	if (s[0] != '/' || s[strlen(s) - 1] == ';')
		return (0);
	for (p = s; *p != '\0'; p += len) {
		p += strspn(p, "/");
		len = strcspn(p, "/");
		if ((len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return (0);
	}
	return (1);
}

/* A copy of a path with repeated and trailing slashes removed. */
char *
config_path_clean(const char *s)
{
	char	*out, *q;

	if ((out = malloc(strlen(s) + 1)) == NULL)
		return (NULL);
	for (q = out; *s != '\0'; s++) {
		if (*s == '/' && q != out && q[-1] == '/')
			continue;
		*q++ = *s;
	}
	if (q > out + 1 && q[-1] == '/')
		q--;
	*q = '\0';
	return (out);
}

/* Is a (clean) path equal to or below another? */
int
config_path_under(const char *path, const char *top)
{
	size_t	len = strlen(top);

	if (strcmp(top, "/") == 0)
		return (1);
	return (strncmp(path, top, len) == 0 &&
	    (path[len] == '\0' || path[len] == '/'));
}

