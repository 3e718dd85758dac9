package ch2closure

import "time"

// Fixed copies the byte it needs: the payload is garbage once Fixed returns.
func Fixed() {
	payload := make([]byte, 1<<20)
	payload[0] = 7
	first := payload[0]
	go func() {
		for {
			LastSeen.Store(int32(first))
			time.Sleep(time.Hour)
		}
	}()
}
