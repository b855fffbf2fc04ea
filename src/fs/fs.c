/*
 * fs.c - the fuse_lowlevel_ops table.
 *
 * Each op decodes the request, asks the source (and so the cache) and replies
 * exactly once.  Secret files are opened with direct_io and without
 * keep_cache, so their bytes never reach the page cache; the handle holds a
 * reference to the value seen at open, so a rotation in the middle of a read
 * sequence never mixes two versions.  Every write-type request gets EROFS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fs/access.h"
#include "fs/handles.h"
#include "fs/meta.h"
#include "fs/nodes.h"
#include "secretfs/escape.h"
#include "secretfs/fs.h"
#include "secretfs/log.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

/* libfuse's marker for "no inode number" in readdir entries. */
#define UNKNOWN_INO 0xffffffffu

struct fs {
	struct source *src;
	double attr_timeout; /* seconds */
	bool hide_denied_size;
	uid_t owner;
	gid_t group;
	time_t mount_time;
	struct node_table nodes;
	struct fuse_session *se;
	bool parallel_dirops; /* told to the kernel at INIT (see fs_session_io) */
	struct access access;
	struct handles handles;
	char *meta_name;	/* the meta directory at the root (meta.h); immutable */
	bool show_meta;		/* the root lists it */
	unsigned view_flags;	/* view_render()'s flags: VIEW_UPPER */
	bool meta_clash_logged; /* a stored name the meta directory hides was logged; atomic */
	bool meta_looked_up;	/* the first lookup of the meta directory checked for one; atomic */
	pthread_mutex_t dirlist_lock;	/* every node's dirlist pointer and each dirlist's refs */
	struct template_set *templates; /* protected by access.lock; NULL: none */
	size_t max_render;		/* bytes of a rendered template at most */
	/*
	 * Every open file and directory handle: a session that ends (SIGTERM,
	 * unmount) sends no release for files still open, or whose release is
	 * still in flight, so fs_free() drops what is left, values included.
	 */
	pthread_mutex_t open_lock;
	struct open_link *open_list; /* protected by open_lock */
};

struct open_link {
	struct open_link *prev, *next; /* protected by fs->open_lock */
	bool dir;		       /* a struct dirhandle, else a struct handle */
};

static void open_track(struct fs *fs, struct open_link *l, bool dir)
{
	l->dir = dir;
	l->prev = NULL;
	pthread_mutex_lock(&fs->open_lock);
	l->next = fs->open_list;
	if (l->next)
		l->next->prev = l;
	fs->open_list = l;
	pthread_mutex_unlock(&fs->open_lock);
}

static void open_untrack(struct fs *fs, struct open_link *l)
{
	pthread_mutex_lock(&fs->open_lock);
	if (l->prev)
		l->prev->next = l->next;
	else
		fs->open_list = l->next;
	if (l->next)
		l->next->prev = l->prev;
	pthread_mutex_unlock(&fs->open_lock);
}

/* An open secret file: a reference to the value seen at open (for a view: its rendering). */
struct handle {
	struct open_link link; /* first: fs_free() finds the handle from it */
	uid_t uid;	       /* whose handle count it is in */
	struct secret *value;
	const unsigned char *data;
	size_t len;
};

int fs_new(const struct fs_params *p, struct fs **ret)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	if (nodes_init(&fs->nodes) < 0) {
		free(fs);
		return -ENOMEM;
	}
	fs->meta_name = strdup(p->meta_dir ? p->meta_dir : SECRETFS_META_DIR);
	if (!fs->meta_name) {
		nodes_done(&fs->nodes);
		free(fs);
		return -ENOMEM;
	}
	fs->show_meta = p->show_meta;
	fs->view_flags = p->view_env_upper ? VIEW_UPPER : 0;
	fs->src = p->source;
	fs->attr_timeout = (double)p->attr_timeout_usec / USEC_PER_SEC;
	fs->hide_denied_size = p->hide_denied_size;
	fs->access.lookup_audit_usec = p->lookup_audit_usec;
	fs->owner = p->owner;
	fs->group = p->group;
	fs->mount_time = time(NULL);
	pthread_mutex_init(&fs->access.lock, NULL);
	pthread_mutex_init(&fs->dirlist_lock, NULL);
	pthread_mutex_init(&fs->open_lock, NULL);
	handles_init(&fs->handles, p->max_handles_per_uid);
	fs->access.policy = p->policy;
	fs->access.audit = p->audit;
	fs->access.source = p->source;
	fs->access.owner = p->owner;
	fs->access.show_denied = p->show_denied;
	fs->templates = p->templates;
	fs->max_render = p->max_render;
	*ret = fs;
	return 0;
}

struct dirhandle;
static void handle_free(struct fs *fs, struct handle *h);
static void dirhandle_free(struct fs *fs, struct dirhandle *h);

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	/* Handles the kernel never released; their dirlists point at nodes, so first. */
	while (fs->open_list) {
		struct open_link *l = fs->open_list;

		if (l->dir)
			dirhandle_free(fs, (struct dirhandle *)l);
		else
			handle_free(fs, (struct handle *)l);
	}
	pthread_mutex_destroy(&fs->open_lock);
	nodes_done(&fs->nodes);
	if (fs->access.policy)
		policy_unref(fs->access.policy);
	pthread_mutex_destroy(&fs->access.lock);
	template_set_unref(fs->templates);
	free(fs->access.seen);
	pthread_mutex_destroy(&fs->dirlist_lock);
	handles_done(&fs->handles);
	free(fs->meta_name);
	free(fs);
}

void fs_set_policy(struct fs *fs, struct policy *p)
{
	access_set_policy(&fs->access, p);
}

void fs_set_templates(struct fs *fs, struct template_set *t)
{
	struct template_set *old;

	pthread_mutex_lock(&fs->access.lock);
	old = fs->templates;
	fs->templates = t;
	pthread_mutex_unlock(&fs->access.lock);
	template_set_unref(old);
}

/* The templates in service, with a reference (template_set_unref), or NULL. */
static struct template_set *fs_templates(struct fs *fs)
{
	struct template_set *t;

	pthread_mutex_lock(&fs->access.lock);
	t = fs->templates ? template_set_ref(fs->templates) : NULL;
	pthread_mutex_unlock(&fs->access.lock);
	return t;
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

void fs_get_stats(struct fs *fs, struct fs_stats *ret)
{
	ret->access_denied = __atomic_load_n(&fs->access.denied, __ATOMIC_RELAXED);
	ret->handles_open = __atomic_load_n(&fs->handles.open, __ATOMIC_RELAXED);
	ret->handles_refused = __atomic_load_n(&fs->handles.refused, __ATOMIC_RELAXED);
}

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/*
 * Logs a backend failure; not-found is normal and quiet.  At most once a
 * window (LOG_LIMIT_WINDOW_USEC) per path and errno: every reader of a
 * failing path would repeat it.
 */
static void log_failure(struct fs *fs, const char *what, const char *path, int r,
			const char *reason)
{
	unsigned more = 0;
	char tail[48] = "";

	if (r == -ENOENT) {
		log_debug("%s '%s': %s", what, path, reason);
		return;
	}
	if (!log_limit(what, path, r, now_usec(), &more))
		return;
	if (more)
		snprintf(tail, sizeof(tail), " (%u similar suppressed)", more);
	log_warn("%s '%s': %s (%s)%s", what, path, reason[0] ? reason : "failed", strerror(-r),
		 tail);
}

/*
 * One more handle for @uid, or -EMFILE past max_handles_per_uid, said once
 * a window per uid (log_limit): the flood is the point.
 */
static int take_handle(struct fs *fs, uid_t uid)
{
	char key[24];
	unsigned more = 0;
	int r = handles_take(&fs->handles, uid);

	if (r != -EMFILE)
		return r;
	snprintf(key, sizeof(key), "uid %u", (unsigned)uid);
	if (log_limit("handles", key, -EMFILE, now_usec(), &more))
		log_warn("uid %u holds %zu open files and directories, refusing more "
			 "(max_handles_per_uid; %u similar suppressed)",
			 (unsigned)uid, fs->handles.max, more);
	return r;
}

/*
 * The object secret a view file shows, in @res (kind SECRET_TABLE), or an
 * error: -ENOENT when it is gone or no longer an object.
 */
static int view_fetch(struct fs *fs, struct node *n, uint64_t deadline, struct cache_result *res)
{
	char reason[BACKEND_REASON_MAX] = "";
	int r;

	r = source_value_until(fs->src, n->id, deadline, res, reason, sizeof(reason));
	if (r < 0) {
		log_failure(fs, "fetch", n->id, r, reason);
		return r;
	}
	if (res->value->kind != SECRET_TABLE) {
		secret_unref(res->value);
		res->value = NULL;
		return -ENOENT;
	}
	return 0;
}

/*
 * The view of @table in @n's format, rendered into a locked buffer of its
 * own that @ret holds.  A value or key the format cannot hold is EIO, logged
 * with the reason (which names the key, never the value).
 */
static int view_value(struct fs *fs, struct node *n, const struct secret *table, bool quiet,
		      struct handle *ret)
{
	char reason[256] = "";
	struct lbuf out = { 0 };
	struct secret *s;
	int r;

	r = view_render((enum escape_kind)n->format, table, fs->view_flags, &out, reason,
			sizeof(reason));
	if (r >= 0)
		r = lbuf_to_secret(&out, &s);
	lbuf_free(&out);
	if (r == -EINVAL) {
		if (!quiet)
			log_failure(fs, "view", n->tpath, -EIO, reason);
		return -EIO;
	}
	if (r < 0)
		return r;
	ret->value = s;
	ret->data = s->data;
	ret->len = s->len;
	return 0;
}

/*
 * A versions/ file: the JSON list of the secret's versions (ids, labels,
 * dates and states, never a value), one per line, in a buffer of its own.
 * -ENOENT where the store cannot list versions (said at debug level).
 */
static int versions_value(struct fs *fs, struct node *n, struct handle *ret)
{
	char reason[BACKEND_REASON_MAX] = "";
	json_t *list = NULL;
	struct secret *s;
	size_t len;
	int r;

	if (n->type != NODE_FILE)
		return -EISDIR;
	r = source_versions(fs->src, n->id, &list, reason, sizeof(reason));
	if (r == -ENOENT)
		log_debug("%s: %s", n->tpath, reason[0] ? reason : "no versions");
	else if (r < 0)
		log_failure(fs, "versions", n->id, r, reason);
	if (r < 0)
		return r;
	/* Names, dates and ids, not values: the ordinary heap keeps locked memory for values. */
	len = json_dumpb(list, NULL, 0, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	s = len ? secret_new_unlocked(len + 1) : NULL;
	if (s && json_dumpb(list, (char *)s->data, len, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ==
			 len) {
		s->data[len] = '\n';
	} else {
		secret_unref(s);
		s = NULL;
	}
	json_decref(list);
	if (!s)
		return -ENOMEM;
	ret->value = s;
	ret->data = s->data;
	ret->len = s->len;
	return 0;
}

/*
 * The value a FILE node shows: a reference and the byte range within it.
 * @res receives the cache's answer (state, version) for the audit record.
 */
static int node_value(struct fs *fs, struct node *n, uint64_t deadline, struct handle *ret,
		      struct cache_result *res_out)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result local, *resp = res_out ? res_out : &local;
	struct cache_result res;
	struct secret_entry e;
	int r;

	if (n->tree == NODE_VIEW) {
		r = view_fetch(fs, n, deadline, resp);
		if (r < 0)
			return r;
		/* stat: a view that cannot be rendered shows size 0; its open says why */
		r = view_value(fs, n, resp->value, true, ret);
		secret_unref(resp->value);
		resp->value = NULL;
		return r == -EIO ? 0 : r;
	}
	if (n->tree == NODE_VERSIONS)
		return versions_value(fs, n, ret);
	if (n->tree == NODE_AT) {
		struct selector sel;

		r = meta_at_selector(n, &sel);
		if (r >= 0)
			r = source_value_at(fs->src, n->id, &sel, deadline, resp, reason,
					    sizeof(reason));
		if (r == -ENOENT)
			/* Not a failure: a version that is not there, or a selector the store cannot
			 * serve; said for whoever debugs. */
			log_debug("%s: %s", n->tpath, reason[0] ? reason : "no such version");
		else if (r < 0)
			log_failure(fs, "fetch", n->tpath, r, reason);
		if (r < 0)
			return r;
	} else {
		r = source_value_until(fs->src, n->id, deadline, resp, reason, sizeof(reason));
		if (r < 0) {
			log_failure(fs, "fetch", n->id, r, reason);
			return r;
		}
	}
	res = *resp;
	if (!n->key) {
		if (res.value->kind != SECRET_BLOB) {
			secret_unref(res.value);
			return -EISDIR; /* it became an object since the lookup */
		}
		ret->data = res.value->data;
		ret->len = res.value->len;
	} else {
		if (res.value->kind != SECRET_TABLE || !secret_table_find(res.value, n->key, &e)) {
			secret_unref(res.value);
			return -ENOENT;
		}
		ret->data = e.value;
		ret->len = e.valuelen;
	}
	ret->value = res.value;
	return 0;
}

/*
 * What stat shows: the policy's presented owner, group and mode for the path
 * when a rule sets them, whoever asks (the kernel caches this per inode).
 */
static void fill_attr(struct fs *fs, struct node *n, size_t size, struct stat *st)
{
	struct policy *p = access_policy(&fs->access);
	struct policy_attrs pa = { 0 };
	mode_t perm = n->type == NODE_DIR ? 0500 : 0400;

	if (p) {
		policy_attrs(p, meta_policy_path(n), &pa);
		policy_unref(p);
	}
	memset(st, 0, sizeof(*st));
	st->st_ino = nodes_ino(&fs->nodes, n);
	st->st_uid = pa.has_owner ? pa.owner : fs->owner;
	st->st_gid = pa.has_group ? pa.group : fs->group;
	st->st_atime = st->st_mtime = st->st_ctime = fs->mount_time;
	/* A rule's mode is for files; a directory keeps x wherever it has r. */
	if (pa.has_mode)
		perm = n->type == NODE_DIR ? pa.mode | ((pa.mode & 0444) >> 2) : pa.mode;
	if (n->type == NODE_DIR) {
		st->st_mode = S_IFDIR | perm;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | perm;
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blksize = 4096;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
	}
}

/*
 * The stat of a node; a FILE's size is the true length of its value, or 0
 * when @hide_size (nothing is fetched then).
 */
static size_t template_size(struct fs *fs, struct node *n, uint64_t deadline);

static int node_attr(struct fs *fs, struct node *n, bool hide_size, uint64_t deadline,
		     struct stat *st)
{
	struct handle h = { 0 };
	int r;

	if (n->tree == NODE_TEMPLATE) {
		fill_attr(fs, n, hide_size ? 0 : template_size(fs, n, deadline), st);
		return 0;
	}
	if (n->type == NODE_FILE && !hide_size) {
		r = node_value(fs, n, deadline, &h, NULL);
		if (r < 0)
			return r;
	}
	fill_attr(fs, n, h.len, st);
	secret_unref(h.value);
	return 0;
}

/*
 * What @name is inside the directory @parent, per docs/design.md section 2: a key of
 * the parent's object secret wins; then the parent folder's listing decides
 * between a file, an object secret (a directory) and a folder.
 */
static int resolve_store(struct fs *fs, struct node *parent, const char *name, uint64_t deadline,
			 struct node *ret)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct secret_entry e;
	unsigned char flags;
	bool unlisted = false; /* the folder could not be listed: guess from a fetch */
	_cleanup_free_ char *path = NULL;
	int r;

	if (parent->type != NODE_DIR)
		return -ENOTDIR;
	if (!ns_name_is_safe(name, strlen(name)))
		return -ENOENT;
	if (parent->has_secret) {
		r = source_value_until(fs->src, parent->id, deadline, &res, reason, sizeof(reason));
		if (r >= 0) {
			bool found = res.value->kind == SECRET_TABLE &&
				     secret_table_find(res.value, name, &e);

			secret_unref(res.value);
			if (found) {
				*ret = (struct node){ .type = NODE_FILE,
						      .id = parent->id,
						      .key = (char *)name };
				return 0;
			}
		} else if (r != -ENOENT) {
			log_failure(fs, "fetch", parent->id, r, reason);
			return r;
		}
	}
	if (!parent->has_folder)
		return -ENOENT;

	path = ns_join(parent->id, name);
	if (!path)
		return -ENOMEM;
	r = source_listing_until(fs->src, parent->id, deadline, &res, reason, sizeof(reason));
	if (r == -ENOSYS || r == -EACCES) {
		/*
		 * A store that cannot list, or a token that may read but not list
		 * (common in Vault policies): a name is a secret if a fetch finds
		 * it, else a folder whose contents we cannot see.  In a store
		 * without folders (Doppler) the fetch's error is the answer.
		 */
		bool no_folders = source_no_folders(fs->src, parent->id);

		flags = BACKEND_LIST_SECRET | (no_folders ? 0 : BACKEND_LIST_FOLDER);
		unlisted = !no_folders;
	} else if (r < 0) {
		if (r != -ENOENT)
			log_failure(fs, "list", parent->id[0] ? parent->id : "/", r, reason);
		return r;
	} else {
		bool found = secret_table_find(res.value, name, &e);

		flags = found ? e.value[0] : 0;
		secret_unref(res.value);
		if (!found)
			return -ENOENT;
	}

	*ret = (struct node){ .type = NODE_DIR, .has_folder = !!(flags & BACKEND_LIST_FOLDER) };
	if (flags & BACKEND_LIST_SECRET) {
		r = source_value_until(fs->src, path, deadline, &res, reason, sizeof(reason));
		if (r >= 0) {
			if (res.value->kind == SECRET_TABLE)
				ret->has_secret = true;
			else if (!ret->has_folder || unlisted)
				*ret = (struct node){ .type = NODE_FILE };
			else
				log_warn("'%s' is both a secret and a folder; showing the folder",
					 path);
			secret_unref(res.value);
		} else if (unlisted && (r == -ENOENT || r == -EACCES)) {
			/* Not a secret we may read: a folder, as far as we can tell. */
		} else if (r != -ENOENT || !ret->has_folder) {
			if (r != -ENOENT)
				log_failure(fs, "fetch", path, r, reason);
			return r;
		}
	}
	ret->id = TAKE_PTR(path);
	return 0;
}

/*
 * resolve_store(), or, when the store fails transiently, the node already
 * at that path: its shape is served stale like a value.  This matters where
 * a folder is known only from answers the cache may have let go (a token
 * that may read but not list: a folder is "a name no fetch finds"), so that
 * a reader whose path was walked before an outage still walks it during one.
 */
static int resolve(struct fs *fs, struct node *parent, const char *name, uint64_t deadline,
		   struct node *ret)
{
	_cleanup_free_ char *tpath = NULL;
	struct node known;
	int r;

	r = resolve_store(fs, parent, name, deadline, ret);
	if (r >= 0 || !backend_error_is_transient(r) || parent->type != NODE_DIR)
		return r;
	tpath = ns_join(parent->tpath, name);
	if (!tpath || nodes_known(&fs->nodes, tpath, &known) < 0)
		return r;
	if (known.key) {
		/* A key node borrows its parent's id and its name, as resolve_store's do. */
		free(known.id);
		free(known.key);
		known.id = parent->id;
		known.key = (char *)name;
	}
	*ret = known;
	return 0;
}

/* ---- templates (issue 11): rendered at open, for the reader at hand ---- */

/*
 * Where the store path @path leads, walked from the root as lookups would
 * (so "a/b/c" is the secret "a/b/c" or key "c" of the object "a/b"), but
 * through the store only: a template never reads another template.
 * *ret_id and *ret_key (NULL for a whole secret) are the caller's to free.
 */
static int walk(struct fs *fs, const char *path, uint64_t deadline, char **ret_id, char **ret_key,
		enum node_type *ret_type)
{
	struct node cur = {
		.type = NODE_DIR, .has_folder = true, .id = (char *)"", .tpath = (char *)""
	};
	_cleanup_free_ char *buf = strdup(path);
	char *owned_id = NULL, *owned_key = NULL, *owned_tpath = NULL, *comp, *slash;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (comp = buf;; comp = slash + 1) {
		struct node next;
		bool keynode;
		char *tpath;

		slash = strchr(comp, '/');
		if (slash)
			*slash = '\0';
		if (cur.type != NODE_DIR) {
			r = -ENOENT;
			break;
		}
		r = resolve(fs, &cur, comp, deadline, &next);
		if (r < 0)
			break;
		tpath = ns_join(cur.tpath, comp);
		keynode = next.key != NULL;
		if (keynode) {
			/* A key node borrows its parent's id and its name: copies here. */
			next.id = strdup(cur.id);
			next.key = strdup(comp);
		}
		if (!tpath || !next.id || (keynode && !next.key)) {
			free(tpath);
			free(next.id);
			free(next.key);
			r = -ENOMEM;
			break;
		}
		free(owned_id);
		free(owned_key);
		free(owned_tpath);
		cur = next;
		owned_id = cur.id;
		owned_key = cur.key;
		owned_tpath = cur.tpath = tpath;
		if (!slash)
			break;
	}
	free(owned_tpath);
	if (r < 0) {
		free(owned_id);
		free(owned_key);
		return r;
	}
	*ret_id = owned_id;
	*ret_key = owned_key;
	*ret_type = cur.type;
	return 0;
}

/* One render's values: each secret is read once, so keys of one object agree. */
struct render_fetch {
	char *id;
	struct cache_result res;
};

struct render_state {
	struct render_fetch *f; /* one per reference at most */
	size_t nf;
};

static int render_fetch(struct fs *fs, struct render_state *st, const char *id, uint64_t deadline,
			bool quiet, struct cache_result **ret)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct render_fetch *f;
	int r;

	for (size_t i = 0; i < st->nf; i++)
		if (strcmp(st->f[i].id, id) == 0) {
			*ret = &st->f[i].res;
			return 0;
		}
	f = &st->f[st->nf];
	*f = (struct render_fetch){ .id = strdup(id) };
	if (!f->id)
		return -ENOMEM;
	r = source_value_until(fs->src, id, deadline, &f->res, reason, sizeof(reason));
	if (r < 0) {
		if (!quiet)
			log_failure(fs, "fetch", id, r, reason);
		free(f->id);
		return r;
	}
	st->nf++;
	*ret = &f->res;
	return 0;
}

static void render_state_done(struct render_state *st)
{
	for (size_t i = 0; i < st->nf; i++) {
		free(st->f[i].id);
		secret_unref(st->f[i].res.value);
	}
	free(st->f);
}

/* Logs a render's failure once a window per template and errno; never a value. */
static void log_render(const struct template_entry *e, int r, const char *reason,
		       const char *format)
{
	unsigned more = 0;

	if (!log_limit("template", e->name, r, now_usec(), &more))
		return;
	log_warn("template %s %s%s%s%s", e->name, reason, format ? " (format " : "",
		 format ? format : "", format ? ")" : "");
}

/*
 * The record of reference @ref of a render for @c, with the version it used
 * (@res).  A plain reference was judged before its fetch (@rule holds the
 * deciding rule); an expansion is judged here, on every key of the object
 * it read (@table), or on its path when there was no object.  Nothing is
 * judged with access = template.  Returns 0 or -EACCES.
 */
static int render_check(struct fs *fs, const struct policy *p, const struct caller *c,
			const struct template_entry *e, const struct template_ref *ref,
			const struct secret *table, const struct cache_result *res, bool audit,
			char *rule, size_t rulelen)
{
	const char *path = ref->path;
	char kpath[PATH_MAX];
	struct secret_entry k;
	int r = 0;

	if (e->access_whole || !ref->expand) {
		/* Granted with the file, or judged already: the record says what it read. */
	} else if (!table) {
		r = access_check(&fs->access, p, c, path, false, rule, rulelen);
	} else {
		for (size_t i = 0; r >= 0 && secret_table_at(table, i, &k); i++) {
			if (snprintf(kpath, sizeof(kpath), "%s/%s", path, k.name) >=
			    (int)sizeof(kpath))
				r = -ENAMETOOLONG;
			else
				r = access_check(&fs->access, p, c, kpath, false, rule, rulelen);
			if (r < 0)
				path = kpath; /* the record names the key refused */
		}
	}
	if (audit)
		access_audit_template(&fs->access, c, "render", path, r >= 0, r < 0 ? r : 0, rule,
				      res, e->name);
	return r;
}

/*
 * Renders @e for the reader @c (judged by @p), or with no checks when @c is
 * NULL.  @quiet: nothing is logged or audited (a stat that only needs the
 * size and whether the reader may have it).
 */
static int template_open(struct fs *fs, const struct template_entry *e, const struct policy *p,
			 const struct caller *c, uint64_t deadline, bool quiet, struct secret **ret)
{
	const struct template *t = e->t;
	struct render_state st = { .f = calloc(t->nrefs + 1, sizeof(*st.f)) };
	struct template_value *vals = calloc(t->nrefs + 1, sizeof(*vals));
	char reason[TEMPLATE_ERR_MAX] = "";
	int r = 0, bad = -1;

	if (!st.f || !vals) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; r >= 0 && i < t->nrefs; i++) {
		const struct template_ref *ref = &t->refs[i];
		_cleanup_free_ char *id = NULL, *key = NULL;
		struct cache_result *res = NULL;
		char rule[ACCESS_RULE_MAX] = "";
		struct secret_entry k;
		enum node_type type;

		/* A plain reference is judged by its path before anything is fetched for it. */
		if (c && !e->access_whole && !ref->expand) {
			r = access_check(&fs->access, p, c, ref->path, false, rule, sizeof(rule));
			if (r < 0) {
				if (!quiet)
					access_audit_template(&fs->access, c, "render", ref->path,
							      false, r, rule, NULL, e->name);
				break;
			}
		}
		r = walk(fs, ref->path, deadline, &id, &key, &type);
		if (r >= 0)
			r = render_fetch(fs, &st, id, deadline, quiet, &res);
		if (r == -ENOENT) {
			vals[i].missing = true;
			r = 0;
		} else if (r >= 0 && key) {
			if (res->value->kind == SECRET_TABLE &&
			    secret_table_find(res->value, key, &k)) {
				vals[i].data = k.value;
				vals[i].len = k.valuelen;
			} else {
				vals[i].missing = true;
			}
		} else if (r >= 0 && res->value->kind == SECRET_TABLE) {
			if (ref->expand) {
				vals[i].table = res->value;
			} else {
				r = -EISDIR;
				bad = (int)i;
				snprintf(reason, sizeof(reason),
					 "line %u: %s: an object secret, use {{* %s }} or a key",
					 ref->line, ref->path, ref->path);
			}
		} else if (r >= 0 && ref->expand) {
			r = -ENOTDIR;
			bad = (int)i;
			snprintf(reason, sizeof(reason), "line %u: %s: not an object secret",
				 ref->line, ref->path);
		} else if (r >= 0) {
			vals[i].data = res->value->data;
			vals[i].len = res->value->len;
		}
		/* A missing reference is judged too: the policy decides by path. */
		if (c && (r >= 0 || bad >= 0)) {
			int a = render_check(fs, p, c, e, ref, vals[i].table,
					     vals[i].missing ? NULL : res, !quiet, rule, sizeof(rule));

			if (a < 0)
				r = a;
		}
		if (r < 0 && r != -EACCES && bad < 0 && !quiet)
			snprintf(reason, sizeof(reason), "line %u: %s: %s", ref->line, ref->path,
				 strerror(-r));
	}
	if (r >= 0) {
		r = template_render(t, e->format, fs->view_flags, vals, e->missing_empty,
				    fs->max_render, ret, &bad, reason, sizeof(reason));
		if (r < 0 && !quiet)
			log_render(e, r, reason,
				   r == -EINVAL && bad >= 0
					   ? escape_name(t->refs[bad].has_escaper
								 ? t->refs[bad].escaper
								 : e->format)
					   : NULL);
	} else if (r != -EACCES && !quiet) {
		log_render(e, r, reason, NULL);
	}
out:
	render_state_done(&st);
	free(vals);
	/*
	 * What a reader gets: a value the format cannot hold, or a missing one, is
	 * EIO, and so is anything else a reader of one file would not expect (an
	 * ENOSYS answer to open would even tell the kernel open is unsupported).
	 */
	if (r < 0 && r != -EACCES && r != -EAGAIN && r != -ENOMEM && r != -EFBIG)
		r = -EIO;
	return r;
}

/* The size a stat shows for template node @n: its render now, or 0 when that fails. */
static size_t template_size(struct fs *fs, struct node *n, uint64_t deadline)
{
	struct template_set *ts = fs_templates(fs);
	const struct template_entry *e = template_set_find(ts, n->id);
	struct secret *out = NULL;
	size_t len = 0;

	if (e && template_open(fs, e, NULL, NULL, deadline, true, &out) >= 0)
		len = out->len;
	secret_unref(out);
	template_set_unref(ts);
	return len;
}

/*
 * What @name in @parent is, templates first: a template's path wins over the
 * store (a clash is logged once, by the listing), and the directories that
 * lead to a template exist even where the store has nothing.
 */
static int lookup_child(struct fs *fs, struct node *parent, const char *name, uint64_t deadline,
			struct node *ret)
{
	struct template_set *ts = fs_templates(fs);
	_cleanup_free_ char *tpath = NULL;
	int r;

	if (!ts || parent->type != NODE_DIR) {
		template_set_unref(ts);
		return resolve(fs, parent, name, deadline, ret);
	}
	tpath = ns_join(parent->tpath, name);
	if (!tpath) {
		r = -ENOMEM;
	} else if (template_set_find(ts, tpath)) {
		*ret = (struct node){ .type = NODE_FILE,
				      .tree = NODE_TEMPLATE,
				      .id = TAKE_PTR(tpath) };
		r = 0;
	} else {
		r = resolve(fs, parent, name, deadline, ret);
		if ((r == -ENOENT || (r >= 0 && ret->type == NODE_FILE)) &&
		    template_set_has_below(ts, tpath)) {
			if (r >= 0) {
				log_warn("'%s' is a secret and leads to a template; showing the "
					 "template's directory",
					 tpath);
				if (!ret->key)
					free(ret->id);
			}
			*ret = (struct node){ .type = NODE_DIR,
					      .has_folder = true,
					      .id = TAKE_PTR(tpath) };
			r = 0;
		}
	}
	template_set_unref(ts);
	return r;
}

/*
 * Whether @c may read the view file @n: the object's directory, then every
 * key of the object as the cache has it now (meta_view_permits).  Returns
 * 0 with the object in @res (the caller drops res->value), -EACCES with
 * @rule and the refused store path in @denied, or the fetch's error.
 * *@permit is the policy's answer so far (a fetch may fail after a permit).
 */
static int view_check(struct fs *fs, struct node *n, const struct policy *p, const struct caller *c,
		      char *rule, size_t rulelen, char *denied, size_t deniedlen,
		      struct cache_result *res, bool *permit)
{
	int r;

	/* Refused before any fetch when the object's directory is. */
	snprintf(denied, deniedlen, "%s", n->id);
	*permit = access_permits(&fs->access, p, c, n->id, true, rule, rulelen);
	if (!*permit)
		return -EACCES;
	r = view_fetch(fs, n, 0, res);
	if (r < 0)
		return r;
	*permit = meta_view_permits(&fs->access, p, c, n->id, res->value, rule, rulelen, denied,
				    deniedlen);
	if (*permit)
		return 0;
	secret_unref(res->value);
	res->value = NULL;
	return -EACCES;
}

/* Whether reader @c may have template node @n's render (nothing logged or audited). */
static bool template_permits(struct fs *fs, struct node *n, const struct policy *p,
			     const struct caller *c)
{
	struct template_set *ts = fs_templates(fs);
	const struct template_entry *e = template_set_find(ts, n->id);
	struct secret *out = NULL;
	bool permit = true;

	if (e && !e->access_whole)
		permit = template_open(fs, e, p, c, source_deadline(fs->src), true, &out) !=
			 -EACCES;
	secret_unref(out);
	template_set_unref(ts);
	return permit;
}

/*
 * The policy's answer for @c opening @n, which is not a view file: a file in
 * at/ needs a permit that grants its selector's kind (the rule option
 * versions), a file in versions/ one that grants some selector besides
 * current (version ids and dates say how to name the others); anything
 * else is judged at meta_policy_path().  Counts nothing.
 */
static bool node_permits(struct fs *fs, const struct policy *p, const struct caller *c,
			 const struct node *n, char *rule, size_t rulelen)
{
	struct selector sel;

	if (n->type == NODE_FILE && n->tree == NODE_AT) {
		if (meta_at_selector(n, &sel) < 0) {
			rule[0] = '\0';
			return false;
		}
		return access_permits_versions(&fs->access, p, c, meta_policy_path(n),
					       SELECTOR_BIT(sel.kind), rule, rulelen);
	}
	if (n->type == NODE_FILE && n->tree == NODE_VERSIONS)
		return access_permits_versions(&fs->access, p, c, meta_policy_path(n),
					       SELECTOR_ALL & ~SELECTOR_BIT(SELECTOR_CURRENT), rule,
					       rulelen);
	return access_permits(&fs->access, p, c, meta_policy_path(n), meta_policy_dir(n), rule,
			      rulelen);
}

/*
 * A lookup or stat decides too, when an option needs it: whether the policy
 * refuses the caller @n, audited once per uid and path per window (a lookup
 * fetches, and tells existence and size).  Returns whether st_size must be
 * hidden.  Opens still decide for themselves.
 */
static bool attr_denied(struct fs *fs, fuse_req_t req, struct node *n)
{
	char rule[ACCESS_RULE_MAX];
	struct policy *p;
	struct caller c;
	bool permit;

	if ((!fs->hide_denied_size && !fs->access.audit) || n == &fs->nodes.root)
		return false;
	p = access_policy(&fs->access);
	if (!p)
		return false; /* without a policy the kernel keeps other uids out */
	access_caller(&fs->access, req, p, &c);
	if (n->tree == NODE_VIEW && n->type == NODE_FILE) {
		char denied[PATH_MAX];
		struct cache_result res = { .value = NULL };

		view_check(fs, n, p, &c, rule, sizeof(rule), denied, sizeof(denied), &res, &permit);
		secret_unref(res.value);
	} else {
		permit = node_permits(fs, p, &c, n, rule, sizeof(rule));
		/*
		 * A render's length is the sum of its references' lengths: with
		 * hide_denied_size it is shown only to a reader who may open
		 * every one of them, as the open would judge it.
		 */
		if (permit && fs->hide_denied_size && n->tree == NODE_TEMPLATE)
			permit = template_permits(fs, n, p, &c);
	}
	policy_unref(p);
	if (permit)
		return false;
	access_audit_lookup(&fs->access, &c, n->tpath, rule);
	return fs->hide_denied_size && n->type == NODE_FILE;
}

/* Secret files' attributes differ per caller with hide_denied_size: the kernel must not keep them.
 */
static double attr_timeout_of(struct fs *fs, struct node *n)
{
	/* A template's size is its latest render: the kernel asks again each time. */
	if (n->tree == NODE_TEMPLATE)
		return 0.0;
	return fs->hide_denied_size && n->type == NODE_FILE ? 0.0 : fs->attr_timeout;
}

/*
 * A stored secret or folder at the root named like the meta directory is
 * hidden by it: said once, when the root's listing shows one (or the first
 * lookup of the meta directory finds one there).
 */
static void meta_clash(struct fs *fs, const struct secret *root_listing)
{
	struct secret_entry e;

	if (root_listing && secret_table_find(root_listing, fs->meta_name, &e) &&
	    !__atomic_exchange_n(&fs->meta_clash_logged, true, __ATOMIC_RELAXED))
		log_warn("the store's '%s' is hidden by the meta directory of that name; "
			 "-o meta_dir=NAME renames the meta directory",
			 fs->meta_name);
}

/*
 * What @name is in @parent, in whichever tree: the meta directory at the
 * root (it wins over a stored name), the meta tree's fixed directories, a
 * view directory's store folder, or the store.  @ret's id (unless it is a
 * key node's, borrowed) and tpath (when set) are the caller's to free.
 */
static int lookup_node(struct fs *fs, struct node *parent, const char *name, uint64_t deadline,
		       struct node *ret)
{
	struct node shadow, store;
	struct cache_result res;
	char reason[BACKEND_REASON_MAX];
	int r;

	if (parent == &fs->nodes.root && strcmp(name, fs->meta_name) == 0) {
		/* The first lookup looks for a clash; later ones rely on root listings. */
		if (!__atomic_exchange_n(&fs->meta_looked_up, true, __ATOMIC_RELAXED) &&
		    source_listing_until(fs->src, "", deadline, &res, reason, sizeof(reason)) >=
			    0) {
			meta_clash(fs, res.value);
			secret_unref(res.value);
		}
		return meta_root(fs->meta_name, ret);
	}
	if (parent->tree == NODE_META)
		return meta_resolve(parent, name, ret);
	if (parent->tree == NODE_AT || parent->tree == NODE_VERSIONS) {
		if (parent->type != NODE_DIR)
			return -ENOTDIR;
		if (parent->id[0] == '\0' && strcmp(name, fs->meta_name) == 0)
			return -ENOENT; /* hidden in the store's tree, so in these */
		/* The store directory it stands for, looked up as the store would. */
		shadow = (struct node){ .type = NODE_DIR,
					.has_secret = parent->has_secret,
					.has_folder = parent->has_folder,
					.id = parent->id,
					.tpath = parent->id };
		r = resolve(fs, &shadow, name, deadline, &store);
		if (r < 0)
			return r;
		return meta_tree_node(parent, &store, name, ret);
	}
	if (parent->tree != NODE_VIEW)
		return lookup_child(fs, parent, name, deadline, ret);
	if (parent->type != NODE_DIR)
		return -ENOTDIR;
	if (parent->id[0] == '\0' && strcmp(name, fs->meta_name) == 0)
		return -ENOENT; /* hidden in the store's tree, so in its views */
	/* The store folder the view directory stands for, looked up as the store would. */
	shadow = (struct node){
		.type = NODE_DIR, .has_folder = true, .id = parent->id, .tpath = parent->id
	};
	r = resolve(fs, &shadow, name, deadline, &store);
	if (r < 0)
		return r;
	return meta_view_node(parent, &store, name, ret);
}

static void sfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e = { 0 };
	struct node want, *n, *pn = nodes_get(&fs->nodes, parent);
	/* One deadline for the listing and the values this lookup may wait for. */
	uint64_t deadline = source_deadline(fs->src);
	int r;

	/* A name below a replaced directory would be found through another node. */
	r = nodes_detached(pn) ? -ESTALE : lookup_node(fs, pn, name, deadline, &want);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	n = nodes_acquire(&fs->nodes, &want);
	if (want.key == NULL)
		free(want.id); /* lookup_node() allocated it; a key node borrows the parent's id */
	free(want.tpath);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = node_attr(fs, n, attr_denied(fs, req, n), deadline, &e.attr);
	if (r < 0) {
		nodes_forget(&fs->nodes, n, 1);
		fuse_reply_err(req, -r);
		return;
	}
	e.ino = nodes_ino(&fs->nodes, n);
	e.generation = n->generation;
	e.attr_timeout = attr_timeout_of(fs, n);
	e.entry_timeout = fs->attr_timeout;
	fuse_reply_entry(req, &e);
}

static void sfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = req_fs(req);

	nodes_forget(&fs->nodes, nodes_get(&fs->nodes, ino), nlookup);
	fuse_reply_none(req);
}

static void sfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = req_fs(req);

	for (size_t i = 0; i < count; i++)
		nodes_forget(&fs->nodes, nodes_get(&fs->nodes, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void sfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct node *n = nodes_get(&fs->nodes, ino);
	struct stat st;
	int r;

	if (n->tree == NODE_TEMPLATE && fi && fi->fh && !nodes_detached(n)) {
		/* fstat(2) of an open template: the length of the bytes it reads. */
		fill_attr(fs, n, ((struct handle *)(uintptr_t)fi->fh)->len, &st);
		fuse_reply_attr(req, &st, 0.0);
		return;
	}
	r = nodes_detached(n) ? -ESTALE : node_attr(fs, n, attr_denied(fs, req, n), 0, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, attr_timeout_of(fs, n));
}

static void sfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct node *n = nodes_get(&fs->nodes, ino);
	struct policy *p = access_policy(&fs->access);
	struct cache_result res = { .value = NULL };
	struct template_set *ts = NULL;
	const struct template_entry *te = NULL;
	char rule[ACCESS_RULE_MAX], denied[PATH_MAX];
	struct handle *h = NULL;
	struct secret *table = NULL; /* a view's object */
	struct caller c;
	bool permit = false;
	int r;

	access_caller(&fs->access, req, p, &c);
	rule[0] = '\0';
	if (nodes_detached(n)) {
		r = -ESTALE; /* replaced at its path: reached through a kept descriptor */
	} else if (n->type == NODE_DIR) {
		r = -EISDIR;
	} else if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		r = -EROFS;
	} else if (n->tree == NODE_VIEW) {
		r = view_check(fs, n, p, &c, rule, sizeof(rule), denied, sizeof(denied), &res,
			       &permit);
		table = TAKE_PTR(res.value);
		if (!permit) {
			__atomic_fetch_add(&fs->access.denied, 1, __ATOMIC_RELAXED);
			/* The store path that was refused, as the reader would have opened it. */
			access_audit(&fs->access, &c, "view", denied, false, r, rule, NULL);
		}
	} else {
		permit = node_permits(fs, p, &c, n, rule, sizeof(rule));
		r = permit ? 0 : -EACCES;
		if (!permit)
			__atomic_fetch_add(&fs->access.denied, 1, __ATOMIC_RELAXED);
	}
	if (n->tree == NODE_TEMPLATE) {
		ts = fs_templates(fs);
		te = template_set_find(ts, n->id);
		if (!te && r >= 0)
			r = -ENOENT; /* gone with a reload */
	}
	if (r >= 0)
		r = take_handle(fs, c.subject.uid);
	if (r >= 0) {
		h = calloc(1, sizeof(*h));
		if (!h)
			r = -ENOMEM;
		else if (te)
			r = template_open(fs, te, p, &c, source_deadline(fs->src), false,
					  &h->value);
		else if (table)
			r = view_value(fs, n, table, false, h); /* the object the policy judged */
		else
			r = node_value(fs, n, 0, h, &res);
		if (r < 0) {
			handles_put(&fs->handles, c.subject.uid);
		} else {
			h->uid = c.subject.uid;
			if (te) {
				h->data = h->value->data;
				h->len = h->value->len;
			}
		}
	}
	secret_unref(table);
	if (te)
		access_audit_template(&fs->access, &c, "open", n->tpath, permit, r < 0 ? r : 0,
				      rule, NULL, te->name);
	else
		access_audit(&fs->access, &c, "open", n->tpath, permit, r < 0 ? r : 0, rule,
			     permit && (r >= 0 || res.state == CACHE_NEGATIVE) ? &res : NULL);
	template_set_unref(ts);
	if (p)
		policy_unref(p);
	if (r < 0) {
		free(h);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1; /* never through the page cache */
	fi->keep_cache = 0;
	fi->noflush = 1; /* nothing to flush: spare close(2) a round trip */
	open_track(fs, &h->link, false);
	if (fuse_reply_open(req, fi) < 0)
		handle_free(fs, h); /* the opener is gone: no release will come */
}

static void handle_free(struct fs *fs, struct handle *h)
{
	open_untrack(fs, &h->link);
	handles_put(&fs->handles, h->uid);
	secret_unref(h->value);
	free(h);
}

static void sfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (off < 0 || (uint64_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > h->len - (size_t)off)
		size = h->len - (size_t)off;
	fuse_reply_buf(req, (const char *)h->data + off, size);
}

static void sfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fs *fs = req_fs(req);

	handle_free(fs, h);
	fuse_reply_err(req, 0);
	/*
	 * direct_io keeps read(2) out of the page cache, but the kernel still
	 * serves a MAP_PRIVATE mapping through it.  Drop any such pages when
	 * the file is closed rather than at its next open.
	 */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}

/*
 * What an opendir built, shared by every handle open on the same node with
 * the same data (the same listing and object secret from the cache): the
 * names, unfiltered, in a fixed order.  Each handle adds only its caller's
 * view, one bit per entry, so 20,000 open handles of one directory cost
 * 20,000 small bitmaps rather than 20,000 copies of the listing.  The node
 * points at it only while some handle holds it, so nothing outlives the
 * last close.
 */
struct dirlist_entry {
	const char *name; /* inside keys or children, or a literal */
	mode_t type;	  /* S_IFDIR, S_IFREG, or 0: unknown until a lookup */
	bool folder;	  /* a child folder */
	bool key;	  /* a key of the directory's own object secret */
	bool meta;	  /* the meta directory, or an entry of its fixed directories */
};

struct dirlist {
	struct node *node;		/* immutable; alive while any handle is open */
	struct secret *keys;		/* the object secret's value, or NULL; immutable */
	struct secret *children;	/* the folder's listing, or NULL; immutable */
	struct template_set *templates; /* a reference, or NULL; immutable */
	char *tnames;			/* the names templates add, NUL-separated; immutable */
	unsigned refs;			/* protected by fs->dirlist_lock */
	size_t n;			/* immutable */
	struct dirlist_entry e[];
};

/* An open directory: the shared listing and which of its entries this caller sees. */
struct dirhandle {
	struct open_link link; /* first: fs_free() finds the handle from it */
	struct dirlist *list;
	uid_t uid;
	uint64_t visible[]; /* bit i: e[i] is shown */
};

static void dirlist_unref(struct fs *fs, struct dirlist *d)
{
	bool last;

	if (!d)
		return;
	pthread_mutex_lock(&fs->dirlist_lock);
	last = --d->refs == 0;
	if (last && d->node->dirlist == d)
		d->node->dirlist = NULL;
	pthread_mutex_unlock(&fs->dirlist_lock);
	if (!last)
		return;
	secret_unref(d->keys);
	secret_unref(d->children);
	template_set_unref(d->templates);
	free(d->tnames);
	free(d);
}

/*
 * The names templates add to directory @tpath: a template there, or the
 * directory that leads to one below.  Written NUL-separated into *ret (the
 * caller frees it), each once; returns how many, or -ENOMEM.
 */
static int template_names(const struct template_set *ts, const char *tpath, char **ret)
{
	size_t tl = strlen(tpath), used = 0, cap = 1, n = 0;
	char *buf;

	for (size_t i = 0; ts && i < ts->n; i++)
		cap += strlen(ts->e[i].path) + 1;
	buf = calloc(1, cap);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; ts && i < ts->n; i++) {
		const char *p = ts->e[i].path, *rest;
		size_t nl;
		bool dup = false;

		if (tl && (strncmp(p, tpath, tl) != 0 || p[tl] != '/'))
			continue;
		rest = tl ? p + tl + 1 : p;
		nl = strcspn(rest, "/");
		for (const char *q = buf; q < buf + used; q += strlen(q) + 1)
			dup |= strlen(q) == nl && memcmp(q, rest, nl) == 0;
		if (dup)
			continue;
		memcpy(buf + used, rest, nl);
		used += nl + 1;
		n++;
	}
	*ret = buf;
	return (int)n;
}

/* Whether template name @name of the listing of @n hides a store entry: logged once. */
static bool template_hides(struct node *n, const struct template_set *ts, const char *tnames,
			   size_t nt, const char *name)
{
	const char *q = tnames;

	for (size_t i = 0; i < nt; i++, q += strlen(q) + 1) {
		char path[PATH_MAX];
		const struct template_entry *e;

		if (strcmp(q, name) != 0)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", n->tpath, n->tpath[0] ? "/" : "", name);
		e = template_set_find(ts, path);
		if (e && !__atomic_exchange_n((bool *)&e->clash_logged, true, __ATOMIC_RELAXED))
			log_warn("'%s' is both template %s and a stored secret or folder; "
				 "showing the template",
				 path, e->name);
		return true;
	}
	return false;
}

/*
 * Builds the unfiltered listing of @n from @keys and @children (references
 * taken).  In the root, the meta directory @meta_name comes first when
 * @show_meta, and a stored child of that name is never listed: the meta
 * directory hides it.  Then the names templates @ts add, which win a clash
 * with the store.
 */
static struct dirlist *dirlist_build(struct node *n, struct secret *keys, struct secret *children,
				     const char *meta_name, bool show_meta, struct template_set *ts)
{
	size_t nk = keys ? secret_table_count(keys) : 0,
	       nc = children ? secret_table_count(children) : 0, i = 0, nt;
	struct secret_entry e, k;
	struct dirlist *d;
	char *tnames = NULL;
	const char *q;
	int r = template_names(ts, n->tpath, &tnames);

	if (r < 0)
		return NULL;
	nt = (size_t)r;
	d = calloc(1, sizeof(*d) + (3 + nk + nc + nt) * sizeof(d->e[0]));
	if (!d) {
		free(tnames);
		return NULL;
	}
	d->node = n;
	d->keys = keys ? secret_ref(keys) : NULL;
	d->children = children ? secret_ref(children) : NULL;
	d->templates = ts ? template_set_ref(ts) : NULL;
	d->tnames = tnames;
	d->refs = 1;
	d->e[i++] = (struct dirlist_entry){ .name = ".", .type = S_IFDIR };
	d->e[i++] = (struct dirlist_entry){ .name = "..", .type = S_IFDIR };
	if (show_meta && n->tpath[0] == '\0' && n->tree == NODE_STORE)
		d->e[i++] = (struct dirlist_entry){
			.name = meta_name, .type = S_IFDIR, .folder = true, .meta = true
		};
	/* Templates next: they win a clash with the store. */
	q = tnames;
	for (size_t t = 0; t < nt; t++, q += strlen(q) + 1) {
		char path[PATH_MAX];
		bool file;

		snprintf(path, sizeof(path), "%s%s%s", n->tpath, n->tpath[0] ? "/" : "", q);
		file = template_set_find(ts, path) != NULL;
		d->e[i++] = (struct dirlist_entry){
			.name = q, .type = file ? S_IFREG : S_IFDIR, .folder = !file, .key = file
		};
	}
	for (size_t j = 0; keys && secret_table_at(keys, j, &e); j++) {
		if (nt && template_hides(n, ts, tnames, nt, e.name))
			continue;
		d->e[i++] = (struct dirlist_entry){ .name = e.name, .type = S_IFREG, .key = true };
	}
	for (size_t j = 0; children && secret_table_at(children, j, &e); j++) {
		bool folder = e.value[0] & BACKEND_LIST_FOLDER;

		/* The store's root name the meta directory hides (meta_clash() says so), in the
		 * store's tree and in the views of its root alike. */
		if (n->tree != NODE_META && n->id[0] == '\0' && strcmp(e.name, meta_name) == 0)
			continue;
		if (nt && template_hides(n, ts, tnames, nt, e.name))
			continue;
		if (keys && secret_table_find(keys, e.name, &k)) {
			log_warn("'%s/%s' is both a key and a secret; showing the key", n->id,
				 e.name);
			continue;
		}
		/* A secret may be a file or an object; only a lookup would tell. */
		d->e[i++] = (struct dirlist_entry){ .name = e.name,
						    .type = folder ? S_IFDIR : 0,
						    .folder = folder,
						    .meta = n->tree == NODE_META };
	}
	d->n = i;
	return d;
}

/*
 * The listing of @n for a new handle: the one already shared when it was
 * built from the same @keys and @children, else a new one.  The shared one
 * holds references to both, so the same address is the same data.
 */
static struct dirlist *dirlist_get(struct fs *fs, struct node *n, struct secret *keys,
				   struct secret *children, struct template_set *ts)
{
	struct dirlist *d;

	pthread_mutex_lock(&fs->dirlist_lock);
	d = n->dirlist;
	if (d && d->keys == keys && d->children == children && d->templates == ts) {
		d->refs++;
	} else {
		d = dirlist_build(n, keys, children, fs->meta_name, fs->show_meta, ts);
		if (d)
			n->dirlist = d; /* the old one lives on in the handles that hold it */
	}
	pthread_mutex_unlock(&fs->dirlist_lock);
	return d;
}

/*
 * The path the policy judges for @name in directory @n (the store path, in
 * a view directory), in @buf; NULL when it does not fit.
 */
static const char *child_path(const struct node *n, const char *name, char *buf, size_t len)
{
	const char *base = meta_policy_path(n);
	int w = base[0] ? snprintf(buf, len, "%s/%s", base, name) : snprintf(buf, len, "%s", name);

	return w >= 0 && (size_t)w < len ? buf : NULL;
}

/*
 * Opens the listing of @n for @c: the shared entries, and which of them
 * this caller may see (entries the caller may not open are hidden, unless
 * show_denied).
 */
static int list_dir(struct fs *fs, struct node *n, const struct policy *p, const struct caller *c,
		    uid_t uid, struct dirhandle **ret)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *keys = NULL, *children = NULL;
	struct template_set *ts;
	char pathbuf[PATH_MAX];
	struct cache_result res;
	struct dirlist *d;
	struct dirhandle *h;
	/* One deadline for the object secret and the listing together. */
	uint64_t deadline = source_deadline(fs->src);
	int r;

	if (n->has_secret) {
		r = source_value_until(fs->src, n->id, deadline, &res, reason, sizeof(reason));
		if (r >= 0 && res.value->kind == SECRET_TABLE)
			keys = res.value;
		else if (r >= 0)
			secret_unref(res.value);
		else if (r != -ENOENT)
			goto fail;
	}
	if (n->tree == NODE_META) {
		r = meta_listing(n, &children);
		if (r < 0)
			return r;
	} else if (n->has_folder) {
		r = source_listing_until(fs->src, n->id, deadline, &res, reason, sizeof(reason));
		if (r >= 0)
			children = res.value;
		/* Gone, or a store (or token) that cannot list: an empty folder. */
		else if (r != -ENOENT && r != -ENOSYS && r != -EACCES)
			goto fail;
		if (n == &fs->nodes.root)
			meta_clash(fs, children);
	}
	ts = fs_templates(fs);
	d = dirlist_get(fs, n, keys, children, ts);
	template_set_unref(ts);
	secret_unref(keys);
	secret_unref(children);
	if (!d)
		return -ENOMEM;
	h = calloc(1, sizeof(*h) + (d->n + 63) / 64 * sizeof(h->visible[0]));
	if (!h) {
		dirlist_unref(fs, d);
		return -ENOMEM;
	}
	h->list = d;
	h->uid = uid;
	for (size_t i = 0; i < d->n; i++) {
		const struct dirlist_entry *e = &d->e[i];
		const char *path = i < 2 ? NULL : child_path(n, e->name, pathbuf, sizeof(pathbuf));

		/* The meta tree's fixed entries are there for whoever may list their directory. */
		if (i < 2 || e->meta ||
		    (path && access_visible(&fs->access, p, c, path, e->folder, !e->key)))
			h->visible[i / 64] |= UINT64_C(1) << (i % 64);
	}
	*ret = h;
	return 0;
fail:
	log_failure(fs, "list", n->id[0] ? n->id : "/", r, reason);
	secret_unref(keys);
	return r;
}

static void dirhandle_free(struct fs *fs, struct dirhandle *h)
{
	open_untrack(fs, &h->link);
	handles_put(&fs->handles, h->uid);
	dirlist_unref(fs, h->list);
	free(h);
}

static void sfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct node *n = nodes_get(&fs->nodes, ino);
	struct policy *p = access_policy(&fs->access);
	char rule[ACCESS_RULE_MAX];
	struct dirhandle *h = NULL;
	struct caller c;
	bool permit;
	int r;

	access_caller(&fs->access, req, p, &c);
	rule[0] = '\0';
	r = nodes_detached(n) ? -ESTALE
			      : access_check(&fs->access, p, &c, meta_policy_path(n), true, rule,
					     sizeof(rule));
	permit = r >= 0;
	if (r >= 0)
		r = take_handle(fs, c.subject.uid);
	if (r >= 0) {
		r = list_dir(fs, n, p, &c, c.subject.uid, &h);
		if (r < 0)
			handles_put(&fs->handles, c.subject.uid);
	}
	access_audit(&fs->access, &c, "list", n->tpath, permit, r < 0 ? r : 0, rule, NULL);
	if (p)
		policy_unref(p);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	open_track(fs, &h->link, true);
	if (fuse_reply_open(req, fi) < 0)
		dirhandle_free(fs, h);
}

/*
 * Entries from index @off on that this handle sees, as many as fit in
 * @size.  An entry's offset is the index after it, so offsets stay put for
 * the handle's life whatever happens to the node's listing meanwhile.
 */
static void sfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct dirhandle *h = (struct dirhandle *)(uintptr_t)fi->fh;
	const struct dirlist *d = h->list;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	if (off < 0 || (uint64_t)off >= d->n || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct stat st = { .st_ino = UNKNOWN_INO, .st_mode = d->e[i].type };
		size_t need;

		if (!(h->visible[i / 64] & (UINT64_C(1) << (i % 64))))
			continue;
		need = fuse_add_direntry(req, NULL, 0, d->e[i].name, NULL, 0);
		if (need > size - len)
			break;
		fuse_add_direntry(req, buf + len, size - len, d->e[i].name, &st, (off_t)(i + 1));
		len += need;
	}
	fuse_reply_buf(req, buf, len);
}

static void sfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dirhandle_free(req_fs(req), (struct dirhandle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* access(2), e.g. test -r: the same answer open would give, without a record. */
static void sfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs *fs = req_fs(req);
	struct node *n = nodes_get(&fs->nodes, ino);
	struct policy *p;
	char rule[ACCESS_RULE_MAX];
	struct caller c;
	int r;

	if (nodes_detached(n)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (mask & W_OK) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (mask == F_OK) {
		fuse_reply_err(req, 0);
		return;
	}
	p = access_policy(&fs->access);
	access_caller(&fs->access, req, p, &c);
	if (n->tree == NODE_VIEW && n->type == NODE_FILE) {
		char denied[PATH_MAX];
		struct cache_result res = { .value = NULL };
		bool permit;

		r = view_check(fs, n, p, &c, rule, sizeof(rule), denied, sizeof(denied), &res,
			       &permit);
		secret_unref(res.value);
		if (!permit)
			__atomic_fetch_add(&fs->access.denied, 1, __ATOMIC_RELAXED);
	} else {
		r = node_permits(fs, p, &c, n, rule, sizeof(rule)) ? 0 : -EACCES;
		if (r < 0)
			__atomic_fetch_add(&fs->access.denied, 1, __ATOMIC_RELAXED);
	}
	if (r >= 0 && (mask & X_OK) && n->type != NODE_DIR)
		r = -EACCES; /* mounted noexec, and secrets are not programs */
	if (p)
		policy_unref(p);
	fuse_reply_err(req, -r);
}

/*
 * No extended attributes.  Answered rather than left ENOSYS (which the kernel
 * remembers for the whole mount) so that a replaced node is ESTALE here too.
 */
static void sfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = req_fs(req);

	fuse_reply_err(req, nodes_detached(nodes_get(&fs->nodes, ino)) ? ESTALE : ENODATA);
}

static void sfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = req_fs(req);

	if (nodes_detached(nodes_get(&fs->nodes, ino)))
		fuse_reply_err(req, ESTALE);
	else if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void sfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {
		.f_bsize = 4096,
		.f_frsize = 4096,
		.f_namemax = 255,
		.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV,
	};

	fuse_reply_statfs(req, &sv);
}

/* ---- everything that would change the tree ---- */

static void erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void sfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	erofs(req);
}

static void sfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	erofs(req);
}

static void sfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	erofs(req);
}

static void sfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	erofs(req);
}

static void sfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	erofs(req);
}

static void sfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	erofs(req);
}

static void sfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	erofs(req);
}

static void sfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	erofs(req);
}

static void sfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	erofs(req);
}

static void sfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	erofs(req);
}

static void sfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	erofs(req);
}

static void sfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			  struct fuse_file_info *fi)
{
	erofs(req);
}

/*
 * Lookups and readdirs of one directory run side by side: without this the
 * kernel takes the directory's lock around each, and one slow fetch stalls
 * every other name in the folder.  libfuse 3.16 and later pass it on;
 * before that (Debian 12 has 3.14) the INIT reply never carries it, which
 * fs_session_io() mends.
 */
static void sfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

/*
 * The head of the kernel's INIT request and reply (linux/fuse.h, a stable
 * ABI: these fields have not moved since protocol 7.0).
 */
#define FUSE_OPCODE_INIT	  26
#define FUSE_FLAG_PARALLEL_DIROPS (1u << 18)

struct kernel_in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid, padding;
};

struct kernel_init_head {
	uint32_t major, minor, max_readahead, flags;
};

struct kernel_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

/* The INIT request's id while its reply is due, and whether the kernel offered the flag. */
static uint64_t init_unique;
static bool init_parallel_dirops;

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct kernel_in_header *in = buf;

	if (n >= (ssize_t)(sizeof(*in) + sizeof(struct kernel_init_head)) &&
	    in->opcode == FUSE_OPCODE_INIT) {
		const struct kernel_init_head *ii = (const void *)(in + 1);

		init_parallel_dirops = ii->flags & FUSE_FLAG_PARALLEL_DIROPS;
		__atomic_store_n(&init_unique, in->unique, __ATOMIC_RELEASE);
	}
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	uint64_t want = __atomic_load_n(&init_unique, __ATOMIC_ACQUIRE);

	if (want && count >= 2 && iov[0].iov_len >= sizeof(struct kernel_out_header) &&
	    iov[1].iov_len >= sizeof(struct kernel_init_head)) {
		const struct kernel_out_header *out = iov[0].iov_base;

		if (out->unique == want && out->error == 0) {
			struct kernel_init_head *io = iov[1].iov_base;
			struct fs *fs = userdata;

			/* What sfs_init() asked for: offered by the kernel, and not
			 * single-threaded. */
			if (init_parallel_dirops && fs->parallel_dirops)
				io->flags |= FUSE_FLAG_PARALLEL_DIROPS;
			__atomic_store_n(&init_unique, 0, __ATOMIC_RELEASE);
		}
	}
	return writev(fd, iov, count);
}

int fs_session_io(struct fs *fs, struct fuse_session *se, bool parallel_dirops)
{
	static const struct fuse_custom_io io = { .read = io_read, .writev = io_writev };

	fs->parallel_dirops = parallel_dirops;
	return fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0 ? 0 : -EINVAL;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = sfs_init,
	.lookup = sfs_lookup,
	.forget = sfs_forget,
	.forget_multi = sfs_forget_multi,
	.getattr = sfs_getattr,
	.open = sfs_open,
	.read = sfs_read,
	.release = sfs_release,
	.opendir = sfs_opendir,
	.readdir = sfs_readdir,
	.releasedir = sfs_releasedir,
	.statfs = sfs_statfs,
	.access = sfs_access,
	.getxattr = sfs_getxattr,
	.listxattr = sfs_listxattr,
	.setattr = sfs_setattr,
	.mknod = sfs_mknod,
	.mkdir = sfs_mkdir,
	.unlink = sfs_unlink,
	.rmdir = sfs_unlink,
	.symlink = sfs_symlink,
	.rename = sfs_rename,
	.link = sfs_link,
	.write = sfs_write,
	.create = sfs_create,
	.setxattr = sfs_setxattr,
	.removexattr = sfs_removexattr,
	.fallocate = sfs_fallocate,
};
