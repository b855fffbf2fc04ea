/*
 * fixture_json.h - loads a JSON file of tests/data/fixtures (or
 * $SECRETFS_FIXTURES, which `make check-unit` sets) for the unit tests that
 * check a parser against a store's documented answers.  Include after
 * <cmocka.h> and <jansson.h>.
 */
#ifndef SECRETFS_TESTS_FIXTURE_JSON_H
#define SECRETFS_TESTS_FIXTURE_JSON_H

#include <stdio.h>
#include <stdlib.h>

/* The fixture @rel ("gcp/access-secret-version.json"); fails the test when it does not load. */
static inline json_t *load_fixture(const char *rel)
{
	const char *dir = getenv("SECRETFS_FIXTURES");
	char path[4096];
	json_error_t je;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data/fixtures", rel);
	doc = json_load_file(path, 0, &je);
	if (!doc)
		fail_msg("%s: %s", path, je.text);
	return doc;
}

#endif
