package cloudbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

func TestGenerateRestoresPlaceholders(t *testing.T) {
	f := newFakeCloud(t)
	b, _ := testBridge(t, f.URL(), nil, nil)
	ctx := context.Background()
	q := agent.Query{ID: "1", Text: "Write to maria.schmidt+home@example.org and tell Jonas to call +49 30 1234567", Prefer: agent.PreferCloud}
	if st := b.Check(ctx, q); st != agent.CloudReady {
		t.Fatalf("Check = %v, want CloudReady", st)
	}
	ans, err := b.Generate(ctx, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "You asked: " + q.Text; ans.Answer != want {
		t.Errorf("answer %q, want %q", ans.Answer, want)
	}
	if ans.Tier != agent.TierCloud || ans.Model != "fake-model" || !ans.Anonymized {
		t.Errorf("tier %q model %q anonymized %v", ans.Tier, ans.Model, ans.Anonymized)
	}
	if want := map[string]int{"email": 1, "person": 1, "phone": 1}; !reflect.DeepEqual(ans.Entities, want) {
		t.Errorf("entities %v, want %v", ans.Entities, want)
	}
	bodies := f.Bodies()
	if len(bodies) != 1 {
		t.Fatalf("%d requests", len(bodies))
	}
	var req chatRequest
	if err := json.Unmarshal([]byte(bodies[0]), &req); err != nil {
		t.Fatal(err)
	}
	if want := "Write to [EMAIL_1] and tell [PERSON_1] to call [PHONE_1]"; req.user() != want {
		t.Errorf("sent %q, want %q", req.user(), want)
	}
	if req.Model != "fake-model" || req.MaxTokens != 100 || req.Messages[0].Role != "system" {
		t.Errorf("request %+v", req)
	}
	if f.auth[0] != "Bearer "+testKey {
		t.Errorf("Authorization %q", f.auth[0])
	}
	// A query's own max_tokens lowers the cap, never raises it.
	_, _ = b.Generate(ctx, agent.Query{Text: "hi", MaxTokens: 7}, nil)
	_, _ = b.Generate(ctx, agent.Query{Text: "hi", MaxTokens: 7000}, nil)
	for i, want := range []int{7, 100} {
		var r chatRequest
		_ = json.Unmarshal([]byte(f.Bodies()[i+1]), &r)
		if r.MaxTokens != want {
			t.Errorf("max_tokens %d, want %d", r.MaxTokens, want)
		}
	}
	s := b.Stats(ctx)
	if s.Escalations != 3 || s.TokensSpent != 3*42 || s.Entities["email"] != 1 || s.Link != LinkClosed {
		t.Errorf("stats %+v", s)
	}
}

func TestGenerateStreams(t *testing.T) {
	f := newFakeCloud(t)
	b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Stream = true })
	q := agent.Query{ID: "s", Text: "Is Ada Lovelace at ada@example.com or at 192.168.1.20?"}
	var pieces []string
	ans, err := b.Generate(context.Background(), q, func(p string) { pieces = append(pieces, p) })
	if err != nil {
		t.Fatal(err)
	}
	want := "You asked: " + q.Text
	if ans.Answer != want || strings.Join(pieces, "") != want {
		t.Fatalf("answer %q, streamed %q, want %q", ans.Answer, strings.Join(pieces, ""), want)
	}
	if len(pieces) < 5 {
		t.Errorf("only %d pieces: not streamed", len(pieces))
	}
	for _, p := range pieces {
		if strings.Contains(p, "[") {
			t.Errorf("piece %q holds a placeholder fragment", p)
		}
	}
	var req chatRequest
	_ = json.Unmarshal([]byte(f.Bodies()[0]), &req)
	if !req.Stream {
		t.Error("request was not a streaming one")
	}
	if s := b.Stats(context.Background()); s.TokensSpent != 42 {
		t.Errorf("tokens %d, want the 42 of the usage chunk", s.TokensSpent)
	}
}

// TestTruncatedFromFinishReason: finish_reason "length" marks the answer
// truncated, plain and streamed; "stop" does not.
func TestTruncatedFromFinishReason(t *testing.T) {
	f := newFakeCloud(t)
	f.cut = true
	for _, stream := range []bool{false, true} {
		b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Stream = stream })
		var emit func(string)
		if stream {
			emit = func(string) {}
		}
		for _, c := range []struct {
			max       int
			answer    string
			truncated bool
		}{
			{2, "You asked: ", true},
			{3, "You asked: why?", false},
			{0, "You asked: why?", false}, // the bridge's MaxTokens, 100
		} {
			ans, err := b.Generate(context.Background(), agent.Query{Text: "why?", MaxTokens: c.max}, emit)
			if err != nil || ans.Answer != c.answer || ans.Truncated != c.truncated {
				t.Errorf("stream %v max_tokens %d: %q truncated %v, %v; want %q truncated %v",
					stream, c.max, ans.Answer, ans.Truncated, err, c.answer, c.truncated)
			}
		}
	}
}

// TestCorpusNeverReachesServer sends every example of the anonymizer's
// corpus through the bridge, plain, streamed and queued, and asserts on the
// raw request bodies that no value of any kind reached the server.
func TestCorpusNeverReachesServer(t *testing.T) {
	f := newFakeCloud(t)
	c := loadCorpus(t)
	var values []string
	kinds := map[string]bool{}
	var all []string
	for _, e := range c.Examples {
		values = append(values, e.Value)
		kinds[e.Kind] = true
		all = append(all, e.Text)
	}
	for _, k := range anonymize.Kinds() {
		if !kinds[string(k)] {
			t.Errorf("corpus has no example of kind %s", k)
		}
	}
	for _, stream := range []bool{false, true} {
		b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Stream = stream })
		ctx := context.Background()
		texts := append(append([]string{}, all...), strings.Join(all, " "))
		for i, text := range texts {
			var emit func(string)
			if stream {
				emit = func(string) {}
			}
			ans, err := b.Generate(ctx, agent.Query{ID: fmt.Sprint(i), Text: text}, emit)
			if err != nil {
				t.Fatalf("Generate(%q): %v", text, err)
			}
			if ans.Answer != "You asked: "+text {
				t.Errorf("answer %q not restored to %q", ans.Answer, "You asked: "+text)
			}
		}
		// Queued escalations are sent from the outbox's anonymized text.
		f.down.Store(true)
		_, _ = b.Generate(ctx, agent.Query{Text: "trip the breaker"}, nil)
		for i, text := range texts {
			if err := b.Defer(ctx, agent.Query{ID: fmt.Sprint("d", i), Text: text, ReplyTo: "r"}); err != nil {
				t.Fatal(err)
			}
		}
		f.down.Store(false)
		ctx2, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- b.Run(ctx2) }()
		waitFor(t, "the outbox to drain", 20*time.Second, func() bool { return b.Stats(ctx).OutboxDepth == 0 })
		cancel()
		<-done
	}
	bodies := f.Bodies()
	if len(bodies) < 2*len(all) {
		t.Fatalf("only %d requests", len(bodies))
	}
	for _, body := range bodies {
		if v := containsAny(body, values); v != "" {
			t.Errorf("the server received %q in %s", v, body)
		}
		// JSON escaping must not hide a value either: compare the decoded text.
		var req chatRequest
		if json.Unmarshal([]byte(body), &req) == nil {
			if v := containsAny(req.user(), values); v != "" {
				t.Errorf("the server received %q in %q", v, req.user())
			}
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	b, logs := testBridge(t, closedPort(t), nil, nil)
	ctx := context.Background()
	q := agent.Query{Text: "hello"}
	_, err := b.Generate(ctx, q, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want ErrUnavailable: connection refused", err)
	}
	if b.Link() != LinkOpen {
		t.Errorf("link %s after connection refused, want open", b.Link())
	}
	if st := b.Check(ctx, q); st != agent.CloudDown {
		t.Errorf("Check = %v, want CloudDown", st)
	}
	// While open, Generate fails at once without touching the network.
	_, err = b.Generate(ctx, q, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "circuit open") {
		t.Errorf("err = %v, want circuit open", err)
	}
	if strings.Contains(logs.String(), testKey) {
		t.Error("key in logs")
	}
}

func TestBlackHoleTimesOut(t *testing.T) {
	b, _ := testBridge(t, blackHole(t), nil, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	ctx := context.Background()
	_, err := b.Generate(ctx, agent.Query{Text: "hello"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if b.Link() != LinkOpen {
		t.Errorf("link %s after a timeout, want open", b.Link())
	}
	if b.Check(ctx, agent.Query{Text: "x"}) != agent.CloudDown {
		t.Error("Check does not say down")
	}
	// The monitor's probe times out as well and keeps the circuit open.
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- b.Run(ctx2) }()
	waitFor(t, "a failed probe", 10*time.Second, func() bool { return b.Stats(ctx).Failures >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil on cancel", err)
	}
	if b.Link() == LinkClosed {
		t.Error("link closed after probing a black hole")
	}
}

func TestRateLimitedHonoursRetryAfter(t *testing.T) {
	f := newFakeCloud(t)
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
		return true
	})
	b, _ := testBridge(t, f.URL(), nil, nil)
	before := time.Now()
	_, err := b.Generate(context.Background(), agent.Query{Text: "hello"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "retry after 2m0s") {
		t.Fatalf("err = %v", err)
	}
	if b.Link() != LinkOpen {
		t.Fatalf("link %s after 429, want open", b.Link())
	}
	if wait := b.br.retryAt().Sub(before); wait < 120*time.Second {
		t.Errorf("next try in %s, want at least the 120s of Retry-After", wait)
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "30": 30 * time.Second, "Sat, 28 Nov 2026 12:01:00 GMT": time.Minute,
		"Sat, 28 Nov 2026 11:00:00 GMT": 0, "soon": 0, "999999999": 24 * time.Hour,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestServerErrorsOpenAfterThreshold(t *testing.T) {
	f := newFakeCloud(t)
	n := 0
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		n++
		w.WriteHeader(http.StatusInternalServerError)
		if n%2 == 0 {
			fmt.Fprint(w, `<html>upstream broke</html>`) // not JSON
		} else {
			fmt.Fprint(w, `{"error":{"message":"The server had an error","type":"server_error"}}`)
		}
		return true
	})
	b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Failures = 3 })
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		_, err := b.Generate(ctx, agent.Query{Text: "hello"}, nil)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "server error (500)") {
			t.Fatalf("call %d: err = %v", i, err)
		}
		want := LinkClosed
		if i == 3 {
			want = LinkOpen
		}
		if b.Link() != want {
			t.Errorf("after %d 500s the link is %s, want %s", i, b.Link(), want)
		}
	}
	if f.chats.Load() != 3 {
		t.Errorf("%d requests, want 3", f.chats.Load())
	}
}

func TestMalformedJSON(t *testing.T) {
	for name, body := range map[string]string{
		"garbage":   `{"id": "x", "choices": [ {"message": `,
		"html":      `<html>captive portal</html>`,
		"no choice": `{"id":"x","object":"chat.completion","choices":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeCloud(t)
			f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, body)
				return true
			})
			b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Failures = 1 })
			_, err := b.Generate(context.Background(), agent.Query{Text: "hello"}, nil)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "malformed") && !strings.Contains(err.Error(), "no choices") && !strings.Contains(err.Error(), "closed before") {
				t.Errorf("err = %v does not say the reply was malformed", err)
			}
			if b.Link() != LinkOpen {
				t.Errorf("link %s, want open (threshold 1)", b.Link())
			}
		})
	}
}

func TestRejectedKeepsLinkUp(t *testing.T) {
	f := newFakeCloud(t)
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return true
	})
	b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Failures = 1 })
	_, err := b.Generate(context.Background(), agent.Query{Text: "hello"}, nil)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want ErrRejected 401", err)
	}
	if b.Link() != LinkClosed {
		t.Errorf("link %s after a 401, want closed", b.Link())
	}
}

// TestKeyNeverInErrorsOrLogs has the server echo the Authorization header
// back in every way a reply can carry text, and checks every error and
// every log line (at debug level) for the key.
func TestKeyNeverInErrorsOrLogs(t *testing.T) {
	f := newFakeCloud(t)
	for _, tc := range []struct {
		status int
		body   string
	}{
		{400, `{"error":{"message":"bad key %s","type":"invalid_request_error"}}`},
		{401, `not json, your header was %s`},
		{429, `{"error":{"message":"slow down %s"}}`},
		{500, `{"error":{"message":"%s","type":"server_error"}}`},
		{503, `%s`},
		{200, `{"choices": "%s"`},
	} {
		f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
			w.WriteHeader(tc.status)
			fmt.Fprintf(w, tc.body, r.Header.Get("Authorization"))
			return true
		})
		b, logs := testBridge(t, f.URL(), nil, func(o *Options) { o.Failures = 1 })
		for _, stream := range []bool{false, true} {
			b.o.Stream = stream
			b.br.success()
			_, err := b.Generate(context.Background(), agent.Query{Text: "hello"}, func(string) {})
			if err == nil {
				t.Fatalf("status %d: no error", tc.status)
			}
			if strings.Contains(err.Error(), testKey) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), testKey) {
				t.Errorf("status %d: the key is in the error %q", tc.status, err)
			}
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), testKey) {
					t.Errorf("status %d: the key is in a wrapped error", tc.status)
				}
			}
		}
		if strings.Contains(logs.String(), testKey) {
			t.Errorf("status %d: the key is in the logs: %s", tc.status, logs.String())
		}
	}
	// The config's Secret hides the key in every format.
	s := config.Secret(testKey)
	js, _ := json.Marshal(struct{ K config.Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v %+v", s, s, s, s), string(js)} {
		if strings.Contains(out, testKey) {
			t.Errorf("Secret printed as %q", out)
		}
	}
	if s.Reveal() != testKey {
		t.Error("Reveal lost the key")
	}
}

func TestPrivateStaysLocal(t *testing.T) {
	f := newFakeCloud(t)
	b, _ := testBridge(t, f.URL(), nil, func(o *Options) {
		o.Anonymizer = testAnonymizer(t, map[anonymize.Kind]anonymize.Action{anonymize.IBAN: anonymize.KeepLocal})
	})
	ctx := context.Background()
	q := agent.Query{ID: "p", Text: "send it to DE89 3704 0044 0532 0130 00", ReplyTo: "r"}
	if st := b.Check(ctx, q); st != agent.CloudPrivate {
		t.Errorf("Check = %v, want CloudPrivate", st)
	}
	if _, err := b.Generate(ctx, q, nil); !errors.Is(err, ErrPrivate) || !strings.Contains(err.Error(), "iban") {
		t.Errorf("Generate err = %v, want ErrPrivate naming iban", err)
	}
	if err := b.Defer(ctx, q); !errors.Is(err, ErrPrivate) {
		t.Errorf("Defer err = %v, want ErrPrivate", err)
	}
	if strings.Contains(fmt.Sprint(b.Generate(ctx, q, nil)), "DE89") {
		t.Error("an error quotes the private value")
	}
	if f.chats.Load() != 0 {
		t.Errorf("%d requests reached the server", f.chats.Load())
	}
	// Other texts still go.
	if st := b.Check(ctx, agent.Query{Text: "mail x@example.com"}); st != agent.CloudReady {
		t.Errorf("Check = %v for a replaceable entity", st)
	}
}

func TestBudget(t *testing.T) {
	f := newFakeCloud(t)
	// An hour before a UTC midnight, on the one clock that the bridge and
	// the store share: the budget's counters expire by the store's clock.
	clock := time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC)
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: 5 * time.Second, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, _ := testBridge(t, f.URL(), st, func(o *Options) {
		o.Budget = Budget{RequestsPerDay: 3, CallerRequestsPerDay: 2, TokensPerDay: 1000, CallerTokensPerDay: 0}
	})
	ctx := context.Background()
	ask := func(caller string) error {
		q := agent.Query{Text: "hello", Caller: caller}
		if st := b.Check(ctx, q); st != agent.CloudReady {
			_, err := b.Generate(ctx, q, nil)
			if !errors.Is(err, ErrBudget) {
				t.Errorf("Check = %v but Generate err = %v", st, err)
			}
			return fmt.Errorf("check: %v", st)
		}
		_, err := b.Generate(ctx, q, nil)
		return err
	}
	// Caller A may ask twice, B once more; then the device's 3 are spent.
	for i, tc := range []struct {
		caller string
		ok     bool
	}{{"a", true}, {"a", true}, {"a", false}, {"b", true}, {"b", false}, {"c", false}} {
		err := ask(tc.caller)
		if (err == nil) != tc.ok {
			t.Errorf("request %d of %s: err = %v, want ok %v", i, tc.caller, err, tc.ok)
		}
	}
	if st := b.Check(ctx, agent.Query{Text: "x", Caller: "c"}); st != agent.CloudBudget {
		t.Errorf("Check = %v, want CloudBudget", st)
	}
	if n := f.chats.Load(); n != 3 {
		t.Errorf("%d requests reached the server, want 3", n)
	}
	// A new UTC day has a new budget.
	clock = clock.Add(2 * time.Hour)
	if err := ask("a"); err != nil {
		t.Errorf("next day: %v", err)
	}
	// Tokens: 42 per answer against 100 a day.
	b2, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Budget = Budget{TokensPerDay: 100} })
	var errs []error
	for range 4 {
		_, err := b2.Generate(ctx, agent.Query{Text: "hello"}, nil)
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || errs[2] != nil || !errors.Is(errs[3], ErrBudget) {
		t.Errorf("token budget: %v (want 3 answers of 42 tokens, then ErrBudget)", errs)
	}
}

func TestConfigKindsMatchAnonymizer(t *testing.T) {
	var kinds []string
	for _, k := range anonymize.Kinds() {
		kinds = append(kinds, string(k))
	}
	if !reflect.DeepEqual(kinds, config.AnonymizeKinds) {
		t.Errorf("config.AnonymizeKinds = %v, anonymize.Kinds() = %v", config.AnonymizeKinds, kinds)
	}
}
