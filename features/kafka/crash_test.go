package kafka

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashChildEnv names the data directory when the test binary runs as the
// child broker process of TestEmbeddedBrokerSurvivesSIGKILL.
const crashChildEnv = "NBO_KAFKA_CRASH_CHILD_DIR"

// TestMain lets the test binary double as a child process that runs an
// embedded broker, produces and commits, reports, and then waits to be
// killed. Everything else runs the tests as usual.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

type crashReport struct {
	End       map[int]int64 `json:"end"`
	Committed map[int]int64 `json:"committed"`
}

func crashChild(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fail := func(err error) {
		if err != nil {
			os.Stderr.WriteString("crash child: " + err.Error() + "\n")
			os.Exit(2)
		}
	}
	e, err := StartEmbedded(ctx, EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir})
	fail(err)
	fail(EnsureTopics(ctx, e.Addrs(), Topics(4)))
	p, err := NewProducer(ProducerOptions{Brokers: e.Addrs(), Topic: TopicEvents})
	fail(err)
	fail(p.Produce(ctx, eventMessages(400, 40)))
	c, err := NewConsumer(ConsumerOptions{Brokers: e.Addrs(), Topic: TopicEvents, GroupID: "engine"})
	fail(err)
	var recs []Record
	for len(recs) < 250 {
		r, err := c.Fetch(ctx)
		fail(err)
		recs = append(recs, r)
	}
	committed := nextOffsets(recs)
	fail(c.Commit(ctx, committed))
	end, err := EndOffsets(ctx, e.Addrs(), TopicEvents)
	fail(err)
	b, err := json.Marshal(crashReport{End: end, Committed: committed})
	fail(err)
	os.Stdout.Write(append(b, '\n'))
	// Wait for SIGKILL: nothing is closed, nothing is flushed on purpose.
	<-ctx.Done()
	os.Exit(3)
}

// kill -9 of a process running the embedded broker must lose no
// acknowledged record and no acknowledged commit: the engine's crash
// recovery depends on it.
func TestEmbeddedBrokerSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t, time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the child reports after producing and committing")
	var rep crashReport
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(line)), &rep))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	e := startBroker(t, dir)
	end, err := EndOffsets(ctx, e.Addrs(), TopicEvents)
	require.NoError(t, err)
	require.Equal(t, rep.End, end, "every acknowledged record survived the kill")

	var remaining int64
	for p, o := range rep.End {
		remaining += o - rep.Committed[p]
	}
	c := newTestConsumer(t, e.Addrs(), TopicEvents, "engine")
	for _, r := range fetchN(t, ctx, c, int(remaining)) {
		require.GreaterOrEqual(t, r.Offset, rep.Committed[r.Partition], "the group resumed from its acknowledged commit")
	}
	requireNoMore(t, c, 300*time.Millisecond)
}
