// Chapter 3.1: time.After in a loop.
// The reference's form starts 1000 goroutines that each receive their own timer once: every
// timer fires and is consumed, nothing leaks (Expected: no G201 there).
// The form that does accumulate timers is a select loop (Expected: G201 in consume).
package main

import (
	"fmt"
	"time"
)

func reference() {
	for i := 0; i < 1000; i++ {
		go func() {
			<-time.After(5 * time.Second)
			fmt.Println("timeout!")
		}()
	}
}

func consume(in <-chan string) {
	for {
		select {
		case msg := <-in:
			fmt.Println(msg)
		case <-time.After(30 * time.Second):
			fmt.Println("idle")
		}
	}
}

func main() {
	reference()
	in := make(chan string, 1)
	go consume(in)
	in <- "hello"
	time.Sleep(time.Second)
}
