// go 1.22
package fixes

import "time"

func tickReturns() {
	for range time.Tick(time.Second) { // want G103 none
		return
	}
}
