// A program with a known number of goroutines stuck at each kind of operation; it writes
// a debug=2 goroutine dump to standard output.
package main

import (
	"os"
	"strconv"
	"runtime/pprof"
	"sync"
	"time"
)

func abandoned(ch chan int) { ch <- 1 }

func receiver(ch chan int) {
	for range ch {
	}
}

func locker(mu *sync.Mutex) { mu.Lock() }

func main() {
	// The number of abandoned senders: a second dump with more shows the leak growing.
	senders := 7
	if len(os.Args) > 1 {
		senders, _ = strconv.Atoi(os.Args[1])
	}
	for i := 0; i < senders; i++ {
		go abandoned(make(chan int))
	}
	for i := 0; i < 3; i++ {
		go receiver(make(chan int))
	}
	var mu sync.Mutex
	mu.Lock()
	for i := 0; i < 2; i++ {
		go locker(&mu)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { wg.Wait() }()
	go func() { select {} }()
	time.Sleep(200 * time.Millisecond)
	// DUMP_DEBUG=1 writes the aggregated debug=1 profile instead, DUMP_DEBUG=0 the gzipped
	// protobuf; DUMP_PROFILE=goroutineleak asks for Go's leak profile.
	level := 2
	if d := os.Getenv("DUMP_DEBUG"); d != "" {
		level, _ = strconv.Atoi(d)
	}
	profile := "goroutine"
	if p := os.Getenv("DUMP_PROFILE"); p != "" {
		profile = p
	}
	pprof.Lookup(profile).WriteTo(os.Stdout, level)
}
