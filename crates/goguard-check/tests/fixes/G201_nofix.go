// go 1.22
package fixes

import "time"

// The timeout is computed in the loop: it cannot be known before it.
func backoff(in <-chan string) {
	for i := 0; ; i++ {
		d := time.Duration(i) * time.Millisecond
		select {
		case <-in:
		case <-time.After(d): // want G201 none
		}
	}
}

// Not a select case: a sleep.
func sleeps(n int) {
	for i := 0; i < n; i++ {
		<-time.After(time.Millisecond) // want G201 none
	}
}
