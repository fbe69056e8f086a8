// membw.c: the memory-bandwidth probe of scripts/bench-llm.sh. Generating
// one token reads every weight matrix once, so a model's generation speed
// is bounded by the memory bandwidth over the bytes it reads per token;
// this measures that bandwidth in the same run as the generators, STREAM's
// copy kernel style: THREADS threads each memcpy their share of a buffer
// far larger than any cache, bytes read plus bytes written per second, the
// best of REPS passes (as STREAM reports). It prints one JSON line.
//
//   membw THREADS [MIB (256 per buffer)] [REPS (10)]
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct part {
	char *src, *dst;
	size_t n;
	pthread_barrier_t *start;
};

static void *copy_part(void *arg) {
	struct part *p = arg;
	pthread_barrier_wait(p->start);
	memcpy(p->dst, p->src, p->n);
	return NULL;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: membw THREADS [MIB] [REPS]\n");
		return 2;
	}
	int threads = atoi(argv[1]);
	size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
	int reps = argc > 3 ? atoi(argv[3]) : 10;
	if (threads < 1 || threads > 256 || mib < 1 || reps < 1) {
		fprintf(stderr, "membw: bad arguments\n");
		return 2;
	}
	size_t n = mib << 20;
	char *src = aligned_alloc(4096, n), *dst = aligned_alloc(4096, n);
	if (!src || !dst) {
		fprintf(stderr, "membw: out of memory\n");
		return 1;
	}
	// Touch every page first: the passes measure copying, not page faults.
	// Pseudo-random contents: pages all alike may be merged by the host
	// (KSM, a VM's page sharing) into one, whose copy reads from cache
	// (a probe of 200 GB/s on 2 vCPUs here).
	unsigned long long x = 88172645463325252ULL;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(src + i, &x, 8);
	}
	memset(dst, 0, n);
	pthread_t *tid = calloc(threads, sizeof *tid);
	struct part *parts = calloc(threads, sizeof *parts);
	size_t share = n / threads / 4096 * 4096;
	double best = 0;
	for (int r = 0; r < reps; r++) {
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, threads + 1);
		for (int t = 0; t < threads; t++) {
			size_t off = (size_t)t * share;
			parts[t] = (struct part){src + off, dst + off, t == threads - 1 ? n - off : share, &start};
			pthread_create(&tid[t], NULL, copy_part, &parts[t]);
		}
		pthread_barrier_wait(&start);
		double a = now();
		for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
		double s = now() - a;
		pthread_barrier_destroy(&start);
		double gbps = 2.0 * n / s / 1e9;
		if (gbps > best) best = gbps;
	}
	if (memcmp(dst + n - 4096, src + n - 4096, 4096) != 0) {
		fprintf(stderr, "membw: the copy went wrong\n");
		return 1;
	}
	printf("{\"impl\":\"membw\",\"threads\":%d,\"buffer_mib\":%zu,\"reps\":%d,\"copy_gbps\":%.3f}\n",
	       threads, mib, reps, best);
	return 0;
}
