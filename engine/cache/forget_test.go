package cache

import (
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// TestAnErasedCustomersDecisionIsNotServedToTheNextCustomerOfTheKey: a
// customer created after an erase under the same key starts again from
// the first state version, so within MaxAge it would have matched the
// erased customer's cached decision (same key, version and request).
func TestAnErasedCustomersDecisionIsNotServedToTheNextCustomerOfTheKey(t *testing.T) {
	const m1 = features.Key("member:M1")
	const req = "app|home|S1|3|zh-CN"
	for _, tc := range []struct {
		name    string
		version uint64 // of the erased customer's cached decision
	}{
		{"at the version the new customer has", 1},
		{"at a later version than the new customer's", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, Options{})
			require.True(t, c.Set(m1, tc.version, req, &decision{"erased", tc.version}, now))
			require.True(t, c.Set("member:M2", 1, req, &decision{"other", 1}, now))
			c.Wait()

			c.Forget(m1, now+100)
			_, ok := c.Get(m1, tc.version, req, now+200)
			require.False(t, ok, "the erased customer's decision is not served")
			got, ok := c.Get("member:M2", 1, req, now+200)
			require.True(t, ok, "another customer's stays")
			require.Equal(t, "other", got.id)

			// A request that read the erased customer's state before the
			// erase finishes after it: its decision is not cached.
			require.False(t, c.Set(m1, tc.version, req, &decision{"late", tc.version}, now+100))

			// The new customer's own decision is cached and served, even
			// where the erased customer's was for a later version.
			require.True(t, c.Set(m1, 1, req, &decision{"new", 1}, now+300))
			c.Wait()
			got, ok = c.Get(m1, 1, req, now+400)
			require.True(t, ok)
			require.Equal(t, "new", got.id)
		})
	}
}

func TestForgottenCustomersArePrunedOnceTheirEntriesAreTooOld(t *testing.T) {
	const req = "app|home|S1|3|zh-CN"
	c := newCache(t, Options{})
	require.True(t, c.Set("member:M1", 3, req, &decision{"erased", 3}, now))
	c.Wait()
	c.Forget("member:M1", now)
	c.Forget("member:M2", now+1)
	require.Len(t, *c.forgotten.Load(), 2)
	later := now + c.pruneAfter() + 1
	c.Forget("member:M3", later)
	require.Equal(t, map[features.Key]int64{"member:M2": now + 1, "member:M3": later}, *c.forgotten.Load())

	// M1 is no longer checked: its old entry is past MaxAge, and a new
	// customer's decision at an earlier version replaces it.
	_, ok := c.Get("member:M1", 3, req, later)
	require.False(t, ok)
	require.True(t, c.Set("member:M1", 1, req, &decision{"new", 1}, later))
	c.Wait()
	got, ok := c.Get("member:M1", 1, req, later+1)
	require.True(t, ok)
	require.Equal(t, "new", got.id)
}
