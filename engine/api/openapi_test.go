package api

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type oaDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas         map[string]json.RawMessage `json:"schemas"`
		Responses       map[string]json.RawMessage `json:"responses"`
		Headers         map[string]json.RawMessage `json:"headers"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

type oaOp struct {
	Security   []map[string][]string      `json:"security"`
	Responses  map[string]json.RawMessage `json:"responses"`
	Parameters []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
}

// TestOpenAPIMatchesTheRouter walks hertz's own route table and checks
// that the document lists exactly those routes, each with the security,
// parameters and error answers its scope implies.
func TestOpenAPIMatchesTheRouter(t *testing.T) {
	h := start(t, nil)
	var doc oaDoc
	require.NoError(t, json.Unmarshal(openapiDoc, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."))
	require.Contains(t, doc.Components.SecuritySchemes, "bearer")

	registered := map[string]Scope{}
	for _, r := range h.srv.h.Routes() {
		registered[r.Method+" "+openapiPath(r.Path)] = 0
	}
	for _, r := range h.srv.Routes() {
		registered[r.Method+" "+r.Path] = r.Scope
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			scope, ok := registered[key]
			require.True(t, ok, "%s is documented but not registered", key)

			var op oaOp
			require.NoError(t, json.Unmarshal(raw, &op), key)
			if scope != 0 {
				require.Equal(t, []map[string][]string{{"bearer": {}}}, op.Security, "%s needs a bearer key", key)
				for _, code := range []string{"401", "403", "429", "500", "501"} {
					_, ok := op.Responses[code]
					require.True(t, ok, "%s documents %s", key, code)
				}
			} else {
				require.Empty(t, op.Security, "%s needs no key", key)
			}
			// Every path answers a method it does not take with 405
			// method_not_allowed, so every operation documents it.
			_, ok = op.Responses["405"]
			require.True(t, ok, "%s documents 405", key)
			// Every {param} in the path is declared as a path parameter.
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") {
					name := strings.Trim(seg, "{}")
					found := false
					for _, p := range op.Parameters {
						found = found || (p.In == "path" && p.Name == name)
					}
					require.True(t, found, "%s declares path parameter %s", key, name)
				}
			}
		}
	}
	var missing []string
	for key := range registered {
		if !documented[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "registered routes missing from the OpenAPI document")

	// Every $ref points at a component that exists.
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				require.Len(t, parts, 2, ref)
				var set map[string]json.RawMessage
				switch parts[0] {
				case "schemas":
					set = doc.Components.Schemas
				case "responses":
					set = doc.Components.Responses
				case "headers":
					set = doc.Components.Headers
				}
				require.Contains(t, set, parts[1], "dangling %s", ref)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var all any
	require.NoError(t, json.Unmarshal(openapiDoc, &all))
	walk(all)

	// And it is what /openapi.json serves.
	a := h.do(t, "GET", "/openapi.json", "", nil)
	require.Equal(t, 200, a.status)
	require.JSONEq(t, string(openapiDoc), string(a.body))
}
