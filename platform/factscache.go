package platform

import (
	"sync"
	"time"
)

// FactsCache is Detect for callers that want the facts often: an intent
// answer that names the time, the load or the temperature wants them for
// every reply, and Detect reads a dozen files under /proc and /sys (about
// 0.2 ms of system calls, most of an intent answer's cost). It reads the
// device at most once per maxAge and hands out that reading with Now set
// to the time of the call and Uptime advanced to match, so the clock a
// reply names is never stale; memory, load, temperature and throttling are
// at most maxAge old. Safe for concurrent use.
type FactsCache struct {
	root   string
	maxAge time.Duration
	now    func() time.Time

	mu   sync.Mutex
	f    Facts
	read time.Time // when f was read; zero: never
}

// NewFactsCache returns a cache of Detect(root) readings that are kept
// for maxAge (0 or less: every call reads).
func NewFactsCache(root string, maxAge time.Duration) *FactsCache {
	return &FactsCache{root: root, maxAge: maxAge, now: time.Now}
}

// Facts returns the device's facts, read again when the last reading is
// older than maxAge. Detect's error is dropped: the facts that could be
// read are the ones worth showing.
func (c *FactsCache) Facts() Facts {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	age := now.Sub(c.read)
	if c.read.IsZero() || age < 0 || age >= c.maxAge {
		c.f, _ = Detect(c.root)
		c.read, age = now, 0
	}
	f := c.f
	f.Now = now
	if f.Uptime > 0 {
		f.Uptime += age
	}
	return f
}
