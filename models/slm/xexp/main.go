// temporary experiment driver (to be deleted)
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

func main() {
	cfg := slm.DefaultTrainConfig()
	flag.IntVar(&cfg.Dim, "dim", cfg.Dim, "")
	flag.IntVar(&cfg.Hidden, "hidden", cfg.Hidden, "")
	flag.IntVar(&cfg.Members, "members", cfg.Members, "")
	flag.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "")
	flag.IntVar(&cfg.Batch, "batch", cfg.Batch, "")
	flag.Float64Var(&cfg.LR, "lr", cfg.LR, "")
	flag.Float64Var(&cfg.WeightDecay, "wd", cfg.WeightDecay, "")
	flag.Float64Var(&cfg.EmbDecay, "ed", cfg.EmbDecay, "")
	flag.Float64Var(&cfg.DropFeature, "df", cfg.DropFeature, "")
	flag.Float64Var(&cfg.DropEmbed, "de", cfg.DropEmbed, "")
	flag.Float64Var(&cfg.DropHidden, "dh", cfg.DropHidden, "")
	flag.Float64Var(&cfg.LabelSmoothing, "ls", cfg.LabelSmoothing, "")
	flag.IntVar(&cfg.Feat.Buckets, "buckets", cfg.Feat.Buckets, "")
	flag.IntVar(&cfg.Feat.CharMin, "cmin", cfg.Feat.CharMin, "")
	flag.IntVar(&cfg.Feat.CharMax, "cmax", cfg.Feat.CharMax, "")
	flag.IntVar(&cfg.Feat.WordNgrams, "wn", cfg.Feat.WordNgrams, "")
	oosClass := flag.Bool("oos", true, "")
	quant := flag.Bool("q", false, "")
	mix := flag.Int("mix", 0, "")
	mixw := flag.Float64("mixw", 0, "")
	views := flag.String("views", "", "")
	flag.Parse()
	if *views != "" {
		for _, v := range strings.Split(*views, ",") {
			cfg.Views = append(cfg.Views, slm.View(v))
		}
	}
	ds, err := evaluate.LoadCLINC150("/work/shared/datasets/clinc150/data_full.json")
	if err != nil {
		panic(err)
	}
	labels := append([]string{}, ds.Intents...)
	if *oosClass {
		labels = append(labels, "oos")
	}
	li := map[string]int{}
	for i, l := range labels {
		li[l] = i
	}
	var tr []slm.Example
	for _, it := range ds.Train {
		if l, ok := li[it.Label]; ok {
			tr = append(tr, slm.Example{Text: it.Text, Label: l})
		}
	}
	if *mix > 0 {
		tr = append(tr, slm.MixNegatives(tr, li["oos"], *mix, float32(*mixw), 7)...)
	}
	t0 := time.Now()
	m, err := slm.Train(context.Background(), tr, labels, cfg)
	if err != nil {
		panic(err)
	}
	used := 0
	for r := 0; r < cfg.Feat.Buckets; r++ {
		for _, v := range m.Nets[0].Emb[r*cfg.Dim : (r+1)*cfg.Dim] {
			if v != 0 {
				used++
				break
			}
		}
	}
	fmt.Fprintln(os.Stderr, "train", time.Since(t0), "used rows", used)
	if *quant {
		m.Quantize()
	}
	var vl [][]float32
	var vy []int
	for _, it := range ds.Val {
		if l, ok := li[it.Label]; ok {
			vl = append(vl, m.Logits(cfg.Feat.Featurize(it.Text), nil))
			vy = append(vy, l)
		}
	}
	m.Temperature = slm.FitTemperature(vl, vy)
	oi, hasOOS := li["oos"]
	type pr struct {
		gold  string
		probs []float32
		logit []float32
	}
	pred := func(items []evaluate.Item) []pr {
		var out []pr
		for _, it := range items {
			f := cfg.Feat.Featurize(it.Text)
			p := m.Predict(f)
			out = append(out, pr{it.Label, p.Probs, m.Logits(f, nil)})
		}
		return out
	}
	vp, tp := pred(ds.Val), pred(ds.Test)
	rules := map[string]func(p pr) (string, float64){
		"maxprob": func(p pr) (string, float64) {
			b := 0
			for i, v := range p.probs {
				if v > p.probs[b] {
					b = i
				}
			}
			if hasOOS && b == oi {
				return "", float64(p.probs[b])
			}
			return labels[b], float64(p.probs[b])
		},
		"maxin": func(p pr) (string, float64) {
			b := -1
			for i, v := range p.probs {
				if hasOOS && i == oi {
					continue
				}
				if b < 0 || v > p.probs[b] {
					b = i
				}
			}
			return labels[b], float64(p.probs[b])
		},
		"maxin-minus-oos": func(p pr) (string, float64) {
			b := -1
			for i, v := range p.probs {
				if hasOOS && i == oi {
					continue
				}
				if b < 0 || v > p.probs[b] {
					b = i
				}
			}
			s := float64(p.probs[b])
			if hasOOS {
				s -= float64(p.probs[oi])
			}
			return labels[b], (s + 1) / 2
		},
		"energy": func(p pr) (string, float64) {
			b := -1
			mx := float32(-1e30)
			for i, v := range p.logit {
				if hasOOS && i == oi {
					continue
				}
				if v > mx {
					mx, b = v, i
				}
			}
			var z float64
			for i, v := range p.logit {
				if hasOOS && i == oi {
					continue
				}
				z += math.Exp(float64(v - mx))
			}
			e := float64(mx) + math.Log(z)
			return labels[b], 1 / (1 + math.Exp(-e/4))
		},
	}
	rules["oos+energy"] = func(p pr) (string, float64) {
		l, c := rules["energy"](p)
		if l2, _ := rules["maxprob"](p); l2 == "" {
			return "", c
		}
		return l, c
	}
	for _, name := range []string{"maxprob", "energy", "oos+energy"} {
		rule := rules[name]
		conv := func(ps []pr) []evaluate.Scored {
			var out []evaluate.Scored
			for _, p := range ps {
				l, c := rule(p)
				out = append(out, evaluate.Scored{Gold: p.gold, Pred: l, Conf: c})
			}
			return out
		}
		vs, ts := conv(vp), conv(tp)
		th := evaluate.PickByRecall(vs, 0.75)
		r := evaluate.At(ts, th)
		ro := evaluate.At(ts, evaluate.PickByRecall(ts, 0.75))
		rl := evaluate.At(ts, evaluate.PickLarson(vs))
		fmt.Printf("%-16s oracle in %.2f | R.75: in %.2f oos %.2f | larson: in %.2f oos %.2f   %v\n", name, 100*ro.InScopeAccuracy,
			100*r.InScopeAccuracy, 100*r.OOSRecall, 100*rl.InScopeAccuracy, 100*rl.OOSRecall, os.Args[1:])
	}
}
