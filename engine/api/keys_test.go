package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadKeysGoodFile(t *testing.T) {
	ring, err := LoadKeys("testdata/keys.good.yml")
	require.NoError(t, err)
	require.Equal(t, 2, ring.Len())

	i, ok := ring.Lookup([]byte("shop-key"))
	require.True(t, ok)
	require.Equal(t, "shop-app", ring.Spec(i).Name)
	require.Equal(t, ScopeDecide|ScopeIngest, ring.Spec(i).Scopes)

	i, ok = ring.Lookup([]byte("tablet-key"))
	require.True(t, ok)
	require.Equal(t, ScopeClienteling, ring.Spec(i).Scopes)

	for _, wrong := range []string{"", "shop-ke", "shop-key ", "SHOP-KEY", HashKey("shop-key")} {
		_, ok := ring.Lookup([]byte(wrong))
		require.False(t, ok, "%q is not a key (a key's hash is not the key either)", wrong)
	}
}

func TestLoadKeysBadFileReportsEveryProblemWithItsLine(t *testing.T) {
	_, err := LoadKeys("testdata/keys.bad.yml")
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"keys.bad.yml:3: sha256 must be 64 hex characters",
		`keys.bad.yml:4: unknown scope "superuser"`,
		`keys.bad.yml:5: unknown field "colour"`,
		`keys.bad.yml:6: duplicate key name "shop-app" (first on line 2)`,
		"keys.bad.yml:8: scopes must be a non-empty list",
		"keys.bad.yml:9: missing field name",
		`keys.bad.yml:11: unknown field "extra"`,
	} {
		require.Contains(t, msg, want)
	}
}

func TestLoadKeysRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"an empty file", "", "is empty"},
		{"a list at the top", "- a\n", "want a mapping"},
		{"keys that are not a list", "keys: {}\n", "keys must be a list"},
		{"no keys field", "other: 1\n", "missing field keys"},
		{"an empty keys list", "keys: []\n", "keys is empty"},
		{"a key that is not a mapping", "keys: [x]\n", "must be a mapping"},
		{"broken YAML", "keys: [\n", "parsing keys file"},
		{"two keys with one hash", "keys:\n  - {name: a, sha256: " + HashKey("k") + ", scopes: [admin]}\n  - {name: b, sha256: " + HashKey("k") + ", scopes: [decide]}\n", "same sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is an error", func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keys.yml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o600))
			_, err := LoadKeys(p)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := LoadKeys(filepath.Join(t.TempDir(), "absent.yml"))
	require.ErrorContains(t, err, "reading keys file")
}

func TestGenerateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path, key, err := GenerateKeyFile(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, KeysFileName), path)
	require.True(t, strings.HasPrefix(key, "nbo_"))
	require.Len(t, key, 4+64)

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "only the owner may read the keys file")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(raw), key, "the key is stored only hashed")

	ring, err := LoadKeys(path)
	require.NoError(t, err)
	i, ok := ring.Lookup([]byte(key))
	require.True(t, ok)
	require.Equal(t, ScopeIngest|ScopeDecide|ScopeClienteling|ScopeAdmin, ring.Spec(i).Scopes)

	// A second call leaves the file alone and has no key to show.
	path2, key2, err := GenerateKeyFile(dir)
	require.NoError(t, err)
	require.Equal(t, path, path2)
	require.Empty(t, key2)
	raw2, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, raw, raw2)
}

func TestBearer(t *testing.T) {
	tests := []struct {
		name, header, token string
		ok                  bool
	}{
		{"a bearer token is taken", "Bearer abc", "abc", true},
		{"the scheme is case-insensitive", "bearer abc", "abc", true},
		{"surrounding spaces are trimmed", "Bearer   abc  ", "abc", true},
		{"basic auth is refused", "Basic YWJj", "", false},
		{"an empty token is refused", "Bearer    ", "", false},
		{"a bare token is refused", "abc", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, ok := bearer([]byte(tc.header))
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.token, string(tok))
			}
		})
	}
}
