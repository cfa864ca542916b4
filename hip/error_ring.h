// SPDX-License-Identifier: MIT
/*
 * error_ring.h - out-of-range slots (fp8kv.h section 7) reported without
 * any host round trip on the launch path:
 *   - each launch gets an entry of a ring in device memory; a team whose
 *     token is out of range does atomicMin(entry.token, t);
 *   - the last block to finish (a count in the entry, see count_share;
 *     a launch of one block does without) takes the minimum, recomputes
 *     that token's slot, resets the entry's token, and publishes
 *     (token, slot) to a report in mapped, coherent host memory, claiming it
 *     with a compare-and-swap on a device word against the report's
 *     "consumed" generation, so that one report is pending at a time;
 *   - synchronize, and the next reshape_and_cache before it launches, read
 *     the report with plain host loads (take_report), turn it into
 *     FP8KV_ERANGE and mark it consumed.
 * Launches captured into a graph use a part of the ring of their own, so a
 * replay never shares an entry with an eager launch.
 */
#ifndef FP8KV_HIP_ERROR_RING_H
#define FP8KV_HIP_ERROR_RING_H

#include <pthread.h>
#include <stdint.h>

#include "hip_compat.h"
#include "write_plan.h"


#define RING_EAGER 192      // error entries for eager launches
#define RING_GRAPH 64       // and for launches captured into graphs
#define RING (RING_EAGER + RING_GRAPH)
#define NO_TOKEN (~0ull)

// one launch's out-of-range record, in device memory
typedef struct err_entry {
	unsigned long long token;  // smallest out-of-range token, NO_TOKEN if none
	// blocks finished (low 32 bits, see count_share) and blocks that saw
	// an out-of-range token (high 32 bits): 0 between launches
	unsigned long long state;
} err_entry;

typedef struct dev_state {
	unsigned long long claim;  // generation of the last report claimed
	unsigned long long pad;
	err_entry ring[RING];
} dev_state;

// the report, in mapped host memory: written by the device, read by the host
typedef struct host_report {
	unsigned long long published;  // generation of the last report written
	unsigned long long consumed;   // generation of the last report read
	long long token, slot, limit;
	int swa, pad;
} host_report;

// Where a launch records its out-of-range tokens (kernel parameters).
typedef struct error_sink {
	err_entry *entry;              // the launch's ring entry
	unsigned long long *claim;     // dev_state.claim
	host_report *report;           // device address of the mapped report
} error_sink;

// the first out-of-range token of the launch wins (token order)
static __device__ __forceinline__ void record_out_of_range(const error_sink &e, int64_t t)
{
	atomicMin(&e.entry->token, (unsigned long long)t);
	__threadfence();  // done before this block counts itself finished
}

// The last block of a launch that saw an out-of-range token publishes the
// smallest one, once, and resets the entry's token for the next launch.
static __device__ void publish_first(const error_sink &e, const fp8kv_slot_map &m)
{
	__threadfence();
	const unsigned long long token = atomicExch(&e.entry->token, NO_TOKEN);
	if (token == NO_TOKEN)
		return;
	int64_t slot = 0;
	const int kind = fp8kv_resolve_slot(&m, fp8kv_raw_slot(&m, (int64_t)token), &slot);

	volatile host_report *r = e.report;
	const unsigned long long gen = r->consumed;
	if (atomicCAS(e.claim, gen, gen + 1) != gen)
		return;  // a report is pending: it keeps the earlier error
	r->token = (long long)token;
	r->slot = (long long)slot;
	r->limit = (long long)fp8kv_slot_limit(&m, kind);
	r->swa = kind == FP8KV_SLOT_PAST_SWA;
	__threadfence_system();
	r->published = gen + 1;
	__threadfence_system();
}

/*
 * The count of finished blocks, in a launch of G > 1 blocks: each block's
 * thread 0 adds count_share() to the entry's state once the block has
 * recorded its out-of-range tokens (error: it recorded one).  Block 0 adds
 * 1 - G and every other block 1, so that the low 32 bits of the sum are 0
 * only once all G have added, whatever their order, and a launch adds 0 in
 * all: the entry is ready for the next launch (graph replays) without a
 * reset, which would cost the last block a second atomic.  The high 32
 * bits count the blocks that saw an out-of-range token; they alone are
 * reset, by the last block, when not 0.
 */
static __device__ __forceinline__ unsigned long long count_share(int error)
{
	return (blockIdx.x == 0 ? 1ull - gridDim.x : 1ull) + (error ? 1ull << 32 : 0ull);
}

// Issues the block's share where mine (thread 0); sets before to the state
// before it, which finish_launch needs, so that a caller may do other work
// while the atomic's round trip runs.  Predicated rather than branched on,
// so that nothing waits for the answer until finish_launch reads it.
static __device__ __forceinline__ void count_block(const error_sink &e, bool mine, int error,
						   unsigned long long &before)
{
	if (gridDim.x == 1)
		return;  // its own last block: nothing to count
	if (mine && error)
		__threadfence();  // the token before the count
	fp8kv_atomic_add_if(mine, &e.entry->state, count_share(error), before);
}

// A pair's slot in the team loops of the specialized and grouped kernels:
// resolved (swa: a swa_mapping may be read), an out-of-range token recorded
// once (head 0, lane 0, error set), and in the block's last iteration
// (last) the block's error gathered and counted, its answer in counted for
// finish_launch after the stores (K-COUNT-LATE).  Returns the slot's kind.
static __device__ __forceinline__ int resolve_team_slot(const error_sink &e,
							 const fp8kv_slot_map &m, int64_t raw,
							 int64_t t, int64_t h, int lane, bool swa,
							 bool last, int &error,
							 unsigned long long &counted, int64_t &slot)
{
	const int kind = fp8kv_resolve_slot_as(&m, raw, &slot, swa);
	if (fp8kv_slot_is_error(kind) && h == 0 && lane == 0) {
		record_out_of_range(e, t);
		error = 1;
	}
	if (last) {
		error = __syncthreads_or(error);
		count_block(e, threadIdx.x == 0, error, counted);
	}
	return kind;
}

// Thread 0 of every block, after count_block: the last block of the launch
// publishes the smallest out-of-range token, if any.
static __device__ void finish_launch(const error_sink &e, const fp8kv_slot_map &m, int error,
				     unsigned long long before)
{
	if (gridDim.x == 1) {
		if (!error)
			return;
	} else {
		const unsigned long long state = before + count_share(error);
		if ((unsigned int)state != 0 || (state >> 32) == 0)
			return;
		atomicExch(&e.entry->state, 0ull);
	}
	publish_first(e, m);
}


/* ---- host side ---- */

typedef struct pending_report {
	long long token, slot, limit;
	int swa;
} pending_report;

// a report the device published and nobody has read yet
static int take_report(host_report *report, pthread_mutex_t *lock, pending_report *out)
{
	int found = 0;
	pthread_mutex_lock(lock);
	const unsigned long long published = __atomic_load_n(&report->published, __ATOMIC_ACQUIRE);
	if (published != report->consumed) {
		const volatile host_report *r = report;
		out->token = r->token;
		out->slot = r->slot;
		out->limit = r->limit;
		out->swa = r->swa;
		__atomic_store_n(&report->consumed, published, __ATOMIC_RELEASE);
		found = 1;
	}
	pthread_mutex_unlock(lock);
	return found;
}

#endif /* FP8KV_HIP_ERROR_RING_H */
