package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

type decision struct {
	id      string
	version uint64
}

func newCache(t testing.TB, opts Options) *Cache[*decision] {
	t.Helper()
	c, err := New[*decision](opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

const now = int64(1_790_000_000_000)

func TestCacheNeverServesAnotherStateVersion(t *testing.T) {
	c := newCache(t, Options{})
	const m1 = features.Key("member:M1")
	req := "app|home|S1|3|zh-CN"

	require.True(t, c.Set(m1, 1, req, &decision{"d1", 1}, now))
	c.Wait()
	got, ok := c.Get(m1, 1, req, now+1)
	require.True(t, ok)
	require.Equal(t, "d1", got.id)

	_, ok = c.Get(m1, 2, req, now+1)
	require.False(t, ok, "a new event (version 2) makes the version-1 decision unusable")

	require.True(t, c.Set(m1, 2, req, &decision{"d2", 2}, now+2))
	c.Wait()
	got, ok = c.Get(m1, 2, req, now+3)
	require.True(t, ok)
	require.Equal(t, "d2", got.id)
	_, ok = c.Get(m1, 1, req, now+3)
	require.False(t, ok, "an older version never gets the newer decision either")

	c.Set(m1, 1, req, &decision{"late", 1}, now+4) // a slow decider for the old state
	c.Wait()
	got, ok = c.Get(m1, 2, req, now+5)
	require.True(t, ok, "a late write for an older version does not replace the newer one")
	require.Equal(t, "d2", got.id)

	_, ok = c.Get(m1, 2, "web|cart|S1|3|zh-CN", now+5)
	require.False(t, ok, "another request key is another entry")
	_, ok = c.Get("member:M2", 2, req, now+5)
	require.False(t, ok, "another customer is another entry")

	s := c.Stats()
	require.Equal(t, uint64(3), s.Hits)
	require.Equal(t, uint64(2), s.Stale)
	require.Equal(t, uint64(2), s.Misses)
}

func TestCacheEntriesAgeOut(t *testing.T) {
	c := newCache(t, Options{MaxAge: 5 * time.Second})
	c.Set("member:M1", 7, "r", &decision{"d", 7}, now)
	c.Wait()
	_, ok := c.Get("member:M1", 7, "r", now+5000)
	require.True(t, ok)
	_, ok = c.Get("member:M1", 7, "r", now+5001)
	require.False(t, ok, "older than MaxAge")
	_, ok = c.Get("member:M1", 7, "r", now-1)
	require.False(t, ok, "computed after the requested instant (a replay asking for the past)")
}

func TestCacheIsBoundedAndHoldsItsCapacity(t *testing.T) {
	const capacity = 1000
	c := newCache(t, Options{MaxEntries: capacity})
	count := func(n int) int {
		hits := 0
		for i := 0; i < n; i++ {
			if _, ok := c.Get(features.Key(fmt.Sprint("member:", i)), 1, "r", now); ok {
				hits++
			}
		}
		return hits
	}
	for i := 0; i < capacity; i++ {
		c.Set(features.Key(fmt.Sprint("member:", i)), 1, "r", &decision{"d", 1}, now)
		if i%32 == 0 {
			c.Wait() // sequential warm-up: do not let the set buffer drop writes
		}
	}
	c.Wait()
	require.Greater(t, count(capacity), capacity*9/10, "cost-1 entries fill the capacity (IgnoreInternalCost)")
	for i := capacity; i < 20*capacity; i++ {
		c.Set(features.Key(fmt.Sprint("member:", i)), 1, "r", &decision{"d", 1}, now)
	}
	c.Wait()
	require.LessOrEqual(t, count(20*capacity), capacity)
}

func TestCacheConcurrentReadersNeverSeeAnotherVersion(t *testing.T) {
	c := newCache(t, Options{MaxEntries: 10_000})
	const customers = 50
	var versions [customers]atomic.Uint64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var hits, wrong atomic.Int64
	for w := 0; w < 4; w++ { // writers: bump a customer's version, then cache its decision
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i*7 + w) % customers
				v := versions[k].Add(1)
				c.Set(features.Key(fmt.Sprint("member:", k)), v, "r", &decision{fmt.Sprint(k, "@", v), v}, now)
			}
		}()
	}
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i + r) % customers
				v := versions[k].Load()
				if d, ok := c.Get(features.Key(fmt.Sprint("member:", k)), v, "r", now); ok {
					hits.Add(1)
					if d.version != v || d.id != fmt.Sprint(k, "@", v) {
						wrong.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.Zero(t, wrong.Load())
	require.Positive(t, hits.Load(), "the readers hit now and then (or the test proves nothing)")
}

func TestCacheOptionsValidate(t *testing.T) {
	_, err := New[int](Options{MaxEntries: -1, MaxAge: -time.Second})
	require.ErrorContains(t, err, "max entries")
	require.ErrorContains(t, err, "max age")
}

func BenchmarkCacheGetHit(b *testing.B) {
	c := newCache(b, Options{})
	const n = 10_000
	keys := make([]features.Key, n)
	for i := range keys {
		keys[i] = features.Key(fmt.Sprint("member:M", i))
		c.Set(keys[i], 3, "app|home|S1|3|zh-CN", &decision{"d", 3}, now)
		if i%32 == 0 {
			c.Wait()
		}
	}
	c.Wait()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Get(keys[i%n], 3, "app|home|S1|3|zh-CN", now)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Get(keys[seq.Add(1)%n], 3, "app|home|S1|3|zh-CN", now)
			}
		})
	})
	s := c.Stats()
	b.ReportMetric(float64(s.Hits)/float64(s.Hits+s.Misses+s.Stale), "hit-ratio")
}
