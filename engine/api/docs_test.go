package api

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The docs outside this package describe the API too; these tests hold
// them to what the server answers.

// repoFile reads a file of the repository (the tests run in engine/api).
func repoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	require.NoError(t, err)
	return string(b)
}

// docChunks splits markdown into paragraphs, and tables into their rows:
// the units a statement about the API must be complete in.
func docChunks(md string) []string {
	var out []string
	for _, para := range strings.Split(md, "\n\n") {
		if strings.HasPrefix(strings.TrimSpace(para), "|") {
			out = append(out, strings.Split(para, "\n")...)
			continue
		}
		out = append(out, para)
	}
	return out
}

// openapiOp is one operation of the served document, for the tests that
// read descriptions.
type openapiOp struct {
	Description string `json:"description"`
	Responses   map[string]struct {
		Ref         string `json:"$ref"`
		Description string `json:"description"`
	} `json:"responses"`
}

func openapiOps(t *testing.T) map[string]map[string]openapiOp {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]openapiOp `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openapiDoc, &doc))
	return doc.Paths
}

// TestBatchLimitDocsMatchTheCode: docs/events.md said a batch over 500
// events is rejected too_large, while the server answers 413
// payload_too_large. Every place that states the limit must name the
// answer the server gives.
func TestBatchLimitDocsMatchTheCode(t *testing.T) {
	h := start(t, nil)
	evs := make([]string, h.srv.opts.MaxBatch+1)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("l%d", i), "page_view")
	}
	a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+strings.Join(evs, ",")+"]"))
	requireError(t, a, 413, CodePayloadTooLarge)

	limit := strconv.Itoa(h.srv.opts.MaxBatch) + " events"
	for _, path := range []string{"README.md", "docs/events.md"} {
		found := false
		for _, chunk := range docChunks(repoFile(t, path)) {
			if !strings.Contains(chunk, limit) {
				continue
			}
			found = true
			require.Contains(t, chunk, "413", "%s: %q states the batch limit without its answer", path, chunk)
			require.Contains(t, chunk, CodePayloadTooLarge, "%s: %q states the batch limit without its answer", path, chunk)
		}
		require.True(t, found, "%s states the batch limit", path)
	}
	d := openapiOps(t)["/v1/events"]["post"].Responses["413"].Description
	require.Contains(t, d, limit)
	require.Contains(t, d, CodePayloadTooLarge)
}

// TestRateLimitIsDocumented: the README named 429 rate_limited but not
// the limit. The README's API section and the OpenAPI's 429 state the
// defaults nbo serve runs with.
func TestRateLimitIsDocumented(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	rate := strconv.Itoa(int(o.RateLimit)) + " requests/s"
	burst := strconv.Itoa(o.RateBurst)
	readme := repoFile(t, "README.md")
	_, api, ok := strings.Cut(readme, "\n## API\n")
	require.True(t, ok, "the README has an API section")
	api, _, _ = strings.Cut(api, "\n## ")
	require.Contains(t, api, rate)
	require.Contains(t, api, "bursts of up to "+burst)
	require.Contains(t, api, "RateLimit", "the README says how the limit is set")

	var doc struct {
		Components struct {
			Responses map[string]struct {
				Description string `json:"description"`
			} `json:"responses"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openapiDoc, &doc))
	d := doc.Components.Responses["RateLimited"].Description
	require.Contains(t, d, rate)
	require.Contains(t, d, "bursts of up to "+burst)
}

// TestTheEventExamplesArePostable: the examples in docs/events.md were
// wrapped NDJSON, which POST /v1/events refused line by line. The block
// as printed is accepted whole.
func TestTheEventExamplesArePostable(t *testing.T) {
	md := repoFile(t, "docs/events.md")
	_, examples, ok := strings.Cut(md, "\n## Examples\n")
	require.True(t, ok, "docs/events.md has an Examples section")
	_, block, ok := strings.Cut(examples, "```json\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	n := strings.Count(block, `"event_id"`)
	require.Positive(t, n)

	after := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) // the examples' newest event is on the 22nd
	h := start(t, func(o *Options) { o.Now = func() time.Time { return after } })
	a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str(block))
	require.Equal(t, 202, a.status, "%s", a.body)
	m := a.json(t)
	require.EqualValues(t, n, m["accepted"], "%s", a.body)
	require.Empty(t, m["rejected"], "%s", a.body)
}
