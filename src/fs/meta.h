/*
 * meta.h - the meta directory (private to src/fs).
 *
 * A reserved directory at the mount root, ".secretfs" unless -o meta_dir
 * renames it, holds what is not a secret of the store but says something
 * about secrets: view/FMT/PATH, the object secret PATH whole in format
 * FMT; at/SELECTOR/PATH, the version SELECTOR (selector.h) of PATH, in the
 * store's shape; versions/PATH, the JSON list of PATH's versions;
 * each subtree maps its paths back to store paths here, and the policy
 * judges a meta path by the store path it stands for (the path with the
 * meta prefix removed), so one rule set covers both trees.
 */
#ifndef SECRETFS_FS_META_H
#define SECRETFS_FS_META_H

#include <stdbool.h>
#include <stddef.h>

#include "fs/access.h"
#include "fs/nodes.h"
#include "secretfs/escape.h"
#include "secretfs/secret.h"
#include "secretfs/selector.h"

/* Whether @name can name the meta directory: a safe path component. */
bool meta_name_is_valid(const char *name);

/*
 * What @name is in the meta directory node @parent (NODE_META): @ret gets a
 * new node description whose id and tpath the caller frees.  -ENOENT or
 * -ENOMEM.
 */
int meta_resolve(const struct node *parent, const char *name, struct node *ret);

/* The meta directory itself, found at the root under @meta_name; id and tpath as above. */
int meta_root(const char *meta_name, struct node *ret);

/*
 * A view directory @parent (NODE_VIEW, a DIR) found @store at its @name in
 * the store (what resolve() gives for the store folder parent->id): @ret is
 * the view node there, taking over store->id (unless it is a key's, which is
 * borrowed), and a tpath to free.  An
 * object secret is a view file (even when it is a folder too: the view
 * wins); a folder is a view directory; a plain secret has no view (-ENOENT,
 * store->id freed).
 */
int meta_view_node(const struct node *parent, struct node *store, const char *name,
		   struct node *ret);

/*
 * An at/ or versions/ directory @parent found @store at its @name in the
 * store (what resolve() gives for the store folder parent->id): @ret is the
 * node there in @parent's tree, taking over store->id (a key's is
 * borrowed), and a tpath to free.  In versions/ a secret (plain or object)
 * is a FILE, its list; a key has none (-ENOENT).
 */
int meta_tree_node(const struct node *parent, struct node *store, const char *name,
		   struct node *ret);

/* The selector of a node in at/, from its tree path; -EINVAL for another node. */
int meta_at_selector(const struct node *n, struct selector *ret);

/*
 * The store path the policy judges for @n: the tree path of a store node,
 * the store path of a view ("" for view/FMT itself), of an at/ or versions/
 * node (its tree path without META/at/SELECTOR/ or META/versions/), the
 * root ("") for the fixed meta directories.  Whether it is judged as a directory: see
 * meta_policy_dir().
 */
const char *meta_policy_path(const struct node *n);
/* A view file is judged as the object's directory (plus each key: meta_view_permits). */
bool meta_policy_dir(const struct node *n);

/*
 * The fixed listing of the NODE_META directory @n: a listing table as
 * ns_listing_from_keys() builds.
 */
int meta_listing(const struct node *n, struct secret **ret);

/*
 * Whether @c may read the view of the object secret @table at store path
 * @id: the directory decision for @id (what opendir there would answer) and
 * the file decision for every key @id/KEY.  On refusal @rule gets the
 * deciding rule and @denied the refused path (@id, or @id/KEY).  Counts
 * nothing.
 */
bool meta_view_permits(struct access *a, const struct policy *p, const struct caller *c,
		       const char *id, const struct secret *table, char *rule, size_t rulelen,
		       char *denied, size_t deniedlen);

/* The view formats, in listing order; -EINVAL for other names. */
int meta_view_format(const char *name, enum escape_kind *ret);

#endif
