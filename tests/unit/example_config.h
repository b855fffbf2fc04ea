/*
 * example_config.h - loads examples/NAME for the unit tests that check an
 * example config stays loadable and says what it documents.  Include after
 * <cmocka.h> and "secretfs/config.h".
 */
#ifndef SECRETFS_TESTS_EXAMPLE_CONFIG_H
#define SECRETFS_TESTS_EXAMPLE_CONFIG_H

#include <stdio.h>
#include <stdlib.h>

/*
 * Loads examples/@name into @c (config_init'ed here; the caller calls
 * config_done()).  Skips the test when SECRETFS_TESTDATA is not set, fails
 * it with the parser's error when the file does not load.
 */
static inline void load_example_config(const char *name, struct config *c)
{
	const char *dir = getenv("SECRETFS_TESTDATA");
	char path[4096], err[CONFIG_ERR_MAX] = "";

	if (!dir) {
		print_message("skipped: SECRETFS_TESTDATA is not set (make check-unit sets it)\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/../../examples/%s", dir, name);
	config_init(c);
	if (config_load(c, path, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
}

#endif
