package main

import (
	"context"
	"time"
)

// outboxReader is the store as the health check reads it.
type outboxReader interface {
	OutboxStats(ctx context.Context) (count int, size int64, err error)
}

// staller is the agent as the health check reads it.
type staller interface {
	Stalled(bound time.Duration) (oldest time.Duration, stalled bool)
}

// pipelineHealth reports whether hedge still answers: the store reads, no
// query has been in flight longer than bound (a tier that no longer
// returns, or a reply that cannot be written), and ctx is live. The
// watchdog pings and /readyz say ready only while it holds.
func pipelineHealth(ctx context.Context, st outboxReader, a staller, bound time.Duration) func() bool {
	return func() bool {
		if ctx.Err() != nil {
			return false
		}
		if _, stalled := a.Stalled(bound); stalled {
			return false
		}
		_, _, err := st.OutboxStats(ctx)
		return err == nil
	}
}
