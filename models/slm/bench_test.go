package slm

import (
	"context"
	"testing"
)

// BenchmarkClassify measures one query through ONNX Runtime on one
// intra-op thread, featurization included.
func BenchmarkClassify(b *testing.B) {
	rt := testRuntime(b)
	o := DefaultBuildOptions()
	o.Train.Epochs = 5
	bundle, _, _, err := Build(context.Background(), toyCorpus(), o)
	if err != nil {
		b.Fatal(err)
	}
	clf, err := rt.LoadClassifier(bundle)
	if err != nil {
		b.Fatal(err)
	}
	defer clf.Close()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := clf.Classify(ctx, "could you please turn on the lights in the kitchen"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFeaturize measures hashing a query's n-grams.
func BenchmarkFeaturize(b *testing.B) {
	f := DefaultFeaturizer()
	for b.Loop() {
		f.Featurize("could you please turn on the lights in the kitchen")
	}
}
