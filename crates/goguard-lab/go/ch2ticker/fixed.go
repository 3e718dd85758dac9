package ch2ticker

import "time"

// Fixed stops the ticker and returns when done closes.
func Fixed(done <-chan struct{}) {
	t := time.NewTicker(time.Hour)
	go func() {
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
}
