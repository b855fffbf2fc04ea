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
#include <time.h>
#include <unistd.h>

#include "fs/access.h"
#include "fs/nodes.h"
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
	struct access access;
};

/* An open secret file: a reference to the value seen at open. */
struct handle {
	struct secret *value;
	const unsigned char *data;
	size_t len;
};

/* An open directory: the listing built at opendir. */
struct dirbuf {
	char *buf;
	size_t len;
	size_t cap;
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
	fs->src = p->source;
	fs->attr_timeout = (double)p->attr_timeout_usec / USEC_PER_SEC;
	fs->hide_denied_size = p->hide_denied_size;
	fs->access.lookup_audit_usec = p->lookup_audit_usec;
	fs->owner = p->owner;
	fs->group = p->group;
	fs->mount_time = time(NULL);
	pthread_mutex_init(&fs->access.lock, NULL);
	fs->access.policy = p->policy;
	fs->access.audit = p->audit;
	fs->access.source = p->source->backend->source;
	fs->access.owner = p->owner;
	fs->access.show_denied = p->show_denied;
	*ret = fs;
	return 0;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	nodes_done(&fs->nodes);
	if (fs->access.policy)
		policy_unref(fs->access.policy);
	pthread_mutex_destroy(&fs->access.lock);
	free(fs->access.seen);
	free(fs);
}

void fs_set_policy(struct fs *fs, struct policy *p)
{
	access_set_policy(&fs->access, p);
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

void fs_get_stats(struct fs *fs, struct fs_stats *ret)
{
	ret->access_denied = __atomic_load_n(&fs->access.denied, __ATOMIC_RELAXED);
}

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Logs a backend failure once per request; not-found is normal and quiet. */
static void log_failure(struct fs *fs, const char *what, const char *path, int r,
			const char *reason)
{
	if (r == -ENOENT)
		log_debug("%s '%s': %s", what, path, reason);
	else
		log_warn("%s '%s': %s (%s)", what, path, reason[0] ? reason : "failed",
			 strerror(-r));
}

/*
 * The value a FILE node shows: a reference and the byte range within it.
 * @res receives the cache's answer (state, version) for the audit record.
 */
static int node_value(struct fs *fs, struct node *n, struct handle *ret,
		      struct cache_result *res_out)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result local, *resp = res_out ? res_out : &local;
	struct cache_result res;
	struct secret_entry e;
	int r;

	r = source_value(fs->src, n->id, resp, reason, sizeof(reason));
	res = *resp;
	if (r < 0) {
		log_failure(fs, "fetch", n->id, r, reason);
		return r;
	}
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
		policy_attrs(p, n->tpath, &pa);
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
static int node_attr(struct fs *fs, struct node *n, bool hide_size, struct stat *st)
{
	struct handle h = { 0 };
	int r;

	if (n->type == NODE_FILE && !hide_size) {
		r = node_value(fs, n, &h, NULL);
		if (r < 0)
			return r;
	}
	fill_attr(fs, n, h.len, st);
	secret_unref(h.value);
	return 0;
}

/*
 * What @name is inside the directory @parent, per DESIGN section 2: a key of
 * the parent's object secret wins; then the parent folder's listing decides
 * between a file, an object secret (a directory) and a folder.
 */
static int resolve(struct fs *fs, struct node *parent, const char *name, struct node *ret)
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
		r = source_value(fs->src, parent->id, &res, reason, sizeof(reason));
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
	r = source_listing(fs->src, parent->id, &res, reason, sizeof(reason));
	if (r == -ENOSYS || r == -EACCES) {
		/*
		 * A store that cannot list, or a token that may read but not list
		 * (common in Vault policies): a name is a secret if a fetch finds
		 * it, else a folder whose contents we cannot see.
		 */
		flags = BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER;
		unlisted = true;
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
		r = source_value(fs->src, path, &res, reason, sizeof(reason));
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
	permit = access_permits(&fs->access, p, &c, n->tpath, n->type == NODE_DIR, rule,
				sizeof(rule));
	policy_unref(p);
	if (permit)
		return false;
	access_audit_lookup(&fs->access, &c, n->tpath, rule);
	return fs->hide_denied_size && n->type == NODE_FILE;
}

/* Secret files' attributes differ per caller with hide_denied_size: the kernel must not keep them. */
static double attr_timeout_of(struct fs *fs, struct node *n)
{
	return fs->hide_denied_size && n->type == NODE_FILE ? 0.0 : fs->attr_timeout;
}

static void sfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e = { 0 };
	struct node want, *n, *pn = nodes_get(&fs->nodes, parent);
	int r;

	/* A name below a replaced directory would be found through another node. */
	r = nodes_detached(pn) ? -ESTALE : resolve(fs, pn, name, &want);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	n = nodes_acquire(&fs->nodes, &want);
	if (want.key == NULL)
		free(want.id); /* resolve() allocated it; a key node borrows the parent's id */
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = node_attr(fs, n, attr_denied(fs, req, n), &e.attr);
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

	r = nodes_detached(n) ? -ESTALE : node_attr(fs, n, attr_denied(fs, req, n), &st);
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
	char rule[ACCESS_RULE_MAX];
	struct handle *h = NULL;
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
	} else {
		r = access_check(&fs->access, p, &c, n->tpath, false, rule, sizeof(rule));
		permit = r >= 0;
	}
	if (r >= 0) {
		h = calloc(1, sizeof(*h));
		r = h ? node_value(fs, n, h, &res) : -ENOMEM;
	}
	access_audit(&fs->access, &c, "open", n->tpath, permit, r < 0 ? r : 0, rule,
		     permit && (r >= 0 || res.state == CACHE_NEGATIVE) ? &res : NULL);
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
	if (fuse_reply_open(req, fi) < 0) {
		/* The opener is gone: no release will come. */
		secret_unref(h->value);
		free(h);
	}
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

	secret_unref(h->value);
	free(h);
	fuse_reply_err(req, 0);
	/*
	 * direct_io keeps read(2) out of the page cache, but the kernel still
	 * serves a MAP_PRIVATE mapping through it.  Drop any such pages when
	 * the file is closed rather than at its next open.
	 */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}

static int dirbuf_add(fuse_req_t req, struct dirbuf *d, const char *name, mode_t type)
{
	struct stat st = { .st_ino = UNKNOWN_INO, .st_mode = type };
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (d->len + need > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 4096;
		char *b;

		while (cap < d->len + need)
			cap *= 2;
		b = realloc(d->buf, cap);
		if (!b)
			return -ENOMEM;
		d->buf = b;
		d->cap = cap;
	}
	fuse_add_direntry(req, d->buf + d->len, need, name, &st, (off_t)(d->len + need));
	d->len += need;
	return 0;
}

/* Fills @d with a directory's entries: keys of its object secret, then its children. */
/* The tree path of @name in directory @n, in @buf; NULL when it does not fit. */
static const char *child_path(const struct node *n, const char *name, char *buf, size_t len)
{
	int w = n->tpath[0] ? snprintf(buf, len, "%s/%s", n->tpath, name)
			    : snprintf(buf, len, "%s", name);

	return w >= 0 && (size_t)w < len ? buf : NULL;
}

static int list_dir(struct fs *fs, fuse_req_t req, struct node *n, const struct policy *p,
		    const struct caller *c, struct dirbuf *d)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *keys = NULL, *children = NULL;
	char pathbuf[PATH_MAX];
	struct cache_result res;
	struct secret_entry e;
	int r;

	if ((r = dirbuf_add(req, d, ".", S_IFDIR)) < 0 ||
	    (r = dirbuf_add(req, d, "..", S_IFDIR)) < 0)
		return r;
	if (n->has_secret) {
		r = source_value(fs->src, n->id, &res, reason, sizeof(reason));
		if (r >= 0 && res.value->kind == SECRET_TABLE)
			keys = res.value;
		else if (r >= 0)
			secret_unref(res.value);
		else if (r != -ENOENT)
			goto fail;
	}
	if (n->has_folder) {
		r = source_listing(fs->src, n->id, &res, reason, sizeof(reason));
		if (r >= 0)
			children = res.value;
		/* Gone, or a store (or token) that cannot list: an empty folder. */
		else if (r != -ENOENT && r != -ENOSYS && r != -EACCES)
			goto fail;
	}
	r = 0;
	/* Entries the caller may not open are hidden, unless show_denied. */
	for (size_t i = 0; keys && secret_table_at(keys, i, &e) && r >= 0; i++) {
		const char *path = child_path(n, e.name, pathbuf, sizeof(pathbuf));

		if (path && access_visible(&fs->access, p, c, path, false, false))
			r = dirbuf_add(req, d, e.name, S_IFREG);
	}
	for (size_t i = 0; children && secret_table_at(children, i, &e) && r >= 0; i++) {
		struct secret_entry k;
		const char *path;
		bool folder;

		if (keys && secret_table_find(keys, e.name, &k)) {
			log_warn("'%s/%s' is both a key and a secret; showing the key", n->id,
				 e.name);
			continue;
		}
		path = child_path(n, e.name, pathbuf, sizeof(pathbuf));
		folder = e.value[0] & BACKEND_LIST_FOLDER;
		/* A secret may be a file or an object; only a lookup would tell. */
		if (path && access_visible(&fs->access, p, c, path, folder, true))
			r = dirbuf_add(req, d, e.name, folder ? S_IFDIR : 0);
	}
	secret_unref(keys);
	secret_unref(children);
	return r;
fail:
	log_failure(fs, "list", n->id[0] ? n->id : "/", r, reason);
	secret_unref(keys);
	return r;
}

static void sfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct node *n = nodes_get(&fs->nodes, ino);
	struct policy *p = access_policy(&fs->access);
	char rule[ACCESS_RULE_MAX];
	struct dirbuf *d = NULL;
	struct caller c;
	bool permit;
	int r;

	access_caller(&fs->access, req, p, &c);
	rule[0] = '\0';
	r = nodes_detached(n) ? -ESTALE
			      : access_check(&fs->access, p, &c, n->tpath, true, rule, sizeof(rule));
	permit = r >= 0;
	if (r >= 0) {
		d = calloc(1, sizeof(*d));
		r = d ? list_dir(fs, req, n, p, &c, d) : -ENOMEM;
	}
	access_audit(&fs->access, &c, "list", n->tpath, permit, r < 0 ? r : 0, rule, NULL);
	if (p)
		policy_unref(p);
	if (r < 0) {
		if (d)
			free(d->buf);
		free(d);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) < 0) {
		free(d->buf);
		free(d);
	}
}

static void sfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;
	size_t end;

	if (off < 0 || (size_t)off >= d->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* Each entry's offset is where the next begins; the kernel drops a
	 * partial entry at the end of a reply and asks again from there. */
	end = (size_t)off + size < d->len ? (size_t)off + size : d->len;
	fuse_reply_buf(req, d->buf + off, end - (size_t)off);
}

static void sfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;

	free(d->buf);
	free(d);
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
	r = access_check(&fs->access, p, &c, n->tpath, n->type == NODE_DIR, rule, sizeof(rule));
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

const struct fuse_lowlevel_ops fs_ops = {
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
