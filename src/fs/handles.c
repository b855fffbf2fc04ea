/*
 * handles.c - open handles counted per uid.
 *
 * A small chained hash of the uids that hold at least one handle; a uid's
 * slot is freed when its last handle closes, so the table holds no more
 * slots than there are open handles.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs/handles.h"

struct handles_uid {
	struct handles_uid *next;
	uid_t uid;
	size_t n;
};

void handles_init(struct handles *h, size_t max)
{
	*h = (struct handles){ .max = max };
	pthread_mutex_init(&h->lock, NULL);
}

void handles_done(struct handles *h)
{
	for (size_t i = 0; i < HANDLES_BUCKETS; i++) {
		struct handles_uid *u, *next;

		for (u = h->buckets[i]; u; u = next) {
			next = u->next;
			free(u);
		}
	}
	pthread_mutex_destroy(&h->lock);
}

static struct handles_uid **slot(struct handles *h, uid_t uid)
{
	struct handles_uid **p = &h->buckets[(uid * 2654435761u) % HANDLES_BUCKETS];

	while (*p && (*p)->uid != uid)
		p = &(*p)->next;
	return p;
}

int handles_take(struct handles *h, uid_t uid)
{
	struct handles_uid **p, *u;
	int r = 0;

	pthread_mutex_lock(&h->lock);
	p = slot(h, uid);
	u = *p;
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u) {
			r = -ENOMEM;
			goto out;
		}
		u->uid = uid;
		*p = u;
	}
	if (h->max && u->n >= h->max) {
		__atomic_fetch_add(&h->refused, 1, __ATOMIC_RELAXED);
		r = -EMFILE;
		goto out;
	}
	u->n++;
	__atomic_fetch_add(&h->open, 1, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

void handles_put(struct handles *h, uid_t uid)
{
	struct handles_uid **p, *u;

	pthread_mutex_lock(&h->lock);
	p = slot(h, uid);
	u = *p;
	if (u && u->n > 0) {
		__atomic_fetch_sub(&h->open, 1, __ATOMIC_RELAXED);
		if (--u->n == 0) {
			*p = u->next;
			free(u);
		}
	}
	pthread_mutex_unlock(&h->lock);
}
