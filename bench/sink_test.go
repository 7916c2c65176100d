package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/features/kafka"
)

// takeEvents returns the first n events of a small simulation.
func takeEvents(t *testing.T, seed uint64, n int) []features.Event {
	t.Helper()
	s := newSim(t, Options{Seed: seed, Customers: 500, Days: 14})
	out := make([]features.Event, 0, n)
	var ev features.Event
	for len(out) < n && s.Next(&ev) {
		out = append(out, ev)
	}
	require.Len(t, out, n)
	return out
}

func TestNDJSONSinkWritesOneValidEventPerLine(t *testing.T) {
	events := takeEvents(t, 1, 1200)
	var buf bytes.Buffer
	sink := NewNDJSONSink(&buf)
	require.NoError(t, sink.Write(context.Background(), events[:700]))
	require.NoError(t, sink.Write(context.Background(), events[700:]))
	require.NoError(t, sink.Flush())
	sc := bufio.NewScanner(&buf)
	i := 0
	var got features.Event
	for sc.Scan() {
		require.Nil(t, features.DecodeEvent(sc.Bytes(), 1<<62, nil, &got))
		require.Equal(t, events[i], got)
		i++
	}
	require.Equal(t, len(events), i)
}

// ingestServer is a stand-in for POST /v1/events that speaks the same
// protocol: bearer key, NDJSON batches of at most 500, 202 with counts,
// and 503 with Retry-After for the first `fail` requests.
type ingestServer struct {
	mu       sync.Mutex
	fail     int
	batches  []int
	received []features.Event
	auth     []string
}

func (s *ingestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if r.URL.Path != "/v1/events" || r.Method != http.MethodPost {
		http.Error(w, "not found", 404)
		return
	}
	if s.fail > 0 {
		s.fail--
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"code":"unavailable","message":"retry"}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	raws, rej := features.SplitBatch(body, 500)
	if rej != nil {
		w.WriteHeader(413)
		return
	}
	s.batches = append(s.batches, len(raws))
	for _, raw := range raws {
		var ev features.Event
		if features.DecodeEvent(raw, 1<<62, nil, &ev) == nil {
			s.received = append(s.received, ev)
		}
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"accepted":`+strconv.Itoa(len(raws))+`,"rejected":[]}`)
}

func TestHTTPSinkBatchesAuthenticatesAndRetries(t *testing.T) {
	events := takeEvents(t, 2, 1234)
	srv := &ingestServer{fail: 2}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	sink, err := NewHTTPSink(HTTPSinkOptions{URL: ts.URL, APIKey: "k-ingest"})
	require.NoError(t, err)
	require.NoError(t, sink.Write(context.Background(), events))

	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Equal(t, []int{500, 500, 234}, srv.batches, "batches of at most 500 events")
	require.Equal(t, events, srv.received, "every event arrives once, in order, intact")
	for _, a := range srv.auth {
		require.Equal(t, "Bearer k-ingest", a)
	}
	st := sink.Stats()
	require.Equal(t, int64(2), st.Retries, "the two 503 answers were retried")
	require.Equal(t, int64(5), st.Requests)
	require.Equal(t, int64(1234), st.Accepted)
}

func TestHTTPSinkGivesUpOnOtherErrors(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"code":"forbidden","message":"missing scope ingest"}`)
	}))
	defer ts.Close()
	sink, err := NewHTTPSink(HTTPSinkOptions{URL: ts.URL})
	require.NoError(t, err)
	err = sink.Write(context.Background(), takeEvents(t, 3, 3))
	require.ErrorContains(t, err, "answered 403")
	require.ErrorContains(t, err, "missing scope ingest")
}

func TestHTTPSinkOptionsAreValidated(t *testing.T) {
	_, err := NewHTTPSink(HTTPSinkOptions{URL: "localhost:8080", MaxBatch: 501})
	require.ErrorContains(t, err, "http://")
	require.ErrorContains(t, err, "MaxBatch")
}

// simEventsBroker starts an embedded broker with a two-partition topic
// "sim.events", closed when the test ends.
func simEventsBroker(ctx context.Context, t *testing.T) *kafka.Embedded {
	t.Helper()
	broker, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	require.NoError(t, kafka.EnsureTopics(ctx, broker.Addrs(), []kafka.TopicSpec{{Name: "sim.events", Partitions: 2}}))
	return broker
}

func TestKafkaSinkProducesKeyedEventsToTheEmbeddedBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker := simEventsBroker(ctx, t)

	sink, err := NewKafkaSink(KafkaSinkOptions{Brokers: broker.Addrs(), Topic: "sim.events"})
	require.NoError(t, err)
	events := takeEvents(t, 4, 300)
	require.NoError(t, sink.Write(ctx, events))
	require.NoError(t, sink.Close())

	cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: broker.Addrs(), Topic: "sim.events", GroupID: "bench-test"})
	require.NoError(t, err)
	defer cons.Close()
	byID := make(map[string]features.Event, len(events))
	for _, ev := range events {
		byID[ev.ID] = ev
	}
	for range events {
		rec, err := cons.Fetch(ctx)
		require.NoError(t, err)
		var ev features.Event
		require.Nil(t, features.DecodeEvent(rec.Value, 1<<62, nil, &ev))
		want, ok := byID[ev.ID]
		require.True(t, ok, "unexpected or repeated event %s", ev.ID)
		delete(byID, ev.ID)
		require.Equal(t, want, ev)
		ns, v, ok := features.ParseKey(string(rec.Key))
		require.True(t, ok)
		require.Equal(t, ev.IDs.Get(ns), v, "the key is one of the event's identifiers")
		for better := features.NSMember; better < ns; better++ {
			require.Empty(t, ev.IDs.Get(better), "the key is the best identifier")
		}
	}
	require.Empty(t, byID)
}

func TestLimiterHoldsTheRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := NewLimiter(100, 10, t0)
	for i := range 10 {
		require.Zero(t, l.Reserve(t0, 1), "burst token %d is free", i)
	}
	require.Equal(t, 10*time.Millisecond, l.Reserve(t0, 1), "the 11th waits one token's time")
	require.Equal(t, 20*time.Millisecond, l.Reserve(t0, 1), "and the 12th two")
	// A long pause refills to the burst, no more.
	t1 := t0.Add(time.Hour)
	for range 10 {
		require.Zero(t, l.Reserve(t1, 1))
	}
	require.Positive(t, l.Reserve(t1, 1))
}

func TestPumpSendsEverythingAtTheRate(t *testing.T) {
	s := newSim(t, Options{Seed: 9, Customers: 200, Days: 7})
	var mu sync.Mutex
	var got []features.Event
	sink := SinkFunc(func(_ context.Context, evs []features.Event) error {
		mu.Lock()
		defer mu.Unlock()
		require.LessOrEqual(t, len(evs), 100)
		got = append(got, evs...)
		return nil
	})
	st, err := Pump(context.Background(), s, sink, PumpOptions{Rate: 4000, Batch: 100, MaxEvents: 2000})
	require.NoError(t, err)
	require.Equal(t, int64(2000), st.Events)
	require.Len(t, got, 2000)
	// The bucket starts with 100 tokens; the other 1900 take 1900/4000 s
	// at least. (A lower bound only: the machine may be slower.)
	require.GreaterOrEqual(t, st.Elapsed, 450*time.Millisecond)
	ids := make(map[string]bool)
	for _, ev := range got {
		require.False(t, ids[ev.ID])
		ids[ev.ID] = true
	}
}

func TestPumpStopsOnCancel(t *testing.T) {
	s := newSim(t, Options{Seed: 9, Customers: 200, Days: 7})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	sink := SinkFunc(func(_ context.Context, evs []features.Event) error {
		n += len(evs)
		if n >= 50 {
			cancel()
		}
		return nil
	})
	_, err := Pump(ctx, s, sink, PumpOptions{Rate: 500, Batch: 10})
	require.ErrorIs(t, err, context.Canceled)
}

func TestPumpLiveStampsWallClockTime(t *testing.T) {
	s := newSim(t, Options{Seed: 9, Customers: 200, Days: 7})
	var got []features.Event
	sink := SinkFunc(func(_ context.Context, evs []features.Event) error {
		got = append(got, evs...)
		return nil
	})
	before := time.Now().UnixMilli()
	_, err := Pump(context.Background(), s, sink, PumpOptions{Live: true, MaxEvents: 300})
	require.NoError(t, err)
	after := time.Now().UnixMilli()
	require.Len(t, got, 300)
	var last int64
	for _, ev := range got {
		require.GreaterOrEqual(t, ev.TS, max(before, last))
		require.LessOrEqual(t, ev.TS, after)
		last = ev.TS
	}
}

func TestKafkaSinkKeysByTheCustomerWhenAskedTo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker := simEventsBroker(ctx, t)
	sim := newSim(t, Options{Seed: 4, Customers: 50, Days: 2})
	var events []features.Event
	var ev features.Event
	for len(events) < 400 && sim.Next(&ev) {
		events = append(events, ev)
	}
	sink, err := NewKafkaSink(KafkaSinkOptions{Brokers: broker.Addrs(), Topic: "sim.events", Key: sim.PartitionKey})
	require.NoError(t, err)
	require.NoError(t, sink.Write(ctx, events))
	require.NoError(t, sink.Close())

	cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: broker.Addrs(), Topic: "sim.events", GroupID: "bench-test"})
	require.NoError(t, err)
	defer cons.Close()
	anonymous := 0
	for range events {
		rec, err := cons.Fetch(ctx)
		require.NoError(t, err)
		var got features.Event
		require.Nil(t, features.DecodeEvent(rec.Value, 1<<62, nil, &got))
		require.Equal(t, sim.PartitionKey(&got), string(rec.Key), "every event under its customer's key")
		if got.IDs.Member == "" && strings.HasPrefix(string(rec.Key), "member:") {
			anonymous++
		}
	}
	require.Positive(t, anonymous, "members' device-only events go under the member")
}
