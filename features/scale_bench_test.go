package features

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var benchCustomers = flag.Int("customers", 1_000_000, "customers in the scale benchmarks")

// realisticEvents yields a customer's month of online browsing, searches,
// carts, orders, store dwell and till purchases, offer impressions, in 2–4
// of 12 categories, a third with a linked device and a quarter with a card.
// The mix: half the customers are light (4–10 events), 35% regular
// (12–30), 15% heavy (30–60) — about 18 events a customer.
func realisticEvents(r *rand.Rand, c int, base int64, emit func(*Event)) {
	cats := [...]string{"skincare", "makeup", "baby", "phones", "laptops", "shoes", "apparel", "home", "sports", "grocery", "toys", "beauty"}
	ids := IDs{Member: fmt.Sprintf("M%07d", c)}
	if r.IntN(3) == 0 {
		ids.Device = fmt.Sprintf("D%07d", c)
	}
	if r.IntN(4) == 0 {
		ids.Card = fmt.Sprintf("C%07d", c)
	}
	ncat := 2 + r.IntN(3)
	mine := make([]string, ncat)
	for i := range mine {
		mine[i] = cats[r.IntN(len(cats))]
	}
	ts := base + int64(r.IntN(3*86400))*1000
	var n int
	switch x := r.IntN(100); {
	case x < 50:
		n = 4 + r.IntN(7)
	case x < 85:
		n = 12 + r.IntN(19)
	default:
		n = 30 + r.IntN(31)
	}
	seq := 0
	ev := Event{}
	for i := 0; i < n; i++ {
		ts += int64(60+r.IntN(86400)) * 1000
		cat := mine[r.IntN(ncat)]
		sku := fmt.Sprintf("K-%s-%d", cat, r.IntN(300))
		ev = Event{ID: fmt.Sprintf("%d-%d", c, seq), TS: ts, IDs: ids, Category: cat, SKU: sku, Channel: ChannelApp}
		seq++
		switch x := r.IntN(20); {
		case x < 8:
			ev.Type = ProductView
		case x < 10:
			ev.Type = Search
			ev.Query = cat
		case x < 12:
			ev.Type = AddToCart
			ev.Amount = int64(1000 + r.IntN(50000))
		case x < 13:
			ev.Type = Order
			ev.Amount = int64(1000 + r.IntN(50000))
		case x < 15:
			ev.Type, ev.Channel, ev.Store, ev.DwellS = Dwell, ChannelStore, fmt.Sprintf("S%03d", c%200), int32(60+r.IntN(1800))
		case x < 16:
			ev.Type, ev.Channel, ev.Store, ev.Amount = PosPurchase, ChannelPOS, fmt.Sprintf("S%03d", c%200), int64(1000+r.IntN(80000))
		case x < 18:
			ev.Type, ev.OfferID = OfferImpression, fmt.Sprintf("O%d", r.IntN(20))
		default:
			ev.Type = PageView
		}
		emit(&ev)
	}
}

var scaleStore struct {
	sync.Once
	s      *Store
	events int
	heap   uint64
}

func buildScaleStore(b *testing.B) *Store {
	scaleStore.Do(func() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		s, _ := NewStore(Options{})
		r := rand.New(rand.NewPCG(1, 1))
		base := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
		for c := 0; c < *benchCustomers; c++ {
			realisticEvents(r, c, base, func(ev *Event) {
				if _, rej := s.Apply(ev); rej == nil {
					scaleStore.events++
				}
			})
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		scaleStore.s = s
		scaleStore.heap = after.HeapAlloc - before.HeapAlloc
	})
	return scaleStore.s
}

// BenchmarkScale reports memory per customer at -customers customers with
// a realistic month of events each, and snapshot write and restore times.
func BenchmarkScale(b *testing.B) {
	s := buildScaleStore(b)
	b.Run("MemoryPerCustomer", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
		}
		b.ReportMetric(float64(scaleStore.heap)/float64(s.Len()), "B/customer")
		b.ReportMetric(float64(scaleStore.events)/float64(s.Len()), "events/customer")
		b.ReportMetric(float64(s.Len()), "customers")
	})
	path := filepath.Join(b.TempDir(), "state.snap")
	b.Run("SnapshotWrite", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := s.WriteSnapshotFile(path, SnapshotMeta{}, nil); err != nil {
				b.Fatal(err)
			}
		}
		fi, _ := os.Stat(path)
		b.ReportMetric(float64(fi.Size())/float64(s.Len()), "file-B/customer")
	})
	b.Run("SnapshotRestore", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			r, _ := NewStore(Options{})
			if _, _, err := r.ReadSnapshotFile(path); err != nil {
				b.Fatal(err)
			}
			if r.Len() != s.Len() {
				b.Fatalf("restored %d customers, want %d", r.Len(), s.Len())
			}
		}
	})
}
