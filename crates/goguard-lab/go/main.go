// The goguard lab's driver: `lab CASE VARIANT [quick]` runs one variant (buggy, fixed or
// measure) of one case of the reference and prints its measurements as a `LAB {json}` line.
// Cases that crash or hang by design do so; goguard watches for that from outside.
//
// It must not import net/http: since Go 1.27 that alone keeps the runtime from ever
// reporting "all goroutines are asleep" (the HTTP case has its own driver, cmd/labhttp).
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"goguardlab/ch1deadlock"
	"goguardlab/ch2closure"
	"goguardlab/ch2context"
	"goguardlab/ch2range"
	"goguardlab/ch2sender"
	"goguardlab/ch2ticker"
	"goguardlab/ch3after"
	"goguardlab/ch3default"
	"goguardlab/ch3drift"
	"goguardlab/ch4addaftergo"
	"goguardlab/ch4byvalue"
	"goguardlab/ch4deferpanic"
	"goguardlab/ch4donetwice"
	"goguardlab/ch4skipped"
	"goguardlab/internal/measure"
)

var quick bool

func pick[T any](buggy bool, b, f T) T {
	if buggy {
		return b
	}
	return f
}

// leaked runs start n times, recording goroutines and heap as the calls add up, and
// counts the goroutines left behind.
func leaked(n int, start func()) measure.Result {
	series := measure.Series(n, start)
	return measure.Result{"calls": n, "goroutines_left": series[len(series)-1].Goroutines, "series": series}
}

var cases = map[string]func(buggy bool) measure.Result{
	"ch1-deadlock": func(buggy bool) measure.Result {
		return measure.Result{"value": pick(buggy, ch1deadlock.Buggy, ch1deadlock.Fixed)()}
	},
	"ch2-range": func(buggy bool) measure.Result {
		run := pick(buggy, ch2range.Buggy, ch2range.Fixed)
		return leaked(100, func() { run(10) })
	},
	"ch2-context": func(buggy bool) measure.Result {
		run := pick(buggy, ch2context.Buggy, ch2context.Fixed)
		ctx, cancel := context.WithCancel(context.Background())
		exited := make(chan time.Time, 1)
		run(ctx, exited)
		time.Sleep(200 * time.Millisecond)
		before := measure.Goroutines()
		cancelled := time.Now()
		cancel()
		r := measure.Result{"heap_at_cancel_mb": measure.LiveHeapMB()}
		select {
		case at := <-exited:
			r["exit_ms"] = float64(at.Sub(cancelled).Microseconds()) / 1000
		case <-time.After(time.Second):
			r["exit_ms"] = nil // still running a second after the cancel
		}
		wait := pick(quick, time.Second, 5*time.Second)
		time.Sleep(wait - time.Since(cancelled))
		r["heap_after_s"] = wait.Seconds()
		r["heap_after_mb"] = measure.LiveHeapMB()
		r["goroutines_left"] = measure.Goroutines() - before + 1
		return r
	},
	"ch2-ticker": func(buggy bool) measure.Result {
		run := pick(buggy, ch2ticker.Buggy, ch2ticker.Fixed)
		done := make(chan struct{})
		before := measure.Goroutines()
		series := measure.Series(50, func() { run(done) })
		close(done) // the fixed pollers stop; the buggy ones have no way to
		return measure.Result{"calls": 50, "goroutines_left": measure.Goroutines() - before, "series": series}
	},
	"ch2-closure": func(buggy bool) measure.Result {
		run := pick(buggy, ch2closure.Buggy, ch2closure.Fixed)
		heap := measure.LiveHeapMB()
		for i := 0; i < 20; i++ {
			run()
		}
		return measure.Result{"goroutines": 20, "retained_mb": measure.LiveHeapMB() - heap}
	},
	"ch2-sender": func(buggy bool) measure.Result {
		run := pick(buggy, ch2sender.Buggy, ch2sender.Fixed)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // every call gives up at once
		release := make(chan struct{})
		before := measure.Goroutines()
		series := measure.Series(100, func() { run(ctx, release) })
		close(release) // the slow work finishes: who is left to take its result?
		return measure.Result{"calls": 100, "goroutines_left": measure.Goroutines() - before, "series": series}
	},
	"ch3-time-after": func(buggy bool) measure.Result {
		run := pick(buggy, ch3after.Buggy, ch3after.Fixed)
		n := pick(quick, 20000, 100000)
		values := make(chan int, n)
		for i := 0; i < n; i++ {
			values <- 1
		}
		heap := measure.LiveHeapMB()
		goroutines := measure.Goroutines()
		sum, _ := run(values, n)
		grown := measure.LiveHeapMB() - heap
		runtime.KeepAlive(values) // its buffer is part of both measurements
		return measure.Result{
			"iterations":          sum,
			"bytes_per_iteration": grown * (1 << 20) / float64(n),
			"goroutines_added":    measure.Goroutines() - goroutines,
		}
	},
	"ch3-select-default": func(buggy bool) measure.Result {
		out := make(chan int, 2)
		messages := []int{1, 2, 3, 4}
		var got []int
		if buggy {
			ch3default.Buggy(out, messages) // nobody reads yet: the buffer holds two
			close(out)
			for m := range out {
				got = append(got, m)
			}
		} else {
			done := make(chan struct{})
			go func() {
				for m := range out {
					got = append(got, m)
				}
				close(done)
			}()
			ch3default.Fixed(out, messages)
			close(out)
			<-done
		}
		var lost []int
		for _, m := range messages[len(got):] {
			lost = append(lost, m)
		}
		return measure.Result{"sent": len(messages), "received": got, "lost": lost}
	},
	"ch3-drift": func(bool) measure.Result {
		n := pick(quick, 200, 1000)
		late := ch3drift.Lateness(n, 100, 50*time.Millisecond)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		var under1, under5, over5, early int
		for _, l := range late {
			switch {
			case l < 0:
				early++
			case l < time.Millisecond:
				under1++
			case l < 5*time.Millisecond:
				under5++
			default:
				over5++
			}
		}
		pct := func(k int) float64 { return float64(k) * 100 / float64(len(late)) }
		q := func(p float64) float64 { return ms(late[int(p*float64(len(late)-1))]) }
		return measure.Result{
			"timeouts": n, "timeout_ms": 50,
			"within_1ms_pct": pct(under1), "1_to_5ms_pct": pct(under5), "over_5ms_pct": pct(over5),
			"early_pct": pct(early),
			"p50_ms":    q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": q(1),
		}
	},
	"ch4-add-after-go": func(buggy bool) measure.Result {
		finished := pick(buggy, ch4addaftergo.Buggy, ch4addaftergo.Fixed)(100)
		return measure.Result{"workers": 100, "finished_before_wait_returned": finished}
	},
	"ch4-done-twice": func(buggy bool) measure.Result {
		pick(buggy, ch4donetwice.Buggy, ch4donetwice.Fixed)()
		return measure.Result{"returned": true}
	},
	"ch4-by-value": func(buggy bool) measure.Result {
		pick(buggy, ch4byvalue.Buggy, ch4byvalue.Fixed)()
		return measure.Result{"returned": true}
	},
	"ch4-skipped-done": func(buggy bool) measure.Result {
		pick(buggy, ch4skipped.Buggy, ch4skipped.Fixed)(3)
		return measure.Result{"returned": true}
	},
	"ch4-defer-panic": func(buggy bool) measure.Result {
		if buggy {
			ch4deferpanic.Buggy()
			return measure.Result{"returned": true}
		}
		err := ch4deferpanic.Fixed()
		return measure.Result{"returned": true, "error": fmt.Sprint(err)}
	},
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: lab CASE buggy|fixed|measure [quick]")
		os.Exit(2)
	}
	run, ok := cases[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, "no case", os.Args[1])
		os.Exit(2)
	}
	quick = len(os.Args) > 3 && os.Args[3] == "quick"
	measure.Report(run(os.Args[2] == "buggy"))
	measure.Dump()
}
