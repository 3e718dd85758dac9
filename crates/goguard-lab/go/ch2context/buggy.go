// Package ch2context: a goroutine that never looks at ctx.Done() (2.2).
package ch2context

import (
	"context"
	"time"
)

// Buggy starts a worker that keeps buffers and never returns, whatever ctx says.
func Buggy(ctx context.Context, exited chan<- time.Time) {
	go func() {
		var kept [][]byte
		for {
			kept = append(kept, make([]byte, 4<<10))
			time.Sleep(time.Millisecond)
		}
	}()
}
