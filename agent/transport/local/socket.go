// Package local serves hedge's Unix socket protocol: newline-delimited JSON
// requests in the shape of agent.Query (or plain lines of text), one JSON
// reply line per request, streamed chunks before the reply when asked.
//
// Protocol, per connection:
//
//   - Each line the client sends is one request: a JSON object
//     ({"id":"1","text":"hello","stream":true}) or a plain line of text
//     taken as {"text": line}. A last line without a newline before the
//     client half-closes is a request too.
//   - Requests on one connection are answered one at a time, in the order
//     they were sent: a client may pipeline (send several lines without
//     waiting), and replies come back in that order. Plain-text lines have
//     no id, so order is what ties a reply to its request; clients that want
//     parallel answers open several connections.
//   - Every request gets exactly one final reply line (an agent.Answer),
//     errors included: {"id":"1","error":{"code":"too_large","message":…}}.
//     With "stream": true, agent.Chunk lines ({"id","seq","delta"}, seq from
//     1) come first, as the answer is produced.
//   - A line longer than the request limit gets a too_large reply, the rest
//     of the line is discarded, and the connection stays usable.
//   - A client that closes the connection while its request runs cancels
//     it (on Linux): the generation stops at its next token. Half-closing
//     (shutting down only the writing side) is not hanging up: the replies
//     still come.
package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// The defaults of Options' zero values.
const (
	DefaultMaxConnections = 256
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultWriteTimeout   = 10 * time.Second
)

// maxSocketPath is the longest path a sockaddr_un holds (108 bytes with the
// terminating NUL on Linux).
const maxSocketPath = 107

// Options configures a socket Server. Zero values take the defaults above.
type Options struct {
	// MaxRequestBytes bounds one request line (without its newline); use
	// agent.MaxRequestBytes(limits.max_query_bytes). 0 derives it from
	// Limits.MaxQueryBytes (16 KiB of text when that is 0 too).
	MaxRequestBytes int
	// Limits are the agent's query limits; only used to derive
	// MaxRequestBytes when it is 0 (the agent validates queries itself).
	Limits agent.Limits
	// MaxConnections bounds the open connections; one more is accepted,
	// gets a busy error reply and is closed.
	MaxConnections int
	// IdleTimeout closes a connection that sends no complete line for this
	// long (it also bounds how long one line may take to arrive).
	IdleTimeout time.Duration
	// WriteTimeout bounds each reply or chunk write, so a client that never
	// reads cannot hold its connection's goroutine (or shutdown) forever.
	WriteTimeout time.Duration
	Log          *slog.Logger
}

// Server is a listening hedge socket. It implements agent.Transport.
type Server struct {
	o     Options
	log   *slog.Logger
	path  string
	ln    *net.UnixListener
	ident os.FileInfo // the socket file we created, so we never remove another's

	served    atomic.Bool
	closeOnce sync.Once

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// Listen opens the socket at path, ready for Serve. It creates the parent
// directory (0750) when missing. A file already at path is dialled first:
// if a hedge answers, Listen fails; if the dial is refused the file is a
// stale socket and is removed; a file that is not a socket is never removed.
// The socket file is created 0660 with no window of wider permissions: the
// socket's inode mode is set with fchmod before bind, so bind creates the
// file with 0660 minus the umask, and a chmod afterwards only adds back bits
// the umask removed (up to exactly 0660).
func Listen(path string, o Options) (*Server, error) {
	if o.MaxRequestBytes <= 0 {
		maxText := o.Limits.MaxQueryBytes
		if maxText <= 0 {
			maxText = 16 << 10
		}
		o.MaxRequestBytes = agent.MaxRequestBytes(maxText)
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
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}

	ln, ident, err := listenUnix(path, 0o660)
	if err != nil {
		return nil, err
	}
	return &Server{o: o, log: o.Log, path: path, ln: ln, ident: ident, conns: make(map[*conn]struct{})}, nil
}

// ErrInUse is wrapped by Listen and ListenUnix when a live process already
// accepts connections on the socket path.
var ErrInUse = errors.New("in use by a running hedge")

// ListenUnix opens a listening Unix socket at path the way Listen does:
// parent directory created 0750 when missing, a stale socket replaced, a
// live one (ErrInUse) or any other kind of file left alone, and the file
// created with exactly mode, with no moment of a wider one. It is
// the one place hedge's socket listeners (this transport, the HTTP API's
// unix: address) prepare a socket path. Closing the listener does not
// remove the file; the caller removes it.
func ListenUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	ln, _, err := listenUnix(path, mode)
	return ln, err
}

// listenUnix is ListenUnix, also returning the file it created so that
// its owner never removes another's.
func listenUnix(path string, mode os.FileMode) (*net.UnixListener, os.FileInfo, error) {
	if path == "" {
		return nil, nil, errors.New("socket: path is empty")
	}
	if len(path) > maxSocketPath {
		return nil, nil, fmt.Errorf("socket %s: path is %d bytes, a Unix socket path may have at most %d", path, len(path), maxSocketPath)
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, nil, err
	}
	if err := clearStale(path); err != nil {
		return nil, nil, err
	}
	ln, err := bindUnix(path, mode)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("socket %s is %w (it appeared while starting)", path, ErrInUse)
		}
		return nil, nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ident, err := os.Lstat(path)
	if err == nil {
		// Adds back what the umask took, never more than mode.
		err = os.Chmod(path, mode)
	}
	if err != nil {
		ln.Close()
		os.Remove(path)
		return nil, nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return ln, ident, nil
}

// ensureDir creates dir with mode 0750 when it does not exist. An existing
// directory is left as it is: its owner chose its mode.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("socket directory %s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	// MkdirAll's mode is filtered by the umask; a umask of 077 would lock
	// the group out of a directory it needs to traverse.
	if err := os.Chmod(dir, 0o750); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	return nil
}

// clearStale makes path free for bind: nothing there, or a stale socket
// that nobody accepts on (removed). A live socket, or any other kind of
// file, is an error and is left alone.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("socket %s: a %s is already there; hedge removes only stale sockets, so move it away or choose another socket path", path, describeMode(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("socket %s is %w", path, ErrInUse)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listens: the file outlived its server (a crash, a kill -9).
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("socket %s: remove stale socket: %w", path, err)
		}
		return nil
	case errors.Is(err, syscall.ENOENT):
		return nil // removed while we looked
	}
	// Permission denied, a full backlog (EAGAIN) or a timeout: the dial did
	// not prove the socket dead, so it stays.
	return fmt.Errorf("socket %s exists and could not be checked, so it is left alone: %w", path, err)
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m.IsRegular():
		return "regular file"
	}
	return "file of mode " + m.String()
}

// Name returns "socket", the transport's name in metrics and q.Transport.
func (s *Server) Name() string { return "socket" }

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops listening and removes the socket file. It is the cleanup for
// a Server whose Serve never ran (wiring failed after Listen); while Serve
// runs, Close ends it as if its ctx had ended. Close is idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.ln.Close()
		s.removeFile()
	})
	return err
}

// removeFile removes the socket file if it is still the one Listen created.
func (s *Server) removeFile() {
	fi, err := os.Lstat(s.path)
	if err != nil || !os.SameFile(fi, s.ident) {
		return
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("socket file not removed", "path", s.path, "err", err)
	}
}

// Serve accepts connections and hands their requests to h until ctx ends.
// Then it stops accepting (and removes the socket file, so clients see at
// once that hedge is gone), stops reading new lines, lets the requests in
// flight finish and writes their replies (the agent's shutdown grace turns
// slow ones into shutting_down replies), answers complete lines it had
// already read but not started with shutting_down, closes every connection
// and returns nil. Request contexts are not cancelled by ctx: the agent owns
// their shutdown. Serve may be called once.
func (s *Server) Serve(ctx context.Context, h agent.Handler) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("socket: Serve called twice")
	}
	reqCtx := context.WithoutCancel(ctx)
	// Shutdown wakes Accept with a deadline rather than closing the
	// listener: connections already in its backlog are accepted below and
	// answered, not reset.
	stop := context.AfterFunc(ctx, func() { s.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var failed error
	backoff := 5 * time.Millisecond
	var lastWarn time.Time
	for {
		nc, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if transientAccept(err) {
				// Out of file descriptors or memory: wait for connections
				// to close instead of spinning; warn at most every 10 s.
				if time.Since(lastWarn) > 10*time.Second {
					s.log.Warn("accept failed, retrying", "err", err)
					lastWarn = time.Now()
				}
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			failed = fmt.Errorf("accept on %s: %w", s.path, err)
			break
		}
		backoff = 5 * time.Millisecond
		c := &conn{s: s, nc: nc}
		s.mu.Lock()
		full := len(s.conns) >= s.o.MaxConnections
		if !full {
			s.conns[c] = struct{}{}
		}
		s.wg.Add(1)
		s.mu.Unlock()
		if full {
			go s.refuse(c)
			continue
		}
		go s.serveConn(reqCtx, h, c)
	}
	// Stop reading first, then take the backlog, then remove the file: a
	// line read after shutdown began is always answered shutting_down.
	s.mu.Lock()
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	if failed == nil {
		s.acceptBacklog(reqCtx, h)
	}
	s.Close()
	s.wg.Wait()
	return failed
}

// acceptBacklog accepts, during shutdown, the connections clients opened
// before it began, so that their requests get shutting_down replies instead
// of a reset connection.
func (s *Server) acceptBacklog(ctx context.Context, h agent.Handler) {
	s.ln.SetDeadline(time.Now().Add(shutdownReadWindow))
	for {
		nc, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		c := &conn{s: s, nc: nc}
		c.closing.Store(true)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(ctx, h, c)
	}
}

// transientAccept reports whether an accept error is a shortage that passes
// when connections close, rather than a broken listener.
func transientAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// refuse answers a connection over the limit with one busy reply.
func (s *Server) refuse(c *conn) {
	defer s.wg.Done()
	defer c.nc.Close()
	s.log.Debug("connection refused: limit reached", "max_connections", s.o.MaxConnections)
	c.init()
	c.write(agent.ErrorAnswer("", agent.Errorf(agent.CodeBusy, "hedge has %d connections open, its limit; retry later", s.o.MaxConnections)))
}

// conn is one client connection.
type conn struct {
	s       *Server
	nc      *net.UnixConn
	caller  string
	closing atomic.Bool
	hungUp  atomic.Bool // the client closed its end while a request ran

	wmu    sync.Mutex // serializes writes: chunks may come from a generator's goroutine
	wbuf   bytes.Buffer
	enc    *json.Encoder
	broken bool // a write failed; nothing more is written
}

func (c *conn) init() {
	c.enc = json.NewEncoder(&c.wbuf)
	// Answers are text for people and programs, not HTML: keep <, > and &.
	c.enc.SetEscapeHTML(false)
}

// stopReading makes the connection's reader return at once (or after the
// request it is handling) so that Serve can drain it.
func (c *conn) stopReading() {
	c.closing.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// On shutdown, lines a client sent before it began are answered with
// shutting_down: those that arrive within shutdownReadWindow, at most
// maxShutdownReplies of them per connection.
const (
	shutdownReadWindow = 100 * time.Millisecond
	maxShutdownReplies = 1024
)

func (s *Server) serveConn(ctx context.Context, h agent.Handler, c *conn) {
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	c.init()
	c.caller = peerCaller(c.nc)
	s.log.Debug("connection opened", "caller", c.caller)
	r := bufio.NewReaderSize(c.nc, 16<<10)
	// The line buffer keeps one byte over the limit for a "\r" before "\n";
	// DecodeRequest applies the exact limit.
	lr := lineReader{r: r, max: s.o.MaxRequestBytes + 1}
	for {
		// Deadline first, then the closing check: stopReading sets closing
		// before its deadline, so either we see closing here or its
		// deadline (set after ours) interrupts the read.
		c.nc.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		if c.closing.Load() {
			break
		}
		line, complete, tooLarge, err := lr.next()
		if complete {
			c.request(ctx, h, line, tooLarge)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !c.closing.Load() {
				s.log.Debug("connection read ended", "caller", c.caller, "err", err)
			}
			break
		}
		if c.isBroken() || c.hungUp.Load() {
			break
		}
	}
	if c.closing.Load() {
		// Lines the client pipelined and we already read are requests we
		// took: each gets its reply, shutting_down, rather than silence.
		// So are lines the client had sent before shutdown that still sit
		// in the kernel's buffer: read what arrives within a short window.
		c.nc.SetReadDeadline(time.Now().Add(shutdownReadWindow))
		for n := 0; n < maxShutdownReplies; n++ {
			line, complete, _, err := lr.next()
			if complete {
				q, _ := agent.DecodeRequest(line, 0) // for the id only
				c.write(agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeShuttingDown, "hedge is shutting down; retry later")))
			}
			if err != nil || c.isBroken() {
				break
			}
		}
	}
	s.log.Debug("connection closed", "caller", c.caller)
}

// request decodes one line, hands it to h and writes the reply (after the
// chunks when it asks to stream).
func (c *conn) request(ctx context.Context, h agent.Handler, line []byte, tooLarge bool) {
	max := c.s.o.MaxRequestBytes
	if tooLarge {
		// Only the line's start was kept; it may still hold the id.
		q, _ := agent.DecodeRequest(line, 0)
		c.write(agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeTooLarge, "request is longer than the limit of %d bytes; the line was discarded", max)))
		return
	}
	q, e := agent.DecodeRequest(line, max)
	if e != nil {
		c.s.log.Debug("bad request", "caller", c.caller, "code", e.Code, "message", e.Message)
		c.write(agent.ErrorAnswer(q.ID, e))
		return
	}
	q.Transport = c.s.Name()
	q.Caller = c.caller

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var emit func(string)
	done := false // under wmu: no chunk may follow the reply
	if q.Stream {
		seq := 0
		emit = func(tok string) {
			if tok == "" {
				return
			}
			c.wmu.Lock()
			defer c.wmu.Unlock()
			if done || c.broken {
				return
			}
			seq++
			if c.writeLocked(agent.Chunk{ID: q.ID, Seq: seq, Delta: tok}) != nil {
				// The client is gone or stuck: stop producing for it.
				cancel()
			}
		}
	}
	// A client that hangs up is waiting for nothing: its generation stops
	// at the next token and frees the model for others.
	stopWatch := watchHangup(c.nc, func() {
		c.hungUp.Store(true)
		c.s.log.Debug("client hung up; request cancelled", "caller", c.caller, "id", q.ID)
		cancel()
	})
	ans := c.handle(ctx, h, q, emit)
	stopWatch()
	c.wmu.Lock()
	done = true
	if !c.hungUp.Load() { // else nobody reads the reply
		c.writeLocked(ans)
	}
	c.wmu.Unlock()
}

// handle runs h, turning a panic into an internal error reply: one bad
// request must not take down every other client's connection.
func (c *conn) handle(ctx context.Context, h agent.Handler, q agent.Query, emit func(string)) (a agent.Answer) {
	defer func() {
		if r := recover(); r != nil {
			c.s.log.Error("request handler panicked", "id", q.ID, "panic", r, "stack", string(debug.Stack()))
			a = agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeInternal, "hedge failed on this request"))
		}
	}()
	return h.Handle(ctx, q, emit)
}

func (c *conn) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(v)
}

var errBroken = errors.New("connection is broken")

func (c *conn) writeLocked(v any) error {
	if c.broken {
		return errBroken
	}
	c.wbuf.Reset()
	if err := c.enc.Encode(v); err != nil {
		// Only an Answer with a NaN/Inf confidence can get here; the
		// client still gets a reply.
		c.s.log.Warn("reply not encodable", "err", err)
		c.wbuf.Reset()
		c.enc.Encode(agent.ErrorAnswer("", agent.Errorf(agent.CodeInternal, "reply could not be encoded")))
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.o.WriteTimeout))
	if _, err := c.nc.Write(c.wbuf.Bytes()); err != nil {
		c.broken = true
		c.s.log.Debug("write failed; closing connection", "caller", c.caller, "err", err)
		// Unblock the reader too: nothing more can be answered here.
		c.nc.SetReadDeadline(time.Unix(1, 0))
		return err
	}
	return nil
}

func (c *conn) isBroken() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.broken
}

// lineReader reads newline-terminated lines of bounded length.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// next reads one line without its "\n". complete reports whether a whole
// line was read: one ending in "\n", or a last unterminated line at EOF.
// A line longer than max is consumed to its end and returned with tooLarge
// and only its first max bytes. err is the read error that ended the line
// or the stream (io.EOF at the end).
func (l *lineReader) next() (line []byte, complete, tooLarge bool, err error) {
	l.buf = l.buf[:0]
	for {
		frag, err := l.r.ReadSlice('\n')
		content := frag
		if err == nil {
			content = frag[:len(frag)-1]
		}
		if !tooLarge {
			if room := l.max - len(l.buf); len(content) > room {
				l.buf = append(l.buf, content[:room]...)
				tooLarge = true
			} else {
				l.buf = append(l.buf, content...)
			}
		}
		switch {
		case err == nil:
			return l.buf, true, tooLarge, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return l.buf, len(l.buf) > 0 || tooLarge, tooLarge, io.EOF
		}
		return l.buf, false, tooLarge, err
	}
}

var _ agent.Transport = (*Server)(nil)
