package cloudbridge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/hedge-edge/hedge/agent"
)

// The sentinel errors of the bridge. Every error the bridge returns wraps
// one of them; none carries the API key, whatever the server sent back.
var (
	// ErrUnavailable: the cloud could not be reached or did not answer
	// usefully (circuit open, connection refused, timeout, 5xx, 408, 409,
	// 429, malformed reply). The escalation may be retried later.
	ErrUnavailable = errors.New("cloud unavailable")
	// ErrRejected: the API refused this request (4xx other than 408, 409
	// and 429: a bad key, an unknown model or path, a request its limits
	// refuse). Retrying the same request will not help; hedge's cloud
	// settings must change. It is agent.ErrCloudConfig, so the agent
	// answers locally and queues nothing.
	ErrRejected = agent.ErrCloudConfig
	// ErrPrivate: the text holds an entity whose policy is keep_local; it
	// never leaves the device.
	ErrPrivate = errors.New("text holds data kept on the device")
	// ErrBudget: the daily request or token budget is spent.
	ErrBudget = errors.New("cloud budget spent")
)

// failure says how a failed call bears on the link.
type failure int

const (
	failNone     failure = iota
	failLink             // connection error or timeout: the link is down
	failServer           // 5xx or a malformed reply: counts toward the threshold
	failThrottle         // 429: back off, honouring Retry-After
	failRejected         // other 4xx: the settings are refused; the link is fine
)

// callError is a failed cloud call as the bridge reports it: a message
// already stripped of the key, its sentinel, and what it means for the
// breaker. It keeps no reference to the underlying error, whose text may
// hold what a server echoed back.
type callError struct {
	msg        string
	sentinel   error
	kind       failure
	status     int // the HTTP status; 0 when none came
	retryAfter time.Duration
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.sentinel }

// client speaks the chat completions API through go-openai.
type client struct {
	api     *openai.Client
	key     string
	model   string
	prompt  string
	timeout time.Duration
	now     func() time.Time
}

// respInfo receives the status and Retry-After of a response; go-openai's
// errors keep the status but drop the headers.
type respInfo struct {
	status     int
	retryAfter string
}

type respInfoKey struct{}

// recordingDoer is the HTTPDoer handed to go-openai: it notes each
// response's status and Retry-After in the request's respInfo.
type recordingDoer struct{ c *http.Client }

func (d recordingDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.c.Do(req)
	if resp != nil {
		if ri, ok := req.Context().Value(respInfoKey{}).(*respInfo); ok {
			ri.status = resp.StatusCode
			ri.retryAfter = resp.Header.Get("Retry-After")
		}
	}
	return resp, err
}

// clientOptions configures a client.
type clientOptions struct {
	BaseURL, Model, APIKey, SystemPrompt string
	Timeout, ConnectTimeout              time.Duration
	// Transport replaces the HTTP transport (tests); nil builds one with
	// the timeouts.
	Transport http.RoundTripper
	// Now reads a Retry-After date against the bridge's clock.
	Now func() time.Time
}

func newClient(o clientOptions) *client {
	rt := o.Transport
	if rt == nil {
		d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   o.ConnectTimeout,
			ResponseHeaderTimeout: o.Timeout,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	cfg := openai.DefaultConfig(o.APIKey)
	cfg.BaseURL = strings.TrimRight(o.BaseURL, "/")
	cfg.HTTPClient = recordingDoer{&http.Client{Transport: rt}}
	return &client{
		api: openai.NewClientWithConfig(cfg), key: o.APIKey, model: o.Model,
		prompt: o.SystemPrompt, timeout: o.Timeout, now: o.Now,
	}
}

// messages is the chat the cloud is sent for a: the system prompt (the
// query's own, else the configured one), the earlier turns, the question.
func (c *client) messages(a anonymized) []openai.ChatCompletionMessage {
	var m []openai.ChatCompletionMessage
	if sys := cmp.Or(a.System, c.prompt); sys != "" {
		m = append(m, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleSystem, Content: sys})
	}
	for _, t := range a.Prior {
		m = append(m, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: t.User},
			openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: t.Answer})
	}
	return append(m, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: a.Text})
}

// sent is the text of the messages, for estimating their tokens.
func sent(m []openai.ChatCompletionMessage) string {
	var b strings.Builder
	for _, msg := range m {
		b.WriteString(msg.Content)
	}
	return b.String()
}

// reply is one cloud answer.
type reply struct {
	Text   string
	Model  string
	Tokens int // prompt + completion, as reported or estimated
	// Truncated: the finish_reason was "length", the answer stopped at
	// max_tokens.
	Truncated bool
}

// chat sends text (already anonymized) and returns the answer. With emit
// set it streams, handing each piece to emit as it arrives.
func (c *client) chat(ctx context.Context, a anonymized, maxTokens int, emit func(string)) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ri := &respInfo{}
	ctx = context.WithValue(ctx, respInfoKey{}, ri)
	req := openai.ChatCompletionRequest{Model: c.model, MaxTokens: maxTokens, Messages: c.messages(a)}
	if emit == nil {
		resp, err := c.api.CreateChatCompletion(ctx, req)
		if err != nil {
			return reply{}, c.classify(ctx, ri, err)
		}
		if len(resp.Choices) == 0 {
			return reply{}, c.fail(failServer, ErrUnavailable, "cloud reply has no choices", 0)
		}
		ch := resp.Choices[0]
		r := reply{Text: ch.Message.Content, Model: resp.Model, Tokens: resp.Usage.TotalTokens, Truncated: ch.FinishReason == openai.FinishReasonLength}
		if r.Tokens <= 0 {
			r.Tokens = estimateTokens(sent(req.Messages) + r.Text)
		}
		return r, nil
	}

	req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	stream, err := c.api.CreateChatCompletionStream(ctx, req)
	if err != nil {
		return reply{}, c.classify(ctx, ri, err)
	}
	defer stream.Close()
	var b strings.Builder
	r := reply{}
	chunks := 0
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return reply{}, c.classify(ctx, ri, err)
		}
		chunks++
		if chunk.Model != "" {
			r.Model = chunk.Model
		}
		if chunk.Usage != nil {
			r.Tokens = chunk.Usage.TotalTokens
		}
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				continue
			}
			if ch.Delta.Content != "" {
				b.WriteString(ch.Delta.Content)
				emit(ch.Delta.Content)
			}
			if ch.FinishReason != "" {
				r.Truncated = ch.FinishReason == openai.FinishReasonLength
			}
		}
	}
	if chunks == 0 {
		// go-openai reads a body without a single "data:" event as an
		// empty stream: a proxy's page, an error in the wrong format.
		return reply{}, c.fail(failServer, ErrUnavailable, "cloud reply is malformed: the stream carried no events", 0)
	}
	r.Text = b.String()
	if r.Tokens <= 0 {
		r.Tokens = estimateTokens(sent(req.Messages) + r.Text)
	}
	return r, nil
}

// probe asks the API for its model list: the cheapest request that proves
// the endpoint answers. Any answer short of 5xx, 408, 409, 429 or a timeout
// means the link is up; a 404 (a server without /models) or 401 says so too.
func (c *client) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ri := &respInfo{}
	ctx = context.WithValue(ctx, respInfoKey{}, ri)
	_, err := c.api.ListModels(ctx)
	if err == nil {
		return nil
	}
	ce := c.classify(ctx, ri, err)
	var e *callError
	if errors.As(ce, &e) && e.kind == failRejected {
		return nil
	}
	return ce
}

// estimateTokens is the usual four-characters-a-token rule, for servers
// that report no usage.
func estimateTokens(s string) int { return len(s)/4 + 1 }

func (c *client) fail(kind failure, sentinel error, msg string, retryAfter time.Duration) error {
	return c.failStatus(kind, sentinel, msg, 0, retryAfter)
}

func (c *client) failStatus(kind failure, sentinel error, msg string, status int, retryAfter time.Duration) error {
	return &callError{msg: c.redact(msg), sentinel: sentinel, kind: kind, status: status, retryAfter: retryAfter}
}

// classify turns a go-openai error into a callError.
func (c *client) classify(ctx context.Context, ri *respInfo, err error) error {
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	status := ri.status
	switch {
	case errors.As(err, &apiErr) && apiErr.HTTPStatusCode != 0:
		status = apiErr.HTTPStatusCode
	case errors.As(err, &reqErr) && reqErr.HTTPStatusCode != 0:
		status = reqErr.HTTPStatusCode
	}
	switch {
	case status == http.StatusTooManyRequests:
		ra := parseRetryAfter(ri.retryAfter, c.now())
		msg := "cloud is rate limiting (429)"
		if ra > 0 {
			msg += fmt.Sprintf("; retry after %s", ra)
		}
		return c.failStatus(failThrottle, ErrUnavailable, msg, status, ra)
	case retryable(status):
		return c.failStatus(failServer, ErrUnavailable, fmt.Sprintf("cloud server error (%d)", status), status, parseRetryAfter(ri.retryAfter, c.now()))
	case status >= 400:
		return c.failStatus(failRejected, ErrRejected, c.refusalMessage(status, apiErr), status, 0)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		return c.fail(failLink, ErrUnavailable, fmt.Sprintf("cloud did not answer within %s", c.timeout), 0)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("cloud request: %w", context.Canceled)
	case isConnErr(err):
		return c.fail(failLink, ErrUnavailable, "cannot reach the cloud: "+connReason(err), 0)
	case status >= 200 && status < 300:
		// A 2xx whose body did not decode: a proxy's error page, a
		// truncated stream.
		return c.failStatus(failServer, ErrUnavailable, "cloud reply is malformed: "+jsonReason(err), status, 0)
	}
	return c.fail(failLink, ErrUnavailable, "cloud request failed: "+connReason(err), 0)
}

// retryable reports whether a status is the server's trouble rather than
// a refusal of hedge's request: 5xx, 408 (it timed out reading the
// request) and 409 (a conflict on its side; OpenAI's own SDKs retry it).
// 429 is retryable too, with its own handling.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusConflict
}

// refusalMessage words a refusal: the status, the server's own message
// (what the user must fix; other messages may echo the request and are
// not worth the risk of logging it) and what to check. The message is
// redacted before it is cut, so that no part of a key survives the cut.
func (c *client) refusalMessage(status int, apiErr *openai.APIError) string {
	msg := fmt.Sprintf("cloud refused the request (%d)", status)
	if apiErr != nil && apiErr.Message != "" {
		msg += ": " + truncate(c.redact(apiErr.Message), 200)
	}
	return msg + "; " + refusalHint(status)
}

// refusalHint names the settings behind a refusal of status. hedge sends
// only what they shape (key, model, path, max_tokens) and a text within its
// own limits, so whatever the cloud refuses is a mismatch between them and
// the cloud.
func refusalHint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "check the API key (cloud.api_key_file or HEDGE_CLOUD_API_KEY)"
	case http.StatusForbidden:
		return "the API key may not use this model or endpoint: check the key and cloud.model"
	case http.StatusNotFound:
		return "check cloud.model and cloud.base_url"
	case http.StatusRequestEntityTooLarge:
		return "the cloud takes less text than limits.max_query_bytes lets through"
	}
	return "check cloud.model, cloud.max_tokens and cloud.system_prompt"
}

// redact removes the API key from a message, in case a server or a
// library echoed it, and any masked key: a refusal of a bad key may quote
// part of it (OpenAI: "Incorrect API key provided: sk-proj-****abcd").
func (c *client) redact(s string) string {
	if len(c.key) >= 4 {
		s = strings.ReplaceAll(s, c.key, "[redacted]")
	}
	return maskedToken.ReplaceAllString(s, "[redacted]")
}

// maskedToken is a word with a run of asterisks in it: a secret shown in
// part.
var maskedToken = regexp.MustCompile(`[^\s:,;"']*\*{3,}[^\s,;"']*`)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isConnErr(err error) bool {
	var oe *net.OpError
	var ue *url.Error
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ue) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// connReason names a connection failure without the URL (which is in the
// config anyway) or anything a server sent.
func connReason(err error) string {
	var de *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &de):
		return "cannot resolve " + de.Name
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the reply was complete"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	return "connection failed"
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return truncate(err.Error(), 120)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
// It returns 0 when absent or unreadable, and caps the wait at a day.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, 24*time.Hour)
}
