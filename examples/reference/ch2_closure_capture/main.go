// Chapter 2.5: a goroutine capturing a large object.
// The reference's own example (leakGoroutine) is NOT a leak: the goroutine ends after one
// second and Go's tracing GC frees what it held (cycles included). Expected: no finding there.
// pinForever is the real defect: a goroutine that never ends reads one byte of 1 MiB in its
// loop, which keeps the whole MiB alive. Expected: G105 in pinForever.
package main

import (
	"sync"
	"time"
)

func leakGoroutine() {
	var wg sync.WaitGroup
	data := make([]byte, 1<<20)
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Second)
		_ = data
	}()
	wg.Wait()
}

func report(byte) {}

func pinForever() {
	data := make([]byte, 1<<20)
	go func() {
		for range time.Tick(time.Minute) {
			report(data[0])
		}
	}()
}

func main() {
	leakGoroutine()
	pinForever()
}
