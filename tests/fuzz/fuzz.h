/*
 * fuzz.h - the libFuzzer entry point every tests/fuzz/fuzz_*.c defines, so that
 * replay.c can run a corpus through it without libFuzzer.
 */
#ifndef SECRETFS_TESTS_FUZZ_H
#define SECRETFS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
