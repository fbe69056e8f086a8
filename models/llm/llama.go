package llm

// This file is the thin cgo binding to llama.cpp's C API (llama.h). The
// C/C++ sources are those vendored in github.com/ollama/ollama, built by
// CMake into a static library (cpu.go links it) and CPU variants by
// scripts/cgo-env.sh, which also gives the include and library folders, so
// that every build (make, tests, benchmarks, CI) links the same llama.cpp.
// None of ollama's own cgo packages is imported: they would register a
// static CPU backend beside the loaded one. Nothing here decides anything:
// generator.go does.

/*
#cgo CFLAGS: -std=c11
#cgo CXXFLAGS: -std=c++17

#if !__has_include("llama.h")
#error "llama.h not found: build with the cgo flags of scripts/cgo-env.sh (eval \"$(scripts/cgo-env.sh)\")"
#endif

#include <stdlib.h>
#include <string.h>
#include "llama.h"

// The abort flag lives in C memory: ggml's compute threads poll it between
// graph nodes, and Go sets it from a goroutine watching ctx.
static bool hedge_abort_cb(void *data) {
	return __atomic_load_n((int *)data, __ATOMIC_RELAXED) != 0;
}
static void hedge_set_flag(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static ggml_abort_callback hedge_abort_fn(void) { return hedge_abort_cb; }

extern void hedgeLlamaLog(int level, char *text, void *user_data);
static void hedge_log_cb(enum ggml_log_level level, const char *text, void *user_data) {
	hedgeLlamaLog((int)level, (char *)text, user_data);
}
static void hedge_log_install(void) { llama_log_set(hedge_log_cb, NULL); }

// Batch helpers: a llama_batch's arrays are C memory; filling them from Go
// one element at a time through cgo would cost a call per token.
static void hedge_batch_fill(struct llama_batch *b, const llama_token *toks, int n, int pos0, bool last_logits) {
	for (int i = 0; i < n; i++) {
		b->token[i] = toks[i];
		b->pos[i] = pos0 + i;
		b->n_seq_id[i] = 1;
		b->seq_id[i][0] = 0;
		b->logits[i] = 0;
	}
	if (n > 0 && last_logits) b->logits[n - 1] = 1;
	b->n_tokens = n;
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// llama.cpp's log is process-wide (llama_log_set); it is routed to the
// logger of the first loader and the last error line of a load is kept so
// that a failed load can say why (the C API only returns NULL).
var (
	logOnce sync.Once
	logMu   sync.Mutex
	logSink *slog.Logger
	errs    []string // error lines since the last takeErrors
)

//export hedgeLlamaLog
func hedgeLlamaLog(level C.int, text *C.char, _ unsafe.Pointer) {
	msg := strings.TrimSpace(C.GoString(text))
	if msg == "" {
		return
	}
	logMu.Lock()
	defer logMu.Unlock()
	if level == C.GGML_LOG_LEVEL_ERROR && len(errs) < 8 {
		errs = append(errs, msg)
	}
	if logSink == nil {
		return
	}
	// llama.cpp logs tensor-by-tensor at info level; only warnings and
	// errors reach hedge's log above debug.
	lvl := slog.LevelDebug
	switch level {
	case C.GGML_LOG_LEVEL_WARN:
		lvl = slog.LevelWarn
	case C.GGML_LOG_LEVEL_ERROR:
		lvl = slog.LevelError
	}
	logSink.Log(context.Background(), lvl, "llama.cpp", "line", msg)
}

// backendInit routes llama.cpp's log and initializes ggml's tables, once
// per process (both are process-wide in llama.cpp).
func backendInit(log *slog.Logger) {
	logOnce.Do(func() {
		logMu.Lock()
		logSink = log
		logMu.Unlock()
		C.hedge_log_install()
		C.llama_backend_init()
	})
}

// takeErrors returns the error lines llama.cpp logged since the last call,
// without its generic "failed to load model" trailers, joined by "; ".
func takeErrors() string {
	logMu.Lock()
	defer logMu.Unlock()
	var keep []string
	for _, e := range errs {
		if strings.HasSuffix(e, "failed to load model") {
			continue
		}
		keep = append(keep, e)
	}
	errs = nil
	return strings.Join(keep, "; ")
}

// cModel is a loaded llama_model and its vocabulary.
type cModel struct {
	p     *C.struct_llama_model
	vocab *C.struct_llama_vocab
}

// loadParams are the model-load options hedge uses.
type loadParams struct {
	mmap   bool
	repack bool // use_extra_bufts: CPU repack of Q4_0/Q4_K/IQ4_NL weights
}

// loadModel loads the GGUF at path. The error carries llama.cpp's own
// reason when it logged one.
func loadModel(path string, lp loadParams) (*cModel, error) {
	p := C.llama_model_default_params()
	p.n_gpu_layers = 0
	p.use_mmap = C.bool(lp.mmap)
	p.use_mlock = false
	p.use_extra_bufts = C.bool(lp.repack)
	p.check_tensors = false
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	takeErrors()
	m := C.llama_model_load_from_file(cpath, p)
	if m == nil {
		why := takeErrors()
		if why == "" {
			why = "llama.cpp refused the file"
		}
		return nil, errors.New(why)
	}
	return &cModel{p: m, vocab: C.llama_model_get_vocab(m)}, nil
}

func (m *cModel) free() {
	if m.p != nil {
		C.llama_model_free(m.p)
		m.p = nil
	}
}

func (m *cModel) nCtxTrain() int { return int(C.llama_model_n_ctx_train(m.p)) }
func (m *cModel) nVocab() int    { return int(C.llama_vocab_n_tokens(m.vocab)) }
func (m *cModel) bos() int32     { return int32(C.llama_vocab_bos(m.vocab)) }
func (m *cModel) addBOS() bool   { return bool(C.llama_vocab_get_add_bos(m.vocab)) }
func (m *cModel) size() uint64   { return uint64(C.llama_model_size(m.p)) }
func (m *cModel) nParams() uint64 {
	return uint64(C.llama_model_n_params(m.p))
}

func (m *cModel) isEOG(tok int32) bool {
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(tok)))
}

// meta returns the string value of GGUF metadata key, or "" when absent.
func (m *cModel) meta(key string) string {
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	buf := make([]byte, 256)
	for {
		n := C.llama_model_meta_val_str(m.p, ck, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
		if n < 0 {
			return ""
		}
		if int(n) < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, int(n)+1)
	}
}

// chatTemplate returns the model's default chat template, "" when it has none.
func (m *cModel) chatTemplate() string {
	t := C.llama_model_chat_template(m.p, nil)
	if t == nil {
		return ""
	}
	return C.GoString(t)
}

// applyTemplate renders messages with tmpl (llama.cpp's built-in template
// detection, no Jinja). ok is false when llama.cpp does not know tmpl.
func applyTemplate(tmpl string, roles, contents []string) (string, bool) {
	if len(roles) == 0 {
		return "", false
	}
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))
	msgs := (*[1 << 20]C.struct_llama_chat_message)(C.malloc(C.size_t(len(roles)) * C.size_t(unsafe.Sizeof(C.struct_llama_chat_message{}))))[:len(roles):len(roles)]
	defer C.free(unsafe.Pointer(&msgs[0]))
	total := 0
	for i := range roles {
		msgs[i].role = C.CString(roles[i])
		msgs[i].content = C.CString(contents[i])
		total += len(roles[i]) + len(contents[i])
	}
	defer func() {
		for i := range msgs {
			C.free(unsafe.Pointer(msgs[i].role))
			C.free(unsafe.Pointer(msgs[i].content))
		}
	}()
	size := 2*total + 512
	for range 2 {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := C.llama_chat_apply_template(ctmpl, &msgs[0], C.size_t(len(msgs)), true, buf, C.int32_t(size))
		if n < 0 {
			C.free(unsafe.Pointer(buf))
			return "", false
		}
		if int(n) <= size {
			s := C.GoStringN(buf, n)
			C.free(unsafe.Pointer(buf))
			return s, true
		}
		C.free(unsafe.Pointer(buf))
		size = int(n) + 1
	}
	return "", false
}

// tokenize converts text to tokens. addSpecial adds BOS when the model
// wants it; parseSpecial lets the text name control tokens (templates do).
func (m *cModel) tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if len(text) > 1<<30 {
		return nil, fmt.Errorf("text of %d bytes is too long to tokenize", len(text))
	}
	var ctext *C.char
	if len(text) > 0 {
		ctext = (*C.char)(unsafe.Pointer(unsafe.StringData(text)))
	}
	toks := make([]int32, len(text)+2)
	n := C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)), (*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(len(toks)), C.bool(addSpecial), C.bool(parseSpecial))
	if n == C.INT32_MIN {
		return nil, errors.New("tokenize: result too large")
	}
	if n < 0 {
		toks = make([]int32, -n)
		n = C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)), (*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(len(toks)), C.bool(addSpecial), C.bool(parseSpecial))
		if n < 0 {
			return nil, errors.New("tokenize: llama.cpp failed")
		}
	}
	runtime.KeepAlive(text)
	return toks[:n], nil
}

// piece appends the text of token tok to dst. Control tokens render as "".
func (m *cModel) piece(dst []byte, tok int32) []byte {
	var buf [128]byte
	n := C.llama_token_to_piece(m.vocab, C.llama_token(tok), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, false)
	if n >= 0 {
		return append(dst, buf[:n]...)
	}
	big := make([]byte, -n)
	n = C.llama_token_to_piece(m.vocab, C.llama_token(tok), (*C.char)(unsafe.Pointer(&big[0])), C.int32_t(len(big)), 0, false)
	if n < 0 {
		return dst
	}
	return append(dst, big[:n]...)
}

// cContext is a llama_context with its batch and abort flag.
type cContext struct {
	p      *C.struct_llama_context
	batch  C.struct_llama_batch
	nBatch int
	abort  *C.int
	fa     C.enum_llama_flash_attn_type // as asked of llama.cpp
}

// flashAttention reports whether the context was made with flash attention.
func (c *cContext) flashAttention() bool { return c.fa == C.LLAMA_FLASH_ATTN_TYPE_ENABLED }

type contextParams struct {
	nCtx, nBatch, threads, threadsBatch int
	flashAttention                      bool // Options.FlashAttention
}

func newContext(m *cModel, cp contextParams) (*cContext, error) {
	p := C.llama_context_default_params()
	p.n_ctx = C.uint32_t(cp.nCtx)
	p.n_batch = C.uint32_t(cp.nBatch)
	p.n_ubatch = C.uint32_t(cp.nBatch)
	p.n_seq_max = 1
	// Flash attention only when asked (llama.cpp's default, auto, turns
	// it on for the CPU): see Options.FlashAttention.
	p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	if cp.flashAttention {
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	}
	p.n_threads = C.int32_t(cp.threads)
	p.n_threads_batch = C.int32_t(cp.threadsBatch)
	p.no_perf = true
	p.embeddings = false
	abort := (*C.int)(C.calloc(1, C.size_t(unsafe.Sizeof(C.int(0)))))
	p.abort_callback = C.hedge_abort_fn()
	p.abort_callback_data = unsafe.Pointer(abort)
	takeErrors()
	c := C.llama_init_from_model(m.p, p)
	if c == nil {
		C.free(unsafe.Pointer(abort))
		why := takeErrors()
		if why == "" {
			why = "llama.cpp could not create the context"
		}
		return nil, errors.New(why)
	}
	return &cContext{
		p:      c,
		batch:  C.llama_batch_init(C.int32_t(cp.nBatch), 0, 1),
		nBatch: cp.nBatch,
		abort:  abort,
		fa:     p.flash_attn_type,
	}, nil
}

func (c *cContext) free() {
	if c.p == nil {
		return
	}
	C.llama_batch_free(c.batch)
	C.llama_free(c.p)
	C.free(unsafe.Pointer(c.abort))
	c.p = nil
}

func (c *cContext) nCtx() int { return int(C.llama_n_ctx(c.p)) }

// setAbort makes a running decode return as soon as ggml checks the flag.
func (c *cContext) setAbort(v bool) {
	x := C.int(0)
	if v {
		x = 1
	}
	C.hedge_set_flag(c.abort, x)
}

// clear forgets every cached position (a new conversation).
func (c *cContext) clear() { C.llama_memory_clear(C.llama_get_memory(c.p), true) }

// keepPrefix drops the cached positions from n on, keeping 0…n-1, when the
// memory holds exactly the have positions 0…have-1 of sequence 0 and can
// drop part of a sequence. It reports whether it did: a recurrent memory
// cannot, and a sliding-window one that has forgotten its first positions
// (pos_min > 0) would keep a prefix it no longer attends to whole.
func (c *cContext) keepPrefix(n, have int) bool {
	mem := C.llama_get_memory(c.p)
	if C.llama_memory_seq_pos_min(mem, 0) > 0 || c.posMax() != have-1 {
		return false
	}
	return bool(C.llama_memory_seq_rm(mem, 0, C.llama_pos(n), -1))
}

// posMax is the last position sequence 0 holds, -1 when it is empty.
func (c *cContext) posMax() int { return int(C.llama_memory_seq_pos_max(C.llama_get_memory(c.p), 0)) }

// saveSeq copies sequence 0's state (its KV cells) into Go memory; nil
// when it is empty, larger than limit bytes or llama.cpp copied nothing.
func (c *cContext) saveSeq(limit int64) []byte {
	size := C.llama_state_seq_get_size(c.p, 0)
	if size == 0 || int64(size) > limit {
		return nil
	}
	buf := make([]byte, size)
	n := C.llama_state_seq_get_data(c.p, (*C.uint8_t)(unsafe.Pointer(&buf[0])), size, 0)
	if n == 0 {
		return nil
	}
	return buf[:n]
}

// loadSeq replaces the whole memory with a state saveSeq copied; it
// reports whether llama.cpp took it (on false the memory is empty).
func (c *cContext) loadSeq(data []byte) bool {
	c.clear()
	if len(data) == 0 {
		return false
	}
	n := C.llama_state_seq_set_data(c.p, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), 0)
	if n == 0 {
		c.clear()
		return false
	}
	return true
}

// errAborted is decode's answer when setAbort(true) stopped it.
var errAborted = errors.New("decode aborted")

// decode feeds toks at positions pos0… in chunks of n_batch; logits are
// computed for the last token only.
func (c *cContext) decode(toks []int32, pos0 int) error {
	for start := 0; start < len(toks); start += c.nBatch {
		end := min(start+c.nBatch, len(toks))
		chunk := toks[start:end]
		C.hedge_batch_fill(&c.batch, (*C.llama_token)(unsafe.Pointer(&chunk[0])), C.int(len(chunk)), C.int(pos0+start), C.bool(end == len(toks)))
		switch rc := C.llama_decode(c.p, c.batch); rc {
		case 0:
		case 2:
			return errAborted
		case 1:
			return errors.New("llama_decode: no room left in the KV cache")
		default:
			return fmt.Errorf("llama_decode failed with code %d", int(rc))
		}
	}
	return nil
}

// sampling holds the sampler settings of one request.
type sampling struct {
	Temperature   float32
	TopK          int
	TopP, MinP    float32
	RepeatPenalty float32
	RepeatLastN   int
	Seed          uint32
}

// cSampler is a llama_sampler chain.
type cSampler struct{ p *C.struct_llama_sampler }

// newSampler builds the chain in llama.cpp's usual order: penalties,
// top-k, top-p, min-p, temperature, then dist (or greedy at temperature 0).
func newSampler(s sampling) *cSampler {
	sp := C.llama_sampler_chain_default_params()
	sp.no_perf = true
	ch := C.llama_sampler_chain_init(sp)
	if s.RepeatPenalty > 0 && s.RepeatPenalty != 1 {
		C.llama_sampler_chain_add(ch, C.llama_sampler_init_penalties(C.int32_t(s.RepeatLastN), C.float(s.RepeatPenalty), 0, 0))
	}
	if s.Temperature <= 0 {
		C.llama_sampler_chain_add(ch, C.llama_sampler_init_greedy())
		return &cSampler{p: ch}
	}
	if s.TopK > 0 {
		C.llama_sampler_chain_add(ch, C.llama_sampler_init_top_k(C.int32_t(s.TopK)))
	}
	if s.TopP > 0 && s.TopP < 1 {
		C.llama_sampler_chain_add(ch, C.llama_sampler_init_top_p(C.float(s.TopP), 1))
	}
	if s.MinP > 0 {
		C.llama_sampler_chain_add(ch, C.llama_sampler_init_min_p(C.float(s.MinP), 1))
	}
	C.llama_sampler_chain_add(ch, C.llama_sampler_init_temp(C.float(s.Temperature)))
	C.llama_sampler_chain_add(ch, C.llama_sampler_init_dist(C.uint32_t(s.Seed)))
	return &cSampler{p: ch}
}

// sample picks the next token from the last logits and records it for the
// penalties.
func (s *cSampler) sample(c *cContext) int32 {
	return int32(C.llama_sampler_sample(s.p, c.p, -1))
}

// accept records prompt tokens for the repeat penalty window.
func (s *cSampler) accept(tok int32) { C.llama_sampler_accept(s.p, C.llama_token(tok)) }

func (s *cSampler) free() { C.llama_sampler_free(s.p) }
