package mqtt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// The test binary doubles as a hedge to kill: with childEnv set it serves
// the transport on the broker and state dir of the other two variables
// until it is killed.
const (
	childEnv       = "HEDGE_MQTT_TEST_CHILD"
	childBrokerEnv = "HEDGE_MQTT_TEST_BROKER"
	childDirEnv    = "HEDGE_MQTT_TEST_DIR"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := serveChild(os.Getenv(childBrokerEnv), os.Getenv(childDirEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// stamped answers "first: <text>" with the time it was computed, so that
// a reply computed again differs from the one sent before.
type stamped string

func (s stamped) Handle(_ context.Context, q agent.Query, _ func(string)) agent.Answer {
	return agent.Answer{ID: q.ID, Answer: fmt.Sprintf("%s: %s at %d", s, q.Text, time.Now().UnixNano()), Tier: agent.TierSLM}
}

func serveChild(broker, dir string) error {
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	tr, err := mqtt.New(mqtt.Options{Brokers: []string{broker}, Device: device, ClientID: "hedge-crash", Replies: st})
	if err != nil {
		return err
	}
	return tr.Serve(context.Background(), stamped("first"))
}

// TestCrashLosesOnlyUncommittedRecords SIGKILLs a hedge right after it
// answered a steady stream of requests, then asks every request again of
// a hedge on the same state dir. A reply whose record survived comes back
// byte for byte; one whose record was lost is computed again. Only the
// records of the last replies before the crash may be lost: the recorder
// commits at most 10 ms (recordEvery) after a reply is sent, so the
// records of replies sent a second before the kill (room for a loaded
// machine's slow fsyncs) must all be there.
func TestCrashLosesOnlyUncommittedRecords(t *testing.T) {
	const (
		n        = 800
		interval = 2500 * time.Microsecond // 400 q/s for two seconds
		safe     = time.Second
	)
	b := mqtttest.Start(t, mqtttest.Config{})
	dir := t.TempDir()
	status := subscribe(t, b.URL, "hedge/"+device+"/status", clientOpts{})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childBrokerEnv+"="+b.URL, childDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	status.waitPayload(t, "online", 30*time.Second)

	replies := subscribe(t, b.URL, "test/crash", clientOpts{})
	c := newClient(t, b.URL, clientOpts{})
	id := func(i int) string { return fmt.Sprintf("c%d", i) }
	go func() {
		start := time.Now()
		for i := range n {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			c.Publish("hedge/"+device+"/query", 1, false, request(id(i), fmt.Sprintf("q%d", i), "test/crash"))
		}
	}()
	first := map[string][]byte{}
	arrived := map[string]time.Time{}
	for len(first) < n {
		m := replies.next(t, 30*time.Second)
		a := answerOf(t, m)
		if _, ok := first[a.ID]; !ok {
			first[a.ID], arrived[a.ID] = m.payload, time.Now()
		}
	}
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child ended with %v, want killed\n%s", err, stderr.String())
	}

	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	serve(t, mqtt.Options{Brokers: []string{b.URL}, ClientID: "hedge-restarted", Replies: st}, stamped("again"))
	for i := range n {
		publish(t, c, "hedge/"+device+"/query", request(id(i), fmt.Sprintf("q%d", i), "test/crash"))
	}
	second := map[string][]byte{}
	for len(second) < n {
		m := replies.next(t, 30*time.Second)
		a := answerOf(t, m)
		if _, ok := second[a.ID]; !ok {
			second[a.ID] = m.payload
		}
	}
	lost, late := 0, 0
	for i := range n {
		k := id(i)
		before := killed.Sub(arrived[k])
		if before < safe {
			late++
		}
		if bytes.Equal(first[k], second[k]) {
			continue
		}
		lost++
		if before >= safe {
			t.Errorf("%s: its reply came %s before the crash, yet its record was lost:\nbefore %s\nafter  %s", k, before.Round(time.Millisecond), first[k], second[k])
		}
	}
	t.Logf("%d of %d records lost in the crash; %d replies came within %s of it", lost, n, late, safe)
}
