// Package ch2range: a consumer ranges over a channel its producer never closes (2.1).
package ch2range

func produce(ch chan<- int, n int) {
	for i := 0; i < n; i++ {
		if i == n/2 {
			return // an early exit that skips the close
		}
		ch <- i
	}
	close(ch)
}

// Buggy starts a producer and a consumer; the consumer waits forever.
func Buggy(n int) {
	ch := make(chan int)
	go produce(ch, n)
	go func() {
		for v := range ch {
			_ = v
		}
	}()
}
