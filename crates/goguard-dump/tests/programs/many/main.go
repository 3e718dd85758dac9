// Parks N goroutines (the first argument) on ten distinct stacks, then writes the whole
// debug=2 dump with runtime.Stack and a buffer big enough that nothing is cut.
//
// With a second argument D, each goroutine parks D calls deep instead, and the dump is
// written by pprof's debug=2 writer, which stops at 64 MiB: a dump cut the way a big
// service's /debug/pprof/goroutine?debug=2 cuts it.
package main

import (
	"bytes"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

func p0(ch chan int) { <-ch }
func p1(ch chan int) { <-ch }
func p2(ch chan int) { <-ch }
func p3(ch chan int) { <-ch }
func p4(ch chan int) { <-ch }
func p5(ch chan int) { <-ch }
func p6(ch chan int) { <-ch }
func p7(ch chan int) { <-ch }
func p8(ch chan int) { <-ch }
func p9(ch chan int) { <-ch }

var parkers = []func(chan int){p0, p1, p2, p3, p4, p5, p6, p7, p8, p9}

// deep parks after d more calls.
func deep(ch chan int, d int) {
	if d == 0 {
		<-ch
		return
	}
	deep(ch, d-1)
}

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	if len(os.Args) > 2 {
		d, _ := strconv.Atoi(os.Args[2])
		ch := make(chan int)
		for i := 0; i < n; i++ {
			go deep(ch, d)
		}
		for runtime.NumGoroutine() <= n {
			runtime.Gosched()
		}
		time.Sleep(100 * time.Millisecond)
		pprof.Lookup("goroutine").WriteTo(os.Stdout, 2)
		return
	}
	ch := make(chan int)
	for i := 0; i < n; i++ {
		go parkers[i%len(parkers)](ch)
	}
	buf := make([]byte, 256<<20)
	for {
		size := runtime.Stack(buf, true)
		if bytes.Count(buf[:size], []byte("[chan receive]:")) == n {
			os.Stdout.Write(buf[:size])
			return
		}
		runtime.Gosched()
	}
}
