package anonymize

import (
	"slices"
	"testing"
	"time"
)

// query200 is a 200-character query of the kind hedge escalates, with five
// entities of five kinds among ordinary words.
const query200 = "Hi, this is Maria Schmidt: please email jonas.k@example.org the logs of " +
	"the router at 192.168.1.20 (MAC 00:1A:2B:3C:4D:5E) and call +49 30 1234567 " +
	"when done. What does the boiler error E1042 mean now?"

// BenchmarkAnonymize200 measures the anonymizer on a 200-character query:
// queries per second and the 99th percentile of one query in µs.
func BenchmarkAnonymize200(b *testing.B) {
	if len(query200) != 200 {
		b.Fatalf("query is %d characters", len(query200))
	}
	a := testAnonymizer(b, nil)
	if r := a.Anonymize(query200); len(r.Mapping) != 5 {
		b.Fatalf("%d entities in the benchmark query, want 5: %q", len(r.Mapping), r.Text)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		r := a.Anonymize(query200)
		lat = append(lat, time.Since(t0))
		if len(r.Mapping) != 5 {
			b.Fatal("unstable result")
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkRestore measures restoring an answer that quotes the placeholders.
func BenchmarkRestore(b *testing.B) {
	a := testAnonymizer(b, nil)
	r := a.Anonymize(query200)
	answer := "I sent the logs of [IP_1] ([MAC_1]) to [EMAIL_1] and will call [PHONE_1], [PERSON_1]. " +
		"E1042 means the boiler's pressure is low: top it up to 1.5 bar."
	b.ReportAllocs()
	for range b.N {
		_ = Restore(answer, r.Mapping)
	}
}
