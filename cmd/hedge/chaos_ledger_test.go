package main

// The chaos suite's ledger (chaos_test.go, build tag chaos): what the load
// sent and what came back, and the tally it reports. It carries no build
// tag, so that TestChaosLedger checks the counting in every `go test`.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// deliveries are the messages that came for one id on one channel: its
// final reply, or its late cloud answer. hedge delivers both at least once
// (MQTT QoS 1 redelivers a reply after a broker restart; the outbox
// publishes a late answer again after a crash between the publish and its
// ack), so a device acts on the first and drops a repeat by id. A repeat is
// fine only when it is byte-identical to the first: a different message for
// the same id is an answer the device acted on, taken back.
type deliveries struct {
	first    []byte
	n        int // messages that came
	repeated int // later ones byte-identical to the first
	differed int // later ones that differ from it
}

// add files one message and reports whether it is the first.
func (d *deliveries) add(raw []byte) bool {
	d.n++
	switch {
	case d.n == 1:
		d.first = bytes.Clone(raw)
		return true
	case bytes.Equal(raw, d.first):
		d.repeated++
	default:
		d.differed++
	}
	return false
}

// record is what became of one request.
type record struct {
	id, phase, transport, kind string
	// reply is the final reply; late the late cloud answer that follows a
	// queued one.
	reply, late deliveries
	// clientErr is a failure the client itself saw: no connection to hedge,
	// or the connection closed under a request (a SIGKILL).
	clientErr string
	// queued, code and tier are read from the first reply.
	queued bool
	code   string
	tier   string
}

func (r *record) settled() bool { return r.reply.n > 0 || r.clientErr != "" }

// lateExpected reports whether a late cloud answer is owed to r's device:
// its reply said queued, and it came over MQTT (socket callers get the
// cloud's answer from the cache when they ask again).
func (r *record) lateExpected() bool { return r.queued && r.transport == "mqtt" }

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
	if m.Late {
		r.late.add(raw)
		return
	}
	if r.reply.add(raw) {
		r.queued, r.tier = m.Queued, m.Tier
		if m.Error != nil {
			r.code = m.Error.Code
		}
	}
}

func (l *ledger) clientError(id, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.recs[id]; r != nil && r.reply.n == 0 && r.clientErr == "" {
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
	l.waitUntil(timeout, func(r *record) bool { return !r.lateExpected() || r.late.n > 0 })
}

func (l *ledger) noteOutbox(phase string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outbox[phase] = n
}

// tally is the ledger's count for one phase, or all of them.
type tally struct {
	sent, answered, lost int
	// repeated counts the deliveries of a reply after its first, each
	// byte-identical to it (at-least-once redeliveries); conflicting counts
	// the requests that got a reply different from their first: must be 0.
	repeated, conflicting              int
	queued, lateDelivered, lateMissing int
	// lateRepeated and lateConflicting are the same for late answers.
	lateRepeated, lateConflicting int
	errors, tiers                 map[string]int
}

// failed reports what of t fails the suite, or "" when nothing does.
func (t tally) failed() string {
	var why []string
	for _, c := range []struct {
		n    int
		what string
	}{
		{t.lost, "lost"},
		{t.conflicting, "with a reply unlike their first"},
		{t.lateMissing, "queued without a late answer"},
		{t.lateConflicting, "with a late answer unlike their first"},
	} {
		if c.n > 0 {
			why = append(why, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(why, ", ")
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
		case r.reply.n == 0 && r.clientErr == "":
			s.lost++
		case r.reply.n == 0:
			s.errors[r.clientErr]++
		case r.code != "":
			s.errors[r.code]++
		default:
			s.answered++
			s.tiers[r.tier]++
		}
		s.repeated += r.reply.repeated
		if r.reply.differed > 0 {
			s.conflicting++
		}
		if r.queued {
			s.queued++
		}
		if r.lateExpected() {
			if r.late.n == 0 {
				s.lateMissing++
			} else {
				s.lateDelivered++
			}
		}
		s.lateRepeated += r.late.repeated
		if r.late.differed > 0 {
			s.lateConflicting++
		}
	}
	return s
}

// report is the summary the suite prints: one row per phase and a total.
func (l *ledger) report() string {
	var b strings.Builder
	b.WriteString("\nchaos summary\n")
	const row = "%-16s %6s %8s %5s %8s %11s %6s %5s %7s %8s %11s %6s  %s  /  %s\n"
	fmt.Fprintf(&b, row, "phase", "sent", "answered", "lost", "repeated", "conflicting",
		"queued", "late", "missing", "late-rep", "late-confl", "outbox", "errors by code", "answers by tier")
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
		fmt.Fprintf(&b, row, name, fmt.Sprint(s.sent), fmt.Sprint(s.answered), fmt.Sprint(s.lost),
			fmt.Sprint(s.repeated), fmt.Sprint(s.conflicting), fmt.Sprint(s.queued), fmt.Sprint(s.lateDelivered),
			fmt.Sprint(s.lateMissing), fmt.Sprint(s.lateRepeated), fmt.Sprint(s.lateConflicting), outbox,
			counts(s.errors), counts(s.tiers))
	}
	l.mu.Lock()
	for _, id := range l.order {
		if r := l.recs[id]; r.code != "" && r.code != "shutting_down" {
			fmt.Fprintf(&b, "error reply: %s phase=%s kind=%s code=%s\n", id, r.phase, r.kind, r.code)
		}
	}
	l.mu.Unlock()
	t := l.summary("")
	fmt.Fprintf(&b, "lost: %d, conflicting replies: %d, late answers missing: %d, conflicting late answers: %d (each must be 0)\n",
		t.lost, t.conflicting, t.lateMissing, t.lateConflicting)
	fmt.Fprintf(&b, "repeated: %d replies, %d late answers (at-least-once redeliveries, each byte-identical to the first; a device drops them by id); replies for ids never sent: %d\n",
		t.repeated, t.lateRepeated, strays)
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

// TestChaosLedger files replies as the chaos suite's device and socket
// client would and checks the tally: a repeat byte-identical to the first
// reply is counted as repeated and passes, a different one fails.
func TestChaosLedger(t *testing.T) {
	const (
		queuedReply = `{"id":"mqtt-1","answer":"local","tier":"llm","queued":true}`
		late        = `{"id":"mqtt-1","answer":"cloud","tier":"cloud","late":true}`
	)
	l := newLedger()
	for _, s := range []struct{ id, phase, transport string }{
		{"mqtt-1", "a", "mqtt"}, {"mqtt-2", "a", "mqtt"}, {"mqtt-3", "a", "mqtt"}, {"socket-4", "a", "socket"},
		{"mqtt-5", "b", "mqtt"}, {"mqtt-6", "b", "mqtt"}, {"socket-7", "b", "socket"}, {"mqtt-8", "b", "mqtt"},
	} {
		l.sent(s.id, s.phase, s.transport, "k")
	}
	// Phase a: every request answered once or more, always with the same
	// bytes; mqtt-1's late answer comes three times.
	l.reply("mqtt-1", []byte(queuedReply))
	l.reply("mqtt-1", []byte(queuedReply))
	for range 3 {
		l.reply("mqtt-1", []byte(late))
	}
	l.reply("mqtt-2", []byte(`{"id":"mqtt-2","seq":1,"delta":"Hi"}`)) // a chunk is not a reply
	l.reply("mqtt-2", []byte(`{"id":"mqtt-2","answer":"Hi","tier":"slm"}`))
	l.reply("mqtt-3", []byte(`{"id":"mqtt-3","error":{"code":"busy","message":"try later"}}`))
	l.reply("mqtt-3", []byte(`{"id":"mqtt-3","error":{"code":"busy","message":"try later"}}`))
	l.reply("socket-4", []byte(`{"id":"socket-4","answer":"Hi","tier":"cache"}`))
	l.reply("probe-0", []byte(`{"id":"probe-0","answer":"Hi"}`))
	l.reply("never-sent", []byte(`{"id":"never-sent","answer":"Hi"}`))

	a := l.summary("a")
	want := tally{sent: 4, answered: 3, repeated: 2, queued: 1, lateDelivered: 1, lateRepeated: 2,
		errors: map[string]int{"busy": 1}, tiers: map[string]int{"llm": 1, "slm": 1, "cache": 1}}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("phase a: %+v, want %+v", a, want)
	}
	if why := a.failed(); why != "" {
		t.Errorf("phase a fails (%s); byte-identical repeats must pass", why)
	}

	// Phase b: a second reply that differs from the first (the device
	// acted on "on", then hears "off"), a late answer that changes, one
	// lost request, one the client saw fail, and a queued one whose late
	// answer never comes.
	l.reply("mqtt-5", []byte(`{"id":"mqtt-5","answer":"on","tier":"slm"}`))
	l.reply("mqtt-5", []byte(`{"id":"mqtt-5","answer":"off","tier":"slm"}`))
	l.reply("mqtt-5", []byte(`{"id":"mqtt-5","answer":"on","tier":"slm"}`))
	l.reply("mqtt-6", []byte(`{"id":"mqtt-6","answer":"local","tier":"llm","queued":true}`))
	l.reply("mqtt-6", []byte(`{"id":"mqtt-6","answer":"cloud","tier":"cloud","late":true}`))
	l.reply("mqtt-6", []byte(`{"id":"mqtt-6","answer":"cloud, again","tier":"cloud","late":true}`))
	l.clientError("socket-7", "client:connection_lost")
	l.reply("mqtt-8", []byte(`{"id":"mqtt-8","answer":"local","tier":"llm","queued":true}`))
	l.sent("mqtt-9", "b", "mqtt", "k") // sent, never answered

	b := l.summary("b")
	want = tally{sent: 5, answered: 3, lost: 1, repeated: 1, conflicting: 1, queued: 2, lateDelivered: 1,
		lateMissing: 1, lateConflicting: 1,
		errors: map[string]int{"client:connection_lost": 1}, tiers: map[string]int{"slm": 1, "llm": 2}}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("phase b: %+v, want %+v", b, want)
	}
	wantWhy := "1 lost, 1 with a reply unlike their first, 1 queued without a late answer, 1 with a late answer unlike their first"
	if why := b.failed(); why != wantWhy {
		t.Errorf("phase b fails with %q, want %q", why, wantWhy)
	}

	if total := l.summary(""); total.repeated != 3 || total.lateRepeated != 2 || total.conflicting != 1 || total.sent != 9 {
		t.Errorf("total %+v", total)
	}
	rep := l.report()
	for _, s := range []string{
		"lost: 1, conflicting replies: 1, late answers missing: 1, conflicting late answers: 1 (each must be 0)",
		"repeated: 3 replies, 2 late answers (at-least-once redeliveries",
		"replies for ids never sent: 1",
		"error reply: mqtt-3 phase=a kind=k code=busy",
	} {
		if !strings.Contains(rep, s) {
			t.Errorf("report lacks %q:\n%s", s, rep)
		}
	}
	if l.strays != 1 || len(l.probes) != 1 {
		t.Errorf("strays %d, probes %d; want 1 and 1", l.strays, len(l.probes))
	}
}
