package scenarios

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	cur  atomic.Pointer[Set]
	opts LibraryOptions

	mu          sync.Mutex // serialises reloads and guards the fields below
	lastErr     error
	lastErrAt   time.Time
	reloads     int64
	failures    int64
	lastAttempt time.Time
}

// LibraryOptions configure a Library. The zero value is valid.
type LibraryOptions struct {
	// OnSwap, when set, is called with each set that becomes active
	// after a reload (not the initial one), under the reload lock so calls
	// never overlap — e.g. to size the engine's budgets for new offers.
	// Default: none.
	OnSwap func(*Set)
}

// NewLibrary returns a library serving initial, which must not be nil.
func NewLibrary(initial *Set, opts LibraryOptions) (*Library, error) {
	if initial == nil {
		return nil, fmt.Errorf("scenarios: a library needs an initial set")
	}
	l := &Library{opts: opts}
	l.cur.Store(initial)
	return l, nil
}

// Set returns the active set.
func (l *Library) Set() *Set { return l.cur.Load() }

// Reload loads fsys and, when it compiles, makes it the active set. On
// error the active set stays, the error is recorded for Status and a
// *ReloadError is returned. now is the load time.
func (l *Library) Reload(fsys fs.FS, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastAttempt = now
	set, err := Load(fsys, now)
	if err != nil {
		l.failures++
		l.lastErr, l.lastErrAt = err, now
		return &ReloadError{Active: l.cur.Load().Version, Err: err}
	}
	l.cur.Store(set)
	l.reloads++
	l.lastErr, l.lastErrAt = nil, time.Time{}
	if l.opts.OnSwap != nil {
		l.opts.OnSwap(set)
	}
	return nil
}

// ReloadError is a refused reload: what is wrong with the new files and
// which set keeps serving instead. Its message is one sentence, so callers
// show it as it is rather than add their own "the old set stays".
type ReloadError struct {
	Active string // version of the set that keeps serving
	Err    error  // the load's problems: LoadErrors (file:line each) or a read error
}

func (e *ReloadError) Error() string {
	return fmt.Sprintf("scenarios: reload refused, set %s keeps serving: %v", e.Active, e.Err)
}

func (e *ReloadError) Unwrap() error { return e.Err }

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

// Hash returns the version a Load of fsys would get, reading only the
// files: Watch uses it to notice edits without compiling.
func Hash(fsys fs.FS) (string, error) {
	names, err := libraryFiles(fsys)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", fmt.Errorf("scenarios: reading %s: %w", name, err)
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(data)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Watch polls fsys every interval and reloads when its content changes
// (compile-all-then-swap: a broken edit is recorded in Status and the
// active set stays; the same broken content is not retried until it
// changes again). A change is only loaded once two polls in a row see the
// same content, so a file caught half-written (a valid but truncated
// YAML file) is not activated; editors that save atomically (write, then
// rename) are safe either way. It blocks until ctx is done and returns
// ctx.Err(); the caller owns the goroutine. now supplies load times.
func (l *Library) Watch(ctx context.Context, fsys fs.FS, interval time.Duration, now func() time.Time) error {
	if interval <= 0 {
		return fmt.Errorf("scenarios: watch interval %v must be positive", interval)
	}
	tried := l.Set().Version
	seen := tried
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		h, err := Hash(fsys)
		if err != nil {
			continue // a directory mid-edit is retried on the next tick
		}
		settled := h == seen
		seen = h
		if !settled || h == tried {
			continue
		}
		tried = h
		_ = l.Reload(fsys, now()) // the outcome is in Status
	}
}
