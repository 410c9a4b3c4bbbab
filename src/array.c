/*
 * Growable arrays: the one doubling realloc every list of unknown length
 * (directory entries, rows, records) grows by.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dfs.h"

/*
 * Room in the array *vp (vp: the address of any object pointer) for at
 * least need elements of size bytes, doubling from 64
 * so that n appends cost O(n): 0, or -ENOMEM with *vp and *cap unchanged.
 */
int
array_grow(void *vp, size_t *cap, size_t need, size_t size)
{
	void	*v, *nv;
	size_t	 ncap;

	if (need <= *cap)
		return (0);
	ncap = *cap < 32 ? 64 : *cap * 2;
	if (ncap < need)
		ncap = need;
	if (size != 0 && ncap > SIZE_MAX / size)
		return (-ENOMEM);
	/* vp points at a typed pointer: copied, not cast, to keep aliasing. */
	memcpy(&v, vp, sizeof v);
	if ((nv = realloc(v, ncap * size)) == NULL)
		return (-ENOMEM);
	memcpy(vp, &nv, sizeof nv);
	*cap = ncap;
	return (0);
}
