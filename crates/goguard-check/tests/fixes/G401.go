// go 1.24
package fixes

import (
	"errors"
	"sync"
)

type cache struct {
	mu sync.Mutex
	rw sync.RWMutex
	m  map[string]int
}

var errMissing = errors.New("missing")

func (c *cache) Get(k string) (int, error) {
	c.mu.Lock() // want G401 safe
	v, ok := c.m[k]
	if !ok {
		return 0, errMissing
	}
	c.mu.Unlock()
	return v, nil
}

func (c *cache) Peek(k string) int {
	c.rw.RLock() // want G401 safe
	for key, v := range c.m {
		if key == k {
			return v
		}
	}
	c.rw.RUnlock()
	return 0
}

// The load after the Unlock now runs under the lock: unsafe.
func (c *cache) Load(k string, load func() int) int {
	c.mu.Lock() // want G401 unsafe
	if v, ok := c.m[k]; ok {
		return v
	}
	c.mu.Unlock()
	v := load()
	return v
}

type registry struct {
	mu    sync.Mutex
	items map[string]int
}

// Never unlocked, and no caller unlocks: the fix is the rule's judgement, unsafe.
func (r *registry) count() int {
	r.mu.Lock() // want G401 unsafe
	return len(r.items)
}

func (r *registry) Report() int { return r.count() }
