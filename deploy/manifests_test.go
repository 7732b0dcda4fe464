package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The subset of Kubernetes objects the manifest tests read. Hand-written
// rather than k8s.io/api: a few fields, no dependency tree.

type object struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
	Spec       json.RawMessage   `json:"spec"`
}

type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type labelSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type statefulSetSpec struct {
	ServiceName string        `json:"serviceName"`
	Replicas    *int          `json:"replicas"`
	Selector    labelSelector `json:"selector"`
	Template    struct {
		Metadata objectMeta `json:"metadata"`
		Spec     podSpec    `json:"spec"`
	} `json:"template"`
}

type podSpec struct {
	ServiceAccountName            string           `json:"serviceAccountName"`
	AutomountServiceAccountToken  *bool            `json:"automountServiceAccountToken"`
	EnableServiceLinks            *bool            `json:"enableServiceLinks"`
	TerminationGracePeriodSeconds *int64           `json:"terminationGracePeriodSeconds"`
	SecurityContext               *securityContext `json:"securityContext"`
	Containers                    []container      `json:"containers"`
	Volumes                       []volume         `json:"volumes"`
}

type securityContext struct {
	RunAsNonRoot             *bool `json:"runAsNonRoot"`
	RunAsUser                *int  `json:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
	Privileged               *bool `json:"privileged"`
	Capabilities             *struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	SeccompProfile *struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env     []envVar `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
		Prefix string `json:"prefix"`
	} `json:"envFrom"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	LivenessProbe  *probe `json:"livenessProbe"`
	ReadinessProbe *probe `json:"readinessProbe"`
	StartupProbe   *probe `json:"startupProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int64 `json:"seconds"`
			} `json:"sleep"`
		} `json:"preStop"`
	} `json:"lifecycle"`
	SecurityContext *securityContext `json:"securityContext"`
	VolumeMounts    []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
		ReadOnly  bool   `json:"readOnly"`
	} `json:"volumeMounts"`
}

type envVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `json:"fieldPath"`
		} `json:"fieldRef"`
		ResourceFieldRef *struct {
			ContainerName string `json:"containerName"`
			Resource      string `json:"resource"`
			Divisor       any    `json:"divisor"`
		} `json:"resourceFieldRef"`
		SecretKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"secretKeyRef"`
		ConfigMapKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"configMapKeyRef"`
	} `json:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
	TimeoutSeconds int `json:"timeoutSeconds"`
}

type volume struct {
	Name   string `json:"name"`
	Secret *struct {
		SecretName string `json:"secretName"`
		Items      []struct {
			Key  string `json:"key"`
			Path string `json:"path"`
		} `json:"items"`
	} `json:"secret"`
}

type serviceSpec struct {
	Type                     string            `json:"type"`
	ClusterIP                string            `json:"clusterIP"`
	PublishNotReadyAddresses bool              `json:"publishNotReadyAddresses"`
	Selector                 map[string]string `json:"selector"`
	Ports                    []struct {
		Name       string `json:"name"`
		Port       int    `json:"port"`
		TargetPort any    `json:"targetPort"`
		NodePort   int    `json:"nodePort"`
	} `json:"ports"`
}

type ingressBackend struct {
	Service *struct {
		Name string `json:"name"`
		Port struct {
			Name   string `json:"name"`
			Number int    `json:"number"`
		} `json:"port"`
	} `json:"service"`
}

type ingressSpec struct {
	DefaultBackend *ingressBackend `json:"defaultBackend"`
	TLS            []struct {
		Hosts      []string `json:"hosts"`
		SecretName string   `json:"secretName"`
	} `json:"tls"`
	Rules []struct {
		Host string `json:"host"`
		HTTP *struct {
			Paths []struct {
				Path     string         `json:"path"`
				PathType string         `json:"pathType"`
				Backend  ingressBackend `json:"backend"`
			} `json:"paths"`
		} `json:"http"`
	} `json:"rules"`
}

type pdbSpec struct {
	MinAvailable   any           `json:"minAvailable"`
	MaxUnavailable any           `json:"maxUnavailable"`
	Selector       labelSelector `json:"selector"`
}

type networkPolicyPeer struct {
	NamespaceSelector *labelSelector `json:"namespaceSelector"`
	PodSelector       *labelSelector `json:"podSelector"`
	IPBlock           any            `json:"ipBlock"`
}

type networkPolicySpec struct {
	PodSelector labelSelector `json:"podSelector"`
	PolicyTypes []string      `json:"policyTypes"`
	Ingress     []struct {
		From  []networkPolicyPeer `json:"from"`
		Ports []struct {
			Port any `json:"port"`
		} `json:"ports"`
	} `json:"ingress"`
}

type serviceMonitorSpec struct {
	JobLabel  string        `json:"jobLabel"`
	Selector  labelSelector `json:"selector"`
	Endpoints []struct {
		Port string `json:"port"`
		Path string `json:"path"`
	} `json:"endpoints"`
}

// rendered is one overlay's output.
type rendered struct {
	objects []object
}

func (r *rendered) find(kind, name string) (object, bool) {
	for _, o := range r.objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func (r *rendered) all(kind string) []object {
	var out []object
	for _, o := range r.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func spec[T any](t *testing.T, o object) T {
	t.Helper()
	var s T
	if err := json.Unmarshal(o.Spec, &s); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
	return s
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// parseObjects reads a multi-document YAML stream.
func parseObjects(b []byte) ([]object, error) {
	var out []object
	for i, doc := range docSep.Split(string(b), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var o object
		if err := json.Unmarshal(j, &o); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if o.Kind == "" {
			return nil, fmt.Errorf("document %d has no kind", i)
		}
		out = append(out, o)
	}
	return out, nil
}

// render builds an overlay with the kustomize that go.mod pins (go tool
// kustomize, the same engine as `kubectl kustomize`), so the manifest tests
// run on any machine with Go and never skip for a missing kubectl.
func render(t *testing.T, overlay string) *rendered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, goTool(), "tool", "kustomize", "build", filepath.Join("overlays", overlay))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool kustomize build overlays/%s: %v\n%s", overlay, err, stderr.String())
	}
	objs, err := parseObjects(out)
	if err != nil {
		t.Fatalf("overlays/%s output: %v", overlay, err)
	}
	return &rendered{objects: objs}
}

// quantityBytes parses a Kubernetes memory quantity.
func quantityBytes(q string) (float64, error) {
	m := regexp.MustCompile(`^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|)$`).FindStringSubmatch(q)
	if m == nil {
		return 0, fmt.Errorf("unsupported quantity %q", q)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]
	return v * mult, nil
}

func TestQuantityBytes(t *testing.T) {
	for q, want := range map[string]float64{"1": 1, "512Mi": 512 << 20, "1Gi": 1 << 30, "1.5G": 1.5e9, "920Mi": 920 << 20} {
		got, err := quantityBytes(q)
		if err != nil || math.Abs(got-want) > 0.5 {
			t.Errorf("quantityBytes(%q) = %v, %v; want %v", q, got, err, want)
		}
	}
	if _, err := quantityBytes("1Xi"); err == nil {
		t.Error("1Xi parsed")
	}
}

func TestParseObjects(t *testing.T) {
	objs, err := parseObjects([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  K: v\n---\n---\nkind: Service\nmetadata:\n  name: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Data["K"] != "v" || objs[1].Kind != "Service" {
		t.Errorf("got %+v", objs)
	}
	if _, err := parseObjects([]byte("metadata: {}\n")); err == nil {
		t.Error("a document without kind parsed")
	}
}

// matches reports whether selector selects labels.
func matches(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false // an empty selector selects everything: never intended here
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// secretFile is a *_FILE setting pointing into a mounted Secret.
func secretMountFor(c container, pod podSpec, path string) (secretName, key string, ok bool) {
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName, rel, true
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return v.Secret.SecretName, it.Key, true
				}
			}
		}
	}
	return "", "", false
}
