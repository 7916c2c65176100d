package api

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine"
)

// fill sets every field of v to a non-zero value, so a field added to
// engine.Decision (and not to the hand-written encoder) shows up as a
// difference from encoding/json.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s<" + string(rune('a'+*n%26)) + ">")
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) / 8)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 20, 10, 0, *n, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() { // JSON encodes only these
				fill(v.Field(i), n)
			}
		}
	}
}

func TestDecisionEncoderCoversEveryField(t *testing.T) {
	var d engine.Decision
	n := 0
	fill(reflect.ValueOf(&d).Elem(), &n)
	want, err := json.Marshal(&d)
	require.NoError(t, err)
	got, err := appendDecision(nil, &d)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "update encode.go for the new field")

	var zero engine.Decision
	want, _ = json.Marshal(&zero)
	got, _ = appendDecision(nil, &zero)
	require.Equal(t, string(want), string(got))
}
