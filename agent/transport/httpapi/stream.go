package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// sse writes one chat completion as server-sent events in OpenAI's framing:
// "data: <chunk JSON>\n\n" per event, the first carrying the role, the last
// an empty delta with the finish_reason ("stop", or "length" for an answer
// cut at max_tokens) and the hedge object, then
// "data: [DONE]\n\n". The stream starts lazily, at the first token: an
// error before any token is still an ordinary HTTP error reply with its
// status code. An error after it is an event "data: {"error": …}", which
// OpenAI clients report as the stream's error.
type sse struct {
	s       *Server
	w       http.ResponseWriter
	rc      *http.ResponseController
	id      string
	model   string
	created int64

	mu      sync.Mutex
	started bool
	closed  bool // Handle returned: late emits are dropped
	broken  bool // a write failed: the client is gone
	sent    strings.Builder
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, h agent.Handler, q agent.Query, model string) {
	st := &sse{s: s, w: w, rc: rc, id: q.ID, model: model, created: time.Now().Unix()}
	ans := h.Handle(r.Context(), q, st.emit)

	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	if st.broken {
		return
	}
	if ans.Error != nil {
		if !st.started {
			s.extendWrite(rc)
			writeAgentError(w, ans)
			return
		}
		_, typ := statusOf(ans.Error.Code)
		st.event(errorReply{Error: apiError{Message: ans.Error.Message, Type: typ, Code: string(ans.Error.Code)}})
		return
	}
	st.start()
	// What the stream still owes: chat.Rest.
	if rest := chat.Rest(st.sent.String(), ans.Answer); rest != "" {
		st.delta(rest)
	}
	st.event(completion{
		ID: st.id, Object: "chat.completion.chunk", Created: st.created, Model: st.model,
		Choices: []choice{{Index: 0, Delta: &message{}, FinishReason: finishReason(ans)}},
		Hedge:   chat.InfoOf(ans),
	})
	st.write([]byte("data: [DONE]\n\n"))
}

// emit is the agent's token callback. Tiers may call it from a goroutine of
// their own, so it locks; after Handle returns it does nothing.
func (st *sse) emit(tok string) {
	if tok == "" {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || st.broken {
		return
	}
	st.start()
	st.delta(tok)
}

// start sends the headers and the role chunk once. Callers hold mu.
func (st *sse) start() {
	if st.started {
		return
	}
	st.started = true
	h := st.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	// Proxies in front of hedge must not buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
	st.event(completion{
		ID: st.id, Object: "chat.completion.chunk", Created: st.created, Model: st.model,
		Choices: []choice{{Index: 0, Delta: &message{Role: "assistant"}}},
	})
}

func (st *sse) delta(text string) {
	st.sent.WriteString(text)
	st.event(completion{
		ID: st.id, Object: "chat.completion.chunk", Created: st.created, Model: st.model,
		Choices: []choice{{Index: 0, Delta: &message{Content: text}}},
	})
}

func (st *sse) event(v any) {
	var b bytes.Buffer
	b.WriteString("data: ")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		st.broken = true
		return
	}
	// Encode ends with one newline; an event ends with a blank line.
	b.WriteByte('\n')
	st.write(b.Bytes())
}

func (st *sse) write(p []byte) {
	if st.broken {
		return
	}
	st.s.extendWrite(st.rc)
	if _, err := st.w.Write(p); err != nil {
		st.broken = true
		return
	}
	if err := st.rc.Flush(); err != nil {
		st.broken = true
	}
}
