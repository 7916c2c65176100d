package api

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/features"
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

// emittedCodes collects the error codes a client can get: the string
// constants named Code* in this package, string literals given as an
// Error's Code or as writeError's code in this package, and the Code
// literals of the api.Errors cmd/nbo's components return (read from
// source: a code added there without documenting it fails this test).
func emittedCodes(t *testing.T) map[string]string {
	t.Helper()
	codes := map[string]string{}
	fset := token.NewFileSet()
	collect := func(dir string, inAPI bool) {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			require.NoError(t, err)
			lit := func(e ast.Expr) (string, bool) {
				bl, ok := e.(*ast.BasicLit)
				if !ok || bl.Kind != token.STRING {
					return "", false
				}
				s, err := strconv.Unquote(bl.Value)
				return s, err == nil
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.ValueSpec:
					for i, name := range x.Names {
						if inAPI && strings.HasPrefix(name.Name, "Code") && i < len(x.Values) {
							if s, ok := lit(x.Values[i]); ok {
								codes[s] = fset.Position(name.Pos()).String()
							}
						}
					}
				case *ast.KeyValueExpr:
					if k, ok := x.Key.(*ast.Ident); ok && k.Name == "Code" {
						if s, ok := lit(x.Value); ok {
							codes[s] = fset.Position(x.Pos()).String()
						}
					}
				case *ast.CallExpr:
					if id, ok := x.Fun.(*ast.Ident); inAPI && ok && id.Name == "writeError" && len(x.Args) > 2 {
						if s, ok := lit(x.Args[2]); ok {
							codes[s] = fset.Position(x.Pos()).String()
						}
					}
				}
				return true
			})
		}
	}
	collect(".", true)
	collect(filepath.Join("..", "..", "cmd", "nbo"), false)
	// POST /v1/events answers a body that is not a batch with the event
	// reason code features.SplitBatch gives.
	_, _, _, e := decodeBatch(nil, 0, &features.DecodeOptions{}, 500)
	require.NotNil(t, e)
	codes[e.Code] = "decodeBatch"
	return codes
}

// TestOpenAPIListsEveryErrorCode: bad_model (422 from POST
// /v1/admin/models) was missing from the Error schema's list of stable
// codes. Every code a client can get must be in it.
func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Description string `json:"description"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openapiDoc, &doc))
	listed := map[string]bool{}
	for _, w := range regexp.MustCompile(`[a-z_]+`).FindAllString(doc.Components.Schemas.Error.Properties.Code.Description, -1) {
		listed[w] = true
	}
	codes := emittedCodes(t)
	for _, want := range []string{CodeMethodNotAllowed, CodeBadModel, CodeScenariosInvalid, "bad_json"} {
		require.Contains(t, codes, want, "the collector finds %s", want)
	}
	for code, where := range codes {
		require.True(t, listed[code], "code %s (%s) is missing from the OpenAPI Error schema's list of stable codes", code, where)
	}
}
