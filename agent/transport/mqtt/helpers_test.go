package mqtt_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
)

const device = "dev1"

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("HEDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// hedge is a Transport being served.
type hedge struct {
	tr     *mqtt.Transport
	cancel context.CancelFunc
	done   chan error
}

// stop ends Serve and waits for it.
func (h *hedge) stop(t testing.TB) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return within 30s of cancel")
	}
}

// serve starts a Transport with o (Device, Brokers, Replies and Log
// defaulted) answering with h, and waits for its online status.
func serve(t testing.TB, o mqtt.Options, h agent.Handler) *hedge {
	t.Helper()
	if o.Device == "" {
		o.Device = device
	}
	if o.Replies == nil {
		st := openStore(t, "")
		t.Cleanup(func() { st.Close() })
		o.Replies = st
	}
	if o.Log == nil {
		o.Log = testLog(t)
	}
	o.ConnectTimeout = 5 * time.Second
	o.ReconnectMax = 2 * time.Second
	tr, err := mqtt.New(o)
	if err != nil {
		t.Fatal(err)
	}
	status := subscribe(t, o.Brokers[0], tr.StatusTopic(), clientOpts{tls: o.TLS, user: o.Username, pass: o.Password})
	ctx, cancel := context.WithCancel(context.Background())
	hd := &hedge{tr: tr, cancel: cancel, done: make(chan error, 1)}
	go func() { hd.done <- tr.Serve(ctx, h) }()
	t.Cleanup(func() { hd.stop(t) })
	status.waitPayload(t, "online", 15*time.Second)
	status.close()
	return hd
}

type clientOpts struct {
	id    string
	clean *bool
	user  string
	pass  string
	tls   *tls.Config
}

// newClient connects a test client.
func newClient(t testing.TB, url string, co clientOpts) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url)
	if co.id == "" {
		co.id = fmt.Sprintf("test-%d", clientSeq.Add(1))
	}
	o.SetClientID(co.id)
	o.SetUsername(co.user)
	o.SetPassword(co.pass)
	if co.tls != nil {
		o.SetTLSConfig(co.tls)
	}
	clean := true
	if co.clean != nil {
		clean = *co.clean
	}
	o.SetCleanSession(clean)
	o.SetAutoReconnect(true)
	o.SetMaxReconnectInterval(time.Second)
	o.SetConnectTimeout(5 * time.Second)
	// In order: the streaming test checks the order chunks arrive in.
	o.SetOrderMatters(true)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

var clientSeq atomic.Int64

type msg struct {
	topic   string
	payload []byte
}

// sub collects the messages of one subscription.
type sub struct {
	c  paho.Client
	ch chan msg
}

func subscribe(t testing.TB, url, filter string, co clientOpts) *sub {
	t.Helper()
	c := newClient(t, url, co)
	return subscribeWith(t, c, filter)
}

func subscribeWith(t testing.TB, c paho.Client, filter string) *sub {
	t.Helper()
	s := &sub{c: c, ch: make(chan msg, 100000)}
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.ch <- msg{m.Topic(), append([]byte(nil), m.Payload()...)}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return s
}

func (s *sub) close() { s.c.Disconnect(50) }

// next returns the next message or fails after d.
func (s *sub) next(t testing.TB, d time.Duration) msg {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %s", d)
	}
	return msg{}
}

func (s *sub) waitPayload(t testing.TB, want string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-s.ch:
			if string(m.payload) == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %s", want, d)
		}
	}
}

// none fails if a message arrives within d.
func (s *sub) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.ch:
		t.Fatalf("unexpected message on %s: %s", m.topic, m.payload)
	case <-time.After(d):
	}
}

func answerOf(t testing.TB, m msg) agent.Answer {
	t.Helper()
	var a agent.Answer
	if err := json.Unmarshal(m.payload, &a); err != nil {
		t.Fatalf("reply on %s is not an answer: %v: %s", m.topic, err, m.payload)
	}
	return a
}

func publish(t testing.TB, c paho.Client, topic string, payload any) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func request(id, text, replyTo string) []byte {
	b, _ := json.Marshal(agent.Query{ID: id, Text: text, ReplyTo: replyTo})
	return b
}

// echo is a Handler that answers "echo: <text>" and counts computations
// per id.
type echo struct {
	mu    sync.Mutex
	calls map[string]int
	total atomic.Int64
	// gate, when set, is waited for before answering.
	gate chan struct{}
	// tokens are emitted (streaming) before answering.
	tokens []string
	// work is how long each answer takes (a tier's compute time).
	work time.Duration
	// panicOn makes Handle panic for requests with this text.
	panicOn string
}

func newEcho() *echo { return &echo{calls: map[string]int{}} }

func (e *echo) Handle(ctx context.Context, q agent.Query, emit func(string)) agent.Answer {
	e.mu.Lock()
	e.calls[q.ID]++
	e.mu.Unlock()
	e.total.Add(1)
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
		}
	}
	if e := q.Validate(agent.Limits{MaxQueryBytes: 16 << 10}); e != nil {
		return agent.ErrorAnswer(q.ID, e)
	}
	if e.panicOn != "" && q.Text == e.panicOn {
		panic("poisoned request")
	}
	time.Sleep(e.work)
	if emit != nil {
		for _, tok := range e.tokens {
			emit(tok)
		}
	}
	return agent.Answer{ID: q.ID, Answer: "echo: " + q.Text, Tier: agent.TierSLM, LatencyMS: float64(time.Now().UnixNano()%1000000) / 1000}
}

func (e *echo) count(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[id]
}
