package httpapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/hedge-edge/hedge/agent/telemetry"
)

// The dashboard is three files embedded in the binary: no external assets,
// no CDN, no framework. It reads /api/status and streams answers from
// /v1/chat/completions with fetch and a ReadableStream.
//
//go:embed dashboard
var dashboardFS embed.FS

func assetHandler() http.Handler {
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		// The directory is embedded at build time; a miss is a build bug.
		panic("httpapi: embedded dashboard missing: " + err.Error())
	}
	files := http.FileServerFS(sub)
	return http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path == "index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	page, err := dashboardFS.ReadFile("dashboard/index.html")
	if err != nil {
		http.Error(w, "dashboard missing from this build", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	// Everything the page needs comes from this server.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(page)
	}
}

// statusReply is what the dashboard polls.
type statusReply struct {
	Device   string              `json:"device"`
	Ready    bool                `json:"ready"`
	Parts    map[string]bool     `json:"parts"`
	NotReady []string            `json:"not_ready,omitempty"`
	Metrics  *telemetry.Snapshot `json:"metrics,omitempty"`
}

// status serves GET /api/status: readiness and the counters and recent
// decisions of the telemetry (query texts only when debug is on).
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ok, parts, not := s.o.Ready.Status()
	rep := statusReply{Device: s.o.Device, Ready: ok && !s.closing.Load(), Parts: parts, NotReady: not}
	if s.o.Telemetry != nil {
		snap := s.o.Telemetry.Snapshot()
		rep.Metrics = &snap
	}
	writeJSON(w, http.StatusOK, rep)
}
