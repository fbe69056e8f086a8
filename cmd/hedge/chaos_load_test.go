//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
