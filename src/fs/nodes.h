/*
 * nodes.h - the inodes the kernel knows about (private to src/fs).
 *
 * A node is what a lookup found at a tree path: a directory (a folder, a
 * secret whose value is an object, or both) or a file (a whole secret, or one
 * key of an object secret).  The inode number is the node's address, as in
 * libfuse's passthrough_ll; the kernel's lookup count keeps it alive.
 */
#ifndef SECRETFS_FS_NODES_H
#define SECRETFS_FS_NODES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

enum node_type {
	NODE_DIR,
	NODE_FILE,
};

/*
 * Which tree a node is in: the store's, or the meta directory's (meta.h),
 * whose nodes are not secrets of the store but say something about them.
 */
enum node_tree {
	NODE_STORE = 0, /* a secret, a key or a folder of the store */
	NODE_META,	/* a fixed directory of the meta tree: id "" (its root), "view", "at" */
	NODE_VIEW,	/* below view/FMT/: a folder (DIR) or an object secret's view (FILE) */
	NODE_TEMPLATE,	/* a template (FILE), rendered at open; id is its mount path */
	NODE_AT,	/* at/SELECTOR/ and below: the store's shape, a selected version's values */
	NODE_VERSIONS,	/* versions/ and below: a folder (DIR) or a secret's version list (FILE) */
};

struct node {
	enum node_type type;
	bool has_secret;      /* DIR: the path is also an object secret */
	bool has_folder;      /* DIR: the path is a folder of other secrets */
	char *id;	      /* the secret id (FILE, DIR with a secret) or folder prefix */
	char *key;	      /* FILE inside an object secret: the key; else NULL */
	char *tpath;	      /* tree path, the table's key: id, or id "/" key; never changes */
	unsigned char tree;   /* enum node_tree */
	unsigned char format; /* NODE_VIEW: enum escape_kind */
	uint64_t generation;
	/*
	 * Set (under the table's lock, read atomically) when a lookup found
	 * another kind of node at tpath: the node left the table and answers
	 * ESTALE from then on, so that a descriptor kept from before (O_PATH,
	 * /proc/PID/fd) reaches nothing.  Its tpath and id stay as they were:
	 * a request in flight still decides and fetches by one and the same path.
	 */
	bool detached;
	/* The listing its open directory handles share (fs.c); protected by fs's dirlist_lock. */
	struct dirlist *dirlist;
	uint64_t nlookup;   /* protected by the table's lock */
	struct node *hnext; /* protected by the table's lock */
};

struct node_table {
	pthread_mutex_t lock;
	struct node **buckets; /* protected by lock */
	size_t nbuckets;       /* protected by lock */
	size_t count;	       /* protected by lock */
	struct node
		*detached; /* replaced nodes the kernel still knows, via hnext; protected by lock */
	uint64_t next_generation;
	struct node root;
};

int nodes_init(struct node_table *t);
void nodes_done(struct node_table *t);

static inline struct node *nodes_get(struct node_table *t, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &t->root : (struct node *)(uintptr_t)ino;
}

static inline fuse_ino_t nodes_ino(struct node_table *t, struct node *n)
{
	return n == &t->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

/*
 * Returns the node for @want (type, flags, tree, format, id, key), with one
 * more lookup reference: the existing one when it matches, else a new one
 * that replaces it at that tree path.  The tree path is @want's tpath when
 * set (the meta tree), else made from its id and key.  NULL on ENOMEM.
 */
struct node *nodes_acquire(struct node_table *t, const struct node *want);
/* Whether @n was replaced at its path by a node of another kind. */
static inline bool nodes_detached(const struct node *n)
{
	return __atomic_load_n(&n->detached, __ATOMIC_ACQUIRE);
}

/*
 * What the table knows of @tpath: 0 and @ret's type, flags, and copies of
 * its id and key (the caller frees both), -ENOENT when no node is there, or
 * -ENOMEM.
 */
int nodes_known(struct node_table *t, const char *tpath, struct node *ret);
/* Drops @n lookups of the node; frees it at zero. */
void nodes_forget(struct node_table *t, struct node *node, uint64_t n);

#endif
