package features

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReadersNeverSeeAMergeHalfDone reads two customers from several
// goroutines while the writer merges them with an identify event: every
// read through either identifier finds the customer (a merge used to
// un-index the folded customer's identifiers and re-index them onto the
// survivor only at its end, so a read in between answered unknown), and
// sees either both customers apart or the merge with the identify event
// applied, never the merge without it.
func TestReadersNeverSeeAMergeHalfDone(t *testing.T) {
	s := newTestStore(t)
	const rounds = 3000
	var published atomic.Int64 // the newest round whose two customers exist
	published.Store(-1)
	var failures atomic.Int64
	var first atomic.Value
	fail := func(format string, args ...any) {
		if failures.Add(1) == 1 {
			first.Store(fmt.Sprintf(format, args...))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v View
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := published.Load()
				if r < 0 {
					continue
				}
				for _, k := range []Key{Key(fmt.Sprintf("device:D%d", r)), Key(fmt.Sprintf("member:M%d", r))} {
					if !s.ViewKey(k, t0+time.Hour.Milliseconds(), &v) {
						fail("round %d: %s unknown", r, k)
						continue
					}
					if merged := len(v.Linked) == 2; (merged && v.Version != 3) || (!merged && v.Version != 1) {
						fail("round %d: %s linked %v at version %d", r, k, v.Linked, v.Version)
					}
				}
			}
		}()
	}
	for r := range rounds {
		at := time.Duration(r) * time.Millisecond
		apply(t, s,
			mk(fmt.Sprintf("d%d", r), at, PageView, ChannelWeb, IDs{Device: fmt.Sprintf("D%d", r)}),
			mk(fmt.Sprintf("m%d", r), at, PageView, ChannelWeb, member(fmt.Sprintf("M%d", r))),
		)
		published.Store(int64(r))
		runtime.Gosched() // let the readers in before the merge
		apply(t, s, mk(fmt.Sprintf("l%d", r), at, Identify, ChannelApp, IDs{Member: fmt.Sprintf("M%d", r), Device: fmt.Sprintf("D%d", r)}))
	}
	close(stop)
	wg.Wait()
	require.Zero(t, failures.Load(), "first: %v", first.Load())
}
