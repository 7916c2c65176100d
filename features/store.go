package features

import (
	"errors"
	"time"
)

// Options configure a Store. The zero value is valid: EnsureDefaults fills
// every unset field.
type Options struct {
	// AllowedLateness is how far behind a customer's newest event time an
	// event may be and still be applied; older ones are rejected too_late.
	// Default: 10m.
	AllowedLateness time.Duration
	// RecentEvents is how many recent events each customer keeps.
	// Default: 16.
	RecentEvents int
	// Shards is the number of independently locked customer shards.
	// Default: 256.
	Shards int
	// Location is the time zone hour-of-day and weekday features use when
	// the event's store has none configured. Default: Asia/Shanghai.
	Location *time.Location
}

// Applied describes the effect of one applied event.
type Applied struct {
	Customer Key    // canonical customer ID after the event
	Version  uint64 // the customer's state version after the event
	Merged   []Key  // canonical IDs folded into Customer by this event
	Erased   bool   // the event erased the customer
}

// ErrNotImplemented marks the stub API while the store is being written.
var ErrNotImplemented = errors.New("features: not implemented")

// Store is the per-customer state of every customer, sharded by canonical
// ID. It is safe for concurrent use.
type Store struct {
	opts Options
}

// NewStore returns an empty store.
func NewStore(opts Options) (*Store, error) {
	return &Store{opts: opts}, nil
}

// Apply applies one validated event at its event time: it resolves the
// identity (merging customers the event links), drops a duplicate
// event_id, refuses an event older than the customer's watermark minus
// the allowed lateness, and updates every feature. A rejected event
// changes nothing.
func (s *Store) Apply(ev *Event) (Applied, *Rejection) {
	return Applied{}, &Rejection{Code: ReasonBadValue, Message: "not implemented"}
}

// Resolve returns the canonical ID of the customer that owns any of ids.
func (s *Store) Resolve(ids *IDs) (Key, bool) { return "", false }

// ViewAt fills v with the features of the customer that owns ids at
// instant now (Unix ms). It returns false, and a View with Known=false,
// for a customer never seen.
func (s *Store) ViewAt(ids *IDs, now int64, v *View) bool {
	*v = View{Now: now}
	return false
}
