package api

import (
	"strings"

	"nbo/features"
)

// Access logs must never hold a raw phone number or email address, and
// both can arrive in paths (/v1/customers/phone:+8613800000000) and query
// strings (?customer=email:a@b.cn). redactPath and redactQuery replace any
// such value with "<redacted>" before a line is written. A value already
// hashed at the edge (64 hex characters, the form events store) is kept:
// it is what operators search logs by.
//
// The checks are plain byte scans (no regular expressions) and allocate
// only when something is replaced.

const redacted = "<redacted>"

// sensitive reports whether v (one path segment or query value) may be a
// phone number or an email address in clear.
func sensitive(v string) bool {
	if i := strings.IndexByte(v, ':'); i > 0 {
		ns := v[:i]
		switch ns {
		case "phone", "email":
			rest := v[i+1:]
			return rest != "" && !isHashed(rest)
		case "member", "card", "device":
			v = v[i+1:]
		}
	}
	if isHashed(v) {
		return false
	}
	if strings.IndexByte(v, '@') >= 0 || strings.Contains(v, "%40") {
		return true
	}
	// A run of 6 or more digits (the shortest phone number the event
	// decoder accepts), allowing the separators people put in phone
	// numbers, looks like a phone number.
	digits := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			if digits >= 6 {
				return true
			}
		case c == '+' || c == '-' || c == ' ' || c == '(' || c == ')' || c == '.':
		case c == '%' && i+2 < len(v) && v[i+1] == '2' && (v[i+2] == 'B' || v[i+2] == 'b' || v[i+2] == '0'):
			i += 2 // %2B (+) or %20 (space)
		default:
			digits = 0
		}
	}
	return false
}

func isHashed(v string) bool {
	if len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// redactValue returns v with its sensitive part replaced, keeping a
// namespace prefix ("phone:<redacted>") so the line stays useful.
func redactValue(v string) string {
	if !sensitive(v) {
		return v
	}
	if i := strings.IndexByte(v, ':'); i > 0 {
		if _, ok := features.ParseNamespace(v[:i]); ok {
			return v[:i+1] + redacted
		}
	}
	return redacted
}

// redactPath redacts each sensitive segment of a URL path.
func redactPath(p string) string {
	if !needsScan(p) {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = redactValue(s)
	}
	return strings.Join(segs, "/")
}

// redactQuery redacts each sensitive value of a raw query string.
func redactQuery(q string) string {
	if q == "" || !needsScan(q) {
		return q
	}
	parts := strings.Split(q, "&")
	for i, kv := range parts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			parts[i] = redactValue(kv)
			continue
		}
		// Query values arrive URL-encoded: "phone%3A%2B86…".
		v2 := strings.Replace(v, "%3A", ":", 1)
		v2 = strings.Replace(v2, "%3a", ":", 1)
		if sensitive(v2) {
			parts[i] = k + "=" + redactValue(v2)
		}
	}
	return strings.Join(parts, "&")
}

// needsScan is the cheap pre-check: a string with no '@', '%' or ':'
// and fewer than 6 digits can hold neither a phone number nor an email.
func needsScan(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '@' || c == '%' || c == ':' {
			return true
		}
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	return digits >= 6
}
