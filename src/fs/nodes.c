/*
 * nodes.c - the inode table: tree path -> node, with kernel lookup counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/nodes.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

int nodes_init(struct node_table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->root.type = NODE_DIR;
	t->root.has_folder = true;
	t->root.id = (char *)"";
	t->root.tpath = (char *)"";
	t->root.nlookup = 1;
	t->next_generation = 1;
	return 0;
}

static void node_free(struct node *n)
{
	free(n->id);
	free(n->key);
	free(n->tpath);
	free(n);
}

void nodes_done(struct node_table *t)
{
	for (struct node *n = t->detached, *next; n; n = next) {
		next = n->hnext;
		node_free(n);
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct node *n = t->buckets[i], *next;

		for (; n; n = next) {
			next = n->hnext;
			node_free(n);
		}
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
}

static void grow(struct node_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct node *n = t->buckets[i], *next;

		for (; n; n = next) {
			size_t h = hash_str(n->tpath) & (nb - 1);

			next = n->hnext;
			n->hnext = b[h];
			b[h] = n;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

static bool same(const struct node *a, const struct node *b)
{
	return a->type == b->type && a->has_secret == b->has_secret &&
	       a->has_folder == b->has_folder && a->tree == b->tree && a->format == b->format &&
	       strcmp(a->id, b->id) == 0 &&
	       (a->key == b->key || (a->key && b->key && strcmp(a->key, b->key) == 0));
}

struct node *nodes_acquire(struct node_table *t, const struct node *want)
{
	struct node *n, **pp;
	char *tpath;
	size_t h;

	if (want->tpath) {
		tpath = strdup(want->tpath);
		if (!tpath)
			return NULL;
	} else if (want->key) {
		size_t il = strlen(want->id), kl = strlen(want->key);

		tpath = malloc(il + kl + 2);
		if (!tpath)
			return NULL;
		memcpy(tpath, want->id, il);
		tpath[il] = '/';
		memcpy(tpath + il + 1, want->key, kl + 1);
	} else {
		tpath = strdup(want->id);
		if (!tpath)
			return NULL;
	}
	if (tpath[0] == '\0') {
		free(tpath);
		return &t->root; /* the root is never looked up by name */
	}

	pthread_mutex_lock(&t->lock);
	h = hash_str(tpath) & (t->nbuckets - 1);
	for (pp = &t->buckets[h]; *pp; pp = &(*pp)->hnext) {
		if (strcmp((*pp)->tpath, tpath) != 0)
			continue;
		if (same(*pp, want)) {
			n = *pp;
			n->nlookup++;
			pthread_mutex_unlock(&t->lock);
			free(tpath);
			return n;
		}
		/* The path changed kind (a file became a directory): the old node
		 * leaves the table and lives on until the kernel forgets it. */
		n = *pp;
		*pp = n->hnext;
		/* Kept on the detached list until forgotten, or freed with the table. */
		n->hnext = t->detached;
		t->detached = n;
		__atomic_store_n(&n->detached, true, __ATOMIC_RELEASE);
		t->count--;
		break;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->id = strdup(want->id)) || (want->key && !(n->key = strdup(want->key)))) {
		pthread_mutex_unlock(&t->lock);
		if (n) {
			n->tpath = tpath;
			node_free(n);
		} else {
			free(tpath);
		}
		return NULL;
	}
	n->type = want->type;
	n->has_secret = want->has_secret;
	n->has_folder = want->has_folder;
	n->tree = want->tree;
	n->format = want->format;
	n->tpath = tpath;
	n->generation = t->next_generation++;
	n->nlookup = 1;
	n->hnext = t->buckets[h];
	t->buckets[h] = n;
	if (++t->count > t->nbuckets)
		grow(t);
	pthread_mutex_unlock(&t->lock);
	return n;
}

int nodes_known(struct node_table *t, const char *tpath, struct node *ret)
{
	struct node *n;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	for (n = t->buckets[hash_str(tpath) & (t->nbuckets - 1)]; n; n = n->hnext) {
		if (strcmp(n->tpath, tpath) != 0)
			continue;
		*ret = (struct node){ .type = n->type,
				      .has_secret = n->has_secret,
				      .has_folder = n->has_folder,
				      .tree = n->tree,
				      .format = n->format,
				      .id = strdup(n->id),
				      .key = n->key ? strdup(n->key) : NULL };
		r = 0;
		if (!ret->id || (n->key && !ret->key)) {
			free(ret->id);
			free(ret->key);
			r = -ENOMEM;
		}
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void nodes_forget(struct node_table *t, struct node *node, uint64_t n)
{
	struct node **pp;

	if (node == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	if (node->nlookup > n) {
		node->nlookup -= n;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (!node->detached) {
		size_t h = hash_str(node->tpath) & (t->nbuckets - 1);

		for (pp = &t->buckets[h]; *pp; pp = &(*pp)->hnext) {
			if (*pp == node) {
				*pp = node->hnext;
				t->count--;
				break;
			}
		}
	} else {
		for (pp = &t->detached; *pp; pp = &(*pp)->hnext) {
			if (*pp == node) {
				*pp = node->hnext;
				break;
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
	node_free(node);
}
