// Package measure holds what every lab case measures: goroutines alive, live heap, and a
// way to report the numbers to goguard (one `LAB {json}` line on standard output).
package measure

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// Result is what a case reports; goguard reads it from the LAB line.
type Result map[string]any

// Report prints the result for goguard.
func Report(r Result) {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	fmt.Printf("LAB %s\n", b)
}

// LiveHeapMB is the heap still reachable after a full collection.
func LiveHeapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// Goroutines counts goroutines once those that are finishing have finished: it waits
// (bounded) until the count stops falling.
func Goroutines() int {
	n := runtime.NumGoroutine()
	deadline := time.Now().Add(500 * time.Millisecond)
	for stable := 0; stable < 20 && time.Now().Before(deadline); {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
		if m := runtime.NumGoroutine(); m < n {
			n, stable = m, 0
		} else {
			stable++
		}
	}
	return n
}

// Point is one moment of a series: after how many calls, goroutines alive, live heap.
type Point struct {
	Calls      int     `json:"calls"`
	Goroutines int     `json:"goroutines"`
	HeapMB     float64 `json:"heap_mb"`
}

// Series runs call n times in five batches and records, after each batch, the goroutines
// above the starting count and the live heap: how the leak grows with use.
func Series(n int, call func()) []Point {
	base := Goroutines()
	var points []Point
	for batch := 1; batch <= 5; batch++ {
		for i := 0; i < n/5; i++ {
			call()
		}
		points = append(points, Point{Calls: batch * (n / 5), Goroutines: Goroutines() - base, HeapMB: LiveHeapMB()})
	}
	return points
}

// Dump writes a debug=2 goroutine dump to standard error, for goguard dump to read.
func Dump() {
	pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
}
