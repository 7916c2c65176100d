package scenarios

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// template is a compiled reason template: literal text and placeholders
// naming scalar Env fields ("看了 {category} {views} 次"). "{{" and "}}"
// are literal braces. Unknown placeholders are load errors.
type template struct {
	parts []tplPart
}

type tplPart struct {
	lit   string
	field int // index into Env; -1 for literal, -2 for the offer title
}

// envScalars maps placeholder names to Env field indexes.
var envScalars, envScalarNames = func() (map[string]int, []string) {
	m := map[string]int{}
	t := reflect.TypeFor[Env]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("expr")
		if name == "" || strings.HasPrefix(name, "_") || f.Type.Kind() == reflect.Func {
			continue
		}
		m[name] = i
	}
	names := make([]string, 0, len(m)+1)
	for n := range m {
		names = append(names, n)
	}
	names = append(names, "offer")
	sort.Strings(names)
	return m, names
}()

// compileTemplate parses src; the error says what to fix.
func compileTemplate(src string) (*template, error) {
	t := &template{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tplPart{lit: lit.String(), field: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '{' && i+1 < len(src) && src[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(src) && src[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed placeholder at %q; close it with } or write {{ for a literal brace", excerpt(src[i:]))
			}
			name := strings.TrimSpace(src[i+1 : i+end])
			flush()
			if name == "offer" {
				t.parts = append(t.parts, tplPart{field: -2})
			} else if idx, ok := envScalars[name]; ok {
				t.parts = append(t.parts, tplPart{field: idx})
			} else {
				return nil, fmt.Errorf("unknown placeholder {%s}%s; placeholders are the features listed in FEATURES.md (scalars only) and {offer}", name, suggest(name, envScalarNames))
			}
			i += end
		case c == '}':
			return nil, fmt.Errorf("stray } in %q; write }} for a literal brace", excerpt(src))
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

func excerpt(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// render writes the template with values from env; offer is the offer's
// title in the template's locale.
func (t *template) render(b *strings.Builder, env *Env, offer string) {
	rv := reflect.ValueOf(env).Elem()
	for _, p := range t.parts {
		switch p.field {
		case -1:
			b.WriteString(p.lit)
		case -2:
			b.WriteString(offer)
		default:
			f := rv.Field(p.field)
			switch f.Kind() {
			case reflect.String:
				b.WriteString(f.String())
			case reflect.Int:
				b.WriteString(strconv.FormatInt(f.Int(), 10))
			case reflect.Bool:
				b.WriteString(strconv.FormatBool(f.Bool()))
			case reflect.Float64:
				b.WriteString(strconv.FormatFloat(f.Float(), 'g', 3, 64))
			}
		}
	}
}
