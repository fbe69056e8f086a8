package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// hangGen is a local LLM that answers "tell me a story" by emitting one
// word, reporting that it started and then waiting for its ctx: only a
// cancelled request ends. ended receives the error it ended with. Other
// texts are answered at once.
type hangGen struct {
	started chan struct{}
	ended   chan error
}

func (g *hangGen) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	if q.Text != "tell me a story" {
		return agent.Answer{Answer: "at once", Model: "hang"}, nil
	}
	if emit != nil {
		emit("Once")
	}
	g.started <- struct{}{}
	<-ctx.Done()
	g.ended <- ctx.Err()
	return agent.Answer{}, ctx.Err()
}

// TestDisconnectCancels: Go's server cancels a request's context when its
// client hangs up (its background read sees the connection end once the
// body is read), plain or streamed, so the generation stops and the
// in-flight slot serves the next request.
func TestDisconnectCancels(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			g := &hangGen{started: make(chan struct{}, 1), ended: make(chan error, 1)}
			a := agent.New(agent.Options{LLM: g, Limits: agent.Limits{MaxQueryBytes: 1024, MaxTokens: 512}})
			r := serve(t, Options{MaxInFlight: 1}, a)

			body := fmt.Sprintf(`{"model":"hedge-local","stream":%v,"messages":[{"role":"user","content":"tell me a story"}]}`, stream)
			c, err := net.Dial("tcp", r.Addr())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: hedge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			wait(t, g.started, "the generation to start")
			if stream {
				// The first event is out before the hang-up.
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("stream response: %v %v", resp, err)
				}
			}
			c.Close()
			if err := wait(t, g.ended, "the generation to end"); err != context.Canceled {
				t.Fatalf("generation ended with %v, want context.Canceled", err)
			}

			// The in-flight slot is free again (a held one answers 429).
			// The handler gives it back as it returns, just after the
			// generation ended: a 429 meanwhile is asked again.
			deadline := time.Now().Add(20 * time.Second)
			for {
				resp, raw := do(t, "POST", r.URL()+"/v1/chat/completions", "", `{"model":"hedge-local","messages":[{"role":"user","content":"and another"}]}`)
				if resp.StatusCode == 200 && strings.Contains(raw, "at once") {
					break
				}
				if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
					t.Fatalf("next request: %d %s", resp.StatusCode, raw)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}
