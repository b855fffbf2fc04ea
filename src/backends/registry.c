/*
 * registry.c - the static list of backends, found by the scheme of SOURCE
 * (curl lib/vtls style: each backend is one file exporting one ops table).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "secretfs/util.h"

static const struct backend_ops *const registry[] = {
	&file_backend_ops,
	&vault_backend_ops,
	&aws_sm_backend_ops,
	&aws_ssm_backend_ops,
	&gcp_sm_backend_ops,
	&doppler_backend_ops,
	&azure_kv_backend_ops,
	&op_connect_backend_ops,
};

int backend_open(const char *source, const struct config *cfg, const struct backend_events *events,
		 struct backend **ret, char *reason, size_t reasonlen)
{
	const char *colon = strchr(source, ':');
	struct backend *b;
	size_t sl;
	int r;

	if (!colon || colon == source) {
		snprintf(reason, reasonlen,
			 "source '%s' has no scheme; expected e.g. file:/etc/secretfs/store.json",
			 source);
		return -EINVAL;
	}
	sl = (size_t)(colon - source);
	for (size_t i = 0; i < ARRAY_SIZE(registry); i++) {
		if (strlen(registry[i]->scheme) != sl || strncmp(registry[i]->scheme, source, sl))
			continue;
		b = calloc(1, sizeof(*b));
		if (!b || !(b->source = strdup(source))) {
			free(b);
			return -ENOMEM;
		}
		b->ops = registry[i];
		if (events)
			b->events = *events;
		r = b->ops->init(b, colon + 1, cfg, reason, reasonlen);
		if (r < 0) {
			free(b->source);
			free(b);
			return r;
		}
		*ret = b;
		return 0;
	}
	snprintf(reason, reasonlen,
		 "source '%s': unknown backend '%.*s' (this build has: file, vault, aws-sm, "
		 "aws-ssm, gcp-sm, azure-kv, op-connect, doppler)",
		 source, (int)sl, source);
	return -EINVAL;
}

void backend_close(struct backend *b)
{
	if (!b)
		return;
	if (b->ops->done)
		b->ops->done(b);
	free(b->source);
	free(b);
}
