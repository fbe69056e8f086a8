package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
)

// Readiness records which parts of hedge are ready: the wiring sets a part
// when it is (models loaded, transports listening) and clears it when it is
// not. hedge is ready when every part it has heard of is. It is safe for
// concurrent use.
type Readiness struct {
	mu     sync.Mutex
	parts  map[string]bool
	checks map[string]func() bool
}

// NewReadiness returns a registry in which each named part starts not ready,
// so /readyz names it until the wiring reports it ready.
func NewReadiness(parts ...string) *Readiness {
	r := &Readiness{parts: map[string]bool{}}
	for _, p := range parts {
		r.parts[p] = false
	}
	return r
}

// Set records whether part is ready.
func (r *Readiness) Set(part string, ready bool) {
	r.mu.Lock()
	r.parts[part] = ready
	r.mu.Unlock()
}

// Watch makes part's readiness what check reports at each Status; check
// must be quick and safe for concurrent use.
func (r *Readiness) Watch(part string, check func() bool) {
	r.mu.Lock()
	if r.checks == nil {
		r.checks = map[string]func() bool{}
	}
	r.checks[part] = check
	r.mu.Unlock()
}

// Status reports whether every part is ready, every part's state, and the
// parts that are not ready, sorted by name.
func (r *Readiness) Status() (ready bool, parts map[string]bool, notReady []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	parts = make(map[string]bool, len(r.parts)+len(r.checks))
	for p, check := range r.checks {
		parts[p] = check()
	}
	for p, ok := range r.parts {
		parts[p] = ok
	}
	for p, ok := range parts {
		parts[p] = ok
		if !ok {
			notReady = append(notReady, p)
		}
	}
	slices.Sort(notReady)
	return len(notReady) == 0, parts, notReady
}

type readyReply struct {
	Status   string          `json:"status"`
	Parts    map[string]bool `json:"parts"`
	NotReady []string        `json:"not_ready,omitempty"`
}

// healthz says the process is alive and serving HTTP; it checks nothing else.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// readyz is 200 when every part is ready and 503 naming the parts that are
// not (including "http" itself while it shuts down).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ok, parts, not := s.o.Ready.Status()
	if ok && !s.closing.Load() {
		writeJSON(w, http.StatusOK, readyReply{Status: "ready", Parts: parts})
		return
	}
	if s.closing.Load() && !slices.Contains(not, TransportName) {
		not = append(not, TransportName)
		parts[TransportName] = false
	}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, readyReply{Status: "not ready", Parts: parts, NotReady: not})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the peer may be gone; nothing to do about it
}
