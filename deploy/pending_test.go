package deploy

// Names the manifests use ahead of the code: work landing in parallel. The
// tests accept them (and say so with t.Log) instead of failing. When the
// code lands, delete the entry; a name here that botd already knows is
// reported by the tests as ready to remove.

// pendingEnv are BOTD_* variables the manifests set that config.Settings()
// does not list yet.
var pendingEnv = map[string]string{}

// pendingSecretEnv are pending settings that hold a secret: they must come
// from a Secret, never a ConfigMap or a literal.
var pendingSecretEnv = []string{}

// pendingMetrics are metric names the alerts and the dashboard use that a
// running botd does not export yet.
var pendingMetrics = map[string]string{}

// externalMetrics are names the alerts use that come from elsewhere.
var externalMetrics = map[string]string{
	"up":                                     "Prometheus, per scrape target",
	"kube_statefulset_replicas":              "kube-state-metrics",
	"kube_statefulset_status_replicas_ready": "kube-state-metrics",
	"kube_pod_container_status_restarts_total": "kube-state-metrics",
}
