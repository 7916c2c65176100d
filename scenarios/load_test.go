package scenarios

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBuiltinLibraryLoads(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(t, err)
	require.Len(t, set.Scenarios, 11)
	require.Len(t, set.Offers, 11)
}

func TestEnvNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range envNames {
		require.False(t, seen[n], "two Env fields are named %q in expressions", n)
		seen[n] = true
	}
}

// TestYAMLErrorsPointAtTheProblemLine: yaml.v3 reports the line of its
// context mark (where the enclosing list started, 0-based for parser
// errors), so a misindented cooldown: on line 17 was reported as line 1,
// an unclosed [70 on line 8 as line 7 and a tab on line 11 as line 10.
func TestYAMLErrorsPointAtTheProblemLine(t *testing.T) {
	const offers = `offers:
  - id: instore_trial_coupon
    type: experience
    title:
      zh-CN: 门店免费体验券
      en: Free in-store trial
    text:
      zh-CN: 到店体验您看中的商品
      en: Try it in store
    value: 5000
    cost: 3000
    channels: [app, miniapp, web, push, sms]
    fulfilment: in_store
    requires_consent: marketing
    budget: {total: 30000000, per_store: 1000000}
    cap: {count: 1, period: 7d}
   cooldown: 72h
    prior: 0.08
    category: instore_experience
`
	const scenarios = `scenarios:
  - id: browsed_online_not_bought
    description: Looked at a category online and did not buy.
    for_each: viewed_not_bought
    offers: [instore_trial_coupon]
    channels: [app, miniapp, push]
    trigger: both
    priority: PRIORITY
    reason:
      zh-CN: 线上看了 {category}
      EN
`
	cases := []struct{ name, data, want string }{
		{"offers.yaml", offers, "offers.yaml:17: invalid YAML: did not find expected '-' indicator"},
		{"scenarios.yaml", strings.NewReplacer("PRIORITY", "[70", "EN", "en: Viewed {category}").Replace(scenarios),
			"scenarios.yaml:8: invalid YAML: did not find expected ',' or ']'"},
		{"scenarios.yaml", strings.NewReplacer("PRIORITY", "70", "      EN", "\ten: Viewed {category}").Replace(scenarios),
			"scenarios.yaml:11: invalid YAML: found a tab character that violates indentation"},
		{"scenarios.yaml", strings.NewReplacer("PRIORITY", "70", "EN", "en: Viewed {category}", "    reason:", "\treason:").Replace(scenarios),
			"scenarios.yaml:9: invalid YAML: found a tab character that violates indentation"},
	}
	for _, c := range cases {
		_, err := Load(fstest.MapFS{c.name: {Data: []byte(c.data)}}, time.Unix(0, 0))
		require.Error(t, err, c.data)
		require.Equal(t, c.want+"; check the indentation and quoting around this line", err.Error(), c.data)
	}
}

// TestYAMLProblemLineWithoutTrailingNewline: the last line counts even
// without a newline, and a problem on the first line is line 1.
func TestYAMLProblemLineWithoutTrailingNewline(t *testing.T) {
	for data, want := range map[string]string{
		"offers:\n  - id: a\n    channels: [app":  "x.yaml:3: ",
		"offers: [a\n":                            "x.yaml:1: ",
		"offers:\n  - id: a\n\tchannels: [app]\n": "x.yaml:3: ",
	} {
		_, err := Load(fstest.MapFS{"x.yaml": {Data: []byte(data)}}, time.Unix(0, 0))
		require.ErrorContains(t, err, want+"invalid YAML", data)
	}
}
