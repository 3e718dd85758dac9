// go 1.22
package fixes

import (
	"log"
	"time"
)

func loop(in <-chan string) {
	for {
		select {
		case m := <-in:
			log.Println(m)
		case <-time.After(30 * time.Second): // want G201 safe
			log.Println("idle")
		}
	}
}

func labeled(in <-chan string, items []int, d time.Duration) {
outer:
	for range items {
		select {
		case s := <-in:
			if s == "" {
				break outer
			}
		case <-time.After(d): // want G201 safe
		}
	}
}

// Two in one function: the second waits for the next pass and takes another name.
func two(a, b <-chan string) {
	for {
		select {
		case <-a:
		case <-time.After(time.Second): // want G201 safe
		}
		select {
		case <-b:
		case <-time.After(time.Minute): // want G201 safe
		}
	}
}

// In a loop of loops: the defer before the inner loop would pile up.
func nested(in <-chan string, rounds int) {
	for r := 0; r < rounds; r++ {
		for {
			select {
			case <-in:
			case <-time.After(time.Second): // want G201 unsafe
			}
		}
	}
}
