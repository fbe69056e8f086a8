package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hedge-edge/hedge/agent"
)

// The models hedge offers; each is a routing preference, not a network.
var models = []struct {
	ID     string
	Prefer agent.Prefer
}{
	{"hedge-auto", agent.PreferAuto},
	{"hedge-local", agent.PreferLocal},
	{"hedge-cloud", agent.PreferCloud},
}

// preferOf returns the preference the model id stands for.
func preferOf(id string) (agent.Prefer, bool) {
	for _, m := range models {
		if m.ID == id {
			return m.Prefer, true
		}
	}
	return "", false
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

func (s *Server) model(id string) modelObject {
	return modelObject{ID: id, Object: "model", Created: s.started.Unix(), OwnedBy: "hedge"}
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	l := modelList{Object: "list"}
	for _, m := range models {
		l.Data = append(l.Data, s.model(m.ID))
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := preferOf(id); !ok {
		writeError(w, http.StatusNotFound, typeInvalidRequest, "model_not_found", unknownModel(id), "model")
		return
	}
	writeJSON(w, http.StatusOK, s.model(id))
}

func unknownModel(id string) string {
	return fmt.Sprintf("the model %q does not exist; hedge offers hedge-auto, hedge-local and hedge-cloud", id)
}

// chatRequest is the part of OpenAI's chat completion request hedge reads.
// Other fields (temperature, top_p, tools, …) are accepted and ignored: the
// tiers choose their own sampling.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	Stream              bool          `json:"stream"`
	MaxTokens           int           `json:"max_tokens"`
	MaxCompletionTokens int           `json:"max_completion_tokens"`
	N                   *int          `json:"n"`
	// Conversation names a conversation hedge keeps (a hedge extension);
	// messages then hold only the question.
	Conversation string `json:"conversation"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// requestError is a problem with a request, with the param it concerns.
type requestError struct {
	status int
	code   string
	msg    string
	param  string
}

func badRequest(param, format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: string(agent.CodeBadRequest), msg: fmt.Sprintf(format, args...), param: param}
}

// parseChat decodes a chat completion request and returns the preference,
// the query text and the rest of the request. Only the last message is the
// query: hedge answers one question at a time (its cache and classifier
// look at that text alone), so system and earlier messages are ignored.
func parseChat(body []byte) (chatRequest, agent.Prefer, string, *requestError) {
	var req chatRequest
	// encoding/json would quietly turn invalid bytes into U+FFFD.
	if !utf8.Valid(body) {
		return req, "", "", badRequest("", "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return req, "", "", badRequest("", "request body is not a valid chat completion request: %s", describeJSON(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, "", "", badRequest("", "request body has data after the JSON object")
	}
	if req.Model == "" {
		return req, "", "", badRequest("model", "model is missing; use hedge-auto, hedge-local or hedge-cloud")
	}
	prefer, ok := preferOf(req.Model)
	if !ok {
		return req, "", "", &requestError{status: http.StatusNotFound, code: "model_not_found", msg: unknownModel(req.Model), param: "model"}
	}
	if req.N != nil && *req.N != 1 {
		return req, "", "", badRequest("n", "n is %d; hedge gives one answer per request (n: 1)", *req.N)
	}
	if req.MaxTokens < 0 || req.MaxCompletionTokens < 0 {
		return req, "", "", badRequest("max_tokens", "max_tokens must not be negative")
	}
	if len(req.Messages) == 0 {
		return req, "", "", badRequest("messages", "messages is empty; send at least one user message")
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role != "user" {
		return req, "", "", badRequest("messages", "the last message has role %q; it must be the user's question", last.Role)
	}
	text, perr := messageText(last.Content)
	if perr != nil {
		return req, "", "", perr
	}
	return req, prefer, text, nil
}

// historyOf reads the messages before the question, which is how OpenAI
// clients send a conversation: system (and developer) messages make the
// system prompt; each user message and the assistant message after it
// make a turn (a user message with no answer after it is a turn with an
// empty answer, an assistant message with no question before it one with
// an empty question).
func historyOf(msgs []chatMessage) (system string, turns []agent.Turn, perr *requestError) {
	var sys []string
	var pending *agent.Turn
	for _, m := range msgs {
		text, perr := messageText(m.Content)
		if perr != nil {
			return "", nil, perr
		}
		switch m.Role {
		case "system", "developer":
			sys = append(sys, text)
		case "user":
			if pending != nil {
				turns = append(turns, *pending)
			}
			pending = &agent.Turn{User: text}
		case "assistant":
			if pending == nil {
				pending = &agent.Turn{}
			}
			pending.Answer = text
			turns, pending = append(turns, *pending), nil
		default:
			return "", nil, badRequest("messages", "a message has role %q; hedge reads system, developer, user and assistant messages", m.Role)
		}
	}
	if pending != nil {
		turns = append(turns, *pending)
	}
	return strings.Join(sys, "\n\n"), turns, nil
}

// messageText reads a message's content: a string, or an array of parts of
// which only text parts are supported.
func messageText(raw json.RawMessage) (string, *requestError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", badRequest("messages", "the last message has no content")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badRequest("messages", "message content is not a valid string")
		}
		return s, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badRequest("messages", "message content must be a string or an array of text parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type != "text" {
			return "", badRequest("messages", "content part of type %q is not supported; hedge reads text only", p.Type)
		}
		texts = append(texts, p.Text)
	}
	return strings.Join(texts, "\n"), nil
}

func describeJSON(err error) string {
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

// chat serves POST /v1/chat/completions.
func (s *Server) chat(h agent.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.bodyMax))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, typeInvalidRequest, string(agent.CodeTooLarge),
					fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit), "")
				return
			}
			writeError(w, http.StatusBadRequest, typeInvalidRequest, string(agent.CodeBadRequest), "could not read the request body: "+err.Error(), "")
			return
		}
		rc := http.NewResponseController(w)

		req, prefer, text, perr := parseChat(body)
		if perr != nil {
			writeError(w, perr.status, typeInvalidRequest, perr.code, perr.msg, perr.param)
			return
		}
		if s.slots != nil {
			select {
			case s.slots <- struct{}{}:
				defer func() { <-s.slots }()
			default:
				writeError(w, http.StatusTooManyRequests, typeRateLimit, string(agent.CodeBusy),
					fmt.Sprintf("hedge is answering %d requests already; retry later", cap(s.slots)), "")
				return
			}
		}
		system, hist, perr := historyOf(req.Messages[:len(req.Messages)-1])
		if perr != nil {
			writeError(w, perr.status, typeInvalidRequest, perr.code, perr.msg, perr.param)
			return
		}
		q := agent.Query{
			ID:           newID(),
			Text:         text,
			Prefer:       prefer,
			MaxTokens:    max(req.MaxTokens, req.MaxCompletionTokens),
			Stream:       req.Stream,
			Transport:    TransportName,
			Caller:       s.caller(r),
			Conversation: req.Conversation,
			System:       system,
			History:      hist,
		}
		if req.Stream {
			s.stream(w, r, rc, h, q, req.Model)
			return
		}
		ans := h.Handle(r.Context(), q, nil)
		if ans.Error != nil {
			s.extendWrite(rc)
			writeAgentError(w, ans)
			return
		}
		s.extendWrite(rc)
		writeJSON(w, http.StatusOK, completion{
			ID:      q.ID,
			Object:  "chat.completion",
			Created: time.Now().Unix(),
			Model:   req.Model,
			Choices: []choice{{
				Index:        0,
				Message:      &message{Role: "assistant", Content: ans.Answer},
				FinishReason: finishReason(ans),
			}},
			Usage: usageOf(ans.Usage),
			Hedge: info(ans),
		})
	}
}

// extendWrite gives the next write its own WriteTimeout: the server's
// deadline is set when the request arrives, and generation may take longer.
func (s *Server) extendWrite(rc *http.ResponseController) {
	_ = rc.SetWriteDeadline(time.Now().Add(s.o.WriteTimeout))
}

// completion is a chat completion or one chunk of a streamed one, plus the
// hedge object that says where the answer came from.
type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
	Hedge   *Info    `json:"hedge,omitempty"`
}

// usage is OpenAI's usage object: the local LLM's own token counts. It is
// left out of answers no model generated now (SLM, cache, cloud).
type usage struct {
	PromptTokens        int           `json:"prompt_tokens"`
	CompletionTokens    int           `json:"completion_tokens"`
	TotalTokens         int           `json:"total_tokens"`
	PromptTokensDetails *promptDetail `json:"prompt_tokens_details,omitempty"`
}

type promptDetail struct {
	CachedTokens int `json:"cached_tokens"`
}

func usageOf(u *agent.Usage) *usage {
	if u == nil {
		return nil
	}
	return &usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
		TotalTokens: u.PromptTokens + u.CompletionTokens, PromptTokensDetails: &promptDetail{CachedTokens: u.CachedTokens}}
}

type choice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Delta        *message `json:"delta,omitempty"`
	FinishReason *string  `json:"finish_reason"`
}

type message struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

// Info is the hedge object of a completion: which tier answered and why.
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

func info(a agent.Answer) *Info {
	return &Info{
		Tier: a.Tier, Intent: a.Intent, Confidence: a.Confidence, Top: a.Top,
		Queued: a.Queued, Degraded: a.Degraded, Model: a.Model, LatencyMS: a.LatencyMS,
		Anonymized: a.Anonymized, Reason: a.Reason,
	}
}

// finishReason is OpenAI's finish_reason of a: "length" when generation
// stopped at the token limit (max_tokens, or the model's context), "stop"
// otherwise.
func finishReason(a agent.Answer) *string {
	s := "stop"
	if a.Truncated {
		s = "length"
	}
	return &s
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return "chatcmpl-" + hex.EncodeToString(b[:])
}
