"""An example policy plugin: samples traces whose root span uses one of the given HTTP methods.

Installed, a package like this one adds the policy type `http_method` through the
`tail_sampler.policies` entry point group (see pyproject.toml beside this file):

    policies:
      - {name: writes, type: http_method, http_method: {methods: [POST, PUT, DELETE]}}
"""

from __future__ import annotations

from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide


class HttpMethodSettings(PolicySettings):
    methods: list[str] = Field(min_length=1)


class HttpMethodPolicy(Policy):
    type_name = "http_method"
    settings_model = HttpMethodSettings

    def prepare(self) -> None:
        self._methods = frozenset(method.upper() for method in self.settings.methods)

    def evaluate(self, trace: TraceView) -> Decision:
        for record in trace.spans():
            if not record.span.parent_span_id:
                for attribute in record.span.attributes:
                    if attribute.key == "http.request.method":
                        return decide(attribute.value.string_value.upper() in self._methods)
        return Decision.NOT_SAMPLED
