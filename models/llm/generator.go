// Package llm is hedge's local LLM tier: a GGUF model run on the CPU by
// llama.cpp (through the thin cgo binding in llama.go), answering one
// request at a time and streaming tokens as they are produced.
//
// One model is loaded once and shared. Requests run one after another on
// its single context; up to Options.QueueSize more wait their turn and any
// beyond that get agent.ErrBusy at once. With Options.KeepAlive the model
// is freed after that long without requests and loaded again on the next.
package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
)

// ErrPromptTooLong is returned (wrapped with the sizes) when the prompt
// leaves no room in the context for a single generated token. hedge does
// not truncate prompts: a cut question gets a wrong answer.
var ErrPromptTooLong = errors.New("prompt is longer than the model's context")

// ErrClosed is returned by Generate after Close.
var ErrClosed = errors.New("llm generator is closed")

// MMap modes of Options.MMap.
const (
	MMapAuto = "auto"
	MMapOn   = "on"
	MMapOff  = "off"
)

// Options configures a Generator. Zero values take the documented default.
type Options struct {
	// Path is the GGUF file.
	Path string
	// Name is reported as Answer.Model; default: the file's base name
	// without ".gguf".
	Name string
	// ContextSize in tokens; default min(2048, the model's training context).
	ContextSize int
	// Threads for generation and prompt processing; default runtime.NumCPU().
	Threads int
	// BatchSize is how many prompt tokens one decode call takes; default 512.
	BatchSize int
	// MaxTokens is the answer length when a query sets none; default 256.
	MaxTokens int
	// SystemPrompt is the system message of the chat template (and the
	// first paragraph of a plain completion prompt).
	SystemPrompt string
	// ChatTemplate overrides the model's template: a llama.cpp built-in
	// template name ("chatml", "llama3", …) or template text; "none" forces
	// the plain completion prompt.
	ChatTemplate string
	// Stop strings end the answer (they are not part of it); end-of-
	// generation tokens always do.
	Stop []string
	// Sampling. Temperature 0 is greedy decoding. Seed < 0 draws a new seed
	// per request.
	Temperature   float64
	TopK          int
	TopP          float64
	MinP          float64
	RepeatPenalty float64
	RepeatLastN   int
	Seed          int64
	// QueueSize is how many requests may wait while one runs; default 4.
	// Negative means none may wait.
	QueueSize int
	// KeepAlive frees the model after this long without requests; 0 keeps
	// it loaded for the generator's life.
	KeepAlive time.Duration
	// MMap: "on" maps the file (shared page cache, fast start), "off" reads
	// it into memory, "auto" (default) maps unless CPU repacking applies to
	// the file's weights: repacked tensors are copied into their new layout,
	// and with a mapping the pages they were read from would stay resident
	// too, so the weights would be held twice.
	MMap string
	// NoRepack turns off ggml's CPU repacking of Q4_0/Q4_K/IQ4_NL weights.
	NoRepack bool
	// FlashAttention turns llama.cpp's flash attention on. Its CPU kernel
	// evaluates a short prompt a little faster, and a prompt far into the
	// context much slower: a conversation's late turn, though the KV cache
	// holds all but its new tokens, then takes far longer to its first
	// token than the first turn (BENCHMARKS.md's conversation benchmark).
	FlashAttention bool
	// NoKVReuse evaluates every prompt whole. By default a request reuses
	// the longest prefix of its tokens that the KV cache still holds from
	// the last request of the same conversation (docs/llm.md).
	NoKVReuse bool
	// KVCacheBytes bounds the memory that keeps the KV states of recent
	// conversations other than the last one, so that each resumes where
	// it was; default DefaultKVCacheBytes, negative keeps none (only the
	// context's own, the last conversation's).
	KVCacheBytes int64
	// CPULibraryDir is the folder of llama.cpp's CPU variants; "" looks in
	// CPUFolders("") (see LoadCPU).
	CPULibraryDir string
	// Log receives load events and llama.cpp's warnings; default discards.
	Log *slog.Logger
	// OnStats, when set, receives the counts and timings of each request
	// that reached generation (for metrics and benchmarks).
	OnStats func(Stats)
}

// Stats describes one request's work.
type Stats struct {
	PromptTokens int
	// ReusedTokens of the prompt were in the KV cache already, from the
	// conversation's last request: PromptTime is the time llama.cpp took
	// to evaluate the others, PromptTokens-ReusedTokens.
	ReusedTokens int
	PromptTime   time.Duration
	// FirstToken is the time from the request's turn on the context to
	// its first sampled token: building and tokenizing the prompt, making
	// the KV cache hold the conversation's state, evaluating the prompt.
	FirstToken time.Duration
	// Tokens is how many tokens were sampled; GenTime is the time from the
	// first sampled token to the last, that is Tokens-1 steps of decoding
	// and sampling: the generation speed is (Tokens-1)/GenTime (the first
	// token's cost is in PromptTime's shadow, as in llama.cpp's own timers).
	Tokens  int
	GenTime time.Duration
}

// Sampling defaults (llama.cpp's own, except a lower temperature for
// short factual answers on small models).
const (
	DefaultTemperature   = 0.7
	DefaultTopK          = 40
	DefaultTopP          = 0.9
	DefaultMinP          = 0.05
	DefaultRepeatPenalty = 1.1
	DefaultRepeatLastN   = 64
	DefaultMaxTokens     = 256
	DefaultContextSize   = 2048
	DefaultBatchSize     = 512
	DefaultQueueSize     = 4
)

// Generator answers queries with a local GGUF model. It implements
// agent.Generator and is safe for concurrent use.
type Generator struct {
	o   Options
	log *slog.Logger

	admit chan struct{} // one slot per running or waiting request
	turn  chan struct{} // held by the request that owns the context

	mu      sync.Mutex // guards the fields below
	m       *cModel
	c       *cContext
	tmpl    string // chat template in use, "" for plain completion
	mmapped bool   // whether the loaded model's file is mapped
	idle    *time.Timer
	closed  bool
	loadErr error

	kv kvCache // what the context's memory holds; g.turn's holder owns it

	abortMu  sync.Mutex
	abortReq uint64 // the request whose ctx may set the abort flag
	reqSeq   uint64
}

// New validates o, loads the model and creates its context. The returned
// Generator must be closed.
func New(ctx context.Context, o Options) (*Generator, error) {
	if o.Path == "" {
		return nil, errors.New("llm: no model path")
	}
	if o.Name == "" {
		base := o.Path[strings.LastIndexByte(o.Path, '/')+1:]
		o.Name = strings.TrimSuffix(base, ".gguf")
	}
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.QueueSize < 0 {
		o.QueueSize = 0
	}
	if o.MMap == "" {
		o.MMap = MMapAuto
	}
	if o.KVCacheBytes == 0 {
		o.KVCacheBytes = DefaultKVCacheBytes
	}
	switch o.MMap {
	case MMapAuto, MMapOn, MMapOff:
	default:
		return nil, fmt.Errorf("llm: mmap %q: must be auto, on or off", o.MMap)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	g := &Generator{
		o:     o,
		log:   o.Log,
		admit: make(chan struct{}, 1+o.QueueSize),
		turn:  make(chan struct{}, 1),
		kv:    kvCache{off: o.NoKVReuse, limit: o.KVCacheBytes},
	}
	// The message names llama.cpp; the component stays the one hedge gave.
	backendInit(o.Log)
	if _, err := LoadCPU(o.CPULibraryDir, o.Log); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.loadLocked(); err != nil {
		return nil, err
	}
	return g, nil
}

// loadLocked loads the model and context; g.mu is held.
func (g *Generator) loadLocked() error {
	start := time.Now()
	info, err := gguf.Inspect(g.o.Path)
	if err != nil {
		return fmt.Errorf("load model %s: %w", g.o.Path, err)
	}
	if arch := info.String("general.architecture"); arch == "" {
		return fmt.Errorf("load model %s: %w: no general.architecture", g.o.Path, gguf.ErrCorrupt)
	}
	repack := !g.o.NoRepack && hasRepackable(info)
	mmap := g.o.MMap == MMapOn || g.o.MMap == MMapAuto && !repack
	m, err := loadModel(g.o.Path, loadParams{mmap: mmap, repack: !g.o.NoRepack})
	if err != nil {
		return fmt.Errorf("load model %s: %w", g.o.Path, err)
	}
	nctx := g.o.ContextSize
	if nctx <= 0 {
		nctx = min(DefaultContextSize, m.nCtxTrain())
		if nctx <= 0 {
			nctx = DefaultContextSize
		}
	}
	c, err := newContext(m, contextParams{nCtx: nctx, nBatch: min(g.o.BatchSize, nctx), threads: g.o.Threads, threadsBatch: g.o.Threads, flashAttention: g.o.FlashAttention})
	if err != nil {
		m.free()
		return fmt.Errorf("create context for %s: %w", g.o.Path, err)
	}
	tmpl := g.o.ChatTemplate
	if tmpl == "" {
		tmpl = m.chatTemplate()
	}
	if tmpl == "none" {
		tmpl = ""
	}
	if tmpl != "" {
		if _, ok := applyTemplate(tmpl, []string{"user"}, []string{"hi"}); !ok {
			g.log.Warn("chat template not supported by llama.cpp; using a plain completion prompt", "model", g.o.Name)
			tmpl = ""
		}
	}
	g.m, g.c, g.tmpl, g.mmapped = m, c, tmpl, mmap
	g.log.Info("llm model loaded", "model", g.o.Name, "path", g.o.Path, "params", m.nParams(), "bytes", m.size(),
		"ctx", c.nCtx(), "threads", g.o.Threads, "mmap", mmap, "repack", repack, "chat_template", tmpl != "",
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// hasRepackable reports whether ggml's CPU repack would copy some of the
// file's matrices (types with an interleaved layout for AVX2/NEON kernels).
func hasRepackable(info *gguf.Info) bool {
	for _, t := range info.Tensors {
		if len(t.Dims) < 2 {
			continue
		}
		switch t.Type {
		case gguf.Q4_0, gguf.Q4_K, gguf.IQ4_NL:
			return true
		}
	}
	return false
}

func (g *Generator) unloadLocked() {
	g.kv.reset()
	if g.c != nil {
		g.c.free()
		g.c = nil
	}
	if g.m != nil {
		g.m.free()
		g.m = nil
	}
}

// Close waits for the running request, then frees the model. Generate
// returns ErrClosed afterwards.
func (g *Generator) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	if g.idle != nil {
		g.idle.Stop()
	}
	g.mu.Unlock()
	g.turn <- struct{}{}
	defer func() { <-g.turn }()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.unloadLocked()
	return nil
}

// Loaded reports whether the model is in memory now (KeepAlive may have
// freed it).
func (g *Generator) Loaded() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m != nil
}

// Model is the name reported in answers.
func (g *Generator) Model() string { return g.o.Name }

// Generate answers q, calling emit with each piece of text as it is
// produced. Answer.Truncated reports that generation stopped at q's
// max_tokens (else Options.MaxTokens) or at the context's end, not at an
// end-of-generation token or a stop string. A full queue returns agent.ErrBusy at once; a canceled ctx
// stops generation within one token and returns ctx's error with the text
// produced so far.
func (g *Generator) Generate(ctx context.Context, q agent.Query, emit func(token string)) (agent.Answer, error) {
	select {
	case g.admit <- struct{}{}:
	default:
		return agent.Answer{}, fmt.Errorf("llm: %d requests running or waiting: %w", cap(g.admit), agent.ErrBusy)
	}
	defer func() { <-g.admit }()
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return agent.Answer{}, ctx.Err()
	}
	defer func() { <-g.turn }()

	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return agent.Answer{}, ErrClosed
	}
	if g.idle != nil {
		g.idle.Stop()
	}
	if g.m == nil {
		g.log.Info("llm model reloading after idle unload", "model", g.o.Name)
		if err := g.loadLocked(); err != nil {
			g.mu.Unlock()
			return agent.Answer{}, err
		}
	}
	m, c, tmpl := g.m, g.c, g.tmpl
	g.mu.Unlock()
	defer g.armIdle()

	r, err := g.generate(ctx, m, c, tmpl, q, emit)
	ans := agent.Answer{ID: q.ID, Answer: r.text, Tier: agent.TierLLM, Model: g.o.Name, Truncated: r.truncated, HistoryTruncated: r.historyDropped, Usage: r.usage}
	return ans, err
}

// armIdle schedules the idle unload after a request.
func (g *Generator) armIdle() {
	if g.o.KeepAlive <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	if g.idle == nil {
		g.idle = time.AfterFunc(g.o.KeepAlive, g.idleUnload)
		return
	}
	g.idle.Reset(g.o.KeepAlive)
}

func (g *Generator) idleUnload() {
	if g.unloadIdle() {
		g.log.Info("llm model unloaded after idle time", "model", g.o.Name, "keep_alive", g.o.KeepAlive)
	}
}

// unloadIdle frees the model when nobody holds or waits for the context
// (a request that arrives meanwhile re-arms the idle timer when it ends)
// and reports whether it freed it.
func (g *Generator) unloadIdle() bool {
	select {
	case g.turn <- struct{}{}:
	default:
		return false
	}
	defer func() { <-g.turn }()
	if len(g.admit) > 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.m == nil {
		return false
	}
	g.unloadLocked()
	return true
}

// Unload frees the model now, as KeepAlive's timer would, unless a request
// runs or waits on it; it reports whether the model is out of memory when
// it returns. The next request loads it again.
func (g *Generator) Unload() bool {
	if g.unloadIdle() {
		g.log.Info("llm model unloaded on request", "model", g.o.Name)
		return true
	}
	return !g.Loaded()
}

// Load loads the model when an unload freed it, waiting for its turn on
// the context like a request, and arms the idle unload after.
func (g *Generator) Load(ctx context.Context) error {
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.turn }()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	var err error
	if g.m == nil {
		g.log.Info("llm model loading on request", "model", g.o.Name)
		err = g.loadLocked()
	}
	g.mu.Unlock()
	if err == nil {
		g.armIdle()
	}
	return err
}

// Prompt renders the prompt text for user text as Generate would, for
// inspection (hedge's tests and `hedge doctor`).
func (g *Generator) Prompt(text string) string {
	g.mu.Lock()
	tmpl := g.tmpl
	g.mu.Unlock()
	p, _ := buildPrompt(tmpl, chat{system: g.o.SystemPrompt, text: text})
	return p
}

func (g *Generator) sampling() sampling {
	o := g.o
	seed := uint32(o.Seed)
	if o.Seed < 0 {
		seed = rand.Uint32()
	}
	return sampling{
		Temperature: float32(o.Temperature), TopK: o.TopK, TopP: float32(o.TopP), MinP: float32(o.MinP),
		RepeatPenalty: float32(o.RepeatPenalty), RepeatLastN: o.RepeatLastN, Seed: seed,
	}
}

// genResult is what one request produced: the text, whether generation
// stopped at the token limit (the request's, or the context's end) rather
// than at an end-of-generation token or a stop string, and whether the
// oldest turns of the history were left out to fit the context.
type genResult struct {
	text                      string
	truncated, historyDropped bool
	usage                     *agent.Usage
}

// generate runs one request on the context it owns (g.turn is held).
func (g *Generator) generate(ctx context.Context, m *cModel, c *cContext, tmpl string, q agent.Query, emit func(string)) (genResult, error) {
	start := time.Now()
	maxTokens := g.o.MaxTokens
	if q.MaxTokens > 0 {
		maxTokens = q.MaxTokens
	}
	nctx := c.nCtx()
	system := g.o.SystemPrompt
	if q.System != "" {
		system = q.System
	}
	key := kvKey(q)
	turns := g.kv.asProduced(key, q.History)
	ch := chat{system: system, turns: turns, text: q.Text, prev: g.kv.lastSpoken(key)}
	toks, prompt, dropped, err := fitPromptText(m, tmpl, ch, min(maxTokens, nctx/2), nctx)
	if err != nil {
		return genResult{}, err
	}
	var out decoded
	run := decodeRun{m: m, c: c, key: key, toks: toks, maxTokens: maxTokens, start: start}
	text, truncated, err := g.decodeLoop(ctx, run, emit, &out)
	if err == nil {
		g.kv.answered(key, text, strings.Join(out.pieces, ""), out.cut, spokenOf(prompt, toks, out.pieces, out.sampled))
	}
	stats := out.stats
	usage := &agent.Usage{PromptTokens: stats.PromptTokens, CompletionTokens: stats.Tokens, CachedTokens: stats.ReusedTokens}
	return genResult{text: text, truncated: truncated, historyDropped: dropped, usage: usage}, err
}

// decodeRun is one request's decoding: the model and context, the key of
// its KV state, the prompt's tokens, the answer's bound and when the
// request got the context.
type decodeRun struct {
	m         *cModel
	c         *cContext
	key       string
	toks      []int32
	maxTokens int
	start     time.Time
}

// decoded is what decodeLoop made of one request besides the answer: its
// counts, each token sampled for the answer and that token's text (the
// answer's raw text is theirs joined), and whether a stop string ended it.
type decoded struct {
	stats   Stats
	sampled []int32
	pieces  []string
	cut     bool
}

// watchAbort arms ctx's end to raise c's abort flag, which ggml polls
// during a decode; the returned func disarms it. A request number keeps a
// late AfterFunc of a finished request from aborting the next one.
func (g *Generator) watchAbort(ctx context.Context, c *cContext) (stop func()) {
	g.abortMu.Lock()
	g.reqSeq++
	req := g.reqSeq
	g.abortReq = req
	c.setAbort(false)
	g.abortMu.Unlock()
	stopAbort := context.AfterFunc(ctx, func() {
		g.abortMu.Lock()
		defer g.abortMu.Unlock()
		if g.abortReq == req {
			c.setAbort(true)
		}
	})
	return func() {
		stopAbort()
		g.abortMu.Lock()
		g.abortReq = 0
		c.setAbort(false)
		g.abortMu.Unlock()
	}
}

// decodeErr is the error of a failed decode of c: ctx's own when ctx's
// end aborted it.
func (g *Generator) decodeErr(ctx context.Context, c *cContext, err error, what string) error {
	g.kv.failed(c)
	if errors.Is(err, errAborted) && ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("llm: %s%w", what, err)
}

// decodeLoop evaluates the prompt's tokens that the KV cache does not hold
// and samples up to run.maxTokens. The loop also checks ctx between tokens.
// It returns the answer and whether it was cut at the limit, and fills out.
func (g *Generator) decodeLoop(ctx context.Context, run decodeRun, emit func(string), out *decoded) (text string, truncated bool, err error) {
	m, c, toks := run.m, run.c, run.toks
	nctx := c.nCtx()
	defer g.watchAbort(ctx, c)()
	smp := newSampler(g.sampling())
	defer smp.free()

	st := newStreamer(g.o.Stop, emit)
	stats := &out.stats
	*stats = Stats{PromptTokens: len(toks)}
	var tFirst, tLast time.Time
	if g.o.OnStats != nil {
		defer func() {
			if stats.Tokens > 0 {
				stats.GenTime = tLast.Sub(tFirst)
			}
			g.o.OnStats(*stats)
		}()
	}
	reused := g.kv.prepare(c, run.key, toks)
	stats.ReusedTokens = reused
	t0 := time.Now()
	if err := c.decode(toks[reused:], reused); err != nil {
		return "", false, g.decodeErr(ctx, c, err, "prompt: ")
	}
	stats.PromptTime = time.Since(t0)
	pos := len(toks)
	var piece []byte
	for n := 0; n < run.maxTokens; n++ {
		if err := ctx.Err(); err != nil {
			st.flush()
			return st.text(), false, err
		}
		tok := smp.sample(c)
		if n == 0 {
			stats.FirstToken = time.Since(run.start)
		}
		if m.isEOG(tok) {
			break
		}
		stats.Tokens++
		out.sampled = append(out.sampled, tok)
		if g.o.OnStats != nil {
			tLast = time.Now()
			if stats.Tokens == 1 {
				tFirst = tLast
			}
		}
		piece = m.piece(piece[:0], tok)
		out.pieces = append(out.pieces, string(piece))
		if st.push(piece) {
			break
		}
		if n+1 == run.maxTokens || pos >= nctx {
			truncated = true
			break // no decode for a token that will not be sampled from, or no room
		}
		if err := c.decode([]int32{tok}, pos); err != nil {
			st.flush()
			return st.text(), false, g.decodeErr(ctx, c, err, "")
		}
		g.kv.evaluated(tok)
		pos++
	}
	st.flush()
	out.cut = st.stopped
	return st.text(), truncated, nil
}

var _ agent.Generator = (*Generator)(nil)
