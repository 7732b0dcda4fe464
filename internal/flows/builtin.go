package flows

import (
	_ "embed"
	"fmt"
)

//go:embed builtin.yaml
var builtinYAML []byte

// BuiltinName is the built-in flow's name.
const BuiltinName = "builtin"

// Builtin loads the built-in flow with its parameters' defaults set from
// defaults (JSON values by parameter name): how botd's Automation settings
// become a flow, so that there is one engine.
func Builtin(opts Options, defaults map[string]any) (*Flow, error) {
	set, err := Load([]Source{{File: "builtin.yaml", Data: builtinYAML}}, opts)
	if err != nil {
		return nil, err
	}
	f, _ := set.Flow(BuiltinName)
	for name, v := range defaults {
		p := f.param(name)
		if p == nil {
			return nil, fmt.Errorf("built-in flow: no parameter %q", name)
		}
		d, err := p.convert(v)
		if err != nil {
			return nil, fmt.Errorf("built-in flow: parameter %s: %w", name, err)
		}
		p.def, p.Default = d, ToJSON(d)
	}
	return f, nil
}

func (f *Flow) param(name string) *Field {
	for _, p := range f.Parameters {
		if p.Name == name {
			return p
		}
	}
	return nil
}
