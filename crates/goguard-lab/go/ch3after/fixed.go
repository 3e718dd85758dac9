package ch3after

import "time"

// Fixed reuses one timer, reset for each value.
func Fixed(values <-chan int, n int) (sum, idle int) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for i := 0; i < n; i++ {
		t.Reset(time.Minute)
		select {
		case v := <-values:
			sum += v
		case <-t.C:
			idle++
		}
	}
	return sum, idle
}
