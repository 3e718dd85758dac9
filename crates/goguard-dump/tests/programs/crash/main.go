// Crashes the way the reference's chapters 1 and 4 describe, chosen by the first argument:
// "deadlock" (a send nobody receives) or "negative" (Done without Add).
package main

import (
	"os"
	"sync"
)

func main() {
	switch os.Args[1] {
	case "deadlock":
		ch := make(chan int)
		ch <- 42
	case "negative":
		var wg sync.WaitGroup
		wg.Done()
	}
}
