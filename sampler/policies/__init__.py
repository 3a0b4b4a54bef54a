"""Policy types, one module each, all behind `sampler.policies.base.Policy`; registry.py knows them all."""
