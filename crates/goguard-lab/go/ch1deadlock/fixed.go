package ch1deadlock

// Fixed gives the channel room for the value.
func Fixed() int {
	ch := make(chan int, 1)
	ch <- 42
	return <-ch
}
