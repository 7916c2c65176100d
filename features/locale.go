package features

import "strings"

// ParseLanguage reads a locale tag as the language of nbo's texts, which
// come in Simplified Chinese (zh-CN) and English: english for "en" and
// any variant of it ("en-US", "en_GB", "EN"), not english for "zh" and
// any variant ("zh-CN", "zh-Hans", "zh-TW": a Traditional Chinese reader
// gets the Simplified texts rather than nothing). Matching is on the
// language subtag, case-insensitive, with '-' or '_' before the rest; ok
// is false for any other language and for a malformed tag.
func ParseLanguage(tag string) (english, ok bool) {
	lang, rest, cut := strings.Cut(strings.ReplaceAll(tag, "_", "-"), "-")
	if cut && (rest == "" || strings.HasPrefix(rest, "-") || strings.HasSuffix(rest, "-") || strings.Contains(rest, "--")) {
		return false, false
	}
	switch {
	case strings.EqualFold(lang, "en"):
		return true, true
	case strings.EqualFold(lang, "zh"):
		return false, true
	}
	return false, false
}
