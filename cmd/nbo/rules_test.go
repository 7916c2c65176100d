package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func runNbo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestRulesExportCheckTest(t *testing.T) {
	dir := t.TempDir()
	out, err := runNbo(t, "rules", "export", dir)
	require.NoError(t, err, out)
	require.FileExists(t, filepath.Join(dir, "scenarios.yaml"))
	require.FileExists(t, filepath.Join(dir, "testdata", "lapsed_60d_winback.txt"))

	_, err = runNbo(t, "rules", "export", dir)
	require.ErrorContains(t, err, "already exists")

	out, err = runNbo(t, "rules", "check", dir)
	require.NoError(t, err, out)
	require.Contains(t, out, "11 scenarios, 11 offers")

	out, err = runNbo(t, "rules", "check")
	require.NoError(t, err, out)
	require.Contains(t, out, "built-in library")

	out, err = runNbo(t, "rules", "test", dir)
	require.NoError(t, err, out)
	require.Contains(t, out, "ok   testdata/browsed_online_not_bought.txt")

	out, err = runNbo(t, "rules", "test")
	require.NoError(t, err, out)
	require.Contains(t, out, "ok   testdata/lapsed_60d_winback.txt")
	_, err = runNbo(t, "rules", "test", "--rewrite")
	require.ErrorContains(t, err, "read-only")

	// A changed rule fails its golden file until the output is accepted.
	sc := filepath.Join(dir, "scenarios.yaml")
	data, err := os.ReadFile(sc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sc, []byte(strings.Replace(string(data), "priority: 20", "priority: 25", 1)), 0o644))
	out, err = runNbo(t, "rules", "test", dir)
	require.Error(t, err)
	require.Contains(t, out, "FAIL testdata/lapsed_60d_winback.txt")
	require.Contains(t, out, "+lapsed_60d_winback → winback_coupon (priority 25)")
	// The hint is a command that works (it said -rewrite: "unknown
	// shorthand flag 'r'").
	hint := "accept with: nbo rules test " + dir + " --rewrite"
	require.ErrorContains(t, err, hint)
	out, err = runNbo(t, strings.Fields(hint[len("accept with: nbo "):])...)
	require.NoError(t, err, out)
	out, err = runNbo(t, "rules", "test", dir)
	require.NoError(t, err, out)

	// A broken file: check prints every problem and fails.
	require.NoError(t, os.WriteFile(sc, []byte(strings.Replace(string(data), "trigger: both", "trigger: always", 2)), 0o644))
	out, err = runNbo(t, "rules", "check", dir)
	require.ErrorContains(t, err, "2 problem(s)")
	require.Equal(t, 2, strings.Count(out, `unknown trigger "always"`), out)
}

func TestAMistypedSubcommandFails(t *testing.T) {
	// A typo such as "nbo rules chek lib" must not print help and exit 0:
	// a deploy script would take it for a passing check.
	for _, args := range [][]string{{"rules", "chek", "lib"}, {"snapshot", "dupm"}} {
		_, err := runNbo(t, args...)
		require.ErrorContains(t, err, `unknown command "`+args[1]+`"`, args)
	}
	out, err := runNbo(t, "rules")
	require.NoError(t, err, "a group alone prints its help")
	require.Contains(t, out, "Available Commands")
}

func TestRulesCheckNamesAMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-lib")
	_, err := runNbo(t, "rules", "check", missing)
	require.ErrorContains(t, err, missing)
}

// TestRulesSayWhatIsWrongWithDIR: "nbo rules check /nonexistent" said
// "open .: no such file or directory", naming a "." the user never typed.
func TestRulesSayWhatIsWrongWithDIR(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-lib")
	file := filepath.Join(t.TempDir(), "offers.yaml")
	require.NoError(t, os.WriteFile(file, []byte("offers: []\n"), 0o600))
	for _, sub := range []string{"check", "test"} {
		_, err := runNbo(t, "rules", sub, missing)
		require.EqualError(t, err, missing+": no such directory", sub)
		_, err = runNbo(t, "rules", sub, file)
		require.ErrorContains(t, err, file+" is not a directory", sub)
		require.NotContains(t, err.Error(), "open .", sub)
	}
}
