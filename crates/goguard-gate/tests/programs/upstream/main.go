// upstream is the Go service the gateway tests put behind goguard gate. Each request can ask
// for a status, a delay, a hang, a streamed body, answer headers and body of its choosing, or
// an echo of what arrived; /control/mode
// switches the whole instance to failing, slow or healthy; /control/close-idle closes its
// idle keep-alive connections. /metrics serves go_gc_duration_seconds as the Prometheus Go
// client does (the real pauses, read from the runtime); /control/gc runs collections and can
// add a stated time to each pause it reports from then on, for the gateway's GC gate.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type state struct {
	mu    sync.Mutex
	mode  string        // "ok", "fail", "slow"
	delay time.Duration // for "slow"
	count atomic.Int64
}

func (s *state) get() (string, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode, s.delay
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	name := flag.String("name", "upstream", "instance name, sent back in X-Instance")
	h2c := flag.Bool("h2c", false, "also serve HTTP/2 with prior knowledge")
	flag.Parse()

	st := &state{mode: "ok"}
	mux := http.NewServeMux()
	mux.HandleFunc("/control/mode", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("delay"))
		st.mu.Lock()
		st.mode, st.delay = r.URL.Query().Get("set"), d
		st.mu.Unlock()
		fmt.Fprintln(w, "ok")
	})
	// GC pauses: the runtime's, plus `extra` for each collection after extraFrom.
	var gcMu sync.Mutex
	var extra time.Duration
	var extraFrom int64
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		var s debug.GCStats
		s.PauseQuantiles = make([]time.Duration, 5)
		debug.ReadGCStats(&s)
		gcMu.Lock()
		total := s.PauseTotal
		if s.NumGC > extraFrom {
			total += extra * time.Duration(s.NumGC-extraFrom)
		}
		gcMu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.")
		fmt.Fprintln(w, "# TYPE go_gc_duration_seconds summary")
		for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
			fmt.Fprintf(w, "go_gc_duration_seconds{quantile=%q} %g\n", q, s.PauseQuantiles[i].Seconds())
		}
		fmt.Fprintf(w, "go_gc_duration_seconds_sum %g\n", total.Seconds())
		fmt.Fprintf(w, "go_gc_duration_seconds_count %d\n", s.NumGC)
	})
	mux.HandleFunc("/control/gc", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("extra")); err == nil {
			var s debug.GCStats
			debug.ReadGCStats(&s)
			gcMu.Lock()
			extra, extraFrom = d, s.NumGC
			gcMu.Unlock()
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("run"))
		for i := 0; i < n; i++ {
			runtime.GC()
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/control/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, st.count.Load())
	})
	var hook atomic.Value // the last body POSTed to /hook (an event webhook)
	hook.Store("")
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hook.Store(string(b))
	})
	mux.HandleFunc("/control/hook", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, hook.Load())
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if mode, _ := st.get(); mode == "fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		st.count.Add(1)
		w.Header().Set("X-Instance", *name)
		q := r.URL.Query()
		mode, delay := st.get()
		if d, err := time.ParseDuration(q.Get("delay")); err == nil {
			delay, mode = d, "slow"
		}
		if mode == "slow" {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if q.Get("hang") != "" {
			<-r.Context().Done()
			return
		}
		if mode == "fail" {
			http.Error(w, "failing on command", http.StatusInternalServerError)
			return
		}
		// Answer headers on command (set=Name:Value, repeatable), for the cache's tests.
		for _, h := range q["set"] {
			if k, v, ok := strings.Cut(h, ":"); ok {
				w.Header().Add(k, v)
			}
		}
		if s := q.Get("status"); s != "" {
			code, _ := strconv.Atoi(s)
			w.WriteHeader(code)
			fmt.Fprintf(w, "status %d\n", code)
			return
		}
		if n := q.Get("chunks"); n != "" {
			// A streamed answer: one chunk, then wait for the next request on /control/next.
			k, _ := strconv.Atoi(n)
			every, _ := time.ParseDuration(q.Get("every"))
			f := w.(http.Flusher)
			for i := 0; i < k; i++ {
				fmt.Fprintf(w, "chunk %d\n", i)
				f.Flush()
				select {
				case <-time.After(every):
				case <-r.Context().Done():
					return
				}
			}
			return
		}
		if b, ok := q["body"]; ok {
			fmt.Fprint(w, b[0])
			return
		}
		if h := q.Get("echo-header"); h != "" {
			fmt.Fprintf(w, "%s=%s #%d\n", h, r.Header.Get(h), st.count.Load())
			return
		}
		if q.Get("echo") != "" {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"method":  r.Method,
				"path":    r.URL.RequestURI(),
				"proto":   r.Proto,
				"host":    r.Host,
				"remote":  r.RemoteAddr,
				"headers": r.Header,
				"body":    len(body),
			})
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "hello from %s\n", *name)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux}
	// Closes every idle keep-alive connection at once, as a server restarting or an idle
	// timeout would: the gateway must not fail requests on the connections it kept.
	mux.HandleFunc("/control/close-idle", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		srv.SetKeepAlivesEnabled(false)
		srv.SetKeepAlivesEnabled(true)
		fmt.Fprintln(w, "ok")
	})
	if *h2c {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
