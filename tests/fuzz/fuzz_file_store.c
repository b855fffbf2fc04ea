/*
 * fuzz_file_store.c - the file store's document on arbitrary bytes, read the
 * way the daemon reads it: the input is written to a private file and the
 * backend's own init() loads it (JSON, ids, {"$base64"} values, keys that
 * must be file names), so a change to how the store is parsed or indexed is
 * fuzzed as it is.  A store that loads is then walked: each listing's names
 * are safe, each secret listed can be fetched and is well-formed, and a
 * folder listed can be listed.  A refused store must name the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "backends/backends.h"
#include "fuzz.h"
#include "secretfs/config.h"
#include "secretfs/namespace.h"

#define T	   "fuzz_file_store"
#define MAX_VISITS 64
#define MAX_ID	   512

static char dir[64], path[96];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

static int setup(void)
{
	if (path[0])
		return 0;
	/* tmpfs: on a disk, ext4 flushes a file truncated and rewritten at each run. */
	snprintf(dir, sizeof(dir), "/dev/shm/fuzz_file_store.XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/fuzz_file_store.XXXXXX");
		if (!mkdtemp(dir))
			return -1;
	}
	snprintf(path, sizeof(path), "%s/store.json", dir);
	atexit(cleanup);
	return 0;
}

static int write_store(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd);
}

static void walk(struct backend *b, const char *prefix, unsigned *visits)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *l = NULL;
	struct secret_entry e;
	int r;

	if (++*visits > MAX_VISITS)
		return;
	r = b->ops->list(b, prefix, &l, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(r == -ENOMEM, T, "a listed folder cannot be listed");
		fuzz_check(l == NULL, T, "a listing came back with an error");
		return;
	}
	fuzz_secret_ok(l, T);
	for (size_t i = 0; secret_table_at(l, i, &e) && *visits <= MAX_VISITS; i++) {
		char id[MAX_ID];
		int n;

		fuzz_check(ns_name_is_safe(e.name, e.namelen), T, "an unsafe name listed");
		fuzz_check(e.valuelen == 1 && e.value[0], T, "listing flags missing");
		n = snprintf(id, sizeof(id), "%s%s%s", prefix, *prefix ? "/" : "", e.name);
		if (n < 0 || (size_t)n >= sizeof(id))
			continue;
		if (e.value[0] & BACKEND_LIST_SECRET) {
			struct backend_info info;
			struct secret *v = NULL;

			r = b->ops->fetch(b, id, &v, &info, reason, sizeof(reason));
			fuzz_check(r == 0, T, "a listed secret cannot be fetched");
			fuzz_secret_ok(v, T);
			secret_unref(v);
			++*visits;
		}
		if (e.value[0] & BACKEND_LIST_FOLDER)
			walk(b, id, visits);
	}
	secret_unref(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct backend b = { .ops = &file_backend_ops, .source = "file:fuzz" };
	char reason[BACKEND_REASON_MAX] = "";
	struct backend_info info;
	struct secret *v = NULL;
	struct config cfg;
	unsigned visits = 0;
	int r;

	if (setup() < 0 || write_store(data, size) < 0)
		return 0;
	config_init(&cfg);
	r = b.ops->init(&b, path, &cfg, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "a reason unterminated");
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "%s: %s\n", T, reason);
		fuzz_check(strncmp(reason, path, strlen(path)) == 0, T,
			   "a refusal that does not name the file");
		fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a refusal other than EINVAL");
		fuzz_check(b.priv == NULL, T, "a refused store kept its state");
	} else {
		walk(&b, "", &visits);
		r = b.ops->fetch(&b, "no/such/secret", &v, &info, reason, sizeof(reason));
		fuzz_check(r == -ENOENT || (r == 0 && v), T, "a fetch of a missing id");
		secret_unref(v);
		b.ops->done(&b);
	}
	config_done(&cfg);
	return 0;
}
