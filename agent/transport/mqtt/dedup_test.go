package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// commitLog is a ReplyStore that remembers its commits.
type commitLog struct {
	mu      sync.Mutex
	stored  map[string][]byte
	commits []commitAt
}

type commitAt struct {
	at   time.Time
	size int
}

func newCommitLog() *commitLog { return &commitLog{stored: map[string][]byte{}} }

func (c *commitLog) PutReplies(_ context.Context, rs map[string][]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits = append(c.commits, commitAt{time.Now(), len(rs)})
	n := 0
	for k, v := range rs {
		if _, ok := c.stored[k]; !ok {
			c.stored[k] = v
			n++
		}
	}
	return n, nil
}

func (c *commitLog) GetReply(_ context.Context, id string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.stored[id]
	return b, ok, nil
}

// TestRecorderGathers: a burst of records is committed in a few commits
// at least recordEvery apart, every record in one of them; a record after
// a quiet spell is committed alone, without waiting for company; close
// commits what is still queued.
func TestRecorderGathers(t *testing.T) {
	cl := newCommitLog()
	r := newReplies(cl, 100, 4096, slog.New(slog.DiscardHandler))
	r.start()
	const burst = 2000
	start := time.Now()
	for i := range burst {
		r.rec <- record{fmt.Sprintf("k%d", i), []byte("reply")}
		if i%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	took := time.Since(start)
	time.Sleep(3 * recordEvery) // the burst's last commit, then quiet
	cl.mu.Lock()
	commits := len(cl.commits)
	cl.mu.Unlock()
	r.rec <- record{"lone", []byte("reply")}
	// Duplicates within one batch keep the first reply.
	r.rec <- record{"k0", []byte("a second reply")}
	r.close(5 * time.Second)

	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.stored) != burst+1 {
		t.Fatalf("%d records stored, want %d", len(cl.stored), burst+1)
	}
	if string(cl.stored["k0"]) != "reply" {
		t.Errorf("k0 = %q, want its first reply", cl.stored["k0"])
	}
	// The burst took `took`: one commit at its start, then at most one per
	// recordEvery.
	if max := 2 + int(took/recordEvery); commits > max {
		t.Errorf("the burst of %d records over %s took %d commits, want at most %d", burst, took, commits, max)
	}
	for i := 1; i < commits; i++ {
		if gap := cl.commits[i].at.Sub(cl.commits[i-1].at); gap < recordEvery-time.Millisecond {
			t.Errorf("commits %d and %d %s apart, less than recordEvery (%s)", i-1, i, gap, recordEvery)
		}
	}
	if lone := cl.commits[commits]; lone.size != 1 && lone.size != 2 {
		t.Errorf("the record after a quiet spell was committed with %d others", lone.size-1)
	}
}
