package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/argoproj/gitops-engine/pkg/health"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// healthPrefix starts the argocd-cm keys that hold a Lua health check, followed by
// `<group>_<Kind>`.
const healthPrefix = "resource.customizations.health."

// luaHealth runs the Lua health check of an object's group and kind, as Argo CD does: the live
// object is the global `obj`, the script returns a table with `status` and `message`. Kinds
// without a script get gitops-engine's built-in health.
type luaHealth map[string]string

func loadLuaHealth(path string) (luaHealth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	scripts := luaHealth{}
	for key, script := range cm.Data {
		if groupKind, ok := strings.CutPrefix(key, healthPrefix); ok {
			scripts[groupKind] = script
		}
	}
	if len(scripts) == 0 {
		return nil, fmt.Errorf("%s: no %s* key", path, healthPrefix)
	}
	return scripts, nil
}

func (h luaHealth) GetResourceHealth(obj *unstructured.Unstructured) (*health.HealthStatus, error) {
	gvk := obj.GroupVersionKind()
	script, ok := h[gvk.Group+"_"+gvk.Kind]
	if !ok {
		return nil, nil
	}
	l := lua.NewState()
	defer l.Close()
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return nil, fmt.Errorf("health check of %s: %w", gvk.Kind, err)
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("health check of %s returned %s, not a table", gvk.Kind, l.Get(-1).Type())
	}
	status := health.HealthStatusCode(lua.LVAsString(table.RawGetString("status")))
	switch status {
	case health.HealthStatusHealthy, health.HealthStatusProgressing, health.HealthStatusDegraded,
		health.HealthStatusSuspended, health.HealthStatusMissing, health.HealthStatusUnknown:
	default:
		return nil, fmt.Errorf("health check of %s returned status %q", gvk.Kind, status)
	}
	return &health.HealthStatus{Status: status, Message: lua.LVAsString(table.RawGetString("message"))}, nil
}

// toLua turns decoded JSON into Lua values: objects and arrays into tables (arrays from 1).
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case map[string]any:
		t := l.NewTable()
		for k, item := range v {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(v))
	}
}
