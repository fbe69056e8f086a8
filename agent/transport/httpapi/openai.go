package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

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
	for _, m := range s.catalog.Models() {
		l.Data = append(l.Data, s.model(m.ID))
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := s.catalog.Find(id); !ok {
		writeError(w, http.StatusNotFound, typeInvalidRequest, "model_not_found", s.catalog.Unknown(id), "model")
		return
	}
	writeJSON(w, http.StatusOK, s.model(id))
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
type requestError = chat.Error

var badRequest = chat.BadRequest

// parseChat decodes a chat completion request and returns the preference,
// the query text and the rest of the request. Only the last message is the
// query: hedge answers one question at a time (its cache and classifier
// look at that text alone), so system and earlier messages are ignored.
func parseChat(cat chat.Catalog, body []byte) (chatRequest, agent.Prefer, string, *requestError) {
	var req chatRequest
	if perr := chat.Decode(body, &req, "chat completion request"); perr != nil {
		return req, "", "", perr
	}
	if req.Model == "" {
		return req, "", "", badRequest("model", "model is missing; use hedge-auto, hedge-local or hedge-cloud")
	}
	m, ok := cat.Find(req.Model)
	if !ok {
		return req, "", "", &requestError{Status: http.StatusNotFound, Code: "model_not_found", Msg: cat.Unknown(req.Model), Param: "model"}
	}
	prefer := m.Prefer
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

// historyOf reads the messages before the question (chat.History).
func historyOf(msgs []chatMessage) (system string, turns []agent.Turn, perr *requestError) {
	texts := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		text, perr := messageText(m.Content)
		if perr != nil {
			return "", nil, perr
		}
		texts[i] = chat.Message{Role: m.Role, Text: text}
	}
	return chat.History(texts)
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

// chat serves POST /v1/chat/completions.
func (s *Server) chat(h agent.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, perr := chat.ReadBody(w, r, s.bodyMax)
		if perr != nil {
			writeRequestError(w, perr)
			return
		}
		rc := http.NewResponseController(w)

		req, prefer, text, perr := parseChat(s.catalog, body)
		if perr != nil {
			writeRequestError(w, perr)
			return
		}
		release, busy := s.admit()
		if busy != nil {
			writeError(w, busy.Status, typeRateLimit, busy.Code, busy.Msg, "")
			return
		}
		defer release()
		system, hist, perr := historyOf(req.Messages[:len(req.Messages)-1])
		if perr != nil {
			writeRequestError(w, perr)
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
			Hedge: chat.InfoOf(ans),
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
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Model   string     `json:"model"`
	Choices []choice   `json:"choices"`
	Usage   *usage     `json:"usage,omitempty"`
	Hedge   *chat.Info `json:"hedge,omitempty"`
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
type Info = chat.Info

// finishReason is OpenAI's finish_reason of a (chat.StopReason).
func finishReason(a agent.Answer) *string {
	s := chat.StopReason(a)
	return &s
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return "chatcmpl-" + hex.EncodeToString(b[:])
}
