package features

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIDescribesTheCustomer360 holds the OpenAPI schemas of GET
// /v1/customers/{key} to View.MarshalJSON's output types: every field
// documented, nothing documented that is not sent, and a field required
// exactly when it is never left out.
func TestOpenAPIDescribesTheCustomer360(t *testing.T) {
	raw, err := os.ReadFile("../engine/api/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	for schema, v := range map[string]any{
		"Customer": viewJSON{}, "CustomerCategory": keyJSON{}, "CustomerInterest": interestJSON{},
		"CustomerCartItem": cartJSON{}, "CustomerVisit": visitJSON{}, "CustomerRFM": rfmJSON{},
		"CustomerOffer": offerJSON{}, "CustomerRecentEvent": recentJSON{},
	} {
		s, ok := doc.Components.Schemas[schema]
		require.True(t, ok, "schema %s", schema)
		var sent, always, documented []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			sent = append(sent, name)
			if opts != "omitempty" {
				always = append(always, name)
			}
		}
		for name := range s.Properties {
			documented = append(documented, name)
		}
		require.ElementsMatch(t, sent, documented, "schema %s against %T", schema, v)
		require.ElementsMatch(t, always, s.Required, "schema %s's required fields against %T", schema, v)
	}
	var windows []string
	for name := range doc.Components.Schemas["Windows"].Properties {
		windows = append(windows, name)
	}
	require.ElementsMatch(t, windowNames[:], windows)
}
