// Chapter 2.1: a goroutine ranges over a channel the sender never closes.
// Expected: G101 on the range in worker's caller, and G101 (some paths) in process.
package main

import (
	"errors"
	"fmt"
)

func worker(ch <-chan int) {
	for v := range ch { // waits forever once the sender stops
		fmt.Println("received:", v)
	}
}

func main() {
	ch := make(chan int)
	go func() {
		for v := range ch {
			fmt.Println("received:", v)
		}
	}()
	ch <- 1
	ch <- 2
	// The sender forgets close(ch).

	out := make(chan int)
	go produce(out, []int{1, -1, 2})
	for v := range out {
		fmt.Println(v)
	}
}

var errNegative = errors.New("negative")

// produce closes out only when every item is valid.
func produce(out chan<- int, items []int) error {
	for _, it := range items {
		if it < 0 {
			return errNegative
		}
		out <- it
	}
	close(out)
	return nil
}
