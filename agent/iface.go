package agent

import (
	"context"
	"errors"
	"time"
)

// Intent is a classifier's verdict on one text.
type Intent struct {
	// Name is the most likely intent; "" when the classifier has no intents.
	Name string
	// Confidence is the calibrated probability of Name, in [0, 1].
	Confidence float64
	// Top holds the best candidates, most likely first (at most three).
	Top []Scored
	// Threshold is the classifier's own acceptance threshold for Name
	// (picked at training time); an intent's configured threshold wins.
	Threshold float64
	// Vector is the normalized feature vector of the text, for near-duplicate
	// cache look-ups; nil when the classifier does not expose one.
	Vector []float32
}

// Classifier maps a text to an intent with a calibrated confidence.
// Implementations are safe for concurrent use.
type Classifier interface {
	Classify(ctx context.Context, text string) (Intent, error)
}

// Escalate says when an intent's queries may go to the cloud.
type Escalate string

// The escalation modes of an intent. The empty string means EscalateLowConfidence.
const (
	EscalateNever         Escalate = "never"
	EscalateLowConfidence Escalate = "low_confidence"
	EscalateAlways        Escalate = "always"
)

// IntentSpec is the policy part of an intent's definition.
type IntentSpec struct {
	Name string
	// Threshold overrides the classifier's threshold when > 0.
	Threshold float64
	// CacheTTL overrides the default cache TTL when > 0.
	CacheTTL time.Duration
	// Volatile answers (time, sensor readings) are never cached.
	Volatile bool
	Escalate Escalate
}

// Skills answers known intents on the device: templated answers and actions.
// Implementations are safe for concurrent use.
type Skills interface {
	// Spec returns the policy of intent name; an unknown intent returns
	// ok == false.
	Spec(name string) (spec IntentSpec, ok bool)
	// Respond produces the local answer to q, classified as in.
	Respond(ctx context.Context, q Query, in Intent) (string, error)
}

// Generator produces an answer token by token: the local LLM and the cloud
// bridge both implement it. emit, when not nil, receives each piece of text
// as it is produced; the returned Answer holds the whole text. It returns
// ErrBusy when it cannot take more work now. Implementations are safe for
// concurrent use.
type Generator interface {
	Generate(ctx context.Context, q Query, emit func(token string)) (Answer, error)
}

// ErrBusy is returned by a tier that is at capacity; the caller gets a busy
// error reply and may retry.
var ErrBusy = errors.New("tier is busy")

// CloudState says whether a query may go to the cloud now.
type CloudState int

// The states of the cloud for one query.
const (
	// CloudNone: no cloud is configured.
	CloudNone CloudState = iota
	// CloudReady: the link is up and the budget allows the query.
	CloudReady
	// CloudDown: the link is down (circuit open); escalations are queued.
	CloudDown
	// CloudBudget: the request or token budget is spent.
	CloudBudget
	// CloudPrivate: the text holds an entity whose policy is keep_local.
	CloudPrivate
	// CloudConfig: the cloud refused the query (ErrCloudConfig). The link
	// is up, so nothing is queued. Check never says it; the agent does,
	// once Generate has been refused.
	CloudConfig
)

// ErrCloudConfig is wrapped by a Cloud's Generate error when the cloud
// answered and refused the request for a reason that asking again will not
// mend: a bad key, an unknown model or path, a request its limits refuse.
// Its settings must change; the link itself is up.
var ErrCloudConfig = errors.New("cloud refused the request")

// Cloud is the cloud bridge as the agent sees it. The bridge anonymizes
// inside Generate and Defer, so no caller can skip it. Implementations are
// safe for concurrent use.
type Cloud interface {
	Generator
	// Check reports whether q may go to the cloud now. It never blocks on
	// the network.
	Check(ctx context.Context, q Query) CloudState
	// Defer durably stores q's escalation so that the cloud answer is
	// delivered later to q.ReplyTo with Late set.
	Defer(ctx context.Context, q Query) error
}

// Cache stores answers by key with a time to live. Implementations are safe
// for concurrent use.
type Cache interface {
	// Get returns the live answer stored under key; a miss or an expired
	// entry returns ok == false, not an error.
	Get(ctx context.Context, key string) (a Answer, ok bool, err error)
	// Put stores a under key for ttl.
	Put(ctx context.Context, key string, a Answer, ttl time.Duration) error
}

// SemanticCache finds answers to near-duplicate queries: cached answers are
// indexed by a namespace (the intent, the preference and the model version)
// and the query's feature vector. Implementations are safe for concurrent use.
type SemanticCache interface {
	// PutVector indexes the answer cached under key.
	PutVector(ctx context.Context, key, namespace string, vec []float32) error
	// Near returns the live answer of the namespace whose vector's cosine
	// with vec is the highest and at least minCos; none returns ok == false,
	// not an error.
	Near(ctx context.Context, namespace string, vec []float32, minCos float64) (a Answer, ok bool, err error)
}

// Handler answers queries; the agent implements it for transports.
// emit, when not nil, receives the answer's text as it is produced.
// Handle always returns a reply, errors included.
type Handler interface {
	Handle(ctx context.Context, q Query, emit func(token string)) Answer
}

// Transport takes queries from somewhere and hands them to a Handler.
// Serve blocks until ctx ends, then stops taking new requests, waits for the
// replies of those in flight, and returns nil; any other return is a failure.
// Listeners are opened before Serve (in the transport's constructor), so the
// agent can announce readiness once every transport exists.
type Transport interface {
	Name() string
	Serve(ctx context.Context, h Handler) error
}

// Courier delivers a late answer (a queued cloud escalation's) to the
// reply_to of its query. The MQTT transport implements it. Implementations
// are safe for concurrent use.
type Courier interface {
	Deliver(ctx context.Context, replyTo string, a Answer) error
}

// Publisher performs an intent's action: an MQTT publish. The MQTT transport
// implements it and refuses topics outside its allow-list. Implementations
// are safe for concurrent use.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}
