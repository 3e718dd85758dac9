// Package ch2ticker: a goroutine looping on a ticker with no way out (2.3).
package ch2ticker

import "time"

// Buggy starts a poller that nobody can stop; its ticker is never stopped either.
func Buggy(done <-chan struct{}) {
	t := time.NewTicker(time.Hour)
	go func() {
		for range t.C {
		}
	}()
}
