package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSimulateRefusesZeroSizes: the simulator reads 0 as "the default",
// so "--days 0" once streamed 28 days; on the command line it is an error
// that names every bad flag.
func TestSimulateRefusesZeroSizes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events.ndjson")
	_, err := runNbo(t, "simulate", "--days", "0", "--customers", "0", "--stores", "0", "--batch", "0", "--out", out)
	for _, flag := range []string{"--days", "--customers", "--stores", "--batch"} {
		require.ErrorContains(t, err, flag+" is 0")
	}
	_, statErr := os.Stat(out)
	require.True(t, os.IsNotExist(statErr), "nothing is written")

	_, err = runNbo(t, "simulate", "--days", "1", "--customers", "3", "--stores", "1", "--out", out)
	require.NoError(t, err)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NotEmpty(t, strings.TrimSpace(string(data)))
}

// TestSimulateNamesTheDestinationsGiven: "--out a --http x" once said
// "give one of", as if none had been given.
func TestSimulateNamesTheDestinationsGiven(t *testing.T) {
	_, err := runNbo(t, "simulate", "--out", filepath.Join(t.TempDir(), "a"), "--http", "http://127.0.0.1:1")
	require.ErrorContains(t, err, "give exactly one of --out, --http and --kafka, not --out and --http")
	_, err = runNbo(t, "simulate", "--out", "-", "--http", "http://127.0.0.1:1", "--kafka", "127.0.0.1:1")
	require.ErrorContains(t, err, "not --out and --http and --kafka")
}

// ingestServer answers POST /v1/events like the engine: 202 with the
// events whose ts is after now listed as rejected future_ts.
func ingestServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		type rejected struct {
			Index   int    `json:"index"`
			Code    string `json:"code"`
			Field   string `json:"field,omitempty"`
			Message string `json:"message"`
		}
		ans := struct {
			Accepted int        `json:"accepted"`
			Rejected []rejected `json:"rejected"`
		}{Rejected: []rejected{}}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		for i := 0; sc.Scan(); i++ {
			var ev struct {
				TS time.Time `json:"ts"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ans.Rejected = append(ans.Rejected, rejected{Index: i, Code: "bad_json", Message: err.Error()})
			} else if ev.TS.After(time.Now().Add(5 * time.Minute)) {
				ans.Rejected = append(ans.Rejected, rejected{Index: i, Code: "future_ts", Field: "ts", Message: "ts is in the future"})
			} else {
				ans.Accepted++
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// TestSimulateReportsRejectionsAndFailsOnThem: the server's rejections
// once showed only as a count, and simulate exited 0.
func TestSimulateReportsRejectionsAndFailsOnThem(t *testing.T) {
	srv, _ := ingestServer(t)
	// Half the stream in the past, half in the future; --max-events lets
	// it through the up-front check with a warning.
	start := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	out, err := runNbo(t, "simulate", "--http", srv.URL, "--api-key", "k", "--customers", "20", "--stores", "2",
		"--days", "2", "--start", start, "--seed", "9", "--max-events", "100000")
	require.Error(t, err, out)
	require.Regexp(t, `the server rejected \d+ of \d+ events \(future_ts \d+;`, err.Error())
	require.Regexp(t, `rejected by reason: future_ts \d+\n`, out)
	require.Contains(t, out, "warning: --start "+start+" with --days 2")

	// A stream wholly in the past is accepted, and simulate succeeds.
	start = time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	out, err = runNbo(t, "simulate", "--http", srv.URL, "--api-key", "k", "--customers", "20", "--stores", "2",
		"--days", "2", "--start", start, "--seed", "9")
	require.NoError(t, err, out)
	require.Contains(t, out, "rejected 0 events")
	require.NotContains(t, out, "warning")
}

// TestSimulateRefusesAStartThatRunsPastNow: with an explicit --start, a
// stream to a live engine once ran past now and the engine refused the
// rest future_ts; it is refused before anything is sent.
func TestSimulateRefusesAStartThatRunsPastNow(t *testing.T) {
	srv, requests := ingestServer(t)
	start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, dest := range [][]string{{"--http", srv.URL, "--api-key", "k"}, {"--kafka", "127.0.0.1:1"}} {
		_, err := runNbo(t, append([]string{"simulate", "--customers", "20", "--stores", "2", "--days", "3", "--start", start}, dest...)...)
		require.ErrorContains(t, err, fmt.Sprintf("--start %s with --days 3 runs to", start))
		require.ErrorContains(t, err, "future_ts")
		require.ErrorContains(t, err, "give an earlier --start or fewer --days")
	}
	require.Zero(t, requests.Load(), "nothing is sent")

	// A file has no clock; --live stamps events with the time they are sent.
	_, err := runNbo(t, "simulate", "--customers", "20", "--stores", "2", "--days", "3", "--start", start, "--out", filepath.Join(t.TempDir(), "e.ndjson"))
	require.NoError(t, err)
	require.NoError(t, checkNotFuture(&bytes.Buffer{}, time.Now(), 3, true, 0, time.Now()))
}
