package cloudbridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/hedge-edge/hedge/agent"
)

// benchQuery is a 200-character query with five entities, as in the
// anonymizer's benchmark.
const benchQuery = "Hi, this is Maria Schmidt: please email jonas.k@example.org the logs of " +
	"the router at 192.168.1.20 (MAC 00:1A:2B:3C:4D:5E) and call +49 30 1234567 " +
	"when done. What does the boiler error E1042 mean now?"

// BenchmarkBridgeOverhead compares, against the same loopback
// OpenAI-compatible server, a direct go-openai call with the bridge's
// Generate (anonymize, budget and breaker checks, the call, restore). Calls
// alternate so that both see the same machine load; it reports the mean of
// each in µs, the bridge's added µs and the ratio bridge/direct.
func BenchmarkBridgeOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"finish_reason":"stop",`+
			`"message":{"role":"assistant","content":"Dear [PERSON_1], I mailed [EMAIL_1] the logs of [IP_1] and will call [PHONE_1]."}}],`+
			`"usage":{"prompt_tokens":60,"completion_tokens":20,"total_tokens":80}}`)
	}))
	defer srv.Close()
	for _, budget := range []bool{false, true} {
		name := "no-budget"
		if budget {
			name = "with-budget"
		}
		b.Run(name, func(b *testing.B) {
			br, _ := testBridge(b, srv.URL+"/v1", nil, func(o *Options) {
				if budget {
					o.Budget = Budget{RequestsPerDay: 1 << 40, TokensPerDay: 1 << 50}
				}
			})
			cfg := openai.DefaultConfig(testKey)
			cfg.BaseURL = srv.URL + "/v1"
			direct := openai.NewClientWithConfig(cfg)
			req := openai.ChatCompletionRequest{Model: "m", MaxTokens: 100, Messages: []openai.ChatCompletionMessage{
				{Role: openai.ChatMessageRoleSystem, Content: "keep placeholders"},
				{Role: openai.ChatMessageRoleUser, Content: benchQuery},
			}}
			ctx := context.Background()
			q := agent.Query{Text: benchQuery}
			// Warm both connections.
			if _, err := direct.CreateChatCompletion(ctx, req); err != nil {
				b.Fatal(err)
			}
			if _, err := br.Generate(ctx, q, nil); err != nil {
				b.Fatal(err)
			}
			var tDirect, tBridge time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := direct.CreateChatCompletion(ctx, req); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				ans, err := br.Generate(ctx, q, nil)
				if err != nil {
					b.Fatal(err)
				}
				tDirect += t1.Sub(t0)
				tBridge += time.Since(t1)
				if ans.Entities["person"] != 1 {
					b.Fatal("not anonymized")
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(tDirect.Microseconds())/n, "direct-µs")
			b.ReportMetric(float64(tBridge.Microseconds())/n, "bridge-µs")
			b.ReportMetric(float64((tBridge-tDirect).Microseconds())/n, "added-µs")
			b.ReportMetric(float64(tBridge)/float64(tDirect), "ratio")
		})
	}
}
