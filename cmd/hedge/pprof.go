package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

// pprofEnv names the loopback address on which `hedge run` serves Go's
// profiles, for profiling a running hedge (scripts/bench-mqtt.sh does,
// to break down where a request's CPU goes). Unset, nothing is served:
// the profiles expose hedge's internals and a CPU profile costs CPU.
const pprofEnv = "HEDGE_PPROF"

// profiled runs cmd with Go's profiles served on $HEDGE_PPROF, when set,
// for as long as cmd runs. Only a loopback address is accepted.
func profiled(cmd func(args []string) int) func(args []string) int {
	return func(args []string) int {
		addr := os.Getenv(pprofEnv)
		if addr == "" {
			return cmd(args)
		}
		ln, err := listenPprof(addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hedge: %s: %v\n", pprofEnv, err)
			return 1
		}
		srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(os.Stderr, "hedge: serving Go profiles on http://%s/debug/pprof/ (%s)\n", ln.Addr(), pprofEnv)
		return cmd(args)
	}
}

// listenPprof listens on addr, a host:port whose host is a loopback IP or
// localhost.
func listenPprof(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%q is not a loopback address; profiles are served on loopback only", addr)
	}
	return net.Listen("tcp", addr)
}

// pprofMux serves what `go tool pprof` fetches: /debug/pprof/profile
// (CPU, ?seconds=N, 30 by default) and the runtime's named profiles
// (/debug/pprof/allocs, heap, goroutine, ...; ?gc=1 collects first). It is written here rather
// than imported from net/http/pprof, whose init registers the same
// handlers on http.DefaultServeMux in every hedge command.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		secs := 30
		if s := r.URL.Query().Get("seconds"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 600 {
				http.Error(w, "seconds must be a whole number from 1 to 600", http.StatusBadRequest)
				return
			}
			secs = n
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.StartCPUProfile(w); err != nil {
			// Another CPU profile is running.
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		select {
		case <-time.After(time.Duration(secs) * time.Second):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
	})
	mux.HandleFunc("GET /debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
		p := pprof.Lookup(r.PathValue("name"))
		if p == nil {
			http.Error(w, "no such profile", http.StatusNotFound)
			return
		}
		// The heap profiles are as of the last GC; gc=1 runs one first,
		// as net/http/pprof's handler does.
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
		if debug == 0 {
			w.Header().Set("Content-Type", "application/octet-stream")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		// A write that fails has lost its client: nothing to tell.
		_ = p.WriteTo(w, debug)
	})
	return mux
}
