/*
 * aws_creds.c - the AWS credential providers and the chain that picks one
 * (see aws_creds.h).  What each provider reads, in the order tried:
 *
 *   environment     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *                   (skipped when -o aws_profile names a profile, as the CLI's
 *                   --profile does)
 *   web identity    AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME
 *                   (or the profile's web_identity_token_file, role_arn,
 *                   role_session_name): an unsigned STS AssumeRoleWithWebIdentity,
 *                   the token file read again for every refresh
 *   shared files    the profile's static keys in the credentials file
 *                   (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials), its
 *                   credential_process, its static keys in the config file
 *                   (AWS_CONFIG_FILE, ~/.aws/config)
 *   container       AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI, with
 *                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read every time) or
 *                   AWS_CONTAINER_AUTHORIZATION_TOKEN
 *   instance        IMDSv2 at AWS_EC2_METADATA_SERVICE_ENDPOINT (default
 *   metadata        http://169.254.169.254), unless AWS_EC2_METADATA_DISABLED=true;
 *                   1 s and one attempt per request, so a host that is not on
 *                   EC2 fails fast
 *
 * A provider that is configured but fails ends the chain with its error, as
 * in botocore; one that is not configured (or instance metadata that does
 * not answer) passes to the next.
 *
 * credential_process runs as botocore runs it: the command line split like
 * a shell would (shlex) but no shell, stdin and stderr on /dev/null, no
 * other descriptor, default signals, and an environment from which the
 * AWS secrets were removed at init.  Its output is bounded and wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/aws_creds.h"
#include "backends/aws_creds_parse.h"
#include "backends/kit.h"
#include "secretfs/util.h"

extern char **environ;

/* Temporary credentials are fetched again this long before they expire. */
#define REFRESH_BEFORE_USEC (5 * 60 * USEC_PER_SEC)
/* Inside that window, a refresh is tried at most this often (a store may hand out the same). */
#define REFRESH_RETRY_USEC (1 * USEC_PER_SEC)
/* A credential_process that runs longer than this is killed. */
#define PROCESS_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define IMDS_DEFAULT	     "http://169.254.169.254"
#define IMDS_DEFAULT_V6	     "http://[fd00:ec2::254]"
#define IMDS_TOKEN_TTL	     "21600"
#define WHY_MAX		     256

enum provider {
	P_NONE,
	P_ENV,
	P_WEB_IDENTITY,
	P_PROFILE, /* static keys of the credentials file */
	P_PROCESS,
	P_CONFIG, /* static keys of the config file */
	P_CONTAINER,
	P_IMDS,
};

struct aws_creds {
	enum provider kind;
	char source[256]; /* for messages */
	char *profile;
	bool profile_explicit; /* -o aws_profile */
	struct aws_env_secrets env;
	struct aws_profile creds_file, config_file;
	char *creds_path, *config_path;

	/* The chosen provider's settings. */
	char *role_arn, *session_name, *token_file; /* web identity */
	struct aws_endpoint sts;
	char **argv;				    /* credential_process */
	char *container_url, *container_token_file; /* container; env.container_token */
	char *imds;				    /* instance metadata base URL */
	struct http_client *http;		    /* STS: TLS settings, retries */
	struct http_client *meta;		    /* instance metadata: 1 s, one attempt */
	struct http_client *cont;		    /* container: 2 s, three attempts */

	/*
	 * The credentials, "KEYID\0SECRET\0TOKEN\0" (TOKEN empty when there is
	 * none), refreshed through the chosen provider by the kit's token
	 * source; the first set waits in @first until the chain has chosen.
	 */
	struct kit_token_source *ts;
	struct secret *first;
	uint64_t first_expires_usec;
};

/* ---- small helpers ---- */

static void wipe_str(char **s)
{
	if (*s)
		wipe_free(*s, strlen(*s));
	*s = NULL;
}

/* "true" in any case, as botocore compares AWS_EC2_METADATA_DISABLED. */
static bool env_true(const char *name)
{
	const char *v = kit_env(name);

	return v && strcasecmp(v, "true") == 0;
}

void aws_env_secrets_take(struct aws_env_secrets *ret)
{
	char *legacy;

	ret->access_key_id = kit_env_take("AWS_ACCESS_KEY_ID");
	ret->secret_access_key = kit_env_take("AWS_SECRET_ACCESS_KEY");
	ret->session_token = kit_env_take("AWS_SESSION_TOKEN");
	legacy = kit_env_take("AWS_SECURITY_TOKEN");
	if (!ret->session_token)
		ret->session_token = TAKE_PTR(legacy);
	wipe_str(&legacy);
	ret->container_token = kit_env_take("AWS_CONTAINER_AUTHORIZATION_TOKEN");
}

void aws_env_secrets_done(struct aws_env_secrets *e)
{
	wipe_str(&e->access_key_id);
	wipe_str(&e->secret_access_key);
	wipe_str(&e->session_token);
	wipe_str(&e->container_token);
}

/* "~/x" with the home directory, as botocore expands the file settings. */
static char *expand_home(const char *path)
{
	const char *home = kit_home_dir();
	char *out;

	if (path[0] == '~' && (path[1] == '/' || !path[1]) && home) {
		if (asprintf(&out, "%s%s", home, path + 1) < 0)
			return NULL;
		return out;
	}
	return strdup(path);
}

/*
 * A 200 from a credential endpoint whose document is unusable: malformed
 * (transient, backend.h), as a garbled value answer is.  The same parsers
 * read credential_process output, which stays -EIO: that is our own setup.
 */
static int malformed(int r)
{
	return r == -EIO ? -EBADMSG : r;
}

/* ---- the providers ---- */

static int fetch_web_identity(struct aws_creds *c, struct aws_credentials *ret, char *reason,
			      size_t reasonlen)
{
	_cleanup_free_ char *arn = NULL, *session = NULL;
	struct secret *jwt = NULL;
	char *enc = NULL, *body = NULL;
	struct http_response resp = { 0 };
	char why[WHY_MAX], code[AWS_CODE_MAX], msg[AWS_MESSAGE_MAX + 1];
	int r, n;

	/* Kubernetes rotates the projected token: read it for every call. */
	r = kit_read_credential(c->token_file, "web identity token file", AWS_TOKEN_MAX, &jwt,
				reason, reasonlen);
	if (r < 0)
		return r;
	arn = http_escape_path(c->role_arn, false);
	session = http_escape_path(c->session_name, false);
	enc = http_escape_path(kit_cred_str(jwt), false);
	secret_unref(jwt);
	if (!arn || !session || !enc) {
		wipe_str(&enc);
		return -ENOMEM;
	}
	n = asprintf(&body,
		     "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s"
		     "&RoleSessionName=%s&WebIdentityToken=%s",
		     arn, session, enc);
	wipe_str(&enc);
	if (n < 0)
		return -ENOMEM;
	r = http_do(c->http,
		    &(struct http_request){
			    .method = "POST",
			    .url = c->sts.url,
			    .body = body,
			    .body_len = (size_t)n,
			    .content_type = "application/x-www-form-urlencoded; charset=utf-8" },
		    &resp, why, sizeof(why));
	wipe_free(body, (size_t)n);
	if (r < 0) {
		snprintf(reason, reasonlen, "STS %s: %s", c->sts.url, why);
		return r;
	}
	if (resp.status == 200) {
		r = malformed(aws_parse_sts_credentials(resp.body, resp.body_len, ret, reason,
							reasonlen));
	} else {
		aws_parse_sts_error(resp.body, resp.body_len, code, sizeof(code), msg, sizeof(msg));
		r = aws_error_to_errno(code, resp.status);
		snprintf(reason, reasonlen, "STS AssumeRoleWithWebIdentity: %s%s%s (%ld)",
			 code[0] ? code : "failed", msg[0] ? ": " : "", msg, resp.status);
	}
	http_response_done(&resp);
	return r;
}

/* Runs credential_process and parses what it prints. */
static int fetch_process(struct aws_creds *c, struct aws_credentials *ret, char *reason,
			 size_t reasonlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, deflt;
	size_t len = 0;
	uint64_t deadline;
	int fds[2], status = 0, r;
	bool timed_out = false, too_big = false;
	_cleanup_free_ char *prog = NULL;
	char *out;
	pid_t pid;

	/* Whoever can replace the program decides the credentials: checked like the policy. */
	r = trusted_program(c->argv[0], "credential_process program", &prog, reason, reasonlen);
	if (r < 0)
		return r;
	out = malloc(AWS_PROCESS_MAX + 1);
	if (!out)
		return -ENOMEM;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		r = -errno;
		free(out);
		snprintf(reason, reasonlen, "credential_process: pipe: %s", strerror(-r));
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	/* Its stderr is its own business: what it says there could be anything. */
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&deflt);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, prog, &fa, &attr, c->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(fds[1]);
	if (r != 0) {
		close(fds[0]);
		free(out);
		snprintf(reason, reasonlen, "credential_process of profile %s: cannot run it: %s",
			 c->profile, strerror(r));
		return -r;
	}
	deadline = now_usec() + PROCESS_TIMEOUT_USEC;
	for (;;) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		uint64_t now = now_usec();
		ssize_t n;

		if (now >= deadline) {
			timed_out = true;
			break;
		}
		r = poll(&pfd, 1, (int)((deadline - now) / USEC_PER_MSEC) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0)
			continue;
		n = read(fds[0], out + len, AWS_PROCESS_MAX + 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > AWS_PROCESS_MAX) {
			too_big = true;
			break;
		}
	}
	close(fds[0]);
	if (timed_out || too_big)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out || too_big) {
		snprintf(reason, reasonlen, "credential_process of profile %s: %s", c->profile,
			 timed_out ? "still running after 60 s, killed"
				   : "printed more than 64 KiB, killed");
		r = timed_out ? -ETIMEDOUT : -EFBIG;
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFEXITED(status))
			snprintf(reason, reasonlen,
				 "credential_process of profile %s exited with "
				 "status %d",
				 c->profile, WEXITSTATUS(status));
		else
			snprintf(reason, reasonlen,
				 "credential_process of profile %s was killed by signal %d",
				 c->profile, WTERMSIG(status));
		r = -EIO;
	} else {
		r = aws_parse_json_credentials(AWS_JSON_PROCESS, out, len, ret, reason, reasonlen);
	}
	wipe_free(out, AWS_PROCESS_MAX + 1);
	return r;
}

static int fetch_container(struct aws_creds *c, struct aws_credentials *ret, char *reason,
			   size_t reasonlen)
{
	struct http_header h[2] = { { "Accept", "application/json", false } };
	struct http_response resp = { 0 };
	_cleanup_secret_ struct secret *file_token = NULL;
	const char *token = c->env.container_token;
	char why[WHY_MAX];
	size_t n = 1;
	int r;

	if (c->container_token_file) {
		r = kit_read_credential(c->container_token_file,
					"container authorization token file", AWS_TOKEN_MAX,
					&file_token, reason, reasonlen);
		if (r < 0)
			return r;
		token = kit_cred_str(file_token);
	}
	if (token) {
		if (!*token || strpbrk(token, "\r\n")) {
			snprintf(reason, reasonlen,
				 "the container authorization token holds a line break");
			return -EINVAL;
		}
		h[n++] = (struct http_header){ "Authorization", token, true };
	}
	r = http_do(c->cont,
		    &(struct http_request){
			    .method = "GET", .url = c->container_url, .headers = h, .nheaders = n },
		    &resp, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "container credentials %s: %s", c->container_url, why);
		return r;
	}
	if (resp.status == 200) {
		r = malformed(aws_parse_json_credentials(AWS_JSON_CONTAINER, resp.body,
							 resp.body_len, ret, reason, reasonlen));
	} else {
		r = kit_status_errno(resp.status);
		snprintf(reason, reasonlen, "container credentials %s answered %ld%s",
			 c->container_url, resp.status,
			 resp.status == 401 || resp.status == 403
				 ? " (check AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE])"
				 : "");
	}
	http_response_done(&resp);
	return r;
}

/* One instance metadata request; the body of a 200 is the caller's to free. */
static int imds_call(struct aws_creds *c, const char *method, const char *path,
		     const struct http_header *h, size_t nh, struct http_response *resp,
		     char *reason, size_t reasonlen)
{
	_cleanup_free_ char *url = NULL;
	char why[WHY_MAX];
	int r;

	if (asprintf(&url, "%s%s", c->imds, path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	r = http_do(c->meta,
		    &(struct http_request){
			    .method = method, .url = url, .headers = h, .nheaders = nh },
		    resp, why, sizeof(why));
	if (r < 0)
		snprintf(reason, reasonlen, "instance metadata %s: %s", c->imds, why);
	return r;
}

static int fetch_imds(struct aws_creds *c, struct aws_credentials *ret, char *reason,
		      size_t reasonlen)
{
	static const char creds_path[] = "/latest/meta-data/iam/security-credentials/";
	struct http_header h[1];
	struct http_response resp = { 0 };
	_cleanup_free_ char *path = NULL;
	char *token = NULL, role[256];
	size_t nh = 0, rl;
	int r;

	/* IMDSv2: a session token first; a 403, 404 or 405 means v1 only, as botocore takes it. */
	h[0] = (struct http_header){ "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL,
				     false };
	r = imds_call(c, "PUT", "/latest/api/token", h, 1, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	if (resp.status == 200) {
		if (!aws_token_is_valid(resp.body, resp.body_len, 4096)) {
			snprintf(reason, reasonlen, "instance metadata %s: a malformed token",
				 c->imds);
			http_response_done(&resp);
			return -EBADMSG;
		}
		token = strndup(resp.body, resp.body_len);
		http_response_done(&resp);
		if (!token)
			return -ENOMEM;
		h[0] = (struct http_header){ "X-aws-ec2-metadata-token", token, true };
		nh = 1;
	} else if (resp.status != 403 && resp.status != 404 && resp.status != 405) {
		snprintf(reason, reasonlen, "instance metadata %s: the token request answered %ld",
			 c->imds, resp.status);
		r = kit_status_errno(resp.status);
		http_response_done(&resp);
		return r;
	} else {
		http_response_done(&resp);
	}

	r = imds_call(c, "GET", creds_path, h, nh, &resp, reason, reasonlen);
	if (r < 0)
		goto out;
	rl = strcspn(resp.body, "\r\n");
	if (resp.status != 200 || rl == 0 || rl >= sizeof(role) ||
	    strspn(resp.body,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-") < rl) {
		if (resp.status == 404)
			snprintf(reason, reasonlen, "instance metadata %s: no IAM role is attached",
				 c->imds);
		else
			snprintf(reason, reasonlen,
				 "instance metadata %s: the role list answered %ld%s", c->imds,
				 resp.status,
				 resp.status == 200 ? " without a usable role name" : "");
		r = resp.status == 200 ? -EBADMSG : kit_status_errno(resp.status);
		http_response_done(&resp);
		goto out;
	}
	memcpy(role, resp.body, rl);
	role[rl] = '\0';
	http_response_done(&resp);
	if (asprintf(&path, "%s%s", creds_path, role) < 0) {
		path = NULL;
		r = -ENOMEM;
		goto out;
	}
	r = imds_call(c, "GET", path, h, nh, &resp, reason, reasonlen);
	if (r < 0)
		goto out;
	if (resp.status == 200) {
		r = malformed(aws_parse_json_credentials(AWS_JSON_IMDS, resp.body, resp.body_len,
							 ret, reason, reasonlen));
	} else {
		snprintf(reason, reasonlen,
			 "instance metadata %s: the credentials of role %s answered %ld", c->imds,
			 role, resp.status);
		r = kit_status_errno(resp.status);
	}
	http_response_done(&resp);
out:
	wipe_str(&token);
	return r;
}

/* New credentials from the chosen provider. */
static int provider_fetch(struct aws_creds *c, struct aws_credentials *ret, char *reason,
			  size_t reasonlen)
{
	switch (c->kind) {
	case P_WEB_IDENTITY:
		return fetch_web_identity(c, ret, reason, reasonlen);
	case P_PROCESS:
		return fetch_process(c, ret, reason, reasonlen);
	case P_CONTAINER:
		return fetch_container(c, ret, reason, reasonlen);
	case P_IMDS:
		return fetch_imds(c, ret, reason, reasonlen);
	default:
		snprintf(reason, reasonlen, "the credentials from %s cannot be refreshed",
			 c->source);
		return -EACCES;
	}
}

/* Packs @cr (wiped) into a new secret, "KEYID\0SECRET\0TOKEN\0"; NULL on ENOMEM. */
static struct secret *pack(struct aws_credentials *cr)
{
	size_t kl = strlen(cr->access_key_id), sl = strlen(cr->secret_access_key);
	size_t tl = cr->session_token ? strlen(cr->session_token) : 0;
	struct secret *s = secret_new(kl + sl + tl + 3);

	if (s) {
		memcpy(s->data, cr->access_key_id, kl + 1);
		memcpy(s->data + kl + 1, cr->secret_access_key, sl + 1);
		if (tl)
			memcpy(s->data + kl + sl + 2, cr->session_token, tl + 1);
	}
	aws_credentials_wipe(cr);
	return s;
}

/* Keeps @cr (wiped) as the first credentials, until the chain is done. */
static int install_first(struct aws_creds *c, struct aws_credentials *cr)
{
	uint64_t exp = cr->expiration_usec;

	secret_unref(c->first);
	c->first = pack(cr);
	c->first_expires_usec = exp;
	return c->first ? 0 : -ENOMEM;
}

/* A refresh of the token source: new credentials from the chosen provider. */
static int refresh(void *ctx, struct secret **ret, uint64_t *ret_expires_usec, char *reason,
		   size_t reasonlen)
{
	struct aws_credentials cr = { 0 };
	struct aws_creds *c = ctx;
	int r;

	r = provider_fetch(c, &cr, reason, reasonlen);
	if (r < 0)
		return r;
	*ret_expires_usec = cr.expiration_usec;
	*ret = pack(&cr);
	return *ret ? 0 : -ENOMEM;
}

/* ---- the chain ---- */

/* Appends "; @fmt" to the list of what was tried. */
static void tried(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tried(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 3 >= len)
		return;
	if (used) {
		buf[used++] = ';';
		buf[used++] = ' ';
		buf[used] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* Loads one shared file's section of the profile; a missing file is an empty one. */
static int load_shared(const char *path, bool config, const char *profile, struct aws_profile *ret,
		       char *reason, size_t reasonlen)
{
	char *text = NULL, why[WHY_MAX];
	size_t len = 0;
	int r;

	/*
	 * Checked like the policy: whoever can write the shared files, or a
	 * directory above them, chooses the identity the daemon takes, or a
	 * credential_process it runs.
	 */
	r = trusted_file_read(path, "file", AWS_FILE_MAX, &text, &len, NULL, why, sizeof(why));
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		snprintf(reason, reasonlen, "%s", why);
		return r;
	}
	r = aws_parse_shared_file(text, len, config, profile, ret, why, sizeof(why));
	wipe_free(text, len + 1);
	if (r < 0)
		snprintf(reason, reasonlen, "%s: %s", path, why);
	return r;
}

int aws_creds_new(const char *profile, struct aws_env_secrets *env, struct aws_creds **ret,
		  char *reason, size_t reasonlen)
{
	const char *p = profile, *home = kit_home_dir();
	const char *cf = kit_env("AWS_SHARED_CREDENTIALS_FILE");
	const char *gf = kit_env("AWS_CONFIG_FILE");
	struct aws_creds *c;
	bool explicit = true;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		aws_env_secrets_done(env);
		return -ENOMEM;
	}
	c->env = *env;
	*env = (struct aws_env_secrets){ 0 };
	c->profile_explicit = profile != NULL;
	if (!p)
		p = kit_env("AWS_PROFILE");
	if (!p)
		p = kit_env("AWS_DEFAULT_PROFILE");
	if (!p) {
		p = "default";
		explicit = false;
	}
	c->profile = strdup(p);
	if (cf)
		c->creds_path = expand_home(cf);
	else if (home && asprintf(&c->creds_path, "%s/.aws/credentials", home) < 0)
		c->creds_path = NULL;
	if (gf)
		c->config_path = expand_home(gf);
	else if (home && asprintf(&c->config_path, "%s/.aws/config", home) < 0)
		c->config_path = NULL;
	if (!c->profile || (!c->creds_path && (cf || home)) || (!c->config_path && (gf || home))) {
		r = -ENOMEM;
		goto fail;
	}
	if (c->creds_path) {
		r = load_shared(c->creds_path, false, c->profile, &c->creds_file, reason,
				reasonlen);
		if (r < 0)
			goto fail;
	}
	if (c->config_path) {
		r = load_shared(c->config_path, true, c->profile, &c->config_file, reason,
				reasonlen);
		if (r < 0)
			goto fail;
	}
	if (explicit && !c->creds_file.found && !c->config_file.found) {
		snprintf(reason, reasonlen,
			 "the AWS profile '%.64s' (from %s) is in neither %s nor %s", c->profile,
			 profile ? "-o aws_profile" : "AWS_PROFILE",
			 c->creds_path ? c->creds_path : "~/.aws/credentials",
			 c->config_path ? c->config_path : "~/.aws/config");
		r = -ENOENT;
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	aws_creds_free(c);
	return r;
}

const char *aws_creds_profile_region(const struct aws_creds *c)
{
	return c->config_file.region && *c->config_file.region ? c->config_file.region : NULL;
}

const char *aws_creds_source(const struct aws_creds *c)
{
	return c->source;
}

/* Static keys of a profile: both or neither (botocore's partial credentials error). */
static int profile_keys(struct aws_creds *c, struct aws_profile *pf, const char *path,
			enum provider kind, char *reason, size_t reasonlen)
{
	struct aws_credentials cr = { 0 };

	if (!pf->aws_access_key_id && !pf->aws_secret_access_key)
		return 0;
	if (!pf->aws_access_key_id || !pf->aws_secret_access_key) {
		snprintf(reason, reasonlen, "profile %s in %s has %s but not %s", c->profile, path,
			 pf->aws_access_key_id ? "aws_access_key_id" : "aws_secret_access_key",
			 pf->aws_access_key_id ? "aws_secret_access_key" : "aws_access_key_id");
		return -EINVAL;
	}
	if (!aws_token_is_valid(pf->aws_access_key_id, strlen(pf->aws_access_key_id),
				AWS_KEY_ID_MAX) ||
	    !aws_token_is_valid(pf->aws_secret_access_key, strlen(pf->aws_secret_access_key),
				AWS_SECRET_KEY_MAX) ||
	    (pf->aws_session_token && *pf->aws_session_token &&
	     !aws_token_is_valid(pf->aws_session_token, strlen(pf->aws_session_token),
				 AWS_SESSION_MAX))) {
		snprintf(reason, reasonlen, "profile %s in %s: a key or token is malformed",
			 c->profile, path);
		return -EINVAL;
	}
	cr.access_key_id = TAKE_PTR(pf->aws_access_key_id);
	cr.secret_access_key = TAKE_PTR(pf->aws_secret_access_key);
	cr.session_token = pf->aws_session_token && *pf->aws_session_token
				   ? TAKE_PTR(pf->aws_session_token)
				   : NULL;
	c->kind = kind;
	snprintf(c->source, sizeof(c->source), "profile %s in %s", c->profile, path);
	return install_first(c, &cr) < 0 ? -ENOMEM : 1;
}

/* Fetches the first credentials of the chosen provider; @what names it in errors. */
static int first_fetch(struct aws_creds *c, enum provider kind, char *reason, size_t reasonlen)
{
	struct aws_credentials cr = { 0 };
	int r;

	c->kind = kind;
	r = provider_fetch(c, &cr, reason, reasonlen);
	if (r < 0)
		return r;
	r = install_first(c, &cr);
	return r < 0 ? r : 1;
}

static int try_env(struct aws_creds *c, char *list, size_t listlen, char *reason, size_t reasonlen)
{
	struct aws_credentials cr = { 0 };
	struct aws_env_secrets *e = &c->env;

	if (c->profile_explicit) {
		tried(list, listlen, "environment (skipped: -o aws_profile names a profile)");
		return 0;
	}
	if (!e->access_key_id && !e->secret_access_key) {
		tried(list, listlen, "environment (AWS_ACCESS_KEY_ID unset)");
		return 0;
	}
	if (!e->access_key_id || !e->secret_access_key) {
		snprintf(reason, reasonlen, "%s is set but %s is not",
			 e->access_key_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			 e->access_key_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		return -EINVAL;
	}
	if (!aws_token_is_valid(e->access_key_id, strlen(e->access_key_id), AWS_KEY_ID_MAX) ||
	    !aws_token_is_valid(e->secret_access_key, strlen(e->secret_access_key),
				AWS_SECRET_KEY_MAX) ||
	    (e->session_token &&
	     !aws_token_is_valid(e->session_token, strlen(e->session_token), AWS_SESSION_MAX))) {
		snprintf(reason, reasonlen,
			 "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN is "
			 "malformed (printable characters only, no blanks)");
		return -EINVAL;
	}
	cr.access_key_id = TAKE_PTR(e->access_key_id);
	cr.secret_access_key = TAKE_PTR(e->secret_access_key);
	cr.session_token = TAKE_PTR(e->session_token);
	c->kind = P_ENV;
	snprintf(c->source, sizeof(c->source), "the environment");
	return install_first(c, &cr) < 0 ? -ENOMEM : 1;
}

static int try_web_identity(struct aws_creds *c, char *list, size_t listlen, char *reason,
			    size_t reasonlen)
{
	const char *file = kit_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *arn = kit_env("AWS_ROLE_ARN");
	const char *name = kit_env("AWS_ROLE_SESSION_NAME");
	char why[WHY_MAX];
	int r;

	if (!file && !arn) {
		file = c->config_file.web_identity_token_file;
		arn = c->config_file.role_arn;
		name = c->config_file.role_session_name;
		if (!file) {
			tried(list, listlen, "web identity (AWS_WEB_IDENTITY_TOKEN_FILE unset)");
			return 0;
		}
	}
	if (!file || !arn) {
		tried(list, listlen, "web identity (%s set without %s)",
		      file ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN",
		      file ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
		return 0;
	}
	c->token_file = expand_home(file);
	c->role_arn = strdup(arn);
	if (name)
		c->session_name = strdup(name);
	else if (asprintf(&c->session_name, "secretfs-%lld", (long long)time(NULL)) < 0)
		c->session_name = NULL;
	if (!c->token_file || !c->role_arn || !c->session_name)
		return -ENOMEM;
	snprintf(c->source, sizeof(c->source), "web identity (role %.200s)", arn);
	r = first_fetch(c, P_WEB_IDENTITY, why, sizeof(why));
	if (r < 0)
		snprintf(reason, reasonlen, "%s: %s", c->source, why);
	return r;
}

static int try_shared(struct aws_creds *c, char *list, size_t listlen, char *reason,
		      size_t reasonlen)
{
	struct aws_profile *cf = &c->creds_file, *gf = &c->config_file;
	const char *cmd = cf->credential_process ? cf->credential_process : gf->credential_process;
	char why[WHY_MAX];
	int r;

	/* Assume-role profiles come before everything else in botocore; we cannot do them. */
	if (gf->role_arn && (gf->source_profile || gf->credential_source)) {
		snprintf(reason, reasonlen,
			 "profile %s assumes a role with %s, which secretfs does not do: give it "
			 "credentials of its own, or use web identity or credential_process",
			 c->profile, gf->source_profile ? "source_profile" : "credential_source");
		return -EOPNOTSUPP;
	}
	r = profile_keys(c, cf, c->creds_path, P_PROFILE, reason, reasonlen);
	if (r != 0)
		return r;
	if (cmd && *cmd) {
		r = aws_shell_split(cmd, &c->argv, why, sizeof(why));
		if (r < 0) {
			snprintf(reason, reasonlen, "profile %s: %s", c->profile, why);
			return r;
		}
		snprintf(c->source, sizeof(c->source), "credential_process of profile %s",
			 c->profile);
		r = first_fetch(c, P_PROCESS, reason, reasonlen);
		return r;
	}
	r = profile_keys(c, gf, c->config_path, P_CONFIG, reason, reasonlen);
	if (r != 0)
		return r;
	if (gf->sso_start_url)
		tried(list, listlen, "profile %s (an SSO profile: not supported)", c->profile);
	else
		tried(list, listlen, "profile %s (%s)", c->profile,
		      cf->found || gf->found ? "no keys, no credential_process"
					     : "not in ~/.aws/credentials or config");
	return 0;
}

static int try_container(struct aws_creds *c, const struct http_config *hc, char *list,
			 size_t listlen, char *reason, size_t reasonlen)
{
	const char *rel = kit_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = kit_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tf = kit_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	struct http_config cc = *hc;
	char why[WHY_MAX];
	int r;

	if (!rel && !full) {
		tried(list, listlen, "container (AWS_CONTAINER_CREDENTIALS_*_URI unset)");
		return 0;
	}
	r = aws_container_url(rel, full, &c->container_url, reason, reasonlen);
	if (r < 0)
		return r;
	if (tf) {
		c->container_token_file = strdup(tf);
		if (!c->container_token_file)
			return -ENOMEM;
	}
	/* botocore: 2 s per attempt, 3 attempts. */
	cc.connect_timeout_usec = 2 * USEC_PER_SEC;
	cc.timeout_usec = 2 * USEC_PER_SEC;
	cc.max_attempts = 3;
	r = http_client_new(&cc, &c->cont, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "container credentials: %s", why);
		return r;
	}
	snprintf(c->source, sizeof(c->source), "container credentials (%.200s)", c->container_url);
	return first_fetch(c, P_CONTAINER, reason, reasonlen);
}

static int try_imds(struct aws_creds *c, char *list, size_t listlen, char *reason, size_t reasonlen)
{
	const char *ep = kit_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = kit_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	struct http_config mc = {
		.connect_timeout_usec = 1 * USEC_PER_SEC,
		.timeout_usec = 1 * USEC_PER_SEC,
		.max_attempts = 1,
		.max_body = 64 * 1024,
	};
	char why[WHY_MAX];
	size_t n;
	int r;

	if (env_true("AWS_EC2_METADATA_DISABLED")) {
		tried(list, listlen, "instance metadata (AWS_EC2_METADATA_DISABLED=true)");
		return 0;
	}
	if (!ep)
		ep = mode && strcasecmp(mode, "IPv6") == 0 ? IMDS_DEFAULT_V6 : IMDS_DEFAULT;
	if ((strncasecmp(ep, "http://", 7) != 0 && strncasecmp(ep, "https://", 8) != 0) ||
	    strpbrk(ep, " \t\r\n?#@")) {
		snprintf(reason, reasonlen,
			 "AWS_EC2_METADATA_SERVICE_ENDPOINT is not an http:// URL");
		return -EINVAL;
	}
	n = strlen(ep);
	while (n && ep[n - 1] == '/')
		n--;
	c->imds = strndup(ep, n);
	if (!c->imds)
		return -ENOMEM;
	r = http_client_new(&mc, &c->meta, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "instance metadata: %s", why);
		return r;
	}
	snprintf(c->source, sizeof(c->source), "instance metadata (%.200s)", c->imds);
	r = first_fetch(c, P_IMDS, why, sizeof(why));
	if (r >= 0)
		return r;
	/* Not on EC2, or no role: the chain is just out of providers. */
	tried(list, listlen, "%s", why);
	c->kind = P_NONE;
	return 0;
}

int aws_creds_resolve(struct aws_creds *c, const struct aws_endpoint *sts,
		      const struct http_config *http, uint64_t wait_usec, char *reason,
		      size_t reasonlen)
{
	char list[640] = "", what[300];
	bool refreshable;
	int r;

	/* STS is only asked for web identity, but its client is cheap to have ready. */
	c->sts = (struct aws_endpoint){ strdup(sts->url), strdup(sts->host), strdup(sts->path),
					sts->tls };
	if (!c->sts.url || !c->sts.host || !c->sts.path)
		return -ENOMEM;
	r = http_client_new(http, &c->http, reason, reasonlen);
	if (r < 0)
		return r;
	r = try_env(c, list, sizeof(list), reason, reasonlen);
	if (r == 0)
		r = try_web_identity(c, list, sizeof(list), reason, reasonlen);
	if (r == 0)
		r = try_shared(c, list, sizeof(list), reason, reasonlen);
	if (r == 0)
		r = try_container(c, http, list, sizeof(list), reason, reasonlen);
	if (r == 0)
		r = try_imds(c, list, sizeof(list), reason, reasonlen);
	/* The keys of the files and the environment are not needed any more. */
	aws_profile_done(&c->creds_file);
	aws_profile_done(&c->config_file);
	wipe_str(&c->env.access_key_id);
	wipe_str(&c->env.secret_access_key);
	wipe_str(&c->env.session_token);
	if (r < 0)
		return r;
	if (r == 0) {
		snprintf(reason, reasonlen, "no AWS credentials found; tried: %s", list);
		return -ENOKEY;
	}
	refreshable = c->kind == P_WEB_IDENTITY || c->kind == P_PROCESS || c->kind == P_CONTAINER ||
		      c->kind == P_IMDS;
	snprintf(what, sizeof(what), "the credentials from %s", c->source);
	r = kit_token_new(
		&(struct kit_token_config){
			.what = what,
			.fetch = refreshable ? refresh : NULL,
			.ctx = c,
			.refresh_before_usec = REFRESH_BEFORE_USEC,
			.retry_min_usec = REFRESH_RETRY_USEC,
			.retry_max_usec = REFRESH_RETRY_USEC,
			.wait_usec = wait_usec,
		},
		&c->ts);
	if (r < 0)
		return r;
	kit_token_set(c->ts, TAKE_PTR(c->first), c->first_expires_usec);
	return 0;
}

/* ---- use ---- */

int aws_creds_get(struct aws_creds *c, struct aws_creds_ref *ret, char *reason, size_t reasonlen)
{
	struct kit_token_ref ref = { 0 };
	const char *key, *secret, *token;
	int r;

	if (!c->ts) {
		snprintf(reason, reasonlen, "no credentials");
		return -ENOKEY;
	}
	r = kit_token_get(c->ts, &ref, reason, reasonlen);
	if (r < 0)
		return r;
	key = kit_cred_str(ref.s);
	secret = key + strlen(key) + 1;
	token = secret + strlen(secret) + 1;
	*ret = (struct aws_creds_ref){
		.view = { .access_key_id = (char *)key,
			  .secret_access_key = (char *)secret,
			  .session_token = *token ? (char *)token : NULL,
			  .expiration_usec = ref.expires_usec },
		.s = ref.s,
		.gen = ref.gen,
	};
	return 0;
}

void aws_creds_put(struct aws_creds_ref *r)
{
	secret_unref(r->s);
	*r = (struct aws_creds_ref){ 0 };
}

void aws_creds_expired(struct aws_creds *c, uint64_t gen)
{
	if (c->ts)
		kit_token_invalidate(c->ts, gen);
}

void aws_creds_free(struct aws_creds *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	http_client_free(c->meta);
	http_client_free(c->cont);
	kit_token_free(c->ts);
	secret_unref(c->first);
	aws_env_secrets_done(&c->env);
	aws_profile_done(&c->creds_file);
	aws_profile_done(&c->config_file);
	free(c->profile);
	free(c->creds_path);
	free(c->config_path);
	free(c->role_arn);
	free(c->session_name);
	free(c->token_file);
	aws_endpoint_done(&c->sts);
	aws_argv_free(c->argv);
	free(c->container_url);
	free(c->container_token_file);
	free(c->imds);
	free(c);
}
