package api

import (
	"sync"
	"time"
)

// limiter is a token bucket per API key: each key may make Rate requests
// a second on average and Burst at once. Buckets are indexed by the key's
// position in the key ring, each with its own padded lock, so keys never
// contend with one another.
type limiter struct {
	rate    float64 // tokens per nanosecond
	burst   float64
	buckets []bucket
}

type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   int64 // Unix nanoseconds of the last refill; 0 before the first
	_      [40]byte
}

func newLimiter(keys int, rate float64, burst int) *limiter {
	return &limiter{rate: rate / float64(time.Second), burst: float64(burst), buckets: make([]bucket, keys)}
}

// allow takes one token from key i's bucket at time now (Unix ns). When
// the bucket is empty it returns false and how long until a token is
// there.
func (l *limiter) allow(i int, now int64) (bool, time.Duration) {
	b := &l.buckets[i]
	b.mu.Lock()
	if b.last == 0 {
		b.tokens = l.burst
	} else if now > b.last {
		b.tokens += float64(now-b.last) * l.rate
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
	}
	if now > b.last {
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		b.mu.Unlock()
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate)
	b.mu.Unlock()
	return false, wait
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1, as
// Retry-After needs.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
