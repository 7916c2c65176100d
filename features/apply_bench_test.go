package features

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The apply path on one core: issue 2's "decode, validate, resolve,
// update ≥ 500k events/s per core". Run it with -cpu 1 so the garbage
// collector shares the one core with the path it serves:
//
//	go test -run '^$' -bench DecodeApply -cpu 1 -benchtime 1000000x -count 6 ./features/
//
// docs/benchmarks-dataplane.md has the numbers and the machine.

var applyCustomers = flag.Int("apply.customers", 200_000, "customers in BenchmarkDecodeApply's store")

// The workload is the realistic omnichannel mix of engine/ingest's tests
// (mixEvent there), copied because a test helper cannot be imported from a
// package above this one: 30% product views with referrer attributes, 10%
// searches, 8% add-to-cart, 3% remove-from-cart, 4% online orders, 4%
// store entries, 8% store dwell, 4% till purchases, 11% offer impressions,
// 3% offer clicks, 15% page views; every online event carries a session
// attribute; nine customers in ten are members (a third with an app
// device, a quarter with a store card), the tenth an anonymous device.

var mixCategories = [...]string{"skincare", "makeup", "baby", "phones", "laptops", "shoes", "apparel", "home", "sports", "grocery", "toys", "beauty"}

// mixNow is the decoder's clock: every event of the mix lies before it.
var mixNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func mixIDs(c int) IDs {
	if c%10 == 9 {
		return IDs{Device: fmt.Sprintf("ios-%08x-%04d", uint32(c)*2654435761, c%10000)}
	}
	ids := IDs{Member: fmt.Sprintf("M%09d", c)}
	if c%3 == 0 {
		ids.Device = fmt.Sprintf("and-%08x-%04d", uint32(c)*2246822519, c%10000)
	}
	if c%4 == 1 {
		ids.Card = fmt.Sprintf("CARD-%010d", c)
	}
	return ids
}

func mixStore(r *rand.Rand, c int) string {
	if r.IntN(5) == 0 {
		return fmt.Sprintf("SH-%03d", r.IntN(200))
	}
	return fmt.Sprintf("SH-%03d", c%200)
}

func mixEvent(r *rand.Rand, c int, ts int64, id, store string) Event {
	cat := mixCategories[(c*5+r.IntN(3))%len(mixCategories)]
	ev := Event{
		ID: id, TS: ts, IDs: mixIDs(c), Channel: ChannelApp, Category: cat,
		SKU: fmt.Sprintf("SKU-%s-%05d", strings.ToUpper(cat[:3]), r.IntN(2000)),
	}
	switch x := r.IntN(100); {
	case x < 30:
		ev.Type = ProductView
		ev.Channel = [...]Channel{ChannelApp, ChannelWeb, ChannelMiniapp}[r.IntN(3)]
		ev.Attrs = map[string]string{"referrer": "home_banner", "position": strconv.Itoa(r.IntN(20))}
	case x < 40:
		ev.Type, ev.SKU = Search, ""
		ev.Query = cat + " " + [...]string{"best seller", "on sale", "new arrivals", "gift set", "compare models"}[r.IntN(5)]
	case x < 48:
		ev.Type, ev.Amount, ev.Quantity = AddToCart, int64(990+r.IntN(60000)), int32(1+r.IntN(3))
	case x < 51:
		ev.Type = RemoveFromCart
	case x < 55:
		ev.Type, ev.Amount, ev.Quantity = Order, int64(1990+r.IntN(90000)), int32(1+r.IntN(3))
	case x < 59:
		ev.Type, ev.Channel, ev.Store, ev.SKU = StoreEnter, ChannelStore, store, ""
	case x < 67:
		ev.Type, ev.Channel, ev.Store, ev.DwellS = Dwell, ChannelStore, store, int32(30+r.IntN(1800))
		ev.SKU = ""
	case x < 71:
		ev.Type, ev.Channel, ev.Store = PosPurchase, ChannelPOS, store
		ev.Amount, ev.Quantity = int64(1990+r.IntN(120000)), int32(1+r.IntN(4))
	case x < 82:
		ev.Type, ev.SKU = OfferImpression, ""
		ev.OfferID = fmt.Sprintf("OFFER-%s-%02d", strings.ToUpper(cat[:3]), r.IntN(12))
		ev.DecisionID = fmt.Sprintf("dec-%016x", r.Uint64())
	case x < 85:
		ev.Type, ev.SKU = OfferClick, ""
		ev.OfferID = fmt.Sprintf("OFFER-%s-%02d", strings.ToUpper(cat[:3]), r.IntN(12))
		ev.DecisionID = fmt.Sprintf("dec-%016x", r.Uint64())
	default:
		ev.Type, ev.SKU, ev.Category = PageView, "", ""
		ev.Attrs = map[string]string{"page": "/" + cat}
	}
	if ev.Channel.Class() == Online {
		if ev.Attrs == nil {
			ev.Attrs = map[string]string{}
		}
		ev.Attrs["session"] = fmt.Sprintf("s-%012x", uint64(c)<<20|uint64(ts/1800_000)&0xfffff)
	}
	return ev
}

// mixGen yields the mix over a fixed population in increasing event time
// (1–10 ms apart) with unique event IDs.
type mixGen struct {
	r         *rand.Rand
	customers int
	ts        int64
	seq       int
	prefix    string
}

func newMixGen(seed uint64, customers int, prefix string) *mixGen {
	return &mixGen{r: rand.New(rand.NewPCG(seed, 3)), customers: customers, prefix: prefix, ts: mixNow.Add(-30 * 24 * time.Hour).UnixMilli()}
}

func (g *mixGen) next() Event {
	c := g.r.IntN(g.customers)
	g.ts += int64(1 + g.r.IntN(10))
	g.seq++
	return mixEvent(g.r, c, g.ts, g.prefix+strconv.Itoa(g.seq), mixStore(g.r, c))
}

// mixPool is a fixed set of encoded events replayed as new ones: each pass
// after the first rewrites every record's event_id digits and ts in place
// (fixed-width fields), so events stay unique and in time order without
// the generator's garbage landing in the measured GC cost.
type mixPool struct {
	recs    [][]byte
	ts      []int64
	idOff   []int // the 12 event_id digits
	tsOff   []int // the 24-byte ts
	firstTS int64
	span    int64
	pos     int
	pass    int
	scratch []byte
}

const mixTSLayout = "2006-01-02T15:04:05.000Z07:00" // EncodeEvent's, 24 bytes in UTC

func newMixPool(seed uint64, size, customers int) *mixPool {
	g := newMixGen(seed, customers, "")
	p := &mixPool{recs: make([][]byte, size), ts: make([]int64, size), idOff: make([]int, size), tsOff: make([]int, size)}
	for i := range p.recs {
		ev := g.next()
		ev.ID = fmt.Sprintf("p-%012d", i)
		rec := EncodeEvent(nil, &ev)
		p.idOff[i] = len(`{"event_id":"p-`)
		p.tsOff[i] = len(`{"event_id":"`) + len(ev.ID) + len(`","ts":"`)
		if got := string(rec[p.tsOff[i] : p.tsOff[i]+24]); got != time.UnixMilli(ev.TS).UTC().Format(mixTSLayout) {
			panic("mix pool: unexpected EncodeEvent layout: " + got)
		}
		p.recs[i], p.ts[i] = rec, ev.TS
	}
	p.firstTS = p.ts[0]
	p.span = p.ts[size-1] - p.ts[0] + 1000
	return p
}

// next returns up to n records of the current pass and a clock reading
// just after their event times.
func (p *mixPool) next(n int) ([][]byte, int64) {
	if p.pos == len(p.recs) {
		p.pos = 0
		p.pass++
	}
	recs := p.recs[p.pos:min(p.pos+n, len(p.recs))]
	shift := int64(p.pass) * p.span
	if p.pass > 0 {
		for j, rec := range recs {
			i := p.pos + j
			id := int64(p.pass)*int64(len(p.recs)) + int64(i)
			for k := p.idOff[i] + 11; k >= p.idOff[i]; k-- {
				rec[k] = byte('0' + id%10)
				id /= 10
			}
			p.scratch = time.UnixMilli(p.ts[i]+shift).UTC().AppendFormat(p.scratch[:0], mixTSLayout)
			copy(rec[p.tsOff[i]:p.tsOff[i]+24], p.scratch)
		}
	}
	p.pos += len(recs)
	return recs, p.ts[p.pos-1] + shift + 60_000
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecodeApply measures the whole apply path on one goroutine —
// DecodeEvent (parse, validate) then Store.Apply (resolve identity, dedup
// and lateness, update every feature) — over the realistic mix, into a
// store warmed up with two events for each of -apply.customers customers
// (about 193k distinct customers at the default). The sub-benchmarks split
// the cost: decode alone, apply alone (events decoded outside the timer),
// and both, the figure — event by event with Apply, and in
// batches of 256 with ApplyBatch, which prefetches the customers of the
// next events. Every event must be accepted.
//
// Besides ns/op (per event), it reports events/s of wall time and
// events/cpu-s: events over the whole process's CPU time while timed (the
// garbage collector included), which depends less on what else the shared
// machine runs.
func BenchmarkDecodeApply(b *testing.B) {
	const round = 1 << 14
	const batchSize = 256
	pool := newMixPool(1, 1<<18, *applyCustomers)
	for _, mode := range []string{"decode", "apply", "decode+apply", "decode+apply-batch"} {
		b.Run(mode, func(b *testing.B) {
			s, err := NewStore(Options{})
			if err != nil {
				b.Fatal(err)
			}
			g := newMixGen(2, *applyCustomers, "w-")
			g.ts = pool.firstTS - 3_600_000
			for range 2 * *applyCustomers {
				e := g.next()
				e.TS = min(e.TS, pool.firstTS-1) // stay behind the pool's events
				if _, rej := s.Apply(&e); rej != nil {
					b.Fatalf("warm-up event rejected: %v", rej)
				}
			}
			runtime.GC()
			var opts DecodeOptions
			var ev Event
			decoded := make([]Event, round)
			var rejected int64
			countRejected := func(_ int, _ Applied, rej *Rejection) {
				if rej != nil {
					rejected++
				}
			}
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				recs, now := pool.next(min(round, b.N-done))
				if mode == "apply" {
					for i := range recs {
						if rej := DecodeEvent(recs[i], now, &opts, &decoded[i]); rej != nil {
							b.Fatalf("pool event %s rejected: %v", recs[i], rej)
						}
					}
				}
				cpu0 := processCPU()
				b.StartTimer()
				switch mode {
				case "decode":
					for i := range recs {
						if DecodeEvent(recs[i], now, &opts, &ev) != nil {
							rejected++
						}
					}
				case "apply":
					for i := range recs {
						if _, rej := s.Apply(&decoded[i]); rej != nil {
							rejected++
						}
					}
				case "decode+apply":
					for i := range recs {
						if DecodeEvent(recs[i], now, &opts, &ev) != nil {
							rejected++
							continue
						}
						if _, rej := s.Apply(&ev); rej != nil {
							rejected++
						}
					}
				case "decode+apply-batch":
					// As an ingest loop that drains what is buffered: decode
					// up to batchSize records, then apply them together.
					for start := 0; start < len(recs); start += batchSize {
						n := 0
						for _, rec := range recs[start:min(start+batchSize, len(recs))] {
							if DecodeEvent(rec, now, &opts, &decoded[n]) != nil {
								rejected++
								continue
							}
							n++
						}
						s.ApplyBatch(decoded[:n], countRejected)
					}
				}
				b.StopTimer()
				cpu += processCPU() - cpu0
				b.StartTimer()
				done += len(recs)
			}
			b.StopTimer()
			if rejected > 0 {
				b.Fatalf("%d of %d events rejected; the benchmark must apply valid events", rejected, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
		})
	}
}
