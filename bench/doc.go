// Package bench simulates an OMO retailer (stores, catalog, customers with
// hidden response probabilities), generates open-loop load, and writes the
// side-by-side benchmark reports. Only cmd/nbo imports it.
//
// The simulator (New, Simulator.Next) streams schema v1 events of
// customers living through the omnichannel journeys — browse online then
// buy in store, visit a store then buy online, cart abandonment,
// post-purchase service, comparing models, evening baby searches with a
// weekend store visit, new members joining in store, lapsing — in
// event-time order, deterministically from a seed and in memory bounded by
// the customer count (about 24 bytes each) rather than by the simulated
// duration. Each customer has latent traits and a hidden probability of
// responding to each offer type on each channel (TrueProbability);
// Respond samples their reaction to a delivered offer and returns the
// feedback events (impression, click, redemption online or at a store
// till), so policies can be scored against the truth and an oracle policy
// can be built.
//
// Sinks move events to an NDJSON file, the HTTP ingest API or Kafka; Pump
// drives a source into a sink at a rate limit. RunLoad is an open-loop load
// generator over any request function, measuring latency from each
// request's scheduled time with HDR histograms, and WriteMarkdown turns its
// reports into the results files.
//
// It is not a test double for the engine: it never imports the engine's
// decision code, and nothing on the serving path imports it.
package bench
