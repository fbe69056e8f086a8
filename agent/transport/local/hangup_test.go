//go:build linux

package local

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// slotLLM is a fake local LLM with the real one's single slot: a request
// that finds it taken gets agent.ErrBusy. Each request emits its first
// word, reports that it started and then waits for release (or its ctx);
// ended receives how each request ended (nil, or its ctx's error).
type slotLLM struct {
	slot    chan struct{}
	started chan string // the text of each request that got the slot
	release chan struct{}
	ended   chan error
}

func newSlotLLM() *slotLLM {
	return &slotLLM{
		slot:    make(chan struct{}, 1),
		started: make(chan string, 16),
		release: make(chan struct{}),
		ended:   make(chan error, 16),
	}
}

func (g *slotLLM) Generate(ctx context.Context, q agent.Query, emit func(string)) (a agent.Answer, err error) {
	select {
	case g.slot <- struct{}{}:
	default:
		return agent.Answer{}, agent.ErrBusy
	}
	// The slot is free before the end is reported: a test that sends the
	// next request on that report must find it free, not get busy.
	defer func() {
		<-g.slot
		g.ended <- err
	}()
	if emit != nil {
		emit("first")
	}
	g.started <- q.Text
	select {
	case <-g.release:
		return agent.Answer{Answer: "done: " + q.Text, Model: "slot"}, nil
	case <-ctx.Done():
		return agent.Answer{}, ctx.Err()
	}
}

func slotAgent(g *slotLLM) *agent.Agent {
	return agent.New(agent.Options{LLM: g, Limits: agent.Limits{MaxQueryBytes: 1024, MaxTokens: 100}})
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(ioWait):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// TestHangupCancels: a client that closes its connection while its request
// generates cancels the generation, plain or streamed, and the slot it held
// serves the next client at once. Nothing in the fake ever ends on its own,
// so only the hang-up can end it.
func TestHangupCancels(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			g := newSlotLLM()
			path, _ := serve(t, slotAgent(g), Options{})
			c := dial(t, path)
			c.send(fmt.Sprintf(`{"id":"1","text":"long story","stream":%v}`, stream))
			waitFor(t, g.started, "the generation to start")
			c.c.Close()
			if err := waitFor(t, g.ended, "the generation to end"); err != context.Canceled {
				t.Fatalf("generation ended with %v, want context.Canceled", err)
			}

			next := dial(t, path)
			next.send(`{"id":"2","text":"next one"}`)
			if got := waitFor(t, g.started, "the next request to get the slot"); got != "next one" {
				t.Fatalf("started %q", got)
			}
			g.release <- struct{}{}
			if a, _ := next.reply(); a.Error != nil || a.Answer != "done: next one" {
				t.Fatalf("next reply: %+v", a)
			}
		})
	}
}

// TestHalfCloseIsNotAHangup: a client that shuts down only its writing
// side after its request (echo … | nc -U) still gets the reply.
func TestHalfCloseIsNotAHangup(t *testing.T) {
	g := newSlotLLM()
	path, _ := serve(t, slotAgent(g), Options{})
	c := dial(t, path)
	c.send(`{"id":"1","text":"story"}`)
	waitFor(t, g.started, "the generation to start")
	c.c.CloseWrite()
	time.Sleep(50 * time.Millisecond) // the watch sees the half-close and must keep waiting
	g.release <- struct{}{}
	if err := waitFor(t, g.ended, "the generation to end"); err != nil {
		t.Fatalf("generation ended with %v, want it answered", err)
	}
	if a, _ := c.reply(); a.Error != nil || a.Answer != "done: story" {
		t.Fatalf("reply: %+v", a)
	}
}

// TestPipelinedLineWhileGenerating: a line that arrives while a request
// runs wakes the hang-up watch, which must leave it for the read loop: it
// is read and answered afterwards, in order, and nothing is cancelled.
func TestPipelinedLineWhileGenerating(t *testing.T) {
	g := newSlotLLM()
	path, _ := serve(t, slotAgent(g), Options{})
	c := dial(t, path)
	c.send(`{"id":"1","text":"first"}`)
	waitFor(t, g.started, "the first request to start")
	c.send(`{"id":"2","text":"second"}`)
	time.Sleep(50 * time.Millisecond) // the second line sits in the socket while the first runs
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.release <- struct{}{}
		waitFor(t, g.started, "the second request to start")
		g.release <- struct{}{}
	}()
	for _, want := range []string{"done: first", "done: second"} {
		if a, _ := c.reply(); a.Error != nil || a.Answer != want {
			t.Fatalf("reply: %+v, want %q", a, want)
		}
	}
	wg.Wait()
	for range 2 {
		if err := waitFor(t, g.ended, "a generation to end"); err != nil {
			t.Fatalf("a pipelined request ended with %v", err)
		}
	}
}

// TestLongRequestOutlivesIdleTimeout: the watch lifts the idle deadline
// while a request runs (a generation may take longer than the idle
// timeout), and a hang-up after it still cancels.
func TestLongRequestOutlivesIdleTimeout(t *testing.T) {
	g := newSlotLLM()
	path, _ := serve(t, slotAgent(g), Options{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, path)
	c.send(`{"id":"1","text":"story"}`)
	waitFor(t, g.started, "the generation to start")
	time.Sleep(300 * time.Millisecond)
	c.c.Close()
	if err := waitFor(t, g.ended, "the generation to end"); err != context.Canceled {
		t.Fatalf("generation ended with %v, want context.Canceled", err)
	}
}
