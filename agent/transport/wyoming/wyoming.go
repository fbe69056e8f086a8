// Package wyoming serves hedge as a Wyoming intent service, the protocol
// Home Assistant speaks to its voice services (github.com/rhasspy/wyoming).
//
// Protocol, per TCP connection (docs/wyoming.md):
//
//   - Every event is a JSON header line ({"type":…, "data_length":N,
//     "payload_length":M, "version":…}) followed by N bytes of JSON data
//     and M bytes of payload. Older peers put "data" inline in the header;
//     both are read, the data section merged over the inline data.
//   - describe → info: hedge as an intent program with its languages.
//   - transcript (or recognize) with text → the agent answers the text, and
//     the reply is intent (the SLM accepted one of hedge's intents),
//     handled (another tier answered) or not-recognized (nothing could).
//   - ping → pong. Other event types are ignored, as Wyoming peers do.
//   - An event that cannot be used (not JSON, over a limit, a transcript
//     without text) gets an error event with text and code; the connection
//     keeps serving. Events on one connection are answered in order.
package wyoming

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// TransportName is the transport's name in metrics and agent.Query.
const TransportName = "wyoming"

// The defaults of Options' zero values.
const (
	DefaultMaxConnections  = 64
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = 10 * time.Second
	DefaultMaxPayloadBytes = 1 << 20
)

// Options configures a Server. Zero values take the defaults above.
type Options struct {
	// Listen is host:port, such as 127.0.0.1:10700.
	Listen string
	// Languages are those of hedge's intents, advertised in info.
	Languages []string
	// Version is hedge's version, advertised in info.
	Version string
	// MaxTextBytes bounds a transcript's text (limits.max_query_bytes);
	// the header and data sections are bounded from it. 0 means 16 KiB.
	MaxTextBytes int
	// MaxPayloadBytes bounds a payload, which is read and discarded.
	MaxPayloadBytes int64
	// MaxConnections bounds the open connections; one more gets an error
	// event with code busy and is closed.
	MaxConnections int
	// IdleTimeout closes a connection that sends no event for this long.
	IdleTimeout time.Duration
	// WriteTimeout bounds each event written.
	WriteTimeout time.Duration
	Log          *slog.Logger
}

// Server is a listening Wyoming intent service. It implements
// agent.Transport.
type Server struct {
	o      Options
	lim    limits
	log    *slog.Logger
	ln     net.Listener
	served atomic.Bool
	seq    atomic.Uint64

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// Listen opens the TCP listener, ready for Serve.
func Listen(o Options) (*Server, error) {
	o = withDefaults(o)
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("wyoming: listen on %s: %w", o.Listen, err)
	}
	// JSON escaping may grow the text sixfold; the rest of a transcript
	// (language, Home Assistant's context ids) is small. The header line
	// may hold the data inline.
	data := int64(6*o.MaxTextBytes + 4<<10)
	return &Server{
		o:     o,
		lim:   limits{header: int(data) + 1<<10, data: data, payload: o.MaxPayloadBytes},
		log:   o.Log,
		ln:    ln,
		conns: make(map[*conn]struct{}),
	}, nil
}

func withDefaults(o Options) Options {
	if o.MaxTextBytes <= 0 {
		o.MaxTextBytes = 16 << 10
	}
	if o.MaxPayloadBytes <= 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if len(o.Languages) == 0 {
		o.Languages = []string{"en"}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Name returns "wyoming".
func (s *Server) Name() string { return TransportName }

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening. It is the cleanup for a Server whose Serve never
// ran; while Serve runs, it ends Serve as if its ctx had ended.
func (s *Server) Close() error {
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Serve accepts connections and answers their events with h until ctx
// ends. Then it stops accepting and reading, lets the event each
// connection is answering finish and writes its reply (the agent's
// shutdown grace bounds slow ones), closes every connection and returns
// nil. Request contexts are not cancelled by ctx: the agent owns their
// shutdown. Serve may be called once.
func (s *Server) Serve(ctx context.Context, h agent.Handler) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("wyoming: Serve called twice")
	}
	reqCtx := context.WithoutCancel(ctx)
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	var failed error
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				failed = fmt.Errorf("wyoming: accept on %s: %w", s.o.Listen, err)
			}
			break
		}
		s.admit(reqCtx, h, nc)
	}
	s.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return failed
}

// admit starts serving nc, or refuses it when the connections are at
// their limit.
func (s *Server) admit(ctx context.Context, h agent.Handler, nc net.Conn) {
	c := &conn{s: s, nc: nc, caller: peerHost(nc)}
	s.mu.Lock()
	full := len(s.conns) >= s.o.MaxConnections
	if !full {
		s.conns[c] = struct{}{}
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if full {
		go c.refuse()
		return
	}
	go c.serve(ctx, h)
}

// peerHost is the caller of a connection: the peer's address without the
// port, the same for every connection of one asker (Home Assistant opens
// one per sentence).
func peerHost(nc net.Conn) string {
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}

// conn is one client connection; its events are answered one at a time.
type conn struct {
	s       *Server
	nc      net.Conn
	caller  string
	closing atomic.Bool
}

// stopReading makes the connection's reader return at once, or after the
// event it is answering.
func (c *conn) stopReading() {
	c.closing.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

func (c *conn) refuse() {
	defer c.s.wg.Done()
	defer c.nc.Close()
	c.s.log.Debug("connection refused: limit reached", "max_connections", c.s.o.MaxConnections)
	c.write(errorEvent(string(agent.CodeBusy), fmt.Sprintf("hedge has %d Wyoming connections open, its limit; retry later", c.s.o.MaxConnections)))
}

func (c *conn) serve(ctx context.Context, h agent.Handler) {
	defer func() {
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
	}()
	r := bufio.NewReaderSize(c.nc, 16<<10)
	for {
		// Deadline first, then the closing check: stopReading sets closing
		// before its deadline, so one of them stops this read.
		c.nc.SetReadDeadline(time.Now().Add(c.s.o.IdleTimeout))
		if c.closing.Load() {
			return
		}
		ev, err := readEvent(r, c.s.lim)
		var bad *badEvent
		switch {
		case errors.As(err, &bad):
			c.s.log.Debug("bad event", "caller", c.caller, "code", bad.code, "err", bad.msg)
			err = c.write(errorEvent(bad.code, bad.msg))
		case err != nil:
			if !errors.Is(err, io.EOF) && !c.closing.Load() && !errors.Is(err, os.ErrDeadlineExceeded) {
				c.s.log.Debug("connection read ended", "caller", c.caller, "err", err)
			}
			return
		default:
			err = c.answer(ctx, h, ev)
		}
		if err != nil {
			return
		}
	}
}

// answer replies to one event; it returns a write error only.
func (c *conn) answer(ctx context.Context, h agent.Handler, ev event) error {
	switch ev.Type {
	case "describe":
		return c.write(infoEvent(c.s.o.Languages, c.s.o.Version))
	case "ping":
		return c.write(outEvent{"pong", textData{Text: stringField(ev.Data, "text")}})
	case "transcript", "recognize":
		text, bad := transcriptText(ev)
		if bad != nil {
			return c.write(errorEvent(bad.code, bad.msg))
		}
		return c.write(outcome(c.ask(ctx, h, text)))
	}
	c.s.log.Debug("event ignored", "caller", c.caller, "type", ev.Type)
	return nil
}

// ask hands text to h as a query of this connection's caller, turning a
// panic into an internal error reply: one bad request must not take down
// the other connections.
func (c *conn) ask(ctx context.Context, h agent.Handler, text string) (a agent.Answer) {
	q := agent.Query{
		ID:        "wyoming-" + strconv.FormatUint(c.s.seq.Add(1), 10),
		Text:      text,
		Prefer:    agent.PreferAuto,
		Transport: TransportName,
		Caller:    c.caller,
	}
	defer func() {
		if r := recover(); r != nil {
			c.s.log.Error("request handler panicked", "id", q.ID, "panic", r, "stack", string(debug.Stack()))
			a = agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeInternal, "hedge failed on this request"))
		}
	}()
	return h.Handle(ctx, q, nil)
}

// transcriptText is the text of a transcript or recognize event.
func transcriptText(ev event) (string, *badEvent) {
	raw, ok := ev.Data["text"]
	var text string
	if !ok || json.Unmarshal(raw, &text) != nil {
		return "", &badEvent{string(agent.CodeBadRequest), fmt.Sprintf("%s event needs data.text, a string", ev.Type)}
	}
	if text == "" {
		return "", &badEvent{string(agent.CodeBadRequest), fmt.Sprintf("%s event has an empty text", ev.Type)}
	}
	return text, nil
}

// stringField is data[key] when it is a JSON string, else "".
func stringField(data map[string]json.RawMessage, key string) string {
	var s string
	json.Unmarshal(data[key], &s)
	return s
}

func (c *conn) write(ev outEvent) error {
	b, err := encodeEvent(ev.typ, ev.data)
	if err != nil {
		// Only an answer with invalid floats could get here; the peer
		// still gets a reply.
		c.s.log.Warn("event not encodable", "err", err)
		b, _ = encodeEvent("error", errorData{Text: "reply could not be encoded", Code: string(agent.CodeInternal)})
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.o.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.s.log.Debug("write failed; closing connection", "caller", c.caller, "err", err)
		return err
	}
	return nil
}

var _ agent.Transport = (*Server)(nil)
