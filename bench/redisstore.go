package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"nbo/features"
)

// The Redis comparison's feature store: the usual Feast-style online store,
// one 30-field hash per customer, read with one HGETALL per decision and
// turned into a features.View so the same decision pipeline runs on it.
// The fields are the ones scenarios and the propensity features read most;
// a View decoded from the hash has every other field at its zero value.

// RedisFields are the 30 fields of a customer's hash, in encoding order.
var RedisFields = [30]string{
	"customer", "version", "newest_ts", "first_ts",
	"views_online_24h", "views_online_7d", "views_online_30d", "searches_7d", "carts_30d",
	"cart_value", "orders_online_30d", "pos_purchases_30d", "store_visits_30d", "dwell_s_30d",
	"spend_online", "spend_offline", "orders", "aov", "points", "member", "member_since",
	"recency_days", "rfm_r", "rfm_f", "rfm_m", "last_store", "home_store", "consent",
	"viewed_not_bought", "group",
}

// RedisKey is the hash key of the customer that ids name: the identifier of
// the highest-priority namespace (member > card > phone > email > device),
// the way a Feast entity key is the one ID the caller has.
func RedisKey(ids *features.IDs) string {
	if k := ids.BestKey(); k != "" {
		return "nbo:v:" + string(k)
	}
	return ""
}

// EncodeViewHash returns the hash fields of v as alternating field, value
// pairs (HSET's argument order).
func EncodeViewHash(v *features.View) []any {
	on, off := features.Online, features.Offline
	c := &v.Counts
	i64 := func(x int64) string { return strconv.FormatInt(x, 10) }
	u32 := func(x uint32) string { return strconv.FormatUint(uint64(x), 10) }
	member := "0"
	if v.Member {
		member = "1"
	}
	consent := make([]string, features.NumPurposes)
	for p := range consent {
		consent[p] = strconv.FormatUint(uint64(v.Consent[p]), 10)
	}
	vnb := make([]string, 0, len(v.ViewedNotBought))
	for _, in := range v.ViewedNotBought {
		vnb = append(vnb, in.Name+":"+i64(in.Last)+":"+u32(in.Count))
	}
	values := [30]string{
		string(v.Customer), strconv.FormatUint(v.Version, 10), i64(v.NewestTS), i64(v.FirstTS),
		u32(c[on][features.ProductView][features.W24h]), u32(c[on][features.ProductView][features.W7d]),
		u32(c[on][features.ProductView][features.W30d]), u32(c[on][features.Search][features.W7d]),
		u32(c[on][features.AddToCart][features.W30d]),
		i64(v.CartValue), u32(c[on][features.Order][features.W30d]), u32(c[off][features.PosPurchase][features.W30d]),
		u32(c[off][features.StoreEnter][features.W30d]), i64(v.Sums[off][features.Dwell][features.W30d]),
		i64(v.SpendOnline), i64(v.SpendOffline), i64(v.Orders), i64(v.AOV), i64(v.Points), member, i64(v.MemberSince),
		strconv.Itoa(v.RecencyDays), strconv.Itoa(v.RScore), strconv.Itoa(v.FScore), strconv.Itoa(v.MScore),
		v.LastStore, v.HomeStore, strings.Join(consent, ","), strings.Join(vnb, ";"), strconv.Itoa(v.Group),
	}
	out := make([]any, 0, 60)
	for i, f := range RedisFields {
		out = append(out, f, values[i])
	}
	return out
}

// ErrBadHash reports a hash that does not decode into a View.
var ErrBadHash = errors.New("bench: malformed feature hash")

// DecodeViewHash fills v from a customer's hash (as HGETALL returns it) at
// instant now. Fields missing from the hash stay zero; a field that does
// not parse is an error naming it. v is reset first, keeping its slices'
// backing arrays.
func DecodeViewHash(h map[string]string, now int64, v *features.View) error {
	vnb := v.ViewedNotBought[:0]
	*v = features.View{ViewedNotBought: vnb, Now: now, RecencyDays: -1}
	var bad []string
	i64 := func(f string) int64 {
		s, ok := h[f]
		if !ok || s == "" {
			return 0
		}
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			bad = append(bad, f)
		}
		return x
	}
	u32 := func(f string) uint32 {
		x := i64(f)
		if x < 0 || x > 1<<32-1 {
			bad = append(bad, f)
			return 0
		}
		return uint32(x)
	}
	v.Customer = features.Key(h["customer"])
	v.Known = v.Customer != ""
	if s := h["version"]; s != "" {
		ver, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			bad = append(bad, "version")
		}
		v.Version = ver
	}
	v.NewestTS, v.FirstTS = i64("newest_ts"), i64("first_ts")
	on, off := features.Online, features.Offline
	c := &v.Counts
	c[on][features.ProductView][features.W24h] = u32("views_online_24h")
	c[on][features.ProductView][features.W7d] = u32("views_online_7d")
	c[on][features.ProductView][features.W30d] = u32("views_online_30d")
	c[on][features.Search][features.W7d] = u32("searches_7d")
	c[on][features.AddToCart][features.W30d] = u32("carts_30d")
	v.CartValue = i64("cart_value")
	c[on][features.Order][features.W30d] = u32("orders_online_30d")
	c[off][features.PosPurchase][features.W30d] = u32("pos_purchases_30d")
	c[off][features.StoreEnter][features.W30d] = u32("store_visits_30d")
	v.Sums[off][features.Dwell][features.W30d] = i64("dwell_s_30d")
	v.SpendOnline, v.SpendOffline = i64("spend_online"), i64("spend_offline")
	v.Orders, v.AOV, v.Points = i64("orders"), i64("aov"), i64("points")
	v.Member = h["member"] == "1"
	v.MemberSince = i64("member_since")
	if _, ok := h["recency_days"]; ok {
		v.RecencyDays = int(i64("recency_days"))
	}
	v.RScore, v.FScore, v.MScore = int(i64("rfm_r")), int(i64("rfm_f")), int(i64("rfm_m"))
	v.LastStore, v.HomeStore = h["last_store"], h["home_store"]
	if s := h["consent"]; s != "" {
		parts := strings.Split(s, ",")
		if len(parts) != int(features.NumPurposes) {
			bad = append(bad, "consent")
		}
		for p := 0; p < len(parts) && p < int(features.NumPurposes); p++ {
			m, err := strconv.ParseUint(parts[p], 10, 16)
			if err != nil {
				bad = append(bad, "consent")
				break
			}
			v.Consent[p] = features.ChannelMask(m)
		}
	}
	if s := h["viewed_not_bought"]; s != "" {
		for item := range strings.SplitSeq(s, ";") {
			name, rest, ok1 := strings.Cut(item, ":")
			last, count, ok2 := strings.Cut(rest, ":")
			l, err1 := strconv.ParseInt(last, 10, 64)
			n, err2 := strconv.ParseUint(count, 10, 32)
			if !ok1 || !ok2 || err1 != nil || err2 != nil {
				bad = append(bad, "viewed_not_bought")
				break
			}
			v.ViewedNotBought = append(v.ViewedNotBought, features.Interest{Name: name, Last: l, Count: uint32(n)})
		}
	}
	v.Group = int(i64("group"))
	if len(bad) > 0 {
		return fmt.Errorf("decoding the feature hash of %q: fields %s: %w", v.Customer, strings.Join(bad, ", "), ErrBadHash)
	}
	return nil
}

// RedisViews reads customers' Views from their Redis hashes: the
// engine.Options.Views hook of the Redis variant.
type RedisViews struct {
	client  *redis.Client
	timeout time.Duration
}

// NewRedisViews connects to the Redis at addr with a connection pool of
// poolSize (default: 10 per CPU, go-redis's own default).
func NewRedisViews(addr string, poolSize int) *RedisViews {
	return &RedisViews{
		client:  redis.NewClient(&redis.Options{Addr: addr, PoolSize: poolSize, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}),
		timeout: 2 * time.Second,
	}
}

// Close closes the connection pool.
func (r *RedisViews) Close() error { return r.client.Close() }

// View fills v from the hash of the customer ids names: one HGETALL. The
// engine's hook has no context, so each call is bounded by the client's
// read and write timeouts. A missing customer, a Redis error and a
// malformed hash all read as an unknown customer (the engine then serves
// its fallback offers), as an online store lookup that fails would.
func (r *RedisViews) View(ids *features.IDs, now int64, v *features.View) bool {
	h, err := r.client.HGetAll(context.Background(), RedisKey(ids)).Result()
	if err != nil || len(h) == 0 || DecodeViewHash(h, now, v) != nil {
		*v = features.View{Now: now}
		return false
	}
	return v.Known
}

// Put writes a customer's hash under each of keys (pipelined).
func (r *RedisViews) Put(ctx context.Context, v *features.View, keys ...string) error {
	fields := EncodeViewHash(v)
	pipe := r.client.Pipeline()
	for _, k := range keys {
		pipe.HSet(ctx, k, fields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing the feature hash of %s: %w", v.Customer, err)
	}
	return nil
}

// Ping checks the connection.
func (r *RedisViews) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

// RedisServer is a loopback redis-server this process started for the
// comparison; Stop ends it.
type RedisServer struct {
	Addr string
	cmd  *exec.Cmd
	done chan error
}

// StartRedis starts redis-server (found on PATH) on a free loopback port
// with persistence off, its files under dir, and waits until it answers.
// It returns exec.ErrNotFound (wrapped) when redis-server is not installed.
func StartRedis(ctx context.Context, dir string) (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("starting redis: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting redis: finding a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting redis: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, fmt.Errorf("starting redis: %w", err)
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "yes", "--daemonize", "no")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting redis: %w", err)
	}
	s := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond); err == nil {
			_, werr := c.Write([]byte("PING\r\n"))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if werr == nil && rerr == nil && strings.HasPrefix(line, "+PONG") {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("starting redis: it exited: %v (log in %s)", err, filepath.Join(dir, "redis.log"))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("starting redis on %s: no answer within 10s", s.Addr)
		}
	}
}

// Stop terminates the server and waits for it.
func (s *RedisServer) Stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
