package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Options wires an Agent. Every tier is optional: a nil tier is skipped, and
// a query no configured tier can answer gets a no_tier error reply.
type Options struct {
	Log    *slog.Logger
	Limits Limits
	// RequestTimeout bounds one query end to end (0: no bound).
	RequestTimeout time.Duration
	// ShutdownGrace is how long in-flight queries may run after shutdown
	// begins before they are cancelled with a shutting_down reply.
	ShutdownGrace time.Duration

	// Memory keeps conversations: a query naming one gets its turns as
	// history. nil: every query stands alone.
	Memory Memory

	Cache    Cache
	CacheTTL time.Duration
	// CacheVersion is mixed into every cache key so that answers of an old
	// model or intent set are never served (e.g. a hash of the intents file).
	// It must name the tiers' own max_tokens bounds too: a query that sets
	// none is answered up to them.
	CacheVersion string
	// Semantic, with SemanticThreshold > 0, answers a query from the cached
	// answer of a near-duplicate: same intent, preference and answer
	// length (CacheKey), feature cosine ≥ SemanticThreshold. Volatile
	// intents never take part.
	Semantic          SemanticCache
	SemanticThreshold float64

	Classifier       Classifier
	Skills           Skills
	SLMModel         string
	DefaultThreshold float64

	LLM Generator
	// LLMOff, when LLM is nil, says why a configured local LLM is off;
	// no_tier replies give it instead of pointing at llm.model.
	LLMOff string
	Cloud  Cloud

	// Observe, when set, sees every query and its reply (metrics, dashboard).
	// It must not block.
	Observe func(q Query, a Answer)

	// CheckReplyTo, when set, vets a query's reply_to before the query is
	// taken; an error is a bad_request reply with the error's text. A late
	// cloud answer is published to reply_to long after its asker got the
	// first reply, so a topic the courier would refuse then must be refused
	// now, whatever transport the query came on (the MQTT transport checks
	// its own requests; the socket relies on this). Wire the courier's
	// check: (*mqtt.Transport).CheckReplyTo.
	CheckReplyTo func(replyTo string) error
}

// Agent routes queries through the tiers. It is safe for concurrent use.
type Agent struct {
	o   Options
	log *slog.Logger
	// mu orders admission against draining: once draining is set under
	// it, no query adds itself to inflight, so Drain's Wait cannot race
	// an Add (which sync.WaitGroup forbids) nor return while a query that
	// was admitted has yet to add itself.
	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup
	// started holds when each query in flight began, by admission number,
	// for Stalled.
	started map[uint64]time.Time
	seq     uint64
	// hard is cancelled when the shutdown grace has passed.
	hard       context.Context
	hardCancel context.CancelFunc
}

// New returns an agent with the given tiers.
func New(o Options) *Agent {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.DefaultThreshold <= 0 {
		o.DefaultThreshold = 0.5
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	hard, cancel := context.WithCancel(context.Background())
	return &Agent{o: o, log: o.Log.With("component", "agent"), hard: hard, hardCancel: cancel, started: map[uint64]time.Time{}}
}

var _ Handler = (*Agent)(nil)

// errShutdown is the cause of request contexts cancelled by shutdown.
var errShutdown = errors.New("agent is shutting down")

// Handle answers one query. It always returns a reply; errors are replies.
func (a *Agent) Handle(ctx context.Context, q Query, emit func(string)) Answer {
	start := time.Now()
	var ans Answer
	if n, ok := a.admit(); ok {
		ans = a.handle(ctx, q, emit)
		a.finish(n)
	} else {
		ans = ErrorAnswer(q.ID, Errorf(CodeShuttingDown, "hedge is shutting down; retry later"))
	}
	ans.ID = q.ID
	ans.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	if ans.Error != nil {
		a.log.Debug("query failed", "id", q.ID, "code", ans.Error.Code, "message", ans.Error.Message)
	} else {
		a.log.Debug("query answered", "id", q.ID, "tier", ans.Tier, "intent", ans.Intent, "text", q.Text)
	}
	if a.o.Observe != nil {
		a.o.Observe(q, ans)
	}
	return ans
}

// admit reports whether a query may start, and counts it in flight under
// the number it returns when it may; it may not once draining began.
func (a *Agent) admit() (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		return 0, false
	}
	a.inflight.Add(1)
	a.seq++
	a.started[a.seq] = time.Now()
	return a.seq, true
}

// finish counts query n out of flight.
func (a *Agent) finish(n uint64) {
	a.mu.Lock()
	delete(a.started, n)
	a.mu.Unlock()
	a.inflight.Done()
}

// Stalled reports whether a query has been in flight longer than bound, and
// how long the oldest has been. A query is bounded by
// limits.request_timeout; one held far past it means a tier that no longer
// returns (or a transport that no longer takes its reply), which the
// watchdog and /readyz report.
func (a *Agent) Stalled(bound time.Duration) (oldest time.Duration, stalled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.started {
		oldest = max(oldest, time.Since(t))
	}
	return oldest, oldest > bound
}

// StallBound is how long a query may be in flight before Stalled reports
// it: twice the request timeout, and at least 10 s (a request that ends at
// its timeout still has its reply to write).
func StallBound(requestTimeout time.Duration) time.Duration {
	return max(2*requestTimeout, 10*time.Second)
}

func (a *Agent) handle(ctx context.Context, q Query, emit func(string)) Answer {
	if e := q.Validate(a.o.Limits); e != nil {
		return ErrorAnswer(q.ID, e)
	}
	if q.ReplyTo != "" && a.o.CheckReplyTo != nil {
		if err := a.o.CheckReplyTo(q.ReplyTo); err != nil {
			return ErrorAnswer(q.ID, Errorf(CodeBadRequest, "%v", err))
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(a.hard, func() { cancel(errShutdown) })
	defer stop()
	if a.o.RequestTimeout > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, a.o.RequestTimeout)
		defer c()
	}
	if q.Op != OpAsk {
		return a.operate(ctx, q)
	}
	ans, err := a.converse(ctx, q, emit)
	if err != nil {
		ea := ErrorAnswer(q.ID, a.classifyErr(ctx, err))
		// An error reply may still promise a late answer: its escalation
		// is in the outbox. The field says so, not only the message.
		ea.Queued = errors.Is(err, errQueued)
		return ea
	}
	return ans
}

// errQueued marks the error of a query whose escalation was stored: the
// cloud answer follows on reply_to, and the error reply says queued.
var errQueued = errors.New("the escalation is queued")

func (a *Agent) classifyErr(ctx context.Context, err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(context.Cause(ctx), errShutdown):
		return Errorf(CodeShuttingDown, "hedge shut down before the answer was ready")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Errorf(CodeTimeout, "no answer within %s", a.o.RequestTimeout)
	case errors.Is(err, context.Canceled):
		return Errorf(CodeShuttingDown, "request cancelled")
	case errors.Is(err, ErrBusy):
		return Errorf(CodeBusy, "%v; retry later", err)
	}
	a.log.Warn("tier failed", "err", err)
	return Errorf(CodeInternal, "%v", err)
}

// converse answers q within its conversation: the turns so far are q's
// history for every tier, and the exchange becomes the next turn. Without
// a conversation (or a Memory) q stands alone, unless the transport brought
// its history itself.
func (a *Agent) converse(ctx context.Context, q Query, emit func(string)) (Answer, error) {
	if q.Conversation != "" && len(q.History) > 0 {
		return Answer{}, Errorf(CodeBadRequest, "a request names a conversation or carries its earlier turns, not both")
	}
	if q.Conversation == "" || a.o.Memory == nil {
		return a.route(ctx, q, emit)
	}
	hist, err := a.o.Memory.History(ctx, q.Caller, q.Conversation)
	if err != nil {
		// Answering without the history beats failing the question.
		a.log.Warn("conversation unreadable; answering without its history", "err", err)
	}
	q.History = hist
	ans, err := a.route(ctx, q, emit)
	if err != nil {
		return ans, err
	}
	t := Turn{User: q.Text, Answer: ans.Answer, Tier: ans.Tier, Intent: ans.Intent, CloudUser: ans.CloudPrompt, CloudAnswer: ans.CloudText}
	if err := a.o.Memory.Append(ctx, q.Caller, q.Conversation, t); err != nil {
		a.log.Warn("conversation turn not kept", "err", err)
	}
	return ans, nil
}

// route answers q from the cheapest tier that can. A turn after the first
// of a conversation is never answered from the cache: its answer may
// depend on the history, which the cache key does not hold. An accepted
// intent still answers it on the SLM, whose answers ignore the history.
func (a *Agent) route(ctx context.Context, q Query, emit func(string)) (Answer, error) {
	stateless := len(q.History) == 0
	if stateless {
		if hit, ok := a.cached(ctx, q); ok {
			hit.Reason = "cached answer from tier " + string(hit.Tier)
			hit.CachedFrom = hit.Tier
			hit.Tier = TierCache
			if emit != nil {
				emit(hit.Answer)
			}
			return hit, nil
		}
	}

	s := Situation{Prefer: q.Prefer, DefaultThreshold: a.o.DefaultThreshold, HaveLLM: a.o.LLM != nil}
	if a.o.Classifier != nil {
		in, err := a.o.Classifier.Classify(ctx, q.Text)
		if err != nil {
			if ctx.Err() != nil {
				return Answer{}, err
			}
			a.log.Warn("classifier failed", "err", err)
		} else {
			s.HaveSLM = true
			s.Intent = in
			if a.o.Skills != nil {
				s.Spec, s.SpecKnown = a.o.Skills.Spec(in.Name)
			}
		}
	}
	volatile := s.SpecKnown && s.Spec.Volatile
	// Near-duplicates count only within an accepted intent: the classifier's
	// vector says two texts mean the same to it, which is evidence enough
	// for an intent it knows, not for two open questions ("the capital of
	// France", "the capital of Spain") that merely both fall outside.
	semantic := stateless && a.o.Semantic != nil && a.o.SemanticThreshold > 0 && s.Accepted() && len(s.Intent.Vector) > 0 && !volatile
	if semantic {
		if hit, ok := a.near(ctx, q, s.Intent); ok {
			hit.Reason = "cached answer of a near-duplicate query, from tier " + string(hit.Tier)
			hit.CachedFrom = hit.Tier
			hit.Tier = TierCache
			if emit != nil {
				emit(hit.Answer)
			}
			return hit, nil
		}
	}
	if a.o.Cloud != nil {
		s.Cloud = a.o.Cloud.Check(ctx, q)
	}
	plan := Decide(s)

	ans, err := a.execute(ctx, q, s, &plan, emit)
	if err != nil {
		return Answer{}, err
	}
	if s.HaveSLM && s.Intent.Name != "" {
		ans.Intent = s.Intent.Name
		ans.Confidence = s.Intent.Confidence
		ans.Top = s.Intent.Top
	}
	ans.Reason = plan.Reason
	ans.Degraded = plan.Degraded
	ans.Queued = plan.Queue

	// A later turn's answer is kept only from the SLM, which ignored the
	// history: any other may hang on what was said before.
	if !volatile && (stateless || ans.Tier == TierSLM) {
		a.remember(ctx, q, s, ans, semantic)
	}
	return ans, nil
}

// remember caches ans, the answer to q as classified in s, for its TTL
// (the intent's own, else the default), and indexes its vector when
// near-duplicates may use it. Degraded and queued answers are never kept:
// the answer the policy wanted may come later.
func (a *Agent) remember(ctx context.Context, q Query, s Situation, ans Answer, semantic bool) {
	if a.o.Cache == nil || ans.Queued || ans.Degraded != "" || ans.Answer == "" {
		return
	}
	ttl := a.o.CacheTTL
	if s.SpecKnown && s.Spec.CacheTTL > 0 {
		ttl = s.Spec.CacheTTL
	}
	if ttl <= 0 {
		return
	}
	key := CacheKey(q, ans.Tier, a.o.CacheVersion)
	// A hit is not generated again: it counts no tokens.
	ans.Usage = nil
	if err := a.o.Cache.Put(ctx, key, ans, ttl); err != nil {
		a.log.Warn("cache write failed", "err", err)
		return
	}
	if semantic {
		ns := a.semanticNamespace(q, ans.Tier, s.Intent.Name)
		if err := a.o.Semantic.PutVector(ctx, key, ns, s.Intent.Vector); err != nil {
			a.log.Warn("semantic cache write failed", "err", err)
		}
	}
}

// execute runs the plan. A cloud call that fails on the wire is retried as
// if the link were down: the device answers locally and queues the
// escalation. A call the cloud refused (ErrCloudConfig) is answered locally
// too, but not queued: the same request would be refused again.
func (a *Agent) execute(ctx context.Context, q Query, s Situation, plan *Plan, emit func(string)) (Answer, error) {
	var refused error
	if plan.Tier == TierCloud {
		ans, streamed, err := a.escalate(ctx, q, emit)
		if err == nil {
			return ans, nil
		}
		if ctx.Err() != nil {
			return Answer{}, err
		}
		if errors.Is(err, ErrCloudConfig) {
			// The bridge logs the cause once; a line per query would
			// repeat it for every question while the key is wrong.
			s.Cloud, refused = CloudConfig, err
		} else {
			a.log.Warn("cloud escalation failed, answering locally", "err", err)
			s.Cloud = CloudDown
		}
		*plan = Decide(s)
		if streamed {
			// Part of the cloud's text already went out; the local answer
			// arrives whole in the final reply rather than appended to it.
			emit = nil
		}
	}
	if plan.Queue {
		if err := a.o.Cloud.Defer(ctx, q); err != nil {
			a.log.Warn("escalation not queued", "err", err)
			plan.Queue = false
		}
	}
	ans, err := a.answerLocally(ctx, q, s, *plan, emit, refused)
	if err != nil && plan.Queue {
		err = fmt.Errorf("%w (%w)", err, errQueued)
	}
	return ans, err
}

// escalate asks the cloud; streamed reports whether any of its text went
// to emit before it failed.
func (a *Agent) escalate(ctx context.Context, q Query, emit func(string)) (ans Answer, streamed bool, err error) {
	cloudEmit := emit
	if emit != nil {
		cloudEmit = func(tok string) { streamed = true; emit(tok) }
	}
	ans, err = a.o.Cloud.Generate(ctx, q, cloudEmit)
	if err == nil {
		ans.Tier = TierCloud
	}
	return ans, streamed, err
}

// answerLocally runs a plan's local tier. Without one the reply is an
// error: cloud_config when the cloud refused the query (refused), else
// no_tier.
func (a *Agent) answerLocally(ctx context.Context, q Query, s Situation, plan Plan, emit func(string), refused error) (Answer, error) {
	switch plan.Tier {
	case TierSLM:
		text, err := a.o.Skills.Respond(ctx, q, s.Intent)
		if err != nil {
			return Answer{}, err
		}
		if emit != nil {
			emit(text)
		}
		return Answer{Answer: text, Tier: TierSLM, Model: a.o.SLMModel}, nil
	case TierLLM:
		ans, err := a.o.LLM.Generate(ctx, q, emit)
		if err != nil {
			return Answer{}, err
		}
		ans.Tier = TierLLM
		return ans, nil
	}
	if refused != nil {
		return Answer{}, Errorf(CodeCloudConfig, "%v; no local tier can answer instead: %s", refused, a.missing())
	}
	e := Errorf(CodeNoTier, "no tier can answer: %s; %s", plan.Reason, a.missing())
	if plan.Queue {
		// The escalation is stored: the reply says so, and the cloud
		// answer follows on reply_to.
		return Answer{}, Errorf(CodeNoTier, "%s; the cloud answer will follow", e.Message)
	}
	return Answer{}, e
}

// missing names the tiers that are not configured, for no_tier messages.
func (a *Agent) missing() string {
	var m []string
	if a.o.Classifier == nil {
		m = append(m, "no intent model (slm)")
	}
	switch {
	case a.o.LLM == nil && a.o.LLMOff != "":
		m = append(m, "the local LLM is off ("+a.o.LLMOff+")")
	case a.o.LLM == nil:
		m = append(m, "no local LLM (llm.model)")
	}
	if a.o.Cloud == nil {
		m = append(m, "no cloud (cloud.base_url)")
	}
	if len(m) == 0 {
		return "every tier is configured"
	}
	return "configured: " + strings.Join(m, ", ")
}

// Run serves every transport until ctx ends, then drains: new queries get
// shutting_down replies, in-flight queries have ShutdownGrace to finish,
// after which they are cancelled. It returns once every transport has
// returned. A transport that fails stops the others and its error is returned.
func (a *Agent) Run(ctx context.Context, ts ...Transport) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(ts))
	for _, t := range ts {
		go func() {
			err := t.Serve(ctx, a)
			if err != nil {
				err = fmt.Errorf("transport %s: %w", t.Name(), err)
				cancel()
			}
			errs <- err
		}()
	}
	<-ctx.Done()
	a.log.Info("shutting down", "grace", a.o.ShutdownGrace)
	a.stopAdmitting()
	grace := time.AfterFunc(a.o.ShutdownGrace, a.hardCancel)
	defer grace.Stop()
	var first error
	for range ts {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	a.Drain()
	return first
}

// semanticNamespace groups near-duplicate candidates: only answers from
// tier t for the same intent, preference, models and answer length
// (answerShape) may stand in for each other.
func (a *Agent) semanticNamespace(q Query, t Tier, intent string) string {
	p := q.Prefer
	if p == "" {
		p = PreferAuto
	}
	return a.o.CacheVersion + "|" + string(p) + "|" + answerShape(q, t) + "|" + intent
}

// lengthKinds holds a tier of each kind of answer length (answerShape):
// a template, then a generated answer (the LLM's and the cloud's share
// their keys, as they share the query).
var lengthKinds = [...]Tier{TierSLM, TierLLM}

// cached returns the cached answer to q of either length kind; a miss or
// a failed read returns ok == false.
func (a *Agent) cached(ctx context.Context, q Query) (Answer, bool) {
	if a.o.Cache == nil {
		return Answer{}, false
	}
	for _, t := range lengthKinds {
		hit, ok, err := a.o.Cache.Get(ctx, CacheKey(q, t, a.o.CacheVersion))
		if err != nil {
			a.log.Warn("cache read failed", "err", err)
			return Answer{}, false
		}
		if ok {
			return hit, true
		}
	}
	return Answer{}, false
}

// near returns the cached answer of a near-duplicate of q, classified as
// in, of either length kind; none or a failed read returns ok == false.
func (a *Agent) near(ctx context.Context, q Query, in Intent) (Answer, bool) {
	for _, t := range lengthKinds {
		hit, ok, err := a.o.Semantic.Near(ctx, a.semanticNamespace(q, t, in.Name), in.Vector, a.o.SemanticThreshold)
		if err != nil {
			a.log.Warn("semantic cache read failed", "err", err)
			return Answer{}, false
		}
		if ok {
			return hit, true
		}
	}
	return Answer{}, false
}

// stopAdmitting makes every later query a shutting_down reply.
func (a *Agent) stopAdmitting() {
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
}

// Drain stops admitting queries and waits for those in flight; it is used
// by Run and by tests.
func (a *Agent) Drain() {
	a.stopAdmitting()
	a.inflight.Wait()
}

// CacheKey is the cache key of tier t's answer to q: q's normalized text,
// the caller's preference, the version of the models and intents, and the
// answer length it was made for (answerShape). The cloud bridge caches
// late answers under CacheKey(q, TierCloud, version) of the queued query.
func CacheKey(q Query, t Tier, version string) string {
	p := q.Prefer
	if p == "" {
		p = PreferAuto
	}
	h := sha256.Sum256([]byte(version + "\x00" + string(p) + "\x00" + answerShape(q, t) + "\x00" + Normalize(q.Text)))
	return hex.EncodeToString(h[:16])
}

// answerShape is what tier t's answer to q depends on besides its text. A
// generated answer (LLM, cloud) stops at q's max_tokens, 0 meaning the
// tier's own bound (the configured bounds are part of the cache version):
// one cut at 5 tokens must not answer a request allowing 500, nor a long
// one a request allowing 5. It also follows q's own system prompt (an
// OpenAI or Ollama client's system message, a JSON format's instruction):
// an answer made under one must not answer a request under another. An SLM
// answer is a template, never cut and blind to system prompts: one key
// serves them all.
func answerShape(q Query, t Tier) string {
	if t == TierSLM {
		return "any"
	}
	if q.System == "" {
		return strconv.Itoa(q.MaxTokens)
	}
	h := sha256.Sum256([]byte(q.System))
	return strconv.Itoa(q.MaxTokens) + "/" + hex.EncodeToString(h[:8])
}

// Normalize folds a query text for cache look-ups: lower case, runs of
// white space to one space, and punctuation at either end dropped, so
// "Hello!" and " hello " share an answer.
func Normalize(text string) string {
	f := strings.Fields(strings.ToLower(text))
	s := strings.Join(f, " ")
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
}
