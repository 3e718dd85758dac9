// Package ch3default: a select with default drops messages when the channel is full (3.2).
package ch3default

// Buggy sends without waiting: what does not fit is silently lost.
func Buggy(out chan<- int, messages []int) {
	for _, m := range messages {
		select {
		case out <- m:
		default:
		}
	}
}
