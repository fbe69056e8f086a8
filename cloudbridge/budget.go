package cloudbridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Budget limits cloud spending per UTC day; a zero limit is no limit. The
// caller limits apply to each agent.Query.Caller separately.
type Budget struct {
	RequestsPerDay       int64
	TokensPerDay         int64
	CallerRequestsPerDay int64
	CallerTokensPerDay   int64
}

// active reports whether any limit is set.
func (b Budget) active() bool {
	return b.RequestsPerDay > 0 || b.TokensPerDay > 0 || b.CallerRequestsPerDay > 0 || b.CallerTokensPerDay > 0
}

// budgetKeys are the counter keys of one day, for the device and for a caller.
type budgetKeys struct {
	requests, tokens             string
	callerRequests, callerTokens string // "" without a caller
	expires                      time.Time
}

// keysFor names the counters of now's UTC day (see budget.keys for the
// ones that are kept). They expire an hour after
// the day ends, so yesterday's spending never counts today and the store
// purges them by itself.
func keysFor(now time.Time, caller string) budgetKeys {
	day := now.UTC().Format("2006-01-02")
	start, _ := time.Parse("2006-01-02", day)
	k := budgetKeys{
		requests: "cloud/budget/" + day + "/requests",
		tokens:   "cloud/budget/" + day + "/tokens",
		expires:  start.Add(25 * time.Hour),
	}
	if caller != "" {
		// Callers are topics or peer ids of any length: hash them to a
		// bounded key that says nothing about who asked.
		h := sha256.Sum256([]byte(caller))
		c := hex.EncodeToString(h[:8])
		k.callerRequests = "cloud/budget/" + day + "/caller/" + c + "/requests"
		k.callerTokens = "cloud/budget/" + day + "/caller/" + c + "/tokens"
	}
	return k
}

// nextDay is the start of the UTC day after now's.
func nextDay(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// keys names the counters this budget keeps: only those with a limit, so
// that a request costs as few fsynced writes as the limits need.
func (b Budget) keys(now time.Time, caller string) budgetKeys {
	k := keysFor(now, caller)
	if b.RequestsPerDay <= 0 {
		k.requests = ""
	}
	if b.TokensPerDay <= 0 {
		k.tokens = ""
	}
	if b.CallerRequestsPerDay <= 0 {
		k.callerRequests = ""
	}
	if b.CallerTokensPerDay <= 0 {
		k.callerTokens = ""
	}
	return k
}

// spent reports whether a limit of caller's is reached today. Reading
// counters is a local bbolt read, never the network.
func (b *Bridge) spent(ctx context.Context, caller string) (bool, error) {
	bu := b.o.Budget
	if !bu.active() {
		return false, nil
	}
	k := bu.keys(b.o.State.Now(), caller)
	checks := []struct {
		key   string
		limit int64
	}{
		{k.requests, bu.RequestsPerDay}, {k.tokens, bu.TokensPerDay},
		{k.callerRequests, bu.CallerRequestsPerDay}, {k.callerTokens, bu.CallerTokensPerDay},
	}
	for _, c := range checks {
		if c.limit <= 0 || c.key == "" {
			continue
		}
		n, err := b.o.State.Counter(ctx, c.key)
		if err != nil {
			return false, fmt.Errorf("read cloud budget: %w", err)
		}
		if n >= c.limit {
			return true, nil
		}
	}
	return false, nil
}

// reserve counts one request against the budget before it is sent; it
// fails with ErrBudget (and takes the request back) when that would exceed
// a request limit or a token limit is already reached. The token counts
// follow with charge once the answer says how many were used.
func (b *Bridge) reserve(ctx context.Context, caller string) error {
	bu := b.o.Budget
	if !bu.active() {
		return nil
	}
	if spent, err := b.spent(ctx, caller); err != nil {
		return err
	} else if spent {
		return fmt.Errorf("cloud escalation: %w", ErrBudget)
	}
	k := bu.keys(b.o.State.Now(), caller)
	var undo []string
	rollback := func() {
		for _, key := range undo {
			// Best effort: a failed rollback over-counts, which errs
			// on the side of spending less.
			_, _ = b.o.State.Add(context.WithoutCancel(ctx), key, -1, k.expires)
		}
	}
	for _, c := range []struct {
		key   string
		limit int64
	}{{k.requests, bu.RequestsPerDay}, {k.callerRequests, bu.CallerRequestsPerDay}} {
		if c.key == "" {
			continue
		}
		n, err := b.o.State.Add(ctx, c.key, 1, k.expires)
		if err != nil {
			rollback()
			return fmt.Errorf("count cloud budget: %w", err)
		}
		undo = append(undo, c.key)
		if c.limit > 0 && n > c.limit {
			rollback()
			return fmt.Errorf("cloud escalation: %w", ErrBudget)
		}
	}
	return nil
}

// charge adds the tokens an answer used to today's counters.
func (b *Bridge) charge(ctx context.Context, caller string, tokens int) {
	if tokens <= 0 || !b.o.Budget.active() {
		return
	}
	k := b.o.Budget.keys(b.o.State.Now(), caller)
	for _, key := range []string{k.tokens, k.callerTokens} {
		if key == "" {
			continue
		}
		if _, err := b.o.State.Add(context.WithoutCancel(ctx), key, int64(tokens), k.expires); err != nil {
			b.log.Warn("cloud budget not charged", "err", err)
		}
	}
}
