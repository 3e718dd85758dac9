// loadsim stands for a Go service whose load a test drives: it exports, in Prometheus's
// text format, the figures goguard scale reads (CPU share, requests queued, connection-pool
// share, p95 latency), each set through /set and optionally noisy, and it takes scaling
// webhooks on /hook (which can bring p95 down, as a scaling that worked would).
//
//	GET  /metrics                      the figures (noise applied per scrape)
//	GET  /set?cpu=0.9&queue=300&pool=0.95&p95=0.25&noise=0.1&after_p95=0.12&hook_status=200
//	POST /hook                         a scaling webhook: counted, body kept
//	GET  /hooks                        "COUNT\nLAST BODY"
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
)

type state struct {
	mu         sync.Mutex
	values     map[string]float64
	noise      float64
	afterP95   float64
	hookStatus int
	hooks      int
	lastHook   string
}

var names = []string{"cpu", "queue", "pool", "p95"}

var metric = map[string]string{
	"cpu":   "orders_cpu_ratio",
	"queue": "orders_queue_depth",
	"pool":  "orders_redis_pool_usage",
	"p95":   "orders_p95_seconds",
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	flag.Parse()
	s := &state{values: map[string]float64{"cpu": 0.2, "queue": 0, "pool": 0.1, "p95": 0.05}, afterP95: -1, hookStatus: 200}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for _, n := range names {
			v := s.values[n] * (1 + s.noise*(2*rand.Float64()-1))
			fmt.Fprintf(w, "# TYPE %s gauge\n%s %g\n", metric[n], metric[n], v)
		}
		fmt.Fprintf(w, "# TYPE orders_scale_hooks_total counter\norders_scale_hooks_total %d\n", s.hooks)
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		q := r.URL.Query()
		for _, n := range names {
			if v := q.Get(n); v != "" {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				s.values[n] = f
			}
		}
		if v := q.Get("noise"); v != "" {
			s.noise, _ = strconv.ParseFloat(v, 64)
		}
		if v := q.Get("after_p95"); v != "" {
			s.afterP95, _ = strconv.ParseFloat(v, 64)
		}
		if v := q.Get("hook_status"); v != "" {
			s.hookStatus, _ = strconv.Atoi(v)
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hooks++
		s.lastHook = string(body)
		if s.afterP95 >= 0 {
			s.values["p95"] = s.afterP95
		}
		w.WriteHeader(s.hookStatus)
		fmt.Fprintln(w, "hook", s.hooks)
	})
	mux.HandleFunc("/hooks", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		fmt.Fprintf(w, "%d\n%s", s.hooks, s.lastHook)
	})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	http.Serve(l, mux)
}
