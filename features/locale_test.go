package features

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLanguage(t *testing.T) {
	for tag, want := range map[string][2]bool{
		"en": {true, true}, "en-US": {true, true}, "en_GB": {true, true}, "EN-au": {true, true},
		"zh": {false, true}, "zh-CN": {false, true}, "zh-Hans": {false, true}, "zh_TW": {false, true}, "ZH-hans-CN": {false, true},
		"": {false, false}, "fr": {false, false}, "fr-FR": {false, false}, "eng": {false, false}, "english": {false, false},
		"en-": {false, false}, "en--US": {false, false}, "-en": {false, false}, "zh-CN-": {false, false},
	} {
		english, ok := ParseLanguage(tag)
		require.Equal(t, want, [2]bool{english, ok}, "%q", tag)
	}
}
