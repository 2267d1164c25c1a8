package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	k8syaml "sigs.k8s.io/yaml"
)

// k8sObject is the part of a Kubernetes object these tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		Provider struct {
			Webhook *esoWebhook `yaml:"webhook"`
		} `yaml:"provider"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers     []container `yaml:"containers"`
	InitContainers []container `yaml:"initContainers"`
	Volumes        []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode *int   `yaml:"defaultMode"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe    *probe `yaml:"startupProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   string `yaml:"port"`
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
}

type esoWebhook struct {
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers"`
	Result  *struct {
		JSONPath string `yaml:"jsonPath"`
	} `yaml:"result"`
	Secrets []struct {
		Name      string `yaml:"name"`
		SecretRef struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"secrets"`
}

// manifest is one YAML document and where it came from.
type manifest struct {
	where string
	obj   k8sObject
	raw   map[string]any
}

// decodeManifests decodes every document of a YAML stream.
func decodeManifests(t *testing.T, where string, data []byte) []manifest {
	t.Helper()
	var out []manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d does not parse: %v", where, i, err)
		}
		m := manifest{where: where + " document " + strconv.Itoa(i)}
		if err := node.Decode(&m.obj); err != nil {
			t.Fatalf("%s: %v", m.where, err)
		}
		if err := node.Decode(&m.raw); err != nil {
			t.Fatalf("%s: %v", m.where, err)
		}
		if m.raw == nil {
			continue // an empty document
		}
		out = append(out, m)
	}
	return out
}

// allManifests returns the documents of deploy/kubernetes/*.yaml and of the
// README's yaml code blocks.
func allManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	var all []manifest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, decodeManifests(t, filepath.Base(f), data)...)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no yaml blocks")
	}
	for i, b := range blocks {
		all = append(all, decodeManifests(t, "README.md yaml block "+strconv.Itoa(i+1), b[1])...)
	}
	return all
}

// TestKubernetesManifests_Parse checks that every document is a Kubernetes
// object: apiVersion, kind and metadata.name.
func TestKubernetesManifests_Parse(t *testing.T) {
	kinds := map[string]int{}
	for _, m := range allManifests(t) {
		if m.obj.APIVersion == "" || m.obj.Kind == "" || m.obj.Metadata.Name == "" {
			t.Errorf("%s: apiVersion %q, kind %q, metadata.name %q: all three are required", m.where, m.obj.APIVersion, m.obj.Kind, m.obj.Metadata.Name)
		}
		kinds[m.obj.Kind]++
	}
	for _, k := range []string{"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "SecretStore", "ExternalSecret"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests", k)
		}
	}
}

// TestKubernetesManifests_Server checks each pod that runs `serve`: its
// args go through serve's real flag set and its checks (a renamed or
// removed flag fails here), the ports, probes, TLS and data paths agree
// with them, and the pod runs locked down.
func TestKubernetesManifests_Server(t *testing.T) {
	var servers int
	for _, m := range allManifests(t) {
		if m.obj.Kind != "StatefulSet" && m.obj.Kind != "Deployment" {
			continue
		}
		pod := m.obj.Spec.Template.Spec
		for _, c := range pod.Containers {
			if len(c.Args) == 0 || c.Args[0] != "serve" {
				continue
			}
			servers++
			t.Run(m.where+"/"+c.Name, func(t *testing.T) { checkServerPod(t, m, pod, c) })
		}
	}
	if servers < 2 {
		t.Errorf("%d server pods, want the StatefulSet and the PostgreSQL Deployment", servers)
	}
}

func checkServerPod(t *testing.T, m manifest, pod podSpec, c container) {
	env := map[string]string{}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = "from-a-secret"
			fromSecret[e.Name] = true
		} else {
			env[e.Name] = e.Value
		}
	}
	var cfg serveConfig
	var usage bytes.Buffer
	fs := newFlagSet("serve", &usage)
	cfg.register(fs)
	if err := parseFlags(fs, c.Args[1:], func(k string) string { return env[k] }); err != nil {
		t.Fatalf("serve %v: %v", c.Args[1:], err)
	}
	if cfg.Store.Kind == "" {
		cfg.Store.Kind = storeBolt
	}
	if err := cfg.Store.validate(cfg.DataDir); err != nil {
		t.Errorf("store flags: %v", err)
	}
	if err := checkTransport(cfg.Listen, cfg.InsecureHTTP, cfg.TLS, slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("transport flags: %v", err)
	}
	if cfg.InsecureHTTP || cfg.TLS.CertFile == "" || cfg.TLS.KeyFile == "" {
		t.Errorf("want HTTPS (--tls-cert, --tls-key), got insecure=%v cert=%q key=%q", cfg.InsecureHTTP, cfg.TLS.CertFile, cfg.TLS.KeyFile)
	}
	if cfg.MasterKeyFile != "" || !fromSecret["NEOSTORE_MASTER_KEY"] {
		t.Errorf("the master key must come from a Secret in NEOSTORE_MASTER_KEY (see the manifest's comment), got file %q", cfg.MasterKeyFile)
	}
	if cfg.Store.Kind == storeBolt && (m.obj.Kind != "StatefulSet" || m.obj.Spec.Replicas == nil || *m.obj.Spec.Replicas != 1) {
		t.Errorf("the embedded store allows one writer: want a StatefulSet with replicas: 1")
	}
	if cfg.Store.Kind == storePostgres && !fromSecret["NEOSTORE_POSTGRES_URL"] {
		t.Errorf("the PostgreSQL URL (with its password) must come from a Secret")
	}

	// Ports: the names the probes and the Service use, on the ports serve
	// listens on.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if got, want := ports["https"], portOf(t, cfg.Listen); got != want {
		t.Errorf("containerPort https = %d, want %d (--listen %s)", got, want, cfg.Listen)
	}
	if got, want := ports["metrics"], portOf(t, cfg.Observe.MetricsListen); got != want {
		t.Errorf("containerPort metrics = %d, want %d (--metrics-listen %s)", got, want, cfg.Observe.MetricsListen)
	}
	for name, pr := range map[string]*probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
		want := "/healthz"
		if name == "readinessProbe" {
			want = "/readyz"
		}
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s: missing or not httpGet", name)
			continue
		}
		if pr.HTTPGet.Path != want || pr.HTTPGet.Port != "https" || pr.HTTPGet.Scheme != "HTTPS" {
			t.Errorf("%s = %+v, want GET %s on port https over HTTPS", name, *pr.HTTPGet, want)
		}
	}

	// Files serve reads or writes must be on a volume.
	mountOf := func(path string) string {
		for _, vm := range c.VolumeMounts {
			if path == vm.MountPath || strings.HasPrefix(path, vm.MountPath+"/") {
				return vm.Name
			}
		}
		return ""
	}
	tlsVolume := mountOf(cfg.TLS.CertFile)
	if tlsVolume == "" || mountOf(cfg.TLS.KeyFile) != tlsVolume {
		t.Errorf("--tls-cert %s and --tls-key %s are not on one mounted volume", cfg.TLS.CertFile, cfg.TLS.KeyFile)
	}
	for _, v := range pod.Volumes {
		if v.Name == tlsVolume && (v.Secret == nil || v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o077 != 0) {
			t.Errorf("TLS volume %s: want a Secret with defaultMode 0400", v.Name)
		}
	}
	if cfg.DataDir != "" && mountOf(cfg.DataDir) == "" {
		t.Errorf("--data %s is on the read-only root filesystem", cfg.DataDir)
	}

	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext: want runAsNonRoot, runAsUser 65532, seccompProfile RuntimeDefault")
	}
	csc := c.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext: want readOnlyRootFilesystem, no privilege escalation, drop ALL")
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, err := net.LookupPort("tcp", port)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return n
}

// TestKubernetesManifests_ExternalSecrets checks the README's recipe against
// what the API answers (see TestExternalSecretsWebhook): GET on the value
// route with the key templated in, the API key from a Secret labelled for
// ESO's webhook provider, Accept: text/plain and no jsonPath, so the raw
// body is the value.
func TestKubernetesManifests_ExternalSecrets(t *testing.T) {
	all := allManifests(t)
	// The Secrets labelled for the webhook provider: as manifests, or by
	// the README's kubectl label commands.
	labelled := map[string]bool{}
	for _, m := range all {
		if m.obj.Kind == "Secret" && m.obj.Metadata.Labels["external-secrets.io/type"] == "webhook" {
			labelled[m.obj.Metadata.Name] = true
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range regexp.MustCompile(`kubectl label secret (?:-n \S+ )?(\S+) external-secrets\.io/type=webhook`).FindAllSubmatch(readme, -1) {
		labelled[string(l[1])] = true
	}
	var stores int
	for _, m := range all {
		if m.obj.Kind != "SecretStore" && m.obj.Kind != "ClusterSecretStore" {
			continue
		}
		stores++
		w := m.obj.Spec.Provider.Webhook
		if w == nil {
			t.Errorf("%s: no webhook provider", m.where)
			continue
		}
		if !regexp.MustCompile(`^https://[^/]+/api/[A-Za-z0-9_-]+/secrets/\{\{ \.remoteRef\.key \}\}$`).MatchString(w.URL) {
			t.Errorf("%s: url %q, want https://HOST/api/<tenant>/secrets/{{ .remoteRef.key }}", m.where, w.URL)
		}
		if w.Method != "" && w.Method != "GET" {
			t.Errorf("%s: method %q, want GET", m.where, w.Method)
		}
		if w.Headers["Accept"] != "text/plain" {
			t.Errorf("%s: Accept header %q, want text/plain", m.where, w.Headers["Accept"])
		}
		if w.Result != nil && w.Result.JSONPath != "" {
			t.Errorf("%s: jsonPath %q: the raw text/plain body is the value", m.where, w.Result.JSONPath)
		}
		apiKey := regexp.MustCompile(`^\{\{ \.([A-Za-z]+)\.([A-Za-z]+) \}\}$`).FindStringSubmatch(w.Headers["X-API-KEY"])
		if apiKey == nil {
			t.Errorf("%s: X-API-KEY header %q, want a template of a store secret", m.where, w.Headers["X-API-KEY"])
			continue
		}
		var found bool
		for _, s := range w.Secrets {
			if s.Name == apiKey[1] {
				found = true
				if !labelled[s.SecretRef.Name] {
					t.Errorf("%s: Secret %s is neither a manifest nor a kubectl label command with label external-secrets.io/type=webhook", m.where, s.SecretRef.Name)
				}
			}
		}
		if !found {
			t.Errorf("%s: X-API-KEY uses .%s, which spec.provider.webhook.secrets does not name", m.where, apiKey[1])
		}
	}
	if stores == 0 {
		t.Errorf("no SecretStore")
	}
}

// TestKubernetesManifests_App checks the application Deployment that runs
// under `neostore-secrets run`: the API key comes from a Secret in
// NEOSTORE_API_KEY, never from an argument, and the program follows "--".
func TestKubernetesManifests_App(t *testing.T) {
	var apps int
	for _, m := range allManifests(t) {
		for _, c := range m.obj.Spec.Template.Spec.Containers {
			argv := append(append([]string(nil), c.Command...), c.Args...)
			i := indexOf(argv, "run")
			if i < 0 || !strings.HasSuffix(argv[0], "neostore-secrets") {
				continue
			}
			apps++
			var keyFromSecret bool
			for _, e := range c.Env {
				if e.Name == "NEOSTORE_API_KEY" {
					keyFromSecret = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
				}
			}
			if !keyFromSecret {
				t.Errorf("%s/%s: NEOSTORE_API_KEY must come from a secretKeyRef", m.where, c.Name)
			}
			dash := indexOf(argv, "--")
			if dash < i || dash == len(argv)-1 || indexOf(argv[i:dash], "--watch") < 0 {
				t.Errorf("%s/%s: %v: want run ... --watch D -- PROGRAM", m.where, c.Name, argv)
			}
			for _, a := range argv {
				if strings.Contains(a, "nsk_") || strings.HasPrefix(a, "--api-key=") {
					t.Errorf("%s/%s: a credential in the arguments: %q", m.where, c.Name, a)
				}
			}
		}
	}
	if apps == 0 {
		t.Errorf("no container runs `neostore-secrets run`")
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestKubernetesManifests_Strict decodes each document of a built-in kind
// into its Kubernetes API type, refusing unknown fields and wrong types as
// `kubectl apply --validate=strict` does: a misspelled field (readinesProbe)
// is silently ignored by the checks above but fails here. Custom resources
// (cert-manager, External Secrets Operator) have no types here and are
// checked above.
func TestKubernetesManifests_Strict(t *testing.T) {
	types := map[string]func() any{
		"apps/v1 StatefulSet":                   func() any { return &appsv1.StatefulSet{} },
		"apps/v1 Deployment":                    func() any { return &appsv1.Deployment{} },
		"v1 Service":                            func() any { return &corev1.Service{} },
		"v1 ServiceAccount":                     func() any { return &corev1.ServiceAccount{} },
		"v1 Secret":                             func() any { return &corev1.Secret{} },
		"policy/v1 PodDisruptionBudget":         func() any { return &policyv1.PodDisruptionBudget{} },
		"networking.k8s.io/v1 NetworkPolicy":    func() any { return &networkingv1.NetworkPolicy{} },
		"cert-manager.io/v1 Certificate":        nil,
		"external-secrets.io/v1 SecretStore":    nil,
		"external-secrets.io/v1 ExternalSecret": nil,
	}
	for _, m := range allManifests(t) {
		kind := m.obj.APIVersion + " " + m.obj.Kind
		newObj, known := types[kind]
		if !known {
			t.Errorf("%s: %s is not a kind this test knows", m.where, kind)
			continue
		}
		if newObj == nil {
			continue
		}
		doc, err := json.Marshal(m.raw)
		if err != nil {
			t.Fatalf("%s: %v", m.where, err)
		}
		if err := k8syaml.UnmarshalStrict(doc, newObj()); err != nil {
			t.Errorf("%s: not a valid %s: %v", m.where, kind, err)
		}
	}
}
