// Package ch3after: time.After in a loop makes a timer per iteration (3.1).
package ch3after

import "time"

// Buggy waits for each value with a fresh one-minute timeout, and logs idle minutes.
func Buggy(values <-chan int, n int) (sum, idle int) {
	for i := 0; i < n; i++ {
		select {
		case v := <-values:
			sum += v
		case <-time.After(time.Minute):
			idle++
		}
	}
	return sum, idle
}
