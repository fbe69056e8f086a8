package httpapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hedge-edge/hedge/agent/telemetry"
)

const chromiumPath = "/usr/bin/chromium"

// ensureChromium installs Debian's chromium when it is missing: the test
// needs a real browser and fails without one.
func ensureChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	script := filepath.Join(moduleRoot(t), "scripts", "apt-ensure.sh")
	out, err := exec.Command(script, "chromium").CombinedOutput()
	if err != nil {
		t.Fatalf("install chromium with %s: %v\n%s", script, err, out)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium still missing after apt-ensure: %v", err)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// artifactDir is $HEDGE_ARTIFACTS, else testdata/artifacts (git-ignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEDGE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// browser starts a headless chromium with a fresh profile and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	ensureChromium(t)
	profile, err := os.MkdirTemp("", "hedge-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Chromium's helpers may still write to the profile for a moment.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestDashboardInBrowser drives the dashboard in headless chromium: one
// query per backend choice, asserting on the rendered answer, tier and
// confidence, with the local answer seen while it is still streaming.
func TestDashboardInBrowser(t *testing.T) {
	tel := telemetry.New(nil, telemetry.Options{Debug: true})
	tel.SetLinkUp(true)
	tel.SetOutboxDepth(2)
	tr := defaultTiers()
	tr.llm.gate = make(chan struct{})
	r := serve(t, Options{Telemetry: tel, Device: "pi-kitchen"}, newAgent(t, tr, tel))
	ctx := browser(t)

	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	wait := func(what, expr string) {
		t.Helper()
		step(what, chromedp.Steps(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))(ctx, tg)
			return chromedp.Void{}, err
		}))
	}

	step("open the dashboard",
		chromedp.Navigate(r.URL()+"/"),
		chromedp.WaitVisible(chromedp.CSS("#ask")),
	)
	wait("status polled", `document.getElementById('link').textContent === 'link up' && document.getElementById('device').textContent === 'pi-kitchen'`)
	if got := text("#outbox"); got != "outbox 2" {
		t.Errorf("outbox pill = %q", got)
	}

	cases := []struct {
		backend, query, answer, tier, conf, model string
		streamed                                  bool
	}{
		{"auto", "hello there", helloAnswer, "slm", "0.93", "fake-slm", false},
		{"local", "tell me a story", llmAnswer, "llm", "0.21", "fake-llm-q4", true},
		{"cloud", "what is the tallest mountain?", cloudAnswer, "cloud", "0.21", "fake-cloud-4o", false},
	}
	for _, c := range cases {
		step("ask "+c.backend,
			chromedp.Evaluate[chromedp.Void](`document.getElementById('q').value = ''`),
			chromedp.SendKeys(chromedp.CSS("#q"), c.query),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`label[for="backend-%s"]`, c.backend))),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('result').dataset.state = 'idle'`),
			chromedp.Click(chromedp.CSS("#ask")),
		)
		if c.streamed {
			// The generator holds after its first word: the page must
			// show it while the answer is still streaming.
			wait("first word while streaming", `document.getElementById('answer').textContent === 'Once ' && document.getElementById('result').dataset.state === 'streaming'`)
			close(tr.llm.gate)
		}
		wait(c.backend+" answer done", `document.getElementById('result').dataset.state !== 'idle' && document.getElementById('result').dataset.state !== 'streaming'`)
		if st := text("#error"); st != "" {
			t.Fatalf("%s: error shown: %s", c.backend, st)
		}
		got := map[string]string{"answer": text("#answer"), "tier": text("#tier"), "confidence": text("#confidence"), "model": text("#model")}
		want := map[string]string{"answer": c.answer, "tier": c.tier, "confidence": c.conf, "model": c.model}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: %s = %q, want %q", c.backend, k, got[k], want[k])
			}
		}
	}

	wait("counters and recent decisions", `document.querySelectorAll('#recent tr').length === 3 && document.getElementById('c-total').textContent === '3'`)
	for id, want := range map[string]string{"#c-slm": "1", "#c-llm": "1", "#c-cloud": "1", "#c-errors": "0"} {
		if got := text(id); got != want {
			t.Errorf("counter %s = %q, want %q", id, got, want)
		}
	}
	if got := text("#recent tr:first-child td.text-col"); got != "what is the tallest mountain?" {
		t.Errorf("newest decision's query (debug on) = %q", got)
	}

	// An error is rendered, not swallowed.
	step("ask too long",
		chromedp.SetValue(chromedp.CSS("#q"), strings.Repeat("x", 2000)),
		chromedp.Click(chromedp.CSS(`label[for="backend-auto"]`)),
		chromedp.Click(chromedp.CSS("#ask")),
	)
	wait("error shown", `document.getElementById('result').dataset.state === 'error'`)
	if got := text("#error"); !strings.HasPrefix(got, "too_large:") {
		t.Errorf("error shown = %q", got)
	}
	// Back to a good answer for the screenshot.
	step("ask local again",
		chromedp.SetValue(chromedp.CSS("#q"), "tell me a story"),
		chromedp.Click(chromedp.CSS(`label[for="backend-local"]`)),
		chromedp.Click(chromedp.CSS("#ask")),
	)
	wait("local answer again", `document.getElementById('result').dataset.state === 'done'`)
	wait("five decisions", `document.querySelectorAll('#recent tr').length === 5`)

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG")
	}
	t.Logf("dashboard screenshot: %s (%d bytes)", path, len(png))
}

// TestDashboardAsksForToken: with a token set, the page asks for it and then
// works with it.
func TestDashboardAsksForToken(t *testing.T) {
	tel := telemetry.New(nil, telemetry.Options{})
	r := serve(t, Options{Telemetry: tel, Token: testToken}, newAgent(t, defaultTiers(), tel))
	ctx := browser(t)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))(ctx, tg)
			return chromedp.Void{}, err
		}
	}
	err := chromedp.Do(sctx,
		chromedp.Navigate(r.URL()+"/"),
		poll(`!document.getElementById('auth').hidden`),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#auth-form button")),
		poll(`document.getElementById('auth').hidden && document.getElementById('ready').textContent === 'ready'`),
		chromedp.SendKeys(chromedp.CSS("#q"), "hello"),
		chromedp.Click(chromedp.CSS("#ask")),
		poll(`document.getElementById('result').dataset.state === 'done'`),
	)
	if err != nil {
		t.Fatalf("dashboard with a token: %v", err)
	}
	answer, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("#answer")))
	if err != nil || strings.TrimSpace(answer) != helloAnswer {
		t.Fatalf("answer = %q, %v", answer, err)
	}
}
