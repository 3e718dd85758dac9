// go 1.22
package fixes

import "time"

func neverStopped() {
	t := time.NewTicker(time.Second) // want G103 safe
	<-t.C
}

func timerNeverStopped() {
	t := time.NewTimer(time.Minute) // want G103 safe
	select {
	case <-t.C:
	default:
	}
}

// A goroutine reads the ticker: stopping it at return changes what that goroutine sees.
func captured(done chan struct{}) {
	t := time.NewTicker(time.Second) // want G103 unsafe
	go func() {
		<-t.C
		close(done)
	}()
	<-done
}
