// Runs for about a second under GODEBUG=schedtrace/gctrace (set by the test): "leak" keeps
// every allocation and parks goroutines forever; "healthy" allocates garbage and runs
// goroutines that finish.
package main

import (
	"os"
	"time"
)

var kept [][]byte

func parked(ch chan int) { <-ch }

func main() {
	leak := len(os.Args) > 1 && os.Args[1] == "leak"
	start := time.Now()
	for time.Since(start) < time.Second {
		buf := make([]byte, 256<<10)
		buf[0] = 1
		if leak {
			kept = append(kept, buf)
			go parked(make(chan int))
		} else {
			done := make(chan struct{})
			go func() { close(done) }()
			<-done
		}
		time.Sleep(2 * time.Millisecond)
	}
}
