// Package ollama serves Ollama's native API (/api/chat, /api/generate,
// /api/tags, /api/ps, /api/show, /api/version, /api/pull) on hedge's HTTP
// listener, for clients that reach local models through it: Home
// Assistant's Ollama integration, Open WebUI, the official ollama clients.
// The models it offers are hedge's routing preferences (chat.Catalog), and
// every answer comes from agent.Handle like any other query; the httpapi
// server mounts it behind its token, body limit and in-flight bound.
// docs/ollama.md says what each field does on hedge.
package ollama

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// APIVersion is what /api/version reports: the Ollama release whose API
// this package follows. Clients compare it to enable features; it is not
// hedge's own version.
const APIVersion = "0.9.0"

// Bounds on the lists of a request, beyond the body limit: a body of
// 400 KB holds tens of thousands of empty messages.
const (
	MaxMessages = 1000
	MaxTools    = 128
	// MaxNameBytes bounds a model or tool name.
	MaxNameBytes = 256
)

// Loader is the local LLM as Ollama's load and unload requests and /api/ps
// see it. Implementations are safe for concurrent use.
type Loader interface {
	// Load loads the model when it is not in memory.
	Load(ctx context.Context) error
	// Unload frees the model now unless a request runs or waits on it, and
	// reports whether the model is out of memory when it returns.
	Unload() bool
	// Loaded reports whether the model is in memory.
	Loaded() bool
}

// LocalModel describes the configured GGUF for /api/tags and /api/show;
// the zero value is none.
type LocalModel struct {
	Name          string
	Size          int64 // bytes of the file
	ModifiedAt    time.Time
	Family        string // general.architecture
	ParameterSize string // e.g. "494M", "1.5B"
	Quantization  string // the type most of its weights have, e.g. "Q4_K"
}

// Options configures an API.
type Options struct {
	Catalog chat.Catalog
	Local   LocalModel
	// Loader is nil when there is no local LLM.
	Loader Loader
	// Pullable reports whether hedge's model catalog knows name (`hedge
	// models pull NAME`); nil knows none.
	Pullable func(name string) bool
	// BodyMax bounds a request body.
	BodyMax int64
	// Admit takes an in-flight slot for a query (release gives it back) or
	// says why not.
	Admit func() (release func(), busy *chat.Error)
	// Caller names who asked; Transport is the queries' transport name.
	Caller    func(*http.Request) string
	Transport string
	// ExtendWrite gives the next write its own write timeout.
	ExtendWrite func(*http.ResponseController)
	// Started is when the server started: the modified_at of the
	// routing preferences.
	Started time.Time
}

// API serves the endpoints. It is safe for concurrent use.
type API struct {
	o Options
	h agent.Handler
}

// New returns the API answering queries with h.
func New(o Options, h agent.Handler) *API { return &API{o: o, h: h} }

// Route is one endpoint: its method, path and handler.
type Route struct {
	Method, Path string
	Handler      http.HandlerFunc
}

// Routes lists the endpoints; the server wraps each in its method check
// and token check. The last, "/api/", answers any other path under /api/
// with Ollama's 404.
func (a *API) Routes() []Route {
	return []Route{
		{http.MethodGet, "/api/version", a.version},
		{http.MethodGet, "/api/tags", a.tags},
		{http.MethodGet, "/api/ps", a.ps},
		{http.MethodPost, "/api/show", a.show},
		{http.MethodPost, "/api/pull", a.pull},
		{http.MethodPost, "/api/chat", a.chat},
		{http.MethodPost, "/api/generate", a.generate},
		{"", "/api/", a.notFound},
	}
}

// errorReply is Ollama's error body.
type errorReply struct {
	Error string `json:"error"`
}

// WriteError writes Ollama's error reply, {"error": msg}, with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, errorReply{Error: msg})
}

func writeRequestError(w http.ResponseWriter, e *chat.Error) { WriteError(w, e.Status, e.Msg) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client is gone: nothing to tell
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (docs/ollama.md lists what hedge serves)", r.Method, r.URL.Path))
}

// lookup finds the model a request names: a catalog id, with or without
// Ollama's default tag ":latest".
func (a *API) lookup(name string) (chat.Model, *chat.Error) {
	switch {
	case name == "":
		return chat.Model{}, chat.BadRequest("model", "model is required; GET /api/tags lists hedge's models")
	case len(name) > MaxNameBytes:
		return chat.Model{}, chat.BadRequest("model", "model name is %d bytes, the limit is %d", len(name), MaxNameBytes)
	}
	if r, ok := agent.ControlChar(name); ok {
		return chat.Model{}, chat.BadRequest("model", "model name holds the control character U+%04X", r)
	}
	m, ok := a.o.Catalog.Find(strings.TrimSuffix(name, ":latest"))
	if !ok {
		return chat.Model{}, &chat.Error{Status: http.StatusNotFound, Code: "model_not_found",
			Msg: fmt.Sprintf("model %q not found; hedge offers %s", name, a.o.Catalog.Offered()), Param: "model"}
	}
	return m, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return "ollama-" + hex.EncodeToString(b[:])
}

// timestamp is Ollama's created_at.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// digest stands in for a model's digest: the sha256 of its name, since
// hedge's models are routing preferences, not blobs (docs/ollama.md).
func digest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}
