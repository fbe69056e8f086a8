package main

import (
	"bytes"
	"math"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent/transport/mqtt"
)

func TestPartOf(t *testing.T) {
	for _, c := range []struct {
		stack []string
		want  string
	}{
		// A system call counts for whoever made it.
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.write", "net.(*conn).Write",
			"github.com/eclipse/paho.mqtt.golang/packets.(*PublishPacket).Write", "github.com/eclipse/paho%2emqtt%2egolang.startOutgoingComms.func1"},
			"MQTT client (paho: packets, socket I/O)"},
		{[]string{"syscall.Fdatasync", "go.etcd.io/bbolt.fdatasync", "go.etcd.io/bbolt.(*Tx).Commit", "go.etcd.io/bbolt.(*DB).Update",
			"github.com/hedge-edge/hedge/agent/store.(*Store).PutReplies", "github.com/hedge-edge/hedge/agent/transport/mqtt.(*replies).write"}, partStoreWrite},
		{[]string{"go.etcd.io/bbolt.(*Cursor).seek", "go.etcd.io/bbolt.(*DB).View", "github.com/hedge-edge/hedge/agent/store.(*Store).GetReply"}, partStoreRead},
		// JSON is JSON whoever calls it; allocation counts for its caller.
		{[]string{"runtime.mallocgc", "encoding/json.(*decodeState).object", "encoding/json.Unmarshal",
			"github.com/hedge-edge/hedge/agent/store.(*Store).Get"}, "JSON encode and decode"},
		{[]string{"runtime.cgocall", "github.com/yalue/onnxruntime_go._Cfunc_RunOrtSessionWithOptions",
			"github.com/hedge-edge/hedge/models/slm.(*Classifier).Run", "github.com/hedge-edge/hedge/agent.(*Agent).route"}, "intent model (featurize, ONNX Runtime)"},
		// A GC assist inside an allocation is GC.
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcAssistAlloc1", "runtime.mallocgc", "encoding/json.Marshal"}, "GC (mark and sweep workers, assists)"},
		{[]string{"github.com/hedge-edge/hedge/agent.Query.Validate", "github.com/hedge-edge/hedge/agent.(*Agent).handle"}, "agent (validate, cache look-up, policy)"},
		{[]string{"github.com/hedge-edge/hedge/agent/transport/mqtt.dedupKey", "github.com/hedge-edge/hedge/agent/transport/mqtt.(*Transport).process"}, "mqtt transport (decode, dedup, acks)"},
		{[]string{"runtime.futex", "runtime.findRunnable", "runtime.schedule", "runtime.mcall"}, partRuntime},
		{[]string{"crypto/sha256.block", "time.goFunc"}, partOther},
		{[]string{"?"}, partUnsymbolled},
		{[]string{"?", "runtime._ExternalCode"}, partExternal},
	} {
		if got := partOf(c.stack); got != c.want {
			t.Errorf("partOf(%q) = %q, want %q", c.stack[0], got, c.want)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis; utime 1234, stime 56.
	stat := "4242 (hedge (x) run) S 1 4242 4242 0 -1 4194560 9000 0 12 0 1234 56 0 0 20 0 12 0 500 3000000 5000"
	d, err := parseStatCPU(stat)
	if err != nil || d != 12900*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 12.9s", d, err)
	}
	for _, bad := range []string{"", "4242 hedge S 1", "4242 (hedge) S 1 2 3"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) read a malformed line", bad)
		}
	}
}

// spin burns CPU in a function of its own, for the profile.
func spin(d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		n++
	}
	return n
}

// TestParseProfile reads profiles runtime/pprof wrote: a CPU profile whose
// samples carry stacks with spin in them, and an allocation profile.
func TestParseProfile(t *testing.T) {
	var cpu bytes.Buffer
	if err := pprof.StartCPUProfile(&cpu); err != nil {
		t.Skipf("a CPU profile is running: %v", err)
	}
	spin(300 * time.Millisecond)
	pprof.StopCPUProfile()
	p, err := parseProfile(cpu.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ci := p.valueIndex("cpu")
	if ci < 0 || p.duration <= 0 || len(p.samples) == 0 {
		t.Fatalf("cpu profile: types %v, duration %d, %d samples", p.types, p.duration, len(p.samples))
	}
	var spun, total int64
	for _, s := range p.samples {
		total += s.values[ci]
		if strings.Contains(strings.Join(s.stack, " "), "hedge-bench.spin") {
			spun += s.values[ci]
		}
	}
	if spun < total/2 {
		t.Errorf("spin has %d of %d ns of the profile", spun, total)
	}

	var heap bytes.Buffer
	if err := pprof.Lookup("allocs").WriteTo(&heap, 0); err != nil {
		t.Fatal(err)
	}
	a, err := parseProfile(heap.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if a.valueIndex("alloc_objects") < 0 || a.valueIndex("alloc_space") < 0 {
		t.Errorf("allocs profile types %v", a.types)
	}
}

// TestBreakdown: CPU per request is the profile's time over rate ×
// seconds, split by part; allocations are the second profile's counts less
// the first's, stack by stack.
func TestBreakdown(t *testing.T) {
	paho := []string{"syscall.write", "github.com/eclipse/paho%2emqtt%2egolang.startOutgoingComms.func1"}
	slm := []string{"runtime.cgocall", "github.com/hedge-edge/hedge/models/slm.(*Classifier).Run"}
	cpu := &profile{types: []string{"samples", "cpu"}, duration: 2e9, samples: []sample{
		{stack: paho, values: []int64{3, 30e6}},
		{stack: slm, values: []int64{1, 10e6}},
		{stack: paho, values: []int64{1, 10e6}},
	}}
	types := []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}
	a0 := &profile{types: types, samples: []sample{{stack: slm, values: []int64{100, 1000, 0, 0}}}}
	a1 := &profile{types: types, samples: []sample{
		{stack: slm, values: []int64{500, 5000, 0, 0}},
		{stack: paho, values: []int64{100, 2000, 0, 0}},
	}}
	bd, err := breakdown(cpu, a0, a1, 100) // 200 requests in 2 s
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if bd.Requests != 200 || !near(bd.CPUus, 250) || !near(bd.Allocs, 2.5) || !near(bd.AllocBytes, 30) {
		t.Fatalf("breakdown = %+v; want 200 requests, 250 µs, 2.5 allocations, 30 B each", bd)
	}
	if len(bd.Parts) != 2 || bd.Parts[0].Name != "MQTT client (paho: packets, socket I/O)" || !near(bd.Parts[0].CPUus, 200) ||
		!near(bd.Parts[0].Share, 0.8) || !near(bd.Parts[1].Allocs, 2) || !near(bd.Parts[1].AllocBytes, 20) {
		t.Errorf("parts = %+v", bd.Parts)
	}
	if _, err := breakdown(&profile{types: []string{"cpu"}, duration: 1e9}, a0, a1, 100); err == nil {
		t.Error("a profile without samples broke down without error")
	}
}

// TestAddUnseen: what /proc counts beyond the profile is a part of its
// own, and the shares are then of /proc's count.
func TestAddUnseen(t *testing.T) {
	bd := mqtt.CPUBreakdown{CPUus: 150, Parts: []mqtt.CPUPart{{Name: "a", CPUus: 100, Share: 2.0 / 3}, {Name: "b", CPUus: 50, Share: 1.0 / 3}}}
	addUnseen(&bd, 275)
	if bd.ProcessCPUus != 275 || len(bd.Parts) != 3 || bd.Parts[0].Name != partUnseen || bd.Parts[0].CPUus != 125 ||
		bd.Parts[1].Name != "a" || bd.Parts[2].Name != "b" || math.Abs(bd.Parts[2].Share-50.0/275) > 1e-12 {
		t.Errorf("parts = %+v", bd.Parts)
	}
	bd = mqtt.CPUBreakdown{CPUus: 150, Parts: []mqtt.CPUPart{{Name: "a", CPUus: 150, Share: 1}}}
	if addUnseen(&bd, 140); len(bd.Parts) != 1 || bd.Parts[0].Share != 1 || bd.ProcessCPUus != 140 {
		t.Errorf("/proc below the profile: %+v", bd)
	}
}
