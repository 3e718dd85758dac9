// Package ch1deadlock is the reference's minimal deadlock (chapter 1).
package ch1deadlock

// Buggy sends on an unbuffered channel that nothing receives from.
func Buggy() int {
	ch := make(chan int)
	ch <- 42
	return <-ch
}
