package features

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// recount is an oracle for the windowed counters: it counts a customer's
// accepted events straight from the event list, by the window rules the
// customer.go comment states (1h by minute, 24h by hour, 7d and 30d by
// UTC day, all ending with now's minute, hour or day).
type recount struct {
	counts map[[3]int]*[NumWindows]uint32 // class, type, category index
	sums   map[[3]int]*[NumWindows]int64
}

func recountWindows(evs []Event, cats map[string]int, now int64) recount {
	rc := recount{counts: map[[3]int]*[NumWindows]uint32{}, sums: map[[3]int]*[NumWindows]int64{}}
	nm := minuteOf(now)
	from := [NumWindows]int64{
		W1h:  int64(nm) - 59,
		W24h: int64(hourAlign(nm)) - 23*60,
		W7d:  int64(dayAlign(nm)) - 6*1440,
		W30d: int64(dayAlign(nm)) - 29*1440,
	}
	for i := range evs {
		ev := &evs[i]
		if !counted(ev.Type) {
			continue
		}
		k := [3]int{int(ev.Channel.Class()), int(ev.Type), cats[ev.Category]}
		if rc.counts[k] == nil {
			rc.counts[k], rc.sums[k] = new([NumWindows]uint32), new([NumWindows]int64)
		}
		m := int64(minuteOf(ev.TS))
		for w := W1h; w < NumWindows; w++ {
			if w == WLifetime || (m >= from[w] && m <= int64(nm)) {
				rc.counts[k][w]++
				rc.sums[k][w] += ev.Amount + int64(ev.DwellS)
			}
		}
	}
	return rc
}

// TestWindowsMatchARecountOfTheEvents applies months of the realistic mix
// to a few hundred customers — gaps from seconds to days, so buckets move
// from minutes to hours to days and expire, some events out of order
// within the lateness, a snapshot and restore half way — and checks every
// customer's every window against a recount of its accepted events, at
// instants from just before its newest event to days after it.
func TestWindowsMatchARecountOfTheEvents(t *testing.T) {
	const customers = 300
	r := rand.New(rand.NewPCG(7, 11))
	base := mixNow.AddDate(0, -3, 0).UnixMilli()
	type logged struct {
		at int64 // the event's place in the log
		ev Event
	}
	var log []logged
	perCustomer := map[int][]Event{}
	for c := range customers {
		ts := base + int64(r.IntN(86400))*1000
		var evs []Event
		n := 20 + r.IntN(60)
		if c == 0 {
			n = 100 // a burst of 80 minutes, then days later more
		}
		for i := range n {
			switch x := r.IntN(10); {
			case c == 0 && i < 80:
				ts += 61_000 // a minute bucket each: 80 move at once later
			case c == 0 && i == 80:
				ts += 3 * 86_400_000
			case x < 5:
				ts += int64(1+r.IntN(120)) * 1000 // within a session
			case x < 8:
				ts += int64(1+r.IntN(300)) * 60_000 // minutes to hours
			default:
				ts += int64(1+r.IntN(6*86400)) * 1000 // up to six days
			}
			evs = append(evs, mixEvent(r, c, ts, fmt.Sprintf("x-%d-%d", c, i), mixStore(r, c)))
		}
		at := make([]int64, len(evs))
		for i := range evs {
			at[i] = evs[i].TS
		}
		// Some neighbours less than the lateness apart arrive swapped.
		for i := 1; i < len(evs); i++ {
			if evs[i].TS-evs[i-1].TS < 5*60_000 && r.IntN(3) == 0 {
				evs[i], evs[i-1] = evs[i-1], evs[i]
			}
		}
		for i := range evs {
			log = append(log, logged{at[i], evs[i]})
		}
		perCustomer[c] = evs
	}
	// The log interleaves customers by time; each customer's events keep
	// their (partly swapped) order.
	slices.SortStableFunc(log, func(a, b logged) int { return cmp.Compare(a.at, b.at) })

	s := newTestStore(t)
	applyAll := func(s *Store, log []logged) {
		for i := range log {
			ev := log[i].ev
			_, rej := s.Apply(&ev)
			require.Nil(t, rej, "event %s", ev.ID)
		}
	}
	half := len(log) / 2
	applyAll(s, log[:half])
	var snap bytes.Buffer
	require.NoError(t, s.WriteSnapshot(&snap, SnapshotMeta{}, nil))
	s = newTestStore(t)
	_, _, err := s.ReadSnapshot(&snap)
	require.NoError(t, err)
	applyAll(s, log[half:])

	cats := map[string]int{"": 0}
	for i, c := range mixCategories {
		cats[c] = i + 1
	}
	checked := 0
	for c, evs := range perCustomer {
		newest := int64(0)
		for i := range evs {
			newest = max(newest, evs[i].TS)
		}
		ids := evs[0].IDs
		for _, at := range []int64{-9 * 60_000, 0, 59_000, 3600_000, 23 * 3600_000, 3 * 86_400_000, 20 * 86_400_000} {
			now := newest + at
			var v View
			require.True(t, s.ViewAt(&ids, now, &v), "customer %d", c)
			want := recountWindows(evs, cats, now)
			got := map[[3]int][2][NumWindows]int64{}
			for _, k := range v.Keys {
				var cs [NumWindows]int64
				for w := range k.Count {
					cs[w] = int64(k.Count[w])
				}
				got[[3]int{int(k.Class), int(k.Type), cats[k.Category]}] = [2][NumWindows]int64{cs, k.Sum}
			}
			// Per category (keys without one are only in the totals), and
			// the totals by class and type.
			var totals [NumClasses][NumTypes][2][NumWindows]int64
			nkeys := 0
			for key, wc := range want.counts {
				var cs [NumWindows]int64
				for w := range wc {
					cs[w] = int64(wc[w])
					totals[key[0]][key[1]][0][w] += int64(wc[w])
					totals[key[0]][key[1]][1][w] += want.sums[key][w]
				}
				if key[2] == 0 {
					continue
				}
				nkeys++
				require.Equal(t, [2][NumWindows]int64{cs, *want.sums[key]}, got[key], "customer %d at %s: key %v", c, FormatTS(now), key)
			}
			require.Len(t, got, nkeys, "customer %d at %s: keys", c, FormatTS(now))
			for cls := range NumClasses {
				for typ := range NumTypes {
					var cs [NumWindows]int64
					for w := range cs {
						cs[w] = int64(v.Counts[cls][typ][w])
					}
					require.Equal(t, totals[cls][typ], [2][NumWindows]int64{cs, v.Sums[cls][typ]}, "customer %d at %s: %s %s", c, FormatTS(now), cls, typ)
				}
			}
			checked++
		}
	}
	require.Greater(t, checked, customers*6)

	// Compaction is skipped until a bucket is due to move: every
	// customer's buckets must be what a full compaction leaves.
	s.Customers(func(k Key) {
		c := s.lookup(k)
		before := slices.Clone(c.buckets)
		c.compactedMin, c.compactAt = ^uint32(0), 0
		c.compact()
		require.Equal(t, before, c.buckets, "customer %s", k)
		// And no two buckets share a place (merges happened).
		seen := map[[2]uint32]bool{}
		for _, b := range c.buckets {
			place := [2]uint32{uint32(b.kr), b.start}
			require.False(t, seen[place], "customer %s: two buckets at %v", k, place)
			seen[place] = true
		}
	})
}

// TestApplyBatchEqualsApplyOneByOne feeds the same log — the realistic
// mix over a small population, so customers repeat within a batch, with
// duplicates, events past the lateness, identify events that merge
// customers, shared devices and erasures — to Apply one event at a time
// and to ApplyBatch in batches of random sizes, and requires the same
// answer for every event and the same features for every customer.
func TestApplyBatchEqualsApplyOneByOne(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 4))
	g := newMixGen(5, 40, "b-")
	var log []Event
	for range 4000 {
		ev := g.next()
		switch x := r.IntN(100); {
		case x < 4 && len(log) > 0:
			ev = log[r.IntN(len(log))] // a duplicate (or too late)
		case x < 8:
			// Link a device to a member (merging two customers when the
			// device had a customer of its own), or a second member to a
			// device (a shared device: no merge).
			ev.Type, ev.SKU, ev.Category, ev.Attrs = Identify, "", "", nil
			dev := fmt.Sprintf("shared-%d", r.IntN(10))
			if r.IntN(2) == 0 {
				dev = mixIDs(10*r.IntN(4) + 9).Device // an anonymous customer's
			}
			ev.IDs = IDs{Member: fmt.Sprintf("M%09d", r.IntN(40)), Device: dev}
		case x < 9:
			ev.Type, ev.SKU, ev.Category, ev.Attrs = Erase, "", "", nil
		}
		log = append(log, ev)
	}
	type result struct {
		a   Applied
		rej Reason
	}
	one := newTestStore(t)
	var want []result
	for i := range log {
		ev := log[i]
		a, rej := one.Apply(&ev)
		res := result{a: a}
		if rej != nil {
			res = result{rej: rej.Code}
		}
		want = append(want, res)
	}
	batched := newTestStore(t)
	var got []result
	for done := 0; done < len(log); {
		n := min(len(log)-done, []int{1, 2, 3, 5, 64, 300}[r.IntN(6)])
		batch := slices.Clone(log[done : done+n])
		batched.ApplyBatch(batch, func(i int, a Applied, rej *Rejection) {
			require.Equal(t, len(got), done+i, "results come in order")
			res := result{a: a}
			if rej != nil {
				res = result{rej: rej.Code}
			}
			got = append(got, res)
		})
		done += n
	}
	require.Equal(t, want, got)
	reasons := map[Reason]int{}
	merges := 0
	for _, w := range want {
		reasons[w.rej]++
		if len(w.a.Merged) > 0 {
			merges++
		}
	}
	require.Positive(t, reasons[ReasonDuplicate], "the log has duplicates")
	require.Positive(t, merges, "the log merges customers")
	now := mixNow.UnixMilli()
	require.Equal(t, allJSON(t, one, now), allJSON(t, batched, now))
	require.Equal(t, one.Stats(), batched.Stats())
}
