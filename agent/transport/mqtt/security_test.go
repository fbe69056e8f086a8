package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// TestPasswordAndACL runs hedge as a user of a mosquitto that refuses
// anonymous clients; each asker may read its own reply subtree only.
func TestPasswordAndACL(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{
		Users: map[string]string{"hedge": "hedge-secret", "alice": "alice-secret", "bob": "bob-secret"},
		ACL: `user hedge
topic readwrite hedge/#
topic write replies/#

user alice
topic write hedge/dev1/query
topic read replies/alice/#

user bob
topic write hedge/dev1/query
topic read replies/bob/#
`,
	})
	pwFile := filepath.Join(t.TempDir(), "mqtt-password")
	if err := os.WriteFile(pwFile, []byte("hedge-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := mqtt.ReadPasswordFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, Username: "hedge", Password: pw}, newEcho())

	alice := newClient(t, b.URL, clientOpts{user: "alice", pass: "alice-secret"})
	aliceReplies := subscribeWith(t, alice, "replies/alice/#")
	bob := newClient(t, b.URL, clientOpts{user: "bob", pass: "bob-secret"})
	// Bob tries to read Alice's replies; mosquitto refuses the
	// subscription or drops what he may not read.
	spy := &sub{c: bob, ch: make(chan msg, 10)}
	bob.Subscribe("replies/alice/#", 1, func(_ paho.Client, m paho.Message) {
		spy.ch <- msg{m.Topic(), m.Payload()}
	}).WaitTimeout(5 * time.Second)
	bobReplies := subscribeWith(t, bob, "replies/bob/#")

	publish(t, alice, hd.tr.QueryTopic(), request("a1", "alice asks", "replies/alice/1"))
	publish(t, bob, hd.tr.QueryTopic(), request("b1", "bob asks", "replies/bob/1"))
	if a := answerOf(t, aliceReplies.next(t, 10*time.Second)); a.Answer != "echo: alice asks" {
		t.Fatalf("alice got %+v", a)
	}
	if a := answerOf(t, bobReplies.next(t, 10*time.Second)); a.Answer != "echo: bob asks" {
		t.Fatalf("bob got %+v", a)
	}
	spy.none(t, 500*time.Millisecond)

	// Wrong credentials are refused by the broker.
	o := paho.NewClientOptions().AddBroker(b.URL).SetClientID("intruder").SetUsername("hedge").SetPassword("guess")
	c := paho.NewClient(o)
	if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("connected with a wrong password")
	}

	// A password file others may read is refused.
	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.WriteFile(loose, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := mqtt.ReadPasswordFile(loose); !errors.Is(err, mqtt.ErrFileMode) {
		t.Fatalf("0644 password file: %v, want ErrFileMode", err)
	}
}

func TestTLS(t *testing.T) {
	certs := mqtttest.GenerateCerts(t)
	b := mqtttest.Start(t, mqtttest.Config{TLS: certs, RequireCert: true})
	tc, err := mqtt.TLSFiles{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, ServerName: "broker.test"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, TLS: tc}, newEcho())
	c := newClient(t, b.URL, clientOpts{tls: tc})
	replies := subscribeWith(t, c, "test/tls")
	publish(t, c, hd.tr.QueryTopic(), request("t1", "over tls", "test/tls"))
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.Answer != "echo: over tls" {
		t.Fatalf("tls reply %+v", a)
	}

	// A CA that did not sign the broker's certificate, and no client
	// certificate, are both refused.
	for name, f := range map[string]mqtt.TLSFiles{
		"wrong CA":       {CA: certs.OtherCA, Cert: certs.ClientCert, Key: certs.ClientKey},
		"no client cert": {CA: certs.CA},
		"wrong name":     {CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, ServerName: "elsewhere.test"},
	} {
		bad, err := f.Config()
		if err != nil {
			t.Fatal(err)
		}
		o := paho.NewClientOptions().AddBroker(b.URL).SetClientID("tls-" + strings.ReplaceAll(name, " ", "-")).SetTLSConfig(bad).SetConnectTimeout(3 * time.Second)
		c := paho.NewClient(o)
		if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			t.Errorf("%s: connected", name)
		}
	}
	if _, err := (mqtt.TLSFiles{CA: certs.ServerKey}).Config(); err == nil {
		t.Error("a key file taken as a CA")
	}
}

func TestEmbeddedBroker(t *testing.T) {
	br, err := mqtt.StartBroker(mqtt.BrokerOptions{Listen: "127.0.0.1:0", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { br.Close() })
	hd := serve(t, mqtt.Options{Brokers: []string{br.URL()}}, newEcho())
	c := newClient(t, br.URL(), clientOpts{})
	replies := subscribeWith(t, c, "test/embedded")
	publish(t, c, hd.tr.QueryTopic(), request("e1", "embedded", "test/embedded"))
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.Answer != "echo: embedded" {
		t.Fatalf("embedded reply %+v", a)
	}

	// Beyond loopback only with credentials.
	if _, err := mqtt.StartBroker(mqtt.BrokerOptions{Listen: "0.0.0.0:0"}); err == nil {
		t.Fatal("embedded broker listened beyond loopback without auth")
	}
	// The port is taken: a clear error.
	if _, err := mqtt.StartBroker(mqtt.BrokerOptions{Listen: br.Addr()}); err == nil || !strings.Contains(err.Error(), "another broker") {
		t.Fatalf("second broker on %s: %v", br.Addr(), err)
	}

	auth, err := mqtt.StartBroker(mqtt.BrokerOptions{Listen: "127.0.0.1:0", Username: "hedge", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	o := paho.NewClientOptions().AddBroker(auth.URL()).SetClientID("anon").SetConnectTimeout(3 * time.Second)
	anon := paho.NewClient(o)
	if tok := anon.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		anon.Disconnect(0)
		t.Fatal("anonymous client admitted by the embedded broker with auth")
	}
	newClient(t, auth.URL(), clientOpts{user: "hedge", pass: "pw"})
}

// intentClassifier maps texts to intents for the real agent.
type intentClassifier struct{}

func (intentClassifier) Classify(_ context.Context, text string) (agent.Intent, error) {
	switch {
	case strings.Contains(text, "kitchen light"):
		return agent.Intent{Name: "light_on", Confidence: 0.97}, nil
	case strings.Contains(text, "garage"):
		return agent.Intent{Name: "garage_open", Confidence: 0.97}, nil
	}
	return agent.Intent{Name: "chitchat", Confidence: 0.2}, nil
}

// actionSkills performs intent actions through the MQTT Publisher.
type actionSkills struct{ pub agent.Publisher }

func (s *actionSkills) Spec(name string) (agent.IntentSpec, bool) {
	switch name {
	case "light_on", "garage_open":
		return agent.IntentSpec{Name: name, Volatile: true, Escalate: agent.EscalateNever}, true
	}
	return agent.IntentSpec{}, false
}

func (s *actionSkills) Respond(ctx context.Context, q agent.Query, in agent.Intent) (string, error) {
	switch in.Name {
	case "light_on":
		if err := s.pub.Publish(ctx, "home/kitchen/light/set", []byte("ON"), 1, false); err != nil {
			return "", err
		}
		return "Kitchen light on", nil
	case "garage_open":
		if err := s.pub.Publish(ctx, "home/garage/door/set", []byte("OPEN"), 1, false); err != nil {
			return "", agent.Errorf(agent.CodeRefused, "%v", err)
		}
		return "Garage opening", nil
	}
	return "", errors.New("no such skill")
}

func TestIntentAction(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	skills := &actionSkills{}
	a := agent.New(agent.Options{
		Log:        testLog(t),
		Limits:     agent.Limits{MaxQueryBytes: 4096},
		Classifier: intentClassifier{},
		Skills:     skills,
		SLMModel:   "test-intents",
	})
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, Allow: []string{"home/kitchen/+/set", "home/living/#"}}, a)
	skills.pub = hd.tr

	home := subscribe(t, b.URL, "home/#", clientOpts{})
	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/action")

	publish(t, c, hd.tr.QueryTopic(), request("a1", "turn on the kitchen light", "test/action"))
	m := home.next(t, 10*time.Second)
	if m.topic != "home/kitchen/light/set" || string(m.payload) != "ON" {
		t.Fatalf("action published %q on %s", m.payload, m.topic)
	}
	if ans := answerOf(t, replies.next(t, 10*time.Second)); ans.Answer != "Kitchen light on" || ans.Intent != "light_on" || ans.Tier != agent.TierSLM {
		t.Fatalf("action reply %+v", ans)
	}

	// A topic outside the allow-list is refused with a clear error reply.
	publish(t, c, hd.tr.QueryTopic(), request("a2", "open the garage", "test/action"))
	ans := answerOf(t, replies.next(t, 10*time.Second))
	if ans.Error == nil || ans.Error.Code != agent.CodeRefused || !strings.Contains(ans.Error.Message, "mqtt.actions.allow") {
		t.Fatalf("refused action reply %+v", ans)
	}
	home.none(t, 300*time.Millisecond)

	ctx := context.Background()
	for topic, want := range map[string]error{
		"home/garage/door/set":  mqtt.ErrNotAllowed,
		"hedge/dev1/query":      mqtt.ErrNotAllowed,
		"hedge/other/status":    mqtt.ErrNotAllowed,
		"home/kitchen/+/set":    mqtt.ErrBadTopic,
		"$SYS/broker/x":         mqtt.ErrBadTopic,
		"home//kitchen":         mqtt.ErrBadTopic,
		"home/living/lamp\x00x": mqtt.ErrBadTopic,
	} {
		if err := hd.tr.Publish(ctx, topic, []byte("x"), 1, false); !errors.Is(err, want) {
			t.Errorf("Publish %q: %v, want %v", topic, err, want)
		}
	}
	if err := hd.tr.Publish(ctx, "home/living/lamp/brightness", []byte("40"), 1, true); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	if m := home.next(t, 10*time.Second); m.topic != "home/living/lamp/brightness" || string(m.payload) != "40" {
		t.Fatalf("allowed publish arrived as %q on %s", m.payload, m.topic)
	}
}

// TestReplyToActionTopicRefused: a client that may only ask hedge cannot
// make hedge write to the topics intent actions command (a confused
// deputy): such a reply_to gets a bad_request reply on the default reply
// topic, nothing reaches the action topic, and late answers and the
// socket's check (CheckReplyTo) refuse it alike.
func TestReplyToActionTopicRefused(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, Allow: []string{"home/#"}}, newEcho())
	c := newClient(t, b.URL, clientOpts{})
	defaults := subscribeWith(t, c, "hedge/dev1/reply/+")
	actions := subscribeWith(t, c, "home/#")
	custom := subscribeWith(t, c, "panel/#")

	publish(t, c, hd.tr.QueryTopic(), request("a1", "hello", "home/kitchen/light/set"))
	a := answerOf(t, defaults.next(t, 10*time.Second))
	if a.ID != "a1" || a.Error == nil || a.Error.Code != agent.CodeBadRequest || !strings.Contains(a.Error.Message, "mqtt.actions.allow") {
		t.Fatalf("reply to a request with an action topic as reply_to: %+v", a)
	}
	// A reply_to outside the allow-list is answered there.
	publish(t, c, hd.tr.QueryTopic(), request("a2", "hello", "panel/replies/a2"))
	if a := answerOf(t, custom.next(t, 10*time.Second)); a.ID != "a2" || a.Error != nil {
		t.Fatalf("reply on a good reply_to: %+v", a)
	}
	actions.none(t, 300*time.Millisecond)

	late := agent.Answer{ID: "a3", Answer: "late", Tier: agent.TierCloud, Late: true}
	if err := hd.tr.Deliver(context.Background(), "home/kitchen/light/set", late); !errors.Is(err, mqtt.ErrBadTopic) {
		t.Errorf("Deliver to an action topic: %v, want ErrBadTopic", err)
	}
	for topic, want := range map[string]string{
		"panel/replies/1":        "",
		"home/kitchen/light/set": "reply_to is an action topic (mqtt.actions.allow); replies never go to one",
		"home":                   "reply_to is an action topic (mqtt.actions.allow); replies never go to one",
		"panel/+":                "reply_to holds a wildcard (+ or #); a topic to publish to cannot",
		"hedge/dev1/query":       "reply_to is one of hedge's own topics",
	} {
		err := hd.tr.CheckReplyTo(topic)
		if got := fmt.Sprint(err); want == "" && err != nil || want != "" && got != want {
			t.Errorf("CheckReplyTo(%q) = %v, want %q", topic, err, want)
		}
	}
}

// TestTLSKeyReadableByOthersRefused: a client key that group or others may
// read is refused, naming mqtt.tls.key, like the password file.
func TestTLSKeyReadableByOthersRefused(t *testing.T) {
	certs := mqtttest.GenerateCerts(t)
	if err := os.Chmod(certs.ClientKey, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := mqtt.TLSFiles{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}.Config()
	if !errors.Is(err, mqtt.ErrFileMode) || !strings.Contains(err.Error(), "mqtt.tls.key") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0640 client key: %v, want ErrFileMode naming mqtt.tls.key", err)
	}
	if err := os.Chmod(certs.ClientKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (mqtt.TLSFiles{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}).Config(); err != nil {
		t.Fatalf("a 0600 client key: %v", err)
	}
}
