// bench.mjs: node-llama-cpp on the same GGUF files, for scripts/bench-llm.sh
// (what a JavaScript user would pick). Same measurement as llmbench and
// cbench: one warm-up, then the median of REPS runs of prompt processing
// and greedy generation; prints one JSON line.
//
//   node bench.mjs MODEL THREADS N_GEN REPS PROMPT
import {getLlama} from "node-llama-cpp";
import {readFileSync} from "node:fs";

const [model, threadsS, genS, repsS, prompt] = process.argv.slice(2);
const threads = Number(threadsS), nGen = Number(genS), reps = Number(repsS);
const t0 = performance.now();
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: threads});
const m = await llama.loadModel({modelPath: model, gpuLayers: 0});
const ctx = await m.createContext({contextSize: 1024, batchSize: 512, threads: threads, sequences: 1});
const loadS = (performance.now() - t0) / 1000;
const tokens = [m.tokens.bos, ...m.tokenize(prompt)];
const pps = [], gps = [];
let nDone = 0;
for (let r = 0; r <= reps; r++) {
	const seq = ctx.getSequence();
	const a = performance.now();
	let first = 0, last = 0;
	nDone = 0;
	for await (const tok of seq.evaluate(tokens, {temperature: 0})) {
		if (m.isEogToken(tok)) break;
		const now = performance.now();
		if (nDone === 0) first = now;
		last = now;
		nDone++;
		if (nDone >= nGen) break;
	}
	seq.dispose();
	if (r === 0) continue;
	pps.push(tokens.length / ((first - a) / 1000));
	gps.push((nDone - 1) / ((last - first) / 1000));
}
const med = v => v.sort((x, y) => x - y)[Math.floor(v.length / 2)];
const hwm = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/);
// The CPU variant node-llama-cpp's prebuilt chose (it ships one
// libggml-cpu-NAME.so per CPU generation and loads the best): the one
// mapped into this process.
const variants = [...new Set([...readFileSync("/proc/self/maps", "utf8").matchAll(/libggml-cpu-([\w.]+)\.so/g)].map(x => x[1]))];
console.log(JSON.stringify({
	impl: "node-llama-cpp", model, threads, prompt_tokens: tokens.length, prompt_tps: med(pps),
	gen_tokens: nDone, gen_tps: med(gps), peak_rss_mb: hwm ? Number(hwm[1]) / 1024 : -1, load_s: loadS,
	variant: variants.join("+") || "unknown",
}));
process.exit(0);
