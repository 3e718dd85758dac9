// Chapter 1: the minimal deadlock.
// Expected: G100 on the send.
package main

func main() {
	ch := make(chan int)
	ch <- 42 // fatal error: all goroutines are asleep - deadlock!
}
