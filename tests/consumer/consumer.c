/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - a program as a user writes it, against the installed library:
 * only <fp8kv.h> and the flags of `pkg-config --cflags --libs fp8kv`.
 * Built and run by .ci/consumer-check.sh from a DESTDIR install.  Writes one
 * token into a small paged cache and checks the bytes against codes worked
 * out by hand from the e4m3fn format (bias 7, 3 mantissa bits, max 448).
 * Prints OK and exits 0, or says what differs and exits 1.
 */
#include <fp8kv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADS 2
#define DIM 4
#define BLOCKS 2
#define BLOCK_SIZE 2
#define CACHE_BYTES (BLOCKS * BLOCK_SIZE * HEADS * DIM)
#define POISON 0xA5

static int failures;

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "consumer: %s\n", what);
		failures++;
	}
}

static int call(fp8kv_status st, const char *what)
{
	if (st != FP8KV_OK) {
		fprintf(stderr, "consumer: %s: %s (%s)\n", what, fp8kv_strerror(st),
			fp8kv_last_error());
		failures++;
	}
	return st == FP8KV_OK;
}

int main(void)
{
	/* two tokens of [HEADS][DIM] bf16; token 0 goes to slot 3 (block 1,
	 * offset 1), token 1 is padding */
	static const uint16_t key[2 * HEADS * DIM] = {
		0x3F80, 0x3F00, 0xC000, 0x43E0, /* 1, 0.5, -2, 448 */
		0x4040, 0x447A, 0x8000, 0x0000, /* 3, 1000 (saturates), -0, 0 */
		0x3F80, 0x3F80, 0x3F80, 0x3F80, /* token 1: never written */
		0x3F80, 0x3F80, 0x3F80, 0x3F80,
	};
	static const uint16_t value[2 * HEADS * DIM] = {
		0x3E80, 0xBF80, 0x3C00, 0x7FC0, /* 0.25, -1, 2^-7, NaN */
		0x4100, 0xC1A0, 0x3B00, 0xFF80, /* 8, -20, 2^-9 (subnormal), -Inf */
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t want_key[HEADS * DIM] = {0x38, 0x30, 0xC0, 0x7E,
						      0x44, 0x7E, 0x80, 0x00};
	static const uint8_t want_value[HEADS * DIM] = {0x28, 0xB8, 0x04, 0x7F,
							0x50, 0xDA, 0x01, 0xFE};
	static const int64_t slots[2] = {3, -1};

	fp8kv_backend *cpu = NULL;
	void *k = NULL, *v = NULL, *kc = NULL, *vc = NULL, *sl = NULL;
	uint8_t key_cache[CACHE_BYTES], value_cache[CACHE_BYTES];

	expect(strcmp(fp8kv_version(), FP8KV_VERSION_STRING) == 0,
	       "fp8kv_version() differs from the header's FP8KV_VERSION_STRING");
	expect(fp8kv_from_float(448.0f, FP8KV_E4M3FN, FP8KV_SATURATE) == 0x7E,
	       "fp8kv_from_float(448) is not 0x7E");
	if (!call(fp8kv_backend_open("cpu", &cpu), "fp8kv_backend_open(\"cpu\")"))
		return EXIT_FAILURE;

	if (call(fp8kv_buffer_alloc(cpu, sizeof key, &k), "alloc key") &&
	    call(fp8kv_buffer_alloc(cpu, sizeof value, &v), "alloc value") &&
	    call(fp8kv_buffer_alloc(cpu, CACHE_BYTES, &kc), "alloc key_cache") &&
	    call(fp8kv_buffer_alloc(cpu, CACHE_BYTES, &vc), "alloc value_cache") &&
	    call(fp8kv_buffer_alloc(cpu, sizeof slots, &sl), "alloc slots") &&
	    call(fp8kv_buffer_upload(cpu, k, key, sizeof key), "upload key") &&
	    call(fp8kv_buffer_upload(cpu, v, value, sizeof value), "upload value") &&
	    call(fp8kv_buffer_upload(cpu, sl, slots, sizeof slots), "upload slots") &&
	    call(fp8kv_buffer_fill(cpu, kc, POISON, CACHE_BYTES), "fill key_cache") &&
	    call(fp8kv_buffer_fill(cpu, vc, POISON, CACHE_BYTES), "fill value_cache")) {
		fp8kv_cache_write d;
		fp8kv_cache_write_init(&d, 2, HEADS, DIM, DIM, BLOCKS, BLOCK_SIZE,
				       FP8KV_LAYOUT_NHD);
		d.key = k;
		d.value = v;
		d.input_dtype = FP8KV_BF16;
		d.key_cache = kc;
		d.value_cache = vc;
		d.cache_dtype = FP8KV_E4M3FN;
		d.slot_mapping = sl;
		if (call(fp8kv_reshape_and_cache(cpu, &d, NULL), "fp8kv_reshape_and_cache") &&
		    call(fp8kv_backend_synchronize(cpu, NULL), "synchronize") &&
		    call(fp8kv_buffer_download(cpu, key_cache, kc, CACHE_BYTES), "download") &&
		    call(fp8kv_buffer_download(cpu, value_cache, vc, CACHE_BYTES), "download")) {
			const int at = 3 * HEADS * DIM; /* slot 3, NHD */
			for (int i = 0; i < CACHE_BYTES; i++) {
				const int mine = i >= at && i < at + HEADS * DIM;
				char what[96];
				snprintf(what, sizeof what,
					 "cache byte %d: key 0x%02X value 0x%02X, want 0x%02X 0x%02X",
					 i, key_cache[i], value_cache[i],
					 mine ? want_key[i - at] : POISON,
					 mine ? want_value[i - at] : POISON);
				expect(key_cache[i] == (mine ? want_key[i - at] : POISON) &&
					       value_cache[i] == (mine ? want_value[i - at] : POISON),
				       what);
			}
		}
		/* and a rejected descriptor names its culprit */
		d.num_heads = 0;
		expect(fp8kv_reshape_and_cache(cpu, &d, NULL) == FP8KV_EINVAL &&
			       strstr(fp8kv_last_error(), "num_heads") != NULL,
		       "num_heads = 0 was not rejected with a message naming it");
	}
	fp8kv_buffer_free(cpu, k);
	fp8kv_buffer_free(cpu, v);
	fp8kv_buffer_free(cpu, kc);
	fp8kv_buffer_free(cpu, vc);
	fp8kv_buffer_free(cpu, sl);
	fp8kv_backend_close(cpu);

	if (failures)
		return EXIT_FAILURE;
	printf("OK fp8kv %s\n", fp8kv_version());
	return EXIT_SUCCESS;
}
