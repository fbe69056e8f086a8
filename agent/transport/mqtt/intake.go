package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
)

// onMessage runs in paho's router goroutine. It hands the message to the
// workers' queue and, while the queue is full, waits for room: paho reads
// nothing more from the broker meanwhile, so the backlog stays at the
// broker, unacknowledged, where it is safe. Only a request that waited
// BusyAfter gets a busy reply; none is acknowledged without a reply.
func (tr *Transport) onMessage(_ paho.Client, m paho.Message) {
	if tr.stopping.Load() {
		// Not acknowledged: the broker delivers it again next session.
		return
	}
	if !tr.t.isQuery(m.Topic()) || m.Retained() {
		// A retained request would be answered again at every subscribe.
		m.Ack()
		tr.warnLimited("ignored a message that is not a live request", "topic", m.Topic(), "retained", m.Retained())
		return
	}
	tr.received.Add(1)
	select {
	case tr.queue <- m:
		return
	default:
	}
	wait := time.NewTimer(tr.o.BusyAfter)
	defer wait.Stop()
	select {
	case tr.queue <- m:
		return
	case <-tr.halt:
		return // left for the next session
	case <-wait.C:
	}
	select {
	case tr.rejects <- m:
	case <-tr.halt:
	}
}

// work answers queued requests until stop is closed.
func (tr *Transport) work(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		select {
		case <-stop:
			return
		case m := <-tr.queue:
			if tr.stopping.Load() {
				// Taken as shutdown began: left unacknowledged, like
				// the rest of the queue, for the next session.
				return
			}
			tr.process(m)
		}
	}
}

// rejectLoop answers the requests that found the worker queue full.
func (tr *Transport) rejectLoop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case m := <-tr.rejects:
			tr.refuseBusy(m)
		}
	}
}

// ackLoop acknowledges request messages once their reply is confirmed by
// the broker. A reply that could not be handed over (paho gives up on a
// write after WriteTimeout when hedge is starved) is published again; one
// that still fails is left unacknowledged, so the broker delivers the
// request again after the next reconnect and the stored reply goes out.
func (tr *Transport) ackLoop() {
	for p := range tr.acks {
		if p.tok != nil && !tr.confirmed(p) {
			continue
		}
		for _, m := range p.msgs {
			m.Ack()
		}
	}
}

// replyAttempts bounds how often one reply is published, and
// replyConfirmWait how long one attempt waits for the broker's PUBACK: a
// token can stay open for a whole reconnect, and the ack loop must not
// stall behind it (paho's write timeout is 10 s).
const (
	replyAttempts    = 3
	replyConfirmWait = 15 * time.Second
)

func (tr *Transport) confirmed(p pendingAck) bool {
	tok := p.tok
	for attempt := 1; ; attempt++ {
		err := waitToken(tok, replyConfirmWait)
		if err == nil {
			return true
		}
		if attempt == replyAttempts || tr.stopping.Load() || !tr.client.IsConnected() {
			tr.warnLimited("reply not confirmed by the broker; the request stays unacknowledged", "err", err, "attempts", attempt)
			return false
		}
		tok = tr.client.Publish(p.topic, tr.o.QoS, false, p.reply)
	}
}

// errNotConfirmed is a publish the broker did not confirm in time.
var errNotConfirmed = errors.New("no PUBACK in time")

// waitToken waits up to d for tok and returns its error.
func waitToken(tok paho.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errNotConfirmed
	}
}

// request is a decoded request message.
type request struct {
	q agent.Query
	// generated is set when hedge made the id up: such a request cannot be
	// recognised when it comes again.
	generated bool
	// err is the decoding or reply_to problem to answer with.
	err *agent.Error
}

// decode reads a request that came on topic and resolves its reply topic
// and caller. q.ReplyTo is "" when no topic can be derived to answer on;
// the reason is in err.
func (tr *Transport) decode(topic string, payload []byte) request {
	q, derr := agent.DecodeRequest(payload, tr.o.MaxRequestBytes)
	if derr != nil && len(payload) <= tr.o.MaxRequestBytes {
		q.ReplyTo = peekReplyTo(payload)
	}
	r := request{q: q, err: derr}
	if r.q.ID == "" {
		r.q.ID = newID()
		r.generated = true
	}
	reply, terr := tr.replyTopic(r.q)
	r.q.ReplyTo = reply
	if r.err == nil {
		r.err = terr
	}
	r.q.Transport = "mqtt"
	r.q.Caller = tr.t.caller(topic, reply, r.q.ID)
	return r
}

// replyTopic is where q's reply goes: its reply_to when acceptable, else
// the default reply topic of its id; "" when neither can be used.
func (tr *Transport) replyTopic(q agent.Query) (string, *agent.Error) {
	def := ""
	idWhy := idLevelProblem(q.ID)
	if idWhy == "" {
		def = tr.t.defaultReply(q.ID)
	}
	if q.ReplyTo == "" {
		if def == "" {
			return "", agent.Errorf(agent.CodeBadRequest, "id %s, so it cannot name a reply topic; give a reply_to", idWhy)
		}
		return def, nil
	}
	if err := tr.CheckReplyTo(q.ReplyTo); err != nil {
		return def, agent.Errorf(agent.CodeBadRequest, "%v", err)
	}
	return q.ReplyTo, nil
}

// replyToProblem says why a reply must not be published to a client's
// reply_to; "" when it may. Besides the rules of topics.replyToProblem, a
// reply never goes to a topic of mqtt.actions.allow: those topics command
// devices (lights, locks), and a client that may only ask hedge must not
// make hedge write there for it.
func (tr *Transport) replyToProblem(topic string) string {
	if why := tr.t.replyToProblem(topic); why != "" {
		return why
	}
	if tr.allowed(topic) {
		return "is an action topic (mqtt.actions.allow); replies never go to one"
	}
	return ""
}

// CheckReplyTo returns an error when replies to topic would be refused, by
// the rules MQTT requests' reply_to follow (docs/mqtt.md); its text is the
// MQTT transport's bad_request reply, which is made from it. Wire it as
// agent.Options.CheckReplyTo, so that a reply_to that comes on another
// transport (the socket) is refused at once, not when its late answer is
// due.
func (tr *Transport) CheckReplyTo(topic string) error {
	if why := tr.replyToProblem(topic); why != "" {
		return errors.New("reply_to " + why)
	}
	return nil
}

func (tr *Transport) process(m paho.Message) {
	r := tr.decode(m.Topic(), m.Payload())
	if tr.answeredBad(r, m) {
		return
	}
	if r.generated {
		tr.compute(r.q, m, "")
		return
	}
	key := dedupKey(r.q.ReplyTo, r.q.ID)
	c, stored := tr.reps.begin(tr.base, key, m)
	switch c {
	case claimJoined:
		tr.dups.Add(1)
		return
	case claimRecent:
		tr.dups.Add(1)
		tr.sendBytes(r.q.ReplyTo, stored, []paho.Message{m})
		return
	case claimStored:
		tr.dups.Add(1)
		msgs := append([]paho.Message{m}, tr.reps.finishStored(key)...)
		tr.sendBytes(r.q.ReplyTo, stored, msgs)
		return
	}
	tr.compute(r.q, m, key)
}

// compute answers q with the handler. key is its dedup key ("" for a
// generated id).
func (tr *Transport) compute(q agent.Query, m paho.Message, key string) {
	var emit func(string)
	if q.Stream {
		seq := 0
		emit = func(tok string) {
			seq++
			b, err := json.Marshal(agent.Chunk{ID: q.ID, Seq: seq, Delta: tok})
			if err != nil {
				return
			}
			// Chunks go in order on the one connection; the final reply
			// follows them on the same topic.
			tr.client.Publish(q.ReplyTo, tr.o.QoS, false, b)
		}
	}
	ans := tr.handle(q, emit)
	ans.ID = q.ID
	// Serve's ctx ends before the agent starts refusing work, so a
	// shutting_down reply seen here is always of this shutdown.
	if ans.Error != nil && ans.Error.Code == agent.CodeShuttingDown && (tr.stopping.Load() || tr.serving.Err() != nil) {
		// hedge is stopping: leave the request at the broker, which
		// delivers it again to the next run, rather than answer "retry".
		if key != "" {
			tr.reps.finish(key, nil)
		}
		return
	}
	tr.answered.Add(1)
	tr.noteAnswer(ans)
	b, err := marshalAnswer(ans)
	if err != nil {
		b, _ = marshalAnswer(agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeInternal, "reply could not be encoded")))
	}
	tok := tr.client.Publish(q.ReplyTo, tr.o.QoS, false, b)
	p := pendingAck{tok: tok, topic: q.ReplyTo, reply: b, msgs: []paho.Message{m}}
	if key != "" {
		var keep []byte
		if storable(ans) {
			keep = b
		}
		p.msgs = append(p.msgs, tr.reps.finish(key, keep)...)
	}
	tr.acks <- p
}

// handle runs the handler, turning a panic into an internal error reply:
// a request that panics is answered and acknowledged like any other, so
// the broker does not deliver it again at every start.
func (tr *Transport) handle(q agent.Query, emit func(string)) (a agent.Answer) {
	defer func() {
		if r := recover(); r != nil {
			tr.panics.Add(1)
			tr.log.Error("request handler panicked", "id", q.ID, "panic", r, "stack", string(debug.Stack()))
			a = agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeInternal, "hedge failed on this request"))
		}
	}()
	return tr.h.Handle(tr.base, q, emit)
}

// answeredBad takes care of a request that cannot be handled: one with no
// reply topic is dropped (acknowledged, counted), a malformed one gets its
// error reply. It reports whether r was such a request.
func (tr *Transport) answeredBad(r request, m paho.Message) bool {
	if r.q.ReplyTo == "" {
		tr.unanswered.Add(1)
		tr.warnLimited("request dropped: no reply topic can be derived", "why", r.err.Message)
		tr.acks <- pendingAck{msgs: []paho.Message{m}}
		return true
	}
	if r.err != nil {
		tr.malformed.Add(1)
		tr.send(r.q.ReplyTo, agent.ErrorAnswer(r.q.ID, r.err), m)
		return true
	}
	return false
}

// refuseBusy answers a request that waited BusyAfter for room in the queue.
// A request already answered gets its stored reply instead.
func (tr *Transport) refuseBusy(m paho.Message) {
	r := tr.decode(m.Topic(), m.Payload())
	if tr.answeredBad(r, m) {
		return
	}
	if !r.generated {
		if b, ok := tr.reps.recentReply(dedupKey(r.q.ReplyTo, r.q.ID)); ok {
			tr.dups.Add(1)
			tr.sendBytes(r.q.ReplyTo, b, []paho.Message{m})
			return
		}
	}
	tr.busy.Add(1)
	tr.send(r.q.ReplyTo, agent.ErrorAnswer(r.q.ID, agent.Errorf(agent.CodeBusy,
		"hedge is busy: no worker was free for %s; retry later", tr.o.BusyAfter)), m)
}

func (tr *Transport) send(topic string, a agent.Answer, m paho.Message) {
	b, err := marshalAnswer(a)
	if err != nil {
		tr.warnLimited("reply could not be encoded", "err", err)
		tr.acks <- pendingAck{msgs: []paho.Message{m}}
		return
	}
	tr.sendBytes(topic, b, []paho.Message{m})
}

func (tr *Transport) sendBytes(topic string, b []byte, msgs []paho.Message) {
	tok := tr.client.Publish(topic, tr.o.QoS, false, b)
	tr.acks <- pendingAck{tok: tok, topic: topic, reply: b, msgs: msgs}
}

// storable reports whether a reply is final: a transient error (busy,
// timeout, shutdown, internal) is worth computing again when the request
// comes again.
func storable(a agent.Answer) bool {
	if a.Error == nil {
		return true
	}
	switch a.Error.Code {
	case agent.CodeBadRequest, agent.CodeTooLarge, agent.CodeRefused, agent.CodeNoTier:
		return true
	}
	return false
}

func (tr *Transport) noteAnswer(a agent.Answer) {
	if a.Error != nil {
		return
	}
	tr.sensorMu.Lock()
	tr.lastTier = a.Tier
	tr.replied++
	if a.Tier == agent.TierCloud || a.Queued {
		tr.escalated++
	}
	tr.sensorMu.Unlock()
}

func marshalAnswer(a agent.Answer) ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return b, nil
}

// peekReplyTo returns the reply_to of a request that failed to decode, if
// the payload is a valid UTF-8 JSON object with a string reply_to; else "".
// Invalid UTF-8 is never trusted: decoding would have replaced the bad
// bytes, so the topic would not be the one the client wrote.
func peekReplyTo(data []byte) string {
	if !utf8.Valid(data) {
		return ""
	}
	var probe struct {
		ReplyTo json.RawMessage `json:"reply_to"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(probe.ReplyTo, &s) != nil || !utf8.ValidString(s) {
		return ""
	}
	return s
}

// newID makes an id for a request that has none: 16 hex digits from
// crypto/rand, unique enough never to collide within the reply window.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
