package evaluate

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMetricsAndThresholds(t *testing.T) {
	items := []Scored{
		{Gold: "a", Pred: "a", Conf: 0.9},
		{Gold: "a", Pred: "b", Conf: 0.6},
		{Gold: "b", Pred: "b", Conf: 0.4},
		{Gold: "b", Pred: "", Conf: 0.3}, // the classifier's oos class
		{Gold: OOS, Pred: "a", Conf: 0.5},
		{Gold: OOS, Pred: "", Conf: 0.8},
		{Gold: OOS, Pred: "b", Conf: 0.2},
		{Gold: OOS, Pred: "a", Conf: 0.7},
	}
	r := At(items, 0)
	if !near(r.InScopeAccuracy, 0.5) || !near(r.OOSRecall, 0.25) || !near(r.Coverage, 6.0/8) || !near(r.Risk, 4.0/6) {
		t.Errorf("At(0) = %+v", r)
	}
	r = At(items, 0.55)
	if !near(r.InScopeAccuracy, 0.25) || !near(r.OOSRecall, 0.75) {
		t.Errorf("At(0.55) = %+v", r)
	}
	// At 0.4 two of the four oos items are rejected (the oos-class one and
	// 0.2); 0.75 needs 0.5 rejected too, i.e. the next confidence, 0.6.
	if th := PickByRecall(items, 0.5); !near(th, 0.4) {
		t.Errorf("PickByRecall(0.5) = %v, want 0.4", th)
	}
	if th := PickByRecall(items, 0.75); !near(th, 0.6) {
		t.Errorf("PickByRecall(0.75) = %v, want 0.6", th)
	}
	if th := PickByRecall(items, 1); At(items, th).OOSRecall != 1 {
		t.Errorf("PickByRecall(1) = %v does not reject every oos item", th)
	}
	th := PickLarson(items)
	best := At(items, th)
	for _, c := range candidates(items) {
		if o := At(items, c); o.InScopeAccuracy+o.OOSRecall > best.InScopeAccuracy+best.OOSRecall+1e-12 {
			t.Errorf("Larson picked %v (%v) but %v scores %v", th, best, c, o)
		}
	}
	curve := Curve(items)
	for i := 1; i < len(curve); i++ {
		if curve[i].Threshold < curve[i-1].Threshold || curve[i].OOSRecall < curve[i-1].OOSRecall {
			t.Errorf("curve not monotone at %d: %+v then %+v", i, curve[i-1], curve[i])
		}
	}
}

func TestParseCLINC150(t *testing.T) {
	good := `{"train":[["hi","greet"],["bye","leave"]],"val":[["hello","greet"]],"test":[["ciao","leave"]],
		"oos_train":[["why","oos"]],"oos_val":[["what","oos"]],"oos_test":[["how","oos"]]}`
	ds, err := ParseCLINC150([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Train) != 3 || len(ds.Val) != 2 || len(ds.Test) != 2 || strings.Join(ds.Intents, ",") != "greet,leave" {
		t.Errorf("parsed %+v", ds)
	}
	for _, bad := range []string{`[]`, `{"train":[]}`, strings.Replace(good, `["why","oos"]`, `["why","greet"]`, 1),
		strings.Replace(good, `["hi","greet"]`, `["","greet"]`, 1)} {
		if _, err := ParseCLINC150([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := LoadCLINC150("/nonexistent.json"); err == nil {
		t.Error("missing file accepted")
	}
}

func TestFastTextRoundTrip(t *testing.T) {
	ds := Dataset{
		Train: []Item{{"turn  on\tthe light", "on"}, {"why", OOS}},
		Val:   []Item{{"hello", "on"}, {"what", OOS}},
		Test:  []Item{{"x", "on"}},
	}
	dir := t.TempDir()
	if err := WriteFastText(ds, dir); err != nil {
		t.Fatal(err)
	}
	train, _ := os.ReadFile(filepath.Join(dir, "train.txt"))
	if string(train) != "__label__on turn on the light\n__label__oos why\n" {
		t.Errorf("train.txt = %q", train)
	}
	val, _ := os.ReadFile(filepath.Join(dir, "val.txt"))
	if string(val) != "hello\nwhat\n" {
		t.Errorf("val.txt = %q", val)
	}
	got, err := ReadFastTextPredictions(strings.NewReader("__label__on 0.9\n__label__oos 1.00001\n"), ds.Val)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != (Scored{Gold: "on", Pred: "on", Conf: 0.9}) || got[1].Pred != "" || got[1].Conf != 1 {
		t.Errorf("predictions %+v", got)
	}
	for _, bad := range []string{"__label__on 0.9\n", "on 0.9\n__label__oos 0.1\n", "__label__on x\n__label__oos 0.1\n", "__label__a 1\n__label__b 1\n__label__c 1\n"} {
		if _, err := ReadFastTextPredictions(strings.NewReader(bad), ds.Val); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	rows := Baseline("fastText", got, got, 0.5)
	if len(rows) != 3 || !strings.HasPrefix(rows[0].Name, "fastText") {
		t.Errorf("baseline rows %+v", rows)
	}
}
