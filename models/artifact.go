package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FormatVersion is the artifact format this package writes and reads.
const FormatVersion = 1

// Algo names a training algorithm.
type Algo string

const (
	// AlgoForest is a random forest: bootstrap rows drawn by us, golearn
	// ID3 trees with random attributes at each split, probabilities
	// averaged over the trees.
	AlgoForest Algo = "forest"
	// AlgoTree is a single golearn ID3 tree with bounded leaves.
	AlgoTree Algo = "tree"
	// AlgoNB is golearn's Bernoulli naive Bayes on binarised features.
	AlgoNB Algo = "nb"
)

// Tree is one compiled decision tree in flat arrays, indexed by node;
// node 0 is the root.
//
// Feature[n] is the feature index split on, or -1 for a leaf. A numeric
// node sends x to Kids[First[n]] when x <= Threshold[n] and to
// Kids[First[n]+1] when x > Threshold[n] (a missing x is first replaced by
// the model's Impute value). A categorical node has one kid slot per
// vocabulary value plus a last slot for missing or unknown values; a kid
// of -1 means golearn saw no training row with that value there, and the
// walk stops at this node. Neg and Pos are the node's training class
// frequencies; a node answers Pos/(Neg+Pos).
type Tree struct {
	Feature   []int32   `json:"feature"`
	Threshold []float64 `json:"threshold"`
	First     []int32   `json:"first"`
	Kids      []int32   `json:"kids"`
	Neg       []int32   `json:"neg"`
	Pos       []int32   `json:"pos"`
}

// NaiveBayes is a compiled Bernoulli naive Bayes: the log-odds of the
// positive class are Bias plus, for each feature i, Table[i][level]. For a
// numeric feature level is the number of Thresholds[i] the value exceeds
// (missing values are imputed first); for a categorical one it is the
// vocabulary slot (missing and unknown take the last slot).
type NaiveBayes struct {
	Bias       float64     `json:"bias"`
	Table      [][]float64 `json:"table"`
	Thresholds [][]float64 `json:"thresholds"`
}

// CalibrationBin is one decile of predicted probability.
type CalibrationBin struct {
	Lo            float64 `json:"lo"`
	Hi            float64 `json:"hi"`
	Count         int     `json:"count"`
	MeanPredicted float64 `json:"mean_predicted"`
	Observed      float64 `json:"observed"`
}

// Metrics describe a model on its holdout rows.
type Metrics struct {
	AUC         float64          `json:"auc"`
	Accuracy    float64          `json:"accuracy"`
	LogLoss     float64          `json:"logloss"`
	RowsTrain   int              `json:"rows_train"`
	RowsTest    int              `json:"rows_test"`
	Calibration []CalibrationBin `json:"calibration,omitempty"`
}

// Artifact is a trained model as stored on disk: everything needed to
// compile a Scorer, and nothing from golearn.
type Artifact struct {
	FormatVersion int `json:"format_version"`
	// Version identifies the model: the algorithm and a hash of the
	// schema and the fitted parameters, so the same data and seed give
	// the same version.
	Version    string    `json:"version"`
	Algorithm  Algo      `json:"algorithm"`
	Schema     Schema    `json:"schema"`
	SchemaHash string    `json:"schema_hash"`
	Label      string    `json:"label,omitempty"`
	Positive   string    `json:"positive"`
	Seed       uint64    `json:"seed"`
	Params     Params    `json:"params"`
	Metrics    Metrics   `json:"metrics"`
	CreatedAt  time.Time `json:"created_at"`
	// Impute holds the value a missing numeric feature takes (the training
	// median); 0 for categorical features, which have their own slot.
	Impute     []float64   `json:"impute"`
	Trees      []Tree      `json:"trees,omitempty"`
	NaiveBayes *NaiveBayes `json:"naive_bayes,omitempty"`
}

// Params records the training options that shaped the model.
type Params struct {
	Trees       int     `json:"trees"`
	MaxFeatures int     `json:"max_features,omitempty"`
	MinSplit    int     `json:"min_split,omitempty"`
	MinLeaf     int     `json:"min_leaf,omitempty"`
	MaxDepth    int     `json:"max_depth,omitempty"`
	Holdout     float64 `json:"holdout"`
}

// contentHash hashes what determines the model's answers.
func (a *Artifact) contentHash() string {
	body, _ := json.Marshal(struct {
		A Algo
		S string
		P string
		I []float64
		T []Tree
		N *NaiveBayes
	}{a.Algorithm, a.SchemaHash, a.Positive, a.Impute, a.Trees, a.NaiveBayes})
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// ErrBadArtifact marks an artifact that cannot be served.
var ErrBadArtifact = errors.New("models: bad artifact")

// maxProblems bounds the problems one Validate error lists: a corrupt
// forest can have one per node.
const maxProblems = 8

// Validate checks that the artifact is complete and self-consistent, so
// that Compile and the scorer never index out of range. It reports every
// problem at once, in one line: "models: bad artifact: p1; p2; …" (a
// multi-line error with the prefix repeated on each line once reached an
// API client as is).
func (a *Artifact) Validate() error {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	if a.FormatVersion != FormatVersion {
		bad("format_version %d, this build reads %d", a.FormatVersion, FormatVersion)
	}
	if h := a.Schema.Hash(); h != a.SchemaHash {
		bad("schema_hash %s does not match the schema (%s)", a.SchemaHash, h)
	}
	nf := len(a.Schema.Features)
	if nf == 0 {
		bad("the schema has no features")
	}
	for i, f := range a.Schema.Features {
		if f.Kind != Numeric && f.Kind != Categorical {
			bad("feature %d (%s): unknown kind %q", i, f.Name, f.Kind)
		}
	}
	if len(a.Impute) != nf {
		bad("impute has %d values for %d features", len(a.Impute), nf)
	}
	switch a.Algorithm {
	case AlgoForest, AlgoTree:
		if len(a.Trees) == 0 {
			bad("algorithm %s without trees", a.Algorithm)
		}
		if a.NaiveBayes != nil {
			bad("algorithm %s with naive Bayes tables", a.Algorithm)
		}
		for ti, t := range a.Trees {
			n := len(t.Feature)
			if n == 0 || len(t.Threshold) != n || len(t.First) != n || len(t.Neg) != n || len(t.Pos) != n {
				bad("tree %d: node arrays of different lengths", ti)
				continue
			}
			for i := 0; i < n; i++ {
				if t.Neg[i] < 0 || t.Pos[i] < 0 {
					bad("tree %d node %d: negative class frequency", ti, i)
				}
				f := t.Feature[i]
				if f < 0 {
					continue
				}
				if int(f) >= nf {
					bad("tree %d node %d: feature %d out of range", ti, i, f)
					continue
				}
				slots := 2
				if a.Schema.Features[f].Kind == Categorical {
					slots = len(a.Schema.Features[f].Vocabulary) + 1
				}
				if t.First[i] < 0 || int(t.First[i])+slots > len(t.Kids) {
					bad("tree %d node %d: kids out of range", ti, i)
					continue
				}
				for _, k := range t.Kids[t.First[i] : int(t.First[i])+slots] {
					// Kids always point forward (depth-first numbering),
					// which also rules out cycles.
					if k != -1 && (k <= int32(i) || int(k) >= n) {
						bad("tree %d node %d: kid %d out of range", ti, i, k)
					}
				}
			}
		}
	case AlgoNB:
		if len(a.Trees) != 0 {
			bad("algorithm nb with trees")
		}
		nb := a.NaiveBayes
		if nb == nil || len(nb.Table) != nf || len(nb.Thresholds) != nf {
			bad("naive Bayes tables missing or not one per feature")
			break
		}
		for i, f := range a.Schema.Features {
			want := len(nb.Thresholds[i]) + 1
			if f.Kind == Categorical {
				want = len(f.Vocabulary) + 1
			}
			if len(nb.Table[i]) != want {
				bad("naive Bayes table %d has %d entries, want %d", i, len(nb.Table[i]), want)
			}
		}
	default:
		bad("unknown algorithm %q", a.Algorithm)
	}
	for i, v := range a.Impute {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad("impute %d is not finite", i)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	if n := len(problems); n > maxProblems {
		problems = append(problems[:maxProblems], fmt.Sprintf("and %d more", n-maxProblems))
	}
	return fmt.Errorf("%w: %s", ErrBadArtifact, strings.Join(problems, "; "))
}

// Save writes the artifact as JSON atomically (temp file, fsync, rename).
func (a *Artifact) Save(path string) error {
	body, err := json.MarshalIndent(a, "", " ")
	if err != nil {
		return fmt.Errorf("encoding model %s: %w", a.Version, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".model-*.json")
	if err != nil {
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(body, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	return nil
}

// LoadArtifact reads and validates an artifact file.
func LoadArtifact(path string) (*Artifact, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return DecodeArtifact(body)
}

// DecodeArtifact parses and validates an artifact. Unknown fields are
// errors.
func DecodeArtifact(body []byte) (*Artifact, error) {
	var a Artifact
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: decoding: %v", ErrBadArtifact, err)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}
