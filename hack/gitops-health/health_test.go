// Package gitopshealth checks the ModelCustomization health that GitOps tools compute, with the
// engines the tools really run, over the fixtures of every lifecycle stage:
//
//   - Argo CD: the Lua health script in gopher-lua, the VM Argo CD embeds, with obj passed the way
//     Argo CD passes it (a global table converted from the object's JSON);
//   - Flux: the healthCheckExprs of the example Kustomization in Flux's own CEL status evaluator
//     (github.com/fluxcd/pkg/runtime/cel, the code kustomize-controller runs);
//   - kstatus (sigs.k8s.io/cli-utils/pkg/kstatus): what tools without custom health read.
//
// Run with `make gitops-health` (or go test ./... here with GOTOOLCHAIN=go1.27.3);
// tests/chart/test_gitops.py runs it too.
package gitopshealth

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

const root = "../.."

type expected struct {
	ArgoCD                string `json:"argocd"`
	Flux                  string `json:"flux"`
	KStatus               string `json:"kstatus"`
	ArgoCDMessageContains string `json:"argocdMessageContains"`
}

type fixture struct {
	Name     string          `json:"name"`
	Expected expected        `json:"expected"`
	Object   json.RawMessage `json:"object"`
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatalf("cannot read %s: %v", path, err)
	}
	return data
}

func fixtures(t *testing.T) []fixture {
	t.Helper()
	var file struct {
		Cases []fixture `json:"cases"`
	}
	// GITOPS_HEALTH_FIXTURES: another fixture file, e.g. the statuses the operator's core wrote
	// (tests/chart/test_gitops.py drives it through every stage and passes them here).
	path := filepath.Join(root, "tests/chart/fixtures/modelcustomization-health.yaml")
	if other := os.Getenv("GITOPS_HEALTH_FIXTURES"); other != "" {
		path = other
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no fixtures")
	}
	return file.Cases
}

// object decodes a fixture as the API server's JSON would be (integers as int64).
func object(t *testing.T, raw json.RawMessage) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatalf("object: %v", err)
	}
	return u
}

// toLua converts a JSON value the way Argo CD's util/lua decodeValue does.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// argoHealth runs the script as Argo CD's health check does and returns (status, message).
func argoHealth(t *testing.T, script string, u *unstructured.Unstructured) (string, string) {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, u.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("the Argo CD script failed: %v", err)
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the Argo CD script returned %s, not a table", l.Get(-1).Type())
	}
	health := lua.LVAsString(result.RawGetString("status"))
	switch health {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		t.Fatalf("the Argo CD script returned the status %q, which Argo CD does not know", health)
	}
	return health, lua.LVAsString(result.RawGetString("message"))
}

func fluxEvaluator(t *testing.T) *fluxcel.StatusEvaluator {
	t.Helper()
	var kustomization struct {
		Spec struct {
			HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(read(t, "examples/gitops/flux/kustomization.yaml"), &kustomization); err != nil {
		t.Fatalf("kustomization: %v", err)
	}
	checks := kustomization.Spec.HealthCheckExprs
	if len(checks) != 1 || checks[0].Kind != "ModelCustomization" {
		t.Fatalf("expected one health check for ModelCustomization, got %+v", checks)
	}
	evaluator, err := fluxcel.NewStatusEvaluator(&checks[0].HealthCheckExpressions)
	if err != nil {
		t.Fatalf("Flux does not accept the expressions: %v", err)
	}
	return evaluator
}

func TestEveryFixtureWithEveryEngine(t *testing.T) {
	script := string(read(t, "examples/gitops/argocd/modelcustomization-health.lua"))
	flux := fluxEvaluator(t)
	for _, f := range fixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			argo, message := argoHealth(t, script, object(t, f.Object))
			if argo != f.Expected.ArgoCD || !strings.Contains(message, f.Expected.ArgoCDMessageContains) {
				t.Errorf("Argo CD: got %s %q, want %s containing %q",
					argo, message, f.Expected.ArgoCD, f.Expected.ArgoCDMessageContains)
			}
			fluxResult, err := flux.Evaluate(context.Background(), object(t, f.Object))
			if err != nil {
				t.Errorf("Flux: evaluation error: %v", err)
			} else if string(fluxResult.Status) != f.Expected.Flux {
				t.Errorf("Flux: got %s, want %s", fluxResult.Status, f.Expected.Flux)
			}
			kstatusResult, err := status.Compute(object(t, f.Object))
			if err != nil {
				t.Errorf("kstatus: %v", err)
			} else if string(kstatusResult.Status) != f.Expected.KStatus {
				t.Errorf("kstatus: got %s (%s), want %s",
					kstatusResult.Status, kstatusResult.Message, f.Expected.KStatus)
			}
			t.Logf("argocd=%s flux=%v kstatus=%s", argo, fluxResult, kstatusResult.Status)
		})
	}
}

// Why the CRD defaults status: with no status at all, Flux's evaluator cannot answer (a
// missing top-level name is an evaluation error that no has() guard avoids), and kstatus
// reads the object as Current. The API server never returns such an object for our CRDs.
func TestAnObjectWithoutStatusIsWhatTheCRDDefaultPrevents(t *testing.T) {
	raw := []byte(`{"apiVersion": "bespoke.dev/v1alpha1", "kind": "ModelCustomization",
		"metadata": {"name": "tickets", "namespace": "ml-team", "generation": 1}}`)
	if _, err := fluxEvaluator(t).Evaluate(context.Background(), object(t, raw)); err == nil ||
		!strings.Contains(err.Error(), "no such attribute") {
		t.Errorf("expected Flux's evaluator to fail on a missing status, got %v", err)
	}
	result, err := status.Compute(object(t, raw))
	if err != nil || result.Status != status.CurrentStatus {
		t.Errorf("expected kstatus to read a missing status as Current, got %v %v", result, err)
	}
}

// The CRD's default status must be the one the first fixture shows.
func TestTheUnseenFixtureHasTheCRDsDefaultStatus(t *testing.T) {
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Default    any `json:"default"`
							Properties map[string]struct {
								Default any `json:"default"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(read(t, "crds/bespoke.dev_modelcustomizations.yaml"), &crd); err != nil {
		t.Fatalf("crd: %v", err)
	}
	statusSchema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"]
	if statusSchema.Default == nil {
		t.Fatal("the CRD gives status no default: an unseen object would have none")
	}
	if os.Getenv("GITOPS_HEALTH_FIXTURES") != "" {
		t.Skip("checks the committed fixtures")
	}
	unseen := object(t, fixtures(t)[0].Object)
	observed, found, _ := unstructured.NestedInt64(unseen.Object, "status", "observedGeneration")
	want := statusSchema.Properties["observedGeneration"].Default
	if !found || want == nil || float64(observed) != want.(float64) {
		t.Errorf("first fixture's observedGeneration %v (found %v), CRD default %v", observed, found, want)
	}
}
