package features

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// decodeNow is the clock of the decoder tests: the corpus events happen on
// 2026-11-20, before noon UTC.
var decodeNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC).UnixMilli()

// base is a valid product_view the malformed cases start from.
const base = `{"event_id":"e-1","ts":"2026-11-20T09:00:00+08:00","type":"product_view","channel":"web","ids":{"member":"M1"},"sku":"SKU-1"}`

// with returns base with extra top-level JSON members appended
// (`"k":v,...`) — later duplicates are avoided by the cases themselves.
func with(members string) string { return base[:len(base)-1] + "," + members + "}" }

// without returns base with the member `"name":value` removed.
func without(t *testing.T, member string) string {
	t.Helper()
	out := strings.Replace(base, ","+member, "", 1)
	require.NotEqual(t, base, out, "member %s not in base", member)
	return out
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// checkMessage asserts the house rules for rejection messages: short, and
// never quoting more than 32 bytes of the input.
func checkMessage(t *testing.T, input []byte, rej *Rejection) {
	t.Helper()
	require.NotEmpty(t, rej.Message)
	require.LessOrEqual(t, len(rej.Message), 200, "message too long: %s", rej.Message)
	require.LessOrEqual(t, len(rej.Field), 48, "field too long: %s", rej.Field)
	const window = 33
	for i := 0; i+window <= len(input); i++ {
		require.NotContains(t, rej.Message, string(input[i:i+window]), "message quotes more than 32 bytes of input")
	}
}

func TestDecodeEventRejectsMalformedInput(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		name  string
		in    string
		code  Reason
		field string
	}{
		{"empty input is bad JSON", ``, ReasonBadJSON, ""},
		{"plain text is bad JSON", `hello`, ReasonBadJSON, ""},
		{"an array is not an event", `[` + base + `]`, ReasonBadJSON, ""},
		{"a truncated object is bad JSON", base[:len(base)-8], ReasonBadJSON, "sku"},
		{"a missing colon is bad JSON", `{"event_id" "e-1"}`, ReasonBadJSON, ""},
		{"a trailing comma is bad JSON", with(`"store":"S1",`), ReasonBadJSON, ""},
		{"trailing garbage after the object is bad JSON", base + ` {}`, ReasonBadJSON, ""},
		{"a duplicate key is bad JSON", with(`"sku":"SKU-2"`), ReasonBadJSON, "sku"},
		{"a duplicate identifier is bad JSON", strings.Replace(base, `{"member":"M1"}`, `{"member":"M1","member":"M2"}`, 1), ReasonBadJSON, "ids.member"},
		{"a duplicate attrs key is bad JSON", with(`"attrs":{"a":"1","\u0061":"2"}`), ReasonBadJSON, "attrs"},
		{"a repeated unknown field is bad JSON, not unknown", with(`"x":1,"x":2`), ReasonBadJSON, "x"},
		{"a repeated unknown field spelt with an escape is bad JSON", with(`"\u0078":1,"x":2`), ReasonBadJSON, "x"},
		{"a repeated unknown identifier is bad JSON, not unknown", strings.Replace(base, `{"member":"M1"}`, `{"member":"M1","x":"1","x":"2"}`, 1), ReasonBadJSON, "ids.x"},
		{"an unknown name at the top and in ids is no duplicate", strings.Replace(with(`"x":1`), `{"member":"M1"}`, `{"member":"M1","x":"1"}`, 1), ReasonUnknownField, "ids.x"},
		{"an attrs key repeated after a null is bad JSON", with(`"attrs":{"k":null,"k":"v"}`), ReasonBadJSON, "attrs"},
		{"an attrs key repeated before a null is bad JSON", with(`"attrs":{"k":"v","k":null}`), ReasonBadJSON, "attrs"},
		{"an attrs key null twice is bad JSON", with(`"attrs":{"k":null,"k":null}`), ReasonBadJSON, "attrs"},
		{"an attrs key repeated after a number is bad JSON, not the wrong type", with(`"attrs":{"k":1,"k":"v"}`), ReasonBadJSON, "attrs"},
		{"an attrs key repeated past the limit is bad JSON, not too large", with(`"attrs":{` + manyAttrs(16) + `,"z":"1","z":"2"}`), ReasonBadJSON, "attrs"},
		{"an unknown escape is bad JSON", with(`"store":"S\x1"`), ReasonBadJSON, "store"},
		{"a short unicode escape is bad JSON", with(`"store":"S\u12"`), ReasonBadJSON, "store"},
		{"a raw control character in a string is bad JSON", with("\"store\":\"S\t1\""), ReasonBadJSON, "store"},
		{"invalid UTF-8 is bad JSON", with("\"store\":\"S\xff1\""), ReasonBadJSON, "store"},
		{"a broken phone string is bad JSON and not echoed", strings.Replace(base, `{"member":"M1"}`, `{"phone":"+86 138 0013 8000\q"}`, 1), ReasonBadJSON, "ids.phone"},
		{"a leading zero is bad JSON", with(`"quantity":01`), ReasonBadJSON, "quantity"},
		{"a misspelt literal is bad JSON", with(`"store":nul`), ReasonBadJSON, "store"},
		{"deep nesting in an unknown field is bad JSON", with(`"x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300)), ReasonBadJSON, "x"},
		{"an absent event_id is missing", "{" + base[len(`{"event_id":"e-1",`):], ReasonMissingField, "event_id"},
		{"an empty event_id is missing", strings.Replace(base, `"e-1"`, `""`, 1), ReasonMissingField, "event_id"},
		{"a null ts is missing", strings.Replace(base, `"2026-11-20T09:00:00+08:00"`, `null`, 1), ReasonMissingField, "ts"},
		{"an absent type is missing", without(t, `"type":"product_view"`), ReasonMissingField, "type"},
		{"an absent channel is missing", without(t, `"channel":"web"`), ReasonMissingField, "channel"},
		{"an absent ids is missing", without(t, `"ids":{"member":"M1"}`), ReasonMissingField, "ids"},
		{"ids of empty strings are missing", strings.Replace(base, `{"member":"M1"}`, `{"member":"","card":null}`, 1), ReasonMissingField, "ids"},
		{"a product_view without sku or category is missing sku", without(t, `"sku":"SKU-1"`), ReasonMissingField, "sku"},
		{"a pos_purchase without store is missing store", strings.Replace(with(`"amount":100`), "product_view", "pos_purchase", 1), ReasonMissingField, "store"},
		{"a return without amount is missing amount", strings.Replace(base, "product_view", "return", 1), ReasonMissingField, "amount"},
		{"a dwell without dwell_s is missing dwell_s", strings.Replace(with(`"store":"S1"`), "product_view", "dwell", 1), ReasonMissingField, "dwell_s"},
		{"a coupon_redeem without any reference is missing offer_id", strings.Replace(base, "product_view", "coupon_redeem", 1), ReasonMissingField, "offer_id"},
		{"a search without query is missing query", strings.Replace(base, "product_view", "search", 1), ReasonMissingField, "query"},
		{"a consent without purpose is missing attrs.purpose", strings.Replace(with(`"attrs":{"granted":"true"}`), "product_view", "consent", 1), ReasonMissingField, "attrs.purpose"},
		{"a consent without granted is missing attrs.granted", strings.Replace(with(`"attrs":{"purpose":"location"}`), "product_view", "consent", 1), ReasonMissingField, "attrs.granted"},
		{"an identify with one identifier is missing ids", strings.Replace(base, "product_view", "identify", 1), ReasonMissingField, "ids"},
		{"an unknown type is rejected", strings.Replace(base, "product_view", "product_viewed", 1), ReasonUnknownType, "type"},
		{"an unknown channel is rejected", strings.Replace(base, `"web"`, `"WEB"`, 1), ReasonBadChannel, "channel"},
		{"a date without time is a bad ts", strings.Replace(base, "2026-11-20T09:00:00+08:00", "2026-11-20", 1), ReasonBadTS, "ts"},
		{"a ts without zone is a bad ts", strings.Replace(base, "2026-11-20T09:00:00+08:00", "2026-11-20T09:00:00", 1), ReasonBadTS, "ts"},
		{"a ts on 29 February of a common year is bad", strings.Replace(base, "2026-11-20", "2026-02-29", 1), ReasonBadTS, "ts"},
		{"a ts with hour 24 is bad", strings.Replace(base, "T09:", "T24:", 1), ReasonBadTS, "ts"},
		{"a ts as a number is the wrong type", strings.Replace(base, `"2026-11-20T09:00:00+08:00"`, `1763600400000`, 1), ReasonWrongType, "ts"},
		{"a ts before 2000 is bad", strings.Replace(base, "2026-11-20", "1970-01-01", 1), ReasonBadTS, "ts"},
		{"a ts six minutes ahead is in the future", strings.Replace(base, "2026-11-20T09:00:00+08:00", "2026-11-20T12:06:00Z", 1), ReasonFutureTS, "ts"},
		{"an event over 16 KiB is too large", with(`"attrs":{"blob":"` + strings.Repeat("x", 16<<10) + `"}`), ReasonTooLarge, ""},
		{"an event_id over 128 bytes is too large", strings.Replace(base, `"e-1"`, `"`+strings.Repeat("e", 129)+`"`, 1), ReasonTooLarge, "event_id"},
		{"a sku over 256 bytes is too large", strings.Replace(base, `"SKU-1"`, `"`+long+`"`, 1), ReasonTooLarge, "sku"},
		{"a query over 512 bytes is too large", strings.Replace(with(`"query":"`+long+long+`"`), "product_view", "search", 1), ReasonTooLarge, "query"},
		{"seventeen attrs are too many", with(`"attrs":{` + manyAttrs(17) + `}`), ReasonTooLarge, "attrs"},
		{"an event_id with a space is a bad id", strings.Replace(base, `"e-1"`, `"e 1"`, 1), ReasonBadID, "event_id"},
		{"a member id with a slash is a bad id", strings.Replace(base, `"M1"`, `"M/1"`, 1), ReasonBadID, "ids.member"},
		{"a device id over 256 bytes is too large", strings.Replace(base, `{"member":"M1"}`, `{"device":"`+long+`"}`, 1), ReasonTooLarge, "ids.device"},
		{"a phone with letters is a bad id", strings.Replace(base, `{"member":"M1"}`, `{"phone":"call-me-maybe"}`, 1), ReasonBadID, "ids.phone"},
		{"a phone with 21 digits is a bad id", strings.Replace(base, `{"member":"M1"}`, `{"phone":"123456789012345678901"}`, 1), ReasonBadID, "ids.phone"},
		{"an email with two @ is a bad id", strings.Replace(base, `{"member":"M1"}`, `{"email":"a@b@c"}`, 1), ReasonBadID, "ids.email"},
		{"an email with nothing before @ is a bad id", strings.Replace(base, `{"member":"M1"}`, `{"email":"@example.com"}`, 1), ReasonBadID, "ids.email"},
		{"a quoted amount is the wrong type", strings.Replace(with(`"amount":"100"`), "product_view", "order", 1), ReasonWrongType, "amount"},
		{"a fractional amount is the wrong type", strings.Replace(with(`"amount":99.5`), "product_view", "order", 1), ReasonWrongType, "amount"},
		{"an exponent quantity is the wrong type", with(`"quantity":1e2`), ReasonWrongType, "quantity"},
		{"a numeric sku is the wrong type", strings.Replace(base, `"SKU-1"`, `12345`, 1), ReasonWrongType, "sku"},
		{"a boolean channel is the wrong type", strings.Replace(base, `"web"`, `true`, 1), ReasonWrongType, "channel"},
		{"ids as an array is the wrong type", strings.Replace(base, `{"member":"M1"}`, `["M1"]`, 1), ReasonWrongType, "ids"},
		{"a numeric member id is the wrong type", strings.Replace(base, `"M1"`, `1`, 1), ReasonWrongType, "ids.member"},
		{"attrs as a string is the wrong type", with(`"attrs":"a=1"`), ReasonWrongType, "attrs"},
		{"an attrs value as a number is the wrong type", with(`"attrs":{"stars":5}`), ReasonWrongType, "attrs.stars"},
		{"an unknown top-level field is rejected", with(`"price":100`), ReasonUnknownField, "price"},
		{"a misspelt field is rejected", with(`"Sku":"SKU-2"`), ReasonUnknownField, "Sku"},
		{"an unknown field name is cut to 32 bytes", with(`"` + long + `":1`), ReasonUnknownField, strings.Repeat("x", 32) + "…"},
		{"an unknown identifier is rejected", strings.Replace(base, `{"member":"M1"}`, `{"member":"M1","openid":"o1"}`, 1), ReasonUnknownField, "ids.openid"},
		{"an unknown field is reported before a bad value", with(`"zzz":1,"quantity":-1`), ReasonUnknownField, "zzz"},
		{"bad syntax is reported before an unknown field", with(`"zzz":1,"quantity":-`), ReasonBadJSON, "quantity"},
		{"a negative amount is a bad value", strings.Replace(with(`"amount":-100`), "product_view", "return", 1), ReasonBadValue, "amount"},
		{"a zero-amount order is a bad value", strings.Replace(with(`"amount":0`), "product_view", "order", 1), ReasonBadValue, "amount"},
		{"an amount of twenty digits is a bad value", strings.Replace(with(`"amount":12345678901234567890`), "product_view", "order", 1), ReasonBadValue, "amount"},
		{"a quantity over 10000 is a bad value", with(`"quantity":10001`), ReasonBadValue, "quantity"},
		{"a dwell_s over a day is a bad value", with(`"dwell_s":86401`), ReasonBadValue, "dwell_s"},
		{"a dwell of zero seconds is a bad value", strings.Replace(with(`"store":"S1","dwell_s":0`), "product_view", "dwell", 1), ReasonBadValue, "dwell_s"},
		{"a control character in a category is a bad value", with(`"category":"shoes\n"`), ReasonBadValue, "category"},
		{"an unknown consent purpose is a bad value", strings.Replace(with(`"attrs":{"purpose":"sales","granted":"true"}`), "product_view", "consent", 1), ReasonBadValue, "attrs.purpose"},
		{"a consent granted of yes is a bad value", strings.Replace(with(`"attrs":{"purpose":"marketing","granted":"yes"}`), "product_view", "consent", 1), ReasonBadValue, "attrs.granted"},
		{"an unknown consent channel is a bad channel", strings.Replace(with(`"attrs":{"purpose":"marketing","granted":"true","channels":"web,,app"}`), "product_view", "consent", 1), ReasonBadChannel, "attrs.channels"},
		{"an empty attrs key is a bad value", with(`"attrs":{"":"v"}`), ReasonBadValue, "attrs"},
	}
	require.GreaterOrEqual(t, len(cases), 25)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			rej := DecodeEvent([]byte(tc.in), decodeNow, nil, &ev)
			require.NotNil(t, rej, "accepted %s", tc.in)
			require.Equal(t, tc.code, rej.Code, "message: %s", rej.Message)
			require.Equal(t, tc.field, rej.Field, "message: %s", rej.Message)
			checkMessage(t, []byte(tc.in), rej)
			require.NotContains(t, rej.Message, "0013", "a clear phone number is never echoed")
		})
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("z", i) + `":"v"`)
	}
	return b.String()
}

// TestDecodeEventCorpus runs testdata/events: every line of good.ndjson is
// accepted and together they cover every event type; every file under bad/
// is rejected with the code and field bad.tsv lists for it.
func TestDecodeEventCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "events")
	t.Run("every good event is accepted and every type is covered", func(t *testing.T) {
		f, err := os.Open(filepath.Join(dir, "good.ndjson"))
		require.NoError(t, err)
		defer f.Close()
		seen := map[EventType]bool{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev Event
			rej := DecodeEvent(sc.Bytes(), decodeNow, nil, &ev)
			require.Nil(t, rej, "%s", sc.Text())
			seen[ev.Type] = true
		}
		require.NoError(t, sc.Err())
		for typ := TypeUnknown + 1; typ < NumTypes; typ++ {
			require.True(t, seen[typ], "good.ndjson has no %s event", typ)
		}
	})
	t.Run("every bad event is rejected with its listed code and field", func(t *testing.T) {
		manifest, err := os.ReadFile(filepath.Join(dir, "bad.tsv"))
		require.NoError(t, err)
		listed := map[string]bool{}
		codes := map[Reason]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(manifest)), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			cols := strings.Split(line, "\t")
			require.Len(t, cols, 3, "bad.tsv line %q", line)
			name, code, field := cols[0], Reason(cols[1]), cols[2]
			if field == "-" {
				field = ""
			}
			listed[name] = true
			codes[code] = true
			data, err := os.ReadFile(filepath.Join(dir, "bad", name))
			require.NoError(t, err)
			var ev Event
			rej := DecodeEvent(data, decodeNow, nil, &ev)
			require.NotNil(t, rej, "%s was accepted", name)
			require.Equal(t, code, rej.Code, "%s: %s", name, rej.Message)
			require.Equal(t, field, rej.Field, "%s: %s", name, rej.Message)
			checkMessage(t, data, rej)
		}
		files, err := filepath.Glob(filepath.Join(dir, "bad", "*.json"))
		require.NoError(t, err)
		require.Len(t, files, len(listed), "every file under bad/ is listed in bad.tsv and vice versa")
		for _, f := range files {
			require.True(t, listed[filepath.Base(f)], "%s is not listed in bad.tsv", f)
		}
		// Every code the decoder can give appears in the corpus.
		for _, code := range Reasons {
			if code == ReasonTooLate || code == ReasonDuplicate {
				continue // decided by the Store
			}
			require.True(t, codes[code], "no corpus file for %s", code)
		}
	})
}

func TestDecodeEventFillsEveryField(t *testing.T) {
	in := `{"event_id":"e-42","ts":"2026-11-20T10:40:00.123456+08:00","type":"pos_purchase","channel":"pos",
		"ids":{"member":"M1","card":"C-1","device":"aa:bb:cc:dd:ee:ff"},"sku":"SKU-9","category":"女装","store":"SH-001",
		"amount":129900,"quantity":2,"dwell_s":null,"offer_id":"O1","decision_id":"d1","coupon_code":"SAVE20","query":null,
		"attrs":{"lane":"3","note":"gift \"wrap\""}}`
	var ev Event
	require.Nil(t, DecodeEvent([]byte(in), decodeNow, nil, &ev))
	require.Equal(t, Event{
		ID:       "e-42",
		TS:       time.Date(2026, 11, 20, 2, 40, 0, 123e6, time.UTC).UnixMilli(),
		Type:     PosPurchase,
		Channel:  ChannelPOS,
		IDs:      IDs{Member: "M1", Card: "C-1", Device: "aa:bb:cc:dd:ee:ff"},
		SKU:      "SKU-9",
		Category: "女装",
		Store:    "SH-001",
		Amount:   129900, Quantity: 2,
		OfferID: "O1", DecisionID: "d1", CouponCode: "SAVE20",
		Attrs: map[string]string{"lane": "3", "note": `gift "wrap"`},
	}, ev)
}

func TestDecodeEventHashesPhoneAndEmail(t *testing.T) {
	hashed := hashHex("+8613800138000")
	cases := []struct {
		name string
		ids  string
		want IDs
	}{
		{"a phone with spaces and dashes is normalised then hashed", `{"phone":"+86 138-0013-8000"}`, IDs{Phone: hashed}},
		{"a phone written with brackets and dots is normalised too", `{"phone":"+86 (138) 0013.8000"}`, IDs{Phone: hashed}},
		{"a phone without plus hashes differently", `{"phone":"13800138000"}`, IDs{Phone: hashHex("13800138000")}},
		{"a hashed phone is kept", `{"phone":"` + hashed + `"}`, IDs{Phone: hashed}},
		{"an upper-case hashed phone is lower-cased", `{"phone":"` + strings.ToUpper(hashed) + `"}`, IDs{Phone: hashed}},
		{"an email is trimmed, lower-cased, then hashed", `{"email":"  Ana.Lee@Example.COM "}`, IDs{Email: hashHex("ana.lee@example.com")}},
		{"a hashed email is kept", `{"email":"` + hashHex("x@y.z") + `"}`, IDs{Email: hashHex("x@y.z")}},
		{"an escaped email is unescaped before hashing", `{"email":"ana\u0040example.com"}`, IDs{Email: hashHex("ana@example.com")}},
		{"a member id is never hashed", `{"member":"M1","phone":"+44 20 7946 0958"}`, IDs{Member: "M1", Phone: hashHex("+442079460958")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			in := strings.Replace(base, `{"member":"M1"}`, tc.ids, 1)
			require.Nil(t, DecodeEvent([]byte(in), decodeNow, nil, &ev))
			require.Equal(t, tc.want, ev.IDs)
		})
	}
	t.Run("HashIdentifier agrees with the decoder", func(t *testing.T) {
		h, ok := HashIdentifier(NSPhone, "+86 138-0013-8000")
		require.True(t, ok)
		require.Equal(t, hashed, h)
		h, ok = HashIdentifier(NSEmail, "Ana.Lee@Example.com")
		require.True(t, ok)
		require.Equal(t, hashHex("ana.lee@example.com"), h)
		_, ok = HashIdentifier(NSEmail, "nope")
		require.False(t, ok)
		_, ok = HashIdentifier(NSMember, "M1")
		require.False(t, ok)
	})
}

func TestDecodeEventUnescapesLikeEncodingJSON(t *testing.T) {
	cases := []struct{ name, raw string }{
		{"simple escapes", `a\"b\\c\/d\be\ff\ng\rh\ti`},
		{"a BMP escape", `caf\u00e9 \u5973\u88c5`},
		{"a surrogate pair", `smile \ud83d\ude00!`},
		{"upper-case hex digits", `\u00C9\uD83D\uDE00`},
		{"a lone high surrogate", `x\ud800y`},
		{"a lone low surrogate", `x\udc00y`},
		{"a high surrogate followed by a non-surrogate escape", `\ud800\u0041`},
		{"two high surrogates then a low one", `\ud800\ud83d\ude00`},
		{"raw multi-byte UTF-8", `女装 😀`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			require.NoError(t, json.Unmarshal([]byte(`"`+tc.raw+`"`), &want))
			in := strings.Replace(base, "product_view", "search", 1)
			in = in[:len(in)-1] + `,"query":"` + tc.raw + `","attrs":{"` + tc.raw + `":"` + tc.raw + `"}}`
			var ev Event
			rej := DecodeEvent([]byte(in), decodeNow, nil, &ev)
			if strings.ContainsAny(want, "\b\f\n\r\t") {
				require.NotNil(t, rej, "control characters are not accepted in values")
				require.Equal(t, ReasonBadValue, rej.Code)
				require.Equal(t, want, string(appendUnescaped(nil, []byte(tc.raw))))
				return
			}
			require.Nil(t, rej)
			require.Equal(t, want, ev.Query)
			require.Equal(t, map[string]string{want: want}, ev.Attrs)
		})
	}
	t.Run("escaped keys name their fields", func(t *testing.T) {
		in := `{"event\u005fid":"e-1","ts":"2026-11-20T09:00:00Z","\u0074ype":"pro\u0064uct_view","channel":"w\u0065b","ids":{"m\u0065mber":"M\u0031"},"sku":"S"}`
		var ev Event
		require.Nil(t, DecodeEvent([]byte(in), decodeNow, nil, &ev))
		require.Equal(t, "e-1", ev.ID)
		require.Equal(t, ProductView, ev.Type)
		require.Equal(t, ChannelWeb, ev.Channel)
		require.Equal(t, "M1", ev.IDs.Member)
	})
}

func TestDecodeEventParsesTimestampsLikeTimePackage(t *testing.T) {
	good := []string{
		"2026-11-20T10:00:00+08:00",
		"2026-11-20T02:00:00Z",
		"2026-11-20t02:00:00z",
		"2026-11-20T02:00:00.5Z",
		"2026-11-20T02:00:00.123456789-05:30",
		"2024-02-29T23:59:59.999+14:00",
		"2000-01-01T00:00:00Z",
		"2000-03-01T00:00:00-00:00",
		"2099-12-31T23:59:59Z",
		"2100-02-28T12:00:00+01:00",
	}
	for _, s := range good {
		want, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
		require.NoError(t, err, s)
		got, ok := parseTS([]byte(s))
		require.True(t, ok, s)
		require.Equal(t, want.UnixMilli(), got, s)
	}
	bad := []string{
		"", "2026-11-20", "2026-11-20T10:00:00", "2026-11-20 10:00:00Z", "2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z", "2100-02-29T00:00:00Z", "2026-11-20T10:60:00Z",
		"2026-11-20T10:00:60Z", "2026-11-20T10:00:00.Z", "2026-11-20T10:00:00+0800", "2026-11-20T10:00:00+24:00",
		"2026-11-20T10:00:00+08:60", "2026-11-20T10:00:00Zjunk", "２026-11-20T10:00:00Z", "2026-1-20T10:00:00Z",
		"+2026-11-20T10:00:00Z",
	}
	for _, s := range bad {
		_, ok := parseTS([]byte(s))
		require.False(t, ok, s)
	}
}

func TestDecodeEventRoundTripsThroughEncodeEvent(t *testing.T) {
	f, err := os.ReadFile(filepath.Join("testdata", "events", "good.ndjson"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(f)), "\n")
	lines = append(lines, strings.Replace(with(`"amount":0`), "product_view", "return", 1))
	lines = append(lines, strings.Replace(with(`"attrs":{"z":"1","a":"\u0000"}`), `\u0000`, `x\"\\\/\u00e9`, 1))
	for _, line := range lines {
		var ev, again Event
		require.Nil(t, DecodeEvent([]byte(line), decodeNow, nil, &ev), line)
		out := EncodeEvent(nil, &ev)
		require.True(t, json.Valid(out), "%s", out)
		require.Nil(t, DecodeEvent(out, decodeNow, nil, &again), "%s", out)
		require.Equal(t, ev, again, "%s", out)
		require.Equal(t, string(out), string(EncodeEvent(nil, &again)), "the encoding is canonical")
	}
	var ev Event
	require.Nil(t, DecodeEvent([]byte(base), decodeNow, nil, &ev))
	require.Equal(t, `{"event_id":"e-1","ts":"2026-11-20T01:00:00.000Z","type":"product_view","channel":"web","ids":{"member":"M1"},"sku":"SKU-1"}`,
		string(EncodeEvent(nil, &ev)))
}

func TestDecodeEventOwnership(t *testing.T) {
	t.Run("strings do not alias the input", func(t *testing.T) {
		in := []byte(with(`"attrs":{"k":"v"}`))
		var ev Event
		require.Nil(t, DecodeEvent(in, decodeNow, nil, &ev))
		for i := range in {
			in[i] = 'X'
		}
		require.Equal(t, "e-1", ev.ID)
		require.Equal(t, "SKU-1", ev.SKU)
		require.Equal(t, "M1", ev.IDs.Member)
		require.Equal(t, map[string]string{"k": "v"}, ev.Attrs)
	})
	t.Run("decoding into a reused event leaves copies of the old one intact", func(t *testing.T) {
		var ev Event
		require.Nil(t, DecodeEvent([]byte(with(`"attrs":{"k":"v"}`)), decodeNow, nil, &ev))
		kept := ev
		require.Nil(t, DecodeEvent([]byte(strings.NewReplacer(`"e-1"`, `"e-2"`, `"SKU-1"`, `"SKU-2"`).Replace(with(`"attrs":{"k":"w"}`))), decodeNow, nil, &ev))
		require.Equal(t, "e-1", kept.ID)
		require.Equal(t, "SKU-1", kept.SKU)
		require.Equal(t, map[string]string{"k": "v"}, kept.Attrs)
		require.Equal(t, map[string]string{"k": "w"}, ev.Attrs)
		require.Nil(t, DecodeEvent([]byte(base), decodeNow, nil, &ev))
		require.Nil(t, ev.Attrs, "an event without attrs has a nil map")
	})
}

func TestDecodeEventAllocatesOnceForATypicalEvent(t *testing.T) {
	in := []byte(`{"event_id":"3f2a9c1e-7b7d-4a8e-9f00-1c2d3e4f5a6b","ts":"2026-11-20T09:01:00.250+08:00","type":"product_view","channel":"app","ids":{"member":"M00012345","device":"dev-9f8e7d6c"},"sku":"SKU-0012345","category":"shoes/running","quantity":1}`)
	var ev Event
	allocs := testing.AllocsPerRun(100, func() {
		if rej := DecodeEvent(in, decodeNow, nil, &ev); rej != nil {
			t.Fatal(rej)
		}
	})
	require.Equal(t, 1.0, allocs, "one backing array for all the strings")
}

func TestDecodeOptions(t *testing.T) {
	t.Run("the zero value means the defaults", func(t *testing.T) {
		var o DecodeOptions
		o.EnsureDefaults()
		require.Equal(t, DecodeOptions{MaxEventBytes: 16 << 10, MaxFieldBytes: 256, MaxAttrs: 16, MaxFutureSkew: 5 * time.Minute}, o)
		require.NoError(t, o.Validate())
	})
	t.Run("validate reports every problem at once", func(t *testing.T) {
		o := DecodeOptions{MaxEventBytes: -1, MaxFieldBytes: 1 << 20, MaxAttrs: 33, MaxFutureSkew: -time.Second}
		err := o.Validate()
		require.Error(t, err)
		for _, want := range []string{"max event bytes", "max field bytes", "max attrs", "max future skew"} {
			require.Contains(t, err.Error(), want)
		}
	})
	t.Run("custom limits are enforced", func(t *testing.T) {
		o := &DecodeOptions{MaxEventBytes: 100, MaxFieldBytes: 4, MaxAttrs: 1, MaxFutureSkew: time.Hour}
		var ev Event
		rej := DecodeEvent([]byte(base), decodeNow, o, &ev)
		require.Equal(t, ReasonTooLarge, rej.Code)
		require.Equal(t, "", rej.Field)
		o.MaxEventBytes = 1000
		rej = DecodeEvent([]byte(base), decodeNow, o, &ev)
		require.Equal(t, ReasonTooLarge, rej.Code)
		require.Equal(t, "sku", rej.Field)
		soon := strings.Replace(strings.Replace(base, "SKU-1", "S1", 1), "2026-11-20T09:00:00+08:00", "2026-11-20T12:30:00Z", 1)
		require.Nil(t, DecodeEvent([]byte(soon), decodeNow, o, &ev), "half an hour ahead is within a skew of one hour")
		rej = DecodeEvent([]byte(soon[:len(soon)-1]+`,"attrs":{"a":"1","b":"2"}}`), decodeNow, o, &ev)
		require.Equal(t, ReasonTooLarge, rej.Code)
		require.Equal(t, "attrs", rej.Field)
	})
}

func TestSplitBatch(t *testing.T) {
	a := `{"event_id":"a"}`
	b := `{"event_id":"b"}`
	cases := []struct {
		name string
		body string
		max  int
		want []string
		code Reason
	}{
		{"one object is one event", "  " + a + "\n", 10, []string{a}, ""},
		{"a pretty-printed object is one event", "{\n  \"event_id\": \"a\"\n}\n", 10, []string{"{\n  \"event_id\": \"a\"\n}"}, ""},
		{"an array is split into its elements", "[" + a + ", " + b + "]", 10, []string{a, b}, ""},
		{"array elements keep their nested values", `[{"x":[1,{"y":"]"}]},2]`, 10, []string{`{"x":[1,{"y":"]"}]}`, `2`}, ""},
		{"an empty array holds no events", " [ ] ", 10, []string{}, ""},
		{"NDJSON is split by line", a + "\n\n" + b + "\r\n", 10, []string{a, b}, ""},
		{"a broken NDJSON line is kept for its own rejection", a + "\n{broken\n" + b, 10, []string{a, "{broken", b}, ""},
		{"an empty body is bad JSON", " \n ", 10, nil, ReasonBadJSON},
		{"a broken array is bad JSON", "[" + a + ", {]", 10, nil, ReasonBadJSON},
		{"an unterminated array is bad JSON", "[" + a, 10, nil, ReasonBadJSON},
		{"data after an array is bad JSON", "[" + a + "] x", 10, nil, ReasonBadJSON},
		{"an array over the limit is too large", "[" + a + "," + b + "," + a + "]", 2, nil, ReasonTooLarge},
		{"NDJSON over the limit is too large", a + "\n" + b + "\n" + a, 2, nil, ReasonTooLarge},
		{"exactly the limit is fine", "[" + a + "," + b + "]", 2, []string{a, b}, ""},
		{"no limit when max is zero", a + "\n" + b + "\n" + a, 0, []string{a, b, a}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, rej := SplitBatch([]byte(tc.body), tc.max)
			if tc.code != "" {
				require.NotNil(t, rej)
				require.Equal(t, tc.code, rej.Code, rej.Message)
				checkMessage(t, []byte(tc.body), rej)
				return
			}
			require.Nil(t, rej)
			gotS := []string{}
			for _, g := range got {
				gotS = append(gotS, string(g))
			}
			require.Equal(t, tc.want, gotS)
		})
	}
	t.Run("elements decode index-aligned", func(t *testing.T) {
		good, err := os.ReadFile(filepath.Join("testdata", "events", "good.ndjson"))
		require.NoError(t, err)
		lines := bytes.Split(bytes.TrimSpace(good), []byte("\n"))
		body := "[" + string(lines[0]) + `,"nope",` + string(lines[1]) + "]"
		events, rej := SplitBatch([]byte(body), 500)
		require.Nil(t, rej)
		require.Len(t, events, 3)
		var ev Event
		require.Nil(t, DecodeEvent(events[0], decodeNow, nil, &ev))
		require.Equal(t, ReasonBadJSON, DecodeEvent(events[1], decodeNow, nil, &ev).Code)
		require.Nil(t, DecodeEvent(events[2], decodeNow, nil, &ev))
	})
}

var benchEvents = []struct{ name, json string }{
	{"product_view", `{"event_id":"3f2a9c1e-7b7d-4a8e-9f00-1c2d3e4f5a6b","ts":"2026-11-20T09:01:00.250+08:00","type":"product_view","channel":"app","ids":{"member":"M00012345","device":"dev-9f8e7d6c"},"sku":"SKU-0012345","category":"shoes/running","quantity":1}`},
	{"pos_purchase", `{"event_id":"pos-SH001-20261120-000123","ts":"2026-11-20T10:40:00+08:00","type":"pos_purchase","channel":"pos","ids":{"card":"C-8800123","phone":"+86 138-0013-8000"},"store":"SH-001","sku":"SKU-0077777","category":"womenswear","amount":129900,"quantity":1}`},
	{"pos_purchase_hashed", `{"event_id":"pos-SH001-20261120-000124","ts":"2026-11-20T10:41:00+08:00","type":"pos_purchase","channel":"pos","ids":{"card":"C-8800123","phone":"a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"},"store":"SH-001","sku":"SKU-0077777","category":"womenswear","amount":129900,"quantity":1}`},
}

func BenchmarkDecodeEvent(b *testing.B) {
	for _, be := range benchEvents {
		b.Run(be.name, func(b *testing.B) {
			in := []byte(be.json)
			var ev Event
			var opts DecodeOptions
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if rej := DecodeEvent(in, decodeNow, &opts, &ev); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
	b.Run("encoding_json_baseline/product_view", func(b *testing.B) {
		in := []byte(benchEvents[0].json)
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(in, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSplitBatch(b *testing.B) {
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range 500 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(benchEvents[i%2].json)
	}
	body.WriteByte(']')
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := SplitBatch(body.Bytes(), 500); rej != nil {
			b.Fatal(rej)
		}
	}
}

func TestLookupTablesCoverEveryName(t *testing.T) {
	for typ := TypeUnknown + 1; typ < NumTypes; typ++ {
		require.Equal(t, typ, lookupType([]byte(typ.String())))
	}
	require.Equal(t, TypeUnknown, lookupType([]byte("")))
	for ch := ChannelUnknown + 1; ch < NumChannels; ch++ {
		require.Equal(t, ch, lookupChannel([]byte(ch.String())))
	}
	require.Equal(t, ChannelUnknown, lookupChannel([]byte("")))
}

func TestDecodeEventKeepsAllStringsInOneAllocation(t *testing.T) {
	in := []byte(`{"event_id":"e-1","ts":"2026-11-20T09:00:00Z","type":"consent","channel":"app","ids":{"member":"M1","phone":"+86 138 0013 8000","email":"a@b.c"},"attrs":{"purpose":"marketing","granted":"true","n\u00e9":"\ud83d\ude00"}}`)
	var ev Event
	require.Nil(t, DecodeEvent(in, decodeNow, nil, &ev))
	// Every string lies in one array: their data pointers are within the
	// sum of their lengths of each other.
	strs := []string{ev.ID, ev.IDs.Member, ev.IDs.Phone, ev.IDs.Email}
	for k, v := range ev.Attrs {
		strs = append(strs, k, v)
	}
	lo, hi, total := ^uintptr(0), uintptr(0), 0
	for _, s := range strs {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
		total += len(s)
	}
	require.Equal(t, uintptr(total), hi-lo, "the strings are packed back to back in one array")
}

// A message quotes the input without the characters that would change
// how the rest of a log line or a console reads: controls, a
// right-to-left override, zero-width characters.
func TestMessagesQuoteNoCharacterThatRearrangesTheLine(t *testing.T) {
	var opts DecodeOptions
	opts.EnsureDefaults()
	for _, id := range []string{"dev\u202eevil", "dev\u2066x", "dev\u200bx", "dev\u0085x", "dev\ufeffx"} {
		line, err := json.Marshal(map[string]any{"event_id": "e1", "ts": "2026-11-20T10:00:00Z", "type": "page_view", "channel": "app", "ids": map[string]string{"device": id}})
		require.NoError(t, err)
		var ev Event
		rej := DecodeEvent(line, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli(), &opts, &ev)
		require.NotNil(t, rej, "%q", id)
		require.Equal(t, ReasonBadID, rej.Code)
		require.Contains(t, rej.Message, "“dev?", "%q: %q", id, rej.Message)
		for _, r := range rej.Message {
			require.False(t, unicode.Is(unicode.Cf, r) || r >= 0x80 && r < 0xa0, "%q quoted in %q", r, rej.Message)
		}
	}
}
