package slm

import (
	"math"
	"slices"
)

// FitTemperature returns the temperature T that minimizes the negative log
// likelihood of labels under softmax(logits/T) — temperature scaling (Guo et
// al. 2017). It changes confidence, never the ranking of classes. The search
// is a golden-section search over log T in [1/20, 20]; the NLL is unimodal
// in T.
func FitTemperature(logits [][]float32, labels []int) float32 {
	if len(logits) == 0 {
		return 1
	}
	nll := func(logT float64) float64 {
		t := math.Exp(logT)
		var s float64
		for i, l := range logits {
			mx := math.Inf(-1)
			for _, v := range l {
				mx = math.Max(mx, float64(v)/t)
			}
			var z float64
			for _, v := range l {
				z += math.Exp(float64(v)/t - mx)
			}
			s += -(float64(l[labels[i]])/t - mx - math.Log(z))
		}
		return s / float64(len(logits))
	}
	lo, hi := math.Log(0.05), math.Log(20)
	g := (math.Sqrt(5) - 1) / 2
	a, b := hi-g*(hi-lo), lo+g*(hi-lo)
	fa, fb := nll(a), nll(b)
	for range 60 {
		if fa < fb {
			hi, b, fb = b, a, fa
			a = hi - g*(hi-lo)
			fa = nll(a)
		} else {
			lo, a, fa = a, b, fb
			b = lo + g*(hi-lo)
			fb = nll(b)
		}
	}
	return float32(math.Exp((lo + hi) / 2))
}

// ECE is the expected calibration error of top-1 predictions: confidences
// are put in bins equal-width bins, and the gaps between each bin's mean
// confidence and its accuracy are averaged, weighted by the bin's size.
func ECE(conf []float64, correct []bool, bins int) float64 {
	if len(conf) == 0 || bins < 1 {
		return 0
	}
	sumC := make([]float64, bins)
	sumA := make([]float64, bins)
	n := make([]int, bins)
	for i, c := range conf {
		b := min(int(c*float64(bins)), bins-1)
		b = max(b, 0)
		sumC[b] += c
		if correct[i] {
			sumA[b]++
		}
		n[b]++
	}
	var e float64
	for b := range bins {
		if n[b] == 0 {
			continue
		}
		e += math.Abs(sumC[b]-sumA[b]) / float64(len(conf))
	}
	return e
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of xs by the nearest-rank
// method; 0 for no values.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
