// Package deploy holds botd's deployment: the kustomize base, overlays and
// monitoring components beside this file, and the Dockerfile at the
// repository root. It has no code of its own. Its tests keep the manifests
// honest against the program they deploy: they parse the Dockerfile and
// build botd with its exact flags, render every overlay with the
// kustomize go.mod pins (`go tool kustomize build`) and check it against botd's settings (internal/config) and
// routes, and check that every metric the alerts and the Grafana dashboard
// use is one a running botd exports. Changing botd's config, routes or
// metrics without the manifests, or the reverse, fails them.
package deploy
