// Chapter 2.3: a Ticker that is never stopped.
// Expected (go 1.22): G103 on NewTicker.
package main

import (
	"fmt"
	"time"
)

func leakyTicker() {
	ticker := time.NewTicker(100 * time.Millisecond)
	// ticker.Stop() is never called
	go func() {
		for t := range ticker.C {
			fmt.Println("tick:", t)
		}
	}()
}

func main() {
	leakyTicker()
	time.Sleep(time.Second)
}
