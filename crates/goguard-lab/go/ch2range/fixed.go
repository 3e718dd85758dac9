package ch2range

func produceAndClose(ch chan<- int, n int) {
	defer close(ch)
	for i := 0; i < n; i++ {
		if i == n/2 {
			return
		}
		ch <- i
	}
}

// Fixed closes the channel on every path, so the consumer's range ends.
func Fixed(n int) {
	ch := make(chan int)
	go produceAndClose(ch, n)
	go func() {
		for v := range ch {
			_ = v
		}
	}()
}
