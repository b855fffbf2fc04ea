/*
 * fuzz_config.c - the settings parsers on arbitrary bytes.  The first byte
 * picks the form, the rest is the input:
 *
 *   even  a config file (INI through libinih and our line reader), read
 *         from memory by config_load_stream()
 *   odd   -o options as main.c hands them over: items separated by ',' or
 *         newlines, "NAME=VALUE" or a bare "NAME" (meaning NAME=yes), each
 *         through config_set() when config_is_option() knows the name
 *
 * A refused file must name it and leave the settings as they were; an
 * accepted one must hold the bounds the settings table promises.
 */
#include <errno.h>

#include "fuzz.h"
#include "secretfs/config.h"

#define T    "fuzz_config"
#define NAME "fuzz.conf"

static void check_config(const struct config *c)
{
	fuzz_check(c->fetch_timeout_usec > 0, T, "fetch_timeout 0 accepted");
	fuzz_check(c->cache_max_entries >= 1, T, "cache_max_entries 0 accepted");
	fuzz_check(c->cache_max_bytes >= 4096, T, "cache_max_bytes under 4K accepted");
	fuzz_check(c->attr_timeout_usec <= 3600 * UINT64_C(1000000), T,
		   "attr_timeout over 1h accepted");
	fuzz_check(c->http_max_attempts <= 100, T, "max_attempts over 100 accepted");
	fuzz_check(!c->http_max_body || c->http_max_body >= 1024, T, "max_body under 1K accepted");
}

static void load(const uint8_t *data, size_t size)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "";
	uint64_t ttl;
	FILE *f;
	int r;

	if (size == 0)
		return;
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return;
	config_init(&c);
	ttl = c.ttl_usec;
	r = config_load_stream(&c, f, NAME, err, sizeof(err));
	fclose(f);
	if (r < 0) {
		fuzz_check(fuzz_text_ok(err, sizeof(err)), T, "an error unterminated");
		fuzz_check(strncmp(err, NAME ":", strlen(NAME) + 1) == 0, T,
			   "an error without the file's name");
		fuzz_check(c.ttl_usec == ttl && !c.source, T,
			   "a refused file changed the settings");
	}
	check_config(&c);
	config_done(&c);
}

static void options(char *s)
{
	struct config c;
	char *save = NULL;

	config_init(&c);
	for (char *item = strtok_r(s, ",\n", &save); item; item = strtok_r(NULL, ",\n", &save)) {
		char err[CONFIG_ERR_MAX] = "", *eq = strchr(item, '=');
		const char *value = "yes";
		int r;

		if (eq) {
			*eq = '\0';
			value = eq + 1;
		}
		if (!config_is_option(item))
			continue;
		r = config_set(&c, item, value, err, sizeof(err));
		fuzz_check(r == 0 || r == -EINVAL || r == -ERANGE || r == -ENOMEM, T,
			   "an option error not EINVAL");
		fuzz_check(fuzz_text_ok(err, sizeof(err)), T, "an error unterminated");
		fuzz_check(r == 0 || *err, T, "an option refused without a reason");
	}
	check_config(&c);
	config_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	if (data[0] % 2 == 0) {
		load(data + 1, size - 1);
		return 0;
	}
	s = fuzz_cstr(data + 1, size - 1);
	if (s)
		options(s);
	free(s);
	return 0;
}
