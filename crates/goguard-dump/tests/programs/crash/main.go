// Crashes the way the reference's chapters 1 and 4 describe, chosen by the first argument:
// "deadlock" (a send nobody receives), "negative" (Done without Add), "maps" (two goroutines
// writing one map: the runtime's fatal concurrent map writes) or "race" (an unsynchronised
// counter: run it with -race for the race detector's report); "hang" (leaked senders and a
// main that sleeps) and "fork" (a child process, then a hang) are for stopping from outside.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

var counter int

func increment(wg *sync.WaitGroup) {
	defer wg.Done()
	counter++
}

func abandoned(ch chan int) { ch <- 1 }

func writeForever(m map[int]int, from int) {
	for i := from; ; i++ {
		m[i%64] = i
	}
}

func main() {
	switch os.Args[1] {
	case "deadlock":
		ch := make(chan int)
		ch <- 42
	case "negative":
		var wg sync.WaitGroup
		wg.Done()
	case "maps":
		m := map[int]int{}
		go writeForever(m, 0)
		writeForever(m, 1) // the runtime stops the program when it sees both writing
	case "hang":
		// Six senders nobody receives from, and a main that never ends (not a deadlock:
		// the runtime sees a sleeping timer).
		for i := 0; i < 6; i++ {
			go abandoned(make(chan int))
		}
		time.Sleep(time.Hour)
	case "fork":
		// A child process, then a hang: whoever stops us must stop it too.
		child := exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			panic(err)
		}
		fmt.Println("child", child.Process.Pid)
		time.Sleep(time.Hour)
	case "race":
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go increment(&wg)
		}
		wg.Wait()
		fmt.Println(counter)
	// "busy": 120 leaked senders and 4 goroutines spinning on the CPU, so that threads run
	// goroutines when a signal stops them; it prints "ready" and waits for SIGQUIT.
	case "busy":
		for i := 0; i < 120; i++ {
			go abandoned(make(chan int))
		}
		for i := 0; i < 4; i++ {
			go spin(new(int64))
		}
		time.Sleep(100 * time.Millisecond)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	// "deadlock4": 4 senders nobody receives from and main waiting for them: the runtime's
	// deadlock with a group smaller than the count heuristic's.
	case "deadlock4":
		ch := make(chan int)
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ch <- i
			}()
		}
		wg.Wait()
	}
}

func spin(n *int64) {
	for {
		*n++
	}
}
