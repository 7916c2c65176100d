package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/engine/api"
	"nbo/models"
)

// writeLeafModel saves a one-leaf propensity tree at path: the smallest
// artifact the model set serves.
func writeLeafModel(t *testing.T, path string) {
	t.Helper()
	s := engine.PropensitySchema
	a := &models.Artifact{
		FormatVersion: models.FormatVersion, Version: "leaf-1", Algorithm: models.AlgoTree,
		Schema: s, SchemaHash: s.Hash(), Positive: "1", Impute: make([]float64, len(s.Features)),
		Trees: []models.Tree{{Feature: []int32{-1}, Threshold: []float64{0}, First: []int32{0}, Neg: []int32{1}, Pos: []int32{1}}},
	}
	require.NoError(t, a.Validate())
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, a.Save(path))
}

// POST /v1/admin/models takes a path from a client: it reads only inside
// the models directory, and its errors never quote a file.
func TestModelsLoadOnlyFromTheModelsDirectory(t *testing.T) {
	dataDir, outside := t.TempDir(), t.TempDir()
	src := filepath.Join(dataDir, "models")
	writeLeafModel(t, filepath.Join(src, "in", "good.json"))
	writeLeafModel(t, filepath.Join(outside, "good.json"))
	secret := "root:$6$secret-hash:19000:0:99999:7:::\n"
	require.NoError(t, os.WriteFile(filepath.Join(outside, "shadow"), []byte(secret), 0o600))
	require.NoError(t, os.Symlink(filepath.Join(outside, "shadow"), filepath.Join(src, "shadow-link")))
	require.NoError(t, os.Symlink(outside, filepath.Join(src, "outside-link")))
	require.NoError(t, os.WriteFile(filepath.Join(src, "not-json"), []byte(secret), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "unknown-field.json"), []byte(`{"rootpassword": "hunter2"}`), 0o600))

	tests := []struct {
		name, path string
		status     int    // 0: loads
		code       string // of the refusal
	}{
		{"a path relative to the models directory loads", "in/good.json", 0, ""},
		{"an absolute path inside the models directory loads", filepath.Join(src, "in", "good.json"), 0, ""},
		{"an absolute path outside it is refused", filepath.Join(outside, "shadow"), 400, api.CodeBadRequest},
		{"a model outside it is refused too", filepath.Join(outside, "good.json"), 400, api.CodeBadRequest},
		{"a system file is refused", "/etc/passwd", 400, api.CodeBadRequest},
		{"a .. escape is refused", "../../" + filepath.Base(outside) + "/shadow", 400, api.CodeBadRequest},
		{"a .. escape that comes back in is refused", "in/../../models/in/good.json", 400, api.CodeBadRequest},
		{"a symbolic link to a file outside is refused", "shadow-link", 400, api.CodeBadRequest},
		{"a symbolic link to a directory outside is refused", "outside-link/good.json", 400, api.CodeBadRequest},
		{"the directory itself is refused", src, 400, api.CodeBadRequest},
		{"a file named as a directory (a trailing slash) is not read", "in/good.json/", 422, api.CodeBadModel},
		{"a missing file is a bad model", "missing.json", 422, api.CodeBadModel},
		{"a file that is not JSON is a bad model, unquoted", "not-json", 422, api.CodeBadModel},
		{"a JSON file that is no artifact is a bad model, unquoted", "unknown-field.json", 422, api.CodeBadModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModelSet(dataDir, "")
			res, err := m.load(tt.path)
			if tt.status == 0 {
				require.NoError(t, err)
				require.Equal(t, "propensity", res.(loadedModel).Name)
				require.Equal(t, "leaf-1", m.propensity.Active().Version)
				return
			}
			var apiErr *api.Error
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, tt.status, apiErr.Status, apiErr.Message)
			require.Equal(t, tt.code, apiErr.Code, apiErr.Message)
			require.Equal(t, "path", apiErr.Field)
			require.Nil(t, m.propensity.Active(), "nothing was loaded")
			for _, leak := range []string{"root", "secret", "hunter2", "invalid character", "'r'"} {
				require.NotContains(t, apiErr.Message, leak, "the error quotes the file")
			}
		})
	}
}

// models_dir moves the directory models are loaded from; served models are
// still kept under the data directory for restarts.
func TestModelsDirMovesWhereModelsAreLoadedFrom(t *testing.T) {
	dataDir, src := t.TempDir(), t.TempDir()
	writeLeafModel(t, filepath.Join(src, "m.json"))
	writeLeafModel(t, filepath.Join(dataDir, "models", "d.json"))
	m := newModelSet(dataDir, src)
	_, err := m.load("m.json")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dataDir, "served-models", "propensity.json"), "kept for restarts")
	require.Equal(t, filepath.Join(dataDir, "served-models", "propensity.json"), m.propensity.Active().Path, "the model names the copy it is served from, not a temp file")
	_, err = m.load(filepath.Join(dataDir, "models", "d.json"))
	require.ErrorContains(t, err, "inside the models directory "+src)
	require.Equal(t, []string{"propensity leaf-1"}, newModelSet(dataDir, src).restore(), "a restart serves the kept copy")
}

// A model whose served copy cannot be written (the disk is full, the
// directory read-only) is not loaded, and the answer says why: a
// dependency to fix and retry (503 unavailable), not a bug (internal).
func TestAModelThatCannotBeKeptIsNotLoaded(t *testing.T) {
	dataDir := t.TempDir()
	writeLeafModel(t, filepath.Join(dataDir, "models", "good.json"))
	m := newModelSet(dataDir, "")
	m.dir = filepath.Join(dataDir, "models", "good.json", "kept") // under a file: cannot be created
	_, err := m.load("good.json")
	var apiErr *api.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 503, apiErr.Status)
	require.Equal(t, api.CodeUnavailable, apiErr.Code)
	require.Contains(t, apiErr.Message, "not a directory")
	require.Nil(t, m.propensity.Active(), "nothing was loaded")
}

// The kept copy never overwrites an artifact in the models directory
// named like it (docs/models.md trains to propensity.json), and a copy
// kept where earlier versions kept it (DATA_DIR/models) is still served
// after an upgrade.
func TestAKeptModelLeavesTheModelsDirectoryAlone(t *testing.T) {
	dataDir := t.TempDir()
	mine := filepath.Join(dataDir, "models", "propensity.json")
	writeLeafModel(t, mine)
	before, err := os.ReadFile(mine)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "models", "v2.json"), append(before[:len(before):len(before)], ' '), 0o644)) // another file, same model
	_, err = newModelSet(dataDir, "").load("v2.json")
	require.NoError(t, err)
	after, err := os.ReadFile(mine)
	require.NoError(t, err)
	require.Equal(t, before, after, "the user's propensity.json is untouched")

	upgraded := t.TempDir()
	writeLeafModel(t, filepath.Join(upgraded, "models", "propensity.json"))                     // kept by an earlier version,
	require.NoError(t, os.WriteFile(filepath.Join(upgraded, "state.snap"), []byte("x"), 0o644)) // which ran here
	got := newModelSet(upgraded, "").restore()
	require.Contains(t, got, "propensity leaf-1", "%q", got)
	require.FileExists(t, filepath.Join(upgraded, "served-models", "propensity.json"), "copied once")
	require.NoError(t, os.Remove(filepath.Join(upgraded, "served-models", "propensity.json")))
	require.Empty(t, newModelSet(upgraded, "").restore(), "once: served-models exists now")

	// On a fresh install (no snapshot), before or after the first start,
	// a propensity.json copied into the models directory is an artifact,
	// not a kept copy: it is served only when loaded.
	fresh := t.TempDir()
	writeLeafModel(t, filepath.Join(fresh, "models", "propensity.json"))
	require.Empty(t, newModelSet(fresh, "").restore(), "not served without a load")
	require.Empty(t, newModelSet(fresh, "").restore(), "nor after a restart")
}

func TestTheModelsDirectoryIsReadiedAtStart(t *testing.T) {
	dataDir := t.TempDir()
	m := newModelSet(dataDir, "")
	require.Empty(t, m.checkSource(true))
	require.DirExists(t, filepath.Join(dataDir, "models"), "the default is created")
	missing := filepath.Join(dataDir, "nope")
	require.Contains(t, newModelSet(dataDir, missing).checkSource(false), "is not a directory nbo can read")
	require.NoDirExists(t, missing, "a configured one is not created")
}

// A model on another layout is refused naming the first column or
// category that differs, not only hashes, and the advice names the CSV
// path too.
func TestAModelOnAnotherLayoutNamesWhatDiffers(t *testing.T) {
	save := func(t *testing.T, path, label string, s models.Schema) {
		t.Helper()
		a := &models.Artifact{
			FormatVersion: models.FormatVersion, Version: "leaf-1", Algorithm: models.AlgoTree, Label: label,
			Schema: s, SchemaHash: s.Hash(), Positive: "1", Impute: make([]float64, len(s.Features)),
			Trees: []models.Tree{{Feature: []int32{-1}, Threshold: []float64{0}, First: []int32{0}, Neg: []int32{1}, Pos: []int32{1}}},
		}
		require.NoError(t, a.Validate())
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, a.Save(path))
	}
	clone := func(s models.Schema) models.Schema {
		out := models.Schema{Features: append([]models.Feature(nil), s.Features...)}
		for i := range out.Features {
			out.Features[i].Vocabulary = append([]string(nil), out.Features[i].Vocabulary...)
		}
		return out
	}
	noSMS := clone(engine.PropensitySchema)
	ch := noSMS.Index("channel")
	noSMS.Features[ch].Vocabulary = slices.DeleteFunc(noSMS.Features[ch].Vocabulary, func(v string) bool { return v == "sms" })
	renamed := clone(engine.CustomerSchema)
	renamed.Features[2].Name = "views_30d"
	coupon := models.Schema{Features: []models.Feature{{Name: "destination", Kind: models.Categorical, Vocabulary: []string{"Home", "Work"}}, {Name: "temperature", Kind: models.Numeric}}}

	tests := []struct {
		name, label string
		schema      models.Schema
		want        []string
	}{
		{"a propensity model lacking a channel names the category", "redeem_7d", noSMS,
			[]string{`column 46 "channel" lacks the category "sms"`, "engine.PropensitySchema", "nbo train --csv"}},
		{"a customer score with a renamed column names it", "purchase_15d", renamed,
			[]string{`column 3 is "views_30d" where the layout has "views_online_30d"`, "engine.CustomerSchema", "nbo train --csv"}},
		{"a CSV model on other columns names the first", "Y", coupon,
			[]string{`column 1 is "destination" where the layout has "views_online_24h"`, "nbo train --csv"}},
		{"a customer-layout model with another label says to name the score", "Y", engine.CustomerSchema,
			[]string{`its label "Y" names no customer score`, "purchase_15d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			save(t, filepath.Join(dataDir, "models", "m.json"), tt.label, tt.schema)
			_, err := newModelSet(dataDir, "").load("m.json")
			var apiErr *api.Error
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, api.CodeBadModel, apiErr.Code)
			for _, w := range tt.want {
				require.Contains(t, apiErr.Message, w)
			}
		})
	}
}

// A load says so in the log (it once left no trace), and the model set
// lists what it serves with when it was loaded, also after a restart.
func TestALoadedModelIsLoggedAndListed(t *testing.T) {
	dataDir := t.TempDir()
	writeLeafModel(t, filepath.Join(dataDir, "models", "good.json"))
	var buf bytes.Buffer
	m := newModelSet(dataDir, "")
	m.log = slog.New(slog.NewJSONHandler(&buf, nil))
	require.Empty(t, m.list())
	before := time.Now().UTC()
	_, err := m.load("good.json")
	require.NoError(t, err)

	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line), buf.String())
	require.Equal(t, "INFO", line["level"])
	require.Equal(t, "model served", line["msg"])
	require.Equal(t, "propensity", line["name"])
	require.Equal(t, "leaf-1", line["version"])
	require.Equal(t, "good.json", line["path"])
	require.Equal(t, engine.PropensitySchema.Hash(), line["schema_hash"])

	got := m.list()
	require.Len(t, got, 1)
	require.Equal(t, "propensity", got[0].Name)
	require.Equal(t, "leaf-1", got[0].Version)
	require.Equal(t, models.AlgoTree, got[0].Algorithm)
	require.Equal(t, "good.json", got[0].Path)
	require.False(t, got[0].LoadedAt.Before(before))

	again := newModelSet(dataDir, "")
	again.restore()
	got = again.list()
	require.Len(t, got, 1)
	require.Equal(t, filepath.Join(dataDir, "served-models", "propensity.json"), got[0].Path, "a restart serves the kept copy")
}
