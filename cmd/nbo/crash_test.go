package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features/kafka"
)

// buildBinary builds nbo once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func nboBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nbo-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "nbo")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildOnce.err)
	return buildOnce.path
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// child is one `nbo serve` process.
type child struct {
	cmd    *exec.Cmd
	stderr *lineWatcher
}

// lineWatcher keeps a process's output and signals when a line contains a
// given text.
type lineWatcher struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func newLineWatcher(r io.Reader) *lineWatcher {
	w := &lineWatcher{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.lines = append(w.lines, "<eof>")
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w
}

// wait blocks until a line contains one of texts or the output ends.
func (w *lineWatcher) wait(timeout time.Duration, texts ...string) bool {
	deadline := time.AfterFunc(timeout, func() {
		w.mu.Lock()
		w.lines = append(w.lines, "<timeout>")
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer deadline.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(w.lines); seen++ {
			l := w.lines[seen]
			for _, text := range texts {
				if strings.Contains(l, text) {
					return true
				}
			}
			if l == "<eof>" || l == "<timeout>" {
				return false
			}
		}
		w.cond.Wait()
	}
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.lines)
	return strings.Join(w.lines[max(0, n-30):], "\n")
}

func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, stderr: newLineWatcher(stderr)}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	return c
}

func (c *child) kill(t *testing.T) {
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	_ = c.cmd.Wait()
}

func (c *child) stop(t *testing.T) {
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "serve did not exit cleanly:\n%s", c.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60s:\n%s", c.stderr)
	}
}

// crashLog generates n events for a few thousand customers in event-time
// order, ending an hour before now.
func crashLog(n int, now time.Time) [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	start := now.Add(-time.Hour - time.Duration(n)*50*time.Millisecond)
	types := []string{"page_view", "product_view", "product_view", "search", "add_to_cart", "order", "store_enter", "dwell", "product_touch", "pos_purchase", "offer_impression", "coupon_redeem"}
	cats := []string{"skincare", "baby", "phones", "shoes", "home"}
	out := make([][]byte, n)
	for i := range out {
		ts := start.Add(time.Duration(i) * 50 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		m := r.IntN(3000)
		typ := types[r.IntN(len(types))]
		ch := "app"
		extra := ""
		switch typ {
		case "store_enter", "dwell", "product_touch", "pos_purchase":
			ch = "store"
			extra = fmt.Sprintf(`,"store":"S%d"`, m%7)
		}
		switch typ {
		case "order", "pos_purchase":
			extra += fmt.Sprintf(`,"amount":%d`, 1000+r.IntN(50000))
		case "dwell":
			extra += fmt.Sprintf(`,"dwell_s":%d`, 30+r.IntN(1200))
		case "offer_impression", "coupon_redeem":
			extra += fmt.Sprintf(`,"offer_id":"O%d"`, r.IntN(5))
		case "search":
			extra += `,"query":"q"`
		}
		// Mostly member-keyed; one in ten links the member's device, and
		// one in ten comes from the device alone (anonymous browsing,
		// before or after the link): keyed by device, such an event sits
		// in another partition than the member's, so a restart's
		// catch-up must merge partitions by event time.
		ids := fmt.Sprintf(`{"member":"M%d"}`, m)
		switch r.IntN(10) {
		case 0:
			ids = fmt.Sprintf(`{"member":"M%d","device":"D%d"}`, m, m)
		case 1:
			ids = fmt.Sprintf(`{"device":"D%d"}`, m)
		}
		out[i] = fmt.Appendf(nil, `{"event_id":"e%d","ts":%q,"type":%q,"channel":%q,"ids":%s,"category":%q,"sku":"K%d"%s}`,
			i, ts, typ, ch, ids, cats[r.IntN(len(cats))], r.IntN(200), extra)
	}
	return out
}

// produceAll writes events to nbo.events; serve is the process whose
// embedded broker it writes to, whose output a failure shows (a broker
// that went away means serve exited).
func produceAll(t *testing.T, brokers []string, events [][]byte, serve fmt.Stringer) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: brokers, Topic: kafka.TopicEvents})
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const batch = 2000
	for i := 0; i < len(events); i += batch {
		msgs := make([]kafka.Message, 0, batch)
		for _, e := range events[i:min(i+batch, len(events))] {
			msgs = append(msgs, kafka.Message{Key: bestID(e), Value: e})
		}
		require.NoError(t, p.Produce(ctx, msgs), "serve's output:\n%s", serve)
	}
}

// bestID is the key an event is produced under, as the HTTP edge keys
// it: the member ID when the event has one, else the device ID.
func bestID(e []byte) []byte {
	for _, field := range []string{`"member":"`, `"device":"`} {
		if j := bytes.Index(e, []byte(field)); j >= 0 {
			k := e[j+len(field):]
			return k[:bytes.IndexByte(k, '"')]
		}
	}
	panic("crash test event without a member or device: " + string(e))
}

// TestCrashEquivalence kills a serving engine with SIGKILL at several
// points of a 100k-event ingest — at least once while a snapshot is being
// written — restarts it each time, and requires the final features of every
// customer to equal a clean single pass over the same events.
func TestCrashEquivalence(t *testing.T) {
	bin := nboBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	now := time.Now()
	events := crashLog(100_000, now)
	args := []string{"--data-dir", dir, "--embedded-kafka-addr", addr, "--http", freePort(t), "--admin", freePort(t), "--snapshot-every", "1s", "--log-level", "debug"}

	chunks := 5
	per := len(events) / chunks
	killedDuringSnapshot := false
	for i := 0; i < chunks; i++ {
		c := startChild(t, bin, args...)
		require.True(t, c.stderr.wait(60*time.Second, "no snapshot", "restored snapshot"), "serve did not start:\n%s", c.stderr)
		produceAll(t, []string{addr}, events[i*per:(i+1)*per], c.stderr)
		if i == chunks-1 {
			c.stop(t)
			break
		}
		// Kill while a snapshot is being written on odd rounds, at a
		// random moment of the ingest on even ones.
		if i%2 == 1 {
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if m, _ := filepath.Glob(filepath.Join(dir, "state.snap.tmp-*")); len(m) > 0 {
					killedDuringSnapshot = true
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
		} else {
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond) // mid-ingest
		}
		c.kill(t)
	}
	require.True(t, killedDuringSnapshot, "no kill landed during a snapshot write")

	// A last start catches up with the log, then stops cleanly.
	c := startChild(t, bin, args...)
	require.True(t, c.stderr.wait(120*time.Second, "caught up with the log"), "never caught up:\n%s", c.stderr)
	c.stop(t)

	at := now.UTC().Format(time.RFC3339)
	got, err := exec.Command(bin, "snapshot", "dump", "--data-dir", dir, "--at", at).Output()
	require.NoError(t, err)

	// The clean pass: the same events, once, in order (in a child process:
	// the race detector would make an in-process pass slow).
	logFile := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(logFile, append(bytes.Join(events, []byte("\n")), '\n'), 0o644))
	want, err := exec.Command(bin, "snapshot", "replay", "--events", logFile, "--at", at).Output()
	require.NoError(t, err)

	gotLines := strings.Split(strings.TrimSpace(string(got)), "\n")
	wantLines := strings.Split(strings.TrimSpace(string(want)), "\n")
	require.Greater(t, len(wantLines), 2500, "the log covers thousands of customers")
	require.Equal(t, len(wantLines), len(gotLines), "customer count")
	for i := range wantLines {
		require.Equal(t, wantLines[i], gotLines[i], "customer %d differs", i)
	}
}
