// Package ch2closure: a goroutine that never ends keeps a large buffer alive (2.5).
package ch2closure

import (
	"sync/atomic"
	"time"
)

// LastSeen is what the goroutines report.
var LastSeen atomic.Int32

// Buggy's goroutine needs one byte of a 1 MB payload, but reading it in the loop keeps the
// whole payload alive for as long as the goroutine runs: forever.
func Buggy() {
	payload := make([]byte, 1<<20)
	payload[0] = 7
	go func() {
		for {
			LastSeen.Store(int32(payload[0]))
			time.Sleep(time.Hour)
		}
	}()
}
