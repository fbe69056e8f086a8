package cloudbridge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
)

// refusalLine is the log message of a refused request.
const refusalLine = "cloud refused the request; its settings need fixing"

// maskedKey is the key as OpenAI quotes it when it refuses it.
var maskedKey = testKey[:8] + strings.Repeat("*", 24) + testKey[len(testKey)-4:]

// failureCase is one way a cloud call can end, and what hedge makes of it.
type failureCase struct {
	name   string
	status int    // what the fake cloud answers; 0: see url
	url    string // "refused" or "timeout" when status is 0
	queued bool   // the escalation is stored for a late answer
	link   LinkState
	// degraded is the local answer's mark; code the error of a reply when
	// no local tier can answer.
	degraded string
	code     agent.ErrorCode
}

func failureCases() []failureCase {
	answered := failureCase{link: LinkClosed}
	refused := failureCase{link: LinkClosed, degraded: "cloud_config", code: agent.CodeCloudConfig}
	down := failureCase{queued: true, link: LinkOpen, degraded: "offline", code: agent.CodeNoTier}
	var cases []failureCase
	add := func(c failureCase, name string, status int, url string) {
		c.name, c.status, c.url = name, status, url
		cases = append(cases, c)
	}
	add(answered, "200", 200, "")
	for _, s := range []int{400, 401, 403, 404, 413, 422} {
		add(refused, fmt.Sprint(s), s, "")
	}
	for _, s := range []int{408, 409, 429, 500, 502, 503, 504} {
		add(down, fmt.Sprint(s), s, "")
	}
	add(down, "connection refused", 0, "refused")
	add(down, "timeout", 0, "timeout")
	return cases
}

// failingCloud returns the base URL of a cloud that ends calls as c says.
func failingCloud(t *testing.T, c failureCase) (string, *fakeCloud) {
	switch c.url {
	case "refused":
		return closedPort(t), nil
	case "timeout":
		return blackHole(t), nil
	}
	f := newFakeCloud(t)
	if c.status != 200 {
		f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
			// The body quotes the key, whole and masked, as a
			// careless server or OpenAI's refusal would.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s (%s)","type":"invalid_request_error"}}`,
				maskedKey, r.Header.Get("Authorization"))
			return true
		})
	}
	return f.URL(), f
}

// TestFailuresToldApart runs every status and network failure through the
// agent and the bridge against the loopback cloud: only network and server
// trouble counts as the link being down (queued, breaker open); a refusal
// is a configuration error (answered locally as cloud_config or the
// cloud_config error, nothing queued, the link stays closed, logged once
// per cause), and the key never reaches a log or a reply.
func TestFailuresToldApart(t *testing.T) {
	for _, c := range failureCases() {
		t.Run(c.name, func(t *testing.T) {
			url, f := failingCloud(t, c)
			logs := &syncBuffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b, _ := testBridge(t, url, nil, func(o *Options) {
				// A minute's backoff keeps an open circuit open (not
				// half-open) for the whole case.
				o.Failures, o.Log = 1, log
				o.BackoffMin, o.BackoffMax = time.Minute, time.Minute
				if c.url == "timeout" {
					o.Timeout = 300 * time.Millisecond
				}
			})
			ctx := context.Background()
			local := agent.New(agent.Options{LLM: &slowGenerator{}, Cloud: b, Log: log})
			ans := local.Handle(ctx, agent.Query{ID: "1", Text: "why is the sky blue", ReplyTo: "r/1", Prefer: agent.PreferCloud}, nil)
			checkLocalReply(t, c, ans)
			if b.Link() != c.link {
				t.Errorf("link %s, want %s", b.Link(), c.link)
			}
			if d := b.Stats(ctx).OutboxDepth; (d == 1) != c.queued || d > 1 {
				t.Errorf("outbox depth %d, want queued %v", d, c.queued)
			}
			cloudOnly := agent.New(agent.Options{Cloud: b, Log: log})
			ans = cloudOnly.Handle(ctx, agent.Query{ID: "2", Text: "and why red at dusk", ReplyTo: "r/2", Prefer: agent.PreferCloud}, nil)
			if code := errCode(ans); code != c.code {
				t.Errorf("without a local tier: error %q (%+v), want %q", code, ans.Error, c.code)
			}
			if c.code == agent.CodeCloudConfig && f.chats.Load() != 2 {
				t.Errorf("%d requests reached the cloud, want 2: a refusal must not stop the next one", f.chats.Load())
			}
			want := 0
			if c.code == agent.CodeCloudConfig {
				want = 1
			}
			if n := strings.Count(logs.String(), refusalLine); n != want {
				t.Errorf("%d refusal lines for two refusals, want %d:\n%s", n, want, logs.String())
			}
			for _, secret := range []string{testKey, maskedKey, testKey[len(testKey)-4:]} {
				if strings.Contains(logs.String(), secret) || ans.Error != nil && strings.Contains(ans.Error.Message, secret) {
					t.Errorf("%q is in the logs or the reply:\n%s\n%+v", secret, logs.String(), ans.Error)
				}
			}
		})
	}
}

// checkLocalReply checks the reply of an agent with a local LLM.
func checkLocalReply(t *testing.T, c failureCase, ans agent.Answer) {
	t.Helper()
	wantTier := agent.TierLLM
	if c.status == 200 {
		wantTier = agent.TierCloud
	}
	if ans.Error != nil || ans.Tier != wantTier || ans.Queued != c.queued || ans.Degraded != c.degraded {
		t.Errorf("with a local tier: %+v, want tier %s, queued %v, degraded %q", ans, wantTier, c.queued, c.degraded)
	}
}

func errCode(a agent.Answer) agent.ErrorCode {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

// TestRefusalNeverQuotesPartOfKey: the server's message is cut to 200
// bytes; a key it quotes across the cut must not leave its first half in
// the error.
func TestRefusalNeverQuotesPartOfKey(t *testing.T) {
	f := newFakeCloud(t)
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"%s%s"}}`, strings.Repeat("x", 186), testKey)
		return true
	})
	b, logs := testBridge(t, f.URL(), nil, nil)
	_, err := b.Generate(context.Background(), agent.Query{Text: "hello"}, nil)
	if err == nil || !strings.Contains(err.Error(), "(401)") {
		t.Fatalf("err = %v, want a 401 refusal", err)
	}
	if part := testKey[:12]; strings.Contains(err.Error(), part) || strings.Contains(logs.String(), part) {
		t.Errorf("part of the key is in the error or the logs: %v", err)
	}
}

// TestRefusalsLoggedOncePerCause: each status is logged when it first
// refuses a request, then at most once every refusalLogEvery by the store's
// clock, saying how many refusals the log left out.
func TestRefusalsLoggedOncePerCause(t *testing.T) {
	clock := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: 5 * time.Second, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := newFakeCloud(t)
	status := 401
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":{"message":"refused","type":"invalid_request_error"}}`)
		return true
	})
	b, logs := testBridge(t, f.URL(), st, nil)
	ask := func(n int) {
		for range n {
			if _, err := b.Generate(context.Background(), agent.Query{Text: "hello"}, nil); err == nil {
				t.Fatal("a refused request succeeded")
			}
		}
	}
	ask(3)
	status = 404
	ask(2)
	clock = clock.Add(refusalLogEvery - time.Second)
	status = 401
	ask(1)
	clock = clock.Add(2 * time.Second)
	ask(1)
	var got []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, refusalLine) {
			i := strings.Index(l, "status=")
			got = append(got, l[i:i+len("status=401")]+" "+l[strings.Index(l, "not_logged_since="):])
		}
	}
	want := []string{"status=401 not_logged_since=0", "status=404 not_logged_since=0", "status=401 not_logged_since=3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("refusal lines %q, want %q", got, want)
	}
	if b.Link() != LinkClosed || b.Stats(context.Background()).Failures != 7 {
		t.Errorf("link %s, stats %+v", b.Link(), b.Stats(context.Background()))
	}
}
