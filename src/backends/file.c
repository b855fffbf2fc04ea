/*
 * file.c - the embedded file store: one JSON document whose top-level object
 * maps secret ids to values,
 *
 *   {"prod/db": {"username": "app", "password": "s3cr3t"}, "prod/api-key": "abc"}
 *
 * An object value is a directory of keys; {"$base64": "..."} is a binary
 * value.  The document is read once at init (that is how we check the source
 * is usable) and again whenever inotify says the file changed; a reload that
 * fails keeps the last good document and reports the file and line through
 * the error event.  What is kept is each secret already converted (a blob or
 * a table in the locked heap) under its id; the parsed tree is freed, and so
 * wiped, as soon as the load is done.  The file, and every directory above
 * it, must not be writable by group or others and must belong to root or to
 * the user the daemon runs as (trusted_file_read()), since whoever can write
 * it decides what every reader sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "backends/backends.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define STORE_MAX_BYTES (64u << 20)
/* A reload that raced with a writer swapping links: tries again, this often, this far apart. */
#define RELOAD_RACE_TRIES      5
#define RELOAD_RACE_PAUSE_USEC 100000

struct file_store {
	char *path; /* absolute, as given: symlinks are followed at each load */
	char *dir;  /* of path, watched */
	char *base;

	/*
	 * Where path led at the last load, watched too: an edit of the file a
	 * link points at happens there.  Only the watch thread uses these.
	 */
	char *real_dir;
	char *real_base;
	int real_wd; /* -1: none */

	pthread_rwlock_t lock;
	const char **ids;		   /* protected by lock; sorted, each strdup()ed */
	struct secret **values;		   /* protected by lock; values[i] is ids[i]'s */
	size_t nids;			   /* protected by lock */
	size_t max_id_len;		   /* protected by lock; the longest id's strlen */
	char version[BACKEND_VERSION_MAX]; /* protected by lock */

	int inotify_fd;
	int stop_pipe[2];
	pthread_t thread;
	bool thread_started;
};

/*
 * Reads the whole file into a malloc'ed buffer of *ret_len + 1 bytes; the
 * caller wipes it.  Symlinks are followed (Kubernetes Secret volumes); the
 * file reached and the directories above it are checked, like the policy.
 */
static int read_store(struct file_store *fs, char **ret_buf, size_t *ret_len, struct stat *ret_st,
		      char *reason, size_t reasonlen)
{
	return trusted_file_read(fs->path, "store", STORE_MAX_BYTES, ret_buf, ret_len, ret_st,
				 reason, reasonlen);
}

struct entry {
	char *id;
	struct secret *value;
};

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->id, ((const struct entry *)b)->id);
}

static void entries_free(const char **ids, struct secret **values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)ids[i]);
		secret_unref(values[i]);
	}
	free(ids);
	free(values);
}

/* Parses and checks the document; on success swaps its secrets in. */
static int load_store(struct file_store *fs, char *reason, size_t reasonlen)
{
	char *buf = NULL, why[160] = "";
	struct entry *e = NULL;
	const char **ids = NULL, **old_ids;
	struct secret **values = NULL, **old_values;
	json_t *doc, *v;
	const char *key;
	json_error_t je;
	struct stat st = { 0 };
	size_t len = 0, n = 0, old_n, max_id_len = 0;
	int r;

	r = read_store(fs, &buf, &len, &st, reason, reasonlen);
	if (r < 0)
		return r;
	/*
	 * The tree is another transient copy of bytes already in ordinary
	 * memory (wiped when freed, like them): keep it out of the locked heap,
	 * which the converted values need, however many keys the store has.
	 */
	secret_mem_scratch_unlocked(true);
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	secret_mem_scratch_unlocked(false);
	wipe_free(buf, len + 1);
	if (!doc) {
		ns_json_error_text(&je, why, sizeof(why));
		snprintf(reason, reasonlen, "%s:%d:%d: %s", fs->path, je.line, je.column, why);
		return -EINVAL;
	}
	if (!json_is_object(doc)) {
		snprintf(reason, reasonlen,
			 "%s:1: the store must be a JSON object mapping secret paths to values",
			 fs->path);
		r = -EINVAL;
		goto fail;
	}
	e = calloc(json_object_size(doc) + 1, sizeof(*e));
	if (!e) {
		r = -ENOMEM;
		goto fail;
	}
	json_object_foreach(doc, key, v)
	{
		struct secret *sv = NULL;

		if (!ns_id_is_safe(key)) {
			snprintf(reason, reasonlen,
				 "%s: secret path '%s' is not usable: components must be non-empty "
				 "and not '.' or '..', with no leading or trailing '/'",
				 fs->path, key);
			r = -EINVAL;
			goto fail;
		}
		/* Converted once, here: bad keys and base64 fail the load, not a read. */
		r = ns_secret_from_json(v, NS_JSON_BASE64 | NS_JSON_STRICT_NAMES, &sv, why,
					sizeof(why));
		if (r == -ENOMEM && !why[0])
			snprintf(why, sizeof(why),
				 "out of memory: the values must fit the locked heap (raise "
				 "cache_max_bytes)");
		if (r < 0) {
			snprintf(reason, reasonlen, "%s: secret '%s': %s", fs->path, key,
				 why[0] ? why : strerror(-r));
			goto fail;
		}
		e[n].value = sv;
		e[n].id = strdup(key);
		n++;
		if (!e[n - 1].id) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/* The tree held every value: wiped now, not kept for the daemon's lifetime. */
	json_decref(doc);
	doc = NULL;
	qsort(e, n, sizeof(*e), cmp_entry);
	ids = calloc(n + 1, sizeof(*ids));
	values = calloc(n + 1, sizeof(*values));
	if (!ids || !values) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = e[i].id;
		values[i] = e[i].value;
		if (strlen(e[i].id) > max_id_len)
			max_id_len = strlen(e[i].id);
	}
	free(e);

	pthread_rwlock_wrlock(&fs->lock);
	old_ids = fs->ids;
	old_values = fs->values;
	old_n = fs->nids;
	fs->ids = ids;
	fs->values = values;
	fs->nids = n;
	fs->max_id_len = max_id_len;
	snprintf(fs->version, sizeof(fs->version), "%lld.%09ld", (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	pthread_rwlock_unlock(&fs->lock);
	entries_free(old_ids, old_values, old_n);
	return 0;
fail:
	free(ids);
	free(values);
	for (size_t i = 0; e && i < n; i++) {
		free(e[i].id);
		secret_unref(e[i].value);
	}
	free(e);
	json_decref(doc);
	return r;
}

static int file_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		     size_t reasonlen)
{
	struct file_store *fs;
	char *copy;
	int r;

	if (!*arg) {
		snprintf(reason, reasonlen, "source '%s': expected file:PATH", b->source);
		return -EINVAL;
	}
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->inotify_fd = -1;
	fs->stop_pipe[0] = fs->stop_pipe[1] = -1;
	pthread_rwlock_init(&fs->lock, NULL);
	/* Checked under the name given first, so that a refusal names it. */
	r = trusted_file_open(arg, "store", NULL, reason, reasonlen);
	if (r < 0)
		goto fail;
	close(r);
	/*
	 * The daemon changes directory to /, so keep an absolute path, but not a
	 * resolved one: a Kubernetes volume swaps its ..data link, and the store
	 * must follow the link it was given, not where it led at start.
	 */
	fs->real_wd = -1;
	if (arg[0] == '/') {
		fs->path = strdup(arg);
	} else {
		char *cwd = getcwd(NULL, 0);

		if (!cwd || asprintf(&fs->path, "%s/%s", cwd, arg) < 0)
			fs->path = NULL;
		free(cwd);
	}
	if (!fs->path) {
		r = -ENOMEM;
		goto fail;
	}
	copy = strdup(fs->path);
	fs->dir = copy ? strdup(dirname(copy)) : NULL;
	free(copy);
	copy = strdup(fs->path);
	fs->base = copy ? strdup(basename(copy)) : NULL;
	free(copy);
	if (!fs->dir || !fs->base) {
		r = -ENOMEM;
		goto fail;
	}
	b->priv = fs;
	r = load_store(fs, reason, reasonlen);
	if (r < 0) {
		b->priv = NULL;
		goto fail;
	}
	return 0;
fail:
	free(fs->path);
	free(fs->dir);
	free(fs->base);
	pthread_rwlock_destroy(&fs->lock);
	free(fs);
	return r;
}

/* (Re)points the second watch at the directory the path leads to now. */
static void watch_real(struct file_store *fs)
{
	char *real = realpath(fs->path, NULL), *copy;

	if (!real)
		return; /* gone for now: the next event in fs->dir tries again */
	copy = strdup(real);
	if (copy && (!fs->real_dir || !fs->real_base || strcmp(dirname(copy), fs->real_dir) != 0 ||
		     strcmp(basename(real), fs->real_base) != 0)) {
		if (fs->real_wd >= 0)
			inotify_rm_watch(fs->inotify_fd, fs->real_wd);
		free(fs->real_dir);
		free(fs->real_base);
		free(copy);
		copy = strdup(real);
		fs->real_dir = copy ? strdup(dirname(copy)) : NULL;
		free(copy);
		copy = NULL;
		fs->real_base = strdup(basename(real));
		fs->real_wd = -1;
		if (fs->real_dir && fs->real_base && strcmp(fs->real_dir, fs->dir) != 0)
			fs->real_wd = inotify_add_watch(fs->inotify_fd, fs->real_dir,
							IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
								IN_ATTRIB);
	}
	free(copy);
	free(real);
}

/* Watches the directory, so an editor's rename-over-the-file is seen too. */
static void *watch_thread(void *arg)
{
	struct backend *b = arg;
	struct file_store *fs = b->priv;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd pfd[2] = { { fs->inotify_fd, POLLIN, 0 },
					 { fs->stop_pipe[0], POLLIN, 0 } };
		bool ours = false;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(fs->inotify_fd, buf, sizeof(buf));
		if (n <= 0)
			continue;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			/*
			 * The file, a link swapped in the directory it was given in
			 * (a Kubernetes volume's "..data"), or the file where the
			 * link leads.
			 */
			if (ev->len &&
			    (strcmp(ev->name, fs->base) == 0 || strncmp(ev->name, "..", 2) == 0 ||
			     (ev->wd == fs->real_wd && fs->real_base &&
			      strcmp(ev->name, fs->real_base) == 0)))
				ours = true;
			p += sizeof(*ev) + ev->len;
		}
		if (ours) {
			char reason[BACKEND_REASON_MAX + 64];
			int r;

			/*
			 * A link swapped while the load checked or read the file
			 * (-EAGAIN) is a race with the writer, not a broken store:
			 * try again shortly, since no further event may come.
			 */
			for (int tries = 0;; tries++) {
				r = load_store(fs, reason, sizeof(reason));
				if (r != -EAGAIN || tries == RELOAD_RACE_TRIES)
					break;
				usleep(RELOAD_RACE_PAUSE_USEC);
			}
			if (r < 0) {
				size_t used = strlen(reason);

				snprintf(reason + used, sizeof(reason) - used,
					 "; keeping the last good content");
				if (b->events.error)
					b->events.error(b->events.ctx, reason);
			} else if (b->events.changed) {
				b->events.changed(b->events.ctx);
			}
			watch_real(fs);
		}
	}
	return NULL;
}

static int file_start(struct backend *b, char *reason, size_t reasonlen)
{
	struct file_store *fs = b->priv;
	int r;

	fs->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fs->inotify_fd < 0 || pipe2(fs->stop_pipe, O_CLOEXEC) < 0)
		goto fail;
	if (inotify_add_watch(fs->inotify_fd, fs->dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB) < 0)
		goto fail;
	watch_real(fs);
	r = pthread_create(&fs->thread, NULL, watch_thread, b);
	if (r != 0) {
		errno = r;
		goto fail;
	}
	fs->thread_started = true;
	return 0;
fail:
	r = -errno;
	snprintf(reason, reasonlen, "%s: cannot watch for changes: %s", fs->dir, strerror(errno));
	return r;
}

static void file_stop(struct backend *b)
{
	struct file_store *fs = b->priv;

	if (fs && fs->thread_started) {
		(void)!write(fs->stop_pipe[1], "x", 1);
		pthread_join(fs->thread, NULL);
		fs->thread_started = false;
	}
}

static void file_done(struct backend *b)
{
	struct file_store *fs = b->priv;

	if (!fs)
		return;
	file_stop(b);
	if (fs->inotify_fd >= 0)
		close(fs->inotify_fd);
	for (int i = 0; i < 2; i++)
		if (fs->stop_pipe[i] >= 0)
			close(fs->stop_pipe[i]);
	entries_free(fs->ids, fs->values, fs->nids);
	free(fs->path);
	free(fs->dir);
	free(fs->base);
	free(fs->real_dir);
	free(fs->real_base);
	pthread_rwlock_destroy(&fs->lock);
	free(fs);
	b->priv = NULL;
}

static int file_fetch(struct backend *b, const char *id, struct secret **ret_value,
		      struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct file_store *fs = b->priv;
	size_t lo = 0, hi;

	pthread_rwlock_rdlock(&fs->lock);
	hi = fs->nids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(fs->ids[mid], id);

		if (c == 0) {
			/* Secrets are immutable once made: the cache shares this one. */
			*ret_value = secret_ref(fs->values[mid]);
			memset(ret_info, 0, sizeof(*ret_info));
			snprintf(ret_info->version, sizeof(ret_info->version), "%s", fs->version);
			pthread_rwlock_unlock(&fs->lock);
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	pthread_rwlock_unlock(&fs->lock);
	snprintf(reason, reasonlen, "no secret '%s' in %s", id, fs->path);
	return -ENOENT;
}

/* The first of ids[lo, hi) (sorted) that is not below @key. */
static size_t lower_bound(const char *const *ids, size_t lo, size_t hi, const char *key)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(ids[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * One id for each child of folder @prefix, found in the sorted ids without
 * reading the rest of the store: the ids under "P/" are the range
 * ["P/", "P0") ('0' follows '/'), and a child folder C's own ids, the range
 * ["P/C/", "P/C0"), are skipped by a binary search.  So a listing costs its
 * children times log(store), not the store.  Called under the lock.
 */
static int children_of(struct file_store *fs, const char *prefix, const char ***ret, size_t *ret_n)
{
	size_t pl = strlen(prefix), lo = 0, hi = fs->nids, n = 0, cap = 0;
	_cleanup_free_ char *key = NULL;
	const char **c = NULL, **nc;

	/* "P/C0" is no longer than an id under P/C/; "P/" and "P0" fit in pl + 2. */
	key = malloc((fs->max_id_len > pl ? fs->max_id_len : pl) + 2);
	if (!key)
		return -ENOMEM;
	if (pl) {
		memcpy(key, prefix, pl);
		memcpy(key + pl, "/", 2);
		lo = lower_bound(fs->ids, 0, fs->nids, key);
		key[pl] = '0';
		hi = lower_bound(fs->ids, lo, fs->nids, key);
		pl++; /* and the '/' */
	}
	for (size_t i = lo; i < hi;) {
		const char *rest = fs->ids[i] + pl, *slash = strchr(rest, '/');

		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			nc = realloc(c, cap * sizeof(*c));
			if (!nc) {
				free(c);
				return -ENOMEM;
			}
			c = nc;
		}
		c[n++] = fs->ids[i];
		if (!slash) {
			i++;
			continue;
		}
		/* A folder: past every id under it. */
		memcpy(key, fs->ids[i], (size_t)(slash - fs->ids[i]));
		memcpy(key + (slash - fs->ids[i]), "0", 2);
		i = lower_bound(fs->ids, i + 1, hi, key);
	}
	*ret = c;
	*ret_n = n;
	return 0;
}

static int file_list(struct backend *b, const char *prefix, struct secret **ret_listing,
		     char *reason, size_t reasonlen)
{
	struct file_store *fs = b->priv;
	const char **c = NULL;
	size_t n = 0;
	int r;

	pthread_rwlock_rdlock(&fs->lock);
	r = children_of(fs, prefix, &c, &n);
	if (r >= 0)
		r = ns_listing_from_ids(c, n, prefix, ret_listing);
	pthread_rwlock_unlock(&fs->lock);
	free(c);
	if (r == -ENOENT)
		snprintf(reason, reasonlen, "no folder '%s' in %s", prefix, fs->path);
	return r;
}

/* For `secretfs ctl status`: which document, which version of it (its mtime). */
static int file_describe(struct backend *b, struct json_t *obj)
{
	struct file_store *fs = b->priv;
	json_t *auth = json_object();
	int r = 0;

	if (!auth)
		return -ENOMEM;
	r |= json_object_set_new(auth, "method", json_string("file permissions"));
	r |= json_object_set_new(auth, "state", json_string("ok"));
	r |= json_object_set_new(obj, "path", json_string(fs->path));
	pthread_rwlock_rdlock(&fs->lock);
	r |= json_object_set_new(obj, "version", json_string(fs->version));
	r |= json_object_set_new(obj, "secrets", json_integer((json_int_t)fs->nids));
	pthread_rwlock_unlock(&fs->lock);
	r |= json_object_set_new(obj, "auth", auth);
	return r ? -ENOMEM : 0;
}

const struct backend_ops file_backend_ops = {
	.scheme = "file",
	.init = file_init,
	.start = file_start,
	.stop = file_stop,
	.done = file_done,
	.fetch = file_fetch,
	.list = file_list,
	.describe = file_describe,
};
