package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestListenPprofLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "example.org:6060", "127.0.0.1"} {
		if ln, err := listenPprof(addr); err == nil {
			ln.Close()
			t.Errorf("listenPprof(%q) accepted a non-loopback or malformed address", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		ln, err := listenPprof(addr)
		if err != nil {
			t.Errorf("listenPprof(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// TestPprofMux: the CPU profile and a named profile come back as gzipped
// protocol buffers (what go tool pprof reads); bad requests are refused.
func TestPprofMux(t *testing.T) {
	srv := httptest.NewServer(pprofMux())
	defer srv.Close()
	for _, path := range []string{"/debug/pprof/profile?seconds=1", "/debug/pprof/allocs", "/debug/pprof/allocs?gc=1"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("GET %s: not gzip: %v", path, err)
		}
		if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
			t.Fatalf("GET %s: %d bytes, %v", path, len(b), err)
		}
	}
	for path, want := range map[string]int{
		"/debug/pprof/profile?seconds=0": 400, "/debug/pprof/profile?seconds=x": 400, "/debug/pprof/nothing": 404,
	} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "goroutine profile") {
		t.Errorf("goroutine?debug=1: %.100q, want the text form", b)
	}
}
