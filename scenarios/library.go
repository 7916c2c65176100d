package scenarios

import (
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"
)

// Library holds the active Set and swaps in new ones: reload compiles the
// whole new library first and publishes it atomically only if every file
// is good, so a bad edit never replaces a working set. Readers call Set
// once per request and never take a lock.
type Library struct {
	cur atomic.Pointer[Set]

	mu          sync.Mutex // serialises reloads and guards the fields below
	lastErr     error
	lastErrAt   time.Time
	reloads     int64
	failures    int64
	lastAttempt time.Time
}

// NewLibrary returns a library serving initial, which must not be nil.
func NewLibrary(initial *Set) (*Library, error) {
	if initial == nil {
		return nil, fmt.Errorf("scenarios: a library needs an initial set")
	}
	l := &Library{}
	l.cur.Store(initial)
	return l, nil
}

// Set returns the active set.
func (l *Library) Set() *Set { return l.cur.Load() }

// Reload loads fsys and, when it compiles, makes it the active set. On
// error the active set stays and the error is recorded for Status. now is
// the load time.
func (l *Library) Reload(fsys fs.FS, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastAttempt = now
	set, err := Load(fsys, now)
	if err != nil {
		l.failures++
		l.lastErr, l.lastErrAt = err, now
		return fmt.Errorf("scenarios: reloading (the active set %s stays): %w", l.cur.Load().Version, err)
	}
	l.cur.Store(set)
	l.reloads++
	l.lastErr, l.lastErrAt = nil, time.Time{}
	return nil
}

// Status is what /v1/admin/scenarios shows.
type Status struct {
	Version     string    `json:"version"`
	LoadedAt    time.Time `json:"loaded_at"`
	Scenarios   int       `json:"scenarios"`
	Offers      int       `json:"offers"`
	Reloads     int64     `json:"reloads"`
	Failures    int64     `json:"failed_reloads"`
	LastError   string    `json:"last_error,omitempty"` // of the newest reload, when it failed
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status reports the active set and the outcome of the newest reload.
func (l *Library) Status() Status {
	set := l.cur.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{
		Version: set.Version, LoadedAt: set.LoadedAt, Scenarios: len(set.Scenarios), Offers: len(set.Offers),
		Reloads: l.reloads, Failures: l.failures, LastErrorAt: l.lastErrAt,
	}
	if l.lastErr != nil {
		st.LastError = l.lastErr.Error()
	}
	return st
}

// Files returns the source files the set was loaded from, by name, for
// `nbo rules export`.
func (s *Set) Files() map[string][]byte {
	out := make(map[string][]byte, len(s.files))
	for k, v := range s.files {
		out[k] = append([]byte(nil), v...)
	}
	return out
}
