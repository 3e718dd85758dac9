// db is the database stand-in of bench/cache: each lookup holds one of 20 connections for
// 20 ms; items 1..N exist (200, a small JSON document), any other id is missing (404).
// /control/stats tells how many lookups were asked for and the most that were in flight at
// once (on a connection or waiting for one); /control/reset zeroes both.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	items := flag.Int("items", 10000, "ids 1..items exist")
	pool := flag.Int("pool", 20, "connections")
	lookup := flag.Duration("lookup", 20*time.Millisecond, "time per lookup")
	flag.Parse()

	conns := make(chan struct{}, *pool)
	var asked, inFlight, peak atomic.Int64
	http.HandleFunc("/control/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %d\n", asked.Load(), peak.Load())
	})
	http.HandleFunc("/control/reset", func(w http.ResponseWriter, r *http.Request) {
		asked.Store(0)
		peak.Store(inFlight.Load())
	})
	http.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case conns <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(*lookup)
		<-conns
		id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/items/"))
		if err != nil || id < 1 || id > *items {
			http.Error(w, `{"error":"no such item"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%d,"name":"item %d","price":%d}`, id, id, id%997)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
