// Package scenarios loads, checks and evaluates the marketing rules and the
// offer catalog: YAML files compiled into an immutable set that is swapped
// atomically on reload. Scenarios are pure: model scores arrive as data, and
// the package never imports models.
package scenarios
