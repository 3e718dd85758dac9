// Chapter 4.1: Add called after the go statement.
// Expected: G301 on wg.Add.
package main

import (
	"fmt"
	"sync"
)

func main() {
	var wg sync.WaitGroup
	go func() {
		defer wg.Done()
		fmt.Println("working...")
	}()
	wg.Add(1)
	wg.Wait()
}
