// Package conversation keeps the turns of hedge's conversations: bounded by
// turns, by bytes and by an idle TTL, scoped to the caller that holds them,
// and persisted through the store, so a conversation survives a restart.
package conversation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// Store is where conversations live (agent/store implements it). It is
// safe for concurrent use; UpdateConversation is one transaction.
type Store interface {
	Conversation(ctx context.Context, key string) (rec []byte, ok bool, err error)
	UpdateConversation(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error
	DeleteConversation(ctx context.Context, key string) (bool, error)
	Now() time.Time
}

// Options bounds what a conversation keeps. Zero values take the defaults.
type Options struct {
	// MaxTurns is how many turns are kept; older ones are dropped. 20.
	MaxTurns int
	// MaxBytes bounds the stored turns; the oldest are dropped to fit. 32 KiB.
	MaxBytes int
	// IdleTTL is how long a conversation lives after its last turn. 24h.
	IdleTTL time.Duration
}

// Memory implements agent.Memory over a Store. It is safe for concurrent use.
type Memory struct {
	st Store
	o  Options
}

var _ agent.Memory = (*Memory)(nil)

// New returns a Memory keeping conversations in st.
func New(st Store, o Options) *Memory {
	if o.MaxTurns <= 0 {
		o.MaxTurns = 20
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 32 << 10
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 24 * time.Hour
	}
	return &Memory{st: st, o: o}
}

// record is a conversation as stored.
type record struct {
	V     int          `json:"v"`
	Turns []agent.Turn `json:"turns"`
}

const recordVersion = 1

// Key is the store key of caller's conversation id. It hashes both, so the
// key says nothing of who asked, and one caller's id never names another
// caller's conversation: guessing an id reaches only one's own.
func Key(caller, id string) string {
	h := sha256.Sum256([]byte(caller + "\x00" + id))
	return "conv/" + hex.EncodeToString(h[:])
}

// History returns the turns of caller's conversation id, oldest first.
func (m *Memory) History(ctx context.Context, caller, id string) ([]agent.Turn, error) {
	b, ok, err := m.st.Conversation(ctx, Key(caller, id))
	if err != nil || !ok {
		return nil, err
	}
	r, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("conversation: %w", err)
	}
	return r.Turns, nil
}

// Append adds t (stamped with the store's clock) to caller's conversation
// id, dropping the oldest turns beyond MaxTurns and MaxBytes. A turn larger
// than MaxBytes on its own is kept alone.
func (m *Memory) Append(ctx context.Context, caller, id string, t agent.Turn) error {
	t.At = m.st.Now().UTC()
	return m.st.UpdateConversation(ctx, Key(caller, id), m.o.IdleTTL, func(old []byte) ([]byte, error) {
		var r record
		if old != nil {
			var err error
			if r, err = decode(old); err != nil {
				// A record hedge cannot read starts over rather than
				// failing every later turn of the conversation.
				r = record{}
			}
		}
		r.V = recordVersion
		r.Turns = append(r.Turns, t)
		return m.bounded(r)
	})
}

// bounded encodes r after dropping its oldest turns beyond the bounds.
func (m *Memory) bounded(r record) ([]byte, error) {
	if n := len(r.Turns) - m.o.MaxTurns; n > 0 {
		r.Turns = r.Turns[n:]
	}
	for {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("conversation: %w", err)
		}
		if len(b) <= m.o.MaxBytes || len(r.Turns) == 1 {
			return b, nil
		}
		r.Turns = r.Turns[1:]
	}
}

// Delete forgets caller's conversation id and reports whether it existed.
func (m *Memory) Delete(ctx context.Context, caller, id string) (bool, error) {
	return m.st.DeleteConversation(ctx, Key(caller, id))
}

func decode(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("unreadable record: %w", err)
	}
	if r.V != recordVersion {
		return record{}, fmt.Errorf("record version %d; this hedge reads %d", r.V, recordVersion)
	}
	return r, nil
}
