package engine

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/models"
)

// TestModelsDocListsTheLayouts holds docs/models.md's column layouts to
// the schemas a CSV-trained model must match to be served.
func TestModelsDocListsTheLayouts(t *testing.T) {
	doc, err := os.ReadFile("../docs/models.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "<!-- layouts:")
	require.True(t, ok, "docs/models.md has the layouts block")
	_, rest, _ = strings.Cut(rest, "-->\n")
	block, _, ok := strings.Cut(rest, "<!-- end layouts -->")
	require.True(t, ok)
	require.Equal(t, layoutsDoc(), block, "regenerate the block from engine.CustomerSchema and engine.PropensitySchema")
}

func layoutsDoc() string {
	cols := func(fs []models.Feature) string {
		var out []string
		for _, f := range fs {
			c := "`" + f.Name + "`"
			if f.Kind == models.Categorical {
				c += " (categorical: " + strings.Join(f.Vocabulary, ", ") + ")"
			}
			out = append(out, c)
		}
		return strings.Join(out, ", ")
	}
	customer := CustomerSchema.Features
	var b strings.Builder
	b.WriteString("`engine.CustomerSchema` (customer scores), numeric unless marked, in this order: " + cols(customer) + ".\n\n")
	b.WriteString("`engine.PropensitySchema` (offer propensity): the customer columns above, then " +
		cols(PropensitySchema.Features[len(customer):]) + ".\n")
	return b.String()
}

// TestOpenAPIDescribesTheStatsReport holds the OpenAPI schemas of GET
// /v1/stats to the report's JSON: every field documented, nothing
// documented that is not sent.
func TestOpenAPIDescribesTheStatsReport(t *testing.T) {
	raw, err := os.ReadFile("api/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	for schema, v := range map[string]any{"Stats": StatsReport{}, "StatsRow": StatsRow{}, "Uplift": Uplift{}, "ChannelCredit": ChannelCredit{}} {
		var sent []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			sent = append(sent, name)
		}
		var documented []string
		for name := range doc.Components.Schemas[schema].Properties {
			documented = append(documented, name)
		}
		require.ElementsMatch(t, sent, documented, "schema %s against %T", schema, v)
	}
}
