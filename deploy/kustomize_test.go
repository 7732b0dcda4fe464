package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/config"
)

// overlayWant is what each overlay must render to, beyond what every
// overlay must satisfy.
type overlayWant struct {
	replicas int
	// pdbMinAvailable or pdbMaxUnavailable: the one the PDB must set.
	pdbMinAvailable   int
	pdbMaxUnavailable int
	// secretGenerated: the overlay generates botd-credentials itself
	// (placeholders, dev only). Otherwise it must render no Secret at all:
	// real credentials are created out of band.
	secretGenerated bool
	logLevel        string
}

var overlays = map[string]overlayWant{
	"dev":  {replicas: 1, pdbMaxUnavailable: 1, secretGenerated: true, logLevel: "debug"},
	"prod": {replicas: 3, pdbMinAvailable: 2, secretGenerated: false, logLevel: "info"},
}

// TestOverlaysListed keeps the table above complete: a new overlay needs
// its expectations.
func TestOverlaysListed(t *testing.T) {
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
			if _, ok := overlays[e.Name()]; !ok {
				t.Errorf("overlays/%s has no entry in the overlays table", e.Name())
			}
		}
	}
	for name := range overlays {
		if !slices.Contains(dirs, name) {
			t.Errorf("overlays table lists %s, which does not exist", name)
		}
	}
}

// knownEnv is every variable botd reads (flags as BOTD_*, secrets also as
// *_FILE).
func knownEnv() map[string]bool {
	m := map[string]bool{}
	for _, s := range config.Settings() {
		m[s.Env] = true
	}
	return m
}

// secretEnv are the settings that hold secrets: those botd also reads from
// a *_FILE, plus pending ones.
func secretEnv() []string {
	known := knownEnv()
	var out []string
	for name := range known {
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && known[base] {
			out = append(out, base)
		}
	}
	out = append(out, pendingSecretEnv...)
	slices.Sort(out)
	return slices.Compact(out)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestOverlays renders each overlay and checks it against botd: ports,
// probe paths (requested from a running botd), settings botd reads and can
// load, grace period, security context, secrets, memory limit, exposure.
func TestOverlays(t *testing.T) {
	// One running botd answers the probe paths for every overlay.
	bot := startBotd(t, testEnv()...)
	probeBotd := func(*testing.T) *botdProc { return bot }
	names := make([]string, 0, len(overlays))
	for n := range overlays {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		want := overlays[name]
		t.Run(name, func(t *testing.T) {
			checkOverlay(t, render(t, name), want, probeBotd)
		})
	}
}

func checkOverlay(t *testing.T, r *rendered, want overlayWant, probeBotd func(*testing.T) *botdProc) {
	stsObj, ok := r.find("StatefulSet", "botd")
	if !ok {
		t.Fatal("no StatefulSet botd")
	}
	sts := spec[statefulSetSpec](t, stsObj)
	pod := sts.Template.Spec
	podLabels := sts.Template.Metadata.Labels
	if len(pod.Containers) != 1 || pod.Containers[0].Name != "botd" {
		t.Fatalf("want one container named botd, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	ns := stsObj.Metadata.Namespace
	if ns == "" {
		t.Error("StatefulSet has no namespace: the overlay must set one")
	}
	if !matches(sts.Selector.MatchLabels, podLabels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Selector.MatchLabels, podLabels)
	}
	if sts.Replicas == nil || *sts.Replicas != want.replicas {
		t.Errorf("replicas = %v, want %d", sts.Replicas, want.replicas)
	}

	// The ConfigMap botd reads its settings from, and the effective
	// environment: ConfigMap, then env in order ($(VAR) expanded).
	var cm object
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			t.Errorf("envFrom Secret %s: secrets are referenced key by key", ef.SecretRef.Name)
		}
		if ef.ConfigMapRef == nil {
			continue
		}
		if ef.Prefix != "" {
			t.Errorf("envFrom prefix %q: botd reads BOTD_* names as they are", ef.Prefix)
		}
		o, ok := r.find("ConfigMap", ef.ConfigMapRef.Name)
		if !ok {
			t.Fatalf("envFrom ConfigMap %s is not rendered", ef.ConfigMapRef.Name)
		}
		cm = o
	}
	if cm.Kind == "" {
		t.Fatal("the container takes no ConfigMap through envFrom")
	}
	secrets := map[string]object{}
	for _, s := range r.all("Secret") {
		secrets[s.Metadata.Name] = s
	}
	secretValue := func(name, key string) (string, bool) {
		s, ok := secrets[name]
		if !ok {
			return "", false
		}
		if v, ok := s.StringData[key]; ok {
			return v, true
		}
		return "", s.Data[key] != "" // base64; the value itself is not needed
	}

	env := map[string]string{}
	for k, v := range cm.Data {
		env[k] = v
	}
	fromSecret := map[string][2]string{} // env name -> secret, key
	var envOrder []string
	for _, e := range c.Env {
		envOrder = append(envOrder, e.Name)
		switch {
		case e.ValueFrom == nil:
			v := varRef.ReplaceAllStringFunc(e.Value, func(m string) string {
				ref := varRef.FindStringSubmatch(m)[1]
				val, ok := env[ref]
				if !ok {
					t.Errorf("env %s refers to $(%s), which is not defined before it: Kubernetes leaves it unexpanded", e.Name, ref)
				}
				return val
			})
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				env[e.Name] = stsObj.Metadata.Name + "-0"
			case "metadata.namespace":
				env[e.Name] = ns
			default:
				env[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			fromSecret[e.Name] = [2]string{ref.Name, ref.Key}
			env[e.Name] = "secret-from-" + ref.Name + "-" + ref.Key
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "1"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			o, ok := r.find("ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name)
			if !ok {
				t.Errorf("env %s: ConfigMap %s is not rendered", e.Name, e.ValueFrom.ConfigMapKeyRef.Name)
			}
			env[e.Name] = o.Data[e.ValueFrom.ConfigMapKeyRef.Key]
		}
	}
	// setting is a setting's effective value: set, or botd's default.
	setting := func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		for _, s := range config.Settings() {
			if s.Env == name {
				return s.Default
			}
		}
		return ""
	}
	duration := func(name string) time.Duration {
		v := setting(name)
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s=%q: %v", name, v, err)
		}
		return d
	}

	t.Run("settings are botd's", func(t *testing.T) {
		known := knownEnv()
		names := append([]string(nil), envOrder...)
		for k := range cm.Data {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			if !strings.HasPrefix(n, config.EnvPrefix) {
				continue
			}
			switch {
			case known[n] && pendingEnv[n] != "":
				t.Logf("%s is now one of botd's settings: remove it from pendingEnv", n)
			case known[n]:
			case pendingEnv[n] != "":
				t.Logf("%s is pending (%s)", n, pendingEnv[n])
			default:
				t.Errorf("%s is not a setting botd reads (config.Settings()) nor pending", n)
			}
		}
		if got := setting("BOTD_LOG_LEVEL"); got != want.logLevel {
			t.Errorf("BOTD_LOG_LEVEL = %q, want %q", got, want.logLevel)
		}
	})

	t.Run("botd loads the settings", func(t *testing.T) {
		// Feed the effective environment to botd's own config loader: it
		// validates URLs, durations, listener addresses and required
		// credentials. Files named by *_FILE are stood in for.
		dir := t.TempDir()
		getenv := func(name string) string {
			v := env[name]
			if strings.HasSuffix(name, "_FILE") && v != "" {
				p := filepath.Join(dir, strings.ToLower(name))
				if err := os.WriteFile(p, []byte("placeholder\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			return v
		}
		cfg, err := config.Load(nil, getenv, io.Discard)
		if err != nil {
			t.Fatalf("botd would refuse this config: %v", err)
		}
		if cfg.Emulator {
			t.Error("the overlay runs botd in emulator mode (no Graph credentials)")
		}
	})

	webhookPort := portOf(t, setting("BOTD_LISTEN"))
	adminPort := portOf(t, setting("BOTD_ADMIN_LISTEN"))
	containerPort := func(p any) int {
		switch v := p.(type) {
		case float64:
			return int(v)
		case string:
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
			for _, cp := range c.Ports {
				if cp.Name == v {
					return cp.ContainerPort
				}
			}
		}
		return -1
	}

	t.Run("ports", func(t *testing.T) {
		if got := containerPort("webhook"); got != webhookPort {
			t.Errorf("container port webhook = %d, BOTD_LISTEN listens on %d", got, webhookPort)
		}
		if got := containerPort("admin"); got != adminPort {
			t.Errorf("container port admin = %d, BOTD_ADMIN_LISTEN listens on %d", got, adminPort)
		}
		host, _, _ := net.SplitHostPort(setting("BOTD_ADMIN_LISTEN"))
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("BOTD_ADMIN_LISTEN host %q: the kubelet and Prometheus cannot reach a loopback admin listener", host)
		}
	})

	t.Run("probes", func(t *testing.T) {
		type pr struct {
			name, path string
			p          *probe
		}
		probes := []pr{{"liveness", "/livez", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}}
		for _, x := range probes {
			if x.p == nil || x.p.HTTPGet == nil {
				t.Errorf("no %s httpGet probe", x.name)
				continue
			}
			if x.p.HTTPGet.Path != x.path {
				t.Errorf("%s probe path %q, want %q", x.name, x.p.HTTPGet.Path, x.path)
			}
			if got := containerPort(x.p.HTTPGet.Port); got != adminPort {
				t.Errorf("%s probe port %v is %d, botd serves health on the admin port %d", x.name, x.p.HTTPGet.Port, got, adminPort)
			}
			b := probeBotd(t)
			if code, body := get(t, "http://"+b.adminAddr+x.p.HTTPGet.Path); code != 200 {
				t.Errorf("%s probe: botd's admin listener answers GET %s with %d %s", x.name, x.p.HTTPGet.Path, code, body)
			}
		}
		if c.ReadinessProbe != nil {
			rt := duration("BOTD_READY_TIMEOUT")
			if got := time.Duration(c.ReadinessProbe.TimeoutSeconds) * time.Second; got <= rt {
				t.Errorf("readiness timeoutSeconds %v is not longer than BOTD_READY_TIMEOUT %v: a slow token check would fail the probe instead of /readyz", got, rt)
			}
		}
	})

	t.Run("grace period outlasts shutdown", func(t *testing.T) {
		if pod.TerminationGracePeriodSeconds == nil {
			t.Fatal("no terminationGracePeriodSeconds (default 30s is shorter than a drain)")
		}
		grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		var preStop time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		need := preStop + duration("BOTD_SHUTDOWN_TIMEOUT") + duration("BOTD_DRAIN_TIMEOUT")
		if grace <= need {
			t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + BOTD_SHUTDOWN_TIMEOUT %v + BOTD_DRAIN_TIMEOUT %v: the kubelet kills botd mid-drain",
				grace, preStop, duration("BOTD_SHUTDOWN_TIMEOUT"), duration("BOTD_DRAIN_TIMEOUT"))
		}
	})

	t.Run("security context", func(t *testing.T) {
		ps, cs := pod.SecurityContext, c.SecurityContext
		if ps == nil {
			ps = &securityContext{}
		}
		if cs == nil {
			t.Fatal("no container securityContext")
		}
		isTrue := func(b *bool) bool { return b != nil && *b }
		isFalse := func(b *bool) bool { return b != nil && !*b }
		if !isTrue(cs.RunAsNonRoot) && !(cs.RunAsNonRoot == nil && isTrue(ps.RunAsNonRoot)) {
			t.Error("runAsNonRoot is not true")
		}
		for _, u := range []*int{ps.RunAsUser, cs.RunAsUser} {
			if u != nil && *u == 0 {
				t.Error("runAsUser 0")
			}
		}
		if !isTrue(cs.ReadOnlyRootFilesystem) {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if !isFalse(cs.AllowPrivilegeEscalation) {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if isTrue(cs.Privileged) {
			t.Error("privileged")
		}
		if cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
			t.Errorf("capabilities %+v, want drop [ALL] and nothing added", cs.Capabilities)
		}
		seccomp := ps.SeccompProfile
		if cs.SeccompProfile != nil {
			seccomp = cs.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != "RuntimeDefault" {
			t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
		}
		if !isFalse(pod.EnableServiceLinks) {
			t.Error("enableServiceLinks is not false: Services named botd* inject BOTD_* variables (BOTD_PORT, BOTD_ADMIN_SERVICE_HOST...) into botd's settings namespace")
		}
		if !isFalse(pod.AutomountServiceAccountToken) {
			t.Error("automountServiceAccountToken is not false: botd does not call the Kubernetes API")
		}
	})

	t.Run("secrets come from a Secret", func(t *testing.T) {
		secretish := regexp.MustCompile(`(?i)(secret|password|token|key)$`)
		for _, o := range r.all("ConfigMap") {
			for k := range o.Data {
				if secretish.MatchString(k) {
					t.Errorf("ConfigMap %s holds %s: secrets go in a Secret", o.Metadata.Name, k)
				}
			}
		}
		for _, name := range secretEnv() {
			if _, inCM := cm.Data[name]; inCM {
				t.Errorf("%s is in the ConfigMap", name)
			}
			var provided bool
			for _, e := range c.Env {
				switch {
				case e.Name == name && e.ValueFrom == nil:
					t.Errorf("%s is a literal env value", name)
				case e.Name == name && e.ValueFrom.SecretKeyRef != nil:
					provided = true
				case e.Name == name+"_FILE" && e.ValueFrom == nil:
					sec, key, ok := secretMountFor(c, pod, e.Value)
					if !ok {
						t.Errorf("%s_FILE=%s is not inside a mounted Secret volume", name, e.Value)
						continue
					}
					fromSecret[name+"_FILE"] = [2]string{sec, key}
					provided = true
				}
			}
			if !provided {
				t.Errorf("%s (or %s_FILE) is not provided from a Secret", name, name)
			}
		}
		for env, ref := range fromSecret {
			_, generated := secrets[ref[0]]
			if want.secretGenerated != generated {
				t.Errorf("%s refers to Secret %s: rendered %v, want %v", env, ref[0], generated, want.secretGenerated)
			}
			if generated {
				if _, ok := secretValue(ref[0], ref[1]); !ok {
					t.Errorf("%s refers to key %s, which Secret %s lacks", env, ref[1], ref[0])
				}
			}
		}
		if !want.secretGenerated && len(secrets) > 0 {
			t.Errorf("the overlay renders Secrets %v: real credentials must not be committed", keys(secrets))
		}
	})

	t.Run("GOMEMLIMIT from the memory limit", func(t *testing.T) {
		var e *envVar
		for i := range c.Env {
			if c.Env[i].Name == "GOMEMLIMIT" {
				e = &c.Env[i]
			}
		}
		if e == nil || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil {
			t.Fatal("no GOMEMLIMIT from a resourceFieldRef")
		}
		ref := e.ValueFrom.ResourceFieldRef
		if ref.ContainerName != "" && ref.ContainerName != c.Name {
			t.Errorf("GOMEMLIMIT reads container %s's resources", ref.ContainerName)
		}
		if d := fmt.Sprint(ref.Divisor); ref.Divisor != nil && d != "1" {
			t.Errorf("divisor %s: GOMEMLIMIT is in bytes, divisor must be 1", d)
		}
		limit, err := quantityBytes(c.Resources.Limits["memory"])
		if err != nil {
			t.Fatalf("limits.memory: %v", err)
		}
		switch ref.Resource {
		case "limits.memory":
		case "requests.memory":
			req, err := quantityBytes(c.Resources.Requests["memory"])
			if err != nil {
				t.Fatalf("requests.memory: %v", err)
			}
			if ratio := req / limit; ratio < 0.85 || ratio > 0.95 {
				t.Errorf("requests.memory/limits.memory = %.3f: GOMEMLIMIT (the request) should be ~90%% of the limit", ratio)
			}
		default:
			t.Errorf("GOMEMLIMIT from %s, want limits.memory or requests.memory", ref.Resource)
		}
		for _, res := range []string{"cpu", "memory"} {
			if c.Resources.Requests[res] == "" {
				t.Errorf("no %s request", res)
			}
		}
	})

	t.Run("BOTD_MAX_CALLS fits the memory", func(t *testing.T) {
		// liveBytesPerCall is the live heap of one tracked call with 2
		// participants, measured (docs/capacity.md, "What a 1 GiB pod
		// holds": 407 MB for 200,000). The calls botd may hold must fit
		// in 60% of the pod's memory request (GOMEMLIMIT), leaving the
		// rest to garbage, operations and flow runs.
		const liveBytesPerCall = 2100
		n, err := strconv.Atoi(setting("BOTD_MAX_CALLS"))
		if err != nil {
			t.Fatalf("BOTD_MAX_CALLS: %v", err)
		}
		req, err := quantityBytes(c.Resources.Requests["memory"])
		if err != nil {
			t.Fatalf("requests.memory: %v", err)
		}
		if need := float64(n) * liveBytesPerCall; need > 0.6*req {
			t.Errorf("BOTD_MAX_CALLS=%d needs about %.0f MiB of live heap, over 60%% of requests.memory (%.0f MiB): lower it", n, need/(1<<20), req/(1<<20))
		}
	})

	t.Run("replica routing", func(t *testing.T) {
		var inst *envVar
		for i := range c.Env {
			if c.Env[i].Name == "BOTD_INSTANCE" {
				inst = &c.Env[i]
			}
		}
		if inst == nil || inst.ValueFrom == nil || inst.ValueFrom.FieldRef == nil || inst.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Error("BOTD_INSTANCE is not the pod name (fieldRef metadata.name)")
		}
		svc, ok := r.find("Service", sts.ServiceName)
		if !ok {
			t.Fatalf("the StatefulSet's serviceName %q is not rendered", sts.ServiceName)
		}
		ss := spec[serviceSpec](t, svc)
		if ss.ClusterIP != "None" || !ss.PublishNotReadyAddresses {
			t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v; want a headless Service that lists draining pods", svc.Metadata.Name, ss.ClusterIP, ss.PublishNotReadyAddresses)
		}
		if !matches(ss.Selector, podLabels) {
			t.Errorf("Service %s does not select botd's pods", svc.Metadata.Name)
		}
		if want := sts.ServiceName + "." + ns + ".svc."; !strings.HasPrefix(env["BOTD_PEER_DOMAIN"]+".", want) {
			t.Errorf("BOTD_PEER_DOMAIN = %q, want %scluster.local (pods are <name>.<headless service>.<namespace>.svc...)", env["BOTD_PEER_DOMAIN"], want)
		}
	})

	t.Run("image", func(t *testing.T) {
		ref := c.Image
		if !strings.Contains(ref, "/") || !(strings.Contains(ref, ":") || strings.Contains(ref, "@")) || strings.HasSuffix(ref, ":latest") {
			t.Errorf("image %q: the overlay must set a registry and a tag or digest (not latest)", ref)
		}
	})

	// Services by role, resolved through their targetPort.
	svcTargets := func(s serviceSpec, port int) bool {
		for _, p := range s.Ports {
			if containerPort(p.TargetPort) == port {
				return true
			}
		}
		return false
	}

	t.Run("ingress exposes only the webhook", func(t *testing.T) {
		ings := r.all("Ingress")
		if len(ings) != 1 {
			t.Fatalf("%d Ingresses, want 1", len(ings))
		}
		ing := spec[ingressSpec](t, ings[0])
		if ing.DefaultBackend != nil {
			t.Error("the Ingress has a defaultBackend: every path would reach it")
		}
		pub, err := url.Parse(setting("BOTD_PUBLIC_URL"))
		if err != nil {
			t.Fatal(err)
		}
		tlsHosts := map[string]bool{}
		for _, tl := range ing.TLS {
			for _, h := range tl.Hosts {
				if tl.SecretName != "" {
					tlsHosts[h] = true
				}
			}
		}
		if len(ing.Rules) == 0 {
			t.Fatal("no Ingress rules")
		}
		for _, rule := range ing.Rules {
			if rule.Host != pub.Hostname() {
				t.Errorf("Ingress host %q, BOTD_PUBLIC_URL host %q: Graph would post where the Ingress does not route", rule.Host, pub.Hostname())
			}
			if !tlsHosts[rule.Host] {
				t.Errorf("host %q has no TLS secret", rule.Host)
			}
			if rule.HTTP == nil || len(rule.HTTP.Paths) != 1 {
				t.Fatalf("host %q: want exactly one path (the callback)", rule.Host)
			}
			p := rule.HTTP.Paths[0]
			if p.Path != setting("BOTD_CALLBACK_PATH") || p.PathType != "Prefix" {
				t.Errorf("path %q (%s), want BOTD_CALLBACK_PATH %q as Prefix (callbackUris add /<instance>)", p.Path, p.PathType, setting("BOTD_CALLBACK_PATH"))
			}
			if p.Backend.Service == nil {
				t.Fatal("backend is not a Service")
			}
			so, ok := r.find("Service", p.Backend.Service.Name)
			if !ok {
				t.Fatalf("backend Service %s is not rendered", p.Backend.Service.Name)
			}
			ss := spec[serviceSpec](t, so)
			var target any
			for _, sp := range ss.Ports {
				if (p.Backend.Service.Port.Name != "" && sp.Name == p.Backend.Service.Port.Name) || (p.Backend.Service.Port.Number != 0 && sp.Port == p.Backend.Service.Port.Number) {
					target = sp.TargetPort
				}
			}
			if got := containerPort(target); got != webhookPort {
				t.Errorf("the Ingress reaches container port %d, want the webhook port %d", got, webhookPort)
			}
			if !matches(ss.Selector, podLabels) {
				t.Errorf("Service %s does not select botd's pods", so.Metadata.Name)
			}
		}
	})

	t.Run("admin port stays in the cluster", func(t *testing.T) {
		for _, so := range r.all("Service") {
			ss := spec[serviceSpec](t, so)
			if svcTargets(ss, adminPort) && ss.Type != "" && ss.Type != "ClusterIP" {
				t.Errorf("Service %s exposes the admin port as %s", so.Metadata.Name, ss.Type)
			}
		}
		sms := r.all("ServiceMonitor")
		if len(sms) != 1 {
			t.Fatalf("%d ServiceMonitors, want 1", len(sms))
		}
		sm := spec[serviceMonitorSpec](t, sms[0])
		var selected []object
		for _, so := range r.all("Service") {
			if matches(sm.Selector.MatchLabels, so.Metadata.Labels) {
				selected = append(selected, so)
			}
		}
		if len(selected) != 1 {
			t.Fatalf("the ServiceMonitor selects %d Services, want the admin one", len(selected))
		}
		ss := spec[serviceSpec](t, selected[0])
		if len(sm.Endpoints) == 0 {
			t.Fatal("no ServiceMonitor endpoints")
		}
		for _, ep := range sm.Endpoints {
			if ep.Path != "/metrics" {
				t.Errorf("scrape path %q, want /metrics", ep.Path)
			}
			var target any
			for _, sp := range ss.Ports {
				if sp.Name == ep.Port {
					target = sp.TargetPort
				}
			}
			if got := containerPort(target); got != adminPort {
				t.Errorf("ServiceMonitor port %q reaches container port %d, want admin %d", ep.Port, got, adminPort)
			}
		}
		// The rules and the dashboard select job="botd".
		if job := selected[0].Metadata.Labels[sm.JobLabel]; sm.JobLabel == "" || job != "botd" {
			t.Errorf("scraped series get job=%q (jobLabel %q), the alerts and dashboard select job=\"botd\"", job, sm.JobLabel)
		}
		if len(r.all("PrometheusRule")) != 1 {
			t.Error("want one PrometheusRule")
		}
	})

	t.Run("network policy", func(t *testing.T) {
		nps := r.all("NetworkPolicy")
		if len(nps) != 1 {
			t.Fatalf("%d NetworkPolicies, want 1", len(nps))
		}
		np := spec[networkPolicySpec](t, nps[0])
		if !matches(np.PodSelector.MatchLabels, podLabels) {
			t.Fatal("the NetworkPolicy does not select botd's pods")
		}
		if !slices.Contains(np.PolicyTypes, "Ingress") {
			t.Error("policyTypes lacks Ingress")
		}
		var webhookFromNS, webhookFromPeers, adminFromNS bool
		for _, rule := range np.Ingress {
			var ports []int
			for _, p := range rule.Ports {
				ports = append(ports, containerPort(p.Port))
			}
			all := len(ports) == 0
			for _, peer := range rule.From {
				nsSel := peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) > 0
				podOnly := peer.NamespaceSelector == nil && peer.PodSelector != nil && matches(peer.PodSelector.MatchLabels, podLabels)
				if all || slices.Contains(ports, webhookPort) {
					webhookFromNS = webhookFromNS || nsSel
					webhookFromPeers = webhookFromPeers || podOnly
				}
				if all || slices.Contains(ports, adminPort) {
					if !nsSel && !podOnly || peer.IPBlock != nil {
						t.Errorf("admin port %d admitted from %+v: only the monitoring namespace may reach it", adminPort, peer)
					}
					adminFromNS = adminFromNS || nsSel
				}
			}
			if len(rule.From) == 0 && (all || slices.Contains(ports, adminPort)) {
				t.Errorf("a rule admits everyone to the admin port %d", adminPort)
			}
		}
		if !webhookFromNS {
			t.Error("the webhook port is not open to the ingress controller's namespace")
		}
		if !webhookFromPeers {
			t.Error("the webhook port is not open to other botd pods (forwarding)")
		}
		if !adminFromNS {
			t.Error("the admin port is not open to the monitoring namespace: Prometheus cannot scrape")
		}
	})

	t.Run("disruption budget", func(t *testing.T) {
		pdbs := r.all("PodDisruptionBudget")
		if len(pdbs) != 1 {
			t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdbs))
		}
		p := spec[pdbSpec](t, pdbs[0])
		if !matches(p.Selector.MatchLabels, podLabels) {
			t.Error("the PDB does not select botd's pods")
		}
		num := func(v any) int {
			f, ok := v.(float64)
			if !ok {
				return -1
			}
			return int(f)
		}
		if want.pdbMinAvailable > 0 && num(p.MinAvailable) != want.pdbMinAvailable {
			t.Errorf("minAvailable %v, want %d", p.MinAvailable, want.pdbMinAvailable)
		}
		if want.pdbMaxUnavailable > 0 && num(p.MaxUnavailable) != want.pdbMaxUnavailable {
			t.Errorf("maxUnavailable %v, want %d", p.MaxUnavailable, want.pdbMaxUnavailable)
		}
		if m := num(p.MinAvailable); m >= want.replicas {
			t.Errorf("minAvailable %d with %d replicas blocks every node drain", m, want.replicas)
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		file, err := os.ReadFile(filepath.Join("grafana", "botd.json"))
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, o := range r.all("ConfigMap") {
			if o.Metadata.Labels["grafana_dashboard"] == "" {
				continue
			}
			found = true
			if o.Data["botd.json"] != string(file) {
				t.Errorf("ConfigMap %s does not carry grafana/botd.json", o.Metadata.Name)
			}
			if !json.Valid([]byte(o.Data["botd.json"])) {
				t.Error("the dashboard is not valid JSON")
			}
		}
		if !found {
			t.Error("no ConfigMap labelled grafana_dashboard")
		}
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
