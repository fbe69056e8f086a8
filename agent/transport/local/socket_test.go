package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// ioWait bounds every blocking read in these tests so that a bug shows up
// as a failure rather than a hung test; it is not a speed assertion.
const ioWait = 20 * time.Second

// shortDir returns a fresh directory under /tmp: t.TempDir() paths can be
// longer than the 107 bytes a socket path may have.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "hs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// echoLLM is a fake local LLM: it answers "echo: TEXT", emitting it word
// by word.
type echoLLM struct{}

func (echoLLM) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	words := strings.Fields(q.Text)
	for i, w := range words {
		if emit != nil {
			if i > 0 {
				w = " " + w
			}
			emit(w)
		}
	}
	return agent.Answer{Answer: "echo: " + strings.Join(words, " "), Model: "echo"}, nil
}

func newAgent() *agent.Agent {
	return agent.New(agent.Options{LLM: echoLLM{}, Limits: agent.Limits{MaxQueryBytes: 1024, MaxTokens: 100}})
}

// recorder wraps a handler and remembers the transport and caller it saw.
type recorder struct {
	agent.Handler
	mu        sync.Mutex
	transport string
	caller    string
}

func (r *recorder) Handle(ctx context.Context, q agent.Query, emit func(string)) agent.Answer {
	r.mu.Lock()
	r.transport, r.caller = q.Transport, q.Caller
	r.mu.Unlock()
	return r.Handler.Handle(ctx, q, emit)
}

// serve starts a Server on a fresh socket and Serve in the background; the
// returned stop cancels it and returns Serve's result.
func serve(t testing.TB, h agent.Handler, o Options) (path string, stop func() error) {
	t.Helper()
	path = filepath.Join(shortDir(t), "hedge.sock")
	srv, err := Listen(path, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(ioWait):
				serr = errors.New("Serve did not return")
			}
		})
		return serr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, stop
}

// client is a raw protocol client for tests.
type client struct {
	t  testing.TB
	c  *net.UnixConn
	rd *bufio.Reader
}

func dial(t testing.TB, path string) *client {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, rd: bufio.NewReader(c)}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// line reads one raw line; err is io.EOF etc. when the server closed.
func (c *client) line() (string, error) {
	c.c.SetReadDeadline(time.Now().Add(ioWait))
	s, err := c.rd.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimSuffix(s, "\n"), nil
}

// reply reads lines until the final reply, returning it and the chunks.
func (c *client) reply() (agent.Answer, []agent.Chunk) {
	c.t.Helper()
	var chunks []agent.Chunk
	for {
		s, err := c.line()
		if err != nil {
			c.t.Fatalf("read reply: %v (got %q)", err, s)
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &probe); err != nil {
			c.t.Fatalf("reply %q is not a JSON object: %v", s, err)
		}
		if _, ok := probe["delta"]; ok {
			var ch agent.Chunk
			if err := json.Unmarshal([]byte(s), &ch); err != nil {
				c.t.Fatal(err)
			}
			chunks = append(chunks, ch)
			continue
		}
		var a agent.Answer
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			c.t.Fatalf("reply %q: %v", s, err)
		}
		return a, chunks
	}
}

func (c *client) ask(line string) agent.Answer {
	c.t.Helper()
	c.send(line)
	a, chunks := c.reply()
	if len(chunks) > 0 {
		c.t.Fatalf("unexpected chunks %v", chunks)
	}
	return a
}

func TestRoundTrip(t *testing.T) {
	rec := &recorder{Handler: newAgent()}
	path, _ := serve(t, rec, Options{})
	c := dial(t, path)

	a := c.ask(`{"id":"q1","text":"hello there"}`)
	if a.Error != nil || a.ID != "q1" || a.Answer != "echo: hello there" || a.Tier != agent.TierLLM || a.Model != "echo" {
		t.Fatalf("JSON request: got %+v", a)
	}
	a = c.ask("what time is it")
	if a.Error != nil || a.ID != "" || a.Answer != "echo: what time is it" {
		t.Fatalf("plain text request: got %+v", a)
	}
	a = c.ask(`{"id":"q3","text":"<b> & </b>"}`)
	if a.Answer != "echo: <b> & </b>" {
		t.Fatalf("HTML characters: got %+v", a)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.transport != "socket" {
		t.Errorf("q.Transport = %q, want socket", rec.transport)
	}
	if want := fmt.Sprintf("uid:%d", os.Getuid()); rec.caller != want {
		t.Errorf("q.Caller = %q, want %q", rec.caller, want)
	}
}

func TestBadInput(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{MaxRequestBytes: 200})
	c := dial(t, path)
	tests := []struct {
		name string
		line string
		code agent.ErrorCode
		id   string
		msg  string
	}{
		{"oversized line", `{"id":"big","text":"` + strings.Repeat("x", 100000) + `"}`, agent.CodeTooLarge, "big", "limit of 200 bytes"},
		{"oversized plain line", strings.Repeat("y", 5000), agent.CodeTooLarge, "", "limit"},
		{"oversized by one", strings.Repeat("z", 201), agent.CodeTooLarge, "", "limit"},
		{"truncated JSON", `{"id":"t","text":"hel`, agent.CodeBadRequest, "t", "truncated JSON"},
		{"syntax error", `{"id":"s","text":"a",,}`, agent.CodeBadRequest, "s", "syntax error"},
		{"non-UTF-8 plain", "caf\xe9 au lait", agent.CodeBadRequest, "", "UTF-8"},
		{"non-UTF-8 in JSON", "{\"id\":\"u\",\"text\":\"\xff\xfe\"}", agent.CodeBadRequest, "u", "UTF-8"},
		{"text is a number", `{"id":"n","text":5}`, agent.CodeBadRequest, "n", `field "text" must be a string`},
		{"max_tokens is a string", `{"id":"m","text":"hi","max_tokens":"x"}`, agent.CodeBadRequest, "m", `field "max_tokens" must be an integer`},
		{"max_tokens negative", `{"id":"neg","text":"hi","max_tokens":-1}`, agent.CodeBadRequest, "neg", "negative"},
		{"max_tokens above limit", `{"id":"mt","text":"hi","max_tokens":101}`, agent.CodeBadRequest, "mt", "above the limit"},
		{"unknown field", `{"id":"k","text":"hi","temperature":1}`, agent.CodeBadRequest, "k", `unknown field "temperature"`},
		{"empty text", `{"id":"e","text":""}`, agent.CodeBadRequest, "e", "text is empty"},
		{"blank text", `{"id":"b","text":"  \t "}`, agent.CodeBadRequest, "b", "text is empty"},
		{"empty line", "", agent.CodeBadRequest, "", "text is empty"},
		{"bad prefer", `{"id":"p","text":"hi","prefer":"fastest"}`, agent.CodeBadRequest, "p", `prefer "fastest"`},
		{"array instead of object", `[{"id":"a","text":"hi"}]`, agent.CodeBadRequest, "", "expected an object"},
		{"data after object", `{"id":"d","text":"hi"} {"text":"again"}`, agent.CodeBadRequest, "d", "data after"},
		{"id is a number", `{"id":1,"text":"hi"}`, agent.CodeBadRequest, "", `field "id" must be a string`},
		{"NUL bytes in a plain line", "hello\x00\x00", agent.CodeBadRequest, "", "control character U+0000"},
		{"control characters in JSON string", "{\"id\":\"c\",\"text\":\"a\x01b\"}", agent.CodeBadRequest, "c", "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			a := c.ask(tc.line)
			switch {
			case a.Error == nil:
				t.Fatalf("got answer %+v, want error %s", a, tc.code)
			case a.Error.Code != tc.code:
				t.Fatalf("code %s (%s), want %s", a.Error.Code, a.Error.Message, tc.code)
			case !strings.Contains(a.Error.Message, tc.msg):
				t.Fatalf("message %q does not contain %q", a.Error.Message, tc.msg)
			}
			if a.ID != tc.id {
				t.Errorf("id %q, want %q", a.ID, tc.id)
			}
			// The same connection still answers.
			if a := c.ask(`{"id":"ok","text":"still here"}`); a.Error != nil || a.ID != "ok" || a.Answer != "echo: still here" {
				t.Fatalf("after %s the connection answered %+v", tc.name, a)
			}
		})
	}
}

func TestPipelinedRepliesInOrder(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{MaxRequestBytes: 100})
	c := dial(t, path)
	var b strings.Builder
	for i := range 20 {
		if i == 7 {
			b.WriteString(strings.Repeat("x", 1000) + "\n") // too large, mid-stream
			continue
		}
		fmt.Fprintf(&b, `{"id":"%d","text":"n %d"}`+"\n", i, i)
	}
	b.WriteString("last line without newline")
	if _, err := c.c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	c.c.CloseWrite() // the unterminated last line is a request too
	for i := range 20 {
		a, _ := c.reply()
		if i == 7 {
			if a.Error == nil || a.Error.Code != agent.CodeTooLarge {
				t.Fatalf("reply %d: %+v, want too_large", i, a)
			}
			continue
		}
		if a.ID != fmt.Sprint(i) || a.Answer != fmt.Sprintf("echo: n %d", i) {
			t.Fatalf("reply %d: %+v", i, a)
		}
	}
	if a, _ := c.reply(); a.Answer != "echo: last line without newline" {
		t.Fatalf("last line: %+v", a)
	}
	if s, err := c.line(); err == nil {
		t.Fatalf("extra line %q after the last reply", s)
	}
}

func TestStreaming(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{})
	c := dial(t, path)
	c.send(`{"id":"s1","text":"one two three four","stream":true}`)
	a, chunks := c.reply()
	if a.Error != nil || a.Answer != "echo: one two three four" {
		t.Fatalf("reply %+v", a)
	}
	want := []string{"one", " two", " three", " four"}
	if len(chunks) != len(want) {
		t.Fatalf("got %d chunks %+v, want %d", len(chunks), chunks, len(want))
	}
	for i, ch := range chunks {
		if ch.ID != "s1" || ch.Seq != i+1 || ch.Delta != want[i] {
			t.Errorf("chunk %d = %+v, want id s1 seq %d delta %q", i, ch, i+1, want[i])
		}
	}
	// Not streamed: no chunks.
	if a := c.ask(`{"id":"s2","text":"one two"}`); a.Answer != "echo: one two" {
		t.Fatalf("reply %+v", a)
	}
	// An error reply to a streaming request comes without chunks.
	c.send(`{"id":"s3","text":"","stream":true}`)
	a, chunks = c.reply()
	if a.Error == nil || len(chunks) != 0 {
		t.Fatalf("got %+v with %d chunks, want an error and none", a, len(chunks))
	}

	// The client library streams the same way.
	var got []agent.Chunk
	a, err := Ask(context.Background(), path, agent.Query{ID: "s4", Text: "a b c"}, func(ch agent.Chunk) { got = append(got, ch) })
	if err != nil || a.Answer != "echo: a b c" {
		t.Fatalf("Ask: %+v, %v", a, err)
	}
	if len(got) != 3 || got[0].Seq != 1 || got[2].Seq != 3 || got[2].Delta != " c" {
		t.Fatalf("Ask chunks %+v", got)
	}
}

func TestConcurrentClients(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{})
	const clients, each = 100, 5
	var wg sync.WaitGroup
	var answered atomic.Int64
	errs := make(chan error, clients*each)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("unix", path)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(ioWait))
			rd := bufio.NewReader(nc)
			for j := range each {
				id := fmt.Sprintf("c%d-%d", i, j)
				line := fmt.Sprintf(`{"id":%q,"text":"question %d of client %d","stream":%v}`, id, j, i, j%2 == 0)
				if j == 3 {
					line = fmt.Sprintf("question %d of client %d", j, i) // plain text
					id = ""
				}
				if _, err := nc.Write([]byte(line + "\n")); err != nil {
					errs <- err
					return
				}
				for {
					s, err := rd.ReadBytes('\n')
					if err != nil {
						errs <- fmt.Errorf("client %d request %d: %w", i, j, err)
						return
					}
					var a struct {
						agent.Answer
						Delta *string `json:"delta"`
					}
					if err := json.Unmarshal(s, &a); err != nil {
						errs <- err
						return
					}
					if a.Delta != nil {
						continue
					}
					want := fmt.Sprintf("echo: question %d of client %d", j, i)
					if a.ID != id || a.Answer.Answer != want || a.Error != nil {
						errs <- fmt.Errorf("client %d request %d: got %+v, want id %q answer %q", i, j, a.Answer, id, want)
						return
					}
					answered.Add(1)
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := answered.Load(); n != clients*each {
		t.Fatalf("%d of %d requests answered", n, clients*each)
	}
}

func TestListenStaleSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "hedge.sock")
	// A socket file nobody listens on, as a killed hedge leaves it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stale socket dial: %v, want connection refused", err)
	}
	srv, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer srv.Close()
	// The new socket is live.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
}

func TestListenLiveOwner(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{})
	_, err := Listen(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "is in use by a running hedge") {
		t.Fatalf("second Listen: %v, want in use", err)
	}
	// The first owner still answers.
	if a, err := Ask(context.Background(), path, agent.Query{Text: "alive"}, nil); err != nil || a.Answer != "echo: alive" {
		t.Fatalf("first owner: %+v, %v", a, err)
	}
}

func TestListenNeverRemovesOtherFiles(t *testing.T) {
	dir := shortDir(t)
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{{regular, "regular file"}, {sub, "directory"}, {link, "symbolic link"}} {
		_, err := Listen(tc.path, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.kind) {
			t.Errorf("Listen(%s): %v, want an error naming a %s", tc.path, err, tc.kind)
		}
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "precious" {
		t.Fatalf("regular file changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("symlink changed: %v", err)
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Fatalf("directory changed: %v", err)
	}
}

func TestListenPathTooLong(t *testing.T) {
	_, err := Listen("/tmp/"+strings.Repeat("a", 110), Options{})
	if err == nil || !strings.Contains(err.Error(), "at most 107") {
		t.Fatalf("Listen with a long path: %v", err)
	}
}

func TestSocketMode(t *testing.T) {
	// umask is process-wide: this test is not parallel, nor is any other in
	// this package.
	for _, mask := range []int{0, 0o022, 0o077} {
		t.Run(fmt.Sprintf("umask %03o", mask), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			base := shortDir(t)
			dir := filepath.Join(base, "run", "hedge")
			path := filepath.Join(dir, "hedge.sock")

			// The file bind creates is never wider than 0660.
			raw, err := bindUnix(filepath.Join(base, "raw.sock"), 0o660)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(filepath.Join(base, "raw.sock"))
			raw.Close()
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&^0o660 != 0 {
				t.Errorf("socket file right after bind has mode %03o, wider than 0660", perm)
			}

			srv, err := Listen(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			fi, err = os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
				t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
			}
			di, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if di.Mode().Perm() != 0o750 {
				t.Errorf("created socket directory mode %03o, want 0750", di.Mode().Perm())
			}
		})
	}
}

func TestCloseRemovesOnlyItsOwnSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "hedge.sock")
	srv, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone replaced the file (an operator, another instance after a
	// mistake): Close must not remove theirs.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "theirs" {
		t.Fatalf("Close removed or changed a file it did not create: %v", err)
	}
}

// gate is a Handler whose queries wait until released; it counts the
// queries it has started.
type gate struct {
	started chan string
	release chan struct{}
}

func (g *gate) Handle(ctx context.Context, q agent.Query, emit func(string)) agent.Answer {
	g.started <- q.ID
	<-g.release
	return agent.Answer{ID: q.ID, Answer: "done " + q.Text}
}

func TestShutdownRepliesToEveryAcceptedLine(t *testing.T) {
	g := &gate{started: make(chan string, 10), release: make(chan struct{})}
	path, stop := serve(t, g, Options{})
	c := dial(t, path)
	// One write: the server reads all three lines at once, starts the first
	// and holds the other two in its buffer.
	if _, err := c.c.Write([]byte("{\"id\":\"1\",\"text\":\"a\"}\n{\"id\":\"2\",\"text\":\"b\"}\nthird\n")); err != nil {
		t.Fatal(err)
	}
	<-g.started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Serve waits for the request in flight; the listener is closed already.
	waitGone(t, path)
	close(g.release)
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	a, _ := c.reply()
	if a.ID != "1" || a.Answer != "done a" {
		t.Fatalf("in-flight request: %+v", a)
	}
	for _, id := range []string{"2", ""} {
		a, _ := c.reply()
		if a.ID != id || a.Error == nil || a.Error.Code != agent.CodeShuttingDown {
			t.Fatalf("buffered request %q: %+v, want shutting_down", id, a)
		}
	}
	if s, err := c.line(); err == nil {
		t.Fatalf("line %q after the drain, want the connection closed", s)
	}
}

// waitGone waits until the socket file is removed.
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket file %s still there", path)
		}
		time.Sleep(time.Millisecond)
	}
}

// slowLLM answers only when released or when its context ends (it respects
// ctx like llama.cpp's generation loop does).
type slowLLM struct {
	started chan string
	release map[string]chan struct{}
}

func (s *slowLLM) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	s.started <- q.ID
	select {
	case <-s.release[q.ID]:
		return agent.Answer{Answer: "slow: " + q.Text, Model: "slow"}, nil
	case <-ctx.Done():
		return agent.Answer{}, ctx.Err()
	}
}

func TestShutdownWith50InFlight(t *testing.T) {
	const n = 50
	llm := &slowLLM{started: make(chan string, n), release: make(map[string]chan struct{})}
	for i := range n {
		llm.release[fmt.Sprint(i)] = make(chan struct{})
	}
	a := agent.New(agent.Options{LLM: llm, ShutdownGrace: 300 * time.Millisecond})
	path := filepath.Join(shortDir(t), "hedge.sock")
	srv, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, srv) }()

	type result struct {
		id  string
		ans agent.Answer
		err error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			id := fmt.Sprint(i)
			ans, err := Ask(context.Background(), path, agent.Query{ID: id, Text: "q" + id}, nil)
			results <- result{id, ans, err}
		}()
	}
	for range n {
		<-llm.started // every query is in the LLM now
	}
	cancel()
	waitGone(t, path) // shutdown has begun: the listener is closed
	// Half the queries finish within the grace; the rest are cut off by it.
	for i := 0; i < n; i += 2 {
		close(llm.release[fmt.Sprint(i)])
	}
	answered, shut := 0, 0
	for range n {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("client %s: %v (a client without a reply)", r.id, r.err)
		case r.ans.ID != r.id:
			t.Errorf("client %s: reply for %q", r.id, r.ans.ID)
		case r.ans.Error != nil && r.ans.Error.Code == agent.CodeShuttingDown:
			shut++
		case r.ans.Error == nil && r.ans.Answer == "slow: q"+r.id:
			answered++
		default:
			t.Errorf("client %s: unexpected reply %+v", r.id, r.ans)
		}
	}
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("%d answered, %d shutting_down", answered, shut)
	if answered+shut != n || answered == 0 || shut == 0 {
		t.Fatalf("%d answered + %d shutting_down of %d; want both kinds", answered, shut, n)
	}
	if _, err := Ask(context.Background(), path, agent.Query{Text: "late"}, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Ask after shutdown: %v, want ErrNotRunning", err)
	}
}

func TestConnectionLimit(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{MaxConnections: 2})
	c1, c2 := dial(t, path), dial(t, path)
	for _, c := range []*client{c1, c2} {
		if a := c.ask("hello"); a.Answer != "echo: hello" {
			t.Fatalf("connection within the limit: %+v", a)
		}
	}
	c3 := dial(t, path)
	a, _ := c3.reply()
	if a.Error == nil || a.Error.Code != agent.CodeBusy || !strings.Contains(a.Error.Message, "2 connections") {
		t.Fatalf("third connection: %+v, want busy", a)
	}
	if s, err := c3.line(); err == nil {
		t.Fatalf("third connection: line %q after busy, want it closed", s)
	}
	// The client library reports the busy reply as an answer.
	if a, err := Ask(context.Background(), path, agent.Query{Text: "x"}, nil); err != nil || a.Error == nil || a.Error.Code != agent.CodeBusy {
		t.Fatalf("Ask over the limit: %+v, %v; want a busy reply", a, err)
	}
	// A freed slot is usable again (the server notices the close).
	c1.c.Close()
	deadline := time.Now().Add(ioWait)
	for {
		// Ask returns the busy reply even when its send lost the race.
		a, err := Ask(context.Background(), path, agent.Query{Text: "again"}, nil)
		if err == nil && a.Error == nil {
			if a.Answer != "echo: again" {
				t.Fatalf("after a slot freed: %+v", a)
			}
			break
		}
		if time.Now().After(deadline) || err == nil && a.Error.Code != agent.CodeBusy {
			t.Fatalf("after a slot freed: %+v, %v", a, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// bigLLM answers with a long text, to fill a socket buffer fast.
type bigLLM struct{}

func (bigLLM) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	for range 64 {
		if emit != nil {
			emit(strings.Repeat("z", 1024))
		}
		if ctx.Err() != nil {
			return agent.Answer{}, ctx.Err()
		}
	}
	return agent.Answer{Answer: strings.Repeat("z", 64<<10)}, nil
}

func TestClientThatNeverReads(t *testing.T) {
	h := agent.New(agent.Options{LLM: bigLLM{}})
	path, stop := serve(t, h, Options{WriteTimeout: 200 * time.Millisecond})
	// The stuck client pipelines streaming requests and never reads.
	stuck := dial(t, path)
	go func() {
		line := []byte(`{"text":"flood","stream":true}` + "\n")
		for range 1000 {
			if _, err := stuck.c.Write(line); err != nil {
				return
			}
		}
	}()
	// Others are answered meanwhile, and after it is cut off.
	for i := range 5 {
		a, err := Ask(context.Background(), path, agent.Query{Text: fmt.Sprint("other ", i)}, nil)
		if err != nil || len(a.Answer) != 64<<10 {
			t.Fatalf("other client %d: %v, %d bytes", i, err, len(a.Answer))
		}
	}
	// Shutdown does not hang on the stuck client.
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

type panicky struct{}

func (panicky) Handle(ctx context.Context, q agent.Query, emit func(string)) agent.Answer {
	if q.Text == "boom" {
		panic("tier bug")
	}
	return agent.Answer{ID: q.ID, Answer: "fine"}
}

func TestHandlerPanicIsAnErrorReply(t *testing.T) {
	path, _ := serve(t, panicky{}, Options{})
	c := dial(t, path)
	a := c.ask(`{"id":"p","text":"boom"}`)
	if a.Error == nil || a.Error.Code != agent.CodeInternal || a.ID != "p" {
		t.Fatalf("panicking request: %+v", a)
	}
	if a := c.ask("next"); a.Answer != "fine" {
		t.Fatalf("after a panic: %+v", a)
	}
}

func TestIdleTimeoutClosesConnection(t *testing.T) {
	path, _ := serve(t, newAgent(), Options{IdleTimeout: 50 * time.Millisecond})
	c := dial(t, path)
	if a := c.ask("hi"); a.Answer != "echo: hi" {
		t.Fatalf("%+v", a)
	}
	if _, err := c.c.Write([]byte(`{"text":"never`)); err != nil { // a partial line, then silence
		t.Fatal(err)
	}
	if s, err := c.line(); err == nil {
		t.Fatalf("got %q, want the idle connection closed", s)
	}
}

func TestAskErrors(t *testing.T) {
	dir := shortDir(t)
	missing := filepath.Join(dir, "missing.sock")
	if _, err := Ask(context.Background(), missing, agent.Query{Text: "hi"}, nil); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no such socket") {
		t.Errorf("missing socket: %v", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Ask(context.Background(), stale, agent.Query{Text: "hi"}, nil); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("stale socket: %v", err)
	}

	// A server that reads the request and hangs up.
	rude := filepath.Join(dir, "rude.sock")
	rl, err := net.Listen("unix", rude)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}()
	if _, err := Ask(context.Background(), rude, agent.Query{Text: "hi"}, nil); !errors.Is(err, ErrNoReply) {
		t.Errorf("hang-up: %v, want ErrNoReply", err)
	}

	// A server that never answers: ctx ends the wait.
	g := &gate{started: make(chan string, 1), release: make(chan struct{})}
	path, _ := serve(t, g, Options{})
	defer close(g.release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Ask(ctx, path, agent.Query{Text: "hi"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no answer: %v, want deadline exceeded", err)
	}

	// An error reply is an answer, not an error.
	path2, _ := serve(t, newAgent(), Options{})
	a, err := Ask(context.Background(), path2, agent.Query{ID: "x", Text: " "}, nil)
	if err != nil || a.Error == nil || a.Error.Code != agent.CodeBadRequest || a.ID != "x" {
		t.Errorf("error reply: %+v, %v", a, err)
	}
}

func TestServeTwice(t *testing.T) {
	path := filepath.Join(shortDir(t), "hedge.sock")
	srv, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, newAgent()) }()
	// Wait until the first Serve owns the server.
	if _, err := Ask(context.Background(), path, agent.Query{Text: "x"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ctx, newAgent()); err == nil {
		t.Fatal("second Serve returned nil")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	path, _ := serve(b, newAgent(), Options{})
	c := dial(b, path)
	line := []byte(`{"id":"b","text":"what is the weather like"}` + "\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.c.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := c.rd.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAsk(b *testing.B) {
	path, _ := serve(b, newAgent(), Options{})
	q := agent.Query{ID: "b", Text: "what is the weather like"}
	b.ReportAllocs()
	for b.Loop() {
		if a, err := Ask(context.Background(), path, q, nil); err != nil || a.Error != nil {
			b.Fatal(err, a.Error)
		}
	}
}
