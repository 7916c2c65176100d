package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/scenarios"
)

// TestOpenAPIDescribesTheAdminAnswers holds the ScenarioStatus and
// ModelStatus schemas to what GET/POST /v1/admin/scenarios and POST
// /v1/admin/models answer: every field sent is documented and every
// documented field is sent when it applies.
func TestOpenAPIDescribesTheAdminAnswers(t *testing.T) {
	raw, err := os.ReadFile("../../engine/api/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string `json:"required"`
				Properties map[string]struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	keys := func(v any) map[string]json.RawMessage {
		t.Helper()
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	names := func(m map[string]json.RawMessage) (out []string) {
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	documented := func(schema string) (out []string) {
		for k := range doc.Components.Schemas[schema].Properties {
			out = append(out, k)
		}
		return out
	}

	// Scenarios: after a failed reload every field is there; after a
	// good one, the required ones.
	failed := scenarioStatus{scenarios.Status{Version: "v", LoadedAt: time.Now(), LastError: "bad", LastErrorAt: time.Now()}, "built-in"}
	require.ElementsMatch(t, documented("ScenarioStatus"), names(keys(failed)))
	ok := scenarioStatus{scenarios.Status{Version: "v", LoadedAt: time.Now()}, "built-in"}
	require.ElementsMatch(t, doc.Components.Schemas["ScenarioStatus"].Required, names(keys(ok)))

	// Models: a load that was kept sends all but the warning.
	dataDir := t.TempDir()
	writeLeafModel(t, filepath.Join(dataDir, "models", "m.json"))
	set := newModelSet(dataDir, "")
	res, err := set.load("m.json")
	require.NoError(t, err)
	got := keys(res)
	require.ElementsMatch(t, doc.Components.Schemas["ModelStatus"].Required, names(got))
	require.ElementsMatch(t, append(names(got), "warning"), documented("ModelStatus"))
	var metricKeys []string
	for k := range doc.Components.Schemas["ModelStatus"].Properties["metrics"].Properties {
		metricKeys = append(metricKeys, k)
	}
	var metrics map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(got["metrics"], &metrics))
	require.Subset(t, metricKeys, names(metrics))
	require.Subset(t, append(names(metrics), "calibration"), metricKeys, "calibration is sent only when the artifact has one")

	// The list of models in force: each as the load answered, without
	// its warning.
	list, err := set.ListModels(context.Background())
	require.NoError(t, err)
	listed := keys(list)
	require.ElementsMatch(t, doc.Components.Schemas["ServedModels"].Required, names(listed))
	var served []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(listed["models"], &served))
	require.Len(t, served, 1)
	require.ElementsMatch(t, names(got), names(served[0]))
}
