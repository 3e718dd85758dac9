// A synctest bubble whose goroutines all block: the bubble's deadlock.
package bubble

import (
	"testing"
	"testing/synctest"
)

func TestBubbleDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int)
		for i := 0; i < 3; i++ {
			go func() { ch <- i }()
		}
		<-make(chan int)
	})
}
