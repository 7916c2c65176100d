package bench

import (
	"context"
	"fmt"
	"io"
	"testing"

	"nbo/features"
)

// BenchmarkSimulatorNext measures events generated per second, with the
// schedule of 10k and 1M customers (setup excluded). Run:
//
//	go test -run '^$' -bench SimulatorNext -benchmem ./bench/
func BenchmarkSimulatorNext(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			s, err := New(Options{Seed: 1, Customers: n, Days: 3650})
			if err != nil {
				b.Fatal(err)
			}
			var ev features.Event
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !s.Next(&ev) {
					b.Fatal("the stream ended")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSimulatorToNDJSON includes encoding: what `nbo simulate --out`
// can sustain.
func BenchmarkSimulatorToNDJSON(b *testing.B) {
	s, err := New(Options{Seed: 1, Customers: 100_000, Days: 3650})
	if err != nil {
		b.Fatal(err)
	}
	sink := NewNDJSONSink(io.Discard)
	batch := make([]features.Event, 500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			s.Next(&batch[j])
		}
		if err := sink.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
