/*
 * main.c - options, config, hardening, the mount and the loop.
 *
 *   secretfs [OPTIONS] SOURCE MOUNTPOINT
 *   secretfs --config FILE [MOUNTPOINT]
 *
 * Everything that can fail is checked before the mount, and a daemonizing
 * start returns only once the mount is served (or with the reason it is not),
 * so `secretfs ... && cat MOUNTPOINT/...` works and a failure is never silent.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "secretfs/auditlog.h"
#include "secretfs/config.h"
#include "secretfs/control.h"
#include "secretfs/fs.h"
#include "secretfs/http.h"
#include "secretfs/log.h"
#include "secretfs/namespace.h"
#include "secretfs/policy.h"
#include "secretfs/secret.h"
#include "secretfs/service.h"
#include "secretfs/source.h"
#include "secretfs/util.h"

enum {
	KEY_OURS,
	KEY_CONFIG,
	KEY_HELP,
	KEY_VERSION,
	KEY_READY_FILE,
};

/* What the command line said, before the config file is known. */
struct cmdline {
	char *config_path;
	char *ready_file; /* --ready-file PATH */
	char *nonopt[2];
	int nnonopt;
	char **settings; /* "key=value" from -o, applied after the config file */
	size_t nsettings;
	bool help;
	bool version;
	bool bad;
};

static const struct fuse_opt our_opts[] = {
	FUSE_OPT_KEY("config=", KEY_CONFIG),
	FUSE_OPT_KEY("--config=", KEY_CONFIG),
	FUSE_OPT_KEY("--config ", KEY_CONFIG),
	FUSE_OPT_KEY("--ready-file=", KEY_READY_FILE),
	FUSE_OPT_KEY("--ready-file ", KEY_READY_FILE),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: secretfs [OPTIONS] SOURCE MOUNTPOINT\n"
		"       secretfs --config FILE [MOUNTPOINT]\n"
		"       secretfs check-policy FILE USER [--exe PATH] PATH\n"
		"       secretfs ctl [--socket PATH] status|metrics|flush|refresh|reload [PATH]\n"
		"\n"
		"Shows the secrets of SOURCE as read-only files under MOUNTPOINT.\n"
		"\n"
		"SOURCE:\n"
		"    file:PATH              a JSON document mapping secret paths to values\n"
		"    vault:https://HOST:PORT/MOUNT[/PREFIX]  a HashiCorp Vault KV mount (v1 or "
		"v2)\n"
		"    vault:MOUNT[/PREFIX]   the same, the server from VAULT_ADDR\n"
		"    aws-sm:REGION[/PREFIX] AWS Secrets Manager (aws-sm: takes AWS_REGION)\n"
		"    aws-ssm:REGION[/PATH]  AWS Systems Manager Parameter Store, the tree under "
		"PATH\n"
		"    gcp-sm:PROJECT[/PREFIX]  Google Secret Manager (PREFIX needs name_separator)\n"
		"    doppler:PROJECT/CONFIG Doppler, one config, flat (doppler: alone when the\n"
		"                           service token implies them)\n"
		"    azure-kv:NAME          Azure Key Vault https://NAME.vault.azure.net\n"
		"    azure-kv:https://HOST[:PORT]  the same at another URL (AZURE_* credentials)\n"
		"    op-connect:VAULT[/PREFIX]  a 1Password Connect vault (title or id): ITEM/FIELD\n"
		"\n"
		"Options:\n"
		"    -h, --help             print this help and exit\n"
		"    -V, --version          print the version and exit\n"
		"    -f                     stay in the foreground\n"
		"    -d                     debug: log every request (implies -f)\n"
		"    --config FILE          read settings from FILE (INI; see secretfs.conf)\n"
		"    -o config=FILE         the same\n"
		"    --ready-file PATH      create PATH once the mount is served; removed at exit\n"
		"    -o ttl=DURATION        how long a fetched value is fresh (default 300s)\n"
		"    -o stale_ttl=DURATION  how long past that a value is served when the\n"
		"                           store fails transiently (default 24h)\n"
		"    -o negative_ttl=DURATION  how long \"not found\" (and \"denied\") is\n"
		"                           remembered (default 30s)\n"
		"    -o attr_timeout=DURATION  kernel attribute and entry cache time (default 1s)\n"
		"    -o fetch_timeout=DURATION longest a reader waits for the store (default 5s)\n"
		"    -o cache_max_entries=N    most values held (default 10000)\n"
		"    -o cache_max_bytes=SIZE   most value bytes held (default 4M); the locked\n"
		"                           secret heap is twice this, rounded to a power of 2;\n"
		"                           listings get as many bytes of their own\n"
		"    -o max_fetches=N       store requests under way at once (default 16);\n"
		"                           more wait in a queue, within fetch_timeout\n"
		"    -o policy=FILE         per-uid access rules (see the README); turns\n"
		"                           on allow_other; SIGHUP reloads it\n"
		"    -o show_denied         list entries the caller may not open (still denied)\n"
		"    -o hide_denied_size    stat shows size 0 to callers who may not open a "
		"secret\n"
		"    -o max_handles_per_uid=N  open files and directories one uid may hold;\n"
		"                           past it, EMFILE (default 4096, 0 = no cap)\n"
		"    -o max_threads=N       FUSE worker threads, each may wait up to "
		"fetch_timeout\n"
		"                           on a cold name (default 64 here; libfuse says 10)\n"
		"    -o max_idle_threads=N  idle workers kept (default: all of them)\n"
		"    -o audit=TARGET        one JSON record per open and listing, and per denied\n"
		"                           lookup (once per uid and path per ttl): a file path\n"
		"                           (reopened on SIGHUP), syslog, or stderr (with -f)\n"
		"    -o meta_dir=NAME       the meta directory at the root (default .secretfs);\n"
		"                           NAME/view/FMT/PATH shows object secret PATH whole as\n"
		"                           FMT: env, shell, json, yaml or properties;\n"
		"                           NAME/at/SELECTOR/PATH the version SELECTOR (current,\n"
		"                           previous, pending, N, id:ID, label:L) of PATH, and\n"
		"                           NAME/versions/PATH the JSON list of its versions\n"
		"    -o show_meta           list the meta directory in the root\n"
		"    -o view_env_case=upper env and shell views write keys as UPPER_SNAKE\n"
		"                           (default keep)\n"
		"\n"
		"Several stores in one mount ([source NAME] in the config file, no SOURCE):\n"
		"    uri = SOURCE, prefix = DIR (default NAME), optional = yes (down at start:\n"
		"                           an empty directory, retried), and per-source [cache],\n"
		"                           [http] and backend settings by their -o names;\n"
		"                           policy, template, view and ctl paths include DIR\n"
		"\n"
		"Templates ([template NAME] in the config file; see secretfs.conf):\n"
		"    -o template=MOUNTPATH:FILE[:FORMAT]  show FILE, rendered, at MOUNTPATH;\n"
		"                           FORMAT raw (default), env, shell, json, yaml,\n"
		"                           properties or ini; repeatable; rendered at each open\n"
		"                           for the reader, every reference checked; SIGHUP\n"
		"                           re-reads the template files\n"
		"\n"
		"Network stores ([http] in the config file):\n"
		"    -o ca_file=PEM, ca_path=DIR      CA to verify the server (default: system)\n"
		"    -o client_cert=PEM,client_key=PEM  TLS client certificate (mTLS)\n"
		"    -o connect_timeout=DURATION, http_timeout=DURATION  per attempt (5s, 30s)\n"
		"    -o max_body=SIZE       largest response accepted (default 1M)\n"
		"    -o max_attempts=N      tries per request, with backoff (default 4)\n"
		"    -o insecure            turn TLS verification off (never in production)\n"
		"\n"
		"Vault ([vault] in the config file; the VAULT_* environment is read too):\n"
		"    -o vault_auth=token|approle|kubernetes   (default token)\n"
		"    -o vault_token_file=F, vault_role_id_file=F, vault_secret_id_file=F\n"
		"    -o vault_remove_secret_id_file  delete the secret_id file once read\n"
		"    -o vault_role=ROLE, vault_jwt_file=F    Kubernetes login\n"
		"    -o vault_auth_mount=PATH, vault_namespace=NS, vault_kv_version=auto|1|2\n"
		"\n"
		"AWS ([aws] in the config file; the AWS_* environment is read as the SDKs do):\n"
		"    -o aws_profile=NAME    the shared-files profile (default AWS_PROFILE, "
		"default);\n"
		"                           naming one skips AWS_ACCESS_KEY_ID, as --profile does\n"
		"    -o aws_version_stage=STAGE  Secrets Manager staging label (default "
		"AWSCURRENT)\n"
		"    -o aws_list_ttl=DURATION    how long a listing is kept (default 5m)\n"
		"\n"
		"Google Secret Manager ([gcp] in the config file; credentials as Google's ADC):\n"
		"    -o gcp_credentials=FILE  a service_account or authorized_user JSON file\n"
		"                           (default GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC\n"
		"                           file, then the metadata server, GCE_METADATA_HOST)\n"
		"    -o gcp_endpoint=URL    default https://secretmanager.googleapis.com\n"
		"\n"
		"Flat stores (gcp-sm, azure-kv), whose names cannot hold '/':\n"
		"    -o name_separator=SEP  SEP in a name stands for '/' (__: prod__db is prod/db)\n"
		"\n"
		"Doppler ([doppler] in the config file; as the Doppler CLI reads them):\n"
		"    -o doppler_token_file=FILE  a service token (default DOPPLER_TOKEN, then\n"
		"                           $CREDENTIALS_DIRECTORY/doppler-token)\n"
		"    -o doppler_api_host=URL  default DOPPLER_API_HOST, else "
		"https://api.doppler.com\n"
		"                           (DOPPLER_PROJECT, DOPPLER_CONFIG serve doppler:)\n"
		"\n"
		"1Password Connect ([op-connect] in the config file):\n"
		"    -o op_connect_host=URL the Connect server (default OP_CONNECT_HOST)\n"
		"    -o op_token_file=FILE  the Connect token (default OP_CONNECT_TOKEN, then\n"
		"                           $CREDENTIALS_DIRECTORY/op-connect-token)\n"
		"\n"
		"Control ([control] in the config file; see secretfs ctl --help):\n"
		"    -o control=PATH|auto   serve the admin socket (status, metrics, flush, "
		"refresh,\n"
		"                           reload); auto: $RUNTIME_DIRECTORY/secretfs.sock or\n"
		"                           /run/secretfs/NAME.sock after the mountpoint\n"
		"    -o control_admin=USER  a user (name or uid) who may use it besides root\n"
		"\n"
		"DURATION is a number of seconds or has a unit: 250ms, 30s, 5m, 2h, 1d.\n"
		"SIZE is a number of bytes or has a unit: 64K, 4M, 1G.\n"
		"Command-line options override the config file.\n"
		"SIGHUP re-reads the policy, the audit settings and the templates (from the\n"
		"config file too) and reopens the audit file; other settings need a restart.\n"
		"\n"
		"Mount defaults: ro,nosuid,nodev,noexec,auto_unmount. Without a policy only the\n"
		"user who mounts can read. Secret files are opened with direct_io: a shared "
		"mmap(2) of them\n"
		"fails; a private one is page-cached by the kernel until the file is closed.\n"
		"\n"
		"FUSE options:\n");
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *cl = data;
	char **s;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (cl->nnonopt >= 2) {
			fprintf(stderr, "secretfs: unexpected argument '%s'\n", arg);
			cl->bad = true;
			return 0;
		}
		cl->nonopt[cl->nnonopt++] = strdup(arg);
		return 0;
	case FUSE_OPT_KEY_OPT: {
		/* Every setting of struct config is also an -o option; the rest is libfuse's. */
		size_t n = strcspn(arg, "=");
		char name[64];

		if (n >= sizeof(name) || strncmp(arg, "-", 1) == 0)
			return 1;
		memcpy(name, arg, n);
		name[n] = '\0';
		if (!config_is_option(name) || strcmp(name, "source") == 0 ||
		    strcmp(name, "mountpoint") == 0)
			return 1;
		key = KEY_OURS;
	}
		/* fall through */
	case KEY_OURS:
		s = realloc(cl->settings, (cl->nsettings + 1) * sizeof(*s));
		if (!s)
			return -1;
		cl->settings = s;
		/* A bare flag is "flag=yes", so every setting has the same shape. */
		s[cl->nsettings] = strchr(arg, '=') ? strdup(arg) : NULL;
		if (!strchr(arg, '=') && asprintf(&s[cl->nsettings], "%s=yes", arg) < 0)
			s[cl->nsettings] = NULL;
		if (!s[cl->nsettings])
			return -1;
		cl->nsettings++;
		return 0;
	case KEY_CONFIG:
		free(cl->config_path);
		arg += strncmp(arg, "--config", 8) == 0 ? 8 : 6; /* "--config", "config" */
		while (*arg == '=' || *arg == ' ')
			arg++;
		cl->config_path = strdup(arg);
		return 0;
	case KEY_READY_FILE:
		free(cl->ready_file);
		arg += strlen("--ready-file");
		while (*arg == '=' || *arg == ' ')
			arg++;
		cl->ready_file = strdup(arg);
		return cl->ready_file ? 0 : -1;
	case KEY_HELP:
		cl->help = true;
		return 0;
	case KEY_VERSION:
		cl->version = true;
		return 0;
	default:
		return 1; /* for libfuse */
	}
}

static void cmdline_done(struct cmdline *cl)
{
	free(cl->config_path);
	free(cl->ready_file);
	for (int i = 0; i < cl->nnonopt; i++)
		free(cl->nonopt[i]);
	for (size_t i = 0; i < cl->nsettings; i++)
		free(cl->settings[i]);
	free(cl->settings);
}

/* Defaults, then the config file, then the command line. */
static int build_config(struct cmdline *cl, struct config *cfg)
{
	char err[CONFIG_ERR_MAX];
	int r;

	if (cl->config_path) {
		r = config_load(cfg, cl->config_path, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "secretfs: %s\n", err);
			return r;
		}
	}
	for (size_t i = 0; i < cl->nsettings; i++) {
		char *eq = strchr(cl->settings[i], '=');

		*eq = '\0';
		r = config_set(cfg, cl->settings[i], eq + 1, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "secretfs: -o %s=%s: %s\n", cl->settings[i], eq + 1,
				r == -ENOENT ? "unknown option" : err);
			return r;
		}
		*eq = '=';
	}
	/* Two arguments are SOURCE MOUNTPOINT; one is MOUNTPOINT when a config names the source. */
	if (cl->nnonopt == 2 || (cl->nnonopt == 1 && !cl->config_path)) {
		r = config_set(cfg, "source", cl->nonopt[0], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "secretfs: SOURCE '%s': %s\n", cl->nonopt[0], err);
			return r;
		}
	}
	if (cl->nnonopt == 2 || (cl->nnonopt == 1 && cl->config_path)) {
		free(cfg->mountpoint);
		cfg->mountpoint = strdup(cl->nonopt[cl->nnonopt - 1]);
		if (!cfg->mountpoint)
			return -ENOMEM;
	}
	if (cfg->nsources && cl->nnonopt == 2) {
		fprintf(stderr,
			"secretfs: SOURCE '%s' on the command line, and [source NAME] sections in "
			"%s: give one or the other\n",
			cl->nonopt[0], cl->config_path);
		return -EINVAL;
	}
	if (!cfg->source && !cfg->nsources) {
		fprintf(stderr, "secretfs: no SOURCE given (try secretfs --help)\n");
		return -EINVAL;
	}
	if (!cfg->mountpoint) {
		fprintf(stderr, "secretfs: no MOUNTPOINT given (try secretfs --help)\n");
		return -EINVAL;
	}
	return 0;
}

/* The checks whose failure would otherwise show up as a confusing mount error. */
static int check_mount_prerequisites(const char *mountpoint)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	/* Only existence: without root, the setuid fusermount3 opens it for us. */
	errno = 0;
	if (stat("/dev/fuse", &st) < 0 || !S_ISCHR(st.st_mode)) {
		fprintf(stderr,
			"secretfs: /dev/fuse: %s; load the fuse module (modprobe fuse) or, in a "
			"container, pass the device (--device /dev/fuse)\n",
			errno ? strerror(errno) : "not a character device");
		return -ENODEV;
	}
	if (geteuid() == 0) {
		fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "secretfs: /dev/fuse: %s\n", strerror(errno));
			return -ENODEV;
		}
		close(fd);
	}
	if (strncmp(mountpoint, "/dev/fd/", 8) == 0)
		return 0; /* an fd passed by a privileged helper: libfuse checks it */
	if (stat(mountpoint, &st) < 0) {
		int e = errno;

		fprintf(stderr, "secretfs: mountpoint %s: %s%s\n", mountpoint, strerror(e),
			e == ENOTCONN ? " (a dead mount is left there: fusermount3 -u it)" : "");
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "secretfs: mountpoint %s: not a directory\n", mountpoint);
		return -ENOTDIR;
	}
	d = opendir(mountpoint);
	if (!d) {
		fprintf(stderr, "secretfs: mountpoint %s: %s\n", mountpoint, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			fprintf(stderr,
				"secretfs: mountpoint %s is not empty; secrets would hide its "
				"files\n",
				mountpoint);
			return -ENOTEMPTY;
		}
	}
	closedir(d);
	return 0;
}

/* Before any secret is loaded: no core dumps, no ptrace by peers, no /proc/PID/mem. */
static void harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		fprintf(stderr, "secretfs: warning: cannot disable core dumps: %s\n",
			strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fprintf(stderr, "secretfs: warning: cannot mark the process undumpable: %s\n",
			strerror(errno));
}

/*
 * The locked heap: twice the value budget (values, plus the scratch copies of
 * parsing and HTTP).  The file store keeps all of its values converted in the
 * heap (the cache refers to those same buffers), at most twice the file's
 * size with the buddy allocator's rounding, and parses the file there too:
 * a store larger than the budget gets four times its size plus the budget.
 * A store that grows past that fails to reload and the previous one is kept.
 */
static size_t heap_size_for(const struct config *cfg);

/* Several stores: each has its caches, so the heap is the sum of theirs. */
static size_t heap_size_for_sources(const struct config *cfg)
{
	char err[CONFIG_ERR_MAX];
	size_t sum = 0;

	for (size_t i = 0; i < cfg->nsources; i++) {
		struct config own;
		size_t one = cfg->cache_max_bytes * 2;

		if (config_source_config(cfg, i, &own, err, sizeof(err)) >= 0) {
			one = heap_size_for(&own);
			config_done(&own);
		}
		sum = sum > SIZE_MAX - one ? SIZE_MAX : sum + one;
	}
	return sum;
}

static size_t heap_size_for(const struct config *cfg)
{
	size_t want = cfg->cache_max_bytes * 2, p = 1;
	struct stat st;

	if (cfg->nsources)
		want = heap_size_for_sources(cfg);
	if (cfg->source && strncmp(cfg->source, "file:", 5) == 0 &&
	    stat(cfg->source + 5, &st) == 0 &&
	    (uint64_t)st.st_size < (SIZE_MAX - cfg->cache_max_bytes) / 8 &&
	    4 * (size_t)st.st_size + cfg->cache_max_bytes > want)
		want = 4 * (size_t)st.st_size + cfg->cache_max_bytes;

	while (p < want)
		p <<= 1;
	return p;
}

/*
 * Daemonizing: the parent waits on a pipe until the child reports that the
 * mount is served ("R") or exits, and exits with the child's status, so
 * errors that happen after the fork still reach the terminal.
 */
static int ready_fd = -1;

static int daemon_fork(void)
{
	int p[2], status;
	char c;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == 'R')
			_exit(0);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
		_exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() < 0)
		return -errno;
	return 0;
}

static void daemon_ready(bool foreground)
{
	int nullfd;

	if (ready_fd < 0)
		return;
	log_open(true, false);
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd >= 0) {
		dup2(nullfd, 0);
		dup2(nullfd, 1);
		dup2(nullfd, 2);
		if (nullfd > 2)
			close(nullfd);
	}
	if (chdir("/") < 0) {
		/* harmless: paths are absolute by now */
	}
	(void)!write(ready_fd, "R", 1);
	close(ready_fd);
	ready_fd = -1;
}

/* Periodic expiry, so values past their stale window are wiped even if unread. */
static pthread_mutex_t house_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t house_cond = PTHREAD_COND_INITIALIZER;
static bool house_stop;

/* Scratch copies that did not fit the locked heap: said at the first and at every doubling. */
static void note_heap_fallbacks(unsigned long *next)
{
	unsigned long n = secret_heap_fallbacks();

	if (n < *next)
		return;
	log_warn("the locked heap was full %lu time%s: copies of secrets being parsed or "
		 "received went to ordinary memory (wiped when freed); raise cache_max_bytes",
		 n, n == 1 ? "" : "s");
	*next = n * 2;
}

/* Values too big for the heap whose own mapping could not be locked: the same way. */
static void note_one_offs_unlocked(unsigned long *next)
{
	unsigned long n = secret_one_off_unlocked_count();

	if (n < *next)
		return;
	log_warn("%lu value%s too big for the locked heap could not be locked in memory of "
		 "%s own (memlock limit): not dumped and wiped when freed, but swappable; raise "
		 "the memlock limit (LimitMEMLOCK=, ulimit -l) or grant CAP_IPC_LOCK",
		 n, n == 1 ? "" : "s", n == 1 ? "its" : "their");
	*next = n * 2;
}

static void *housekeeping(void *arg)
{
	struct source *src = arg;
	unsigned long next_fallback_note = 1, next_one_off_note = 1;
	struct timespec ts;

	pthread_mutex_lock(&house_lock);
	while (!house_stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&house_cond, &house_lock, &ts);
		if (house_stop)
			break;
		pthread_mutex_unlock(&house_lock);
		source_expire(src);
		note_heap_fallbacks(&next_fallback_note);
		note_one_offs_unlocked(&next_one_off_note);
		pthread_mutex_lock(&house_lock);
	}
	pthread_mutex_unlock(&house_lock);
	return NULL;
}

/* allow_other for a non-root user needs the admin's consent in /etc/fuse.conf. */
static int check_allow_other(void)
{
	char line[256];
	bool ok = false;
	FILE *f;

	if (geteuid() == 0)
		return 0;
	f = fopen("/etc/fuse.conf", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");

		if (strncmp(p, "user_allow_other", 16) == 0 && strchr(" \t\r\n", p[16]))
			ok = true;
	}
	if (f)
		fclose(f);
	if (ok)
		return 0;
	fprintf(stderr, "secretfs: a policy lets other users read, which needs allow_other; as a "
			"non-root user that needs user_allow_other in /etc/fuse.conf\n");
	return -EPERM;
}

/*
 * SIGHUP reloads the policy and reopens the audit file.  It is blocked in
 * every thread and taken here with sigwait(), so libfuse's own SIGHUP handler
 * (which would end the session) never runs.
 *
 * With --config, the file is read again first (with the command line's -o on
 * top, as at start) for the policy and audit paths.  Nothing else in it is
 * applied: the source, the mountpoint, the cache, the HTTP and backend
 * settings and the mount options need a restart, and so does turning the
 * policy or the audit log on or off (allow_other is fixed at mount time).
 */
struct reloader {
	const char *policy_path;
	const struct config *templates_from; /* the config the templates come from */
	const char *meta_dir;		     /* as at start: renaming it needs a restart */
	struct fs *fs;
	struct auditlog *audit;
	const char *audit_target;
	const struct cmdline *cl; /* the config file and the -o settings, for a reload */
	struct config cfg;	  /* the last re-read config; the paths above point into it */
	pthread_t thread;
	bool stop; /* atomic */
};

/* A setting that can only be turned on or off by a restart keeps its current value. */
static int reload_keep(const char *what, const char *now, char **want)
{
	if (!now == !*want)
		return 0;
	log_warn("%s the %s needs a restart; keeping %s", *want ? "turning on" : "turning off",
		 what, now ? now : "none");
	free(*want);
	*want = now ? strdup(now) : NULL;
	return now && !*want ? -ENOMEM : 0;
}

static int reload_config(struct reloader *rl, char *err, size_t errlen)
{
	const struct cmdline *cl = rl->cl;
	struct config c;
	int r;

	config_init(&c);
	r = config_load(&c, cl->config_path, err, errlen);
	for (size_t i = 0; r >= 0 && i < cl->nsettings; i++) {
		_cleanup_free_ char *key = strdup(cl->settings[i]);
		char *eq = key ? strchr(key, '=') : NULL;

		if (!eq) {
			r = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			break;
		}
		*eq = '\0';
		r = config_set(&c, key, eq + 1, err, errlen);
	}
	if (r >= 0)
		r = reload_keep("policy", rl->policy_path, &c.policy);
	if (r >= 0)
		r = reload_keep("audit log", rl->audit_target, &c.audit);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", cl->config_path);
		config_done(&c);
		return r;
	}
	rl->policy_path = c.policy;
	rl->audit_target = c.audit;
	config_done(&rl->cfg);
	rl->cfg = c;
	rl->templates_from = &rl->cfg;
	return 0;
}

/* The first failure of a reload is what `secretfs ctl reload` answers. */
static void reload_note(char *msg, size_t msglen, const char *what, const char *err,
			const char *then)
{
	if (msg && msglen && !msg[0])
		snprintf(msg, msglen, "%s%s%s", what, err, then);
}

/* Returns 0, or -EINVAL with @msg (may be NULL) saying what failed first. */
static int reload(struct reloader *rl, char *msg, size_t msglen)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char err[POLICY_ERR_MAX];
	const char *failed = NULL;
	struct policy *p;
	size_t ntemplates = 0;

	if (msg && msglen)
		msg[0] = '\0';
	pthread_mutex_lock(&lock);
	service_reloading();
	if (rl->cl && rl->cl->config_path) {
		if (reload_config(rl, err, sizeof(err)) < 0) {
			log_error("%s; keeping the previous settings", err);
			reload_note(msg, msglen, "", err, "; keeping the previous settings");
			failed = "the config file (see the log)";
		} else {
			log_info("%s: re-read for the policy and audit settings",
				 rl->cl->config_path);
		}
	}
	/* Every template file again; a broken one keeps the previous set in service. */
	if (!failed && rl->templates_from) {
		struct template_set *ts;

		if (template_set_load(rl->templates_from, rl->meta_dir, &ts, err, sizeof(err)) <
		    0) {
			log_error("%s; keeping the previous templates", err);
			reload_note(msg, msglen, "", err, "; keeping the previous templates");
			failed = "the templates (see the log)";
		} else {
			ntemplates = ts ? ts->n : 0;
			if (ts)
				log_info("%zu template%s reloaded", ts->n, ts->n == 1 ? "" : "s");
			fs_set_templates(rl->fs, ts);
		}
	}
	if (rl->policy_path) {
		if (policy_load(rl->policy_path, &p, err, sizeof(err)) < 0) {
			log_error("%s; keeping the previous policy", err);
			reload_note(msg, msglen, "", err, "; keeping the previous policy");
			failed = "the policy (see the log)";
		} else {
			fs_set_policy(rl->fs, p);
			log_info("%s: policy reloaded", rl->policy_path);
		}
	}
	/* The same target is reopened (logrotate); a new one is opened before the switch. */
	if (rl->audit && auditlog_retarget(rl->audit, rl->audit_target, err, sizeof(err)) < 0) {
		log_error("audit log: %s", err);
		reload_note(msg, msglen, "audit log: ", err, "");
		failed = "the audit log (see the log)";
	}
	if (!failed && msg && msglen)
		snprintf(msg, msglen, "%s%s%s%s", rl->policy_path ? "reloaded the policy " : "",
			 rl->policy_path ? rl->policy_path : "",
			 rl->policy_path && rl->audit ? " and " : "",
			 rl->audit	   ? "reopened the audit log"
			 : rl->policy_path ? ""
					   : "nothing to reload: no policy, no audit log");
	if (!failed && msg && msglen && ntemplates) {
		size_t used = strlen(msg);

		/* "nothing to reload: ..." would be wrong now; otherwise one more item. */
		if (!rl->policy_path && !rl->audit)
			used = 0;
		snprintf(msg + used, msglen - used, "%sreloaded %zu template%s",
			 used ? " and " : "", ntemplates, ntemplates == 1 ? "" : "s");
	}
	service_reloaded(failed);
	pthread_mutex_unlock(&lock);
	return failed ? -EINVAL : 0;
}

static int reload_for_control(void *ctx, char *msg, size_t msglen)
{
	return reload(ctx, msg, msglen);
}

static void *reload_thread(void *arg)
{
	struct reloader *rl = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	while (sigwait(&set, &sig) == 0 && !__atomic_load_n(&rl->stop, __ATOMIC_ACQUIRE))
		reload(rl, NULL, 0);
	return NULL;
}

/* FUSE worker threads unless -o max_threads says otherwise (libfuse's default is 10). */
#define SECRETFS_MAX_THREADS 64u

static int add_mount_defaults(struct fuse_args *args, const struct config *cfg)
{
	const char *fsname =
		!cfg->source || strpbrk(cfg->source, ",\\") ? "secretfs" : cfg->source;
	_cleanup_free_ char *first = NULL, *extra = NULL;

	/*
	 * fsname, subtype and max_threads may be overridden; the safety flags go
	 * last so that nothing (an fstab "defaults" means "rw") turns them off.
	 * A worker waits up to fetch_timeout on a cold name: libfuse's pool of 10
	 * would let ten slow fetches queue every other request, cached reads too.
	 */
	if (asprintf(&first, "-osubtype=secretfs,fsname=%s,auto_unmount,max_threads=%u", fsname,
		     SECRETFS_MAX_THREADS) < 0 ||
	    fuse_opt_insert_arg(args, 1, first) < 0)
		return -ENOMEM;
	if (cfg->fuse_options &&
	    (asprintf(&extra, "-o%s", cfg->fuse_options) < 0 || fuse_opt_add_arg(args, extra) < 0))
		return -ENOMEM;
	/* With a policy others may read, each as the policy says. */
	if (cfg->policy && fuse_opt_add_arg(args, "-oallow_other") < 0)
		return -ENOMEM;
	if (fuse_opt_add_arg(args, "-oro,nosuid,nodev,noexec") < 0)
		return -ENOMEM;
	return 0;
}

/* Whether any store is a network one: libcurl's global state costs megabytes of RSS. */
static bool needs_http(const struct config *cfg)
{
	if (!cfg->nsources)
		return cfg->source && strncmp(cfg->source, "file:", 5) != 0;
	for (size_t i = 0; i < cfg->nsources; i++)
		if (strncmp(cfg->sources[i].uri, "file:", 5) != 0)
			return true;
	return false;
}

/* What the log and the service status say is served. */
static const char *serving_what(const struct config *cfg)
{
	return cfg->nsources ? "several stores ([source NAME] sections)" : cfg->source;
}

/* A backend's warning (TLS verification off, ...), said once on the terminal. */
static void print_warnings(const struct source *src)
{
	const struct backend *b = source_backend(src);

	for (size_t i = 0; i < src->nchildren; i++)
		print_warnings(src->children[i]);
	if (b && b->warning[0] && src->name)
		fprintf(stderr, "secretfs: warning: source '%s': %s\n", src->name, b->warning);
	else if (b && b->warning[0])
		fprintf(stderr, "secretfs: warning: %s\n", b->warning);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct cmdline cl = { 0 };
	struct source *src = NULL;
	struct fs *fs = NULL;
	struct policy *policy = NULL;
	struct auditlog *audit = NULL;
	struct template_set *templates = NULL;
	struct reloader rl = { 0 };
	struct control *ctl = NULL;
	char *control_path = NULL;
	struct config cfg;
	pthread_t house;
	bool house_started = false, reloader_started = false;
	char reason[512] = "";
	sigset_t hup;
	int r, ret = 1;

	/* A subcommand that needs no mount, no root and no FUSE options. */
	if (argc >= 2 && strcmp(argv[1], "check-policy") == 0)
		return policy_check_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return control_client_main(argc - 1, argv + 1);

	config_init(&cfg);
	if (fuse_opt_parse(&args, &cl, our_opts, opt_proc) < 0 || cl.bad)
		goto out_args;
	if (cl.help) {
		usage(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (cl.version) {
		printf("secretfs %s\nlibfuse %s\n", SECRETFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (build_config(&cl, &cfg) < 0)
		goto out_args;
	/* fuse_parse_cmdline wants the mountpoint among the arguments. */
	if (fuse_opt_add_arg(&args, cfg.mountpoint) < 0 || add_mount_defaults(&args, &cfg) < 0)
		goto out_args;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	opts.foreground |= cfg.foreground || cfg.debug || opts.debug;
	cfg.debug |= opts.debug;
	log_open(false, cfg.debug);

	/* First, before OpenSSL allocates: its buffers (TLS records) are wiped when freed. */
	if (!secret_wipe_openssl_allocations())
		fprintf(stderr, "secretfs: warning: cannot install OpenSSL's wiping allocator\n");
	harden_process();
	ns_json_use_wiping_alloc();
	/* libcurl runs with CURLOPT_NOSIGNAL; a peer that hangs up must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * libcurl's global state, with wiping allocators: once, before any
	 * thread, and only for a network store (it costs megabytes of RSS).
	 */
	if (needs_http(&cfg) && http_global_init() < 0) {
		fprintf(stderr, "secretfs: cannot initialise libcurl\n");
		goto out_opts;
	}
	/* Early: a stale ready file goes even when the start fails below. */
	if (service_init(cl.ready_file, reason, sizeof(reason)) < 0) {
		fprintf(stderr, "secretfs: %s\n", reason);
		goto out_opts;
	}

	if (cfg.policy) {
		if (check_allow_other() < 0)
			goto out_opts;
		r = policy_load(cfg.policy, &policy, reason, sizeof(reason));
		if (r < 0) {
			fprintf(stderr, "secretfs: %s\n", reason);
			goto out_opts;
		}
	}
	if (cfg.audit) {
		if (strcmp(cfg.audit, "stderr") == 0 && !opts.foreground) {
			fprintf(stderr,
				"secretfs: audit=stderr needs -f: a daemon has no stderr\n");
			goto out_opts;
		}
		r = auditlog_open(cfg.audit, &audit, reason, sizeof(reason));
		if (r < 0) {
			fprintf(stderr, "secretfs: %s\n", reason);
			goto out_opts;
		}
	}

	/* Before the fork: a broken template is a start-up error, naming FILE:LINE:COL. */
	r = template_set_load(&cfg, cfg.meta_dir ? cfg.meta_dir : SECRETFS_META_DIR, &templates,
			      reason, sizeof(reason));
	if (r < 0) {
		fprintf(stderr, "secretfs: %s\n", reason);
		goto out_opts;
	}
	if (check_mount_prerequisites(opts.mountpoint) < 0)
		goto out_opts;
	if (!secret_heap_can_lock(heap_size_for(&cfg))) {
		/* Said now, while a terminal surely sees it; the heap is set up after the fork. */
		fprintf(stderr,
			"secretfs: warning: cannot lock %zu KiB of secret memory, values may be "
			"swapped: raise the memlock limit (ulimit -l, LimitMEMLOCK=) or grant "
			"CAP_IPC_LOCK\n",
			heap_size_for(&cfg) / 1024);
	}
	/*
	 * Fork before any credential or value is read: mlock() is not inherited,
	 * so the locked heap must be made by the process that serves, and it
	 * must exist before the store is parsed or a token is read.  Errors from
	 * here on still reach the terminal: the parent waits for "ready" or
	 * relays the child's exit status, and the child keeps its stderr until
	 * then.
	 */
	if (!opts.foreground && daemon_fork() < 0) {
		fprintf(stderr, "secretfs: cannot start the daemon: %s\n", strerror(errno));
		goto out_opts;
	}
	r = secret_heap_init(heap_size_for(&cfg), reason, sizeof(reason));
	if (r < 0) {
		fprintf(stderr, "secretfs: %s\n", reason);
		goto out_opts;
	}
	r = source_open(&cfg, &src, reason, sizeof(reason));
	if (r < 0) {
		fprintf(stderr, "secretfs: %s\n", reason);
		goto out_source;
	}
	print_warnings(src);

	r = fs_new(&(struct fs_params){ .source = src,
					.attr_timeout_usec = cfg.attr_timeout_usec,
					.owner = getuid(),
					.group = getgid(),
					.policy = policy,
					.audit = audit,
					.show_denied = cfg.show_denied,
					.hide_denied_size = cfg.hide_denied_size,
					.lookup_audit_usec = cfg.ttl_usec,
					.max_handles_per_uid = cfg.max_handles_per_uid,
					.meta_dir = cfg.meta_dir,
					.show_meta = cfg.show_meta,
					.view_env_upper = cfg.view_env_case &&
							  strcmp(cfg.view_env_case, "upper") == 0,
					.templates = templates,
					.max_render = cfg.http_max_body ? cfg.http_max_body
									: TEMPLATE_MAX_RENDER },
		   &fs);
	if (r < 0)
		goto out_source;
	policy = NULL; /* the fs owns it now */
	templates = NULL;
	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	if (!se)
		goto out_fs;
	fs_set_session(fs, se);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	/*
	 * Before any thread exists, so that all of them inherit the mask.
	 * SIGTERM and SIGINT are blocked too until the loop starts: libfuse's
	 * handler only ends the session promptly when it runs on the main
	 * thread or a FUSE worker, whose blocking call it interrupts; our own
	 * threads (file watch, renewal, housekeeping, control) must not take it.
	 */
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigaddset(&hup, SIGTERM);
	sigaddset(&hup, SIGINT);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
	sigdelset(&hup, SIGHUP); /* what the main thread unblocks before the loop */
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	if (fs_session_io(fs, se, !opts.singlethread) < 0)
		goto out_unmount;

	r = source_start(src, reason, sizeof(reason));
	if (r < 0) {
		fprintf(stderr, "secretfs: %s\n", reason);
		goto out_unmount;
	}
	r = pthread_create(&house, NULL, housekeeping, src);
	if (r != 0)
		goto out_unmount;
	house_started = true;
	rl = (struct reloader){ .policy_path = cfg.policy,
				.templates_from = &cfg,
				.meta_dir = cfg.meta_dir ? cfg.meta_dir : SECRETFS_META_DIR,
				.fs = fs,
				.audit = audit,
				.audit_target = cfg.audit,
				.cl = &cl };
	if (pthread_create(&rl.thread, NULL, reload_thread, &rl) != 0)
		goto out_unmount;
	reloader_started = true;
	/* The admin socket; before readiness, so that "ready" means it answers. */
	if (cfg.control) {
		r = control_socket_path(cfg.control, opts.mountpoint, &control_path, reason,
					sizeof(reason));
		if (r >= 0 && control_path)
			r = control_start(&(struct control_params){ .socket_path = control_path,
								    .admin = cfg.control_admin,
								    .mountpoint = opts.mountpoint,
								    .policy_path = cfg.policy,
								    .source = src,
								    .fs = fs,
								    .audit = audit,
								    .reload = reload_for_control,
								    .reload_ctx = &rl },
					  &ctl, reason, sizeof(reason));
		if (r < 0) {
			fprintf(stderr, "secretfs: %s\n", reason);
			goto out_unmount;
		}
	}

	log_info("serving %s at %s", serving_what(&cfg), opts.mountpoint);
	/* READY=1 and the ready file: the mount is live, requests queue until the loop runs. */
	if (service_ready(serving_what(&cfg), opts.mountpoint, reason, sizeof(reason)) < 0) {
		log_error("%s", reason);
		goto out_unmount;
	}
	daemon_ready(opts.foreground);
	/* The loop's threads inherit this: they, and not ours, take SIGTERM/SIGINT. */
	pthread_sigmask(SIG_UNBLOCK, &hup, NULL);

	if (opts.singlethread) {
		r = fuse_session_loop(se);
	} else {
		loop_cfg = fuse_loop_cfg_create();
		if (!loop_cfg)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(loop_cfg, (unsigned)opts.clone_fd);
		if (opts.max_idle_threads != UINT_MAX) /* UINT_MAX: not given */
			fuse_loop_cfg_set_idle_threads(loop_cfg, opts.max_idle_threads);
		fuse_loop_cfg_set_max_threads(loop_cfg, opts.max_threads);
		r = fuse_session_loop_mt(se, loop_cfg);
	}
	/* The loop returns the signal that ended it: a clean stop. */
	ret = r < 0 ? 1 : 0;
	log_info("unmounting %s", opts.mountpoint);

out_unmount:
	service_stopping(); /* STOPPING=1, the ready file removed: before the mount goes */
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_fs:
	control_stop(ctl); /* it uses the reloader, the fs and the source */
	if (reloader_started) {
		__atomic_store_n(&rl.stop, true, __ATOMIC_RELEASE);
		pthread_kill(rl.thread, SIGHUP);
		pthread_join(rl.thread, NULL);
		config_done(&rl.cfg);
	}
	if (house_started) {
		pthread_mutex_lock(&house_lock);
		house_stop = true;
		pthread_cond_signal(&house_cond);
		pthread_mutex_unlock(&house_lock);
		pthread_join(house, NULL);
	}
	fs_free(fs);
out_source:
	source_close(src); /* wipes every cached value */
	secret_heap_done();
out_opts:
	if (policy)
		policy_unref(policy);
	template_set_unref(templates);
	auditlog_close(audit);
	service_done();
	fuse_loop_cfg_destroy(loop_cfg);
	if (needs_http(&cfg))
		http_global_cleanup();
	free(opts.mountpoint);
	free(control_path);
out_args:
	fuse_opt_free_args(&args);
	cmdline_done(&cl);
	config_done(&cfg);
	return ret;
}
