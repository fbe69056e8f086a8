package cloudbridge

import (
	"sync"
	"time"
)

// refusalLogEvery is how often one cause of refusal is logged again while
// it lasts: a wrong key refuses every escalation, and each would otherwise
// be a line.
const refusalLogEvery = 15 * time.Minute

// refusalLog decides which of the cloud's refusals are logged: the first of
// each cause (its HTTP status), then at most one every refusalLogEvery,
// counting those left out. Causes are statuses, so it stays small. It is
// safe for concurrent use.
type refusalLog struct {
	mu    sync.Mutex
	every time.Duration
	last  map[int]time.Time
	quiet map[int]int
}

func newRefusalLog(every time.Duration) *refusalLog {
	return &refusalLog{every: every, last: map[int]time.Time{}, quiet: map[int]int{}}
}

// note records a refusal with status at now. It reports whether to log it
// and how many of the same cause were not logged since the last line.
func (l *refusalLog) note(status int, now time.Time) (log bool, quiet int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[status]; ok && now.Sub(last) < l.every {
		l.quiet[status]++
		return false, 0
	}
	l.last[status] = now
	quiet = l.quiet[status]
	l.quiet[status] = 0
	return true, quiet
}
