package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/agent/transport/mqtt"
)

// profileCmd is `hedge-bench profile`: while a steady load runs against a
// hedge started with HEDGE_PPROF, it takes a CPU profile and an allocation
// profile before and after it (each after a GC: the heap profiles are as
// of the last one), and splits the CPU time and the allocations per
// request by where they happen (partRules).
func profileCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "base URL of hedge's profiles (HEDGE_PPROF), e.g. http://127.0.0.1:6060")
	seconds := fs.Int("seconds", 8, "how long the CPU profile runs")
	rate := fs.Int("rate", 0, "requests a second the load sends meanwhile (required)")
	path := fs.String("path", "slm", "the load's path of hedge-bench mqtt, for the record")
	pid := fs.Int("pid", 0, "hedge's process id: its CPU time from /proc as well (0: not read)")
	jsonOut := fs.String("json", "", "write the breakdown (mqtt.CPUBreakdown) as JSON to this file")
	cpuOut := fs.String("cpu", "", "keep the CPU profile in this file (for go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || *rate < 1 || *seconds < 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: hedge-bench profile --url URL --rate N [--seconds 8] [--pid PID] [--json FILE] [--cpu FILE]")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "hedge-bench profile: %v\n", err)
		return 1
	}
	base := strings.TrimSuffix(*url, "/") + "/debug/pprof/"
	before, err := fetch(ctx, base+"allocs?gc=1", 30*time.Second)
	if err != nil {
		return fail(err)
	}
	cpu0, err := processCPU(*pid)
	if err != nil {
		return fail(err)
	}
	cpuRaw, err := fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, *seconds), time.Duration(*seconds)*time.Second+30*time.Second)
	if err != nil {
		return fail(err)
	}
	cpu1, err := processCPU(*pid)
	if err != nil {
		return fail(err)
	}
	after, err := fetch(ctx, base+"allocs?gc=1", 30*time.Second)
	if err != nil {
		return fail(err)
	}
	if *cpuOut != "" {
		if err := os.WriteFile(*cpuOut, cpuRaw, 0o644); err != nil {
			return fail(err)
		}
	}
	cpuProf, err := parseProfile(cpuRaw)
	if err != nil {
		return fail(fmt.Errorf("cpu %w", err))
	}
	a0, err := parseProfile(before)
	if err != nil {
		return fail(fmt.Errorf("allocs %w", err))
	}
	a1, err := parseProfile(after)
	if err != nil {
		return fail(fmt.Errorf("allocs %w", err))
	}
	bd, err := breakdown(cpuProf, a0, a1, *rate)
	if err != nil {
		return fail(err)
	}
	bd.Path = *path
	if *pid > 0 && bd.Requests > 0 {
		addUnseen(&bd, (cpu1-cpu0).Seconds()*1e6/bd.Requests)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			bd.Load = strings.Join(f[:3], " ")
		}
	}
	fmt.Fprint(stdout, breakdownTable(bd))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(bd, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fail(err)
		}
	}
	return 0
}

func fetch(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// processCPU is the user and system time pid has used (0 for pid 0),
// from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat
// line. The command name (field 2) may hold spaces and parentheses, so the
// fields are counted from its last ')'. Both count clock ticks of USER_HZ,
// which is 100 on every Linux architecture hedge builds for.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is f[11], stime f[12].
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// partRule names a part of hedge's work by the functions that do it: a
// sample counts for the first rule that matches its stack's innermost
// frame that any rule matches, so that encoding/json called by the
// store counts as JSON and a system call counts for whoever made it.
type partRule struct {
	name  string
	match []string // substrings of a function's full name
}

var partRules = []partRule{
	{"GC (mark and sweep workers, assists)", []string{"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.gcAssistAlloc",
		"runtime.bgsweep", "runtime.bgscavenge", "runtime.markroot", "runtime.gcMarkDone", "runtime.gcStart", "runtime.gcMarkTermination"}},
	{"intent model (featurize, ONNX Runtime)", []string{"hedge-edge/hedge/models/slm", "yalue/onnxruntime_go"}},
	{partStore, []string{"go.etcd.io/bbolt", "hedge-edge/hedge/agent/store."}},
	{"JSON encode and decode", []string{"encoding/json."}},
	{"MQTT client (paho: packets, socket I/O)", []string{"eclipse/paho"}},
	{"metrics (telemetry, Prometheus)", []string{"hedge-edge/hedge/agent/telemetry", "prometheus/client_golang"}},
	{"intent answer (template, device facts)", []string{"hedge-edge/hedge/agent/intents", "hedge-edge/hedge/platform", "text/template"}},
	{"mqtt transport (decode, dedup, acks)", []string{"hedge-edge/hedge/agent/transport/mqtt."}},
	{"agent (validate, cache look-up, policy)", []string{"hedge-edge/hedge/agent."}},
	{"other hedge code (wiring, logs)", []string{"hedge-edge/hedge/", "main.", "log/slog."}},
}

// The store's part is split by what the stack does with it.
const (
	partStore       = "store"
	partStoreWrite  = "store writes (reply records: commit, fdatasync)"
	partStoreRead   = "store reads (reply window, cache)"
	partRuntime     = "Go runtime (scheduler, timers, netpoll)"
	partExternal    = "C code on threads of its own (ONNX Runtime's pool)"
	partOther       = "other (standard library)"
	partUnsymbolled = "unsymbolized"
	partUnseen      = "in /proc, not in the profile (kernel: context switches, interrupts)"
)

// storeWrites mark a stack that commits to the store.
var storeWrites = []string{"bbolt.(*DB).Batch", "bbolt.(*batch)", "bbolt.(*DB).Update", "bbolt.(*Tx).Commit", "store.(*Store).PutReply"}

// partOf names the part of hedge a stack (leaf first) belongs to.
func partOf(stack []string) string {
	for _, fn := range stack {
		for _, r := range partRules {
			if !containsAny(fn, r.match) {
				continue
			}
			if r.name != partStore {
				return r.name
			}
			for _, f := range stack {
				if containsAny(f, storeWrites) {
					return partStoreWrite
				}
			}
			return partStoreRead
		}
	}
	// A thread Go did not start (ONNX Runtime's intra-op pool) has no Go
	// stack: the profiler records its C address under _ExternalCode.
	if len(stack) > 0 && stack[len(stack)-1] == "runtime._ExternalCode" {
		return partExternal
	}
	if len(stack) == 0 || stack[0] == "?" {
		return partUnsymbolled
	}
	for _, fn := range stack {
		if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/") && !strings.HasPrefix(fn, "sync.") {
			return partOther
		}
	}
	return partRuntime
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// breakdown splits the CPU profile, and the allocations made between the
// allocation profiles a0 and a1, per request of a load of rate requests a
// second.
func breakdown(cpu, a0, a1 *profile, rate int) (mqtt.CPUBreakdown, error) {
	ci := cpu.valueIndex("cpu")
	if ci < 0 {
		return mqtt.CPUBreakdown{}, errors.New("cpu profile: no cpu values")
	}
	bd := mqtt.CPUBreakdown{Rate: rate, Seconds: float64(cpu.duration) / 1e9}
	bd.Requests = float64(rate) * bd.Seconds
	if bd.Requests <= 0 {
		return bd, errors.New("cpu profile: no duration")
	}
	parts := map[string]*mqtt.CPUPart{}
	part := func(name string) *mqtt.CPUPart {
		if parts[name] == nil {
			parts[name] = &mqtt.CPUPart{Name: name}
		}
		return parts[name]
	}
	var total float64
	for _, s := range cpu.samples {
		if ci >= len(s.values) {
			continue
		}
		ns := float64(s.values[ci])
		total += ns
		part(partOf(s.stack)).CPUus += ns / 1e3
	}
	if total == 0 {
		return bd, errors.New("cpu profile: no samples (was the load running?)")
	}
	objs, space := a1.valueIndex("alloc_objects"), a1.valueIndex("alloc_space")
	if objs < 0 || space < 0 || a0.valueIndex("alloc_objects") != objs || a0.valueIndex("alloc_space") != space {
		return bd, errors.New("allocs profile: no alloc_objects and alloc_space values")
	}
	// Allocation profiles count since the start: the window's allocations
	// are the second's counts less the first's, stack by stack.
	type counts struct{ objs, bytes int64 }
	earlier := map[string]counts{}
	for _, s := range a0.samples {
		k := strings.Join(s.stack, "\n")
		c := earlier[k]
		c.objs += s.values[objs]
		c.bytes += s.values[space]
		earlier[k] = c
	}
	later := map[string]counts{}
	stacks := map[string][]string{}
	for _, s := range a1.samples {
		k := strings.Join(s.stack, "\n")
		c := later[k]
		c.objs += s.values[objs]
		c.bytes += s.values[space]
		later[k] = c
		stacks[k] = s.stack
	}
	for k, c := range later {
		d := counts{c.objs - earlier[k].objs, c.bytes - earlier[k].bytes}
		if d.objs <= 0 && d.bytes <= 0 {
			continue
		}
		p := part(partOf(stacks[k]))
		p.Allocs += float64(d.objs)
		p.AllocBytes += float64(d.bytes)
	}
	for _, p := range parts {
		p.Share = p.CPUus * 1e3 / total
		p.CPUus /= bd.Requests
		p.Allocs /= bd.Requests
		p.AllocBytes /= bd.Requests
		bd.CPUus += p.CPUus
		bd.Allocs += p.Allocs
		bd.AllocBytes += p.AllocBytes
		bd.Parts = append(bd.Parts, *p)
	}
	sortParts(bd.Parts)
	return bd, nil
}

// addUnseen records the process's own count of its CPU per request
// (/proc) and, when it is larger than the profile's, the difference as a
// part of its own, the shares then being of the process's count. The Go
// profiler attributes a sample to the stack a thread returns to; time the
// kernel spends around it (context switches, which are dear in a VM, and
// interrupts) is in /proc but not always in a sample.
func addUnseen(bd *mqtt.CPUBreakdown, processUs float64) {
	bd.ProcessCPUus = processUs
	if processUs <= bd.CPUus {
		return
	}
	bd.Parts = append(bd.Parts, mqtt.CPUPart{Name: partUnseen, CPUus: processUs - bd.CPUus})
	for i := range bd.Parts {
		bd.Parts[i].Share = bd.Parts[i].CPUus / processUs
	}
	sortParts(bd.Parts)
}

func sortParts(parts []mqtt.CPUPart) {
	slices.SortFunc(parts, func(a, b mqtt.CPUPart) int {
		switch {
		case a.CPUus > b.CPUus:
			return -1
		case a.CPUus < b.CPUus:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// breakdownTable is the console form of a breakdown.
func breakdownTable(bd mqtt.CPUBreakdown) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s path at %d q/s, %.0f s profiled: %.0f µs of CPU per request (profile), %.0f µs (/proc); %.0f allocations, %.0f B per request\n",
		bd.Path, bd.Rate, bd.Seconds, bd.CPUus, bd.ProcessCPUus, bd.Allocs, bd.AllocBytes)
	fmt.Fprintf(&b, "%-50s %7s %9s %9s %10s\n", "part", "share", "µs/req", "allocs", "B/req")
	for _, p := range bd.Parts {
		fmt.Fprintf(&b, "%-50s %6.1f%% %9.1f %9.1f %10.0f\n", p.Name, 100*p.Share, p.CPUus, p.Allocs, p.AllocBytes)
	}
	return b.String()
}
