// Package agent holds hedge's domain: the query and answer types, the
// interfaces of the tiers, the routing policy and the agent lifecycle.
//
// It imports none of the libraries that implement the tiers (paho, bbolt,
// onnxruntime_go, llama.cpp, go-openai); those live behind the interfaces
// in iface.go and are wired together by cmd/hedge.
package agent

import (
	"fmt"
	"unicode/utf8"
)

// Prefer is the caller's wish for where the answer comes from.
type Prefer string

// The preferences a caller may state. The empty string means PreferAuto.
const (
	PreferAuto  Prefer = "auto"
	PreferLocal Prefer = "local"
	PreferCloud Prefer = "cloud"
)

// Valid reports whether p is one of the known preferences or empty.
func (p Prefer) Valid() bool {
	switch p {
	case "", PreferAuto, PreferLocal, PreferCloud:
		return true
	}
	return false
}

// Tier names the part of hedge that produced an answer.
type Tier string

// The tiers, cheapest first.
const (
	TierCache Tier = "cache"
	TierSLM   Tier = "slm"
	TierLLM   Tier = "llm"
	TierCloud Tier = "cloud"
)

// Query is one request, whatever transport it came in on. Its JSON shape is
// the wire shape of ARCHITECTURE.md.
type Query struct {
	ID           string `json:"id,omitempty"`
	Text         string `json:"text"`
	ReplyTo      string `json:"reply_to,omitempty"`
	Prefer       Prefer `json:"prefer,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	MaxTokens    int    `json:"max_tokens,omitempty"`
	// Stream asks for tokens as they are produced (chunks before the reply).
	Stream bool `json:"stream,omitempty"`
	// Op is what the request asks besides a question (OpConversationShow,
	// OpConversationRm); "" asks Text.
	Op string `json:"op,omitempty"`

	// Transport and Caller are set by the transport, never by the client:
	// the transport's name ("socket", "mqtt", "http") and who asked, the
	// same for every request of one asker (a peer uid; over MQTT a topic,
	// docs/mqtt.md), used for metrics and per-caller budgets.
	Transport string `json:"-"`
	Caller    string `json:"-"`

	// History is the conversation so far, oldest turn first: the agent
	// loads it from Memory for a Conversation, or a transport that carries
	// the history itself (OpenAI's messages) sets it. System, when set,
	// replaces the configured system prompt (an OpenAI system message).
	History []Turn `json:"-"`
	System  string `json:"-"`
}

// Scored is one candidate intent with its calibrated probability.
type Scored struct {
	Intent     string  `json:"intent"`
	Confidence float64 `json:"confidence"`
}

// Answer is the reply to one Query. Errors are replies too: Error is set and
// Answer is empty.
type Answer struct {
	ID         string   `json:"id"`
	Answer     string   `json:"answer,omitempty"`
	Intent     string   `json:"intent,omitempty"`
	Confidence float64  `json:"confidence,omitempty"`
	Top        []Scored `json:"top,omitempty"`
	Tier       Tier     `json:"tier,omitempty"`
	// CachedFrom is the tier that made an answer the cache serves (Tier
	// is then TierCache); empty otherwise. Never on the wire.
	CachedFrom Tier    `json:"-"`
	Model      string  `json:"model,omitempty"`
	LatencyMS  float64 `json:"latency_ms"`
	// Truncated is set when generation stopped at the token limit (the
	// query's max_tokens, the tier's own bound, or the end of the model's
	// context) rather than at an end of its own: the answer is cut short.
	// OpenAI's finish_reason "length". Templated (SLM) answers never are.
	Truncated bool `json:"truncated,omitempty"`
	// HistoryTruncated is set when the oldest turns of the conversation
	// were left out because the history did not fit the model's context.
	HistoryTruncated bool `json:"history_truncated,omitempty"`
	// Usage is the local LLM's token counts for this answer; nil for
	// answers it did not generate now (SLM, cache, cloud).
	Usage *Usage `json:"usage,omitempty"`
	// CloudPrompt and CloudText are what the cloud was sent and answered,
	// with placeholders, kept as the conversation's turn; never on the wire.
	CloudPrompt string `json:"-"`
	CloudText   string `json:"-"`
	// Degraded says why the answer is not from the tier the policy wanted:
	// "offline" (cloud link down), "budget" (cloud budget spent),
	// "private" (the text holds data that must stay on the device),
	// "cloud_config" (the cloud refused the request: hedge's cloud settings
	// or key need fixing).
	Degraded string `json:"degraded,omitempty"`
	// Queued is set when a cloud escalation was stored to be answered later.
	Queued bool `json:"queued,omitempty"`
	// Late marks a cloud answer delivered after the first reply.
	Late bool `json:"late,omitempty"`
	// Anonymized is set when the text went to the cloud with placeholders;
	// Entities counts the replaced values by kind (never the values).
	Anonymized bool           `json:"anonymized,omitempty"`
	Entities   map[string]int `json:"entities,omitempty"`
	// Reason is a short, human-readable why for the tier choice.
	Reason string `json:"reason,omitempty"`
	// Turns is a conversation's turns, the reply to OpConversationShow.
	Turns []Turn `json:"turns,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Usage counts the tokens of one generated answer, as the model's own
// tokenizer and sampler counted them (OpenAI's usage object).
type Usage struct {
	// PromptTokens is the whole prompt: system prompt, the history that
	// fit and the question, through the model's chat template.
	PromptTokens int `json:"prompt_tokens"`
	// CompletionTokens were sampled for the answer.
	CompletionTokens int `json:"completion_tokens"`
	// CachedTokens of the prompt were in the KV cache already from the
	// conversation's previous turn, so only the rest was evaluated.
	CachedTokens int `json:"cached_tokens,omitempty"`
}

// ErrorCode is the machine-readable kind of an error reply.
type ErrorCode string

// The error codes a reply may carry.
const (
	CodeBadRequest   ErrorCode = "bad_request"
	CodeTooLarge     ErrorCode = "too_large"
	CodeNoTier       ErrorCode = "no_tier"
	CodeBusy         ErrorCode = "busy"
	CodeShuttingDown ErrorCode = "shutting_down"
	CodeTimeout      ErrorCode = "timeout"
	CodeInternal     ErrorCode = "internal"
	CodeRefused      ErrorCode = "refused"
	// CodeCloudConfig: the cloud answered and refused the request (a bad
	// key, an unknown model or path) and no local tier could answer
	// instead; nothing is queued, since asking again would be refused too.
	CodeCloudConfig ErrorCode = "cloud_config"
)

// Error is the error object of a reply.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorAnswer returns the error reply for request id.
func ErrorAnswer(id string, e *Error) Answer {
	return Answer{ID: id, Error: e}
}

// Limits bounds what a query may be.
type Limits struct {
	MaxQueryBytes int // size of the text in bytes
	MaxTokens     int // upper bound of max_tokens; 0 means no bound
}

// Validate checks a decoded query against the limits; it is the first step
// of Handle and is also used by transports that decode on their own.
func (q *Query) Validate(l Limits) *Error {
	if !utf8.ValidString(q.Text) || !utf8.ValidString(q.ID) || !utf8.ValidString(q.ReplyTo) || !utf8.ValidString(q.Conversation) {
		return Errorf(CodeBadRequest, "request is not valid UTF-8")
	}
	if l.MaxQueryBytes > 0 && len(q.Text) > l.MaxQueryBytes {
		return Errorf(CodeTooLarge, "text is %d bytes, the limit is %d", len(q.Text), l.MaxQueryBytes)
	}
	if len(q.ID) > 256 {
		return Errorf(CodeBadRequest, "id is %d bytes, the limit is 256", len(q.ID))
	}
	if len(q.Conversation) > MaxConversationBytes {
		return Errorf(CodeBadRequest, "conversation is %d bytes, the limit is %d", len(q.Conversation), MaxConversationBytes)
	}
	if len(q.ReplyTo) > 1024 {
		return Errorf(CodeBadRequest, "reply_to is %d bytes, the limit is 1024", len(q.ReplyTo))
	}
	if r, ok := controlChar(q.Text, true); ok {
		return Errorf(CodeBadRequest, "text holds the control character U+%04X; of those only tab, newline and carriage return are taken", r)
	}
	for _, f := range []struct{ name, v string }{{"id", q.ID}, {"reply_to", q.ReplyTo}, {"conversation", q.Conversation}} {
		if r, ok := controlChar(f.v, false); ok {
			return Errorf(CodeBadRequest, "%s holds the control character U+%04X", f.name, r)
		}
	}
	if isBlank(q.Text) && q.Op == OpAsk {
		return Errorf(CodeBadRequest, "text is empty")
	}
	if !q.Prefer.Valid() {
		return Errorf(CodeBadRequest, "prefer %q is not one of auto, local, cloud", string(q.Prefer))
	}
	if q.MaxTokens < 0 {
		return Errorf(CodeBadRequest, "max_tokens %d is negative", q.MaxTokens)
	}
	if l.MaxTokens > 0 && q.MaxTokens > l.MaxTokens {
		return Errorf(CodeBadRequest, "max_tokens %d is above the limit %d", q.MaxTokens, l.MaxTokens)
	}
	return nil
}

// ControlChar returns the first control character (C0, DEL or C1, tab and
// newline included) of s, a name or other one-line field of valid UTF-8,
// and whether there is one: the rule Validate applies to an id.
func ControlChar(s string) (rune, bool) { return controlChar(s, false) }

// controlChar returns the first control character (C0, DEL or C1) of s and
// whether there is one; in text, tab, newline and carriage return do not
// count. No keyboard or voice front end sends the others: they are terminal
// escapes or binary, and a NUL would silently cut the question short where
// it reaches C code (llama.cpp takes the chat messages as C strings), so the
// tier would answer another question than the one cached. In an id or a
// reply_to a NUL would also let two requests share a key that joins fields
// with NUL.
//
// It runs over every request's text, so it scans bytes with a table
// rather than decoding runes (less than half the time on a long text). s
// must be valid UTF-8, as Validate checks first: there a C1 character is
// the only sequence of 0xC2 and a byte up to 0x9F.
func controlChar(s string, text bool) (rune, bool) {
	for i := 0; i < len(s); i++ {
		if !maybeControl[s[i]] {
			continue
		}
		switch b := s[i]; {
		case b == 0xc2:
			if i+1 < len(s) && s[i+1] <= 0x9f {
				return rune(s[i+1]), true
			}
		case text && (b == '\t' || b == '\n' || b == '\r'):
		default:
			return rune(b), true
		}
	}
	return 0, false
}

// maybeControl marks the bytes that start a control character: C0, DEL,
// and 0xC2, the lead byte of C1 (U+0080–U+009F) and of U+00A0–U+00BF.
var maybeControl = func() (t [256]bool) {
	for b := 0; b < 0x20; b++ {
		t[b] = true
	}
	t[0x7f], t[0xc2] = true, true
	return t
}()

func isBlank(s string) bool {
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			return false
		}
	}
	return true
}

// Chunk is one piece of a streamed answer. Transports send the chunks of a
// query (Seq counts from 1) before its final reply; a line with "delta" is a
// chunk, any other line is the reply.
type Chunk struct {
	ID    string `json:"id"`
	Seq   int    `json:"seq"`
	Delta string `json:"delta"`
}
