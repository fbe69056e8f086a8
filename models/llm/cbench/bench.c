// bench.c: the C baseline for scripts/bench-llm.sh. It does what hedge's
// generator does per request, directly on llama.h: load, tokenize, decode
// the prompt, then sample (greedy) and decode one token at a time, and it
// prints the same JSON as models/llm/llmbench. bench-llm.sh links it with
// hedge's own llama.cpp build (libhedge-llama.a of scripts/cgo-env.sh) and
// it loads the best CPU variant of the folder in $CBENCH_CPU_DIR, as
// hedge does.
//
//   CBENCH_CPU_DIR=DIR cbench MODEL THREADS N_GEN REPS MMAP(0|1) PROMPT
#define _GNU_SOURCE // dladdr
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "llama.h"
#include "ggml-backend.h"

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
	(void)ud;
	if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static double peak_rss_mb(void) {
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
	if (f) fclose(f);
	return kb / 1024;
}

// variant names the CPU variant ggml_backend_load_all_from_path chose: the
// file its CPU backend's functions come from, libggml-cpu-NAME.so -> NAME
// (what hedge's llmbench reports of its own choice).
static const char *variant(void) {
	static char name[64] = "unknown";
	ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
	void *fn = reg ? ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features") : NULL;
	Dl_info info;
	if (fn == NULL || dladdr(fn, &info) == 0 || info.dli_fname == NULL) return name;
	const char *base = strrchr(info.dli_fname, '/');
	base = base ? base + 1 : info.dli_fname;
	const char *pre = "libggml-cpu-";
	if (strncmp(base, pre, strlen(pre)) == 0) base += strlen(pre);
	snprintf(name, sizeof name, "%s", base);
	char *dot = strstr(name, ".so");
	if (dot) *dot = 0;
	return name;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv) {
	if (argc != 7) {
		fprintf(stderr, "usage: cbench MODEL THREADS N_GEN REPS MMAP PROMPT\n");
		return 2;
	}
	const char *path = argv[1];
	int threads = atoi(argv[2]), n_gen = atoi(argv[3]), reps = atoi(argv[4]), use_mmap = atoi(argv[5]);
	const char *prompt = argv[6];
	llama_log_set(quiet, NULL);
	const char *cpu_dir = getenv("CBENCH_CPU_DIR");
	if (!cpu_dir) { fprintf(stderr, "cbench: set CBENCH_CPU_DIR to the folder of the CPU variants\n"); return 2; }
	ggml_backend_load_all_from_path(cpu_dir);
	if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) { fprintf(stderr, "cbench: no CPU variant of %s loads\n", cpu_dir); return 1; }
	llama_backend_init();
	double t0 = now();
	struct llama_model_params mp = llama_model_default_params();
	mp.n_gpu_layers = 0;
	mp.use_mmap = use_mmap;
	struct llama_model *model = llama_model_load_from_file(path, mp);
	if (!model) { fprintf(stderr, "cbench: load failed\n"); return 1; }
	const struct llama_vocab *vocab = llama_model_get_vocab(model);
	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = 1024;
	cp.n_batch = cp.n_ubatch = 512;
	cp.n_seq_max = 1;
	cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; /* as hedge (models/llm/llama.go) */
	cp.n_threads = cp.n_threads_batch = threads;
	cp.no_perf = true;
	struct llama_context *ctx = llama_init_from_model(model, cp);
	if (!ctx) { fprintf(stderr, "cbench: context failed\n"); return 1; }
	double load_s = now() - t0;

	int n_prompt = -llama_tokenize(vocab, prompt, strlen(prompt), NULL, 0, true, false);
	llama_token *toks = malloc(sizeof(llama_token) * (n_prompt + 1));
	llama_tokenize(vocab, prompt, strlen(prompt), toks, n_prompt, true, false);
	struct llama_batch batch = llama_batch_init(512, 0, 1);
	double *pps = calloc(reps + 1, sizeof(double)), *gps = calloc(reps + 1, sizeof(double));
	int n_done = 0;
	for (int r = 0; r <= reps; r++) {
		llama_memory_clear(llama_get_memory(ctx), true);
		struct llama_sampler_chain_params sp = llama_sampler_chain_default_params();
		sp.no_perf = true;
		struct llama_sampler *smpl = llama_sampler_chain_init(sp);
		llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
		double a = now();
		for (int i = 0; i < n_prompt; i++) {
			batch.token[i] = toks[i]; batch.pos[i] = i; batch.n_seq_id[i] = 1;
			batch.seq_id[i][0] = 0; batch.logits[i] = i == n_prompt - 1;
		}
		batch.n_tokens = n_prompt;
		if (llama_decode(ctx, batch)) { fprintf(stderr, "cbench: decode failed\n"); return 1; }
		double b = now(), first = 0, last = 0;
		int pos = n_prompt;
		n_done = 0;
		for (int i = 0; i < n_gen; i++) {
			llama_token t = llama_sampler_sample(smpl, ctx, -1);
			if (llama_vocab_is_eog(vocab, t)) break;
			n_done++;
			last = now();
			if (n_done == 1) first = last;
			if (i + 1 == n_gen) break;
			batch.token[0] = t; batch.pos[0] = pos++; batch.n_seq_id[0] = 1;
			batch.seq_id[0][0] = 0; batch.logits[0] = 1; batch.n_tokens = 1;
			if (llama_decode(ctx, batch)) { fprintf(stderr, "cbench: decode failed\n"); return 1; }
		}
		llama_sampler_free(smpl);
		// Generation speed over the n_done-1 steps between the first and
		// the last sampled token, as hedge and bench.mjs measure it.
		pps[r] = n_prompt / (b - a);
		gps[r] = (n_done - 1) / (last - first);
	}
	// Run 0 is the warm-up; the median of the rest is reported.
	qsort(pps + 1, reps, sizeof(double), cmp);
	qsort(gps + 1, reps, sizeof(double), cmp);
	printf("{\"impl\":\"c\",\"model\":\"%s\",\"threads\":%d,\"prompt_tokens\":%d,\"prompt_tps\":%.3f,"
	       "\"gen_tokens\":%d,\"gen_tps\":%.3f,\"peak_rss_mb\":%.1f,\"load_s\":%.3f,\"variant\":\"%s\"}\n",
	       path, threads, n_prompt, pps[1 + reps / 2], n_done, gps[1 + reps / 2], peak_rss_mb(), load_s, variant());
	llama_batch_free(batch);
	llama_free(ctx);
	llama_model_free(model);
	return 0;
}
