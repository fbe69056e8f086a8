package ollama

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

// ndjson writes a reply as Ollama streams it: one JSON object a line,
// application/x-ndjson, the last with done true. The stream starts lazily,
// at the first token: an error before any is still an ordinary error reply
// with its status; an error after it is a line {"error": "…"}, which
// Ollama's clients raise as the stream's error.
type ndjson struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	extend func(*http.ResponseController)

	mu      sync.Mutex
	started bool
	closed  bool // Handle returned: late emits are dropped
	broken  bool // a write failed: the client is gone
	sent    strings.Builder
	sh      shape
}

func newNDJSON(w http.ResponseWriter, rc *http.ResponseController, extend func(*http.ResponseController)) *ndjson {
	return &ndjson{w: w, rc: rc, extend: extend}
}

// stream asks q with a token callback and streams what it emits, then the
// rest of the answer (chat.Rest) and the final chunk.
func (a *API) stream(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, sh shape, q agent.Query, started time.Time) {
	nd := newNDJSON(w, rc, a.o.ExtendWrite)
	nd.sh = sh
	ans := a.h.Handle(r.Context(), q, nd.emit)

	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.closed = true
	if nd.broken {
		return
	}
	if ans.Error != nil {
		if !nd.started {
			a.o.ExtendWrite(rc)
			writeAgentError(w, ans)
			return
		}
		nd.send(errorReply{Error: ans.Error.Message})
		return
	}
	nd.start()
	if rest := chat.Rest(nd.sent.String(), ans.Answer); rest != "" {
		nd.send(sh.chunk(rest))
	}
	nd.send(sh.final("", ans, started, &info{Info: chat.InfoOf(ans)}))
}

// emit is the agent's token callback. Tiers may call it from a goroutine
// of their own, so it locks; after Handle returns it does nothing.
func (nd *ndjson) emit(tok string) {
	if tok == "" {
		return
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.closed || nd.broken {
		return
	}
	nd.start()
	nd.sent.WriteString(tok)
	nd.send(nd.sh.chunk(tok))
}

// start sends the headers once. Callers hold mu, or own nd alone.
func (nd *ndjson) start() {
	if nd.started {
		return
	}
	nd.started = true
	h := nd.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-cache")
	// Proxies in front of hedge must not buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	nd.w.WriteHeader(http.StatusOK)
}

// send writes v as one line and flushes it.
func (nd *ndjson) send(v any) {
	if nd.broken {
		return
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		nd.broken = true
		return
	}
	nd.extend(nd.rc)
	if _, err := nd.w.Write(b.Bytes()); err != nil {
		nd.broken = true
		return
	}
	if err := nd.rc.Flush(); err != nil {
		nd.broken = true
	}
}
