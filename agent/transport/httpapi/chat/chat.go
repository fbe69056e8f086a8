// Package chat holds the rules hedge's two chat APIs share, the
// OpenAI-compatible /v1 and the Ollama-compatible /api: which models hedge
// offers and the routing preference each stands for, how a request body is
// read and decoded, how chat messages become a system prompt and a
// history, and the hedge object that says which tier answered and why.
// Each API keeps only its wire shapes.
package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/hedge-edge/hedge/agent"
)

// Error is a problem with a request: the HTTP status of its reply, hedge's
// error code, a message for the client and the request field it concerns
// ("" for the body as a whole).
type Error struct {
	Status int
	Code   string
	Msg    string
	Param  string
}

func (e *Error) Error() string { return e.Msg }

// BadRequest is a 400 bad_request about param.
func BadRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: string(agent.CodeBadRequest), Msg: fmt.Sprintf(format, args...), Param: param}
}

// ReadBody reads r's body, at most limit bytes: a longer body is 413
// too_large.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body, nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: string(agent.CodeTooLarge),
			Msg: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit)}
	}
	return nil, BadRequest("", "could not read the request body: %v", err)
}

// Decode decodes body, one JSON object of UTF-8, into v; what names the
// request in messages ("chat completion request"). Unknown fields are
// accepted: both APIs' clients send fields of versions hedge has not seen.
func Decode(body []byte, v any, what string) *Error {
	// encoding/json would quietly turn invalid bytes into U+FFFD.
	if !utf8.Valid(body) {
		return BadRequest("", "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return BadRequest("", "request body is not a valid %s: %s", what, DescribeJSON(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BadRequest("", "request body has data after the JSON object")
	}
	return nil
}

// DescribeJSON says what is wrong with a JSON body in a client's terms.
func DescribeJSON(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Sprintf("expected a JSON object, got %s", te.Value)
		}
		return fmt.Sprintf("field %q has the wrong type (got %s)", te.Field, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return err.Error()
}

// Message is a chat message reduced to what hedge reads: its role and its
// text.
type Message struct {
	Role string
	Text string
}

// History reads the messages before the question, which is how chat
// clients send a conversation: system (and developer) messages make the
// system prompt; each user message and the assistant message after it
// make a turn (a user message with no answer after it is a turn with an
// empty answer, an assistant message with no question before it one with
// an empty question). Another role is a bad request.
func History(msgs []Message) (system string, turns []agent.Turn, perr *Error) {
	var sys []string
	var pending *agent.Turn
	for _, m := range msgs {
		switch m.Role {
		case "system", "developer":
			sys = append(sys, m.Text)
		case "user":
			if pending != nil {
				turns = append(turns, *pending)
			}
			pending = &agent.Turn{User: m.Text}
		case "assistant":
			if pending == nil {
				pending = &agent.Turn{}
			}
			pending.Answer = m.Text
			turns, pending = append(turns, *pending), nil
		default:
			return "", nil, BadRequest("messages", "a message has role %q; hedge reads system, developer, user and assistant messages", m.Role)
		}
	}
	if pending != nil {
		turns = append(turns, *pending)
	}
	return strings.Join(sys, "\n\n"), turns, nil
}

// Info is the hedge object of a reply: which tier answered and why.
type Info struct {
	Tier       agent.Tier     `json:"tier"`
	Intent     string         `json:"intent"`
	Confidence float64        `json:"confidence"`
	Top        []agent.Scored `json:"top,omitempty"`
	Queued     bool           `json:"queued"`
	Degraded   string         `json:"degraded"`
	Model      string         `json:"model"`
	LatencyMS  float64        `json:"latency_ms"`
	Anonymized bool           `json:"anonymized,omitempty"`
	Reason     string         `json:"reason,omitempty"`
}

// InfoOf is the hedge object of a.
func InfoOf(a agent.Answer) *Info {
	return &Info{
		Tier: a.Tier, Intent: a.Intent, Confidence: a.Confidence, Top: a.Top,
		Queued: a.Queued, Degraded: a.Degraded, Model: a.Model, LatencyMS: a.LatencyMS,
		Anonymized: a.Anonymized, Reason: a.Reason,
	}
}

// StopReason is why a's generation ended, in the words both APIs use
// (OpenAI's finish_reason, Ollama's done_reason): "length" when it stopped
// at the token limit (max_tokens, or the model's context), "stop"
// otherwise.
func StopReason(a agent.Answer) string {
	if a.Truncated {
		return "length"
	}
	return "stop"
}

// Rest is what a stream still owes its client once the answer is known,
// sent being the text streamed so far: the rest of the answer when sent is
// its start (a tier that answered without emitting, or emitted only the
// start, still gets its whole text streamed), else the whole answer set
// apart ("\n\n" first), as when the cloud failed mid-answer and a local
// tier answered instead: what went out cannot be taken back, and the
// client must get the answer the final chunk describes.
func Rest(sent, answer string) string {
	if rest, ok := strings.CutPrefix(answer, sent); ok {
		return rest
	}
	if answer == "" {
		return ""
	}
	return "\n\n" + answer
}

// StatusOf is the HTTP status of an error reply with agent code c, the
// same in both APIs.
func StatusOf(c agent.ErrorCode) int {
	switch c {
	case agent.CodeBadRequest:
		return http.StatusBadRequest
	case agent.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case agent.CodeBusy:
		return http.StatusTooManyRequests
	case agent.CodeRefused:
		return http.StatusForbidden
	case agent.CodeNoTier, agent.CodeShuttingDown:
		return http.StatusServiceUnavailable
	case agent.CodeTimeout:
		return http.StatusGatewayTimeout
	case agent.CodeCloudConfig:
		// The cloud behind hedge refused the request: a bad gateway, and
		// one a retry does not mend (no Retry-After).
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}
