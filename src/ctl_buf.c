/*
 * Reply text for the control socket: a growing buffer, and what writes
 * into it safely for a terminal (control characters replaced), for JSON
 * (escaped, valid UTF-8) and for Prometheus labels, with the small
 * formatters that sizes, times and durations share.
 */
#include "config.h"

#include <sys/stat.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfs.h"
#include "dfs-protocol.h"
#include "ctl_int.h"

int
ctl_buf_grow(struct ctl_buf *b, size_t need)
{
	size_t	 size;
	char	*s;

	if (b->nomem)
		return (-1);
	if (b->len + need + 1 <= b->size)
		return (0);
	size = b->size == 0 ? 4096 : b->size;
	while (size < b->len + need + 1)
		size *= 2;
	if ((s = realloc(b->s, size)) == NULL) {
		b->nomem = 1;
		return (-1);
	}
	b->s = s;
	b->size = size;
	return (0);
}

void
ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->nomem = 1;
		return;
	}
	if (ctl_buf_grow(b, n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

void
ctl_buf_putc(struct ctl_buf *b, char c)
{
	if (ctl_buf_grow(b, 1) != 0)
		return;
	b->s[b->len++] = c;
	b->s[b->len] = '\0';
}

/* Text for a terminal: control characters become '?'; padded to width. */
void
ctl_buf_text(struct ctl_buf *b, const char *s, int width)
{
	const unsigned char	*p;
	int			 n = 0;

	for (p = (const unsigned char *)s; *p != '\0'; p++, n++)
		ctl_buf_putc(b, *p < 0x20 || *p == 0x7f ? '?' : (char)*p);
	for (; n < width; n++)
		ctl_buf_putc(b, ' ');
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
ctl_utf8_len(const unsigned char *p)
{
	size_t		n, i;
	uint32_t	cp;

	if (p[0] < 0x80)
		return (1);
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return (0);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return (0);
	return (n);
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
void
ctl_buf_json(struct ctl_buf *b, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n;

	if (s == NULL) {
		ctl_buf_printf(b, "null");
		return;
	}
	ctl_buf_putc(b, '"');
	while (*p != '\0') {
		switch (*p) {
		case '"':
			ctl_buf_printf(b, "\\\"");
			break;
		case '\\':
			ctl_buf_printf(b, "\\\\");
			break;
		case '\n':
			ctl_buf_printf(b, "\\n");
			break;
		case '\t':
			ctl_buf_printf(b, "\\t");
			break;
		case '\r':
			ctl_buf_printf(b, "\\r");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				ctl_buf_printf(b, "\\u%04x", *p);
				break;
			}
			if ((n = ctl_utf8_len(p)) == 0) {
				ctl_buf_printf(b, "\\ufffd");
				break;
			}
			while (n-- > 1)
				ctl_buf_putc(b, (char)*p++);
			ctl_buf_putc(b, (char)*p);
			break;
		}
		p++;
	}
	ctl_buf_putc(b, '"');
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
void
ctl_buf_label(struct ctl_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			ctl_buf_putc(b, '\\');
		if (*s == '\n')
			ctl_buf_printf(b, "\\n");
		else
			ctl_buf_putc(b, *s);
	}
}

/* Sizes as df -h shows them. */
void
ctl_size(char *buf, size_t len, uint64_t n)
{
	static const char	 units[] = "KMGTPE";
	double			 d = n;
	int			 i = -1;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 "B", n);
		return;
	}
	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	if (d < 9.95)
		snprintf(buf, len, "%.1f%c", d, units[i]);
	else
		snprintf(buf, len, "%.0f%c", d, units[i]);
}

void
ctl_time(char *buf, size_t len, long t)
{
	struct tm	tm;
	time_t		tt = t;

	if (t == 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
}

/* A duration as "200d", "5h", "30m" or "12s". */
void
ctl_age(char *buf, size_t len, int64_t s)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s >= 2 * 86400)
		snprintf(buf, len, "%lldd", (long long)(s / 86400));
	else if (s >= 2 * 3600)
		snprintf(buf, len, "%lldh", (long long)(s / 3600));
	else if (s >= 2 * 60)
		snprintf(buf, len, "%lldm", (long long)(s / 60));
	else
		snprintf(buf, len, "%llds", (long long)s);
}

int
ctl_width(int w, const char *s)
{
	return ((int)strlen(s) > w ? (int)strlen(s) : w);
}

const char *
ctl_type(unsigned type)
{
	switch (type) {
	case S_IFDIR:
		return ("directory");
	case S_IFREG:
		return ("file");
	case S_IFLNK:
		return ("symlink");
	default:
		return ("special");
	}
}
