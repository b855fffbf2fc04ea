/*
 * refdaemon.c - the floor for a per-open, uncached read through FUSE.
 *
 * A minimal low-level libfuse daemon serving a fixed, read-only tree:
 *
 *   /bench/s64   64 bytes
 *   /bench/s4k   4096 bytes
 *
 * It opens files the way secretfs must open a secret (direct_io, no
 * keep_cache, noflush, no .flush op) so that every open(2) reaches the daemon
 * as FUSE_OPEN and every read(2) as FUSE_READ, and it runs the same
 * multi-threaded loop with the same configuration as a default libfuse mt
 * daemon. Open does nothing but set the flags and read replies the bytes from
 * a static buffer, so whatever secretfs spends above this is its own cost.
 *
 * The bytes are byte i = REF_ALPHABET[i % 64], the same pattern bench/run
 * writes to the secretfs store and to the tmpfs copy.
 *
 *   refdaemon [-f] [-s] [-o opt,...] MOUNTPOINT
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#define REF_ALPHABET "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
#define REF_TIMEOUT  1.0

enum {
	INO_ROOT = FUSE_ROOT_ID,
	INO_BENCH,
	INO_S64,
	INO_S4K,
	INO_COUNT,
};

struct ref_node {
	const char *name;
	fuse_ino_t parent;
	mode_t mode;
	size_t size;
};

static char s64_data[64];
static char s4k_data[4096];

static const struct ref_node nodes[INO_COUNT] = {
	[INO_ROOT] = { "", INO_ROOT, S_IFDIR | 0555, 0 },
	[INO_BENCH] = { "bench", INO_ROOT, S_IFDIR | 0555, 0 },
	[INO_S64] = { "s64", INO_BENCH, S_IFREG | 0444, sizeof(s64_data) },
	[INO_S4K] = { "s4k", INO_BENCH, S_IFREG | 0444, sizeof(s4k_data) },
};

static const char *node_data(fuse_ino_t ino)
{
	switch (ino) {
	case INO_S64:
		return s64_data;
	case INO_S4K:
		return s4k_data;
	default:
		return NULL;
	}
}

static int node_valid(fuse_ino_t ino)
{
	return ino >= INO_ROOT && ino < INO_COUNT;
}

static void node_stat(fuse_ino_t ino, struct stat *st)
{
	const struct ref_node *n = &nodes[ino];

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = n->mode;
	st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
	st->st_size = (off_t)n->size;
	st->st_uid = 0;
	st->st_gid = 0;
}

static void ref_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	fuse_ino_t ino;

	for (ino = INO_ROOT + 1; ino < INO_COUNT; ino++) {
		if (nodes[ino].parent == parent && strcmp(nodes[ino].name, name) == 0)
			break;
	}
	if (ino == INO_COUNT) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 1;
	e.attr_timeout = REF_TIMEOUT;
	e.entry_timeout = REF_TIMEOUT;
	node_stat(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ref_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	if (!node_valid(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	node_stat(ino, &st);
	fuse_reply_attr(req, &st, REF_TIMEOUT);
}

/* Adds one entry to a readdir reply buffer; returns the new length, or 0 if it does not fit. */
static size_t dir_add(fuse_req_t req, char *buf, size_t len, size_t cap, const char *name,
		      fuse_ino_t ino, off_t next)
{
	struct stat st;
	size_t need;

	node_stat(ino, &st);
	need = fuse_add_direntry(req, buf + len, cap - len, name, &st, next);
	if (need > cap - len)
		return 0;
	return len + need;
}

static void ref_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	char buf[1024];
	size_t cap = size < sizeof(buf) ? size : sizeof(buf);
	size_t len = 0, next;
	fuse_ino_t child;
	off_t pos = 0;

	if (!node_valid(ino) || !S_ISDIR(nodes[ino].mode)) {
		fuse_reply_err(req, node_valid(ino) ? ENOTDIR : ENOENT);
		return;
	}
	/* Offsets: 1 after ".", 2 after "..", then 2 + child inode. */
	if (off < ++pos) {
		next = dir_add(req, buf, len, cap, ".", ino, pos);
		if (!next)
			goto reply;
		len = next;
	}
	if (off < ++pos) {
		next = dir_add(req, buf, len, cap, "..", nodes[ino].parent, pos);
		if (!next)
			goto reply;
		len = next;
	}
	for (child = INO_ROOT + 1; child < INO_COUNT; child++) {
		if (nodes[child].parent != ino)
			continue;
		pos = 2 + (off_t)child;
		if (off >= pos)
			continue;
		next = dir_add(req, buf, len, cap, nodes[child].name, child, pos);
		if (!next)
			break;
		len = next;
	}
reply:
	fuse_reply_buf(req, buf, len);
}

static void ref_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!node_valid(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (S_ISDIR(nodes[ino].mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void ref_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	const char *data = node_data(ino);
	size_t len;

	if (!data) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	len = nodes[ino].size;
	if (off < 0 || (size_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, data + off, size);
}

static const struct fuse_lowlevel_ops ref_ops = {
	.lookup = ref_lookup,
	.getattr = ref_getattr,
	.readdir = ref_readdir,
	.open = ref_open,
	.read = ref_read,
};

static void fill_pattern(char *buf, size_t len)
{
	static const char alphabet[] = REF_ALPHABET;
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = alphabet[i % (sizeof(alphabet) - 1)];
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_loop_config *config = NULL;
	struct fuse_cmdline_opts opts;
	struct fuse_session *se;
	int ret = 1;

	fill_pattern(s64_data, sizeof(s64_data));
	fill_pattern(s4k_data, sizeof(s4k_data));

	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (opts.show_help) {
		printf("usage: %s [-f] [-s] [-o opt,...] MOUNTPOINT\n\n", argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto err_out1;
	} else if (opts.show_version) {
		printf("FUSE library version %s\n", fuse_pkgversion());
		fuse_lowlevel_version();
		ret = 0;
		goto err_out1;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "usage: %s [-f] [-s] [-o opt,...] MOUNTPOINT\n", argv[0]);
		goto err_out1;
	}

	se = fuse_session_new(&args, &ref_ops, sizeof(ref_ops), NULL);
	if (!se)
		goto err_out1;
	if (fuse_set_signal_handlers(se) != 0)
		goto err_out2;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto err_out3;

	fuse_daemonize(opts.foreground);

	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		/*
		 * What fuse_main() sets up in libfuse 3.14: the library defaults (max_threads 10,
		 * idle threads never destroyed, no clone_fd) overridden only by -o options. 3.14
		 * reports "unset" max_idle_threads as UINT_MAX, which the setter would reject
		 * with a warning, so only pass it on when it was given.
		 */
		config = fuse_loop_cfg_create();
		if (!config)
			goto err_out4;
		fuse_loop_cfg_set_clone_fd(config, opts.clone_fd);
		fuse_loop_cfg_set_max_threads(config, opts.max_threads);
		if (opts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(config, opts.max_idle_threads);
		ret = fuse_session_loop_mt(se, config);
		fuse_loop_cfg_destroy(config);
	}

err_out4:
	fuse_session_unmount(se);
err_out3:
	fuse_remove_signal_handlers(se);
err_out2:
	fuse_session_destroy(se);
err_out1:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret ? 1 : 0;
}
