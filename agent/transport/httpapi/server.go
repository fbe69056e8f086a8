// Package httpapi is hedge's HTTP transport: an OpenAI-compatible API
// (/v1/chat/completions, /v1/models), Ollama's API (/api/chat, /api/tags,
// …; package ollama), Prometheus metrics (/metrics), health
// (/healthz, /readyz) and the dashboard (/), served on loopback or a Unix
// socket. Listening beyond loopback requires a bearer token.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/ollama"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

// ErrTokenRequired is returned by New when the address is reachable beyond
// this machine and no bearer token is set: hedge never serves its API to a
// network without one.
var ErrTokenRequired = errors.New("a bearer token is required to listen beyond loopback")

// ErrSocketInUse is returned by New when a live process already serves the
// Unix socket path; a stale socket file (no one listening) is replaced, and
// a file that is not a socket is left alone (an error).
var ErrSocketInUse = local.ErrInUse

// TransportName is the Name of the HTTP transport and the transport label of
// its queries in metrics.
const TransportName = "http"

// Options configures a Server.
type Options struct {
	// Listen is host:port or "unix:/path" (config http.listen).
	Listen string
	// Token is the bearer token; "" serves without one (loopback only).
	Token string
	// Limits are the agent's query limits: the text size bound also bounds
	// request bodies when MaxBodyBytes is 0.
	Limits agent.Limits
	// MaxBodyBytes bounds a request body; 0 derives it from
	// Limits.MaxQueryBytes (see BodyLimit).
	MaxBodyBytes int
	// ReadTimeout, WriteTimeout and IdleTimeout are the server's; the write
	// timeout bounds each write (a reply, a stream chunk), not generation.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxInFlight bounds concurrent chat completions; beyond it requests get
	// 429 busy at once. 0 means no bound.
	MaxInFlight int
	// ShutdownGrace is how long Serve waits for in-flight requests after
	// its context ends before it closes their connections.
	ShutdownGrace time.Duration
	// Telemetry serves /metrics and the dashboard's counters; nil serves
	// neither metrics nor counters.
	Telemetry *telemetry.Telemetry
	// Ready backs /readyz; the server sets part "http" itself. nil gets a
	// registry of its own.
	Ready *Readiness
	// Device names the device on the dashboard.
	Device string
	// LocalModel describes the configured GGUF, offered by name beside the
	// hedge-… models; the zero value offers none.
	LocalModel ollama.LocalModel
	// Loader loads and unloads the local LLM for Ollama's load and unload
	// requests; nil when there is no local LLM.
	Loader ollama.Loader
	// Pullable reports whether hedge's model catalog knows a name, for
	// Ollama's pull (which tells the operator to run hedge models pull).
	Pullable func(name string) bool
	// Log is handed in; nil discards.
	Log *slog.Logger
}

// Server is the HTTP transport. Its listener opens in New; Serve serves it.
type Server struct {
	o        Options
	log      *slog.Logger
	ln       net.Listener
	addr     string
	unixPath string
	token    [32]byte // sha256 of the token, compared in constant time
	hasToken bool
	bodyMax  int64
	slots    chan struct{}
	catalog  chat.Catalog
	started  time.Time
	served   atomic.Bool
	closing  atomic.Bool
	closeLn  sync.Once
}

// BodyLimit is the request body bound for a query text limit of maxText
// bytes: the JSON-escaped query plus room for a system prompt and a few
// turns of history that clients send along (and hedge does not use).
func BodyLimit(maxText int) int { return 4 * agent.MaxRequestBytes(maxText) }

// New checks o, opens the listener and returns the server. A Unix socket is
// created 0660 in a directory made 0750 if missing; a stale socket file is
// replaced, a live one is ErrSocketInUse.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Ready == nil {
		o.Ready = NewReadiness()
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	onLoopback, err := config.ListenIsLocal(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("http listen %q: %w", o.Listen, err)
	}
	if !onLoopback && o.Token == "" {
		return nil, fmt.Errorf("http listen %s: %w", o.Listen, ErrTokenRequired)
	}
	s := &Server{o: o, log: o.Log.With("component", "http"), started: time.Now(), catalog: chat.NewCatalog(o.LocalModel.Name)}
	if o.Token != "" {
		s.token, s.hasToken = sha256.Sum256([]byte(o.Token)), true
	}
	s.bodyMax = int64(o.MaxBodyBytes)
	if s.bodyMax <= 0 {
		s.bodyMax = int64(BodyLimit(o.Limits.MaxQueryBytes))
	}
	if o.MaxInFlight > 0 {
		s.slots = make(chan struct{}, o.MaxInFlight)
	}
	// The readiness part exists from the start, so /readyz names it until
	// Serve runs.
	o.Ready.Set(TransportName, false)
	if path, ok := strings.CutPrefix(o.Listen, config.UnixPrefix); ok {
		// The socket transport's listener: it never removes a file that
		// is not a stale socket.
		s.ln, err = local.ListenUnix(path, 0o660)
		s.unixPath = path
	} else {
		s.ln, err = net.Listen("tcp", o.Listen)
	}
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", o.Listen, err)
	}
	s.addr = s.ln.Addr().String()
	if s.unixPath != "" {
		s.addr = config.UnixPrefix + s.unixPath
	}
	return s, nil
}

// Name returns "http".
func (s *Server) Name() string { return TransportName }

// Addr is the address the server listens on: host:port (with the real port
// when 0 was asked for) or "unix:/path".
func (s *Server) Addr() string { return s.addr }

// URL is the base URL of the server for clients on this machine; for a Unix
// socket it is "http://unix" (dial the socket).
func (s *Server) URL() string {
	if s.unixPath != "" {
		return "http://unix"
	}
	return "http://" + s.addr
}

// Close releases the listener of a server whose Serve never ran (wiring
// that fails after New). It is safe to call after Serve.
func (s *Server) Close() error {
	var err error
	s.closeLn.Do(func() {
		err = s.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if s.unixPath != "" {
			os.Remove(s.unixPath)
		}
	})
	return err
}

// Serve answers requests with h until ctx ends, then stops accepting, lets
// in-flight requests finish (for at most ShutdownGrace, after which their
// connections are closed) and returns nil. It may be called once.
func (s *Server) Serve(ctx context.Context, h agent.Handler) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("http serve: already serving")
	}
	defer s.Close()
	// Requests must outlive ctx: shutdown lets them finish; the agent
	// cancels what runs past its own grace.
	base := context.WithoutCancel(ctx)
	srv := &http.Server{
		Handler:           s.routes(h),
		ReadHeaderTimeout: min(s.o.ReadTimeout, 5*time.Second),
		ReadTimeout:       s.o.ReadTimeout,
		WriteTimeout:      s.o.WriteTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.o.Ready.Set(TransportName, true)
	s.log.Info("serving", "addr", s.addr, "token", s.hasToken)

	select {
	case err := <-errc:
		s.o.Ready.Set(TransportName, false)
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	s.closing.Store(true)
	s.o.Ready.Set(TransportName, false)
	sctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("in-flight requests cut off at shutdown", "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}

// routes builds the handler tree. Health and the dashboard's static page are
// open (the page holds no data); the API, metrics and the dashboard's data
// need the token when one is set.
func (s *Server) routes(h agent.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.only(http.MethodGet, s.healthz))
	mux.HandleFunc("/readyz", s.only(http.MethodGet, s.readyz))
	mux.HandleFunc("/metrics", s.only(http.MethodGet, s.auth(s.metrics)))
	mux.HandleFunc("/v1/models", s.only(http.MethodGet, s.auth(s.listModels)))
	mux.HandleFunc("/v1/models/{id}", s.only(http.MethodGet, s.auth(s.getModel)))
	mux.HandleFunc("/v1/chat/completions", s.only(http.MethodPost, s.auth(s.chat(h))))
	mux.HandleFunc("/api/status", s.only(http.MethodGet, s.auth(s.status)))
	for _, rt := range s.ollama(h).Routes() {
		mux.HandleFunc(rt.Path, s.onlyAs(rt.Method, s.authAs(rt.Handler, ollamaRefusal), ollamaRefusal))
	}
	mux.Handle("/assets/", s.onlyH(http.MethodGet, assetHandler()))
	mux.HandleFunc("/", s.root)
	return s.access(mux)
}

// access logs each request at debug level: method, path, status, time;
// never bodies (query text).
func (s *Server) access(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ollama is the Ollama-compatible API answering with h, sharing the
// server's catalog, body limit, in-flight bound and caller names.
func (s *Server) ollama(h agent.Handler) *ollama.API {
	o := ollama.Options{
		Catalog: s.catalog, Local: s.o.LocalModel, Loader: s.o.Loader, Pullable: s.o.Pullable,
		BodyMax: s.bodyMax, Admit: s.admit, Caller: s.caller, Transport: TransportName,
		ExtendWrite: s.extendWrite, Started: s.started,
	}
	return ollama.New(o, h)
}

// refusal writes the server's own refusals (wrong method, missing token)
// in an API's error shape.
type refusal func(w http.ResponseWriter, status int, code, msg string)

func openAIRefusal(w http.ResponseWriter, status int, code, msg string) {
	writeError(w, status, typeInvalidRequest, code, msg, "")
}

func ollamaRefusal(w http.ResponseWriter, status int, _, msg string) {
	ollama.WriteError(w, status, msg)
}

func (s *Server) only(method string, h http.HandlerFunc) http.HandlerFunc {
	return s.onlyAs(method, h, openAIRefusal)
}

// onlyAs serves method (GET also serves HEAD) and refuses others; method
// "" serves any.
func (s *Server) onlyAs(method string, h http.HandlerFunc, refuse refusal) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if method != "" && r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			refuse(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s %s is not supported; use %s", r.Method, r.URL.Path, method))
			return
		}
		h(w, r)
	}
}

func (s *Server) onlyH(method string, h http.Handler) http.Handler {
	return s.only(method, h.ServeHTTP)
}

// auth checks the bearer token when one is set.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc { return s.authAs(h, openAIRefusal) }

func (s *Server) authAs(h http.HandlerFunc, refuse refusal) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.hasToken && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hedge"`)
			refuse(w, http.StatusUnauthorized, "invalid_api_key",
				"missing or wrong bearer token: send the header Authorization: Bearer <token> (HEDGE_HTTP_TOKEN)")
			return
		}
		h(w, r)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeError(w, http.StatusNotFound, typeInvalidRequest, "not_found", fmt.Sprintf("no such endpoint: %s", r.URL.Path), "")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "the dashboard is read with GET", "")
		return
	}
	serveIndex(w, r)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.o.Telemetry == nil {
		writeError(w, http.StatusNotFound, typeInvalidRequest, "not_found", "metrics are not enabled", "")
		return
	}
	s.o.Telemetry.Handler().ServeHTTP(w, r)
}

// admit takes one of the MaxInFlight slots for a chat request, to be given
// back with release; when all are taken it returns a 429 busy error.
func (s *Server) admit() (release func(), busy *chat.Error) {
	if s.slots == nil {
		return func() {}, nil
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		return nil, &chat.Error{Status: http.StatusTooManyRequests, Code: string(agent.CodeBusy),
			Msg: fmt.Sprintf("hedge is answering %d requests already; retry later", cap(s.slots))}
	}
}

// caller names who asked, for per-caller budgets and logs: the peer's
// address, or "unix" on the socket.
func (s *Server) caller(r *http.Request) string {
	if s.unixPath != "" {
		return "unix"
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var _ agent.Transport = (*Server)(nil)
