package agent

import "testing"

func TestDecide(t *testing.T) {
	hello := Intent{Name: "greet", Confidence: 0.97}
	unsure := Intent{Name: "greet", Confidence: 0.31}
	spec := func(e Escalate) IntentSpec { return IntentSpec{Name: "greet", Escalate: e} }
	base := func(in Intent, e Escalate) Situation {
		return Situation{HaveSLM: true, Intent: in, Spec: spec(e), SpecKnown: true, DefaultThreshold: 0.6}
	}
	with := func(s Situation, f func(*Situation)) Situation { f(&s); return s }

	cases := []struct {
		name     string
		s        Situation
		tier     Tier
		queue    bool
		degraded string
	}{
		{"nothing configured", Situation{DefaultThreshold: 0.6}, "", false, ""},
		{"confident, no cloud", base(hello, ""), TierSLM, false, ""},
		{"unsure, no llm, no cloud", base(unsure, ""), "", false, ""},
		{"unsure, llm", with(base(unsure, ""), func(s *Situation) { s.HaveLLM = true }), TierLLM, false, ""},
		{"unsure, cloud ready", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudReady; s.HaveLLM = true }), TierCloud, false, ""},
		{"unsure, cloud down, llm", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudDown; s.HaveLLM = true }), TierLLM, true, "offline"},
		{"unsure, cloud down, no llm", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudDown }), "", true, "offline"},
		{"unsure, budget spent", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudBudget; s.HaveLLM = true }), TierLLM, false, "budget"},
		{"unsure, private data", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudPrivate; s.HaveLLM = true }), TierLLM, false, "private"},
		{"unsure, cloud refused, llm", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudConfig; s.HaveLLM = true }), TierLLM, false, "cloud_config"},
		{"unsure, cloud refused, no llm", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudConfig }), "", false, "cloud_config"},
		{"confident, prefer cloud, cloud refused", with(base(hello, ""), func(s *Situation) { s.Cloud = CloudConfig; s.Prefer = PreferCloud }), TierSLM, false, "cloud_config"},
		{"confident, cloud ready, auto stays local", with(base(hello, ""), func(s *Situation) { s.Cloud = CloudReady }), TierSLM, false, ""},
		{"confident, escalate always", with(base(hello, EscalateAlways), func(s *Situation) { s.Cloud = CloudReady }), TierCloud, false, ""},
		{"confident, escalate always, prefer local", with(base(hello, EscalateAlways), func(s *Situation) { s.Cloud = CloudReady; s.Prefer = PreferLocal }), TierSLM, false, ""},
		{"confident, prefer cloud", with(base(hello, ""), func(s *Situation) { s.Cloud = CloudReady; s.Prefer = PreferCloud }), TierCloud, false, ""},
		{"confident, prefer cloud, escalate never", with(base(hello, EscalateNever), func(s *Situation) { s.Cloud = CloudReady; s.Prefer = PreferCloud }), TierSLM, false, ""},
		{"confident, prefer cloud, link down", with(base(hello, ""), func(s *Situation) { s.Cloud = CloudDown; s.Prefer = PreferCloud }), TierSLM, true, "offline"},
		{"unsure, prefer local, cloud ready", with(base(unsure, ""), func(s *Situation) { s.Cloud = CloudReady; s.Prefer = PreferLocal; s.HaveLLM = true }), TierLLM, false, ""},
		// escalate: never only binds an accepted classification.
		{"unsure never-intent, cloud ready", with(base(unsure, EscalateNever), func(s *Situation) { s.Cloud = CloudReady }), TierCloud, false, ""},
		{"unknown intent is not confident", with(base(hello, ""), func(s *Situation) { s.SpecKnown = false; s.HaveLLM = true }), TierLLM, false, ""},
		{"intent threshold wins", with(base(hello, ""), func(s *Situation) { s.Spec.Threshold = 0.99; s.HaveLLM = true }), TierLLM, false, ""},
		{"classifier threshold used", with(base(Intent{Name: "greet", Confidence: 0.7, Threshold: 0.8}, ""), func(s *Situation) { s.HaveLLM = true }), TierLLM, false, ""},
		{"at threshold is confident", base(Intent{Name: "greet", Confidence: 0.6}, ""), TierSLM, false, ""},
		{"no slm, llm", Situation{HaveLLM: true, DefaultThreshold: 0.6}, TierLLM, false, ""},
		{"no slm, cloud ready", Situation{Cloud: CloudReady, DefaultThreshold: 0.6}, TierCloud, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Decide(c.s)
			if p.Tier != c.tier || p.Queue != c.queue || p.Degraded != c.degraded {
				t.Fatalf("Decide = tier %q queue %v degraded %q (%s), want tier %q queue %v degraded %q",
					p.Tier, p.Queue, p.Degraded, p.Reason, c.tier, c.queue, c.degraded)
			}
			if p.Reason == "" {
				t.Fatal("plan has no reason")
			}
		})
	}
}
