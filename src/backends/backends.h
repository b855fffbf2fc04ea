/* backends.h - the ops tables the registry knows (private to src/backends). */
#ifndef SECRETFS_BACKENDS_H
#define SECRETFS_BACKENDS_H

#include "secretfs/backend.h"

extern const struct backend_ops file_backend_ops;
extern const struct backend_ops vault_backend_ops;
extern const struct backend_ops aws_sm_backend_ops;
extern const struct backend_ops aws_ssm_backend_ops;
extern const struct backend_ops gcp_sm_backend_ops;
extern const struct backend_ops doppler_backend_ops;
extern const struct backend_ops azure_kv_backend_ops;
extern const struct backend_ops op_connect_backend_ops;

#endif
