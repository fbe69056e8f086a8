package evaluate

import (
	"math"
	"slices"
)

// Scored is one test item's verdict: the predicted in-scope intent ("" when
// the classifier's best class is the out-of-scope one) and its confidence.
type Scored struct {
	Gold string
	Pred string
	Conf float64
}

// accepted reports whether s is taken as in scope at threshold th.
func (s Scored) accepted(th float64) bool { return s.Pred != "" && s.Conf >= th }

// Row is the measure of one threshold on one split.
type Row struct {
	Name      string  `json:"name"`
	Threshold float64 `json:"threshold"`
	// InScopeAccuracy: in-scope items predicted correctly and accepted.
	InScopeAccuracy float64 `json:"in_scope_accuracy"`
	// OOSRecall: out-of-scope items rejected.
	OOSRecall float64 `json:"oos_recall"`
	// Coverage: all items accepted; Risk: accepted items that are wrong.
	Coverage float64 `json:"coverage"`
	Risk     float64 `json:"risk"`
}

// At measures items at threshold th.
func At(items []Scored, th float64) Row {
	var nIn, nOOS, correct, rejected, acc, wrong int
	for _, s := range items {
		a := s.accepted(th)
		if a {
			acc++
			if s.Pred != s.Gold {
				wrong++
			}
		}
		if s.Gold == OOS {
			nOOS++
			if !a {
				rejected++
			}
			continue
		}
		nIn++
		if a && s.Pred == s.Gold {
			correct++
		}
	}
	r := Row{Threshold: th}
	r.InScopeAccuracy = ratio(correct, nIn)
	r.OOSRecall = ratio(rejected, nOOS)
	r.Coverage = ratio(acc, len(items))
	r.Risk = ratio(wrong, acc)
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// candidates are the thresholds worth trying on items: 0 and every
// confidence, ascending; a threshold between two of them changes nothing.
func candidates(items []Scored) []float64 {
	ts := []float64{0}
	for _, s := range items {
		if s.Pred != "" {
			ts = append(ts, s.Conf)
		}
	}
	slices.Sort(ts)
	ts = slices.Compact(ts)
	// Above every confidence: nothing is accepted.
	return append(ts, math.Nextafter(ts[len(ts)-1], 2))
}

// PickByRecall returns the lowest threshold whose out-of-scope recall on
// items is at least r. Recall only grows with the threshold, so the lowest
// such threshold accepts the most in-scope items.
func PickByRecall(items []Scored, r float64) float64 {
	ts := candidates(items)
	i, _ := slices.BinarySearchFunc(ts, r, func(t, r float64) int {
		if At(items, t).OOSRecall >= r {
			return 1
		}
		return -1
	})
	if i == len(ts) {
		return ts[len(ts)-1]
	}
	return ts[i]
}

// PickLarson returns the threshold maximizing in-scope accuracy plus
// out-of-scope recall on items, the criterion of Larson et al. (2019).
func PickLarson(items []Scored) float64 {
	best, bestT := -1.0, 0.0
	for _, t := range candidates(items) {
		r := At(items, t)
		if v := r.InScopeAccuracy + r.OOSRecall; v > best {
			best, bestT = v, t
		}
	}
	return bestT
}

// Curve is a threshold sweep on items, ascending in threshold.
func Curve(items []Scored) []Row {
	ts := candidates(items)
	// A few hundred points draw the curve; more only slow the plot.
	step := max(1, len(ts)/400)
	var out []Row
	for i := 0; i < len(ts); i += step {
		out = append(out, At(items, ts[i]))
	}
	return append(out, At(items, ts[len(ts)-1]))
}
