/* SPDX-License-Identifier: MIT */
/*
 * fp8kv-bench - how close fp8kv_reshape_and_cache runs to memory speed.
 *
 * For each shape it times the fused write (median of interleaved rounds,
 * each after a warm-up), counts the fewest bytes the write must move, and
 * divides by a ceiling measured in the same run: a streaming pass that
 * reads 2 bytes and writes 1 byte per element, contiguous, with no
 * conversion.  It also times the unfused path the fusion replaces
 * (quantize K, quantize V into a staging buffer, then scatter) and, for
 * small launches on a GPU, the launch floor.  Correctness is the test
 * suite's business; this program only measures.  bench.h lists the parts.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "tool_cli.h"

const char tool_name[] = "fp8kv-bench";

int main(int argc, char **argv)
{
	bench_options o;
	fp8kv_backend *b;
	int rc;

	tool_check_stdout_at_exit();
	if ((rc = bench_parse_args(argc, argv, &o)) != 0) {
		if (rc < 0)
			tool_usage_hint();
		return rc < 0 ? TOOL_EXIT_USAGE : 0;
	}
	fp8kv_status st = fp8kv_backend_open(o.backend, &b);
	if (st != FP8KV_OK) {
		if ((rc = tool_open_failure_status(st)) == TOOL_EXIT_USAGE) {
			tool_bad_value("--backend", o.backend, "%s", fp8kv_last_error());
			tool_usage_hint();
		} else {
			fprintf(stderr, "fp8kv-bench: %s\n", fp8kv_last_error());
		}
		return rc;
	}
	/* a GPU's timer, streams and ceiling kernel live in a module, so that
	 * this program needs no GPU runtime */
	const int on_host = !strcmp(fp8kv_backend_name(b), "cpu");
	char why[512];
	const bench_device *dev = on_host ? &bench_host_device
					  : bench_device_load(fp8kv_backend_name(b), why, sizeof why);
	if (!dev) {
		fprintf(stderr, "fp8kv-bench: no timing for backend %s: %s\n", fp8kv_backend_name(b),
			why);
		fp8kv_backend_close(b);
		return TOOL_EXIT_FAILED;
	}

	bench_print_header(&o, b, dev);
	static bench_result results[BENCH_MAX_SHAPES * (BENCH_NUM_MODES + BENCH_NUM_GROUPS + 2)];
	int nres = 0, failed = 0;
	/* each write in turn: mha by scale mode, group by recipe, MLA */
	for (int w = BENCH_WRITE_MHA; w <= BENCH_WRITE_MLA_DS; w <<= 1) {
		if (!(o.writes & w))
			continue;
		const bench_shape *shapes;
		const int ns = bench_shapes_of(&o, w, &shapes);
		const int nk = w == BENCH_WRITE_MHA ? o.num_scale_modes
			       : w == BENCH_WRITE_GROUP ? o.num_groups
							: 1;
		for (int i = 0; i < ns; i++)
			for (int k = 0; k < nk; k++) {
				bench_result *r = &results[nres];
				memset(r, 0, sizeof *r);
				if (w == BENCH_WRITE_MHA
					    ? bench_write_case(b, dev, &o, &shapes[i], o.scale_modes[k], r)
					    : bench_special_case(b, dev, &o, &shapes[i], w, o.groups[k],
								 r)) {
					failed = 1;
					continue;
				}
				nres++;
				bench_print_result(r);
			}
	}

	double rates[2][3] = {{0}};
	if (on_host) {
		const fp8kv_dtype ins[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
		printf("\nconversion alone, one core (elements/s): ");
		for (int sc = 0; sc < 2; sc++)
			for (int k = 0; k < 3; k++) {
				rates[sc][k] = bench_conversion_rate(b, ins[k], o.format, sc);
				printf("%s%s %s %.3g", sc || k ? ", " : "", fp8kv_dtype_name(ins[k]),
				       sc ? "tensor" : "one", rates[sc][k]);
			}
		printf("\n");
	}

	if (o.json && bench_write_json(o.json, &o, b, results, nres, on_host, rates))
		failed = 1;
	fp8kv_backend_close(b);
	return failed ? TOOL_EXIT_FAILED : 0;
}
