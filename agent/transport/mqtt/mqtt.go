// Package mqtt is hedge's MQTT transport: it takes queries published on
// <prefix>/<device>/query (or .../query/<caller>, a caller a broker ACL
// can vouch for), answers each on its reply_to (or
// <prefix>/<device>/reply/<id>) at QoS 1, keeps a retained online/offline
// status with a last will, delivers late cloud answers (agent.Courier) and
// performs intent actions (agent.Publisher) within an allow-list. It can
// also run an embedded broker (mochi-mqtt) when no broker is configured.
//
// MQTT 3.1.1 is at-least-once: a request may be delivered twice (QoS 1
// redelivery, a client publishing again). hedge computes each request id
// once and answers every copy with the same stored bytes.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
)

// The sentinel errors of the transport; returned errors wrap them.
var (
	// ErrNotConnected is returned by Deliver and Publish while hedge has no
	// connection to the broker; the caller keeps the message and retries.
	ErrNotConnected = errors.New("not connected to the MQTT broker")
	// ErrNotAllowed is returned by Publish for a topic outside the
	// configured allow-list (mqtt.actions.allow) or inside hedge's own
	// namespace.
	ErrNotAllowed = errors.New("topic is not allowed for actions")
	// ErrBadTopic is returned by Deliver and Publish for a topic that cannot
	// be published to (wildcards, empty levels, $…, NUL, too long).
	ErrBadTopic = errors.New("invalid topic")
)

// Options configures a Transport. Zero values take the defaults noted.
type Options struct {
	Log *slog.Logger
	// Brokers are URLs (tcp://, ssl://, ws://, wss://), tried in order.
	Brokers  []string
	ClientID string
	Username string
	Password string
	// TLS is used for TLS broker URLs; nil uses the system roots.
	TLS *tls.Config

	Prefix string // "hedge"
	Device string // required: the second topic level
	// QoS of replies, status and the subscription: 1 (0 is taken as 1)
	// or 2. At-most-once is not offered: a reply lost in a reconnect would
	// leave its asker without an answer.
	QoS byte
	// CleanSession off (the default) keeps the session at the broker, so
	// requests published while hedge is away wait for it.
	CleanSession   bool
	KeepAlive      time.Duration // 30s
	ConnectTimeout time.Duration // 10s
	ReconnectMax   time.Duration // 30s

	Workers int // requests answered at once; 8
	// Queue is how many requests are taken from the broker ahead of the
	// workers; 16. Past that hedge stops reading, and the broker keeps the
	// backlog (a broker may hand over its whole backlog at once after a
	// restart: mosquitto does, beyond max_inflight_messages). Negative:
	// none are taken ahead.
	Queue int
	// BusyAfter is how long a request may wait for room in the queue
	// before it gets a busy reply; 5s. Keep it under paho's ping timeout
	// (10s): nothing else is read from the broker while a request waits.
	BusyAfter time.Duration
	// MaxRequestBytes bounds a request payload; 0 means
	// agent.MaxRequestBytes(16 KiB).
	MaxRequestBytes int

	// Allow lists the topic filters intent actions may publish to.
	Allow []string

	// Replies is the durable reply window (agent/store). Required.
	Replies ReplyStore
	// RecentReplies is how many replies are kept in memory for duplicates
	// (10000).
	RecentReplies int

	// Discovery, when set, publishes Home Assistant discovery and sensors.
	Discovery *Discovery
}

// Stats counts what the transport saw since it started.
type Stats struct {
	Received   int64 // request messages taken from the broker
	Answered   int64 // requests computed and answered
	Duplicates int64 // requests answered from a stored reply or joined to one in flight
	Busy       int64 // busy replies (queue full)
	Malformed  int64 // error replies to requests that could not be decoded or had a bad reply_to
	Unanswered int64 // requests with no reply topic to answer on (counted, logged)
	StoreLag   int64 // replies kept in memory only because the store was behind
	Panics     int64 // requests whose handling panicked (answered internal)
}

// Counters returns s by name, for metrics (telemetry.CountMQTT).
func (s Stats) Counters() map[string]int64 {
	return map[string]int64{
		"received": s.Received, "answered": s.Answered, "duplicates": s.Duplicates, "busy": s.Busy,
		"malformed": s.Malformed, "unanswered": s.Unanswered, "store_lag": s.StoreLag, "panics": s.Panics,
	}
}

// Transport is the MQTT transport. It implements agent.Transport,
// agent.Courier and agent.Publisher and is safe for concurrent use.
type Transport struct {
	o      Options
	log    *slog.Logger
	t      topics
	client paho.Client
	reps   *replies

	h        agent.Handler
	queue    chan paho.Message
	rejects  chan paho.Message
	stopping atomic.Bool
	// halt is closed when shutdown begins, releasing a request that waits
	// for room in the queue (it stays unacknowledged).
	halt   chan struct{}
	served atomic.Bool
	acks   chan pendingAck
	// base is the context of request handling: not cancelled by Serve's
	// ctx, so in-flight requests finish during shutdown.
	base context.Context
	// serving is Serve's ctx: once it is done, hedge is stopping.
	serving context.Context

	received, answered, dups, busy, malformed, unanswered, panics atomic.Int64

	sensors   atomic.Pointer[func(context.Context) Sensors]
	linkHook  atomic.Pointer[func(connected bool)]
	sensorMu  sync.Mutex
	lastTier  agent.Tier
	escalated int64
	replied   int64

	lastLog logLimiter
}

// pendingAck is a request message to acknowledge once its reply is at the
// broker: acking earlier would lose the request if hedge died before
// answering; the broker redelivers unacknowledged messages.
type pendingAck struct {
	tok   paho.Token // nil: ack at once
	topic string     // where the reply went, to publish it again
	reply []byte
	msgs  []paho.Message
}

// New checks the options and prepares the client. It does not connect:
// Serve does, and keeps reconnecting, so a broker that is down at boot does
// not keep hedge's other transports from starting.
func New(o Options) (*Transport, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Prefix == "" {
		o.Prefix = "hedge"
	}
	if o.Device == "" {
		return nil, errors.New("mqtt: device is empty")
	}
	if len(o.Brokers) == 0 {
		return nil, errors.New("mqtt: no broker URL")
	}
	if o.Replies == nil {
		return nil, errors.New("mqtt: no reply store")
	}
	if o.QoS == 0 {
		o.QoS = 1
	}
	if o.QoS > 2 {
		return nil, fmt.Errorf("mqtt: qos %d: must be 0, 1 or 2", o.QoS)
	}
	if o.ClientID == "" {
		o.ClientID = "hedge-" + o.Device
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 30 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Queue < 0 {
		o.Queue = 0
	} else if o.Queue == 0 {
		o.Queue = 16
	}
	if o.BusyAfter <= 0 {
		o.BusyAfter = 5 * time.Second
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = agent.MaxRequestBytes(16 << 10)
	}
	if why := topicNameProblem(o.Prefix); why != "" {
		return nil, fmt.Errorf("mqtt: prefix %q %s", o.Prefix, why)
	}
	if why := idLevelProblem(o.Device); why != "" {
		return nil, fmt.Errorf("mqtt: device %q %s", o.Device, why)
	}
	for _, f := range o.Allow {
		if why := config.TopicFilterProblem(f); why != "" {
			return nil, fmt.Errorf("mqtt: action allow-list: %q is not a topic filter: %s", f, why)
		}
	}
	tr := &Transport{
		o:       o,
		log:     o.Log.With("component", "mqtt"),
		t:       newTopics(o.Prefix, o.Device),
		queue:   make(chan paho.Message, o.Queue),
		rejects: make(chan paho.Message, 64),
		halt:    make(chan struct{}),
		acks:    make(chan pendingAck, 4096),
	}
	tr.reps = newReplies(o.Replies, o.RecentReplies, 4096, tr.log)
	copts := paho.NewClientOptions()
	for _, b := range o.Brokers {
		u, err := url.Parse(b)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("mqtt: broker %q is not a URL", b)
		}
		copts.AddBroker(b)
	}
	copts.SetClientID(o.ClientID)
	copts.SetUsername(o.Username)
	copts.SetPassword(o.Password)
	if o.TLS != nil {
		copts.SetTLSConfig(o.TLS)
	}
	copts.SetCleanSession(o.CleanSession)
	copts.SetKeepAlive(o.KeepAlive)
	copts.SetPingTimeout(10 * time.Second)
	copts.SetConnectTimeout(o.ConnectTimeout)
	copts.SetWriteTimeout(10 * time.Second)
	copts.SetAutoReconnect(true)
	copts.SetMaxReconnectInterval(o.ReconnectMax)
	copts.SetConnectRetry(false)
	// Requests are acknowledged once answered, not when received.
	copts.SetAutoAckDisabled(true)
	copts.SetOrderMatters(true)
	copts.SetResumeSubs(true)
	copts.SetWill(tr.t.status, "offline", o.QoS, true)
	copts.SetDefaultPublishHandler(tr.onMessage)
	copts.SetOnConnectHandler(tr.onConnect)
	copts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		tr.log.Warn("broker connection lost; reconnecting", "err", err)
		tr.noteLink(false)
	})
	copts.SetReconnectingHandler(func(_ paho.Client, _ *paho.ClientOptions) {
		tr.log.Debug("reconnecting to broker")
	})
	tr.client = paho.NewClient(copts)
	return tr, nil
}

// Name is "mqtt".
func (tr *Transport) Name() string { return "mqtt" }

// QueryTopic is the topic requests are published on.
func (tr *Transport) QueryTopic() string { return tr.t.query }

// StatusTopic is the retained online/offline topic.
func (tr *Transport) StatusTopic() string { return tr.t.status }

// ReplyTopic is the reply topic of a request id without reply_to.
func (tr *Transport) ReplyTopic(id string) string { return tr.t.defaultReply(id) }

// Stats returns the counters.
func (tr *Transport) Stats() Stats {
	return Stats{
		Received:   tr.received.Load(),
		Answered:   tr.answered.Load(),
		Duplicates: tr.dups.Load(),
		Busy:       tr.busy.Load(),
		Malformed:  tr.malformed.Load(),
		Unanswered: tr.unanswered.Load(),
		StoreLag:   tr.reps.dropped.Load(),
		Panics:     tr.panics.Load(),
	}
}

// Serve connects (retrying with backoff until ctx ends), answers requests
// with h, and on ctx's end stops taking requests, finishes those in
// flight, publishes offline and disconnects. Requests still queued are left
// unacknowledged: the broker delivers them again in the next session.
func (tr *Transport) Serve(ctx context.Context, h agent.Handler) error {
	if !tr.served.CompareAndSwap(false, true) {
		return errors.New("mqtt: Serve called twice")
	}
	tr.h = h
	tr.base = context.WithoutCancel(ctx)
	tr.serving = ctx
	tr.reps.start()

	var workers sync.WaitGroup
	stopWorkers := make(chan struct{})
	for range tr.o.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			tr.work(stopWorkers)
		}()
	}
	workers.Add(1)
	go func() {
		defer workers.Done()
		tr.rejectLoop(stopWorkers)
	}()
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		tr.ackLoop()
	}()
	var aux sync.WaitGroup
	auxCtx, auxCancel := context.WithCancel(ctx)
	aux.Add(1)
	go func() {
		defer aux.Done()
		tr.connectLoop(auxCtx)
	}()
	if tr.o.Discovery != nil {
		aux.Add(1)
		go func() {
			defer aux.Done()
			tr.sensorLoop(auxCtx)
		}()
	}

	<-ctx.Done()
	// Workers stop taking queued requests first: the connect and sensor
	// loops may take a moment to end, and a request taken meanwhile would
	// be computed after shutdown began.
	tr.stopping.Store(true)
	close(tr.halt)
	close(stopWorkers)
	auxCancel()
	aux.Wait()
	workers.Wait()
	left := len(tr.queue)
	if left > 0 {
		tr.log.Info("left queued requests to the broker for the next start", "requests", left)
	}
	close(tr.acks)
	select {
	case <-ackDone:
	case <-time.After(5 * time.Second):
		tr.log.Warn("replies not confirmed by the broker before shutdown")
	}
	if tr.client.IsConnectionOpen() {
		tok := tr.client.Publish(tr.t.status, tr.o.QoS, true, "offline")
		tok.WaitTimeout(2 * time.Second)
	}
	tr.client.Disconnect(250)
	tr.reps.close(3 * time.Second)
	st := tr.Stats()
	tr.log.Info("mqtt transport stopped", "received", st.Received, "answered", st.Answered, "duplicates", st.Duplicates,
		"busy", st.Busy, "malformed", st.Malformed, "unanswered", st.Unanswered, "store_lag", st.StoreLag)
	return nil
}

// connectLoop makes the first connection; paho reconnects after that.
func (tr *Transport) connectLoop(ctx context.Context) {
	delay := 250 * time.Millisecond
	for {
		tok := tr.client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return
		}
		err := tok.Error()
		if err == nil {
			return
		}
		tr.log.Warn("broker connection failed; retrying", "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(delay*2, tr.o.ReconnectMax)
	}
}

// onConnect runs in its own goroutine after every (re)connection.
func (tr *Transport) onConnect(c paho.Client) {
	tr.log.Info("connected to broker", "topic", tr.t.query)
	// A nil callback routes messages to the default handler, which also
	// gets the messages of the persistent session that arrive before this
	// subscription is confirmed.
	filters := map[string]byte{tr.t.query: tr.o.QoS, tr.t.callerQueries(): tr.o.QoS}
	if tok := c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(tr.o.ConnectTimeout) || tok.Error() != nil {
		tr.log.Error("subscribe failed", "topic", tr.t.query, "err", tok.Error())
	}
	c.Publish(tr.t.status, tr.o.QoS, true, "online")
	if tr.o.Discovery != nil {
		tr.publishDiscovery(c)
	}
	tr.noteLink(true)
}

// SetLinkHook registers f to hear whether hedge is connected to the broker
// and subscribed (readiness); call it before Serve. f must not block.
func (tr *Transport) SetLinkHook(f func(connected bool)) { tr.linkHook.Store(&f) }

func (tr *Transport) noteLink(connected bool) {
	if f := tr.linkHook.Load(); f != nil {
		(*f)(connected)
	}
}

// Deliver publishes a late answer to replyTo. It implements agent.Courier.
func (tr *Transport) Deliver(ctx context.Context, replyTo string, a agent.Answer) error {
	if why := tr.replyToProblem(replyTo); why != "" {
		return fmt.Errorf("deliver late answer %s: reply_to %w: %s", a.ID, ErrBadTopic, why)
	}
	b, err := marshalAnswer(a)
	if err != nil {
		return fmt.Errorf("deliver late answer %s: %w", a.ID, err)
	}
	if err := tr.publishWait(ctx, replyTo, tr.o.QoS, false, b); err != nil {
		return fmt.Errorf("deliver late answer %s: %w", a.ID, err)
	}
	return nil
}

// Publish performs an intent action. It implements agent.Publisher: topics
// outside the allow-list, hedge's own topics and malformed topics are
// refused.
func (tr *Transport) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if why := topicNameProblem(topic); why != "" {
		return fmt.Errorf("publish to %q: %w: %s", topic, ErrBadTopic, why)
	}
	if why := tr.t.ownProblem(topic); why != "" {
		return fmt.Errorf("publish to %q: %w: it %s", topic, ErrNotAllowed, why)
	}
	if !tr.allowed(topic) {
		allow := "nothing (the list is empty)"
		if len(tr.o.Allow) > 0 {
			allow = strings.Join(tr.o.Allow, ", ")
		}
		return fmt.Errorf("publish to %q: %w: mqtt.actions.allow permits %s", topic, ErrNotAllowed, allow)
	}
	if qos > 2 {
		return fmt.Errorf("publish to %q: qos %d: must be 0, 1 or 2", topic, qos)
	}
	if err := tr.publishWait(ctx, topic, qos, retain, payload); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

func (tr *Transport) allowed(topic string) bool {
	for _, f := range tr.o.Allow {
		if filterMatches(f, topic) {
			return true
		}
	}
	return false
}

func (tr *Transport) publishWait(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	if !tr.client.IsConnectionOpen() {
		return ErrNotConnected
	}
	tok := tr.client.Publish(topic, qos, retain, payload)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// warnLimited logs at most one warning a minute for a loop that could
// repeat it for every message; the others go to Debug.
func (tr *Transport) warnLimited(msg string, args ...any) {
	if !tr.lastLog.allow() {
		tr.log.Debug(msg, args...)
		return
	}
	tr.log.Warn(msg, args...)
}

// logLimiter lets one warning a minute through, so that a loop failing for
// every message cannot flood the log. The zero value is ready.
type logLimiter struct{ last atomic.Int64 }

// allow reports whether a warning may be logged now.
func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(time.Minute) && l.last.CompareAndSwap(last, now)
}

var (
	_ agent.Transport = (*Transport)(nil)
	_ agent.Courier   = (*Transport)(nil)
	_ agent.Publisher = (*Transport)(nil)
)
