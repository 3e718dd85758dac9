// Chapter 1: the two select idioms of the reference's table, written correctly.
// A non-blocking receive with default (a poll, nothing is lost) and a send with a timeout
// (the sender gives up and says so). Expected: no finding.
package main

import (
	"fmt"
	"time"
)

func main() {
	ch := make(chan int, 1)

	// Non-blocking read.
	select {
	case v, ok := <-ch:
		fmt.Println(v, ok)
	default:
		fmt.Println("nothing ready")
	}

	// Send with a timeout.
	data := 42
	select {
	case ch <- data:
		fmt.Println("sent")
	case <-time.After(100 * time.Millisecond):
		fmt.Println("send timed out")
	}
}
