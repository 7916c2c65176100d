package models

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchemaDiffNamesTheFirstDifference(t *testing.T) {
	want := Schema{Features: []Feature{
		{Name: "a", Kind: Numeric},
		{Name: "b", Kind: Numeric},
		{Name: "channel", Kind: Categorical, Vocabulary: []string{"app", "web"}},
	}}
	with := func(mutate func(s *Schema)) Schema {
		s := Schema{Features: append([]Feature(nil), want.Features...)}
		s.Features[2].Vocabulary = append([]string(nil), want.Features[2].Vocabulary...)
		mutate(&s)
		return s
	}
	tests := []struct {
		name string
		got  Schema
		want string
	}{
		{"the same layout has no difference", with(func(*Schema) {}), ""},
		{"a column in another place is named with where it belongs", with(func(s *Schema) { s.Features[0], s.Features[1] = s.Features[1], s.Features[0] }),
			`column 1 is "b" where the layout has "a" ("b" is column 2 there)`},
		{"a column of another name is named", with(func(s *Schema) { s.Features[1].Name = "Y2" }),
			`column 2 is "Y2" where the layout has "b" (no column of the layout is named "Y2")`},
		{"a column of the other kind is named", with(func(s *Schema) { s.Features[1].Kind = Categorical }),
			`column 2 "b" is categorical where the layout has it numeric`},
		{"a category the training rows lacked is named", with(func(s *Schema) { s.Features[2].Vocabulary = []string{"app"} }),
			`column 3 "channel" lacks the category "web" (every category of the layout must occur in the training rows)`},
		{"an extra category is named", with(func(s *Schema) { s.Features[2].Vocabulary = append(s.Features[2].Vocabulary, "sms") }),
			`column 3 "channel" has the category "sms", which the layout does not`},
		{"a missing last column is named", with(func(s *Schema) { s.Features = s.Features[:2] }),
			`column 3 "channel" is missing (the model has 2 columns, the layout 3)`},
		{"an extra column is named", with(func(s *Schema) { s.Features = append(s.Features, Feature{Name: "z", Kind: Numeric}) }),
			`column 4 "z" is not in the layout (it has 3 columns)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, SchemaDiff(want, tt.got))
			if tt.want == "" {
				require.Equal(t, want.Hash(), tt.got.Hash())
			} else {
				require.NotEqual(t, want.Hash(), tt.got.Hash())
			}
		})
	}
}
