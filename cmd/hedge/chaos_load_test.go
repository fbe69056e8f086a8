//go:build chaos

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

// record is what became of one request.
type record struct {
	id, phase, transport, kind string
	// finals are the distinct final replies; copies counts byte-identical
	// repeats of one of them (MQTT QoS 1 is at-least-once: a device keeps
	// the first of the copies by id).
	finals [][]byte
	copies int
	// lates are the distinct late cloud answers delivered after a queued one.
	lates      [][]byte
	lateCopies int
	// clientErr is a failure the client itself saw: no connection to hedge,
	// or the connection closed under a request (a SIGKILL).
	clientErr string
	queued    bool
	code      string
	tier      string
}

func (r *record) settled() bool { return len(r.finals) > 0 || r.clientErr != "" }

// ledger holds every request the load sent and every reply that came back.
type ledger struct {
	mu     sync.Mutex
	recs   map[string]*record
	order  []string
	phases []string
	strays int
	probes chan string
	// outbox is how many entries the outbox held after each phase.
	outbox map[string]int
}

func newLedger() *ledger {
	return &ledger{recs: map[string]*record{}, probes: make(chan string, 64), outbox: map[string]int{}}
}

func (l *ledger) sent(id, phase, transport, kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.phases) == 0 || l.phases[len(l.phases)-1] != phase {
		l.phases = append(l.phases, phase)
	}
	l.recs[id] = &record{id: id, phase: phase, transport: transport, kind: kind}
	l.order = append(l.order, id)
}

// reply files one reply message (stream chunks are not replies).
func (l *ledger) reply(id string, raw []byte) {
	if strings.HasPrefix(id, "probe-") {
		select {
		case l.probes <- id:
		default:
		}
		return
	}
	var m struct {
		Delta  *string `json:"delta"`
		Late   bool    `json:"late"`
		Queued bool    `json:"queued"`
		Tier   string  `json:"tier"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Delta != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.recs[id]
	if !ok {
		l.strays++
		return
	}
	keep := func(list *[][]byte, copies *int) bool {
		for _, b := range *list {
			if bytes.Equal(b, raw) {
				*copies++
				return false
			}
		}
		*list = append(*list, bytes.Clone(raw))
		return true
	}
	if m.Late {
		keep(&r.lates, &r.lateCopies)
		return
	}
	if keep(&r.finals, &r.copies) && len(r.finals) == 1 {
		r.queued, r.tier = m.Queued, m.Tier
		if m.Error != nil {
			r.code = m.Error.Code
		}
	}
}

func (l *ledger) clientError(id, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.recs[id]; r != nil && len(r.finals) == 0 && r.clientErr == "" {
		r.clientErr = what
	}
}

// waitUntil polls done under the lock until it holds or timeout passes.
func (l *ledger) waitUntil(timeout time.Duration, done func(*record) bool) {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		all := true
		for _, id := range l.order {
			if !done(l.recs[id]) {
				all = false
				break
			}
		}
		l.mu.Unlock()
		if all || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSettled waits until every request of the phase has a reply or a
// client-side error.
func (l *ledger) waitSettled(phase string, timeout time.Duration) {
	l.waitUntil(timeout, func(r *record) bool { return r.phase != phase || r.settled() })
}

// waitLate waits until every queued MQTT escalation got its late answer.
func (l *ledger) waitLate(timeout time.Duration) {
	l.waitUntil(timeout, func(r *record) bool { return !r.lateExpected() || len(r.lates) > 0 })
}

func (l *ledger) noteOutbox(phase string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outbox[phase] = n
}

// lateExpected reports whether a late cloud answer is owed to r's device:
// its reply said queued, and it came over MQTT (socket callers get the
// cloud's answer from the cache when they ask again).
func (r *record) lateExpected() bool { return r.queued && r.transport == "mqtt" }

// tally is the ledger's count for one phase, or all of them.
type tally struct {
	sent, answered, lost, duplicated, copies int
	queued, lateDelivered, lateMissing       int
	lateDuplicated, lateCopies               int
	errors, tiers                            map[string]int
}

func (l *ledger) summary(phase string) tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := tally{errors: map[string]int{}, tiers: map[string]int{}}
	for _, id := range l.order {
		r := l.recs[id]
		if phase != "" && r.phase != phase {
			continue
		}
		s.sent++
		switch {
		case len(r.finals) == 0 && r.clientErr == "":
			s.lost++
		case len(r.finals) == 0:
			s.errors[r.clientErr]++
		case r.code != "":
			s.errors[r.code]++
		default:
			s.answered++
			s.tiers[r.tier]++
		}
		if len(r.finals) > 1 {
			s.duplicated++
		}
		s.copies += r.copies
		if r.queued {
			s.queued++
		}
		if r.lateExpected() {
			switch len(r.lates) {
			case 0:
				s.lateMissing++
			case 1:
				s.lateDelivered++
			default:
				s.lateDelivered++
				s.lateDuplicated++
			}
		}
		s.lateCopies += r.lateCopies
	}
	return s
}

// report is the summary the suite prints: one row per phase and a total.
func (l *ledger) report() string {
	var b strings.Builder
	b.WriteString("\nchaos summary\n")
	fmt.Fprintf(&b, "%-16s %6s %8s %5s %10s %7s %6s %5s %7s %6s  %s  /  %s\n",
		"phase", "sent", "answered", "lost", "duplicated", "copies", "queued", "late", "missing", "outbox", "errors by code", "answers by tier")
	l.mu.Lock()
	phases := append([]string(nil), l.phases...)
	strays := l.strays
	l.mu.Unlock()
	for _, p := range append(phases, "") {
		s := l.summary(p)
		name := p
		if p == "" {
			name = "TOTAL"
		}
		l.mu.Lock()
		held, ok := l.outbox[p]
		l.mu.Unlock()
		outbox := "-"
		if ok {
			outbox = fmt.Sprint(held)
		}
		fmt.Fprintf(&b, "%-16s %6d %8d %5d %10d %7d %6d %5d %7d %6s  %s  /  %s\n",
			name, s.sent, s.answered, s.lost, s.duplicated, s.copies, s.queued, s.lateDelivered, s.lateMissing, outbox, counts(s.errors), counts(s.tiers))
	}
	l.mu.Lock()
	for _, id := range l.order {
		if r := l.recs[id]; r.code != "" && r.code != "shutting_down" {
			fmt.Fprintf(&b, "error reply: %s phase=%s kind=%s code=%s\n", id, r.phase, r.kind, r.code)
		}
	}
	l.mu.Unlock()
	t := l.summary("")
	fmt.Fprintf(&b, "lost: %d (must be 0)  duplicated: %d (must be 0)  late answers missing: %d, delivered twice: %d (must be 0)\n",
		t.lost, t.duplicated, t.lateMissing, t.lateDuplicated)
	fmt.Fprintf(&b, "copies are byte-identical QoS 1 redeliveries of one reply (%d replies, %d late answers); replies for ids never sent: %d\n",
		t.copies, t.lateCopies, strays)
	return b.String()
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// loadGen sends a steady mix of queries over the socket and MQTT.
type loadGen struct {
	led    *ledger
	socket string
	dev    *device
	rate   int
	n      atomic.Int64
}

// mix picks the n-th query: repeated greetings (cache), the time (an SLM
// intent that is never cached), stories for the local LLM, and questions
// with an e-mail address that prefer the cloud (anonymized; queued while
// the cloud is away).
func mix(n int64) (kind string, q agent.Query) {
	switch n % 10 {
	case 0, 1, 2:
		return "cache", agent.Query{Text: "hello there"}
	case 3, 4:
		return "slm", agent.Query{Text: "what time is it"}
	case 5, 6:
		return "llm", agent.Query{Text: fmt.Sprintf("tell me a story about a fox, story %d", n), Prefer: agent.PreferLocal}
	default:
		return "cloud", agent.Query{Text: fmt.Sprintf("write to sam%d@example.com about the garden", n), Prefer: agent.PreferCloud}
	}
}

// run starts the load for one phase; the returned func stops sending (the
// requests in flight go on and are settled by the ledger).
func (g *loadGen) run(phase string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, tr := range []string{"socket", "mqtt"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(g.rate))
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				n := g.n.Add(1)
				kind, q := mix(n)
				q.ID = fmt.Sprintf("%s-%d", tr, n)
				g.led.sent(q.ID, phase, tr, kind)
				if tr == "socket" {
					go g.ask(q)
				} else {
					g.dev.publish(q)
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

func (g *loadGen) ask(q agent.Query) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := local.Ask(ctx, g.socket, q, nil)
	if err != nil {
		what := "client:connection_lost"
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			what = "client:unavailable"
		}
		g.led.clientError(q.ID, what)
		return
	}
	raw, _ := json.Marshal(a)
	g.led.reply(q.ID, raw)
}

// device is an MQTT client with a persistent session, as a real device
// would have: replies published while it is away wait for it.
type device struct {
	t   *testing.T
	c   paho.Client
	led *ledger
}

const chaosReplies = "chaos/replies/"

func newDevice(t *testing.T, url string, led *ledger) *device {
	d := &device{t: t, led: led}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("chaos-device").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetMaxReconnectInterval(500 * time.Millisecond).SetOrderMatters(false)
	o.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(chaosReplies+"#", 1, func(_ paho.Client, m paho.Message) {
			d.led.reply(strings.TrimPrefix(m.Topic(), chaosReplies), m.Payload())
		})
	})
	d.c = paho.NewClient(o)
	if tok := d.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(100) })
	return d
}

func (d *device) publish(q agent.Query) {
	q.ReplyTo = chaosReplies + q.ID
	payload, _ := json.Marshal(q)
	tok := d.c.Publish("hedge/chaos/query", 1, false, payload)
	go func() {
		if tok.WaitTimeout(30*time.Second) && tok.Error() != nil {
			d.led.clientError(q.ID, "client:publish_failed")
		}
	}()
}

// waitForHedge asks until hedge answers over MQTT: its subscription exists
// from then on, and the broker keeps requests for it while it is away.
func (d *device) waitForHedge(h *chaosHedge) {
	deadline := time.Now().Add(time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("probe-%d", i)
		d.publish(agent.Query{ID: id, Text: "hello"})
		select {
		case <-d.led.probes:
			return
		case <-time.After(time.Second):
		}
	}
	d.t.Fatalf("hedge never answered over MQTT\n%s", h.p.logs.String())
}

// chaosCloud is the loopback cloud behind a TCP relay that can black-hole
// it: connections are accepted and their bytes dropped, as when a route
// disappears, until it is restored.
type chaosCloud struct {
	fake *fakeOpenAI
	// chatsFail makes chat completions fail (503) while /models answers:
	// the link looks up but no escalation gets through.
	chatsFail atomic.Bool
	ln        net.Listener
	up        string
	mu        sync.Mutex
	hole      bool
	// held are the connections that lived through a black hole: they stay
	// dead (their bytes are dropped) and are closed when it ends.
	held  map[net.Conn]bool
	conns map[net.Conn]bool
}

func newChaosCloud(t *testing.T) *chaosCloud {
	c := &chaosCloud{fake: &fakeOpenAI{}, held: map[net.Conn]bool{}, conns: map[net.Conn]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.chatsFail.Load() && strings.HasSuffix(r.URL.Path, "/chat/completions") {
			http.Error(w, `{"error":{"message":"overloaded","type":"server_error"}}`, http.StatusServiceUnavailable)
			return
		}
		c.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.up = srv.Listener.Addr().String()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ln = ln
	t.Cleanup(func() { ln.Close() })
	go c.accept()
	return c
}

func (c *chaosCloud) URL() string { return "http://" + c.ln.Addr().String() }

// refuse makes the cloud answer 503 (true) or answer again (false).
func (c *chaosCloud) refuse(down bool) { c.fake.down.Store(down) }

func (c *chaosCloud) failChats(fail bool) { c.chatsFail.Store(fail) }

func (c *chaosCloud) blackhole(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hole = on
	if on {
		for conn := range c.conns {
			c.held[conn] = true
		}
		return
	}
	for conn := range c.held {
		conn.Close()
	}
	clear(c.held)
}

func (c *chaosCloud) accept() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns[in] = true
		if c.hole {
			c.held[in] = true
			c.mu.Unlock()
			go io.Copy(io.Discard, in)
			continue
		}
		c.mu.Unlock()
		out, err := net.Dial("tcp", c.up)
		if err != nil {
			in.Close()
			continue
		}
		go c.pipe(in, out)
		go c.pipe(out, in)
	}
}

// pipe copies src to dst until either closes, dropping the bytes of a
// connection the black hole holds.
func (c *chaosCloud) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c.mu.Lock()
			dead := c.held[src] || c.held[dst]
			c.mu.Unlock()
			if !dead {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			c.mu.Lock()
			delete(c.conns, src)
			delete(c.held, src)
			c.mu.Unlock()
			return
		}
	}
}
