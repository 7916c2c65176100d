package scenarios

import (
	"embed"
	"io/fs"
	"time"
)

//go:embed library/*.yaml library/testdata/*.txt
var builtinFS embed.FS

// Builtin returns the built-in library: offers.yaml, scenarios.yaml and
// the golden tests under testdata/.
func Builtin() fs.FS {
	sub, err := fs.Sub(builtinFS, "library")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// LoadBuiltin compiles the built-in library.
func LoadBuiltin(now time.Time) (*Set, error) { return Load(Builtin(), now) }
