package kafka

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func headerMap(hs []Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestDeadLettersCarryTheirSourceAndReason(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), Topics(2)))

	huge := bytes.Repeat([]byte("x"), MaxDeadLetterValue+1000)
	letters := []DeadLetter{
		{
			Source:      Record{Partition: 3, Offset: 41, Key: []byte("member:7"), Value: []byte(`{"type":"nope"}`)},
			SourceTopic: TopicEvents, Reason: "unknown_type", Field: "type",
		},
		{
			Source:      Record{Partition: 0, Offset: 1 << 40, Key: nil, Value: huge},
			SourceTopic: TopicEvents, Reason: "too_large",
		},
	}
	dl, err := NewDeadLetters(ProducerOptions{Brokers: e.Addrs()})
	require.NoError(t, err)
	require.NoError(t, dl.Send(ctx, letters))
	require.NoError(t, dl.Close())

	c := newTestConsumer(t, e.Addrs(), TopicEventsDLQ, "dlq-reader")
	got := fetchN(t, ctx, c, 2)
	byReason := map[string]Record{}
	for _, r := range got {
		byReason[headerMap(r.Headers)[HeaderReason]] = r
	}

	small := byReason["unknown_type"]
	require.Equal(t, map[string]string{
		HeaderSourceTopic:     TopicEvents,
		HeaderSourcePartition: "3",
		HeaderSourceOffset:    "41",
		HeaderReason:          "unknown_type",
		HeaderField:           "type",
		HeaderValueBytes:      "15",
	}, headerMap(small.Headers))
	require.Equal(t, []byte(`{"type":"nope"}`), small.Value)
	require.Equal(t, []byte("member:7"), small.Key)

	big := byReason["too_large"]
	h := headerMap(big.Headers)
	require.Equal(t, "true", h[HeaderTruncated])
	require.Equal(t, strconv.Itoa(len(huge)), h[HeaderValueBytes])
	require.Equal(t, strconv.FormatInt(1<<40, 10), h[HeaderSourceOffset])
	require.Equal(t, "", h[HeaderField])
	require.Len(t, big.Value, MaxDeadLetterValue)
}

func TestDeadLetterMessageKeepsShortValuesWhole(t *testing.T) {
	cases := []struct {
		name      string
		size      int
		truncated bool
	}{
		{"an empty value is kept empty", 0, false},
		{"a value of exactly the limit is kept whole", MaxDeadLetterValue, false},
		{"a value one byte over the limit is cut", MaxDeadLetterValue + 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := DeadLetter{Source: Record{Value: make([]byte, tc.size)}, SourceTopic: "t", Reason: "r"}.Message()
			h := headerMap(m.Headers)
			_, cut := h[HeaderTruncated]
			require.Equal(t, tc.truncated, cut)
			require.Equal(t, min(tc.size, MaxDeadLetterValue), len(m.Value))
			require.Equal(t, strconv.Itoa(tc.size), h[HeaderValueBytes])
		})
	}
}
