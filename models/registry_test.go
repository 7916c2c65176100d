package models

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegistryLoadsSwapsAndRefusesASchemaMismatch(t *testing.T) {
	dir := t.TempDir()
	st := synthData(1500, 12)
	a, err := Train(st.ds, TrainOptions{Trees: 3, Seed: 1, Now: testNow})
	require.NoError(t, err)
	b, err := Train(st.ds, TrainOptions{Trees: 3, Seed: 2, Now: testNow})
	require.NoError(t, err)
	pa, pb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	require.NoError(t, a.Save(pa))
	require.NoError(t, b.Save(pb))

	other := st.ds.Schema
	other.Features = append([]Feature{}, other.Features...)
	other.Features[3].Vocabulary = []string{"app", "store", "web"} // the live catalogue lost a channel

	r := NewRegistry()
	require.Nil(t, r.Active())
	require.NoError(t, r.Load(pa, st.ds.Schema.Hash()))
	require.Equal(t, a.Version, r.Active().Version)

	err = r.Load(pb, other.Hash())
	require.ErrorIs(t, err, ErrSchemaMismatch)
	require.ErrorContains(t, err, "retrain it on the current features")
	require.Equal(t, a.Version, r.Active().Version, "the old model stays after a refused load")

	require.Error(t, r.Load(filepath.Join(dir, "missing.json"), st.ds.Schema.Hash()))
	require.Equal(t, a.Version, r.Active().Version)

	// Readers never see a torn model while loads swap it.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			m := r.Active()
			require.Contains(t, []string{a.Version, b.Version}, m.Version)
			p := m.Propensity(st.ds.X[0])
			require.True(t, p >= 0 && p <= 1)
		}
	}()
	for i := 0; i < 10; i++ {
		require.NoError(t, r.Load([]string{pa, pb}[i%2], st.ds.Schema.Hash()))
	}
	close(stop)
	wg.Wait()
	require.Equal(t, b.Version, r.Active().Version)
}
