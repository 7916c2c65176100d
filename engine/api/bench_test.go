package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"nbo/engine"
)

// The layer's own overhead: a trivial Decider behind the full stack
// (request ID, auth with SHA-256, scope, rate limit, strict JSON decoding
// and validation, JSON encoding, metrics, access log filtered by level).

var benchDecision = &engine.Decision{
	DecisionID: "d-1", Customer: "member:M1", Group: engine.GroupTreatment,
	Offers: []engine.OfferResult{
		{OfferID: "o1", Type: "coupon", Title: "到店体验券", Text: "门店体验", Value: 500, Scenario: "browsed_not_bought", Reason: "viewed online twice", Score: engine.ScoreParts{Propensity: 0.2, ContextWeight: 1, Value: 5, Lever: 1, Total: 1}},
		{OfferID: "o2", Type: "service", Title: "免费肤质检测", Text: "预约", Value: 0, Scenario: "skincare", Reason: "bought skincare online", Score: engine.ScoreParts{Propensity: 0.1, ContextWeight: 1, Value: 1, Lever: 1, Total: 0.1}},
	},
}

const benchBody = `{"ids":{"member":"M1"},"channel":"app","placement":"home_banner","limit":3,"locale":"zh-CN"}`

func benchOptions(b *testing.B) Options { return benchOptions2(b) }

func benchOptions2(b testing.TB) Options {
	return Options{
		Addr:      "127.0.0.1:0",
		Keys:      testRing(b),
		RateLimit: 1e9,
		// Access lines for successes at Debug, the logger at Info: what a
		// busy production instance runs with.
		AccessLogLevel: slog.LevelDebug,
		Logger:         slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry:       prometheus.NewRegistry(),
		Decider: DeciderFunc(func(context.Context, *engine.DecideRequest) (*engine.Decision, error) {
			d := *benchDecision
			return &d, nil
		}),
	}
}

// BenchmarkDecideInProcess drives the hertz engine without sockets, to
// isolate the layer's CPU and allocations per request; "access log on"
// writes one JSON access line per request (to io.Discard).
func BenchmarkDecideInProcess(b *testing.B) {
	// The baseline: the test harness and hertz's routing alone, through an
	// unauthenticated route with a fixed answer.
	b.Run("healthz baseline", func(b *testing.B) {
		srv, err := New(benchOptions(b))
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Shutdown(context.Background())
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if w := ut.PerformRequest(srv.h.Engine, "GET", "/healthz", nil); w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
	for _, logOn := range []bool{false, true} {
		name := "access log off"
		if logOn {
			name = "access log on"
		}
		b.Run(name, func(b *testing.B) {
			opts := benchOptions(b)
			if logOn {
				opts.AccessLogLevel = slog.LevelInfo
			}
			srv, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			body := []byte(benchBody)
			hdr := ut.Header{Key: "Authorization", Value: "Bearer " + testTokens["decide"]}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := ut.PerformRequest(srv.h.Engine, "POST", "/v1/decide", &ut.Body{Body: bytes.NewReader(body), Len: len(body)}, hdr)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body.String())
				}
			}
		})
	}
}

// BenchmarkDecideLoopback is the full path over loopback TCP with
// keep-alive connections from a net/http client in the same process (so
// the client's cost shares the machine too). ns/op is per request across
// all client goroutines; req/s is the throughput.
func BenchmarkDecideLoopback(b *testing.B) {
	for _, path := range []struct{ name, method, url, body string }{
		{"POST decide", "POST", "/v1/decide", benchBody},
		{"GET offers", "GET", "/v1/offers?customer=member:M1&channel=app&placement=home_banner", ""},
	} {
		b.Run(path.name, func(b *testing.B) {
			srv, err := New(benchOptions(b))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			defer func() { cancel(); <-done }()
			tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
			cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			defer tr.CloseIdleConnections()
			url := "http://" + srv.Addr() + path.url
			for i := 0; i < 100; i++ { // wait until serving, warm connections
				if resp, err := cl.Get("http://" + srv.Addr() + "/healthz"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			auth := "Bearer " + testTokens["decide"]
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				for pb.Next() {
					var body io.Reader
					if path.body != "" {
						body = bytes.NewReader([]byte(path.body))
					}
					req, _ := http.NewRequest(path.method, url, body)
					req.Header.Set("Authorization", auth)
					resp, err := cl.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					for {
						if _, err := resp.Body.Read(buf); err != nil {
							break
						}
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkDecideLoopbackOpenLoop sends b.N decide requests at a fixed
// 10,000 per second (open loop: each request has a scheduled send time and
// its latency counts from then, so a stall is not hidden by the client
// waiting) and reports the latency percentiles of the HTTP layer with a
// trivial Decider. Run with -benchtime=20000x for two seconds of load.
func BenchmarkDecideLoopbackOpenLoop(b *testing.B) {
	rate := benchRate()
	srv, err := New(benchOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	const workers = 64
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	url := "http://" + srv.Addr() + "/v1/decide"
	auth := "Bearer " + testTokens["decide"]
	send := func(buf []byte) error {
		req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(benchBody)))
		req.Header.Set("Authorization", auth)
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
		return nil
	}
	warm := make([]byte, 4096)
	for i := 0; i < 200; i++ {
		if err := send(warm); err != nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	lat := make([]time.Duration, b.N)
	svc := make([]time.Duration, b.N) // from the actual send, without client timer lateness
	interval := time.Second / time.Duration(rate)
	b.ResetTimer()
	start := time.Now().Add(10 * time.Millisecond)
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			buf := make([]byte, 4096)
			for i := w; i < b.N; i += workers {
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				sent := time.Now()
				if err := send(buf); err != nil {
					errc <- err
					return
				}
				lat[i] = time.Since(at)
				svc[i] = time.Since(sent)
			}
			errc <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sortDurations(lat)
	sortDurations(svc)
	pct := func(d []time.Duration, p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(pct(lat, 0.50), "p50_µs")
	b.ReportMetric(pct(lat, 0.99), "p99_µs")
	b.ReportMetric(pct(lat, 0.999), "p99.9_µs")
	// Service time: from the moment the request was actually sent. The gap
	// to the figures above is the client's own lateness (timers and
	// scheduling on a busy machine), which an open loop charges to the
	// server on purpose.
	b.ReportMetric(pct(svc, 0.50), "svc_p50_µs")
	b.ReportMetric(pct(svc, 0.99), "svc_p99_µs")
}

func sortDurations(d []time.Duration) {
	slices.Sort(d)
}

// benchRate is the open-loop rate: NBO_BENCH_RATE, else 10,000/s.
func benchRate() int {
	if v, err := strconv.Atoi(os.Getenv("NBO_BENCH_RATE")); err == nil && v > 0 {
		return v
	}
	return 10000
}

// decodeBenchBodies are decide bodies as clients send them: the common
// minimal one, one with every field and context, and one whose strings
// carry escapes (the slow path of the decoder).
var decodeBenchBodies = []struct{ name, body string }{
	{"minimal", benchBody},
	{"every field", `{"ids":{"member":"M1","card":"C-778812","device":"dev-9f8a7b"},"channel":"tablet","placement":"store_checkin","store":"S-0042","limit":5,"locale":"en","context":{"weather":"rain","associate":"A17","entrance":"north"}}`},
	{"escapes", `{"ids":{"member":"M\u0031"},"channel":"app","placement":"home\u005fbanner","store":"\u95e8\u5e97-7","locale":"zh-CN"}`},
}

// BenchmarkDecodeDecideRequest is the decoder and validator of POST
// /v1/decide bodies alone.
func BenchmarkDecodeDecideRequest(b *testing.B) {
	for _, bb := range decodeBenchBodies {
		b.Run(bb.name, func(b *testing.B) {
			body := []byte(bb.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var req engine.DecideRequest
				if e := decodeDecideRequest(body, false, &req); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

// BenchmarkDecodeDecideRequestReference is the encoding/json decoder the
// hand-written one replaced, on the same bodies, for comparison in one run.
func BenchmarkDecodeDecideRequestReference(b *testing.B) {
	for _, bb := range decodeBenchBodies {
		b.Run(bb.name, func(b *testing.B) {
			body := []byte(bb.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var req engine.DecideRequest
				if e := referenceDecodeDecideRequest(body, false, &req); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

const benchOffersQuery = "customer=member:M1&channel=app&placement=home_banner&limit=3&locale=zh-CN"

// BenchmarkDecodeOffersQuery is GET /v1/offers's query decoder, and the
// one it replaced.
func BenchmarkDecodeOffersQuery(b *testing.B) {
	var args protocol.Args
	args.ParseBytes([]byte(benchOffersQuery))
	b.Run("in place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req engine.DecideRequest
			if e := decodeOffersQuery(&args, &req); e != nil {
				b.Fatal(e)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req engine.DecideRequest
			if e := referenceDecodeOffersQuery(args.VisitAll, &req); e != nil {
				b.Fatal(e)
			}
		}
	})
}

// BenchmarkDecideHandler is one decide request through the hertz engine
// with a RequestContext reused between requests, as hertz's server reuses
// it per connection: what remains in allocs/op is the layer's own
// per-request allocation (plus hertz's routing), without the test
// harness's fresh context and recorder that BenchmarkDecideInProcess pays
// for.
func BenchmarkDecideHandler(b *testing.B) {
	for _, bb := range decodeBenchBodies[:2] {
		b.Run(bb.name, func(b *testing.B) {
			srv, err := New(benchOptions(b))
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			body := []byte(bb.body)
			auth := "Bearer " + testTokens["decide"]
			c := srv.h.Engine.NewContext()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c.Request.Header.SetMethod("POST")
				c.Request.SetRequestURI("/v1/decide")
				c.Request.Header.Set("Authorization", auth)
				c.Request.SetBody(body)
				srv.h.Engine.ServeHTTP(ctx, c)
				if c.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
				}
				c.Reset()
			}
		})
	}
	b.Run("GET offers", func(b *testing.B) {
		srv, err := New(benchOptions(b))
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Shutdown(context.Background())
		auth := "Bearer " + testTokens["decide"]
		c := srv.h.Engine.NewContext()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c.Request.Header.SetMethod("GET")
			c.Request.SetRequestURI("/v1/offers?" + benchOffersQuery)
			c.Request.Header.Set("Authorization", auth)
			srv.h.Engine.ServeHTTP(ctx, c)
			if c.Response.StatusCode() != 200 {
				b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
			}
			c.Reset()
		}
	})
}

// BenchmarkDecideLoopbackRaw is the full path over loopback TCP from
// clients that write a prepared request and read the answer by its
// Content-Length, allocating nothing per request themselves: allocs/op and
// B/op are then the server's (hertz's network layer included), which is
// what the garbage collector sees under load.
func BenchmarkDecideLoopbackRaw(b *testing.B) {
	srv, err := New(benchOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	req := []byte("POST /v1/decide HTTP/1.1\r\nHost: nbo\r\nAuthorization: Bearer " + testTokens["decide"] +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(benchBody)) + "\r\n\r\n" + benchBody)
	const conns = 8
	cs := make([]net.Conn, conns)
	for i := range cs {
		var c net.Conn
		for try := 0; ; try++ {
			if c, err = net.Dial("tcp", srv.Addr()); err == nil || try == 100 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((conns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := cs[next.Add(1)-1]
		r := bufio.NewReaderSize(c, 16<<10)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readAnswer(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// readAnswer reads one HTTP/1.1 answer with a Content-Length and requires
// status 200, without allocating.
func readAnswer(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("answer %q", line)
	}
	n := -1
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		const cl = "content-length:"
		if len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
			n = 0
			for _, c := range bytes.TrimSpace(line[len(cl):]) {
				n = n*10 + int(c-'0')
			}
		}
	}
	if n < 0 {
		return errors.New("answer without Content-Length")
	}
	_, err = r.Discard(n)
	return err
}
