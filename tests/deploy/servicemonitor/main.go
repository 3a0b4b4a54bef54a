// Decodes ServiceMonitor and PrometheusRule manifests strictly into prometheus-operator's own
// Go types: an unknown field or a value of the wrong type is an error, as the API server's
// structural schema would make it. Reads YAML documents from the files given as arguments;
// prints one line per object checked.
package main

import (
	"bytes"
	"fmt"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for index, document := range bytes.Split(data, []byte("\n---")) {
			var kind struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(document, &kind); err != nil {
				continue
			}
			if kind.Kind == monitoringv1.PrometheusRuleKind {
				var rule monitoringv1.PrometheusRule
				if err := yaml.UnmarshalStrict(document, &rule); err != nil {
					fmt.Printf("%s[%d]: invalid PrometheusRule: %v\n", path, index, err)
					failed = true
					continue
				}
				rules := 0
				for _, group := range rule.Spec.Groups {
					rules += len(group.Rules)
				}
				fmt.Printf("%s[%d]: PrometheusRule %s: %d group(s), %d rule(s) valid\n", path, index, rule.Name, len(rule.Spec.Groups), rules)
				continue
			}
			if kind.Kind != monitoringv1.ServiceMonitorsKind {
				continue
			}
			var monitor monitoringv1.ServiceMonitor
			if err := yaml.UnmarshalStrict(document, &monitor); err != nil {
				fmt.Printf("%s[%d]: invalid ServiceMonitor: %v\n", path, index, err)
				failed = true
				continue
			}
			fmt.Printf("%s[%d]: ServiceMonitor %s: %d endpoint(s) valid\n", path, index, monitor.Name, len(monitor.Spec.Endpoints))
		}
	}
	if failed {
		os.Exit(1)
	}
}
