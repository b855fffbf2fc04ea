/*
 * kept.c - the values kept for revalidation: a hash map of id -> (version,
 * value) with a least-recently-used list, both under one mutex.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kept.h"

struct kept {
	struct kept *hnext;	    /* hash chain */
	struct kept *newer, *older; /* least recently used last */
	struct secret *value;
	char version[BACKEND_VERSION_MAX];
	char id[];
};

int kept_map_init(struct kept_map *m, size_t max_n, size_t max_bytes)
{
	*m = (struct kept_map){ .max_n = max_n ? max_n : 1024, .max_bytes = max_bytes };
	pthread_mutex_init(&m->lock, NULL);
	m->nbuckets = 64;
	while (m->nbuckets < m->max_n && m->nbuckets < (1u << 16))
		m->nbuckets <<= 1;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	return m->buckets ? 0 : -ENOMEM;
}

static size_t hash_id(const struct kept_map *m, const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
	return (size_t)(h & (m->nbuckets - 1));
}

/* The link that points at @id's entry, or at the NULL that ends its chain. */
static struct kept **kept_link(struct kept_map *m, const char *id)
{
	struct kept **l = &m->buckets[hash_id(m, id)];

	while (*l && strcmp((*l)->id, id) != 0)
		l = &(*l)->hnext;
	return l;
}

static void lru_unlink(struct kept_map *m, struct kept *k)
{
	if (k->newer)
		k->newer->older = k->older;
	else
		m->newest = k->older;
	if (k->older)
		k->older->newer = k->newer;
	else
		m->oldest = k->newer;
	k->newer = k->older = NULL;
}

static void lru_push(struct kept_map *m, struct kept *k)
{
	k->older = m->newest;
	k->newer = NULL;
	if (m->newest)
		m->newest->newer = k;
	m->newest = k;
	if (!m->oldest)
		m->oldest = k;
}

/* Removes the entry @l points at; lock held. */
static void kept_drop(struct kept_map *m, struct kept **l)
{
	struct kept *k = *l;

	*l = k->hnext;
	lru_unlink(m, k);
	m->n--;
	m->bytes -= k->value->len;
	secret_unref(k->value);
	free(k);
}

struct secret *kept_map_get(struct kept_map *m, const char *id, char version[BACKEND_VERSION_MAX])
{
	struct secret *v = NULL;
	struct kept *k;

	if (!m->buckets)
		return NULL;
	pthread_mutex_lock(&m->lock);
	k = *kept_link(m, id);
	if (k) {
		lru_unlink(m, k);
		lru_push(m, k);
		v = secret_ref(k->value);
		memcpy(version, k->version, BACKEND_VERSION_MAX);
	}
	pthread_mutex_unlock(&m->lock);
	return v;
}

void kept_map_forget(struct kept_map *m, const char *id)
{
	struct kept **l;

	if (!m->buckets)
		return;
	pthread_mutex_lock(&m->lock);
	l = kept_link(m, id);
	if (*l)
		kept_drop(m, l);
	pthread_mutex_unlock(&m->lock);
}

void kept_map_put(struct kept_map *m, const char *id, const char *version, struct secret *value)
{
	struct kept **l, *k;

	if (!m->buckets || !*version)
		return;
	pthread_mutex_lock(&m->lock);
	l = kept_link(m, id);
	k = *l;
	if (k) {
		m->bytes -= k->value->len;
		secret_unref(k->value);
		lru_unlink(m, k);
	} else {
		k = calloc(1, sizeof(*k) + strlen(id) + 1);
		if (!k) {
			pthread_mutex_unlock(&m->lock);
			return; /* only an optimisation is lost */
		}
		memcpy(k->id, id, strlen(id) + 1);
		*l = k;
		m->n++;
	}
	k->value = secret_ref(value);
	snprintf(k->version, sizeof(k->version), "%s", version);
	m->bytes += value->len;
	lru_push(m, k);
	while (m->oldest && m->oldest != k &&
	       (m->n > m->max_n || (m->max_bytes && m->bytes > m->max_bytes)))
		kept_drop(m, kept_link(m, m->oldest->id));
	pthread_mutex_unlock(&m->lock);
}

void kept_map_clear(struct kept_map *m)
{
	if (!m->buckets)
		return;
	pthread_mutex_lock(&m->lock);
	while (m->oldest)
		kept_drop(m, kept_link(m, m->oldest->id));
	pthread_mutex_unlock(&m->lock);
}

void kept_map_done(struct kept_map *m)
{
	kept_map_clear(m);
	free(m->buckets);
	m->buckets = NULL;
	pthread_mutex_destroy(&m->lock);
}
