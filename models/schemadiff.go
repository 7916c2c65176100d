package models

import (
	"fmt"
	"slices"
)

// SchemaDiff names the first place where got lays features out otherwise
// than want, in words a person can act on: a column missing, extra, out of
// place or of the other kind, or a category value missing or extra. It
// returns "" when the two encode vectors the same way. The engine refuses
// a model whose schema hash differs from its own; a hash alone does not
// say what to change in the training file.
func SchemaDiff(want, got Schema) string {
	for i := 0; i < len(want.Features) || i < len(got.Features); i++ {
		if i >= len(got.Features) {
			return fmt.Sprintf("column %d %q is missing (the model has %d columns, the layout %d)", i+1, want.Features[i].Name, len(got.Features), len(want.Features))
		}
		if i >= len(want.Features) {
			return fmt.Sprintf("column %d %q is not in the layout (it has %d columns)", i+1, excerpt(got.Features[i].Name), len(want.Features))
		}
		w, g := want.Features[i], got.Features[i]
		if w.Name != g.Name {
			if j := want.Index(g.Name); j >= 0 {
				return fmt.Sprintf("column %d is %q where the layout has %q (%q is column %d there)", i+1, excerpt(g.Name), w.Name, excerpt(g.Name), j+1)
			}
			return fmt.Sprintf("column %d is %q where the layout has %q (no column of the layout is named %q)", i+1, excerpt(g.Name), w.Name, excerpt(g.Name))
		}
		if w.Kind != g.Kind {
			return fmt.Sprintf("column %d %q is %s where the layout has it %s", i+1, w.Name, g.Kind, w.Kind)
		}
		for _, v := range w.Vocabulary {
			if !slices.Contains(g.Vocabulary, v) {
				return fmt.Sprintf("column %d %q lacks the category %q (every category of the layout must occur in the training rows)", i+1, w.Name, v)
			}
		}
		for _, v := range g.Vocabulary {
			if !slices.Contains(w.Vocabulary, v) {
				return fmt.Sprintf("column %d %q has the category %q, which the layout does not", i+1, w.Name, excerpt(v))
			}
		}
		if !slices.Equal(w.Vocabulary, g.Vocabulary) {
			return fmt.Sprintf("column %d %q lists its categories in another order", i+1, w.Name)
		}
	}
	return ""
}
