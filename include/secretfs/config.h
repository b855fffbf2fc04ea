/*
 * config.h - settings from defaults, the config file and the command line,
 * in that order of precedence (the command line wins).
 *
 * The config file is INI, parsed with libinih.  Every key is validated at
 * load; an error names the file, the line and the key.
 */
#ifndef SECRETFS_CONFIG_H
#define SECRETFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_ERR_MAX 512

/*
 * One [template NAME] section, or one -o template=MOUNTPATH:FILE[:FORMAT].
 * Only the settings: the file is read and parsed by template_set_load().
 */
struct config_template {
	char *name;	    /* the section's NAME; the mount path for -o template= */
	char *file;	    /* absolute path of the template file */
	char *path;	    /* where it appears in the mount */
	char *format;	    /* raw|env|shell|json|yaml|properties|ini; NULL: raw */
	char *delims;	    /* "<% %>"; NULL: {{ }} */
	bool access_whole;  /* access = template: the rendered file is granted as a unit */
	bool missing_empty; /* missing = empty: a missing reference renders empty */
	char *origin;	    /* "FILE:LINE" of its section, or "-o template" */
};

/* The reserved meta directory at the mount root (views, ...), unless -o meta_dir=. */
#define SECRETFS_META_DIR ".secretfs"

struct config {
	char *source;	  /* SOURCE, e.g. "file:/etc/secretfs/store.json" */
	char *mountpoint; /* may be NULL until the command line is read */
	bool foreground;
	bool debug;
	uint64_t ttl_usec;
	uint64_t stale_ttl_usec;
	uint64_t negative_ttl_usec;
	uint64_t attr_timeout_usec;
	uint64_t fetch_timeout_usec;
	size_t cache_max_entries;
	size_t cache_max_bytes;
	size_t max_fetches;	    /* store requests under way at once, all caches; 0 = no bound */
	char *fuse_options;	    /* extra -o options from the config file, or NULL */
	char *policy;		    /* access policy file, or NULL: only the mounting user reads */
	bool show_denied;	    /* list entries the caller may not open */
	bool hide_denied_size;	    /* st_size 0 for callers the policy does not permit */
	size_t max_handles_per_uid; /* open files and directories per uid; 0 = no cap */
	char *audit;		    /* "syslog", "stderr", an absolute path, or NULL */

	/* [views]: the meta directory (src/fs/meta.h) and the format views under it. */
	char *meta_dir;	     /* its name at the root; NULL: SECRETFS_META_DIR */
	bool show_meta;	     /* the root lists it */
	char *view_env_case; /* "keep" (NULL) or "upper": env and shell views' keys */

	/* [control]: the admin socket (see control.h). */
	char *control;	     /* socket path, "auto", or NULL: no control socket */
	char *control_admin; /* a user name or uid besides root, or NULL */

	/* [http]: every network backend; 0 / NULL means the http layer's default. */
	char *http_ca_file;
	char *http_ca_path;
	char *http_client_cert;
	char *http_client_key;
	uint64_t http_connect_timeout_usec;
	uint64_t http_timeout_usec;
	size_t http_max_body;
	size_t http_max_attempts;
	bool http_insecure; /* -o insecure: the only way to turn TLS verification off */

	/* [vault]: NULL means "from the environment, as the vault CLI reads it". */
	char *vault_auth;	/* "token" (default), "approle", "kubernetes" */
	char *vault_auth_mount; /* default: the method's name */
	char *vault_token_file;
	char *vault_role_id_file;
	char *vault_secret_id_file;
	bool vault_remove_secret_id_file;
	char *vault_role;
	char *vault_jwt_file;
	char *vault_kv_version; /* "auto" (default), "1", "2" */
	char *vault_namespace;

	/* [aws]: aws-sm and aws-ssm; NULL means "as the AWS SDKs decide". */
	char *aws_profile;	    /* default: AWS_PROFILE, else "default" */
	char *aws_version_stage;    /* Secrets Manager staging label; default AWSCURRENT */
	uint64_t aws_list_ttl_usec; /* ListSecrets / GetParametersByPath listings; default 5m */

	/* Stores whose names cannot hold '/': SEP in a name is shown as '/'; NULL: flat. */
	char *name_separator;
	/* [gcp]: gcp-sm; NULL means "as Google's Application Default Credentials decide". */
	char *gcp_endpoint;    /* default https://secretmanager.googleapis.com */
	char *gcp_credentials; /* a service_account or authorized_user JSON file */
	/* [doppler]: doppler; NULL means "as the Doppler CLI decides" (DOPPLER_*). */
	char *doppler_api_host;	  /* default: DOPPLER_API_HOST, else https://api.doppler.com */
	char *doppler_token_file; /* a service token; default: DOPPLER_TOKEN */
	/* [op-connect]: op-connect; NULL means "as 1Password's SDKs decide". */
	char *op_connect_host; /* default $OP_CONNECT_HOST */
	char *op_token_file;   /* default $OP_CONNECT_TOKEN, $CREDENTIALS_DIRECTORY/op-connect-token */

	/* [template NAME] sections and -o template=, in the order given. */
	struct config_template *templates;
	size_t ntemplates;
};

/* Fills @c with the defaults of docs/design.md section 4. */
void config_init(struct config *c);
void config_done(struct config *c);

/*
 * Applies one "key = value" setting by its option name (the same names as
 * -o NAME=VALUE and as config file keys).  Returns 0, -ENOENT for an unknown
 * key, or -EINVAL with @err explaining what was wrong with the value.
 */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);

/* Whether @key names a setting (for -o parsing). */
bool config_is_option(const char *key);

/*
 * Loads @path into @c.  On error returns a negative errno and writes
 * "FILE:LINE: key 'KEY': what is wrong" (or "FILE: reason") into @err.
 */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/*
 * config_load() of an open stream, without the file checks (the fuzz target
 * reads from memory); @path names it in errors.
 */
int config_load_stream(struct config *c, FILE *f, const char *path, char *err, size_t errlen);

#endif
