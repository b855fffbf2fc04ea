/*
 * control.c - the admin control interface: a unix socket served by one
 * thread, and `secretfs ctl`, its client.
 *
 * The thread polls the listening socket and a stop pipe.  Each connection is
 * handled inline: the peer's credentials (SO_PEERCRED) are checked before a
 * byte is read, then one request line is read with a receive timeout, one
 * answer is written with a send timeout, and the connection is closed.  A
 * slow or silent client therefore holds the thread for a few seconds at most,
 * and nobody but an admin gets as far as the request parser.
 *
 * The answers hold counts, names, versions and reasons, never a value: the
 * cache is asked for values only to find out whether a path is a key of an
 * object secret, and those references are dropped at once.
 *
 * Tree paths and secret ids: with one source a tree path is the secret id,
 * except for a key file inside an object secret, whose secret is the parent
 * (docs/design.md section 2; the key wins on a clash, as in fs.c).  Flushing or
 * refreshing a folder covers what is cached under it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "secretfs/control.h"
#include "secretfs/log.h"
#include "secretfs/metrics.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define IO_TIMEOUT_SEC	   5	      /* per request, each way, in the daemon */
#define CLIENT_TIMEOUT_SEC 300	      /* a refresh of everything may take a while */
#define ANSWER_MAX	   (1u << 20) /* status and metrics are a few KiB */
#define CLIENT_ANSWER_MAX  (64u << 20)
#define FAILURES_SHOWN	   3
#define RUN_DIR		   "/run/secretfs"

struct control {
	struct control_params p;
	char *path; /* the socket's path */
	uid_t admin_uid;
	bool has_admin;
	int fd;
	int stop_pipe[2];
	dev_t dev; /* of the socket file we bound, so we unlink only ours */
	ino_t ino;
	pthread_t thread;
	bool thread_started;
	uint64_t start_usec;	 /* CLOCK_MONOTONIC */
	uint64_t start_realtime; /* CLOCK_REALTIME */
	uint64_t denied;	 /* refused peers; atomic */
	uint64_t requests;	 /* answered admin requests; atomic */
	bool stopping;		 /* control_stop() was called; atomic */
};

/* strerror() shares a buffer between threads; this is constant text. */
static const char *errno_desc(int e)
{
	const char *d = strerrordesc_np(e);

	return d ? d : "unknown error";
}

static const char *errno_name(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "EUNKNOWN";
}

/* ---- requests ---- */

static const struct {
	const char *name;
	enum control_command command;
	bool takes_path;
} commands[] = {
	{ "status", CONTROL_STATUS, false }, { "metrics", CONTROL_METRICS, false },
	{ "flush", CONTROL_FLUSH, true },    { "refresh", CONTROL_REFRESH, true },
	{ "reload", CONTROL_RELOAD, false },
};

int control_parse_request(char *line, size_t len, struct control_request *ret, char *err,
			  size_t errlen)
{
	char *arg, *end;
	size_t n;

	/* One line: a final "\n" or "\r\n" ends it; no other newline or NUL may appear. */
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\n', len) || memchr(line, '\0', len))
		return set_error(err, errlen, -EINVAL, "a request is one line of text");
	line[len] = '\0';
	if (len == 0)
		return set_error(err, errlen, -EINVAL, "empty request");

	n = strcspn(line, " ");
	arg = line[n] ? line + n + 1 : NULL;
	line[n] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].name, line) != 0)
			continue;
		if (arg && !commands[i].takes_path)
			return set_error(err, errlen, -EINVAL, "%s takes no argument", line);
		ret->command = commands[i].command;
		ret->arg = NULL;
		if (!arg)
			return 0;
		/* An empty path is a mistake (an unset variable), not "everything". */
		if (!*arg)
			return set_error(err, errlen, -EINVAL,
					 "empty path (for everything give no path, or /)");
		/* Relative to the mount root: "/prod/db/" is "prod/db", "/" the whole tree. */
		while (*arg == '/')
			arg++;
		end = arg + strlen(arg);
		while (end > arg && end[-1] == '/')
			*--end = '\0';
		if (*arg && !ns_id_is_safe(arg))
			return set_error(
				err, errlen, -EINVAL,
				"bad path: components must be non-empty and not '.' or '..'");
		ret->arg = *arg ? arg : NULL;
		return 0;
	}
	return set_error(
		err, errlen, -EINVAL,
		"unknown command '%.32s' (expected status, metrics, flush, refresh or reload)",
		line);
}

/* ---- the socket path ---- */

int control_socket_path(const char *setting, const char *mountpoint, char **ret, char *err,
			size_t errlen)
{
	struct sockaddr_un sa;
	const char *rt = getenv("RUNTIME_DIRECTORY");
	char *path = NULL;

	*ret = NULL;
	if (!setting || !*setting)
		return 0;
	if (strcmp(setting, "auto") == 0) {
		if (rt && *rt == '/') {
			/* systemd may list several directories, separated by ':'. */
			if (asprintf(&path, "%.*s/secretfs.sock", (int)strcspn(rt, ":"), rt) < 0)
				return set_error(err, errlen, -ENOMEM, "out of memory");
		} else {
			_cleanup_free_ char *copy = strdup(mountpoint ? mountpoint : "");
			char *base, *e;

			if (!copy)
				return set_error(err, errlen, -ENOMEM, "out of memory");
			e = copy + strlen(copy);
			while (e > copy && e[-1] == '/')
				*--e = '\0';
			base = strrchr(copy, '/');
			base = base ? base + 1 : copy;
			if (!*base || !ns_name_is_safe(base, strlen(base)))
				return set_error(err, errlen, -EINVAL,
						 "control=auto: cannot name a socket after the "
						 "mountpoint '%s'; give a path",
						 mountpoint ? mountpoint : "");
			if (mkdir(RUN_DIR, 0755) < 0 && errno != EEXIST)
				return set_error(err, errlen, -errno, "control=auto: %s: %s",
						 RUN_DIR, errno_desc(errno));
			if (asprintf(&path, RUN_DIR "/%s.sock", base) < 0)
				return set_error(err, errlen, -ENOMEM, "out of memory");
		}
	} else if (setting[0] == '/') {
		path = strdup(setting);
		if (!path)
			return set_error(err, errlen, -ENOMEM, "out of memory");
	} else {
		return set_error(err, errlen, -EINVAL,
				 "control: expected an absolute socket path or auto");
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		set_error(
			err, errlen, -ENAMETOOLONG,
			"control socket %s: longer than the %zu bytes a unix socket path may have",
			path, sizeof(sa.sun_path) - 1);
		free(path);
		return -ENAMETOOLONG;
	}
	*ret = path;
	return 0;
}

/* ---- the admin ---- */

/* The uid and primary gid of a user, by name or (with @name NULL) by uid. */
static int passwd_lookup(const char *name, uid_t uid, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd pw;
	char *buf;
	int r;

	r = user_lookup(name, uid, &pw, &buf);
	if (r < 0)
		return r;
	*ret_uid = pw.pw_uid;
	*ret_gid = pw.pw_gid;
	free(buf);
	return 0;
}

/*
 * The admin's uid, and whether the socket must be opened to its primary
 * group: another user cannot connect to a 0600 socket of ours.
 */
static int resolve_admin(struct control *c, const char *admin, gid_t *ret_gid, bool *ret_group,
			 char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid = 0;
	uint64_t v;
	int r;

	*ret_group = false;
	if (!admin || !*admin)
		return 0;
	if (admin[strspn(admin, "0123456789")] == '\0') {
		if (parse_uint(admin, UINT32_MAX - 1, &v) < 0)
			return set_error(err, errlen, -EINVAL, "control_admin: bad uid '%.32s'",
					 admin);
		uid = (uid_t)v;
		r = passwd_lookup(NULL, uid, &uid, &gid);
		if (r < 0 && r != -ENOENT)
			return set_error(err, errlen, r, "control_admin: cannot look up uid %u: %s",
					 (unsigned)uid, errno_desc(-r));
		if (r == -ENOENT && uid != 0 && uid != geteuid())
			return set_error(
				err, errlen, -EINVAL,
				"control_admin: uid %u has no passwd entry, so the control "
				"socket cannot be opened to its group",
				(unsigned)uid);
	} else {
		r = passwd_lookup(admin, 0, &uid, &gid);
		if (r == -ENOENT)
			return set_error(err, errlen, -EINVAL,
					 "control_admin: unknown user '%.64s'", admin);
		if (r < 0)
			return set_error(err, errlen, r,
					 "control_admin: cannot look up user '%.64s': %s", admin,
					 errno_desc(-r));
	}
	c->admin_uid = uid;
	c->has_admin = true;
	*ret_gid = gid;
	*ret_group = uid != 0 && uid != geteuid();
	return 0;
}

static bool peer_is_admin(const struct control *c, uid_t uid)
{
	return uid == 0 || uid == geteuid() || (c->has_admin && uid == c->admin_uid);
}

/* ---- the socket ---- */

static int socket_create(struct control *c, bool group_access, gid_t group, char *err,
			 size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, probe, r;

	memcpy(sa.sun_path, c->path, strlen(c->path) + 1); /* checked by control_socket_path */
	if (lstat(c->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return set_error(err, errlen, -EEXIST,
					 "control socket %s: exists and is not a socket; not "
					 "replacing it",
					 c->path);
		/* A live daemon accepts; a socket nobody serves any more refuses. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return set_error(err, errlen, -errno, "socket: %s", errno_desc(errno));
		r = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		close(probe);
		if (r == 0)
			return set_error(err, errlen, -EADDRINUSE,
					 "control socket %s: another process is serving it",
					 c->path);
		if (unlink(c->path) < 0 && errno != ENOENT)
			return set_error(err, errlen, -errno,
					 "control socket %s: cannot remove the "
					 "stale socket: %s",
					 c->path, errno_desc(errno));
	} else if (errno != ENOENT) {
		return set_error(err, errlen, -errno, "control socket %s: %s", c->path,
				 errno_desc(errno));
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return set_error(err, errlen, -errno, "socket: %s", errno_desc(errno));
	/*
	 * The mode comes from the umask at bind(); it is process-wide, so for
	 * this moment other threads create files more strictly, never less.
	 */
	old = umask(group_access ? 0117 : 0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		close(fd);
		return set_error(err, errlen, r, "control socket %s: bind: %s", c->path,
				 errno_desc(-r));
	}
	if ((group_access && lchown(c->path, (uid_t)-1, group) < 0) || lstat(c->path, &st) < 0 ||
	    listen(fd, 16) < 0) {
		r = -errno;
		unlink(c->path);
		close(fd);
		return set_error(err, errlen, r, "control socket %s: %s%s", c->path,
				 group_access ? "cannot give it the admin's group: " : "",
				 errno_desc(-r));
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->fd = fd;
	return 0;
}

static void socket_remove(struct control *c)
{
	struct stat st;

	/* Only the socket we bound: another daemon may have replaced a stale one. */
	if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == c->dev &&
	    st.st_ino == c->ino)
		unlink(c->path);
}

/* ---- answers ---- */

static int json_set_u64(json_t *o, const char *key, uint64_t v)
{
	return json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* A string that may not be UTF-8 (a path): JSON null rather than a failed status. */
static json_t *json_text(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;

	return j ? j : json_null();
}

static json_t *cache_stats_json(const struct cache_stats *st)
{
	json_t *o = json_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= json_set_u64(o, "entries", st->entries);
	r |= json_set_u64(o, "bytes", st->bytes);
	r |= json_set_u64(o, "hits", st->hits);
	r |= json_set_u64(o, "misses", st->misses);
	r |= json_set_u64(o, "stale_served", st->stale_served);
	r |= json_set_u64(o, "negative_hits", st->negative_hits);
	r |= json_set_u64(o, "fetches", st->fetches);
	r |= json_set_u64(o, "errors", st->fetch_errors);
	r |= json_set_u64(o, "evictions", st->evictions);
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void stats_add(struct cache_stats *sum, const struct cache_stats *st)
{
	sum->hits += st->hits;
	sum->misses += st->misses;
	sum->stale_served += st->stale_served;
	sum->negative_hits += st->negative_hits;
	sum->fetches += st->fetches;
	sum->fetch_errors += st->fetch_errors;
	sum->evictions += st->evictions;
	sum->entries += st->entries;
	sum->bytes += st->bytes;
}

/* {"ok": N, "ENOENT": M, ..., "duration_seconds_sum": S} */
static json_t *op_json(const struct source_op_metrics *m)
{
	struct metrics_histogram_snapshot hs;
	json_t *o = json_object();
	int r = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < METRICS_ERRNO_SLOTS; i++) {
		uint64_t n = metrics_errno_get(&m->outcomes, i);

		if (n || i == 0)
			r |= json_set_u64(o, metrics_errno_slot_name(i), n);
	}
	metrics_histogram_read(&m->duration, &hs);
	r |= json_object_set_new(o, "duration_seconds_sum",
				 json_real((double)hs.sum_usec / USEC_PER_SEC));
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The stores behind the mount: the one source, or each of several. */
static struct source *const *leaves_of(struct source *const *root, size_t *ret_n)
{
	if (!(*root)->children) {
		*ret_n = 1;
		return root;
	}
	*ret_n = (*root)->nchildren;
	return (*root)->children;
}

static int source_json(struct source *s, struct cache_stats *total, json_t **ret)
{
	struct backend *b = source_backend(s);
	struct cache_stats vs, ls = { 0 };
	json_t *o = json_object(), *req = json_object();
	int r = 0;

	if (!o || !req) {
		json_decref(o);
		json_decref(req);
		return -ENOMEM;
	}
	r |= json_object_set_new(o, "source", json_text(s->uri));
	if (s->name) {
		r |= json_object_set_new(o, "name", json_text(s->name));
		r |= json_object_set_new(o, "prefix", json_text(s->prefix));
		r |= json_object_set_new(o, "optional", json_boolean(s->optional));
	}
	r |= json_object_set_new(o, "state", json_string(b ? "up" : "down"));
	if (!b) {
		/* An optional source that failed at start: why, and when it is tried again. */
		r |= json_object_set_new(o, "error", json_text(s->down_reason));
	} else {
		r |= json_object_set_new(o, "backend", json_string(b->ops->scheme));
		/* Where the store is and how it authenticates, in the backend's words. */
		if (b->ops->describe && b->ops->describe(b, o) < 0)
			r |= json_object_set_new(o, "describe_error", json_string("out of memory"));
	}

	cache_get_stats(s->values, &vs);
	stats_add(total, &vs);
	r |= json_object_set_new(o, "cache", cache_stats_json(&vs));
	if (s->listings) {
		cache_get_stats(s->listings, &ls);
		stats_add(total, &ls);
		r |= json_object_set_new(o, "listings", cache_stats_json(&ls));
	} else {
		r |= json_object_set_new(o, "listings", json_null());
	}
	r |= json_object_set_new(req, "fetch", op_json(&s->fetch_metrics));
	if (s->listings)
		r |= json_object_set_new(req, "list", op_json(&s->list_metrics));
	r |= json_object_set_new(o, "backend_requests", req);
	if (r) {
		json_decref(o);
		return -ENOMEM;
	}
	*ret = o;
	return 0;
}

/* json_dump_callback() straight into the answer: no copy from jansson's allocator. */
static int dump_to_buf(const char *buf, size_t size, void *data)
{
	struct metrics_buf *out = data;

	metrics_buf_append(out, buf, size);
	return out->overflow ? -1 : 0;
}

static void answer_status(struct control *c, struct metrics_buf *out)
{
	struct cache_stats total = { 0 };
	struct fs_stats fst = { 0 };
	struct auditlog_stats ast = { 0 };
	json_t *root = json_object(), *sources = json_array(), *src = NULL, *o;
	struct source *const *leaves;
	size_t nleaves;
	char started[32] = "";
	int r = 0;

	if (!root || !sources)
		goto fail;
	if (c->p.fs)
		fs_get_stats(c->p.fs, &fst);
	if (c->p.audit)
		auditlog_get_stats(c->p.audit, &ast);
	format_rfc3339(c->start_realtime, started, sizeof(started));

	r |= json_object_set_new(root, "version", json_string(SECRETFS_VERSION));
	r |= json_object_set_new(root, "pid", json_integer(getpid()));
	r |= json_object_set_new(root, "mountpoint", json_text(c->p.mountpoint));
	r |= json_object_set_new(root, "started", json_string(started));
	r |= json_object_set_new(root, "uptime_seconds",
				 json_real((double)(now_usec() - c->start_usec) / USEC_PER_SEC));
	leaves = leaves_of(&c->p.source, &nleaves);
	for (size_t i = 0; i < nleaves; i++)
		if (source_json(leaves[i], &total, &src) < 0 ||
		    json_array_append_new(sources, src) < 0)
			goto fail;
	r |= json_object_set(root, "sources", sources);
	r |= json_object_set_new(root, "cache", cache_stats_json(&total));

	o = json_object();
	r |= json_object_set_new(root, "access", o);
	r |= json_object_set_new(o, "policy", json_text(c->p.policy_path));
	r |= json_set_u64(o, "denied", fst.access_denied);
	r |= json_set_u64(o, "open_handles", fst.handles_open);
	r |= json_set_u64(o, "handles_refused", fst.handles_refused);
	o = json_object();
	r |= json_object_set_new(root, "audit", o);
	r |= json_object_set_new(o, "enabled", json_boolean(c->p.audit != NULL));
	r |= json_set_u64(o, "records", ast.records);
	r |= json_set_u64(o, "write_errors", ast.write_errors);
	o = json_object();
	r |= json_object_set_new(root, "control", o);
	r |= json_object_set_new(o, "socket", json_text(c->path));
	r |= json_set_u64(o, "denied", __atomic_load_n(&c->denied, __ATOMIC_RELAXED));
	r |= json_set_u64(o, "requests", __atomic_load_n(&c->requests, __ATOMIC_RELAXED));
	if (r || json_dump_callback(root, dump_to_buf, out,
				    JSON_INDENT(2) | JSON_REAL_PRECISION(10)) < 0)
		goto fail;
	metrics_buf_append(out, "\n", 1);
	json_decref(sources);
	json_decref(root);
	return;
fail:
	json_decref(sources);
	json_decref(root);
	out->len = 0;
	out->overflow = false;
	metrics_buf_printf(out, "error: out of memory\n");
}

enum cache_field {
	FIELD_HITS,
	FIELD_MISSES,
	FIELD_STALE,
	FIELD_NEGATIVE,
	FIELD_ERRORS,
	FIELD_EVICTIONS,
	FIELD_ENTRIES,
	FIELD_BYTES,
};

static uint64_t cache_field(const struct cache_stats *st, enum cache_field f)
{
	switch (f) {
	case FIELD_HITS:
		return st->hits;
	case FIELD_MISSES:
		return st->misses;
	case FIELD_STALE:
		return st->stale_served;
	case FIELD_NEGATIVE:
		return st->negative_hits;
	case FIELD_ERRORS:
		return st->fetch_errors;
	case FIELD_EVICTIONS:
		return st->evictions;
	case FIELD_ENTRIES:
		return st->entries;
	case FIELD_BYTES:
		return st->bytes;
	}
	return 0;
}

/* The cache families, one sample per cache of each source (values, listings). */
static void cache_metrics(struct metrics_buf *out, struct source *const *leaves, size_t n)
{
	static const struct {
		const char *name, *type, *help;
		enum cache_field field;
	} families[] = {
		{ "secretfs_cache_hits_total", "counter",
		  "Lookups answered from memory with a fresh entry.", FIELD_HITS },
		{ "secretfs_cache_misses_total", "counter",
		  "Lookups that needed a fetch from the store.", FIELD_MISSES },
		{ "secretfs_stale_served_total", "counter",
		  "Expired entries served because the store failed transiently or was late.",
		  FIELD_STALE },
		{ "secretfs_cache_negative_hits_total", "counter",
		  "Lookups answered by a remembered \"not found\".", FIELD_NEGATIVE },
		{ "secretfs_cache_fetch_errors_total", "counter",
		  "Fetches that failed with an error other than \"not found\".", FIELD_ERRORS },
		{ "secretfs_cache_evictions_total", "counter",
		  "Entries dropped to stay within the entry and byte bounds.", FIELD_EVICTIONS },
		{ "secretfs_cache_entries", "gauge", "Entries held.", FIELD_ENTRIES },
		{ "secretfs_cache_bytes", "gauge", "Bytes held: values, or the names of listings.",
		  FIELD_BYTES },
	};
	const char *kinds[2] = { "values", "listings" };

	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		metrics_family(out, families[f].name, families[f].type, families[f].help);
		for (size_t j = 0; j < n; j++) {
			struct source *s = leaves[j];
			struct cache_stats st[2] = { { 0 }, { 0 } };

			cache_get_stats(s->values, &st[0]);
			if (s->listings)
				cache_get_stats(s->listings, &st[1]);
			for (size_t i = 0; i < (s->listings ? 2 : 1); i++) {
				struct metrics_label l[] = { { "source", source_label(s) },
							     { "cache", kinds[i] } };

				metrics_sample_u64(out, families[f].name, l, ARRAY_SIZE(l),
						   cache_field(&st[i], families[f].field));
			}
		}
	}
}

/* Each source's calls into its store: counts by outcome, durations, malformed answers. */
static void backend_metrics(struct metrics_buf *out, struct source *const *leaves, size_t n)
{
	static const char *const op_names[2] = { "fetch", "list" };

	metrics_family(out, "secretfs_backend_requests_total", "counter",
		       "Calls into the store by operation and outcome (ok or the errno name).");
	for (size_t j = 0; j < n; j++) {
		struct source *s = leaves[j];
		const struct source_op_metrics *ops[2] = { &s->fetch_metrics, &s->list_metrics };

		for (size_t i = 0; i < (s->listings ? 2 : 1); i++) {
			for (size_t slot = 0; slot < METRICS_ERRNO_SLOTS; slot++) {
				uint64_t v = metrics_errno_get(&ops[i]->outcomes, slot);
				struct metrics_label l[] = { { "source", source_label(s) },
							     { "op", op_names[i] },
							     { "code",
							       metrics_errno_slot_name(slot) } };

				/* ok always, so a rate() has a series from the start. */
				if (v || slot == 0)
					metrics_sample_u64(out, "secretfs_backend_requests_total",
							   l, ARRAY_SIZE(l), v);
			}
		}
	}
	metrics_family(out, "secretfs_backend_request_duration_seconds", "histogram",
		       "How long calls into the store took.");
	for (size_t j = 0; j < n; j++) {
		struct source *s = leaves[j];
		const struct source_op_metrics *ops[2] = { &s->fetch_metrics, &s->list_metrics };

		for (size_t i = 0; i < (s->listings ? 2 : 1); i++) {
			struct metrics_label l[] = { { "source", source_label(s) },
						     { "op", op_names[i] } };

			metrics_histogram_write(out, "secretfs_backend_request_duration_seconds", l,
						ARRAY_SIZE(l), &ops[i]->duration);
		}
	}
	metrics_family(out, "secretfs_backend_malformed_total", "counter",
		       "Answers from the store whose body was malformed (a proxy or the store is "
		       "broken); cached values are served stale over them.");
	for (size_t j = 0; j < n; j++)
		metrics_sample_u64(
			out, "secretfs_backend_malformed_total",
			(struct metrics_label[]){ { "source", source_label(leaves[j]) } }, 1,
			__atomic_load_n(&leaves[j]->malformed, __ATOMIC_RELAXED));
	metrics_family(out, "secretfs_source_up", "gauge",
		       "1 while the source's store is open; 0 while an optional one is down.");
	for (size_t j = 0; j < n; j++)
		metrics_sample_u64(
			out, "secretfs_source_up",
			(struct metrics_label[]){ { "source", source_label(leaves[j]) } }, 1,
			source_backend(leaves[j]) != NULL);
}

static void answer_metrics(struct control *c, struct metrics_buf *out)
{
	struct fs_stats fst = { 0 };
	struct auditlog_stats ast = { 0 };
	size_t n;
	struct source *const *leaves = leaves_of(&c->p.source, &n);

	if (c->p.fs)
		fs_get_stats(c->p.fs, &fst);
	if (c->p.audit)
		auditlog_get_stats(c->p.audit, &ast);

	metrics_family(out, "secretfs_build_info", "gauge",
		       "The secretfs version that is running (always 1).");
	metrics_sample_u64(out, "secretfs_build_info",
			   (struct metrics_label[]){ { "version", SECRETFS_VERSION } }, 1, 1);
	metrics_family(out, "secretfs_uptime_seconds", "gauge",
		       "Seconds since the mount was served.");
	metrics_sample_double(out, "secretfs_uptime_seconds", NULL, 0,
			      (double)(now_usec() - c->start_usec) / USEC_PER_SEC);

	cache_metrics(out, leaves, n);
	backend_metrics(out, leaves, n);

	metrics_family(out, "secretfs_access_denied_total", "counter",
		       "Opens, listings and access checks the policy refused.");
	metrics_sample_u64(out, "secretfs_access_denied_total", NULL, 0, fst.access_denied);
	metrics_family(out, "secretfs_open_handles", "gauge",
		       "Open files and directories, all readers together.");
	metrics_sample_u64(out, "secretfs_open_handles", NULL, 0, fst.handles_open);
	metrics_family(out, "secretfs_handles_refused_total", "counter",
		       "Opens refused with EMFILE: the reader's uid was at max_handles_per_uid.");
	metrics_sample_u64(out, "secretfs_handles_refused_total", NULL, 0, fst.handles_refused);
	metrics_family(out, "secretfs_audit_records_total", "counter", "Audit records written.");
	metrics_sample_u64(out, "secretfs_audit_records_total", NULL, 0, ast.records);
	metrics_family(out, "secretfs_audit_write_errors_total", "counter",
		       "Audit records that could not be written.");
	metrics_sample_u64(out, "secretfs_audit_write_errors_total", NULL, 0, ast.write_errors);
	metrics_family(out, "secretfs_control_denied_total", "counter",
		       "Connections to the control socket refused: the peer is not an admin.");
	metrics_sample_u64(out, "secretfs_control_denied_total", NULL, 0,
			   __atomic_load_n(&c->denied, __ATOMIC_RELAXED));
	metrics_family(out, "secretfs_control_requests_total", "counter",
		       "Requests from admins answered on the control socket.");
	metrics_sample_u64(out, "secretfs_control_requests_total", NULL, 0,
			   __atomic_load_n(&c->requests, __ATOMIC_RELAXED));
}

/* ---- flush and refresh ---- */

static bool under(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(key, prefix, n) == 0 && (key[n] == '\0' || key[n] == '/');
}

/*
 * For a tree path PARENT/NAME: whether PARENT is an object secret with the
 * key NAME, as far as the cache knows.  *ret_known says whether the cache
 * holds PARENT at all.
 */
static bool parent_holds_key(struct source *s, const char *path, char *parent, size_t len,
			     bool *ret_known)
{
	const char *slash = strrchr(path, '/');
	struct secret_entry e;
	struct secret *v;
	bool found;

	*ret_known = false;
	if (!slash || (size_t)(slash - path) >= len)
		return false;
	memcpy(parent, path, (size_t)(slash - path));
	parent[slash - path] = '\0';
	v = cache_peek(s->values, parent);
	if (!v)
		return false;
	*ret_known = true;
	found = v->kind == SECRET_TABLE && secret_table_find(v, slash + 1, &e);
	secret_unref(v); /* only the key's presence was needed */
	return found;
}

/* Drops the cached entries of @c whose key is @prefix or under it; how many. */
static size_t flush_under(struct cache *c, const char *prefix)
{
	char **keys = NULL;
	size_t n = 0, dropped = 0;

	if (!c || cache_keys(c, &keys, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (under(keys[i], prefix)) {
			cache_flush(c, keys[i]);
			dropped++;
		}
		free(keys[i]);
	}
	free(keys);
	return dropped;
}

static void answer_flush(struct control *c, const char *path, uid_t uid, struct metrics_buf *out)
{
	struct source *s = c->p.source;
	struct cache_stats vs, ls = { 0 };
	char parent[CONTROL_REQUEST_MAX];
	size_t nv, nl, nver;
	bool known;

	if (!path) {
		cache_get_stats(s->values, &vs);
		if (s->listings)
			cache_get_stats(s->listings, &ls);
		source_flush(s);
		log_info("control: uid %u flushed every cached value", (unsigned)uid);
		metrics_buf_printf(out, "ok flushed everything: %zu entries, %zu listings\n",
				   vs.entries, ls.entries);
		return;
	}
	/* Named versions too: a version destroyed in the store goes from memory with it. */
	nver = source_flush_versions(s, path);
	if (parent_holds_key(s, path, parent, sizeof(parent), &known)) {
		cache_flush(s->values, parent);
		log_info("control: uid %u flushed %s", (unsigned)uid, parent);
		metrics_buf_printf(out, "ok flushed %s (the secret that holds %s)", parent, path);
		if (nver)
			metrics_buf_printf(out, ", %zu versions", nver);
		metrics_buf_printf(out, "\n");
		return;
	}
	nv = flush_under(s->values, path);
	nl = flush_under(s->listings, path);
	log_info("control: uid %u flushed %s", (unsigned)uid, path);
	if (nv + nl + nver == 0)
		metrics_buf_printf(out, "ok nothing cached for %s\n", path);
	else if (nver == 0)
		metrics_buf_printf(out, "ok flushed %s: %zu entries, %zu listings\n", path, nv, nl);
	else
		metrics_buf_printf(out, "ok flushed %s: %zu entries, %zu listings, %zu versions\n",
				   path, nv, nl, nver);
}

/*
 * Fetches @id again now.  Returns 0 with @version set, or a negative errno
 * with @reason set; a stale serve (the store failed transiently) is a failure.
 */
/*
 * Expires @key in @cache and fetches it again now; @what ("value",
 * "listing") names what is still served when the store fails transiently
 * (-EAGAIN).  On success *ret holds the new answer (the caller drops its
 * value); on failure @reason says why.
 */
static int refetch(struct cache *cache, const char *key, const char *what, struct cache_result *ret,
		   char *reason, size_t reasonlen)
{
	int r;

	reason[0] = '\0';
	cache_invalidate(cache, key);
	r = cache_get(cache, key, ret, reason, reasonlen);
	if (r < 0) {
		if (!reason[0])
			snprintf(reason, reasonlen, "%s", errno_desc(-r));
		return r;
	}
	if (ret->state == CACHE_STALE) {
		size_t used = strnlen(reason, reasonlen - 1);

		secret_unref(ret->value);
		snprintf(reason + used, reasonlen - used, "%sstill serving the previous %s",
			 used ? "; " : "", what);
		return -EAGAIN;
	}
	return 0;
}

static int refresh_one(struct source *s, const char *id, char *reason, size_t reasonlen,
		       char *version, size_t versionlen)
{
	struct cache_result cr;
	int r = refetch(s->values, id, "value", &cr, reason, reasonlen);

	if (r < 0)
		return r;
	secret_unref(cr.value);
	snprintf(version, versionlen, "%s", cr.version);
	return 0;
}

static void refreshed(const char *id, const char *asked, const char *version,
		      struct metrics_buf *out)
{
	metrics_buf_printf(out, "ok refreshed %s", id);
	if (asked)
		metrics_buf_printf(out, " (the secret that holds %s)", asked);
	if (version[0])
		metrics_buf_printf(out, " version %s", version);
	metrics_buf_printf(out, "\n");
}

/* One secret: @id, which holds the key file @asked when that is not NULL. */
static void refresh_single(struct source *s, const char *id, const char *asked,
			   struct metrics_buf *out)
{
	char reason[BACKEND_REASON_MAX], version[BACKEND_VERSION_MAX];
	int r = refresh_one(s, id, reason, sizeof(reason), version, sizeof(version));

	if (r < 0)
		metrics_buf_printf(out, "error: refresh %s: %s (%s)\n", id, reason, errno_name(-r));
	else
		refreshed(id, asked, version, out);
}

/* What refresh_values() did: counts and the first few failures. */
struct refresh_tally {
	size_t ok, failed;
	struct metrics_buf failures;
};

/*
 * Refetches every cached value under @prefix (all of them when NULL), @skip
 * aside (a secret refreshed on its own).
 */
static void refresh_values(struct control *c, const char *prefix, const char *skip,
			   struct refresh_tally *t)
{
	struct source *s = c->p.source;
	char reason[BACKEND_REASON_MAX], version[BACKEND_VERSION_MAX];
	size_t n = 0;
	struct secret *v;
	char **keys;
	int r;

	metrics_buf_init(&t->failures, 4096);
	if (cache_keys(s->values, &keys, &n) < 0) {
		t->failed++;
		metrics_buf_printf(&t->failures, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* Values (a remembered "not found" just expires) under @prefix. */
		v = (!prefix || under(keys[i], prefix)) && !(skip && strcmp(keys[i], skip) == 0)
			    ? cache_peek(s->values, keys[i])
			    : NULL;
		if (v) {
			secret_unref(v);
			/* A shutdown does not wait for the rest. */
			if (__atomic_load_n(&c->stopping, __ATOMIC_RELAXED)) {
				r = -ECANCELED;
				snprintf(reason, sizeof(reason), "shutting down");
			} else {
				r = refresh_one(s, keys[i], reason, sizeof(reason), version,
						sizeof(version));
			}
			if (r >= 0)
				t->ok++;
			else if (t->failed++ < FAILURES_SHOWN)
				metrics_buf_printf(&t->failures, "%s%s: %s (%s)",
						   t->failed > 1 ? "; " : "", keys[i], reason,
						   errno_name(-r));
		}
		free(keys[i]);
	}
	free(keys);
}

/* "error: ..." for failures in @t; returns whether there were any. */
static bool tally_failed(struct refresh_tally *t, const char *prefix, struct metrics_buf *out)
{
	if (!t->failed)
		return false;
	metrics_buf_printf(out, "error: refreshed %zu of %zu secrets%s%s; failed: %s%s\n", t->ok,
			   t->ok + t->failed, prefix ? " under " : "", prefix ? prefix : "",
			   t->failures.data ? t->failures.data : "",
			   t->failed > FAILURES_SHOWN ? "; ..." : "");
	return true;
}

/* Every cached value; listings are dropped, fetched on their next use. */
static void refresh_everything(struct control *c, struct metrics_buf *out)
{
	struct source *s = c->p.source;
	struct refresh_tally t = { 0 };

	if (s->listings)
		cache_flush(s->listings, NULL);
	refresh_values(c, NULL, NULL, &t);
	if (!tally_failed(&t, NULL, out))
		metrics_buf_printf(out, "ok refreshed %zu secrets\n", t.ok);
	metrics_buf_done(&t.failures);
}

/*
 * Fetches the listing of the folder @path again now, as refresh_one() does
 * a value.  Returns 0 with its number of entries, or a negative errno with
 * @reason set (-ENOSYS: the store cannot list).
 */
static int refresh_listing(struct source *s, const char *path, size_t *ret_entries, char *reason,
			   size_t reasonlen)
{
	struct cache_result cr;
	int r;

	if (!s->listings) {
		snprintf(reason, reasonlen, "the store cannot list folders");
		return -ENOSYS;
	}
	r = refetch(s->listings, path, "listing", &cr, reason, reasonlen);
	if (r < 0)
		return r;
	*ret_entries = cr.value->kind == SECRET_TABLE ? secret_table_count(cr.value) : 0;
	secret_unref(cr.value);
	return 0;
}

static bool listing_cached(struct source *s, const char *path)
{
	struct secret *v = s->listings ? cache_peek(s->listings, path) : NULL;

	secret_unref(v);
	return v != NULL;
}

static bool has_values_under(struct source *s, const char *prefix)
{
	char **keys = NULL;
	size_t n = 0;
	bool found = false;

	if (cache_keys(s->values, &keys, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		found |= under(keys[i], prefix) && strcmp(keys[i], prefix) != 0;
		free(keys[i]);
	}
	free(keys);
	return found;
}

/*
 * @path as a folder: its listing fetched again now, and every value cached
 * under it.  @secret_version is set when @path is also a secret, refreshed
 * just before (its line is then "ok refreshed PATH version V; ...").
 * Returns the listing's error, which is answered unless @quiet.
 */
static int refresh_folder(struct control *c, const char *path, const char *secret_version,
			  bool quiet, struct metrics_buf *out)
{
	char reason[BACKEND_REASON_MAX];
	struct refresh_tally t = { 0 };
	size_t entries = 0;
	int r;

	r = refresh_listing(c->p.source, path, &entries, reason, sizeof(reason));
	if (r < 0) {
		if (!quiet)
			metrics_buf_printf(out, "error: refresh %s: %s (%s)\n", path, reason,
					   errno_name(-r));
		return r;
	}
	refresh_values(c, path, path, &t);
	if (!tally_failed(&t, path, out)) {
		if (secret_version)
			metrics_buf_printf(out, "ok refreshed %s%s%s; a listing of %zu %s", path,
					   secret_version[0] ? " version " : "", secret_version,
					   entries, entries == 1 ? "entry" : "entries");
		else
			metrics_buf_printf(out, "ok refreshed %s: a listing of %zu %s", path,
					   entries, entries == 1 ? "entry" : "entries");
		if (!secret_version || t.ok)
			metrics_buf_printf(out, ", %zu %s", t.ok, t.ok == 1 ? "secret" : "secrets");
		metrics_buf_printf(out, "\n");
	}
	metrics_buf_done(&t.failures);
	return 0;
}

/*
 * A key file: its secret.  A secret: fetched again; if it is also a folder
 * we hold a listing of, that too.  A folder (what no fetch finds, or what
 * we hold a listing or values under): its listing and what is cached under it.
 */
static void answer_refresh(struct control *c, const char *path, uid_t uid, struct metrics_buf *out)
{
	char parent[CONTROL_REQUEST_MAX], reason[BACKEND_REASON_MAX];
	char version[BACKEND_VERSION_MAX];
	struct source *s = c->p.source;
	struct secret *v;
	bool known, folder;
	int r;

	log_info("control: uid %u refreshes %s", (unsigned)uid, path ? path : "everything cached");
	source_revalidate(s);
	if (!path) {
		refresh_everything(c, out);
		return;
	}
	if (parent_holds_key(s, path, parent, sizeof(parent), &known)) {
		refresh_single(s, parent, path, out);
		return;
	}
	folder = listing_cached(s, path) || has_values_under(s, path);
	v = cache_peek(s->values, path);
	secret_unref(v);
	if (!v && folder) {
		refresh_folder(c, path, NULL, false, out);
		return;
	}
	/* The secret at @path, or else the object secret holding it, or else a folder. */
	r = refresh_one(s, path, reason, sizeof(reason), version, sizeof(version));
	if (r >= 0) {
		if (folder)
			refresh_folder(c, path, version, false, out);
		else
			refreshed(path, NULL, version, out);
		return;
	}
	if (r == -ENOENT && !known && strchr(path, '/')) {
		char preason[BACKEND_REASON_MAX], pversion[BACKEND_VERSION_MAX];

		if (refresh_one(s, parent, preason, sizeof(preason), pversion, sizeof(pversion)) >=
			    0 &&
		    parent_holds_key(s, path, parent, sizeof(parent), &known)) {
			refreshed(parent, path, pversion, out);
			return;
		}
	}
	/* Not a secret: a folder, if the store lists one there (else the fetch's error). */
	if (r == -ENOENT && refresh_folder(c, path, NULL, true, out) >= 0)
		return;
	metrics_buf_printf(out, "error: refresh %s: %s (%s)\n", path, reason, errno_name(-r));
}

typedef void answer_fn(struct control *c, const char *path, uid_t uid, struct metrics_buf *out);

/*
 * One source's answer, named: "ok [db] ..." or "error: [db] ...", without
 * its newline, appended to @out.
 */
static void answer_named(struct control *c, struct source *leaf, answer_fn *fn, const char *rest,
			 uid_t uid, struct metrics_buf *out)
{
	struct control sub = *c; /* only its parameters are read */
	struct metrics_buf one;
	const char *t;
	bool err;

	metrics_buf_init(&one, ANSWER_MAX);
	sub.p.source = leaf;
	if (!source_backend(leaf))
		metrics_buf_printf(&one, "error: the source is down: %s\n", leaf->down_reason);
	else
		fn(&sub, rest, uid, &one);
	t = one.data ? one.data : "error: out of memory";
	err = strncmp(t, "error: ", 7) == 0;
	t += err ? 7 : strncmp(t, "ok ", 3) == 0 ? 3 : 0;
	metrics_buf_printf(out, "%s[%s] %.*s", err ? "error: " : "ok ", leaf->name,
			   (int)strcspn(t, "\n"), t);
	metrics_buf_done(&one);
}

/*
 * flush and refresh with several stores: a path is its source's, without
 * the prefix; the prefix alone, or no path, is the whole source, or every
 * source (one line: "ok [db] ...; [app] ...", "error: " when any failed).
 */
static void answer_routed(struct control *c, answer_fn *fn, const char *path, uid_t uid,
			  struct metrics_buf *out)
{
	struct source *root = c->p.source, *leaf;
	struct metrics_buf all;
	const char *rest;
	bool failed = false;

	if (!root->children) {
		fn(c, path, uid, out);
		return;
	}
	leaf = path ? source_route(root, path, &rest) : NULL;
	if (path && !leaf) {
		metrics_buf_printf(out, "error: %s: no source has that prefix (ENOENT)\n", path);
		return;
	}
	if (leaf) {
		answer_named(c, leaf, fn, rest[0] ? rest : NULL, uid, out);
		metrics_buf_append(out, "\n", 1);
		return;
	}
	metrics_buf_init(&all, ANSWER_MAX);
	for (size_t i = 0; i < root->nchildren; i++) {
		size_t at = all.len;

		if (i)
			metrics_buf_append(&all, "; ", 2);
		answer_named(c, root->children[i], fn, NULL, uid, &all);
		if (all.data && strncmp(all.data + at + (i ? 2 : 0), "error: ", 7) == 0)
			failed = true;
	}
	metrics_buf_printf(out, "%s%s\n", failed ? "error: " : "",
			   all.data ? all.data : "out of memory");
	metrics_buf_done(&all);
}

static void answer_reload(struct control *c, uid_t uid, struct metrics_buf *out)
{
	char msg[CONTROL_ERR_MAX] = "";
	int r;

	if (!c->p.reload) {
		metrics_buf_printf(out, "error: reload is not available\n");
		return;
	}
	log_info("control: uid %u asked for a reload", (unsigned)uid);
	r = c->p.reload(c->p.reload_ctx, msg, sizeof(msg));
	/* One line: the reason of a policy error is one line already. */
	msg[strcspn(msg, "\n")] = '\0';
	if (r < 0)
		metrics_buf_printf(out, "error: %s\n", msg[0] ? msg : errno_desc(-r));
	else
		metrics_buf_printf(out, "ok %s\n", msg[0] ? msg : "reloaded");
}

/* ---- the connection ---- */

/*
 * The one-line answers name secret ids and backend reasons, which may hold a
 * newline or a terminal escape ("top/multi\nline" is a valid id): each such
 * byte becomes '?', so an answer stays one line of text.
 */
static void one_line(struct metrics_buf *out)
{
	for (size_t i = 0; out->data && i + 1 < out->len; i++)
		if ((unsigned char)out->data[i] < 0x20 || out->data[i] == 0x7f)
			out->data[i] = '?';
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* gone, or too slow (SO_SNDTIMEO): nothing more to say */
		buf += n;
		len -= (size_t)n;
	}
}

static void refuse(struct control *c, int fd, uid_t uid, pid_t pid)
{
	static const char msg[] = "error: permission denied\n";
	uint64_t n = __atomic_add_fetch(&c->denied, 1, __ATOMIC_RELAXED);
	char drain[512];

	/* Said once, then at every power of two: a peer cannot flood the log. */
	if ((n & (n - 1)) == 0)
		log_warn("control: refused uid %u (pid %d): not an admin (%llu refused so far)",
			 (unsigned)uid, (int)pid, (unsigned long long)n);
	send_all(fd, msg, sizeof(msg) - 1);
	/* Closing with unread input would reset the connection before the peer reads this. */
	shutdown(fd, SHUT_WR);
	while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
		;
}

/* Reads one request line; its length, 0 on EOF or timeout, -E2BIG past the limit. */
static ssize_t read_request(int fd, char *buf, size_t max)
{
	size_t len = 0;

	while (len < max) {
		ssize_t n = recv(fd, buf + len, max - len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (ssize_t)len; /* EOF ends a request without a newline */
		if (memchr(buf + len, '\n', (size_t)n))
			return (ssize_t)(len + (size_t)n);
		len += (size_t)n;
	}
	return -E2BIG;
}

static void serve(struct control *c, int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	char line[CONTROL_REQUEST_MAX + 1], err[CONTROL_ERR_MAX];
	struct control_request req;
	struct metrics_buf out;
	ssize_t len;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* Who it is, before reading a byte of what it wants. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0 ||
	    credlen != sizeof(cred)) {
		refuse(c, fd, (uid_t)-1, 0);
		return;
	}
	if (!peer_is_admin(c, cred.uid)) {
		refuse(c, fd, cred.uid, cred.pid);
		return;
	}

	metrics_buf_init(&out, ANSWER_MAX);
	len = read_request(fd, line, sizeof(line) - 1);
	if (len == -E2BIG) {
		metrics_buf_printf(&out, "error: request too long (at most %d bytes)\n",
				   CONTROL_REQUEST_MAX);
	} else if (len <= 0) {
		metrics_buf_done(&out);
		return; /* nothing asked (a probe, or too slow) */
	} else if (control_parse_request(line, (size_t)len, &req, err, sizeof(err)) < 0) {
		metrics_buf_printf(&out, "error: %s\n", err);
		one_line(&out);
	} else {
		__atomic_fetch_add(&c->requests, 1, __ATOMIC_RELAXED);
		switch (req.command) {
		case CONTROL_STATUS:
			answer_status(c, &out);
			break;
		case CONTROL_METRICS:
			answer_metrics(c, &out);
			break;
		case CONTROL_FLUSH:
			answer_routed(c, answer_flush, req.arg, cred.uid, &out);
			one_line(&out);
			break;
		case CONTROL_REFRESH:
			answer_routed(c, answer_refresh, req.arg, cred.uid, &out);
			one_line(&out);
			break;
		case CONTROL_RELOAD:
			answer_reload(c, cred.uid, &out);
			one_line(&out);
			break;
		}
	}
	if (out.overflow) {
		metrics_buf_done(&out);
		metrics_buf_init(&out, ANSWER_MAX);
		metrics_buf_printf(&out, "error: the answer is too large or memory ran out\n");
	}
	send_all(fd, out.data ? out.data : "", out.len);
	metrics_buf_done(&out);
}

static void *control_thread(void *arg)
{
	struct control *c = arg;

	for (;;) {
		struct pollfd pfd[2] = { { c->fd, POLLIN, 0 }, { c->stop_pipe[0], POLLIN, 0 } };
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors or memory: do not spin on it. */
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				poll(&pfd[1], 1, 100);
			continue;
		}
		serve(c, fd);
		close(fd);
	}
	return NULL;
}

int control_start(const struct control_params *p, struct control **ret, char *err, size_t errlen)
{
	struct control *c;
	sigset_t all, old;
	bool group_access;
	gid_t group = 0;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	c->p = *p;
	c->fd = -1;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	c->start_usec = now_usec();
	c->start_realtime = realtime_usec();
	c->path = strdup(p->socket_path);
	if (!c->path) {
		r = set_error(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	r = resolve_admin(c, p->admin, &group, &group_access, err, errlen);
	if (r < 0)
		goto fail;
	if (pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		r = set_error(err, errlen, -errno, "pipe: %s", errno_desc(errno));
		goto fail;
	}
	r = socket_create(c, group_access, group, err, errlen);
	if (r < 0)
		goto fail;
	/* Signals are for the main thread (SIGHUP has its own). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&c->thread, NULL, control_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		set_error(err, errlen, r, "cannot start the control thread: %s", errno_desc(-r));
		goto fail;
	}
	c->thread_started = true;
	*ret = c;
	return 0;
fail:
	control_stop(c);
	return r;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	if (c->thread_started) {
		__atomic_store_n(&c->stopping, true, __ATOMIC_RELAXED);
		(void)!write(c->stop_pipe[1], "x", 1);
		pthread_join(c->thread, NULL);
	}
	if (c->fd >= 0) {
		socket_remove(c);
		close(c->fd);
	}
	for (int i = 0; i < 2; i++)
		if (c->stop_pipe[i] >= 0)
			close(c->stop_pipe[i]);
	free(c->path);
	free(c);
}

/* ---- secretfs ctl ---- */

#define CTL_USAGE                                                                                  \
	"usage: secretfs ctl [--socket PATH] COMMAND [PATH]\n"                                     \
	"\n"                                                                                       \
	"Asks a running secretfs through its control socket (-o control=PATH); only root,\n"       \
	"the daemon's user and -o control_admin=USER are answered.\n"                              \
	"\n"                                                                                       \
	"Commands:\n"                                                                              \
	"    status          JSON: sources, authentication, token expiry, cache, uptime\n"         \
	"    metrics         Prometheus text format\n"                                             \
	"    flush [PATH]    drop cached values: all, or the secret or folder at PATH\n"           \
	"    refresh [PATH]  fetch again now: everything cached, or the secret at PATH,\n"         \
	"                    or the folder at PATH (its listing and what is cached under it)\n"    \
	"    reload          reload the policy and reopen the audit log (as SIGHUP)\n"             \
	"\n"                                                                                       \
	"PATH is relative to the mount root; for a key of an object secret it means the\n"         \
	"secret.  Without --socket: $RUNTIME_DIRECTORY/secretfs.sock, or the only socket\n"        \
	"in " RUN_DIR ".\n"                                                                        \
	"Exit status: 0 ok, 1 the daemon answered \"error: ...\", 2 usage or connection.\n"

static int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ctl_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("secretfs ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(try secretfs ctl --help)\n", stderr);
	return 2;
}

/* Without --socket: systemd's runtime directory, or the one socket in /run/secretfs. */
static char *default_socket(void)
{
	const char *rt = getenv("RUNTIME_DIRECTORY");
	char *found = NULL;
	struct dirent *de;
	int n = 0;
	DIR *d;

	if (rt && *rt == '/') {
		char *p = NULL;

		if (asprintf(&p, "%.*s/secretfs.sock", (int)strcspn(rt, ":"), rt) < 0)
			return NULL;
		return p;
	}
	d = opendir(RUN_DIR);
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l > 5 && strcmp(de->d_name + l - 5, ".sock") == 0 && n++ == 0 &&
		    asprintf(&found, RUN_DIR "/%s", de->d_name) < 0)
			found = NULL;
	}
	if (d)
		closedir(d);
	if (n != 1) {
		free(found);
		return NULL;
	}
	return found;
}

int control_client_main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_SEC };
	_cleanup_free_ char *socket_path = NULL, *line = NULL, *copy = NULL, *answer = NULL;
	const char *args[2] = { NULL, NULL };
	char err[CONTROL_ERR_MAX];
	struct control_request req;
	size_t len = 0, cap = 0;
	bool opts = true;
	int nargs = 0, fd;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (opts && strcmp(s, "--") == 0) {
			opts = false;
		} else if (opts && (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
			fputs(CTL_USAGE, stdout);
			return 0;
		} else if (opts && (strcmp(s, "--socket") == 0 || strcmp(s, "-s") == 0)) {
			if (++i == argc)
				return ctl_usage("%s needs a PATH", s);
			free(socket_path);
			socket_path = strdup(argv[i]);
		} else if (opts && strncmp(s, "--socket=", 9) == 0) {
			free(socket_path);
			socket_path = strdup(s + 9);
		} else if (opts && s[0] == '-' && s[1]) {
			return ctl_usage("unknown option '%.64s'", s);
		} else if (nargs == 2) {
			return ctl_usage("unexpected argument '%.64s'", s);
		} else {
			args[nargs++] = s;
		}
	}
	if (nargs == 0)
		return ctl_usage("no COMMAND given");
	if ((args[1] && strchr(args[1], '\n')) || strchr(args[0], '\n'))
		return ctl_usage("a PATH with a newline cannot be named here; flush everything");
	if (asprintf(&line, "%s%s%s\n", args[0], args[1] ? " " : "", args[1] ? args[1] : "") < 0 ||
	    !(copy = strdup(line))) {
		line = NULL;
		fputs("secretfs ctl: out of memory\n", stderr);
		return 2;
	}
	if (strlen(line) > CONTROL_REQUEST_MAX)
		return ctl_usage("PATH is too long");
	/* The daemon checks it again; here it is a usage error, with exit status 2. */
	if (control_parse_request(copy, strlen(copy), &req, err, sizeof(err)) < 0)
		return ctl_usage("%s", err);

	if (!socket_path) {
		socket_path = default_socket();
		if (!socket_path)
			return ctl_usage("no --socket PATH given, and neither $RUNTIME_DIRECTORY "
					 "nor exactly one socket in " RUN_DIR);
	}
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return ctl_usage("socket path too long: %s", socket_path);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		fprintf(stderr, "secretfs ctl: cannot connect to %s: %s%s\n", socket_path,
			strerror(e),
			e == EACCES ? " (only root and the configured admin may use it)" : "");
		if (fd >= 0)
			close(fd);
		return 2;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* A refused peer is answered without being read: a failed send is no failure yet. */
	send_all(fd, line, strlen(line));
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *b;

			if (cap >= CLIENT_ANSWER_MAX) {
				fprintf(stderr, "secretfs ctl: the answer is too large\n");
				close(fd);
				return 2;
			}
			cap = cap ? cap * 2 : 65536;
			b = realloc(answer, cap + 1);
			if (!b) {
				fputs("secretfs ctl: out of memory\n", stderr);
				close(fd);
				return 2;
			}
			answer = b;
		}
		n = recv(fd, answer + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && len > 0)
			break; /* the answer came before the reset */
		if (n < 0) {
			fprintf(stderr, "secretfs ctl: %s: %s\n", socket_path,
				errno == EAGAIN ? "no answer in time" : strerror(errno));
			close(fd);
			return 2;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len == 0) {
		fprintf(stderr, "secretfs ctl: %s: no answer\n", socket_path);
		return 2;
	}
	answer[len] = '\0';
	if (strncmp(answer, "error:", 6) == 0) {
		fputs(answer, stderr);
		return 1;
	}
	fputs(answer, stdout);
	return fflush(stdout) == 0 ? 0 : 2;
}
