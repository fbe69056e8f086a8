package agent

import "fmt"

// Situation is everything the routing policy looks at for one query.
type Situation struct {
	Prefer Prefer
	// HaveSLM: a classifier is configured; Intent is its verdict.
	HaveSLM bool
	Intent  Intent
	// Spec is the intent's policy; SpecKnown is false for an intent the
	// skills do not know (the local tier cannot answer it).
	Spec      IntentSpec
	SpecKnown bool
	// DefaultThreshold applies when neither the intent nor the classifier
	// sets one.
	DefaultThreshold float64
	HaveLLM          bool
	Cloud            CloudState
}

// Plan is the policy's decision for one query.
type Plan struct {
	// Tier answers now; "" means no tier can answer.
	Tier Tier
	// Queue asks for the cloud escalation to be stored and answered later.
	Queue bool
	// Degraded is the Answer.Degraded value when the wanted tier was not usable.
	Degraded string
	// Confident reports whether the classification was accepted.
	Confident bool
	// Reason explains the decision in a few words.
	Reason string
}

// Threshold returns the acceptance threshold for s's intent: the intent's
// own, else the classifier's, else the default.
func (s Situation) Threshold() float64 {
	switch {
	case s.SpecKnown && s.Spec.Threshold > 0:
		return s.Spec.Threshold
	case s.Intent.Threshold > 0:
		return s.Intent.Threshold
	}
	return s.DefaultThreshold
}

// Accepted reports whether the classification is accepted: the intent is
// known to the skills and its confidence reaches the threshold.
func (s Situation) Accepted() bool {
	return s.HaveSLM && s.SpecKnown && s.Intent.Name != "" && s.Intent.Confidence >= s.Threshold()
}

// Decide is hedge's routing policy. It is a pure function of the situation:
//
//   - A classification is accepted (confident) when the intent is known to
//     the skills and its confidence reaches the threshold.
//   - The cloud is wanted when a cloud is configured and the caller does not
//     prefer local, unless the accepted intent says escalate: never; with
//     prefer cloud it is always wanted; with auto it is wanted when the
//     classification is not accepted or the accepted intent says
//     escalate: always.
//   - A wanted cloud that is ready answers. Otherwise the best local tier
//     answers: the SLM for an accepted intent, else the local LLM. A cloud
//     that is down also queues the escalation for a late answer; a spent
//     budget, private data or a cloud that refused the query marks the
//     answer degraded.
func Decide(s Situation) Plan {
	th := s.Threshold()
	confident := s.Accepted()
	p := Plan{Confident: confident}

	wantCloud := false
	if s.Cloud != CloudNone {
		switch {
		case confident && s.Spec.Escalate == EscalateNever:
			wantCloud = false
		case s.Prefer == PreferLocal:
			wantCloud = false
		case s.Prefer == PreferCloud:
			wantCloud = true
		case !confident:
			wantCloud = true
		case s.Spec.Escalate == EscalateAlways:
			wantCloud = true
		}
	}

	local := func(why string) Plan {
		switch {
		case confident:
			p.Tier = TierSLM
			p.Reason = fmt.Sprintf("%sintent %s at %.2f ≥ %.2f", why, s.Intent.Name, s.Intent.Confidence, th)
		case s.HaveLLM:
			p.Tier = TierLLM
			p.Reason = why + lowConfidence(s, th)
		default:
			p.Reason = why + lowConfidence(s, th)
		}
		return p
	}

	if !wantCloud {
		return local("")
	}
	switch s.Cloud {
	case CloudReady:
		p.Tier = TierCloud
		if s.Prefer == PreferCloud {
			p.Reason = "caller prefers cloud"
		} else if confident {
			p.Reason = "intent " + s.Intent.Name + " escalates always"
		} else {
			p.Reason = lowConfidence(s, th)
		}
		return p
	case CloudDown:
		p.Queue = true
		p.Degraded = "offline"
		return local("cloud link down, escalation queued; ")
	case CloudBudget:
		p.Degraded = "budget"
		return local("cloud budget spent; ")
	case CloudPrivate:
		p.Degraded = "private"
		return local("text holds data kept on the device; ")
	case CloudConfig:
		p.Degraded = "cloud_config"
		return local("cloud refused the request, check its configuration; ")
	}
	return local("")
}

func lowConfidence(s Situation, th float64) string {
	switch {
	case !s.HaveSLM:
		return "no intent classifier"
	case s.Intent.Name == "":
		return "no intent matched"
	case !s.SpecKnown:
		return fmt.Sprintf("intent %s has no local answer", s.Intent.Name)
	}
	return fmt.Sprintf("intent %s at %.2f < %.2f", s.Intent.Name, s.Intent.Confidence, th)
}
