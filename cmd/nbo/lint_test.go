package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The import direction of DESIGN.md, enforced as a test the way pebble's
// lint test enforces its house rules: a package imports only from the rows
// below it, and each third-party library lives behind one package of ours.

const module = "nbo"

// layer returns the row of a package path inside the module; higher rows
// may import lower ones only.
func layer(pkg string) (int, bool) {
	top := strings.SplitN(pkg, "/", 2)[0]
	switch top {
	case "features":
		return 0, true
	case "scenarios", "models":
		return 1, true
	case "engine":
		return 2, true
	case "bench":
		return 3, true
	case "cmd":
		return 4, true
	}
	return 0, false
}

// owners says which package subtree may import a third-party module.
// Test files are exempt, so tests can drive the real thing from outside.
var owners = map[string]string{
	"github.com/cloudwego/hertz":       "engine/api",
	"github.com/segmentio/kafka-go":    "features/kafka",
	"github.com/twmb/franz-go":         "features/kafka",
	"github.com/dgraph-io/ristretto":   "engine/cache",
	"github.com/sjwhitworth/golearn":   "models",
	"github.com/bits-and-blooms/bloom": "features",
}

type imp struct{ file, from, to string }

func moduleImports(t *testing.T, root string) (prod, tests []imp) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "data" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		from := filepath.ToSlash(rel)
		for _, s := range f.Imports {
			to, _ := strconv.Unquote(s.Path.Value)
			i := imp{file: path, from: from, to: to}
			if strings.HasSuffix(path, "_test.go") {
				tests = append(tests, i)
			} else {
				prod = append(prod, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the module: %v", err)
	}
	return prod, tests
}

func TestImportDirection(t *testing.T) {
	prod, tests := moduleImports(t, "../..")
	var problems []string
	for _, i := range append(prod, tests...) {
		if !strings.HasPrefix(i.to, module+"/") {
			continue
		}
		to := strings.TrimPrefix(i.to, module+"/")
		lf, okf := layer(i.from)
		lt, okt := layer(to)
		if !okf || !okt {
			continue
		}
		topFrom := strings.SplitN(i.from, "/", 2)[0]
		topTo := strings.SplitN(to, "/", 2)[0]
		switch {
		case topTo == "cmd":
			problems = append(problems, i.file+": nothing may import cmd ("+i.to+")")
		case topFrom == topTo:
			// within one subtree: Go forbids cycles already
		case lt >= lf:
			problems = append(problems, i.file+": "+i.from+" must not import "+i.to+" (imports flow down: cmd → bench → engine → scenarios, models → features)")
		}
	}
	for _, i := range prod {
		for lib, owner := range owners {
			if (i.to == lib || strings.HasPrefix(i.to, lib+"/")) && i.from != owner && !strings.HasPrefix(i.from, owner+"/") {
				problems = append(problems, i.file+": only "+owner+" may import "+lib)
			}
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}
