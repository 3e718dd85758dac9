// Chapter 4.3: a WaitGroup passed by value.
// Expected: G303 on the parameter and on the call that copies it.
package main

import (
	"fmt"
	"sync"
)

func worker(id int, wg sync.WaitGroup) {
	defer wg.Done() // decrements the copy
	fmt.Println("worker", id)
}

func main() {
	var wg sync.WaitGroup
	wg.Add(1)
	go worker(1, wg)
	wg.Wait() // blocks forever
}
