// Command gitops-sync syncs a stream of Kubernetes manifests into one namespace the way Argo CD
// syncs an application: with the sync package of Argo CD's gitops-engine, which orders the
// objects by phase, sync wave, kind and name, applies one wave at a time and starts the next
// only when every object of the previous one is healthy. Health is gitops-engine's own, plus
// the Lua health checks of an argocd-cm ConfigMap (--health) run the way Argo CD runs them.
//
// It prints one JSON report on stdout when the sync completes, when --timeout passes, or when
// the object named by --give-up-on has been waiting for health for --after. The end-to-end
// tests of prism-render's rollout waves run it against the test control plane.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/argoproj/gitops-engine/pkg/cache"
	"github.com/argoproj/gitops-engine/pkg/health"
	gsync "github.com/argoproj/gitops-engine/pkg/sync"
	"github.com/argoproj/gitops-engine/pkg/sync/common"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/gitops-engine/pkg/utils/tracing"
	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/textlogger"
)

// report is what the command prints.
type report struct {
	// Phase of the sync operation when the command stopped: Succeeded, Failed, Error, or
	// Running when it gave up.
	Phase string `json:"phase"`
	// Message of the sync operation, e.g. "waiting for healthy state of apps/StatefulSet/x".
	Message string `json:"message"`
	// Why the command stopped: completed, timeout or gave-up.
	Stopped string `json:"stopped"`
	// Waves the sync applied, in order ("Sync/0", "Sync/1", …): gitops-engine's wave hook runs
	// once a wave is applied, before its health is waited for.
	Waves []string `json:"waves"`
	// Every object's result.
	Resources []resource `json:"resources"`
}

type resource struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Synced, SyncFailed, Pruned, PruneSkipped.
	Status string `json:"status"`
	// Running (applied, not yet healthy), Succeeded (healthy), Failed (degraded) …
	Phase   string `json:"phase"`
	Message string `json:"message"`
	Order   int    `json:"order"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	namespace := flag.String("namespace", "", "namespace of the application (objects without one go there)")
	revision := flag.String("revision", "HEAD", "revision recorded with the sync")
	timeout := flag.Duration("timeout", 5*time.Minute, "stop the sync after this long")
	giveUpOn := flag.String("give-up-on", "", "Kind/name of an object: stop once it waits for health for --after")
	after := flag.Duration("after", 15*time.Second, "see --give-up-on")
	healthChecks := flag.String("health", "", "argocd-cm ConfigMap (YAML) whose resource.customizations.health.* Lua scripts decide health")
	verbose := flag.Bool("v", false, "log what gitops-engine does to stderr")
	flag.Parse()
	if *kubeconfig == "" || *namespace == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gitops-sync --kubeconfig FILE --namespace NS [flags] MANIFESTS.yaml|-")
		os.Exit(2)
	}
	out, err := run(*kubeconfig, *namespace, *revision, flag.Arg(0), *healthChecks, *timeout, *giveUpOn, *after, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitops-sync:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-sync:", err)
		os.Exit(1)
	}
}

func readManifests(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func run(kubeconfig, namespace, revision, manifests, healthChecks string, timeout time.Duration, giveUpOn string, after time.Duration, verbose bool) (*report, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	data, err := readManifests(manifests)
	if err != nil {
		return nil, err
	}
	targets, err := kube.SplitYAML(data)
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	for _, t := range targets {
		if t.GetNamespace() == "" {
			t.SetNamespace(namespace)
		}
	}
	log := logr.Discard()
	if verbose {
		log = stderrLogger()
	}
	var override health.HealthOverride
	if healthChecks != "" {
		override, err = loadLuaHealth(healthChecks)
		if err != nil {
			return nil, err
		}
	}
	kubectl := &kube.KubectlCmd{Log: log, Tracer: tracing.NopTracer{}}
	clusterCache := cache.NewClusterCache(config,
		cache.SetNamespaces([]string{namespace}),
		cache.SetKubectl(kubectl),
		cache.SetLogr(log))
	if err := clusterCache.EnsureSynced(); err != nil {
		return nil, fmt.Errorf("cluster cache: %w", err)
	}
	defer clusterCache.Invalidate()

	var wavesMu sync.Mutex
	var waves []string
	opts := []gsync.SyncOpt{
		gsync.WithLogr(log),
		gsync.WithHealthOverride(override),
		gsync.WithSyncWaveHook(func(phase common.SyncPhase, wave int, _ bool) error {
			wavesMu.Lock()
			defer wavesMu.Unlock()
			waves = append(waves, fmt.Sprintf("%s/%d", phase, wave))
			return nil
		}),
	}

	// As Argo CD's application controller does: each round compares the targets with the live
	// objects anew and runs one step of the operation in a sync context that starts from the
	// state the last round left, so health is always judged on live objects.
	started := metav1.Now()
	phase, message := common.OperationRunning, ""
	var results []common.ResourceSyncResult
	deadline := time.Now().Add(timeout)
	var waitingSince time.Time
	for {
		// Only the targets are looked up: nothing else in the namespace is this
		// application's, so nothing is pruned.
		live, err := clusterCache.GetManagedLiveObjs(targets, func(*cache.Resource) bool { return false })
		if err != nil {
			return nil, fmt.Errorf("live objects: %w", err)
		}
		reconciled := gsync.Reconcile(targets, live, namespace, clusterCache)
		round := append(opts, gsync.WithInitialState(phase, message, results, started))
		syncCtx, cleanup, err := gsync.NewSyncContext(revision, reconciled, config, config, kubectl, namespace, clusterCache.GetOpenAPISchema(), round...)
		if err != nil {
			return nil, fmt.Errorf("sync context: %w", err)
		}
		syncCtx.Sync()
		phase, message, results = syncCtx.GetState()
		stopped := ""
		switch {
		case phase.Completed():
			stopped = "completed"
		case time.Now().After(deadline):
			stopped = "timeout"
		case giveUpOn != "" && waitingFor(results, giveUpOn):
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			} else if time.Since(waitingSince) >= after {
				stopped = "gave-up"
			}
		default:
			waitingSince = time.Time{}
		}
		if stopped != "" && stopped != "completed" {
			syncCtx.Terminate()
		}
		cleanup()
		if stopped != "" {
			wavesMu.Lock()
			defer wavesMu.Unlock()
			return build(phase, message, stopped, waves, results), nil
		}
		time.Sleep(time.Second)
	}
}

// waitingFor: whether the object `kindName` was applied and waits for health.
func waitingFor(results []common.ResourceSyncResult, kindName string) bool {
	for _, r := range results {
		if r.ResourceKey.Kind+"/"+r.ResourceKey.Name == kindName {
			return r.Status == common.ResultCodeSynced && r.HookPhase == common.OperationRunning
		}
	}
	return false
}

func build(phase common.OperationPhase, message, stopped string, waves []string, results []common.ResourceSyncResult) *report {
	out := &report{Phase: string(phase), Message: message, Stopped: stopped, Waves: append([]string{}, waves...)}
	for _, r := range results {
		out.Resources = append(out.Resources, resource{
			Kind:      r.ResourceKey.Kind,
			Namespace: r.ResourceKey.Namespace,
			Name:      r.ResourceKey.Name,
			Status:    string(r.Status),
			Phase:     string(r.HookPhase),
			Message:   r.Message,
			Order:     r.Order,
		})
	}
	return out
}

// stderrLogger logs what gitops-engine does (verbosity 1) to stderr.
func stderrLogger() logr.Logger {
	return textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(1)))
}
