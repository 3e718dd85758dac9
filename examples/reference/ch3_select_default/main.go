// Chapter 3.2: select with default silently drops messages when the channel is full.
// Expected: G202 on the default.
package main

import (
	"fmt"
	"log"
	"time"
)

func main() {
	ch := make(chan int, 2)
	go func() {
		for i := 0; i < 5; i++ {
			select {
			case ch <- i:
			default:
				log.Printf("Dropped %d", i)
			}
		}
	}()
	for j := 0; j < 3; j++ {
		time.Sleep(10 * time.Millisecond)
		fmt.Println(<-ch)
	}
}
