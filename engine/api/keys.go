package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Scope is a set of permissions an API key holds.
type Scope uint8

const (
	// ScopeIngest allows POST /v1/events.
	ScopeIngest Scope = 1 << iota
	// ScopeDecide allows POST /v1/decide and GET /v1/offers.
	ScopeDecide
	// ScopeClienteling allows GET /v1/customers/{key}.
	ScopeClienteling
	// ScopeAdmin allows everything: it implies every other scope, and it
	// alone may set "now" on a decide request and call /v1/stats and
	// /v1/admin/*.
	ScopeAdmin
)

var scopeNames = [...]struct {
	name  string
	scope Scope
}{{"ingest", ScopeIngest}, {"decide", ScopeDecide}, {"clienteling", ScopeClienteling}, {"admin", ScopeAdmin}}

// ParseScope resolves a scope name.
func ParseScope(s string) (Scope, bool) {
	for _, n := range scopeNames {
		if n.name == s {
			return n.scope, true
		}
	}
	return 0, false
}

// String lists the scope's names, space-separated.
func (s Scope) String() string {
	var b []string
	for _, n := range scopeNames {
		if s&n.scope != 0 {
			b = append(b, n.name)
		}
	}
	return strings.Join(b, " ")
}

// Allows reports whether a key holding s may use a route that needs any
// of the scopes in need. Admin implies every scope.
func (s Scope) Allows(need Scope) bool { return s&ScopeAdmin != 0 || s&need != 0 }

// KeySpec describes one API key: its name (for logs and metrics, never
// secret), the SHA-256 of the key, and its scopes.
type KeySpec struct {
	Name   string
	SHA256 [sha256.Size]byte
	Scopes Scope
}

// KeyRing holds the API keys, hashed only. It is immutable and safe for
// concurrent use.
type KeyRing struct {
	specs  []KeySpec
	byHash map[[sha256.Size]byte]int
}

// NewKeyRing builds a key ring; names and hashes must be unique.
func NewKeyRing(specs []KeySpec) (*KeyRing, error) {
	r := &KeyRing{specs: append([]KeySpec(nil), specs...), byHash: make(map[[sha256.Size]byte]int, len(specs))}
	names := make(map[string]bool, len(specs))
	var errs []error
	for i, s := range r.specs {
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("key %d: empty name", i))
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("key %q: duplicate name", s.Name))
		}
		names[s.Name] = true
		if s.Scopes == 0 {
			errs = append(errs, fmt.Errorf("key %q: no scopes", s.Name))
		}
		if _, dup := r.byHash[s.SHA256]; dup {
			errs = append(errs, fmt.Errorf("key %q: same sha256 as another key", s.Name))
		}
		r.byHash[s.SHA256] = i
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("api: building the key ring: %w", err)
	}
	return r, nil
}

// Len is the number of keys.
func (r *KeyRing) Len() int { return len(r.specs) }

// Spec returns key i (0 ≤ i < Len()).
func (r *KeyRing) Spec(i int) KeySpec { return r.specs[i] }

// Lookup finds the key whose hash is SHA-256(token) and returns its index.
// Only the hash of the presented token is used as a map key, so lookup time
// depends on the hash, not on how much of a stored secret the token
// shares; the final comparison is constant-time.
func (r *KeyRing) Lookup(token []byte) (int, bool) {
	if r == nil || len(token) == 0 {
		return 0, false
	}
	h := sha256.Sum256(token)
	i, ok := r.byHash[h]
	if !ok {
		return 0, false
	}
	if subtle.ConstantTimeCompare(h[:], r.specs[i].SHA256[:]) != 1 {
		return 0, false
	}
	return i, true
}

// HashKey returns the hex SHA-256 of a key, the form a keys file stores.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// LoadKeys reads a keys file strictly:
//
//	keys:
//	  - name: shop-app
//	    sha256: 9f86d0…   # hex SHA-256 of the key
//	    scopes: [decide, ingest]
//
// Unknown fields, bad hex, unknown scopes, missing fields and duplicate
// names are all reported at once, each with file:line.
func LoadKeys(path string) (*KeyRing, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: reading keys file: %w", err)
	}
	specs, err := parseKeys(path, data)
	if err != nil {
		return nil, err
	}
	ring, err := NewKeyRing(specs)
	if err != nil {
		return nil, fmt.Errorf("api: loading keys from %s: %w", path, err)
	}
	return ring, nil
}

func parseKeys(path string, data []byte) ([]KeySpec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("api: parsing keys file %s: %w", path, err)
	}
	var errs []error
	bad := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", path, n.Line, fmt.Sprintf(format, args...)))
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("api: keys file %s is empty; want keys: [{name, sha256, scopes}]", path)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		bad(root, "want a mapping with a keys list")
		return nil, errors.Join(errs...)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "keys" {
			bad(k, "unknown field %q (want keys)", k.Value)
			continue
		}
		list = v
	}
	var specs []KeySpec
	names := map[string]int{}
	switch {
	case list == nil:
		bad(root, "missing field keys")
	case list.Kind != yaml.SequenceNode:
		bad(list, "keys must be a list")
	case len(list.Content) == 0:
		bad(list, "keys is empty; every request would be refused — add at least one key")
	default:
		for _, item := range list.Content {
			if item.Kind != yaml.MappingNode {
				bad(item, "each key must be a mapping {name, sha256, scopes}")
				continue
			}
			var s KeySpec
			var seen [3]bool
			for i := 0; i+1 < len(item.Content); i += 2 {
				k, v := item.Content[i], item.Content[i+1]
				switch k.Value {
				case "name":
					seen[0] = true
					if v.Kind != yaml.ScalarNode || v.Value == "" {
						bad(v, "name must be a non-empty string")
						continue
					}
					s.Name = v.Value
					if line, dup := names[s.Name]; dup {
						bad(v, "duplicate key name %q (first on line %d)", s.Name, line)
					}
					names[s.Name] = v.Line
				case "sha256":
					seen[1] = true
					h, err := hex.DecodeString(v.Value)
					if v.Kind != yaml.ScalarNode || err != nil || len(h) != sha256.Size {
						bad(v, "sha256 must be 64 hex characters (the SHA-256 of the key)")
						continue
					}
					copy(s.SHA256[:], h)
				case "scopes":
					seen[2] = true
					if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
						bad(v, "scopes must be a non-empty list of ingest, decide, clienteling, admin")
						continue
					}
					for _, sc := range v.Content {
						p, ok := ParseScope(sc.Value)
						if sc.Kind != yaml.ScalarNode || !ok {
							bad(sc, "unknown scope %q (want ingest, decide, clienteling or admin)", excerpt(sc.Value))
							continue
						}
						s.Scopes |= p
					}
				default:
					bad(k, "unknown field %q (want name, sha256, scopes)", excerpt(k.Value))
				}
			}
			for i, f := range [3]string{"name", "sha256", "scopes"} {
				if !seen[i] {
					bad(item, "missing field %s", f)
				}
			}
			specs = append(specs, s)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("api: loading keys: %w", err)
	}
	return specs, nil
}

// KeysFileName is the name GenerateKeyFile gives the keys file it creates.
const KeysFileName = "api-keys.yaml"

// GenerateKeyFile creates dataDir/api-keys.yaml holding one random key with
// every scope (named "admin"), readable only by its owner (0600), and
// returns its path and the key — the only time the key exists in clear.
// When the file already exists it is left alone and the key is "" (it
// was shown when the file was created).
func GenerateKeyFile(dataDir string) (path, key string, err error) {
	path = filepath.Join(dataDir, KeysFileName)
	if _, err := os.Stat(path); err == nil {
		return path, "", nil
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", "", fmt.Errorf("api: creating data dir for the keys file: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("api: generating a key: %w", err)
	}
	key = "nbo_" + hex.EncodeToString(raw[:])
	var b bytes.Buffer
	b.WriteString("# API keys for nbo; sha256 is the hex SHA-256 of the key. Generated by nbo serve.\n")
	b.WriteString("keys:\n  - name: admin\n    sha256: " + HashKey(key) + "\n    scopes: [ingest, decide, clienteling, admin]\n")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("api: creating keys file %s: %w", path, err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return "", "", fmt.Errorf("api: writing keys file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", "", fmt.Errorf("api: syncing keys file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", "", fmt.Errorf("api: closing keys file %s: %w", path, err)
	}
	return path, key, nil
}
