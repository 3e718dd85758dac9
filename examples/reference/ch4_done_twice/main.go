// Chapter 4.2: Done called twice for one Add.
// Expected: G302 on the second Done.
package main

import "sync"

func main() {
	var wg sync.WaitGroup
	wg.Add(1)
	wg.Done()
	wg.Done() // panic: sync: negative WaitGroup counter
}
