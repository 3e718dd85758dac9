package ch2context

import (
	"context"
	"time"
)

// Fixed stops at cancellation and reports when it did.
func Fixed(ctx context.Context, exited chan<- time.Time) {
	go func() {
		var kept [][]byte
		for {
			select {
			case <-ctx.Done():
				exited <- time.Now()
				return
			default:
			}
			kept = append(kept, make([]byte, 4<<10))
			time.Sleep(time.Millisecond)
		}
	}()
}
