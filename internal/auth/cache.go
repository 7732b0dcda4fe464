package auth

import (
	"container/list"
	"sync"
	"time"
)

// tokenCache remembers verified tokens until they expire, keyed by the
// SHA-256 of the token so that the tokens themselves are not kept. Graph
// reuses one token across many callbacks, so the RSA check runs once per
// token instead of once per callback.
//
// It is bounded: entries are kept in insertion order, and an insert first
// drops expired entries from the old end, then the oldest entries while the
// cache is full. Graph's tokens share one lifetime, so the oldest entry is
// also the one that expires first.
type tokenCache struct {
	mu    sync.Mutex
	max   int
	byKey map[[32]byte]*list.Element
	order list.List // of *cacheEntry, oldest at the front
}

type cacheEntry struct {
	key        [32]byte
	claims     Claims
	validUntil time.Time // exp plus the clock skew
}

// enabled reports whether the cache keeps anything (a size above 0).
func (c *tokenCache) enabled() bool { return c.max > 0 }

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, byKey: make(map[[32]byte]*list.Element)}
}

// get returns the claims of a cached token. found && !valid means the token
// was verified once but has expired since; the entry is dropped.
func (c *tokenCache) get(key [32]byte, now time.Time) (claims Claims, found, valid bool) {
	if !c.enabled() {
		return Claims{}, false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return Claims{}, false, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.validUntil) {
		c.removeLocked(el)
		return Claims{}, true, false
	}
	return e.claims, true, true
}

func (c *tokenCache) put(key [32]byte, claims Claims, validUntil, now time.Time) {
	if !c.enabled() || !now.Before(validUntil) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.removeLocked(el)
	}
	for el := c.order.Front(); el != nil && !now.Before(el.Value.(*cacheEntry).validUntil); el = c.order.Front() {
		c.removeLocked(el)
	}
	for c.order.Len() >= c.max {
		c.removeLocked(c.order.Front())
	}
	c.byKey[key] = c.order.PushBack(&cacheEntry{key: key, claims: claims, validUntil: validUntil})
}

// purge forgets every token, for when a signing key is withdrawn: a token
// signed with it must be checked again.
func (c *tokenCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byKey)
	c.order.Init()
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// removeLocked drops el; c.mu must be held.
func (c *tokenCache) removeLocked(el *list.Element) {
	delete(c.byKey, el.Value.(*cacheEntry).key)
	c.order.Remove(el)
}
