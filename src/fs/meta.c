/*
 * meta.c - the meta directory's tree: its fixed directories, the view
 * subtree's mapping onto store paths, and how the policy judges its paths
 * (meta.h).  The FUSE ops in fs.c call in here; nothing here fetches,
 * renders or logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/meta.h"
#include "secretfs/namespace.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

/* The formats a view can be in, in the order view/ lists them. */
static const enum escape_kind view_formats[] = { ESCAPE_ENV, ESCAPE_JSON, ESCAPE_PROPERTIES,
						 ESCAPE_SHELL, ESCAPE_YAML };

#define META_VIEW     "view"
#define META_AT	      "at"
#define META_VERSIONS "versions"

bool meta_name_is_valid(const char *name)
{
	return name && ns_name_is_safe(name, strlen(name));
}

int meta_view_format(const char *name, enum escape_kind *ret)
{
	enum escape_kind k;

	if (escape_from_name(name, &k) < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(view_formats) / sizeof(view_formats[0]); i++)
		if (view_formats[i] == k) {
			*ret = k;
			return 0;
		}
	return -EINVAL;
}

/* @ret's id and tpath, both allocated; -ENOMEM frees what it made. */
static int meta_node(struct node *ret, const char *id, const char *tpath)
{
	ret->id = strdup(id);
	ret->tpath = strdup(tpath);
	if (!ret->id || !ret->tpath) {
		free(ret->id);
		free(ret->tpath);
		return -ENOMEM;
	}
	return 0;
}

int meta_root(const char *meta_name, struct node *ret)
{
	*ret = (struct node){ .type = NODE_DIR, .tree = NODE_META };
	return meta_node(ret, "", meta_name);
}

int meta_resolve(const struct node *parent, const char *name, struct node *ret)
{
	_cleanup_free_ char *tpath = ns_join(parent->tpath, name);
	enum escape_kind k;

	if (!tpath)
		return -ENOMEM;
	if (parent->id[0] == '\0' && strcmp(name, META_VIEW) == 0) {
		*ret = (struct node){ .type = NODE_DIR, .tree = NODE_META };
		return meta_node(ret, META_VIEW, tpath);
	}
	if (parent->id[0] == '\0' && strcmp(name, META_AT) == 0) {
		*ret = (struct node){ .type = NODE_DIR, .tree = NODE_META };
		return meta_node(ret, META_AT, tpath);
	}
	if (parent->id[0] == '\0' && strcmp(name, META_VERSIONS) == 0) {
		/* versions/: the store's root folder, each secret a list of its versions */
		*ret = (struct node){ .type = NODE_DIR, .tree = NODE_VERSIONS, .has_folder = true };
		return meta_node(ret, "", tpath);
	}
	if (strcmp(parent->id, META_AT) == 0) {
		struct selector sel;

		if (selector_parse(name, &sel) < 0)
			return -ENOENT;
		/* at/SELECTOR: the store's root folder, its values of that version */
		*ret = (struct node){ .type = NODE_DIR, .tree = NODE_AT, .has_folder = true };
		return meta_node(ret, "", tpath);
	}
	if (strcmp(parent->id, META_VIEW) == 0 && meta_view_format(name, &k) == 0) {
		/* view/FMT: the store's root folder, seen in one format */
		*ret = (struct node){ .type = NODE_DIR,
				      .tree = NODE_VIEW,
				      .format = (unsigned char)k,
				      .has_folder = true };
		return meta_node(ret, "", tpath);
	}
	return -ENOENT;
}

int meta_view_node(const struct node *parent, struct node *store, const char *name,
		   struct node *ret)
{
	char *tpath;

	if (store->key)
		return -ENOENT; /* a key of an object (its id is borrowed): no view */
	if (store->type != NODE_DIR) {
		free(store->id);
		return -ENOENT; /* a plain secret: no view */
	}
	tpath = ns_join(parent->tpath, name);
	if (!tpath) {
		free(store->id);
		return -ENOMEM;
	}
	*ret = (struct node){ .type = store->has_secret ? NODE_FILE : NODE_DIR,
			      .tree = NODE_VIEW,
			      .format = parent->format,
			      .has_folder = !store->has_secret,
			      .id = store->id,
			      .tpath = tpath };
	return 0;
}

int meta_tree_node(const struct node *parent, struct node *store, const char *name,
		   struct node *ret)
{
	char *tpath;

	if (parent->tree == NODE_VERSIONS && store->key)
		return -ENOENT; /* a key has no versions of its own: its object has */
	tpath = ns_join(parent->tpath, name);
	if (!tpath) {
		if (!store->key)
			free(store->id);
		return -ENOMEM;
	}
	*ret = *store;
	ret->tree = parent->tree;
	ret->tpath = tpath;
	if (parent->tree == NODE_VERSIONS && (store->type == NODE_FILE || store->has_secret)) {
		/* a secret, plain or object (even when a folder too), is its list */
		ret->type = NODE_FILE;
		ret->has_secret = ret->has_folder = false;
	}
	return 0;
}

/* @s after its first @n components ("" when it has no more). */
static const char *skip_components(const char *s, unsigned n)
{
	for (; n > 0; n--) {
		const char *slash = strchr(s, '/');

		if (!slash)
			return "";
		s = slash + 1;
	}
	return s;
}

int meta_at_selector(const struct node *n, struct selector *ret)
{
	/* tpath is META/at/SELECTOR[/...], checked by meta_resolve() when it was made */
	const char *sel = skip_components(n->tpath, 2);
	char buf[SELECTOR_ARG_MAX + 8];
	size_t len = strcspn(sel, "/");

	if (n->tree != NODE_AT || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, sel, len);
	buf[len] = '\0';
	return selector_parse(buf, ret);
}

const char *meta_policy_path(const struct node *n)
{
	switch (n->tree) {
	case NODE_META:
		return "";
	case NODE_VIEW:
		return n->id;
	case NODE_AT:
		return skip_components(n->tpath, 3);
	case NODE_VERSIONS:
		return skip_components(n->tpath, 2);
	default:
		return n->tpath;
	}
}

bool meta_policy_dir(const struct node *n)
{
	return n->type == NODE_DIR || n->tree == NODE_VIEW;
}

int meta_listing(const struct node *n, struct secret **ret)
{
	static const char *const root[] = { META_AT "/", META_VERSIONS "/", META_VIEW "/" };
	/* The selectors that need no argument; N, id: and label: are looked up by name. */
	static const char *const at[] = { "current/", "pending/", "previous/" };
	static const char *const views[] = { "env/", "json/", "properties/", "shell/", "yaml/" };

	if (n->id[0] == '\0')
		return ns_listing_from_keys(root, ARRAY_SIZE(root), ret);
	if (strcmp(n->id, META_AT) == 0)
		return ns_listing_from_keys(at, ARRAY_SIZE(at), ret);
	return ns_listing_from_keys(views, sizeof(views) / sizeof(views[0]), ret);
}

bool meta_view_permits(struct access *a, const struct policy *p, const struct caller *c,
		       const char *id, const struct secret *table, char *rule, size_t rulelen,
		       char *denied, size_t deniedlen)
{
	struct secret_entry e;

	snprintf(denied, deniedlen, "%s", id);
	if (!access_permits(a, p, c, id, true, rule, rulelen))
		return false;
	for (size_t i = 0; secret_table_at(table, i, &e); i++) {
		int w = snprintf(denied, deniedlen, "%s/%s", id, e.name);

		/* A path that does not fit cannot be judged: refused. */
		if (w < 0 || (size_t)w >= deniedlen ||
		    !access_permits(a, p, c, denied, false, rule, rulelen))
			return false;
	}
	denied[0] = '\0';
	return true;
}
